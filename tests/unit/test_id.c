/* Unit tests of event ids: the strict "<ms>-<seq>" form, 64-bit overflow,
 * and the (ms, seq) order of cbev_id_cmp and cbev_id_cmp_str. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cbevents/error.h"
#include "cbevents/event.h"

static void test_parse_valid(void **state) {
  cbev_id id = {7, 7};
  (void)state;

  assert_int_equal(cbev_id_parse("1755376889458-0", &id), CBEV_OK);
  assert_true(id.ms == 1755376889458ull && id.seq == 0);
  assert_int_equal(cbev_id_parse("0-0", &id), CBEV_OK);
  assert_true(id.ms == 0 && id.seq == 0);
  assert_int_equal(cbev_id_parse("007-010", &id), CBEV_OK); /* leading zeros are digits */
  assert_true(id.ms == 7 && id.seq == 10);
  assert_int_equal(cbev_id_parse("18446744073709551615-18446744073709551615", &id), CBEV_OK);
  assert_true(id.ms == UINT64_MAX && id.seq == UINT64_MAX);
}

static void test_parse_invalid(void **state) {
  static const char *const bad[] = {
      "",       "-",        "1",        "1-",       "-1",       "1--1",
      "1-1-1",  " 1-1",     "1-1 ",     "1 -1",     "+1-1",     "1-+1",
      "-1-1",   "1--0",     "0x1-1",    "1.5-1",    "1-1e3",    "a-1",
      "1-a",    "１-1", /* full-width digit */
      "18446744073709551616-0",  /* UINT64_MAX + 1 */
      "0-18446744073709551616",
      "99999999999999999999-0",
      "184467440737095516150-0",
      "1-1\n"};
  cbev_id id = {42, 43};
  (void)state;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (cbev_id_parse(bad[i], &id) != CBEV_EINVAL)
      fail_msg("\"%s\" was accepted", bad[i]);
    assert_true(id.ms == 42 && id.seq == 43); /* out untouched on failure */
  }
  assert_int_equal(cbev_id_parse(NULL, &id), CBEV_EINVAL);
  assert_int_equal(cbev_id_parse("1-1", NULL), CBEV_EINVAL);
}

static void test_cmp(void **state) {
  cbev_id a = {100, 0}, b = {100, 1}, c = {99, 1000}, d = {UINT64_MAX, 0};
  (void)state;

  assert_true(cbev_id_cmp(&a, &b) < 0);
  assert_true(cbev_id_cmp(&b, &a) > 0);
  assert_int_equal(cbev_id_cmp(&a, &a), 0);
  assert_true(cbev_id_cmp(&c, &a) < 0); /* ms decides before seq */
  assert_true(cbev_id_cmp(&d, &b) > 0);
}

static void test_cmp_str(void **state) {
  (void)state;

  /* Numeric, not lexical: "99-0" < "100-0", "1-10" > "1-9". */
  assert_true(cbev_id_cmp_str("99-0", "100-0") < 0);
  assert_true(cbev_id_cmp_str("1-10", "1-9") > 0);
  assert_true(cbev_id_cmp_str("1755376889458-0", "1755376889458-1") < 0);
  assert_int_equal(cbev_id_cmp_str("5-5", "005-05"), 0);
  assert_int_equal(cbev_id_cmp_str("5-5", "5-5"), 0);
  /* Unparsable sorts before every valid id... */
  assert_true(cbev_id_cmp_str("garbage", "0-0") < 0);
  assert_true(cbev_id_cmp_str("0-0", "garbage") > 0);
  assert_true(cbev_id_cmp_str("18446744073709551616-0", "0-0") < 0);
  /* ...and two unparsable ones compare with strcmp. */
  assert_true(cbev_id_cmp_str("a", "b") < 0);
  assert_true(cbev_id_cmp_str("b", "a") > 0);
  assert_int_equal(cbev_id_cmp_str("x", "x"), 0);
  /* NULL counts as unparsable. */
  assert_true(cbev_id_cmp_str(NULL, "1-0") < 0);
  assert_true(cbev_id_cmp_str("1-0", NULL) > 0);
  assert_int_equal(cbev_id_cmp_str(NULL, NULL), 0);
  assert_true(cbev_id_cmp_str(NULL, "x") < 0);
  assert_true(cbev_id_cmp_str("x", NULL) > 0);
}

static void test_event_parsed_id(void **state) {
  const char body[] = "{\"events\":[{\"method\":\"follow\",\"id\":\"12-3\"},"
                      "{\"method\":\"follow\",\"id\":\"12-3x\"}]}";
  cbev_batch *b = NULL;
  cbev_id id = {0, 0};
  (void)state;

  assert_int_equal(cbev_parse_response(body, sizeof body - 1, NULL, NULL, &b), CBEV_OK);
  assert_int_equal(cbev_event_parsed_id(cbev_batch_get(b, 0), &id), CBEV_OK);
  assert_true(id.ms == 12 && id.seq == 3);
  /* An event with an odd id is still delivered; its id text is kept. */
  assert_int_equal(cbev_event_parsed_id(cbev_batch_get(b, 1), &id), CBEV_EINVAL);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 1)), "12-3x");
  assert_int_equal(cbev_event_parsed_id(NULL, &id), CBEV_EINVAL);
  cbev_batch_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_valid),     cmocka_unit_test(test_parse_invalid),
      cmocka_unit_test(test_cmp),             cmocka_unit_test(test_cmp_str),
      cmocka_unit_test(test_event_parsed_id),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

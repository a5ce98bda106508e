/* Unit tests of the transport helpers: Retry-After out of raw header lines
 * and the capped, doubling response body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <curl/curl.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/session.h"
#include "cbevents/transport.h"
#include "failalloc.h"

static void test_retry_after_lines(void **state) {
  char ra[16] = "";
  (void)state;

  cbev_header_retry_after("HTTP/1.1 429 Too Many Requests\r\n", 32, ra, sizeof ra);
  assert_string_equal(ra, "");
  cbev_header_retry_after("retry-after: \t 120 \r\n", 21, ra, sizeof ra);
  assert_string_equal(ra, "120");
  /* Other headers leave it alone; a new status line clears it. */
  cbev_header_retry_after("Content-Type: application/json\r\n", 32, ra, sizeof ra);
  assert_string_equal(ra, "120");
  cbev_header_retry_after("HTTP/1.1 200 OK\r\n", 17, ra, sizeof ra);
  assert_string_equal(ra, "");
  /* Cut to the buffer, still terminated. */
  cbev_header_retry_after("Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n", 44, ra, sizeof ra);
  assert_string_equal(ra, "Wed, 21 Oct 201");
  /* A name alone, a prefix of the name, NULL: nothing stored, no crash. */
  ra[0] = 'x', ra[1] = '\0';
  cbev_header_retry_after("Retry-After:", 12, ra, sizeof ra);
  cbev_header_retry_after("Retry", 5, ra, sizeof ra);
  cbev_header_retry_after(NULL, 0, ra, sizeof ra);
  cbev_header_retry_after("Retry-After: 5\r\n", 16, NULL, 0);
  assert_string_equal(ra, "x");
  cbev_header_retry_after("Retry-After: 5\r\n", 16, ra, 1);
  assert_string_equal(ra, "");
}

/* Location, as the transports hand it to the session (cbev_response). */
static void test_location_lines(void **state) {
  char loc[CBEV_LOCATION_MAX], small[8];
  (void)state;

  loc[0] = 'x';
  loc[1] = '\0';
  cbev_header_location("HTTP/1.1 302 Found\r\n", 20, loc, sizeof loc);
  assert_string_equal(loc, ""); /* a new response: no Location yet */
  cbev_header_location("location:  https://h.example:8443/p?q=1 \r\n", 42, loc, sizeof loc);
  assert_string_equal(loc, "https://h.example:8443/p?q=1");
  cbev_header_location("Retry-After: 5\r\n", 16, loc, sizeof loc);
  assert_string_equal(loc, "https://h.example:8443/p?q=1"); /* other lines leave it */
  cbev_header_location("Location: /events/x/\r\n", 22, small, sizeof small);
  assert_string_equal(small, "/events"); /* cut to fit */
  cbev_header_location("HTTP/1.1 200 OK\r\n", 17, loc, sizeof loc);
  assert_string_equal(loc, "");
  cbev_header_location(NULL, 0, loc, sizeof loc);
}

static void test_body_grows_and_caps(void **state) {
  char *buf = NULL, chunk[100];
  size_t len = 0, cap = 0;
  (void)state;

  memset(chunk, 'a', sizeof chunk);
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 16, 250, chunk, 10), CBEV_OK);
  assert_int_equal(cap, 16);
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 16, 250, chunk, 100), CBEV_OK);
  assert_int_equal(len, 110);
  assert_int_equal(cap, 128);
  assert_int_equal(buf[110], '\0');
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 16, 250, chunk, 100), CBEV_OK);
  assert_int_equal(cap, 251); /* doubling stops at max + the NUL */
  /* 250 exactly fits; one more byte is too big and changes nothing. */
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 16, 250, chunk, 40), CBEV_OK);
  assert_int_equal(len, 250);
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 16, 250, chunk, 1), CBEV_ETOOBIG);
  assert_int_equal(len, 250);
  assert_int_equal(buf[250], '\0');
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 16, 250, NULL, 1), CBEV_EINVAL);
  assert_int_equal(cbev_body_append(NULL, &len, &cap, 16, 250, chunk, 1), CBEV_EINVAL);
  cbev_free(buf);

  /* No cap (SIZE_MAX): the limit and the doubling must not wrap. */
  buf = NULL, len = cap = 0;
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 16, SIZE_MAX, chunk, 5), CBEV_OK);
  assert_int_equal(cap, 16);
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 16, SIZE_MAX, chunk, 100), CBEV_OK);
  assert_int_equal(len, 105);
  assert_true(cap >= 106);
  assert_memory_equal(buf, chunk, 100);
  len = SIZE_MAX - 1; /* pretend: one byte below the end, no room for the NUL */
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 16, SIZE_MAX, chunk, 1), CBEV_ETOOBIG);
  len = 105;
  cbev_free(buf);
}

static void test_body_out_of_memory(void **state) {
  char *buf = NULL;
  size_t len = 0, cap = 0;
  (void)state;

  cbev_set_allocator(&g_failing);
  g_allocs = 0;
  g_fail_at = 1;
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 8, 1000, "abcdef", 6), CBEV_OK);
  assert_int_equal(cbev_body_append(&buf, &len, &cap, 8, 1000, "ghijkl", 6), CBEV_ENOMEM);
  assert_int_equal(len, 6);
  assert_int_equal(cap, 8);
  assert_string_equal(buf, "abcdef");
  cbev_set_allocator(NULL);
  cbev_free(buf);
}

static void test_setup_and_clock(void **state) {
  CURL *h = curl_easy_init();
  uint64_t t0 = cbev_now_ms(), t1;

  (void)state;
  assert_non_null(h);
  assert_int_equal(cbev_transport_setup(NULL, "https://x/", 30, NULL, NULL), CBEV_EINVAL);
  assert_int_equal(cbev_transport_setup(h, NULL, 30, NULL, NULL), CBEV_EINVAL);
  assert_int_equal(cbev_transport_setup(h, "https://x/", -1, NULL, NULL), CBEV_EINVAL);
  assert_int_equal(cbev_transport_setup(h, "https://x/", 30, "/etc/ssl/certs/ca.pem", "ua/1"),
                   CBEV_OK);
  curl_easy_cleanup(h);
  t1 = cbev_now_ms();
  assert_true(t1 >= t0);
  assert_true(t0 > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_retry_after_lines),
      cmocka_unit_test(test_location_lines),
      cmocka_unit_test(test_body_grows_and_caps),
      cmocka_unit_test(test_body_out_of_memory),
      cmocka_unit_test(test_setup_and_clock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

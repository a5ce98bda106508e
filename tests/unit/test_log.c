/* Unit tests of logging and secret masking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/log.h"

typedef struct captured {
  int calls;
  cbev_log_level level;
  char line[4096];
} captured;

static void capture(void *ud, cbev_log_level level, const char *msg) {
  captured *c = ud;
  c->calls++;
  c->level = level;
  strncpy(c->line, msg, sizeof c->line - 1);
}

static void check_mask(const char *text, const char *secret, const char *want) {
  char *got = cbev_mask_secret(text, secret);
  assert_non_null(got);
  assert_string_equal(got, want);
  cbev_free(got);
}

static void test_mask_forms(void **state) {
  (void)state;
  check_mask("https://h/events/alice/abc123/?i=1", "abc123", "https://h/events/alice/***/?i=1");
  check_mask("abc123abc123", "abc123", "******");
  check_mask("no secret here", "abc123", "no secret here");
  check_mask("partial abc12 only", "abc123", "partial abc12 only");
  /* Percent-encoded forms, either hex case, and a mix of both. */
  check_mask("/x/tok%2Fen%2B1/", "tok/en+1", "/x/***/");
  check_mask("/x/tok%2fen%2b1/", "tok/en+1", "/x/***/");
  check_mask("/x/tok/en%2B1/", "tok/en+1", "/x/***/");
  check_mask("/x/%74%6F%6B/", "tok", "/x/***/");
  check_mask("", "abc", "");
  check_mask("text", NULL, "text");
  check_mask("text", "", "text");
  /* A 1-byte secret makes the output longer than the input. */
  check_mask("aaaa", "a", "************");
  assert_null(cbev_mask_secret(NULL, "x"));
}

static void test_log_masks_and_filters(void **state) {
  captured c = {0};
  cbev_logger lg = {capture, &c, CBEV_LOG_INFO};
  (void)state;

  cbev_log(&lg, "s3cret", CBEV_LOG_WARN, "GET %s failed: %d", "/events/a/s3cret/", 503);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.level, CBEV_LOG_WARN);
  assert_string_equal(c.line, "GET /events/a/***/ failed: 503");
  cbev_log(&lg, "s3cret", CBEV_LOG_DEBUG, "hidden %s", "s3cret");
  assert_int_equal(c.calls, 1);
  cbev_log(NULL, NULL, CBEV_LOG_ERROR, "no logger is fine");
  cbev_logger none = {NULL, NULL, CBEV_LOG_DEBUG};
  cbev_log(&none, NULL, CBEV_LOG_ERROR, "no callback is fine");
}

static void test_levels(void **state) {
  cbev_log_level l;
  (void)state;
  assert_int_equal(cbev_log_level_parse("DEBUG", &l), CBEV_OK);
  assert_int_equal(l, CBEV_LOG_DEBUG);
  assert_int_equal(cbev_log_level_parse("warning", &l), CBEV_OK);
  assert_int_equal(l, CBEV_LOG_WARN);
  assert_int_equal(cbev_log_level_parse("loud", &l), CBEV_EINVAL);
  assert_string_equal(cbev_log_level_name(CBEV_LOG_ERROR), "error");
  assert_string_equal(cbev_log_level_name(CBEV_LOG_INFO), "info");
  assert_string_equal(cbev_strerror(CBEV_EAUTH),
                      "authentication failed (HTTP 401/403: bad, revoked or mis-scoped token)");
  assert_string_equal(cbev_strerror(-1), "unknown error");
  assert_string_equal(cbev_strerror(CBEV_ERR_COUNT), "unknown error");
}

/* An allocator whose Nth allocation fails. */
static long g_fail_at = -1, g_count;
static void *failing_malloc(size_t n) {
  if (g_count++ == g_fail_at)
    return NULL;
  return malloc(n);
}
static void *failing_realloc(void *p, size_t n) {
  if (g_count++ == g_fail_at)
    return NULL;
  return realloc(p, n);
}

static void test_oom_never_leaks_the_secret(void **state) {
  captured c = {0};
  cbev_logger lg = {capture, &c, CBEV_LOG_DEBUG};
  cbev_allocator a = {failing_malloc, failing_realloc, free};
  (void)state;

  cbev_set_allocator(&a);
  g_count = 0;
  g_fail_at = 0;
  cbev_log(&lg, "s3cret", CBEV_LOG_ERROR, "url /a/s3cret/");
  assert_int_equal(c.calls, 1);
  assert_null(strstr(c.line, "s3cret"));
  cbev_set_allocator(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mask_forms),
      cmocka_unit_test(test_log_masks_and_filters),
      cmocka_unit_test(test_levels),
      cmocka_unit_test(test_oom_never_leaks_the_secret),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

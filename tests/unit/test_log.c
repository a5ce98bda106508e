/* Unit tests of logging and secret masking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/log.h"
#include "log_impl.h"
#include "failalloc.h"

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
  /* A secret holding '%': its raw form, its encoded form ("%25" for the
   * '%'), and a text where "%25" is the literal start of the secret. */
  check_mask("/x/ab%x/", "ab%x", "/x/***/");
  check_mask("/x/ab%25x/", "ab%x", "/x/***/");
  check_mask("/x/ab%2525/", "ab%25", "/x/***/");
  check_mask("/x/ab%25/", "ab%25", "/x/***/");
  check_mask("/x/%25%25%25/", "%%%", "/x/***/");
  check_mask("/x/ab%2y/", "ab%x", "/x/ab%2y/");
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

static const char TOKEN[] = "Zq7xW9kPmR2vT4nB";

/* No piece of TOKEN of 4 bytes or more, raw or percent-encoded, in text. */
static void assert_no_token_piece(const char *text) {
  char piece[64], enc[64];
  size_t n = strlen(TOKEN);

  for (size_t k = 0; k < n; k++)
    snprintf(enc + 3 * k, sizeof enc - 3 * k, "%%%02X", (unsigned char)TOKEN[k]);
  for (size_t k = 4; k <= 3 * n; k++) {
    if (k <= n) {
      memcpy(piece, TOKEN, k);
      piece[k] = '\0';
      if (strstr(text, piece))
        fail_msg("token piece \"%s\" leaked in: %s", piece, text);
    }
    memcpy(piece, enc, k);
    piece[k] = '\0';
    if (strstr(text, piece))
      fail_msg("encoded token piece \"%s\" leaked in: %s", piece, text);
  }
}

/* Well-formed UTF-8 (no overlong forms or surrogates checked here: the
 * cut is what is tested). */
static int utf8_complete(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t need = *p < 0x80 ? 0 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : *p >= 0xC2 ? 1 : 9;
    if (need == 9)
      return 0;
    p++;
    for (size_t i = 0; i < need; i++, p++)
      if ((*p & 0xC0) != 0x80)
        return 0;
  }
  return 1;
}

/* A line over the 2 KiB cap is masked whole before it is capped: a token
 * straddling the cap leaves no piece of itself, and the cap does not split
 * a UTF-8 character. */
static void test_long_line_masked_before_cap(void **state) {
  captured *c = calloc(1, sizeof *c);
  cbev_logger lg = {capture, c, CBEV_LOG_DEBUG};
  char *text = malloc(4096), enc[64];
  (void)state;

  for (size_t k = 0; k < sizeof TOKEN - 1; k++)
    snprintf(enc + 3 * k, sizeof enc - 3 * k, "%%%02X", (unsigned char)TOKEN[k]);
  for (int f = 0; f < 2; f++) {
    for (size_t at = 2000; at <= 2060; at++) {
      memset(text, 'x', at);
      snprintf(text + at, 4096 - at, "%s and more after it", f ? enc : TOKEN);
      memset(c, 0, sizeof *c);
      cbev_log(&lg, TOKEN, CBEV_LOG_INFO, "body: %s", text);
      assert_int_equal(c->calls, 1);
      /* cut at the cap, or whole when masking made it fit */
      size_t n = strlen(c->line);
      assert_true(n == 2047 || (n < 2047 && strstr(c->line, "*** and more after it")));
      assert_no_token_piece(c->line);
    }
  }
  /* A two-byte character across the cap is dropped whole. */
  memset(text, 'x', 2046);
  memcpy(text + 2046, "\xc3\xa9\xc3\xa9", 5);
  memset(c, 0, sizeof *c);
  cbev_log(&lg, NULL, CBEV_LOG_INFO, "%s", text);
  assert_int_equal(strlen(c->line), 2046);
  memset(c, 0, sizeof *c);
  cbev_log(&lg, TOKEN, CBEV_LOG_INFO, "%s", text);
  assert_int_equal(strlen(c->line), 2046);
  assert_true(utf8_complete(c->line));
  free(text);
  free(c);
}

/* The helpers the excerpts are made with: mask, then cut. */
static void test_mask_cut_and_excerpt(void **state) {
  char out[33], body[256];
  int cut = -1;
  (void)state;

  /* cbev__log_mask_cut: the token at the cut is masked, then cut */
  for (size_t at = 10; at <= 40; at++) {
    memset(body, 'a', at);
    snprintf(body + at, sizeof body - at, "%s-rest", TOKEN);
    assert_int_equal(cbev__log_mask_cut(out, sizeof out, body, TOKEN, &cut), CBEV_OK);
    assert_no_token_piece(out);
    assert_true(strlen(out) <= 32);
    assert_int_equal(cut, at + 3 + 5 > 32);
  }
  assert_int_equal(cbev__log_mask_cut(out, sizeof out, "short", TOKEN, &cut), CBEV_OK);
  assert_string_equal(out, "short");
  assert_int_equal(cut, 0);
  assert_int_equal(cbev__log_mask_cut(out, sizeof out, NULL, TOKEN, &cut), CBEV_OK);
  assert_string_equal(out, "");
  assert_int_equal(cbev__log_mask_cut(out, 0, "x", TOKEN, NULL), CBEV_EINVAL);
  /* UTF-8 is not split: 31 'a' then a 2-byte character */
  memset(body, 'a', 31);
  memcpy(body + 31, "\xc3\xa9z", 4);
  assert_int_equal(cbev__log_mask_cut(out, sizeof out, body, NULL, &cut), CBEV_OK);
  assert_int_equal(strlen(out), 31);
  assert_int_equal(cut, 1);

  /* cbev__log_excerpt: NUL, control bytes and bad UTF-8 become '?', good UTF-8
   * stays; the result is always complete UTF-8 */
  static const char raw[] = "a\0b\x1b\x7f\xc3\xa9\xc3\x28\xe2\x82\xf0\x9f\x98\x80z";
  assert_int_equal(cbev__log_excerpt(out, sizeof out, raw, sizeof raw - 1, TOKEN, &cut), CBEV_OK);
  assert_string_equal(out, "a?b??\xc3\xa9?(??\xf0\x9f\x98\x80z");
  assert_int_equal(cut, 0);
  assert_true(utf8_complete(out));
  /* a token in the body, raw and encoded, straddling the cut */
  for (size_t at = 0; at <= 40; at++) {
    memset(body, 'b', at);
    snprintf(body + at, sizeof body - at, "%s%%5A%%71%%37%%78%%57%%39%%6B%%50%%6D%%52%%32%%76%%54%%34%%6E%%42", TOKEN);
    assert_int_equal(cbev__log_excerpt(out, sizeof out, body, strlen(body), TOKEN, &cut), CBEV_OK);
    assert_no_token_piece(out);
    assert_true(utf8_complete(out));
  }
  /* many tokens in a row: masking shrinks the body, the window still
   * holds whole tokens only */
  body[0] = '\0';
  for (int i = 0; i < 15; i++)
    strcat(body, TOKEN);
  assert_int_equal(cbev__log_excerpt(out, sizeof out, body, strlen(body), TOKEN, &cut), CBEV_OK);
  assert_string_equal(out, "*******************************"
                           "*");
  assert_int_equal(cut, 1);
  /* a 4-byte character across the cut is dropped whole */
  memset(body, 'c', 30);
  memcpy(body + 30, "\xf0\x9f\x98\x80", 4);
  assert_int_equal(cbev__log_excerpt(out, sizeof out, body, 34, NULL, &cut), CBEV_OK);
  assert_int_equal(strlen(out), 30);
  assert_int_equal(cut, 1);
  assert_int_equal(cbev__log_excerpt(out, sizeof out, NULL, 0, TOKEN, &cut), CBEV_OK);
  assert_string_equal(out, "");
}


static void test_oom_never_leaks_the_secret(void **state) {
  captured c = {0};
  cbev_logger lg = {capture, &c, CBEV_LOG_DEBUG};
  (void)state;

  cbev_set_allocator(&g_failing);
  g_allocs = 0;
  g_fail_at = 0;
  cbev_log(&lg, "s3cret", CBEV_LOG_ERROR, "url /a/s3cret/");
  assert_int_equal(c.calls, 1);
  assert_null(strstr(c.line, "s3cret"));

  /* A line over the cap, and the excerpt helpers, with the Nth allocation
   * failing for every N: never the secret, never a piece of it, no leak. */
  char *text = malloc(3000), out[65];
  memset(text, 'x', 2040);
  snprintf(text + 2040, 3000 - 2040, "%s tail", TOKEN);
  for (long n = 0; n < 8; n++) {
    int cut;
    memset(&c, 0, sizeof c);
    g_allocs = 0;
    g_fail_at = n;
    cbev_log(&lg, TOKEN, CBEV_LOG_ERROR, "%s", text);
    assert_int_equal(c.calls, 1);
    assert_no_token_piece(c.line);
    g_allocs = 0;
    int rc = cbev__log_excerpt(out, sizeof out, text + 2000, 60, TOKEN, &cut);
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
    if (rc == CBEV_ENOMEM)
      assert_string_equal(out, "");
    assert_no_token_piece(out);
    g_allocs = 0;
    rc = cbev__log_mask_cut(out, 48, text + 2000, TOKEN, &cut);
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
    assert_no_token_piece(out);
  }
  free(text);
  cbev_set_allocator(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mask_forms),
      cmocka_unit_test(test_log_masks_and_filters),
      cmocka_unit_test(test_levels),
      cmocka_unit_test(test_long_line_masked_before_cap),
      cmocka_unit_test(test_mask_cut_and_excerpt),
      cmocka_unit_test(test_oom_never_leaks_the_secret),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

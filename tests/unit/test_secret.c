/*
 * test_secret.c: cbev_read_secret_file()'s rule (cap, one trailing newline,
 * no control characters, not empty) and cbev_utf8_valid().
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/normalize.h"
#include "cbevents/secret.h"

static char g_path[64];

static int read_text(const char *content, size_t n, size_t max, char **out) {
  FILE *f;
  int fd;

  strcpy(g_path, "/tmp/cbev_secret_XXXXXX");
  fd = mkstemp(g_path);
  assert_true(fd >= 0);
  f = fdopen(fd, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(content, 1, n, f), n);
  fclose(f);
  int rc = cbev_read_secret_file(g_path, max, out);
  unlink(g_path);
  return rc;
}

#define READ(lit, max, out) read_text(lit, sizeof(lit) - 1, max, out)

static void test_rule(void **state) {
  char *s = NULL;
  (void)state;
  assert_int_equal(READ("tok\n", 16, &s), CBEV_OK);
  assert_string_equal(s, "tok");
  cbev_free(s);
  assert_int_equal(READ("tok\r\n", 16, &s), CBEV_OK);
  assert_string_equal(s, "tok");
  cbev_free(s);
  assert_int_equal(READ("tok", 3, &s), CBEV_OK);
  assert_string_equal(s, "tok");
  cbev_free(s);
  /* Only one newline is dropped: a second line is refused, not joined. */
  assert_int_equal(READ("tok\n\n", 16, &s), CBEV_EPARSE);
  assert_null(s);
  assert_int_equal(READ("to\nk", 16, &s), CBEV_EPARSE);
  assert_int_equal(READ("to\tk", 16, &s), CBEV_EPARSE);
  assert_int_equal(READ("to\x7fk", 16, &s), CBEV_EPARSE);
  assert_int_equal(read_text("to\0k", 4, 16, &s), CBEV_EPARSE);
  assert_int_equal(READ("", 16, &s), CBEV_EPARSE);
  assert_int_equal(READ("\n", 16, &s), CBEV_EPARSE);
  assert_int_equal(READ("tok\r", 16, &s), CBEV_EPARSE);
  assert_int_equal(READ("toke", 3, &s), CBEV_ETOOBIG);
  assert_null(s);
  assert_int_equal(cbev_read_secret_file("/nonexistent/tok", 16, &s), CBEV_EIO);
  assert_int_equal(errno, ENOENT);
  assert_int_equal(cbev_read_secret_file(NULL, 16, &s), CBEV_EINVAL);
  assert_int_equal(cbev_read_secret_file("/x", 0, &s), CBEV_EINVAL);
}

static void test_utf8_valid(void **state) {
  (void)state;
  assert_true(cbev_utf8_valid("", 0));
  assert_true(cbev_utf8_valid(NULL, 0));
  assert_false(cbev_utf8_valid(NULL, 1));
  assert_true(cbev_utf8_valid("a\0b", 3));
  assert_true(cbev_utf8_valid("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9));
  assert_false(cbev_utf8_valid("\xC3", 1));             /* cut by the end */
  assert_false(cbev_utf8_valid("\xE2\x82\xAC", 2));     /* cut by n */
  assert_false(cbev_utf8_valid("\xC0\xAF", 2));         /* overlong */
  assert_false(cbev_utf8_valid("\xE0\x80\xAF", 3));     /* overlong */
  assert_false(cbev_utf8_valid("\xED\xA0\x80", 3));     /* surrogate */
  assert_false(cbev_utf8_valid("\xF4\x90\x80\x80", 4)); /* above U+10FFFF */
  assert_false(cbev_utf8_valid("\x80", 1));
  assert_false(cbev_utf8_valid("\xF5\x80\x80\x80", 4));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rule),
      cmocka_unit_test(test_utf8_valid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

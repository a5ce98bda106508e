/* Unit tests of heartbeat.c: the file --healthcheck reads (fresh, stale,
 * disconnected, missing, garbage). Times are passed in, never slept. */
#define _XOPEN_SOURCE 700 /* nftw() for cleaning up the temp folders */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "heartbeat.h"
#include "tmpdir.h"

#define T0 ((time_t)1764331200) /* 2025-11-28T12:00:00Z */

static void check_says(const char *dir, time_t now, int want, const char *why_part) {
  char why[256] = "";
  int rc = cb2m_heartbeat_check(dir, now, CB2M_HEARTBEAT_MAX_AGE_S, why, sizeof why);
  if (rc != want || !strstr(why, why_part))
    fail_msg("at +%lld s: got %d '%s', want %d with '%s'", (long long)(now - T0), rc, why, want,
             why_part);
}

static void test_file_content(void **state) {
  const char *dir = *state;
  char path[512], want[128], *text = NULL;
  struct stat sb;

  assert_int_equal(cb2m_heartbeat_write(dir, 1, T0), 0);
  snprintf(path, sizeof path, "%s/heartbeat", dir);
  assert_int_equal(cb2m_read_file(path, 4096, &text, NULL), 0);
  snprintf(want, sizeof want, "{\"pid\":%ld,\"connected\":true,\"at\":%lld}\n", (long)getpid(),
           (long long)T0);
  assert_string_equal(text, want);
  free(text);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0644); /* no secret in it */
  assert_int_equal(cb2m_heartbeat_write(dir, 0, T0 + 5), 0);
  assert_int_equal(cb2m_read_file(path, 4096, &text, NULL), 0);
  assert_non_null(strstr(text, "\"connected\":false,\"at\":1764331205}"));
  free(text);
}

static void test_fresh_and_stale(void **state) {
  const char *dir = *state;

  assert_int_equal(cb2m_heartbeat_write(dir, 1, T0), 0);
  check_says(dir, T0, CBEV_OK, "healthy: heartbeat 0 s ago");
  check_says(dir, T0 + 59, CBEV_OK, "healthy");
  /* SPEC: fresh means under 60 s. */
  check_says(dir, T0 + 60, CBEV_EAGAIN, "unhealthy: last heartbeat 60 s ago (limit 60 s)");
  check_says(dir, T0 + 3600, CBEV_EAGAIN, "3600 s ago");
  /* A clock stepped back a little is not a dead bridge. */
  check_says(dir, T0 - 5, CBEV_OK, "healthy: heartbeat 0 s ago");
  /* A new write makes it fresh again. */
  assert_int_equal(cb2m_heartbeat_write(dir, 1, T0 + 3600), 0);
  check_says(dir, T0 + 3610, CBEV_OK, "10 s ago");
}

static void test_disconnected(void **state) {
  const char *dir = *state;

  assert_int_equal(cb2m_heartbeat_write(dir, 0, T0), 0);
  check_says(dir, T0 + 1, CBEV_EAGAIN, "not connected to the MQTT broker");
  /* Staleness is the stronger news when both hold. */
  check_says(dir, T0 + 61, CBEV_EAGAIN, "61 s ago");
}

static void test_missing_and_garbage(void **state) {
  const char *dir = *state;
  static const char *const bad[] = {
      "",
      "garbage",
      "{\"pid\":1,\"connected\":true}",
      "{\"pid\":1,\"connected\":\"yes\",\"at\":1764331200}",
      "{\"pid\":1,\"connected\":true,\"at\":\"1764331200\"}",
      "{\"pid\":1,\"connected\":true,\"at\":-5}",
      "{\"pid\":1,\"connected\":true,\"at\":1e300}",
      "[1764331200]",
  };
  char sub[512];

  check_says(dir, T0, CBEV_ENOTFOUND, "no heartbeat file");
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(cb2m_write_atomic(dir, "heartbeat", bad[i], strlen(bad[i]), 0644), 0);
    check_says(dir, T0, CBEV_EPARSE, "not a heartbeat");
  }
  /* A heartbeat that is a folder: unreadable, said so. */
  snprintf(sub, sizeof sub, "%s/other", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  snprintf(sub, sizeof sub, "%s/other/heartbeat", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  snprintf(sub, sizeof sub, "%s/other", dir);
  check_says(sub, T0, CBEV_EIO, "cannot read");
  /* No why buffer is fine; the verdict stays. */
  assert_int_equal(cb2m_heartbeat_check(dir, T0, 60, NULL, 0), CBEV_EPARSE);
  assert_int_equal(cb2m_heartbeat_check(NULL, T0, 60, NULL, 0), CBEV_EINVAL);
}

static void test_write_failure(void **state) {
  const char *dir = *state;
  char missing[512];

  snprintf(missing, sizeof missing, "%s/not-there", dir);
  errno = 0;
  assert_int_equal(cb2m_heartbeat_write(missing, 1, T0), CBEV_EIO);
  assert_int_equal(errno, ENOENT);
  check_says(missing, T0, CBEV_ENOTFOUND, "no heartbeat file");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_file_content, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_fresh_and_stale, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_disconnected, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_missing_and_garbage, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_failure, setup_dir, teardown_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

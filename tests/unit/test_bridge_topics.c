/* Unit tests of topics.c: broadcaster names, base topics, topic building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cursor.h"
#include "state.h"
#include "topics.h"

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static void test_name_valid(void **state) {
  char *n64 = repeat('a', 64), *n65 = repeat('a', 65);
  (void)state;

  assert_true(cb2m_name_valid("alice"));
  assert_true(cb2m_name_valid("A_b-9"));
  assert_true(cb2m_name_valid("x"));
  assert_true(cb2m_name_valid(n64));
  assert_true(cb2m_name_valid("bridge2"));
  assert_true(cb2m_name_valid("Bridge")); /* a different topic level */
  assert_false(cb2m_name_valid(n65));
  assert_false(cb2m_name_valid(""));
  assert_false(cb2m_name_valid(NULL));
  assert_false(cb2m_name_valid("bridge"));
  assert_false(cb2m_name_valid("a/b"));
  assert_false(cb2m_name_valid("a+"));
  assert_false(cb2m_name_valid("#"));
  assert_false(cb2m_name_valid("a b"));
  assert_false(cb2m_name_valid("a.b"));
  assert_false(cb2m_name_valid(".."));
  assert_false(cb2m_name_valid("$SYS"));
  assert_false(cb2m_name_valid("caf\xc3\xa9"));
  assert_false(cb2m_name_valid("tab\t"));
  free(n64);
  free(n65);
}

static void expect_base_bad(const char *base, const char *why_part) {
  char why[128] = "unchanged";
  assert_int_equal(cb2m_topic_base_check(base, why, sizeof why), CBEV_EINVAL);
  if (!strstr(why, why_part))
    fail_msg("base '%s': reason '%s' lacks '%s'", base ? base : "(null)", why, why_part);
}

/* The file names in state_dir: only valid names, never truncated. */
static void test_name_file(void **state) {
  char buf[16];

  (void)state;
  assert_int_equal(cb2m_name_file(buf, sizeof buf, "alice", ".cursor"), CBEV_OK);
  assert_string_equal(buf, "alice.cursor");
  assert_int_equal(cb2m_cursor_file_name(buf, sizeof buf, "bob"), CBEV_OK);
  assert_string_equal(buf, "bob.cursor");
  assert_int_equal(cb2m_state_file_name(buf, sizeof buf, "bob"), CBEV_OK);
  assert_string_equal(buf, "bob.state");
  assert_int_equal(cb2m_name_file(buf, sizeof buf, "../etc", ".state"), CBEV_EINVAL);
  assert_int_equal(cb2m_name_file(buf, sizeof buf, "bridge", ".state"), CBEV_EINVAL);
  assert_int_equal(cb2m_name_file(buf, sizeof buf, NULL, ".state"), CBEV_EINVAL);
  assert_int_equal(cb2m_name_file(buf, sizeof buf, "a_long_name_here", ".cursor"),
                   CBEV_ETOOBIG);
  assert_int_equal(errno, ENAMETOOLONG);
}

static void test_base_valid(void **state) {
  char why[128] = "";
  char *b256 = repeat('b', 256), *b257 = repeat('b', 257);
  (void)state;

  assert_int_equal(cb2m_topic_base_check("cb", why, sizeof why), CBEV_OK);
  assert_int_equal(cb2m_topic_base_check("home/cb", why, sizeof why), CBEV_OK);
  assert_int_equal(cb2m_topic_base_check("caf\xc3\xa9/\xf0\x9f\x98\x80", why, sizeof why), CBEV_OK);
  assert_int_equal(cb2m_topic_base_check(b256, why, sizeof why), CBEV_OK);
  assert_int_equal(cb2m_topic_base_check("homeassistant", NULL, 0), CBEV_OK);
  expect_base_bad(b257, "256");
  expect_base_bad("", "empty");
  expect_base_bad(NULL, "empty");
  expect_base_bad("cb/+", "wildcard");
  expect_base_bad("cb/#", "wildcard");
  expect_base_bad("c+b", "wildcard");
  expect_base_bad("$SYS", "$");
  expect_base_bad("/cb", "empty level");
  expect_base_bad("cb/", "empty level");
  expect_base_bad("a//b", "empty level");
  expect_base_bad("/", "empty level");
  expect_base_bad("cb\xff", "UTF-8");
  expect_base_bad("cb\xc0\xaf", "UTF-8");         /* overlong '/' */
  expect_base_bad("cb\xed\xa0\x80", "UTF-8");     /* surrogate */
  expect_base_bad("cb\xe2\x82", "UTF-8");         /* truncated sequence */
  expect_base_bad("cb\xf4\x90\x80\x80", "UTF-8"); /* above U+10FFFF */
  /* A NULL why is allowed for callers that only want the verdict. */
  assert_int_equal(cb2m_topic_base_check("a#", NULL, 0), CBEV_EINVAL);
  /* A short why is cut, never overrun. */
  memset(why, 'x', sizeof why);
  assert_int_equal(cb2m_topic_base_check("", why, 4), CBEV_EINVAL);
  assert_string_equal(why, "mus");
  assert_int_equal(why[4], 'x');
  free(b256);
  free(b257);
}

static void test_topic_build(void **state) {
  char buf[128];
  (void)state;

  assert_int_equal(cb2m_topic(buf, sizeof buf, "cb", "alice", "tip"), 0);
  assert_string_equal(buf, "cb/alice/tip");
  assert_int_equal(cb2m_topic(buf, sizeof buf, "cb", "alice", "state/subject"), 0);
  assert_string_equal(buf, "cb/alice/state/subject");
  assert_int_equal(cb2m_topic(buf, sizeof buf, "home/cb", "bridge", "status"), 0);
  assert_string_equal(buf, "home/cb/bridge/status");
  assert_int_equal(cb2m_topic(buf, sizeof buf, "cb", "alice", NULL), 0);
  assert_string_equal(buf, "cb/alice");
}

static void test_topic_no_truncation(void **state) {
  char buf[16];
  (void)state;

  /* "cb/alice/tip" is 12 bytes: 13 fit exactly, 12 do not. */
  assert_int_equal(cb2m_topic(buf, 13, "cb", "alice", "tip"), 0);
  assert_string_equal(buf, "cb/alice/tip");
  memset(buf, 'x', sizeof buf);
  assert_int_equal(cb2m_topic(buf, 12, "cb", "alice", "tip"), CBEV_ETOOBIG);
  assert_string_equal(buf, ""); /* nothing half-written is left to publish */
  assert_int_equal(cb2m_topic(buf, 0, "cb", "alice", "tip"), CBEV_EINVAL);
  assert_int_equal(cb2m_topic(NULL, 10, "cb", "alice", "tip"), CBEV_EINVAL);
}

static void test_topic_refuses_bad_parts(void **state) {
  char buf[64];
  (void)state;

  assert_int_equal(cb2m_topic(buf, sizeof buf, "cb", "+", "tip"), CBEV_EINVAL);
  assert_int_equal(cb2m_topic(buf, sizeof buf, "cb", "alice", "#"), CBEV_EINVAL);
  assert_int_equal(cb2m_topic(buf, sizeof buf, "c#", "alice", "tip"), CBEV_EINVAL);
  assert_int_equal(cb2m_topic(buf, sizeof buf, "cb", "", "tip"), CBEV_EINVAL);
  assert_int_equal(cb2m_topic(buf, sizeof buf, "cb", "alice", ""), CBEV_EINVAL);
  assert_int_equal(cb2m_topic(buf, sizeof buf, "", "alice", "tip"), CBEV_EINVAL);
  assert_int_equal(cb2m_topic(buf, sizeof buf, NULL, "alice", "tip"), CBEV_EINVAL);
  assert_int_equal(cb2m_topic(buf, sizeof buf, "cb", NULL, "tip"), CBEV_EINVAL);
}

static void test_topic_mqtt_cap(void **state) {
  /* "cb/a/" is 5 bytes; the rest fills up to MQTT's 65535 bytes. */
  size_t room = CB2M_TOPIC_MAX - 5;
  char *fits = repeat('l', room), *over = repeat('l', room + 1);
  char *buf = malloc(CB2M_TOPIC_MAX + 16);
  (void)state;

  assert_non_null(buf);
  assert_int_equal(cb2m_topic(buf, CB2M_TOPIC_MAX + 16, "cb", "a", fits), 0);
  assert_int_equal(strlen(buf), CB2M_TOPIC_MAX);
  assert_int_equal(cb2m_topic(buf, CB2M_TOPIC_MAX + 16, "cb", "a", over), CBEV_ETOOBIG);
  assert_string_equal(buf, "");
  free(fits);
  free(over);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_name_valid),
      cmocka_unit_test(test_name_file),
      cmocka_unit_test(test_base_valid),
      cmocka_unit_test(test_topic_build),
      cmocka_unit_test(test_topic_no_truncation),
      cmocka_unit_test(test_topic_refuses_bad_parts),
      cmocka_unit_test(test_topic_mqtt_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

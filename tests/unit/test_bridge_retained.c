/* Unit tests of retained.c: which retained topics a removed broadcaster
 * gets cleared, the record in state_dir (names only), a base topic that
 * moved, and a clear that could not be queued (the record is kept so the
 * next connect tries again). A fake publisher records the topics. */
#define _XOPEN_SOURCE 700 /* nftw() for cleaning up the temp folders */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbevents/error.h"
#include "fsutil.h"
#include "retained.h"
#include "tmpdir.h"

typedef struct fake {
  char topics[64][128];
  size_t n;
  int rc; /* what publish returns */
} fake;

static int fake_publish(void *ud, const char *topic, const void *payload, size_t len) {
  fake *f = ud;

  (void)payload;
  assert_int_equal(len, 0); /* clears only */
  if (f->n < 64)
    snprintf(f->topics[f->n++], sizeof f->topics[0], "%s", topic);
  return f->rc;
}

static int has(const fake *f, const char *topic) {
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->topics[i], topic) == 0)
      return 1;
  return 0;
}

static char *record(const char *dir) {
  char path[512], *text = NULL;

  snprintf(path, sizeof path, "%s/%s", dir, CB2M_RETAINED_RECORD_FILE);
  if (cb2m_read_file(path, 65536, &text, NULL) != 0)
    return NULL;
  return text;
}

static void test_removed_cleared_and_recorded(void **state) {
  const char *dir = *state;
  const char *both[] = {"alice", "bob"}, *alice[] = {"alice"};
  fake f = {0};
  char *text;

  /* The first start: nothing recorded, nothing cleared. */
  assert_int_equal(cb2m_retained_sync(dir, "cb", both, 2, fake_publish, &f, NULL), CBEV_OK);
  assert_int_equal(f.n, 0);
  text = record(dir);
  assert_non_null(text);
  assert_non_null(strstr(text, "\"bob\""));
  free(text);
  /* bob removed: each of his retained topics gets an empty message. */
  assert_int_equal(cb2m_retained_sync(dir, "cb", alice, 1, fake_publish, &f, NULL), CBEV_OK);
  assert_int_equal(f.n, 7);
  assert_true(has(&f, "cb/bob/availability") && has(&f, "cb/bob/state") &&
              has(&f, "cb/bob/state/broadcasting") && has(&f, "cb/bob/state/subject") &&
              has(&f, "cb/bob/state/session_tokens") && has(&f, "cb/bob/state/viewers") &&
              has(&f, "cb/bob/health"));
  for (size_t i = 0; i < f.n; i++)
    assert_null(strstr(f.topics[i], "alice"));
  text = record(dir);
  assert_null(strstr(text, "bob"));
  free(text);
  /* Once cleared, never again. */
  f.n = 0;
  assert_int_equal(cb2m_retained_sync(dir, "cb", alice, 1, fake_publish, &f, NULL), CBEV_OK);
  assert_int_equal(f.n, 0);
}

static void test_not_connected_keeps_the_record(void **state) {
  const char *dir = *state;
  const char *both[] = {"alice", "bob"}, *alice[] = {"alice"};
  fake f = {0};

  assert_int_equal(cb2m_retained_sync(dir, "cb", both, 2, fake_publish, &f, NULL), CBEV_OK);
  f.rc = CBEV_EAGAIN;
  assert_int_equal(cb2m_retained_sync(dir, "cb", alice, 1, fake_publish, &f, NULL), CBEV_EAGAIN);
  f.rc = CBEV_OK;
  f.n = 0;
  assert_int_equal(cb2m_retained_sync(dir, "cb", alice, 1, fake_publish, &f, NULL), CBEV_OK);
  assert_true(has(&f, "cb/bob/availability"));
}

static void test_base_topic_moved(void **state) {
  const char *dir = *state;
  const char *alice[] = {"alice"};
  fake f = {0};

  assert_int_equal(cb2m_retained_sync(dir, "cb", alice, 1, fake_publish, &f, NULL), CBEV_OK);
  assert_int_equal(cb2m_retained_sync(dir, "home/cb", alice, 1, fake_publish, &f, NULL), CBEV_OK);
  assert_true(has(&f, "cb/alice/availability") && has(&f, "cb/alice/state"));
  assert_true(has(&f, "cb/bridge/status") && has(&f, "cb/bridge/info") &&
              has(&f, "cb/bridge/health"));
  for (size_t i = 0; i < f.n; i++)
    assert_null(strstr(f.topics[i], "home/"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_removed_cleared_and_recorded, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_not_connected_keeps_the_record, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_base_topic_moved, setup_dir, teardown_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of writer.c: batches of files written by the thread into a
 * real folder, one batch at a time, failures reported with the file and
 * errno, and nothing handed over lost at free. */
#define _XOPEN_SOURCE 700 /* nftw() for cleaning up the temp folders */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbevents/error.h"
#include "tmpdir.h"
#include "writer.h"

static char *file_text(const char *dir, const char *name) {
  char path[512], *buf = calloc(1, 256);
  FILE *f;

  snprintf(path, sizeof path, "%s/%s", dir, name);
  f = fopen(path, "r");
  if (!f) {
    free(buf);
    return NULL;
  }
  if (fread(buf, 1, 255, f) == 0)
    buf[0] = '\0';
  fclose(f);
  return buf;
}

static void add(cb2m_writer *w, const char *name, const char *text, int want) {
  assert_int_equal(cb2m_writer_add(w, name, text, strlen(text)), want);
}

static void test_batch_written_in_order(void **state) {
  const char *dir = *state;
  cb2m_writer *w;
  cb2m_writer_result res;
  char *t;

  assert_int_equal(cb2m_writer_new(dir, &w), CBEV_OK);
  assert_int_equal(cb2m_writer_collect(w, &res), 0); /* nothing finished yet */
  add(w, "alice.cursor", "first\n", CBEV_OK);
  add(w, "bob.state", "{}\n", CBEV_OK);
  add(w, "alice.cursor", "second\n", CBEV_OK); /* the later content wins */
  cb2m_writer_submit(w);
  cb2m_writer_wait(w);
  assert_false(cb2m_writer_busy(w));
  assert_int_equal(cb2m_writer_collect(w, &res), 1);
  assert_false(res.failed);
  assert_int_equal(res.written, 3);
  assert_int_equal(cb2m_writer_collect(w, &res), 0); /* taken once */
  t = file_text(dir, "alice.cursor");
  assert_string_equal(t, "second\n");
  free(t);
  t = file_text(dir, "bob.state");
  assert_string_equal(t, "{}\n");
  free(t);
  cb2m_writer_submit(w); /* an empty batch: nothing runs */
  assert_false(cb2m_writer_busy(w));
  assert_int_equal(cb2m_writer_collect(w, &res), 0);
  cb2m_writer_free(w);
}

/* While a batch is written, add refuses (the loop keeps its dues). A
 * slow disk is a large batch here: 200 files with two fsyncs each take
 * milliseconds, the add right after the submit microseconds; tried up to
 * 20 times, the refusal must be seen. */
static void test_busy_refuses(void **state) {
  const char *dir = *state;
  cb2m_writer *w;
  cb2m_writer_result res;
  char name[32];
  int refused = 0;

  assert_int_equal(cb2m_writer_new(dir, &w), CBEV_OK);
  for (int round = 0; round < 20 && !refused; round++) {
    int rc;
    for (int i = 0; i < 200; i++) {
      snprintf(name, sizeof name, "f%03d.state", i);
      add(w, name, "{\"n\":1}\n", CBEV_OK);
    }
    cb2m_writer_submit(w);
    rc = cb2m_writer_add(w, "late.state", "x", 1);
    /* The batch may have finished between the two calls: then it is taken. */
    assert_true(rc == CBEV_EAGAIN || rc == CBEV_OK);
    refused = rc == CBEV_EAGAIN;
    cb2m_writer_wait(w);
    assert_int_equal(cb2m_writer_collect(w, &res), 1);
    assert_int_equal(res.written, 200);
    if (!refused)
      cb2m_writer_submit(w); /* the taken late.state, alone */
    cb2m_writer_wait(w);
    cb2m_writer_collect(w, &res);
  }
  assert_true(refused);
  cb2m_writer_free(w);
}

static void test_failure_names_the_file(void **state) {
  char dir[512];
  cb2m_writer *w;
  cb2m_writer_result res;

  snprintf(dir, sizeof dir, "%s/gone", (const char *)*state);
  assert_int_equal(cb2m_writer_new(dir, &w), CBEV_OK);
  add(w, "alice.cursor", "x\n", CBEV_OK);
  add(w, "bob.cursor", "y\n", CBEV_OK);
  cb2m_writer_submit(w);
  cb2m_writer_wait(w);
  assert_int_equal(cb2m_writer_collect(w, &res), 1);
  assert_true(res.failed);
  assert_int_equal(res.err, ENOENT);
  assert_string_equal(res.file, "alice.cursor"); /* the first failure */
  assert_int_equal(res.written, 0);
  /* The folder appears: the next batch succeeds. */
  assert_int_equal(mkdir(dir, 0700), 0);
  add(w, "alice.cursor", "x\n", CBEV_OK);
  cb2m_writer_submit(w);
  cb2m_writer_wait(w);
  assert_int_equal(cb2m_writer_collect(w, &res), 1);
  assert_false(res.failed);
  cb2m_writer_free(w);
}

/* Free writes the batch being written to the end (no wait before it),
 * and drops a batch still being built (its owner, the loop, saves
 * synchronously at shutdown). */
static void test_free_finishes_the_running_batch(void **state) {
  const char *dir = *state;
  cb2m_writer *w;
  char *t;

  assert_int_equal(cb2m_writer_new(dir, &w), CBEV_OK);
  add(w, "alice.cursor", "kept\n", CBEV_OK);
  cb2m_writer_submit(w);
  cb2m_writer_free(w);
  t = file_text(dir, "alice.cursor");
  assert_string_equal(t, "kept\n");
  free(t);

  assert_int_equal(cb2m_writer_new(dir, &w), CBEV_OK);
  add(w, "bob.cursor", "dropped\n", CBEV_OK);
  cb2m_writer_free(w);
  assert_null(file_text(dir, "bob.cursor"));
  cb2m_writer_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_batch_written_in_order, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_busy_refuses, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_failure_names_the_file, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_free_finishes_the_running_batch, setup_dir,
                                      teardown_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

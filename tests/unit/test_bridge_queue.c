/* Unit tests of the delivery queue: order, acks, resend, cursor rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue.h"

static void push(cb2m_queue *q, cb2m_fetch *f, const char *id, int publish, int last) {
  char *topic = publish ? strdup("cb/alice/tip") : NULL;
  char *payload = strdup("{}");
  assert_int_equal(cb2m_queue_push(q, strdup(id), topic, payload, 2, f, last), 0);
}

static void expect_pop(cb2m_queue *q, size_t n, const char *url, const char *id) {
  char *u = NULL, *i = NULL;
  assert_int_equal(cb2m_queue_pop_done(q, &u, &i), n);
  if (n) {
    assert_string_equal(u, url);
    assert_string_equal(i, id);
  }
  free(u);
  free(i);
}

static void test_in_order_and_cursor_rule(void **state) {
  cb2m_queue q;
  cb2m_fetch *f1 = cb2m_fetch_new("http://h/e/a/t/?i=0", "http://h/e/a/t/?i=3");
  cb2m_fetch *f2 = cb2m_fetch_new("http://h/e/a/t/?i=3", NULL);
  cb2m_item *it;
  (void)state;

  assert_int_equal(cb2m_queue_init(&q, 4), 0);
  push(&q, f1, "1-0", 1, 0);
  push(&q, f1, "2-0", 0, 0); /* filtered out: never published */
  push(&q, f1, "3-0", 1, 1);
  push(&q, f2, "4-0", 1, 1);
  cb2m_fetch_unref(f1);
  cb2m_fetch_unref(f2);
  assert_true(cb2m_queue_full(&q));

  int mid = 10;
  while ((it = cb2m_queue_next_unsent(&q)) != NULL)
    cb2m_queue_mark_sent(&q, it->topic ? mid++ : -1);
  /* Nothing acked: nothing leaves. */
  expect_pop(&q, 0, NULL, NULL);
  /* Ack of the second publish alone does not pass the first. */
  assert_int_equal(cb2m_queue_ack(&q, 11), 1);
  expect_pop(&q, 0, NULL, NULL);
  /* First acked: items 1, 2 (filtered) and 3 leave; 3 ends its batch, so
   * the cursor is the batch's nextUrl. */
  assert_int_equal(cb2m_queue_ack(&q, 10), 1);
  expect_pop(&q, 3, "http://h/e/a/t/?i=3", "3-0");
  assert_int_equal(cb2m_queue_ack(&q, 99), 0);
  assert_int_equal(cb2m_queue_ack(&q, 12), 1);
  /* A batch without nextUrl resumes from its own request URL. */
  expect_pop(&q, 1, "http://h/e/a/t/?i=3", "4-0");
  assert_int_equal(q.count, 0);
  cb2m_queue_cleanup(&q);
}

static void test_mid_batch_prefix_resumes_from_request_url(void **state) {
  cb2m_queue q;
  cb2m_fetch *f = cb2m_fetch_new("http://h/e/a/t/?i=9", "http://h/e/a/t/?i=12");
  (void)state;

  cb2m_queue_init(&q, 100);
  push(&q, f, "10-0", 1, 0);
  push(&q, f, "11-0", 1, 0);
  push(&q, f, "12-0", 1, 1);
  cb2m_fetch_unref(f);
  cb2m_queue_mark_sent(&q, 1);
  cb2m_queue_mark_sent(&q, 2);
  cb2m_queue_ack(&q, 1);
  expect_pop(&q, 1, "http://h/e/a/t/?i=9", "10-0");
  cb2m_queue_cleanup(&q); /* frees items and the fetch still held */
}

static void test_unsend_all_after_disconnect(void **state) {
  cb2m_queue q;
  cb2m_fetch *f = cb2m_fetch_new("u0", "u1");
  cb2m_item *it;
  (void)state;

  cb2m_queue_init(&q, 100);
  for (int i = 0; i < 5; i++) {
    char id[16];
    snprintf(id, sizeof id, "%d-0", i + 1);
    push(&q, f, id, i != 1, i == 4);
  }
  cb2m_fetch_unref(f);
  int mid = 1;
  while ((it = cb2m_queue_next_unsent(&q)) != NULL)
    cb2m_queue_mark_sent(&q, it->topic ? mid++ : -1);
  cb2m_queue_ack(&q, 1); /* id 1 */
  cb2m_queue_ack(&q, 3); /* id 4, out of order */
  expect_pop(&q, 2, "u0", "2-0"); /* 1 acked, 2 filtered */
  cb2m_queue_unsend_all(&q);
  /* 3, 4 and 5 go out again, in id order, 4 included to keep order. */
  const char *want[] = {"3-0", "4-0", "5-0"};
  for (int i = 0; i < 3; i++) {
    it = cb2m_queue_next_unsent(&q);
    assert_non_null(it);
    assert_string_equal(it->id, want[i]);
    assert_int_equal(it->state, CB2M_ITEM_QUEUED);
    cb2m_queue_mark_sent(&q, 100 + i);
  }
  assert_null(cb2m_queue_next_unsent(&q));
  for (int i = 0; i < 3; i++)
    assert_int_equal(cb2m_queue_ack(&q, 100 + i), 1);
  expect_pop(&q, 3, "u1", "5-0");
  cb2m_queue_cleanup(&q);
}

static void test_growth_beyond_max_keeps_everything(void **state) {
  cb2m_queue q;
  cb2m_fetch *f = cb2m_fetch_new("a", "b");
  (void)state;

  assert_int_equal(cb2m_queue_init(&q, 0), -1);
  cb2m_queue_init(&q, 10);
  for (int i = 0; i < 1000; i++) {
    char id[16];
    snprintf(id, sizeof id, "%d-0", i + 1);
    push(&q, f, id, 1, i == 999);
    /* Interleave sends and pops so the ring wraps while growing. */
    if (i % 3 == 0) {
      cb2m_item *it = cb2m_queue_next_unsent(&q);
      cb2m_queue_mark_sent(&q, i + 1);
      cb2m_queue_ack(&q, i + 1);
      (void)it;
      char *u = NULL, *l = NULL;
      cb2m_queue_pop_done(&q, &u, &l);
      free(u);
      free(l);
    }
  }
  cb2m_fetch_unref(f);
  assert_true(cb2m_queue_full(&q));
  /* The survivors are still in id order. */
  uint64_t prev = 0;
  for (size_t i = 0; i < q.count; i++) {
    uint64_t v = strtoull(q.ring[(q.head + i) % q.cap].id, NULL, 10);
    assert_true(v > prev);
    prev = v;
  }
  assert_int_equal(q.count, 1000 - 334);
  cb2m_queue_cleanup(&q);
}

/* An id that is not <ms>-<seq> is delivered but never becomes the last
 * delivered id (SPEC 3): the newest event id of the prefix does, or none. */
static void test_odd_id_never_becomes_last_id(void **state) {
  cb2m_queue q;
  cb2m_fetch *f = cb2m_fetch_new("http://h/e/a/t/", "http://h/e/a/t/?i=5-0");
  cb2m_item *it;
  char *u = NULL, *id = (char *)"x";
  int mid = 1;
  (void)state;

  assert_int_equal(cb2m_queue_init(&q, 10), 0);
  push(&q, f, "weird", 1, 0);
  push(&q, f, "4-0", 1, 0);
  push(&q, f, "also-odd", 1, 0);
  push(&q, f, "", 1, 1);
  while ((it = cb2m_queue_next_unsent(&q)) != NULL)
    cb2m_queue_mark_sent(&q, mid++);
  assert_int_equal(cb2m_queue_ack(&q, 1), 1);
  /* Only the odd one: delivered, no id to save. */
  assert_int_equal(cb2m_queue_pop_done(&q, &u, &id), 1);
  assert_string_equal(u, "http://h/e/a/t/");
  assert_null(id);
  free(u);
  assert_int_equal(cb2m_queue_ack(&q, 2), 1);
  assert_int_equal(cb2m_queue_ack(&q, 3), 1);
  assert_int_equal(cb2m_queue_ack(&q, 4), 1);
  /* "4-0" then two odd ones: the cursor's id stays "4-0". */
  assert_int_equal(cb2m_queue_pop_done(&q, &u, &id), 3);
  assert_string_equal(u, "http://h/e/a/t/?i=5-0");
  assert_string_equal(id, "4-0");
  free(u);
  free(id);
  cb2m_fetch_unref(f);
  cb2m_queue_cleanup(&q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_in_order_and_cursor_rule),
      cmocka_unit_test(test_odd_id_never_becomes_last_id),
      cmocka_unit_test(test_mid_batch_prefix_resumes_from_request_url),
      cmocka_unit_test(test_unsend_all_after_disconnect),
      cmocka_unit_test(test_growth_beyond_max_keeps_everything),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of the delivery queue: order, acks, resend, cursor rule,
 * refused publishes (hold, backoff on a fake clock), and acks that find
 * their item however often libmosquitto's message ids wrapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "midmap.h"
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

  uint64_t seq[4];
  for (int k = 0; (it = cb2m_queue_next_unsent(&q, 0)) != NULL; k++)
    seq[k] = cb2m_queue_mark_sent(&q);
  assert_int_equal(seq[1], 0); /* filtered: done at once, no seq to ack */
  /* Nothing acked: nothing leaves. */
  expect_pop(&q, 0, NULL, NULL);
  /* Ack of the second publish alone does not pass the first. */
  assert_int_equal(cb2m_queue_ack(&q, seq[2]), CBEV_OK);
  assert_int_equal(cb2m_queue_ack(&q, seq[2]), CBEV_ENOTFOUND); /* once only */
  expect_pop(&q, 0, NULL, NULL);
  /* First acked: items 1, 2 (filtered) and 3 leave; 3 ends its batch, so
   * the cursor is the batch's nextUrl. */
  assert_int_equal(cb2m_queue_ack(&q, seq[0]), CBEV_OK);
  expect_pop(&q, 3, "http://h/e/a/t/?i=3", "3-0");
  assert_int_equal(cb2m_queue_ack(&q, 99), CBEV_ENOTFOUND);
  assert_int_equal(cb2m_queue_ack(&q, seq[3]), CBEV_OK);
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
  uint64_t s1 = cb2m_queue_mark_sent(&q);
  cb2m_queue_mark_sent(&q);
  cb2m_queue_ack(&q, s1);
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
  uint64_t seq[5];
  for (int k = 0; (it = cb2m_queue_next_unsent(&q, 0)) != NULL; k++)
    seq[k] = cb2m_queue_mark_sent(&q);
  cb2m_queue_ack(&q, seq[0]); /* id 1 */
  cb2m_queue_ack(&q, seq[3]); /* id 4, out of order */
  expect_pop(&q, 2, "u0", "2-0"); /* 1 acked, 2 filtered */
  cb2m_queue_unsend_all(&q);
  /* The acks of the lost connection find nothing. */
  assert_int_equal(cb2m_queue_ack(&q, seq[2]), CBEV_ENOTFOUND);
  /* 3, 4 and 5 go out again, in id order, 4 included to keep order. */
  const char *want[] = {"3-0", "4-0", "5-0"};
  for (int i = 0; i < 3; i++) {
    it = cb2m_queue_next_unsent(&q, 0);
    assert_non_null(it);
    assert_string_equal(it->id, want[i]);
    assert_int_equal(it->state, CB2M_ITEM_QUEUED);
    seq[i] = cb2m_queue_mark_sent(&q);
  }
  assert_null(cb2m_queue_next_unsent(&q, 0));
  for (int i = 0; i < 3; i++)
    assert_int_equal(cb2m_queue_ack(&q, seq[i]), CBEV_OK);
  expect_pop(&q, 3, "u1", "5-0");
  cb2m_queue_cleanup(&q);
}

static void test_growth_beyond_max_keeps_everything(void **state) {
  cb2m_queue q;
  cb2m_fetch *f = cb2m_fetch_new("a", "b");
  (void)state;

  assert_int_equal(cb2m_queue_init(&q, 0), CBEV_EINVAL);
  cb2m_queue_init(&q, 10);
  for (int i = 0; i < 1000; i++) {
    char id[16];
    snprintf(id, sizeof id, "%d-0", i + 1);
    push(&q, f, id, 1, i == 999);
    /* Interleave sends and pops so the ring wraps while growing. */
    if (i % 3 == 0) {
      assert_non_null(cb2m_queue_next_unsent(&q, 0));
      cb2m_queue_ack(&q, cb2m_queue_mark_sent(&q));
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
  uint64_t seq[4];
  size_t k = 0;
  (void)state;

  assert_int_equal(cb2m_queue_init(&q, 10), 0);
  push(&q, f, "weird", 1, 0);
  push(&q, f, "4-0", 1, 0);
  push(&q, f, "also-odd", 1, 0);
  push(&q, f, "", 1, 1);
  while ((it = cb2m_queue_next_unsent(&q, 0)) != NULL)
    seq[k++] = cb2m_queue_mark_sent(&q);
  assert_int_equal(k, 4);
  assert_int_equal(cb2m_queue_ack(&q, seq[0]), CBEV_OK);
  /* Only the odd one: delivered, no id to save. */
  assert_int_equal(cb2m_queue_pop_done(&q, &u, &id), 1);
  assert_string_equal(u, "http://h/e/a/t/");
  assert_null(id);
  free(u);
  assert_int_equal(cb2m_queue_ack(&q, seq[1]), CBEV_OK);
  assert_int_equal(cb2m_queue_ack(&q, seq[2]), CBEV_OK);
  assert_int_equal(cb2m_queue_ack(&q, seq[3]), CBEV_OK);
  /* "4-0" then two odd ones: the cursor's id stays "4-0". */
  assert_int_equal(cb2m_queue_pop_done(&q, &u, &id), 3);
  assert_string_equal(u, "http://h/e/a/t/?i=5-0");
  assert_string_equal(id, "4-0");
  free(u);
  free(id);
  cb2m_fetch_unref(f);
  cb2m_queue_cleanup(&q);
}

static void test_refused_item_held_with_backoff(void **state) {
  cb2m_queue q;
  cb2m_fetch *f = cb2m_fetch_new("u0", "u1");
  uint64_t seq[4], now = 5000;
  cb2m_item *it;
  (void)state;

  cb2m_queue_init(&q, 100);
  for (int i = 0; i < 4; i++) {
    char id[16];
    snprintf(id, sizeof id, "%d-0", i + 1);
    push(&q, f, id, 1, i == 3);
  }
  cb2m_fetch_unref(f);
  for (int k = 0; k < 4; k++) {
    assert_non_null(cb2m_queue_next_unsent(&q, now));
    seq[k] = cb2m_queue_mark_sent(&q);
  }
  assert_int_equal(cb2m_queue_retry_ms(&q), UINT64_MAX);
  /* 1 acked, 2 refused while 3 and 4 are in flight; 3 is even acked. */
  assert_int_equal(cb2m_queue_ack(&q, seq[0]), CBEV_OK);
  assert_int_equal(cb2m_queue_ack(&q, seq[2]), CBEV_OK);
  it = cb2m_queue_refuse(&q, seq[1], now);
  assert_non_null(it);
  assert_string_equal(it->id, "2-0");
  /* 2, 3 and 4 are queued again; 4's late refusal and ack find nothing. */
  assert_null(cb2m_queue_refuse(&q, seq[3], now));
  assert_int_equal(cb2m_queue_ack(&q, seq[3]), CBEV_ENOTFOUND);
  expect_pop(&q, 1, "u0", "1-0");
  /* Held: nothing before the retry time, then only the refused item. */
  assert_int_equal(cb2m_queue_retry_ms(&q), now + 1000);
  assert_null(cb2m_queue_next_unsent(&q, now + 999));
  /* The wait doubles with each refusal in a row, up to 60 s. */
  uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
  for (size_t r = 0; r < sizeof want / sizeof want[0]; r++) {
    assert_int_equal(cb2m_queue_retry_delay_ms((unsigned)r + 1), want[r]);
    if (r == 0)
      continue;
    now = cb2m_queue_retry_ms(&q);
    it = cb2m_queue_next_unsent(&q, now);
    assert_non_null(it);
    assert_string_equal(it->id, "2-0");
    seq[1] = cb2m_queue_mark_sent(&q);
    /* While it is in flight, the events behind it wait. */
    assert_null(cb2m_queue_next_unsent(&q, now + 100000));
    assert_int_equal(cb2m_queue_retry_ms(&q), UINT64_MAX);
    assert_non_null(cb2m_queue_refuse(&q, seq[1], now));
    assert_int_equal(q.refusals, r + 1);
    assert_int_equal(cb2m_queue_retry_ms(&q), now + want[r]);
  }
  /* A reconnect keeps the hold: the refused item goes out first. */
  now = cb2m_queue_retry_ms(&q);
  assert_non_null(cb2m_queue_next_unsent(&q, now));
  seq[1] = cb2m_queue_mark_sent(&q);
  cb2m_queue_unsend_all(&q);
  it = cb2m_queue_next_unsent(&q, now);
  assert_non_null(it);
  assert_string_equal(it->id, "2-0");
  seq[1] = cb2m_queue_mark_sent(&q);
  /* Accepted at last: the hold ends, the rest follows in order. */
  assert_int_equal(cb2m_queue_ack(&q, seq[1]), CBEV_OK);
  assert_int_equal(q.held_seq, 0);
  assert_int_equal(q.refusals, 0);
  for (int k = 2; k < 4; k++) {
    it = cb2m_queue_next_unsent(&q, now);
    assert_non_null(it);
    assert_int_equal(strtol(it->id, NULL, 10), k + 1);
    assert_int_equal(cb2m_queue_ack(&q, cb2m_queue_mark_sent(&q)), CBEV_OK);
  }
  expect_pop(&q, 3, "u1", "4-0");
  /* A new refusal starts at 1 s again. */
  cb2m_queue_cleanup(&q);
}

static void test_midmap(void **state) {
  cb2m_midmap m;
  uint32_t owner;
  uint64_t seq;
  (void)state;

  cb2m_midmap_clear(&m);
  assert_int_equal(cb2m_midmap_put(&m, 0, 1, 1), CBEV_EINVAL);
  assert_int_equal(cb2m_midmap_put(&m, 65536, 1, 1), CBEV_EINVAL);
  assert_int_equal(cb2m_midmap_take(&m, 7, &owner, &seq), 0);
  /* Many ids whose homes collide, taken in another order than put. */
  for (int mid = 1; mid <= 600; mid++)
    assert_int_equal(cb2m_midmap_put(&m, mid, (uint32_t)mid % 3, (uint64_t)mid * 10), CBEV_OK);
  assert_int_equal(m.count, 600);
  for (int k = 0; k < 600; k++) {
    int mid = 1 + (k * 7) % 600; /* 7 and 600 are coprime */
    assert_int_equal(cb2m_midmap_take(&m, mid, &owner, &seq), 1);
    assert_int_equal(owner, (uint32_t)mid % 3);
    assert_int_equal(seq, (uint64_t)mid * 10);
    assert_int_equal(cb2m_midmap_take(&m, mid, &owner, &seq), 0);
  }
  assert_int_equal(m.count, 0);
  /* The same id twice (wrapped while one stayed unacked): oldest first. */
  assert_int_equal(cb2m_midmap_put(&m, 9, 0, 100), CBEV_OK);
  assert_int_equal(cb2m_midmap_put(&m, 9, 1, 200), CBEV_OK);
  assert_int_equal(cb2m_midmap_take(&m, 9, &owner, &seq), 1);
  assert_int_equal(seq, 100);
  assert_int_equal(cb2m_midmap_take(&m, 9, &owner, &seq), 1);
  assert_int_equal(seq, 200);
  /* Full: refused, never overwritten. */
  for (int mid = 1; m.count < CB2M_MIDMAP_SLOTS - 1; mid++)
    assert_int_equal(cb2m_midmap_put(&m, mid, 0, 1), CBEV_OK);
  assert_int_equal(cb2m_midmap_put(&m, 1, 0, 1), CBEV_ETOOBIG);
}

/* libmosquitto's message ids: 1..65535, then 1 again. */
static int next_mid(int *last) {
  if (++*last > 65535)
    *last = 1;
  return *last;
}

/* Two broadcasters, the way bridge.c drives them: round robin publishing
 * within an in-flight budget, ids from a libmosquitto-like counter mapped
 * by the midmap, a broker that acks in order and refuses alice's tips
 * until its ACL changes. Over three wraps of the id space, every item
 * leaves its queue only after the broker accepted THAT item: a refused
 * tip is never popped by an ack of a later publish that reused its id. */
static void test_acks_survive_id_wrap(void **state) {
  enum { N = 2, EVENTS = 70000, INFLIGHT = 256 };
  static const char *const names[N] = {"alice", "bob"};
  cb2m_queue q[N];
  cb2m_midmap map;
  int last_mid = 0, fifo_mid[INFLIGHT], fifo_n = 0, acl_open = 0;
  unsigned char *accepted[N]; /* per event number: the broker said yes */
  size_t next = 0, popped[N] = {0, 0}, publishes = 0, refusals = 0;
  uint64_t now = 1;
  (void)state;

  cb2m_midmap_clear(&map);
  for (int b = 0; b < N; b++) {
    cb2m_fetch *f = cb2m_fetch_new("u0", "u1");
    cb2m_queue_init(&q[b], EVENTS);
    accepted[b] = calloc(EVENTS + 1, 1);
    assert_non_null(accepted[b]);
    for (int e = 1; e <= EVENTS; e++) {
      char id[16], topic[32];
      /* alice's event 1 and every 20000th are tips, which the ACL denies. */
      int tip = b == 0 && (e == 1 || e % 20000 == 0);
      snprintf(id, sizeof id, "%d-0", e);
      snprintf(topic, sizeof topic, "cb/%s/%s", names[b], tip ? "tip" : "follow");
      assert_int_equal(cb2m_queue_push(&q[b], strdup(id), strdup(topic), strdup("{}"), 2, f,
                                       e == EVENTS), 0);
    }
    cb2m_fetch_unref(f);
  }
  while (popped[0] < EVENTS || popped[1] < EVENTS) {
    /* Publish: one per broadcaster in turn while the budget allows. */
    for (size_t idle = 0; idle < N && map.count < INFLIGHT;) {
      cb2m_queue *qq = &q[next];
      if (cb2m_queue_next_unsent(qq, now)) {
        int mid = next_mid(&last_mid);
        uint64_t seq = cb2m_queue_mark_sent(qq);
        assert_int_equal(cb2m_midmap_put(&map, mid, (uint32_t)next, seq), CBEV_OK);
        fifo_mid[(fifo_n++) % INFLIGHT] = mid; /* fifo_n - map.count is the head */
        publishes++;
        idle = 0;
      } else {
        idle++;
      }
      next = (next + 1) % N;
    }
    /* The broker answers every message in flight, in order. */
    for (size_t k = map.count; k > 0; k--) {
      int mid = fifo_mid[(size_t)(fifo_n - (int)k) % INFLIGHT];
      uint32_t owner;
      uint64_t seq;
      assert_int_equal(cb2m_midmap_take(&map, mid, &owner, &seq), 1);
      /* The broker knows the item from its topic and id (a refusal may
       * have taken it back meanwhile: the broker still has its copy). */
      cb2m_item *it = NULL;
      size_t lo = 0, hi = q[owner].count; /* items are in seq order */
      while (lo < hi) {
        size_t mid_i = lo + (hi - lo) / 2;
        cb2m_item *x = &q[owner].ring[(q[owner].head + mid_i) % q[owner].cap];
        if (x->seq == seq) {
          it = x;
          break;
        }
        if (x->seq < seq)
          lo = mid_i + 1;
        else
          hi = mid_i;
      }
      assert_non_null(it);
      if (strstr(it->topic, "/tip") && !acl_open) {
        refusals++;
        cb2m_queue_refuse(&q[owner], seq, now);
      } else {
        accepted[owner][strtol(it->id, NULL, 10)] = 1;
        cb2m_queue_ack(&q[owner], seq);
      }
    }
    /* Whatever leaves a queue must have been accepted. */
    for (int b = 0; b < N; b++) {
      for (size_t i = 0; i < q[b].done; i++) {
        const cb2m_item *x = &q[b].ring[(q[b].head + i) % q[b].cap];
        if (x->topic && !accepted[b][strtol(x->id, NULL, 10)])
          fail_msg("%s: event %s popped as done but never accepted", names[b], x->id);
      }
      char *u = NULL, *l = NULL;
      size_t n = cb2m_queue_pop_done(&q[b], &u, &l);
      if (n && n != (size_t)-1)
        popped[b] += n;
      free(u);
      free(l);
    }
    /* Time passes; after three wraps of the ids the ACL is fixed. */
    now += 1000;
    if (publishes > 3u * 65535u)
      acl_open = 1;
    /* While alice is held, bob keeps flowing. */
    if (!acl_open)
      assert_true(popped[1] > 0 || publishes < INFLIGHT * 2);
    assert_true(publishes < 20u * EVENTS);
  }
  assert_true(refusals > 1);
  assert_true(last_mid > 0 && publishes > 3u * 65535u);
  for (int b = 0; b < N; b++) {
    for (int e = 1; e <= EVENTS; e++)
      if (!accepted[b][e])
        fail_msg("%s: event %d-0 never accepted", names[b], e);
    cb2m_queue_cleanup(&q[b]);
    free(accepted[b]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_in_order_and_cursor_rule),
      cmocka_unit_test(test_odd_id_never_becomes_last_id),
      cmocka_unit_test(test_mid_batch_prefix_resumes_from_request_url),
      cmocka_unit_test(test_unsend_all_after_disconnect),
      cmocka_unit_test(test_growth_beyond_max_keeps_everything),
      cmocka_unit_test(test_refused_item_held_with_backoff),
      cmocka_unit_test(test_midmap),
      cmocka_unit_test(test_acks_survive_id_wrap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

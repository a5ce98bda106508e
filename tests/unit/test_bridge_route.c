/* Unit tests of route.c: which topic level an event gets (unknown methods
 * included), and the queue item for published and filtered events. */
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
#include "cbevents/event.h"
#include "cbevents/normalize.h"
#include "route.h"

#define ALL_TYPES ((1u << (CBEV_EVENT_UNKNOWN + 1)) - 1u)

/* A batch of one event with the given method (a JSON string literal's
 * content, escapes allowed). */
static cbev_batch *one(const char *method_json) {
  char body[1024];
  cbev_batch *b = NULL;
  int n = snprintf(body, sizeof body,
                   "{\"events\":[{\"method\":\"%s\",\"id\":\"1-0\",\"object\":"
                   "{\"broadcaster\":\"alice\",\"x\":1}}],\"nextUrl\":null}",
                   method_json);
  assert_true(n > 0 && (size_t)n < sizeof body);
  assert_int_equal(cbev_parse_response(body, (size_t)n, NULL, NULL, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 1);
  return b;
}

static void expect_level(const char *method_json, const char *want) {
  cbev_batch *b = one(method_json);
  char level[CB2M_ROUTE_LEVEL_MAX + 1];

  assert_int_equal(cb2m_route_level(cbev_batch_get(b, 0), level, sizeof level), CBEV_OK);
  if (strcmp(level, want) != 0)
    fail_msg("method \"%s\": level %s, want %s", method_json, level, want);
  cbev_batch_free(b);
}

static void test_level_valid(void **state) {
  char long65[66];
  (void)state;

  memset(long65, 'a', 65);
  long65[65] = '\0';
  assert_true(cb2m_route_level_valid("tip"));
  assert_true(cb2m_route_level_valid("a_1"));
  assert_true(cb2m_route_level_valid(long65 + 1)); /* 64 bytes */
  assert_false(cb2m_route_level_valid(long65));
  assert_false(cb2m_route_level_valid(""));
  assert_false(cb2m_route_level_valid(NULL));
  assert_false(cb2m_route_level_valid("A"));
  assert_false(cb2m_route_level_valid("a/b"));
  assert_false(cb2m_route_level_valid("+"));
  assert_false(cb2m_route_level_valid("#"));
  assert_false(cb2m_route_level_valid("a b"));
  assert_false(cb2m_route_level_valid("\xc3\xa9"));
}

static void test_levels(void **state) {
  char m300[301], m64[65], m65[66];
  (void)state;

  memset(m300, 'x', 300);
  m300[300] = '\0';
  memset(m64, 'x', 64);
  m64[64] = '\0';
  memcpy(m65, m300, 65);
  m65[65] = '\0';
  /* Known methods: their type names. */
  expect_level("tip", "tip");
  expect_level("roomSubjectChange", "room_subject_change");
  /* A clean unknown method: its snake_case. */
  expect_level("customThing", "custom_thing");
  expect_level("v2_event", "v2_event");
  expect_level(m64, m64);
  /* Everything else: unknown. */
  expect_level("", "unknown");
  expect_level("a/b", "unknown");
  expect_level("+", "unknown");
  expect_level("#", "unknown");
  expect_level("a+b", "unknown");
  expect_level("$SYS", "unknown");
  expect_level("a b", "unknown");
  expect_level("ctl\\u0001", "unknown");
  expect_level("\\u0000", "unknown");
  expect_level("na\\u00efve", "unknown");
  expect_level("\xc3\xa9t\xc3\xa9", "unknown");
  expect_level("\\ud800", "unknown");
  expect_level(m65, "unknown");
  expect_level(m300, "unknown");
  /* Levels that name other topics of the broadcaster. */
  expect_level("state", "unknown");
  expect_level("availability", "unknown");
  expect_level("health", "unknown");
  expect_level("user_enter", "unknown");
  expect_level("Tip", "unknown");
  expect_level("unknown", "unknown");
}

static void test_level_args(void **state) {
  cbev_batch *b = one("tip");
  char small[8];
  (void)state;

  assert_int_equal(cb2m_route_level(NULL, small, sizeof small), CBEV_EINVAL);
  assert_int_equal(cb2m_route_level(cbev_batch_get(b, 0), small, sizeof small), CBEV_EINVAL);
  cbev_batch_free(b);
}

static void test_push_published_and_filtered(void **state) {
  cb2m_queue q;
  cb2m_fetch *f = cb2m_fetch_new("http://h/e/a/t/?i=0", "http://h/e/a/t/?i=2");
  cb2m_route r = {"cb", "alice", ALL_TYPES, 0};
  cbev_batch *odd = one("a/b"), *tip = one("tip");
  char *want = NULL;
  size_t want_len = 0;
  cb2m_item *it;
  (void)state;

  assert_int_equal(cb2m_queue_init(&q, 10), 0);
  assert_int_equal(cb2m_route_push(&r, cbev_batch_get(odd, 0), &q, f, 0), CBEV_OK);
  it = cb2m_queue_next_unsent(&q, 0);
  assert_string_equal(it->topic, "cb/alice/unknown");
  assert_string_equal(it->id, "1-0");
  /* The payload is the library's bytes, the method kept in it. */
  assert_int_equal(cbev_event_to_json(cbev_batch_get(odd, 0), 0, &want, &want_len), CBEV_OK);
  assert_int_equal(it->len, want_len);
  assert_memory_equal(it->payload, want, want_len + 1);
  assert_non_null(strstr(it->payload, "\"event_type\":\"a_b\""));
  cbev_free(want);
  uint64_t s1 = cb2m_queue_mark_sent(&q);

  /* Raw payloads keep the method as upstream sent it. */
  r.json_flags = CBEV_JSON_RAW;
  assert_int_equal(cb2m_route_push(&r, cbev_batch_get(odd, 0), &q, f, 0), CBEV_OK);
  it = cb2m_queue_next_unsent(&q, 0);
  assert_non_null(strstr(it->payload, "\"method\":\"a/b\""));
  uint64_t s2 = cb2m_queue_mark_sent(&q);

  /* Filtered out: a placeholder, nothing serialized, passed as done. */
  r.publish_mask = 1u << CBEV_EVENT_FOLLOW;
  assert_int_equal(cb2m_route_push(&r, cbev_batch_get(tip, 0), &q, f, 1), CBEV_OK);
  it = cb2m_queue_next_unsent(&q, 0);
  assert_null(it->topic);
  assert_null(it->payload);
  assert_int_equal(it->len, 0);
  assert_int_equal(it->last_in_fetch, 1);
  assert_int_equal(cb2m_queue_mark_sent(&q), 0);
  assert_int_equal(q.count, 3);
  assert_int_equal(cb2m_queue_ack(&q, s1), CBEV_OK);
  assert_int_equal(cb2m_queue_ack(&q, s2), CBEV_OK);
  {
    char *url = NULL, *id = NULL;
    assert_int_equal(cb2m_queue_pop_done(&q, &url, &id), 3);
    assert_string_equal(url, "http://h/e/a/t/?i=2");
    free(url);
    free(id);
  }

  /* A base topic that cannot hold the topic: EINVAL, nothing queued. */
  {
    char base[400];
    memset(base, 'b', sizeof base - 1);
    base[sizeof base - 1] = '\0';
    r = (cb2m_route){base, "alice", ALL_TYPES, 0};
    assert_int_equal(cb2m_route_push(&r, cbev_batch_get(tip, 0), &q, f, 0), CBEV_EINVAL);
    assert_int_equal(q.count, 0);
    assert_int_equal(cb2m_route_push(NULL, cbev_batch_get(tip, 0), &q, f, 0), CBEV_EINVAL);
  }
  cb2m_fetch_unref(f);
  cb2m_queue_cleanup(&q);
  cbev_batch_free(odd);
  cbev_batch_free(tip);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_level_valid),
      cmocka_unit_test(test_levels),
      cmocka_unit_test(test_level_args),
      cmocka_unit_test(test_push_published_and_filtered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

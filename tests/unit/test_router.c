/* Unit tests of the router: order, typed and any handlers, stop on error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/router.h"
#include "failalloc.h"

static const char BODY[] =
    "{\"events\":["
    "{\"method\":\"tip\",\"id\":\"1755376903836-0\",\"object\":{\"broadcaster\":\"alice\","
    "\"user\":{\"username\":\"bob\"},\"tip\":{\"tokens\":25,\"isAnon\":false,\"message\":\"\"}}},"
    "{\"method\":\"follow\",\"id\":\"1755376903837-0\",\"object\":{\"broadcaster\":\"alice\","
    "\"user\":{\"username\":\"carol\"}}},"
    "{\"method\":\"somethingNew\",\"id\":\"1755376903838-0\",\"object\":{\"broadcaster\":\"alice\"}}"
    "],\"nextUrl\":null}";

typedef struct trace {
  char log[256];
  int fail_on; /* handler tag that returns non-zero */
} trace;

typedef struct tagged {
  trace *t;
  char tag;
} tagged;

static int record(const cbev_event *ev, void *ud) {
  tagged *h = ud;
  size_t n = strlen(h->t->log);
  (void)ev;
  h->t->log[n] = h->tag;
  h->t->log[n + 1] = '\0';
  return h->tag == h->t->fail_on ? 42 : 0;
}

static cbev_batch *parse(void) {
  cbev_batch *b = NULL;
  assert_int_equal(cbev_parse_response(BODY, sizeof BODY - 1, NULL, NULL, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 3);
  return b;
}

static void test_order_any_then_typed(void **state) {
  trace t = {{0}, 0};
  tagged a = {&t, 'a'}, b = {&t, 'b'}, x = {&t, 'x'}, y = {&t, 'y'}, f = {&t, 'f'}, u = {&t, 'u'};
  cbev_router *r = cbev_router_new();
  cbev_batch *batch = parse();
  (void)state;

  assert_non_null(r);
  /* Typed handlers registered before the any-handlers still run after them. */
  assert_int_equal(cbev_router_on(r, CBEV_EVENT_TIP, record, &x), CBEV_OK);
  assert_int_equal(cbev_router_on_any(r, record, &a), CBEV_OK);
  assert_int_equal(cbev_router_on(r, CBEV_EVENT_TIP, record, &y), CBEV_OK);
  assert_int_equal(cbev_router_on_any(r, record, &b), CBEV_OK);
  assert_int_equal(cbev_router_on(r, CBEV_EVENT_FOLLOW, record, &f), CBEV_OK);
  assert_int_equal(cbev_router_on(r, CBEV_EVENT_UNKNOWN, record, &u), CBEV_OK);

  for (size_t i = 0; i < cbev_batch_count(batch); i++)
    assert_int_equal(cbev_router_dispatch(r, cbev_batch_get(batch, i)), 0);
  assert_string_equal(t.log, "abxy" "abf" "abu");
  cbev_router_free(r);
  cbev_batch_free(batch);
}

static void test_failing_handler_stops_the_rest(void **state) {
  trace t = {{0}, 'b'};
  tagged a = {&t, 'a'}, b = {&t, 'b'}, x = {&t, 'x'};
  cbev_router *r = cbev_router_new();
  cbev_batch *batch = parse();
  (void)state;

  cbev_router_on_any(r, record, &a);
  cbev_router_on_any(r, record, &b);
  cbev_router_on(r, CBEV_EVENT_TIP, record, &x);
  assert_int_equal(cbev_router_dispatch(r, cbev_batch_get(batch, 0)), 42);
  assert_string_equal(t.log, "ab");
  /* A typed handler failing stops later typed handlers. */
  t.log[0] = '\0';
  t.fail_on = 'x';
  tagged z = {&t, 'z'};
  cbev_router_on(r, CBEV_EVENT_TIP, record, &z);
  t.fail_on = 'x';
  a.tag = 'a';
  b.tag = 'c'; /* no longer failing */
  assert_int_equal(cbev_router_dispatch(r, cbev_batch_get(batch, 0)), 42);
  assert_string_equal(t.log, "acx");
  cbev_router_free(r);
  cbev_batch_free(batch);
}

static void test_no_handlers_and_bad_args(void **state) {
  cbev_router *r = cbev_router_new();
  cbev_batch *batch = parse();
  (void)state;

  assert_int_equal(cbev_router_dispatch(r, cbev_batch_get(batch, 1)), 0);
  assert_int_equal(cbev_router_dispatch(NULL, cbev_batch_get(batch, 1)), CBEV_EINVAL);
  assert_int_equal(cbev_router_dispatch(r, NULL), CBEV_EINVAL);
  assert_int_equal(cbev_router_on(r, CBEV_EVENT_TIP, NULL, NULL), CBEV_EINVAL);
  assert_int_equal(cbev_router_on(r, (cbev_event_type)99, record, NULL), CBEV_EINVAL);
  assert_int_equal(cbev_router_on_any(NULL, record, NULL), CBEV_EINVAL);
  /* The per-type cap holds. */
  for (int i = 0; i < 1024; i++)
    assert_int_equal(cbev_router_on(r, CBEV_EVENT_FOLLOW, record, NULL), CBEV_OK);
  assert_int_equal(cbev_router_on(r, CBEV_EVENT_FOLLOW, record, NULL), CBEV_ETOOBIG);
  cbev_router_free(r);
  cbev_router_free(NULL);
  cbev_batch_free(batch);
}


/* Every allocation of building a router (its lists grow past their first
 * capacity) fails in turn: CBEV_ENOMEM, the router stays usable with the
 * handlers it had, nothing leaks (ASan). */
static void test_allocation_failures(void **state) {
  int done = 0;
  (void)state;

  cbev_set_allocator(&g_failing);
  for (g_fail_at = 0; !done && g_fail_at < 1000; g_fail_at++) {
    cbev_router *r;
    int added = 0, rc = CBEV_OK;
    g_allocs = 0;
    r = cbev_router_new();
    if (!r)
      continue;
    for (int i = 0; i < 20 && rc == CBEV_OK; i++) {
      rc = i % 2 ? cbev_router_on_any(r, record, NULL)
                 : cbev_router_on(r, CBEV_EVENT_TIP, record, NULL);
      if (rc == CBEV_OK)
        added++;
    }
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
    done = rc == CBEV_OK;
    assert_true(done || added < 20);
    cbev_router_free(r);
  }
  cbev_set_allocator(NULL);
  g_fail_at = -1;
  assert_true(done);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_any_then_typed),
      cmocka_unit_test(test_failing_handler_stops_the_rest),
      cmocka_unit_test(test_no_handlers_and_bad_args),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

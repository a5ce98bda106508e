/* Unit tests of the shared token bucket, driven by a fake clock. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/ratelimit.h"

static void test_burst_then_refill(void **state) {
  cbev_ratelimit *rl = NULL;
  uint64_t wait = 0;
  (void)state;

  assert_int_equal(cbev_ratelimit_new(2000, 60.0, &rl), CBEV_OK);
  /* The bucket starts full: 2000 requests at once. */
  for (int i = 0; i < 2000; i++)
    assert_int_equal(cbev_ratelimit_acquire(rl, 1000, &wait), CBEV_OK);
  assert_int_equal(cbev_ratelimit_acquire(rl, 1000, &wait), CBEV_EAGAIN);
  /* One token per 30 ms at 2000/60 s. */
  assert_int_equal(wait, 30);
  assert_int_equal(cbev_ratelimit_acquire(rl, 1029, &wait), CBEV_EAGAIN);
  assert_int_equal(wait, 1);
  assert_int_equal(cbev_ratelimit_acquire(rl, 1030, &wait), CBEV_OK);
  assert_int_equal(cbev_ratelimit_acquire(rl, 1030, &wait), CBEV_EAGAIN);
  /* A full minute refills all, but never above capacity. */
  for (int i = 0; i < 2000; i++)
    assert_int_equal(cbev_ratelimit_acquire(rl, 1000000, &wait), CBEV_OK);
  assert_int_equal(cbev_ratelimit_acquire(rl, 1000000, &wait), CBEV_EAGAIN);
  cbev_ratelimit_free(rl);
}

static void test_time_going_back_is_ignored(void **state) {
  cbev_ratelimit *rl = NULL;
  uint64_t wait = 0;
  (void)state;

  assert_int_equal(cbev_ratelimit_new(1, 1.0, &rl), CBEV_OK);
  assert_int_equal(cbev_ratelimit_acquire(rl, 5000, &wait), CBEV_OK);
  assert_int_equal(cbev_ratelimit_acquire(rl, 10, &wait), CBEV_EAGAIN);
  assert_int_equal(wait, 1000);
  assert_int_equal(cbev_ratelimit_acquire(rl, 6000, &wait), CBEV_OK);
  cbev_ratelimit_free(rl);
}

static void test_rate_over_many_seconds(void **state) {
  cbev_ratelimit *rl = NULL;
  uint64_t wait = 0;
  unsigned granted = 0;
  (void)state;

  /* Over 10 simulated minutes at one call per ms, at most 2000 per minute
   * plus the initial burst are granted. */
  assert_int_equal(cbev_ratelimit_new(2000, 60.0, &rl), CBEV_OK);
  for (uint64_t t = 0; t < 600000; t++)
    if (cbev_ratelimit_acquire(rl, t, &wait) == CBEV_OK)
      granted++;
  assert_true(granted >= 2000 + 19990 && granted <= 2000 + 20000);
  cbev_ratelimit_free(rl);
}

typedef struct worker_arg {
  cbev_ratelimit *rl;
  unsigned granted;
} worker_arg;

static void *worker(void *p) {
  worker_arg *a = p;
  for (int i = 0; i < 5000; i++)
    if (cbev_ratelimit_acquire(a->rl, 0, NULL) == CBEV_OK)
      a->granted++;
  return NULL;
}

static void test_shared_between_threads(void **state) {
  cbev_ratelimit *rl = NULL;
  pthread_t th[4];
  worker_arg args[4];
  unsigned total = 0;
  (void)state;

  /* Four threads share one bucket of 1000 at a frozen clock: exactly 1000
   * tokens are handed out in all. */
  assert_int_equal(cbev_ratelimit_new(1000, 60.0, &rl), CBEV_OK);
  for (int i = 0; i < 4; i++) {
    args[i] = (worker_arg){rl, 0};
    assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    total += args[i].granted;
  }
  assert_int_equal(total, 1000);
  cbev_ratelimit_free(rl);
}

static void test_parse(void **state) {
  unsigned n = 0;
  double t = 0;
  (void)state;

  assert_int_equal(cbev_ratelimit_parse("2000/60", &n, &t), CBEV_OK);
  assert_int_equal(n, 2000);
  assert_true(t == 60.0);
  assert_int_equal(cbev_ratelimit_parse("5/0.5", &n, &t), CBEV_OK);
  assert_true(t == 0.5);
  static const char *bad[] = {"", "2000", "/60", "0/60", "-1/60", "10/0", "10/-1",
                              "10/abc", "10/60x", "x/60", "10//60", " 10/60", "10/nan",
                              "10/inf", "99999999999/1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(cbev_ratelimit_parse(bad[i], &n, &t), CBEV_EINVAL);
  assert_int_equal(cbev_ratelimit_new(0, 60.0, &(cbev_ratelimit *){NULL}), CBEV_EINVAL);
  assert_int_equal(cbev_ratelimit_new(1, 0.0, &(cbev_ratelimit *){NULL}), CBEV_EINVAL);
  cbev_ratelimit_free(NULL);
}

static void *null_malloc(size_t n) {
  (void)n;
  return NULL;
}
static void *null_realloc(void *p, size_t n) {
  (void)p;
  (void)n;
  return NULL;
}

/* Creating a limiter with no memory: CBEV_ENOMEM and *out untouched. */
static void test_allocation_failure(void **state) {
  const cbev_allocator a = {null_malloc, null_realloc, free};
  cbev_ratelimit *rl = (cbev_ratelimit *)&rl;
  (void)state;

  cbev_set_allocator(&a);
  assert_int_equal(cbev_ratelimit_new(2000, 60.0, &rl), CBEV_ENOMEM);
  assert_ptr_equal(rl, (cbev_ratelimit *)&rl);
  cbev_set_allocator(NULL);
  assert_int_equal(cbev_ratelimit_new(2000, 60.0, &rl), CBEV_OK);
  cbev_ratelimit_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_refill),
      cmocka_unit_test(test_time_going_back_is_ignored),
      cmocka_unit_test(test_rate_over_many_seconds),
      cmocka_unit_test(test_shared_between_threads),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_allocation_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of retry delays: exponential backoff, its cap, jitter bounds
 * over many seeds, determinism of the seeded PRNG, and Retry-After in both
 * forms (delta seconds, the three HTTP-date forms), garbage and the past. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cbevents/backoff.h"
#include "cbevents/error.h"
#include "cbevents/session.h"

/* 1994-11-06 08:49:37 UTC, the RFC's example date. */
#define RFC_EXAMPLE ((time_t)784111777)

static cbev_session *new_session(uint64_t seed, double backoff, double factor,
                                 double max) {
  cbev_session_config cfg;
  cbev_session *s = NULL;

  cbev_session_config_init(&cfg);
  cfg.username = "alice";
  cfg.token = "tok123";
  cfg.seed = seed;
  cfg.retry_backoff_s = backoff;
  cfg.retry_factor = factor;
  cfg.retry_max_delay_s = max;
  assert_int_equal(cbev_session_new(&cfg, &s), CBEV_OK);
  return s;
}

/* The un-jittered sequence 1, 2, 4, 8, 16, 30, 30 s: every value lands in
 * [d/2, d], and over many draws both ends of the range are approached. */
static void test_backoff_sequence_and_cap(void **state) {
  static const uint64_t want_ms[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
  cbev_session *s = new_session(42, 1.0, 2.0, 30.0);
  (void)state;
  for (unsigned a = 1; a <= 8; a++) {
    uint64_t d = want_ms[a - 1], lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
      uint64_t got = cbev_session_backoff_ms(s, a);
      if (got < d / 2 || got > d)
        fail_msg("attempt %u: %llu ms outside [%llu, %llu]", a, (unsigned long long)got,
                 (unsigned long long)(d / 2), (unsigned long long)d);
      lo = got < lo ? got : lo;
      hi = got > hi ? got : hi;
    }
    /* uniform: 2000 draws get within 2% of both ends */
    assert_true(lo <= d / 2 + d / 50);
    assert_true(hi >= d - d / 50);
  }
  /* attempt 0 is treated as the first; huge attempts stay capped */
  assert_in_range(cbev_session_backoff_ms(s, 0), 500, 1000);
  assert_in_range(cbev_session_backoff_ms(s, 4000000000u), 15000, 30000);
  cbev_session_free(s);
}

static void test_jitter_bounds_many_seeds(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 300; seed++) {
    cbev_session *s = new_session(seed * 7919u, 0.5, 3.0, 60.0);
    /* 500, 1500, 4500, 13500, 40500, 60000 (capped) */
    uint64_t d = 500;
    for (unsigned a = 1; a <= 7; a++) {
      uint64_t got = cbev_session_backoff_ms(s, a);
      assert_in_range(got, d / 2, d);
      d = d * 3 > 60000 ? 60000 : d * 3;
    }
    cbev_session_free(s);
  }
}

static void test_seed_is_deterministic(void **state) {
  cbev_session *a = new_session(1234, 1.0, 2.0, 30.0);
  cbev_session *b = new_session(1234, 1.0, 2.0, 30.0);
  cbev_session *c = new_session(4321, 1.0, 2.0, 30.0);
  int differs = 0;
  (void)state;
  for (unsigned i = 1; i <= 20; i++) {
    uint64_t x = cbev_session_backoff_ms(a, 6), y = cbev_session_backoff_ms(b, 6);
    assert_int_equal(x, y);
    differs |= cbev_session_backoff_ms(c, 6) != x;
  }
  assert_true(differs);
  cbev_session_free(a);
  cbev_session_free(b);
  cbev_session_free(c);
}

static void test_backoff_edge_settings(void **state) {
  (void)state;
  /* zero backoff: no delay at all */
  cbev_session *s = new_session(1, 0.0, 2.0, 30.0);
  for (unsigned a = 1; a < 100; a += 7)
    assert_int_equal(cbev_session_backoff_ms(s, a), 0);
  cbev_session_free(s);
  /* factor 1: constant */
  s = new_session(1, 2.0, 1.0, 30.0);
  for (unsigned a = 1; a < 1000; a += 37)
    assert_in_range(cbev_session_backoff_ms(s, a), 1000, 2000);
  cbev_session_free(s);
  /* backoff above the cap: the cap wins from the first attempt */
  s = new_session(1, 100.0, 2.0, 5.0);
  assert_in_range(cbev_session_backoff_ms(s, 1), 2500, 5000);
  cbev_session_free(s);
  assert_int_equal(cbev_session_backoff_ms(NULL, 1), 0);
}

static void ra_ok(const char *value, time_t now, uint64_t want_ms) {
  uint64_t got = 123456789;
  int rc = cbev_parse_retry_after(value, now, &got);
  if (rc != CBEV_OK)
    fail_msg("\"%s\": rc %d", value, rc);
  if (got != want_ms)
    fail_msg("\"%s\": %llu ms, want %llu", value, (unsigned long long)got,
             (unsigned long long)want_ms);
}

static void ra_bad(const char *value) {
  uint64_t got = 77;
  if (cbev_parse_retry_after(value, RFC_EXAMPLE, &got) != CBEV_EINVAL)
    fail_msg("\"%s\" accepted", value ? value : "(null)");
  assert_int_equal(got, 77);
}

static void test_retry_after_seconds(void **state) {
  (void)state;
  ra_ok("0", RFC_EXAMPLE, 0);
  ra_ok("5", RFC_EXAMPLE, 5000);
  ra_ok("  120\t", RFC_EXAMPLE, 120000);
  ra_ok("3600", RFC_EXAMPLE, 3600000);
  /* capped at an hour, overflow included */
  ra_ok("3601", RFC_EXAMPLE, 3600000);
  ra_ok("99999999999999999999999999", RFC_EXAMPLE, 3600000);
  ra_bad("-5");
  ra_bad("+5");
  ra_bad("5s");
  ra_bad("1.5");
  ra_bad("0x10");
  ra_bad("5 6");
}

static void test_retry_after_dates(void **state) {
  (void)state;
  /* the three forms of the same instant, 90 s in the future */
  ra_ok("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE - 90, 90000);
  ra_ok("Sunday, 06-Nov-94 08:49:37 GMT", RFC_EXAMPLE - 90, 90000);
  ra_ok("Sun Nov  6 08:49:37 1994", RFC_EXAMPLE - 90, 90000);
  /* in the past or now: retry at once */
  ra_ok("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE, 0);
  ra_ok("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE + 86400, 0);
  ra_ok("Thu, 01 Jan 1970 00:00:00 GMT", RFC_EXAMPLE, 0);
  /* far future: capped */
  ra_ok("Fri, 31 Dec 9999 23:59:59 GMT", RFC_EXAMPLE, 3600000);
  /* leap day and a two-digit year in this century (2026 clock) */
  ra_ok("Thu, 29 Feb 2024 00:00:10 GMT", (time_t)1709164800, 10000);
  ra_ok("Thursday, 29-Feb-24 00:00:10 GMT", (time_t)1709164800, 10000);
  ra_ok("Wed, 01 Jan 2025 00:00:00 GMT", (time_t)1735689600 - 3599, 3599000);
  ra_ok("Tue Dec 31 23:59:59 2024", (time_t)1735689600 - 61, 60000);
}

static void test_retry_after_garbage(void **state) {
  (void)state;
  ra_bad(NULL);
  ra_bad("");
  ra_bad("   ");
  ra_bad("soon");
  ra_bad("Sun, 06 Nov 1994 08:49:37 UTC");
  ra_bad("Sun, 06 Nov 1994 08:49:37");
  ra_bad("Sun, 6 Nov 1994 08:49:37 GMT");
  ra_bad("Sun, 06 Foo 1994 08:49:37 GMT");
  ra_bad("Sun, 31 Feb 1994 08:49:37 GMT");
  ra_bad("Sun, 29 Feb 2023 08:49:37 GMT");
  ra_bad("Sun, 06 Nov 1994 24:00:00 GMT");
  ra_bad("Sun, 06 Nov 1994 08:60:00 GMT");
  ra_bad("Sun, 06 Nov 1994 08:49:37 GMT trailing");
  ra_bad("Funday, 06-Nov-94 08:49:37 GMT");
  ra_bad("Sun Nov 6 08:49:37 1994");
  ra_bad("Sun Nov  6 08:49:37 94");
  ra_bad("Sun, 00 Nov 1994 08:49:37 GMT");
  ra_bad("Sun, 06 Nov 1899 08:49:37 GMT");
  /* longer than any valid value */
  ra_bad("11111111111111111111111111111111111111111111111111111111111111111111");
  assert_int_equal(cbev_parse_retry_after("5", 0, NULL), CBEV_EINVAL);
}

/* The session's delays are cbev_backoff_ms() with the session's settings
 * and generator: the same seed gives the same delays through either. */
static void test_library_backoff_is_the_sessions(void **state) {
  cbev_session *s = new_session(42, 0.5, 3.0, 60.0);
  uint64_t rng = 42;

  (void)state;
  for (unsigned a = 0; a < 40; a++)
    assert_int_equal(cbev_session_backoff_ms(s, a), cbev_backoff_ms(500.0, 3.0, 60000.0, a, &rng));
  cbev_session_free(s);
  /* The cap holds at any attempt, and [d/2, d] is the jitter. */
  rng = 7;
  for (unsigned a = 1; a < 2000; a += 37) {
    uint64_t d = cbev_backoff_ms(1000.0, 2.0, 60000.0, a, &rng);
    assert_true(d <= 60000);
  }
  for (int i = 0; i < 200; i++)
    assert_in_range(cbev_backoff_ms(1000.0, 2.0, 60000.0, 3, &rng), 2000, 4000);
  /* A factor below 1 counts as 1. */
  assert_in_range(cbev_backoff_ms(1000.0, 0.1, 60000.0, 9, &rng), 500, 1000);
}

static void test_random_is_splitmix64(void **state) {
  uint64_t a = 1, b = 1, z = 0;

  (void)state;
  /* splitmix64's first output for seed 0, and determinism per seed. */
  assert_true(cbev_random_next(&z) == 0xE220A8397B1DCDAFull);
  for (int i = 0; i < 10; i++)
    assert_true(cbev_random_next(&a) == cbev_random_next(&b));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_library_backoff_is_the_sessions),
      cmocka_unit_test(test_random_is_splitmix64),
      cmocka_unit_test(test_backoff_sequence_and_cap),
      cmocka_unit_test(test_jitter_bounds_many_seeds),
      cmocka_unit_test(test_seed_is_deterministic),
      cmocka_unit_test(test_backoff_edge_settings),
      cmocka_unit_test(test_retry_after_seconds),
      cmocka_unit_test(test_retry_after_dates),
      cmocka_unit_test(test_retry_after_garbage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

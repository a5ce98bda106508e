/*
 * backoff.c: exponential backoff with jitter and its generator (see
 * cbevents/backoff.h). One copy, so the session and any reconnect loop of a
 * program agree on how long "after failure N" is.
 */
#include "cbevents/backoff.h"

/* splitmix64: tiny, fast and good enough to spread retries; seeded by the
 * caller so tests are deterministic. */
uint64_t cbev_random_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t cbev_backoff_ms(double base_ms, double factor, double max_ms, unsigned attempt,
                         uint64_t *rng) {
  double delay = base_ms, f = factor >= 1.0 ? factor : 1.0;
  uint64_t ms, half;

  if (attempt == 0)
    attempt = 1;
  if (!(max_ms >= 0.0))
    max_ms = 0.0;
  /* factor^(attempt-1) by squaring: at most 32 steps whatever the count,
   * and none once the cap is reached (f >= 1 only grows the delay);
   * overflow to infinity is harmless since the cap is applied after. */
  for (unsigned e = attempt - 1; e && delay < max_ms; e >>= 1) {
    if (e & 1)
      delay *= f;
    f *= f;
  }
  if (!(delay <= max_ms)) /* also catches NaN from 0 * inf */
    delay = max_ms;
  ms = (uint64_t)(delay + 0.5);
  half = ms / 2;
  return half + (rng ? cbev_random_next(rng) : 0) % (ms - half + 1);
}

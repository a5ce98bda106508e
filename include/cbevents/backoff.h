/*
 * cbevents/backoff.h: the one retry backoff with jitter and the one
 * pseudo-random generator of libcbevents.
 *
 * The session paces its retries with these; any other reconnect loop (the
 * bridge's MQTT link) should too, so "how long to wait after failure N" has
 * one rule. Neither is for security: the generator only spreads clients so
 * they do not retry in step.
 */
#ifndef CBEVENTS_BACKOFF_H
#define CBEVENTS_BACKOFF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The next value of a splitmix64 generator whose state is *state (any
 * value, 0 included, is a valid seed; the same seed gives the same
 * sequence). */
uint64_t cbev_random_next(uint64_t *state);

/* The delay (ms) before retry number attempt (1-based; 0 counts as 1):
 * d = min(max_ms, base_ms * factor^(attempt-1)), then jittered uniformly
 * into [d/2, d] with one draw from *rng (cbev_random_next). factor is at
 * least 1 (smaller counts as 1); a NaN or infinite product gives max_ms. */
uint64_t cbev_backoff_ms(double base_ms, double factor, double max_ms, unsigned attempt,
                         uint64_t *rng);

#ifdef __cplusplus
}
#endif
#endif

/*
 * cbevents/ratelimit.h: a token bucket that sessions and clients share.
 *
 * N requests per T seconds (the API allows 2000 per 60). The bucket starts
 * full and refills continuously. It is thread-safe: any number of sessions,
 * in any number of threads, may hold the same limiter. Time is passed in,
 * so tests drive it with a fake clock.
 */
#ifndef CBEVENTS_RATELIMIT_H
#define CBEVENTS_RATELIMIT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CBEV_RATELIMIT_DEFAULT_REQUESTS 2000u
#define CBEV_RATELIMIT_DEFAULT_SECONDS 60.0

typedef struct cbev_ratelimit cbev_ratelimit;

/* Creates a limiter of max_requests (>= 1) per per_seconds (> 0). Returns
 * CBEV_OK, CBEV_EINVAL or CBEV_ENOMEM. Free with cbev_ratelimit_free()
 * after every session using it is gone. */
int cbev_ratelimit_new(unsigned max_requests, double per_seconds,
                       cbev_ratelimit **out);
void cbev_ratelimit_free(cbev_ratelimit *rl); /* NULL is fine */

/* Takes one token at now_ms. Returns CBEV_OK when taken; CBEV_EAGAIN with
 * *wait_ms (>= 1) until one is available otherwise (wait_ms may be NULL).
 * Times before the last call are treated as equal to it. */
int cbev_ratelimit_acquire(cbev_ratelimit *rl, uint64_t now_ms,
                           uint64_t *wait_ms);

/* Parses "N/T" ("2000/60"): N >= 1 whole requests, T > 0 seconds.
 * Returns CBEV_OK or CBEV_EINVAL. */
int cbev_ratelimit_parse(const char *text, unsigned *max_requests,
                         double *per_seconds);

#ifdef __cplusplus
}
#endif
#endif

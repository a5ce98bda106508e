/*
 * ratelimit.c: a thread-safe token bucket with the clock passed in.
 *
 * Tokens are kept as a double so that refill over fractions of a token is
 * never lost to rounding, however often the bucket is asked.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/ratelimit.h"

struct cbev_ratelimit {
  pthread_mutex_t lock;
  double capacity;      /* max_requests */
  double tokens;        /* available now, 0..capacity */
  double refill_per_ms; /* tokens added per millisecond */
  uint64_t last_ms;
  int started;
};

int cbev_ratelimit_new(unsigned max_requests, double per_seconds,
                       cbev_ratelimit **out) {
  cbev_ratelimit *rl;

  if (!out || max_requests < 1 || !(per_seconds > 0) || !isfinite(per_seconds))
    return CBEV_EINVAL;
  rl = cbev_calloc(1, sizeof *rl);
  if (!rl)
    return CBEV_ENOMEM;
  if (pthread_mutex_init(&rl->lock, NULL) != 0) {
    cbev_free(rl);
    return CBEV_ENOMEM;
  }
  rl->capacity = (double)max_requests;
  rl->tokens = rl->capacity;
  rl->refill_per_ms = (double)max_requests / (per_seconds * 1000.0);
  *out = rl;
  return CBEV_OK;
}

void cbev_ratelimit_free(cbev_ratelimit *rl) {
  if (!rl)
    return;
  pthread_mutex_destroy(&rl->lock);
  cbev_free(rl);
}

int cbev_ratelimit_acquire(cbev_ratelimit *rl, uint64_t now_ms,
                           uint64_t *wait_ms) {
  int rc;

  if (!rl)
    return CBEV_EINVAL;
  pthread_mutex_lock(&rl->lock);
  if (!rl->started) {
    rl->started = 1;
    rl->last_ms = now_ms;
  }
  if (now_ms > rl->last_ms) {
    rl->tokens += (double)(now_ms - rl->last_ms) * rl->refill_per_ms;
    if (rl->tokens > rl->capacity)
      rl->tokens = rl->capacity;
    rl->last_ms = now_ms;
  }
  /* The epsilon absorbs the error of summing many small refills. */
  if (rl->tokens >= 1.0 - 1e-9) {
    rl->tokens -= 1.0;
    if (rl->tokens < 0)
      rl->tokens = 0;
    rc = CBEV_OK;
  } else {
    double need = (1.0 - rl->tokens) / rl->refill_per_ms;
    if (wait_ms)
      *wait_ms = need < 1.0 ? 1 : (uint64_t)ceil(need);
    rc = CBEV_EAGAIN;
  }
  pthread_mutex_unlock(&rl->lock);
  return rc;
}

int cbev_ratelimit_parse(const char *text, unsigned *max_requests,
                         double *per_seconds) {
  char *end;
  unsigned long n;
  double t;

  if (!text || !max_requests || !per_seconds)
    return CBEV_EINVAL;
  if (*text < '0' || *text > '9')
    return CBEV_EINVAL;
  errno = 0;
  n = strtoul(text, &end, 10);
  if (errno || end == text || *end != '/' || n < 1 || n > 1000000000ul)
    return CBEV_EINVAL;
  text = end + 1;
  if (!((*text >= '0' && *text <= '9') || *text == '.'))
    return CBEV_EINVAL;
  t = strtod(text, &end);
  if (errno || end == text || *end != '\0' || !(t > 0) || !isfinite(t) ||
      t > 86400.0 * 365)
    return CBEV_EINVAL;
  *max_requests = (unsigned)n;
  *per_seconds = t;
  return CBEV_OK;
}

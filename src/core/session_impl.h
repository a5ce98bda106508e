/*
 * session_impl.h: the session's state, shared by session_new.c (which
 * checks the configuration and builds it) and session.c (which drives it).
 * Internal.
 */
#ifndef CBEV_SESSION_IMPL_H
#define CBEV_SESSION_IMPL_H

#include <stdint.h>

#include "cbevents/session.h"

struct cbev_session {
  char *base;     /* configured API base, no trailing slash */
  char *username;
  char *token;    /* the secret every log line is masked with */
  char *feed;     /* the configured feed URL, what a restored cursor rebases on */
  char *cursor;   /* URL to load next (contains the token) */
  char *last_id;  /* id of the last event returned, or NULL */
  int timeout_s;
  unsigned retry_attempts; /* 0 = forever */
  unsigned auth_retries;   /* 401/403 retried this often before CBEV_EAUTH */
  unsigned auth_failures;  /* 401/403 in a row since the last good answer */
  double backoff_s, factor, max_delay_s;
  cbev_ratelimit *limiter;  /* borrowed */
  const cbev_logger *logger; /* borrowed */
  uint64_t rng;             /* splitmix64 state */
  unsigned attempts;        /* failed attempts of the cursor since success */
  uint64_t due_ms;          /* no request before this time */
  int in_flight;            /* begin() said OK, on_response() not yet */
  int err_rc;
  long err_status;
  char excerpt[CBEV_EXCERPT_MAX + 1];
};

#endif

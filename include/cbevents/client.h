/*
 * cbevents/client.h: a small blocking client on libcurl.
 *
 * The C counterpart of cb-events' EventClient, built on the sans-I/O
 * session: each cbev_client_poll() performs one long-poll (with retries,
 * backoff, Retry-After and the rate limiter) and returns the next batch.
 * Configuration is copied at creation and cannot change afterwards.
 *
 * Transfers: connect timeout 10 s, total timeout = long-poll timeout + 10 s,
 * gzip accepted, bodies capped (8 MiB), redirects never followed (the
 * Location is handed to the session, which logs only its origin), a
 * User-Agent "cbevents/<version>". One client is for one thread. A saved
 * cursor is restored with cbev_session_set_cursor(cbev_client_session(c),
 * ...): only its i= is kept, the configured timeout always applies.
 */
#ifndef CBEVENTS_CLIENT_H
#define CBEVENTS_CLIENT_H

#include <signal.h>

#include "cbevents/event.h"
#include "cbevents/log.h"
#include "cbevents/ratelimit.h"
#include "cbevents/router.h"
#include "cbevents/session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbev_client_config {
  cbev_session_config session; /* endpoint, credentials, retries, limiter */
  int testbed;                 /* non-zero and no base_url: testbed base */
  const char *ca_file;         /* extra CA bundle; NULL: system default */
  size_t max_body_bytes;       /* 0: CBEV_DEFAULT_MAX_BODY_BYTES */
  /* When non-NULL and it becomes non-zero (e.g. from a signal handler),
   * a transfer or a wait in progress stops within about 100 ms and the call
   * returns CBEV_ECANCELED. */
  const volatile sig_atomic_t *stop_flag;
} cbev_client_config;

/* Defaults of cb-events: timeout 10 s, 8 attempts, backoff 1.0 s, factor
 * 2.0, max delay 30 s; production base; a 401/403 retried
 * session.auth_retries = 2 times (CBEV_DEFAULT_AUTH_RETRIES). */
void cbev_client_config_init(cbev_client_config *cfg);

typedef struct cbev_client cbev_client;

/* Returns CBEV_OK, CBEV_EINVAL, CBEV_EURL, CBEV_ENOMEM (see
 * cbev_session_new()). Requires curl_global_init() to have been called. */
int cbev_client_new(const cbev_client_config *cfg, cbev_client **out);
void cbev_client_free(cbev_client *c); /* NULL is fine */

/* Performs long-polls until one yields a batch or a final error. On CBEV_OK
 * *batch (possibly empty) is the caller's. Returns CBEV_EAUTH (a 401/403
 * still after session.auth_retries retries, each waited out with the
 * backoff), CBEV_EHTTP,
 * CBEV_EURL (refused nextUrl; the cursor is kept), CBEV_ERETRIES,
 * CBEV_ECANCELED, CBEV_ENOMEM. cbev_client_session() tells the details. */
int cbev_client_poll(cbev_client *c, cbev_batch **batch);

/* Polls forever, dispatching every event through router, until an error or
 * a handler result stops it; returns that code (CBEV_ECANCELED on stop). */
int cbev_client_run(cbev_client *c, const cbev_router *router);

/* The session behind the client (cursor, last error). Borrowed. */
cbev_session *cbev_client_session(cbev_client *c);

#ifdef __cplusplus
}
#endif
#endif

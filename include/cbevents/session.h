/*
 * cbevents/session.h: the sans-I/O heart of the client.
 *
 * A session decides what to request and when, and what a response means.
 * It owns no socket and reads no clock: the driver (the blocking client,
 * cb2mqtt's curl-multi poller, or a unit test) performs the HTTP request
 * and passes the result and the time in. The cycle is:
 *
 *     cbev_session_begin(s, now_ms, &url, &wait_ms)  -> CBEV_OK: GET url
 *                                                     -> CBEV_EAGAIN: wait
 *     cbev_session_on_response(s, &resp, &batch)      -> what happened
 *
 * The session keeps the cursor (the URL to load next and the last event id
 * seen) across errors, follows nextUrl only when it has the same scheme,
 * host and port as the base (https, or http to a loopback host), and
 * computes retry delays: exponential backoff with jitter, capped, with a
 * Retry-After header winning when present.
 *
 * Every URL the session hands out contains the token: treat it as a secret.
 * All messages the session logs are masked.
 */
#ifndef CBEVENTS_SESSION_H
#define CBEVENTS_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cbevents/event.h"
#include "cbevents/log.h"
#include "cbevents/ratelimit.h"
/* The transport helpers (header lines, body buffer, URL checks) lived here
 * before transport.h; included so older callers keep compiling. */
#include "cbevents/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CBEV_PRODUCTION_BASE "https://eventsapi.chaturbate.com/events"
#define CBEV_TESTBED_BASE "https://events.testbed.cb.dev/events"

/* cb-events' documented defaults. */
#define CBEV_DEFAULT_TIMEOUT_S 10
#define CBEV_MAX_TIMEOUT_S 90
#define CBEV_DEFAULT_RETRY_ATTEMPTS 8
#define CBEV_DEFAULT_RETRY_BACKOFF_S 1.0
#define CBEV_DEFAULT_RETRY_FACTOR 2.0
#define CBEV_DEFAULT_RETRY_MAX_DELAY_S 30.0
/* A 401/403 is retried this often (with the backoff) before CBEV_EAUTH:
 * a lone one can be a transient answer of the CDN's edge (SPEC 1). */
#define CBEV_DEFAULT_AUTH_RETRIES 2
#define CBEV_MAX_AUTH_RETRIES 100
#define CBEV_DEFAULT_MAX_BODY_BYTES (8u * 1024u * 1024u)
/* Longest excerpt of a response body kept for the caller (bytes). */
#define CBEV_EXCERPT_MAX 200
/* A Retry-After asking for longer than this is obeyed only this long. */
#define CBEV_RETRY_AFTER_MAX_S 3600u

typedef struct cbev_session_config {
  /* Either base_url + username + token ... */
  const char *base_url; /* NULL: CBEV_PRODUCTION_BASE */
  const char *username;
  const char *token;
  /* ... or the whole feed URL (CB_EVENTS_URL). When set, username, token
   * and base are taken from it ("<base>/<username>/<token>/..."). */
  const char *events_url;
  int timeout_s;            /* 0..90; -1: default 10 */
  int retry_attempts;       /* per request; 0 = forever; -1: default 8 */
  double retry_backoff_s;   /* first delay; <0: default 1.0 */
  double retry_factor;      /* >= 1; <0: default 2.0 */
  double retry_max_delay_s; /* cap; <0: default 30 */
  cbev_ratelimit *limiter;  /* borrowed, may be shared; NULL: none */
  const cbev_logger *logger; /* borrowed, may be NULL; must outlive session */
  uint64_t seed;            /* jitter PRNG seed; 0 picks one */
  /* 401/403 answers in a row retried (same URL, the backoff above) before
   * the session reports CBEV_EAUTH; 0..100; -1: default 2. */
  int auth_retries;
} cbev_session_config;

/* Fills cfg with the defaults above (all pointers NULL). */
void cbev_session_config_init(cbev_session_config *cfg);

typedef struct cbev_session cbev_session;

/* Creates a session; the config is copied (strings too). Returns CBEV_OK,
 * CBEV_EINVAL (missing username/token, timeout out of range, factor < 1,
 * a NaN, ...), CBEV_EURL (base or events_url not https and not loopback
 * http, not parsable, with userinfo, or over 8 KiB; a base with a query or
 * fragment), CBEV_ENOMEM. The reason is logged at error, naming the field.
 * Username and token: 1..255 bytes without control characters.
 * The first URL is base/<username>/<token>/?timeout=N with both parts
 * percent-encoded. With events_url, base, username and token come from its
 * path; timeout=N is added to its query when absent, and when present
 * (0..90, else CBEV_EINVAL) it becomes the session's timeout_s. */
int cbev_session_new(const cbev_session_config *cfg, cbev_session **out);
void cbev_session_free(cbev_session *s); /* NULL is fine */

/* Asks whether a request may start at now_ms. On CBEV_OK *url is the URL to
 * GET (owned by the session, valid until the next call that changes the
 * session) and a rate-limiter token was taken. On CBEV_EAGAIN *wait_ms says
 * how long until it may be asked again (backoff or rate limit). Returns
 * CBEV_EINVAL on NULL arguments. Every failure reported by
 * cbev_session_on_response() (the non-retried ones too) delays the next
 * begin by the backoff, so a driver that insists never hammers the API. */
int cbev_session_begin(cbev_session *s, uint64_t now_ms, const char **url,
                       uint64_t *wait_ms);

/* What the driver observed. */
typedef struct cbev_response {
  uint64_t now_ms;         /* monotonic time the response completed */
  time_t wall_now;         /* wall clock, for Retry-After HTTP dates */
  int transport_error;     /* non-zero: no HTTP response (connect failed,
                              reset, timeout); status/body ignored */
  int too_big;             /* non-zero: body exceeded the cap, was cut */
  long status;             /* HTTP status */
  const char *body;        /* may be NULL when body_len is 0 */
  size_t body_len;
  const char *retry_after; /* Retry-After header value, NULL when absent */
  const char *location;    /* Location header of a 3xx, NULL otherwise */
} cbev_response;

/* Classifies resp, which answers the last URL from cbev_session_begin().
 * Returns:
 *  CBEV_OK        a batch: *batch (may hold 0 events) is the caller's to
 *                 free; the cursor moved to its nextUrl (kept when nextUrl
 *                 is absent or null). Attempts reset.
 *  CBEV_EAGAIN    transient (429, 5xx, 52x, transport error, bad 200 body,
 *                 body over the cap): retry the same URL after the delay
 *                 returned by the next cbev_session_begin().
 *  CBEV_EAUTH     401/403 after auth_retries retries of it (each retry
 *                 returned CBEV_EAGAIN, logged at warn); the count starts
 *                 over, so a caller that keeps going gets them again.
 *  CBEV_EHTTP     another status (400 other than "waited too long", 3xx
 *                 since redirects are never followed, 404, ...).
 *  CBEV_EURL      the nextUrl was refused; the cursor is kept and a retry
 *                 is scheduled with backoff (the caller decides whether to
 *                 wait for it or stop).
 *  CBEV_ERETRIES  a transient failure used up retry_attempts. The attempt
 *                 counter restarts, so a caller that keeps going gets a
 *                 fresh budget (still paced by the backoff).
 *  CBEV_EINVAL    NULL arguments, or no cbev_session_begin() answered yet.
 *  CBEV_ENOMEM    nothing moved; the next begin() waits the backoff.
 * Statuses: 200 with the events object and 400 "waited too long for
 * events" give CBEV_OK; a 200 whose body is not a JSON object holding an
 * "events" array, 429, every 5xx (not only 500/502/503/504/52x: a server
 * error says nothing about the request), a transport error, a body over the
 * cap and a missing status give CBEV_EAGAIN; other 1xx/2xx/3xx/4xx give
 * CBEV_EHTTP. A 400 counts as "waited too long" when its "status" holds
 * those words anywhere, in any case. A 3xx is logged with the scheme, host
 * and port its Location leads to (resolved against the URL requested),
 * never its path or query. A nextUrl padded with ASCII white space is
 * read without it (cbev_batch_next_url). A relative nextUrl is resolved against the URL requested,
 * then checked. Events whose id is not after the last id returned are
 * dropped from the batch, and so are ids repeated or lower inside it
 * (cbev_batch_drop_seen), so a retried or restored cursor never yields an
 * event twice. An event whose id is not <ms>-<seq> is delivered, logged
 * at warn, and never becomes cbev_session_last_id(). Each retry is logged once, at warn,
 * with the delay and the attempt that follows.
 * After any non-OK result, cbev_session_last_error() tells more. */
int cbev_session_on_response(cbev_session *s, const cbev_response *resp,
                             cbev_batch **batch);

/* The last failure: status (0 for transport errors), an excerpt of the body
 * (<= CBEV_EXCERPT_MAX bytes, masked, control characters replaced by '?',
 * NUL-terminated, "" if none) and the error code (CBEV_OK after a success;
 * CBEV_EPARSE, CBEV_ETRANSPORT, CBEV_ETOOBIG, CBEV_EHTTP or CBEV_EAUTH
 * (a 401/403 being retried) detail a CBEV_EAGAIN). Pointers are owned by the session. Any out may be NULL. */
void cbev_session_last_error(const cbev_session *s, int *rc, long *status,
                             const char **excerpt);

/* Delay (ms) computed for retry number attempt (1-based) without
 * Retry-After: min(max, backoff * factor^(attempt-1)), then jittered
 * uniformly into [delay/2, delay]. Exposed for tests. */
uint64_t cbev_session_backoff_ms(cbev_session *s, unsigned attempt);

/* Parses a Retry-After value: delta seconds or an HTTP-date (IMF-fixdate,
 * RFC 850 and asctime forms), relative to wall_now. Returns CBEV_OK with
 * *delay_ms (0 for a date in the past, at most CBEV_RETRY_AFTER_MAX_S
 * seconds), CBEV_EINVAL when unparsable. */
int cbev_parse_retry_after(const char *value, time_t wall_now,
                           uint64_t *delay_ms);


/* The cursor: the URL to load next (a secret) and the id of the last event
 * returned (NULL before the first). Owned by the session. */
const char *cbev_session_cursor_url(const cbev_session *s);
const char *cbev_session_last_id(const cbev_session *s);
/* Restores a saved cursor (e.g. from a cursor file). url must be absolute
 * and pass the same checks as a nextUrl; last_id (may be NULL: none) must
 * be an event id. Only url's i= parameter is used: it replaces the i= of
 * the configured feed URL, whose path, token and timeout= stay (so a
 * changed timeout_s or a rotated token applies to a saved cursor; SPEC 5).
 * Attempts and pending delays are reset. Returns CBEV_OK,
 * CBEV_EURL, CBEV_EINVAL (NULL url, bad last_id), CBEV_ENOMEM; on failure
 * the session is unchanged. */
int cbev_session_set_cursor(cbev_session *s, const char *url,
                            const char *last_id);

/* Attempts made for the current URL since its last success. */
unsigned cbev_session_attempts(const cbev_session *s);
const char *cbev_session_username(const cbev_session *s);
/* The token, for masking in the caller's own messages. A secret. */
const char *cbev_session_token(const cbev_session *s);
int cbev_session_timeout_s(const cbev_session *s);


#ifdef __cplusplus
}
#endif
#endif

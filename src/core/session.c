/*
 * session.c: the sans-I/O session: cursor, response classification, retry
 * scheduling and the last error. Its configuration (checks, the feed URL,
 * cbev_session_new/free) is session_new.c; the struct is session_impl.h.
 *
 * The session never performs I/O and never reads a clock: the driver hands
 * in now_ms and the response. Every decision is logged once, where it is
 * made, through cbev_log() with the token as the secret, so URLs and
 * excerpts may appear in messages without leaking it. URL rules live in
 * url.c, Retry-After parsing in retry_after.c, body parsing in the event
 * parser.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cbevents/alloc.h"
#include "cbevents/backoff.h"
#include "cbevents/error.h"
#include "cbevents/session.h"
#include "event_impl.h"
#include "log_impl.h"
#include "session_impl.h"
#include "url.h"

/* Part of the excerpt repeated in log lines. */
#define LOG_EXCERPT_MAX 80

/* What a 400's status must contain, in any case, to be the empty batch
 * (SPEC 1: "waited too long", "WAITED TOO LONG", "Waited too long for
 * events" are all seen). */
static const char waited_too_long[] = "waited too long";
/* Longest odd event id quoted in a warning. */
#define ODD_ID_SHOWN 40


uint64_t cbev_session_backoff_ms(cbev_session *s, unsigned attempt) {
  if (!s)
    return 0;
  return cbev_backoff_ms(s->backoff_s * 1000.0, s->factor, s->max_delay_s * 1000.0, attempt,
                         &s->rng);
}

/* Keeps a masked, printable excerpt of the body beside the error code
 * (masked before it is cut: see log_impl.h). Out of memory, the excerpt
 * stays empty. */
static void set_error(cbev_session *s, int rc, long status, const char *body,
                      size_t len) {
  s->err_rc = rc;
  s->err_status = status;
  cbev__log_excerpt(s->excerpt, sizeof s->excerpt, body, len, s->token, NULL);
}

/* How much of the (already masked) excerpt a log line repeats. */
static int excerpt_len(const cbev_session *s) {
  return (int)cbev__log_utf8_prefix(s->excerpt, strlen(s->excerpt), LOG_EXCERPT_MAX);
}

/* Counts a failed attempt and sets the time of the next one. Retry-After
 * wins over backoff (it is the server's word) but is capped. */
static uint64_t schedule(cbev_session *s, const cbev_response *resp) {
  uint64_t delay = 0;

  s->attempts++;
  if (!resp->transport_error && resp->retry_after &&
      cbev_parse_retry_after(resp->retry_after, resp->wall_now, &delay) == CBEV_OK) {
    /* delay is already capped at CBEV_RETRY_AFTER_MAX_S */
  } else {
    delay = cbev_session_backoff_ms(s, s->attempts);
  }
  s->due_ms = resp->now_ms + delay;
  return delay;
}

/* A transient failure: retry the same URL, or give up when the attempts
 * are used. what describes the failure ("HTTP 503"). */
static int transient(cbev_session *s, const cbev_response *resp, int rc_detail,
                     const char *what) {
  char quote[LOG_EXCERPT_MAX + 8] = "";
  uint64_t delay;

  set_error(s, rc_detail, resp->transport_error ? 0 : resp->status,
            resp->transport_error ? NULL : resp->body, resp->body_len);
  delay = schedule(s, resp);
  if (s->retry_attempts && s->attempts >= s->retry_attempts) {
    cbev_log(s->logger, s->token, CBEV_LOG_ERROR,
             "%s: %s, giving up after %u attempts", s->username, what, s->attempts);
    /* A caller that keeps going gets a fresh budget, still paced. */
    s->attempts = 0;
    s->err_rc = CBEV_ERETRIES;
    return CBEV_ERETRIES;
  }
  /* A bad 200 quotes the body (masked, cut after masking) in the same line:
   * one failure, one line. */
  if (rc_detail == CBEV_EPARSE)
    snprintf(quote, sizeof quote, " (\"%.*s\")", excerpt_len(s), s->excerpt);
  if (s->retry_attempts)
    cbev_log(s->logger, s->token, CBEV_LOG_WARN,
             "%s: %s%s, retrying in %.1f s (attempt %u of %u)", s->username, what,
             quote, (double)delay / 1000.0, s->attempts + 1, s->retry_attempts);
  else
    cbev_log(s->logger, s->token, CBEV_LOG_WARN,
             "%s: %s%s, retrying in %.1f s (attempt %u)", s->username, what, quote,
             (double)delay / 1000.0, s->attempts + 1);
  return CBEV_EAGAIN;
}

/* A failure that is not retried by the session. The next begin() is still
 * paced by backoff, so a driver that insists does not hammer the API. */
static int final(cbev_session *s, const cbev_response *resp, int rc,
                 const char *what) {
  set_error(s, rc, resp->status, resp->body, resp->body_len);
  schedule(s, resp);
  cbev_log(s->logger, s->token, CBEV_LOG_ERROR, "%s: %s, not retried%s%.*s",
           s->username, what, s->excerpt[0] ? ": " : "", excerpt_len(s), s->excerpt);
  return rc;
}

/* Out of memory while taking a response: nothing moved, and the next
 * begin() waits the backoff like after any failure (session.h), so a
 * driver short of memory does not re-request at once. */
static void out_of_memory(cbev_session *s, const cbev_response *resp) {
  set_error(s, CBEV_ENOMEM, resp->status, NULL, 0);
  schedule(s, resp);
}

/* Whether status (a 400's) is the long poll's "waited too long" answer:
 * the words anywhere, in any case (ASCII). */
static int is_waited_too_long(const char *status) {
  size_t n = sizeof waited_too_long - 1, len = status ? strlen(status) : 0;

  /* The length once: a hostile status may be megabytes long. */
  for (size_t i = 0; i + n <= len; i++)
    if (strncasecmp(status + i, waited_too_long, n) == 0)
      return 1;
  return 0;
}

/* 401/403: retried auth_retries times with the normal backoff (SPEC 1: a
 * lone one may come from the CDN's edge), then CBEV_EAUTH. */
static int auth_failure(cbev_session *s, const cbev_response *resp, const char *what) {
  uint64_t delay;

  if (s->auth_failures >= s->auth_retries) {
    s->auth_failures = 0; /* a caller that keeps going gets the retries again */
    return final(s, resp, CBEV_EAUTH, what);
  }
  s->auth_failures++;
  set_error(s, CBEV_EAUTH, resp->status, resp->body, resp->body_len);
  delay = schedule(s, resp);
  cbev_log(s->logger, s->token, CBEV_LOG_WARN,
           "%s: %s (authentication refused), retrying in %.1f s (retry %u of %u)",
           s->username, what, (double)delay / 1000.0, s->auth_failures, s->auth_retries);
  return CBEV_EAGAIN;
}

static int refuse_next_url(cbev_session *s, const cbev_response *resp,
                           const char *next) {
  char where[256];
  uint64_t delay;

  set_error(s, CBEV_EURL, resp->status, NULL, 0);
  delay = schedule(s, resp);
  /* Only the origin is logged: the path of a hostile nextUrl may carry the
   * token in a form the masking cannot know about. */
  cbev__url_origin(next, s->token, where, sizeof where);
  cbev_log(s->logger, s->token, CBEV_LOG_ERROR,
           "%s: refused nextUrl to %s: it must have the API's scheme, host and "
           "port (%s); keeping the cursor, retrying in %.1f s",
           s->username, where, "https, or http to loopback, no userinfo",
           (double)delay / 1000.0);
  return CBEV_EURL;
}

/* The body of a 200 must be the Events API object: its events array is
 * what tells it from any other JSON object. */
static int has_events_array(const cbev_batch *b) {
  return b && b->has_events;
}

/* Takes a good batch: moves the cursor, drops events already returned and
 * remembers the newest id. Nothing changes unless everything succeeds. */
static int accept_batch(cbev_session *s, const cbev_response *resp, cbev_batch *b,
                        cbev_batch **out) {
  const char *next = cbev_batch_next_url(b);
  const char *newest = s->last_id;
  char *cursor = NULL, *last = NULL;
  size_t dropped;
  int rc;

  if (next) {
    rc = cbev__url_resolve_checked(s->base, s->cursor, next, &cursor);
    if (rc == CBEV_EURL)
      rc = refuse_next_url(s, resp, next);
    else if (rc == CBEV_ENOMEM)
      out_of_memory(s, resp);
    if (rc != CBEV_OK)
      goto fail;
  }
  dropped = cbev_batch_drop_seen(b, s->last_id);
  if (dropped)
    cbev_log(s->logger, s->token, CBEV_LOG_INFO,
             "%s: skipped %zu duplicate event(s): ids not after %s or an earlier id of "
             "the batch", s->username, dropped, s->last_id ? s->last_id : "(none yet)");
  /* After drop_seen the event ids rise through the batch; one that is
   * not <ms>-<seq> is delivered but can never be the last id (SPEC 3): a
   * cursor must be an id the next answer can be compared with. */
  for (size_t i = 0; i < cbev_batch_count(b); i++) {
    const cbev_event *ev = cbev_batch_get(b, i);
    cbev_id id;
    if (!ev)
      continue;
    if (cbev_event_parsed_id(ev, &id) == CBEV_OK) {
      newest = cbev_event_id(ev);
    } else {
      char shown[ODD_ID_SHOWN + 1];
      int cut = 0;
      cbev__log_mask_cut(shown, sizeof shown, cbev_event_id(ev), s->token, &cut);
      cbev_log(s->logger, s->token, CBEV_LOG_WARN,
               "%s: event id \"%s\"%s is not of the form <ms>-<seq>; delivered, but "
               "the cursor stays at the last good id", s->username, shown, cut ? "..." : "");
    }
  }
  if (newest != s->last_id && !(last = cbev_strdup(newest))) {
    rc = CBEV_ENOMEM;
    out_of_memory(s, resp);
    goto fail;
  }
  if (cursor) {
    cbev_free(s->cursor);
    s->cursor = cursor;
  }
  if (last) {
    cbev_free(s->last_id);
    s->last_id = last;
  }
  s->attempts = 0;
  s->auth_failures = 0;
  s->due_ms = 0;
  s->err_rc = CBEV_OK;
  s->err_status = resp->status;
  s->excerpt[0] = '\0';
  *out = b;
  return CBEV_OK;
fail:
  cbev_free(cursor);
  cbev_batch_free(b);
  return rc;
}

int cbev_session_on_response(cbev_session *s, const cbev_response *resp,
                             cbev_batch **batch) {
  cbev_batch *b = NULL;
  char what[160];
  long st;
  int rc;

  if (!s || !resp || !batch || !s->in_flight)
    return CBEV_EINVAL;
  *batch = NULL;
  s->in_flight = 0;
  st = resp->status;
  if (resp->transport_error) {
    snprintf(what, sizeof what, "transport error (curl code %d)",
             resp->transport_error);
    return transient(s, resp, CBEV_ETRANSPORT, what);
  }
  if (resp->too_big)
    return transient(s, resp, CBEV_ETOOBIG, "response body over the size cap");
  snprintf(what, sizeof what, "HTTP %ld", st);
  if (st == 200 || st == 400) {
    rc = cbev_parse_response(resp->body ? resp->body : "", resp->body ? resp->body_len : 0,
                             s->logger, s->token, &b);
    if (rc == CBEV_ENOMEM) {
      out_of_memory(s, resp);
      return rc;
    }
    if (st == 200) {
      if (rc == CBEV_OK && has_events_array(b))
        return accept_batch(s, resp, b, batch);
      cbev_batch_free(b);
      return transient(s, resp, CBEV_EPARSE,
                       "HTTP 200 with a body that is not an events object");
    }
    /* The long poll ended without events: an empty batch, not an error. */
    if (rc == CBEV_OK && is_waited_too_long(cbev_batch_status(b)))
      return accept_batch(s, resp, b, batch);
    cbev_batch_free(b);
    return final(s, resp, CBEV_EHTTP, what);
  }
  if (st == 401 || st == 403)
    return auth_failure(s, resp, what);
  if (st >= 300 && st < 400) {
    /* Only where it leads (scheme, host, port): its path and query may
     * hold the token in a form the masking cannot know. */
    char where[256] = "(no Location)";
    if (resp->location)
      cbev__url_target_origin(s->cursor, resp->location, s->token, where, sizeof where);
    snprintf(what, sizeof what, "HTTP %ld redirect to %.*s (never followed)", st,
             (int)cbev__log_utf8_prefix(where, strlen(where), 100), where);
    return final(s, resp, CBEV_EHTTP, what);
  }
  /* 429 and every 5xx (the 52x of Cloudflare included, and the others too:
   * a server error says nothing about the request being wrong). A missing
   * status is a broken transfer. */
  if (st == 429 || (st >= 500 && st <= 599))
    return transient(s, resp, CBEV_EHTTP, what);
  if (st == 0)
    return transient(s, resp, CBEV_ETRANSPORT, "no HTTP status");
  return final(s, resp, CBEV_EHTTP, what);
}

int cbev_session_begin(cbev_session *s, uint64_t now_ms, const char **url,
                       uint64_t *wait_ms) {
  uint64_t wait = 0;

  if (!s || !url || !wait_ms)
    return CBEV_EINVAL;
  *url = NULL;
  *wait_ms = 0;
  if (now_ms < s->due_ms) {
    *wait_ms = s->due_ms - now_ms;
    return CBEV_EAGAIN;
  }
  if (s->limiter && cbev_ratelimit_acquire(s->limiter, now_ms, &wait) != CBEV_OK) {
    *wait_ms = wait ? wait : 1;
    return CBEV_EAGAIN;
  }
  s->in_flight = 1;
  *url = s->cursor;
  cbev_log(s->logger, s->token, CBEV_LOG_DEBUG, "%s: GET %s", s->username, s->cursor);
  return CBEV_OK;
}

void cbev_session_last_error(const cbev_session *s, int *rc, long *status,
                             const char **excerpt) {
  if (rc)
    *rc = s ? s->err_rc : CBEV_EINVAL;
  if (status)
    *status = s ? s->err_status : 0;
  if (excerpt)
    *excerpt = s ? s->excerpt : "";
}

const char *cbev_session_cursor_url(const cbev_session *s) { return s ? s->cursor : NULL; }
const char *cbev_session_last_id(const cbev_session *s) { return s ? s->last_id : NULL; }
unsigned cbev_session_attempts(const cbev_session *s) { return s ? s->attempts : 0; }
const char *cbev_session_username(const cbev_session *s) { return s ? s->username : NULL; }
const char *cbev_session_token(const cbev_session *s) { return s ? s->token : NULL; }
int cbev_session_timeout_s(const cbev_session *s) { return s ? s->timeout_s : 0; }

int cbev_session_set_cursor(cbev_session *s, const char *url, const char *last_id) {
  char *cursor = NULL, *last = NULL;
  cbev_id id;
  int rc = CBEV_EINVAL;

  if (!s || !url)
    goto out;
  if (last_id && cbev_id_parse(last_id, &id) != CBEV_OK) {
    char shown[41];
    cbev__log_mask_cut(shown, sizeof shown, last_id, s->token, NULL);
    cbev_log(s->logger, s->token, CBEV_LOG_ERROR,
             "%s: restored cursor: last id \"%s\" is not an event id", s->username,
             shown);
    goto out;
  }
  /* Only the saved position (i=) carries over onto the configured feed
   * URL: a timeout or token saved with it would override the settings. */
  rc = cbev_url_check_same_origin(s->base, url);
  if (rc == CBEV_OK)
    rc = cbev__url_with_cursor(s->feed, url, &cursor);
  if (rc == CBEV_EURL) {
    char where[256];
    cbev__url_origin(url, s->token, where, sizeof where);
    cbev_log(s->logger, s->token, CBEV_LOG_ERROR,
             "%s: restored cursor refused: %s is not the API's scheme, host and port",
             s->username, where);
  }
  if (rc != CBEV_OK)
    goto out;
  rc = CBEV_ENOMEM;
  if (last_id && !(last = cbev_strdup(last_id)))
    goto out;
  cbev_free(s->cursor);
  s->cursor = cursor;
  cursor = NULL;
  cbev_free(s->last_id);
  s->last_id = last;
  last = NULL;
  s->attempts = 0;
  s->auth_failures = 0;
  s->due_ms = 0;
  rc = CBEV_OK;
out:
  cbev_free(cursor);
  cbev_free(last);
  return rc;
}

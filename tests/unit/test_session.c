/* Unit tests of the sans-I/O session: every status of SPEC section 1 (a
 * table), cursor and last id across errors, refused nextUrls, retry
 * budgets, Retry-After, the rate limiter, config validation, restored
 * cursors, masking of the token in every log line and excerpt, and
 * allocation failures. Time is a fake clock; no sockets, no sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/ratelimit.h"
#include "cbevents/session.h"

#define BASE "https://eventsapi.chaturbate.com/events"
#define FEED BASE "/alice/tok123/"
#define FIRST FEED "?timeout=10"
#define NEXT FEED "?i=1755376889458-1&timeout=10"
#define ID0 "1755376889458-0"
#define ID1 "1755376889458-1"
#define ID2 "1755376890000-0"

/* ---- a logger that keeps every line ---- */

#define MAX_LINES 512
typedef struct captured {
  int count;
  cbev_log_level level[MAX_LINES];
  char line[MAX_LINES][2100];
} captured;

static void capture(void *ud, cbev_log_level level, const char *msg) {
  captured *c = ud;
  if (c->count >= MAX_LINES)
    return;
  c->level[c->count] = level;
  snprintf(c->line[c->count], sizeof c->line[0], "%s", msg);
  c->count++;
}

/* Index of the first line holding needle at level, or -1. */
static int find_line(const captured *c, cbev_log_level level, const char *needle) {
  for (int i = 0; i < c->count; i++) {
    if (c->level[i] == level && strstr(c->line[i], needle))
      return i;
  }
  return -1;
}

/* Neither the raw token nor any percent-encoded form may appear. */
static void assert_no_secret(const char *text, const char *const *forms) {
  for (size_t i = 0; forms[i]; i++) {
    if (strstr(text, forms[i]))
      fail_msg("secret form \"%s\" leaked in: %s", forms[i], text);
  }
}

/* ---- helpers ---- */

static cbev_session_config base_cfg(const cbev_logger *lg) {
  cbev_session_config cfg;
  cbev_session_config_init(&cfg);
  cfg.username = "alice";
  cfg.token = "tok123";
  cfg.logger = lg;
  cfg.seed = 99;
  return cfg;
}

static cbev_session *new_session(const cbev_session_config *cfg) {
  cbev_session *s = NULL;
  assert_int_equal(cbev_session_new(cfg, &s), CBEV_OK);
  assert_non_null(s);
  return s;
}

/* A body of follow events with the given ids; next_json is the JSON text
 * of nextUrl ("null", "\"...\"") or NULL to leave it out. */
static char *events_body(const char *const *ids, size_t n, const char *next_json) {
  size_t cap = 256 + n * 200 + (next_json ? strlen(next_json) : 0);
  char *b = malloc(cap);
  size_t len;
  assert_non_null(b);
  len = (size_t)snprintf(b, cap, "{\"events\":[");
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(b + len, cap - len,
                            "%s{\"method\":\"follow\",\"id\":\"%s\",\"object\":"
                            "{\"broadcaster\":\"alice\",\"user\":{\"username\":\"bob\"}}}",
                            i ? "," : "", ids[i]);
  len += (size_t)snprintf(b + len, cap - len, "]");
  if (next_json)
    len += (size_t)snprintf(b + len, cap - len, ",\"nextUrl\":%s", next_json);
  snprintf(b + len, cap - len, "}");
  return b;
}

typedef struct fake {
  long status;
  const char *body;
  const char *retry_after;
  const char *location;
  int transport_error;
  int too_big;
  time_t wall_now;
} fake;

/* begin at now (must be allowed), then deliver the fake response at now. */
static int exchange(cbev_session *s, uint64_t now, const fake *f, cbev_batch **batch) {
  const char *url = NULL;
  uint64_t wait = 12345;
  cbev_response r;

  if (cbev_session_begin(s, now, &url, &wait) != CBEV_OK)
    fail_msg("begin at %llu refused (wait %llu)", (unsigned long long)now,
             (unsigned long long)wait);
  assert_non_null(url);
  assert_string_equal(url, cbev_session_cursor_url(s));
  memset(&r, 0, sizeof r);
  r.now_ms = now;
  r.wall_now = f->wall_now ? f->wall_now : (time_t)1755376889;
  r.status = f->status;
  r.body = f->body;
  r.body_len = f->body ? strlen(f->body) : 0;
  r.retry_after = f->retry_after;
  r.location = f->location;
  r.transport_error = f->transport_error;
  r.too_big = f->too_big;
  return cbev_session_on_response(s, &r, batch);
}

/* The wait the session asks for at now (0 when a request may start). */
static uint64_t wait_at(cbev_session *s, uint64_t now) {
  const char *url = NULL;
  uint64_t wait = 0;
  int rc = cbev_session_begin(s, now, &url, &wait);

  /* A begin that succeeds is simply followed by the next exchange's. */
  if (rc == CBEV_OK)
    return 0;
  assert_int_equal(rc, CBEV_EAGAIN);
  assert_null(url);
  assert_true(wait > 0);
  return wait;
}

/* ---- the status table of SPEC section 1 ---- */

#define GOOD_NEXT                                                                   \
  "{\"events\":[{\"method\":\"tip\",\"id\":\"" ID1 "\",\"object\":{\"broadcaster\":"  \
  "\"alice\",\"tip\":{\"tokens\":5}}}],\"nextUrl\":\"" NEXT "\"}"
#define WAITED "{\"status\":\"waited too long for events\",\"nextUrl\":\"" NEXT "\"}"

typedef struct status_case {
  const char *name;
  fake f;
  int want_rc;
  int want_err;      /* cbev_session_last_error rc */
  long want_status;  /* cbev_session_last_error status */
  int want_batch;    /* a batch is returned */
  const char *want_cursor;
  int want_attempts;
} status_case;

static const status_case status_cases[] = {
    {"200 good", {200, GOOD_NEXT, 0, 0, 0, 0, 0}, CBEV_OK, CBEV_OK, 200, 1, NEXT, 0},
    {"200 null nextUrl", {200, "{\"events\":[],\"nextUrl\":null}", 0, 0, 0, 0, 0},
     CBEV_OK, CBEV_OK, 200, 1, FIRST, 0},
    {"200 no nextUrl", {200, "{\"events\":[]}", 0, 0, 0, 0, 0}, CBEV_OK, CBEV_OK, 200,
     1, FIRST, 0},
    {"200 not JSON", {200, "<html>oops</html>", 0, 0, 0, 0, 0}, CBEV_EAGAIN,
     CBEV_EPARSE, 200, 0, FIRST, 1},
    {"200 array", {200, "[]", 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EPARSE, 200, 0, FIRST, 1},
    {"200 no events", {200, "{\"nextUrl\":\"" NEXT "\"}", 0, 0, 0, 0, 0}, CBEV_EAGAIN,
     CBEV_EPARSE, 200, 0, FIRST, 1},
    {"200 events not array", {200, "{\"events\":{}}", 0, 0, 0, 0, 0}, CBEV_EAGAIN,
     CBEV_EPARSE, 200, 0, FIRST, 1},
    {"200 empty body", {200, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EPARSE, 200, 0,
     FIRST, 1},
    {"200 truncated", {200, "{\"events\":[", 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EPARSE,
     200, 0, FIRST, 1},
    {"400 waited too long", {400, WAITED, 0, 0, 0, 0, 0}, CBEV_OK, CBEV_OK, 400, 1,
     NEXT, 0},
    {"400 other status", {400, "{\"status\":\"bad request\"}", 0, 0, 0, 0, 0},
     CBEV_EHTTP, CBEV_EHTTP, 400, 0, FIRST, 1},
    {"400 not JSON", {400, "Bad Request", 0, 0, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 400,
     0, FIRST, 1},
    /* SPEC 1: the wording of the timeout answer varies; the words count. */
    {"400 WAITED TOO LONG", {400, "{\"status\":\"WAITED TOO LONG\",\"nextUrl\":\"" NEXT "\"}",
     0, 0, 0, 0, 0}, CBEV_OK, CBEV_OK, 400, 1, NEXT, 0},
    {"400 Waited too long", {400, "{\"status\":\"Waited too long for events\",\"nextUrl\":\""
     NEXT "\"}", 0, 0, 0, 0, 0}, CBEV_OK, CBEV_OK, 400, 1, NEXT, 0},
    {"400 waited too long, inside", {400, "{\"status\":\"Timeout: waited too long (10 s)\","
     "\"nextUrl\":\"" NEXT "\"}", 0, 0, 0, 0, 0}, CBEV_OK, CBEV_OK, 400, 1, NEXT, 0},
    {"400 waited too lon", {400, "{\"status\":\"waited too lon\",\"nextUrl\":\"" NEXT "\"}",
     0, 0, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 400, 0, FIRST, 1},
    /* 401/403: retried (auth_retries, default 2) before CBEV_EAUTH. */
    {"401", {401, "Unauthorized", 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EAUTH, 401, 0, FIRST,
     1},
    {"403", {403, "{\"status\":\"forbidden\"}", 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EAUTH,
     403, 0, FIRST, 1},
    {"200 padded nextUrl", {200, "{\"events\":[],\"nextUrl\":\" \\t" NEXT "\\r\\n \"}", 0, 0, 0,
     0, 0}, CBEV_OK, CBEV_OK, 200, 1, NEXT, 0},
    {"301", {301, "", 0, "https://evil.example/x", 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 301,
     0, FIRST, 1},
    {"302", {302, NULL, 0, NEXT, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 302, 0, FIRST, 1},
    {"307", {307, NULL, 0, NULL, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 307, 0, FIRST, 1},
    {"308", {308, NULL, 0, "/elsewhere", 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 308, 0, FIRST,
     1},
    {"404", {404, "Not Found", 0, 0, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 404, 0, FIRST, 1},
    {"405", {405, NULL, 0, 0, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 405, 0, FIRST, 1},
    {"408", {408, NULL, 0, 0, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 408, 0, FIRST, 1},
    {"418", {418, NULL, 0, 0, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 418, 0, FIRST, 1},
    {"204", {204, NULL, 0, 0, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 204, 0, FIRST, 1},
    {"100", {100, NULL, 0, 0, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 100, 0, FIRST, 1},
    {"600", {600, NULL, 0, 0, 0, 0, 0}, CBEV_EHTTP, CBEV_EHTTP, 600, 0, FIRST, 1},
    {"429", {429, "slow down", 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 429, 0, FIRST, 1},
    {"500", {500, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 500, 0, FIRST, 1},
    {"502", {502, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 502, 0, FIRST, 1},
    {"503", {503, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 503, 0, FIRST, 1},
    {"504", {504, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 504, 0, FIRST, 1},
    {"520", {520, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 520, 0, FIRST, 1},
    {"521", {521, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 521, 0, FIRST, 1},
    {"522", {522, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 522, 0, FIRST, 1},
    {"523", {523, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 523, 0, FIRST, 1},
    {"524", {524, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 524, 0, FIRST, 1},
    /* other 5xx are retried too (documented in session.h) */
    {"501", {501, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 501, 0, FIRST, 1},
    {"505", {505, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 505, 0, FIRST, 1},
    {"599", {599, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_EHTTP, 599, 0, FIRST, 1},
    {"transport error", {0, "ignored", 0, 0, 7, 0, 0}, CBEV_EAGAIN, CBEV_ETRANSPORT, 0,
     0, FIRST, 1},
    {"transport error with status", {200, GOOD_NEXT, 0, 0, 28, 0, 0}, CBEV_EAGAIN,
     CBEV_ETRANSPORT, 0, 0, FIRST, 1},
    {"too big", {200, "{\"events\":[", 0, 0, 0, 1, 0}, CBEV_EAGAIN, CBEV_ETOOBIG, 200, 0,
     FIRST, 1},
    {"no status", {0, NULL, 0, 0, 0, 0, 0}, CBEV_EAGAIN, CBEV_ETRANSPORT, 0, 0, FIRST, 1},
};

static void test_status_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof status_cases / sizeof status_cases[0]; i++) {
    const status_case *c = &status_cases[i];
    captured *cap = calloc(1, sizeof *cap);
    cbev_logger lg = {capture, cap, CBEV_LOG_DEBUG};
    cbev_session_config cfg = base_cfg(&lg);
    cbev_session *s = new_session(&cfg);
    cbev_batch *b = (cbev_batch *)&cfg; /* must be overwritten */
    const char *excerpt = NULL;
    long status = -1;
    int rc, err = -1;

    rc = exchange(s, 1000, &c->f, &b);
    if (rc != c->want_rc)
      fail_msg("%s: rc %d (%s), want %d", c->name, rc, cbev_strerror(rc), c->want_rc);
    if (c->want_batch)
      assert_non_null(b);
    else
      assert_null(b);
    cbev_session_last_error(s, &err, &status, &excerpt);
    if (err != c->want_err || status != c->want_status)
      fail_msg("%s: last error %d/%ld, want %d/%ld", c->name, err, status, c->want_err,
               c->want_status);
    assert_non_null(excerpt);
    assert_string_equal(cbev_session_cursor_url(s), c->want_cursor);
    assert_int_equal(cbev_session_attempts(s), c->want_attempts);
    if (c->want_rc == CBEV_OK) {
      /* success: the next request may start at once */
      assert_int_equal(wait_at(s, 1000), 0);
    } else {
      /* every failure paces the next begin with the first backoff step */
      uint64_t w = wait_at(s, 1000);
      assert_in_range(w, 500, 1000);
      /* each failure is logged once: a retry at warn, the others at error */
      int warn = find_line(cap, CBEV_LOG_WARN, "retrying in");
      int error = find_line(cap, CBEV_LOG_ERROR, "not retried");
      if (c->want_rc == CBEV_EAGAIN)
        assert_true(warn >= 0 && error < 0);
      else
        assert_true(error >= 0 && warn < 0);
    }
    if (c->want_rc == CBEV_OK && strcmp(c->name, "200 good") == 0) {
      assert_int_equal(cbev_batch_count(b), 1);
      assert_string_equal(cbev_session_last_id(s), ID1);
    } else {
      assert_null(cbev_session_last_id(s));
    }
    if (c->f.status >= 300 && c->f.status < 400)
      assert_true(find_line(cap, CBEV_LOG_ERROR, "never followed") >= 0);
    cbev_batch_free(b);
    cbev_session_free(s);
    free(cap);
  }
}

/* The log line of a retry says what failed and what happens next. */
static void test_retry_log_line(void **state) {
  captured *cap = calloc(1, sizeof *cap);
  cbev_logger lg = {capture, cap, CBEV_LOG_INFO};
  cbev_session_config cfg = base_cfg(&lg);
  cbev_session *s;
  cbev_batch *b = NULL;
  fake f503 = {503, NULL, NULL, NULL, 0, 0, 0};
  fake f429 = {429, NULL, "4", NULL, 0, 0, 0};
  char want[128];
  (void)state;

  cfg.seed = 5;
  s = new_session(&cfg);
  assert_int_equal(exchange(s, 0, &f503, &b), CBEV_EAGAIN);
  uint64_t w = wait_at(s, 0);
  snprintf(want, sizeof want, "alice: HTTP 503, retrying in %.1f s (attempt 2 of 8)",
           (double)w / 1000.0);
  assert_int_equal(cap->count, 1);
  assert_string_equal(cap->line[0], want);
  assert_int_equal(exchange(s, w, &f429, &b), CBEV_EAGAIN);
  assert_string_equal(cap->line[1], "alice: HTTP 429, retrying in 4.0 s (attempt 3 of 8)");
  cbev_session_free(s);
  free(cap);
}

/* ---- cursor, last id and duplicates ---- */

static void test_cursor_kept_across_errors(void **state) {
  static const char *const first[] = {ID0, ID1};
  static const char *const again[] = {ID1, ID2};
  static const char *const old[] = {ID0, ID1};
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s = new_session(&cfg);
  cbev_batch *b = NULL;
  char *body;
  uint64_t t = 0;
  (void)state;

  assert_string_equal(cbev_session_cursor_url(s), FIRST);
  assert_null(cbev_session_last_id(s));
  body = events_body(first, 2, "\"" NEXT "\"");
  fake ok = {200, body, NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, t, &ok, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 2);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 0)), ID0);
  assert_string_equal(cbev_session_cursor_url(s), NEXT);
  assert_string_equal(cbev_session_last_id(s), ID1);
  cbev_batch_free(b);
  free(body);

  /* errors keep the cursor and the last id */
  fake e503 = {503, NULL, NULL, NULL, 0, 0, 0};
  fake terr = {0, NULL, NULL, NULL, 6, 0, 0};
  assert_int_equal(exchange(s, t, &e503, &b), CBEV_EAGAIN);
  t += wait_at(s, t);
  assert_int_equal(exchange(s, t, &terr, &b), CBEV_EAGAIN);
  assert_int_equal(cbev_session_attempts(s), 2);
  assert_string_equal(cbev_session_cursor_url(s), NEXT);
  assert_string_equal(cbev_session_last_id(s), ID1);
  t += wait_at(s, t);

  /* a retried cursor that repeats ID1: only ID2 comes out; null nextUrl
   * keeps the cursor */
  body = events_body(again, 2, "null");
  fake ok2 = {200, body, NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, t, &ok2, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 1);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 0)), ID2);
  assert_string_equal(cbev_session_cursor_url(s), NEXT);
  assert_string_equal(cbev_session_last_id(s), ID2);
  assert_int_equal(cbev_session_attempts(s), 0);
  cbev_batch_free(b);
  free(body);

  /* only old events: an empty batch, last id unchanged; a relative
   * nextUrl is resolved against the URL requested */
  body = events_body(old, 2, "\"?i=" ID2 "\"");
  fake ok3 = {200, body, NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, t, &ok3, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 0);
  assert_string_equal(cbev_session_last_id(s), ID2);
  assert_string_equal(cbev_session_cursor_url(s), FEED "?i=" ID2);
  cbev_batch_free(b);
  free(body);
  cbev_session_free(s);
}

static void test_waited_too_long_follows_next_url(void **state) {
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s = new_session(&cfg);
  cbev_batch *b = NULL;
  fake f = {400, WAITED, NULL, NULL, 0, 0, 0};
  (void)state;
  assert_int_equal(exchange(s, 5, &f, &b), CBEV_OK);
  assert_non_null(b);
  assert_int_equal(cbev_batch_count(b), 0);
  assert_string_equal(cbev_session_cursor_url(s), NEXT);
  cbev_batch_free(b);
  /* the waited form with a hostile nextUrl is refused like any other */
  fake evil = {400, "{\"status\":\"waited too long for events\",\"nextUrl\":"
                    "\"https://evil.example/events/alice/tok123/\"}",
               NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, 5, &evil, &b), CBEV_EURL);
  assert_null(b);
  assert_string_equal(cbev_session_cursor_url(s), NEXT);
  cbev_session_free(s);
}

/* ---- refused nextUrl ---- */

static void test_refused_next_url(void **state) {
  static const char *const hostile[] = {
      "\"https://evil.example/events/alice/tok123/?i=1\"",
      "\"//evil.example/events/alice/tok123/\"",
      "\"http://eventsapi.chaturbate.com/events/alice/tok123/\"",
      "\"https://eventsapi.chaturbate.com:8443/events/alice/tok123/\"",
      "\"https://alice:tok123@eventsapi.chaturbate.com/events/\"",
      "\"https://eventsapi.chaturbate.com@evil.example/\"",
      "\"not a url at all\"",
      "\"\"",
  };
  static const char *const ids[] = {ID2};
  const char *const forms[] = {"tok123", NULL};
  (void)state;
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    captured *cap = calloc(1, sizeof *cap);
    cbev_logger lg = {capture, cap, CBEV_LOG_DEBUG};
    cbev_session_config cfg = base_cfg(&lg);
    cbev_session *s = new_session(&cfg);
    cbev_batch *b = NULL;
    char *body = events_body(ids, 1, hostile[i]);
    fake f = {200, body, NULL, NULL, 0, 0, 0};
    int err;

    if (exchange(s, 100, &f, &b) != CBEV_EURL)
      fail_msg("nextUrl %s not refused", hostile[i]);
    assert_null(b);
    /* the last good cursor is kept, nothing was delivered */
    assert_string_equal(cbev_session_cursor_url(s), FIRST);
    assert_null(cbev_session_last_id(s));
    cbev_session_last_error(s, &err, NULL, NULL);
    assert_int_equal(err, CBEV_EURL);
    /* a retry is scheduled with backoff */
    assert_int_equal(cbev_session_attempts(s), 1);
    assert_in_range(wait_at(s, 100), 500, 1000);
    int line = find_line(cap, CBEV_LOG_ERROR, "refused nextUrl");
    assert_true(line >= 0);
    for (int k = 0; k < cap->count; k++)
      assert_no_secret(cap->line[k], forms);
    free(body);
    cbev_session_free(s);
    free(cap);
  }
}

/* ---- retry budget ---- */

static void test_attempts_exhaustion(void **state) {
  captured *cap = calloc(1, sizeof *cap);
  cbev_logger lg = {capture, cap, CBEV_LOG_WARN};
  cbev_session_config cfg = base_cfg(&lg);
  cbev_session *s;
  cbev_batch *b = NULL;
  fake f = {503, NULL, NULL, NULL, 0, 0, 0};
  uint64_t t = 0;
  (void)state;

  cfg.retry_attempts = 3;
  s = new_session(&cfg);
  for (int round = 0; round < 2; round++) {
    assert_int_equal(exchange(s, t, &f, &b), CBEV_EAGAIN);
    assert_int_equal(cbev_session_attempts(s), 1);
    t += wait_at(s, t);
    assert_int_equal(exchange(s, t, &f, &b), CBEV_EAGAIN);
    assert_int_equal(cbev_session_attempts(s), 2);
    t += wait_at(s, t);
    assert_int_equal(exchange(s, t, &f, &b), CBEV_ERETRIES);
    /* a fresh budget for a caller that keeps going, still paced */
    assert_int_equal(cbev_session_attempts(s), 0);
    int err;
    long st;
    cbev_session_last_error(s, &err, &st, NULL);
    assert_int_equal(err, CBEV_ERETRIES);
    assert_int_equal(st, 503);
    assert_string_equal(cbev_session_cursor_url(s), FIRST);
    t += wait_at(s, t);
  }
  assert_true(find_line(cap, CBEV_LOG_ERROR, "alice: HTTP 503, giving up after 3 attempts") >= 0);
  assert_true(find_line(cap, CBEV_LOG_WARN, "(attempt 3 of 3)") >= 0);
  assert_int_equal(find_line(cap, CBEV_LOG_WARN, "(attempt 4 of 3)"), -1);
  cbev_session_free(s);

  /* 0 = forever: never ERETRIES, delays stay under the cap */
  cfg.retry_attempts = 0;
  s = new_session(&cfg);
  t = 0;
  for (int i = 0; i < 60; i++) {
    assert_int_equal(exchange(s, t, &f, &b), CBEV_EAGAIN);
    uint64_t w = wait_at(s, t);
    assert_true(w <= 30000);
    t += w;
  }
  assert_int_equal(cbev_session_attempts(s), 60);
  assert_true(find_line(cap, CBEV_LOG_WARN, "(attempt 61)") >= 0);
  cbev_session_free(s);
  free(cap);
}

/* A success resets the attempts: the budget is per request. */
static void test_success_resets_attempts(void **state) {
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s;
  cbev_batch *b = NULL;
  fake bad = {502, NULL, NULL, NULL, 0, 0, 0};
  fake ok = {200, GOOD_NEXT, NULL, NULL, 0, 0, 0};
  uint64_t t = 0;
  (void)state;
  cfg.retry_attempts = 2;
  s = new_session(&cfg);
  assert_int_equal(exchange(s, t, &bad, &b), CBEV_EAGAIN);
  t += wait_at(s, t);
  assert_int_equal(exchange(s, t, &ok, &b), CBEV_OK);
  cbev_batch_free(b);
  assert_int_equal(cbev_session_attempts(s), 0);
  assert_int_equal(exchange(s, t, &bad, &b), CBEV_EAGAIN);
  cbev_session_free(s);
}

/* ---- delays ---- */

static void test_delays_follow_backoff(void **state) {
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s;
  cbev_batch *b = NULL;
  fake f = {500, NULL, NULL, NULL, 0, 0, 0};
  uint64_t t = 10000, d = 1000;
  (void)state;
  cfg.retry_attempts = 0;
  s = new_session(&cfg);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(exchange(s, t, &f, &b), CBEV_EAGAIN);
    uint64_t w = wait_at(s, t);
    assert_in_range(w, d / 2, d);
    /* asking again later says how much is left */
    assert_int_equal(wait_at(s, t + w / 2), w - w / 2);
    t += w;
    d = d * 2 > 30000 ? 30000 : d * 2;
  }
  cbev_session_free(s);
}

static void test_retry_after_wins(void **state) {
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s = new_session(&cfg);
  cbev_batch *b = NULL;
  (void)state;

  fake f = {429, NULL, "7", NULL, 0, 0, 0};
  assert_int_equal(exchange(s, 1000, &f, &b), CBEV_EAGAIN);
  assert_int_equal(wait_at(s, 1000), 7000);
  assert_int_equal(wait_at(s, 7999), 1);
  /* an HTTP date, 20 s after the wall clock of the response */
  fake g = {503, NULL, "Sun, 06 Nov 1994 08:49:57 GMT", NULL, 0, 0, (time_t)784111777};
  assert_int_equal(exchange(s, 8000, &g, &b), CBEV_EAGAIN);
  assert_int_equal(wait_at(s, 8000), 20000);
  /* capped at an hour */
  fake h = {503, NULL, "86400", NULL, 0, 0, 0};
  assert_int_equal(exchange(s, 28000, &h, &b), CBEV_EAGAIN);
  assert_int_equal(wait_at(s, 28000), 3600000);
  /* a date in the past: at once */
  fake p = {503, NULL, "Sun, 06 Nov 1994 08:49:37 GMT", NULL, 0, 0, (time_t)1755376889};
  assert_int_equal(exchange(s, 3628000, &p, &b), CBEV_EAGAIN);
  assert_int_equal(wait_at(s, 3628000), 0);
  /* garbage: the backoff of attempt 5 (16 s, jittered) */
  fake q = {503, NULL, "whenever", NULL, 0, 0, 0};
  assert_int_equal(exchange(s, 3628000, &q, &b), CBEV_EAGAIN);
  assert_int_equal(cbev_session_attempts(s), 5);
  assert_in_range(wait_at(s, 3628000), 8000, 16000);
  cbev_session_free(s);
}

/* ---- rate limiter ---- */

static void test_rate_limiter(void **state) {
  cbev_ratelimit *rl = NULL;
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *a, *c;
  cbev_batch *b = NULL;
  const char *url;
  uint64_t w;
  fake ok = {200, "{\"events\":[]}", NULL, NULL, 0, 0, 0};
  fake bad = {503, NULL, NULL, NULL, 0, 0, 0};
  (void)state;

  /* 2 requests per second, shared by two sessions */
  assert_int_equal(cbev_ratelimit_new(2, 1.0, &rl), CBEV_OK);
  cfg.limiter = rl;
  a = new_session(&cfg);
  cfg.username = "carol";
  c = new_session(&cfg);
  assert_int_equal(exchange(a, 0, &ok, &b), CBEV_OK);
  cbev_batch_free(b);
  assert_int_equal(exchange(c, 0, &ok, &b), CBEV_OK);
  cbev_batch_free(b);
  assert_int_equal(cbev_session_begin(a, 0, &url, &w), CBEV_EAGAIN);
  assert_null(url);
  assert_int_equal(w, 500);
  assert_int_equal(cbev_session_begin(c, 250, &url, &w), CBEV_EAGAIN);
  assert_int_equal(w, 250);
  assert_int_equal(exchange(c, 500, &ok, &b), CBEV_OK);
  cbev_batch_free(b);
  assert_int_equal(cbev_session_begin(a, 500, &url, &w), CBEV_EAGAIN);

  /* a backoff wait does not spend a token: after it, the bucket decides */
  assert_int_equal(exchange(a, 1000, &bad, &b), CBEV_EAGAIN); /* takes the token of t=1000 */
  w = wait_at(a, 1000);
  assert_in_range(w, 500, 1000);
  assert_int_equal(cbev_session_begin(a, 1000 + w - 1, &url, &w), CBEV_EAGAIN);
  assert_int_equal(w, 1); /* still the backoff speaking */
  cbev_session_free(a);
  cbev_session_free(c);
  cbev_ratelimit_free(rl);

  /* one token per 10 s: when the backoff is over, the limiter's wait */
  assert_int_equal(cbev_ratelimit_new(1, 10.0, &rl), CBEV_OK);
  cfg.limiter = rl;
  a = new_session(&cfg);
  assert_int_equal(exchange(a, 0, &bad, &b), CBEV_EAGAIN);
  uint64_t due = wait_at(a, 0);
  assert_in_range(due, 500, 1000);
  assert_int_equal(cbev_session_begin(a, due, &url, &w), CBEV_EAGAIN);
  assert_in_range(w, 10000 - due, 10000 - due + 1);
  assert_int_equal(exchange(a, 10000, &ok, &b), CBEV_OK);
  cbev_batch_free(b);
  cbev_session_free(a);
  cbev_ratelimit_free(rl);
}

/* ---- configuration ---- */

typedef struct cfg_case {
  const char *name;
  void (*edit)(cbev_session_config *cfg);
  int want;
  const char *log_names; /* the field the error names */
} cfg_case;

static void e_timeout_high(cbev_session_config *c) { c->timeout_s = 91; }
static void e_timeout_neg(cbev_session_config *c) { c->timeout_s = -2; }
static void e_attempts_neg(cbev_session_config *c) { c->retry_attempts = -3; }
static void e_factor_low(cbev_session_config *c) { c->retry_factor = 0.5; }
static void e_backoff_nan(cbev_session_config *c) { c->retry_backoff_s = (double)NAN; }
static void e_max_huge(cbev_session_config *c) { c->retry_max_delay_s = 1e12; }
static void e_no_user(cbev_session_config *c) { c->username = NULL; }
static void e_empty_token(cbev_session_config *c) { c->token = ""; }
static void e_ctl_token(cbev_session_config *c) { c->token = "tok\n123"; }
static void e_http_base(cbev_session_config *c) { c->base_url = "http://eventsapi.chaturbate.com/events"; }
static void e_query_base(cbev_session_config *c) { c->base_url = BASE "?x=1"; }
static void e_user_base(cbev_session_config *c) { c->base_url = "https://u:p@h.example/events"; }
static void e_feed_http(cbev_session_config *c) { c->events_url = "http://evil.example/events/a/tok123/"; }
static void e_feed_short(cbev_session_config *c) { c->events_url = "https://h.example/tok123/"; }
static void e_feed_timeout(cbev_session_config *c) { c->events_url = FEED "?timeout=120"; }

static const cfg_case cfg_cases[] = {
    {"timeout 91", e_timeout_high, CBEV_EINVAL, "timeout_s"},
    {"timeout -2", e_timeout_neg, CBEV_EINVAL, "timeout_s"},
    {"attempts -3", e_attempts_neg, CBEV_EINVAL, "retry_attempts"},
    {"factor 0.5", e_factor_low, CBEV_EINVAL, "retry_factor"},
    {"backoff NaN", e_backoff_nan, CBEV_EINVAL, "retry_backoff_s"},
    {"max delay huge", e_max_huge, CBEV_EINVAL, "retry_max_delay_s"},
    {"no username", e_no_user, CBEV_EINVAL, "username"},
    {"empty token", e_empty_token, CBEV_EINVAL, "token"},
    {"control in token", e_ctl_token, CBEV_EINVAL, "token"},
    {"http base", e_http_base, CBEV_EURL, "base_url"},
    {"base with query", e_query_base, CBEV_EURL, "base_url"},
    {"base with userinfo", e_user_base, CBEV_EURL, "base_url"},
    {"events_url http", e_feed_http, CBEV_EURL, "events_url"},
    {"events_url short", e_feed_short, CBEV_EURL, "events_url"},
    {"events_url timeout", e_feed_timeout, CBEV_EINVAL, "events_url"},
};

static void test_config_validation(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cfg_cases / sizeof cfg_cases[0]; i++) {
    captured *cap = calloc(1, sizeof *cap);
    cbev_logger lg = {capture, cap, CBEV_LOG_DEBUG};
    cbev_session_config cfg = base_cfg(&lg);
    cbev_session *s = (cbev_session *)&cfg;
    int rc;
    cfg_cases[i].edit(&cfg);
    rc = cbev_session_new(&cfg, &s);
    if (rc != cfg_cases[i].want)
      fail_msg("%s: rc %d, want %d", cfg_cases[i].name, rc, cfg_cases[i].want);
    assert_null(s);
    if (find_line(cap, CBEV_LOG_ERROR, cfg_cases[i].log_names) < 0)
      fail_msg("%s: no error log naming %s", cfg_cases[i].name, cfg_cases[i].log_names);
    for (int k = 0; k < cap->count; k++) {
      const char *forms[] = {"tok123", NULL};
      assert_no_secret(cap->line[k], forms);
    }
    free(cap);
  }
  assert_int_equal(cbev_session_new(NULL, NULL), CBEV_EINVAL);
}

static void test_config_defaults_and_urls(void **state) {
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s;
  (void)state;

  /* -1 / negative mean the defaults */
  cfg.timeout_s = -1;
  cfg.retry_attempts = -1;
  cfg.retry_backoff_s = -1;
  cfg.retry_factor = -1;
  cfg.retry_max_delay_s = -1;
  s = new_session(&cfg);
  assert_int_equal(cbev_session_timeout_s(s), 10);
  assert_string_equal(cbev_session_cursor_url(s), FIRST);
  assert_string_equal(cbev_session_username(s), "alice");
  assert_string_equal(cbev_session_token(s), "tok123");
  for (int i = 0; i < 50; i++)
    assert_in_range(cbev_session_backoff_ms(s, 9), 15000, 30000);
  cbev_session_free(s);

  /* percent-encoded username and token, trailing slashes of the base */
  cfg = base_cfg(NULL);
  cfg.base_url = "http://127.0.0.1:8080/events//";
  cfg.username = "al ice";
  cfg.token = "tok/en+1";
  cfg.timeout_s = 0;
  s = new_session(&cfg);
  assert_string_equal(cbev_session_cursor_url(s),
                      "http://127.0.0.1:8080/events/al%20ice/tok%2Fen%2B1/?timeout=0");
  assert_string_equal(cbev_session_token(s), "tok/en+1");
  cbev_session_free(s);

  /* the whole feed URL: parts from its path, timeout added */
  cfg = base_cfg(NULL);
  cfg.username = NULL;
  cfg.token = NULL;
  cfg.timeout_s = 20;
  cfg.events_url = "https://events.testbed.cb.dev/events/bob/tok%2Fen%2B1/";
  s = new_session(&cfg);
  assert_string_equal(cbev_session_username(s), "bob");
  assert_string_equal(cbev_session_token(s), "tok/en+1");
  assert_string_equal(cbev_session_cursor_url(s),
                      "https://events.testbed.cb.dev/events/bob/tok%2Fen%2B1/?timeout=20");
  assert_int_equal(cbev_session_timeout_s(s), 20);
  /* the base comes from it too: nextUrls are checked against the testbed */
  assert_int_equal(cbev_session_set_cursor(s, FEED, NULL), CBEV_EURL);
  assert_int_equal(cbev_session_set_cursor(
                       s, "https://events.testbed.cb.dev/events/bob/x/?i=" ID0, ID0),
                   CBEV_OK);
  cbev_session_free(s);

  /* a timeout in the feed URL becomes the session's */
  cfg.events_url = "http://localhost:9/e/bob/t/?i=" ID0 "&timeout=60";
  s = new_session(&cfg);
  assert_int_equal(cbev_session_timeout_s(s), 60);
  assert_string_equal(cbev_session_cursor_url(s), "http://localhost:9/e/bob/t/?i=" ID0 "&timeout=60");
  cbev_session_free(s);
}

/* ---- restored cursor ---- */

static void test_set_cursor(void **state) {
  static const char *const ids[] = {ID0, ID1, ID2};
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s = new_session(&cfg);
  cbev_batch *b = NULL;
  char *body, *longurl;
  (void)state;

  assert_int_equal(cbev_session_set_cursor(s, NEXT, ID1), CBEV_OK);
  assert_string_equal(cbev_session_cursor_url(s), NEXT);
  assert_string_equal(cbev_session_last_id(s), ID1);
  /* refused: the session is unchanged */
  assert_int_equal(cbev_session_set_cursor(s, "https://evil.example/events/alice/tok123/", ID2),
                   CBEV_EURL);
  assert_int_equal(cbev_session_set_cursor(s, "?i=" ID2, ID2), CBEV_EURL);
  assert_int_equal(cbev_session_set_cursor(s, "//evil.example/x", ID2), CBEV_EURL);
  assert_int_equal(cbev_session_set_cursor(s, "http://eventsapi.chaturbate.com/events/", NULL),
                   CBEV_EURL);
  assert_int_equal(cbev_session_set_cursor(s, FEED, "not-an-id"), CBEV_EINVAL);
  assert_int_equal(cbev_session_set_cursor(s, NULL, ID2), CBEV_EINVAL);
  assert_int_equal(cbev_session_set_cursor(NULL, FEED, ID2), CBEV_EINVAL);
  longurl = calloc(1, 9000);
  memcpy(longurl, FEED "?i=", strlen(FEED "?i="));
  memset(longurl + strlen(longurl), '1', 8999 - strlen(longurl));
  assert_int_equal(cbev_session_set_cursor(s, longurl, NULL), CBEV_EURL);
  free(longurl);
  assert_string_equal(cbev_session_cursor_url(s), NEXT);
  assert_string_equal(cbev_session_last_id(s), ID1);

  /* after a restart, events up to the saved id are not returned again */
  body = events_body(ids, 3, NULL);
  fake f = {200, body, NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, 0, &f, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 1);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 0)), ID2);
  cbev_batch_free(b);
  free(body);

  /* a restore resets the pacing of failures */
  fake bad = {503, NULL, NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, 0, &bad, &b), CBEV_EAGAIN);
  assert_true(wait_at(s, 0) > 0);
  assert_int_equal(cbev_session_set_cursor(s, NEXT, NULL), CBEV_OK);
  assert_null(cbev_session_last_id(s));
  assert_int_equal(wait_at(s, 0), 0);
  assert_int_equal(cbev_session_attempts(s), 0);
  cbev_session_free(s);
}

/* Issue 15 defect 3: only i= of a saved cursor carries over; the timeout
 * (and the path with its token) is always the configured one. */
static void test_set_cursor_keeps_only_i(void **state) {
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s;
  (void)state;

  cfg.timeout_s = 3;
  s = new_session(&cfg);
  assert_int_equal(cbev_session_set_cursor(s, BASE "/alice/oldtoken/?timeout=30&i=" ID1 "&x=1",
                                           ID1), CBEV_OK);
  assert_string_equal(cbev_session_cursor_url(s), FEED "?i=" ID1 "&timeout=3");
  /* No i= saved: the configured feed URL. */
  assert_int_equal(cbev_session_set_cursor(s, FEED "?timeout=30", NULL), CBEV_OK);
  assert_string_equal(cbev_session_cursor_url(s), FEED "?timeout=3");
  cbev_session_free(s);

  /* A feed URL (CB_EVENTS_URL) with its own parameters keeps them. */
  cfg = base_cfg(NULL);
  cfg.events_url = FEED "?timeout=5&i=1-0";
  s = new_session(&cfg);
  assert_int_equal(cbev_session_set_cursor(s, FEED "?i=" ID2 "&timeout=90", ID2), CBEV_OK);
  assert_string_equal(cbev_session_cursor_url(s), FEED "?i=" ID2 "&timeout=5");
  cbev_session_free(s);
}

/* SPEC 1: a 401/403 is retried auth_retries times with the normal backoff,
 * then reported; the count starts over after a report and after a good
 * answer. Fake clock: the waits are read, never slept. */
static void test_auth_retries(void **state) {
  static const long statuses[] = {401, 403};
  (void)state;

  for (size_t k = 0; k < 2; k++) {
    captured *cap = calloc(1, sizeof *cap);
    cbev_logger lg = {capture, cap, CBEV_LOG_DEBUG};
    cbev_session_config cfg = base_cfg(&lg);
    cbev_session *s;
    cbev_batch *b = NULL;
    fake refused = {statuses[k], "{\"status\":\"no\"}", 0, 0, 0, 0, 0};
    fake good = {200, GOOD_NEXT, 0, 0, 0, 0, 0};
    uint64_t t = 0, w;
    int err;

    assert_int_equal(cfg.auth_retries, CBEV_DEFAULT_AUTH_RETRIES);
    assert_int_equal(CBEV_DEFAULT_AUTH_RETRIES, 2);
    s = new_session(&cfg);
    assert_int_equal(exchange(s, t, &refused, &b), CBEV_EAGAIN);
    cbev_session_last_error(s, &err, NULL, NULL);
    assert_int_equal(err, CBEV_EAUTH);
    assert_true(find_line(cap, CBEV_LOG_WARN, "retry 1 of 2") >= 0);
    w = wait_at(s, t);
    assert_in_range(w, 500, 1000); /* backoff step 1 */
    t += w;
    assert_int_equal(exchange(s, t, &refused, &b), CBEV_EAGAIN);
    w = wait_at(s, t);
    assert_in_range(w, 1000, 2000); /* step 2 */
    t += w;
    assert_int_equal(exchange(s, t, &refused, &b), CBEV_EAUTH);
    assert_null(b);
    assert_true(find_line(cap, CBEV_LOG_ERROR, "not retried") >= 0);
    assert_string_equal(cbev_session_cursor_url(s), FIRST);
    /* A caller that keeps going (the bridge) gets the retries again. */
    t += wait_at(s, t);
    assert_int_equal(exchange(s, t, &refused, &b), CBEV_EAGAIN);
    /* One refusal then a good answer: the events come, the count resets. */
    t += wait_at(s, t);
    assert_int_equal(exchange(s, t, &good, &b), CBEV_OK);
    assert_int_equal(cbev_batch_count(b), 1);
    cbev_batch_free(b);
    assert_int_equal(exchange(s, t, &refused, &b), CBEV_EAGAIN);
    t += wait_at(s, t);
    assert_int_equal(exchange(s, t, &refused, &b), CBEV_EAGAIN);
    t += wait_at(s, t);
    assert_int_equal(exchange(s, t, &refused, &b), CBEV_EAUTH);
    cbev_session_free(s);

    /* auth_retries = 0: the first refusal is reported. */
    cfg.auth_retries = 0;
    s = new_session(&cfg);
    assert_int_equal(exchange(s, 0, &refused, &b), CBEV_EAUTH);
    cbev_session_free(s);
    cfg.auth_retries = -1; /* default */
    s = new_session(&cfg);
    assert_int_equal(exchange(s, 0, &refused, &b), CBEV_EAGAIN);
    cbev_session_free(s);
    cfg.auth_retries = CBEV_MAX_AUTH_RETRIES + 1;
    assert_int_equal(cbev_session_new(&cfg, &s), CBEV_EINVAL);
    cfg.auth_retries = -2;
    assert_int_equal(cbev_session_new(&cfg, &s), CBEV_EINVAL);
    free(cap);
  }
}

/* SPEC 1 and 3: duplicates inside one batch are dropped like across
 * batches; an id that is not <ms>-<seq> is delivered, warned about, and
 * never becomes the last id (issue 15 defect 2). */
static void test_duplicates_and_odd_ids(void **state) {
  static const char *const dup[] = {ID1, ID1, ID0, ID2, ID2};
  static const char *const odd_only[] = {"not-an-id"};
  static const char *const mixed[] = {ID0, "x-1", ID1, "", ID1};
  captured *cap = calloc(1, sizeof *cap);
  cbev_logger lg = {capture, cap, CBEV_LOG_DEBUG};
  cbev_session_config cfg = base_cfg(&lg);
  cbev_session *s = new_session(&cfg);
  cbev_batch *b = NULL;
  char *body;
  (void)state;

  body = events_body(dup, 5, "\"" NEXT "\"");
  fake f = {200, body, 0, 0, 0, 0, 0};
  assert_int_equal(exchange(s, 0, &f, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 2);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 0)), ID1);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 1)), ID2);
  assert_string_equal(cbev_session_last_id(s), ID2);
  cbev_batch_free(b);
  free(body);
  cbev_session_free(s);

  /* A fresh start whose first batch holds only an odd id. */
  s = new_session(&cfg);
  body = events_body(odd_only, 1, "\"" NEXT "\"");
  fake g = {200, body, 0, 0, 0, 0, 0};
  assert_int_equal(exchange(s, 0, &g, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 1);
  assert_null(cbev_session_last_id(s));
  assert_true(find_line(cap, CBEV_LOG_WARN, "\"not-an-id\" is not of the form") >= 0);
  cbev_batch_free(b);
  free(body);

  /* Mixed: the odd ones are delivered in place, the cursor is the last good id. */
  cap->count = 0;
  body = events_body(mixed, 5, "\"" NEXT "\"");
  fake h = {200, body, 0, 0, 0, 0, 0};
  assert_int_equal(exchange(s, 0, &h, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 4);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 1)), "x-1");
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 3)), "");
  assert_string_equal(cbev_session_last_id(s), ID1);
  assert_int_equal(cap->count >= 2, 1);
  cbev_batch_free(b);
  /* Again (a retried cursor): the good ids are dropped, the odd kept. */
  assert_int_equal(exchange(s, 0, &h, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 2);
  assert_string_equal(cbev_session_last_id(s), ID1);
  cbev_batch_free(b);
  free(body);
  cbev_session_free(s);
  free(cap);
}

/* A redirect is logged with where it leads (scheme, host, port), never
 * its path, query or the token; without Location it says so. */
static void test_redirect_logged_by_origin(void **state) {
  static const struct {
    const char *location, *want;
  } cases[] = {
      {NULL, "redirect to (no Location)"},
      {"https://evil.example:8443/events/alice/tok123/?i=1&t=tok123",
       "redirect to https://evil.example:8443 (never followed)"},
      {"http://cdn.example/login", "redirect to http://cdn.example:80 (never followed)"},
      {"/events/alice/tok123/?x=1",
       "redirect to https://eventsapi.chaturbate.com:443 (never followed)"},
      {"//other.example/p", "redirect to https://other.example:443 (never followed)"},
      {"https://tok123.example/", "redirect to https://***.example:443 (never followed)"},
  };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    captured *cap = calloc(1, sizeof *cap);
    cbev_logger lg = {capture, cap, CBEV_LOG_DEBUG};
    cbev_session_config cfg = base_cfg(&lg);
    cbev_session *s = new_session(&cfg);
    cbev_batch *b = NULL;
    fake f = {302, "", 0, cases[i].location, 0, 0, 0};
    int line;

    assert_int_equal(exchange(s, 0, &f, &b), CBEV_EHTTP);
    line = find_line(cap, CBEV_LOG_ERROR, cases[i].want);
    if (line < 0)
      fail_msg("Location %s: no line with \"%s\" (%d lines, first: %s)",
               cases[i].location ? cases[i].location : "(none)", cases[i].want, cap->count,
               cap->count ? cap->line[0] : "");
    for (int k = 0; k < cap->count; k++) {
      if (strstr(cap->line[k], "/events/alice") && strstr(cap->line[k], "redirect"))
        fail_msg("path logged: %s", cap->line[k]);
      assert_null(strstr(cap->line[k], "tok123"));
    }
    cbev_session_free(s);
    free(cap);
  }
}

/* ---- misuse ---- */

static void test_response_without_begin(void **state) {
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s = new_session(&cfg);
  cbev_batch *b = NULL;
  cbev_response r;
  const char *url;
  uint64_t w;
  (void)state;
  memset(&r, 0, sizeof r);
  r.status = 200;
  assert_int_equal(cbev_session_on_response(s, &r, &b), CBEV_EINVAL);
  assert_int_equal(cbev_session_on_response(NULL, &r, &b), CBEV_EINVAL);
  assert_int_equal(cbev_session_begin(NULL, 0, &url, &w), CBEV_EINVAL);
  assert_int_equal(cbev_session_begin(s, 0, NULL, &w), CBEV_EINVAL);
  /* one response per begin */
  fake ok = {200, "{\"events\":[]}", NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, 0, &ok, &b), CBEV_OK);
  cbev_batch_free(b);
  assert_int_equal(cbev_session_on_response(s, &r, &b), CBEV_EINVAL);
  cbev_session_free(s);
  cbev_session_free(NULL);
  assert_null(cbev_session_cursor_url(NULL));
}

/* ---- the excerpt ---- */

static void test_excerpt(void **state) {
  cbev_session_config cfg = base_cfg(NULL);
  cbev_session *s = new_session(&cfg);
  cbev_batch *b = NULL;
  const char *ex;
  char body[600];
  (void)state;

  /* control characters replaced; capped at CBEV_EXCERPT_MAX */
  memset(body, 'x', sizeof body - 1);
  body[sizeof body - 1] = '\0';
  memcpy(body, "line1\nline2\r\x1b[31m\x7f", 18);
  fake f = {404, body, NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, 0, &f, &b), CBEV_EHTTP);
  cbev_session_last_error(s, NULL, NULL, &ex);
  assert_int_equal(strlen(ex), CBEV_EXCERPT_MAX);
  assert_memory_equal(ex, "line1?line2??[31m?x", 19);
  for (const char *p = ex; *p; p++)
    assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);

  /* no body: "" */
  fake g = {404, NULL, NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, wait_at(s, 0), &g, &b), CBEV_EHTTP);
  cbev_session_last_error(s, NULL, NULL, &ex);
  assert_string_equal(ex, "");

  /* a body with a NUL inside is cut safely (body_len counts past it) */
  cbev_response r;
  const char *url;
  uint64_t w, now = 100000;
  assert_int_equal(cbev_session_begin(s, now, &url, &w), CBEV_OK);
  memset(&r, 0, sizeof r);
  r.now_ms = now;
  r.status = 500;
  r.body = "ab\0cd";
  r.body_len = 5;
  assert_int_equal(cbev_session_on_response(s, &r, &b), CBEV_EAGAIN);
  cbev_session_last_error(s, NULL, NULL, &ex);
  assert_string_equal(ex, "ab?cd");

  /* UTF-8 is not cut in the middle of a character */
  char utf[300];
  memset(utf, 'a', 199);
  memcpy(utf + 199, "\xc3\xa9", 2);
  memset(utf + 201, 'b', 50);
  utf[251] = '\0';
  fake u = {404, utf, NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, now + 100000, &u, &b), CBEV_EHTTP);
  cbev_session_last_error(s, NULL, NULL, &ex);
  assert_int_equal(strlen(ex), 199);
  cbev_session_free(s);
}

/* ---- the token never appears ---- */

static void test_token_masked_everywhere(void **state) {
  static const char *const forms[] = {"tok/en+1", "tok%2Fen%2B1", "tok%2fen%2b1",
                                      "tok/en%2B1", "tok%2Fen+1", "tok/en", "tok%2F",
                                      NULL};
  captured *cap = calloc(1, sizeof *cap);
  cbev_logger lg = {capture, cap, CBEV_LOG_DEBUG};
  cbev_session_config cfg = base_cfg(&lg);
  cbev_session *s;
  cbev_batch *b = NULL;
  const char *ex;
  char body[1024];
  uint64_t t = 0;
  (void)state;

  cfg.token = "tok/en+1";
  cfg.retry_attempts = 0;
  s = new_session(&cfg);
  const char *feed = BASE "/alice/tok%2Fen%2B1/";

  /* debug: the GET line holds the URL, masked */
  fake ok = {200, "{\"events\":[]}", NULL, NULL, 0, 0, 0};
  assert_int_equal(exchange(s, t, &ok, &b), CBEV_OK);
  cbev_batch_free(b);
  assert_true(find_line(cap, CBEV_LOG_DEBUG, "GET " BASE "/alice/***/?timeout=10") >= 0);

  /* bodies that echo the token in both forms, for every kind of failure */
  static const long statuses[] = {503, 404, 401, 400, 302, 200, 429};
  for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
    snprintf(body, sizeof body,
             "error for %s and tok/en+1 and tok%%2fen%%2b1 (raw \"tok/en+1\")", feed);
    fake f = {statuses[i], body, NULL, feed, 0, 0, 0};
    t += wait_at(s, t);
    int rc = exchange(s, t, &f, &b);
    assert_true(rc != CBEV_OK);
    cbev_session_last_error(s, NULL, NULL, &ex);
    assert_true(strlen(ex) > 0);
    assert_no_secret(ex, forms);
    assert_non_null(strstr(ex, "***"));
  }

  /* a token that straddles the 200-byte cut of the excerpt */
  for (size_t at = 185; at <= 205; at++) {
    memset(body, 'x', at);
    snprintf(body + at, sizeof body - at, "tok%%2Fen%%2B1%s", "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
    fake f = {500, body, NULL, NULL, 0, 0, 0};
    t += wait_at(s, t);
    assert_int_equal(exchange(s, t, &f, &b), CBEV_EAGAIN);
    cbev_session_last_error(s, NULL, NULL, &ex);
    assert_no_secret(ex, forms);
    assert_true(strlen(ex) <= CBEV_EXCERPT_MAX);
  }
  /* many tokens in a row: masking shrinks the text, the window still fits */
  body[0] = '\0';
  for (int i = 0; i < 70; i++)
    strcat(body, "tok%2Fen%2B1");
  fake many = {500, body, NULL, NULL, 0, 0, 0};
  t += wait_at(s, t);
  assert_int_equal(exchange(s, t, &many, &b), CBEV_EAGAIN);
  cbev_session_last_error(s, NULL, NULL, &ex);
  assert_no_secret(ex, forms);

  /* refused nextUrls carrying the token in path, query and host */
  static const char *const hostile[] = {
      "{\"events\":[],\"nextUrl\":\"https://evil.example/events/alice/tok%2Fen%2B1/\"}",
      "{\"events\":[],\"nextUrl\":\"https://evil.example/?t=tok/en+1\"}",
      "{\"events\":[],\"nextUrl\":\"https://tok.en.evil/alice/tok%2fen%2b1/\"}",
      "{\"events\":[],\"nextUrl\":\"ftp://x/tok/en+1\"}",
  };
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    fake f = {200, hostile[i], NULL, NULL, 0, 0, 0};
    t += wait_at(s, t);
    assert_int_equal(exchange(s, t, &f, &b), CBEV_EURL);
  }
  /* a transport error and a refused restore */
  fake tr = {0, NULL, NULL, NULL, 35, 0, 0};
  t += wait_at(s, t);
  assert_int_equal(exchange(s, t, &tr, &b), CBEV_EAGAIN);
  assert_int_equal(cbev_session_set_cursor(s, "https://evil.example/events/alice/tok%2Fen%2B1/", NULL),
                   CBEV_EURL);
  assert_int_equal(cbev_session_set_cursor(s, feed, "tok/en+1"), CBEV_EINVAL);

  assert_true(cap->count >= 40);
  /* No line holds the token, or even a piece of it: the session's lines
   * and the parser's warnings alike mask before they cut. */
  for (int k = 0; k < cap->count; k++)
    assert_no_secret(cap->line[k], forms);
  assert_true(find_line(cap, CBEV_LOG_WARN, "alice: HTTP 200 with a body that is not an "
                                            "events object (\"error for ") >= 0);
  /* and the username is there to say whose feed it is */
  assert_true(find_line(cap, CBEV_LOG_ERROR, "alice: refused nextUrl to https://evil.example:443") >= 0);
  assert_true(find_line(cap, CBEV_LOG_ERROR, "alice: HTTP 404, not retried") >= 0);
  cbev_session_free(s);
  free(cap);
}

/* Every other place where the session quotes text it did not write cuts
 * it after masking: a token straddling the cut leaves no piece of itself
 * (base_url at 200 bytes, a restored last id at 40, a redirect's host). */
static void test_quotes_masked_before_cut(void **state) {
  static const char token[] = "Zq7xW9kPmR2vT4nB";
  static const char *const pieces[] = {"Zq7x", "%5A%71", "%5a%71", NULL};
  captured *cap = calloc(1, sizeof *cap);
  cbev_logger lg = {capture, cap, CBEV_LOG_DEBUG};
  cbev_session_config cfg = base_cfg(&lg);
  cbev_session *s = NULL;
  cbev_batch *b = NULL;
  char text[600];
  uint64_t t = 0;
  (void)state;

  cfg.token = token;
  /* a refused base_url quoted in the error line */
  for (size_t at = 180; at <= 215; at++) {
    memcpy(text, "ftp://", 6);
    memset(text + 6, 'h', at - 6);
    snprintf(text + at, sizeof text - at, "%s/x", token);
    cfg.base_url = text;
    cap->count = 0;
    assert_int_equal(cbev_session_new(&cfg, &s), CBEV_EURL);
    assert_null(s);
    assert_true(find_line(cap, CBEV_LOG_ERROR, "session: base_url: refused \"ftp://hhh") >= 0);
    for (int k = 0; k < cap->count; k++)
      assert_no_secret(cap->line[k], pieces);
  }
  cfg.base_url = NULL;
  s = new_session(&cfg);

  /* a restored last id that is not an id */
  for (size_t at = 25; at <= 45; at++) {
    memset(text, '9', at);
    snprintf(text + at, sizeof text - at, "%s", token);
    cap->count = 0;
    assert_int_equal(cbev_session_set_cursor(s, cbev_session_cursor_url(s), text), CBEV_EINVAL);
    assert_true(find_line(cap, CBEV_LOG_ERROR, "restored cursor: last id \"9999") >= 0);
    for (int k = 0; k < cap->count; k++)
      assert_no_secret(cap->line[k], pieces);
  }

  /* a redirect whose host holds the token across the 100-byte cut of the
   * message and the 200-byte cut of the host */
  for (size_t at = 70; at <= 215; at += 5) {
    memcpy(text, "https://", 8);
    memset(text + 8, 'r', at - 8);
    snprintf(text + at, sizeof text - at, "%s.example/x", token);
    fake f = {302, "", NULL, text, 0, 0, 0};
    cap->count = 0;
    t += wait_at(s, t);
    assert_int_equal(exchange(s, t, &f, &b), CBEV_EHTTP);
    assert_true(find_line(cap, CBEV_LOG_ERROR, "redirect to https://rrrr") >= 0);
    for (int k = 0; k < cap->count; k++)
      assert_no_secret(cap->line[k], pieces);
  }
  cbev_session_free(s);
  free(cap);
}

/* ---- allocation failures: every one is survived, nothing leaks ---- */

static long alloc_budget = -1;
static void *fail_malloc(size_t n) {
  if (alloc_budget == 0)
    return NULL;
  if (alloc_budget > 0)
    alloc_budget--;
  return malloc(n);
}
static void *fail_realloc(void *p, size_t n) {
  if (alloc_budget == 0)
    return NULL;
  if (alloc_budget > 0)
    alloc_budget--;
  return realloc(p, n);
}

static void test_allocation_failures(void **state) {
  static const char *const ids[] = {ID0, ID1};
  cbev_allocator a = {fail_malloc, fail_realloc, free};
  char *body = events_body(ids, 2, "\"" NEXT "\"");
  int completed = 0;
  (void)state;

  cbev_set_allocator(&a);
  for (long n = 0; n < 400 && !completed; n++) {
    cbev_session_config cfg = base_cfg(NULL);
    cbev_session *s = NULL;
    cbev_batch *b = NULL;
    const char *url;
    uint64_t w;
    cbev_response r;
    int rc;

    alloc_budget = n;
    cfg.token = "tok/en+1";
    rc = cbev_session_new(&cfg, &s);
    if (rc != CBEV_OK) {
      assert_int_equal(rc, CBEV_ENOMEM);
      assert_null(s);
      continue;
    }
    assert_int_equal(cbev_session_begin(s, 0, &url, &w), CBEV_OK);
    memset(&r, 0, sizeof r);
    r.status = 200;
    r.body = body;
    r.body_len = strlen(body);
    rc = cbev_session_on_response(s, &r, &b);
    /* cJSON cannot tell ENOMEM from bad JSON: that reads as a retry */
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM || rc == CBEV_EAGAIN);
    if (rc == CBEV_OK) {
      assert_int_equal(cbev_batch_count(b), 2);
      assert_string_equal(cbev_session_cursor_url(s), NEXT);
      assert_string_equal(cbev_session_last_id(s), ID1);
    } else {
      /* Out of memory too paces the next request (session.h). */
      if (rc == CBEV_ENOMEM)
        assert_true(wait_at(s, 0) > 0);
      assert_null(b);
      assert_string_equal(cbev_session_cursor_url(s), BASE "/alice/tok%2Fen%2B1/?timeout=10");
      assert_null(cbev_session_last_id(s));
    }
    rc = cbev_session_set_cursor(s, FEED "?i=" ID2, ID2);
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
    completed = alloc_budget > 0;
    cbev_batch_free(b);
    cbev_session_free(s);
  }
  alloc_budget = -1;
  cbev_set_allocator(NULL);
  free(body);
  assert_true(completed);
}

/* The same with a debug logger (masking allocates) along the error paths:
 * a 503 whose body echoes the token (the excerpt), a body with a lone
 * surrogate escape (parse copies it), a garbage 200, a refused nextUrl and
 * a redirect. Every step gives its normal result or CBEV_ENOMEM (or, for a
 * body cJSON could not allocate for, a retry), no line holds the token
 * even in part, nothing leaks. */
static void test_allocation_failures_on_error_paths(void **state) {
  static const char *const forms[] = {"tok/en+1", "tok%2Fen%2B1", "tok%2fen%2b1", "tok/en",
                                      "tok%2F", NULL};
  const char *feed = BASE "/alice/tok%2Fen%2B1/";
  cbev_allocator a = {fail_malloc, fail_realloc, free};
  captured *cap = calloc(1, sizeof *cap);
  cbev_logger lg = {capture, cap, CBEV_LOG_DEBUG};
  char echo[300], sur[300], hostile[300], location[300];
  int completed = 0;
  (void)state;

  snprintf(echo, sizeof echo, "error for %s and tok/en+1", feed);
  snprintf(sur, sizeof sur,
           "{\"events\":[{\"method\":\"follow\",\"id\":\"" ID0 "\",\"object\":{\"user\":"
           "{\"username\":\"b\\ud800\"}}}],\"nextUrl\":\"%s?i=" ID0 "\"}", feed);
  snprintf(hostile, sizeof hostile, "{\"events\":[],\"nextUrl\":\"https://tok.en.evil%s\"}",
           feed + strlen("https://eventsapi.chaturbate.com"));
  snprintf(location, sizeof location, "https://tok%%2Fen%%2B1.evil.example/%s", feed);
  cbev_set_allocator(&a);
  for (long n = 0; n < 2000 && !completed; n++) {
    cbev_session_config cfg = base_cfg(&lg);
    cbev_session *s = NULL;
    cbev_batch *b = NULL;
    uint64_t t = 0;
    int rc, normal = 1;

    cap->count = 0;
    alloc_budget = n;
    cfg.token = "tok/en+1";
    cfg.retry_attempts = 0;
    rc = cbev_session_new(&cfg, &s);
    if (rc != CBEV_OK) {
      assert_int_equal(rc, CBEV_ENOMEM);
      continue;
    }
    fake f503 = {503, echo, NULL, NULL, 0, 0, 0};
    rc = exchange(s, t, &f503, &b);
    assert_true(rc == CBEV_EAGAIN || rc == CBEV_ENOMEM);
    const char *ex = NULL;
    cbev_session_last_error(s, NULL, NULL, &ex);
    assert_no_secret(ex, forms);
    normal &= rc == CBEV_EAGAIN && strstr(ex, "***") != NULL;

    fake fs = {200, sur, NULL, NULL, 0, 0, 0};
    t += wait_at(s, t);
    rc = exchange(s, t, &fs, &b);
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM || rc == CBEV_EAGAIN);
    if (rc == CBEV_OK) {
      assert_int_equal(cbev_batch_count(b), 1);
      assert_string_equal(cbev_event_user(cbev_batch_get(b, 0))->username, "b\xEF\xBF\xBD");
    } else {
      assert_null(b);
    }
    normal &= rc == CBEV_OK;
    cbev_batch_free(b);
    b = NULL;

    fake fg = {200, "<html>tok/en+1</html>", NULL, NULL, 0, 0, 0};
    t += wait_at(s, t);
    rc = exchange(s, t, &fg, &b);
    assert_true(rc == CBEV_EAGAIN || rc == CBEV_ENOMEM);
    normal &= rc == CBEV_EAGAIN;

    fake fh = {200, hostile, NULL, NULL, 0, 0, 0};
    t += wait_at(s, t);
    rc = exchange(s, t, &fh, &b);
    assert_true(rc == CBEV_EURL || rc == CBEV_ENOMEM || rc == CBEV_EAGAIN);
    assert_null(b);
    normal &= rc == CBEV_EURL;

    fake fr = {302, "", NULL, location, 0, 0, 0};
    t += wait_at(s, t);
    rc = exchange(s, t, &fr, &b);
    assert_true(rc == CBEV_EHTTP || rc == CBEV_ENOMEM);
    normal &= rc == CBEV_EHTTP;

    for (int k = 0; k < cap->count; k++)
      assert_no_secret(cap->line[k], forms);
    cbev_session_free(s);
    completed = normal && alloc_budget > 0;
  }
  alloc_budget = -1;
  cbev_set_allocator(NULL);
  free(cap);
  assert_true(completed);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_table),
      cmocka_unit_test(test_retry_log_line),
      cmocka_unit_test(test_cursor_kept_across_errors),
      cmocka_unit_test(test_waited_too_long_follows_next_url),
      cmocka_unit_test(test_refused_next_url),
      cmocka_unit_test(test_attempts_exhaustion),
      cmocka_unit_test(test_success_resets_attempts),
      cmocka_unit_test(test_delays_follow_backoff),
      cmocka_unit_test(test_retry_after_wins),
      cmocka_unit_test(test_rate_limiter),
      cmocka_unit_test(test_config_validation),
      cmocka_unit_test(test_config_defaults_and_urls),
      cmocka_unit_test(test_set_cursor),
      cmocka_unit_test(test_set_cursor_keeps_only_i),
      cmocka_unit_test(test_auth_retries),
      cmocka_unit_test(test_duplicates_and_odd_ids),
      cmocka_unit_test(test_redirect_logged_by_origin),
      cmocka_unit_test(test_response_without_begin),
      cmocka_unit_test(test_excerpt),
      cmocka_unit_test(test_quotes_masked_before_cut),
      cmocka_unit_test(test_token_masked_everywhere),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_allocation_failures_on_error_paths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

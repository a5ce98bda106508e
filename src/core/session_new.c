/*
 * session_new.c: a session's configuration: defaults, the checks of every
 * setting (logged once, naming the setting), the credentials and the feed
 * URL built from them or taken as given, and cbev_session_new/free. What a
 * session then does is session.c.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/session.h"
#include "log_impl.h"
#include "session_impl.h"
#include "url.h"

/* Credentials longer than this are certainly a mistake (a whole file read
 * as a token, for instance); tokens are 24-32 characters. */
#define CREDENTIAL_MAX 256
/* Caps that keep the arithmetic of delays far from overflow. */
#define BACKOFF_MAX_S 86400.0
#define FACTOR_MAX 1000.0

void cbev_session_config_init(cbev_session_config *cfg) {
  if (!cfg)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->timeout_s = CBEV_DEFAULT_TIMEOUT_S;
  cfg->retry_attempts = CBEV_DEFAULT_RETRY_ATTEMPTS;
  cfg->retry_backoff_s = CBEV_DEFAULT_RETRY_BACKOFF_S;
  cfg->retry_factor = CBEV_DEFAULT_RETRY_FACTOR;
  cfg->retry_max_delay_s = CBEV_DEFAULT_RETRY_MAX_DELAY_S;
  cfg->auth_retries = CBEV_DEFAULT_AUTH_RETRIES;
}

/* A credential is printable ASCII or UTF-8 without control bytes. */
static int credential_ok(const char *v) {
  size_t n = 0;

  if (!v)
    return 0;
  for (const unsigned char *p = (const unsigned char *)v; *p; p++, n++) {
    if (*p < 0x20 || *p == 0x7f || n >= CREDENTIAL_MAX)
      return 0;
  }
  return n > 0;
}

/* A double setting: negative means "default"; NaN, infinities and values
 * above max are refused. Returns CBEV_OK or CBEV_EINVAL (logged). */
static int pick_double(const cbev_logger *lg, const char *name, double v,
                       double def, double min, double max, double *out) {
  if (v != v) { /* NaN */
    cbev_log(lg, NULL, CBEV_LOG_ERROR, "session: %s: not a number", name);
    return CBEV_EINVAL;
  }
  if (v < 0) {
    *out = def;
    return CBEV_OK;
  }
  if (v < min || v > max) {
    cbev_log(lg, NULL, CBEV_LOG_ERROR, "session: %s: must be %g..%g (got %g)",
             name, min, max, v);
    return CBEV_EINVAL;
  }
  *out = v;
  return CBEV_OK;
}

static int check_numbers(const cbev_session_config *cfg, cbev_session *s) {
  const cbev_logger *lg = cfg->logger;
  int rc;

  if (cfg->timeout_s == -1) {
    s->timeout_s = CBEV_DEFAULT_TIMEOUT_S;
  } else if (cfg->timeout_s < 0 || cfg->timeout_s > CBEV_MAX_TIMEOUT_S) {
    cbev_log(lg, NULL, CBEV_LOG_ERROR, "session: timeout_s: must be 0..%d (got %d)",
             CBEV_MAX_TIMEOUT_S, cfg->timeout_s);
    return CBEV_EINVAL;
  } else {
    s->timeout_s = cfg->timeout_s;
  }
  if (cfg->retry_attempts == -1) {
    s->retry_attempts = CBEV_DEFAULT_RETRY_ATTEMPTS;
  } else if (cfg->retry_attempts < 0) {
    cbev_log(lg, NULL, CBEV_LOG_ERROR,
             "session: retry_attempts: must be >= 0, 0 meaning forever (got %d)",
             cfg->retry_attempts);
    return CBEV_EINVAL;
  } else {
    s->retry_attempts = (unsigned)cfg->retry_attempts;
  }
  if (cfg->auth_retries == -1) {
    s->auth_retries = CBEV_DEFAULT_AUTH_RETRIES;
  } else if (cfg->auth_retries < 0 || cfg->auth_retries > CBEV_MAX_AUTH_RETRIES) {
    cbev_log(lg, NULL, CBEV_LOG_ERROR, "session: auth_retries: must be 0..%d (got %d)",
             CBEV_MAX_AUTH_RETRIES, cfg->auth_retries);
    return CBEV_EINVAL;
  } else {
    s->auth_retries = (unsigned)cfg->auth_retries;
  }
  if ((rc = pick_double(lg, "retry_backoff_s", cfg->retry_backoff_s,
                        CBEV_DEFAULT_RETRY_BACKOFF_S, 0.0, BACKOFF_MAX_S,
                        &s->backoff_s)) != CBEV_OK ||
      (rc = pick_double(lg, "retry_factor", cfg->retry_factor,
                        CBEV_DEFAULT_RETRY_FACTOR, 1.0, FACTOR_MAX, &s->factor)) !=
          CBEV_OK ||
      (rc = pick_double(lg, "retry_max_delay_s", cfg->retry_max_delay_s,
                        CBEV_DEFAULT_RETRY_MAX_DELAY_S, 0.0, BACKOFF_MAX_S,
                        &s->max_delay_s)) != CBEV_OK)
    return rc;
  return CBEV_OK;
}

/* Endpoint from the whole feed URL (CB_EVENTS_URL). */
static int setup_from_feed(const cbev_session_config *cfg, cbev_session *s) {
  cbev_feed_url feed;
  int rc = cbev_url_check_scheme(cfg->events_url);

  if (rc == CBEV_ENOMEM)
    return rc;
  if (rc != CBEV_OK) {
    /* The URL holds the token but is not known to be a URL of ours: mask
     * nothing we cannot name, so do not print it at all. */
    cbev_log(cfg->logger, NULL, CBEV_LOG_ERROR,
             "session: events_url: refused: must be https (or http to a loopback "
             "host), without userinfo, at most %d bytes",
             CBEV_URL_MAX);
    return CBEV_EURL;
  }
  rc = cbev__feed_url_parse(cfg->events_url, s->timeout_s, &feed);
  if (rc == CBEV_EINVAL) {
    cbev_log(cfg->logger, NULL, CBEV_LOG_ERROR,
             "session: events_url: timeout must be 0..%d", CBEV_MAX_TIMEOUT_S);
    return rc;
  }
  if (rc != CBEV_OK) {
    if (rc == CBEV_EURL)
      cbev_log(cfg->logger, NULL, CBEV_LOG_ERROR,
               "session: events_url: not of the form <base>/<username>/<token>/");
    return rc;
  }
  if (!credential_ok(feed.token) || !credential_ok(feed.username)) {
    cbev_log(cfg->logger, NULL, CBEV_LOG_ERROR,
             "session: events_url: username or token empty, too long or holding "
             "control characters");
    cbev__feed_url_cleanup(&feed);
    return CBEV_EINVAL;
  }
  /* The server holds the request for the timeout the URL asks for; the
   * driver sizes its transfer timeout from timeout_s, so they must agree. */
  if (feed.timeout_s >= 0)
    s->timeout_s = feed.timeout_s;
  s->base = feed.base;
  s->username = feed.username;
  s->token = feed.token;
  s->cursor = feed.url;
  return CBEV_OK;
}

/* Endpoint from base + username + token. */
static int setup_from_parts(const cbev_session_config *cfg, cbev_session *s) {
  const char *base = cfg->base_url ? cfg->base_url : CBEV_PRODUCTION_BASE;
  char *user_enc = NULL, *token_enc = NULL, *first = NULL;
  size_t n, len;
  int rc = CBEV_EINVAL;

  if (!credential_ok(cfg->username)) {
    cbev_log(cfg->logger, NULL, CBEV_LOG_ERROR,
             "session: username: required, 1..%d bytes without control characters",
             CREDENTIAL_MAX - 1);
    goto out;
  }
  if (!credential_ok(cfg->token)) {
    cbev_log(cfg->logger, NULL, CBEV_LOG_ERROR,
             "session: token: required, 1..%d bytes without control characters",
             CREDENTIAL_MAX - 1);
    goto out;
  }
  rc = cbev_url_check_scheme(base);
  if (rc == CBEV_ENOMEM)
    goto out;
  if (rc != CBEV_OK || strpbrk(base, "?#")) {
    char shown[201];
    rc = CBEV_EURL;
    cbev__log_mask_cut(shown, sizeof shown, base, cfg->token, NULL);
    cbev_log(cfg->logger, cfg->token, CBEV_LOG_ERROR,
             "session: base_url: refused \"%s\": must be https (or http to a "
             "loopback host), without userinfo, query or fragment",
             shown);
    goto out;
  }
  rc = CBEV_ENOMEM;
  n = strlen(base);
  while (n && base[n - 1] == '/')
    n--;
  if (!(s->base = cbev_strndup(base, n)) ||
      !(s->username = cbev_strdup(cfg->username)) ||
      !(s->token = cbev_strdup(cfg->token)) ||
      !(user_enc = cbev__url_encode_segment(cfg->username)) ||
      !(token_enc = cbev__url_encode_segment(cfg->token)))
    goto out;
  len = n + strlen(user_enc) + strlen(token_enc) + 32;
  if (!(first = cbev_malloc(len)))
    goto out;
  snprintf(first, len, "%s/%s/%s/?timeout=%d", s->base, user_enc, token_enc,
           s->timeout_s);
  rc = cbev__url_normalize(first, &s->cursor);
  if (rc == CBEV_OK)
    rc = cbev_url_check_same_origin(s->base, s->cursor);
  if (rc == CBEV_EURL)
    cbev_log(cfg->logger, s->token, CBEV_LOG_ERROR,
             "session: the feed URL built from base_url is refused (too long?)");
out:
  cbev_free(user_enc);
  cbev_free(token_enc);
  cbev_free(first);
  return rc;
}

int cbev_session_new(const cbev_session_config *cfg, cbev_session **out) {
  static atomic_uint_fast64_t instances;
  cbev_session *s = NULL;
  int rc = CBEV_EINVAL;

  if (!cfg || !out)
    goto out;
  *out = NULL;
  rc = CBEV_ENOMEM;
  if (!(s = cbev_calloc(1, sizeof *s)))
    goto out;
  s->logger = cfg->logger;
  s->limiter = cfg->limiter;
  if ((rc = check_numbers(cfg, s)) != CBEV_OK)
    goto out;
  rc = cfg->events_url ? setup_from_feed(cfg, s) : setup_from_parts(cfg, s);
  if (rc != CBEV_OK)
    goto out;
  rc = CBEV_ENOMEM;
  if (!(s->feed = cbev_strdup(s->cursor)))
    goto out;
  /* Seed 0: any value that differs between sessions and runs will do,
   * jitter only has to keep many clients from retrying in step. */
  s->rng = cfg->seed ? cfg->seed
                     : (uint64_t)(uintptr_t)s ^ ((uint64_t)time(NULL) << 20) ^
                           ((uint64_t)(atomic_fetch_add(&instances, 1) + 1) * 0x2545F4914F6CDD1Dull);
  s->excerpt[0] = '\0';
  *out = s;
  s = NULL;
  rc = CBEV_OK;
out:
  cbev_session_free(s);
  return rc;
}

void cbev_session_free(cbev_session *s) {
  if (!s)
    return;
  cbev_free(s->base);
  cbev_free(s->username);
  cbev_free(s->token);
  cbev_free(s->feed);
  cbev_free(s->cursor);
  cbev_free(s->last_id);
  cbev_free(s);
}

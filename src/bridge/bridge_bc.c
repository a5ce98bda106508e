/*
 * bridge_bc.c: one broadcaster's setup and teardown (session, rate
 * limiter, queue, saved cursor and state), and its secret read again
 * after an authentication failure. See bridge_impl.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_impl.h"
#include "cursor.h"
#include "fsutil.h"

/* The saved cursor (its i=) applied to the feed URL configured now: a
 * token rotated since the save is used at once, the old one is never sent
 * again, and timeout= is the configured one. Returns a new string or NULL
 * (out of memory, or an i= that is not a cursor value). */
static char *rebase_cursor(const char *configured, const char *i) {
  char *url = NULL;
  return cb2m_cursor_apply(configured, i, &url) == 0 ? url : NULL;
}

/* Restores the saved cursor of c into its session. Returns 0, or -1 when
 * the cursor file exists but cannot be read: starting from the live feed
 * then would overwrite it, a silent gap (SPEC 5). */
static int restore_cursor(bridge *b, bc *c) {
  const char *dir = b->cfg->events.state_dir;
  cb2m_cursor cur;
  char *aside = NULL, *moved = NULL;
  int rc = cb2m_cursor_load(dir, c->cfg->name, &cur, &aside);

  if (rc != CBEV_OK && rc != CBEV_ENOTFOUND && rc != CBEV_EPARSE) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot read the cursor file %s/%s.cursor: %s; stopping rather "
        "than start from the live feed and lose its place", c->cfg->name, dir, c->cfg->name,
        strerror(errno));
    rc = -1;
    goto out;
  }
  if (rc == CBEV_EPARSE)
    LOG(b, CBEV_LOG_WARN, "%s: the cursor file was corrupt (%s) and was set aside as %s; "
        "starting from the live feed", c->cfg->name, cur.why, aside ? aside : "(unknown)");
  if (rc != CBEV_OK) {
    rc = 0;
    goto out;
  }
  if (cur.ignored[0])
    LOG(b, CBEV_LOG_WARN, "%s: the cursor file holds unknown keys (%s): ignored, and dropped at "
        "the next save", c->cfg->name, cur.ignored);
  moved = rebase_cursor(cbev_session_cursor_url(c->session), cur.i);
  if (moved && cbev_session_set_cursor(c->session, moved, cur.last_id) == CBEV_OK) {
    LOG(b, CBEV_LOG_INFO, "%s: resuming after event %s", c->cfg->name,
        cur.last_id ? cur.last_id : "(none delivered yet)");
    c->cursor_id = cur.last_id;
    cur.last_id = NULL;
    /* A version-1 file holds the feed URL and with it the token: the
     * first save, due at once, writes the new form over it. */
    if (cur.version != CB2M_CURSOR_VERSION || cur.ignored[0]) {
      c->cursor_url = moved;
      moved = NULL;
    }
  } else {
    LOG(b, CBEV_LOG_WARN, "%s: the saved cursor does not match the configured API; "
        "starting from the live feed", c->cfg->name);
  }
  rc = 0;
out:
  free(moved);
  free(aside);
  cb2m_cursor_cleanup(&cur);
  return rc;
}

/* A session for broadcaster name with the secret given (exactly one of
 * token and url), the settings of the start and c's rate limiter (or the
 * shared one). Returns a cbev_ code. */
static int open_session(bridge *b, const bc *c, const char *name, const char *token,
                        const char *url, cbev_session **out) {
  const cb2m_config *cfg = b->cfg;
  cbev_session_config sc;

  cbev_session_config_init(&sc);
  if (url) {
    sc.events_url = url;
  } else {
    sc.base_url = cfg->events.api_base;
    sc.username = name;
    sc.token = token;
  }
  sc.timeout_s = cfg->events.timeout;
  sc.retry_attempts = 0; /* the daemon retries forever */
  sc.retry_backoff_s = cfg->events.retry_backoff;
  sc.retry_factor = cfg->events.retry_factor;
  sc.retry_max_delay_s = cfg->events.retry_max_delay;
  sc.logger = &b->logger;
  sc.limiter = b->shared_limiter ? b->shared_limiter : c->own_limiter;
  return cbev_session_new(&sc, out);
}

/* Moves the position of session from (its i= and last id) into to, a
 * session of the same broadcaster with another secret, so that nothing is
 * lost or fetched twice. Returns CBEV_OK, or CBEV_ENOMEM / CBEV_EINVAL. */
static int carry_cursor(const cbev_session *from, cbev_session *to) {
  char *i_value = NULL, *moved = NULL;
  int rc = cb2m_cursor_i_of(cbev_session_cursor_url(from), &i_value);

  if (rc != CBEV_OK)
    goto out;
  rc = CBEV_ENOMEM;
  if (!(moved = rebase_cursor(cbev_session_cursor_url(to), i_value)))
    goto out;
  rc = cbev_session_set_cursor(to, moved, cbev_session_last_id(from));
out:
  free(i_value);
  cb2m_config_secret_free(moved);
  return rc;
}

/* Before a try after an authentication failure: reads c's secret file
 * again, and when it changed, moves c to a session with the new secret
 * that resumes where the old one stood, and the old token is never sent
 * again. The new token joins the log masking list first. A secret that
 * cannot be read or is refused is logged and the old session tries
 * again. */
static void reread_secret(bridge *b, size_t i) {
  bc *c = &b->bcs[i];
  const cb2m_broadcaster_config *cfg = c->cfg;
  cbev_session *fresh = NULL;
  char err[CB2M_PATH_MAX + 128], *secret = NULL;
  const char *old;
  int rc;

  if (!cfg->secret_file)
    return; /* given directly: only a restart (or a reload) changes it */
  if (cb2m_config_reread_secret(cfg, &secret, err, sizeof err) != CBEV_OK) {
    LOG(b, CBEV_LOG_WARN, "%s: %s; trying the old secret", cfg->name, err);
    return;
  }
  old = cfg->url ? cfg->url : cfg->token;
  if (c->secret_now)
    old = c->secret_now;
  if (strcmp(secret, old) == 0)
    goto out;
  rc = open_session(b, c, cfg->name, cfg->url ? NULL : secret, cfg->url ? secret : NULL,
                    &fresh);
  if (rc != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "%s: the new secret in %s is not usable (%s); trying the old one",
        cfg->name, cfg->secret_file, cbev_strerror(rc));
    goto out;
  }
  /* Masked before the new session could log anything with it. */
  if (!c->secret_slot && b->n_masked < b->mask_cap) {
    c->secret_slot = 1 + b->n_masked++;
    b->sink.n_secrets = b->n_masked;
  }
  if (c->secret_slot)
    b->mask[c->secret_slot - 1] = cbev_session_token(fresh);
  if (carry_cursor(c->session, fresh) != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot carry the cursor over to the new secret; trying the old "
        "one", cfg->name);
    if (c->secret_slot)
      b->mask[c->secret_slot - 1] = cbev_session_token(c->session);
    goto out;
  }
  LOG(b, CBEV_LOG_INFO, "%s: %s changed; trying the new secret", cfg->name, cfg->secret_file);
  cb2m_poller_set_session(b->poller, i, fresh);
  cbev_session_free(c->session);
  c->session = fresh;
  fresh = NULL;
  cb2m_config_secret_free(c->secret_now);
  c->secret_now = secret;
  secret = NULL;
out:
  cbev_session_free(fresh);
  cb2m_config_secret_free(secret);
}

/* A session for the changed broadcaster c (settings in cfg) that resumes
 * where c's session stands (carry_cursor()). Returns CBEV_OK, or a code
 * (logged). */
int bridge_carry_session(bridge *b, bc *c, const cb2m_broadcaster_config *cfg,
                         cbev_session **out) {
  int rc = open_session(b, c, cfg->name, cfg->token, cfg->url, out);

  if (rc != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "%s: the new secret is not usable (%s)", cfg->name,
        cbev_strerror(rc));
    return rc;
  }
  rc = carry_cursor(c->session, *out);
  if (rc != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot carry the cursor over to the new secret", cfg->name);
    cbev_session_free(*out);
    *out = NULL;
  }
  return rc;
}

/* When the next try after an authentication failure is due (SPEC 5:
 * every auth_retry_interval seconds, forever); UINT64_MAX: none. */
uint64_t bridge_auth_retry_next(bridge *b, uint64_t now) {
  uint64_t next = UINT64_MAX;

  (void)now;
  for (size_t i = 0; i < b->n; i++) {
    const bc *c = &b->bcs[i];
    if (c->status == BC_AUTH_FAILED && !c->auth_retry && !b->stopping &&
        c->auth_retry_at_ms < next)
      next = c->auth_retry_at_ms;
  }
  return next;
}

/* Starts the tries that are due: the secret file is read again first. */
void bridge_auth_retry_fire(bridge *b, uint64_t now) {
  for (size_t i = 0; i < b->n; i++) {
    bc *c = &b->bcs[i];
    if (c->status != BC_AUTH_FAILED || c->auth_retry || now < c->auth_retry_at_ms)
      continue;
    LOG(b, CBEV_LOG_INFO, "%s: trying the Events API again after the authentication failure",
        c->cfg->name);
    reread_secret(b, i);
    c->auth_retry = 1;
    cb2m_poller_kick(b->poller);
  }
}

/* Sets c up for the broadcaster bcfg: queue, limiter, session, saved
 * cursor and state. The poller slot is the caller's. Returns CBEV_OK, or a
 * code (logged) with c holding what was set up, for bridge_bc_close():
 * CBEV_ENOMEM, the session's code, or CBEV_EIO for a cursor or state file
 * that cannot be read. */
int bridge_bc_open(bridge *b, bc *c, const cb2m_broadcaster_config *bcfg) {
  const cb2m_config *cfg = b->cfg;
  char *aside = NULL;
  int rc;

  c->cfg = bcfg;
  c->published_available = -1;
  if (cb2m_queue_init(&c->queue, (size_t)cfg->events.max_queued) != 0)
    goto nomem;
  if (!b->shared_limiter &&
      cbev_ratelimit_new(cfg->events.rate_requests, cfg->events.rate_seconds, &c->own_limiter) !=
          CBEV_OK)
    goto nomem;
  rc = open_session(b, c, c->cfg->name, c->cfg->token, c->cfg->url, &c->session);
  if (rc != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot set up the Events API session: %s", c->cfg->name,
        cbev_strerror(rc));
    return rc;
  }
  if (restore_cursor(b, c) != 0)
    return CBEV_EIO;
  rc = cb2m_state_load(cfg->events.state_dir, c->cfg->name, &c->state, &aside);
  if (rc != CBEV_OK && rc != CBEV_ENOTFOUND && rc != CBEV_EPARSE) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot read the state file %s/%s.state: %s; stopping rather "
        "than overwrite it", c->cfg->name, cfg->events.state_dir, c->cfg->name, strerror(errno));
    free(aside);
    return CBEV_EIO;
  }
  if (rc == CBEV_EPARSE)
    LOG(b, CBEV_LOG_WARN, "%s: the state file was corrupt and was set aside as %s",
        c->cfg->name, aside ? aside : "(unknown)");
  free(aside);
  return CBEV_OK;
nomem:
  LOG(b, CBEV_LOG_ERROR, "%s: out of memory", bcfg->name);
  return CBEV_ENOMEM;
}

/* Frees what bridge_bc_open() set up. Its poller slot must be gone or idle
 * first: the poller borrows the session. */
void bridge_bc_close(bc *c) {
  cb2m_queue_cleanup(&c->queue);
  cb2m_state_cleanup(&c->state);
  free(c->cursor_url);
  free(c->cursor_id);
  cbev_session_free(c->session);
  cbev_ratelimit_free(c->own_limiter);
  cb2m_config_secret_free(c->secret_now);
  memset(c, 0, sizeof *c);
}

/*
 * bridge_reload.c: SIGHUP (SPEC 5, Signals). The settings are loaded and
 * validated as at start and compared with the running ones (reload.h);
 * everything the new ones need is built first, so a failure leaves the
 * bridge as it ran, then the switch is made at once: untouched
 * broadcasters keep their sessions, queues and publishes in flight. See
 * bridge_impl.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_impl.h"
#include "reload.h"

/* What a reload builds before it changes anything, so that any failure
 * leaves the bridge as it ran. */
typedef struct reload_work {
  cb2m_config *next;
  const cb2m_reload_plan *plan;
  bc *bcs;                /* the broadcasters in next's order */
  size_t *old_of_new;     /* for cb2m_poller_remap() */
  uint32_t *new_of_old;   /* for cb2m_midmap_remap() */
  const cb2m_bc_metrics **mx_list;
  cb2m_secrets secrets;   /* next's */
  const char **mask, **union_mask;
  size_t mask_cap;
  /* Per new index: the new session of a changed one; after the switch,
   * the old one it replaced, freed once nothing can mask with its token. */
  cbev_session **fresh;
  cb2m_mqtt *mqtt;        /* the client of the new mqtt.* settings, if they changed */
  char *old_host;         /* the broker before, for reconnect() */
  int old_port;
  char *old_base;         /* the base topic before, for reconnect() */
} reload_work;

static void reload_work_free(reload_work *w) {
  free(w->old_of_new);
  free(w->new_of_old);
  free(w->mx_list);
  cb2m_secrets_cleanup(&w->secrets);
  free(w->mask);
  free(w->union_mask);
  free(w->fresh);
  free(w->bcs);
  free(w->old_host);
  free(w->old_base);
}

/* Builds everything the plan needs: new sessions and queues of added
 * broadcasters, carried-over sessions of changed ones, the index maps and
 * the masking list. Returns 0, or -1 (logged) with w to be undone by
 * reload_undo(). */
static int reload_prepare(bridge *b, reload_work *w) {
  const cb2m_reload_plan *plan = w->plan;
  size_t n = w->next->n_broadcasters, k = 0;
  int rc = -1;

  w->bcs = calloc(n ? n : 1, sizeof *w->bcs);
  w->old_of_new = malloc((n ? n : 1) * sizeof *w->old_of_new);
  w->new_of_old = malloc((b->n ? b->n : 1) * sizeof *w->new_of_old);
  w->mx_list = calloc(n ? n : 1, sizeof *w->mx_list);
  w->fresh = calloc(n ? n : 1, sizeof *w->fresh);
  if (!w->bcs || !w->old_of_new || !w->new_of_old || !w->mx_list || !w->fresh ||
      cb2m_secrets_collect(w->next, &w->secrets) != 0)
    goto nomem;
  w->mask_cap = w->secrets.n + n;
  w->mask = calloc(w->mask_cap ? w->mask_cap : 1, sizeof *w->mask);
  w->union_mask = calloc(b->sink.n_secrets + w->secrets.n + 1, sizeof *w->union_mask);
  if (!w->mask || !w->union_mask)
    goto nomem;
  /* Until the switch, both the running and the new secrets are masked:
   * the new sessions may log before it. */
  for (size_t i = 0; i < b->sink.n_secrets; i++)
    w->union_mask[k++] = b->sink.secrets[i];
  for (size_t i = 0; i < w->secrets.n; i++)
    w->union_mask[k++] = w->secrets.v[i];
  b->sink.secrets = w->union_mask;
  b->sink.n_secrets = k;

  for (size_t j = 0; j < n; j++)
    w->old_of_new[j] = CB2M_POLLER_NEW_SLOT;
  for (size_t i = 0; i < b->n; i++)
    w->new_of_old[i] = CB2M_MIDMAP_GONE;
  for (size_t k2 = 0; k2 < plan->n_untouched; k2++) {
    w->old_of_new[plan->untouched[k2].new_i] = plan->untouched[k2].old_i;
    w->new_of_old[plan->untouched[k2].old_i] = (uint32_t)plan->untouched[k2].new_i;
  }
  for (size_t k2 = 0; k2 < plan->n_changed; k2++) {
    const cb2m_reload_pair *pr = &plan->changed[k2];
    w->old_of_new[pr->new_i] = pr->old_i;
    w->new_of_old[pr->old_i] = (uint32_t)pr->new_i;
    if (bridge_carry_session(b, &b->bcs[pr->old_i], &w->next->broadcasters[pr->new_i],
                             &w->fresh[pr->new_i]) != CBEV_OK)
      goto out;
  }
  /* bridge_bc_open() reads the settings of the running bridge: the ones
   * it uses (events.*) cannot differ, or the plan would have refused. */
  for (size_t k2 = 0; k2 < plan->n_added; k2++) {
    size_t j = plan->added[k2];
    if (bridge_bc_open(b, &w->bcs[j], &w->next->broadcasters[j]) != CBEV_OK)
      goto out;
  }
  /* A client for new mqtt.* settings that cannot be made (a TLS file that
   * does not load) refuses the reload like a bad file: it connects in the
   * loop, after the switch. */
  if (plan->mqtt_changed) {
    if (!(w->old_host = strdup(b->cfg->mqtt.host)) ||
        !(w->old_base = strdup(b->cfg->mqtt.base_topic)))
      goto nomem;
    w->old_port = b->cfg->mqtt.port;
    if (bridge_mqtt_open(b, w->next, &w->mqtt) != CBEV_OK) {
      LOG(b, CBEV_LOG_ERROR, "reload: the new mqtt.* settings are not usable");
      goto out;
    }
  }
  rc = 0;
  goto out;
nomem:
  LOG(b, CBEV_LOG_ERROR, "reload: out of memory");
out:
  return rc;
}

/* Frees what reload_prepare() built and puts the running masking list
 * back. */
static void reload_undo(bridge *b, reload_work *w) {
  for (size_t j = 0; w->bcs && j < w->next->n_broadcasters; j++) {
    if (w->bcs[j].cfg) /* an added one, set up (maybe in part) */
      bridge_bc_close(&w->bcs[j]);
    if (w->fresh)
      cbev_session_free(w->fresh[j]);
  }
  cb2m_mqtt_free(w->mqtt);
  w->mqtt = NULL;
  b->sink.secrets = b->mask;
  b->sink.n_secrets = b->n_masked;
}

/* A removed broadcaster stops: its acknowledged cursor and its state are
 * written (the next start, or a reload that adds it back, resumes there),
 * and what it had queued and not delivered is fetched again then. */
static void stop_removed(bridge *b, bc *c) {
  if (bridge_save_now(b, c) != CBEV_OK)
    b->fatal = 1;
  LOG(b, CBEV_LOG_INFO, "reload: %s removed: stopped%s", c->cfg->name,
      c->queue.count ? "; its events not yet delivered are fetched again if it is added back"
                     : "");
}

/* Switches the bridge to w: slots, in-flight ids, broadcasters, masking
 * list and settings. Returns 0, or -1 when the poller cannot be
 * renumbered (out of memory): then nothing changed but that the changed
 * broadcasters' running requests start again (same cursor). */
static int reload_commit(bridge *b, reload_work *w) {
  const cb2m_reload_plan *plan = w->plan;
  size_t n = w->next->n_broadcasters, k = 0;

  /* The changed ones' requests were asked with the old secret: their
   * answers belong to the old sessions, which go. */
  for (size_t i = 0; i < plan->n_changed; i++)
    cb2m_poller_abort(b->poller, plan->changed[i].old_i);
  if (cb2m_poller_remap(b->poller, n, w->old_of_new) != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "reload: out of memory");
    return -1;
  }
  for (size_t i = 0; i < plan->n_removed; i++)
    stop_removed(b, &b->bcs[plan->removed[i]]);
  cb2m_midmap_remap(&b->midmap, w->new_of_old, (uint32_t)b->n);
  for (size_t j = 0; j < n; j++) {
    size_t old = w->old_of_new[j];
    bc *c = &w->bcs[j];
    if (old != CB2M_POLLER_NEW_SLOT) {
      *c = b->bcs[old];
      memset(&b->bcs[old], 0, sizeof b->bcs[old]);
    }
    c->cfg = &w->next->broadcasters[j];
    if (w->fresh[j]) {
      cbev_session *old_session = c->session;
      c->session = w->fresh[j];
      w->fresh[j] = old_session; /* freed after the switch below */
      cb2m_config_secret_free(c->secret_now);
      c->secret_now = NULL;
      c->failures = 0;
      c->auth_retry = c->status == BC_AUTH_FAILED; /* a new secret is worth a try now */
      LOG(b, CBEV_LOG_INFO, "reload: %s: the new secret applies from the next request",
          c->cfg->name);
    }
    cb2m_poller_set_session(b->poller, j, c->session);
    if (old == CB2M_POLLER_NEW_SLOT)
      LOG(b, CBEV_LOG_INFO, "reload: %s added", c->cfg->name);
  }
  /* The masking list of the new settings, plus the re-read tokens of
   * broadcasters that kept theirs. */
  for (size_t i = 0; i < w->secrets.n; i++)
    w->mask[k++] = w->secrets.v[i];
  for (size_t j = 0; j < n; j++) {
    bc *c = &w->bcs[j];
    c->secret_slot = 0;
    if (c->secret_now) {
      c->secret_slot = 1 + k;
      w->mask[k++] = cbev_session_token(c->session);
    }
  }
  /* The switch of the masking list first: until then it may hold the
   * tokens of the sessions that go (a re-read token's slot points into
   * its session). */
  free(b->mask);
  b->mask = w->mask;
  w->mask = NULL;
  b->mask_cap = w->mask_cap;
  b->n_masked = k;
  b->sink.secrets = b->mask;
  b->sink.n_secrets = k;
  for (size_t i = 0; i < plan->n_removed; i++)
    bridge_bc_close(&b->bcs[plan->removed[i]]);
  for (size_t j = 0; j < n; j++) {
    cbev_session_free(w->fresh[j]);
    w->fresh[j] = NULL;
  }
  free(b->bcs);
  b->bcs = w->bcs;
  w->bcs = NULL;
  b->n = n;
  b->next_pump = 0;
  free(b->mx_list);
  b->mx_list = w->mx_list;
  w->mx_list = NULL;
  cb2m_secrets_cleanup(&b->secrets);
  b->secrets = w->secrets;
  memset(&w->secrets, 0, sizeof w->secrets);
  b->sink.json = w->next->log.json;
  b->logger.max_level = w->next->log.level;
  b->cfg = w->next;
  if (b->owned_cfg) {
    cb2m_config_free(b->owned_cfg);
    free(b->owned_cfg);
  }
  b->owned_cfg = w->next;
  w->next = NULL;
  /* The base topic was checked by the loader: the topic fits. */
  bridge_topic_for(b, b->topic_status, "bridge", "status");
  return 0;
}

/* Publishes what the reload changed: cleared topics of removed
 * broadcasters, the added ones' availability and state, info, discovery,
 * health. Without a broker, the next connect publishes it all. */
static void publish_reloaded(bridge *b, const cb2m_reload_plan *plan) {
  if (!cb2m_mqtt_connected(b->mqtt))
    return;
  if (plan->n_added || plan->n_removed) {
    bridge_clear_removed(b);
    bridge_publish_info(b);
    if (b->cfg->homeassistant.discovery)
      bridge_announce(b);
  }
  for (size_t k = 0; k < plan->n_added; k++)
    bridge_republish(b, &b->bcs[plan->added[k]]);
  b->next_health_ms = 0;
}

/* mqtt.* changed: the client reload_prepare() made takes over, after the
 * old one delivered what it could in 1 s. Events the old one did not get
 * acknowledged go out again, in order, on the new connection (at least
 * once). On the old broker first: removed broadcasters' topics are
 * cleared, and a moved base topic clears the whole old tree (retained.h:
 * the record names the old base); a new broker address leaves "offline"
 * there for the broadcasters it knew, as a stop would. The new connection
 * publishes everything under the new base (on_connect). */
static void reconnect(bridge *b, reload_work *w) {
  const cb2m_reload_plan *plan = w->plan;
  int moved = strcmp(w->old_host, b->cfg->mqtt.host) != 0 || w->old_port != b->cfg->mqtt.port;

  LOG(b, CBEV_LOG_INFO, "reload: mqtt.* changed; reconnecting to %s:%d%s%s", b->cfg->mqtt.host,
      b->cfg->mqtt.port, plan->base_moved ? ", topics now under " : "",
      plan->base_moved ? b->cfg->mqtt.base_topic : "");
  if (cb2m_mqtt_connected(b->mqtt)) {
    if (plan->n_removed || plan->base_moved)
      bridge_clear_removed(b);
    if (moved && !plan->base_moved) {
      for (size_t i = 0; i < b->n; i++)
        if (b->bcs[i].published_available != -1) /* not one added just now */
          bridge_publish_availability(b, &b->bcs[i], 0);
      bridge_publish_retained(b, b->topic_status, "offline");
    }
  }
  cb2m_mqtt_shutdown(b->mqtt, cbev_now_ms() + 1000u);
  cb2m_mqtt_free(b->mqtt);
  b->mqtt = w->mqtt;
  w->mqtt = NULL;
  bridge_on_disconnect(b);
  for (size_t i = 0; i < b->n; i++) {
    bc *c = &b->bcs[i];
    c->published_available = -1;
    /* Events queued under the old base go out under the new one. */
    if (plan->base_moved &&
        cb2m_queue_rebase(&c->queue, w->old_base, b->cfg->mqtt.base_topic) != CBEV_OK) {
      LOG(b, CBEV_LOG_ERROR, "%s: out of memory while moving its queued events to the new base "
          "topic; stopping (the next start fetches them again)", c->cfg->name);
      b->fatal = 1;
    }
  }
}

/* A broadcaster whose token was re-read from its file after an
 * authentication failure runs with that token, not its settings' one: if
 * the new settings name another (the old one written back, say), it is
 * changed, not untouched. */
static void plan_reread_secrets(const bridge *b, const cb2m_config *next,
                                cb2m_reload_plan *plan) {
  size_t k = 0;

  for (size_t u = 0; u < plan->n_untouched; u++) {
    cb2m_reload_pair pr = plan->untouched[u];
    const char *now = b->bcs[pr.old_i].secret_now;
    const cb2m_broadcaster_config *nc = &next->broadcasters[pr.new_i];
    const char *wanted = nc->url ? nc->url : nc->token;
    if (now && wanted && strcmp(now, wanted) != 0)
      plan->changed[plan->n_changed++] = pr;
    else
      plan->untouched[k++] = pr;
  }
  plan->n_untouched = k;
}

/* Loads and validates the settings again and applies them (SPEC 5).
 * Anything refused is logged and the running settings stay; broadcasters
 * whose settings did not change are never touched. */
void bridge_reload(bridge *b, const cb2m_bridge_hooks *hooks) {
  cb2m_config *next = calloc(1, sizeof *next);
  cb2m_reload_plan plan = {0};
  reload_work w = {0};
  char err[512];

  LOG(b, CBEV_LOG_INFO, "reload: reading the settings again (SIGHUP)");
  if (!next) {
    LOG(b, CBEV_LOG_ERROR, "reload: out of memory; the running settings stay");
    return;
  }
  if (hooks->load(hooks->load_ud, next, err, sizeof err) != 0) {
    LOG(b, CBEV_LOG_ERROR, "%s; the running settings stay", err);
    goto out;
  }
  if (cb2m_reload_plan_make(b->cfg, next, &plan) != 0) {
    LOG(b, CBEV_LOG_ERROR, "reload: out of memory; the running settings stay");
    goto out;
  }
  if (plan.restart_key[0]) {
    LOG(b, CBEV_LOG_ERROR, "config: %s: cannot change while running (restart cb2mqtt); the "
        "running settings stay", plan.restart_key);
    goto out;
  }
  plan_reread_secrets(b, next, &plan);
  w.next = next;
  w.plan = &plan;
  if (reload_prepare(b, &w) != 0 || reload_commit(b, &w) != 0) {
    reload_undo(b, &w);
    LOG(b, CBEV_LOG_ERROR, "reload: the running settings stay");
    goto out;
  }
  next = NULL; /* the bridge's now */
  if (plan.log_changed)
    LOG(b, CBEV_LOG_INFO, "reload: log settings applied (level %s, format %s)",
        b->cfg->log.level_name, b->cfg->log.format);
  if (plan.mqtt_changed)
    reconnect(b, &w);
  publish_reloaded(b, &plan);
  LOG(b, CBEV_LOG_INFO, "reload: done; %zu broadcaster(s) untouched, %zu added, %zu removed, "
      "%zu with a new secret%s", plan.n_untouched, plan.n_added, plan.n_removed, plan.n_changed,
      plan.mqtt_changed ? ", mqtt.* changed" : "");
out:
  reload_work_free(&w);
  cb2m_reload_plan_free(&plan);
  if (next) {
    cb2m_config_free(next);
    free(next);
  }
}

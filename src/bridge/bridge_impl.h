/*
 * bridge_impl.h: what the files of the bridge daemon share (bridge.h is
 * its public face). One object, served by one thread (the loop); only the
 * cursor and state files are written by a second one (writer.h), which
 * shares nothing with the loop but the batches it is handed:
 *
 *   bridge.c          the loop: setup, timers, turn, shutdown
 *   bridge_bc.c       a broadcaster's setup: session, limiter, cursor
 *                     restore, state load; secrets re-read after an auth
 *                     failure
 *   bridge_deliver.c  an event's way: poll done -> queue -> MQTT -> ack
 *   bridge_save.c     cursor and state files, through the writer thread
 *   bridge_publish.c  status publishing: availability, state, info,
 *                     health, Home Assistant discovery, /metrics
 *   bridge_reload.c   SIGHUP: the new settings applied (SPEC 5)
 *
 * Return values follow src/bridge/README.
 */
#ifndef CB2M_BRIDGE_IMPL_H
#define CB2M_BRIDGE_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bridge.h"
#include "cbevents/cbevents.h"
#include "config.h"
#include "health.h"
#include "logsink.h"
#include "metrics.h"
#include "metrics_http.h"
#include "midmap.h"
#include "mqtt.h"
#include "poller.h"
#include "queue.h"
#include "state.h"
#include "writer.h"

#define TOPIC_MAX 512

typedef enum bc_status { BC_STARTING, BC_ONLINE, BC_FAILING, BC_AUTH_FAILED } bc_status;

typedef struct bc {
  const cb2m_broadcaster_config *cfg;
  cbev_session *session;
  cbev_ratelimit *own_limiter;
  cb2m_queue queue;
  cb2m_state state;
  unsigned state_changed;  /* CB2M_CHG_* bits not yet published */
  int state_unsaved;
  /* The acknowledged cursor: cursor_url (its i= is saved) is set while a
   * save is due; cursor_id stays the last delivered event id (<ms>-<seq>)
   * after the save, since an odd id never replaces it. */
  char *cursor_url, *cursor_id;
  int cursor_refused; /* a save was refused for its content (logged once) */
  /* After an authentication failure: when the next try is due, and
   * whether it may run now (its secret was read again). */
  uint64_t auth_retry_at_ms;
  int auth_retry;
  size_t secret_slot; /* 1 + index in bridge.mask of a re-read token; 0: none */
  char *secret_now;   /* the secret re-read from its file, when it changed (owned) */
  bc_status status;
  int published_available; /* -1 unknown, 0 offline, 1 online */
  unsigned failures;       /* consecutive failed polls */
  /* Health counters; mx is also what /metrics shows. */
  cb2m_bc_metrics mx;
  uint64_t last_event_ms;
  cb2m_publish_error publish_error; /* the last refusal, for cb/<b>/health */
  int last_error_rc;
  long last_error_status;
  /* Refused publishes: when the last was logged, how many since. */
  uint64_t refusal_logged_ms;
  unsigned long refusals_unlogged;
} bc;

typedef struct bridge {
  const cb2m_config *cfg;
  cb2m_logsink sink;
  cbev_logger logger;
  cb2m_secrets secrets; /* masked out of every log line */
  cb2m_mqtt *mqtt;
  cb2m_poller *poller;
  cb2m_writer *writer; /* cursor and state files, off the loop */
  cbev_ratelimit *shared_limiter;
  bc *bcs;
  size_t n;
  cb2m_midmap midmap; /* event publishes in flight */
  size_t next_pump;   /* the broadcaster bridge_pump() serves first */
  int stopping;
  int fatal;
  int any_good;          /* some broadcaster got a good answer (exit 3 is off) */
  /* What the log sink masks: the collected secrets, then one slot per
   * broadcaster for a token re-read after an auth failure. */
  const char **mask;
  size_t mask_cap, n_masked;
  int discovery_due;     /* HA asked for a re-publish (birth message) */
  uint64_t discovery_at_ms;
  time_t started_at;
  uint64_t started_ms;
  uint64_t next_save_ms, next_heartbeat_ms, next_health_ms;
  char topic_status[TOPIC_MAX];
  char *topic_ha_status; /* Home Assistant's birth topic (owned) */
  /* GET /metrics (metrics.listen), served in this thread: NULL when off. */
  cb2m_metrics_http *http;
  cb2m_metrics mx;
  const cb2m_bc_metrics **mx_list; /* n pointers into bcs[].mx */
  /* The settings of the last reload (cfg points here then); NULL while
   * the caller's settings of the start run. */
  cb2m_config *owned_cfg;
} bridge;

#define LOG(b, lvl, ...) cbev_log(&(b)->logger, NULL, lvl, __VA_ARGS__)

/* CLOCK_REALTIME in ms, for what is shown as a date (the loop's
 * deadlines use cbev_now_ms()). */
static inline uint64_t bridge_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* bridge.c */
int bridge_mqtt_open(bridge *b, const cb2m_config *cfg, cb2m_mqtt **out);

/* bridge_bc.c */
int bridge_carry_session(bridge *b, bc *c, const cb2m_broadcaster_config *cfg,
                         cbev_session **out);
uint64_t bridge_auth_retry_next(bridge *b, uint64_t now);
void bridge_auth_retry_fire(bridge *b, uint64_t now);
int bridge_bc_open(bridge *b, bc *c, const cb2m_broadcaster_config *bcfg);
void bridge_bc_close(bc *c);

/* bridge_deliver.c */
void bridge_pump(bridge *b);
uint64_t bridge_retry_due_ms(const bridge *b);
void bridge_collect_acked(bridge *b);
void bridge_on_disconnect(void *ud);
void bridge_on_ack(void *ud, int mid, int reason);
int bridge_poll_allowed(void *ud, size_t i);
void bridge_on_poll_done(void *ud, size_t i, int rc, cbev_batch *batch, const char *request_url);

/* bridge_save.c: each returns CBEV_OK, or CBEV_EIO / CBEV_ENOMEM (logged;
 * the caller stops the bridge). */
/* Hands the due cursor and state files to the writer thread, unless it
 * is still busy with the last batch (they stay due then). */
int bridge_save_due(bridge *b);
/* Writes c's due files now (after the writer finished what it had). */
int bridge_save_now(bridge *b, bc *c);
/* bridge_save_now() for every broadcaster (shutdown). */
int bridge_save_all_now(bridge *b);

/* bridge_publish.c */
int bridge_topic_for(const bridge *b, char *buf, const char *l1, const char *l2);
void bridge_publish_retained(bridge *b, const char *topic, const char *payload);
void bridge_publish_availability(bridge *b, bc *c, int online);
void bridge_publish_state(bridge *b, bc *c, unsigned changed);
void bridge_publish_info(bridge *b);
void bridge_publish_health(bridge *b, uint64_t now);
int bridge_render_metrics(void *ud, char **text, size_t *len);
void bridge_announce(bridge *b);
void bridge_clear_removed(bridge *b);
/* c's availability and every state topic again (a connect, Home
 * Assistant's birth message, a broadcaster added by a reload). */
void bridge_republish(bridge *b, bc *c);
void bridge_on_connect(void *ud);
void bridge_on_message(void *ud, const char *topic, const void *payload, size_t len);

/* bridge_reload.c */
void bridge_reload(bridge *b, const cb2m_bridge_hooks *hooks);

#endif

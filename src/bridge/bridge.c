/*
 * bridge.c: the daemon's loop and the glue between poller, queues, derived
 * state, cursor files and MQTT. See bridge.h for the way of one event.
 *
 * Everything runs in one thread. curl_multi_poll() waits on the HTTP
 * transfers, the MQTT socket and the signal pipe at once, so an idle bridge
 * sleeps until something happens or a timer (reconnect, heartbeat, health,
 * debounced saves) is due.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <mosquitto.h>

#include "bridge.h"
#include "cbevents/cbevents.h"
#include "cursor.h"
#include "discovery.h"
#include "reload.h"
#include "retained.h"
#include "fsutil.h"
#include "health.h"
#include "heartbeat.h"
#include "logsink.h"
#include "metrics.h"
#include "metrics_http.h"
#include "midmap.h"
#include "mqtt.h"
#include "poller.h"
#include "queue.h"
#include "route.h"
#include "state.h"
#include "topics.h"

#define TOPIC_MAX 512
/* Events handed to libmosquitto and not yet acknowledged, across all
 * broadcasters, are at most the MQTT client's in-flight window (the
 * bridge leaves mo.max_inflight 0): more would only wait inside
 * libmosquitto, and this bounds the memory it holds for us. */
_Static_assert(CB2M_MQTT_DEFAULT_INFLIGHT * 4 <= CB2M_MIDMAP_SLOTS,
               "midmap probe runs stay short");
/* A broadcaster's refused publishes are logged at most this often. */
#define REFUSAL_LOG_INTERVAL_MS 60000u
#define SAVE_INTERVAL_MS 1000u
#define HEARTBEAT_INTERVAL_MS 10000u
/* Consecutive failed polls after which a broadcaster is shown offline. */
#define UNAVAILABLE_AFTER_FAILURES 3u

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
  cbev_ratelimit *shared_limiter;
  bc *bcs;
  size_t n;
  cb2m_midmap midmap; /* event publishes in flight */
  size_t next_pump;   /* the broadcaster pump() serves first */
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

/* ---- publishing helpers */

static int topic_for(const bridge *b, char *buf, const char *l1, const char *l2) {
  return cb2m_topic(buf, TOPIC_MAX, b->cfg->mqtt.base_topic, l1, l2);
}

/* Publishes retained state-like messages at QoS 1; loss is repaired by the
 * re-publish on every connect, so the result is only logged. */
static void publish_retained(bridge *b, const char *topic, const char *payload) {
  int rc = cb2m_mqtt_publish(b->mqtt, topic, payload, strlen(payload), 1, 1, NULL);
  if (rc != 0 && rc != CBEV_EAGAIN)
    LOG(b, CBEV_LOG_WARN, "mqtt: cannot publish %s: %s", topic, cbev_strerror(rc));
}

static void publish_availability(bridge *b, bc *c, int online) {
  char topic[TOPIC_MAX];

  if (!cb2m_mqtt_connected(b->mqtt) || c->published_available == online)
    return;
  if (topic_for(b, topic, c->cfg->name, "availability") != 0)
    return;
  publish_retained(b, topic, online ? "online" : "offline");
  c->published_available = online;
}

static void publish_state(bridge *b, bc *c, unsigned changed) {
  char topic[TOPIC_MAX], num[32];
  char *json;

  if (!cb2m_mqtt_connected(b->mqtt) || !changed)
    return;
  if ((changed & CB2M_CHG_BROADCASTING) && c->state.broadcasting != CBEV_UNSET &&
      topic_for(b, topic, c->cfg->name, "state/broadcasting") == 0)
    publish_retained(b, topic, c->state.broadcasting == CBEV_TRUE ? "true" : "false");
  if ((changed & CB2M_CHG_SUBJECT) && c->state.subject &&
      topic_for(b, topic, c->cfg->name, "state/subject") == 0)
    publish_retained(b, topic, c->state.subject);
  if ((changed & CB2M_CHG_SESSION_TOKENS) &&
      topic_for(b, topic, c->cfg->name, "state/session_tokens") == 0) {
    snprintf(num, sizeof num, "%lld", (long long)c->state.session_tokens);
    publish_retained(b, topic, num);
  }
  if ((changed & CB2M_CHG_VIEWERS) && topic_for(b, topic, c->cfg->name, "state/viewers") == 0) {
    snprintf(num, sizeof num, "%lld", (long long)c->state.viewers);
    publish_retained(b, topic, num);
  }
  json = cb2m_state_json(&c->state);
  if (json && topic_for(b, topic, c->cfg->name, "state") == 0)
    publish_retained(b, topic, json);
  free(json);
  c->state_changed = 0;
}

static void publish_info(bridge *b) {
  char topic[TOPIC_MAX], started[32];
  cJSON *root = cJSON_CreateObject(), *names = cJSON_AddArrayToObject(root, "broadcasters");
  char *settings = cb2m_config_info_json(b->cfg);
  cJSON *settings_json = settings ? cJSON_Parse(settings) : NULL;
  char *text;

  cbev_format_timestamp((unsigned long long)b->started_at * 1000ull, started, sizeof started);
  cJSON_AddStringToObject(root, "version", cbev_version());
  cJSON_AddStringToObject(root, "started_at", started);
  for (size_t i = 0; i < b->n; i++)
    cJSON_AddItemToArray(names, cJSON_CreateString(b->bcs[i].cfg->name));
  if (settings_json)
    cJSON_AddItemToObject(root, "settings", settings_json);
  text = cJSON_PrintUnformatted(root);
  if (text && topic_for(b, topic, "bridge", "info") == 0)
    publish_retained(b, topic, text);
  free(text);
  free(settings);
  cJSON_Delete(root);
}

/* The retained health topics: one small message per broadcaster, which
 * Home Assistant's diagnostics of that broadcaster read, and the bridge's
 * own part with counts (SPEC 5). */
static void publish_health(bridge *b, uint64_t now) {
  char topic[TOPIC_MAX], *text;
  size_t online = 0, failing = 0;

  for (size_t i = 0; i < b->n; i++) {
    bc *c = &b->bcs[i];
    cb2m_bc_health h = {&c->mx, c->status == BC_ONLINE, c->queue.count,
                        c->last_event_ms ? (long long)((now - c->last_event_ms) / 1000u) : -1,
                        c->last_error_rc, c->last_error_status,
                        c->last_error_rc ? cbev_strerror(c->last_error_rc) : NULL,
                        &c->publish_error};
    online += c->status == BC_ONLINE;
    failing += c->status == BC_FAILING || c->status == BC_AUTH_FAILED;
    text = cb2m_health_broadcaster_json(&h);
    if (text && topic_for(b, topic, c->cfg->name, "health") == 0)
      publish_retained(b, topic, text);
    cJSON_free(text);
  }
  text = cb2m_health_bridge_json((now - b->started_ms) / 1000u, cb2m_mqtt_connected(b->mqtt),
                                 (uint64_t)cb2m_mqtt_reconnects(b->mqtt), b->n, online, failing);
  if (text && topic_for(b, topic, "bridge", "health") == 0)
    publish_retained(b, topic, text);
  cJSON_free(text);
}

/* ---- metrics */

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The render callback of metrics_http.h: runs in this thread, between two
 * turns of the loop, so every counter is read as one consistent state. */
static int render_metrics(void *ud, char **text, size_t *len) {
  bridge *b = ud;

  b->mx.mqtt_connected = cb2m_mqtt_connected(b->mqtt);
  b->mx.mqtt_reconnects = (uint64_t)cb2m_mqtt_reconnects(b->mqtt);
  for (size_t i = 0; i < b->n; i++) {
    bc *c = &b->bcs[i];
    c->mx.name = c->cfg->name;
    c->mx.up = c->status == BC_ONLINE;
    c->mx.broadcasting = c->state.broadcasting == CBEV_UNSET ? -1
                         : c->state.broadcasting == CBEV_TRUE ? 1 : 0;
    c->mx.queued = c->queue.count;
    b->mx_list[i] = &c->mx;
  }
  return cb2m_metrics_render(&b->mx, b->mx_list, b->n, text, len);
}

/* Holds broadcaster i's queue for its refused item seq (queue.h: re-sent
 * after the backoff, later events wait behind it) and logs the refusal,
 * at most once a minute per broadcaster. why names the cause: the
 * broker's reason code, or the MQTT module's error. */
static void refused(bridge *b, uint32_t i, uint64_t seq, int reason_code, const char *why,
                    uint64_t now) {
  bc *c = &b->bcs[i];
  cb2m_item *it = cb2m_queue_refuse(&c->queue, seq, now);
  char more[64] = "";

  if (!it)
    return; /* an earlier refusal or a reconnect took it back already */
  c->mx.publish_refused++;
  snprintf(c->publish_error.topic, sizeof c->publish_error.topic, "%s", it->topic);
  snprintf(c->publish_error.reason, sizeof c->publish_error.reason, "%s", why);
  c->publish_error.reason_code = reason_code;
  c->publish_error.at = time(NULL);
  if (c->refusal_logged_ms && now - c->refusal_logged_ms < REFUSAL_LOG_INTERVAL_MS) {
    c->refusals_unlogged++;
    return;
  }
  if (c->refusals_unlogged)
    snprintf(more, sizeof more, " (%lu more refusals since the last message)",
             c->refusals_unlogged);
  LOG(b, CBEV_LOG_ERROR,
      "%s: publish of event %s to %s refused: %s; sending it again in %.0f s, later events of "
      "%s wait behind it%s",
      c->cfg->name, it->id, it->topic, why,
      (double)cb2m_queue_retry_delay_ms(c->queue.refusals) / 1000.0, c->cfg->name, more);
  c->refusal_logged_ms = now;
  c->refusals_unlogged = 0;
}

/* Hands the next event of broadcaster i that may go out now to MQTT.
 * Returns 1 when one was published, 0 when i has none ready, -1 when MQTT
 * takes nothing now (not connected any more): the item stays queued and
 * goes out after the next connect. */
static int pump_one(bridge *b, uint32_t i, uint64_t now) {
  bc *c = &b->bcs[i];
  cb2m_item *it;
  uint64_t seq;
  int mid = 0, rc;

  while ((it = cb2m_queue_next_unsent(&c->queue, now)) != NULL && !it->topic)
    cb2m_queue_mark_sent(&c->queue); /* filtered out: passes as done */
  if (!it)
    return 0;
  rc = cb2m_mqtt_publish(b->mqtt, it->topic, it->payload, it->len, b->cfg->mqtt.qos, 0, &mid);
  if (rc == CBEV_EAGAIN)
    return -1;
  seq = cb2m_queue_mark_sent(&c->queue);
  if (rc == CBEV_OK && cb2m_midmap_put(&b->midmap, mid, i, seq) == 0)
    return 1;
  /* Refused before reaching the broker (a payload over the broker's
   * packet size, out of memory; or an id the map cannot hold): retried
   * like a broker's refusal, so nothing is dropped and order holds. */
  refused(b, i, seq, -1, rc == CBEV_OK ? "its message id cannot be tracked" : cbev_strerror(rc),
          now);
  return 0;
}

/* Hands queued events to MQTT while the connection, the in-flight budget
 * and the socket allow, one event per broadcaster in turn, so that after
 * an outage one broadcaster's backlog never holds back the others. Once
 * the socket is full each publish would retry the write in vain (half the
 * write calls of a fast run failed with EAGAIN), so the rest waits for the
 * socket to drain. */
static void pump(bridge *b) {
  uint64_t now = cbev_now_ms();
  size_t idle = 0; /* broadcasters in a row with nothing ready */

  if (!cb2m_mqtt_connected(b->mqtt) || b->n == 0)
    return;
  while (idle < b->n && b->midmap.count < CB2M_MQTT_DEFAULT_INFLIGHT &&
         !cb2m_mqtt_backlogged(b->mqtt)) {
    uint32_t i = (uint32_t)b->next_pump;
    int r = pump_one(b, i, now);
    if (r < 0)
      return; /* i keeps its turn */
    b->next_pump = (i + 1) % b->n;
    idle = r ? 0 : idle + 1;
  }
}

/* The earliest time a refused publish is due again; UINT64_MAX for none. */
static uint64_t retry_due_ms(const bridge *b) {
  uint64_t due = UINT64_MAX;

  for (size_t i = 0; i < b->n; i++) {
    uint64_t t = cb2m_queue_retry_ms(&b->bcs[i].queue);
    if (t < due)
      due = t;
  }
  return due;
}

/* Moves acknowledged prefixes out of the queues; their cursors become due
 * for saving. Also resumes polling of broadcasters whose queue drained. */
static void collect_acked(bridge *b) {
  for (size_t i = 0; i < b->n; i++) {
    bc *c = &b->bcs[i];
    char *url = NULL, *id = NULL;
    int was_full = cb2m_queue_full(&c->queue);
    size_t n = cb2m_queue_pop_done(&c->queue, &url, &id);
    if (n == 0 || n == (size_t)-1)
      continue;
    free(c->cursor_url);
    c->cursor_url = url;
    /* Only an event id moves the last delivered id (SPEC 3). */
    if (id) {
      free(c->cursor_id);
      c->cursor_id = id;
    }
    if (was_full && !cb2m_queue_full(&c->queue)) {
      LOG(b, CBEV_LOG_INFO, "%s: queue below %zu again, polling resumes", c->cfg->name,
          c->queue.max_items);
      cb2m_poller_kick(b->poller);
    }
  }
}

/* Writes c's due cursor: the i= of its URL and the last delivered id.
 * Returns 0, or -1 when the disk failed. A cursor refused for its content
 * (an i= that is not a cursor value) is not the disk's fault: it is
 * skipped with a warning and the previous cursor stays on disk, which
 * may fetch some events again but never loses one. */
static int save_cursor(bridge *b, bc *c) {
  const char *dir = b->cfg->events.state_dir;
  char *i = NULL;
  int rc;

  if (cb2m_cursor_i_of(c->cursor_url, &i) != 0 && errno == ENOMEM) {
    LOG(b, CBEV_LOG_ERROR, "%s: out of memory while saving the cursor; stopping", c->cfg->name);
    return -1;
  }
  rc = (i || c->cursor_id) ? cb2m_cursor_save(dir, c->cfg->name, i, c->cursor_id) : 0;
  free(i);
  if (rc == CB2M_CURSOR_ERROR) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot write the cursor file in %s: %s; stopping",
        c->cfg->name, dir, strerror(errno));
    return -1;
  }
  if (rc == CB2M_CURSOR_REFUSED)
    LOG(b, c->cursor_refused ? CBEV_LOG_DEBUG : CBEV_LOG_WARN,
        "%s: the feed's cursor is not one the cursor file can hold (an odd i= in nextUrl); "
        "the previous cursor stays saved", c->cfg->name);
  c->cursor_refused = rc == CB2M_CURSOR_REFUSED;
  free(c->cursor_url);
  c->cursor_url = NULL;
  return 0;
}

/* Writes due cursors and states. A failure of the disk is fatal:
 * continuing would promise a durability the disk does not give. */
static int save_all(bridge *b) {
  const char *dir = b->cfg->events.state_dir;
  int rc = 0;

  for (size_t i = 0; i < b->n; i++) {
    bc *c = &b->bcs[i];
    if (c->cursor_url && save_cursor(b, c) != 0)
      rc = -1;
    if (c->state_unsaved) {
      if (cb2m_state_save(dir, c->cfg->name, &c->state) != 0) {
        LOG(b, CBEV_LOG_ERROR, "%s: cannot write the state file in %s: %s; stopping",
            c->cfg->name, dir, strerror(errno));
        rc = -1;
      } else {
        c->state_unsaved = 0;
      }
    }
  }
  return rc;
}

static int disc_publish(void *ud, const char *topic, const void *payload, size_t len) {
  bridge *b = ud;
  return cb2m_mqtt_publish(b->mqtt, topic, payload, len, 1, 1, NULL);
}

/* The configured broadcasters' names (borrowed), in order; free() the
 * array. NULL when out of memory. */
static const char **names_of(const bridge *b) {
  const char **names = calloc(b->n ? b->n : 1, sizeof *names);

  for (size_t i = 0; names && i < b->n; i++)
    names[i] = b->bcs[i].cfg->name;
  return names;
}

/* Home Assistant discovery: the bridge device and one device per
 * broadcaster; configs of broadcasters no longer configured are cleared. */
static void announce(bridge *b) {
  cb2m_disc_settings s;
  const char **names = names_of(b);

  if (!names)
    return;
  s = (cb2m_disc_settings){b->cfg->mqtt.base_topic, b->cfg->homeassistant.prefix, names, b->n,
                           b->cfg->events.publish_mask, cbev_version(), b->cfg->events.state_dir};
  cb2m_discovery_publish_with(&s, disc_publish, b, &b->logger);
  free(names);
}

/* Retained topics of broadcasters no longer configured are cleared, and
 * the configured ones recorded (retained.h), before anything of theirs
 * is published. */
static void clear_removed(bridge *b) {
  const char **names = names_of(b);

  if (!names)
    return;
  cb2m_retained_sync(b->cfg->events.state_dir, b->cfg->mqtt.base_topic, names, b->n,
                     disc_publish, b, &b->logger);
  free(names);
}

/* ---- MQTT callbacks */

static void on_connect(void *ud) {
  bridge *b = ud;

  clear_removed(b);
  publish_retained(b, b->topic_status, "online");
  publish_info(b);
  for (size_t i = 0; i < b->n; i++) {
    bc *c = &b->bcs[i];
    c->published_available = -1;
    publish_availability(b, c, c->status == BC_ONLINE);
    publish_state(b, c, CB2M_CHG_ALL);
  }
  if (b->cfg->homeassistant.discovery) {
    cb2m_mqtt_subscribe(b->mqtt, b->topic_ha_status, 1);
    announce(b);
  }
  b->next_health_ms = 0;
  pump(b);
}

static void on_disconnect(void *ud) {
  bridge *b = ud;

  /* The MQTT module forgets unacknowledged messages with the connection;
   * they go out again, in order, after the next connect. */
  for (size_t i = 0; i < b->n; i++)
    cb2m_queue_unsend_all(&b->bcs[i].queue);
  cb2m_midmap_clear(&b->midmap);
}

static void on_ack(void *ud, int mid, int reason) {
  bridge *b = ud;
  uint32_t i;
  uint64_t seq;
  bc *c;

  if (!cb2m_midmap_take(&b->midmap, mid, &i, &seq))
    return; /* a retained state message */
  c = &b->bcs[i];
  if (reason >= 0x80) {
    char why[96];
    snprintf(why, sizeof why, "reason code 0x%02x (%s)", (unsigned)reason,
             mosquitto_reason_string(reason));
    refused(b, i, seq, reason, why, cbev_now_ms());
    return;
  }
  {
    const cb2m_item *it = cb2m_queue_sent_item(&c->queue, seq);
    uint64_t now = cbev_now_ms();
    if (it) {
      c->mx.published++;
      cb2m_histogram_observe(&b->mx.delivery,
                             it->fetch && now > it->fetch->fetched_ms ? now - it->fetch->fetched_ms
                                                                      : 0);
    }
  }
  if (seq == c->queue.held_seq) {
    unsigned tries = c->queue.refusals;
    if (cb2m_queue_ack(&c->queue, seq))
      LOG(b, CBEV_LOG_INFO, "%s: the refused publish was accepted after %u refusal(s); the "
          "events behind it follow", c->cfg->name, tries);
    return;
  }
  cb2m_queue_ack(&c->queue, seq);
}

static void on_message(void *ud, const char *topic, const void *payload, size_t len) {
  bridge *b = ud;

  if (b->cfg->homeassistant.discovery &&
      cb2m_discovery_is_birth(b->cfg->homeassistant.prefix, topic, payload, len)) {
    /* Home Assistant restarted: re-announce after a short random delay so
     * a fleet of bridges does not answer at the same instant. */
    b->discovery_due = 1;
    b->discovery_at_ms = cbev_now_ms() + cb2m_discovery_birth_delay_ms((uint64_t)rand());
  }
}

/* ---- poller callbacks */

static int poll_allowed(void *ud, size_t i) {
  bridge *b = ud;
  bc *c = &b->bcs[i];
  return !b->stopping && (c->status != BC_AUTH_FAILED || c->auth_retry) &&
         !cb2m_queue_full(&c->queue);
}

/* Queues a batch's events, after the derived state and the counters saw
 * each one (filtered events too). Returns CBEV_OK, or the cbev_error code
 * of an event that could not be queued (logged here, naming its cause);
 * what was queued before it stays queued. */
static int enqueue_batch(bridge *b, bc *c, cbev_batch *batch, const char *request_url) {
  size_t n = cbev_batch_count(batch);
  cb2m_route route = {b->cfg->mqtt.base_topic, c->cfg->name, b->cfg->events.publish_mask,
                      (b->cfg->events.payload_raw ? CBEV_JSON_RAW : 0) |
                          (b->cfg->events.expose_anonymous_tippers ? CBEV_JSON_EXPOSE_ANON : 0)};
  cb2m_fetch *fetch;
  int rc = CBEV_ENOMEM;

  if (n == 0) {
    /* An empty batch moves the cursor; save it once nothing is pending. */
    if (c->queue.count == 0 && cbev_session_cursor_url(c->session) &&
        cbev_session_last_id(c->session)) {
      free(c->cursor_url);
      free(c->cursor_id);
      c->cursor_url = strdup(cbev_session_cursor_url(c->session));
      c->cursor_id = strdup(cbev_session_last_id(c->session));
    }
    return CBEV_OK;
  }
  fetch = cb2m_fetch_new(request_url, cbev_batch_next_url(batch));
  if (fetch)
    fetch->fetched_ms = cbev_now_ms();
  if (!fetch) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot queue a batch of %zu events: %s", c->cfg->name, n,
        cbev_strerror(rc));
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    const cbev_event *ev = cbev_batch_get(batch, i);
    cbev_event_type type = cbev_event_get_type(ev);
    unsigned changed = 0;

    if (cb2m_state_apply(&c->state, ev, b->cfg->events.expose_anonymous_tippers, &changed) == 0 &&
        changed) {
      c->state_changed |= changed;
      c->state_unsaved = 1;
      /* A start and a stop in one batch must both show on the retained
       * topics (automations trigger on the edge), so a broadcasting change
       * goes out now; other fields are coalesced per batch. */
      if (changed & CB2M_CHG_BROADCASTING)
        publish_state(b, c, c->state_changed);
    }
    c->mx.events_by_type[type]++;
    if (type == CBEV_EVENT_TIP && cbev_event_tip(ev) && cbev_event_tip(ev)->has_tokens &&
        cbev_event_tip(ev)->tokens > 0)
      c->mx.tip_tokens += (uint64_t)cbev_event_tip(ev)->tokens;
    c->last_event_ms = cbev_now_ms();
    c->mx.last_event_unix_ms = wall_ms();
    rc = cb2m_route_push(&route, ev, &c->queue, fetch, i + 1 == n);
    if (rc != CBEV_OK) {
      LOG(b, CBEV_LOG_ERROR, "%s: cannot queue event %s: %s", c->cfg->name, cbev_event_id(ev),
          cbev_strerror(rc));
      goto out;
    }
  }
  rc = CBEV_OK;
out:
  cb2m_fetch_unref(fetch);
  return rc;
}

static void set_status(bridge *b, bc *c, bc_status st) {
  c->status = st;
  publish_availability(b, c, st == BC_ONLINE);
}

static void on_poll_done(void *ud, size_t i, int rc, cbev_batch *batch, const char *request_url) {
  bridge *b = ud;
  bc *c = &b->bcs[i];
  long status = 0;

  c->mx.polls++;
  if (rc == CBEV_OK) {
    c->failures = 0;
    c->auth_retry = 0;
    b->any_good = 1;
    if (c->status != BC_ONLINE) {
      LOG(b, CBEV_LOG_INFO, "%s: polling the Events API", c->cfg->name);
      set_status(b, c, BC_ONLINE);
    }
    if (enqueue_batch(b, c, batch, request_url) != CBEV_OK) {
      /* Only memory or settings can fail it (route.h), never an event's
       * content. The cursor file still points before this batch, so a
       * restart fetches it again: stop rather than lose it. */
      LOG(b, CBEV_LOG_ERROR, "%s: stopping; the next start fetches the batch again",
          c->cfg->name);
      b->fatal = 1;
    }
    cbev_batch_free(batch);
    if (c->state_changed)
      publish_state(b, c, c->state_changed);
    return;
  }
  cbev_session_last_error(c->session, &c->last_error_rc, &status, NULL);
  c->last_error_status = status;
  c->mx.poll_errors[cb2m_poll_reason_of(c->last_error_rc ? c->last_error_rc : rc)]++;
  c->failures++;
  switch (rc) {
  case CBEV_EAUTH:
    LOG(b, CBEV_LOG_ERROR,
        "%s: authentication failed (HTTP %ld): the token is wrong, revoked or lacks the "
        "Events API scope; offline, trying again in %d s%s", c->cfg->name, status,
        b->cfg->events.auth_retry_interval,
        c->cfg->secret_file ? " (its secret file is read again first)" : "");
    set_status(b, c, BC_AUTH_FAILED);
    c->auth_retry = 0;
    c->auth_retry_at_ms = cbev_now_ms() + (uint64_t)b->cfg->events.auth_retry_interval * 1000u;
    break;
  case CBEV_EURL:
  case CBEV_EHTTP:
    /* The session logged the details and scheduled a retry with backoff. */
    set_status(b, c, BC_FAILING);
    break;
  default:
    if (c->failures >= UNAVAILABLE_AFTER_FAILURES && c->status != BC_FAILING)
      set_status(b, c, BC_FAILING);
    break;
  }
}

/* ---- setup and teardown */

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

  if (rc == CB2M_CURSOR_ERROR) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot read the cursor file %s/%s.cursor: %s; stopping rather "
        "than start from the live feed and lose its place", c->cfg->name, dir, c->cfg->name,
        strerror(errno));
    goto out;
  }
  if (rc == CB2M_CURSOR_CORRUPT)
    LOG(b, CBEV_LOG_WARN, "%s: the cursor file was corrupt (%s) and was set aside as %s; "
        "starting from the live feed", c->cfg->name, cur.why, aside ? aside : "(unknown)");
  if (rc != CB2M_CURSOR_FOUND) {
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

/* A session for c with the secret given (exactly one of token and url),
 * the settings of the start and c's rate limiter. Returns a cbev_ code. */
static int open_session(bridge *b, bc *c, const char *token, const char *url,
                        cbev_session **out) {
  const cb2m_config *cfg = b->cfg;
  cbev_session_config sc;

  cbev_session_config_init(&sc);
  if (url) {
    sc.events_url = url;
  } else {
    sc.base_url = cfg->events.api_base;
    sc.username = c->cfg->name;
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

/* Before a try after an authentication failure: reads c's secret file
 * again, and when it changed, moves c to a session with the new secret
 * that resumes where the old one stood (its i= and last id), so nothing
 * is lost or fetched twice and the old token is never sent again. The new
 * token joins the log masking list first. A secret that cannot be read or
 * is refused is logged and the old session tries again. */
static void reread_secret(bridge *b, size_t i) {
  bc *c = &b->bcs[i];
  const cb2m_broadcaster_config *cfg = c->cfg;
  cbev_session *fresh = NULL;
  char err[CB2M_PATH_MAX + 128], *secret = NULL, *i_value = NULL, *moved = NULL;
  const char *old;
  int rc;

  if (!cfg->secret_file)
    return; /* given directly: only a restart (or reload) changes it */
  if (cb2m_config_reread_secret(cfg, &secret, err, sizeof err) != 0) {
    LOG(b, CBEV_LOG_WARN, "%s: %s; trying the old secret", cfg->name, err);
    return;
  }
  old = cfg->url ? cfg->url : cfg->token;
  if (c->secret_now)
    old = c->secret_now;
  if (strcmp(secret, old) == 0)
    goto out;
  rc = open_session(b, c, cfg->url ? NULL : secret, cfg->url ? secret : NULL, &fresh);
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
  if (cb2m_cursor_i_of(cbev_session_cursor_url(c->session), &i_value) != 0 ||
      !(moved = rebase_cursor(cbev_session_cursor_url(fresh), i_value)) ||
      cbev_session_set_cursor(fresh, moved, cbev_session_last_id(c->session)) != CBEV_OK) {
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
  free(i_value);
  cb2m_config_secret_free(moved);
}

/* When the next try after an authentication failure is due (SPEC 5:
 * every auth_retry_interval seconds, forever); UINT64_MAX: none. */
static uint64_t auth_retry_next(bridge *b, uint64_t now) {
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
static void auth_retry_fire(bridge *b, uint64_t now) {
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
 * cursor and state. The poller slot is the caller's. Returns 0, or -1
 * (logged) with c holding what was set up, for bc_close(). */
static int bc_open(bridge *b, bc *c, const cb2m_broadcaster_config *bcfg) {
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
  rc = open_session(b, c, c->cfg->token, c->cfg->url, &c->session);
  if (rc != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot set up the Events API session: %s", c->cfg->name,
        cbev_strerror(rc));
    return -1;
  }
  if (restore_cursor(b, c) != 0)
    return -1;
  rc = cb2m_state_load(cfg->events.state_dir, c->cfg->name, &c->state, &aside);
  if (rc == CB2M_STATE_ERROR) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot read the state file %s/%s.state: %s; stopping rather "
        "than overwrite it", c->cfg->name, cfg->events.state_dir, c->cfg->name, strerror(errno));
    free(aside);
    return -1;
  }
  if (rc == CB2M_STATE_CORRUPT)
    LOG(b, CBEV_LOG_WARN, "%s: the state file was corrupt and was set aside as %s",
        c->cfg->name, aside ? aside : "(unknown)");
  free(aside);
  return 0;
nomem:
  LOG(b, CBEV_LOG_ERROR, "%s: out of memory", bcfg->name);
  return -1;
}

/* Frees what bc_open() set up. Its poller slot must be gone or idle
 * first: the poller borrows the session. */
static void bc_close(bc *c) {
  cb2m_queue_cleanup(&c->queue);
  cb2m_state_cleanup(&c->state);
  free(c->cursor_url);
  free(c->cursor_id);
  cbev_session_free(c->session);
  cbev_ratelimit_free(c->own_limiter);
  cb2m_config_secret_free(c->secret_now);
  memset(c, 0, sizeof *c);
}

static void teardown(bridge *b) {
  cb2m_poller_free(b->poller); /* before the sessions it borrows */
  for (size_t i = 0; b->bcs && i < b->n; i++)
    bc_close(&b->bcs[i]);
  cb2m_metrics_http_free(b->http);
  free(b->mx_list);
  cb2m_mqtt_free(b->mqtt);
  cbev_ratelimit_free(b->shared_limiter);
  free(b->bcs);
  cb2m_secrets_cleanup(&b->secrets);
  free(b->mask);
  free(b->topic_ha_status);
  if (b->owned_cfg) {
    cb2m_config_free(b->owned_cfg);
    free(b->owned_cfg);
  }
}

/* A client for the mqtt.* settings of b->cfg; it connects in the loop.
 * Returns 0, or -1 (logged by mqtt.c). */
static int mqtt_open(bridge *b, cb2m_mqtt **out) {
  const cb2m_config *cfg = b->cfg;
  cb2m_mqtt_opts mo = {0};
  cb2m_mqtt_cbs cbs = {on_connect, on_disconnect, on_ack, on_message, b};

  mo.host = cfg->mqtt.host;
  mo.port = cfg->mqtt.port;
  mo.tls = cfg->mqtt.tls;
  mo.ca_file = cfg->mqtt.ca_file;
  mo.cert_file = cfg->mqtt.cert_file;
  mo.key_file = cfg->mqtt.key_file;
  mo.tls_insecure = cfg->mqtt.tls_insecure;
  mo.username = cfg->mqtt.username;
  mo.password = cfg->mqtt.password;
  mo.client_id = cfg->mqtt.client_id;
  mo.protocol = cfg->mqtt.protocol;
  mo.keepalive_s = cfg->mqtt.keepalive;
  mo.will_topic = b->topic_status;
  mo.will_payload = "offline";
  mo.will_qos = 1;
  mo.will_retain = 1;
  mo.logger = &b->logger;
  return cb2m_mqtt_new(&mo, &cbs, out) == 0 ? 0 : -1;
}

static int setup(bridge *b, const cb2m_config *cfg) {
  cb2m_poller_opts po = {0};

  b->cfg = cfg;
  b->n = cfg->n_broadcasters;
  b->started_at = time(NULL);
  b->started_ms = cbev_now_ms();
  b->bcs = calloc(b->n ? b->n : 1, sizeof *b->bcs);
  /* Every secret the bridge knows is masked out of every log line, the
   * token inside a configured feed URL included. */
  if (!b->bcs || cb2m_secrets_collect(cfg, &b->secrets) != 0)
    return -1;
  b->mask_cap = b->secrets.n + b->n;
  b->mask = calloc(b->mask_cap ? b->mask_cap : 1, sizeof *b->mask);
  if (!b->mask)
    return -1;
  for (size_t i = 0; i < b->secrets.n; i++)
    b->mask[i] = b->secrets.v[i];
  b->n_masked = b->secrets.n;
  b->sink = (cb2m_logsink){stderr, cfg->log.json, b->mask, b->n_masked};
  b->logger = (cbev_logger){cb2m_logsink_write, &b->sink, cfg->log.level};

  if (topic_for(b, b->topic_status, "bridge", "status") != 0 ||
      !(b->topic_ha_status = cb2m_discovery_status_topic(cfg->homeassistant.prefix)))
    return -1;
  if (cfg->events.shared_rate_limit &&
      cbev_ratelimit_new(cfg->events.rate_requests, cfg->events.rate_seconds,
                         &b->shared_limiter) != CBEV_OK)
    return -1;
  po = (cb2m_poller_opts){b->n, cfg->events.ca_file, 0, on_poll_done, poll_allowed, b};
  if (cb2m_poller_new(&po, &b->poller) != 0)
    return -1;
  for (size_t i = 0; i < b->n; i++) {
    if (bc_open(b, &b->bcs[i], &cfg->broadcasters[i]) != 0)
      return -1;
    cb2m_poller_set_session(b->poller, i, b->bcs[i].session);
  }
  b->mx.version = cbev_version();
  b->mx.start_time_s = (double)wall_ms() / 1000.0;
  b->mx_list = calloc(b->n ? b->n : 1, sizeof *b->mx_list);
  if (!b->mx_list)
    return -1;
  /* A metrics address that cannot be bound stops the start (logged by
   * metrics_http.c): an operator who asked for metrics must not find out
   * from a silent scrape failure. */
  if (cfg->metrics.listen &&
      cb2m_metrics_http_new(cfg->metrics.listen, render_metrics, b, &b->logger, &b->http) != 0)
    return -1;

  return mqtt_open(b, &b->mqtt);
}

/* Exit 3 (SPEC 5): at start only, when every broadcaster failed
 * authentication before any of them got a good answer. */
static int all_auth_failed(const bridge *b) {
  if (b->any_good)
    return 0;
  for (size_t i = 0; i < b->n; i++)
    if (b->bcs[i].status != BC_AUTH_FAILED)
      return 0;
  return b->n > 0;
}

static int queues_settled(const bridge *b) {
  for (size_t i = 0; i < b->n; i++)
    if (b->bcs[i].queue.count)
      return 0;
  return 1;
}

/* ---- the loop's timers: one list (as redis's ae.c keeps its time
 * events). Each says when it is next due (UINT64_MAX: not armed) and
 * what to do then; turn() sleeps until the earliest, timers() runs every
 * one that is due. The I/O modules (poller, MQTT, metrics HTTP) keep
 * their own deadlines, which turn() adds. */

static uint64_t save_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping ? UINT64_MAX : b->next_save_ms;
}

static void save_fire(bridge *b, uint64_t now) {
  if (save_all(b) != 0)
    b->fatal = 1;
  b->next_save_ms = now + SAVE_INTERVAL_MS;
}

static uint64_t heartbeat_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping ? UINT64_MAX : b->next_heartbeat_ms;
}

static void heartbeat_fire(bridge *b, uint64_t now) {
  if (cb2m_heartbeat_write(b->cfg->events.state_dir, cb2m_mqtt_connected(b->mqtt), time(NULL)) != 0)
    LOG(b, CBEV_LOG_WARN, "cannot write the heartbeat file in %s: %s",
        b->cfg->events.state_dir, strerror(errno));
  b->next_heartbeat_ms = now + HEARTBEAT_INTERVAL_MS;
}

/* The next three wait for the broker: while it is away they must not
 * make the loop spin (the connect itself wakes the loop). */
static uint64_t health_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping || !cb2m_mqtt_connected(b->mqtt) ? UINT64_MAX : b->next_health_ms;
}

static void health_fire(bridge *b, uint64_t now) {
  publish_health(b, now);
  b->next_health_ms = now + (uint64_t)b->cfg->mqtt.health_interval * 1000u;
}

static uint64_t discovery_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping || !b->discovery_due || !cb2m_mqtt_connected(b->mqtt) ? UINT64_MAX
                                                                           : b->discovery_at_ms;
}

static void discovery_fire(bridge *b, uint64_t now) {
  (void)now;
  b->discovery_due = 0;
  LOG(b, CBEV_LOG_INFO, "homeassistant: birth message seen, re-publishing discovery and state");
  announce(b);
  for (size_t i = 0; i < b->n; i++) {
    b->bcs[i].published_available = -1;
    publish_availability(b, &b->bcs[i], b->bcs[i].status == BC_ONLINE);
    publish_state(b, &b->bcs[i], CB2M_CHG_ALL);
  }
}

/* A refused publish due again: pump(), which every turn runs, sends it. */
static uint64_t refused_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping || !cb2m_mqtt_connected(b->mqtt) ? UINT64_MAX : retry_due_ms(b);
}

typedef struct loop_timer {
  uint64_t (*next)(bridge *b, uint64_t now);
  void (*fire)(bridge *b, uint64_t now); /* NULL: turn() itself acts */
} loop_timer;

static const loop_timer TIMERS[] = {
    {auth_retry_next, auth_retry_fire}, {save_next, save_fire},
    {heartbeat_next, heartbeat_fire},   {health_next, health_fire},
    {discovery_next, discovery_fire},   {refused_next, NULL},
};
#define N_TIMERS (sizeof TIMERS / sizeof TIMERS[0])

static void timers(bridge *b) {
  uint64_t now = cbev_now_ms();

  for (size_t i = 0; i < N_TIMERS; i++)
    if (TIMERS[i].fire && TIMERS[i].next(b, now) <= now)
      TIMERS[i].fire(b, now);
}

/* One turn of the loop: wait for activity or the next deadline, then
 * serve the MQTT socket, the transfers and the metrics requests, and hand
 * queued events to MQTT. The signal pipe only wakes it: the caller reads
 * the flags the handlers set. */
static void turn(bridge *b, int signal_fd, uint64_t max_wait_ms) {
  struct curl_waitfd fds[3];
  unsigned nfds = 0;
  uint64_t now = cbev_now_ms(), next, wait;
  int mfd = cb2m_mqtt_fd(b->mqtt), mqtt_slot = -1, http_slot = -1;
  short revents = 0;

  next = b->stopping ? now + max_wait_ms : cb2m_poller_start_due(b->poller, now);
  for (size_t i = 0; i < N_TIMERS; i++) {
    uint64_t t = TIMERS[i].next(b, now);
    if (t < next)
      next = t;
  }
  if (cb2m_mqtt_next_ms(b->mqtt, now) < next)
    next = cb2m_mqtt_next_ms(b->mqtt, now);
  if (b->http && !b->stopping && cb2m_metrics_http_next_ms(b->http, now) < next)
    next = cb2m_metrics_http_next_ms(b->http, now);
  wait = next > now ? next - now : 0;
  if (wait > max_wait_ms)
    wait = max_wait_ms;
  if (signal_fd >= 0)
    fds[nfds++] = (struct curl_waitfd){signal_fd, CURL_WAIT_POLLIN, 0};
  if (mfd >= 0) {
    short ev = cb2m_mqtt_poll_events(b->mqtt);
    mqtt_slot = (int)nfds;
    fds[nfds++] = (struct curl_waitfd){mfd,
                                       (short)(((ev & POLLIN) ? CURL_WAIT_POLLIN : 0) |
                                               ((ev & POLLOUT) ? CURL_WAIT_POLLOUT : 0)),
                                       0};
  }
  if (b->http) {
    http_slot = (int)nfds;
    fds[nfds++] = (struct curl_waitfd){cb2m_metrics_http_fd(b->http), CURL_WAIT_POLLIN, 0};
  }
  cb2m_poller_wait(b->poller, fds, nfds, (int)wait);
  if (signal_fd >= 0 && (fds[0].revents & CURL_WAIT_POLLIN)) {
    char buf[64];
    while (read(signal_fd, buf, sizeof buf) > 0)
      ;
  }
  now = cbev_now_ms();
  if (mqtt_slot >= 0) {
    if (fds[mqtt_slot].revents & CURL_WAIT_POLLIN)
      revents |= POLLIN;
    if (fds[mqtt_slot].revents & CURL_WAIT_POLLOUT)
      revents |= POLLOUT;
  }
  cb2m_mqtt_service(b->mqtt, revents, now);
  cb2m_poller_perform(b->poller, now);
  if (http_slot >= 0 && ((fds[http_slot].revents & CURL_WAIT_POLLIN) ||
                         cb2m_metrics_http_next_ms(b->http, now) <= now))
    cb2m_metrics_http_run(b->http);
  pump(b);
  cb2m_mqtt_service(b->mqtt, 0, now); /* flush what pump() queued */
  collect_acked(b);
}

static void shutdown_bridge(bridge *b, int signal_fd) {
  uint64_t deadline = cbev_now_ms() + CB2M_SHUTDOWN_GRACE_MS;
  size_t left = 0;

  b->stopping = 1;
  cb2m_poller_abort_all(b->poller);
  /* Deliver what is queued while the broker is there, for at most 5 s. */
  while (!queues_settled(b) && cb2m_mqtt_connected(b->mqtt) && cbev_now_ms() < deadline)
    turn(b, signal_fd, 100);
  for (size_t i = 0; i < b->n; i++)
    left += b->bcs[i].queue.count;
  if (left)
    LOG(b, CBEV_LOG_WARN, "shutdown: %zu events not acknowledged by the broker; they are fetched "
        "again at the next start", left);
  save_all(b);
  for (size_t i = 0; i < b->n; i++)
    publish_availability(b, &b->bcs[i], 0);
  if (cb2m_mqtt_connected(b->mqtt))
    publish_retained(b, b->topic_status, "offline");
  cb2m_mqtt_shutdown(b->mqtt, cbev_now_ms() + 1000u);
  cb2m_heartbeat_write(b->cfg->events.state_dir, 0, time(NULL));
}

/* ---- reload (SIGHUP, SPEC 5) */

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
  cbev_session **fresh;   /* per new index: the new session of a changed one */
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
}

/* A session for the changed broadcaster c (settings in cfg) that resumes
 * where c's session stands: its i= and last id, so nothing is lost or
 * fetched twice. Returns 0, or -1 (logged). */
static int carry_session(bridge *b, bc *c, const cb2m_broadcaster_config *cfg,
                         cbev_session **out) {
  bc tmp = *c;
  char *i_value = NULL, *moved = NULL;
  int rc = -1;

  tmp.cfg = cfg;
  if (open_session(b, &tmp, cfg->token, cfg->url, out) != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "%s: the new secret is not usable", cfg->name);
    goto out;
  }
  if (cb2m_cursor_i_of(cbev_session_cursor_url(c->session), &i_value) != 0 ||
      !(moved = rebase_cursor(cbev_session_cursor_url(*out), i_value)) ||
      cbev_session_set_cursor(*out, moved, cbev_session_last_id(c->session)) != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot carry the cursor over to the new secret", cfg->name);
    cbev_session_free(*out);
    *out = NULL;
    goto out;
  }
  rc = 0;
out:
  free(i_value);
  cb2m_config_secret_free(moved);
  return rc;
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
    if (carry_session(b, &b->bcs[pr->old_i], &w->next->broadcasters[pr->new_i],
                      &w->fresh[pr->new_i]) != 0)
      goto out;
  }
  /* bc_open() reads the settings of the running bridge: the ones it uses
   * (events.*) cannot differ, or the plan would have refused. */
  for (size_t k2 = 0; k2 < plan->n_added; k2++) {
    size_t j = plan->added[k2];
    if (bc_open(b, &w->bcs[j], &w->next->broadcasters[j]) != 0)
      goto out;
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
    if (w->old_of_new && w->old_of_new[j] == CB2M_POLLER_NEW_SLOT)
      bc_close(&w->bcs[j]);
    if (w->fresh)
      cbev_session_free(w->fresh[j]);
  }
  b->sink.secrets = b->mask;
  b->sink.n_secrets = b->n_masked;
}

/* A removed broadcaster stops: its acknowledged cursor and its state are
 * written (the next start, or a reload that adds it back, resumes there),
 * and what it had queued and not delivered is fetched again then. */
static void stop_removed(bridge *b, bc *c) {
  if (c->cursor_url && save_cursor(b, c) != 0)
    b->fatal = 1;
  if (c->state_unsaved && cb2m_state_save(b->cfg->events.state_dir, c->cfg->name, &c->state) != 0) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot write the state file in %s: %s; stopping", c->cfg->name,
        b->cfg->events.state_dir, strerror(errno));
    b->fatal = 1;
  }
  LOG(b, CBEV_LOG_INFO, "reload: %s removed: stopped%s", c->cfg->name,
      c->queue.count ? "; its events not yet delivered are fetched again if it is added back"
                     : "");
}

/* Switches the bridge to w (nothing here can fail): slots, in-flight
 * ids, broadcasters, masking list and settings. */
static void reload_commit(bridge *b, reload_work *w) {
  const cb2m_reload_plan *plan = w->plan;
  size_t n = w->next->n_broadcasters, k = 0;

  for (size_t i = 0; i < plan->n_removed; i++)
    stop_removed(b, &b->bcs[plan->removed[i]]);
  /* The changed ones' requests were asked with the old secret: their
   * answers belong to the old sessions, which go. */
  for (size_t i = 0; i < plan->n_changed; i++)
    cb2m_poller_abort(b->poller, plan->changed[i].old_i);
  cb2m_poller_remap(b->poller, n, w->old_of_new); /* memory reserved: cannot fail */
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
      cbev_session_free(c->session);
      c->session = w->fresh[j];
      w->fresh[j] = NULL;
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
  for (size_t i = 0; i < plan->n_removed; i++)
    bc_close(&b->bcs[plan->removed[i]]);
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
  free(b->mask);
  b->mask = w->mask;
  w->mask = NULL;
  b->mask_cap = w->mask_cap;
  b->n_masked = k;
  b->sink.secrets = b->mask;
  b->sink.n_secrets = k;
  b->sink.json = w->next->log.json;
  b->logger.max_level = w->next->log.level;
  b->cfg = w->next;
  if (b->owned_cfg) {
    cb2m_config_free(b->owned_cfg);
    free(b->owned_cfg);
  }
  b->owned_cfg = w->next;
  w->next = NULL;
}

/* Publishes what the reload changed: cleared topics of removed
 * broadcasters, the added ones' availability and state, info, discovery,
 * health. Without a broker, the next connect publishes it all. */
static void publish_reloaded(bridge *b, const cb2m_reload_plan *plan) {
  if (!cb2m_mqtt_connected(b->mqtt))
    return;
  if (plan->n_added || plan->n_removed) {
    clear_removed(b);
    publish_info(b);
    if (b->cfg->homeassistant.discovery)
      announce(b);
  }
  for (size_t k = 0; k < plan->n_added; k++) {
    bc *c = &b->bcs[plan->added[k]];
    publish_availability(b, c, c->status == BC_ONLINE);
    publish_state(b, c, CB2M_CHG_ANY);
  }
  b->next_health_ms = 0;
}

/* mqtt.* changed: a new client with the new settings, after the old one
 * delivered what it could. Events it did not get acknowledged go out
 * again, in order, on the new connection (at least once). A new broker
 * address leaves "offline" on the old one, as a stop would. Returns 0, or
 * -1 (logged) with the old client kept. */
static int reconnect(bridge *b, const char *old_host, int old_port) {
  cb2m_mqtt *fresh = NULL;

  if (mqtt_open(b, &fresh) != 0) {
    LOG(b, CBEV_LOG_ERROR, "reload: the new mqtt.* settings are not usable; staying connected "
        "with the old ones until a restart");
    return -1;
  }
  LOG(b, CBEV_LOG_INFO, "reload: mqtt.* changed; reconnecting to %s:%d", b->cfg->mqtt.host,
      b->cfg->mqtt.port);
  if (cb2m_mqtt_connected(b->mqtt) &&
      (!old_host || strcmp(old_host, b->cfg->mqtt.host) != 0 || old_port != b->cfg->mqtt.port)) {
    for (size_t i = 0; i < b->n; i++)
      publish_availability(b, &b->bcs[i], 0);
    publish_retained(b, b->topic_status, "offline");
  }
  cb2m_mqtt_shutdown(b->mqtt, cbev_now_ms() + 1000u);
  cb2m_mqtt_free(b->mqtt);
  b->mqtt = fresh;
  on_disconnect(b);
  for (size_t i = 0; i < b->n; i++)
    b->bcs[i].published_available = -1;
  return 0;
}

/* Loads and validates the settings again and applies them (SPEC 5).
 * Anything refused is logged and the running settings stay; broadcasters
 * whose settings did not change are never touched. */
static void reload(bridge *b, const cb2m_bridge_hooks *hooks) {
  cb2m_config *next = calloc(1, sizeof *next);
  char *old_host = NULL;
  int old_port = 0;
  cb2m_reload_plan plan = {0};
  reload_work w = {0};
  char err[512];
  int mqtt_changed;

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
  w.next = next;
  w.plan = &plan;
  if (reload_prepare(b, &w) != 0) {
    reload_undo(b, &w);
    LOG(b, CBEV_LOG_ERROR, "reload: the running settings stay");
    goto out;
  }
  mqtt_changed = plan.mqtt_changed;
  /* What reconnect() compares: the old broker address outlives the old
   * settings. */
  old_host = strdup(b->cfg->mqtt.host);
  old_port = b->cfg->mqtt.port;
  reload_commit(b, &w);
  next = NULL; /* the bridge's now */
  if (plan.log_changed)
    LOG(b, CBEV_LOG_INFO, "reload: log settings applied (level %s, format %s)",
        b->cfg->log.level_name, b->cfg->log.format);
  if (mqtt_changed)
    reconnect(b, old_host, old_port);
  publish_reloaded(b, &plan);
  LOG(b, CBEV_LOG_INFO, "reload: done; %zu broadcaster(s) untouched, %zu added, %zu removed, "
      "%zu with a new secret%s", plan.n_untouched, plan.n_added, plan.n_removed, plan.n_changed,
      mqtt_changed ? ", mqtt.* changed" : "");
out:
  free(old_host);
  reload_work_free(&w);
  cb2m_reload_plan_free(&plan);
  if (next) {
    cb2m_config_free(next);
    free(next);
  }
}

int cb2m_bridge_run(const cb2m_config *cfg, volatile sig_atomic_t *stop, int signal_fd) {
  cb2m_bridge_hooks hooks = {stop, NULL, NULL, NULL, signal_fd};
  return cb2m_bridge_run_hooks(cfg, &hooks);
}

int cb2m_bridge_run_hooks(const cb2m_config *cfg, const cb2m_bridge_hooks *hooks) {
  volatile sig_atomic_t *stop = hooks->stop;
  int signal_fd = hooks->signal_fd;
  bridge *b = calloc(1, sizeof *b);
  int status = CB2M_EXIT_FATAL;

  if (!b)
    return CB2M_EXIT_FATAL;
  if (setup(b, cfg) != 0) {
    LOG(b, CBEV_LOG_ERROR, "startup failed; exiting");
    goto out;
  }
  LOG(b, CBEV_LOG_INFO, "cb2mqtt %s: %zu broadcaster(s), broker %s:%d, state in %s",
      cbev_version(), b->n, cfg->mqtt.host, cfg->mqtt.port, cfg->events.state_dir);
  while (!*stop && !b->fatal && !all_auth_failed(b)) {
    turn(b, signal_fd, 10000);
    if (hooks->reload && *hooks->reload && hooks->load) {
      *hooks->reload = 0;
      reload(b, hooks);
    }
    timers(b);
  }
  if (b->fatal)
    status = CB2M_EXIT_FATAL;
  else if (!*stop && all_auth_failed(b))
    status = CB2M_EXIT_AUTH;
  else
    status = CB2M_EXIT_OK;
  if (status == CB2M_EXIT_AUTH)
    LOG(b, CBEV_LOG_ERROR, "every broadcaster failed authentication; exiting");
  else
    LOG(b, CBEV_LOG_INFO, "stopping");
  shutdown_bridge(b, signal_fd);
out:
  teardown(b);
  free(b);
  return status;
}

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
/* Messages handed to libmosquitto and not yet acknowledged, across all
 * broadcasters: bounds the memory libmosquitto holds for us. */
#define MAX_INFLIGHT 256u
_Static_assert(MAX_INFLIGHT * 4 <= CB2M_MIDMAP_SLOTS, "midmap probe runs stay short");
/* A broadcaster's refused publishes are logged at most this often. */
#define REFUSAL_LOG_INTERVAL_MS 60000u
#define SAVE_INTERVAL_MS 1000u
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
  size_t mask_cap;
  int discovery_due;     /* HA asked for a re-publish (birth message) */
  uint64_t discovery_at_ms;
  time_t started_at;
  uint64_t started_ms;
  uint64_t next_save_ms, next_heartbeat_ms, next_health_ms;
  char topic_status[TOPIC_MAX];
  char topic_ha_status[TOPIC_MAX];
  /* GET /metrics (metrics.listen), served in this thread: NULL when off. */
  cb2m_metrics_http *http;
  cb2m_metrics mx;
  const cb2m_bc_metrics **mx_list; /* n pointers into bcs[].mx */
} bridge;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
  /* The small topics, in the order they have always gone out. */
  static const unsigned small[] = {CB2M_CHG_BROADCASTING, CB2M_CHG_SUBJECT,
                                   CB2M_CHG_SESSION_TOKENS, CB2M_CHG_VIEWERS};
  char topic[TOPIC_MAX], num[32];
  char *json;

  if (!cb2m_mqtt_connected(b->mqtt) || !changed)
    return;
  for (size_t k = 0; k < sizeof small / sizeof small[0]; k++) {
    /* NULL: not known yet (broadcasting before a start/stop, no subject). */
    const char *value = (changed & small[k]) ? cb2m_state_value(&c->state, small[k], num) : NULL;
    if (value && topic_for(b, topic, c->cfg->name, cb2m_state_topic_level(small[k])) == 0)
      publish_retained(b, topic, value);
  }
  json = cb2m_state_json(&c->state);
  if (json && topic_for(b, topic, c->cfg->name, "state") == 0)
    publish_retained(b, topic, json);
  cJSON_free(json);
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
  cJSON_free(text);
  cJSON_free(settings);
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
  uint64_t now = now_ms();
  size_t idle = 0; /* broadcasters in a row with nothing ready */

  if (!cb2m_mqtt_connected(b->mqtt) || b->n == 0)
    return;
  while (idle < b->n && b->midmap.count < MAX_INFLIGHT && !cb2m_mqtt_backlogged(b->mqtt)) {
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
      cb2m_poller_kick(b->poller, i);
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
  /* CBEV_EINVAL: the content was refused (below); anything else failed. */
  if (rc != CBEV_OK && rc != CBEV_EINVAL) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot write the cursor file in %s: %s; stopping",
        c->cfg->name, dir, strerror(errno));
    return -1;
  }
  if (rc == CBEV_EINVAL)
    LOG(b, c->cursor_refused ? CBEV_LOG_DEBUG : CBEV_LOG_WARN,
        "%s: the feed's cursor is not one the cursor file can hold (an odd i= in nextUrl); "
        "the previous cursor stays saved", c->cfg->name);
  c->cursor_refused = rc == CBEV_EINVAL;
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
    publish_state(b, c, CB2M_CHG_ANY);
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
    refused(b, i, seq, reason, why, now_ms());
    return;
  }
  {
    const cb2m_item *it = cb2m_queue_sent_item(&c->queue, seq);
    uint64_t now = now_ms();
    if (it) {
      c->mx.published++;
      cb2m_histogram_observe(&b->mx.delivery,
                             it->fetch && now > it->fetch->fetched_ms ? now - it->fetch->fetched_ms
                                                                      : 0);
    }
  }
  if (seq == c->queue.held_seq) {
    unsigned tries = c->queue.refusals;
    if (cb2m_queue_ack(&c->queue, seq) == CBEV_OK)
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
    b->discovery_at_ms = now_ms() + cb2m_discovery_birth_delay_ms((uint64_t)rand());
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
    fetch->fetched_ms = now_ms();
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
    c->last_event_ms = now_ms();
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
    c->auth_retry_at_ms = now_ms() + (uint64_t)b->cfg->events.auth_retry_interval * 1000u;
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
  if (!c->secret_slot && b->sink.n_secrets < b->mask_cap)
    c->secret_slot = 1 + b->sink.n_secrets++;
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

/* With start set, starts the tries that are due after authentication
 * failures (SPEC 5: every auth_retry_interval seconds, forever). Returns
 * the time of the next one not started (UINT64_MAX: none), so the loop
 * wakes for it. */
static uint64_t retry_auth_due(bridge *b, uint64_t now, int start) {
  uint64_t next = UINT64_MAX;

  for (size_t i = 0; i < b->n; i++) {
    bc *c = &b->bcs[i];
    if (c->status != BC_AUTH_FAILED || c->auth_retry || b->stopping)
      continue;
    if (now < c->auth_retry_at_ms || !start) {
      if (c->auth_retry_at_ms < next)
        next = c->auth_retry_at_ms;
      continue;
    }
    LOG(b, CBEV_LOG_INFO, "%s: trying the Events API again after the authentication failure",
        c->cfg->name);
    reread_secret(b, i);
    c->auth_retry = 1;
    cb2m_poller_kick(b->poller, i);
  }
  return next;
}

static int setup_broadcaster(bridge *b, size_t i) {
  const cb2m_config *cfg = b->cfg;
  bc *c = &b->bcs[i];
  char *aside = NULL;
  int rc;

  c->cfg = &cfg->broadcasters[i];
  c->published_available = -1;
  if (cb2m_queue_init(&c->queue, (size_t)cfg->events.max_queued) != 0)
    return -1;
  if (!b->shared_limiter &&
      cbev_ratelimit_new(cfg->events.rate_requests, cfg->events.rate_seconds, &c->own_limiter) !=
          CBEV_OK)
    return -1;
  rc = open_session(b, c, c->cfg->token, c->cfg->url, &c->session);
  if (rc != CBEV_OK) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot set up the Events API session: %s", c->cfg->name,
        cbev_strerror(rc));
    return -1;
  }
  if (restore_cursor(b, c) != 0)
    return -1;
  rc = cb2m_state_load(cfg->events.state_dir, c->cfg->name, &c->state, &aside);
  if (rc != CBEV_OK && rc != CBEV_ENOTFOUND && rc != CBEV_EPARSE) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot read the state file %s/%s.state: %s; stopping rather "
        "than overwrite it", c->cfg->name, cfg->events.state_dir, c->cfg->name, strerror(errno));
    free(aside);
    return -1;
  }
  if (rc == CBEV_EPARSE)
    LOG(b, CBEV_LOG_WARN, "%s: the state file was corrupt and was set aside as %s",
        c->cfg->name, aside ? aside : "(unknown)");
  free(aside);
  cb2m_poller_set_session(b->poller, i, c->session);
  return 0;
}

static void teardown(bridge *b) {
  for (size_t i = 0; b->bcs && i < b->n; i++) {
    bc *c = &b->bcs[i];
    cb2m_queue_cleanup(&c->queue);
    cb2m_state_cleanup(&c->state);
    free(c->cursor_url);
    free(c->cursor_id);
  }
  cb2m_poller_free(b->poller); /* before the sessions it borrows */
  for (size_t i = 0; b->bcs && i < b->n; i++) {
    cbev_session_free(b->bcs[i].session);
    cbev_ratelimit_free(b->bcs[i].own_limiter);
    cb2m_config_secret_free(b->bcs[i].secret_now);
  }
  cb2m_metrics_http_free(b->http);
  free(b->mx_list);
  cb2m_mqtt_free(b->mqtt);
  cbev_ratelimit_free(b->shared_limiter);
  free(b->bcs);
  cb2m_secrets_cleanup(&b->secrets);
  free(b->mask);
}

static int setup(bridge *b, const cb2m_config *cfg) {
  cb2m_poller_opts po = {0};
  cb2m_mqtt_opts mo = {0};
  cb2m_mqtt_cbs cbs = {on_connect, on_disconnect, on_ack, on_message, b};

  b->cfg = cfg;
  b->n = cfg->n_broadcasters;
  b->started_at = time(NULL);
  b->started_ms = now_ms();
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
  b->sink = (cb2m_logsink){stderr, cfg->log.json, b->mask, b->secrets.n};
  b->logger = (cbev_logger){cb2m_logsink_write, &b->sink, cfg->log.level};

  if (topic_for(b, b->topic_status, "bridge", "status") != 0 ||
      snprintf(b->topic_ha_status, sizeof b->topic_ha_status, "%s/status",
               cfg->homeassistant.prefix) >= (int)sizeof b->topic_ha_status)
    return -1;
  if (cfg->events.shared_rate_limit &&
      cbev_ratelimit_new(cfg->events.rate_requests, cfg->events.rate_seconds,
                         &b->shared_limiter) != CBEV_OK)
    return -1;
  po = (cb2m_poller_opts){b->n, cfg->events.ca_file, 0, on_poll_done, poll_allowed, b};
  if (cb2m_poller_new(&po, &b->poller) != 0)
    return -1;
  for (size_t i = 0; i < b->n; i++)
    if (setup_broadcaster(b, i) != 0)
      return -1;
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
  mo.backoff_initial_ms = 1000;
  mo.backoff_max_ms = 60000;
  mo.logger = &b->logger;
  return cb2m_mqtt_new(&mo, &cbs, &b->mqtt) == 0 ? 0 : -1;
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

/* One turn of the loop: wait for activity or the next timer, then serve
 * the MQTT socket, the transfers and the timers. */
static void turn(bridge *b, int signal_fd, volatile sig_atomic_t *stop, uint64_t max_wait_ms) {
  struct curl_waitfd fds[3];
  unsigned nfds = 0;
  uint64_t now = now_ms(), next, wait;
  int mfd = cb2m_mqtt_fd(b->mqtt), mqtt_slot = -1, http_slot = -1;

  next = b->stopping ? now + max_wait_ms : cb2m_poller_start_due(b->poller, now);
  if (retry_auth_due(b, now, 0) < next)
    next = retry_auth_due(b, now, 0);
  if (cb2m_mqtt_next_ms(b->mqtt, now) < next)
    next = cb2m_mqtt_next_ms(b->mqtt, now);
  if (!b->stopping) {
    if (b->next_save_ms < next)
      next = b->next_save_ms;
    if (b->next_heartbeat_ms < next)
      next = b->next_heartbeat_ms;
    /* These two wait for the broker: while it is away they must not make
     * the loop spin (the connect itself wakes the loop). */
    if (cb2m_mqtt_connected(b->mqtt) && b->next_health_ms < next)
      next = b->next_health_ms;
    if (cb2m_mqtt_connected(b->mqtt) && b->discovery_due && b->discovery_at_ms < next)
      next = b->discovery_at_ms;
    if (cb2m_mqtt_connected(b->mqtt) && retry_due_ms(b) < next)
      next = retry_due_ms(b);
    if (b->http && cb2m_metrics_http_next_ms(b->http, now) < next)
      next = cb2m_metrics_http_next_ms(b->http, now);
  }
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
  (void)stop;
  now = now_ms();
  {
    short revents = 0;
    if (mqtt_slot >= 0) {
      if (fds[mqtt_slot].revents & CURL_WAIT_POLLIN)
        revents |= POLLIN;
      if (fds[mqtt_slot].revents & CURL_WAIT_POLLOUT)
        revents |= POLLOUT;
    }
    cb2m_mqtt_service(b->mqtt, revents, now);
  }
  cb2m_poller_perform(b->poller, now);
  if (http_slot >= 0 && ((fds[http_slot].revents & CURL_WAIT_POLLIN) ||
                         cb2m_metrics_http_next_ms(b->http, now) <= now))
    cb2m_metrics_http_run(b->http);
  pump(b);
  cb2m_mqtt_service(b->mqtt, 0, now); /* flush what pump() queued */
  collect_acked(b);
}

static void timers(bridge *b) {
  uint64_t now = now_ms();

  retry_auth_due(b, now, 1);
  if (now >= b->next_save_ms) {
    if (save_all(b) != 0)
      b->fatal = 1;
    b->next_save_ms = now + SAVE_INTERVAL_MS;
  }
  if (now >= b->next_heartbeat_ms) {
    if (cb2m_heartbeat_write(b->cfg->events.state_dir, cb2m_mqtt_connected(b->mqtt), time(NULL)) != 0)
      LOG(b, CBEV_LOG_WARN, "cannot write the heartbeat file in %s: %s",
          b->cfg->events.state_dir, strerror(errno));
    b->next_heartbeat_ms = now + CB2M_HEARTBEAT_INTERVAL_MS;
  }
  if (now >= b->next_health_ms && cb2m_mqtt_connected(b->mqtt)) {
    publish_health(b, now);
    b->next_health_ms = now + (uint64_t)b->cfg->mqtt.health_interval * 1000u;
  }
  if (b->discovery_due && now >= b->discovery_at_ms && cb2m_mqtt_connected(b->mqtt)) {
    b->discovery_due = 0;
    LOG(b, CBEV_LOG_INFO, "homeassistant: birth message seen, re-publishing discovery and state");
    announce(b);
    for (size_t i = 0; i < b->n; i++) {
      b->bcs[i].published_available = -1;
      publish_availability(b, &b->bcs[i], b->bcs[i].status == BC_ONLINE);
      publish_state(b, &b->bcs[i], CB2M_CHG_ANY);
    }
  }
}

static void shutdown_bridge(bridge *b, volatile sig_atomic_t *stop, int signal_fd) {
  uint64_t deadline = now_ms() + CB2M_SHUTDOWN_GRACE_MS;
  size_t left = 0;

  b->stopping = 1;
  cb2m_poller_abort_all(b->poller);
  /* Deliver what is queued while the broker is there, for at most 5 s. */
  while (!queues_settled(b) && cb2m_mqtt_connected(b->mqtt) && now_ms() < deadline)
    turn(b, signal_fd, stop, 100);
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
  cb2m_mqtt_shutdown(b->mqtt, now_ms() + 1000u);
  cb2m_heartbeat_write(b->cfg->events.state_dir, 0, time(NULL));
}

/* ---- reload (SIGHUP, SPEC 5) */

/* Loads and validates the settings again and applies what may change
 * while running. Anything refused is logged and the running settings
 * stay; broadcasters whose settings did not change are never touched. */
static void reload(bridge *b, const cb2m_bridge_hooks *hooks) {
  cb2m_config next;
  cb2m_reload_plan plan = {0};
  char err[512];

  LOG(b, CBEV_LOG_INFO, "reload: reading the settings again (SIGHUP)");
  if (hooks->load(hooks->load_ud, &next, err, sizeof err) != 0) {
    LOG(b, CBEV_LOG_ERROR, "%s; the running settings stay", err);
    goto out;
  }
  if (cb2m_reload_plan_make(b->cfg, &next, &plan) != 0) {
    LOG(b, CBEV_LOG_ERROR, "reload: out of memory; the running settings stay");
    goto out;
  }
  if (plan.restart_key[0]) {
    LOG(b, CBEV_LOG_ERROR, "config: %s: cannot change while running (restart cb2mqtt); the "
        "running settings stay", plan.restart_key);
    goto out;
  }
  if (plan.log_changed) {
    b->sink.json = next.log.json;
    b->logger.max_level = next.log.level;
    LOG(b, CBEV_LOG_INFO, "reload: log settings applied (level %s, format %s)",
        next.log.level_name, next.log.format);
  }
  if (plan.n_added || plan.n_removed || plan.n_changed || plan.mqtt_changed)
    LOG(b, CBEV_LOG_WARN, "reload: %zu broadcaster(s) added, %zu removed, %zu with another "
        "secret%s: not applied while running yet; restart cb2mqtt to apply them",
        plan.n_added, plan.n_removed, plan.n_changed,
        plan.mqtt_changed ? ", mqtt.* changed" : "");
  LOG(b, CBEV_LOG_INFO, "reload: done; %zu broadcaster(s) untouched", plan.n_untouched);
out:
  cb2m_reload_plan_free(&plan);
  cb2m_config_free(&next);
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
    turn(b, signal_fd, stop, 10000);
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
  shutdown_bridge(b, stop, signal_fd);
out:
  teardown(b);
  free(b);
  return status;
}

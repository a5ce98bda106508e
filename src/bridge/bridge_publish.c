/*
 * bridge_publish.c: what the bridge says about itself and its
 * broadcasters: the retained availability, state, info and health
 * topics, Home Assistant discovery, the clean-up of removed broadcasters'
 * retained topics, and the /metrics text. See bridge_impl.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bridge_impl.h"
#include "discovery.h"
#include "retained.h"
#include "topics.h"

int bridge_topic_for(const bridge *b, char *buf, const char *l1, const char *l2) {
  return cb2m_topic(buf, TOPIC_MAX, b->cfg->mqtt.base_topic, l1, l2);
}

/* Publishes retained state-like messages at QoS 1; loss is repaired by the
 * re-publish on every connect, so the result is only logged. */
void bridge_publish_retained(bridge *b, const char *topic, const char *payload) {
  int rc = cb2m_mqtt_publish(b->mqtt, topic, payload, strlen(payload), 1, 1, NULL);
  if (rc != 0 && rc != CBEV_EAGAIN)
    LOG(b, CBEV_LOG_WARN, "mqtt: cannot publish %s: %s", topic, cbev_strerror(rc));
}

void bridge_publish_availability(bridge *b, bc *c, int online) {
  char topic[TOPIC_MAX];

  if (!cb2m_mqtt_connected(b->mqtt) || c->published_available == online)
    return;
  if (bridge_topic_for(b, topic, c->cfg->name, "availability") != 0)
    return;
  bridge_publish_retained(b, topic, online ? "online" : "offline");
  c->published_available = online;
}

void bridge_publish_state(bridge *b, bc *c, unsigned changed) {
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
    if (value && bridge_topic_for(b, topic, c->cfg->name, cb2m_state_topic_level(small[k])) == 0)
      bridge_publish_retained(b, topic, value);
  }
  json = cb2m_state_json(&c->state);
  if (json && bridge_topic_for(b, topic, c->cfg->name, "state") == 0)
    bridge_publish_retained(b, topic, json);
  cJSON_free(json);
  c->state_changed = 0;
}

void bridge_publish_info(bridge *b) {
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
  if (text && bridge_topic_for(b, topic, "bridge", "info") == 0)
    bridge_publish_retained(b, topic, text);
  cJSON_free(text);
  cJSON_free(settings);
  cJSON_Delete(root);
}

/* The retained health topics: one small message per broadcaster, which
 * Home Assistant's diagnostics of that broadcaster read, and the bridge's
 * own part with counts (SPEC 5). */
void bridge_publish_health(bridge *b, uint64_t now) {
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
    if (text && bridge_topic_for(b, topic, c->cfg->name, "health") == 0)
      bridge_publish_retained(b, topic, text);
    cJSON_free(text);
  }
  text = cb2m_health_bridge_json((now - b->started_ms) / 1000u, cb2m_mqtt_connected(b->mqtt),
                                 (uint64_t)cb2m_mqtt_reconnects(b->mqtt), b->n, online, failing);
  if (text && bridge_topic_for(b, topic, "bridge", "health") == 0)
    bridge_publish_retained(b, topic, text);
  cJSON_free(text);
}

/* The render callback of metrics_http.h: runs in this thread, between two
 * turns of the loop, so every counter is read as one consistent state.
 * Returns cb2m_metrics_render()'s code. */
int bridge_render_metrics(void *ud, char **text, size_t *len) {
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
void bridge_announce(bridge *b) {
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
void bridge_clear_removed(bridge *b) {
  const char **names = names_of(b);

  if (!names)
    return;
  cb2m_retained_sync(b->cfg->events.state_dir, b->cfg->mqtt.base_topic, names, b->n,
                     disc_publish, b, &b->logger);
  free(names);
}

void bridge_republish(bridge *b, bc *c) {
  c->published_available = -1;
  bridge_publish_availability(b, c, c->status == BC_ONLINE);
  bridge_publish_state(b, c, CB2M_CHG_ANY);
}

void bridge_on_connect(void *ud) {
  bridge *b = ud;

  bridge_clear_removed(b);
  bridge_publish_retained(b, b->topic_status, "online");
  bridge_publish_info(b);
  for (size_t i = 0; i < b->n; i++)
    bridge_republish(b, &b->bcs[i]);
  if (b->cfg->homeassistant.discovery) {
    cb2m_mqtt_subscribe(b->mqtt, b->topic_ha_status, 1);
    bridge_announce(b);
  }
  b->next_health_ms = 0;
  bridge_pump(b);
}

void bridge_on_message(void *ud, const char *topic, const void *payload, size_t len) {
  bridge *b = ud;

  if (b->cfg->homeassistant.discovery &&
      cb2m_discovery_is_birth(b->cfg->homeassistant.prefix, topic, payload, len)) {
    /* Home Assistant restarted: re-announce after a short random delay so
     * a fleet of bridges does not answer at the same instant. */
    b->discovery_due = 1;
    b->discovery_at_ms = cbev_now_ms() + cb2m_discovery_birth_delay_ms((uint64_t)rand());
  }
}

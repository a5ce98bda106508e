/*
 * discovery.c: Home Assistant MQTT discovery payloads. This file builds
 * the device-based configs (one per broadcaster and one for the bridge),
 * their topics, and answers Home Assistant's birth message; it touches
 * neither the network nor the disk. The record of what was announced and
 * the publish step that keeps it true are in discovery_record.c. See
 * discovery.h.
 *
 * The payloads use the full option names of Home Assistant's MQTT
 * integration rather than the abbreviations: they are published rarely and
 * a person reading them with mosquitto_sub should understand them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "discovery.h"
#include "topics.h"

/* Longest template or name we format; ours are far below it. */
#define DISC_TEXT_MAX 1024

/* Human names and icons of the event entities, in cbev_event_type order.
 * `quiet` marks the types that fire on every viewer action: their event
 * entities start disabled so Home Assistant's recorder does not write a row
 * per chat line or visit unless the user asks for it. */
static const struct {
  const char *title, *icon;
  int quiet;
} k_types[CBEV_EVENT_TYPE_COUNT] = {
    {"Broadcast start", "mdi:video", 0},
    {"Broadcast stop", "mdi:video-off", 0},
    {"Subject change", "mdi:format-title", 0},
    {"User enter", "mdi:account-arrow-right", 1},
    {"User leave", "mdi:account-arrow-left", 1},
    {"Follow", "mdi:account-plus", 0},
    {"Unfollow", "mdi:account-minus", 0},
    {"Fan club join", "mdi:account-star", 0},
    {"Chat message", "mdi:chat", 1},
    {"Private message", "mdi:message-lock", 1},
    {"Tip", "mdi:cash-plus", 0},
    {"Media purchase", "mdi:cart", 0},
};

/* The event types that also get a device trigger: the ones an automation
 * is likely to start from. Chat, private messages and enter/leave are
 * frequent enough that a trigger would be noise; their event entities
 * remain for those who want them. */
static const cbev_event_type k_trigger_types[] = {
    CBEV_EVENT_TIP,          CBEV_EVENT_FOLLOW,          CBEV_EVENT_UNFOLLOW,
    CBEV_EVENT_FANCLUB_JOIN, CBEV_EVENT_MEDIA_PURCHASE,  CBEV_EVENT_BROADCAST_START,
    CBEV_EVENT_BROADCAST_STOP, CBEV_EVENT_ROOM_SUBJECT_CHANGE,
};

/* A topic prefix or base topic we put in front of our levels: the base
 * topic rules of topics.h (no wildcards, no empty level, capped). */
static int topic_root_ok(const char *t) { return cb2m_topic_base_check(t, NULL, 0) == CBEV_OK; }

/* Formats into a new malloc'd string; NULL on ENOMEM or past DISC_TEXT_MAX. */
static char *fmt(const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static char *fmt(const char *format, ...) {
  char buf[DISC_TEXT_MAX];
  va_list ap;
  int n;

  va_start(ap, format);
  n = vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof buf)
    return NULL;
  return strdup(buf);
}

char *cb2m_discovery_topic(const char *prefix, const char *object_id) {
  char buf[CB2M_DISC_TOPIC_MAX + 1];
  int n;

  if (!prefix || !*prefix || !object_id || !*object_id)
    return NULL;
  n = snprintf(buf, sizeof buf, "%s/device/%s/config", prefix, object_id);
  if (n < 0 || (size_t)n > CB2M_DISC_TOPIC_MAX)
    return NULL;
  return strdup(buf);
}

/* ---- building one device config ---------------------------------------- */

/* State shared by the helpers below. They record the first allocation
 * failure in `failed` instead of returning it, so a config reads as a flat
 * list of options and is checked once at the end. */
typedef struct disc_build {
  cJSON *root;
  cJSON *cmps;
  const char *base;      /* base topic */
  const char *owner;     /* broadcaster name, or "bridge" */
  char bridge_status[CB2M_DISC_TOPIC_MAX];
  char owner_avail[CB2M_DISC_TOPIC_MAX]; /* "" for the bridge device */
  int failed;
} disc_build;

static void put_str(disc_build *b, cJSON *obj, const char *key, const char *val) {
  if (!obj || !val || !cJSON_AddStringToObject(obj, key, val))
    b->failed = 1;
}

/* Sets key to a template or name made by fmt(); NULL counts as a failure. */
static void put_owned(disc_build *b, cJSON *obj, const char *key, char *val) {
  put_str(b, obj, key, val);
  free(val);
}

static void put_bool(disc_build *b, cJSON *obj, const char *key, int val) {
  if (!obj || !cJSON_AddBoolToObject(obj, key, val))
    b->failed = 1;
}

/* Sets key to a list holding the one string val. */
static void put_str_list(disc_build *b, cJSON *obj, const char *key, const char *val) {
  cJSON *list = cJSON_CreateArray();

  if (!list || !obj || !cJSON_AddItemToObject(obj, key, list)) {
    cJSON_Delete(list);
    b->failed = 1;
    return;
  }
  if (!cJSON_AddItemToArray(list, cJSON_CreateString(val)))
    b->failed = 1;
}

/* Sets key to "<base>/<owner>/<suffix>". */
static void put_topic(disc_build *b, cJSON *obj, const char *key, const char *owner,
                      const char *suffix) {
  put_owned(b, obj, key, fmt("%s/%s/%s", b->base, owner, suffix));
}

/* The availability list: the bridge's status, plus the broadcaster's own
 * availability unless bridge_only. With availability_mode "all" an entity
 * is available only while both say online. */
static void put_availability(disc_build *b, cJSON *obj, int bridge_only) {
  cJSON *list = cJSON_CreateArray();
  const char *topics[2] = {b->bridge_status, b->owner_avail};
  size_t n = (bridge_only || !b->owner_avail[0]) ? 1 : 2;

  if (!list || !obj || !cJSON_AddItemToObject(obj, "availability", list)) {
    cJSON_Delete(list);
    b->failed = 1;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    cJSON *item = cJSON_CreateObject();
    if (!item || !cJSON_AddItemToArray(list, item)) {
      cJSON_Delete(item);
      b->failed = 1;
      return;
    }
    put_str(b, item, "topic", topics[i]);
    put_str(b, item, "payload_available", "online");
    put_str(b, item, "payload_not_available", "offline");
  }
  put_str(b, obj, "availability_mode", "all");
}

/* Adds {"platform": platform} alone under `id`: Home Assistant's rule for
 * device-based discovery is that a component whose config holds only the
 * platform is removed (entity and registry entry), and a later payload may
 * leave it out. We keep such markers for everything we may have announced
 * before (an unpublished event type, a retired entity), so every transition
 * removes cleanly and a fresh install just ignores them. */
static void tombstone(disc_build *b, const char *id, const char *platform) {
  cJSON *c = cJSON_CreateObject();

  if (!c || !cJSON_AddItemToObject(b->cmps, id, c)) {
    cJSON_Delete(c);
    b->failed = 1;
    return;
  }
  put_str(b, c, "platform", platform);
}

/* Adds component `id` to "components" with its platform, and for entities
 * (everything but device triggers) a name, a unique id that stays the same
 * across restarts ("cb2mqtt_<owner>_<id>") and the availability list.
 * Returns the component, or NULL (and failed set) on ENOMEM. */
static cJSON *component(disc_build *b, const char *id, const char *platform, const char *name,
                        int bridge_only) {
  cJSON *c = cJSON_CreateObject();

  if (!c || !cJSON_AddItemToObject(b->cmps, id, c)) {
    cJSON_Delete(c);
    b->failed = 1;
    return NULL;
  }
  put_str(b, c, "platform", platform);
  if (strcmp(platform, "device_automation") == 0)
    return c;
  put_str(b, c, "name", name);
  put_owned(b, c, "unique_id", fmt("cb2mqtt_%s_%s", b->owner, id));
  put_availability(b, c, bridge_only);
  return c;
}

/* Starts a device config: root object, device block, origin block and an
 * empty components map. Returns 0, or -1 on ENOMEM or bad input. */
static int build_start(disc_build *b, const char *base, const char *owner, const char *device_id,
                       const char *device_name, const char *model, const char *sw_version,
                       int via_bridge) {
  cJSON *dev, *origin;
  int n;

  memset(b, 0, sizeof *b);
  b->base = base;
  b->owner = owner;
  n = snprintf(b->bridge_status, sizeof b->bridge_status, "%s/bridge/status", base);
  if (n < 0 || (size_t)n >= sizeof b->bridge_status)
    return -1;
  if (via_bridge) {
    n = snprintf(b->owner_avail, sizeof b->owner_avail, "%s/%s/availability", base, owner);
    if (n < 0 || (size_t)n >= sizeof b->owner_avail)
      return -1;
  }
  b->root = cJSON_CreateObject();
  if (!b->root)
    return -1;

  dev = cJSON_AddObjectToObject(b->root, "device");
  put_str_list(b, dev, "identifiers", device_id);
  put_str(b, dev, "name", device_name);
  put_str(b, dev, "manufacturer", "cb2mqtt");
  put_str(b, dev, "model", model);
  put_str(b, dev, "sw_version", sw_version);
  if (via_bridge)
    put_str(b, dev, "via_device", CB2M_DISC_BRIDGE_ID);

  origin = cJSON_AddObjectToObject(b->root, "origin");
  put_str(b, origin, "name", "cb2mqtt");
  put_str(b, origin, "sw_version", sw_version);
  put_str(b, origin, "support_url", CB2M_DISC_SUPPORT_URL);

  /* Shared by every component: Home Assistant subscribes at QoS 1 so the
   * bridge's QoS 1 is kept on the last hop too. */
  if (!cJSON_AddNumberToObject(b->root, "qos", 1))
    b->failed = 1;
  b->cmps = cJSON_AddObjectToObject(b->root, "components");
  if (!b->cmps)
    b->failed = 1;
  return b->failed ? -1 : 0;
}

/* Prints the config (cJSON's allocation: the caller frees it with
 * cJSON_free()) and frees the tree. NULL when a helper failed on the way
 * or on ENOMEM. */
static char *build_finish(disc_build *b) {
  char *printed = NULL;

  if (!b->failed && b->root)
    printed = cJSON_PrintUnformatted(b->root);
  cJSON_Delete(b->root);
  b->root = NULL;
  return printed;
}

/* The broadcaster's entities that read its state and event topics. */
static void add_state_entities(disc_build *b) {
  const char *o = b->owner;
  cJSON *c;

  c = component(b, "broadcasting", "binary_sensor", "Broadcasting", 0);
  put_topic(b, c, "state_topic", o, "state/broadcasting");
  put_str(b, c, "payload_on", "true");
  put_str(b, c, "payload_off", "false");
  put_str(b, c, "icon", "mdi:video");

  /* Home Assistant refuses states longer than 255 characters; the sensor
   * keeps the first 255 and the full subject stays reachable as an
   * attribute taken from the state JSON. */
  c = component(b, "subject", "sensor", "Subject", 0);
  put_topic(b, c, "state_topic", o, "state/subject");
  put_str(b, c, "value_template", "{{ value[:255] }}");
  put_topic(b, c, "json_attributes_topic", o, "state");
  put_str(b, c, "json_attributes_template", "{{ {'subject': value_json.subject} | to_json }}");
  put_str(b, c, "icon", "mdi:format-title");

  /* total_increasing: the count restarts at 0 on broadcast_start, which
   * Home Assistant reads as a new cycle, not as negative income. */
  c = component(b, "session_tokens", "sensor", "Session tokens", 0);
  put_topic(b, c, "state_topic", o, "state/session_tokens");
  put_str(b, c, "unit_of_measurement", "tokens");
  put_str(b, c, "state_class", "total_increasing");
  put_str(b, c, "icon", "mdi:hand-coin");

  /* Last tip reads last_tip of the retained state, which the bridge keeps
   * in both payload modes, so it has its value again right after a Home
   * Assistant restart. No force_update: the state JSON is re-sent on every
   * change (subject, viewers), and a repeated equal tip still shows as a
   * new "at" attribute. The state follows every event whether tips are
   * published or not, so the sensor is always there. */
  c = component(b, "last_tip", "sensor", "Last tip", 0);
  put_topic(b, c, "state_topic", o, "state");
  put_str(b, c, "value_template",
          "{{ value_json.last_tip.tokens if value_json.last_tip is mapping else none }}");
  put_str(b, c, "unit_of_measurement", "tokens");
  put_str(b, c, "state_class", "measurement");
  put_topic(b, c, "json_attributes_topic", o, "state");
  put_str(b, c, "json_attributes_template",
          "{% set t = value_json.last_tip if value_json.last_tip is mapping else {} %}"
          "{{ {'username': t.username | default(none), 'is_anon': t.is_anon | default(none), "
          "'message': t.message | default(none), 'at': t.at | default(none)} | to_json }}");
  put_str(b, c, "icon", "mdi:cash-plus");

  c = component(b, "viewers", "sensor", "Viewers (approximate)", 0);
  put_topic(b, c, "state_topic", o, "state/viewers");
  put_str(b, c, "state_class", "measurement");
  put_str(b, c, "icon", "mdi:account-group");
}

/* One event entity per published type, and device triggers for the
 * types in k_trigger_types that are published. */
static void add_event_entities(disc_build *b, unsigned mask) {
  const char *o = b->owner;

  for (int t = 0; t < (int)CBEV_EVENT_TYPE_COUNT; t++) {
    const char *type = cbev_event_type_name((cbev_event_type)t);
    char id[64];
    cJSON *c;

    snprintf(id, sizeof id, "event_%s", type);
    if (!(mask & (1u << t))) {
      tombstone(b, id, "event");
      continue;
    }
    c = component(b, id, "event", k_types[t].title, 0);
    put_str(b, c, "icon", k_types[t].icon);
    if (k_types[t].quiet)
      put_bool(b, c, "enabled_by_default", 0);
    put_topic(b, c, "state_topic", o, type);
    put_str_list(b, c, "event_types", type);
    /* The normalized payload already names its type in "event_type"; the
     * default covers payload = raw, where the topic says what it is. */
    put_owned(b, c, "value_template",
              fmt("{{ {'event_type': value_json.event_type | default('%s'), "
                  "'id': value_json.id | default(none), "
                  "'username': (value_json.user.username if value_json.user is mapping "
                  "else none)} | to_json }}",
                  type));
  }

  for (size_t i = 0; i < sizeof k_trigger_types / sizeof k_trigger_types[0]; i++) {
    cbev_event_type t = k_trigger_types[i];
    const char *type = cbev_event_type_name((cbev_event_type)t);
    char id[64];
    cJSON *c;

    snprintf(id, sizeof id, "trigger_%s", type);
    if (!(mask & (1u << t))) {
      tombstone(b, id, "device_automation");
      continue;
    }
    /* The automation editor shows '"<subtype>" <type>': the device already
     * names the broadcaster, so the subtype says what happened
     * ('"tip" received'). */
    c = component(b, id, "device_automation", NULL, 0);
    put_str(b, c, "automation_type", "trigger");
    put_topic(b, c, "topic", o, type);
    put_str(b, c, "type", "received");
    put_str(b, c, "subtype", type);
  }
}

/* Diagnostics of one broadcaster. The ones that describe the feed's
 * connection are tied to the bridge status only: they must stay visible
 * exactly when the broadcaster's availability says offline. */
static void add_diagnostics(disc_build *b) {
  const char *o = b->owner;
  cJSON *c;

  c = component(b, "api_connected", "binary_sensor", "API connected", 1);
  put_topic(b, c, "state_topic", o, "availability");
  put_str(b, c, "payload_on", "online");
  put_str(b, c, "payload_off", "offline");
  put_str(b, c, "device_class", "connectivity");
  put_str(b, c, "entity_category", "diagnostic");

  c = component(b, "last_event", "sensor", "Last event", 0);
  put_topic(b, c, "state_topic", o, "state");
  put_str(b, c, "value_template", "{{ value_json.last_event_at }}");
  put_str(b, c, "device_class", "timestamp");
  put_str(b, c, "entity_category", "diagnostic");

  /* The broadcaster's own retained health (cb/<b>/health): one small
   * parse per broadcaster, not the whole bridge's health each time. Absent
   * values render None, which Home Assistant shows as unknown. */
  static const struct {
    const char *id, *name, *tpl, *unit, *device_class, *state_class;
    int enabled;
  } k_health[] = {
      {"queued", "Queued events", "{{ value_json.queued | default(none) }}", NULL, NULL,
       "measurement", 1},
      {"polls", "Polls", "{{ value_json.polls | default(none) }}", NULL, NULL,
       "total_increasing", 0},
      {"retries", "Retries", "{{ value_json.retries | default(none) }}", NULL, NULL,
       "total_increasing", 0},
      {"last_event_age", "Last event age", "{{ value_json.last_event_age_s | default(none) }}",
       "s", "duration", "measurement", 0},
      {"last_api_error", "Last API error",
       "{% set e = value_json.last_api_error | default(none) %}"
       "{{ none if e is not mapping else e.error ~ "
       "((' (HTTP ' ~ e.http_status ~ ')') if e.http_status else '') }}",
       NULL, NULL, NULL, 1},
      {"last_publish_error", "Last publish error",
       "{% set e = value_json.last_publish_error | default(none) %}"
       "{{ none if e is not mapping else e.topic ~ ': ' ~ e.reason ~ "
       "' (' ~ e.reason_code ~ ')' }}",
       NULL, NULL, NULL, 1},
      /* The total as state, the count of each event type as attributes. */
      {"events_received", "Events received",
       "{% set ev = value_json.events | default({}) %}{{ ev.values() | sum }}", NULL, NULL,
       "total_increasing", 0},
  };
  for (size_t i = 0; i < sizeof k_health / sizeof k_health[0]; i++) {
    c = component(b, k_health[i].id, "sensor", k_health[i].name, 1);
    put_topic(b, c, "state_topic", o, "health");
    put_str(b, c, "value_template", k_health[i].tpl);
    if (k_health[i].unit)
      put_str(b, c, "unit_of_measurement", k_health[i].unit);
    if (k_health[i].device_class)
      put_str(b, c, "device_class", k_health[i].device_class);
    if (k_health[i].state_class)
      put_str(b, c, "state_class", k_health[i].state_class);
    put_str(b, c, "entity_category", "diagnostic");
    if (!k_health[i].enabled)
      put_bool(b, c, "enabled_by_default", 0);
  }
  c = cJSON_GetObjectItemCaseSensitive(b->cmps, "events_received");
  put_topic(b, c, "json_attributes_topic", o, "health");
  put_str(b, c, "json_attributes_template", "{{ value_json.events | default({}) | tojson }}");
  c = cJSON_GetObjectItemCaseSensitive(b->cmps, "last_publish_error");
  put_topic(b, c, "json_attributes_topic", o, "health");
  put_str(b, c, "json_attributes_template",
          "{{ (value_json.last_publish_error if value_json.last_publish_error is mapping "
          "else {}) | tojson }}");
}

int cb2m_discovery_object_id(const char *broadcaster, char *buf, size_t cap) {
  int n;

  if (!buf || !cap)
    return CBEV_EINVAL;
  buf[0] = '\0';
  if (!cb2m_name_valid(broadcaster))
    return CBEV_EINVAL;
  n = snprintf(buf, cap, "cb2mqtt_%s", broadcaster);
  if (n < 0 || (size_t)n >= cap) {
    buf[0] = '\0';
    return CBEV_EINVAL;
  }
  return CBEV_OK;
}

char *cb2m_discovery_device_json(const cb2m_disc_input *in) {
  disc_build b;
  char device_id[CB2M_DISC_OBJECT_ID_MAX];
  char *device_name = NULL, *out = NULL;

  if (!in || !topic_root_ok(in->base_topic) || !in->sw_version ||
      cb2m_discovery_object_id(in->broadcaster, device_id, sizeof device_id) != CBEV_OK)
    return NULL;
  device_name = fmt("Chaturbate %s", in->broadcaster);
  if (!device_name)
    goto out;
  if (build_start(&b, in->base_topic, in->broadcaster, device_id, device_name,
                  "Chaturbate broadcaster", in->sw_version, 1) != 0) {
    cJSON_Delete(b.root);
    goto out;
  }
  add_state_entities(&b);
  add_event_entities(&b, in->publish_mask);
  add_diagnostics(&b);
  out = build_finish(&b);
out:
  free(device_name);
  return out;
}

char *cb2m_discovery_bridge_json(const char *base_topic, const char *sw_version) {
  disc_build b;
  cJSON *c;

  if (!topic_root_ok(base_topic) || !sw_version)
    return NULL;
  if (build_start(&b, base_topic, "bridge", CB2M_DISC_BRIDGE_ID, "cb2mqtt bridge", "MQTT bridge",
                  sw_version, 0) != 0) {
    cJSON_Delete(b.root);
    return NULL;
  }

  /* The status is the bridge's Last Will: it reads "disconnected" rather
   * than unavailable when the bridge dies, so it has no availability of
   * its own. */
  c = cJSON_CreateObject();
  if (!c || !cJSON_AddItemToObject(b.cmps, "status", c)) {
    cJSON_Delete(c);
    b.failed = 1;
    c = NULL;
  }
  put_str(&b, c, "platform", "binary_sensor");
  put_str(&b, c, "name", "Status");
  put_str(&b, c, "unique_id", "cb2mqtt_bridge_status");
  put_str(&b, c, "state_topic", b.bridge_status);
  put_str(&b, c, "payload_on", "online");
  put_str(&b, c, "payload_off", "offline");
  put_str(&b, c, "device_class", "connectivity");

  /* The start as a timestamp from the retained info, which changes once
   * per start; an uptime counter would write the recorder every interval. */
  c = component(&b, "started", "sensor", "Started", 0);
  put_topic(&b, c, "state_topic", "bridge", "info");
  put_str(&b, c, "value_template", "{{ value_json.started_at | default(none) }}");
  put_str(&b, c, "device_class", "timestamp");
  put_str(&b, c, "entity_category", "diagnostic");

  /* Retired: Uptime (replaced by Started) and MQTT connected (only ever
   * sent while connected, so it could never read off; Status above is the
   * Last Will and does). Removed from Home Assistant by their markers. */
  tombstone(&b, "uptime", "sensor");
  tombstone(&b, "mqtt_connected", "binary_sensor");

  c = component(&b, "mqtt_reconnects", "sensor", "MQTT reconnects", 0);
  put_topic(&b, c, "state_topic", "bridge", "health");
  put_str(&b, c, "value_template", "{{ value_json.mqtt.reconnects }}");
  put_str(&b, c, "state_class", "total_increasing");
  put_str(&b, c, "entity_category", "diagnostic");

  return build_finish(&b);
}

/* ---- Home Assistant's birth message ----------------------------------------- */

char *cb2m_discovery_status_topic(const char *prefix) {
  if (!topic_root_ok(prefix))
    return NULL;
  return fmt("%s/status", prefix);
}

int cb2m_discovery_is_birth(const char *prefix, const char *topic, const void *payload,
                            size_t len) {
  size_t plen;

  if (!topic_root_ok(prefix) || !topic || (len && !payload))
    return 0;
  plen = strlen(prefix);
  if (strncmp(topic, prefix, plen) != 0 || strcmp(topic + plen, "/status") != 0)
    return 0;
  return len == 6 && memcmp(payload, "online", 6) == 0;
}

unsigned cb2m_discovery_birth_delay_ms(uint64_t rnd) {
  uint64_t span = CB2M_DISC_BIRTH_DELAY_MAX_MS - CB2M_DISC_BIRTH_DELAY_MIN_MS + 1u;

  return CB2M_DISC_BIRTH_DELAY_MIN_MS + (unsigned)(rnd % span);
}

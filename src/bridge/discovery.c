/*
 * discovery.c: Home Assistant MQTT discovery. This file owns the discovery
 * payloads (one device-based config per broadcaster and one for the
 * bridge), the record of announced broadcasters in state_dir, and the
 * publish step that ties both to the MQTT client. See discovery.h.
 *
 * The payloads use the full option names of Home Assistant's MQTT
 * integration rather than the abbreviations: they are published rarely and
 * a person reading them with mosquitto_sub should understand them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/version.h"
#include "config.h"
#include "discovery.h"
#include "fsutil.h"
#include "mqtt.h"
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
static int topic_root_ok(const char *t) { return cb2m_topic_base_valid(t, NULL, 0) == 0; }

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

/* Prints the config into a malloc'd string and frees the tree. NULL when a
 * helper failed on the way. */
static char *build_finish(disc_build *b) {
  char *printed = NULL, *out = NULL;

  if (!b->failed && b->root)
    printed = cJSON_PrintUnformatted(b->root);
  if (printed)
    out = strdup(printed);
  /* cJSON allocates through the hooks libcbevents may have installed; the
   * caller gets plain malloc memory so free() is always right. */
  cJSON_free(printed);
  cJSON_Delete(b->root);
  b->root = NULL;
  return out;
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

char *cb2m_discovery_device_json(const cb2m_disc_input *in) {
  disc_build b;
  char *device_id = NULL, *device_name = NULL, *out = NULL;

  if (!in || !topic_root_ok(in->base_topic) || !cb2m_name_valid(in->broadcaster) ||
      !in->sw_version)
    return NULL;
  device_id = fmt("cb2mqtt_%s", in->broadcaster);
  device_name = fmt("Chaturbate %s", in->broadcaster);
  if (!device_id || !device_name)
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
  free(device_id);
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

/* ---- the record of announced broadcasters ------------------------------- */

void cb2m_disc_record_cleanup(cb2m_disc_record *rec) {
  if (!rec)
    return;
  for (size_t i = 0; i < rec->n_names; i++)
    free(rec->names[i]);
  free(rec->names);
  free(rec->prefix);
  memset(rec, 0, sizeof *rec);
}

char *cb2m_disc_record_json(const char *prefix, const char *const *names, size_t n_names) {
  cJSON *root = NULL, *list;
  char *printed = NULL, *out = NULL;

  if (!prefix)
    return NULL;
  root = cJSON_CreateObject();
  if (!root || !cJSON_AddStringToObject(root, "prefix", prefix))
    goto out;
  list = cJSON_AddArrayToObject(root, "broadcasters");
  if (!list)
    goto out;
  for (size_t i = 0; i < n_names; i++)
    if (!cJSON_AddItemToArray(list, cJSON_CreateString(names[i])))
      goto out;
  printed = cJSON_PrintUnformatted(root);
  if (printed)
    out = strdup(printed);
out:
  cJSON_free(printed);
  cJSON_Delete(root);
  return out;
}

static int record_has(const cb2m_disc_record *rec, const char *name) {
  for (size_t i = 0; i < rec->n_names; i++)
    if (strcmp(rec->names[i], name) == 0)
      return 1;
  return 0;
}

int cb2m_disc_record_parse(const char *text, size_t len, cb2m_disc_record *out) {
  cJSON *root = NULL;
  const cJSON *prefix, *list, *item;
  cb2m_disc_record rec = {0};
  size_t n = 0;
  int rc = CBEV_EPARSE;

  memset(out, 0, sizeof *out);
  if (!text)
    goto out;
  root = cJSON_ParseWithLength(text, len);
  prefix = cJSON_GetObjectItemCaseSensitive(root, "prefix");
  list = cJSON_GetObjectItemCaseSensitive(root, "broadcasters");
  if (!cJSON_IsObject(root) || !cJSON_IsString(prefix) || !topic_root_ok(prefix->valuestring) ||
      !cJSON_IsArray(list))
    goto out;

  rc = CBEV_ENOMEM;
  rec.prefix = strdup(prefix->valuestring);
  if (!rec.prefix)
    goto out;
  cJSON_ArrayForEach(item, list) {
    if (n < CB2M_DISC_RECORD_MAX_NAMES)
      n++;
  }
  rec.names = calloc(n ? n : 1, sizeof *rec.names);
  if (!rec.names)
    goto out;
  cJSON_ArrayForEach(item, list) {
    if (rec.n_names >= n)
      break;
    if (!cJSON_IsString(item) || !cb2m_name_valid(item->valuestring) ||
        record_has(&rec, item->valuestring))
      continue;
    rec.names[rec.n_names] = strdup(item->valuestring);
    if (!rec.names[rec.n_names])
      goto out;
    rec.n_names++;
  }
  *out = rec;
  memset(&rec, 0, sizeof rec);
  rc = CBEV_OK;
out:
  cb2m_disc_record_cleanup(&rec);
  cJSON_Delete(root);
  return rc;
}

size_t cb2m_discovery_stale(const cb2m_disc_record *old, const char *prefix,
                            const char *const *names, size_t n_names, const char **out,
                            size_t out_cap, int *clear_bridge) {
  size_t n_stale = 0;
  int moved;

  if (clear_bridge)
    *clear_bridge = 0;
  if (!old || !old->prefix)
    return 0;
  /* Configs announced under another prefix are all orphans: Home Assistant
   * no longer reads them there, but another consumer of that prefix
   * might, and retained messages would stay on the broker forever. */
  moved = !prefix || strcmp(old->prefix, prefix) != 0;
  if (clear_bridge)
    *clear_bridge = moved;
  for (size_t i = 0; i < old->n_names; i++) {
    int kept = 0;

    for (size_t j = 0; !moved && j < n_names; j++)
      if (names[j] && strcmp(old->names[i], names[j]) == 0)
        kept = 1;
    if (kept)
      continue;
    if (n_stale < out_cap)
      out[n_stale] = old->names[i];
    n_stale++;
  }
  return n_stale;
}

int cb2m_disc_record_load(const char *state_dir, cb2m_disc_record *out) {
  return cb2m_disc_record_load_from(state_dir, CB2M_DISC_RECORD_FILE, out);
}

int cb2m_disc_record_load_from(const char *state_dir, const char *file, cb2m_disc_record *out) {
  char path[4096];
  char *buf = NULL;
  size_t len = 0;
  int n, rc;

  memset(out, 0, sizeof *out);
  n = snprintf(path, sizeof path, "%s/%s", state_dir, file);
  if (n < 0 || (size_t)n >= sizeof path)
    return CBEV_EIO;
  if (cb2m_read_file(path, CB2M_DISC_RECORD_MAX_BYTES, &buf, &len) != 0) {
    if (errno == ENOENT)
      return CBEV_ENOTFOUND;
    if (errno == EFBIG)
      return CBEV_ETOOBIG;
    return errno == ENOMEM ? CBEV_ENOMEM : CBEV_EIO;
  }
  rc = cb2m_disc_record_parse(buf, len, out);
  free(buf);
  return rc;
}

int cb2m_disc_record_save(const char *state_dir, const char *prefix, const char *const *names,
                          size_t n_names) {
  return cb2m_disc_record_save_to(state_dir, CB2M_DISC_RECORD_FILE, prefix, names, n_names);
}

int cb2m_disc_record_save_to(const char *state_dir, const char *file, const char *prefix,
                             const char *const *names, size_t n_names) {
  char *json = cb2m_disc_record_json(prefix, names, n_names);
  int rc = CBEV_OK;

  if (!json)
    return CBEV_ENOMEM;
  if (cb2m_write_atomic(state_dir, file, json, strlen(json), 0600) != 0)
    rc = CBEV_EIO;
  free(json);
  return rc;
}

/* ---- publishing ------------------------------------------------------------- */

/* Publishes payload (NULL: the empty payload that removes a config) to
 * "<prefix>/device/<object_id>/config". */
static int publish_config(cb2m_disc_publish_fn publish, void *ud, const cbev_logger *logger,
                          const char *prefix, const char *object_id, const char *payload) {
  char *topic = cb2m_discovery_topic(prefix, object_id);
  int rc;

  if (!topic)
    return CBEV_ENOMEM;
  rc = publish(ud, topic, payload ? payload : "", payload ? strlen(payload) : 0);
  if (rc != CBEV_OK)
    /* Not being connected is routine: the bridge publishes again after the
     * next connect. Anything else deserves a warning. */
    cbev_log(logger, NULL, rc == CBEV_EAGAIN ? CBEV_LOG_DEBUG : CBEV_LOG_WARN,
             "discovery: publish to %s failed: %s; retrying after the next connect", topic,
             cbev_strerror(rc));
  free(topic);
  return rc;
}

int cb2m_discovery_publish_with(const cb2m_disc_settings *s, cb2m_disc_publish_fn publish,
                                void *ud, const cbev_logger *logger) {
  cb2m_disc_record old = {0};
  const char **stale = NULL;
  char path[4096];
  char *json = NULL, *object_id = NULL;
  size_t n_stale = 0;
  int clear_bridge = 0, n, rc = CBEV_EINVAL;

  if (!s || !publish || !topic_root_ok(s->prefix) || !topic_root_ok(s->base_topic) ||
      !s->sw_version || !s->state_dir || (s->n_names && !s->names)) {
    cbev_log(logger, NULL, CBEV_LOG_ERROR, "discovery: invalid settings; nothing published");
    goto out;
  }
  n = snprintf(path, sizeof path, "%s/%s", s->state_dir, CB2M_DISC_RECORD_FILE);
  if (n < 0 || (size_t)n >= sizeof path) {
    cbev_log(logger, NULL, CBEV_LOG_ERROR, "discovery: state_dir path too long");
    goto out;
  }

  /* The record only decides what to clear; losing it costs at worst a
   * stale device in Home Assistant, never a failed start. */
  rc = cb2m_disc_record_load(s->state_dir, &old);
  if (rc != CBEV_OK && rc != CBEV_ENOTFOUND)
    cbev_log(logger, NULL, CBEV_LOG_WARN,
             "discovery: %s unusable (%s); no old configs will be cleared", path,
             cbev_strerror(rc));
  if (rc == CBEV_ENOMEM)
    goto out;

  rc = CBEV_ENOMEM;
  json = cb2m_discovery_bridge_json(s->base_topic, s->sw_version);
  if (!json)
    goto out;
  rc = publish_config(publish, ud, logger, s->prefix, CB2M_DISC_BRIDGE_ID, json);
  if (rc != CBEV_OK)
    goto out;

  for (size_t i = 0; i < s->n_names; i++) {
    cb2m_disc_input in = {s->base_topic, s->names[i], s->publish_mask, s->sw_version};

    free(json);
    free(object_id);
    json = NULL;
    object_id = NULL;
    if (!cb2m_name_valid(s->names[i])) {
      cbev_log(logger, NULL, CBEV_LOG_ERROR,
               "discovery: broadcaster name \"%s\" cannot be announced; skipped", s->names[i]);
      rc = CBEV_EINVAL;
      goto out;
    }
    rc = CBEV_ENOMEM;
    json = cb2m_discovery_device_json(&in);
    object_id = fmt("cb2mqtt_%s", s->names[i]);
    if (!json || !object_id)
      goto out;
    rc = publish_config(publish, ud, logger, s->prefix, object_id, json);
    if (rc != CBEV_OK)
      goto out;
  }

  n_stale = cb2m_discovery_stale(&old, s->prefix, s->names, s->n_names, NULL, 0, &clear_bridge);
  if (n_stale) {
    rc = CBEV_ENOMEM;
    stale = calloc(n_stale, sizeof *stale);
    if (!stale)
      goto out;
    cb2m_discovery_stale(&old, s->prefix, s->names, s->n_names, stale, n_stale, NULL);
  }
  for (size_t i = 0; i < n_stale; i++) {
    free(object_id);
    rc = CBEV_ENOMEM;
    object_id = fmt("cb2mqtt_%s", stale[i]);
    if (!object_id)
      goto out;
    rc = publish_config(publish, ud, logger, old.prefix, object_id, NULL);
    if (rc != CBEV_OK)
      goto out;
    cbev_log(logger, NULL, CBEV_LOG_INFO,
             "discovery: removed broadcaster %s from Home Assistant (%s/device/%s)", stale[i],
             old.prefix, object_id);
  }
  if (clear_bridge) {
    rc = publish_config(publish, ud, logger, old.prefix, CB2M_DISC_BRIDGE_ID, NULL);
    if (rc != CBEV_OK)
      goto out;
    cbev_log(logger, NULL, CBEV_LOG_INFO,
             "discovery: prefix changed from %s to %s; old configs removed", old.prefix,
             s->prefix);
  }

  rc = cb2m_disc_record_save(s->state_dir, s->prefix, s->names, s->n_names);
  if (rc != CBEV_OK)
    cbev_log(logger, NULL, CBEV_LOG_WARN,
             "discovery: cannot write %s (%s); removed broadcasters may stay in Home Assistant",
             path, cbev_strerror(rc));
out:
  free(stale);
  free(json);
  free(object_id);
  cb2m_disc_record_cleanup(&old);
  return rc;
}

/* cb2m_discovery_publish_with() on the bridge's MQTT client. */
static int mqtt_publish_retained(void *ud, const char *topic, const void *payload, size_t len) {
  return cb2m_mqtt_publish(ud, topic, payload, len, 1, 1, NULL);
}

int cb2m_discovery_publish_all(cb2m_mqtt *mqtt, const cb2m_config *cfg,
                               const cbev_logger *logger) {
  cb2m_disc_settings s;
  const char **names;
  int rc;

  if (!mqtt || !cfg)
    return CBEV_EINVAL;
  names = calloc(cfg->n_broadcasters ? cfg->n_broadcasters : 1, sizeof *names);
  if (!names)
    return CBEV_ENOMEM;
  for (size_t i = 0; i < cfg->n_broadcasters; i++)
    names[i] = cfg->broadcasters[i].name;
  s = (cb2m_disc_settings){cfg->mqtt.base_topic,     cfg->homeassistant.prefix,
                           names,                    cfg->n_broadcasters,
                           cfg->events.publish_mask, CBEV_VERSION,
                           cfg->events.state_dir};
  rc = cb2m_discovery_publish_with(&s, mqtt_publish_retained, mqtt, logger);
  free(names);
  return rc;
}

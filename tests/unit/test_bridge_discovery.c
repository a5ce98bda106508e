/*
 * Unit tests of Home Assistant discovery: every option of every component
 * is checked against the option names Home Assistant documents for its
 * platform (full name or abbreviation), required options are present,
 * unique ids are stable and distinct, the publish mask decides the event
 * entities and triggers, the prefix and base topic are used, and the
 * record of announced broadcasters decides what is cleared.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <mosquitto.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "discovery.h"
#include "mqtt.h"

#define ALL_TYPES ((1u << CBEV_EVENT_TYPE_COUNT) - 1u)
#define BIT(t) (1u << (t))

/* ---- Home Assistant's documented option names ---------------------------
 * From the MQTT integration's pages (binary_sensor.mqtt, sensor.mqtt,
 * event.mqtt, device_trigger.mqtt, and "device discovery payload",
 * "using availability topics", "origin" in integrations/mqtt), each as
 * "full|abbreviation" or the full name alone where none exists. */

/* Options every MQTT entity platform accepts. */
static const char *const k_entity_common[] = {
    "availability|avty", "availability_mode|avty_mode", "availability_template|avty_tpl",
    "availability_topic|avty_t", "device|dev", "enabled_by_default|en", "encoding|e",
    "entity_category|ent_cat", "entity_picture|ent_pic", "icon|ic",
    "json_attributes_template|json_attr_tpl", "json_attributes_topic|json_attr_t", "name",
    "object_id|obj_id", "default_entity_id|def_ent_id",
    "payload_available|pl_avail", "payload_not_available|pl_not_avail", "platform|p",
    "qos", "unique_id|uniq_id", NULL};

static const char *const k_binary_sensor[] = {
    "device_class|dev_cla", "expire_after|exp_aft", "force_update|frc_upd", "off_delay|off_dly",
    "payload_off|pl_off", "payload_on|pl_on", "state_topic|stat_t", "value_template|val_tpl",
    NULL};

static const char *const k_sensor[] = {
    "device_class|dev_cla", "expire_after|exp_aft", "force_update|frc_upd",
    "last_reset_value_template|lrst_val_tpl", "options|ops", "state_class|stat_cla",
    "state_topic|stat_t", "suggested_display_precision|sug_dsp_prc",
    "unit_of_measurement|unit_of_meas", "value_template|val_tpl", NULL};

static const char *const k_event[] = {"device_class|dev_cla", "event_types|evt_typ",
                                      "state_topic|stat_t", "value_template|val_tpl", NULL};

/* Device triggers are not entities: no name, unique id or availability. */
static const char *const k_device_automation[] = {
    "automation_type|atype", "device|dev", "payload|pl", "platform|p", "qos", "subtype|stype",
    "topic|t", "type", "value_template|val_tpl", NULL};

static const char *const k_device[] = {
    "configuration_url|cu", "connections|cns", "hw_version|hw", "identifiers|ids",
    "manufacturer|mf", "model|mdl", "model_id|mdl_id", "name", "serial_number|sn",
    "suggested_area|sa", "sw_version|sw", "via_device", NULL};

static const char *const k_origin[] = {"name", "sw_version|sw", "support_url|url", NULL};

static const char *const k_availability_item[] = {
    "topic|t", "payload_available|pl_avail", "payload_not_available|pl_not_avail",
    "value_template|val_tpl", NULL};

/* Root of a device-based payload: device, origin, components and the
 * options that may be shared by all components. */
static const char *const k_root[] = {
    "device|dev", "origin|o", "components|cmps", "availability|avty",
    "availability_mode|avty_mode", "availability_template|avty_tpl",
    "availability_topic|avty_t", "command_topic|cmd_t", "state_topic|stat_t", "qos",
    "encoding|e", NULL};

/* 1 when key is one of the "full|abbr" entries of list. */
static int in_list(const char *const *list, const char *key) {
  size_t klen = strlen(key);
  for (; *list; list++) {
    const char *e = *list, *bar = strchr(e, '|');
    size_t flen = bar ? (size_t)(bar - e) : strlen(e);
    if ((flen == klen && strncmp(e, key, klen) == 0) || (bar && strcmp(bar + 1, key) == 0))
      return 1;
  }
  return 0;
}

static void check_keys(const cJSON *obj, const char *const *a, const char *const *b,
                       const char *what) {
  const cJSON *it;
  assert_true(cJSON_IsObject(obj));
  cJSON_ArrayForEach(it, obj) {
    int ok = in_list(a, it->string) || (b && in_list(b, it->string));
    if (!ok)
      fail_msg("%s: option \"%s\" is not documented by Home Assistant", what, it->string);
  }
}

static const char *str(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *cmp(const cJSON *root, const char *id) {
  return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "components"),
                                          id);
}

static cJSON *device_config(const char *base, const char *b, unsigned mask) {
  cb2m_disc_input in = {base, b, mask, "1.2.3"};
  char *json = cb2m_discovery_device_json(&in);
  cJSON *root;
  assert_non_null(json);
  root = cJSON_Parse(json);
  cJSON_free(json);
  assert_non_null(root);
  return root;
}

static cJSON *bridge_config(const char *base) {
  char *json = cb2m_discovery_bridge_json(base, "1.2.3");
  cJSON *root;
  assert_non_null(json);
  root = cJSON_Parse(json);
  cJSON_free(json);
  assert_non_null(root);
  return root;
}

/* Checks one whole config against the documented names and the required
 * options of each platform. */
static void check_config(const cJSON *root) {
  const cJSON *c, *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
  const cJSON *origin = cJSON_GetObjectItemCaseSensitive(root, "origin");
  size_t n = 0;

  check_keys(root, k_root, NULL, "root");
  check_keys(dev, k_device, NULL, "device");
  check_keys(origin, k_origin, NULL, "origin");
  assert_non_null(str(origin, "name")); /* required by Home Assistant */
  assert_true(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(dev, "identifiers")) >= 1);

  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "components")) {
    const char *p = str(c, "platform");
    const cJSON *avty, *item;
    n++;
    assert_non_null(p);
    if (cJSON_GetArraySize(c) == 1)
      continue; /* a removal marker: {"platform": ...} only */
    if (strcmp(p, "device_automation") == 0) {
      check_keys(c, k_device_automation, NULL, c->string);
      assert_string_equal(str(c, "automation_type"), "trigger");
      assert_non_null(str(c, "topic"));
      assert_non_null(str(c, "type"));
      assert_non_null(str(c, "subtype"));
      continue;
    }
    if (strcmp(p, "binary_sensor") == 0)
      check_keys(c, k_entity_common, k_binary_sensor, c->string);
    else if (strcmp(p, "sensor") == 0)
      check_keys(c, k_entity_common, k_sensor, c->string);
    else if (strcmp(p, "event") == 0)
      check_keys(c, k_entity_common, k_event, c->string);
    else
      fail_msg("%s: unexpected platform %s", c->string, p);
    /* Entity-based components need a unique id in device discovery. */
    assert_non_null(str(c, "unique_id"));
    assert_non_null(str(c, "name"));
    assert_non_null(str(c, "state_topic"));
    avty = cJSON_GetObjectItemCaseSensitive(c, "availability");
    if (avty) {
      assert_string_equal(str(c, "availability_mode"), "all");
      cJSON_ArrayForEach(item, avty) {
        check_keys(item, k_availability_item, NULL, "availability");
        assert_non_null(str(item, "topic"));
      }
    }
    if (strcmp(p, "event") == 0)
      assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c, "event_types")));
  }
  assert_true(n > 0);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_keys_documented(void **state) {
  cJSON *root = device_config("cb", "alice", ALL_TYPES);
  cJSON *bridge = bridge_config("cb");
  (void)state;
  check_config(root);
  check_config(bridge);
  cJSON_Delete(root);
  cJSON_Delete(bridge);
}

static void test_checker_rejects_unknown_keys(void **state) {
  /* The allow-lists are the test's teeth: make sure they bite. */
  (void)state;
  assert_true(in_list(k_sensor, "state_class"));
  assert_true(in_list(k_sensor, "stat_cla"));
  assert_false(in_list(k_sensor, "stateclass"));
  assert_false(in_list(k_event, "payload_on"));
  assert_false(in_list(k_entity_common, "force_update"));
  assert_false(in_list(k_device_automation, "unique_id"));
}

static void test_device_and_origin(void **state) {
  cJSON *root = device_config("cb", "alice", ALL_TYPES);
  const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
  const cJSON *origin = cJSON_GetObjectItemCaseSensitive(root, "origin");
  const cJSON *ids = cJSON_GetObjectItemCaseSensitive(dev, "identifiers");
  (void)state;

  assert_int_equal(cJSON_GetArraySize(ids), 1);
  assert_string_equal(cJSON_GetArrayItem(ids, 0)->valuestring, "cb2mqtt_alice");
  assert_string_equal(str(dev, "manufacturer"), "cb2mqtt");
  assert_string_equal(str(dev, "model"), "Chaturbate broadcaster");
  assert_string_equal(str(dev, "sw_version"), "1.2.3");
  assert_string_equal(str(dev, "via_device"), CB2M_DISC_BRIDGE_ID);
  assert_non_null(strstr(str(dev, "name"), "alice"));
  assert_string_equal(str(origin, "name"), "cb2mqtt");
  assert_string_equal(str(origin, "sw_version"), "1.2.3");
  assert_string_equal(str(origin, "support_url"), CB2M_DISC_SUPPORT_URL);
  cJSON_Delete(root);
}

static void expect_avty(const cJSON *c, const char *t0, const char *t1) {
  const cJSON *avty = cJSON_GetObjectItemCaseSensitive(c, "availability");
  assert_int_equal(cJSON_GetArraySize(avty), t1 ? 2 : 1);
  assert_string_equal(str(cJSON_GetArrayItem(avty, 0), "topic"), t0);
  assert_string_equal(str(cJSON_GetArrayItem(avty, 0), "payload_available"), "online");
  assert_string_equal(str(cJSON_GetArrayItem(avty, 0), "payload_not_available"), "offline");
  if (t1)
    assert_string_equal(str(cJSON_GetArrayItem(avty, 1), "topic"), t1);
  assert_string_equal(str(c, "availability_mode"), "all");
}

static void test_availability(void **state) {
  cJSON *root = device_config("cb", "alice", ALL_TYPES);
  const cJSON *c;
  size_t both = 0;
  (void)state;

  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "components")) {
    const char *id = c->string;
    if (strcmp(str(c, "platform"), "device_automation") == 0) {
      assert_null(cJSON_GetObjectItemCaseSensitive(c, "availability"));
    } else if (!strcmp(id, "api_connected") || !strcmp(id, "queued") || !strcmp(id, "polls") ||
               !strcmp(id, "retries") || !strcmp(id, "last_event_age") ||
               !strcmp(id, "last_api_error") || !strcmp(id, "last_publish_error") ||
               !strcmp(id, "events_received")) {
      /* Connection diagnostics must stay visible while the feed is down. */
      expect_avty(c, "cb/bridge/status", NULL);
    } else {
      expect_avty(c, "cb/bridge/status", "cb/alice/availability");
      both++;
    }
  }
  /* 5 state entities + 12 event entities + Last event. */
  assert_int_equal(both, 5 + 12 + 1);
  cJSON_Delete(root);
}

static void collect_uids(const cJSON *root, char ***uids, size_t *n) {
  const cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "components")) {
    const char *u = str(c, "unique_id");
    if (!u)
      continue;
    *uids = realloc(*uids, (*n + 1) * sizeof **uids);
    assert_non_null(*uids);
    (*uids)[(*n)++] = strdup(u);
  }
}

static void test_unique_ids(void **state) {
  cb2m_disc_input a = {"cb", "alice", ALL_TYPES, "1.2.3"};
  cb2m_disc_input a2 = {"cb", "alice", ALL_TYPES, "9.9.9"};
  char *j1 = cb2m_discovery_device_json(&a), *j2 = cb2m_discovery_device_json(&a);
  char **uids = NULL;
  size_t n = 0, n_alice;
  cJSON *r1, *r2, *r3, *rb;
  (void)state;

  /* Same input, same bytes: a restart re-announces identical configs. */
  assert_string_equal(j1, j2);
  cJSON_free(j2);
  /* A new version changes device/origin but no unique id. */
  r1 = cJSON_Parse(j1);
  j2 = cb2m_discovery_device_json(&a2);
  r2 = cJSON_Parse(j2);
  {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r1, "components")) {
      const char *u = str(c, "unique_id");
      if (u)
        assert_string_equal(u, str(cmp(r2, c->string), "unique_id"));
    }
  }
  assert_string_equal(str(cmp(r1, "session_tokens"), "unique_id"),
                      "cb2mqtt_alice_session_tokens");
  assert_string_equal(str(cmp(r1, "event_tip"), "unique_id"), "cb2mqtt_alice_event_tip");

  /* Across broadcasters and the bridge, no unique id appears twice. */
  r3 = device_config("cb", "bob", ALL_TYPES);
  rb = bridge_config("cb");
  collect_uids(r1, &uids, &n);
  n_alice = n;
  collect_uids(r3, &uids, &n);
  assert_int_equal(n - n_alice, n_alice);
  collect_uids(rb, &uids, &n);
  for (size_t i = 0; i < n; i++)
    for (size_t k = i + 1; k < n; k++)
      if (strcmp(uids[i], uids[k]) == 0)
        fail_msg("duplicate unique_id %s", uids[i]);
  for (size_t i = 0; i < n; i++)
    free(uids[i]);
  free(uids);
  cJSON_free(j1);
  cJSON_free(j2);
  cJSON_Delete(r1);
  cJSON_Delete(r2);
  cJSON_Delete(r3);
  cJSON_Delete(rb);
}

/* A component that is announced, not a removal marker (platform only). */
static const cJSON *live(const cJSON *root, const char *id) {
  const cJSON *c = cmp(root, id);
  return cJSON_GetArraySize(c) > 1 ? c : NULL;
}

static size_t count_prefix(const cJSON *root, const char *prefix) {
  const cJSON *c;
  size_t n = 0;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "components")) {
    if (strncmp(c->string, prefix, strlen(prefix)) == 0 && cJSON_GetArraySize(c) > 1)
      n++;
  }
  return n;
}

static void test_publish_mask(void **state) {
  cJSON *root;
  const cJSON *ev;
  (void)state;

  root = device_config("cb", "alice", BIT(CBEV_EVENT_TIP) | BIT(CBEV_EVENT_FOLLOW) |
                                          BIT(CBEV_EVENT_CHAT_MESSAGE));
  assert_int_equal(count_prefix(root, "event_"), 3);
  assert_non_null(cmp(root, "event_tip"));
  assert_non_null(cmp(root, "event_follow"));
  assert_non_null(cmp(root, "event_chat_message"));
  assert_null(live(root, "event_unfollow"));
  /* chat_message has an event entity but no trigger. */
  assert_int_equal(count_prefix(root, "trigger_"), 2);
  assert_non_null(cmp(root, "trigger_tip"));
  assert_non_null(cmp(root, "trigger_follow"));
  assert_non_null(cmp(root, "last_tip"));
  ev = cmp(root, "event_follow");
  assert_string_equal(str(ev, "state_topic"), "cb/alice/follow");
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ev, "event_types")), 1);
  assert_string_equal(
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ev, "event_types"), 0)->valuestring,
      "follow");
  assert_non_null(strstr(str(ev, "value_template"), "value_json.event_type"));
  cJSON_Delete(root);

  /* Without tips: no tip event entity or trigger; Last tip reads the
   * state and stays. */
  root = device_config("cb", "alice", BIT(CBEV_EVENT_BROADCAST_STOP));
  assert_non_null(live(root, "last_tip"));
  assert_null(live(root, "event_tip"));
  assert_null(live(root, "trigger_tip"));
  assert_non_null(cmp(root, "trigger_broadcast_stop"));
  assert_int_equal(count_prefix(root, "event_"), 1);
  check_config(root);
  cJSON_Delete(root);

  /* All published: 12 event entities and the 8 documented triggers. */
  root = device_config("cb", "alice", ALL_TYPES);
  assert_int_equal(count_prefix(root, "event_"), 12);
  assert_int_equal(count_prefix(root, "trigger_"), 8);
  {
    static const char *const triggers[] = {"tip", "follow", "unfollow", "fanclub_join",
                                           "media_purchase", "broadcast_start",
                                           "broadcast_stop", "room_subject_change"};
    for (size_t i = 0; i < 8; i++) {
      char id[64], topic[96];
      const cJSON *t;
      snprintf(id, sizeof id, "trigger_%s", triggers[i]);
      snprintf(topic, sizeof topic, "cb/alice/%s", triggers[i]);
      t = cmp(root, id);
      assert_non_null(t);
      assert_string_equal(str(t, "topic"), topic);
      assert_string_equal(str(t, "type"), "received");
      assert_string_equal(str(t, "subtype"), triggers[i]);
    }
  }
  cJSON_Delete(root);

  /* Bits beyond the 12 known types are ignored. */
  root = device_config("cb", "alice", ~ALL_TYPES);
  assert_int_equal(count_prefix(root, "event_"), 0);
  assert_int_equal(count_prefix(root, "trigger_"), 0);
  cJSON_Delete(root);
}

static void check_topics_under(const cJSON *obj, const char *base) {
  const cJSON *it;
  cJSON_ArrayForEach(it, obj) {
    if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
      check_topics_under(it, base);
    } else if (it->string && cJSON_IsString(it) &&
               (strstr(it->string, "topic") || !strcmp(it->string, "topic"))) {
      if (strncmp(it->valuestring, base, strlen(base)) != 0 ||
          it->valuestring[strlen(base)] != '/')
        fail_msg("%s = %s is not under %s", it->string, it->valuestring, base);
    }
  }
}

static void test_base_topic_and_prefix(void **state) {
  cJSON *root = device_config("home/cb", "al-ice_2", ALL_TYPES);
  cJSON *bridge = bridge_config("home/cb");
  char *t;
  (void)state;

  check_topics_under(root, "home/cb");
  check_topics_under(bridge, "home/cb");
  assert_string_equal(str(cmp(root, "subject"), "state_topic"), "home/cb/al-ice_2/state/subject");
  assert_string_equal(str(cmp(root, "broadcasting"), "state_topic"),
                      "home/cb/al-ice_2/state/broadcasting");
  assert_string_equal(str(cmp(root, "api_connected"), "state_topic"),
                      "home/cb/al-ice_2/availability");
  assert_string_equal(str(cmp(root, "queued"), "state_topic"), "home/cb/al-ice_2/health");
  assert_string_equal(str(cmp(bridge, "status"), "state_topic"), "home/cb/bridge/status");

  t = cb2m_discovery_topic("ha", "cb2mqtt_alice");
  assert_string_equal(t, "ha/device/cb2mqtt_alice/config");
  free(t);
  t = cb2m_discovery_topic("homeassistant", CB2M_DISC_BRIDGE_ID);
  assert_string_equal(t, "homeassistant/device/cb2mqtt_bridge/config");
  free(t);
  cJSON_Delete(root);
  cJSON_Delete(bridge);
}

static void test_entities(void **state) {
  cJSON *root = device_config("cb", "alice", ALL_TYPES);
  const cJSON *c;
  (void)state;

  c = cmp(root, "broadcasting");
  assert_string_equal(str(c, "platform"), "binary_sensor");
  assert_string_equal(str(c, "payload_on"), "true");
  assert_string_equal(str(c, "payload_off"), "false");

  c = cmp(root, "subject");
  assert_string_equal(str(c, "platform"), "sensor");
  assert_non_null(strstr(str(c, "value_template"), "[:255]"));
  assert_string_equal(str(c, "json_attributes_topic"), "cb/alice/state");
  assert_non_null(strstr(str(c, "json_attributes_template"), "value_json.subject"));

  c = cmp(root, "session_tokens");
  assert_string_equal(str(c, "unit_of_measurement"), "tokens");
  assert_string_equal(str(c, "state_class"), "total_increasing");
  assert_string_equal(str(c, "state_topic"), "cb/alice/state/session_tokens");

  /* Last tip reads the retained state (its last_tip), whatever the
   * payload mode, so it survives a Home Assistant restart. */
  c = cmp(root, "last_tip");
  assert_string_equal(str(c, "state_topic"), "cb/alice/state");
  assert_string_equal(str(c, "unit_of_measurement"), "tokens");
  assert_string_equal(str(c, "state_class"), "measurement");
  assert_null(cJSON_GetObjectItemCaseSensitive(c, "force_update"));
  assert_non_null(strstr(str(c, "value_template"), "value_json.last_tip.tokens"));
  assert_string_equal(str(c, "json_attributes_topic"), "cb/alice/state");
  assert_non_null(strstr(str(c, "json_attributes_template"), "value_json.last_tip"));
  assert_non_null(strstr(str(c, "json_attributes_template"), "'username'"));
  assert_non_null(strstr(str(c, "json_attributes_template"), "'is_anon'"));
  assert_non_null(strstr(str(c, "json_attributes_template"), "'message'"));
  assert_non_null(strstr(str(c, "json_attributes_template"), "'at'"));

  c = cmp(root, "viewers");
  assert_string_equal(str(c, "name"), "Viewers (approximate)");
  assert_string_equal(str(c, "state_topic"), "cb/alice/state/viewers");

  c = cmp(root, "api_connected");
  assert_string_equal(str(c, "platform"), "binary_sensor");
  assert_string_equal(str(c, "device_class"), "connectivity");
  assert_string_equal(str(c, "payload_on"), "online");
  assert_string_equal(str(c, "payload_off"), "offline");
  assert_string_equal(str(c, "entity_category"), "diagnostic");

  c = cmp(root, "last_event");
  assert_string_equal(str(c, "device_class"), "timestamp");
  assert_string_equal(str(c, "state_topic"), "cb/alice/state");
  assert_non_null(strstr(str(c, "value_template"), "value_json.last_event_at"));
  assert_string_equal(str(c, "entity_category"), "diagnostic");

  /* Diagnostics read the broadcaster's own health topic. */
  c = cmp(root, "queued");
  assert_string_equal(str(c, "state_topic"), "cb/alice/health");
  assert_null(strstr(str(c, "value_template"), "broadcasters"));
  assert_non_null(strstr(str(c, "value_template"), "value_json.queued"));
  assert_string_equal(str(c, "entity_category"), "diagnostic");
  {
    static const char *const health_ids[] = {"queued",         "polls",
                                             "retries",        "last_event_age",
                                             "last_api_error", "last_publish_error",
                                             "events_received"};
    for (size_t i = 0; i < sizeof health_ids / sizeof health_ids[0]; i++) {
      c = cmp(root, health_ids[i]);
      assert_non_null(c);
      assert_string_equal(str(c, "state_topic"), "cb/alice/health");
      assert_null(strstr(str(c, "value_template"), "broadcasters"));
    }
  }
  c = cmp(root, "events_received");
  assert_string_equal(str(c, "json_attributes_topic"), "cb/alice/health");
  assert_null(strstr(str(c, "json_attributes_template"), "broadcasters"));

  /* An absent error renders None (unknown), never the text "none". */
  c = cmp(root, "last_api_error");
  assert_non_null(strstr(str(c, "value_template"), "value_json.last_api_error"));
  assert_null(strstr(str(c, "value_template"), "'none'"));
  assert_non_null(strstr(str(c, "value_template"), "none"));
  c = cmp(root, "last_publish_error");
  assert_null(strstr(str(c, "value_template"), "'none'"));
  assert_non_null(strstr(str(c, "value_template"), "value_json.last_publish_error"));

  /* Triggers: the subtype names what happened, the device already names
   * the broadcaster. */
  c = cmp(root, "trigger_tip");
  assert_string_equal(str(c, "platform"), "device_automation");
  assert_string_equal(str(c, "subtype"), "tip");
  assert_string_equal(str(c, "type"), "received");
  c = cmp(root, "trigger_follow");
  assert_string_equal(str(c, "subtype"), "follow");
  cJSON_Delete(root);
}

/* The recorder stays quiet: viewer-action event entities are disabled by
 * default, the others are on; every event entity has an mdi icon; HA
 * subscribes at QoS 1. */
static void test_recorder_and_icons(void **state) {
  cJSON *root = device_config("cb", "alice", ALL_TYPES);
  cJSON *bridge = bridge_config("cb");
  const cJSON *c;
  (void)state;

  assert_int_equal(cJSON_GetObjectItemCaseSensitive(root, "qos")->valueint, 1);
  assert_int_equal(cJSON_GetObjectItemCaseSensitive(bridge, "qos")->valueint, 1);
  for (int t = 0; t < (int)CBEV_EVENT_TYPE_COUNT; t++) {
    char id[64];
    const cJSON *en;
    int quiet = t == CBEV_EVENT_CHAT_MESSAGE || t == CBEV_EVENT_PRIVATE_MESSAGE ||
                t == CBEV_EVENT_USER_ENTER || t == CBEV_EVENT_USER_LEAVE;
    snprintf(id, sizeof id, "event_%s", cbev_event_type_name((cbev_event_type)t));
    c = cmp(root, id);
    assert_non_null(c);
    assert_non_null(str(c, "icon"));
    assert_int_equal(strncmp(str(c, "icon"), "mdi:", 4), 0);
    en = cJSON_GetObjectItemCaseSensitive(c, "enabled_by_default");
    if (quiet)
      assert_true(cJSON_IsFalse(en));
    else
      assert_null(en);
  }
  cJSON_Delete(root);
  cJSON_Delete(bridge);
}

/* A component that is no longer announced stays in the payload as
 * {"platform": ...} only, which Home Assistant reads as "remove it", so
 * nothing is left orphaned. */
static void test_removed_components(void **state) {
  cJSON *bridge = bridge_config("cb");
  cJSON *root = device_config("cb", "alice", BIT(CBEV_EVENT_FOLLOW));
  const cJSON *c;
  (void)state;

  c = cmp(bridge, "uptime");
  assert_non_null(c);
  assert_int_equal(cJSON_GetArraySize(c), 1);
  assert_string_equal(str(c, "platform"), "sensor");
  c = cmp(bridge, "mqtt_connected");
  assert_non_null(c);
  assert_int_equal(cJSON_GetArraySize(c), 1);
  assert_string_equal(str(c, "platform"), "binary_sensor");

  /* Unpublished types: their event entity and trigger are tombstones. */
  c = cmp(root, "event_tip");
  assert_non_null(c);
  assert_int_equal(cJSON_GetArraySize(c), 1);
  assert_string_equal(str(c, "platform"), "event");
  c = cmp(root, "trigger_tip");
  assert_int_equal(cJSON_GetArraySize(c), 1);
  assert_string_equal(str(c, "platform"), "device_automation");
  /* Last tip reads the state, which counts tips even when they are not
   * published: it stays. */
  assert_non_null(live(root, "last_tip"));
  assert_true(cJSON_GetArraySize(cmp(root, "event_follow")) > 1);
  cJSON_Delete(root);
  cJSON_Delete(bridge);
}

static void test_bridge_device(void **state) {
  cJSON *root = bridge_config("cb");
  const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
  const cJSON *c;
  (void)state;

  assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(dev, "identifiers"), 0)
                          ->valuestring,
                      CB2M_DISC_BRIDGE_ID);
  assert_null(cJSON_GetObjectItemCaseSensitive(dev, "via_device"));
  c = cmp(root, "status");
  assert_string_equal(str(c, "device_class"), "connectivity");
  assert_string_equal(str(c, "payload_on"), "online");
  assert_null(cJSON_GetObjectItemCaseSensitive(c, "availability"));
  /* The start is a timestamp read from the retained info, written once
   * per start rather than every health interval. */
  c = cmp(root, "started");
  assert_string_equal(str(c, "platform"), "sensor");
  assert_string_equal(str(c, "state_topic"), "cb/bridge/info");
  assert_non_null(strstr(str(c, "value_template"), "value_json.started_at"));
  assert_string_equal(str(c, "device_class"), "timestamp");
  assert_string_equal(str(c, "entity_category"), "diagnostic");
  assert_string_equal(str(c, "unique_id"), "cb2mqtt_bridge_started");
  expect_avty(c, "cb/bridge/status", NULL);
  c = cmp(root, "mqtt_reconnects");
  assert_string_equal(str(c, "state_topic"), "cb/bridge/health");
  assert_non_null(strstr(str(c, "value_template"), "value_json.mqtt.reconnects"));
  assert_string_equal(str(c, "entity_category"), "diagnostic");
  /* No entity reads mqtt.connected: it is only ever sent while true. */
  {
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "components")) {
      const char *vt = str(it, "value_template");
      assert_true(!vt || !strstr(vt, "mqtt.connected"));
      assert_true(!vt || !strstr(vt, "uptime_s"));
    }
  }
  cJSON_Delete(root);
}

static void test_invalid_inputs(void **state) {
  static const char *const bad[] = {"", "bridge", "a/b", "a+", "a#", "a b", "é",
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
  char long_base[CB2M_DISC_TOPIC_MAX];
  (void)state;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cb2m_disc_input in = {"cb", bad[i], ALL_TYPES, "1"};
    assert_null(cb2m_discovery_device_json(&in));
  }
  {
    /* 64 characters is the longest valid name. */
    cb2m_disc_input in = {"cb", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                          ALL_TYPES, "1"};
    char *json = cb2m_discovery_device_json(&in);
    assert_non_null(json);
    cJSON_free(json);
    in.broadcaster = NULL;
    assert_null(cb2m_discovery_device_json(&in));
  }
  {
    cb2m_disc_input in = {"cb/#", "alice", ALL_TYPES, "1"};
    assert_null(cb2m_discovery_device_json(&in));
    in.base_topic = "";
    assert_null(cb2m_discovery_device_json(&in));
    in.base_topic = "cb";
    in.sw_version = NULL;
    assert_null(cb2m_discovery_device_json(&in));
  }
  assert_null(cb2m_discovery_device_json(NULL));
  assert_null(cb2m_discovery_bridge_json("cb/+", "1"));
  assert_null(cb2m_discovery_bridge_json(NULL, "1"));
  memset(long_base, 'x', sizeof long_base - 1);
  long_base[sizeof long_base - 1] = '\0';
  assert_null(cb2m_discovery_bridge_json(long_base, "1"));
  assert_null(cb2m_discovery_topic(long_base, "cb2mqtt_alice"));
  assert_null(cb2m_discovery_topic("", "x"));
  assert_null(cb2m_discovery_topic("ha", NULL));
}

static void test_birth_message(void **state) {
  char *t;
  (void)state;

  t = cb2m_discovery_status_topic("homeassistant");
  assert_string_equal(t, "homeassistant/status");
  free(t);
  assert_null(cb2m_discovery_status_topic("ha/#"));
  assert_true(cb2m_discovery_is_birth("homeassistant", "homeassistant/status", "online", 6));
  assert_false(cb2m_discovery_is_birth("homeassistant", "homeassistant/status", "offline", 7));
  assert_false(cb2m_discovery_is_birth("homeassistant", "homeassistant/status", "online\n", 7));
  assert_false(cb2m_discovery_is_birth("homeassistant", "homeassistant/status", "onl", 3));
  assert_false(cb2m_discovery_is_birth("homeassistant", "homeassistant/status", NULL, 0));
  assert_false(cb2m_discovery_is_birth("homeassistant", "other/status", "online", 6));
  assert_false(cb2m_discovery_is_birth("home", "homeassistant/status", "online", 6));
  assert_false(cb2m_discovery_is_birth("homeassistant", "homeassistant/status/x", "online", 6));
  assert_false(cb2m_discovery_is_birth("ha", "cb/bridge/status", "online", 6));
  assert_true(cb2m_discovery_is_birth("my/ha", "my/ha/status", "online", 6));

  assert_int_equal(cb2m_discovery_birth_delay_ms(0), CB2M_DISC_BIRTH_DELAY_MIN_MS);
  assert_int_equal(cb2m_discovery_birth_delay_ms(
                       CB2M_DISC_BIRTH_DELAY_MAX_MS - CB2M_DISC_BIRTH_DELAY_MIN_MS),
                   CB2M_DISC_BIRTH_DELAY_MAX_MS);
  for (uint64_t r = 0; r < 100000; r += 7919) {
    unsigned d = cb2m_discovery_birth_delay_ms(r * 2654435761u);
    assert_true(d >= CB2M_DISC_BIRTH_DELAY_MIN_MS && d <= CB2M_DISC_BIRTH_DELAY_MAX_MS);
  }
  /* Different random numbers spread the answers. */
  assert_int_not_equal(cb2m_discovery_birth_delay_ms(1), cb2m_discovery_birth_delay_ms(2));
  assert_int_equal(cb2m_discovery_birth_delay_ms(UINT64_MAX) >= CB2M_DISC_BIRTH_DELAY_MIN_MS, 1);
}

/* ---- the record and what it clears ----------------------------------------- */

static void test_record_json_round_trip(void **state) {
  const char *names[] = {"alice", "bob"};
  cb2m_disc_record rec = {0};
  char *json = cb2m_disc_record_json("ha", names, 2);
  (void)state;

  assert_non_null(json);
  assert_int_equal(cb2m_disc_record_parse(json, strlen(json), &rec), CBEV_OK);
  assert_string_equal(rec.prefix, "ha");
  assert_int_equal(rec.n_names, 2);
  assert_string_equal(rec.names[0], "alice");
  assert_string_equal(rec.names[1], "bob");
  cb2m_disc_record_cleanup(&rec);
  cb2m_disc_record_cleanup(&rec); /* idempotent */
  cb2m_disc_record_cleanup(NULL);
  cJSON_free(json);
}

static void test_record_parse_hostile(void **state) {
  static const char text[] =
      "{\"prefix\":\"ha\",\"broadcasters\":[\"alice\",\"../etc\",\"bridge\",7,null,"
      "\"a/#\",\"alice\",\"carol\"]}";
  static const char *const bad[] = {"", "[]", "{}", "not json", "{\"prefix\":\"ha\"}",
                                    "{\"prefix\":\"ha/#\",\"broadcasters\":[]}",
                                    "{\"prefix\":1,\"broadcasters\":[]}",
                                    "{\"prefix\":\"ha\",\"broadcasters\":{}}"};
  cb2m_disc_record rec = {0};
  (void)state;

  assert_int_equal(cb2m_disc_record_parse(text, strlen(text), &rec), CBEV_OK);
  assert_int_equal(rec.n_names, 2);
  assert_string_equal(rec.names[0], "alice");
  assert_string_equal(rec.names[1], "carol");
  cb2m_disc_record_cleanup(&rec);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(cb2m_disc_record_parse(bad[i], strlen(bad[i]), &rec), CBEV_EPARSE);
    assert_null(rec.prefix);
    assert_int_equal(rec.n_names, 0);
  }
  /* A length shorter than the text: only that much is read. */
  assert_int_equal(cb2m_disc_record_parse(text, 10, &rec), CBEV_EPARSE);
}

static void test_stale(void **state) {
  static const char text[] = "{\"prefix\":\"ha\",\"broadcasters\":[\"alice\",\"bob\",\"carol\"]}";
  const char *now[] = {"carol", "dave", "alice"};
  const char *out[4];
  cb2m_disc_record rec = {0}, empty = {0};
  int clear_bridge = -1;
  (void)state;

  assert_int_equal(cb2m_disc_record_parse(text, strlen(text), &rec), CBEV_OK);
  /* Same prefix: only bob is gone. */
  assert_int_equal(cb2m_discovery_stale(&rec, "ha", now, 3, out, 4, &clear_bridge), 1);
  assert_string_equal(out[0], "bob");
  assert_int_equal(clear_bridge, 0);
  /* Nothing removed. */
  assert_int_equal(cb2m_discovery_stale(&rec, "ha", (const char *[]){"bob", "carol", "alice"},
                                        3, out, 4, &clear_bridge),
                   0);
  /* Every broadcaster removed. */
  assert_int_equal(cb2m_discovery_stale(&rec, "ha", NULL, 0, out, 4, &clear_bridge), 3);
  assert_string_equal(out[0], "alice");
  assert_string_equal(out[2], "carol");
  /* Prefix moved: everything under the old prefix goes, bridge included. */
  assert_int_equal(cb2m_discovery_stale(&rec, "homeassistant", now, 3, out, 4, &clear_bridge),
                   3);
  assert_int_equal(clear_bridge, 1);
  /* out_cap smaller than the answer: the count is still the total. */
  out[1] = "untouched";
  assert_int_equal(cb2m_discovery_stale(&rec, "other", now, 3, out, 1, NULL), 3);
  assert_string_equal(out[0], "alice");
  assert_string_equal(out[1], "untouched");
  /* First start: nothing recorded, nothing to clear. */
  assert_int_equal(cb2m_discovery_stale(&empty, "ha", now, 3, out, 4, &clear_bridge), 0);
  assert_int_equal(clear_bridge, 0);
  cb2m_disc_record_cleanup(&rec);
}

/* ---- the record file and the publish step ------------------------------------ */

typedef struct fake_broker {
  char *topics[64];
  char *payloads[64];
  size_t n;
  int fail_at;  /* 1-based call number that fails; 0: never */
  int fail_rc;
  int calls;
} fake_broker;

static int fake_publish(void *ud, const char *topic, const void *payload, size_t len) {
  fake_broker *fb = ud;
  fb->calls++;
  if (fb->fail_at && fb->calls >= fb->fail_at)
    return fb->fail_rc;
  assert_true(fb->n < 64);
  fb->topics[fb->n] = strdup(topic);
  fb->payloads[fb->n] = calloc(1, len + 1);
  memcpy(fb->payloads[fb->n], payload, len);
  fb->n++;
  return CBEV_OK;
}

static void fake_reset(fake_broker *fb) {
  for (size_t i = 0; i < fb->n; i++) {
    free(fb->topics[i]);
    free(fb->payloads[i]);
  }
  memset(fb, 0, sizeof *fb);
}

/* The payload published to topic, or NULL when none was. */
static const char *fake_get(const fake_broker *fb, const char *topic) {
  for (size_t i = 0; i < fb->n; i++)
    if (strcmp(fb->topics[i], topic) == 0)
      return fb->payloads[i];
  return NULL;
}

static size_t fake_count_empty(const fake_broker *fb) {
  size_t n = 0;
  for (size_t i = 0; i < fb->n; i++)
    n += fb->payloads[i][0] == '\0';
  return n;
}

typedef struct tmp_state {
  char dir[64];
  char path[128];
} tmp_state;

static int tmp_setup(void **state) {
  tmp_state *t = calloc(1, sizeof *t);
  assert_non_null(t);
  strcpy(t->dir, "/tmp/cb2m_disc_XXXXXX");
  assert_non_null(mkdtemp(t->dir));
  snprintf(t->path, sizeof t->path, "%s/%s", t->dir, CB2M_DISC_RECORD_FILE);
  *state = t;
  return 0;
}

static int tmp_teardown(void **state) {
  tmp_state *t = *state;
  unlink(t->path);
  /* rmdir fails when anything else was left behind. */
  assert_int_equal(rmdir(t->dir), 0);
  free(t);
  return 0;
}

static void expect_record(const char *dir, const char *prefix, const char *const *names,
                          size_t n) {
  cb2m_disc_record rec = {0};
  assert_int_equal(cb2m_disc_record_load(dir, &rec), CBEV_OK);
  assert_string_equal(rec.prefix, prefix);
  assert_int_equal(rec.n_names, n);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(rec.names[i], names[i]);
  cb2m_disc_record_cleanup(&rec);
}

static void test_record_file(void **state) {
  tmp_state *t = *state;
  const char *names[] = {"alice", "bob-2"};
  cb2m_disc_record rec = {0};
  FILE *f;

  assert_int_equal(cb2m_disc_record_load(t->dir, &rec), CBEV_ENOTFOUND);
  assert_int_equal(cb2m_disc_record_save(t->dir, "ha", names, 2), CBEV_OK);
  expect_record(t->dir, "ha", names, 2);
  /* Overwrite with fewer names: the old content is gone entirely. */
  assert_int_equal(cb2m_disc_record_save(t->dir, "ha", names, 1), CBEV_OK);
  expect_record(t->dir, "ha", names, 1);
  /* A file above the cap is refused, not parsed. */
  f = fopen(t->path, "wb");
  assert_non_null(f);
  for (size_t i = 0; i <= CB2M_DISC_RECORD_MAX_BYTES; i += 8)
    fputs("        ", f);
  fclose(f);
  assert_int_equal(cb2m_disc_record_load(t->dir, &rec), CBEV_ETOOBIG);
  /* A directory that does not exist: the write fails cleanly. */
  assert_int_equal(cb2m_disc_record_save("/nonexistent-dir", "ha", names, 1), CBEV_EIO);
}

static void test_publish_and_remove(void **state) {
  tmp_state *t = *state;
  const char *both[] = {"alice", "bob"}, *one[] = {"alice"};
  cb2m_disc_settings s = {"cb", "ha", both, 2, ALL_TYPES, "1.2.3", t->dir};
  fake_broker fb = {0};
  const char *p;

  /* First start: bridge + two devices, nothing cleared, record written. */
  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_OK);
  assert_int_equal(fb.n, 3);
  assert_string_equal(fb.topics[0], "ha/device/cb2mqtt_bridge/config");
  p = fake_get(&fb, "ha/device/cb2mqtt_bob/config");
  assert_non_null(p);
  assert_non_null(strstr(p, "\"cb2mqtt_bob_subject\""));
  assert_non_null(fake_get(&fb, "ha/device/cb2mqtt_alice/config"));
  assert_int_equal(fake_count_empty(&fb), 0);
  expect_record(t->dir, "ha", both, 2);
  fake_reset(&fb);

  /* bob removed from the settings: his config is cleared with an empty
   * payload, alice re-announced, the record shrinks. */
  s.names = one;
  s.n_names = 1;
  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_OK);
  assert_int_equal(fb.n, 3);
  p = fake_get(&fb, "ha/device/cb2mqtt_bob/config");
  assert_non_null(p);
  assert_string_equal(p, "");
  assert_int_equal(fake_count_empty(&fb), 1);
  assert_true(strlen(fake_get(&fb, "ha/device/cb2mqtt_alice/config")) > 100);
  expect_record(t->dir, "ha", one, 1);
  fake_reset(&fb);

  /* Next start: nothing left to clear. */
  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_OK);
  assert_int_equal(fb.n, 2);
  assert_int_equal(fake_count_empty(&fb), 0);
  fake_reset(&fb);

  /* Prefix moved: announced under the new one, everything under the old
   * one (alice and the bridge) cleared. */
  s.prefix = "homeassistant";
  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_OK);
  assert_int_equal(fb.n, 4);
  assert_string_equal(fake_get(&fb, "ha/device/cb2mqtt_alice/config"), "");
  assert_string_equal(fake_get(&fb, "ha/device/cb2mqtt_bridge/config"), "");
  assert_true(strlen(fake_get(&fb, "homeassistant/device/cb2mqtt_alice/config")) > 100);
  assert_true(strlen(fake_get(&fb, "homeassistant/device/cb2mqtt_bridge/config")) > 100);
  expect_record(t->dir, "homeassistant", one, 1);
  fake_reset(&fb);
}

static void test_publish_failure_keeps_record(void **state) {
  tmp_state *t = *state;
  const char *both[] = {"alice", "bob"}, *one[] = {"alice"};
  cb2m_disc_settings s = {"cb", "ha", both, 2, ALL_TYPES, "1.2.3", t->dir};
  fake_broker fb = {0};

  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_OK);
  fake_reset(&fb);

  /* Disconnected while clearing bob (the 3rd publish): the error comes
   * back and the record still lists bob... */
  s.names = one;
  s.n_names = 1;
  fb.fail_at = 3;
  fb.fail_rc = CBEV_EAGAIN;
  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_EAGAIN);
  assert_int_equal(fb.n, 2);
  assert_null(fake_get(&fb, "ha/device/cb2mqtt_bob/config"));
  expect_record(t->dir, "ha", both, 2);
  fake_reset(&fb);

  /* ...so the next attempt clears him. */
  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_OK);
  assert_string_equal(fake_get(&fb, "ha/device/cb2mqtt_bob/config"), "");
  expect_record(t->dir, "ha", one, 1);
  fake_reset(&fb);

  /* Failing at once: nothing more is sent after the first error. */
  fb.fail_at = 1;
  fb.fail_rc = CBEV_EAGAIN;
  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_EAGAIN);
  assert_int_equal(fb.calls, 1);
  fake_reset(&fb);
}

static void test_publish_bad_inputs(void **state) {
  tmp_state *t = *state;
  const char *bad[] = {"alice", "no/slash"};
  cb2m_disc_settings s = {"cb", "ha", bad, 2, ALL_TYPES, "1.2.3", t->dir};
  fake_broker fb = {0};
  cb2m_disc_record rec = {0};
  FILE *f;

  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_EINVAL);
  assert_int_equal(cb2m_disc_record_load(t->dir, &rec), CBEV_ENOTFOUND);
  fake_reset(&fb);
  s.n_names = 1;
  s.prefix = "ha/#";
  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_EINVAL);
  assert_int_equal(fb.calls, 0);
  assert_int_equal(cb2m_discovery_publish_with(NULL, fake_publish, &fb, NULL), CBEV_EINVAL);

  /* A corrupt record is ignored (nothing cleared) and replaced. */
  f = fopen(t->path, "wb");
  assert_non_null(f);
  fputs("{\"prefix\": \"ha\", \"broadcasters\": [\"bob\"", f);
  fclose(f);
  s.prefix = "ha";
  assert_int_equal(cb2m_discovery_publish_with(&s, fake_publish, &fb, NULL), CBEV_OK);
  assert_int_equal(fake_count_empty(&fb), 0);
  expect_record(t->dir, "ha", bad, 1);
  fake_reset(&fb);
}

/* The bridge's publish function: cb2m_mqtt_publish(), retained, QoS 1. */
static int mqtt_publish_retained(void *ud, const char *topic, const void *payload, size_t len) {
  return cb2m_mqtt_publish(ud, topic, payload, len, 1, 1, NULL);
}

static void test_publish_with_not_connected(void **state) {
  tmp_state *t = *state;
  const char *names[] = {"alice"};
  cb2m_disc_settings s = {"cb", "ha", names, 1, ALL_TYPES, "1.2.3", t->dir};
  char host[] = "127.0.0.1";
  cb2m_mqtt_opts o;
  cb2m_mqtt *m = NULL;
  cb2m_disc_record rec = {0};

  memset(&o, 0, sizeof o);
  o.host = host;
  o.port = 1;
  mosquitto_lib_init();
  assert_int_equal(cb2m_mqtt_new(&o, NULL, &m), CBEV_OK);
  /* Never serviced, so never connected: the client reports EAGAIN and
   * the record is left alone for the next attempt. */
  assert_int_equal(cb2m_discovery_publish_with(&s, mqtt_publish_retained, m, NULL), CBEV_EAGAIN);
  assert_int_equal(cb2m_disc_record_load(t->dir, &rec), CBEV_ENOTFOUND);
  assert_int_equal(cb2m_discovery_publish_with(&s, mqtt_publish_retained, NULL, NULL),
                   CBEV_EINVAL);
  assert_int_equal(cb2m_discovery_publish_with(NULL, mqtt_publish_retained, m, NULL),
                   CBEV_EINVAL);
  cb2m_mqtt_free(m);
  mosquitto_lib_cleanup();
}

/* The object id both the device config and its topic are named by. */
static void test_object_id(void **state) {
  char id[CB2M_DISC_OBJECT_ID_MAX], small[8];
  char longest[CB2M_NAME_MAX + 1];

  (void)state;
  assert_int_equal(cb2m_discovery_object_id("alice", id, sizeof id), CBEV_OK);
  assert_string_equal(id, "cb2mqtt_alice");
  memset(longest, 'a', CB2M_NAME_MAX);
  longest[CB2M_NAME_MAX] = '\0';
  assert_int_equal(cb2m_discovery_object_id(longest, id, sizeof id), CBEV_OK);
  assert_int_equal(strlen(id), strlen("cb2mqtt_") + CB2M_NAME_MAX);
  assert_int_equal(cb2m_discovery_object_id("alice", small, sizeof small), CBEV_EINVAL);
  assert_string_equal(small, "");
  assert_int_equal(cb2m_discovery_object_id("bridge", id, sizeof id), CBEV_EINVAL);
  assert_int_equal(cb2m_discovery_object_id("no/slash", id, sizeof id), CBEV_EINVAL);
  assert_int_equal(cb2m_discovery_object_id(NULL, id, sizeof id), CBEV_EINVAL);
  assert_int_equal(cb2m_discovery_object_id("alice", NULL, 16), CBEV_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keys_documented),
      cmocka_unit_test(test_checker_rejects_unknown_keys),
      cmocka_unit_test(test_device_and_origin),
      cmocka_unit_test(test_availability),
      cmocka_unit_test(test_unique_ids),
      cmocka_unit_test(test_publish_mask),
      cmocka_unit_test(test_base_topic_and_prefix),
      cmocka_unit_test(test_entities),
      cmocka_unit_test(test_bridge_device),
      cmocka_unit_test(test_recorder_and_icons),
      cmocka_unit_test(test_removed_components),
      cmocka_unit_test(test_invalid_inputs),
      cmocka_unit_test(test_birth_message),
      cmocka_unit_test(test_object_id),
      cmocka_unit_test(test_record_json_round_trip),
      cmocka_unit_test(test_record_parse_hostile),
      cmocka_unit_test(test_stale),
      cmocka_unit_test_setup_teardown(test_record_file, tmp_setup, tmp_teardown),
      cmocka_unit_test_setup_teardown(test_publish_and_remove, tmp_setup, tmp_teardown),
      cmocka_unit_test_setup_teardown(test_publish_failure_keeps_record, tmp_setup, tmp_teardown),
      cmocka_unit_test_setup_teardown(test_publish_bad_inputs, tmp_setup, tmp_teardown),
      cmocka_unit_test_setup_teardown(test_publish_with_not_connected, tmp_setup, tmp_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

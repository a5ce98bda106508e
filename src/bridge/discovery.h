/*
 * discovery.h: Home Assistant MQTT discovery for cb2mqtt.
 *
 * This module owns what Home Assistant is told about the bridge: one
 * device-based discovery message (`<prefix>/device/<object_id>/config`,
 * retained, QoS 1) for the bridge itself and one per broadcaster, and the
 * small record in `<state_dir>/discovery.json` that remembers which
 * broadcasters were announced, so a broadcaster removed from the settings has
 * its config cleared (empty retained payload) on the next start.
 *
 * The parts, one job each:
 *   discovery.c         the builders: pure, they turn plain inputs into
 *                       topic and payload strings and touch neither the
 *                       network nor the disk, so the JSON can be checked
 *                       key by key in unit tests;
 *   discovery_record.c  the record in state_dir, which configs are stale,
 *                       and cb2m_discovery_publish_with(), the one publish
 *                       step: plain settings and a publish function in,
 *                       so the module needs neither the MQTT client nor the
 *                       settings loader.
 *
 * Who frees what:
 *  - JSON texts (cb2m_discovery_device_json(), cb2m_discovery_bridge_json(),
 *    cb2m_disc_record_json()) are cJSON's output: cJSON_free() them, never
 *    free().
 *  - Topics (cb2m_discovery_topic(), cb2m_discovery_status_topic()) are
 *    malloc()'d: free() them.
 *  - A cb2m_disc_record owns its strings: cb2m_disc_record_cleanup().
 *
 * Return codes: functions returning int answer CBEV_* codes of
 * cbevents/error.h (0 = CBEV_OK), each listed at the function;
 * cb2m_discovery_is_birth() is a predicate (1/0).
 */
#ifndef CB2M_DISCOVERY_H
#define CB2M_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "cbevents/log.h"
#include "topics.h"

/* Object id of the bridge device in `<prefix>/device/<id>/config`. Each
 * broadcaster's is "cb2mqtt_<name>"; `bridge` is a reserved broadcaster
 * name, so the two can never collide. */
#define CB2M_DISC_BRIDGE_ID "cb2mqtt_bridge"

/* The support URL put in every origin block: the repository the Home
 * Assistant add-on store is given (`url` in cb2mqtt/config.yaml and
 * repository.yaml; the integration test keeps them equal). */
#define CB2M_DISC_SUPPORT_URL "https://github.com/cb2mqtt/cb2mqtt"

/* Caps: a topic we build, and the record file (names and bytes). */
#define CB2M_DISC_TOPIC_MAX 512
#define CB2M_DISC_RECORD_MAX_NAMES 4096
#define CB2M_DISC_RECORD_MAX_BYTES (1024 * 1024)

/* The file name of the record inside state_dir. */
#define CB2M_DISC_RECORD_FILE "discovery.json"

/* Everything one broadcaster's device config depends on. */
typedef struct cb2m_disc_input {
  const char *base_topic;  /* e.g. "cb"; the topics the entities read */
  const char *broadcaster; /* valid by cb2m_name_valid(); others are refused */
  unsigned publish_mask;   /* bit (1u << cbev_event_type) per published type */
  const char *sw_version;  /* cb2mqtt's version, for device and origin */
} cb2m_disc_input;

/* "<prefix>/device/<object_id>/config" (free() it), or NULL when an
 * argument is NULL or empty, or the topic would exceed CB2M_DISC_TOPIC_MAX,
 * or on ENOMEM. */
char *cb2m_discovery_topic(const char *prefix, const char *object_id);

/* Room for a broadcaster's object id: "cb2mqtt_", the name, the NUL. */
#define CB2M_DISC_OBJECT_ID_MAX (sizeof "cb2mqtt_" + CB2M_NAME_MAX)

/* Writes the object id of broadcaster's device, "cb2mqtt_<broadcaster>",
 * into buf (cap bytes; CB2M_DISC_OBJECT_ID_MAX always fits). Returns
 * CBEV_OK, or CBEV_EINVAL (buf left "" when cap > 0) when broadcaster is
 * refused by cb2m_name_valid(), buf is NULL or cap too small. */
int cb2m_discovery_object_id(const char *broadcaster, char *buf, size_t cap);

/* The device config of one broadcaster (object id "cb2mqtt_<b>"):
 * binary_sensor Broadcasting; sensors Subject, Session tokens, Viewers
 * (approximate) and Last tip (from the retained state); one event entity
 * per published event type; device triggers for tip, follow, unfollow,
 * fanclub_join, media_purchase, broadcast_start, broadcast_stop and
 * room_subject_change when published (type "received", subtype the event
 * type); diagnostics API connected, Last event and, from <base>/<b>/health,
 * Queued events, Polls, Retries, Last event age, Last API error, Last
 * publish error, Events received. Event entities and triggers of types not
 * published are announced as {"platform": ...} only, which removes them
 * from Home Assistant. The root carries "qos": 1. Returns compact JSON
 * (cJSON_free() it), or NULL when an input is missing or invalid, or on
 * ENOMEM. */
char *cb2m_discovery_device_json(const cb2m_disc_input *in);

/* The bridge device config (object id CB2M_DISC_BRIDGE_ID): connectivity
 * from <base>/bridge/status, Started (timestamp, started_at of the retained
 * <base>/bridge/info) and MQTT reconnects from <base>/bridge/health; the
 * retired Uptime and MQTT connected as removal markers. Compact JSON
 * (cJSON_free() it), or NULL when an argument is NULL or empty, or on
 * ENOMEM. */
char *cb2m_discovery_bridge_json(const char *base_topic, const char *sw_version);

/* Home Assistant's birth message: after "online" on "<prefix>/status" the
 * configs and state are published again, after a random delay of
 * CB2M_DISC_BIRTH_DELAY_MIN_MS..CB2M_DISC_BIRTH_DELAY_MAX_MS so that the
 * many clients answering the same birth do not all publish at once. */
#define CB2M_DISC_BIRTH_DELAY_MIN_MS 1000u
#define CB2M_DISC_BIRTH_DELAY_MAX_MS 5000u

/* "<prefix>/status" (the topic to subscribe to; free() it), or NULL for an
 * invalid prefix or on ENOMEM. */
char *cb2m_discovery_status_topic(const char *prefix);

/* 1 when a message on topic with payload (len bytes, not NUL-terminated)
 * is Home Assistant's birth message for prefix: the topic is
 * "<prefix>/status" and the payload exactly "online". Else 0. */
int cb2m_discovery_is_birth(const char *prefix, const char *topic, const void *payload,
                            size_t len);

/* The delay before answering a birth message, from any random number rnd:
 * within [CB2M_DISC_BIRTH_DELAY_MIN_MS, CB2M_DISC_BIRTH_DELAY_MAX_MS]. */
unsigned cb2m_discovery_birth_delay_ms(uint64_t rnd);

/* What discovery.json remembers: the prefix the configs were published
 * under and the broadcasters announced there. */
typedef struct cb2m_disc_record {
  char *prefix;  /* NULL when the record is empty */
  char **names;  /* n_names valid broadcaster names */
  size_t n_names;
} cb2m_disc_record;

/* Frees what the record holds and empties it. NULL is fine. */
void cb2m_disc_record_cleanup(cb2m_disc_record *rec);

/* Serializes prefix and names to the record's JSON
 * ({"prefix": "...", "broadcasters": ["...", ...]}; cJSON_free() it). NULL
 * on ENOMEM or when prefix is NULL. */
char *cb2m_disc_record_json(const char *prefix, const char *const *names, size_t n_names);

/* Parses the record's JSON into *out (which must be zeroed or cleaned up).
 * Names that are not valid broadcaster names, duplicates and names beyond
 * CB2M_DISC_RECORD_MAX_NAMES are dropped: the file is only a hint and must
 * never put a bad level in a topic. Returns CBEV_OK, CBEV_EPARSE when the
 * text is not such an object (*out stays empty), CBEV_ENOMEM. */
int cb2m_disc_record_parse(const char *text, size_t len, cb2m_disc_record *out);

/* Reads and parses <state_dir>/CB2M_DISC_RECORD_FILE into *out (emptied
 * first). Returns CBEV_OK; CBEV_ENOTFOUND when the file does not exist (the
 * first start); CBEV_EIO when it cannot be read or the path does not fit
 * CB2M_PATH_MAX; CBEV_ETOOBIG beyond CB2M_DISC_RECORD_MAX_BYTES;
 * CBEV_ENOMEM; CBEV_EPARSE as cb2m_disc_record_parse(). */
int cb2m_disc_record_load(const char *state_dir, cb2m_disc_record *out);

/* Writes <state_dir>/CB2M_DISC_RECORD_FILE atomically (cb2m_write_atomic:
 * temp file, fsync, rename). Returns CBEV_OK; CBEV_ENOMEM when the JSON
 * cannot be made (also for a NULL prefix); CBEV_EIO when the file cannot
 * be written (the old one stays). */
int cb2m_disc_record_save(const char *state_dir, const char *prefix, const char *const *names,
                          size_t n_names);

/* The two above on another file name in state_dir (a record of the same
 * shape, e.g. the retained topics' record of retained.h), with the same
 * return codes. */
int cb2m_disc_record_load_from(const char *state_dir, const char *file, cb2m_disc_record *out);
int cb2m_disc_record_save_to(const char *state_dir, const char *file, const char *prefix,
                             const char *const *names, size_t n_names);

/* Which announced configs must be cleared: the names of old (pointers into
 * old, in its order) that are not among names, or all of old's names when
 * the prefix changed (their configs live under the old prefix). At most
 * out_cap are written to out; returns how many there are in total.
 * *clear_bridge (may be NULL) is set to 1 when the bridge device must be
 * cleared under old->prefix too, i.e. when the prefix changed. */
size_t cb2m_discovery_stale(const cb2m_disc_record *old, const char *prefix,
                            const char *const *names, size_t n_names, const char **out,
                            size_t out_cap, int *clear_bridge);

/* What the publish step needs from the settings, as plain values. */
typedef struct cb2m_disc_settings {
  const char *base_topic;
  const char *prefix;            /* Home Assistant's discovery prefix */
  const char *const *names;      /* configured broadcasters */
  size_t n_names;
  unsigned publish_mask;         /* as in cb2m_disc_input */
  const char *sw_version;
  const char *state_dir;         /* where CB2M_DISC_RECORD_FILE lives */
} cb2m_disc_settings;

/* Sends one retained QoS 1 message (len bytes of payload, not
 * NUL-terminated; len 0: the empty payload that removes a config). Returns
 * CBEV_OK or a CBEV_* error code (CBEV_EAGAIN when not connected), which
 * cb2m_discovery_publish_with() passes on. The bridge's is
 * cb2m_mqtt_publish(..., qos 1, retain 1, ...). */
typedef int (*cb2m_disc_publish_fn)(void *ud, const char *topic, const void *payload,
                                    size_t len);

/* The publish step, the one the bridge and the tests use: publishes
 * (through publish, with ud) the bridge config and one config per
 * broadcaster, clears (empty payload) the configs the record in state_dir
 * lists but the settings no longer have (under the recorded prefix), and
 * rewrites the record only when every publish succeeded, so a clear that
 * could not be sent is retried next time. An unreadable or corrupt record
 * is logged and treated as empty. Returns CBEV_OK; the first error of
 * publish (nothing more is sent after it); CBEV_EINVAL when s or publish
 * is NULL or a setting is refused by the builders (logged); CBEV_ENOMEM;
 * CBEV_EIO when the record cannot be written (the configs were
 * published). */
int cb2m_discovery_publish_with(const cb2m_disc_settings *s, cb2m_disc_publish_fn publish,
                                void *ud, const cbev_logger *logger);

#endif

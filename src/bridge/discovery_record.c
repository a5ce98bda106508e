/*
 * discovery_record.c: what Home Assistant was told, and the publish step
 * that keeps it so. This file owns the record of announced broadcasters
 * (<state_dir>/discovery.json, and the same shape under other names for
 * retained.c), the rule that decides which announced configs are stale,
 * and cb2m_discovery_publish_with(), which publishes the payloads of
 * discovery.c through any publish function and then rewrites the record.
 * It knows nothing of MQTT or of the settings: the caller hands both in.
 * See discovery.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/error.h"
#include "discovery.h"
#include "fsutil.h"
#include "topics.h"

/* A prefix we put configs under: the base topic rules of topics.h. */
static int topic_root_ok(const char *t) { return cb2m_topic_base_check(t, NULL, 0) == CBEV_OK; }

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
  char *printed = NULL;

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
out:
  cJSON_Delete(root);
  return printed;
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
  char path[CB2M_PATH_MAX];
  char *buf = NULL;
  size_t len = 0;
  int n, rc;

  memset(out, 0, sizeof *out);
  n = snprintf(path, sizeof path, "%s/%s", state_dir, file);
  if (n < 0 || (size_t)n >= sizeof path)
    return CBEV_EIO;
  /* cb2m_read_file()'s codes are this function's: ENOTFOUND, ETOOBIG,
   * ENOMEM, EIO. */
  rc = cb2m_read_file(path, CB2M_DISC_RECORD_MAX_BYTES, &buf, &len);
  if (rc != CBEV_OK)
    return rc;
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
  cJSON_free(json);
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
  char path[CB2M_PATH_MAX], object_id[CB2M_DISC_OBJECT_ID_MAX];
  char *json = NULL; /* cJSON's allocation */
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

    cJSON_free(json);
    json = NULL;
    if (cb2m_discovery_object_id(s->names[i], object_id, sizeof object_id) != CBEV_OK) {
      cbev_log(logger, NULL, CBEV_LOG_ERROR,
               "discovery: broadcaster name \"%s\" cannot be announced; skipped", s->names[i]);
      rc = CBEV_EINVAL;
      goto out;
    }
    rc = CBEV_ENOMEM;
    json = cb2m_discovery_device_json(&in);
    if (!json)
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
    /* The record only ever holds valid names (cb2m_disc_record_parse). */
    rc = cb2m_discovery_object_id(stale[i], object_id, sizeof object_id);
    if (rc != CBEV_OK)
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
  cJSON_free(json);
  cb2m_disc_record_cleanup(&old);
  return rc;
}


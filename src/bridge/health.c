/*
 * health.c: the health topics' JSON. See health.h. Keys are always
 * present; what is unknown is null, so Home Assistant's templates show
 * "unknown" rather than a text such as "none".
 */
#include <cjson/cJSON.h>

#include "cbevents/event.h"
#include "health.h"

static void iso(time_t t, char *buf, size_t size) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *cb2m_health_broadcaster_json(const cb2m_bc_health *h) {
  cJSON *o = cJSON_CreateObject(), *ev, *e;
  char *text = NULL, at[32];
  const cb2m_publish_error *pe = h->last_publish_error;
  uint64_t retries = 0;

  /* Every failed poll is retried (the daemon retries forever), so the
   * retries are the failed polls, counted once, by reason. */
  for (int r = 0; r < CB2M_POLL_REASON_COUNT; r++)
    retries += h->m->poll_errors[r];

  if (!o)
    return NULL;
  cJSON_AddBoolToObject(o, "available", h->available);
  cJSON_AddNumberToObject(o, "polls", (double)h->m->polls);
  cJSON_AddNumberToObject(o, "retries", (double)retries);
  cJSON_AddNumberToObject(o, "queued", (double)h->queued);
  if (h->last_event_age_s >= 0)
    cJSON_AddNumberToObject(o, "last_event_age_s", (double)h->last_event_age_s);
  else
    cJSON_AddNullToObject(o, "last_event_age_s");
  if (h->last_api_error_rc) {
    e = cJSON_AddObjectToObject(o, "last_api_error");
    cJSON_AddStringToObject(e, "error", h->last_api_error ? h->last_api_error : "");
    cJSON_AddNumberToObject(e, "http_status", (double)h->last_api_error_status);
  } else {
    cJSON_AddNullToObject(o, "last_api_error");
  }
  if (pe && pe->at) {
    e = cJSON_AddObjectToObject(o, "last_publish_error");
    iso(pe->at, at, sizeof at);
    cJSON_AddStringToObject(e, "topic", pe->topic);
    cJSON_AddNumberToObject(e, "reason_code", pe->reason_code);
    cJSON_AddStringToObject(e, "reason", pe->reason);
    cJSON_AddStringToObject(e, "at", at);
  } else {
    cJSON_AddNullToObject(o, "last_publish_error");
  }
  ev = cJSON_AddObjectToObject(o, "events");
  for (int t = 0; ev && t <= CBEV_EVENT_UNKNOWN; t++)
    if (h->m->events_by_type[t])
      cJSON_AddNumberToObject(ev, cbev_event_type_name((cbev_event_type)t),
                              (double)h->m->events_by_type[t]);
  text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

char *cb2m_health_bridge_json(uint64_t uptime_s, int mqtt_connected, uint64_t reconnects,
                              size_t total, size_t online, size_t failing) {
  cJSON *o = cJSON_CreateObject(), *mq, *bs;
  char *text;

  if (!o)
    return NULL;
  cJSON_AddNumberToObject(o, "uptime_s", (double)uptime_s);
  mq = cJSON_AddObjectToObject(o, "mqtt");
  cJSON_AddBoolToObject(mq, "connected", mqtt_connected);
  cJSON_AddNumberToObject(mq, "reconnects", (double)reconnects);
  bs = cJSON_AddObjectToObject(o, "broadcasters");
  cJSON_AddNumberToObject(bs, "total", (double)total);
  cJSON_AddNumberToObject(bs, "online", (double)online);
  cJSON_AddNumberToObject(bs, "failing", (double)failing);
  text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

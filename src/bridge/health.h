/*
 * health.h: the JSON of the retained health topics (SPEC 5, Topics).
 *
 *   <base>/<b>/health     one broadcaster: small, so Home Assistant's
 *                         per-broadcaster diagnostics parse only their own
 *   <base>/bridge/health  the bridge's own part and counts
 *
 * Pure formatting: the bridge hands in what it counted. Both functions
 * return a new NUL-terminated string that the caller frees with
 * cJSON_free() (it is cJSON's output), or NULL on out of memory.
 */
#ifndef CB2M_HEALTH_H
#define CB2M_HEALTH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "metrics.h"

/* The last publish the broker refused; at == 0: none yet. */
typedef struct cb2m_publish_error {
  char topic[512];
  int reason_code; /* MQTT v5 reason code, or -1 when refused before the broker */
  char reason[96];
  time_t at;
} cb2m_publish_error;

typedef struct cb2m_bc_health {
  const cb2m_bc_metrics *m; /* events by type, polls; retries = the failed polls */
  int available;
  size_t queued;
  long long last_event_age_s; /* -1: no event yet (null) */
  int last_api_error_rc;      /* 0: none (null) */
  long last_api_error_status;
  const char *last_api_error; /* its text (cbev_strerror) */
  const cb2m_publish_error *last_publish_error;
} cb2m_bc_health;

char *cb2m_health_broadcaster_json(const cb2m_bc_health *h);

char *cb2m_health_bridge_json(uint64_t uptime_s, int mqtt_connected, uint64_t reconnects,
                              size_t total, size_t online, size_t failing);

#endif

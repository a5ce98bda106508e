/* heartbeat.c: liveness for Docker's HEALTHCHECK. See heartbeat.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fsutil.h"
#include "heartbeat.h"

int cb2m_heartbeat_write(const char *dir, int connected, time_t now) {
  char text[128];
  int n = snprintf(text, sizeof text, "{\"pid\":%ld,\"connected\":%s,\"at\":%lld}\n",
                   (long)getpid(), connected ? "true" : "false", (long long)now);
  return cb2m_write_atomic(dir, "heartbeat", text, (size_t)n, 0644);
}

int cb2m_heartbeat_check(const char *dir, time_t now, int max_age_s, char *why, size_t size) {
  char path[4096];
  char *text = NULL;
  cJSON *o = NULL;
  const cJSON *at, *conn;
  int rc = 1;

  snprintf(path, sizeof path, "%s/heartbeat", dir);
  if (cb2m_read_file(path, 4096, &text, NULL) != 0) {
    snprintf(why, size, "unhealthy: no heartbeat file in %s (is the bridge running?)", dir);
    return 1;
  }
  o = cJSON_Parse(text);
  at = cJSON_GetObjectItemCaseSensitive(o, "at");
  conn = cJSON_GetObjectItemCaseSensitive(o, "connected");
  if (!cJSON_IsNumber(at) || !cJSON_IsBool(conn))
    snprintf(why, size, "unhealthy: the heartbeat file is not readable");
  else if ((double)now - at->valuedouble >= max_age_s)
    snprintf(why, size, "unhealthy: last heartbeat %.0f s ago (limit %d s)",
             (double)now - at->valuedouble, max_age_s);
  else if (!cJSON_IsTrue(conn))
    snprintf(why, size, "unhealthy: not connected to the MQTT broker");
  else {
    snprintf(why, size, "healthy: heartbeat %.0f s ago, connected", (double)now - at->valuedouble);
    rc = 0;
  }
  cJSON_Delete(o);
  free(text);
  return rc;
}

/*
 * heartbeat.c: liveness for Docker's HEALTHCHECK and systemd watchers. A
 * file rather than a socket or signal: the check must work from a second
 * process with nothing but read access to state_dir. See heartbeat.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fsutil.h"
#include "heartbeat.h"

#define HEARTBEAT_MAX_BYTES 4096
/* Epoch seconds beyond this are not a time this program wrote. */
#define EPOCH_MAX 1e11

int cb2m_heartbeat_write(const char *dir, int connected, time_t now) {
  char text[128];
  int n = snprintf(text, sizeof text, "{\"pid\":%ld,\"connected\":%s,\"at\":%lld}\n",
                   (long)getpid(), connected ? "true" : "false", (long long)now);

  if (n < 0 || (size_t)n >= sizeof text) {
    errno = EOVERFLOW;
    return CBEV_EIO;
  }
  return cb2m_write_atomic(dir, CB2M_HEARTBEAT_FILE, text, (size_t)n, 0644);
}

static int say(char *why, size_t size, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int say(char *why, size_t size, int rc, const char *fmt, ...) {
  va_list ap;

  if (why && size) {
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
  }
  return rc;
}

int cb2m_heartbeat_check(const char *dir, time_t now, int max_age_s, char *why, size_t size) {
  char path[CB2M_PATH_MAX];
  char *text = NULL;
  size_t len = 0;
  cJSON *o = NULL;
  const cJSON *at, *conn;
  double age;
  int rc, n;

  if (!dir || !*dir)
    return say(why, size, CBEV_EINVAL, "unhealthy: no state_dir configured");
  n = snprintf(path, sizeof path, "%s/%s", dir, CB2M_HEARTBEAT_FILE);
  if (n < 0 || (size_t)n >= sizeof path)
    return say(why, size, CBEV_EINVAL, "unhealthy: state_dir path too long");
  rc = cb2m_read_file(path, HEARTBEAT_MAX_BYTES, &text, &len);
  if (rc == CBEV_ENOTFOUND)
    return say(why, size, rc, "unhealthy: no heartbeat file in %s (is the bridge running?)", dir);
  if (rc != CBEV_OK)
    return say(why, size, CBEV_EIO, "unhealthy: cannot read %s: %s", path, strerror(errno));
  o = cJSON_ParseWithLength(text, len);
  at = cJSON_GetObjectItemCaseSensitive(o, "at");
  conn = cJSON_GetObjectItemCaseSensitive(o, "connected");
  if (!cJSON_IsObject(o) || !cJSON_IsNumber(at) || !cJSON_IsBool(conn) || !(at->valuedouble >= 0) ||
      at->valuedouble > EPOCH_MAX) {
    rc = say(why, size, CBEV_EPARSE, "unhealthy: %s is not a heartbeat this bridge wrote", path);
    goto out;
  }
  age = (double)now - at->valuedouble;
  if (age >= (double)max_age_s)
    rc = say(why, size, CBEV_EAGAIN, "unhealthy: last heartbeat %.0f s ago (limit %d s)", age,
             max_age_s);
  else if (!cJSON_IsTrue(conn))
    rc = say(why, size, CBEV_EAGAIN, "unhealthy: the bridge is not connected to the MQTT broker");
  else
    rc = say(why, size, CBEV_OK, "healthy: heartbeat %.0f s ago, connected to the broker",
             age > 0 ? age : 0.0);
out:
  cJSON_Delete(o);
  free(text);
  return rc;
}

/*
 * config.c: the settings table and its readers (INI via inih, environment,
 * command line), validation, --print-config and --help.
 *
 * Every value is first collected as text with its source, so precedence is
 * only "later source wins" (defaults, file, environment, command line);
 * then one pass converts and validates everything from the same table.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ini.h>

#include "cbevents/event.h"
#include "cbevents/session.h"
#include "cbevents/ratelimit.h"
#include "config.h"
#include "fsutil.h"
#include "topics.h"

#define DEFAULT_CONFIG_FILE "/etc/cb2mqtt/cb2mqtt.ini"
#define CONFIG_FILE_MAX (1024 * 1024)
#define SECRET_FILE_MAX (64 * 1024)
#define INI_LINE_MAX 199 /* Debian's inih cuts longer lines */
#define MAX_BROADCASTERS 10000

typedef enum ktype { T_STR, T_BOOL, T_INT, T_DOUBLE } ktype;
typedef enum ksrc { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_FLAG } ksrc;

typedef struct key_def {
  const char *section, *key;
  ktype type;
  const char *def;
  double min, max;
  int secret;   /* masked in output; also accepts <key>_file */
  size_t off;   /* into cb2m_config: char * for T_STR, int or double otherwise */
  const char *help;
} key_def;

#define OFF(f) offsetof(cb2m_config, f)

static const key_def KEYS[] = {
    {"mqtt", "url", T_STR, "mqtt://localhost:1883", 0, 0, 0, OFF(mqtt.url),
     "broker: mqtt://host[:port] or mqtts://host[:port] (default ports 1883, 8883)"},
    {"mqtt", "username", T_STR, "", 0, 0, 0, OFF(mqtt.username), "broker user name"},
    {"mqtt", "password", T_STR, "", 0, 0, 1, OFF(mqtt.password), "broker password (or password_file)"},
    {"mqtt", "client_id", T_STR, "", 0, 0, 0, OFF(mqtt.client_id), "default: cb2mqtt-<hostname>"},
    {"mqtt", "base_topic", T_STR, "cb", 0, 0, 0, OFF(mqtt.base_topic), "first level of every topic"},
    {"mqtt", "qos", T_INT, "1", 0, 2, 0, OFF(mqtt.qos), "QoS of event messages (state and discovery use 1)"},
    {"mqtt", "protocol", T_INT, "5", 5, 311, 0, OFF(mqtt.protocol), "5 or 311 (5 falls back to 3.1.1)"},
    {"mqtt", "keepalive", T_INT, "60", 5, 65535, 0, OFF(mqtt.keepalive), "seconds"},
    {"mqtt", "ca_file", T_STR, "", 0, 0, 0, OFF(mqtt.ca_file), "CA bundle for mqtts:// (default: system CAs)"},
    {"mqtt", "cert_file", T_STR, "", 0, 0, 0, OFF(mqtt.cert_file), "client certificate"},
    {"mqtt", "key_file", T_STR, "", 0, 0, 0, OFF(mqtt.key_file), "client key"},
    {"mqtt", "tls_insecure", T_BOOL, "false", 0, 1, 0, OFF(mqtt.tls_insecure), "skip the broker host name check"},
    {"mqtt", "health_interval", T_INT, "60", 5, 86400, 0, OFF(mqtt.health_interval),
     "seconds between retained cb/bridge/health messages"},
    {"events", "api", T_STR, "production", 0, 0, 0, OFF(events.api), "production | testbed | a base URL"},
    {"events", "timeout", T_INT, "10", 0, 90, 0, OFF(events.timeout), "long-poll seconds"},
    {"events", "retry_backoff", T_DOUBLE, "1.0", 0.001, 3600, 0, OFF(events.retry_backoff), "first retry delay, seconds"},
    {"events", "retry_factor", T_DOUBLE, "2.0", 1, 100, 0, OFF(events.retry_factor), "delay multiplier per retry"},
    {"events", "retry_max_delay", T_DOUBLE, "60", 0.001, 86400, 0, OFF(events.retry_max_delay), "retry delay cap, seconds"},
    {"events", "rate_limit", T_STR, "2000/60", 0, 0, 0, OFF(events.rate_limit), "requests/seconds per broadcaster"},
    {"events", "shared_rate_limit", T_BOOL, "false", 0, 1, 0, OFF(events.shared_rate_limit),
     "one limiter for all broadcasters instead of one each"},
    {"events", "ca_file", T_STR, "", 0, 0, 0, OFF(events.ca_file), "extra CA bundle for the API"},
    {"events", "publish", T_STR, "all", 0, 0, 0, OFF(events.publish), "all, or a comma list of event types"},
    {"events", "payload", T_STR, "normalized", 0, 0, 0, OFF(events.payload), "normalized | raw"},
    {"events", "expose_anonymous_tippers", T_BOOL, "false", 0, 1, 0, OFF(events.expose_anonymous_tippers),
     "publish the user of anonymous tips"},
    {"events", "state_dir", T_STR, "/var/lib/cb2mqtt", 0, 0, 0, OFF(events.state_dir), "cursors and state"},
    {"events", "max_queued", T_INT, "10000", 1, 1000000, 0, OFF(events.max_queued),
     "events held per broadcaster while the broker is away"},
    {"homeassistant", "discovery", T_BOOL, "true", 0, 1, 0, OFF(homeassistant.discovery), "MQTT discovery"},
    {"homeassistant", "prefix", T_STR, "homeassistant", 0, 0, 0, OFF(homeassistant.prefix), "discovery prefix"},
    {"log", "level", T_STR, "info", 0, 0, 0, OFF(log.level_name), "error | warn | info | debug"},
    {"log", "format", T_STR, "text", 0, 0, 0, OFF(log.format), "text | json"},
};
#define NKEYS (sizeof KEYS / sizeof KEYS[0])

typedef struct bc_raw {
  char *name;
  char *token, *token_file, *url, *url_file;
} bc_raw;

typedef struct loader {
  char *val[NKEYS];
  ksrc src[NKEYS];
  int in_file[NKEYS];
  char *file_of[NKEYS]; /* <key>_file values for secrets */
  bc_raw *bcs;
  size_t n_bcs;
  char *err;
  size_t errlen;
  int failed;
  const char *file;
} loader;

static int fail(loader *ld, const char *fmt, ...) {
  va_list ap;
  if (ld->failed)
    return 0;
  ld->failed = 1;
  va_start(ap, fmt);
  vsnprintf(ld->err, ld->errlen, fmt, ap);
  va_end(ap);
  return 0;
}

static int set_val(loader *ld, size_t i, const char *v, ksrc src) {
  char *copy = strdup(v);
  if (!copy)
    return fail(ld, "config: out of memory");
  free(ld->val[i]);
  ld->val[i] = copy;
  ld->src[i] = src;
  return 1;
}

static int find_key(const char *section, const char *key) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].key, key) == 0)
      return (int)i;
  return -1;
}

static bc_raw *find_bc(loader *ld, const char *name, int create) {
  bc_raw *b;
  for (size_t i = 0; i < ld->n_bcs; i++)
    if (strcmp(ld->bcs[i].name, name) == 0)
      return &ld->bcs[i];
  if (!create || ld->n_bcs >= MAX_BROADCASTERS)
    return NULL;
  b = realloc(ld->bcs, (ld->n_bcs + 1) * sizeof *b);
  if (!b)
    return NULL;
  ld->bcs = b;
  b = &ld->bcs[ld->n_bcs];
  memset(b, 0, sizeof *b);
  if (!(b->name = strdup(name)))
    return NULL;
  ld->n_bcs++;
  return b;
}

static char **bc_field(bc_raw *b, const char *key) {
  if (strcmp(key, "token") == 0)
    return &b->token;
  if (strcmp(key, "token_file") == 0)
    return &b->token_file;
  if (strcmp(key, "url") == 0)
    return &b->url;
  if (strcmp(key, "url_file") == 0)
    return &b->url_file;
  return NULL;
}

static int set_bc(loader *ld, const char *name, const char *key, const char *value, int dup_is_error) {
  bc_raw *b;
  char **f;

  if (!cb2m_name_valid(name))
    return fail(ld, "config: broadcaster:%s: name must be 1 to 64 of A-Z a-z 0-9 _ - and not \"bridge\"",
                name);
  b = find_bc(ld, name, 1);
  if (!b)
    return fail(ld, "config: too many broadcasters (at most %d) or out of memory", MAX_BROADCASTERS);
  f = bc_field(b, key);
  if (!f)
    return fail(ld, "config: broadcaster:%s.%s: unknown key (token, token_file, url or url_file)", name, key);
  if (*f && dup_is_error)
    return fail(ld, "config: broadcaster:%s.%s: set twice in %s", name, key, ld->file);
  free(*f);
  *f = strdup(value);
  return *f ? 1 : fail(ld, "config: out of memory");
}

static int on_ini(void *user, const char *section, const char *name, const char *value) {
  loader *ld = user;
  size_t klen = strlen(name);
  int i;

  if (ld->failed)
    return 0;
  if (strncmp(section, "broadcaster:", 12) == 0)
    return set_bc(ld, section + 12, name, value, 1);
  i = find_key(section, name);
  if (i < 0 && klen > 5 && strcmp(name + klen - 5, "_file") == 0) {
    char base[64];
    snprintf(base, sizeof base, "%.*s", (int)(klen - 5), name);
    i = find_key(section, base);
    if (i >= 0 && KEYS[i].secret) {
      free(ld->file_of[i]);
      ld->file_of[i] = strdup(value);
      return 1;
    }
    i = -1;
  }
  if (i < 0) {
    if (find_key(section, "url") < 0 && find_key(section, "api") < 0 && find_key(section, "level") < 0 &&
        find_key(section, "prefix") < 0)
      return fail(ld, "config: %s: unknown section [%s]", ld->file, section);
    return fail(ld, "config: %s.%s: unknown key (in %s)", section, name, ld->file);
  }
  if (ld->in_file[i])
    return fail(ld, "config: %s.%s: set twice in %s", section, name, ld->file);
  ld->in_file[i] = 1;
  return set_val(ld, (size_t)i, value, SRC_FILE);
}

static int load_file(loader *ld, const char *path, int must_exist) {
  char *text = NULL;
  size_t len = 0, line = 1, col = 0;
  int rc;

  if (cb2m_read_file(path, CONFIG_FILE_MAX, &text, &len) != 0) {
    if (!must_exist && errno == ENOENT)
      return 1;
    return fail(ld, "config: %s: cannot read: %s", path,
                errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
  }
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '\n') {
      line++;
      col = 0;
    } else if (++col > INI_LINE_MAX) {
      free(text);
      return fail(ld, "config: %s: line %zu is longer than %d bytes; put long values such as "
                  "feed URLs in a *_file", path, line, INI_LINE_MAX);
    } else if (text[i] == '\0') {
      free(text);
      return fail(ld, "config: %s: line %zu contains a NUL byte", path, line);
    }
  }
  ld->file = path;
  rc = ini_parse_string(text, on_ini, ld);
  free(text);
  if (ld->failed)
    return 0;
  if (rc > 0)
    return fail(ld, "config: %s: line %d: syntax error (expected [section] or key = value)", path, rc);
  if (rc < 0)
    return fail(ld, "config: %s: cannot parse", path);
  return 1;
}

static const char *env_get(char **envp, const char *name) {
  size_t n = strlen(name);
  for (char **e = envp; e && *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
      return *e + n + 1;
  return NULL;
}

static void env_name(char *buf, size_t size, const char *a, const char *b, const char *suffix) {
  size_t n = 0;
  n += (size_t)snprintf(buf, size, "CB2MQTT_%s_%s%s", a, b, suffix);
  for (size_t i = 0; i < n && i < size; i++) {
    if (buf[i] >= 'a' && buf[i] <= 'z')
      buf[i] = (char)(buf[i] - 'a' + 'A');
    else if (buf[i] == '-')
      buf[i] = '_';
  }
}

static int load_env(loader *ld, char **envp) {
  char name[256];
  const char *v, *list;

  for (size_t i = 0; i < NKEYS; i++) {
    env_name(name, sizeof name, KEYS[i].section, KEYS[i].key, "");
    if ((v = env_get(envp, name)) && !set_val(ld, i, v, SRC_ENV))
      return 0;
    if (KEYS[i].secret) {
      env_name(name, sizeof name, KEYS[i].section, KEYS[i].key, "_FILE");
      if ((v = env_get(envp, name))) {
        free(ld->file_of[i]);
        ld->file_of[i] = strdup(v);
        ld->src[i] = SRC_ENV;
      }
    }
  }
  /* Broadcasters: CB2MQTT_BROADCASTERS="alice,bob" and, per name,
   * CB2MQTT_BROADCASTER_<NAME>_TOKEN / _TOKEN_FILE / _URL / _URL_FILE. */
  list = env_get(envp, "CB2MQTT_BROADCASTERS");
  if (list) {
    char *copy = strdup(list), *save = NULL;
    static const char *const fields[] = {"token", "token_file", "url", "url_file"};
    if (!copy)
      return fail(ld, "config: out of memory");
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
      int any = 0;
      for (size_t f = 0; f < 4; f++) {
        env_name(name, sizeof name, "BROADCASTER", tok, "");
        size_t n = strlen(name);
        snprintf(name + n, sizeof name - n, "_%s", fields[f]);
        env_name(name, sizeof name, "BROADCASTER", tok, "");
        char full[300];
        snprintf(full, sizeof full, "%s_%s", name, fields[f]);
        for (char *p = full; *p; p++)
          if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
        if ((v = env_get(envp, full))) {
          if (!set_bc(ld, tok, fields[f], v, 0)) {
            free(copy);
            return 0;
          }
          any = 1;
        }
      }
      if (!any && !find_bc(ld, tok, 0) && !set_bc(ld, tok, "token", "", 0)) {
        free(copy);
        return 0;
      }
    }
    free(copy);
  }
  /* The single-broadcaster shortcuts. */
  if ((v = env_get(envp, "CB_EVENTS_URL")) && *v) {
    char *name_from_url = NULL;
    CURLU *u = curl_url();
    char *path = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, v, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
      /* ".../events/<name>/<token>/" */
      char *segs[64];
      size_t n = 0;
      char *save = NULL, *p = strdup(path);
      for (char *s = p ? strtok_r(p, "/", &save) : NULL; s && n < 64; s = strtok_r(NULL, "/", &save))
        segs[n++] = s;
      if (n >= 2)
        name_from_url = strdup(segs[n - 2]);
      free(p);
    }
    curl_free(path);
    curl_url_cleanup(u);
    if (!name_from_url)
      return fail(ld, "config: CB_EVENTS_URL: not a feed URL (https://.../events/<username>/<token>/)");
    int ok = set_bc(ld, name_from_url, "url", v, 0);
    free(name_from_url);
    if (!ok)
      return 0;
  } else if ((v = env_get(envp, "CB_USERNAME")) && *v) {
    const char *tok = env_get(envp, "CB_TOKEN"), *tf = env_get(envp, "CB_TOKEN_FILE");
    if (tok && *tok && !set_bc(ld, v, "token", tok, 0))
      return 0;
    if ((!tok || !*tok) && tf && *tf && !set_bc(ld, v, "token_file", tf, 0))
      return 0;
    if ((!tok || !*tok) && (!tf || !*tf) && !set_bc(ld, v, "token", "", 0))
      return 0;
  }
  return 1;
}

/* Reads a secret file: one trailing newline stripped, 64 KiB cap. */
static char *read_secret(loader *ld, const char *what, const char *path) {
  char *text = NULL;
  size_t len = 0;

  if (cb2m_read_file(path, SECRET_FILE_MAX, &text, &len) != 0) {
    fail(ld, "config: %s: cannot read %s: %s", what, path,
         errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
    return NULL;
  }
  while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    text[--len] = '\0';
  if (!len || strlen(text) != len) {
    free(text);
    fail(ld, "config: %s: %s is empty or not text", what, path);
    return NULL;
  }
  return text;
}

static int parse_bool(const char *v, int *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(v, yes[i]) == 0)
      return *out = 1, 0;
    if (strcasecmp(v, no[i]) == 0)
      return *out = 0, 0;
  }
  return -1;
}

static int convert(loader *ld, cb2m_config *cfg) {
  for (size_t i = 0; i < NKEYS; i++) {
    const key_def *k = &KEYS[i];
    const char *v = ld->val[i] ? ld->val[i] : k->def;
    char *p = (char *)cfg + k->off, *end;

    if (k->secret && ld->file_of[i] && *ld->file_of[i] && (!ld->val[i] || ld->src[i] <= SRC_FILE)) {
      char what[64], *s;
      snprintf(what, sizeof what, "%s.%s_file", k->section, k->key);
      if (!(s = read_secret(ld, what, ld->file_of[i])))
        return 0;
      free(ld->val[i]);
      ld->val[i] = s;
      v = s;
    }
    switch (k->type) {
    case T_STR:
      if (!(*(char **)(void *)p = strdup(v)))
        return fail(ld, "config: out of memory");
      break;
    case T_BOOL:
      if (parse_bool(v, (int *)(void *)p) != 0)
        return fail(ld, "config: %s.%s: must be true or false", k->section, k->key);
      break;
    case T_INT: {
      long n;
      errno = 0;
      n = strtol(v, &end, 10);
      if ((errno || end == v || *end || n < (long)k->min || n > (long)k->max) && k->min == 0 &&
          k->max == 2)
        return fail(ld, "config: %s.%s: must be 0, 1 or 2", k->section, k->key);
      if (errno || end == v || *end || n < (long)k->min || n > (long)k->max)
        return fail(ld, "config: %s.%s: must be a whole number from %.0f to %.0f", k->section,
                    k->key, k->min, k->max);
      *(int *)(void *)p = (int)n;
      break;
    }
    case T_DOUBLE: {
      double d;
      errno = 0;
      d = strtod(v, &end);
      if (errno || end == v || *end || !isfinite(d) || d < k->min || d > k->max)
        return fail(ld, "config: %s.%s: must be a number from %g to %g", k->section, k->key,
                    k->min, k->max);
      *(double *)(void *)p = d;
      break;
    }
    }
  }
  return 1;
}

/* Empty optional strings mean "not set". */
static void empty_to_null(char **s) {
  if (*s && !**s) {
    free(*s);
    *s = NULL;
  }
}

static int validate(loader *ld, cb2m_config *cfg) {
  char why[128];
  CURLU *u = NULL;
  char *scheme = NULL, *host = NULL, *port = NULL;
  int ok = 0;

  empty_to_null(&cfg->mqtt.username);
  empty_to_null(&cfg->mqtt.password);
  empty_to_null(&cfg->mqtt.ca_file);
  empty_to_null(&cfg->mqtt.cert_file);
  empty_to_null(&cfg->mqtt.key_file);
  empty_to_null(&cfg->events.ca_file);
  if (cfg->mqtt.qos < 0 || cfg->mqtt.qos > 2)
    return fail(ld, "config: mqtt.qos: must be 0, 1 or 2");
  if (cfg->mqtt.protocol != 5 && cfg->mqtt.protocol != 311)
    return fail(ld, "config: mqtt.protocol: must be 5 or 311");
  u = curl_url();
  if (!u || curl_url_set(u, CURLUPART_URL, cfg->mqtt.url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    fail(ld, "config: mqtt.url: not a URL (mqtt://host[:port] or mqtts://host[:port])");
    goto out;
  }
  if (strcmp(scheme, "mqtt") != 0 && strcmp(scheme, "mqtts") != 0) {
    fail(ld, "config: mqtt.url: scheme must be mqtt:// or mqtts://");
    goto out;
  }
  cfg->mqtt.tls = strcmp(scheme, "mqtts") == 0;
  cfg->mqtt.port = cfg->mqtt.tls ? 8883 : 1883;
  if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
    cfg->mqtt.port = atoi(port); /* curl validated it as 1..65535 */
  /* "[::1]" -> "::1" for libmosquitto. */
  if (host[0] == '[') {
    size_t n = strlen(host);
    memmove(host, host + 1, n - 2);
    host[n - 2] = '\0';
  }
  if (!(cfg->mqtt.host = strdup(host))) {
    fail(ld, "config: out of memory");
    goto out;
  }
  if (cfg->mqtt.cert_file && !cfg->mqtt.key_file) {
    fail(ld, "config: mqtt.key_file: required with mqtt.cert_file");
    goto out;
  }
  if (cb2m_topic_base_valid(cfg->mqtt.base_topic, why, sizeof why) != 0) {
    fail(ld, "config: mqtt.base_topic: %s", why);
    goto out;
  }
  if (!cfg->mqtt.client_id[0]) {
    char hostname[256] = "localhost";
    gethostname(hostname, sizeof hostname - 1);
    free(cfg->mqtt.client_id);
    cfg->mqtt.client_id = malloc(300);
    if (!cfg->mqtt.client_id) {
      fail(ld, "config: out of memory");
      goto out;
    }
    snprintf(cfg->mqtt.client_id, 300, "cb2mqtt-%s", hostname);
  }
  if (strcmp(cfg->events.api, "production") == 0)
    cfg->events.api_base = strdup(CBEV_PRODUCTION_BASE);
  else if (strcmp(cfg->events.api, "testbed") == 0)
    cfg->events.api_base = strdup(CBEV_TESTBED_BASE);
  else if (cbev_url_check_scheme(cfg->events.api) == 0)
    cfg->events.api_base = strdup(cfg->events.api);
  else {
    fail(ld, "config: events.api: must be production, testbed, an https:// URL or http:// to a "
         "loopback host");
    goto out;
  }
  if (cbev_ratelimit_parse(cfg->events.rate_limit, &cfg->events.rate_requests,
                           &cfg->events.rate_seconds) != 0) {
    fail(ld, "config: events.rate_limit: must be N/SECONDS, e.g. 2000/60");
    goto out;
  }
  if (strcmp(cfg->events.payload, "normalized") == 0)
    cfg->events.payload_raw = 0;
  else if (strcmp(cfg->events.payload, "raw") == 0)
    cfg->events.payload_raw = 1;
  else {
    fail(ld, "config: events.payload: must be normalized or raw");
    goto out;
  }
  if (strcmp(cfg->events.publish, "all") == 0) {
    cfg->events.publish_mask = (1u << (CBEV_EVENT_UNKNOWN + 1)) - 1u;
  } else {
    char *copy = strdup(cfg->events.publish), *save = NULL;
    cfg->events.publish_mask = 0;
    for (char *t = copy ? strtok_r(copy, ", ", &save) : NULL; t; t = strtok_r(NULL, ", ", &save)) {
      cbev_event_type ty = cbev_event_type_from_name(t);
      if (ty == CBEV_EVENT_UNKNOWN) {
        fail(ld, "config: events.publish: unknown event type \"%.40s\"", t);
        free(copy);
        goto out;
      }
      cfg->events.publish_mask |= 1u << ty;
    }
    free(copy);
    if (!cfg->events.publish_mask) {
      fail(ld, "config: events.publish: must be all or a list of event types");
      goto out;
    }
  }
  if (!cfg->events.state_dir[0]) {
    fail(ld, "config: events.state_dir: must not be empty");
    goto out;
  }
  if (cfg->homeassistant.prefix[0] == '\0' || strpbrk(cfg->homeassistant.prefix, "+#") ||
      cb2m_topic_base_valid(cfg->homeassistant.prefix, why, sizeof why) != 0) {
    fail(ld, "config: homeassistant.prefix: must be a topic without wildcards or empty levels");
    goto out;
  }
  if (strcmp(cfg->homeassistant.prefix, cfg->mqtt.base_topic) == 0) {
    fail(ld, "config: homeassistant.prefix: must differ from mqtt.base_topic");
    goto out;
  }
  if (cbev_log_level_parse(cfg->log.level_name, &cfg->log.level) != 0) {
    fail(ld, "config: log.level: must be error, warn, info or debug");
    goto out;
  }
  if (strcmp(cfg->log.format, "text") == 0 || strcmp(cfg->log.format, "json") == 0)
    cfg->log.json = strcmp(cfg->log.format, "json") == 0;
  else {
    fail(ld, "config: log.format: must be text or json");
    goto out;
  }
  ok = 1;
out:
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return ok && !ld->failed;
}

static int build_broadcasters(loader *ld, cb2m_config *cfg, char **envp) {
  const char *creds = env_get(envp, "CREDENTIALS_DIRECTORY");

  cfg->broadcasters = calloc(ld->n_bcs ? ld->n_bcs : 1, sizeof *cfg->broadcasters);
  if (!cfg->broadcasters)
    return fail(ld, "config: out of memory");
  for (size_t i = 0; i < ld->n_bcs; i++) {
    bc_raw *b = &ld->bcs[i];
    cb2m_broadcaster_config *o = &cfg->broadcasters[i];
    char what[128];
    int sources = (b->token && *b->token) + (b->token_file && *b->token_file) +
                  (b->url && *b->url) + (b->url_file && *b->url_file);

    o->name = strdup(b->name);
    cfg->n_broadcasters++;
    if (!o->name)
      return fail(ld, "config: out of memory");
    if (sources > 1)
      return fail(ld, "config: broadcaster:%s: set exactly one of token, token_file, url, url_file",
                  b->name);
    if (b->token && *b->token) {
      o->token = strdup(b->token);
    } else if (b->token_file && *b->token_file) {
      snprintf(what, sizeof what, "broadcaster:%s.token_file", b->name);
      if (!(o->token = read_secret(ld, what, b->token_file)))
        return 0;
    } else if (b->url && *b->url) {
      o->url = strdup(b->url);
    } else if (b->url_file && *b->url_file) {
      snprintf(what, sizeof what, "broadcaster:%s.url_file", b->name);
      if (!(o->url = read_secret(ld, what, b->url_file)))
        return 0;
    } else if (creds && *creds) {
      /* systemd LoadCredential=: cb_token_<name>, or cb_token alone. */
      char path[4096];
      snprintf(path, sizeof path, "%s/cb_token_%s", creds, b->name);
      if (access(path, R_OK) != 0 && ld->n_bcs == 1)
        snprintf(path, sizeof path, "%s/cb_token", creds);
      snprintf(what, sizeof what, "broadcaster:%s.token (credential)", b->name);
      if (!(o->token = read_secret(ld, what, path)))
        return 0;
    } else {
      return fail(ld, "config: broadcaster:%s: no token: set token, token_file, url or url_file",
                  b->name);
    }
    if (!o->token && !o->url)
      return fail(ld, "config: out of memory");
    if (o->url && cbev_url_check_scheme(o->url) != 0)
      return fail(ld, "config: broadcaster:%s.url: must be https:// (or http:// to a loopback host)",
                  b->name);
  }
  if (!cfg->mqtt.password && creds && *creds) {
    char path[4096];
    snprintf(path, sizeof path, "%s/mqtt_password", creds);
    if (access(path, R_OK) == 0 && !(cfg->mqtt.password = read_secret(ld, "mqtt.password (credential)", path)))
      return 0;
  }
  return 1;
}

static void loader_free(loader *ld) {
  for (size_t i = 0; i < NKEYS; i++) {
    free(ld->val[i]);
    free(ld->file_of[i]);
  }
  for (size_t i = 0; i < ld->n_bcs; i++) {
    free(ld->bcs[i].name);
    free(ld->bcs[i].token);
    free(ld->bcs[i].token_file);
    free(ld->bcs[i].url);
    free(ld->bcs[i].url_file);
  }
  free(ld->bcs);
}

int cb2m_config_load(cb2m_config *cfg, int argc, char **argv, char **envp, char *err, size_t errlen) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},   {"check-config", no_argument, NULL, 'C'},
      {"print-config", no_argument, NULL, 'P'},   {"healthcheck", no_argument, NULL, 'H'},
      {"log-level", required_argument, NULL, 'l'}, {"log-format", required_argument, NULL, 'f'},
      {"version", no_argument, NULL, 'V'},        {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  loader ld;
  const char *file = NULL, *flag_level = NULL, *flag_format = NULL;
  int c, status = 2;

  memset(cfg, 0, sizeof *cfg);
  memset(&ld, 0, sizeof ld);
  ld.err = err;
  ld.errlen = errlen;
  if (errlen)
    err[0] = '\0';
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': file = optarg; break;
    case 'C': cfg->check_config = 1; break;
    case 'P': cfg->print_config = 1; break;
    case 'H': cfg->healthcheck = 1; break;
    case 'l': flag_level = optarg; break;
    case 'f': flag_format = optarg; break;
    case 'V': cfg->version = 1; break;
    case 'h': cfg->help = 1; break;
    case ':':
      fail(&ld, "cb2mqtt: option %s needs a value", argv[optind - 1]);
      goto out;
    default:
      /* Never echo the argument: it could be a token typed by mistake. */
      fail(&ld, "cb2mqtt: unknown option (see --help; secrets are never accepted as arguments)");
      goto out;
    }
  }
  if (optind < argc) {
    fail(&ld, "cb2mqtt: unexpected argument (see --help)");
    goto out;
  }
  if (cfg->help || cfg->version) {
    status = 0;
    goto out;
  }
  if (file) {
    if (!load_file(&ld, file, 1))
      goto out;
  } else if (!load_file(&ld, DEFAULT_CONFIG_FILE, 0)) {
    goto out;
  }
  if (ld.file && !(cfg->config_file = strdup(ld.file)))
    goto out;
  if (!load_env(&ld, envp))
    goto out;
  if (flag_level && !set_val(&ld, (size_t)find_key("log", "level"), flag_level, SRC_FLAG))
    goto out;
  if (flag_format && !set_val(&ld, (size_t)find_key("log", "format"), flag_format, SRC_FLAG))
    goto out;
  if (!convert(&ld, cfg) || !validate(&ld, cfg))
    goto out;
  if (!cfg->healthcheck) {
    if (!build_broadcasters(&ld, cfg, envp))
      goto out;
    if (cfg->n_broadcasters == 0) {
      fail(&ld, "config: no broadcaster: add a [broadcaster:NAME] section, or set CB_EVENTS_URL, "
           "or CB_USERNAME and CB_TOKEN");
      goto out;
    }
  }
  status = 0;
out:
  loader_free(&ld);
  return status;
}

void cb2m_config_free(cb2m_config *cfg) {
  if (!cfg)
    return;
  for (size_t i = 0; i < NKEYS; i++)
    if (KEYS[i].type == T_STR)
      free(*(char **)(void *)((char *)cfg + KEYS[i].off));
  free(cfg->mqtt.host);
  free(cfg->events.api_base);
  for (size_t i = 0; i < cfg->n_broadcasters; i++) {
    free(cfg->broadcasters[i].name);
    free(cfg->broadcasters[i].token);
    free(cfg->broadcasters[i].url);
  }
  free(cfg->broadcasters);
  free(cfg->config_file);
  memset(cfg, 0, sizeof *cfg);
}

static void value_text(const cb2m_config *cfg, const key_def *k, char *buf, size_t size) {
  const char *p = (const char *)cfg + k->off;
  switch (k->type) {
  case T_STR: {
    const char *s = *(char *const *)(const void *)p;
    snprintf(buf, size, "%s", k->secret && s && *s ? "***" : (s ? s : ""));
    break;
  }
  case T_BOOL: snprintf(buf, size, "%s", *(const int *)(const void *)p ? "true" : "false"); break;
  case T_INT: snprintf(buf, size, "%d", *(const int *)(const void *)p); break;
  case T_DOUBLE: snprintf(buf, size, "%g", *(const double *)(const void *)p); break;
  }
}

int cb2m_config_print(const cb2m_config *cfg, FILE *out) {
  const char *section = "";
  char buf[1024];

  fprintf(out, "; cb2mqtt effective settings (secrets masked)%s%s\n",
          cfg->config_file ? "; file: " : "", cfg->config_file ? cfg->config_file : "");
  for (size_t i = 0; i < NKEYS; i++) {
    if (strcmp(section, KEYS[i].section) != 0) {
      section = KEYS[i].section;
      fprintf(out, "\n[%s]\n", section);
    }
    value_text(cfg, &KEYS[i], buf, sizeof buf);
    fprintf(out, "%s = %s\n", KEYS[i].key, buf);
  }
  for (size_t i = 0; i < cfg->n_broadcasters; i++)
    fprintf(out, "\n[broadcaster:%s]\n%s = ***\n", cfg->broadcasters[i].name,
            cfg->broadcasters[i].url ? "url" : "token");
  return 0;
}

void cb2m_config_usage(FILE *out) {
  const char *section = "";

  fputs("usage: cb2mqtt [-c FILE] [--check-config] [--print-config] [--healthcheck]\n"
        "               [--log-level error|warn|info|debug] [--log-format text|json]\n"
        "               [--version] [--help]\n\n"
        "Republishes Chaturbate Events API feeds to MQTT.\n\n"
        "Settings, highest first: command line, environment CB2MQTT_<SECTION>_<KEY>,\n"
        "config file (-c, default " DEFAULT_CONFIG_FILE " when it exists), defaults.\n"
        "Secrets also take <key>_file / CB2MQTT_<SECTION>_<KEY>_FILE. One broadcaster:\n"
        "CB_EVENTS_URL, or CB_USERNAME + CB_TOKEN / CB_TOKEN_FILE. Several:\n"
        "[broadcaster:NAME] sections (token, token_file, url, url_file), or\n"
        "CB2MQTT_BROADCASTERS=a,b with CB2MQTT_BROADCASTER_<NAME>_TOKEN[_FILE] / _URL[_FILE].\n",
        out);
  for (size_t i = 0; i < NKEYS; i++) {
    if (strcmp(section, KEYS[i].section) != 0) {
      section = KEYS[i].section;
      fprintf(out, "\n[%s]\n", section);
    }
    fprintf(out, "  %-26s default %-24s %s\n", KEYS[i].key, *KEYS[i].def ? KEYS[i].def : "(none)",
            KEYS[i].help);
  }
  fputs("\nExit status: 0 ok, 1 fatal runtime error, 2 usage or configuration error,\n"
        "3 every broadcaster failed authentication.\n",
        out);
}

char *cb2m_config_info_json(const cb2m_config *cfg) {
  cJSON *root = cJSON_CreateObject();
  char *text = NULL;
  cJSON *sec = NULL;
  const char *section = "";

  if (!root)
    return NULL;
  for (size_t i = 0; i < NKEYS; i++) {
    const key_def *k = &KEYS[i];
    const char *p = (const char *)cfg + k->off;
    if (strcmp(section, k->section) != 0) {
      section = k->section;
      sec = cJSON_AddObjectToObject(root, section);
    }
    if (k->secret)
      continue; /* secrets are not even masked here: they are absent */
    switch (k->type) {
    case T_STR: {
      const char *s = *(char *const *)(const void *)p;
      if (s)
        cJSON_AddStringToObject(sec, k->key, s);
      else
        cJSON_AddNullToObject(sec, k->key);
      break;
    }
    case T_BOOL: cJSON_AddBoolToObject(sec, k->key, *(const int *)(const void *)p); break;
    case T_INT: cJSON_AddNumberToObject(sec, k->key, *(const int *)(const void *)p); break;
    case T_DOUBLE: cJSON_AddNumberToObject(sec, k->key, *(const double *)(const void *)p); break;
    }
  }
  /* events.api may be a base URL but never carries a token; feed URLs of
   * broadcasters do and are left out. */
  text = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return text;
}

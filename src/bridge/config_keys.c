/*
 * config_keys.c: the settings table (SPEC section 5), the conversion of
 * a value by its key's type, and each key's check, which validates and
 * derives the parsed fields (host and port from mqtt.url, the publish
 * mask, ...).
 */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ini.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/ratelimit.h"
#include "cbevents/session.h"
#include "config_impl.h"
#include "fsutil.h"
#include "metrics_http.h"
#include "topics.h"

static int check_mqtt_url(cb2m_config *cfg, char *why, size_t whylen);
static int check_password(cb2m_config *cfg, char *why, size_t whylen);
static int check_client_id(cb2m_config *cfg, char *why, size_t whylen);
static int check_base_topic(cb2m_config *cfg, char *why, size_t whylen);
static int check_key_file(cb2m_config *cfg, char *why, size_t whylen);
static int check_api(cb2m_config *cfg, char *why, size_t whylen);
static int check_prefix(cb2m_config *cfg, char *why, size_t whylen);
static int check_log_level(cb2m_config *cfg, char *why, size_t whylen);
static int check_metrics_listen(cb2m_config *cfg, char *why, size_t whylen);

#define OFF(f) offsetof(cb2m_config, f)

const key_def cb2m_config_keys[] = {
    {"mqtt", "url", T_URL, "mqtt://localhost:1883", 0, 0, F_NOT_EMPTY, OFF(mqtt.url), NO_AUX, NO_AUX,
     NULL, NULL, check_mqtt_url,
     "broker: mqtt://host[:port] or mqtts://host[:port] (TLS); default ports 1883 and 8883; "
     "IPv6 as mqtt://[::1]:1883"},
    {"mqtt", "username", T_STRING, "", 0, 0, F_EMPTY_NULL, OFF(mqtt.username), NO_AUX, NO_AUX, NULL,
     NULL, NULL, "broker user name"},
    {"mqtt", "password", T_STRING, "", 0, 0, F_SECRET | F_EMPTY_NULL, OFF(mqtt.password), NO_AUX,
     NO_AUX, NULL, NULL, check_password, "broker password (a secret; prefer password_file)"},
    {"mqtt", "client_id", T_STRING, "", 0, 0, F_EMPTY_NULL, OFF(mqtt.client_id), NO_AUX, NO_AUX, NULL,
     NULL, check_client_id, "MQTT client id; default cb2mqtt-<hostname>"},
    {"mqtt", "base_topic", T_STRING, "cb", 0, 0, 0, OFF(mqtt.base_topic), NO_AUX, NO_AUX, NULL, NULL,
     check_base_topic, "first level(s) of every topic: no + or #, no leading $, no empty level"},
    {"mqtt", "qos", T_INT, "1", 0, 2, 0, OFF(mqtt.qos), NO_AUX, NO_AUX, NULL, "must be 0, 1 or 2",
     NULL, "QoS of event messages (state and discovery always use 1)"},
    {"mqtt", "protocol", T_INT, "5", 5, 311, 0, OFF(mqtt.protocol), NO_AUX, NO_AUX, "5|311",
     "must be 5 or 311", NULL, "MQTT version: 5, or 311 for 3.1.1"},
    {"mqtt", "keepalive", T_INT, "60", 5, 65535, 0, OFF(mqtt.keepalive), NO_AUX, NO_AUX, NULL, NULL,
     NULL, "seconds"},
    {"mqtt", "ca_file", T_STRING, "", 0, 0, F_EMPTY_NULL, OFF(mqtt.ca_file), NO_AUX, NO_AUX, NULL,
     NULL, NULL, "CA bundle for mqtts:// (default: the system's CAs)"},
    {"mqtt", "cert_file", T_STRING, "", 0, 0, F_EMPTY_NULL, OFF(mqtt.cert_file), NO_AUX, NO_AUX, NULL,
     NULL, NULL, "client certificate (with key_file)"},
    {"mqtt", "key_file", T_STRING, "", 0, 0, F_EMPTY_NULL, OFF(mqtt.key_file), NO_AUX, NO_AUX, NULL,
     NULL, check_key_file, "client key (with cert_file)"},
    {"mqtt", "tls_insecure", T_BOOL, "false", 0, 1, 0, OFF(mqtt.tls_insecure), NO_AUX, NO_AUX, NULL,
     NULL, NULL, "skip the broker host name check (tests only)"},
    {"mqtt", "health_interval", T_INT, "60", 5, 86400, 0, OFF(mqtt.health_interval), NO_AUX, NO_AUX,
     NULL, NULL, NULL, "seconds between retained <base_topic>/bridge/health messages"},

    {"events", "api", T_URL, "production", 0, 0, F_NOT_EMPTY, OFF(events.api), NO_AUX, NO_AUX, NULL,
     NULL, check_api,
     "production | testbed | a base URL (https://, or http:// to a loopback host)"},
    {"events", "timeout", T_INT, "10", 0, 90, 0, OFF(events.timeout), NO_AUX, NO_AUX, NULL, NULL, NULL,
     "long-poll seconds"},
    {"events", "retry_backoff", T_DOUBLE, "1.0", 0, 3600, F_MIN_EXCL, OFF(events.retry_backoff),
     NO_AUX, NO_AUX, NULL, NULL, NULL, "first retry delay, seconds"},
    {"events", "retry_factor", T_DOUBLE, "2.0", 1, 100, 0, OFF(events.retry_factor), NO_AUX, NO_AUX,
     NULL, NULL, NULL, "delay multiplier per retry"},
    {"events", "retry_max_delay", T_DOUBLE, "60", 0, 86400, F_MIN_EXCL, OFF(events.retry_max_delay),
     NO_AUX, NO_AUX, NULL, NULL, NULL, "retry delay cap, seconds"},
    {"events", "rate_limit", T_RATE, "2000/60", 0, 0, 0, OFF(events.rate_limit),
     OFF(events.rate_requests), OFF(events.rate_seconds), NULL,
     "must be N/SECONDS with N >= 1 and SECONDS > 0, e.g. 2000/60", NULL,
     "requests per seconds, per broadcaster (the API allows 2000/60)"},
    {"events", "shared_rate_limit", T_BOOL, "false", 0, 1, 0, OFF(events.shared_rate_limit), NO_AUX,
     NO_AUX, NULL, NULL, NULL, "one rate limiter for all broadcasters instead of one each"},
    {"events", "ca_file", T_STRING, "", 0, 0, F_EMPTY_NULL, OFF(events.ca_file), NO_AUX, NO_AUX, NULL,
     NULL, NULL, "extra CA bundle for the API (tests, proxies)"},
    {"events", "publish", T_LIST, "all", 0, 0, 0, OFF(events.publish), OFF(events.publish_mask),
     NO_AUX, NULL, NULL, NULL,
     "all, or a comma list of: broadcast_start, broadcast_stop, room_subject_change, user_enter, "
     "user_leave, follow, unfollow, fanclub_join, chat_message, private_message, tip, "
     "media_purchase"},
    {"events", "payload", T_ENUM, "normalized", 0, 0, 0, OFF(events.payload), OFF(events.payload_raw),
     NO_AUX, "normalized|raw", NULL, NULL,
     "normalized JSON, or the upstream event object (an anonymous tipper still null)"},
    {"events", "expose_anonymous_tippers", T_BOOL, "false", 0, 1, 0,
     OFF(events.expose_anonymous_tippers), NO_AUX, NO_AUX, NULL, NULL, NULL,
     "publish the user of anonymous tips (a tip is anonymous unless its isAnon is absent or "
     "JSON false: any other value counts as anonymous)"},
    {"events", "state_dir", T_STRING, "/var/lib/cb2mqtt", 0, 0, F_NOT_EMPTY, OFF(events.state_dir),
     NO_AUX, NO_AUX, NULL, NULL, NULL, "cursors and state survive restarts here"},
    {"events", "max_queued", T_INT, "10000", 1, 1000000, 0, OFF(events.max_queued), NO_AUX, NO_AUX,
     NULL, NULL, NULL, "events held per broadcaster while the broker is away"},
    {"events", "auth_retry_interval", T_INT, "300", 10, 86400, 0, OFF(events.auth_retry_interval),
     NO_AUX, NO_AUX, NULL, NULL, NULL,
     "seconds between tries of a refused token, forever; its token_file, url_file or credential "
     "is read again before each try"},

    {"homeassistant", "discovery", T_BOOL, "true", 0, 1, 0, OFF(homeassistant.discovery), NO_AUX,
     NO_AUX, NULL, NULL, NULL, "Home Assistant MQTT discovery"},
    {"homeassistant", "prefix", T_STRING, "homeassistant", 0, 0, 0, OFF(homeassistant.prefix), NO_AUX,
     NO_AUX, NULL, NULL, check_prefix, "discovery prefix; must differ from mqtt.base_topic"},

    {"metrics", "listen", T_STRING, "", 0, 0, F_EMPTY_NULL, OFF(metrics.listen), NO_AUX, NO_AUX,
     NULL, NULL, check_metrics_listen,
     "serve GET /metrics (Prometheus) on host:port, :port or [v6addr]:port; empty: off"},

    {"log", "level", T_ENUM, "info", 0, 0, 0, OFF(log.level_name), NO_AUX, NO_AUX,
     "error|warn|info|debug", NULL, check_log_level, "messages above this level are dropped"},
    {"log", "format", T_ENUM, "text", 0, 0, 0, OFF(log.format), OFF(log.json), NO_AUX, "text|json",
     NULL, NULL, "one line per message on stderr: plain text or a JSON object"},
};
_Static_assert(sizeof cb2m_config_keys / sizeof cb2m_config_keys[0] <= CB2M_CONFIG_KEYS_MAX,
               "grow CB2M_CONFIG_KEYS_MAX");
const size_t cb2m_config_nkeys = sizeof cb2m_config_keys / sizeof cb2m_config_keys[0];

const char *const cb2m_config_sections[] = {"mqtt", "events", "metrics", "homeassistant", "log"};
const size_t cb2m_config_nsections = sizeof cb2m_config_sections / sizeof cb2m_config_sections[0];

const char *const cb2m_config_bc_fields[] = {"token", "token_file", "url", "url_file"};

static int parse_bool(const char *v, int *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};

  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(v, yes[i]) == 0)
      return *out = 1, CBEV_OK;
    if (strcasecmp(v, no[i]) == 0)
      return *out = 0, CBEV_OK;
  }
  return CBEV_EINVAL;
}

/* Index of v in "a|b|c" (case-insensitive), -1 when absent. */
static int enum_index(const char *choices, const char *v) {
  size_t vlen = strlen(v);
  int idx = 0;

  for (const char *p = choices; *p; idx++) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n == vlen && strncasecmp(p, v, n) == 0)
      return idx;
    if (!bar)
      break;
    p = bar + 1;
  }
  return -1;
}

/* "all" or a comma list of snake_case event types into a mask. */
static int parse_publish(const char *v, unsigned *mask, char *why, size_t whylen) {
  char *copy, *save = NULL;
  int rc = CBEV_EINVAL;

  if (strcasecmp(v, "all") == 0) {
    *mask = (1u << (CBEV_EVENT_UNKNOWN + 1)) - 1u;
    return CBEV_OK;
  }
  if (!(copy = strdup(v))) {
    snprintf(why, whylen, "out of memory");
    return CBEV_ENOMEM;
  }
  *mask = 0;
  for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
    cbev_event_type ty = cbev_event_type_from_name(t);
    if (ty == CBEV_EVENT_UNKNOWN) {
      snprintf(why, whylen, "unknown event type \"%.40s\" (all, or a comma list of: "
                            "broadcast_start, broadcast_stop, room_subject_change, user_enter, "
                            "user_leave, follow, unfollow, fanclub_join, chat_message, "
                            "private_message, tip, media_purchase)", t);
      goto out;
    }
    *mask |= 1u << ty;
  }
  if (!*mask) {
    snprintf(why, whylen, "must be all or a comma list of event types");
    goto out;
  }
  rc = CBEV_OK;
out:
  free(copy);
  return rc;
}

static int has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 1;
  return 0;
}

/* Converts key i from text v into cfg by its type (see config_impl.h). */
int cb2m_config_convert_key(cb2m_config *cfg, size_t i, const char *v, char *why, size_t whylen) {
  const key_def *k = &KEYS[i];
  char *end;
  int rc;

  if (has_control(v)) {
    snprintf(why, whylen, "must not contain control characters");
    return CBEV_EINVAL;
  }
  if ((k->flags & F_NOT_EMPTY) && !*v) {
    snprintf(why, whylen, "must not be empty");
    return CBEV_EINVAL;
  }
  switch (k->type) {
  case T_BOOL:
    if (parse_bool(v, &FIELD(cfg, k->off, int)) != CBEV_OK) {
      snprintf(why, whylen, "must be true or false (also yes/no, on/off, 1/0)");
      return CBEV_EINVAL;
    }
    return CBEV_OK;
  case T_INT: {
    long n;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < (long)k->min || n > (long)k->max ||
        (k->choices && enum_index(k->choices, v) < 0)) {
      if (k->bad)
        snprintf(why, whylen, "%s", k->bad);
      else
        snprintf(why, whylen, "must be a whole number from %.0f to %.0f", k->min, k->max);
      return CBEV_EINVAL;
    }
    FIELD(cfg, k->off, int) = (int)n;
    return CBEV_OK;
  }
  case T_DOUBLE: {
    double d;
    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d > k->max ||
        ((k->flags & F_MIN_EXCL) ? !(d > k->min) : d < k->min)) {
      snprintf(why, whylen, "must be a number %s %g and at most %g",
               (k->flags & F_MIN_EXCL) ? "above" : "from", k->min, k->max);
      return CBEV_EINVAL;
    }
    FIELD(cfg, k->off, double) = d;
    return CBEV_OK;
  }
  case T_ENUM: {
    int idx = enum_index(k->choices, v);
    const char *p = k->choices;
    if (idx < 0) {
      char list[96];
      snprintf(list, sizeof list, "%s", k->choices);
      for (char *c = list; *c; c++)
        if (*c == '|')
          *c = ',';
      snprintf(why, whylen, "must be one of %s", list);
      return CBEV_EINVAL;
    }
    if (k->aux != NO_AUX)
      FIELD(cfg, k->aux, int) = idx;
    /* Store the canonical (lower-case) spelling. */
    for (int n = 0; n < idx; n++)
      p = strchr(p, '|') + 1;
    if (!(FIELD(cfg, k->off, char *) = strndup(p, strcspn(p, "|")))) {
      snprintf(why, whylen, "out of memory");
      return CBEV_ENOMEM;
    }
    return CBEV_OK;
  }
  case T_LIST:
    if ((rc = parse_publish(v, &FIELD(cfg, k->aux, unsigned), why, whylen)) != CBEV_OK)
      return rc;
    break;
  case T_RATE:
    if (cbev_ratelimit_parse(v, &FIELD(cfg, k->aux, unsigned), &FIELD(cfg, k->aux2, double)) !=
        CBEV_OK) {
      snprintf(why, whylen, "%s", k->bad ? k->bad : "must be N/SECONDS");
      return CBEV_EINVAL;
    }
    break;
  case T_STRING:
  case T_URL:
    break;
  }
  if ((k->flags & F_EMPTY_NULL) && !*v)
    return CBEV_OK; /* stays NULL */
  if (!(FIELD(cfg, k->off, char *) = strdup(v))) {
    snprintf(why, whylen, "out of memory");
    return CBEV_ENOMEM;
  }
  return CBEV_OK;
}

static int check_mqtt_url(cb2m_config *cfg, char *why, size_t whylen) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *part = NULL;
  int rc = CBEV_EINVAL;

  if (!u || curl_url_set(u, CURLUPART_URL, cfg->mqtt.url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
    snprintf(why, whylen, "not a URL (mqtt://host[:port] or mqtts://host[:port])");
    goto out;
  }
  if (strcmp(scheme, "mqtt") != 0 && strcmp(scheme, "mqtts") != 0) {
    snprintf(why, whylen, "scheme must be mqtt:// or mqtts://");
    goto out;
  }
  /* Credentials in the URL would end up in --print-config and
   * cb/bridge/info: they belong in mqtt.username and mqtt.password. */
  if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
      curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK) {
    snprintf(why, whylen, "must not hold a user or password (use mqtt.username and mqtt.password)");
    goto out;
  }
  if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
      curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK ||
      (curl_url_get(u, CURLUPART_PATH, &part, 0) == CURLUE_OK && strcmp(part, "/") != 0 && *part)) {
    snprintf(why, whylen, "must be just mqtt://host[:port] or mqtts://host[:port] (no path or query)");
    goto out;
  }
  cfg->mqtt.tls = strcmp(scheme, "mqtts") == 0;
  cfg->mqtt.port = cfg->mqtt.tls ? 8883 : 1883;
  if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
    char *end;
    long n;
    errno = 0;
    n = strtol(port, &end, 10);
    if (errno || *end || n < 1 || n > 65535) {
      snprintf(why, whylen, "port must be 1 to 65535");
      goto out;
    }
    cfg->mqtt.port = (int)n;
  }
  /* libmosquitto wants an IPv6 literal without its brackets. */
  if (host[0] == '[') {
    size_t n = strlen(host);
    memmove(host, host + 1, n - 2);
    host[n - 2] = '\0';
  }
  if (!(cfg->mqtt.host = strdup(host))) {
    snprintf(why, whylen, "out of memory");
    rc = CBEV_ENOMEM;
    goto out;
  }
  rc = CBEV_OK;
out:
  curl_free(part);
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return rc;
}

static int check_password(cb2m_config *cfg, char *why, size_t whylen) {
  if (cfg->mqtt.password && !cfg->mqtt.username) {
    snprintf(why, whylen, "needs mqtt.username (MQTT sends a password only with a user name)");
    return CBEV_EINVAL;
  }
  return CBEV_OK;
}

static int check_client_id(cb2m_config *cfg, char *why, size_t whylen) {
  char host[256] = "";
  size_t n;

  if (cfg->mqtt.client_id) {
    if (strlen(cfg->mqtt.client_id) > 65535) {
      snprintf(why, whylen, "longer than 65535 bytes");
      return CBEV_EINVAL;
    }
    return CBEV_OK;
  }
  if (gethostname(host, sizeof host - 1) != 0 || !host[0])
    snprintf(host, sizeof host, "localhost");
  n = strlen("cb2mqtt-") + strlen(host) + 1;
  if (!(cfg->mqtt.client_id = malloc(n))) {
    snprintf(why, whylen, "out of memory");
    return CBEV_ENOMEM;
  }
  snprintf(cfg->mqtt.client_id, n, "cb2mqtt-%s", host);
  {
    /* Derived from the host name, not the table's default (""). An empty
     * value set on purpose keeps the layer that set it. */
    int i = find_key("mqtt", "client_id");
    if (i >= 0 && cfg->origin[i].layer == CB2M_FROM_DEFAULT)
      cfg->origin[i].layer = CB2M_FROM_COMPUTED;
  }
  return CBEV_OK;
}

static int check_base_topic(cb2m_config *cfg, char *why, size_t whylen) {
  return cb2m_topic_base_check(cfg->mqtt.base_topic, why, whylen);
}

static int check_key_file(cb2m_config *cfg, char *why, size_t whylen) {
  if (!cfg->mqtt.cert_file != !cfg->mqtt.key_file) {
    snprintf(why, whylen, "mqtt.cert_file and mqtt.key_file go together: set both or neither");
    return CBEV_EINVAL;
  }
  return CBEV_OK;
}

static int check_api(cb2m_config *cfg, char *why, size_t whylen) {
  cbev_session_config sc;
  cbev_session *s = NULL;
  const char *base = cfg->events.api;

  if (strcasecmp(base, "production") == 0)
    base = CBEV_PRODUCTION_BASE;
  else if (strcasecmp(base, "testbed") == 0)
    base = CBEV_TESTBED_BASE;
  /* A base the session accepts is exactly a base that will work: let it
   * judge (https or loopback http, no userinfo, query or fragment). */
  cbev_session_config_init(&sc);
  sc.base_url = base;
  sc.username = "check";
  sc.token = "check";
  if (cbev_session_new(&sc, &s) != CBEV_OK) {
    snprintf(why, whylen, "must be production, testbed, or a base URL: https://, or http:// to a "
                          "loopback host (127.0.0.0/8, ::1, localhost), without query");
    return CBEV_EINVAL;
  }
  cbev_session_free(s);
  if (!(cfg->events.api_base = strdup(base))) {
    snprintf(why, whylen, "out of memory");
    return CBEV_ENOMEM;
  }
  return CBEV_OK;
}

static int check_prefix(cb2m_config *cfg, char *why, size_t whylen) {
  if (cb2m_topic_base_check(cfg->homeassistant.prefix, why, whylen) != CBEV_OK)
    return CBEV_EINVAL;
  if (strcmp(cfg->homeassistant.prefix, cfg->mqtt.base_topic) == 0) {
    snprintf(why, whylen, "must differ from mqtt.base_topic");
    return CBEV_EINVAL;
  }
  return CBEV_OK;
}

static int check_metrics_listen(cb2m_config *cfg, char *why, size_t whylen) {
  char host[256];
  unsigned port;
  const char *reason;

  if (!cfg->metrics.listen)
    return CBEV_OK;
  if (cb2m_metrics_listen_parse(cfg->metrics.listen, host, sizeof host, &port, &reason) !=
      CBEV_OK) {
    snprintf(why, whylen, "%s", reason);
    return CBEV_EINVAL;
  }
  return CBEV_OK;
}

static int check_log_level(cb2m_config *cfg, char *why, size_t whylen) {
  if (cbev_log_level_parse(cfg->log.level_name, &cfg->log.level) != CBEV_OK) {
    snprintf(why, whylen, "must be one of error,warn,info,debug");
    return CBEV_EINVAL;
  }
  return CBEV_OK;
}


/* ---- comparison (reload) ------------------------------------------------- */

static int same_text(const char *x, const char *y) {
  if (!x || !y)
    return x == y;
  return strcmp(x, y) == 0;
}

int cb2m_config_section_differs(const cb2m_config *a, const cb2m_config *b, const char *section,
                                char *key, size_t keylen) {
  for (size_t i = 0; i < NKEYS; i++) {
    const key_def *k = &KEYS[i];
    int same;

    if (strcmp(k->section, section) != 0)
      continue;
    switch (k->type) {
    case T_BOOL:
    case T_INT: same = CFIELD(a, k->off, int) == CFIELD(b, k->off, int); break;
    case T_DOUBLE: same = CFIELD(a, k->off, double) == CFIELD(b, k->off, double); break;
    default: same = same_text(CFIELD(a, k->off, char *), CFIELD(b, k->off, char *)); break;
    }
    if (!same) {
      if (keylen)
        snprintf(key, keylen, "%s.%s", k->section, k->key);
      return 1;
    }
  }
  return 0;
}

int cb2m_config_broadcaster_same(const cb2m_broadcaster_config *a,
                                 const cb2m_broadcaster_config *b) {
  return same_text(a->name, b->name) && same_text(a->token, b->token) &&
         same_text(a->url, b->url) && same_text(a->secret_file, b->secret_file);
}

/*
 * config.c: cb2mqtt's settings table and everything that reads it: the INI
 * file (through inih), the environment, the command line, *_file secrets
 * and systemd credentials, validation, --print-config, --help, the example
 * INI and the settings of cb/bridge/info.
 *
 * Loading happens in two steps. First every source is collected as text,
 * each value tagged with its layer (file < environment < command line), so
 * precedence is only "a higher layer replaces a lower one" and a key given
 * twice in one layer is caught. Then one pass over the table converts each
 * key by its type, reads the secret files that won, and runs the key's
 * check, which validates and derives the parsed fields (host and port from
 * mqtt.url, the publish mask, ...). Broadcasters are resolved last.
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
#include "config.h"
#include "fsutil.h"
#include "metrics_http.h"
#include "topics.h"

#define DEFAULT_CONFIG_FILE "/etc/cb2mqtt/cb2mqtt.ini"
#define ENV_PREFIX "CB2MQTT_"
#define ENV_NAME_MAX 128 /* CB2MQTT_BROADCASTER_<64 bytes>_TOKEN_FILE fits */
#define SECTION_MAX (12 + CB2M_NAME_MAX) /* "broadcaster:" + name */

/* ---- the table ---------------------------------------------------------- */

typedef enum ktype {
  T_STRING, /* char * */
  T_BOOL,   /* int 0/1: true/false/yes/no/on/off/1/0 */
  T_INT,    /* int within [min, max] */
  T_DOUBLE, /* double within [min, max] (min exclusive with F_MIN_EXCL) */
  T_ENUM,   /* char * holding one of choices ("a|b|c"); index at aux */
            /* (T_INT with choices: one of those numbers, e.g. "5|311") */
  T_LIST,   /* char *: "all" or a comma list of event types; mask at aux */
  T_RATE,   /* char * "N/T"; unsigned N at aux, double T at aux2 */
  T_URL     /* char *: a URL, parsed by the key's check */
} ktype;

#define F_SECRET 1u     /* masked in output, absent from info; has <key>_file */
#define F_EMPTY_NULL 2u /* an empty value means unset: stored as NULL */
#define F_MIN_EXCL 4u   /* T_DOUBLE: the value must be above min */
#define F_NOT_EMPTY 8u  /* an empty value is an error */
#define NO_AUX SIZE_MAX

typedef int (*check_fn)(cb2m_config *cfg, char *why, size_t whylen);

typedef struct key_def {
  const char *section, *key;
  ktype type;
  const char *def;
  double min, max;
  unsigned flags;
  size_t off, aux, aux2; /* into cb2m_config; aux/aux2 NO_AUX when unused */
  const char *choices;   /* T_ENUM: "a|b|c" */
  const char *bad;       /* reason when the value does not parse or is out of bounds; NULL: generic */
  check_fn check;        /* after every key is converted; NULL: none */
  const char *help;
} key_def;

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

/* Order matters twice: it is the order of --help, --print-config and the
 * example, and checks may rely on keys above them (prefix vs base_topic). */
static const key_def KEYS[] = {
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
     "publish the user of anonymous tips"},
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
#define NKEYS (sizeof KEYS / sizeof KEYS[0])
_Static_assert(sizeof KEYS / sizeof KEYS[0] <= CB2M_CONFIG_KEYS_MAX, "grow CB2M_CONFIG_KEYS_MAX");

static const char *const SECTIONS[] = {"mqtt", "events", "metrics", "homeassistant", "log"};
#define NSECTIONS (sizeof SECTIONS / sizeof SECTIONS[0])

/* The four ways to give a broadcaster's secret; exactly one per layer. */
static const char *const BC_FIELDS[] = {"token", "token_file", "url", "url_file"};
enum { BF_TOKEN, BF_TOKEN_FILE, BF_URL, BF_URL_FILE, BF_COUNT };

#define FIELD(cfg, off, type) (*(type *)(void *)((char *)(cfg) + (off)))
#define CFIELD(cfg, off, type) (*(const type *)(const void *)((const char *)(cfg) + (off)))

/* ---- the loader's collected text --------------------------------------- */

enum { L_NONE = 0, L_FILE = 1, L_ENV = 2, L_FLAG = 3 };

typedef struct raw_value {
  char *text;    /* the value; for via_file, the path of the secret */
  int layer;     /* L_NONE: not given */
  int via_file;  /* <key>_file / ..._FILE */
  unsigned line; /* L_FILE */
} raw_value;

typedef struct bc_raw {
  char *name;
  int layer;      /* of the source below; L_NONE when none was given */
  int field;      /* BF_*, -1 when none */
  char *value;    /* a secret, or the path of one */
  unsigned line;  /* L_FILE: the line of the source */
  char origin[160]; /* for --print-config, e.g. "env CB_TOKEN_FILE" */
} bc_raw;

typedef struct loader {
  raw_value val[NKEYS];
  bc_raw *bcs;
  size_t n_bcs;
  char *err;
  size_t errlen;
  int failed;
  unsigned fail_line; /* the line of a file error, 0 otherwise */
  /* INI reading state. */
  const char *file;
  const char *pos, *end;
  unsigned line;
  char section[SECTION_MAX + 1];
  int section_known; /* 0: before the first section header */
} loader;

/* Records the first error only: later ones are usually its echoes. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(loader *ld, const char *fmt, ...) {
  va_list ap;

  if (ld->failed)
    return 0;
  ld->failed = 1;
  ld->fail_line = ld->file ? ld->line : 0;
  if (ld->errlen) {
    va_start(ap, fmt);
    vsnprintf(ld->err, ld->errlen, fmt, ap);
    va_end(ap);
  }
  return 0;
}

void cb2m_config_secret_free(char *s) {
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

static void free_secret(char *s) { cb2m_config_secret_free(s); }

static int replace_text(loader *ld, char **slot, const char *v) {
  char *copy = strdup(v);

  if (!copy)
    return fail(ld, "config: out of memory");
  free_secret(*slot);
  *slot = copy;
  return 1;
}

static int find_key(const char *section, const char *key) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].key, key) == 0)
      return (int)i;
  return -1;
}

/* Sets key i (or its _file variant) at layer; within one layer a key may be
 * given once, and a secret either directly or as a file, not both. */
static int set_key(loader *ld, size_t i, const char *v, int layer, int via_file, const char *name) {
  raw_value *r = &ld->val[i];
  const key_def *k = &KEYS[i];

  if (r->layer == layer && layer == L_FILE) {
    if (r->via_file == via_file)
      return fail(ld, "config: %s.%s: set twice (%s:%u and line %u)", k->section, name, ld->file,
                  r->line, ld->line);
    return fail(ld, "config: %s.%s: set only one of %s and %s_file (%s:%u and line %u)", k->section,
                k->key, k->key, k->key, ld->file, r->line, ld->line);
  }
  if (r->layer == layer && layer == L_ENV)
    return fail(ld, "config: %s.%s: set only one of %s and %s_FILE", k->section, k->key, name, name);
  if (r->layer > layer)
    return 1;
  if (!replace_text(ld, &r->text, v))
    return 0;
  r->layer = layer;
  r->via_file = via_file;
  r->line = layer == L_FILE ? ld->line : 0;
  return 1;
}

/* Finds a broadcaster by name, case-insensitively: "Alice" and "alice"
 * would share state files on case-insensitive file systems and one
 * environment name, so they are one broadcaster spelled two ways. */
static bc_raw *find_bc(loader *ld, const char *name, int create, const char *where) {
  bc_raw *b;

  if (!cb2m_name_valid(name)) {
    fail(ld, "config: broadcaster:%.80s: the name must be 1 to 64 of A-Z a-z 0-9 _ - and not "
             "\"bridge\" (%s)", name, where);
    return NULL;
  }
  for (size_t i = 0; i < ld->n_bcs; i++) {
    if (strcasecmp(ld->bcs[i].name, name) != 0)
      continue;
    if (strcmp(ld->bcs[i].name, name) != 0) {
      fail(ld, "config: broadcaster:%s: also spelled %s; names differing only in case are one "
               "broadcaster (%s)", name, ld->bcs[i].name, where);
      return NULL;
    }
    return &ld->bcs[i];
  }
  if (!create)
    return NULL;
  if (ld->n_bcs >= CB2M_BROADCASTERS_MAX) {
    fail(ld, "config: too many broadcasters (at most %d)", CB2M_BROADCASTERS_MAX);
    return NULL;
  }
  b = realloc(ld->bcs, (ld->n_bcs + 1) * sizeof *b);
  if (!b) {
    fail(ld, "config: out of memory");
    return NULL;
  }
  ld->bcs = b;
  b = &ld->bcs[ld->n_bcs];
  memset(b, 0, sizeof *b);
  b->field = -1;
  if (!(b->name = strdup(name))) {
    fail(ld, "config: out of memory");
    return NULL;
  }
  ld->n_bcs++;
  return b;
}

/* Gives broadcaster b its secret source at layer; one source per layer. */
static int set_bc(loader *ld, bc_raw *b, int field, const char *v, int layer, const char *origin) {
  if (b->layer == layer && b->field >= 0) {
    if (layer == L_FILE && b->field == field)
      return fail(ld, "config: broadcaster:%s.%s: set twice (%s:%u and line %u)", b->name,
                  BC_FIELDS[field], ld->file, b->line, ld->line);
    if (layer == L_FILE)
      return fail(ld, "config: broadcaster:%s: set exactly one of token, token_file, url, url_file "
                      "(%s:%u and line %u)", b->name, ld->file, b->line, ld->line);
    return fail(ld, "config: broadcaster:%s: two secrets in the environment (%s and %s); set "
                    "exactly one", b->name, b->origin + 4, origin + 4);
  }
  if (b->layer > layer)
    return 1;
  if (!replace_text(ld, &b->value, v))
    return 0;
  b->layer = layer;
  b->field = field;
  b->line = layer == L_FILE ? ld->line : 0;
  snprintf(b->origin, sizeof b->origin, "%s", origin);
  return 1;
}

/* ---- the INI file -------------------------------------------------------- */

/* A section header seen by the reader: one of SECTIONS, or
 * "broadcaster:NAME", which creates the broadcaster even when no key
 * follows (its token may come from systemd credentials). */
static int enter_section(loader *ld, const char *name, size_t len) {
  char where[64];

  snprintf(where, sizeof where, "line %u", ld->line);
  if (len > SECTION_MAX) {
    return fail(ld, "config: %s:%u: section name longer than %d bytes", ld->file, ld->line,
                SECTION_MAX);
  }
  memcpy(ld->section, name, len);
  ld->section[len] = '\0';
  ld->section_known = 1;
  if (strncmp(ld->section, "broadcaster:", 12) == 0)
    return find_bc(ld, ld->section + 12, 1, where) != NULL;
  for (size_t i = 0; i < NSECTIONS; i++)
    if (strcmp(ld->section, SECTIONS[i]) == 0)
      return 1;
  return fail(ld, "config: %s:%u: unknown section [%s] (known: mqtt, events, metrics, homeassistant, log, "
                  "broadcaster:NAME)", ld->file, ld->line, ld->section);
}

/* inih's line reader. Feeding inih line by line is what gives every error
 * a line number (Debian builds inih without INI_HANDLER_LINENO) and lets
 * the section name be tracked here in full (inih cuts it at 49 bytes).
 * Leading blanks are dropped, so an indented line is a line of its own,
 * never a continuation of the previous value. */
static char *read_ini_line(char *buf, int size, void *stream) {
  loader *ld = stream;
  const char *p = ld->pos, *nl, *end;
  size_t len;

  if (ld->failed || p >= ld->end)
    return NULL;
  nl = memchr(p, '\n', (size_t)(ld->end - p));
  end = nl ? nl : ld->end;
  ld->pos = nl ? nl + 1 : ld->end;
  ld->line++;
  if (memchr(p, '\0', (size_t)(end - p))) {
    fail(ld, "config: %s:%u: NUL byte in the line", ld->file, ld->line);
    return NULL;
  }
  if (ld->line == 1 && end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
    p += 3; /* UTF-8 byte order mark */
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (end > p && end[-1] == '\r')
    end--;
  len = (size_t)(end - p);
  if (len > CB2M_INI_LINE_MAX || (size_t)size < CB2M_INI_LINE_MAX + 2) {
    fail(ld, "config: %s:%u: line longer than %d bytes (put long values such as feed URLs in a "
             "*_file)", ld->file, ld->line, CB2M_INI_LINE_MAX);
    return NULL;
  }
  if (len && *p == '[') {
    const char *close = memchr(p, ']', len);
    const char *rest;
    if (!close) {
      fail(ld, "config: %s:%u: missing ']' in the section header", ld->file, ld->line);
      return NULL;
    }
    for (rest = close + 1; rest < end && (*rest == ' ' || *rest == '\t'); rest++)
      ;
    if (rest < end && *rest != ';' && *rest != '#') {
      fail(ld, "config: %s:%u: text after the section header", ld->file, ld->line);
      return NULL;
    }
    if (!enter_section(ld, p + 1, (size_t)(close - p - 1)))
      return NULL;
  }
  memcpy(buf, p, len);
  buf[len] = '\n';
  buf[len + 1] = '\0';
  return buf;
}

static int on_ini(void *user, const char *section, const char *name, const char *value) {
  loader *ld = user;
  size_t nlen = strlen(name);
  int i;

  (void)section; /* inih's copy may be cut short: ld->section is whole */
  if (ld->failed)
    return 0;
  if (!ld->section_known)
    return fail(ld, "config: %s:%u: %s is outside any section", ld->file, ld->line, name);
  if (strncmp(ld->section, "broadcaster:", 12) == 0) {
    char where[64], origin[160];
    bc_raw *b;
    snprintf(where, sizeof where, "line %u", ld->line);
    if (!(b = find_bc(ld, ld->section + 12, 1, where)))
      return 0;
    for (int f = 0; f < BF_COUNT; f++) {
      if (strcmp(name, BC_FIELDS[f]) == 0) {
        snprintf(origin, sizeof origin, "file line %u (%s)", ld->line, BC_FIELDS[f]);
        return set_bc(ld, b, f, value, L_FILE, origin);
      }
    }
    return fail(ld, "config: %s.%.64s: unknown key (%s:%u; use token, token_file, url or url_file)",
                ld->section, name, ld->file, ld->line);
  }
  if ((i = find_key(ld->section, name)) >= 0)
    return set_key(ld, (size_t)i, value, L_FILE, 0, name);
  if (nlen > 5 && strcmp(name + nlen - 5, "_file") == 0) {
    char base[64];
    snprintf(base, sizeof base, "%.*s", (int)(nlen - 5), name);
    i = find_key(ld->section, base);
    if (i >= 0 && (KEYS[i].flags & F_SECRET))
      return set_key(ld, (size_t)i, value, L_FILE, 1, name);
  }
  return fail(ld, "config: %s.%.64s: unknown key (%s:%u)", ld->section, name, ld->file, ld->line);
}

/* Reads path into the loader. A missing default file is not an error. */
static int load_file(loader *ld, const char *path, int must_exist) {
  char *text = NULL;
  size_t len = 0;
  int rc;

  if (cb2m_read_file(path, CB2M_CONFIG_FILE_MAX, &text, &len) != 0) {
    if (!must_exist && errno == ENOENT)
      return 1;
    return fail(ld, "config: %s: cannot read: %s", path,
                errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
  }
  ld->file = path;
  ld->pos = text;
  ld->end = text + len;
  ld->line = 0;
  rc = ini_parse_stream(read_ini_line, ld, on_ini, ld);
  /* inih goes on after a syntax error; the handler may have failed on a
   * later line, so the earlier of the two is the one reported. */
  if (rc > 0 && (!ld->failed || (unsigned)rc < ld->fail_line)) {
    ld->failed = 0;
    ld->line = (unsigned)rc;
    fail(ld, "config: %s:%d: syntax error (expected [section], key = value or a ; comment)", path,
         rc);
  } else if (rc < 0 && !ld->failed) {
    fail(ld, "config: %s: out of memory while parsing", path);
  }
  free(text);
  ld->pos = ld->end = NULL;
  return !ld->failed;
}

/* ---- the environment ----------------------------------------------------- */

static const char *env_get(char **envp, const char *name) {
  size_t n = strlen(name);

  for (char **e = envp; e && *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
      return *e + n + 1;
  return NULL;
}

/* CB2MQTT_<A>_<B><suffix>, upper case, '-' written as '_'. */
static void env_name(char *buf, size_t size, const char *a, const char *b, const char *suffix) {
  snprintf(buf, size, ENV_PREFIX "%s_%s%s", a, b, suffix);
  for (char *p = buf; *p; p++) {
    if (*p >= 'a' && *p <= 'z')
      *p = (char)(*p - 'a' + 'A');
    else if (*p == '-')
      *p = '_';
  }
}

static int env_known_key(const char *var) {
  char name[ENV_NAME_MAX];

  for (size_t i = 0; i < NKEYS; i++) {
    env_name(name, sizeof name, KEYS[i].section, KEYS[i].key, "");
    if (strcmp(var, name) == 0)
      return 1;
    env_name(name, sizeof name, KEYS[i].section, KEYS[i].key, "_FILE");
    if ((KEYS[i].flags & F_SECRET) && strcmp(var, name) == 0)
      return 1;
  }
  return 0;
}

/* CB2MQTT_BROADCASTER_<NAME>_<FIELD>: upper case, '-' written as '_'. */
static void bc_env_name(char *buf, size_t size, const char *name, int field) {
  snprintf(buf, size, ENV_PREFIX "BROADCASTER_%s_%s", name, BC_FIELDS[field]);
  for (char *p = buf; *p; p++) {
    if (*p >= 'a' && *p <= 'z')
      *p = (char)(*p - 'a' + 'A');
    else if (*p == '-')
      *p = '_';
  }
}

/* Broadcasters from the environment: CB2MQTT_BROADCASTERS="alice,bob"
 * adds names; their secrets come from the variables applied below. */
static int list_env_broadcasters(loader *ld, char **envp) {
  const char *list = env_get(envp, "CB2MQTT_BROADCASTERS");
  char *copy = NULL, *save = NULL;
  int ok = 0;

  if (!list)
    return 1;
  if (!(copy = strdup(list)))
    return fail(ld, "config: out of memory");
  for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
    if (!find_bc(ld, tok, 1, "CB2MQTT_BROADCASTERS"))
      goto out;
  ok = 1;
out:
  free(copy);
  return ok;
}

/* CB2MQTT_BROADCASTER_<NAME>_TOKEN / _TOKEN_FILE / _URL / _URL_FILE, for
 * every broadcaster known by now (file sections, CB2MQTT_BROADCASTERS,
 * shortcuts): the environment's source replaces the file's. No field name
 * is another's "_"-suffix, so a variable belongs to one (name, field)
 * pair, except that "a-b" and "a_b" share their variables: refused when
 * such a variable is set. */
static int apply_env_broadcasters(loader *ld, char **envp) {
  char name[ENV_NAME_MAX], other[ENV_NAME_MAX], origin[160];
  const char *v;

  for (size_t i = 0; i < ld->n_bcs; i++) {
    for (int f = 0; f < BF_COUNT; f++) {
      bc_env_name(name, sizeof name, ld->bcs[i].name, f);
      if (!(v = env_get(envp, name)))
        continue;
      for (size_t j = 0; j < ld->n_bcs; j++) {
        bc_env_name(other, sizeof other, ld->bcs[j].name, f);
        if (j != i && strcmp(name, other) == 0)
          return fail(ld, "config: %s: ambiguous: broadcasters %s and %s share this name", name,
                      ld->bcs[i].name, ld->bcs[j].name);
      }
      snprintf(origin, sizeof origin, "env %s", name);
      if (!set_bc(ld, &ld->bcs[i], f, v, L_ENV, origin))
        return 0;
    }
  }
  return 1;
}

/* 1 when var is CB2MQTT_BROADCASTER_<NAME>_<FIELD> of a known name. */
static int env_known_broadcaster(loader *ld, const char *var) {
  char name[ENV_NAME_MAX];

  for (size_t i = 0; i < ld->n_bcs; i++) {
    for (int f = 0; f < BF_COUNT; f++) {
      bc_env_name(name, sizeof name, ld->bcs[i].name, f);
      if (strcmp(var, name) == 0)
        return 1;
    }
  }
  return 0;
}

/* The single-broadcaster shortcuts of SPEC section 5. */
static int load_env_shortcuts(loader *ld, char **envp) {
  const char *url = env_get(envp, "CB_EVENTS_URL"), *user = env_get(envp, "CB_USERNAME");
  const char *token = env_get(envp, "CB_TOKEN"), *token_file = env_get(envp, "CB_TOKEN_FILE");
  cbev_session_config sc;
  cbev_session *s = NULL;
  bc_raw *b;
  int ok = 0;

  if (token && token_file)
    return fail(ld, "config: CB_TOKEN and CB_TOKEN_FILE: set only one");
  if (url && (token || token_file))
    return fail(ld, "config: CB_EVENTS_URL: set it or CB_TOKEN / CB_TOKEN_FILE, not both");
  if ((token || token_file) && !user)
    return fail(ld, "config: %s: needs CB_USERNAME", token ? "CB_TOKEN" : "CB_TOKEN_FILE");
  if (url) {
    /* The session parses the feed URL exactly as it will at run time; the
     * broadcaster is named after the URL's user name. Never echo the URL. */
    cbev_session_config_init(&sc);
    sc.events_url = url;
    if (cbev_session_new(&sc, &s) != CBEV_OK)
      return fail(ld, "config: CB_EVENTS_URL: not a feed URL (https://eventsapi.chaturbate.com/"
                      "events/USERNAME/TOKEN/, or http:// to a loopback host)");
    if (user && strcmp(user, cbev_session_username(s)) != 0) {
      fail(ld, "config: CB_USERNAME: differs from the user name in CB_EVENTS_URL");
      goto out;
    }
    if (!(b = find_bc(ld, cbev_session_username(s), 1, "CB_EVENTS_URL")) ||
        !set_bc(ld, b, BF_URL, url, L_ENV, "env CB_EVENTS_URL"))
      goto out;
  } else if (user) {
    if (!(b = find_bc(ld, user, 1, "CB_USERNAME")))
      goto out;
    if (token && !set_bc(ld, b, BF_TOKEN, token, L_ENV, "env CB_TOKEN"))
      goto out;
    if (token_file && !set_bc(ld, b, BF_TOKEN_FILE, token_file, L_ENV, "env CB_TOKEN_FILE"))
      goto out;
  }
  ok = 1;
out:
  cbev_session_free(s);
  return ok;
}

static int load_env(loader *ld, char **envp) {
  char name[ENV_NAME_MAX];
  const char *v;

  ld->file = NULL;
  for (size_t i = 0; i < NKEYS; i++) {
    env_name(name, sizeof name, KEYS[i].section, KEYS[i].key, "");
    if ((v = env_get(envp, name)) && !set_key(ld, i, v, L_ENV, 0, name))
      return 0;
    if (!(KEYS[i].flags & F_SECRET))
      continue;
    env_name(name, sizeof name, KEYS[i].section, KEYS[i].key, "_FILE");
    if ((v = env_get(envp, name))) {
      char plain[ENV_NAME_MAX];
      env_name(plain, sizeof plain, KEYS[i].section, KEYS[i].key, "");
      if (!set_key(ld, i, v, L_ENV, 1, plain))
        return 0;
    }
  }
  if (!list_env_broadcasters(ld, envp) || !load_env_shortcuts(ld, envp) ||
      !apply_env_broadcasters(ld, envp))
    return 0;
  /* A mistyped variable would otherwise be ignored without a word. */
  for (char **e = envp; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
    if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0 || n >= sizeof name)
      continue;
    memcpy(name, *e, n);
    name[n] = '\0';
    if (strcmp(name, "CB2MQTT_BROADCASTERS") == 0 || env_known_key(name) ||
        env_known_broadcaster(ld, name))
      continue;
    if (strncmp(name, "CB2MQTT_BROADCASTER_", 20) == 0)
      return fail(ld, "config: %s: unknown variable (list new broadcasters in "
                      "CB2MQTT_BROADCASTERS; fields: _TOKEN, _TOKEN_FILE, _URL, _URL_FILE)", name);
    return fail(ld, "config: %s: unknown variable (CB2MQTT_<SECTION>_<KEY>, see --help)", name);
  }
  return 1;
}

/* ---- conversion and checks ------------------------------------------------ */

/* Reads a secret from path: at most 64 KiB, one trailing newline (LF or
 * CRLF) dropped, then non-empty and free of control characters. Returns
 * the secret (free_secret() it), or NULL with the reason in why (names
 * the path, never quotes the content). The one secret-file reader: start,
 * and the re-read after an authentication failure. */
static char *read_secret_file(const char *path, char *why, size_t whylen) {
  char *text = NULL;
  size_t len = 0;

  if (!path || !*path) {
    snprintf(why, whylen, "empty file name");
    return NULL;
  }
  if (cb2m_read_file(path, CB2M_SECRET_FILE_MAX, &text, &len) != 0) {
    snprintf(why, whylen, "cannot read %s: %s", path,
             errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
    return NULL;
  }
  if (len && text[len - 1] == '\n') {
    text[--len] = '\0';
    if (len && text[len - 1] == '\r')
      text[--len] = '\0';
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c < 0x20 || c == 0x7f) {
      free_secret(text);
      snprintf(why, whylen, "%s holds a control character or more than one line", path);
      return NULL;
    }
  }
  if (!len) {
    free(text);
    snprintf(why, whylen, "%s is empty", path);
    return NULL;
  }
  return text;
}

/* read_secret_file() for the loader: what names the key in errors. */
static char *read_secret(loader *ld, const char *what, const char *path) {
  char why[CB2M_PATH_MAX + 64];
  char *text = read_secret_file(path, why, sizeof why);

  if (!text)
    fail(ld, "config: %s: %s", what, why);
  return text;
}

int cb2m_config_reread_secret(const cb2m_broadcaster_config *b, char **secret, char *err,
                              size_t errlen) {
  char why[CB2M_PATH_MAX + 64];

  *secret = NULL;
  if (!b || !b->secret_file) {
    snprintf(err, errlen, "no secret file to read again");
    return -1;
  }
  *secret = read_secret_file(b->secret_file, why, sizeof why);
  if (!*secret) {
    snprintf(err, errlen, "broadcaster:%s: %s", b->name, why);
    return -1;
  }
  return 0;
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
  int rc = -1;

  if (strcasecmp(v, "all") == 0) {
    *mask = (1u << (CBEV_EVENT_UNKNOWN + 1)) - 1u;
    return 0;
  }
  if (!(copy = strdup(v))) {
    snprintf(why, whylen, "out of memory");
    return -1;
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
  rc = 0;
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

/* Converts key i from text v into cfg by its type. Returns 1, or 0 with
 * why set. */
static int convert_key(cb2m_config *cfg, size_t i, const char *v, char *why, size_t whylen) {
  const key_def *k = &KEYS[i];
  char *end;

  if (has_control(v)) {
    snprintf(why, whylen, "must not contain control characters");
    return 0;
  }
  if ((k->flags & F_NOT_EMPTY) && !*v) {
    snprintf(why, whylen, "must not be empty");
    return 0;
  }
  switch (k->type) {
  case T_BOOL:
    if (parse_bool(v, &FIELD(cfg, k->off, int)) != 0) {
      snprintf(why, whylen, "must be true or false (also yes/no, on/off, 1/0)");
      return 0;
    }
    return 1;
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
      return 0;
    }
    FIELD(cfg, k->off, int) = (int)n;
    return 1;
  }
  case T_DOUBLE: {
    double d;
    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d > k->max ||
        ((k->flags & F_MIN_EXCL) ? !(d > k->min) : d < k->min)) {
      snprintf(why, whylen, "must be a number %s %g and at most %g",
               (k->flags & F_MIN_EXCL) ? "above" : "from", k->min, k->max);
      return 0;
    }
    FIELD(cfg, k->off, double) = d;
    return 1;
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
      return 0;
    }
    if (k->aux != NO_AUX)
      FIELD(cfg, k->aux, int) = idx;
    /* Store the canonical (lower-case) spelling. */
    for (int n = 0; n < idx; n++)
      p = strchr(p, '|') + 1;
    if (!(FIELD(cfg, k->off, char *) = strndup(p, strcspn(p, "|")))) {
      snprintf(why, whylen, "out of memory");
      return 0;
    }
    return 1;
  }
  case T_LIST:
    if (parse_publish(v, &FIELD(cfg, k->aux, unsigned), why, whylen) != 0)
      return 0;
    break;
  case T_RATE:
    if (cbev_ratelimit_parse(v, &FIELD(cfg, k->aux, unsigned), &FIELD(cfg, k->aux2, double)) !=
        CBEV_OK) {
      snprintf(why, whylen, "%s", k->bad ? k->bad : "must be N/SECONDS");
      return 0;
    }
    break;
  case T_STRING:
  case T_URL:
    break;
  }
  if ((k->flags & F_EMPTY_NULL) && !*v)
    return 1; /* stays NULL */
  if (!(FIELD(cfg, k->off, char *) = strdup(v))) {
    snprintf(why, whylen, "out of memory");
    return 0;
  }
  return 1;
}

static int convert(loader *ld, cb2m_config *cfg, char **envp) {
  const char *creds = env_get(envp, "CREDENTIALS_DIRECTORY");
  char why[512];

  for (size_t i = 0; i < NKEYS; i++) {
    const key_def *k = &KEYS[i];
    raw_value *r = &ld->val[i];
    const char *v = r->layer ? r->text : k->def;
    char *secret = NULL;
    int ok;

    cfg->origin[i].layer = (unsigned char)(r->layer == L_FILE   ? CB2M_FROM_FILE
                                           : r->layer == L_ENV  ? CB2M_FROM_ENV
                                           : r->layer == L_FLAG ? CB2M_FROM_FLAG
                                                                : CB2M_FROM_DEFAULT);
    cfg->origin[i].line = r->line;
    cfg->origin[i].via_file = (unsigned char)r->via_file;
    if (r->via_file) {
      char what[64];
      snprintf(what, sizeof what, "%s.%s_file", k->section, k->key);
      if (!(secret = read_secret(ld, what, r->text)))
        return 0;
      v = secret;
    } else if ((k->flags & F_SECRET) && !*v && creds && *creds) {
      /* systemd LoadCredential=: <section>_<key> (mqtt_password), used
       * when present; a missing one is not an error. */
      char path[CB2M_PATH_MAX], what[96];
      snprintf(path, sizeof path, "%s/%s_%s", creds, k->section, k->key);
      snprintf(what, sizeof what, "%s.%s (credential %s_%s)", k->section, k->key, k->section,
               k->key);
      if (access(path, F_OK) == 0) {
        if (!(secret = read_secret(ld, what, path)))
          return 0;
        v = secret;
        cfg->origin[i].layer = CB2M_FROM_CREDENTIAL;
      }
    }
    ok = convert_key(cfg, i, v, why, sizeof why);
    free_secret(secret);
    if (!ok)
      return fail(ld, "config: %s.%s: %s", k->section, k->key, why);
  }
  for (size_t i = 0; i < NKEYS; i++)
    if (KEYS[i].check && KEYS[i].check(cfg, why, sizeof why) != 0)
      return fail(ld, "config: %s.%s: %s", KEYS[i].section, KEYS[i].key, why);
  return 1;
}

static int check_mqtt_url(cb2m_config *cfg, char *why, size_t whylen) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *part = NULL;
  int rc = -1;

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
    goto out;
  }
  rc = 0;
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
    return -1;
  }
  return 0;
}

static int check_client_id(cb2m_config *cfg, char *why, size_t whylen) {
  char host[256] = "";
  size_t n;

  if (cfg->mqtt.client_id) {
    if (strlen(cfg->mqtt.client_id) > 65535) {
      snprintf(why, whylen, "longer than 65535 bytes");
      return -1;
    }
    return 0;
  }
  if (gethostname(host, sizeof host - 1) != 0 || !host[0])
    snprintf(host, sizeof host, "localhost");
  n = strlen("cb2mqtt-") + strlen(host) + 1;
  if (!(cfg->mqtt.client_id = malloc(n))) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  snprintf(cfg->mqtt.client_id, n, "cb2mqtt-%s", host);
  return 0;
}

static int check_base_topic(cb2m_config *cfg, char *why, size_t whylen) {
  return cb2m_topic_base_valid(cfg->mqtt.base_topic, why, whylen) == 0 ? 0 : -1;
}

static int check_key_file(cb2m_config *cfg, char *why, size_t whylen) {
  if (!cfg->mqtt.cert_file != !cfg->mqtt.key_file) {
    snprintf(why, whylen, "mqtt.cert_file and mqtt.key_file go together: set both or neither");
    return -1;
  }
  return 0;
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
    return -1;
  }
  cbev_session_free(s);
  if (!(cfg->events.api_base = strdup(base))) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  return 0;
}

static int check_prefix(cb2m_config *cfg, char *why, size_t whylen) {
  if (cb2m_topic_base_valid(cfg->homeassistant.prefix, why, whylen) != 0)
    return -1;
  if (strcmp(cfg->homeassistant.prefix, cfg->mqtt.base_topic) == 0) {
    snprintf(why, whylen, "must differ from mqtt.base_topic");
    return -1;
  }
  return 0;
}

static int check_metrics_listen(cb2m_config *cfg, char *why, size_t whylen) {
  char host[256];
  unsigned port;
  const char *reason;

  if (!cfg->metrics.listen)
    return 0;
  if (cb2m_metrics_listen_parse(cfg->metrics.listen, host, sizeof host, &port, &reason) != 0) {
    snprintf(why, whylen, "%s", reason);
    return -1;
  }
  return 0;
}

static int check_log_level(cb2m_config *cfg, char *why, size_t whylen) {
  if (cbev_log_level_parse(cfg->log.level_name, &cfg->log.level) != CBEV_OK) {
    snprintf(why, whylen, "must be one of error,warn,info,debug");
    return -1;
  }
  return 0;
}

/* ---- broadcasters --------------------------------------------------------- */

/* Resolves b's secret into o: the winning source, else systemd
 * credentials (cb_token_<name>, or cb_token when it is the only one).
 * Then lets a session judge it as it will at run time. */
static int resolve_bc(loader *ld, const cb2m_config *cfg, bc_raw *b, cb2m_broadcaster_config *o,
                      char **origin, char **envp) {
  const char *creds = env_get(envp, "CREDENTIALS_DIRECTORY");
  char what[320], org[160];
  cbev_session_config sc;
  cbev_session *s = NULL;
  int rc;

  if (!(o->name = strdup(b->name)))
    return fail(ld, "config: out of memory");
  snprintf(what, sizeof what, "broadcaster:%s.%s", b->name, b->field >= 0 ? BC_FIELDS[b->field] : "token");
  snprintf(org, sizeof org, "%s", b->origin);
  if (b->layer == L_FILE)
    snprintf(org, sizeof org, "file %s:%u (%s)", cfg->config_file ? cfg->config_file : "?", b->line,
             BC_FIELDS[b->field]);
  switch (b->field) {
  case BF_TOKEN:
    o->token = strdup(b->value);
    break;
  case BF_URL:
    o->url = strdup(b->value);
    break;
  case BF_TOKEN_FILE:
    if (!(o->token = read_secret(ld, what, b->value)) || !(o->secret_file = strdup(b->value)))
      return fail(ld, "config: out of memory");
    break;
  case BF_URL_FILE:
    if (!(o->url = read_secret(ld, what, b->value)) || !(o->secret_file = strdup(b->value)))
      return fail(ld, "config: out of memory");
    break;
  default: {
    char path[CB2M_PATH_MAX];
    if (!creds || !*creds)
      return fail(ld, "config: broadcaster:%s: no token: set token, token_file, url or url_file "
                      "(or CB_TOKEN / CB2MQTT_BROADCASTER_<NAME>_TOKEN in the environment)", b->name);
    snprintf(path, sizeof path, "%s/cb_token_%s", creds, b->name);
    snprintf(org, sizeof org, "credential cb_token_%s", b->name);
    if (access(path, F_OK) != 0 && ld->n_bcs == 1) {
      snprintf(path, sizeof path, "%s/cb_token", creds);
      snprintf(org, sizeof org, "credential cb_token");
    }
    if (access(path, F_OK) != 0)
      return fail(ld, "config: broadcaster:%s: no token: set token, token_file, url or url_file, "
                      "or provide the credential cb_token_%s", b->name, b->name);
    snprintf(what, sizeof what, "broadcaster:%s.token (%s)", b->name, org);
    if (!(o->token = read_secret(ld, what, path)) || !(o->secret_file = strdup(path)))
      return fail(ld, "config: out of memory");
  }
  }
  if (!o->token && !o->url)
    return fail(ld, "config: out of memory");
  if (!(*origin = strdup(org)))
    return fail(ld, "config: out of memory");
  cbev_session_config_init(&sc);
  sc.base_url = cfg->events.api_base;
  sc.timeout_s = cfg->events.timeout;
  if (o->url) {
    sc.events_url = o->url;
  } else {
    sc.username = o->name;
    sc.token = o->token;
  }
  rc = cbev_session_new(&sc, &s);
  cbev_session_free(s);
  if (rc == CBEV_OK)
    return 1;
  if (rc == CBEV_ENOMEM)
    return fail(ld, "config: out of memory");
  if (o->url)
    return fail(ld, "config: %s: not a usable feed URL (https://eventsapi.chaturbate.com/events/"
                    "USERNAME/TOKEN/, or http:// to a loopback host; timeout= 0 to 90)", what);
  return fail(ld, "config: %s: not a usable token (1 to 255 bytes, no control characters)", what);
}

static int build_broadcasters(loader *ld, cb2m_config *cfg, char **envp) {
  if (ld->n_bcs == 0)
    return fail(ld, "config: no broadcaster: add a [broadcaster:NAME] section, or set "
                    "CB_EVENTS_URL, or CB_USERNAME with CB_TOKEN / CB_TOKEN_FILE");
  cfg->broadcasters = calloc(ld->n_bcs, sizeof *cfg->broadcasters);
  cfg->broadcaster_origins = calloc(ld->n_bcs, sizeof *cfg->broadcaster_origins);
  if (!cfg->broadcasters || !cfg->broadcaster_origins)
    return fail(ld, "config: out of memory");
  for (size_t i = 0; i < ld->n_bcs; i++) {
    /* Counted first so that cb2m_config_free() releases a half-built one. */
    cfg->n_broadcasters++;
    if (!resolve_bc(ld, cfg, &ld->bcs[i], &cfg->broadcasters[i], &cfg->broadcaster_origins[i],
                    envp))
      return 0;
  }
  return 1;
}

static void loader_free(loader *ld) {
  for (size_t i = 0; i < NKEYS; i++)
    free_secret(ld->val[i].text);
  for (size_t i = 0; i < ld->n_bcs; i++) {
    free(ld->bcs[i].name);
    free_secret(ld->bcs[i].value);
  }
  free(ld->bcs);
}

/* ---- the command line -------------------------------------------------- */

/* Names an unknown option without echoing its value: "--token=abc" must
 * not reach stderr, so only a plain option name is quoted. */
static void unknown_option(loader *ld, const char *arg, int opt) {
  size_t n = 0;

  if (arg && strncmp(arg, "--", 2) == 0) {
    while (arg[2 + n] && (islower((unsigned char)arg[2 + n]) || arg[2 + n] == '-') && n < 32)
      n++;
    if (n && (arg[2 + n] == '\0' || arg[2 + n] == '=')) {
      fail(ld, "cb2mqtt: unknown option --%.*s (see --help; tokens are never accepted on the "
               "command line)", (int)n, arg + 2);
      return;
    }
  } else if (opt > 0 && isalnum(opt)) {
    fail(ld, "cb2mqtt: unknown option -%c (see --help)", opt);
    return;
  }
  fail(ld, "cb2mqtt: unknown option (see --help; tokens are never accepted on the command line)");
}

int cb2m_config_load(cb2m_config *cfg, int argc, char **argv, char **envp, char *err, size_t errlen) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},    {"check-config", no_argument, NULL, 'C'},
      {"print-config", no_argument, NULL, 'P'},    {"healthcheck", no_argument, NULL, 'H'},
      {"log-level", required_argument, NULL, 'l'}, {"log-format", required_argument, NULL, 'f'},
      {"version", no_argument, NULL, 'V'},         {"help", no_argument, NULL, 'h'},
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
  /* glibc: optind = 0 resets getopt completely, so tests may call this
   * more than once per process. */
  optind = 0;
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
      fail(&ld, "cb2mqtt: option %s needs a value (see --help)",
           optopt == 'c' ? "-c" : (optopt == 'l' ? "--log-level" : "--log-format"));
      goto out;
    default:
      unknown_option(&ld, argv[optind - 1], optopt);
      goto out;
    }
  }
  if (optind < argc) {
    /* Never echoed: a token pasted here must not reach a log. */
    fail(&ld, "cb2mqtt: unexpected argument (see --help; tokens are never accepted on the command "
              "line)");
    goto out;
  }
  if (cfg->help || cfg->version) {
    status = 0;
    goto out;
  }
  if (!load_file(&ld, file ? file : DEFAULT_CONFIG_FILE, file != NULL))
    goto out;
  if (ld.file && !(cfg->config_file = strdup(ld.file))) {
    fail(&ld, "config: out of memory");
    goto out;
  }
  if (!load_env(&ld, envp))
    goto out;
  if (flag_level && !set_key(&ld, (size_t)find_key("log", "level"), flag_level, L_FLAG, 0, "level"))
    goto out;
  if (flag_format &&
      !set_key(&ld, (size_t)find_key("log", "format"), flag_format, L_FLAG, 0, "format"))
    goto out;
  if (!convert(&ld, cfg, envp))
    goto out;
  /* --healthcheck only needs state_dir: it must work in a container whose
   * secrets are not mounted for the health probe. */
  if (!cfg->healthcheck && !build_broadcasters(&ld, cfg, envp))
    goto out;
  status = 0;
out:
  loader_free(&ld);
  return status;
}

void cb2m_config_free(cb2m_config *cfg) {
  if (!cfg)
    return;
  for (size_t i = 0; i < NKEYS; i++) {
    if (KEYS[i].type == T_BOOL || KEYS[i].type == T_INT || KEYS[i].type == T_DOUBLE)
      continue;
    if (KEYS[i].flags & F_SECRET)
      free_secret(FIELD(cfg, KEYS[i].off, char *));
    else
      free(FIELD(cfg, KEYS[i].off, char *));
  }
  free(cfg->mqtt.host);
  free(cfg->events.api_base);
  for (size_t i = 0; cfg->broadcasters && i < cfg->n_broadcasters; i++) {
    free(cfg->broadcasters[i].name);
    free_secret(cfg->broadcasters[i].token);
    free_secret(cfg->broadcasters[i].url);
    free(cfg->broadcasters[i].secret_file);
  }
  for (size_t i = 0; cfg->broadcaster_origins && i < cfg->n_broadcasters; i++)
    free(cfg->broadcaster_origins[i]);
  free(cfg->broadcasters);
  free(cfg->broadcaster_origins);
  free(cfg->config_file);
  memset(cfg, 0, sizeof *cfg);
}

/* ---- output -------------------------------------------------------------- */

static void value_text(const cb2m_config *cfg, const key_def *k, char *buf, size_t size) {
  switch (k->type) {
  case T_BOOL: snprintf(buf, size, "%s", CFIELD(cfg, k->off, int) ? "true" : "false"); break;
  case T_INT: snprintf(buf, size, "%d", CFIELD(cfg, k->off, int)); break;
  case T_DOUBLE: snprintf(buf, size, "%g", CFIELD(cfg, k->off, double)); break;
  default: {
    const char *s = CFIELD(cfg, k->off, char *);
    snprintf(buf, size, "%s", (k->flags & F_SECRET) && s ? CBEV_MASK : (s ? s : ""));
  }
  }
}

static void origin_text(const cb2m_config *cfg, size_t i, char *buf, size_t size) {
  const cb2m_config_origin *o = &cfg->origin[i];
  char env[ENV_NAME_MAX];

  env_name(env, sizeof env, KEYS[i].section, KEYS[i].key, o->via_file ? "_FILE" : "");
  switch (o->layer) {
  case CB2M_FROM_FILE:
    snprintf(buf, size, "file %s:%u%s", cfg->config_file ? cfg->config_file : "?", o->line,
             o->via_file ? " (read from its _file)" : "");
    break;
  case CB2M_FROM_ENV: snprintf(buf, size, "env %s", env); break;
  case CB2M_FROM_FLAG: snprintf(buf, size, "command line"); break;
  case CB2M_FROM_CREDENTIAL: snprintf(buf, size, "credential"); break;
  default:
    snprintf(buf, size, "%s", KEYS[i].check == check_client_id ? "default (cb2mqtt-<hostname>)"
                                                                : "default");
  }
}

int cb2m_config_print(const cb2m_config *cfg, FILE *out) {
  const char *section = "";
  char value[1024], origin[CB2M_PATH_MAX + 64];

  fprintf(out, "; cb2mqtt effective settings (secrets shown as %s)\n; config file: %s\n", CBEV_MASK,
          cfg->config_file ? cfg->config_file : "(none)");
  for (size_t i = 0; i < NKEYS; i++) {
    if (strcmp(section, KEYS[i].section) != 0) {
      section = KEYS[i].section;
      fprintf(out, "\n[%s]\n", section);
    }
    value_text(cfg, &KEYS[i], value, sizeof value);
    origin_text(cfg, i, origin, sizeof origin);
    fprintf(out, "%s = %-*s ; %s\n", KEYS[i].key, (int)(40 - strlen(KEYS[i].key)), value, origin);
  }
  for (size_t i = 0; i < cfg->n_broadcasters; i++) {
    const cb2m_broadcaster_config *b = &cfg->broadcasters[i];
    fprintf(out, "\n[broadcaster:%s]\n%-5s = %-35s ; %s\n", b->name, b->url ? "url" : "token", CBEV_MASK,
            cfg->broadcaster_origins && cfg->broadcaster_origins[i] ? cfg->broadcaster_origins[i]
                                                                    : "");
  }
  return ferror(out) ? -1 : 0;
}

static void type_text(const key_def *k, char *buf, size_t size) {
  switch (k->type) {
  case T_BOOL: snprintf(buf, size, "bool"); break;
  case T_INT:
    if (k->choices)
      snprintf(buf, size, "%s", k->choices);
    else
      snprintf(buf, size, "%.0f..%.0f", k->min, k->max);
    break;
  case T_DOUBLE:
    snprintf(buf, size, "number %s%g..%g", (k->flags & F_MIN_EXCL) ? ">" : "", k->min, k->max);
    break;
  case T_ENUM: snprintf(buf, size, "%s", k->choices); break;
  case T_LIST: snprintf(buf, size, "list"); break;
  case T_RATE: snprintf(buf, size, "N/SECONDS"); break;
  case T_URL: snprintf(buf, size, "URL"); break;
  case T_STRING: snprintf(buf, size, "%s", (k->flags & F_SECRET) ? "secret" : "text"); break;
  }
}

void cb2m_config_usage(FILE *out) {
  const char *section = "";

  fputs("usage: cb2mqtt [-c FILE] [--check-config] [--print-config] [--healthcheck]\n"
        "               [--log-level error|warn|info|debug] [--log-format text|json]\n"
        "               [--version] [--help]\n"
        "\n"
        "Republishes Chaturbate Events API feeds to an MQTT broker.\n"
        "\n"
        "  -c FILE          INI file (default " DEFAULT_CONFIG_FILE " when it exists)\n"
        "  --check-config   validate the settings, exit 0 or 2\n"
        "  --print-config   print the effective settings (secrets masked) and their origin\n"
        "  --healthcheck    exit 0 when the running bridge is healthy, else 1\n"
        "  --log-level L    error, warn, info or debug (beats log.level)\n"
        "  --log-format F   text or json (beats log.format)\n"
        "\n"
        "Settings, highest first: command line, environment, config file, defaults.\n"
        "Every key below is also CB2MQTT_<SECTION>_<KEY> (e.g. CB2MQTT_MQTT_URL); secrets\n"
        "also take <key>_file / CB2MQTT_<SECTION>_<KEY>_FILE (a file holding the secret).\n"
        "Broadcasters (at least one):\n"
        "  [broadcaster:NAME] sections with one of token, token_file, url, url_file;\n"
        "  CB_EVENTS_URL (a whole feed URL), or CB_USERNAME with CB_TOKEN / CB_TOKEN_FILE;\n"
        "  CB2MQTT_BROADCASTERS=alice,bob with CB2MQTT_BROADCASTER_<NAME>_TOKEN, _TOKEN_FILE,\n"
        "  _URL or _URL_FILE (NAME upper-cased, '-' written as '_');\n"
        "  systemd credentials: $CREDENTIALS_DIRECTORY/cb_token_<name> (or cb_token for one\n"
        "  broadcaster) and mqtt_password fill secrets that are not set otherwise.\n"
        "Tokens are never accepted on the command line.\n",
        out);
  for (size_t i = 0; i < NKEYS; i++) {
    char type[64];
    if (strcmp(section, KEYS[i].section) != 0) {
      section = KEYS[i].section;
      fprintf(out, "\n[%s]\n", section);
    }
    type_text(&KEYS[i], type, sizeof type);
    fprintf(out, "  %-25s %-22s default: %s\n      %s\n", KEYS[i].key, type,
            *KEYS[i].def ? KEYS[i].def : "(unset)", KEYS[i].help);
  }
  fputs("\nExit status: 0 ok, 1 fatal runtime error, 2 usage or configuration error,\n"
        "3 every broadcaster failed authentication.\n",
        out);
}

/* Writes text as "; " comment lines of at most ~76 columns. */
static void comment_wrapped(FILE *out, const char *text) {
  const char *p = text;

  while (*p) {
    size_t n = strlen(p), cut = n;
    if (n > 74) {
      cut = 74;
      while (cut > 0 && p[cut] != ' ')
        cut--;
      if (cut == 0)
        cut = 74;
    }
    fprintf(out, "; %.*s\n", (int)cut, p);
    p += cut;
    while (*p == ' ')
      p++;
  }
}

void cb2m_config_example(FILE *out) {
  const char *section = "";

  fputs("; cb2mqtt example configuration: every key with its default.\n"
        "; Install as " DEFAULT_CONFIG_FILE " (read when it exists) or pass -c FILE.\n"
        "; This file is generated from the settings table in src/bridge/config.c\n"
        "; (a unit test keeps the two equal): see `cb2mqtt --help`.\n"
        ";\n"
        "; Precedence, highest first: command line, environment, this file, defaults.\n"
        "; Every key is also the environment variable CB2MQTT_<SECTION>_<KEY>, e.g.\n"
        "; CB2MQTT_MQTT_URL, CB2MQTT_EVENTS_STATE_DIR (an empty value is a value).\n"
        "; Secrets (mqtt.password and each broadcaster's token or url) also take\n"
        "; <key>_file here and ..._FILE in the environment: a file holding the secret\n"
        "; (one trailing newline is dropped; at most 64 KiB). A key given twice, an\n"
        "; unknown key or section, and lines over 198 bytes are errors.\n"
        "; Booleans: true/false, yes/no, on/off, 1/0. Comments: ; or # at the start of a\n"
        "; line, or \" ;\" after a value.\n",
        out);
  for (size_t i = 0; i < NKEYS; i++) {
    const key_def *k = &KEYS[i];
    char type[64], line[512];
    if (strcmp(section, k->section) != 0) {
      section = k->section;
      fprintf(out, "\n[%s]\n", section);
    } else {
      fputc('\n', out);
    }
    type_text(k, type, sizeof type);
    snprintf(line, sizeof line, "%s (%s). %s", k->key, type, k->help);
    comment_wrapped(out, line);
    /* Secrets stay commented out: setting both forms in one file is an
     * error, so uncommenting the _file line must be enough. */
    if (k->flags & F_SECRET)
      fprintf(out, "; %s =\n; %s_file = /run/secrets/%s_%s\n", k->key, k->key, k->section, k->key);
    else
      fprintf(out, "%s =%s%s\n", k->key, *k->def ? " " : "", k->def);
  }
  fputs("\n"
        "; One [broadcaster:NAME] section per broadcaster (NAME: 1 to 64 of A-Z a-z\n"
        "; 0-9 _ -, not \"bridge\"; it is the topic level <base_topic>/NAME/...). At least\n"
        "; one is required. Give exactly one of:\n"
        ";   token = ...        the Events API token (a secret)\n"
        ";   token_file = ...   a file holding it (Docker secrets)\n"
        ";   url = ...          the whole feed URL https://.../events/NAME/TOKEN/\n"
        ";   url_file = ...     a file holding the feed URL\n"
        "; or none of them under systemd (cb2mqtt.service): the token is then read from\n"
        "; $CREDENTIALS_DIRECTORY/cb_token_NAME, or cb_token when there is only one\n"
        "; broadcaster. mqtt.password likewise falls back to the credential mqtt_password.\n"
        ";\n"
        "; From the environment instead of this file:\n"
        ";   one broadcaster: CB_EVENTS_URL (the whole feed URL; the name is its user),\n"
        ";     or CB_USERNAME with CB_TOKEN or CB_TOKEN_FILE;\n"
        ";   several: CB2MQTT_BROADCASTERS=alice,bob-2 with, for each name,\n"
        ";     CB2MQTT_BROADCASTER_<NAME>_TOKEN, _TOKEN_FILE, _URL or _URL_FILE, NAME\n"
        ";     upper-cased and '-' written as '_' (CB2MQTT_BROADCASTER_BOB_2_TOKEN_FILE).\n"
        ";   these variables also give a secret to a section of this file (no need to\n"
        ";     list it), and the environment's source replaces the file's.\n"
        "[broadcaster:alice]\n"
        "; token_file = /run/secrets/cb_token_alice\n",
        out);
}

char *cb2m_config_info_json(const cb2m_config *cfg) {
  cJSON *root = cJSON_CreateObject(), *sec = NULL;
  const char *section = "";
  char *text = NULL, *copy = NULL;

  if (!root || !cfg)
    goto out;
  for (size_t i = 0; i < NKEYS; i++) {
    const key_def *k = &KEYS[i];
    cJSON *item = NULL;
    if (strcmp(section, k->section) != 0) {
      section = k->section;
      if (!(sec = cJSON_AddObjectToObject(root, section)))
        goto out;
    }
    if (k->flags & F_SECRET)
      continue; /* absent, not even masked */
    switch (k->type) {
    case T_BOOL: item = cJSON_CreateBool(CFIELD(cfg, k->off, int)); break;
    case T_INT: item = cJSON_CreateNumber(CFIELD(cfg, k->off, int)); break;
    case T_DOUBLE: item = cJSON_CreateNumber(CFIELD(cfg, k->off, double)); break;
    default: {
      const char *s = CFIELD(cfg, k->off, char *);
      item = s ? cJSON_CreateString(s) : cJSON_CreateNull();
    }
    }
    if (!item || !cJSON_AddItemToObject(sec, k->key, item)) {
      cJSON_Delete(item);
      goto out;
    }
  }
  /* cJSON may allocate through libcbevents' hooks; the caller free()s. */
  text = cJSON_PrintUnformatted(root);
  if (text)
    copy = strdup(text);
out:
  cJSON_free(text);
  cJSON_Delete(root);
  return copy;
}

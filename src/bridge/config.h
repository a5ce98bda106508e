/*
 * config.h: cb2mqtt's settings (SPEC section 5). One table of keys in
 * config_keys.c (config_impl.h lists the parts) is read by everything
 * here: the INI file, the environment, the command line, validation, --print-config, --help, the settings part of
 * cb/bridge/info and the example config/cb2mqtt.ini.
 *
 * Precedence, highest first: command line, environment, config file,
 * defaults; systemd credentials fill secrets that are still unset.
 *
 * Ownership: cb2m_config_load() fills a caller-provided cb2m_config; every
 * pointer inside it (strings, the broadcaster array and its strings) is
 * owned by the cb2m_config and released by cb2m_config_free(), which also
 * wipes the secrets. Nothing is shared with argv or envp.
 */
#ifndef CB2M_CONFIG_H
#define CB2M_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "cbevents/error.h"
#include "cbevents/log.h"

/* Upper bounds the loader enforces. */
#define CB2M_CONFIG_FILE_MAX (1024 * 1024) /* bytes of the INI file */
#define CB2M_SECRET_FILE_MAX (64 * 1024)   /* bytes of a *_file secret */
#define CB2M_BROADCASTERS_MAX 1000
/* Longest INI line (bytes, without the newline): Debian's inih keeps 200
 * bytes per line including the newline and NUL, so longer lines are
 * refused with their line number instead of being cut silently. */
#define CB2M_INI_LINE_MAX 198
/* Room for the origin of every key (see cb2m_config.origin). */
#define CB2M_CONFIG_KEYS_MAX 40

/* Where an effective value came from, for --print-config. The loader also
 * tags the text it collects with DEFAULT (not given), FILE, ENV and FLAG:
 * they are in order of precedence, so a higher layer replaces a lower one
 * by comparison. */
typedef enum cb2m_config_layer {
  CB2M_FROM_DEFAULT = 0,
  CB2M_FROM_FILE,       /* line says where */
  CB2M_FROM_ENV,        /* CB2MQTT_<SECTION>_<KEY>[_FILE] */
  CB2M_FROM_FLAG,       /* --log-level, --log-format */
  CB2M_FROM_CREDENTIAL, /* $CREDENTIALS_DIRECTORY/... */
  CB2M_FROM_COMPUTED    /* no value given, derived instead: mqtt.client_id
                         * from the host name */
} cb2m_config_layer;

typedef struct cb2m_config_origin {
  unsigned char layer;    /* cb2m_config_layer */
  unsigned char via_file; /* a secret read from <key>_file / ..._FILE */
  unsigned line;          /* CB2M_FROM_FILE: 1-based line in config_file */
} cb2m_config_origin;

typedef struct cb2m_broadcaster_config {
  char *name;  /* validated: [A-Za-z0-9_-]{1,64}, not "bridge" */
  char *token; /* a secret; NULL when url is set */
  char *url;   /* the whole feed URL (a secret); NULL when token is set */
  /* The file the secret was read from (token_file, url_file, or a systemd
   * credential), read again before each try after an authentication
   * failure; it holds a token when token is set, else a feed URL. NULL
   * when the secret was given directly (token, url, CB_EVENTS_URL). */
  char *secret_file;
} cb2m_broadcaster_config;

typedef struct cb2m_config {
  struct {
    char *url;      /* as given: mqtt://host[:port] or mqtts://host[:port] */
    char *host;     /* parsed from url; an IPv6 literal without brackets */
    int port;       /* default 1883, or 8883 with mqtts:// */
    int tls;        /* mqtts:// */
    char *username; /* NULL when unset */
    char *password; /* a secret; NULL when unset */
    char *client_id; /* "cb2mqtt-<hostname>" unless set */
    char *base_topic;
    int qos;
    int protocol; /* 5 or 311 */
    int keepalive;
    char *ca_file, *cert_file, *key_file; /* NULL when unset */
    int tls_insecure;
    int health_interval; /* seconds between retained cb/bridge/health messages */
  } mqtt;
  struct {
    char *api;      /* production | testbed | base URL, as given */
    char *api_base; /* the resolved base URL */
    int timeout;
    double retry_backoff, retry_factor, retry_max_delay;
    char *rate_limit; /* as given, "N/T" */
    unsigned rate_requests;
    double rate_seconds;
    int shared_rate_limit;
    char *ca_file; /* NULL when unset */
    char *publish; /* as given */
    unsigned publish_mask; /* bit (1u << cbev_event_type), UNKNOWN included for "all" */
    char *payload; /* normalized | raw */
    int payload_raw;
    int expose_anonymous_tippers;
    char *state_dir;
    int max_queued;
    int auth_retry_interval; /* seconds between tries of a refused token */
  } events;
  struct {
    char *listen; /* host:port of GET /metrics; NULL: off */
  } metrics;
  struct {
    int discovery;
    char *prefix;
  } homeassistant;
  struct {
    char *level_name; /* error | warn | info | debug */
    cbev_log_level level;
    char *format; /* text | json */
    int json;
  } log;
  cb2m_broadcaster_config *broadcasters;
  size_t n_broadcasters;
  /* Parallel to broadcasters: where each one's secret came from, e.g.
   * "env CB_TOKEN_FILE" (never the secret itself). */
  char **broadcaster_origins;
  /* Command-line actions. */
  int help, version, check_config, print_config, healthcheck;
  char *config_file; /* the file read, NULL when none */
  /* Per key of the table, in table order (used by cb2m_config_print). */
  cb2m_config_origin origin[CB2M_CONFIG_KEYS_MAX];
} cb2m_config;

/* Loads the settings from argv (argv[0] is the program name; getopt_long
 * may permute the array), envp (NULL-terminated "K=V" strings, may be
 * NULL; the process environment is never read, so tests pass their own)
 * and the config file (-c FILE, else /etc/cb2mqtt/cb2mqtt.ini when it
 * exists). Returns CBEV_OK, or CBEV_EINVAL for every failure (a bad
 * setting or option, a file that cannot be read, running out of memory)
 * with err holding one line that names it, such as "config: mqtt.qos:
 * must be 0, 1 or 2" or a usage message (never a secret). With --help or --version nothing else is read. With
 * --healthcheck no broadcaster is required and no token is read. cfg is
 * always initialised, on error too, and must be freed. */
int cb2m_config_load(cb2m_config *cfg, int argc, char **argv, char **envp, char *err,
                     size_t errlen);
/* Reads b's secret_file again, with the rules of the start (those of
 * cbev_read_secret_file(), cbevents/secret.h, at most
 * CB2M_SECRET_FILE_MAX bytes). Returns CBEV_OK with *secret a new string
 * (a token when b->token is set, else a feed URL; free it with
 * cb2m_config_secret_free(), which wipes it). Otherwise *secret is NULL
 * and err holds one line naming the broadcaster and the file (never the
 * content): CBEV_EINVAL when b has no secret_file or it is not a regular
 * file (a pipe or device would block the loop); CBEV_EIO (cannot be
 * read), CBEV_ETOOBIG, CBEV_EPARSE (empty, or a control character such as
 * a second line) or CBEV_ENOMEM. The secret is not validated beyond that:
 * the caller's session judges it as at start. */
int cb2m_config_reread_secret(const cb2m_broadcaster_config *b, char **secret, char *err,
                              size_t errlen);
/* Wipes the string s (a secret) and frees it; NULL is fine. */
void cb2m_config_secret_free(char *s);
/* 1 when some key of section ("mqtt", "events", "metrics", "homeassistant", "log")
 * has another value in b than in a, with key (keylen bytes, may be 0)
 * naming the first such key as "<section>.<key>"; else 0. Broadcasters
 * are not compared (see reload.h). */
int cb2m_config_section_differs(const cb2m_config *a, const cb2m_config *b, const char *section,
                                char *key, size_t keylen);
/* 1 when a and b are the same broadcaster with the same secret source
 * (name, token, feed URL and secret file all equal), else 0. */
int cb2m_config_broadcaster_same(const cb2m_broadcaster_config *a,
                                 const cb2m_broadcaster_config *b);
/* Frees and wipes everything cfg owns; NULL is fine. cfg is zeroed. */
void cb2m_config_free(cb2m_config *cfg);

/* --print-config: the effective settings as INI, each value followed by
 * where it came from; secrets (mqtt.password, every token and feed URL)
 * printed as "***". Returns CBEV_OK, or CBEV_EIO when writing failed. */
int cb2m_config_print(const cb2m_config *cfg, FILE *out);
/* --help: usage, the environment rules, then every key with its type,
 * default, bounds and help text. */
void cb2m_config_usage(FILE *out);
/* The documented example INI (config/cb2mqtt.ini is this output; a unit
 * test keeps them equal). */
void cb2m_config_example(FILE *out);
/* The settings without any secret (secret keys are absent, not masked) as
 * a JSON object text {"mqtt": {...}, "events": {...}, ...} for
 * cb/bridge/info: cJSON's output, cJSON_free() it; NULL when out of
 * memory. */
char *cb2m_config_info_json(const cb2m_config *cfg);

#endif

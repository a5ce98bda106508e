/*
 * config_out.c: what the settings table writes: --print-config, --help,
 * the example INI (config/cb2mqtt.ini) and the settings of cb/bridge/info.
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
#include "topics.h"

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
  /* mqtt.client_id is the one derived value (config_keys.c). */
  case CB2M_FROM_COMPUTED: snprintf(buf, size, "default (cb2mqtt-<hostname>)"); break;
  default: snprintf(buf, size, "default");
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
  return ferror(out) ? CBEV_EIO : CBEV_OK;
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
  char *text = NULL;

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
  text = cJSON_PrintUnformatted(root);
out:
  cJSON_Delete(root);
  return text;
}

/*
 * config_load.c: cb2m_config_load() and cb2m_config_free().
 *
 * Loading happens in two steps. First every source is collected as text,
 * each value tagged with its layer (file < environment < command line), so
 * precedence is only "a higher layer replaces a lower one" and a key given
 * twice in one layer is caught. Then one pass over the table converts each
 * key by its type, reads the secret files that won, and runs the key's
 * check. Broadcasters are resolved last.
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

/* Records the first error only: later ones are usually its echoes. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int fail(loader *ld, const char *fmt, ...) {
  va_list ap;

  if (ld->failed)
    return CBEV_EINVAL;
  ld->failed = 1;
  ld->fail_line = ld->file ? ld->line : 0;
  if (ld->errlen) {
    va_start(ap, fmt);
    vsnprintf(ld->err, ld->errlen, fmt, ap);
    va_end(ap);
  }
  return CBEV_EINVAL;
}

void cb2m_config_secret_free(char *s) {
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

static int replace_text(loader *ld, char **slot, const char *v) {
  char *copy = strdup(v);

  if (!copy)
    return fail(ld, "config: out of memory");
  free_secret(*slot);
  *slot = copy;
  return CBEV_OK;
}

int find_key(const char *section, const char *key) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].key, key) == 0)
      return (int)i;
  return -1;
}

/* Sets key i (or its _file variant) at layer; within one layer a key may be
 * given once, and a secret either directly or as a file, not both. */
int set_key(loader *ld, size_t i, const char *v, int layer, int via_file, const char *name) {
  raw_value *r = &ld->val[i];
  const key_def *k = &KEYS[i];

  if (r->layer == layer && layer == CB2M_FROM_FILE) {
    if (r->via_file == via_file)
      return fail(ld, "config: %s.%s: set twice (%s:%u and line %u)", k->section, name, ld->file,
                  r->line, ld->line);
    return fail(ld, "config: %s.%s: set only one of %s and %s_file (%s:%u and line %u)", k->section,
                k->key, k->key, k->key, ld->file, r->line, ld->line);
  }
  if (r->layer == layer && layer == CB2M_FROM_ENV)
    return fail(ld, "config: %s.%s: set only one of %s and %s_FILE", k->section, k->key, name, name);
  if (r->layer > layer)
    return CBEV_OK;
  if (replace_text(ld, &r->text, v) != CBEV_OK)
    return CBEV_EINVAL;
  r->layer = layer;
  r->via_file = via_file;
  r->line = layer == CB2M_FROM_FILE ? ld->line : 0;
  return CBEV_OK;
}

/* Finds a broadcaster by name, case-insensitively: "Alice" and "alice"
 * would share state files on case-insensitive file systems and one
 * environment name, so they are one broadcaster spelled two ways. */
bc_raw *find_bc(loader *ld, const char *name, int create, const char *where) {
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
int set_bc(loader *ld, bc_raw *b, int field, const char *v, int layer, const char *origin) {
  if (b->layer == layer && b->field >= 0) {
    if (layer == CB2M_FROM_FILE && b->field == field)
      return fail(ld, "config: broadcaster:%s.%s: set twice (%s:%u and line %u)", b->name,
                  BC_FIELDS[field], ld->file, b->line, ld->line);
    if (layer == CB2M_FROM_FILE)
      return fail(ld, "config: broadcaster:%s: set exactly one of token, token_file, url, url_file "
                      "(%s:%u and line %u)", b->name, ld->file, b->line, ld->line);
    return fail(ld, "config: broadcaster:%s: two secrets in the environment (%s and %s); set "
                    "exactly one", b->name, b->origin + 4, origin + 4);
  }
  if (b->layer > layer)
    return CBEV_OK;
  if (replace_text(ld, &b->value, v) != CBEV_OK)
    return CBEV_EINVAL;
  b->layer = layer;
  b->field = field;
  b->line = layer == CB2M_FROM_FILE ? ld->line : 0;
  snprintf(b->origin, sizeof b->origin, "%s", origin);
  return CBEV_OK;
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

    cfg->origin[i].layer = (unsigned char)r->layer;
    cfg->origin[i].line = r->line;
    cfg->origin[i].via_file = (unsigned char)r->via_file;
    if (r->via_file) {
      char what[64];
      snprintf(what, sizeof what, "%s.%s_file", k->section, k->key);
      if (!(secret = read_secret(ld, what, r->text)))
        return CBEV_EINVAL;
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
          return CBEV_EINVAL;
        v = secret;
        cfg->origin[i].layer = CB2M_FROM_CREDENTIAL;
      }
    }
    ok = cb2m_config_convert_key(cfg, i, v, why, sizeof why);
    free_secret(secret);
    if (ok != CBEV_OK)
      return fail(ld, "config: %s.%s: %s", k->section, k->key, why);
  }
  for (size_t i = 0; i < NKEYS; i++)
    if (KEYS[i].check && KEYS[i].check(cfg, why, sizeof why) != CBEV_OK)
      return fail(ld, "config: %s.%s: %s", KEYS[i].section, KEYS[i].key, why);
  return CBEV_OK;
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
  if (b->layer == CB2M_FROM_FILE)
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
    return CBEV_OK;
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
    if (resolve_bc(ld, cfg, &ld->bcs[i], &cfg->broadcasters[i], &cfg->broadcaster_origins[i],
                   envp) != CBEV_OK)
      return CBEV_EINVAL;
  }
  return CBEV_OK;
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
  int c, status = CBEV_EINVAL;

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
    status = CBEV_OK;
    goto out;
  }
  if (load_file(&ld, file ? file : DEFAULT_CONFIG_FILE, file != NULL) != CBEV_OK)
    goto out;
  if (ld.file && !(cfg->config_file = strdup(ld.file))) {
    fail(&ld, "config: out of memory");
    goto out;
  }
  if (load_env(&ld, envp) != CBEV_OK)
    goto out;
  if (flag_level && set_key(&ld, (size_t)find_key("log", "level"), flag_level, CB2M_FROM_FLAG, 0,
                            "level") != CBEV_OK)
    goto out;
  if (flag_format &&
      set_key(&ld, (size_t)find_key("log", "format"), flag_format, CB2M_FROM_FLAG, 0, "format") !=
          CBEV_OK)
    goto out;
  if (convert(&ld, cfg, envp) != CBEV_OK)
    goto out;
  /* --healthcheck only needs state_dir: it must work in a container whose
   * secrets are not mounted for the health probe. */
  if (!cfg->healthcheck && build_broadcasters(&ld, cfg, envp) != CBEV_OK)
    goto out;
  status = CBEV_OK;
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


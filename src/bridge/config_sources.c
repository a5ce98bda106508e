/*
 * config_sources.c: the sources of the settings: the INI file (through
 * inih), the environment (CB2MQTT_* and the CB_* shortcuts) and secret
 * files, collected as text into the loader (config_load.c converts them).
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
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ini.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/ratelimit.h"
#include "cbevents/secret.h"
#include "cbevents/session.h"
#include "config_impl.h"
#include "fsutil.h"
#include "topics.h"

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
    return find_bc(ld, ld->section + 12, 1, where) ? CBEV_OK : CBEV_EINVAL;
  for (size_t i = 0; i < NSECTIONS; i++)
    if (strcmp(ld->section, SECTIONS[i]) == 0)
      return CBEV_OK;
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
    if (enter_section(ld, p + 1, (size_t)(close - p - 1)) != CBEV_OK)
      return NULL;
  }
  memcpy(buf, p, len);
  buf[len] = '\n';
  buf[len + 1] = '\0';
  return buf;
}

/* One "name = value" line of the current section. */
static int ini_entry(loader *ld, const char *name, const char *value) {
  size_t nlen = strlen(name);
  int i;

  if (ld->failed)
    return CBEV_EINVAL;
  if (!ld->section_known)
    return fail(ld, "config: %s:%u: %s is outside any section", ld->file, ld->line, name);
  if (strncmp(ld->section, "broadcaster:", 12) == 0) {
    char where[64], origin[160];
    bc_raw *b;
    snprintf(where, sizeof where, "line %u", ld->line);
    if (!(b = find_bc(ld, ld->section + 12, 1, where)))
      return CBEV_EINVAL;
    for (int f = 0; f < BF_COUNT; f++) {
      if (strcmp(name, BC_FIELDS[f]) == 0) {
        snprintf(origin, sizeof origin, "file line %u (%s)", ld->line, BC_FIELDS[f]);
        return set_bc(ld, b, f, value, CB2M_FROM_FILE, origin);
      }
    }
    return fail(ld, "config: %s.%.64s: unknown key (%s:%u; use token, token_file, url or url_file)",
                ld->section, name, ld->file, ld->line);
  }
  if ((i = find_key(ld->section, name)) >= 0)
    return set_key(ld, (size_t)i, value, CB2M_FROM_FILE, 0, name);
  if (nlen > 5 && strcmp(name + nlen - 5, "_file") == 0) {
    char base[64];
    snprintf(base, sizeof base, "%.*s", (int)(nlen - 5), name);
    i = find_key(ld->section, base);
    if (i >= 0 && (KEYS[i].flags & F_SECRET))
      return set_key(ld, (size_t)i, value, CB2M_FROM_FILE, 1, name);
  }
  return fail(ld, "config: %s.%.64s: unknown key (%s:%u)", ld->section, name, ld->file, ld->line);
}

/* inih's handler, in inih's terms: nonzero to go on, 0 for an error. */
static int on_ini(void *user, const char *section, const char *name, const char *value) {
  (void)section; /* inih's copy may be cut short: ld->section is whole */
  return ini_entry(user, name, value) == CBEV_OK;
}

/* Reads path into the loader. A missing default file is not an error. */
int load_file(loader *ld, const char *path, int must_exist) {
  char *text = NULL;
  size_t len = 0;
  int rc;

  rc = cb2m_read_file(path, CB2M_CONFIG_FILE_MAX, &text, &len);
  if (rc == CBEV_ENOTFOUND && !must_exist)
    return CBEV_OK;
  if (rc != CBEV_OK)
    return fail(ld, "config: %s: cannot read: %s", path,
                rc == CBEV_ETOOBIG ? "larger than 1 MiB" : strerror(errno));
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
  return ld->failed ? CBEV_EINVAL : CBEV_OK;
}

/* ---- the environment ----------------------------------------------------- */

const char *env_get(char **envp, const char *name) {
  size_t n = strlen(name);

  for (char **e = envp; e && *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
      return *e + n + 1;
  return NULL;
}

/* CB2MQTT_<A>_<B><suffix>, upper case, '-' written as '_'. */
void env_name(char *buf, size_t size, const char *a, const char *b, const char *suffix) {
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
  int rc = CBEV_EINVAL;

  if (!list)
    return CBEV_OK;
  if (!(copy = strdup(list)))
    return fail(ld, "config: out of memory");
  for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
    if (!find_bc(ld, tok, 1, "CB2MQTT_BROADCASTERS"))
      goto out;
  rc = CBEV_OK;
out:
  free(copy);
  return rc;
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
      if (set_bc(ld, &ld->bcs[i], f, v, CB2M_FROM_ENV, origin) != CBEV_OK)
        return CBEV_EINVAL;
    }
  }
  return CBEV_OK;
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
  int rc = CBEV_EINVAL;

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
        set_bc(ld, b, BF_URL, url, CB2M_FROM_ENV, "env CB_EVENTS_URL") != CBEV_OK)
      goto out;
  } else if (user) {
    if (!(b = find_bc(ld, user, 1, "CB_USERNAME")))
      goto out;
    if (token && set_bc(ld, b, BF_TOKEN, token, CB2M_FROM_ENV, "env CB_TOKEN") != CBEV_OK)
      goto out;
    if (token_file &&
        set_bc(ld, b, BF_TOKEN_FILE, token_file, CB2M_FROM_ENV, "env CB_TOKEN_FILE") != CBEV_OK)
      goto out;
  }
  rc = CBEV_OK;
out:
  cbev_session_free(s);
  return rc;
}

int load_env(loader *ld, char **envp) {
  char name[ENV_NAME_MAX];
  const char *v;

  ld->file = NULL;
  for (size_t i = 0; i < NKEYS; i++) {
    env_name(name, sizeof name, KEYS[i].section, KEYS[i].key, "");
    if ((v = env_get(envp, name)) && set_key(ld, i, v, CB2M_FROM_ENV, 0, name) != CBEV_OK)
      return CBEV_EINVAL;
    if (!(KEYS[i].flags & F_SECRET))
      continue;
    env_name(name, sizeof name, KEYS[i].section, KEYS[i].key, "_FILE");
    if ((v = env_get(envp, name))) {
      char plain[ENV_NAME_MAX];
      env_name(plain, sizeof plain, KEYS[i].section, KEYS[i].key, "");
      if (set_key(ld, i, v, CB2M_FROM_ENV, 1, plain) != CBEV_OK)
        return CBEV_EINVAL;
    }
  }
  if (list_env_broadcasters(ld, envp) != CBEV_OK || load_env_shortcuts(ld, envp) != CBEV_OK ||
      apply_env_broadcasters(ld, envp) != CBEV_OK)
    return CBEV_EINVAL;
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
  return CBEV_OK;
}

/* ---- conversion and checks ------------------------------------------------ */

/* Reads a secret from path by the library's one rule for secret files
 * (cbevents/secret.h: at most CB2M_SECRET_FILE_MAX bytes, one trailing
 * newline dropped, then non-empty and free of control characters), so the
 * bridge and cbevents-tail agree on what a secret file is. Returns a
 * malloc'd copy (free_secret() it; the library's buffer is wiped and
 * freed here), or NULL and a CBEV_* code in *rc with the reason in why
 * (names the path, never quotes the content). The one secret-file reader
 * of the bridge: start, and the re-read after an authentication failure. */
static char *read_secret_file(const char *path, int *rc, char *why, size_t whylen) {
  char *lib = NULL, *text = NULL;

  struct stat st;

  if (!path || !*path) {
    *rc = CBEV_EINVAL;
    snprintf(why, whylen, "empty file name");
    return NULL;
  }
  /* A pipe or a device would block the daemon's one thread at a reload or
   * an auth retry (the library reads whatever opens: cbevents-tail takes
   * --token-file <(pass ...)). A folder gets the system's own message. */
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    *rc = CBEV_EINVAL;
    snprintf(why, whylen, "cannot read %s: not a regular file", path);
    return NULL;
  }
  *rc = cbev_read_secret_file(path, CB2M_SECRET_FILE_MAX, &lib);
  switch (*rc) {
  case CBEV_OK:
    break;
  case CBEV_ETOOBIG:
    snprintf(why, whylen, "cannot read %s: larger than %d KiB", path,
             CB2M_SECRET_FILE_MAX / 1024);
    return NULL;
  case CBEV_EPARSE:
    /* The library does not say which of the two it was. */
    snprintf(why, whylen, "%s is empty, or holds a control character or more than one line",
             path);
    return NULL;
  case CBEV_ENOMEM:
    snprintf(why, whylen, "out of memory");
    return NULL;
  default:
    snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  /* The config's strings are malloc'd and freed with free_secret(): a
   * copy keeps each allocator's memory with its own free. */
  if (!(text = strdup(lib))) {
    *rc = CBEV_ENOMEM;
    snprintf(why, whylen, "out of memory");
  }
  explicit_bzero(lib, strlen(lib));
  cbev_free(lib);
  return text;
}

/* read_secret_file() for the loader: what names the key in errors. */
char *read_secret(loader *ld, const char *what, const char *path) {
  char why[CB2M_PATH_MAX + 64];
  int rc;
  char *text = read_secret_file(path, &rc, why, sizeof why);

  if (!text)
    fail(ld, "config: %s: %s", what, why);
  return text;
}

int cb2m_config_reread_secret(const cb2m_broadcaster_config *b, char **secret, char *err,
                              size_t errlen) {
  char why[CB2M_PATH_MAX + 64];
  int rc;

  *secret = NULL;
  if (!b || !b->secret_file) {
    snprintf(err, errlen, "no secret file to read again");
    return CBEV_EINVAL;
  }
  *secret = read_secret_file(b->secret_file, &rc, why, sizeof why);
  if (!*secret) {
    snprintf(err, errlen, "broadcaster:%s: %s", b->name, why);
    return rc;
  }
  return CBEV_OK;
}

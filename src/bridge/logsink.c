/*
 * logsink.c: text or JSON log lines on stderr, every secret masked.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/session.h"
#include "logsink.h"

static void timestamp(char *buf, size_t size) {
  struct timeval tv;
  struct tm tm;

  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(tv.tv_usec / 1000));
}

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", out);
    else if (c < 0x20)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

void cb2m_logsink_write(void *userdata, cbev_log_level level, const char *msg) {
  cb2m_logsink *sink = userdata;
  char ts[96];
  char *masked = NULL;

  for (size_t i = 0; i < sink->n_secrets; i++) {
    char *m;
    if (!sink->secrets[i] || !*sink->secrets[i])
      continue;
    m = cbev_mask_secret(masked ? masked : msg, sink->secrets[i]);
    cbev_free(masked);
    masked = m;
    if (!masked) {
      msg = "(log line dropped: out of memory while masking)";
      break;
    }
  }
  if (masked)
    msg = masked;
  timestamp(ts, sizeof ts);
  if (sink->json) {
    fprintf(sink->out, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts,
            cbev_log_level_name(level));
    json_string(sink->out, msg);
    fputs("}\n", sink->out);
  } else {
    fprintf(sink->out, "%s %-5s %s\n", ts, cbev_log_level_name(level), msg);
  }
  fflush(sink->out);
  cbev_free(masked);
}

/* The token inside a feed URL, read by the library's own rule (a session
 * built only to split the URL; it sends nothing). NULL when the URL does
 * not parse or on ENOMEM (*oom set). */
static char *url_token(const char *url, int *oom) {
  cbev_session_config sc;
  cbev_session *s = NULL;
  char *tok = NULL;
  int rc;

  cbev_session_config_init(&sc);
  sc.events_url = url;
  rc = cbev_session_new(&sc, &s);
  if (rc == CBEV_OK && !(tok = strdup(cbev_session_token(s))))
    *oom = 1;
  if (rc == CBEV_ENOMEM)
    *oom = 1;
  cbev_session_free(s);
  return tok;
}

int cb2m_secrets_collect(const cb2m_config *cfg, cb2m_secrets *out) {
  size_t cap = cfg->n_broadcasters + 1;
  int oom = 0;

  out->n = 0;
  if (cap > CB2M_LOGSINK_MAX_SECRETS)
    cap = CB2M_LOGSINK_MAX_SECRETS;
  if (!(out->v = calloc(cap, sizeof *out->v)))
    return CBEV_ENOMEM;
  for (size_t i = 0; i < cfg->n_broadcasters && out->n < cap && !oom; i++) {
    const cb2m_broadcaster_config *bc = &cfg->broadcasters[i];
    char *tok = NULL;
    if (bc->token && !(tok = strdup(bc->token)))
      oom = 1;
    else if (!bc->token && bc->url)
      tok = url_token(bc->url, &oom);
    if (tok)
      out->v[out->n++] = tok;
  }
  if (!oom && cfg->mqtt.password && out->n < cap && !(out->v[out->n++] = strdup(cfg->mqtt.password)))
    oom = 1;
  if (oom) {
    cb2m_secrets_cleanup(out);
    return CBEV_ENOMEM;
  }
  return CBEV_OK;
}

void cb2m_secrets_cleanup(cb2m_secrets *s) {
  /* Copies of tokens and passwords: wiped like the config's own. */
  for (size_t i = 0; s->v && i < s->n; i++) {
    if (s->v[i])
      explicit_bzero(s->v[i], strlen(s->v[i]));
    free(s->v[i]);
  }
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

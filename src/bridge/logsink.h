/*
 * logsink.h: where cb2mqtt's log lines go: stderr, as text or JSON lines.
 *
 * Every line is masked against every secret the bridge knows (all tokens,
 * the MQTT password) before it is written, on top of the per-session
 * masking the library already does: a secret that reaches a message by any
 * path still never reaches the log.
 */
#ifndef CB2M_LOGSINK_H
#define CB2M_LOGSINK_H

#include <stdio.h>

#include "cbevents/log.h"
#include "config.h"

#define CB2M_LOGSINK_MAX_SECRETS 4096

typedef struct cb2m_logsink {
  FILE *out;           /* stderr */
  int json;            /* 0: text, 1: JSON lines */
  const char **secrets; /* borrowed, n_secrets of them */
  size_t n_secrets;
} cb2m_logsink;

/* The secrets of a configuration, as owned copies: every broadcaster's
 * token, however it was configured (token, token_file, credentials, or
 * taken out of url, url_file or CB_EVENTS_URL, percent-decoded the way the
 * session reads it), and the MQTT password. The sink masks each in raw and
 * percent-encoded form. */
typedef struct cb2m_secrets {
  char **v;
  size_t n;
} cb2m_secrets;

/* Fills out from cfg (at most CB2M_LOGSINK_MAX_SECRETS). Returns CBEV_OK,
 * or CBEV_ENOMEM with out empty. A feed URL that does not parse adds nothing:
 * the session refuses it at start. */
int cb2m_secrets_collect(const cb2m_config *cfg, cb2m_secrets *out);
/* Wipes and frees the copies; s may be empty or zeroed. */
void cb2m_secrets_cleanup(cb2m_secrets *s);

/* A cbev_log_fn; userdata is a cb2m_logsink. */
void cb2m_logsink_write(void *userdata, cbev_log_level level, const char *msg);

#endif

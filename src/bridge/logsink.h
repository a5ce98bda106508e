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

#define CB2M_LOGSINK_MAX_SECRETS 4096

typedef struct cb2m_logsink {
  FILE *out;           /* stderr */
  int json;            /* 0: text, 1: JSON lines */
  const char **secrets; /* borrowed, n_secrets of them */
  size_t n_secrets;
} cb2m_logsink;

/* A cbev_log_fn; userdata is a cb2m_logsink. */
void cb2m_logsink_write(void *userdata, cbev_log_level level, const char *msg);

#endif

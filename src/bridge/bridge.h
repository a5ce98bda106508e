/*
 * bridge.h: the cb2mqtt daemon as one object: every broadcaster's session,
 * queue and state, the curl-multi poller and the MQTT connection, driven by
 * one loop in one thread.
 *
 * One event's way: poller (HTTP) -> session (classify) -> normalizer ->
 * queue -> MQTT publish -> ack -> cursor file. Derived state is applied
 * when an event arrives (idempotent by id) and published on change.
 */
#ifndef CB2M_BRIDGE_H
#define CB2M_BRIDGE_H

#include <signal.h>

#include "config.h"

/* Exit statuses of SPEC section 5. */
#define CB2M_EXIT_OK 0
#define CB2M_EXIT_FATAL 1
#define CB2M_EXIT_CONFIG 2
#define CB2M_EXIT_AUTH 3

/* How long shutdown may spend delivering what is in flight. */
#define CB2M_SHUTDOWN_GRACE_MS 5000u

/* Loads the settings again for a reload, as at start (cb2m_config_load()
 * with the same command line). Returns 0, or non-zero with err holding
 * one line (never a secret); out is always initialised and freed by the
 * caller. */
typedef int (*cb2m_reload_load_fn)(void *ud, cb2m_config *out, char *err, size_t errlen);

typedef struct cb2m_bridge_hooks {
  volatile sig_atomic_t *stop;   /* SIGINT/SIGTERM set it */
  volatile sig_atomic_t *reload; /* SIGHUP sets it; NULL: no reload */
  cb2m_reload_load_fn load;      /* NULL: no reload */
  void *load_ud;
  int signal_fd; /* readable after a signal (the self-pipe); -1: none */
} cb2m_bridge_hooks;

/* Runs the bridge until *hooks->stop becomes non-zero (SIGINT/SIGTERM),
 * every broadcaster failed authentication, or a fatal error; reloads when
 * *hooks->reload becomes non-zero (SPEC 5, Signals): the new settings are
 * loaded and validated as at start, a bad result is logged and the
 * running settings stay. cfg is borrowed. Returns one of the CB2M_EXIT_*
 * codes. */
int cb2m_bridge_run(const cb2m_config *cfg, const cb2m_bridge_hooks *hooks);

#endif

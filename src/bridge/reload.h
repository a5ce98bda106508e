/*
 * reload.h: what a SIGHUP reload changes (SPEC 5, Signals), as a pure
 * comparison of the running settings with the newly loaded ones. The
 * bridge applies the plan; nothing here touches the network or the disk.
 *
 * Broadcasters are matched by name. One whose secret (token, feed URL or
 * the file it is read from) is the same in both is untouched: its session,
 * queue and publishes in flight are kept as they are.
 */
#ifndef CB2M_RELOAD_H
#define CB2M_RELOAD_H

#include <stddef.h>

#include "config.h"

/* A broadcaster present in both: its index in the old and the new
 * settings. */
typedef struct cb2m_reload_pair {
  size_t old_i, new_i;
} cb2m_reload_pair;

typedef struct cb2m_reload_plan {
  size_t *added;   /* indices into new->broadcasters, in its order */
  size_t n_added;
  size_t *removed; /* indices into old->broadcasters, in its order */
  size_t n_removed;
  cb2m_reload_pair *changed;   /* same name, another secret */
  size_t n_changed;
  cb2m_reload_pair *untouched; /* same name, same secret */
  size_t n_untouched;
  int mqtt_changed; /* some mqtt.* key differs: reconnect */
  int base_moved;   /* mqtt.base_topic differs (mqtt_changed is set too) */
  int log_changed;  /* some log.* key differs: applies at once */
  /* A key that cannot change while running (events.*, homeassistant.*,
   * metrics.*), e.g. "events.state_dir"; "" when none differs. */
  char restart_key[64];
} cb2m_reload_plan;

/* Fills *plan (zeroed first) from old and new. Returns 0, or -1 on ENOMEM
 * (plan emptied). */
int cb2m_reload_plan_make(const cb2m_config *old, const cb2m_config *new_cfg,
                          cb2m_reload_plan *plan);
/* Frees the lists; plan is zeroed. NULL is fine. */
void cb2m_reload_plan_free(cb2m_reload_plan *plan);

#endif

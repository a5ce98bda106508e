/*
 * reload.c: see reload.h.
 */
#include <stdlib.h>
#include <string.h>

#include "reload.h"

/* Index of the broadcaster called name in cfg, or cfg->n_broadcasters.
 * Names are unique (the loader refuses two spellings of one name). */
static size_t find(const cb2m_config *cfg, const char *name) {
  size_t i = 0;

  while (i < cfg->n_broadcasters && strcmp(cfg->broadcasters[i].name, name) != 0)
    i++;
  return i;
}

int cb2m_reload_plan_make(const cb2m_config *old, const cb2m_config *new_cfg,
                          cb2m_reload_plan *plan) {
  size_t n_old = old->n_broadcasters, n_new = new_cfg->n_broadcasters;

  memset(plan, 0, sizeof *plan);
  /* Each list holds at most every broadcaster of its side. */
  plan->added = calloc(n_new ? n_new : 1, sizeof *plan->added);
  plan->removed = calloc(n_old ? n_old : 1, sizeof *plan->removed);
  plan->changed = calloc(n_new ? n_new : 1, sizeof *plan->changed);
  plan->untouched = calloc(n_new ? n_new : 1, sizeof *plan->untouched);
  if (!plan->added || !plan->removed || !plan->changed || !plan->untouched) {
    cb2m_reload_plan_free(plan);
    return -1;
  }
  for (size_t i = 0; i < n_old; i++)
    if (find(new_cfg, old->broadcasters[i].name) == n_new)
      plan->removed[plan->n_removed++] = i;
  for (size_t j = 0; j < n_new; j++) {
    size_t i = find(old, new_cfg->broadcasters[j].name);

    if (i == n_old)
      plan->added[plan->n_added++] = j;
    else if (cb2m_config_broadcaster_same(&old->broadcasters[i], &new_cfg->broadcasters[j]))
      plan->untouched[plan->n_untouched++] = (cb2m_reload_pair){i, j};
    else
      plan->changed[plan->n_changed++] = (cb2m_reload_pair){i, j};
  }
  plan->mqtt_changed = cb2m_config_section_differs(old, new_cfg, "mqtt", NULL, 0);
  plan->log_changed = cb2m_config_section_differs(old, new_cfg, "log", NULL, 0);
  if (!cb2m_config_section_differs(old, new_cfg, "events", plan->restart_key,
                                   sizeof plan->restart_key) &&
      !cb2m_config_section_differs(old, new_cfg, "homeassistant", plan->restart_key,
                                   sizeof plan->restart_key) &&
      !cb2m_config_section_differs(old, new_cfg, "metrics", plan->restart_key,
                                   sizeof plan->restart_key))
    plan->restart_key[0] = '\0';
  plan->base_moved = strcmp(old->mqtt.base_topic, new_cfg->mqtt.base_topic) != 0;
  return 0;
}

void cb2m_reload_plan_free(cb2m_reload_plan *plan) {
  if (!plan)
    return;
  free(plan->added);
  free(plan->removed);
  free(plan->changed);
  free(plan->untouched);
  memset(plan, 0, sizeof *plan);
}

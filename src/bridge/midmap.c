/*
 * midmap.c: MQTT message id -> queue item. See midmap.h.
 */
#include <string.h>

#include "midmap.h"

#define MASK (CB2M_MIDMAP_SLOTS - 1u)

static size_t home_of(int mid) { return ((size_t)(unsigned)mid * 2654435761u) & MASK; }

void cb2m_midmap_clear(cb2m_midmap *m) { memset(m, 0, sizeof *m); }

int cb2m_midmap_put(cb2m_midmap *m, int mid, uint32_t owner, uint64_t seq) {
  size_t i;

  if (mid < 1 || mid > 65535 || m->count >= CB2M_MIDMAP_SLOTS - 1)
    return -1;
  /* Past every entry of the run, equal ids included: take() then finds
   * the older one first. */
  for (i = home_of(mid); m->slot[i].mid != 0; i = (i + 1) & MASK)
    ;
  m->slot[i] = (cb2m_midmap_entry){mid, owner, seq};
  m->count++;
  return 0;
}

int cb2m_midmap_take(cb2m_midmap *m, int mid, uint32_t *owner, uint64_t *seq) {
  size_t i = home_of(mid), j;

  if (mid < 1)
    return 0;
  while (m->slot[i].mid != mid) {
    if (m->slot[i].mid == 0)
      return 0;
    i = (i + 1) & MASK;
  }
  *owner = m->slot[i].owner;
  *seq = m->slot[i].seq;
  /* Shift later entries of the probe run back into the hole when their
   * home is not between the hole and them (cyclically). */
  for (j = (i + 1) & MASK; m->slot[j].mid != 0; j = (j + 1) & MASK) {
    size_t home = home_of(m->slot[j].mid);
    if (((j - home) & MASK) >= ((j - i) & MASK)) {
      m->slot[i] = m->slot[j];
      i = j;
    }
  }
  m->slot[i].mid = 0;
  m->count--;
  return 1;
}

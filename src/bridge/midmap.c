/*
 * midmap.c: MQTT message id -> queue item. See midmap.h.
 */
#include <string.h>

#include "cbevents/error.h"
#include "midmap.h"

#define MASK (CB2M_MIDMAP_SLOTS - 1u)

static size_t home_of(int mid) { return ((size_t)(unsigned)mid * 2654435761u) & MASK; }

void cb2m_midmap_clear(cb2m_midmap *m) { memset(m, 0, sizeof *m); }

int cb2m_midmap_put(cb2m_midmap *m, int mid, uint32_t owner, uint64_t seq) {
  size_t i;

  if (mid < 1 || mid > 65535)
    return CBEV_EINVAL;
  if (m->count >= CB2M_MIDMAP_SLOTS - 1)
    return CBEV_ETOOBIG;
  /* Past every entry of the run, equal ids included: take() then finds
   * the older one first. */
  for (i = home_of(mid); m->slot[i].mid != 0; i = (i + 1) & MASK)
    ;
  m->slot[i] = (cb2m_midmap_entry){mid, owner, seq};
  m->count++;
  return CBEV_OK;
}

/* Empties slot i, shifting later entries of its probe run back into the
 * hole when their home is not between the hole and them (cyclically). */
static void delete_at(cb2m_midmap *m, size_t i) {
  for (size_t j = (i + 1) & MASK; m->slot[j].mid != 0; j = (j + 1) & MASK) {
    size_t home = home_of(m->slot[j].mid);
    if (((j - home) & MASK) >= ((j - i) & MASK)) {
      m->slot[i] = m->slot[j];
      i = j;
    }
  }
  m->slot[i].mid = 0;
  m->count--;
}

int cb2m_midmap_take(cb2m_midmap *m, int mid, uint32_t *owner, uint64_t *seq) {
  size_t i = home_of(mid);

  if (mid < 1)
    return 0;
  while (m->slot[i].mid != mid) {
    if (m->slot[i].mid == 0)
      return 0;
    i = (i + 1) & MASK;
  }
  *owner = m->slot[i].owner;
  *seq = m->slot[i].seq;
  delete_at(m, i);
  return 1;
}

void cb2m_midmap_remap(cb2m_midmap *m, const uint32_t *new_of_old, uint32_t n_old) {
  cb2m_midmap_entry kept[CB2M_MIDMAP_SLOTS];
  size_t n = 0, start = 0;

  /* put() keeps one slot empty. Walking the table from an empty slot
   * meets each probe run from its start, so entries of one id are put
   * back older first, as take() expects. */
  while (m->slot[start].mid != 0)
    start++;
  for (size_t k = 1; k <= CB2M_MIDMAP_SLOTS; k++) {
    cb2m_midmap_entry e = m->slot[(start + k) & MASK];
    if (e.mid == 0 || e.owner >= n_old || new_of_old[e.owner] == CB2M_MIDMAP_GONE)
      continue;
    e.owner = new_of_old[e.owner];
    kept[n++] = e;
  }
  cb2m_midmap_clear(m);
  /* Cannot fail: each id was accepted once, and n entries fitted before. */
  for (size_t k = 0; k < n; k++)
    (void)cb2m_midmap_put(m, kept[k].mid, kept[k].owner, kept[k].seq);
}

/*
 * midmap.h: which queue item an MQTT message id was given to.
 *
 * libmosquitto numbers the messages of a connection 1..65535 and starts
 * again at 1, so one id names many messages over a connection's life. An
 * entry is written when a publish returns its id and taken when that id's
 * ack arrives (or forgotten with the connection), and it names the item by
 * its queue sequence number, which is never reused: an ack can only ever
 * reach the item its id was given to, however often the ids wrapped.
 *
 * Open addressing with linear probing and backward-shift deletion; a fixed
 * table, no allocation. The caller keeps count below CB2M_MIDMAP_SLOTS / 4
 * (the bridge's in-flight budget) so probe runs stay short.
 */
#ifndef CB2M_MIDMAP_H
#define CB2M_MIDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "cbevents/error.h"

#define CB2M_MIDMAP_SLOTS 1024u /* a power of two */

typedef struct cb2m_midmap_entry {
  int mid;        /* 0: empty slot */
  uint32_t owner; /* the broadcaster's index */
  uint64_t seq;   /* the item's queue sequence number */
} cb2m_midmap_entry;

typedef struct cb2m_midmap {
  cb2m_midmap_entry slot[CB2M_MIDMAP_SLOTS];
  size_t count; /* entries held: the messages in flight */
} cb2m_midmap;

/* Empties m (also its initial state, as a zeroed struct is). */
void cb2m_midmap_clear(cb2m_midmap *m);

/* Records that mid (1..65535) was given to item seq of owner. An id still
 * held (ids wrapped while one message stayed unacked) is kept beside the
 * older entry, which its ack takes first. Returns CBEV_OK; CBEV_EINVAL
 * when mid is out of 1..65535; CBEV_ETOOBIG when the table is full
 * (CB2M_MIDMAP_SLOTS - 1 entries: one slot always stays empty). Nothing is
 * recorded on failure. */
int cb2m_midmap_put(cb2m_midmap *m, int mid, uint32_t owner, uint64_t seq);

/* Takes the entry of mid: 1 with *owner and *seq set, or 0 when mid is not
 * held (an id of a message that is not an event, such as retained state). */
int cb2m_midmap_take(cb2m_midmap *m, int mid, uint32_t *owner, uint64_t *seq);

/* new_of_old[o] for an owner that is gone. */
#define CB2M_MIDMAP_GONE UINT32_MAX
/* Renumbers owners after a reload: an entry of owner o (< n_old) now
 * belongs to new_of_old[o], and is forgotten when that is
 * CB2M_MIDMAP_GONE (its ack, if it comes, then names no item: the item
 * went with its broadcaster). Entries of owners >= n_old are forgotten. */
void cb2m_midmap_remap(cb2m_midmap *m, const uint32_t *new_of_old, uint32_t n_old);

#endif

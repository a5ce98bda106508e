/*
 * retained.h: the clean-up of retained topics of broadcasters no longer
 * configured (SPEC 5, Topics).
 *
 * The bridge publishes retained messages per broadcaster (availability,
 * state, state/<field>, health). A broadcaster removed from the settings
 * would leave them on the broker forever, so <state_dir>/retained.json
 * remembers under which base topic which broadcasters were published; at
 * every connect and at a reload the ones no longer configured get an
 * empty retained message on each of those topics, which deletes them.
 * The record holds names only, never a secret.
 */
#ifndef CB2M_RETAINED_H
#define CB2M_RETAINED_H

#include <stddef.h>

#include "cbevents/log.h"

/* The file name of the record inside state_dir. */
#define CB2M_RETAINED_RECORD_FILE "retained.json"

/* Publishes payload (len bytes) retained on topic; 0 (CBEV_OK) when it was
 * queued, else a CBEV_* code (CBEV_EAGAIN: not connected). */
typedef int (*cb2m_retained_publish_fn)(void *ud, const char *topic, const void *payload,
                                        size_t len);

/* Clears every retained topic of broadcaster name under base (empty
 * retained payloads). Returns CBEV_OK, or the first failure of publish
 * (the rest are still tried), CBEV_EINVAL when a topic cannot be built. */
int cb2m_retained_clear(const char *base, const char *name, cb2m_retained_publish_fn publish,
                        void *ud);

/* Clears the broadcasters of the record that are not among names (all of
 * them, and the old bridge topics, when the base topic changed), then
 * records base and names. The record is rewritten only when every clear
 * was queued, so a clear missed while the broker is away is done at the
 * next call. Problems are logged; returns CBEV_OK or the failure. */
int cb2m_retained_sync(const char *state_dir, const char *base, const char *const *names,
                       size_t n_names, cb2m_retained_publish_fn publish, void *ud,
                       const cbev_logger *logger);

#endif

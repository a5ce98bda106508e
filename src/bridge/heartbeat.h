/*
 * heartbeat.h: the file behind `cb2mqtt --healthcheck` (SPEC 5):
 * "<state_dir>/heartbeat" = {"pid":N,"connected":true|false,"at":EPOCH_S}.
 * The running bridge rewrites it (atomically) every
 * CB2M_HEARTBEAT_INTERVAL_MS; the healthcheck, a separate process, only
 * reads it and calls it fresh under CB2M_HEARTBEAT_MAX_AGE_S.
 *
 * Return convention (README): CBEV_OK or a CBEV_* code.
 */
#ifndef CB2M_HEARTBEAT_H
#define CB2M_HEARTBEAT_H

#include <stddef.h>
#include <time.h>

#include "cbevents/error.h"

#define CB2M_HEARTBEAT_FILE "heartbeat"
#define CB2M_HEARTBEAT_INTERVAL_MS 10000u /* how often the bridge writes it */
#define CB2M_HEARTBEAT_MAX_AGE_S 60       /* SPEC: fresh means under 60 s */
/* A live bridge must never look stale: several writes fit in the limit, so
 * one slow turn of the loop or a write that failed once is not "dead". */
_Static_assert(CB2M_HEARTBEAT_INTERVAL_MS * 3u <= CB2M_HEARTBEAT_MAX_AGE_S * 1000u,
               "the heartbeat is written at least 3 times within its freshness limit");

/* Writes the heartbeat of this process (getpid()) with connected (0/1)
 * and now, mode 0644 (it holds no secret). Returns CBEV_OK; CBEV_EINVAL
 * (errno EINVAL: dir NULL or empty); CBEV_EIO with errno (EOVERFLOW when
 * the text does not fit, or the file system's error). */
int cb2m_heartbeat_write(const char *dir, int connected, time_t now);

/* Returns CBEV_OK (healthy) when "<dir>/heartbeat" was written less than
 * max_age_s seconds before now (a time slightly ahead of now, from a clock
 * step, counts as fresh) and says connected. Otherwise unhealthy, and the
 * code says why: CBEV_EINVAL (no dir, or its path is too long),
 * CBEV_ENOTFOUND (no heartbeat file), CBEV_EIO (it cannot be read),
 * CBEV_EPARSE (not a heartbeat this bridge wrote), CBEV_EAGAIN (too old,
 * or the bridge is not connected to the broker). A one-line reason for
 * the user ("healthy: ...", "unhealthy: ...") goes to why (may be NULL). */
int cb2m_heartbeat_check(const char *dir, time_t now, int max_age_s, char *why, size_t why_size);

#endif

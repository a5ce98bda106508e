/*
 * heartbeat.h: the file behind `cb2mqtt --healthcheck` (SPEC 5):
 * "<state_dir>/heartbeat" = {"pid":N,"connected":true|false,"at":EPOCH_S}.
 * The running bridge rewrites it (atomically) every few seconds; the
 * healthcheck, a separate process, only reads it.
 */
#ifndef CB2M_HEARTBEAT_H
#define CB2M_HEARTBEAT_H

#include <stddef.h>
#include <time.h>

#define CB2M_HEARTBEAT_FILE "heartbeat"
#define CB2M_HEARTBEAT_MAX_AGE_S 60 /* SPEC: fresh means under 60 s */

/* Writes the heartbeat of this process (getpid()) with connected (0/1)
 * and now, mode 0644 (it holds no secret). Returns 0, or -1 with errno. */
int cb2m_heartbeat_write(const char *dir, int connected, time_t now);

/* Returns 0 (healthy) when "<dir>/heartbeat" was written less than
 * max_age_s seconds before now (a time slightly ahead of now, from a clock
 * step, counts as fresh) and says connected; else 1. A one-line reason for
 * the user ("healthy: ...", "unhealthy: ...") goes to why (may be NULL). */
int cb2m_heartbeat_check(const char *dir, time_t now, int max_age_s, char *why, size_t why_size);

#endif

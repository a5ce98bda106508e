/*
 * heartbeat.h: the file that `cb2mqtt --healthcheck` reads:
 * "<state_dir>/heartbeat" = {"pid":N,"connected":bool,"at":epoch}.
 */
#ifndef CB2M_HEARTBEAT_H
#define CB2M_HEARTBEAT_H

#include <stddef.h>
#include <time.h>

int cb2m_heartbeat_write(const char *dir, int connected, time_t now);
/* 0 healthy (written less than max_age_s ago and connected), 1 otherwise;
 * why says which. */
int cb2m_heartbeat_check(const char *dir, time_t now, int max_age_s, char *why, size_t why_size);

#endif

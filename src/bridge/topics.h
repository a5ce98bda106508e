/*
 * topics.h: MQTT topic rules of cb2mqtt (SPEC section 5): which
 * broadcaster names may become a topic level, which base topics are
 * usable, and building "<base>/<level1>[/<level2>]" without ever
 * truncating a topic.
 *
 * Return convention (README): CBEV_OK or a CBEV_* code; cb2m_name_valid()
 * is a predicate (1 or 0).
 */
#ifndef CB2M_TOPICS_H
#define CB2M_TOPICS_H

#include <stddef.h>

#include "cbevents/error.h"

#define CB2M_NAME_MAX 64        /* bytes of a broadcaster name */
#define CB2M_BASE_TOPIC_MAX 256 /* bytes of base_topic (and the HA prefix) */
#define CB2M_TOPIC_MAX 65535    /* MQTT's limit for any topic, in bytes */

/* 1 when name is [A-Za-z0-9_-]{1,64} and not "bridge" (reserved for
 * cb/bridge/...); 0 otherwise, NULL included. */
int cb2m_name_valid(const char *name);

/* A broadcaster's file name in state_dir: name + suffix (".cursor",
 * ".state"). Returns CBEV_OK; CBEV_EINVAL (errno EINVAL) when name does
 * not pass cb2m_name_valid(); CBEV_ETOOBIG (errno ENAMETOOLONG) when it
 * does not fit size. */
int cb2m_name_file(char *file, size_t size, const char *name, const char *suffix);

/* CBEV_OK when base is a usable base topic: non-empty, at most 256 bytes,
 * valid UTF-8, no '+' or '#', not starting with '$' (reserved by brokers),
 * no empty level (leading, trailing or doubled '/'). Otherwise
 * CBEV_EINVAL, with a short reason written to why (may be NULL) such as
 * "must not contain the wildcards + or #". (A _check with a reason, not a
 * _valid predicate: CBEV_OK, 0, means usable.) */
int cb2m_topic_base_check(const char *base, char *why, size_t why_size);

/* Writes "base/level1" or, when level2 is not NULL, "base/level1/level2"
 * (level2 may itself hold '/', e.g. "state/subject") into buf, NUL
 * terminated. Returns CBEV_OK; CBEV_EINVAL when buf is NULL or size 0, an
 * argument is NULL or empty, or a part holds a wildcard ('+', '#');
 * CBEV_ETOOBIG when the topic does not fit size or CB2M_TOPIC_MAX. On
 * failure buf is left an empty string (when it has room). Never
 * truncates. */
int cb2m_topic(char *buf, size_t size, const char *base, const char *level1, const char *level2);

#endif

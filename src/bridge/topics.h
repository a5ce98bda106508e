/*
 * topics.h: MQTT topic rules of cb2mqtt (SPEC section 5): which
 * broadcaster names may become a topic level, which base topics are
 * usable, and building "<base>/<level1>[/<level2>]" without ever
 * truncating a topic.
 */
#ifndef CB2M_TOPICS_H
#define CB2M_TOPICS_H

#include <stddef.h>

#define CB2M_NAME_MAX 64        /* bytes of a broadcaster name */
#define CB2M_BASE_TOPIC_MAX 256 /* bytes of base_topic (and the HA prefix) */
#define CB2M_TOPIC_MAX 65535    /* MQTT's limit for any topic, in bytes */

/* 1 when name is [A-Za-z0-9_-]{1,64} and not "bridge" (reserved for
 * cb/bridge/...); 0 otherwise, NULL included. */
int cb2m_name_valid(const char *name);

/* 0 when base is a usable base topic: non-empty, at most 256 bytes, valid
 * UTF-8, no '+' or '#', not starting with '$' (reserved by brokers), no
 * empty level (leading, trailing or doubled '/'). Otherwise -1, with a
 * short reason written to why (may be NULL) such as "must not contain the
 * wildcards + or #". */
int cb2m_topic_base_valid(const char *base, char *why, size_t why_size);

/* Writes "base/level1" or, when level2 is not NULL, "base/level1/level2"
 * (level2 may itself hold '/', e.g. "state/subject") into buf, NUL
 * terminated. Returns 0, or -1 with buf left an empty string when an
 * argument is NULL or empty, a part holds a wildcard ('+', '#'), or the
 * topic does not fit size or CB2M_TOPIC_MAX. Never truncates. */
int cb2m_topic(char *buf, size_t size, const char *base, const char *level1, const char *level2);

#endif

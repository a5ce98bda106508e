/*
 * topics.h: MQTT topic rules of cb2mqtt: broadcaster names, the base
 * topic, and building "<base>/<level1>[/<level2>]" without truncation.
 */
#ifndef CB2M_TOPICS_H
#define CB2M_TOPICS_H

#include <stddef.h>

#define CB2M_NAME_MAX 64
#define CB2M_BASE_TOPIC_MAX 256

/* 1 when name is [A-Za-z0-9_-]{1,64} and not "bridge" (reserved). */
int cb2m_name_valid(const char *name);
/* 0 when base is a usable base topic (non-empty, <= 256 bytes, no '+',
 * '#', no leading '$', no empty level); else -1 and a reason in why. */
int cb2m_topic_base_valid(const char *base, char *why, size_t why_size);
/* Writes base/level1[/level2] into buf. Returns 0, or -1 when it does not
 * fit (nothing is truncated silently). */
int cb2m_topic(char *buf, size_t size, const char *base, const char *level1, const char *level2);

#endif

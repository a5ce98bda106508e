/*
 * route.h: one fetched event -> its delivery queue item (SPEC sections 3
 * and 5): the topic it goes to and the payload it carries, or a
 * placeholder when the publish filter leaves it out.
 *
 * The bridge calls this for every event of a batch, after the derived
 * state and the counters saw it; the bridge's fuzz target calls the same
 * function. Nothing in an event's content can make it fail: the topic is
 * built from the configured base and broadcaster name plus a level this
 * file picks (never upstream text that is not a valid level), so the only
 * failures are running out of memory and settings that cannot hold a
 * topic (which validated settings never are).
 *
 * Return convention: CBEV_OK (0) or a cbev_error code.
 */
#ifndef CB2M_ROUTE_H
#define CB2M_ROUTE_H

#include <stddef.h>

#include "cbevents/event.h"
#include "queue.h"

/* The level of events of an unknown method that is not a valid level. */
#define CB2M_ROUTE_UNKNOWN_LEVEL "unknown"
/* Longest topic level an unknown method may become, in bytes. */
#define CB2M_ROUTE_LEVEL_MAX 64

typedef struct cb2m_route {
  const char *base_topic;  /* validated base topic (topics.h) */
  const char *broadcaster; /* validated broadcaster name */
  unsigned publish_mask;   /* bit (1u << cbev_event_type) per published type */
  unsigned json_flags;     /* CBEV_JSON_* of normalize.h */
} cb2m_route;

/* 1 when level is 1..CB2M_ROUTE_LEVEL_MAX bytes of [a-z0-9_], else 0
 * (NULL included). */
int cb2m_route_level_valid(const char *level);

/* Writes the topic level of ev into buf (size >= CB2M_ROUTE_LEVEL_MAX + 1):
 * the type name of the 12 known types; for an unknown method its
 * snake_case when the method is 1..64 bytes of [A-Za-z0-9_] and the result
 * is a valid level that names no other topic of the broadcaster (one of the
 * 12 type names, "availability", "state", "health"); otherwise
 * CB2M_ROUTE_UNKNOWN_LEVEL (an empty method, '/', '+', '#', control bytes,
 * non-ASCII, too long). The payload keeps the method either way. Returns
 * CBEV_OK, or CBEV_EINVAL when an argument is NULL or buf is too small. */
int cb2m_route_level(const cbev_event *ev, char *buf, size_t size);

/* Appends ev to q as the item of fetch (last_in_fetch: it ends its batch).
 * A published type gets its full topic and its payload (normalized or raw
 * JSON per json_flags); a filtered one a placeholder with neither, which
 * the queue passes as done, so the cursor still moves past it and nothing
 * is serialized for nothing. Returns CBEV_OK; CBEV_ENOMEM; CBEV_ETOOBIG
 * from the serializer (an event over its 64 MiB cap, which a body within
 * the 8 MiB limit cannot hold); CBEV_EINVAL for NULL arguments or settings
 * whose topic does not fit. On failure nothing was appended. */
int cb2m_route_push(const cb2m_route *r, const cbev_event *ev, cb2m_queue *q, cb2m_fetch *fetch,
                    int last_in_fetch);

#endif

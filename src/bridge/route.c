/*
 * route.c: the topic and payload of one event, pushed onto its queue. See
 * route.h for the rule on unknown methods.
 */
#include <stdlib.h>
#include <string.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/normalize.h"
#include "route.h"
#include "topics.h"

/* base (<= 256) + '/' + name (<= 64) + '/' + level (<= 64) + NUL. */
#define ROUTE_TOPIC_MAX (CB2M_BASE_TOPIC_MAX + CB2M_NAME_MAX + CB2M_ROUTE_LEVEL_MAX + 3)

int cb2m_route_level_valid(const char *level) {
  size_t n;

  if (!level)
    return 0;
  n = strlen(level);
  if (n < 1 || n > CB2M_ROUTE_LEVEL_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = level[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

/* Levels an unknown method must not take: the known types' topics carry
 * another payload shape, and the broadcaster's retained topics (state,
 * availability, health) are read by Home Assistant and automations. */
static int level_taken(const char *level) {
  static const char *const own[] = {"availability", "state", "health"};

  if (cbev_event_type_from_name(level) != CBEV_EVENT_UNKNOWN)
    return 1;
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (strcmp(level, own[i]) == 0)
      return 1;
  return 0;
}

/* The method itself must be a clean word: the snake_case conversion maps
 * every other byte to '_', which would give "a/b", "a+b" and "a#b" one
 * topic, and cuts at 64 bytes, which would merge long methods. */
static int method_clean(const char *method) {
  size_t n = method ? strlen(method) : 0;

  if (n < 1 || n > CB2M_ROUTE_LEVEL_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = method[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_'))
      return 0;
  }
  return 1;
}

int cb2m_route_level(const cbev_event *ev, char *buf, size_t size) {
  cbev_event_type type;
  const char *level = CB2M_ROUTE_UNKNOWN_LEVEL;
  char *snake = NULL;
  int rc = CBEV_EINVAL;

  if (!ev || !buf || size < CB2M_ROUTE_LEVEL_MAX + 1)
    goto out;
  type = cbev_event_get_type(ev);
  if (type != CBEV_EVENT_UNKNOWN) {
    level = cbev_event_type_name(type);
  } else if (method_clean(cbev_event_method(ev))) {
    if (!(snake = cbev_snake_case(cbev_event_method(ev)))) {
      rc = CBEV_ENOMEM;
      goto out;
    }
    if (cb2m_route_level_valid(snake) && !level_taken(snake))
      level = snake;
  }
  /* Both candidates are at most CB2M_ROUTE_LEVEL_MAX bytes. */
  memcpy(buf, level, strlen(level) + 1);
  rc = CBEV_OK;
out:
  cbev_free(snake);
  return rc;
}

int cb2m_route_push(const cb2m_route *r, const cbev_event *ev, cb2m_queue *q, cb2m_fetch *fetch,
                    int last_in_fetch) {
  char level[CB2M_ROUTE_LEVEL_MAX + 1], topic[ROUTE_TOPIC_MAX];
  char *id = NULL, *topic_copy = NULL, *payload = NULL, *json = NULL;
  size_t len = 0;
  int rc = CBEV_EINVAL;

  if (!r || !ev || !q || !fetch)
    goto out;
  rc = CBEV_ENOMEM;
  if (!(id = strdup(cbev_event_id(ev))))
    goto out;
  /* Filtered out: a placeholder only, so the cursor moves past it. */
  if (r->publish_mask & (1u << cbev_event_get_type(ev))) {
    if ((rc = cb2m_route_level(ev, level, sizeof level)) != CBEV_OK)
      goto out;
    rc = CBEV_EINVAL;
    if (cb2m_topic(topic, sizeof topic, r->base_topic, r->broadcaster, level) != CBEV_OK)
      goto out;
    rc = CBEV_ENOMEM;
    if (!(topic_copy = strdup(topic)))
      goto out;
    if ((rc = cbev_event_to_json(ev, r->json_flags, &json, &len)) != CBEV_OK)
      goto out;
    /* The queue stores plain heap strings: copy the library's buffer at
     * its exact size. Keeping the writer's buffer (its slack included)
     * held 5 MiB more in a soak, and shrinking it with realloc left the
     * heap creeping; a copy keeps memory flat. */
    rc = CBEV_ENOMEM;
    if (!(payload = malloc(len + 1)))
      goto out;
    memcpy(payload, json, len + 1);
  }
  rc = CBEV_ENOMEM;
  if (cb2m_queue_push(q, id, topic_copy, payload, len, fetch, last_in_fetch) != CBEV_OK)
    goto out;
  id = topic_copy = payload = NULL; /* the queue owns them now */
  rc = CBEV_OK;
out:
  cbev_free(json);
  free(id);
  free(topic_copy);
  free(payload);
  return rc;
}

/*
 * fuzz_bridge_events.c: the bridge's event path under hostile bodies.
 *
 * Any body -> cbev_parse_response -> for each event: derived state
 * (cb2m_state_apply), then route.c's queue item (the function bridge.c's
 * enqueue_batch calls) -> a fake MQTT that hands out libmosquitto-style
 * message ids (midmap.h), refuses every publish to an "unknown" topic once
 * and acks the rest -> the queue's done prefix leaves. Done twice, with
 * normalized payloads and every type published, and with raw payloads and
 * a publish filter taken from the body's length.
 *
 * Invariants (anything else aborts): no event's content makes queueing
 * fail; every published topic is "cb/alice/<level>", three levels, the
 * level valid (route.h) and never a retained topic of the broadcaster;
 * every event leaves the queue exactly once, in order, published ones
 * only after their ack; the state JSON is always produced.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/normalize.h"
#include "midmap.h"
#include "queue.h"
#include "route.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ALL_TYPES ((1u << (CBEV_EVENT_UNKNOWN + 1)) - 1u)
#define PREFIX "cb/alice/"

static void check_topic(const char *topic) {
  const char *level;

  if (strncmp(topic, PREFIX, strlen(PREFIX)) != 0)
    abort();
  level = topic + strlen(PREFIX);
  if (!cb2m_route_level_valid(level) || strcmp(level, "state") == 0 ||
      strcmp(level, "availability") == 0 || strcmp(level, "health") == 0)
    abort();
}

/* Publishes, answers and pops until the queue is empty. */
static void deliver(cb2m_queue *q, size_t events) {
  cb2m_midmap map;
  int last_mid = 65500; /* wraps within the run */
  size_t popped = 0, rounds = 0;
  uint64_t now = 0;

  cb2m_midmap_clear(&map);
  while (q->count) {
    cb2m_item *it;
    int mids[64];
    size_t n = 0;
    while (n < 64 && (it = cb2m_queue_next_unsent(q, now)) != NULL) {
      uint64_t seq;
      if (it->topic)
        check_topic(it->topic);
      if (!(seq = cb2m_queue_mark_sent(q)))
        continue; /* filtered */
      if (++last_mid > 65535)
        last_mid = 1;
      if (cb2m_midmap_put(&map, last_mid, 0, seq) != CBEV_OK)
        abort();
      mids[n++] = last_mid;
    }
    for (size_t k = 0; k < n; k++) {
      uint32_t owner;
      uint64_t seq;
      cb2m_item *refused;
      if (!cb2m_midmap_take(&map, mids[k], &owner, &seq))
        abort();
      /* Refuse an "unknown" event the first time only. */
      refused = NULL;
      for (size_t i = q->done; i < q->sent && !refused; i++) {
        cb2m_item *x = &q->ring[(q->head + i) % q->cap];
        if (x->seq == seq && x->state == CB2M_ITEM_SENT && q->held_seq != seq &&
            strcmp(x->topic + strlen(PREFIX), "unknown") == 0)
          refused = x;
      }
      if (refused) {
        if (!cb2m_queue_refuse(q, seq, now))
          abort();
      } else {
        cb2m_queue_ack(q, seq);
      }
    }
    {
      char *url = NULL, *id = NULL;
      size_t got = cb2m_queue_pop_done(q, &url, &id);
      if (got == (size_t)-1)
        abort();
      popped += got;
      free(url);
      free(id);
    }
    now = cb2m_queue_retry_ms(q) != UINT64_MAX ? cb2m_queue_retry_ms(q) : now + 1;
    if (++rounds > 4 * events + 100)
      abort(); /* stalled */
  }
  if (popped != events || map.count != 0)
    abort();
}

static void run(const cbev_batch *batch, const cb2m_route *r) {
  size_t n = cbev_batch_count(batch);
  cb2m_fetch *fetch = cb2m_fetch_new("http://127.0.0.1/events/alice/t/", cbev_batch_next_url(batch));
  cb2m_state st;
  cb2m_queue q;
  char *json;

  if (!fetch || cb2m_queue_init(&q, 10) != 0)
    abort();
  cb2m_state_init(&st);
  for (size_t i = 0; i < n; i++) {
    const cbev_event *ev = cbev_batch_get(batch, i);
    unsigned changed = 0;
    if (cb2m_state_apply(&st, ev, 0, &changed) != 0)
      abort();
    if (cb2m_route_push(r, ev, &q, fetch, i + 1 == n) != CBEV_OK)
      abort();
  }
  cb2m_fetch_unref(fetch);
  if (q.count != n)
    abort();
  deliver(&q, n);
  if (!(json = cb2m_state_json(&st)))
    abort();
  cJSON_free(json);
  cb2m_state_cleanup(&st);
  cb2m_queue_cleanup(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cbev_batch *batch = NULL;
  cb2m_route normalized = {"cb", "alice", ALL_TYPES, 0};
  cb2m_route raw = {"cb", "alice", (unsigned)(size * 2654435761u) & ALL_TYPES, CBEV_JSON_RAW};

  if (cbev_parse_response((const char *)data, size, NULL, NULL, &batch) != CBEV_OK)
    return 0;
  run(batch, &normalized);
  run(batch, &raw);
  cbev_batch_free(batch);
  return 0;
}

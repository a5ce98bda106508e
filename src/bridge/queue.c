/*
 * queue.c: a growable ring of events waiting for the broker's ack. See
 * queue.h for the states and the cursor rule.
 */
#include <stdlib.h>
#include <string.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "queue.h"

#define QUEUE_MIN_CAP 8u

int cb2m_queue_init(cb2m_queue *q, size_t max_items) {
  memset(q, 0, sizeof *q);
  if (max_items == 0)
    return -1;
  q->max_items = max_items;
  return 0;
}

cb2m_fetch *cb2m_fetch_new(const char *request_url, const char *next_url) {
  cb2m_fetch *f = calloc(1, sizeof *f);

  if (!f)
    return NULL;
  f->request_url = strdup(request_url);
  f->next_url = strdup(next_url ? next_url : request_url);
  if (!f->request_url || !f->next_url) {
    free(f->request_url);
    free(f->next_url);
    free(f);
    return NULL;
  }
  f->refs = 1;
  return f;
}

void cb2m_fetch_unref(cb2m_fetch *f) {
  if (!f || --f->refs > 0)
    return;
  free(f->request_url);
  free(f->next_url);
  free(f);
}

static cb2m_item *at(const cb2m_queue *q, size_t i) {
  return &q->ring[(q->head + i) % q->cap];
}

static void item_free(cb2m_item *it) {
  free(it->id);
  free(it->topic);
  free(it->payload);
  cb2m_fetch_unref(it->fetch);
  memset(it, 0, sizeof *it);
}

void cb2m_queue_cleanup(cb2m_queue *q) {
  for (size_t i = 0; i < q->count; i++)
    item_free(at(q, i));
  free(q->ring);
  memset(q, 0, sizeof *q);
}

static int grow(cb2m_queue *q) {
  size_t cap = q->cap ? q->cap * 2 : QUEUE_MIN_CAP;
  cb2m_item *ring = malloc(cap * sizeof *ring);

  if (!ring)
    return -1;
  /* Unroll the ring so the oldest item is at index 0. */
  for (size_t i = 0; i < q->count; i++)
    ring[i] = *at(q, i);
  free(q->ring);
  q->ring = ring;
  q->cap = cap;
  q->head = 0;
  return 0;
}

int cb2m_queue_push(cb2m_queue *q, char *id, char *topic, char *payload, size_t len,
                    cb2m_fetch *fetch, int last_in_fetch) {
  cb2m_item *it;

  if (q->count == q->cap && grow(q) != 0)
    return -1;
  it = at(q, q->count);
  *it = (cb2m_item){id, topic, payload, len, 0, CB2M_ITEM_QUEUED, last_in_fetch, fetch};
  fetch->refs++;
  q->count++;
  return 0;
}

cb2m_item *cb2m_queue_next_unsent(cb2m_queue *q) {
  return q->sent < q->count ? at(q, q->sent) : NULL;
}

/* Acks arrive mostly in order: keeping the DONE prefix counted makes the
 * search for an ack's item start at the one it most likely is. */
static void advance_done(cb2m_queue *q) {
  while (q->done < q->sent && at(q, q->done)->state == CB2M_ITEM_DONE)
    q->done++;
}

void cb2m_queue_mark_sent(cb2m_queue *q, int mid) {
  cb2m_item *it = cb2m_queue_next_unsent(q);

  if (!it)
    return;
  if (!it->topic || mid < 0) {
    it->state = CB2M_ITEM_DONE;
  } else {
    it->state = CB2M_ITEM_SENT;
    it->mid = mid;
  }
  q->sent++;
  advance_done(q);
}

int cb2m_queue_ack(cb2m_queue *q, int mid) {
  for (size_t i = q->done; i < q->sent; i++) {
    cb2m_item *it = at(q, i);
    if (it->state == CB2M_ITEM_SENT && it->mid == mid) {
      it->state = CB2M_ITEM_DONE;
      advance_done(q);
      return 1;
    }
  }
  return 0;
}

void cb2m_queue_unsend_all(cb2m_queue *q) {
  size_t first_sent = q->sent;

  for (size_t i = 0; i < q->sent; i++) {
    if (at(q, i)->state == CB2M_ITEM_SENT) {
      first_sent = i;
      break;
    }
  }
  /* Everything from the first unacked item on is published again, in
   * order; acked items after it are re-sent too, which keeps id order. */
  for (size_t i = first_sent; i < q->sent; i++) {
    cb2m_item *it = at(q, i);
    if (it->topic)
      it->state = CB2M_ITEM_QUEUED;
  }
  q->sent = first_sent;
  q->done = first_sent; /* everything before the first SENT item is DONE */
}

size_t cb2m_queue_pop_done(cb2m_queue *q, char **resume_url, char **last_id) {
  size_t n = q->done;
  cb2m_item *last;
  char *url, *id;

  if (n == 0)
    return 0;
  last = at(q, n - 1);
  url = strdup(last->last_in_fetch ? last->fetch->next_url : last->fetch->request_url);
  id = NULL;
  for (size_t k = n; k-- > 0;) {
    cbev_id parsed;
    const char *text = at(q, k)->id;
    if (text && cbev_id_parse(text, &parsed) == CBEV_OK) {
      id = strdup(text);
      if (!id) {
        free(url);
        return (size_t)-1;
      }
      break;
    }
  }
  if (!url) {
    free(url);
    free(id);
    return (size_t)-1;
  }
  for (size_t i = 0; i < n; i++)
    item_free(at(q, i));
  q->head = (q->head + n) % q->cap;
  q->count -= n;
  q->sent -= n;
  q->done = 0;
  *resume_url = url;
  *last_id = id;
  return n;
}

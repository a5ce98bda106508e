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
    return CBEV_EINVAL;
  q->max_items = max_items;
  q->next_seq = 1;
  return CBEV_OK;
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
    return CBEV_ENOMEM;
  /* Unroll the ring so the oldest item is at index 0. */
  for (size_t i = 0; i < q->count; i++)
    ring[i] = *at(q, i);
  free(q->ring);
  q->ring = ring;
  q->cap = cap;
  q->head = 0;
  return CBEV_OK;
}

int cb2m_queue_push(cb2m_queue *q, char *id, char *topic, char *payload, size_t len,
                    cb2m_fetch *fetch, int last_in_fetch) {
  cb2m_item *it;

  if (q->count == q->cap && grow(q) != CBEV_OK)
    return CBEV_ENOMEM;
  it = at(q, q->count);
  *it = (cb2m_item){id, topic, payload, len, q->next_seq++, CB2M_ITEM_QUEUED, last_in_fetch,
                    fetch};
  fetch->refs++;
  q->count++;
  return CBEV_OK;
}

cb2m_item *cb2m_queue_next_unsent(cb2m_queue *q, uint64_t now_ms) {
  cb2m_item *it = q->sent < q->count ? at(q, q->sent) : NULL;

  /* Held: the refused item is the first QUEUED one (refuse() rewound to
   * it) until its ack; while it is SENT nothing else goes out. */
  if (it && q->held_seq && (it->seq != q->held_seq || now_ms < q->retry_at_ms))
    return NULL;
  return it;
}

/* Acks arrive mostly in order: keeping the DONE prefix counted makes the
 * search for an ack's item start at the one it most likely is. */
static void advance_done(cb2m_queue *q) {
  while (q->done < q->sent && at(q, q->done)->state == CB2M_ITEM_DONE)
    q->done++;
}

uint64_t cb2m_queue_mark_sent(cb2m_queue *q) {
  cb2m_item *it = q->sent < q->count ? at(q, q->sent) : NULL;

  if (!it)
    return 0;
  it->state = it->topic ? CB2M_ITEM_SENT : CB2M_ITEM_DONE;
  q->sent++;
  advance_done(q);
  return it->topic ? it->seq : 0;
}

/* The position of the SENT item seq, or q->sent when there is none. Items
 * are in seq order, so the search stops at the first later one. */
static size_t find_sent(const cb2m_queue *q, uint64_t seq) {
  for (size_t i = q->done; i < q->sent; i++) {
    const cb2m_item *it = at(q, i);
    if (it->seq >= seq)
      return it->seq == seq && it->state == CB2M_ITEM_SENT ? i : q->sent;
  }
  return q->sent;
}

const cb2m_item *cb2m_queue_sent_item(const cb2m_queue *q, uint64_t seq) {
  size_t i = find_sent(q, seq);
  return i == q->sent ? NULL : at(q, i);
}

int cb2m_queue_ack(cb2m_queue *q, uint64_t seq) {
  size_t i = find_sent(q, seq);

  if (i == q->sent)
    return CBEV_ENOTFOUND;
  at(q, i)->state = CB2M_ITEM_DONE;
  if (seq == q->held_seq) {
    q->held_seq = 0;
    q->refusals = 0;
  }
  advance_done(q);
  return CBEV_OK;
}

/* Items from position first on that were handed out become QUEUED again;
 * everything before first is DONE or SENT and stays so. */
static void rewind_to(cb2m_queue *q, size_t first) {
  for (size_t i = first; i < q->sent; i++) {
    cb2m_item *it = at(q, i);
    if (it->topic)
      it->state = CB2M_ITEM_QUEUED;
  }
  q->sent = first;
  if (q->done > first)
    q->done = first;
}

/* Not cbev_backoff_ms(): SPEC 5 asks for exactly 1 s doubling to 60 s,
 * which the refusal's log line states, so there is no jitter to draw. */
uint64_t cb2m_queue_retry_delay_ms(unsigned refusals) {
  uint64_t d = CB2M_QUEUE_RETRY_FIRST_MS;

  for (unsigned i = 1; i < refusals && d < CB2M_QUEUE_RETRY_MAX_MS; i++)
    d *= 2;
  return d < CB2M_QUEUE_RETRY_MAX_MS ? d : CB2M_QUEUE_RETRY_MAX_MS;
}

cb2m_item *cb2m_queue_refuse(cb2m_queue *q, uint64_t seq, uint64_t now_ms) {
  size_t i = find_sent(q, seq);

  if (i == q->sent)
    return NULL;
  if (seq != q->held_seq)
    q->refusals = 0;
  rewind_to(q, i);
  q->held_seq = seq;
  q->refusals++;
  q->retry_at_ms = now_ms + cb2m_queue_retry_delay_ms(q->refusals);
  return at(q, i);
}

int cb2m_queue_rebase(cb2m_queue *q, const char *old_base, const char *new_base) {
  size_t ol = strlen(old_base), nl = strlen(new_base);

  for (size_t i = 0; i < q->count; i++) {
    cb2m_item *it = at(q, i);
    char *topic;
    size_t rest;

    if (!it->topic || strncmp(it->topic, old_base, ol) != 0 || it->topic[ol] != '/')
      continue;
    rest = strlen(it->topic + ol);
    if (!(topic = malloc(nl + rest + 1)))
      return CBEV_ENOMEM;
    memcpy(topic, new_base, nl);
    memcpy(topic + nl, it->topic + ol, rest + 1);
    free(it->topic);
    it->topic = topic;
  }
  return CBEV_OK;
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
  rewind_to(q, first_sent);
  q->done = first_sent; /* everything before the first SENT item is DONE */
}

uint64_t cb2m_queue_retry_ms(const cb2m_queue *q) {
  const cb2m_item *it = q->sent < q->count ? at(q, q->sent) : NULL;

  /* Waiting only while the refused item is the next to go out. */
  return q->held_seq && it && it->seq == q->held_seq ? q->retry_at_ms : UINT64_MAX;
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

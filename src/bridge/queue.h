/*
 * queue.h: the delivery queue of one broadcaster.
 *
 * Events wait here, in id order, from the moment a poll returns them until
 * the broker acknowledged them. Each item remembers which request fetched
 * it, so the cursor that may be saved after an acknowledged prefix is known
 * exactly: the batch's nextUrl when the prefix ends a batch, otherwise the
 * URL that fetched the batch plus the last acknowledged id (re-polling it
 * then skips what was delivered).
 *
 * States: QUEUED (not handed to MQTT) -> SENT (published, waiting for the
 * ack) -> DONE (acked, or filtered out and never published). Only a DONE
 * prefix leaves the queue. The ring grows on demand so a thousand idle
 * broadcasters cost little; max_items is the backpressure threshold.
 *
 * Every item gets a sequence number at push that no other item of the
 * queue ever gets again. Acks and refusals name items by it (midmap.h maps
 * an MQTT message id to it), never by the message id, which libmosquitto
 * reuses after 65535 publishes.
 *
 * A refused item (the broker answered with an error reason code) goes back
 * to QUEUED with everything after it, and the queue is held: until that
 * item is acked, only it is handed out again, and not before the retry
 * time its refusal set. Later events wait behind it (id order); other
 * queues are not affected.
 *
 * Return convention (README): CBEV_OK or a CBEV_* code; counts, items
 * and times where a function says so.
 */
#ifndef CB2M_QUEUE_H
#define CB2M_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "cbevents/error.h"

/* SPEC 5: a refused publish is sent again after 1 s, doubling to 60 s. */
#define CB2M_QUEUE_RETRY_FIRST_MS 1000u
#define CB2M_QUEUE_RETRY_MAX_MS 60000u

typedef struct cb2m_fetch {
  char *request_url; /* the URL that returned the batch (a secret) */
  char *next_url;    /* the batch's nextUrl, or request_url when none */
  unsigned refs;     /* items pointing here, plus the creator's one */
  uint64_t fetched_ms; /* when the batch arrived (CLOCK_MONOTONIC), for the delivery histogram */
} cb2m_fetch;

typedef enum cb2m_item_state {
  CB2M_ITEM_QUEUED = 0,
  CB2M_ITEM_SENT,
  CB2M_ITEM_DONE
} cb2m_item_state;

typedef struct cb2m_item {
  char *id;            /* upstream event id, owned */
  char *topic;         /* full topic, owned; NULL: filtered, not published */
  char *payload;       /* owned; NULL when topic is NULL */
  size_t len;
  uint64_t seq;        /* unique in its queue, from 1 on */
  cb2m_item_state state;
  int last_in_fetch;   /* the last event of its batch */
  cb2m_fetch *fetch;   /* shared by the items of one batch */
} cb2m_item;

typedef struct cb2m_queue {
  cb2m_item *ring;
  size_t cap;       /* allocated slots */
  size_t head;      /* index of the oldest item */
  size_t count;     /* items held */
  size_t sent;      /* items at the front that are SENT or DONE */
  size_t done;      /* items at the front that are DONE (<= sent) */
  size_t max_items; /* backpressure: full when count >= max_items */
  uint64_t next_seq;    /* the seq of the next item pushed */
  uint64_t held_seq;    /* the refused item everything waits for; 0: none */
  uint64_t retry_at_ms; /* while held: when it may be handed out again */
  unsigned refusals;    /* refusals of held_seq in a row (for the wait) */
} cb2m_queue;

/* Returns CBEV_OK, or CBEV_EINVAL when max_items is 0. Allocates nothing
 * yet. */
int cb2m_queue_init(cb2m_queue *q, size_t max_items);
/* Frees every item and fetch still held. */
void cb2m_queue_cleanup(cb2m_queue *q);

/* Creates the shared record of one batch (copies both URLs; next_url NULL
 * means the batch had none) holding one reference, the caller's. Returns
 * NULL on ENOMEM. Every item pushed with it takes a reference of its own
 * (dropped when the item leaves the queue), so the caller always drops
 * its reference with cb2m_fetch_unref() once it has pushed the batch's
 * items, whether it pushed any or not; the last reference frees it. */
cb2m_fetch *cb2m_fetch_new(const char *request_url, const char *next_url);
/* Drops one reference; frees f with the last one. NULL is fine. */
void cb2m_fetch_unref(cb2m_fetch *f);

/* Appends an item; the queue takes ownership of id, topic and payload (and
 * a reference to fetch) on success only. Returns CBEV_OK, or CBEV_ENOMEM
 * (nothing taken). It
 * never refuses because of max_items: backpressure is the caller's check
 * before polling, so nothing already fetched is ever dropped. */
int cb2m_queue_push(cb2m_queue *q, char *id, char *topic, char *payload, size_t len,
                    cb2m_fetch *fetch, int last_in_fetch);

/* The oldest QUEUED item (every item before it is SENT or DONE) when it
 * may be handed out at now_ms, or NULL. While the queue is held that is
 * only the refused item, once retry_at_ms has come and until it is SENT. */
cb2m_item *cb2m_queue_next_unsent(cb2m_queue *q, uint64_t now_ms);
/* Marks the item returned by next_unsent as SENT and returns its seq, or,
 * when it is filtered (topic NULL), marks it DONE and returns 0. */
uint64_t cb2m_queue_mark_sent(cb2m_queue *q);
/* Marks the SENT item seq as DONE, and ends the hold when it is the
 * refused item. Returns CBEV_OK, or CBEV_ENOTFOUND when no SENT item has
 * that seq (an ack of a publish that a refusal or a reconnect already took
 * back): nothing changed. */
int cb2m_queue_ack(cb2m_queue *q, uint64_t seq);
/* The SENT item with seq, or NULL (acked, refused or unknown). */
const cb2m_item *cb2m_queue_sent_item(const cb2m_queue *q, uint64_t seq);
/* The broker refused the SENT item seq at now_ms: it and every item after
 * it become QUEUED again (acked ones too, which keeps id order), and the
 * queue is held for it until now_ms + cb2m_queue_retry_delay_ms() of its
 * refusals so far (a refusal of an earlier item moves the hold to that
 * one, counting from 1 again). Returns the item (valid until the queue
 * next changes), or NULL when no SENT item has that seq. */
cb2m_item *cb2m_queue_refuse(cb2m_queue *q, uint64_t seq, uint64_t now_ms);
/* SPEC 5's wait before re-sending a publish refused `refusals` times in a
 * row (1 the first time): 1 s, doubled each time, at most 60 s. No jitter:
 * the broker is one, and the wait is per broadcaster. */
uint64_t cb2m_queue_retry_delay_ms(unsigned refusals);
/* After a connection loss: every SENT item becomes QUEUED again, to be
 * published again in order (at least once). A hold stays, with its retry
 * time: after the next connect the refused item goes out first. */
void cb2m_queue_unsend_all(cb2m_queue *q);

/* After a reload moved mqtt.base_topic: every held item's topic under
 * old_base ("<old_base>/...") moves under new_base. Returns CBEV_OK, or
 * CBEV_ENOMEM with some items moved and the rest as they were. */
int cb2m_queue_rebase(cb2m_queue *q, const char *old_base, const char *new_base);
/* When a held queue may hand out its refused item again; UINT64_MAX when
 * the queue is not waiting for that time. */
uint64_t cb2m_queue_retry_ms(const cb2m_queue *q);

/* Removes the DONE prefix. Returns how many left (a count, not a code);
 * when > 0, *resume_url and *last_id (newly allocated, free() them) are
 * the cursor to save.
 * *last_id is the newest popped id that is an event id (<ms>-<seq>), or
 * NULL when none of them is: an odd id is delivered but never becomes the
 * last delivered id (SPEC 3), so the caller keeps the one it had.
 * Returns (size_t)-1 on ENOMEM (nothing removed). */
size_t cb2m_queue_pop_done(cb2m_queue *q, char **resume_url, char **last_id);

static inline int cb2m_queue_full(const cb2m_queue *q) {
  return q->count >= q->max_items;
}

#endif

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
 */
#ifndef CB2M_QUEUE_H
#define CB2M_QUEUE_H

#include <stddef.h>

typedef struct cb2m_fetch {
  char *request_url; /* the URL that returned the batch (a secret) */
  char *next_url;    /* the batch's nextUrl, or request_url when none */
  unsigned refs;     /* items pointing here */
} cb2m_fetch;

typedef enum cb2m_item_state {
  CB2M_ITEM_QUEUED = 0,
  CB2M_ITEM_SENT,
  CB2M_ITEM_DONE
} cb2m_item_state;

typedef struct cb2m_item {
  char *id;            /* upstream event id, owned */
  char *topic;         /* full topic, owned; NULL: filtered, not published */
  char *payload;       /* owned */
  size_t len;
  int mid;             /* MQTT message id while SENT */
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
} cb2m_queue;

/* Returns 0, or -1 when max_items is 0. Allocates nothing yet. */
int cb2m_queue_init(cb2m_queue *q, size_t max_items);
/* Frees every item and fetch still held. */
void cb2m_queue_cleanup(cb2m_queue *q);

/* Creates the shared record of one batch (copies both URLs; next_url NULL
 * means the batch had none). Returns NULL on ENOMEM. The queue frees it
 * when its last item leaves; a batch without events is never pushed, so
 * the caller frees those with cb2m_fetch_unref(). */
cb2m_fetch *cb2m_fetch_new(const char *request_url, const char *next_url);
void cb2m_fetch_unref(cb2m_fetch *f);

/* Appends an item; the queue takes ownership of id, topic and payload (and
 * a reference to fetch) on success only. Returns 0, or -1 on ENOMEM. It
 * never refuses because of max_items: backpressure is the caller's check
 * before polling, so nothing already fetched is ever dropped. */
int cb2m_queue_push(cb2m_queue *q, char *id, char *topic, char *payload, size_t len,
                    cb2m_fetch *fetch, int last_in_fetch);

/* The oldest QUEUED item (every item before it is SENT or DONE), or NULL. */
cb2m_item *cb2m_queue_next_unsent(cb2m_queue *q);
/* Marks the item returned by next_unsent as SENT with mid, or DONE when it
 * is filtered (topic NULL) or QoS 0 delivery completed at once (mid < 0). */
void cb2m_queue_mark_sent(cb2m_queue *q, int mid);
/* Marks the SENT item with mid as DONE. Returns 1 when found, else 0. */
int cb2m_queue_ack(cb2m_queue *q, int mid);
/* After a connection loss: every SENT item becomes QUEUED again, to be
 * published again in order (at least once). */
void cb2m_queue_unsend_all(cb2m_queue *q);

/* Removes the DONE prefix. Returns how many left; when > 0, *resume_url
 * and *last_id (newly allocated, caller frees) are the cursor to save.
 * *last_id is the newest popped id that is an event id (<ms>-<seq>), or
 * NULL when none of them is: an odd id is delivered but never becomes the
 * last delivered id (SPEC 3), so the caller keeps the one it had.
 * Returns (size_t)-1 on ENOMEM (nothing removed). */
size_t cb2m_queue_pop_done(cb2m_queue *q, char **resume_url, char **last_id);

static inline int cb2m_queue_full(const cb2m_queue *q) {
  return q->count >= q->max_items;
}

#endif

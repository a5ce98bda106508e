/*
 * router.c: handler lists per event type. Handlers run sequentially in the
 * caller's thread; the first non-zero result stops the dispatch.
 */
#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/router.h"

#define ROUTER_MAX_HANDLERS 1024u
#define SLOT_ANY (CBEV_EVENT_UNKNOWN + 1)

typedef struct handler {
  cbev_handler_fn fn;
  void *userdata;
} handler;

typedef struct handler_list {
  handler *items;
  size_t count, cap;
} handler_list;

struct cbev_router {
  handler_list lists[SLOT_ANY + 1]; /* one per type, UNKNOWN, then "any" */
};

cbev_router *cbev_router_new(void) { return cbev_calloc(1, sizeof(cbev_router)); }

void cbev_router_free(cbev_router *r) {
  if (!r)
    return;
  for (size_t i = 0; i <= SLOT_ANY; i++)
    cbev_free(r->lists[i].items);
  cbev_free(r);
}

static int list_add(handler_list *l, cbev_handler_fn fn, void *userdata) {
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    handler *items;
    if (l->count >= ROUTER_MAX_HANDLERS)
      return CBEV_ETOOBIG;
    if (cap > ROUTER_MAX_HANDLERS)
      cap = ROUTER_MAX_HANDLERS;
    items = cbev_realloc(l->items, cap * sizeof *items);
    if (!items)
      return CBEV_ENOMEM;
    l->items = items;
    l->cap = cap;
  }
  l->items[l->count++] = (handler){fn, userdata};
  return CBEV_OK;
}

int cbev_router_on(cbev_router *r, cbev_event_type type, cbev_handler_fn fn,
                   void *userdata) {
  if (!r || !fn || (unsigned)type > CBEV_EVENT_UNKNOWN)
    return CBEV_EINVAL;
  return list_add(&r->lists[type], fn, userdata);
}

int cbev_router_on_any(cbev_router *r, cbev_handler_fn fn, void *userdata) {
  if (!r || !fn)
    return CBEV_EINVAL;
  return list_add(&r->lists[SLOT_ANY], fn, userdata);
}

static int run_list(const handler_list *l, const cbev_event *ev) {
  for (size_t i = 0; i < l->count; i++) {
    int rc = l->items[i].fn(ev, l->items[i].userdata);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int cbev_router_dispatch(const cbev_router *r, const cbev_event *ev) {
  cbev_event_type type;
  int rc;

  if (!r || !ev)
    return CBEV_EINVAL;
  type = cbev_event_get_type(ev);
  if ((unsigned)type > CBEV_EVENT_UNKNOWN)
    type = CBEV_EVENT_UNKNOWN;
  rc = run_list(&r->lists[SLOT_ANY], ev);
  if (rc == 0)
    rc = run_list(&r->lists[type], ev);
  return rc;
}

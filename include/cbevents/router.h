/*
 * cbevents/router.h: handlers per event type, run in a fixed order.
 *
 * Dispatch runs the any-type handlers first, then the handlers of the
 * event's type, each group in registration order, one after another in the
 * calling thread. A handler returning non-zero stops the dispatch and that
 * value is returned (cb-events: a failing handler stops the rest).
 */
#ifndef CBEVENTS_ROUTER_H
#define CBEVENTS_ROUTER_H

#include "cbevents/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns 0 to continue, anything else to stop the dispatch. */
typedef int (*cbev_handler_fn)(const cbev_event *ev, void *userdata);

typedef struct cbev_router cbev_router;

/* Returns a new, empty router, or NULL when memory is exhausted. */
cbev_router *cbev_router_new(void);
void cbev_router_free(cbev_router *r); /* NULL is fine */

/* Registers fn for events of type (CBEV_EVENT_UNKNOWN for unknown methods).
 * Returns CBEV_OK, CBEV_EINVAL (NULL fn, bad type), CBEV_ENOMEM. A router
 * holds at most 1024 handlers per type (CBEV_ETOOBIG beyond). */
int cbev_router_on(cbev_router *r, cbev_event_type type, cbev_handler_fn fn,
                   void *userdata);
/* Registers fn for every event. Same return codes. */
int cbev_router_on_any(cbev_router *r, cbev_handler_fn fn, void *userdata);

/* Runs the handlers for ev. Returns 0 when all ran (or none matched), or
 * the first non-zero handler result. CBEV_EINVAL for NULL arguments. */
int cbev_router_dispatch(const cbev_router *r, const cbev_event *ev);

#ifdef __cplusplus
}
#endif
#endif

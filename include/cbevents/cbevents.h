/*
 * cbevents/cbevents.h: the umbrella header of libcbevents, a C client for
 * the Chaturbate Events API. Include this one; the others document each
 * concern (error, log, alloc, event, normalize, ratelimit, session,
 * transport, backoff, secret, router, client).
 */
#ifndef CBEVENTS_CBEVENTS_H
#define CBEVENTS_CBEVENTS_H

#include "cbevents/alloc.h"
#include "cbevents/backoff.h"
#include "cbevents/client.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/log.h"
#include "cbevents/normalize.h"
#include "cbevents/ratelimit.h"
#include "cbevents/router.h"
#include "cbevents/secret.h"
#include "cbevents/session.h"
#include "cbevents/transport.h"
#include "cbevents/version.h"

#endif

/*
 * poller.h: many long-polls at once on one curl multi handle.
 *
 * Each broadcaster has a slot: its sans-I/O session (borrowed) and, while a
 * request runs, an easy handle. The poller asks each idle session whether
 * a request is due, runs the due ones concurrently, and hands every
 * completed response back to its session, reporting the outcome through a
 * callback. It never sleeps: cb2m_poller_wait() blocks in poll() on an
 * epoll set of curl's sockets together with the caller's extra descriptors
 * (the MQTT socket, the signal pipe), so one thread serves a thousand
 * broadcasters and the broker without busy loops, and a wakeup costs the
 * sockets that are ready, not the number of broadcasters.
 */
#ifndef CB2M_POLLER_H
#define CB2M_POLLER_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "cbevents/event.h"
#include "cbevents/session.h"

typedef struct cb2m_poller cb2m_poller;

/* Outcome of one request of slot: rc from cbev_session_on_response(); on
 * CBEV_OK batch is the callee's to free and request_url is the URL that
 * returned it (valid during the call). */
typedef void (*cb2m_poll_done_fn)(void *userdata, size_t slot, int rc, cbev_batch *batch,
                                  const char *request_url);
/* Whether slot may start a request now (backpressure, auth failure). */
typedef int (*cb2m_poll_allowed_fn)(void *userdata, size_t slot);

typedef struct cb2m_poller_opts {
  size_t slots;
  const char *ca_file;   /* NULL: system CAs */
  size_t max_body_bytes; /* 0: CBEV_DEFAULT_MAX_BODY_BYTES */
  cb2m_poll_done_fn done;
  cb2m_poll_allowed_fn allowed;
  void *userdata;
} cb2m_poller_opts;

/* Returns 0, or -1 on ENOMEM / curl failure. */
int cb2m_poller_new(const cb2m_poller_opts *opts, cb2m_poller **out);
/* Aborts running requests (their cursors are kept by the sessions). */
void cb2m_poller_free(cb2m_poller *p);

/* Borrowed; must outlive the poller or be replaced. */
void cb2m_poller_set_session(cb2m_poller *p, size_t slot, cbev_session *s);

/* Starts the requests that are due and allowed. Returns the time (ms) by
 * which it must be called again at the latest (UINT64_MAX: nothing is
 * scheduled). */
uint64_t cb2m_poller_start_due(cb2m_poller *p, uint64_t now_ms);
/* Marks slot as worth re-checking at once (e.g. its queue drained). */
void cb2m_poller_kick(cb2m_poller *p, size_t slot);

/* Waits for network activity of the transfers or of extra fds, at most
 * timeout_ms (or curl's own timer). Returns 0 or -1 (poll failed). */
int cb2m_poller_wait(cb2m_poller *p, struct curl_waitfd *extra, unsigned n_extra,
                     int timeout_ms);
/* Drives the transfers and reports each completed one through done(). */
void cb2m_poller_perform(cb2m_poller *p, uint64_t now_ms);

/* Aborts every running request (shutdown). Sessions keep their cursors. */
void cb2m_poller_abort_all(cb2m_poller *p);
/* Number of requests running. */
size_t cb2m_poller_running(const cb2m_poller *p);
/* Interrupts a cb2m_poller_wait() from another context (not a signal). */
void cb2m_poller_wakeup(cb2m_poller *p);

#endif

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

/* Returns CBEV_OK, or CBEV_ENOMEM (memory, or curl/epoll could not be
 * set up). */
int cb2m_poller_new(const cb2m_poller_opts *opts, cb2m_poller **out);
/* Aborts running requests (their cursors are kept by the sessions). */
void cb2m_poller_free(cb2m_poller *p);

/* Borrowed; must outlive the poller or be replaced. NULL leaves the slot
 * idle. A slot's session may only be replaced while it runs no request
 * (cb2m_poller_abort() first): the answer belongs to the session that
 * asked. */
void cb2m_poller_set_session(cb2m_poller *p, size_t slot, cbev_session *s);

/* old_of_new[j]: which current slot becomes slot j, or this for a new,
 * idle one. */
#define CB2M_POLLER_NEW_SLOT ((size_t)-1)
/* Renumbers the slots for a reload: slot j of the n new ones is the
 * current slot old_of_new[j] with its session and running request, or a
 * new idle slot. Current slots named by no j are aborted and freed (their
 * sessions, the caller's, are not touched). Returns CBEV_OK, or
 * CBEV_ENOMEM with the poller unchanged. */
int cb2m_poller_remap(cb2m_poller *p, size_t n, const size_t *old_of_new);

/* Starts the requests that are due and allowed. Returns the time (ms) by
 * which it must be called again at the latest (UINT64_MAX: nothing is
 * scheduled). */
uint64_t cb2m_poller_start_due(cb2m_poller *p, uint64_t now_ms);
/* Makes the next cb2m_poller_start_due() ask every idle slot again, as
 * something changed that allowed() answers (a queue drained, an auth
 * retry became due). */
void cb2m_poller_kick(cb2m_poller *p);

/* Waits for network activity of the transfers or of extra fds, at most
 * timeout_ms (or curl's own timer). Returns CBEV_OK (also when a signal
 * interrupted the wait) or CBEV_EIO (poll failed, errno set). */
int cb2m_poller_wait(cb2m_poller *p, struct curl_waitfd *extra, unsigned n_extra,
                     int timeout_ms);
/* Drives the transfers and reports each completed one through done(). */
void cb2m_poller_perform(cb2m_poller *p, uint64_t now_ms);

/* Aborts every running request (shutdown). Sessions keep their cursors. */
void cb2m_poller_abort_all(cb2m_poller *p);
/* Aborts slot's running request, if any, e.g. before its session is
 * replaced. The session keeps its cursor; the slot starts again when due. */
void cb2m_poller_abort(cb2m_poller *p, size_t slot);
/* Number of requests running. */
size_t cb2m_poller_running(const cb2m_poller *p);

#endif

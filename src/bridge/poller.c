/*
 * poller.c: the curl multi driver of the sessions. See poller.h.
 *
 * Easy handles are made when a slot starts a request and kept for reuse;
 * the body buffer of a slot is freed after each response so an idle
 * broadcaster costs a few hundred bytes, not a buffer.
 *
 * Sockets are watched with epoll through curl's socket interface
 * (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION + curl_multi_socket_action), so a
 * wakeup costs the sockets that are ready, not one pass over a thousand
 * pending long-polls as curl_multi_poll/curl_multi_perform would.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/epoll.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/transport.h"
#include "cbevents/version.h"
#include "poller.h"

#define HEADER_VALUE_MAX 128
/* curl's default receive buffer is 16 KiB per handle; long-poll answers
 * arrive in small pieces and this keeps a thousand handles cheap. */
#define RECV_BUFFER_BYTES 4096L
/* Ready sockets taken from epoll per call; more are taken in later rounds. */
#define EPOLL_BATCH 64
#define MAX_EXTRA_FDS 8

/* Slots are allocated one by one: curl holds a pointer to each (its
 * PRIVATE and callback data), so a reload that adds or removes slots
 * moves the pointers, never a running slot. */
typedef struct slot {
  cb2m_poller *owner;
  size_t index; /* its position, reported to done() */
  cbev_session *session;
  CURL *easy;
  int running;
  char *request_url;
  char *body;
  size_t body_len, body_cap;
  int too_big;
  char retry_after[HEADER_VALUE_MAX];
  char location[CBEV_LOCATION_MAX]; /* of a 3xx: the session logs its origin */
} slot;

struct cb2m_poller {
  CURLM *multi;
  slot **slots;
  size_t n_slots;
  cb2m_poller_opts opts;
  char *ca_file;
  size_t running;
  uint64_t next_check_ms; /* no slot is due before this */
  int epfd;               /* curl's sockets */
  int64_t timer_at_ms;    /* curl's timeout (monotonic), -1: none */
};

/* curl tells which socket to watch for what. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  cb2m_poller *p = userp;
  struct epoll_event ev = {0};

  (void)easy;
  (void)socketp;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL); /* may be closed already */
    return 0;
  }
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) != 0 &&
      (errno != ENOENT || epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) != 0))
    return -1;
  return 0;
}

/* curl's single timer: act on it in cb2m_poller_perform(). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
  cb2m_poller *p = userp;

  (void)multi;
  p->timer_at_ms = timeout_ms < 0 ? -1 : (int64_t)cbev_now_ms() + timeout_ms;
  return 0;
}

static slot *slot_new(cb2m_poller *p, size_t index) {
  slot *s = calloc(1, sizeof *s);

  if (s) {
    s->owner = p;
    s->index = index;
  }
  return s;
}

static void slot_finish(cb2m_poller *p, slot *s) {
  if (s->running) {
    curl_multi_remove_handle(p->multi, s->easy);
    s->running = 0;
    p->running--;
  }
  cbev_free(s->body);
  s->body = NULL;
  s->body_len = s->body_cap = 0;
  free(s->request_url);
  s->request_url = NULL;
}

static void slot_free(cb2m_poller *p, slot *s) {
  if (!s)
    return;
  slot_finish(p, s);
  if (s->easy)
    curl_easy_cleanup(s->easy);
  free(s);
}

int cb2m_poller_new(const cb2m_poller_opts *opts, cb2m_poller **out) {
  cb2m_poller *p = calloc(1, sizeof *p);
  int ok;

  if (!p)
    return CBEV_ENOMEM;
  p->opts = *opts;
  p->epfd = -1;
  p->timer_at_ms = -1;
  if (!p->opts.max_body_bytes)
    p->opts.max_body_bytes = CBEV_DEFAULT_MAX_BODY_BYTES;
  p->slots = calloc(opts->slots ? opts->slots : 1, sizeof *p->slots);
  ok = p->slots != NULL;
  for (size_t i = 0; ok && i < opts->slots; i++, p->n_slots++)
    ok = (p->slots[i] = slot_new(p, i)) != NULL;
  p->multi = curl_multi_init();
  if (opts->ca_file)
    p->ca_file = strdup(opts->ca_file);
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (!ok || !p->multi || (opts->ca_file && !p->ca_file) || p->epfd < 0) {
    cb2m_poller_free(p);
    return CBEV_ENOMEM;
  }
  curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
  curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
  *out = p;
  return CBEV_OK;
}

void cb2m_poller_abort_all(cb2m_poller *p) {
  for (size_t i = 0; i < p->n_slots; i++)
    slot_finish(p, p->slots[i]);
}

void cb2m_poller_abort(cb2m_poller *p, size_t i) {
  slot_finish(p, p->slots[i]);
  p->next_check_ms = 0;
}

void cb2m_poller_free(cb2m_poller *p) {
  if (!p)
    return;
  for (size_t i = 0; p->slots && i < p->n_slots; i++)
    slot_free(p, p->slots[i]);
  if (p->multi)
    curl_multi_cleanup(p->multi);
  if (p->epfd >= 0)
    close(p->epfd);
  free(p->slots);
  free(p->ca_file);
  free(p);
}

int cb2m_poller_remap(cb2m_poller *p, size_t n, const size_t *old_of_new) {
  slot **next = calloc(n ? n : 1, sizeof *next);
  int *kept = calloc(p->n_slots ? p->n_slots : 1, sizeof *kept);
  int rc = CBEV_ENOMEM;

  if (!next || !kept)
    goto out;
  /* Every allocation first, so a failure leaves the poller as it was. */
  for (size_t j = 0; j < n; j++)
    if (old_of_new[j] == CB2M_POLLER_NEW_SLOT && !(next[j] = slot_new(p, j)))
      goto out;
  for (size_t j = 0; j < n; j++) {
    if (old_of_new[j] == CB2M_POLLER_NEW_SLOT)
      continue;
    next[j] = p->slots[old_of_new[j]];
    next[j]->index = j;
    kept[old_of_new[j]] = 1;
  }
  for (size_t i = 0; i < p->n_slots; i++)
    if (!kept[i])
      slot_free(p, p->slots[i]);
  free(p->slots);
  p->slots = next;
  p->n_slots = n;
  next = NULL;
  p->next_check_ms = 0;
  rc = CBEV_OK;
out:
  for (size_t j = 0; next && j < n; j++)
    if (old_of_new[j] == CB2M_POLLER_NEW_SLOT)
      slot_free(p, next[j]);
  free(next);
  free(kept);
  return rc;
}

void cb2m_poller_set_session(cb2m_poller *p, size_t i, cbev_session *s) {
  p->slots[i]->session = s;
  p->next_check_ms = 0;
}

void cb2m_poller_kick(cb2m_poller *p) { p->next_check_ms = 0; }

size_t cb2m_poller_running(const cb2m_poller *p) { return p->running; }

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
  slot *s = userdata;
  size_t n = size * nmemb;
  int rc = cbev_body_append(&s->body, &s->body_len, &s->body_cap, 4096,
                            s->owner->opts.max_body_bytes, data, n);

  if (rc == CBEV_ETOOBIG)
    s->too_big = 1;
  return rc == CBEV_OK ? n : 0; /* 0 aborts the transfer */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
  slot *s = userdata;
  size_t n = size * nmemb;

  cbev_header_retry_after(data, n, s->retry_after, sizeof s->retry_after);
  cbev_header_location(data, n, s->location, sizeof s->location);
  return n;
}

/* Returns CBEV_OK, or CBEV_ENOMEM / a curl failure as CBEV_ETRANSPORT. */
static int slot_start(cb2m_poller *p, slot *s, const char *url) {
  if (!s->easy && !(s->easy = curl_easy_init()))
    return CBEV_ENOMEM;
  curl_easy_reset(s->easy);
  free(s->request_url);
  s->request_url = strdup(url);
  if (!s->request_url)
    return CBEV_ENOMEM;
  s->body_len = 0;
  s->too_big = 0;
  s->retry_after[0] = '\0';
  s->location[0] = '\0';
  if (cbev_transport_setup(s->easy, url, cbev_session_timeout_s(s->session), p->ca_file,
                           "cb2mqtt/" CBEV_VERSION) != CBEV_OK)
    return CBEV_ETRANSPORT;
  curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
  curl_easy_setopt(s->easy, CURLOPT_BUFFERSIZE, RECV_BUFFER_BYTES);
  curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
  if (curl_multi_add_handle(p->multi, s->easy) != CURLM_OK)
    return CBEV_ETRANSPORT;
  s->running = 1;
  p->running++;
  return CBEV_OK;
}

uint64_t cb2m_poller_start_due(cb2m_poller *p, uint64_t now_ms) {
  uint64_t next = UINT64_MAX;

  if (now_ms < p->next_check_ms)
    return p->next_check_ms;
  for (size_t i = 0; i < p->n_slots; i++) {
    slot *s = p->slots[i];
    const char *url = NULL;
    uint64_t wait_ms = 0;
    int rc;

    if (s->running || !s->session)
      continue;
    if (p->opts.allowed && !p->opts.allowed(p->opts.userdata, i))
      continue; /* re-checked when kicked */
    rc = cbev_session_begin(s->session, now_ms, &url, &wait_ms);
    if (rc == CBEV_EAGAIN) {
      if (now_ms + wait_ms < next)
        next = now_ms + wait_ms;
      continue;
    }
    if (rc != CBEV_OK || slot_start(p, s, url) != CBEV_OK) {
      /* Out of memory or a curl failure: try again in a second. */
      if (now_ms + 1000 < next)
        next = now_ms + 1000;
    }
  }
  p->next_check_ms = next;
  return next;
}

int cb2m_poller_wait(cb2m_poller *p, struct curl_waitfd *extra, unsigned n_extra,
                     int timeout_ms) {
  struct pollfd fds[1 + MAX_EXTRA_FDS];
  unsigned n = n_extra < MAX_EXTRA_FDS ? n_extra : MAX_EXTRA_FDS;
  int rc;

  if (p->timer_at_ms >= 0) {
    int64_t left = p->timer_at_ms - (int64_t)cbev_now_ms();
    if (left < timeout_ms)
      timeout_ms = left > 0 ? (int)left : 0;
  }
  fds[0] = (struct pollfd){.fd = p->epfd, .events = POLLIN};
  for (unsigned i = 0; i < n; i++) {
    fds[1 + i] = (struct pollfd){
        .fd = extra[i].fd,
        .events = (short)(((extra[i].events & CURL_WAIT_POLLIN) ? POLLIN : 0) |
                          ((extra[i].events & CURL_WAIT_POLLPRI) ? POLLPRI : 0) |
                          ((extra[i].events & CURL_WAIT_POLLOUT) ? POLLOUT : 0))};
  }
  rc = poll(fds, 1 + n, timeout_ms);
  for (unsigned i = 0; i < n_extra; i++) {
    short r = i < n && rc > 0 ? fds[1 + i].revents : 0;
    extra[i].revents = (short)(((r & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) ? CURL_WAIT_POLLIN : 0) |
                               ((r & POLLPRI) ? CURL_WAIT_POLLPRI : 0) |
                               ((r & POLLOUT) ? CURL_WAIT_POLLOUT : 0));
  }
  return rc < 0 && errno != EINTR ? CBEV_EIO : CBEV_OK;
}

/* Hands curl its due timer and every ready socket. */
static void drive(cb2m_poller *p) {
  struct epoll_event evs[EPOLL_BATCH];
  int still = 0, n;

  if (p->timer_at_ms >= 0 && (int64_t)cbev_now_ms() >= p->timer_at_ms) {
    p->timer_at_ms = -1;
    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &still);
  }
  /* Bounded: at most one round per slot. */
  for (size_t round = 0; round <= p->n_slots; round++) {
    n = epoll_wait(p->epfd, evs, EPOLL_BATCH, 0);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd, flags = 0;
      if (evs[i].events & (EPOLLIN | EPOLLHUP))
        flags |= CURL_CSELECT_IN;
      if (evs[i].events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
      if (evs[i].events & EPOLLERR)
        flags |= CURL_CSELECT_ERR;
      curl_multi_socket_action(p->multi, fd, flags, &still);
    }
    if (n < EPOLL_BATCH)
      break;
  }
}

void cb2m_poller_perform(cb2m_poller *p, uint64_t now_ms) {
  int left = 0;
  CURLMsg *msg;

  drive(p);
  while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
    slot *s = NULL;
    cbev_response resp;
    cbev_batch *batch = NULL;
    int rc;

    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
    if (!s)
      continue;
    memset(&resp, 0, sizeof resp);
    resp.now_ms = now_ms;
    resp.wall_now = time(NULL);
    if (s->too_big)
      resp.too_big = 1;
    else if (msg->data.result != CURLE_OK)
      resp.transport_error = (int)msg->data.result;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &resp.status);
    resp.body = s->body;
    resp.body_len = s->body_len;
    resp.retry_after = s->retry_after[0] ? s->retry_after : NULL;
    resp.location = s->location[0] ? s->location : NULL;
    rc = cbev_session_on_response(s->session, &resp, &batch);
    /* The URL outlives slot_finish for the callback. */
    char *url = s->request_url;
    s->request_url = NULL;
    slot_finish(p, s);
    p->next_check_ms = 0;
    p->opts.done(p->opts.userdata, s->index, rc, batch, url);
    free(url);
  }
}

/*
 * poller.c: the curl multi driver of the sessions. See poller.h.
 *
 * Easy handles are made when a slot starts a request and kept for reuse;
 * the body buffer of a slot is freed after each response so an idle
 * broadcaster costs a few hundred bytes, not a buffer.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cbevents/error.h"
#include "cbevents/version.h"
#include "poller.h"

#define CONNECT_TIMEOUT_S 10L
#define HEADER_VALUE_MAX 128
/* curl's default receive buffer is 16 KiB per handle; long-poll answers
 * arrive in small pieces and this keeps a thousand handles cheap. */
#define RECV_BUFFER_BYTES 4096L

typedef struct slot {
  cb2m_poller *owner;
  cbev_session *session;
  CURL *easy;
  int running;
  char *request_url;
  char *body;
  size_t body_len, body_cap;
  int too_big;
  char retry_after[HEADER_VALUE_MAX];
} slot;

struct cb2m_poller {
  CURLM *multi;
  slot *slots;
  cb2m_poller_opts opts;
  char *ca_file;
  size_t running;
  uint64_t next_check_ms; /* no slot is due before this */
};

int cb2m_poller_new(const cb2m_poller_opts *opts, cb2m_poller **out) {
  cb2m_poller *p = calloc(1, sizeof *p);

  if (!p)
    return -1;
  p->opts = *opts;
  if (!p->opts.max_body_bytes)
    p->opts.max_body_bytes = CBEV_DEFAULT_MAX_BODY_BYTES;
  p->slots = calloc(opts->slots ? opts->slots : 1, sizeof *p->slots);
  p->multi = curl_multi_init();
  if (opts->ca_file)
    p->ca_file = strdup(opts->ca_file);
  if (!p->slots || !p->multi || (opts->ca_file && !p->ca_file)) {
    cb2m_poller_free(p);
    return -1;
  }
  for (size_t i = 0; i < opts->slots; i++)
    p->slots[i].owner = p;
  *out = p;
  return 0;
}

static void slot_finish(cb2m_poller *p, slot *s) {
  if (s->running) {
    curl_multi_remove_handle(p->multi, s->easy);
    s->running = 0;
    p->running--;
  }
  free(s->body);
  s->body = NULL;
  s->body_len = s->body_cap = 0;
  free(s->request_url);
  s->request_url = NULL;
}

void cb2m_poller_abort_all(cb2m_poller *p) {
  for (size_t i = 0; i < p->opts.slots; i++)
    slot_finish(p, &p->slots[i]);
}

void cb2m_poller_free(cb2m_poller *p) {
  if (!p)
    return;
  if (p->slots) {
    cb2m_poller_abort_all(p);
    for (size_t i = 0; i < p->opts.slots; i++)
      if (p->slots[i].easy)
        curl_easy_cleanup(p->slots[i].easy);
  }
  if (p->multi)
    curl_multi_cleanup(p->multi);
  free(p->slots);
  free(p->ca_file);
  free(p);
}

void cb2m_poller_set_session(cb2m_poller *p, size_t i, cbev_session *s) {
  p->slots[i].session = s;
  p->next_check_ms = 0;
}

void cb2m_poller_kick(cb2m_poller *p, size_t i) {
  (void)i;
  p->next_check_ms = 0;
}

size_t cb2m_poller_running(const cb2m_poller *p) { return p->running; }

void cb2m_poller_wakeup(cb2m_poller *p) { curl_multi_wakeup(p->multi); }

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
  slot *s = userdata;
  size_t n = size * nmemb, max = s->owner->opts.max_body_bytes;

  if (n > max - s->body_len) {
    s->too_big = 1;
    return 0;
  }
  if (s->body_len + n + 1 > s->body_cap) {
    size_t cap = s->body_cap ? s->body_cap : 4096;
    char *b;
    while (cap < s->body_len + n + 1)
      cap *= 2;
    if (cap > max + 1)
      cap = max + 1;
    b = realloc(s->body, cap);
    if (!b)
      return 0;
    s->body = b;
    s->body_cap = cap;
  }
  memcpy(s->body + s->body_len, data, n);
  s->body_len += n;
  s->body[s->body_len] = '\0';
  return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
  slot *s = userdata;
  size_t n = size * nmemb, name_len = sizeof("Retry-After:") - 1;

  if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
    s->retry_after[0] = '\0';
  if (n > name_len && strncasecmp(data, "Retry-After:", name_len) == 0) {
    const char *v = data + name_len;
    size_t len = n - name_len;
    while (len && (*v == ' ' || *v == '\t'))
      v++, len--;
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
      len--;
    if (len >= sizeof s->retry_after)
      len = sizeof s->retry_after - 1;
    memcpy(s->retry_after, v, len);
    s->retry_after[len] = '\0';
  }
  return n;
}

static int slot_start(cb2m_poller *p, slot *s, const char *url) {
  long timeout_s = (long)cbev_session_timeout_s(s->session) + 10L;

  if (!s->easy && !(s->easy = curl_easy_init()))
    return -1;
  curl_easy_reset(s->easy);
  free(s->request_url);
  s->request_url = strdup(url);
  if (!s->request_url)
    return -1;
  s->body_len = 0;
  s->too_big = 0;
  s->retry_after[0] = '\0';
  curl_easy_setopt(s->easy, CURLOPT_URL, url);
  curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
  curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
  curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(s->easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(s->easy, CURLOPT_BUFFERSIZE, RECV_BUFFER_BYTES);
  curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "cb2mqtt/" CBEV_VERSION);
  curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
  if (p->ca_file)
    curl_easy_setopt(s->easy, CURLOPT_CAINFO, p->ca_file);
  if (curl_multi_add_handle(p->multi, s->easy) != CURLM_OK)
    return -1;
  s->running = 1;
  p->running++;
  return 0;
}

uint64_t cb2m_poller_start_due(cb2m_poller *p, uint64_t now_ms) {
  uint64_t next = UINT64_MAX;

  if (now_ms < p->next_check_ms)
    return p->next_check_ms;
  for (size_t i = 0; i < p->opts.slots; i++) {
    slot *s = &p->slots[i];
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
    if (rc != CBEV_OK || slot_start(p, s, url) != 0) {
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
  int numfds = 0;
  return curl_multi_poll(p->multi, extra, n_extra, timeout_ms, &numfds) == CURLM_OK ? 0 : -1;
}

void cb2m_poller_perform(cb2m_poller *p, uint64_t now_ms) {
  int still = 0, left = 0;
  CURLMsg *msg;

  curl_multi_perform(p->multi, &still);
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
    rc = cbev_session_on_response(s->session, &resp, &batch);
    /* The URL outlives slot_finish for the callback. */
    char *url = s->request_url;
    s->request_url = NULL;
    slot_finish(p, s);
    p->next_check_ms = 0;
    p->opts.done(p->opts.userdata, (size_t)(s - p->slots), rc, batch, url);
    free(url);
  }
}

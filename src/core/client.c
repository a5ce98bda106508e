/*
 * client.c: the blocking client, a thin libcurl driver around the session.
 *
 * The session decides; this file only performs the GET it asks for, hands
 * the outcome back, and sleeps when told to. Sleeps and transfers are cut
 * into short slices so a stop flag set by a signal handler is seen quickly.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cbevents/alloc.h"
#include "cbevents/client.h"
#include "cbevents/error.h"
#include "cbevents/transport.h"
#include "cbevents/version.h"

#define STOP_SLICE_MS 100u
#define HEADER_VALUE_MAX 256

struct cbev_client {
  cbev_session *session;
  CURL *curl;
  const cbev_logger *logger;
  const volatile sig_atomic_t *stop_flag;
  char *ca_file;
  size_t max_body_bytes;
  /* Per-transfer state. */
  char *body;
  size_t body_len, body_cap;
  int too_big;
  char retry_after[HEADER_VALUE_MAX];
  char location[CBEV_LOCATION_MAX];
  char errbuf[CURL_ERROR_SIZE];
};

void cbev_client_config_init(cbev_client_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cbev_session_config_init(&cfg->session);
}

static int stopped(const cbev_client *c) { return c->stop_flag && *c->stop_flag; }

/* Sleeps wait_ms in slices; returns CBEV_ECANCELED when stopped meanwhile. */
static int sleep_ms(const cbev_client *c, uint64_t wait_ms) {
  while (wait_ms > 0) {
    uint64_t slice = wait_ms < STOP_SLICE_MS ? wait_ms : STOP_SLICE_MS;
    struct timespec ts = {(time_t)(slice / 1000u), (long)(slice % 1000u) * 1000000L};
    if (stopped(c))
      return CBEV_ECANCELED;
    nanosleep(&ts, NULL); /* EINTR just ends the slice early */
    wait_ms -= slice;
  }
  return stopped(c) ? CBEV_ECANCELED : CBEV_OK;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
  cbev_client *c = userdata;
  size_t n = size * nmemb;
  int rc = cbev_body_append(&c->body, &c->body_len, &c->body_cap, 16384, c->max_body_bytes,
                            data, n);

  if (rc == CBEV_ETOOBIG)
    c->too_big = 1;
  return rc == CBEV_OK ? n : 0; /* 0 aborts the transfer with CURLE_WRITE_ERROR */
}

/* Keeps the Retry-After and Location headers of the last response. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
  cbev_client *c = userdata;
  size_t n = size * nmemb;

  cbev_header_retry_after(data, n, c->retry_after, sizeof c->retry_after);
  cbev_header_location(data, n, c->location, sizeof c->location);
  return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow) {
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  return stopped(userdata) ? 1 : 0;
}

int cbev_client_new(const cbev_client_config *cfg, cbev_client **out) {
  cbev_session_config scfg;
  cbev_client *c = NULL;
  int rc = CBEV_EINVAL;

  if (!cfg || !out)
    goto out;
  rc = CBEV_ENOMEM;
  c = cbev_calloc(1, sizeof *c);
  if (!c)
    goto out;
  scfg = cfg->session;
  if (!scfg.base_url && cfg->testbed)
    scfg.base_url = CBEV_TESTBED_BASE;
  rc = cbev_session_new(&scfg, &c->session);
  if (rc != CBEV_OK)
    goto out;
  rc = CBEV_ENOMEM;
  c->logger = cfg->session.logger;
  c->stop_flag = cfg->stop_flag;
  c->max_body_bytes = cfg->max_body_bytes ? cfg->max_body_bytes : CBEV_DEFAULT_MAX_BODY_BYTES;
  if (cfg->ca_file && !(c->ca_file = cbev_strdup(cfg->ca_file)))
    goto out;
  c->curl = curl_easy_init();
  if (!c->curl)
    goto out;
  *out = c;
  c = NULL;
  rc = CBEV_OK;
out:
  cbev_client_free(c);
  return rc;
}

void cbev_client_free(cbev_client *c) {
  if (!c)
    return;
  if (c->curl)
    curl_easy_cleanup(c->curl);
  cbev_session_free(c->session);
  cbev_free(c->ca_file);
  cbev_free(c->body);
  cbev_free(c);
}

cbev_session *cbev_client_session(cbev_client *c) { return c ? c->session : NULL; }

/* One GET of url; fills resp. Returns CBEV_ECANCELED when stopped. */
static int perform(cbev_client *c, const char *url, cbev_response *resp) {
  CURL *h = c->curl;
  CURLcode cc = CURLE_FAILED_INIT;

  curl_easy_reset(h);
  c->body_len = 0;
  c->too_big = 0;
  c->retry_after[0] = '\0';
  c->location[0] = '\0';
  c->errbuf[0] = '\0';
  if (c->body)
    c->body[0] = '\0';
  /* A handle libcurl refuses to set up fails like a transfer (logged and
   * retried by the session) rather than running with half its rules. */
  if (cbev_transport_setup(h, url, cbev_session_timeout_s(c->session), c->ca_file,
                           "cbevents/" CBEV_VERSION) != CBEV_OK)
    goto done;
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
  cc = curl_easy_perform(h);
done:
  memset(resp, 0, sizeof *resp);
  resp->now_ms = cbev_now_ms();
  resp->wall_now = time(NULL);
  if (cc == CURLE_ABORTED_BY_CALLBACK && stopped(c))
    return CBEV_ECANCELED;
  if (c->too_big) {
    resp->too_big = 1;
  } else if (cc != CURLE_OK) {
    resp->transport_error = (int)cc;
    /* curl's message names host and port, not the path; masked anyway. */
    cbev_log(c->logger, cbev_session_token(c->session), CBEV_LOG_DEBUG,
             "%s: transfer failed: %s", cbev_session_username(c->session),
             c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
  resp->body = c->body;
  resp->body_len = c->body_len;
  resp->retry_after = c->retry_after[0] ? c->retry_after : NULL;
  resp->location = c->location[0] ? c->location : NULL;
  return CBEV_OK;
}

int cbev_client_poll(cbev_client *c, cbev_batch **batch) {
  if (!c || !batch)
    return CBEV_EINVAL;
  *batch = NULL;
  for (;;) {
    const char *url = NULL;
    uint64_t wait_ms = 0;
    cbev_response resp;
    int rc;

    if (stopped(c))
      return CBEV_ECANCELED;
    rc = cbev_session_begin(c->session, cbev_now_ms(), &url, &wait_ms);
    if (rc == CBEV_EAGAIN) {
      if (sleep_ms(c, wait_ms) != CBEV_OK)
        return CBEV_ECANCELED;
      continue;
    }
    if (rc != CBEV_OK)
      return rc;
    rc = perform(c, url, &resp);
    if (rc != CBEV_OK)
      return rc;
    rc = cbev_session_on_response(c->session, &resp, batch);
    if (rc != CBEV_EAGAIN)
      return rc;
  }
}

int cbev_client_run(cbev_client *c, const cbev_router *router) {
  if (!c || !router)
    return CBEV_EINVAL;
  for (;;) {
    cbev_batch *b = NULL;
    int rc = cbev_client_poll(c, &b);
    if (rc != CBEV_OK)
      return rc;
    for (size_t i = 0; i < cbev_batch_count(b) && rc == 0; i++)
      rc = cbev_router_dispatch(router, cbev_batch_get(b, i));
    cbev_batch_free(b);
    if (rc != 0)
      return rc;
  }
}

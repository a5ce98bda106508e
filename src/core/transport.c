/*
 * transport.c: the chores every transport of the session repeats (see
 * cbevents/transport.h): the Retry-After and Location headers out of raw
 * header lines, a capped response body that grows by doubling, the one
 * easy-handle setup and the monotonic clock. The blocking client and the
 * bridge's curl multi poller both use them, so the caps, timeouts and
 * trimming rules cannot drift apart.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/transport.h"

/* The value of header name (with its colon) in one raw header line into
 * out, trimmed and cut to fit; a status line clears out. */
static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap) {
  size_t name_len = strlen(name);

  if (!line || !out || !cap)
    return;
  if (n >= 5 && strncmp(line, "HTTP/", 5) == 0)
    out[0] = '\0';
  if (n > name_len && strncasecmp(line, name, name_len) == 0) {
    const char *v = line + name_len;
    size_t len = n - name_len;
    while (len && (*v == ' ' || *v == '\t'))
      v++, len--;
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' ||
                   v[len - 1] == '\t'))
      len--;
    if (len >= cap)
      len = cap - 1;
    memcpy(out, v, len);
    out[len] = '\0';
  }
}

void cbev_header_retry_after(const char *line, size_t n, char *out, size_t cap) {
  header_value(line, n, "Retry-After:", out, cap);
}

void cbev_header_location(const char *line, size_t n, char *out, size_t cap) {
  header_value(line, n, "Location:", out, cap);
}

int cbev_body_append(char **buf, size_t *len, size_t *cap, size_t first_cap,
                     size_t max, const char *data, size_t n) {
  if (!buf || !len || !cap || (n && !data))
    return CBEV_EINVAL;
  /* The NUL after the data needs a byte too (max may be SIZE_MAX). */
  if (*len > max || n > max - *len || *len + n == SIZE_MAX)
    return CBEV_ETOOBIG;
  if (*len + n + 1 > *cap) {
    /* max may be SIZE_MAX ("no cap"): neither the limit nor the doubling
     * may wrap, or the buffer would come out smaller than the data. */
    size_t need = *len + n + 1, limit = max < SIZE_MAX ? max + 1 : SIZE_MAX;
    size_t c = *cap ? *cap : (first_cap ? first_cap : 4096);
    char *p;
    while (c < need)
      c = c > SIZE_MAX / 2 ? need : c * 2;
    if (c > limit)
      c = limit;
    p = cbev_realloc(*buf, c);
    if (!p)
      return CBEV_ENOMEM;
    *buf = p;
    *cap = c;
  }
  if (n)
    memcpy(*buf + *len, data, n);
  *len += n;
  (*buf)[*len] = '\0';
  return CBEV_OK;
}

int cbev_transport_setup(void *easy, const char *url, int timeout_s,
                         const char *ca_file, const char *user_agent) {
  CURL *h = easy;
  CURLcode cc = CURLE_OK;

  if (!h || !url || timeout_s < 0)
    return CBEV_EINVAL;
  /* Each option is tried even after one failed; the first failure counts. */
#define SETOPT(opt, val)                      \
  do {                                        \
    CURLcode r_ = curl_easy_setopt(h, opt, val); \
    if (cc == CURLE_OK)                       \
      cc = r_;                                \
  } while (0)
  SETOPT(CURLOPT_URL, url);
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_CONNECTTIMEOUT, CBEV_CONNECT_TIMEOUT_S);
  SETOPT(CURLOPT_TIMEOUT, (long)timeout_s + CBEV_TRANSFER_GRACE_S);
  SETOPT(CURLOPT_ACCEPT_ENCODING, "");
  if (user_agent)
    SETOPT(CURLOPT_USERAGENT, user_agent);
  if (ca_file)
    SETOPT(CURLOPT_CAINFO, ca_file);
#undef SETOPT
  return cc == CURLE_OK ? CBEV_OK : CBEV_ETRANSPORT;
}

uint64_t cbev_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

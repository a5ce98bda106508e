/*
 * cbevents/transport.h: what every transport of the session shares (the
 * blocking client, the bridge's curl multi poller, your own): reading the
 * Retry-After and Location header lines, a capped response body, the URL
 * checks, one libcurl easy-handle setup and the monotonic clock. They live
 * here once so the rules of a request cannot drift apart between callers.
 *
 * Return convention (as everywhere in libcbevents): functions that can fail
 * return a cbev_rc, CBEV_OK (0) on success. Memory: what the library
 * allocates is released with cbev_free().
 */
#ifndef CBEVENTS_TRANSPORT_H
#define CBEVENTS_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cbev_header_retry_after() reads one raw header line (as libcurl's header
 * callback gets it, CRLF included). A status line ("HTTP/...") clears out
 * (a new header block after 100 Continue); a Retry-After line stores its
 * trimmed value in out (cap bytes, cut to fit, NUL-terminated). Other lines
 * leave out alone. cbev_header_location() does the same for Location
 * (cbev_response.location: what a 3xx names, logged by its origin only;
 * CBEV_LOCATION_MAX bytes are enough to show that).
 *
 * cbev_body_append() appends n bytes to the growing buffer *buf (*len used
 * of *cap allocated; cbev_free() it), doubling from first_cap and keeping a
 * NUL after the data. Returns CBEV_OK, CBEV_ETOOBIG when the body would
 * pass max bytes (nothing appended) or CBEV_ENOMEM (nothing appended). */
void cbev_header_retry_after(const char *line, size_t n, char *out, size_t cap);
#define CBEV_LOCATION_MAX 1024
void cbev_header_location(const char *line, size_t n, char *out, size_t cap);
int cbev_body_append(char **buf, size_t *len, size_t *cap, size_t first_cap,
                     size_t max, const char *data, size_t n);

/* Checks candidate against base: same scheme, host (case-insensitive)
 * and port (default ports resolved), https or http to loopback, no
 * userinfo, absolute, at most 8 KiB, printable ASCII without spaces or
 * backslashes. Both are parsed by libcurl, so IP forms and percent-encoded
 * host names are compared as libcurl will connect to them. Returns CBEV_OK
 * or CBEV_EURL (CBEV_ENOMEM when memory runs out). */
int cbev_url_check_same_origin(const char *base, const char *candidate);
/* CBEV_OK when url is https, or http to 127.0.0.0/8, ::1 or localhost;
 * CBEV_EURL otherwise (including unparsable). */
int cbev_url_check_scheme(const char *url);

/* Seconds a connection may take to be set up. */
#define CBEV_CONNECT_TIMEOUT_S 10L
/* Seconds a whole transfer may take beyond the long-poll's own timeout=
 * (the server answers after timeout_s; this covers a slow network). */
#define CBEV_TRANSFER_GRACE_S 10L

/* Sets up easy, a libcurl easy handle (CURL *; from the libcurl the
 * library links), for one GET of url: http and https only, no redirects
 * (a 3xx is the session's to judge), no signals, a connect timeout of
 * CBEV_CONNECT_TIMEOUT_S, a transfer timeout of timeout_s +
 * CBEV_TRANSFER_GRACE_S, any content encoding curl decodes, user_agent
 * (NULL: none) and ca_file as the CA bundle (NULL: curl's default). The
 * strings are copied by libcurl. Callbacks, buffers and private data stay
 * the caller's. Call it after curl_easy_reset(). Returns CBEV_OK,
 * CBEV_EINVAL (NULL easy or url, negative timeout_s) or CBEV_ETRANSPORT
 * (libcurl refused an option, e.g. out of memory). */
int cbev_transport_setup(void *easy, const char *url, int timeout_s,
                         const char *ca_file, const char *user_agent);

/* Milliseconds of CLOCK_MONOTONIC: the now_ms the session and the rate
 * limiter expect. Never goes back; unrelated to the wall clock. */
uint64_t cbev_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif

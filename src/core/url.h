/*
 * url.h: URL rules of the session, private to libcbevents.
 *
 * The public checks (cbev_url_check_scheme, cbev_url_check_same_origin) are
 * declared in cbevents/session.h; this header adds what session.c needs to
 * build the first URL, split a whole feed URL and resolve a nextUrl.
 * Everything returned is allocated with cbev_malloc and freed with
 * cbev_free.
 */
#ifndef CBEV_URL_H
#define CBEV_URL_H

#include <stddef.h>

/* Longest URL accepted anywhere (base, feed URL, nextUrl, cursor). A
 * nextUrl is a path plus a short query; anything longer is refused. */
#define CBEV_URL_MAX 8192

/* Percent-encodes every byte of s except RFC 3986 unreserved characters,
 * for use as one path segment. NULL on NULL input or out of memory. */
char *cbev__url_encode_segment(const char *s);

/* Decodes %XX escapes of the first len bytes of s into *out. Returns
 * CBEV_OK, CBEV_EURL when an escape is malformed or the result would hold
 * a NUL or a control character, or CBEV_ENOMEM (told apart, so running
 * out of memory is never reported as a bad URL). *out is NULL on failure. */
int cbev__url_decode_segment(const char *s, size_t len, char **out);

/* Resolves candidate (absolute, or relative to current as a browser would)
 * and checks the result against base like cbev_url_check_same_origin().
 * On CBEV_OK *out is the resolved URL as libcurl normalises it (what will
 * be requested). Returns CBEV_OK, CBEV_EURL or CBEV_ENOMEM. */
int cbev__url_resolve_checked(const char *base, const char *current,
                             const char *candidate, char **out);

/* Normalises an absolute URL that already passed the checks: the form
 * libcurl will request. Returns CBEV_OK, CBEV_EURL, CBEV_ENOMEM. */
int cbev__url_normalize(const char *url, char **out);

/* The origin of url ("https://host:port") for messages; never the path.
 * secret (may be NULL) is masked out of the host before the host is cut to
 * 200 bytes. Writes "(unparsable)" when url does not parse (or memory runs
 * out). */
void cbev__url_origin(const char *url, const char *secret, char *buf, size_t size);

/* The same for target (a Location header), resolved against current (the
 * URL requested) first, so a relative one names the origin it leads to. */
void cbev__url_target_origin(const char *current, const char *target, const char *secret,
                            char *buf, size_t size);

/* feed (the configured feed URL: its path, token and timeout=) with the
 * i= parameter of saved (a saved cursor URL) in place of its own; nothing
 * else of saved is kept, so a rotated token or a changed timeout applies.
 * saved without i= gives feed as it is. On CBEV_OK *out is the new URL.
 * Returns CBEV_OK, CBEV_EURL (either does not parse), CBEV_ENOMEM. */
int cbev__url_with_cursor(const char *feed, const char *saved, char **out);

/* A whole feed URL "<base>/<username>/<token>/[?query]" split into parts.
 * base has no trailing slash; username and token are decoded. timeout_s is
 * the value of a timeout= query parameter, -1 when absent. */
typedef struct cbev_feed_url {
  char *base;
  char *username;
  char *token;
  char *url; /* the feed URL, normalised, with timeout= added if absent */
  int timeout_s;
} cbev_feed_url;

/* Splits url (which must pass cbev_url_check_scheme()) and adds
 * "timeout=<default_timeout_s>" to its query when it has none. Returns
 * CBEV_OK, CBEV_EURL (not a feed URL), CBEV_EINVAL (timeout= present but
 * not 0..90), CBEV_ENOMEM. On failure *feed holds nothing to free. */
int cbev__feed_url_parse(const char *url, int default_timeout_s,
                        cbev_feed_url *feed);
void cbev__feed_url_cleanup(cbev_feed_url *feed);

#endif

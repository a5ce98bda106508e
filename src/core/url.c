/*
 * url.c: the URL rules of SPEC section 2, on libcurl's URL API.
 *
 * Parsing and comparing go through curl_url() so that the checks see a URL
 * exactly as the transfer will: libcurl normalises IPv4 forms ("127.1"),
 * IPv6 spellings, percent-encoded host names and default ports before we
 * compare, and a URL that libcurl cannot parse is refused. On top of that a
 * cheap scan refuses what an Events API URL never holds (spaces, control
 * bytes, non-ASCII, backslashes) and anything longer than CBEV_URL_MAX.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/session.h"
#include "log_impl.h"
#include "url.h"

/* Refuses before parsing what no URL of ours contains. */
static int prescan(const char *url) {
  size_t n = 0;

  if (!url)
    return CBEV_EURL;
  for (const unsigned char *p = (const unsigned char *)url; *p; p++, n++) {
    if (n >= CBEV_URL_MAX || *p <= 0x20 || *p >= 0x7f || *p == '\\')
      return CBEV_EURL;
  }
  return n ? CBEV_OK : CBEV_EURL;
}

static int curl_rc(CURLUcode uc) {
  if (uc == CURLUE_OK)
    return CBEV_OK;
  return uc == CURLUE_OUT_OF_MEMORY ? CBEV_ENOMEM : CBEV_EURL;
}

/* Parses an absolute URL into a new handle. */
static int parse(const char *url, CURLU **out) {
  CURLU *h = NULL;
  int rc = prescan(url);

  *out = NULL;
  if (rc != CBEV_OK)
    goto out;
  rc = CBEV_ENOMEM;
  h = curl_url();
  if (!h)
    goto out;
  rc = curl_rc(curl_url_set(h, CURLUPART_URL, url, 0));
  if (rc != CBEV_OK)
    goto out;
  *out = h;
  h = NULL;
out:
  curl_url_cleanup(h);
  return rc;
}

/* Copies a part into cbev memory; CBEV_EURL when the part is absent. */
static int get_part(CURLU *h, CURLUPart what, unsigned flags, char **out) {
  char *v = NULL;
  int rc = curl_rc(curl_url_get(h, what, &v, flags));

  *out = NULL;
  if (rc == CBEV_OK) {
    *out = cbev_strdup(v);
    if (!*out)
      rc = CBEV_ENOMEM;
  }
  curl_free(v);
  return rc;
}

static int has_part(CURLU *h, CURLUPart what) {
  char *v = NULL;
  CURLUcode uc = curl_url_get(h, what, &v, 0);

  curl_free(v);
  return uc == CURLUE_OK;
}

static int is_loopback_host(const char *host) {
  char buf[INET6_ADDRSTRLEN + 2];
  unsigned char addr[sizeof(struct in6_addr)];
  size_t n = strlen(host);

  if (strcasecmp(host, "localhost") == 0)
    return 1;
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
    if (n - 2 >= sizeof buf)
      return 0;
    memcpy(buf, host + 1, n - 2);
    buf[n - 2] = '\0';
    /* Only ::1 itself: an IPv4-mapped address is not "::1" (SPEC 2). */
    return inet_pton(AF_INET6, buf, addr) == 1 &&
           memcmp(addr, &in6addr_loopback, sizeof in6addr_loopback) == 0;
  }
  return inet_pton(AF_INET, host, addr) == 1 && addr[0] == 127;
}

/* The parts compared between a base and a candidate. */
typedef struct origin {
  char *scheme;
  char *host;
  unsigned long port;
} origin;

static void origin_cleanup(origin *o) {
  cbev_free(o->scheme);
  cbev_free(o->host);
  o->scheme = o->host = NULL;
}

/* Reads the origin of h and applies the per-URL rules: no userinfo, no
 * IPv6 zone id (libcurl keeps it out of the host, so "[fe80::1%25eth1]"
 * would compare equal to "[fe80::1%25eth0]", another link; no URL of ours
 * has one), https or http to a loopback host. */
static int origin_of(CURLU *h, origin *o) {
  char *port = NULL, *end;
  int rc;

  memset(o, 0, sizeof *o);
  rc = CBEV_EURL;
  if (has_part(h, CURLUPART_USER) || has_part(h, CURLUPART_PASSWORD) ||
      has_part(h, CURLUPART_OPTIONS) || has_part(h, CURLUPART_ZONEID))
    goto out;
  if ((rc = get_part(h, CURLUPART_SCHEME, 0, &o->scheme)) != CBEV_OK ||
      (rc = get_part(h, CURLUPART_HOST, 0, &o->host)) != CBEV_OK ||
      (rc = get_part(h, CURLUPART_PORT, CURLU_DEFAULT_PORT, &port)) != CBEV_OK)
    goto out;
  rc = CBEV_EURL;
  errno = 0;
  o->port = strtoul(port, &end, 10);
  if (errno || end == port || *end || o->port == 0 || o->port > 65535)
    goto out;
  if (strcasecmp(o->scheme, "https") != 0 &&
      !(strcasecmp(o->scheme, "http") == 0 && is_loopback_host(o->host)))
    goto out;
  rc = CBEV_OK;
out:
  cbev_free(port);
  if (rc != CBEV_OK)
    origin_cleanup(o);
  return rc;
}

static int same_origin(CURLU *base, CURLU *cand) {
  origin b, c;
  int rc;

  if ((rc = origin_of(base, &b)) != CBEV_OK)
    return rc;
  if ((rc = origin_of(cand, &c)) != CBEV_OK) {
    origin_cleanup(&b);
    return rc;
  }
  /* Host names are case-insensitive (RFC 3986 3.2.2); libcurl has already
   * decoded and normalised IP literals, so a string compare is enough. */
  rc = strcasecmp(b.scheme, c.scheme) == 0 && strcasecmp(b.host, c.host) == 0 &&
               b.port == c.port
           ? CBEV_OK
           : CBEV_EURL;
  origin_cleanup(&b);
  origin_cleanup(&c);
  return rc;
}

int cbev_url_check_scheme(const char *url) {
  CURLU *h = NULL;
  origin o;
  int rc = parse(url, &h);

  if (rc == CBEV_OK) {
    rc = origin_of(h, &o);
    origin_cleanup(&o);
  }
  curl_url_cleanup(h);
  return rc == CBEV_ENOMEM ? rc : (rc == CBEV_OK ? CBEV_OK : CBEV_EURL);
}

int cbev_url_check_same_origin(const char *base, const char *candidate) {
  CURLU *b = NULL, *c = NULL;
  int rc;

  if ((rc = parse(base, &b)) != CBEV_OK || (rc = parse(candidate, &c)) != CBEV_OK)
    goto out;
  rc = same_origin(b, c);
out:
  curl_url_cleanup(b);
  curl_url_cleanup(c);
  return rc == CBEV_ENOMEM ? rc : (rc == CBEV_OK ? CBEV_OK : CBEV_EURL);
}

int cbev__url_resolve_checked(const char *base, const char *current,
                             const char *candidate, char **out) {
  CURLU *b = NULL, *c = NULL;
  char *resolved = NULL;
  int rc;

  *out = NULL;
  if ((rc = prescan(candidate)) != CBEV_OK || (rc = parse(base, &b)) != CBEV_OK ||
      (rc = parse(current, &c)) != CBEV_OK)
    goto out;
  /* On a handle that holds a URL, libcurl resolves a relative reference
   * ("?i=1", "/events/...", "//host/...") the way a browser would; an
   * absolute one replaces it. The check below then sees the result. */
  if ((rc = curl_rc(curl_url_set(c, CURLUPART_URL, candidate, 0))) != CBEV_OK ||
      (rc = same_origin(b, c)) != CBEV_OK ||
      (rc = get_part(c, CURLUPART_URL, 0, &resolved)) != CBEV_OK)
    goto out;
  rc = CBEV_EURL;
  if (strlen(resolved) > CBEV_URL_MAX)
    goto out;
  *out = resolved;
  resolved = NULL;
  rc = CBEV_OK;
out:
  cbev_free(resolved);
  curl_url_cleanup(b);
  curl_url_cleanup(c);
  return rc == CBEV_ENOMEM ? rc : (rc == CBEV_OK ? CBEV_OK : CBEV_EURL);
}

int cbev__url_normalize(const char *url, char **out) {
  CURLU *h = NULL;
  int rc;

  *out = NULL;
  if ((rc = parse(url, &h)) == CBEV_OK)
    rc = get_part(h, CURLUPART_URL, 0, out);
  if (rc == CBEV_OK && strlen(*out) > CBEV_URL_MAX) {
    cbev_free(*out);
    *out = NULL;
    rc = CBEV_EURL;
  }
  curl_url_cleanup(h);
  return rc;
}

/* "scheme://host:port" of h into buf, the host masked then cut. */
static void format_origin(CURLU *h, const char *secret, char *buf, size_t size) {
  char *scheme = NULL, *host = NULL, *port = NULL;
  char shown[201];

  if (get_part(h, CURLUPART_SCHEME, 0, &scheme) == CBEV_OK &&
      get_part(h, CURLUPART_HOST, 0, &host) == CBEV_OK &&
      get_part(h, CURLUPART_PORT, CURLU_DEFAULT_PORT, &port) == CBEV_OK &&
      cbev__log_mask_cut(shown, sizeof shown, host, secret, NULL) == CBEV_OK)
    snprintf(buf, size, "%s://%s:%s", scheme, shown, port);
  cbev_free(scheme);
  cbev_free(host);
  cbev_free(port);
}

void cbev__url_origin(const char *url, const char *secret, char *buf, size_t size) {
  CURLU *h = NULL;

  if (!buf || !size)
    return;
  snprintf(buf, size, "(unparsable)");
  if (parse(url, &h) == CBEV_OK)
    format_origin(h, secret, buf, size);
  curl_url_cleanup(h);
}

void cbev__url_target_origin(const char *current, const char *target, const char *secret,
                            char *buf, size_t size) {
  CURLU *h = NULL;

  if (!buf || !size)
    return;
  snprintf(buf, size, "(unparsable)");
  /* Resolved on the handle of the URL requested, as a browser would. */
  if (prescan(target) == CBEV_OK && parse(current, &h) == CBEV_OK &&
      curl_url_set(h, CURLUPART_URL, target, 0) == CURLUE_OK)
    format_origin(h, secret, buf, size);
  curl_url_cleanup(h);
}

/* The i=... parameter of query (text as in the URL), or NULL; *n its
 * length. The last one wins, as for most servers. */
static const char *query_cursor(const char *query, size_t *n) {
  const char *found = NULL;

  for (const char *p = query; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len >= 2 && p[0] == 'i' && p[1] == '=') {
      found = p + 2;
      *n = len - 2;
    }
    p = amp ? amp + 1 : NULL;
  }
  return found;
}

int cbev__url_with_cursor(const char *feed, const char *saved, char **out) {
  CURLU *f = NULL, *sv = NULL;
  char *fq = NULL, *sq = NULL, *q = NULL;
  const char *cur;
  size_t cur_n = 0, qn = 0;
  int rc;

  *out = NULL;
  if ((rc = parse(feed, &f)) != CBEV_OK || (rc = parse(saved, &sv)) != CBEV_OK)
    goto out;
  if ((rc = get_part(sv, CURLUPART_QUERY, 0, &sq)) == CBEV_ENOMEM ||
      (rc = get_part(f, CURLUPART_QUERY, 0, &fq)) == CBEV_ENOMEM)
    goto out;
  rc = CBEV_ENOMEM;
  cur = query_cursor(sq, &cur_n);
  if (!(q = cbev_malloc((fq ? strlen(fq) : 0) + cur_n + 4)))
    goto out;
  /* The saved i= (first, as the API writes its nextUrls), then the feed's
   * own parameters (timeout= included) minus its i=: nothing else of the
   * saved URL carries over. */
  if (cur) {
    memcpy(q, "i=", 2);
    memcpy(q + 2, cur, cur_n);
    qn = 2 + cur_n;
  }
  for (const char *p = fq; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len && !(len >= 2 && p[0] == 'i' && p[1] == '=')) {
      if (qn)
        q[qn++] = '&';
      memcpy(q + qn, p, len);
      qn += len;
    }
    p = amp ? amp + 1 : NULL;
  }
  q[qn] = '\0';
  if ((rc = curl_rc(curl_url_set(f, CURLUPART_QUERY, qn ? q : NULL, 0))) != CBEV_OK ||
      (rc = get_part(f, CURLUPART_URL, 0, out)) != CBEV_OK)
    goto out;
  if (strlen(*out) > CBEV_URL_MAX) {
    cbev_free(*out);
    *out = NULL;
    rc = CBEV_EURL;
  }
out:
  cbev_free(fq);
  cbev_free(sq);
  cbev_free(q);
  curl_url_cleanup(f);
  curl_url_cleanup(sv);
  return rc;
}

char *cbev__url_encode_segment(const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n;
  char *out, *o;

  if (!s)
    return NULL;
  n = strlen(s);
  if (n > (SIZE_MAX - 1) / 3)
    return NULL;
  out = cbev_malloc(n * 3 + 1);
  if (!out)
    return NULL;
  o = out;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char ch = *p;
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
        (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
        ch == '~') {
      *o++ = (char)ch;
    } else {
      *o++ = '%';
      *o++ = hex[ch >> 4];
      *o++ = hex[ch & 15];
    }
  }
  *o = '\0';
  return out;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int cbev__url_decode_segment(const char *s, size_t len, char **out) {
  size_t n = 0;

  *out = NULL;
  if (!s)
    return CBEV_EURL;
  /* Judge first, allocate second: a NULL from the allocator then only
   * means memory. */
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '%') {
      if (len - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
        return CBEV_EURL;
      ch = (unsigned char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
      i += 2;
    }
    if (ch < 0x20 || ch == 0x7f)
      return CBEV_EURL;
  }
  if (!(*out = cbev_malloc(len + 1)))
    return CBEV_ENOMEM;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch == '%') {
      ch = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
      i += 2;
    }
    (*out)[n++] = ch;
  }
  (*out)[n] = '\0';
  return CBEV_OK;
}

/* Value of the timeout= parameter of query: -1 absent, -2 invalid. */
static int query_timeout(const char *query) {
  const char *p = query;

  while (p && *p) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    if (n > 8 && strncmp(p, "timeout=", 8) == 0) {
      char num[16], *end;
      long v;
      if (n - 8 >= sizeof num || p[8] < '0' || p[8] > '9')
        return -2;
      memcpy(num, p + 8, n - 8);
      num[n - 8] = '\0';
      errno = 0;
      v = strtol(num, &end, 10);
      if (errno || *end || v < 0 || v > CBEV_MAX_TIMEOUT_S)
        return -2;
      return (int)v;
    }
    if (n == 7 && strncmp(p, "timeout", 7) == 0)
      return -2;
    if (n == 8 && strncmp(p, "timeout=", 8) == 0)
      return -2;
    p = amp ? amp + 1 : NULL;
  }
  return -1;
}

void cbev__feed_url_cleanup(cbev_feed_url *feed) {
  if (!feed)
    return;
  cbev_free(feed->base);
  cbev_free(feed->username);
  cbev_free(feed->token);
  cbev_free(feed->url);
  memset(feed, 0, sizeof *feed);
  feed->timeout_s = -1;
}

int cbev__feed_url_parse(const char *url, int default_timeout_s,
                        cbev_feed_url *feed) {
  CURLU *h = NULL;
  char *path = NULL, *query = NULL, *base = NULL;
  char *tok, *user;
  size_t plen;
  int rc;

  memset(feed, 0, sizeof *feed);
  feed->timeout_s = -1;
  if ((rc = parse(url, &h)) != CBEV_OK)
    goto out;
  if ((rc = get_part(h, CURLUPART_PATH, 0, &path)) != CBEV_OK)
    goto out;
  rc = get_part(h, CURLUPART_QUERY, 0, &query);
  if (rc == CBEV_ENOMEM)
    goto out;
  /* "<prefix>/<username>/<token>/": drop one trailing slash, then the last
   * two segments are username and token, each non-empty. */
  rc = CBEV_EURL;
  plen = strlen(path);
  if (plen && path[plen - 1] == '/')
    path[--plen] = '\0';
  tok = strrchr(path, '/');
  if (!tok || !tok[1] || tok == path)
    goto out;
  user = tok - 1;
  while (user > path && *user != '/')
    user--;
  if (*user != '/' || user + 1 == tok)
    goto out;
  if ((rc = cbev__url_decode_segment(tok + 1, strlen(tok + 1), &feed->token)) != CBEV_OK ||
      (rc = cbev__url_decode_segment(user + 1, (size_t)(tok - user - 1), &feed->username)) !=
          CBEV_OK)
    goto out;
  if (!*feed->token || !*feed->username) {
    rc = CBEV_EURL;
    goto out;
  }
  feed->timeout_s = query_timeout(query);
  if (feed->timeout_s == -2) {
    rc = CBEV_EINVAL;
    goto out;
  }
  if (feed->timeout_s < 0) {
    char param[32];
    snprintf(param, sizeof param, "timeout=%d", default_timeout_s);
    if ((rc = curl_rc(curl_url_set(h, CURLUPART_QUERY, param,
                                   CURLU_APPENDQUERY))) != CBEV_OK)
      goto out;
  }
  if ((rc = get_part(h, CURLUPART_URL, 0, &feed->url)) != CBEV_OK)
    goto out;
  /* The base is the same URL with the last two segments, query and
   * fragment removed. */
  *user = '\0';
  if ((rc = curl_rc(curl_url_set(h, CURLUPART_PATH, *path ? path : "/", 0))) !=
          CBEV_OK ||
      (rc = curl_rc(curl_url_set(h, CURLUPART_QUERY, NULL, 0))) != CBEV_OK ||
      (rc = curl_rc(curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0))) != CBEV_OK ||
      (rc = get_part(h, CURLUPART_URL, 0, &base)) != CBEV_OK)
    goto out;
  plen = strlen(base);
  while (plen && base[plen - 1] == '/')
    base[--plen] = '\0';
  feed->base = base;
  base = NULL;
  rc = CBEV_OK;
out:
  if (rc != CBEV_OK)
    cbev__feed_url_cleanup(feed);
  cbev_free(base);
  cbev_free(path);
  cbev_free(query);
  curl_url_cleanup(h);
  return rc;
}

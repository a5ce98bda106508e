/*
 * metrics_http.c: the /metrics endpoint on libmicrohttpd in external epoll
 * mode. See metrics_http.h for why it lives in the bridge's thread.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "metrics.h"
#include "metrics_http.h"

struct cb2m_metrics_http {
  struct MHD_Daemon *d;
  cb2m_metrics_render_fn render;
  void *ud;
  const cbev_logger *logger;
  int fd;
  unsigned port;
};

int cb2m_metrics_listen_parse(const char *listen, char *host, size_t host_size, unsigned *port,
                              const char **why) {
  const char *colon, *h = listen, *p;
  size_t hlen;
  char *end;
  unsigned long v;

  *why = "must be host:port, :port or [address]:port";
  if (!listen || !*listen)
    return CBEV_EINVAL;
  if (*listen == '[') {
    const char *close = strchr(listen, ']');
    if (!close || close[1] != ':')
      return CBEV_EINVAL;
    h = listen + 1;
    hlen = (size_t)(close - h);
    p = close + 2;
    if (hlen == 0)
      return CBEV_EINVAL;
  } else {
    colon = strrchr(listen, ':');
    if (!colon || memchr(listen, ':', (size_t)(colon - listen)))
      return CBEV_EINVAL; /* no port, or a bare IPv6 address without brackets */
    hlen = (size_t)(colon - listen);
    p = colon + 1;
  }
  if (hlen >= host_size) {
    *why = "host name too long";
    return CBEV_EINVAL;
  }
  if (*p < '0' || *p > '9')
    return CBEV_EINVAL;
  errno = 0;
  v = strtoul(p, &end, 10);
  if (errno || *end || v > 65535) {
    *why = "port must be 0..65535";
    return CBEV_EINVAL;
  }
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (unsigned)v;
  *why = NULL;
  return CBEV_OK;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  cb2m_metrics_http *h = cls;
  char line[512];
  size_t n;

  vsnprintf(line, sizeof line, fmt, ap);
  n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  cbev_log(h->logger, NULL, CBEV_LOG_WARN, "metrics: %s", line);
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, const char *text) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result rc;

  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  rc = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req) {
  cb2m_metrics_http *h = cls;
  struct MHD_Response *r;
  char *text = NULL;
  size_t len = 0;
  enum MHD_Result rc;

  (void)version;
  (void)upload;
  (void)upload_size;
  /* The first call only announces the headers; answer on the second so a
   * body a client sends anyway is read and dropped first. */
  if (!*req) {
    *req = (void *)h;
    return MHD_YES;
  }
  if (*upload_size) {
    *upload_size = 0;
    return MHD_YES;
  }
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
  if (strcmp(url, "/metrics") != 0)
    return answer_text(conn, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
  if (h->render(h->ud, &text, &len) != CBEV_OK)
    return answer_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render the metrics\n");
  r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CB2M_METRICS_CONTENT_TYPE);
  rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return rc;
}

int cb2m_metrics_http_new(const char *listen, cb2m_metrics_render_fn render, void *ud,
                          const cbev_logger *logger, cb2m_metrics_http **out) {
  char host[256], port_text[8];
  unsigned port;
  const char *why;
  struct addrinfo hints = {0}, *ai = NULL;
  cb2m_metrics_http *h = NULL;
  const union MHD_DaemonInfo *info;
  unsigned flags = MHD_USE_EPOLL;
  int rc = CBEV_EINVAL, gai;

  *out = NULL;
  if (cb2m_metrics_listen_parse(listen, host, sizeof host, &port, &why) != CBEV_OK) {
    cbev_log(logger, NULL, CBEV_LOG_ERROR, "metrics: cannot listen on %s: %s", listen, why);
    errno = EINVAL;
    goto out;
  }
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(port_text, sizeof port_text, "%u", port);
  gai = getaddrinfo(*host ? host : NULL, port_text, &hints, &ai);
  if (gai != 0 || !ai) {
    cbev_log(logger, NULL, CBEV_LOG_ERROR, "metrics: cannot resolve %s: %s", listen,
             gai_strerror(gai));
    errno = EINVAL;
    goto out;
  }
  rc = CBEV_ENOMEM;
  h = calloc(1, sizeof *h);
  if (!h)
    goto out;
  h->render = render;
  h->ud = ud;
  h->logger = logger;
  rc = CBEV_EIO;
  if (ai->ai_family == AF_INET6)
    flags |= *host ? MHD_USE_IPv6 : MHD_USE_DUAL_STACK;
  h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
                          MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)CB2M_METRICS_HTTP_MAX_CONNECTIONS,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CB2M_METRICS_HTTP_IDLE_S,
                          MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                          MHD_OPTION_END);
  if (!h->d) {
    cbev_log(logger, NULL, CBEV_LOG_ERROR,
             "metrics: cannot listen on %s (address in use or not available)", listen);
    errno = EADDRNOTAVAIL;
    goto out;
  }
  info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
  h->fd = info ? info->epoll_fd : -1;
  info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  h->port = info ? info->port : port;
  if (h->fd < 0) {
    cbev_log(logger, NULL, CBEV_LOG_ERROR, "metrics: libmicrohttpd has no epoll descriptor");
    errno = ENOSYS;
    goto out;
  }
  cbev_log(logger, NULL, CBEV_LOG_INFO, "metrics: serving /metrics on %s (port %u)", listen,
           h->port);
  *out = h;
  h = NULL;
  rc = CBEV_OK;
out:
  if (ai)
    freeaddrinfo(ai);
  cb2m_metrics_http_free(h);
  return rc;
}

void cb2m_metrics_http_free(cb2m_metrics_http *h) {
  if (!h)
    return;
  if (h->d)
    MHD_stop_daemon(h->d);
  free(h);
}

int cb2m_metrics_http_fd(const cb2m_metrics_http *h) { return h ? h->fd : -1; }

unsigned cb2m_metrics_http_port(const cb2m_metrics_http *h) { return h ? h->port : 0; }

uint64_t cb2m_metrics_http_next_ms(cb2m_metrics_http *h, uint64_t now_ms) {
  MHD_UNSIGNED_LONG_LONG t = 0;

  if (!h || MHD_get_timeout(h->d, &t) != MHD_YES)
    return UINT64_MAX;
  return now_ms + (uint64_t)t;
}

void cb2m_metrics_http_run(cb2m_metrics_http *h) {
  if (h)
    MHD_run(h->d);
}

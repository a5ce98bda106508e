/*
 * metrics_http.h: serves GET /metrics with libmicrohttpd, driven by the
 * bridge's own loop.
 *
 * MHD runs in its external epoll mode: it creates no thread, and the whole
 * server is one file descriptor (cb2m_metrics_http_fd()) that the bridge
 * polls for POLLIN beside the MQTT socket and the transfers. When it is
 * readable, or when cb2m_metrics_http_next_ms() is due, the bridge calls
 * cb2m_metrics_http_run(), which answers whatever requests are complete by
 * calling the render callback. So a scrape reads the bridge's counters in
 * the same thread that writes them: the snapshot is consistent and there
 * is no lock and no data race.
 *
 * Answers: GET or HEAD /metrics -> 200 with the rendered text; any other
 * path -> 404; any other method -> 405 with Allow. At most
 * CB2M_METRICS_HTTP_MAX_CONNECTIONS clients at once, each closed after 10 s
 * idle, so a slow or hostile scraper cannot hold the bridge's memory.
 *
 * Return convention (src/bridge/README.md): CBEV_OK or a CBEV_* code.
 */
#ifndef CB2M_METRICS_HTTP_H
#define CB2M_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "cbevents/error.h"
#include "cbevents/log.h"

#define CB2M_METRICS_HTTP_MAX_CONNECTIONS 16u
#define CB2M_METRICS_HTTP_IDLE_S 10u

typedef struct cb2m_metrics_http cb2m_metrics_http;

/* Renders the current metrics into a new malloc()ed buffer (*text, *len);
 * returns CBEV_OK, or any CBEV_* code (the scrape gets a 500), as
 * cb2m_metrics_render() does. */
typedef int (*cb2m_metrics_render_fn)(void *ud, char **text, size_t *len);

/* Splits a `metrics.listen` value: "host:port", ":port" (every address)
 * or "[v6addr]:port". host (at least 256 bytes) gets the host, "" for
 * every address; *port the port (0..65535). Returns CBEV_OK (*why NULL),
 * or CBEV_EINVAL with a static reason in *why. */
int cb2m_metrics_listen_parse(const char *listen, char *host, size_t host_size, unsigned *port,
                              const char **why);

/* Binds listen (as cb2m_metrics_listen_parse() reads it; a host name is
 * resolved once, here) and starts serving. Returns CBEV_OK and *out;
 * otherwise *out is NULL and the failure is logged through logger, naming
 * the address and the reason: CBEV_EINVAL when listen cannot be parsed or
 * resolved (errno EINVAL); CBEV_ENOMEM (not logged); CBEV_EIO when
 * libmicrohttpd cannot bind or start (errno EADDRNOTAVAIL, or ENOSYS
 * without an epoll descriptor). */
int cb2m_metrics_http_new(const char *listen, cb2m_metrics_render_fn render, void *ud,
                          const cbev_logger *logger, cb2m_metrics_http **out);
/* Stops serving and frees h (NULL is fine). */
void cb2m_metrics_http_free(cb2m_metrics_http *h);

/* The descriptor to poll for POLLIN. */
int cb2m_metrics_http_fd(const cb2m_metrics_http *h);
/* When run() is due at the latest, on the clock of now_ms; UINT64_MAX when
 * MHD has no timer. */
uint64_t cb2m_metrics_http_next_ms(cb2m_metrics_http *h, uint64_t now_ms);
/* Serves what is ready; never blocks. */
void cb2m_metrics_http_run(cb2m_metrics_http *h);
/* The port bound (useful with port 0). */
unsigned cb2m_metrics_http_port(const cb2m_metrics_http *h);

#endif

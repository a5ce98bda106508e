/*
 * metrics.h: the bridge's counters in the Prometheus text exposition
 * format, version 0.0.4 (SPEC 5, Metrics).
 *
 * This module only renders: the bridge keeps one cb2m_bc_metrics per
 * broadcaster and one cb2m_metrics for itself, updates them where things
 * happen, and hands them to cb2m_metrics_render() when a scrape comes in
 * (metrics_http.h serves it). Rendering walks the structs once and writes
 * into one growable, capped buffer, so a scrape of 1000 broadcasters is a
 * few hundred kilobytes of snprintf and nothing else.
 *
 * Naming follows Prometheus' conventions: base units (seconds, bytes),
 * counters end in _total, labels are bounded sets (a broadcaster name,
 * one of 13 event types, one of a few poll error reasons), never a
 * tipper or a free text. Broadcaster names are validated
 * ([A-Za-z0-9_-]) before they get here, so label values need no escaping;
 * the renderer escapes anyway, so no caller can break the format.
 *
 * Return convention (src/bridge/README.md): CBEV_OK or a CBEV_* code, with
 * errno set for the message.
 */
#ifndef CB2M_METRICS_H
#define CB2M_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "cbevents/error.h"
#include "cbevents/event.h"

/* Why a poll failed, as the `reason` label of cb2mqtt_poll_errors_total. */
typedef enum cb2m_poll_reason {
  CB2M_POLL_AUTH = 0, /* 401/403 */
  CB2M_POLL_HTTP,     /* another HTTP error status */
  CB2M_POLL_TRANSPORT, /* connection error, reset, timeout */
  CB2M_POLL_PARSE,    /* a body that is not the expected JSON, or too big */
  CB2M_POLL_URL,      /* a nextUrl refused by the security rules */
  CB2M_POLL_OTHER,
  CB2M_POLL_REASON_COUNT
} cb2m_poll_reason;

/* Maps a libcbevents error code to its reason label. */
cb2m_poll_reason cb2m_poll_reason_of(int cbev_rc);
/* The label value of a reason ("auth", "http", ...); static. */
const char *cb2m_poll_reason_name(cb2m_poll_reason r);

/* Upper bounds of cb2mqtt_event_delivery_seconds, in seconds. The top
 * buckets are long because delivery includes a broker outage. */
#define CB2M_DELIVERY_BUCKETS 16

typedef struct cb2m_histogram {
  uint64_t buckets[CB2M_DELIVERY_BUCKETS]; /* not cumulative: one per bound */
  uint64_t count;                          /* observations, +Inf included */
  double sum_s;
} cb2m_histogram;

/* Records one delivery time of delay_ms milliseconds. */
void cb2m_histogram_observe(cb2m_histogram *h, uint64_t delay_ms);

/* One broadcaster's counters. The bridge owns it; every field is read as
 * it is at the moment of the render. */
typedef struct cb2m_bc_metrics {
  const char *name; /* borrowed; a validated broadcaster name */
  int up;           /* 1 while its availability is online */
  int broadcasting; /* -1 unknown, 0 no, 1 yes */
  uint64_t events_by_type[CBEV_EVENT_UNKNOWN + 1]; /* fetched */
  uint64_t published;                              /* acknowledged by the broker */
  uint64_t polls;
  uint64_t poll_errors[CB2M_POLL_REASON_COUNT];
  uint64_t publish_refused;
  uint64_t tip_tokens;
  uint64_t queued;
  uint64_t last_event_unix_ms; /* 0: no event yet */
} cb2m_bc_metrics;

/* The bridge's own counters. */
typedef struct cb2m_metrics {
  const char *version; /* borrowed */
  int mqtt_connected;
  uint64_t mqtt_reconnects;
  double start_time_s; /* Unix time the process started */
  cb2m_histogram delivery;
} cb2m_metrics;

/* Largest output rendered: far above what 10,000 broadcasters need. */
#define CB2M_METRICS_MAX_BYTES (64u * 1024u * 1024u)

/* Renders m, the n broadcasters of bcs, and the process_* metrics of this
 * process into a new NUL-terminated buffer: *out (free() it), *len its
 * length. Returns CBEV_OK; CBEV_ENOMEM (errno ENOMEM); CBEV_ETOOBIG past
 * CB2M_METRICS_MAX_BYTES (errno EFBIG); CBEV_EINVAL (errno EINVAL) for a
 * NULL m, NULL bcs with n > 0, or a sample snprintf cannot format. On
 * failure *out is NULL. */
int cb2m_metrics_render(const cb2m_metrics *m, const cb2m_bc_metrics *const *bcs, size_t n,
                        char **out, size_t *len);

/* The Content-Type of the rendered text. */
#define CB2M_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif

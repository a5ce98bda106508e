/*
 * metrics.c: renders the bridge's counters as Prometheus text. See
 * metrics.h. Every family is written once with its HELP and TYPE lines
 * and then one sample per broadcaster, as the exposition format wants all
 * samples of a family together.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cbevents/error.h"
#include "metrics.h"

static const double bounds_s[CB2M_DELIVERY_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

static const char *const reason_names[CB2M_POLL_REASON_COUNT] = {
    "auth", "http", "transport", "parse", "url", "other"};

cb2m_poll_reason cb2m_poll_reason_of(int rc) {
  switch (rc) {
  case CBEV_EAUTH:
    return CB2M_POLL_AUTH;
  case CBEV_EHTTP:
    return CB2M_POLL_HTTP;
  case CBEV_ETRANSPORT:
  case CBEV_EAGAIN:
    return CB2M_POLL_TRANSPORT;
  case CBEV_EPARSE:
  case CBEV_ETOOBIG:
    return CB2M_POLL_PARSE;
  case CBEV_EURL:
    return CB2M_POLL_URL;
  default:
    return CB2M_POLL_OTHER;
  }
}

const char *cb2m_poll_reason_name(cb2m_poll_reason r) {
  return (unsigned)r < CB2M_POLL_REASON_COUNT ? reason_names[r] : "other";
}

void cb2m_histogram_observe(cb2m_histogram *h, uint64_t delay_ms) {
  double s = (double)delay_ms / 1000.0;

  for (size_t i = 0; i < CB2M_DELIVERY_BUCKETS; i++)
    if (s <= bounds_s[i]) {
      h->buckets[i]++;
      break;
    }
  h->count++;
  h->sum_s += s;
}

/* ---- output buffer: grows by doubling, capped, errors are sticky */

typedef struct out {
  char *buf;
  size_t len, cap;
  int rc;  /* CBEV_OK while fine, else the code of the first failure */
  int err; /* and its errno, for the caller's message */
} out;

static int out_fail(out *o, int rc, int err) {
  o->rc = rc;
  o->err = err;
  return -1;
}

static int out_grow(out *o, size_t need) {
  size_t cap = o->cap ? o->cap : 16384;
  char *p;

  if (o->len + need + 1 > CB2M_METRICS_MAX_BYTES)
    return out_fail(o, CBEV_ETOOBIG, EFBIG);
  while (cap < o->len + need + 1)
    cap *= 2;
  if (cap > CB2M_METRICS_MAX_BYTES)
    cap = CB2M_METRICS_MAX_BYTES;
  p = realloc(o->buf, cap);
  if (!p)
    return out_fail(o, CBEV_ENOMEM, ENOMEM);
  o->buf = p;
  o->cap = cap;
  return 0;
}

__attribute__((format(printf, 2, 3))) static void outf(out *o, const char *fmt, ...) {
  va_list ap;
  int n;

  for (int tries = 0; !o->rc && tries < 2; tries++) {
    size_t room = o->cap - o->len;
    va_start(ap, fmt);
    n = vsnprintf(o->buf ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
      out_fail(o, CBEV_EINVAL, EINVAL);
      return;
    }
    if ((size_t)n < room) {
      o->len += (size_t)n;
      return;
    }
    if (out_grow(o, (size_t)n) != 0)
      return;
  }
}

/* The fast path of the per-broadcaster samples (a thousand broadcasters
 * make 30,000 lines a scrape): plain copies and a hand-made decimal, no
 * format parsing. */
static void out_str(out *o, const char *s) {
  size_t n = strlen(s);
  if (o->rc || (o->cap - o->len <= n && out_grow(o, n) != 0))
    return;
  memcpy(o->buf + o->len, s, n);
  o->len += n;
}

static void out_u64(out *o, uint64_t v) {
  char tmp[24];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v);
  if (o->rc || (o->cap - o->len <= sizeof tmp - i && out_grow(o, sizeof tmp - i) != 0))
    return;
  memcpy(o->buf + o->len, tmp + i, sizeof tmp - i);
  o->len += sizeof tmp - i;
}

/* A label value with \\, " and newline escaped, as the format requires,
 * into buf (room for every byte doubled). Names longer than
 * CB2M_LABEL_MAX are cut: broadcaster names are at most 64 bytes. */
#define CB2M_LABEL_MAX 128
static const char *esc(const char *s, char buf[2 * CB2M_LABEL_MAX + 1]) {
  size_t j = 0;

  if (!strpbrk(s, "\\\"\n") && strlen(s) <= CB2M_LABEL_MAX)
    return s;
  for (size_t i = 0; s[i] && i < CB2M_LABEL_MAX; i++) {
    if (s[i] == '\\' || s[i] == '"' || s[i] == '\n')
      buf[j++] = '\\';
    buf[j++] = s[i] == '\n' ? 'n' : s[i];
  }
  buf[j] = '\0';
  return buf;
}

static void family(out *o, const char *name, const char *type, const char *help) {
  outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{broadcaster="b"} value, for one broadcaster. */
static void bc_sample(out *o, const char *name, const char *b, uint64_t v) {
  char buf[2 * CB2M_LABEL_MAX + 1];
  out_str(o, name);
  out_str(o, "{broadcaster=\"");
  out_str(o, esc(b, buf));
  out_str(o, "\"} ");
  out_u64(o, v);
  out_str(o, "\n");
}

/* ---- process metrics, read from the kernel at each scrape */

static uint64_t resident_bytes(void) {
  unsigned long long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  long page = sysconf(_SC_PAGESIZE);

  if (!f)
    return 0;
  if (fscanf(f, "%llu %llu", &size, &resident) != 2)
    resident = 0;
  fclose(f);
  return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

static double cpu_seconds(void) {
  struct rusage ru;

  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static void render_bridge(out *o, const cb2m_metrics *m) {
  char buf[2 * CB2M_LABEL_MAX + 1];
  uint64_t cum = 0;

  family(o, "cb2mqtt_build_info", "gauge", "Always 1; the version label names the build.");
  outf(o, "cb2mqtt_build_info{version=\"%s\"} 1\n", esc(m->version ? m->version : "", buf));
  family(o, "cb2mqtt_mqtt_connected", "gauge", "1 while connected to the MQTT broker.");
  outf(o, "cb2mqtt_mqtt_connected %d\n", m->mqtt_connected ? 1 : 0);
  family(o, "cb2mqtt_mqtt_reconnects_total", "counter",
         "Connections to the broker after the first one.");
  outf(o, "cb2mqtt_mqtt_reconnects_total %" PRIu64 "\n", m->mqtt_reconnects);
  family(o, "cb2mqtt_event_delivery_seconds", "histogram",
         "Time from an event's fetch to the broker's acknowledgement.");
  for (size_t i = 0; i < CB2M_DELIVERY_BUCKETS; i++) {
    cum += m->delivery.buckets[i];
    outf(o, "cb2mqtt_event_delivery_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", bounds_s[i], cum);
  }
  outf(o, "cb2mqtt_event_delivery_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", m->delivery.count);
  outf(o, "cb2mqtt_event_delivery_seconds_sum %.6f\n", m->delivery.sum_s);
  outf(o, "cb2mqtt_event_delivery_seconds_count %" PRIu64 "\n", m->delivery.count);
  family(o, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.");
  outf(o, "process_start_time_seconds %.3f\n", m->start_time_s);
  family(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  outf(o, "process_resident_memory_bytes %" PRIu64 "\n", resident_bytes());
  family(o, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
  outf(o, "process_cpu_seconds_total %.6f\n", cpu_seconds());
}

static const struct {
  const char *name, *type, *help;
  size_t off; /* of a uint64_t in cb2m_bc_metrics */
} plain[] = {
    {"cb2mqtt_events_published_total", "counter",
     "Events the broker acknowledged (or took, at QoS 0).",
     offsetof(cb2m_bc_metrics, published)},
    {"cb2mqtt_polls_total", "counter", "Polls of the Events API that ended, answered or failed.",
     offsetof(cb2m_bc_metrics, polls)},
    {"cb2mqtt_queued_events", "gauge", "Events waiting for the broker.",
     offsetof(cb2m_bc_metrics, queued)},
    {"cb2mqtt_publish_refused_total", "counter",
     "Event publishes the broker refused with an MQTT v5 reason code.",
     offsetof(cb2m_bc_metrics, publish_refused)},
    {"cb2mqtt_tip_tokens_total", "counter", "Tokens tipped.",
     offsetof(cb2m_bc_metrics, tip_tokens)},
};

static void render_broadcasters(out *o, const cb2m_bc_metrics *const *bcs, size_t n) {
  char buf[2 * CB2M_LABEL_MAX + 1];

  family(o, "cb2mqtt_broadcaster_up", "gauge", "1 while the broadcaster's availability is online.");
  for (size_t i = 0; i < n; i++)
    bc_sample(o, "cb2mqtt_broadcaster_up", bcs[i]->name, bcs[i]->up ? 1u : 0u);
  family(o, "cb2mqtt_broadcasting", "gauge",
         "1 while the room broadcasts, as the last broadcast_start/stop said.");
  for (size_t i = 0; i < n; i++)
    if (bcs[i]->broadcasting >= 0)
      bc_sample(o, "cb2mqtt_broadcasting", bcs[i]->name, (uint64_t)bcs[i]->broadcasting);
  family(o, "cb2mqtt_events_total", "counter", "Events fetched from the Events API.");
  for (size_t i = 0; i < n; i++)
    for (int t = 0; t <= CBEV_EVENT_UNKNOWN; t++) {
      out_str(o, "cb2mqtt_events_total{broadcaster=\"");
      out_str(o, esc(bcs[i]->name, buf));
      out_str(o, "\",event_type=\"");
      out_str(o, cbev_event_type_name((cbev_event_type)t));
      out_str(o, "\"} ");
      out_u64(o, bcs[i]->events_by_type[t]);
      out_str(o, "\n");
    }
  /* The families that are one plain number per broadcaster. */
  for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++) {
    family(o, plain[k].name, plain[k].type, plain[k].help);
    for (size_t i = 0; i < n; i++)
      bc_sample(o, plain[k].name, bcs[i]->name,
                *(const uint64_t *)(const void *)((const char *)bcs[i] + plain[k].off));
  }
  family(o, "cb2mqtt_poll_errors_total", "counter", "Failed polls by reason.");
  for (size_t i = 0; i < n; i++)
    for (int r = 0; r < CB2M_POLL_REASON_COUNT; r++) {
      out_str(o, "cb2mqtt_poll_errors_total{broadcaster=\"");
      out_str(o, esc(bcs[i]->name, buf));
      out_str(o, "\",reason=\"");
      out_str(o, reason_names[r]);
      out_str(o, "\"} ");
      out_u64(o, bcs[i]->poll_errors[r]);
      out_str(o, "\n");
    }
  family(o, "cb2mqtt_last_event_timestamp_seconds", "gauge",
         "Unix time of the last event fetched; 0 before the first.");
  for (size_t i = 0; i < n; i++) {
    uint64_t ms = bcs[i]->last_event_unix_ms;
    outf(o, "cb2mqtt_last_event_timestamp_seconds{broadcaster=\"%s\"} %" PRIu64 ".%03u\n",
         esc(bcs[i]->name, buf), ms / 1000u, (unsigned)(ms % 1000u));
  }
}

int cb2m_metrics_render(const cb2m_metrics *m, const cb2m_bc_metrics *const *bcs, size_t n,
                        char **text, size_t *len) {
  out o = {0};

  *text = NULL;
  *len = 0;
  if (!m || (n && !bcs)) {
    errno = EINVAL;
    return CBEV_EINVAL;
  }
  if (out_grow(&o, 64u * 1024u + n * 2048u) != 0)
    goto fail;
  render_bridge(&o, m);
  render_broadcasters(&o, bcs, n);
  if (o.rc)
    goto fail;
  *text = o.buf;
  *len = o.len;
  return CBEV_OK;
fail:
  free(o.buf);
  errno = o.err;
  return o.rc;
}

/*
 * bridge.c: the daemon's loop. See bridge_impl.h for the files of the
 * bridge and bridge.h for the way of one event.
 *
 * Everything runs in one thread. cb2m_poller_wait() blocks in poll() on
 * the epoll set of the HTTP transfers, the MQTT socket, the metrics
 * listener and the signal pipe at once, so an idle bridge sleeps until
 * something happens or the earliest timer of the list below (an auth
 * retry, the debounced saves, the heartbeat, health, a Home Assistant
 * re-announce, a refused publish) or of the I/O modules is due.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bridge_impl.h"
#include "discovery.h"
#include "heartbeat.h"
#include "topics.h"

#define SAVE_INTERVAL_MS 1000u

static void teardown(bridge *b) {
  cb2m_writer_free(b->writer);
  cb2m_poller_free(b->poller); /* before the sessions it borrows */
  for (size_t i = 0; b->bcs && i < b->n; i++)
    bridge_bc_close(&b->bcs[i]);
  cb2m_metrics_http_free(b->http);
  free(b->mx_list);
  cb2m_mqtt_free(b->mqtt);
  cbev_ratelimit_free(b->shared_limiter);
  free(b->bcs);
  cb2m_secrets_cleanup(&b->secrets);
  free(b->mask);
  free(b->topic_ha_status);
  if (b->owned_cfg) {
    cb2m_config_free(b->owned_cfg);
    free(b->owned_cfg);
  }
}

/* A client for the mqtt.* settings of cfg (the running ones, or those of
 * a reload); it connects in the loop. Returns cb2m_mqtt_new()'s code
 * (logged by mqtt.c). */
int bridge_mqtt_open(bridge *b, const cb2m_config *cfg, cb2m_mqtt **out) {
  char will[TOPIC_MAX]; /* cb/bridge/status of cfg's base topic (copied) */
  cb2m_mqtt_opts mo = {.host = cfg->mqtt.host,
                       .port = cfg->mqtt.port,
                       .tls = cfg->mqtt.tls,
                       .ca_file = cfg->mqtt.ca_file,
                       .cert_file = cfg->mqtt.cert_file,
                       .key_file = cfg->mqtt.key_file,
                       .tls_insecure = cfg->mqtt.tls_insecure,
                       .username = cfg->mqtt.username,
                       .password = cfg->mqtt.password,
                       .client_id = cfg->mqtt.client_id,
                       .protocol = cfg->mqtt.protocol,
                       .keepalive_s = cfg->mqtt.keepalive,
                       .will_topic = will,
                       .will_payload = "offline",
                       .will_qos = 1,
                       .will_retain = 1,
                       .logger = &b->logger};
  cb2m_mqtt_cbs cbs = {bridge_on_connect, bridge_on_disconnect, bridge_on_ack,
                       bridge_on_message, b};

  if (cb2m_topic(will, sizeof will, cfg->mqtt.base_topic, "bridge", "status") != CBEV_OK)
    return CBEV_EINVAL;
  return cb2m_mqtt_new(&mo, &cbs, out);
}

static int setup(bridge *b, const cb2m_config *cfg) {
  cb2m_poller_opts po = {0};

  b->cfg = cfg;
  b->n = cfg->n_broadcasters;
  b->started_at = time(NULL);
  b->started_ms = cbev_now_ms();
  b->bcs = calloc(b->n ? b->n : 1, sizeof *b->bcs);
  /* Every secret the bridge knows is masked out of every log line, the
   * token inside a configured feed URL included. */
  if (!b->bcs || cb2m_secrets_collect(cfg, &b->secrets) != 0)
    return -1;
  b->mask_cap = b->secrets.n + b->n;
  b->mask = calloc(b->mask_cap ? b->mask_cap : 1, sizeof *b->mask);
  if (!b->mask)
    return -1;
  for (size_t i = 0; i < b->secrets.n; i++)
    b->mask[i] = b->secrets.v[i];
  b->n_masked = b->secrets.n;
  b->sink = (cb2m_logsink){stderr, cfg->log.json, b->mask, b->n_masked};
  b->logger = (cbev_logger){cb2m_logsink_write, &b->sink, cfg->log.level};

  if (bridge_topic_for(b, b->topic_status, "bridge", "status") != 0 ||
      !(b->topic_ha_status = cb2m_discovery_status_topic(cfg->homeassistant.prefix)))
    return -1;
  if (cfg->events.shared_rate_limit &&
      cbev_ratelimit_new(cfg->events.rate_requests, cfg->events.rate_seconds,
                         &b->shared_limiter) != CBEV_OK)
    return -1;
  if (cb2m_writer_new(cfg->events.state_dir, &b->writer) != CBEV_OK)
    return -1;
  po = (cb2m_poller_opts){b->n, cfg->events.ca_file, 0, bridge_on_poll_done, bridge_poll_allowed,
                          b};
  if (cb2m_poller_new(&po, &b->poller) != 0)
    return -1;
  for (size_t i = 0; i < b->n; i++) {
    if (bridge_bc_open(b, &b->bcs[i], &cfg->broadcasters[i]) != CBEV_OK)
      return -1;
    cb2m_poller_set_session(b->poller, i, b->bcs[i].session);
  }
  b->mx.version = cbev_version();
  b->mx.start_time_s = (double)bridge_wall_ms() / 1000.0;
  b->mx_list = calloc(b->n ? b->n : 1, sizeof *b->mx_list);
  if (!b->mx_list)
    return -1;
  /* A metrics address that cannot be bound stops the start (logged by
   * metrics_http.c): an operator who asked for metrics must not find out
   * from a silent scrape failure. */
  if (cfg->metrics.listen &&
      cb2m_metrics_http_new(cfg->metrics.listen, bridge_render_metrics, b, &b->logger,
                            &b->http) != 0)
    return -1;

  return bridge_mqtt_open(b, cfg, &b->mqtt) == CBEV_OK ? 0 : -1;
}

/* Exit 3 (SPEC 5): at start only, when every broadcaster failed
 * authentication before any of them got a good answer. */
static int all_auth_failed(const bridge *b) {
  if (b->any_good)
    return 0;
  for (size_t i = 0; i < b->n; i++)
    if (b->bcs[i].status != BC_AUTH_FAILED)
      return 0;
  return b->n > 0;
}

static int queues_settled(const bridge *b) {
  for (size_t i = 0; i < b->n; i++)
    if (b->bcs[i].queue.count)
      return 0;
  return 1;
}

static uint64_t save_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping ? UINT64_MAX : b->next_save_ms;
}

static void save_fire(bridge *b, uint64_t now) {
  if (bridge_save_due(b) != CBEV_OK)
    b->fatal = 1;
  b->next_save_ms = now + SAVE_INTERVAL_MS;
}

static uint64_t heartbeat_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping ? UINT64_MAX : b->next_heartbeat_ms;
}

static void heartbeat_fire(bridge *b, uint64_t now) {
  if (cb2m_heartbeat_write(b->cfg->events.state_dir, cb2m_mqtt_connected(b->mqtt), time(NULL)) != 0)
    LOG(b, CBEV_LOG_WARN, "cannot write the heartbeat file in %s: %s",
        b->cfg->events.state_dir, strerror(errno));
  b->next_heartbeat_ms = now + CB2M_HEARTBEAT_INTERVAL_MS;
}

/* The next three wait for the broker: while it is away they must not
 * make the loop spin (the connect itself wakes the loop). */
static uint64_t health_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping || !cb2m_mqtt_connected(b->mqtt) ? UINT64_MAX : b->next_health_ms;
}

static void health_fire(bridge *b, uint64_t now) {
  bridge_publish_health(b, now);
  b->next_health_ms = now + (uint64_t)b->cfg->mqtt.health_interval * 1000u;
}

static uint64_t discovery_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping || !b->discovery_due || !cb2m_mqtt_connected(b->mqtt) ? UINT64_MAX
                                                                           : b->discovery_at_ms;
}

static void discovery_fire(bridge *b, uint64_t now) {
  (void)now;
  b->discovery_due = 0;
  LOG(b, CBEV_LOG_INFO, "homeassistant: birth message seen, re-publishing discovery and state");
  bridge_announce(b);
  for (size_t i = 0; i < b->n; i++)
    bridge_republish(b, &b->bcs[i]);
}

/* A refused publish due again: bridge_pump(), which every turn runs, sends it. */
static uint64_t refused_next(bridge *b, uint64_t now) {
  (void)now;
  return b->stopping || !cb2m_mqtt_connected(b->mqtt) ? UINT64_MAX : bridge_retry_due_ms(b);
}

typedef struct loop_timer {
  uint64_t (*next)(bridge *b, uint64_t now);
  void (*fire)(bridge *b, uint64_t now); /* NULL: turn() itself acts */
} loop_timer;

static const loop_timer TIMERS[] = {
    {bridge_auth_retry_next, bridge_auth_retry_fire},
    {save_next, save_fire},
    {heartbeat_next, heartbeat_fire},
    {health_next, health_fire},
    {discovery_next, discovery_fire},
    {refused_next, NULL},
};
#define N_TIMERS (sizeof TIMERS / sizeof TIMERS[0])


static void timers(bridge *b) {
  uint64_t now = cbev_now_ms();

  for (size_t i = 0; i < N_TIMERS; i++)
    if (TIMERS[i].fire && TIMERS[i].next(b, now) <= now)
      TIMERS[i].fire(b, now);
}

/* One turn of the loop: wait for activity or the next deadline, then
 * serve the MQTT socket, the transfers and the metrics requests, and hand
 * queued events to MQTT. The signal pipe only wakes it: the caller reads
 * the flags the handlers set. */
static void turn(bridge *b, int signal_fd, uint64_t max_wait_ms) {
  struct curl_waitfd fds[3];
  unsigned nfds = 0;
  uint64_t now = cbev_now_ms(), next, wait;
  int mfd = cb2m_mqtt_fd(b->mqtt), mqtt_slot = -1, http_slot = -1;
  short revents = 0;

  next = b->stopping ? now + max_wait_ms : cb2m_poller_start_due(b->poller, now);
  for (size_t i = 0; i < N_TIMERS; i++) {
    uint64_t t = TIMERS[i].next(b, now);
    if (t < next)
      next = t;
  }
  if (cb2m_mqtt_next_ms(b->mqtt, now) < next)
    next = cb2m_mqtt_next_ms(b->mqtt, now);
  if (b->http && !b->stopping && cb2m_metrics_http_next_ms(b->http, now) < next)
    next = cb2m_metrics_http_next_ms(b->http, now);
  wait = next > now ? next - now : 0;
  if (wait > max_wait_ms)
    wait = max_wait_ms;
  if (signal_fd >= 0)
    fds[nfds++] = (struct curl_waitfd){signal_fd, CURL_WAIT_POLLIN, 0};
  if (mfd >= 0) {
    short ev = cb2m_mqtt_poll_events(b->mqtt);
    mqtt_slot = (int)nfds;
    fds[nfds++] = (struct curl_waitfd){mfd,
                                       (short)(((ev & POLLIN) ? CURL_WAIT_POLLIN : 0) |
                                               ((ev & POLLOUT) ? CURL_WAIT_POLLOUT : 0)),
                                       0};
  }
  if (b->http) {
    http_slot = (int)nfds;
    fds[nfds++] = (struct curl_waitfd){cb2m_metrics_http_fd(b->http), CURL_WAIT_POLLIN, 0};
  }
  cb2m_poller_wait(b->poller, fds, nfds, (int)wait);
  if (signal_fd >= 0 && (fds[0].revents & CURL_WAIT_POLLIN)) {
    char buf[64];
    while (read(signal_fd, buf, sizeof buf) > 0)
      ;
  }
  now = cbev_now_ms();
  if (mqtt_slot >= 0) {
    if (fds[mqtt_slot].revents & CURL_WAIT_POLLIN)
      revents |= POLLIN;
    if (fds[mqtt_slot].revents & CURL_WAIT_POLLOUT)
      revents |= POLLOUT;
  }
  cb2m_mqtt_service(b->mqtt, revents, now);
  cb2m_poller_perform(b->poller, now);
  if (http_slot >= 0 && ((fds[http_slot].revents & CURL_WAIT_POLLIN) ||
                         cb2m_metrics_http_next_ms(b->http, now) <= now))
    cb2m_metrics_http_run(b->http);
  bridge_pump(b);
  cb2m_mqtt_service(b->mqtt, 0, now); /* flush what bridge_pump() queued */
  bridge_collect_acked(b);
}

/* Returns CBEV_OK, or the failure of the last save (logged): a stop that
 * could not write its cursors is not a clean one. */
static int shutdown_bridge(bridge *b, int signal_fd) {
  uint64_t deadline = cbev_now_ms() + CB2M_SHUTDOWN_GRACE_MS;
  size_t left = 0;
  int rc;

  b->stopping = 1;
  cb2m_poller_abort_all(b->poller);
  /* Deliver what is queued while the broker is there, for at most 5 s. */
  while (!queues_settled(b) && cb2m_mqtt_connected(b->mqtt) && cbev_now_ms() < deadline)
    turn(b, signal_fd, 100);
  for (size_t i = 0; i < b->n; i++)
    left += b->bcs[i].queue.count;
  if (left)
    LOG(b, CBEV_LOG_WARN, "shutdown: %zu events not acknowledged by the broker; they are fetched "
        "again at the next start", left);
  rc = bridge_save_all_now(b);
  for (size_t i = 0; i < b->n; i++)
    bridge_publish_availability(b, &b->bcs[i], 0);
  if (cb2m_mqtt_connected(b->mqtt))
    bridge_publish_retained(b, b->topic_status, "offline");
  cb2m_mqtt_shutdown(b->mqtt, cbev_now_ms() + 1000u);
  cb2m_heartbeat_write(b->cfg->events.state_dir, 0, time(NULL));
  return rc;
}

int cb2m_bridge_run(const cb2m_config *cfg, const cb2m_bridge_hooks *hooks) {
  volatile sig_atomic_t *stop = hooks->stop;
  int signal_fd = hooks->signal_fd;
  bridge *b = calloc(1, sizeof *b);
  int status = CB2M_EXIT_FATAL;

  if (!b)
    return CB2M_EXIT_FATAL;
  if (setup(b, cfg) != 0) {
    LOG(b, CBEV_LOG_ERROR, "startup failed; exiting");
    goto out;
  }
  LOG(b, CBEV_LOG_INFO, "cb2mqtt %s: %zu broadcaster(s), broker %s:%d, state in %s",
      cbev_version(), b->n, cfg->mqtt.host, cfg->mqtt.port, cfg->events.state_dir);
  while (!*stop && !b->fatal && !all_auth_failed(b)) {
    turn(b, signal_fd, 10000);
    if (hooks->reload && *hooks->reload && hooks->load) {
      *hooks->reload = 0;
      bridge_reload(b, hooks);
    }
    timers(b);
  }
  if (b->fatal)
    status = CB2M_EXIT_FATAL;
  else if (!*stop && all_auth_failed(b))
    status = CB2M_EXIT_AUTH;
  else
    status = CB2M_EXIT_OK;
  if (status == CB2M_EXIT_AUTH)
    LOG(b, CBEV_LOG_ERROR, "every broadcaster failed authentication; exiting");
  else
    LOG(b, CBEV_LOG_INFO, "stopping");
  if (shutdown_bridge(b, signal_fd) != CBEV_OK && status == CB2M_EXIT_OK)
    status = CB2M_EXIT_FATAL;
out:
  teardown(b);
  free(b);
  return status;
}

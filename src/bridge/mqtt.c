/*
 * mqtt.c: the bridge's MQTT client on libmosquitto, without threads: its
 * settings, the connection state machine (attempts, capped backoff with
 * jitter, teardown of a lost instance), publish and subscribe, and the
 * clean shutdown. The instance itself and its callbacks are
 * mqtt_instance.c's. See mqtt.h and mqtt_impl.h.
 *
 * It owns one libmosquitto instance per connection attempt: a lost
 * connection destroys the instance, so nothing of it (in-flight messages,
 * mids, late PUBACKs) survives into the next one and the caller's
 * delivery queue is the single place that decides what is sent again.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>

#include "cbevents/alloc.h"
#include "cbevents/backoff.h"
#include "cbevents/error.h"
#include "cbevents/log.h"
#include "cbevents/transport.h"
#include "mqtt.h"
#include "mqtt_impl.h"

/* libmosquitto's keepalive check has one-second resolution. */
#define SERVICE_TICK_MS 1000u
/* A connection that lived this long resets the backoff; a broker that
 * accepts and then drops us at once keeps backing off instead. */
#define STABLE_CONNECTION_MS 10000u

static void schedule_retry(cb2m_mqtt *m, uint64_t now_ms, int was_connected) {
  uint64_t delay;

  if (m->retry_now) {
    m->retry_now = 0;
    m->next_attempt_ms = now_ms;
    return;
  }
  m->failures++;
  delay = cbev_backoff_ms((double)m->backoff_initial_ms, CB2M_MQTT_BACKOFF_FACTOR,
                          (double)m->backoff_max_ms, m->failures, &m->rng);
  m->next_attempt_ms = now_ms + delay;
  cbev_log(m->logger, m->password, CBEV_LOG_WARN,
           was_connected ? "mqtt: connection to %s:%d lost (%s), reconnecting in %.1f s"
                         : "mqtt: cannot connect to %s:%d (%s), retrying in %.1f s",
           m->host, m->port, m->reason, (double)delay / 1000.0);
}

static void start_attempt(cb2m_mqtt *m, uint64_t now_ms) {
  char why[REASON_MAX] = "";
  int rc;

  m->unacked = 0;
  m->attempt_started_ms = now_ms;
  rc = cb2m_mqtt__make_instance(m, &m->mosq, why, sizeof why);
  if (rc != CBEV_OK) {
    snprintf(m->reason, sizeof m->reason, "%s", why);
    schedule_retry(m, now_ms, 0);
    return;
  }
  cbev_log(m->logger, m->password, CBEV_LOG_DEBUG, "mqtt: connecting to %s:%d (MQTT %s)", m->host,
           m->port, m->protocol == MQTT_PROTOCOL_V5 ? "v5" : "3.1.1");
  m->state = ST_CONNECTING;
  errno = 0;
  rc = mosquitto_connect_async(m->mosq, m->host, m->port, m->keepalive_s);
  if (rc != MOSQ_ERR_SUCCESS && m->state == ST_CONNECTING) {
    char buf[REASON_MAX];
    cb2m_mqtt__mark_lost(m, cb2m_mqtt__rc_text(rc, errno, buf, sizeof buf));
  }
}

/* Frees the failed instance and schedules the next attempt. */
static void teardown(cb2m_mqtt *m, uint64_t now_ms) {
  int was_connected = m->was_connected;

  mosquitto_destroy(m->mosq);
  m->mosq = NULL;
  m->state = ST_IDLE;
  m->unacked = 0;
  m->was_connected = 0;
  if (was_connected && now_ms - m->connected_at_ms >= STABLE_CONNECTION_MS)
    m->failures = 0;
  schedule_retry(m, now_ms, was_connected);
  if (was_connected && m->cbs.on_disconnect)
    m->cbs.on_disconnect(m->cbs.ud);
}

static void deliver_held(cb2m_mqtt *m) {
  /* Index-based: an on_ack() may publish and append more. */
  for (size_t i = 0; i < m->n_held; i++)
    cb2m_mqtt__deliver_ack(m, m->held[i].mid, m->held[i].reason);
  m->n_held = 0;
}

/* --- public API --------------------------------------------------------- */

static int copy_str(char **dst, const char *src) {
  *dst = NULL;
  if (!src)
    return 0;
  *dst = cbev_strdup(src);
  return *dst ? 0 : -1;
}

static void wipe_free(char *s) {
  if (!s)
    return;
  for (volatile char *p = s; *p; p++)
    *p = 0;
  cbev_free(s);
}

int cb2m_mqtt_new(const cb2m_mqtt_opts *opts, const cb2m_mqtt_cbs *cbs, cb2m_mqtt **out) {
  cb2m_mqtt *m = NULL;
  struct mosquitto *probe = NULL;
  char why[REASON_MAX] = "";
  int rc = CBEV_EINVAL;

  if (!out)
    return CBEV_EINVAL;
  *out = NULL;
  if (!opts || !opts->host || !*opts->host || opts->port < 0 || opts->port > 65535 ||
      (opts->protocol != 0 && opts->protocol != 5 && opts->protocol != 311) ||
      (opts->keepalive_s != 0 && (opts->keepalive_s < 5 || opts->keepalive_s > 65535)) ||
      opts->will_qos < 0 || opts->will_qos > 2 || opts->max_inflight > 65535 ||
      (opts->cert_file == NULL) != (opts->key_file == NULL)) {
    cbev_log(opts ? opts->logger : NULL, opts ? opts->password : NULL, CBEV_LOG_ERROR,
             "mqtt: invalid settings (host, port, protocol, keepalive, will qos or "
             "cert_file/key_file pair)");
    goto out;
  }
  rc = CBEV_ENOMEM;
  m = cbev_calloc(1, sizeof *m);
  if (!m)
    goto out;
  if (copy_str(&m->host, opts->host) || copy_str(&m->ca_file, opts->ca_file) ||
      copy_str(&m->cert_file, opts->cert_file) || copy_str(&m->key_file, opts->key_file) ||
      copy_str(&m->username, opts->username) || copy_str(&m->password, opts->password) ||
      copy_str(&m->client_id, opts->client_id) || copy_str(&m->will_topic, opts->will_topic) ||
      copy_str(&m->will_payload, opts->will_payload))
    goto out;
  m->tls = opts->tls;
  m->port = opts->port ? opts->port : (opts->tls ? 8883 : 1883);
  m->tls_insecure = opts->tls_insecure;
  m->keepalive_s = opts->keepalive_s ? opts->keepalive_s : 60;
  m->will_qos = opts->will_qos;
  m->will_retain = opts->will_retain;
  m->backoff_initial_ms =
      opts->backoff_initial_ms ? opts->backoff_initial_ms : CB2M_MQTT_BACKOFF_INITIAL_MS;
  m->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms : CB2M_MQTT_BACKOFF_MAX_MS;
  if (m->backoff_max_ms < m->backoff_initial_ms)
    m->backoff_max_ms = m->backoff_initial_ms;
  m->max_inflight = (int)(opts->max_inflight ? opts->max_inflight : CB2M_MQTT_DEFAULT_INFLIGHT);
  m->logger = opts->logger;
  if (cbs)
    m->cbs = *cbs;
  m->protocol = opts->protocol == 311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
  m->state = ST_IDLE;
  m->now_ms = cbev_now_ms();
  m->next_attempt_ms = 0; /* connect on the first service() */
  /* Any seed is valid for cbev_random_next(); this one differs between
   * processes and clients so a fleet does not reconnect in step. */
  m->rng = (m->now_ms << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)m;
  /* Build one instance now so a bad TLS file or will is a startup error,
   * not an endless reconnect loop. */
  rc = cb2m_mqtt__make_instance(m, &probe, why, sizeof why);
  if (rc != CBEV_OK) {
    cbev_log(m->logger, m->password, CBEV_LOG_ERROR, "mqtt: %s", why);
    goto out;
  }
  mosquitto_destroy(probe);
  *out = m;
  m = NULL;
  rc = CBEV_OK;
out:
  cb2m_mqtt_free(m);
  return rc;
}

void cb2m_mqtt_free(cb2m_mqtt *m) {
  if (!m)
    return;
  mosquitto_destroy(m->mosq);
  cbev_free(m->host);
  cbev_free(m->ca_file);
  cbev_free(m->cert_file);
  cbev_free(m->key_file);
  cbev_free(m->username);
  wipe_free(m->password);
  cbev_free(m->client_id);
  cbev_free(m->will_topic);
  cbev_free(m->will_payload);
  cbev_free(m->held);
  for (size_t i = 0; i < m->n_subs; i++)
    cbev_free(m->subs[i].topic);
  cbev_free(m);
}

int cb2m_mqtt_fd(const cb2m_mqtt *m) {
  if (!m || !m->mosq || (m->state != ST_CONNECTING && m->state != ST_CONNECTED))
    return -1;
  return mosquitto_socket(m->mosq);
}

short cb2m_mqtt_poll_events(const cb2m_mqtt *m) {
  short ev;

  if (cb2m_mqtt_fd(m) < 0)
    return 0;
  ev = POLLIN;
  if (mosquitto_want_write(m->mosq))
    ev |= POLLOUT;
  return ev;
}

void cb2m_mqtt_service(cb2m_mqtt *m, short revents, uint64_t now_ms) {
  int rc;
  char why[REASON_MAX];

  if (!m || m->state == ST_CLOSED)
    return;
  m->now_ms = now_ms;
  if (m->state == ST_CONNECTING || m->state == ST_CONNECTED) {
    int connecting = m->state == ST_CONNECTING;
    /* While connecting, a TLS handshake only advances in loop_read (which
     * libmosquitto's own select loop also calls on writability), so any
     * event counts as readable then. */
    if ((revents & (POLLIN | POLLERR | POLLHUP)) || (connecting && revents)) {
      errno = 0;
      rc = mosquitto_loop_read(m->mosq, 1);
      if (rc != MOSQ_ERR_SUCCESS)
        cb2m_mqtt__mark_lost(m, cb2m_mqtt__rc_text(rc, errno, why, sizeof why));
    }
    if ((m->state == ST_CONNECTING || m->state == ST_CONNECTED) &&
        ((revents & (POLLOUT | POLLERR | POLLHUP)) || mosquitto_want_write(m->mosq))) {
      errno = 0;
      rc = mosquitto_loop_write(m->mosq, 1);
      if (rc != MOSQ_ERR_SUCCESS)
        cb2m_mqtt__mark_lost(m, cb2m_mqtt__rc_text(rc, errno, why, sizeof why));
    }
    if (m->state == ST_CONNECTING || m->state == ST_CONNECTED) {
      rc = mosquitto_loop_misc(m->mosq);
      if (rc != MOSQ_ERR_SUCCESS)
        cb2m_mqtt__mark_lost(m,
                             rc == MOSQ_ERR_NO_CONN ? "keepalive timeout" : mosquitto_strerror(rc));
    }
    if (m->state == ST_CONNECTING && now_ms - m->attempt_started_ms >= CB2M_MQTT_CONNECT_TIMEOUT_MS)
      cb2m_mqtt__mark_lost(m, "no CONNACK in time");
  }
  /* Acks of the connection come before its on_disconnect. */
  deliver_held(m);
  if (m->state == ST_LOST)
    teardown(m, now_ms);
  if (m->state == ST_IDLE && now_ms >= m->next_attempt_ms) {
    start_attempt(m, now_ms);
    /* A refused connect (nothing listening on loopback) fails at once. */
    if (m->state == ST_LOST)
      teardown(m, now_ms);
  }
}

uint64_t cb2m_mqtt_next_ms(const cb2m_mqtt *m, uint64_t now_ms) {
  uint64_t next;

  if (!m || m->state == ST_CLOSED)
    return UINT64_MAX;
  if (m->n_held > 0 || m->state == ST_LOST)
    return now_ms;
  if (m->state == ST_IDLE)
    return m->next_attempt_ms > now_ms ? m->next_attempt_ms : now_ms;
  next = now_ms + SERVICE_TICK_MS;
  if (m->state == ST_CONNECTING) {
    uint64_t limit = m->attempt_started_ms + CB2M_MQTT_CONNECT_TIMEOUT_MS;
    if (limit < next)
      next = limit > now_ms ? limit : now_ms;
  }
  return next;
}

int cb2m_mqtt_connected(const cb2m_mqtt *m) { return m && m->state == ST_CONNECTED; }

int cb2m_mqtt_backlogged(const cb2m_mqtt *m) {
  return m && m->mosq && mosquitto_want_write(m->mosq);
}

int cb2m_mqtt_publish(cb2m_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                      int retain, int *mid) {
  int local_mid = 0, rc;
  char why[REASON_MAX];

  if (!m || !topic || qos < 0 || qos > 2 || (len > 0 && !payload))
    return CBEV_EINVAL;
  if (len > MQTT_PAYLOAD_MAX)
    return CBEV_ETOOBIG;
  if (m->state != ST_CONNECTED || m->n_held >= CB2M_MQTT_MAX_HELD_ACKS)
    return CBEV_EAGAIN;
  /* Counted before the call: a QoS 0 message may be written, and its
   * on_publish seen, before mosquitto_publish_v5() returns. */
  m->unacked++;
  m->in_api++;
  errno = 0;
  rc = mosquitto_publish_v5(m->mosq, &local_mid, topic, (int)len, payload, qos, retain != 0, NULL);
  m->in_api--;
  if (rc != MOSQ_ERR_SUCCESS && m->unacked > 0)
    m->unacked--; /* not sent: no on_publish will come for it */
  switch (rc) {
  case MOSQ_ERR_SUCCESS:
    if (mid)
      *mid = local_mid;
    return CBEV_OK;
  case MOSQ_ERR_NOMEM:
    return CBEV_ENOMEM;
  case MOSQ_ERR_PAYLOAD_SIZE:
  case MOSQ_ERR_OVERSIZE_PACKET:
    return CBEV_ETOOBIG;
  case MOSQ_ERR_INVAL:
  case MOSQ_ERR_MALFORMED_UTF8:
  case MOSQ_ERR_QOS_NOT_SUPPORTED:
  case MOSQ_ERR_RETAIN_NOT_SUPPORTED:
  case MOSQ_ERR_NOT_SUPPORTED:
    return CBEV_EINVAL;
  default:
    /* The socket broke while writing: the message may be half sent; the
     * connection is gone and with it this message. */
    cb2m_mqtt__mark_lost(m, cb2m_mqtt__rc_text(rc, errno, why, sizeof why));
    return CBEV_EAGAIN;
  }
}

int cb2m_mqtt_subscribe(cb2m_mqtt *m, const char *topic, int qos) {
  size_t i;
  int rc;

  if (!m || !topic || qos < 0 || qos > 2 || mosquitto_sub_topic_check(topic) != MOSQ_ERR_SUCCESS)
    return CBEV_EINVAL;
  for (i = 0; i < m->n_subs; i++)
    if (strcmp(m->subs[i].topic, topic) == 0)
      break;
  if (i == m->n_subs) {
    if (m->n_subs == CB2M_MQTT_MAX_SUBS)
      return CBEV_ETOOBIG;
    m->subs[i].topic = cbev_strdup(topic);
    if (!m->subs[i].topic)
      return CBEV_ENOMEM;
    m->n_subs++;
  }
  m->subs[i].qos = qos;
  if (m->state != ST_CONNECTED)
    return CBEV_OK;
  m->in_api++;
  errno = 0;
  rc = mosquitto_subscribe_v5(m->mosq, NULL, topic, qos, 0, NULL);
  m->in_api--;
  if (rc == MOSQ_ERR_NOMEM)
    return CBEV_ENOMEM;
  if (rc != MOSQ_ERR_SUCCESS) {
    char why[REASON_MAX];
    /* Remembered: it is sent again after the reconnect. */
    cb2m_mqtt__mark_lost(m, cb2m_mqtt__rc_text(rc, errno, why, sizeof why));
  }
  return CBEV_OK;
}

void cb2m_mqtt_shutdown(cb2m_mqtt *m, uint64_t deadline_ms) {
  uint64_t now;

  if (!m || m->state == ST_CLOSED)
    return;
  now = cbev_now_ms();
  /* Flush: wait for the acks of QoS 1/2 messages and for unwritten data. */
  while (m->state == ST_CONNECTED &&
         (m->unacked > 0 || m->n_held > 0 || mosquitto_want_write(m->mosq)) && now < deadline_ms) {
    struct pollfd pfd = {.fd = cb2m_mqtt_fd(m), .events = cb2m_mqtt_poll_events(m)};
    uint64_t wait = deadline_ms - now;
    int n;

    if (wait > SERVICE_TICK_MS)
      wait = SERVICE_TICK_MS;
    if (m->n_held > 0)
      wait = 0;
    n = poll(&pfd, 1, (int)wait);
    now = cbev_now_ms();
    if (n < 0 && errno != EINTR)
      break;
    cb2m_mqtt_service(m, n > 0 ? pfd.revents : 0, now);
  }
  deliver_held(m);
  if (m->state == ST_CONNECTED) {
    if (m->unacked > 0)
      cbev_log(m->logger, m->password, CBEV_LOG_WARN,
               "mqtt: stopping with %zu message(s) not acknowledged by the broker", m->unacked);
    /* Reason 0, "normal disconnection": the broker discards the Will. */
    if (mosquitto_disconnect_v5(m->mosq, 0, NULL) == MOSQ_ERR_SUCCESS) {
      /* DISCONNECT is usually written at once; give it until the deadline
       * (at least one try) when the socket was full. */
      do {
        struct pollfd pfd = {.fd = mosquitto_socket(m->mosq), .events = POLLOUT};
        if (pfd.fd < 0 || !mosquitto_want_write(m->mosq))
          break;
        if (poll(&pfd, 1, 100) > 0 && mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
          break;
        now = cbev_now_ms();
      } while (now < deadline_ms);
    }
    cbev_log(m->logger, m->password, CBEV_LOG_INFO, "mqtt: disconnected from %s:%d", m->host,
             m->port);
  }
  mosquitto_destroy(m->mosq);
  m->mosq = NULL;
  m->n_held = 0;
  m->state = ST_CLOSED;
}

unsigned cb2m_mqtt_reconnects(const cb2m_mqtt *m) { return m ? m->reconnects : 0; }

int cb2m_mqtt_protocol(const cb2m_mqtt *m) {
  return m && m->protocol == MQTT_PROTOCOL_V311 ? 311 : 5;
}

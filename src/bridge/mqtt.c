/*
 * mqtt.c: the bridge's MQTT connection on libmosquitto, without threads.
 *
 * It owns one libmosquitto instance per connection attempt: a lost
 * connection destroys the instance, so nothing of it (in-flight messages,
 * mids, late PUBACKs) survives into the next one and the caller's
 * delivery queue is the single place that decides what is sent again.
 * libmosquitto's callbacks only record what happened (state, reason, held
 * acks); anything that would free the instance waits until control is
 * back in cb2m_mqtt_service(), because libmosquitto must not be destroyed
 * from inside its own callbacks.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/log.h"
#include "mqtt.h"

/* MQTT's largest remaining length; libmosquitto takes payload sizes as int. */
#define MQTT_PAYLOAD_MAX 268435455u
/* libmosquitto's keepalive check has one-second resolution. */
#define SERVICE_TICK_MS 1000u
/* A connection that lived this long resets the backoff; a broker that
 * accepts and then drops us at once keeps backing off instead. */
#define STABLE_CONNECTION_MS 10000u
#define SYSTEM_CA_PATH "/etc/ssl/certs"
#define REASON_MAX 160

typedef enum conn_state {
  ST_IDLE = 0,   /* no instance; next attempt at next_attempt_ms */
  ST_CONNECTING, /* socket open, waiting for CONNACK */
  ST_CONNECTED,  /* CONNACK success */
  ST_LOST,       /* the instance failed; torn down by the next service() */
  ST_CLOSED      /* after shutdown: nothing ever again */
} conn_state;

typedef struct held_ack {
  int mid;
  int reason; /* MQTT v5 reason code; >= 0x80: refused */
} held_ack;

typedef struct sub_entry {
  char *topic;
  int qos;
} sub_entry;

struct cb2m_mqtt {
  /* Settings (owned copies). */
  char *host, *ca_file, *cert_file, *key_file, *username, *password, *client_id;
  char *will_topic, *will_payload;
  int port, tls, tls_insecure, keepalive_s, will_qos, will_retain, max_inflight;
  uint64_t backoff_initial_ms, backoff_max_ms;
  const cbev_logger *logger;
  cb2m_mqtt_cbs cbs;

  struct mosquitto *mosq;
  conn_state state;
  int protocol;    /* MQTT_PROTOCOL_V5 or MQTT_PROTOCOL_V311 */
  int retry_now;   /* fallback: the next attempt is not a failure */
  uint64_t now_ms; /* last time seen by service() */
  uint64_t next_attempt_ms;
  uint64_t attempt_started_ms;
  uint64_t connected_at_ms;
  unsigned failures; /* consecutive failed attempts, for the backoff */
  unsigned reconnects;
  int ever_connected;
  int was_connected; /* the instance being torn down reached CONNECTED */
  char reason[REASON_MAX];
  uint64_t rng;

  unsigned in_api; /* inside publish/subscribe: acks are held */
  held_ack *held;
  size_t n_held, cap_held;
  size_t inflight; /* QoS 1/2 messages of this connection not acked */
  /* Which mids are such messages: an ack does not say its QoS, and QoS 0
   * acks must not count down. mids are 16 bits. */
  uint8_t inflight_bits[65536 / 8];

  sub_entry subs[CB2M_MQTT_MAX_SUBS];
  size_t n_subs;
};

uint64_t cb2m_mqtt_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t cb2m_mqtt_backoff_ms(unsigned failures, uint64_t initial_ms, uint64_t max_ms,
                              uint64_t rnd) {
  uint64_t d = initial_ms ? initial_ms : 1;

  for (unsigned i = 1; i < failures && d < max_ms; i++)
    d *= 2;
  if (d > max_ms)
    d = max_ms;
  /* Jitter into [d/2, d] so a fleet of bridges does not reconnect in step. */
  return d / 2 + rnd % (d - d / 2 + 1);
}

int cb2m_mqtt_should_fallback(int protocol, int connack_rc) {
  if (protocol != 5)
    return 0;
  /* A v5 broker says 0x84 in a v5 CONNACK; libmosquitto also maps a 3.1.1
   * broker's "unacceptable protocol version" (1, in a v3 CONNACK) to 0x84,
   * and 1 is accepted here in case a version reports it raw. */
  return connack_rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION ||
         connack_rc == CONNACK_REFUSED_PROTOCOL_VERSION;
}

static uint64_t next_random(cb2m_mqtt *m) {
  /* xorshift64*: jitter only, not security. */
  m->rng ^= m->rng >> 12;
  m->rng ^= m->rng << 25;
  m->rng ^= m->rng >> 27;
  return m->rng * 2685821657736338717ull;
}

static int proto_number(int mosq_protocol) { return mosq_protocol == MQTT_PROTOCOL_V5 ? 5 : 311; }

/* Records why the current instance is unusable; the first reason wins. */
static void mark_lost(cb2m_mqtt *m, const char *reason) {
  if (m->state != ST_CONNECTING && m->state != ST_CONNECTED)
    return;
  m->was_connected = m->state == ST_CONNECTED;
  m->state = ST_LOST;
  snprintf(m->reason, sizeof m->reason, "%s", reason);
}

static const char *rc_text(int rc, int saved_errno, char *buf, size_t cap) {
  if (rc == MOSQ_ERR_ERRNO)
    snprintf(buf, cap, "%s", strerror(saved_errno));
  else if (rc >= 0x80)
    snprintf(buf, cap, "%s", mosquitto_reason_string(rc));
  else
    snprintf(buf, cap, "%s", mosquitto_strerror(rc));
  return buf;
}

static int inflight_test_clear(cb2m_mqtt *m, unsigned mid) {
  uint8_t bit = (uint8_t)(1u << (mid & 7u));
  int was = (m->inflight_bits[mid >> 3] & bit) != 0;

  m->inflight_bits[mid >> 3] &= (uint8_t)~bit;
  return was;
}

static void reset_inflight(cb2m_mqtt *m) {
  m->inflight = 0;
  memset(m->inflight_bits, 0, sizeof m->inflight_bits);
}

static void deliver_ack(cb2m_mqtt *m, int mid, int reason) {
  if (m->cbs.on_ack)
    m->cbs.on_ack(m->cbs.ud, mid, reason);
}

/* --- libmosquitto callbacks: record, never destroy ---------------------- */

static void on_connect_cb(struct mosquitto *mosq, void *ud, int rc, int flags,
                          const mosquitto_property *props) {
  cb2m_mqtt *m = ud;
  char why[REASON_MAX];

  (void)mosq;
  (void)flags;
  (void)props;
  if (m->state != ST_CONNECTING)
    return;
  if (rc != 0) {
    if (cb2m_mqtt_should_fallback(proto_number(m->protocol), rc)) {
      cbev_log(m->logger, m->password, CBEV_LOG_INFO,
               "mqtt: %s:%d refused MQTT v5, using MQTT 3.1.1 from now on", m->host, m->port);
      m->protocol = MQTT_PROTOCOL_V311;
      m->retry_now = 1;
      mark_lost(m, "broker refused MQTT v5");
      return;
    }
    snprintf(why, sizeof why, "refused: %s",
             m->protocol == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(rc)
                                             : mosquitto_connack_string(rc));
    mark_lost(m, why);
    return;
  }
  m->state = ST_CONNECTED;
  m->connected_at_ms = m->now_ms;
  reset_inflight(m);
  if (m->ever_connected)
    m->reconnects++;
  m->ever_connected = 1;
  cbev_log(m->logger, m->password, CBEV_LOG_INFO, "mqtt: connected to %s:%d (MQTT %s)", m->host,
           m->port, m->protocol == MQTT_PROTOCOL_V5 ? "v5" : "3.1.1");
  for (size_t i = 0; i < m->n_subs; i++) {
    int src = mosquitto_subscribe_v5(m->mosq, NULL, m->subs[i].topic, m->subs[i].qos, 0, NULL);
    if (src != MOSQ_ERR_SUCCESS)
      cbev_log(m->logger, m->password, CBEV_LOG_WARN, "mqtt: cannot subscribe to %s: %s",
               m->subs[i].topic, mosquitto_strerror(src));
  }
  if (m->cbs.on_connect)
    m->cbs.on_connect(m->cbs.ud);
}

static void on_disconnect_cb(struct mosquitto *mosq, void *ud, int rc,
                             const mosquitto_property *props) {
  cb2m_mqtt *m = ud;
  int saved_errno = errno;
  char why[REASON_MAX];

  (void)mosq;
  (void)props;
  mark_lost(m, rc_text(rc, saved_errno, why, sizeof why));
}

static void on_publish_cb(struct mosquitto *mosq, void *ud, int mid, int reason_code,
                          const mosquitto_property *props) {
  cb2m_mqtt *m = ud;

  (void)mosq;
  (void)props;
  if (mid > 0 && mid < 65536 && inflight_test_clear(m, (unsigned)mid))
    m->inflight--;
  if (m->in_api == 0) {
    deliver_ack(m, mid, reason_code);
    return;
  }
  /* Inside publish(): the caller does not know this mid yet, so it is held.
   * publish() refuses new messages once CB2M_MQTT_MAX_HELD_ACKS are held;
   * one call may still add a few (QoS 0 packets written together), so the
   * array may pass that mark by the packets libmosquitto had queued. */
  if (m->n_held == m->cap_held) {
    size_t cap = m->cap_held ? m->cap_held * 2 : 64;
    held_ack *p = cbev_realloc(m->held, cap * sizeof *p);
    if (!p) {
      /* Out of memory: deliver now rather than lose it. */
      deliver_ack(m, mid, reason_code);
      return;
    }
    m->held = p;
    m->cap_held = cap;
  }
  m->held[m->n_held].mid = mid;
  m->held[m->n_held].reason = reason_code;
  m->n_held++;
}

static void on_message_cb(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                          const mosquitto_property *props) {
  cb2m_mqtt *m = ud;

  (void)mosq;
  (void)props;
  if (m->cbs.on_message && msg && msg->topic)
    m->cbs.on_message(m->cbs.ud, msg->topic, msg->payload,
                      msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0);
}

static void on_log_cb(struct mosquitto *mosq, void *ud, int level, const char *str) {
  cb2m_mqtt *m = ud;

  (void)mosq;
  (void)level;
  cbev_log(m->logger, m->password, CBEV_LOG_DEBUG, "mqtt: libmosquitto: %s", str);
}

/* --- instances ---------------------------------------------------------- */

/* A configured instance, not connected. On failure *why says what. */
static int make_instance(cb2m_mqtt *m, struct mosquitto **out, char *why, size_t why_cap) {
  struct mosquitto *mosq;
  const char *cid = m->client_id && *m->client_id ? m->client_id : NULL;
  int rc = CBEV_EINVAL, mrc;

  *out = NULL;
  /* Clean session: nothing is resumed from a former connection, which is
   * the contract of this module (the caller resends). */
  mosq = mosquitto_new(cid, true, m);
  if (!mosq) {
    snprintf(why, why_cap, "cannot create a libmosquitto instance: %s", strerror(errno));
    rc = errno == ENOMEM ? CBEV_ENOMEM : CBEV_EINVAL;
    goto out;
  }
  mrc = mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, m->protocol);
  /* The in-flight window: for v5 SEND_MAXIMUM (the broker's Receive
   * Maximum lowers it), for 3.1.1 the only limit there is. */
  if (mrc == MOSQ_ERR_SUCCESS && m->protocol == MQTT_PROTOCOL_V5)
    mrc = mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, m->max_inflight);
  if (mrc == MOSQ_ERR_SUCCESS && m->protocol != MQTT_PROTOCOL_V5)
    mrc = mosquitto_max_inflight_messages_set(mosq, (unsigned)m->max_inflight);
  if (mrc != MOSQ_ERR_SUCCESS) {
    snprintf(why, why_cap, "protocol options: %s", mosquitto_strerror(mrc));
    goto out;
  }
  if (m->will_topic) {
    size_t wlen = m->will_payload ? strlen(m->will_payload) : 0;
    mrc = wlen > MQTT_PAYLOAD_MAX
              ? MOSQ_ERR_PAYLOAD_SIZE
              : mosquitto_will_set_v5(mosq, m->will_topic, (int)wlen, m->will_payload, m->will_qos,
                                      m->will_retain != 0, NULL);
    if (mrc != MOSQ_ERR_SUCCESS) {
      snprintf(why, why_cap, "last will: %s", mosquitto_strerror(mrc));
      goto out;
    }
  }
  if (m->username || m->password) {
    mrc = mosquitto_username_pw_set(mosq, m->username ? m->username : "", m->password);
    if (mrc != MOSQ_ERR_SUCCESS) {
      snprintf(why, why_cap, "username/password: %s", mosquitto_strerror(mrc));
      goto out;
    }
  }
  if (m->tls) {
    mrc = mosquitto_tls_set(mosq, m->ca_file, m->ca_file ? NULL : SYSTEM_CA_PATH, m->cert_file,
                            m->key_file, NULL);
    if (mrc == MOSQ_ERR_SUCCESS)
      mrc = mosquitto_tls_insecure_set(mosq, m->tls_insecure != 0);
    if (mrc != MOSQ_ERR_SUCCESS) {
      snprintf(why, why_cap, "TLS settings (ca_file, cert_file, key_file readable?): %s",
               mosquitto_strerror(mrc));
      goto out;
    }
  }
  mosquitto_connect_v5_callback_set(mosq, on_connect_cb);
  mosquitto_disconnect_v5_callback_set(mosq, on_disconnect_cb);
  mosquitto_publish_v5_callback_set(mosq, on_publish_cb);
  mosquitto_message_v5_callback_set(mosq, on_message_cb);
  /* libmosquitto formats every line once a callback is set: only pay for
   * that when debug output is wanted. */
  if (m->logger && m->logger->fn && m->logger->max_level >= CBEV_LOG_DEBUG)
    mosquitto_log_callback_set(mosq, on_log_cb);
  *out = mosq;
  mosq = NULL;
  rc = CBEV_OK;
out:
  mosquitto_destroy(mosq);
  return rc;
}

static void schedule_retry(cb2m_mqtt *m, uint64_t now_ms, int was_connected) {
  uint64_t delay;

  if (m->retry_now) {
    m->retry_now = 0;
    m->next_attempt_ms = now_ms;
    return;
  }
  m->failures++;
  delay =
      cb2m_mqtt_backoff_ms(m->failures, m->backoff_initial_ms, m->backoff_max_ms, next_random(m));
  m->next_attempt_ms = now_ms + delay;
  cbev_log(m->logger, m->password, CBEV_LOG_WARN,
           was_connected ? "mqtt: connection to %s:%d lost (%s), reconnecting in %.1f s"
                         : "mqtt: cannot connect to %s:%d (%s), retrying in %.1f s",
           m->host, m->port, m->reason, (double)delay / 1000.0);
}

static void start_attempt(cb2m_mqtt *m, uint64_t now_ms) {
  char why[REASON_MAX] = "";
  int rc;

  reset_inflight(m);
  m->attempt_started_ms = now_ms;
  rc = make_instance(m, &m->mosq, why, sizeof why);
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
    mark_lost(m, rc_text(rc, errno, buf, sizeof buf));
  }
}

/* Frees the failed instance and schedules the next attempt. */
static void teardown(cb2m_mqtt *m, uint64_t now_ms) {
  int was_connected = m->was_connected;

  mosquitto_destroy(m->mosq);
  m->mosq = NULL;
  m->state = ST_IDLE;
  reset_inflight(m);
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
    deliver_ack(m, m->held[i].mid, m->held[i].reason);
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
  m->backoff_initial_ms = opts->backoff_initial_ms ? opts->backoff_initial_ms : 1000;
  m->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms : 60000;
  if (m->backoff_max_ms < m->backoff_initial_ms)
    m->backoff_max_ms = m->backoff_initial_ms;
  m->max_inflight = opts->max_inflight ? (int)opts->max_inflight : CB2M_MQTT_DEFAULT_INFLIGHT;
  m->logger = opts->logger;
  if (cbs)
    m->cbs = *cbs;
  m->protocol = opts->protocol == 311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
  m->state = ST_IDLE;
  m->now_ms = cb2m_mqtt_now_ms();
  m->next_attempt_ms = 0; /* connect on the first service() */
  m->rng = (m->now_ms << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)m;
  if (!m->rng)
    m->rng = 0x9e3779b97f4a7c15ull;
  /* Build one instance now so a bad TLS file or will is a startup error,
   * not an endless reconnect loop. */
  rc = make_instance(m, &probe, why, sizeof why);
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
        mark_lost(m, rc_text(rc, errno, why, sizeof why));
    }
    if ((m->state == ST_CONNECTING || m->state == ST_CONNECTED) &&
        ((revents & (POLLOUT | POLLERR | POLLHUP)) || mosquitto_want_write(m->mosq))) {
      errno = 0;
      rc = mosquitto_loop_write(m->mosq, 1);
      if (rc != MOSQ_ERR_SUCCESS)
        mark_lost(m, rc_text(rc, errno, why, sizeof why));
    }
    if (m->state == ST_CONNECTING || m->state == ST_CONNECTED) {
      rc = mosquitto_loop_misc(m->mosq);
      if (rc != MOSQ_ERR_SUCCESS)
        mark_lost(m, rc == MOSQ_ERR_NO_CONN ? "keepalive timeout" : mosquitto_strerror(rc));
    }
    if (m->state == ST_CONNECTING && now_ms - m->attempt_started_ms >= CB2M_MQTT_CONNECT_TIMEOUT_MS)
      mark_lost(m, "no CONNACK in time");
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
  m->in_api++;
  errno = 0;
  rc = mosquitto_publish_v5(m->mosq, &local_mid, topic, (int)len, payload, qos, retain != 0, NULL);
  m->in_api--;
  switch (rc) {
  case MOSQ_ERR_SUCCESS:
    /* The QoS 0 ack may already be held; only QoS 1/2 wait for the broker,
     * and their acks are only read in service(), never during this call. */
    if (qos > 0 && local_mid > 0 && local_mid < 65536) {
      m->inflight_bits[(unsigned)local_mid >> 3] |= (uint8_t)(1u << ((unsigned)local_mid & 7u));
      m->inflight++;
    }
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
    mark_lost(m, rc_text(rc, errno, why, sizeof why));
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
    mark_lost(m, rc_text(rc, errno, why, sizeof why));
  }
  return CBEV_OK;
}

void cb2m_mqtt_shutdown(cb2m_mqtt *m, uint64_t deadline_ms) {
  uint64_t now;

  if (!m || m->state == ST_CLOSED)
    return;
  now = cb2m_mqtt_now_ms();
  /* Flush: wait for the acks of QoS 1/2 messages and for unwritten data. */
  while (m->state == ST_CONNECTED &&
         (m->inflight > 0 || m->n_held > 0 || mosquitto_want_write(m->mosq)) && now < deadline_ms) {
    struct pollfd pfd = {.fd = cb2m_mqtt_fd(m), .events = cb2m_mqtt_poll_events(m)};
    uint64_t wait = deadline_ms - now;
    int n;

    if (wait > SERVICE_TICK_MS)
      wait = SERVICE_TICK_MS;
    if (m->n_held > 0)
      wait = 0;
    n = poll(&pfd, 1, (int)wait);
    now = cb2m_mqtt_now_ms();
    if (n < 0 && errno != EINTR)
      break;
    cb2m_mqtt_service(m, n > 0 ? pfd.revents : 0, now);
  }
  deliver_held(m);
  if (m->state == ST_CONNECTED) {
    if (m->inflight > 0)
      cbev_log(m->logger, m->password, CBEV_LOG_WARN,
               "mqtt: stopping with %zu message(s) not acknowledged by the broker", m->inflight);
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
        now = cb2m_mqtt_now_ms();
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

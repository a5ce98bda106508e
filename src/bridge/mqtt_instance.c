/*
 * mqtt_instance.c: one libmosquitto instance of cb2mqtt's MQTT client,
 * built from the settings (protocol, in-flight window, Last Will,
 * credentials, TLS), and its callbacks. The callbacks only record what
 * happened (state, reason, held acks) and call the caller's callbacks;
 * tearing an instance down is mqtt.c's, in cb2m_mqtt_service(). See
 * mqtt_impl.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/log.h"
#include "mqtt.h"
#include "mqtt_impl.h"

#define SYSTEM_CA_PATH "/etc/ssl/certs"

int cb2m_mqtt_should_fallback(int protocol, int connack_rc) {
  if (protocol != 5)
    return 0;
  /* A v5 broker says 0x84 in a v5 CONNACK; libmosquitto also maps a 3.1.1
   * broker's "unacceptable protocol version" (1, in a v3 CONNACK) to 0x84,
   * and 1 is accepted here in case a version reports it raw. */
  return connack_rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION ||
         connack_rc == CONNACK_REFUSED_PROTOCOL_VERSION;
}

static int proto_number(int mosq_protocol) { return mosq_protocol == MQTT_PROTOCOL_V5 ? 5 : 311; }

void cb2m_mqtt__mark_lost(cb2m_mqtt *m, const char *reason) {
  if (m->state != ST_CONNECTING && m->state != ST_CONNECTED)
    return;
  m->was_connected = m->state == ST_CONNECTED;
  m->state = ST_LOST;
  snprintf(m->reason, sizeof m->reason, "%s", reason);
}

const char *cb2m_mqtt__rc_text(int rc, int saved_errno, char *buf, size_t cap) {
  if (rc == MOSQ_ERR_ERRNO)
    snprintf(buf, cap, "%s", strerror(saved_errno));
  else if (rc >= 0x80)
    snprintf(buf, cap, "%s", mosquitto_reason_string(rc));
  else
    snprintf(buf, cap, "%s", mosquitto_strerror(rc));
  return buf;
}

void cb2m_mqtt__deliver_ack(cb2m_mqtt *m, int mid, int reason) {
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
      cb2m_mqtt__mark_lost(m, "broker refused MQTT v5");
      return;
    }
    snprintf(why, sizeof why, "refused: %s",
             m->protocol == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(rc)
                                             : mosquitto_connack_string(rc));
    cb2m_mqtt__mark_lost(m, why);
    return;
  }
  m->state = ST_CONNECTED;
  m->connected_at_ms = m->now_ms;
  m->unacked = 0;
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
  cb2m_mqtt__mark_lost(m, cb2m_mqtt__rc_text(rc, saved_errno, why, sizeof why));
}

static void on_publish_cb(struct mosquitto *mosq, void *ud, int mid, int reason_code,
                          const mosquitto_property *props) {
  cb2m_mqtt *m = ud;

  (void)mosq;
  (void)props;
  /* Every on_publish ends one message publish() counted, whatever its
   * QoS; the check only keeps a miscount from wrapping. */
  if (m->unacked > 0)
    m->unacked--;
  if (m->in_api == 0) {
    cb2m_mqtt__deliver_ack(m, mid, reason_code);
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
      cb2m_mqtt__deliver_ack(m, mid, reason_code);
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

int cb2m_mqtt__make_instance(cb2m_mqtt *m, struct mosquitto **out, char *why, size_t why_cap) {
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

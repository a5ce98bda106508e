/*
 * mqtt_impl.h: what the parts of cb2mqtt's MQTT client share, private to
 * src/bridge/mqtt*.c. The public interface is mqtt.h.
 *
 * The parts, one job each:
 *   mqtt_instance.c  one libmosquitto instance: built from the settings
 *                    (protocol, in-flight window, Last Will, credentials,
 *                    TLS) with its callbacks, which only record what
 *                    happened (state, reason, held acks);
 *   mqtt.c           the client: settings, the connection state machine
 *                    (attempt, backoff, teardown), publish and subscribe,
 *                    the clean shutdown.
 *
 * A lost connection destroys its instance, so nothing of it (in-flight
 * messages, mids, late PUBACKs) survives into the next one. Anything that
 * would free the instance waits until control is back in
 * cb2m_mqtt_service(): libmosquitto must not be destroyed from inside its
 * own callbacks.
 */
#ifndef CB2M_MQTT_IMPL_H
#define CB2M_MQTT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "cbevents/log.h"
#include "mqtt.h"

struct mosquitto;

/* MQTT's largest remaining length; libmosquitto takes payload sizes as int. */
#define MQTT_PAYLOAD_MAX 268435455u
/* Room for why an attempt failed or a connection was lost. */
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
  uint64_t rng; /* cbev_random_next() state, for the backoff's jitter */

  unsigned in_api; /* inside publish/subscribe: acks are held */
  held_ack *held;
  size_t n_held, cap_held;
  /* Messages of this connection whose on_ack() has not come: QoS 1/2 until
   * the broker's ack, QoS 0 until written. It is the only count that covers
   * every message (the bridge's mid map holds only events, not retained
   * state or discovery), and libmosquitto does not say how many it holds;
   * cb2m_mqtt_shutdown() waits for it to reach 0 and warns about the rest.
   * Each successful publish gets exactly one on_publish callback, so one
   * counter suffices: no per-mid record of the QoS. */
  size_t unacked;

  sub_entry subs[CB2M_MQTT_MAX_SUBS];
  size_t n_subs;
};

/* A configured instance of m's settings, not connected, with the
 * callbacks of mqtt_instance.c. Returns CBEV_OK with *out set; else
 * CBEV_ENOMEM or CBEV_EINVAL, *out NULL and why (why_cap bytes) says what. */
int cb2m_mqtt__make_instance(cb2m_mqtt *m, struct mosquitto **out, char *why, size_t why_cap);

/* Records why the current instance is unusable (state ST_LOST); the first
 * reason wins. No effect unless connecting or connected. */
void cb2m_mqtt__mark_lost(cb2m_mqtt *m, const char *reason);

/* A libmosquitto result (MOSQ_ERR_*, or a v5 reason code >= 0x80) as
 * text in buf, with saved_errno for MOSQ_ERR_ERRNO. Returns buf. */
const char *cb2m_mqtt__rc_text(int rc, int saved_errno, char *buf, size_t cap);

/* Calls on_ack(mid, reason) when the caller set one. */
void cb2m_mqtt__deliver_ack(cb2m_mqtt *m, int mid, int reason);

#endif

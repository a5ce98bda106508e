/*
 * mqtt.h: cb2mqtt's MQTT connection, libmosquitto driven by the bridge's
 * own poll() loop.
 *
 * The bridge runs one thread. This module never creates one and never
 * blocks for long: the caller polls cb2m_mqtt_fd() for
 * cb2m_mqtt_poll_events(), calls cb2m_mqtt_service() with what poll()
 * returned (0 on a timeout) and comes back no later than
 * cb2m_mqtt_next_ms(). Connecting, reconnecting, keepalive and the
 * MQTT v5 -> 3.1.1 fallback all happen inside cb2m_mqtt_service().
 *
 * Time: every now_ms and deadline_ms is milliseconds on CLOCK_MONOTONIC,
 * the clock cbev_now_ms() (cbevents/transport.h) reads.
 *
 * Delivery contract (at least once is the caller's job, not this module's):
 *  - cb2m_mqtt_publish() hands a message to the current connection and
 *    returns its mid. on_ack(mid, reason) reports the end of its delivery
 *    on THAT connection: for QoS 1/2 when PUBACK/PUBCOMP arrives, with the
 *    broker's MQTT v5 reason code (>= 0x80: refused, e.g. 0x87 not
 *    authorized; 0 from a 3.1.1 broker), for QoS 0 when the PUBLISH was
 *    written to the socket (reason 0). The mid says which message only
 *    until it is acked: libmosquitto reuses ids after 65535 publishes.
 *  - When a connection is lost, every message of it that was not acked is
 *    FORGOTTEN: on_disconnect() is called, and no on_ack() ever arrives for
 *    a mid of that connection (each connection attempt uses a fresh
 *    libmosquitto instance, so mids restart and are never resent by
 *    libmosquitto). The caller re-publishes, after the next on_connect(),
 *    everything it published and did not see acked.
 *  - on_ack() is never called from inside cb2m_mqtt_publish() or
 *    cb2m_mqtt_subscribe(): an ack that libmosquitto reports during one of
 *    them (a QoS 0 message written at once) is held and delivered by the
 *    next cb2m_mqtt_service(), and cb2m_mqtt_next_ms() returns now_ms
 *    meanwhile. So the caller can record the mid after publish returns.
 *
 * Callbacks run inside cb2m_mqtt_service() (and cb2m_mqtt_shutdown()).
 * They may call cb2m_mqtt_publish() and cb2m_mqtt_subscribe(), never
 * cb2m_mqtt_service(), cb2m_mqtt_shutdown() or cb2m_mqtt_free().
 *
 * Logs go through opts->logger (cbev_log); the password is never logged
 * and is masked should it ever appear in a message.
 */
#ifndef CB2M_MQTT_H
#define CB2M_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cbevents/log.h"

typedef struct cb2m_mqtt cb2m_mqtt;

typedef struct cb2m_mqtt_opts {
  const char *host;      /* broker host name or address; required */
  int port;              /* 1..65535; 0: 1883, or 8883 with tls */
  bool tls;              /* mqtts:// */
  const char *ca_file;   /* NULL: the system CA directory /etc/ssl/certs */
  const char *cert_file; /* client certificate, with key_file, or NULL */
  const char *key_file;
  bool tls_insecure;        /* libmosquitto's meaning: do not check the host
                             * name in the broker's certificate */
  const char *username;     /* NULL: none */
  const char *password;     /* NULL: none; a secret */
  const char *client_id;    /* NULL or "": libmosquitto makes a random one */
  int protocol;             /* 5 (also 0) or 311 */
  int keepalive_s;          /* 5..65535; 0: 60 */
  const char *will_topic;   /* NULL: no Last Will */
  const char *will_payload; /* NULL: empty */
  int will_qos;             /* 0..2 */
  bool will_retain;
  unsigned backoff_initial_ms; /* first reconnect delay;
                                * 0: CB2M_MQTT_BACKOFF_INITIAL_MS */
  unsigned backoff_max_ms;     /* cap of the doubling;
                                * 0: CB2M_MQTT_BACKOFF_MAX_MS */
  unsigned max_inflight;       /* QoS 1/2 messages sent and not yet acked, at
                                * most (the broker's Receive Maximum may
                                * lower it); more wait inside libmosquitto.
                                * 0: CB2M_MQTT_DEFAULT_INFLIGHT; max 65535 */
  const cbev_logger *logger;   /* may be NULL; must outlive the handle */
} cb2m_mqtt_opts;

typedef struct cb2m_mqtt_cbs {
  void (*on_connect)(void *ud);    /* CONNACK success; subscriptions resent */
  void (*on_disconnect)(void *ud); /* an established connection was lost */
  void (*on_ack)(void *ud, int mid, int reason); /* reason >= 0x80: refused */
  /* payload is only valid during the call; it is not NUL-terminated. */
  void (*on_message)(void *ud, const char *topic, const void *payload, size_t len);
  void *ud;
} cb2m_mqtt_cbs;

/* libmosquitto's own default is 20, which ties QoS 1 throughput to
 * 20 / round-trip time; 256 allows 12 times that. Far more is slower: on
 * every ack libmosquitto 2.0 walks its message list up to the first one
 * still waiting for a slot, i.e. past every message in flight
 * (bench/bench_bridge_mqtt.c, loopback, 10000 queued: 20..1000 in flight
 * all give 60-100k msgs/s, 65535 gives 15-25k). The bridge hands at most
 * this many events to the client at once (its mid map counts them), so
 * the window is written here only. */
#define CB2M_MQTT_DEFAULT_INFLIGHT 256u
/* The reconnect backoff: attempt n waits
 * cbev_backoff_ms(initial, CB2M_MQTT_BACKOFF_FACTOR, max, n, ...)
 * (cbevents/backoff.h: doubled per failure, capped, jittered into
 * [d/2, d]); these are initial and max when the options leave them 0. */
#define CB2M_MQTT_BACKOFF_INITIAL_MS 1000u
#define CB2M_MQTT_BACKOFF_MAX_MS 60000u
#define CB2M_MQTT_BACKOFF_FACTOR 2.0
/* Most topics cb2m_mqtt_subscribe() remembers. */
#define CB2M_MQTT_MAX_SUBS 16
/* Most acks held between a publish and the next service() call; beyond it
 * cb2m_mqtt_publish() answers CBEV_EAGAIN until service() ran. */
#define CB2M_MQTT_MAX_HELD_ACKS 65536
/* How long a connection attempt may take until CONNACK. */
#define CB2M_MQTT_CONNECT_TIMEOUT_MS 30000

/* Creates the client; copies opts (every string) and cbs (cbs may be NULL).
 * Nothing connects until the first cb2m_mqtt_service(), which connects at
 * once. The settings are checked by building one libmosquitto instance
 * (TLS files must be readable). mosquitto_lib_init() must have been called.
 * Returns CBEV_OK, CBEV_EINVAL (bad setting, logged) or CBEV_ENOMEM. */
int cb2m_mqtt_new(const cb2m_mqtt_opts *opts, const cb2m_mqtt_cbs *cbs, cb2m_mqtt **out);

/* Frees the client. An open connection is closed WITHOUT a DISCONNECT, so
 * the broker publishes the Last Will; call cb2m_mqtt_shutdown() first for
 * a clean stop. NULL is accepted. */
void cb2m_mqtt_free(cb2m_mqtt *m);

/* The socket to poll, or -1 when there is none (waiting to reconnect). It
 * changes across reconnects: ask again before every poll(). */
int cb2m_mqtt_fd(const cb2m_mqtt *m);

/* POLLIN, plus POLLOUT when data waits to be written; 0 without a socket. */
short cb2m_mqtt_poll_events(const cb2m_mqtt *m);

/* Reads, writes and keeps the connection alive according to revents (the
 * poll() result for cb2m_mqtt_fd(), 0 when called on a timeout); starts a
 * connection attempt when one is due; notices a lost connection and
 * schedules the next attempt (capped exponential backoff with jitter,
 * logged once at warn). Never blocks, except for the name lookup of the
 * broker host at each attempt. */
void cb2m_mqtt_service(cb2m_mqtt *m, short revents, uint64_t now_ms);

/* The latest time cb2m_mqtt_service() must be called again (now_ms when it
 * has work right away); UINT64_MAX after cb2m_mqtt_shutdown(). */
uint64_t cb2m_mqtt_next_ms(const cb2m_mqtt *m, uint64_t now_ms);

/* 1 between on_connect() and the loss of that connection, else 0. */
int cb2m_mqtt_connected(const cb2m_mqtt *m);

/* 1 while earlier packets wait for the socket to take them (it was full):
 * a publish now would only queue behind them and retry the write for
 * nothing. Event publishing waits for service() to drain them. */
int cb2m_mqtt_backlogged(const cb2m_mqtt *m);

/* Publishes len bytes of payload to topic. *mid (mid may be NULL) gets the
 * message id that on_ack() will report. Returns CBEV_OK; CBEV_EAGAIN when
 * not connected (or the connection broke during the call, or too many acks
 * are held): nothing was sent, publish again after on_connect() or
 * service(); CBEV_EINVAL for a bad topic or qos; CBEV_ETOOBIG for a payload
 * the protocol or broker refuses; CBEV_ENOMEM. */
int cb2m_mqtt_publish(cb2m_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                      int retain, int *mid);

/* Subscribes to topic (a filter) now if connected, and again after every
 * reconnect; subscribing to a remembered filter updates its qos. Messages
 * arrive through on_message(). Returns CBEV_OK (remembered, and sent when
 * connected), CBEV_EINVAL (bad filter or qos), CBEV_ETOOBIG (more than
 * CB2M_MQTT_MAX_SUBS filters) or CBEV_ENOMEM. */
int cb2m_mqtt_subscribe(cb2m_mqtt *m, const char *topic, int qos);

/* Clean stop: keeps servicing the connection until every QoS 1/2 message
 * was acked and everything was written, or until deadline_ms (blocking in
 * poll() meanwhile), then sends DISCONNECT (reason 0: the broker drops the
 * Last Will) and closes. No reconnect happens afterwards and on_disconnect
 * is not called. A client that is not connected is just closed. */
void cb2m_mqtt_shutdown(cb2m_mqtt *m, uint64_t deadline_ms);

/* How many times a connection was established again after one was lost. */
unsigned cb2m_mqtt_reconnects(const cb2m_mqtt *m);

/* The protocol actually used by the next/current connection: 5 or 311. */
int cb2m_mqtt_protocol(const cb2m_mqtt *m);

/* Exposed for tests. */

/* 1 when a CONNACK with code connack_rc, for a CONNECT made with protocol
 * (5 or 311), means the broker does not speak MQTT v5 and 3.1.1 must be
 * tried; else 0. */
int cb2m_mqtt_should_fallback(int protocol, int connack_rc);

#endif

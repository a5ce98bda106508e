/*
 * test_bridge_mqtt.c: the MQTT glue against a real mosquitto broker.
 *
 * Each test group starts /usr/sbin/mosquitto on a free loopback port with a
 * temporary config, drives the clients exactly as the bridge does (poll on
 * cb2m_mqtt_fd(), service() only on events or at next_ms) and checks what
 * the broker and other clients see: acks (refusals through an ACL),
 * retained messages read back by mosquitto_sub, the Last Will, reconnects
 * after a broker restart or a late broker, TLS with a throwaway CA, and
 * the protocol used (from the broker's log). The MQTT v5 ->
 * 3.1.1 fallback is tested against a tiny fake broker that answers a v5
 * CONNECT the way a 3.1.1-only broker does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cbevents/backoff.h"
#include "cbevents/error.h"
#include "cbevents/transport.h"
#include "mqtt.h"

#define MAX_ACKS 64
#define LOG_CAP 65536

/* --- what the callbacks saw --------------------------------------------- */

typedef struct tctx {
  int connects, disconnects;
  int n_acks;
  int ack_mid[MAX_ACKS], ack_ok[MAX_ACKS];
  int n_msgs;
  char last_topic[256];
  char last_payload[256];
  int publish_in_ack; /* re-publish from inside on_ack once */
  cb2m_mqtt *self;
} tctx;

static void t_on_connect(void *ud) { ((tctx *)ud)->connects++; }
static void t_on_disconnect(void *ud) { ((tctx *)ud)->disconnects++; }
static void t_on_ack(void *ud, int mid, int reason) {
  tctx *t = ud;
  if (t->n_acks < MAX_ACKS) {
    t->ack_mid[t->n_acks] = mid;
    t->ack_ok[t->n_acks] = reason < 0x80;
  }
  t->n_acks++;
  if (t->publish_in_ack) {
    t->publish_in_ack = 0;
    assert_int_equal(cb2m_mqtt_publish(t->self, "t/from_ack", "x", 1, 1, 0, NULL), CBEV_OK);
  }
}
static void t_on_message(void *ud, const char *topic, const void *payload, size_t len) {
  tctx *t = ud;
  t->n_msgs++;
  snprintf(t->last_topic, sizeof t->last_topic, "%s", topic);
  if (len >= sizeof t->last_payload)
    len = sizeof t->last_payload - 1;
  memcpy(t->last_payload, payload, len);
  t->last_payload[len] = '\0';
}

static int acked(const tctx *t, int mid, int *ok) {
  for (int i = 0; i < t->n_acks && i < MAX_ACKS; i++) {
    if (t->ack_mid[i] == mid) {
      if (ok)
        *ok = t->ack_ok[i];
      return 1;
    }
  }
  return 0;
}

/* Every log line of every client, to check wording and secrets. */
static char g_log[LOG_CAP];
static size_t g_log_len;

static void t_log(void *ud, cbev_log_level level, const char *msg) {
  int n;
  (void)ud;
  n = snprintf(g_log + g_log_len, sizeof g_log - g_log_len, "[%s] %s\n", cbev_log_level_name(level),
               msg);
  if (n > 0 && g_log_len + (size_t)n < sizeof g_log)
    g_log_len += (size_t)n;
}
static const cbev_logger g_logger = {t_log, NULL, CBEV_LOG_DEBUG};

static void log_reset(void) {
  g_log_len = 0;
  g_log[0] = '\0';
}

/* --- the broker --------------------------------------------------------- */

typedef struct broker {
  char dir[64];
  char conf[128];
  char log[128];
  int port;
  int tls_port; /* 0: no TLS listener */
  pid_t pid;
} broker;

static broker g_broker;

static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static int port_open(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

static void broker_start(broker *b) {
  char path[160];
  FILE *f;
  struct passwd *pw = getpwuid(geteuid());

  f = fopen(b->conf, "w");
  assert_non_null(f);
  fprintf(f,
          "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
          "log_dest file %s\nlog_type all\nuser %s\nacl_file %s/acl\n",
          b->port, b->log, pw ? pw->pw_name : "root", b->dir);
  if (b->tls_port)
    fprintf(f,
            "listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/server.crt\n"
            "keyfile %s/server.key\n",
            b->tls_port, b->dir, b->dir, b->dir);
  fclose(f);
  /* Everything is allowed but denied/#, for every user (pattern) and
   * anonymous clients: a v5 client gets PUBACK 0x87 there. */
  snprintf(path, sizeof path, "%s/acl", b->dir);
  f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "pattern readwrite #\npattern deny denied/#\n");
  fclose(f);
  b->pid = fork();
  assert_true(b->pid >= 0);
  if (b->pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    execl("/usr/sbin/mosquitto", "mosquitto", "-c", b->conf, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500 && !(port_open(b->port) && (!b->tls_port || port_open(b->tls_port))); i++)
    usleep(10000);
  assert_true(port_open(b->port));
}

static void broker_stop(broker *b, int sig) {
  if (b->pid <= 0)
    return;
  kill(b->pid, sig);
  waitpid(b->pid, NULL, 0);
  b->pid = -1;
}

/* A throwaway CA and a server certificate for 127.0.0.1 (EC keys: fast). */
static int make_certs(const char *dir) {
  char cmd[2048];

  snprintf(cmd, sizeof cmd,
           "(cd %s && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-days 2 -subj '/CN=cb2m test CA' -keyout ca.key -out ca.crt && "
           "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-subj '/CN=127.0.0.1' -keyout server.key -out server.csr && "
           "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
           "-days 2 -extfile san.ext -out server.crt) >/dev/null 2>&1",
           dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void remove_certs(const char *dir) {
  static const char *const files[] = {"acl",    "san.ext",    "ca.key",     "ca.crt",
                                      "ca.srl", "server.key", "server.csr", "server.crt"};
  char path[160];

  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
}

static int group_setup(void **state) {
  (void)state;
  mosquitto_lib_init();
  snprintf(g_broker.dir, sizeof g_broker.dir, "/tmp/cb2m_mqtt_test_XXXXXX");
  if (!mkdtemp(g_broker.dir))
    return -1;
  chmod(g_broker.dir, 0755);
  snprintf(g_broker.conf, sizeof g_broker.conf, "%s/mosquitto.conf", g_broker.dir);
  snprintf(g_broker.log, sizeof g_broker.log, "%s/mosquitto.log", g_broker.dir);
  g_broker.port = free_port();
  g_broker.tls_port = free_port();
  if (g_broker.port <= 0 || g_broker.tls_port <= 0 || g_broker.port == g_broker.tls_port)
    return -1;
  if (make_certs(g_broker.dir) != 0)
    return -1;
  broker_start(&g_broker);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  broker_stop(&g_broker, SIGTERM);
  unlink(g_broker.conf);
  unlink(g_broker.log);
  remove_certs(g_broker.dir);
  rmdir(g_broker.dir);
  mosquitto_lib_cleanup();
  return 0;
}

/* --- a fake broker that only speaks MQTT 3.1.1 -------------------------- */

typedef struct fake_srv {
  int lfd;
  int cfd;
  int port;
  unsigned char buf[512];
  size_t len;
  int levels[8]; /* protocol level of each CONNECT received */
  int n_connects;
} fake_srv;

static void fake_start(fake_srv *s) {
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  int one = 1;

  memset(s, 0, sizeof *s);
  s->cfd = -1;
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s->lfd >= 0);
  setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s->lfd, 4), 0);
  assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
  s->port = ntohs(a.sin_port);
  fcntl(s->lfd, F_SETFL, O_NONBLOCK);
}

/* Non-blocking step: accept, read one CONNECT, answer like mosquitto 1.4
 * (3.1.1 only) would: a v3 CONNACK "unacceptable protocol version" to a v5
 * CONNECT and a close; "accepted" to a 3.1.1 CONNECT. */
static void fake_step(fake_srv *s) {
  ssize_t n;

  if (s->cfd < 0) {
    s->cfd = accept(s->lfd, NULL, NULL);
    if (s->cfd < 0)
      return;
    fcntl(s->cfd, F_SETFL, O_NONBLOCK);
    s->len = 0;
  }
  if (s->len == (size_t)-1)
    return; /* CONNECT answered; keep the connection */
  n = read(s->cfd, s->buf + s->len, sizeof s->buf - s->len);
  if (n > 0)
    s->len += (size_t)n;
  /* 0x10, remaining length (1 byte for our small CONNECTs), 00 04 "MQTT", level */
  if (s->len >= 9 && s->buf[0] == 0x10) {
    int level = s->buf[8];
    if (s->n_connects < 8)
      s->levels[s->n_connects] = level;
    s->n_connects++;
    if (level == 5) {
      static const unsigned char refuse[] = {0x20, 0x02, 0x00, 0x01};
      assert_int_equal(write(s->cfd, refuse, sizeof refuse), (ssize_t)sizeof refuse);
      close(s->cfd);
      s->cfd = -1;
    } else {
      static const unsigned char accept_[] = {0x20, 0x02, 0x00, 0x00};
      assert_int_equal(write(s->cfd, accept_, sizeof accept_), (ssize_t)sizeof accept_);
      s->len = (size_t)-1;
    }
  }
}

static void fake_stop(fake_srv *s) {
  if (s->cfd >= 0)
    close(s->cfd);
  close(s->lfd);
}

/* --- driving clients like the bridge does ------------------------------- */

typedef int (*pred_fn)(void *arg);

/* Polls the clients, calling service() only when poll reports an event or
 * next_ms is reached, until pred(arg) is true (returns 1) or timeout_ms
 * passed (returns 0). */
static int pump(cb2m_mqtt **cl, size_t n, pred_fn pred, void *arg, uint64_t timeout_ms,
                fake_srv *srv) {
  uint64_t deadline = cbev_now_ms() + timeout_ms;

  for (;;) {
    struct pollfd pfd[8];
    uint64_t now = cbev_now_ms(), next = now + 50;
    int wait;

    if (pred && pred(arg))
      return 1;
    if (now >= deadline)
      return 0;
    for (size_t i = 0; i < n; i++) {
      uint64_t nx = cb2m_mqtt_next_ms(cl[i], now);
      pfd[i].fd = cb2m_mqtt_fd(cl[i]);
      pfd[i].events = cb2m_mqtt_poll_events(cl[i]);
      pfd[i].revents = 0;
      if (nx < next)
        next = nx;
    }
    if (srv)
      next = now + 5 < next ? now + 5 : next;
    wait = next > now ? (int)(next - now) : 0;
    poll(pfd, (nfds_t)n, wait);
    now = cbev_now_ms();
    for (size_t i = 0; i < n; i++)
      if (pfd[i].revents || now >= cb2m_mqtt_next_ms(cl[i], now))
        cb2m_mqtt_service(cl[i], pfd[i].revents, now);
    if (srv)
      fake_step(srv);
  }
}

static int pred_connected(void *arg) {
  return ((tctx *)arg)->connects > 0 && cb2m_mqtt_connected(((tctx *)arg)->self);
}

typedef struct count_wait {
  const int *counter;
  int want;
} count_wait;

static int pred_count(void *arg) {
  count_wait *w = arg;
  return *w->counter >= w->want;
}

static void wait_count(cb2m_mqtt **cl, size_t n, const int *counter, int want, uint64_t ms) {
  count_wait w = {counter, want};
  assert_true(pump(cl, n, pred_count, &w, ms, NULL));
}

static cb2m_mqtt_opts base_opts(int port, const char *client_id) {
  cb2m_mqtt_opts o;

  memset(&o, 0, sizeof o);
  o.host = "127.0.0.1";
  o.port = port;
  o.client_id = client_id;
  o.keepalive_s = 10;
  o.backoff_initial_ms = 100;
  o.backoff_max_ms = 400;
  o.logger = &g_logger;
  return o;
}

static cb2m_mqtt *make_client(const cb2m_mqtt_opts *o, tctx *t) {
  cb2m_mqtt_cbs cbs = {t_on_connect, t_on_disconnect, t_on_ack, t_on_message, t};
  cb2m_mqtt *m = NULL;

  memset(t, 0, sizeof *t);
  assert_int_equal(cb2m_mqtt_new(o, &cbs, &m), CBEV_OK);
  assert_non_null(m);
  t->self = m;
  return m;
}

static cb2m_mqtt *connect_client(const cb2m_mqtt_opts *o, tctx *t) {
  cb2m_mqtt *m = make_client(o, t);
  assert_true(pump(&m, 1, pred_connected, t, 5000, NULL));
  return m;
}

/* --- pure functions ----------------------------------------------------- */

/* The reconnect delay after failure n: the library's one backoff with the
 * MQTT client's defaults (mqtt.c calls exactly this). A NULL generator
 * draws 0, the low end d/2 of the jitter. */
static uint64_t mqtt_backoff(unsigned failures, uint64_t *rng) {
  return cbev_backoff_ms(CB2M_MQTT_BACKOFF_INITIAL_MS, CB2M_MQTT_BACKOFF_FACTOR,
                         CB2M_MQTT_BACKOFF_MAX_MS, failures, rng);
}

/* The top of the jitter of failure n: the longest of many draws (with
 * 1,000,000 of them, each of up to 30001 values is hit). */
static uint64_t mqtt_backoff_top(unsigned failures) {
  uint64_t rng = 1, top = 0;

  for (int i = 0; i < 1000000; i++) {
    uint64_t d = mqtt_backoff(failures, &rng);
    if (d > top)
      top = d;
  }
  return top;
}

static void test_backoff(void **state) {
  uint64_t rng = 7;

  (void)state;
  /* rnd 0 gives the low end d/2, the top of the jitter d. */
  assert_int_equal(mqtt_backoff(1, NULL), 500);
  assert_int_equal(mqtt_backoff_top(1), 1000);
  assert_int_equal(mqtt_backoff(2, NULL), 1000);
  assert_int_equal(mqtt_backoff_top(2), 2000);
  assert_int_equal(mqtt_backoff(3, NULL), 2000);
  /* 1,2,4,8,16,32,64 -> capped at 60 s */
  assert_int_equal(mqtt_backoff_top(7), 60000);
  assert_int_equal(mqtt_backoff(7, NULL), 30000);
  assert_int_equal(mqtt_backoff(1000, NULL), 30000);
  /* Any draw stays in [d/2, d]. */
  for (int r = 0; r < 26; r++) {
    uint64_t d = mqtt_backoff(4, &rng);
    assert_true(d >= 4000 && d <= 8000);
  }
}

static void test_should_fallback(void **state) {
  (void)state;
  assert_int_equal(cb2m_mqtt_should_fallback(5, 132), 1); /* v5 reason 0x84 */
  assert_int_equal(cb2m_mqtt_should_fallback(5, 1), 1);   /* v3 "unacceptable protocol" */
  assert_int_equal(cb2m_mqtt_should_fallback(311, 132), 0);
  assert_int_equal(cb2m_mqtt_should_fallback(311, 1), 0);
  assert_int_equal(cb2m_mqtt_should_fallback(5, 0), 0);
  assert_int_equal(cb2m_mqtt_should_fallback(5, 135), 0); /* not authorized */
  assert_int_equal(cb2m_mqtt_should_fallback(5, 5), 0);
}

static void test_new_rejects_bad_settings(void **state) {
  cb2m_mqtt_opts o = base_opts(1883, "x");
  cb2m_mqtt *m = (cb2m_mqtt *)&o;

  (void)state;
  o.host = NULL;
  assert_int_equal(cb2m_mqtt_new(&o, NULL, &m), CBEV_EINVAL);
  assert_null(m);
  o = base_opts(1883, "x");
  o.protocol = 4;
  assert_int_equal(cb2m_mqtt_new(&o, NULL, &m), CBEV_EINVAL);
  o = base_opts(1883, "x");
  o.will_topic = "a/#"; /* wildcards are not allowed in a will topic */
  assert_int_equal(cb2m_mqtt_new(&o, NULL, &m), CBEV_EINVAL);
  o = base_opts(1883, "x");
  o.tls = true;
  o.ca_file = "/nonexistent/ca.pem";
  assert_int_equal(cb2m_mqtt_new(&o, NULL, &m), CBEV_EINVAL);
  o = base_opts(1883, "x");
  o.tls = true;
  o.cert_file = "/etc/hostname"; /* without key_file */
  assert_int_equal(cb2m_mqtt_new(&o, NULL, &m), CBEV_EINVAL);
  /* Defaults: port 8883 for TLS with the system CA directory; no socket
   * and nothing to do before the first service(). */
  o = base_opts(0, "x");
  o.tls = true;
  assert_int_equal(cb2m_mqtt_new(&o, NULL, &m), CBEV_OK);
  assert_int_equal(cb2m_mqtt_fd(m), -1);
  assert_int_equal(cb2m_mqtt_connected(m), 0);
  assert_int_equal(cb2m_mqtt_protocol(m), 5);
  assert_int_equal(cb2m_mqtt_publish(m, "a", "b", 1, 0, 0, NULL), CBEV_EAGAIN);
  cb2m_mqtt_free(m);
  cb2m_mqtt_free(NULL);
}

/* --- against the real broker -------------------------------------------- */

static void test_publish_qos_acks(void **state) {
  cb2m_mqtt_opts o = base_opts(g_broker.port, "cb2m-test-acks");
  tctx t;
  cb2m_mqtt *m;
  int mid0 = -1, mid1 = -1, mid2 = -1, ok = -1;
  uint64_t now;

  (void)state;
  log_reset();
  o.username = "bridge";
  o.password = "s3cret-pw-XYZ";
  m = make_client(&o, &t);
  assert_int_equal(cb2m_mqtt_publish(m, "t/q", "x", 1, 1, 0, &mid1), CBEV_EAGAIN);
  assert_true(pump(&m, 1, pred_connected, &t, 5000, NULL));
  assert_int_equal(cb2m_mqtt_reconnects(m), 0);
  assert_int_equal(cb2m_mqtt_protocol(m), 5);
  assert_true(cb2m_mqtt_fd(m) >= 0);
  assert_true(cb2m_mqtt_poll_events(m) & POLLIN);
  now = cbev_now_ms();
  assert_true(cb2m_mqtt_next_ms(m, now) > now);
  assert_true(cb2m_mqtt_next_ms(m, now) <= now + 1000);

  /* QoS 0: written at once, but the ack waits for service(). */
  assert_int_equal(cb2m_mqtt_publish(m, "t/q0", "zero", 4, 0, 0, &mid0), CBEV_OK);
  assert_int_equal(t.n_acks, 0);
  now = cbev_now_ms();
  assert_int_equal(cb2m_mqtt_next_ms(m, now), now);
  assert_int_equal(cb2m_mqtt_publish(m, "t/q1", "one", 3, 1, 0, &mid1), CBEV_OK);
  assert_int_equal(cb2m_mqtt_publish(m, "t/q2", "two", 3, 2, 0, &mid2), CBEV_OK);
  assert_true(mid0 != mid1 && mid1 != mid2 && mid0 != mid2);
  wait_count(&m, 1, &t.n_acks, 3, 5000);
  assert_true(acked(&t, mid0, &ok));
  assert_int_equal(ok, 1);
  assert_true(acked(&t, mid1, &ok));
  assert_int_equal(ok, 1);
  assert_true(acked(&t, mid2, &ok));
  assert_int_equal(ok, 1);
  assert_int_equal(t.n_acks, 3); /* one ack each, no more */

  /* The broker refuses: ok = 0 (v5 reason code >= 0x80), for QoS 1 and 2. */
  assert_int_equal(cb2m_mqtt_publish(m, "denied/x", "no", 2, 1, 0, &mid1), CBEV_OK);
  assert_int_equal(cb2m_mqtt_publish(m, "denied/y", "no", 2, 2, 0, &mid2), CBEV_OK);
  wait_count(&m, 1, &t.n_acks, 5, 5000);
  assert_true(acked(&t, mid1, &ok));
  assert_int_equal(ok, 0);
  assert_true(acked(&t, mid2, &ok));
  assert_int_equal(ok, 0);

  /* Publishing from inside on_ack works (queued, then written). */
  t.publish_in_ack = 1;
  assert_int_equal(cb2m_mqtt_publish(m, "t/q1", "again", 5, 1, 0, NULL), CBEV_OK);
  wait_count(&m, 1, &t.n_acks, 7, 5000);

  /* Bad arguments. */
  assert_int_equal(cb2m_mqtt_publish(m, "t/#", "x", 1, 1, 0, NULL), CBEV_EINVAL);
  assert_int_equal(cb2m_mqtt_publish(m, "t/x", "x", 1, 3, 0, NULL), CBEV_EINVAL);
  assert_int_equal(cb2m_mqtt_publish(m, NULL, "x", 1, 1, 0, NULL), CBEV_EINVAL);

  cb2m_mqtt_shutdown(m, cbev_now_ms() + 2000);
  assert_int_equal(cb2m_mqtt_connected(m), 0);
  assert_int_equal(cb2m_mqtt_fd(m), -1);
  assert_true(cb2m_mqtt_next_ms(m, 5) == UINT64_MAX);
  assert_int_equal(cb2m_mqtt_publish(m, "t/q", "x", 1, 1, 0, NULL), CBEV_EAGAIN);
  assert_int_equal(t.disconnects, 0);
  cb2m_mqtt_free(m);
  assert_non_null(strstr(g_log, "mqtt: connected to 127.0.0.1:"));
  assert_non_null(strstr(g_log, "libmosquitto:")); /* debug lines were captured */
  assert_null(strstr(g_log, "s3cret-pw-XYZ"));
}

static void test_retained_seen_by_mosquitto_sub(void **state) {
  cb2m_mqtt_opts o = base_opts(g_broker.port, "cb2m-test-retain");
  tctx t;
  cb2m_mqtt *m;
  char cmd[256], line[256] = "";
  int mid = -1;
  FILE *p;

  (void)state;
  m = connect_client(&o, &t);
  assert_int_equal(cb2m_mqtt_publish(m, "cb/bridge/status", "online", 6, 1, 1, &mid), CBEV_OK);
  wait_count(&m, 1, &t.n_acks, 1, 5000);
  assert_true(acked(&t, mid, NULL));
  snprintf(cmd, sizeof cmd, "mosquitto_sub -h 127.0.0.1 -p %d -t cb/bridge/status -C 1 -W 5 2>&1",
           g_broker.port);
  p = popen(cmd, "r");
  assert_non_null(p);
  assert_non_null(fgets(line, sizeof line, p));
  assert_int_equal(pclose(p), 0);
  assert_string_equal(line, "online\n");
  cb2m_mqtt_shutdown(m, cbev_now_ms() + 2000);
  cb2m_mqtt_free(m);
}

static void test_subscribe_and_will(void **state) {
  cb2m_mqtt_opts so = base_opts(g_broker.port, "cb2m-test-sub");
  cb2m_mqtt_opts wo = base_opts(g_broker.port, "cb2m-test-will");
  tctx st, wt;
  cb2m_mqtt *cl[2];
  int before;

  (void)state;
  /* Subscribed before connecting: sent on connect. */
  cl[0] = make_client(&so, &st);
  assert_int_equal(cb2m_mqtt_subscribe(cl[0], "w/#", 1), CBEV_OK);
  assert_int_equal(cb2m_mqtt_subscribe(cl[0], "w/#", 0), CBEV_OK); /* same filter: updated */
  assert_int_equal(cb2m_mqtt_subscribe(cl[0], "bad/#/x", 0), CBEV_EINVAL);
  assert_true(pump(&cl[0], 1, pred_connected, &st, 5000, NULL));

  wo.will_topic = "w/status";
  wo.will_payload = "offline";
  wo.will_qos = 1;
  cl[1] = connect_client(&wo, &wt);
  /* Give the SUBACK time, then check on_message with a normal publish. */
  usleep(100000);
  pump(cl, 2, NULL, NULL, 100, NULL);
  assert_int_equal(cb2m_mqtt_publish(cl[1], "w/hello", "hi", 2, 1, 0, NULL), CBEV_OK);
  wait_count(cl, 2, &st.n_msgs, 1, 5000);
  assert_string_equal(st.last_topic, "w/hello");
  assert_string_equal(st.last_payload, "hi");

  /* Vanish without DISCONNECT: the broker publishes the Will. */
  before = st.n_msgs;
  cb2m_mqtt_free(cl[1]);
  wait_count(cl, 1, &st.n_msgs, before + 1, 5000);
  assert_string_equal(st.last_topic, "w/status");
  assert_string_equal(st.last_payload, "offline");

  /* A clean shutdown: the Will is not published, the QoS 1 message sent
   * just before is acked during the shutdown and delivered. */
  cl[1] = connect_client(&wo, &wt);
  before = st.n_msgs;
  assert_int_equal(cb2m_mqtt_publish(cl[1], "w/last", "bye", 3, 1, 0, NULL), CBEV_OK);
  cb2m_mqtt_shutdown(cl[1], cbev_now_ms() + 2000);
  assert_int_equal(wt.n_acks, 1);
  wait_count(cl, 1, &st.n_msgs, before + 1, 5000);
  assert_string_equal(st.last_topic, "w/last");
  pump(cl, 1, NULL, NULL, 500, NULL);
  assert_int_equal(st.n_msgs, before + 1); /* no Will after it */
  cb2m_mqtt_free(cl[1]);
  cb2m_mqtt_shutdown(cl[0], cbev_now_ms() + 1000);
  cb2m_mqtt_free(cl[0]);
}

static void test_broker_restart(void **state) {
  cb2m_mqtt_opts o = base_opts(g_broker.port, "cb2m-test-restart");
  tctx t;
  cb2m_mqtt *m;
  int mid = -1, acks_before;
  uint64_t now;

  (void)state;
  log_reset();
  m = connect_client(&o, &t);
  assert_int_equal(cb2m_mqtt_subscribe(m, "r/#", 1), CBEV_OK);

  /* A message in flight when the broker dies is forgotten: the broker is
   * frozen so it cannot ack, then killed. */
  kill(g_broker.pid, SIGSTOP);
  assert_int_equal(cb2m_mqtt_publish(m, "r/inflight", "x", 1, 1, 0, &mid), CBEV_OK);
  acks_before = t.n_acks;
  broker_stop(&g_broker, SIGKILL);
  wait_count(&m, 1, &t.disconnects, 1, 5000);
  assert_int_equal(cb2m_mqtt_connected(m), 0);
  assert_int_equal(cb2m_mqtt_publish(m, "r/x", "x", 1, 1, 0, NULL), CBEV_EAGAIN);

  /* Down: attempts are spaced out, never a busy loop. */
  pump(&m, 1, NULL, NULL, 600, NULL);
  now = cbev_now_ms();
  assert_int_equal(cb2m_mqtt_fd(m), -1);
  assert_true(cb2m_mqtt_next_ms(m, now) > now);
  assert_non_null(strstr(g_log, "[warn] mqtt: connection to 127.0.0.1:"));
  assert_non_null(strstr(g_log, "reconnecting in"));
  assert_non_null(strstr(g_log, "[warn] mqtt: cannot connect to 127.0.0.1:"));

  broker_start(&g_broker);
  wait_count(&m, 1, &t.connects, 2, 5000);
  assert_int_equal(cb2m_mqtt_connected(m), 1);
  assert_int_equal(cb2m_mqtt_reconnects(m), 1);
  /* Nothing late from the old connection. */
  pump(&m, 1, NULL, NULL, 300, NULL);
  assert_int_equal(t.n_acks, acks_before);
  /* Publishing works again, and the subscription was renewed. */
  assert_int_equal(cb2m_mqtt_publish(m, "r/again", "back", 4, 1, 0, &mid), CBEV_OK);
  wait_count(&m, 1, &t.n_acks, acks_before + 1, 5000);
  assert_true(acked(&t, mid, NULL));
  wait_count(&m, 1, &t.n_msgs, 1, 5000);
  assert_string_equal(t.last_topic, "r/again");
  cb2m_mqtt_shutdown(m, cbev_now_ms() + 2000);
  cb2m_mqtt_free(m);
}

static void test_broker_absent_at_start(void **state) {
  int port = free_port();
  cb2m_mqtt_opts o = base_opts(port, "cb2m-test-late");
  broker late;
  tctx t;
  cb2m_mqtt *m;
  uint64_t now;
  size_t warns = 0;

  (void)state;
  log_reset();
  m = make_client(&o, &t);
  pump(&m, 1, NULL, NULL, 800, NULL);
  assert_int_equal(t.connects, 0);
  for (const char *p = g_log; (p = strstr(p, "mqtt: cannot connect to")) != NULL; p++)
    warns++;
  /* 100 ms doubling to 400 ms with jitter in [d/2, d]: a few attempts in
   * 0.8 s, not hundreds. */
  assert_true(warns >= 2 && warns <= 12);
  now = cbev_now_ms();
  assert_true(cb2m_mqtt_next_ms(m, now) > now);

  memset(&late, 0, sizeof late);
  snprintf(late.conf, sizeof late.conf, "%s/late.conf", g_broker.dir);
  snprintf(late.log, sizeof late.log, "%s/late.log", g_broker.dir);
  late.port = port;
  broker_start(&late);
  assert_true(pump(&m, 1, pred_connected, &t, 5000, NULL));
  assert_int_equal(cb2m_mqtt_reconnects(m), 0); /* first connection */
  cb2m_mqtt_shutdown(m, cbev_now_ms() + 2000);
  cb2m_mqtt_free(m);
  broker_stop(&late, SIGTERM);
  unlink(late.conf);
  unlink(late.log);
}

static void test_protocol_311(void **state) {
  cb2m_mqtt_opts o = base_opts(g_broker.port, "cb2m-test-311");
  tctx t;
  cb2m_mqtt *m;
  char line[512];
  int mid = -1, seen_p2 = 0;
  FILE *f;

  (void)state;
  o.protocol = 311;
  m = connect_client(&o, &t);
  assert_int_equal(cb2m_mqtt_protocol(m), 311);
  assert_int_equal(cb2m_mqtt_publish(m, "p/311", "x", 1, 1, 0, &mid), CBEV_OK);
  wait_count(&m, 1, &t.n_acks, 1, 5000);
  assert_true(acked(&t, mid, NULL));
  cb2m_mqtt_shutdown(m, cbev_now_ms() + 2000);
  cb2m_mqtt_free(m);
  /* The broker logs "... as cb2m-test-311 (p2, c1, k10)": p2 is 3.1.1. */
  f = fopen(g_broker.log, "r");
  assert_non_null(f);
  while (fgets(line, sizeof line, f))
    if (strstr(line, "as cb2m-test-311 (p2,"))
      seen_p2 = 1;
  fclose(f);
  assert_true(seen_p2);
}

static void test_fallback_to_311(void **state) {
  cb2m_mqtt_opts o;
  fake_srv srv;
  tctx t;
  cb2m_mqtt *m;
  uint64_t t0;

  (void)state;
  log_reset();
  fake_start(&srv);
  o = base_opts(srv.port, "cb2m-test-fallback");
  /* A long backoff: the fallback must retry at once, not after it. */
  o.backoff_initial_ms = 10000;
  o.backoff_max_ms = 10000;
  m = make_client(&o, &t);
  t0 = cbev_now_ms();
  assert_true(pump(&m, 1, pred_connected, &t, 3000, &srv));
  assert_true(cbev_now_ms() - t0 < 3000);
  assert_int_equal(srv.n_connects, 2);
  assert_int_equal(srv.levels[0], 5);
  assert_int_equal(srv.levels[1], 4);
  assert_int_equal(cb2m_mqtt_protocol(m), 311);
  assert_int_equal(t.disconnects, 0); /* the refused attempt never connected */
  assert_non_null(strstr(g_log, "refused MQTT v5, using MQTT 3.1.1"));
  cb2m_mqtt_free(m);
  fake_stop(&srv);
}

static void test_tls(void **state) {
  cb2m_mqtt_opts o = base_opts(g_broker.tls_port, "cb2m-test-tls");
  char ca[160];
  tctx t;
  cb2m_mqtt *m;
  int mid = -1;
  size_t warns = 0;

  (void)state;
  snprintf(ca, sizeof ca, "%s/ca.crt", g_broker.dir);
  o.tls = true;
  o.ca_file = ca;
  m = connect_client(&o, &t);
  assert_int_equal(cb2m_mqtt_publish(m, "tls/x", "secure", 6, 1, 0, &mid), CBEV_OK);
  wait_count(&m, 1, &t.n_acks, 1, 5000);
  assert_true(acked(&t, mid, NULL));
  cb2m_mqtt_shutdown(m, cbev_now_ms() + 2000);
  cb2m_mqtt_free(m);

  /* The system CAs do not know our test CA: the handshake fails, is
   * retried with backoff, never connects. */
  log_reset();
  o.ca_file = NULL;
  m = make_client(&o, &t);
  pump(&m, 1, NULL, NULL, 700, NULL);
  assert_int_equal(t.connects, 0);
  assert_non_null(strstr(g_log, "[warn] mqtt: cannot connect to 127.0.0.1:"));
  assert_non_null(strstr(g_log, "TLS error"));
  assert_non_null(strstr(g_log, "certificate verify failed")); /* debug, from OpenSSL */
  for (const char *p = g_log; (p = strstr(p, "[warn] mqtt: cannot connect")) != NULL; p++)
    warns++;
  assert_true(warns >= 2 && warns <= 12); /* backoff, not a busy loop */
  cb2m_mqtt_free(m);
}

int main(void) {
  const struct CMUnitTest pure[] = {
      cmocka_unit_test(test_backoff),
      cmocka_unit_test(test_should_fallback),
      cmocka_unit_test(test_new_rejects_bad_settings),
      cmocka_unit_test(test_fallback_to_311),
  };
  const struct CMUnitTest live[] = {
      cmocka_unit_test(test_publish_qos_acks),
      cmocka_unit_test(test_retained_seen_by_mosquitto_sub),
      cmocka_unit_test(test_subscribe_and_will),
      cmocka_unit_test(test_protocol_311),
      cmocka_unit_test(test_tls),
      cmocka_unit_test(test_broker_absent_at_start),
      cmocka_unit_test(test_broker_restart),
  };
  int failed;

  signal(SIGPIPE, SIG_IGN);
  mosquitto_lib_init();
  failed = cmocka_run_group_tests_name("mqtt_offline", pure, NULL, NULL);
  mosquitto_lib_cleanup();
  failed += cmocka_run_group_tests_name("mqtt_broker", live, group_setup, group_teardown);
  return failed;
}

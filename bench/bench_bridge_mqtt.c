/*
 * bench_bridge_mqtt.c: QoS 1 publish throughput of cb2mqtt's MQTT glue,
 * beside `mosquitto_pub -l` doing the same in the same run.
 *
 * Starts /usr/sbin/mosquitto on a free loopback port (default config plus
 * `max_inflight_messages` when given), then times:
 *   1. cb2m_mqtt over MQTT v5 and over 3.1.1: N messages of SIZE bytes at
 *      QoS 1, driven by a poll() loop as the bridge does, from the first
 *      publish to the last PUBACK (at most WINDOW unacked at a time, like
 *      the bridge's bounded queue; CLIENT_INFLIGHT is opts.max_inflight);
 *   2. mosquitto_pub -l -q 1 reading the same N lines from a file.
 * mosquitto_pub gets its input in files of 50000 lines, run one after the
 * other (see CHUNK_LINES). What the broker received is printed beside each
 * rate ($SYS/broker/publish/messages/received, sys_interval 1).
 * Usage: bench_bridge_mqtt [N [SIZE [WINDOW [CLIENT_INFLIGHT [BROKER_INFLIGHT]]]]]
 * Defaults: 100000 500 10000 0 (module default) and the broker's default;
 * a number must be > 0 except CLIENT_INFLIGHT.
 */
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

#include <arpa/inet.h>

#include "cbevents/error.h"
#include "cbevents/transport.h"
#include "mqtt.h"

/* mosquitto_pub -l waits for the ack of the last mid it sent and mids wrap
 * at 65535: past that it disconnects early (with N = 100000 the broker got
 * 34469). So its input is split into files it can finish. */
#define CHUNK_LINES 50000ul

typedef struct bench_state {
  unsigned long acked, failed;
  int connected;
} bench_state;

static void on_connect(void *ud) { ((bench_state *)ud)->connected = 1; }

static void on_ack(void *ud, int mid, int ok) {
  bench_state *b = ud;
  (void)mid;
  if (ok)
    b->acked++;
  else
    b->failed++;
}

static unsigned long parse_ul(const char *s, unsigned long dflt, unsigned long max) {
  char *end;
  unsigned long v;

  if (!s)
    return dflt;
  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno || end == s || *end || v > max) {
    fprintf(stderr, "bench: bad number %s\n", s);
    exit(2);
  }
  return v;
}

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

static pid_t start_broker(const char *conf, int port, unsigned long max_inflight) {
  struct passwd *pw = getpwuid(geteuid());
  FILE *f = fopen(conf, "w");
  pid_t pid;

  if (!f)
    return -1;
  fprintf(f,
          "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nuser %s\n"
          "sys_interval 1\n",
          port, pw ? pw->pw_name : "root");
  if (max_inflight)
    fprintf(f, "max_inflight_messages %lu\n", max_inflight);
  fclose(f);
  pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    execl("/usr/sbin/mosquitto", "mosquitto", "-c", conf, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500 && !port_open(port); i++)
    usleep(10000);
  return port_open(port) ? pid : -1;
}

/* Returns msgs/s, or a negative value on failure. */
/* The broker's count of PUBLISH packets received, 1 s after the last one. */
static unsigned long broker_received(int port) {
  char cmd[256], line[64] = "";
  unsigned long v = 0;
  char *end;
  FILE *p;

  usleep(2200000);
  snprintf(cmd, sizeof cmd,
           "mosquitto_sub -h 127.0.0.1 -p %d -t '$SYS/broker/publish/messages/received' "
           "-C 1 -W 5",
           port);
  p = popen(cmd, "r");
  if (!p)
    return 0;
  if (fgets(line, sizeof line, p)) {
    errno = 0;
    v = strtoul(line, &end, 10);
    if (errno || end == line)
      v = 0;
  }
  pclose(p);
  return v;
}

static double bench_ours(int port, int protocol, unsigned long n, size_t size, unsigned long window,
                         unsigned inflight) {
  cb2m_mqtt_opts o;
  cb2m_mqtt_cbs cbs = {on_connect, NULL, on_ack, NULL, NULL};
  bench_state b = {0, 0, 0};
  cb2m_mqtt *m = NULL;
  char *payload = malloc(size);
  unsigned long sent = 0;
  uint64_t t0 = 0, t1, deadline;
  double rate = -1;

  if (!payload)
    return -1;
  memset(payload, 'x', size);
  memset(&o, 0, sizeof o);
  o.host = "127.0.0.1";
  o.port = port;
  o.protocol = protocol;
  o.client_id = protocol == 5 ? "bench-v5" : "bench-311";
  o.max_inflight = inflight;
  cbs.ud = &b;
  if (cb2m_mqtt_new(&o, &cbs, &m) != CBEV_OK)
    goto out;
  deadline = cbev_now_ms() + 300000;
  while (b.acked + b.failed < n) {
    uint64_t now = cbev_now_ms(), next;
    struct pollfd pfd;

    if (now > deadline)
      goto out;
    if (b.connected && !t0)
      t0 = now;
    while (b.connected && sent < n && sent - (b.acked + b.failed) < window) {
      int rc = cb2m_mqtt_publish(m, "bench/ours", payload, size, 1, 0, NULL);
      if (rc == CBEV_EAGAIN)
        break;
      if (rc != CBEV_OK)
        goto out;
      sent++;
    }
    pfd.fd = cb2m_mqtt_fd(m);
    pfd.events = cb2m_mqtt_poll_events(m);
    pfd.revents = 0;
    next = cb2m_mqtt_next_ms(m, now);
    poll(&pfd, 1, next > now ? (int)(next - now) : 0);
    cb2m_mqtt_service(m, pfd.revents, cbev_now_ms());
  }
  t1 = cbev_now_ms();
  rate = (double)n * 1000.0 / (double)(t1 > t0 ? t1 - t0 : 1);
  if (b.failed)
    fprintf(stderr, "bench: %lu refused by the broker\n", b.failed);
  cb2m_mqtt_shutdown(m, cbev_now_ms() + 2000);
out:
  cb2m_mqtt_free(m);
  free(payload);
  return rate;
}

/* mosquitto_pub -l over the chunk files dir/input.0 .. input.(chunks-1),
 * one process after the other, timed together. */
static double bench_mosquitto_pub(int port, const char *dir, unsigned chunks, unsigned long n) {
  char portstr[16], input[96];
  uint64_t t0, t1;
  int status;
  pid_t pid;

  snprintf(portstr, sizeof portstr, "%d", port);
  t0 = cbev_now_ms();
  for (unsigned c = 0; c < chunks; c++) {
    snprintf(input, sizeof input, "%s/input.%u", dir, c);
    pid = fork();
    if (pid == 0) {
      int in = open(input, O_RDONLY);
      dup2(in, 0);
      execlp("mosquitto_pub", "mosquitto_pub", "-h", "127.0.0.1", "-p", portstr, "-q", "1", "-t",
             "bench/pub", "-l", (char *)NULL);
      _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      return -1;
  }
  t1 = cbev_now_ms();
  return (double)n * 1000.0 / (double)(t1 > t0 ? t1 - t0 : 1);
}

/* Writes n lines of size 'x' into files of at most CHUNK_LINES lines. */
static int write_chunks(const char *dir, unsigned long n, size_t size, unsigned *chunks) {
  char input[96];
  unsigned long left = n;

  *chunks = 0;
  while (left > 0) {
    unsigned long lines = left < CHUNK_LINES ? left : CHUNK_LINES;
    FILE *f;

    snprintf(input, sizeof input, "%s/input.%u", dir, *chunks);
    f = fopen(input, "w");
    if (!f)
      return -1;
    (*chunks)++;
    for (unsigned long i = 0; i < lines; i++) {
      for (size_t j = 0; j < size; j++)
        fputc('x', f);
      fputc('\n', f);
    }
    if (fclose(f) != 0)
      return -1;
    left -= lines;
  }
  return 0;
}

int main(int argc, char **argv) {
  unsigned long n = parse_ul(argc > 1 ? argv[1] : NULL, 100000, 10000000);
  size_t size = parse_ul(argc > 2 ? argv[2] : NULL, 500, 1 << 20);
  unsigned long window = parse_ul(argc > 3 ? argv[3] : NULL, 10000, 1000000);
  unsigned inflight = (unsigned)parse_ul(argc > 4 ? argv[4] : NULL, 0, 65535);
  unsigned long broker_inflight = parse_ul(argc > 5 ? argv[5] : NULL, 0, 65535);
  unsigned long r0, r1, r2, r3;
  char dir[] = "/tmp/cb2m_bench_XXXXXX", conf[64], input[96];
  unsigned chunks = 0;
  double v5, v311, pub;
  int port, status = 1;
  pid_t broker = -1;

  signal(SIGPIPE, SIG_IGN);
  mosquitto_lib_init();
  if (!mkdtemp(dir))
    return 1;
  chmod(dir, 0755);
  snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);
  /* mosquitto_pub -l sends each line without its newline: SIZE bytes. */
  if (write_chunks(dir, n, size, &chunks) != 0)
    goto out;
  port = free_port();
  broker = start_broker(conf, port, broker_inflight);
  if (broker < 0) {
    fprintf(stderr, "bench: cannot start mosquitto\n");
    goto out;
  }
  r0 = broker_received(port);
  v5 = bench_ours(port, 5, n, size, window, inflight);
  r1 = broker_received(port);
  v311 = bench_ours(port, 311, n, size, window, inflight);
  r2 = broker_received(port);
  pub = bench_mosquitto_pub(port, dir, chunks, n);
  r3 = broker_received(port);
  printf("QoS 1, %lu messages of %zu bytes, window %lu, client max_inflight %s, broker "
         "max_inflight_messages %s\n",
         n, size, window, inflight ? argv[4] : "default", broker_inflight ? argv[5] : "default");
  printf("  cb2m_mqtt MQTT v5     : %10.0f msgs/s (broker received %lu)\n", v5, r1 - r0);
  printf("  cb2m_mqtt MQTT 3.1.1  : %10.0f msgs/s (broker received %lu)\n", v311, r2 - r1);
  printf("  mosquitto_pub -l      : %10.0f msgs/s (broker received %lu, %u runs)\n", pub, r3 - r2,
         chunks);
  status = v5 > 0 && v311 > 0 && pub > 0 ? 0 : 1;
out:
  if (broker > 0) {
    kill(broker, SIGTERM);
    waitpid(broker, NULL, 0);
  }
  unlink(conf);
  for (unsigned c = 0; c < chunks; c++) {
    snprintf(input, sizeof input, "%s/input.%u", dir, c);
    unlink(input);
  }
  rmdir(dir);
  mosquitto_lib_cleanup();
  return status;
}

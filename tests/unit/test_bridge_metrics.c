/* Unit tests of metrics.c and metrics_http.c: the exposition text (exact
 * samples, one block per family, escaping, cumulative histogram), promtool's
 * own lint when it is installed, the listen address parser, and the HTTP
 * endpoint over a real loopback socket driven through its epoll fd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "metrics_http.h"

static cb2m_bc_metrics alice, bob;
static cb2m_metrics bridge_m;

static char *render(void) {
  const cb2m_bc_metrics *list[] = {&alice, &bob};
  char *text = NULL;
  size_t len = 0;

  assert_int_equal(cb2m_metrics_render(&bridge_m, list, 2, &text, &len), CBEV_OK);
  assert_non_null(text);
  assert_int_equal(strlen(text), len);
  return text;
}

static void fill(void) {
  memset(&alice, 0, sizeof alice);
  memset(&bob, 0, sizeof bob);
  memset(&bridge_m, 0, sizeof bridge_m);
  alice.name = "alice";
  alice.up = 1;
  alice.broadcasting = 1;
  alice.events_by_type[CBEV_EVENT_TIP] = 3;
  alice.events_by_type[CBEV_EVENT_UNKNOWN] = 1;
  alice.published = 4;
  alice.polls = 10;
  alice.poll_errors[CB2M_POLL_TRANSPORT] = 2;
  alice.tip_tokens = 75;
  alice.queued = 5;
  alice.last_event_unix_ms = 1755376903836ull;
  bob.name = "bob";
  bob.broadcasting = -1;
  bob.publish_refused = 7;
  bridge_m.version = "0.1.0";
  bridge_m.mqtt_connected = 1;
  bridge_m.mqtt_reconnects = 2;
  bridge_m.start_time_s = 1764331200.5;
}

static void want_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
    if ((p == text || p[-1] == '\n') && p[n] == '\n')
      return;
  fail_msg("missing line: %s", line);
}

static void test_samples(void **state) {
  char *t;
  (void)state;
  fill();
  t = render();
  want_line(t, "cb2mqtt_build_info{version=\"0.1.0\"} 1");
  want_line(t, "cb2mqtt_mqtt_connected 1");
  want_line(t, "cb2mqtt_mqtt_reconnects_total 2");
  want_line(t, "cb2mqtt_broadcaster_up{broadcaster=\"alice\"} 1");
  want_line(t, "cb2mqtt_broadcaster_up{broadcaster=\"bob\"} 0");
  want_line(t, "cb2mqtt_broadcasting{broadcaster=\"alice\"} 1");
  assert_null(strstr(t, "cb2mqtt_broadcasting{broadcaster=\"bob\"}")); /* unknown: no sample */
  want_line(t, "cb2mqtt_events_total{broadcaster=\"alice\",event_type=\"tip\"} 3");
  want_line(t, "cb2mqtt_events_total{broadcaster=\"alice\",event_type=\"unknown\"} 1");
  /* Every type is there from the start, so rate() sees the first event. */
  want_line(t, "cb2mqtt_events_total{broadcaster=\"bob\",event_type=\"follow\"} 0");
  want_line(t, "cb2mqtt_events_published_total{broadcaster=\"alice\"} 4");
  want_line(t, "cb2mqtt_polls_total{broadcaster=\"alice\"} 10");
  want_line(t, "cb2mqtt_poll_errors_total{broadcaster=\"alice\",reason=\"transport\"} 2");
  want_line(t, "cb2mqtt_poll_errors_total{broadcaster=\"bob\",reason=\"auth\"} 0");
  want_line(t, "cb2mqtt_queued_events{broadcaster=\"alice\"} 5");
  want_line(t, "cb2mqtt_publish_refused_total{broadcaster=\"bob\"} 7");
  want_line(t, "cb2mqtt_tip_tokens_total{broadcaster=\"alice\"} 75");
  want_line(t, "cb2mqtt_last_event_timestamp_seconds{broadcaster=\"alice\"} 1755376903.836");
  want_line(t, "cb2mqtt_last_event_timestamp_seconds{broadcaster=\"bob\"} 0.000");
  want_line(t, "process_start_time_seconds 1764331200.500");
  want_line(t, "# TYPE cb2mqtt_events_total counter");
  want_line(t, "# TYPE cb2mqtt_event_delivery_seconds histogram");
  assert_non_null(strstr(t, "\nprocess_resident_memory_bytes "));
  assert_non_null(strstr(t, "\nprocess_cpu_seconds_total "));
  free(t);
}

/* The exposition format wants each family's samples in one block after
 * its TYPE line: no TYPE twice, no sample of a family other than the
 * current one (histogram suffixes aside). */
static void test_one_block_per_family(void **state) {
  char *t, *save = NULL, family[128] = "", seen[4096] = " ";
  (void)state;
  fill();
  t = render();
  for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char name[128];
    if (sscanf(line, "# TYPE %127s", name) == 1) {
      char key[130];
      snprintf(key, sizeof key, " %s ", name);
      if (strstr(seen, key))
        fail_msg("family %s declared twice", name);
      strncat(seen, key + 1, sizeof seen - strlen(seen) - 1);
      snprintf(family, sizeof family, "%s", name);
      continue;
    }
    if (line[0] == '#')
      continue;
    char sample[128], want[160];
    int ok = 0;
    snprintf(sample, sizeof sample, "%.*s", (int)strcspn(line, "{ "), line);
    const char *suffixes[] = {"", "_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 4; i++) {
      snprintf(want, sizeof want, "%s%s", family, suffixes[i]);
      ok |= strcmp(sample, want) == 0;
    }
    if (!ok)
      fail_msg("sample outside its family %s: %s", family, line);
  }
  free(t);
}

static void test_histogram(void **state) {
  char *t;
  (void)state;
  fill();
  cb2m_histogram_observe(&bridge_m.delivery, 1);      /* 0.001: the first bucket, inclusive */
  cb2m_histogram_observe(&bridge_m.delivery, 2);      /* 0.0025 */
  cb2m_histogram_observe(&bridge_m.delivery, 1000);   /* 1 */
  cb2m_histogram_observe(&bridge_m.delivery, 900000); /* above 300: +Inf only */
  t = render();
  want_line(t, "cb2mqtt_event_delivery_seconds_bucket{le=\"0.001\"} 1");
  want_line(t, "cb2mqtt_event_delivery_seconds_bucket{le=\"0.0025\"} 2");
  want_line(t, "cb2mqtt_event_delivery_seconds_bucket{le=\"0.5\"} 2");
  want_line(t, "cb2mqtt_event_delivery_seconds_bucket{le=\"1\"} 3");
  want_line(t, "cb2mqtt_event_delivery_seconds_bucket{le=\"300\"} 3");
  want_line(t, "cb2mqtt_event_delivery_seconds_bucket{le=\"+Inf\"} 4");
  want_line(t, "cb2mqtt_event_delivery_seconds_count 4");
  want_line(t, "cb2mqtt_event_delivery_seconds_sum 901.003000");
  free(t);
}

static void test_label_escaping(void **state) {
  char *t;
  (void)state;
  fill();
  alice.name = "a\"b\\c\nd";
  t = render();
  want_line(t, "cb2mqtt_queued_events{broadcaster=\"a\\\"b\\\\c\\nd\"} 5");
  free(t);
}

static void test_promtool_lint(void **state) {
  char path[] = "/tmp/cb2m_metrics_XXXXXX", cmd[256], *t;
  FILE *f;
  int fd, rc;
  (void)state;
  if (system("command -v promtool >/dev/null 2>&1") != 0)
    skip();
  fill();
  cb2m_histogram_observe(&bridge_m.delivery, 12);
  t = render();
  fd = mkstemp(path);
  assert_true(fd >= 0);
  f = fdopen(fd, "w");
  assert_non_null(f);
  fputs(t, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
  rc = system(cmd);
  unlink(path);
  free(t);
  assert_int_equal(rc, 0);
}

static void test_listen_parse(void **state) {
  char host[256];
  unsigned port = 1;
  const char *why;
  (void)state;
  assert_int_equal(cb2m_metrics_listen_parse("127.0.0.1:9464", host, sizeof host, &port, &why),
                   CBEV_OK);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 9464);
  assert_int_equal(cb2m_metrics_listen_parse(":9464", host, sizeof host, &port, &why), CBEV_OK);
  assert_string_equal(host, "");
  assert_int_equal(cb2m_metrics_listen_parse("[::1]:0", host, sizeof host, &port, &why), CBEV_OK);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 0);
  assert_int_equal(cb2m_metrics_listen_parse("localhost:80", host, sizeof host, &port, &why),
                   CBEV_OK);
  const char *bad[] = {"", "9464", "host:", ":x", ":65536", ":-1", "::1:80", "[::1]80", "[]:80",
                       ":80x", "[::1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    why = NULL;
    if (cb2m_metrics_listen_parse(bad[i], host, sizeof host, &port, &why) == CBEV_OK)
      fail_msg("accepted '%s'", bad[i]);
    assert_non_null(why);
  }
}

/* ---- HTTP over a real socket, served through the epoll fd */

static int render_fail;

static int render_cb(void *ud, char **text, size_t *len) {
  (void)ud;
  if (render_fail)
    return CBEV_ENOMEM;
  fill();
  return cb2m_metrics_render(&bridge_m, (const cb2m_bc_metrics *const[]){&alice}, 1, text, len);
}

/* Sends request to the server and serves it until the client reads EOF;
 * returns the whole answer (free() it). */
static char *exchange(cb2m_metrics_http *h, const char *request) {
  struct sockaddr_in sa = {0};
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  assert_non_null(buf);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)cb2m_metrics_http_port(h));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
  for (int rounds = 0; rounds < 1000; rounds++) {
    struct pollfd p[2] = {{cb2m_metrics_http_fd(h), POLLIN, 0}, {fd, POLLIN, 0}};
    ssize_t n;
    poll(p, 2, 100);
    cb2m_metrics_http_run(h);
    if (!(p[1].revents & (POLLIN | POLLHUP)))
      continue;
    n = read(fd, buf + len, cap - len - 1);
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  close(fd);
  return buf;
}

static void test_http(void **state) {
  cb2m_metrics_http *h = NULL;
  cbev_logger quiet = {0};
  char *a;
  (void)state;
  assert_int_equal(cb2m_metrics_http_new("127.0.0.1:0", render_cb, NULL, &quiet, &h), CBEV_OK);
  assert_true(cb2m_metrics_http_port(h) > 0);
  assert_true(cb2m_metrics_http_fd(h) >= 0);

  a = exchange(h, "GET /metrics HTTP/1.0\r\n\r\n");
  if (!strstr(a, " 200 OK\r\n"))
    fail_msg("answer: %.300s", a);
  assert_non_null(strstr(a, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  assert_non_null(strstr(a, "\r\n\r\n# HELP cb2mqtt_build_info"));
  assert_non_null(strstr(a, "cb2mqtt_broadcaster_up{broadcaster=\"alice\"} 1\n"));
  free(a);

  a = exchange(h, "GET /other HTTP/1.0\r\n\r\n");
  assert_non_null(strstr(a, " 404 "));
  assert_null(strstr(a, "cb2mqtt_"));
  free(a);

  a = exchange(h, "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
  assert_non_null(strstr(a, " 405 "));
  assert_non_null(strstr(a, "Allow: GET, HEAD"));
  free(a);

  render_fail = 1;
  a = exchange(h, "GET /metrics HTTP/1.0\r\n\r\n");
  assert_non_null(strstr(a, " 500 "));
  free(a);
  render_fail = 0;
  cb2m_metrics_http_free(h);
}

static void test_http_bad_listen(void **state) {
  cb2m_metrics_http *h = (cb2m_metrics_http *)1, *first = NULL;
  cbev_logger quiet = {0};
  char addr[64];
  (void)state;
  assert_int_equal(cb2m_metrics_http_new("nonsense", render_cb, NULL, &quiet, &h), CBEV_EINVAL);
  assert_null(h);
  /* A port already in use is an error, not a crash. */
  assert_int_equal(cb2m_metrics_http_new("127.0.0.1:0", render_cb, NULL, &quiet, &first), CBEV_OK);
  snprintf(addr, sizeof addr, "127.0.0.1:%u", cb2m_metrics_http_port(first));
  assert_int_equal(cb2m_metrics_http_new(addr, render_cb, NULL, &quiet, &h), CBEV_EIO);
  assert_null(h);
  cb2m_metrics_http_free(first);
  cb2m_metrics_http_free(NULL);
}

static void test_render_args(void **state) {
  char *t = (char *)1;
  size_t len = 1;
  (void)state;
  errno = 0;
  assert_int_equal(cb2m_metrics_render(NULL, NULL, 0, &t, &len), CBEV_EINVAL);
  assert_int_equal(errno, EINVAL);
  assert_null(t);
  assert_int_equal(cb2m_poll_reason_of(3 /* CBEV_EAUTH */), CB2M_POLL_AUTH);
  assert_string_equal(cb2m_poll_reason_name(CB2M_POLL_REASON_COUNT), "other");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_samples),      cmocka_unit_test(test_one_block_per_family),
      cmocka_unit_test(test_histogram),    cmocka_unit_test(test_label_escaping),
      cmocka_unit_test(test_promtool_lint), cmocka_unit_test(test_listen_parse),
      cmocka_unit_test(test_http),         cmocka_unit_test(test_http_bad_listen),
      cmocka_unit_test(test_render_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

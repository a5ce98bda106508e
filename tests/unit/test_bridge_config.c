/* Unit tests of config.c: every key's default and bounds, precedence
 * (flag > environment > file > default), *_file secrets, the broadcaster
 * sources (sections, environment mapping, CB_* shortcuts, systemd
 * credentials), INI errors with line numbers, the command line, and that
 * --print-config, cb/bridge/info and error messages never carry a secret.
 * Every test uses its own temp folder; the process environment is never
 * read by the code under test. */
#define _XOPEN_SOURCE 700 /* nftw() for cleaning up the temp folders */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cbevents/event.h"
#include "cbevents/session.h"
#include "config.h"

#define ALL_TYPES ((1u << (CBEV_EVENT_UNKNOWN + 1)) - 1u)

typedef struct fixture {
  char dir[64];
  char ini[128];
  cb2m_config cfg;
  char err[1024];
} fixture;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  fixture *t = calloc(1, sizeof *t);
  if (!t)
    return -1;
  snprintf(t->dir, sizeof t->dir, "/tmp/cb2m-config-XXXXXX");
  if (!mkdtemp(t->dir)) {
    free(t);
    return -1;
  }
  snprintf(t->ini, sizeof t->ini, "%s/cb2mqtt.ini", t->dir);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  fixture *t = *state;
  int rc;

  cb2m_config_free(&t->cfg);
  rc = nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(t);
  return rc;
}

/* Writes len bytes (strlen when len is (size_t)-1) to dir/name; returns
 * the path in a static-per-call buffer of the fixture-free kind. */
static const char *put(fixture *t, const char *name, const char *text, size_t len) {
  static char paths[8][256];
  static int next;
  char *path = paths[next++ % 8];
  FILE *f;

  snprintf(path, 256, "%s/%s", t->dir, name);
  f = fopen(path, "wb");
  assert_non_null(f);
  if (len == (size_t)-1)
    len = strlen(text);
  assert_int_equal(fwrite(text, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
  return path;
}

/* Loads with "-c <ini>" when ini is not NULL (written first), the given
 * environment and extra arguments. Frees the previous result first. */
static int load_args(fixture *t, const char *ini, char **env, char **extra) {
  char *argv[16];
  int argc = 0;

  cb2m_config_free(&t->cfg);
  argv[argc++] = "cb2mqtt";
  if (ini) {
    put(t, "cb2mqtt.ini", ini, (size_t)-1);
    argv[argc++] = "-c";
    argv[argc++] = t->ini;
  }
  for (size_t i = 0; extra && extra[i]; i++)
    argv[argc++] = extra[i];
  argv[argc] = NULL;
  t->err[0] = '\0';
  return cb2m_config_load(&t->cfg, argc, argv, env, t->err, sizeof t->err);
}

static int load(fixture *t, const char *ini, char **env) { return load_args(t, ini, env, NULL); }

/* A minimal valid environment plus one extra variable. */
static int load_with(fixture *t, const char *var) {
  char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=tok-alice-1", (char *)var, NULL};
  return load(t, "", env);
}

static void expect_ok(fixture *t, int rc) {
  if (rc != CBEV_OK)
    fail_msg("load failed: %s", t->err);
}

static void expect_err(fixture *t, int rc, const char *part) {
  if (rc != CBEV_EINVAL)
    fail_msg("load returned %d, want CBEV_EINVAL with '%s'", rc, part);
  if (!strstr(t->err, part))
    fail_msg("error '%s' does not contain '%s'", t->err, part);
}

/* ---- defaults and bounds ----------------------------------------------- */

static void test_defaults(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char host[256] = "", want[300];

  expect_ok(t, load_with(t, NULL));
  gethostname(host, sizeof host - 1);
  snprintf(want, sizeof want, "cb2mqtt-%s", host);
  assert_string_equal(c->mqtt.url, "mqtt://localhost:1883");
  assert_string_equal(c->mqtt.host, "localhost");
  assert_int_equal(c->mqtt.port, 1883);
  assert_int_equal(c->mqtt.tls, 0);
  assert_null(c->mqtt.username);
  assert_null(c->mqtt.password);
  assert_string_equal(c->mqtt.client_id, want);
  assert_string_equal(c->mqtt.base_topic, "cb");
  assert_int_equal(c->mqtt.qos, 1);
  assert_int_equal(c->mqtt.protocol, 5);
  assert_int_equal(c->mqtt.keepalive, 60);
  assert_null(c->mqtt.ca_file);
  assert_null(c->mqtt.cert_file);
  assert_null(c->mqtt.key_file);
  assert_int_equal(c->mqtt.tls_insecure, 0);
  assert_int_equal(c->mqtt.health_interval, 60);
  assert_string_equal(c->events.api, "production");
  assert_string_equal(c->events.api_base, CBEV_PRODUCTION_BASE);
  assert_int_equal(c->events.timeout, 10);
  assert_true(c->events.retry_backoff == 1.0);
  assert_true(c->events.retry_factor == 2.0);
  assert_true(c->events.retry_max_delay == 60.0);
  assert_string_equal(c->events.rate_limit, "2000/60");
  assert_int_equal(c->events.rate_requests, 2000);
  assert_true(c->events.rate_seconds == 60.0);
  assert_int_equal(c->events.shared_rate_limit, 0);
  assert_null(c->events.ca_file);
  assert_string_equal(c->events.publish, "all");
  assert_int_equal(c->events.publish_mask, ALL_TYPES);
  assert_string_equal(c->events.payload, "normalized");
  assert_int_equal(c->events.payload_raw, 0);
  assert_int_equal(c->events.expose_anonymous_tippers, 0);
  assert_string_equal(c->events.state_dir, "/var/lib/cb2mqtt");
  assert_int_equal(c->events.max_queued, 10000);
  assert_int_equal(c->events.auth_retry_interval, 300);
  assert_int_equal(c->homeassistant.discovery, 1);
  assert_string_equal(c->homeassistant.prefix, "homeassistant");
  assert_string_equal(c->log.level_name, "info");
  assert_int_equal(c->log.level, CBEV_LOG_INFO);
  assert_string_equal(c->log.format, "text");
  assert_int_equal(c->log.json, 0);
  assert_int_equal(c->n_broadcasters, 1);
  assert_string_equal(c->broadcasters[0].name, "alice");
  assert_string_equal(c->broadcasters[0].token, "tok-alice-1");
  assert_null(c->broadcasters[0].url);
  assert_string_equal(c->broadcaster_origins[0], "env CB_TOKEN");
  assert_int_equal(c->origin[0].layer, CB2M_FROM_DEFAULT);
  assert_string_equal(c->config_file, t->ini);
  assert_int_equal(c->help + c->version + c->check_config + c->print_config + c->healthcheck, 0);
}

typedef struct bound_case {
  const char *var; /* NAME=VALUE */
  const char *err; /* NULL: must load */
} bound_case;

static void test_bounds(void **state) {
  fixture *t = *state;
  static const bound_case cases[] = {
      {"CB2MQTT_MQTT_QOS=-1", "config: mqtt.qos: must be 0, 1 or 2"},
      {"CB2MQTT_MQTT_QOS=3", "config: mqtt.qos: must be 0, 1 or 2"},
      {"CB2MQTT_MQTT_QOS=1x", "config: mqtt.qos: must be 0, 1 or 2"},
      {"CB2MQTT_MQTT_QOS=", "config: mqtt.qos: must be 0, 1 or 2"},
      {"CB2MQTT_MQTT_QOS=0", NULL},
      {"CB2MQTT_MQTT_QOS=2", NULL},
      {"CB2MQTT_MQTT_PROTOCOL=4", "config: mqtt.protocol: must be 5 or 311"},
      {"CB2MQTT_MQTT_PROTOCOL=6", "config: mqtt.protocol: must be 5 or 311"},
      {"CB2MQTT_MQTT_PROTOCOL=310", "config: mqtt.protocol: must be 5 or 311"},
      {"CB2MQTT_MQTT_PROTOCOL=312", "config: mqtt.protocol: must be 5 or 311"},
      {"CB2MQTT_MQTT_PROTOCOL=311", NULL},
      {"CB2MQTT_MQTT_PROTOCOL=0311", "config: mqtt.protocol: must be 5 or 311"},
      {"CB2MQTT_MQTT_PROTOCOL=100", "config: mqtt.protocol: must be 5 or 311"},
      {"CB2MQTT_MQTT_KEEPALIVE=4", "config: mqtt.keepalive: must be a whole number from 5 to 65535"},
      {"CB2MQTT_MQTT_KEEPALIVE=65536", "config: mqtt.keepalive: must be a whole number"},
      {"CB2MQTT_MQTT_KEEPALIVE=5", NULL},
      {"CB2MQTT_MQTT_KEEPALIVE=65535", NULL},
      {"CB2MQTT_MQTT_HEALTH_INTERVAL=4", "config: mqtt.health_interval: must be a whole number from 5 to 86400"},
      {"CB2MQTT_MQTT_HEALTH_INTERVAL=86401", "config: mqtt.health_interval:"},
      {"CB2MQTT_MQTT_HEALTH_INTERVAL=86400", NULL},
      {"CB2MQTT_EVENTS_TIMEOUT=-1", "config: events.timeout: must be a whole number from 0 to 90"},
      {"CB2MQTT_EVENTS_TIMEOUT=91", "config: events.timeout:"},
      {"CB2MQTT_EVENTS_TIMEOUT=0", NULL},
      {"CB2MQTT_EVENTS_TIMEOUT=90", NULL},
      {"CB2MQTT_EVENTS_TIMEOUT=99999999999999999999", "config: events.timeout:"},
      {"CB2MQTT_EVENTS_RETRY_BACKOFF=0", "config: events.retry_backoff: must be a number above 0"},
      {"CB2MQTT_EVENTS_RETRY_BACKOFF=3600.5", "config: events.retry_backoff:"},
      {"CB2MQTT_EVENTS_RETRY_BACKOFF=nan", "config: events.retry_backoff:"},
      {"CB2MQTT_EVENTS_RETRY_BACKOFF=0.001", NULL},
      {"CB2MQTT_EVENTS_RETRY_FACTOR=0.99", "config: events.retry_factor: must be a number from 1"},
      {"CB2MQTT_EVENTS_RETRY_FACTOR=100.1", "config: events.retry_factor:"},
      {"CB2MQTT_EVENTS_RETRY_FACTOR=1", NULL},
      {"CB2MQTT_EVENTS_RETRY_MAX_DELAY=0", "config: events.retry_max_delay: must be a number above 0"},
      {"CB2MQTT_EVENTS_RETRY_MAX_DELAY=86401", "config: events.retry_max_delay:"},
      {"CB2MQTT_EVENTS_RETRY_MAX_DELAY=inf", "config: events.retry_max_delay:"},
      {"CB2MQTT_EVENTS_RETRY_MAX_DELAY=0.5", NULL},
      {"CB2MQTT_EVENTS_RATE_LIMIT=0/60", "config: events.rate_limit: must be N/SECONDS"},
      {"CB2MQTT_EVENTS_RATE_LIMIT=10/0", "config: events.rate_limit:"},
      {"CB2MQTT_EVENTS_RATE_LIMIT=10", "config: events.rate_limit:"},
      {"CB2MQTT_EVENTS_RATE_LIMIT=1/1", NULL},
      {"CB2MQTT_EVENTS_MAX_QUEUED=0", "config: events.max_queued: must be a whole number from 1 to 1000000"},
      {"CB2MQTT_EVENTS_MAX_QUEUED=1000001", "config: events.max_queued:"},
      {"CB2MQTT_EVENTS_MAX_QUEUED=1", NULL},
      {"CB2MQTT_EVENTS_MAX_QUEUED=1000000", NULL},
      {"CB2MQTT_EVENTS_AUTH_RETRY_INTERVAL=9", "config: events.auth_retry_interval: must be a whole number from 10 to 86400"},
      {"CB2MQTT_EVENTS_AUTH_RETRY_INTERVAL=86401", "config: events.auth_retry_interval:"},
      {"CB2MQTT_EVENTS_AUTH_RETRY_INTERVAL=10", NULL},
      {"CB2MQTT_EVENTS_AUTH_RETRY_INTERVAL=86400", NULL},
      {"CB2MQTT_EVENTS_STATE_DIR=", "config: events.state_dir: must not be empty"},
      {"CB2MQTT_EVENTS_PAYLOAD=json", "config: events.payload: must be one of normalized,raw"},
      {"CB2MQTT_EVENTS_PUBLISH=tip,bogus", "config: events.publish: unknown event type \"bogus\""},
      {"CB2MQTT_EVENTS_PUBLISH=Tip", "config: events.publish: unknown event type \"Tip\""},
      {"CB2MQTT_EVENTS_PUBLISH=", "config: events.publish: must be all or a comma list"},
      {"CB2MQTT_EVENTS_PUBLISH= , ", "config: events.publish:"},
      {"CB2MQTT_EVENTS_EXPOSE_ANONYMOUS_TIPPERS=maybe", "config: events.expose_anonymous_tippers: must be true or false"},
      {"CB2MQTT_HOMEASSISTANT_DISCOVERY=2", "config: homeassistant.discovery: must be true or false"},
      {"CB2MQTT_MQTT_TLS_INSECURE=", "config: mqtt.tls_insecure:"},
      {"CB2MQTT_LOG_LEVEL=verbose", "config: log.level: must be one of error,warn,info,debug"},
      {"CB2MQTT_LOG_FORMAT=xml", "config: log.format: must be one of text,json"},
      {"CB2MQTT_MQTT_CLIENT_ID=a\tb", "config: mqtt.client_id: must not contain control characters"},
      {"CB2MQTT_MQTT_URL=", "config: mqtt.url: must not be empty"},
      {"CB2MQTT_EVENTS_API=", "config: events.api: must not be empty"},
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = load_with(t, cases[i].var);
    if (!cases[i].err && rc != 0)
      fail_msg("%s: should load, got '%s'", cases[i].var, t->err);
    if (cases[i].err && (rc != 2 || !strstr(t->err, cases[i].err)))
      fail_msg("%s: want '%s', got %d '%s'", cases[i].var, cases[i].err, rc, t->err);
  }
  /* The exact SPEC wording, nothing appended. */
  expect_err(t, load_with(t, "CB2MQTT_MQTT_QOS=7"), "config: mqtt.qos:");
  assert_string_equal(t->err, "config: mqtt.qos: must be 0, 1 or 2");
}

static void test_parsed_values(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=tok",
                 "CB2MQTT_EVENTS_RATE_LIMIT=10/1.5", "CB2MQTT_EVENTS_PUBLISH=tip, follow,tip",
                 "CB2MQTT_EVENTS_PAYLOAD=RAW", "CB2MQTT_LOG_LEVEL=Debug",
                 "CB2MQTT_LOG_FORMAT=json", "CB2MQTT_HOMEASSISTANT_DISCOVERY=off",
                 "CB2MQTT_MQTT_TLS_INSECURE=YES", "CB2MQTT_EVENTS_SHARED_RATE_LIMIT=1",
                 "CB2MQTT_EVENTS_EXPOSE_ANONYMOUS_TIPPERS=on", "CB2MQTT_MQTT_CA_FILE=/ca.pem",
                 "CB2MQTT_MQTT_CLIENT_ID=me", "CB2MQTT_EVENTS_API=testbed", NULL};

  expect_ok(t, load(t, "", env));
  assert_int_equal(c->events.rate_requests, 10);
  assert_true(c->events.rate_seconds == 1.5);
  assert_int_equal(c->events.publish_mask, (1u << CBEV_EVENT_TIP) | (1u << CBEV_EVENT_FOLLOW));
  assert_string_equal(c->events.payload, "raw");
  assert_int_equal(c->events.payload_raw, 1);
  assert_string_equal(c->log.level_name, "debug");
  assert_int_equal(c->log.level, CBEV_LOG_DEBUG);
  assert_int_equal(c->log.json, 1);
  assert_int_equal(c->homeassistant.discovery, 0);
  assert_int_equal(c->mqtt.tls_insecure, 1);
  assert_int_equal(c->events.shared_rate_limit, 1);
  assert_int_equal(c->events.expose_anonymous_tippers, 1);
  assert_string_equal(c->mqtt.ca_file, "/ca.pem");
  assert_string_equal(c->mqtt.client_id, "me");
  assert_string_equal(c->events.api_base, CBEV_TESTBED_BASE);
}

static void test_mqtt_url(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;

  expect_ok(t, load_with(t, "CB2MQTT_MQTT_URL=mqtts://broker.lan"));
  assert_string_equal(c->mqtt.host, "broker.lan");
  assert_int_equal(c->mqtt.port, 8883);
  assert_int_equal(c->mqtt.tls, 1);
  expect_ok(t, load_with(t, "CB2MQTT_MQTT_URL=mqtt://[::1]:1884"));
  assert_string_equal(c->mqtt.host, "::1");
  assert_int_equal(c->mqtt.port, 1884);
  assert_int_equal(c->mqtt.tls, 0);
  expect_ok(t, load_with(t, "CB2MQTT_MQTT_URL=mqtts://10.0.0.2:9000/"));
  assert_string_equal(c->mqtt.host, "10.0.0.2");
  assert_int_equal(c->mqtt.port, 9000);
  expect_err(t, load_with(t, "CB2MQTT_MQTT_URL=http://broker"),
             "config: mqtt.url: scheme must be mqtt:// or mqtts://");
  expect_err(t, load_with(t, "CB2MQTT_MQTT_URL=localhost:1883"), "config: mqtt.url:");
  expect_err(t, load_with(t, "CB2MQTT_MQTT_URL=mqtt://user:hunter2@broker"),
             "config: mqtt.url: must not hold a user or password");
  assert_null(strstr(t->err, "hunter2"));
  expect_err(t, load_with(t, "CB2MQTT_MQTT_URL=mqtt://broker/topic"), "config: mqtt.url: must be just");
  expect_err(t, load_with(t, "CB2MQTT_MQTT_URL=mqtt://broker?x=1"), "config: mqtt.url:");
  expect_err(t, load_with(t, "CB2MQTT_MQTT_URL=mqtt://broker:65536"), "config: mqtt.url:");
  expect_err(t, load_with(t, "CB2MQTT_MQTT_URL=mqtt://"), "config: mqtt.url:");
  expect_err(t, load_with(t, "CB2MQTT_MQTT_URL=mqtt://[::1"), "config: mqtt.url:");
}

static void test_topics_and_api(void **state) {
  fixture *t = *state;
  static const bound_case cases[] = {
      {"CB2MQTT_MQTT_BASE_TOPIC=a/+", "config: mqtt.base_topic:"},
      {"CB2MQTT_MQTT_BASE_TOPIC=a/#", "config: mqtt.base_topic:"},
      {"CB2MQTT_MQTT_BASE_TOPIC=$SYS", "config: mqtt.base_topic:"},
      {"CB2MQTT_MQTT_BASE_TOPIC=a//b", "config: mqtt.base_topic:"},
      {"CB2MQTT_MQTT_BASE_TOPIC=/cb", "config: mqtt.base_topic:"},
      {"CB2MQTT_MQTT_BASE_TOPIC=cb/", "config: mqtt.base_topic:"},
      {"CB2MQTT_MQTT_BASE_TOPIC=", "config: mqtt.base_topic:"},
      {"CB2MQTT_MQTT_BASE_TOPIC=home/cb", NULL},
      {"CB2MQTT_HOMEASSISTANT_PREFIX=", "config: homeassistant.prefix:"},
      {"CB2MQTT_HOMEASSISTANT_PREFIX=ha/+", "config: homeassistant.prefix:"},
      {"CB2MQTT_HOMEASSISTANT_PREFIX=cb", "config: homeassistant.prefix: must differ from mqtt.base_topic"},
      {"CB2MQTT_HOMEASSISTANT_PREFIX=ha", NULL},
      {"CB2MQTT_EVENTS_API=http://example.com/events", "config: events.api: must be production, testbed"},
      {"CB2MQTT_EVENTS_API=ftp://127.0.0.1/events", "config: events.api:"},
      {"CB2MQTT_EVENTS_API=https://u:p@example.com/events", "config: events.api:"},
      {"CB2MQTT_EVENTS_API=https://example.com/events?x=1", "config: events.api:"},
      {"CB2MQTT_EVENTS_API=staging", "config: events.api:"},
      {"CB2MQTT_EVENTS_API=https://example.com/events", NULL},
      {"CB2MQTT_EVENTS_API=http://127.0.0.1:8080/events", NULL},
      {"CB2MQTT_EVENTS_API=http://[::1]:8080/events", NULL},
      {"CB2MQTT_EVENTS_API=http://localhost:8080/events", NULL},
      {"CB2MQTT_MQTT_CERT_FILE=/c.pem", "config: mqtt.key_file: mqtt.cert_file and mqtt.key_file go together"},
      {"CB2MQTT_MQTT_KEY_FILE=/k.pem", "config: mqtt.key_file:"},
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = load_with(t, cases[i].var);
    if (!cases[i].err && rc != 0)
      fail_msg("%s: should load, got '%s'", cases[i].var, t->err);
    if (cases[i].err && (rc != 2 || !strstr(t->err, cases[i].err)))
      fail_msg("%s: want '%s', got %d '%s'", cases[i].var, cases[i].err, rc, t->err);
  }
  expect_ok(t, load_with(t, "CB2MQTT_EVENTS_API=http://127.0.0.1:8080/events"));
  assert_string_equal(t->cfg.events.api_base, "http://127.0.0.1:8080/events");
}

/* ---- precedence ----------------------------------------------------------- */

static void test_precedence(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  const char *ini = "[mqtt]\nqos = 0\nkeepalive = 30\n[log]\nlevel = warn\nformat = json\n"
                    "[broadcaster:alice]\ntoken = tok\n";
  char *env[] = {"CB2MQTT_MQTT_QOS=2", "CB2MQTT_LOG_LEVEL=error", NULL};
  char *flags[] = {"--log-level", "debug", NULL};
  char *flags2[] = {"--log-format=text", NULL};

  /* File over default. */
  expect_ok(t, load(t, ini, NULL));
  assert_int_equal(c->mqtt.qos, 0);
  assert_int_equal(c->mqtt.keepalive, 30);
  assert_int_equal(c->log.level, CBEV_LOG_WARN);
  assert_int_equal(c->log.json, 1);
  assert_int_equal(c->origin[5].layer, CB2M_FROM_FILE); /* qos is the 6th key */
  assert_int_equal(c->origin[5].line, 2);
  /* Environment over file. */
  expect_ok(t, load(t, ini, env));
  assert_int_equal(c->mqtt.qos, 2);
  assert_int_equal(c->origin[5].layer, CB2M_FROM_ENV);
  assert_int_equal(c->mqtt.keepalive, 30);
  assert_int_equal(c->log.level, CBEV_LOG_ERROR);
  /* Flag over environment. */
  expect_ok(t, load_args(t, ini, env, flags));
  assert_int_equal(c->log.level, CBEV_LOG_DEBUG);
  assert_string_equal(c->log.level_name, "debug");
  expect_ok(t, load_args(t, ini, env, flags2));
  assert_int_equal(c->log.json, 0);
  assert_int_equal(c->log.level, CBEV_LOG_ERROR);
  /* A bad flag value is named like the key. */
  {
    char *bad[] = {"--log-level=loud", NULL};
    expect_err(t, load_args(t, ini, env, bad), "config: log.level: must be one of");
  }
}

/* ---- secrets from files ---------------------------------------------------- */

static void test_secret_files(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char ini[512], *big;
  const char *pw = put(t, "pw", "s3cret-pw\n", (size_t)-1);
  const char *pw_crlf = put(t, "pw_crlf", "crlf-pw\r\n", (size_t)-1);
  const char *pw_two = put(t, "pw_two", "two\n\n", (size_t)-1);
  const char *empty = put(t, "empty", "\n", (size_t)-1);
  char env_file[300], env_crlf[300], env_missing[300];

  snprintf(ini, sizeof ini, "[mqtt]\nusername = u\npassword_file = %s\n[broadcaster:alice]\ntoken = t1\n", pw);
  expect_ok(t, load(t, ini, NULL));
  assert_string_equal(c->mqtt.password, "s3cret-pw");
  assert_int_equal(c->origin[2].layer, CB2M_FROM_FILE);
  assert_int_equal(c->origin[2].via_file, 1);

  snprintf(env_crlf, sizeof env_crlf, "CB2MQTT_MQTT_PASSWORD_FILE=%s", pw_crlf);
  {
    char *env[] = {env_crlf, NULL};
    expect_ok(t, load(t, ini, env)); /* environment over file */
    assert_string_equal(c->mqtt.password, "crlf-pw");
    assert_int_equal(c->origin[2].layer, CB2M_FROM_ENV);
  }
  {
    char *env[] = {"CB2MQTT_MQTT_PASSWORD=plain", NULL};
    expect_ok(t, load(t, ini, env)); /* a plain value beats a lower _file */
    assert_string_equal(c->mqtt.password, "plain");
    assert_int_equal(c->origin[2].via_file, 0);
  }
  /* Only one trailing newline is dropped. */
  snprintf(env_file, sizeof env_file, "CB2MQTT_MQTT_PASSWORD_FILE=%s", pw_two);
  {
    char *env[] = {env_file, NULL};
    expect_err(t, load(t, ini, env), "config: mqtt.password_file:");
    assert_non_null(strstr(t->err, "more than one line"));
  }
  snprintf(env_file, sizeof env_file, "CB2MQTT_MQTT_PASSWORD_FILE=%s", empty);
  {
    char *env[] = {env_file, NULL};
    expect_err(t, load(t, ini, env), "is empty");
  }
  /* A FIFO is refused without blocking (nobody writes to this one). */
  {
    char fifo[512], env_fifo[600];
    snprintf(fifo, sizeof fifo, "%s/fifo", t->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    snprintf(env_fifo, sizeof env_fifo, "CB2MQTT_MQTT_PASSWORD_FILE=%s", fifo);
    char *env[] = {env_fifo, NULL};
    expect_err(t, load(t, ini, env), "config: mqtt.password_file: cannot read");
    assert_non_null(strstr(t->err, "fifo: not a regular file"));
  }
  snprintf(env_missing, sizeof env_missing, "CB2MQTT_MQTT_PASSWORD_FILE=%s/nope", t->dir);
  {
    char *env[] = {env_missing, NULL};
    expect_err(t, load(t, ini, env), "config: mqtt.password_file: cannot read");
    assert_non_null(strstr(t->err, "/nope: No such file or directory"));
  }
  /* Both forms in one layer are ambiguous. */
  {
    char *env[] = {env_crlf, "CB2MQTT_MQTT_PASSWORD=x", NULL};
    expect_err(t, load(t, ini, env),
               "config: mqtt.password: set only one of CB2MQTT_MQTT_PASSWORD and CB2MQTT_MQTT_PASSWORD_FILE");
  }
  expect_err(t, load(t, "[mqtt]\nusername = u\npassword = a\npassword_file = /x\n[broadcaster:a]\ntoken=t\n", NULL),
             "config: mqtt.password: set only one of password and password_file");
  /* 64 KiB cap. */
  big = malloc(64 * 1024 + 2);
  assert_non_null(big);
  memset(big, 'p', 64 * 1024 + 1);
  big[64 * 1024 + 1] = '\0';
  snprintf(env_file, sizeof env_file, "CB2MQTT_MQTT_PASSWORD_FILE=%s",
           put(t, "big", big, (size_t)-1));
  {
    char *env[] = {env_file, NULL};
    expect_err(t, load(t, ini, env), "larger than 64 KiB");
  }
  big[64 * 1024 - 1] = '\n'; /* exactly 64 KiB with its newline */
  big[64 * 1024] = '\0';
  snprintf(env_file, sizeof env_file, "CB2MQTT_MQTT_PASSWORD_FILE=%s",
           put(t, "big", big, (size_t)-1));
  {
    char *env[] = {env_file, NULL};
    expect_ok(t, load(t, ini, env));
    assert_int_equal(strlen(c->mqtt.password), 64 * 1024 - 1);
  }
  free(big);
  /* A password needs a user name; a non-secret key has no _file form. */
  expect_err(t, load(t, "[mqtt]\npassword = p\n[broadcaster:a]\ntoken=t\n", NULL),
             "config: mqtt.password: needs mqtt.username");
  expect_err(t, load(t, "[mqtt]\nusername_file = /x\n", NULL), "config: mqtt.username_file: unknown key");
  expect_err(t, load_with(t, "CB2MQTT_MQTT_USERNAME_FILE=/x"), "config: CB2MQTT_MQTT_USERNAME_FILE: unknown variable");
}

/* ---- broadcasters ----------------------------------------------------------- */

static void test_broadcaster_sections(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char ini[1024], name64[65], name65[66];
  const char *tokf = put(t, "tok_bob", "tok-bob\n", (size_t)-1);
  const char *urlf = put(t, "url_dave", "http://127.0.0.1:9/events/dave/tok-dave/\n", (size_t)-1);

  snprintf(ini, sizeof ini,
           "[broadcaster:alice]\ntoken = tok-alice\n"
           "[broadcaster:bob]\ntoken_file = %s\n"
           "[broadcaster:carol]\nurl = http://127.0.0.1:9/events/carol/tok-carol/\n"
           "[broadcaster:dave]\nurl_file = %s\n"
           "[broadcaster:e-_9]\ntoken = x\n",
           tokf, urlf);
  expect_ok(t, load(t, ini, NULL));
  assert_int_equal(c->n_broadcasters, 5);
  assert_string_equal(c->broadcasters[0].name, "alice");
  assert_string_equal(c->broadcasters[0].token, "tok-alice");
  assert_string_equal(c->broadcasters[1].token, "tok-bob");
  assert_null(c->broadcasters[2].token);
  assert_string_equal(c->broadcasters[2].url, "http://127.0.0.1:9/events/carol/tok-carol/");
  assert_string_equal(c->broadcasters[3].url, "http://127.0.0.1:9/events/dave/tok-dave/");
  assert_string_equal(c->broadcasters[4].name, "e-_9");
  snprintf(ini, sizeof ini, "file %s:2 (token)", t->ini);
  assert_string_equal(c->broadcaster_origins[0], ini);

  /* Names: 64 bytes are fine (inih alone would cut the section at 49). */
  memset(name64, 'n', 64);
  name64[64] = '\0';
  snprintf(ini, sizeof ini, "[broadcaster:%s]\ntoken = t\n", name64);
  expect_ok(t, load(t, ini, NULL));
  assert_string_equal(c->broadcasters[0].name, name64);
  memset(name65, 'n', 65);
  name65[65] = '\0';
  snprintf(ini, sizeof ini, "[broadcaster:%s]\ntoken = t\n", name65);
  expect_err(t, load(t, ini, NULL), "config: ");
  expect_err(t, load(t, "[broadcaster:bridge]\ntoken = t\n", NULL), "config: broadcaster:bridge: the name must be");
  expect_err(t, load(t, "[broadcaster:a b]\ntoken = t\n", NULL), "config: broadcaster:a b: the name must be");
  expect_err(t, load(t, "[broadcaster:]\ntoken = t\n", NULL), "the name must be");
  expect_err(t, load(t, "[broadcaster:Alice]\ntoken = t\n[broadcaster:alice]\ntoken = u\n", NULL),
             "names differing only in case");
  /* Exactly one source. */
  expect_err(t, load(t, "[broadcaster:alice]\ntoken = t\nurl_file = /x\n", NULL),
             "config: broadcaster:alice: set exactly one of token, token_file, url, url_file");
  expect_err(t, load(t, "[broadcaster:alice]\ntoken = t\ntoken = u\n", NULL),
             "config: broadcaster:alice.token: set twice");
  expect_err(t, load(t, "[broadcaster:alice]\n", NULL), "config: broadcaster:alice: no token");
  expect_err(t, load(t, "[broadcaster:alice]\npassword = t\n", NULL),
             "config: broadcaster:alice.password: unknown key");
  expect_err(t, load(t, "[broadcaster:alice]\ntoken_file = /nonexistent/tok\n", NULL),
             "config: broadcaster:alice.token_file: cannot read /nonexistent/tok");
  /* The session's rules, at load time. */
  expect_err(t, load(t, "[broadcaster:alice]\nurl = https://example.com/nofeed\n", NULL),
             "config: broadcaster:alice.url: not a usable feed URL");
  expect_err(t, load(t, "[broadcaster:alice]\nurl = http://example.com/events/alice/t/\n", NULL),
             "config: broadcaster:alice.url: not a usable feed URL");
  /* At least one broadcaster. */
  expect_err(t, load(t, "", NULL), "config: no broadcaster");
}

static void test_env_broadcasters(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  const char *tokf = put(t, "tok_b2", "tok-b2\n", (size_t)-1);
  char env_file[300];

  snprintf(env_file, sizeof env_file, "CB2MQTT_BROADCASTER_BOB_2_TOKEN_FILE=%s", tokf);
  {
    char *env[] = {"CB2MQTT_BROADCASTERS=alice, bob-2", "CB2MQTT_BROADCASTER_ALICE_TOKEN=tok-a",
                   env_file, NULL};
    expect_ok(t, load(t, "", env));
    assert_int_equal(c->n_broadcasters, 2);
    assert_string_equal(c->broadcasters[0].name, "alice");
    assert_string_equal(c->broadcasters[0].token, "tok-a");
    assert_string_equal(c->broadcasters[1].name, "bob-2");
    assert_string_equal(c->broadcasters[1].token, "tok-b2");
    assert_string_equal(c->broadcaster_origins[0], "env CB2MQTT_BROADCASTER_ALICE_TOKEN");
  }
  {
    /* The environment's source replaces the file's: the missing
     * token_file is never read. */
    char *env[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_URL=http://127.0.0.1:1/events/alice/t/",
                   NULL};
    expect_ok(t, load(t, "[broadcaster:alice]\ntoken_file = /nonexistent\n", env));
    assert_int_equal(c->n_broadcasters, 1);
    assert_null(c->broadcasters[0].token);
    assert_string_equal(c->broadcasters[0].url, "http://127.0.0.1:1/events/alice/t/");
  }
  {
    char *env[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_CAROL_TOKEN=x", NULL};
    expect_err(t, load(t, "[broadcaster:alice]\ntoken = t\n", env),
               "config: CB2MQTT_BROADCASTER_CAROL_TOKEN: unknown variable (list new broadcasters");
  }
  {
    /* A file's broadcaster takes its secret from the environment without
     * being listed again. */
    char *env[] = {"CB2MQTT_BROADCASTER_ALICE_TOKEN=from-env", NULL};
    expect_ok(t, load(t, "[broadcaster:alice]\ntoken = from-file\n", env));
    assert_string_equal(c->broadcasters[0].token, "from-env");
    assert_string_equal(c->broadcaster_origins[0], "env CB2MQTT_BROADCASTER_ALICE_TOKEN");
  }
  {
    /* ... and so does a shortcut's, which then has two sources. */
    char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=a", "CB2MQTT_BROADCASTER_ALICE_TOKEN=b", NULL};
    expect_err(t, load(t, "", env), "config: broadcaster:alice: two secrets in the environment "
                                    "(CB_TOKEN and CB2MQTT_BROADCASTER_ALICE_TOKEN)");
  }
  {
    char *env[] = {"CB2MQTT_BROADCASTERS=a-b,a_b", "CB2MQTT_BROADCASTER_A_B_TOKEN=t", NULL};
    expect_err(t, load(t, "", env),
               "config: CB2MQTT_BROADCASTER_A_B_TOKEN: ambiguous: broadcasters a-b and a_b share this name");
  }
  {
    /* Listed names without their own variables are fine. */
    char *env[] = {"CB2MQTT_BROADCASTERS=a-b,a_b", "CB2MQTT_BROADCASTER_A_B_URL=t", NULL};
    expect_err(t, load(t, "[broadcaster:a-b]\ntoken = t1\n[broadcaster:a_b]\ntoken = t2\n", env),
               "ambiguous");
    char *env2[] = {"CB2MQTT_BROADCASTERS=a-b,a_b", NULL};
    expect_ok(t, load(t, "[broadcaster:a-b]\ntoken = t1\n[broadcaster:a_b]\ntoken = t2\n", env2));
    assert_int_equal(c->n_broadcasters, 2);
  }
  {
    char *env[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=t",
                   "CB2MQTT_BROADCASTER_ALICE_URL=http://127.0.0.1:1/events/alice/t/", NULL};
    expect_err(t, load(t, "", env), "config: broadcaster:alice: two secrets in the environment");
  }
  {
    char *env[] = {"CB2MQTT_BROADCASTERS=alice,bridge", NULL};
    expect_err(t, load(t, "", env), "config: broadcaster:bridge: the name must be");
  }
  {
    char *env[] = {"CB2MQTT_BROADCASTERS=alice", NULL};
    expect_err(t, load(t, "", env), "config: broadcaster:alice: no token");
  }
}

static void test_shortcuts(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  const char *tokf = put(t, "cb_token", "tok-from-file\n", (size_t)-1);
  char env_file[300];

  {
    char *env[] = {"CB_EVENTS_URL=http://127.0.0.1:8080/events/alice/SeCrEt-1/", NULL};
    expect_ok(t, load(t, "", env));
    assert_int_equal(c->n_broadcasters, 1);
    assert_string_equal(c->broadcasters[0].name, "alice");
    assert_string_equal(c->broadcasters[0].url, "http://127.0.0.1:8080/events/alice/SeCrEt-1/");
    assert_null(c->broadcasters[0].token);
  }
  {
    char *env[] = {"CB_EVENTS_URL=https://eventsapi.chaturbate.com/events/alice/SeCrEt-1/",
                   "CB_USERNAME=alice", NULL};
    expect_ok(t, load(t, "", env));
  }
  {
    char *env[] = {"CB_EVENTS_URL=https://eventsapi.chaturbate.com/events/alice/SeCrEt-1/",
                   "CB_USERNAME=bob", NULL};
    expect_err(t, load(t, "", env), "config: CB_USERNAME: differs from the user name in CB_EVENTS_URL");
  }
  {
    char *env[] = {"CB_EVENTS_URL=http://example.com/events/alice/SeCrEt-1/", NULL};
    expect_err(t, load(t, "", env), "config: CB_EVENTS_URL: not a feed URL");
    assert_null(strstr(t->err, "SeCrEt-1"));
  }
  {
    char *env[] = {"CB_EVENTS_URL=https://eventsapi.chaturbate.com/events/bridge/SeCrEt-1/", NULL};
    expect_err(t, load(t, "", env), "the name must be");
    assert_null(strstr(t->err, "SeCrEt-1"));
  }
  snprintf(env_file, sizeof env_file, "CB_TOKEN_FILE=%s", tokf);
  {
    char *env[] = {"CB_USERNAME=alice", env_file, NULL};
    expect_ok(t, load(t, "", env));
    assert_string_equal(c->broadcasters[0].token, "tok-from-file");
    assert_string_equal(c->broadcaster_origins[0], "env CB_TOKEN_FILE");
  }
  {
    char *env[] = {"CB_USERNAME=alice", "CB_TOKEN_FILE=/nonexistent/t", NULL};
    expect_err(t, load(t, "", env), "config: broadcaster:alice.token_file: cannot read /nonexistent/t");
  }
  {
    char *env[] = {"CB_TOKEN=t", NULL};
    expect_err(t, load(t, "", env), "config: CB_TOKEN: needs CB_USERNAME");
  }
  {
    char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=t", env_file, NULL};
    expect_err(t, load(t, "", env), "config: CB_TOKEN and CB_TOKEN_FILE: set only one");
  }
  {
    char *env[] = {"CB_EVENTS_URL=http://127.0.0.1:1/events/alice/t/", "CB_TOKEN=t", "CB_USERNAME=alice", NULL};
    expect_err(t, load(t, "", env), "config: CB_EVENTS_URL: set it or CB_TOKEN");
  }
  {
    /* A shortcut adds to the file's broadcasters. */
    char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=ta", NULL};
    expect_ok(t, load(t, "[broadcaster:bob]\ntoken = tb\n", env));
    assert_int_equal(c->n_broadcasters, 2);
    assert_string_equal(c->broadcasters[1].name, "alice");
  }
  {
    /* Same broadcaster in the file: the environment wins. */
    char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=from-env", NULL};
    expect_ok(t, load(t, "[broadcaster:alice]\ntoken = from-file\n", env));
    assert_int_equal(c->n_broadcasters, 1);
    assert_string_equal(c->broadcasters[0].token, "from-env");
  }
  {
    char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=bad\x01tok", NULL};
    expect_err(t, load(t, "", env), "config: broadcaster:alice.token: not a usable token");
  }
}

static void test_credentials(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char creds[300], dir[200];

  snprintf(dir, sizeof dir, "%s/creds", t->dir);
  assert_int_equal(mkdir(dir, 0700), 0);
  put(t, "creds/cb_token", "single-tok\n", (size_t)-1);
  put(t, "creds/cb_token_bob", "bob-tok\n", (size_t)-1);
  put(t, "creds/mqtt_password", "mqtt-pw\n", (size_t)-1);
  snprintf(creds, sizeof creds, "CREDENTIALS_DIRECTORY=%s", dir);
  {
    char *env[] = {creds, "CB_USERNAME=alice", "CB2MQTT_MQTT_USERNAME=u", NULL};
    expect_ok(t, load(t, "", env));
    assert_string_equal(c->broadcasters[0].token, "single-tok");
    assert_string_equal(c->broadcaster_origins[0], "credential cb_token");
    assert_string_equal(c->mqtt.password, "mqtt-pw");
    assert_int_equal(c->origin[2].layer, CB2M_FROM_CREDENTIAL);
  }
  {
    /* With two broadcasters cb_token is nobody's. */
    char *env[] = {creds, "CB2MQTT_MQTT_USERNAME=u", NULL};
    expect_ok(t, load(t, "[broadcaster:bob]\n", env));
    assert_string_equal(c->broadcasters[0].token, "bob-tok");
    assert_string_equal(c->broadcaster_origins[0], "credential cb_token_bob");
    expect_err(t, load(t, "[broadcaster:bob]\n[broadcaster:alice]\n", env),
               "config: broadcaster:alice: no token: set token, token_file, url or url_file, or provide the credential cb_token_alice");
  }
  {
    /* Anything set explicitly wins over credentials. */
    char *env[] = {creds, "CB_USERNAME=alice", "CB_TOKEN=explicit", "CB2MQTT_MQTT_USERNAME=u",
                   "CB2MQTT_MQTT_PASSWORD=explicit-pw", NULL};
    expect_ok(t, load(t, "", env));
    assert_string_equal(c->broadcasters[0].token, "explicit");
    assert_string_equal(c->mqtt.password, "explicit-pw");
  }
  {
    /* Without CREDENTIALS_DIRECTORY nothing is looked up. */
    char *env[] = {"CB_USERNAME=alice", NULL};
    expect_err(t, load(t, "", env), "config: broadcaster:alice: no token");
  }
  {
    /* The credential password needs a user name like any other. */
    char *env[] = {creds, "CB_USERNAME=alice", NULL};
    expect_err(t, load(t, "", env), "config: mqtt.password: needs mqtt.username");
  }
  {
    /* A credential that exists but cannot be used is an error naming it. */
    char *env[] = {creds, "CB2MQTT_MQTT_USERNAME=u", NULL};
    put(t, "creds/cb_token_carol", "\n", (size_t)-1);
    expect_err(t, load(t, "[broadcaster:carol]\n[broadcaster:bob]\n", env),
               "config: broadcaster:carol.token (credential cb_token_carol):");
  }
}

/* ---- INI errors ------------------------------------------------------------------- */

/* After an authentication failure the bridge reads the secret's file
 * again (SPEC 5): each source remembers its file, or none when the secret
 * was given directly. */
static void test_reread_secret(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char ini[600], creds[300], dir[200], err[512], *secret = (char *)"x";
  const char *tok = put(t, "tok", "old-tok\n", (size_t)-1);
  const char *url = put(t, "url", "http://127.0.0.1:9/events/alice/old-tok/\n", (size_t)-1);

  snprintf(ini, sizeof ini, "[broadcaster:alice]\ntoken_file = %s\n[broadcaster:bob]\nurl_file = %s\n"
           "[broadcaster:carol]\ntoken = direct\n", tok, url);
  expect_ok(t, load(t, ini, NULL));
  assert_string_equal(c->broadcasters[0].secret_file, tok);
  assert_string_equal(c->broadcasters[1].secret_file, url);
  assert_null(c->broadcasters[2].secret_file);
  put(t, "tok", "new-tok\r\n", (size_t)-1);
  assert_int_equal(cb2m_config_reread_secret(&c->broadcasters[0], &secret, err, sizeof err), 0);
  assert_string_equal(secret, "new-tok");
  cb2m_config_secret_free(secret);
  assert_int_equal(cb2m_config_reread_secret(&c->broadcasters[1], &secret, err, sizeof err), 0);
  assert_string_equal(secret, "http://127.0.0.1:9/events/alice/old-tok/");
  cb2m_config_secret_free(secret);
  assert_int_equal(cb2m_config_reread_secret(&c->broadcasters[2], &secret, err, sizeof err), CBEV_EINVAL);
  assert_null(secret);
  /* The rules of the start; the message names the file, never the content. */
  put(t, "tok", "two\nlines-secret\n", (size_t)-1);
  assert_int_equal(cb2m_config_reread_secret(&c->broadcasters[0], &secret, err, sizeof err), CBEV_EPARSE);
  assert_null(secret);
  assert_non_null(strstr(err, "broadcaster:alice:"));
  assert_non_null(strstr(err, tok));
  assert_null(strstr(err, "lines-secret"));
  put(t, "tok", "", 0);
  assert_int_equal(cb2m_config_reread_secret(&c->broadcasters[0], &secret, err, sizeof err), CBEV_EPARSE);
  assert_non_null(strstr(err, "is empty"));
  assert_int_equal(remove(tok), 0);
  assert_int_equal(cb2m_config_reread_secret(&c->broadcasters[0], &secret, err, sizeof err), CBEV_EIO);
  assert_non_null(strstr(err, "No such file"));
  /* A systemd credential and CB_TOKEN_FILE are files too; CB_TOKEN is not. */
  snprintf(dir, sizeof dir, "%s/creds", t->dir);
  assert_int_equal(mkdir(dir, 0700), 0);
  put(t, "creds/cb_token_alice", "cred-tok\n", (size_t)-1);
  snprintf(creds, sizeof creds, "CREDENTIALS_DIRECTORY=%s", dir);
  {
    char *env[] = {creds, NULL};
    expect_ok(t, load(t, "[broadcaster:alice]\n", env));
    assert_non_null(strstr(c->broadcasters[0].secret_file, "/creds/cb_token_alice"));
    put(t, "creds/cb_token_alice", "cred-tok-2\n", (size_t)-1);
    assert_int_equal(cb2m_config_reread_secret(&c->broadcasters[0], &secret, err, sizeof err), 0);
    assert_string_equal(secret, "cred-tok-2");
    cb2m_config_secret_free(secret);
  }
  {
    const char *f = put(t, "tok2", "env-tok\n", (size_t)-1);
    char var[300];
    char *env[] = {"CB_USERNAME=alice", var, NULL};
    snprintf(var, sizeof var, "CB_TOKEN_FILE=%s", f);
    expect_ok(t, load(t, "", env));
    assert_string_equal(c->broadcasters[0].secret_file, f);
  }
  {
    char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=plain", NULL};
    expect_ok(t, load(t, "", env));
    assert_null(c->broadcasters[0].secret_file);
  }
}

static void test_ini_errors(void **state) {
  fixture *t = *state;
  char want[512], *line;
  const size_t mb = 1000 * 1000;

  snprintf(want, sizeof want, "config: mqtt.qos: set twice (%s:2 and line 4)", t->ini);
  expect_err(t, load(t, "[mqtt]\nqos = 1\n; comment\nqos = 2\n", NULL), want);
  snprintf(want, sizeof want, "config: mqtt.bogus: unknown key (%s:3)", t->ini);
  expect_err(t, load(t, "[mqtt]\n\nbogus = 1\n", NULL), want);
  snprintf(want, sizeof want, "config: %s:2: unknown section [mqt]", t->ini);
  expect_err(t, load(t, "\n[mqt]\nqos = 1\n", NULL), want);
  snprintf(want, sizeof want, "config: %s:1: unknown section [stuff]", t->ini);
  expect_err(t, load(t, "[stuff]\n", NULL), want); /* even with no key in it */
  snprintf(want, sizeof want, "config: %s:3: missing ']'", t->ini);
  expect_err(t, load(t, "[mqtt]\nqos = 1\n[events\n", NULL), want);
  snprintf(want, sizeof want, "config: %s:2: syntax error", t->ini);
  expect_err(t, load(t, "[mqtt]\njust_a_word\nbogus = 1\n", NULL), want);
  snprintf(want, sizeof want, "config: %s:1: qos is outside any section", t->ini);
  expect_err(t, load(t, "qos = 1\n", NULL), want);
  snprintf(want, sizeof want, "config: %s:1: text after the section header", t->ini);
  expect_err(t, load(t, "[mqtt] qos = 1\n", NULL), want);

  /* A 1 MB line: refused by line number, not cut. */
  line = malloc(mb + 16);
  assert_non_null(line);
  memcpy(line, "[mqtt]\nclient_id = ", 19);
  memset(line + 19, 'x', mb - 19);
  line[mb] = '\0';
  expect_err(t, load(t, line, NULL), "");
  snprintf(want, sizeof want, "config: %s:2: line longer than 198 bytes", t->ini);
  assert_non_null(strstr(t->err, want));
  /* 198 bytes pass, 199 do not. */
  memcpy(line, "[broadcaster:a]\ntoken=t\n[mqtt]\nclient_id = ", 43);
  memset(line + 43, 'y', 198 - 12);
  strcpy(line + 43 + 198 - 12, "\n");
  expect_ok(t, load(t, line, NULL));
  assert_int_equal(strlen(t->cfg.mqtt.client_id), 198 - 12);
  memset(line + 43, 'y', 199 - 12);
  strcpy(line + 43 + 199 - 12, "\n");
  snprintf(want, sizeof want, "config: %s:4: line longer than 198 bytes", t->ini);
  expect_err(t, load(t, line, NULL), want);
  free(line);

  /* A file over 1 MiB. */
  line = malloc(1024 * 1024 + 2);
  assert_non_null(line);
  memset(line, '\n', 1024 * 1024 + 1);
  line[1024 * 1024 + 1] = '\0';
  expect_err(t, load(t, line, NULL), "larger than 1 MiB");
  free(line);

  /* NUL byte. */
  put(t, "cb2mqtt.ini", "[mqtt]\nqos = 1\0\n", 16);
  {
    char *argv[] = {"cb2mqtt", "-c", t->ini, NULL};
    cb2m_config_free(&t->cfg);
    assert_int_equal(cb2m_config_load(&t->cfg, 3, argv, NULL, t->err, sizeof t->err), CBEV_EINVAL);
    assert_non_null(strstr(t->err, ":2: NUL byte"));
  }
  /* -c names a file that must exist. */
  {
    char *argv[] = {"cb2mqtt", "-c", "/nonexistent/cb2mqtt.ini", NULL};
    cb2m_config_free(&t->cfg);
    assert_int_equal(cb2m_config_load(&t->cfg, 3, argv, NULL, t->err, sizeof t->err), CBEV_EINVAL);
    assert_string_equal(t->err, "config: /nonexistent/cb2mqtt.ini: cannot read: No such file or directory");
  }
}

static void test_ini_forms(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;

  /* BOM, CRLF, indentation (never a continuation), comments of both kinds,
   * inline comments, ':' as separator, a repeated section. */
  expect_ok(t, load(t,
                    "\xEF\xBB\xBF; cb2mqtt\r\n"
                    "# also a comment\r\n"
                    "[mqtt]\r\n"
                    "  qos = 0   ; inline\r\n"
                    "\tkeepalive: 30\r\n"
                    "[events]\n"
                    "publish = tip,follow\n"
                    "[mqtt]\n"
                    "  base_topic = home/cb\n"
                    "[broadcaster:alice]  ; first\n"
                    "  token = t\n",
                    NULL));
  assert_int_equal(c->mqtt.qos, 0);
  assert_int_equal(c->mqtt.keepalive, 30);
  assert_string_equal(c->mqtt.base_topic, "home/cb");
  assert_int_equal(c->events.publish_mask, (1u << CBEV_EVENT_TIP) | (1u << CBEV_EVENT_FOLLOW));
  assert_int_equal(c->origin[4].line, 9);
  /* Empty optional values mean unset. */
  expect_ok(t, load(t, "[mqtt]\nusername =\nca_file =\n[broadcaster:a]\ntoken=t\n", NULL));
  assert_null(c->mqtt.username);
  assert_null(c->mqtt.ca_file);
  /* Later errors do not hide an earlier syntax error, and vice versa. */
  expect_err(t, load(t, "[mqtt]\nbogus = 1\nword\n", NULL), ":2)");
}

/* ---- command line ------------------------------------------------------------------------ */

static void test_command_line(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char *broken_env[] = {"CB2MQTT_MQTT_QOS=9", NULL};

  {
    char *a[] = {"--help", NULL};
    assert_int_equal(load_args(t, NULL, broken_env, a), 0); /* nothing else is read */
    assert_int_equal(c->help, 1);
  }
  {
    char *a[] = {"--version", NULL};
    assert_int_equal(load_args(t, "[nonsense", broken_env, a), 0);
    assert_int_equal(c->version, 1);
  }
  {
    char *a[] = {"--token=SeCrEt-9", NULL};
    expect_err(t, load_args(t, "", NULL, a), "cb2mqtt: unknown option --token");
    assert_null(strstr(t->err, "SeCrEt-9"));
  }
  {
    char *a[] = {"--tok", "SeCrEt-9", NULL};
    expect_err(t, load_args(t, "", NULL, a), "cb2mqtt: unknown option --tok ");
    assert_null(strstr(t->err, "SeCrEt-9"));
  }
  {
    char *a[] = {"--X=SeCrEt-9", NULL};
    expect_err(t, load_args(t, "", NULL, a), "cb2mqtt: unknown option (see --help");
    assert_null(strstr(t->err, "SeCrEt-9"));
  }
  {
    char *a[] = {"SeCrEt-9", NULL};
    expect_err(t, load_args(t, "", NULL, a), "cb2mqtt: unexpected argument");
    assert_null(strstr(t->err, "SeCrEt-9"));
  }
  {
    char *a[] = {"-x", NULL};
    expect_err(t, load_args(t, "", NULL, a), "cb2mqtt: unknown option -x");
  }
  {
    char *a[] = {"--log-level", NULL};
    expect_err(t, load_args(t, "", NULL, a), "cb2mqtt: option --log-level needs a value");
  }
  {
    char *argv[] = {"cb2mqtt", "-c", NULL};
    cb2m_config_free(c);
    assert_int_equal(cb2m_config_load(c, 2, argv, NULL, t->err, sizeof t->err), CBEV_EINVAL);
    assert_non_null(strstr(t->err, "option -c needs a value"));
  }
  {
    /* --healthcheck needs state_dir, not a broadcaster. */
    char *a[] = {"--healthcheck", NULL};
    char *env[] = {"CB2MQTT_EVENTS_STATE_DIR=/tmp/hc", NULL};
    expect_ok(t, load_args(t, "", env, a));
    assert_int_equal(c->healthcheck, 1);
    assert_int_equal(c->n_broadcasters, 0);
    assert_string_equal(c->events.state_dir, "/tmp/hc");
    expect_err(t, load_args(t, "", broken_env, a), "config: mqtt.qos:");
  }
  {
    char *a[] = {"--check-config", "--print-config", "--log-format", "json", NULL};
    char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=t", NULL};
    expect_ok(t, load_args(t, "", env, a));
    assert_int_equal(c->check_config, 1);
    assert_int_equal(c->print_config, 1);
    assert_int_equal(c->log.json, 1);
    assert_int_equal(c->origin[31].layer, CB2M_FROM_FLAG); /* log.format, the last key */
  }
  /* Unknown CB2MQTT_ variables are errors; other variables are not ours. */
  expect_err(t, load_with(t, "CB2MQTT_MQTT_URI=mqtt://x"), "config: CB2MQTT_MQTT_URI: unknown variable");
  expect_ok(t, load_with(t, "CB_SOMETHING_ELSE=1"));
  expect_ok(t, load_with(t, "HOME=/root"));
}

/* ---- output never carries a secret ------------------------------------------------------------- */

static char *print_text(const cb2m_config *c) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);

  assert_non_null(f);
  assert_int_equal(cb2m_config_print(c, f), 0);
  assert_int_equal(fclose(f), 0);
  return buf;
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

static void test_print_masks_secrets(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char ini[1024], *out;
  const char *tokf = put(t, "tok_carol", "Carol-Secret-Tok\n", (size_t)-1);
  char *env[] = {"CB2MQTT_MQTT_PASSWORD=Mqtt-Secret-Pw", "CB2MQTT_MQTT_QOS=2",
                 "CB_EVENTS_URL=http://127.0.0.1:1/events/dave/Dave-Secret-Tok/", NULL};

  snprintf(ini, sizeof ini,
           "[mqtt]\nusername = user1\n"
           "[broadcaster:alice]\ntoken = Alice-Secret-Tok\n"
           "[broadcaster:bob]\nurl = http://127.0.0.1:1/events/bob/Bob-Secret-Tok/\n"
           "[broadcaster:carol]\ntoken_file = %s\n",
           tokf);
  expect_ok(t, load(t, ini, env));
  assert_string_equal(c->broadcasters[2].token, "Carol-Secret-Tok");
  out = print_text(c);
  assert_null(strstr(out, "Secret"));
  assert_int_equal(count(out, "***"), 5 + 1); /* 4 broadcasters, the password, the header */
  assert_non_null(strstr(out, "[broadcaster:bob]\nurl   = ***"));
  assert_non_null(strstr(out, "password = ***"));
  assert_non_null(strstr(out, "; env CB2MQTT_MQTT_PASSWORD\n"));
  assert_non_null(strstr(out, "; env CB2MQTT_MQTT_QOS\n"));
  assert_non_null(strstr(out, "; env CB_EVENTS_URL\n"));
  snprintf(ini, sizeof ini, "username = %-32s ; file %s:2\n", "user1", t->ini);
  if (!strstr(out, ini))
    fail_msg("no '%s' in:\n%s", ini, out);
  snprintf(ini, sizeof ini, "keepalive = %-31s ; default\n", "60");
  assert_non_null(strstr(out, ini));
  free(out);
}

static void test_info_json_has_no_secret(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char *env[] = {"CB2MQTT_MQTT_USERNAME=user1", "CB2MQTT_MQTT_PASSWORD=Mqtt-Secret-Pw",
                 "CB_EVENTS_URL=http://127.0.0.1:1/events/dave/Dave-Secret-Tok/",
                 "CB2MQTT_EVENTS_PUBLISH=tip", NULL};
  char *text;
  cJSON *root, *mqtt, *events;

  expect_ok(t, load(t, "[broadcaster:alice]\ntoken = Alice-Secret-Tok\n", env));
  text = cb2m_config_info_json(c);
  assert_non_null(text);
  assert_null(strstr(text, "Secret"));
  assert_null(strstr(text, "password"));
  root = cJSON_Parse(text);
  assert_non_null(root);
  mqtt = cJSON_GetObjectItemCaseSensitive(root, "mqtt");
  events = cJSON_GetObjectItemCaseSensitive(root, "events");
  assert_true(cJSON_IsObject(mqtt) && cJSON_IsObject(events));
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(mqtt, "username")->valuestring, "user1");
  assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(mqtt, "qos")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(mqtt, "ca_file")));
  assert_true(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(root, "homeassistant"), "discovery")));
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(events, "publish")->valuestring, "tip");
  assert_true(cJSON_GetObjectItemCaseSensitive(events, "retry_factor")->valuedouble == 2.0);
  assert_string_equal(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "log"), "level")->valuestring,
      "info");
  cJSON_Delete(root);
  cJSON_free(text);
}

static void test_errors_never_quote_secrets(void **state) {
  fixture *t = *state;
  const char *bad = put(t, "bad_tok", "Secret-Line-1\nSecret-Line-2\n", (size_t)-1);
  char ini[512];

  snprintf(ini, sizeof ini, "[broadcaster:alice]\ntoken_file = %s\n", bad);
  expect_err(t, load(t, ini, NULL), "config: broadcaster:alice.token_file:");
  assert_null(strstr(t->err, "Secret"));
  expect_err(t, load(t, "[broadcaster:alice]\nurl = https://example.com/Secret-Url-Tok\n", NULL),
             "config: broadcaster:alice.url:");
  assert_null(strstr(t->err, "Secret"));
  expect_err(t, load(t, "[broadcaster:alice]\ntoken = Secret-A\ntoken = Secret-B\n", NULL), "set twice");
  assert_null(strstr(t->err, "Secret"));
  expect_err(t, load_with(t, "CB2MQTT_MQTT_PASSWORD=Secret\x02pw"), "config: mqtt.password:");
  assert_null(strstr(t->err, "Secret"));
}

/* ---- help and the example ----------------------------------------------------------------------- */

static void test_usage(void **state) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  static const char *const keys[] = {"url", "health_interval", "shared_rate_limit", "max_queued",
                                     "prefix", "format", "expose_anonymous_tippers"};
  (void)state;

  assert_non_null(f);
  cb2m_config_usage(f);
  assert_int_equal(fclose(f), 0);
  assert_non_null(strstr(buf, "usage: cb2mqtt [-c FILE] [--check-config] [--print-config] [--healthcheck]"));
  assert_non_null(strstr(buf, "CB2MQTT_BROADCASTER_<NAME>_TOKEN"));
  assert_non_null(strstr(buf, "CREDENTIALS_DIRECTORY"));
  assert_non_null(strstr(buf, "[homeassistant]"));
  assert_non_null(strstr(buf, "5..65535"));
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char want[64];
    snprintf(want, sizeof want, "\n  %s ", keys[i]);
    if (!strstr(buf, want))
      fail_msg("--help lacks %s", keys[i]);
  }
  free(buf);
}

static void test_example_ini(void **state) {
  fixture *t = *state;
  cb2m_config *c = &t->cfg;
  char *gen = NULL, *file = NULL, *out;
  size_t len = 0;
  FILE *f = open_memstream(&gen, &len);
  const char *path = CBEV_TEST_DATA_DIR "/../../config/cb2mqtt.ini";
  char creds[300], dir[200];
  long flen;

  assert_non_null(f);
  cb2m_config_example(f);
  assert_int_equal(fclose(f), 0);
  f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  flen = ftell(f);
  assert_true(flen > 0);
  rewind(f);
  file = calloc(1, (size_t)flen + 1);
  assert_non_null(file);
  assert_int_equal(fread(file, 1, (size_t)flen, f), (size_t)flen);
  fclose(f);
  if (strcmp(file, gen) != 0) {
    f = fopen("cb2mqtt.ini.generated", "wb");
    if (f) {
      fputs(gen, f);
      fclose(f);
    }
    fail_msg("config/cb2mqtt.ini differs from the table: copy cb2mqtt.ini.generated (in the test's "
             "working folder) over it");
  }
  /* It loads as is, under systemd credentials, and sets every key. */
  snprintf(dir, sizeof dir, "%s/creds", t->dir);
  assert_int_equal(mkdir(dir, 0700), 0);
  put(t, "creds/cb_token", "tok\n", (size_t)-1);
  snprintf(creds, sizeof creds, "CREDENTIALS_DIRECTORY=%s", dir);
  {
    char *env[] = {creds, NULL};
    expect_ok(t, load(t, gen, env));
  }
  assert_int_equal(c->n_broadcasters, 1);
  assert_string_equal(c->broadcasters[0].name, "alice");
  assert_int_equal(c->mqtt.qos, 1);
  assert_string_equal(c->events.rate_limit, "2000/60");
  /* Every key but the (commented) password comes from the file. */
  out = print_text(c);
  assert_int_equal(count(out, "; default"), 1);
  snprintf(dir, sizeof dir, "password = %-32s ; default\n", "");
  assert_non_null(strstr(out, dir));
  free(out);
  free(file);
  free(gen);
}

static void test_free_null_and_reuse(void **state) {
  fixture *t = *state;
  (void)t;
  cb2m_config_free(NULL);
  /* A failed load leaves a cfg that frees cleanly (ASan checks leaks). */
  expect_err(t, load(t, "[broadcaster:alice]\ntoken = t\n[broadcaster:bob]\ntoken_file = /nope\n", NULL),
             "config: broadcaster:bob.token_file");
  cb2m_config_free(&t->cfg);
  cb2m_config_free(&t->cfg); /* twice is fine: it was zeroed */
  assert_null(t->cfg.broadcasters);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parsed_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mqtt_url, setup, teardown),
      cmocka_unit_test_setup_teardown(test_topics_and_api, setup, teardown),
      cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secret_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_broadcaster_sections, setup, teardown),
      cmocka_unit_test_setup_teardown(test_env_broadcasters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shortcuts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reread_secret, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ini_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ini_forms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_print_masks_secrets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_info_json_has_no_secret, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors_never_quote_secrets, setup, teardown),
      cmocka_unit_test(test_usage),
      cmocka_unit_test_setup_teardown(test_example_ini, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_null_and_reuse, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of logsink.c: the secrets list holds every broadcaster's
 * token however it was configured (token, token_file, url, url_file,
 * CB_EVENTS_URL, CB_TOKEN, systemd credentials) and the MQTT password, and
 * a log line shows none of them, raw or percent-encoded. */
#define _XOPEN_SOURCE 700 /* nftw() */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "logsink.h"

/* Characters a URL must encode, so raw and encoded forms differ. */
#define TOKEN "s3cr+t=tok~en!"
#define TOKEN_URL "s3cr%2Bt%3Dtok~en%21"
#define FEED "https://eventsapi.chaturbate.com/events/alice/" TOKEN_URL "/"
#define PASSWORD "mqtt-pw-9"

static char g_dir[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static const char *put(const char *name, const char *text) {
  static char path[8][256];
  static int next;
  char *p = path[next++ % 8];
  FILE *f;

  snprintf(p, 256, "%s/%s", g_dir, name);
  assert_non_null(f = fopen(p, "w"));
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
  return p;
}

/* Loads ini (may be "") with env, collects the secrets and checks them:
 * the token and the password are listed, and a log line holding the feed
 * URL and both secrets in every form shows none. */
static void check(const char *what, const char *ini, char **env) {
  char *argv[] = {"cb2mqtt", "-c", (char *)put("c.ini", ini), NULL};
  char err[512], *out = NULL;
  size_t out_len = 0;
  cb2m_config cfg;
  cb2m_secrets s = {0};
  cb2m_logsink sink;
  int have_tok = 0, have_pw = 0;
  FILE *mem;

  if (cb2m_config_load(&cfg, 3, argv, env, err, sizeof err) != 0)
    fail_msg("%s: %s", what, err);
  assert_int_equal(cb2m_secrets_collect(&cfg, &s), 0);
  for (size_t i = 0; i < s.n; i++) {
    have_tok |= strcmp(s.v[i], TOKEN) == 0;
    have_pw |= strcmp(s.v[i], PASSWORD) == 0;
  }
  if (!have_tok || !have_pw)
    fail_msg("%s: token %s, password %s in the secrets list", what, have_tok ? "" : "NOT",
             have_pw ? "" : "NOT");
  assert_non_null(mem = open_memstream(&out, &out_len));
  sink = (cb2m_logsink){mem, 0, (const char **)s.v, s.n};
  cb2m_logsink_write(&sink, CBEV_LOG_DEBUG,
                     "GET " FEED "?i=1-0 token " TOKEN " lower s3cr%2bt%3dtok~en%21 pw " PASSWORD);
  fclose(mem);
  if (strstr(out, TOKEN) || strstr(out, TOKEN_URL) || strstr(out, "s3cr%2bt") ||
      strstr(out, "tok~en") || strstr(out, PASSWORD))
    fail_msg("%s: a secret reached the log: %s", what, out);
  assert_non_null(strstr(out, "events/alice/***/"));
  free(out);
  cb2m_secrets_cleanup(&s);
  cb2m_secrets_cleanup(&s); /* twice is fine */
  cb2m_config_free(&cfg);
}

static void test_every_token_source(void **state) {
  char creds[128], ini[512];
  (void)state;

  snprintf(creds, sizeof creds, "CREDENTIALS_DIRECTORY=%s/creds", g_dir);
  {
    char *env[] = {"CB2MQTT_MQTT_USERNAME=u", "CB2MQTT_MQTT_PASSWORD=" PASSWORD, NULL};
    check("token", "[broadcaster:alice]\ntoken = " TOKEN "\n", env);
    snprintf(ini, sizeof ini, "[broadcaster:alice]\ntoken_file = %s\n", put("tok", TOKEN "\n"));
    check("token_file", ini, env);
    check("url", "[broadcaster:alice]\nurl = " FEED "\n", env);
    snprintf(ini, sizeof ini, "[broadcaster:alice]\nurl_file = %s\n", put("url", FEED "\n"));
    check("url_file", ini, env);
  }
  {
    char *env[] = {"CB_EVENTS_URL=" FEED, "CB2MQTT_MQTT_USERNAME=u",
                   "CB2MQTT_MQTT_PASSWORD=" PASSWORD, NULL};
    check("CB_EVENTS_URL", "", env);
  }
  {
    char *env[] = {"CB_USERNAME=alice", "CB_TOKEN=" TOKEN, "CB2MQTT_MQTT_USERNAME=u",
                   "CB2MQTT_MQTT_PASSWORD=" PASSWORD, NULL};
    check("CB_TOKEN", "", env);
  }
  {
    char *env[] = {"CB_USERNAME=alice", "CB2MQTT_BROADCASTER_ALICE_URL=" FEED,
                   "CB2MQTT_MQTT_USERNAME=u", "CB2MQTT_MQTT_PASSWORD=" PASSWORD, NULL};
    check("CB2MQTT_BROADCASTER_ALICE_URL", "", env);
  }
  {
    char *env[] = {creds, "CB_USERNAME=alice", "CB2MQTT_MQTT_USERNAME=u", NULL};
    snprintf(ini, sizeof ini, "%s/creds", g_dir);
    assert_int_equal(mkdir(ini, 0700), 0);
    put("creds/cb_token", TOKEN "\n");
    put("creds/mqtt_password", PASSWORD "\n");
    check("credentials", "", env);
  }
}

static void test_many_broadcasters_and_none(void **state) {
  char ini[4096];
  size_t len = 0;
  cb2m_config cfg;
  cb2m_secrets s = {0};
  char err[512], *argv[] = {"cb2mqtt", "-c", NULL, NULL}, *env[] = {NULL};
  (void)state;

  for (int i = 0; i < 20; i++)
    len += (size_t)snprintf(ini + len, sizeof ini - len, "[broadcaster:b%d]\ntoken = t-%d\n", i, i);
  argv[2] = (char *)put("m.ini", ini);
  assert_int_equal(cb2m_config_load(&cfg, 3, argv, env, err, sizeof err), 0);
  assert_int_equal(cb2m_secrets_collect(&cfg, &s), 0);
  assert_int_equal(s.n, 20); /* no password configured */
  assert_string_equal(s.v[19], "t-19");
  cb2m_secrets_cleanup(&s);
  cb2m_config_free(&cfg);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "/tmp/cb2m-logsink-XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_token_source),
      cmocka_unit_test(test_many_broadcasters_and_none),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/* Unit tests of reload.c: the SIGHUP planner (what is added, removed,
 * changed, untouched; mqtt.* / log.* / restart-only keys), on settings
 * loaded by the real loader from an environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "reload.h"

#define TOK_A "tokAlice-0123456789abcdef"
#define TOK_B "tokBob-fedcba9876543210"
#define TOK_C "tokCarol-00112233445566"

static char empty_ini[] = "/tmp/cb2m-reload-test-XXXXXX";

/* Loads cfg from the NULL-terminated "K=V" list env and an empty file. */
static void load(cb2m_config *cfg, char **env) {
  char *argv[] = {"cb2mqtt", "-c", empty_ini, NULL};
  char err[512];

  if (cb2m_config_load(cfg, 3, argv, env, err, sizeof err) != 0)
    fail_msg("load: %s", err);
}

static void test_added_removed_changed_untouched(void **state) {
  char *env_old[] = {"CB2MQTT_BROADCASTERS=alice,bob,carol", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A,
                     "CB2MQTT_BROADCASTER_BOB_TOKEN=" TOK_B,
                     "CB2MQTT_BROADCASTER_CAROL_TOKEN=" TOK_C, NULL};
  /* bob removed, carol's token changed, dave added, alice as before. */
  char *env_new[] = {"CB2MQTT_BROADCASTERS=dave,carol,alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A,
                     "CB2MQTT_BROADCASTER_CAROL_TOKEN=" TOK_B,
                     "CB2MQTT_BROADCASTER_DAVE_TOKEN=" TOK_C, NULL};
  cb2m_config a, b;
  cb2m_reload_plan p;

  (void)state;
  load(&a, env_old);
  load(&b, env_new);
  assert_int_equal(cb2m_reload_plan_make(&a, &b, &p), 0);
  assert_int_equal(p.n_added, 1);
  assert_string_equal(b.broadcasters[p.added[0]].name, "dave");
  assert_int_equal(p.n_removed, 1);
  assert_string_equal(a.broadcasters[p.removed[0]].name, "bob");
  assert_int_equal(p.n_changed, 1);
  assert_string_equal(a.broadcasters[p.changed[0].old_i].name, "carol");
  assert_string_equal(b.broadcasters[p.changed[0].new_i].name, "carol");
  assert_int_equal(p.n_untouched, 1);
  assert_string_equal(a.broadcasters[p.untouched[0].old_i].name, "alice");
  assert_string_equal(b.broadcasters[p.untouched[0].new_i].name, "alice");
  assert_false(p.mqtt_changed);
  assert_false(p.log_changed);
  assert_string_equal(p.restart_key, "");
  cb2m_reload_plan_free(&p);
  cb2m_config_free(&a);
  cb2m_config_free(&b);
}

static void test_same_settings_touch_nothing(void **state) {
  char *env[] = {"CB2MQTT_BROADCASTERS=alice,bob", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A,
                 "CB2MQTT_BROADCASTER_BOB_TOKEN=" TOK_B, NULL};
  cb2m_config a, b;
  cb2m_reload_plan p;

  (void)state;
  load(&a, env);
  load(&b, env);
  assert_int_equal(cb2m_reload_plan_make(&a, &b, &p), 0);
  assert_int_equal(p.n_added + p.n_removed + p.n_changed, 0);
  assert_int_equal(p.n_untouched, 2);
  assert_false(p.mqtt_changed || p.log_changed || p.restart_key[0]);
  cb2m_reload_plan_free(&p);
  cb2m_config_free(&a);
  cb2m_config_free(&b);
}

static void test_sections(void **state) {
  char *env_old[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A, NULL};
  char *env_mqtt[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A,
                      "CB2MQTT_MQTT_URL=mqtt://127.0.0.1:1884", "CB2MQTT_LOG_LEVEL=debug", NULL};
  char *env_events[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A,
                        "CB2MQTT_EVENTS_MAX_QUEUED=77", NULL};
  cb2m_config a, b, c;
  cb2m_reload_plan p;
  char key[64] = "";

  (void)state;
  load(&a, env_old);
  load(&b, env_mqtt);
  load(&c, env_events);
  assert_int_equal(cb2m_reload_plan_make(&a, &b, &p), 0);
  assert_true(p.mqtt_changed);
  assert_true(p.log_changed);
  assert_string_equal(p.restart_key, "");
  assert_int_equal(p.n_untouched, 1);
  cb2m_reload_plan_free(&p);
  assert_true(cb2m_config_section_differs(&a, &b, "mqtt", key, sizeof key));
  assert_string_equal(key, "mqtt.url");
  assert_int_equal(cb2m_reload_plan_make(&a, &c, &p), 0);
  assert_false(p.mqtt_changed || p.log_changed);
  assert_string_equal(p.restart_key, "events.max_queued");
  cb2m_reload_plan_free(&p);
  cb2m_config_free(&a);
  cb2m_config_free(&b);
  cb2m_config_free(&c);
}

/* Each section's flag alone: a log change is not an mqtt change, and the
 * other way round. */
static void test_log_and_mqtt_apart(void **state) {
  char *env_old[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A, NULL};
  char *env_log[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A,
                     "CB2MQTT_LOG_LEVEL=debug", NULL};
  char *env_mqtt[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A,
                      "CB2MQTT_MQTT_KEEPALIVE=30", NULL};
  cb2m_config a, b, c;
  cb2m_reload_plan p;

  (void)state;
  load(&a, env_old);
  load(&b, env_log);
  load(&c, env_mqtt);
  assert_int_equal(cb2m_reload_plan_make(&a, &b, &p), 0);
  assert_true(p.log_changed);
  assert_false(p.mqtt_changed);
  cb2m_reload_plan_free(&p);
  assert_int_equal(cb2m_reload_plan_make(&a, &c, &p), 0);
  assert_true(p.mqtt_changed);
  assert_false(p.log_changed);
  assert_string_equal(p.restart_key, "");
  cb2m_reload_plan_free(&p);
  cb2m_config_free(&a);
  cb2m_config_free(&b);
  cb2m_config_free(&c);
}

/* mqtt.base_topic is an mqtt.* key like the others (a reconnect), and is
 * told apart: every topic the bridge keeps moves with it. */
static void test_base_topic_moves(void **state) {
  char *env_old[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A, NULL};
  char *env_new[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A,
                     "CB2MQTT_MQTT_BASE_TOPIC=home/cb", NULL};
  char *env_ka[] = {"CB2MQTT_BROADCASTERS=alice", "CB2MQTT_BROADCASTER_ALICE_TOKEN=" TOK_A,
                    "CB2MQTT_MQTT_KEEPALIVE=30", NULL};
  cb2m_config a, b, c;
  cb2m_reload_plan p;

  (void)state;
  load(&a, env_old);
  load(&b, env_new);
  load(&c, env_ka);
  assert_int_equal(cb2m_reload_plan_make(&a, &b, &p), 0);
  assert_true(p.mqtt_changed);
  assert_true(p.base_moved);
  assert_string_equal(p.restart_key, "");
  assert_int_equal(p.n_untouched, 1);
  cb2m_reload_plan_free(&p);
  assert_int_equal(cb2m_reload_plan_make(&a, &c, &p), 0);
  assert_true(p.mqtt_changed);
  assert_false(p.base_moved);
  cb2m_reload_plan_free(&p);
  assert_int_equal(cb2m_reload_plan_make(&b, &b, &p), 0);
  assert_false(p.mqtt_changed || p.base_moved);
  cb2m_reload_plan_free(&p);
  cb2m_config_free(&a);
  cb2m_config_free(&b);
  cb2m_config_free(&c);
}

static int make_ini(void **state) {
  int fd = mkstemp(empty_ini);

  (void)state;
  return fd < 0 || close(fd) != 0 ? -1 : 0;
}

static int remove_ini(void **state) {
  (void)state;
  return unlink(empty_ini);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_added_removed_changed_untouched),
      cmocka_unit_test(test_same_settings_touch_nothing),
      cmocka_unit_test(test_sections),
      cmocka_unit_test(test_log_and_mqtt_apart),
      cmocka_unit_test(test_base_topic_moves),
  };
  return cmocka_run_group_tests(tests, make_ini, remove_ini);
}

/* Unit tests of health.c: the per-broadcaster and the bridge's health
 * JSON (keys always present, null for what is unknown, never "none"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include <cjson/cJSON.h>

#include "health.h"

static void test_broadcaster_fresh(void **state) {
  cb2m_bc_metrics m = {0};
  cb2m_publish_error pe = {0};
  cb2m_bc_health h = {&m, 0, 0, -1, 0, 0, NULL, &pe};
  char *t;
  (void)state;
  t = cb2m_health_broadcaster_json(&h);
  assert_non_null(t);
  assert_string_equal(t, "{\"available\":false,\"polls\":0,\"retries\":0,\"queued\":0,"
                         "\"last_event_age_s\":null,\"last_api_error\":null,"
                         "\"last_publish_error\":null,\"events\":{}}");
  cJSON_free(t);
}

static void test_broadcaster_busy(void **state) {
  cb2m_bc_metrics m = {0};
  cb2m_publish_error pe = {"cb/alice/tip", 0x87, "reason code 0x87 (Not authorized)",
                           1764331200};
  cb2m_bc_health h = {&m, 1, 7, 12, 4, 503, "HTTP error", &pe};
  char *t;
  (void)state;
  m.polls = 9;
  m.poll_errors[CB2M_POLL_HTTP] = 2; /* 3 failed polls, so 3 retries */
  m.poll_errors[CB2M_POLL_TRANSPORT] = 1;
  m.events_by_type[CBEV_EVENT_TIP] = 2;
  m.events_by_type[CBEV_EVENT_UNKNOWN] = 1;
  t = cb2m_health_broadcaster_json(&h);
  assert_non_null(t);
  assert_string_equal(t, "{\"available\":true,\"polls\":9,\"retries\":3,\"queued\":7,"
                         "\"last_event_age_s\":12,\"last_api_error\":{\"error\":\"HTTP error\","
                         "\"http_status\":503},\"last_publish_error\":{\"topic\":\"cb/alice/tip\","
                         "\"reason_code\":135,\"reason\":\"reason code 0x87 (Not authorized)\","
                         "\"at\":\"2025-11-28T12:00:00Z\"},\"events\":{\"tip\":2,\"unknown\":1}}");
  cJSON_free(t);
}

static void test_bridge(void **state) {
  char *t;
  (void)state;
  t = cb2m_health_bridge_json(61, 1, 2, 3, 1, 2);
  assert_non_null(t);
  assert_string_equal(t, "{\"uptime_s\":61,\"mqtt\":{\"connected\":true,\"reconnects\":2},"
                         "\"broadcasters\":{\"total\":3,\"online\":1,\"failing\":2}}");
  cJSON_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_broadcaster_fresh),
      cmocka_unit_test(test_broadcaster_busy),
      cmocka_unit_test(test_bridge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

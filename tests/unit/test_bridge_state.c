/*
 * Unit tests of state.c: transitions for every event type (events built
 * by cbev_parse_response() from literal bodies), re-applied ids, the
 * exact state JSON, the small-topic values, and the state file (round
 * trip, corrupt files set aside).
 */
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

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "fsutil.h"
#include "state.h"
#include "tmpdir.h"

/* ---- helpers ------------------------------------------------------------- */

/* One upstream event of broadcaster alice; extra is more of `object`. */
#define EV(method, id, extra)                                                                   \
  "{\"method\":\"" method "\",\"id\":\"" id "\",\"object\":{\"broadcaster\":\"alice\"" extra "}}"
#define USER(name) ",\"user\":{\"username\":\"" name "\",\"gender\":\"m\"}"

/* Applies every event of "{"events":[events]}" to st; returns the OR of
 * the changed bits. */
static unsigned apply(cb2m_state *st, const char *events, int expose_anon) {
  char body[8192];
  cbev_batch *batch = NULL;
  unsigned changed = 0;
  int n = snprintf(body, sizeof body, "{\"events\":[%s],\"nextUrl\":null}", events);

  assert_true(n > 0 && (size_t)n < sizeof body);
  assert_int_equal(cbev_parse_response(body, (size_t)n, NULL, NULL, &batch), CBEV_OK);
  for (size_t i = 0; i < cbev_batch_count(batch); i++)
    assert_int_equal(cb2m_state_apply(st, cbev_batch_get(batch, i), expose_anon, &changed), 0);
  cbev_batch_free(batch);
  return changed;
}

static void expect_json(const cb2m_state *st, const char *want) {
  char *got = cb2m_state_json(st);
  assert_non_null(got);
  assert_string_equal(got, want);
  cJSON_free(got);
}

/* A state in the middle of a show: live, subject, 2 viewers, one tip. */
static void busy_state(cb2m_state *st) {
  cb2m_state_init(st);
  apply(st,
        EV("broadcastStart", "1755376900000-0", USER("alice")) ","
        EV("roomSubjectChange", "1755376900500-0", ",\"subject\":\"goal 100\"") ","
        EV("userEnter", "1755376901000-0", USER("bob")) ","
        EV("userEnter", "1755376901000-1", USER("carol")) ","
        EV("tip", "1755376902000-0", USER("bob") ",\"tip\":{\"tokens\":25,\"isAnon\":false,\"message\":\"| hi\"}"),
        0);
}

#define EMPTY_JSON                                                                                \
  "{\"broadcasting\":null,\"subject\":null,\"viewers\":0,\"session_tokens\":0,\"last_tip\":null," \
  "\"last_event_at\":null,\"updated_at\":null}"

/* ---- transitions --------------------------------------------------------- */

static void test_empty_state(void **unused) {
  cb2m_state st;
  char num[32];
  (void)unused;

  cb2m_state_init(&st);
  expect_json(&st, EMPTY_JSON);
  assert_null(cb2m_state_value(&st, CB2M_CHG_BROADCASTING, num)); /* unknown: not published */
  assert_null(cb2m_state_value(&st, CB2M_CHG_SUBJECT, num));
  assert_string_equal(cb2m_state_value(&st, CB2M_CHG_VIEWERS, num), "0");
  cb2m_state_cleanup(&st);
  cb2m_state_cleanup(NULL);
}

static void test_broadcast_start_and_stop(void **unused) {
  cb2m_state st;
  char num[32];
  unsigned chg;
  (void)unused;

  busy_state(&st);
  assert_int_equal(st.viewers, 2);
  assert_int_equal(st.session_tokens, 25);
  chg = apply(&st, EV("broadcastStop", "1755376903000-0", USER("alice")), 0);
  assert_int_equal(chg, CB2M_CHG_BROADCASTING | CB2M_CHG_VIEWERS | CB2M_CHG_LAST_EVENT);
  assert_int_equal(st.broadcasting, CBEV_FALSE);
  assert_string_equal(cb2m_state_value(&st, CB2M_CHG_BROADCASTING, num), "false");
  assert_int_equal(st.viewers, 0);
  assert_int_equal(st.session_tokens, 25); /* kept until the next start */
  assert_true(st.has_last_tip);
  assert_string_equal(st.subject, "goal 100");

  chg = apply(&st, EV("userEnter", "1755376904000-0", USER("dan")), 0);
  assert_int_equal(st.viewers, 1);
  chg = apply(&st, EV("broadcastStart", "1755376905000-0", USER("alice")), 0);
  assert_int_equal(chg, CB2M_CHG_BROADCASTING | CB2M_CHG_VIEWERS | CB2M_CHG_SESSION_TOKENS |
                            CB2M_CHG_LAST_EVENT);
  assert_int_equal(st.broadcasting, CBEV_TRUE);
  assert_string_equal(cb2m_state_value(&st, CB2M_CHG_BROADCASTING, num), "true");
  assert_int_equal(st.viewers, 0);
  assert_int_equal(st.session_tokens, 0);
  assert_string_equal(cb2m_state_value(&st, CB2M_CHG_SESSION_TOKENS, num), "0");
  /* A repeated start is published again (SPEC: on every start) but the
   * viewers, already 0, are not. */
  chg = apply(&st, EV("broadcastStart", "1755376906000-0", USER("alice")), 0);
  assert_int_equal(chg, CB2M_CHG_BROADCASTING | CB2M_CHG_SESSION_TOKENS | CB2M_CHG_LAST_EVENT);
  cb2m_state_cleanup(&st);
}

static void test_subject(void **unused) {
  cb2m_state st;
  char num[32];
  (void)unused;

  cb2m_state_init(&st);
  assert_int_equal(apply(&st, EV("roomSubjectChange", "1-0", ",\"subject\":\"first\""), 0),
                   CB2M_CHG_SUBJECT | CB2M_CHG_LAST_EVENT);
  assert_string_equal(cb2m_state_value(&st, CB2M_CHG_SUBJECT, num), "first");
  assert_int_equal(apply(&st, EV("roomSubjectChange", "2-0", ",\"subject\":\"\""), 0),
                   CB2M_CHG_SUBJECT | CB2M_CHG_LAST_EVENT);
  assert_string_equal(st.subject, "");
  /* No subject (or one of the wrong type) upstream: keep the known one. */
  apply(&st, EV("roomSubjectChange", "3-0", ",\"subject\":\"kept\""), 0);
  assert_int_equal(apply(&st, EV("roomSubjectChange", "4-0", ",\"subject\":7"), 0),
                   CB2M_CHG_LAST_EVENT);
  assert_int_equal(apply(&st, EV("roomSubjectChange", "5-0", ""), 0), CB2M_CHG_LAST_EVENT);
  assert_string_equal(st.subject, "kept");
  assert_null(st.broadcasting == CBEV_UNSET ? NULL : "known");
  cb2m_state_cleanup(&st);
}

/* Hostile text from upstream: invalid UTF-8 in the subject and in a tip's
 * username and message is repaired (U+FFFD), so state/subject and the
 * state JSON stay UTF-8; control characters and MQTT wildcards are just
 * text in a payload (topics never hold them). */
static void test_hostile_text(void **unused) {
  cb2m_state st;
  char num[32];
  (void)unused;

  cb2m_state_init(&st);
  apply(&st, EV("roomSubjectChange", "1-0", ",\"subject\":\"a\xff/+#\\u0001\xed\xa0\x80z\""), 0);
  assert_string_equal(st.subject, "a\xEF\xBF\xBD/+#\x01\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz");
  assert_string_equal(cb2m_state_value(&st, CB2M_CHG_SUBJECT, num), st.subject);
  apply(&st, EV("tip", "2-0", USER("b\xc3(o+#/") ",\"tip\":{\"tokens\":5,\"isAnon\":false,"
                "\"message\":\"| \xe2\x82\"}"), 0);
  assert_string_equal(st.last_tip_username, "b\xEF\xBF\xBD(o+#/");
  assert_string_equal(st.last_tip_message, "\xEF\xBF\xBD");
  expect_json(&st, "{\"broadcasting\":null,\"subject\":\"a\xEF\xBF\xBD/+#\\u0001"
                   "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz\",\"viewers\":0,\"session_tokens\":5,"
                   "\"last_tip\":{\"tokens\":5,\"username\":\"b\xEF\xBF\xBD(o+#/\",\"is_anon\":false,"
                   "\"message\":\"\xEF\xBF\xBD\",\"at\":\"1970-01-01T00:00:00.002Z\"},"
                   "\"last_event_at\":\"1970-01-01T00:00:00.002Z\","
                   "\"updated_at\":\"1970-01-01T00:00:00.002Z\"}");
  cb2m_state_cleanup(&st);
}

static void test_viewers(void **unused) {
  cb2m_state st;
  char num[32];
  (void)unused;

  cb2m_state_init(&st);
  /* Leaves of users who came before the bridge started: never below 0. */
  assert_int_equal(apply(&st, EV("userLeave", "1-0", USER("old")), 0), CB2M_CHG_LAST_EVENT);
  assert_int_equal(st.viewers, 0);
  assert_int_equal(apply(&st, EV("userEnter", "2-0", USER("a")) "," EV("userEnter", "3-0", USER("b"))
                                  "," EV("userEnter", "4-0", USER("c")),
                         0),
                   CB2M_CHG_VIEWERS | CB2M_CHG_LAST_EVENT);
  assert_int_equal(st.viewers, 3);
  assert_int_equal(apply(&st, EV("userLeave", "5-0", USER("a")), 0),
                   CB2M_CHG_VIEWERS | CB2M_CHG_LAST_EVENT);
  assert_string_equal(cb2m_state_value(&st, CB2M_CHG_VIEWERS, num), "2");
  apply(&st, EV("userLeave", "6-0", USER("b")) "," EV("userLeave", "7-0", USER("c")) ","
             EV("userLeave", "8-0", USER("d")),
        0);
  assert_int_equal(st.viewers, 0);
  cb2m_state_cleanup(&st);
}

static void test_tips(void **unused) {
  cb2m_state st;
  char num[32];
  (void)unused;

  cb2m_state_init(&st);
  assert_int_equal(
      apply(&st, EV("tip", "1755376903836-0", USER("bob") ",\"tip\":{\"tokens\":25,\"isAnon\":false,\"message\":\"| hi\"}"), 0),
      CB2M_CHG_SESSION_TOKENS | CB2M_CHG_LAST_TIP | CB2M_CHG_LAST_EVENT);
  assert_int_equal(st.session_tokens, 25);
  assert_int_equal(st.last_tip_tokens, 25);
  assert_string_equal(st.last_tip_username, "bob");
  assert_string_equal(st.last_tip_message, "hi");
  assert_string_equal(st.last_tip_at, "2025-08-16T20:41:43.836Z");
  assert_false(st.last_tip_is_anon);

  /* Anonymous: the real user upstream must not leak into the state. */
  apply(&st, EV("tip", "1755376904000-0", USER("secretfan") ",\"tip\":{\"tokens\":10,\"isAnon\":true,\"message\":\"\"}"), 0);
  assert_int_equal(st.session_tokens, 35);
  assert_null(st.last_tip_username);
  assert_true(st.last_tip_is_anon);
  assert_string_equal(st.last_tip_message, ""); /* "" stays "" */
  expect_json(&st, "{\"broadcasting\":null,\"subject\":null,\"viewers\":0,\"session_tokens\":35,"
                   "\"last_tip\":{\"tokens\":10,\"username\":null,\"is_anon\":true,\"message\":\"\","
                   "\"at\":\"2025-08-16T20:41:44.000Z\"},\"last_event_at\":\"2025-08-16T20:41:44.000Z\","
                   "\"updated_at\":\"2025-08-16T20:41:44.000Z\"}");
  assert_string_equal(cb2m_state_value(&st, CB2M_CHG_SESSION_TOKENS, num), "35");

  /* Unless the operator chose to expose them. */
  apply(&st, EV("tip", "1755376905000-0", USER("secretfan") ",\"tip\":{\"tokens\":1,\"isAnon\":true,\"message\":\"|  two spaces\"}"), 1);
  assert_string_equal(st.last_tip_username, "secretfan");
  assert_string_equal(st.last_tip_message, " two spaces"); /* only "| " goes */

  /* A message without the prefix, and one absent upstream. */
  apply(&st, EV("tip", "1755376906000-0", USER("eve") ",\"tip\":{\"tokens\":2,\"isAnon\":false,\"message\":\"plain|\"}"), 0);
  assert_string_equal(st.last_tip_message, "plain|");
  apply(&st, EV("tip", "1755376907000-0", USER("eve") ",\"tip\":{\"tokens\":3,\"isAnon\":false}"), 0);
  assert_null(st.last_tip_message);
  assert_int_equal(st.session_tokens, 41);
  /* A tip without its tip object counts nothing. */
  assert_int_equal(apply(&st, EV("tip", "1755376908000-0", USER("eve")), 0), CB2M_CHG_LAST_EVENT);
  assert_int_equal(st.session_tokens, 41);
  cb2m_state_cleanup(&st);
}

/* SPEC 2, fail closed: any isAnon that is not JSON false keeps the tipper
 * out of last_tip (and says is_anon), as in the payloads. */
static void test_tips_odd_is_anon(void **unused) {
  static const char *const odd[] = {"\"true\"", "1", "null", "\"false\"", "[]", "{}", "0"};
  (void)unused;

  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    char ev[512];
    cb2m_state st;
    cb2m_state_init(&st);
    snprintf(ev, sizeof ev,
             EV("tip", "1755376904000-0", USER("secretfan") ",\"tip\":{\"tokens\":10,"
                "\"isAnon\":%s,\"message\":\"\"}"), odd[i]);
    apply(&st, ev, 0);
    if (st.last_tip_username || !st.last_tip_is_anon)
      fail_msg("isAnon %s: last_tip.username %s, is_anon %d", odd[i],
               st.last_tip_username ? st.last_tip_username : "null", st.last_tip_is_anon);
    assert_int_equal(st.last_tip_tokens, 10);
    cb2m_state_cleanup(&st);
    /* Exposing still shows the name, and is_anon stays true. */
    cb2m_state_init(&st);
    apply(&st, ev, 1);
    assert_string_equal(st.last_tip_username, "secretfan");
    assert_true(st.last_tip_is_anon);
    cb2m_state_cleanup(&st);
  }
}

static void test_other_events_touch_only_last_event(void **unused) {
  static const char *const events[] = {
      EV("follow", "1755376910000-0", USER("f")),
      EV("unfollow", "1755376910000-1", USER("f")),
      EV("fanclubJoin", "1755376910000-2", USER("f")),
      EV("chatMessage", "1755376910000-3", USER("f") ",\"message\":{\"message\":\"hello\"}"),
      EV("privateMessage", "1755376910000-4", ",\"message\":{\"message\":\"psst\",\"fromUser\":\"f\",\"toUser\":\"alice\"}"),
      EV("mediaPurchase", "1755376910000-5", USER("f") ",\"media\":{\"id\":1,\"name\":\"set\",\"type\":\"photos\",\"tokens\":50}"),
      EV("somethingNew", "1755376910000-6", ",\"whatever\":[1,2,3]"),
  };
  cb2m_state st;
  char *before;
  (void)unused;

  busy_state(&st);
  before = cb2m_state_json(&st);
  assert_non_null(before);
  for (size_t i = 0; i < sizeof events / sizeof *events; i++) {
    char *after, *cut_b, *cut_a;
    assert_int_equal(apply(&st, events[i], 0), CB2M_CHG_LAST_EVENT);
    /* Everything but last_event_at is as before (updated_at included). */
    after = cb2m_state_json(&st);
    cut_b = strstr(before, "\"last_event_at\"");
    cut_a = strstr(after, "\"last_event_at\"");
    assert_int_equal(cut_b - before, cut_a - after);
    assert_memory_equal(before, after, (size_t)(cut_b - before));
    assert_non_null(strstr(after, "\"updated_at\":\"2025-08-16T20:41:42.000Z\""));
    assert_non_null(strstr(after, "\"last_event_at\":\"2025-08-16T20:41:50.000Z\""));
    cJSON_free(after);
  }
  assert_string_equal(st.last_id, "1755376910000-6");
  cJSON_free(before);
  cb2m_state_cleanup(&st);
}

/* ---- no double counting -------------------------------------------------- */

static void test_reapplied_ids_change_nothing(void **unused) {
  static const char batch[] =
      EV("broadcastStart", "1755376900000-0", "") ","
      EV("userEnter", "1755376901000-0", USER("bob")) ","
      EV("tip", "1755376902000-0", USER("bob") ",\"tip\":{\"tokens\":25,\"isAnon\":false,\"message\":\"\"}");
  cb2m_state st;
  char *first, *again;
  (void)unused;

  cb2m_state_init(&st);
  assert_int_not_equal(apply(&st, batch, 0), 0);
  first = cb2m_state_json(&st);
  /* The same batch fetched again (retry or restart): nothing moves. */
  assert_int_equal(apply(&st, batch, 0), 0);
  /* An older event, and the same id with other content, too. */
  assert_int_equal(apply(&st, EV("userEnter", "1755376901500-0", USER("late")), 0), 0);
  assert_int_equal(apply(&st, EV("tip", "1755376902000-0", USER("bob") ",\"tip\":{\"tokens\":999}"), 0), 0);
  again = cb2m_state_json(&st);
  assert_string_equal(first, again);
  assert_int_equal(st.session_tokens, 25);
  assert_int_equal(st.viewers, 1);
  assert_string_equal(st.last_id, "1755376902000-0");
  /* Same millisecond, later sequence: a new event. Ids compare as numbers. */
  assert_int_equal(apply(&st, EV("userEnter", "1755376902000-1", USER("x")), 0),
                   CB2M_CHG_VIEWERS | CB2M_CHG_LAST_EVENT);
  assert_int_equal(apply(&st, EV("userEnter", "1755376902000-10", USER("y")), 0),
                   CB2M_CHG_VIEWERS | CB2M_CHG_LAST_EVENT);
  assert_int_equal(apply(&st, EV("userEnter", "1755376902000-9", USER("z")), 0), 0);
  assert_int_equal(st.viewers, 3);
  /* An id that cannot be ordered cannot be counted exactly once. */
  assert_int_equal(apply(&st, EV("userEnter", "not-an-id", USER("w")), 0), 0);
  assert_int_equal(st.viewers, 3);
  assert_string_equal(st.last_id, "1755376902000-10");
  cJSON_free(first);
  cJSON_free(again);
  cb2m_state_cleanup(&st);
}

/* ---- JSON ---------------------------------------------------------------- */

static void test_json_exact(void **unused) {
  cb2m_state st;
  (void)unused;

  cb2m_state_init(&st);
  apply(&st,
        EV("broadcastStart", "1755376900000-0", "") ","
        EV("roomSubjectChange", "1755376901000-0", ",\"subject\":\"Hello \\\"world\\\" \\u00fc\\n\\t#goal\"") ","
        EV("userEnter", "1755376902000-0", USER("bob")) ","
        EV("userEnter", "1755376902000-1", USER("carol")) ","
        EV("userLeave", "1755376903000-0", USER("carol")) ","
        EV("tip", "1755376903836-0", USER("bob") ",\"tip\":{\"tokens\":25,\"isAnon\":false,\"message\":\"| hi \\\"there\\\"\"}") ","
        EV("chatMessage", "1755376904000-0", USER("bob") ",\"message\":{\"message\":\"x\"}"),
        0);
  expect_json(&st, "{\"broadcasting\":true,\"subject\":\"Hello \\\"world\\\" \xc3\xbc\\n\\t#goal\","
                   "\"viewers\":1,\"session_tokens\":25,\"last_tip\":{\"tokens\":25,\"username\":\"bob\","
                   "\"is_anon\":false,\"message\":\"hi \\\"there\\\"\",\"at\":\"2025-08-16T20:41:43.836Z\"},"
                   "\"last_event_at\":\"2025-08-16T20:41:44.000Z\",\"updated_at\":\"2025-08-16T20:41:43.836Z\"}");
  cb2m_state_cleanup(&st);
}

static void test_json_large_numbers(void **unused) {
  cb2m_state st;
  (void)unused;

  cb2m_state_init(&st);
  /* Session tokens saturate instead of overflowing (signed overflow would
   * be undefined), and beyond 2^53 the text must still be exact where a
   * double would print 9.22337203685478e+18. */
  st.session_tokens = INT64_MAX - 5;
  apply(&st, EV("tip", "2-0", USER("whale") ",\"tip\":{\"tokens\":9007199254740992,\"isAnon\":false}"), 0);
  assert_int_equal(st.session_tokens, INT64_MAX);
  assert_int_equal(st.last_tip_tokens, 9007199254740992LL);
  expect_json(&st, "{\"broadcasting\":null,\"subject\":null,\"viewers\":0,"
                   "\"session_tokens\":9223372036854775807,\"last_tip\":{\"tokens\":9007199254740992,"
                   "\"username\":\"whale\",\"is_anon\":false,\"message\":null,"
                   "\"at\":\"1970-01-01T00:00:00.002Z\"},\"last_event_at\":\"1970-01-01T00:00:00.002Z\","
                   "\"updated_at\":\"1970-01-01T00:00:00.002Z\"}");
  cb2m_state_cleanup(&st);
}

static void test_topic_levels(void **unused) {
  (void)unused;
  assert_string_equal(cb2m_state_topic_level(CB2M_CHG_BROADCASTING), "state/broadcasting");
  assert_string_equal(cb2m_state_topic_level(CB2M_CHG_SUBJECT), "state/subject");
  assert_string_equal(cb2m_state_topic_level(CB2M_CHG_VIEWERS), "state/viewers");
  assert_string_equal(cb2m_state_topic_level(CB2M_CHG_SESSION_TOKENS), "state/session_tokens");
  assert_null(cb2m_state_topic_level(CB2M_CHG_LAST_TIP));
  assert_null(cb2m_state_topic_level(CB2M_CHG_LAST_EVENT));
  assert_null(cb2m_state_topic_level(CB2M_CHG_ANY));
}

/* ---- the state file ------------------------------------------------------ */

static void test_file_round_trip(void **state) {
  const char *dir = *state;
  cb2m_state st, back;
  char path[512], *a, *b, *aside = (char *)"x";
  struct stat sb;

  busy_state(&st);
  cb2m_state_init(&back);
  assert_int_equal(cb2m_state_load(dir, "alice", &back, &aside), CBEV_ENOTFOUND);
  assert_null(aside);
  assert_int_equal(back.broadcasting, CBEV_UNSET);
  assert_int_equal(cb2m_state_save(dir, "alice", &st), 0);
  snprintf(path, sizeof path, "%s/alice.state", dir);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(cb2m_state_load(dir, "alice", &back, &aside), CBEV_OK);
  a = cb2m_state_json(&st);
  b = cb2m_state_json(&back);
  assert_string_equal(a, b);
  assert_string_equal(back.last_id, "1755376902000-0");
  assert_string_equal(back.last_tip_at, "2025-08-16T20:41:42.000Z");
  cJSON_free(a);
  cJSON_free(b);
  /* After a restart the re-polled last event is still not counted twice. */
  assert_int_equal(apply(&back, EV("tip", "1755376902000-0", USER("bob") ",\"tip\":{\"tokens\":25}"), 0), 0);
  assert_int_equal(back.session_tokens, 25);
  assert_int_equal(apply(&back, EV("userEnter", "1755376902000-1", USER("new")), 0),
                   CB2M_CHG_VIEWERS | CB2M_CHG_LAST_EVENT);
  assert_int_equal(back.viewers, 3);

  /* The empty state and an anonymous last tip survive too (nulls). */
  cb2m_state_cleanup(&st);
  apply(&st, EV("tip", "5-0", USER("hidden") ",\"tip\":{\"tokens\":4,\"isAnon\":true}"), 0);
  assert_int_equal(cb2m_state_save(dir, "bob", &st), 0);
  assert_int_equal(cb2m_state_load(dir, "bob", &back, NULL), CBEV_OK);
  a = cb2m_state_json(&st);
  b = cb2m_state_json(&back);
  assert_string_equal(a, b);
  assert_int_equal(back.broadcasting, CBEV_UNSET);
  assert_true(back.last_tip_is_anon);
  cJSON_free(a);
  cJSON_free(b);
  cb2m_state_cleanup(&st);
  assert_int_equal(cb2m_state_save(dir, "carol", &st), 0);
  assert_int_equal(cb2m_state_load(dir, "carol", &back, NULL), CBEV_OK);
  expect_json(&back, EMPTY_JSON);
  assert_null(back.last_id);
  cb2m_state_cleanup(&back);

  errno = 0;
  assert_int_equal(cb2m_state_save(dir, "../x", &st), CBEV_EINVAL);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(cb2m_state_load(dir, "bridge", &back, NULL), CBEV_EINVAL);
}

#define GOOD_STATE                                                                                \
  "{\"broadcasting\":true,\"subject\":\"s\",\"viewers\":2,\"session_tokens\":5,\"last_tip\":"      \
  "{\"tokens\":5,\"username\":\"bob\",\"is_anon\":false,\"message\":\"m\",\"at\":null},"          \
  "\"last_event_at\":null,\"updated_at\":null,\"last_id\":\"1-0\"}"

static void test_file_corrupt(void **state) {
  static const char *const bodies[] = {
      "",
      "garbage",
      "[]",
      "{\"broadcasting\":true,\"subject\":\"s\",\"viewers\":2,",
      "{\"broadcasting\":\"yes\",\"subject\":null,\"viewers\":0,\"session_tokens\":0,\"last_tip\":null,"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"subject\":null,\"viewers\":-1,\"session_tokens\":0,\"last_tip\":null,"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"subject\":null,\"viewers\":1.5,\"session_tokens\":0,\"last_tip\":null,"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"subject\":null,\"viewers\":1e300,\"session_tokens\":0,\"last_tip\":null,"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"subject\":null,\"viewers\":\"3\",\"session_tokens\":0,\"last_tip\":null,"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"subject\":5,\"viewers\":0,\"session_tokens\":0,\"last_tip\":null,"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"subject\":null,\"viewers\":0,\"session_tokens\":0,\"last_tip\":7,"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"subject\":null,\"viewers\":0,\"session_tokens\":0,\"last_tip\":"
      "{\"tokens\":\"5\",\"username\":null,\"is_anon\":false,\"message\":null,\"at\":null},"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"subject\":null,\"viewers\":0,\"session_tokens\":0,\"last_tip\":"
      "{\"tokens\":5,\"username\":null,\"message\":null,\"at\":null},"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"subject\":null,\"viewers\":0,\"session_tokens\":0,\"last_tip\":null,"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":\"bad\"}",
      "{\"broadcasting\":null,\"subject\":null,\"viewers\":0,\"session_tokens\":0,\"last_tip\":null,"
      "\"last_event_at\":\"a time much longer than any ISO-8601 stamp\",\"updated_at\":null,\"last_id\":null}",
      "{\"broadcasting\":null,\"viewers\":0,\"session_tokens\":0,\"last_tip\":null,"
      "\"last_event_at\":null,\"updated_at\":null,\"last_id\":null}",
      GOOD_STATE " x",
  };
  const char *dir = *state;
  char path[512], prefix[600];
  cb2m_state st;

  snprintf(path, sizeof path, "%s/alice.state", dir);
  snprintf(prefix, sizeof prefix, "%s.corrupt-", path);
  cb2m_state_init(&st);
  /* The baseline the corrupt ones are variations of does load. */
  assert_int_equal(cb2m_write_atomic(dir, "alice.state", GOOD_STATE, strlen(GOOD_STATE), 0600), 0);
  assert_int_equal(cb2m_state_load(dir, "alice", &st, NULL), CBEV_OK);
  assert_int_equal(st.viewers, 2);
  assert_string_equal(st.last_tip_username, "bob");
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    char *aside = NULL;
    int rc;
    assert_int_equal(cb2m_write_atomic(dir, "alice.state", bodies[i], strlen(bodies[i]), 0600), 0);
    rc = cb2m_state_load(dir, "alice", &st, &aside);
    if (rc != CBEV_EPARSE)
      fail_msg("state body %zu loaded as %d, not corrupt", i, rc);
    assert_non_null(aside);
    assert_memory_equal(aside, prefix, strlen(prefix));
    assert_int_equal(access(path, F_OK), -1);
    /* Start fresh: nothing of the bad file is kept. */
    expect_json(&st, EMPTY_JSON);
    assert_null(st.last_id);
    assert_int_equal(remove(aside), 0);
    free(aside);
  }
  cb2m_state_cleanup(&st);
}

/* A state file that exists but cannot be read is an error, not "none"
 * and not corrupt: the bridge stops rather than overwrite it (SPEC 5). */
static void test_file_unreadable_is_error(void **state) {
  const char *dir = *state;
  char path[512];
  char *aside = NULL;
  cb2m_state st;

  cb2m_state_init(&st);
  snprintf(path, sizeof path, "%s/erin.state", dir);
  assert_int_equal(mkdir(path, 0700), 0);
  errno = 0;
  assert_int_equal(cb2m_state_load(dir, "erin", &st, &aside), CBEV_EIO);
  assert_int_equal(errno, EISDIR);
  assert_null(aside);
  assert_int_equal(access(path, F_OK), 0);
  assert_int_equal(cb2m_state_load(dir, "frank", &st, &aside), CBEV_ENOTFOUND);
  cb2m_state_cleanup(&st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_state),
      cmocka_unit_test(test_broadcast_start_and_stop),
      cmocka_unit_test(test_subject),
      cmocka_unit_test(test_hostile_text),
      cmocka_unit_test(test_viewers),
      cmocka_unit_test(test_tips),
      cmocka_unit_test(test_tips_odd_is_anon),
      cmocka_unit_test(test_other_events_touch_only_last_event),
      cmocka_unit_test(test_reapplied_ids_change_nothing),
      cmocka_unit_test(test_json_exact),
      cmocka_unit_test(test_json_large_numbers),
      cmocka_unit_test(test_topic_levels),
      cmocka_unit_test_setup_teardown(test_file_round_trip, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_file_corrupt, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_file_unreadable_is_error, setup_dir, teardown_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

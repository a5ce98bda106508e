/* Unit tests of the event model and the response parser: every method with
 * all fields, wrong types for every kind of field, missing fields, unknown
 * methods, skipped items (with warnings), bodies that are not events, deep
 * nesting, invalid UTF-8, media ids, and the batch operations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/log.h"

/* A logger that keeps every line, to assert on warnings. */
typedef struct captured {
  int warns, debugs;
  char text[8192];
} captured;

static void capture(void *ud, cbev_log_level level, const char *msg) {
  captured *c = ud;
  size_t n = strlen(c->text);
  if (level == CBEV_LOG_WARN)
    c->warns++;
  if (level == CBEV_LOG_DEBUG)
    c->debugs++;
  snprintf(c->text + n, sizeof c->text - n, "%s\n", msg);
}

static cbev_batch *parse_ok(const char *body, const cbev_logger *lg) {
  cbev_batch *b = NULL;
  assert_int_equal(cbev_parse_response(body, strlen(body), lg, "SECRETTOKEN", &b), CBEV_OK);
  assert_non_null(b);
  return b;
}

static char *read_data(const char *name, size_t *len) {
  char path[1024];
  FILE *f;
  long n;
  char *buf;

  snprintf(path, sizeof path, "%s/%s", CBEV_TEST_DATA_DIR, name);
  f = fopen(path, "rb");
  if (!f)
    fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static void test_type_names(void **state) {
  (void)state;
  for (int t = 0; t < CBEV_EVENT_TYPE_COUNT; t++) {
    const char *name = cbev_event_type_name((cbev_event_type)t);
    const char *method = cbev_event_type_method((cbev_event_type)t);
    assert_non_null(method);
    assert_int_equal(cbev_event_type_from_name(name), t);
    assert_int_equal(cbev_event_type_from_method(method), t);
  }
  assert_string_equal(cbev_event_type_name(CBEV_EVENT_ROOM_SUBJECT_CHANGE),
                      "room_subject_change");
  assert_string_equal(cbev_event_type_method(CBEV_EVENT_ROOM_SUBJECT_CHANGE),
                      "roomSubjectChange");
  assert_string_equal(cbev_event_type_name(CBEV_EVENT_MEDIA_PURCHASE), "media_purchase");
  assert_string_equal(cbev_event_type_method(CBEV_EVENT_FANCLUB_JOIN), "fanclubJoin");
  assert_string_equal(cbev_event_type_name(CBEV_EVENT_UNKNOWN), "unknown");
  assert_string_equal(cbev_event_type_name((cbev_event_type)99), "unknown");
  assert_null(cbev_event_type_method(CBEV_EVENT_UNKNOWN));
  assert_int_equal(cbev_event_type_from_method("Tip"), CBEV_EVENT_UNKNOWN);
  assert_int_equal(cbev_event_type_from_method("room_subject_change"), CBEV_EVENT_UNKNOWN);
  assert_int_equal(cbev_event_type_from_method(""), CBEV_EVENT_UNKNOWN);
  assert_int_equal(cbev_event_type_from_method(NULL), CBEV_EVENT_UNKNOWN);
  assert_int_equal(cbev_event_type_from_name("chatMessage"), CBEV_EVENT_UNKNOWN);
}

static void check_bob(const cbev_user *u) {
  assert_non_null(u);
  assert_string_equal(u->username, "bob");
  assert_string_equal(u->color_group, "tr");
  assert_string_equal(u->gender, "m");
  assert_string_equal(u->language, "en");
  assert_string_equal(u->recent_tips, "some");
  assert_null(u->subgender); /* "" upstream */
  assert_int_equal(u->fc_auto_renew, CBEV_FALSE);
  assert_int_equal(u->has_darkmode, CBEV_TRUE);
  assert_int_equal(u->has_tokens, CBEV_TRUE);
  assert_int_equal(u->in_fanclub, CBEV_FALSE);
  assert_int_equal(u->in_private_show, CBEV_FALSE);
  assert_int_equal(u->is_broadcasting, CBEV_FALSE);
  assert_int_equal(u->is_mod, CBEV_FALSE);
  assert_int_equal(u->is_owner, CBEV_FALSE);
  assert_int_equal(u->is_silenced, CBEV_FALSE);
  assert_int_equal(u->is_spying, CBEV_FALSE);
}

/* tests/data/all_methods.body.json: the 12 methods and one unknown. */
static void test_every_method_all_fields(void **state) {
  size_t len;
  char *body = read_data("all_methods.body.json", &len);
  cbev_batch *b = NULL;
  const cbev_event *ev;
  const cbev_user *u;
  cbev_id id;
  (void)state;

  assert_int_equal(cbev_parse_response(body, len, NULL, NULL, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 13);
  assert_string_equal(cbev_batch_next_url(b), "https://eventsapi.chaturbate.com/events/alice/"
                                              "SECRETTOKEN/?i=1755376910000-1&timeout=10");
  assert_null(cbev_batch_status(b));
  static const cbev_event_type order[] = {
      CBEV_EVENT_BROADCAST_START, CBEV_EVENT_USER_ENTER,   CBEV_EVENT_FOLLOW,
      CBEV_EVENT_CHAT_MESSAGE,    CBEV_EVENT_PRIVATE_MESSAGE, CBEV_EVENT_TIP,
      CBEV_EVENT_FANCLUB_JOIN,    CBEV_EVENT_MEDIA_PURCHASE, CBEV_EVENT_ROOM_SUBJECT_CHANGE,
      CBEV_EVENT_UNFOLLOW,        CBEV_EVENT_USER_LEAVE,   CBEV_EVENT_BROADCAST_STOP,
      CBEV_EVENT_UNKNOWN};
  for (size_t i = 0; i < 13; i++) {
    ev = cbev_batch_get(b, i);
    assert_int_equal(cbev_event_get_type(ev), order[i]);
    assert_string_equal(cbev_event_broadcaster(ev), "alice");
    assert_int_equal(cbev_event_parsed_id(ev, &id), CBEV_OK);
    assert_string_equal(cbev_event_method(ev),
                        i == 12 ? "roomSettingsChange" : cbev_event_type_method(order[i]));
    /* Parts only where the type has them. */
    assert_true((cbev_event_tip(ev) != NULL) == (order[i] == CBEV_EVENT_TIP));
    assert_true((cbev_event_media(ev) != NULL) == (order[i] == CBEV_EVENT_MEDIA_PURCHASE));
    assert_true((cbev_event_subject(ev) != NULL) ==
                (order[i] == CBEV_EVENT_ROOM_SUBJECT_CHANGE));
    assert_true((cbev_event_message(ev) != NULL) == (order[i] == CBEV_EVENT_CHAT_MESSAGE ||
                                                     order[i] == CBEV_EVENT_PRIVATE_MESSAGE));
    assert_true((cbev_event_user(ev) != NULL) ==
                (order[i] != CBEV_EVENT_ROOM_SUBJECT_CHANGE && order[i] != CBEV_EVENT_UNKNOWN));
  }

  ev = cbev_batch_get(b, 0);
  assert_string_equal(cbev_event_id(ev), "1755376880000-0");
  u = cbev_event_user(ev);
  assert_string_equal(u->username, "alice");
  assert_int_equal(u->is_owner, CBEV_TRUE);
  assert_int_equal(u->is_broadcasting, CBEV_TRUE);
  assert_int_equal(u->is_follower, CBEV_FALSE);
  assert_string_equal(u->recent_tips, "none");
  assert_null(u->subgender);

  check_bob(cbev_event_user(cbev_batch_get(b, 1)));
  assert_int_equal(cbev_event_user(cbev_batch_get(b, 1))->is_follower, CBEV_TRUE);

  ev = cbev_batch_get(b, 3); /* chatMessage */
  check_bob(cbev_event_user(ev));
  assert_string_equal(cbev_event_message(ev)->message, "hello \"alice\"");
  assert_string_equal(cbev_event_message(ev)->orig, "hello \"alice\"");
  assert_string_equal(cbev_event_message(ev)->color, "#494949");
  assert_null(cbev_event_message(ev)->bg_color); /* null upstream */
  assert_string_equal(cbev_event_message(ev)->font, "default");
  assert_null(cbev_event_message(ev)->from_user);
  assert_null(cbev_event_message(ev)->to_user);

  ev = cbev_batch_get(b, 4); /* privateMessage */
  u = cbev_event_user(ev);
  assert_string_equal(u->subgender, "tf");
  assert_int_equal(u->fc_auto_renew, CBEV_TRUE);
  assert_int_equal(u->in_fanclub, CBEV_TRUE);
  assert_int_equal(u->is_mod, CBEV_TRUE);
  assert_string_equal(u->language, "de");
  assert_string_equal(cbev_event_message(ev)->message, "psst");
  assert_string_equal(cbev_event_message(ev)->bg_color, "#ffffff");
  assert_string_equal(cbev_event_message(ev)->font, "arial");
  assert_string_equal(cbev_event_message(ev)->from_user, "carol");
  assert_string_equal(cbev_event_message(ev)->to_user, "alice");
  assert_null(cbev_event_message(ev)->orig);

  ev = cbev_batch_get(b, 5); /* tip */
  check_bob(cbev_event_user(ev));
  assert_int_equal(cbev_event_tip(ev)->tokens, 25);
  assert_int_equal(cbev_event_tip(ev)->has_tokens, 1);
  assert_int_equal(cbev_event_tip(ev)->is_anon, CBEV_FALSE);
  assert_string_equal(cbev_event_tip(ev)->message, "| hi"); /* prefix kept here */
  assert_int_equal(cbev_event_parsed_id(ev, &id), CBEV_OK);
  assert_true(id.ms == 1755376903836ull && id.seq == 0);

  ev = cbev_batch_get(b, 7); /* mediaPurchase */
  u = cbev_event_user(ev);
  assert_int_equal(u->in_private_show, CBEV_TRUE);
  assert_int_equal(u->is_silenced, CBEV_TRUE);
  assert_int_equal(u->is_spying, CBEV_TRUE);
  assert_int_equal(u->has_tokens, CBEV_FALSE);
  assert_string_equal(cbev_event_media(ev)->id, "1");
  assert_string_equal(cbev_event_media(ev)->name, "photoset1");
  assert_string_equal(cbev_event_media(ev)->type, "photos");
  assert_int_equal(cbev_event_media(ev)->tokens, 100);
  assert_int_equal(cbev_event_media(ev)->has_tokens, 1);

  assert_string_equal(cbev_event_subject(cbev_batch_get(b, 8)), "Goal: 500 tokens #fun");

  ev = cbev_batch_get(b, 12); /* unknown method keeps everything raw */
  assert_string_equal(cbev_event_id(ev), "1755376910000-1");
  assert_int_equal(cbev_event_parsed_id(ev, &id), CBEV_OK);
  assert_true(id.ms == 1755376910000ull && id.seq == 1);
  assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(cbev_event_raw(ev), "object"), "settings")));

  cbev_batch_free(b);
  free(body);
}

/* Wrong types for each kind of field: strings, booleans, integers, the
 * media id, and whole parts; each is treated as absent. */
static void test_wrong_types_are_absent(void **state) {
  cbev_batch *b = parse_ok(
      "{\"events\":["
      "{\"method\":\"tip\",\"id\":\"1-0\",\"object\":{\"broadcaster\":5,"
      "\"user\":{\"username\":\"u\",\"colorGroup\":1,\"gender\":true,\"language\":[],"
      "\"recentTips\":{},\"subgender\":2,\"fcAutoRenew\":\"true\",\"hasDarkmode\":1,"
      "\"hasTokens\":null,\"inFanclub\":[],\"inPrivateShow\":{},\"isBroadcasting\":0,"
      "\"isFollower\":\"\",\"isMod\":\"yes\",\"isOwner\":1.0,\"isSilenced\":[true],"
      "\"isSpying\":\"false\"},"
      "\"tip\":{\"tokens\":\"25\",\"isAnon\":0,\"message\":false}}},"
      "{\"method\":\"tip\",\"id\":\"1-1\",\"object\":{\"tip\":{\"tokens\":2.5}}},"
      "{\"method\":\"tip\",\"id\":\"1-2\",\"object\":{\"tip\":{\"tokens\":1e30}}},"
      "{\"method\":\"tip\",\"id\":\"1-3\",\"object\":{\"tip\":[1],\"user\":\"bob\"}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-4\",\"object\":{\"media\":{\"id\":true,"
      "\"name\":1,\"type\":[],\"tokens\":\"5\"}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-5\",\"object\":{\"media\":\"m\"}},"
      "{\"method\":\"chatMessage\",\"id\":\"1-6\",\"object\":{\"message\":{\"message\":1,"
      "\"color\":true,\"bgColor\":[],\"font\":{},\"orig\":2,\"fromUser\":3,\"toUser\":4}}},"
      "{\"method\":\"chatMessage\",\"id\":\"1-7\",\"object\":{\"message\":\"hi\"}},"
      "{\"method\":\"roomSubjectChange\",\"id\":\"1-8\",\"object\":{\"subject\":[\"s\"]}},"
      "{\"method\":\"follow\",\"id\":\"1-9\",\"object\":[1]},"
      "{\"method\":\"follow\",\"id\":\"1-10\",\"object\":{\"user\":{\"username\":7}}}"
      "],\"nextUrl\":7,\"status\":false}",
      NULL);
  const cbev_event *ev;
  const cbev_user *u;
  const cbev_tip *t;
  const cbev_media *m;
  const cbev_message *msg;
  (void)state;

  assert_int_equal(cbev_batch_count(b), 11);
  assert_null(cbev_batch_next_url(b));
  assert_null(cbev_batch_status(b));

  ev = cbev_batch_get(b, 0);
  assert_null(cbev_event_broadcaster(ev));
  u = cbev_event_user(ev);
  assert_non_null(u);
  assert_string_equal(u->username, "u");
  assert_null(u->color_group);
  assert_null(u->gender);
  assert_null(u->language);
  assert_null(u->recent_tips);
  assert_null(u->subgender);
  const cbev_tristate *flags[] = {&u->fc_auto_renew, &u->has_darkmode, &u->has_tokens,
                                  &u->in_fanclub,    &u->in_private_show,
                                  &u->is_broadcasting, &u->is_follower, &u->is_mod,
                                  &u->is_owner,      &u->is_silenced, &u->is_spying};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    assert_int_equal(*flags[i], CBEV_UNSET);
  t = cbev_event_tip(ev);
  assert_non_null(t);
  assert_int_equal(t->has_tokens, 0);
  assert_int_equal(t->tokens, 0);
  /* isAnon 0 is no boolean: anonymous, failing closed (SPEC 2). */
  assert_int_equal(t->is_anon, CBEV_TRUE);
  assert_true(cbev_event_is_anonymous(ev));
  assert_null(t->message);

  assert_int_equal(cbev_event_tip(cbev_batch_get(b, 1))->has_tokens, 0); /* 2.5 */
  assert_int_equal(cbev_event_tip(cbev_batch_get(b, 2))->has_tokens, 0); /* 1e30 */
  ev = cbev_batch_get(b, 3);
  assert_null(cbev_event_tip(ev));
  assert_null(cbev_event_user(ev));

  m = cbev_event_media(cbev_batch_get(b, 4));
  assert_non_null(m);
  assert_null(m->id);
  assert_null(m->name);
  assert_null(m->type);
  assert_int_equal(m->has_tokens, 0);
  assert_null(cbev_event_media(cbev_batch_get(b, 5)));

  msg = cbev_event_message(cbev_batch_get(b, 6));
  assert_non_null(msg);
  assert_null(msg->message);
  assert_null(msg->color);
  assert_null(msg->bg_color);
  assert_null(msg->font);
  assert_null(msg->orig);
  assert_null(msg->from_user);
  assert_null(msg->to_user);
  assert_null(cbev_event_message(cbev_batch_get(b, 7)));
  assert_null(cbev_event_subject(cbev_batch_get(b, 8)));
  ev = cbev_batch_get(b, 9);
  assert_null(cbev_event_broadcaster(ev));
  assert_null(cbev_event_user(ev));
  assert_null(cbev_event_user(cbev_batch_get(b, 10))); /* no string username */
  cbev_batch_free(b);
}

/* Wrong types are logged at debug, once per field per process. */
static void test_wrong_type_logged_once(void **state) {
  captured c = {0};
  cbev_logger lg = {capture, &c, CBEV_LOG_DEBUG};
  const char *body = "{\"events\":[{\"method\":\"userEnter\",\"id\":\"1-0\",\"object\":"
                     "{\"user\":{\"username\":\"u\",\"isSpying\":\"no\"}}},"
                     "{\"method\":\"userEnter\",\"id\":\"1-1\",\"object\":"
                     "{\"user\":{\"username\":\"u\",\"isSpying\":3}}}]}";
  cbev_batch *b;
  (void)state;

  b = parse_ok(body, &lg);
  cbev_batch_free(b);
  b = parse_ok(body, &lg);
  cbev_batch_free(b);
  assert_int_equal(c.debugs, 1);
  assert_int_equal(c.warns, 0);
  assert_non_null(strstr(c.text, "user.isSpying"));
  /* A field not yet reported is reported. */
  b = parse_ok("{\"events\":[{\"method\":\"tip\",\"id\":\"1-0\",\"object\":"
               "{\"tip\":{\"isAnon\":\"x\"}}}]}",
               &lg);
  cbev_batch_free(b);
  assert_int_equal(c.debugs, 2);
  assert_non_null(strstr(c.text, "tip.isAnon"));
}

static void test_missing_fields(void **state) {
  cbev_batch *b = parse_ok("{\"events\":["
                           "{\"method\":\"tip\",\"id\":\"2-0\"},"
                           "{\"method\":\"tip\",\"id\":\"2-1\",\"object\":{}},"
                           "{\"method\":\"tip\",\"id\":\"2-2\",\"object\":{\"tip\":{}}},"
                           "{\"method\":\"userEnter\",\"id\":\"2-3\",\"object\":{\"user\":"
                           "{\"username\":\"x\"}}}"
                           "]}",
                           NULL);
  const cbev_tip *t;
  const cbev_user *u;
  (void)state;

  assert_int_equal(cbev_batch_count(b), 4);
  assert_null(cbev_batch_next_url(b)); /* absent */
  for (size_t i = 0; i < 2; i++) {
    const cbev_event *ev = cbev_batch_get(b, i);
    assert_null(cbev_event_tip(ev));
    assert_null(cbev_event_user(ev));
    assert_null(cbev_event_broadcaster(ev));
  }
  assert_null(cJSON_GetObjectItemCaseSensitive(cbev_event_raw(cbev_batch_get(b, 0)), "object"));
  t = cbev_event_tip(cbev_batch_get(b, 2));
  assert_non_null(t);
  assert_int_equal(t->has_tokens, 0);
  assert_int_equal(t->is_anon, CBEV_UNSET);
  assert_null(t->message);
  u = cbev_event_user(cbev_batch_get(b, 3));
  assert_string_equal(u->username, "x");
  assert_null(u->gender);
  assert_int_equal(u->is_mod, CBEV_UNSET);
  assert_int_equal(u->has_tokens, CBEV_UNSET);
  cbev_batch_free(b);
}

static void test_unknown_method(void **state) {
  cbev_batch *b = parse_ok("{\"events\":[{\"method\":\"newThing\",\"id\":\"3-0\",\"object\":"
                           "{\"broadcaster\":\"a\",\"user\":{\"username\":\"z\"},"
                           "\"tip\":{\"tokens\":1},\"subject\":\"s\",\"media\":{}}},"
                           "{\"method\":\"\",\"id\":\"3-1\"}]}",
                           NULL);
  const cbev_event *ev = cbev_batch_get(b, 0);
  (void)state;

  assert_int_equal(cbev_batch_count(b), 2);
  assert_int_equal(cbev_event_get_type(ev), CBEV_EVENT_UNKNOWN);
  assert_string_equal(cbev_event_method(ev), "newThing");
  assert_string_equal(cbev_event_broadcaster(ev), "a");
  assert_string_equal(cbev_event_user(ev)->username, "z");
  assert_null(cbev_event_tip(ev));
  assert_null(cbev_event_subject(ev));
  assert_null(cbev_event_media(ev));
  assert_null(cbev_event_message(ev));
  assert_string_equal(cbev_event_method(cbev_batch_get(b, 1)), "");
  assert_int_equal(cbev_event_get_type(cbev_batch_get(b, 1)), CBEV_EVENT_UNKNOWN);
  cbev_batch_free(b);
}

static void test_invalid_items_skipped_with_warnings(void **state) {
  captured c = {0};
  cbev_logger lg = {capture, &c, CBEV_LOG_INFO};
  size_t len;
  char *body = read_data("skipped_items.body.json", &len);
  cbev_batch *b = NULL;
  (void)state;

  assert_int_equal(cbev_parse_response(body, len, &lg, "SECRETTOKEN", &b), CBEV_OK);
  /* 8 items are not events; the one good event is delivered. */
  assert_int_equal(cbev_batch_count(b), 1);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 0)), "1755376920000-2");
  assert_string_equal(cbev_event_user(cbev_batch_get(b, 0))->subgender, "tf");
  assert_int_equal(c.warns, 8);
  assert_non_null(strstr(c.text, "events[0] "));
  assert_non_null(strstr(c.text, "events[7] "));
  assert_null(strstr(c.text, "events[8] "));
  assert_non_null(strstr(c.text, "not an object"));
  assert_non_null(strstr(c.text, "\"method\""));
  assert_non_null(strstr(c.text, "\"id\""));
  cbev_batch_free(b);
  free(body);
}

static void expect_eparse(const char *body, size_t len) {
  captured c = {0};
  cbev_logger lg = {capture, &c, CBEV_LOG_WARN};
  cbev_batch *b = (cbev_batch *)&c; /* must be reset to NULL */

  assert_int_equal(cbev_parse_response(body, len, &lg, "SECRETTOKEN", &b), CBEV_EPARSE);
  assert_null(b);
  assert_int_equal(c.warns, 1);
  assert_null(strstr(c.text, "SECRETTOKEN"));
}

static void test_bodies_that_are_not_events(void **state) {
  static const char *const bodies[] = {
      "",      "   ",        "[]",   "\"events\"",   "null", "42",
      "{",     "{\"events\":[}", "{\"events\":{}}", "{\"events\":\"x\"}",
      "{\"events\":null}", "{} x", "{\"events\":[]} []", "<html>502 Bad Gateway</html>"};
  captured c = {0};
  cbev_logger lg = {capture, &c, CBEV_LOG_WARN};
  cbev_batch *b = NULL;
  (void)state;

  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
    expect_eparse(bodies[i], strlen(bodies[i]));
  expect_eparse(NULL, 0);
  /* The excerpt is quoted with the token masked. */
  const char *bad = "<html>https://x/events/a/SECRETTOKEN/ is down</html>";
  assert_int_equal(cbev_parse_response(bad, strlen(bad), &lg, "SECRETTOKEN", &b), CBEV_EPARSE);
  assert_non_null(strstr(c.text, "<html>https://x/events/a/***/ is down"));
  /* Length is honoured: the body need not be NUL-terminated. */
  assert_int_equal(cbev_parse_response("{\"events\":[]}xyz", 13, NULL, NULL, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 0);
  cbev_batch_free(b);
  assert_int_equal(cbev_parse_response("{}", 2, NULL, NULL, NULL), CBEV_EINVAL);
  assert_int_equal(cbev_parse_response(NULL, 3, NULL, NULL, &b), CBEV_EINVAL);
}

/* No piece of the token (4 bytes or more, raw or percent-encoded) in text. */
static void assert_no_token_piece(const char *text, const char *token) {
  char piece[128], enc[128];
  size_t n = strlen(token);

  for (size_t k = 4; k <= n; k++) {
    memcpy(piece, token, k);
    piece[k] = '\0';
    if (strstr(text, piece))
      fail_msg("token piece \"%s\" leaked in: %s", piece, text);
  }
  /* the percent-encoded form: every byte as %XX */
  for (size_t k = 0; k < n; k++)
    snprintf(enc + 3 * k, sizeof enc - 3 * k, "%%%02X", (unsigned char)token[k]);
  for (size_t k = 4; k <= 3 * n; k++) {
    memcpy(piece, enc, k);
    piece[k] = '\0';
    if (strstr(text, piece))
      fail_msg("encoded token piece \"%s\" leaked in: %s", piece, text);
  }
}

/* The warning quotes the start of a bad body: a token straddling the cut
 * of that quote is masked whole (masking first, cutting second), and the
 * quote is printable UTF-8 whatever the body holds. */
static void test_bad_body_quote_masks_before_cut(void **state) {
  static const char token[] = "Zq7xW9kPmR2vT4nB";
  char body[512], enc[64];
  (void)state;

  for (size_t k = 0; k < sizeof token - 1; k++)
    snprintf(enc + 3 * k, sizeof enc - 3 * k, "%%%02X", (unsigned char)token[k]);
  for (int f = 0; f < 2; f++) {
    for (size_t at = 30; at <= 80; at++) {
      captured c = {0};
      cbev_logger lg = {capture, &c, CBEV_LOG_WARN};
      cbev_batch *b = NULL;

      memset(body, '<', at);
      snprintf(body + at, sizeof body - at, "%s tail of the page", f ? enc : token);
      assert_int_equal(cbev_parse_response(body, strlen(body), &lg, token, &b), CBEV_EPARSE);
      assert_int_equal(c.warns, 1);
      assert_no_token_piece(c.text, token);
      /* the quote is there, and marked as cut when the body is longer */
      assert_non_null(strstr(c.text, "\"<<<<"));
      if (at >= 64)
        assert_non_null(strstr(c.text, "...\n"));
    }
  }

  /* Control bytes, NUL and bad UTF-8 become '?'; good UTF-8 stays. */
  {
    static const char raw[] = "\x01<h\xc3\xa9\x00\xff\xed\xa0\x80>";
    captured c = {0};
    cbev_logger lg = {capture, &c, CBEV_LOG_WARN};
    cbev_batch *b = NULL;

    assert_int_equal(cbev_parse_response(raw, sizeof raw - 1, &lg, token, &b), CBEV_EPARSE);
    assert_non_null(strstr(c.text, "\"?<h\xc3\xa9\?\?\?\?\?>\""));
  }
}

static void test_waited_too_long_form(void **state) {
  size_t len;
  char *body = read_data("waited_too_long.body.json", &len);
  cbev_batch *b = NULL;
  (void)state;

  assert_int_equal(cbev_parse_response(body, len, NULL, NULL, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 0);
  assert_null(cbev_batch_get(b, 0));
  assert_string_equal(cbev_batch_status(b), "waited too long for events");
  assert_non_null(strstr(cbev_batch_next_url(b), "?i=1755376910000-1"));
  cbev_batch_free(b);
  free(body);

  b = parse_ok("{\"events\":[],\"nextUrl\":null}", NULL);
  assert_int_equal(cbev_batch_count(b), 0);
  assert_null(cbev_batch_next_url(b));
  cbev_batch_free(b);
}

static char *nested(size_t depth, const char *head, const char *tail) {
  size_t hl = strlen(head), tl = strlen(tail);
  char *s = malloc(hl + 2 * depth + tl + 1), *p = s;
  assert_non_null(s);
  memcpy(p, head, hl);
  p += hl;
  memset(p, '[', depth);
  p += depth;
  memset(p, ']', depth);
  p += depth;
  memcpy(p, tail, tl + 1);
  return s;
}

static void test_deep_nesting_fails_cleanly(void **state) {
  char *s;
  cbev_batch *b = NULL;
  (void)state;

  s = nested(10000, "{\"events\":", "}");
  expect_eparse(s, strlen(s));
  free(s);
  s = nested(10000, "{\"events\":[{\"method\":\"x\",\"id\":\"1-0\",\"object\":{\"a\":", "}}]}");
  expect_eparse(s, strlen(s));
  free(s);
  /* Objects too, and a body of nothing but nesting. */
  s = malloc(20001);
  assert_non_null(s);
  for (size_t i = 0; i < 10000; i++) {
    s[i] = '{';
    s[10000 + i] = '}';
  }
  s[20000] = '\0';
  expect_eparse(s, 20000);
  free(s);
  /* Moderate nesting inside an unknown event is kept. */
  s = nested(100, "{\"events\":[{\"method\":\"x\",\"id\":\"1-0\",\"object\":{\"a\":", "}}]}");
  assert_int_equal(cbev_parse_response(s, strlen(s), NULL, NULL, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 1);
  cbev_batch_free(b);
  free(s);
}

static void test_invalid_utf8_kept(void **state) {
  size_t len;
  char *body = read_data("invalid_utf8.body.json", &len);
  cbev_batch *b = NULL;
  const cbev_event *ev;
  (void)state;

  /* The parser stores bytes as they came; the normalizer repairs them. */
  assert_int_equal(cbev_parse_response(body, len, NULL, NULL, &b), CBEV_OK);
  assert_int_equal(cbev_batch_count(b), 1);
  ev = cbev_batch_get(b, 0);
  assert_string_equal(cbev_event_broadcaster(ev), "al\xff" "ice");
  assert_string_equal(cbev_event_user(ev)->username, "b\xc3\x28ob");
  assert_string_equal(cbev_event_message(ev)->from_user, "\xe2\x82");
  assert_string_equal(cbev_batch_next_url(b), "https://example.test/\xfe");
  cbev_batch_free(b);
  free(body);
}

/* A lone UTF-16 surrogate escape (as Python's json writes for broken text)
 * would make cJSON refuse the whole body at every retry, sticking the
 * feed: it becomes U+FFFD and the batch is delivered. */
static void test_lone_surrogate_escapes(void **state) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"a\\ud800b", "a\xEF\xBF\xBD" "b"},                  /* high alone */
      {"a\\udc00b", "a\xEF\xBF\xBD" "b"},                  /* low alone */
      {"\\ud800", "\xEF\xBF\xBD"},                          /* at the end */
      {"\\uDBFF\\uDBFF", "\xEF\xBF\xBD\xEF\xBF\xBD"},        /* high, high */
      {"\\udc00\\ud800", "\xEF\xBF\xBD\xEF\xBF\xBD"},        /* reversed pair */
      {"\\ud800\\u0041", "\xEF\xBF\xBD" "A"},                /* high, not low */
      {"\\ud83d\\ude00", "\xF0\x9F\x98\x80"},               /* a proper pair stays */
      {"\\\\ud800", "\\ud800"},                             /* escaped backslash: text */
      {"\\\\\\ud800", "\\\xEF\xBF\xBD"},
      {"\\u00e9\\\"\\ud800", "\xC3\xA9\"\xEF\xBF\xBD"},
  };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char body[512];
    cbev_batch *b = NULL;
    snprintf(body, sizeof body,
             "{\"events\":[{\"method\":\"chatMessage\",\"id\":\"1-0\",\"object\":{"
             "\"broadcaster\":\"al\\udfffice\",\"user\":{\"username\":\"%s\"},"
             "\"message\":{\"message\":\"%s\"}}}],\"nextUrl\":null}",
             cases[i].in, cases[i].in);
    if (cbev_parse_response(body, strlen(body), NULL, NULL, &b) != CBEV_OK)
      fail_msg("case %zu refused: %s", i, body);
    assert_int_equal(cbev_batch_count(b), 1);
    const cbev_event *ev = cbev_batch_get(b, 0);
    assert_string_equal(cbev_event_user(ev)->username, cases[i].out);
    assert_string_equal(cbev_event_message(ev)->message, cases[i].out);
    assert_string_equal(cbev_event_broadcaster(ev), "al\xEF\xBF\xBDice");
    cbev_batch_free(b);
  }
  /* in a key, and a body that is bad anyway stays refused */
  cbev_batch *b = NULL;
  const char *k = "{\"events\":[],\"\\ud800\":1}";
  assert_int_equal(cbev_parse_response(k, strlen(k), NULL, NULL, &b), CBEV_OK);
  cbev_batch_free(b);
  expect_eparse("{\"events\":[\\ud800]}", 19);
  expect_eparse("{\"events\":[],\"x\":\"\\ud8", 22);
  expect_eparse("{\"events\":[],\"x\":\"\\", 19);
}

static void test_media_id_number_and_string(void **state) {
  cbev_batch *b = parse_ok(
      "{\"events\":["
      "{\"method\":\"mediaPurchase\",\"id\":\"1-0\",\"object\":{\"media\":{\"id\":123}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-1\",\"object\":{\"media\":{\"id\":\"123\"}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-2\",\"object\":{\"media\":{\"id\":1.5}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-3\",\"object\":{\"media\":{\"id\":-0}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-4\",\"object\":{\"media\":{\"id\":1e3}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-5\",\"object\":{\"media\":{\"id\":1e300}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-6\",\"object\":{\"media\":"
      "{\"id\":\"x\",\"id\":4}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-7\",\"object\":{\"media\":{\"id\":1e999}}}"
      "]}",
      NULL);
  /* A number is the text received, whatever its form (SPEC 1). */
  static const char *const want[] = {"123", "123", "1.5", "-0", "1e3", "1e300", "4", "1e999"};
  (void)state;

  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    assert_string_equal(cbev_event_media(cbev_batch_get(b, i))->id, want[i]);
  cbev_batch_free(b);
}

static cbev_batch *ids_batch(void) {
  return parse_ok("{\"events\":["
                  "{\"method\":\"follow\",\"id\":\"100-0\"},"
                  "{\"method\":\"follow\",\"id\":\"100-1\"},"
                  "{\"method\":\"follow\",\"id\":\"99-5\"},"
                  "{\"method\":\"follow\",\"id\":\"bogus\"},"
                  "{\"method\":\"follow\",\"id\":\"101-0\"},"
                  "{\"method\":\"follow\",\"id\":\"1000-0\"}]}",
                  NULL);
}

static void test_batch_take_and_drop_seen(void **state) {
  cbev_batch *b = ids_batch();
  cbev_event *ev;
  (void)state;

  assert_null(cbev_batch_get(b, 6));
  assert_null(cbev_batch_take(b, 6));
  ev = cbev_batch_take(b, 4); /* "101-0" */
  assert_non_null(ev);
  assert_null(cbev_batch_take(b, 4));
  assert_null(cbev_batch_get(b, 4));
  assert_string_equal(cbev_event_id(ev), "101-0");
  /* Numeric order, not text order: "99-5" < "100-1" < "1000-0". An id
   * that is no event id cannot be compared: it is kept (delivered). */
  assert_int_equal(cbev_batch_drop_seen(b, "100-1"), 3); /* 100-0 100-1 99-5 */
  assert_int_equal(cbev_batch_count(b), 3);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 0)), "bogus");
  assert_null(cbev_batch_get(b, 1)); /* the taken slot, kept in order */
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 2)), "1000-0");
  assert_int_equal(cbev_batch_drop_seen(b, NULL), 0);
  assert_int_equal(cbev_batch_count(b), 3);
  cbev_event_free(ev);
  cbev_batch_free(b);

  /* One rule inside the batch too: 99-5 comes after 100-1 was seen. */
  b = ids_batch();
  assert_int_equal(cbev_batch_drop_seen(b, "0-0"), 1);
  assert_int_equal(cbev_batch_count(b), 5);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 1)), "100-1");
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 2)), "bogus");
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 3)), "101-0");
  /* No cursor (NULL, or one that is no event id): the in-batch rule alone. */
  assert_int_equal(cbev_batch_drop_seen(b, "zzz"), 0);
  assert_int_equal(cbev_batch_drop_seen(b, "99999999999-0"), 4);
  assert_int_equal(cbev_batch_count(b), 1); /* bogus */
  cbev_batch_free(b);

  b = ids_batch();
  assert_int_equal(cbev_batch_drop_seen(b, NULL), 1); /* 99-5 */
  assert_int_equal(cbev_batch_count(b), 5);
  cbev_batch_free(b);

  /* The same id twice in one batch, and a lower one: dropped. */
  b = parse_ok("{\"events\":["
               "{\"method\":\"follow\",\"id\":\"5-1\"},"
               "{\"method\":\"follow\",\"id\":\"5-1\"},"
               "{\"method\":\"follow\",\"id\":\"5-0\"},"
               "{\"method\":\"follow\",\"id\":\"5-2\"},"
               "{\"method\":\"follow\",\"id\":\"5-2\"}]}",
               NULL);
  assert_int_equal(cbev_batch_drop_seen(b, NULL), 3);
  assert_int_equal(cbev_batch_count(b), 2);
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 0)), "5-1");
  assert_string_equal(cbev_event_id(cbev_batch_get(b, 1)), "5-2");
  cbev_batch_free(b);

  assert_int_equal(cbev_batch_drop_seen(NULL, "1-0"), 0);
  cbev_batch_free(NULL);
  cbev_event_free(NULL);
  assert_int_equal(cbev_batch_count(NULL), 0);
  assert_null(cbev_batch_next_url(NULL));
}

/* SPEC 2, fail closed: a tip is anonymous unless isAnon is absent or JSON
 * false, whatever else it holds, and whichever duplicate a reader keeps. */
static void test_anonymity_fails_closed(void **state) {
  static const struct {
    const char *tip;
    cbev_tristate want;
  } cases[] = {
      {"{\"isAnon\":true}", CBEV_TRUE},       {"{\"isAnon\":false}", CBEV_FALSE},
      {"{\"tokens\":1}", CBEV_UNSET},         {"{\"isAnon\":\"true\"}", CBEV_TRUE},
      {"{\"isAnon\":\"false\"}", CBEV_TRUE},  {"{\"isAnon\":1}", CBEV_TRUE},
      {"{\"isAnon\":0}", CBEV_TRUE},          {"{\"isAnon\":null}", CBEV_TRUE},
      {"{\"isAnon\":[]}", CBEV_TRUE},         {"{\"isAnon\":{}}", CBEV_TRUE},
      {"{\"isAnon\":\"\"}", CBEV_TRUE},       {"{\"isAnon\":false,\"isAnon\":1}", CBEV_TRUE},
      {"{\"isAnon\":true,\"isAnon\":false}", CBEV_TRUE},
      {"{\"isAnon\":false,\"isAnon\":false}", CBEV_FALSE},
  };
  char body[512];
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cbev_batch *b;
    const cbev_event *ev;
    snprintf(body, sizeof body,
             "{\"events\":[{\"method\":\"tip\",\"id\":\"1-0\",\"object\":{"
             "\"user\":{\"username\":\"bob\"},\"tip\":%s}}]}",
             cases[i].tip);
    b = parse_ok(body, NULL);
    ev = cbev_batch_get(b, 0);
    assert_int_equal(cbev_event_tip(ev)->is_anon, cases[i].want);
    assert_int_equal(cbev_event_is_anonymous(ev), cases[i].want == CBEV_TRUE);
    cbev_batch_free(b);
  }
  /* An earlier object or tip that says anonymous counts, even when the
   * one the accessors read is not an object. */
  {
    cbev_batch *b = parse_ok(
        "{\"events\":[{\"method\":\"tip\",\"id\":\"1-0\",\"object\":{\"tip\":"
        "{\"isAnon\":true}},\"object\":{\"user\":{\"username\":\"bob\"},\"tip\":[]}},"
        "{\"method\":\"tip\",\"id\":\"1-1\",\"object\":{\"tip\":{\"isAnon\":\"x\"},"
        "\"tip\":{\"isAnon\":false}}},"
        "{\"method\":\"follow\",\"id\":\"1-2\",\"object\":{\"tip\":{\"isAnon\":true}}}]}",
        NULL);
    assert_null(cbev_event_tip(cbev_batch_get(b, 0)));
    assert_true(cbev_event_is_anonymous(cbev_batch_get(b, 0)));
    assert_int_equal(cbev_event_tip(cbev_batch_get(b, 1))->is_anon, CBEV_TRUE);
    assert_false(cbev_event_is_anonymous(cbev_batch_get(b, 2))); /* not a tip */
    assert_false(cbev_event_is_anonymous(NULL));
    cbev_batch_free(b);
  }
}

/* Exact integers (SPEC 1): tokens anywhere in int64 read exactly; past
 * it, or not integral, they are the wrong type; media.id keeps digits. */
static void test_exact_integers(void **state) {
  cbev_batch *b = parse_ok(
      "{\"events\":["
      "{\"method\":\"tip\",\"id\":\"1-0\",\"object\":{\"tip\":{\"tokens\":9007199254740993}}},"
      "{\"method\":\"tip\",\"id\":\"1-1\",\"object\":{\"tip\":{\"tokens\":9007199254740991}}},"
      "{\"method\":\"tip\",\"id\":\"1-2\",\"object\":{\"tip\":{\"tokens\":9223372036854775807}}},"
      "{\"method\":\"tip\",\"id\":\"1-3\",\"object\":{\"tip\":{\"tokens\":-9223372036854775808}}},"
      "{\"method\":\"tip\",\"id\":\"1-4\",\"object\":{\"tip\":{\"tokens\":9223372036854775808}}},"
      "{\"method\":\"tip\",\"id\":\"1-5\",\"object\":{\"tip\":{\"tokens\":25.0}}},"
      "{\"method\":\"tip\",\"id\":\"1-6\",\"object\":{\"tip\":{\"tokens\":2.5e1}}},"
      "{\"method\":\"tip\",\"id\":\"1-7\",\"object\":{\"tip\":{\"tokens\":9007199254740994.0}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-8\",\"object\":{\"media\":"
      "{\"id\":9007199254740993,\"tokens\":9007199254740993}}},"
      "{\"method\":\"mediaPurchase\",\"id\":\"1-9\",\"object\":{\"media\":"
      "{\"id\":-9223372036854775809,\"tokens\":1e2}}}]}",
      NULL);
  const cbev_tip *t;
  (void)state;

  t = cbev_event_tip(cbev_batch_get(b, 0));
  assert_true(t->has_tokens && t->tokens == INT64_C(9007199254740993));
  t = cbev_event_tip(cbev_batch_get(b, 1));
  assert_true(t->has_tokens && t->tokens == INT64_C(9007199254740991));
  t = cbev_event_tip(cbev_batch_get(b, 2));
  assert_true(t->has_tokens && t->tokens == INT64_MAX);
  t = cbev_event_tip(cbev_batch_get(b, 3));
  assert_true(t->has_tokens && t->tokens == INT64_MIN);
  assert_false(cbev_event_tip(cbev_batch_get(b, 4))->has_tokens); /* past int64 */
  t = cbev_event_tip(cbev_batch_get(b, 5));
  assert_true(t->has_tokens && t->tokens == 25);
  t = cbev_event_tip(cbev_batch_get(b, 6));
  assert_true(t->has_tokens && t->tokens == 25);
  assert_false(cbev_event_tip(cbev_batch_get(b, 7))->has_tokens); /* past 2^53, not exact */
  assert_string_equal(cbev_event_media(cbev_batch_get(b, 8))->id, "9007199254740993");
  assert_true(cbev_event_media(cbev_batch_get(b, 8))->tokens == INT64_C(9007199254740993));
  assert_string_equal(cbev_event_media(cbev_batch_get(b, 9))->id, "-9223372036854775809");
  assert_true(cbev_event_media(cbev_batch_get(b, 9))->tokens == 100);
  cbev_batch_free(b);
}

/* SPEC 1: a padded nextUrl is read without its ASCII white space. */
static void test_next_url_trimmed(void **state) {
  cbev_batch *b = parse_ok("{\"events\":[],\"nextUrl\":\" \\t\\r\\nhttps://h/x?i=1-0 \\n\"}", NULL);
  (void)state;

  assert_string_equal(cbev_batch_next_url(b), "https://h/x?i=1-0");
  cbev_batch_free(b);
  b = parse_ok("{\"events\":[],\"nextUrl\":\"\\f\\u000b \"}", NULL);
  assert_string_equal(cbev_batch_next_url(b), "");
  cbev_batch_free(b);
  /* Not white space in ASCII's sense: kept (the URL checks refuse it). */
  b = parse_ok("{\"events\":[],\"nextUrl\":\"\\u00a0https://h/\"}", NULL);
  assert_string_equal(cbev_batch_next_url(b), "\xc2\xa0https://h/");
  cbev_batch_free(b);
}

static void test_taken_event_outlives_batch(void **state) {
  cbev_batch *b = parse_ok("{\"events\":[{\"method\":\"tip\",\"id\":\"5-0\",\"object\":"
                           "{\"broadcaster\":\"a\",\"user\":{\"username\":\"u\"},"
                           "\"tip\":{\"tokens\":9,\"message\":\"m\"}}}],\"nextUrl\":\"n\"}",
                           NULL);
  cbev_event *ev = cbev_batch_take(b, 0);
  (void)state;

  cbev_batch_free(b); /* the event owns its upstream object */
  assert_string_equal(cbev_event_broadcaster(ev), "a");
  assert_string_equal(cbev_event_user(ev)->username, "u");
  assert_int_equal(cbev_event_tip(ev)->tokens, 9);
  assert_string_equal(cbev_event_tip(ev)->message, "m");
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(cbev_event_raw(ev), "method")->valuestring,
                      "tip");
  cbev_event_free(ev);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_type_names),
      cmocka_unit_test(test_every_method_all_fields),
      cmocka_unit_test(test_wrong_types_are_absent),
      cmocka_unit_test(test_anonymity_fails_closed),
      cmocka_unit_test(test_exact_integers),
      cmocka_unit_test(test_next_url_trimmed),
      cmocka_unit_test(test_wrong_type_logged_once),
      cmocka_unit_test(test_missing_fields),
      cmocka_unit_test(test_unknown_method),
      cmocka_unit_test(test_invalid_items_skipped_with_warnings),
      cmocka_unit_test(test_bodies_that_are_not_events),
      cmocka_unit_test(test_bad_body_quote_masks_before_cut),
      cmocka_unit_test(test_waited_too_long_form),
      cmocka_unit_test(test_deep_nesting_fails_cleanly),
      cmocka_unit_test(test_invalid_utf8_kept),
      cmocka_unit_test(test_lone_surrogate_escapes),
      cmocka_unit_test(test_media_id_number_and_string),
      cmocka_unit_test(test_batch_take_and_drop_seen),
      cmocka_unit_test(test_taken_event_outlives_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

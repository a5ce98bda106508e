/* Unit tests of the normalizer: golden files (tests/data, made by an
 * independent Python reference), the SPEC example byte for byte, anonymous
 * tips, escaping and UTF-8 repair, timestamps, snake_case, raw mode, caps
 * and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/normalize.h"
#include "jsonw.h"
#include "../utf8_check.h"
#include "failalloc.h"

static char *read_file(const char *name, size_t *len) {
  char path[1024];
  FILE *f;
  long n;
  char *buf;

  snprintf(path, sizeof path, "%s/%s", CBEV_TEST_DATA_DIR, name);
  f = fopen(path, "rb");
  if (!f)
    fail_msg("cannot open %s", path);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  assert_int_equal(fseek(f, 0, SEEK_SET), 0);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static cbev_batch *parse_str(const char *body) {
  cbev_batch *b = NULL;
  assert_int_equal(cbev_parse_response(body, strlen(body), NULL, NULL, &b), CBEV_OK);
  assert_non_null(b);
  return b;
}

/* Normalizes event i of body with flags; the caller frees the result. */
static char *norm1(const char *body, size_t i, unsigned flags) {
  cbev_batch *b = parse_str(body);
  char *json = NULL;
  size_t len = 0;
  assert_true(i < cbev_batch_count(b));
  assert_int_equal(cbev_event_to_json(cbev_batch_get(b, i), flags, &json, &len), CBEV_OK);
  assert_non_null(json);
  assert_int_equal(strlen(json), len);
  cbev_batch_free(b);
  return json;
}

static void check_golden(const char *name, const char *ext, unsigned flags) {
  char file[256];
  size_t body_len, want_len, got_len = 0, cap = 1 << 16;
  char *body, *want, *got = malloc(cap);
  cbev_batch *b = NULL;

  assert_non_null(got);
  snprintf(file, sizeof file, "%s.body.json", name);
  body = read_file(file, &body_len);
  snprintf(file, sizeof file, "%s%s", name, ext);
  want = read_file(file, &want_len);
  assert_int_equal(cbev_parse_response(body, body_len, NULL, NULL, &b), CBEV_OK);
  for (size_t i = 0; i < cbev_batch_count(b); i++) {
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(cbev_event_to_json(cbev_batch_get(b, i), flags, &json, &len), CBEV_OK);
    assert_true(valid_utf8((const unsigned char *)json, len));
    assert_null(memchr(json, '\n', len)); /* one line per event */
    assert_true(got_len + len + 1 < cap);
    memcpy(got + got_len, json, len);
    got_len += len;
    got[got_len++] = '\n';
    cbev_free(json);
  }
  got[got_len] = '\0';
  if (got_len != want_len || memcmp(got, want, want_len) != 0)
    fail_msg("%s%s differs from the library's output:\n--- want\n%s--- got\n%s", name,
             ext, want, got);
  cbev_batch_free(b);
  free(body);
  free(want);
  free(got);
}

static const char *const GOLDEN[] = {"all_methods", "quirks", "waited_too_long",
                                     "skipped_items", "invalid_utf8", "real_world"};

static void test_golden_files(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof GOLDEN / sizeof GOLDEN[0]; i++) {
    check_golden(GOLDEN[i], ".jsonl", 0);
    check_golden(GOLDEN[i], ".expose.jsonl", CBEV_JSON_EXPOSE_ANON);
    check_golden(GOLDEN[i], ".raw.jsonl", CBEV_JSON_RAW);
  }
}

static void test_golden_has_every_type(void **state) {
  size_t len;
  char *body = read_file("all_methods.body.json", &len);
  cbev_batch *b = NULL;
  int seen[CBEV_EVENT_UNKNOWN + 1] = {0};
  (void)state;

  assert_int_equal(cbev_parse_response(body, len, NULL, NULL, &b), CBEV_OK);
  for (size_t i = 0; i < cbev_batch_count(b); i++)
    seen[cbev_event_get_type(cbev_batch_get(b, i))]++;
  for (int t = 0; t <= CBEV_EVENT_UNKNOWN; t++)
    assert_int_equal(seen[t], 1);
  cbev_batch_free(b);
  free(body);
}

#define SPEC_USER                                                                \
  "\"user\":{\"username\":\"bob\",\"colorGroup\":\"tr\",\"fcAutoRenew\":false,"  \
  "\"gender\":\"m\",\"hasDarkmode\":true,\"hasTokens\":true,\"inFanclub\":false," \
  "\"inPrivateShow\":false,\"isBroadcasting\":false,\"isFollower\":true,"        \
  "\"isMod\":false,\"isOwner\":false,\"isSilenced\":false,\"isSpying\":false,"  \
  "\"language\":\"en\",\"recentTips\":\"some\",\"subgender\":\"\"}"
#define SPEC_USER_OUT                                                            \
  "\"user\":{\"username\":\"bob\",\"color_group\":\"tr\",\"fc_auto_renew\":false," \
  "\"gender\":\"m\",\"has_darkmode\":true,\"has_tokens\":true,"                 \
  "\"in_fanclub\":false,\"in_private_show\":false,\"is_broadcasting\":false,"   \
  "\"is_follower\":true,\"is_mod\":false,\"is_owner\":false,"                   \
  "\"is_silenced\":false,\"is_spying\":false,\"language\":\"en\","              \
  "\"recent_tips\":\"some\",\"subgender\":null}"

static char *tip_body(const char *anon, const char *message) {
  static char body[2048];
  /* Members in an unusual order: the output order must not follow it. */
  snprintf(body, sizeof body,
           "{\"events\":[{\"object\":{\"tip\":{\"message\":%s,\"isAnon\":%s,"
           "\"tokens\":25}," SPEC_USER ",\"broadcaster\":\"alice\"},"
           "\"id\":\"1755376903836-0\",\"method\":\"tip\"}],\"nextUrl\":null}",
           message, anon);
  return body;
}

static void test_spec_example_exact(void **state) {
  char *json = norm1(tip_body("false", "\"| hi\""), 0, 0);
  (void)state;
  assert_string_equal(json,
                      "{\"id\":\"1755376903836-0\",\"event_type\":\"tip\","
                      "\"broadcaster\":\"alice\",\"timestamp\":\"2025-08-16T20:41:43.836Z\","
                      SPEC_USER_OUT ",\"tip\":{\"tokens\":25,\"is_anon\":false,"
                      "\"message\":\"hi\"}}");
  cbev_free(json);
}

static void test_anonymous_tip(void **state) {
  char *json;
  (void)state;

  json = norm1(tip_body("true", "\"\""), 0, 0);
  assert_non_null(strstr(json, ",\"user\":null,\"tip\":{\"tokens\":25,\"is_anon\":true,"
                               "\"message\":\"\"}}"));
  assert_null(strstr(json, "bob"));
  cbev_free(json);

  json = norm1(tip_body("true", "\"\""), 0, CBEV_JSON_EXPOSE_ANON);
  assert_non_null(strstr(json, SPEC_USER_OUT ",\"tip\":{\"tokens\":25,\"is_anon\":true,"));
  cbev_free(json);

  /* Raw payloads keep the rule: the user goes, everything else stays. */
  json = norm1(tip_body("true", "\"\""), 0, CBEV_JSON_RAW);
  assert_null(strstr(json, "bob"));
  assert_non_null(strstr(json, "\"user\":null"));
  assert_non_null(strstr(json, "\"isAnon\":true"));
  cbev_free(json);
  json = norm1(tip_body("true", "\"\""), 0, CBEV_JSON_RAW | CBEV_JSON_EXPOSE_ANON);
  assert_non_null(strstr(json, "\"username\":\"bob\""));
  cbev_free(json);
  /* Duplicate keys (hostile upstream): whichever "tip" a consumer's parser
   * keeps, and whichever "object" or "user", the tipper stays hidden. */
  json = norm1("{\"events\":[{\"method\":\"tip\",\"id\":\"1-0\",\"object\":{"
               "\"user\":{\"username\":\"bob\"},\"tip\":{\"tokens\":1,\"isAnon\":true},"
               "\"user\":{\"username\":\"bob2\"},\"tip\":{\"tokens\":1,\"isAnon\":false}},"
               "\"object\":{\"user\":{\"username\":\"bob3\"},\"tip\":{\"isAnon\":true}}}]}",
               0, CBEV_JSON_RAW);
  assert_null(strstr(json, "bob"));
  cbev_free(json);

  /* Not anonymous: the flag changes nothing. */
  json = norm1(tip_body("false", "null"), 0, 0);
  assert_non_null(strstr(json, SPEC_USER_OUT ",\"tip\":{\"tokens\":25,\"is_anon\":false,"
                                             "\"message\":null}}"));
  cbev_free(json);
}

/* SPEC 2, fail closed: every isAnon that is not JSON false hides the
 * tipper in the normalized and the raw payload alike, and says
 * "is_anon": true; exposing brings the user back in both. */
static void test_anonymity_fails_closed_every_mode(void **state) {
  static const char *const odd[] = {"\"true\"", "1", "null", "\"false\"", "[]", "{}",
                                    "0", "\"\"", "[false]", "{\"v\":false}"};
  (void)state;

  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    char *norm = norm1(tip_body(odd[i], "\"\""), 0, 0);
    char *raw = norm1(tip_body(odd[i], "\"\""), 0, CBEV_JSON_RAW);
    char *norm_x = norm1(tip_body(odd[i], "\"\""), 0, CBEV_JSON_EXPOSE_ANON);
    char *raw_x = norm1(tip_body(odd[i], "\"\""), 0, CBEV_JSON_RAW | CBEV_JSON_EXPOSE_ANON);
    if (strstr(norm, "bob") || !strstr(norm, "\"user\":null,\"tip\":{\"tokens\":25,"
                                             "\"is_anon\":true,"))
      fail_msg("isAnon %s: normalized %s", odd[i], norm);
    if (strstr(raw, "bob") || !strstr(raw, "\"user\":null"))
      fail_msg("isAnon %s: raw %s", odd[i], raw);
    assert_non_null(strstr(norm_x, SPEC_USER_OUT ",\"tip\":{\"tokens\":25,\"is_anon\":true,"));
    assert_non_null(strstr(raw_x, "\"username\":\"bob\""));
    cbev_free(norm);
    cbev_free(raw);
    cbev_free(norm_x);
    cbev_free(raw_x);
  }
}

static void test_tip_message_prefix(void **state) {
  static const struct {
    const char *in, *out;
  } cases[] = {{"\"| text\"", "\"text\""},     {"\"\"", "\"\""},
               {"\"| \"", "\"\""},             {"\"|text\"", "\"|text\""},
               {"\" | x\"", "\" | x\""},       {"\"| | x\"", "\"| x\""},
               {"null", "null"},               {"12", "null"}};
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char want[128];
    char *json = norm1(tip_body("false", cases[i].in), 0, 0);
    snprintf(want, sizeof want, "\"is_anon\":false,\"message\":%s}}", cases[i].out);
    if (!strstr(json, want))
      fail_msg("message %s: want ...%s in %s", cases[i].in, want, json);
    cbev_free(json);
  }
}

static void test_parts_and_key_order(void **state) {
  char *json;
  (void)state;

  json = norm1("{\"events\":[{\"method\":\"privateMessage\",\"id\":\"1-2\",\"object\":{"
               "\"message\":{\"toUser\":\"a\",\"fromUser\":\"b\",\"orig\":\"o\",\"font\":\"f\","
               "\"bgColor\":\"bg\",\"color\":\"c\",\"message\":\"m\"},\"broadcaster\":\"a\"}}]}",
               0, 0);
  assert_string_equal(json, "{\"id\":\"1-2\",\"event_type\":\"private_message\","
                            "\"broadcaster\":\"a\",\"timestamp\":\"1970-01-01T00:00:00.001Z\","
                            "\"user\":null,\"message\":{\"text\":\"m\",\"color\":\"c\","
                            "\"bg_color\":\"bg\",\"font\":\"f\",\"orig\":\"o\","
                            "\"from_user\":\"b\",\"to_user\":\"a\"}}");
  cbev_free(json);

  json = norm1("{\"events\":[{\"method\":\"mediaPurchase\",\"id\":\"5-0\",\"object\":{"
               "\"media\":{\"tokens\":30,\"type\":\"video\",\"name\":\"n\",\"id\":123}}}]}",
               0, 0);
  assert_string_equal(json, "{\"id\":\"5-0\",\"event_type\":\"media_purchase\","
                            "\"broadcaster\":null,\"timestamp\":\"1970-01-01T00:00:00.005Z\","
                            "\"user\":null,\"media\":{\"id\":\"123\",\"name\":\"n\","
                            "\"type\":\"video\",\"tokens\":30}}");
  cbev_free(json);

  json = norm1("{\"events\":[{\"method\":\"roomSubjectChange\",\"id\":\"x\",\"object\":{"
               "\"subject\":\"s \\\"q\\\"\",\"broadcaster\":\"b\"}}]}",
               0, 0);
  assert_string_equal(json, "{\"id\":\"x\",\"event_type\":\"room_subject_change\","
                            "\"broadcaster\":\"b\",\"timestamp\":null,\"user\":null,"
                            "\"subject\":\"s \\\"q\\\"\"}");
  cbev_free(json);

  json = norm1("{\"events\":[{\"method\":\"userLeave\",\"id\":\"1-0\",\"object\":{"
               "\"broadcaster\":\"b\",\"tip\":{\"tokens\":1},\"subject\":\"no\"}}]}",
               0, 0);
  /* Parts of other types are not written. */
  assert_string_equal(json, "{\"id\":\"1-0\",\"event_type\":\"user_leave\","
                            "\"broadcaster\":\"b\",\"timestamp\":\"1970-01-01T00:00:00.001Z\","
                            "\"user\":null}");
  cbev_free(json);
}

static void test_unknown_method_raw_object(void **state) {
  char *json;
  (void)state;

  json = norm1("{\"events\":[{\"method\":\"roomSettingsChange\",\"id\":\"7-0\",\"object\":{"
               "\"broadcaster\":\"b\",\"a\":[1,-2.5,\"\\u00e9\",{}],\"n\":null}}]}",
               0, 0);
  assert_string_equal(json, "{\"id\":\"7-0\",\"event_type\":\"room_settings_change\","
                            "\"broadcaster\":\"b\",\"timestamp\":\"1970-01-01T00:00:00.007Z\","
                            "\"user\":null,\"raw\":{\"broadcaster\":\"b\","
                            "\"a\":[1,-2.5,\"\xC3\xA9\",{}],\"n\":null}}");
  cbev_free(json);
}

static void test_raw_flag_round_trip(void **state) {
  const char *body = "{\"events\":[{\"method\":\"tip\",\"id\":\"1-0\",\"object\":{"
                     "\"broadcaster\":\"b\",\"tip\":{\"tokens\":3,\"isAnon\":true},"
                     "\"z\":[0.1,1e300,-0,true,false,null,\"\\n\\u001f\"]},\"extra\":{}}]}";
  cbev_batch *b = parse_str(body);
  char *json = NULL;
  cJSON *back;
  (void)state;

  assert_int_equal(cbev_event_to_json(cbev_batch_get(b, 0), CBEV_JSON_RAW, &json, NULL),
                   CBEV_OK);
  back = cJSON_Parse(json);
  assert_non_null(back);
  assert_true(cJSON_Compare(back, cbev_event_raw(cbev_batch_get(b, 0)), 1));
  /* Raw mode keeps the anonymous tipper's data as upstream sent it. */
  assert_non_null(strstr(json, "\"isAnon\":true"));
  assert_non_null(strstr(json, "\"\\n\\u001f\""));
  cJSON_Delete(back);
  cbev_free(json);
  cbev_batch_free(b);
}

static void test_escaping_controls(void **state) {
  char body[512], want[512], *json;
  size_t n = 0;
  (void)state;

  /* Every control byte 0x01..0x1f, escaped as JSON \u00XX in the body. */
  n += (size_t)snprintf(body, sizeof body,
                        "{\"events\":[{\"method\":\"roomSubjectChange\",\"id\":\"1-0\","
                        "\"object\":{\"subject\":\"");
  for (int c = 1; c < 0x20; c++)
    n += (size_t)snprintf(body + n, sizeof body - n, "\\u%04x", c);
  snprintf(body + n, sizeof body - n, "\\\"\\\\\\/\x7f\"}}]}");
  json = norm1(body, 0, 0);
  snprintf(want, sizeof want, "\"subject\":\"%s%s%s\"}",
           "\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r"
           "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017",
           "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f", "\\\"\\\\/\x7f");
  if (!strstr(json, want))
    fail_msg("want %s in %s", want, json);
  cbev_free(json);
}

static void test_invalid_utf8_replaced(void **state) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"a\xC3\xA9z", "a\xC3\xA9z"},                          /* valid 2-byte */
      {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},              /* valid 4-byte */
      {"\xEF\xBF\xBD", "\xEF\xBF\xBD"},                      /* U+FFFD itself */
      {"a\xFF" "b", "a\xEF\xBF\xBD" "b"},                    /* never valid */
      {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},              /* overlong lead */
      {"\xE0\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong 3 */
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
      {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xE2\x82", "\xEF\xBF\xBD"},                          /* truncated, end */
      {"\xE2\x82x", "\xEF\xBF\xBDx"},                        /* truncated, mid */
      {"\xF0\x9F\x98 ", "\xEF\xBF\xBD "},                    /* truncated 4 */
      {"\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},              /* stray continuations */
  };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char body[256], want[128];
    char *json;
    snprintf(body, sizeof body,
             "{\"events\":[{\"method\":\"roomSubjectChange\",\"id\":\"1-0\","
             "\"object\":{\"subject\":\"%s\"}}]}",
             cases[i].in);
    json = norm1(body, 0, 0);
    snprintf(want, sizeof want, "\"subject\":\"%s\"}", cases[i].out);
    if (!strstr(json, want))
      fail_msg("case %zu: want %s in %s", i, want, json);
    assert_true(valid_utf8((const unsigned char *)json, strlen(json)));
    cbev_free(json);
    /* Raw mode repairs too: its output is valid UTF-8 JSON as well. */
    json = norm1(body, 0, CBEV_JSON_RAW);
    assert_non_null(strstr(json, want));
    cbev_free(json);
  }
}

/* Inserts inj at the start of every JSON string of body: every value
 * but those of "method" and of event ids (which then stop being events) when
 * keys_too is 0; every string, keys included, otherwise. Returns how many
 * strings were changed in *count. */
static char *inject_strings(const char *body, const char *inj, int keys_too, size_t *count) {
  size_t n = strlen(body), il = strlen(inj), o = 0;
  char *out = malloc(n * (il + 1) + 1), key[64] = "";
  char prev = 0;       /* last non-space byte outside strings */
  char stack[64] = ""; /* open containers, '{' or '[' */
  size_t depth = 0;

  assert_non_null(out);
  *count = 0;
  for (size_t i = 0; i < n;) {
    if (body[i] != '"') {
      if (body[i] == '{' || body[i] == '[') {
        assert_true(depth < sizeof stack);
        stack[depth++] = body[i];
      } else if ((body[i] == '}' || body[i] == ']') && depth) {
        depth--;
      }
      if (body[i] != ' ' && body[i] != '\n')
        prev = body[i];
      out[o++] = body[i++];
      continue;
    }
    size_t start = ++i, k = 0;
    while (body[i] != '"') /* the bodies used hold no escaped quote */
      i++;
    int is_value = prev == ':' || (depth && stack[depth - 1] == '[');
    int skip = is_value && (strcmp(key, "method") == 0 ||
                            (strcmp(key, "id") == 0 && body[start] >= '0' && body[start] <= '9'));
    out[o++] = '"';
    if (keys_too || (is_value && !skip)) {
      memcpy(out + o, inj, il);
      o += il;
      (*count)++;
    }
    memcpy(out + o, body + start, i - start);
    o += i - start;
    out[o++] = '"';
    if (!is_value) {
      k = i - start < sizeof key - 1 ? i - start : sizeof key - 1;
      memcpy(key, body + start, k);
      key[k] = '\0';
    }
    prev = '"';
    i++;
  }
  out[o] = '\0';
  return out;
}

/* Counts the strings of a cJSON tree (keys not counted) starting with
 * prefix, and all of them. */
static void count_strings(const cJSON *c, const char *prefix, size_t *with, size_t *all) {
  for (; c; c = c->next) {
    /* media.id given as a number upstream is written as its digits */
    if (cJSON_IsString(c) && !(c->string && strcmp(c->string, "id") == 0 &&
                               strspn(c->valuestring, "0123456789.-e+") ==
                                   strlen(c->valuestring))) {
      (*all)++;
      if (strncmp(c->valuestring, prefix, strlen(prefix)) == 0)
        (*with)++;
    }
    count_strings(c->child, prefix, with, all);
  }
}

/* Invalid UTF-8 in every string field of every method (user fields, tip
 * message, message parts, media name, type and string id, subject,
 * broadcaster, unknown objects): the output is valid UTF-8 and valid JSON
 * in every mode, and every such field comes out repaired, not dropped. */
static void test_invalid_utf8_in_every_field(void **state) {
  /* 0xFF never valid; 0xC3 '(' a cut sequence; an encoded surrogate */
  static const char inj[] = "\xff\xc3(\xed\xa0\x80";
  static const char rep[] = "\xEF\xBF\xBD\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD";
  static const unsigned flags[] = {0, CBEV_JSON_EXPOSE_ANON, CBEV_JSON_RAW};
  static const char *const files[] = {"all_methods.body.json", "quirks.body.json"};
  size_t len, injected, checked = 0;
  (void)state;

  for (size_t fi = 0; fi < 2; fi++) {
    char *orig = read_file(files[fi], &len);
    for (int keys_too = 0; keys_too < 2; keys_too++) {
      char *body = inject_strings(orig, inj, keys_too, &injected);
      cbev_batch *b = NULL;
      assert_true(injected > 20);
      assert_int_equal(cbev_parse_response(body, strlen(body), NULL, NULL, &b), CBEV_OK);
      if (!keys_too)
        assert_true(cbev_batch_count(b) >= 12);
      for (size_t i = 0; i < cbev_batch_count(b); i++) {
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
          char *json = NULL;
          size_t jl = 0, with = 0, all = 0;
          cJSON *root, *fixed = NULL;

          assert_int_equal(cbev_event_to_json(cbev_batch_get(b, i), flags[f], &json, &jl),
                           CBEV_OK);
          assert_true(valid_utf8((const unsigned char *)json, jl));
          assert_null(memchr(json, '\n', jl));
          root = cJSON_ParseWithLength(json, jl);
          if (!root)
            fail_msg("not JSON: %s", json);
          if (!keys_too) {
            /* id, event_type and timestamp come from method and id (raw
             * mode has those two); every other string of the output is a
             * repaired upstream string */
            static const char *const derived[] = {"id", "event_type", "timestamp", "method"};
            fixed = cJSON_CreateObject();
            assert_non_null(fixed);
            for (size_t k = 0; k < sizeof derived / sizeof derived[0]; k++) {
              cJSON *d = cJSON_DetachItemFromObjectCaseSensitive(root, derived[k]);
              if (d)
                cJSON_AddItemToObject(fixed, derived[k], d);
            }
            count_strings(root->child, rep, &with, &all);
            if (with != all)
              fail_msg("%zu of %zu strings repaired in %s", with, all, json);
            checked += all;
          }
          cJSON_Delete(fixed);
          cJSON_Delete(root);
          cbev_free(json);
        }
      }
      cbev_batch_free(b);
      free(body);
    }
    free(orig);
  }
  /* Enough strings were seen to cover every field of the 12 methods. */
  assert_true(checked > 200);
}

/* cbev_utf8_repair: the normalizer's rule for text published otherwise,
 * sized like snprintf and never cut inside a character. */
static void test_utf8_repair(void **state) {
  char out[16];
  (void)state;

  assert_int_equal(cbev_utf8_repair(out, sizeof out, "a\xff" "b\xc3\xa9"), 7);
  assert_string_equal(out, "a\xEF\xBF\xBD" "b\xC3\xA9");
  assert_int_equal(cbev_utf8_repair(NULL, 0, "\xed\xa0\x80"), 9);
  assert_int_equal(cbev_utf8_repair(out, sizeof out, NULL), 0);
  assert_string_equal(out, "");
  /* too small: cut before the character that does not fit */
  assert_int_equal(cbev_utf8_repair(out, 4, "ab\xc3\xa9z"), 5);
  assert_string_equal(out, "ab");
  assert_int_equal(cbev_utf8_repair(out, 5, "ab\xc3\xa9z"), 5);
  assert_string_equal(out, "ab\xc3\xa9");
  assert_int_equal(cbev_utf8_repair(out, 1, "abc"), 3);
  assert_string_equal(out, "");
  /* every case of the normalizer's table gives the same bytes */
  static const char *const bad[] = {"\xC0\xAF", "\xE0\x80\xAF", "\xF4\x90\x80\x80",
                                    "\xE2\x82x", "\x80\x80", "\xF0\x9F\x98 "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char body[256], want[128], *json, got[64];
    size_t n = cbev_utf8_repair(got, sizeof got, bad[i]);
    assert_true(n < sizeof got);
    assert_true(valid_utf8((const unsigned char *)got, n));
    snprintf(body, sizeof body,
             "{\"events\":[{\"method\":\"roomSubjectChange\",\"id\":\"1-0\","
             "\"object\":{\"subject\":\"%s\"}}]}", bad[i]);
    json = norm1(body, 0, 0);
    snprintf(want, sizeof want, "\"subject\":\"%s\"}", got);
    assert_non_null(strstr(json, want));
    cbev_free(json);
  }
}

static void test_format_timestamp(void **state) {
  char buf[32];
  (void)state;

  assert_int_equal(cbev_format_timestamp(1755376903836ull, buf, sizeof buf), CBEV_OK);
  assert_string_equal(buf, "2025-08-16T20:41:43.836Z");
  assert_int_equal(cbev_format_timestamp(0, buf, sizeof buf), CBEV_OK);
  assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
  assert_int_equal(cbev_format_timestamp(951782400000ull, buf, sizeof buf), CBEV_OK);
  assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
  assert_int_equal(cbev_format_timestamp(253402300799999ull, buf, sizeof buf), CBEV_OK);
  assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
  assert_int_equal(cbev_format_timestamp(253402300800000ull, buf, sizeof buf), CBEV_EINVAL);
  assert_int_equal(cbev_format_timestamp(~0ull, buf, sizeof buf), CBEV_EINVAL);
  assert_int_equal(cbev_format_timestamp(0, buf, 24), CBEV_EINVAL);
  assert_int_equal(cbev_format_timestamp(0, NULL, 32), CBEV_EINVAL);
  assert_int_equal(cbev_format_timestamp(0, buf, 25), CBEV_OK);

  /* Against the C library over a spread of instants up to year 9999. */
  for (unsigned long long ms = 7; ms < 253402300799999ull; ms += 1234567890123ull / 7) {
    char want[96]; /* room for any int the compiler imagines */
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    assert_non_null(gmtime_r(&t, &tm));
    snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(ms % 1000));
    assert_int_equal(cbev_format_timestamp(ms, buf, sizeof buf), CBEV_OK);
    assert_string_equal(buf, want);
  }
}

static void test_snake_case(void **state) {
  static const struct {
    const char *in, *out;
  } cases[] = {{"roomSubjectChange", "room_subject_change"},
               {"tip", "tip"},
               {"Tip", "tip"},
               {"ABC", "a_b_c"},
               {"a.b-c d", "a_b_c_d"},
               {"x_y9", "x_y9"},
               {"caf\xC3\xA9", "caf__"},
               {"", ""}};
  char long_in[200], *s;
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    s = cbev_snake_case(cases[i].in);
    assert_non_null(s);
    assert_string_equal(s, cases[i].out);
    cbev_free(s);
  }
  assert_null(cbev_snake_case(NULL));
  memset(long_in, 'a', sizeof long_in - 1);
  long_in[sizeof long_in - 1] = '\0';
  long_in[63] = 'B'; /* the '_' fits at 63, the 'b' would be byte 65 */
  s = cbev_snake_case(long_in);
  assert_int_equal(strlen(s), 64);
  assert_int_equal(s[63], '_');
  cbev_free(s);
}

static void test_bad_arguments(void **state) {
  cbev_batch *b = parse_str("{\"events\":[{\"method\":\"follow\",\"id\":\"1-0\"}]}");
  char *json = (char *)"untouched";
  (void)state;

  assert_int_equal(cbev_event_to_json(NULL, 0, &json, NULL), CBEV_EINVAL);
  assert_string_equal(json, "untouched");
  assert_int_equal(cbev_event_to_json(cbev_batch_get(b, 0), 0, NULL, NULL), CBEV_EINVAL);
  cbev_batch_free(b);
}

static void test_writer_cap(void **state) {
  jsonw w;
  char *out;
  size_t len = 0;
  (void)state;

  cbev__jsonw_init(&w, 4, 10);
  cbev__jsonw_str(&w, "12345678"); /* 10 bytes with quotes: fits exactly */
  assert_int_equal(w.rc, CBEV_OK);
  out = cbev__jsonw_finish(&w, &len);
  assert_non_null(out);
  assert_int_equal(len, 10);
  assert_string_equal(out, "\"12345678\"");
  cbev_free(out);

  cbev__jsonw_init(&w, 4, 10);
  cbev__jsonw_str(&w, "123456789");
  assert_int_equal(w.rc, CBEV_ETOOBIG);
  cbev__jsonw_int(&w, 1); /* sticky: a no-op */
  assert_null(cbev__jsonw_finish(&w, &len));

  cbev__jsonw_init(&w, 0, 1 << 20);
  cbev__jsonw_int(&w, INT64_MIN);
  JSONW_LIT(&w, ",");
  cbev__jsonw_int(&w, INT64_MAX);
  out = cbev__jsonw_finish(&w, NULL);
  assert_string_equal(out, "-9223372036854775808,9223372036854775807");
  cbev_free(out);
}


static void test_allocation_failures(void **state) {
  size_t len;
  char *body = read_file("quirks.body.json", &len);
  int done = 0;
  (void)state;

  cbev_set_allocator(&g_failing);
  for (g_fail_at = 0; !done && g_fail_at < 100000; g_fail_at++) {
    cbev_batch *b = NULL;
    int rc;
    g_allocs = 0;
    rc = cbev_parse_response(body, len, NULL, NULL, &b);
    if (rc != CBEV_OK) {
      /* cJSON reports an allocation failure as a parse failure. */
      assert_true(rc == CBEV_ENOMEM || rc == CBEV_EPARSE);
      assert_null(b);
      continue;
    }
    done = 1;
    for (size_t i = 0; i < cbev_batch_count(b); i++) {
      for (unsigned flags = 0; flags < 4; flags++) {
        char *json = NULL;
        rc = cbev_event_to_json(cbev_batch_get(b, i), flags, &json, NULL);
        assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
        if (rc == CBEV_ENOMEM) {
          assert_null(json);
          done = 0;
        }
        cbev_free(json);
      }
    }
    cbev_batch_free(b);
  }
  cbev_set_allocator(NULL);
  g_fail_at = -1;
  assert_true(done);
  free(body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_files),
      cmocka_unit_test(test_golden_has_every_type),
      cmocka_unit_test(test_spec_example_exact),
      cmocka_unit_test(test_anonymous_tip),
      cmocka_unit_test(test_anonymity_fails_closed_every_mode),
      cmocka_unit_test(test_tip_message_prefix),
      cmocka_unit_test(test_parts_and_key_order),
      cmocka_unit_test(test_unknown_method_raw_object),
      cmocka_unit_test(test_raw_flag_round_trip),
      cmocka_unit_test(test_escaping_controls),
      cmocka_unit_test(test_invalid_utf8_replaced),
      cmocka_unit_test(test_invalid_utf8_in_every_field),
      cmocka_unit_test(test_utf8_repair),
      cmocka_unit_test(test_format_timestamp),
      cmocka_unit_test(test_snake_case),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_writer_cap),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

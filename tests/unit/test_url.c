/* Unit tests of the URL rules (SPEC section 2): same origin, loopback http,
 * userinfo, relative forms, encodings, caps; and the feed URL helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/session.h"
#include "url.h"
#include "failalloc.h"

#define PROD "https://eventsapi.chaturbate.com/events"
#define FEED PROD "/alice/tok123/"

typedef struct origin_case {
  const char *base;
  const char *candidate;
  int want;
} origin_case;

static const origin_case origin_cases[] = {
    /* same origin, spelled differently */
    {PROD, FEED "?i=1755376889458-0&timeout=10", CBEV_OK},
    {PROD, "https://EventsAPI.Chaturbate.COM/events/alice/tok123/?i=1", CBEV_OK},
    {PROD, "HTTPS://eventsapi.chaturbate.com/x", CBEV_OK},
    {PROD, "https://eventsapi.chaturbate.com:443/events/a/t/", CBEV_OK},
    {"https://eventsapi.chaturbate.com:443/events", FEED, CBEV_OK},
    {"http://127.0.0.1:8080/events", "http://127.0.0.1:8080/events/a/t/?i=2", CBEV_OK},
    {"http://localhost:80/events", "http://LOCALHOST/events/a/t/", CBEV_OK},
    {"http://[::1]:9000/events", "http://[0:0:0:0:0:0:0:1]:9000/e/a/t/", CBEV_OK},
    /* libcurl resolves the IPv4 short form; it is the same address */
    {"http://127.0.0.1/events", "http://127.1/events/a/t/", CBEV_OK},
    /* scheme */
    {PROD, "http://eventsapi.chaturbate.com/events/alice/tok123/", CBEV_EURL},
    {PROD, "ftp://eventsapi.chaturbate.com/events/alice/tok123/", CBEV_EURL},
    {PROD, "wss://eventsapi.chaturbate.com/events/alice/tok123/", CBEV_EURL},
    {"http://127.0.0.1:8080/events", "https://127.0.0.1:8080/events/a/t/", CBEV_EURL},
    /* host */
    {PROD, "https://evil.example/events/alice/tok123/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com.evil.example/events/", CBEV_EURL},
    {PROD, "https://chaturbate.com/events/alice/tok123/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com./events/", CBEV_EURL},
    /* port, default ports resolved */
    {PROD, "https://eventsapi.chaturbate.com:8443/events/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com:80/events/", CBEV_EURL},
    {"http://127.0.0.1:8080/events", "http://127.0.0.1/events/a/t/", CBEV_EURL},
    {"http://127.0.0.1:8080/events", "http://127.0.0.1:8081/events/a/t/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com:99999/events/", CBEV_EURL},
    /* userinfo: '@' makes what follows the host */
    {PROD, "https://user@eventsapi.chaturbate.com/events/", CBEV_EURL},
    {PROD, "https://user:pw@eventsapi.chaturbate.com/events/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com@evil.example/events/", CBEV_EURL},
    {PROD, "https://:@eventsapi.chaturbate.com/events/", CBEV_EURL},
    /* relative forms are not absolute URLs */
    {PROD, "/events/alice/tok123/?i=1", CBEV_EURL},
    {PROD, "//eventsapi.chaturbate.com/events/", CBEV_EURL},
    {PROD, "?i=1", CBEV_EURL},
    {PROD, "events/alice/tok123/", CBEV_EURL},
    /* IP literal vs name: the same machine maybe, not the same origin */
    {"http://localhost:8080/events", "http://127.0.0.1:8080/events/a/t/", CBEV_EURL},
    {"http://127.0.0.1:8080/events", "http://localhost:8080/events/a/t/", CBEV_EURL},
    {"http://127.0.0.1:8080/events", "http://[::1]:8080/events/a/t/", CBEV_EURL},
    {"http://[::1]:8080/events", "http://[::ffff:127.0.0.1]:8080/e/a/t/", CBEV_EURL},
    /* percent-encoded host: compared after decoding, as curl connects */
    {PROD, "https://%65vil.example/events/", CBEV_EURL},
    {PROD, "https://eventsapi%2Echaturbate%2Ecom.evil.example/events/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com%40evil.example/events/", CBEV_EURL},
    {PROD, "https://evil.example%2F@eventsapi.chaturbate.com/events/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com%00.evil.example/events/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com%3A443/events/", CBEV_EURL},
    /* IP literals in other spellings: the address curl would connect to */
    {"http://127.0.0.1:8080/events", "http://2130706433:8080/events/a/t/", CBEV_OK},
    {"http://127.0.0.1:8080/events", "http://0x7f.0.0.1:8080/events/a/t/", CBEV_OK},
    {"http://127.0.0.1:8080/events", "http://2130706434:8080/events/a/t/", CBEV_EURL},
    {"http://127.0.0.1:8080/events", "http://0177.0.0.2:8080/events/a/t/", CBEV_EURL},
    /* a zone id would be left out of the compared host: refused */
    {"http://[::1]:8080/events", "http://[::1%25eth0]:8080/e/a/t/", CBEV_EURL},
    {"https://[fe80::1%25eth0]/events", "https://[fe80::1%25eth1]/events/a/t/", CBEV_EURL},
    {"https://[fe80::1%25eth0]/events", "https://[fe80::1%25eth0]/events/a/t/", CBEV_EURL},
    {PROD, "https://104.16.0.1/events/alice/tok123/", CBEV_EURL},
    {PROD, "https://[2606:4700::1]/events/alice/tok123/", CBEV_EURL},
    /* garbage */
    {PROD, "", CBEV_EURL},
    {PROD, "https://", CBEV_EURL},
    {PROD, "https:///events/", CBEV_EURL},
    {PROD, "not a url", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com/ev ents/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com/ev\tents/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com/events/\xc3\xa9/", CBEV_EURL},
    {PROD, "https://eventsapi.chaturbate.com\\@evil.example/", CBEV_EURL},
    {PROD, "javascript:alert(1)", CBEV_EURL},
    {PROD, "https:evil.example/events/", CBEV_EURL},
    /* the base itself must pass the rules */
    {"http://eventsapi.chaturbate.com/events", "http://eventsapi.chaturbate.com/e/", CBEV_EURL},
    {"garbage", FEED, CBEV_EURL},
};

static void test_same_origin_matrix(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof origin_cases / sizeof origin_cases[0]; i++) {
    const origin_case *c = &origin_cases[i];
    int got = cbev_url_check_same_origin(c->base, c->candidate);
    if (got != c->want)
      fail_msg("case %zu: base %s candidate \"%s\": got %d, want %d", i, c->base,
               c->candidate, got, c->want);
  }
  assert_int_equal(cbev_url_check_same_origin(NULL, FEED), CBEV_EURL);
  assert_int_equal(cbev_url_check_same_origin(PROD, NULL), CBEV_EURL);
}

static void test_scheme_rules(void **state) {
  static const struct {
    const char *url;
    int want;
  } cases[] = {
      {"https://eventsapi.chaturbate.com/events", CBEV_OK},
      {"https://example.org:8443/x", CBEV_OK},
      {"http://127.0.0.1:8080/events", CBEV_OK},
      {"http://127.255.1.2/events", CBEV_OK},
      {"http://localhost/events", CBEV_OK},
      {"http://[::1]:1/events", CBEV_OK},
      {"http://128.0.0.1/events", CBEV_EURL},
      {"http://10.0.0.1/events", CBEV_EURL},
      {"http://eventsapi.chaturbate.com/events", CBEV_EURL},
      {"http://localhost.evil.example/events", CBEV_EURL},
      {"http://127.0.0.1.nip.io/events", CBEV_EURL},
      {"http://[::2]/events", CBEV_EURL},
      {"http://[::ffff:127.0.0.1]/events", CBEV_EURL},
      {"http://[::1%25lo]:1/events", CBEV_EURL},
      {"http://0x7f000001:1/events", CBEV_OK},
      {"http://127.0.0.1%2Eevil.example/events", CBEV_EURL},
      {"https://u@example.org/", CBEV_EURL},
      {"ftp://127.0.0.1/", CBEV_EURL},
      {"/events", CBEV_EURL},
      {"", CBEV_EURL},
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int got = cbev_url_check_scheme(cases[i].url);
    if (got != cases[i].want)
      fail_msg("\"%s\": got %d, want %d", cases[i].url, got, cases[i].want);
  }
  assert_int_equal(cbev_url_check_scheme(NULL), CBEV_EURL);
}

/* Relative nextUrl forms are resolved against the current URL first, then
 * checked: a network-path reference cannot change the host. */
static void test_resolve_relative(void **state) {
  static const struct {
    const char *candidate;
    int want;
    const char *resolved;
  } cases[] = {
      {"?i=1755376889458-0", CBEV_OK, FEED "?i=1755376889458-0"},
      {"/events/alice/tok123/?i=5", CBEV_OK, FEED "?i=5"},
      {"../tok123/?i=6", CBEV_OK, FEED "?i=6"},
      {FEED "?i=7", CBEV_OK, FEED "?i=7"},
      {"https://EVENTSAPI.chaturbate.com:443/events/alice/tok123/?i=8", CBEV_OK,
       "https://EVENTSAPI.chaturbate.com:443/events/alice/tok123/?i=8"},
      {"//evil.example/events/alice/tok123/", CBEV_EURL, NULL},
      {"///evil.example/x", CBEV_EURL, NULL},
      {"https:/evil.example/x", CBEV_EURL, NULL},
      {"http:/x", CBEV_EURL, NULL},
      {"https://evil.example/events/alice/tok123/?i=1", CBEV_EURL, NULL},
      {"", CBEV_EURL, NULL},
      {" ", CBEV_EURL, NULL},
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *out = (char *)"untouched";
    int got = cbev__url_resolve_checked(PROD, FEED "?timeout=10", cases[i].candidate, &out);
    if (got != cases[i].want)
      fail_msg("\"%s\": got %d, want %d", cases[i].candidate, got, cases[i].want);
    if (cases[i].resolved) {
      assert_non_null(out);
      assert_string_equal(out, cases[i].resolved);
      cbev_free(out);
    } else {
      assert_null(out);
    }
  }
}

/* URLs are capped at 8 KiB: one byte over is refused, at the cap passes. */
static void test_long_url(void **state) {
  size_t prefix = strlen(FEED "?i=");
  char *url = malloc(CBEV_URL_MAX + 2);
  (void)state;
  assert_non_null(url);
  memcpy(url, FEED "?i=", prefix);
  memset(url + prefix, 'a', CBEV_URL_MAX - prefix);
  url[CBEV_URL_MAX] = '\0';
  assert_int_equal(cbev_url_check_same_origin(PROD, url), CBEV_OK);
  url[CBEV_URL_MAX] = 'a';
  url[CBEV_URL_MAX + 1] = '\0';
  assert_int_equal(cbev_url_check_same_origin(PROD, url), CBEV_EURL);
  char *out = NULL;
  assert_int_equal(cbev__url_resolve_checked(PROD, FEED, url, &out), CBEV_EURL);
  assert_null(out);
  free(url);
}

static void test_encode_decode(void **state) {
  char *e, *d;
  (void)state;
  e = cbev__url_encode_segment("tok/en+1 %~._-Az9");
  assert_string_equal(e, "tok%2Fen%2B1%20%25~._-Az9");
  assert_int_equal(cbev__url_decode_segment(e, strlen(e), &d), CBEV_OK);
  assert_string_equal(d, "tok/en+1 %~._-Az9");
  cbev_free(e);
  cbev_free(d);
  assert_int_equal(cbev__url_decode_segment("a%2fb%2Bc", 9, &d), CBEV_OK);
  assert_string_equal(d, "a/b+c");
  cbev_free(d);
  /* malformed escapes and decoded control bytes are refused */
  static const char *const bad[] = {"a%2", "a%zz", "a%00b", "a%0Ab", "%7f", "\x01"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    d = (char *)"untouched";
    assert_int_equal(cbev__url_decode_segment(bad[i], strlen(bad[i]), &d), CBEV_EURL);
    assert_null(d);
  }
  /* only len bytes are read */
  assert_int_equal(cbev__url_decode_segment("abc/def", 3, &d), CBEV_OK);
  assert_string_equal(d, "abc");
  cbev_free(d);
}

static void test_feed_url(void **state) {
  cbev_feed_url f;
  (void)state;
  assert_int_equal(cbev__feed_url_parse(PROD "/alice/tok%2Fen%2B1/", 10, &f), CBEV_OK);
  assert_string_equal(f.base, PROD);
  assert_string_equal(f.username, "alice");
  assert_string_equal(f.token, "tok/en+1");
  assert_string_equal(f.url, PROD "/alice/tok%2Fen%2B1/?timeout=10");
  assert_int_equal(f.timeout_s, -1);
  cbev__feed_url_cleanup(&f);

  /* no trailing slash, a query of its own, a port */
  assert_int_equal(cbev__feed_url_parse("http://127.0.0.1:8080/events/bob/t0k?i=5", 30, &f),
                   CBEV_OK);
  assert_string_equal(f.base, "http://127.0.0.1:8080/events");
  assert_string_equal(f.username, "bob");
  assert_string_equal(f.token, "t0k");
  assert_string_equal(f.url, "http://127.0.0.1:8080/events/bob/t0k?i=5&timeout=30");
  cbev__feed_url_cleanup(&f);

  /* timeout present: kept and reported */
  assert_int_equal(cbev__feed_url_parse(PROD "/alice/t/?timeout=45", 10, &f), CBEV_OK);
  assert_int_equal(f.timeout_s, 45);
  assert_string_equal(f.url, PROD "/alice/t/?timeout=45");
  cbev__feed_url_cleanup(&f);

  /* base at the root */
  assert_int_equal(cbev__feed_url_parse("https://h.example/alice/t/", 10, &f), CBEV_OK);
  assert_string_equal(f.base, "https://h.example");
  cbev__feed_url_cleanup(&f);

  assert_int_equal(cbev__feed_url_parse(PROD "/alice/t/?timeout=91", 10, &f), CBEV_EINVAL);
  assert_int_equal(cbev__feed_url_parse(PROD "/alice/t/?timeout=x", 10, &f), CBEV_EINVAL);
  assert_int_equal(cbev__feed_url_parse(PROD "/alice/t/?timeout=", 10, &f), CBEV_EINVAL);
  assert_int_equal(cbev__feed_url_parse("https://h.example/onlyone/", 10, &f), CBEV_EURL);
  assert_int_equal(cbev__feed_url_parse("https://h.example/", 10, &f), CBEV_EURL);
  assert_int_equal(cbev__feed_url_parse("https://h.example/a//", 10, &f), CBEV_EURL);
  assert_int_equal(cbev__feed_url_parse("https://h.example/a/b%zz/", 10, &f), CBEV_EURL);
  assert_null(f.url);
}

static void test_origin_for_logs(void **state) {
  char buf[128];
  (void)state;
  cbev__url_origin(FEED "?i=1", NULL, buf, sizeof buf);
  assert_string_equal(buf, "https://eventsapi.chaturbate.com:443");
  assert_null(strstr(buf, "tok123"));
  cbev__url_origin("?i=1", NULL, buf, sizeof buf);
  assert_string_equal(buf, "(unparsable)");
  cbev__url_origin(NULL, NULL, buf, sizeof buf);
  assert_string_equal(buf, "(unparsable)");
}


/* A redirect's target, relative ones resolved against the URL requested. */
static void test_target_origin(void **state) {
  char buf[128];
  (void)state;
  cbev__url_target_origin(FEED, "https://x.example:8443/p?tok123", "tok123", buf, sizeof buf);
  assert_string_equal(buf, "https://x.example:8443");
  cbev__url_target_origin(FEED, "/login?next=tok123", "tok123", buf, sizeof buf);
  assert_string_equal(buf, "https://eventsapi.chaturbate.com:443");
  cbev__url_target_origin(FEED, "//other.example/", NULL, buf, sizeof buf);
  assert_string_equal(buf, "https://other.example:443");
  cbev__url_target_origin(FEED, "has space", NULL, buf, sizeof buf);
  assert_string_equal(buf, "(unparsable)");
  cbev__url_target_origin(NULL, "/x", NULL, buf, sizeof buf);
  assert_string_equal(buf, "(unparsable)");
}

/* Only i= of a saved cursor lands on the feed URL (issue 15 defect 3). */
static void test_with_cursor(void **state) {
  char *out = NULL;
  (void)state;
  assert_int_equal(cbev__url_with_cursor(FEED "?timeout=3", FEED "?timeout=30&i=5-0", &out),
                   CBEV_OK);
  assert_string_equal(out, FEED "?i=5-0&timeout=3");
  cbev_free(out);
  assert_int_equal(cbev__url_with_cursor(FEED "?i=1-0&timeout=3&x=y",
                                        PROD "/alice/old/?i=2-0&i=3-0", &out), CBEV_OK);
  assert_string_equal(out, FEED "?i=3-0&timeout=3&x=y"); /* the last i= of the saved */
  cbev_free(out);
  assert_int_equal(cbev__url_with_cursor(FEED "?timeout=3", FEED "?ii=1&xi=2", &out), CBEV_OK);
  assert_string_equal(out, FEED "?timeout=3");
  cbev_free(out);
  assert_int_equal(cbev__url_with_cursor(FEED, FEED "?i=7-1", &out), CBEV_OK);
  assert_string_equal(out, FEED "?i=7-1");
  cbev_free(out);
  assert_int_equal(cbev__url_with_cursor(FEED, "not a url", &out), CBEV_EURL);
  assert_null(out);
}

/* The Nth allocation of each URL helper fails, for every N: the result is
 * CBEV_ENOMEM (never a wrong verdict such as CBEV_EURL for a good URL),
 * nothing is returned, nothing leaks (ASan). libcurl's own allocations are
 * its business; those of libcbevents go through the hook. */
static void test_allocation_failures(void **state) {
  int done = 0;
  (void)state;

  cbev_set_allocator(&g_failing);
  for (g_fail_at = 0; !done && g_fail_at < 1000; g_fail_at++) {
    char *out = NULL, *enc = NULL, origin[256];
    cbev_feed_url feed;
    int rc, ok = 1;

    g_allocs = 0;
    rc = cbev__url_resolve_checked(PROD, FEED "?timeout=10", "?i=1-0", &out);
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
    if (rc == CBEV_OK)
      assert_string_equal(out, FEED "?i=1-0");
    else
      assert_null(out);
    ok &= rc == CBEV_OK;
    cbev_free(out);
    out = NULL;

    rc = cbev__url_normalize(FEED "?i=2", &out);
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
    ok &= rc == CBEV_OK;
    cbev_free(out);

    rc = cbev_url_check_same_origin(PROD, FEED);
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
    ok &= rc == CBEV_OK;

    rc = cbev__feed_url_parse(PROD "/alice/tok%2Fen/", 10, &feed);
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
    if (rc == CBEV_OK) {
      assert_string_equal(feed.token, "tok/en");
      cbev__feed_url_cleanup(&feed);
    }
    ok &= rc == CBEV_OK;

    enc = cbev__url_encode_segment("tok/en+1");
    if (enc)
      assert_string_equal(enc, "tok%2Fen%2B1");
    ok &= enc != NULL;
    cbev_free(enc);

    cbev__url_origin("https://tok123.evil.example:8443/x", "tok123", origin, sizeof origin);
    assert_null(strstr(origin, "tok123"));
    ok &= strcmp(origin, "https://***.evil.example:8443") == 0;

    cbev__url_target_origin(FEED, "//tok123.evil.example/x", "tok123", origin, sizeof origin);
    assert_null(strstr(origin, "tok123"));
    ok &= strcmp(origin, "https://***.evil.example:443") == 0;

    out = NULL;
    rc = cbev__url_with_cursor(FEED "?timeout=3", FEED "?i=9-9&timeout=30", &out);
    assert_true(rc == CBEV_OK || rc == CBEV_ENOMEM);
    if (rc == CBEV_OK)
      assert_string_equal(out, FEED "?i=9-9&timeout=3");
    else
      assert_null(out);
    ok &= rc == CBEV_OK;
    cbev_free(out);
    done = ok;
  }
  cbev_set_allocator(NULL);
  g_fail_at = -1;
  assert_true(done);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_origin_matrix), cmocka_unit_test(test_scheme_rules),
      cmocka_unit_test(test_resolve_relative),   cmocka_unit_test(test_long_url),
      cmocka_unit_test(test_encode_decode),      cmocka_unit_test(test_feed_url),
      cmocka_unit_test(test_origin_for_logs),   cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_target_origin),     cmocka_unit_test(test_with_cursor),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

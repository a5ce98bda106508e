/* Unit tests of json.c, the parser behind cbev_parse_response: the JSON
 * grammar it accepts and refuses, string decoding (escapes, surrogates,
 * NULs, the end of the text), numbers, nesting, where it stops, and every
 * allocation failure. */
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "failalloc.h"
#include "json.h"

/* Parses text (length n) in a fresh arena; *a must be unref'd. */
static int parse_n(const char *text, size_t n, cbev_arena **a, const jv **root, size_t *end) {
  *a = cbev__arena_new(n);
  assert_non_null(*a);
  return cbev__jv_parse(*a, text, n, root, end);
}

static int parse(const char *text, cbev_arena **a, const jv **root, size_t *end) {
  return parse_n(text, strlen(text), a, root, end);
}

/* Whether text is refused, the arena freed either way. */
static int refused(const char *text) {
  cbev_arena *a;
  const jv *root;
  size_t end;
  int rc = parse(text, &a, &root, &end);

  cbev__arena_unref(a);
  if (rc == CBEV_OK)
    return 0;
  assert_int_equal(rc, CBEV_EPARSE);
  return 1;
}

/* The single string of text, which must parse; copied into out. */
static size_t string_of(const char *text, size_t n, char *out, size_t cap) {
  cbev_arena *a;
  const jv *root;
  size_t end, len;

  assert_int_equal(parse_n(text, n, &a, &root, &end), CBEV_OK);
  assert_int_equal(root->type, JV_STRING);
  len = strlen(root->u.str);
  assert_true(len < cap);
  memcpy(out, root->u.str, len + 1);
  cbev__arena_unref(a);
  return len;
}

#define STRING_OF(lit, out) string_of((lit), sizeof(lit) - 1, (out), sizeof(out))

static void test_values_and_order(void **state) {
  const char *text = "{\"a\":1,\"b\":[true,false,null,\"x\"],\"a\":{},\"c\":[]}";
  cbev_arena *a;
  const jv *root, *c;
  size_t end;
  (void)state;

  assert_int_equal(parse(text, &a, &root, &end), CBEV_OK);
  assert_int_equal(end, strlen(text));
  assert_int_equal(root->type, JV_OBJECT);
  assert_null(root->key);
  c = root->u.child;
  assert_string_equal(c->key, "a");
  assert_int_equal(c->keylen, 1);
  assert_int_equal(c->type, JV_NUMBER);
  assert_int_equal(cbev__jv_num_len(c), 1);
  assert_memory_equal(c->u.num, "1", 1);
  c = c->next;
  assert_string_equal(c->key, "b");
  assert_int_equal(c->type, JV_ARRAY);
  assert_int_equal(c->u.child->type, JV_TRUE);
  assert_null(c->u.child->key); /* elements have no name */
  assert_int_equal(c->u.child->next->type, JV_FALSE);
  assert_int_equal(c->u.child->next->next->type, JV_NULL);
  assert_string_equal(c->u.child->next->next->next->u.str, "x");
  assert_null(c->u.child->next->next->next->next);
  /* Duplicate names are all kept, in order. */
  c = c->next;
  assert_string_equal(c->key, "a");
  assert_int_equal(c->type, JV_OBJECT);
  assert_null(c->u.child);
  c = c->next;
  assert_int_equal(c->type, JV_ARRAY);
  assert_null(c->u.child);
  assert_null(c->next);
  assert_true(JV_KEY_IS(c, "c"));
  assert_false(JV_KEY_IS(c, "cc"));
  cbev__arena_unref(a);
}

static void test_white_space_bom_and_end(void **state) {
  cbev_arena *a;
  const jv *root;
  size_t end;
  (void)state;

  /* Any byte up to 0x20 is white space, as for cJSON; a BOM may lead. */
  assert_int_equal(parse("\xEF\xBB\xBF \x01\t\r\n{ \"k\" \x1f: [ 1 , 2 ] }  ", &a, &root, &end),
                   CBEV_OK);
  assert_int_equal(root->u.child->type, JV_ARRAY);
  /* The value ends where it ends: what follows is the caller's to judge. */
  assert_int_equal(end, strlen("\xEF\xBB\xBF \x01\t\r\n{ \"k\" \x1f: [ 1 , 2 ] }"));
  cbev__arena_unref(a);
  assert_int_equal(parse("[1] x", &a, &root, &end), CBEV_OK);
  assert_int_equal(end, 3);
  cbev__arena_unref(a);
  /* Where a failure stopped. */
  assert_int_equal(parse("{\"a\":[1,}", &a, &root, &end), CBEV_EPARSE);
  assert_null(root);
  assert_int_equal(end, 8);
  cbev__arena_unref(a);
}

static void test_refused(void **state) {
  static const char *const bad[] = {
      "", " ", "{", "}", "[", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\" 1}",
      "{\"a\":1,}", "{a:1}", "{\"a\":1 \"b\":2}", "[1 2]", "tru", "nul", "falsey",
      "True", "'x'", "\"abc", "\"abc\\", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"",
      "-", "01", "1.", ".5", "1e", "1e+", "+1", "--1", "0x10", "NaN", "Infinity",
  };
  (void)state;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cbev_arena *a;
    const jv *root;
    size_t end;
    int rc = parse(bad[i], &a, &root, &end);
    /* "01" parses as 0 with text after it: the caller refuses that. */
    if (rc == CBEV_OK) {
      assert_true(end < strlen(bad[i]));
    } else {
      assert_int_equal(rc, CBEV_EPARSE);
      assert_null(root);
    }
    cbev__arena_unref(a);
  }
}

static void test_escapes(void **state) {
  char out[64];
  (void)state;

  STRING_OF("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\te\"", out);
  assert_string_equal(out, "a\"b\\c/d\b\f\n\r\te");
  STRING_OF("\"caf\\u00e9 \\u20AC \\ud83d\\ude00\"", out);
  assert_string_equal(out, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  /* Lone halves of a surrogate pair become U+FFFD; what follows is kept. */
  STRING_OF("\"\\ud800x\"", out);
  assert_string_equal(out, "\xEF\xBF\xBDx");
  STRING_OF("\"\\udc00\"", out);
  assert_string_equal(out, "\xEF\xBF\xBD");
  STRING_OF("\"\\ud800\\u0041\"", out);
  assert_string_equal(out, "\xEF\xBF\xBD" "A");
  STRING_OF("\"\\ud800\\ud800\\udc00\"", out);
  assert_string_equal(out, "\xEF\xBF\xBD\xF0\x90\x80\x80");
  /* Invalid UTF-8 is kept as it is (the writer repairs it). */
  STRING_OF("\"\xff\xc3(\"", out);
  assert_string_equal(out, "\xff\xc3(");
  /* An escaped quote at a word boundary of the fast scan. */
  STRING_OF("\"0123456\\\"89abcdef\"", out);
  assert_string_equal(out, "0123456\"89abcdef");
}

static void test_nul_in_strings(void **state) {
  cbev_arena *a;
  const jv *root;
  size_t end;
  char out[16];
  (void)state;

  /* "\u0000" and a raw NUL byte end the C string early; parsing goes on. */
  STRING_OF("\"ab\\u0000cd\"", out);
  assert_string_equal(out, "ab");
  STRING_OF("\"ab\0cd\"", out);
  assert_string_equal(out, "ab");
  /* A name is what comes before its NUL, as every C reader and the
   * writer see it: this is the key "user". */
  assert_int_equal(parse_n("{\"user\\u0000x\":1}", 17, &a, &root, &end), CBEV_OK);
  assert_int_equal(root->u.child->keylen, 4);
  assert_true(JV_KEY_IS(root->u.child, "user"));
  cbev__arena_unref(a);
  /* A string that the end of the text cuts: NUL bytes are not its end. */
  assert_int_equal(parse_n("\"ab\0", 4, &a, &root, &end), CBEV_EPARSE);
  cbev__arena_unref(a);
  assert_int_equal(parse_n("\"0123456789abcdef", 17, &a, &root, &end), CBEV_EPARSE);
  cbev__arena_unref(a);
  assert_int_equal(parse_n("\"\\u00", 5, &a, &root, &end), CBEV_EPARSE);
  cbev__arena_unref(a);
  assert_int_equal(parse_n("\"\\ud800\\u", 9, &a, &root, &end), CBEV_EPARSE);
  cbev__arena_unref(a);
}

static double number_of(const char *text) {
  cbev_arena *a;
  const jv *root;
  size_t end;
  double d;

  assert_int_equal(parse(text, &a, &root, &end), CBEV_OK);
  assert_int_equal(root->type, JV_NUMBER);
  assert_int_equal(end, strlen(text));
  assert_int_equal(cbev__jv_num_len(root), strlen(text));
  assert_memory_equal(root->u.num, text, strlen(text));
  assert_int_equal(cbev__jv_num_double(root, &d), CBEV_OK);
  cbev__arena_unref(a);
  return d;
}

/* Whether text (one number) reads as an exact int64, into *v. */
static int int64_of(const char *text, int64_t *v) {
  cbev_arena *a;
  const jv *root;
  size_t end;
  int ok;

  assert_int_equal(parse(text, &a, &root, &end), CBEV_OK);
  assert_int_equal(root->type, JV_NUMBER);
  ok = cbev__jv_num_int64(root, v);
  cbev__arena_unref(a);
  return ok;
}

/* Numbers are kept as their text (json.h): an integer past 2^53 keeps
 * every digit, the int64 reading is exact to the limits, and only text
 * written as an integer is one. The text of a number inside a container
 * ends where its number ends. */
static void test_number_text_exact(void **state) {
  cbev_arena *a;
  const jv *root, *c;
  size_t end;
  int64_t v = 0;
  (void)state;

  assert_true(int64_of("9007199254740993", &v) && v == INT64_C(9007199254740993));
  assert_true(int64_of("9007199254740992", &v) && v == INT64_C(9007199254740992));
  assert_true(int64_of("9007199254740991", &v) && v == INT64_C(9007199254740991));
  assert_true(int64_of("9223372036854775807", &v) && v == INT64_MAX);
  assert_true(int64_of("-9223372036854775808", &v) && v == INT64_MIN);
  assert_true(int64_of("-9223372036854775807", &v) && v == -INT64_MAX);
  assert_true(int64_of("-0", &v) && v == 0);
  assert_false(int64_of("9223372036854775808", &v));
  assert_false(int64_of("-9223372036854775809", &v));
  assert_false(int64_of("99999999999999999999999", &v));
  assert_false(int64_of("25.0", &v));
  assert_false(int64_of("1e3", &v));
  assert_int_equal(parse("{\"id\":9007199254740993,\"x\":[-1.5e+300,0]}", &a, &root, &end),
                   CBEV_OK);
  c = root->u.child;
  assert_int_equal(cbev__jv_num_len(c), 16);
  assert_memory_equal(c->u.num, "9007199254740993", 16);
  c = c->next->u.child;
  assert_int_equal(cbev__jv_num_len(c), 9);
  assert_memory_equal(c->u.num, "-1.5e+300", 9);
  assert_int_equal(cbev__jv_num_len(c->next), 1);
  cbev__arena_unref(a);
}

static void test_numbers(void **state) {
  char big[400];
  (void)state;

  assert_true(number_of("0") == 0.0);
  assert_true(number_of("-0") == 0.0 && signbit(number_of("-0")));
  assert_true(number_of("123456789012345") == 123456789012345.0);
  assert_true(number_of("-999999999999999") == -999999999999999.0);
  /* Past 15 digits strtod rounds, as for any double. */
  assert_true(number_of("9007199254740993") == 9007199254740992.0);
  assert_true(number_of("18446744073709551616") == 18446744073709551616.0);
  assert_true(number_of("1.5") == 1.5);
  assert_true(number_of("-2.5e3") == -2500.0);
  assert_true(number_of("1E-2") == 0.01);
  assert_true(number_of("1e+2") == 100.0);
  assert_true(isinf(number_of("1e999")));
  /* Longer than the stack copy: the arena holds it. */
  memset(big, '1', 300);
  memcpy(big + 300, ".25", 4);
  assert_true(number_of(big) > 1e299);
}

static void test_numbers_any_locale(void **state) {
  (void)state;

  /* A program that set a locale with a decimal comma must still read 1.5. */
  if (!setlocale(LC_NUMERIC, "de_DE.UTF-8") && !setlocale(LC_NUMERIC, "fr_FR.UTF-8")) {
    print_message("no de_DE or fr_FR locale installed: the decimal comma is not tried\n");
    skip();
    return;
  }
  assert_true(number_of("1.5") == 1.5);
  setlocale(LC_NUMERIC, "C");
}

/* n arrays inside each other. */
static char *nested(size_t n) {
  char *s = malloc(2 * n + 1);
  assert_non_null(s);
  memset(s, '[', n);
  memset(s + n, ']', n);
  s[2 * n] = '\0';
  return s;
}

static void test_depth(void **state) {
  char *s;
  (void)state;

  s = nested(JV_MAX_DEPTH);
  assert_false(refused(s));
  free(s);
  s = nested(JV_MAX_DEPTH + 1);
  assert_true(refused(s));
  free(s);
  s = nested(100000);
  assert_true(refused(s));
  free(s);
}

static void test_every_allocation_failure(void **state) {
  const char *text = "{\"events\":[{\"a\":\"b\",\"n\":1.25e1,\"x\":[1,2,3]}],\"nextUrl\":null}";
  /* A number too long for the stack copy and for the first block. */
  char *big = malloc(5001);
  (void)state;

  assert_non_null(big);
  memset(big, '7', 5000);
  big[5000] = '\0';
  cbev_set_allocator(&g_failing);
  for (int which = 0; which < 2; which++) {
    const char *t = which ? big : text;
    for (long n = 0;; n++) {
      cbev_arena *a;
      const jv *root;
      size_t end;
      int rc;

      g_allocs = 0;
      g_fail_at = n;
      if (!(a = cbev__arena_new(strlen(t))))
        continue;
      end = 12345;
      rc = cbev__jv_parse(a, t, strlen(t), &root, &end);
      cbev__arena_unref(a);
      if (rc == CBEV_OK)
        break;
      assert_int_equal(rc, CBEV_ENOMEM);
      /* Where it stopped, inside the text (also when nothing was read). */
      assert_true(end <= strlen(t));
      assert_true(n < 100);
    }
  }
  g_fail_at = -1;
  cbev_set_allocator(NULL);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_and_order),
      cmocka_unit_test(test_white_space_bom_and_end),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_escapes),
      cmocka_unit_test(test_nul_in_strings),
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_numbers_any_locale),
      cmocka_unit_test(test_number_text_exact),
      cmocka_unit_test(test_depth),
      cmocka_unit_test(test_every_allocation_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * json.h: the JSON parser behind cbev_parse_response (internal).
 *
 * cJSON allocates every node and every string separately, parses numbers
 * through a copy and strtod, and scans each string twice: on an Events API
 * body that is most of the parse time, and it capped the library at about
 * 450,000 events/s. This parser reads the body once into a compact tree
 * whose nodes and strings all come from the batch's arena (arena.h), so a
 * batch costs a handful of allocations whatever its size.
 *
 * It reads a body the way cJSON did (tests/fuzz/fuzz_json.c checks it):
 * between tokens any byte from 0x00 to 0x20 counts as white space (control
 * characters and NUL too, as cJSON's skip does; what follows the value is
 * the caller's to judge: cbev_parse_response() accepts only space, tab, CR,
 * LF and NUL there), a UTF-8 byte order mark may
 * start the text, bytes of strings are kept as they are (invalid UTF-8
 * included: the writer repairs it), "\u0000" ends a string (and a member
 * name) early, nesting stops at JV_MAX_DEPTH. It differs on purpose in three
 * places. A lone UTF-16 surrogate escape decodes as U+FFFD where cJSON
 * refuses the whole body: encoders such as Python's json emit them for
 * broken text, and refusing the body would stall the feed at that cursor
 * for good. Numbers follow JSON's grammar, where cJSON also read "01" or
 * "1." through strtod. And a number is kept as the text received, not as
 * a double: an integer above 2^53 (a media id 9007199254740993) would be
 * rounded by one, so the raw writer republishes the text and the event
 * parser reads integers from it exactly; cbev__jv_num_double() gives the value
 * cJSON holds (strtod of the same text), and cJSON's number text is cut
 * at 63 bytes where this parser takes a number of any length.
 */
#ifndef CBEV_JSON_H
#define CBEV_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"

typedef enum jv_type {
  JV_NULL,
  JV_FALSE,
  JV_TRUE,
  JV_NUMBER,
  JV_STRING,
  JV_ARRAY,
  JV_OBJECT
} jv_type;

/* One value. Members and elements are a list through next, in text order
 * (duplicate member names are all kept). Everything lives in the arena. */
typedef struct jv {
  struct jv *next;
  const char *key; /* the member name inside an object, else NULL */
  union {
    struct jv *child; /* JV_ARRAY, JV_OBJECT: the first element or member */
    const char *str;  /* JV_STRING: NUL-terminated */
    const char *num;  /* JV_NUMBER: its text as received, valid JSON
                         number syntax, not NUL-terminated (cbev__jv_num_len) */
  } u;
  unsigned keylen;    /* strlen(key), saturated at UINT_MAX; 0 without key */
  unsigned char type; /* jv_type */
} jv;

/* Whether member c is named lit (a string literal): lengths first, so most
 * mismatches cost one comparison. */
#define JV_KEY_IS(c, lit) \
  ((c)->keylen == sizeof(lit) - 1 && memcmp((c)->key, (lit), sizeof(lit) - 1) == 0)

/* Deeper arrays and objects are refused (the same limit as cJSON's). */
#define JV_MAX_DEPTH 1000

/* Parses the JSON value at the start of text[0..len) into a. Returns
 * CBEV_OK with *root set, CBEV_EPARSE (invalid JSON or nested too deep) or
 * CBEV_ENOMEM. *end_at is the byte offset where the value ended (the caller
 * judges what follows) or, on failure, where parsing stopped. Nothing is
 * freed on failure: the arena owns whatever was made. */
int cbev__jv_parse(cbev_arena *a, const char *text, size_t len, const jv **root, size_t *end_at);

/* The length of number v's text (v->u.num). */
size_t cbev__jv_num_len(const jv *v);
/* Number v as a double, as strtod reads its text in the C locale (what
 * cJSON holds; past 2^53 it is rounded, 1e999 is infinity). Returns CBEV_OK
 * or CBEV_ENOMEM (text of 64 bytes or more is converted from a heap copy). */
int cbev__jv_num_double(const jv *v, double *out);
/* Whether number v is written as an integer (no fraction, no exponent)
 * within int64's range; then *out is its exact value. */
int cbev__jv_num_int64(const jv *v, int64_t *out);

#endif

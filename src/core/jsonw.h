/*
 * jsonw.h: a small JSON writer into one growable, capped buffer (internal
 * to libcbevents). The normalizer writes its payloads with it instead of
 * building a cJSON tree per event.
 *
 * Errors are sticky: the first failure (CBEV_ENOMEM, or CBEV_ETOOBIG when
 * the output would pass max_bytes) is kept in w->rc and every later call is
 * a no-op, so a caller writes a whole document and checks once at the end.
 * Strings are written as valid UTF-8: invalid sequences become U+FFFD (one
 * per maximal invalid subpart, as Unicode recommends), control characters
 * are escaped.
 */
#ifndef CBEV_JSONW_H
#define CBEV_JSONW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jv;

typedef struct jsonw {
  char *buf;
  size_t len, cap;  /* cap is 0 while buf is NULL */
  size_t first_cap; /* size of the first allocation */
  size_t max_bytes; /* cap on len, the NUL terminator excluded */
  int rc;           /* CBEV_OK until the first failure */
} jsonw;

/* Embedded writer: nothing is allocated until the first write, and the
 * first allocation takes initial_cap bytes. */
void cbev__jsonw_init(jsonw *w, size_t initial_cap, size_t max_bytes);
/* Frees the buffer (unless cbev__jsonw_finish handed it out). */
void cbev__jsonw_cleanup(jsonw *w);
/* Ensures room for n more bytes plus a NUL. Returns 0 or sets w->rc. */
int cbev__jsonw_grow(jsonw *w, size_t n);

static inline int jsonw_reserve(jsonw *w, size_t n) {
  if (w->rc == 0 && w->cap - w->len > n)
    return 0;
  return cbev__jsonw_grow(w, n);
}

/* Appends n bytes as they are (JSON punctuation, known keys). */
static inline void jsonw_lit(jsonw *w, const char *s, size_t n) {
  if (jsonw_reserve(w, n) != 0)
    return;
  memcpy(w->buf + w->len, s, n);
  w->len += n;
}
#define JSONW_LIT(w, s) jsonw_lit((w), (s), sizeof(s) - 1)

/* A JSON string of the NUL-terminated s (quotes added), or null for NULL.
 * cbev__jsonw_str_body writes the escaped text without the quotes. */
void cbev__jsonw_str(jsonw *w, const char *s);
void cbev__jsonw_str_body(jsonw *w, const char *s);
void cbev__jsonw_int(jsonw *w, int64_t v);
/* -1 (unset) null, 0 false, anything else true. */
void cbev__jsonw_tristate(jsonw *w, int t);
/* Any parsed value (json.h; NULL -> null), recursively, nesting capped at
 * JSONW_MAX_DEPTH (deeper -> CBEV_ETOOBIG); numbers as the text received,
 * so none is rounded. */
#define JSONW_MAX_DEPTH 1000
void cbev__jsonw_value(jsonw *w, const struct jv *item);

/* On success returns the NUL-terminated buffer (the caller owns it and
 * frees it with cbev_free) and its length in *len (may be NULL); the writer
 * is left empty. Returns NULL when w->rc is set (the buffer is freed). */
char *cbev__jsonw_finish(jsonw *w, size_t *len);

/* Prints v as decimal into buf (>= 21 bytes); returns the length. */
size_t cbev__jsonw_fmt_int(char *buf, int64_t v);

/* Length of the well-formed UTF-8 sequence at p (2..4; p[0] >= 0x80), or,
 * with *bad set, the length of its maximal invalid subpart (1..3), the unit
 * that becomes one U+FFFD. p must be NUL-terminated. */
size_t cbev__jsonw_utf8_seq(const unsigned char *p, int *bad);

#endif

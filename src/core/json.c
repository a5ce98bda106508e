/*
 * json.c: a one-pass JSON parser into an arena tree (json.h says why).
 *
 * The text is first copied into the arena with a NUL after it. Strings are
 * decoded in that copy, in place: a decoded string plus its NUL is never
 * longer than its quoted form, and most strings have no escape at all, so
 * they only get their closing quote replaced by a NUL. The sentinel lets
 * the string scan test one table per byte instead of also checking the
 * end. Nodes come from the arena in chunks. Recursion is bounded by
 * JV_MAX_DEPTH.
 */
#include <limits.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "json.h"

/* Nodes per arena allocation. */
#define JV_CHUNK 256
/* Number text up to this length is converted from a stack copy. */
#define NUM_BUF 64

typedef struct jp {
  unsigned char *p, *end; /* in the copy; *end is a NUL sentinel */
  jv *pool;       /* free nodes of the current chunk */
  size_t pool_left;
  cbev_arena *a;
  int depth;
  int rc;         /* CBEV_EPARSE or CBEV_ENOMEM once failed */
} jp;

static int value(jp *s, jv *v);

static inline void skip_ws(jp *s) {
  while (s->p < s->end && *s->p <= ' ')
    s->p++;
}

static inline int fail(jp *s, int rc) {
  s->rc = rc;
  return -1;
}

static jv *node(jp *s) {
  if (!s->pool_left) {
    s->pool = cbev__arena_alloc(s->a, JV_CHUNK * sizeof(jv));
    if (!s->pool) {
      fail(s, CBEV_ENOMEM);
      return NULL;
    }
    s->pool_left = JV_CHUNK;
  }
  s->pool_left--;
  return s->pool++;
}

static int hex4(const unsigned char *p, unsigned *out) {
  unsigned v = 0;

  for (int i = 0; i < 4; i++) {
    unsigned c = p[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
      d = (c | 0x20) - 'a' + 10;
    else
      return 0;
    v = v << 4 | d;
  }
  *out = v;
  return 1;
}

static unsigned char *put_utf8(unsigned char *d, unsigned cp) {
  if (cp < 0x80) {
    *d++ = (unsigned char)cp;
  } else if (cp < 0x800) {
    *d++ = (unsigned char)(0xC0 | cp >> 6);
    *d++ = (unsigned char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *d++ = (unsigned char)(0xE0 | cp >> 12);
    *d++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    *d++ = (unsigned char)(0x80 | (cp & 0x3F));
  } else {
    *d++ = (unsigned char)(0xF0 | cp >> 18);
    *d++ = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    *d++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    *d++ = (unsigned char)(0x80 | (cp & 0x3F));
  }
  return d;
}

/* A "\u" escape at p (p[0] is the backslash). Surrogate pairs combine; a
 * lone half becomes U+FFFD (json.h). Returns the bytes read, 0 if bad. */
static size_t unicode_escape(const unsigned char *p, const unsigned char *end, unsigned *cp) {
  unsigned lo;

  if (end - p < 6 || !hex4(p + 2, cp))
    return 0;
  if (*cp >= 0xDC00 && *cp <= 0xDFFF) {
    *cp = 0xFFFD;
  } else if (*cp >= 0xD800 && *cp <= 0xDBFF) {
    if (end - p >= 12 && p[6] == '\\' && p[7] == 'u' && hex4(p + 8, &lo) && lo >= 0xDC00 &&
        lo <= 0xDFFF) {
      *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
      return 12;
    }
    *cp = 0xFFFD;
  }
  return 6;
}

/* Bytes that end the plain run of a string: its end, an escape, and the
 * NUL that may be the sentinel after the text or a byte inside it. */
static const unsigned char str_stop[256] = {[0] = 1, ['"'] = 1, ['\\'] = 1};

/* The rest of a string with an escape or a NUL from p on (json.c's top
 * comment): decoded in place, d trailing p. */
static __attribute__((noinline)) int string_slow(jp *s, unsigned char *p, const char **out,
                                                 size_t *len) {
  unsigned char *d;

  for (d = p;;) {
    unsigned char c = *p;
    if (!str_stop[c]) {
      *d++ = c;
      p++;
      continue;
    }
    if (c == '"')
      break;
    if (c == '\0') {
      if (p >= s->end) /* the sentinel: no closing quote */
        return fail(s, CBEV_EPARSE);
      *d++ = c;
      p++;
      continue;
    }
    switch (p[1]) {
    case '"':
    case '\\':
    case '/': *d++ = p[1]; break;
    case 'b': *d++ = '\b'; break;
    case 'f': *d++ = '\f'; break;
    case 'n': *d++ = '\n'; break;
    case 'r': *d++ = '\r'; break;
    case 't': *d++ = '\t'; break;
    case 'u': {
      unsigned cp;
      size_t n = unicode_escape(p, s->end, &cp);
      if (!n) {
        s->p = p;
        return fail(s, CBEV_EPARSE);
      }
      d = put_utf8(d, cp);
      p += n;
      continue;
    }
    default: /* the sentinel too: p[1] is at most the NUL after the text */
      s->p = p;
      return fail(s, CBEV_EPARSE);
    }
    p += 2;
  }
  *d = '\0';
  /* The C string's length: a NUL inside ends the name for every reader
   * (the writer prints it that far), so it must for matching too. */
  *len = strlen(*out);
  s->p = p + 1;
  return 0;
}

/* The string at s->p (a quote), decoded in place: most have no escape and
 * only get their closing quote replaced by a NUL. Inlined: it runs for
 * every key and string value, mostly a few bytes long. */
static inline int string(jp *s, const char **out, size_t *len) {
  unsigned char *p = s->p + 1;

  *out = (const char *)p;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* Eight bytes at a time while they are inside the text: a word has a
   * stop byte when one of its bytes is '"', '\\' or 0, and the lowest
   * flagged byte is the first of them. */
  while (s->end - p >= 8) {
    uint64_t w, q, b, z;
    memcpy(&w, p, 8);
    q = w ^ 0x2222222222222222u;
    b = w ^ 0x5C5C5C5C5C5C5C5Cu;
    z = ((w - 0x0101010101010101u) & ~w) | ((q - 0x0101010101010101u) & ~q) |
        ((b - 0x0101010101010101u) & ~b);
    z &= 0x8080808080808080u;
    if (z) {
      p += (unsigned)__builtin_ctzll(z) >> 3;
      break;
    }
    p += 8;
  }
#endif
  while (!str_stop[*p])
    p++;
  if (*p != '"')
    return string_slow(s, p, out, len);
  *p = '\0';
  *len = (size_t)(p - s->p - 1);
  s->p = p + 1;
  return 0;
}

/* The end of the JSON number at p (JSON's grammar: -?(0|[1-9][0-9]*)
 * (.[0-9]+)?([eE][+-]?[0-9]+)?), or NULL when p does not start one. The
 * text always ends in a NUL (json.c's top comment), which is no digit, so
 * no bound is needed: cbev__jv_num_len() finds a number's end again this way. */
static const unsigned char *num_end(const unsigned char *p, int *integral) {
  *integral = 1;
  if (*p == '-')
    p++;
  if (*p == '0')
    p++;
  else if (*p >= '1' && *p <= '9')
    while (*p >= '0' && *p <= '9')
      p++;
  else
    return NULL;
  if (*p == '.') {
    *integral = 0;
    if (!(*++p >= '0' && *p <= '9'))
      return NULL;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if (*p == 'e' || *p == 'E') {
    *integral = 0;
    p++;
    if (*p == '+' || *p == '-')
      p++;
    if (!(*p >= '0' && *p <= '9'))
      return NULL;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  return p;
}

/* A number is checked here and kept as its text (json.h says why): no
 * conversion at parse time. */
static int number(jp *s, jv *v) {
  int integral;
  const unsigned char *e = num_end(s->p, &integral);

  if (!e)
    return fail(s, CBEV_EPARSE);
  v->type = JV_NUMBER;
  v->u.num = (const char *)s->p;
  s->p = (unsigned char *)(uintptr_t)e;
  return 0;
}

size_t cbev__jv_num_len(const jv *v) {
  int integral;
  const unsigned char *p = (const unsigned char *)v->u.num;

  return (size_t)(num_end(p, &integral) - p);
}

int cbev__jv_num_double(const jv *v, double *out) {
  char small[NUM_BUF], *buf = small, *endp = NULL, point = localeconv()->decimal_point[0];
  size_t n = cbev__jv_num_len(v);

  /* strtod on a copy: it must stop where the JSON number stops (it would
   * read "0x10" on), and it reads the locale's decimal point, not '.'. */
  if (n >= sizeof small && !(buf = cbev_malloc(n + 1)))
    return CBEV_ENOMEM;
  memcpy(buf, v->u.num, n);
  buf[n] = '\0';
  if (point && point != '.') {
    char *dot = memchr(buf, '.', n);
    if (dot)
      *dot = point;
  }
  *out = strtod(buf, &endp);
  if (buf != small)
    cbev_free(buf);
  return CBEV_OK;
}

int cbev__jv_num_int64(const jv *v, int64_t *out) {
  const unsigned char *p = (const unsigned char *)v->u.num, *e;
  uint64_t acc = 0, limit;
  int neg = *p == '-', integral;

  e = num_end(p, &integral);
  if (!integral)
    return 0;
  p += neg;
  /* INT64_MIN's magnitude is one more than INT64_MAX. */
  limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
  for (; p < e; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (acc > (limit - d) / 10)
      return 0;
    acc = acc * 10 + d;
  }
  *out = neg ? (acc == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
  return 1;
}

static int literal(jp *s, jv *v, const char *word, size_t n, jv_type type) {
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
    return fail(s, CBEV_EPARSE);
  s->p += n;
  v->type = (unsigned char)type;
  return 0;
}

/* An array or an object at s->p, its children linked in order. */
static int container(jp *s, jv *v, int obj) {
  unsigned char close = obj ? '}' : ']';
  jv **link = &v->u.child;

  if (++s->depth > JV_MAX_DEPTH)
    return fail(s, CBEV_EPARSE);
  v->type = obj ? JV_OBJECT : JV_ARRAY;
  v->u.child = NULL;
  s->p++;
  skip_ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    s->depth--;
    return 0;
  }
  for (;;) {
    const char *key = NULL;
    size_t keylen = 0;
    jv *c;

    if (obj) {
      if (s->p >= s->end || *s->p != '"' || string(s, &key, &keylen) != 0)
        return fail(s, s->rc ? s->rc : CBEV_EPARSE);
      skip_ws(s);
      if (s->p >= s->end || *s->p != ':')
        return fail(s, CBEV_EPARSE);
      s->p++;
      skip_ws(s);
    }
    if (!(c = node(s)))
      return -1;
    c->next = NULL;
    c->key = key;
    c->keylen = keylen > UINT_MAX ? UINT_MAX : (unsigned)keylen;
    if (s->p < s->end && *s->p == '"') { /* most values: no call through value() */
      size_t len;
      c->type = JV_STRING;
      if (string(s, &c->u.str, &len) != 0)
        return -1;
    } else if (value(s, c) != 0) {
      return -1;
    }
    *link = c;
    link = &c->next;
    skip_ws(s);
    if (s->p >= s->end)
      return fail(s, CBEV_EPARSE);
    if (*s->p == ',') {
      s->p++;
      skip_ws(s);
      continue;
    }
    if (*s->p != close)
      return fail(s, CBEV_EPARSE);
    s->p++;
    s->depth--;
    return 0;
  }
}

static int value(jp *s, jv *v) {
  if (s->p >= s->end)
    return fail(s, CBEV_EPARSE);
  switch (*s->p) {
  case '{': return container(s, v, 1);
  case '[': return container(s, v, 0);
  case '"': {
    size_t len;
    v->type = JV_STRING;
    return string(s, &v->u.str, &len);
  }
  case 't': return literal(s, v, "true", 4, JV_TRUE);
  case 'f': return literal(s, v, "false", 5, JV_FALSE);
  case 'n': return literal(s, v, "null", 4, JV_NULL);
  default: return number(s, v);
  }
}

int cbev__jv_parse(cbev_arena *a, const char *text, size_t len, const jv **root, size_t *end_at) {
  jp s = {NULL, NULL, NULL, 0, a, 0, 0};
  unsigned char *copy = NULL;
  jv *top;

  *root = NULL;
  *end_at = 0;
  if (len == SIZE_MAX || !(copy = cbev__arena_alloc(a, len + 1)) || !(top = node(&s))) {
    s.rc = CBEV_ENOMEM;
    goto out;
  }
  memcpy(copy, text, len);
  copy[len] = '\0';
  s.p = copy;
  s.end = copy + len;
  if (len >= 3 && memcmp(copy, "\xEF\xBB\xBF", 3) == 0)
    s.p += 3;
  skip_ws(&s);
  top->next = NULL;
  top->key = NULL;
  top->keylen = 0;
  if (value(&s, top) != 0)
    goto out;
  *root = top;
out:
  /* s.p is still NULL when the first node could not be had. */
  *end_at = s.p ? (size_t)(s.p - copy) : 0;
  return *root ? CBEV_OK : s.rc;
}

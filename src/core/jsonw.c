/*
 * jsonw.c: the capped JSON writer behind the normalizer (see jsonw.h).
 *
 * String escaping is the hot path of normalization: runs of bytes that
 * need no attention (printable ASCII and well-formed UTF-8) are copied with
 * one memcpy, and only quotes, backslashes, control characters and invalid
 * UTF-8 take the slow path.
 */
#include <stdio.h>
#include <stdlib.h>

#include "json.h"

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "jsonw.h"

void cbev__jsonw_init(jsonw *w, size_t initial_cap, size_t max_bytes) {
  w->buf = NULL;
  w->len = 0;
  w->cap = 0;
  w->first_cap = initial_cap;
  w->max_bytes = max_bytes;
  w->rc = CBEV_OK;
}

void cbev__jsonw_cleanup(jsonw *w) {
  if (!w)
    return;
  cbev_free(w->buf);
  w->buf = NULL;
  w->len = w->cap = 0;
}

int cbev__jsonw_grow(jsonw *w, size_t n) {
  size_t need, cap;
  char *p;

  if (w->rc != CBEV_OK)
    return w->rc;
  if (n > w->max_bytes || w->len > w->max_bytes - n) {
    w->rc = CBEV_ETOOBIG;
    return w->rc;
  }
  need = w->len + n + 1; /* room for the NUL of cbev__jsonw_finish */
  if (w->buf && need <= w->cap)
    return CBEV_OK;
  cap = w->buf ? w->cap : (w->first_cap ? w->first_cap : 256);
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > w->max_bytes + 1)
    cap = w->max_bytes + 1;
  if (cap < need)
    cap = need;
  p = w->buf ? cbev_realloc(w->buf, cap) : cbev_malloc(cap);
  if (!p) {
    w->rc = CBEV_ENOMEM;
    return w->rc;
  }
  w->buf = p;
  w->cap = cap;
  return CBEV_OK;
}

/* The string is NUL-terminated and NUL is never a continuation byte, so
 * no check reads past the terminator. */
size_t cbev__jsonw_utf8_seq(const unsigned char *p, int *bad) {
  unsigned char c = p[0], lo = 0x80, hi = 0xBF;
  size_t need;

  *bad = 1;
  if (c < 0xC2 || c > 0xF4)
    return 1;
  if (c < 0xE0) {
    need = 1;
  } else if (c < 0xF0) {
    need = 2;
    if (c == 0xE0)
      lo = 0xA0; /* overlong */
    else if (c == 0xED)
      hi = 0x9F; /* UTF-16 surrogates */
  } else {
    need = 3;
    if (c == 0xF0)
      lo = 0x90; /* overlong */
    else if (c == 0xF4)
      hi = 0x8F; /* above U+10FFFF */
  }
  if (p[1] < lo || p[1] > hi)
    return 1;
  for (size_t i = 2; i <= need; i++)
    if ((p[i] & 0xC0) != 0x80)
      return i;
  *bad = 0;
  return need + 1;
}

static const char hexdig[] = "0123456789abcdef";

void cbev__jsonw_str_body(jsonw *w, const char *s) {
  const unsigned char *p = (const unsigned char *)s, *run = p;

  for (;;) {
    unsigned char c = *p;
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      p++;
      continue;
    }
    if (c >= 0x80) {
      int bad;
      size_t n = cbev__jsonw_utf8_seq(p, &bad);
      if (!bad) {
        p += n; /* well-formed: stays in the run */
        continue;
      }
      jsonw_lit(w, (const char *)run, (size_t)(p - run));
      JSONW_LIT(w, "\xEF\xBF\xBD");
      p += n;
      run = p;
      continue;
    }
    jsonw_lit(w, (const char *)run, (size_t)(p - run));
    if (c == 0)
      break;
    switch (c) {
    case '"': JSONW_LIT(w, "\\\""); break;
    case '\\': JSONW_LIT(w, "\\\\"); break;
    case '\n': JSONW_LIT(w, "\\n"); break;
    case '\r': JSONW_LIT(w, "\\r"); break;
    case '\t': JSONW_LIT(w, "\\t"); break;
    case '\b': JSONW_LIT(w, "\\b"); break;
    case '\f': JSONW_LIT(w, "\\f"); break;
    default: {
      char u[6] = {'\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 0xF]};
      jsonw_lit(w, u, sizeof u);
    }
    }
    p++;
    run = p;
  }
}

void cbev__jsonw_str(jsonw *w, const char *s) {
  if (!s) {
    JSONW_LIT(w, "null");
    return;
  }
  JSONW_LIT(w, "\"");
  cbev__jsonw_str_body(w, s);
  JSONW_LIT(w, "\"");
}

size_t cbev__jsonw_fmt_int(char *buf, int64_t v) {
  char tmp[20];
  size_t n = 0, len = 0;
  /* Work on the magnitude as unsigned so INT64_MIN does not overflow. */
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

  do {
    tmp[n++] = (char)('0' + (char)(u % 10));
    u /= 10;
  } while (u);
  if (v < 0)
    buf[len++] = '-';
  while (n)
    buf[len++] = tmp[--n];
  buf[len] = '\0';
  return len;
}

void cbev__jsonw_int(jsonw *w, int64_t v) {
  char buf[24];
  jsonw_lit(w, buf, cbev__jsonw_fmt_int(buf, v));
}

void cbev__jsonw_tristate(jsonw *w, int t) {
  if (t < 0)
    JSONW_LIT(w, "null");
  else if (t)
    JSONW_LIT(w, "true");
  else
    JSONW_LIT(w, "false");
}

static void value_at(jsonw *w, const jv *item, int depth) {
  if (w->rc != CBEV_OK)
    return;
  if (depth > JSONW_MAX_DEPTH) {
    w->rc = CBEV_ETOOBIG;
    return;
  }
  if (!item) {
    JSONW_LIT(w, "null");
    return;
  }
  switch ((jv_type)item->type) {
  case JV_FALSE: JSONW_LIT(w, "false"); break;
  case JV_TRUE: JSONW_LIT(w, "true"); break;
  case JV_NUMBER: jsonw_lit(w, item->u.num, cbev__jv_num_len(item)); break; /* the text received */
  case JV_STRING: cbev__jsonw_str(w, item->u.str); break;
  case JV_ARRAY:
  case JV_OBJECT: {
    int obj = item->type == JV_OBJECT;
    jsonw_lit(w, obj ? "{" : "[", 1);
    for (const jv *c = item->u.child; c; c = c->next) {
      if (c != item->u.child)
        JSONW_LIT(w, ",");
      if (obj) {
        cbev__jsonw_str(w, c->key);
        JSONW_LIT(w, ":");
      }
      value_at(w, c, depth + 1);
    }
    jsonw_lit(w, obj ? "}" : "]", 1);
    break;
  }
  case JV_NULL:
    JSONW_LIT(w, "null");
  }
}

void cbev__jsonw_value(jsonw *w, const struct jv *item) { value_at(w, item, 0); }

char *cbev__jsonw_finish(jsonw *w, size_t *len) {
  char *out;

  if (w->rc == CBEV_OK)
    jsonw_reserve(w, 0); /* an empty document still gets a buffer */
  if (w->rc != CBEV_OK) {
    cbev__jsonw_cleanup(w);
    return NULL;
  }
  w->buf[w->len] = '\0';
  out = w->buf;
  if (len)
    *len = w->len;
  w->buf = NULL;
  w->len = w->cap = 0;
  return out;
}

/*
 * log.c: the log callback and secret masking.
 *
 * Masking matches the secret with each byte either literal or
 * percent-encoded (%XX, either hex case), so the raw token, curl's escaped
 * form and any mix of the two are all caught by one scan.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/log.h"
#include "jsonw.h"
#include "log_impl.h"

#define LOG_LINE_MAX 2048

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *cbev_log_level_name(cbev_log_level level) {
  if ((unsigned)level > CBEV_LOG_DEBUG)
    return "debug";
  return level_names[level];
}

int cbev_log_level_parse(const char *name, cbev_log_level *out) {
  if (!name || !out)
    return CBEV_EINVAL;
  for (unsigned i = 0; i <= CBEV_LOG_DEBUG; i++) {
    if (strcasecmp(name, level_names[i]) == 0) {
      *out = (cbev_log_level)i;
      return CBEV_OK;
    }
  }
  if (strcasecmp(name, "warning") == 0) {
    *out = CBEV_LOG_WARN;
    return CBEV_OK;
  }
  return CBEV_EINVAL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Length of text matched by secret at text (0: no match). */
static size_t match_secret(const char *text, const char *secret) {
  const char *t = text;

  for (const char *s = secret; *s; s++) {
    int encoded = t[0] == '%' && hexval(t[1]) >= 0 && hexval(t[2]) >= 0 &&
                  (hexval(t[1]) << 4 | hexval(t[2])) == (unsigned char)*s;
    if (*t == *s && encoded) {
      /* A '%' of the secret met "%25": it may be the '%' itself or its
       * encoding. Both readings are tried and the longer match is masked,
       * so neither form of a token holding '%' escapes the mask. Only a
       * '%' of the secret branches: the depth is its count of '%'. */
      size_t base = (size_t)(t - text), lit, enc;
      if (!s[1])
        return base + 3;
      lit = match_secret(t + 1, s + 1);
      enc = match_secret(t + 3, s + 1);
      size_t as_lit = lit ? base + 1 + lit : 0, as_enc = enc ? base + 3 + enc : 0;
      return as_enc > as_lit ? as_enc : as_lit;
    }
    if (*t == *s)
      t++;
    else if (encoded)
      t += 3;
    else
      return 0;
  }
  return (size_t)(t - text);
}

char *cbev_mask_secret(const char *text, const char *secret) {
  size_t len, cap, n = 0, mask_len = strlen(CBEV_MASK);
  char *out;

  if (!text)
    return NULL;
  if (!secret || !*secret)
    return cbev_strdup(text);
  /* A match is at least strlen(secret) >= 1 bytes long and becomes
   * mask_len bytes, so this bounds the output. */
  len = strlen(text);
  cap = len * (mask_len > 1 ? mask_len : 1) + 1;
  out = cbev_malloc(cap);
  if (!out)
    return NULL;
  for (size_t i = 0; i < len;) {
    size_t m = match_secret(text + i, secret);
    if (m) {
      memcpy(out + n, CBEV_MASK, mask_len);
      n += mask_len;
      i += m;
    } else {
      out[n++] = text[i++];
    }
  }
  out[n] = '\0';
  return out;
}

/* Only continuation bytes of one sequence (three at most) are given back,
 * whatever s holds. */
size_t cbev__log_utf8_prefix(const char *s, size_t len, size_t max) {
  size_t n = max;

  if (len <= max)
    return len;
  for (int k = 0; k < 3 && n && ((unsigned char)s[n] & 0xC0) == 0x80; k++)
    n--;
  if (n && ((unsigned char)s[n] & 0xC0) == 0x80)
    n = max; /* not UTF-8 anyway: a plain cut */
  return n;
}

int cbev__log_mask_cut(char *out, size_t size, const char *text, const char *secret,
                 int *cut) {
  char *masked;
  size_t len, n;

  if (cut)
    *cut = 0;
  if (!out || !size)
    return CBEV_EINVAL;
  if (!text) {
    out[0] = '\0';
    return CBEV_OK;
  }
  /* text may be out itself: it is read whole before out is written. */
  if (!(masked = cbev_mask_secret(text, secret))) {
    out[0] = '\0';
    return CBEV_ENOMEM;
  }
  len = strlen(masked);
  n = cbev__log_utf8_prefix(masked, len, size - 1);
  memcpy(out, masked, n);
  out[n] = '\0';
  if (cut)
    *cut = n < len;
  cbev_free(masked);
  return CBEV_OK;
}

int cbev__log_excerpt(char *out, size_t size, const char *body, size_t len,
                const char *secret, int *cut) {
  size_t tok = secret ? strlen(secret) : 0, window;
  unsigned char *raw = NULL;
  int rc = CBEV_EINVAL, more;

  if (cut)
    *cut = 0;
  if (!out || !size)
    goto out;
  out[0] = '\0';
  rc = CBEV_OK;
  if (!body || !len)
    goto out;
  /* Only the start of the body can show, but masking needs whole secrets:
   * each output byte stands for at most tok body bytes (a secret, perhaps
   * percent-encoded, becomes the 3 bytes of CBEV_MASK), and a secret that
   * starts inside that span needs up to 3 * tok more bytes to be whole. */
  window = size * (tok > 1 ? tok : 1) + 3 * tok + 4;
  more = window < len;
  if (window > len)
    window = len;
  rc = CBEV_ENOMEM;
  if (!(raw = cbev_malloc(window + 1)))
    goto out;
  memcpy(raw, body, window);
  raw[window] = '\0';
  /* Length-preserving cleanup: a secret is printable, well-formed text, so
   * none of its bytes is touched and masking still finds it. */
  for (size_t i = 0; i < window;) {
    if (raw[i] < 0x20 || raw[i] == 0x7F) {
      raw[i++] = '?';
    } else if (raw[i] < 0x80) {
      i++;
    } else {
      int bad;
      size_t n = cbev__jsonw_utf8_seq(raw + i, &bad);
      if (bad)
        memset(raw + i, '?', n);
      i += n;
    }
  }
  rc = cbev__log_mask_cut(out, size, (const char *)raw, secret, cut);
  if (rc == CBEV_OK && cut && more)
    *cut = 1;
out:
  cbev_free(raw);
  return rc;
}

/* Formats, masks, then caps the line at LOG_LINE_MAX: a long line is
 * formatted whole on the heap first, so a secret at the cap is masked
 * whole rather than cut in half before masking, and the cap falls on a
 * UTF-8 character boundary. */
void cbev_log(const cbev_logger *logger, const char *secret,
              cbev_log_level level, const char *fmt, ...) {
  char line[LOG_LINE_MAX];
  char *heap = NULL;
  int masking = secret && *secret, n;
  va_list ap;

  if (!logger || !logger->fn || level > logger->max_level)
    return;
  va_start(ap, fmt);
  n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) {
    logger->fn(logger->userdata, level, "(message dropped: formatting failed)");
    return;
  }
  if ((size_t)n >= sizeof line && (heap = cbev_malloc((size_t)n + 1))) {
    va_start(ap, fmt);
    vsnprintf(heap, (size_t)n + 1, fmt, ap);
    va_end(ap);
  } else if ((size_t)n >= sizeof line && masking) {
    /* Out of memory: never risk a line whose secret may be cut. */
    logger->fn(logger->userdata, level, "(message dropped: out of memory while masking)");
    return;
  }
  if (!masking && !heap) {
    /* vsnprintf may have cut inside a character: end on a whole one. */
    if ((size_t)n >= sizeof line)
      line[cbev__log_utf8_prefix(line, sizeof line - 1, sizeof line - 2)] = '\0';
    logger->fn(logger->userdata, level, line);
  }
  else if (cbev__log_mask_cut(line, sizeof line, heap ? heap : line, secret, NULL) == CBEV_OK)
    logger->fn(logger->userdata, level, line);
  else
    logger->fn(logger->userdata, level, "(message dropped: out of memory while masking)");
  cbev_free(heap);
}

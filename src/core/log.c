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
    if (*t == *s) {
      t++;
    } else if (t[0] == '%' && hexval(t[1]) >= 0 && hexval(t[2]) >= 0 &&
               (hexval(t[1]) << 4 | hexval(t[2])) == (unsigned char)*s) {
      t += 3;
    } else {
      return 0;
    }
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

void cbev_log(const cbev_logger *logger, const char *secret,
              cbev_log_level level, const char *fmt, ...) {
  char line[LOG_LINE_MAX];
  char *masked;
  va_list ap;

  if (!logger || !logger->fn || level > logger->max_level)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  masked = cbev_mask_secret(line, secret);
  if (masked) {
    logger->fn(logger->userdata, level, masked);
    cbev_free(masked);
  } else if (!secret || !*secret) {
    logger->fn(logger->userdata, level, line);
  } else {
    /* Out of memory: never risk the raw line, say what happened. */
    logger->fn(logger->userdata, level, "(message dropped: out of memory while masking)");
  }
}

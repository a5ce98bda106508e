/*
 * fuzz_nexturl.c: the URL rules under hostile input.
 *
 * The input is split at the first newline into a base and a candidate
 * nextUrl. The candidate goes through cbev_url_check_same_origin() against
 * that base (and against the production base), through
 * cbev_session_set_cursor() on a session of the base when the base is
 * acceptable, and through the Retry-After parser. Nothing may crash or
 * leak, and the token must never reach a log line, raw or encoded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/session.h"

#define FUZZ_TOKEN "fz/T0k+n"

static void check_line(void *ud, cbev_log_level level, const char *msg) {
  (void)ud, (void)level;
  if (strstr(msg, FUZZ_TOKEN) || strstr(msg, "fz%2FT0k%2Bn") ||
      strstr(msg, "fz%2fT0k%2bn"))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const cbev_logger logger = {check_line, NULL, CBEV_LOG_DEBUG};
  const uint8_t *nl = memchr(data, '\n', size);
  size_t base_len = nl ? (size_t)(nl - data) : size;
  size_t cand_len = nl ? size - base_len - 1 : 0;
  char *base = malloc(base_len + 1), *cand = malloc(cand_len + 1);
  cbev_session_config cfg;
  cbev_session *s = NULL;
  uint64_t delay;

  if (!base || !cand)
    goto out;
  memcpy(base, data, base_len);
  base[base_len] = '\0';
  memcpy(cand, nl ? nl + 1 : data + size, cand_len);
  cand[cand_len] = '\0';

  (void)cbev_url_check_scheme(base);
  (void)cbev_url_check_same_origin(base, cand);
  (void)cbev_url_check_same_origin(CBEV_PRODUCTION_BASE, cand);
  (void)cbev_parse_retry_after(cand, (time_t)1755376889, &delay);

  cbev_session_config_init(&cfg);
  cfg.base_url = cbev_url_check_scheme(base) == CBEV_OK ? base : NULL;
  cfg.username = "alice";
  cfg.token = FUZZ_TOKEN;
  cfg.logger = &logger;
  cfg.seed = 1;
  if (cbev_session_new(&cfg, &s) != CBEV_OK)
    goto out;
  if (cbev_session_set_cursor(s, cand, NULL) == CBEV_OK) {
    /* an accepted cursor must satisfy the rules it was checked by */
    const char *b = cfg.base_url ? cfg.base_url : CBEV_PRODUCTION_BASE;
    if (cbev_url_check_same_origin(b, cbev_session_cursor_url(s)) != CBEV_OK)
      abort();
  }
  /* the whole input as a feed URL, too */
  cfg.events_url = base;
  cbev_session_free(s);
  s = NULL;
  if (cbev_session_new(&cfg, &s) == CBEV_OK && !cbev_session_cursor_url(s))
    abort();
out:
  cbev_session_free(s);
  free(base);
  free(cand);
  return 0;
}

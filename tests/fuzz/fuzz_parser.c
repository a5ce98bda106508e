/*
 * fuzz_parser.c: any body -> cbev_parse_response -> every event normalized
 * with each flag combination. Each output must be NUL-terminated, of the
 * length reported, valid UTF-8, one line, and JSON that cJSON parses back;
 * the token given to the parser must never reach a log line. Anything else
 * aborts, which is what the fuzzer (or the ctest replay) reports.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/normalize.h"
#include "../utf8_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "S3cr3tT0k3n"

static void check_log(void *ud, cbev_log_level level, const char *msg) {
  (void)ud;
  (void)level;
  if (strstr(msg, SECRET))
    abort();
}

static void check_event(const cbev_event *ev) {
  for (unsigned flags = 0; flags < 4; flags++) {
    char *json = NULL;
    size_t len = 0;
    cJSON *back;
    int rc = cbev_event_to_json(ev, flags, &json, &len);
    if (rc == CBEV_ENOMEM || rc == CBEV_ETOOBIG)
      continue;
    if (rc != CBEV_OK || !json || strlen(json) != len || memchr(json, '\n', len) ||
        !valid_utf8((const unsigned char *)json, len))
      abort();
    back = cJSON_ParseWithLength(json, len);
    if (!back || !cJSON_IsObject(back))
      abort();
    /* The normalized form always names its type and id. */
    if (!(flags & CBEV_JSON_RAW) &&
        (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(back, "event_type")) ||
         !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(back, "id"))))
      abort();
    cJSON_Delete(back);
    cbev_free(json);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cbev_logger lg = {check_log, NULL, CBEV_LOG_DEBUG};
  cbev_batch *b = NULL;
  size_t n;

  if (cbev_parse_response((const char *)data, size, &lg, SECRET, &b) != CBEV_OK)
    return 0;
  n = cbev_batch_count(b);
  for (size_t i = 0; i < n; i++) {
    const cbev_event *ev = cbev_batch_get(b, i);
    if (!ev || !cbev_event_id(ev) || !cbev_event_method(ev))
      abort();
    check_event(ev);
  }
  /* Dropping up to the middle event keeps exactly the later ones, in
   * rising order (SPEC 1: one rule inside the batch too); an id that is
   * no event id cannot be ordered and is always kept. */
  if (n > 0) {
    const char *mid = cbev_event_id(cbev_batch_get(b, n / 2));
    char *cursor = cbev_strdup(mid);
    cbev_id last, id;
    int have, odd_before = 0, odd_after = 0;
    if (!cursor)
      goto out;
    for (size_t i = 0; i < n; i++)
      odd_before += cbev_event_parsed_id(cbev_batch_get(b, i), &id) != CBEV_OK;
    have = cbev_id_parse(cursor, &last) == CBEV_OK;
    cbev_batch_drop_seen(b, cursor);
    for (size_t i = 0; i < cbev_batch_count(b); i++) {
      if (cbev_event_parsed_id(cbev_batch_get(b, i), &id) != CBEV_OK) {
        odd_after++;
        continue;
      }
      if (have && cbev_id_cmp(&id, &last) <= 0)
        abort();
      last = id;
      have = 1;
    }
    if (odd_before != odd_after)
      abort();
    cbev_free(cursor);
  }
out:
  cbev_batch_free(b);
  return 0;
}

/*
 * fuzz_normalize.c: the CBEV_JSON_RAW round trip. Every event of a body is
 * written raw, the text is parsed again as a one-event body and written
 * raw again: the second text must equal the first byte for byte (the first
 * pass has already repaired UTF-8 and printed numbers so that they read
 * back exactly). The normalized form of both must match too whenever the
 * method was valid UTF-8 (a repaired method changes its snake_case form).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/normalize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAW (CBEV_JSON_RAW | CBEV_JSON_EXPOSE_ANON)

static int ascii(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80)
      return 0;
  return 1;
}

static void round_trip(const cbev_event *ev) {
  static const char head[] = "{\"events\":[", tail[] = "]}";
  char *raw1 = NULL, *raw2 = NULL, *norm1 = NULL, *norm2 = NULL, *body = NULL;
  size_t len1 = 0, len2 = 0, nlen1 = 0, nlen2 = 0;
  cbev_batch *b = NULL;

  /* EXPOSE_ANON: the raw form unchanged (without it an anonymous tip's
   * user is null, which reads back as another event). */
  if (cbev_event_to_json(ev, RAW, &raw1, &len1) != CBEV_OK ||
      cbev_event_to_json(ev, CBEV_JSON_EXPOSE_ANON, &norm1, &nlen1) != CBEV_OK)
    goto out;
  body = cbev_malloc(sizeof head + len1 + sizeof tail);
  if (!body)
    goto out;
  memcpy(body, head, sizeof head - 1);
  memcpy(body + sizeof head - 1, raw1, len1);
  memcpy(body + sizeof head - 1 + len1, tail, sizeof tail);
  if (cbev_parse_response(body, strlen(body), NULL, NULL, &b) != CBEV_OK ||
      cbev_batch_count(b) != 1)
    abort(); /* our own output must read back as the same event */
  if (cbev_event_to_json(cbev_batch_get(b, 0), RAW, &raw2, &len2) != CBEV_OK ||
      cbev_event_to_json(cbev_batch_get(b, 0), CBEV_JSON_EXPOSE_ANON, &norm2, &nlen2) !=
          CBEV_OK)
    goto out;
  if (len1 != len2 || memcmp(raw1, raw2, len1) != 0)
    abort();
  if (ascii(cbev_event_method(ev)) && (nlen1 != nlen2 || memcmp(norm1, norm2, nlen1) != 0))
    abort();
out:
  cbev_batch_free(b);
  cbev_free(body);
  cbev_free(raw1);
  cbev_free(raw2);
  cbev_free(norm1);
  cbev_free(norm2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cbev_batch *b = NULL;

  if (cbev_parse_response((const char *)data, size, NULL, NULL, &b) != CBEV_OK)
    return 0;
  for (size_t i = 0; i < cbev_batch_count(b); i++)
    round_trip(cbev_batch_get(b, i));
  cbev_batch_free(b);
  return 0;
}

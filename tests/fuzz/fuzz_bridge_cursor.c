/*
 * fuzz_bridge_cursor.c: the cursor file's parser (both versions) and the
 * scrubber a corrupt file's copy is rewritten with, under hostile input.
 *
 * Invariants: parsing never crashes or leaks; a cursor it accepts holds
 * an i= that cb2m_cursor_i_valid() takes and a last_id that parses (at
 * least one of them), and writing it back gives version-2 text that parses
 * to the same cursor with nothing ignored; a refused text says why. The
 * scrubber's output has no byte of a URL path left, so scrubbing it again
 * changes nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cursor.h"

static int same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1), *again = NULL, *scrubbed = NULL, *twice = NULL;
  size_t n1 = 0, n2 = 0;
  cb2m_cursor c, back;
  cbev_id id;
  int rc;

  memset(&back, 0, sizeof back);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  rc = cb2m_cursor_parse(text, size, &c);
  if (rc == CBEV_OK) {
    if ((!c.i && !c.last_id) || (c.i && !cb2m_cursor_i_valid(c.i)) ||
        (c.last_id && cbev_id_parse(c.last_id, &id) != CBEV_OK) ||
        (c.version != 1 && c.version != CB2M_CURSOR_VERSION))
      abort();
    again = cb2m_cursor_format(c.i, c.last_id);
    if (!again || cb2m_cursor_parse(again, strlen(again), &back) != CBEV_OK ||
        back.version != CB2M_CURSOR_VERSION || back.ignored[0] || !same(c.i, back.i) ||
        !same(c.last_id, back.last_id))
      abort();
  } else if (rc == CBEV_EPARSE) {
    if (!c.why[0] || c.i || c.last_id)
      abort();
  } else {
    abort(); /* only ENOMEM may give an error, and fuzzing has memory */
  }
  scrubbed = cb2m_cursor_scrub(text, size, &n1);
  if (!scrubbed)
    abort();
  twice = cb2m_cursor_scrub(scrubbed, n1, &n2);
  if (!twice || n1 != n2 || memcmp(scrubbed, twice, n1) != 0)
    abort();
  free(twice);
  free(scrubbed);
  cb2m_cursor_cleanup(&back);
  cJSON_free(again);
  cb2m_cursor_cleanup(&c);
  free(text);
  return 0;
}

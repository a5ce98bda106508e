/*
 * fuzz_json.c: json.c against cJSON, differentially. Whatever json.c
 * accepts, cJSON must accept too and read as the same tree (types, names,
 * strings, numbers, order), except where json.h says they differ on
 * purpose: a lone surrogate escape (json.c: U+FFFD, cJSON: refused),
 * number text longer than cJSON's 63-byte copy, numbers that only
 * cJSON's looser syntax reads ("01": json.c stops after the 0), and
 * json.c keeping a number's text (compared here by the value strtod reads
 * from it, which is what cJSON holds). The event's cJSON view
 * (cbev_event_raw's conversion) is checked the same way through a body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "arena.h"
#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hexdigit(uint8_t c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Inputs where the two parsers differ by design (see above). */
static int differs_by_design(const uint8_t *p, size_t n) {
  size_t run = 0;

  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\\' && i + 2 < n && p[i + 1] == 'u' && (p[i + 2] | 0x20) == 'd' && i + 3 < n &&
        hexdigit(p[i + 3]) && (p[i + 3] >= '8' || (p[i + 3] | 0x20) >= 'a'))
      return 1;
    run = strchr("0123456789+-eE.", p[i]) && p[i] ? run + 1 : 0;
    if (run >= 60)
      return 1;
  }
  return 0;
}

static void same(const jv *v, const cJSON *c, int in_object) {
  const jv *m;
  const cJSON *k;

  if (!c)
    abort();
  if (in_object && (!c->string || strcmp(c->string, v->key) != 0))
    abort();
  switch ((jv_type)v->type) {
  case JV_NULL: if (!cJSON_IsNull(c)) abort(); break;
  case JV_FALSE: if (!cJSON_IsFalse(c)) abort(); break;
  case JV_TRUE: if (!cJSON_IsTrue(c)) abort(); break;
  case JV_NUMBER: {
    /* json.c keeps the text; its value is strtod's, as cJSON's is. */
    double d;
    if (cbev__jv_num_double(v, &d) != CBEV_OK)
      break;
    if (!cJSON_IsNumber(c) || !(c->valuedouble == d))
      abort();
    break;
  }
  case JV_STRING:
    if (!cJSON_IsString(c) || strcmp(c->valuestring, v->u.str) != 0)
      abort();
    break;
  case JV_ARRAY:
  case JV_OBJECT:
    if (v->type == JV_ARRAY ? !cJSON_IsArray(c) : !cJSON_IsObject(c))
      abort();
    for (m = v->u.child, k = c->child; m; m = m->next, k = k->next)
      same(m, k, v->type == JV_OBJECT);
    if (k)
      abort();
    break;
  }
}

/* Exact equality in order (cJSON_Compare matches members by name, which
 * duplicates defeat, and numbers within an epsilon). */
static void same_cjson(const cJSON *x, const cJSON *y, int named) {
  if (!x || !y || (x->type & 0xFF) != (y->type & 0xFF))
    abort();
  if (named && (!x->string || !y->string || strcmp(x->string, y->string) != 0))
    abort();
  if (cJSON_IsNumber(x) && !(x->valuedouble == y->valuedouble))
    abort();
  if (cJSON_IsString(x) && strcmp(x->valuestring, y->valuestring) != 0)
    abort();
  named = cJSON_IsObject(x);
  for (x = x->child, y = y->child; x || y; x = x->next, y = y->next)
    same_cjson(x, y, named);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cbev_arena *a = cbev__arena_new(size);
  const jv *root = NULL;
  size_t end = 0;
  int rc, is_object;

  if (!a)
    return 0;
  rc = cbev__jv_parse(a, (const char *)data, size, &root, &end);
  if (rc != CBEV_OK && rc != CBEV_EPARSE && rc != CBEV_ENOMEM)
    abort();
  if (rc == CBEV_OK && end > size)
    abort();
  /* cJSON skips a byte order mark only in a text of 5 bytes or more. */
  if (rc == CBEV_OK && !differs_by_design(data, end) &&
      !(size < 5 && size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)) {
    const char *cend = NULL;
    cJSON *c = cJSON_ParseWithLengthOpts((const char *)data, size, &cend, 0);
    /* Where cJSON's looser number syntax ("01", "1.") read on, json.c
     * stopped: the caller then refuses the text after the value. */
    if (!c || cend == (const char *)data + end)
      same(root, c, 0);
    cJSON_Delete(c);
  }
  is_object = rc == CBEV_OK && root->type == JV_OBJECT;
  cbev__arena_unref(a);

  /* The same text as the object of one event: its raw view must match. */
  if (is_object && !differs_by_design(data, end) && end < 4096) {
    static const char head[] = "{\"events\":[{\"method\":\"x\",\"id\":\"1-0\",\"object\":";
    char body[4096 + 64];
    cbev_batch *b = NULL;
    size_t n = sizeof head - 1;

    memcpy(body, head, n);
    memcpy(body + n, data, end);
    memcpy(body + n + end, "}]}", 3);
    if (cbev_parse_response(body, n + end + 3, NULL, NULL, &b) == CBEV_OK &&
        cbev_batch_count(b) == 1) {
      const cJSON *raw = cbev_event_raw(cbev_batch_get(b, 0));
      cJSON *c = cJSON_ParseWithLengthOpts((const char *)data, end, NULL, 0);
      if (raw)
        same_cjson(cJSON_GetObjectItemCaseSensitive(raw, "object"), c, 0);
      cJSON_Delete(c);
    }
    cbev_batch_free(b);
  }
  return 0;
}

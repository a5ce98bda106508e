/*
 * event.c: the event model of libcbevents: type names, event ids, the
 * accessors of cbev_event and the cbev_batch container. Building events
 * from a body is parse.c's job; writing them as JSON is normalize.c's.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "alloc_impl.h"
#include "arena.h"
#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "event_impl.h"
#include "json.h"

/* Indexed by cbev_event_type; the order is the enum's. */
static const char *const type_names[CBEV_EVENT_TYPE_COUNT] = {
    "broadcast_start", "broadcast_stop", "room_subject_change",
    "user_enter",      "user_leave",     "follow",
    "unfollow",        "fanclub_join",   "chat_message",
    "private_message", "tip",            "media_purchase"};
static const char *const type_methods[CBEV_EVENT_TYPE_COUNT] = {
    "broadcastStart", "broadcastStop", "roomSubjectChange",
    "userEnter",      "userLeave",     "follow",
    "unfollow",       "fanclubJoin",   "chatMessage",
    "privateMessage", "tip",           "mediaPurchase"};

const char *cbev_event_type_name(cbev_event_type type) {
  if ((unsigned)type >= CBEV_EVENT_TYPE_COUNT)
    return "unknown";
  return type_names[type];
}

const char *cbev_event_type_method(cbev_event_type type) {
  if ((unsigned)type >= CBEV_EVENT_TYPE_COUNT)
    return NULL;
  return type_methods[type];
}

static cbev_event_type lookup(const char *const table[], const char *s) {
  if (!s)
    return CBEV_EVENT_UNKNOWN;
  /* Comparing the first byte first keeps this a dozen byte compares for
   * the common case; it runs once per event. */
  for (unsigned i = 0; i < CBEV_EVENT_TYPE_COUNT; i++)
    if (table[i][0] == s[0] && strcmp(table[i], s) == 0)
      return (cbev_event_type)i;
  return CBEV_EVENT_UNKNOWN;
}

cbev_event_type cbev_event_type_from_method(const char *method) {
  return lookup(type_methods, method);
}

cbev_event_type cbev_event_type_from_name(const char *name) {
  return lookup(type_names, name);
}

/* One decimal part of an id: at least one digit, stops at the first
 * non-digit. A hand loop rather than strtoull because strtoull accepts
 * spaces, signs and "0x", which the id form does not. Returns the number
 * of digits, 0 when there are none or the value passes UINT64_MAX. */
static size_t parse_u64(const char *s, uint64_t *out) {
  uint64_t v = 0;
  size_t n = 0;

  for (; s[n] >= '0' && s[n] <= '9'; n++) {
    unsigned d = (unsigned)(s[n] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return 0;
    v = v * 10 + d;
  }
  *out = v;
  return n;
}

int cbev_id_parse(const char *text, cbev_id *out) {
  cbev_id id;
  size_t n, m;

  if (!text || !out)
    return CBEV_EINVAL;
  n = parse_u64(text, &id.ms);
  if (n == 0 || text[n] != '-')
    return CBEV_EINVAL;
  m = parse_u64(text + n + 1, &id.seq);
  if (m == 0 || text[n + 1 + m] != '\0')
    return CBEV_EINVAL;
  *out = id;
  return CBEV_OK;
}

int cbev_id_cmp(const cbev_id *a, const cbev_id *b) {
  if (a->ms != b->ms)
    return a->ms < b->ms ? -1 : 1;
  if (a->seq != b->seq)
    return a->seq < b->seq ? -1 : 1;
  return 0;
}

/* The order of cbev_id_cmp_str with the parse of each side done already
 * (ok: whether it parsed). */
static int cmp_parsed(const char *a, int a_ok, const cbev_id *ia, const char *b,
                      int b_ok, const cbev_id *ib) {
  int c;

  if (a_ok && b_ok)
    return cbev_id_cmp(ia, ib);
  if (a_ok != b_ok)
    return a_ok ? 1 : -1; /* unparsable sorts first */
  if (!a || !b)
    return a == b ? 0 : (a ? 1 : -1);
  c = strcmp(a, b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

int cbev_id_cmp_str(const char *a, const char *b) {
  cbev_id ia = {0, 0}, ib = {0, 0};
  int a_ok = cbev_id_parse(a, &ia) == CBEV_OK;
  int b_ok = cbev_id_parse(b, &ib) == CBEV_OK;
  return cmp_parsed(a, a_ok, &ia, b, b_ok, &ib);
}

cbev_event_type cbev_event_get_type(const cbev_event *ev) {
  return ev ? ev->type : CBEV_EVENT_UNKNOWN;
}

const char *cbev_event_method(const cbev_event *ev) { return ev ? ev->method : NULL; }

const char *cbev_event_id(const cbev_event *ev) { return ev ? ev->id : ""; }

int cbev_event_parsed_id(const cbev_event *ev, cbev_id *out) {
  if (!ev || !out || ev->id_rc != CBEV_OK)
    return CBEV_EINVAL;
  *out = ev->pid;
  return CBEV_OK;
}

const char *cbev_event_broadcaster(const cbev_event *ev) {
  return ev ? ev->broadcaster : NULL;
}

const cbev_user *cbev_event_user(const cbev_event *ev) {
  return ev && ev->has_user ? &ev->user : NULL;
}

const cbev_tip *cbev_event_tip(const cbev_event *ev) {
  return ev && ev->type == CBEV_EVENT_TIP && ev->has_part ? &ev->part.tip : NULL;
}

const cbev_message *cbev_event_message(const cbev_event *ev) {
  if (!ev || !ev->has_part)
    return NULL;
  if (ev->type != CBEV_EVENT_CHAT_MESSAGE && ev->type != CBEV_EVENT_PRIVATE_MESSAGE)
    return NULL;
  return &ev->part.message;
}

const cbev_media *cbev_event_media(const cbev_event *ev) {
  return ev && ev->type == CBEV_EVENT_MEDIA_PURCHASE && ev->has_part ? &ev->part.media
                                                                     : NULL;
}

const char *cbev_event_subject(const cbev_event *ev) {
  return ev && ev->type == CBEV_EVENT_ROOM_SUBJECT_CHANGE ? ev->subject : NULL;
}

int cbev_event_is_anonymous(const cbev_event *ev) {
  return ev && ev->type == CBEV_EVENT_TIP && ev->anon == CBEV_TRUE;
}

/* A cJSON copy of v; NULL on ENOMEM. Depth is bounded by the parser's. */
static cJSON *to_cjson(const jv *v) {
  cJSON *c = NULL;
  double d;

  switch ((jv_type)v->type) {
  case JV_NULL: return cJSON_CreateNull();
  case JV_FALSE: return cJSON_CreateFalse();
  case JV_TRUE: return cJSON_CreateTrue();
  case JV_NUMBER: /* a double, as cJSON holds numbers: CBEV_JSON_RAW keeps the text */
    return cbev__jv_num_double(v, &d) == CBEV_OK ? cJSON_CreateNumber(d) : NULL;
  case JV_STRING: return cJSON_CreateString(v->u.str);
  case JV_ARRAY: c = cJSON_CreateArray(); break;
  case JV_OBJECT: c = cJSON_CreateObject(); break;
  }
  if (!c)
    return NULL;
  for (const jv *m = v->u.child; m; m = m->next) {
    cJSON *item = to_cjson(m);
    /* Added, not replaced: duplicate members stay, as upstream sent them. */
    if (!item || !(v->type == JV_OBJECT ? cJSON_AddItemToObject(c, m->key, item)
                                        : cJSON_AddItemToArray(c, item))) {
      cJSON_Delete(item);
      cJSON_Delete(c);
      return NULL;
    }
  }
  return c;
}

/* Made on the first call: almost no program asks, so parsing does not pay
 * for it. Two threads may race to make it; one copy wins, the other goes. */
const struct cJSON *cbev_event_raw(const cbev_event *ev) {
  cbev_event *e = (cbev_event *)ev; /* every event is allocated mutable */
  cJSON *c, *expected = NULL;

  if (!ev)
    return NULL;
  if ((c = atomic_load(&e->raw_cjson)) != NULL)
    return c;
  cbev__cjson_hooks_init();
  if (!(c = to_cjson(ev->raw)))
    return NULL;
  if (!atomic_compare_exchange_strong(&e->raw_cjson, &expected, c)) {
    cJSON_Delete(c);
    c = expected;
  }
  return c;
}

void cbev_event_free(cbev_event *ev) {
  if (!ev)
    return;
  cJSON_Delete(atomic_load(&ev->raw_cjson));
  cbev__arena_unref(ev->arena); /* the event itself lives there */
}

size_t cbev_batch_count(const cbev_batch *b) { return b ? b->count : 0; }

const cbev_event *cbev_batch_get(const cbev_batch *b, size_t i) {
  return b && i < b->count ? b->events[i] : NULL;
}

cbev_event *cbev_batch_take(cbev_batch *b, size_t i) {
  cbev_event *ev;

  if (!b || i >= b->count)
    return NULL;
  ev = b->events[i];
  b->events[i] = NULL;
  return ev;
}

const char *cbev_batch_next_url(const cbev_batch *b) { return b ? b->next_url : NULL; }

const char *cbev_batch_status(const cbev_batch *b) { return b ? b->status : NULL; }

size_t cbev_batch_drop_seen(cbev_batch *b, const char *last_id) {
  cbev_id newest = {0, 0};
  int have = 0;
  size_t kept = 0, removed = 0;

  if (!b)
    return 0;
  have = last_id && cbev_id_parse(last_id, &newest) == CBEV_OK;
  for (size_t i = 0; i < b->count; i++) {
    cbev_event *ev = b->events[i];
    /* Taken (NULL) slots are kept, in order: their events left already.
     * An id that is not an event id cannot be ordered: it is kept. */
    if (ev && ev->id_rc == CBEV_OK) {
      if (have && cbev_id_cmp(&ev->pid, &newest) <= 0) {
        cbev_event_free(ev);
        removed++;
        continue;
      }
      newest = ev->pid;
      have = 1;
    }
    b->events[kept++] = ev;
  }
  b->count = kept;
  return removed;
}

void cbev_batch_free(cbev_batch *b) {
  if (!b)
    return;
  for (size_t i = 0; i < b->count; i++)
    cbev_event_free(b->events[i]);
  cbev_free(b->events);
  cbev__arena_unref(b->arena);
  cbev_free(b);
}

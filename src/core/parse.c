/*
 * parse.c: an Events API response body -> cbev_batch of typed events.
 *
 * json.c parses the body once into the batch's arena; each item of the
 * "events" array becomes the upstream object of a cbev_event (which holds a
 * reference to the arena), and the typed views are filled with pointers
 * into it (no string copies). Every
 * object is walked once, matching each member against a small table of the
 * fields we know, so a member lookup never rescans the object.
 *
 * Leniency (SPEC section 1): unknown members are ignored; a known member of
 * the wrong type is treated as absent and logged at debug once per field
 * per process; JSON null is simply absent; an item that is not an event is
 * skipped with a warning; an unknown method is kept as CBEV_EVENT_UNKNOWN.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "event_impl.h"
#include "json.h"
#include "jsonw.h"
#include "log_impl.h"

/* How much of a bad body a warning quotes. */
#define EXCERPT_MAX 64

typedef enum field_kind { K_STR, K_BOOL, K_INT, K_MEDIA_ID } field_kind;

/* One known member of an upstream object. bit numbers the field for the
 * log-once mask; off is where the value goes in the view, has_off where
 * its presence flag goes (K_INT only). */
typedef struct field {
  const char *key;
  unsigned char keylen;
  const char *path; /* for the log: "user.isMod" */
  unsigned char kind;
  unsigned char bit;
  unsigned short off;
  unsigned short has_off;
} field;

/* The first bits are the members of the body and of `object`. */
enum {
  B_NEXTURL, B_STATUS, B_OBJECT, B_BROADCASTER, B_USER, B_TIP, B_MESSAGE,
  B_MEDIA, B_SUBJECT, B_FIRST_TABLE_BIT
};

/* Then each table's bits, in a row: a table's first bit follows from the
 * sizes of the tables before it (checked against the tables below). */
enum {
  N_USER_BITS = 17,
  N_TIP_BITS = 3, /* tip_fields plus isAnon */
  N_MESSAGE_BITS = 7,
  N_MEDIA_BITS = 4,
  B_USER_FIRST = B_FIRST_TABLE_BIT,
  B_TIP_FIRST = B_USER_FIRST + N_USER_BITS,
  B_MESSAGE_FIRST = B_TIP_FIRST + N_TIP_BITS,
  B_MEDIA_FIRST = B_MESSAGE_FIRST + N_MESSAGE_BITS,
  B_END = B_MEDIA_FIRST + N_MEDIA_BITS
};
#define N_OF(table) (sizeof(table) / sizeof((table)[0]))

#define U(key, kind, member, bit)                                           \
  { key, sizeof(key) - 1, "user." key, kind, B_USER_FIRST + (bit),                       \
    (unsigned short)offsetof(cbev_user, member), 0 }
static const field user_fields[] = {
    U("username", K_STR, username, 0),
    U("colorGroup", K_STR, color_group, 1),
    U("fcAutoRenew", K_BOOL, fc_auto_renew, 2),
    U("gender", K_STR, gender, 3),
    U("hasDarkmode", K_BOOL, has_darkmode, 4),
    U("hasTokens", K_BOOL, has_tokens, 5),
    U("inFanclub", K_BOOL, in_fanclub, 6),
    U("inPrivateShow", K_BOOL, in_private_show, 7),
    U("isBroadcasting", K_BOOL, is_broadcasting, 8),
    U("isFollower", K_BOOL, is_follower, 9),
    U("isMod", K_BOOL, is_mod, 10),
    U("isOwner", K_BOOL, is_owner, 11),
    U("isSilenced", K_BOOL, is_silenced, 12),
    U("isSpying", K_BOOL, is_spying, 13),
    U("language", K_STR, language, 14),
    U("recentTips", K_STR, recent_tips, 15),
    U("subgender", K_STR, subgender, 16),
};
#undef U

#define T(key, kind, member, has, bit)                                      \
  { key, sizeof(key) - 1, "tip." key, kind, B_TIP_FIRST + (bit),                   \
    (unsigned short)offsetof(cbev_tip, member), (unsigned short)(has) }
/* isAnon is not in the table: tip_anonymity() decides it (fail closed),
 * and its bit (B_TIP_FIRST + 1) reports an isAnon that is not a boolean. */
static const field tip_fields[] = {
    T("tokens", K_INT, tokens, offsetof(cbev_tip, has_tokens), 0),
    T("message", K_STR, message, 0, 2),
};
#define B_IS_ANON (B_TIP_FIRST + 1)
#undef T

#define M(key, member, bit)                                                 \
  { key, sizeof(key) - 1, "message." key, K_STR, B_MESSAGE_FIRST + (bit),              \
    (unsigned short)offsetof(cbev_message, member), 0 }
static const field message_fields[] = {
    M("message", message, 0), M("color", color, 1),   M("bgColor", bg_color, 2),
    M("font", font, 3),       M("orig", orig, 4),     M("fromUser", from_user, 5),
    M("toUser", to_user, 6),
};
#undef M

#define D(key, kind, member, has, bit)                                      \
  { key, sizeof(key) - 1, "media." key, kind, B_MEDIA_FIRST + (bit),                 \
    (unsigned short)offsetof(cbev_media, member), (unsigned short)(has) }
static const field media_fields[] = {
    D("id", K_MEDIA_ID, id, 0, 0),
    D("name", K_STR, name, 0, 1),
    D("type", K_STR, type, 0, 2),
    D("tokens", K_INT, tokens, offsetof(cbev_media, has_tokens), 3),
};
#undef D
_Static_assert(N_OF(user_fields) == N_USER_BITS, "user_fields and N_USER_BITS disagree");
_Static_assert(N_OF(tip_fields) + 1 == N_TIP_BITS, "tip_fields (+ isAnon) and N_TIP_BITS disagree");
_Static_assert(N_OF(message_fields) == N_MESSAGE_BITS, "message_fields and N_MESSAGE_BITS disagree");
_Static_assert(N_OF(media_fields) == N_MEDIA_BITS, "media_fields and N_MEDIA_BITS disagree");
_Static_assert(B_END <= 64, "the log-once mask is 64 bits");

/* Fields already reported as having the wrong type, process-wide. */
static _Atomic uint64_t g_logged_fields;

typedef struct parse_ctx {
  const cbev_logger *logger;
  const char *secret;
  cbev_arena *arena; /* the batch's: a numeric media.id's text goes there */
  int rc;            /* CBEV_ENOMEM once that failed */
} parse_ctx;

/* Reports, once per field per process, that a field had an unexpected
 * type and what was made of it. */
static void odd_type(const parse_ctx *ctx, unsigned bit, const char *path, const char *outcome) {
  uint64_t mask = (uint64_t)1 << bit;

  /* Only a logger that would print it spends the once. */
  if (!ctx->logger || !ctx->logger->fn || ctx->logger->max_level < CBEV_LOG_DEBUG)
    return;
  if (atomic_fetch_or(&g_logged_fields, mask) & mask)
    return;
  cbev_log(ctx->logger, ctx->secret, CBEV_LOG_DEBUG,
           "event field %s has an unexpected type; %s (reported once)", path, outcome);
}

static void wrong_type(const parse_ctx *ctx, unsigned bit, const char *path) {
  odd_type(ctx, bit, path, "treated as absent");
}

/* 2^53: up to it every integer is exact in a double. */
#define EXACT_DOUBLE_INT 9007199254740992.0

/* An integer (tokens): written as one, any value in int64's range, read
 * exactly from the text; written with a fraction or an exponent (25.0,
 * 2.5e1), only an integral value within +-2^53, where the double holding
 * it is exact. Anything else (2^63 and beyond, 2.5) is no integer. */
static int as_int64(const jv *c, int64_t *out) {
  double d;

  if (c->type != JV_NUMBER)
    return 0;
  if (cbev__jv_num_int64(c, out))
    return 1;
  if (cbev__jv_num_double(c, &d) != CBEV_OK || !(d >= -EXACT_DOUBLE_INT && d <= EXACT_DOUBLE_INT) ||
      (double)(int64_t)d != d)
    return 0;
  *out = (int64_t)d;
  return 1;
}

/* A copy of number c's text, NUL-terminated, in the arena; NULL (and
 * ctx->rc set) on ENOMEM. */
static const char *number_text(parse_ctx *ctx, const jv *c) {
  size_t n = cbev__jv_num_len(c);
  char *t = cbev__arena_alloc(ctx->arena, n + 1);

  if (!t) {
    ctx->rc = CBEV_ENOMEM;
    return NULL;
  }
  memcpy(t, c->u.num, n);
  t[n] = '\0';
  return t;
}

static void set_field(parse_ctx *ctx, const field *f, const jv *c,
                      unsigned char *dst) {
  int ok = 0;

  switch ((field_kind)f->kind) {
  case K_STR:
    if ((ok = c->type == JV_STRING))
      memcpy(dst + f->off, &c->u.str, sizeof(char *));
    break;
  case K_BOOL:
    if ((ok = c->type == JV_TRUE || c->type == JV_FALSE)) {
      cbev_tristate t = c->type == JV_TRUE ? CBEV_TRUE : CBEV_FALSE;
      memcpy(dst + f->off, &t, sizeof t);
    }
    break;
  case K_INT: {
    int64_t v;
    if ((ok = as_int64(c, &v))) {
      int one = 1;
      memcpy(dst + f->off, &v, sizeof v);
      memcpy(dst + f->has_off, &one, sizeof one);
    }
    break;
  }
  case K_MEDIA_ID: {
    /* The docs give a number, some captures a string: keep text, and of
     * a number the text received (9007199254740993 is no double). */
    const char *text = NULL;
    if (c->type == JV_STRING)
      text = c->u.str;
    else if (c->type == JV_NUMBER && !(text = number_text(ctx, c)))
      return; /* out of memory: the parse fails */
    if ((ok = text != NULL))
      memcpy(dst + f->off, &text, sizeof text);
    break;
  }
  }
  if (!ok)
    wrong_type(ctx, f->bit, f->path);
}

/* Fills dst (a view struct) from the members of obj found in table. The
 * search for a member starts after the field the previous one matched:
 * upstream writes members in a stable order, the tables follow it, so most
 * members match at the first try. */
static void fill(parse_ctx *ctx, const jv *obj, const field *table,
                 size_t n, void *dst) {
  size_t next = 0;

  for (const jv *c = obj->u.child; c; c = c->next) {
    if (c->type == JV_NULL)
      continue;
    for (size_t t = 0, i = next; t < n; t++, i = i + 1 == n ? 0 : i + 1) {
      if (c->keylen == table[i].keylen && memcmp(c->key, table[i].key, c->keylen) == 0) {
        set_field(ctx, &table[i], c, dst);
        next = i + 1 == n ? 0 : i + 1;
        break;
      }
    }
  }
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void fill_user(parse_ctx *ctx, cbev_event *ev, const jv *c) {
  cbev_user *u = &ev->user;

  if (c->type != JV_OBJECT) {
    wrong_type(ctx, B_USER, "user");
    return;
  }
  *u = (cbev_user){NULL, NULL, NULL, NULL, NULL, NULL,
                   CBEV_UNSET, CBEV_UNSET, CBEV_UNSET, CBEV_UNSET,
                   CBEV_UNSET, CBEV_UNSET, CBEV_UNSET, CBEV_UNSET,
                   CBEV_UNSET, CBEV_UNSET, CBEV_UNSET};
  fill(ctx, c, user_fields, COUNT(user_fields), u);
  /* A user without a name is no user: accessors promise a username. */
  if (!u->username) {
    wrong_type(ctx, user_fields[0].bit, user_fields[0].path);
    ev->has_user = 0;
    return;
  }
  if (u->subgender && !u->subgender[0])
    u->subgender = NULL; /* "" means none */
  ev->has_user = 1;
}

static void fill_part(parse_ctx *ctx, cbev_event *ev, const jv *c,
                      const char *key) {
  if (c->type != JV_OBJECT) {
    wrong_type(ctx, ev->type == CBEV_EVENT_TIP ? B_TIP
                    : ev->type == CBEV_EVENT_MEDIA_PURCHASE ? B_MEDIA : B_MESSAGE,
               key);
    return;
  }
  switch (ev->type) {
  case CBEV_EVENT_TIP:
    ev->part.tip = (cbev_tip){0, 0, CBEV_UNSET, NULL};
    fill(ctx, c, tip_fields, COUNT(tip_fields), &ev->part.tip);
    ev->part.tip.is_anon = ev->anon;
    break;
  case CBEV_EVENT_CHAT_MESSAGE:
  case CBEV_EVENT_PRIVATE_MESSAGE:
    memset(&ev->part.message, 0, sizeof ev->part.message);
    fill(ctx, c, message_fields, COUNT(message_fields), &ev->part.message);
    break;
  case CBEV_EVENT_MEDIA_PURCHASE:
    ev->part.media = (cbev_media){NULL, NULL, NULL, 0, 0};
    fill(ctx, c, media_fields, COUNT(media_fields), &ev->part.media);
    break;
  default:
    return;
  }
  ev->has_part = 1;
}

/* The member name that holds the part of a type, or NULL. */
static const char *part_key(cbev_event_type type) {
  switch (type) {
  case CBEV_EVENT_TIP: return "tip";
  case CBEV_EVENT_CHAT_MESSAGE:
  case CBEV_EVENT_PRIVATE_MESSAGE: return "message";
  case CBEV_EVENT_MEDIA_PURCHASE: return "media";
  default: return NULL;
  }
}

static void fill_object(parse_ctx *ctx, cbev_event *ev, const jv *obj) {
  const char *pkey = part_key(ev->type);
  size_t plen = pkey ? strlen(pkey) : 0; /* once, not per member */

  for (const jv *c = obj->u.child; c; c = c->next) {
    if (c->type == JV_NULL)
      continue;
    if (JV_KEY_IS(c, "broadcaster")) {
      if (c->type == JV_STRING)
        ev->broadcaster = c->u.str;
      else
        wrong_type(ctx, B_BROADCASTER, "broadcaster");
    } else if (JV_KEY_IS(c, "user")) {
      fill_user(ctx, ev, c);
    } else if (pkey && c->keylen == plen && memcmp(c->key, pkey, plen) == 0) {
      fill_part(ctx, ev, c, pkey);
    } else if (ev->type == CBEV_EVENT_ROOM_SUBJECT_CHANGE && JV_KEY_IS(c, "subject")) {
      if (c->type == JV_STRING)
        ev->subject = c->u.str;
      else
        wrong_type(ctx, B_SUBJECT, "subject");
    }
  }
}

/* Whether the tipper of tip event item must stay hidden (SPEC section 2,
 * fail closed): CBEV_TRUE when any isAnon of any "tip" of any "object"
 * is anything but JSON false (duplicates included: a consumer's JSON
 * parser may keep another one than ours), CBEV_FALSE when every isAnon
 * found is false, CBEV_UNSET when there is none (not anonymous). An isAnon
 * that is not a boolean is reported once at debug. */
static cbev_tristate tip_anonymity(const parse_ctx *ctx, const jv *item) {
  cbev_tristate anon = CBEV_UNSET;

  for (const jv *o = item->u.child; o; o = o->next) {
    if (!JV_KEY_IS(o, "object") || o->type != JV_OBJECT)
      continue;
    for (const jv *t = o->u.child; t; t = t->next) {
      if (!JV_KEY_IS(t, "tip") || t->type != JV_OBJECT)
        continue;
      for (const jv *a = t->u.child; a; a = a->next) {
        if (!JV_KEY_IS(a, "isAnon"))
          continue;
        if (a->type != JV_TRUE && a->type != JV_FALSE)
          odd_type(ctx, B_IS_ANON, "tip.isAnon", "the tip counts as anonymous");
        if (a->type != JV_FALSE)
          anon = CBEV_TRUE;
        else if (anon == CBEV_UNSET)
          anon = CBEV_FALSE;
      }
    }
  }
  return anon;
}

/* Builds the event for one item. Returns CBEV_OK, CBEV_ENOMEM, or
 * CBEV_EPARSE with *why set when the item is not an event (the caller
 * skips it). */
static int make_event(parse_ctx *ctx, cbev_arena *arena, const jv *item,
                      cbev_event **out, const char **why) {
  const jv *method = NULL, *id = NULL, *object = NULL;
  cbev_event *ev;

  if (item->type != JV_OBJECT) {
    *why = "not an object";
    return CBEV_EPARSE;
  }
  for (const jv *c = item->u.child; c; c = c->next) {
    if (JV_KEY_IS(c, "method"))
      method = c;
    else if (JV_KEY_IS(c, "id"))
      id = c;
    else if (JV_KEY_IS(c, "object"))
      object = c;
  }
  if (!method || method->type != JV_STRING) {
    *why = "no string \"method\"";
    return CBEV_EPARSE;
  }
  if (!id || id->type != JV_STRING) {
    *why = "no string \"id\"";
    return CBEV_EPARSE;
  }
  /* The event lives in the arena too: it holds a reference anyway. */
  ev = cbev__arena_alloc(arena, sizeof *ev);
  if (!ev)
    return CBEV_ENOMEM;
  memset(ev, 0, sizeof *ev);
  atomic_init(&ev->raw_cjson, NULL);
  ev->raw = item;
  ev->method = method->u.str;
  ev->id = id->u.str;
  ev->type = cbev_event_type_from_method(ev->method);
  ev->id_rc = cbev_id_parse(ev->id, &ev->pid);
  ev->anon = ev->type == CBEV_EVENT_TIP ? tip_anonymity(ctx, item) : CBEV_UNSET;
  /* Any JSON type: an unknown method's object is republished as it came.
   * A known method with an object that is not one is still delivered, as
   * its type with every part absent (a field of the wrong type). */
  ev->object = object;
  if (object && object->type == JV_OBJECT)
    fill_object(ctx, ev, object);
  else if (object && object->type != JV_NULL && ev->type != CBEV_EVENT_UNKNOWN)
    wrong_type(ctx, B_OBJECT, "object");
  if (ctx->rc)
    return ctx->rc;
  *out = ev;
  return CBEV_OK;
}

/* Warns that the body is unusable, quoting its start: the token is masked
 * before the quote is cut (a token straddling the cut must not leave its
 * first half in the log), control bytes and bad UTF-8 shown as '?'. */
static void warn_body(const parse_ctx *ctx, const char *body, size_t len,
                      size_t at, const char *why) {
  char excerpt[EXCERPT_MAX + 1];
  int cut = 0;

  if (!ctx->logger || !ctx->logger->fn || ctx->logger->max_level < CBEV_LOG_WARN)
    return;
  if (cbev__log_excerpt(excerpt, sizeof excerpt, body, len, ctx->secret, &cut) != CBEV_OK)
    snprintf(excerpt, sizeof excerpt, "(not shown: out of memory)");
  cbev_log(ctx->logger, ctx->secret, CBEV_LOG_WARN,
           "response body is not an Events API object (%s, at byte %zu of %zu): "
           "\"%s\"%s",
           why, at, len, excerpt, cut ? "..." : "");
}

/* s without ASCII white space at either end (SPEC section 1: some
 * nextUrls arrive padded). s is a string of the parsed copy, which the
 * batch owns: the end is cut in place. */
static const char *trim_ascii_space(char *s) {
  size_t n;

  while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
    s++;
  n = strlen(s);
  while (n && (s[n - 1] == ' ' || (s[n - 1] >= '\t' && s[n - 1] <= '\r')))
    n--;
  s[n] = '\0';
  return s;
}

static int only_space(const char *p, const char *end) {
  for (; p < end; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0')
      return 0;
  return 1;
}

int cbev_parse_response(const char *body, size_t len, const cbev_logger *logger,
                        const char *secret, cbev_batch **out) {
  parse_ctx ctx = {logger, secret, NULL, CBEV_OK};
  cbev_arena *arena = NULL;
  const jv *root = NULL, *events = NULL;
  size_t end = 0;
  cbev_batch *b = NULL;
  size_t n = 0, i = 0;
  int rc = CBEV_EINVAL;

  if (!out || (!body && len))
    goto out;
  *out = NULL;
  rc = CBEV_EPARSE;
  if (!body || len == 0) {
    warn_body(&ctx, "", 0, 0, "empty");
    goto out;
  }
  rc = CBEV_ENOMEM;
  if (!(arena = cbev__arena_new(len)))
    goto out;
  ctx.arena = arena;
  rc = cbev__jv_parse(arena, body, len, &root, &end);
  if (rc == CBEV_ENOMEM)
    goto out;
  if (rc != CBEV_OK) {
    warn_body(&ctx, body, len, end, "invalid JSON or nested too deep");
    goto out;
  }
  rc = CBEV_EPARSE;
  if (!only_space(body + end, body + len)) {
    warn_body(&ctx, body, len, end, "text after the JSON value");
    goto out;
  }
  if (root->type != JV_OBJECT) {
    warn_body(&ctx, body, len, 0, "not an object");
    goto out;
  }
  rc = CBEV_ENOMEM;
  b = cbev_calloc(1, sizeof *b);
  if (!b)
    goto out;
  for (const jv *c = root->u.child; c; c = c->next) {
    if (JV_KEY_IS(c, "events")) {
      events = c;
    } else if (JV_KEY_IS(c, "nextUrl")) {
      if (c->type == JV_STRING)
        b->next_url = trim_ascii_space((char *)(uintptr_t)c->u.str);
      else if (c->type != JV_NULL)
        wrong_type(&ctx, B_NEXTURL, "nextUrl");
    } else if (JV_KEY_IS(c, "status")) {
      if (c->type == JV_STRING)
        b->status = c->u.str;
      else if (c->type != JV_NULL)
        wrong_type(&ctx, B_STATUS, "status");
    }
  }
  if (events && events->type != JV_ARRAY) {
    rc = CBEV_EPARSE;
    warn_body(&ctx, body, len, 0, "\"events\" is not an array");
    goto out;
  }
  if (events) {
    b->has_events = 1;
    for (const jv *c = events->u.child; c; c = c->next)
      n++;
    b->events = cbev_calloc(n ? n : 1, sizeof *b->events);
    if (!b->events)
      goto out;
    for (const jv *item = events->u.child; item; item = item->next, i++) {
      const char *why = NULL;
      cbev_event *ev = NULL;
      int erc = make_event(&ctx, arena, item, &ev, &why);

      if (erc == CBEV_OK) {
        ev->arena = arena;
        cbev__arena_ref(arena);
        b->events[b->count++] = ev;
        continue;
      }
      if (erc != CBEV_EPARSE)
        goto out;
      cbev_log(logger, secret, CBEV_LOG_WARN,
               "events[%zu] is not a valid event (%s); skipped, the rest of "
               "the batch is delivered", i, why);
    }
  }
  b->arena = arena;
  arena = NULL;
  *out = b;
  b = NULL;
  rc = CBEV_OK;
out:
  cbev_batch_free(b);
  cbev__arena_unref(arena);
  return rc;
}

/*
 * normalize.c: a cbev_event as the normalized JSON of SPEC section 3, the
 * one serializer behind cbevents-tail and cb2mqtt.
 *
 * The payload is written by hand into a capped jsonw buffer, keys in the
 * fixed order of the SPEC (id, event_type, broadcaster, timestamp, user,
 * then the part of the type), rather than built as a cJSON tree: that
 * would allocate a node per field for every event. With CBEV_JSON_RAW the
 * upstream object is written back unchanged (as JSON; strings still come
 * out as valid UTF-8).
 */
#include <stdint.h>
#include <string.h>


#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/normalize.h"
#include "civil.h"
#include "event_impl.h"
#include "json.h"
#include "jsonw.h"

/* Most payloads fit in the first allocation; one realloc covers the rest. */
#define NORMALIZE_FIRST_BYTES 1024u
/* A body is capped at 8 MiB and escaping grows text at most 6 times (a
 * control byte becomes \u00XX), so this holds any event of a legal body. */
#define NORMALIZE_MAX_BYTES (64u * 1024u * 1024u)
/* cbev_snake_case's cap, in bytes (NUL excluded). */
#define SNAKE_MAX 64u
/* 9999-12-31T23:59:59.999Z: the last instant with a 4-digit year. */
#define TIMESTAMP_MAX_MS 253402300799999ull

/* Writes the snake_case form of method into out (SNAKE_MAX + 1 bytes).
 * An uppercase letter starts a new word ("_" + lowercase) except at the
 * start; bytes outside [A-Za-z0-9_] become '_', so the result is always
 * ASCII and safe as a topic level. */
static size_t snake_into(const char *method, char *out) {
  size_t n = 0;

  for (size_t i = 0; method[i] && n < SNAKE_MAX; i++) {
    char c = method[i];
    if (c >= 'A' && c <= 'Z') {
      if (i > 0 && n < SNAKE_MAX)
        out[n++] = '_';
      if (n < SNAKE_MAX)
        out[n++] = (char)(c - 'A' + 'a');
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
      out[n++] = c;
    } else {
      out[n++] = '_';
    }
  }
  out[n] = '\0';
  return n;
}

char *cbev_snake_case(const char *method) {
  char buf[SNAKE_MAX + 1];

  if (!method)
    return NULL;
  return cbev_strndup(buf, snake_into(method, buf));
}

static void put2(char *p, unsigned v) {
  p[0] = (char)('0' + v / 10);
  p[1] = (char)('0' + v % 10);
}

int cbev_format_timestamp(unsigned long long epoch_ms, char *buf, size_t size) {
  unsigned long long secs, days;
  int64_t year;
  unsigned ms, sod, mon, day;

  if (!buf || size < 25 || epoch_ms > TIMESTAMP_MAX_MS)
    return CBEV_EINVAL;
  ms = (unsigned)(epoch_ms % 1000);
  secs = epoch_ms / 1000;
  days = secs / 86400;
  sod = (unsigned)(secs % 86400);
  cbev__civil_from_days((int64_t)days, &year, &mon, &day);
  put2(buf, (unsigned)(year / 100));
  put2(buf + 2, (unsigned)(year % 100));
  buf[4] = '-';
  put2(buf + 5, mon);
  buf[7] = '-';
  put2(buf + 8, day);
  buf[10] = 'T';
  put2(buf + 11, sod / 3600);
  buf[13] = ':';
  put2(buf + 14, sod / 60 % 60);
  buf[16] = ':';
  put2(buf + 17, sod % 60);
  buf[19] = '.';
  buf[20] = (char)('0' + ms / 100);
  put2(buf + 21, ms % 100);
  buf[23] = 'Z';
  buf[24] = '\0';
  return CBEV_OK;
}

static void write_user(jsonw *w, const cbev_user *u) {
  JSONW_LIT(w, "{\"username\":");
  cbev__jsonw_str(w, u->username);
  JSONW_LIT(w, ",\"color_group\":");
  cbev__jsonw_str(w, u->color_group);
  JSONW_LIT(w, ",\"fc_auto_renew\":");
  cbev__jsonw_tristate(w, u->fc_auto_renew);
  JSONW_LIT(w, ",\"gender\":");
  cbev__jsonw_str(w, u->gender);
  JSONW_LIT(w, ",\"has_darkmode\":");
  cbev__jsonw_tristate(w, u->has_darkmode);
  JSONW_LIT(w, ",\"has_tokens\":");
  cbev__jsonw_tristate(w, u->has_tokens);
  JSONW_LIT(w, ",\"in_fanclub\":");
  cbev__jsonw_tristate(w, u->in_fanclub);
  JSONW_LIT(w, ",\"in_private_show\":");
  cbev__jsonw_tristate(w, u->in_private_show);
  JSONW_LIT(w, ",\"is_broadcasting\":");
  cbev__jsonw_tristate(w, u->is_broadcasting);
  JSONW_LIT(w, ",\"is_follower\":");
  cbev__jsonw_tristate(w, u->is_follower);
  JSONW_LIT(w, ",\"is_mod\":");
  cbev__jsonw_tristate(w, u->is_mod);
  JSONW_LIT(w, ",\"is_owner\":");
  cbev__jsonw_tristate(w, u->is_owner);
  JSONW_LIT(w, ",\"is_silenced\":");
  cbev__jsonw_tristate(w, u->is_silenced);
  JSONW_LIT(w, ",\"is_spying\":");
  cbev__jsonw_tristate(w, u->is_spying);
  JSONW_LIT(w, ",\"language\":");
  cbev__jsonw_str(w, u->language);
  JSONW_LIT(w, ",\"recent_tips\":");
  cbev__jsonw_str(w, u->recent_tips);
  JSONW_LIT(w, ",\"subgender\":");
  cbev__jsonw_str(w, u->subgender);
  JSONW_LIT(w, "}");
}

static void write_tip(jsonw *w, const cbev_tip *t) {
  const char *msg = t->message;

  /* Upstream prefixes a tip note with "| "; the payload carries the note. */
  if (msg && msg[0] == '|' && msg[1] == ' ')
    msg += 2;
  JSONW_LIT(w, ",\"tip\":{\"tokens\":");
  if (t->has_tokens)
    cbev__jsonw_int(w, t->tokens);
  else
    JSONW_LIT(w, "null");
  JSONW_LIT(w, ",\"is_anon\":");
  cbev__jsonw_tristate(w, t->is_anon);
  JSONW_LIT(w, ",\"message\":");
  cbev__jsonw_str(w, msg);
  JSONW_LIT(w, "}");
}

static void write_message(jsonw *w, const cbev_message *m) {
  JSONW_LIT(w, ",\"message\":{\"text\":");
  cbev__jsonw_str(w, m->message);
  JSONW_LIT(w, ",\"color\":");
  cbev__jsonw_str(w, m->color);
  JSONW_LIT(w, ",\"bg_color\":");
  cbev__jsonw_str(w, m->bg_color);
  JSONW_LIT(w, ",\"font\":");
  cbev__jsonw_str(w, m->font);
  JSONW_LIT(w, ",\"orig\":");
  cbev__jsonw_str(w, m->orig);
  JSONW_LIT(w, ",\"from_user\":");
  cbev__jsonw_str(w, m->from_user);
  JSONW_LIT(w, ",\"to_user\":");
  cbev__jsonw_str(w, m->to_user);
  JSONW_LIT(w, "}");
}

static void write_media(jsonw *w, const cbev_media *m) {
  JSONW_LIT(w, ",\"media\":{\"id\":");
  cbev__jsonw_str(w, m->id);
  JSONW_LIT(w, ",\"name\":");
  cbev__jsonw_str(w, m->name);
  JSONW_LIT(w, ",\"type\":");
  cbev__jsonw_str(w, m->type);
  JSONW_LIT(w, ",\"tokens\":");
  if (m->has_tokens)
    cbev__jsonw_int(w, m->tokens);
  else
    JSONW_LIT(w, "null");
  JSONW_LIT(w, "}");
}

/* SPEC section 2: an anonymous tipper stays anonymous unless the program
 * opted in, although upstream sends the real user. The parser decided
 * which tips are anonymous (cbev_event_is_anonymous, fail closed). */
static int hide_tipper(const cbev_event *ev, unsigned flags) {
  return !(flags & CBEV_JSON_EXPOSE_ANON) && cbev_event_is_anonymous(ev);
}

static int is_key(const jv *c, const char *key) {
  return c->key && strcmp(c->key, key) == 0;
}

/* The upstream event as it came, except that the user of an anonymous tip
 * is written as null (the rule above holds for every payload mode): every
 * "user" of every "object", duplicates included. */
static void write_raw(jsonw *w, const cbev_event *ev, unsigned flags) {
  const jv *c, *o;

  if (!hide_tipper(ev, flags) || ev->raw->type != JV_OBJECT) {
    cbev__jsonw_value(w, ev->raw);
    return;
  }
  JSONW_LIT(w, "{");
  for (c = ev->raw->u.child; c; c = c->next) {
    cbev__jsonw_str(w, c->key);
    JSONW_LIT(w, ":");
    if (!is_key(c, "object") || c->type != JV_OBJECT) {
      cbev__jsonw_value(w, c);
    } else {
      JSONW_LIT(w, "{");
      for (o = c->u.child; o; o = o->next) {
        cbev__jsonw_str(w, o->key);
        JSONW_LIT(w, ":");
        if (is_key(o, "user"))
          JSONW_LIT(w, "null");
        else
          cbev__jsonw_value(w, o);
        if (o->next)
          JSONW_LIT(w, ",");
      }
      JSONW_LIT(w, "}");
    }
    if (c->next)
      JSONW_LIT(w, ",");
  }
  JSONW_LIT(w, "}");
}

static void write_normalized(jsonw *w, const cbev_event *ev, unsigned flags) {
  const cbev_user *user = ev->has_user ? &ev->user : NULL;
  char ts[32];

  JSONW_LIT(w, "{\"id\":");
  cbev__jsonw_str(w, ev->id);
  JSONW_LIT(w, ",\"event_type\":\"");
  if (ev->type == CBEV_EVENT_UNKNOWN) {
    char snake[SNAKE_MAX + 1];
    jsonw_lit(w, snake, snake_into(ev->method, snake));
  } else {
    const char *name = cbev_event_type_name(ev->type);
    jsonw_lit(w, name, strlen(name));
  }
  JSONW_LIT(w, "\",\"broadcaster\":");
  cbev__jsonw_str(w, ev->broadcaster);
  JSONW_LIT(w, ",\"timestamp\":");
  if (ev->id_rc == CBEV_OK && cbev_format_timestamp(ev->pid.ms, ts, sizeof ts) == CBEV_OK) {
    JSONW_LIT(w, "\"");
    jsonw_lit(w, ts, 24);
    JSONW_LIT(w, "\"");
  } else {
    JSONW_LIT(w, "null");
  }
  if (hide_tipper(ev, flags))
    user = NULL;
  JSONW_LIT(w, ",\"user\":");
  if (user)
    write_user(w, user);
  else
    JSONW_LIT(w, "null");

  switch (ev->type) {
  case CBEV_EVENT_TIP:
    if (ev->has_part)
      write_tip(w, &ev->part.tip);
    else
      JSONW_LIT(w, ",\"tip\":null");
    break;
  case CBEV_EVENT_CHAT_MESSAGE:
  case CBEV_EVENT_PRIVATE_MESSAGE:
    if (ev->has_part)
      write_message(w, &ev->part.message);
    else
      JSONW_LIT(w, ",\"message\":null");
    break;
  case CBEV_EVENT_MEDIA_PURCHASE:
    if (ev->has_part)
      write_media(w, &ev->part.media);
    else
      JSONW_LIT(w, ",\"media\":null");
    break;
  case CBEV_EVENT_ROOM_SUBJECT_CHANGE:
    JSONW_LIT(w, ",\"subject\":");
    cbev__jsonw_str(w, ev->subject);
    break;
  case CBEV_EVENT_UNKNOWN:
    JSONW_LIT(w, ",\"raw\":");
    cbev__jsonw_value(w, ev->object);
    break;
  default:
    break;
  }
  JSONW_LIT(w, "}");
}

int cbev_event_to_json(const cbev_event *ev, unsigned flags, char **json_out,
                       size_t *len_out) {
  jsonw w;
  char *json;
  size_t len = 0;

  if (!ev || !json_out)
    return CBEV_EINVAL;
  *json_out = NULL;
  cbev__jsonw_init(&w, NORMALIZE_FIRST_BYTES, NORMALIZE_MAX_BYTES);
  if (flags & CBEV_JSON_RAW)
    write_raw(&w, ev, flags);
  else
    write_normalized(&w, ev, flags);
  json = cbev__jsonw_finish(&w, &len);
  if (!json)
    return w.rc;
  *json_out = json;
  if (len_out)
    *len_out = len;
  return CBEV_OK;
}

size_t cbev_utf8_repair(char *out, size_t size, const char *s) {
  static const char fffd[] = "\xEF\xBF\xBD";
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  size_t n = 0, w = 0;
  int fits = out && size;

  while (*p) {
    const char *piece = (const char *)p;
    size_t len = 1, adv = 1;
    if (*p >= 0x80) {
      int bad;
      adv = len = cbev__jsonw_utf8_seq(p, &bad);
      if (bad) {
        piece = fffd;
        len = 3;
      }
    }
    /* the first character that does not fit ends the copy */
    if (fits && w + len < size) {
      memcpy(out + w, piece, len);
      w += len;
    } else {
      fits = 0;
    }
    n += len;
    p += adv;
  }
  if (out && size)
    out[w] = '\0';
  return n;
}

int cbev_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;

  if (!s)
    return n == 0;
  while (i < n) {
    size_t need, len;
    int bad;
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    /* The sequence's length from its lead byte: the bytes it needs must be
     * inside s[0..n), so the check (which reads up to them) stays inside. */
    need = p[i] >= 0xF0 ? 4 : p[i] >= 0xE0 ? 3 : 2;
    if (n - i < need)
      return 0;
    len = cbev__jsonw_utf8_seq(p + i, &bad);
    if (bad)
      return 0;
    i += len;
  }
  return 1;
}

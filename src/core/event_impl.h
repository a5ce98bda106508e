/*
 * event_impl.h: the layout of cbev_event and cbev_batch, shared by
 * event.c (accessors, batch), parse.c (which fills them) and normalize.c
 * (which reads them without going through the accessors). Internal to
 * libcbevents; public code sees the opaque handles of event.h.
 */
#ifndef CBEV_EVENT_IMPL_H
#define CBEV_EVENT_IMPL_H

#include <stdatomic.h>

#include "cbevents/event.h"

struct cJSON;
struct jv;

struct cbev_event {
  struct cbev_arena *arena;     /* a reference: raw lives there (arena.h) */
  const struct jv *raw;         /* {"method","id","object"} (json.h) */
  const struct jv *object;      /* raw's "object", of any JSON type, or NULL */
  _Atomic(struct cJSON *) raw_cjson; /* cbev_event_raw()'s copy, made on demand */
  const char *method;           /* into raw; never NULL */
  const char *id;               /* into raw; never NULL */
  const char *broadcaster;      /* into raw, or NULL */
  const char *subject;          /* room_subject_change only */
  cbev_event_type type;
  int id_rc;                    /* cbev_id_parse() result for id */
  cbev_tristate anon;           /* tips: tip_anonymity() (parse.c); else UNSET */
  cbev_id pid;                  /* valid when id_rc == CBEV_OK */
  unsigned char has_user;
  unsigned char has_part;       /* the part of the type (tip, message, media) */
  cbev_user user;
  union {
    cbev_tip tip;
    cbev_message message;
    cbev_media media;
  } part;
};

struct cbev_batch {
  struct cbev_arena *arena; /* a reference: the parsed body lives there */
  cbev_event **events;    /* count slots; a taken slot is NULL */
  size_t count;
  const char *next_url;   /* in the arena, or NULL */
  const char *status;     /* in the arena, or NULL */
  int has_events;         /* the body had an "events" array */
};

#endif

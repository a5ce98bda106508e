/*
 * cbevents/event.h: the event model and the response parser.
 *
 * A response body of the Events API is parsed into a cbev_batch: the events
 * in upstream order plus the nextUrl. Each cbev_event owns its upstream JSON
 * object; the typed views (cbev_user, cbev_tip, ...) point into it and live
 * exactly as long as the event. Accessors return NULL where a part does not
 * apply to the event's type or was absent or of the wrong type upstream.
 *
 * Parsing is lenient as SPEC section 1 asks: unknown fields are ignored, a
 * field of the wrong type is treated as absent, an item that is not an event
 * is skipped with a warning, an unknown method is kept as CBEV_EVENT_UNKNOWN.
 */
#ifndef CBEVENTS_EVENT_H
#define CBEVENTS_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "cbevents/log.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The 12 upstream methods, and UNKNOWN for any other. Values are stable. */
typedef enum cbev_event_type {
  CBEV_EVENT_BROADCAST_START = 0,
  CBEV_EVENT_BROADCAST_STOP,
  CBEV_EVENT_ROOM_SUBJECT_CHANGE,
  CBEV_EVENT_USER_ENTER,
  CBEV_EVENT_USER_LEAVE,
  CBEV_EVENT_FOLLOW,
  CBEV_EVENT_UNFOLLOW,
  CBEV_EVENT_FANCLUB_JOIN,
  CBEV_EVENT_CHAT_MESSAGE,
  CBEV_EVENT_PRIVATE_MESSAGE,
  CBEV_EVENT_TIP,
  CBEV_EVENT_MEDIA_PURCHASE,
  CBEV_EVENT_UNKNOWN,
  CBEV_EVENT_TYPE_COUNT = CBEV_EVENT_UNKNOWN /* number of known types: 12 */
} cbev_event_type;

/* snake_case name used in payloads and topics ("tip", "room_subject_change");
 * "unknown" for CBEV_EVENT_UNKNOWN or an out-of-range value. Static. */
const char *cbev_event_type_name(cbev_event_type type);
/* Upstream camelCase method ("tip", "roomSubjectChange"). Static; NULL for
 * UNKNOWN. */
const char *cbev_event_type_method(cbev_event_type type);
/* Maps an upstream method name; CBEV_EVENT_UNKNOWN when not one of the 12. */
cbev_event_type cbev_event_type_from_method(const char *method);
/* Maps a snake_case name; CBEV_EVENT_UNKNOWN when not one of the 12. */
cbev_event_type cbev_event_type_from_name(const char *name);

/* An event id "1755376889458-0": epoch milliseconds and sequence. */
typedef struct cbev_id {
  uint64_t ms;
  uint64_t seq;
} cbev_id;

/* Parses "<ms>-<seq>" (decimal digits only, no sign, no spaces, each part
 * fitting in 64 bits). Returns CBEV_OK or CBEV_EINVAL. */
int cbev_id_parse(const char *text, cbev_id *out);
/* Returns <0, 0 or >0 as a is before, equal to or after b. */
int cbev_id_cmp(const cbev_id *a, const cbev_id *b);
/* Same on the text form; an unparsable id sorts before every valid one and
 * two unparsable ids compare with strcmp. NULL counts as unparsable. */
int cbev_id_cmp_str(const char *a, const char *b);

/* Optional boolean: upstream fields may be absent or of the wrong type. */
typedef enum cbev_tristate {
  CBEV_UNSET = -1,
  CBEV_FALSE = 0,
  CBEV_TRUE = 1
} cbev_tristate;

/* Strings are NULL when absent or not a string upstream. subgender ""
 * upstream is reported as NULL ("none"). */
typedef struct cbev_user {
  const char *username; /* never NULL in a user returned by an accessor */
  const char *color_group;
  const char *gender;
  const char *language;
  const char *recent_tips;
  const char *subgender;
  cbev_tristate fc_auto_renew;
  cbev_tristate has_darkmode;
  cbev_tristate has_tokens;
  cbev_tristate in_fanclub;
  cbev_tristate in_private_show;
  cbev_tristate is_broadcasting;
  cbev_tristate is_follower;
  cbev_tristate is_mod;
  cbev_tristate is_owner;
  cbev_tristate is_silenced;
  cbev_tristate is_spying;
} cbev_user;

typedef struct cbev_tip {
  /* An integer, read exactly from the text received (any int64). A number
   * written with a fraction or exponent counts only when it is integral
   * and within +-2^53 (25.0 is 25); anything else (2^63, 2.5, a string)
   * is the wrong type: tokens 0 and has_tokens 0. */
  int64_t tokens;          /* 0 when absent */
  int has_tokens;          /* 1 when tokens was an integer upstream */
  /* Fail closed (SPEC section 2): CBEV_TRUE unless isAnon is absent
   * (CBEV_UNSET) or JSON false (CBEV_FALSE); "true", 1, null, "false",
   * [] and {} are all CBEV_TRUE, and so is a false repeated with any
   * other value. cbev_event_is_anonymous() is the one test to use. */
  cbev_tristate is_anon;
  const char *message;     /* upstream text, "| " prefix NOT removed; may be NULL */
} cbev_tip;

typedef struct cbev_message {
  const char *message;
  const char *color;
  const char *bg_color;
  const char *font;
  const char *orig;
  const char *from_user;
  const char *to_user;
} cbev_message;

typedef struct cbev_media {
  /* Always text: a string as received, a number as the text received
   * (9007199254740993 stays exact, 1e3 stays "1e3"). */
  const char *id;
  const char *name;
  const char *type;        /* "photos" | "video" upstream; not checked */
  int64_t tokens;
  int has_tokens;
} cbev_media;

typedef struct cbev_event cbev_event;
typedef struct cbev_batch cbev_batch;
struct cJSON;

/* Accessors. Every pointer returned is owned by the event. */
cbev_event_type cbev_event_get_type(const cbev_event *ev);
const char *cbev_event_method(const cbev_event *ev);     /* upstream method */
const char *cbev_event_id(const cbev_event *ev);         /* never NULL */
/* CBEV_OK, or CBEV_EINVAL when the id is not of the documented form. */
int cbev_event_parsed_id(const cbev_event *ev, cbev_id *out);
const char *cbev_event_broadcaster(const cbev_event *ev); /* NULL if absent */
const cbev_user *cbev_event_user(const cbev_event *ev);
const cbev_tip *cbev_event_tip(const cbev_event *ev);         /* tip only */
const cbev_message *cbev_event_message(const cbev_event *ev); /* chat/pm */
const cbev_media *cbev_event_media(const cbev_event *ev);     /* media_purchase */
const char *cbev_event_subject(const cbev_event *ev); /* room_subject_change */
/* 1 when ev is a tip whose tipper must stay hidden (SPEC section 2, fail
 * closed): any isAnon of its tip, duplicates included, is anything but
 * JSON false. 0 otherwise (other types, isAnon absent or false, NULL).
 * The normalizer, the raw writer and cb2mqtt's derived state all decide
 * with this; a program printing a tipper's name should too. */
int cbev_event_is_anonymous(const cbev_event *ev);
/* The upstream event object ({"method","id","object"}) unchanged, as a
 * cJSON tree owned by the event. It is built on the first call (safe from
 * several threads at once); NULL when that runs out of memory. Its numbers
 * are cJSON's doubles (an integer past 2^53 is rounded); the exact text
 * is what cbev_event_to_json() with CBEV_JSON_RAW writes. */
const struct cJSON *cbev_event_raw(const cbev_event *ev);
void cbev_event_free(cbev_event *ev); /* NULL is fine */

/* Parses an Events API body (200, or the 400 "waited too long" form).
 * On CBEV_OK *out is a new batch the caller frees with cbev_batch_free().
 * Returns CBEV_EPARSE when the body is not a JSON object (the excerpt of
 * the problem is logged through logger at warn, masked with secret),
 * CBEV_ENOMEM. Items that are not events are skipped with a warning.
 * logger and secret may be NULL. */
int cbev_parse_response(const char *body, size_t len,
                        const cbev_logger *logger, const char *secret,
                        cbev_batch **out);

size_t cbev_batch_count(const cbev_batch *b);
/* Borrowed; NULL when i is out of range. */
const cbev_event *cbev_batch_get(const cbev_batch *b, size_t i);
/* Moves event i out of the batch (the slot becomes NULL); the caller owns
 * it. NULL when out of range or already taken. */
cbev_event *cbev_batch_take(cbev_batch *b, size_t i);
/* The nextUrl of the body, NULL when absent or null. Owned by the batch. */
const char *cbev_batch_next_url(const cbev_batch *b);
/* The "status" string of the body (400 form), NULL when absent. */
const char *cbev_batch_status(const cbev_batch *b);
/* Removes (and frees) the duplicates, keeping the order of the rest: an
 * event whose id is not after last_id and after every id before it in the
 * batch (SPEC 1: one rule across and inside batches; compared as (ms, seq)
 * pairs). So a restarted or retried cursor, or an id repeated or lower
 * within one body, yields no event twice. An event whose id is not of the
 * form <ms>-<seq> cannot be ordered: it is kept and moves nothing. A NULL
 * last_id, or one that is not an event id, applies the in-batch rule
 * alone. Returns the number removed. */
size_t cbev_batch_drop_seen(cbev_batch *b, const char *last_id);
void cbev_batch_free(cbev_batch *b); /* frees remaining events; NULL ok */

#ifdef __cplusplus
}
#endif
#endif

/*
 * state.h: the derived state of one broadcaster (SPEC 5 topics
 * cb/<b>/state and cb/<b>/state/...), folded from its events and kept
 * across restarts in "<state_dir>/<name>.state".
 *
 * cb2m_state_apply() ignores events whose id is not after the last one
 * applied, so events fetched again after a crash never count twice.
 * Times are derived from event ids (epoch ms), never from the local
 * clock: replaying the same events gives the same state, byte for byte.
 *
 * Return convention (README): CBEV_OK or a CBEV_* code, errno set beside
 * CBEV_EIO, CBEV_ENOMEM and CBEV_EINVAL.
 */
#ifndef CB2M_STATE_H
#define CB2M_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "topics.h"

/* Bits cb2m_state_apply() sets in *changed. */
#define CB2M_CHG_BROADCASTING 0x01u   /* state/broadcasting */
#define CB2M_CHG_SUBJECT 0x02u        /* state/subject */
#define CB2M_CHG_VIEWERS 0x04u        /* state/viewers */
#define CB2M_CHG_SESSION_TOKENS 0x08u /* state/session_tokens (every tip) */
#define CB2M_CHG_LAST_TIP 0x10u       /* last_tip of the state JSON */
#define CB2M_CHG_LAST_EVENT 0x20u     /* last_event_at/last_id: every applied event */
#define CB2M_CHG_ANY 0x3fu            /* every bit above (on connect: publish everything) */

#define CB2M_STATE_TIME_SIZE 32 /* "2025-08-16T20:41:43.836Z" + NUL fits */
/* Largest state file read back; a bigger one is corrupt. */
#define CB2M_STATE_MAX_BYTES (1024 * 1024)

typedef struct cb2m_state {
  cbev_tristate broadcasting; /* CBEV_UNSET until a broadcast_start/stop */
  char *subject;              /* NULL until a room_subject_change */
  int64_t viewers;            /* approximate: enters minus leaves, >= 0 */
  int64_t session_tokens;     /* tipped since broadcast_start (saturating) */
  int has_last_tip;           /* 0 until the first tip */
  int64_t last_tip_tokens;
  int last_tip_is_anon;
  char *last_tip_username; /* NULL for anonymous tips unless exposed */
  char *last_tip_message;  /* "| " prefix removed; NULL when absent */
  char last_tip_at[CB2M_STATE_TIME_SIZE];   /* "" when unknown */
  char last_event_at[CB2M_STATE_TIME_SIZE]; /* "" until the first event */
  char updated_at[CB2M_STATE_TIME_SIZE];    /* time of the event that last
                                               changed a published field */
  char *last_id; /* id of the last applied event; NULL before the first */
} cb2m_state;

/* Sets st to the empty state (broadcasting unknown). A zeroed struct is
 * NOT empty: its broadcasting would read as false. */
void cb2m_state_init(cb2m_state *st);
/* Frees what st owns and re-initialises it. st may be NULL. */
void cb2m_state_cleanup(cb2m_state *st);

/* Applies ev (see the SPEC table):
 *   broadcast_start: broadcasting true, viewers 0, session_tokens 0;
 *   broadcast_stop: broadcasting false, viewers 0;
 *   room_subject_change: subject;  user_enter: viewers + 1;
 *   user_leave: viewers - 1, never below 0;
 *   tip: session_tokens + tokens, last_tip {tokens, username (NULL when
 *   anonymous unless expose_anon), is_anon, message without "| ", at};
 *   every applied event: last_id, last_event_at.
 * An event whose id is unparsable or not after st->last_id is ignored
 * (returns CBEV_OK, *changed untouched). Otherwise ORs CB2M_CHG_* bits
 * into *changed (a tip always sets SESSION_TOKENS and LAST_TIP). Returns
 * CBEV_OK, or CBEV_ENOMEM (errno ENOMEM; st is left as it was and
 * last_id is not moved, so the event may be applied again). */
int cb2m_state_apply(cb2m_state *st, const cbev_event *ev, int expose_anon, unsigned *changed);

/* The payload of cb/<b>/state: cJSON's output, cJSON_free() it; NULL on
 * ENOMEM:
 * {"broadcasting":true|false|null,"subject":str|null,"viewers":N,
 *  "session_tokens":N,"last_tip":{"tokens":N,"username":str|null,
 *  "is_anon":bool,"message":str|null,"at":str|null}|null,
 *  "last_event_at":str|null,"updated_at":str|null}  (compact, this order). */
char *cb2m_state_json(const cb2m_state *st);

/* The payload of the small topic for one CB2M_CHG_ bit: "true"/"false"
 * (BROADCASTING), the subject text (SUBJECT), or a decimal integer written
 * into num (VIEWERS, SESSION_TOKENS). NULL when that value is not known yet
 * or bit has no small topic. The pointer lives as long as st and num. */
const char *cb2m_state_value(const cb2m_state *st, unsigned bit, char num[32]);
/* The topic level below the broadcaster for that bit ("state/subject"),
 * NULL when the bit has no small topic. Static. */
const char *cb2m_state_topic_level(unsigned bit);

/* Room for "<name>.state" of any valid name. */
#define CB2M_STATE_FILE_MAX (CB2M_NAME_MAX + 16)
/* The state file's name in state_dir for broadcaster name:
 * "<name>.state". Returns CBEV_OK; CBEV_EINVAL (errno EINVAL) when name
 * does not pass cb2m_name_valid(); CBEV_ETOOBIG (errno ENAMETOOLONG) when
 * it does not fit size. */
int cb2m_state_file_name(char *file, size_t size, const char *name);
/* What a state file holds (the state JSON plus "last_id"): cJSON's
 * output, cJSON_free() it; NULL (errno ENOMEM) when out of memory. */
char *cb2m_state_format(const cb2m_state *st);
/* Writes "<dir>/<name>.state" atomically (mode 0600): the state JSON plus
 * "last_id". Returns CBEV_OK; CBEV_EINVAL (errno EINVAL) for a NULL dir or
 * a name cb2m_name_valid() refuses; CBEV_ENOMEM (errno ENOMEM); CBEV_EIO
 * (errno: ENAMETOOLONG, or the file system's error). */
int cb2m_state_save(const char *dir, const char *name, const cb2m_state *st);
/* Loads "<dir>/<name>.state" into st, which must be initialised (init,
 * cleanup or an earlier load): its old content is freed first. Returns
 *   CBEV_OK         the state was read;
 *   CBEV_ENOTFOUND  no state file: st is empty;
 *   CBEV_EPARSE     the file is not the JSON cb2m_state_save() writes
 *                   (wrong types, negative or non-integer counts, an
 *                   unparsable last_id, truncated text, over
 *                   CB2M_STATE_MAX_BYTES): it was set aside, *aside is its
 *                   new name (free() it; aside may be NULL);
 *   CBEV_EIO        it exists but cannot be read, or cannot be set aside
 *                   (errno says why);
 *   CBEV_ENOMEM, CBEV_EINVAL (a NULL dir or an invalid name; errno set).
 * On every result but CBEV_OK st is the empty state. */
int cb2m_state_load(const char *dir, const char *name, cb2m_state *st, char **aside);

#endif

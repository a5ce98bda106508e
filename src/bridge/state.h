/*
 * state.h: the derived state of one broadcaster (SPEC topics cb/<b>/state
 * and cb/<b>/state/...), kept across restarts in "<state_dir>/<name>.state".
 *
 * cb2m_state_apply() ignores events whose id is not after the last one
 * applied, so events fetched again after a crash never count twice.
 */
#ifndef CB2M_STATE_H
#define CB2M_STATE_H

#include <stdint.h>

#include "cbevents/event.h"

#define CB2M_CHG_BROADCASTING 0x01u
#define CB2M_CHG_SUBJECT 0x02u
#define CB2M_CHG_VIEWERS 0x04u
#define CB2M_CHG_SESSION_TOKENS 0x08u
#define CB2M_CHG_LAST_TIP 0x10u
#define CB2M_CHG_LAST_EVENT 0x20u
#define CB2M_CHG_ALL 0x3fu

typedef struct cb2m_state {
  cbev_tristate broadcasting; /* CBEV_UNSET until known */
  char *subject;              /* NULL until known */
  int64_t viewers;            /* approximate, never below 0 */
  int64_t session_tokens;     /* since broadcast_start */
  int has_last_tip;
  int64_t last_tip_tokens;
  int last_tip_is_anon;
  char *last_tip_username; /* NULL for anonymous tips unless exposed */
  char *last_tip_message;  /* "| " removed */
  char last_tip_at[32];
  char last_event_at[32];  /* "" until the first event */
  char updated_at[32];
  char *last_id;           /* last applied event id */
} cb2m_state;

void cb2m_state_cleanup(cb2m_state *st);
/* Applies ev; sets CB2M_CHG_* bits in *changed. Returns 0, -1 on ENOMEM. */
int cb2m_state_apply(cb2m_state *st, const cbev_event *ev, int expose_anon, unsigned *changed);
/* The JSON of cb/<b>/state (malloc'd), NULL on ENOMEM. */
char *cb2m_state_json(const cb2m_state *st);

enum { CB2M_STATE_NOT_FOUND = 0, CB2M_STATE_FOUND = 1, CB2M_STATE_CORRUPT = 2,
       CB2M_STATE_ERROR = -1 };
int cb2m_state_save(const char *dir, const char *name, const cb2m_state *st);
/* Loads into a zeroed/cleaned st; CORRUPT sets the file aside (*aside). */
int cb2m_state_load(const char *dir, const char *name, cb2m_state *st, char **aside);

#endif

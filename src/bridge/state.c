/*
 * state.c: derived state transitions, its JSON, and its file. See state.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <cjson/cJSON.h>

#include "cbevents/normalize.h"
#include "fsutil.h"
#include "state.h"

#define STATE_MAX_BYTES (1024 * 1024)

void cb2m_state_cleanup(cb2m_state *st) {
  free(st->subject);
  free(st->last_tip_username);
  free(st->last_tip_message);
  free(st->last_id);
  memset(st, 0, sizeof *st);
  st->broadcasting = CBEV_UNSET;
}

static void now_iso(char *buf, size_t size) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  cbev_format_timestamp((unsigned long long)tv.tv_sec * 1000ull + (unsigned long long)tv.tv_usec / 1000ull,
                        buf, size);
}

/* Replaces *slot with a copy of value; returns 1 when it changed. */
static int set_str(char **slot, const char *value, int *oom) {
  char *copy;

  if ((*slot == NULL && value == NULL) || (*slot && value && strcmp(*slot, value) == 0))
    return 0;
  copy = value ? strdup(value) : NULL;
  if (value && !copy) {
    *oom = 1;
    return 0;
  }
  free(*slot);
  *slot = copy;
  return 1;
}

int cb2m_state_apply(cb2m_state *st, const cbev_event *ev, int expose_anon, unsigned *changed) {
  const char *id = cbev_event_id(ev);
  unsigned chg = 0;
  int oom = 0;
  cbev_id pid;

  if (st->last_id && cbev_id_cmp_str(id, st->last_id) <= 0)
    return 0; /* already counted before a restart */
  switch (cbev_event_get_type(ev)) {
  case CBEV_EVENT_BROADCAST_START:
  case CBEV_EVENT_BROADCAST_STOP: {
    cbev_tristate on = cbev_event_get_type(ev) == CBEV_EVENT_BROADCAST_START ? CBEV_TRUE : CBEV_FALSE;
    if (st->broadcasting != on) {
      st->broadcasting = on;
      chg |= CB2M_CHG_BROADCASTING;
    }
    if (st->viewers != 0) {
      st->viewers = 0;
      chg |= CB2M_CHG_VIEWERS;
    }
    if (on == CBEV_TRUE && st->session_tokens != 0) {
      st->session_tokens = 0;
      chg |= CB2M_CHG_SESSION_TOKENS;
    }
    break;
  }
  case CBEV_EVENT_ROOM_SUBJECT_CHANGE:
    if (cbev_event_subject(ev) && set_str(&st->subject, cbev_event_subject(ev), &oom))
      chg |= CB2M_CHG_SUBJECT;
    break;
  case CBEV_EVENT_USER_ENTER:
    st->viewers++;
    chg |= CB2M_CHG_VIEWERS;
    break;
  case CBEV_EVENT_USER_LEAVE:
    if (st->viewers > 0) {
      st->viewers--;
      chg |= CB2M_CHG_VIEWERS;
    }
    break;
  case CBEV_EVENT_TIP: {
    const cbev_tip *tip = cbev_event_tip(ev);
    const cbev_user *u = cbev_event_user(ev);
    const char *msg = tip ? tip->message : NULL;
    int anon = tip && tip->is_anon == CBEV_TRUE;
    if (!tip)
      break;
    if (msg && strncmp(msg, "| ", 2) == 0)
      msg += 2;
    st->session_tokens += tip->tokens > 0 ? tip->tokens : 0;
    st->has_last_tip = 1;
    st->last_tip_tokens = tip->tokens;
    st->last_tip_is_anon = anon;
    set_str(&st->last_tip_username, (u && (!anon || expose_anon)) ? u->username : NULL, &oom);
    set_str(&st->last_tip_message, msg, &oom);
    if (cbev_event_parsed_id(ev, &pid) == 0)
      cbev_format_timestamp(pid.ms, st->last_tip_at, sizeof st->last_tip_at);
    chg |= CB2M_CHG_SESSION_TOKENS | CB2M_CHG_LAST_TIP;
    break;
  }
  default:
    break;
  }
  if (oom)
    return -1;
  if (set_str(&st->last_id, id, &oom), oom)
    return -1;
  if (cbev_event_parsed_id(ev, &pid) == 0)
    cbev_format_timestamp(pid.ms, st->last_event_at, sizeof st->last_event_at);
  chg |= CB2M_CHG_LAST_EVENT;
  now_iso(st->updated_at, sizeof st->updated_at);
  *changed |= chg;
  return 0;
}

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static cJSON *to_json(const cb2m_state *st, int with_id) {
  cJSON *o = cJSON_CreateObject(), *tip;

  if (!o)
    return NULL;
  cJSON_AddItemToObject(o, "broadcasting", st->broadcasting == CBEV_UNSET
                                               ? cJSON_CreateNull()
                                               : cJSON_CreateBool(st->broadcasting == CBEV_TRUE));
  cJSON_AddItemToObject(o, "subject", str_or_null(st->subject));
  cJSON_AddNumberToObject(o, "viewers", (double)st->viewers);
  cJSON_AddNumberToObject(o, "session_tokens", (double)st->session_tokens);
  if (st->has_last_tip) {
    tip = cJSON_AddObjectToObject(o, "last_tip");
    cJSON_AddNumberToObject(tip, "tokens", (double)st->last_tip_tokens);
    cJSON_AddItemToObject(tip, "username", str_or_null(st->last_tip_username));
    cJSON_AddBoolToObject(tip, "is_anon", st->last_tip_is_anon);
    cJSON_AddItemToObject(tip, "message", str_or_null(st->last_tip_message));
    cJSON_AddItemToObject(tip, "at", str_or_null(st->last_tip_at[0] ? st->last_tip_at : NULL));
  } else {
    cJSON_AddNullToObject(o, "last_tip");
  }
  cJSON_AddItemToObject(o, "last_event_at", str_or_null(st->last_event_at[0] ? st->last_event_at : NULL));
  cJSON_AddItemToObject(o, "updated_at", str_or_null(st->updated_at[0] ? st->updated_at : NULL));
  if (with_id)
    cJSON_AddItemToObject(o, "last_id", str_or_null(st->last_id));
  return o;
}

char *cb2m_state_json(const cb2m_state *st) {
  cJSON *o = to_json(st, 0);
  char *text = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  return text;
}

int cb2m_state_save(const char *dir, const char *name, const cb2m_state *st) {
  char file[128];
  cJSON *o = to_json(st, 1);
  char *text = o ? cJSON_PrintUnformatted(o) : NULL;
  int rc = -1;

  snprintf(file, sizeof file, "%s.state", name);
  if (text)
    rc = cb2m_write_atomic(dir, file, text, strlen(text), 0600);
  else
    errno = ENOMEM;
  cJSON_free(text);
  cJSON_Delete(o);
  return rc;
}

static int copy_str(const cJSON *o, const char *key, char **slot) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (cJSON_IsNull(v) || !v)
    return 0;
  if (!cJSON_IsString(v))
    return -1;
  return (*slot = strdup(v->valuestring)) ? 0 : -1;
}

static int copy_iso(const cJSON *o, const char *key, char *buf, size_t size) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsString(v) || strlen(v->valuestring) >= size)
    return -1;
  strcpy(buf, v->valuestring);
  return 0;
}

int cb2m_state_load(const char *dir, const char *name, cb2m_state *st, char **aside) {
  char path[4096];
  char *text = NULL;
  size_t len;
  cJSON *o = NULL;
  const cJSON *b, *vw, *tk, *tip;
  int rc;

  cb2m_state_cleanup(st);
  if (aside)
    *aside = NULL;
  snprintf(path, sizeof path, "%s/%s.state", dir, name);
  if (cb2m_read_file(path, STATE_MAX_BYTES, &text, &len) != 0) {
    if (errno == ENOENT)
      return CB2M_STATE_NOT_FOUND;
    if (errno != EFBIG)
      return CB2M_STATE_ERROR;
    goto corrupt;
  }
  o = cJSON_ParseWithLength(text, len);
  b = cJSON_GetObjectItemCaseSensitive(o, "broadcasting");
  vw = cJSON_GetObjectItemCaseSensitive(o, "viewers");
  tk = cJSON_GetObjectItemCaseSensitive(o, "session_tokens");
  tip = cJSON_GetObjectItemCaseSensitive(o, "last_tip");
  if (!cJSON_IsObject(o) || !(cJSON_IsBool(b) || cJSON_IsNull(b)) || !cJSON_IsNumber(vw) ||
      !cJSON_IsNumber(tk) || !(cJSON_IsObject(tip) || cJSON_IsNull(tip)))
    goto corrupt;
  st->broadcasting = cJSON_IsNull(b) ? CBEV_UNSET : (cJSON_IsTrue(b) ? CBEV_TRUE : CBEV_FALSE);
  st->viewers = vw->valuedouble > 0 ? (int64_t)vw->valuedouble : 0;
  st->session_tokens = tk->valuedouble > 0 ? (int64_t)tk->valuedouble : 0;
  if (copy_str(o, "subject", &st->subject) || copy_str(o, "last_id", &st->last_id) ||
      copy_iso(o, "last_event_at", st->last_event_at, sizeof st->last_event_at) ||
      copy_iso(o, "updated_at", st->updated_at, sizeof st->updated_at))
    goto corrupt;
  if (cJSON_IsObject(tip)) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(tip, "tokens");
    if (!cJSON_IsNumber(t) || copy_str(tip, "username", &st->last_tip_username) ||
        copy_str(tip, "message", &st->last_tip_message) ||
        copy_iso(tip, "at", st->last_tip_at, sizeof st->last_tip_at))
      goto corrupt;
    st->has_last_tip = 1;
    st->last_tip_tokens = (int64_t)t->valuedouble;
    st->last_tip_is_anon = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tip, "is_anon"));
  }
  rc = CB2M_STATE_FOUND;
  goto out;
corrupt:
  cb2m_state_cleanup(st);
  rc = cb2m_set_aside(path, aside) == 0 ? CB2M_STATE_CORRUPT : CB2M_STATE_ERROR;
out:
  cJSON_Delete(o);
  free(text);
  return rc;
}

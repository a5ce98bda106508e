/*
 * state.c: derived state per broadcaster: its transitions, its JSON for
 * cb/<b>/state and the small state/... topics, and its file in state_dir.
 * Every transition allocates what it needs before it changes anything, so
 * an allocation failure leaves the state as it was. See state.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/error.h"
#include "cbevents/normalize.h"
#include "fsutil.h"
#include "state.h"
#include "topics.h"

/* Counts read back from a file must be integers a double holds exactly. */
#define JSON_INT_MAX 9007199254740992.0

void cb2m_state_init(cb2m_state *st) {
  memset(st, 0, sizeof *st);
  st->broadcasting = CBEV_UNSET;
}

void cb2m_state_cleanup(cb2m_state *st) {
  if (!st)
    return;
  free(st->subject);
  free(st->last_tip_username);
  free(st->last_tip_message);
  free(st->last_id);
  cb2m_state_init(st);
}

/* Copies s (NULL stays NULL) as valid UTF-8: upstream text goes out as
 * the raw payload of state/subject and inside the state JSON, which must
 * be UTF-8 like every payload. Returns CBEV_OK or CBEV_ENOMEM. */
static int dup_opt(const char *s, char **out) {
  size_t n;

  *out = NULL;
  if (!s)
    return CBEV_OK;
  n = cbev_utf8_repair(NULL, 0, s);
  if (!(*out = malloc(n + 1)))
    return CBEV_ENOMEM;
  cbev_utf8_repair(*out, n + 1, s);
  return CBEV_OK;
}

static void replace(char **slot, char *value) {
  free(*slot);
  *slot = value;
}

static int64_t add_saturating(int64_t a, int64_t b) {
  return b > 0 && a > INT64_MAX - b ? INT64_MAX : a + b;
}

int cb2m_state_apply(cb2m_state *st, const cbev_event *ev, int expose_anon, unsigned *changed) {
  const char *id = cbev_event_id(ev);
  cbev_event_type type = cbev_event_get_type(ev);
  char *new_id = NULL, *subject = NULL, *username = NULL, *message = NULL;
  const cbev_tip *tip = type == CBEV_EVENT_TIP ? cbev_event_tip(ev) : NULL;
  char at[CB2M_STATE_TIME_SIZE] = "";
  unsigned chg = CB2M_CHG_LAST_EVENT;
  cbev_id pid;

  /* Only events that can be ordered can be counted exactly once. */
  if (cbev_event_parsed_id(ev, &pid) != CBEV_OK)
    return CBEV_OK;
  if (st->last_id && cbev_id_cmp_str(id, st->last_id) <= 0)
    return CBEV_OK; /* counted before: a re-polled batch after a restart */
  if (cbev_format_timestamp(pid.ms, at, sizeof at) != CBEV_OK)
    at[0] = '\0';

  /* Allocate first, change later. */
  if (dup_opt(id, &new_id) != CBEV_OK)
    goto oom;
  if (type == CBEV_EVENT_ROOM_SUBJECT_CHANGE && dup_opt(cbev_event_subject(ev), &subject) != CBEV_OK)
    goto oom;
  if (tip) {
    const cbev_user *u = cbev_event_user(ev);
    const char *msg = tip->message;
    int anon = cbev_event_is_anonymous(ev); /* the library's rule: fails closed */
    if (msg && strncmp(msg, "| ", 2) == 0)
      msg += 2;
    if (dup_opt(u && (!anon || expose_anon) ? u->username : NULL, &username) != CBEV_OK ||
        dup_opt(msg, &message) != CBEV_OK)
      goto oom;
  }

  switch (type) {
  case CBEV_EVENT_BROADCAST_START:
  case CBEV_EVENT_BROADCAST_STOP:
    /* Published on every start/stop (SPEC), even when it was known. */
    st->broadcasting = type == CBEV_EVENT_BROADCAST_START ? CBEV_TRUE : CBEV_FALSE;
    chg |= CB2M_CHG_BROADCASTING;
    if (st->viewers != 0) {
      st->viewers = 0;
      chg |= CB2M_CHG_VIEWERS;
    }
    if (type == CBEV_EVENT_BROADCAST_START) {
      st->session_tokens = 0;
      chg |= CB2M_CHG_SESSION_TOKENS;
    }
    break;
  case CBEV_EVENT_ROOM_SUBJECT_CHANGE:
    if (subject) {
      replace(&st->subject, subject);
      subject = NULL;
      chg |= CB2M_CHG_SUBJECT;
    }
    break;
  case CBEV_EVENT_USER_ENTER:
    st->viewers = add_saturating(st->viewers, 1);
    chg |= CB2M_CHG_VIEWERS;
    break;
  case CBEV_EVENT_USER_LEAVE:
    /* Leaves of users who entered before we started watching. */
    if (st->viewers > 0) {
      st->viewers--;
      chg |= CB2M_CHG_VIEWERS;
    }
    break;
  case CBEV_EVENT_TIP:
    if (!tip)
      break;
    st->session_tokens = add_saturating(st->session_tokens, tip->tokens > 0 ? tip->tokens : 0);
    st->has_last_tip = 1;
    st->last_tip_tokens = tip->tokens;
    st->last_tip_is_anon = cbev_event_is_anonymous(ev);
    replace(&st->last_tip_username, username);
    replace(&st->last_tip_message, message);
    username = message = NULL;
    memcpy(st->last_tip_at, at, sizeof at);
    chg |= CB2M_CHG_SESSION_TOKENS | CB2M_CHG_LAST_TIP;
    break;
  default:
    break;
  }
  replace(&st->last_id, new_id);
  memcpy(st->last_event_at, at, sizeof at);
  if (chg & ~CB2M_CHG_LAST_EVENT)
    memcpy(st->updated_at, at, sizeof at);
  *changed |= chg;
  return CBEV_OK;
oom:
  free(new_id);
  free(subject);
  free(username);
  free(message);
  errno = ENOMEM;
  return CBEV_ENOMEM;
}

/* ---- JSON ---------------------------------------------------------------- */

/* Adds item under key; on any failure deletes item and clears *ok. */
static void add(cJSON *o, const char *key, cJSON *item, int *ok) {
  if (!item || !o || !cJSON_AddItemToObject(o, key, item)) {
    cJSON_Delete(item);
    *ok = 0;
  }
}

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static cJSON *time_or_null(const char *t) { return str_or_null(t[0] ? t : NULL); }

/* Exact int64 text: cJSON's doubles would round above 2^53. */
static cJSON *integer(int64_t v) {
  char num[32];
  snprintf(num, sizeof num, "%lld", (long long)v);
  return cJSON_CreateRaw(num);
}

static cJSON *to_json(const cb2m_state *st, int with_id) {
  cJSON *o = cJSON_CreateObject(), *tip = NULL;
  int ok = o != NULL;

  add(o, "broadcasting",
      st->broadcasting == CBEV_UNSET ? cJSON_CreateNull()
                                     : cJSON_CreateBool(st->broadcasting == CBEV_TRUE),
      &ok);
  add(o, "subject", str_or_null(st->subject), &ok);
  add(o, "viewers", integer(st->viewers), &ok);
  add(o, "session_tokens", integer(st->session_tokens), &ok);
  if (st->has_last_tip) {
    tip = cJSON_CreateObject();
    ok = ok && tip != NULL;
    add(tip, "tokens", integer(st->last_tip_tokens), &ok);
    add(tip, "username", str_or_null(st->last_tip_username), &ok);
    add(tip, "is_anon", cJSON_CreateBool(st->last_tip_is_anon), &ok);
    add(tip, "message", str_or_null(st->last_tip_message), &ok);
    add(tip, "at", time_or_null(st->last_tip_at), &ok);
    add(o, "last_tip", tip, &ok);
  } else {
    add(o, "last_tip", cJSON_CreateNull(), &ok);
  }
  add(o, "last_event_at", time_or_null(st->last_event_at), &ok);
  add(o, "updated_at", time_or_null(st->updated_at), &ok);
  if (with_id)
    add(o, "last_id", str_or_null(st->last_id), &ok);
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* to_json() printed: cJSON's output, or NULL (errno ENOMEM). */
static char *print(const cb2m_state *st, int with_id) {
  cJSON *o = to_json(st, with_id);
  char *text = o ? cJSON_PrintUnformatted(o) : NULL;

  cJSON_Delete(o);
  if (!text)
    errno = ENOMEM;
  return text;
}

char *cb2m_state_json(const cb2m_state *st) {
  return print(st, 0);
}

const char *cb2m_state_value(const cb2m_state *st, unsigned bit, char num[32]) {
  switch (bit) {
  case CB2M_CHG_BROADCASTING:
    return st->broadcasting == CBEV_UNSET ? NULL
                                          : (st->broadcasting == CBEV_TRUE ? "true" : "false");
  case CB2M_CHG_SUBJECT:
    return st->subject;
  case CB2M_CHG_VIEWERS:
    snprintf(num, 32, "%lld", (long long)st->viewers);
    return num;
  case CB2M_CHG_SESSION_TOKENS:
    snprintf(num, 32, "%lld", (long long)st->session_tokens);
    return num;
  default:
    return NULL;
  }
}

const char *cb2m_state_topic_level(unsigned bit) {
  switch (bit) {
  case CB2M_CHG_BROADCASTING:
    return "state/broadcasting";
  case CB2M_CHG_SUBJECT:
    return "state/subject";
  case CB2M_CHG_VIEWERS:
    return "state/viewers";
  case CB2M_CHG_SESSION_TOKENS:
    return "state/session_tokens";
  default:
    return NULL;
  }
}

/* ---- file ---------------------------------------------------------------- */

int cb2m_state_file_name(char *file, size_t size, const char *name) {
  return cb2m_name_file(file, size, name, ".state");
}

/* "<dir>/<name>.state". Returns CBEV_OK, CBEV_EINVAL or CBEV_EIO (too
 * long), errno set. */
static int state_path(char *buf, size_t size, const char *dir, const char *name) {
  char file[CB2M_STATE_FILE_MAX];
  int n, rc;

  if (!dir) {
    errno = EINVAL;
    return CBEV_EINVAL;
  }
  if ((rc = cb2m_state_file_name(file, sizeof file, name)) != CBEV_OK)
    return rc == CBEV_ETOOBIG ? CBEV_EIO : rc;
  n = snprintf(buf, size, "%s/%s", dir, file);
  if (n < 0 || (size_t)n >= size) {
    errno = ENAMETOOLONG;
    return CBEV_EIO;
  }
  return CBEV_OK;
}

char *cb2m_state_format(const cb2m_state *st) { return print(st, 1); }

int cb2m_state_save(const char *dir, const char *name, const cb2m_state *st) {
  char path[CB2M_PATH_MAX];
  char *text = NULL;
  int rc;

  if ((rc = state_path(path, sizeof path, dir, name)) != CBEV_OK)
    goto out;
  text = cb2m_state_format(st);
  if (!text) {
    rc = CBEV_ENOMEM;
    goto out;
  }
  /* The names are valid here: any failure is the disk's. */
  rc = cb2m_write_atomic(dir, strrchr(path, '/') + 1, text, strlen(text), 0600) == CBEV_OK
           ? CBEV_OK
           : CBEV_EIO;
out:
  cJSON_free(text);
  return rc;
}

/* The readers of the file's fields return CBEV_OK, CBEV_EPARSE for a
 * missing key or a wrong type or value, or CBEV_ENOMEM. */

/* Key present with a string or null: copies it into *out (NULL for null). */
static int read_str(const cJSON *o, const char *key, char **out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

  if (cJSON_IsNull(v))
    return CBEV_OK;
  if (!cJSON_IsString(v))
    return CBEV_EPARSE;
  return (*out = strdup(v->valuestring)) ? CBEV_OK : CBEV_ENOMEM;
}

static int read_time(const cJSON *o, const char *key, char *buf) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

  if (cJSON_IsNull(v))
    return CBEV_OK;
  if (!cJSON_IsString(v) || strlen(v->valuestring) >= CB2M_STATE_TIME_SIZE)
    return CBEV_EPARSE;
  strcpy(buf, v->valuestring);
  return CBEV_OK;
}

static int read_int(const cJSON *o, const char *key, double min, int64_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  double d;

  if (!cJSON_IsNumber(v))
    return CBEV_EPARSE;
  d = v->valuedouble;
  /* The negated comparisons also refuse NaN. */
  if (!(d >= min) || !(d <= JSON_INT_MAX) || (double)(int64_t)d != d)
    return CBEV_EPARSE;
  *out = (int64_t)d;
  return CBEV_OK;
}

/* Fills st from the parsed file. */
static int from_json(const cJSON *o, cb2m_state *st) {
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "broadcasting");
  const cJSON *tip = cJSON_GetObjectItemCaseSensitive(o, "last_tip");
  cbev_id id;
  int rc;

  if (!cJSON_IsObject(o) || !(cJSON_IsBool(b) || cJSON_IsNull(b)) ||
      !(cJSON_IsObject(tip) || cJSON_IsNull(tip)))
    return CBEV_EPARSE;
  st->broadcasting = cJSON_IsNull(b) ? CBEV_UNSET : (cJSON_IsTrue(b) ? CBEV_TRUE : CBEV_FALSE);
  if (read_int(o, "viewers", 0, &st->viewers) || read_int(o, "session_tokens", 0, &st->session_tokens))
    return CBEV_EPARSE;
  if ((rc = read_str(o, "subject", &st->subject)) != CBEV_OK ||
      (rc = read_str(o, "last_id", &st->last_id)) != CBEV_OK)
    return rc;
  if (st->last_id && cbev_id_parse(st->last_id, &id) != CBEV_OK)
    return CBEV_EPARSE;
  if (read_time(o, "last_event_at", st->last_event_at) || read_time(o, "updated_at", st->updated_at))
    return CBEV_EPARSE;
  if (cJSON_IsObject(tip)) {
    if (read_int(tip, "tokens", -JSON_INT_MAX, &st->last_tip_tokens) ||
        !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(tip, "is_anon")) ||
        read_time(tip, "at", st->last_tip_at))
      return CBEV_EPARSE;
    if ((rc = read_str(tip, "username", &st->last_tip_username)) != CBEV_OK ||
        (rc = read_str(tip, "message", &st->last_tip_message)) != CBEV_OK)
      return rc;
    st->last_tip_is_anon = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tip, "is_anon"));
    st->has_last_tip = 1;
  }
  return CBEV_OK;
}

int cb2m_state_load(const char *dir, const char *name, cb2m_state *st, char **aside) {
  char path[CB2M_PATH_MAX];
  char *text = NULL;
  size_t len = 0;
  cJSON *o = NULL;
  int rc, got;

  cb2m_state_cleanup(st);
  if (aside)
    *aside = NULL;
  if ((rc = state_path(path, sizeof path, dir, name)) != CBEV_OK)
    goto out;
  /* CBEV_ENOTFOUND, CBEV_ENOMEM and CBEV_EIO pass as they are: a file
   * that exists but cannot be read is never taken for a missing one. */
  rc = cb2m_read_file(path, CB2M_STATE_MAX_BYTES, &text, &len);
  if (rc == CBEV_ETOOBIG)
    goto corrupt;
  if (rc != CBEV_OK)
    goto out;
  if (strlen(text) != len)
    goto corrupt; /* an embedded NUL would hide trailing bytes */
  o = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
  got = o ? from_json(o, st) : CBEV_EPARSE;
  if (got == CBEV_ENOMEM) {
    cb2m_state_cleanup(st);
    errno = ENOMEM;
    rc = CBEV_ENOMEM;
    goto out;
  }
  if (got != CBEV_OK)
    goto corrupt;
  rc = CBEV_OK;
  goto out;
corrupt:
  cb2m_state_cleanup(st);
  rc = cb2m_set_aside(path, aside) == CBEV_OK ? CBEV_EPARSE : CBEV_EIO;
out:
  cJSON_Delete(o);
  free(text);
  return rc;
}

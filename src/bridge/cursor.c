/*
 * cursor.c: cursor files, the bridge's promise of "nothing lost, nothing
 * twice" across restarts (SPEC 5, Delivery), kept without a secret at
 * rest (SPEC 2). The bridge saves a cursor only after the broker
 * acknowledged every event up to it; here it is only written, read back
 * defensively, and applied to the configured feed URL. See cursor.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cursor.h"
#include "fsutil.h"
#include "topics.h"

#define SCRUB_MASK "/***"

void cb2m_cursor_cleanup(cb2m_cursor *c) {
  if (!c)
    return;
  free(c->i);
  free(c->last_id);
  memset(c, 0, sizeof *c);
}

int cb2m_cursor_i_valid(const char *i) {
  size_t n;

  if (!i || !*i)
    return 0;
  for (n = 0; i[n]; n++) {
    unsigned char ch = (unsigned char)i[n];
    if (n >= CB2M_CURSOR_I_MAX)
      return 0;
    if (ch == '%') {
      if (!isxdigit((unsigned char)i[n + 1]) || !isxdigit((unsigned char)i[n + 2]))
        return 0;
      n += 2;
      continue;
    }
    if (!(isalnum(ch) && ch < 0x80) && ch != '-' && ch != '.' && ch != '_' && ch != '~')
      return 0;
  }
  return n <= CB2M_CURSOR_I_MAX;
}

static int id_valid(const char *id) {
  cbev_id parsed;
  return id && cbev_id_parse(id, &parsed) == CBEV_OK;
}

/* "<name>.cursor" into file (at least CB2M_NAME_MAX + 8 bytes). */
int cb2m_cursor_file_name(char *file, size_t size, const char *name) {
  return cb2m_name_file(file, size, name, ".cursor");
}

char *cb2m_cursor_format(const char *i, const char *last_id) {
  cJSON *o = NULL;
  char *text = NULL;

  if ((!i && !last_id) || (i && !cb2m_cursor_i_valid(i)) || (last_id && !id_valid(last_id))) {
    errno = EINVAL;
    return NULL;
  }
  o = cJSON_CreateObject();
  if (o && cJSON_AddNumberToObject(o, "version", CB2M_CURSOR_VERSION) &&
      (!i || cJSON_AddStringToObject(o, "i", i)) &&
      (!last_id || cJSON_AddStringToObject(o, "last_id", last_id)))
    text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!text)
    errno = ENOMEM;
  return text;
}

int cb2m_cursor_save(const char *dir, const char *name, const char *i, const char *last_id) {
  char file[CB2M_CURSOR_FILE_MAX];
  char *text = NULL;
  int rc = CBEV_EINVAL;

  if (!dir || !*dir || cb2m_cursor_file_name(file, sizeof file, name) != CBEV_OK) {
    if (errno == ENAMETOOLONG)
      rc = CBEV_EIO;
    goto out;
  }
  text = cb2m_cursor_format(i, last_id);
  if (!text) {
    rc = errno == ENOMEM ? CBEV_ENOMEM : CBEV_EINVAL;
    goto out;
  }
  /* dir and file are valid names here: any failure is the disk's. */
  rc = cb2m_write_atomic(dir, file, text, strlen(text), 0600) == CBEV_OK ? CBEV_OK : CBEV_EIO;
out:
  if (rc == CBEV_EINVAL)
    errno = EINVAL;
  cJSON_free(text);
  return rc;
}

/* Appends the name of an ignored key to c->ignored, shown safely. */
static void note_ignored(cb2m_cursor *c, const char *key) {
  size_t n = strlen(c->ignored), room = sizeof c->ignored;

  if (n + 2 >= room)
    return;
  if (n)
    c->ignored[n++] = ',';
  for (size_t k = 0; key[k] && k < 32 && n + 1 < room; k++) {
    unsigned char ch = (unsigned char)key[k];
    c->ignored[n++] = (ch < 0x80 && (isalnum(ch) || ch == '_' || ch == '-')) ? (char)ch : '?';
  }
  c->ignored[n] = '\0';
}

static int corrupt(cb2m_cursor *c, const char *why) {
  snprintf(c->why, sizeof c->why, "%s", why);
  return CBEV_EPARSE;
}

/* The one member named key, or NULL; *dup set when it appears twice (a
 * second "i" must not decide what the first one meant). */
static const cJSON *member(const cJSON *root, const char *key, int *dup) {
  const cJSON *found = NULL;

  for (const cJSON *m = root->child; m; m = m->next) {
    if (!m->string || strcmp(m->string, key) != 0)
      continue;
    if (found)
      *dup = 1;
    found = m;
  }
  return found;
}

static char *dup_or_null(const char *s, int *nomem) {
  char *d;

  if (!s)
    return NULL;
  d = strdup(s);
  if (!d)
    *nomem = 1;
  return d;
}

int cb2m_cursor_parse(const char *text, size_t len, cb2m_cursor *out) {
  static const char *const known[][3] = {{"version", "url", "last_id"},
                                         {"version", "i", "last_id"}};
  const cJSON *v, *u = NULL, *i = NULL, *l;
  cJSON *root = NULL;
  char *from_url = NULL;
  int rc = CBEV_ENOMEM, dup = 0, version, nomem = 0;

  memset(out, 0, sizeof *out);
  /* An embedded NUL would hide trailing bytes from the parser. */
  if (!text || strlen(text) != len) {
    rc = corrupt(out, "not JSON text");
    goto out;
  }
  /* The length includes the NUL so that cJSON checks nothing follows. */
  root = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
  if (!cJSON_IsObject(root)) {
    rc = corrupt(out, "not a JSON object");
    goto out;
  }
  v = member(root, "version", &dup);
  if (!cJSON_IsNumber(v) || (v->valuedouble != 1 && v->valuedouble != CB2M_CURSOR_VERSION)) {
    rc = corrupt(out, v ? "unknown version" : "no version");
    goto out;
  }
  version = (int)v->valuedouble;
  for (const cJSON *m = root->child; m; m = m->next) {
    const char *const *k = known[version - 1];
    if (!m->string || (strcmp(m->string, k[0]) != 0 && strcmp(m->string, k[1]) != 0 &&
                       strcmp(m->string, k[2]) != 0))
      note_ignored(out, m->string ? m->string : "");
  }
  l = member(root, "last_id", &dup);
  if (version == 1)
    u = member(root, "url", &dup);
  else
    i = member(root, "i", &dup);
  if (dup) {
    rc = corrupt(out, "a key given twice");
    goto out;
  }
  if (l && (!cJSON_IsString(l) || !id_valid(l->valuestring))) {
    rc = corrupt(out, "last_id is not an event id");
    goto out;
  }
  if (version == 1) {
    /* A version-1 file always had both; only the URL's i= is kept. */
    if (!cJSON_IsString(u) || !u->valuestring[0] || !l) {
      rc = corrupt(out, "version 1 without url or last_id");
      goto out;
    }
    if ((rc = cb2m_cursor_i_of(u->valuestring, &from_url)) != CBEV_OK) {
      if (rc != CBEV_ENOMEM)
        rc = corrupt(out, "url does not parse");
      goto out;
    }
    if (from_url && !cb2m_cursor_i_valid(from_url)) {
      rc = corrupt(out, "i is not a cursor value");
      goto out;
    }
  } else {
    if (i && (!cJSON_IsString(i) || !cb2m_cursor_i_valid(i->valuestring))) {
      rc = corrupt(out, "i is not a cursor value");
      goto out;
    }
    if (!i && !l) {
      rc = corrupt(out, "neither i nor last_id");
      goto out;
    }
  }
  out->version = version;
  out->i = from_url ? from_url : dup_or_null(i ? i->valuestring : NULL, &nomem);
  from_url = NULL;
  out->last_id = dup_or_null(l ? l->valuestring : NULL, &nomem);
  if (nomem) {
    errno = ENOMEM;
    rc = CBEV_ENOMEM;
    goto out;
  }
  rc = CBEV_OK;
out:
  if (rc != CBEV_OK) {
    free(out->i);
    free(out->last_id);
    out->i = out->last_id = NULL;
    if (rc != CBEV_EPARSE)
      out->ignored[0] = '\0';
  }
  free(from_url);
  cJSON_Delete(root);
  return rc;
}

char *cb2m_cursor_scrub(const char *text, size_t len, size_t *out_len) {
  /* Each "://" adds at most strlen(SCRUB_MASK) bytes beyond what it hides. */
  size_t cap = len + (len / 3 + 1) * (sizeof SCRUB_MASK - 1) + 1, o = 0, k = 0;
  char *out = malloc(cap);

  if (!out)
    return NULL;
  while (k < len) {
    if (k + 3 <= len && memcmp(text + k, "://", 3) == 0) {
      memcpy(out + o, "://", 3);
      o += 3;
      k += 3;
      /* Keep the authority (scheme, host and port name no secret). */
      while (k < len && !strchr("/?#\"'\\ \t\r\n", text[k]) && (unsigned char)text[k] >= 0x20 &&
             text[k] != 0x7f)
        out[o++] = text[k++];
      if (k < len && strchr("/?#", text[k])) {
        while (k < len && !strchr("\"'\\ \t\r\n", text[k]) && (unsigned char)text[k] >= 0x20 &&
               text[k] != 0x7f)
          k++;
        memcpy(out + o, SCRUB_MASK, sizeof SCRUB_MASK - 1);
        o += sizeof SCRUB_MASK - 1;
      }
      continue;
    }
    out[o++] = text[k++];
  }
  out[o] = '\0';
  if (out_len)
    *out_len = o;
  return out;
}

/* Sets the corrupt file at path aside, then rewrites the copy without the
 * URL paths it held (a version-1 file's token). */
static int set_aside_scrubbed(const char *dir, const char *path, const char *text, size_t len,
                              char **aside) {
  size_t n = 0;
  char *clean = text ? cb2m_cursor_scrub(text, len, &n) : NULL;
  char *where = NULL;
  int rc = CBEV_ENOMEM;

  if (text && !clean) {
    errno = ENOMEM;
    goto out;
  }
  rc = CBEV_EIO;
  if (cb2m_set_aside(path, &where) != CBEV_OK)
    goto out;
  rc = CBEV_EPARSE;
  if (clean && where && (n != len || memcmp(clean, text, len) != 0)) {
    const char *base = strrchr(where, '/');
    /* A failed rewrite leaves the copy as it was: the file is still set
     * aside (it is never trusted), and the error is the caller's. */
    if (cb2m_write_atomic(dir, base ? base + 1 : where, clean, n, 0600) != CBEV_OK)
      rc = CBEV_EIO;
  }
  if (aside) {
    *aside = where;
    where = NULL;
  }
out:
  free(where);
  free(clean);
  return rc;
}

int cb2m_cursor_load(const char *dir, const char *name, cb2m_cursor *out, char **aside) {
  char file[CB2M_CURSOR_FILE_MAX], path[CB2M_PATH_MAX];
  char *text = NULL;
  size_t len = 0;
  int rc = CBEV_EINVAL, n;

  memset(out, 0, sizeof *out);
  if (aside)
    *aside = NULL;
  if (!dir) {
    errno = EINVAL;
    goto out;
  }
  if (cb2m_cursor_file_name(file, sizeof file, name) != CBEV_OK) {
    rc = errno == ENAMETOOLONG ? CBEV_EIO : CBEV_EINVAL;
    goto out;
  }
  rc = CBEV_EIO;
  n = snprintf(path, sizeof path, "%s/%s", dir, file);
  if (n < 0 || (size_t)n >= sizeof path) {
    errno = ENAMETOOLONG;
    goto out;
  }
  rc = cb2m_read_file(path, CB2M_CURSOR_MAX_BYTES, &text, &len);
  if (rc == CBEV_ETOOBIG) {
    /* Not a file the bridge wrote (it writes a few dozen bytes), so it
     * holds no URL of ours: set aside as it is. */
    corrupt(out, "larger than 64 KiB");
    rc = cb2m_set_aside(path, aside) == CBEV_OK ? CBEV_EPARSE : CBEV_EIO;
  }
  /* CBEV_ENOTFOUND, CBEV_ENOMEM and CBEV_EIO pass as they are: a file
   * that exists but cannot be read is never taken for a missing one. */
  if (rc != CBEV_OK)
    goto out;
  rc = cb2m_cursor_parse(text, len, out);
  if (rc == CBEV_EPARSE)
    rc = set_aside_scrubbed(dir, path, text, len, aside);
out:
  if (rc != CBEV_OK) {
    int saved = errno;
    free(out->i);
    free(out->last_id);
    out->i = out->last_id = NULL;
    errno = saved;
  }
  free(text);
  return rc;
}

/* The raw query of url into *query (curl_free() it; NULL when none).
 * Returns CBEV_OK, CBEV_EINVAL (errno EINVAL) or CBEV_ENOMEM (errno
 * ENOMEM). */
static int query_of(CURLU *h, const char *url, char **query) {
  CURLUcode uc;

  *query = NULL;
  if (!h) {
    errno = ENOMEM;
    return CBEV_ENOMEM;
  }
  uc = curl_url_set(h, CURLUPART_URL, url, 0);
  if (uc != CURLUE_OK) {
    errno = uc == CURLUE_OUT_OF_MEMORY ? ENOMEM : EINVAL;
    return uc == CURLUE_OUT_OF_MEMORY ? CBEV_ENOMEM : CBEV_EINVAL;
  }
  uc = curl_url_get(h, CURLUPART_QUERY, query, 0);
  if (uc == CURLUE_OUT_OF_MEMORY) {
    errno = ENOMEM;
    return CBEV_ENOMEM;
  }
  return CBEV_OK;
}

/* Length of the query parameter starting at p (up to '&' or the end). */
static size_t param_len(const char *p) {
  const char *amp = strchr(p, '&');
  return amp ? (size_t)(amp - p) : strlen(p);
}

int cb2m_cursor_i_of(const char *url, char **i) {
  CURLU *h = curl_url();
  char *query = NULL;
  int rc = CBEV_EINVAL;

  *i = NULL;
  if (!url) {
    errno = EINVAL;
    goto out;
  }
  if ((rc = query_of(h, url, &query)) != CBEV_OK)
    goto out;
  for (const char *p = query; p && *p;) {
    size_t n = param_len(p);
    if (n > 2 && p[0] == 'i' && p[1] == '=') {
      if (!(*i = strndup(p + 2, n - 2))) {
        errno = ENOMEM;
        rc = CBEV_ENOMEM;
        goto out;
      }
      break;
    }
    p += n;
    if (*p == '&')
      p++;
  }
  rc = CBEV_OK;
out:
  curl_free(query);
  curl_url_cleanup(h);
  return rc;
}

int cb2m_cursor_apply(const char *feed_url, const char *i, char **out) {
  CURLU *h = curl_url();
  char *query = NULL, *url = NULL, *built = NULL;
  size_t o;
  int rc = CBEV_EINVAL;

  *out = NULL;
  if (!feed_url || (i && !cb2m_cursor_i_valid(i))) {
    errno = EINVAL;
    goto out;
  }
  rc = CBEV_ENOMEM;
  if (!i) {
    if (!(*out = strdup(feed_url)))
      errno = ENOMEM;
    else
      rc = CBEV_OK;
    goto out;
  }
  if ((rc = query_of(h, feed_url, &query)) != CBEV_OK)
    goto out;
  rc = CBEV_ENOMEM;
  built = malloc(strlen(i) + 3 + (query ? strlen(query) + 1 : 0));
  if (!built) {
    errno = ENOMEM;
    goto out;
  }
  o = (size_t)sprintf(built, "i=%s", i);
  /* Every configured parameter but i= stays as it was (timeout= above
   * all: only the cursor carries over from a save, SPEC 5). */
  for (const char *p = query; p && *p;) {
    size_t n = param_len(p);
    if (n && !(n >= 2 && p[0] == 'i' && p[1] == '=') && !(n == 1 && p[0] == 'i')) {
      built[o++] = '&';
      memcpy(built + o, p, n);
      o += n;
    }
    p += n;
    if (*p == '&')
      p++;
  }
  built[o] = '\0';
  if (curl_url_set(h, CURLUPART_QUERY, built, 0) != CURLUE_OK ||
      curl_url_get(h, CURLUPART_URL, &url, 0) != CURLUE_OK) {
    errno = ENOMEM;
    goto out;
  }
  if (!(*out = strdup(url))) {
    errno = ENOMEM;
    goto out;
  }
  rc = CBEV_OK;
out:
  free(built);
  curl_free(url);
  curl_free(query);
  curl_url_cleanup(h);
  return rc;
}

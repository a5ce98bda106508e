/*
 * cursor.c: cursor files, the bridge's promise of "nothing lost, nothing
 * twice" across restarts (SPEC 5, Delivery). The bridge saves a cursor
 * only after the broker acknowledged every event up to it; here it is
 * only written and read back defensively. See cursor.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cursor.h"
#include "fsutil.h"
#include "topics.h"

#define CURSOR_VERSION 1

/* "<name>.cursor" into file (at least CB2M_NAME_MAX + 8 bytes). */
static int file_name(char *file, size_t size, const char *name) {
  int n;

  if (!cb2m_name_valid(name)) {
    errno = EINVAL;
    return -1;
  }
  n = snprintf(file, size, "%s.cursor", name);
  return n < 0 || (size_t)n >= size ? (errno = ENAMETOOLONG, -1) : 0;
}

int cb2m_cursor_save(const char *dir, const char *name, const char *url, const char *last_id) {
  char file[CB2M_NAME_MAX + 16];
  cbev_id id;
  cJSON *o = NULL;
  char *text = NULL;
  int rc = -1;

  if (!dir || file_name(file, sizeof file, name) != 0)
    goto out;
  if (!url || !*url || !last_id || cbev_id_parse(last_id, &id) != CBEV_OK) {
    errno = EINVAL;
    goto out;
  }
  errno = ENOMEM;
  o = cJSON_CreateObject();
  if (!o || !cJSON_AddNumberToObject(o, "version", CURSOR_VERSION) ||
      !cJSON_AddStringToObject(o, "url", url) || !cJSON_AddStringToObject(o, "last_id", last_id))
    goto out;
  text = cJSON_PrintUnformatted(o);
  if (!text)
    goto out;
  rc = cb2m_write_atomic(dir, file, text, strlen(text), 0600);
out:
  cJSON_free(text);
  cJSON_Delete(o);
  return rc;
}

/* 1 when text (len bytes, NUL terminated) is a cursor this version wrote. */
static int parse(const char *text, size_t len, const char **url, const char **last_id,
                 cJSON **root) {
  const cJSON *v, *u, *l;
  cbev_id id;

  /* An embedded NUL would hide trailing bytes from the parser. */
  if (strlen(text) != len)
    return 0;
  /* The length includes the NUL so that cJSON checks nothing follows. */
  *root = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
  if (!cJSON_IsObject(*root))
    return 0;
  v = cJSON_GetObjectItemCaseSensitive(*root, "version");
  u = cJSON_GetObjectItemCaseSensitive(*root, "url");
  l = cJSON_GetObjectItemCaseSensitive(*root, "last_id");
  if (!cJSON_IsNumber(v) || v->valuedouble < CURSOR_VERSION || v->valuedouble > CURSOR_VERSION)
    return 0;
  if (!cJSON_IsString(u) || !u->valuestring[0] || !cJSON_IsString(l) ||
      cbev_id_parse(l->valuestring, &id) != CBEV_OK)
    return 0;
  *url = u->valuestring;
  *last_id = l->valuestring;
  return 1;
}

int cb2m_cursor_load(const char *dir, const char *name, char **url, char **last_id, char **aside) {
  char file[CB2M_NAME_MAX + 16], path[CB2M_PATH_MAX];
  const char *u = NULL, *l = NULL;
  char *text = NULL;
  size_t len = 0;
  cJSON *root = NULL;
  int rc = CB2M_CURSOR_ERROR, n;

  *url = *last_id = NULL;
  if (aside)
    *aside = NULL;
  if (!dir || file_name(file, sizeof file, name) != 0)
    goto out;
  n = snprintf(path, sizeof path, "%s/%s", dir, file);
  if (n < 0 || (size_t)n >= sizeof path) {
    errno = ENAMETOOLONG;
    goto out;
  }
  if (cb2m_read_file(path, CB2M_CURSOR_MAX_BYTES, &text, &len) != 0) {
    if (errno == ENOENT)
      rc = CB2M_CURSOR_NOT_FOUND;
    else if (errno == EFBIG)
      goto corrupt;
    goto out;
  }
  if (!parse(text, len, &u, &l, &root))
    goto corrupt;
  *url = strdup(u);
  *last_id = strdup(l);
  if (!*url || !*last_id) {
    free(*url);
    free(*last_id);
    *url = *last_id = NULL;
    errno = ENOMEM;
    goto out;
  }
  rc = CB2M_CURSOR_FOUND;
  goto out;
corrupt:
  rc = cb2m_set_aside(path, aside) == 0 ? CB2M_CURSOR_CORRUPT : CB2M_CURSOR_ERROR;
out:
  cJSON_Delete(root);
  free(text);
  return rc;
}

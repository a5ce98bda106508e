/* cursor.c: cursor files. See cursor.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/event.h"
#include "cursor.h"
#include "fsutil.h"

#define CURSOR_MAX_BYTES 65536

int cb2m_cursor_save(const char *dir, const char *name, const char *url, const char *last_id) {
  char file[128];
  cJSON *o = cJSON_CreateObject();
  char *text = NULL;
  int rc = -1;

  snprintf(file, sizeof file, "%s.cursor", name);
  if (!o || !cJSON_AddNumberToObject(o, "version", 1) || !cJSON_AddStringToObject(o, "url", url) ||
      !(last_id ? cJSON_AddStringToObject(o, "last_id", last_id) : cJSON_AddNullToObject(o, "last_id")))
    goto out;
  text = cJSON_PrintUnformatted(o);
  if (!text)
    goto out;
  rc = cb2m_write_atomic(dir, file, text, strlen(text), 0600);
out:
  if (rc != 0 && !text)
    errno = ENOMEM;
  cJSON_free(text);
  cJSON_Delete(o);
  return rc;
}

int cb2m_cursor_load(const char *dir, const char *name, char **url, char **last_id, char **aside) {
  char path[4096];
  char *text = NULL;
  size_t len = 0;
  cJSON *o = NULL;
  const cJSON *u, *l, *v;
  cbev_id id;
  int rc;

  *url = *last_id = NULL;
  if (aside)
    *aside = NULL;
  snprintf(path, sizeof path, "%s/%s.cursor", dir, name);
  if (cb2m_read_file(path, CURSOR_MAX_BYTES, &text, &len) != 0) {
    if (errno == ENOENT)
      return CB2M_CURSOR_NOT_FOUND;
    if (errno != EFBIG)
      return CB2M_CURSOR_ERROR;
    goto corrupt;
  }
  o = cJSON_ParseWithLength(text, len);
  v = cJSON_GetObjectItemCaseSensitive(o, "version");
  u = cJSON_GetObjectItemCaseSensitive(o, "url");
  l = cJSON_GetObjectItemCaseSensitive(o, "last_id");
  if (!cJSON_IsObject(o) || !cJSON_IsNumber(v) || v->valuedouble != 1 || !cJSON_IsString(u) ||
      !*u->valuestring || !cJSON_IsString(l) || cbev_id_parse(l->valuestring, &id) != 0)
    goto corrupt;
  *url = strdup(u->valuestring);
  *last_id = strdup(l->valuestring);
  if (!*url || !*last_id) {
    free(*url);
    free(*last_id);
    *url = *last_id = NULL;
    rc = CB2M_CURSOR_ERROR;
    goto out;
  }
  rc = CB2M_CURSOR_FOUND;
  goto out;
corrupt:
  rc = cb2m_set_aside(path, aside) == 0 ? CB2M_CURSOR_CORRUPT : CB2M_CURSOR_ERROR;
out:
  cJSON_Delete(o);
  free(text);
  return rc;
}

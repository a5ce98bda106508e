/*
 * cursor.h: one cursor file per broadcaster, "<state_dir>/<name>.cursor":
 * {"version":1,"url":"...","last_id":"..."}, mode 0600 (the URL holds the
 * token). Written atomically; a corrupt file is set aside, never trusted.
 */
#ifndef CB2M_CURSOR_H
#define CB2M_CURSOR_H

enum { CB2M_CURSOR_NOT_FOUND = 0, CB2M_CURSOR_FOUND = 1, CB2M_CURSOR_CORRUPT = 2,
       CB2M_CURSOR_ERROR = -1 };

/* Returns 0 or -1 (errno). */
int cb2m_cursor_save(const char *dir, const char *name, const char *url, const char *last_id);
/* On FOUND *url and *last_id are new strings (free() them). On CORRUPT the
 * file was renamed and *aside (may be NULL) names where to. ERROR: the file
 * exists but cannot be read (errno). */
int cb2m_cursor_load(const char *dir, const char *name, char **url, char **last_id, char **aside);

#endif

/*
 * cursor.h: one cursor file per broadcaster, "<state_dir>/<name>.cursor",
 * holding {"version":1,"url":"...","last_id":"..."}: the URL to request
 * next (a nextUrl) and the id of the last event the broker acknowledged.
 * The file is mode 0600 because the URL holds the token. It is written
 * atomically (fsutil.h); a file that does not parse is set aside and never
 * trusted, so the bridge starts from the live feed instead of guessing.
 */
#ifndef CB2M_CURSOR_H
#define CB2M_CURSOR_H

enum {
  CB2M_CURSOR_ERROR = -1,    /* exists but cannot be read or set aside (errno) */
  CB2M_CURSOR_NOT_FOUND = 0, /* no cursor file: start from the live feed */
  CB2M_CURSOR_FOUND = 1,     /* *url and *last_id are set */
  CB2M_CURSOR_CORRUPT = 2    /* set aside; *aside names where */
};

/* Largest cursor file read back; a bigger one is corrupt. */
#define CB2M_CURSOR_MAX_BYTES 65536

/* Writes the cursor of broadcaster name (cb2m_name_valid) atomically with
 * mode 0600. url must be non-empty, last_id must parse with
 * cbev_id_parse(). Returns 0, or -1 with errno (EINVAL for bad arguments,
 * ENOMEM, or the file system's error). */
int cb2m_cursor_save(const char *dir, const char *name, const char *url, const char *last_id);

/* Reads the cursor of broadcaster name. On CB2M_CURSOR_FOUND *url and
 * *last_id are new strings (free() them); otherwise both are NULL. The
 * file is CORRUPT (renamed by cb2m_set_aside(), *aside is its new name,
 * free() it; aside may be NULL) when it is larger than
 * CB2M_CURSOR_MAX_BYTES, not a JSON object, has a version other than 1,
 * an empty or non-string url, or a last_id cbev_id_parse() refuses.
 * CB2M_CURSOR_ERROR (errno set) when it cannot be read, cannot be set
 * aside, on ENOMEM, or for an invalid name. */
int cb2m_cursor_load(const char *dir, const char *name, char **url, char **last_id, char **aside);

#endif

/*
 * cursor.h: one cursor file per broadcaster, "<state_dir>/<name>.cursor",
 * holding what resumes its feed and nothing else:
 *
 *     {"version":2,"i":"1755376889458-0","last_id":"1755376889458-0"}
 *
 * "i" is the i= query value of the last nextUrl whose events the broker
 * acknowledged (as sent, percent-encoded), "last_id" the id of the last
 * delivered event; either may be absent, not both. The file holds no URL,
 * host or token (SPEC 2: no secret at rest): on load the cursor is applied
 * to the feed URL configured now (cb2m_cursor_apply()), so a rotated
 * token is used at once and the long-poll timeout is always the
 * configured one. A version-1 file ({"version":1,"url":...,"last_id":...},
 * written by earlier builds) is still read: its URL's i= is taken, the rest of
 * the URL is dropped, and the next save writes version 2.
 *
 * Files are written atomically (fsutil.h), mode 0600. A file that does not
 * parse is set aside and never trusted, so the bridge starts from the live
 * feed instead of guessing; the copy set aside is rewritten with every
 * URL's path and query masked, so it holds no token either.
 *
 * Return convention (README): CBEV_OK or a CBEV_* code, with errno set
 * beside CBEV_EIO, CBEV_ENOMEM and CBEV_EINVAL. For a load:
 *   CBEV_OK         the cursor was read;
 *   CBEV_ENOTFOUND  no cursor file: start from the live feed;
 *   CBEV_EPARSE     not a cursor: set aside, *aside names where;
 *   CBEV_EIO        it exists but cannot be read or set aside (errno);
 *   CBEV_ENOMEM, CBEV_EINVAL (an invalid name).
 * A save answers CBEV_EINVAL when the content is not a cursor (nothing
 * written: the content's fault, not the disk's) and CBEV_EIO when the
 * disk failed, so the caller can tell the two apart.
 */
#ifndef CB2M_CURSOR_H
#define CB2M_CURSOR_H

#include <stddef.h>

#include "cbevents/error.h"
#include "topics.h"

#define CB2M_CURSOR_VERSION 2
/* Largest cursor file read back; a bigger one is corrupt. */
#define CB2M_CURSOR_MAX_BYTES 65536
/* Longest i= value kept (bytes): upstream sends an event id. */
#define CB2M_CURSOR_I_MAX 256
/* Room for the names of the keys a file held that were ignored. */
#define CB2M_CURSOR_IGNORED_MAX 160
/* Room for the reason a file was found corrupt. */
#define CB2M_CURSOR_WHY_MAX 64

typedef struct cb2m_cursor {
  char *i;       /* i= value, percent-encoded as sent; NULL: none */
  char *last_id; /* last delivered id (cbev_id_parse()); NULL: none */
  int version;   /* of the file read: 1 means "migrate at the next save" */
  /* Unknown keys the file held, never trusted: their names (cut, every
   * byte outside [A-Za-z0-9_-] shown as '?'), comma separated; "" none. */
  char ignored[CB2M_CURSOR_IGNORED_MAX];
  char why[CB2M_CURSOR_WHY_MAX]; /* CBEV_EPARSE: a short reason, else "" */
} cb2m_cursor;

/* Frees what c owns and zeroes it; NULL is fine. */
void cb2m_cursor_cleanup(cb2m_cursor *c);

/* 1 when i is a usable i= value: 1..CB2M_CURSOR_I_MAX bytes of
 * [A-Za-z0-9._~-] and %XX escapes (so it goes into a query unchanged). */
int cb2m_cursor_i_valid(const char *i);

/* Parses the len bytes of text (a NUL after them, as cb2m_read_file()
 * gives) into out, which is zeroed first. Returns CBEV_OK; CBEV_EPARSE
 * (out->why says why; out holds no strings) for a text that is not a JSON
 * object, holds a NUL, has a version other than 1 and 2, a known key of
 * the wrong type, an i that cb2m_cursor_i_valid() refuses, a last_id that
 * cbev_id_parse() refuses, neither i nor last_id, or (version 1) no
 * non-empty url; or CBEV_ENOMEM (errno ENOMEM). Unknown keys are listed
 * in out->ignored and otherwise ignored. Pure: reads no file. */
int cb2m_cursor_parse(const char *text, size_t len, cb2m_cursor *out);

/* Room for "<name>.cursor" of any valid name. */
#define CB2M_CURSOR_FILE_MAX (CB2M_NAME_MAX + 16)
/* The cursor file's name in state_dir for broadcaster name: "<name>.cursor".
 * Returns CBEV_OK; CBEV_EINVAL (errno EINVAL) when name does not pass
 * cb2m_name_valid(); CBEV_ETOOBIG (errno ENAMETOOLONG) when it does not
 * fit size. */
int cb2m_cursor_file_name(char *file, size_t size, const char *name);

/* The version-2 text of a cursor: cJSON's output, cJSON_free() it. NULL
 * with errno EINVAL (both NULL, an invalid i or last_id) or ENOMEM. */
char *cb2m_cursor_format(const char *i, const char *last_id);

/* Writes the cursor of broadcaster name (cb2m_name_valid) atomically with
 * mode 0600, in the form of cb2m_cursor_format(). Returns CBEV_OK;
 * CBEV_EINVAL (errno EINVAL, nothing written) when dir is NULL or empty or
 * name, i or last_id are not what cb2m_cursor_format() takes: the
 * content's fault, not the disk's; CBEV_ENOMEM (errno ENOMEM); CBEV_EIO
 * with errno (ENAMETOOLONG, or the file system's error). */
int cb2m_cursor_save(const char *dir, const char *name, const char *i, const char *last_id);

/* Reads the cursor of broadcaster name into out (zeroed first; clean it up
 * with cb2m_cursor_cleanup() whatever the result). Returns CBEV_OK;
 * CBEV_ENOTFOUND when there is no cursor file; CBEV_EPARSE when the file
 * is larger than CB2M_CURSOR_MAX_BYTES or cb2m_cursor_parse() says so: it
 * is renamed by cb2m_set_aside() and the copy rewritten with URL paths
 * and queries masked (*aside is its new name, free() it; aside may be
 * NULL; out->why says why); CBEV_EIO (errno set) when it exists but cannot
 * be read (EACCES, EIO, EISDIR for a folder, ...) or cannot be set aside
 * or its copy rewritten; CBEV_ENOMEM (errno ENOMEM); CBEV_EINVAL (errno
 * EINVAL) for a NULL dir or an invalid name. */
int cb2m_cursor_load(const char *dir, const char *name, cb2m_cursor *out, char **aside);

/* The i= value of url's query (the first one), as sent. Returns CBEV_OK
 * with *i a new string (free() it), or NULL when url has no non-empty i=;
 * CBEV_EINVAL (errno EINVAL: url is NULL or does not parse) or
 * CBEV_ENOMEM (errno ENOMEM), *i NULL. */
int cb2m_cursor_i_of(const char *url, char **i);

/* feed_url with its i= parameters replaced by "i=<i>" (first in the
 * query; every other parameter, timeout= included, kept as configured),
 * or feed_url unchanged when i is NULL. Returns CBEV_OK with *out a new
 * string (free() it); CBEV_EINVAL (errno EINVAL: feed_url NULL or does
 * not parse, i not cb2m_cursor_i_valid()) or CBEV_ENOMEM (errno ENOMEM),
 * *out NULL. */
int cb2m_cursor_apply(const char *feed_url, const char *i, char **out);

/* The len bytes of text with the path, query and fragment of every
 * "scheme://" URL in them replaced by a slash and three stars: a new
 * buffer (free() it) of *out_len bytes plus a NUL, NULL on ENOMEM. What a
 * set-aside cursor is rewritten with: a version-1 file's feed URL held the
 * token in its path. A URL ends at whitespace, a quote, a backslash, a
 * control byte or the end of the text (a truncated file). */
char *cb2m_cursor_scrub(const char *text, size_t len, size_t *out_len);

#endif

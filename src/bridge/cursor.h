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
 * Return convention: the CB2M_CURSOR_* codes below; errno says more on
 * CB2M_CURSOR_ERROR and CB2M_CURSOR_REFUSED.
 */
#ifndef CB2M_CURSOR_H
#define CB2M_CURSOR_H

#include <stddef.h>

enum {
  CB2M_CURSOR_REFUSED = -2,  /* save: the content is not a cursor (errno EINVAL) */
  CB2M_CURSOR_ERROR = -1,    /* cannot be read, written or set aside (errno) */
  CB2M_CURSOR_NOT_FOUND = 0, /* no cursor file: start from the live feed */
  CB2M_CURSOR_FOUND = 1,     /* the cursor was read */
  CB2M_CURSOR_CORRUPT = 2    /* not a cursor: set aside; *aside names where */
};

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
  char why[CB2M_CURSOR_WHY_MAX]; /* CORRUPT: a short reason, else "" */
} cb2m_cursor;

/* Frees what c owns and zeroes it; NULL is fine. */
void cb2m_cursor_cleanup(cb2m_cursor *c);

/* 1 when i is a usable i= value: 1..CB2M_CURSOR_I_MAX bytes of
 * [A-Za-z0-9._~-] and %XX escapes (so it goes into a query unchanged). */
int cb2m_cursor_i_valid(const char *i);

/* Parses the len bytes of text (a NUL after them, as cb2m_read_file()
 * gives) into out, which is zeroed first. Returns CB2M_CURSOR_FOUND;
 * CB2M_CURSOR_CORRUPT (out->why says why; out holds no strings) for a
 * text that is not a JSON object, holds a NUL, has a version other than
 * 1 and 2, a known key of the wrong type, an i that
 * cb2m_cursor_i_valid() refuses, a last_id that cbev_id_parse() refuses,
 * neither i nor last_id, or (version 1) no non-empty url; or
 * CB2M_CURSOR_ERROR with errno ENOMEM. Unknown keys are listed in
 * out->ignored and otherwise ignored. Pure: reads no file. */
int cb2m_cursor_parse(const char *text, size_t len, cb2m_cursor *out);

/* The version-2 text of a cursor, a new string (free() it), or NULL with
 * errno EINVAL (both NULL, an invalid i or last_id) or ENOMEM. */
char *cb2m_cursor_format(const char *i, const char *last_id);

/* Writes the cursor of broadcaster name (cb2m_name_valid) atomically with
 * mode 0600, in the form of cb2m_cursor_format(). Returns 0;
 * CB2M_CURSOR_REFUSED (errno EINVAL, nothing written) when name, i or
 * last_id are not what cb2m_cursor_format() takes: the content's fault,
 * not the disk's; CB2M_CURSOR_ERROR with errno (ENOMEM, ENAMETOOLONG, or
 * the file system's error). */
int cb2m_cursor_save(const char *dir, const char *name, const char *i, const char *last_id);

/* Reads the cursor of broadcaster name into out (zeroed first; clean it up
 * with cb2m_cursor_cleanup() whatever the result). Returns
 * CB2M_CURSOR_FOUND; CB2M_CURSOR_NOT_FOUND; CB2M_CURSOR_CORRUPT when the
 * file is larger than CB2M_CURSOR_MAX_BYTES or cb2m_cursor_parse() says
 * so: it is renamed by cb2m_set_aside() and the copy rewritten with URL
 * paths and queries masked (*aside is its new name, free() it; aside may
 * be NULL; out->why says why); CB2M_CURSOR_ERROR (errno set) when it
 * exists but cannot be read (EACCES, EIO, EISDIR for a folder, ...),
 * cannot be set aside, on ENOMEM, or for an invalid name (EINVAL). */
int cb2m_cursor_load(const char *dir, const char *name, cb2m_cursor *out, char **aside);

/* The i= value of url's query (the first one), as sent. Returns 0 with *i
 * a new string (free() it), or NULL when url has no non-empty i=; -1
 * with errno EINVAL (url does not parse) or ENOMEM. */
int cb2m_cursor_i_of(const char *url, char **i);

/* feed_url with its i= parameters replaced by "i=<i>" (first in the
 * query; every other parameter, timeout= included, kept as configured),
 * or feed_url unchanged when i is NULL. Returns 0 with *out a new string
 * (free() it); -1 with errno EINVAL (feed_url does not parse, i not
 * cb2m_cursor_i_valid()) or ENOMEM. */
int cb2m_cursor_apply(const char *feed_url, const char *i, char **out);

/* The len bytes of text with the path, query and fragment of every
 * "scheme://" URL in them replaced by a slash and three stars: a new
 * buffer (free() it) of *out_len bytes plus a NUL, NULL on ENOMEM. What a
 * set-aside cursor is rewritten with: a version-1 file's feed URL held the
 * token in its path. A URL ends at whitespace, a quote, a backslash, a
 * control byte or the end of the text (a truncated file). */
char *cb2m_cursor_scrub(const char *text, size_t len, size_t *out_len);

#endif

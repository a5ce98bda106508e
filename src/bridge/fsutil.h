/*
 * fsutil.h: the file operations cb2mqtt's durability rests on: atomic
 * replace (temp file, fsync, rename, fsync of the folder), capped reads,
 * a usable state folder, and setting a corrupt file aside.
 * Functions return 0 or -1 with errno set.
 */
#ifndef CB2M_FSUTIL_H
#define CB2M_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

int cb2m_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                      mode_t mode);
/* Reads path into a new NUL-terminated buffer (free() it). errno EFBIG
 * when the file is larger than max bytes, ENOENT when missing. */
int cb2m_read_file(const char *path, size_t max, char **out, size_t *len);
/* mkdir -p dir (0700) and prove it writable with a probe file. */
int cb2m_ensure_dir(const char *dir);
/* Renames path to "<path>.corrupt-<epoch>"; *aside (may be NULL) gets the
 * new name (free() it). */
int cb2m_set_aside(const char *path, char **aside);

#endif

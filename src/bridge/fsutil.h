/*
 * fsutil.h: the file operations cb2mqtt's durability rests on: atomic
 * replace (temp file, fsync, rename, fsync of the folder), capped reads,
 * a usable state folder, and setting a corrupt file aside.
 *
 * Every function returns 0 on success or -1 with errno set (the caller
 * turns it into a message with strerror(), e.g. "state_dir /x: not
 * writable: Permission denied").
 */
#ifndef CB2M_FSUTIL_H
#define CB2M_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Longest path these helpers build (dir + "/" + name + suffixes). */
#define CB2M_PATH_MAX 4096

/* Replaces "<dir>/<name>" with the len bytes of data so that a reader (or
 * a restart after a crash or power loss) sees either the old or the new
 * content, never a mix: a temp file "<name>.tmp-<pid>-<n>" is created in
 * dir (O_EXCL, mode, or 0600 when mode is 0), written, fsynced, renamed
 * over the target, and dir is fsynced. On any error the temp file is
 * removed, the target is untouched and errno says why (ENAMETOOLONG when
 * the path does not fit CB2M_PATH_MAX, EINVAL for NULL or empty names or a
 * name holding '/'). */
int cb2m_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                      mode_t mode);

/* Reads the regular file path into a new NUL-terminated buffer (*out,
 * free() it) of *len bytes (len may be NULL). errno: ENOENT when missing,
 * EFBIG when larger than max bytes, EISDIR/EINVAL when not a regular file,
 * ENOMEM, or the error of open/read. *out is untouched on failure. */
int cb2m_read_file(const char *path, size_t max, char **out, size_t *len);

/* mkdir -p dir (new folders 0700), then proves it writable by creating
 * and removing a probe file (root ignores permission bits; read-only
 * mounts and full disks do not). errno from the failing step. On success
 * it also removes temp files of cb2m_write_atomic() left by processes
 * that no longer exist (a kill -9 between open and rename). */
int cb2m_ensure_dir(const char *dir);

/* Renames path to "<path>.corrupt-<epoch>" (or "...-<epoch>-<n>" when that
 * exists already: earlier evidence is never overwritten). When aside is
 * not NULL, *aside gets the new name (free() it); it is NULL if only that
 * copy could not be allocated (the rename still happened, 0 returned). */
int cb2m_set_aside(const char *path, char **aside);

#endif

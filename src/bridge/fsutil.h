/*
 * fsutil.h: the file operations cb2mqtt's durability rests on: atomic
 * replace (temp file, fsync, rename, fsync of the folder), capped reads,
 * a usable state folder, and setting a corrupt file aside.
 *
 * Return convention (README): CBEV_OK, or a CBEV_* code; every failure
 * also leaves errno set, so the caller can name the cause with
 * strerror(), e.g. "state_dir /x: not writable: Permission denied".
 */
#ifndef CB2M_FSUTIL_H
#define CB2M_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "cbevents/error.h"

/* Longest path these helpers build (dir + "/" + name + suffixes). */
#define CB2M_PATH_MAX 4096

/* Replaces "<dir>/<name>" with the len bytes of data so that a reader (or
 * a restart after a crash or power loss) sees either the old or the new
 * content, never a mix: a temp file "<name>.tmp-<pid>-<n>" is created in
 * dir (O_EXCL, mode, or 0600 when mode is 0), written, fsynced, renamed
 * over the target, and dir is fsynced. Returns CBEV_OK; CBEV_EINVAL
 * (errno EINVAL) for NULL or empty names, a name holding '/' or NULL data
 * with len > 0; CBEV_EIO when a system call failed or the path does not
 * fit CB2M_PATH_MAX (errno says which, ENAMETOOLONG for the latter). On
 * any error the temp file is removed and the target is untouched. */
int cb2m_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                      mode_t mode);

/* Reads the regular file path into a new NUL-terminated buffer (*out,
 * free() it) of *len bytes (len may be NULL). Returns CBEV_OK;
 * CBEV_ENOTFOUND when it does not exist (errno ENOENT); CBEV_ETOOBIG when
 * larger than max bytes (errno EFBIG); CBEV_ENOMEM (errno ENOMEM);
 * CBEV_EIO for any other failure, errno EISDIR or EINVAL when path is not
 * a regular file, else the error of open/read ("exists but cannot be
 * read" is never "not found"). *out is untouched on failure. */
int cb2m_read_file(const char *path, size_t max, char **out, size_t *len);

/* mkdir -p dir (new folders 0700), then proves it writable by creating
 * and removing a probe file (root ignores permission bits; read-only
 * mounts and full disks do not). Returns CBEV_OK; CBEV_EINVAL (errno
 * EINVAL) for a NULL or empty dir; CBEV_EIO with errno from the failing
 * step (ENAMETOOLONG, ENOTDIR, EACCES, EROFS, ...). On success it also
 * removes temp files of cb2m_write_atomic() left by processes that no
 * longer exist (a kill -9 between open and rename). */
int cb2m_ensure_dir(const char *dir);

/* Renames path to "<path>.corrupt-<epoch>" (or "...-<epoch>-<n>" when that
 * exists already: earlier evidence is never overwritten). Returns CBEV_OK;
 * CBEV_EINVAL (errno EINVAL) for a NULL or empty path; CBEV_EIO with errno
 * (EEXIST after 100 taken names, ENAMETOOLONG, or the error of link,
 * unlink or rename). When aside is not NULL, *aside gets the new name
 * (free() it); it is NULL after a failure, and also if only that copy
 * could not be allocated (the rename still happened, CBEV_OK returned). */
int cb2m_set_aside(const char *path, char **aside);

#endif

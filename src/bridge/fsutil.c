/* fsutil.c: atomic files for cursors, state and the heartbeat. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"

#define PATH_CAP 4096

static int join(char *buf, const char *dir, const char *name) {
  int n = snprintf(buf, PATH_CAP, "%s/%s", dir, name);
  if (n < 0 || n >= PATH_CAP) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return 0;
}

int cb2m_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                      mode_t mode) {
  char target[PATH_CAP], tmp[PATH_CAP];
  const char *p = data;
  int fd = -1, dfd = -1, rc = -1, saved;

  if (join(target, dir, name) != 0 ||
      snprintf(tmp, sizeof tmp, "%s.tmp-%ld", target, (long)getpid()) >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  unlink(tmp); /* a leftover of a crashed run with the same pid */
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode ? mode : 0600);
  if (fd < 0)
    goto out;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      goto out;
    }
    p += n;
    len -= (size_t)n;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    fd = -1;
    goto out;
  }
  fd = -1;
  if (rename(tmp, target) != 0)
    goto out;
  /* The rename itself must reach the disk before we call it saved. */
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0)
    fsync(dfd);
  rc = 0;
out:
  saved = errno;
  if (fd >= 0)
    close(fd);
  if (dfd >= 0)
    close(dfd);
  if (rc != 0)
    unlink(tmp);
  errno = saved;
  return rc;
}

int cb2m_read_file(const char *path, size_t max, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0;
  int saved;

  if (!f)
    return -1;
  buf = malloc(max + 2);
  if (!buf) {
    fclose(f);
    errno = ENOMEM;
    return -1;
  }
  n = fread(buf, 1, max + 1, f);
  saved = ferror(f) ? EIO : 0;
  fclose(f);
  if (saved || n > max) {
    free(buf);
    errno = saved ? saved : EFBIG;
    return -1;
  }
  buf[n] = '\0';
  *out = buf;
  if (len)
    *len = n;
  return 0;
}

int cb2m_ensure_dir(const char *dir) {
  char path[PATH_CAP];
  size_t n;

  if (!dir || !*dir || strlen(dir) >= sizeof path) {
    errno = EINVAL;
    return -1;
  }
  strcpy(path, dir);
  n = strlen(path);
  for (size_t i = 1; i <= n; i++) {
    if (path[i] == '/' || path[i] == '\0') {
      char c = path[i];
      path[i] = '\0';
      if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
      path[i] = c;
    }
  }
  /* Writable for real (root ignores modes, read-only mounts do not). */
  return cb2m_write_atomic(dir, ".probe", "", 0, 0600) == 0 && join(path, dir, ".probe") == 0
             ? unlink(path)
             : -1;
}

int cb2m_set_aside(const char *path, char **aside) {
  char dst[PATH_CAP];

  if (snprintf(dst, sizeof dst, "%s.corrupt-%ld", path, (long)time(NULL)) >= (int)sizeof dst) {
    errno = ENAMETOOLONG;
    return -1;
  }
  if (rename(path, dst) != 0)
    return -1;
  if (aside)
    *aside = strdup(dst);
  return 0;
}

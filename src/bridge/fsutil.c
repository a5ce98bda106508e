/*
 * fsutil.c: the files cb2mqtt keeps in state_dir (cursors, state, the
 * heartbeat, the discovery record) are written through here, so that a
 * crash, kill -9 or power loss leaves either the old or the new content.
 * See fsutil.h for the contract of each function. The static helpers
 * return 0 or -1 with errno set; the public functions turn that into a
 * CBEV_* code at their one exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"

/* Makes temp names unique within the process too, not only across pids. */
static atomic_uint g_tmp_seq;

static int join(char *buf, const char *dir, const char *name) {
  int n = snprintf(buf, CB2M_PATH_MAX, "%s/%s", dir, name);
  if (n < 0 || n >= CB2M_PATH_MAX) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return 0;
}

static int write_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int cb2m_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                      mode_t mode) {
  char target[CB2M_PATH_MAX], tmp[CB2M_PATH_MAX];
  int fd = -1, dfd = -1, rc = CBEV_EIO, made_tmp = 0, saved, n;

  if (!dir || !*dir || !name || !*name || strchr(name, '/') || (!data && len > 0)) {
    errno = EINVAL;
    return CBEV_EINVAL;
  }
  if (join(target, dir, name) != 0)
    return CBEV_EIO;
  n = snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", target, (long)getpid(),
               atomic_fetch_add(&g_tmp_seq, 1u));
  if (n < 0 || n >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return CBEV_EIO;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode ? mode : 0600);
  if (fd < 0)
    goto out;
  made_tmp = 1;
  /* open() applies the umask; the mode asked for is the mode wanted (0600
   * for files that hold the token must not depend on the umask either). */
  if (fchmod(fd, mode ? mode : 0600) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0)
    goto out;
  if (close(fd) != 0) {
    fd = -1;
    goto out;
  }
  fd = -1;
  if (rename(tmp, target) != 0)
    goto out;
  made_tmp = 0;
  /* The rename itself must reach the disk before the caller calls the
   * data saved (a cursor saved too early would skip events after a power
   * loss). Some file systems refuse fsync on folders: EINVAL is fine. */
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL))
    goto out;
  rc = CBEV_OK;
out:
  saved = errno;
  if (fd >= 0)
    close(fd);
  if (dfd >= 0)
    close(dfd);
  if (made_tmp)
    unlink(tmp);
  errno = saved;
  return rc;
}

int cb2m_read_file(const char *path, size_t max, char **out, size_t *len) {
  struct stat sb;
  char *buf = NULL;
  size_t cap, n = 0;
  int fd, rc = CBEV_EIO, saved;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? CBEV_ENOTFOUND : CBEV_EIO;
  if (fstat(fd, &sb) != 0)
    goto out;
  if (S_ISDIR(sb.st_mode)) {
    errno = EISDIR;
    goto out;
  }
  if (!S_ISREG(sb.st_mode)) {
    errno = EINVAL;
    goto out;
  }
  if (sb.st_size < 0 || (unsigned long long)sb.st_size > max) {
    errno = EFBIG;
    rc = CBEV_ETOOBIG;
    goto out;
  }
  /* One byte more than the size says, to notice a file that grew while
   * being read (it is then checked against max again). */
  cap = (size_t)sb.st_size + 1;
  buf = malloc(cap + 1);
  if (!buf) {
    errno = ENOMEM;
    rc = CBEV_ENOMEM;
    goto out;
  }
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      goto out;
    }
    if (r == 0)
      break;
    n += (size_t)r;
    if (n == cap) {
      char *bigger;
      if (cap > max) {
        errno = EFBIG;
        rc = CBEV_ETOOBIG;
        goto out;
      }
      cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      bigger = realloc(buf, cap + 1);
      if (!bigger) {
        errno = ENOMEM;
        rc = CBEV_ENOMEM;
        goto out;
      }
      buf = bigger;
    }
  }
  if (n > max) {
    errno = EFBIG;
    rc = CBEV_ETOOBIG;
    goto out;
  }
  buf[n] = '\0';
  *out = buf;
  buf = NULL;
  if (len)
    *len = n;
  rc = CBEV_OK;
out:
  saved = errno;
  free(buf);
  close(fd);
  errno = saved;
  return rc;
}

/* The pid in a temp name "<name>.tmp-<pid>-<n>", or 0 when name is not one. */
static long temp_owner(const char *name) {
  const char *p = strstr(name, ".tmp-");
  char *end;
  long pid;

  while (p && strstr(p + 1, ".tmp-"))
    p = strstr(p + 1, ".tmp-");
  if (!p || p == name || p[5] < '0' || p[5] > '9')
    return 0;
  errno = 0;
  pid = strtol(p + 5, &end, 10);
  if (errno || pid <= 0 || *end != '-' || end[1] < '0' || end[1] > '9')
    return 0;
  (void)strtoul(end + 1, &end, 10);
  return *end == '\0' ? pid : 0;
}

/* Removes temp files that a killed process left behind (its pid is gone);
 * those of a live process, another bridge included, are left alone. */
static void remove_stale_temps(const char *dir) {
  char path[CB2M_PATH_MAX];
  DIR *d = opendir(dir);
  struct dirent *e;

  if (!d)
    return;
  while ((e = readdir(d)) != NULL) {
    long pid = temp_owner(e->d_name);
    if (pid <= 0 || pid == (long)getpid())
      continue;
    /* Alive, or EPERM (a process of another user): not ours to remove. */
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
      continue;
    if (join(path, dir, e->d_name) == 0)
      unlink(path);
  }
  closedir(d);
}

int cb2m_ensure_dir(const char *dir) {
  char path[CB2M_PATH_MAX];
  struct stat sb;
  size_t n;

  if (!dir || !*dir) {
    errno = EINVAL;
    return CBEV_EINVAL;
  }
  n = strlen(dir);
  if (n >= sizeof path) {
    errno = ENAMETOOLONG;
    return CBEV_EIO;
  }
  memcpy(path, dir, n + 1);
  /* mkdir -p: each prefix ending before a '/', then the whole path. */
  for (size_t i = 1; i <= n; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    path[i] = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
      return CBEV_EIO;
    path[i] = i == n ? '\0' : '/';
  }
  if (stat(dir, &sb) != 0)
    return CBEV_EIO;
  if (!S_ISDIR(sb.st_mode)) {
    errno = ENOTDIR;
    return CBEV_EIO;
  }
  /* dir is not empty here, so the probe's only failure is the disk's. */
  if (cb2m_write_atomic(dir, ".write-probe", "probe", 5, 0600) != CBEV_OK)
    return CBEV_EIO;
  if (join(path, dir, ".write-probe") != 0 || unlink(path) != 0)
    return CBEV_EIO;
  remove_stale_temps(dir);
  return CBEV_OK;
}

int cb2m_set_aside(const char *path, char **aside) {
  char dst[CB2M_PATH_MAX];
  long now = (long)time(NULL);

  if (aside)
    *aside = NULL;
  if (!path || !*path) {
    errno = EINVAL;
    return CBEV_EINVAL;
  }
  /* link() + unlink() instead of rename(): link fails with EEXIST rather
   * than replacing an older corrupt copy of the same second. */
  for (unsigned k = 0; k < 100; k++) {
    int n = k == 0 ? snprintf(dst, sizeof dst, "%s.corrupt-%ld", path, now)
                   : snprintf(dst, sizeof dst, "%s.corrupt-%ld-%u", path, now, k);
    if (n < 0 || n >= (int)sizeof dst) {
      errno = ENAMETOOLONG;
      return CBEV_EIO;
    }
    if (link(path, dst) == 0) {
      if (unlink(path) != 0) {
        int saved = errno;
        unlink(dst);
        errno = saved;
        return CBEV_EIO;
      }
      if (aside)
        *aside = strdup(dst);
      return CBEV_OK;
    }
    if (errno == EPERM || errno == EOPNOTSUPP) {
      /* No hard links on this file system: rename() when the name is free. */
      struct stat sb;
      if (lstat(dst, &sb) == 0)
        continue;
      if (rename(path, dst) != 0)
        return CBEV_EIO;
      if (aside)
        *aside = strdup(dst);
      return CBEV_OK;
    }
    if (errno != EEXIST)
      return CBEV_EIO;
  }
  errno = EEXIST;
  return CBEV_EIO;
}

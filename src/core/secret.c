/*
 * secret.c: the one reader of secret files (see cbevents/secret.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/secret.h"

int cbev_read_secret_file(const char *path, size_t max_bytes, char **out) {
  FILE *f = NULL;
  char *buf = NULL;
  size_t n;
  int rc = CBEV_EINVAL, err = 0;

  if (out)
    *out = NULL;
  if (!path || !out || max_bytes == 0)
    goto out;
  rc = CBEV_ENOMEM;
  /* One byte more than allowed tells "too big" from "exactly the cap". */
  if (max_bytes > (size_t)-2 || !(buf = cbev_malloc(max_bytes + 2)))
    goto out;
  rc = CBEV_EIO;
  if (!(f = fopen(path, "r"))) {
    err = errno;
    goto out;
  }
  n = fread(buf, 1, max_bytes + 1, f);
  if (ferror(f)) {
    err = errno ? errno : EIO;
    goto out;
  }
  rc = CBEV_ETOOBIG;
  if (n > max_bytes)
    goto out;
  if (n && buf[n - 1] == '\n') {
    n--;
    if (n && buf[n - 1] == '\r')
      n--;
  }
  buf[n] = '\0';
  rc = CBEV_EPARSE;
  if (n == 0)
    goto out;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7F)
      goto out;
  *out = buf;
  buf = NULL;
  rc = CBEV_OK;
out:
  if (f)
    fclose(f);
  if (buf) {
    memset(buf, 0, max_bytes + 2);
    cbev_free(buf);
  }
  if (err)
    errno = err;
  return rc;
}

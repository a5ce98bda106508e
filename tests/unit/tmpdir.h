/*
 * tmpdir.h: a fresh mkdtemp() folder per test (cmocka setup/teardown), so
 * the file-writing modules of the bridge are tested on real files. The
 * teardown removes the whole tree, whatever a test left in it.
 */
#ifndef CB2M_TEST_TMPDIR_H
#define CB2M_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* *state becomes the folder's path (heap). */
static int setup_dir(void **state) {
  char *dir = strdup("/tmp/cb2m-test-XXXXXX");
  if (!dir || !mkdtemp(dir)) {
    free(dir);
    return -1;
  }
  *state = dir;
  return 0;
}

static int teardown_dir(void **state) {
  char *dir = *state;
  int rc = nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(dir);
  return rc;
}

#endif

/*
 * replay.c: runs every file of the given corpus folders (or files) through
 * LLVMFuzzerTestOneInput once, so ctest keeps the seed corpora and every
 * crash found by fuzzing passing in normal (and sanitizer) builds.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  long n;
  int rc = 1;

  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return 1;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0)
    goto out;
  /* +1 so an empty file still gets a valid pointer. */
  buf = malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
    goto out;
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  rc = 0;
out:
  free(buf);
  fclose(f);
  return rc;
}

int main(int argc, char **argv) {
  int failures = 0, files = 0;

  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: not found\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      failures += run_file(argv[i]);
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *de;
    if (!d)
      return 1;
    while ((de = readdir(d)) != NULL) {
      char path[4096];
      if (de->d_name[0] == '.')
        continue;
      snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
      failures += run_file(path);
      files++;
    }
    closedir(d);
  }
  printf("replayed %d inputs, %d unreadable\n", files, failures);
  if (files == 0) {
    fprintf(stderr, "replay: no inputs: an empty corpus tests nothing\n");
    return 1;
  }
  return failures ? 1 : 0;
}

/*
 * Unit tests of the durable files: fsutil.c (atomic write, capped read,
 * ensure_dir, set_aside) and cursor.c (round trip, corrupt files set
 * aside). Each test works in its own mkdtemp() folder under /tmp.
 */
#define _XOPEN_SOURCE 700 /* nftw() for cleaning up the temp folders */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cursor.h"
#include "fsutil.h"
#include "tmpdir.h"

#define URL "https://eventsapi.chaturbate.com/events/alice/SECRETTOKEN/?i=1755376889458-0&timeout=10"

/* ---- helpers ------------------------------------------------------------- */

static void path_of(char *buf, size_t size, const char *dir, const char *name) {
  int n = snprintf(buf, size, "%s/%s", dir, name);
  assert_true(n > 0 && (size_t)n < size);
}

static void put_file(const char *dir, const char *name, const void *data, size_t len) {
  char path[512];
  FILE *f;
  path_of(path, sizeof path, dir, name);
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* Number of entries in dir besides . and ..; *only gets the last name. */
static int count_entries(const char *dir, char *only, size_t size) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    n++;
    if (only)
      snprintf(only, size, "%s", e->d_name);
  }
  closedir(d);
  return n;
}

static mode_t mode_of(const char *path) {
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  return sb.st_mode & 07777;
}

static char *slurp(const char *path, size_t *len) {
  char *text = NULL;
  assert_int_equal(cb2m_read_file(path, 1 << 20, &text, len), 0);
  return text;
}

/* ---- fsutil -------------------------------------------------------------- */

static void test_write_atomic_creates_and_replaces(void **state) {
  const char *dir = *state;
  char path[512], only[256];
  size_t len = 0;
  char *text;

  path_of(path, sizeof path, dir, "f.json");
  assert_int_equal(cb2m_write_atomic(dir, "f.json", "first version", 13, 0), 0);
  text = slurp(path, &len);
  assert_int_equal(len, 13);
  assert_string_equal(text, "first version");
  free(text);
  assert_int_equal(mode_of(path), 0600); /* mode 0 means 0600 */
  /* A shorter replacement leaves no tail of the old content. */
  assert_int_equal(cb2m_write_atomic(dir, "f.json", "v2", 2, 0600), 0);
  text = slurp(path, &len);
  assert_int_equal(len, 2);
  assert_string_equal(text, "v2");
  free(text);
  /* Only the target is left: no temp file, on success either. */
  assert_int_equal(count_entries(dir, only, sizeof only), 1);
  assert_string_equal(only, "f.json");
  /* Empty content is a valid file. */
  assert_int_equal(cb2m_write_atomic(dir, "f.json", NULL, 0, 0600), 0);
  text = slurp(path, &len);
  assert_int_equal(len, 0);
  free(text);
}

static void test_write_atomic_mode_ignores_umask(void **state) {
  const char *dir = *state;
  char path[512];
  mode_t old = umask(0077);

  path_of(path, sizeof path, dir, "hb");
  assert_int_equal(cb2m_write_atomic(dir, "hb", "x", 1, 0644), 0);
  umask(0);
  assert_int_equal(mode_of(path), 0644);
  path_of(path, sizeof path, dir, "secret");
  assert_int_equal(cb2m_write_atomic(dir, "secret", "x", 1, 0600), 0);
  umask(old);
  assert_int_equal(mode_of(path), 0600);
}

static void test_write_atomic_failure_leaves_nothing(void **state) {
  const char *dir = *state;
  char sub[512], missing[512], only[256];

  /* The target name is a folder: rename() fails even for root. */
  path_of(sub, sizeof sub, dir, "taken");
  assert_int_equal(mkdir(sub, 0700), 0);
  errno = 0;
  assert_int_equal(cb2m_write_atomic(dir, "taken", "data", 4, 0600), -1);
  assert_int_equal(errno, EISDIR);
  assert_int_equal(count_entries(dir, only, sizeof only), 1);
  assert_string_equal(only, "taken");
  assert_int_equal(count_entries(sub, NULL, 0), 0);
  /* The folder does not exist. */
  path_of(missing, sizeof missing, dir, "nope");
  errno = 0;
  assert_int_equal(cb2m_write_atomic(missing, "f", "data", 4, 0600), -1);
  assert_int_equal(errno, ENOENT);
  /* Names that would leave the folder, and empty ones, are refused. */
  errno = 0;
  assert_int_equal(cb2m_write_atomic(dir, "../escape", "data", 4, 0600), -1);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(cb2m_write_atomic(dir, "", "data", 4, 0600), -1);
  assert_int_equal(count_entries(dir, NULL, 0), 1);
}

static void test_write_atomic_keeps_old_on_failure(void **state) {
  const char *dir = *state;
  char path[8192];
  char *text;
  char *longname = malloc(5000);

  assert_non_null(longname);
  memset(longname, 'n', 4999);
  longname[4999] = '\0';
  assert_int_equal(cb2m_write_atomic(dir, "keep", "old", 3, 0600), 0);
  errno = 0;
  assert_int_equal(cb2m_write_atomic(dir, longname, "new", 3, 0600), -1);
  assert_int_equal(errno, ENAMETOOLONG);
  path_of(path, sizeof path, dir, "keep");
  text = slurp(path, NULL);
  assert_string_equal(text, "old");
  free(text);
  free(longname);
}

static void test_read_file_caps(void **state) {
  const char *dir = *state;
  char path[512], *text = (char *)"untouched";
  size_t len = 99;

  put_file(dir, "ten", "0123456789", 10);
  path_of(path, sizeof path, dir, "ten");
  assert_int_equal(cb2m_read_file(path, 10, &text, &len), 0); /* exactly the cap */
  assert_int_equal(len, 10);
  assert_string_equal(text, "0123456789");
  free(text);
  text = (char *)"untouched";
  errno = 0;
  assert_int_equal(cb2m_read_file(path, 9, &text, &len), -1);
  assert_int_equal(errno, EFBIG);
  assert_string_equal(text, "untouched");
  path_of(path, sizeof path, dir, "missing");
  errno = 0;
  assert_int_equal(cb2m_read_file(path, 10, &text, &len), -1);
  assert_int_equal(errno, ENOENT);
  errno = 0;
  assert_int_equal(cb2m_read_file(dir, 10, &text, &len), -1);
  assert_int_equal(errno, EISDIR);
  put_file(dir, "empty", "", 0);
  path_of(path, sizeof path, dir, "empty");
  assert_int_equal(cb2m_read_file(path, 10, &text, NULL), 0);
  assert_string_equal(text, "");
  free(text);
}

static void test_ensure_dir(void **state) {
  const char *dir = *state;
  char deep[512], file[512], under[600];

  path_of(deep, sizeof deep, dir, "a/b/c");
  assert_int_equal(cb2m_ensure_dir(deep), 0);
  assert_int_equal(mode_of(deep), 0700);
  assert_int_equal(count_entries(deep, NULL, 0), 0); /* the probe is gone */
  assert_int_equal(cb2m_ensure_dir(deep), 0);        /* existing is fine */
  /* A trailing slash is the same folder. */
  snprintf(under, sizeof under, "%s/", deep);
  assert_int_equal(cb2m_ensure_dir(under), 0);
  /* A file where the folder should be. */
  put_file(dir, "plain", "x", 1);
  path_of(file, sizeof file, dir, "plain");
  errno = 0;
  assert_int_equal(cb2m_ensure_dir(file), -1);
  assert_int_equal(errno, ENOTDIR);
  snprintf(under, sizeof under, "%s/sub", file);
  errno = 0;
  assert_int_equal(cb2m_ensure_dir(under), -1);
  assert_int_equal(errno, ENOTDIR);
  errno = 0;
  assert_int_equal(cb2m_ensure_dir(""), -1);
  assert_int_equal(errno, EINVAL);
}

static void test_ensure_dir_removes_dead_temps(void **state) {
  const char *dir = *state;
  char dead_tmp[64], live_tmp[64], own_tmp[64], path[512];
  pid_t child = fork();

  /* A pid that surely no longer exists: a child that has been reaped. */
  assert_true(child >= 0);
  if (child == 0)
    _exit(0);
  assert_int_equal(waitpid(child, NULL, 0), child);
  snprintf(dead_tmp, sizeof dead_tmp, "alice.cursor.tmp-%ld-0", (long)child);
  snprintf(live_tmp, sizeof live_tmp, "alice.cursor.tmp-%ld-3", (long)getppid());
  snprintf(own_tmp, sizeof own_tmp, "bob.state.tmp-%ld-7", (long)getpid());
  put_file(dir, dead_tmp, "half", 4);
  put_file(dir, live_tmp, "busy", 4);
  put_file(dir, own_tmp, "mine", 4);
  put_file(dir, "alice.cursor", "{}", 2);
  put_file(dir, "notes.tmp-abc-1", "x", 1);
  put_file(dir, "x.tmp-12-", "x", 1);
  assert_int_equal(cb2m_ensure_dir(dir), 0);
  path_of(path, sizeof path, dir, dead_tmp);
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(count_entries(dir, NULL, 0), 5);
  path_of(path, sizeof path, dir, live_tmp);
  assert_int_equal(access(path, F_OK), 0);
  path_of(path, sizeof path, dir, own_tmp);
  assert_int_equal(access(path, F_OK), 0);
}

static void test_set_aside(void **state) {
  const char *dir = *state;
  char path[512], prefix[600];
  char *a1 = NULL, *a2 = NULL, *text;

  path_of(path, sizeof path, dir, "x.cursor");
  snprintf(prefix, sizeof prefix, "%s.corrupt-", path);
  put_file(dir, "x.cursor", "garbage 1", 9);
  assert_int_equal(cb2m_set_aside(path, &a1), 0);
  assert_non_null(a1);
  assert_memory_equal(a1, prefix, strlen(prefix));
  assert_int_equal(access(path, F_OK), -1);
  text = slurp(a1, NULL);
  assert_string_equal(text, "garbage 1");
  free(text);
  /* A second one within the same second must not replace the first. */
  put_file(dir, "x.cursor", "garbage 2", 9);
  assert_int_equal(cb2m_set_aside(path, &a2), 0);
  assert_non_null(a2);
  assert_string_not_equal(a1, a2);
  text = slurp(a1, NULL);
  assert_string_equal(text, "garbage 1");
  free(text);
  text = slurp(a2, NULL);
  assert_string_equal(text, "garbage 2");
  free(text);
  assert_int_equal(count_entries(dir, NULL, 0), 2);
  errno = 0;
  assert_int_equal(cb2m_set_aside(path, NULL), -1);
  assert_int_equal(errno, ENOENT);
  free(a1);
  free(a2);
}

/* ---- cursor -------------------------------------------------------------- */

static void test_cursor_round_trip(void **state) {
  const char *dir = *state;
  char path[512], only[256];
  char *url = NULL, *id = NULL, *aside = (char *)"x", *text;

  assert_int_equal(cb2m_cursor_load(dir, "alice", &url, &id, &aside), CB2M_CURSOR_NOT_FOUND);
  assert_null(url);
  assert_null(id);
  assert_null(aside);
  assert_int_equal(cb2m_cursor_save(dir, "alice", URL, "1755376889458-0"), 0);
  path_of(path, sizeof path, dir, "alice.cursor");
  assert_int_equal(mode_of(path), 0600); /* the URL holds the token */
  text = slurp(path, NULL);
  assert_string_equal(text, "{\"version\":1,\"url\":\"" URL "\",\"last_id\":\"1755376889458-0\"}");
  free(text);
  assert_int_equal(cb2m_cursor_load(dir, "alice", &url, &id, NULL), CB2M_CURSOR_FOUND);
  assert_string_equal(url, URL);
  assert_string_equal(id, "1755376889458-0");
  free(url);
  free(id);
  /* A newer save replaces it; other broadcasters have their own file. */
  assert_int_equal(cb2m_cursor_save(dir, "alice", "https://h/e/a/t/?i=2-1", "2-1"), 0);
  assert_int_equal(cb2m_cursor_save(dir, "bob_2", "https://h/e/b/t/?i=7-0", "7-0"), 0);
  assert_int_equal(cb2m_cursor_load(dir, "alice", &url, &id, NULL), CB2M_CURSOR_FOUND);
  assert_string_equal(url, "https://h/e/a/t/?i=2-1");
  assert_string_equal(id, "2-1");
  free(url);
  free(id);
  assert_int_equal(cb2m_cursor_load(dir, "bob_2", &url, &id, NULL), CB2M_CURSOR_FOUND);
  assert_string_equal(id, "7-0");
  free(url);
  free(id);
  assert_int_equal(count_entries(dir, only, sizeof only), 2);
}

static void test_cursor_save_refuses_bad_input(void **state) {
  const char *dir = *state;
  char *url = NULL, *id = NULL;

  errno = 0;
  assert_int_equal(cb2m_cursor_save(dir, "alice", URL, "not-an-id"), -1);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(cb2m_cursor_save(dir, "alice", URL, NULL), -1);
  assert_int_equal(cb2m_cursor_save(dir, "alice", "", "1-0"), -1);
  assert_int_equal(cb2m_cursor_save(dir, "alice", NULL, "1-0"), -1);
  assert_int_equal(cb2m_cursor_save(dir, "../alice", URL, "1-0"), -1);
  assert_int_equal(cb2m_cursor_save(dir, "bridge", URL, "1-0"), -1);
  assert_int_equal(count_entries(dir, NULL, 0), 0);
  errno = 0;
  assert_int_equal(cb2m_cursor_load(dir, "a/b", &url, &id, NULL), CB2M_CURSOR_ERROR);
  assert_int_equal(errno, EINVAL);
  assert_null(url);
  assert_null(id);
}

/* Each body must be refused, set aside byte for byte, and reported. */
static void expect_corrupt(const char *dir, const char *body, size_t len) {
  char path[512], prefix[600];
  char *url = (char *)"x", *id = (char *)"x", *aside = NULL, *text;
  size_t got = 0;
  int rc;

  put_file(dir, "carol.cursor", body, len);
  path_of(path, sizeof path, dir, "carol.cursor");
  snprintf(prefix, sizeof prefix, "%s.corrupt-", path);
  rc = cb2m_cursor_load(dir, "carol", &url, &id, &aside);
  if (rc != CB2M_CURSOR_CORRUPT)
    fail_msg("body '%.60s' loaded as %d, not corrupt", body, rc);
  assert_null(url);
  assert_null(id);
  assert_non_null(aside);
  assert_memory_equal(aside, prefix, strlen(prefix));
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(cb2m_read_file(aside, 1 << 20, &text, &got), 0);
  assert_int_equal(got, len);
  assert_memory_equal(text, body, len);
  free(text);
  assert_int_equal(remove(aside), 0);
  free(aside);
  /* Nothing is trusted afterwards: the next start has no cursor. */
  assert_int_equal(cb2m_cursor_load(dir, "carol", &url, &id, NULL), CB2M_CURSOR_NOT_FOUND);
}

static void test_cursor_corrupt_files(void **state) {
  const char *dir = *state;
  static const char *const bodies[] = {
      "",
      "garbage",
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":\"1-",    /* truncated */
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":\"1-0\"", /* no } */
      "[\"https://h/e/c/t/\",\"1-0\"]",
      "null",
      "{\"version\":2,\"url\":\"https://h/e/c/t/\",\"last_id\":\"1-0\"}",
      "{\"version\":\"1\",\"url\":\"https://h/e/c/t/\",\"last_id\":\"1-0\"}",
      "{\"url\":\"https://h/e/c/t/\",\"last_id\":\"1-0\"}",
      "{\"version\":1,\"url\":42,\"last_id\":\"1-0\"}",
      "{\"version\":1,\"url\":\"\",\"last_id\":\"1-0\"}",
      "{\"version\":1,\"last_id\":\"1-0\"}",
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":1}",
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":null}",
      "{\"version\":1,\"url\":\"https://h/e/c/t/\"}",
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":\"abc\"}",
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":\"-1-0\"}",
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":\"99999999999999999999-0\"}",
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":\"1-0\"} trailing",
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":\"1-0\"}{}",
  };
  static const char nul_inside[] =
      "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":\"1-0\"}\0garbage";
  size_t big_len = CB2M_CURSOR_MAX_BYTES + 1;
  char *big = malloc(big_len);

  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
    expect_corrupt(dir, bodies[i], strlen(bodies[i]));
  expect_corrupt(dir, nul_inside, sizeof nul_inside - 1);
  /* Too big: a valid object padded with spaces past the cap. */
  assert_non_null(big);
  memset(big, ' ', big_len);
  memcpy(big, "{\"version\":1,\"url\":\"u\",\"last_id\":\"1-0\"}", 39);
  expect_corrupt(dir, big, big_len);
  free(big);
  /* Trailing whitespace (an editor's newline) is still a good cursor. */
  {
    char *url = NULL, *id = NULL;
    const char *ok = "{\"version\":1,\"url\":\"https://h/e/c/t/\",\"last_id\":\"1-0\"}\n";
    put_file(dir, "carol.cursor", ok, strlen(ok));
    assert_int_equal(cb2m_cursor_load(dir, "carol", &url, &id, NULL), CB2M_CURSOR_FOUND);
    assert_string_equal(id, "1-0");
    free(url);
    free(id);
  }
}

static void test_cursor_unreadable_is_error_not_corrupt(void **state) {
  const char *dir = *state;
  char path[512];
  char *url = NULL, *id = NULL, *aside = NULL;

  /* A folder in place of the file cannot be read: reported, not moved. */
  path_of(path, sizeof path, dir, "dave.cursor");
  assert_int_equal(mkdir(path, 0700), 0);
  assert_int_equal(cb2m_cursor_load(dir, "dave", &url, &id, &aside), CB2M_CURSOR_ERROR);
  assert_int_equal(errno, EISDIR);
  assert_null(aside);
  assert_int_equal(access(path, F_OK), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_write_atomic_creates_and_replaces, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_atomic_mode_ignores_umask, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_atomic_failure_leaves_nothing, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_atomic_keeps_old_on_failure, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_read_file_caps, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_ensure_dir, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_ensure_dir_removes_dead_temps, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_set_aside, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_cursor_round_trip, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_cursor_save_refuses_bad_input, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_cursor_corrupt_files, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_cursor_unreadable_is_error_not_corrupt, setup_dir,
                                      teardown_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

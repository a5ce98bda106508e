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
  assert_int_equal(cb2m_write_atomic(dir, "taken", "data", 4, 0600), CBEV_EIO);
  assert_int_equal(errno, EISDIR);
  assert_int_equal(count_entries(dir, only, sizeof only), 1);
  assert_string_equal(only, "taken");
  assert_int_equal(count_entries(sub, NULL, 0), 0);
  /* The folder does not exist. */
  path_of(missing, sizeof missing, dir, "nope");
  errno = 0;
  assert_int_equal(cb2m_write_atomic(missing, "f", "data", 4, 0600), CBEV_EIO);
  assert_int_equal(errno, ENOENT);
  /* Names that would leave the folder, and empty ones, are refused. */
  errno = 0;
  assert_int_equal(cb2m_write_atomic(dir, "../escape", "data", 4, 0600), CBEV_EINVAL);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(cb2m_write_atomic(dir, "", "data", 4, 0600), CBEV_EINVAL);
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
  assert_int_equal(cb2m_write_atomic(dir, longname, "new", 3, 0600), CBEV_EIO);
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
  assert_int_equal(cb2m_read_file(path, 9, &text, &len), CBEV_ETOOBIG);
  assert_int_equal(errno, EFBIG);
  assert_string_equal(text, "untouched");
  path_of(path, sizeof path, dir, "missing");
  errno = 0;
  assert_int_equal(cb2m_read_file(path, 10, &text, &len), CBEV_ENOTFOUND);
  assert_int_equal(errno, ENOENT);
  errno = 0;
  assert_int_equal(cb2m_read_file(dir, 10, &text, &len), CBEV_EIO);
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
  assert_int_equal(cb2m_ensure_dir(file), CBEV_EIO);
  assert_int_equal(errno, ENOTDIR);
  snprintf(under, sizeof under, "%s/sub", file);
  errno = 0;
  assert_int_equal(cb2m_ensure_dir(under), CBEV_EIO);
  assert_int_equal(errno, ENOTDIR);
  errno = 0;
  assert_int_equal(cb2m_ensure_dir(""), CBEV_EINVAL);
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
  assert_int_equal(cb2m_set_aside(path, NULL), CBEV_EIO);
  assert_int_equal(errno, ENOENT);
  free(a1);
  free(a2);
}

/* ---- cursor -------------------------------------------------------------- */

#define ID "1755376889458-0"

static void load_ok(const char *dir, const char *name, cb2m_cursor *c) {
  char *aside = (char *)"x";
  int rc = cb2m_cursor_load(dir, name, c, &aside);
  if (rc != CBEV_OK)
    fail_msg("cursor of %s loaded as %d (%s)", name, rc, c->why);
  assert_null(aside);
}

static void test_cursor_round_trip(void **state) {
  const char *dir = *state;
  char path[512], only[256];
  char *aside = (char *)"x", *text;
  cb2m_cursor c;

  assert_int_equal(cb2m_cursor_load(dir, "alice", &c, &aside), CBEV_ENOTFOUND);
  assert_null(c.i);
  assert_null(c.last_id);
  assert_null(aside);
  cb2m_cursor_cleanup(&c);
  assert_int_equal(cb2m_cursor_save(dir, "alice", ID, ID), 0);
  path_of(path, sizeof path, dir, "alice.cursor");
  assert_int_equal(mode_of(path), 0600);
  /* The new form: the cursor and the last id, no URL, host or token. */
  text = slurp(path, NULL);
  assert_string_equal(text, "{\"version\":2,\"i\":\"" ID "\",\"last_id\":\"" ID "\"}");
  free(text);
  load_ok(dir, "alice", &c);
  assert_int_equal(c.version, CB2M_CURSOR_VERSION);
  assert_string_equal(c.i, ID);
  assert_string_equal(c.last_id, ID);
  assert_string_equal(c.ignored, "");
  cb2m_cursor_cleanup(&c);
  /* Either part alone is a cursor: i without a delivered id (only odd
   * ids so far), or an id without i (a prefix of the first batch). */
  assert_int_equal(cb2m_cursor_save(dir, "alice", "2-1", NULL), 0);
  load_ok(dir, "alice", &c);
  assert_string_equal(c.i, "2-1");
  assert_null(c.last_id);
  cb2m_cursor_cleanup(&c);
  assert_int_equal(cb2m_cursor_save(dir, "bob_2", NULL, "7-0"), 0);
  text = slurp(strcat(strcpy(path, dir), "/bob_2.cursor"), NULL);
  assert_string_equal(text, "{\"version\":2,\"last_id\":\"7-0\"}");
  free(text);
  load_ok(dir, "bob_2", &c);
  assert_null(c.i);
  assert_string_equal(c.last_id, "7-0");
  cb2m_cursor_cleanup(&c);
  /* A percent-escape is kept as sent. */
  assert_int_equal(cb2m_cursor_save(dir, "alice", "a%2Fb.c~d_e", ID), 0);
  load_ok(dir, "alice", &c);
  assert_string_equal(c.i, "a%2Fb.c~d_e");
  cb2m_cursor_cleanup(&c);
  assert_int_equal(count_entries(dir, only, sizeof only), 2);
}

static void test_cursor_save_refuses_bad_content(void **state) {
  const char *dir = *state;
  static const char *const bad_i[] = {"", "a&b", "a=b", "a/b", "a b", "%", "%2", "%zz",
                                      "\xc3\xa9", "a#b", "a?b"};
  char longest[CB2M_CURSOR_I_MAX + 2];
  cb2m_cursor c;

  errno = 0;
  assert_int_equal(cb2m_cursor_save(dir, "alice", ID, "not-an-id"), CBEV_EINVAL);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(cb2m_cursor_save(dir, "alice", NULL, NULL), CBEV_EINVAL);
  for (size_t k = 0; k < sizeof bad_i / sizeof *bad_i; k++) {
    errno = 0;
    if (cb2m_cursor_save(dir, "alice", bad_i[k], ID) != CBEV_EINVAL)
      fail_msg("i \"%s\" was not refused", bad_i[k]);
    assert_int_equal(errno, EINVAL);
  }
  memset(longest, '1', sizeof longest);
  longest[CB2M_CURSOR_I_MAX] = '\0';
  assert_true(cb2m_cursor_i_valid(longest));
  longest[CB2M_CURSOR_I_MAX] = '1';
  longest[CB2M_CURSOR_I_MAX + 1] = '\0';
  assert_false(cb2m_cursor_i_valid(longest));
  assert_int_equal(cb2m_cursor_save(dir, "alice", longest, ID), CBEV_EINVAL);
  assert_int_equal(cb2m_cursor_save(dir, "../alice", ID, ID), CBEV_EINVAL);
  assert_int_equal(cb2m_cursor_save(dir, "bridge", ID, ID), CBEV_EINVAL);
  assert_int_equal(count_entries(dir, NULL, 0), 0);
  errno = 0;
  assert_int_equal(cb2m_cursor_load(dir, "a/b", &c, NULL), CBEV_EINVAL);
  assert_int_equal(errno, EINVAL);
  assert_null(c.i);
  assert_null(c.last_id);
}

static void test_cursor_save_disk_failure_is_error(void **state) {
  const char *dir = *state;
  char path[512];

  /* A folder where the file goes: the disk's failure, not the content's. */
  path_of(path, sizeof path, dir, "alice.cursor");
  assert_int_equal(mkdir(path, 0700), 0);
  errno = 0;
  assert_int_equal(cb2m_cursor_save(dir, "alice", ID, ID), CBEV_EIO);
  assert_int_equal(errno, EISDIR);
  path_of(path, sizeof path, dir, "missing");
  assert_int_equal(cb2m_cursor_save(path, "alice", ID, ID), CBEV_EIO);
  assert_int_equal(errno, ENOENT);
}

static void test_cursor_migrates_version_1(void **state) {
  const char *dir = *state;
  static const char v1[] = "{\"version\":1,\"url\":\"" URL "\",\"last_id\":\"" ID "\"}";
  static const char v1_no_i[] =
      "{\"version\":1,\"url\":\"https://eventsapi.chaturbate.com/events/alice/SECRETTOKEN/"
      "?timeout=30\",\"last_id\":\"1-0\"}";
  char path[512];
  char *text;
  cb2m_cursor c;

  put_file(dir, "alice.cursor", v1, sizeof v1 - 1);
  load_ok(dir, "alice", &c);
  assert_int_equal(c.version, 1); /* the caller rewrites it at once */
  assert_string_equal(c.i, ID);   /* only the i= of the URL carries over */
  assert_string_equal(c.last_id, ID);
  assert_string_equal(c.ignored, "");
  /* The first save writes the new form: the token is gone from disk. */
  assert_int_equal(cb2m_cursor_save(dir, "alice", c.i, c.last_id), 0);
  cb2m_cursor_cleanup(&c);
  path_of(path, sizeof path, dir, "alice.cursor");
  text = slurp(path, NULL);
  assert_null(strstr(text, "SECRETTOKEN"));
  assert_null(strstr(text, "url"));
  assert_string_equal(text, "{\"version\":2,\"i\":\"" ID "\",\"last_id\":\"" ID "\"}");
  free(text);
  load_ok(dir, "alice", &c);
  assert_int_equal(c.version, 2);
  cb2m_cursor_cleanup(&c);
  /* A version-1 URL without i=: the last id alone resumes. */
  put_file(dir, "alice.cursor", v1_no_i, sizeof v1_no_i - 1);
  load_ok(dir, "alice", &c);
  assert_null(c.i);
  assert_string_equal(c.last_id, "1-0");
  cb2m_cursor_cleanup(&c);
}

static void test_cursor_extra_keys_reported_not_trusted(void **state) {
  const char *dir = *state;
  static const char body[] = "{\"version\":2,\"url\":\"" URL "\",\"i\":\"5-0\",\"last_id\":\"5-0\","
                             "\"x\\u0001y\":1,\"timeout\":30}";
  cb2m_cursor c;

  put_file(dir, "alice.cursor", body, sizeof body - 1);
  load_ok(dir, "alice", &c);
  assert_string_equal(c.i, "5-0");
  assert_string_equal(c.last_id, "5-0");
  /* Named safely, for the log; their values are never used. */
  assert_string_equal(c.ignored, "url,x?y,timeout");
  cb2m_cursor_cleanup(&c);
}

/* The copy a corrupt file is set aside as: body with URL paths masked. */
static const char *expected_aside(const char *body, size_t len, size_t *out_len) {
  static char buf[1 << 17];
  size_t o = 0;

  for (size_t k = 0; k < len;) {
    if (k + 3 <= len && memcmp(body + k, "://", 3) == 0) {
      memcpy(buf + o, "://", 3);
      o += 3;
      k += 3;
      while (k < len && body[k] != '/' && body[k] != '"' && body[k] != '?')
        buf[o++] = body[k++];
      if (k < len && (body[k] == '/' || body[k] == '?')) {
        while (k < len && body[k] != '"')
          k++;
        memcpy(buf + o, "/***", 4);
        o += 4;
      }
      continue;
    }
    buf[o++] = body[k++];
  }
  *out_len = o;
  return buf;
}

/* Each body must be refused, set aside without URL paths, and reported. */
static void expect_corrupt(const char *dir, const char *body, size_t len) {
  char path[512], prefix[600];
  char *aside = NULL, *text;
  size_t got = 0, want_len = 0;
  const char *want = expected_aside(body, len, &want_len);
  cb2m_cursor c;
  int rc;

  put_file(dir, "carol.cursor", body, len);
  path_of(path, sizeof path, dir, "carol.cursor");
  snprintf(prefix, sizeof prefix, "%s.corrupt-", path);
  rc = cb2m_cursor_load(dir, "carol", &c, &aside);
  if (rc != CBEV_EPARSE)
    fail_msg("body '%.60s' loaded as %d, not corrupt", body, rc);
  assert_null(c.i);
  assert_null(c.last_id);
  assert_true(c.why[0] != '\0');
  assert_non_null(aside);
  assert_memory_equal(aside, prefix, strlen(prefix));
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(cb2m_read_file(aside, 1 << 20, &text, &got), 0);
  if (len <= CB2M_CURSOR_MAX_BYTES) {
    assert_int_equal(got, want_len);
    assert_memory_equal(text, want, want_len);
  }
  assert_null(strstr(text, "SECRETTOKEN"));
  free(text);
  assert_int_equal(remove(aside), 0);
  free(aside);
  /* Nothing is trusted afterwards: the next start has no cursor. */
  assert_int_equal(cb2m_cursor_load(dir, "carol", &c, NULL), CBEV_ENOTFOUND);
}

static void test_cursor_corrupt_files(void **state) {
  const char *dir = *state;
  static const char *const bodies[] = {
      "",
      "garbage",
      "{\"version\":2,\"i\":\"1-0\",\"last_id\":\"1-",   /* truncated */
      "{\"version\":2,\"i\":\"1-0\",\"last_id\":\"1-0\"", /* no } */
      "[\"1-0\",\"1-0\"]",
      "null",
      "{\"version\":3,\"i\":\"1-0\",\"last_id\":\"1-0\"}",
      "{\"version\":0,\"i\":\"1-0\",\"last_id\":\"1-0\"}",
      "{\"version\":2.5,\"i\":\"1-0\",\"last_id\":\"1-0\"}",
      "{\"version\":\"2\",\"i\":\"1-0\",\"last_id\":\"1-0\"}",
      "{\"i\":\"1-0\",\"last_id\":\"1-0\"}",
      "{\"version\":2}",
      "{\"version\":2,\"i\":42,\"last_id\":\"1-0\"}",
      "{\"version\":2,\"i\":\"\",\"last_id\":\"1-0\"}",
      "{\"version\":2,\"i\":\"1-0&timeout=90\",\"last_id\":\"1-0\"}",
      "{\"version\":2,\"i\":null}",
      "{\"version\":2,\"i\":\"1-0\",\"i\":\"9-0\"}",
      "{\"version\":2,\"last_id\":\"1-0\",\"last_id\":\"2-0\"}",
      "{\"version\":2,\"i\":\"1-0\",\"last_id\":1}",
      "{\"version\":2,\"i\":\"1-0\",\"last_id\":null}",
      "{\"version\":2,\"i\":\"1-0\",\"last_id\":\"abc\"}",
      "{\"version\":2,\"i\":\"1-0\",\"last_id\":\"-1-0\"}",
      "{\"version\":2,\"i\":\"1-0\",\"last_id\":\"99999999999999999999-0\"}",
      "{\"version\":2,\"i\":\"1-0\",\"last_id\":\"1-0\"} trailing",
      "{\"version\":2,\"i\":\"1-0\",\"last_id\":\"1-0\"}{}",
      /* Version 1: only what it held then. */
      "{\"version\":1,\"url\":42,\"last_id\":\"1-0\"}",
      "{\"version\":1,\"url\":\"\",\"last_id\":\"1-0\"}",
      "{\"version\":1,\"last_id\":\"1-0\"}",
      "{\"version\":1,\"url\":\"https://h/e/c/SECRETTOKEN/\"}",
      "{\"version\":1,\"url\":\"https://h/e/c/SECRETTOKEN/\",\"last_id\":\"abc\"}",
      "{\"version\":1,\"url\":\"https://h/e/c/SECRETTOKEN/?i=a%zz\",\"last_id\":\"1-0\"}",
      "{\"version\":1,\"url\":\"not a url\",\"last_id\":\"1-0\"}",
      "{\"version\":1,\"url\":\"https://h/e/c/SECRETTOKEN/?i=1-0",
  };
  static const char nul_inside[] = "{\"version\":2,\"i\":\"1-0\",\"last_id\":\"1-0\"}\0garbage";
  size_t big_len = CB2M_CURSOR_MAX_BYTES + 1;
  char *big = malloc(big_len);
  cb2m_cursor c;

  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
    expect_corrupt(dir, bodies[i], strlen(bodies[i]));
  expect_corrupt(dir, nul_inside, sizeof nul_inside - 1);
  /* Too big: a valid object padded with spaces past the cap. */
  assert_non_null(big);
  memset(big, ' ', big_len);
  memcpy(big, "{\"version\":2,\"i\":\"1-0\"}", 23);
  expect_corrupt(dir, big, big_len);
  free(big);
  /* Trailing whitespace (an editor's newline) is still a good cursor. */
  {
    const char *ok = "{\"version\":2,\"i\":\"1-0\",\"last_id\":\"1-0\"}\n";
    put_file(dir, "carol.cursor", ok, strlen(ok));
    load_ok(dir, "carol", &c);
    assert_string_equal(c.last_id, "1-0");
    cb2m_cursor_cleanup(&c);
  }
}

static void test_cursor_unreadable_is_error_not_corrupt(void **state) {
  const char *dir = *state;
  char path[512];
  char *aside = NULL;
  cb2m_cursor c;

  /* A folder in place of the file cannot be read: reported, not moved. */
  path_of(path, sizeof path, dir, "dave.cursor");
  assert_int_equal(mkdir(path, 0700), 0);
  errno = 0;
  assert_int_equal(cb2m_cursor_load(dir, "dave", &c, &aside), CBEV_EIO);
  assert_int_equal(errno, EISDIR);
  assert_null(aside);
  assert_null(c.i);
  assert_int_equal(access(path, F_OK), 0);
}

static void test_cursor_i_of(void **state) {
  static const struct {
    const char *url, *i;
  } cases[] = {
      {URL, ID},
      {"https://h/e/a/t/?timeout=10&i=5-1", "5-1"},
      {"https://h/e/a/t/?i=5-1&i=6-0", "5-1"},
      {"https://h/e/a/t/?timeout=10", NULL},
      {"https://h/e/a/t/", NULL},
      {"https://h/e/a/t/?i=&timeout=1", NULL},
      {"https://h/e/a/t/?ix=3&xi=4", NULL},
      {"https://h/e/a/t/?i=a%2Fb", "a%2Fb"},
  };
  char *i = (char *)"x";

  (void)state;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    assert_int_equal(cb2m_cursor_i_of(cases[k].url, &i), 0);
    if (cases[k].i)
      assert_string_equal(i, cases[k].i);
    else
      assert_null(i);
    free(i);
  }
  errno = 0;
  assert_int_equal(cb2m_cursor_i_of("no url", &i), CBEV_EINVAL);
  assert_int_equal(errno, EINVAL);
  assert_null(i);
}

static void test_cursor_applied_to_changed_token(void **state) {
  char *out = NULL;

  (void)state;
  /* Saved under the old token at timeout=30, configured now with a new
   * token and timeout=3: only i= carries over. */
  assert_int_equal(cb2m_cursor_apply("https://eventsapi.chaturbate.com/events/alice/NEWTOKEN/"
                                     "?timeout=3", ID, &out), 0);
  assert_string_equal(out, "https://eventsapi.chaturbate.com/events/alice/NEWTOKEN/?i=" ID
                           "&timeout=3");
  assert_null(strstr(out, "SECRETTOKEN"));
  free(out);
  /* An i= already in the configured URL (a pasted nextUrl) is replaced;
   * other parameters stay in their order. */
  assert_int_equal(cb2m_cursor_apply("http://127.0.0.1:8/events/a/t%2Fk/?x=1&i=1-0&timeout=5&i",
                                     "9-9", &out), 0);
  assert_string_equal(out, "http://127.0.0.1:8/events/a/t%2Fk/?i=9-9&x=1&timeout=5");
  free(out);
  assert_int_equal(cb2m_cursor_apply("https://h/events/a/t/", "9-9", &out), 0);
  assert_string_equal(out, "https://h/events/a/t/?i=9-9");
  free(out);
  /* No i: the configured URL as it is. */
  assert_int_equal(cb2m_cursor_apply("https://h/events/a/t/?timeout=3", NULL, &out), 0);
  assert_string_equal(out, "https://h/events/a/t/?timeout=3");
  free(out);
  errno = 0;
  assert_int_equal(cb2m_cursor_apply("https://h/events/a/t/", "1&timeout=90", &out), CBEV_EINVAL);
  assert_int_equal(errno, EINVAL);
  assert_null(out);
  assert_int_equal(cb2m_cursor_apply("::", "1-0", &out), CBEV_EINVAL);
  assert_int_equal(errno, EINVAL);
}

static void test_cursor_scrub(void **state) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"{\"url\":\"" URL "\"}", "{\"url\":\"https://eventsapi.chaturbate.com/***\"}"},
      {"http://127.0.0.1:9/events/a/TOKEN/", "http://127.0.0.1:9/***"},
      {"a https://h?x=TOKEN b", "a https://h/*** b"},
      {"https://h", "https://h"},
      {"no url here", "no url here"},
      {"x://", "x://"},
      {"https://h/TOK\\nEN", "https://h/***\\nEN"},
  };
  size_t n = 0;
  char *out;

  (void)state;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    out = cb2m_cursor_scrub(cases[k].in, strlen(cases[k].in), &n);
    assert_non_null(out);
    assert_string_equal(out, cases[k].out);
    assert_int_equal(n, strlen(cases[k].out));
    free(out);
  }
  /* NUL bytes are kept: the copy is evidence. */
  out = cb2m_cursor_scrub("a\0https://h/T", 13, &n);
  assert_int_equal(n, 15);
  assert_memory_equal(out, "a\0https://h/***", 16);
  free(out);
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
      cmocka_unit_test_setup_teardown(test_cursor_save_refuses_bad_content, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_cursor_save_disk_failure_is_error, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_cursor_migrates_version_1, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_cursor_extra_keys_reported_not_trusted, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_cursor_corrupt_files, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_cursor_unreadable_is_error_not_corrupt, setup_dir,
                                      teardown_dir),
      cmocka_unit_test(test_cursor_i_of),
      cmocka_unit_test(test_cursor_applied_to_changed_token),
      cmocka_unit_test(test_cursor_scrub),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

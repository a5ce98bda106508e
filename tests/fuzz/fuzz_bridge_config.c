/*
 * fuzz_bridge_config.c: cb2mqtt's settings loader under hostile input.
 *
 * The input is INI text, optionally followed by a line "%%" and then
 * environment lines NAME=VALUE (at most 32). The INI text is written to a
 * temp file loaded with -c; the environment is passed as envp. Whatever
 * the input, loading must not crash or leak; a failure must leave a
 * one-line message; a success must print with every broadcaster's secret
 * masked and give a settings JSON. The temp file is reused across runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"

#define MAX_ENV 32

static char g_path[64];

static void remove_temp(void) {
  if (g_path[0])
    unlink(g_path);
}

static int write_ini(const uint8_t *data, size_t len) {
  FILE *f;

  if (!g_path[0]) {
    int fd;
    snprintf(g_path, sizeof g_path, "/tmp/cb2m-fuzz-config-XXXXXX");
    if ((fd = mkstemp(g_path)) < 0) {
      g_path[0] = '\0';
      return -1;
    }
    close(fd);
    atexit(remove_temp);
  }
  if (!(f = fopen(g_path, "wb")))
    return -1;
  if (len && fwrite(data, 1, len, f) != len) {
    fclose(f);
    return -1;
  }
  return fclose(f);
}

/* Each broadcaster section of --print-config must show a masked secret. */
static void check_masked(const cb2m_config *cfg, const char *out) {
  for (size_t i = 0; i < cfg->n_broadcasters; i++) {
    char head[96];
    const char *p;
    snprintf(head, sizeof head, "[broadcaster:%s]\n", cfg->broadcasters[i].name);
    if (!(p = strstr(out, head)))
      abort();
    p += strlen(head);
    if (strncmp(p, "token = ***", 11) != 0 && strncmp(p, "url   = ***", 11) != 0)
      abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *copy = malloc(size + 1), *envtext = NULL, *env[MAX_ENV + 1], *save = NULL;
  char *argv[] = {"cb2mqtt", "-c", g_path, NULL}, err[512], *out = NULL, *json;
  size_t ini_len = size, n_env = 0, out_len = 0;
  cb2m_config cfg;
  FILE *mem;
  int rc;

  if (!copy)
    return 0;
  memcpy(copy, data, size);
  copy[size] = '\0';
  /* "%%" alone on a line starts the environment part. */
  for (size_t i = 0; i + 2 <= size; i++) {
    if ((i == 0 || copy[i - 1] == '\n') && copy[i] == '%' && copy[i + 1] == '%' &&
        (i + 2 == size || copy[i + 2] == '\n')) {
      ini_len = i;
      envtext = copy + i + 2;
      break;
    }
  }
  for (char *line = envtext ? strtok_r(envtext, "\n", &save) : NULL; line && n_env < MAX_ENV;
       line = strtok_r(NULL, "\n", &save))
    env[n_env++] = line;
  env[n_env] = NULL;
  if (write_ini(data, ini_len) != 0)
    goto out;
  argv[2] = g_path;
  rc = cb2m_config_load(&cfg, 3, argv, env, err, sizeof err);
  if (rc != CBEV_OK && rc != CBEV_EINVAL)
    abort();
  if (rc == CBEV_EINVAL && (!err[0] || strchr(err, '\n')))
    abort();
  if (rc == CBEV_OK) {
    if (cfg.n_broadcasters == 0 || cfg.n_broadcasters > CB2M_BROADCASTERS_MAX)
      abort();
    if ((mem = open_memstream(&out, &out_len)) != NULL) {
      cb2m_config_print(&cfg, mem);
      fclose(mem);
      if (out)
        check_masked(&cfg, out);
      free(out);
    }
    json = cb2m_config_info_json(&cfg);
    cJSON_free(json);
  }
  cb2m_config_free(&cfg);
out:
  free(copy);
  return 0;
}

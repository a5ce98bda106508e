/*
 * alloc.c: the allocator hooks of libcbevents (cbevents/alloc.h). cJSON
 * gets the installed allocator as its hooks, so a test can fail the Nth
 * allocation anywhere, cJSON's included. The arena of parsed batches,
 * built on these hooks, is arena.c.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alloc_impl.h"
#include "cbevents/alloc.h"

static cbev_allocator g_alloc = {malloc, realloc, free};

/* ---- cJSON's hooks --------------------------------------------------------- */

static void *json_malloc(size_t size) { return cbev_malloc(size); }

static void json_free(void *p) { cbev_free(p); }

static void install_json_hooks(void) {
  /* Not malloc/free themselves: cJSON then never calls realloc, so every
   * allocation of its goes through these two. */
  cJSON_Hooks hooks = {json_malloc, json_free};
  cJSON_InitHooks(&hooks);
}

static pthread_once_t g_hooks_once = PTHREAD_ONCE_INIT;

void cbev__cjson_hooks_init(void) { pthread_once(&g_hooks_once, install_json_hooks); }

void cbev_set_allocator(const cbev_allocator *a) {
  if (a && a->malloc_fn && a->realloc_fn && a->free_fn)
    g_alloc = *a;
  else
    g_alloc = (cbev_allocator){malloc, realloc, free};
  cbev__cjson_hooks_init();
}

void *cbev_malloc(size_t size) { return g_alloc.malloc_fn(size ? size : 1); }

void *cbev_calloc(size_t n, size_t size) {
  void *p;

  if (size && n > SIZE_MAX / size)
    return NULL;
  p = cbev_malloc(n * size);
  if (p)
    memset(p, 0, n * size);
  return p;
}

void *cbev_realloc(void *ptr, size_t size) {
  return g_alloc.realloc_fn(ptr, size ? size : 1);
}

void cbev_free(void *ptr) {
  if (ptr)
    g_alloc.free_fn(ptr);
}

char *cbev_strndup(const char *s, size_t n) {
  char *p;

  if (!s)
    return NULL;
  p = cbev_malloc(n + 1);
  if (!p)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *cbev_strdup(const char *s) { return s ? cbev_strndup(s, strlen(s)) : NULL; }

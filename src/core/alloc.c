/*
 * alloc.c: the allocator hooks of libcbevents. cJSON gets the same hooks,
 * so a test can fail the Nth allocation anywhere in parse and normalize.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbevents/alloc.h"

static cbev_allocator g_alloc = {malloc, realloc, free};

void cbev_set_allocator(const cbev_allocator *a) {
  cJSON_Hooks hooks;

  if (a && a->malloc_fn && a->realloc_fn && a->free_fn)
    g_alloc = *a;
  else
    g_alloc = (cbev_allocator){malloc, realloc, free};
  /* cJSON uses realloc only when both hooks are the C library's; giving
   * it our malloc/free keeps every one of its allocations on the hook. */
  hooks.malloc_fn = g_alloc.malloc_fn;
  hooks.free_fn = g_alloc.free_fn;
  cJSON_InitHooks(&hooks);
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

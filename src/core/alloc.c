/*
 * alloc.c: the allocator hooks of libcbevents, and the arena that parsed
 * batches live in (arena.h). cJSON gets the installed allocator as its
 * hooks, so a test can fail the Nth allocation anywhere, cJSON's included.
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "arena.h"
#include "cbevents/alloc.h"

static cbev_allocator g_alloc = {malloc, realloc, free};

/* ---- the arena ----------------------------------------------------------- */

/* First block: about what the parser makes of a body, within these
 * bounds; later blocks double. A 100-event batch of realistic events takes
 * about 4 times its text: the copy, 32-byte nodes (about one per 16 bytes
 * of text) and the events. */
#define ARENA_PER_BYTE 5u
#define ARENA_FIRST_MIN 4096u
#define ARENA_FIRST_MAX (4u << 20)
#define ARENA_ALIGN (alignof(max_align_t))

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  alignas(max_align_t) unsigned char data[];
} arena_block;

struct cbev_arena {
  atomic_size_t refs;
  arena_block *head; /* the block allocations come from; older ones follow */
  size_t next_cap;
};

cbev_arena *cbev__arena_new(size_t hint) {
  cbev_arena *a = cbev_calloc(1, sizeof *a);
  size_t first = hint > ARENA_FIRST_MAX / ARENA_PER_BYTE ? ARENA_FIRST_MAX : hint * ARENA_PER_BYTE;

  if (!a)
    return NULL;
  atomic_init(&a->refs, 1);
  a->next_cap = first < ARENA_FIRST_MIN ? ARENA_FIRST_MIN : first;
  return a;
}

void cbev__arena_ref(cbev_arena *a) {
  if (a)
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

void cbev__arena_unref(cbev_arena *a) {
  arena_block *blk, *next;

  if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (blk = a->head; blk; blk = next) {
    next = blk->next;
    cbev_free(blk);
  }
  cbev_free(a);
}

void *cbev__arena_alloc(cbev_arena *a, size_t size) {
  arena_block *blk = a->head;
  size_t need = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  void *p;

  if (need < size)
    return NULL;
  if (!blk || blk->cap - blk->used < need) {
    size_t cap = a->next_cap;
    while (cap < need) {
      if (cap > SIZE_MAX / 2)
        return NULL;
      cap *= 2;
    }
    if (cap > SIZE_MAX - sizeof *blk || !(blk = cbev_malloc(sizeof *blk + cap)))
      return NULL;
    blk->used = 0;
    blk->cap = cap;
    blk->next = a->head;
    a->head = blk;
    if (a->next_cap < ARENA_FIRST_MAX)
      a->next_cap *= 2;
  }
  p = blk->data + blk->used;
  blk->used += need;
  return p;
}

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

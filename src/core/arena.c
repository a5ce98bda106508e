/*
 * arena.c: the bump allocator behind a parsed batch (see arena.h). Its
 * blocks come from the library's allocator hooks (alloc.c).
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "cbevents/alloc.h"

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

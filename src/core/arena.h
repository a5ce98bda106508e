/*
 * arena.h: the bump allocator behind a parsed batch (internal).
 *
 * A batch's tree (json.h) is thousands of small nodes and strings; they
 * come from the batch's arena and go away with one free per block when the
 * last holder lets go. The batch and every event parsed from it hold a
 * reference (an event taken out of the batch keeps the arena alive),
 * counted atomically so events may be freed on any thread. Internal: these
 * names are not exported from the shared library.
 */
#ifndef CBEV_ARENA_H
#define CBEV_ARENA_H

#include <stddef.h>

typedef struct cbev_arena cbev_arena;

/* A new arena (one reference) whose first block suits a body of hint
 * bytes; NULL on ENOMEM. */
cbev_arena *cbev__arena_new(size_t hint);
void cbev__arena_ref(cbev_arena *a);
/* Drops a reference; the last one frees every block. NULL is ignored. */
void cbev__arena_unref(cbev_arena *a);
/* size bytes, aligned for any type, valid until the arena goes; NULL on
 * ENOMEM. Not thread-safe: only the parse that owns the arena allocates. */
void *cbev__arena_alloc(cbev_arena *a, size_t size);

#endif

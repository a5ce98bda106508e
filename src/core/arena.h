/*
 * arena.h: the bump allocator behind a parsed batch (internal).
 *
 * cJSON allocates a node or a string per JSON value and frees them one by
 * one; for a 1000-event batch that is tens of thousands of malloc/free
 * pairs, most of the parse cost. While a parse runs, cJSON's hooks take
 * memory from the batch's arena instead, and the whole tree goes away with
 * one free per block when the last holder lets go. The batch and every
 * event parsed from it hold a reference (an event taken out of the batch
 * keeps the arena alive), counted atomically so events may be freed on any
 * thread. Internal: these names are not exported from the shared library.
 */
#ifndef CBEV_ARENA_H
#define CBEV_ARENA_H

#include <stddef.h>

typedef struct cbev_arena cbev_arena;

/* A new arena (one reference) whose first block suits a body of hint
 * bytes; NULL on ENOMEM. */
cbev_arena *arena_new(size_t hint);
void arena_ref(cbev_arena *a);
/* Drops a reference; the last one frees every block. NULL is ignored. */
void arena_unref(cbev_arena *a);
/* Routes cJSON's allocations on this thread to a (NULL: back to the heap);
 * returns the previous arena so calls can nest. */
cbev_arena *arena_enter(cbev_arena *a);
/* Whether an allocation from a failed (out of memory) since creation. */
int arena_failed(const cbev_arena *a);
/* Installs the library's hooks into cJSON, once per process (also done by
 * cbev_set_allocator()). Parsing calls it before entering an arena: without
 * the hooks cJSON would take the heap and free arena memory. */
void arena_json_hooks_init(void);

#endif

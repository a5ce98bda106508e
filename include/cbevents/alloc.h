/*
 * cbevents/alloc.h: the allocator the library (and cJSON) uses.
 *
 * Every allocation of libcbevents goes through these hooks (a parsed
 * batch takes a few large blocks, its arena), and cJSON's too: the library
 * installs its own cJSON hooks (in cbev_set_allocator(), or on the first
 * cbev_event_raw()) that call these, so tests can make the Nth allocation
 * fail and check that nothing leaks or crashes. A program that
 * uses cJSON itself keeps working, but must not call cJSON_InitHooks()
 * after that. Call cbev_set_allocator() before any other library function,
 * from one thread.
 */
#ifndef CBEVENTS_ALLOC_H
#define CBEVENTS_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbev_allocator {
  void *(*malloc_fn)(size_t size);
  void *(*realloc_fn)(void *ptr, size_t size);
  void (*free_fn)(void *ptr);
} cbev_allocator;

/* Installs a (all three functions non-NULL) or, with NULL, the C library's
 * malloc/realloc/free.
 *
 * The one allocation rule: whoever allocates names the free. Memory the
 * library returns to the caller (JSON text, masked strings, secrets read
 * from files, body buffers) is released with cbev_free(), handles with their
 * own _free(); what cJSON allocates (cJSON_Print* output, a cJSON tree the
 * caller made) with cJSON_free()/cJSON_Delete(). Never free() either: it is
 * only right while the default allocator is installed. */
void cbev_set_allocator(const cbev_allocator *a);

void *cbev_malloc(size_t size);
void *cbev_calloc(size_t n, size_t size); /* NULL on overflow */
void *cbev_realloc(void *ptr, size_t size);
void cbev_free(void *ptr);
char *cbev_strdup(const char *s);           /* NULL in, NULL out */
char *cbev_strndup(const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif

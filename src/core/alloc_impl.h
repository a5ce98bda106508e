/*
 * alloc_impl.h: the allocator's internal entry points (alloc.c).
 */
#ifndef CBEV_ALLOC_IMPL_H
#define CBEV_ALLOC_IMPL_H

/* Installs the library's allocator as cJSON's hooks, once per process
 * (also done by cbev_set_allocator()). Call before any cJSON allocation. */
void cbev__cjson_hooks_init(void);

#endif

/*
 * failalloc.h: an allocator whose Nth allocation (counting from 0) fails,
 * for the tests that walk every allocation-failure path of a module:
 * install g_failing with cbev_set_allocator(), set g_allocs = 0 and
 * g_fail_at = N, run, and expect CBEV_ENOMEM or success and no leak (ASan).
 * g_fail_at = -1 fails nothing.
 */
#ifndef CBEV_TEST_FAILALLOC_H
#define CBEV_TEST_FAILALLOC_H

#include <stdlib.h>

#include "cbevents/alloc.h"

static long g_fail_at = -1, g_allocs;

static void *fail_malloc(size_t n) { return g_allocs++ == g_fail_at ? NULL : malloc(n); }

static void *fail_realloc(void *p, size_t n) {
  return g_allocs++ == g_fail_at ? NULL : realloc(p, n);
}

static const cbev_allocator g_failing = {fail_malloc, fail_realloc, free};

#endif

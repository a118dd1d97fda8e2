/*
 * Test helper: an allocator that fails on request (curl's torture mode).
 *
 * Allocation attempts are counted from 1; attempt `fail_at` returns NULL
 * (0: none does). A `sticky` allocator goes on failing every attempt
 * after that one too, for code that must give up cleanly rather than
 * carry on once memory runs out. Include after <cmocka.h>.
 */
#ifndef KITH_TEST_FAILING_ALLOC_H
#define KITH_TEST_FAILING_ALLOC_H

#include <stdlib.h>

#include "kith/ctx.h"

typedef struct falloc {
  long fail_at;  /* 1-based; 0 never */
  long attempts; /* counted since the caller last set it to 0 */
  int sticky;    /* fail every attempt from fail_at on */
} falloc_t;

static inline int falloc_fails(falloc_t *f)
{
  ++f->attempts;
  if (f->fail_at == 0)
    return 0;
  return f->sticky ? f->attempts >= f->fail_at : f->attempts == f->fail_at;
}

static inline void *falloc_malloc(size_t n, void *ud)
{
  return falloc_fails(ud) ? NULL : malloc(n);
}

static inline void *falloc_realloc(void *ptr, size_t n, void *ud)
{
  return falloc_fails(ud) ? NULL : realloc(ptr, n);
}

static inline void falloc_free(void *ptr, void *ud)
{
  (void)ud;
  free(ptr);
}

/* The kith allocator that counts into, and fails as told by, `f`. */
static inline kith_allocator_t falloc_allocator(falloc_t *f)
{
  kith_allocator_t a = {falloc_malloc, falloc_realloc, falloc_free, f};

  return a;
}

/* Run `session` once on a context with a failing allocator to count its
 * allocations, then once more for each of them, with that one failing.
 * The session asserts nothing about the outcome: a failed allocation may
 * lose work, but must not crash or leak. */
static inline void fail_each_allocation(void (*session)(kith_ctx_t *ctx))
{
  falloc_t f = {0, 0, 0};
  kith_allocator_t a = falloc_allocator(&f);
  kith_ctx_t *ctx = NULL;
  long total, i;

  assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
  f.attempts = 0;
  session(ctx); /* count the allocations of a clean run */
  total = f.attempts;
  assert_true(total > 20);
  for (i = 1; i <= total; i++) {
    f.attempts = 0;
    f.fail_at = i;
    session(ctx);
  }
  kith_ctx_free(ctx);
}

#endif /* KITH_TEST_FAILING_ALLOC_H */

/*
 * Internal: allocation and logging through a kith_ctx_t.
 *
 * Every allocation in libkith goes through these so that an application's
 * allocator hooks (and the failing allocator the tests use) see all of them.
 * A NULL ctx means the default context.
 */
#ifndef KITH_CORE_CTX_H
#define KITH_CORE_CTX_H

#include <stdarg.h>
#include <stddef.h>
#include "kith/ctx.h"

struct kith_ctx {
  kith_allocator_t alloc;
  kith_log_level_t log_level;
  kith_log_cb log_cb;
  void *log_ud;
};

/* Resolve NULL to the process-wide default context. */
kith_ctx_t *kith__ctx(kith_ctx_t *ctx);

void *kith__malloc(kith_ctx_t *ctx, size_t size);
void *kith__calloc(kith_ctx_t *ctx, size_t n, size_t size);
void *kith__realloc(kith_ctx_t *ctx, void *ptr, size_t size);
void kith__free(kith_ctx_t *ctx, void *ptr);
char *kith__strdup(kith_ctx_t *ctx, const char *s);
char *kith__strndup(kith_ctx_t *ctx, const char *s, size_t n);

/* Non-zero when a message at `level` would reach the log callback. */
int kith__log_enabled(kith_ctx_t *ctx, kith_log_level_t level);
void kith__log(kith_ctx_t *ctx, kith_log_level_t level, const char *area,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void kith__vlog(kith_ctx_t *ctx, kith_log_level_t level, const char *area,
                const char *fmt, va_list ap);

#define kith__err(ctx, area, ...)                                              \
  kith__log(ctx, KITH_LOG_ERROR, area, __VA_ARGS__)
#define kith__warn(ctx, area, ...)                                             \
  kith__log(ctx, KITH_LOG_WARN, area, __VA_ARGS__)
#define kith__info(ctx, area, ...)                                             \
  kith__log(ctx, KITH_LOG_INFO, area, __VA_ARGS__)
#define kith__debug(ctx, area, ...)                                            \
  kith__log(ctx, KITH_LOG_DEBUG, area, __VA_ARGS__)

#endif /* KITH_CORE_CTX_H */

/*
 * Contexts: allocator hooks and the log callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"

static void *default_malloc(size_t size, void *ud)
{
  (void)ud;
  return malloc(size);
}

static void *default_realloc(void *ptr, size_t size, void *ud)
{
  (void)ud;
  return realloc(ptr, size);
}

static void default_free(void *ptr, void *ud)
{
  (void)ud;
  free(ptr);
}

static kith_ctx_t default_ctx = {
    {default_malloc, default_realloc, default_free, NULL},
    KITH_LOG_ERROR,
    NULL,
    NULL,
};

kith_ctx_t *kith__ctx(kith_ctx_t *ctx)
{
  return ctx ? ctx : &default_ctx;
}

kith_status_t kith_ctx_new(const kith_allocator_t *alloc, kith_ctx_t **out)
{
  kith_ctx_t *ctx;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  if (alloc && (!alloc->malloc_fn || !alloc->realloc_fn || !alloc->free_fn))
    return KITH_EINVAL;
  if (alloc)
    ctx = alloc->malloc_fn(sizeof(*ctx), alloc->ud);
  else
    ctx = malloc(sizeof(*ctx));
  if (ctx == NULL)
    return KITH_ENOMEM;
  memset(ctx, 0, sizeof(*ctx));
  ctx->alloc = alloc ? *alloc : default_ctx.alloc;
  ctx->log_level = KITH_LOG_ERROR;
  *out = ctx;
  return KITH_OK;
}

void kith_ctx_free(kith_ctx_t *ctx)
{
  if (ctx == NULL || ctx == &default_ctx)
    return;
  ctx->alloc.free_fn(ctx, ctx->alloc.ud);
}

void kith_ctx_set_log(kith_ctx_t *ctx, kith_log_level_t max_level,
                      kith_log_cb cb, void *ud)
{
  ctx = kith__ctx(ctx);
  ctx->log_level = max_level;
  ctx->log_cb = cb;
  ctx->log_ud = ud;
}

const char *kith_log_level_name(kith_log_level_t level)
{
  static const char *const names[] = {"error", "warn", "info", "debug",
                                      "trace"};
  if ((unsigned)level < sizeof(names) / sizeof(names[0]))
    return names[level];
  return "?";
}

void kith_log_stderr(void *ud, kith_log_level_t level, const char *area,
                     const char *msg)
{
  (void)ud;
  fprintf(stderr, "kith %s %s: %s\n", kith_log_level_name(level), area, msg);
}

void kith_free(kith_ctx_t *ctx, void *ptr)
{
  kith__free(ctx, ptr);
}

void *kith__malloc(kith_ctx_t *ctx, size_t size)
{
  ctx = kith__ctx(ctx);
  return ctx->alloc.malloc_fn(size ? size : 1, ctx->alloc.ud);
}

void *kith__calloc(kith_ctx_t *ctx, size_t n, size_t size)
{
  void *p;

  if (size && n > (size_t)-1 / size)
    return NULL;
  p = kith__malloc(ctx, n * size);
  if (p)
    memset(p, 0, n * size);
  return p;
}

void *kith__realloc(kith_ctx_t *ctx, void *ptr, size_t size)
{
  ctx = kith__ctx(ctx);
  return ctx->alloc.realloc_fn(ptr, size ? size : 1, ctx->alloc.ud);
}

void kith__free(kith_ctx_t *ctx, void *ptr)
{
  if (ptr == NULL)
    return;
  ctx = kith__ctx(ctx);
  ctx->alloc.free_fn(ptr, ctx->alloc.ud);
}

char *kith__strndup(kith_ctx_t *ctx, const char *s, size_t n)
{
  char *p = kith__malloc(ctx, n + 1);

  if (p == NULL)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *kith__strdup(kith_ctx_t *ctx, const char *s)
{
  return s ? kith__strndup(ctx, s, strlen(s)) : NULL;
}

int kith__log_enabled(kith_ctx_t *ctx, kith_log_level_t level)
{
  ctx = kith__ctx(ctx);
  return ctx->log_cb != NULL && level <= ctx->log_level;
}

void kith__vlog(kith_ctx_t *ctx, kith_log_level_t level, const char *area,
                const char *fmt, va_list ap)
{
  char line[1024];

  ctx = kith__ctx(ctx);
  if (!kith__log_enabled(ctx, level))
    return;
  /* Long messages (raw XML at trace level) are cut at the buffer size; the
   * log is for people, and a bounded line keeps logging allocation-free. */
  vsnprintf(line, sizeof(line), fmt, ap);
  ctx->log_cb(ctx->log_ud, level, area, line);
}

void kith__log(kith_ctx_t *ctx, kith_log_level_t level, const char *area,
               const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  kith__vlog(ctx, level, area, fmt, ap);
  va_end(ap);
}

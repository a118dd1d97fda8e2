/*
 * Capped growable buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/ctx.h"

void kith__buf_init(kith__buf_t *b, kith_ctx_t *ctx, size_t cap)
{
  memset(b, 0, sizeof(*b));
  b->ctx = ctx;
  b->cap = cap;
}

void kith__buf_free(kith__buf_t *b)
{
  kith__free(b->ctx, b->data);
  b->data = NULL;
  b->len = b->alloc = 0;
}

void kith__buf_reset(kith__buf_t *b)
{
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

static kith_status_t grow(kith__buf_t *b, size_t extra)
{
  size_t need, n;
  char *p;

  if (extra > b->cap || b->len > b->cap - extra)
    return KITH_ELIMIT;
  need = b->len + extra + 1;
  if (need <= b->alloc)
    return KITH_OK;
  n = b->alloc ? b->alloc : 64;
  while (n < need)
    n = n > ((size_t)-1) / 2 ? need : n * 2;
  if (n > b->cap + 1)
    n = b->cap + 1;
  p = kith__realloc(b->ctx, b->data, n);
  if (p == NULL)
    return KITH_ENOMEM;
  b->data = p;
  b->alloc = n;
  return KITH_OK;
}

kith_status_t kith__buf_add(kith__buf_t *b, const void *data, size_t len)
{
  kith_status_t rc = grow(b, len);

  if (rc != KITH_OK)
    return rc;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return KITH_OK;
}

kith_status_t kith__buf_adds(kith__buf_t *b, const char *s)
{
  return kith__buf_add(b, s, strlen(s));
}

kith_status_t kith__buf_addc(kith__buf_t *b, char c)
{
  return kith__buf_add(b, &c, 1);
}

kith_status_t kith__buf_printf(kith__buf_t *b, const char *fmt, ...)
{
  va_list ap;
  int n;
  kith_status_t rc;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return KITH_EINVAL;
  rc = grow(b, (size_t)n);
  if (rc != KITH_OK)
    return rc;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return KITH_OK;
}

void kith__buf_consume(kith__buf_t *b, size_t n)
{
  if (n >= b->len) {
    kith__buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n + 1);
  b->len -= n;
}

char *kith__buf_take(kith__buf_t *b, size_t *len)
{
  char *p;

  if (b->data == NULL) {
    if (grow(b, 0) != KITH_OK)
      return NULL;
    b->data[0] = '\0';
  }
  p = b->data;
  if (len)
    *len = b->len;
  b->data = NULL;
  b->len = b->alloc = 0;
  return p;
}

/*
 * Internal: a growable byte buffer with a hard cap (like curl's dynbuf).
 *
 * Every output kith builds (serialized XML, the send queue) goes through
 * one of these; growing past `cap` fails with KITH_ELIMIT instead of eating
 * memory. The content is always NUL-terminated for convenience.
 */
#ifndef KITH_CORE_BUF_H
#define KITH_CORE_BUF_H

#include <stddef.h>
#include "kith/ctx.h"

typedef struct kith__buf {
  kith_ctx_t *ctx;
  char *data;
  size_t len;   /* bytes used, excluding the terminating NUL */
  size_t alloc; /* bytes allocated */
  size_t cap;   /* most bytes len may reach */
} kith__buf_t;

void kith__buf_init(kith__buf_t *b, kith_ctx_t *ctx, size_t cap);
void kith__buf_free(kith__buf_t *b);
void kith__buf_reset(kith__buf_t *b); /* len = 0, keeps the memory */
kith_status_t kith__buf_add(kith__buf_t *b, const void *data, size_t len);
kith_status_t kith__buf_adds(kith__buf_t *b, const char *s);
kith_status_t kith__buf_addc(kith__buf_t *b, char c);
kith_status_t kith__buf_printf(kith__buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (consumed output). */
void kith__buf_consume(kith__buf_t *b, size_t n);
/* Hand the data over to the caller (freed with kith__free(ctx, ...)) and
 * leave the buffer empty. Returns "" (allocated) for an empty buffer, or
 * NULL when out of memory. */
char *kith__buf_take(kith__buf_t *b, size_t *len);

#endif /* KITH_CORE_BUF_H */

/*
 * kith: library context (allocator hooks and logging).
 *
 * A context carries the allocator and the log callback that every object
 * created from it uses. Functions that take a kith_ctx_t * accept NULL,
 * meaning the process-wide default context (malloc/free, no logging).
 * A context must outlive every object created from it.
 */
#ifndef KITH_CTX_H
#define KITH_CTX_H

#include <stddef.h>
#include "export.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kith_ctx kith_ctx_t;

/**
 * Allocator hooks. All three are required. `realloc_fn` must behave like
 * realloc(3) (NULL pointer means allocate). `ud` is passed through.
 */
typedef struct kith_allocator {
  void *(*malloc_fn)(size_t size, void *ud);
  void *(*realloc_fn)(void *ptr, size_t size, void *ud);
  void (*free_fn)(void *ptr, void *ud);
  void *ud;
} kith_allocator_t;

/** Log levels, most severe first. */
typedef enum kith_log_level {
  KITH_LOG_ERROR = 0,
  KITH_LOG_WARN = 1,
  KITH_LOG_INFO = 2,
  KITH_LOG_DEBUG = 3,
  KITH_LOG_TRACE = 4 /* raw XML traffic */
} kith_log_level_t;

/**
 * Log callback. `area` names the module ("xml", "session", "tls", ...);
 * `msg` is a complete line without a trailing newline. Both are borrowed
 * for the duration of the call.
 */
typedef void (*kith_log_cb)(void *ud, kith_log_level_t level, const char *area,
                            const char *msg);

/**
 * Create a context. `alloc` may be NULL for malloc/free; it is copied.
 * Returns KITH_OK and sets *out, or KITH_EINVAL / KITH_ENOMEM.
 */
KITH_EXTERN kith_status_t kith_ctx_new(const kith_allocator_t *alloc,
                                       kith_ctx_t **out);

/** Free a context. NULL is a no-op. */
KITH_EXTERN void kith_ctx_free(kith_ctx_t *ctx);

/**
 * Set the log callback and the most verbose level passed to it. `cb` NULL
 * switches logging off. Messages above `max_level` are never formatted.
 */
KITH_EXTERN void kith_ctx_set_log(kith_ctx_t *ctx, kith_log_level_t max_level,
                                  kith_log_cb cb, void *ud);

/**
 * A ready-made log callback that writes "kith LEVEL area: msg" lines to
 * stderr. Pass it to kith_ctx_set_log() with `ud` NULL.
 */
KITH_EXTERN void kith_log_stderr(void *ud, kith_log_level_t level,
                                 const char *area, const char *msg);

/** Name of a log level ("error", "warn", "info", "debug", "trace"). */
KITH_EXTERN const char *kith_log_level_name(kith_log_level_t level);

/**
 * Free memory that a kith function returned as an owned plain buffer (a
 * string from kith_stanza_to_string(), kith_jid_normalize(), ...). `ctx` must
 * be the context the object came from (NULL for the default). NULL `ptr` is a
 * no-op.
 */
KITH_EXTERN void kith_free(kith_ctx_t *ctx, void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* KITH_CTX_H */

/*
 * Internal: the built-in store backends and the generic layer's helpers.
 *
 * kith_store_open() parses the scheme and hands the rest of the URI to the
 * backend's open function:
 *   "memory:"               kith__store_open_memory(ctx, "", ...)
 *   "sqlite:PATH?OPTS"      kith__store_open_sqlite(ctx, "PATH?OPTS", ...)
 *                           (PATH already defaulted when it was empty)
 *   "redis://HOST:PORT/DB?OPTS"
 *                           kith__store_open_redis(ctx, "HOST:PORT/DB?OPTS")
 * Each creates its store with kith_store_new() and, on failure, writes why
 * into err/errlen (may be NULL/0) and returns KITH_EINVAL (bad URI),
 * KITH_ESTORE or KITH_ECORRUPT.
 *
 * Options (after '?', '&'-separated key=value):
 *   sqlite  synchronous=off|normal|full|extra   (default full: durable)
 *           busy_timeout=MS                      (default 5000)
 *           on_corrupt=fail|reset  a damaged file fails the open (default)
 *                                  or, for a cache, is moved aside as
 *                                  PATH.corrupt-TIME and started afresh
 *   redis   prefix=P      key prefix (default "kith")
 *           timeout=MS    connect and command timeout (default 5000)
 */
#ifndef KITH_STORE_INTERNAL_H
#define KITH_STORE_INTERNAL_H

#include <stddef.h>
#include "kith/store.h"

kith_status_t kith__store_open_memory(kith_ctx_t *ctx, const char *rest,
                                      kith_store_t **out, char *err,
                                      size_t errlen);
kith_status_t kith__store_open_sqlite(kith_ctx_t *ctx, const char *rest,
                                      kith_store_t **out, char *err,
                                      size_t errlen);
kith_status_t kith__store_open_redis(kith_ctx_t *ctx, const char *rest,
                                     kith_store_t **out, char *err,
                                     size_t errlen);

/** The store's context. */
kith_ctx_t *kith__store_ctx(const kith_store_t *store);

/** Set the URI kith_store_uri() reports (copied). KITH_ENOMEM. */
kith_status_t kith__store_set_uri(kith_store_t *store, const char *uri);

/** snprintf into err/errlen when err is not NULL. */
void kith__store_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Split "k=v&k2=v2" option strings: calls fn(ud, key, value) for each
 * (key and value NUL-terminated copies, valid during the call). A non-OK
 * return stops and is returned. KITH_EINVAL for an option without '='.
 */
kith_status_t kith__store_options(kith_ctx_t *ctx, const char *opts,
                                  kith_status_t (*fn)(void *ud, const char *key,
                                                      const char *value),
                                  void *ud);

#endif /* KITH_STORE_INTERNAL_H */

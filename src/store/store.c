/*
 * Stores: the generic layer (URI dispatch, errors, the backend calls).
 * The backends are memory.c, sqlite.c and redis.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "store/store.h"

#define ERRMSG_MAX 512

struct kith_store {
  kith_ctx_t *ctx;
  const kith_store_backend_t *backend;
  void *impl;
  char *uri;
  char errmsg[ERRMSG_MAX];
};

void kith__store_err(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (err == NULL || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

kith_ctx_t *kith__store_ctx(const kith_store_t *store)
{
  return store->ctx;
}

kith_status_t kith__store_set_uri(kith_store_t *store, const char *uri)
{
  char *cp = kith__strdup(store->ctx, uri);

  if (cp == NULL)
    return KITH_ENOMEM;
  kith__free(store->ctx, store->uri);
  store->uri = cp;
  return KITH_OK;
}

kith_status_t kith__store_options(kith_ctx_t *ctx, const char *opts,
                                  kith_status_t (*fn)(void *ud, const char *key,
                                                      const char *value),
                                  void *ud)
{
  kith_status_t rc = KITH_OK;
  char *copy, *p, *next, *eq;

  if (opts == NULL || *opts == '\0')
    return KITH_OK;
  if ((copy = kith__strdup(ctx, opts)) == NULL)
    return KITH_ENOMEM;
  for (p = copy; p && rc == KITH_OK; p = next) {
    next = strchr(p, '&');
    if (next)
      *next++ = '\0';
    if (*p == '\0')
      continue;
    if ((eq = strchr(p, '=')) == NULL) {
      rc = KITH_EINVAL;
      break;
    }
    *eq = '\0';
    rc = fn(ud, p, eq + 1);
  }
  kith__free(ctx, copy);
  return rc;
}

kith_status_t kith_store_default_path(char *buf, size_t len)
{
  const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
  int n;

  if (buf == NULL || len == 0)
    return KITH_EINVAL;
  if (xdg && *xdg == '/')
    n = snprintf(buf, len, "%s/kith/roster.db", xdg);
  else if (home && *home)
    n = snprintf(buf, len, "%s/.local/share/kith/roster.db", home);
  else
    return KITH_ENOTFOUND;
  return n < 0 || (size_t)n >= len ? KITH_ELIMIT : KITH_OK;
}

kith_status_t kith_store_new(kith_ctx_t *ctx,
                             const kith_store_backend_t *backend, void *impl,
                             kith_store_t **out)
{
  kith_store_t *st;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  if (backend == NULL || backend->load == NULL || backend->apply == NULL ||
      backend->owners == NULL)
    return KITH_EINVAL;
  ctx = kith__ctx(ctx);
  if ((st = kith__calloc(ctx, 1, sizeof(*st))) == NULL)
    return KITH_ENOMEM;
  st->ctx = ctx;
  st->backend = backend;
  st->impl = impl;
  *out = st;
  return KITH_OK;
}

void kith_store_close(kith_store_t *store)
{
  if (store == NULL)
    return;
  if (store->backend->close)
    store->backend->close(store->impl);
  kith__free(store->ctx, store->uri);
  kith__free(store->ctx, store);
}

/* "sqlite:" with no path: the default path. */
static kith_status_t sqlite_default(kith_ctx_t *ctx, const char *rest,
                                    char **out, char *err, size_t errlen)
{
  char path[4096];
  size_t plen;
  kith_status_t rc;

  *out = NULL;
  if (*rest != '\0' && *rest != '?')
    return KITH_OK;
  if ((rc = kith_store_default_path(path, sizeof(path))) != KITH_OK) {
    kith__store_err(err, errlen,
                    "sqlite: no path given and neither XDG_DATA_HOME nor "
                    "HOME is set");
    return KITH_EINVAL;
  }
  plen = strlen(path);
  if ((*out = kith__malloc(ctx, plen + strlen(rest) + 1)) == NULL)
    return KITH_ENOMEM;
  memcpy(*out, path, plen);
  strcpy(*out + plen, rest);
  return KITH_OK;
}

kith_status_t kith_store_open(kith_ctx_t *ctx, const char *uri,
                              kith_store_t **out, char *err, size_t errlen)
{
  char *filled = NULL, *full = NULL;
  kith_status_t rc;

  if (err && errlen)
    err[0] = '\0';
  if (out == NULL || uri == NULL) {
    kith__store_err(err, errlen, "no store URI");
    return KITH_EINVAL;
  }
  *out = NULL;
  ctx = kith__ctx(ctx);
  if (strncmp(uri, "memory:", 7) == 0) {
    if (uri[7] != '\0') {
      kith__store_err(err, errlen, "memory: takes no path or options");
      return KITH_EINVAL;
    }
    rc = kith__store_open_memory(ctx, "", out, err, errlen);
  } else if (strncmp(uri, "sqlite:", 7) == 0) {
    if ((rc = sqlite_default(ctx, uri + 7, &filled, err, errlen)) != KITH_OK)
      return rc;
    rc = kith__store_open_sqlite(ctx, filled ? filled : uri + 7, out, err,
                                 errlen);
    if (rc == KITH_OK && filled) {
      full = kith__malloc(ctx, strlen(filled) + 8);
      if (full == NULL)
        rc = KITH_ENOMEM;
      else
        sprintf(full, "sqlite:%s", filled);
    }
  } else if (strncmp(uri, "redis://", 8) == 0) {
    rc = kith__store_open_redis(ctx, uri + 8, out, err, errlen);
  } else {
    kith__store_err(err, errlen,
                    "unknown store URI '%s' (expected sqlite:PATH, "
                    "redis://HOST:PORT/DB or memory:)",
                    uri);
    return KITH_EINVAL;
  }
  if (rc == KITH_OK)
    rc = kith__store_set_uri(*out, full ? full : uri);
  if (rc != KITH_OK && *out) {
    if (rc == KITH_ENOMEM)
      kith__store_err(err, errlen, "out of memory");
    kith_store_close(*out);
    *out = NULL;
  }
  kith__free(ctx, filled);
  kith__free(ctx, full);
  return rc;
}

const char *kith_store_backend_name(const kith_store_t *store)
{
  return store ? store->backend->name : "";
}

const char *kith_store_uri(const kith_store_t *store)
{
  return store && store->uri ? store->uri : "";
}

void kith_store_set_error(kith_store_t *store, const char *fmt, ...)
{
  va_list ap;

  if (store == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(store->errmsg, sizeof(store->errmsg), fmt, ap);
  va_end(ap);
}

const char *kith_store_errmsg(const kith_store_t *store)
{
  return store ? store->errmsg : "";
}

/* A failure the backend did not explain still gets a message. */
static kith_status_t finish(kith_store_t *store, kith_status_t rc,
                            const char *what, const char *owner)
{
  if (rc != KITH_OK && rc != KITH_ENOTFOUND && store->errmsg[0] == '\0')
    kith_store_set_error(store, "%s store: %s%s%s failed: %s",
                         store->backend->name, what, owner ? " of " : "",
                         owner ? owner : "", kith_strerror(rc));
  return rc;
}

kith_status_t kith_store_load(kith_store_t *store, const char *owner,
                              const kith_store_sink_t *sink)
{
  if (store == NULL || owner == NULL || sink == NULL || sink->item == NULL)
    return KITH_EINVAL;
  store->errmsg[0] = '\0';
  return finish(store, store->backend->load(store, store->impl, owner, sink),
                "load", owner);
}

kith_status_t kith_store_apply(kith_store_t *store, const char *owner,
                               const kith_store_op_t *ops, size_t n)
{
  if (store == NULL || owner == NULL || (ops == NULL && n > 0))
    return KITH_EINVAL;
  store->errmsg[0] = '\0';
  return finish(store, store->backend->apply(store, store->impl, owner, ops, n),
                "write", owner);
}

kith_status_t kith_store_owners(kith_store_t *store, kith_store_owner_fn fn,
                                void *ud)
{
  if (store == NULL || fn == NULL)
    return KITH_EINVAL;
  store->errmsg[0] = '\0';
  return finish(store, store->backend->owners(store, store->impl, fn, ud),
                "listing owners", NULL);
}

/* Without a backend reset: list every owner, then drop each in its own
 * batch (not while the backend is still walking them). */
typedef struct owner_list {
  kith_ctx_t *ctx;
  char **v;
  size_t n, cap;
} owner_list_t;

static kith_status_t collect_owner(void *ud, const char *owner)
{
  owner_list_t *l = ud;
  char **nv;

  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;

    if ((nv = kith__realloc(l->ctx, l->v, cap * sizeof(*nv))) == NULL)
      return KITH_ENOMEM;
    l->v = nv;
    l->cap = cap;
  }
  if ((l->v[l->n] = kith__strdup(l->ctx, owner)) == NULL)
    return KITH_ENOMEM;
  l->n++;
  return KITH_OK;
}

static kith_status_t drop_all(kith_store_t *store)
{
  owner_list_t l = {store->ctx, NULL, 0, 0};
  kith_store_op_t op;
  kith_status_t rc;
  size_t i;

  memset(&op, 0, sizeof(op));
  op.type = KITH_STORE_DROP;
  rc = store->backend->owners(store, store->impl, collect_owner, &l);
  for (i = 0; i < l.n; i++) {
    if (rc == KITH_OK)
      rc = store->backend->apply(store, store->impl, l.v[i], &op, 1);
    kith__free(store->ctx, l.v[i]);
  }
  kith__free(store->ctx, l.v);
  return rc;
}

kith_status_t kith_store_reset(kith_store_t *store)
{
  kith_status_t rc;

  if (store == NULL)
    return KITH_EINVAL;
  store->errmsg[0] = '\0';
  if (store->backend->reset)
    rc = store->backend->reset(store, store->impl);
  else
    rc = drop_all(store);
  return finish(store, rc, "reset", NULL);
}

/*
 * A custom store backend for the tests: it keeps its data in a real
 * memory: store and writes one line per batch into a log, so a test can
 * assert what a roster change wrote and that it was ONE batch:
 *
 *   "alice@localhost: PUT bob@localhost=3 VERSION v1\n"
 *
 * (PUT jid=flags, DELETE jid, VERSION ver|-, CLEAR, DROP; an empty batch
 * logs "owner: KNOWN"). Failures can be injected: `fail_apply` makes the
 * next N applies fail with KITH_ESTORE, `load_status` makes every load
 * return it (e.g. KITH_ECORRUPT). It is also the example of a custom
 * backend built on kith_store_new().
 */
#ifndef KITH_TEST_STORE_SPY_H
#define KITH_TEST_STORE_SPY_H

#include <stdio.h>
#include <string.h>

#include "kith/store.h"

typedef struct spy {
  kith_store_t *inner; /* the memory: store holding the data */
  char log[16384];
  size_t loglen;
  int applies, loads, resets;
  int fail_apply;            /* fail this many applies */
  kith_status_t load_status; /* KITH_OK: load normally */
} spy_t;

static void spy_logf(spy_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void spy_logf(spy_t *s, const char *fmt, ...)
{
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(s->log + s->loglen, sizeof(s->log) - s->loglen, fmt, ap);
  va_end(ap);
  if (n > 0 && (size_t)n < sizeof(s->log) - s->loglen)
    s->loglen += (size_t)n;
}

static kith_status_t spy_load(kith_store_t *store, void *impl,
                              const char *owner, const kith_store_sink_t *sink)
{
  spy_t *s = impl;

  s->loads++;
  if (s->load_status != KITH_OK) {
    kith_store_set_error(store, "spy: injected load failure for %s", owner);
    return s->load_status;
  }
  return kith_store_load(s->inner, owner, sink);
}

static kith_status_t spy_apply(kith_store_t *store, void *impl,
                               const char *owner, const kith_store_op_t *ops,
                               size_t n)
{
  spy_t *s = impl;
  size_t i;

  s->applies++;
  if (s->fail_apply > 0) {
    s->fail_apply--;
    kith_store_set_error(store, "spy: injected write failure for %s", owner);
    spy_logf(s, "%s: FAILED\n", owner);
    return KITH_ESTORE;
  }
  spy_logf(s, "%s:", owner);
  if (n == 0)
    spy_logf(s, " KNOWN");
  for (i = 0; i < n; i++) {
    switch (ops[i].type) {
    case KITH_STORE_PUT:
      spy_logf(s, " PUT %s=%u", ops[i].item.jid, ops[i].item.flags);
      break;
    case KITH_STORE_DELETE:
      spy_logf(s, " DELETE %s", ops[i].item.jid);
      break;
    case KITH_STORE_VERSION:
      spy_logf(s, " VERSION %s", ops[i].version ? ops[i].version : "-");
      break;
    case KITH_STORE_CLEAR:
      spy_logf(s, " CLEAR");
      break;
    case KITH_STORE_DROP:
      spy_logf(s, " DROP");
      break;
    }
  }
  spy_logf(s, "\n");
  return kith_store_apply(s->inner, owner, ops, n);
}

static kith_status_t spy_owners(kith_store_t *store, void *impl,
                                kith_store_owner_fn fn, void *ud)
{
  (void)store;
  return kith_store_owners(((spy_t *)impl)->inner, fn, ud);
}

static kith_status_t spy_reset(kith_store_t *store, void *impl)
{
  spy_t *s = impl;

  (void)store;
  s->resets++;
  s->load_status = KITH_OK; /* the damage is gone with the data */
  spy_logf(s, "RESET\n");
  return kith_store_reset(s->inner);
}

static const kith_store_backend_t spy_backend = {
    "spy", spy_load, spy_apply, spy_owners, spy_reset, NULL};

/* A spy store over a fresh memory: store. Close with kith_store_close()
 * and then spy_done(). */
static kith_store_t *spy_open(spy_t *s)
{
  kith_store_t *store = NULL;

  memset(s, 0, sizeof(*s));
  if (kith_store_open(NULL, "memory:", &s->inner, NULL, 0) != KITH_OK)
    return NULL;
  if (kith_store_new(NULL, &spy_backend, s, &store) != KITH_OK)
    return NULL;
  return store;
}

static void spy_done(spy_t *s)
{
  kith_store_close(s->inner);
  s->inner = NULL;
}

static void spy_forget(spy_t *s)
{
  s->loglen = 0;
  s->log[0] = '\0';
  s->applies = s->loads = s->resets = 0;
}

#endif /* KITH_TEST_STORE_SPY_H */

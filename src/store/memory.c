/*
 * Stores: the memory backend ("memory:").
 *
 * Two levels of chained hash tables: owners by bare JID, and in each owner
 * its items by contact JID. An item is one compact allocation, its strings
 * packed one after the other (JID, name, groups), so it is built whole
 * before it goes in and freed with one call. With a million owners of ten
 * contacts each, every byte of an item counts ten million times.
 *
 * apply() is atomic: it checks every operation, then allocates everything
 * the batch needs (the new items, version strings, a new owner, larger
 * bucket arrays), and only then changes the tables, with steps that cannot
 * fail. Out of memory therefore leaves the store as it was.
 */
#include <stdint.h>
#include <string.h>

#include "core/ctx.h"
#include "store/store.h"

#define MIN_BUCKETS 8

typedef struct mem_item {
  struct mem_item *next;
  uint32_t hash;
  uint32_t flags;
  uint32_t ngroups;
  uint8_t has_name;
  char data[]; /* jid NUL [name NUL] group NUL ... */
} mem_item_t;

typedef struct mem_owner {
  struct mem_owner *next;
  char *version;
  mem_item_t **buckets; /* NULL until the first item */
  uint32_t hash;
  uint32_t nbuckets, nitems;
  char owner[]; /* the key */
} mem_owner_t;

typedef struct mem_store {
  kith_ctx_t *ctx;
  mem_owner_t **buckets;
  size_t nbuckets, nowners;
  const char **groups; /* a loaded item's group pointers */
  size_t groups_cap;
} mem_store_t;

/* FNV-1a, 32 bits: short keys, good spread, no state. */
static uint32_t hash_str(const char *s)
{
  uint32_t h = 2166136261u;

  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 16777619u;
  }
  return h;
}

/* The bucket count for `n` entries: a power of two, load factor <= 1. */
static size_t buckets_for(size_t n)
{
  size_t b = MIN_BUCKETS;

  while (b < n && b < SIZE_MAX / 2)
    b *= 2;
  return b;
}

/* ---- items ------------------------------------------------------------ */

static mem_item_t *item_new(kith_ctx_t *ctx, const kith_store_item_t *src)
{
  size_t size = sizeof(mem_item_t) + strlen(src->jid) + 1, i;
  mem_item_t *it;
  char *p;

  if (src->ngroups > UINT32_MAX)
    return NULL;
  if (src->name)
    size += strlen(src->name) + 1;
  for (i = 0; i < src->ngroups; i++)
    size += strlen(src->groups[i]) + 1;
  if ((it = kith__malloc(ctx, size)) == NULL)
    return NULL;
  it->next = NULL;
  it->hash = hash_str(src->jid);
  it->flags = src->flags & KITH_STORE_FLAG_MASK;
  it->ngroups = (uint32_t)src->ngroups;
  it->has_name = src->name != NULL;
  p = stpcpy(it->data, src->jid) + 1;
  if (src->name)
    p = stpcpy(p, src->name) + 1;
  for (i = 0; i < src->ngroups; i++)
    p = stpcpy(p, src->groups[i]) + 1;
  return it;
}

/* Unpack an item for a sink; its groups go to m->groups. */
static kith_status_t item_view(mem_store_t *m, const mem_item_t *it,
                               kith_store_item_t *v)
{
  const char *p = it->data;
  size_t i;

  if (it->ngroups > m->groups_cap) {
    const char **ng =
        kith__realloc(m->ctx, m->groups, it->ngroups * sizeof(*ng));

    if (ng == NULL)
      return KITH_ENOMEM;
    m->groups = ng;
    m->groups_cap = it->ngroups;
  }
  v->jid = p;
  p += strlen(p) + 1;
  v->name = NULL;
  if (it->has_name) {
    v->name = p;
    p += strlen(p) + 1;
  }
  for (i = 0; i < it->ngroups; i++) {
    m->groups[i] = p;
    p += strlen(p) + 1;
  }
  v->groups = it->ngroups ? m->groups : NULL;
  v->ngroups = it->ngroups;
  v->flags = it->flags;
  return KITH_OK;
}

/* The link that points at the item `jid`, or at the end of its chain. */
static mem_item_t **item_slot(mem_owner_t *o, const char *jid, uint32_t h)
{
  mem_item_t **pp = &o->buckets[h & (o->nbuckets - 1)];

  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == h && strcmp((*pp)->data, jid) == 0)
      break;
  return pp;
}

/* Rehash into `nb` buckets (already allocated and zeroed). */
static void items_rehash(mem_owner_t *o, mem_item_t **nb, size_t n)
{
  size_t i;

  for (i = 0; i < o->nbuckets; i++) {
    mem_item_t *it = o->buckets[i], *next;

    for (; it; it = next) {
      next = it->next;
      it->next = nb[it->hash & (n - 1)];
      nb[it->hash & (n - 1)] = it;
    }
  }
}

/* Make room for `n` items without another allocation. */
static kith_status_t items_reserve(kith_ctx_t *ctx, mem_owner_t *o, size_t n)
{
  size_t want = buckets_for(n);
  mem_item_t **nb;

  if (o->buckets && o->nbuckets >= want)
    return KITH_OK;
  if (want > UINT32_MAX)
    return KITH_ENOMEM; /* four billion items for one owner */
  if ((nb = kith__calloc(ctx, want, sizeof(*nb))) == NULL)
    return KITH_ENOMEM;
  if (o->buckets)
    items_rehash(o, nb, want);
  kith__free(ctx, o->buckets);
  o->buckets = nb;
  o->nbuckets = (uint32_t)want;
  return KITH_OK;
}

static void items_clear(kith_ctx_t *ctx, mem_owner_t *o)
{
  size_t i;

  for (i = 0; i < o->nbuckets; i++) {
    mem_item_t *it = o->buckets[i], *next;

    for (; it; it = next) {
      next = it->next;
      kith__free(ctx, it);
    }
    o->buckets[i] = NULL;
  }
  o->nitems = 0;
}

/* ---- owners ----------------------------------------------------------- */

static mem_owner_t **owner_slot(mem_store_t *m, const char *owner, uint32_t h)
{
  mem_owner_t **pp = &m->buckets[h & (m->nbuckets - 1)];

  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == h && strcmp((*pp)->owner, owner) == 0)
      break;
  return pp;
}

static void owner_free(kith_ctx_t *ctx, mem_owner_t *o)
{
  if (o == NULL)
    return;
  items_clear(ctx, o);
  kith__free(ctx, o->buckets);
  kith__free(ctx, o->version);
  kith__free(ctx, o);
}

static kith_status_t owners_reserve(mem_store_t *m, size_t n)
{
  size_t want = buckets_for(n), i;
  mem_owner_t **nb;

  if (m->nbuckets >= want)
    return KITH_OK;
  if ((nb = kith__calloc(m->ctx, want, sizeof(*nb))) == NULL)
    return KITH_ENOMEM;
  for (i = 0; i < m->nbuckets; i++) {
    mem_owner_t *o = m->buckets[i], *next;

    for (; o; o = next) {
      next = o->next;
      o->next = nb[o->hash & (want - 1)];
      nb[o->hash & (want - 1)] = o;
    }
  }
  kith__free(m->ctx, m->buckets);
  m->buckets = nb;
  m->nbuckets = want;
  return KITH_OK;
}

static mem_owner_t *owner_find(mem_store_t *m, const char *owner)
{
  return m->buckets ? *owner_slot(m, owner, hash_str(owner)) : NULL;
}

/* ---- apply ------------------------------------------------------------ */

/* What one batch prepared before it changes anything. */
typedef struct prep {
  mem_item_t **items; /* per op: the new item of a PUT */
  char **versions;    /* per op: the new version of a VERSION */
  mem_owner_t *fresh; /* the owner, when it is new */
} prep_t;

static kith_status_t check_op(kith_store_t *store, const kith_store_op_t *op,
                              size_t i)
{
  size_t g;

  switch (op->type) {
  case KITH_STORE_PUT:
    if (op->item.ngroups > 0 && op->item.groups == NULL)
      break;
    for (g = 0; g < op->item.ngroups; g++)
      if (op->item.groups[g] == NULL)
        goto bad;
    /* fall through */
  case KITH_STORE_DELETE:
    if (op->item.jid == NULL)
      break;
    return KITH_OK;
  case KITH_STORE_VERSION:
  case KITH_STORE_CLEAR:
  case KITH_STORE_DROP:
    return KITH_OK;
  }
bad:
  kith_store_set_error(store,
                       "memory store: operation %zu of the batch is "
                       "invalid (missing JID or group, or unknown "
                       "type)",
                       i);
  return KITH_EINVAL;
}

static void prep_free(kith_ctx_t *ctx, prep_t *p, size_t n)
{
  size_t i;

  for (i = 0; p->items && i < n; i++)
    kith__free(ctx, p->items[i]);
  for (i = 0; p->versions && i < n; i++)
    kith__free(ctx, p->versions[i]);
  kith__free(ctx, p->items);
  kith__free(ctx, p->versions);
  owner_free(ctx, p->fresh);
}

/* Allocate everything the batch needs; nothing in the store changes. */
static kith_status_t prepare(mem_store_t *m, mem_owner_t *o, const char *owner,
                             const kith_store_op_t *ops, size_t n, prep_t *p)
{
  size_t i, nput = 0, ol = strlen(owner) + 1;

  if (n && ((p->items = kith__calloc(m->ctx, n, sizeof(*p->items))) == NULL ||
            (p->versions = kith__calloc(m->ctx, n, sizeof(char *))) == NULL))
    return KITH_ENOMEM;
  for (i = 0; i < n; i++) {
    if (ops[i].type == KITH_STORE_PUT) {
      if ((p->items[i] = item_new(m->ctx, &ops[i].item)) == NULL)
        return KITH_ENOMEM;
      nput++;
    } else if (ops[i].type == KITH_STORE_VERSION && ops[i].version) {
      if ((p->versions[i] = kith__strdup(m->ctx, ops[i].version)) == NULL)
        return KITH_ENOMEM;
    }
  }
  if (o == NULL) {
    if ((p->fresh = kith__calloc(m->ctx, 1, sizeof(*o) + ol)) == NULL)
      return KITH_ENOMEM;
    memcpy(p->fresh->owner, owner, ol);
    p->fresh->hash = hash_str(owner);
    o = p->fresh;
    if (owners_reserve(m, m->nowners + 1) != KITH_OK)
      return KITH_ENOMEM;
  }
  /* Growing the bucket array leaves the items as they are: harmless even
   * when a later step of the preparation fails. */
  return nput ? items_reserve(m->ctx, o, o->nitems + nput) : KITH_OK;
}

static void do_put(kith_ctx_t *ctx, mem_owner_t *o, mem_item_t *it)
{
  mem_item_t **pp = item_slot(o, it->data, it->hash);

  if (*pp) {
    it->next = (*pp)->next;
    kith__free(ctx, *pp);
  } else {
    it->next = NULL;
    o->nitems++;
  }
  *pp = it;
}

static void do_delete(kith_ctx_t *ctx, mem_owner_t *o, const char *jid)
{
  mem_item_t **pp, *it;

  if (o->buckets == NULL)
    return;
  pp = item_slot(o, jid, hash_str(jid));
  if ((it = *pp) == NULL)
    return;
  *pp = it->next;
  kith__free(ctx, it);
  o->nitems--;
}

/* Change the owner with what prepare() made; nothing here can fail. */
static void commit(mem_store_t *m, mem_owner_t *o, const kith_store_op_t *ops,
                   size_t n, prep_t *p)
{
  size_t i;

  for (i = 0; i < n; i++) {
    switch (ops[i].type) {
    case KITH_STORE_PUT:
      do_put(m->ctx, o, p->items[i]);
      p->items[i] = NULL;
      break;
    case KITH_STORE_DELETE:
      do_delete(m->ctx, o, ops[i].item.jid);
      break;
    case KITH_STORE_VERSION:
      kith__free(m->ctx, o->version);
      o->version = p->versions[i];
      p->versions[i] = NULL;
      break;
    case KITH_STORE_CLEAR:
    case KITH_STORE_DROP:
      /* A DROP that is not last leaves the owner known (see store.h), so
       * in the middle of a batch it is a CLEAR; the last one unlinks. */
      items_clear(m->ctx, o);
      kith__free(m->ctx, o->version);
      o->version = NULL;
      break;
    }
  }
}

static kith_status_t mem_apply(kith_store_t *store, void *impl,
                               const char *owner, const kith_store_op_t *ops,
                               size_t n)
{
  mem_store_t *m = impl;
  mem_owner_t *o = owner_find(m, owner), **pp;
  prep_t p = {NULL, NULL, NULL};
  kith_status_t rc;
  size_t i;

  for (i = 0; i < n; i++)
    if ((rc = check_op(store, &ops[i], i)) != KITH_OK)
      return rc;
  if ((rc = prepare(m, o, owner, ops, n, &p)) != KITH_OK) {
    prep_free(m->ctx, &p, n);
    kith_store_set_error(store, "memory store: out of memory");
    return rc;
  }
  if (o == NULL) {
    o = p.fresh;
    p.fresh = NULL;
    pp = owner_slot(m, owner, o->hash);
    *pp = o;
    m->nowners++;
  }
  commit(m, o, ops, n, &p);
  if (n > 0 && ops[n - 1].type == KITH_STORE_DROP) {
    pp = owner_slot(m, owner, o->hash);
    *pp = o->next;
    m->nowners--;
    owner_free(m->ctx, o);
  }
  prep_free(m->ctx, &p, n);
  return KITH_OK;
}

/* ---- the other calls -------------------------------------------------- */

static kith_status_t mem_load(kith_store_t *store, void *impl,
                              const char *owner, const kith_store_sink_t *sink)
{
  mem_store_t *m = impl;
  mem_owner_t *o = owner_find(m, owner);
  kith_store_item_t v;
  kith_status_t rc;
  size_t i;

  if (o == NULL)
    return KITH_ENOTFOUND;
  if (sink->version && (rc = sink->version(sink->ud, o->version)) != KITH_OK)
    return rc;
  for (i = 0; i < o->nbuckets; i++) {
    mem_item_t *it;

    for (it = o->buckets[i]; it; it = it->next) {
      if (item_view(m, it, &v) != KITH_OK) {
        kith_store_set_error(store, "memory store: out of memory");
        return KITH_ENOMEM;
      }
      if ((rc = sink->item(sink->ud, &v)) != KITH_OK)
        return rc;
    }
  }
  return KITH_OK;
}

static kith_status_t mem_owners(kith_store_t *store, void *impl,
                                kith_store_owner_fn fn, void *ud)
{
  mem_store_t *m = impl;
  kith_status_t rc;
  size_t i;

  for (i = 0; i < m->nbuckets; i++) {
    mem_owner_t *o;

    for (o = m->buckets[i]; o; o = o->next)
      if ((rc = fn(ud, o->owner)) != KITH_OK)
        return rc;
  }
  return KITH_OK;
}

static void free_all(mem_store_t *m)
{
  size_t i;

  for (i = 0; i < m->nbuckets; i++) {
    mem_owner_t *o = m->buckets[i], *next;

    for (; o; o = next) {
      next = o->next;
      owner_free(m->ctx, o);
    }
  }
  kith__free(m->ctx, m->buckets);
  m->buckets = NULL;
  m->nbuckets = m->nowners = 0;
}

static kith_status_t mem_reset(kith_store_t *store, void *impl)
{
  free_all(impl);
  return KITH_OK;
}

static void mem_close(void *impl)
{
  mem_store_t *m = impl;

  if (m == NULL)
    return;
  free_all(m);
  kith__free(m->ctx, m->groups);
  kith__free(m->ctx, m);
}

static const kith_store_backend_t mem_backend = {
    "memory", mem_load, mem_apply, mem_owners, mem_reset, mem_close,
};

kith_status_t kith__store_open_memory(kith_ctx_t *ctx, const char *rest,
                                      kith_store_t **out, char *err,
                                      size_t errlen)
{
  mem_store_t *m;
  kith_status_t rc;

  *out = NULL;
  if ((m = kith__calloc(ctx, 1, sizeof(*m))) == NULL) {
    kith__store_err(err, errlen, "memory: out of memory");
    return KITH_ENOMEM;
  }
  m->ctx = ctx;
  if ((rc = kith_store_new(ctx, &mem_backend, m, out)) != KITH_OK) {
    kith__store_err(err, errlen, "memory: out of memory");
    kith__free(ctx, m);
  }
  return rc;
}

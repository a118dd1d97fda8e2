/*
 * The roster model: nodes keyed by owner bare JID, items keyed by contact
 * bare JID, groups interned per node, resources while online.
 *
 * Memory is the design constraint (a 1,000,000-item roster should cost
 * at most 200 bytes per item beyond its strings), so:
 *
 *  - An item is ONE allocation: a 32-byte header, then its group
 *    pointers, then "jid\0name\0". Changing the name or groups builds a
 *    new block (so a failure leaves the old one intact) and moves the item.
 *  - A group name is stored once per node (group_t, reference counted);
 *    items point to it.
 *  - Resources are allocated only while the contact is online.
 *  - A node keeps its items in a dense array of pointers (iteration order,
 *    swap-with-last removal) and finds them through an open-addressing
 *    table of 32-bit indices into that array (linear probing, load at most
 *    3/4, backward-shift deletion, no tombstones): about 8 + 8 bytes per
 *    item at a million items.
 *
 * The same index table serves the roster's nodes and a node's groups.
 * Those two keep creation / first-use order, so removing one shifts the
 * array and rebuilds the (small) table in place.
 */
#include <string.h>
#include <time.h>

#include "core/ctx.h"
#include "kith/jid.h"
#include "roster/model.h"
#include "roster/subscription.h"

/* ---- Hashing and the index table ------------------------------------- */

/*
 * A string's hash, and its length: eight bytes at a time, each word
 * multiplied in, then MurmurHash3's fmix64. (FNV-1a, a byte at a time, was
 * a chain of dependent multiplies as long as the string, paid twice for
 * every JID of a roster result.) Hashes only live in memory, so the byte
 * order words are read in does not matter.
 */
static uint32_t hash_str(const char *s, size_t *len)
{
  const uint64_t k = UINT64_C(0x9E3779B97F4A7C15);
  size_t n = strlen(s), i, j;
  uint64_t h = n * k, w;

  for (i = 0; i + sizeof(w) <= n; i += sizeof(w)) {
    memcpy(&w, s + i, sizeof(w));
    h = (h ^ w) * k;
    h = (h << 31) | (h >> 33);
  }
  for (w = 0, j = 0; i + j < n; j++)
    w |= (uint64_t)(unsigned char)s[i + j] << (8 * j);
  h = (h ^ w) * k;
  h ^= h >> 33;
  h *= UINT64_C(0xff51afd7ed558ccd);
  h ^= h >> 33;
  h *= UINT64_C(0xc4ceb9fe1a85ec53);
  h ^= h >> 33;
  if (len)
    *len = n;
  return (uint32_t)h;
}

/*
 * A slot holds an entry's index + 1 (0 is empty) and the entry's hash, so
 * that probing and growing never read the entries themselves: at a
 * million items each such read is a cache miss, and they were most of
 * the cost of adding an item.
 */
typedef struct ix_slot {
  uint32_t idx1;
  uint32_t hash;
} ix_slot_t;

typedef struct ix {
  ix_slot_t *slot;
  uint32_t mask; /* capacity - 1, or 0 with slot NULL */
} ix_t;

/*
 * The entries an index table points into, read through their container
 * (a node or the roster) on every use, so a source stays right when the
 * container's array is reallocated. Only a key whose hash matches is
 * read, and hashes only when the table is rebuilt from the array.
 */
typedef struct ix_src {
  const void *owner;
  uint32_t (*hash)(const void *owner, uint32_t i);
  const char *(*key)(const void *owner, uint32_t i);
} ix_src_t;

#define IX_NONE UINT32_MAX

static uint32_t ix_cap(const ix_t *ix)
{
  return ix->slot ? ix->mask + 1 : 0;
}

/* Index of the entry with `key`, or IX_NONE; *pos gets its slot. */
static uint32_t ix_find(const ix_t *ix, const ix_src_t *src, uint32_t h,
                        const char *key, uint32_t *pos)
{
  uint32_t i, v;

  if (ix->slot == NULL)
    return IX_NONE;
  for (i = h & ix->mask; (v = ix->slot[i].idx1) != 0; i = (i + 1) & ix->mask) {
    if (ix->slot[i].hash == h &&
        strcmp(src->key(src->owner, v - 1), key) == 0) {
      if (pos)
        *pos = i;
      return v - 1;
    }
  }
  return IX_NONE;
}

/* Insert entry `idx` (absent, and capacity reserved). */
static void ix_insert(ix_t *ix, uint32_t h, uint32_t idx)
{
  uint32_t i = h & ix->mask;

  while (ix->slot[i].idx1 != 0)
    i = (i + 1) & ix->mask;
  ix->slot[i].idx1 = idx + 1;
  ix->slot[i].hash = h;
}

/* The slot holding entry `idx`, whose hash is `h`. */
static uint32_t ix_slot_of(const ix_t *ix, uint32_t h, uint32_t idx)
{
  uint32_t i = h & ix->mask;

  while (ix->slot[i].idx1 != idx + 1)
    i = (i + 1) & ix->mask;
  return i;
}

/*
 * Empty slot `pos` by backward shift: later entries of the probe run move
 * back when their home slot allows it, so lookups never need tombstones.
 */
static void ix_delete(ix_t *ix, uint32_t pos)
{
  uint32_t hole = pos, i;

  for (i = (pos + 1) & ix->mask; ix->slot[i].idx1 != 0;
       i = (i + 1) & ix->mask) {
    uint32_t home = ix->slot[i].hash & ix->mask;

    /* Move it back unless its home lies cyclically within (hole, i]. */
    if (((i - home) & ix->mask) >= ((i - hole) & ix->mask)) {
      ix->slot[hole] = ix->slot[i];
      hole = i;
    }
  }
  ix->slot[hole].idx1 = 0;
}

/* Reinsert entries 0..n-1 into the current slots (no allocation). */
static void ix_rebuild(ix_t *ix, const ix_src_t *src, uint32_t n)
{
  uint32_t i;

  if (ix->slot == NULL)
    return;
  memset(ix->slot, 0, sizeof(*ix->slot) * ((size_t)ix->mask + 1));
  for (i = 0; i < n; i++)
    ix_insert(ix, src->hash(src->owner, i), i);
}

/*
 * Make room for `need` entries at a load of at most 3/4; the current
 * entries move to a new table by the hashes their slots hold. On failure
 * nothing changes.
 */
static kith_status_t ix_reserve(kith_ctx_t *ctx, ix_t *ix, uint64_t need)
{
  uint64_t cap = ix_cap(ix), i;
  ix_t old = *ix;

  if (need * 4 <= cap * 3)
    return KITH_OK;
  if (cap < 16)
    cap = 16;
  while (need * 4 > cap * 3)
    cap *= 2;
  if (cap > ((uint64_t)1 << 31))
    return KITH_ELIMIT;
  ix->slot = kith__calloc(ctx, (size_t)cap, sizeof(*ix->slot));
  if (ix->slot == NULL) {
    *ix = old;
    return KITH_ENOMEM;
  }
  ix->mask = (uint32_t)(cap - 1);
  for (i = 0; i < ix_cap(&old); i++)
    if (old.slot[i].idx1)
      ix_insert(ix, old.slot[i].hash, old.slot[i].idx1 - 1);
  kith__free(ctx, old.slot);
  return KITH_OK;
}

static void ix_free(kith_ctx_t *ctx, ix_t *ix)
{
  kith__free(ctx, ix->slot);
  ix->slot = NULL;
  ix->mask = 0;
}

/*
 * Grow an array of pointers to hold `need` entries (doubling): *out gets
 * the array, moved or not, and *cap its new capacity. On failure nothing
 * changes and `arr` stays valid.
 */
static kith_status_t arr_grow(kith_ctx_t *ctx, void *arr, uint32_t *cap,
                              uint64_t need, void **out)
{
  uint64_t ncap = *cap ? *cap : 8;
  void *p;

  *out = arr;
  if (need <= *cap)
    return KITH_OK;
  while (ncap < need)
    ncap *= 2;
  if (ncap > UINT32_MAX)
    return KITH_ELIMIT;
  p = kith__realloc(ctx, arr, (size_t)ncap * sizeof(void *));
  if (p == NULL)
    return KITH_ENOMEM;
  *out = p;
  *cap = (uint32_t)ncap;
  return KITH_OK;
}

/* ---- Types ------------------------------------------------------------ */

/* A group name, stored once per node; items point to it. */
typedef struct group {
  uint32_t hash;
  uint32_t refs; /* items in the group */
  uint32_t pos;  /* index in node->groups (first-use order) */
  char name[];
} group_t;

/* One connected resource of a contact. */
typedef struct res {
  char *name; /* "resource\0status\0" in one block */
  kith_stanza_t *stanza;
  int64_t last;
  int8_t prio;
  uint8_t show;
  uint8_t has_status;
} res_t;

#define ITEM_HAS_NAME 0x01u
#define ITEM_WHITELISTED 0x02u

/*
 * An item: this 32-byte header, then `ngroups` group pointers, then the
 * JID and the name, NUL-terminated, in the same block.
 */
struct kith_roster_item {
  kith_roster_node_t *node;
  res_t *res; /* NULL while offline */
  uint32_t hash;
  uint32_t index; /* position in node->items */
  uint16_t jid_len;
  uint16_t ngroups;
  uint8_t flags;
  uint8_t bits;
  uint8_t nres, res_cap;
  group_t *groups[];
};

struct kith_roster_node {
  kith_roster_t *roster;
  char *version;
  uint32_t hash;
  uint32_t index; /* position in roster->nodes */
  kith_roster_item_t **items;
  uint32_t n, cap;
  ix_t ix;
  group_t **groups;
  uint32_t ngroups, gcap;
  ix_t gix;
  uint64_t stamp; /* last use, for least-recently-used eviction */
  size_t acct;    /* bytes as the persistence layer accounted them */
  signed char auto_authorize; /* kith_auto_authorize_t */
  signed char auto_subscribe; /* -1 inherit */
  char owner[];
};

struct kith_roster {
  kith_ctx_t *ctx;
  kith_roster_node_t **nodes;
  uint32_t n, cap;
  ix_t ix;
  kith_roster_node_t *self;
  uint32_t max_items;
  uint32_t max_res;
  kith__roster_hook_fn hook;
  void *hook_ud;
  int mute;  /* the hook is silent while > 0 */
  int depth; /* open batch brackets */
  void (*commit)(void *ud, kith_roster_t *roster);
  void *commit_ud;
  kith__roster_loader_fn loader;
  void *loader_ud;
  int loading; /* the loader is running: no nested loads */
  uint64_t clock;
  void *persist;
  void (*persist_free)(void *p);
  void (*detach)(kith_roster_t *roster, void *ud);
  void *detach_ud;
  kith_auto_authorize_t auto_authorize;
  int auto_subscribe;
};

static const char *item_jid_ptr(const kith_roster_item_t *it)
{
  return (const char *)(it->groups + it->ngroups);
}

static uint32_t item_hash(const void *owner, uint32_t i)
{
  return ((const kith_roster_node_t *)owner)->items[i]->hash;
}

static const char *item_key(const void *owner, uint32_t i)
{
  return item_jid_ptr(((const kith_roster_node_t *)owner)->items[i]);
}

static uint32_t group_hash(const void *owner, uint32_t i)
{
  return ((const kith_roster_node_t *)owner)->groups[i]->hash;
}

static const char *group_key(const void *owner, uint32_t i)
{
  return ((const kith_roster_node_t *)owner)->groups[i]->name;
}

static uint32_t node_hash(const void *owner, uint32_t i)
{
  return ((const kith_roster_t *)owner)->nodes[i]->hash;
}

static const char *node_key(const void *owner, uint32_t i)
{
  return ((const kith_roster_t *)owner)->nodes[i]->owner;
}

static ix_src_t items_src(const kith_roster_node_t *n)
{
  ix_src_t s = {n, item_hash, item_key};
  return s;
}

static ix_src_t groups_src(const kith_roster_node_t *n)
{
  ix_src_t s = {n, group_hash, group_key};
  return s;
}

static ix_src_t nodes_src(const kith_roster_t *r)
{
  ix_src_t s = {r, node_hash, node_key};
  return s;
}

static kith_ctx_t *node_ctx(const kith_roster_node_t *n)
{
  return n->roster->ctx;
}

static void notify(kith_roster_node_t *n, kith_roster_item_t *it,
                   kith__roster_change_t what)
{
  kith_roster_t *r = n->roster;

  if (r->mute > 0)
    return;
  if (r->hook)
    r->hook(r->hook_ud, n, it, what);
  /* A change outside any bracket is a batch of its own. */
  if (r->depth == 0 && r->commit)
    r->commit(r->commit_ud, r);
}

/* Normalize any JID form to its bare form; the result is freed by caller. */
static kith_status_t norm_bare(kith_ctx_t *ctx, const char *jid, char **out)
{
  return kith_jid_normalize(ctx, jid, 1, out, NULL);
}

int64_t kith__roster_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Groups ----------------------------------------------------------- */

static group_t *group_find(const kith_roster_node_t *n, uint32_t h,
                           const char *name)
{
  ix_src_t src = groups_src(n);
  uint32_t i = ix_find(&n->gix, &src, h, name, NULL);

  return i == IX_NONE ? NULL : n->groups[i];
}

/* Drop one reference; the last one removes the group from the node. */
static void group_release(kith_roster_node_t *n, group_t *g)
{
  ix_src_t src;
  uint32_t i;

  if (--g->refs > 0)
    return;
  memmove(n->groups + g->pos, n->groups + g->pos + 1,
          (n->ngroups - g->pos - 1) * sizeof(group_t *));
  n->ngroups--;
  for (i = g->pos; i < n->ngroups; i++)
    n->groups[i]->pos = i;
  src = groups_src(n);
  ix_rebuild(&n->gix, &src, n->ngroups);
  kith__free(node_ctx(n), g);
}

/* ---- Resources -------------------------------------------------------- */

static const char *res_status(const res_t *r)
{
  return r->has_status ? r->name + strlen(r->name) + 1 : NULL;
}

static void res_free(kith_ctx_t *ctx, res_t *r)
{
  kith__free(ctx, r->name);
  kith_stanza_free(r->stanza);
}

static int res_find(const kith_roster_item_t *it, const char *resource)
{
  int i;

  if (resource == NULL)
    resource = "";
  for (i = 0; i < it->nres; i++)
    if (strcmp(it->res[i].name, resource) == 0)
      return i;
  return -1;
}

static void item_free_presence(kith_ctx_t *ctx, kith_roster_item_t *it)
{
  int i;

  for (i = 0; i < it->nres; i++)
    res_free(ctx, &it->res[i]);
  kith__free(ctx, it->res);
  it->res = NULL;
  it->nres = 0;
  it->res_cap = 0;
}

/* ---- The collection --------------------------------------------------- */

kith_status_t kith_roster_new(kith_ctx_t *ctx, kith_roster_t **out)
{
  kith_roster_t *r;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  r = kith__calloc(ctx, 1, sizeof(*r));
  if (r == NULL)
    return KITH_ENOMEM;
  r->ctx = kith__ctx(ctx);
  r->max_items = KITH__ROSTER_MAX_ITEMS;
  r->max_res = KITH__ROSTER_MAX_RESOURCES;
  r->auto_authorize = KITH_AUTHORIZE_ACCEPT;
  r->auto_subscribe = 1;
  *out = r;
  return KITH_OK;
}

/* Free every item and group of a node, leaving it empty. */
static void node_free_items(kith_roster_node_t *n)
{
  kith_ctx_t *ctx = node_ctx(n);
  uint32_t i;

  for (i = 0; i < n->n; i++) {
    item_free_presence(ctx, n->items[i]);
    kith__free(ctx, n->items[i]);
  }
  for (i = 0; i < n->ngroups; i++)
    kith__free(ctx, n->groups[i]);
  kith__free(ctx, n->items);
  kith__free(ctx, n->groups);
  ix_free(ctx, &n->ix);
  ix_free(ctx, &n->gix);
  n->items = NULL;
  n->groups = NULL;
  n->n = n->cap = n->ngroups = n->gcap = 0;
}

static void node_free(kith_roster_node_t *n)
{
  node_free_items(n);
  kith__free(node_ctx(n), n->version);
  kith__free(node_ctx(n), n);
}

void kith_roster_free(kith_roster_t *roster)
{
  uint32_t i;

  if (roster == NULL)
    return;
  if (roster->detach) {
    void (*fn)(kith_roster_t *, void *) = roster->detach;

    roster->detach = NULL;
    fn(roster, roster->detach_ud);
  }
  if (roster->persist_free) {
    void (*fn)(void *) = roster->persist_free;

    roster->persist_free = NULL;
    fn(roster->persist);
  }
  for (i = 0; i < roster->n; i++)
    node_free(roster->nodes[i]);
  kith__free(roster->ctx, roster->nodes);
  ix_free(roster->ctx, &roster->ix);
  kith__free(roster->ctx, roster);
}

kith_ctx_t *kith__roster_ctx(const kith_roster_t *roster)
{
  return roster->ctx;
}

void kith__roster_set_hook(kith_roster_t *roster, kith__roster_hook_fn fn,
                           void *ud)
{
  roster->hook = fn;
  roster->hook_ud = fn ? ud : NULL;
}

void kith__roster_set_persist(kith_roster_t *roster, void *p,
                              void (*free_fn)(void *p))
{
  roster->persist = p;
  roster->persist_free = free_fn;
}

void *kith__roster_persist(const kith_roster_t *roster)
{
  return roster->persist;
}

size_t kith__roster_node_acct(const kith_roster_node_t *node)
{
  return node->acct;
}

void kith__roster_node_set_acct(kith_roster_node_t *node, size_t bytes)
{
  node->acct = bytes;
}

void kith__roster_begin(kith_roster_t *roster)
{
  roster->depth++;
}

void kith__roster_end(kith_roster_t *roster)
{
  if (roster->depth > 0 && --roster->depth == 0 && roster->commit)
    roster->commit(roster->commit_ud, roster);
}

int kith__roster_in_batch(const kith_roster_t *roster)
{
  return roster->depth > 0;
}

void kith__roster_set_commit(kith_roster_t *roster,
                             void (*fn)(void *ud, kith_roster_t *roster),
                             void *ud)
{
  roster->commit = fn;
  roster->commit_ud = fn ? ud : NULL;
}

void kith__roster_mute(kith_roster_t *roster, int on)
{
  if (on)
    roster->mute++;
  else if (roster->mute > 0)
    roster->mute--;
}

void kith__roster_set_loader(kith_roster_t *roster, kith__roster_loader_fn fn,
                             void *ud)
{
  roster->loader = fn;
  roster->loader_ud = fn ? ud : NULL;
}

void kith__roster_set_max_items(kith_roster_t *roster, size_t max)
{
  roster->max_items = max == 0               ? 1
                      : max > UINT32_MAX - 1 ? UINT32_MAX - 1
                                             : (uint32_t)max;
}

void kith__roster_set_max_resources(kith_roster_t *roster, size_t max)
{
  /* An item counts its resources in a byte. */
  roster->max_res = max == 0 ? 1 : max > 255 ? 255 : (uint32_t)max;
}

void kith__roster_set_detach(kith_roster_t *roster,
                             void (*fn)(kith_roster_t *roster, void *ud),
                             void *ud)
{
  roster->detach = fn;
  roster->detach_ud = fn ? ud : NULL;
}

void *kith__roster_attachment(const kith_roster_t *roster)
{
  return roster->detach_ud;
}

kith_status_t kith__roster_set_policy(kith_roster_t *roster,
                                      kith_auto_authorize_t auto_authorize,
                                      int auto_subscribe)
{
  if ((unsigned)auto_authorize > KITH_AUTHORIZE_MANUAL)
    return KITH_EINVAL;
  roster->auto_authorize = auto_authorize;
  roster->auto_subscribe = auto_subscribe != 0;
  return KITH_OK;
}

void kith__roster_policy(const kith_roster_t *roster,
                         kith_auto_authorize_t *auto_authorize,
                         int *auto_subscribe)
{
  if (auto_authorize)
    *auto_authorize = roster->auto_authorize;
  if (auto_subscribe)
    *auto_subscribe = roster->auto_subscribe;
}

static kith_roster_node_t *node_find_norm(const kith_roster_t *r,
                                          const char *owner)
{
  ix_src_t src = nodes_src(r);
  uint32_t i = ix_find(&r->ix, &src, hash_str(owner, NULL), owner, NULL);

  return i == IX_NONE ? NULL : r->nodes[i];
}

kith_roster_node_t *kith__roster_node_resident(const kith_roster_t *roster,
                                               const char *owner)
{
  return node_find_norm(roster, owner);
}

void kith__roster_node_touch(kith_roster_node_t *node)
{
  node->stamp = ++node->roster->clock;
}

uint64_t kith__roster_node_stamp(const kith_roster_node_t *node)
{
  return node->stamp;
}

/* Ask the loader for normalized `owner` (not in memory). NULL when it is
 * not in the store either, or loading failed (the loader said why). */
static kith_roster_node_t *node_load(kith_roster_t *r, const char *owner,
                                     int create, kith_status_t *rc)
{
  kith_roster_node_t *n = NULL;

  *rc = KITH_ENOTFOUND;
  if (r->loader == NULL || r->loading)
    return NULL;
  r->loading = 1;
  *rc = r->loader(r->loader_ud, r, owner, create, &n);
  r->loading = 0;
  if (*rc != KITH_OK)
    return NULL;
  return n;
}

/* The node of normalized `owner`, from memory or the loader. */
static kith_roster_node_t *node_get_norm(kith_roster_t *r, const char *owner,
                                         int create, kith_status_t *rc)
{
  kith_roster_node_t *n = node_find_norm(r, owner);

  *rc = KITH_OK;
  if (n == NULL)
    n = node_load(r, owner, create, rc);
  if (n)
    kith__roster_node_touch(n);
  return n;
}

kith_roster_node_t *kith_roster_node(const kith_roster_t *roster,
                                     const char *owner)
{
  /* Loading from a store fills in what the roster logically holds. */
  kith_roster_t *r = (kith_roster_t *)roster;
  kith_roster_node_t *n;
  kith_status_t rc;
  char *norm;

  if (roster == NULL || owner == NULL)
    return NULL;
  /* A string equal to a normalized key normalizes to it: try it as is. */
  if ((n = node_find_norm(roster, owner)) != NULL) {
    kith__roster_node_touch(n);
    return n;
  }
  if (norm_bare(roster->ctx, owner, &norm) != KITH_OK)
    return NULL;
  n = node_get_norm(r, norm, 0, &rc);
  kith__free(roster->ctx, norm);
  return n;
}

/* Create the node for normalized `owner` (absent). */
static kith_status_t node_create(kith_roster_t *r, const char *owner,
                                 kith_roster_node_t **out)
{
  size_t len;
  uint32_t h = hash_str(owner, &len);
  kith_roster_node_t *n;
  kith_status_t st;
  void *p;

  if ((st = arr_grow(r->ctx, r->nodes, &r->cap, (uint64_t)r->n + 1, &p)))
    return st;
  r->nodes = p;
  if ((st = ix_reserve(r->ctx, &r->ix, (uint64_t)r->n + 1)))
    return st;
  n = kith__calloc(r->ctx, 1, sizeof(*n) + len + 1);
  if (n == NULL)
    return KITH_ENOMEM;
  memcpy(n->owner, owner, len + 1);
  n->roster = r;
  n->hash = h;
  n->index = r->n;
  n->auto_authorize = KITH_AUTHORIZE_INHERIT;
  n->auto_subscribe = -1;
  r->nodes[r->n++] = n;
  ix_insert(&r->ix, h, n->index);
  *out = n;
  return KITH_OK;
}

kith_status_t kith__roster_node_create_norm(kith_roster_t *roster,
                                            const char *owner,
                                            kith_roster_node_t **out)
{
  kith_roster_node_t *n;
  kith_status_t st;

  if (node_find_norm(roster, owner) != NULL)
    return KITH_EEXIST;
  if ((st = node_create(roster, owner, &n)) != KITH_OK)
    return st;
  kith__roster_node_touch(n);
  notify(n, NULL, KITH__CHANGE_NODE_ADDED);
  if (out)
    *out = n;
  return KITH_OK;
}

kith_status_t kith_roster_add_node(kith_roster_t *roster, const char *owner,
                                   kith_roster_node_t **out)
{
  kith_roster_node_t *n;
  kith_status_t st;
  char *norm;

  if (out)
    *out = NULL;
  if (roster == NULL || owner == NULL)
    return KITH_EINVAL;
  if ((st = norm_bare(roster->ctx, owner, &norm)) != KITH_OK)
    return st;
  n = node_get_norm(roster, norm, 1, &st);
  if (n == NULL && st == KITH_ENOTFOUND)
    st = kith__roster_node_create_norm(roster, norm, &n);
  kith__free(roster->ctx, norm);
  if (st == KITH_OK && out)
    *out = n;
  return st;
}

/* Take nodes out of the array and the index; the caller frees them. */
static void nodes_unlink(kith_roster_t *roster)
{
  ix_src_t src;
  uint32_t i, j;

  for (i = j = 0; i < roster->n; i++)
    if (roster->nodes[i] != NULL) {
      roster->nodes[j] = roster->nodes[i];
      roster->nodes[j]->index = j;
      j++;
    }
  roster->n = j;
  src = nodes_src(roster);
  ix_rebuild(&roster->ix, &src, roster->n);
}

kith_status_t kith_roster_remove_node(kith_roster_t *roster, const char *owner)
{
  kith_roster_node_t *n = kith_roster_node(roster, owner);

  if (n == NULL)
    return roster && owner ? KITH_ENOTFOUND : KITH_EINVAL;
  notify(n, NULL, KITH__CHANGE_NODE_REMOVED);
  if (roster->self == n)
    roster->self = NULL;
  roster->nodes[n->index] = NULL;
  nodes_unlink(roster);
  node_free(n);
  return KITH_OK;
}

void kith__roster_evict(kith_roster_t *roster, kith_roster_node_t **nodes,
                        size_t n)
{
  size_t i;

  if (n == 0)
    return;
  for (i = 0; i < n; i++)
    roster->nodes[nodes[i]->index] = NULL;
  nodes_unlink(roster);
  for (i = 0; i < n; i++) {
    if (roster->self == nodes[i])
      roster->self = NULL;
    node_free(nodes[i]);
  }
}

size_t kith_roster_node_count(const kith_roster_t *roster)
{
  return roster ? roster->n : 0;
}

kith_roster_node_t *kith_roster_node_at(const kith_roster_t *r, size_t i)
{
  return r && i < r->n ? r->nodes[i] : NULL;
}

kith_roster_node_t *kith_roster_self(const kith_roster_t *roster)
{
  return roster ? roster->self : NULL;
}

kith_status_t kith__roster_set_self(kith_roster_t *roster, const char *bare_jid)
{
  kith_roster_node_t *n;
  kith_status_t st;

  if (bare_jid == NULL) {
    roster->self = NULL;
    return KITH_OK;
  }
  if ((st = kith_roster_add_node(roster, bare_jid, &n)) != KITH_OK)
    return st;
  roster->self = n;
  return KITH_OK;
}

void kith__roster_clear_all_presence(kith_roster_t *roster)
{
  uint32_t i;

  for (i = 0; i < roster->n; i++)
    kith__roster_node_clear_all_presence(roster->nodes[i]);
}

/* ---- A node ------------------------------------------------------------ */

const char *kith_roster_node_owner(const kith_roster_node_t *n)
{
  return n ? n->owner : NULL;
}

const char *kith_roster_node_version(const kith_roster_node_t *n)
{
  return n ? n->version : NULL;
}

size_t kith_roster_node_size(const kith_roster_node_t *n)
{
  return n ? n->n : 0;
}

kith_roster_t *kith__roster_node_roster(const kith_roster_node_t *node)
{
  return node->roster;
}

/* The item of `jid_norm`, whose hash is `h`. */
static kith_roster_item_t *item_find(const kith_roster_node_t *node, uint32_t h,
                                     const char *jid_norm)
{
  ix_src_t src = items_src(node);
  uint32_t i = ix_find(&node->ix, &src, h, jid_norm, NULL);

  return i == IX_NONE ? NULL : node->items[i];
}

kith_roster_item_t *kith__roster_item_find_norm(const kith_roster_node_t *node,
                                                const char *jid_norm)
{
  return item_find(node, hash_str(jid_norm, NULL), jid_norm);
}

kith_roster_item_t *kith_roster_node_item(const kith_roster_node_t *n,
                                          const char *jid)
{
  kith_roster_item_t *it;
  char *norm;

  if (n == NULL || jid == NULL)
    return NULL;
  if ((it = kith__roster_item_find_norm(n, jid)) != NULL)
    return it;
  if (norm_bare(node_ctx(n), jid, &norm) != KITH_OK)
    return NULL;
  if (strcmp(norm, jid) != 0)
    it = kith__roster_item_find_norm(n, norm);
  kith__free(node_ctx(n), norm);
  return it;
}

void kith__roster_item_prefetch(const kith_roster_node_t *node,
                                const char *jid_norm)
{
  if (node->ix.slot)
    __builtin_prefetch(
        &node->ix.slot[hash_str(jid_norm, NULL) & node->ix.mask]);
}

kith_roster_item_t *kith_roster_node_next(const kith_roster_node_t *n,
                                          size_t *cursor)
{
  if (n == NULL || cursor == NULL || *cursor >= n->n)
    return NULL;
  return n->items[(*cursor)++];
}

size_t kith_roster_node_group_count(const kith_roster_node_t *n)
{
  return n ? n->ngroups : 0;
}

const char *kith_roster_node_group_at(const kith_roster_node_t *n, size_t i)
{
  return n && i < n->ngroups ? n->groups[i]->name : NULL;
}

static int item_in_group(const kith_roster_item_t *it, const group_t *g)
{
  uint16_t i;

  if (g == NULL)
    return it->ngroups == 0;
  for (i = 0; i < it->ngroups; i++)
    if (it->groups[i] == g)
      return 1;
  return 0;
}

size_t kith_roster_node_group_items(const kith_roster_node_t *n,
                                    const char *group, kith_roster_item_t **out,
                                    size_t max)
{
  const group_t *g = NULL;
  size_t count = 0;
  uint32_t i;

  if (n == NULL || group == NULL)
    return 0;
  if (group[0] != '\0' &&
      (g = group_find(n, hash_str(group, NULL), group)) == NULL)
    return 0;
  for (i = 0; i < n->n; i++) {
    if (!item_in_group(n->items[i], g))
      continue;
    if (out && count < max)
      out[count] = n->items[i];
    count++;
  }
  return count;
}

size_t kith_roster_node_broadcast_targets(const kith_roster_node_t *n,
                                          kith_roster_item_t **out, size_t max)
{
  size_t count = 0;
  uint32_t i;

  if (n == NULL)
    return 0;
  for (i = 0; i < n->n; i++) {
    if (!(n->items[i]->flags & KITH_ROSTER_FROM))
      continue;
    if (out && count < max)
      out[count] = n->items[i];
    count++;
  }
  return count;
}

void kith_roster_node_set_auto_authorize(kith_roster_node_t *n,
                                         kith_auto_authorize_t policy)
{
  if (n && (unsigned)policy <= KITH_AUTHORIZE_INHERIT)
    n->auto_authorize = (signed char)policy;
}

void kith_roster_node_set_auto_subscribe(kith_roster_node_t *n, int on)
{
  if (n)
    n->auto_subscribe = (signed char)(on < 0 ? -1 : on != 0);
}

kith_auto_authorize_t
kith__roster_node_auto_authorize(const kith_roster_node_t *node)
{
  return (kith_auto_authorize_t)node->auto_authorize;
}

int kith__roster_node_auto_subscribe(const kith_roster_node_t *node)
{
  return node->auto_subscribe;
}

void kith__roster_node_policy(const kith_roster_node_t *node,
                              kith_auto_authorize_t *auto_authorize,
                              int *auto_subscribe)
{
  const kith_roster_t *r = node->roster;

  if (auto_authorize)
    *auto_authorize = node->auto_authorize == KITH_AUTHORIZE_INHERIT
                          ? r->auto_authorize
                          : (kith_auto_authorize_t)node->auto_authorize;
  if (auto_subscribe)
    *auto_subscribe =
        node->auto_subscribe < 0 ? r->auto_subscribe : node->auto_subscribe;
}

kith_status_t kith__roster_node_set_version(kith_roster_node_t *node,
                                            const char *ver)
{
  char *copy = NULL;

  if (ver == NULL ? node->version == NULL
                  : node->version && strcmp(ver, node->version) == 0)
    return KITH_OK;
  if (ver && (copy = kith__strdup(node_ctx(node), ver)) == NULL)
    return KITH_ENOMEM;
  kith__free(node_ctx(node), node->version);
  node->version = copy;
  notify(node, NULL, KITH__CHANGE_VERSION);
  return KITH_OK;
}

void kith__roster_node_clear(kith_roster_node_t *node)
{
  if (node->n == 0 && node->version == NULL)
    return;
  notify(node, NULL, KITH__CHANGE_CLEARED);
  node_free_items(node);
  kith__free(node_ctx(node), node->version);
  node->version = NULL;
}

size_t kith__roster_node_bytes(const kith_roster_node_t *node)
{
  size_t b = sizeof(*node) + strlen(node->owner) + 1;
  uint32_t i;

  b += (size_t)node->cap * sizeof(void *) +
       (size_t)ix_cap(&node->ix) * sizeof(ix_slot_t);
  b += (size_t)node->gcap * sizeof(void *) +
       (size_t)ix_cap(&node->gix) * sizeof(ix_slot_t);
  if (node->version)
    b += strlen(node->version) + 1;
  for (i = 0; i < node->ngroups; i++)
    b += sizeof(group_t) + strlen(node->groups[i]->name) + 1;
  for (i = 0; i < node->n; i++) {
    const kith_roster_item_t *it = node->items[i];
    const char *jid = item_jid_ptr(it);

    b += sizeof(*it) + it->ngroups * sizeof(group_t *) + it->jid_len + 1;
    if (it->bits & ITEM_HAS_NAME)
      b += strlen(jid + it->jid_len + 1) + 1;
  }
  return b;
}

int kith__roster_node_has_presence(const kith_roster_node_t *node)
{
  uint32_t i;

  for (i = 0; i < node->n; i++)
    if (node->items[i]->nres)
      return 1;
  return 0;
}

void kith__roster_node_clear_all_presence(kith_roster_node_t *node)
{
  uint32_t i;

  for (i = 0; i < node->n; i++)
    if (node->items[i]->nres)
      item_free_presence(node_ctx(node), node->items[i]);
}

/* ---- Items: upsert ---------------------------------------------------- */

/*
 * An upsert's groups, resolved: the distinct names in order, each with its
 * hash and existing group (or a new one, allocated before the commit).
 */
typedef struct gref {
  const char *name;
  size_t len;
  uint32_t hash;
  group_t *g;
  int fresh; /* g was allocated by this upsert */
} gref_t;

typedef struct upsert {
  kith_roster_node_t *node;
  const char *key;
  size_t klen;
  uint32_t hash;
  const char *name;
  gref_t *refs;
  size_t nrefs, nfresh;
  uint32_t *seen; /* many groups: a set of refs (slot = index + 1) */
  uint32_t seen_mask;
  gref_t small[8];
} upsert_t;

static void upsert_done(upsert_t *u)
{
  size_t i;

  for (i = 0; i < u->nrefs; i++)
    if (u->refs[i].fresh)
      kith__free(node_ctx(u->node), u->refs[i].g);
  if (u->refs != u->small)
    kith__free(node_ctx(u->node), u->refs);
  kith__free(node_ctx(u->node), u->seen);
}

/*
 * Whether refs already holds `name` (hash `h`). With the set, *slot gets
 * the empty slot where the name goes if it is added. A few groups are
 * compared directly; many go through the set, so an item with thousands
 * of groups costs linear time, not quadratic.
 */
static int gref_seen(const upsert_t *u, uint32_t h, const char *name,
                     uint32_t *slot)
{
  uint32_t s, v;
  size_t i;

  if (u->seen == NULL) {
    for (i = 0; i < u->nrefs; i++)
      if (u->refs[i].hash == h && strcmp(u->refs[i].name, name) == 0)
        return 1;
    return 0;
  }
  for (s = h & u->seen_mask; (v = u->seen[s]) != 0; s = (s + 1) & u->seen_mask)
    if (u->refs[v - 1].hash == h && strcmp(u->refs[v - 1].name, name) == 0)
      return 1;
  *slot = s;
  return 0;
}

static kith_status_t upsert_alloc_refs(upsert_t *u, size_t ngroups)
{
  kith_ctx_t *ctx = node_ctx(u->node);
  size_t cap = 16;

  u->refs = u->small;
  if (ngroups <= sizeof(u->small) / sizeof(u->small[0]))
    return KITH_OK;
  while (cap < 2 * ngroups)
    cap *= 2;
  u->refs = kith__calloc(ctx, ngroups, sizeof(gref_t));
  u->seen = kith__calloc(ctx, cap, sizeof(uint32_t));
  if (u->refs == NULL || u->seen == NULL)
    return KITH_ENOMEM;
  u->seen_mask = (uint32_t)(cap - 1);
  return KITH_OK;
}

/*
 * Resolve the groups into u->refs: distinct names in first-occurrence
 * order, each with its existing group or a fresh one (allocated now,
 * linked at the commit, freed by upsert_done() if the upsert fails).
 */
static kith_status_t upsert_groups(upsert_t *u, const char *const *groups,
                                   size_t ngroups)
{
  kith_ctx_t *ctx = node_ctx(u->node);
  uint32_t slot = 0;
  size_t i, len;

  if (upsert_alloc_refs(u, ngroups) != KITH_OK)
    return KITH_ENOMEM;
  for (i = 0; i < ngroups; i++) {
    gref_t *r = &u->refs[u->nrefs];
    uint32_t h = hash_str(groups[i], &len);

    if (gref_seen(u, h, groups[i], &slot))
      continue;
    r->name = groups[i];
    r->len = len;
    r->hash = h;
    r->fresh = 0;
    if ((r->g = group_find(u->node, h, r->name)) == NULL) {
      if ((r->g = kith__malloc(ctx, sizeof(group_t) + len + 1)) == NULL)
        return KITH_ENOMEM;
      r->fresh = 1;
      r->g->hash = h;
      r->g->refs = 0;
      memcpy(r->g->name, r->name, len + 1);
      u->nfresh++;
    }
    if (u->seen)
      u->seen[slot] = (uint32_t)u->nrefs + 1;
    u->nrefs++;
  }
  return KITH_OK;
}

/* Whether `it` already has exactly this name and these groups. */
static int item_matches(const kith_roster_item_t *it, const upsert_t *u)
{
  const char *jid = item_jid_ptr(it), *name;
  size_t i;

  name = (it->bits & ITEM_HAS_NAME) ? jid + it->jid_len + 1 : NULL;
  if ((name == NULL) != (u->name == NULL) ||
      (name && strcmp(name, u->name) != 0) || it->ngroups != u->nrefs)
    return 0;
  for (i = 0; i < u->nrefs; i++)
    if (it->groups[i] != u->refs[i].g)
      return 0;
  return 1;
}

/* Build the new item block (not yet linked anywhere). */
static kith_roster_item_t *item_build(const upsert_t *u,
                                      const kith_roster_item_t *old)
{
  size_t nlen = u->name ? strlen(u->name) + 1 : 0;
  size_t gbytes = u->nrefs * sizeof(group_t *);
  kith_roster_item_t *it;
  char *p;
  size_t i;

  it = kith__malloc(node_ctx(u->node),
                    sizeof(*it) + gbytes + u->klen + 1 + nlen);
  if (it == NULL)
    return NULL;
  if (old)
    memcpy(it, old, sizeof(*it));
  else
    memset(it, 0, sizeof(*it));
  it->node = u->node;
  it->hash = u->hash;
  it->jid_len = (uint16_t)u->klen;
  it->ngroups = (uint16_t)u->nrefs;
  it->bits =
      (uint8_t)((it->bits & ~ITEM_HAS_NAME) | (u->name ? ITEM_HAS_NAME : 0));
  for (i = 0; i < u->nrefs; i++)
    it->groups[i] = u->refs[i].g;
  p = (char *)(it->groups + u->nrefs);
  memcpy(p, u->key, u->klen + 1);
  if (u->name)
    memcpy(p + u->klen + 1, u->name, nlen);
  return it;
}

/* Make room for the fresh groups and, for a new item, the item. */
static kith_status_t upsert_reserve(upsert_t *u, int is_new)
{
  kith_roster_node_t *n = u->node;
  kith_ctx_t *ctx = node_ctx(n);
  uint64_t gneed = (uint64_t)n->ngroups + u->nfresh;
  kith_status_t st;
  void *p;

  if (u->nfresh) {
    if ((st = arr_grow(ctx, n->groups, &n->gcap, gneed, &p)) != KITH_OK)
      return st;
    n->groups = p;
    if ((st = ix_reserve(ctx, &n->gix, gneed)) != KITH_OK)
      return st;
  }
  if (is_new) {
    if ((st = arr_grow(ctx, n->items, &n->cap, (uint64_t)n->n + 1, &p)))
      return st;
    n->items = p;
    if ((st = ix_reserve(ctx, &n->ix, (uint64_t)n->n + 1)))
      return st;
  }
  return KITH_OK;
}

/* Link the fresh groups into the node and take the item's references. */
static void upsert_commit_groups(upsert_t *u)
{
  kith_roster_node_t *n = u->node;
  size_t i;

  for (i = 0; i < u->nrefs; i++) {
    group_t *g = u->refs[i].g;

    if (u->refs[i].fresh) {
      g->pos = n->ngroups;
      n->groups[n->ngroups++] = g;
      ix_insert(&n->gix, g->hash, g->pos);
      u->refs[i].fresh = 0;
    }
    g->refs++;
  }
}

static kith_status_t upsert_check(const kith_roster_node_t *node,
                                  const char *const *groups, size_t ngroups)
{
  size_t i;

  if (node == NULL || (ngroups > 0 && groups == NULL))
    return KITH_EINVAL;
  if (ngroups > KITH__ROSTER_MAX_GROUPS)
    return KITH_ELIMIT;
  for (i = 0; i < ngroups; i++)
    if (groups[i] == NULL || groups[i][0] == '\0')
      return KITH_EINVAL;
  return KITH_OK;
}

/* Replace `old` (at its index) by `it`, or append `it` as a new item. */
static void upsert_link(kith_roster_node_t *n, kith_roster_item_t *old,
                        kith_roster_item_t *it)
{
  uint16_t i;

  if (old == NULL) {
    it->index = n->n;
    n->items[n->n++] = it;
    ix_insert(&n->ix, it->hash, it->index);
    return;
  }
  /* Same index and hash: the table's slot stays right. */
  n->items[it->index] = it;
  for (i = 0; i < old->ngroups; i++)
    group_release(n, old->groups[i]);
  kith__free(node_ctx(n), old);
}

static kith_status_t upsert_run(upsert_t *u, const char *const *groups,
                                size_t ngroups, kith_roster_item_t **out,
                                int *changed)
{
  kith_roster_node_t *n = u->node;
  kith_roster_item_t *old = item_find(n, u->hash, u->key), *it;
  kith_status_t st;

  if (old == NULL && n->n >= n->roster->max_items)
    return KITH_ELIMIT;
  if ((st = upsert_groups(u, groups, ngroups)) != KITH_OK)
    return st;
  if (old && item_matches(old, u)) {
    *out = old;
    return KITH_OK;
  }
  if ((st = upsert_reserve(u, old == NULL)) != KITH_OK)
    return st;
  if ((it = item_build(u, old)) == NULL)
    return KITH_ENOMEM;
  upsert_commit_groups(u);
  upsert_link(n, old, it);
  *out = it;
  *changed = 1;
  notify(n, it, KITH__CHANGE_ITEM);
  return KITH_OK;
}

kith_status_t
kith__roster_item_upsert_norm(kith_roster_node_t *node, const char *jid_norm,
                              const char *name, const char *const *groups,
                              size_t ngroups, kith_roster_item_t **out,
                              int *changed)
{
  upsert_t u;
  kith_roster_item_t *it = NULL;
  int ch = 0;
  kith_status_t st;

  if (out)
    *out = NULL;
  if (changed)
    *changed = 0;
  if ((st = upsert_check(node, groups, ngroups)) != KITH_OK)
    return st;
  if (jid_norm == NULL || jid_norm[0] == '\0' || strchr(jid_norm, '/'))
    return KITH_EINVAL;
  /* small[] is scratch that is written before it is read; clearing its
   * 320 bytes for every item showed in profiles. */
  memset(&u, 0, offsetof(upsert_t, small));
  u.node = node;
  u.key = jid_norm;
  u.hash = hash_str(jid_norm, &u.klen);
  u.name = name && name[0] ? name : NULL;
  if (u.klen > UINT16_MAX)
    return KITH_EJID;
  st = upsert_run(&u, groups, ngroups, &it, &ch);
  upsert_done(&u);
  if (st == KITH_OK) {
    if (out)
      *out = it;
    if (changed)
      *changed = ch;
  }
  return st;
}

kith_status_t kith__roster_item_upsert(kith_roster_node_t *node,
                                       const char *jid, const char *name,
                                       const char *const *groups,
                                       size_t ngroups, kith_roster_item_t **out,
                                       int *changed)
{
  kith_status_t st;
  char *norm;

  if (out)
    *out = NULL;
  if (changed)
    *changed = 0;
  if (node == NULL || jid == NULL)
    return KITH_EINVAL;
  /* An existing key needs no normalization (see kith_roster_node()). */
  if (kith__roster_item_find_norm(node, jid))
    return kith__roster_item_upsert_norm(node, jid, name, groups, ngroups, out,
                                         changed);
  if ((st = norm_bare(node_ctx(node), jid, &norm)) != KITH_OK)
    return st;
  st = kith__roster_item_upsert_norm(node, norm, name, groups, ngroups, out,
                                     changed);
  kith__free(node_ctx(node), norm);
  return st;
}

/* ---- Items: removal and flags ----------------------------------------- */

void kith__roster_item_remove_item(kith_roster_item_t *item)
{
  kith_roster_node_t *n = item->node;
  uint32_t i = item->index, last = n->n - 1;
  uint16_t g;

  notify(n, item, KITH__CHANGE_REMOVED);
  ix_delete(&n->ix, ix_slot_of(&n->ix, item->hash, i));
  if (i != last) {
    kith_roster_item_t *moved = n->items[last];

    n->items[i] = moved;
    moved->index = i;
    n->ix.slot[ix_slot_of(&n->ix, moved->hash, last)].idx1 = i + 1;
  }
  n->n--;
  for (g = 0; g < item->ngroups; g++)
    group_release(n, item->groups[g]);
  item_free_presence(node_ctx(n), item);
  kith__free(node_ctx(n), item);
}

kith_status_t kith__roster_item_remove(kith_roster_node_t *node,
                                       const char *jid)
{
  kith_roster_item_t *it;
  char *norm;

  if (node == NULL || jid == NULL)
    return KITH_EINVAL;
  it = kith__roster_item_find_norm(node, jid);
  if (it == NULL) {
    kith_status_t st = norm_bare(node_ctx(node), jid, &norm);

    if (st != KITH_OK)
      return st;
    it = kith__roster_item_find_norm(node, norm);
    kith__free(node_ctx(node), norm);
  }
  if (it == NULL)
    return KITH_ENOTFOUND;
  kith__roster_item_remove_item(it);
  return KITH_OK;
}

kith_roster_node_t *kith__roster_item_node(const kith_roster_item_t *item)
{
  return item->node;
}

int kith__roster_item_set_flags(kith_roster_item_t *item, unsigned flags)
{
  flags = kith__sub_normalize(flags);
  if (item->flags == flags)
    return 0;
  item->flags = (uint8_t)flags;
  notify(item->node, item, KITH__CHANGE_ITEM);
  return 1;
}

/* ---- Items: public accessors ------------------------------------------ */

const char *kith_roster_item_jid(const kith_roster_item_t *it)
{
  return it ? item_jid_ptr(it) : NULL;
}

const char *kith_roster_item_name(const kith_roster_item_t *it)
{
  if (it == NULL || !(it->bits & ITEM_HAS_NAME))
    return NULL;
  return item_jid_ptr(it) + it->jid_len + 1;
}

size_t kith_roster_item_group_count(const kith_roster_item_t *it)
{
  return it ? it->ngroups : 0;
}

const char *kith_roster_item_group_at(const kith_roster_item_t *it, size_t i)
{
  return it && i < it->ngroups ? it->groups[i]->name : NULL;
}

unsigned kith_roster_item_flags(const kith_roster_item_t *it)
{
  return it ? it->flags : 0;
}

kith_sub_t kith_roster_item_sub(const kith_roster_item_t *it)
{
  return kith__sub_of(kith_roster_item_flags(it));
}

void kith_roster_item_set_whitelisted(kith_roster_item_t *it, int on)
{
  uint8_t bits;

  if (it == NULL)
    return;
  bits = (uint8_t)(on ? it->bits | ITEM_WHITELISTED
                      : it->bits & ~ITEM_WHITELISTED);
  if (bits == it->bits)
    return;
  it->bits = bits;
  notify(it->node, it, KITH__CHANGE_ITEM);
}

int kith_roster_item_whitelisted(const kith_roster_item_t *it)
{
  return it && (it->bits & ITEM_WHITELISTED) != 0;
}

/* ---- Items: presence -------------------------------------------------- */

const char *kith_show_name(kith_show_t show)
{
  static const char *const names[] = {"chat", "available", "away",
                                      "xa",   "dnd",       "unavailable"};

  return (unsigned)show < sizeof(names) / sizeof(names[0]) ? names[show] : "?";
}

/* Allocate a resource's "name\0status\0" block. */
static char *res_strings(kith_ctx_t *ctx, const char *name, const char *status)
{
  size_t nl = strlen(name) + 1, sl = status ? strlen(status) + 1 : 0;
  char *p = kith__malloc(ctx, nl + sl);

  if (p == NULL)
    return NULL;
  memcpy(p, name, nl);
  if (status)
    memcpy(p + nl, status, sl);
  return p;
}

/* Grow the resource array by one slot if full. */
static kith_status_t res_reserve(kith_ctx_t *ctx, kith_roster_item_t *it)
{
  unsigned cap;
  res_t *p;

  if (it->nres < it->res_cap)
    return KITH_OK;
  cap = it->res_cap ? it->res_cap * 2u : 1u;
  if (cap > 255)
    cap = 255;
  p = kith__realloc(ctx, it->res, cap * sizeof(res_t));
  if (p == NULL)
    return KITH_ENOMEM;
  it->res = p;
  it->res_cap = (uint8_t)cap;
  return KITH_OK;
}

kith_status_t kith__roster_item_set_presence(kith_roster_item_t *item,
                                             const char *resource,
                                             kith_show_t show,
                                             const char *status, int priority,
                                             int64_t time_ms,
                                             const kith_stanza_t *stanza)
{
  kith_ctx_t *ctx;
  kith_stanza_t *copy = NULL;
  char *strs;
  res_t *r;
  int i;

  if (item == NULL || (unsigned)show > KITH_SHOW_DND || priority < -128 ||
      priority > 127)
    return KITH_EINVAL;
  ctx = node_ctx(item->node);
  if (resource == NULL)
    resource = "";
  i = res_find(item, resource);
  if (i < 0 && item->nres >= item->node->roster->max_res)
    return KITH_ELIMIT;
  if (i < 0 && res_reserve(ctx, item) != KITH_OK)
    return KITH_ENOMEM;
  strs = res_strings(ctx, resource, status);
  if (strs == NULL || (stanza && kith_stanza_copy(stanza, &copy) != KITH_OK)) {
    kith__free(ctx, strs);
    /* An array allocated just now for a first resource goes too. */
    if (item->nres == 0)
      item_free_presence(ctx, item);
    return KITH_ENOMEM;
  }
  if (i < 0)
    i = item->nres++;
  else
    res_free(ctx, &item->res[i]);
  r = &item->res[i];
  r->name = strs;
  r->stanza = copy;
  r->last = time_ms > 0 ? time_ms : kith__roster_now_ms();
  r->prio = (int8_t)priority;
  r->show = (uint8_t)show;
  r->has_status = status != NULL;
  return KITH_OK;
}

kith_status_t kith__roster_item_clear_presence(kith_roster_item_t *item,
                                               const char *resource)
{
  kith_ctx_t *ctx = node_ctx(item->node);
  int i = res_find(item, resource);

  if (i < 0)
    return KITH_ENOTFOUND;
  res_free(ctx, &item->res[i]);
  /* Keep arrival order, which resource_at() exposes. */
  memmove(item->res + i, item->res + i + 1,
          (size_t)(item->nres - i - 1) * sizeof(res_t));
  if (--item->nres == 0)
    item_free_presence(ctx, item);
  return KITH_OK;
}

void kith__roster_item_clear_all_presence(kith_roster_item_t *item)
{
  item_free_presence(node_ctx(item->node), item);
}

const kith_stanza_t *
kith__roster_item_presence_stanza(const kith_roster_item_t *item,
                                  const char *resource)
{
  int i = res_find(item, resource);

  return i < 0 ? NULL : item->res[i].stanza;
}

size_t kith_roster_item_resource_count(const kith_roster_item_t *it)
{
  return it ? it->nres : 0;
}

const char *kith_roster_item_resource_at(const kith_roster_item_t *it, size_t i)
{
  return it && i < it->nres ? it->res[i].name : NULL;
}

kith_status_t kith_roster_item_presence(const kith_roster_item_t *it,
                                        const char *resource, kith_show_t *show,
                                        const char **status, int *priority,
                                        int64_t *last)
{
  const res_t *r;
  int i;

  if (it == NULL)
    return KITH_EINVAL;
  if ((i = res_find(it, resource)) < 0)
    return KITH_ENOTFOUND;
  r = &it->res[i];
  if (show)
    *show = (kith_show_t)r->show;
  if (status)
    *status = res_status(r);
  if (priority)
    *priority = r->prio;
  if (last)
    *last = r->last;
  return KITH_OK;
}

/* Whether `a` ranks above `b`: priority, then show, then recency. */
static int res_better(const res_t *a, const res_t *b)
{
  if (a->prio != b->prio)
    return a->prio > b->prio;
  if (a->show != b->show)
    return a->show < b->show; /* kith_show_t is in rank order */
  return a->last > b->last;
}

const char *kith_roster_item_best_resource(const kith_roster_item_t *it)
{
  const res_t *best = NULL;
  int i;

  if (it == NULL)
    return NULL;
  for (i = 0; i < it->nres; i++)
    if (best == NULL || res_better(&it->res[i], best))
      best = &it->res[i];
  return best ? best->name : NULL;
}

kith_status_t kith__roster_item_track_available(
    kith_roster_item_t *item, const char *resource, kith_show_t show,
    const char *status, int priority, kith__presence_change_t *change)
{
  size_t before = kith_roster_item_resource_count(item);
  kith_show_t oshow = KITH_SHOW_UNAVAILABLE;
  const char *ostatus = NULL;
  int oprio = 0, known, differs;
  kith_status_t rc;

  *change = KITH__PRESENCE_SAME;
  known = kith_roster_item_presence(item, resource, &oshow, &ostatus, &oprio,
                                    NULL) == KITH_OK;
  differs =
      known && (oshow != show || oprio != priority ||
                strcmp(ostatus ? ostatus : "", status ? status : "") != 0);
  rc = kith__roster_item_set_presence(item, resource, show, status, priority, 0,
                                      NULL);
  if (rc != KITH_OK)
    return rc;
  if (before == 0)
    *change = KITH__PRESENCE_ONLINE;
  else if (differs)
    *change = KITH__PRESENCE_CHANGED;
  return KITH_OK;
}

kith__presence_change_t
kith__roster_item_track_unavailable(kith_roster_item_t *item,
                                    const char *resource)
{
  size_t before = kith_roster_item_resource_count(item);

  if (resource == NULL)
    kith__roster_item_clear_all_presence(item);
  else
    kith__roster_item_clear_presence(item, resource);
  return before > 0 && kith_roster_item_resource_count(item) == 0
             ? KITH__PRESENCE_OFFLINE
             : KITH__PRESENCE_SAME;
}

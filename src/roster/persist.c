/*
 * A roster kept in a store: write-through batches, lazy loading and
 * least-recently-used eviction. See persist.h for the shape.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "kith/event.h"
#include "kith/jid.h"
#include "roster/model.h"
#include "roster/persist.h"
#include "roster/sync.h"

/* What happened to a dirty node. */
#define P_KNOWN 0x01u /* created: the store must know the owner */
#define P_VER 0x02u   /* version changed */
#define P_CLEAR 0x04u /* every item went (CLEARED) */
#define P_DROP 0x08u  /* the node was removed */
#define P_ALL 0x10u   /* rewrite it whole (too many items, or a failure) */

/* Past this many dirty JIDs (and half the node), rewrite the node whole. */
#define MANY_JIDS 4096u

typedef struct pnode {
  struct pnode *next;
  unsigned what;
  char **jids; /* changed items or strangers (copies; may repeat) */
  size_t njids, cap;
  char owner[];
} pnode_t;

typedef struct kith__persist {
  kith_roster_t *roster;
  kith_store_t *store;
  pnode_t *dirty;
  size_t limit; /* bytes; 0 unbounded */
  size_t used;  /* accounted bytes of the nodes in memory */
  int cache;    /* client cache: reset a damaged store */
  kith__persist_ext_t ext;
} kith__persist_t;

static kith_ctx_t *ctx_of(const kith__persist_t *p)
{
  return kith__roster_ctx(p->roster);
}

/* ---- Errors ----------------------------------------------------------- */

static void report(kith__persist_t *p, kith_status_t rc, const char *owner,
                   const char *what)
{
  kith__sync_t *s = kith__sync_get(p->roster, 0);
  const char *msg = kith_store_errmsg(p->store);
  kith_event_t ev;

  kith__err(ctx_of(p), "store", "%s %s: %s", what, owner ? owner : "",
            msg[0] ? msg : kith_strerror(rc));
  if (s == NULL)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.type = KITH_EVENT_STORE_ERROR;
  ev.status = rc;
  ev.text = msg[0] ? msg : kith_strerror(rc);
  ev.owner = owner;
  kith__sync_emit(s, &ev);
}

/* ---- Dirty nodes -------------------------------------------------------- */

static void pnode_free(kith_ctx_t *ctx, pnode_t *pn)
{
  size_t i;

  for (i = 0; i < pn->njids; i++)
    kith__free(ctx, pn->jids[i]);
  kith__free(ctx, pn->jids);
  kith__free(ctx, pn);
}

static void pnode_forget_jids(kith_ctx_t *ctx, pnode_t *pn)
{
  size_t i;

  for (i = 0; i < pn->njids; i++)
    kith__free(ctx, pn->jids[i]);
  pn->njids = 0;
}

static pnode_t *pnode_find(const kith__persist_t *p, const char *owner)
{
  pnode_t *pn;

  for (pn = p->dirty; pn; pn = pn->next)
    if (strcmp(pn->owner, owner) == 0)
      return pn;
  return NULL;
}

/* The dirty record of `owner`, created when missing. When memory runs
 * out, NULL: the caller then cannot say what changed, which is what
 * P_ALL on the next successful record would cover; we log it. */
static pnode_t *pnode_get(kith__persist_t *p, const char *owner)
{
  pnode_t *pn = pnode_find(p, owner);
  size_t len = strlen(owner);

  if (pn)
    return pn;
  if ((pn = kith__calloc(ctx_of(p), 1, sizeof(*pn) + len + 1)) == NULL) {
    kith__err(ctx_of(p), "store", "out of memory: change of %s not written",
              owner);
    return NULL;
  }
  memcpy(pn->owner, owner, len + 1);
  pn->next = p->dirty;
  p->dirty = pn;
  return pn;
}

static void pnode_add_jid(kith__persist_t *p, pnode_t *pn, const char *jid,
                          const kith_roster_node_t *node)
{
  char **v;
  size_t i;

  if (pn->what & P_ALL)
    return;
  /* An upsert and its flags come as two changes of one item: name each
   * item once (looking back a little; a rare repeat is only extra work). */
  for (i = pn->njids; i > 0 && pn->njids - i < 16; i--)
    if (strcmp(pn->jids[i - 1], jid) == 0)
      return;
  if (pn->njids >= MANY_JIDS && node &&
      pn->njids > kith_roster_node_size(node) / 2) {
    pnode_forget_jids(ctx_of(p), pn);
    pn->what |= P_ALL;
    return;
  }
  if (pn->njids == pn->cap) {
    size_t cap = pn->cap ? pn->cap * 2 : 4;

    if ((v = kith__realloc(ctx_of(p), pn->jids, cap * sizeof(*v))) == NULL)
      goto nomem;
    pn->jids = v;
    pn->cap = cap;
  }
  if ((pn->jids[pn->njids] = kith__strdup(ctx_of(p), jid)) == NULL)
    goto nomem;
  pn->njids++;
  return;

nomem:
  /* Cannot name the item: rewrite the whole node instead. */
  pnode_forget_jids(ctx_of(p), pn);
  pn->what |= P_ALL;
}

/* ---- The model's hook ------------------------------------------------- */

static void on_change(void *ud, kith_roster_node_t *node,
                      kith_roster_item_t *item, kith__roster_change_t what)
{
  kith__persist_t *p = ud;
  pnode_t *pn = pnode_get(p, kith_roster_node_owner(node));

  if (pn == NULL)
    return;
  switch (what) {
  case KITH__CHANGE_ITEM:
  case KITH__CHANGE_REMOVED:
    pnode_add_jid(p, pn, kith_roster_item_jid(item), node);
    break;
  case KITH__CHANGE_VERSION:
    pn->what |= P_VER;
    break;
  case KITH__CHANGE_CLEARED:
    pnode_forget_jids(ctx_of(p), pn);
    pn->what = (pn->what & ~P_ALL) | P_CLEAR | P_VER;
    break;
  case KITH__CHANGE_NODE_ADDED:
    pn->what |= P_KNOWN;
    break;
  case KITH__CHANGE_NODE_REMOVED:
    pnode_forget_jids(ctx_of(p), pn);
    pn->what = P_DROP;
    p->used -= kith__roster_node_acct(node) <= p->used
                   ? kith__roster_node_acct(node)
                   : p->used;
    break;
  }
}

void kith__persist_stranger(kith_roster_t *roster, const char *owner,
                            const char *jid)
{
  kith__persist_t *p = kith__roster_persist(roster);
  pnode_t *pn;

  if (p == NULL || p->store == NULL)
    return;
  if ((pn = pnode_get(p, owner)) != NULL)
    pnode_add_jid(p, pn, jid, kith__roster_node_resident(roster, owner));
  if (!kith__roster_in_batch(roster)) {
    kith__roster_begin(roster);
    kith__roster_end(roster);
  }
}

/* ---- Commit ----------------------------------------------------------- */

/* The ops of one batch, and the group names they point into: a PUT's
 * groups start at goff[i] in `names` (fixed up once every op is built,
 * because `names` moves as it grows). */
typedef struct opbuf {
  kith_ctx_t *ctx;
  kith_store_op_t *ops;
  size_t *goff;
  size_t n, cap;
  const char **names;
  size_t nnames, ncap;
  int failed;
} opbuf_t;

static kith_store_op_t *op_add(opbuf_t *b, kith_store_op_type_t type)
{
  kith_store_op_t *v;
  size_t *g;

  if (b->failed)
    return NULL;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 8;

    if ((v = kith__realloc(b->ctx, b->ops, cap * sizeof(*v))) == NULL)
      goto nomem;
    b->ops = v;
    if ((g = kith__realloc(b->ctx, b->goff, cap * sizeof(*g))) == NULL)
      goto nomem;
    b->goff = g;
    b->cap = cap;
  }
  v = &b->ops[b->n];
  memset(v, 0, sizeof(*v));
  v->type = type;
  b->goff[b->n++] = b->nnames;
  return v;

nomem:
  b->failed = 1;
  return NULL;
}

static void op_put_item(opbuf_t *b, const kith_roster_item_t *it)
{
  size_t i, ng = kith_roster_item_group_count(it), cap;
  const char **v;
  kith_store_op_t *op;

  if (b->nnames + ng > b->ncap) {
    for (cap = b->ncap ? b->ncap : 16; cap < b->nnames + ng; cap *= 2)
      ;
    if ((v = kith__realloc(b->ctx, b->names, cap * sizeof(*v))) == NULL) {
      b->failed = 1;
      return;
    }
    b->names = v;
    b->ncap = cap;
  }
  if ((op = op_add(b, KITH_STORE_PUT)) == NULL)
    return;
  op->item.jid = kith_roster_item_jid(it);
  op->item.name = kith_roster_item_name(it);
  op->item.ngroups = ng;
  op->item.flags =
      kith_roster_item_flags(it) |
      (kith_roster_item_whitelisted(it) ? KITH_STORE_WHITELISTED : 0);
  for (i = 0; i < ng; i++)
    b->names[b->nnames++] = kith_roster_item_group_at(it, i);
}

/* A stranger row (flags != 0) or the deletion of the JID's row. */
static void op_stranger(opbuf_t *b, const char *jid, unsigned flags)
{
  kith_store_op_t *op = op_add(b, flags ? KITH_STORE_PUT : KITH_STORE_DELETE);

  if (op) {
    op->item.jid = jid;
    op->item.flags = flags ? flags | KITH__STORE_STRANGER : 0;
  }
}

typedef struct stranger_walk {
  opbuf_t *b;
  kith_roster_node_t *node;
} stranger_walk_t;

static void put_stranger(void *ud, const char *jid, unsigned flags)
{
  stranger_walk_t *w = ud;

  if (flags && kith__roster_item_find_norm(w->node, jid) == NULL)
    op_stranger(w->b, jid, flags);
}

/* The ops that bring the store's copy of `pn` up to date. */
static void build_ops(kith__persist_t *p, pnode_t *pn, opbuf_t *b)
{
  kith_roster_node_t *node = kith__roster_node_resident(p->roster, pn->owner);
  int whole = (pn->what & (P_CLEAR | P_DROP | P_ALL)) != 0;
  kith_roster_item_t *it;
  kith_store_op_t *op;
  stranger_walk_t w;
  size_t i, cursor = 0;

  if (node == NULL) {
    /* Removed (an evicted node is never dirty). */
    if (pn->what & P_DROP)
      op_add(b, KITH_STORE_DROP);
    return;
  }
  if (whole) {
    op_add(b, KITH_STORE_CLEAR);
    while ((it = kith_roster_node_next(node, &cursor)) != NULL)
      op_put_item(b, it);
    /* CLEAR took the strangers' rows too. */
    if (p->ext.strangers) {
      w.b = b;
      w.node = node;
      p->ext.strangers(p->ext.ud, pn->owner, put_stranger, &w);
    }
  } else {
    for (i = 0; i < pn->njids; i++) {
      if ((it = kith__roster_item_find_norm(node, pn->jids[i])) != NULL)
        op_put_item(b, it);
      else
        op_stranger(
            b, pn->jids[i],
            p->ext.stranger_flags
                ? p->ext.stranger_flags(p->ext.ud, pn->owner, pn->jids[i])
                : 0);
    }
  }
  if ((pn->what & P_VER) || (whole && kith_roster_node_version(node))) {
    if ((op = op_add(b, KITH_STORE_VERSION)) != NULL)
      op->version = kith_roster_node_version(node);
  }
}

static void ops_finish(opbuf_t *b)
{
  size_t i;

  for (i = 0; i < b->n; i++)
    if (b->ops[i].type == KITH_STORE_PUT && b->ops[i].item.ngroups)
      b->ops[i].item.groups = b->names + b->goff[i];
}

/* Write one dirty node. KITH_OK, or the store's error. */
static kith_status_t write_node(kith__persist_t *p, pnode_t *pn)
{
  opbuf_t b;
  kith_status_t rc;

  memset(&b, 0, sizeof(b));
  b.ctx = ctx_of(p);
  build_ops(p, pn, &b);
  if (b.failed) {
    rc = KITH_ENOMEM;
    kith_store_set_error(p->store, "out of memory building the batch");
  } else {
    ops_finish(&b);
    rc = kith_store_apply(p->store, pn->owner, b.ops, b.n);
  }
  kith__free(b.ctx, b.ops);
  kith__free(b.ctx, b.goff);
  kith__free(b.ctx, b.names);
  return rc;
}

static void account(kith__persist_t *p, kith_roster_node_t *node)
{
  size_t old = kith__roster_node_acct(node), now;

  if (p->limit == 0)
    return;
  now = kith__roster_node_bytes(node);
  p->used = p->used - (old <= p->used ? old : p->used) + now;
  kith__roster_node_set_acct(node, now);
}

static int stamp_cmp(const void *a, const void *b)
{
  uint64_t x = kith__roster_node_stamp(*(kith_roster_node_t *const *)a);
  uint64_t y = kith__roster_node_stamp(*(kith_roster_node_t *const *)b);

  return x < y ? -1 : x > y;
}

/* Down to 90% of the limit, least recently used first. */
static void evict(kith__persist_t *p)
{
  kith_roster_t *r = p->roster;
  size_t i, n = kith_roster_node_count(r), k = 0, target, freed = 0, cut = 0;
  kith_roster_node_t **cand, *self = kith_roster_self(r), *node;

  if (p->limit == 0 || p->used <= p->limit || p->store == NULL)
    return;
  if ((cand = kith__calloc(ctx_of(p), n ? n : 1, sizeof(*cand))) == NULL)
    return;
  for (i = 0; i < n; i++) {
    node = kith_roster_node_at(r, i);
    if (node == self || pnode_find(p, kith_roster_node_owner(node)) ||
        kith__roster_node_has_presence(node))
      continue;
    cand[k++] = node;
  }
  qsort(cand, k, sizeof(*cand), stamp_cmp);
  target = p->limit / 10 * 9;
  /* Keep the newest candidate: it is the one in use right now. */
  while (cut + 1 < k && p->used - freed > target)
    freed += kith__roster_node_acct(cand[cut++]);
  p->used -= freed;
  kith__roster_evict(r, cand, cut);
  kith__free(ctx_of(p), cand);
}

static void on_commit(void *ud, kith_roster_t *roster)
{
  kith__persist_t *p = ud;
  pnode_t **pp = &p->dirty, *pn;
  kith_roster_node_t *node;
  kith_status_t rc;

  (void)roster;
  if (p->store == NULL)
    return;
  while ((pn = *pp) != NULL) {
    rc = write_node(p, pn);
    node = kith__roster_node_resident(p->roster, pn->owner);
    if (rc != KITH_OK) {
      report(p, rc, pn->owner, "writing the roster of");
      /* Rewrite it whole next time; a removed node stays a DROP. */
      pnode_forget_jids(ctx_of(p), pn);
      if (node)
        pn->what |= P_ALL;
      pp = &pn->next;
      continue;
    }
    if (node)
      account(p, node);
    *pp = pn->next;
    pnode_free(ctx_of(p), pn);
  }
  evict(p);
}

/* ---- Loading ---------------------------------------------------------- */

typedef struct loading {
  kith__persist_t *p;
  kith_roster_t *roster;
  const char *owner;
  kith_roster_node_t *node; /* made on the store's first answer */
} loading_t;

/* The node being loaded, created when the store first says something of
 * it: an owner the store does not know costs no node (a component gets
 * stanzas for every JID of its domain). */
static kith_status_t load_node(loading_t *l)
{
  if (l->node)
    return KITH_OK;
  return kith__roster_node_create_norm(l->roster, l->owner, &l->node);
}

static kith_status_t load_version(void *ud, const char *version)
{
  loading_t *l = ud;
  kith_status_t rc = load_node(l);

  return rc != KITH_OK ? rc : kith__roster_node_set_version(l->node, version);
}

static kith_status_t load_item(void *ud, const kith_store_item_t *si)
{
  loading_t *l = ud;
  kith_roster_item_t *it = NULL;
  kith_status_t rc;

  if (si->jid == NULL || si->jid[0] == '\0')
    return KITH_ECORRUPT;
  if ((rc = load_node(l)) != KITH_OK)
    return rc;
  if (si->flags & KITH__STORE_STRANGER) {
    if (l->p->ext.stranger_loaded)
      l->p->ext.stranger_loaded(l->p->ext.ud, l->owner, si->jid,
                                si->flags & ~KITH__STORE_STRANGER);
    return KITH_OK;
  }
  /* Stored JIDs were normalized when written; a row that is not one would
   * break lookups, so it goes through normalization like any input. */
  rc = kith__roster_item_upsert(l->node, si->jid, si->name, si->groups,
                                si->ngroups, &it, NULL);
  if (rc == KITH_EJID || rc == KITH_EINVAL)
    return KITH_ECORRUPT;
  if (rc != KITH_OK)
    return rc;
  kith__roster_item_set_flags(it, si->flags & 0x1Fu);
  kith_roster_item_set_whitelisted(it,
                                   (si->flags & KITH_STORE_WHITELISTED) != 0);
  return KITH_OK;
}

static kith_status_t loader(void *ud, kith_roster_t *roster, const char *owner,
                            int create, kith_roster_node_t **out)
{
  kith__persist_t *p = ud;
  kith_store_sink_t sink;
  loading_t l;
  kith_status_t rc;

  *out = NULL;
  if (p->store == NULL)
    return KITH_ENOTFOUND;
  l.p = p;
  l.roster = roster;
  l.owner = owner;
  l.node = NULL;
  sink.version = load_version;
  sink.item = load_item;
  sink.ud = &l;
  kith__roster_mute(roster, 1);
  rc = kith_store_load(p->store, owner, &sink);
  if (rc == KITH_OK)
    rc = load_node(&l); /* known, with nothing in it */
  kith__roster_mute(roster, 0);
  if (rc == KITH_OK) {
    kith__roster_node_set_acct(l.node, 0);
    account(p, l.node);
    *out = l.node;
    return KITH_OK;
  }
  /* Nothing half-loaded stays. */
  if (l.node)
    kith__roster_evict(roster, &l.node, 1);
  if (rc == KITH_ENOTFOUND)
    return rc;
  report(p, rc, owner, "reading the roster of");
  if (rc == KITH_ECORRUPT && p->cache && create) {
    /* A client's cache: start again; the fetch then asks for it all. */
    rc = kith_store_reset(p->store);
    if (rc != KITH_OK) {
      report(p, rc, owner, "resetting the store for");
      return rc;
    }
    kith__warn(kith__roster_ctx(roster), "store",
               "the roster cache %s was damaged: reset, fetching the "
               "whole roster",
               kith_store_uri(p->store));
    return KITH_ENOTFOUND;
  }
  return rc;
}

/* ---- Setup ------------------------------------------------------------ */

static void persist_free(void *ud)
{
  kith__persist_t *p = ud;
  pnode_t *pn;

  /* Anything still dirty (a batch left open, a failed write) gets one
   * last try. */
  if (p->dirty && p->store)
    on_commit(p, p->roster);
  while ((pn = p->dirty) != NULL) {
    p->dirty = pn->next;
    pnode_free(ctx_of(p), pn);
  }
  kith__roster_set_hook(p->roster, NULL, NULL);
  kith__roster_set_commit(p->roster, NULL, NULL);
  kith__roster_set_loader(p->roster, NULL, NULL);
  kith__free(ctx_of(p), p);
}

static kith__persist_t *persist_get(kith_roster_t *roster, int create)
{
  kith__persist_t *p = kith__roster_persist(roster);

  if (p || !create)
    return p;
  if ((p = kith__calloc(kith__roster_ctx(roster), 1, sizeof(*p))) == NULL)
    return NULL;
  p->roster = roster;
  kith__roster_set_persist(roster, p, persist_free);
  return p;
}

kith_status_t kith_roster_set_store(kith_roster_t *roster, kith_store_t *store)
{
  kith__persist_t *p;

  if (roster == NULL)
    return KITH_EINVAL;
  p = persist_get(roster, store != NULL);
  if (p == NULL)
    return store ? KITH_ENOMEM : KITH_OK;
  if (store == NULL) {
    if (p->dirty && p->store)
      on_commit(p, roster);
    kith__roster_set_hook(roster, NULL, NULL);
    kith__roster_set_commit(roster, NULL, NULL);
    kith__roster_set_loader(roster, NULL, NULL);
    p->store = NULL;
    return KITH_OK;
  }
  if (p->store == store)
    return KITH_OK;
  if (p->store != NULL || kith_roster_node_count(roster) > 0)
    return KITH_ESTATE;
  p->store = store;
  p->used = 0;
  kith__roster_set_hook(roster, on_change, p);
  kith__roster_set_commit(roster, on_commit, p);
  kith__roster_set_loader(roster, loader, p);
  return KITH_OK;
}

kith_store_t *kith_roster_store(const kith_roster_t *roster)
{
  kith__persist_t *p = roster ? kith__roster_persist(roster) : NULL;

  return p ? p->store : NULL;
}

kith_status_t kith_roster_load(kith_roster_t *roster, const char *owner,
                               kith_roster_node_t **out)
{
  kith__persist_t *p = roster ? kith__roster_persist(roster) : NULL;
  kith_roster_node_t *node;
  kith_status_t rc;
  char *norm = NULL;

  if (out)
    *out = NULL;
  if (roster == NULL || owner == NULL)
    return KITH_EINVAL;
  if (p == NULL || p->store == NULL)
    return KITH_ESTATE;
  if ((rc = kith_jid_normalize(kith__roster_ctx(roster), owner, 1, &norm,
                               NULL)) != KITH_OK)
    return rc;
  node = kith__roster_node_resident(roster, norm);
  if (node == NULL)
    rc = loader(p, roster, norm, 0, &node);
  if (node)
    kith__roster_node_touch(node);
  kith__free(kith__roster_ctx(roster), norm);
  if (out)
    *out = node;
  return rc;
}

void kith_roster_set_memory_limit(kith_roster_t *roster, size_t bytes)
{
  kith__persist_t *p = roster ? persist_get(roster, 1) : NULL;
  size_t i;

  if (p == NULL)
    return;
  if (p->limit == 0 && bytes > 0) {
    /* Start counting the nodes already in memory. */
    p->limit = bytes;
    p->used = 0;
    for (i = 0; i < kith_roster_node_count(roster); i++) {
      kith_roster_node_t *node = kith_roster_node_at(roster, i);

      kith__roster_node_set_acct(node, 0);
      account(p, node);
    }
  }
  p->limit = bytes;
  evict(p);
}

void kith_roster_trim(kith_roster_t *roster)
{
  kith__persist_t *p = roster ? kith__roster_persist(roster) : NULL;

  if (p && !kith__roster_in_batch(roster))
    evict(p);
}

size_t kith_roster_memory(const kith_roster_t *roster)
{
  kith__persist_t *p = roster ? kith__roster_persist(roster) : NULL;
  size_t i, sum = 0;

  if (p && p->limit)
    return p->used;
  for (i = 0; roster && i < kith_roster_node_count(roster); i++)
    sum += kith__roster_node_bytes(kith_roster_node_at(roster, i));
  return sum;
}

void kith__persist_set_ext(kith_roster_t *roster,
                           const kith__persist_ext_t *ext)
{
  kith__persist_t *p = persist_get(roster, ext != NULL);

  if (p == NULL)
    return;
  if (ext)
    p->ext = *ext;
  else
    memset(&p->ext, 0, sizeof(p->ext));
}

void kith__persist_flush(kith_roster_t *roster)
{
  kith__persist_t *p = kith__roster_persist(roster);

  if (p && p->dirty && p->store)
    on_commit(p, roster);
}

void kith__persist_set_cache(kith_roster_t *roster, int on)
{
  kith__persist_t *p = persist_get(roster, on != 0);

  if (p)
    p->cache = on != 0;
}

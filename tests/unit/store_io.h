/*
 * Test helper: reading a roster store into memory and writing batches to
 * it, for the store tests (test_store.c, test_store_redis.c).
 *
 * load() runs kith_store_load() into a node_t, a sink that keeps a copy
 * of everything it is fed; find() looks an item up in it. simple_op()
 * and apply_ok() build and apply the batches. Include after <cmocka.h>.
 */
#ifndef KITH_TEST_STORE_IO_H
#define KITH_TEST_STORE_IO_H

#include <stdlib.h>
#include <string.h>

#include "kith/store.h"

/* ---- a sink that keeps what it is fed ---------------------------------- */

typedef struct got_item {
  char *jid, *name; /* name NULL: the item had none */
  char **groups;
  size_t ngroups;
  unsigned flags;
} got_item_t;

typedef struct node {
  int versions; /* how often the version callback ran */
  char *version;
  got_item_t *items;
  size_t n, cap;
  size_t stop_after; /* > 0: the item callback fails after this many */
} node_t;

static inline kith_status_t got_version(void *ud, const char *version)
{
  node_t *nd = ud;

  nd->versions++;
  nd->version = version ? strdup(version) : NULL;
  return KITH_OK;
}

static inline kith_status_t got_item(void *ud, const kith_store_item_t *it)
{
  node_t *nd = ud;
  got_item_t *g;
  size_t i;

  if (nd->stop_after && nd->n == nd->stop_after)
    return KITH_ECANCELED;
  if (nd->n == nd->cap) {
    nd->cap = nd->cap ? nd->cap * 2 : 16;
    nd->items = realloc(nd->items, nd->cap * sizeof(*nd->items));
    assert_non_null(nd->items);
  }
  g = &nd->items[nd->n++];
  g->jid = strdup(it->jid);
  g->name = it->name ? strdup(it->name) : NULL;
  g->ngroups = it->ngroups;
  g->groups = calloc(it->ngroups + 1, sizeof(char *));
  for (i = 0; i < it->ngroups; i++)
    g->groups[i] = strdup(it->groups[i]);
  g->flags = it->flags;
  return KITH_OK;
}

static inline void node_free(node_t *nd)
{
  size_t i, j;

  for (i = 0; i < nd->n; i++) {
    for (j = 0; j < nd->items[i].ngroups; j++)
      free(nd->items[i].groups[j]);
    free(nd->items[i].groups);
    free(nd->items[i].jid);
    free(nd->items[i].name);
  }
  free(nd->items);
  free(nd->version);
  memset(nd, 0, sizeof(*nd));
}

/* Load `owner` into `nd`, which forgets what it held before. */
static inline kith_status_t load(kith_store_t *st, const char *owner,
                                 node_t *nd)
{
  kith_store_sink_t sink = {got_version, got_item, nd};

  node_free(nd);
  return kith_store_load(st, owner, &sink);
}

static inline const got_item_t *find(const node_t *nd, const char *jid)
{
  size_t i;

  for (i = 0; i < nd->n; i++)
    if (strcmp(nd->items[i].jid, jid) == 0)
      return &nd->items[i];
  return NULL;
}

/* ---- batches ------------------------------------------------------------ */

/* An operation with no item beyond its JID: DELETE, VERSION, CLEAR, DROP. */
static inline kith_store_op_t simple_op(kith_store_op_type_t type,
                                        const char *jid, const char *version)
{
  kith_store_op_t op;

  memset(&op, 0, sizeof(op));
  op.type = type;
  op.item.jid = jid;
  op.version = version;
  return op;
}

static inline void apply_ok(kith_store_t *st, const char *owner,
                            const kith_store_op_t *ops, size_t n)
{
  kith_status_t rc = kith_store_apply(st, owner, ops, n);

  if (rc != KITH_OK)
    fail_msg("apply to %s: %s: %s", owner, kith_status_name(rc),
             kith_store_errmsg(st));
}

#endif /* KITH_TEST_STORE_IO_H */

/*
 * Internal: a roster kept in a store (kith_roster_set_store()).
 *
 * persist.c listens to the model's change hook and commit callback
 * (model.h): changes mark a node dirty (which items, whether its version
 * changed, whether it was cleared, created or removed); when the outermost
 * batch ends, each dirty node becomes ONE kith_store_apply() built from
 * the node as it is then, so a push's item and version, or a whole
 * result, land together. A failed write keeps the node dirty as a whole
 * (the next commit rewrites it: CLEAR, every item, the version), raises
 * KITH_EVENT_STORE_ERROR, and pins the node in memory until it is written.
 *
 * The model's loader is persist.c's: a node not in memory is read from
 * the store. With a memory limit, commits end with an eviction pass
 * (least recently used first, down to 90% of the limit).
 *
 * Component strangers (pending requests without an item, component.c)
 * are stored as rows flagged KITH__STORE_STRANGER, never as items: the
 * component reports changes with kith__persist_stranger() and answers
 * what a stranger's flags are now through the extension below; loading a
 * node hands such rows back to it.
 */
#ifndef KITH_ROSTER_PERSIST_H
#define KITH_ROSTER_PERSIST_H

#include "kith/roster.h"
#include "kith/store.h"

/* A stored row that is a component's stranger, not an item. */
#define KITH__STORE_STRANGER KITH_STORE_STRANGER

typedef struct kith__persist_ext {
  /* The stranger flags of `jid` for `owner` now (0: no entry). */
  unsigned (*stranger_flags)(void *ud, const char *owner, const char *jid);
  /* Call `fn` for each stranger of `owner` (a node written whole). */
  void (*strangers)(void *ud, const char *owner,
                    void (*fn)(void *fud, const char *jid, unsigned flags),
                    void *fud);
  /* A stranger row was loaded. */
  void (*stranger_loaded)(void *ud, const char *owner, const char *jid,
                          unsigned flags);
  void *ud;
} kith__persist_ext_t;

/** Install (or with NULL remove) the component's extension. */
void kith__persist_set_ext(kith_roster_t *roster,
                           const kith__persist_ext_t *ext);

/** A stranger of `owner` changed: write it with the current batch. */
void kith__persist_stranger(kith_roster_t *roster, const char *owner,
                            const char *jid);

/** Write whatever is still dirty now (before the component goes). */
void kith__persist_flush(kith_roster_t *roster);

/**
 * Client cache mode (set by kith_roster_attach() on a client connection):
 * a damaged store is reset when the own node cannot be read, and the
 * roster is then fetched whole.
 */
void kith__persist_set_cache(kith_roster_t *roster, int on);

#endif /* KITH_ROSTER_PERSIST_H */

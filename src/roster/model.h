/*
 * Internal: the roster model (nodes, items, groups, resources) and the
 * functions that change it. The public accessors are in kith/roster.h;
 * this header is the contract for the layers built on the model (client
 * sync, presence tracking, component logic, the store).
 *
 * Shape. A kith_roster_t holds nodes keyed by normalized owner bare JID,
 * kept in creation order. A node holds items keyed by normalized contact
 * bare JID (open-addressing hash, O(1) lookup), the roster version, the
 * node's group names (each stored once per node, in first-use order) and
 * per-node policy overrides. An item holds its JID, name, groups (an
 * ordered set), subscription flags (KITH_ROSTER_*), the whitelist bit and,
 * only while the contact is online, its resources.
 *
 * JIDs. Keys are bare JIDs normalized by kith_jid_normalize(..., bare=1).
 * Functions taking `jid` accept any form (case, resource) and normalize;
 * lookups first try the string as given, since a string equal to a
 * normalized key normalizes to that key, so looking up an already
 * normalized JID costs no normalization. The *_norm variants skip
 * normalization entirely: pass them only strings that are exactly a
 * normalized bare JID (from kith_jid_normalize() or from our own store).
 * A lookup that has to normalize and runs out of memory finds nothing.
 *
 * Pointers. Items, nodes and strings are borrowed; they stay valid until
 * the object changes:
 *   - kith__roster_item_upsert() may MOVE an existing item (its name,
 *     groups and JID live in the item's single allocation). Use the
 *     pointer it returns; older pointers to that item are invalid.
 *   - Flags, whitelist and presence changes never move an item.
 *   - Removing an item moves the node's last item into its place in the
 *     iteration order (pointers to other items stay valid).
 *
 * Failure. Every function that can fail leaves the roster exactly as it
 * was (the tests fail each allocation in turn to check this).
 *
 * Change hook. A store (memory / SQLite / Redis) observes persistent
 * changes through one hook per roster, called synchronously after the
 * change (before it, for removals, so the item can still be read):
 *   KITH__CHANGE_ITEM     item added or changed: jid, name, groups, flags
 *                         or whitelist (not presence: presence is
 *                         volatile and never persisted)
 *   KITH__CHANGE_REMOVED  item about to be freed
 *   KITH__CHANGE_VERSION  the node's version changed (item is NULL)
 *   KITH__CHANGE_CLEARED  all of the node's items are about to be freed,
 *                         and its version cleared (item is NULL); no
 *                         per-item REMOVED events follow
 *   KITH__CHANGE_NODE_ADDED    a node was created (item is NULL)
 *   KITH__CHANGE_NODE_REMOVED  a node is about to be freed with its items
 *                         (no CLEARED or REMOVED events for them)
 * The hook must not change the roster.
 *
 * Batches. Changes that belong together (a roster push and its version, a
 * whole roster result, one subscription stanza's effects) are bracketed by
 * kith__roster_begin() / kith__roster_end(); brackets nest. When the
 * outermost bracket closes, the commit callback runs once (even when
 * nothing changed, so a store can also trim its cache there). A change
 * made outside any bracket is a batch of its own: the commit callback runs
 * right after its hook call.
 *
 * Loading. With a loader set (a store), looking up or adding a node that
 * is not in memory asks the loader first; a loader fills the node through
 * the usual functions inside kith__roster_mute(), which keeps the hook
 * quiet. Nodes can leave memory again (kith__roster_evict()) without the
 * hook hearing of it: they are still in the store.
 */
#ifndef KITH_ROSTER_MODEL_H
#define KITH_ROSTER_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "kith/roster.h"
#include "kith/stanza.h"

/* Default limits (DESIGN.md "Limits that protect memory"). */
#define KITH__ROSTER_MAX_ITEMS 1000000u
#define KITH__ROSTER_MAX_RESOURCES 64u
/* Groups per item: a hard bound of the item layout. */
#define KITH__ROSTER_MAX_GROUPS 65535u

typedef enum kith__roster_change {
  KITH__CHANGE_ITEM = 0,
  KITH__CHANGE_REMOVED = 1,
  KITH__CHANGE_VERSION = 2,
  KITH__CHANGE_CLEARED = 3,
  KITH__CHANGE_NODE_ADDED = 4,
  KITH__CHANGE_NODE_REMOVED = 5
} kith__roster_change_t;

#define KITH__CHANGE_COUNT 6

typedef void (*kith__roster_hook_fn)(void *ud, kith_roster_node_t *node,
                                     kith_roster_item_t *item,
                                     kith__roster_change_t what);

/* ---- The collection ---------------------------------------------------- */

/** The roster's context (never NULL: the default context stands in). */
kith_ctx_t *kith__roster_ctx(const kith_roster_t *roster);

/** Set the change hook (NULL to remove). One hook per roster. */
void kith__roster_set_hook(kith_roster_t *roster, kith__roster_hook_fn fn,
                           void *ud);

/** Batches (see the top of this file). */
void kith__roster_begin(kith_roster_t *roster);
void kith__roster_end(kith_roster_t *roster);
/** Non-zero inside a bracket. */
int kith__roster_in_batch(const kith_roster_t *roster);
/** Set the commit callback (NULL to remove). */
void kith__roster_set_commit(kith_roster_t *roster,
                             void (*fn)(void *ud, kith_roster_t *roster),
                             void *ud);
/** Silence the hook (on non-zero, nesting) and let it speak again (0). */
void kith__roster_mute(kith_roster_t *roster, int on);

/**
 * The loader: called with a normalized owner that has no node in memory.
 * It creates and fills the node (kith__roster_node_create_norm(), muted)
 * and returns KITH_OK with *out set, KITH_ENOTFOUND when the store does not
 * know the owner, or another error (then no node may be left behind).
 * `create` is non-zero when the caller makes the node anyway if it is
 * not found (kith_roster_add_node()).
 */
typedef kith_status_t (*kith__roster_loader_fn)(void *ud, kith_roster_t *roster,
                                                const char *owner, int create,
                                                kith_roster_node_t **out);
void kith__roster_set_loader(kith_roster_t *roster, kith__roster_loader_fn fn,
                             void *ud);

/**
 * Create the node of `owner` (a normalized bare JID, not in memory) and
 * raise KITH__CHANGE_NODE_ADDED. KITH_EEXIST when it is in memory.
 */
kith_status_t kith__roster_node_create_norm(kith_roster_t *roster,
                                            const char *owner,
                                            kith_roster_node_t **out);

/** The node of normalized `owner` if it is in memory (no loading). */
kith_roster_node_t *kith__roster_node_resident(const kith_roster_t *roster,
                                               const char *owner);

/* ---- Memory and eviction -------------------------------------------------
 * A node's use stamp (kith__roster_node_touch(), which lookups through
 * kith_roster_node() and kith_roster_add_node() call) orders nodes for
 * least-recently-used eviction. */
void kith__roster_node_touch(kith_roster_node_t *node);
uint64_t kith__roster_node_stamp(const kith_roster_node_t *node);
/** Bytes the node's model holds (items, groups, index; not resources). */
size_t kith__roster_node_bytes(const kith_roster_node_t *node);
/** Non-zero when some item of the node has a connected resource. */
int kith__roster_node_has_presence(const kith_roster_node_t *node);
/**
 * Free `n` nodes from memory in one pass, without the hook (their data
 * stays in the store). The self node is never in the list.
 */
void kith__roster_evict(kith_roster_t *roster, kith_roster_node_t **nodes,
                        size_t n);

/**
 * The persistence layer's state (persist.c), freed by kith_roster_free()
 * through `free_fn` after the detach hook and before the nodes go.
 */
void kith__roster_set_persist(kith_roster_t *roster, void *p,
                              void (*free_fn)(void *p));
void *kith__roster_persist(const kith_roster_t *roster);

/** A node's accounted bytes, as the persistence layer last set them. */
size_t kith__roster_node_acct(const kith_roster_node_t *node);
void kith__roster_node_set_acct(kith_roster_node_t *node, size_t bytes);

/**
 * Limits: items per node (default KITH__ROSTER_MAX_ITEMS) and resources
 * per item (default KITH__ROSTER_MAX_RESOURCES). A limit applies to later
 * additions; existing content over a lowered limit stays. 0 is raised to 1.
 */
void kith__roster_set_max_items(kith_roster_t *roster, size_t max);
void kith__roster_set_max_resources(kith_roster_t *roster, size_t max);

/**
 * The client's own node: find or create the node of `bare_jid` (any form,
 * normalized) and make it the one kith_roster_self() returns. NULL clears
 * the self pointer (the node stays). KITH_EJID, KITH_ENOMEM.
 */
kith_status_t kith__roster_set_self(kith_roster_t *roster,
                                    const char *bare_jid);

/**
 * Detach hook for the layer that attaches a roster to a connection:
 * kith_roster_free() calls `fn(roster, ud)` first, once. NULL removes it.
 */
void kith__roster_set_detach(kith_roster_t *roster,
                             void (*fn)(kith_roster_t *roster, void *ud),
                             void *ud);
/** The `ud` given to kith__roster_set_detach(), or NULL. */
void *kith__roster_attachment(const kith_roster_t *roster);

/**
 * Roster-wide subscription policy, which nodes inherit (defaults: ACCEPT,
 * auto-subscribe on). `auto_authorize` must not be INHERIT (KITH_EINVAL).
 */
kith_status_t kith__roster_set_policy(kith_roster_t *roster,
                                      kith_auto_authorize_t auto_authorize,
                                      int auto_subscribe);
/** The roster-wide policy. Out-pointers may be NULL. */
void kith__roster_policy(const kith_roster_t *roster,
                         kith_auto_authorize_t *auto_authorize,
                         int *auto_subscribe);
/** A node's effective policy, overrides resolved. Out-pointers may be NULL. */
void kith__roster_node_policy(const kith_roster_node_t *node,
                              kith_auto_authorize_t *auto_authorize,
                              int *auto_subscribe);

/** Drop every resource of every item of every node (e.g. on disconnect). */
void kith__roster_clear_all_presence(kith_roster_t *roster);

/* ---- A node -------------------------------------------------------------- */

kith_roster_t *kith__roster_node_roster(const kith_roster_node_t *node);

/**
 * Set (copy) the roster version; NULL clears it. Raises
 * KITH__CHANGE_VERSION when it differs. KITH_ENOMEM.
 */
kith_status_t kith__roster_node_set_version(kith_roster_node_t *node,
                                            const char *ver);

/**
 * Remove every item and clear the version (for a full roster that
 * replaces the cached one). Raises one KITH__CHANGE_CLEARED first.
 */
void kith__roster_node_clear(kith_roster_node_t *node);

/** Drop every resource of every item of the node. */
void kith__roster_node_clear_all_presence(kith_roster_node_t *node);

/** The node's policy overrides as set (INHERIT / -1 when inheriting). */
kith_auto_authorize_t
kith__roster_node_auto_authorize(const kith_roster_node_t *node);
int kith__roster_node_auto_subscribe(const kith_roster_node_t *node);

/* ---- Items: lookup and change ---------------------------------------------
 */

/** The item whose key is exactly `jid_norm` (no normalization), or NULL. */
kith_roster_item_t *kith__roster_item_find_norm(const kith_roster_node_t *node,
                                                const char *jid_norm);

/**
 * A hint: start loading what looking up `jid_norm` will read, so that an
 * upsert or lookup of it soon after does not wait for memory. In a large
 * roster the lookup is a cache miss (the index is many megabytes), and a
 * roster result can issue the hint while it still reads the item. Any
 * string is harmless; nothing changes.
 */
void kith__roster_item_prefetch(const kith_roster_node_t *node,
                                const char *jid_norm);

/**
 * Add or update the item for `jid` (any form; normalized to its bare JID).
 *
 * `name` NULL or "" means no name. `groups` holds `ngroups` names (may be
 * NULL when 0); they become an ordered set: duplicates after the first
 * are dropped, order is kept. An empty group name is KITH_EINVAL (RFC 6121
 * 2.1.2.2 requires character data; the sync layer answers such a push
 * with not-acceptable). A new item starts with flags 0 (None).
 *
 * On success *out (may be NULL) gets the item, which may have moved (see
 * the top of this file), and *changed (may be NULL) is 1 when the item
 * was created or its name or groups changed, 0 when it already matched;
 * the hook sees KITH__CHANGE_ITEM only in the first case.
 *
 * KITH_EJID (invalid JID), KITH_EINVAL, KITH_ELIMIT (a new item past the
 * node's item limit, or more than KITH__ROSTER_MAX_GROUPS groups),
 * KITH_ENOMEM. On error nothing changed and *out is NULL.
 */
kith_status_t kith__roster_item_upsert(kith_roster_node_t *node,
                                       const char *jid, const char *name,
                                       const char *const *groups,
                                       size_t ngroups, kith_roster_item_t **out,
                                       int *changed);

/**
 * kith__roster_item_upsert() for a `jid_norm` that is already exactly a
 * normalized bare JID: no normalization, no allocation for the key.
 * Passing anything else breaks lookups (KITH_EINVAL only for "" or a '/').
 */
kith_status_t
kith__roster_item_upsert_norm(kith_roster_node_t *node, const char *jid_norm,
                              const char *name, const char *const *groups,
                              size_t ngroups, kith_roster_item_t **out,
                              int *changed);

/**
 * Remove the item for `jid` (any form). Raises KITH__CHANGE_REMOVED before
 * freeing. KITH_ENOTFOUND, KITH_EJID.
 */
kith_status_t kith__roster_item_remove(kith_roster_node_t *node,
                                       const char *jid);
/** Remove `item` itself (it is freed). */
void kith__roster_item_remove_item(kith_roster_item_t *item);

/** The node that holds `item`. */
kith_roster_node_t *kith__roster_item_node(const kith_roster_item_t *item);

/**
 * Set the subscription flags. Unknown bits are dropped and invalid
 * combinations normalized (kith__sub_normalize()). Returns 1 and raises
 * KITH__CHANGE_ITEM when the stored flags changed, else 0.
 */
int kith__roster_item_set_flags(kith_roster_item_t *item, unsigned flags);

/* ---- Items: presence (volatile, never raises the hook) --------------------
 */

/**
 * Add or update `resource` of the contact (NULL or "" for a presence from
 * the bare JID). `show` KITH_SHOW_CHAT..KITH_SHOW_DND; `status` may be
 * NULL; `priority` -128..127; `time_ms` CLOCK_REALTIME milliseconds, or 0
 * for now. `stanza` (may be NULL) is the presence as received: a copy is
 * kept (kith_stanza_copy(), in the stanza's own context) and replaces the
 * previous one, so the component can answer probes with it; pass NULL to
 * keep none (then any older copy for this resource is dropped).
 *
 * KITH_EINVAL (bad show or priority), KITH_ELIMIT (a new resource past the
 * resource limit), KITH_ENOMEM.
 */
kith_status_t kith__roster_item_set_presence(kith_roster_item_t *item,
                                             const char *resource,
                                             kith_show_t show,
                                             const char *status, int priority,
                                             int64_t time_ms,
                                             const kith_stanza_t *stanza);

/** Drop one resource (NULL or "" = the bare JID). KITH_ENOTFOUND. */
kith_status_t kith__roster_item_clear_presence(kith_roster_item_t *item,
                                               const char *resource);

/** Drop every resource; the item is then offline. */
void kith__roster_item_clear_all_presence(kith_roster_item_t *item);

/** What a presence did to a contact: the got_online / changed_status /
 * got_offline events are read off this. */
typedef enum kith__presence_change {
  KITH__PRESENCE_SAME = 0,    /* nothing worth an event */
  KITH__PRESENCE_ONLINE = 1,  /* the contact's first resource came online */
  KITH__PRESENCE_CHANGED = 2, /* a known resource changed show/status/prio */
  KITH__PRESENCE_OFFLINE = 3  /* the contact's last resource went offline */
} kith__presence_change_t;

/**
 * Track an available presence of `resource` (kith__roster_item_set_presence
 * with the current time and no stanza) and say what it changed in *change.
 * Errors as kith__roster_item_set_presence(); *change is then SAME.
 */
kith_status_t kith__roster_item_track_available(
    kith_roster_item_t *item, const char *resource, kith_show_t show,
    const char *status, int priority, kith__presence_change_t *change);

/**
 * Track an unavailable presence: one resource, or every resource when
 * `resource` is NULL (an unavailable from the bare JID speaks for the whole
 * contact, RFC 6121 3.3). Returns OFFLINE when the contact's last resource
 * went, else SAME.
 */
kith__presence_change_t
kith__roster_item_track_unavailable(kith_roster_item_t *item,
                                    const char *resource);

/** The last presence stanza kept for `resource` (NULL/"" = bare), or NULL. */
const kith_stanza_t *
kith__roster_item_presence_stanza(const kith_roster_item_t *item,
                                  const char *resource);

/** CLOCK_REALTIME now, in milliseconds. */
int64_t kith__roster_now_ms(void);

#endif /* KITH_ROSTER_MODEL_H */

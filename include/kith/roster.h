/*
 * kith: rosters and presence subscriptions (RFC 6121).
 *
 * A kith_roster_t is a collection of roster nodes keyed by owner bare JID.
 * A client has one node, its own bare JID; a XEP-0114 component has one
 * node per JID it serves. A node holds items keyed by contact bare JID.
 *
 * An item's subscription is tracked as RFC 6121 does: the flags `from`,
 * `to`, `pending_in`, `pending_out` and `approved` (see KITH_ROSTER_*).
 * The subscription value none/to/from/both is derived from them, never
 * stored separately. Each item also keeps its contact's connected resources
 * with show, status, priority and when they last changed.
 *
 * Attach a roster to a connection with kith_roster_attach(): it then keeps
 * the client roster in sync (versioned fetch, pushes), tracks presence,
 * applies the subscription policy, and in component mode acts as the
 * server for its nodes. Events are delivered through the connection's
 * handlers (kith_conn_on()).
 *
 * Borrowed pointers (items, nodes, strings) stay valid until the roster
 * next changes, that is, until control returns to the event loop or the
 * next call that modifies the roster.
 */
#ifndef KITH_ROSTER_H
#define KITH_ROSTER_H

#include <stddef.h>
#include <stdint.h>
#include "kith/export.h"
#include "kith/status.h"
#include "kith/ctx.h"
#include "kith/stanza.h"
#include "kith/conn.h"
#include "kith/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kith_roster kith_roster_t;
typedef struct kith_roster_node kith_roster_node_t;
typedef struct kith_roster_item kith_roster_item_t;

/* Subscription flags of an item (RFC 6121 section 3 and Appendix A). */
#define KITH_ROSTER_FROM 0x01u        /* the contact receives our presence */
#define KITH_ROSTER_TO 0x02u          /* we receive the contact's presence */
#define KITH_ROSTER_PENDING_IN 0x04u  /* the contact asked; we have not said */
#define KITH_ROSTER_PENDING_OUT 0x08u /* we asked; the contact has not said */
#define KITH_ROSTER_APPROVED 0x10u    /* pre-approved (RFC 6121 3.4) */

/** The subscription state derived from the flags. */
typedef enum kith_sub {
  KITH_SUB_NONE = 0,
  KITH_SUB_TO = 1,
  KITH_SUB_FROM = 2,
  KITH_SUB_BOTH = 3
} kith_sub_t;

/** What to do with an incoming subscription request. */
typedef enum kith_auto_authorize {
  KITH_AUTHORIZE_ACCEPT = 0, /* answer 'subscribed' (the default) */
  KITH_AUTHORIZE_REJECT = 1, /* answer 'unsubscribed' */
  KITH_AUTHORIZE_MANUAL = 2, /* leave it pending; the application answers */
  KITH_AUTHORIZE_INHERIT = 3 /* per-node setting: use the roster's */
} kith_auto_authorize_t;

/** Availability of a resource, in the order best resource ranks it. */
typedef enum kith_show {
  KITH_SHOW_CHAT = 0,
  KITH_SHOW_AVAILABLE = 1,
  KITH_SHOW_AWAY = 2,
  KITH_SHOW_XA = 3,
  KITH_SHOW_DND = 4,
  KITH_SHOW_UNAVAILABLE = 5
} kith_show_t;

/** "none", "to", "from" or "both". */
KITH_EXTERN const char *kith_sub_name(kith_sub_t sub);
/** "chat", "available", "away", "xa", "dnd", "unavailable". */
KITH_EXTERN const char *kith_show_name(kith_show_t show);

/* ---- The collection ------------------------------------------------- */

/** Create an empty roster collection. */
KITH_EXTERN kith_status_t kith_roster_new(kith_ctx_t *ctx, kith_roster_t **out);
/** Free a roster (detaching it first). NULL is a no-op. */
KITH_EXTERN void kith_roster_free(kith_roster_t *roster);

/** The node of `owner` (any JID form; its bare JID is used), or NULL. */
KITH_EXTERN kith_roster_node_t *kith_roster_node(const kith_roster_t *roster,
                                                 const char *owner);
/**
 * The node of `owner`, created empty if missing. *out may be NULL.
 * KITH_EJID for an invalid JID, KITH_EINVAL, KITH_ENOMEM.
 */
KITH_EXTERN kith_status_t kith_roster_add_node(kith_roster_t *roster,
                                               const char *owner,
                                               kith_roster_node_t **out);
/**
 * Remove a node and its items (pointers into it become invalid).
 * KITH_ENOTFOUND if absent.
 */
KITH_EXTERN kith_status_t kith_roster_remove_node(kith_roster_t *roster,
                                                  const char *owner);
/** Number of nodes. */
KITH_EXTERN size_t kith_roster_node_count(const kith_roster_t *roster);
/** The i-th node in creation order, or NULL past the end. */
KITH_EXTERN kith_roster_node_t *kith_roster_node_at(const kith_roster_t *r,
                                                    size_t i);
/** The client's own node (its bound bare JID), or NULL before binding. */
KITH_EXTERN kith_roster_node_t *kith_roster_self(const kith_roster_t *roster);

/* ---- A node (one owner's roster) ------------------------------------ */

/** The owner's bare JID. */
KITH_EXTERN const char *kith_roster_node_owner(const kith_roster_node_t *n);
/** The roster version (RFC 6121 2.6), or NULL when none is known. */
KITH_EXTERN const char *kith_roster_node_version(const kith_roster_node_t *n);
/** Number of items. */
KITH_EXTERN size_t kith_roster_node_size(const kith_roster_node_t *n);
/**
 * The item for `jid` (any form; bare JID used), O(1), or NULL. A JID
 * already in normalized bare form is looked up without normalizing.
 */
KITH_EXTERN kith_roster_item_t *
kith_roster_node_item(const kith_roster_node_t *n, const char *jid);
/**
 * Iterate: *cursor starts at 0; each call returns the next item or NULL at
 * the end. The order is unspecified but stable while the node is unchanged.
 */
KITH_EXTERN kith_roster_item_t *
kith_roster_node_next(const kith_roster_node_t *n, size_t *cursor);
/** Number of group names used in the node. */
KITH_EXTERN size_t kith_roster_node_group_count(const kith_roster_node_t *n);
/** The i-th group name in first-use order, or NULL past the end. */
KITH_EXTERN const char *kith_roster_node_group_at(const kith_roster_node_t *n,
                                                  size_t i);
/**
 * The items in `group`, written into `out` (at most `max`); returns how
 * many there are in all. Items with no group are in group "" here.
 */
KITH_EXTERN size_t kith_roster_node_group_items(const kith_roster_node_t *n,
                                                const char *group,
                                                kith_roster_item_t **out,
                                                size_t max);
/**
 * Presence broadcast targets: the items whose subscription is from or
 * both (never none or to). Same calling convention as group_items.
 */
KITH_EXTERN size_t kith_roster_node_broadcast_targets(
    const kith_roster_node_t *n, kith_roster_item_t **out, size_t max);

/** Per-node policy overrides (KITH_AUTHORIZE_INHERIT / -1 to inherit). */
KITH_EXTERN void
kith_roster_node_set_auto_authorize(kith_roster_node_t *n,
                                    kith_auto_authorize_t policy);
/** Per-node auto-subscribe: 0 off, 1 on, -1 inherit the roster's. */
KITH_EXTERN void kith_roster_node_set_auto_subscribe(kith_roster_node_t *n,
                                                     int on /* -1 inherit */);

/* ---- An item -------------------------------------------------------- */

/** The contact's normalized bare JID. Borrowed. */
KITH_EXTERN const char *kith_roster_item_jid(const kith_roster_item_t *it);
/** The item's name, or NULL when it has none (an empty name is none). */
KITH_EXTERN const char *kith_roster_item_name(const kith_roster_item_t *it);
/** Number of groups the item is in. */
KITH_EXTERN size_t kith_roster_item_group_count(const kith_roster_item_t *it);
/** The i-th group, in the order the server sent them, or NULL past the end. */
KITH_EXTERN const char *kith_roster_item_group_at(const kith_roster_item_t *it,
                                                  size_t i);
/** The KITH_ROSTER_* flags. */
KITH_EXTERN unsigned kith_roster_item_flags(const kith_roster_item_t *it);
/** none / to / from / both, derived from the flags. */
KITH_EXTERN kith_sub_t kith_roster_item_sub(const kith_roster_item_t *it);
/**
 * Whitelist: subscription requests from this contact are accepted whatever
 * the policy (`on` non-zero). Local to kith; never sent to the server.
 */
KITH_EXTERN void kith_roster_item_set_whitelisted(kith_roster_item_t *it,
                                                  int on);
/** Non-zero when the contact is whitelisted. */
KITH_EXTERN int kith_roster_item_whitelisted(const kith_roster_item_t *it);

/** Number of connected resources. */
KITH_EXTERN size_t
kith_roster_item_resource_count(const kith_roster_item_t *it);
/** The i-th connected resource's name, or NULL past the end. */
KITH_EXTERN const char *
kith_roster_item_resource_at(const kith_roster_item_t *it, size_t i);
/**
 * A resource's presence (`resource` NULL or "" for a presence from the
 * bare JID). Any out-pointer may be NULL. KITH_ENOTFOUND when
 * the resource is not connected. `last` is a CLOCK_REALTIME time in ms.
 */
KITH_EXTERN kith_status_t kith_roster_item_presence(
    const kith_roster_item_t *it, const char *resource, kith_show_t *show,
    const char **status, int *priority, int64_t *last);
/**
 * The best resource: highest priority, then show (chat > available > away
 * > xa > dnd), then the most recently updated. NULL when none is online.
 */
KITH_EXTERN const char *
kith_roster_item_best_resource(const kith_roster_item_t *it);

/* ---- Persistence (kith/store.h) ---------------------------------------- */

/**
 * Keep the roster in `store` (borrowed: it must outlive the roster, or be
 * unset with NULL first). From then on:
 *   - a node not in memory is loaded from the store the first time it is
 *     looked up (kith_roster_node(), kith_roster_add_node(), stanzas for
 *     it), so a client reads its cached roster before connecting;
 *   - every change is written through, one atomic batch per roster change
 *     (a push and its version, a whole result and its version, the
 *     effects of one subscription stanza), before control returns to the
 *     event loop; a failed write raises KITH_EVENT_STORE_ERROR and is
 *     retried as a rewrite of the node at the next change;
 *   - attached to a client connection, a damaged cache (KITH_ECORRUPT) is
 *     reset and the roster fetched whole.
 * Presence, per-node policy overrides and the component's owner presence
 * are not stored. Set the store on an empty roster (KITH_ESTATE otherwise).
 */
KITH_EXTERN kith_status_t kith_roster_set_store(kith_roster_t *roster,
                                                kith_store_t *store);
/** The roster's store, or NULL. */
KITH_EXTERN kith_store_t *kith_roster_store(const kith_roster_t *roster);

/**
 * Load the node of `owner` from the store now (or find it in memory).
 * KITH_ENOTFOUND when the store does not know the owner (no node is
 * created), KITH_ESTORE / KITH_ECORRUPT when the store failed
 * (kith_store_errmsg() says why), KITH_ESTATE without a store.
 */
KITH_EXTERN kith_status_t kith_roster_load(kith_roster_t *roster,
                                           const char *owner,
                                           kith_roster_node_t **out);

/**
 * Bound the memory the roster's nodes take (bytes; 0, the default, means
 * unbounded). With a store, nodes nobody used for longest leave memory
 * when the bound is passed (they stay in the store and come back on
 * their next use): a component serving a million JIDs keeps only its
 * active ones. Nodes with online contacts, the client's own node and
 * nodes whose last write failed stay. Eviction happens when a roster
 * change or a stanza's handling ends, never in the middle of one;
 * pointers to an evicted node become invalid then.
 */
KITH_EXTERN void kith_roster_set_memory_limit(kith_roster_t *roster,
                                              size_t bytes);
/**
 * Apply the memory bound now: evict idle nodes as the end of a change
 * would. For an application that walks many owners with lookups alone
 * (which never evict): pointers to nodes and items it holds may become
 * invalid.
 */
KITH_EXTERN void kith_roster_trim(kith_roster_t *roster);
/** The bytes the roster's nodes in memory take, as the bound counts them. */
KITH_EXTERN size_t kith_roster_memory(const kith_roster_t *roster);

/* ---- Attaching to a connection -------------------------------------- */

/**
 * Attach the roster to a connection (one connection per roster). It then
 * registers its stanza and event handlers there: for a client it fetches
 * the roster at session start (before the initial presence, see
 * kith_roster_set_initial_presence()), applies pushes, tracks presence and
 * answers subscription requests by policy; for a component it acts as the
 * server for its nodes. KITH_EEXIST when already attached.
 */
KITH_EXTERN kith_status_t kith_roster_attach(kith_roster_t *roster,
                                             kith_conn_t *conn);
/**
 * Remove the roster's handlers from its connection; requests in flight
 * get KITH_ECANCELED. Either object may be freed first: a roster whose
 * connection was freed forgets it.
 */
KITH_EXTERN void kith_roster_detach(kith_roster_t *roster);

/**
 * Completion callback for roster requests. `status` is KITH_OK when the
 * server accepted, KITH_ESTANZA with `reply` the error stanza, KITH_EPROTO
 * for a malformed result, or KITH_ETIMEDOUT / KITH_ECANCELED. Fires exactly
 * once unless the request function returned an error.
 */
typedef void (*kith_roster_cb)(kith_roster_t *roster, kith_status_t status,
                               const kith_stanza_t *reply, void *ud);

/*
 * Components (XEP-0114): attached to a component connection, the roster
 * acts as the server for its nodes (RFC 6121 section 3 and Appendix A):
 * it answers subscription stanzas and probes, broadcasts presence to
 * from/both contacts, probes to/both contacts at session start, and on
 * detach (or kith_roster_free) sends unavailable from every available
 * owner. kith_roster_fetch(), kith_roster_update() and kith_roster_remove()
 * return KITH_EUNSUPPORTED there: a component's rosters are its own.
 */

/**
 * Fetch the client roster (RFC 6121 2.2), with the cached version when the
 * server supports versioning (2.6). An empty result keeps the cache; a full
 * one replaces it (items not in it are removed, each with roster_update).
 * `cb` may be NULL.
 */
KITH_EXTERN kith_status_t kith_roster_fetch(kith_roster_t *roster,
                                            kith_roster_cb cb, void *ud);
/**
 * Add or change an item on the server (iq set). `name` NULL: no name.
 * `subscription` is NULL, or "remove" to delete. The local roster changes
 * only when the server's push arrives: the server is authoritative.
 */
KITH_EXTERN kith_status_t kith_roster_update(kith_roster_t *roster,
                                             const char *jid, const char *name,
                                             const char *const *groups,
                                             size_t ngroups,
                                             const char *subscription,
                                             kith_roster_cb cb, void *ud);
/** Delete an item (kith_roster_update() with subscription "remove"). */
KITH_EXTERN kith_status_t kith_roster_remove(kith_roster_t *roster,
                                             const char *jid, kith_roster_cb cb,
                                             void *ud);

/**
 * Send presence. `to` NULL broadcasts; `type` NULL is available (or
 * "unavailable", "probe"); `from` is the owner for a component (NULL for a
 * client; for a component, NULL with type "unavailable" means every
 * owner); `show` NULL or "chat"/"away"/"xa"/"dnd"; `status` NULL or text;
 * `priority` outside -128..127 leaves it out.
 */
KITH_EXTERN kith_status_t kith_roster_send_presence(
    kith_roster_t *roster, const char *to, const char *type, const char *from,
    const char *show, const char *status, int priority);
/**
 * Send a subscription stanza: `type` is "subscribe", "subscribed",
 * "unsubscribe" or "unsubscribed"; `nick` (XEP-0172) may be NULL; `from` is
 * the owner for a component. "subscribed" with no pending request is a
 * pre-approval (RFC 6121 3.4), sent only when the server supports it
 * (KITH_EUNSUPPORTED otherwise).
 */
KITH_EXTERN kith_status_t kith_roster_send_subscription(kith_roster_t *roster,
                                                        const char *to,
                                                        const char *type,
                                                        const char *nick,
                                                        const char *from);

/** Policy for incoming subscription requests (default accept). */
KITH_EXTERN void kith_roster_set_auto_authorize(kith_roster_t *roster,
                                                kith_auto_authorize_t policy);
/** Subscribe back after accepting a request (default on). */
KITH_EXTERN void kith_roster_set_auto_subscribe(kith_roster_t *roster, int on);
/**
 * Send initial presence after the roster arrives at session start
 * (default on; off leaves it to the application).
 */
KITH_EXTERN void kith_roster_set_initial_presence(kith_roster_t *roster,
                                                  int on);
/**
 * Also accept roster pushes from the account's own full JID (default off:
 * only no 'from' or the bare JID, RFC 6121 2.1.6).
 */
KITH_EXTERN void kith_roster_set_accept_full_jid_push(kith_roster_t *roster,
                                                      int on);

#ifdef __cplusplus
}
#endif

#endif /* KITH_ROSTER_H */

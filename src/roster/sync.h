/*
 * Internal: attaching a roster to a connection (kith_roster_attach()).
 *
 *   sync.c      attach/detach, policy setters, session start, the roster
 *               fetch with versioning, pushes, roster sets, disconnect
 *   presence.c  presence tracking, inbound subscription stanzas and the
 *               subscription policy, kith_roster_send_presence() and
 *               kith_roster_send_subscription()
 *
 * The state (kith__sync_t) is the roster's attachment
 * (kith__roster_attachment()). It is created by the first policy setter or
 * by kith_roster_attach(), whichever comes first, and freed by
 * kith_roster_free() through the detach hook; kith_roster_detach() only
 * removes the handlers, so settings survive a detach.
 *
 * Lifetime: either may be freed first. When the connection goes first, a
 * free hook (kith__conn_on_free) makes the roster forget it; when the
 * roster goes first, it removes its handlers. Like a connection, a roster
 * must not be freed from inside its own event handlers.
 *
 * Roster results (RFC 6121 2.1.4) are applied item by item: on a client
 * connection the roster turns on the parser's item streaming
 * (kith__conn_set_item_stream, xml/parser.h), so a result of any size is
 * never built as one tree and the 256 KiB stanza limit applies to each
 * item. A streamed item is taken only when the shell's 'id' is that of a
 * pending fetch and its 'from' is absent, the account's bare JID, its
 * domain or the bound full JID (the rule dispatch.c applies to iq
 * replies); anything else is dropped, so no stranger's result reaches the
 * roster. Each item is upserted at once (roster_update fires as it does),
 * through the same function a result built as a tree goes through. When
 * the shell arrives as the fetch's reply, the fetch finishes: items of the
 * cached roster the result did not name are removed (roster_update with
 * removed=1, after the upserts), the version is set, roster_received
 * fires. Stale items are found with a set of the JIDs cached when the
 * result started, marked as the result names them (the model has no spare
 * field to stamp a generation on; the set costs nothing for a first
 * fetch into an empty cache).
 *
 * Item limit: a result naming more new items than the node may hold
 * (KITH__ROSTER_MAX_ITEMS, 1,000,000, by default) stops being applied at
 * the limit: the rest of it is dropped, no item is removed as stale, the
 * version is cleared (the cache no longer matches any version, so the
 * next fetch asks for everything) and the fetch fails with KITH_ELIMIT
 * and a warning naming the limit. RFC 6121 has no partial roster; keeping
 * the old items plus what fitted is the least surprising state. A fetch
 * that ends in any other error after items were applied (timeout,
 * disconnect, detach) clears the version the same way.
 *
 * Component mode (XEP-0114, component.c): on a component connection
 * kith_roster_attach() registers the component's presence handler
 * instead of the client's, and no roster push handler (a component has
 * no server roster: kith_roster_fetch(), kith_roster_update() and
 * kith_roster_remove() return KITH_EUNSUPPORTED). Session start probes
 * and announces instead of fetching; detaching from a ready component
 * session first sends unavailable from every available owner. The
 * component keeps its own state (`comp`), freed with this one.
 */
#ifndef KITH_ROSTER_SYNC_H
#define KITH_ROSTER_SYNC_H

#include <stddef.h>
#include "kith/conn.h"
#include "kith/roster.h"

/* Subscription state of contacts that have no roster item (strangers),
 * kept outside the model (DESIGN.md: never create items for strangers). A
 * bounded list; the oldest entry goes when it is full. */
#define KITH__SYNC_MAX_STRANGERS 256u

typedef struct kith__stranger {
  struct kith__stranger *next;
  unsigned flags; /* KITH_ROSTER_* as the RFC 6121 table tracks them */
  char jid[];     /* normalized bare JID */
} kith__stranger_t;

/* A roster request in flight (fetch or set). Owned by the connection's iq
 * callback: when the roster detaches first, `sync` is set to NULL and the
 * callback only frees the record. */
typedef struct kith__sync_req {
  struct kith__sync_req *next;
  struct kith__sync *sync;
  kith_ctx_t *ctx; /* the roster's, which frees the record */
  int fetch;       /* a roster get (else a roster set) */
  int at_session;  /* the fetch that session start sends */
  char *id;        /* a fetch's iq 'id', to match streamed items */
  struct kith__sync_fetch *result; /* a fetch's result so far, or NULL */
  kith_roster_cb cb;
  void *ud;
} kith__sync_req_t;

typedef struct kith__sync {
  kith_roster_t *roster;
  kith_conn_t *conn; /* NULL while detached */
  unsigned h_push, h_presence, h_start, h_disconnect, h_free;
  int initial_presence;     /* default on */
  int accept_full_jid_push; /* default off */
  int streaming;            /* roster results stream (client only) */
  kith__sync_req_t *reqs;
  kith__stranger_t *strangers;
  size_t nstrangers;
  struct kith__comp *comp; /* component mode state (component.c), or NULL */
} kith__sync_t;

/* The roster's sync state, created when `create` is non-zero (NULL when out
 * of memory or not created). */
kith__sync_t *kith__sync_get(kith_roster_t *roster, int create);

/* The client's own node, or NULL before session start. */
kith_roster_node_t *kith__sync_self(const kith__sync_t *s);

/* Fire a roster event `type` for `node` through the connection. */
void kith__sync_emit(kith__sync_t *s, kith_event_t *ev);

/* Strangers: the entry of `jid` (normalized bare), or NULL. */
kith__stranger_t *kith__sync_stranger(kith__sync_t *s, const char *jid);
/* Set a stranger's flags (0 drops the entry). KITH_ENOMEM. */
kith_status_t kith__sync_set_stranger(kith__sync_t *s, const char *jid,
                                      unsigned flags);
/* Drop every stranger entry. */
void kith__sync_clear_strangers(kith__sync_t *s);

/* Non-zero when the server advertised the stream feature in `ns`. */
int kith__sync_has_feature(const kith__sync_t *s, const char *ns);

/*
 * A roster result applied without a connection, through the code a fetch
 * uses (for bench/roster_ingest and tests): a fetch record for the
 * roster's own node (kith__roster_set_self() first), each streamed item
 * given to kith__sync_fetch_item() (as the parser's item callback would),
 * then the reply (the shell, or a whole result built as a tree) to
 * kith__sync_fetch_finish(), which removes stale items and sets the
 * version; its status is the fetch's. Free the record with
 * kith__sync_fetch_free(). kith__sync_fetch_new() returns NULL when out of
 * memory.
 */
kith__sync_req_t *kith__sync_fetch_new(kith_roster_t *roster);
void kith__sync_fetch_item(kith__sync_req_t *req, const kith_stanza_t *shell,
                           const kith_stanza_t *item);
kith_status_t kith__sync_fetch_finish(kith__sync_req_t *req,
                                      const kith_stanza_t *reply);
void kith__sync_fetch_free(kith__sync_req_t *req);

/* presence.c: the stanza handler for every <presence/>. */
int kith__sync_on_presence(kith_conn_t *conn, const kith_stanza_t *st,
                           void *ud);
/* presence.c: send the initial presence (session start). */
kith_status_t kith__sync_send_initial_presence(kith__sync_t *s);
/* presence.c: on disconnect, report every online contact offline. */
void kith__sync_reset_presence(kith__sync_t *s);

#endif /* KITH_ROSTER_SYNC_H */

/*
 * Internal: the roster "wire" layer. Pure functions between stanzas and
 * plain C structs, for the layers that keep rosters in sync and track
 * presence (RFC 6121 sections 2, 3 and 4; XEP-0172 nicknames).
 *
 * Nothing here knows the roster model or a connection: stanzas come in and
 * structs go out, or structs come in and new stanzas go out. Every
 * function is safe to call with any stanza a peer can send: invalid input
 * gives an error (or a skipped item), never a crash.
 *
 * Ownership, as everywhere in kith:
 *   - `const char *` fields of a parse result are BORROWED from the stanza
 *     (attribute values and text) or from the result itself, and live
 *     until the stanza changes or is freed, or the result is cleared.
 *   - Owned results come back through out-parameters and are released
 *     with the matching *_clear / *_free function, which accepts NULL and
 *     zeroed structs.
 *   - Builders return a new root stanza in *out (free it with
 *     kith_stanza_free()); on error *out is NULL and nothing leaks.
 *   - `ctx` may be NULL for the default context. A result must be cleared
 *     with the context it was made with.
 *
 * JIDs. Every JID that leaves this layer is normalized (kith/jid.h): item
 * JIDs and presence addresses are compared and stored in that form, so
 * the layers above can use them as keys as they are. Builders normalize
 * the JIDs they are given and refuse invalid ones (KITH_EJID).
 *
 * Stanza namespace. Builders create root stanzas with no namespace, so
 * they take the stream's default namespace when sent (jabber:client for a
 * client, jabber:component:accept for a component). Parsers accept
 * <show/>, <status/> and <priority/> only in the namespace of their
 * <presence/>, roster items and groups only in jabber:iq:roster.
 */
#ifndef KITH_ROSTER_WIRE_H
#define KITH_ROSTER_WIRE_H

#include <limits.h>
#include <stddef.h>
#include "kith/jid.h"
#include "kith/roster.h"
#include "kith/stanza.h"

/* ---- Name tables ------------------------------------------------------- */

/**
 * The 'subscription' attribute of a roster item (RFC 6121 2.1.2.5). The
 * first four equal kith_sub_t; "remove" appears only in roster sets and
 * pushes.
 */
typedef enum kith__wire_sub {
  KITH__WIRE_SUB_NONE = KITH_SUB_NONE,
  KITH__WIRE_SUB_TO = KITH_SUB_TO,
  KITH__WIRE_SUB_FROM = KITH_SUB_FROM,
  KITH__WIRE_SUB_BOTH = KITH_SUB_BOTH,
  KITH__WIRE_SUB_REMOVE = 4,
  KITH__WIRE_SUB_COUNT = 5
} kith__wire_sub_t;

/** The value of `name` ("none", ..., "remove"), or -1 (also for NULL). */
int kith__wire_sub_from_name(const char *name);
/** "none", "to", "from", "both", "remove"; NULL when out of range. */
const char *kith__wire_sub_name(int sub);

/**
 * Presence types (RFC 6121 4 and 3, RFC 6120 8.3). AVAILABLE is the
 * absence of a 'type' attribute; it is not a value on the wire.
 */
typedef enum kith__wire_ptype {
  KITH__WIRE_PT_AVAILABLE = 0,
  KITH__WIRE_PT_UNAVAILABLE = 1,
  KITH__WIRE_PT_SUBSCRIBE = 2,
  KITH__WIRE_PT_SUBSCRIBED = 3,
  KITH__WIRE_PT_UNSUBSCRIBE = 4,
  KITH__WIRE_PT_UNSUBSCRIBED = 5,
  KITH__WIRE_PT_PROBE = 6,
  KITH__WIRE_PT_ERROR = 7,
  KITH__WIRE_PT_COUNT = 8
} kith__wire_ptype_t;

/**
 * The type a presence 'type' attribute holds: NULL is AVAILABLE; -1 for
 * any other unknown value, including "available" (which RFC 6120 does not
 * define).
 */
int kith__wire_ptype_from_attr(const char *type);
/** The 'type' attribute to write: NULL for AVAILABLE and out of range. */
const char *kith__wire_ptype_attr(int type);
/** A name for logs and events: "available", "unavailable", ...; "?". */
const char *kith__wire_ptype_name(int type);

/**
 * The kith_show_t of a <show/> element's text (RFC 6121 4.7.2.1): NULL or
 * "" is KITH_SHOW_AVAILABLE, "chat" / "away" / "xa" / "dnd" map to their
 * values, anything else is -1.
 */
int kith__wire_show_from_text(const char *text);
/**
 * The <show/> text of a kith_show_t: "chat", "away", "xa", "dnd"; NULL for
 * KITH_SHOW_AVAILABLE, KITH_SHOW_UNAVAILABLE and out of range (no <show/>).
 */
const char *kith__wire_show_text(int show);

/**
 * Non-zero when `type` is a stanza error type and `condition` a defined
 * stanza error condition of RFC 6120 8.3.2 / 8.3.3.
 */
int kith__wire_error_valid(const char *type, const char *condition);

/* ---- Roster items (RFC 6121 2.1) ----------------------------------------- */

/**
 * A roster item as the layers above see it, with borrowed strings. Used by
 * the non-allocating visitor and as input to kith__wire_item_copy().
 *
 * - jid: the normalized bare JID (a JID sent with a resource is reduced to
 *   its bare form).
 * - name: NULL when the item has no name or an empty one.
 * - groups: ngroups names in document order, duplicates after the first
 *   occurrence dropped, empty <group/> elements dropped (RFC 6121 2.3.3
 *   makes a server refuse them; we do not lose the contact over one).
 * - subscription: a kith__wire_sub_t; an absent attribute is NONE.
 * - ask: 1 for ask='subscribe' (pending out); other values are ignored.
 * - approved: 1 for approved='true' or '1' (pre-approved, RFC 6121 3.4).
 */
typedef struct kith__wire_item_view {
  const char *jid;
  const char *name;
  const char *const *groups;
  size_t ngroups;
  int subscription;
  int ask;
  int approved;
} kith__wire_item_view_t;

/**
 * The same item, owned. All strings and the group array live in ONE
 * allocation that starts at `jid`; release it with kith__wire_item_clear().
 */
typedef struct kith__wire_item {
  char *jid;
  char *name;
  char **groups;
  size_t ngroups;
  int subscription;
  int ask;
  int approved;
} kith__wire_item_t;

/**
 * Copy a view (for example one the visitor yields) into an owned item.
 * The view is taken as it is (not re-validated). *out is zeroed on
 * failure. KITH_OK, KITH_EINVAL (NULL argument or jid), KITH_ENOMEM.
 */
kith_status_t kith__wire_item_copy(kith_ctx_t *ctx,
                                   const kith__wire_item_view_t *view,
                                   kith__wire_item_t *out);

/** The view of an owned item (borrowing its strings). */
void kith__wire_item_view(const kith__wire_item_t *item,
                          kith__wire_item_view_t *view);

/** Free an item's contents and zero it. NULL and zeroed items are fine. */
void kith__wire_item_clear(kith_ctx_t *ctx, kith__wire_item_t *item);

/** Clear `n` items and free the array. NULL is a no-op. */
void kith__wire_items_free(kith_ctx_t *ctx, kith__wire_item_t *items, size_t n);

/* ---- Roster results (RFC 6121 2.1.4, 2.6.3) ------------------------------ */

/**
 * Visitor for kith__wire_roster_foreach(). `item` and every string in it
 * are valid only during the call (copy what you keep). Return KITH_OK to
 * continue; any other status stops the walk and is returned by it.
 */
typedef kith_status_t (*kith__wire_item_fn)(void *ud,
                                            const kith__wire_item_view_t *item);

/** What a roster result said besides its items. */
typedef struct kith__wire_roster_info {
  const char *ver; /* query 'ver' (borrowed), NULL when absent or unchanged */
  int unchanged;   /* 1: a result with no <query/> (RFC 6121 2.6.3) */
  size_t count;    /* items yielded */
  size_t skipped;  /* invalid items skipped (each logged at debug level) */
} kith__wire_roster_info_t;

/**
 * Walk the items of a roster result and call `fn` for each valid one, in
 * document order, without copying: the hot path for big rosters. The walk
 * is O(items + groups) and allocates only a few reused scratch blocks, and
 * for an item whose JID is not already in normalized form (servers send
 * normalized JIDs, so this is rare).
 *
 * `iq` must be an iq of type 'result':
 *   - no child element: the roster did not change since the version the
 *     request named (RFC 6121 2.6.3); info->unchanged is 1, `fn` is not
 *     called, and the client's cached roster stays.
 *   - <query xmlns='jabber:iq:roster'/>: the whole roster (maybe empty),
 *     which replaces the cached one; info->ver is its version.
 * Items are skipped (counted in info->skipped, logged, never fatal) when
 * they have no 'jid', an invalid JID, or a 'subscription' other than
 * none/to/from/both (RFC 6121 2.1.2.5: "remove" has no place in a result).
 *
 * `info` (required) is filled even on error as far as the walk got.
 * Returns KITH_OK; KITH_ESTANZA for an iq of type 'error'; KITH_EPROTO for
 * anything else that is not a roster result (not an iq, other types, a
 * child that is not a roster query); KITH_EINVAL for NULL arguments;
 * KITH_ENOMEM; or the first non-OK status `fn` returned.
 */
kith_status_t kith__wire_roster_foreach(kith_ctx_t *ctx,
                                        const kith_stanza_t *iq,
                                        kith__wire_item_fn fn, void *ud,
                                        kith__wire_roster_info_t *info);

/**
 * Scratch space for reading items, reused from item to item. Fields are
 * private to wire.c; the layout is here so that a caller can keep one on
 * its side across the items a parser streams (see kith__wire_roster_item).
 */
typedef struct kith__wire_walk {
  kith_ctx_t *ctx;
  const char **groups; /* the current item's groups */
  size_t groups_cap;
  size_t *slots; /* hash set of group index + 1, 0 = free */
  size_t slots_cap;
  size_t nslots; /* slots in use for the current item (a power of 2) */
  char *jid;     /* the current item's JID when it had to be normalized */
} kith__wire_walk_t;

/** Start a walk (`ctx` may be NULL); end it with kith__wire_walk_done(). */
void kith__wire_walk_init(kith__wire_walk_t *w, kith_ctx_t *ctx);
/** Free a walk's scratch. */
void kith__wire_walk_done(kith__wire_walk_t *w);

/**
 * One element of a roster result's <query/>: the step
 * kith__wire_roster_foreach() takes for each child, for callers that get
 * the items one at a time (the stream parser's item streaming). `el` must
 * be a child of the query (its parent gives the namespace). Elements other
 * than <item xmlns='jabber:iq:roster'/> are ignored; an invalid item is
 * skipped (counted in info->skipped, logged at debug level); a valid one
 * goes to `fn` and is counted in info->count. `info` accumulates across
 * calls (zero it first). Returns KITH_OK, KITH_ENOMEM, or what `fn`
 * returned.
 */
kith_status_t kith__wire_roster_item(kith__wire_walk_t *w,
                                     const kith_stanza_t *el,
                                     kith__wire_item_fn fn, void *ud,
                                     kith__wire_roster_info_t *info);

/**
 * The allocating form of kith__wire_roster_foreach(): every valid item,
 * copied into an array of owned items (one allocation for the array, one
 * per item). Free with kith__wire_items_free(ctx, *items, *n).
 *
 * *ver (may be NULL) is borrowed from `iq`; *unchanged (may be NULL) is 1
 * for a result with no <query/>; *skipped (may be NULL) counts invalid
 * items. On error *items is NULL and *n is 0. Status codes as
 * kith__wire_roster_foreach().
 */
kith_status_t kith__wire_parse_roster_result(kith_ctx_t *ctx,
                                             const kith_stanza_t *iq,
                                             kith__wire_item_t **items,
                                             size_t *n, const char **ver,
                                             int *unchanged, size_t *skipped);

/* ---- Roster pushes (RFC 6121 2.1.6) -------------------------------------- */

/**
 * Why a stanza was refused, and how to answer it. `condition` NULL means
 * send no reply at all (the stanza was a result or an error, or not an
 * iq; RFC 6120 8.2.3 and 8.3.1 forbid answering those). Otherwise answer
 * with kith__wire_build_error(ctx, iq, type, condition). `may_ignore` is 1
 * when RFC 6121 2.1.6 also allows not answering (an unauthorized sender).
 * Answering is the better default: kith_conn answers every iq get/set
 * that no handler takes with the same service-unavailable, so the answer
 * tells the sender nothing it could not learn anyway (the presence leak
 * RFC 6121 worries about), and RFC 6120 8.2.3 asks for a reply.
 * `reason` is a static English text for the log.
 */
typedef struct kith__wire_reject {
  const char *type;
  const char *condition;
  const char *reason;
  int may_ignore;
} kith__wire_reject_t;

/**
 * Validate an incoming iq as a roster push and extract its item.
 *
 * Accepted (KITH_OK) only when all of these hold, checked in this order:
 *   1. an iq with an 'id' and of type 'set' (not an iq, a result, an
 *      error, or no 'id': refused with no reply; get: see 4; other or
 *      missing type: bad-request);
 *   2. 'from' is absent, or is the account's bare JID `own_bare_jid`
 *      (compared normalized, so case and other stringprep differences do
 *      not matter), or, only when `accept_full_jid` is non-zero, exactly
 *      the account's full JID `own_full_jid` (normalized). Any other
 *      sender, including another resource of the same account, another
 *      account on the server, the server's domain, or an invalid JID, is
 *      refused with service-unavailable and may_ignore=1 (RFC 6121 2.1.6:
 *      the client MUST NOT process it and may answer service-unavailable
 *      or nothing). This comes before any payload check, so an
 *      unauthorized sender learns nothing about the payload;
 *   3. a <query xmlns='jabber:iq:roster'/> child (otherwise
 *      service-unavailable: RFC 6120 8.4, a namespace we do not serve);
 *   4. the type is 'set' (a 'get' is refused with service-unavailable: a
 *      client does not serve its roster);
 *   5. exactly one <item/> (RFC 6121 2.1.6; none or several: bad-request);
 *   6. a valid item: 'jid' present and a valid JID (else jid-malformed),
 *      'subscription' absent or none/to/from/both/remove (else
 *      bad-request). Groups and names are read as in a result.
 *
 * On KITH_OK *item (required) holds the owned item and *ver (may be NULL)
 * the query's 'ver' attribute, borrowed from `iq` (NULL when absent), and
 * the caller answers with kith__wire_build_result(). On KITH_EPROTO the
 * stanza was refused: *item is zeroed and *rej (required) says why and
 * how to answer. `own_full_jid` may be NULL. Other codes: KITH_EINVAL (a
 * NULL argument, or an invalid own JID), KITH_ENOMEM.
 */
kith_status_t kith__wire_check_push(kith_ctx_t *ctx, const kith_stanza_t *iq,
                                    const char *own_bare_jid,
                                    const char *own_full_jid,
                                    int accept_full_jid,
                                    kith__wire_item_t *item, const char **ver,
                                    kith__wire_reject_t *rej);

/* ---- Roster requests and iq replies ---------------------------------------
 */

/**
 * A roster get (RFC 6121 2.2): <iq type='get'><query
 * xmlns='jabber:iq:roster'/></iq>. `ver` NULL sends no 'ver' attribute
 * (the server does not support versioning, or the caller does not want
 * it); "" sends ver='' (versioning supported, nothing cached: RFC 6121
 * 2.6.2); any other value names the cached version. The caller decides,
 * from the stream feature and its cache. No 'id' is set: kith_conn_send_iq()
 * assigns one.
 */
kith_status_t kith__wire_build_roster_get(kith_ctx_t *ctx, const char *ver,
                                          kith_stanza_t **out);

/**
 * A roster set (RFC 6121 2.3-2.5): <iq type='set'><query
 * xmlns='jabber:iq:roster'><item jid=... name=...><group/>...</item>
 * </query></iq>.
 *
 * `jid` is normalized to its bare form (KITH_EJID when invalid). `name`
 * NULL or "" sends no name. `groups` holds `ngroups` names (may be NULL
 * when 0); duplicates after the first are dropped, an empty name is
 * KITH_EINVAL (RFC 6121 2.3.3: the server refuses it with not-acceptable).
 * `subscription` is NULL, or "remove" to delete the item (2.5), which sends
 * only the jid and the subscription (name and groups are ignored); any
 * other value is KITH_EINVAL (a server ignores it, 2.1.2.5, so sending it
 * is a caller bug). No 'id' is set.
 */
kith_status_t
kith__wire_build_roster_set(kith_ctx_t *ctx, const char *jid, const char *name,
                            const char *const *groups, size_t ngroups,
                            const char *subscription, kith_stanza_t **out);

/**
 * The result answering `request`, an iq of type get or set with an 'id':
 * <iq type='result' id=ID to=FROM from=TO/>, 'to' and 'from' swapped from
 * the request (each omitted when the request lacks its counterpart).
 * KITH_EINVAL when `request` is not such an iq.
 */
kith_status_t kith__wire_build_result(kith_ctx_t *ctx,
                                      const kith_stanza_t *request,
                                      kith_stanza_t **out);

/**
 * The error answering `request` (an iq get/set, a message or a presence
 * that is not itself an error, RFC 6120 8.3.1): the same element name,
 * type='error', the same 'id' (required for an iq), 'to'/'from' swapped,
 * and <error type=TYPE><CONDITION xmlns='urn:ietf:params:xml:ns:xmpp-
 * stanzas'/></error>. The request's payload is not echoed (RFC 6120 makes
 * it optional, and it would only cost bandwidth). KITH_EINVAL for an
 * undefined type or condition (kith__wire_error_valid()) or a request
 * that must not be answered.
 */
kith_status_t kith__wire_build_error(kith_ctx_t *ctx,
                                     const kith_stanza_t *request,
                                     const char *type, const char *condition,
                                     kith_stanza_t **out);

/* ---- Presence (RFC 6121 4 and 3, XEP-0172) ------------------------------- */

/** Priority value meaning "no <priority/>" for the builders. */
#define KITH__WIRE_NO_PRIORITY INT_MIN

/**
 * A parsed presence stanza.
 *
 * - from_full / from_bare / resource: the normalized 'from' (full form,
 *   bare form, resourcepart); all NULL when the stanza has no 'from' (for
 *   a client: the account's own server, on behalf of the account);
 *   resource is NULL for a presence from a bare JID. Owned by the struct.
 * - to: the normalized 'to' (full form), NULL when absent. Owned.
 * - type: a kith__wire_ptype_t.
 * - show: a kith_show_t. For type available it is read from <show/>
 *   (KITH_SHOW_AVAILABLE without one, and also for an unknown value,
 *   which is logged: the contact is online, only its mood is unclear);
 *   KITH_SHOW_UNAVAILABLE for type unavailable; KITH_SHOW_AVAILABLE for
 *   every other type, where it means nothing.
 * - status: the <status/> without xml:lang, else the first one; NULL when
 *   there is none. Borrowed from the stanza.
 * - priority: -128..127, 0 without <priority/>. A number outside the range
 *   is clamped to it (RFC 6121 4.7.2.3 defines the range; a peer that
 *   sends 1000 wants "highest"), anything that is not an integer counts as
 *   absent (0). Both are logged.
 * - nick: XEP-0172 <nick xmlns='http://jabber.org/protocol/nick'/> text,
 *   NULL when absent or empty. Borrowed from the stanza.
 */
typedef struct kith__wire_presence {
  const char *from_full;
  const char *from_bare;
  const char *resource;
  const char *to;
  int type;
  int show;
  const char *status;
  int priority;
  const char *nick;
  /* Private: the JIDs the strings above point into. */
  kith_jid_t *from_jid_;
  kith_jid_t *to_jid_;
} kith__wire_presence_t;

/**
 * Parse a presence stanza into *out (required; zeroed first). A type='error'
 * presence parses (type ERROR); its condition is in the stanza
 * (kith_stanza_error_condition()).
 *
 * Returns KITH_OK; KITH_EJID when 'from' or 'to' is not a valid JID;
 * KITH_EPROTO when `st` is not a <presence/> or its type is unknown;
 * KITH_EINVAL for NULL arguments; KITH_ENOMEM. On error *out is cleared,
 * and `reason` (may be NULL) gets a static English text.
 */
kith_status_t kith__wire_parse_presence(kith_ctx_t *ctx,
                                        const kith_stanza_t *st,
                                        kith__wire_presence_t *out,
                                        const char **reason);

/** Free what a parsed presence owns and zero it. NULL is a no-op. */
void kith__wire_presence_clear(kith__wire_presence_t *p);

/**
 * A presence broadcast or directed presence (RFC 6121 4.2-4.6):
 * <presence to=TO type=TYPE from=FROM><show/><status/><priority/>
 * </presence>, each part only when it applies.
 *
 * - to: NULL broadcasts; otherwise normalized (full form kept).
 * - type: KITH__WIRE_PT_AVAILABLE (no 'type'), _UNAVAILABLE or _PROBE;
 *   subscription types go through kith__wire_build_subscription(), and
 *   anything else is KITH_EINVAL.
 * - from: NULL for a client (the server stamps it); for a component the
 *   owner JID it speaks for. Normalized.
 * - show: a kith_show_t. Written only for type available; AVAILABLE (and
 *   UNAVAILABLE) write no <show/>. For other types it must be AVAILABLE or
 *   UNAVAILABLE, else KITH_EINVAL.
 * - status: NULL or "" writes none; for available and unavailable only.
 * - priority: written for type available when within -128..127;
 *   KITH__WIRE_NO_PRIORITY (or any value outside the range) writes none.
 * A probe carries no status or priority (RFC 6121 4.3): they are ignored.
 *
 * KITH_EJID (invalid to/from), KITH_EINVAL, KITH_ENOMEM.
 */
kith_status_t kith__wire_build_presence(kith_ctx_t *ctx, const char *to,
                                        int type, const char *from, int show,
                                        const char *status, int priority,
                                        kith_stanza_t **out);

/**
 * A subscription stanza (RFC 6121 3): <presence to=TO type=TYPE from=FROM>
 * <nick xmlns='http://jabber.org/protocol/nick'>NICK</nick></presence>.
 *
 * - to: required, normalized to its bare form (RFC 6121 3.1.1 and the
 *   other sections address subscription stanzas to bare JIDs).
 * - type: KITH__WIRE_PT_SUBSCRIBE, _SUBSCRIBED, _UNSUBSCRIBE or
 *   _UNSUBSCRIBED, else KITH_EINVAL.
 * - nick: NULL or "" writes none. XEP-0172 gives it meaning on subscribe
 *   (and a nick on subscribed tells the requester who approved); it is
 *   written whenever given, for any type: the caller decides.
 * - from: NULL for a client, the owner JID for a component. Normalized.
 *
 * KITH_EJID, KITH_EINVAL, KITH_ENOMEM.
 */
kith_status_t kith__wire_build_subscription(kith_ctx_t *ctx, const char *to,
                                            int type, const char *nick,
                                            const char *from,
                                            kith_stanza_t **out);

#endif /* KITH_ROSTER_WIRE_H */

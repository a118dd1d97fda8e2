/*
 * kith: events.
 *
 * Every event has a type from KITH_EVENT_MAP and a name that SleekXMPP and
 * slixmpp users know ("session_start", "presence_subscribe", ...).
 * Handlers are registered on a connection with kith_conn_on() and removed
 * by the id it returns.
 */
#ifndef KITH_EVENT_H
#define KITH_EVENT_H

#include "kith/export.h"
#include "kith/status.h"
#include "kith/stanza.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(ENUM_SUFFIX, "name"). Append only: the numbers are part of the ABI. */
#define KITH_EVENT_MAP(XX)                                                     \
  XX(SESSION_START, "session_start")                                           \
  XX(DISCONNECTED, "disconnected")                                             \
  XX(CONNECTED, "connected")                                                   \
  XX(RECONNECT_SCHEDULED, "reconnect_scheduled")                               \
  XX(STREAM_ERROR, "stream_error")                                             \
  XX(ROSTER_RECEIVED, "roster_received")                                       \
  XX(ROSTER_UPDATE, "roster_update")                                           \
  XX(PRESENCE_SUBSCRIBE, "presence_subscribe")                                 \
  XX(PRESENCE_SUBSCRIBED, "presence_subscribed")                               \
  XX(PRESENCE_UNSUBSCRIBE, "presence_unsubscribe")                             \
  XX(PRESENCE_UNSUBSCRIBED, "presence_unsubscribed")                           \
  XX(PRESENCE_AVAILABLE, "presence_available")                                 \
  XX(PRESENCE_UNAVAILABLE, "presence_unavailable")                             \
  XX(ROSTER_SUBSCRIPTION_REQUEST, "roster_subscription_request")               \
  XX(ROSTER_SUBSCRIPTION_AUTHORIZED, "roster_subscription_authorized")         \
  XX(ROSTER_SUBSCRIPTION_REMOVE, "roster_subscription_remove")                 \
  XX(ROSTER_SUBSCRIPTION_REMOVED, "roster_subscription_removed")               \
  XX(ROSTER_SUBSCRIPTION_REFUSED, "roster_subscription_refused")               \
  XX(ROSTER_SUBSCRIPTION_CANCELLED, "roster_subscription_cancelled")           \
  XX(GOT_ONLINE, "got_online")                                                 \
  XX(GOT_OFFLINE, "got_offline")                                               \
  XX(CHANGED_STATUS, "changed_status")                                         \
  XX(PRESENCE_RESET, "presence_reset")                                         \
  XX(STORE_ERROR, "store_error")

typedef enum kith_event_type {
#define KITH_EVENT_ENUM_(suffix, name) KITH_EVENT_##suffix,
  KITH_EVENT_MAP(KITH_EVENT_ENUM_)
#undef KITH_EVENT_ENUM_
      KITH_EVENT_COUNT_, /* not an event; the number of types */
  KITH_EVENT_ANY = -1    /* for kith_conn_on(): every event */
} kith_event_type_t;

/**
 * An event. Every pointer is borrowed for the duration of the handler call
 * and may be NULL when it does not apply.
 *
 * - SESSION_START: `jid` is the bound full JID (client) or the component's
 *   domain; fired after resource binding / the component handshake.
 * - DISCONNECTED: `status` says why (KITH_OK for a disconnect the
 *   application asked for), `text` gives the detail, for example
 *   "not-authorized: wrong password or unknown account for alice@localhost".
 * - CONNECTED: the TCP connection is up (negotiation starts).
 * - RECONNECT_SCHEDULED: `delay_ms` until the next attempt.
 * - STREAM_ERROR: the peer sent a stream error; `text` is
 *   "condition: text"; DISCONNECTED follows.
 *
 * Roster events (see kith/roster.h and docs/events.md) carry `owner` (the
 * node), `jid` (the contact's bare JID, or full JID for presence), `item`
 * (NULL for a JID not in the roster), and the triggering `stanza`:
 * - ROSTER_RECEIVED: a roster result was applied (`status`: KITH_OK).
 *   It fires only on success; a failed fetch is reported to the fetch
 *   callback (and the initial presence is still sent).
 * - ROSTER_UPDATE: an item was added, changed or (`removed`) deleted. For a
 *   deletion it fires after the item is gone: `item` is NULL, `jid` says
 *   which.
 * - PRESENCE_*: a presence stanza of that type arrived.
 * - ROSTER_SUBSCRIPTION_REQUEST / _AUTHORIZED / _REMOVE / _REMOVED: a
 *   contact asked / approved / unsubscribed / revoked our subscription.
 * - ROSTER_SUBSCRIPTION_REFUSED: our request was answered 'unsubscribed'.
 * - ROSTER_SUBSCRIPTION_CANCELLED: the contact withdrew its request.
 * - GOT_ONLINE / GOT_OFFLINE: a contact's first resource came online / its
 *   last went offline; CHANGED_STATUS: show, status or priority changed.
 * - PRESENCE_RESET: on disconnect, one per contact that was online.
 * - STORE_ERROR: the roster's store failed (`status` KITH_ESTORE,
 *   KITH_ECORRUPT, ...; `text` says why; `owner` the node concerned). A
 *   failed write is retried, as a rewrite of the whole node, at the next
 *   change; the roster in memory stays right meanwhile.
 */

typedef struct kith_event {
  kith_event_type_t type;
  kith_status_t status;
  const char *text;
  const char *jid;
  const kith_stanza_t *stanza;
  long delay_ms;
  /* Roster and presence events (fields appended; never reordered). */
  const char *owner;                   /* the roster node's owner bare JID */
  const struct kith_roster_item *item; /* kith_roster_item_t, or NULL */
  const char *resource;                /* presence: the contact's resource */
  int show;                            /* presence: a kith_show_t */
  int priority;                        /* presence: -128..127 */
  const char *nick;                    /* XEP-0172 nickname, if sent */
  int removed;                         /* roster_update: the item was deleted */
} kith_event_t;

/** The event's name ("session_start", ...), or "unknown". Static. */
KITH_EXTERN const char *kith_event_name(kith_event_type_t type);

#ifdef __cplusplus
}
#endif

#endif /* KITH_EVENT_H */

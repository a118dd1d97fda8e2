/*
 * Internal: component mode (XEP-0114). kith acts as the server for the
 * JIDs it serves, one roster node per owner JID (DESIGN.md; Prosody's
 * mod_presence is the model).
 *
 *   inbound   subscribe / subscribed / unsubscribe / unsubscribed sent to
 *             an owner go through the RFC 6121 table (subscription.h) in
 *             the INBOUND direction, as the owner's server would apply
 *             it, and its action bits are acted on; a delivered stanza
 *             raises the events and, for a request, the owner's policy.
 *   outbound  kith_roster_send_subscription() with `from` = an owner goes
 *             through the table in the OUTBOUND direction; pre-approval
 *             is always supported.
 *   probes    answered from the owner's last presence (RFC 6121 4.3.2).
 *   presence  kith_roster_send_presence() with `from` = an owner and no
 *             `to` is stored as the owner's presence and broadcast to the
 *             owner's from/both contacts only.
 *   start     every to/both contact of every node is probed, and each
 *             node's stored available presence goes to its from/both
 *             contacts.
 *   stop      kith_roster_detach() (and so kith_roster_free()) on a ready
 *             connection sends unavailable from every available owner to
 *             its subscribers; kith_roster_send_presence(roster, NULL,
 *             "unavailable", NULL, ...) does the same without detaching.
 *             Either way the owners are offline afterwards: a later
 *             session announces nothing until the application sends
 *             presence again. A disconnect (no detach) keeps them online,
 *             so a reconnect announces them again.
 *
 * Every stanza sent carries `from` = the owner JID (bare, or the full JID
 * the application gave for its presence).
 *
 * Strangers (a contact with no item) never get an item, except through an
 * accepted subscription; their pending requests are kept here, per owner,
 * in a bounded list (RFC 6121 A.1: remembered without creating an item).
 * Items are created when the outbound table gives the contact
 * roster-visible state (from, to, pending_out or approved). Every model
 * change goes through the model's functions, so the change hook sees it.
 *
 * State that survives a reconnect: the owners' presence and the stranger
 * requests (a server keeps both across a component's reconnect).
 */
#ifndef KITH_ROSTER_COMPONENT_H
#define KITH_ROSTER_COMPONENT_H

#include "kith/conn.h"
#include "kith/roster.h"
#include "roster/sync.h"

/* Strangers' pending requests kept per roster, oldest dropped first. */
#define KITH__COMP_MAX_STRANGERS 1024u

/**
 * Let the roster's store keep the component's strangers (persist.h): on
 * when attached to a component connection, off when freed.
 */
void kith__comp_store_ext(kith__sync_t *s, int on);

/** Free the component state of `s` (NULL state is fine). */
void kith__comp_free(kith__sync_t *s);

/** The stanza handler for every <presence/> on a component connection. */
int kith__comp_on_presence(kith_conn_t *conn, const kith_stanza_t *st,
                           void *ud);

/** SESSION_START on a component connection: probes and presence. */
void kith__comp_session_start(kith__sync_t *s);

/**
 * Send unavailable from every available owner to its subscribers and
 * store it as their presence (before detaching, or on request).
 */
void kith__comp_all_unavailable(kith__sync_t *s);

/** kith_roster_send_presence() on a component connection. */
kith_status_t kith__comp_send_presence(kith__sync_t *s, const char *to,
                                       const char *type, const char *from,
                                       const char *show, const char *status,
                                       int priority);

/** kith_roster_send_subscription() on a component connection. */
kith_status_t kith__comp_send_subscription(kith__sync_t *s, const char *to,
                                           const char *type, const char *nick,
                                           const char *from);

#endif /* KITH_ROSTER_COMPONENT_H */

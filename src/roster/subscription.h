/*
 * Internal: the RFC 6121 subscription state machine, as one table.
 *
 * The table is data: one rule per direction x presence type x state,
 * covering RFC 6121 Appendix A (A.2 outbound, A.3 inbound) and the
 * processing rules of section 3, including pre-approvals (3.4). The code
 * that handles subscription stanzas (client sync, component mode) and the
 * tests read the same table through kith__sub_rule() / kith__sub_apply().
 *
 * Vocabulary, from the owner's point of view (the roster node's owner, the
 * "user" of RFC 6121; the other party is the "contact"):
 *
 *   OUTBOUND  the owner sends the stanza to the contact (RFC 6121 A.2). In
 *             component mode kith is the owner's server and applies the
 *             rule before routing; in client mode the server applies it and
 *             kith can predict what the server does.
 *   INBOUND   the contact sends the stanza to the owner (RFC 6121 A.3).
 *
 * States. RFC 6121 A.1 defines nine states, made of the flags `from`,
 * `to`, `pending_in` and `pending_out` (KITH_ROSTER_*). Pre-approval
 * (3.4) adds the `approved` flag, which is meaningful only where neither
 * `from` nor `pending_in` holds, so three more states exist: None,
 * None + Pending Out and To, each pre-approved. That makes twelve.
 *
 * Invalid combinations are normalized, never rejected: kith__sub_normalize()
 * drops `pending_out` when `to` holds (the request was answered), drops
 * `pending_in` when `from` holds (likewise), and drops `approved` when
 * `from` or `pending_in` holds (a pre-approval is consumed by the request
 * it approves, so it cannot coexist with either). Unknown bits are
 * dropped. Every lookup normalizes first, and no rule produces an invalid
 * combination (test_subscription.c checks this).
 *
 * Items. The table works on flags; whether an item exists is the
 * caller's business. A contact with no item is in state None. RFC 6121
 * A.1: a request from a contact with no item (None + Pending In) must be
 * remembered without creating an item, so a component keeps such requests
 * outside the roster model (DESIGN.md: never create or persist items for
 * strangers). Conversely, an outbound subscribe or a pre-approval for a
 * contact with no item creates one (3.1.2, 3.4); `push` covers that.
 *
 * Decisions where RFC 6121 leaves room, all visible in the table:
 *
 *  - Outbound subscribe and unsubscribe are always routed (3.1.2, 3.3.2:
 *    the owner's server routes them; the contact's server decides what to
 *    deliver, and 3.1.2 asks for re-sending a pending request). Whether to
 *    send one at all (auto-subscribe must not send subscribe when `to` or
 *    `pending_out` holds) is policy, not this table.
 *  - Inbound subscribe when the contact is already subscribed (From,
 *    From + Pending Out, Both): not delivered, auto-reply 'subscribed'
 *    (3.1.3), and also send the owner's current presence, which the RFC
 *    does not require but which restores a subscriber that lost state.
 *  - A roster push (`push`) is generated only when the item's
 *    roster-visible form changes: subscription, ask (pending_out) or
 *    approved. A change of pending_in alone is not visible in a roster
 *    item, so it is persisted (`changed`) but not pushed.
 *  - Inbound unsubscribe and unsubscribed leave a pre-approval in place:
 *    it is the owner's consent and only the owner cancels it (outbound
 *    unsubscribed, 3.4).
 */
#ifndef KITH_ROSTER_SUBSCRIPTION_H
#define KITH_ROSTER_SUBSCRIPTION_H

#include "kith/event.h"
#include "kith/roster.h"

/** Who sends the subscription stanza: the owner, or the contact. */
typedef enum kith__sub_dir {
  KITH__SUB_OUTBOUND = 0, /* owner -> contact (RFC 6121 A.2) */
  KITH__SUB_INBOUND = 1,  /* contact -> owner (RFC 6121 A.3) */
  KITH__SUB_DIR_COUNT = 2
} kith__sub_dir_t;

/** The four subscription presence types. */
typedef enum kith__ptype {
  KITH__PT_SUBSCRIBE = 0,
  KITH__PT_SUBSCRIBED = 1,
  KITH__PT_UNSUBSCRIBE = 2,
  KITH__PT_UNSUBSCRIBED = 3,
  KITH__PT_COUNT = 4 /* also "not a subscription type" */
} kith__ptype_t;

/** The twelve states: the nine of RFC 6121 A.1, then three pre-approved. */
typedef enum kith__sub_state {
  KITH__ST_NONE = 0,
  KITH__ST_NONE_PO = 1,  /* None + Pending Out */
  KITH__ST_NONE_PI = 2,  /* None + Pending In */
  KITH__ST_NONE_POI = 3, /* None + Pending Out+In */
  KITH__ST_TO = 4,
  KITH__ST_TO_PI = 5, /* To + Pending In */
  KITH__ST_FROM = 6,
  KITH__ST_FROM_PO = 7, /* From + Pending Out */
  KITH__ST_BOTH = 8,
  KITH__ST_NONE_A = 9,     /* None, pre-approved */
  KITH__ST_NONE_PO_A = 10, /* None + Pending Out, pre-approved */
  KITH__ST_TO_A = 11,      /* To, pre-approved */
  KITH__ST_COUNT = 12
} kith__sub_state_t;

/* Number of states RFC 6121 A.1 defines (the first nine above). */
#define KITH__ST_DEFINED 9

/* Every subscription flag (KITH_ROSTER_*). */
#define KITH__SUB_MASK                                                         \
  (KITH_ROSTER_FROM | KITH_ROSTER_TO | KITH_ROSTER_PENDING_IN |                \
   KITH_ROSTER_PENDING_OUT | KITH_ROSTER_APPROVED)

/*
 * Actions besides delivering and pushing (kith__sub_rule_t.actions).
 * "The owner's available resources" are the owner's own connected
 * resources in client terms, or, in component mode, the presence the
 * component currently shows for that owner JID.
 */
/* Answer the contact with <presence type='subscribed'/> from the owner's
 * bare JID, on the owner's behalf (3.1.3, 3.4). */
#define KITH__SUB_A_REPLY_SUBSCRIBED 0x01u
/* Send the owner's current presence (each available resource) to the
 * contact, after the stanza: the contact has just gained `from` (3.1.5). */
#define KITH__SUB_A_SEND_PRESENCE 0x02u
/* Send <presence type='unavailable'/> from each of the owner's available
 * resources to the contact: the contact has lost `from` (3.2.2, 3.3.3).
 * For an outbound 'unsubscribed' this goes out BEFORE the stanza is
 * routed, while the contact is still subscribed (3.2.2). */
#define KITH__SUB_A_SEND_UNAVAILABLE 0x04u
/* The transition records a pre-approval (3.4). It applies only when
 * pre-approval is supported (component mode: always; client mode: the
 * server advertised urn:xmpp:features:pre-approval); otherwise the stanza
 * changes nothing and is not routed. */
#define KITH__SUB_A_PREAPPROVE 0x08u
/* The owner lost `to`: forget the contact's tracked resources (they will
 * send no more presence; report them offline). */
#define KITH__SUB_A_FORGET_PRESENCE 0x10u
/* Answer the contact with <presence type='unsubscribed'/> from the owner's
 * bare JID: an inbound 'unsubscribe' that is delivered SHOULD be
 * acknowledged that way (A.3.2, Table 7 footnote [1]; 3.3.3). */
#define KITH__SUB_A_REPLY_UNSUBSCRIBED 0x20u

/**
 * One transition. `next` is the complete new flag set (equal to the old
 * one for RFC 6121's "no state change"). `deliver`: outbound, route the
 * stanza to the contact; inbound, deliver it to the owner (client mode:
 * the server lets it through; component mode: raise the event). 0 means
 * the stanza is silently dropped ("MUST NOT deliver"). `push`: the
 * roster-visible item changed, so a server pushes it. `actions`:
 * KITH__SUB_A_* bits.
 */
typedef struct kith__sub_rule {
  unsigned char next;
  unsigned char deliver;
  unsigned char push;
  unsigned char actions;
} kith__sub_rule_t;

/**
 * The rule for `type` sent in direction `dir` while the item has `flags`
 * (normalized first). Never NULL for valid dir and type; NULL when either
 * is out of range. Static storage.
 */
const kith__sub_rule_t *kith__sub_rule(kith__sub_dir_t dir, kith__ptype_t type,
                                       unsigned flags);

/** The outcome of applying a rule to an item's flags. */
typedef struct kith__sub_result {
  unsigned flags;        /* the new flags (normalized) */
  unsigned char changed; /* flags differ: persist the item, raise events */
  unsigned char deliver; /* as kith__sub_rule_t */
  unsigned char push;    /* as kith__sub_rule_t */
  unsigned char actions; /* as kith__sub_rule_t, minus a refused PREAPPROVE */
} kith__sub_result_t;

/**
 * Apply the rule for (dir, type) to `flags`. `preapproval` non-zero means
 * pre-approvals are supported (see KITH__SUB_A_PREAPPROVE); when zero, a
 * pre-approving rule yields no change, no routing and no push. Fills *out
 * (required) and returns out->changed; returns 0 with *out describing no
 * change and no delivery when dir or type is out of range.
 */
int kith__sub_apply(kith__sub_dir_t dir, kith__ptype_t type, unsigned flags,
                    int preapproval, kith__sub_result_t *out);

/** Drop unknown bits and invalid combinations (see the top of the file). */
unsigned kith__sub_normalize(unsigned flags);
/** Non-zero when `flags` is one of the twelve states exactly. */
int kith__sub_valid(unsigned flags);

/** The state of `flags` (normalized first). */
kith__sub_state_t kith__sub_state(unsigned flags);
/** The flags of a state; 0 (None) for an out-of-range value. */
unsigned kith__sub_state_flags(kith__sub_state_t state);
/**
 * The state's name as RFC 6121 A.1 spells it ("None + Pending Out+In",
 * "From + Pending Out", ...); the pre-approved states append
 * " (pre-approved)". Static storage; `flags` is normalized first.
 */
const char *kith__sub_state_name(unsigned flags);

/** none / to / from / both of `flags`. */
kith_sub_t kith__sub_of(unsigned flags);

/**
 * The presence type of a 'type' attribute value: "subscribe" etc., or
 * KITH__PT_COUNT for anything else (NULL, "unavailable", "probe", ...).
 */
kith__ptype_t kith__sub_ptype(const char *type);
/** "subscribe", "subscribed", "unsubscribe", "unsubscribed", or "?". */
const char *kith__sub_ptype_name(kith__ptype_t type);

/*
 * The two events a DELIVERED subscription stanza raises for its owner, by
 * type and the item's flags before the stanza: the presence_* event, and
 * the roster_subscription_* one. An 'unsubscribe' that withdraws a request
 * we never answered is "cancelled" rather than "remove"; an 'unsubscribed'
 * that answers our pending request is "refused" rather than "removed".
 */
void kith__sub_events(kith__ptype_t type, unsigned old_flags,
                      kith_event_type_t ev[2]);

#endif /* KITH_ROSTER_SUBSCRIPTION_H */

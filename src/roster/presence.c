/*
 * Client presence: tracking contacts' resources (RFC 6121 4), inbound
 * subscription stanzas with the subscription policy (RFC 6121 3), and the
 * functions that send presence and subscription stanzas.
 *
 * Local subscription flags. The server is authoritative and pushes every
 * roster-visible change, but two things never arrive in a push: that a
 * contact asked us (pending_in), and what we just sent before its push
 * comes back. kith applies the RFC 6121 table (subscription.h) to the
 * flags for each subscription stanza it receives or sends, so the policy
 * sees the right state between pushes; the next push corrects anything
 * the prediction got wrong (it keeps only the tracked pending_in).
 *
 * Strangers (no roster item): their flags are kept in the sync state's
 * bounded stranger list, never in the model. A request from a stranger is
 * answered by policy like any other; if we approve or subscribe back, the
 * server creates the item and its push brings it into the roster.
 *
 * Presence from a JID without an item (a stranger, or another resource of
 * our own account) is reported with `item` NULL and never tracked.
 */
#include <string.h>

#include "core/ctx.h"
#include "roster/component.h"
#include "roster/model.h"
#include "roster/subscription.h"
#include "roster/sync.h"
#include "roster/wire.h"

/* The wire presence type of each subscription type (kith__ptype_t order). */
static const int wire_ptype[KITH__PT_COUNT] = {
    KITH__WIRE_PT_SUBSCRIBE, KITH__WIRE_PT_SUBSCRIBED,
    KITH__WIRE_PT_UNSUBSCRIBE, KITH__WIRE_PT_UNSUBSCRIBED};

/* What an inbound stanza was about: the contact and our node. */
typedef struct inbound {
  kith__sync_t *s;
  const kith_stanza_t *st;
  const kith__wire_presence_t *p;
  const char *bare; /* the contact's bare JID (own JID when no 'from') */
} inbound_t;

static kith_roster_item_t *find_item(const kith__sync_t *s, const char *bare)
{
  kith_roster_node_t *node = kith__sync_self(s);

  return node ? kith__roster_item_find_norm(node, bare) : NULL;
}

/* Fire `type` for the inbound presence, with the item as it is now. */
static void emit_in(const inbound_t *in, kith_event_type_t type)
{
  kith_roster_node_t *node = kith__sync_self(in->s);
  kith_event_t ev;

  if (node == NULL)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.type = type;
  ev.owner = kith_roster_node_owner(node);
  ev.jid = in->p->from_full ? in->p->from_full : in->bare;
  ev.item = kith__roster_item_find_norm(node, in->bare);
  ev.resource = in->p->resource;
  ev.show = in->p->show;
  ev.priority = in->p->priority;
  ev.nick = in->p->nick;
  ev.stanza = in->st;
  kith__sync_emit(in->s, &ev);
}

/* ---- Availability ----------------------------------------------------- */

/* The event an item's presence change raises, if any. */
static void emit_change(const inbound_t *in, kith__presence_change_t change)
{
  if (change == KITH__PRESENCE_ONLINE)
    emit_in(in, KITH_EVENT_GOT_ONLINE);
  else if (change == KITH__PRESENCE_CHANGED)
    emit_in(in, KITH_EVENT_CHANGED_STATUS);
  else if (change == KITH__PRESENCE_OFFLINE)
    emit_in(in, KITH_EVENT_GOT_OFFLINE);
}

static void on_available(const inbound_t *in)
{
  const kith__wire_presence_t *p = in->p;
  kith_roster_item_t *it;
  kith__presence_change_t change;

  emit_in(in, KITH_EVENT_PRESENCE_AVAILABLE);
  if ((it = find_item(in->s, in->bare)) == NULL)
    return; /* a stranger or our own other resource: reported only */
  if (kith__roster_item_track_available(it, p->resource, (kith_show_t)p->show,
                                        p->status, p->priority,
                                        &change) != KITH_OK) {
    kith__warn(kith__roster_ctx(in->s->roster), "presence",
               "presence of %s not tracked", p->from_full);
    return;
  }
  emit_change(in, change);
}

static void on_unavailable(const inbound_t *in)
{
  kith_roster_item_t *it;

  emit_in(in, KITH_EVENT_PRESENCE_UNAVAILABLE);
  if ((it = find_item(in->s, in->bare)) != NULL)
    emit_change(in, kith__roster_item_track_unavailable(it, in->p->resource));
}

/* ---- Subscription flags ----------------------------------------------- */

static unsigned flags_of(kith__sync_t *s, const char *bare)
{
  kith_roster_item_t *it = find_item(s, bare);
  kith__stranger_t *str;

  if (it)
    return kith_roster_item_flags(it);
  str = kith__sync_stranger(s, bare);
  return str ? str->flags : 0;
}

static void set_flags(kith__sync_t *s, const char *bare, unsigned flags)
{
  kith_roster_item_t *it = find_item(s, bare);

  if (it)
    kith__roster_item_set_flags(it, flags);
  else if (kith__sync_set_stranger(s, bare, flags) != KITH_OK)
    kith__warn(kith__roster_ctx(s->roster), "presence",
               "out of memory: subscription state of %s not kept", bare);
}

static void forget_presence(const inbound_t *in);

/* We gave up `to` ourselves (unsubscribe): the contact's server owes us an
 * unavailable (RFC 6121 3.3.3) that not every server sends, and the
 * contact's later presence goes only to its subscribers. Forget its
 * resources now, reported as an offline contact. */
static void forget_contact(kith__sync_t *s, const char *bare)
{
  kith__wire_presence_t none;
  inbound_t in;

  memset(&none, 0, sizeof(none));
  none.show = KITH_SHOW_UNAVAILABLE;
  in.s = s;
  in.st = NULL;
  in.p = &none;
  in.bare = bare;
  forget_presence(&in);
}

/* Send a subscription stanza to `bare` and track what the server will do
 * with it. A pre-approval needs the server's support. */
static kith_status_t send_sub(kith__sync_t *s, const char *bare,
                              kith__ptype_t type, const char *nick)
{
  unsigned flags = flags_of(s, bare);
  const kith__sub_rule_t *rule =
      kith__sub_rule(KITH__SUB_OUTBOUND, type, flags);
  int pre = kith__sync_has_feature(s, KITH_NS_PRE_APPROVAL);
  kith__sub_result_t res;
  kith_stanza_t *st = NULL;
  kith_status_t rc;

  if (rule == NULL)
    return KITH_EINVAL;
  if ((rule->actions & KITH__SUB_A_PREAPPROVE) && !pre)
    return KITH_EUNSUPPORTED;
  rc = kith__wire_build_subscription(kith__roster_ctx(s->roster), bare,
                                     wire_ptype[type], nick, NULL, &st);
  if (rc == KITH_OK)
    rc = kith_conn_send(s->conn, st);
  kith_stanza_free(st);
  if (rc != KITH_OK)
    return rc;
  if (kith__sub_apply(KITH__SUB_OUTBOUND, type, flags, pre, &res))
    set_flags(s, bare, res.flags);
  if (res.actions & KITH__SUB_A_FORGET_PRESENCE)
    forget_contact(s, bare);
  return KITH_OK;
}

/* ---- Inbound subscription stanzas ------------------------------------- */

/* The policy answer to a request (RFC 6121 3.1.3 leaves it to the user). */
static void answer_request(const inbound_t *in)
{
  kith_roster_node_t *node = kith__sync_self(in->s);
  kith_roster_item_t *it = find_item(in->s, in->bare);
  kith_auto_authorize_t auth;
  int autosub;
  unsigned flags;

  if (node == NULL || strcmp(in->bare, kith_roster_node_owner(node)) == 0)
    return; /* never answer ourselves */
  kith__roster_node_policy(node, &auth, &autosub);
  if (it && kith_roster_item_whitelisted(it))
    auth = KITH_AUTHORIZE_ACCEPT;
  if (auth == KITH_AUTHORIZE_MANUAL)
    return; /* pending_in stays for the application */
  if (auth == KITH_AUTHORIZE_REJECT) {
    send_sub(in->s, in->bare, KITH__PT_UNSUBSCRIBED, NULL);
    return;
  }
  send_sub(in->s, in->bare, KITH__PT_SUBSCRIBED, NULL);
  /* Subscribe back only when we neither have nor asked for a
   * subscription: this is what stops two auto-subscribing bots looping. */
  flags = flags_of(in->s, in->bare);
  if (autosub && !(flags & (KITH_ROSTER_TO | KITH_ROSTER_PENDING_OUT)))
    send_sub(in->s, in->bare, KITH__PT_SUBSCRIBE, NULL);
}

/* The contact lost `to`-backed presence: report its resources gone. */
static void forget_presence(const inbound_t *in)
{
  kith_roster_item_t *it = find_item(in->s, in->bare);

  if (it && kith_roster_item_resource_count(it) > 0) {
    kith__roster_item_clear_all_presence(it);
    emit_in(in, KITH_EVENT_GOT_OFFLINE);
  }
}

static void on_subscription(const inbound_t *in, kith__ptype_t type)
{
  unsigned old = flags_of(in->s, in->bare);
  kith__sub_result_t res;
  kith_event_type_t ev[2];
  int pre = kith__sync_has_feature(in->s, KITH_NS_PRE_APPROVAL);

  /* The server delivered it, so it applied the inbound rule: do the same
   * to the local flags. */
  if (kith__sub_apply(KITH__SUB_INBOUND, type, old, pre, &res))
    set_flags(in->s, in->bare, res.flags);
  kith__sub_events(type, old, ev);
  emit_in(in, ev[0]);
  emit_in(in, ev[1]);
  if (type == KITH__PT_SUBSCRIBE)
    answer_request(in);
  if (res.actions & KITH__SUB_A_FORGET_PRESENCE)
    forget_presence(in);
}

int kith__sync_on_presence(kith_conn_t *conn, const kith_stanza_t *st, void *ud)
{
  kith__sync_t *s = ud;
  kith_roster_node_t *node = kith__sync_self(s);
  kith__wire_presence_t p;
  const char *reason = NULL;
  inbound_t in;

  (void)conn;
  if (node == NULL)
    return 0;
  if (kith__wire_parse_presence(kith__roster_ctx(s->roster), st, &p, &reason) !=
      KITH_OK) {
    kith__debug(kith__roster_ctx(s->roster), "presence", "presence ignored: %s",
                reason ? reason : "invalid");
    return 0;
  }
  in.s = s;
  in.st = st;
  in.p = &p;
  /* No 'from': the server, on behalf of our own account. */
  in.bare = p.from_bare ? p.from_bare : kith_roster_node_owner(node);
  kith__roster_begin(s->roster); /* one stanza, one batch for the store */
  if (p.type == KITH__WIRE_PT_AVAILABLE)
    on_available(&in);
  else if (p.type == KITH__WIRE_PT_UNAVAILABLE)
    on_unavailable(&in);
  else if (kith__sub_ptype(kith_stanza_type(st)) != KITH__PT_COUNT)
    on_subscription(&in, kith__sub_ptype(kith_stanza_type(st)));
  kith__roster_end(s->roster);
  kith__wire_presence_clear(&p);
  /* Not consumed: the application's own presence handlers see it too. */
  return 0;
}

/* ---- Disconnect ------------------------------------------------------- */

/* Report one node's online contacts offline and forget their resources.
 * Everything is cleared first and reported after, from copies of the
 * JIDs: the handlers then see no stale resources, and whatever they change
 * cannot disturb the walk. */
static void reset_node(kith__sync_t *s, kith_roster_node_t *node)
{
  kith_ctx_t *ctx = kith__roster_ctx(s->roster);
  size_t i, k = 0, cursor = 0, size = kith_roster_node_size(node);
  char *owner = kith__strdup(ctx, kith_roster_node_owner(node));
  char **jids = kith__calloc(ctx, size ? size : 1, sizeof(*jids));
  kith_roster_item_t *it;
  kith_event_t ev;

  while ((it = kith_roster_node_next(node, &cursor)) != NULL) {
    if (kith_roster_item_resource_count(it) == 0)
      continue;
    kith__roster_item_clear_all_presence(it);
    if (jids && (jids[k] = kith__strdup(ctx, kith_roster_item_jid(it))))
      k++;
  }
  for (i = 0; i < k; i++) {
    node = owner ? kith_roster_node(s->roster, owner) : NULL;
    memset(&ev, 0, sizeof(ev));
    ev.owner = owner;
    ev.jid = jids[i];
    ev.item = node ? kith__roster_item_find_norm(node, jids[i]) : NULL;
    ev.show = KITH_SHOW_UNAVAILABLE;
    ev.type = KITH_EVENT_PRESENCE_RESET;
    if (owner)
      kith__sync_emit(s, &ev);
    ev.item = node ? kith__roster_item_find_norm(node, jids[i]) : NULL;
    ev.type = KITH_EVENT_GOT_OFFLINE;
    if (owner)
      kith__sync_emit(s, &ev);
    kith__free(ctx, jids[i]);
  }
  kith__free(ctx, jids);
  kith__free(ctx, owner);
}

void kith__sync_reset_presence(kith__sync_t *s)
{
  size_t i;

  for (i = 0; i < kith_roster_node_count(s->roster); i++)
    reset_node(s, kith_roster_node_at(s->roster, i));
}

/* ---- Sending ---------------------------------------------------------- */

kith_status_t kith__sync_send_initial_presence(kith__sync_t *s)
{
  kith_stanza_t *st = NULL;
  kith_status_t rc;

  rc = kith__wire_build_presence(
      kith__roster_ctx(s->roster), NULL, KITH__WIRE_PT_AVAILABLE, NULL,
      KITH_SHOW_AVAILABLE, NULL, KITH__WIRE_NO_PRIORITY, &st);
  if (rc == KITH_OK)
    rc = kith_conn_send(s->conn, st);
  kith_stanza_free(st);
  return rc;
}

kith_status_t kith_roster_send_presence(kith_roster_t *roster, const char *to,
                                        const char *type, const char *from,
                                        const char *show, const char *status,
                                        int priority)
{
  kith__sync_t *s = roster ? kith__sync_get(roster, 0) : NULL;
  kith_stanza_t *st = NULL;
  int ptype = kith__wire_ptype_from_attr(type);
  int sh = kith__wire_show_from_text(show);
  kith_status_t rc;

  if (s && s->conn && kith_conn_is_component(s->conn))
    return kith__comp_send_presence(s, to, type, from, show, status, priority);
  (void)from; /* a client's server stamps 'from' */
  if (roster == NULL || sh < 0 ||
      (ptype != KITH__WIRE_PT_AVAILABLE && ptype != KITH__WIRE_PT_UNAVAILABLE &&
       ptype != KITH__WIRE_PT_PROBE))
    return KITH_EINVAL;
  if (s == NULL || s->conn == NULL)
    return KITH_ESTATE;
  if (ptype != KITH__WIRE_PT_AVAILABLE)
    sh = KITH_SHOW_AVAILABLE; /* <show/> belongs to available only */
  if (priority < -128 || priority > 127)
    priority = KITH__WIRE_NO_PRIORITY;
  rc = kith__wire_build_presence(kith__roster_ctx(roster), to, ptype, NULL, sh,
                                 status, priority, &st);
  if (rc == KITH_OK)
    rc = kith_conn_send(s->conn, st);
  kith_stanza_free(st);
  return rc;
}

kith_status_t kith_roster_send_subscription(kith_roster_t *roster,
                                            const char *to, const char *type,
                                            const char *nick, const char *from)
{
  kith__sync_t *s = roster ? kith__sync_get(roster, 0) : NULL;
  kith__ptype_t pt = kith__sub_ptype(type);
  char *bare = NULL;
  kith_status_t rc;

  if (s && s->conn && kith_conn_is_component(s->conn)) {
    kith__roster_begin(roster);
    rc = kith__comp_send_subscription(s, to, type, nick, from);
    kith__roster_end(roster);
    return rc;
  }
  (void)from; /* a client's server stamps 'from' */
  if (roster == NULL || to == NULL || pt == KITH__PT_COUNT)
    return KITH_EINVAL;
  if (s == NULL || s->conn == NULL || !kith_conn_is_ready(s->conn) ||
      kith__sync_self(s) == NULL)
    return KITH_ESTATE;
  rc = kith_jid_normalize(kith__roster_ctx(roster), to, 1, &bare, NULL);
  if (rc != KITH_OK)
    return rc;
  kith__roster_begin(roster);
  rc = send_sub(s, bare, pt, nick);
  kith__roster_end(roster);
  kith__free(kith__roster_ctx(roster), bare);
  return rc;
}

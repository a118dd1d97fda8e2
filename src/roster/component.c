/*
 * Component mode (XEP-0114): kith is the server for the JIDs it serves.
 * See component.h for the shape and the decisions; the subscription rules
 * themselves are the RFC 6121 table in subscription.c, read here in the
 * INBOUND direction for what contacts send to an owner and in the
 * OUTBOUND direction for what an owner sends.
 *
 * Handlers run from inside these functions (events) and may change the
 * roster, so nothing keeps a node or item pointer across an event: the
 * owner and contact JIDs are copies, and nodes and items are looked up
 * again after each emit.
 */
#include <string.h>

#include "core/ctx.h"
#include "roster/component.h"
#include "roster/model.h"
#include "roster/persist.h"
#include "roster/subscription.h"
#include "roster/sync.h"
#include "roster/wire.h"

/* The wire presence type of each subscription type (kith__ptype_t order). */
static const int wire_ptype[KITH__PT_COUNT] = {
    KITH__WIRE_PT_SUBSCRIBE, KITH__WIRE_PT_SUBSCRIBED,
    KITH__WIRE_PT_UNSUBSCRIBE, KITH__WIRE_PT_UNSUBSCRIBED};

/* Flags that make a contact visible in a roster: such a contact has an
 * item. pending_in alone does not (RFC 6121 A.1). */
#define VISIBLE                                                                \
  (KITH_ROSTER_FROM | KITH_ROSTER_TO | KITH_ROSTER_PENDING_OUT |               \
   KITH_ROSTER_APPROVED)

/* One available resource of an owner: its presence as broadcast (no
 * 'to'; 'from' the owner JID the application gave). */
typedef struct own_res {
  struct own_res *next;
  kith_stanza_t *st;
  char resource[]; /* "" for the bare JID */
} own_res_t;

/* An owner's presence: what probes are answered with. */
typedef struct owner {
  struct owner *next;
  own_res_t *res;              /* available resources, newest first */
  kith_stanza_t *last_unavail; /* the last unavailable broadcast, or NULL */
  char jid[];                  /* normalized bare JID */
} owner_t;

/* A stranger's pending request to an owner (no item exists). */
typedef struct cstranger {
  struct cstranger *next;
  unsigned flags;
  size_t owner_len;
  char key[]; /* owner '\0' contact '\0' */
} cstranger_t;

typedef struct kith__comp {
  owner_t *owners;
  cstranger_t *strangers;
  size_t nstrangers;
} kith__comp_t;

/* An inbound presence addressed to an owner. */
typedef struct cin {
  kith__sync_t *s;
  const kith_stanza_t *st;
  const kith__wire_presence_t *p;
  const char *owner; /* normalized bare 'to' */
  const char *bare;  /* the contact's normalized bare JID */
} cin_t;

static kith_ctx_t *ctx_of(const kith__sync_t *s)
{
  return kith__roster_ctx(s->roster);
}

/* ---- State ------------------------------------------------------------ */

static kith__comp_t *comp_get(kith__sync_t *s, int create)
{
  if (s->comp == NULL && create)
    s->comp = kith__calloc(ctx_of(s), 1, sizeof(kith__comp_t));
  return s->comp;
}

static void res_free(kith_ctx_t *ctx, own_res_t *r)
{
  kith_stanza_free(r->st);
  kith__free(ctx, r);
}

static void owner_clear_res(kith_ctx_t *ctx, owner_t *o)
{
  own_res_t *r;

  while ((r = o->res) != NULL) {
    o->res = r->next;
    res_free(ctx, r);
  }
}

void kith__comp_free(kith__sync_t *s)
{
  kith_ctx_t *ctx = ctx_of(s);
  kith__comp_t *c = s->comp;
  owner_t *o;
  cstranger_t *e;

  if (c == NULL)
    return;
  while ((o = c->owners) != NULL) {
    c->owners = o->next;
    owner_clear_res(ctx, o);
    kith_stanza_free(o->last_unavail);
    kith__free(ctx, o);
  }
  while ((e = c->strangers) != NULL) {
    c->strangers = e->next;
    kith__free(ctx, e);
  }
  kith__free(ctx, c);
  s->comp = NULL;
}

static owner_t *owner_find(const kith__sync_t *s, const char *jid)
{
  owner_t *o;

  for (o = s->comp ? s->comp->owners : NULL; o; o = o->next)
    if (strcmp(o->jid, jid) == 0)
      return o;
  return NULL;
}

static owner_t *owner_get(kith__sync_t *s, const char *jid)
{
  kith__comp_t *c = comp_get(s, 1);
  owner_t *o = owner_find(s, jid);
  size_t len = strlen(jid);

  if (o || c == NULL)
    return o;
  if ((o = kith__calloc(ctx_of(s), 1, sizeof(*o) + len + 1)) == NULL)
    return NULL;
  memcpy(o->jid, jid, len + 1);
  o->next = c->owners;
  c->owners = o;
  return o;
}

/* ---- Strangers -------------------------------------------------------- */

static cstranger_t *stranger_find(const kith__sync_t *s, const char *owner,
                                  const char *contact)
{
  cstranger_t *e;

  for (e = s->comp ? s->comp->strangers : NULL; e; e = e->next)
    if (strcmp(e->key, owner) == 0 &&
        strcmp(e->key + e->owner_len + 1, contact) == 0)
      return e;
  return NULL;
}

static void stranger_drop(kith__sync_t *s, cstranger_t *gone)
{
  cstranger_t **pp;

  for (pp = &s->comp->strangers; *pp; pp = &(*pp)->next)
    if (*pp == gone) {
      *pp = gone->next;
      kith__free(ctx_of(s), gone);
      s->comp->nstrangers--;
      return;
    }
}

static kith_status_t stranger_put(kith__sync_t *s, const char *owner,
                                  const char *contact, unsigned flags)
{
  cstranger_t *e = stranger_find(s, owner, contact), *last;
  size_t olen = strlen(owner), clen = strlen(contact);
  kith__comp_t *c;

  if (e || flags == 0) {
    if (e && flags)
      e->flags = flags;
    else if (e)
      stranger_drop(s, e);
    return KITH_OK;
  }
  if ((c = comp_get(s, 1)) == NULL)
    return KITH_ENOMEM;
  /* Full: forget the oldest request (the list is newest first). The
   * contact's server resends a request it still wants answered. */
  if (c->nstrangers >= KITH__COMP_MAX_STRANGERS) {
    for (last = c->strangers; last->next; last = last->next)
      ;
    stranger_drop(s, last);
  }
  e = kith__malloc(ctx_of(s), sizeof(*e) + olen + clen + 2);
  if (e == NULL)
    return KITH_ENOMEM;
  memcpy(e->key, owner, olen + 1);
  memcpy(e->key + olen + 1, contact, clen + 1);
  e->owner_len = olen;
  e->flags = flags;
  e->next = c->strangers;
  c->strangers = e;
  c->nstrangers++;
  return KITH_OK;
}

/* Set a stranger's flags (0 forgets it) and tell the store. */
static kith_status_t stranger_set(kith__sync_t *s, const char *owner,
                                  const char *contact, unsigned flags)
{
  cstranger_t *e = stranger_find(s, owner, contact);
  kith_status_t rc;

  if ((e ? e->flags : 0) == flags)
    return KITH_OK;
  rc = stranger_put(s, owner, contact, flags);
  kith__persist_stranger(s->roster, owner, contact);
  return rc;
}

/* ---- The store's view of strangers (persist.h) ------------------------ */

static unsigned ext_stranger_flags(void *ud, const char *owner, const char *jid)
{
  cstranger_t *e = stranger_find(ud, owner, jid);

  return e ? e->flags : 0;
}

static void
ext_strangers(void *ud, const char *owner,
              void (*fn)(void *fud, const char *jid, unsigned flags), void *fud)
{
  kith__sync_t *s = ud;
  cstranger_t *e;

  for (e = s->comp ? s->comp->strangers : NULL; e; e = e->next)
    if (strcmp(e->key, owner) == 0)
      fn(fud, e->key + e->owner_len + 1, e->flags);
}

static void ext_stranger_loaded(void *ud, const char *owner, const char *jid,
                                unsigned flags)
{
  /* Loaded, not changed: nothing to write back. */
  if (stranger_put(ud, owner, jid, flags & ~VISIBLE) != KITH_OK)
    kith__warn(ctx_of(ud), "component",
               "out of memory: stored request of %s to %s not kept", jid,
               owner);
}

void kith__comp_store_ext(kith__sync_t *s, int on)
{
  kith__persist_ext_t ext;

  if (!on) {
    kith__persist_set_ext(s->roster, NULL);
    return;
  }
  ext.stranger_flags = ext_stranger_flags;
  ext.strangers = ext_strangers;
  ext.stranger_loaded = ext_stranger_loaded;
  ext.ud = s;
  kith__persist_set_ext(s->roster, &ext);
}

/* ---- Lookups and events ----------------------------------------------- */

static kith_roster_item_t *item_of(const kith__sync_t *s, const char *owner,
                                   const char *contact)
{
  kith_roster_node_t *node = kith_roster_node(s->roster, owner);

  return node ? kith__roster_item_find_norm(node, contact) : NULL;
}

static unsigned flags_of(const kith__sync_t *s, const char *owner,
                         const char *contact)
{
  kith_roster_item_t *it = item_of(s, owner, contact);
  cstranger_t *e;

  if (it)
    return kith_roster_item_flags(it);
  e = stranger_find(s, owner, contact);
  return e ? e->flags : 0;
}

static void emit(kith__sync_t *s, kith_event_type_t type, const char *owner,
                 const char *contact, const char *jid,
                 const kith__wire_presence_t *p, const kith_stanza_t *st)
{
  kith_event_t ev;

  memset(&ev, 0, sizeof(ev));
  ev.type = type;
  ev.owner = owner;
  ev.jid = jid ? jid : contact;
  ev.item = item_of(s, owner, contact);
  ev.removed = type == KITH_EVENT_ROSTER_UPDATE && ev.item == NULL;
  if (p) {
    ev.resource = p->resource;
    ev.show = p->show;
    ev.priority = p->priority;
    ev.nick = p->nick;
  }
  ev.stanza = st;
  kith__sync_emit(s, &ev);
}

static void emit_in(const cin_t *in, kith_event_type_t type)
{
  emit(in->s, type, in->owner, in->bare, in->p->from_full, in->p, in->st);
}

/*
 * Store new flags for the contact. An item is created only when
 * `may_create` (an outbound stanza of the owner, which is what accepting
 * or asking is) and the contact gains roster-visible state; otherwise a
 * contact without an item keeps its flags in the stranger list. Returns 1
 * when an item was created.
 */
static int set_flags(kith__sync_t *s, const char *owner, const char *contact,
                     unsigned flags, int may_create)
{
  kith_roster_node_t *node = kith_roster_node(s->roster, owner);
  kith_roster_item_t *it =
      node ? kith__roster_item_find_norm(node, contact) : NULL;

  if (node == NULL)
    return 0;
  if (it) {
    kith__roster_item_set_flags(it, flags);
    return 0;
  }
  if (may_create && (flags & VISIBLE)) {
    if (kith__roster_item_upsert_norm(node, contact, NULL, NULL, 0, &it,
                                      NULL) == KITH_OK) {
      kith__roster_item_set_flags(it, flags);
      stranger_set(s, owner, contact, 0); /* it has an item now */
      return 1;
    }
    /* Out of memory or over the item limit: the stanza went out, but
     * only what a stranger may keep is kept. */
    kith__warn(ctx_of(s), "component", "no item for %s in %s's roster", contact,
               owner);
  }
  if (stranger_set(s, owner, contact, flags & ~VISIBLE) != KITH_OK)
    kith__warn(ctx_of(s), "component",
               "out of memory: request of %s to %s not kept", contact, owner);
  return 0;
}

/* ---- Sending ---------------------------------------------------------- */

static kith_status_t send_free(kith__sync_t *s, kith_stanza_t *st)
{
  kith_status_t rc = KITH_ESTATE;

  if (s->conn && kith_conn_is_ready(s->conn))
    rc = kith_conn_send(s->conn, st);
  kith_stanza_free(st);
  return rc;
}

static kith_status_t send_sub_stanza(kith__sync_t *s, const char *owner,
                                     const char *contact, kith__ptype_t type,
                                     const char *nick)
{
  kith_stanza_t *st = NULL;
  kith_status_t rc;

  rc = kith__wire_build_subscription(ctx_of(s), contact, wire_ptype[type], nick,
                                     owner, &st);
  return rc == KITH_OK ? send_free(s, st) : rc;
}

/* A copy of `st` addressed to `to`, sent. */
static void send_copy_to(kith__sync_t *s, const kith_stanza_t *st,
                         const char *to, const char *from)
{
  kith_stanza_t *cp = NULL;

  if (kith_stanza_copy(st, &cp) != KITH_OK ||
      kith_stanza_set_attr(cp, "to", to) != KITH_OK ||
      (from && kith_stanza_set_attr(cp, "from", from) != KITH_OK)) {
    kith_stanza_free(cp);
    kith__warn(ctx_of(s), "component", "out of memory: presence to %s lost",
               to);
    return;
  }
  send_free(s, cp);
}

/* The owner's current presence, each available resource, to `to`. */
static void send_own_presence(kith__sync_t *s, const char *owner,
                              const char *to)
{
  owner_t *o = owner_find(s, owner);
  own_res_t *r;

  for (r = o ? o->res : NULL; r; r = r->next)
    send_copy_to(s, r->st, to, NULL);
}

/* Unavailable from each of the owner's available resources to `to`. */
static void send_own_unavailable(kith__sync_t *s, const char *owner,
                                 const char *to)
{
  owner_t *o = owner_find(s, owner);
  own_res_t *r;
  kith_stanza_t *st;

  for (r = o ? o->res : NULL; r; r = r->next) {
    st = NULL;
    if (kith__wire_build_presence(ctx_of(s), to, KITH__WIRE_PT_UNAVAILABLE,
                                  kith_stanza_from(r->st), KITH_SHOW_AVAILABLE,
                                  NULL, KITH__WIRE_NO_PRIORITY, &st) == KITH_OK)
      send_free(s, st);
  }
}

/* The contact's presence can no longer be trusted (we lost `to`). */
static void forget_presence(kith__sync_t *s, const char *owner,
                            const char *contact, const kith_stanza_t *st)
{
  kith_roster_item_t *it = item_of(s, owner, contact);

  if (it && kith_roster_item_resource_count(it) > 0) {
    kith__roster_item_clear_all_presence(it);
    emit(s, KITH_EVENT_GOT_OFFLINE, owner, contact, NULL, NULL, st);
  }
}

/*
 * The owner sends a subscription stanza to `contact` (both normalized
 * bare JIDs): the OUTBOUND rule, as the owner's server applies it before
 * routing (RFC 6121 A.2), with pre-approvals supported.
 */
static kith_status_t out_sub(kith__sync_t *s, const char *owner,
                             const char *contact, kith__ptype_t type,
                             const char *nick)
{
  unsigned old = flags_of(s, owner, contact);
  kith__sub_result_t res;
  kith_status_t rc = KITH_OK;
  int created = 0;

  kith__sub_apply(KITH__SUB_OUTBOUND, type, old, 1, &res);
  /* Unavailable goes while the contact is still subscribed (3.2.2). */
  if (res.actions & KITH__SUB_A_SEND_UNAVAILABLE)
    send_own_unavailable(s, owner, contact);
  if (res.deliver)
    rc = send_sub_stanza(s, owner, contact, type, nick);
  if (rc != KITH_OK)
    return rc;
  if (res.changed)
    created = set_flags(s, owner, contact, res.flags, 1);
  if (created || res.push)
    emit(s, KITH_EVENT_ROSTER_UPDATE, owner, contact, NULL, NULL, NULL);
  /* The contact just gained `from`: it gets our presence (3.1.5). */
  if (res.actions & KITH__SUB_A_SEND_PRESENCE)
    send_own_presence(s, owner, contact);
  if (res.actions & KITH__SUB_A_FORGET_PRESENCE)
    forget_presence(s, owner, contact, NULL);
  return KITH_OK;
}

/* ---- Inbound subscription stanzas ------------------------------------- */

/* The owner's policy answers a delivered request (RFC 6121 3.1.3). */
static void answer_request(const cin_t *in)
{
  kith_roster_node_t *node = kith_roster_node(in->s->roster, in->owner);
  kith_roster_item_t *it;
  kith_auto_authorize_t auth;
  int autosub;
  unsigned flags;

  if (node == NULL)
    return; /* a handler removed the node */
  kith__roster_node_policy(node, &auth, &autosub);
  it = kith__roster_item_find_norm(node, in->bare);
  if (it && kith_roster_item_whitelisted(it))
    auth = KITH_AUTHORIZE_ACCEPT;
  if (auth == KITH_AUTHORIZE_MANUAL)
    return; /* pending_in stays for the application */
  if (auth == KITH_AUTHORIZE_REJECT) {
    out_sub(in->s, in->owner, in->bare, KITH__PT_UNSUBSCRIBED, NULL);
    return;
  }
  out_sub(in->s, in->owner, in->bare, KITH__PT_SUBSCRIBED, NULL);
  /* Never ask when we have or asked for a subscription: this is what
   * stops two auto-subscribing agents looping. */
  flags = flags_of(in->s, in->owner, in->bare);
  if (autosub && !(flags & (KITH_ROSTER_TO | KITH_ROSTER_PENDING_OUT)))
    out_sub(in->s, in->owner, in->bare, KITH__PT_SUBSCRIBE, NULL);
}

/* Hand a delivered stanza to the owner: the events, and the policy. */
static void deliver(const cin_t *in, kith__ptype_t type, unsigned old)
{
  kith_event_type_t ev[2];

  kith__sub_events(type, old, ev);
  emit_in(in, ev[0]);
  emit_in(in, ev[1]);
  if (type == KITH__PT_SUBSCRIBE)
    answer_request(in);
}

/* The INBOUND rule, as the owner's server applies it (RFC 6121 A.3). */
static void in_subscription(const cin_t *in, kith__ptype_t type)
{
  kith__sync_t *s = in->s;
  unsigned old = flags_of(s, in->owner, in->bare);
  kith__sub_result_t res;

  kith__sub_apply(KITH__SUB_INBOUND, type, old, 1, &res);
  if (res.changed)
    set_flags(s, in->owner, in->bare, res.flags, 0);
  if (res.push && item_of(s, in->owner, in->bare))
    emit(s, KITH_EVENT_ROSTER_UPDATE, in->owner, in->bare, NULL, NULL, in->st);
  /* The server's own answers, in the order RFC 6121 3.3.3 and A.3 give:
   * the contact lost `from`, so it hears we are gone, then the
   * acknowledgement. */
  if (res.actions & KITH__SUB_A_SEND_UNAVAILABLE)
    send_own_unavailable(s, in->owner, in->bare);
  if (res.actions & KITH__SUB_A_REPLY_SUBSCRIBED)
    send_sub_stanza(s, in->owner, in->bare, KITH__PT_SUBSCRIBED, NULL);
  if (res.actions & KITH__SUB_A_SEND_PRESENCE)
    send_own_presence(s, in->owner, in->bare);
  if (res.actions & KITH__SUB_A_REPLY_UNSUBSCRIBED)
    send_sub_stanza(s, in->owner, in->bare, KITH__PT_UNSUBSCRIBED, NULL);
  if (res.deliver)
    deliver(in, type, old);
  else
    kith__debug(ctx_of(s), "component", "%s from %s to %s not delivered",
                kith__sub_ptype_name(type), in->bare, in->owner);
  if (res.actions & KITH__SUB_A_FORGET_PRESENCE)
    forget_presence(s, in->owner, in->bare, in->st);
}

/* ---- Inbound presence ------------------------------------------------- */

/* The event an item's presence change raises, if any. */
static void emit_change(const cin_t *in, kith__presence_change_t change)
{
  if (change == KITH__PRESENCE_ONLINE)
    emit_in(in, KITH_EVENT_GOT_ONLINE);
  else if (change == KITH__PRESENCE_CHANGED)
    emit_in(in, KITH_EVENT_CHANGED_STATUS);
  else if (change == KITH__PRESENCE_OFFLINE)
    emit_in(in, KITH_EVENT_GOT_OFFLINE);
}

/* Available from a contact: tracked only when the owner is subscribed to
 * it (`to`); anything else is reported and never stored. */
static void in_available(const cin_t *in)
{
  const kith__wire_presence_t *p = in->p;
  kith_roster_item_t *it;
  kith__presence_change_t change;

  emit_in(in, KITH_EVENT_PRESENCE_AVAILABLE);
  it = item_of(in->s, in->owner, in->bare);
  if (it == NULL || !(kith_roster_item_flags(it) & KITH_ROSTER_TO))
    return;
  if (kith__roster_item_track_available(it, p->resource, (kith_show_t)p->show,
                                        p->status, p->priority,
                                        &change) != KITH_OK) {
    kith__warn(ctx_of(in->s), "component", "presence of %s not tracked",
               p->from_full);
    return;
  }
  emit_change(in, change);
}

static void in_unavailable(const cin_t *in)
{
  kith_roster_item_t *it;

  emit_in(in, KITH_EVENT_PRESENCE_UNAVAILABLE);
  if ((it = item_of(in->s, in->owner, in->bare)) != NULL)
    emit_change(in, kith__roster_item_track_unavailable(it, in->p->resource));
}

/*
 * A probe (RFC 6121 4.3.2): a contact without `from` (a stranger
 * included) gets 'unsubscribed' from the owner's bare JID, which changes
 * nothing here (a pre-approval stays); a subscriber gets the last
 * presence of each available resource, or, when the owner has none, its
 * last unavailable presence from the bare JID (a plain one if none).
 */
static void in_probe(const cin_t *in)
{
  kith__sync_t *s = in->s;
  unsigned flags = flags_of(s, in->owner, in->bare);
  owner_t *o = owner_find(s, in->owner);
  kith_stanza_t *st = NULL;

  if (!(flags & KITH_ROSTER_FROM)) {
    send_sub_stanza(s, in->owner, in->bare, KITH__PT_UNSUBSCRIBED, NULL);
    return;
  }
  if (o && o->res) {
    send_own_presence(s, in->owner, in->p->from_full);
    return;
  }
  if (o && o->last_unavail) {
    send_copy_to(s, o->last_unavail, in->p->from_full, in->owner);
    return;
  }
  if (kith__wire_build_presence(
          ctx_of(s), in->p->from_full, KITH__WIRE_PT_UNAVAILABLE, in->owner,
          KITH_SHOW_AVAILABLE, NULL, KITH__WIRE_NO_PRIORITY, &st) == KITH_OK)
    send_free(s, st);
}

static void in_dispatch(const cin_t *in)
{
  kith__ptype_t pt = kith__sub_ptype(kith_stanza_type(in->st));

  switch (in->p->type) {
  case KITH__WIRE_PT_AVAILABLE:
    in_available(in);
    break;
  case KITH__WIRE_PT_UNAVAILABLE:
    in_unavailable(in);
    break;
  case KITH__WIRE_PT_PROBE:
    in_probe(in);
    break;
  default:
    if (pt != KITH__PT_COUNT)
      in_subscription(in, pt);
    break;
  }
}

int kith__comp_on_presence(kith_conn_t *conn, const kith_stanza_t *st, void *ud)
{
  kith__sync_t *s = ud;
  kith_ctx_t *ctx = ctx_of(s);
  kith__wire_presence_t p;
  const char *reason = NULL;
  char *owner = NULL;
  cin_t in;

  (void)conn;
  if (kith__wire_parse_presence(ctx, st, &p, &reason) != KITH_OK) {
    kith__debug(ctx, "component", "presence ignored: %s",
                reason ? reason : "invalid");
    return 0;
  }
  /* Only what a contact sends to a node we serve is ours; the rest (no
   * 'from', another JID of the domain) is left to the application. */
  if (p.from_bare && p.to &&
      kith_jid_normalize(ctx, p.to, 1, &owner, NULL) == KITH_OK &&
      kith_roster_node(s->roster, owner) != NULL &&
      strcmp(owner, p.from_bare) != 0) {
    in.s = s;
    in.st = st;
    in.p = &p;
    in.owner = owner;
    in.bare = p.from_bare;
    kith__roster_begin(s->roster); /* one stanza, one batch for the store */
    in_dispatch(&in);
    kith__roster_end(s->roster);
  }
  kith__free(ctx, owner);
  kith__wire_presence_clear(&p);
  /* Not consumed: the application's own handlers see it too. */
  return 0;
}

/* ---- Session ---------------------------------------------------------- */

/*
 * Send `st` (no 'to') to each from/both contact of the node of `owner`
 * (kith_roster_node_broadcast_targets()), never to none/to. Sending
 * raises no events, so the items stay put while we walk them.
 */
static void broadcast(kith__sync_t *s, const char *owner,
                      const kith_stanza_t *st)
{
  kith_roster_node_t *node = kith_roster_node(s->roster, owner);
  size_t i, n = kith_roster_node_broadcast_targets(node, NULL, 0);
  kith_roster_item_t **targets;
  kith_stanza_t *cp = NULL;

  if (n == 0 || s->conn == NULL || !kith_conn_is_ready(s->conn))
    return;
  targets = kith__calloc(ctx_of(s), n, sizeof(*targets));
  if (targets == NULL || kith_stanza_copy(st, &cp) != KITH_OK) {
    kith__warn(ctx_of(s), "component", "out of memory: presence of %s lost",
               owner);
    kith__free(ctx_of(s), targets);
    return;
  }
  n = kith_roster_node_broadcast_targets(node, targets, n);
  for (i = 0; i < n; i++)
    if (kith_stanza_set_attr(cp, "to", kith_roster_item_jid(targets[i])) ==
        KITH_OK)
      kith_conn_send(s->conn, cp);
  kith_stanza_free(cp);
  kith__free(ctx_of(s), targets);
}

/* Probe the node's to/both contacts; show its presence to from/both. */
static void start_node(kith__sync_t *s, const kith_roster_node_t *node)
{
  const char *owner = kith_roster_node_owner(node);
  owner_t *o = owner_find(s, owner);
  kith_roster_item_t *it;
  kith_stanza_t *st;
  own_res_t *r;
  size_t cursor = 0;

  while ((it = kith_roster_node_next(node, &cursor)) != NULL) {
    st = NULL;
    if ((kith_roster_item_flags(it) & KITH_ROSTER_TO) &&
        kith__wire_build_presence(
            ctx_of(s), kith_roster_item_jid(it), KITH__WIRE_PT_PROBE, owner,
            KITH_SHOW_AVAILABLE, NULL, KITH__WIRE_NO_PRIORITY, &st) == KITH_OK)
      send_free(s, st);
  }
  for (r = o ? o->res : NULL; r; r = r->next)
    broadcast(s, owner, r->st);
}

void kith__comp_session_start(kith__sync_t *s)
{
  size_t i;

  /* Sending raises no events, so the nodes stay put during the walk. */
  for (i = 0; i < kith_roster_node_count(s->roster); i++)
    start_node(s, kith_roster_node_at(s->roster, i));
}

/* ---- The owner's presence --------------------------------------------- */

/* Remember `st` (a broadcast from `resource` of `o`) for probes. */
static kith_status_t store_presence(kith__sync_t *s, owner_t *o,
                                    const char *resource, int available,
                                    const kith_stanza_t *st)
{
  kith_ctx_t *ctx = ctx_of(s);
  own_res_t **pp, *r = NULL;
  kith_stanza_t *cp = NULL;
  size_t len = strlen(resource);

  if (kith_stanza_copy(st, &cp) != KITH_OK)
    return KITH_ENOMEM;
  if (available && (r = kith__calloc(ctx, 1, sizeof(*r) + len + 1)) == NULL) {
    kith_stanza_free(cp);
    return KITH_ENOMEM;
  }
  for (pp = &o->res; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->resource, resource) == 0) {
      own_res_t *gone = *pp;
      *pp = gone->next;
      res_free(ctx, gone);
      break;
    }
  if (available) {
    memcpy(r->resource, resource, len + 1);
    r->st = cp;
    r->next = o->res;
    o->res = r;
    return KITH_OK;
  }
  /* Unavailable from the bare JID speaks for every resource. */
  if (len == 0)
    owner_clear_res(ctx, o);
  kith_stanza_free(o->last_unavail);
  o->last_unavail = cp;
  return KITH_OK;
}

void kith__comp_all_unavailable(kith__sync_t *s)
{
  owner_t *o;
  own_res_t *r;
  kith_stanza_t *st;

  for (o = s->comp ? s->comp->owners : NULL; o; o = o->next) {
    while ((r = o->res) != NULL) {
      st = NULL;
      if (kith__wire_build_presence(ctx_of(s), NULL, KITH__WIRE_PT_UNAVAILABLE,
                                    kith_stanza_from(r->st),
                                    KITH_SHOW_AVAILABLE, NULL,
                                    KITH__WIRE_NO_PRIORITY, &st) == KITH_OK) {
        broadcast(s, o->jid, st);
        kith_stanza_free(o->last_unavail);
        o->last_unavail = st;
      }
      o->res = r->next;
      res_free(ctx_of(s), r);
    }
  }
}

/* The owner JID `from` as full and bare normalized JIDs (a parsed JID). */
static kith_status_t owner_jid(kith__sync_t *s, const char *from,
                               kith_jid_t **jid)
{
  kith_status_t rc = kith_jid_parse(ctx_of(s), from, jid, NULL);

  if (rc != KITH_OK)
    return rc;
  if (kith_roster_node(s->roster, kith_jid_bare(*jid)) == NULL) {
    kith_jid_free(*jid);
    *jid = NULL;
    return KITH_ENOTFOUND;
  }
  return KITH_OK;
}

kith_status_t kith__comp_send_presence(kith__sync_t *s, const char *to,
                                       const char *type, const char *from,
                                       const char *show, const char *status,
                                       int priority)
{
  int ptype = kith__wire_ptype_from_attr(type);
  int sh = kith__wire_show_from_text(show);
  kith_jid_t *jid = NULL;
  kith_stanza_t *st = NULL;
  owner_t *o;
  kith_status_t rc;

  if (sh < 0 ||
      (ptype != KITH__WIRE_PT_AVAILABLE && ptype != KITH__WIRE_PT_UNAVAILABLE &&
       ptype != KITH__WIRE_PT_PROBE) ||
      (ptype == KITH__WIRE_PT_PROBE && to == NULL))
    return KITH_EINVAL;
  /* No owner: "every owner goes offline" (the shutdown broadcast). */
  if (from == NULL) {
    if (to != NULL || ptype != KITH__WIRE_PT_UNAVAILABLE)
      return KITH_EINVAL;
    kith__comp_all_unavailable(s);
    return KITH_OK;
  }
  if ((rc = owner_jid(s, from, &jid)) != KITH_OK)
    return rc;
  if (ptype != KITH__WIRE_PT_AVAILABLE)
    sh = KITH_SHOW_AVAILABLE; /* <show/> belongs to available only */
  if (priority < -128 || priority > 127)
    priority = KITH__WIRE_NO_PRIORITY;
  rc = kith__wire_build_presence(ctx_of(s), to, ptype, kith_jid_full(jid), sh,
                                 status, priority, &st);
  if (rc == KITH_OK && to != NULL) {
    rc = send_free(s, st); /* directed presence: not stored */
    st = NULL;
  } else if (rc == KITH_OK) {
    o = owner_get(s, kith_jid_bare(jid));
    rc = o ? store_presence(
                 s, o, kith_jid_resource(jid) ? kith_jid_resource(jid) : "",
                 ptype == KITH__WIRE_PT_AVAILABLE, st)
           : KITH_ENOMEM;
    /* Stored even while offline: session start broadcasts it. */
    if (rc == KITH_OK)
      broadcast(s, kith_jid_bare(jid), st);
  }
  kith_stanza_free(st);
  kith_jid_free(jid);
  return rc;
}

kith_status_t kith__comp_send_subscription(kith__sync_t *s, const char *to,
                                           const char *type, const char *nick,
                                           const char *from)
{
  kith__ptype_t pt = kith__sub_ptype(type);
  kith_jid_t *owner = NULL;
  char *contact = NULL;
  kith_status_t rc;

  if (to == NULL || from == NULL || pt == KITH__PT_COUNT)
    return KITH_EINVAL;
  if (s->conn == NULL || !kith_conn_is_ready(s->conn))
    return KITH_ESTATE;
  if ((rc = owner_jid(s, from, &owner)) != KITH_OK)
    return rc;
  rc = kith_jid_normalize(ctx_of(s), to, 1, &contact, NULL);
  if (rc == KITH_OK && strcmp(contact, kith_jid_bare(owner)) == 0)
    rc = KITH_EINVAL; /* no subscription to oneself */
  if (rc == KITH_OK)
    rc = out_sub(s, kith_jid_bare(owner), contact, pt, nick);
  kith__free(ctx_of(s), contact);
  kith_jid_free(owner);
  return rc;
}

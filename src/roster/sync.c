/*
 * Client roster sync: attaching a roster to a connection, the roster fetch
 * with versioning (RFC 6121 2.2, 2.6), roster pushes (2.1.6), roster sets
 * (2.3-2.5) and what session start and disconnect do. Presence and
 * subscriptions are in presence.c; see sync.h for the shape.
 *
 * The server is authoritative for the roster: kith_roster_update() and
 * kith_roster_remove() only send the request, and the local roster
 * changes when the server's push arrives. The one thing a server never
 * reports is `pending_in` (RFC 6121 2.1.2.5 has no attribute for it), so
 * every item update here keeps the pending_in flag kith tracked itself.
 */
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "roster/component.h"
#include "roster/model.h"
#include "roster/subscription.h"
#include "roster/sync.h"
#include "roster/wire.h"
#include "session/conn.h"

/* ---- State ------------------------------------------------------------ */

static void detach_handlers(kith__sync_t *s)
{
  kith__sync_req_t *req, *list = s->reqs;

  if (s->conn == NULL)
    return;
  kith_conn_off(s->conn, s->h_push);
  kith_conn_off(s->conn, s->h_presence);
  kith_conn_off(s->conn, s->h_start);
  kith_conn_off(s->conn, s->h_disconnect);
  kith_conn_off(s->conn, s->h_free);
  s->h_push = s->h_presence = s->h_start = s->h_disconnect = s->h_free = 0;
  s->conn = NULL;
  s->reqs = NULL;
  /* The connection still owns the iq records and will free them; the
   * application hears now that its requests are over (callback contract).
   * A callback may attach again: its new requests are not in `list`. */
  while ((req = list) != NULL) {
    list = req->next;
    req->sync = NULL;
    if (req->cb)
      req->cb(s->roster, KITH_ECANCELED, NULL, req->ud);
  }
}

/* The connection is being freed before the roster: its pending iqs were
 * cancelled already (so `reqs` is empty), and it frees our handlers
 * itself. Forget it, so that a later detach or free touches nothing. */
static void on_conn_free(kith_conn_t *conn, void *ud)
{
  kith__sync_t *s = ud;

  (void)conn;
  s->h_push = s->h_presence = s->h_start = s->h_disconnect = s->h_free = 0;
  s->conn = NULL;
}

/* A component that stops serving its owners while its session is up
 * tells their subscribers, as a server does when a user goes offline
 * (RFC 6121 4.5.2). A client's server does that itself. */
static void leave(kith__sync_t *s)
{
  if (s->conn && kith_conn_is_component(s->conn) && kith_conn_is_ready(s->conn))
    kith__comp_all_unavailable(s);
}

/* kith_roster_free() calls this through the detach hook. */
static void sync_destroy(kith_roster_t *roster, void *ud)
{
  kith__sync_t *s = ud;

  (void)roster;
  leave(s);
  detach_handlers(s);
  kith__sync_clear_strangers(s);
  kith__comp_free(s);
  kith__free(kith__roster_ctx(s->roster), s);
}

kith__sync_t *kith__sync_get(kith_roster_t *roster, int create)
{
  kith__sync_t *s = kith__roster_attachment(roster);

  if (s || !create)
    return s;
  s = kith__calloc(kith__roster_ctx(roster), 1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->roster = roster;
  s->initial_presence = 1;
  kith__roster_set_detach(roster, sync_destroy, s);
  return s;
}

kith_roster_node_t *kith__sync_self(const kith__sync_t *s)
{
  return kith_roster_self(s->roster);
}

void kith__sync_emit(kith__sync_t *s, kith_event_t *ev)
{
  if (s->conn)
    kith__emit(s->conn, ev);
}

int kith__sync_has_feature(const kith__sync_t *s, const char *ns)
{
  const kith_stanza_t *f = s->conn ? kith_conn_features(s->conn) : NULL;

  return f && kith_stanza_child(f, NULL, ns) != NULL;
}

/* ---- Strangers -------------------------------------------------------- */

kith__stranger_t *kith__sync_stranger(kith__sync_t *s, const char *jid)
{
  kith__stranger_t *e;

  for (e = s->strangers; e; e = e->next)
    if (strcmp(e->jid, jid) == 0)
      return e;
  return NULL;
}

static void drop_stranger(kith__sync_t *s, kith__stranger_t *gone)
{
  kith__stranger_t **pp;

  for (pp = &s->strangers; *pp; pp = &(*pp)->next)
    if (*pp == gone) {
      *pp = gone->next;
      kith__free(kith__roster_ctx(s->roster), gone);
      s->nstrangers--;
      return;
    }
}

kith_status_t kith__sync_set_stranger(kith__sync_t *s, const char *jid,
                                      unsigned flags)
{
  kith__stranger_t *e = kith__sync_stranger(s, jid), *last;
  size_t len;

  flags = kith__sub_normalize(flags);
  if (e) {
    if (flags)
      e->flags = flags;
    else
      drop_stranger(s, e);
    return KITH_OK;
  }
  if (flags == 0)
    return KITH_OK;
  /* Full: forget the oldest request. The server keeps it and redelivers
   * it at the next login (RFC 6121 3.1.3), so nothing is lost for good. */
  if (s->nstrangers >= KITH__SYNC_MAX_STRANGERS) {
    for (last = s->strangers; last->next; last = last->next)
      ;
    drop_stranger(s, last);
  }
  len = strlen(jid);
  e = kith__malloc(kith__roster_ctx(s->roster), sizeof(*e) + len + 1);
  if (e == NULL)
    return KITH_ENOMEM;
  memcpy(e->jid, jid, len + 1);
  e->flags = flags;
  e->next = s->strangers;
  s->strangers = e;
  s->nstrangers++;
  return KITH_OK;
}

void kith__sync_clear_strangers(kith__sync_t *s)
{
  while (s->strangers)
    drop_stranger(s, s->strangers);
}

/* ---- Requests --------------------------------------------------------- */

static kith__sync_req_t *req_new(kith__sync_t *s, int is_fetch,
                                 kith_roster_cb cb, void *ud)
{
  kith__sync_req_t *req =
      kith__calloc(kith__roster_ctx(s->roster), 1, sizeof(*req));

  if (req) {
    req->sync = s;
    req->ctx = kith__roster_ctx(s->roster);
    req->fetch = is_fetch;
    req->cb = cb;
    req->ud = ud;
  }
  return req;
}

static void req_unlink(kith__sync_t *s, kith__sync_req_t *req)
{
  kith__sync_req_t **pp;

  for (pp = &s->reqs; *pp; pp = &(*pp)->next)
    if (*pp == req) {
      *pp = req->next;
      return;
    }
}

/* Send `iq` (freed here) tracked by a new request record. */
static kith_status_t req_send(kith__sync_t *s, kith_stanza_t *iq,
                              kith__sync_req_t *req, kith_iq_cb on_reply)
{
  kith_status_t rc;

  if (req == NULL) {
    kith_stanza_free(iq);
    return KITH_ENOMEM;
  }
  rc = kith_conn_send_iq(s->conn, iq, 0, on_reply, req);
  kith_stanza_free(iq);
  if (rc != KITH_OK) {
    kith__free(kith__roster_ctx(s->roster), req);
    return rc;
  }
  req->next = s->reqs;
  s->reqs = req;
  return KITH_OK;
}

/* ---- Applying items --------------------------------------------------- */

/* The flags a server-sent item stands for, plus what kith tracked that the
 * server does not report: pending_in (RFC 6121 2.1.2.5 has no attribute
 * for it) and a pre-approval (Prosody stores one but never sends
 * approved='true'). Normalization drops both again once `from` holds. */
static unsigned item_flags(const kith__wire_item_view_t *v, unsigned tracked)
{
  unsigned flags = tracked & (KITH_ROSTER_PENDING_IN | KITH_ROSTER_APPROVED);

  if (v->subscription == KITH__WIRE_SUB_TO ||
      v->subscription == KITH__WIRE_SUB_BOTH)
    flags |= KITH_ROSTER_TO;
  if (v->subscription == KITH__WIRE_SUB_FROM ||
      v->subscription == KITH__WIRE_SUB_BOTH)
    flags |= KITH_ROSTER_FROM;
  if (v->ask)
    flags |= KITH_ROSTER_PENDING_OUT;
  if (v->approved)
    flags |= KITH_ROSTER_APPROVED;
  return flags;
}

static void emit_update(kith__sync_t *s, kith_roster_node_t *node,
                        const char *jid, const kith_roster_item_t *it,
                        const kith_stanza_t *st)
{
  kith_event_t ev;

  memset(&ev, 0, sizeof(ev));
  ev.type = KITH_EVENT_ROSTER_UPDATE;
  ev.owner = kith_roster_node_owner(node);
  ev.jid = jid;
  ev.item = it;
  ev.removed = it == NULL;
  ev.stanza = st;
  kith__sync_emit(s, &ev);
}

/* Upsert one item the server sent (result or push) and raise roster_update
 * when it changed. On error the roster is unchanged. */
static kith_status_t apply_item(kith__sync_t *s, kith_roster_node_t *node,
                                const kith__wire_item_view_t *v,
                                const kith_stanza_t *st)
{
  kith_roster_item_t *it = kith__roster_item_find_norm(node, v->jid);
  kith__stranger_t *str = kith__sync_stranger(s, v->jid);
  unsigned tracked = it ? kith_roster_item_flags(it) : str ? str->flags : 0;
  int changed = 0, fchanged;
  kith_status_t rc;

  rc = kith__roster_item_upsert_norm(node, v->jid, v->name, v->groups,
                                     v->ngroups, &it, &changed);
  if (rc != KITH_OK)
    return rc;
  fchanged = kith__roster_item_set_flags(it, item_flags(v, tracked));
  if (str)
    drop_stranger(s, str); /* the contact has an item now */
  if (changed || fchanged)
    emit_update(s, node, kith_roster_item_jid(it), it, st);
  return KITH_OK;
}

/* Remove the item of `jid` (normalized) and raise roster_update. */
static void remove_item(kith__sync_t *s, kith_roster_node_t *node,
                        const char *jid, const kith_stanza_t *st)
{
  kith__stranger_t *str = kith__sync_stranger(s, jid);

  if (str)
    drop_stranger(s, str);
  if (kith__roster_item_remove(node, jid) == KITH_OK)
    emit_update(s, node, jid, NULL, st);
}

/* ---- Roster results --------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The JIDs (copies) of the node's items that `items` does not name. */
static kith_status_t stale_items(kith_ctx_t *ctx, const kith_roster_node_t *n,
                                 const kith__wire_item_t *items, size_t count,
                                 char ***out, size_t *nout)
{
  size_t i, cursor = 0, k = 0, size = kith_roster_node_size(n);
  const char **keys = kith__calloc(ctx, count ? count : 1, sizeof(*keys));
  char **stale = kith__calloc(ctx, size ? size : 1, sizeof(*stale));
  kith_roster_item_t *it;
  kith_status_t rc = keys && stale ? KITH_OK : KITH_ENOMEM;

  for (i = 0; rc == KITH_OK && i < count; i++)
    keys[i] = items[i].jid;
  if (rc == KITH_OK)
    qsort(keys, count, sizeof(*keys), cmp_str);
  while (rc == KITH_OK && (it = kith_roster_node_next(n, &cursor)) != NULL) {
    const char *jid = kith_roster_item_jid(it);
    if (count && bsearch(&jid, keys, count, sizeof(*keys), cmp_str))
      continue;
    if ((stale[k] = kith__strdup(ctx, jid)) == NULL)
      rc = KITH_ENOMEM;
    else
      k++;
  }
  kith__free(ctx, keys);
  if (rc != KITH_OK) {
    while (k)
      kith__free(ctx, stale[--k]);
    kith__free(ctx, stale);
    stale = NULL;
  }
  *out = stale;
  *nout = k;
  return rc;
}

/* A full roster replaces the cached one: stale items go (each with an
 * event), every item is upserted, the version is set (cleared when the
 * result has none: the old one no longer describes the cache). */
static kith_status_t replace_roster(kith__sync_t *s, const kith_stanza_t *iq,
                                    kith__wire_item_t *items, size_t n,
                                    const char *ver)
{
  kith_ctx_t *ctx = kith__roster_ctx(s->roster);
  kith_roster_node_t *node = kith__sync_self(s);
  kith__wire_item_view_t v;
  char **stale = NULL;
  size_t i, nstale = 0;
  int lost = 0;
  kith_status_t rc;

  if (node == NULL)
    return KITH_ESTATE;
  rc = stale_items(ctx, node, items, n, &stale, &nstale);
  for (i = 0; i < nstale; i++) {
    /* Handlers run in between and may have removed the node. */
    if ((node = kith__sync_self(s)) != NULL)
      remove_item(s, node, stale[i], iq);
    kith__free(ctx, stale[i]);
  }
  kith__free(ctx, stale);
  for (i = 0; rc == KITH_OK && i < n; i++) {
    if ((node = kith__sync_self(s)) == NULL)
      return KITH_ESTATE;
    kith__wire_item_view(&items[i], &v);
    if (apply_item(s, node, &v, iq) != KITH_OK) {
      kith__warn(ctx, "roster", "roster item %s not stored", v.jid);
      lost = 1;
    }
  }
  /* A cache missing an item must not claim the version: the next fetch
   * then asks for everything again. */
  if (rc == KITH_OK && (node = kith__sync_self(s)) != NULL &&
      kith__roster_node_set_version(node, lost ? NULL : ver) != KITH_OK)
    kith__roster_node_set_version(node, NULL);
  return rc;
}

static kith_status_t apply_result(kith__sync_t *s, const kith_stanza_t *iq)
{
  kith_ctx_t *ctx = kith__roster_ctx(s->roster);
  kith__wire_item_t *items = NULL;
  size_t n = 0, skipped = 0;
  const char *ver = NULL;
  int unchanged = 0;
  kith_status_t rc;

  rc = kith__wire_parse_roster_result(ctx, iq, &items, &n, &ver, &unchanged,
                                      &skipped);
  if (rc != KITH_OK) {
    kith__warn(ctx, "roster", "bad roster result: %s", kith_strerror(rc));
    return rc;
  }
  if (skipped)
    kith__warn(ctx, "roster", "%zu invalid roster items skipped", skipped);
  /* No <query/>: nothing changed since our version (RFC 6121 2.6.3); the
   * pushes that follow bring any changes. */
  if (!unchanged)
    rc = replace_roster(s, iq, items, n, ver);
  kith__wire_items_free(ctx, items, n);
  return rc;
}

/* ---- Fetch ------------------------------------------------------------ */

static void on_fetch_reply(kith_conn_t *conn, kith_status_t status,
                           const kith_stanza_t *reply, void *ud)
{
  kith__sync_req_t *req = ud;
  kith__sync_t *s = req->sync;
  kith_event_t ev;

  if (s != NULL) {
    req_unlink(s, req);
    if (status == KITH_OK)
      status = apply_result(s, reply);
    if (status == KITH_OK) {
      memset(&ev, 0, sizeof(ev));
      ev.type = KITH_EVENT_ROSTER_RECEIVED;
      ev.owner = kith_roster_node_owner(kith__sync_self(s));
      ev.stanza = reply;
      kith__sync_emit(s, &ev);
    } else {
      kith__warn(kith__roster_ctx(s->roster), "roster",
                 "roster fetch failed: %s", kith_strerror(status));
    }
    /* Initial presence goes after the roster (RFC 6121 2.2), also when the
     * fetch failed: the session is usable without a roster. */
    if (req->at_session && s->initial_presence && s->conn &&
        kith_conn_is_ready(conn))
      kith__sync_send_initial_presence(s);
    if (req->cb)
      req->cb(s->roster, status, reply, req->ud);
  }
  kith__free(req->ctx, req);
}

/*
 * The version to send. Without the stream feature, none (NULL). With it,
 * the cached version; but when the cached node is empty, "" (ask for the
 * whole roster): Prosody answers ver='1' for an account whose roster was
 * never saved, so an empty cache with a version is most likely that
 * placeholder, and a full fetch of an empty roster costs nothing.
 */
static const char *fetch_version(const kith__sync_t *s,
                                 const kith_roster_node_t *node)
{
  const char *ver = kith_roster_node_version(node);

  if (!kith__sync_has_feature(s, KITH_NS_ROSTER_VER))
    return NULL;
  return ver && kith_roster_node_size(node) > 0 ? ver : "";
}

static kith_status_t fetch(kith__sync_t *s, int at_session, kith_roster_cb cb,
                           void *ud)
{
  kith_roster_node_t *node = kith__sync_self(s);
  kith_stanza_t *iq = NULL;
  kith__sync_req_t *req;
  kith_status_t rc;

  if (s->conn == NULL || node == NULL || !kith_conn_is_ready(s->conn))
    return KITH_ESTATE;
  rc = kith__wire_build_roster_get(kith__roster_ctx(s->roster),
                                   fetch_version(s, node), &iq);
  if (rc != KITH_OK)
    return rc;
  req = req_new(s, 1, cb, ud);
  if (req)
    req->at_session = at_session;
  return req_send(s, iq, req, on_fetch_reply);
}

kith_status_t kith_roster_fetch(kith_roster_t *roster, kith_roster_cb cb,
                                void *ud)
{
  kith__sync_t *s = roster ? kith__sync_get(roster, 0) : NULL;

  if (roster == NULL)
    return KITH_EINVAL;
  if (s && s->conn && kith_conn_is_component(s->conn))
    return KITH_EUNSUPPORTED; /* a component has no server roster */
  return s ? fetch(s, 0, cb, ud) : KITH_ESTATE;
}

/* ---- Pushes ----------------------------------------------------------- */

static void reply_error(kith__sync_t *s, const kith_stanza_t *iq,
                        const char *type, const char *cond)
{
  kith_stanza_t *err = NULL;

  if (kith__wire_build_error(kith__roster_ctx(s->roster), iq, type, cond,
                             &err) == KITH_OK)
    kith_conn_send(s->conn, err);
  kith_stanza_free(err);
}

/* Apply an accepted push. Returns the error condition to answer, or NULL
 * for success; on error the roster is unchanged. */
static const char *apply_push(kith__sync_t *s, kith_roster_node_t *node,
                              const kith__wire_item_t *item, const char *ver,
                              const kith_stanza_t *iq)
{
  kith__wire_item_view_t v;
  kith_status_t rc = KITH_OK;

  kith__wire_item_view(item, &v);
  if (v.subscription == KITH__WIRE_SUB_REMOVE)
    remove_item(s, node, v.jid, iq);
  else
    rc = apply_item(s, node, &v, iq);
  if (rc == KITH_EINVAL)
    return "not-acceptable";
  if (rc == KITH_ELIMIT)
    return "resource-constraint";
  if (rc != KITH_OK)
    return "internal-server-error";
  if ((node = kith__sync_self(s)) != NULL && ver &&
      kith__roster_node_set_version(node, ver) != KITH_OK)
    kith__roster_node_set_version(node, NULL);
  return NULL;
}

static int on_push(kith_conn_t *conn, const kith_stanza_t *iq, void *ud)
{
  kith__sync_t *s = ud;
  kith_ctx_t *ctx = kith__roster_ctx(s->roster);
  kith_roster_node_t *node = kith__sync_self(s);
  kith__wire_item_t item;
  kith__wire_reject_t rej;
  kith_stanza_t *res = NULL;
  const char *ver = NULL, *cond;
  kith_status_t rc;

  if (node == NULL)
    return 0;
  rc = kith__wire_check_push(ctx, iq, kith_roster_node_owner(node),
                             kith_conn_jid(conn), s->accept_full_jid_push,
                             &item, &ver, &rej);
  if (rc == KITH_EPROTO) {
    kith__warn(ctx, "roster", "roster push from %s refused: %s",
               kith_stanza_from(iq) ? kith_stanza_from(iq) : "(none)",
               rej.reason);
    if (rej.condition)
      reply_error(s, iq, rej.type, rej.condition);
    return 1;
  }
  if (rc != KITH_OK) {
    reply_error(s, iq, "wait", "internal-server-error");
    return 1;
  }
  cond = apply_push(s, node, &item, ver, iq);
  kith__wire_item_clear(ctx, &item);
  if (cond) {
    reply_error(s, iq, strcmp(cond, "not-acceptable") == 0 ? "modify" : "wait",
                cond);
  } else if (kith__wire_build_result(ctx, iq, &res) == KITH_OK) {
    kith_conn_send(conn, res);
  }
  kith_stanza_free(res);
  return 1;
}

/* ---- Roster sets ------------------------------------------------------ */

static void on_set_reply(kith_conn_t *conn, kith_status_t status,
                         const kith_stanza_t *reply, void *ud)
{
  kith__sync_req_t *req = ud;
  kith__sync_t *s = req->sync;

  if (s != NULL) {
    req_unlink(s, req);
    if (req->cb)
      req->cb(s->roster, status, reply, req->ud);
  }
  kith__free(req->ctx, req);
}

kith_status_t kith_roster_update(kith_roster_t *roster, const char *jid,
                                 const char *name, const char *const *groups,
                                 size_t ngroups, const char *subscription,
                                 kith_roster_cb cb, void *ud)
{
  kith__sync_t *s = roster ? kith__sync_get(roster, 0) : NULL;
  kith_stanza_t *iq = NULL;
  kith_status_t rc;

  if (roster == NULL || jid == NULL)
    return KITH_EINVAL;
  if (s && s->conn && kith_conn_is_component(s->conn))
    return KITH_EUNSUPPORTED; /* a component has no server roster */
  if (s == NULL || s->conn == NULL || !kith_conn_is_ready(s->conn))
    return KITH_ESTATE;
  rc = kith__wire_build_roster_set(kith__roster_ctx(roster), jid, name, groups,
                                   ngroups, subscription, &iq);
  if (rc != KITH_OK)
    return rc;
  return req_send(s, iq, req_new(s, 0, cb, ud), on_set_reply);
}

kith_status_t kith_roster_remove(kith_roster_t *roster, const char *jid,
                                 kith_roster_cb cb, void *ud)
{
  return kith_roster_update(roster, jid, NULL, NULL, 0, "remove", cb, ud);
}

/* ---- Session ---------------------------------------------------------- */

static void session_start(kith__sync_t *s)
{
  kith_ctx_t *ctx = kith__roster_ctx(s->roster);
  kith_status_t rc;

  if (kith_conn_is_component(s->conn)) {
    kith__comp_session_start(s);
    return;
  }
  rc = kith__roster_set_self(s->roster, kith_conn_jid(s->conn));
  if (rc == KITH_OK)
    rc = fetch(s, 1, NULL, NULL);
  if (rc != KITH_OK) {
    kith__warn(ctx, "roster", "no roster fetch at session start: %s",
               kith_strerror(rc));
    if (s->initial_presence)
      kith__sync_send_initial_presence(s);
  }
}

static void on_session_start(kith_conn_t *conn, const kith_event_t *ev,
                             void *ud)
{
  (void)conn;
  (void)ev;
  session_start(ud);
}

static void on_disconnected(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  kith__sync_t *s = ud;

  (void)conn;
  (void)ev;
  kith__sync_reset_presence(s);
  /* The server redelivers pending requests at the next login. A
   * component is the server: it keeps its requests (component.c). */
  kith__sync_clear_strangers(s);
}

/* ---- Attaching -------------------------------------------------------- */

kith_status_t kith_roster_attach(kith_roster_t *roster, kith_conn_t *conn)
{
  kith__sync_t *s;

  if (roster == NULL || conn == NULL)
    return KITH_EINVAL;
  if ((s = kith__sync_get(roster, 1)) == NULL)
    return KITH_ENOMEM;
  if (s->conn)
    return KITH_EEXIST;
  s->conn = conn;
  /* A component (XEP-0114) serves its nodes as a server would: no
   * roster pushes reach it, and its presence handler is its own. */
  if (kith_conn_is_component(conn))
    s->h_presence = kith_conn_add_handler(conn, "presence", NULL, NULL,
                                          kith__comp_on_presence, s);
  else
    s->h_presence = kith_conn_add_handler(conn, "presence", NULL, NULL,
                                          kith__sync_on_presence, s);
  if (!kith_conn_is_component(conn))
    s->h_push =
        kith_conn_add_handler(conn, "iq", "set", KITH_NS_ROSTER, on_push, s);
  s->h_start =
      kith_conn_on(conn, KITH_EVENT_SESSION_START, on_session_start, s);
  s->h_disconnect =
      kith_conn_on(conn, KITH_EVENT_DISCONNECTED, on_disconnected, s);
  s->h_free = kith__conn_on_free(conn, on_conn_free, s);
  if ((!s->h_push && !kith_conn_is_component(conn)) || !s->h_presence ||
      !s->h_start || !s->h_disconnect || !s->h_free) {
    detach_handlers(s);
    return KITH_ENOMEM;
  }
  /* Attached to a session that already started: start the roster now. */
  if (kith_conn_is_ready(conn))
    session_start(s);
  return KITH_OK;
}

void kith_roster_detach(kith_roster_t *roster)
{
  kith__sync_t *s = roster ? kith__sync_get(roster, 0) : NULL;

  if (s) {
    leave(s);
    detach_handlers(s);
  }
}

/* ---- Policy ----------------------------------------------------------- */

void kith_roster_set_auto_authorize(kith_roster_t *roster,
                                    kith_auto_authorize_t policy)
{
  int sub;

  if (roster == NULL)
    return;
  kith__roster_policy(roster, NULL, &sub);
  kith__roster_set_policy(roster, policy, sub);
}

void kith_roster_set_auto_subscribe(kith_roster_t *roster, int on)
{
  kith_auto_authorize_t auth;

  if (roster == NULL)
    return;
  kith__roster_policy(roster, &auth, NULL);
  kith__roster_set_policy(roster, auth, on);
}

void kith_roster_set_initial_presence(kith_roster_t *roster, int on)
{
  kith__sync_t *s = roster ? kith__sync_get(roster, 1) : NULL;

  if (s)
    s->initial_presence = on != 0;
  else if (roster)
    kith__warn(kith__roster_ctx(roster), "roster",
               "out of memory: initial presence setting lost");
}

void kith_roster_set_accept_full_jid_push(kith_roster_t *roster, int on)
{
  kith__sync_t *s = roster ? kith__sync_get(roster, 1) : NULL;

  if (s)
    s->accept_full_jid_push = on != 0;
  else if (roster)
    kith__warn(kith__roster_ctx(roster), "roster",
               "out of memory: full-JID push setting lost");
}

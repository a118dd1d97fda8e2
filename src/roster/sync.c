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
#include "roster/persist.h"
#include "roster/sync.h"
#include "roster/wire.h"
#include "session/conn.h"

/* ---- State ------------------------------------------------------------ */

/*
 * A fetch's result as it is applied, item by item (see sync.h): the JIDs
 * the cache held when the result started, in an open-addressing set, each
 * marked when the result names it; what was applied; the scratch for
 * reading items.
 */
typedef struct kith__sync_fetch {
  kith_roster_t *batch; /* the roster whose batch the result holds open */
  int begun;            /* the cache was looked at (stale set made) */
  int overflow;         /* the item limit was hit: the rest is dropped */
  int no_stale;         /* the stale set could not be made: remove nothing */
  size_t lost;          /* items that could not be stored */
  size_t given;         /* streamed elements given to kith__sync_fetch_item() */
  char **old;           /* JIDs cached at the start (copies) */
  size_t nold;
  size_t *slots; /* index into old + 1, 0 = free; mask + 1 of them */
  size_t mask;
  unsigned char *seen;     /* per old JID: named by the result */
  const kith_stanza_t *st; /* the stanza the items come from, for events */
  kith__wire_walk_t walk;
  kith__wire_roster_info_t info;
} kith__sync_fetch_t;

static void fetch_free(kith_ctx_t *ctx, kith__sync_fetch_t *f);
static void fetch_end_batch(kith__sync_fetch_t *f);
static void forget_version(kith__sync_t *s);

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
  if (s->streaming)
    kith__conn_set_item_stream(s->conn, NULL, NULL, NULL);
  s->streaming = 0;
  s->h_push = s->h_presence = s->h_start = s->h_disconnect = s->h_free = 0;
  s->conn = NULL;
  s->reqs = NULL;
  /* The connection still owns the iq records and will free them; the
   * application hears now that its requests are over (callback contract).
   * A callback may attach again: its new requests are not in `list`. */
  while ((req = list) != NULL) {
    list = req->next;
    req->sync = NULL;
    if (req->result && req->result->begun)
      forget_version(s); /* items were applied; the result never ended */
    if (req->result)
      fetch_end_batch(req->result);
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
  s->streaming = 0;
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
  kith__persist_flush(s->roster);
  kith__comp_store_ext(s, 0);
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

static void req_free(kith__sync_req_t *req)
{
  fetch_free(req->ctx, req->result);
  kith__free(req->ctx, req->id);
  kith__free(req->ctx, req);
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
  kith_status_t rc = KITH_OK;

  if (req == NULL) {
    kith_stanza_free(iq);
    return KITH_ENOMEM;
  }
  /* A fetch knows its id before sending, to match streamed items. */
  if (req->fetch) {
    char idbuf[32];

    req->id =
        kith__strdup(req->ctx, kith_conn_new_id(s->conn, idbuf, sizeof(idbuf)));
    rc = req->id ? kith_stanza_set_attr(iq, "id", req->id) : KITH_ENOMEM;
  }
  if (rc == KITH_OK)
    rc = kith_conn_send_iq(s->conn, iq, 0, on_reply, req);
  kith_stanza_free(iq);
  if (rc != KITH_OK) {
    req_free(req);
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
  kith__stranger_t *str = s->nstrangers ? kith__sync_stranger(s, v->jid) : NULL;
  kith_roster_item_t *it = NULL;
  unsigned tracked;
  int changed = 0, fchanged;
  kith_status_t rc;

  /* One lookup: the upsert leaves an existing item's flags alone, and a
   * new item starts with none, so its flags are read after it. */
  rc = kith__roster_item_upsert_norm(node, v->jid, v->name, v->groups,
                                     v->ngroups, &it, &changed);
  if (rc != KITH_OK)
    return rc;
  tracked = kith_roster_item_flags(it);
  if (str && tracked == 0)
    tracked = str->flags;
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

static size_t jid_hash(const char *s)
{
  size_t h = 1469598103934665603u;

  while (*s)
    h = (h ^ (unsigned char)*s++) * 1099511628211u;
  return h;
}

/* A roster result is one batch for the store, from its first item to its
 * end (the items and the version are written together). */
static void fetch_end_batch(kith__sync_fetch_t *f)
{
  kith_roster_t *r = f->batch;

  if (r) {
    f->batch = NULL;
    kith__roster_end(r);
  }
}

static kith__sync_fetch_t *fetch_new(kith_ctx_t *ctx)
{
  kith__sync_fetch_t *f = kith__calloc(ctx, 1, sizeof(*f));

  if (f)
    kith__wire_walk_init(&f->walk, ctx);
  return f;
}

static void fetch_free(kith_ctx_t *ctx, kith__sync_fetch_t *f)
{
  size_t i;

  if (f == NULL)
    return;
  fetch_end_batch(f);
  for (i = 0; i < f->nold; i++)
    kith__free(ctx, f->old[i]);
  kith__free(ctx, f->old);
  kith__free(ctx, f->slots);
  kith__free(ctx, f->seen);
  kith__wire_walk_done(&f->walk);
  kith__free(ctx, f);
}

/* Note the JIDs the cache holds before the result changes anything. */
static kith_status_t fetch_begin(kith_ctx_t *ctx, kith__sync_fetch_t *f,
                                 const kith_roster_node_t *node)
{
  size_t n = kith_roster_node_size(node), cap = 8, cursor = 0, h;
  kith_roster_item_t *it;

  f->begun = 1;
  if (n == 0)
    return KITH_OK;
  while (cap < 2 * n)
    cap *= 2;
  f->old = kith__calloc(ctx, n, sizeof(*f->old));
  f->slots = kith__calloc(ctx, cap, sizeof(*f->slots));
  f->seen = kith__calloc(ctx, n, 1);
  f->mask = cap - 1;
  if (f->old == NULL || f->slots == NULL || f->seen == NULL)
    goto nomem;
  while ((it = kith_roster_node_next(node, &cursor)) != NULL && f->nold < n) {
    const char *jid = kith_roster_item_jid(it);

    if ((f->old[f->nold] = kith__strdup(ctx, jid)) == NULL)
      goto nomem;
    for (h = jid_hash(jid) & f->mask; f->slots[h]; h = (h + 1) & f->mask)
      ;
    f->slots[h] = ++f->nold;
  }
  return KITH_OK;

nomem:
  f->no_stale = 1;
  return KITH_ENOMEM;
}

static void fetch_mark(kith__sync_fetch_t *f, const char *jid)
{
  size_t h;

  if (f->nold == 0)
    return;
  for (h = jid_hash(jid) & f->mask; f->slots[h]; h = (h + 1) & f->mask)
    if (strcmp(f->old[f->slots[h] - 1], jid) == 0) {
      f->seen[f->slots[h] - 1] = 1;
      return;
    }
}

/*
 * THE per-item step of a roster result, for a result built as a tree
 * (kith__wire_roster_foreach) and for streamed items
 * (kith__wire_roster_item) alike: note the item as named, upsert it, raise
 * roster_update. A kith__wire_item_fn; `ud` is the fetch request.
 */
static kith_status_t fetch_item(void *ud, const kith__wire_item_view_t *v)
{
  kith__sync_req_t *req = ud;
  kith__sync_fetch_t *f = req->result;
  kith_ctx_t *ctx = req->ctx;
  kith_roster_node_t *node = req->sync ? kith__sync_self(req->sync) : NULL;
  kith_status_t rc;

  if (node == NULL)
    return KITH_ESTATE;
  if (f->batch == NULL) {
    f->batch = req->sync->roster;
    kith__roster_begin(f->batch);
  }
  if (!f->begun && fetch_begin(ctx, f, node) != KITH_OK)
    kith__warn(ctx, "roster", "out of memory: stale items will stay");
  if (f->overflow)
    return KITH_OK;
  fetch_mark(f, v->jid);
  rc = apply_item(req->sync, node, v, f->st);
  if (rc == KITH_ELIMIT) {
    f->overflow = 1;
    kith__warn(ctx, "roster",
               "roster result exceeds the item limit (%zu items): "
               "the rest is dropped and the fetch fails",
               kith_roster_node_size(node));
  } else if (rc != KITH_OK) {
    kith__warn(ctx, "roster", "roster item %s not stored: %s", v->jid,
               kith_strerror(rc));
    f->lost++;
  }
  return KITH_OK;
}

/* The pending fetch a streamed item's shell answers, or NULL. The sender
 * must be one that may answer a request sent with no 'to', the same rule
 * iq tracking applies (kith__conn_reply_matches). */
static kith__sync_req_t *stream_req(kith__sync_t *s, const kith_stanza_t *shell)
{
  const char *id = kith_stanza_id(shell);
  kith__sync_req_t *req;

  if (id == NULL)
    return NULL;
  for (req = s->reqs; req; req = req->next)
    if (req->fetch && req->id && strcmp(req->id, id) == 0)
      break;
  if (req == NULL)
    return NULL;
  /* Every item of one result has the same shell: check its sender once. */
  if (req->result && req->result->st == shell)
    return req;
  return kith__conn_reply_matches(s->conn, NULL, kith_stanza_from(shell))
             ? req
             : NULL;
}

void kith__sync_fetch_item(kith__sync_req_t *req, const kith_stanza_t *shell,
                           const kith_stanza_t *item)
{
  kith_roster_node_t *node;
  const char *jid;

  if (req->result == NULL && (req->result = fetch_new(req->ctx)) == NULL) {
    kith__warn(req->ctx, "roster", "out of memory: roster item lost");
    return;
  }
  if (req->result->st != shell && req->result->st != NULL)
    return; /* a second result with the same id: only the first counts */
  req->result->st = shell;
  req->result->given++;
  /* Servers send JIDs normalized: the model's index slot for this one
   * loads while the item is read (in a large roster it is a cache miss
   * that otherwise stalls the upsert). */
  if (req->sync && (node = kith__sync_self(req->sync)) != NULL &&
      (jid = kith_stanza_attr(item, "jid")) != NULL)
    kith__roster_item_prefetch(node, jid);
  kith__wire_roster_item(&req->result->walk, item, fetch_item, req,
                         &req->result->info);
}

/* The parser's item callback (kith__conn_set_item_stream). */
static void on_stream_item(void *ud, const kith_stanza_t *shell,
                           const kith_stanza_t *item)
{
  kith__sync_t *s = ud;
  kith__sync_req_t *req = stream_req(s, shell);

  if (req == NULL) {
    kith__debug(kith__roster_ctx(s->roster), "roster",
                "streamed item dropped: not a pending fetch's result");
    return;
  }
  kith__sync_fetch_item(req, shell, item);
}

/* The cache no longer matches any version: the next fetch is full. */
static void forget_version(kith__sync_t *s)
{
  kith_roster_node_t *node = kith__sync_self(s);

  if (node)
    kith__roster_node_set_version(node, NULL);
}

/* Items of the cache the result did not name go (each with an event). */
static void remove_stale(kith__sync_t *s, kith__sync_fetch_t *f,
                         const kith_stanza_t *iq)
{
  size_t i;

  for (i = 0; i < f->nold; i++) {
    /* Handlers run in between and may have removed the node. */
    kith_roster_node_t *node = f->seen[i] ? NULL : kith__sync_self(s);

    if (node)
      remove_item(s, node, f->old[i], iq);
  }
}

/*
 * The fetch's reply arrived: apply what is left of it (all of a result
 * built as a tree; nothing for the shell of a streamed one, whose items
 * were applied as they came), then finish it.
 */
static kith_status_t finish_result(kith__sync_t *s, kith__sync_req_t *req,
                                   const kith_stanza_t *iq)
{
  kith_ctx_t *ctx = kith__roster_ctx(s->roster);
  kith__wire_roster_info_t info;
  kith_roster_node_t *node = kith__sync_self(s);
  kith__sync_fetch_t *f;
  size_t streamed = 0;
  kith_status_t rc;

  if (node == NULL)
    return KITH_ESTATE;
  if (req->result == NULL && (req->result = fetch_new(ctx)) == NULL)
    return KITH_ENOMEM;
  f = req->result;
  if (f->batch == NULL) {
    f->batch = s->roster;
    kith__roster_begin(f->batch);
  }
  /* Every item the parser streamed out of this reply must have come
   * here; if some went elsewhere (another consumer took the connection's
   * stream over, or memory ran out), the result is incomplete and must
   * not replace the cache. */
  if (s->conn && s->conn->parser &&
      kith__parser_streamed(s->conn->parser, &streamed) &&
      streamed != f->given) {
    kith__warn(ctx, "roster",
               "roster result incomplete: %zu of %zu streamed items seen",
               f->given, streamed);
    return KITH_ESTATE;
  }
  f->st = iq;
  rc = kith__wire_roster_foreach(ctx, iq, fetch_item, req, &info);
  if (rc != KITH_OK) {
    kith__warn(ctx, "roster", "bad roster result: %s", kith_strerror(rc));
    return rc;
  }
  /* No <query/>: nothing changed since our version (RFC 6121 2.6.3); the
   * pushes that follow bring any changes. */
  if (info.unchanged)
    return KITH_OK;
  if (!f->begun && fetch_begin(ctx, f, node) != KITH_OK)
    kith__warn(ctx, "roster", "out of memory: stale items will stay");
  if (f->overflow)
    return KITH_ELIMIT;
  if (!f->no_stale)
    remove_stale(s, f, iq);
  /* A cache missing an item must not claim the version: the next fetch
   * then asks for everything again. */
  if ((node = kith__sync_self(s)) != NULL &&
      kith__roster_node_set_version(
          node, f->lost || f->no_stale ? NULL : info.ver) != KITH_OK)
    kith__roster_node_set_version(node, NULL);
  return KITH_OK;
}

kith__sync_req_t *kith__sync_fetch_new(kith_roster_t *roster)
{
  kith__sync_t *s = roster ? kith__sync_get(roster, 1) : NULL;

  return s ? req_new(s, 1, NULL, NULL) : NULL;
}

kith_status_t kith__sync_fetch_finish(kith__sync_req_t *req,
                                      const kith_stanza_t *reply)
{
  kith_status_t rc = finish_result(req->sync, req, reply);

  if (rc != KITH_OK && req->result && req->result->begun)
    forget_version(req->sync);
  if (req->result)
    fetch_end_batch(req->result);
  return rc;
}

void kith__sync_fetch_free(kith__sync_req_t *req)
{
  if (req)
    req_free(req);
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
      status = finish_result(s, req, reply);
    /* Items were applied but the result did not complete. */
    if (status != KITH_OK && req->result && req->result->begun)
      forget_version(s);
    if (req->result)
      fetch_end_batch(req->result); /* written before anyone hears of it */
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
  req_free(req);
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
  kith__roster_begin(s->roster);
  cond = apply_push(s, node, &item, ver, iq);
  kith__roster_end(s->roster); /* stored before the server hears back */
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
  req_free(req);
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
  kith__persist_set_cache(roster, !kith_conn_is_component(conn));
  if (kith_conn_is_component(conn))
    kith__comp_store_ext(s, 1);
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
  /* Roster results stream item by item (see sync.h). */
  if (!kith_conn_is_component(conn) &&
      kith__conn_set_item_stream(conn, KITH_NS_ROSTER, on_stream_item, s) ==
          KITH_OK)
    s->streaming = 1;
  if ((!s->streaming && !kith_conn_is_component(conn)) ||
      (!s->h_push && !kith_conn_is_component(conn)) || !s->h_presence ||
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

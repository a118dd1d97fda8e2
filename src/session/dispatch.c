/*
 * Event and stanza handlers, and iq tracking.
 */
#include <stdio.h>
#include <string.h>

#include "core/ctx.h"
#include "session/conn.h"

const char *kith_event_name(kith_event_type_t type)
{
  switch (type) {
#define KITH_EVENT_NAME_(suffix, name)                                         \
  case KITH_EVENT_##suffix:                                                    \
    return name;
    KITH_EVENT_MAP(KITH_EVENT_NAME_)
#undef KITH_EVENT_NAME_
  default:
    return "unknown";
  }
}

/* ---- Handler registry --------------------------------------------------- */

static unsigned add_handler(kith_conn_t *conn, kith__handler_t *h)
{
  kith__handler_t **tail = &conn->handlers;

  h->id = ++conn->next_handler_id;
  while (*tail)
    tail = &(*tail)->next;
  *tail = h; /* registration order is call order */
  return h->id;
}

/* A zeroed handler carrying `ud`, or NULL when out of memory. */
static kith__handler_t *new_handler(kith_conn_t *conn, void *ud)
{
  kith__handler_t *h = kith__calloc(conn->ctx, 1, sizeof(*h));

  if (h)
    h->ud = ud;
  return h;
}

unsigned kith_conn_on(kith_conn_t *conn, kith_event_type_t type,
                      kith_event_cb cb, void *ud)
{
  kith__handler_t *h;

  if (conn == NULL || cb == NULL || (h = new_handler(conn, ud)) == NULL)
    return 0;
  h->is_event = 1;
  h->event = type;
  h->event_cb = cb;
  return add_handler(conn, h);
}

static void handler_free(kith_conn_t *conn, kith__handler_t *h)
{
  kith__free(conn->ctx, h->name);
  kith__free(conn->ctx, h->type);
  kith__free(conn->ctx, h->child_ns);
  kith__free(conn->ctx, h);
}

unsigned kith_conn_add_handler(kith_conn_t *conn, const char *name,
                               const char *type, const char *child_ns,
                               kith_stanza_cb cb, void *ud)
{
  kith__handler_t *h;

  if (conn == NULL || cb == NULL || (h = new_handler(conn, ud)) == NULL)
    return 0;
  h->stanza_cb = cb;
  if ((name && !(h->name = kith__strdup(conn->ctx, name))) ||
      (type && !(h->type = kith__strdup(conn->ctx, type))) ||
      (child_ns && !(h->child_ns = kith__strdup(conn->ctx, child_ns)))) {
    handler_free(conn, h);
    return 0;
  }
  return add_handler(conn, h);
}

/* Unlink handlers marked removed; only outside dispatch, so that a handler
 * may remove itself or others while being called. */
static void sweep(kith_conn_t *conn)
{
  kith__handler_t **pp = &conn->handlers;

  if (conn->dispatching)
    return;
  while (*pp) {
    kith__handler_t *h = *pp;
    if (h->removed) {
      *pp = h->next;
      handler_free(conn, h);
    } else {
      pp = &h->next;
    }
  }
}

void kith_conn_off(kith_conn_t *conn, unsigned id)
{
  kith__handler_t *h;

  if (conn == NULL || id == 0)
    return;
  for (h = conn->handlers; h; h = h->next)
    if (h->id == id)
      h->removed = 1;
  sweep(conn);
}

unsigned kith__conn_on_free(kith_conn_t *conn,
                            void (*fn)(kith_conn_t *conn, void *ud), void *ud)
{
  kith__handler_t *h;

  if (conn == NULL || fn == NULL || (h = new_handler(conn, ud)) == NULL)
    return 0;
  h->is_free_hook = 1;
  h->free_cb = fn;
  return add_handler(conn, h);
}

void kith__conn_run_free_hooks(kith_conn_t *conn)
{
  kith__handler_t *h;

  conn->dispatching++;
  for (h = conn->handlers; h; h = h->next)
    if (h->is_free_hook && !h->removed)
      h->free_cb(conn, h->ud);
  conn->dispatching--;
}

void kith__handlers_free(kith_conn_t *conn)
{
  while (conn->handlers) {
    kith__handler_t *h = conn->handlers;
    conn->handlers = h->next;
    handler_free(conn, h);
  }
}

/* ---- Events ------------------------------------------------------------- */

void kith__emit(kith_conn_t *conn, kith_event_t *ev)
{
  kith__handler_t *h;
  unsigned last = conn->next_handler_id;

  conn->dispatching++;
  for (h = conn->handlers; h; h = h->next) {
    /* Handlers added during this dispatch start with the next event. */
    if (h->id > last || h->removed || !h->is_event)
      continue;
    if (h->event == KITH_EVENT_ANY || h->event == ev->type)
      h->event_cb(conn, ev, h->ud);
  }
  conn->dispatching--;
  sweep(conn);
}

void kith__emit_simple(kith_conn_t *conn, kith_event_type_t type,
                       kith_status_t status, const char *text, const char *jid)
{
  kith_event_t ev;

  memset(&ev, 0, sizeof(ev));
  ev.type = type;
  ev.status = status;
  ev.text = text;
  ev.jid = jid;
  kith__emit(conn, &ev);
}

/* ---- iq tracking -------------------------------------------------------- */

static void iq_free(kith_conn_t *conn, kith__pending_iq_t *p)
{
  kith__free(conn->ctx, p->id);
  kith__free(conn->ctx, p->to);
  kith__free(conn->ctx, p);
}

kith_status_t kith__iq_track(kith_conn_t *conn, kith_stanza_t *iq,
                             unsigned timeout_ms, kith_iq_cb cb, void *ud)
{
  kith__pending_iq_t *p;
  char idbuf[32];
  const char *to;
  kith_status_t rc;

  p = kith__calloc(conn->ctx, 1, sizeof(*p));
  if (p == NULL)
    return KITH_ENOMEM;
  if (kith_stanza_id(iq) == NULL) {
    rc = kith_stanza_set_attr(iq, "id",
                              kith_conn_new_id(conn, idbuf, sizeof(idbuf)));
    if (rc != KITH_OK) {
      kith__free(conn->ctx, p);
      return rc;
    }
  }
  /* Read 'to' only now: setting the id may have moved the attributes. */
  to = kith_stanza_to(iq);
  p->id = kith__strdup(conn->ctx, kith_stanza_id(iq));
  rc = p->id ? KITH_OK : KITH_ENOMEM;
  if (rc == KITH_OK && to)
    rc = kith_jid_normalize(conn->ctx, to, 0, &p->to, NULL);
  if (rc == KITH_OK)
    rc = kith__conn_write_stanza(conn, iq);
  if (rc != KITH_OK) {
    iq_free(conn, p);
    return rc;
  }
  p->cb = cb;
  p->ud = ud;
  p->deadline =
      kith__now_ms() + (timeout_ms ? timeout_ms : conn->iq_timeout_ms);
  p->next = conn->iqs;
  conn->iqs = p;
  return KITH_OK;
}

kith_status_t kith_conn_send_iq(kith_conn_t *conn, kith_stanza_t *iq,
                                unsigned timeout_ms, kith_iq_cb cb, void *ud)
{
  const char *type;

  if (conn == NULL || iq == NULL || cb == NULL)
    return KITH_EINVAL;
  type = kith_stanza_type(iq);
  if (strcmp(kith_stanza_name(iq), "iq") != 0 || type == NULL ||
      (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
    return KITH_EINVAL;
  if (!kith_conn_is_ready(conn))
    return KITH_ESTATE;
  return kith__iq_track(conn, iq, timeout_ms, cb, ud);
}

/* Does a reply from `from` answer a request sent to `to` (normalized, or
 * NULL)? RFC 6120 10.3: a request with no 'to' went to the account itself,
 * and may be answered with no 'from', the bare JID, or the domain. */
int kith__conn_reply_matches(kith_conn_t *conn, const char *to,
                             const char *from)
{
  char *nfrom = NULL;
  int ok = 0;
  const char *bare = conn->jid ? kith_jid_bare(conn->jid) : NULL;
  const char *domain = conn->jid ? kith_jid_domain(conn->jid) : NULL;

  if (from == NULL)
    return to == NULL || (bare && strcmp(to, bare) == 0);
  if (kith_jid_normalize(conn->ctx, from, 0, &nfrom, NULL) != KITH_OK)
    return 0;
  if (to)
    ok = strcmp(nfrom, to) == 0;
  else
    ok = (bare && strcmp(nfrom, bare) == 0) ||
         (domain && strcmp(nfrom, domain) == 0) ||
         (conn->bound_jid && strcmp(nfrom, conn->bound_jid) == 0);
  kith__free(conn->ctx, nfrom);
  return ok;
}

/* Handle an iq result/error. Returns non-zero when it answered a request. */
static int iq_reply(kith_conn_t *conn, const kith_stanza_t *st)
{
  kith__pending_iq_t **pp;
  const char *id = kith_stanza_id(st);
  const char *type = kith_stanza_type(st);

  if (id == NULL)
    return 0;
  for (pp = &conn->iqs; *pp; pp = &(*pp)->next) {
    kith__pending_iq_t *p = *pp;
    if (strcmp(p->id, id) != 0)
      continue;
    if (!kith__conn_reply_matches(conn, p->to, kith_stanza_from(st))) {
      kith__warn(conn->ctx, "iq",
                 "ignoring a reply to %s from %s: the request went to %s", id,
                 kith_stanza_from(st), p->to ? p->to : "the account");
      return 1;
    }
    *pp = p->next;
    p->cb(conn, strcmp(type, "result") == 0 ? KITH_OK : KITH_ESTANZA, st,
          p->ud);
    iq_free(conn, p);
    return 1;
  }
  return 0;
}

void kith__iq_cancel_all(kith_conn_t *conn, kith_status_t status)
{
  while (conn->iqs) {
    kith__pending_iq_t *p = conn->iqs;
    conn->iqs = p->next;
    p->cb(conn, status, NULL, p->ud);
    iq_free(conn, p);
  }
}

void kith__iq_expire(kith_conn_t *conn, uint64_t now)
{
  kith__pending_iq_t **pp = &conn->iqs;

  while (*pp) {
    kith__pending_iq_t *p = *pp;
    if (p->deadline > now) {
      pp = &p->next;
      continue;
    }
    *pp = p->next;
    p->cb(conn, KITH_ETIMEDOUT, NULL, p->ud);
    iq_free(conn, p);
    pp = &conn->iqs; /* the callback may have changed the list */
  }
}

uint64_t kith__iq_next_deadline(const kith_conn_t *conn)
{
  const kith__pending_iq_t *p;
  uint64_t next = 0;

  for (p = conn->iqs; p; p = p->next)
    if (next == 0 || p->deadline < next)
      next = p->deadline;
  return next;
}

/* ---- Stanza dispatch ---------------------------------------------------- */

static int has_child_ns(const kith_stanza_t *st, const char *ns)
{
  const kith_stanza_t *c;

  for (c = kith_stanza_first_child(st); c; c = kith_stanza_next(c))
    if (kith_stanza_ns(c) && strcmp(kith_stanza_ns(c), ns) == 0)
      return 1;
  return 0;
}

static int handler_matches(const kith__handler_t *h, const kith_stanza_t *st)
{
  const char *type = kith_stanza_type(st);

  if (h->name && strcmp(h->name, kith_stanza_name(st)) != 0)
    return 0;
  if (h->type && (type == NULL || strcmp(h->type, type) != 0))
    return 0;
  return h->child_ns == NULL || has_child_ns(st, h->child_ns);
}

/* Reply to an iq get/set with a result, or an error with `cond`. */
static void iq_answer(kith_conn_t *conn, const kith_stanza_t *req,
                      const char *cond)
{
  kith_stanza_t *r = NULL, *err = NULL;
  kith_status_t rc = kith_stanza_new(conn->ctx, "iq", NULL, &r);

  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(r, "type", cond ? "error" : "result");
  if (rc == KITH_OK && kith_stanza_id(req))
    rc = kith_stanza_set_attr(r, "id", kith_stanza_id(req));
  if (rc == KITH_OK && kith_stanza_from(req))
    rc = kith_stanza_set_attr(r, "to", kith_stanza_from(req));
  if (rc == KITH_OK && kith_stanza_to(req) && conn->component_domain)
    rc = kith_stanza_set_attr(r, "from", kith_stanza_to(req));
  if (rc == KITH_OK && cond) {
    rc = kith_stanza_add_element(r, "error", NULL, &err);
    if (rc == KITH_OK)
      rc = kith_stanza_set_attr(err, "type", "cancel");
    if (rc == KITH_OK)
      rc = kith_stanza_add_element(err, cond, KITH_NS_STANZA_ERRORS, NULL);
  }
  if (rc == KITH_OK)
    kith__conn_write_stanza(conn, r);
  kith_stanza_free(r);
}

void kith__dispatch_stanza(kith_conn_t *conn, const kith_stanza_t *st)
{
  kith__handler_t *h;
  const char *name = kith_stanza_name(st);
  const char *type = kith_stanza_type(st);
  int is_iq = strcmp(name, "iq") == 0;
  int handled = 0;
  unsigned last = conn->next_handler_id;

  if (is_iq && type &&
      (strcmp(type, "result") == 0 || strcmp(type, "error") == 0)) {
    if (!iq_reply(conn, st))
      kith__debug(conn->ctx, "iq", "unsolicited iq %s dropped", type);
    return;
  }
  if (!kith_conn_is_ready(conn))
    return;
  conn->dispatching++;
  for (h = conn->handlers; h && !handled; h = h->next) {
    if (h->id > last || h->removed || h->is_event || h->is_free_hook ||
        !handler_matches(h, st))
      continue;
    handled = h->stanza_cb(conn, st, h->ud);
  }
  conn->dispatching--;
  sweep(conn);
  if (handled || !is_iq || type == NULL)
    return;
  if (strcmp(type, "get") == 0 && kith_stanza_child(st, "ping", KITH_NS_PING))
    iq_answer(conn, st, NULL); /* XEP-0199 */
  else if (strcmp(type, "get") == 0 || strcmp(type, "set") == 0)
    iq_answer(conn, st, "service-unavailable"); /* RFC 6120 8.4 */
}

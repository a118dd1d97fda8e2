/*
 * Unit tests: component mode (src/roster/component.c), kith acting as the
 * server for the JIDs it serves, against a scripted server on a
 * socketpair.
 *
 * Each test opens a XEP-0114 session (stream header, <handshake/>), plays
 * the router by writing stanzas addressed to the component's owners, and
 * parses everything kith sends back. Every stanza kith sends must come
 * from one of its owners (checked in take() for all output). The table
 * test drives every state and inbound type from the RFC 6121 table
 * (subscription.h) and checks a few key rows against expectations written
 * out by hand; the last tests relay between two components, and between
 * a kith client and a component (through a server playing the client's
 * side of RFC 6121), to show auto-subscribing agents settle in both/both
 * after a fixed number of stanzas.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "roster/model.h"
#include "roster/subscription.h"
#include "session/conn.h"
#include "failing_alloc.h"
#include "store_spy.h"

/* When set, comp_new() keeps the roster in this store. */
static kith_store_t *g_store;

#define U1 "user1@bot.localhost"
#define U2 "user2@bot.localhost"

typedef struct peer {
  kith_conn_t *conn;
  kith_roster_t *roster;
  const char *domain;
  int fd; /* the scripted router's end */
  char got[65536];
  size_t gotlen;
  int n[KITH_EVENT_COUNT_]; /* events seen, per type */
  char log[16384];          /* one line per roster event */
  size_t loglen;
  int ready;  /* session started: everything sent is a stanza to check */
  int client; /* a client session (its stanzas carry no 'from') */
} peer_t;

#define SCRIPT_PEER_EVENT_LOG
#include "script_peer.h"

/* What kith sent since the last take(): parsed stanzas. */
typedef struct out {
  int n;
  kith_stanza_t *st[128];
  char *raw[128]; /* each stanza as kith wrote it */
} out_t;

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  peer_t *p = ud;

  (void)conn;
  if (!count_event(p, ev))
    return;
  /* Events about an owner's contacts carry the owner. */
  assert_non_null(ev->owner);
  log_line(p, "%s %s>%s %s\n", kith_event_name(ev->type), ev->jid, ev->owner,
           ev->item ? "item" : "noitem");
}

static void take(peer_t *p, out_t *o);
static void out_free(out_t *o);

/* Drop what was sent and seen so far; once the session runs, what was
 * sent is still checked (take()). */
static void forget(peer_t *p)
{
  out_t o;

  if (p->ready) {
    take(p, &o);
    out_free(&o);
  }
  forget_sent(p);
  forget_events(p);
}

/* A component connection for `domain` with a roster attached, before the
 * stream opens: the test adds nodes and items, then calls comp_ready(). */
static void comp_new(peer_t *p, const char *domain)
{
  memset(p, 0, sizeof(*p));
  p->domain = domain;
  assert_int_equal(kith_conn_new(NULL, &p->conn), KITH_OK);
  assert_int_equal(kith_conn_set_server(p->conn, "127.0.0.1", 5347), KITH_OK);
  assert_int_equal(kith_conn_set_component(p->conn, domain, "secret"), KITH_OK);
  assert_true(kith_conn_on(p->conn, KITH_EVENT_ANY, on_event, p) > 0);
  assert_int_equal(kith_roster_new(NULL, &p->roster), KITH_OK);
  if (g_store)
    assert_int_equal(kith_roster_set_store(p->roster, g_store), KITH_OK);
  assert_int_equal(kith_roster_attach(p->roster, p->conn), KITH_OK);
  assert_int_equal(kith_roster_attach(p->roster, p->conn), KITH_EEXIST);
  peer_adopt(p);
}

/* The router's stream header and handshake: SESSION_START fires. */
static void comp_ready(peer_t *p)
{
  assert_non_null(strstr(p->got, "xmlns='jabber:component:accept'"));
  p->ready = 0;
  forget(p);
  sayf(p,
       "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
       "xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='%s'>",
       p->domain);
  assert_non_null(strstr(p->got, "<handshake>"));
  forget(p);
  p->ready = 1;
  say(p, "<handshake/>");
  assert_int_equal(p->n[KITH_EVENT_SESSION_START], 1);
  assert_true(kith_conn_is_ready(p->conn));
}

static void comp_close(peer_t *p)
{
  kith_roster_free(p->roster);
  kith_conn_free(p->conn);
  close(p->fd);
}

static kith_roster_node_t *node(const peer_t *p, const char *owner)
{
  kith_roster_node_t *n = kith_roster_node(p->roster, owner);

  assert_non_null(n);
  return n;
}

static kith_roster_item_t *item(const peer_t *p, const char *owner,
                                const char *jid)
{
  return kith_roster_node_item(node(p, owner), jid);
}

static unsigned flags(const peer_t *p, const char *owner, const char *jid)
{
  kith_roster_item_t *it = item(p, owner, jid);

  assert_non_null(it);
  return kith_roster_item_flags(it);
}

/* Give `owner` an item for `jid` with `f` (the node is created). */
static kith_roster_item_t *set_item(peer_t *p, const char *owner,
                                    const char *jid, unsigned f)
{
  kith_roster_node_t *n = NULL;
  kith_roster_item_t *it = NULL;

  assert_int_equal(kith_roster_add_node(p->roster, owner, &n), KITH_OK);
  assert_int_equal(kith__roster_item_upsert(n, jid, NULL, NULL, 0, &it, NULL),
                   KITH_OK);
  kith__roster_item_set_flags(it, f);
  assert_int_equal(kith_roster_item_flags(it), kith__sub_normalize(f));
  return it;
}

/* Split what kith sent into stanzas, parse each, and check that every one
 * comes from a JID whose bare form is one of the roster's owners. */
static void take(peer_t *p, out_t *o)
{
  char *s = p->got, *e;

  memset(o, 0, sizeof(*o));
  while ((s = strchr(s, '<')) != NULL) {
    kith_stanza_t *st = NULL;
    kith_jid_t *from = NULL;

    e = stanza_end(s);
    assert_int_equal(kith_stanza_parse(NULL, s, (size_t)(e - s + 1), &st),
                     KITH_OK);
    assert_true(o->n < 128);
    o->raw[o->n] = strndup(s, (size_t)(e - s + 1));
    assert_non_null(o->raw[o->n]);
    s = e + 1;
    if (!p->client) {
      assert_non_null(kith_stanza_from(st));
      assert_int_equal(kith_jid_parse(NULL, kith_stanza_from(st), &from, NULL),
                       KITH_OK);
      assert_non_null(kith_roster_node(p->roster, kith_jid_bare(from)));
      assert_non_null(kith_stanza_to(st));
      kith_jid_free(from);
    }
    o->st[o->n++] = st;
  }
  forget_sent(p);
}

static void out_free(out_t *o)
{
  while (o->n > 0) {
    o->n--;
    kith_stanza_free(o->st[o->n]);
    free(o->raw[o->n]);
  }
}

static int type_is(const kith_stanza_t *st, const char *type)
{
  const char *t = kith_stanza_type(st);

  if (strcmp(type, "available") == 0)
    return t == NULL;
  return t && strcmp(t, type) == 0;
}

/* How many presences of `type` ("available" for none) went to `to` (NULL:
 * anyone) from `from` (NULL: anyone). */
static int count(const out_t *o, const char *type, const char *to,
                 const char *from)
{
  int i, n = 0;

  for (i = 0; i < o->n; i++)
    if (strcmp(kith_stanza_name(o->st[i]), "presence") == 0 &&
        type_is(o->st[i], type) &&
        (to == NULL || strcmp(kith_stanza_to(o->st[i]), to) == 0) &&
        (from == NULL || strcmp(kith_stanza_from(o->st[i]), from) == 0))
      n++;
  return n;
}

/* The first presence of `type` to `to` from `from` (NULL: any). */
static const kith_stanza_t *find(const out_t *o, const char *type,
                                 const char *to, const char *from)
{
  int i;

  for (i = 0; i < o->n; i++)
    if (type_is(o->st[i], type) &&
        (to == NULL || strcmp(kith_stanza_to(o->st[i]), to) == 0) &&
        (from == NULL || strcmp(kith_stanza_from(o->st[i]), from) == 0))
      return o->st[i];
  fail_msg("no %s presence to %s from %s", type, to ? to : "*",
           from ? from : "*");
  return NULL;
}

/* The index of the first presence of `type` in `o`, or -1. */
static int index_of(const out_t *o, const char *type)
{
  int i;

  for (i = 0; i < o->n; i++)
    if (type_is(o->st[i], type))
      return i;
  return -1;
}

/* The model's change hook (what the store layer will persist). */
static void count_changes(void *ud, kith_roster_node_t *n,
                          kith_roster_item_t *it, kith__roster_change_t what)
{
  int *changes = ud;

  (void)n;
  (void)it;
  changes[what]++;
}

/* ---- The table, cell by cell ------------------------------------------- */

static const char *const in_types[KITH__PT_COUNT] = {
    "subscribe", "subscribed", "unsubscribe", "unsubscribed"};

static const kith_event_type_t first_event[KITH__PT_COUNT] = {
    KITH_EVENT_PRESENCE_SUBSCRIBE, KITH_EVENT_PRESENCE_SUBSCRIBED,
    KITH_EVENT_PRESENCE_UNSUBSCRIBE, KITH_EVENT_PRESENCE_UNSUBSCRIBED};

/* One cell: the contact in `state` sends `type` to U1 (online as
 * U1/bot). Policy manual, so only the table's own actions send. */
static void table_cell(peer_t *p, kith__sub_state_t state, kith__ptype_t type)
{
  unsigned f = kith__sub_state_flags(state);
  const kith__sub_rule_t *r = kith__sub_rule(KITH__SUB_INBOUND, type, f);
  kith_roster_item_t *it = set_item(p, U1, "c@localhost", f);
  unsigned a = r->actions;
  out_t o;

  kith__roster_item_clear_all_presence(it);
  if (f & KITH_ROSTER_TO) /* something to forget */
    say(p, "<presence from='c@localhost/r' to='" U1 "'/>");
  forget(p);
  sayf(p, "<presence from='c@localhost' to='" U1 "' type='%s'/>",
       in_types[type]);
  take(p, &o);
  assert_int_equal(flags(p, U1, "c@localhost"), r->next);
  assert_int_equal(count(&o, "subscribed", "c@localhost", U1),
                   (a & KITH__SUB_A_REPLY_SUBSCRIBED) != 0);
  assert_int_equal(count(&o, "unsubscribed", "c@localhost", U1),
                   (a & KITH__SUB_A_REPLY_UNSUBSCRIBED) != 0);
  assert_int_equal(count(&o, "available", "c@localhost", U1 "/bot"),
                   (a & KITH__SUB_A_SEND_PRESENCE) != 0);
  assert_int_equal(count(&o, "unavailable", "c@localhost", U1 "/bot"),
                   (a & KITH__SUB_A_SEND_UNAVAILABLE) != 0);
  assert_int_equal(o.n, ((a & KITH__SUB_A_REPLY_SUBSCRIBED) != 0) +
                            ((a & KITH__SUB_A_REPLY_UNSUBSCRIBED) != 0) +
                            ((a & KITH__SUB_A_SEND_PRESENCE) != 0) +
                            ((a & KITH__SUB_A_SEND_UNAVAILABLE) != 0));
  /* Delivered = handed to the owner = the events. */
  assert_int_equal(p->n[first_event[type]], r->deliver);
  assert_int_equal(p->n[KITH_EVENT_GOT_OFFLINE],
                   (a & KITH__SUB_A_FORGET_PRESENCE) != 0);
  assert_int_equal(p->n[KITH_EVENT_ROSTER_UPDATE], r->push);
  out_free(&o);
}

static peer_t *table_peer(peer_t *p)
{
  comp_new(p, "bot.localhost");
  assert_int_equal(kith_roster_add_node(p->roster, U1, NULL), KITH_OK);
  kith_roster_set_auto_authorize(p->roster, KITH_AUTHORIZE_MANUAL);
  comp_ready(p);
  assert_int_equal(kith_roster_send_presence(p->roster, NULL, NULL, U1 "/bot",
                                             NULL, NULL, 0),
                   KITH_OK);
  return p;
}

static void test_inbound_table(void **state)
{
  peer_t p;
  unsigned s, t;

  (void)state;
  table_peer(&p);
  /* The nine states of RFC 6121 A.1 and the three pre-approved ones. */
  for (s = 0; s < KITH__ST_COUNT; s++)
    for (t = 0; t < KITH__PT_COUNT; t++)
      table_cell(&p, (kith__sub_state_t)s, (kith__ptype_t)t);
  comp_close(&p);
}

/* Run one cell and return what was sent (the caller frees it). */
static void cell(peer_t *p, unsigned f, const char *type, out_t *o)
{
  kith_roster_item_t *it = set_item(p, U1, "c@localhost", f);

  kith__roster_item_clear_all_presence(it);
  if (f & KITH_ROSTER_TO)
    say(p, "<presence from='c@localhost/r' to='" U1 "'/>");
  forget(p);
  sayf(p, "<presence from='c@localhost' to='" U1 "' type='%s'/>", type);
  take(p, o);
}

/* Key rows written out from the RFC text, independent of the table. */
static void test_inbound_key_rows(void **state)
{
  peer_t p;
  out_t o;

  (void)state;
  table_peer(&p);

  /* 3.1.3: a subscriber asks again: auto-reply, no delivery. */
  cell(&p, KITH_ROSTER_FROM, "subscribe", &o);
  assert_int_equal(o.n, 2);
  assert_string_equal(kith_stanza_type(o.st[0]), "subscribed");
  assert_null(kith_stanza_type(o.st[1])); /* our presence */
  assert_string_equal(kith_stanza_from(o.st[1]), U1 "/bot");
  assert_int_equal(flags(&p, U1, "c@localhost"), KITH_ROSTER_FROM);
  assert_int_equal(p.n[KITH_EVENT_PRESENCE_SUBSCRIBE], 0);
  out_free(&o);

  /* A new request is delivered and, with a manual policy, kept. */
  cell(&p, 0, "subscribe", &o);
  assert_int_equal(o.n, 0);
  assert_int_equal(flags(&p, U1, "c@localhost"), KITH_ROSTER_PENDING_IN);
  assert_true(logged(&p, "roster_subscription_request c@localhost>" U1));
  out_free(&o);

  /* 3.3.3: Both, the contact unsubscribes: unavailable, then 'unsubscribed'
   * (A.3.2 footnote), and we keep our own subscription. */
  cell(&p, KITH_ROSTER_FROM | KITH_ROSTER_TO, "unsubscribe", &o);
  assert_int_equal(o.n, 2);
  assert_string_equal(kith_stanza_type(o.st[0]), "unavailable");
  assert_string_equal(kith_stanza_type(o.st[1]), "unsubscribed");
  assert_string_equal(kith_stanza_from(o.st[1]), U1);
  assert_int_equal(flags(&p, U1, "c@localhost"), KITH_ROSTER_TO);
  assert_true(logged(&p, "roster_subscription_remove c@localhost>" U1));
  out_free(&o);

  /* 3.1.6: our request is approved. */
  cell(&p, KITH_ROSTER_PENDING_OUT, "subscribed", &o);
  assert_int_equal(o.n, 0);
  assert_int_equal(flags(&p, U1, "c@localhost"), KITH_ROSTER_TO);
  assert_true(logged(&p, "roster_subscription_authorized c@localhost>" U1));
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 1);
  out_free(&o);

  /* 3.2.3: Both, the contact cancels our subscription: its resources go. */
  cell(&p, KITH_ROSTER_FROM | KITH_ROSTER_TO, "unsubscribed", &o);
  assert_int_equal(o.n, 0);
  assert_int_equal(flags(&p, U1, "c@localhost"), KITH_ROSTER_FROM);
  assert_int_equal(p.n[KITH_EVENT_GOT_OFFLINE], 1);
  assert_int_equal(kith_roster_item_resource_count(item(&p, U1, "c@localhost")),
                   0);
  assert_true(logged(&p, "roster_subscription_removed c@localhost>" U1));
  out_free(&o);

  /* 3.4: a pre-approved contact asks: approved at once, not delivered. */
  cell(&p, KITH_ROSTER_APPROVED, "subscribe", &o);
  assert_int_equal(o.n, 2);
  assert_string_equal(kith_stanza_type(o.st[0]), "subscribed");
  assert_int_equal(flags(&p, U1, "c@localhost"), KITH_ROSTER_FROM);
  assert_int_equal(p.n[KITH_EVENT_PRESENCE_SUBSCRIBE], 0);
  out_free(&o);

  /* A.3.3: an unrequested 'subscribed' changes nothing. */
  cell(&p, KITH_ROSTER_TO, "subscribed", &o);
  assert_int_equal(o.n, 0);
  assert_int_equal(flags(&p, U1, "c@localhost"), KITH_ROSTER_TO);
  assert_int_equal(p.n[KITH_EVENT_PRESENCE_SUBSCRIBED], 0);
  out_free(&o);
  comp_close(&p);
}

/* ---- Policy ----------------------------------------------------------- */

static void test_policies_per_node(void **state)
{
  int changes[KITH__CHANGE_COUNT] = {0};
  peer_t p;
  kith_roster_node_t *n2 = NULL, *n3 = NULL;
  out_t o;

  (void)state;
  comp_new(&p, "bot.localhost");
  assert_int_equal(kith_roster_add_node(p.roster, U1, NULL), KITH_OK);
  assert_int_equal(kith_roster_add_node(p.roster, U2, &n2), KITH_OK);
  assert_int_equal(kith_roster_add_node(p.roster, "user3@bot.localhost", &n3),
                   KITH_OK);
  kith_roster_node_set_auto_authorize(n2, KITH_AUTHORIZE_REJECT);
  kith_roster_node_set_auto_authorize(n3, KITH_AUTHORIZE_MANUAL);
  kith__roster_set_hook(p.roster, count_changes, changes);
  comp_ready(&p);
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, U1, "chat", "here", 5),
      KITH_OK);

  /* Accept (the default) with auto-subscribe: an item, approval, our
   * presence, and a request back. */
  forget(&p);
  say(&p, "<presence from='eve@localhost/x' to='" U1 "' type='subscribe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 3);
  assert_string_equal(kith_stanza_type(o.st[0]), "subscribed");
  assert_null(kith_stanza_type(o.st[1]));
  assert_string_equal(kith_stanza_child_text(o.st[1], "show", NULL), "chat");
  assert_string_equal(kith_stanza_type(o.st[2]), "subscribe");
  assert_int_equal(flags(&p, U1, "eve@localhost"),
                   KITH_ROSTER_FROM | KITH_ROSTER_PENDING_OUT);
  assert_true(logged(&p, "roster_subscription_request eve@localhost/x>" U1));
  assert_true(logged(&p, "roster_update eve@localhost>" U1 " item"));
  /* The store sees it: created, approved, asked (three changes). */
  assert_int_equal(changes[KITH__CHANGE_ITEM], 3);
  out_free(&o);

  /* Reject on user2: 'unsubscribed', and no item. */
  forget(&p);
  say(&p, "<presence from='eve@localhost' to='" U2 "' type='subscribe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_string_equal(kith_stanza_type(o.st[0]), "unsubscribed");
  assert_string_equal(kith_stanza_from(o.st[0]), U2);
  assert_int_equal(kith_roster_node_size(n2), 0);
  assert_int_equal(changes[KITH__CHANGE_ITEM], 3);
  out_free(&o);

  /* Manual on user3: nothing sent, nothing stored in the roster; the
   * application accepts later, which creates the item. */
  forget(&p);
  say(&p, "<presence from='eve@localhost' to='user3@bot.localhost' "
          "type='subscribe'><nick xmlns='http://jabber.org/protocol/nick'>"
          "Eve</nick></presence>");
  take(&p, &o);
  assert_int_equal(o.n, 0);
  assert_int_equal(kith_roster_node_size(n3), 0);
  assert_int_equal(changes[KITH__CHANGE_ITEM], 3);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST], 1);
  out_free(&o);
  /* A duplicate request is not delivered again (A.3.1). */
  say(&p, "<presence from='eve@localhost' to='user3@bot.localhost' "
          "type='subscribe'/>");
  assert_int_equal(p.n[KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST], 1);
  assert_int_equal(kith_roster_send_subscription(p.roster, "eve@localhost",
                                                 "subscribed", NULL,
                                                 "user3@bot.localhost"),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 1); /* user3 has no presence to send yet */
  assert_string_equal(kith_stanza_type(o.st[0]), "subscribed");
  assert_int_equal(flags(&p, "user3@bot.localhost", "eve@localhost"),
                   KITH_ROSTER_FROM);
  out_free(&o);

  /* Manual, declined by the application: 'unsubscribed', still no item. */
  say(&p, "<presence from='zed@localhost' to='user3@bot.localhost' "
          "type='subscribe'/>");
  assert_int_equal(kith_roster_send_subscription(p.roster, "zed@localhost",
                                                 "unsubscribed", NULL,
                                                 "user3@bot.localhost"),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_int_equal(
      count(&o, "unsubscribed", "zed@localhost", "user3@bot.localhost"), 1);
  assert_null(item(&p, "user3@bot.localhost", "zed@localhost"));
  out_free(&o);
  /* Declined is forgotten: asking again is a new request. */
  say(&p, "<presence from='zed@localhost' to='user3@bot.localhost' "
          "type='subscribe'/>");
  assert_int_equal(p.n[KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST], 3);

  /* Whitelist beats manual and reject. */
  kith_roster_item_set_whitelisted(set_item(&p, U2, "wl@localhost", 0), 1);
  forget(&p);
  say(&p, "<presence from='wl@localhost' to='" U2 "' type='subscribe'/>");
  take(&p, &o);
  assert_int_equal(count(&o, "subscribed", "wl@localhost", U2), 1);
  assert_int_equal(count(&o, "subscribe", "wl@localhost", U2), 1);
  assert_int_equal(flags(&p, U2, "wl@localhost"),
                   KITH_ROSTER_FROM | KITH_ROSTER_PENDING_OUT);
  out_free(&o);

  /* Auto-subscribe is idempotent: `to` already held, no subscribe. */
  set_item(&p, U1, "idol@localhost", KITH_ROSTER_TO);
  forget(&p);
  say(&p, "<presence from='idol@localhost' to='" U1 "' type='subscribe'/>");
  take(&p, &o);
  assert_int_equal(count(&o, "subscribe", NULL, NULL), 0);
  assert_int_equal(count(&o, "subscribed", "idol@localhost", U1), 1);
  assert_int_equal(flags(&p, U1, "idol@localhost"),
                   KITH_ROSTER_FROM | KITH_ROSTER_TO);
  out_free(&o);
  comp_close(&p);
}

/* ---- Strangers -------------------------------------------------------- */

static void test_strangers_create_nothing(void **state)
{
  int changes[KITH__CHANGE_COUNT] = {0};
  peer_t p;
  kith_roster_node_t *n1 = NULL;
  out_t o;

  (void)state;
  comp_new(&p, "bot.localhost");
  assert_int_equal(kith_roster_add_node(p.roster, U1, &n1), KITH_OK);
  kith_roster_set_auto_authorize(p.roster, KITH_AUTHORIZE_MANUAL);
  kith__roster_set_hook(p.roster, count_changes, changes);
  comp_ready(&p);
  forget(&p);
  say(&p, "<presence from='x@evil.example/a' to='" U1 "'/>");
  say(&p, "<presence from='x@evil.example/a' to='" U1 "/r'>"
          "<show>away</show></presence>");
  say(&p, "<presence from='x@evil.example/a' to='" U1 "' type='unavailable'/>");
  say(&p, "<presence from='x@evil.example' to='" U1 "' type='subscribed'/>");
  say(&p, "<presence from='x@evil.example' to='" U1 "' type='unsubscribed'/>");
  say(&p, "<presence from='x@evil.example' to='" U1 "' type='unsubscribe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 0); /* nothing to answer (A.3: no state) */
  assert_int_equal(p.n[KITH_EVENT_PRESENCE_AVAILABLE], 2);
  assert_int_equal(p.n[KITH_EVENT_GOT_ONLINE], 0);
  assert_true(logged(&p, "presence_available x@evil.example/a>" U1 " noitem"));
  out_free(&o);

  /* A request from a stranger is remembered outside the roster, and its
   * withdrawal acknowledged (A.3.2). */
  say(&p, "<presence from='x@evil.example' to='" U1 "' type='subscribe'/>");
  assert_int_equal(p.n[KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST], 1);
  say(&p, "<presence from='x@evil.example' to='" U1 "' type='unsubscribe'/>");
  assert_true(
      logged(&p, "roster_subscription_cancelled x@evil.example>" U1 " noitem"));
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_string_equal(kith_stanza_type(o.st[0]), "unsubscribed");
  out_free(&o);

  /* A probe: 'unsubscribed' from the bare owner JID (RFC 6121 4.3.2). */
  say(&p, "<presence from='x@evil.example' to='" U1 "/r' type='probe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_int_equal(count(&o, "unsubscribed", "x@evil.example", U1), 1);
  out_free(&o);

  /* Stanzas to a JID the roster does not serve are not ours at all. */
  say(&p, "<presence from='x@evil.example' to='nobody@bot.localhost' "
          "type='subscribe'/>");
  say(&p, "<presence from='x@evil.example' to='bot.localhost' type='probe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 0);
  out_free(&o);
  assert_int_equal(kith_roster_node_count(p.roster), 1);
  assert_int_equal(kith_roster_node_size(n1), 0);
  /* Nothing for the store to persist either. */
  assert_int_equal(changes[KITH__CHANGE_ITEM], 0);
  assert_int_equal(changes[KITH__CHANGE_REMOVED], 0);
  comp_close(&p);
}

/* ---- Probes and broadcast --------------------------------------------- */

static void add_contacts(peer_t *p)
{
  set_item(p, U1, "fan@localhost", KITH_ROSTER_FROM);
  set_item(p, U1, "idol@localhost", KITH_ROSTER_TO);
  set_item(p, U1, "pal@localhost", KITH_ROSTER_FROM | KITH_ROSTER_TO);
  set_item(p, U1, "nobody@localhost", 0);
  set_item(p, U1, "pre@localhost", KITH_ROSTER_APPROVED);
}

static void test_probes(void **state)
{
  peer_t p;
  out_t o;

  (void)state;
  comp_new(&p, "bot.localhost");
  add_contacts(&p);
  comp_ready(&p);

  /* The owner never said anything: unavailable from the bare JID. */
  forget(&p);
  say(&p, "<presence from='pal@localhost' to='" U1 "' type='probe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_int_equal(count(&o, "unavailable", "pal@localhost", U1), 1);
  out_free(&o);

  assert_int_equal(kith_roster_send_presence(p.roster, NULL, NULL, U1 "/bot",
                                             "away", "lunch", 3),
                   KITH_OK);
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, U1 "/two", NULL, NULL, 0),
      KITH_OK);
  pump(&p);
  take(&p, &o);
  out_free(&o);

  /* A subscriber gets each available resource's last presence. */
  say(&p, "<presence from='fan@localhost/x' to='" U1 "' type='probe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 2);
  assert_int_equal(count(&o, "available", "fan@localhost/x", U1 "/bot"), 1);
  assert_int_equal(count(&o, "available", "fan@localhost/x", U1 "/two"), 1);
  assert_string_equal(
      kith_stanza_child_text(find(&o, "available", NULL, U1 "/bot"), "status",
                             NULL),
      "lunch");
  assert_string_equal(kith_stanza_child_text(
                          find(&o, "available", NULL, U1 "/bot"), "show", NULL),
                      "away");
  out_free(&o);

  /* Not a subscriber (to, none, pre-approved): 'unsubscribed' from the
   * bare JID, and the pre-approval stays (4.3.2). */
  say(&p, "<presence from='idol@localhost' to='" U1 "' type='probe'/>");
  say(&p, "<presence from='nobody@localhost' to='" U1 "' type='probe'/>");
  say(&p, "<presence from='pre@localhost' to='" U1 "' type='probe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 3);
  assert_int_equal(count(&o, "unsubscribed", NULL, U1), 3);
  assert_int_equal(flags(&p, U1, "pre@localhost"), KITH_ROSTER_APPROVED);
  assert_int_equal(flags(&p, U1, "idol@localhost"), KITH_ROSTER_TO);
  out_free(&o);

  /* After the owner leaves: its last unavailable, from the bare JID. */
  assert_int_equal(kith_roster_send_presence(p.roster, NULL, "unavailable", U1,
                                             NULL, "gone fishing", 0),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  out_free(&o);
  say(&p, "<presence from='pal@localhost/y' to='" U1 "' type='probe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_int_equal(count(&o, "unavailable", "pal@localhost/y", U1), 1);
  assert_string_equal(kith_stanza_child_text(o.st[0], "status", NULL),
                      "gone fishing");
  out_free(&o);
  comp_close(&p);
}

static void test_broadcast_only_to_subscribers(void **state)
{
  peer_t p;
  out_t o;

  (void)state;
  comp_new(&p, "bot.localhost");
  add_contacts(&p);
  comp_ready(&p);
  forget(&p);
  assert_int_equal(kith_roster_send_presence(p.roster, NULL, NULL, U1 "/bot",
                                             "dnd", "busy", 1),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 2);
  assert_int_equal(count(&o, "available", "fan@localhost", U1 "/bot"), 1);
  assert_int_equal(count(&o, "available", "pal@localhost", U1 "/bot"), 1);
  assert_string_equal(kith_stanza_child_text(o.st[0], "show", NULL), "dnd");
  out_free(&o);

  /* Directed presence goes where it is sent, and is not stored. */
  assert_int_equal(kith_roster_send_presence(p.roster, "idol@localhost/r", NULL,
                                             U1, NULL, NULL, 0),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_int_equal(count(&o, "available", "idol@localhost/r", U1), 1);
  out_free(&o);

  /* 'from' must be an owner. */
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, NULL, NULL, NULL, 0),
      KITH_EINVAL);
  assert_int_equal(kith_roster_send_presence(p.roster, NULL, NULL,
                                             "user9@bot.localhost", NULL, NULL,
                                             0),
                   KITH_ENOTFOUND);
  assert_int_equal(kith_roster_send_subscription(p.roster, "a@localhost",
                                                 "subscribe", NULL, NULL),
                   KITH_EINVAL);
  assert_int_equal(kith_roster_send_subscription(p.roster, "a@localhost",
                                                 "subscribe", NULL,
                                                 "user9@bot.localhost"),
                   KITH_ENOTFOUND);

  /* Shutdown: "every owner goes offline" tells every subscriber. */
  kith_roster_send_presence(p.roster, NULL, "unavailable", NULL, NULL, NULL, 0);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 2);
  assert_int_equal(count(&o, "unavailable", "fan@localhost", U1 "/bot"), 1);
  assert_int_equal(count(&o, "unavailable", "pal@localhost", U1 "/bot"), 1);
  out_free(&o);
  comp_close(&p);
}

/* ---- Session start and stop ------------------------------------------- */

static void test_start_probes_and_detach_says_goodbye(void **state)
{
  peer_t p;
  out_t o;

  (void)state;
  comp_new(&p, "bot.localhost");
  add_contacts(&p);
  set_item(&p, U2, "pal@localhost", KITH_ROSTER_TO | KITH_ROSTER_FROM);
  set_item(&p, U2, "idol@localhost", KITH_ROSTER_PENDING_OUT);
  /* Before the session: stored, broadcast at session start. */
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, U1 "/bot", NULL, "hi", 0),
      KITH_OK);
  comp_ready(&p);
  pump(&p);
  take(&p, &o);
  /* Probes to to/both contacts, from each owner... */
  assert_int_equal(count(&o, "probe", NULL, NULL), 3);
  assert_int_equal(count(&o, "probe", "idol@localhost", U1), 1);
  assert_int_equal(count(&o, "probe", "pal@localhost", U1), 1);
  assert_int_equal(count(&o, "probe", "pal@localhost", U2), 1);
  /* ... and U1's presence to its from/both contacts (U2 has none). */
  assert_int_equal(count(&o, "available", NULL, NULL), 2);
  assert_int_equal(count(&o, "available", "fan@localhost", U1 "/bot"), 1);
  assert_int_equal(count(&o, "available", "pal@localhost", U1 "/bot"), 1);
  assert_int_equal(o.n, 5);
  out_free(&o);

  /* The contacts answer the probes: tracked per owner. */
  say(&p, "<presence from='pal@localhost/home' to='" U1 "'/>");
  say(&p, "<presence from='pal@localhost/home' to='" U2 "'>"
          "<show>xa</show></presence>");
  say(&p, "<presence from='fan@localhost/home' to='" U1 "'/>");
  assert_string_equal(
      kith_roster_item_best_resource(item(&p, U1, "pal@localhost")), "home");
  assert_string_equal(
      kith_roster_item_best_resource(item(&p, U2, "pal@localhost")), "home");
  /* fan is no `to` contact of U1: reported, not tracked. */
  assert_int_equal(
      kith_roster_item_resource_count(item(&p, U1, "fan@localhost")), 0);
  assert_int_equal(p.n[KITH_EVENT_GOT_ONLINE], 2);
  say(&p, "<presence from='pal@localhost/home' to='" U2 "'>"
          "<show>away</show></presence>");
  assert_int_equal(p.n[KITH_EVENT_CHANGED_STATUS], 1);
  say(&p, "<presence from='pal@localhost/home' to='" U1 "' "
          "type='unavailable'/>");
  assert_int_equal(p.n[KITH_EVENT_GOT_OFFLINE], 1);
  assert_int_equal(
      kith_roster_item_resource_count(item(&p, U2, "pal@localhost")), 1);

  /* Detaching from a live session: every subscriber hears we left. */
  take(&p, &o);
  out_free(&o);
  kith_roster_detach(p.roster);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 2);
  assert_int_equal(count(&o, "unavailable", "fan@localhost", U1 "/bot"), 1);
  assert_int_equal(count(&o, "unavailable", "pal@localhost", U1 "/bot"), 1);
  out_free(&o);
  comp_close(&p);
}

/* A new session on the same connection and roster: the owners' presence
 * and the pending requests survive; probes and presence go out again. */
static void test_reconnect_announces_again(void **state)
{
  peer_t p;
  out_t o;

  (void)state;
  comp_new(&p, "bot.localhost");
  add_contacts(&p);
  kith_roster_set_auto_authorize(p.roster, KITH_AUTHORIZE_MANUAL);
  comp_ready(&p);
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, U1 "/bot", "xa", NULL, 0),
      KITH_OK);
  say(&p, "<presence from='pal@localhost/h' to='" U1 "'/>");
  say(&p, "<presence from='eve@localhost' to='" U1 "' type='subscribe'/>");
  say(&p, "</stream:stream>");
  assert_int_equal(p.n[KITH_EVENT_DISCONNECTED], 1);
  assert_int_equal(p.n[KITH_EVENT_PRESENCE_RESET], 1);
  assert_int_equal(
      kith_roster_item_resource_count(item(&p, U1, "pal@localhost")), 0);

  close(p.fd);
  peer_adopt(&p);
  comp_ready(&p);
  take(&p, &o);
  assert_int_equal(count(&o, "probe", NULL, U1), 2);
  assert_int_equal(count(&o, "available", NULL, U1 "/bot"), 2);
  assert_int_equal(o.n, 4);
  out_free(&o);
  /* eve's request is still pending: a repeat is not delivered again. */
  forget(&p);
  say(&p, "<presence from='eve@localhost' to='" U1 "' type='subscribe'/>");
  assert_int_equal(p.n[KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST], 0);
  assert_int_equal(kith_roster_send_subscription(p.roster, "eve@localhost",
                                                 "subscribed", NULL, U1),
                   KITH_OK);
  assert_int_equal(flags(&p, U1, "eve@localhost"), KITH_ROSTER_FROM);
  comp_close(&p);
}

/* ---- Outbound --------------------------------------------------------- */

static void test_outbound_and_preapproval(void **state)
{
  peer_t p;
  out_t o;

  (void)state;
  comp_new(&p, "bot.localhost");
  add_contacts(&p);
  comp_ready(&p);
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, U1 "/bot", NULL, NULL, 0),
      KITH_OK);
  pump(&p);
  take(&p, &o);
  out_free(&o);

  /* Pre-approval of a stranger: an item with `approved`, nothing routed. */
  forget(&p);
  assert_int_equal(kith_roster_send_subscription(p.roster, "new@localhost",
                                                 "subscribed", NULL, U1),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 0);
  out_free(&o);
  assert_int_equal(flags(&p, U1, "new@localhost"), KITH_ROSTER_APPROVED);
  assert_true(logged(&p, "roster_update new@localhost>" U1 " item"));
  /* Its request is approved by the server, not delivered. */
  kith_roster_set_auto_authorize(p.roster, KITH_AUTHORIZE_MANUAL);
  say(&p, "<presence from='new@localhost' to='" U1 "' type='subscribe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 2);
  assert_int_equal(count(&o, "subscribed", "new@localhost", U1), 1);
  assert_int_equal(count(&o, "available", "new@localhost", U1 "/bot"), 1);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST], 0);
  assert_int_equal(flags(&p, U1, "new@localhost"), KITH_ROSTER_FROM);
  out_free(&o);

  /* Cancelling a pre-approval routes nothing either. */
  assert_int_equal(kith_roster_send_subscription(p.roster, "idol@localhost",
                                                 "subscribed", NULL, U1),
                   KITH_OK);
  assert_int_equal(flags(&p, U1, "idol@localhost"),
                   KITH_ROSTER_TO | KITH_ROSTER_APPROVED);
  assert_int_equal(kith_roster_send_subscription(p.roster, "idol@localhost",
                                                 "unsubscribed", NULL, U1),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 0);
  out_free(&o);
  assert_int_equal(flags(&p, U1, "idol@localhost"), KITH_ROSTER_TO);

  /* Revoking a subscriber: unavailable goes BEFORE 'unsubscribed'. */
  assert_int_equal(kith_roster_send_subscription(p.roster, "pal@localhost",
                                                 "unsubscribed", NULL, U1),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 2);
  assert_int_equal(index_of(&o, "unavailable"), 0);
  assert_int_equal(index_of(&o, "unsubscribed"), 1);
  assert_string_equal(kith_stanza_from(o.st[1]), U1);
  assert_int_equal(flags(&p, U1, "pal@localhost"), KITH_ROSTER_TO);
  out_free(&o);

  /* Unsubscribing: routed, and the contact's resources are forgotten. */
  say(&p, "<presence from='pal@localhost/r' to='" U1 "'/>");
  assert_int_equal(kith_roster_send_subscription(p.roster, "pal@localhost",
                                                 "unsubscribe", NULL,
                                                 U1 "/bot"),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_int_equal(count(&o, "unsubscribe", "pal@localhost", U1), 1);
  assert_int_equal(flags(&p, U1, "pal@localhost"), 0);
  assert_int_equal(
      kith_roster_item_resource_count(item(&p, U1, "pal@localhost")), 0);
  out_free(&o);

  /* Subscribing to a stranger creates its item (3.1.2), with a nick. */
  assert_int_equal(kith_roster_send_subscription(p.roster, "far@remote.example",
                                                 "subscribe", "Bot", U1),
                   KITH_OK);
  pump(&p);
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_string_equal(kith_stanza_child_text(o.st[0], "nick",
                                             "http://jabber.org/protocol/nick"),
                      "Bot");
  assert_int_equal(flags(&p, U1, "far@remote.example"),
                   KITH_ROSTER_PENDING_OUT);
  out_free(&o);
  /* 'subscribed' to a subscriber is ignored: nothing routed. */
  assert_int_equal(kith_roster_send_subscription(p.roster, "fan@localhost",
                                                 "subscribed", NULL, U1),
                   KITH_OK);
  pump(&p);
  assert_int_equal(p.gotlen, 0);
  /* Oneself is no contact. */
  assert_int_equal(
      kith_roster_send_subscription(p.roster, U1, "subscribe", NULL, U1),
      KITH_EINVAL);
  comp_close(&p);
}

/* ---- Two owners ------------------------------------------------------- */

static void test_two_owners_one_contact(void **state)
{
  peer_t p;
  out_t o;

  (void)state;
  comp_new(&p, "bot.localhost");
  set_item(&p, U1, "pal@localhost", KITH_ROSTER_FROM | KITH_ROSTER_TO);
  set_item(&p, U2, "pal@localhost", KITH_ROSTER_PENDING_OUT);
  comp_ready(&p);
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, U1, NULL, NULL, 0),
      KITH_OK);
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, U2, NULL, NULL, 0),
      KITH_OK);
  pump(&p);
  take(&p, &o);
  /* Only U1 has pal as a subscriber. */
  assert_int_equal(o.n, 2); /* the start-up probe, and U1's presence */
  assert_int_equal(count(&o, "probe", "pal@localhost", U1), 1);
  assert_int_equal(count(&o, "available", "pal@localhost", U1), 1);
  assert_int_equal(count(&o, "available", "pal@localhost", U2), 0);
  out_free(&o);

  /* pal approves U2's request: only U2 changes. */
  forget(&p);
  say(&p, "<presence from='pal@localhost' to='" U2 "' type='subscribed'/>");
  assert_int_equal(flags(&p, U2, "pal@localhost"), KITH_ROSTER_TO);
  assert_int_equal(flags(&p, U1, "pal@localhost"),
                   KITH_ROSTER_FROM | KITH_ROSTER_TO);
  assert_true(logged(&p, "roster_subscription_authorized pal@localhost>" U2));
  assert_false(logged(&p, ">" U1));

  /* pal probes both: U1 answers with presence, U2 with 'unsubscribed'. */
  say(&p, "<presence from='pal@localhost' to='" U1 "' type='probe'/>");
  say(&p, "<presence from='pal@localhost' to='" U2 "' type='probe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 2);
  assert_int_equal(count(&o, "available", "pal@localhost", U1), 1);
  assert_int_equal(count(&o, "unsubscribed", "pal@localhost", U2), 1);
  out_free(&o);

  /* pal unsubscribes from U1: U1's answers come from U1 only. */
  say(&p, "<presence from='pal@localhost' to='" U1 "' type='unsubscribe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 2);
  assert_int_equal(count(&o, "unavailable", "pal@localhost", U1), 1);
  assert_int_equal(count(&o, "unsubscribed", "pal@localhost", U1), 1);
  assert_int_equal(flags(&p, U1, "pal@localhost"), KITH_ROSTER_TO);
  assert_int_equal(flags(&p, U2, "pal@localhost"), KITH_ROSTER_TO);
  out_free(&o);
  comp_close(&p);
}

/* ---- Two agents ------------------------------------------------------- */

/*
 * The router between two components: every stanza one sends is written,
 * as sent, into the other's stream (a server routes to a component
 * without applying roster rules: the component is the server for its
 * JIDs). Counts the stanzas by type.
 */
typedef struct route {
  peer_t *c[2];
  int stanzas, subscribes, subscribed, presences;
} route_t;

static int route_from(route_t *r, int i)
{
  peer_t *p = r->c[i];
  out_t o;
  int k, n;

  take(p, &o);
  n = o.n;
  for (k = 0; k < o.n; k++) {
    const char *type = kith_stanza_type(o.st[k]);
    assert_non_null(strstr(kith_stanza_to(o.st[k]), r->c[1 - i]->domain));
    r->subscribes += type && strcmp(type, "subscribe") == 0;
    r->subscribed += type && strcmp(type, "subscribed") == 0;
    r->presences += type == NULL;
    say(r->c[1 - i], o.raw[k]);
  }
  out_free(&o);
  r->stanzas += n;
  return n;
}

static int settle(route_t *r)
{
  int rounds;

  for (rounds = 0; rounds < 20; rounds++)
    if (route_from(r, 0) + route_from(r, 1) == 0)
      break;
  return rounds;
}

static void agents_open(peer_t *a, peer_t *b, route_t *r)
{
  memset(r, 0, sizeof(*r));
  comp_new(a, "a.localhost");
  comp_new(b, "b.localhost");
  assert_int_equal(kith_roster_add_node(a->roster, "u@a.localhost", NULL),
                   KITH_OK);
  assert_int_equal(kith_roster_add_node(b->roster, "u@b.localhost", NULL),
                   KITH_OK);
  comp_ready(a);
  comp_ready(b);
  assert_int_equal(kith_roster_send_presence(a->roster, NULL, NULL,
                                             "u@a.localhost/r", NULL, NULL, 0),
                   KITH_OK);
  assert_int_equal(kith_roster_send_presence(b->roster, NULL, NULL,
                                             "u@b.localhost/r", NULL, NULL, 0),
                   KITH_OK);
  r->c[0] = a;
  r->c[1] = b;
  pump(a);
  pump(b);
  assert_int_equal(a->gotlen + b->gotlen, 0); /* nobody subscribed yet */
}

static void assert_both(peer_t *a, peer_t *b)
{
  assert_int_equal(
      kith_roster_item_sub(item(a, "u@a.localhost", "u@b.localhost")),
      KITH_SUB_BOTH);
  assert_int_equal(
      kith_roster_item_sub(item(b, "u@b.localhost", "u@a.localhost")),
      KITH_SUB_BOTH);
  /* Each sees the other online, once. */
  assert_string_equal(
      kith_roster_item_best_resource(item(a, "u@a.localhost", "u@b.localhost")),
      "r");
  assert_string_equal(
      kith_roster_item_best_resource(item(b, "u@b.localhost", "u@a.localhost")),
      "r");
  assert_int_equal(a->n[KITH_EVENT_GOT_ONLINE], 1);
  assert_int_equal(b->n[KITH_EVENT_GOT_ONLINE], 1);
}

/* Both agents ask at the same moment: each request meets the other's
 * pending one, each side approves once, nobody asks twice. */
static void test_two_agents_simultaneous(void **state)
{
  peer_t a, b;
  route_t r;

  (void)state;
  agents_open(&a, &b, &r);
  forget(&a);
  forget(&b);
  assert_int_equal(kith_roster_send_subscription(a.roster, "u@b.localhost",
                                                 "subscribe", NULL,
                                                 "u@a.localhost"),
                   KITH_OK);
  assert_int_equal(kith_roster_send_subscription(b.roster, "u@a.localhost",
                                                 "subscribe", NULL,
                                                 "u@b.localhost"),
                   KITH_OK);
  pump(&a);
  pump(&b);
  /* Round 1: the two requests; round 2: each approves and sends its
   * presence; round 3 moves nothing. */
  assert_int_equal(settle(&r), 2);
  assert_int_equal(r.stanzas, 6);
  assert_int_equal(r.subscribes, 2);
  assert_int_equal(r.subscribed, 2);
  assert_int_equal(r.presences, 2);
  assert_both(&a, &b);
  comp_close(&a);
  comp_close(&b);
}

/* One agent asks; the other accepts and asks back by auto-subscribe. */
static void test_two_agents_one_asks(void **state)
{
  peer_t a, b;
  route_t r;

  (void)state;
  agents_open(&a, &b, &r);
  forget(&a);
  forget(&b);
  assert_int_equal(kith_roster_send_subscription(a.roster, "u@b.localhost",
                                                 "subscribe", NULL,
                                                 "u@a.localhost"),
                   KITH_OK);
  pump(&a);
  /* a: subscribe; b: subscribed, presence, subscribe; a: subscribed,
   * presence. Then quiet. */
  assert_int_equal(settle(&r), 2);
  assert_int_equal(r.stanzas, 6);
  assert_int_equal(r.subscribes, 2);
  assert_int_equal(r.subscribed, 2);
  assert_int_equal(r.presences, 2);
  assert_both(&a, &b);
  comp_close(&a);
  comp_close(&b);
}

/*
 * A kith client (alice@localhost) and a kith component (u@a.localhost)
 * through a server that plays alice's side of RFC 6121: it applies the
 * table to its own item for u@a.localhost (OUTBOUND for what alice sends,
 * INBOUND for what the component sends her), pushes roster changes to
 * alice, delivers what the table delivers, answers probes, and routes
 * everything else as it is. The component is the server for its side.
 */
typedef struct mixed {
  peer_t *cl, *co;
  unsigned sflags; /* the server's item of alice for u@a.localhost */
  int online;      /* alice sent her available presence */
  int from_client, from_component, pushes, delivered;
} mixed_t;

#define ALICE "alice@localhost"
#define UA "u@a.localhost"

static void mixed_push(mixed_t *m)
{
  unsigned f = m->sflags;

  sayf(m->cl,
       "<iq type='set' id='push%d'><query xmlns='jabber:iq:roster'>"
       "<item jid='" UA "' subscription='%s'%s/></query></iq>",
       m->pushes++, kith_sub_name(kith__sub_of(f)),
       (f & KITH_ROSTER_PENDING_OUT) ? " ask='subscribe'" : "");
}

static void alice_presence_to_component(mixed_t *m)
{
  say(m->co, "<presence from='" ALICE "/r1' to='" UA "'/>");
}

/* Alice's server routes a subscription stanza she sent (or that it sends
 * for her, an auto-reply). */
static void mixed_out(mixed_t *m, kith__ptype_t type)
{
  kith__sub_result_t r;

  kith__sub_apply(KITH__SUB_OUTBOUND, type, m->sflags, 1, &r);
  m->sflags = r.flags;
  if (r.push)
    mixed_push(m);
  if (!r.deliver)
    return;
  sayf(m->co, "<presence from='" ALICE "' to='" UA "' type='%s'/>",
       kith__sub_ptype_name(type));
  /* After the stanza, as RFC 6121 3.1.5 orders it. */
  if ((r.actions & KITH__SUB_A_SEND_PRESENCE) && m->online)
    alice_presence_to_component(m);
}

static int mixed_from_client(mixed_t *m)
{
  out_t o;
  int k, n;

  take(m->cl, &o);
  n = o.n;
  for (k = 0; k < o.n; k++) {
    const kith_stanza_t *st = o.st[k];
    const char *name = kith_stanza_name(st), *type = kith_stanza_type(st);

    if (strcmp(name, "iq") == 0 && type && strcmp(type, "get") == 0) {
      sayf(m->cl,
           "<iq type='result' id='%s'><query xmlns='jabber:iq:roster'/>"
           "</iq>",
           kith_stanza_id(st));
    } else if (strcmp(name, "presence") == 0 && type == NULL &&
               kith_stanza_to(st) == NULL) {
      m->online = 1;
      if (m->sflags & KITH_ROSTER_FROM)
        alice_presence_to_component(m);
    } else if (strcmp(name, "presence") == 0 &&
               kith__sub_ptype(type) != KITH__PT_COUNT) {
      mixed_out(m, kith__sub_ptype(type));
    }
  }
  out_free(&o);
  m->from_client += n;
  return n;
}

/* What the component sends to alice, through her server. */
static void mixed_in(mixed_t *m, const kith_stanza_t *st, const char *raw)
{
  const char *type = kith_stanza_type(st);
  kith__ptype_t pt = kith__sub_ptype(type);
  kith__sub_result_t r;

  assert_string_equal(kith_stanza_to(st), ALICE);
  if (type && strcmp(type, "probe") == 0) {
    if ((m->sflags & KITH_ROSTER_FROM) && m->online)
      alice_presence_to_component(m);
    else if (!(m->sflags & KITH_ROSTER_FROM))
      say(m->co,
          "<presence from='" ALICE "' to='" UA "' type='unsubscribed'/>");
    return;
  }
  if (pt == KITH__PT_COUNT) { /* presence: delivered as it is */
    say(m->cl, raw);
    return;
  }
  kith__sub_apply(KITH__SUB_INBOUND, pt, m->sflags, 1, &r);
  m->sflags = r.flags;
  if (r.push)
    mixed_push(m);
  if (r.deliver) {
    m->delivered++;
    say(m->cl, raw);
  }
  if (r.actions & KITH__SUB_A_REPLY_SUBSCRIBED)
    mixed_out(m, KITH__PT_SUBSCRIBED);
}

static int mixed_from_component(mixed_t *m)
{
  out_t o;
  int k, n;

  take(m->co, &o);
  n = o.n;
  for (k = 0; k < o.n; k++)
    mixed_in(m, o.st[k], o.raw[k]);
  out_free(&o);
  m->from_component += n;
  return n;
}

static void client_open(peer_t *p)
{
  const char *fx =
      "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>";
  kith_stanza_t *f = NULL;

  memset(p, 0, sizeof(*p));
  p->client = 1;
  p->domain = "localhost";
  assert_int_equal(kith_conn_new(NULL, &p->conn), KITH_OK);
  assert_int_equal(kith_conn_set_jid(p->conn, ALICE), KITH_OK);
  assert_int_equal(kith_conn_set_password(p->conn, "pw"), KITH_OK);
  assert_true(kith_conn_on(p->conn, KITH_EVENT_ANY, on_event, p) > 0);
  assert_int_equal(kith_roster_new(NULL, &p->roster), KITH_OK);
  assert_int_equal(kith_roster_attach(p->roster, p->conn), KITH_OK);
  peer_adopt(p);
  say(p, CLIENT_HEADER);
  forget(p);
  assert_int_equal(kith_stanza_parse(NULL, fx, strlen(fx), &f), KITH_OK);
  assert_int_equal(kith__conn_test_ready(p->conn, ALICE "/r1", f), KITH_OK);
  kith_stanza_free(f);
  p->ready = 1;
  pump(p);
}

static void test_client_and_component_settle(void **state)
{
  peer_t cl, co;
  mixed_t m;
  int rounds;

  (void)state;
  memset(&m, 0, sizeof(m));
  comp_new(&co, "a.localhost");
  assert_int_equal(kith_roster_add_node(co.roster, UA, NULL), KITH_OK);
  comp_ready(&co);
  assert_int_equal(
      kith_roster_send_presence(co.roster, NULL, NULL, UA "/r", NULL, NULL, 0),
      KITH_OK);
  client_open(&cl);
  m.cl = &cl;
  m.co = &co;
  mixed_from_client(&m); /* the roster get */
  mixed_from_client(&m); /* the initial presence */
  assert_true(m.online);
  forget(&cl);
  forget(&co);
  m.from_client = m.from_component = m.pushes = m.delivered = 0;

  assert_int_equal(
      kith_roster_send_subscription(cl.roster, UA, "subscribe", NULL, NULL),
      KITH_OK);
  pump(&cl);
  for (rounds = 0; rounds < 20; rounds++)
    if (mixed_from_client(&m) + mixed_from_component(&m) == 0)
      break;
  /*
   * Round 1: alice's subscribe (pushed to her as ask, delivered to the
   * component); the component approves, shows its presence and asks
   * back. Round 2: alice acknowledges two pushes and approves (pushed,
   * delivered with her presence); the component has both. Round 3:
   * alice acknowledges the last push. Round 4 moves nothing.
   */
  assert_int_equal(rounds, 3);
  assert_int_equal(m.from_component, 3); /* subscribed, presence, subscribe */
  assert_int_equal(m.from_client, 5);    /* subscribe, subscribed, 3 acks */
  assert_int_equal(m.pushes, 3);
  assert_int_equal(kith__sub_of(m.sflags), KITH_SUB_BOTH);
  assert_int_equal(kith_roster_item_sub(
                       kith_roster_node_item(kith_roster_self(cl.roster), UA)),
                   KITH_SUB_BOTH);
  assert_int_equal(kith_roster_item_sub(item(&co, UA, ALICE)), KITH_SUB_BOTH);
  /* Each sees the other online. */
  assert_string_equal(kith_roster_item_best_resource(kith_roster_node_item(
                          kith_roster_self(cl.roster), UA)),
                      "r");
  assert_string_equal(kith_roster_item_best_resource(item(&co, UA, ALICE)),
                      "r1");
  comp_close(&co);
  comp_close(&cl);
}

/* ---- Failing allocator ------------------------------------------------ */

/* Everything component mode does, on a context whose Nth allocation
 * fails (failing_alloc.h), with no assertions on the outcome: a failed
 * allocation may lose a stanza, but must not crash or leak. */
static void scripted_session(kith_ctx_t *ctx)
{
  kith_roster_node_t *n = NULL;
  kith_roster_item_t *it = NULL;
  peer_t p;

  memset(&p, 0, sizeof(p));
  p.fd = -1; /* no socket until the connection adopts one */
  p.domain = "bot.localhost";
  assert_int_equal(kith_conn_new(NULL, &p.conn), KITH_OK);
  assert_int_equal(kith_conn_set_server(p.conn, "127.0.0.1", 5347), KITH_OK);
  assert_int_equal(kith_conn_set_component(p.conn, "bot.localhost", "s"),
                   KITH_OK);
  if (kith_roster_new(ctx, &p.roster) != KITH_OK)
    goto no_roster;
  if (kith_roster_add_node(p.roster, U1, &n) == KITH_OK &&
      kith__roster_item_upsert(n, "pal@localhost", NULL, NULL, 0, &it, NULL) ==
          KITH_OK)
    kith__roster_item_set_flags(it, KITH_ROSTER_FROM | KITH_ROSTER_TO);
  kith_roster_send_presence(p.roster, NULL, NULL, U1 "/bot", NULL, NULL, 0);
  if (kith_roster_attach(p.roster, p.conn) != KITH_OK)
    goto out;
  kith_roster_send_presence(p.roster, NULL, NULL, U1 "/bot", "away", "x", 1);
  peer_adopt(&p);
  say(&p, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' id='s1' "
          "from='bot.localhost'>");
  say(&p, "<handshake/>");
  say(&p, "<presence from='pal@localhost/h' to='" U1 "'/>");
  say(&p, "<presence from='pal@localhost' to='" U1 "' type='probe'/>");
  say(&p, "<presence from='eve@localhost' to='" U1 "' type='subscribe'/>");
  say(&p, "<presence from='eve@localhost' to='" U1 "' type='subscribed'/>");
  say(&p, "<presence from='x@localhost' to='" U1 "' type='subscribe'/>");
  say(&p, "<presence from='x@localhost' to='" U1 "' type='probe'/>");
  say(&p, "<presence from='pal@localhost' to='" U1 "' type='unsubscribe'/>");
  kith_roster_send_subscription(p.roster, "new@localhost", "subscribed", NULL,
                                U1);
  kith_roster_send_subscription(p.roster, "far@localhost", "subscribe", "B",
                                U1);
  kith_roster_send_presence(p.roster, NULL, "unavailable", U1, NULL, "bye", 0);
  say(&p, "<presence from='pal@localhost' to='" U1 "' type='probe'/>");
  kith_roster_send_presence(p.roster, NULL, NULL, U1 "/bot", NULL, NULL, 0);
  kith_roster_detach(p.roster);
  say(&p, "</stream:stream>");
out:
  kith_roster_free(p.roster);
no_roster:
  kith_conn_free(p.conn);
  if (p.fd >= 0)
    close(p.fd);
}

static void test_failing_allocator(void **state)
{
  (void)state;
  fail_each_allocation(scripted_session);
}

/* ---- The store ---------------------------------------------------------- */

#define X "x@evil.example"
#define Y "y@evil.example"

static void test_store_restart_keeps_subscriptions(void **state)
{
  spy_t spy;
  peer_t p;
  out_t o;

  (void)state;
  g_store = spy_open(&spy);
  assert_non_null(g_store);
  comp_new(&p, "bot.localhost");
  kith_roster_set_auto_authorize(p.roster, KITH_AUTHORIZE_MANUAL);
  assert_int_equal(kith_roster_add_node(p.roster, U1, NULL), KITH_OK);
  assert_string_equal(spy.log, U1 ": KNOWN\n");
  comp_ready(&p);
  spy_forget(&spy);

  /* Two requests wait (manual policy); strangers are stored apart from
   * items, each with the stanza that made it. */
  say(&p, "<presence from='" X "' to='" U1 "' type='subscribe'/>");
  say(&p, "<presence from='" Y "' to='" U1 "' type='subscribe'/>");
  assert_string_equal(spy.log, U1 ": PUT " X "=516\n" U1 ": PUT " Y "=516\n");
  assert_int_equal(kith_roster_node_size(node(&p, U1)), 0);
  /* The owner accepts x: an item replaces the stranger row. */
  spy_forget(&spy);
  assert_int_equal(
      kith_roster_send_subscription(p.roster, X, "subscribed", NULL, U1),
      KITH_OK);
  assert_string_equal(spy.log, U1 ": PUT " X "=1\n");
  pump(&p);
  comp_close(&p);

  /* A restarted component loads the node on first use: x is still a
   * subscriber (its probe is answered), y's request is still pending and
   * its repeat is no new request. */
  comp_new(&p, "bot.localhost");
  kith_roster_set_auto_authorize(p.roster, KITH_AUTHORIZE_MANUAL);
  comp_ready(&p);
  forget(&p);
  say(&p, "<presence from='" X "/r' to='" U1 "' type='probe'/>");
  take(&p, &o);
  assert_int_equal(o.n, 1);
  assert_int_equal(count(&o, "unavailable", X "/r", U1), 1);
  out_free(&o);
  assert_int_equal(flags(&p, U1, X), KITH_ROSTER_FROM);
  say(&p, "<presence from='" Y "' to='" U1 "' type='subscribe'/>");
  assert_int_equal(p.n[KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST], 0);
  /* Approving y after the restart completes its handshake. */
  spy_forget(&spy);
  assert_int_equal(
      kith_roster_send_subscription(p.roster, Y, "subscribed", NULL, U1),
      KITH_OK);
  assert_string_equal(spy.log, U1 ": PUT " Y "=1\n");
  pump(&p);
  take(&p, &o);
  assert_int_equal(count(&o, "subscribed", Y, U1), 1);
  out_free(&o);
  comp_close(&p);
  kith_store_close(g_store);
  g_store = NULL;
  spy_done(&spy);
}

static void test_store_memory_limit_evicts_idle_nodes(void **state)
{
  char owner[64];
  spy_t spy;
  peer_t p;
  out_t o;
  int i;

  (void)state;
  g_store = spy_open(&spy);
  comp_new(&p, "bot.localhost");
  comp_ready(&p);
  for (i = 0; i < 200; i++) {
    snprintf(owner, sizeof(owner), "u%d@bot.localhost", i);
    set_item(&p, owner, "fan@localhost", KITH_ROSTER_FROM);
  }
  assert_int_equal(kith_roster_node_count(p.roster), 200);
  /* A bound of about 20 nodes: the least recently used go. */
  kith_roster_set_memory_limit(
      p.roster, 20 * kith__roster_node_bytes(node(&p, "u0@bot.localhost")));
  assert_true(kith_roster_node_count(p.roster) <= 20);
  assert_true(kith_roster_node_count(p.roster) >= 10);
  assert_true(kith_roster_memory(p.roster) <=
              20 * kith__roster_node_bytes(node(&p, "u199@bot.localhost")));
  /* A contact online pins its node. */
  set_item(&p, "u199@bot.localhost", "idol@localhost", KITH_ROSTER_TO);
  forget(&p);
  say(&p, "<presence from='idol@localhost/a' to='u199@bot.localhost'/>");
  assert_int_equal(p.n[KITH_EVENT_GOT_ONLINE], 1);
  for (i = 0; i < 100; i++) {
    snprintf(owner, sizeof(owner), "u%d@bot.localhost", i);
    sayf(&p, "<presence from='fan@localhost/a' to='%s' type='probe'/>", owner);
  }
  /* Each stanza's handling ended with the bound kept. (take() below looks
   * every sender up, which loads them all again: lookups alone never
   * evict, so pointers stay valid until a change or stanza ends.) */
  assert_true(kith_roster_node_count(p.roster) <= 21);
  take(&p, &o);
  /* take() looked every sender up: lookups load but never evict; a trim
   * applies the bound on request. */
  assert_true(kith_roster_node_count(p.roster) > 21);
  kith_roster_trim(p.roster);
  assert_true(kith_roster_node_count(p.roster) <= 21);
  assert_int_equal(o.n, 100); /* every evicted owner came back to answer */
  assert_int_equal(count(&o, "unavailable", "fan@localhost/a", NULL), 100);
  out_free(&o);
  assert_non_null(kith__roster_node_resident(p.roster, "u199@bot.localhost"));
  assert_int_equal(flags(&p, "u5@bot.localhost", "fan@localhost"),
                   KITH_ROSTER_FROM);
  comp_close(&p);
  kith_store_close(g_store);
  g_store = NULL;
  spy_done(&spy);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_inbound_table),
      cmocka_unit_test(test_inbound_key_rows),
      cmocka_unit_test(test_policies_per_node),
      cmocka_unit_test(test_strangers_create_nothing),
      cmocka_unit_test(test_probes),
      cmocka_unit_test(test_broadcast_only_to_subscribers),
      cmocka_unit_test(test_start_probes_and_detach_says_goodbye),
      cmocka_unit_test(test_reconnect_announces_again),
      cmocka_unit_test(test_outbound_and_preapproval),
      cmocka_unit_test(test_two_owners_one_contact),
      cmocka_unit_test(test_two_agents_simultaneous),
      cmocka_unit_test(test_two_agents_one_asks),
      cmocka_unit_test(test_client_and_component_settle),
      cmocka_unit_test(test_failing_allocator),
      cmocka_unit_test(test_store_restart_keeps_subscriptions),
      cmocka_unit_test(test_store_memory_limit_evicts_idle_nodes),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests: the client side of kith_roster_attach() (src/roster/sync.c,
 * src/roster/presence.c) against a scripted server on a socketpair.
 *
 * Each test gets a ready client session without TLS or SASL
 * (kith__conn_test_ready()), plays the server by writing stanzas into the
 * socket, and reads back what kith sent. The last test relays between
 * two such clients as a server would, to show two auto-subscribing bots
 * settle in `both` without looping.
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

/* When set, peer_open_as() keeps the roster in this store. */
static kith_store_t *g_store;

#define FEATURES_OPEN                                                          \
  "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
#define F_VER "<ver xmlns='urn:xmpp:features:rosterver'/>"
#define F_PRE "<sub xmlns='urn:xmpp:features:pre-approval'/>"

typedef struct peer {
  kith_conn_t *conn;
  kith_roster_t *roster;
  int fd; /* the scripted server's end */
  char got[65536];
  size_t gotlen;
  int n[KITH_EVENT_COUNT_]; /* events seen, per type */
  char log[32768];          /* one line per roster event */
  size_t loglen;
  int cb_calls;
  kith_status_t cb_status;
} peer_t;

#define SCRIPT_PEER_EVENT_LOG
#include "script_peer.h"

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  peer_t *p = ud;

  (void)conn;
  if (!count_event(p, ev))
    return;
  log_line(p, "%s %s %s%s%s%s\n", kith_event_name(ev->type),
           ev->jid ? ev->jid : "-", ev->item ? "item" : "noitem",
           ev->removed ? " removed" : "", ev->nick ? " nick=" : "",
           ev->nick ? ev->nick : "");
}

static void forget(peer_t *p)
{
  forget_sent(p);
  forget_events(p);
}

/* A ready client session as `jid` with the given stream features. */
static void peer_open_as(peer_t *p, const char *jid, const char *features)
{
  char fx[512], acct[128];
  kith_stanza_t *f = NULL;

  memset(p, 0, sizeof(*p));
  snprintf(acct, sizeof(acct), "%.*s", (int)strcspn(jid, "/"), jid);
  assert_int_equal(kith_conn_new(NULL, &p->conn), KITH_OK);
  assert_int_equal(kith_conn_set_jid(p->conn, acct), KITH_OK);
  assert_int_equal(kith_conn_set_password(p->conn, "pw"), KITH_OK);
  assert_true(kith_conn_on(p->conn, KITH_EVENT_ANY, on_event, p) > 0);
  assert_int_equal(kith_roster_new(NULL, &p->roster), KITH_OK);
  if (g_store)
    assert_int_equal(kith_roster_set_store(p->roster, g_store), KITH_OK);
  assert_int_equal(kith_roster_attach(p->roster, p->conn), KITH_OK);
  assert_int_equal(kith_roster_attach(p->roster, p->conn), KITH_EEXIST);
  peer_adopt(p);
  say(p, CLIENT_HEADER);
  forget(p);
  snprintf(fx, sizeof(fx), FEATURES_OPEN "%s</stream:features>", features);
  assert_int_equal(kith_stanza_parse(NULL, fx, strlen(fx), &f), KITH_OK);
  assert_int_equal(kith__conn_test_ready(p->conn, jid, f), KITH_OK);
  kith_stanza_free(f);
  pump(p);
}

static void peer_open(peer_t *p, const char *features)
{
  peer_open_as(p, "alice@localhost/r1", features);
}

static void peer_close(peer_t *p)
{
  /* The roster first: detaching removes its handlers from the conn. */
  kith_roster_free(p->roster);
  kith_conn_free(p->conn);
  close(p->fd);
}

/* Answer the pending roster get with `items` (and `ver` unless NULL). */
static void serve_roster(peer_t *p, const char *ver, const char *items)
{
  char id[64];

  snprintf(id, sizeof(id), "%s", iq_id(p, "jabber:iq:roster"));
  if (ver)
    sayf(p,
         "<iq type='result' id='%s'><query xmlns='jabber:iq:roster' "
         "ver='%s'>%s</query></iq>",
         id, ver, items);
  else
    sayf(p,
         "<iq type='result' id='%s'><query "
         "xmlns='jabber:iq:roster'>%s</query></iq>",
         id, items);
}

#define BOB_BOTH                                                               \
  "<item jid='bob@localhost' name='Bob' subscription='both'>"                  \
  "<group>Friends</group></item>"
#define CAROL_ASK "<item jid='carol@localhost' ask='subscribe'/>"
#define DAVE_TO "<item jid='dave@localhost' subscription='to'/>"

static kith_roster_node_t *self_node(const peer_t *p)
{
  kith_roster_node_t *n = kith_roster_self(p->roster);

  assert_non_null(n);
  return n;
}

static kith_roster_item_t *item(const peer_t *p, const char *jid)
{
  return kith_roster_node_item(self_node(p), jid);
}

static unsigned flags(const peer_t *p, const char *jid)
{
  kith_roster_item_t *it = item(p, jid);

  assert_non_null(it);
  return kith_roster_item_flags(it);
}

/* A session with bob (both), carol (none + ask) and dave (to). */
static void peer_with_roster(peer_t *p, const char *features)
{
  peer_open(p, features);
  serve_roster(p, NULL, BOB_BOTH CAROL_ASK DAVE_TO);
  assert_int_equal(kith_roster_node_size(self_node(p)), 3);
  forget(p);
}

/* ---- Fetch ------------------------------------------------------------ */

static void test_full_fetch(void **state)
{
  peer_t p;
  kith_roster_item_t *bob;

  (void)state;
  peer_open(&p, "");
  assert_string_equal(kith_roster_node_owner(self_node(&p)), "alice@localhost");
  assert_true(sent(&p, "jabber:iq:roster"));
  assert_true(sent(&p, "type='get'"));
  assert_false(sent(&p, "ver="));      /* no versioning feature */
  assert_false(sent(&p, "<presence")); /* not before the roster */
  serve_roster(&p, NULL, BOB_BOTH CAROL_ASK);
  bob = item(&p, "bob@localhost");
  assert_non_null(bob);
  assert_string_equal(kith_roster_item_name(bob), "Bob");
  assert_int_equal(kith_roster_item_group_count(bob), 1);
  assert_int_equal(kith_roster_item_sub(bob), KITH_SUB_BOTH);
  assert_int_equal(flags(&p, "carol@localhost"), KITH_ROSTER_PENDING_OUT);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 2);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_RECEIVED], 1);
  assert_true(logged(&p, "roster_update bob@localhost item\n"));
  /* Initial presence after the roster (RFC 6121 2.2). */
  assert_true(sent(&p, "<presence/>"));
  assert_null(kith_roster_node_version(self_node(&p)));

  /* Without the feature a later fetch sends no 'ver' either. */
  forget(&p);
  assert_int_equal(kith_roster_fetch(p.roster, NULL, NULL), KITH_OK);
  pump(&p);
  assert_false(sent(&p, "ver="));
  serve_roster(&p, NULL, BOB_BOTH CAROL_ASK);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 0); /* nothing changed */
  assert_false(sent(&p, "<presence")); /* only at session start */
  peer_close(&p);
}

static void fetch_cb(kith_roster_t *roster, kith_status_t status,
                     const kith_stanza_t *reply, void *ud)
{
  peer_t *p = ud;

  (void)roster;
  (void)reply;
  p->cb_calls++;
  p->cb_status = status;
}

static void test_versioned_fetch(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, F_VER);
  assert_true(sent(&p, "ver=''")); /* nothing cached */
  serve_roster(&p, "v1", BOB_BOTH CAROL_ASK);
  assert_string_equal(kith_roster_node_version(self_node(&p)), "v1");

  /* The cached version goes out; "no <query/>" keeps the cache. */
  forget(&p);
  assert_int_equal(kith_roster_fetch(p.roster, fetch_cb, &p), KITH_OK);
  pump(&p);
  assert_true(sent(&p, "ver='v1'"));
  sayf(&p, "<iq type='result' id='%s'/>", iq_id(&p, "jabber:iq:roster"));
  assert_int_equal(p.cb_calls, 1);
  assert_int_equal(p.cb_status, KITH_OK);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 2);
  assert_string_equal(kith_roster_node_version(self_node(&p)), "v1");
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 0);

  /* A full result replaces the cache: carol goes, with an event. */
  forget(&p);
  assert_int_equal(kith_roster_fetch(p.roster, NULL, NULL), KITH_OK);
  pump(&p);
  assert_true(sent(&p, "ver='v1'"));
  serve_roster(&p, "v2", BOB_BOTH DAVE_TO);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 2);
  assert_null(item(&p, "carol@localhost"));
  assert_non_null(item(&p, "dave@localhost"));
  assert_true(logged(&p, "roster_update carol@localhost noitem removed\n"));
  assert_true(logged(&p, "roster_update dave@localhost item\n"));
  assert_false(logged(&p, "roster_update bob@localhost"));
  assert_string_equal(kith_roster_node_version(self_node(&p)), "v2");

  /* Prosody's ver='1' for a never-saved roster: an empty cache with a
   * version still asks for everything. */
  forget(&p);
  assert_int_equal(kith_roster_fetch(p.roster, NULL, NULL), KITH_OK);
  pump(&p);
  serve_roster(&p, "1", "");
  assert_int_equal(kith_roster_node_size(self_node(&p)), 0);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 2);
  assert_string_equal(kith_roster_node_version(self_node(&p)), "1");
  forget(&p);
  assert_int_equal(kith_roster_fetch(p.roster, NULL, NULL), KITH_OK);
  pump(&p);
  assert_true(sent(&p, "ver=''"));
  assert_false(sent(&p, "ver='1'"));
  peer_close(&p);
}

static void test_fetch_error_still_sends_presence(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, "");
  sayf(&p,
       "<iq type='error' id='%s'><error type='cancel'><item-not-found "
       "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
       iq_id(&p, "jabber:iq:roster"));
  assert_int_equal(p.n[KITH_EVENT_ROSTER_RECEIVED], 0);
  assert_true(sent(&p, "<presence/>"));
  peer_close(&p);
}

static void test_initial_presence_off(void **state)
{
  peer_t p;

  (void)state;
  memset(&p, 0, sizeof(p));
  peer_open(&p, "");
  kith_roster_set_initial_presence(p.roster, 0);
  serve_roster(&p, NULL, BOB_BOTH);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_RECEIVED], 1);
  assert_false(sent(&p, "<presence"));
  peer_close(&p);
}

/* ---- Large results (item streaming) ------------------------------------ */

/* Send `len` bytes, pumping the client as the socket fills. */
static void say_big(peer_t *p, const char *data, size_t len)
{
  size_t off = 0;

  while (off < len) {
    size_t n = len - off > 65536 ? 65536 : len - off;
    ssize_t w = send(p->fd, data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);

    if (w > 0)
      off += (size_t)w;
    pump(p);
  }
  pump(p);
}

/* A roster result for the pending get: users first..first+n-1, with the
 * shell's 'id' and 'from' attributes as given (id NULL: the real one). */
static void serve_big(peer_t *p, const char *id, const char *from_attr,
                      const char *ver, int first, int n)
{
  size_t cap = (size_t)n * 96 + 512, len;
  char *buf = malloc(cap);
  int i;

  assert_non_null(buf);
  len =
      (size_t)snprintf(buf, cap,
                       "<iq type='result' id='%s'%s><query "
                       "xmlns='jabber:iq:roster' ver='%s'>\n",
                       id ? id : iq_id(p, "jabber:iq:roster"), from_attr, ver);
  for (i = first; i < first + n; i++)
    len += (size_t)snprintf(buf + len, cap - len,
                            "<item jid='u%d@example.org' subscription='both'>"
                            "<group>G</group></item>\n",
                            i);
  len += (size_t)snprintf(buf + len, cap - len, "</query></iq>");
  say_big(p, buf, len);
  free(buf);
}

/* 20,000 items (about 1.3 MB) land whole under the default 256 KiB stanza
 * limit; a later full result removes what it no longer names. */
static void test_large_result_streams(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, F_VER);
  serve_big(&p, NULL, "", "v9", 0, 20000);
  assert_int_equal(p.n[KITH_EVENT_DISCONNECTED], 0);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 20000);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 20000);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_RECEIVED], 1);
  assert_int_equal(kith_roster_item_sub(item(&p, "u19999@example.org")),
                   KITH_SUB_BOTH);
  assert_string_equal(kith_roster_node_version(self_node(&p)), "v9");
  assert_true(sent(&p, "<presence/>"));

  /* u0 is gone from the next full result: removed, after the upserts. */
  forget(&p);
  assert_int_equal(kith_roster_fetch(p.roster, fetch_cb, &p), KITH_OK);
  pump(&p);
  serve_big(&p, NULL, " from='alice@localhost'", "v10", 1, 20000);
  assert_int_equal(p.cb_calls, 1);
  assert_int_equal(p.cb_status, KITH_OK);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 20000);
  assert_null(item(&p, "u0@example.org"));
  assert_non_null(item(&p, "u20000@example.org"));
  assert_true(logged(&p, "roster_update u0@example.org noitem removed\n"));
  assert_true(logged(&p, "roster_update u20000@example.org item\n"));
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 2);
  assert_string_equal(kith_roster_node_version(self_node(&p)), "v10");
  peer_close(&p);
}

/* A result that does not answer the pending fetch (another id, or the
 * right id from someone else) streams nothing into the roster. */
static void test_forged_result_streams_nothing(void **state)
{
  char id[64];
  peer_t p;

  (void)state;
  peer_open(&p, F_VER);
  serve_big(&p, "forged-1", "", "x1", 0, 50);
  serve_big(&p, NULL, " from='mallory@localhost'", "x2", 100, 50);
  serve_big(&p, NULL, " from='alice@localhost/other'", "x3", 200, 50);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 0);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 0);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_RECEIVED], 0);
  /* The real answer still lands, from the account's domain. */
  serve_big(&p, NULL, " from='localhost'", "v1", 0, 3);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 3);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_RECEIVED], 1);
  assert_string_equal(kith_roster_node_version(self_node(&p)), "v1");
  /* With no fetch pending, a result changes nothing either: not even a
   * replay of the answered fetch's id. */
  snprintf(id, sizeof(id), "%s", iq_id(&p, "jabber:iq:roster"));
  forget(&p);
  sayf(&p,
       "<iq type='result' id='%s'><query xmlns='jabber:iq:roster'>"
       "<item jid='eve@localhost'/></query></iq>",
       id);
  assert_null(item(&p, "eve@localhost"));
  assert_int_equal(kith_roster_node_size(self_node(&p)), 3);
  peer_close(&p);
}

/* Past the item limit the rest of a result is dropped and the fetch
 * fails with KITH_ELIMIT; nothing is removed and the version is cleared. */
static void test_result_item_limit(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, F_VER);
  serve_roster(&p, "v1", BOB_BOTH);
  kith__roster_set_max_items(p.roster, 100);
  forget(&p);
  assert_int_equal(kith_roster_fetch(p.roster, fetch_cb, &p), KITH_OK);
  pump(&p);
  serve_big(&p, NULL, "", "v2", 0, 150);
  assert_int_equal(p.n[KITH_EVENT_DISCONNECTED], 0);
  assert_int_equal(p.cb_calls, 1);
  assert_int_equal(p.cb_status, KITH_ELIMIT);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_RECEIVED], 0);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 100);
  assert_non_null(item(&p, "bob@localhost"));
  assert_null(kith_roster_node_version(self_node(&p)));
  /* The session goes on: the next fetch asks for everything. */
  forget(&p);
  assert_int_equal(kith_roster_fetch(p.roster, NULL, NULL), KITH_OK);
  pump(&p);
  assert_true(sent(&p, "ver=''"));
  peer_close(&p);
}

/* Streamed items that reach another consumer (a second roster attached
 * to the connection takes the stream over) make the fetch fail instead of
 * replacing the cache with an empty roster. */
static void test_result_items_elsewhere(void **state)
{
  kith_roster_t *other = NULL;
  peer_t p;

  (void)state;
  peer_open(&p, F_VER);
  serve_roster(&p, "v1", BOB_BOTH);
  assert_int_equal(kith_roster_new(NULL, &other), KITH_OK);
  assert_int_equal(kith_roster_attach(other, p.conn), KITH_OK);
  pump(&p);
  forget(&p);
  assert_int_equal(kith_roster_fetch(p.roster, fetch_cb, &p), KITH_OK);
  pump(&p);
  serve_big(&p, NULL, "", "v2", 0, 10);
  assert_int_equal(p.cb_calls, 1);
  assert_int_equal(p.cb_status, KITH_ESTATE);
  assert_non_null(item(&p, "bob@localhost"));
  assert_int_equal(kith_roster_node_size(self_node(&p)), 1);
  /* Nothing was applied, so the cache still is version v1. */
  assert_string_equal(kith_roster_node_version(self_node(&p)), "v1");
  kith_roster_free(other);
  peer_close(&p);
}

/* ---- Pushes ----------------------------------------------------------- */

static void push_refused(peer_t *p, const char *from_attr, const char *items,
                         const char *cond)
{
  forget(p);
  sayf(p,
       "<iq type='set' id='spoof' %s><query xmlns='jabber:iq:roster'>%s"
       "</query></iq>",
       from_attr, items);
  assert_true(sent(p, "type='error'"));
  assert_true(sent(p, "id='spoof'"));
  assert_true(sent(p, cond));
  assert_int_equal(p->n[KITH_EVENT_ROSTER_UPDATE], 0);
  assert_int_equal(kith_roster_node_size(self_node(p)), 3);
  assert_string_equal(kith_roster_item_name(item(p, "bob@localhost")), "Bob");
  assert_null(item(p, "mallory@localhost"));
}

#define MALLORY "<item jid='mallory@localhost'/>"
#define BOB_RENAMED "<item jid='bob@localhost' name='Robert'/>"

static void test_spoofed_pushes_refused(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  push_refused(&p, "from='mallory@localhost'", MALLORY, "service-unavailable");
  push_refused(&p, "from='alice@evil.example'", BOB_RENAMED,
               "service-unavailable");
  push_refused(&p, "from='localhost'", BOB_RENAMED, "service-unavailable");
  /* Our own full JID only with accept_full_jid_push (off by default). */
  push_refused(&p, "from='alice@localhost/r1'", BOB_RENAMED,
               "service-unavailable");
  push_refused(&p, "from='alice@localhost/r2'", BOB_RENAMED,
               "service-unavailable");
  push_refused(&p, "", MALLORY BOB_RENAMED, "bad-request");
  push_refused(&p, "", "", "bad-request");
  push_refused(&p, "", "<item name='nojid'/>", "");
  peer_close(&p);
}

static void test_accepted_pushes(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, F_VER);
  /* No 'from': the server on our behalf. */
  say(&p, "<iq type='set' id='p1'><query xmlns='jabber:iq:roster' ver='v7'>"
          "<item jid='erin@localhost' name='Erin' subscription='none'/>"
          "</query></iq>");
  assert_true(sent(&p, "type='result'"));
  assert_true(sent(&p, "id='p1'"));
  assert_string_equal(kith_roster_item_name(item(&p, "erin@localhost")),
                      "Erin");
  assert_string_equal(kith_roster_node_version(self_node(&p)), "v7");
  assert_true(logged(&p, "roster_update erin@localhost item\n"));

  /* Our bare JID, in another case. */
  forget(&p);
  say(&p, "<iq type='set' id='p2' from='Alice@LOCALHOST'><query "
          "xmlns='jabber:iq:roster'>" BOB_RENAMED "</query></iq>");
  assert_true(sent(&p, "type='result'"));
  assert_string_equal(kith_roster_item_name(item(&p, "bob@localhost")),
                      "Robert");
  /* The push had no subscription: none, as RFC 6121 2.1.2.5 says. */
  assert_int_equal(kith_roster_item_sub(item(&p, "bob@localhost")),
                   KITH_SUB_NONE);

  /* Our full JID once allowed. */
  kith_roster_set_accept_full_jid_push(p.roster, 1);
  forget(&p);
  say(&p, "<iq type='set' id='p3' from='alice@localhost/r1'><query "
          "xmlns='jabber:iq:roster'><item jid='bob@localhost' name='B' "
          "subscription='both'/></query></iq>");
  assert_true(sent(&p, "type='result'"));
  assert_string_equal(kith_roster_item_name(item(&p, "bob@localhost")), "B");
  assert_string_equal(kith_roster_node_version(self_node(&p)), "v7");
  peer_close(&p);
}

static void test_remove_push(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  say(&p, "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
          "<item jid='carol@localhost' subscription='remove'/></query></iq>");
  assert_true(sent(&p, "type='result'"));
  assert_null(item(&p, "carol@localhost"));
  assert_int_equal(kith_roster_node_size(self_node(&p)), 2);
  assert_true(logged(&p, "roster_update carol@localhost noitem removed\n"));
  /* Removing an unknown item is answered and changes nothing. */
  forget(&p);
  say(&p, "<iq type='set' id='r2'><query xmlns='jabber:iq:roster'>"
          "<item jid='zed@localhost' subscription='remove'/></query></iq>");
  assert_true(sent(&p, "type='result'"));
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 0);
  peer_close(&p);
}

static void test_update_and_remove_wait_for_push(void **state)
{
  peer_t p;
  const char *groups[] = {"Work", "Work", "Lab"};

  (void)state;
  peer_with_roster(&p, "");
  assert_int_equal(kith_roster_update(p.roster, "bob@localhost", "Bobby",
                                      groups, 3, NULL, fetch_cb, &p),
                   KITH_OK);
  pump(&p);
  assert_true(sent(&p, "type='set'"));
  assert_true(sent(&p, "jid='bob@localhost'"));
  assert_true(sent(&p, "name='Bobby'"));
  assert_int_equal(count_of(p.got, "<group>Work</group>"), 1);
  assert_true(sent(&p, "<group>Lab</group>"));
  sayf(&p, "<iq type='result' id='%s'/>", iq_id(&p, "Bobby"));
  assert_int_equal(p.cb_calls, 1);
  assert_int_equal(p.cb_status, KITH_OK);
  /* The server is authoritative: nothing changes until its push. */
  assert_string_equal(kith_roster_item_name(item(&p, "bob@localhost")), "Bob");
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 0);

  forget(&p);
  assert_int_equal(kith_roster_remove(p.roster, "dave@localhost", fetch_cb, &p),
                   KITH_OK);
  pump(&p);
  assert_true(sent(&p, "subscription='remove'"));
  sayf(&p,
       "<iq type='error' id='%s'><error type='cancel'><item-not-found "
       "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
       iq_id(&p, "remove"));
  assert_int_equal(p.cb_calls, 2);
  assert_int_equal(p.cb_status, KITH_ESTANZA);
  assert_non_null(item(&p, "dave@localhost"));
  assert_int_equal(kith_roster_update(p.roster, "not a jid@", NULL, NULL, 0,
                                      NULL, NULL, NULL),
                   KITH_EJID);
  peer_close(&p);
}

static void test_pending_request_cancelled_on_free(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  assert_int_equal(kith_roster_remove(p.roster, "bob@localhost", fetch_cb, &p),
                   KITH_OK);
  kith_roster_free(p.roster); /* detaches: the callback fires now, once */
  assert_int_equal(p.cb_calls, 1);
  assert_int_equal(p.cb_status, KITH_ECANCELED);
  kith_conn_free(p.conn); /* frees the orphaned request record */
  assert_int_equal(p.cb_calls, 1);
  close(p.fd);
}

static void test_connection_freed_first(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  assert_int_equal(kith_roster_remove(p.roster, "bob@localhost", fetch_cb, &p),
                   KITH_OK);
  /* The connection goes first: the request is cancelled once, and the
   * roster forgets the connection instead of touching freed memory. */
  kith_conn_free(p.conn);
  assert_int_equal(p.cb_calls, 1);
  assert_int_equal(p.cb_status, KITH_ECANCELED);
  assert_non_null(self_node(&p)); /* the items outlive the connection */
  kith_roster_detach(p.roster);
  kith_roster_free(p.roster);
  assert_int_equal(p.cb_calls, 1);
  close(p.fd);
}

/* ---- Presence --------------------------------------------------------- */

static void test_presence_tracking(void **state)
{
  peer_t p;
  kith_roster_item_t *bob;

  (void)state;
  peer_with_roster(&p, "");
  say(&p, "<presence from='bob@localhost/home'/>");
  assert_true(logged(&p, "presence_available bob@localhost/home item\n"));
  assert_int_equal(p.n[KITH_EVENT_GOT_ONLINE], 1);
  assert_int_equal(p.n[KITH_EVENT_CHANGED_STATUS], 0);
  /* The same again changes nothing. */
  say(&p, "<presence from='bob@localhost/home'/>");
  assert_int_equal(p.n[KITH_EVENT_PRESENCE_AVAILABLE], 2);
  assert_int_equal(p.n[KITH_EVENT_GOT_ONLINE], 1);
  assert_int_equal(p.n[KITH_EVENT_CHANGED_STATUS], 0);
  say(&p, "<presence from='bob@localhost/home'><show>away</show>"
          "<status>lunch</status></presence>");
  assert_int_equal(p.n[KITH_EVENT_CHANGED_STATUS], 1);
  say(&p, "<presence from='bob@localhost/home'><show>away</show>"
          "<status>lunch</status><priority>3</priority></presence>");
  assert_int_equal(p.n[KITH_EVENT_CHANGED_STATUS], 2);
  /* A second resource: no got_online, no changed_status. */
  say(&p, "<presence from='bob@localhost/work'><priority>5</priority>"
          "</presence>");
  assert_int_equal(p.n[KITH_EVENT_GOT_ONLINE], 1);
  assert_int_equal(p.n[KITH_EVENT_CHANGED_STATUS], 2);
  bob = item(&p, "bob@localhost");
  assert_int_equal(kith_roster_item_resource_count(bob), 2);
  assert_string_equal(kith_roster_item_best_resource(bob), "work");
  say(&p, "<presence from='bob@localhost/work' type='unavailable'/>");
  assert_int_equal(p.n[KITH_EVENT_PRESENCE_UNAVAILABLE], 1);
  assert_int_equal(p.n[KITH_EVENT_GOT_OFFLINE], 0);
  assert_string_equal(kith_roster_item_best_resource(bob), "home");
  say(&p, "<presence from='bob@localhost/home' type='unavailable'/>");
  assert_int_equal(p.n[KITH_EVENT_GOT_OFFLINE], 1);
  assert_null(kith_roster_item_best_resource(bob));
  /* Unavailable from the bare JID takes every resource. */
  say(&p, "<presence from='bob@localhost/a'/>");
  say(&p, "<presence from='bob@localhost/b'/>");
  say(&p, "<presence from='bob@localhost' type='unavailable'/>");
  assert_int_equal(p.n[KITH_EVENT_GOT_OFFLINE], 2);
  assert_int_equal(kith_roster_item_resource_count(bob), 0);
  peer_close(&p);
}

static void test_presence_from_strangers_and_self(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  say(&p, "<presence from='eve@localhost/x'><show>chat</show></presence>");
  assert_true(logged(&p, "presence_available eve@localhost/x noitem\n"));
  assert_int_equal(p.n[KITH_EVENT_GOT_ONLINE], 0);
  assert_null(item(&p, "eve@localhost"));
  say(&p, "<presence from='alice@localhost/r2'/>");
  assert_true(logged(&p, "presence_available alice@localhost/r2 noitem\n"));
  say(&p, "<presence from='eve@localhost/x' type='unavailable'/>");
  assert_int_equal(p.n[KITH_EVENT_PRESENCE_UNAVAILABLE], 1);
  assert_int_equal(p.n[KITH_EVENT_GOT_OFFLINE], 0);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 3);
  peer_close(&p);
}

static void test_disconnect_resets_presence(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  say(&p, "<presence from='bob@localhost/home'/>");
  say(&p, "<presence from='bob@localhost/work'/>");
  say(&p, "<presence from='dave@localhost/x'/>");
  forget(&p);
  say(&p, "</stream:stream>");
  assert_int_equal(p.n[KITH_EVENT_DISCONNECTED], 1);
  assert_int_equal(p.n[KITH_EVENT_PRESENCE_RESET], 2);
  assert_int_equal(p.n[KITH_EVENT_GOT_OFFLINE], 2);
  assert_true(logged(&p, "presence_reset bob@localhost item\n"
                         "got_offline bob@localhost item\n"));
  assert_true(logged(&p, "presence_reset dave@localhost item\n"));
  assert_int_equal(kith_roster_node_size(self_node(&p)), 3);
  assert_int_equal(kith_roster_item_resource_count(item(&p, "bob@localhost")),
                   0);
  peer_close(&p);
}

/* ---- Subscriptions ---------------------------------------------------- */

static void test_subscribe_accepted_by_default(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  say(&p, "<presence from='eve@localhost' type='subscribe'><nick "
          "xmlns='http://jabber.org/protocol/nick'>Eve</nick></presence>");
  assert_true(logged(&p, "presence_subscribe eve@localhost noitem nick=Eve\n"));
  assert_true(logged(&p, "roster_subscription_request eve@localhost noitem "
                         "nick=Eve\n"));
  assert_true(sent(&p, "to='eve@localhost' type='subscribed'"));
  assert_true(sent(&p, "to='eve@localhost' type='subscribe'"));
  assert_null(item(&p, "eve@localhost")); /* strangers get no item */
  /* The same request again: approved again, but no second subscribe. */
  forget(&p);
  say(&p, "<presence from='eve@localhost' type='subscribe'/>");
  assert_true(sent(&p, "type='subscribed'"));
  assert_false(sent(&p, "type='subscribe'"));
  /* The server's push brings the item; the tracked state merges in. */
  forget(&p);
  say(&p, "<iq type='set' id='e1'><query xmlns='jabber:iq:roster'>"
          "<item jid='eve@localhost' subscription='from' ask='subscribe'/>"
          "</query></iq>");
  assert_int_equal(flags(&p, "eve@localhost"),
                   KITH_ROSTER_FROM | KITH_ROSTER_PENDING_OUT);
  peer_close(&p);
}

static void test_subscribe_rejected(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  kith_roster_set_auto_authorize(p.roster, KITH_AUTHORIZE_REJECT);
  say(&p, "<presence from='eve@localhost' type='subscribe'/>");
  assert_int_equal(p.n[KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST], 1);
  assert_true(sent(&p, "to='eve@localhost' type='unsubscribed'"));
  assert_false(sent(&p, "type='subscribe'"));
  assert_false(sent(&p, "type='subscribed'"));
  peer_close(&p);
}

static void test_subscribe_manual_keeps_pending_in(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  kith_roster_set_auto_authorize(p.roster, KITH_AUTHORIZE_MANUAL);
  say(&p, "<presence from='dave@localhost' type='subscribe'/>");
  assert_int_equal(p.n[KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST], 1);
  assert_false(sent(&p, "<presence"));
  assert_int_equal(flags(&p, "dave@localhost"),
                   KITH_ROSTER_TO | KITH_ROSTER_PENDING_IN);
  /* A push never reports pending_in; it is kept. */
  say(&p, "<iq type='set' id='d1'><query xmlns='jabber:iq:roster'>"
          "<item jid='dave@localhost' name='D' subscription='to'/>"
          "</query></iq>");
  assert_int_equal(flags(&p, "dave@localhost"),
                   KITH_ROSTER_TO | KITH_ROSTER_PENDING_IN);
  /* The application answers: approved (not a pre-approval). */
  forget(&p);
  assert_int_equal(kith_roster_send_subscription(p.roster, "dave@localhost",
                                                 "subscribed", NULL, NULL),
                   KITH_OK);
  pump(&p);
  assert_true(sent(&p, "to='dave@localhost' type='subscribed'"));
  assert_int_equal(flags(&p, "dave@localhost"),
                   KITH_ROSTER_TO | KITH_ROSTER_FROM);
  peer_close(&p);
}

static void test_node_override_and_whitelist(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  kith_roster_set_auto_authorize(p.roster, KITH_AUTHORIZE_REJECT);
  kith_roster_set_auto_subscribe(p.roster, 0);
  kith_roster_node_set_auto_authorize(self_node(&p), KITH_AUTHORIZE_ACCEPT);
  say(&p, "<presence from='eve@localhost' type='subscribe'/>");
  assert_true(sent(&p, "type='subscribed'"));
  assert_false(sent(&p, "type='subscribe'")); /* auto-subscribe is off */
  kith_roster_node_set_auto_subscribe(self_node(&p), 1);
  forget(&p);
  say(&p, "<presence from='frank@localhost' type='subscribe'/>");
  assert_true(sent(&p, "to='frank@localhost' type='subscribed'"));
  assert_true(sent(&p, "to='frank@localhost' type='subscribe'"));

  /* Manual on the node; the whitelisted carol is accepted anyway. */
  kith_roster_node_set_auto_authorize(self_node(&p), KITH_AUTHORIZE_MANUAL);
  forget(&p);
  say(&p, "<presence from='grace@localhost' type='subscribe'/>");
  assert_false(sent(&p, "<presence"));
  kith_roster_item_set_whitelisted(item(&p, "carol@localhost"), 1);
  say(&p, "<presence from='carol@localhost' type='subscribe'/>");
  assert_true(sent(&p, "to='carol@localhost' type='subscribed'"));
  /* carol has a pending request of ours: no second subscribe. */
  assert_false(sent(&p, "to='carol@localhost' type='subscribe'"));
  peer_close(&p);
}

static void test_auto_subscribe_is_idempotent(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  /* dave: we already receive his presence (to). */
  say(&p, "<presence from='dave@localhost' type='subscribe'/>");
  assert_true(sent(&p, "to='dave@localhost' type='subscribed'"));
  assert_false(sent(&p, "type='subscribe'"));
  /* carol: our request is pending (pending_out). */
  forget(&p);
  say(&p, "<presence from='carol@localhost' type='subscribe'/>");
  assert_true(sent(&p, "to='carol@localhost' type='subscribed'"));
  assert_false(sent(&p, "type='subscribe'"));
  peer_close(&p);
}

static void test_refused_cancelled_removed(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  /* carol answers our pending request with unsubscribed: refused. */
  say(&p, "<presence from='carol@localhost' type='unsubscribed'/>");
  assert_true(logged(&p, "presence_unsubscribed carol@localhost item\n"));
  assert_true(logged(&p, "roster_subscription_refused carol@localhost item\n"));
  assert_int_equal(flags(&p, "carol@localhost"), 0);
  /* bob revokes our subscription: removed, and his presence is gone. */
  say(&p, "<presence from='bob@localhost/home'/>");
  forget(&p);
  say(&p, "<presence from='bob@localhost' type='unsubscribed'/>");
  assert_true(logged(&p, "roster_subscription_removed bob@localhost item\n"));
  assert_int_equal(p.n[KITH_EVENT_GOT_OFFLINE], 1);
  assert_int_equal(flags(&p, "bob@localhost"), KITH_ROSTER_FROM);
  /* bob unsubscribes from us: remove. */
  say(&p, "<presence from='bob@localhost' type='unsubscribe'/>");
  assert_true(logged(&p, "roster_subscription_remove bob@localhost item\n"));
  assert_int_equal(flags(&p, "bob@localhost"), 0);
  /* eve asks, then withdraws before we answer: cancelled. */
  kith_roster_set_auto_authorize(p.roster, KITH_AUTHORIZE_MANUAL);
  forget(&p);
  say(&p, "<presence from='eve@localhost' type='subscribe'/>");
  say(&p, "<presence from='eve@localhost' type='unsubscribe'/>");
  assert_true(
      logged(&p, "roster_subscription_cancelled eve@localhost noitem\n"));
  assert_false(logged(&p, "roster_subscription_remove "));
  /* dave approves a request we never made: still authorized, reported. */
  forget(&p);
  say(&p, "<presence from='dave@localhost' type='subscribed'><nick "
          "xmlns='http://jabber.org/protocol/nick'>Dave</nick></presence>");
  assert_true(
      logged(&p, "presence_subscribed dave@localhost item nick=Dave\n"));
  assert_true(logged(&p, "roster_subscription_authorized dave@localhost item "
                         "nick=Dave\n"));
  peer_close(&p);
}

static void test_preapproval_needs_the_feature(void **state)
{
  peer_t p, q;

  (void)state;
  peer_with_roster(&p, "");
  assert_int_equal(kith_roster_send_subscription(p.roster, "zoe@localhost",
                                                 "subscribed", NULL, NULL),
                   KITH_EUNSUPPORTED);
  pump(&p);
  assert_false(sent(&p, "<presence"));
  assert_int_equal(kith_roster_send_subscription(p.roster, "zoe@localhost",
                                                 "subscribe", "Alice", NULL),
                   KITH_OK);
  pump(&p);
  assert_true(sent(&p, "to='zoe@localhost' type='subscribe'"));
  assert_true(sent(&p, "<nick xmlns='http://jabber.org/protocol/nick'>Alice"));
  assert_int_equal(kith_roster_send_subscription(p.roster, "zoe@localhost",
                                                 "bogus", NULL, NULL),
                   KITH_EINVAL);
  peer_close(&p);

  peer_open(&q, F_PRE);
  serve_roster(&q, NULL, DAVE_TO);
  forget(&q);
  assert_int_equal(kith_roster_send_subscription(q.roster, "dave@localhost",
                                                 "subscribed", NULL, NULL),
                   KITH_OK);
  pump(&q);
  assert_true(sent(&q, "to='dave@localhost' type='subscribed'"));
  assert_int_equal(flags(&q, "dave@localhost"),
                   KITH_ROSTER_TO | KITH_ROSTER_APPROVED);
  peer_close(&q);
}

static void test_send_presence(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, NULL, "away", "out", 4),
      KITH_OK);
  pump(&p);
  assert_true(sent(&p, "<show>away</show>"));
  assert_true(sent(&p, "<status>out</status>"));
  assert_true(sent(&p, "<priority>4</priority>"));
  forget(&p);
  assert_int_equal(kith_roster_send_presence(p.roster, "bob@localhost/x",
                                             "unavailable", NULL, NULL, NULL,
                                             1000),
                   KITH_OK);
  pump(&p);
  assert_true(sent(&p, "to='bob@localhost/x'"));
  assert_true(sent(&p, "type='unavailable'"));
  assert_false(sent(&p, "<priority>"));
  assert_int_equal(kith_roster_send_presence(p.roster, NULL, "subscribe", NULL,
                                             NULL, NULL, 0),
                   KITH_EINVAL);
  assert_int_equal(
      kith_roster_send_presence(p.roster, NULL, NULL, NULL, "sleepy", NULL, 0),
      KITH_EINVAL);
  peer_close(&p);
}

/* A component has no server roster: attaching works (component mode,
 * tests/unit/test_component.c) but the client roster calls do not. */
static void test_component_has_no_client_roster(void **state)
{
  kith_conn_t *conn = NULL;
  kith_roster_t *roster = NULL;

  (void)state;
  assert_int_equal(kith_conn_new(NULL, &conn), KITH_OK);
  assert_int_equal(kith_conn_set_component(conn, "gw.localhost", "s"), KITH_OK);
  assert_int_equal(kith_roster_new(NULL, &roster), KITH_OK);
  assert_int_equal(kith_roster_attach(roster, conn), KITH_OK);
  assert_int_equal(kith_roster_fetch(roster, NULL, NULL), KITH_EUNSUPPORTED);
  assert_int_equal(kith_roster_remove(roster, "bob@localhost", NULL, NULL),
                   KITH_EUNSUPPORTED);
  kith_roster_detach(roster);
  assert_int_equal(kith_roster_fetch(roster, NULL, NULL), KITH_ESTATE);
  kith_roster_free(roster);
  kith_conn_free(conn);
}

static void test_reconnect_fetches_with_cached_version(void **state)
{
  const char *fx = FEATURES_OPEN F_VER "</stream:features>";
  kith_stanza_t *f = NULL;
  peer_t p;

  (void)state;
  peer_open(&p, F_VER);
  serve_roster(&p, "v1", BOB_BOTH);
  say(&p, "</stream:stream>");
  assert_int_equal(p.n[KITH_EVENT_DISCONNECTED], 1);
  assert_false(kith_conn_is_active(p.conn));

  /* A new session on the same connection and roster. */
  close(p.fd);
  peer_adopt(&p);
  say(&p, CLIENT_HEADER);
  forget(&p);
  assert_int_equal(kith_stanza_parse(NULL, fx, strlen(fx), &f), KITH_OK);
  assert_int_equal(kith__conn_test_ready(p.conn, "alice@localhost/r7", f),
                   KITH_OK);
  kith_stanza_free(f);
  pump(&p);
  assert_true(sent(&p, "ver='v1'"));
  assert_false(sent(&p, "<presence"));
  sayf(&p, "<iq type='result' id='%s'/>", iq_id(&p, "jabber:iq:roster"));
  assert_int_equal(p.n[KITH_EVENT_ROSTER_RECEIVED], 1);
  assert_int_equal(p.n[KITH_EVENT_ROSTER_UPDATE], 0);
  assert_non_null(item(&p, "bob@localhost"));
  assert_true(sent(&p, "<presence/>"));
  peer_close(&p);
}

static void test_detach_and_attach_to_a_live_session(void **state)
{
  peer_t p;

  (void)state;
  peer_with_roster(&p, "");
  kith_roster_detach(p.roster);
  kith_roster_detach(p.roster); /* twice is fine */
  say(&p, "<presence from='bob@localhost/home'/>");
  assert_int_equal(p.n[KITH_EVENT_GOT_ONLINE], 0);
  assert_int_equal(kith_roster_item_resource_count(item(&p, "bob@localhost")),
                   0);
  /* Nobody takes the push now: the connection refuses it. */
  say(&p, "<iq type='set' id='x1'><query xmlns='jabber:iq:roster'>"
          "<item jid='erin@localhost'/></query></iq>");
  assert_true(sent(&p, "service-unavailable"));
  assert_null(item(&p, "erin@localhost"));
  assert_int_equal(kith_roster_fetch(p.roster, NULL, NULL), KITH_ESTATE);
  assert_int_equal(kith_roster_send_subscription(p.roster, "bob@localhost",
                                                 "subscribe", NULL, NULL),
                   KITH_ESTATE);
  /* Attaching to a session that already started fetches at once. */
  forget(&p);
  assert_int_equal(kith_roster_attach(p.roster, p.conn), KITH_OK);
  pump(&p);
  assert_true(sent(&p, "jabber:iq:roster"));
  serve_roster(&p, NULL, BOB_BOTH);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 1);
  assert_true(sent(&p, "<presence/>"));
  peer_close(&p);
}

/* ---- Two bots --------------------------------------------------------- */

/*
 * A tiny server between two clients: it stamps 'from', applies RFC 6121's
 * outbound rule on the sender's side and the inbound rule on the
 * receiver's (subscription.h), pushes items whose roster-visible state
 * changed, delivers what the rules deliver, and answers roster gets with
 * an empty roster. Presence broadcasts and iq results are counted only.
 */
typedef struct relay {
  peer_t *bot[2];
  const char *jid[2];
  unsigned sflags[2]; /* server-side: bot i's item for the other */
  int online[2];      /* bot i sent its available presence */
  int pushes, delivered, presences, from_bots, subscribes[2];
} relay_t;

static void push_item(relay_t *r, int i)
{
  unsigned f = r->sflags[i];

  sayf(r->bot[i],
       "<iq type='set' id='push%d'><query xmlns='jabber:iq:roster'>"
       "<item jid='%s' subscription='%s'%s/></query></iq>",
       r->pushes, r->jid[1 - i], kith_sub_name(kith__sub_of(f)),
       (f & KITH_ROSTER_PENDING_OUT) ? " ask='subscribe'" : "");
  r->pushes++;
}

/* Deliver bot i's current presence to the other bot. */
static void send_presence_to(relay_t *r, int i)
{
  r->presences++;
  sayf(r->bot[1 - i], "<presence from='%s/r1' to='%s'/>", r->jid[i],
       r->jid[1 - i]);
}

static void route_subscription(relay_t *r, int i, kith__ptype_t type)
{
  int o = 1 - i;
  kith__sub_result_t out, in;

  kith__sub_apply(KITH__SUB_OUTBOUND, type, r->sflags[i], 1, &out);
  r->sflags[i] = out.flags;
  if (out.push)
    push_item(r, i);
  if (!out.deliver)
    return;
  /* The contact just gained `from`: it gets the owner's presence (3.1.5).
   * (Routed before the stanza here; the order does not matter to kith.) */
  if ((out.actions & KITH__SUB_A_SEND_PRESENCE) && r->online[i])
    send_presence_to(r, i);
  kith__sub_apply(KITH__SUB_INBOUND, type, r->sflags[o], 1, &in);
  r->sflags[o] = in.flags;
  if (in.push)
    push_item(r, o);
  if (in.deliver) {
    r->delivered++;
    sayf(r->bot[o], "<presence from='%s' to='%s' type='%s'/>", r->jid[i],
         r->jid[o], kith__sub_ptype_name(type));
  }
  if (in.actions & KITH__SUB_A_REPLY_SUBSCRIBED)
    route_subscription(r, o, KITH__PT_SUBSCRIBED);
}

/* Split what bot i sent into stanzas and act on each. Returns how many. */
static int relay_from(relay_t *r, int i)
{
  peer_t *p = r->bot[i];
  char buf[sizeof(p->got)];
  char *s = buf, *e;
  int n = 0;

  memcpy(buf, p->got, p->gotlen + 1);
  forget_sent(p);
  while ((s = strchr(s, '<')) != NULL) {
    kith_stanza_t *st = NULL;
    const char *type, *name;

    e = stanza_end(s);
    assert_int_equal(kith_stanza_parse(NULL, s, (size_t)(e - s + 1), &st),
                     KITH_OK);
    s = e + 1;
    n++;
    name = kith_stanza_name(st);
    type = kith_stanza_type(st);
    if (strcmp(name, "iq") == 0 && type && strcmp(type, "get") == 0)
      sayf(p,
           "<iq type='result' id='%s'><query xmlns='jabber:iq:roster'/>"
           "</iq>",
           kith_stanza_id(st));
    else if (strcmp(name, "presence") == 0 && type == NULL &&
             kith_stanza_to(st) == NULL) {
      /* A broadcast reaches the other bot only if it is subscribed. */
      r->online[i] = 1;
      if (r->sflags[i] & KITH_ROSTER_FROM)
        send_presence_to(r, i);
    } else if (strcmp(name, "presence") == 0 &&
               kith__sub_ptype(type) != KITH__PT_COUNT) {
      if (kith__sub_ptype(type) == KITH__PT_SUBSCRIBE)
        r->subscribes[i]++;
      route_subscription(r, i, kith__sub_ptype(type));
    }
    kith_stanza_free(st);
  }
  return n;
}

static void test_two_bots_settle_in_both(void **state)
{
  peer_t a, b;
  relay_t r;
  int rounds;

  (void)state;
  memset(&r, 0, sizeof(r));
  peer_open_as(&a, "alice@localhost/r1", "");
  peer_open_as(&b, "bob@localhost/r1", "");
  r.bot[0] = &a;
  r.bot[1] = &b;
  r.jid[0] = "alice@localhost";
  r.jid[1] = "bob@localhost";
  relay_from(&r, 0); /* the roster gets */
  relay_from(&r, 1);
  pump(&a);
  pump(&b);
  relay_from(&r, 0); /* the initial presences */
  relay_from(&r, 1);

  assert_int_equal(kith_roster_send_subscription(a.roster, "bob@localhost",
                                                 "subscribe", NULL, NULL),
                   KITH_OK);
  pump(&a);
  for (rounds = 0; rounds < 20; rounds++) {
    int moved = relay_from(&r, 0) + relay_from(&r, 1);
    r.from_bots += moved;
    if (moved == 0)
      break;
  }
  /* Quiet after three rounds (the fourth relays nothing): no loop. */
  assert_int_equal(rounds, 3);
  assert_int_equal(kith_roster_item_sub(item(&a, "bob@localhost")),
                   KITH_SUB_BOTH);
  assert_int_equal(kith_roster_item_sub(item(&b, "alice@localhost")),
                   KITH_SUB_BOTH);
  assert_int_equal(kith__sub_of(r.sflags[0]), KITH_SUB_BOTH);
  assert_int_equal(kith__sub_of(r.sflags[1]), KITH_SUB_BOTH);
  /* Each bot asked exactly once: alice by hand, bob by auto-subscribe. */
  assert_int_equal(r.subscribes[0], 1);
  assert_int_equal(r.subscribes[1], 1);
  /* alice: subscribe, subscribed, 3 push results; bob: subscribed,
   * subscribe, 3 push results. The server: 6 pushes, 4 deliveries. */
  assert_int_equal(r.from_bots, 10);
  assert_int_equal(r.pushes, 6);
  assert_int_equal(r.delivered, 4);
  /* Each approval sent the approver's presence: both see the other. */
  assert_int_equal(r.presences, 2);
  assert_string_equal(kith_roster_item_best_resource(item(&a, "bob@localhost")),
                      "r1");
  assert_string_equal(
      kith_roster_item_best_resource(item(&b, "alice@localhost")), "r1");
  assert_int_equal(a.n[KITH_EVENT_GOT_ONLINE], 1);
  assert_int_equal(b.n[KITH_EVENT_GOT_ONLINE], 1);
  peer_close(&a);
  peer_close(&b);
}

/* ---- Failing allocator ------------------------------------------------ */

/* The roster (and so the sync layer and the wire calls it makes) uses a
 * context whose Nth allocation fails (failing_alloc.h); the connection
 * does not. Everything the sync layer does, with no assertions on the
 * outcome: a failed allocation may lose an update, but must not crash or
 * leak. */
static void scripted_session(kith_ctx_t *ctx)
{
  const char *fx = FEATURES_OPEN F_VER "</stream:features>";
  kith_stanza_t *f = NULL;
  peer_t p;

  memset(&p, 0, sizeof(p));
  p.fd = -1; /* no socket until the connection adopts one */
  assert_int_equal(kith_conn_new(NULL, &p.conn), KITH_OK);
  assert_int_equal(kith_conn_set_jid(p.conn, "alice@localhost"), KITH_OK);
  assert_true(kith_conn_on(p.conn, KITH_EVENT_ANY, on_event, &p) > 0);
  if (kith_roster_new(ctx, &p.roster) != KITH_OK)
    goto no_roster;
  kith_roster_set_accept_full_jid_push(p.roster, 0);
  if (kith_roster_attach(p.roster, p.conn) != KITH_OK)
    goto out;
  peer_adopt(&p);
  say(&p, CLIENT_HEADER);
  assert_int_equal(kith_stanza_parse(NULL, fx, strlen(fx), &f), KITH_OK);
  assert_int_equal(kith__conn_test_ready(p.conn, "alice@localhost/r1", f),
                   KITH_OK);
  kith_stanza_free(f);
  pump(&p);
  if (sent(&p, "jabber:iq:roster"))
    serve_roster(&p, "v1", BOB_BOTH CAROL_ASK DAVE_TO);
  say(&p, "<iq type='set' id='p1'><query xmlns='jabber:iq:roster' ver='v2'>"
          "<item jid='erin@localhost' name='Erin'><group>G</group></item>"
          "</query></iq>");
  say(&p, "<iq type='set' id='p2' from='mallory@localhost'><query "
          "xmlns='jabber:iq:roster'>" MALLORY "</query></iq>");
  say(&p, "<presence from='bob@localhost/home'><status>hi</status></presence>");
  say(&p, "<presence from='bob@localhost/home'><show>away</show></presence>");
  say(&p, "<presence from='eve@localhost/x'/>");
  say(&p, "<presence from='eve@localhost' type='subscribe'><nick "
          "xmlns='http://jabber.org/protocol/nick'>Eve</nick></presence>");
  say(&p, "<presence from='carol@localhost' type='unsubscribed'/>");
  say(&p, "<iq type='set' id='p3'><query xmlns='jabber:iq:roster'>"
          "<item jid='dave@localhost' subscription='remove'/></query></iq>");
  kith_roster_update(p.roster, "zed@localhost", "Z", NULL, 0, NULL, NULL, NULL);
  kith_roster_send_subscription(p.roster, "zed@localhost", "subscribe", "A",
                                NULL);
  kith_roster_send_presence(p.roster, NULL, NULL, NULL, "dnd", "busy", 1);
  kith_roster_fetch(p.roster, NULL, NULL);
  pump(&p);
  if (sent(&p, "ver="))
    serve_roster(&p, "v3", BOB_BOTH);
  say(&p, "<presence from='bob@localhost/work'/>");
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

/* ---- The store -------------------------------------------------------- */

#define ALICE_LINE(ops) "alice@localhost:" ops "\n"

static void test_store_one_batch_per_change(void **state)
{
  spy_t spy;
  peer_t p;

  (void)state;
  g_store = spy_open(&spy);
  assert_non_null(g_store);
  peer_open(&p, F_VER);
  /* The own node was looked for in the store, then made known. */
  assert_int_equal(spy.loads, 1);
  assert_string_equal(spy.log, ALICE_LINE(" KNOWN"));
  spy_forget(&spy);
  /* A whole result and its version: one batch. */
  serve_roster(&p, "v1", BOB_BOTH CAROL_ASK DAVE_TO);
  assert_string_equal(spy.log,
                      ALICE_LINE(" PUT bob@localhost=3 PUT carol@localhost=8 "
                                 "PUT dave@localhost=2 VERSION v1"));
  /* A push and its version: one batch, written before the result goes
   * back to the server. */
  spy_forget(&spy);
  say(&p, "<iq type='set' id='p1'><query xmlns='jabber:iq:roster' ver='v2'>"
          "<item jid='erin@localhost' name='Erin'/></query></iq>");
  assert_string_equal(spy.log, ALICE_LINE(" PUT erin@localhost=0 VERSION v2"));
  spy_forget(&spy);
  say(&p, "<iq type='set' id='p2'><query xmlns='jabber:iq:roster' ver='v3'>"
          "<item jid='carol@localhost' subscription='remove'/></query></iq>");
  assert_string_equal(spy.log,
                      ALICE_LINE(" DELETE carol@localhost VERSION v3"));
  /* Presence is volatile: nothing written. */
  spy_forget(&spy);
  say(&p, "<presence from='bob@localhost/x'><show>away</show></presence>");
  assert_int_equal(spy.applies, 0);
  /* A subscription request changes a flag: one batch with the answer. */
  say(&p, "<presence from='dave@localhost' type='subscribe'/>");
  /* Accepted by default: from is added (to + from = both). */
  assert_string_equal(spy.log, ALICE_LINE(" PUT dave@localhost=3"));
  peer_close(&p);

  /* A restart reads the cache before connecting, then resumes from it. */
  assert_int_equal(kith_roster_new(NULL, &p.roster), KITH_OK);
  assert_int_equal(kith_roster_set_store(p.roster, g_store), KITH_OK);
  {
    kith_roster_node_t *n = NULL;
    kith_roster_item_t *bob;

    assert_int_equal(kith_roster_load(p.roster, "Alice@localhost/any", &n),
                     KITH_OK);
    assert_non_null(n);
    assert_string_equal(kith_roster_node_version(n), "v3");
    assert_int_equal(kith_roster_node_size(n), 3);
    bob = kith_roster_node_item(n, "bob@localhost");
    assert_non_null(bob);
    assert_string_equal(kith_roster_item_name(bob), "Bob");
    assert_string_equal(kith_roster_item_group_at(bob, 0), "Friends");
    assert_int_equal(kith_roster_item_flags(bob),
                     KITH_ROSTER_FROM | KITH_ROSTER_TO);
    assert_int_equal(kith_roster_load(p.roster, "nobody@localhost", &n),
                     KITH_ENOTFOUND);
    assert_null(n);
    assert_null(kith_roster_node(p.roster, "nobody@localhost"));
  }
  kith_roster_free(p.roster);
  spy_forget(&spy);
  peer_open(&p, F_VER);
  assert_true(sent(&p, "ver='v3'"));
  sayf(&p, "<iq type='result' id='%s'/>", iq_id(&p, "jabber:iq:roster"));
  assert_int_equal(kith_roster_node_size(self_node(&p)), 3);
  assert_int_equal(spy.applies, 0); /* nothing changed */
  assert_int_equal(p.n[KITH_EVENT_ROSTER_RECEIVED], 1);
  peer_close(&p);
  kith_store_close(g_store);
  g_store = NULL;
  spy_done(&spy);
}

static void test_store_damaged_cache_is_reset(void **state)
{
  spy_t spy;
  peer_t p;

  (void)state;
  g_store = spy_open(&spy);
  peer_open(&p, F_VER);
  serve_roster(&p, "v1", BOB_BOTH);
  peer_close(&p);

  /* The cache cannot be read: it is reset and the roster fetched whole. */
  spy.load_status = KITH_ECORRUPT;
  spy_forget(&spy);
  peer_open(&p, F_VER);
  assert_int_equal(spy.resets, 1);
  assert_int_equal(p.n[KITH_EVENT_STORE_ERROR], 1);
  assert_true(sent(&p, "ver=''"));
  serve_roster(&p, "v9", DAVE_TO);
  assert_int_equal(kith_roster_node_size(self_node(&p)), 1);
  assert_non_null(
      strstr(spy.log, ALICE_LINE(" PUT dave@localhost=2 VERSION v9")));
  peer_close(&p);
  kith_store_close(g_store);
  g_store = NULL;
  spy_done(&spy);
}

static void test_store_failed_write_is_retried_whole(void **state)
{
  spy_t spy;
  peer_t p;

  (void)state;
  g_store = spy_open(&spy);
  peer_open(&p, F_VER);
  serve_roster(&p, "v1", BOB_BOTH);
  spy_forget(&spy);
  spy.fail_apply = 1;
  say(&p, "<iq type='set' id='p1'><query xmlns='jabber:iq:roster' ver='v2'>"
          "<item jid='erin@localhost'/></query></iq>");
  /* Memory is right; the store said no; the application heard of it. */
  assert_non_null(item(&p, "erin@localhost"));
  assert_int_equal(p.n[KITH_EVENT_STORE_ERROR], 1);
  assert_string_equal(spy.log, ALICE_LINE(" FAILED"));
  /* The next change rewrites the node whole, in one batch. */
  spy_forget(&spy);
  say(&p, "<iq type='set' id='p2'><query xmlns='jabber:iq:roster' ver='v3'>"
          "<item jid='fay@localhost'/></query></iq>");
  assert_string_equal(spy.log,
                      ALICE_LINE(" CLEAR PUT bob@localhost=3 "
                                 "PUT erin@localhost=0 PUT fay@localhost=0 "
                                 "VERSION v3"));
  peer_close(&p);
  kith_store_close(g_store);
  g_store = NULL;
  spy_done(&spy);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_fetch),
      cmocka_unit_test(test_connection_freed_first),
      cmocka_unit_test(test_versioned_fetch),
      cmocka_unit_test(test_fetch_error_still_sends_presence),
      cmocka_unit_test(test_initial_presence_off),
      cmocka_unit_test(test_spoofed_pushes_refused),
      cmocka_unit_test(test_accepted_pushes),
      cmocka_unit_test(test_remove_push),
      cmocka_unit_test(test_update_and_remove_wait_for_push),
      cmocka_unit_test(test_pending_request_cancelled_on_free),
      cmocka_unit_test(test_presence_tracking),
      cmocka_unit_test(test_presence_from_strangers_and_self),
      cmocka_unit_test(test_disconnect_resets_presence),
      cmocka_unit_test(test_subscribe_accepted_by_default),
      cmocka_unit_test(test_subscribe_rejected),
      cmocka_unit_test(test_subscribe_manual_keeps_pending_in),
      cmocka_unit_test(test_node_override_and_whitelist),
      cmocka_unit_test(test_auto_subscribe_is_idempotent),
      cmocka_unit_test(test_refused_cancelled_removed),
      cmocka_unit_test(test_preapproval_needs_the_feature),
      cmocka_unit_test(test_send_presence),
      cmocka_unit_test(test_component_has_no_client_roster),
      cmocka_unit_test(test_reconnect_fetches_with_cached_version),
      cmocka_unit_test(test_detach_and_attach_to_a_live_session),
      cmocka_unit_test(test_two_bots_settle_in_both),
      cmocka_unit_test(test_failing_allocator),
      cmocka_unit_test(test_store_one_batch_per_change),
      cmocka_unit_test(test_store_damaged_cache_is_reset),
      cmocka_unit_test(test_store_failed_write_is_retried_whole),
      cmocka_unit_test(test_large_result_streams),
      cmocka_unit_test(test_forged_result_streams_nothing),
      cmocka_unit_test(test_result_item_limit),
      cmocka_unit_test(test_result_items_elsewhere),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

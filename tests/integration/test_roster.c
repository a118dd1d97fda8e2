/*
 * Integration: the roster issue against the lab's Prosody 0.12 on loopback.
 * kith clients subscribe to each other (RFC 6121 3), keep their rosters in
 * sync through pushes to several resources (2.1.6, 2.3-2.5), re-login with
 * a roster version (2.6), refuse a forged push, and meet slixmpp as a peer.
 *
 * The lab's accounts are shared with every other integration test, so
 * each scenario resets them before and after it runs: every account logs
 * in, cancels any subscription request it was left with and removes every
 * roster item (reset_accounts()). Every wait is bounded (WAIT_MS).
 *
 * The slixmpp scenarios spawn tests/integration/slixmpp_peer.py (Debian's
 * /usr/bin/python3 with python3-slixmpp) and talk to it only through the
 * server; the peer reports its own checks in a chat message and its exit
 * status.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "lab.h"

extern char **environ;

/* The longest any single wait may take. */
#define WAIT_MS 10000
#define MAX_EVENTS 256
#define MAX_PEERS 8

/* ---- Recording what a connection sees ------------------------------------ */

typedef struct rec_event {
  kith_event_type_t type;
  char jid[160];
  char nick[64];
  char status[128]; /* the presence's <status/>, if any */
  int removed;
} rec_event_t;

typedef struct peer {
  char label[256]; /* "alice@localhost/r1", for trace lines */
  kith_ctx_t *ctx;
  kith_conn_t *conn;
  kith_roster_t *roster;
  rec_event_t ev[MAX_EVENTS];
  size_t nev;
  int started, received, disconnected;
  kith_status_t disc_status;
  int received_query;     /* the last roster result carried a <query/> */
  char roster_get[512];   /* the last roster get this peer sent */
  int sent_sub_presence;  /* subscription stanzas this peer sent */
  char last_message[256]; /* body of the last chat message received */
  int messages;
} peer_t;

/* Every live peer, so that any wait drives every connection. */
static peer_t *g_peers[MAX_PEERS];
static size_t g_npeers;
/* A spawned slixmpp peer, killed at teardown if it is still running. */
static pid_t g_child = -1;
static int g_child_code = -1; /* its exit status once it ended */

static int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One round of the loop over every live connection. */
static void pump_once(void)
{
  kith_conn_t *conns[MAX_PEERS];
  size_t i, n = 0;

  for (i = 0; i < g_npeers; i++)
    if (kith_conn_is_active(g_peers[i]->conn))
      conns[n++] = g_peers[i]->conn;
  if (n == 0)
    poll(NULL, 0, 10);
  else
    kith_run_once(conns, n, 10);
}

/* Drive the loop for `ms` milliseconds, whatever happens. */
static void pump(long ms)
{
  int64_t end = now_ms() + ms;

  while (now_ms() < end)
    pump_once();
}

/* Drive every connection until `cond` holds, failing after WAIT_MS. */
#define WAIT_FOR(cond)                                                         \
  do {                                                                         \
    int64_t deadline_ = now_ms() + WAIT_MS;                                    \
    while (!(cond) && now_ms() < deadline_)                                    \
      pump_once();                                                             \
    if (!(cond))                                                               \
      fail_msg("timed out after %d ms waiting for: %s", WAIT_MS, #cond);       \
  } while (0)

static void copy_str(char *dst, size_t size, const char *src)
{
  snprintf(dst, size, "%s", src ? src : "");
}

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  peer_t *p = ud;
  rec_event_t *r;

  (void)conn;
  if (ev->type == KITH_EVENT_SESSION_START)
    p->started++;
  if (ev->type == KITH_EVENT_DISCONNECTED) {
    p->disconnected++;
    p->disc_status = ev->status;
  }
  if (ev->type == KITH_EVENT_ROSTER_RECEIVED) {
    p->received++;
    p->received_query =
        kith_stanza_child(ev->stanza, "query", KITH_NS_ROSTER) != NULL;
  }
  if (p->nev == MAX_EVENTS)
    return;
  r = &p->ev[p->nev++];
  r->type = ev->type;
  copy_str(r->jid, sizeof(r->jid), ev->jid);
  copy_str(r->nick, sizeof(r->nick), ev->nick);
  copy_str(r->status, sizeof(r->status),
           ev->stanza && strcmp(kith_stanza_name(ev->stanza), "presence") == 0
               ? kith_stanza_child_text(ev->stanza, "status", NULL)
               : NULL);
  r->removed = ev->removed;
}

static int on_message(kith_conn_t *conn, const kith_stanza_t *st, void *ud)
{
  peer_t *p = ud;
  const char *body = kith_stanza_child_text(st, "body", NULL);

  (void)conn;
  if (body == NULL)
    return 0;
  copy_str(p->last_message, sizeof(p->last_message), body);
  p->messages++;
  return 1;
}

/* The trace log shows what went on the wire: keep the roster gets and
 * count the subscription stanzas sent. */
static void on_log(void *ud, kith_log_level_t level, const char *area,
                   const char *msg)
{
  peer_t *p = ud;

  (void)area;
  if (getenv("KITH_TEST_TRACE"))
    fprintf(stderr, "[%s] %s %s\n", p->label, kith_log_level_name(level), msg);
  if (strncmp(msg, "SEND ", 5) != 0)
    return;
  if (strstr(msg, "<iq") && strstr(msg, "type='get'") &&
      strstr(msg, KITH_NS_ROSTER))
    copy_str(p->roster_get, sizeof(p->roster_get), msg + 5);
  if (strstr(msg, "<presence") &&
      (strstr(msg, "type='subscribe") || strstr(msg, "type='unsubscribe")))
    p->sent_sub_presence++;
}

/* ---- Queries on what was recorded ---------------------------------------- */

/* `jid` matches a bare JID and any full JID of it; NULL matches anything. */
static int jid_matches(const char *have, const char *want)
{
  size_t n;

  if (want == NULL)
    return 1;
  n = strlen(want);
  return strncmp(have, want, n) == 0 && (have[n] == '\0' || have[n] == '/');
}

static const rec_event_t *find_event(const peer_t *p, kith_event_type_t type,
                                     const char *jid)
{
  size_t i;

  for (i = 0; i < p->nev; i++)
    if (p->ev[i].type == type && jid_matches(p->ev[i].jid, jid))
      return &p->ev[i];
  return NULL;
}

static size_t count_events(const peer_t *p, kith_event_type_t type,
                           const char *jid)
{
  size_t i, n = 0;

  for (i = 0; i < p->nev; i++)
    if (p->ev[i].type == type && jid_matches(p->ev[i].jid, jid))
      n++;
  return n;
}

/* Whether a presence event of `type` from `jid` carried `status`. */
static int saw_status(const peer_t *p, kith_event_type_t type, const char *jid,
                      const char *status)
{
  size_t i;

  for (i = 0; i < p->nev; i++)
    if (p->ev[i].type == type && jid_matches(p->ev[i].jid, jid) &&
        strcmp(p->ev[i].status, status) == 0)
      return 1;
  return 0;
}

static void clear_events(peer_t *p)
{
  p->nev = 0;
}

static kith_roster_item_t *item_of(const peer_t *p, const char *jid)
{
  kith_roster_node_t *node = kith_roster_self(p->roster);

  return node ? kith_roster_node_item(node, jid) : NULL;
}

static size_t roster_size(const peer_t *p)
{
  kith_roster_node_t *node = kith_roster_self(p->roster);

  return node ? kith_roster_node_size(node) : 0;
}

/* The item exists with exactly this subscription and no request of ours
 * pending. */
static int sub_is(const peer_t *p, const char *jid, kith_sub_t sub)
{
  kith_roster_item_t *it = item_of(p, jid);

  return it && kith_roster_item_sub(it) == sub &&
         !(kith_roster_item_flags(it) & KITH_ROSTER_PENDING_OUT);
}

static int has_group(const kith_roster_item_t *it, const char *group)
{
  size_t i;

  for (i = 0; i < kith_roster_item_group_count(it); i++)
    if (strcmp(kith_roster_item_group_at(it, i), group) == 0)
      return 1;
  return 0;
}

/* When set, peer_new() keeps the roster in this store. */
static kith_store_t *g_store;

/* ---- Peers --------------------------------------------------------------- */

/* A client for ACCOUNT ("ALICE", ...) with `resource`, roster attached with
 * the default policy (accept, auto-subscribe, initial presence). */
static peer_t *peer_new(const char *account, const char *resource)
{
  peer_t *p = calloc(1, sizeof(*p));
  char key[64], jid[256];

  assert_non_null(p);
  assert_true(g_npeers < MAX_PEERS);
  snprintf(key, sizeof(key), "%s_JID", account);
  snprintf(jid, sizeof(jid), "%s/%s", lab_get(key), resource);
  snprintf(p->label, sizeof(p->label), "%s", jid);
  assert_int_equal(kith_ctx_new(NULL, &p->ctx), KITH_OK);
  kith_ctx_set_log(p->ctx, KITH_LOG_TRACE, on_log, p);
  assert_int_equal(kith_conn_new(p->ctx, &p->conn), KITH_OK);
  assert_true(kith_conn_on(p->conn, KITH_EVENT_ANY, on_event, p) > 0);
  assert_true(
      kith_conn_add_handler(p->conn, "message", NULL, NULL, on_message, p) > 0);
  assert_int_equal(kith_conn_set_server(p->conn, lab_get("XMPP_HOST"),
                                        (unsigned)lab_get_int("C2S_PORT")),
                   KITH_OK);
  assert_int_equal(kith_conn_set_ca_file(p->conn, lab_get("CA_FILE")), KITH_OK);
  assert_int_equal(kith_conn_set_jid(p->conn, jid), KITH_OK);
  snprintf(key, sizeof(key), "%s_PASSWORD", account);
  assert_int_equal(kith_conn_set_password(p->conn, lab_get(key)), KITH_OK);
  assert_int_equal(kith_conn_set_timeouts(p->conn, WAIT_MS, 2000), KITH_OK);
  assert_int_equal(kith_conn_set_iq_timeout(p->conn, WAIT_MS), KITH_OK);
  assert_int_equal(kith_roster_new(p->ctx, &p->roster), KITH_OK);
  if (g_store)
    assert_int_equal(kith_roster_set_store(p->roster, g_store), KITH_OK);
  assert_int_equal(kith_roster_attach(p->roster, p->conn), KITH_OK);
  g_peers[g_npeers++] = p;
  return p;
}

typedef struct done {
  int fired;
  kith_status_t status;
  char cond[64]; /* the error condition of an error reply */
  char type[16]; /* and its type attribute */
} done_t;

static void record_reply(done_t *d, kith_status_t status,
                         const kith_stanza_t *reply)
{
  const kith_stanza_t *err =
      reply ? kith_stanza_child(reply, "error", NULL) : NULL;

  d->fired++;
  d->status = status;
  copy_str(d->cond, sizeof(d->cond),
           reply ? kith_stanza_error_condition(reply) : NULL);
  copy_str(d->type, sizeof(d->type), err ? kith_stanza_type(err) : NULL);
}

static void on_roster_done(kith_roster_t *roster, kith_status_t status,
                           const kith_stanza_t *reply, void *ud)
{
  (void)roster;
  record_reply(ud, status, reply);
}

static void on_iq_done(kith_conn_t *conn, kith_status_t status,
                       const kith_stanza_t *reply, void *ud)
{
  (void)conn;
  record_reply(ud, status, reply);
}

static kith_stanza_t *new_iq(const char *type, const char *to,
                             const char *child, const char *ns)
{
  kith_stanza_t *iq = NULL;

  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(iq, "type", type), KITH_OK);
  if (to)
    assert_int_equal(kith_stanza_set_attr(iq, "to", to), KITH_OK);
  assert_int_equal(kith_stanza_add_element(iq, child, ns, NULL), KITH_OK);
  return iq;
}

/* Ping the server and wait for the answer. The server handles one
 * session's stanzas in order, so everything this peer sent before has
 * been processed by then (its initial presence, say). */
static void server_sync(peer_t *p)
{
  done_t d = {0};
  kith_stanza_t *iq = new_iq("get", lab_get("DOMAIN"), "ping", KITH_NS_PING);

  assert_int_equal(kith_conn_send_iq(p->conn, iq, WAIT_MS, on_iq_done, &d),
                   KITH_OK);
  kith_stanza_free(iq);
  WAIT_FOR(d.fired);
  assert_int_equal(d.status, KITH_OK);
}

/* Connect and wait until the roster arrived (the initial presence, if on,
 * is sent right after) and the server has seen everything sent. */
static void peer_connect(peer_t *p)
{
  int before = p->received;

  assert_int_equal(kith_conn_connect(p->conn), KITH_OK);
  WAIT_FOR(p->started && p->received > before);
  server_sync(p);
}

static void peer_disconnect(peer_t *p)
{
  int before = p->disconnected;

  kith_conn_disconnect(p->conn);
  WAIT_FOR(p->disconnected > before && !kith_conn_is_active(p->conn));
}

static void peer_free(peer_t *p)
{
  size_t i;

  if (p == NULL)
    return;
  for (i = 0; i < g_npeers; i++)
    if (g_peers[i] == p) {
      g_peers[i] = g_peers[--g_npeers];
      break;
    }
  /* A clean close where possible, so the server does not keep a stale
   * session around for the next scenario. */
  if (kith_conn_is_ready(p->conn)) {
    int64_t end = now_ms() + 3000;
    kith_conn_disconnect(p->conn);
    while (kith_conn_is_active(p->conn) && now_ms() < end)
      kith_run_once(&p->conn, 1, 20);
  }
  kith_roster_free(p->roster);
  kith_conn_free(p->conn);
  kith_ctx_free(p->ctx);
  free(p);
}

static void free_all_peers(void)
{
  while (g_npeers > 0)
    peer_free(g_peers[g_npeers - 1]);
}

/* ---- Resetting the lab accounts ------------------------------------------ */

static const char *const accounts[] = {"ALICE", "BOB", "CAROL", "DAVE"};
#define NACCOUNTS (sizeof(accounts) / sizeof(accounts[0]))

static const char *account_jid(const char *account)
{
  char key[64];

  snprintf(key, sizeof(key), "%s_JID", account);
  return lab_get(key);
}

/* Send a raw <presence type='unsubscribed'/>: it cancels a request the
 * contact left pending with us (RFC 6121 3.2), and the server drops it
 * when there is none. It goes around kith's own bookkeeping on purpose:
 * kith does not know about requests from before this login. */
static void send_raw_unsubscribed(peer_t *p, const char *to)
{
  kith_stanza_t *st = NULL;

  assert_int_equal(kith_stanza_new(NULL, "presence", NULL, &st), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "to", to), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "type", "unsubscribed"), KITH_OK);
  assert_int_equal(kith_conn_send(p->conn, st), KITH_OK);
  kith_stanza_free(st);
}

/* Remove every item of the peer's roster, in batches, and wait until it
 * is empty. */
static void remove_all_items(peer_t *p)
{
  kith_roster_node_t *node = kith_roster_self(p->roster);
  size_t cursor, n, i;
  kith_roster_item_t *it;
  char jids[32][160];
  done_t d[32];

  assert_non_null(node);
  while (roster_size(p) > 0) {
    cursor = n = 0;
    while (n < 32 && (it = kith_roster_node_next(node, &cursor)) != NULL)
      copy_str(jids[n++], sizeof(jids[0]), kith_roster_item_jid(it));
    memset(d, 0, sizeof(d));
    for (i = 0; i < n; i++)
      assert_int_equal(
          kith_roster_remove(p->roster, jids[i], on_roster_done, &d[i]),
          KITH_OK);
    /* Each removal is done when its push has taken the item away. */
    for (i = 0; i < n; i++) {
      WAIT_FOR(d[i].fired && item_of(p, jids[i]) == NULL);
      assert_int_equal(d[i].status, KITH_OK);
    }
  }
}

/* Bring one account back to an empty roster with nothing pending. The
 * roster answers nothing by itself (manual policy) and sends no presence:
 * other accounts' clients, if any, see nothing of the reset. */
static void reset_account(const char *account)
{
  peer_t *p = peer_new(account, "reset");
  size_t i;

  kith_roster_set_auto_authorize(p->roster, KITH_AUTHORIZE_MANUAL);
  kith_roster_set_auto_subscribe(p->roster, 0);
  kith_roster_set_initial_presence(p->roster, 0);
  peer_connect(p);
  for (i = 0; i < NACCOUNTS; i++)
    if (strcmp(accounts[i], account) != 0)
      send_raw_unsubscribed(p, account_jid(accounts[i]));
  server_sync(p);
  remove_all_items(p);
  server_sync(p);
  peer_free(p);
}

static void reset_accounts(void)
{
  size_t i;

  for (i = 0; i < NACCOUNTS; i++)
    reset_account(accounts[i]);
}

/* What the server holds: the flags of `contact` in ACCOUNT's roster, read
 * by a fresh login that fetches the whole roster, or -1 when there is no
 * item. This checks the server's state, not kith's prediction of it. */
static int server_flags(const char *account, const char *contact)
{
  peer_t *p = peer_new(account, "check");
  kith_roster_item_t *it;
  int flags;

  kith_roster_set_auto_authorize(p->roster, KITH_AUTHORIZE_MANUAL);
  kith_roster_set_initial_presence(p->roster, 0);
  peer_connect(p);
  it = item_of(p, contact);
  /* pending_in is never in a roster result; only to/from/ask count. */
  flags =
      it ? (int)(kith_roster_item_flags(it) &
                 (KITH_ROSTER_TO | KITH_ROSTER_FROM | KITH_ROSTER_PENDING_OUT))
         : -1;
  peer_free(p);
  return flags;
}

static int setup(void **state)
{
  (void)state;
  reset_accounts();
  return 0;
}

static int teardown(void **state)
{
  int status;

  (void)state;
  if (g_child > 0) {
    kill(g_child, SIGTERM);
    waitpid(g_child, &status, 0);
    g_child = -1;
  }
  free_all_peers();
  reset_accounts();
  return 0;
}

/* ---- Subscriptions: the four-step handshake ------------------------------ */

static void test_subscribe_both_ways(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *bj = lab_get("BOB_JID");
  peer_t *a = peer_new("ALICE", "r1"), *b = peer_new("BOB", "r1");
  const rec_event_t *e;

  (void)state;
  peer_connect(a);
  peer_connect(b);
  assert_int_equal(kith_roster_send_subscription(a->roster, bj, "subscribe",
                                                 "Alice L.", NULL),
                   KITH_OK);
  /* alice asks; bob's policy approves and asks back; alice's approves. */
  WAIT_FOR(sub_is(a, bj, KITH_SUB_BOTH) && sub_is(b, aj, KITH_SUB_BOTH) &&
           count_events(a, KITH_EVENT_GOT_ONLINE, bj) > 0 &&
           count_events(b, KITH_EVENT_GOT_ONLINE, aj) > 0);
  server_sync(a);
  server_sync(b);
  pump(300);

  /* bob heard the request with alice's nickname (XEP-0172). */
  assert_non_null(find_event(b, KITH_EVENT_PRESENCE_SUBSCRIBE, aj));
  e = find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, aj);
  assert_non_null(e);
  assert_string_equal(e->nick, "Alice L.");
  /* alice heard the approval, and bob's request back. */
  assert_non_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, bj));
  assert_non_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, bj));
  assert_non_null(find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, aj));
  assert_non_null(find_event(a, KITH_EVENT_ROSTER_UPDATE, bj));
  assert_non_null(find_event(b, KITH_EVENT_ROSTER_UPDATE, aj));
  /* Two auto-subscribing clients do not loop: each asked exactly once. */
  assert_int_equal(count_events(b, KITH_EVENT_PRESENCE_SUBSCRIBE, aj), 1);
  assert_int_equal(count_events(a, KITH_EVENT_PRESENCE_SUBSCRIBE, bj), 1);
  assert_int_equal(count_events(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED, bj),
                   0);
  assert_int_equal(count_events(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED, bj),
                   0);
  /* Nothing else is left pending on either side. */
  assert_int_equal(kith_roster_item_flags(item_of(a, bj)),
                   KITH_ROSTER_TO | KITH_ROSTER_FROM);
  assert_int_equal(kith_roster_item_flags(item_of(b, aj)),
                   KITH_ROSTER_TO | KITH_ROSTER_FROM);
  /* Each sees the other online. */
  assert_non_null(kith_roster_item_best_resource(item_of(a, bj)));
  assert_string_equal(kith_roster_item_best_resource(item_of(a, bj)), "r1");
  assert_string_equal(kith_roster_item_best_resource(item_of(b, aj)), "r1");

  /* alice leaves: bob sees her go, and alice's own roster forgets who was
   * online (presence_reset, then got_offline). */
  clear_events(a);
  peer_disconnect(a);
  assert_non_null(find_event(a, KITH_EVENT_PRESENCE_RESET, bj));
  assert_int_equal(count_events(a, KITH_EVENT_GOT_OFFLINE, bj), 1);
  assert_null(kith_roster_item_best_resource(item_of(a, bj)));
  assert_int_equal(kith_roster_item_sub(item_of(a, bj)), KITH_SUB_BOTH);
  WAIT_FOR(count_events(b, KITH_EVENT_GOT_OFFLINE, aj) > 0);
  assert_null(kith_roster_item_best_resource(item_of(b, aj)));
  peer_free(a);
  peer_free(b);

  /* The server agrees with what kith tracked. */
  assert_int_equal(server_flags("ALICE", bj),
                   KITH_ROSTER_TO | KITH_ROSTER_FROM);
  assert_int_equal(server_flags("BOB", aj), KITH_ROSTER_TO | KITH_ROSTER_FROM);
}

/* ---- Subscriptions: unsubscribing and revoking (RFC 6121 3.2, 3.3) ------- */

/* a and b connected; subscribe a to b and wait for 'both' with presence. */
static void make_mutual(peer_t *a, const char *aj, peer_t *b, const char *bj)
{
  assert_int_equal(
      kith_roster_send_subscription(a->roster, bj, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(sub_is(a, bj, KITH_SUB_BOTH) && sub_is(b, aj, KITH_SUB_BOTH) &&
           count_events(a, KITH_EVENT_GOT_ONLINE, bj) > 0 &&
           count_events(b, KITH_EVENT_GOT_ONLINE, aj) > 0);
  server_sync(a);
  server_sync(b);
}

/* alice, subscribed both ways with bob, stops watching him (RFC 6121
 * 3.3): she keeps 'from', he keeps 'to'. */
static void unsubscribe_alice_from_bob(peer_t *a, const char *aj, peer_t *b,
                                       const char *bj)
{
  make_mutual(a, aj, b, bj);
  clear_events(a);
  clear_events(b);
  assert_int_equal(
      kith_roster_send_subscription(a->roster, bj, "unsubscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(sub_is(a, bj, KITH_SUB_FROM) && sub_is(b, aj, KITH_SUB_TO) &&
           find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVE, aj));
  server_sync(a);
  server_sync(b);
}

static void test_unsubscribe_then_revoke(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *bj = lab_get("BOB_JID");
  peer_t *a = peer_new("ALICE", "r1"), *b = peer_new("BOB", "r1");

  (void)state;
  peer_connect(a);
  peer_connect(b);
  unsubscribe_alice_from_bob(a, aj, b, bj);
  /* A subscriber left; it had not merely withdrawn a request. */
  assert_null(find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_CANCELLED, aj));
  /* bob still sees alice. */
  assert_string_equal(kith_roster_item_best_resource(item_of(b, aj)), "r1");

  /* alice revokes bob's subscription to her (3.2): nothing is left, and
   * bob no longer sees her online. */
  assert_int_equal(
      kith_roster_send_subscription(a->roster, bj, "unsubscribed", NULL, NULL),
      KITH_OK);
  WAIT_FOR(sub_is(a, bj, KITH_SUB_NONE) && sub_is(b, aj, KITH_SUB_NONE) &&
           find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED, aj) &&
           count_events(b, KITH_EVENT_GOT_OFFLINE, aj) > 0);
  assert_null(kith_roster_item_best_resource(item_of(b, aj)));
  assert_null(find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED, aj));
  /* Neither policy answered anything: these were not requests. */
  server_sync(a);
  server_sync(b);
  assert_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, bj));
  assert_null(find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, aj));
  peer_free(a);
  peer_free(b);
  assert_int_equal(server_flags("ALICE", bj), 0);
  assert_int_equal(server_flags("BOB", aj), 0);
}

/*
 * After alice unsubscribes from bob she gets no more of his presence, so
 * the resources she tracked for him must go (got_offline): kith's own
 * RFC 6121 table marks outbound 'unsubscribe' from To/Both with
 * KITH__SUB_A_FORGET_PRESENCE.
 *
 * LIBRARY BUG (reported to the lead): presence.c send_sub() applies only
 * the new flags of the outbound rule and ignores its actions, so
 * FORGET_PRESENCE never runs for what the client sends; nor does the push
 * that takes `to` away clear anything. RFC 6121 3.3.3 has the contact's
 * server send unavailable presence from the contact's resources, but
 * Prosody 0.12 sends none (only the push), so bob stays "online" in
 * alice's roster for good: his later unavailable presence goes only to
 * his subscribers, which alice no longer is. The test skips while the bug
 * is there and asserts once it is fixed.
 */
static void test_unsubscribe_forgets_presence(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *bj = lab_get("BOB_JID");
  peer_t *a = peer_new("ALICE", "r1"), *b = peer_new("BOB", "r1");
  int stale;

  (void)state;
  peer_connect(a);
  peer_connect(b);
  unsubscribe_alice_from_bob(a, aj, b, bj);
  pump(300);
  /* RFC 6121 3.3.3: giving up `to` means no more presence from the
   * contact; Prosody 0.12 sends no unavailable, so kith forgets it. */
  stale = kith_roster_item_best_resource(item_of(a, bj)) != NULL;
  assert_false(stale);
  assert_int_equal(count_events(a, KITH_EVENT_GOT_OFFLINE, bj), 1);
  peer_free(a);
  peer_free(b);
}

/* ---- Subscriptions: pre-approval (RFC 6121 3.4) -------------------------- */

static void test_preapproval(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *bj = lab_get("BOB_JID");
  peer_t *a = peer_new("ALICE", "r1"), *b = peer_new("BOB", "r1");

  (void)state;
  kith_roster_set_auto_authorize(a->roster, KITH_AUTHORIZE_MANUAL);
  peer_connect(a);
  peer_connect(b);
  /* Prosody 0.12 advertises pre-approval; alice approves bob before he
   * asks. The server creates the item and pushes it. */
  assert_int_equal(
      kith_roster_send_subscription(a->roster, bj, "subscribed", NULL, NULL),
      KITH_OK);
  WAIT_FOR(item_of(a, bj) != NULL);
  server_sync(a);
  assert_int_equal(kith_roster_item_sub(item_of(a, bj)), KITH_SUB_NONE);

  /* bob asks; alice's server answers from the pre-approval, so alice's
   * manual policy never sees a request. */
  assert_int_equal(
      kith_roster_send_subscription(b->roster, aj, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(sub_is(b, aj, KITH_SUB_TO) && sub_is(a, bj, KITH_SUB_FROM) &&
           find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, aj) &&
           count_events(b, KITH_EVENT_GOT_ONLINE, aj) > 0);
  server_sync(a);
  assert_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, bj));
  assert_int_equal(a->sent_sub_presence, 1);
  /* The pre-approval was consumed by the request it approved. */
  assert_int_equal(kith_roster_item_flags(item_of(a, bj)), KITH_ROSTER_FROM);
  peer_free(a);
  peer_free(b);
  assert_int_equal(server_flags("ALICE", bj), KITH_ROSTER_FROM);
  assert_int_equal(server_flags("BOB", aj), KITH_ROSTER_TO);
}

/*
 * After a pre-approval that the server accepted, the item should say so
 * (KITH_ROSTER_APPROVED, "pre-approved (RFC 6121 3.4)" in roster.h).
 *
 * LIBRARY BUG (reported to the lead): kith predicts APPROVED when it
 * sends the pre-approval, but the server's push replaces the flags, and
 * sync.c keeps only the tracked pending_in across a push. Prosody 0.12
 * stores the pre-approval yet never puts approved='true' in a push or
 * roster result (tests/data/transcripts/README.md), although RFC 6121
 * 2.1.2.1 defines the attribute for exactly this and 3.4 has the server
 * keep the state. So against Prosody the flag is never visible: kith
 * reports plain None for a pre-approved contact. Keeping a tracked
 * APPROVED across a push that does not contradict it (no 'from', no
 * pending_in) would fix it, as is done for pending_in. The test skips
 * while the bug is there and asserts once it is fixed.
 */
static void test_preapproval_flag_visible(void **state)
{
  const char *bj = lab_get("BOB_JID");
  peer_t *a = peer_new("ALICE", "r1");
  unsigned flags;

  (void)state;
  peer_connect(a);
  assert_int_equal(
      kith_roster_send_subscription(a->roster, bj, "subscribed", NULL, NULL),
      KITH_OK);
  WAIT_FOR(item_of(a, bj) != NULL);
  server_sync(a);
  /* Prosody's push omits approved='true'; kith keeps what it tracked. */
  flags = kith_roster_item_flags(item_of(a, bj));
  assert_int_equal(flags, KITH_ROSTER_APPROVED);
  peer_free(a);
}

/* ---- Subscriptions: both ask at once ------------------------------------- */

static void test_simultaneous_requests(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *bj = lab_get("BOB_JID");
  peer_t *a = peer_new("ALICE", "r1"), *b = peer_new("BOB", "r1");

  (void)state;
  peer_connect(a);
  peer_connect(b);
  /* Each request crosses the other: each side approves the one it gets
   * but does not ask again, since its own request is pending. */
  assert_int_equal(
      kith_roster_send_subscription(a->roster, bj, "subscribe", NULL, NULL),
      KITH_OK);
  assert_int_equal(
      kith_roster_send_subscription(b->roster, aj, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(sub_is(a, bj, KITH_SUB_BOTH) && sub_is(b, aj, KITH_SUB_BOTH) &&
           count_events(a, KITH_EVENT_GOT_ONLINE, bj) > 0 &&
           count_events(b, KITH_EVENT_GOT_ONLINE, aj) > 0);
  server_sync(a);
  server_sync(b);
  pump(300);
  /* One subscribe and one subscribed each; nothing more. */
  assert_int_equal(a->sent_sub_presence, 2);
  assert_int_equal(b->sent_sub_presence, 2);
  assert_int_equal(kith_roster_item_flags(item_of(a, bj)),
                   KITH_ROSTER_TO | KITH_ROSTER_FROM);
  assert_int_equal(kith_roster_item_flags(item_of(b, aj)),
                   KITH_ROSTER_TO | KITH_ROSTER_FROM);
  peer_free(a);
  peer_free(b);
  assert_int_equal(server_flags("ALICE", bj),
                   KITH_ROSTER_TO | KITH_ROSTER_FROM);
  assert_int_equal(server_flags("BOB", aj), KITH_ROSTER_TO | KITH_ROSTER_FROM);
}

/* ---- Subscriptions: a request made while the contact was offline --------- */

static void test_request_waiting_at_login(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *dj = lab_get("DAVE_JID");
  peer_t *a = peer_new("ALICE", "r1"), *d;

  (void)state;
  peer_connect(a);
  assert_int_equal(
      kith_roster_send_subscription(a->roster, dj, "subscribe", "Alice", NULL),
      KITH_OK);
  WAIT_FOR(item_of(a, dj) &&
           (kith_roster_item_flags(item_of(a, dj)) & KITH_ROSTER_PENDING_OUT));
  server_sync(a);

  /* dave comes online later: the server hands him the stored request
   * after his initial presence (RFC 6121 3.1.3), and his policy accepts
   * it and asks back. */
  d = peer_new("DAVE", "r1");
  peer_connect(d);
  WAIT_FOR(sub_is(a, dj, KITH_SUB_BOTH) && sub_is(d, aj, KITH_SUB_BOTH) &&
           count_events(a, KITH_EVENT_GOT_ONLINE, dj) > 0 &&
           count_events(d, KITH_EVENT_GOT_ONLINE, aj) > 0);
  assert_non_null(find_event(d, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, aj));
  peer_free(a);
  peer_free(d);
  assert_int_equal(server_flags("DAVE", aj), KITH_ROSTER_TO | KITH_ROSTER_FROM);
}

/* ---- Presence: a contact with two resources (RFC 6121 4) ----------------- */

static void test_two_contact_resources(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *bj = lab_get("BOB_JID");
  peer_t *a = peer_new("ALICE", "r1"), *b1 = peer_new("BOB", "r1"), *b2;
  const char *status = NULL;
  kith_show_t show;
  int prio = 0;

  (void)state;
  peer_connect(a);
  peer_connect(b1);
  make_mutual(a, aj, b1, bj);
  assert_int_equal(kith_roster_send_presence(b1->roster, NULL, NULL, NULL, NULL,
                                             "at desk", 1),
                   KITH_OK);
  WAIT_FOR(saw_status(a, KITH_EVENT_CHANGED_STATUS, bj, "at desk"));
  clear_events(a);

  /* A second resource with a higher priority is the best one; alice's
   * contact came online only once. */
  b2 = peer_new("BOB", "r2");
  kith_roster_set_initial_presence(b2->roster, 0);
  peer_connect(b2);
  assert_int_equal(kith_roster_send_presence(b2->roster, NULL, NULL, NULL,
                                             "away", "on the phone", 10),
                   KITH_OK);
  WAIT_FOR(kith_roster_item_resource_count(item_of(a, bj)) == 2);
  assert_int_equal(count_events(a, KITH_EVENT_GOT_ONLINE, bj), 0);
  assert_string_equal(kith_roster_item_best_resource(item_of(a, bj)), "r2");
  assert_int_equal(kith_roster_item_presence(item_of(a, bj), "r2", &show,
                                             &status, &prio, NULL),
                   KITH_OK);
  assert_int_equal(show, KITH_SHOW_AWAY);
  assert_string_equal(status, "on the phone");
  assert_int_equal(prio, 10);

  /* r2 leaves: bob is still online through r1. */
  peer_disconnect(b2);
  WAIT_FOR(kith_roster_item_resource_count(item_of(a, bj)) == 1);
  assert_string_equal(kith_roster_item_best_resource(item_of(a, bj)), "r1");
  assert_int_equal(count_events(a, KITH_EVENT_GOT_OFFLINE, bj), 0);
  /* r1 leaves too: now he is offline. */
  peer_disconnect(b1);
  WAIT_FOR(count_events(a, KITH_EVENT_GOT_OFFLINE, bj) == 1);
  assert_null(kith_roster_item_best_resource(item_of(a, bj)));
  peer_free(b2);
  peer_free(b1);
  peer_free(a);
}

/* ---- Policy: reject and manual ------------------------------------------- */

static void test_reject_policy(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *cj = lab_get("CAROL_JID");
  peer_t *a = peer_new("ALICE", "r1"), *c = peer_new("CAROL", "r1");
  kith_roster_item_t *it;

  (void)state;
  kith_roster_set_auto_authorize(c->roster, KITH_AUTHORIZE_REJECT);
  peer_connect(a);
  peer_connect(c);
  assert_int_equal(
      kith_roster_send_subscription(a->roster, cj, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(count_events(a, KITH_EVENT_PRESENCE_UNSUBSCRIBED, cj) > 0);
  /* The push that clears 'ask' follows the presence. */
  WAIT_FOR((it = item_of(a, cj)) != NULL &&
           !(kith_roster_item_flags(it) &
             (KITH_ROSTER_TO | KITH_ROSTER_PENDING_OUT)));
  assert_int_equal(count_events(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, aj),
                   1);
  /* Our pending request was answered 'unsubscribed': a refusal. */
  assert_non_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED, cj));
  assert_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, cj));
  assert_int_equal(kith_roster_item_flags(it), 0);
  /* carol neither approved nor asked back. */
  assert_null(item_of(c, aj));
  peer_free(a);
  peer_free(c);
  assert_int_equal(server_flags("ALICE", cj), 0);
  assert_int_equal(server_flags("CAROL", aj), -1);
}

static void test_manual_policy(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *dj = lab_get("DAVE_JID");
  peer_t *a = peer_new("ALICE", "r1"), *d = peer_new("DAVE", "r1");
  kith_roster_item_t *it;

  (void)state;
  kith_roster_set_auto_authorize(d->roster, KITH_AUTHORIZE_MANUAL);
  peer_connect(a);
  peer_connect(d);
  assert_int_equal(
      kith_roster_send_subscription(a->roster, dj, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(count_events(d, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, aj) > 0);
  WAIT_FOR(item_of(a, dj) != NULL);
  /* dave says nothing: give a reply every chance to arrive first. */
  server_sync(d);
  pump(500);
  server_sync(a);
  assert_int_equal(d->sent_sub_presence, 0);
  it = item_of(a, dj);
  assert_int_equal(kith_roster_item_flags(it) &
                       (KITH_ROSTER_TO | KITH_ROSTER_PENDING_OUT),
                   KITH_ROSTER_PENDING_OUT);
  assert_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, dj));
  assert_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED, dj));
  assert_null(item_of(d, aj)); /* a request creates no item (RFC 6121 A.1) */

  /* Now dave approves by hand. */
  assert_int_equal(
      kith_roster_send_subscription(d->roster, aj, "subscribed", NULL, NULL),
      KITH_OK);
  WAIT_FOR(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, dj) &&
           sub_is(a, dj, KITH_SUB_TO) && sub_is(d, aj, KITH_SUB_FROM) &&
           count_events(a, KITH_EVENT_GOT_ONLINE, dj) > 0);
  /* Manual means manual: dave did not ask back. */
  server_sync(d);
  assert_int_equal(d->sent_sub_presence, 1);
  peer_free(a);
  peer_free(d);
  assert_int_equal(server_flags("ALICE", dj), KITH_ROSTER_TO);
  assert_int_equal(server_flags("DAVE", aj), KITH_ROSTER_FROM);
}

/* A request left unanswered by a manual policy is not lost with the
 * session: the server hands it over again at the next login (RFC 6121
 * 3.1.3), and approving it then works. */
static void test_manual_request_survives_relogin(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *dj = lab_get("DAVE_JID");
  peer_t *a = peer_new("ALICE", "r1"), *d = peer_new("DAVE", "r1");

  (void)state;
  kith_roster_set_auto_authorize(d->roster, KITH_AUTHORIZE_MANUAL);
  peer_connect(a);
  peer_connect(d);
  assert_int_equal(
      kith_roster_send_subscription(a->roster, dj, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(count_events(d, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, aj) == 1);
  peer_disconnect(d);
  clear_events(d);
  peer_connect(d);
  WAIT_FOR(count_events(d, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, aj) == 1);
  assert_int_equal(d->sent_sub_presence, 0);
  assert_int_equal(
      kith_roster_send_subscription(d->roster, aj, "subscribed", NULL, NULL),
      KITH_OK);
  WAIT_FOR(sub_is(a, dj, KITH_SUB_TO) && sub_is(d, aj, KITH_SUB_FROM));
  assert_int_equal(kith_roster_item_flags(item_of(d, aj)), KITH_ROSTER_FROM);
  peer_free(a);
  peer_free(d);
}

/* ---- Policy: whitelist and per-node settings ----------------------------- */

static void test_whitelist_overrides_reject(void **state)
{
  const char *aj = lab_get("ALICE_JID"), *bj = lab_get("BOB_JID");
  const char *cj = lab_get("CAROL_JID");
  peer_t *a = peer_new("ALICE", "r1"), *b = peer_new("BOB", "r1");
  peer_t *c = peer_new("CAROL", "r1");
  done_t d = {0};

  (void)state;
  peer_connect(a);
  peer_connect(b);
  peer_connect(c);
  /* carol's roster accepts, but her own node rejects (per-node policy);
   * alice, whom she lists and whitelists, is accepted all the same. */
  kith_roster_node_set_auto_authorize(kith_roster_self(c->roster),
                                      KITH_AUTHORIZE_REJECT);
  kith_roster_node_set_auto_subscribe(kith_roster_self(c->roster), 0);
  assert_int_equal(kith_roster_update(c->roster, aj, "Alice", NULL, 0, NULL,
                                      on_roster_done, &d),
                   KITH_OK);
  WAIT_FOR(d.fired && item_of(c, aj) != NULL);
  kith_roster_item_set_whitelisted(item_of(c, aj), 1);

  assert_int_equal(
      kith_roster_send_subscription(a->roster, cj, "subscribe", NULL, NULL),
      KITH_OK);
  assert_int_equal(
      kith_roster_send_subscription(b->roster, cj, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(sub_is(a, cj, KITH_SUB_TO) && sub_is(c, aj, KITH_SUB_FROM) &&
           find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED, cj));
  server_sync(c);
  /* The node's auto-subscribe is off: carol did not ask back. */
  assert_int_equal(c->sent_sub_presence, 2); /* subscribed + unsubscribed */
  /* The server's push kept the local whitelist mark and the name. */
  assert_true(kith_roster_item_whitelisted(item_of(c, aj)));
  assert_string_equal(kith_roster_item_name(item_of(c, aj)), "Alice");
  assert_null(item_of(c, bj));
  peer_free(a);
  peer_free(b);
  peer_free(c);
}

/* ---- Roster sets seen by a second resource ------------------------------- */

static int item_shows(const peer_t *p, const char *jid, const char *name,
                      const char *g1, const char *g2)
{
  kith_roster_item_t *it = item_of(p, jid);
  size_t want = (g1 != NULL) + (g2 != NULL);

  return it && kith_roster_item_name(it) &&
         strcmp(kith_roster_item_name(it), name) == 0 &&
         kith_roster_item_group_count(it) == want &&
         (g1 == NULL || has_group(it, g1)) && (g2 == NULL || has_group(it, g2));
}

static void test_update_remove_two_resources(void **state)
{
  const char *bj = lab_get("BOB_JID");
  const char *const groups[] = {"Friends", "Work"};
  const char *const work[] = {"Work"};
  peer_t *r1 = peer_new("ALICE", "r1"), *r2 = peer_new("ALICE", "r2");
  done_t d1 = {0}, d2 = {0}, d3 = {0}, d4 = {0};

  (void)state;
  peer_connect(r1);
  peer_connect(r2);
  assert_int_equal(kith_roster_update(r1->roster, bj, "Bobby", groups, 2, NULL,
                                      on_roster_done, &d1),
                   KITH_OK);
  /* The server is authoritative: nothing changes before its push. */
  assert_null(item_of(r1, bj));
  WAIT_FOR(d1.fired && item_shows(r1, bj, "Bobby", "Friends", "Work") &&
           item_shows(r2, bj, "Bobby", "Friends", "Work"));
  assert_int_equal(d1.status, KITH_OK);
  assert_int_equal(kith_roster_item_sub(item_of(r2, bj)), KITH_SUB_NONE);
  assert_non_null(find_event(r2, KITH_EVENT_ROSTER_UPDATE, bj));
  assert_string_equal(kith_roster_node_version(kith_roster_self(r1->roster)),
                      kith_roster_node_version(kith_roster_self(r2->roster)));

  /* A change: new name, one group fewer. */
  assert_int_equal(kith_roster_update(r1->roster, bj, "Robert", work, 1, NULL,
                                      on_roster_done, &d2),
                   KITH_OK);
  WAIT_FOR(d2.fired && item_shows(r1, bj, "Robert", "Work", NULL) &&
           item_shows(r2, bj, "Robert", "Work", NULL));

  /* Removal with kith_roster_remove(). */
  clear_events(r1);
  clear_events(r2);
  assert_int_equal(kith_roster_remove(r1->roster, bj, on_roster_done, &d3),
                   KITH_OK);
  WAIT_FOR(d3.fired && item_of(r1, bj) == NULL && item_of(r2, bj) == NULL);
  assert_int_equal(d3.status, KITH_OK);
  assert_true(find_event(r1, KITH_EVENT_ROSTER_UPDATE, bj)->removed);
  assert_true(find_event(r2, KITH_EVENT_ROSTER_UPDATE, bj)->removed);

  /* Again, removing with subscription='remove' through update. */
  memset(&d1, 0, sizeof(d1));
  assert_int_equal(kith_roster_update(r2->roster, bj, "Bobby", groups, 2, NULL,
                                      on_roster_done, &d1),
                   KITH_OK);
  WAIT_FOR(d1.fired && item_shows(r1, bj, "Bobby", "Friends", "Work") &&
           item_shows(r2, bj, "Bobby", "Friends", "Work"));
  clear_events(r1);
  clear_events(r2);
  assert_int_equal(kith_roster_update(r1->roster, bj, NULL, NULL, 0, "remove",
                                      on_roster_done, &d4),
                   KITH_OK);
  WAIT_FOR(d4.fired && item_of(r1, bj) == NULL && item_of(r2, bj) == NULL);
  assert_int_equal(d4.status, KITH_OK);
  assert_true(find_event(r1, KITH_EVENT_ROSTER_UPDATE, bj)->removed);
  assert_true(find_event(r2, KITH_EVENT_ROSTER_UPDATE, bj)->removed);
  assert_int_equal(roster_size(r1), 0);
  assert_int_equal(roster_size(r2), 0);

  /* Removing what is not there is the server's item-not-found. */
  memset(&d4, 0, sizeof(d4));
  assert_int_equal(kith_roster_remove(r1->roster, bj, on_roster_done, &d4),
                   KITH_OK);
  WAIT_FOR(d4.fired);
  assert_int_equal(d4.status, KITH_ESTANZA);
  assert_string_equal(d4.cond, "item-not-found");
  peer_free(r1);
  peer_free(r2);
}

/* Names and groups with XML's special characters and non-ASCII text make
 * the round trip through the server unchanged; a JID in another case is
 * the same contact (RFC 7622 normalization). */
static void test_update_text_round_trip(void **state)
{
  const char *cj = lab_get("CAROL_JID");
  const char *name = "Carol & <Co> 'one' \"two\"";
  const char *const groups[] = {"\xc3\x9cnic\xc3\xb8"
                                "de \xce\xa9",
                                "a&b<c>"};
  peer_t *r1 = peer_new("ALICE", "r1"), *r2 = peer_new("ALICE", "r2");
  kith_roster_item_t *it;
  char upper[256];
  size_t i;
  done_t d = {0};

  (void)state;
  peer_connect(r1);
  peer_connect(r2);
  for (i = 0; cj[i] && i + 1 < sizeof(upper); i++)
    upper[i] = (char)(cj[i] >= 'a' && cj[i] <= 'z' ? cj[i] - 32 : cj[i]);
  upper[i] = '\0';
  assert_int_equal(kith_roster_update(r1->roster, upper, name, groups, 2, NULL,
                                      on_roster_done, &d),
                   KITH_OK);
  WAIT_FOR(d.fired && item_of(r2, cj) != NULL && item_of(r1, cj) != NULL);
  assert_int_equal(d.status, KITH_OK);
  it = item_of(r2, upper); /* looked up in any case */
  assert_non_null(it);
  assert_string_equal(kith_roster_item_jid(it), cj);
  assert_string_equal(kith_roster_item_name(it), name);
  assert_int_equal(kith_roster_item_group_count(it), 2);
  assert_true(has_group(it, groups[0]));
  assert_true(has_group(it, groups[1]));
  assert_int_equal(roster_size(r2), 1);
  peer_free(r1);
  peer_free(r2);
}

/* ---- Versioned re-login -------------------------------------------------- */

/* A snapshot of the roster as text, to compare two moments. */
static void roster_text(const peer_t *p, char *out, size_t size)
{
  kith_roster_node_t *node = kith_roster_self(p->roster);
  kith_roster_item_t *it;
  size_t cursor = 0, len = 0, i;

  out[0] = '\0';
  while (node && (it = kith_roster_node_next(node, &cursor)) != NULL) {
    const char *name = kith_roster_item_name(it);
    len += (size_t)snprintf(out + len, size - len, "%s name=%s flags=%u [",
                            kith_roster_item_jid(it), name ? name : "-",
                            kith_roster_item_flags(it));
    for (i = 0; len < size && i < kith_roster_item_group_count(it); i++)
      len += (size_t)snprintf(out + len, size - len, "%s,",
                              kith_roster_item_group_at(it, i));
    if (len < size)
      len += (size_t)snprintf(out + len, size - len, "]\n");
    assert_true(len < size);
  }
}

/* Whether the last roster get carried exactly ver='want'. */
static int sent_version(const peer_t *p, const char *want)
{
  char attr[128];

  snprintf(attr, sizeof(attr), "ver='%s'", want);
  return strstr(p->roster_get, attr) != NULL;
}

static void test_versioned_relogin(void **state)
{
  const char *bj = lab_get("BOB_JID"), *cj = lab_get("CAROL_JID");
  const char *dj = lab_get("DAVE_JID");
  const char *const friends[] = {"Friends"};
  peer_t *p = peer_new("ALICE", "r1"), *other;
  char before[2048], after[2048], ver[64];
  done_t d1 = {0}, d2 = {0};

  (void)state;
  /* Give alice a roster: two items, set by another resource. */
  other = peer_new("ALICE", "setup");
  kith_roster_set_initial_presence(other->roster, 0);
  peer_connect(other);
  assert_int_equal(kith_roster_update(other->roster, bj, "Bob", friends, 1,
                                      NULL, on_roster_done, &d1),
                   KITH_OK);
  assert_int_equal(kith_roster_update(other->roster, cj, NULL, NULL, 0, NULL,
                                      on_roster_done, &d2),
                   KITH_OK);
  WAIT_FOR(d1.fired && d2.fired && roster_size(other) == 2);
  peer_free(other);
  memset(&d1, 0, sizeof(d1));

  /* First login: an empty cache asks for everything. */
  peer_connect(p);
  assert_true(sent_version(p, ""));
  assert_true(p->received_query);
  assert_int_equal(roster_size(p), 2);
  assert_non_null(kith_roster_node_version(kith_roster_self(p->roster)));
  copy_str(ver, sizeof(ver),
           kith_roster_node_version(kith_roster_self(p->roster)));
  assert_true(ver[0] != '\0');
  roster_text(p, before, sizeof(before));
  peer_disconnect(p);

  /* The cache outlives the session. */
  roster_text(p, after, sizeof(after));
  assert_string_equal(after, before);

  /* Second login on the same connection and roster: ver=V, and the
   * server's empty result (no <query/>) keeps the cache as it is. */
  clear_events(p);
  p->roster_get[0] = '\0';
  peer_connect(p);
  assert_true(sent_version(p, ver));
  assert_false(p->received_query);
  assert_null(find_event(p, KITH_EVENT_ROSTER_UPDATE, NULL));
  roster_text(p, after, sizeof(after));
  assert_string_equal(after, before);
  assert_string_equal(kith_roster_node_version(kith_roster_self(p->roster)),
                      ver);

  /* An explicit fetch in the session works the same way. */
  p->roster_get[0] = '\0';
  assert_int_equal(kith_roster_fetch(p->roster, on_roster_done, &d1), KITH_OK);
  WAIT_FOR(d1.fired);
  assert_int_equal(d1.status, KITH_OK);
  assert_true(sent_version(p, ver));
  assert_false(p->received_query);
  assert_int_equal(p->received, 3);
  roster_text(p, after, sizeof(after));
  assert_string_equal(after, before);
  peer_disconnect(p);

  /* While alice is away, another resource adds dave. The next login sends
   * the old version; Prosody answers with the whole roster, and only the
   * new item is reported. */
  other = peer_new("ALICE", "setup");
  kith_roster_set_initial_presence(other->roster, 0);
  peer_connect(other);
  memset(&d1, 0, sizeof(d1));
  assert_int_equal(kith_roster_update(other->roster, dj, "Dave", NULL, 0, NULL,
                                      on_roster_done, &d1),
                   KITH_OK);
  WAIT_FOR(d1.fired && roster_size(other) == 3);
  peer_free(other);

  clear_events(p);
  p->roster_get[0] = '\0';
  peer_connect(p);
  assert_true(sent_version(p, ver));
  assert_int_equal(roster_size(p), 3);
  assert_int_equal(count_events(p, KITH_EVENT_ROSTER_UPDATE, NULL), 1);
  assert_non_null(find_event(p, KITH_EVENT_ROSTER_UPDATE, dj));
  assert_string_not_equal(kith_roster_node_version(kith_roster_self(p->roster)),
                          ver);
  peer_free(p);
}

/* The same cache attached to a brand-new connection also sends its
 * version. */
static void test_versioned_new_connection(void **state)
{
  const char *bj = lab_get("BOB_JID");
  peer_t *p = peer_new("ALICE", "r1"), *q;
  char ver[64];
  done_t d = {0};

  (void)state;
  peer_connect(p);
  assert_int_equal(kith_roster_update(p->roster, bj, "Bob", NULL, 0, NULL,
                                      on_roster_done, &d),
                   KITH_OK);
  WAIT_FOR(d.fired && item_of(p, bj) != NULL);
  copy_str(ver, sizeof(ver),
           kith_roster_node_version(kith_roster_self(p->roster)));
  assert_true(ver[0] != '\0');
  peer_disconnect(p);

  /* Move the roster to another connection object. */
  q = peer_new("ALICE", "r2");
  kith_roster_detach(q->roster);
  kith_roster_free(q->roster);
  kith_roster_detach(p->roster);
  q->roster = p->roster;
  p->roster = NULL;
  assert_int_equal(kith_roster_attach(q->roster, q->conn), KITH_OK);
  peer_connect(q);
  assert_true(sent_version(q, ver));
  assert_false(q->received_query);
  assert_non_null(item_of(q, bj));
  assert_string_equal(kith_roster_item_name(item_of(q, bj)), "Bob");
  /* q now holds a roster made with p's context: q goes first. */
  peer_free(q);
  peer_free(p);
}

/* A client that keeps its roster in SQLite, restarted: the cache is read
 * before connecting, the fetch is versioned and the server's answer is
 * empty (RFC 6121 2.6.3), and the roster is the same. */
static void test_restart_with_sqlite_cache(void **state)
{
  const char *bj = lab_get("BOB_JID"), *const groups[] = {"Friends", "Lab"};
  char dir[] = "/tmp/kith-client-store-XXXXXX", uri[128], path[160], ver[64];
  kith_roster_node_t *node = NULL;
  kith_roster_item_t *it;
  done_t d = {0};
  char err[256];
  peer_t *p;

  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(uri, sizeof(uri), "sqlite:%s/roster.db", dir);
  assert_int_equal(kith_store_open(NULL, uri, &g_store, err, sizeof(err)),
                   KITH_OK);
  p = peer_new("ALICE", "r1");
  peer_connect(p);
  assert_int_equal(kith_roster_update(p->roster, bj, "Bob", groups, 2, NULL,
                                      on_roster_done, &d),
                   KITH_OK);
  WAIT_FOR(d.fired && item_of(p, bj) != NULL);
  copy_str(ver, sizeof(ver),
           kith_roster_node_version(kith_roster_self(p->roster)));
  assert_true(ver[0] != '\0');
  peer_free(p);
  kith_store_close(g_store);

  /* "Restart": a new store object, roster and connection. */
  assert_int_equal(kith_store_open(NULL, uri, &g_store, err, sizeof(err)),
                   KITH_OK);
  p = peer_new("ALICE", "r1");
  /* Offline first: the cache is there before any connection. */
  assert_int_equal(kith_roster_load(p->roster, lab_get("ALICE_JID"), &node),
                   KITH_OK);
  assert_string_equal(kith_roster_node_version(node), ver);
  it = kith_roster_node_item(node, bj);
  assert_non_null(it);
  assert_string_equal(kith_roster_item_name(it), "Bob");
  assert_int_equal(kith_roster_item_group_count(it), 2);
  /* In the order the server pushed them (Prosody keeps a set). */
  assert_true(strcmp(kith_roster_item_group_at(it, 0), "Lab") == 0 ||
              strcmp(kith_roster_item_group_at(it, 1), "Lab") == 0);
  peer_connect(p);
  assert_true(sent_version(p, ver));
  assert_false(p->received_query); /* the empty versioned result */
  it = item_of(p, bj);
  assert_non_null(it);
  assert_string_equal(kith_roster_item_name(it), "Bob");
  assert_string_equal(kith_roster_node_version(kith_roster_self(p->roster)),
                      ver);
  peer_free(p);
  kith_store_close(g_store);
  g_store = NULL;
  snprintf(path, sizeof(path), "%s/roster.db", dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/roster.db-wal", dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/roster.db-shm", dir);
  unlink(path);
  rmdir(dir);
}

/* ---- Forged roster pushes ------------------------------------------------ */

static kith_stanza_t *forged_push(const char *to)
{
  kith_stanza_t *iq = new_iq("set", to, "query", KITH_NS_ROSTER);
  kith_stanza_t *item = NULL;

  assert_int_equal(kith_stanza_add_element(kith_stanza_first_child(iq), "item",
                                           KITH_NS_ROSTER, &item),
                   KITH_OK);
  assert_int_equal(kith_stanza_set_attr(item, "jid", "mallory@evil.example"),
                   KITH_OK);
  assert_int_equal(kith_stanza_set_attr(item, "name", "x"), KITH_OK);
  return iq;
}

/* `from` sends a forged push to `to` and gets the error back. */
static void send_forged(peer_t *from, const char *to, done_t *d)
{
  kith_stanza_t *iq = forged_push(to);

  memset(d, 0, sizeof(*d));
  assert_int_equal(kith_conn_send_iq(from->conn, iq, WAIT_MS, on_iq_done, d),
                   KITH_OK);
  kith_stanza_free(iq);
  WAIT_FOR(d->fired);
}

static void test_forged_push_refused(void **state)
{
  char a1[256];
  peer_t *a = peer_new("ALICE", "r1"), *b = peer_new("BOB", "r1");
  peer_t *a2 = peer_new("ALICE", "r2");
  done_t d;

  (void)state;
  snprintf(a1, sizeof(a1), "%s/r1", lab_get("ALICE_JID"));
  peer_connect(a);
  peer_connect(b);
  peer_connect(a2);
  clear_events(a);

  /* From another account: Prosody routes it to alice's resource. */
  send_forged(b, a1, &d);
  assert_int_equal(d.status, KITH_ESTANZA);
  assert_string_equal(d.cond, "service-unavailable");
  assert_string_equal(d.type, "cancel");

  /* From alice's own other resource: still not the server (RFC 6121
   * 2.1.6 accepts no 'from' or the bare JID only). */
  send_forged(a2, a1, &d);
  assert_int_equal(d.status, KITH_ESTANZA);
  assert_string_equal(d.cond, "service-unavailable");

  server_sync(a);
  assert_null(item_of(a, "mallory@evil.example"));
  assert_int_equal(roster_size(a), 0);
  assert_null(find_event(a, KITH_EVENT_ROSTER_UPDATE, NULL));
  /* alice/r2 and bob never saw a push either. */
  assert_int_equal(roster_size(a2), 0);
  assert_int_equal(roster_size(b), 0);
  peer_free(a);
  peer_free(a2);
  peer_free(b);
}

/* ---- slixmpp as the peer ------------------------------------------------- */

#define PEER_SCRIPT KITH_TEST_DATA_DIR "/../integration/slixmpp_peer.py"
#define KITH_STATUS "kith here"
#define SLIX_STATUS_1 "slixmpp says hi"
#define SLIX_STATUS_2 "slixmpp saw kith"

/* Start the slixmpp peer as ACCOUNT/slixmpp; `mode` is "wait" (answer our
 * request) or "subscribe" (ask us first). */
static void spawn_peer(const char *mode, const char *account,
                       const char *kith_jid)
{
  char *argv[] = {"/usr/bin/python3", PEER_SCRIPT,      (char *)mode,
                  (char *)account,    (char *)kith_jid, KITH_STATUS,
                  SLIX_STATUS_1,      SLIX_STATUS_2,    NULL};
  int rc;

  g_child_code = -1;
  rc = posix_spawn(&g_child, argv[0], NULL, NULL, argv, environ);
  if (rc != 0)
    fail_msg("posix_spawn %s: %s", argv[0], strerror(rc));
}

/* The child's exit status once it ended, or -1 while it runs. */
static int child_exit(void)
{
  int status;

  if (g_child > 0 && waitpid(g_child, &status, WNOHANG) == g_child) {
    g_child_code =
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    g_child = -1;
  }
  return g_child_code;
}

static void slixmpp_scenario(const char *mode)
{
  const char *aj = lab_get("ALICE_JID"), *bj = lab_get("BOB_JID");
  peer_t *a = peer_new("ALICE", "kith");
  kith_roster_item_t *it;
  kith_show_t show;
  const char *status = NULL;
  int code;

  peer_connect(a);
  spawn_peer(mode, "BOB", aj);
  if (strcmp(mode, "wait") == 0) {
    /* Let slixmpp log in before it is asked: with no subscription yet,
     * its word comes as a message, not as presence. */
    WAIT_FOR(a->messages > 0 || child_exit() >= 0);
    assert_string_equal(a->last_message, "peer-ready");
    assert_int_equal(
        kith_roster_send_subscription(a->roster, bj, "subscribe", "kith", NULL),
        KITH_OK);
  }
  /* Both ways subscribed, and slixmpp's status seen when it came online. */
  WAIT_FOR((sub_is(a, bj, KITH_SUB_BOTH) &&
            saw_status(a, KITH_EVENT_GOT_ONLINE, bj, SLIX_STATUS_1)) ||
           child_exit() >= 0);
  assert_int_equal(child_exit(), -1);
  if (strcmp(mode, "subscribe") == 0)
    assert_non_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, bj));
  else
    assert_non_null(
        find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, bj));
  it = item_of(a, bj);
  assert_int_equal(
      kith_roster_item_presence(it, "slixmpp", &show, &status, NULL, NULL),
      KITH_OK);
  assert_int_equal(show, KITH_SHOW_CHAT);
  assert_string_equal(status, SLIX_STATUS_1);

  /* kith's presence reaches slixmpp, which answers with a new status and
   * its verdict in a message. */
  assert_int_equal(kith_roster_send_presence(a->roster, NULL, NULL, NULL,
                                             "away", KITH_STATUS, 5),
                   KITH_OK);
  a->messages = 0;
  WAIT_FOR((a->messages > 0 &&
            saw_status(a, KITH_EVENT_CHANGED_STATUS, bj, SLIX_STATUS_2)) ||
           child_exit() >= 0);
  WAIT_FOR(a->messages > 0);
  assert_string_equal(a->last_message, "peer-ok");
  assert_true(saw_status(a, KITH_EVENT_CHANGED_STATUS, bj, SLIX_STATUS_2));
  WAIT_FOR((code = child_exit()) >= 0);
  assert_int_equal(code, 0);
  /* slixmpp went away: its unavailable presence took it offline. */
  WAIT_FOR(count_events(a, KITH_EVENT_GOT_OFFLINE, bj) > 0);
  assert_null(kith_roster_item_best_resource(item_of(a, bj)));
  if (strcmp(mode, "subscribe") == 0) {
    /* Before leaving, slixmpp removed alice from its roster: its server
     * sent both 'unsubscribe' and 'unsubscribed' (RFC 6121 2.5.2). */
    WAIT_FOR(sub_is(a, bj, KITH_SUB_NONE));
    assert_non_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVE, bj));
    assert_non_null(find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED, bj));
  }
  peer_free(a);
  assert_int_equal(server_flags("ALICE", bj),
                   strcmp(mode, "subscribe") == 0
                       ? 0
                       : (int)(KITH_ROSTER_TO | KITH_ROSTER_FROM));
}

static void test_slixmpp_kith_asks(void **state)
{
  (void)state;
  slixmpp_scenario("wait");
}

static void test_slixmpp_asks(void **state)
{
  (void)state;
  slixmpp_scenario("subscribe");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_subscribe_both_ways, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_unsubscribe_then_revoke, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_unsubscribe_forgets_presence, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_preapproval, setup, teardown),
      cmocka_unit_test_setup_teardown(test_preapproval_flag_visible, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_simultaneous_requests, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_whitelist_overrides_reject, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_request_waiting_at_login, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_two_contact_resources, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_reject_policy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_manual_policy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_manual_request_survives_relogin,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_update_remove_two_resources, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_update_text_round_trip, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_versioned_relogin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_with_sqlite_cache, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_versioned_new_connection, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_forged_push_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_slixmpp_kith_asks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slixmpp_asks, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

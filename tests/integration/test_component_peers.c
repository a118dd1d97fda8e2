/*
 * Integration: a kith COMPONENT (XEP-0114, bot.localhost) against real
 * peers through the lab's Prosody. Attached to a component connection, a
 * kith roster is the server for its nodes (include/kith/roster.h): it
 * answers subscription stanzas and probes (RFC 6121 3, 4.3.2), broadcasts
 * presence to from/both contacts only, probes to/both contacts at session
 * start, sends unavailable on shutdown and never makes items for
 * strangers. The peers are slixmpp (tests/integration/
 * slixmpp_component_peer.py, Debian's python3-slixmpp) and kith clients.
 *
 * The lab's accounts are shared with the other integration tests, so each
 * scenario resets them before and after it runs: every account logs in,
 * cancels any subscription request it was left with (from the other
 * accounts and from the component's JIDs) and removes every roster item.
 * The component's rosters live in memory and die with it. Every wait is
 * bounded (WAIT_MS).
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
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "lab.h"

extern char **environ;

/* The longest any single wait may take. */
#define WAIT_MS 10000
#define MAX_EVENTS 512
#define MAX_PEERS 8

/* The component's owner JIDs (on COMPONENT_DOMAIN, bot.localhost). */
#define USER1 "user1@bot.localhost"
#define USER2 "user2@bot.localhost"
#define USER3 "user3@bot.localhost"
/* The resource the component's presence comes from. */
#define RES "bot"

/* ---- Recording what a connection sees ------------------------------------ */

typedef struct rec_event {
  kith_event_type_t type;
  char owner[160];
  char jid[160];
  char status[128]; /* the presence's <status/>, if any */
  int has_item;     /* the event named an item */
  unsigned flags;   /* and its flags at that moment */
} rec_event_t;

typedef struct peer {
  char label[256]; /* "alice@localhost/r1" or "bot.localhost" */
  int component;
  kith_ctx_t *ctx;
  kith_conn_t *conn;
  kith_roster_t *roster;
  rec_event_t ev[MAX_EVENTS];
  size_t nev;
  int started, received, disconnected;
  char last_message[256];    /* body of the last chat message received */
  char last_message_to[256]; /* and its 'to' */
  unsigned flags_at_message; /* component: USER1's item for the sender */
  int messages;
  int probes_in;        /* component: probes received */
  int probes_out;       /* probes sent (trace log) */
  int unsubscribed_out; /* 'unsubscribed' presences sent (trace log) */
  int presences_out;    /* component: presences sent */
  char unstamped[512];  /* component: the first one not from an owner */
} peer_t;

/* Every live peer, so that any wait drives every connection. */
static peer_t *g_peers[MAX_PEERS];
/* When set, comp_new() keeps the component's rosters in this store. */
static kith_store_t *g_store;
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
  if (ev->type == KITH_EVENT_DISCONNECTED)
    p->disconnected++;
  if (ev->type == KITH_EVENT_ROSTER_RECEIVED)
    p->received++;
  if (p->nev == MAX_EVENTS)
    return;
  r = &p->ev[p->nev++];
  r->type = ev->type;
  copy_str(r->owner, sizeof(r->owner), ev->owner);
  copy_str(r->jid, sizeof(r->jid), ev->jid);
  copy_str(r->status, sizeof(r->status),
           ev->stanza && strcmp(kith_stanza_name(ev->stanza), "presence") == 0
               ? kith_stanza_child_text(ev->stanza, "status", NULL)
               : NULL);
  r->has_item = ev->item != NULL;
  r->flags = ev->item ? kith_roster_item_flags(ev->item) : 0;
}

static int on_message(kith_conn_t *conn, const kith_stanza_t *st, void *ud)
{
  peer_t *p = ud;
  const char *body = kith_stanza_child_text(st, "body", NULL);
  kith_roster_node_t *node;
  kith_roster_item_t *it;

  (void)conn;
  if (body == NULL)
    return 0;
  copy_str(p->last_message, sizeof(p->last_message), body);
  copy_str(p->last_message_to, sizeof(p->last_message_to),
           kith_stanza_attr(st, "to"));
  /* What the component's USER1 node says about the sender right now. */
  p->flags_at_message = 0;
  if (p->component && (node = kith_roster_node(p->roster, USER1)) != NULL &&
      kith_stanza_from(st) != NULL &&
      (it = kith_roster_node_item(node, kith_stanza_from(st))) != NULL)
    p->flags_at_message = kith_roster_item_flags(it);
  p->messages++;
  return 1;
}

static int on_probe(kith_conn_t *conn, const kith_stanza_t *st, void *ud)
{
  peer_t *p = ud;

  (void)conn;
  (void)st;
  p->probes_in++;
  return 0; /* the roster's handler sees it as well */
}

/* Whether the serialized presence `msg` carries from='OWNER' or
 * from='OWNER/resource' for one of the component's owners. */
static int from_is_owner(const char *msg)
{
  static const char *const owners[] = {USER1, USER2, USER3};
  const char *from = strstr(msg, " from='");
  size_t i, n;

  if (from == NULL)
    return 0;
  from += 7;
  for (i = 0; i < sizeof(owners) / sizeof(owners[0]); i++) {
    n = strlen(owners[i]);
    if (strncmp(from, owners[i], n) == 0 && (from[n] == '\'' || from[n] == '/'))
      return 1;
  }
  return 0;
}

static void on_log(void *ud, kith_log_level_t level, const char *area,
                   const char *msg)
{
  peer_t *p = ud;

  (void)area;
  if (getenv("KITH_TEST_TRACE"))
    fprintf(stderr, "[%s] %s %s\n", p->label, kith_log_level_name(level), msg);
  if (strncmp(msg, "SEND ", 5) == 0 && strstr(msg, "<presence") &&
      strstr(msg, "type='probe'"))
    p->probes_out++;
  if (strncmp(msg, "SEND ", 5) == 0 && strstr(msg, "<presence") &&
      strstr(msg, "type='unsubscribed'"))
    p->unsubscribed_out++;
  if (p->component && strncmp(msg, "SEND <presence", 14) == 0) {
    p->presences_out++;
    if (!from_is_owner(msg) && p->unstamped[0] == '\0')
      copy_str(p->unstamped, sizeof(p->unstamped), msg + 5);
  }
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

static int owner_matches(const rec_event_t *e, const char *owner)
{
  return owner == NULL || strcmp(e->owner, owner) == 0;
}

/* The first event of `type` from `jid` on node `owner` (NULL: any). */
static const rec_event_t *find_event(const peer_t *p, kith_event_type_t type,
                                     const char *owner, const char *jid)
{
  size_t i;

  for (i = 0; i < p->nev; i++)
    if (p->ev[i].type == type && owner_matches(&p->ev[i], owner) &&
        jid_matches(p->ev[i].jid, jid))
      return &p->ev[i];
  return NULL;
}

static size_t count_events(const peer_t *p, kith_event_type_t type,
                           const char *owner, const char *jid)
{
  size_t i, n = 0;

  for (i = 0; i < p->nev; i++)
    if (p->ev[i].type == type && owner_matches(&p->ev[i], owner) &&
        jid_matches(p->ev[i].jid, jid))
      n++;
  return n;
}

/* Whether a presence event of `type` from `jid` carried `status`. */
static int saw_status(const peer_t *p, kith_event_type_t type,
                      const char *owner, const char *jid, const char *status)
{
  size_t i;

  for (i = 0; i < p->nev; i++)
    if (p->ev[i].type == type && owner_matches(&p->ev[i], owner) &&
        jid_matches(p->ev[i].jid, jid) && strcmp(p->ev[i].status, status) == 0)
      return 1;
  return 0;
}

/* Any presence at all from `jid` (available, unavailable, status). */
static size_t count_presence(const peer_t *p, const char *jid)
{
  return count_events(p, KITH_EVENT_PRESENCE_AVAILABLE, NULL, jid) +
         count_events(p, KITH_EVENT_PRESENCE_UNAVAILABLE, NULL, jid) +
         count_events(p, KITH_EVENT_GOT_ONLINE, NULL, jid) +
         count_events(p, KITH_EVENT_CHANGED_STATUS, NULL, jid);
}

static void clear_events(peer_t *p)
{
  p->nev = 0;
}

/* A client's item for `jid`, or a component node's (`owner`). */
static kith_roster_item_t *item_in(const peer_t *p, const char *owner,
                                   const char *jid)
{
  kith_roster_node_t *node =
      owner ? kith_roster_node(p->roster, owner) : kith_roster_self(p->roster);

  return node ? kith_roster_node_item(node, jid) : NULL;
}

static kith_roster_item_t *item_of(const peer_t *p, const char *jid)
{
  return item_in(p, NULL, jid);
}

static size_t roster_size(const peer_t *p)
{
  kith_roster_node_t *node = kith_roster_self(p->roster);

  return node ? kith_roster_node_size(node) : 0;
}

/* The item exists with exactly `flags`. */
static int flags_are(const peer_t *p, const char *owner, const char *jid,
                     unsigned flags)
{
  kith_roster_item_t *it = item_in(p, owner, jid);

  return it && kith_roster_item_flags(it) == flags;
}

#define BOTH (KITH_ROSTER_TO | KITH_ROSTER_FROM)

/* Whether the item has `resource` online with `status`. */
static int online_with(const peer_t *p, const char *owner, const char *jid,
                       const char *resource, const char *status)
{
  kith_roster_item_t *it = item_in(p, owner, jid);
  const char *have = NULL;

  return it &&
         kith_roster_item_presence(it, resource, NULL, &have, NULL, NULL) ==
             KITH_OK &&
         have && strcmp(have, status) == 0;
}

/* ---- Peers --------------------------------------------------------------- */

static peer_t *peer_alloc(const char *label)
{
  peer_t *p = calloc(1, sizeof(*p));

  assert_non_null(p);
  assert_true(g_npeers < MAX_PEERS);
  snprintf(p->label, sizeof(p->label), "%s", label);
  assert_int_equal(kith_ctx_new(NULL, &p->ctx), KITH_OK);
  kith_ctx_set_log(p->ctx, KITH_LOG_TRACE, on_log, p);
  assert_int_equal(kith_conn_new(p->ctx, &p->conn), KITH_OK);
  assert_true(kith_conn_on(p->conn, KITH_EVENT_ANY, on_event, p) > 0);
  assert_true(
      kith_conn_add_handler(p->conn, "message", NULL, NULL, on_message, p) > 0);
  assert_int_equal(kith_conn_set_timeouts(p->conn, WAIT_MS, 2000), KITH_OK);
  assert_int_equal(kith_conn_set_iq_timeout(p->conn, WAIT_MS), KITH_OK);
  assert_int_equal(kith_roster_new(p->ctx, &p->roster), KITH_OK);
  return p;
}

/* A client for ACCOUNT ("ALICE", ...) with `resource`, roster attached with
 * the default policy (accept, auto-subscribe, initial presence). */
static peer_t *peer_new(const char *account, const char *resource)
{
  char key[64], jid[256];
  peer_t *p;

  snprintf(key, sizeof(key), "%s_JID", account);
  snprintf(jid, sizeof(jid), "%s/%s", lab_get(key), resource);
  p = peer_alloc(jid);
  assert_int_equal(kith_conn_set_server(p->conn, lab_get("XMPP_HOST"),
                                        (unsigned)lab_get_int("C2S_PORT")),
                   KITH_OK);
  assert_int_equal(kith_conn_set_ca_file(p->conn, lab_get("CA_FILE")), KITH_OK);
  assert_int_equal(kith_conn_set_jid(p->conn, jid), KITH_OK);
  snprintf(key, sizeof(key), "%s_PASSWORD", account);
  assert_int_equal(kith_conn_set_password(p->conn, lab_get(key)), KITH_OK);
  assert_int_equal(kith_roster_attach(p->roster, p->conn), KITH_OK);
  g_peers[g_npeers++] = p;
  return p;
}

/* The component (COMPONENT_DOMAIN), roster attached, with a node for each
 * of `owners` (NULL-terminated), each with the policy accept and
 * auto-subscribe set explicitly. */
static peer_t *comp_new(const char *const *owners)
{
  peer_t *p = peer_alloc(lab_get("COMPONENT_DOMAIN"));
  kith_roster_node_t *node;
  size_t i;

  p->component = 1;
  if (g_store)
    assert_int_equal(kith_roster_set_store(p->roster, g_store), KITH_OK);
  assert_int_equal(
      kith_conn_set_server(p->conn, lab_get("XMPP_HOST"),
                           (unsigned)lab_get_int("COMPONENT_PORT")),
      KITH_OK);
  assert_int_equal(kith_conn_set_component(p->conn, lab_get("COMPONENT_DOMAIN"),
                                           lab_get("COMPONENT_SECRET")),
                   KITH_OK);
  for (i = 0; owners[i]; i++) {
    node = NULL;
    assert_int_equal(kith_roster_add_node(p->roster, owners[i], &node),
                     KITH_OK);
    assert_non_null(node);
    kith_roster_node_set_auto_authorize(node, KITH_AUTHORIZE_ACCEPT);
    kith_roster_node_set_auto_subscribe(node, 1);
  }
  assert_int_equal(kith_roster_attach(p->roster, p->conn), KITH_OK);
  assert_true(kith_conn_add_handler(p->conn, "presence", "probe", NULL,
                                    on_probe, p) > 0);
  g_peers[g_npeers++] = p;
  return p;
}

typedef struct done {
  int fired;
  kith_status_t status;
} done_t;

static void on_roster_done(kith_roster_t *roster, kith_status_t status,
                           const kith_stanza_t *reply, void *ud)
{
  done_t *d = ud;

  (void)roster;
  (void)reply;
  d->fired++;
  d->status = status;
}

static void on_iq_done(kith_conn_t *conn, kith_status_t status,
                       const kith_stanza_t *reply, void *ud)
{
  done_t *d = ud;

  (void)conn;
  (void)reply;
  d->fired++;
  d->status = status;
}

/* Ping the server and wait for the answer. The server handles one
 * session's stanzas in order, and delivers to local sessions as it
 * handles them, so everything this peer sent before has been processed
 * (and queued to its recipients) by then. */
static void server_sync(peer_t *p)
{
  done_t d = {0};
  kith_stanza_t *iq = NULL;

  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(iq, "type", "get"), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(iq, "to", lab_get("DOMAIN")), KITH_OK);
  if (p->component)
    assert_int_equal(
        kith_stanza_set_attr(iq, "from", lab_get("COMPONENT_DOMAIN")), KITH_OK);
  assert_int_equal(kith_stanza_add_element(iq, "ping", KITH_NS_PING, NULL),
                   KITH_OK);
  assert_int_equal(kith_conn_send_iq(p->conn, iq, WAIT_MS, on_iq_done, &d),
                   KITH_OK);
  kith_stanza_free(iq);
  WAIT_FOR(d.fired);
  assert_int_equal(d.status, KITH_OK);
}

/* Everything `from` sent has reached `to` and been handled there. */
static void settle(peer_t *from, peer_t *to)
{
  server_sync(from);
  server_sync(to);
}

/* Connect and wait until the session started (and for a client the
 * roster arrived: the initial presence, if on, is sent right after), and
 * the server has seen everything sent. */
static void peer_connect(peer_t *p)
{
  int before = p->received, started = p->started;

  assert_int_equal(kith_conn_connect(p->conn), KITH_OK);
  if (p->component)
    WAIT_FOR(p->started > started);
  else
    WAIT_FOR(p->started > started && p->received > before);
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
  /* Detach first: a component says unavailable for its owners. Then a
   * clean close, so the server keeps no stale session around. */
  kith_roster_detach(p->roster);
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
static const char *const owners_all[] = {USER1, USER2, USER3, NULL};

static const char *account_jid(const char *account)
{
  char key[64];

  snprintf(key, sizeof(key), "%s_JID", account);
  return lab_get(key);
}

/* A raw <presence to='to' type='type'/>, around kith's bookkeeping. */
static void send_raw(peer_t *p, const char *to, const char *type)
{
  kith_stanza_t *st = NULL;

  assert_int_equal(kith_stanza_new(NULL, "presence", NULL, &st), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "to", to), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "type", type), KITH_OK);
  assert_int_equal(kith_conn_send(p->conn, st), KITH_OK);
  kith_stanza_free(st);
}

/* Remove every item of the peer's roster and wait until it is empty. */
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
    for (i = 0; i < n; i++) {
      WAIT_FOR(d[i].fired && item_of(p, jids[i]) == NULL);
      assert_int_equal(d[i].status, KITH_OK);
    }
  }
}

/* One account back to an empty roster with nothing pending; it answers
 * nothing (manual policy) and sends no presence. */
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
      send_raw(p, account_jid(accounts[i]), "unsubscribed");
  /* Cancels a request left pending with us (RFC 6121 3.2); the server
   * drops it when there is none, and bounces it when the component is
   * not connected. */
  for (i = 0; owners_all[i]; i++)
    send_raw(p, owners_all[i], "unsubscribed");
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

/* What the server holds: the flags of `contact` in ACCOUNT's roster (to,
 * from, pending_out), or -1 when there is no item. */
static int server_flags(const char *account, const char *contact)
{
  peer_t *p = peer_new(account, "check");
  kith_roster_item_t *it;
  int flags;

  kith_roster_set_auto_authorize(p->roster, KITH_AUTHORIZE_MANUAL);
  kith_roster_set_initial_presence(p->roster, 0);
  peer_connect(p);
  it = item_of(p, contact);
  flags =
      it ? (int)(kith_roster_item_flags(it) &
                 (KITH_ROSTER_TO | KITH_ROSTER_FROM | KITH_ROSTER_PENDING_OUT))
         : -1;
  peer_free(p);
  return flags;
}

static void kill_child(void)
{
  int status;

  if (g_child > 0) {
    kill(g_child, SIGTERM);
    waitpid(g_child, &status, 0);
    g_child = -1;
  }
}

static int setup(void **state)
{
  (void)state;
  reset_accounts();
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  kill_child();
  free_all_peers();
  reset_accounts();
  return 0;
}

/* ---- Shared steps -------------------------------------------------------- */

/* Every presence the component sent so far came from an owner JID. */
static void assert_stamped(const peer_t *c)
{
  if (c->unstamped[0] != '\0')
    fail_msg("component presence without an owner 'from': %s", c->unstamped);
  assert_true(c->presences_out > 0);
}

/* `owner`'s presence, as the component's application sends it. */
static void comp_presence(peer_t *c, const char *owner, const char *type,
                          const char *status)
{
  char from[256];

  snprintf(from, sizeof(from), "%s/%s", owner, RES);
  assert_int_equal(
      kith_roster_send_presence(c->roster, NULL, type, from, NULL, status, 0),
      KITH_OK);
}

/* The component's `owner` asks client `a` (bare `aj`) for a subscription;
 * both default policies make it mutual. Waits for both/both, for the
 * component to see `a` online and, when `owner_online` (the owner sent
 * presence before), for `a` to see the owner online. */
static void comp_make_mutual(peer_t *c, const char *owner, peer_t *a,
                             const char *aj, int owner_online)
{
  assert_int_equal(
      kith_roster_send_subscription(c->roster, aj, "subscribe", "Bot", owner),
      KITH_OK);
  WAIT_FOR(flags_are(c, owner, aj, BOTH) && flags_are(a, NULL, owner, BOTH) &&
           count_events(c, KITH_EVENT_GOT_ONLINE, owner, aj) > 0 &&
           (!owner_online ||
            count_events(a, KITH_EVENT_GOT_ONLINE, NULL, owner) > 0));
  settle(c, a);
  settle(a, c);
}

/* ---- 1. slixmpp subscribes to a component JID ---------------------------- */

#define PEER_SCRIPT                                                            \
  KITH_TEST_DATA_DIR "/../integration/slixmpp_component_peer.py"
#define COMP_STATUS "hello"
#define SLIX_STATUS_1 "slixmpp says hi"
#define SLIX_STATUS_2 "slixmpp saw the bot"

static void spawn_peer(const char *account, const char *owner)
{
  char *argv[] = {"/usr/bin/python3", PEER_SCRIPT, (char *)account,
                  (char *)owner,      COMP_STATUS, SLIX_STATUS_1,
                  SLIX_STATUS_2,      NULL};
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

static void test_slixmpp_subscribes_to_component(void **state)
{
  const char *const owners[] = {USER1, NULL};
  const char *cj = lab_get("CAROL_JID");
  peer_t *c = comp_new(owners);
  const rec_event_t *e;
  kith_show_t show;
  const char *status = NULL;
  int code;

  (void)state;
  peer_connect(c);
  spawn_peer("CAROL", USER1);

  /* carol asks; the component answers 'subscribed' and asks back;
   * slixmpp accepts; carol's presence (status 1) then reaches user1. */
  WAIT_FOR((flags_are(c, USER1, cj, BOTH) &&
            saw_status(c, KITH_EVENT_GOT_ONLINE, USER1, cj, SLIX_STATUS_1)) ||
           c->messages > 0 || child_exit() >= 0);
  assert_string_equal(c->last_message, "");
  assert_int_equal(child_exit(), -1);
  e = find_event(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, USER1, cj);
  assert_non_null(e);
  assert_non_null(find_event(c, KITH_EVENT_PRESENCE_SUBSCRIBE, USER1, cj));
  assert_non_null(
      find_event(c, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, USER1, cj));
  assert_non_null(find_event(c, KITH_EVENT_ROSTER_UPDATE, USER1, cj));
  /* Two auto-subscribing sides do not loop: one request each way. */
  assert_int_equal(count_events(c, KITH_EVENT_PRESENCE_SUBSCRIBE, USER1, cj),
                   1);
  assert_int_equal(
      count_events(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED, NULL, NULL), 0);
  assert_int_equal(kith_roster_node_size(kith_roster_node(c->roster, USER1)),
                   1);
  assert_int_equal(kith_roster_item_presence(item_in(c, USER1, cj), "slixmpp",
                                             &show, &status, NULL, NULL),
                   KITH_OK);
  assert_int_equal(show, KITH_SHOW_CHAT);
  assert_string_equal(status, SLIX_STATUS_1);

  /* The component's presence reaches slixmpp from user1's full JID;
   * slixmpp answers with status 2 and "peer-ok" to that full JID. */
  comp_presence(c, USER1, NULL, COMP_STATUS);
  WAIT_FOR((c->messages > 0 && saw_status(c, KITH_EVENT_CHANGED_STATUS, USER1,
                                          cj, SLIX_STATUS_2)) ||
           child_exit() >= 0);
  assert_string_equal(c->last_message, "peer-ok");
  assert_string_equal(c->last_message_to, USER1 "/" RES);
  /* When slixmpp was satisfied (its roster said 'both'), so was user1. */
  assert_int_equal(c->flags_at_message, BOTH);
  assert_true(online_with(c, USER1, cj, "slixmpp", SLIX_STATUS_2));
  assert_int_equal(child_exit(), -1);

  /* Shutdown: detaching the roster sends unavailable; slixmpp waits for
   * it, then removes user1 from its roster and exits 0. */
  kith_roster_detach(c->roster);
  WAIT_FOR((code = child_exit()) >= 0);
  assert_int_equal(code, 0);
  assert_stamped(c);
  peer_free(c);
  /* slixmpp's removal left nothing on the server for carol. */
  assert_int_equal(server_flags("CAROL", USER1), -1);
}

/* ---- 2. A kith client and the component, both kith ----------------------- */

static void test_component_subscribes_to_kith_client(void **state)
{
  const char *const owners[] = {USER2, NULL};
  const char *aj = lab_get("ALICE_JID");
  peer_t *c = comp_new(owners), *a = peer_new("ALICE", "r1");
  const rec_event_t *e;
  done_t d = {0};

  (void)state;
  peer_connect(c);
  peer_connect(a);
  /* user2's presence is known before any subscription: it goes to alice
   * when alice's subscription is approved (RFC 6121 3.1.5). */
  comp_presence(c, USER2, NULL, "user2 here");
  settle(c, a);
  assert_int_equal(count_presence(a, USER2), 0);
  assert_int_equal(c->probes_out, 0);

  comp_make_mutual(c, USER2, a, aj, 1);
  /* alice's server saw the request, her policy approved and asked back,
   * and user2's policy approved that. */
  e = find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, NULL, USER2);
  assert_non_null(e);
  assert_non_null(
      find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, NULL, USER2));
  assert_non_null(
      find_event(c, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, USER2, aj));
  assert_non_null(
      find_event(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, USER2, aj));
  assert_int_equal(count_events(c, KITH_EVENT_PRESENCE_SUBSCRIBE, USER2, aj),
                   1);
  assert_int_equal(count_events(a, KITH_EVENT_PRESENCE_SUBSCRIBE, NULL, USER2),
                   1);
  /* Presence both ways: user2 from its full JID with its status, alice
   * from r1. */
  assert_true(online_with(a, NULL, USER2, RES, "user2 here"));
  assert_string_equal(kith_roster_item_best_resource(item_of(a, USER2)), RES);
  assert_string_equal(kith_roster_item_best_resource(item_in(c, USER2, aj)),
                      "r1");
  /* The server agrees: alice has user2 as both. */
  assert_int_equal(server_flags("ALICE", USER2), (int)BOTH);

  /* A new status of user2 is broadcast to alice. */
  comp_presence(c, USER2, NULL, "user2 busy");
  WAIT_FOR(saw_status(a, KITH_EVENT_CHANGED_STATUS, NULL, USER2, "user2 busy"));
  assert_true(online_with(a, NULL, USER2, RES, "user2 busy"));

  /* user2 revokes alice's subscription (outbound 'unsubscribed', RFC 6121
   * 3.2): alice first gets user2's unavailable, then loses 'to'. */
  clear_events(a);
  clear_events(c);
  assert_int_equal(
      kith_roster_send_subscription(c->roster, aj, "unsubscribed", NULL, USER2),
      KITH_OK);
  WAIT_FOR(flags_are(a, NULL, USER2, KITH_ROSTER_FROM));
  settle(c, a);
  assert_true(flags_are(c, USER2, aj, KITH_ROSTER_TO));
  assert_non_null(find_event(a, KITH_EVENT_GOT_OFFLINE, NULL, USER2));
  assert_null(kith_roster_item_best_resource(item_of(a, USER2)));
  assert_non_null(
      find_event(a, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED, NULL, USER2));
  assert_int_equal(server_flags("ALICE", USER2), (int)KITH_ROSTER_FROM);

  /* alice drops user2 from her roster: her server sends 'unsubscribed'
   * (she had 'from'; RFC 6121 2.5.2). user2 loses 'to' and forgets
   * alice's presence; its item stays, with 'none'. */
  assert_int_equal(kith_roster_remove(a->roster, USER2, on_roster_done, &d),
                   KITH_OK);
  WAIT_FOR(d.fired && flags_are(c, USER2, aj, 0));
  assert_int_equal(d.status, KITH_OK);
  settle(a, c);
  assert_non_null(
      find_event(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED, USER2, aj));
  assert_non_null(find_event(c, KITH_EVENT_GOT_OFFLINE, USER2, aj));
  assert_null(kith_roster_item_best_resource(item_in(c, USER2, aj)));
  assert_int_equal(kith_roster_item_sub(item_in(c, USER2, aj)), KITH_SUB_NONE);
  assert_int_equal(server_flags("ALICE", USER2), -1);
  assert_stamped(c);
}

/* ---- 3. Owners in different states toward one contact -------------------- */

static void test_broadcast_only_to_subscribers(void **state)
{
  const char *const owners[] = {USER1, USER2, USER3, NULL};
  const char *dj = lab_get("DAVE_JID");
  peer_t *c = comp_new(owners), *d = peer_new("DAVE", "r1");
  kith_roster_item_t *targets[4];
  done_t rm;

  (void)state;
  peer_connect(c);
  peer_connect(d);
  /* user1 and dave: both. */
  comp_make_mutual(c, USER1, d, dj, 0);
  assert_int_equal(count_presence(d, USER1), 0); /* user1 sent none */
  /* user3 and dave: 'to' only (dave accepts, asks nothing back). */
  kith_roster_set_auto_subscribe(d->roster, 0);
  assert_int_equal(
      kith_roster_send_subscription(c->roster, dj, "subscribe", NULL, USER3),
      KITH_OK);
  WAIT_FOR(flags_are(c, USER3, dj, KITH_ROSTER_TO) &&
           count_events(c, KITH_EVENT_GOT_ONLINE, USER3, dj) > 0);
  settle(c, d);
  settle(d, c);
  assert_true(flags_are(d, NULL, USER3, KITH_ROSTER_FROM));
  assert_true(flags_are(c, USER3, dj, KITH_ROSTER_TO));
  /* user2 asks too, but dave now refuses: user2's item stays 'none'. */
  kith_roster_set_auto_authorize(d->roster, KITH_AUTHORIZE_REJECT);
  assert_int_equal(
      kith_roster_send_subscription(c->roster, dj, "subscribe", NULL, USER2),
      KITH_OK);
  WAIT_FOR(count_events(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED, USER2, dj) >
           0);
  settle(c, d);
  assert_true(flags_are(c, USER2, dj, 0));
  assert_int_equal(kith_roster_item_sub(item_in(c, USER2, dj)), KITH_SUB_NONE);
  assert_true(flags_are(c, USER1, dj, BOTH));
  assert_int_equal(kith_roster_node_broadcast_targets(
                       kith_roster_node(c->roster, USER2), targets, 4),
                   0);
  assert_int_equal(kith_roster_node_broadcast_targets(
                       kith_roster_node(c->roster, USER3), targets, 4),
                   0);
  assert_int_equal(kith_roster_node_broadcast_targets(
                       kith_roster_node(c->roster, USER1), targets, 4),
                   1);

  /* user2 (none) and user3 (to) broadcast first, then user1 (both). The
   * component's stanzas reach dave in order, so once user1's is in, the
   * others' would be too. */
  clear_events(d);
  comp_presence(c, USER2, NULL, "from user2");
  comp_presence(c, USER3, NULL, "from user3");
  comp_presence(c, USER1, NULL, "from user1");
  WAIT_FOR(saw_status(d, KITH_EVENT_GOT_ONLINE, NULL, USER1, "from user1"));
  settle(c, d);
  assert_int_equal(count_presence(d, USER2), 0);
  assert_int_equal(count_presence(d, USER3), 0);
  assert_null(item_of(d, USER2)
                  ? kith_roster_item_best_resource(item_of(d, USER2))
                  : NULL);
  assert_true(online_with(d, NULL, USER1, RES, "from user1"));

  /* And the other way round: user1 changes, the others do not reach
   * dave. */
  clear_events(d);
  comp_presence(c, USER1, NULL, "user1 again");
  comp_presence(c, USER2, NULL, "user2 again");
  comp_presence(c, USER3, NULL, "user3 again");
  settle(c, d);
  assert_true(
      saw_status(d, KITH_EVENT_CHANGED_STATUS, NULL, USER1, "user1 again"));
  assert_int_equal(count_presence(d, USER2), 0);
  assert_int_equal(count_presence(d, USER3), 0);

  /* dave drops user1 from his roster: his server sends 'unsubscribe' and
   * 'unsubscribed' (RFC 6121 2.5.2). user1 loses 'from' (and tells dave
   * it is gone, 3.3.3), then 'to' (and forgets dave's presence). */
  clear_events(c);
  clear_events(d);
  memset(&rm, 0, sizeof(rm));
  assert_int_equal(kith_roster_remove(d->roster, USER1, on_roster_done, &rm),
                   KITH_OK);
  WAIT_FOR(rm.fired && flags_are(c, USER1, dj, 0));
  assert_int_equal(rm.status, KITH_OK);
  settle(d, c);
  settle(c, d);
  assert_non_null(
      find_event(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVE, USER1, dj));
  assert_non_null(
      find_event(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED, USER1, dj));
  assert_non_null(find_event(c, KITH_EVENT_GOT_OFFLINE, USER1, dj));
  assert_int_equal(kith_roster_node_broadcast_targets(
                       kith_roster_node(c->roster, USER1), targets, 4),
                   0);
  /* The unavailable of 3.3.3 reached dave, from user1's full JID. */
  assert_int_equal(
      count_events(d, KITH_EVENT_PRESENCE_UNAVAILABLE, NULL, USER1 "/" RES), 1);
  assert_int_equal(count_presence(d, USER1), 1);
  /* Now no owner reaches dave. */
  clear_events(d);
  comp_presence(c, USER1, NULL, "user1 alone");
  settle(c, d);
  assert_int_equal(count_presence(d, USER1), 0);
  assert_stamped(c);
}

/* ---- 4. Restarting the component with its rosters kept ------------------- */

static void test_restart_probes_and_answers_probes(void **state)
{
  const char *const owners[] = {USER1, NULL};
  const char *aj = lab_get("ALICE_JID");
  peer_t *c = comp_new(owners), *a = peer_new("ALICE", "r1");
  int started;

  (void)state;
  peer_connect(c);
  peer_connect(a);
  comp_presence(c, USER1, NULL, "before restart");
  comp_make_mutual(c, USER1, a, aj, 1);
  assert_true(online_with(a, NULL, USER1, RES, "before restart"));
  assert_non_null(kith_roster_item_best_resource(item_in(c, USER1, aj)));

  /* The component goes (no detach: its owners stay online) and comes
   * back on the same connection and roster. The disconnect forgets
   * alice's presence; the start probes her (to/both) and her server
   * answers with her presence. */
  peer_disconnect(c);
  assert_null(kith_roster_item_best_resource(item_in(c, USER1, aj)));
  assert_true(flags_are(c, USER1, aj, BOTH));
  clear_events(c);
  c->probes_out = 0;
  started = c->started;
  assert_int_equal(kith_conn_connect(c->conn), KITH_OK);
  WAIT_FOR(c->started > started);
  WAIT_FOR(count_events(c, KITH_EVENT_GOT_ONLINE, USER1, aj) > 0);
  assert_int_equal(c->probes_out, 1);
  assert_string_equal(kith_roster_item_best_resource(item_in(c, USER1, aj)),
                      "r1");
  settle(c, a);

  /* alice logs out and in again: her server probes user1, and the
   * component answers with user1's last presence. */
  c->probes_in = 0;
  peer_disconnect(a);
  assert_null(kith_roster_item_best_resource(item_of(a, USER1)));
  WAIT_FOR(count_events(c, KITH_EVENT_GOT_OFFLINE, USER1, aj) > 0);
  clear_events(a);
  clear_events(c);
  peer_connect(a);
  WAIT_FOR(count_events(a, KITH_EVENT_GOT_ONLINE, NULL, USER1) > 0);
  assert_true(c->probes_in >= 1);
  assert_true(online_with(a, NULL, USER1, RES, "before restart"));
  assert_true(
      saw_status(a, KITH_EVENT_GOT_ONLINE, NULL, USER1, "before restart"));
  /* The answer came from the full JID the presence was sent from (RES,
   * checked above), once; and alice's own presence reached user1. */
  assert_int_equal(count_events(a, KITH_EVENT_GOT_ONLINE, NULL, USER1), 1);
  WAIT_FOR(count_events(c, KITH_EVENT_GOT_ONLINE, USER1, aj) > 0);
  /* A re-login is no restart: the component sent no probe of its own. */
  assert_int_equal(c->probes_out, 1);
  assert_stamped(c);
}

/* ---- 5. A stranger's request creates nothing ----------------------------- */

static void test_stranger_creates_nothing(void **state)
{
  const char *const owners[] = {USER1, USER3, NULL};
  const char *bj = lab_get("BOB_JID");
  peer_t *c = comp_new(owners), *b = peer_new("BOB", "r1");
  const rec_event_t *e;
  kith_roster_node_t *n3;
  size_t i;

  (void)state;
  kith_roster_node_set_auto_authorize(kith_roster_node(c->roster, USER3),
                                      KITH_AUTHORIZE_REJECT);
  peer_connect(c);
  peer_connect(b);

  /* bob, in no node, asks user3; the reject policy answers
   * 'unsubscribed'. */
  assert_int_equal(
      kith_roster_send_subscription(b->roster, USER3, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(
      count_events(b, KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED, NULL, USER3) > 0);
  settle(b, c);
  settle(c, b);
  assert_non_null(find_event(c, KITH_EVENT_PRESENCE_SUBSCRIBE, USER3, bj));
  e = find_event(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, USER3, bj);
  assert_non_null(e);
  assert_false(e->has_item); /* a stranger: no item */
  /* bob's own roster: the server made an item with no subscription. */
  assert_true(flags_are(b, NULL, USER3, 0));
  assert_int_equal(kith_roster_item_sub(item_of(b, USER3)), KITH_SUB_NONE);

  /* bob also sends user3 directed presence and takes back a request:
   * neither makes an item. */
  assert_int_equal(kith_roster_send_presence(b->roster, USER3, NULL, NULL, NULL,
                                             "hi user3", 0),
                   KITH_OK);
  assert_int_equal(kith_roster_send_subscription(b->roster, USER3,
                                                 "unsubscribe", NULL, NULL),
                   KITH_OK);
  settle(b, c);
  assert_non_null(find_event(c, KITH_EVENT_PRESENCE_AVAILABLE, USER3, bj));

  /* A probe from the stranger: no presence, only 'unsubscribed' (RFC 6121
   * 4.3.2), and no item either. (bob's server drops that 'unsubscribed':
   * bob has nothing it could cancel, so it is counted on the way out.) */
  clear_events(b);
  c->probes_in = 0;
  c->unsubscribed_out = 0;
  send_raw(b, USER3, "probe");
  WAIT_FOR(c->probes_in > 0);
  settle(c, b);
  assert_int_equal(c->unsubscribed_out, 1);
  assert_int_equal(count_presence(b, USER3), 0);

  n3 = kith_roster_node(c->roster, USER3);
  assert_non_null(n3);
  assert_int_equal(kith_roster_node_size(n3), 0);
  assert_null(kith_roster_node_item(n3, bj));
  assert_int_equal(kith_roster_node_size(kith_roster_node(c->roster, USER1)),
                   0);
  /* No node was made for anyone else either. */
  assert_int_equal(kith_roster_node_count(c->roster), 2);
  assert_null(kith_roster_node(c->roster, USER2));
  for (i = 0; i < c->nev; i++)
    if (c->ev[i].type == KITH_EVENT_ROSTER_UPDATE)
      fail_msg("roster_update on %s for %s", c->ev[i].owner, c->ev[i].jid);

  /* With the manual policy the stranger's request waits, still without
   * an item; the application's 'subscribed' makes the item (RFC 6121
   * 3.1.4/3.1.5: approving is the owner's own act). */
  kith_roster_node_set_auto_authorize(kith_roster_node(c->roster, USER1),
                                      KITH_AUTHORIZE_MANUAL);
  clear_events(c);
  assert_int_equal(
      kith_roster_send_subscription(b->roster, USER1, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(find_event(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, USER1, bj));
  settle(b, c);
  settle(c, b);
  assert_int_equal(kith_roster_node_size(kith_roster_node(c->roster, USER1)),
                   0);
  assert_true(flags_are(b, NULL, USER1, KITH_ROSTER_PENDING_OUT));
  assert_int_equal(
      kith_roster_send_subscription(c->roster, bj, "subscribed", NULL, USER1),
      KITH_OK);
  assert_true(flags_are(c, USER1, bj, KITH_ROSTER_FROM));
  WAIT_FOR(flags_are(b, NULL, USER1, KITH_ROSTER_TO));
  assert_non_null(
      find_event(b, KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED, NULL, USER1));
  /* user3's node, which refused, still has nothing. */
  assert_int_equal(kith_roster_node_size(kith_roster_node(c->roster, USER3)),
                   0);
  assert_stamped(c);
}

/* ---- 6. Shutdown: subscribers see the owners go offline ------------------ */

static void test_shutdown_sends_unavailable(void **state)
{
  const char *const owners[] = {USER1, NULL};
  const char *aj = lab_get("ALICE_JID");
  peer_t *c = comp_new(owners), *a = peer_new("ALICE", "r1");

  (void)state;
  peer_connect(c);
  peer_connect(a);
  comp_presence(c, USER1, NULL, "serving");
  comp_make_mutual(c, USER1, a, aj, 1);
  assert_true(online_with(a, NULL, USER1, RES, "serving"));

  /* "Every owner goes offline" without detaching. */
  clear_events(a);
  assert_int_equal(kith_roster_send_presence(c->roster, NULL, "unavailable",
                                             NULL, NULL, NULL, 0),
                   KITH_OK);
  WAIT_FOR(count_events(a, KITH_EVENT_GOT_OFFLINE, NULL, USER1) > 0);
  assert_null(kith_roster_item_best_resource(item_of(a, USER1)));

  /* Back online, then detach: alice sees user1 go once more. */
  comp_presence(c, USER1, NULL, "serving again");
  WAIT_FOR(saw_status(a, KITH_EVENT_GOT_ONLINE, NULL, USER1, "serving again"));
  clear_events(a);
  kith_roster_detach(c->roster);
  WAIT_FOR(count_events(a, KITH_EVENT_GOT_OFFLINE, NULL, USER1) > 0);
  assert_null(kith_roster_item_best_resource(item_of(a, USER1)));
  /* alice is still subscribed: the component went away, nothing else. */
  assert_true(flags_are(a, NULL, USER1, BOTH));
  assert_stamped(c);
}

/* ---- 7. A component with a store restarts -------------------------------- */

#define RESTART_SCRIPT                                                         \
  KITH_TEST_DATA_DIR "/../integration/slixmpp_restart_peer.py"

static void test_restart_with_store_keeps_subscriptions(void **state)
{
  const char *const owners[] = {USER1, NULL};
  const char *const none[] = {NULL};
  const char *cj = lab_get("CAROL_JID");
  char dir[] = "/tmp/kith-comp-store-XXXXXX", uri[128], go[128];
  char *argv[] = {"/usr/bin/python3", RESTART_SCRIPT, "CAROL", USER1, go, NULL};
  char err[256];
  peer_t *c;
  int code, rc, fd;

  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(uri, sizeof(uri), "sqlite:%s/roster.db", dir);
  snprintf(go, sizeof(go), "%s/go", dir);
  assert_int_equal(kith_store_open(NULL, uri, &g_store, err, sizeof(err)),
                   KITH_OK);
  c = comp_new(owners);
  peer_connect(c);
  g_child_code = -1;
  rc = posix_spawn(&g_child, argv[0], NULL, NULL, argv, environ);
  if (rc != 0)
    fail_msg("posix_spawn %s: %s", argv[0], strerror(rc));
  /* slixmpp subscribes, the component accepts and asks back; then
   * slixmpp logs out. */
  WAIT_FOR((flags_are(c, USER1, cj, BOTH) &&
            count_events(c, KITH_EVENT_GOT_OFFLINE, USER1, cj) > 0) ||
           child_exit() >= 0);
  assert_int_equal(child_exit(), -1);
  peer_free(c);

  /* A new component on the same store: no node made by the application;
   * USER1's roster comes from the store when the probe for it arrives. */
  c = comp_new(none);
  peer_connect(c);
  assert_int_equal(kith_roster_node_count(c->roster), 0);
  assert_true((fd = open(go, O_CREAT | O_WRONLY, 0600)) >= 0);
  close(fd);
  WAIT_FOR((code = child_exit()) >= 0);
  assert_int_equal(code, 0);
  /* The probe came; slixmpp checked it was answered as a subscriber's
   * (presence, not 'unsubscribed', which the component sends only later,
   * acknowledging slixmpp's own unsubscribe, RFC 6121 3.3.3). */
  assert_true(c->probes_in > 0);
  /* slixmpp's removal reached a component that knew the subscription. */
  WAIT_FOR(count_events(c, KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED, USER1, cj) >
           0);
  peer_free(c);
  kith_store_close(g_store);
  g_store = NULL;
  unlink(go);
  snprintf(go, sizeof(go), "%s/roster.db", dir);
  unlink(go);
  snprintf(go, sizeof(go), "%s/roster.db-wal", dir);
  unlink(go);
  snprintf(go, sizeof(go), "%s/roster.db-shm", dir);
  unlink(go);
  rmdir(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_slixmpp_subscribes_to_component,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_component_subscribes_to_kith_client,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_broadcast_only_to_subscribers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_probes_and_answers_probes,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_stranger_creates_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_sends_unavailable, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_restart_with_store_keeps_subscriptions, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * kith demo: a guided tour against a throwaway Prosody on loopback.
 *
 * The demo starts the test lab (tests/lab/lab.sh), then runs the steps in
 * `steps` one after the other over a set of users that are all connected
 * at the same time. Each step prints what it did as text or, with --json,
 * one object per line. Whatever happens, the sessions are closed and the
 * server is stopped at the end. Add a step by writing one function and
 * one table entry.
 */
#include "cli.h"
#include "lab.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEMO_OPT_KEEP_LAB (CLI_OPT_CMD_BASE + 0)
#define DEMO_MAX_USERS 4

/* Leave the priority out of a presence (kith_roster_send_presence()). */
#define DEMO_NO_PRIORITY 1000

typedef struct demo_user {
  const char *name;       /* "alice" */
  const char *env_prefix; /* "ALICE": ALICE_JID, ALICE_PASSWORD in lab.env */
  const char *bare;       /* the account's JID from lab.env */
  cli_session_t s;
  cli_ping_t ping;
  /* What the roster events told this user (demo_event()). */
  char request_from[1024]; /* the last subscription request */
  char request_nick[256];
  char changed_jid[1024]; /* the last changed_status */
  char changed_show[16];
  char changed_status[256];
  int changed; /* changed_status seen since the flag was cleared */
} demo_user_t;

typedef struct demo {
  cli_t *cli;
  cli_lab_t lab;
  const char *host; /* XMPP_HOST from lab.env */
  unsigned port;    /* C2S_PORT */
  const char *domain;
  const char *ca_file;
  char store[PATH_MAX + 32]; /* sqlite:DIR/roster.db in the lab directory */
  demo_user_t users[DEMO_MAX_USERS];
  cli_session_t *ss[DEMO_MAX_USERS];
  size_t n_users;
  const char *step; /* the name of the step running, for messages */
  /* The roster set of step_roster_set(): here rather than on the stack,
   * because its callback may fire as late as the final disconnect. */
  int set_replied;
  kith_status_t set_status;
  size_t set_by, set_of; /* who names whom (indexes into users) */
  const char *set_name;  /* the name given */
  const char *set_group; /* and the one group */
} demo_t;

typedef struct demo_step {
  const char *name;
  int (*run)(demo_t *d); /* returns a CLI_EXIT_* code */
} demo_step_t;

/* The accounts the lab creates that the demo uses. */
static const struct {
  const char *name, *env_prefix;
} demo_accounts[] = {{"alice", "ALICE"}, {"bob", "BOB"}};

/* cli_fail() with the running step's name in front: "connect: ...". */
__attribute__((format(printf, 3, 4))) static int
demo_fail(const demo_t *d, kith_status_t status, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  /* The analyzer loses track of `ap` when it inlines this into callers. */
  vsnprintf(msg, sizeof(msg), fmt, ap); /* NOLINT(clang-analyzer-valist.*) */
  va_end(ap);
  if (d->step)
    return cli_fail(d->cli, status, "%s: %s", d->step, msg);
  return cli_fail(d->cli, status, "%s", msg);
}

/* The item for `jid` in the user's own roster, or NULL. */
static const kith_roster_item_t *user_item(const demo_user_t *u,
                                           const char *jid)
{
  const kith_roster_node_t *node = kith_roster_self(u->s.roster);

  return node ? kith_roster_node_item(node, jid) : NULL;
}

static void copy_text(char *dst, size_t size, const char *src)
{
  snprintf(dst, size, "%s", src ? src : "");
}

/* Remember what later steps report: requests and status changes. */
static void demo_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  demo_user_t *u = ud;

  (void)conn;
  if (ev->type == KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST) {
    copy_text(u->request_from, sizeof(u->request_from), ev->jid);
    copy_text(u->request_nick, sizeof(u->request_nick), ev->nick);
  } else if (ev->type == KITH_EVENT_CHANGED_STATUS) {
    copy_text(u->changed_jid, sizeof(u->changed_jid), ev->jid);
    copy_text(u->changed_show, sizeof(u->changed_show),
              kith_show_name((kith_show_t)ev->show));
    copy_text(u->changed_status, sizeof(u->changed_status),
              ev->stanza ? kith_stanza_child_text(ev->stanza, "status", NULL)
                         : NULL);
    u->changed = 1;
  }
}

/* ---- Step: connect everyone at the same time ---------------------------- */

static void announce_start(cli_session_t *s, void *ud)
{
  const demo_user_t *u = ud;
  char how[256];

  if (s->tls[0] && s->sasl[0])
    snprintf(how, sizeof(how), " (%s, %s)", s->tls, s->sasl);
  else if (s->tls[0] || s->sasl[0])
    snprintf(how, sizeof(how), " (%s)", s->tls[0] ? s->tls : s->sasl);
  else
    how[0] = '\0';
  cli_print(s->cli,
            json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:f}", "event",
                      "session_start", "user", u->name, "jid", s->jid, "tls",
                      s->tls[0] ? s->tls : NULL, "sasl",
                      s->sasl[0] ? s->sasl : NULL, "ms", s->started_ms),
            "%s: session started%s in %.0f ms", s->jid, how, s->started_ms);
}

static int open_user(demo_t *d, demo_user_t *u)
{
  char key[64];
  cli_target_t t;
  const char *jid, *password;
  kith_status_t rc;

  snprintf(key, sizeof(key), "%s_JID", u->env_prefix);
  jid = cli_lab_get(&d->lab, key);
  snprintf(key, sizeof(key), "%s_PASSWORD", u->env_prefix);
  password = cli_lab_get(&d->lab, key);
  if (jid == NULL || password == NULL)
    return demo_fail(d, KITH_ENOTFOUND, "lab.env has no %s_JID/%s_PASSWORD",
                     u->env_prefix, u->env_prefix);
  memset(&t, 0, sizeof(t));
  t.jid = jid;
  t.password = password;
  t.host = d->host;
  t.port = d->port;
  t.ca_file = d->ca_file;
  u->bare = jid;
  if (cli_session_open(&u->s, d->cli, u->name, &t) != KITH_OK)
    return demo_fail(d, u->s.status, "%s: %s", u->name,
                     cli_session_error(&u->s));
  /* Everyone accepts requests and subscribes back: the library's default
   * policy, which cli_session_attach_roster() turns off. */
  rc = cli_session_attach_roster(&u->s, 1, d->store);
  if (rc != KITH_OK)
    return demo_fail(d, rc, "%s: %s", u->name, cli_session_error(&u->s));
  if (kith_conn_on(u->s.conn, KITH_EVENT_ANY, demo_event, u) == 0)
    return demo_fail(d, KITH_ENOMEM, "%s: cannot attach a roster", u->name);
  kith_roster_set_auto_authorize(u->s.roster, KITH_AUTHORIZE_ACCEPT);
  kith_roster_set_auto_subscribe(u->s.roster, 1);
  u->s.on_start = announce_start;
  u->s.on_start_ud = u;
  return CLI_EXIT_OK;
}

/* The roster fetch at session start, then the initial presence. */
static int wait_rosters(demo_t *d)
{
  char buf[256];
  size_t i;
  kith_status_t rc = cli_wait_roster(d->cli, d->ss, d->n_users);

  if (rc != KITH_OK)
    return demo_fail(d, rc, "%s", cli_wait_error(d->cli, rc, buf, sizeof(buf)));
  for (i = 0; i < d->n_users; i++) {
    const demo_user_t *u = &d->users[i];
    const kith_roster_node_t *node = kith_roster_self(u->s.roster);
    size_t n = node ? kith_roster_node_size(node) : 0;
    if (!u->s.roster_received)
      return demo_fail(d, u->s.status, "%s: %s", u->name,
                       u->s.ended ? cli_session_error(&u->s)
                                  : u->s.roster_error);
    cli_print(d->cli,
              json_pack("{s:s, s:s, s:i}", "event", "roster_received", "user",
                        u->name, "items", (int)n),
              "%s: roster received (%zu item%s), now online", u->name, n,
              n == 1 ? "" : "s");
  }
  return CLI_EXIT_OK;
}

static int step_connect(demo_t *d)
{
  char names[512] = "";
  size_t i;
  kith_status_t rc;
  json_t *jids = json_array();

  for (i = 0; i < d->n_users; i++) {
    int code = open_user(d, &d->users[i]);
    if (code != CLI_EXIT_OK) {
      json_decref(jids);
      return code;
    }
    json_array_append_new(jids, json_string(d->users[i].name));
    snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
             i == 0 ? "" : (i + 1 == d->n_users ? " and " : ", "),
             d->users[i].name);
  }
  cli_print(d->cli,
            json_pack("{s:s, s:o}", "event", "connecting", "users", jids),
            "connecting %s at the same time (STARTTLS, SASL, bind) ...", names);
  rc = cli_wait_started(d->cli, d->ss, d->n_users);
  if (rc != KITH_OK) {
    char buf[256];
    return demo_fail(d, rc, "%s", cli_wait_error(d->cli, rc, buf, sizeof(buf)));
  }
  for (i = 0; i < d->n_users; i++)
    if (!d->users[i].s.started)
      return demo_fail(d, d->users[i].s.status, "%s: %s", d->users[i].name,
                       cli_session_error(&d->users[i].s));
  return wait_rosters(d);
}

/* ---- Step: everyone pings the server at once ---------------------------- */

static int all_pongs(void *ud)
{
  const demo_t *d = ud;
  size_t i;

  for (i = 0; i < d->n_users; i++)
    if (!d->users[i].ping.done)
      return 0;
  return 1;
}

static int step_ping(demo_t *d)
{
  char buf[1200];
  size_t i;
  kith_status_t rc;

  for (i = 0; i < d->n_users; i++) {
    rc = cli_ping_send(&d->users[i].s, d->domain, &d->users[i].ping);
    if (rc != KITH_OK)
      return demo_fail(d, rc, "%s: cannot send: %s", d->users[i].name,
                       kith_strerror(rc));
  }
  rc = cli_wait(d->cli, d->ss, d->n_users, all_pongs, d);
  if (rc != KITH_OK)
    return demo_fail(d, rc, "%s", cli_wait_error(d->cli, rc, buf, sizeof(buf)));
  for (i = 0; i < d->n_users; i++) {
    const demo_user_t *u = &d->users[i];
    if (u->ping.status != KITH_OK)
      return demo_fail(d, u->ping.status, "%s: %s", u->name,
                       u->s.ended ? cli_session_error(&u->s)
                                  : cli_ping_error(&u->ping, buf, sizeof(buf)));
    cli_print(d->cli,
              json_pack("{s:s, s:s, s:s, s:f}", "event", "pong", "user",
                        u->name, "from", u->ping.from, "rtt_ms",
                        u->ping.rtt_ms),
              "ping %s -> %s: %.2f ms", u->name, u->ping.from, u->ping.rtt_ms);
  }
  return CLI_EXIT_OK;
}

/* ---- Step: alice subscribes to bob; bob accepts and subscribes back ----- */

static int both_subscribed(void *ud)
{
  const demo_t *d = ud;
  const kith_roster_item_t *ab = user_item(&d->users[0], d->users[1].bare);
  const kith_roster_item_t *ba = user_item(&d->users[1], d->users[0].bare);

  return ab && ba && kith_roster_item_sub(ab) == KITH_SUB_BOTH &&
         kith_roster_item_sub(ba) == KITH_SUB_BOTH;
}

/* "bob: subscription request from alice@localhost (nick "Alice"):
 * accepted, and subscribed back" */
static void report_request(const demo_t *d, const demo_user_t *u, int back)
{
  const char *nick = u->request_nick[0] ? u->request_nick : NULL;

  cli_print(d->cli,
            json_pack("{s:s, s:s, s:s, s:s?, s:s, s:b}", "event",
                      "subscription_request", "user", u->name, "from",
                      u->request_from, "nick", nick, "answer", "subscribed",
                      "subscribed_back", back),
            "%s: subscription request from %s%s%s%s: accepted%s", u->name,
            u->request_from, nick ? " (nick \"" : "", nick ? nick : "",
            nick ? "\")" : "", back ? ", and subscribed back" : "");
}

static int step_subscribe(demo_t *d)
{
  demo_user_t *alice = &d->users[0], *bob = &d->users[1];
  double t0 = cli_now_exact_ms();
  char buf[256];
  kith_status_t rc;

  rc = kith_roster_send_subscription(alice->s.roster, bob->bare, "subscribe",
                                     "Alice", NULL);
  if (rc != KITH_OK)
    return demo_fail(d, rc, "alice: cannot subscribe: %s", kith_strerror(rc));
  cli_print(d->cli,
            json_pack("{s:s, s:s, s:s, s:s}", "event", "subscribe", "user",
                      alice->name, "to", bob->bare, "nick", "Alice"),
            "alice: subscribe to %s (nick \"Alice\"); both accept requests "
            "and subscribe back",
            bob->bare);
  rc = cli_wait(d->cli, d->ss, d->n_users, both_subscribed, d);
  if (rc != KITH_OK)
    return demo_fail(d, rc, "%s", cli_wait_error(d->cli, rc, buf, sizeof(buf)));
  report_request(d, bob, 1);
  report_request(d, alice, 0);
  cli_print(d->cli,
            json_pack("{s:s, s:[s, s], s:s, s:f}", "event", "subscribed",
                      "users", alice->name, bob->name, "subscription", "both",
                      "ms", cli_now_exact_ms() - t0),
            "alice and bob: subscription=both in both rosters (%.0f ms)",
            cli_now_exact_ms() - t0);
  return CLI_EXIT_OK;
}

/* ---- Step: alice names bob and puts him in a group ---------------------- */

static void on_set(kith_roster_t *roster, kith_status_t status,
                   const kith_stanza_t *reply, void *ud)
{
  demo_t *d = ud;

  (void)roster;
  (void)reply;
  d->set_replied = 1;
  d->set_status = status;
}

/* The reply came, and the push made the item match what was set. */
static int set_applied(void *ud)
{
  const demo_t *d = ud;
  const kith_roster_item_t *it =
      user_item(&d->users[d->set_by], d->users[d->set_of].bare);
  const char *name = it ? kith_roster_item_name(it) : NULL;

  if (d->set_replied && d->set_status != KITH_OK)
    return 1;
  return d->set_replied && name && strcmp(name, d->set_name) == 0 &&
         kith_roster_item_group_count(it) == 1 &&
         strcmp(kith_roster_item_group_at(it, 0), d->set_group) == 0;
}

/* users[by] names users[of] `name` in `group` and waits for the push. */
static int roster_set(demo_t *d, size_t by, size_t of, const char *name,
                      const char *group)
{
  demo_user_t *u = &d->users[by], *c = &d->users[of];
  const char *groups[1];
  char buf[256];
  kith_status_t rc;

  groups[0] = group;
  d->set_replied = 0;
  d->set_status = KITH_OK;
  d->set_by = by;
  d->set_of = of;
  d->set_name = name;
  d->set_group = group;
  rc = kith_roster_update(u->s.roster, c->bare, name, groups, 1, NULL, on_set,
                          d);
  if (rc != KITH_OK)
    return demo_fail(d, rc, "%s: roster set failed: %s", u->name,
                     kith_strerror(rc));
  rc = cli_wait(d->cli, d->ss, d->n_users, set_applied, d);
  if (rc != KITH_OK)
    return demo_fail(d, rc, "%s", cli_wait_error(d->cli, rc, buf, sizeof(buf)));
  if (d->set_status != KITH_OK)
    return demo_fail(d, d->set_status, "%s: roster set refused: %s", u->name,
                     kith_strerror(d->set_status));
  cli_print(d->cli,
            json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "event", "roster_set",
                      "user", u->name, "jid", c->bare, "name", name, "groups",
                      group),
            "%s: roster set %s name=%s groups=%s (server push applied)",
            u->name, c->bare, name, group);
  return CLI_EXIT_OK;
}

static int step_roster_set(demo_t *d)
{
  int code = roster_set(d, 0, 1, "Bob", "Friends");

  return code != CLI_EXIT_OK ? code : roster_set(d, 1, 0, "Alice", "Work");
}

/* ---- Step: both rosters ------------------------------------------------- */

static int step_rosters(demo_t *d)
{
  size_t i, j, n;

  for (i = 0; i < d->n_users; i++) {
    const demo_user_t *u = &d->users[i];
    const kith_roster_item_t **items = cli_roster_sorted(&u->s, &n);
    json_t *arr = json_array();

    for (j = 0; j < n; j++)
      json_array_append_new(arr, cli_item_json(items[j]));
    cli_print(d->cli,
              json_pack("{s:s, s:s, s:o}", "event", "roster", "user", u->name,
                        "items", arr),
              "%s's roster (%zu item%s):", u->name, n, n == 1 ? "" : "s");
    for (j = 0; !d->cli->json && j < n; j++) {
      fputs("  ", stdout);
      cli_item_put(stdout, items[j]);
      fputc('\n', stdout);
    }
    fflush(stdout);
    free(items);
  }
  return CLI_EXIT_OK;
}

/* ---- Step: bob goes away; alice sees it --------------------------------- */

static int bob_online_for_alice(void *ud)
{
  const demo_t *d = ud;
  const kith_roster_item_t *it = user_item(&d->users[0], d->users[1].bare);

  return it && kith_roster_item_resource_count(it) > 0;
}

static int alice_saw_change(void *ud)
{
  return ((const demo_t *)ud)->users[0].changed;
}

static int step_presence(demo_t *d)
{
  demo_user_t *alice = &d->users[0], *bob = &d->users[1];
  char buf[256];
  kith_status_t rc;

  /* Bob's server sent alice his presence when he approved her: wait for
   * it, so that "away" is a change and not his first presence. */
  rc = cli_wait(d->cli, d->ss, d->n_users, bob_online_for_alice, d);
  if (rc == KITH_OK) {
    alice->changed = 0;
    rc = kith_roster_send_presence(bob->s.roster, NULL, NULL, NULL, "away",
                                   "at lunch", DEMO_NO_PRIORITY);
  }
  if (rc == KITH_OK) {
    cli_print(d->cli,
              json_pack("{s:s, s:s, s:s, s:s}", "event", "presence", "user",
                        bob->name, "show", "away", "status", "at lunch"),
              "bob: presence away, status \"at lunch\"");
    rc = cli_wait(d->cli, d->ss, d->n_users, alice_saw_change, d);
  }
  if (rc != KITH_OK)
    return demo_fail(d, rc, "%s", cli_wait_error(d->cli, rc, buf, sizeof(buf)));
  cli_print(d->cli,
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "changed_status",
                      "user", alice->name, "jid", alice->changed_jid, "show",
                      alice->changed_show, "status", alice->changed_status),
            "alice: changed_status %s show=%s status=\"%s\"",
            alice->changed_jid, alice->changed_show, alice->changed_status);
  return CLI_EXIT_OK;
}

/* ---- Step: everyone disconnects cleanly --------------------------------- */

static int step_disconnect(demo_t *d)
{
  size_t i;
  kith_status_t rc = cli_close_sessions(d->cli, d->ss, d->n_users);

  if (rc == KITH_ETIMEDOUT || rc == KITH_ECANCELED)
    return demo_fail(d, rc, "%s",
                     rc == KITH_ECANCELED
                         ? "interrupted"
                         : "the server did not close the streams in time");
  for (i = 0; i < d->n_users; i++) {
    const demo_user_t *u = &d->users[i];
    if (u->s.status != KITH_OK)
      return demo_fail(d, u->s.status, "%s: %s", u->name,
                       cli_session_error(&u->s));
    cli_print(d->cli,
              json_pack("{s:s, s:s, s:s}", "event", "disconnected", "user",
                        u->name, "jid", u->s.jid),
              "%s: disconnected cleanly", u->s.jid);
  }
  return CLI_EXIT_OK;
}

/* ---- Step: the rosters outlive the sessions, in the store -------------- */

/* Read one user's roster back from the store, as 'roster list --offline'
 * does. */
static int report_stored(demo_t *d, kith_roster_t *r, const demo_user_t *u)
{
  kith_roster_node_t *node = NULL;
  kith_status_t rc = kith_roster_load(r, u->bare, &node);
  const char *ver;
  size_t n;

  if (rc != KITH_OK)
    return demo_fail(
        d, rc, "%s: cannot read the roster back from %s: %s", u->name, d->store,
        rc == KITH_ENOTFOUND ? "not there"
                             : kith_store_errmsg(kith_roster_store(r)));
  n = kith_roster_node_size(node);
  ver = kith_roster_node_version(node);
  cli_print(d->cli,
            json_pack("{s:s, s:s, s:s, s:i, s:s?}", "event", "stored", "user",
                      u->name, "store", d->store, "items", (int)n, "version",
                      ver),
            "%s: %zu item%s kept in the store%s%s, for the versioned fetch "
            "of the next login",
            u->name, n, n == 1 ? "" : "s", ver ? ", roster version " : "",
            ver ? ver : "");
  return CLI_EXIT_OK;
}

static int step_stored(demo_t *d)
{
  char err[256];
  kith_store_t *store = NULL;
  kith_roster_t *r = NULL;
  kith_status_t rc;
  size_t i;
  int code = CLI_EXIT_OK;

  rc = kith_store_open(NULL, d->store, &store, err, sizeof(err));
  if (rc != KITH_OK)
    return demo_fail(d, rc, "cannot open %s: %s", d->store, err);
  rc = kith_roster_new(NULL, &r);
  if (rc == KITH_OK)
    rc = kith_roster_set_store(r, store);
  if (rc != KITH_OK)
    code = demo_fail(d, rc, "%s", kith_strerror(rc));
  for (i = 0; code == CLI_EXIT_OK && i < d->n_users; i++)
    code = report_stored(d, r, &d->users[i]);
  kith_roster_free(r);
  kith_store_close(store);
  return code;
}

static const demo_step_t steps[] = {
    {"connect", step_connect},       {"ping", step_ping},
    {"subscribe", step_subscribe},   {"roster-set", step_roster_set},
    {"rosters", step_rosters},       {"presence", step_presence},
    {"disconnect", step_disconnect}, {"stored", step_stored},
};

/* ---- The lab around the steps ------------------------------------------- */

static int parse_lab_env(demo_t *d)
{
  const char *port = cli_lab_get(&d->lab, "C2S_PORT");
  char *end = NULL;
  unsigned long p = port ? strtoul(port, &end, 10) : 0;

  d->host = cli_lab_get(&d->lab, "XMPP_HOST");
  d->domain = cli_lab_get(&d->lab, "DOMAIN");
  d->ca_file = cli_lab_get(&d->lab, "CA_FILE");
  if (d->host == NULL || d->domain == NULL || d->ca_file == NULL || p == 0 ||
      p > 65535 || *end != '\0')
    return cli_fail(d->cli, KITH_ENOTFOUND,
                    "lab.env in %s lacks XMPP_HOST, C2S_PORT, DOMAIN or "
                    "CA_FILE",
                    d->lab.dir);
  d->port = (unsigned)p;
  /* The rosters go where the lab's files are, and leave with them. */
  snprintf(d->store, sizeof(d->store), "sqlite:%s/roster.db", d->lab.dir);
  return CLI_EXIT_OK;
}

static int start_lab(demo_t *d)
{
  char err[PATH_MAX * 2 + 64];
  double t0 = cli_now_exact_ms(), secs;

  if (cli_lab_find(&d->lab, err, sizeof(err)) != 0)
    return cli_fail(d->cli, KITH_ENOTFOUND, "%s", err);
  if (!d->cli->json) {
    printf("kith demo: starting a throwaway Prosody on 127.0.0.1 ... ");
    fflush(stdout);
  }
  if (cli_lab_start(&d->lab, err, sizeof(err)) != 0) {
    if (!d->cli->json)
      printf("failed\n");
    return cli_fail(d->cli, KITH_EIO, "%s", err);
  }
  secs = (cli_now_exact_ms() - t0) / 1000.0;
  if (parse_lab_env(d) != CLI_EXIT_OK)
    return CLI_EXIT_FAIL;
  cli_print(d->cli,
            json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:f}", "event",
                      "lab_started", "host", d->host, "c2s_port", (int)d->port,
                      "domain", d->domain, "dir", d->lab.dir, "script",
                      d->lab.script, "seconds", secs),
            "ok: %s:%u, domain %s (%.1f s)", d->host, d->port, d->domain, secs);
  cli_print(d->cli, json_pack("{s:s, s:s}", "event", "store", "uri", d->store),
            "rosters are kept in %s", d->store);
  return CLI_EXIT_OK;
}

/* Close what is still open, free the sessions and stop the server. */
static int finish(demo_t *d, int code)
{
  int keep = cli_cmd_flag(d->cli, DEMO_OPT_KEEP_LAB);
  char dir[PATH_MAX];
  size_t i;

  cli_close_sessions(d->cli, d->ss, d->n_users);
  for (i = 0; i < d->n_users; i++)
    cli_session_free(&d->users[i].s);
  if (!d->lab.running)
    return code;
  snprintf(dir, sizeof(dir), "%s", d->lab.dir);
  /* Keep the files of a lab that failed to start: its logs say why. */
  if (d->host == NULL)
    keep = 1;
  if (cli_lab_stop(&d->lab, keep) != 0) {
    cli_warn("demo: stopping the lab in %s failed", dir);
    return code == CLI_EXIT_OK ? CLI_EXIT_FAIL : code;
  }
  if (keep)
    fprintf(stderr, "kith demo: the lab's files are in %s\n", dir);
  if (code == CLI_EXIT_OK)
    cli_print(d->cli,
              json_pack("{s:s, s:b}", "event", "demo_finished", "ok", 1),
              "demo finished; server stopped.");
  return code;
}

static int check_options(const cli_t *cli)
{
  if (cli->jid || cli->server || cli->ca_file || cli->component ||
      cli->secret_env || cli->insecure || cli->store_given)
    return cli_usage_error(cli, "the demo starts its own server and keeps "
                                "its rosters beside it; the connection and "
                                "store options do not apply");
  return CLI_EXIT_OK;
}

static int run_demo(cli_t *cli, int argc, char **argv)
{
  demo_t *d;
  size_t i;
  int code;

  (void)argc;
  (void)argv;
  code = check_options(cli);
  if (code != CLI_EXIT_OK)
    return code;
  d = calloc(1, sizeof(*d));
  if (d == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  d->cli = cli;
  d->n_users = sizeof(demo_accounts) / sizeof(demo_accounts[0]);
  for (i = 0; i < d->n_users; i++) {
    d->users[i].name = demo_accounts[i].name;
    d->users[i].env_prefix = demo_accounts[i].env_prefix;
    d->ss[i] = &d->users[i].s;
  }
  code = start_lab(d);
  /* The global timeout counts from here: the lab has a timeout of its
   * own. */
  cli->deadline_ms = cli_now_ms() + cli->timeout_ms;
  if (code == CLI_EXIT_OK && cli_interrupted)
    code = cli_fail(cli, KITH_ECANCELED, "interrupted");
  for (i = 0; code == CLI_EXIT_OK && i < sizeof(steps) / sizeof(steps[0]);
       i++) {
    d->step = steps[i].name;
    code = steps[i].run(d);
  }
  d->step = NULL;
  code = finish(d, code);
  free(d);
  return code;
}

static const struct option demo_options[] = {
    {"keep-lab", no_argument, NULL, DEMO_OPT_KEEP_LAB},
    {NULL, 0, NULL, 0},
};

const cli_command_t cli_cmd_demo = {
    "demo",
    "demo",
    "show kith at work against a throwaway Prosody",
    "Starts a throwaway Prosody on 127.0.0.1 with tests/lab/lab.sh (found\n"
    "through $KITH_LAB_SCRIPT, the source tree, or PREFIX/share/kith), in a\n"
    "new directory under /tmp. Then, in a few seconds:\n"
    "  - alice and bob connect at the same time, each with a roster that\n"
    "    accepts subscription requests and subscribes back, and go online;\n"
    "  - each pings the server;\n"
    "  - alice subscribes to bob (nick \"Alice\"); bob accepts and\n"
    "    subscribes back, alice accepts, until both rosters show both;\n"
    "  - alice names bob \"Bob\" in group Friends, and bob names alice\n"
    "    \"Alice\" in group Work (roster sets), each waiting for the\n"
    "    server's push;\n"
    "  - both rosters are printed (as in 'kith roster list');\n"
    "  - bob goes away with status \"at lunch\"; alice sees changed_status;\n"
    "  - both disconnect cleanly;\n"
    "  - both rosters are read back from the store (sqlite:DIR/roster.db in\n"
    "    the lab's directory, written through all along), with the roster\n"
    "    version a next login would resume from;\n"
    "  - the server stops, also on failure or Ctrl-C.\n"
    "The connection and store options do not apply; --timeout bounds the\n"
    "part after the server started. With --json every line is one object\n"
    "with an \"event\": lab_started, store (\"uri\"), connecting,\n"
    "session_start, roster_received, pong, subscribe, subscription_request,\n"
    "subscribed, roster_set, roster (\"items\" as 'kith roster list\n"
    "--json'), presence, changed_status, disconnected, stored (\"store\",\n"
    "\"items\", \"version\"), demo_finished.\n"
    "\n"
    "Options:\n"
    "  --keep-lab    keep the lab directory (configuration, logs) after\n"
    "                stopping the server\n",
    demo_options,
    0,
    0,
    run_demo,
};

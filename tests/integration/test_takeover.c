/*
 * Integration: two component processes share one Redis store; when the
 * one serving the domain is killed (SIGKILL: no goodbye, no flush), the
 * other takes the domain over with every roster intact.
 *
 *   1. A private redis-server starts on loopback (lab.sh start-redis).
 *   2. Process A serves bot.localhost (node user1@bot.localhost) with its
 *      rosters in Redis. alice subscribes to user1; A accepts and asks
 *      back, alice accepts: both/both, stored by A as it happened.
 *   3. Process B starts for the same domain and store, with no node of
 *      its own and reconnection on. Prosody refuses it while A is there
 *      ("conflict": component_conflict_resolve kick_new), so B retries.
 *   4. A is killed. B's next attempt gets the domain; at session start it
 *      announces user1's presence, which goes to user1's subscribers as
 *      B reads them from Redis: alice sees it.
 *   5. alice logs in again: her server probes user1 and B answers as to
 *      a subscriber (presence, not 'unsubscribed').
 *
 * The children are forked before the parent makes any kith object, and
 * each builds its own. Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "lab.h"

#define WAIT_MS 15000
#define USER1 "user1@bot.localhost"

static char g_dir[64];
static char g_redis_uri[128];
static pid_t g_a = -1, g_b = -1;

static int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int file_exists(const char *name)
{
  char path[128];
  struct stat st;

  snprintf(path, sizeof(path), "%s/%s", g_dir, name);
  return stat(path, &st) == 0;
}

/* ---- The component processes -------------------------------------------- */

typedef struct comp {
  kith_roster_t *roster;
  const char *marker;
  const char *status;
} comp_t;

static void comp_on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  comp_t *c = ud;
  char path[128], from[128];
  FILE *f;

  (void)conn;
  if (ev->type != KITH_EVENT_SESSION_START)
    return;
  /* Serving: user1 announces itself to its subscribers. */
  snprintf(from, sizeof(from), "%s/%s", USER1, c->marker);
  kith_roster_send_presence(c->roster, NULL, NULL, from, NULL, c->status, 0);
  snprintf(path, sizeof(path), "%s/%s", g_dir, c->marker);
  if ((f = fopen(path, "w")) != NULL)
    fclose(f);
}

/* The body of a component process; never returns. */
static void run_component(const char *marker, const char *status, int own_node)
{
  kith_store_t *store = NULL;
  kith_conn_t *conn = NULL;
  comp_t c = {NULL, marker, status};
  char err[256];

  if (kith_store_open(NULL, g_redis_uri, &store, err, sizeof(err)) != KITH_OK) {
    fprintf(stderr, "component %s: %s\n", marker, err);
    _exit(2);
  }
  if (kith_conn_new(NULL, &conn) != KITH_OK ||
      kith_conn_set_server(conn, lab_get("XMPP_HOST"),
                           (unsigned)lab_get_int("COMPONENT_PORT")) !=
          KITH_OK ||
      kith_conn_set_component(conn, lab_get("COMPONENT_DOMAIN"),
                              lab_get("COMPONENT_SECRET")) != KITH_OK ||
      kith_conn_set_reconnect(conn, 1, 50, 200) != KITH_OK ||
      kith_roster_new(NULL, &c.roster) != KITH_OK ||
      kith_roster_set_store(c.roster, store) != KITH_OK ||
      (own_node && kith_roster_add_node(c.roster, USER1, NULL) != KITH_OK) ||
      kith_roster_attach(c.roster, conn) != KITH_OK ||
      kith_conn_on(conn, KITH_EVENT_ANY, comp_on_event, &c) == 0 ||
      kith_conn_connect(conn) != KITH_OK) {
    fprintf(stderr, "component %s: setup failed\n", marker);
    _exit(3);
  }
  for (;;)
    kith_run_once(&conn, 1, 100);
}

static pid_t spawn_component(const char *marker, const char *status,
                             int own_node)
{
  pid_t pid = fork();

  assert_true(pid >= 0);
  if (pid == 0)
    run_component(marker, status, own_node);
  return pid;
}

/* ---- alice ----------------------------------------------------------------
 */

typedef struct client {
  kith_conn_t *conn;
  kith_roster_t *roster;
  int started, received;
  char user1_status[128]; /* the last status user1's presence carried */
  int unsubscribed;       /* 'unsubscribed' from user1 seen */
  int user1_presence;     /* presences from user1 seen */
} client_t;

static void client_on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  client_t *a = ud;

  (void)conn;
  if (ev->type == KITH_EVENT_SESSION_START)
    a->started++;
  if (ev->type == KITH_EVENT_ROSTER_RECEIVED)
    a->received++;
  if (ev->type == KITH_EVENT_PRESENCE_UNSUBSCRIBED && ev->jid &&
      strncmp(ev->jid, USER1, strlen(USER1)) == 0)
    a->unsubscribed++;
}

static int client_on_presence(kith_conn_t *conn, const kith_stanza_t *st,
                              void *ud)
{
  client_t *a = ud;
  const char *from = kith_stanza_from(st), *status;

  (void)conn;
  if (from == NULL || strncmp(from, USER1, strlen(USER1)) != 0)
    return 0;
  a->user1_presence++;
  status = kith_stanza_child_text(st, "status", NULL);
  snprintf(a->user1_status, sizeof(a->user1_status), "%s",
           status ? status : "");
  return 0;
}

static void pump(client_t *a)
{
  kith_run_once(&a->conn, 1, 20);
}

#define WAIT_FOR(a, cond)                                                      \
  do {                                                                         \
    int64_t deadline_ = now_ms() + WAIT_MS;                                    \
    while (!(cond) && now_ms() < deadline_)                                    \
      pump(a);                                                                 \
    if (!(cond))                                                               \
      fail_msg("timed out after %d ms waiting for: %s", WAIT_MS, #cond);       \
  } while (0)

static void client_open(client_t *a)
{
  memset(a, 0, sizeof(*a));
  assert_int_equal(kith_conn_new(NULL, &a->conn), KITH_OK);
  assert_int_equal(kith_conn_set_server(a->conn, lab_get("XMPP_HOST"),
                                        (unsigned)lab_get_int("C2S_PORT")),
                   KITH_OK);
  assert_int_equal(kith_conn_set_ca_file(a->conn, lab_get("CA_FILE")), KITH_OK);
  assert_int_equal(kith_conn_set_jid(a->conn, lab_get("ALICE_JID")), KITH_OK);
  assert_int_equal(kith_conn_set_password(a->conn, lab_get("ALICE_PASSWORD")),
                   KITH_OK);
  assert_int_equal(kith_roster_new(NULL, &a->roster), KITH_OK);
  assert_int_equal(kith_roster_attach(a->roster, a->conn), KITH_OK);
  assert_true(kith_conn_on(a->conn, KITH_EVENT_ANY, client_on_event, a) > 0);
  assert_true(kith_conn_add_handler(a->conn, "presence", NULL, NULL,
                                    client_on_presence, a) > 0);
}

static void client_connect(client_t *a)
{
  int received = a->received;

  assert_int_equal(kith_conn_connect(a->conn), KITH_OK);
  WAIT_FOR(a, a->received > received);
}

static void client_close(client_t *a)
{
  int64_t end = now_ms() + 3000;

  kith_roster_detach(a->roster);
  kith_conn_disconnect(a->conn);
  while (kith_conn_is_active(a->conn) && now_ms() < end)
    pump(a);
  kith_roster_free(a->roster);
  kith_conn_free(a->conn);
}

static unsigned user1_flags(const client_t *a)
{
  kith_roster_item_t *it =
      kith_roster_node_item(kith_roster_self(a->roster), USER1);

  return it ? kith_roster_item_flags(it) : 0;
}

#define BOTH (KITH_ROSTER_FROM | KITH_ROSTER_TO)

/* ---- The test -------------------------------------------------------------
 */

static void reap(pid_t *pid)
{
  int status;

  if (*pid > 0) {
    kill(*pid, SIGKILL);
    waitpid(*pid, &status, 0);
    *pid = -1;
  }
}

static void test_takeover_keeps_rosters(void **state)
{
  client_t a;
  int status;

  (void)state;
  g_a = spawn_component("a", "served by A", 1);
  {
    int64_t end = now_ms() + WAIT_MS;

    while (!file_exists("a") && now_ms() < end)
      usleep(20000);
    assert_true(file_exists("a"));
  }

  client_open(&a);
  client_connect(&a);
  assert_int_equal(
      kith_roster_send_subscription(a.roster, USER1, "subscribe", NULL, NULL),
      KITH_OK);
  WAIT_FOR(&a, (user1_flags(&a) & (BOTH | KITH_ROSTER_PENDING_OUT)) == BOTH);

  /* B waits for the domain; A dies without a word. */
  g_b = spawn_component("b", "served by B", 0);
  usleep(300000);
  assert_false(file_exists("b")); /* refused while A holds the domain */
  kill(g_a, SIGKILL);
  waitpid(g_a, &status, 0);
  g_a = -1;

  /* B's announcement reaches alice: it knew her from Redis. */
  WAIT_FOR(&a, strcmp(a.user1_status, "served by B") == 0);
  assert_true(file_exists("b"));
  assert_int_equal(user1_flags(&a) & BOTH, BOTH);

  /* alice logs in again: the probe is answered as to a subscriber. */
  client_close(&a);
  client_open(&a);
  client_connect(&a);
  WAIT_FOR(&a, a.user1_presence > 0);
  assert_string_equal(a.user1_status, "served by B");
  assert_int_equal(a.unsubscribed, 0);
  assert_int_equal(user1_flags(&a) & BOTH, BOTH);

  /* Leave the account clean for the other tests. */
  assert_int_equal(kith_roster_remove(a.roster, USER1, NULL, NULL), KITH_OK);
  WAIT_FOR(&a,
           kith_roster_node_item(kith_roster_self(a.roster), USER1) == NULL);
  client_close(&a);
  reap(&g_b);
}

static int lab_redis(const char *what)
{
  char cmd[512];

  snprintf(cmd, sizeof(cmd), "bash '%s' %s '%s'", getenv("KITH_LAB_SCRIPT"),
           what, g_dir);
  return system(cmd);
}

static int setup(void **state)
{
  char env[128], line[256];
  FILE *f;
  int port = 0;

  (void)state;
  snprintf(g_dir, sizeof(g_dir), "/tmp/kith-takeover-XXXXXX");
  if (mkdtemp(g_dir) == NULL || getenv("KITH_LAB_SCRIPT") == NULL)
    return -1;
  if (lab_redis("start-redis") != 0)
    return -1;
  snprintf(env, sizeof(env), "%s/lab.env", g_dir);
  if ((f = fopen(env, "r")) == NULL)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, "REDIS_PORT=", 11) == 0)
      port = atoi(line + 11);
  fclose(f);
  if (port <= 0)
    return -1;
  snprintf(g_redis_uri, sizeof(g_redis_uri), "redis://127.0.0.1:%d/0", port);
  return 0;
}

static int teardown(void **state)
{
  char cmd[160];

  (void)state;
  reap(&g_a);
  reap(&g_b);
  lab_redis("stop-redis");
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_takeover_keeps_rosters, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

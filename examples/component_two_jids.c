/*
 * component_two_jids: a XEP-0114 component that serves two JIDs,
 * user1@DOMAIN and user2@DOMAIN, each with a roster of its own and a
 * policy of its own: user1 accepts subscription requests and asks back,
 * user2 declines them. A contact who asks both ends up with a 'both'
 * subscription to user1 and none to user2.
 *
 *   KITH_COMPONENT_SECRET=secret ./component_two_jids \
 *       --domain bot.example.com --server 127.0.0.1:5347 \
 *       [--store sqlite:rosters.db] [--ask romeo@example.net] [--for SECONDS]
 *
 * --ask JID: user1 also asks JID for a subscription when the session
 * starts.
 *
 * No server keeps a component's rosters: attached to a component
 * connection, kith's roster acts as the server for its nodes. It answers
 * subscription requests and probes and broadcasts presence, always from
 * the node's JID; what the application sends itself names its sender in
 * `from` (kith_roster_send_presence() and kith_roster_send_subscription()
 * take it), so nothing leaves from the bare domain.
 *
 * With --store URI (sqlite:PATH, redis://HOST:PORT, memory:) the rosters
 * survive a restart: the next run reads them back and probes the contacts.
 * The secret comes only from $KITH_COMPONENT_SECRET (see example.h). It
 * runs for --for SECONDS (default 60) or until SIGINT/SIGTERM. Exit status: 0
 * after a clean disconnect, 1 on failure, 2 for a usage error.
 */
#include <stdio.h>
#include <string.h>
#include <kith/kith.h>
#include "example.h" /* options, connection, loop: copy it too */

/* The JIDs we serve, as data: each with its own policy and status text. */
static const struct owner {
  const char *local;               /* user1 -> user1@DOMAIN */
  kith_auto_authorize_t authorize; /* per-node policy */
  int subscribe_back;
  const char *status; /* its presence <status/> */
} owners[] = {
    {"user1", KITH_AUTHORIZE_ACCEPT, 1, "user1 accepts subscriptions"},
    {"user2", KITH_AUTHORIZE_REJECT, 0, "user2 declines subscriptions"},
};
#define NOWNERS (sizeof(owners) / sizeof(owners[0]))
#define RESOURCE "bot" /* our presence comes from user1@DOMAIN/bot */

typedef struct app {
  kith_roster_t *roster;
  const char *domain;
  const char *ask;        /* --ask JID, or NULL */
  char jid[NOWNERS][512]; /* user1@DOMAIN, ... */
  kith_status_t end;      /* why the session ended */
} app_t;

/* Each owner's presence, from its own full JID; `type` NULL is available.
 * To NULL: the roster broadcasts it to the owner's subscribers (RFC 6121
 * 4.2.2) and remembers it to answer probes and new subscribers. */
static void announce(app_t *app, const char *type)
{
  char from[600];
  size_t i;

  for (i = 0; i < NOWNERS; i++) {
    snprintf(from, sizeof(from), "%s/%s", app->jid[i], RESOURCE);
    kith_roster_send_presence(app->roster, NULL, type, from, NULL,
                              type ? NULL : owners[i].status, 0);
  }
}

static void print_rosters(const app_t *app)
{
  kith_roster_item_t *it;
  size_t i, cursor;

  for (i = 0; i < NOWNERS; i++) {
    kith_roster_node_t *node = kith_roster_node(app->roster, app->jid[i]);

    if (node == NULL)
      continue;
    printf("roster of %s: %zu contact(s)\n", app->jid[i],
           kith_roster_node_size(node));
    cursor = 0;
    while ((it = kith_roster_node_next(node, &cursor)) != NULL)
      printf("  %s subscription=%s\n", kith_roster_item_jid(it),
             kith_sub_name(kith_roster_item_sub(it)));
  }
}

/* Every event as one line, with the node (owner) it concerns. */
static void on_any(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  app_t *app = ud;

  (void)conn;
  printf("[%s] %s %s", ev->owner ? ev->owner : app->domain,
         kith_event_name(ev->type), ev->jid ? ev->jid : "-");
  if (ev->item)
    printf(" subscription=%s%s", kith_sub_name(kith_roster_item_sub(ev->item)),
           (kith_roster_item_flags(ev->item) & KITH_ROSTER_PENDING_OUT)
               ? " ask=subscribe"
               : "");
  if (ev->type == KITH_EVENT_STREAM_ERROR)
    printf(" %s", ev->text);
  if (ev->type == KITH_EVENT_DISCONNECTED) {
    printf(" %s: %s", kith_status_name(ev->status), ev->text);
    app->end = ev->status; /* KITH_OK when we asked for it */
  }
  printf("\n");
  if (ev->type != KITH_EVENT_SESSION_START)
    return;
  announce(app, NULL); /* we are here */
  if (app->ask) {
    /* From user1, with a nickname (XEP-0172) for the contact to see. */
    kith_status_t rc = kith_roster_send_subscription(
        app->roster, app->ask, "subscribe", "User One", app->jid[0]);
    printf("%s asked %s: %s\n", app->jid[0], app->ask, kith_strerror(rc));
  }
}

/* When the time is up or a signal came: say goodbye from every owner and
 * show the rosters; example_run() then disconnects cleanly. */
static void at_end(kith_conn_t *conn, void *ud)
{
  if (kith_conn_is_ready(conn))
    announce(ud, "unavailable");
  print_rosters(ud);
}

int main(int argc, char **argv)
{
  const char *store_uri = NULL;
  char err[256];
  example_t ex;
  app_t app = {NULL, NULL, NULL, {{0}}, KITH_ECLOSED};
  kith_conn_t *conn = NULL;
  kith_store_t *store = NULL;
  kith_roster_node_t *node;
  size_t i;
  int a;

  /* Each line goes out whole and at once, even into a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  example_init_component(&ex, 60);
  for (a = 1; a + 1 < argc; a++) {
    if (strcmp(argv[a], "--store") == 0)
      store_uri = argv[++a];
    else if (strcmp(argv[a], "--ask") == 0)
      app.ask = argv[++a];
    else if (!example_option(&ex, argc, argv, &a))
      break; /* unknown: usage */
  }
  if (a != argc || !example_complete(&ex)) {
    fprintf(stderr,
            "usage: KITH_COMPONENT_SECRET=... %s --domain DOMAIN --server "
            "HOST:PORT [--store URI] [--ask JID] [--for SECONDS]\n",
            argv[0]);
    return 2;
  }
  app.domain = ex.jid;

  kith_conn_new(NULL, &conn);
  kith_roster_new(NULL, &app.roster);
  if (example_configure(&ex, conn) != 0) {
    app.end = KITH_EINVAL;
    goto out;
  }

  /* The store first, on the empty roster; nodes then load from it. */
  if (store_uri) {
    if (kith_store_open(NULL, store_uri, &store, err, sizeof(err)) != KITH_OK) {
      fprintf(stderr, "store %s: %s\n", store_uri, err);
      goto out;
    }
    kith_roster_set_store(app.roster, store);
  }
  for (i = 0; i < NOWNERS; i++) {
    snprintf(app.jid[i], sizeof(app.jid[i]), "%s@%s", owners[i].local,
             app.domain);
    if (kith_roster_add_node(app.roster, app.jid[i], &node) != KITH_OK) {
      fprintf(stderr, "cannot serve %s\n", app.jid[i]);
      goto out;
    }
    /* Per-node policy: overrides the roster-wide setting for this JID. */
    kith_roster_node_set_auto_authorize(node, owners[i].authorize);
    kith_roster_node_set_auto_subscribe(node, owners[i].subscribe_back);
  }
  print_rosters(&app); /* empty, or what the store kept */

  kith_conn_on(conn, KITH_EVENT_ANY, on_any, &app);
  kith_roster_attach(app.roster, conn);
  example_stop_on_signals();
  example_run(&ex, conn, at_end, &app);
out:
  kith_roster_free(app.roster); /* first: it uses the store */
  kith_store_close(store);
  kith_conn_free(conn);
  return app.end == KITH_OK ? 0 : app.end == KITH_EINVAL ? 2 : 1;
}

/*
 * roster_remove: remove a contact from the roster, in either of the two
 * ways SleekXMPP offers:
 *
 *   xmpp.del_roster_item('romeo@example.net')       kith_roster_remove()
 *   xmpp.update_roster('romeo@example.net',         kith_roster_update(...,
 *                      subscription='remove')           "remove", ...)
 *
 * Both send the same roster set: an item with subscription='remove'
 * (RFC 6121 2.5). The server deletes the item, cancels the subscriptions
 * both ways (it tells the contact 'unsubscribe' and 'unsubscribed' as
 * needed) and pushes the deletion, which kith reports as a roster_update
 * event with `removed` set.
 *
 *   KITH_PASSWORD=secret ./roster_remove --jid juliet@example.com \
 *       [--subscription-remove] romeo@example.net
 *
 * --subscription-remove uses kith_roster_update() rather than
 * kith_roster_remove(). Other options as in roster_rename.c: --jid JID
 * (default $KITH_JID), --server HOST[:PORT], --ca-file FILE, --timeout
 * SECONDS (default 30); the password comes only from $KITH_PASSWORD. Exit
 * status: 0 when the contact was removed, 1 on failure (e.g.
 * "item-not-found": the contact was not in the roster), 2 for a usage
 * error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <kith/kith.h>

typedef struct app {
  kith_conn_t *conn;
  kith_roster_t *roster;
  char *contact;           /* normalized bare JID (kith_free) */
  int subscription_remove; /* --subscription-remove */
  int sent, answered, pushed, failed;
} app_t;

/* Done once the server said yes AND its push has arrived, in either order. */
static void maybe_done(app_t *app)
{
  if (app->failed || (app->answered && app->pushed))
    kith_conn_disconnect(app->conn); /* sends </stream:stream>, waits */
}

/* The server's answer to the removal. */
static void on_removed(kith_roster_t *roster, kith_status_t status,
                       const kith_stanza_t *reply, void *ud)
{
  app_t *app = ud;
  const char *cond = reply ? kith_stanza_error_condition(reply) : NULL;

  (void)roster;
  if (status == KITH_OK) {
    printf("server removed %s\n", app->contact);
    app->answered = 1;
  } else {
    /* "item-not-found" when the contact was not in the roster. */
    printf("server did not remove %s: %s\n", app->contact,
           cond ? cond : kith_strerror(status));
    app->failed = 1;
  }
  maybe_done(app);
}

/* The roster is here (session start): ask for the removal. */
static void on_roster(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  app_t *app = ud;
  kith_status_t rc;

  (void)conn;
  printf("roster of %s: %zu item(s)\n", ev->owner,
         kith_roster_node_size(kith_roster_self(app->roster)));
  if (app->subscription_remove)
    /* update_roster(jid, subscription='remove'); name and groups do not
     * matter for a removal. */
    rc = kith_roster_update(app->roster, app->contact, NULL, NULL, 0, "remove",
                            on_removed, app);
  else
    /* del_roster_item(jid): the same request, said shorter. */
    rc = kith_roster_remove(app->roster, app->contact, on_removed, app);
  if (rc != KITH_OK) {
    fprintf(stderr, "remove: %s\n", kith_strerror(rc));
    app->failed = 1; /* on_removed() will not fire */
  }
  app->sent = 1;
  maybe_done(app);
}

/* A roster push: a deletion has `removed` set and no item any more. The
 * fetch raised one roster_update per item before roster_received; after
 * our request, every push is printed. */
static void on_push(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  app_t *app = ud;

  (void)conn;
  if (!app->sent)
    return;
  printf("roster_update %s%s\n", ev->jid, ev->removed ? " removed" : "");
  if (ev->removed && strcmp(ev->jid, app->contact) == 0) {
    app->pushed = 1;
    maybe_done(app);
  }
}

static void on_disconnected(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  (void)conn;
  (void)ud;
  printf("disconnected: %s\n", ev->text);
}

/* ---- Connection and loop, as in roster_rename.c -------------------------- */

/* --server HOST[:PORT]: connect there instead of looking up DNS SRV. */
static kith_status_t set_server(kith_conn_t *conn, const char *spec)
{
  char host[256];
  const char *colon = strrchr(spec, ':');
  size_t len = colon ? (size_t)(colon - spec) : strlen(spec);

  if (len == 0 || len >= sizeof(host))
    return KITH_EINVAL;
  memcpy(host, spec, len);
  host[len] = '\0';
  return kith_conn_set_server(conn, host,
                              colon ? (unsigned)atoi(colon + 1) : 0);
}

static double now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* kith_run(), with a deadline: one round at a time (at most 100 ms each),
 * and a clean disconnect when the time is up. */
static void run_until(kith_conn_t *conn, double seconds)
{
  double end = now() + seconds;
  int late = 0;

  while (kith_conn_is_active(conn)) {
    kith_run_once(&conn, 1, 100);
    if (!late && now() >= end) {
      fprintf(stderr, "timed out after %g s\n", seconds);
      kith_conn_disconnect(conn);
      late = 1;
    }
  }
}

int main(int argc, char **argv)
{
  const char *jid = getenv("KITH_JID"), *server = NULL, *ca_file = NULL;
  const char *reason = NULL;
  double timeout = 30;
  app_t app = {0};
  kith_conn_t *conn = NULL;
  int i, code = 1;

  for (i = 1; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (strcmp(argv[i], "--subscription-remove") == 0)
      app.subscription_remove = 1;
    else if (strcmp(argv[i], "--jid") == 0)
      jid = argv[++i];
    else if (strcmp(argv[i], "--server") == 0)
      server = argv[++i];
    else if (strcmp(argv[i], "--ca-file") == 0)
      ca_file = argv[++i];
    else if (strcmp(argv[i], "--timeout") == 0)
      timeout = atof(argv[++i]);
    else
      break; /* an unknown option: usage */
  }
  if (argc - i != 1 || jid == NULL || getenv("KITH_PASSWORD") == NULL) {
    fprintf(stderr,
            "usage: KITH_PASSWORD=... %s [--jid JID] [--server HOST[:PORT]] "
            "[--ca-file FILE] [--timeout SECONDS] [--subscription-remove] "
            "CONTACT\n",
            argv[0]);
    return 2;
  }
  /* Normalize the contact the way the roster keys its items and events. */
  if (kith_jid_normalize(NULL, argv[i], 1, &app.contact, &reason) != KITH_OK) {
    fprintf(stderr, "invalid JID %s: %s\n", argv[i], reason);
    return 2;
  }

  kith_conn_new(NULL, &conn);
  kith_roster_new(NULL, &app.roster);
  app.conn = conn;
  if (kith_conn_set_jid(conn, jid) != KITH_OK ||
      (server && set_server(conn, server) != KITH_OK)) {
    fprintf(stderr, "invalid --jid %s or --server %s\n", jid,
            server ? server : "-");
    code = 2;
    goto out;
  }
  kith_conn_set_password(conn, getenv("KITH_PASSWORD"));
  if (ca_file)
    kith_conn_set_ca_file(conn, ca_file);
  /* Roster work only: stay invisible, send no presence. */
  kith_roster_set_initial_presence(app.roster, 0);
  kith_roster_attach(app.roster, conn); /* it fetches at session start */
  kith_conn_on(conn, KITH_EVENT_ROSTER_RECEIVED, on_roster, &app);
  kith_conn_on(conn, KITH_EVENT_ROSTER_UPDATE, on_push, &app);
  kith_conn_on(conn, KITH_EVENT_DISCONNECTED, on_disconnected, NULL);

  if (kith_conn_connect(conn) == KITH_OK)
    run_until(conn, timeout);
  else
    fprintf(stderr, "connect: %s\n", kith_conn_error_text(conn));
  code = app.answered && app.pushed && !app.failed ? 0 : 1;
out:
  kith_roster_free(app.roster); /* detaches it from the connection */
  kith_conn_free(conn);
  kith_free(NULL, app.contact);
  return code;
}

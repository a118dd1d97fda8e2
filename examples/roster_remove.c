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
 * kith_roster_remove(). Other options: those of example.h (--jid, --server,
 * --ca-file), and --timeout SECONDS (default 30); the password comes only
 * from $KITH_PASSWORD. Exit status: 0 when the contact was removed, 1 on
 * failure (e.g. "item-not-found": the contact was not in the roster), 2
 * for a usage error.
 */
#include <stdio.h>
#include <string.h>
#include <kith/kith.h>
#include "example.h" /* options, connection, loop: copy it too */

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

int main(int argc, char **argv)
{
  const char *reason = NULL;
  example_t ex;
  app_t app = {0};
  int i, code = 1;

  example_init(&ex, "--timeout", 30);
  for (i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], "--subscription-remove") == 0)
      app.subscription_remove = 1;
    else if (!example_option(&ex, argc, argv, &i))
      break; /* an unknown option: usage */
  }
  if (argc - i != 1 || !example_complete(&ex)) {
    example_usage(&ex, argv[0], "[--subscription-remove] CONTACT");
    return 2;
  }
  /* Normalize the contact the way the roster keys its items and events. */
  if (kith_jid_normalize(NULL, argv[i], 1, &app.contact, &reason) != KITH_OK) {
    fprintf(stderr, "invalid JID %s: %s\n", argv[i], reason);
    return 2;
  }

  kith_conn_new(NULL, &app.conn);
  kith_roster_new(NULL, &app.roster);
  if ((code = example_configure(&ex, app.conn)) != 0)
    goto out;
  /* Roster work only: stay invisible, send no presence. */
  kith_roster_set_initial_presence(app.roster, 0);
  kith_roster_attach(app.roster, app.conn); /* it fetches at session start */
  kith_conn_on(app.conn, KITH_EVENT_ROSTER_RECEIVED, on_roster, &app);
  kith_conn_on(app.conn, KITH_EVENT_ROSTER_UPDATE, on_push, &app);
  kith_conn_on(app.conn, KITH_EVENT_DISCONNECTED, on_disconnected, NULL);

  example_run(&ex, app.conn, example_timed_out, &ex);
  code = app.answered && app.pushed && !app.failed ? 0 : 1;
out:
  kith_roster_free(app.roster); /* detaches it from the connection */
  kith_conn_free(app.conn);
  kith_free(NULL, app.contact);
  return code;
}

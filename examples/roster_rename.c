/*
 * roster_rename: fetch the roster, then rename a contact and put them in
 * groups. SleekXMPP's
 *
 *   xmpp.update_roster('romeo@example.net', name='Romeo',
 *                      groups=['Montagues'])
 *
 * becomes
 *
 *   KITH_PASSWORD=secret ./roster_rename --jid juliet@example.com \
 *       romeo@example.net Romeo Montagues
 *
 * Options: those of example.h (--jid, --server, --ca-file), and --timeout
 * SECONDS (default 30); the password comes only from $KITH_PASSWORD.
 *
 * The server is authoritative: kith_roster_update() asks it for the
 * change, and the local roster changes only when the server's roster push
 * comes back, which kith reports as a roster_update event. Exit status: 0
 * when the server accepted the change and its push arrived, 1 on failure,
 * 2 for a usage error.
 */
#include <stdio.h>
#include <string.h>
#include <kith/kith.h>
#include "example.h" /* options, connection, loop: copy it too */

typedef struct app {
  kith_conn_t *conn;
  kith_roster_t *roster;
  char *contact;             /* normalized bare JID (kith_free) */
  const char *name;          /* the new name */
  const char *const *groups; /* and groups */
  size_t ngroups;
  int sent, answered, pushed, failed;
} app_t;

/* One item as one line: "romeo@example.net name=Romeo subscription=none
 * groups=Montagues". */
static void print_item(const char *prefix, const kith_roster_item_t *it)
{
  const char *name = kith_roster_item_name(it);
  size_t i;

  printf("%s%s", prefix, kith_roster_item_jid(it));
  if (name)
    printf(" name=%s", name);
  printf(" subscription=%s", kith_sub_name(kith_roster_item_sub(it)));
  for (i = 0; i < kith_roster_item_group_count(it); i++)
    printf("%s%s", i == 0 ? " groups=" : ",", kith_roster_item_group_at(it, i));
  printf("\n");
}

/* Done once the server said yes AND its push has arrived, in either order. */
static void maybe_done(app_t *app)
{
  if (app->failed || (app->answered && app->pushed))
    kith_conn_disconnect(app->conn); /* sends </stream:stream>, waits */
}

/* The server's answer to our roster set (RFC 6121 2.3). */
static void on_updated(kith_roster_t *roster, kith_status_t status,
                       const kith_stanza_t *reply, void *ud)
{
  app_t *app = ud;

  (void)roster;
  if (status == KITH_OK) {
    printf("server accepted the change\n");
    app->answered = 1;
  } else {
    /* An error reply names its condition, e.g. "not-acceptable". */
    const char *cond = reply ? kith_stanza_error_condition(reply) : NULL;
    fprintf(stderr, "update refused: %s\n",
            cond ? cond : kith_strerror(status));
    app->failed = 1;
  }
  maybe_done(app);
}

/* Session start fetched the roster: show it, then ask for the change. */
static void on_roster(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  app_t *app = ud;
  kith_roster_node_t *self = kith_roster_self(app->roster);
  kith_roster_item_t *it;
  size_t cursor = 0;
  kith_status_t rc;

  (void)conn;
  printf("roster of %s: %zu item(s)\n", ev->owner, kith_roster_node_size(self));
  while ((it = kith_roster_node_next(self, &cursor)) != NULL)
    print_item("  ", it);
  /* A roster set with the whole new item (RFC 6121 2.3): the name and the
   * groups given here replace the old ones; NULL would mean no name. */
  rc = kith_roster_update(app->roster, app->contact, app->name, app->groups,
                          app->ngroups, NULL, on_updated, app);
  if (rc != KITH_OK) {
    fprintf(stderr, "update: %s\n", kith_strerror(rc));
    app->failed = 1; /* on_updated() will not fire */
  }
  app->sent = 1;
  maybe_done(app);
}

/* A roster push. The fetch raised one per item before roster_received;
 * after our request, the push for the contact is the one we wait for. */
static void on_push(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  app_t *app = ud;

  (void)conn;
  if (app->sent && ev->item && strcmp(ev->jid, app->contact) == 0) {
    print_item("roster_update ", ev->item);
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
  for (i = 1; example_option(&ex, argc, argv, &i); i++)
    ;
  if (argc - i < 2 || argv[i][0] == '-' || !example_complete(&ex)) {
    example_usage(&ex, argv[0], "CONTACT NAME [GROUP...]");
    return 2;
  }
  /* Normalize the contact the way the roster keys its items. */
  if (kith_jid_normalize(NULL, argv[i], 1, &app.contact, &reason) != KITH_OK) {
    fprintf(stderr, "invalid JID %s: %s\n", argv[i], reason);
    return 2;
  }
  app.name = argv[i + 1];
  app.groups = (const char *const *)&argv[i + 2];
  app.ngroups = (size_t)(argc - i - 2);

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

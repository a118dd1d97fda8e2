/*
 * custom_subscription: answer presence subscription requests from the
 * application's own data, as SleekXMPP's custom subscription handler
 * does:
 *
 *   def _handle_new_subscription(self, pres):
 *       if not self.backend.allow_subscription(pres['from']):
 *           send 'unsubscribed'
 *       else:
 *           self.backend.record(pres['from'])
 *           send 'subscribed', and 'subscribe' if we have no subscription
 *           to them yet and did not ask for one
 *
 * The "backend" here is a table keyed by JID, filled from an allow-list
 * file (one JID per line; '#' starts a comment). A real application would
 * ask its database instead.
 *
 *   KITH_PASSWORD=secret ./custom_subscription --jid juliet@example.com \
 *       allowed.txt
 *
 * kith's policy is manual (KITH_AUTHORIZE_MANUAL): it answers nothing by
 * itself and raises roster_subscription_request, which on_request() below
 * handles. Options: those of example.h (--jid, --server, --ca-file), and
 * --for SECONDS (default 60, or until SIGINT/SIGTERM); the password comes
 * only from $KITH_PASSWORD. Exit status: 0 after a clean disconnect, 1 on
 * failure, 2 for a usage error.
 */
#include <stdio.h>
#include <string.h>
#include <kith/kith.h>
#include "example.h" /* options, connection, loop: copy it too */

/* ---- The application's backend ----------------------------------------- */

#define BACKEND_MAX 64

typedef struct backend {
  struct row {
    char *jid;      /* normalized bare JID (kith_free) */
    int subscribed; /* recorded: we let them see our presence */
  } rows[BACKEND_MAX];
  size_t n;
} backend_t;

static struct row *backend_find(backend_t *b, const char *jid)
{
  size_t i;

  for (i = 0; i < b->n; i++)
    if (strcmp(b->rows[i].jid, jid) == 0)
      return &b->rows[i];
  return NULL;
}

/* Read the allow-list. JIDs are normalized, as kith's events give them. */
static int backend_load(backend_t *b, const char *path)
{
  char line[1024];
  FILE *f = fopen(path, "r");

  if (f == NULL)
    return -1;
  while (b->n < BACKEND_MAX && fgets(line, sizeof(line), f)) {
    const char *jid;

    line[strcspn(line, "#\r\n")] = '\0'; /* no comment, no line end */
    jid = strtok(line, " \t");
    if (jid &&
        kith_jid_normalize(NULL, jid, 1, &b->rows[b->n].jid, NULL) == KITH_OK)
      b->n++;
  }
  fclose(f);
  return 0;
}

static int allow_subscription(backend_t *b, const char *jid)
{
  return backend_find(b, jid) != NULL;
}

static void record_subscription(backend_t *b, const char *jid)
{
  backend_find(b, jid)->subscribed = 1;
  printf("backend: recorded the subscription of %s\n", jid);
}

/* ---- The subscription handler ------------------------------------------ */

typedef struct app {
  kith_roster_t *roster;
  backend_t backend;
} app_t;

static void on_request(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  app_t *app = ud;
  /* Read the flags before answering: sending changes them, and the item
   * is only borrowed. No item (a stranger) means no flags at all. */
  unsigned flags = ev->item ? kith_roster_item_flags(ev->item) : 0;

  (void)conn;
  if (!allow_subscription(&app->backend, ev->jid)) {
    kith_roster_send_subscription(app->roster, ev->jid, "unsubscribed", NULL,
                                  NULL);
    printf("refused %s\n", ev->jid);
    return;
  }
  record_subscription(&app->backend, ev->jid);
  kith_roster_send_subscription(app->roster, ev->jid, "subscribed", NULL, NULL);
  printf("accepted %s\n", ev->jid);
  /* Subscribe back only if no subscription exists in that direction yet:
   * neither do we see their presence (TO) nor did we ask (PENDING_OUT). */
  if (flags & (KITH_ROSTER_TO | KITH_ROSTER_PENDING_OUT)) {
    printf("not asking %s back: %s\n", ev->jid,
           (flags & KITH_ROSTER_TO) ? "subscribed already"
                                    : "our request is pending");
    return;
  }
  kith_roster_send_subscription(app->roster, ev->jid, "subscribe", NULL, NULL);
  printf("asked %s back\n", ev->jid);
}

/* How the other side answered, and the session's start and end. */
static kith_status_t g_end = KITH_ECLOSED;

static void on_other(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  (void)conn;
  (void)ud;
  if (ev->type != KITH_EVENT_DISCONNECTED) {
    printf("%s %s\n", kith_event_name(ev->type), ev->jid);
    return;
  }
  printf("disconnected: %s\n", ev->text);
  g_end = ev->status; /* KITH_OK when we asked for it */
}

int main(int argc, char **argv)
{
  static const kith_event_type_t others[] = {
      KITH_EVENT_SESSION_START,
      KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST,
      KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED,
      KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED,
      KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVE,
      KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED,
      KITH_EVENT_ROSTER_SUBSCRIPTION_CANCELLED,
      KITH_EVENT_DISCONNECTED,
  };
  example_t ex;
  kith_conn_t *conn = NULL;
  app_t app = {0};
  size_t k;
  int i;

  /* Each line goes out whole and at once, even into a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  example_init(&ex, "--for", 60);
  for (i = 1; example_option(&ex, argc, argv, &i); i++)
    ;
  if (i + 1 != argc || !example_complete(&ex)) {
    example_usage(&ex, argv[0], "ALLOW_LIST_FILE");
    return 2;
  }
  if (backend_load(&app.backend, argv[i]) != 0) {
    perror(argv[i]);
    return 1;
  }
  printf("backend: %zu JID(s) allowed\n", app.backend.n);

  kith_conn_new(NULL, &conn);
  kith_roster_new(NULL, &app.roster);
  if (example_configure(&ex, conn) != 0) {
    g_end = KITH_EINVAL;
    goto out;
  }

  /* kith answers nothing by itself and asks for nothing back. */
  kith_roster_set_auto_authorize(app.roster, KITH_AUTHORIZE_MANUAL);
  kith_roster_set_auto_subscribe(app.roster, 0);
  /* One printer serves several events; each registration has its id. */
  for (k = 0; k < sizeof(others) / sizeof(others[0]); k++)
    kith_conn_on(conn, others[k], on_other, NULL);
  kith_conn_on(conn, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, on_request, &app);
  kith_roster_attach(app.roster, conn); /* fetch, then go online */

  example_stop_on_signals();
  example_run(&ex, conn, NULL, NULL);
out:
  for (k = 0; k < app.backend.n; k++) {
    printf("backend: %s %s\n", app.backend.rows[k].jid,
           app.backend.rows[k].subscribed ? "subscribed" : "-");
    kith_free(NULL, app.backend.rows[k].jid);
  }
  kith_roster_free(app.roster); /* detaches it from the connection */
  kith_conn_free(conn);
  return g_end == KITH_OK ? 0 : g_end == KITH_EINVAL ? 2 : 1;
}

/*
 * policy: the four ways to answer presence subscription requests, one flag
 * each, with SleekXMPP's settings for the same:
 *
 *   --accept-both     auto_authorize=True,  auto_subscribe=True
 *                     accept, and ask back: the subscription ends up 'both'
 *   --accept-one-way  auto_authorize=True,  auto_subscribe=False
 *                     accept; the contact sees us, we do not see them
 *   --decline-all     auto_authorize=False
 *                     answer every request with 'unsubscribed'
 *   --custom          auto_authorize=None
 *                     kith answers nothing; on_request() below decides
 *
 *   KITH_PASSWORD=secret ./policy --jid juliet@example.com --accept-both
 *
 * It goes online and prints every event, one line each, for --for SECONDS
 * (default 60) or until SIGINT/SIGTERM, then disconnects cleanly. Other
 * options: those of example.h (--jid, --server, --ca-file); the password
 * comes only from $KITH_PASSWORD. Exit status: 0 after a clean disconnect, 1
 * when the connection failed, 2 for a usage error.
 */
#include <stdio.h>
#include <string.h>
#include <kith/kith.h>
#include "example.h" /* options, connection, loop: copy it too */

/* The policies as data: the flag, then the two roster settings. */
static const struct policy {
  const char *flag;
  kith_auto_authorize_t authorize; /* what to answer a request */
  int subscribe_back;              /* then ask for theirs as well? */
} policies[] = {
    {"--accept-both", KITH_AUTHORIZE_ACCEPT, 1},
    {"--accept-one-way", KITH_AUTHORIZE_ACCEPT, 0},
    {"--decline-all", KITH_AUTHORIZE_REJECT, 0},
    {"--custom", KITH_AUTHORIZE_MANUAL, 0},
};

static const struct policy *find_policy(const char *flag)
{
  size_t k;

  for (k = 0; k < sizeof(policies) / sizeof(policies[0]); k++)
    if (strcmp(flag, policies[k].flag) == 0)
      return &policies[k];
  return NULL;
}

static kith_status_t g_end = KITH_ECLOSED; /* why the session ended */

/* --custom: the application decides. This one accepts people who are
 * already in our roster (we added them first) and declines strangers.
 * Whatever the rule, the answer is 'subscribed' or 'unsubscribed'. */
static void on_request(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  kith_roster_t *roster = ud;
  int known = ev->item != NULL; /* NULL: a JID not in our roster */
  kith_status_t rc;

  (void)conn;
  rc = kith_roster_send_subscription(
      roster, ev->jid, known ? "subscribed" : "unsubscribed", NULL, NULL);
  printf("custom: %s %s (%s): %s\n", known ? "accepted" : "declined", ev->jid,
         known ? "in our roster" : "a stranger", kith_strerror(rc));
}

/* Every event as one line: its name, whom it is about, then the item's
 * subscription as it is now. */
static void on_any(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  const char *who = ev->jid ? ev->jid : ev->owner; /* a contact, or us */
  unsigned flags = ev->item ? kith_roster_item_flags(ev->item) : 0;

  (void)conn;
  (void)ud;
  printf("%s %s", kith_event_name(ev->type), who ? who : "-");
  if (ev->item)
    printf(" subscription=%s%s", kith_sub_name(kith_roster_item_sub(ev->item)),
           (flags & KITH_ROSTER_PENDING_OUT) ? " ask=subscribe" : "");
  if (ev->nick)
    printf(" nick=%s", ev->nick);
  if (ev->type == KITH_EVENT_ROSTER_UPDATE && ev->removed)
    printf(" removed");
  if (ev->type == KITH_EVENT_STREAM_ERROR)
    printf(" %s", ev->text);
  if (ev->type == KITH_EVENT_DISCONNECTED) {
    printf(" %s: %s", kith_status_name(ev->status), ev->text);
    g_end = ev->status; /* KITH_OK when we asked for it */
  }
  printf("\n");
}

int main(int argc, char **argv)
{
  const struct policy *pol = NULL;
  example_t ex;
  kith_conn_t *conn = NULL;
  kith_roster_t *roster = NULL;
  int i;

  /* Each line goes out whole and at once, even into a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  example_init(&ex, "--for", 60);
  for (i = 1; i < argc; i++) {
    if (find_policy(argv[i]))
      pol = find_policy(argv[i]);
    else if (!example_option(&ex, argc, argv, &i))
      break; /* unknown: usage */
  }
  if (i < argc || pol == NULL || !example_complete(&ex)) {
    example_usage(&ex, argv[0],
                  "--accept-both | --accept-one-way | --decline-all | "
                  "--custom");
    return 2;
  }

  kith_conn_new(NULL, &conn);
  kith_roster_new(NULL, &roster);
  if (example_configure(&ex, conn) != 0) {
    kith_roster_free(roster);
    kith_conn_free(conn);
    return 2;
  }

  /* The whole policy is these two calls; the roster applies them. */
  kith_roster_set_auto_authorize(roster, pol->authorize);
  kith_roster_set_auto_subscribe(roster, pol->subscribe_back);
  /* Handlers run in the order they were registered: print first. */
  kith_conn_on(conn, KITH_EVENT_ANY, on_any, NULL);
  if (pol->authorize == KITH_AUTHORIZE_MANUAL)
    kith_conn_on(conn, KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST, on_request,
                 roster);
  /* Fetch the roster, then go online (servers deliver requests only to
   * available resources). */
  kith_roster_attach(roster, conn);
  printf("policy %s\n", pol->flag + 2);

  example_stop_on_signals();
  example_run(&ex, conn, NULL, NULL);
  kith_roster_free(roster); /* detaches it from the connection */
  kith_conn_free(conn);
  return g_end == KITH_OK ? 0 : 1;
}

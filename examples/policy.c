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
 * options as in roster_rename.c: --jid JID (default $KITH_JID), --server
 * HOST[:PORT], --ca-file FILE; the password comes only from
 * $KITH_PASSWORD. Exit status: 0 after a clean disconnect, 1 when the
 * connection failed, 2 for a usage error.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <kith/kith.h>

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

static volatile sig_atomic_t g_stop;       /* set by SIGINT and SIGTERM */
static kith_status_t g_end = KITH_ECLOSED; /* why the session ended */

static void on_signal(int sig)
{
  (void)sig;
  g_stop = 1;
}

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

/* kith_run(), with an end: one round at a time (at most 100 ms each), and
 * a clean disconnect once the time is up or a signal came. */
static void run_until(kith_conn_t *conn, double seconds)
{
  double end = now() + seconds;
  int asked = 0;

  while (kith_conn_is_active(conn)) {
    kith_run_once(&conn, 1, 100);
    if (!asked && (g_stop || now() >= end)) {
      kith_conn_disconnect(conn);
      asked = 1;
    }
  }
}

int main(int argc, char **argv)
{
  const char *jid = getenv("KITH_JID"), *server = NULL, *ca_file = NULL;
  const struct policy *pol = NULL;
  double seconds = 60;
  kith_conn_t *conn = NULL;
  kith_roster_t *roster = NULL;
  int i;

  /* Each line goes out whole and at once, even into a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (i = 1; i < argc; i++) {
    int has_value = i + 1 < argc;

    if (find_policy(argv[i]))
      pol = find_policy(argv[i]);
    else if (has_value && strcmp(argv[i], "--jid") == 0)
      jid = argv[++i];
    else if (has_value && strcmp(argv[i], "--server") == 0)
      server = argv[++i];
    else if (has_value && strcmp(argv[i], "--ca-file") == 0)
      ca_file = argv[++i];
    else if (has_value && strcmp(argv[i], "--for") == 0)
      seconds = atof(argv[++i]);
    else
      break; /* unknown: usage */
  }
  if (i < argc || pol == NULL || jid == NULL ||
      getenv("KITH_PASSWORD") == NULL) {
    fprintf(stderr,
            "usage: KITH_PASSWORD=... %s [--jid JID] [--server HOST[:PORT]] "
            "[--ca-file FILE] [--for SECONDS] --accept-both | "
            "--accept-one-way | --decline-all | --custom\n",
            argv[0]);
    return 2;
  }

  kith_conn_new(NULL, &conn);
  kith_roster_new(NULL, &roster);
  if (kith_conn_set_jid(conn, jid) != KITH_OK ||
      (server && set_server(conn, server) != KITH_OK)) {
    fprintf(stderr, "invalid --jid %s or --server %s\n", jid,
            server ? server : "-");
    kith_roster_free(roster);
    kith_conn_free(conn);
    return 2;
  }
  kith_conn_set_password(conn, getenv("KITH_PASSWORD"));
  if (ca_file)
    kith_conn_set_ca_file(conn, ca_file);

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

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  if (kith_conn_connect(conn) == KITH_OK)
    run_until(conn, seconds);
  else
    fprintf(stderr, "connect: %s\n", kith_conn_error_text(conn));
  kith_roster_free(roster); /* detaches it from the connection */
  kith_conn_free(conn);
  return g_end == KITH_OK ? 0 : 1;
}

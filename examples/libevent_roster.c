/*
 * libevent_roster: kith on a libevent loop (include/kith/libevent.h). Log
 * in, print the roster, go online, stay until SIGINT or for SECONDS, then
 * log out cleanly.
 *
 *   KITH_PASSWORD=secret ./libevent_roster --jid juliet@example.com
 *
 * Options: those of example.h (--jid, --server, --ca-file), and --for
 * SECONDS (default: until SIGINT); the password comes only from
 * $KITH_PASSWORD. Only the options and the connection's settings come
 * from example.h: libevent runs the loop. Exit status: 0 after a clean
 * logout, 1 on failure, 2 for a usage error.
 */
#include <signal.h>
#include <stdio.h>
#include <kith/kith.h>
#include <kith/libevent.h>
#include "example.h" /* options and connection settings: copy it too */

typedef struct app {
  kith_conn_t *conn;
  kith_roster_t *roster;
  kith_libevent_t *ke;
  struct event *sigint;
  struct event *stay;
  int seconds; /* 0: until SIGINT */
  int leaving;
  kith_status_t end;
} app_t;

/* Our events keep the loop going; once they are removed, it returns when
 * kith has nothing left to do. */
static void remove_events(app_t *app)
{
  event_del(app->sigint);
  event_del(app->stay);
}

static void leave(app_t *app)
{
  printf("leaving\n");
  app->leaving = 1;
  kith_conn_disconnect(app->conn);
  /* Called from our own event, not from kith: tell the adapter. */
  kith_libevent_update(app->ke);
  remove_events(app);
}

static void on_sigint(evutil_socket_t sig, short what, void *ud)
{
  (void)sig;
  (void)what;
  leave(ud);
}

static void on_stay_over(evutil_socket_t fd, short what, void *ud)
{
  (void)fd;
  (void)what;
  leave(ud);
}

static void print_roster(const kith_roster_t *roster)
{
  kith_roster_node_t *self = kith_roster_self(roster);
  kith_roster_item_t *it;
  size_t cursor = 0, g;

  printf("roster: %zu item(s)\n", self ? kith_roster_node_size(self) : 0);
  while (self && (it = kith_roster_node_next(self, &cursor)) != NULL) {
    const char *name = kith_roster_item_name(it);
    printf("  %s%s%s%s subscription=%s", kith_roster_item_jid(it),
           name ? " \"" : "", name ? name : "", name ? "\"" : "",
           kith_sub_name(kith_roster_item_sub(it)));
    for (g = 0; g < kith_roster_item_group_count(it); g++)
      printf(" [%s]", kith_roster_item_group_at(it, g));
    printf("\n");
  }
}

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  app_t *app = ud;
  struct timeval tv = {0, 0};

  (void)conn;
  switch (ev->type) {
  case KITH_EVENT_SESSION_START:
    printf("session started as %s\n", ev->jid);
    break;
  case KITH_EVENT_ROSTER_RECEIVED:
    print_roster(app->roster);
    /* Inside a kith callback: the adapter sees the output afterwards. */
    if (kith_roster_send_presence(app->roster, NULL, NULL, NULL, NULL,
                                  "on libevent", 0) == KITH_OK)
      printf("presence sent\n");
    tv.tv_sec = app->seconds;
    if (app->seconds > 0 && !app->leaving)
      evtimer_add(app->stay, &tv);
    break;
  case KITH_EVENT_DISCONNECTED:
    printf("disconnected: %s\n", ev->text);
    app->end = ev->status;
    remove_events(app);
    break;
  default:
    break;
  }
}

int main(int argc, char **argv)
{
  example_t ex;
  app_t app = {0};
  struct event_base *base;

  setvbuf(stdout, NULL, _IOLBF, 0); /* lines show at once in a pipe */
  example_init(&ex, "--for", 0);    /* 0: until SIGINT */
  kith_conn_new(NULL, &app.conn);
  if (example_setup(&ex, argc, argv, app.conn) != 0) {
    kith_conn_free(app.conn);
    return 2;
  }
  app.seconds = (int)ex.seconds; /* whole seconds */
  kith_conn_on(app.conn, KITH_EVENT_ANY, on_event, &app);
  /* The roster fetches itself at session start; we send presence. */
  kith_roster_new(NULL, &app.roster);
  kith_roster_set_initial_presence(app.roster, 0);
  kith_roster_attach(app.roster, app.conn);

  base = event_base_new();
  app.sigint = evsignal_new(base, SIGINT, on_sigint, &app);
  app.stay = evtimer_new(base, on_stay_over, &app);
  event_add(app.sigint, NULL);

  app.end = kith_conn_connect(app.conn);
  if (app.end == KITH_OK)
    app.end = kith_libevent_attach(base, app.conn, &app.ke);
  if (app.end != KITH_OK) {
    fprintf(stderr, "connect: %s\n", kith_conn_error_text(app.conn));
    remove_events(&app);
  }
  event_base_dispatch(base); /* until kith is idle and our events gone */

  kith_libevent_detach(app.ke);
  kith_roster_free(app.roster);
  kith_conn_free(app.conn);
  event_free(app.sigint);
  event_free(app.stay);
  event_base_free(base);
  return app.end == KITH_OK ? 0 : 1;
}

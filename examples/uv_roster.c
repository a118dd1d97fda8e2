/*
 * uv_roster: kith on a libuv loop (include/kith/uv.h). Log in, print the
 * roster, go online, stay until SIGINT or for SECONDS, then log out
 * cleanly.
 *
 *   KITH_PASSWORD=secret ./uv_roster --jid juliet@example.com [--for 30]
 *
 * Options: those of example.h (--jid, --server, --ca-file), and --for
 * SECONDS (default: until SIGINT); the password comes only from
 * $KITH_PASSWORD. Only the options and the connection's settings come
 * from example.h: libuv runs the loop. Exit status: 0 after a clean
 * logout, 1 on failure, 2 for a usage error.
 */
#include <stdio.h>
#include <kith/kith.h>
#include <kith/uv.h>
#include "example.h" /* options and connection settings: copy it too */

typedef struct app {
  kith_conn_t *conn;
  kith_roster_t *roster;
  uv_signal_t sigint;
  uv_timer_t stay;
  int seconds; /* 0: until SIGINT */
  int closed;  /* our own handles are closed */
  kith_status_t end;
} app_t;

/* Our handles keep uv_run() going; once they are closed, it returns when
 * kith has nothing left to do. */
static void close_handles(app_t *app)
{
  if (app->closed)
    return;
  app->closed = 1;
  uv_close((uv_handle_t *)&app->sigint, NULL);
  uv_close((uv_handle_t *)&app->stay, NULL);
}

/* From our own handles: the adapter notices the queued close by itself. */
static void leave(app_t *app)
{
  printf("leaving\n");
  kith_conn_disconnect(app->conn);
  close_handles(app);
}

static void on_sigint(uv_signal_t *h, int signum)
{
  (void)signum;
  leave(h->data);
}

static void on_stay_over(uv_timer_t *t)
{
  leave(t->data);
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

  (void)conn;
  switch (ev->type) {
  case KITH_EVENT_SESSION_START:
    printf("session started as %s\n", ev->jid);
    break;
  case KITH_EVENT_ROSTER_RECEIVED:
    print_roster(app->roster);
    /* Inside a kith callback: the adapter sees the output afterwards. */
    if (kith_roster_send_presence(app->roster, NULL, NULL, NULL, NULL,
                                  "on libuv", 0) == KITH_OK)
      printf("presence sent\n");
    if (app->seconds > 0 && !app->closed)
      uv_timer_start(&app->stay, on_stay_over, (uint64_t)app->seconds * 1000u,
                     0);
    break;
  case KITH_EVENT_DISCONNECTED:
    printf("disconnected: %s\n", ev->text);
    app->end = ev->status;
    close_handles(app);
    break;
  default:
    break;
  }
}

int main(int argc, char **argv)
{
  example_t ex;
  app_t app = {0};
  kith_uv_t *uv = NULL;
  uv_loop_t *loop = uv_default_loop();

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

  uv_signal_init(loop, &app.sigint);
  uv_timer_init(loop, &app.stay);
  app.sigint.data = app.stay.data = &app;
  uv_signal_start(&app.sigint, on_sigint, SIGINT);

  app.end = kith_conn_connect(app.conn);
  if (app.end == KITH_OK)
    app.end = kith_uv_attach(loop, app.conn, &uv);
  if (app.end != KITH_OK) {
    fprintf(stderr, "connect: %s\n", kith_conn_error_text(app.conn));
    close_handles(&app);
  }
  uv_run(loop, UV_RUN_DEFAULT); /* until kith is idle and our handles closed */

  kith_uv_detach(uv);
  kith_roster_free(app.roster);
  kith_conn_free(app.conn);
  uv_run(loop, UV_RUN_DEFAULT); /* let libuv finish closing */
  uv_loop_close(loop);
  return app.end == KITH_OK ? 0 : 1;
}

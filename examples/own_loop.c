/*
 * own_loop: drive kith from your own poll(2) loop, which here also reads
 * commands from standard input and keeps a deadline of its own.
 *
 *   list            print the roster
 *   add JID [NAME]  add a contact (or rename one)
 *   remove JID      remove a contact
 *   quit            log out (so does the end of the input)
 *
 * Commands wait for the roster, and each for the previous one's answer,
 * so a script piped in runs in order:
 *
 *   printf 'add romeo@example.net Romeo\nlist\n' |
 *     KITH_PASSWORD=secret ./own_loop --jid juliet@example.com
 *
 * Options: those of example.h (--jid, --server, --ca-file), and --for
 * SECONDS (give up and log out after that long; default 60); the password
 * comes only from $KITH_PASSWORD. Only the options and the connection's
 * settings come from example.h: the loop is below. Exit status: 0 after a
 * clean logout, 1 on failure, 2 for a usage error.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <kith/kith.h>
#include "example.h" /* options and connection settings: copy it too */

typedef struct app {
  kith_conn_t *conn;
  kith_roster_t *roster;
  int ready, busy, eof, leaving;
  char doing[300]; /* the command waiting for its answer */
  char in[4096];   /* unprocessed input */
  size_t inlen;
  kith_status_t end;
} app_t;

static long now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void leave(app_t *app)
{
  app->leaving = 1;
  kith_conn_disconnect(app->conn); /* our loop asks for the interest anew */
}

static void on_done(kith_roster_t *roster, kith_status_t status,
                    const kith_stanza_t *reply, void *ud)
{
  app_t *app = ud;

  (void)roster;
  (void)reply;
  printf("%s: %s\n", app->doing,
         status == KITH_OK ? "ok" : kith_strerror(status));
  app->busy = 0;
}

static void list(const kith_roster_t *roster)
{
  kith_roster_node_t *self = kith_roster_self(roster);
  kith_roster_item_t *it;
  size_t cursor = 0;

  printf("roster: %zu item(s)\n", self ? kith_roster_node_size(self) : 0);
  while (self && (it = kith_roster_node_next(self, &cursor)) != NULL)
    printf("  %s \"%s\" subscription=%s\n", kith_roster_item_jid(it),
           kith_roster_item_name(it) ? kith_roster_item_name(it) : "",
           kith_sub_name(kith_roster_item_sub(it)));
}

static void run(app_t *app, char *line)
{
  char *cmd = strtok(line, " \t"), *jid = strtok(NULL, " \t");
  char *name = strtok(NULL, "");
  kith_status_t rc = KITH_OK;

  if (cmd == NULL)
    return;
  snprintf(app->doing, sizeof(app->doing), "%s%s%s", cmd, jid ? " " : "",
           jid ? jid : "");
  if (strcmp(cmd, "list") == 0) {
    list(app->roster);
  } else if (strcmp(cmd, "quit") == 0) {
    leave(app);
  } else if (strcmp(cmd, "add") == 0 && jid) {
    app->busy = 1; /* until on_done() */
    rc =
        kith_roster_update(app->roster, jid, name, NULL, 0, NULL, on_done, app);
  } else if (strcmp(cmd, "remove") == 0 && jid) {
    app->busy = 1;
    rc = kith_roster_remove(app->roster, jid, on_done, app);
  } else {
    printf("unknown command: %s\n", app->doing);
  }
  if (rc != KITH_OK) { /* then on_done() never fires */
    printf("%s: %s\n", app->doing, kith_strerror(rc));
    app->busy = 0;
  }
}

/* Run the complete lines we have, one request at a time. */
static void run_commands(app_t *app)
{
  while (app->ready && !app->busy && !app->leaving) {
    char *nl = memchr(app->in, '\n', app->inlen);

    if (nl == NULL) {
      if (app->eof)
        leave(app);
      return;
    }
    *nl = '\0';
    run(app, app->in);
    app->inlen -= (size_t)(nl + 1 - app->in);
    memmove(app->in, nl + 1, app->inlen);
  }
}

static void read_input(app_t *app)
{
  ssize_t n = read(0, app->in + app->inlen, sizeof(app->in) - 1 - app->inlen);

  if (n < 0 && errno == EINTR)
    return;
  if (n > 0)
    app->inlen += (size_t)n;
  if (n <= 0 || app->inlen == sizeof(app->in) - 1) { /* end, or too long */
    app->eof = n <= 0;
    app->in[app->inlen++] = '\n'; /* ends the last line */
  }
}

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  app_t *app = ud;

  (void)conn;
  if (ev->type == KITH_EVENT_SESSION_START)
    printf("session started as %s\n", ev->jid);
  if (ev->type == KITH_EVENT_ROSTER_RECEIVED) {
    list(app->roster);
    app->ready = 1;
  }
  if (ev->type == KITH_EVENT_ROSTER_UPDATE)
    printf("update: %s%s\n", ev->jid, ev->removed ? " removed" : "");
  if (ev->type == KITH_EVENT_DISCONNECTED) {
    printf("disconnected: %s\n", ev->text);
    app->end = ev->status;
  }
}

int main(int argc, char **argv)
{
  example_t ex;
  app_t app = {0};
  long deadline;

  setvbuf(stdout, NULL, _IOLBF, 0); /* lines show at once in a pipe */
  example_init(&ex, "--for", 60);
  kith_conn_new(NULL, &app.conn);
  if (example_setup(&ex, argc, argv, app.conn) != 0) {
    kith_conn_free(app.conn);
    return 2;
  }
  kith_conn_on(app.conn, KITH_EVENT_ANY, on_event, &app);
  kith_roster_new(NULL, &app.roster);
  kith_roster_attach(app.roster, app.conn);
  if ((app.end = kith_conn_connect(app.conn)) != KITH_OK)
    fprintf(stderr, "connect: %s\n", kith_conn_error_text(app.conn));
  deadline = now_ms() + (long)ex.seconds * 1000; /* whole seconds */

  /* What kith_run_once() does, plus our own fd and our own timer. */
  while (kith_conn_is_active(app.conn)) {
    struct pollfd fds[2] = {{-1, 0, 0}, {-1, 0, 0}};
    int want = kith_conn_want(app.conn), ready = 0;
    long wait = kith_conn_timeout(app.conn), left = deadline - now_ms();

    if (left < 0)
      left = 0;
    if (wait < 0 || wait > left)
      wait = left;
    if (want) /* fd -1 (waiting to reconnect) is ignored by poll */
      fds[0].fd = kith_conn_fd(app.conn);
    fds[0].events = (short)(((want & KITH_IO_READ) ? POLLIN : 0) |
                            ((want & KITH_IO_WRITE) ? POLLOUT : 0));
    if (app.ready && !app.busy && !app.eof && !app.leaving &&
        memchr(app.in, '\n', app.inlen) == NULL) {
      fds[1].fd = 0; /* more commands, once the last one is done */
      fds[1].events = POLLIN;
    }
    if (poll(fds, 2, (int)wait) < 0 && errno != EINTR)
      break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
      ready |= KITH_IO_READ;
    if (fds[0].revents & (POLLOUT | POLLHUP | POLLERR))
      ready |= KITH_IO_WRITE;
    kith_conn_process(app.conn, ready); /* always: timers are due too */
    if (fds[1].revents)
      read_input(&app);
    run_commands(&app);
    if (now_ms() >= deadline && !app.leaving) {
      printf("time is up\n");
      leave(&app);
    }
  }
  kith_roster_free(app.roster);
  kith_conn_free(app.conn);
  return app.end == KITH_OK ? 0 : 1;
}

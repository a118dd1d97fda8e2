/*
 * Test helper: a kith connection driven by a real event loop, with the
 * test as its scripted server, for the loop adapters' tests
 * (test_loop_uv.c, test_loop_libevent.c).
 *
 * The test plays the server on the other end of a socketpair: it writes
 * what the server would say (say()) and a watcher of its own, in the same
 * loop, collects what kith writes into f->got. Everything else runs in
 * the loop through the adapter, so a wait is RUN_UNTIL(f, cond, ms).
 *
 * What is the same for every loop is here: the fixture, the peer's
 * socket, kith's callbacks, the session set-up, and the cases that read
 * the same for every adapter. What is not, the includer writes, after
 * <cmocka.h> and the loop's own headers:
 *
 *   - FX_LOOP_MEMBERS, defined before the include: the fixture's members
 *     for the loop, the adapter and the test's own watchers and timers;
 *   - after the include, the hooks declared below under "The loop's
 *     side", each a few lines of that loop's API.
 */
#ifndef KITH_TEST_LOOP_FIXTURE_H
#define KITH_TEST_LOOP_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kith/kith.h"
#include "session/conn.h"

#define CLIENT_HEADER                                                          \
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                 \
  "xmlns:stream='http://etherx.jabber.org/streams' id='c1' "                   \
  "from='localhost' version='1.0'>"
#define WAIT_MS 5000

typedef struct fx {
  FX_LOOP_MEMBERS
  kith_conn_t *conn;
  int peer;    /* the scripted server's end */
  int expired; /* the guard timer of RUN_UNTIL() fired */
  void (*app_cb)(struct fx *f);
  char *got; /* what kith wrote */
  size_t gotlen, gotcap;
  int started, disconnected, messages, iq_done;
  kith_status_t status, iq_status;
  int reconnect_in_handler; /* adopt a new socket from DISCONNECTED */
  int reused_fd;            /* the fd number that socket got */
  int detach_on_message;
} fx_t;

/* ---- The loop's side: the includer defines these ------------------------ */

/* Make the loop, the guard timer and the application's timer. */
static void fx_loop_open(fx_t *f);
/* Attach the adapter to f->conn; detach it (and forget it). */
static void fx_attach(fx_t *f);
static void fx_detach(fx_t *f);
/* Tear everything down, checking the loop is left with nothing. */
static void fx_close(fx_t *f);
/* The application changed the connection's state from outside kith's
 * callbacks: tell the adapter, if this adapter needs to be told. */
static void app_changed(fx_t *f);
/* Call `cb` from the application's own timer in `ms`, outside kith's
 * callbacks. */
static void app_later(fx_t *f, void (*cb)(fx_t *f), long ms);
/* Watch f->peer and feed peer_collect() while it is readable; stop and
 * free that watcher. */
static void peer_watch(fx_t *f);
static void peer_unwatch(fx_t *f);
/* Start and stop the guard timer, which sets f->expired; run the loop
 * once, blocking until something happens. */
static void guard_start(fx_t *f, long ms);
static void guard_stop(fx_t *f);
static void loop_run_once(fx_t *f);

/* Run the real loop until `cond` holds, for at most `ms`. */
#define RUN_UNTIL(f, cond, ms)                                                 \
  do {                                                                         \
    (f)->expired = 0;                                                          \
    guard_start((f), (ms));                                                    \
    while (!(cond) && !(f)->expired)                                           \
      loop_run_once(f);                                                        \
    guard_stop(f);                                                             \
    assert_true(cond);                                                         \
  } while (0)

/* ---- The fixture -------------------------------------------------------- */

static inline fx_t *fx_new(void)
{
  fx_t *f = calloc(1, sizeof(*f));

  assert_non_null(f);
  f->gotcap = 1u << 20;
  f->got = malloc(f->gotcap);
  assert_non_null(f->got);
  f->got[0] = '\0';
  f->peer = -1;
  return f;
}

static inline void forget(fx_t *f)
{
  f->gotlen = 0;
  f->got[0] = '\0';
}

static inline int sent(const fx_t *f, const char *needle)
{
  return strstr(f->got, needle) != NULL;
}

/* ---- The scripted peer -------------------------------------------------- */

/* Read what kith wrote into f->got. Returns 0 once kith closed its end
 * (the caller then stops watching), 1 otherwise. */
static inline int peer_collect(fx_t *f)
{
  int open = 1;

  for (;;) {
    ssize_t n = recv(f->peer, f->got + f->gotlen, f->gotcap - 1 - f->gotlen,
                     MSG_DONTWAIT);
    if (n <= 0) {
      if (n == 0 || (errno != EAGAIN && errno != EINTR))
        open = 0;
      break;
    }
    f->gotlen += (size_t)n;
  }
  f->got[f->gotlen] = '\0';
  return open;
}

/* A new socketpair; returns kith's end (non-blocking), numbered `want`
 * when that is not -1 (it must be free), and keeps the other end. */
static inline int peer_socket_as(fx_t *f, int want)
{
  int sv[2];

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  if (want >= 0 && sv[1] == want) {
    sv[1] = sv[0];
    sv[0] = want;
  }
  if (want >= 0 && sv[0] != want) {
    assert_int_equal(dup2(sv[0], want), want);
    close(sv[0]);
    sv[0] = want;
  }
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  f->peer = sv[1];
  peer_watch(f);
  return sv[0];
}

static inline int peer_socket(fx_t *f)
{
  return peer_socket_as(f, -1);
}

/* Stop watching the peer's socket and close it. */
static inline void peer_hangup(fx_t *f)
{
  peer_unwatch(f);
  if (f->peer >= 0)
    close(f->peer);
  f->peer = -1;
}

static inline void say(fx_t *f, const char *xml)
{
  assert_int_equal(send(f->peer, xml, strlen(xml), MSG_NOSIGNAL),
                   (ssize_t)strlen(xml));
}

/* ---- kith's side -------------------------------------------------------- */

static inline void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  fx_t *f = ud;

  if (ev->type == KITH_EVENT_SESSION_START)
    f->started++;
  if (ev->type != KITH_EVENT_DISCONNECTED)
    return;
  f->disconnected++;
  f->status = ev->status;
  if (f->reconnect_in_handler) {
    /* Reconnect at once onto a new socket that takes over the number the
     * old one had: inside one kith_conn_process() call, the adapter sees
     * the same fd before and after. */
    f->reconnect_in_handler = 0;
    peer_hangup(f);
    assert_int_equal(kith__conn_adopt_fd(conn, peer_socket_as(f, f->reused_fd)),
                     KITH_OK);
  }
}

static inline int on_message(kith_conn_t *conn, const kith_stanza_t *st,
                             void *ud)
{
  fx_t *f = ud;

  (void)conn;
  (void)st;
  f->messages++;
  if (f->detach_on_message)
    fx_detach(f);
  return 1;
}

static inline void on_iq(kith_conn_t *conn, kith_status_t status,
                         const kith_stanza_t *reply, void *ud)
{
  fx_t *f = ud;

  (void)conn;
  (void)reply;
  f->iq_done++;
  f->iq_status = status;
}

/* The server's stream header goes in; kith's has come out and the
 * connection has moved past waiting for the server's. */
static inline void exchange_headers(fx_t *f)
{
  say(f, CLIENT_HEADER);
  RUN_UNTIL(f, sent(f, "<stream:stream") && f->conn->phase != KITH__PH_HEADER,
            WAIT_MS);
}

/* A connection on a fresh socketpair, attached to the loop, with the
 * stream headers exchanged. */
static inline fx_t *fx_open(void)
{
  fx_t *f = fx_new();
  int fd;

  fx_loop_open(f);
  assert_int_equal(kith_conn_new(NULL, &f->conn), KITH_OK);
  assert_int_equal(kith_conn_set_jid(f->conn, "alice@localhost"), KITH_OK);
  assert_int_equal(kith_conn_set_password(f->conn, "pw"), KITH_OK);
  assert_int_equal(kith_conn_set_timeouts(f->conn, 0, 150), KITH_OK);
  assert_true(kith_conn_on(f->conn, KITH_EVENT_ANY, on_event, f) > 0);
  assert_true(
      kith_conn_add_handler(f->conn, "message", NULL, NULL, on_message, f) > 0);
  fd = peer_socket(f);
  assert_int_equal(kith__conn_adopt_fd(f->conn, fd), KITH_OK);
  fx_attach(f);
  exchange_headers(f);
  forget(f);
  return f;
}

/* A ready session (negotiation skipped). */
static inline fx_t *fx_ready(void)
{
  fx_t *f = fx_open();

  assert_int_equal(kith__conn_test_ready(f->conn, "alice@localhost/r1", NULL),
                   KITH_OK);
  assert_int_equal(f->started, 1);
  return f;
}

/* ---- What the application sends ---------------------------------------- */

static inline kith_stanza_t *message(const char *body)
{
  kith_stanza_t *m = NULL;
  kith_stanza_t *b = NULL;

  assert_int_equal(kith_stanza_new(NULL, "message", NULL, &m), KITH_OK);
  kith_stanza_set_attr(m, "to", "bob@localhost");
  kith_stanza_add_element(m, "body", NULL, &b);
  assert_int_equal(kith_stanza_add_text(b, body), KITH_OK);
  return m;
}

/* Queue a message with a body of `n` bytes after shrinking kith's socket
 * send buffer: it cannot go out in one write. */
static inline void send_big(fx_t *f, size_t n)
{
  char *body = malloc(n + 1);
  int small = 4096;
  kith_stanza_t *m;

  assert_non_null(body);
  memset(body, 'x', n);
  body[n] = '\0';
  assert_int_equal(setsockopt(kith_conn_fd(f->conn), SOL_SOCKET, SO_SNDBUF,
                              &small, sizeof(small)),
                   0);
  m = message(body);
  assert_int_equal(kith_conn_send(f->conn, m), KITH_OK);
  kith_stanza_free(m);
  free(body);
}

/* Queue a ping that times out after `ms`; on_iq() hears of it. */
static inline void send_ping(fx_t *f, unsigned ms)
{
  kith_stanza_t *iq = NULL;

  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  kith_stanza_set_attr(iq, "type", "get");
  kith_stanza_add_element(iq, "ping", KITH_NS_PING, NULL);
  assert_int_equal(kith_conn_send_iq(f->conn, iq, ms, on_iq, f), KITH_OK);
  kith_stanza_free(iq);
}

/* Run from the application's timer (app_later()). */
static inline void send_hello(fx_t *f)
{
  kith_stanza_t *m = message("hello");

  assert_int_equal(kith_conn_send(f->conn, m), KITH_OK);
  kith_stanza_free(m);
  app_changed(f);
}

static inline void leave(fx_t *f)
{
  kith_conn_disconnect(f->conn);
  app_changed(f);
}

/* The second half of test_reconnect_reusing_the_fd_number(), once kith
 * has output queued and the adapter watches for read and write: the peer
 * hangs up, kith reconnects from its DISCONNECTED handler onto a socket
 * with the same number, and the new session works through the loop. */
static inline void reconnect_onto_the_same_fd(fx_t *f)
{
  f->reused_fd = kith_conn_fd(f->conn);
  f->reconnect_in_handler = 1;
  peer_hangup(f);
  RUN_UNTIL(f, f->disconnected == 1, WAIT_MS);
  assert_int_equal(kith_conn_fd(f->conn), f->reused_fd);
  assert_int_equal(kith_conn_want(f->conn), KITH_IO_READ | KITH_IO_WRITE);
  forget(f);
  exchange_headers(f);
  assert_int_equal(kith__conn_test_ready(f->conn, "alice@localhost/r2", NULL),
                   KITH_OK);
  say(f, "<message from='bob@localhost/x'><body>again</body></message>");
  RUN_UNTIL(f, f->messages == 1, WAIT_MS);
  app_later(f, send_hello, 1);
  RUN_UNTIL(f, sent(f, "<body>hello</body>"), WAIT_MS);
}

/* ---- Cases that read the same for every adapter ------------------------- */

static inline void test_received_stanzas_are_dispatched(void **state)
{
  fx_t *f = fx_ready();

  (void)state;
  say(f, "<message from='bob@localhost/x'><body>hi</body></message>"
         "<iq type='get' id='ping1' from='localhost'>"
         "<ping xmlns='urn:xmpp:ping'/></iq>");
  RUN_UNTIL(f, f->messages == 1 && sent(f, "id='ping1'"), WAIT_MS);
  /* The automatic pong was queued inside a callback and went out. */
  assert_true(sent(f, "type='result'"));
  fx_close(f);
}

/* A clean logout asked for from the application's own timer, then the
 * close timeout, which only the loop timer can fire. */
static inline void test_disconnect_and_close_timeout(void **state)
{
  fx_t *f = fx_ready();

  (void)state;
  app_later(f, leave, 1);
  RUN_UNTIL(f, sent(f, "</stream:stream>"), WAIT_MS);
  say(f, "</stream:stream>");
  RUN_UNTIL(f, f->disconnected == 1, WAIT_MS);
  assert_int_equal(f->status, KITH_OK);
  fx_close(f);

  f = fx_ready();
  app_later(f, leave, 1);
  RUN_UNTIL(f, sent(f, "</stream:stream>"), WAIT_MS);
  /* The peer never answers: the 150 ms close timeout ends it. */
  RUN_UNTIL(f, f->disconnected == 1, WAIT_MS);
  assert_int_equal(f->status, KITH_OK);
  assert_non_null(strstr(kith_conn_error_text(f->conn), "in time"));
  fx_close(f);
}

#endif /* KITH_TEST_LOOP_FIXTURE_H */

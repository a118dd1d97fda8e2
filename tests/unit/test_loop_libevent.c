/*
 * Unit tests: the libevent adapter (include/kith/libevent.h) on a real
 * struct event_base.
 *
 * A scripted server plays the other end of a socketpair: the test writes
 * what the server would say and an event of its own collects what kith
 * writes. Everything runs in the real libevent loop, so the tests see what
 * an application would: output queued from the application's own events
 * going out after kith_libevent_update() (write interest), stanzas
 * dispatched, iq and close timeouts firing from the adapter's timer, the
 * peer's close noticed, a reconnect onto a new socket that reuses the old
 * fd number, and a detach that leaves no event behind (the ASan build
 * checks the memory). No network is involved.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "kith/libevent.h"
#include "session/conn.h"

#define CLIENT_HEADER                                                          \
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                 \
  "xmlns:stream='http://etherx.jabber.org/streams' id='c1' "                   \
  "from='localhost' version='1.0'>"
#define WAIT_MS 5000

typedef struct fx {
  struct event_base *base;
  kith_conn_t *conn;
  kith_libevent_t *ke;
  int peer;              /* the scripted server's end */
  struct event *peer_ev; /* collects what kith writes; NULL after hangup */
  struct event *guard;   /* bounds every wait */
  int expired;
  struct event *app; /* the application's own timer */
  void (*app_cb)(struct fx *f);
  char *got; /* what kith wrote */
  size_t gotlen, gotcap;
  int started, disconnected, messages, iq_done;
  kith_status_t status, iq_status;
  int reconnect_in_handler; /* adopt a new socket from DISCONNECTED */
  int reused_fd;            /* the fd number that socket got */
  int detach_on_message;
} fx_t;

static fx_t *fx_new(void)
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

static void forget(fx_t *f)
{
  f->gotlen = 0;
  f->got[0] = '\0';
}

static int sent(const fx_t *f, const char *needle)
{
  return strstr(f->got, needle) != NULL;
}

static uint64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- The scripted peer ------------------------------------------------ */

static void on_peer_readable(evutil_socket_t fd, short what, void *ud)
{
  fx_t *f = ud;

  (void)what;
  for (;;) {
    ssize_t n =
        recv(fd, f->got + f->gotlen, f->gotcap - 1 - f->gotlen, MSG_DONTWAIT);
    if (n <= 0) {
      if (n == 0 || (errno != EAGAIN && errno != EINTR))
        event_del(f->peer_ev); /* kith closed its end */
      break;
    }
    f->gotlen += (size_t)n;
  }
  f->got[f->gotlen] = '\0';
}

/* A new socketpair; returns kith's end (non-blocking), numbered `want`
 * when that is not -1 (it must be free), and keeps the other end. */
static int peer_socket_as(fx_t *f, int want)
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
  f->peer_ev =
      event_new(f->base, f->peer, EV_READ | EV_PERSIST, on_peer_readable, f);
  assert_non_null(f->peer_ev);
  assert_int_equal(event_add(f->peer_ev, NULL), 0);
  return sv[0];
}

static int peer_socket(fx_t *f)
{
  return peer_socket_as(f, -1);
}

/* Stop watching the peer's socket and close it. */
static void peer_hangup(fx_t *f)
{
  if (f->peer_ev != NULL)
    event_free(f->peer_ev);
  f->peer_ev = NULL;
  if (f->peer >= 0)
    close(f->peer);
  f->peer = -1;
}

static void say(fx_t *f, const char *xml)
{
  assert_int_equal(send(f->peer, xml, strlen(xml), MSG_NOSIGNAL),
                   (ssize_t)strlen(xml));
}

/* ---- Running the loop ------------------------------------------------- */

static void on_guard(evutil_socket_t fd, short what, void *ud)
{
  (void)fd;
  (void)what;
  ((fx_t *)ud)->expired = 1;
}

static void guard_start(fx_t *f, long ms)
{
  struct timeval tv;

  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  f->expired = 0;
  evtimer_add(f->guard, &tv);
}

/* Run the real loop until `cond` holds, for at most `ms`. */
#define RUN_UNTIL(f, cond, ms)                                                 \
  do {                                                                         \
    guard_start((f), (ms));                                                    \
    while (!(cond) && !(f)->expired)                                           \
      event_base_loop((f)->base, EVLOOP_ONCE);                                 \
    evtimer_del((f)->guard);                                                   \
    assert_true(cond);                                                         \
  } while (0)

static void on_app_timer(evutil_socket_t fd, short what, void *ud)
{
  fx_t *f = ud;

  (void)fd;
  (void)what;
  f->app_cb(f);
}

/* Call `cb` from the application's own timer, outside kith's callbacks. */
static void app_later(fx_t *f, void (*cb)(fx_t *f), long ms)
{
  struct timeval tv;

  tv.tv_sec = 0;
  tv.tv_usec = ms * 1000;
  f->app_cb = cb;
  evtimer_add(f->app, &tv);
}

/* ---- kith's side -------------------------------------------------------- */

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
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

static int on_message(kith_conn_t *conn, const kith_stanza_t *st, void *ud)
{
  fx_t *f = ud;

  (void)conn;
  (void)st;
  f->messages++;
  if (f->detach_on_message) {
    kith_libevent_detach(f->ke);
    f->ke = NULL;
  }
  return 1;
}

static void on_iq(kith_conn_t *conn, kith_status_t status,
                  const kith_stanza_t *reply, void *ud)
{
  fx_t *f = ud;

  (void)conn;
  (void)reply;
  f->iq_done++;
  f->iq_status = status;
}

/* A connection on a fresh socketpair, attached to the loop, with the
 * stream headers exchanged. */
static fx_t *fx_open(void)
{
  fx_t *f = fx_new();
  int fd;

  f->base = event_base_new();
  assert_non_null(f->base);
  f->guard = evtimer_new(f->base, on_guard, f);
  f->app = evtimer_new(f->base, on_app_timer, f);
  assert_non_null(f->guard);
  assert_non_null(f->app);
  assert_int_equal(kith_conn_new(NULL, &f->conn), KITH_OK);
  assert_int_equal(kith_conn_set_jid(f->conn, "alice@localhost"), KITH_OK);
  assert_int_equal(kith_conn_set_password(f->conn, "pw"), KITH_OK);
  assert_int_equal(kith_conn_set_timeouts(f->conn, 0, 150), KITH_OK);
  assert_true(kith_conn_on(f->conn, KITH_EVENT_ANY, on_event, f) > 0);
  assert_true(
      kith_conn_add_handler(f->conn, "message", NULL, NULL, on_message, f) > 0);
  fd = peer_socket(f);
  assert_int_equal(kith__conn_adopt_fd(f->conn, fd), KITH_OK);
  assert_int_equal(kith_libevent_attach(f->base, f->conn, &f->ke), KITH_OK);
  say(f, CLIENT_HEADER);
  RUN_UNTIL(f, sent(f, "<stream:stream") && f->conn->phase != KITH__PH_HEADER,
            WAIT_MS);
  forget(f);
  return f;
}

/* A ready session (negotiation skipped). */
static fx_t *fx_ready(void)
{
  fx_t *f = fx_open();

  assert_int_equal(kith__conn_test_ready(f->conn, "alice@localhost/r1", NULL),
                   KITH_OK);
  assert_int_equal(f->started, 1);
  return f;
}

/* Events of the base that are added (pending), the test's own included. */
static int pending(const fx_t *f)
{
  return event_base_get_num_events(f->base, EVENT_BASE_COUNT_ADDED);
}

/* Tear everything down; no event may be left behind. */
static void fx_close(fx_t *f)
{
  kith_libevent_detach(f->ke);
  kith_conn_free(f->conn);
  peer_hangup(f);
  event_free(f->guard);
  event_free(f->app);
  assert_int_equal(pending(f), 0);
  event_base_free(f->base);
  free(f->got);
  free(f);
}

static kith_stanza_t *message(const char *body)
{
  kith_stanza_t *m = NULL;
  kith_stanza_t *b = NULL;

  assert_int_equal(kith_stanza_new(NULL, "message", NULL, &m), KITH_OK);
  kith_stanza_set_attr(m, "to", "bob@localhost");
  kith_stanza_add_element(m, "body", NULL, &b);
  assert_int_equal(kith_stanza_add_text(b, body), KITH_OK);
  return m;
}

/* ---- Tests -------------------------------------------------------------- */

/* The application's own event sends, then tells the adapter. */
static void send_hello(fx_t *f)
{
  kith_stanza_t *m = message("hello");

  assert_int_equal(kith_conn_send(f->conn, m), KITH_OK);
  kith_stanza_free(m);
  assert_int_equal(kith_libevent_update(f->ke), KITH_OK);
}

static void test_send_from_outside_callbacks(void **state)
{
  fx_t *f = fx_ready();

  (void)state;
  app_later(f, send_hello, 5);
  RUN_UNTIL(f, sent(f, "<body>hello</body></message>"), WAIT_MS);
  /* Written out: back to waiting for input only, or the loop would spin. */
  RUN_UNTIL(f, f->ke->io_flags == EV_READ, WAIT_MS);
  fx_close(f);
}

/* A stanza far larger than the socket buffer goes out in pieces, each
 * one written when libevent reports the socket writable again. The peer
 * says nothing meanwhile, so no read event can drive it. */
static void test_large_stanza_needs_write_interest(void **state)
{
  fx_t *f = fx_ready();
  size_t n = 300 * 1024;
  char *body = malloc(n + 1);
  int small = 4096;
  kith_stanza_t *m;

  (void)state;
  assert_non_null(body);
  memset(body, 'x', n);
  body[n] = '\0';
  assert_int_equal(setsockopt(kith_conn_fd(f->conn), SOL_SOCKET, SO_SNDBUF,
                              &small, sizeof(small)),
                   0);
  m = message(body);
  assert_int_equal(kith_conn_send(f->conn, m), KITH_OK);
  kith_stanza_free(m);
  assert_int_equal(kith_libevent_update(f->ke), KITH_OK);
  assert_true(f->ke->io_flags & EV_WRITE);
  RUN_UNTIL(f, sent(f, "</body></message>"), WAIT_MS);
  assert_true(f->gotlen > n);
  assert_int_equal(f->ke->io_flags, EV_READ);
  free(body);
  fx_close(f);
}

static void test_received_stanzas_are_dispatched(void **state)
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

/* Nothing arrives: only the adapter's timer can fire the iq timeout. */
static void test_iq_timeout_fires_through_the_loop_timer(void **state)
{
  fx_t *f = fx_ready();
  kith_stanza_t *iq = NULL;
  uint64_t t0 = now_ms(), ms;

  (void)state;
  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  kith_stanza_set_attr(iq, "type", "get");
  kith_stanza_add_element(iq, "ping", KITH_NS_PING, NULL);
  assert_int_equal(kith_conn_send_iq(f->conn, iq, 80, on_iq, f), KITH_OK);
  kith_stanza_free(iq);
  assert_int_equal(kith_libevent_update(f->ke), KITH_OK);
  RUN_UNTIL(f, f->iq_done == 1, WAIT_MS);
  ms = now_ms() - t0;
  assert_int_equal(f->iq_status, KITH_ETIMEDOUT);
  assert_true(ms >= 79 && ms < 2000);
  assert_true(sent(f, "urn:xmpp:ping")); /* the request did go out */
  assert_true(kith_conn_is_ready(f->conn));
  fx_close(f);
}

/* The peer goes away: kith notices, and an idle connection leaves nothing
 * pending, so event_base_dispatch() returns by itself as kith_run()
 * would. */
static void test_peer_close_is_noticed(void **state)
{
  fx_t *f = fx_ready();

  (void)state;
  peer_hangup(f);
  RUN_UNTIL(f, f->disconnected == 1, WAIT_MS);
  assert_int_equal(f->status, KITH_ECLOSED);
  assert_int_equal(kith_conn_fd(f->conn), -1);
  assert_null(f->ke->io);
  assert_int_equal(pending(f), 0);
  assert_int_equal(event_base_dispatch(f->base), 1); /* no events */
  fx_close(f);
}

static void leave(fx_t *f)
{
  kith_conn_disconnect(f->conn);
  assert_int_equal(kith_libevent_update(f->ke), KITH_OK);
}

/* A clean logout asked for from the application's own event, then the
 * close timeout, which only the loop timer can fire. */
static void test_disconnect_and_close_timeout(void **state)
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

/* kith closes its socket and, within the same kith_conn_process() call,
 * gets a new one with the same number and the same interest (read and
 * write: output is queued on both). Had the adapter kept its event added
 * across the call, libevent would believe the fd still registered while
 * epoll, which dropped the closed socket, knows nothing of the new one:
 * the session would hang. */
static void test_reconnect_reusing_the_fd_number(void **state)
{
  fx_t *f = fx_ready();
  char *body = malloc(200 * 1024 + 1);
  int small = 4096;
  kith_stanza_t *m;

  (void)state;
  assert_non_null(body);
  memset(body, 'x', 200 * 1024);
  body[200 * 1024] = '\0';
  f->reused_fd = kith_conn_fd(f->conn);
  assert_int_equal(
      setsockopt(f->reused_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)),
      0);
  /* The peer stops reading, so the stanza stays queued. */
  assert_int_equal(event_del(f->peer_ev), 0);
  m = message(body);
  assert_int_equal(kith_conn_send(f->conn, m), KITH_OK);
  kith_stanza_free(m);
  free(body);
  assert_int_equal(kith_libevent_update(f->ke), KITH_OK);
  event_base_loop(f->base, EVLOOP_NONBLOCK);
  assert_int_equal(f->ke->io_flags, EV_READ | EV_WRITE);

  f->reconnect_in_handler = 1;
  peer_hangup(f);
  RUN_UNTIL(f, f->disconnected == 1, WAIT_MS);
  assert_int_equal(kith_conn_fd(f->conn), f->reused_fd);
  assert_int_equal(kith_conn_want(f->conn), KITH_IO_READ | KITH_IO_WRITE);
  forget(f);
  say(f, CLIENT_HEADER);
  RUN_UNTIL(f, sent(f, "<stream:stream") && f->conn->phase != KITH__PH_HEADER,
            WAIT_MS);
  assert_int_equal(kith__conn_test_ready(f->conn, "alice@localhost/r2", NULL),
                   KITH_OK);
  say(f, "<message from='bob@localhost/x'><body>again</body></message>");
  RUN_UNTIL(f, f->messages == 1, WAIT_MS);
  app_later(f, send_hello, 1);
  RUN_UNTIL(f, sent(f, "<body>hello</body>"), WAIT_MS);
  fx_close(f);
}

/* An idle attached connection that starts again outside the loop: nothing
 * is pending until kith_libevent_update() picks up the new fd. */
static void test_idle_connection_then_update(void **state)
{
  fx_t *f = fx_ready();
  int fd;

  (void)state;
  peer_hangup(f);
  RUN_UNTIL(f, f->disconnected == 1, WAIT_MS);
  assert_int_equal(pending(f), 0);
  fd = peer_socket(f);
  assert_int_equal(kith__conn_adopt_fd(f->conn, fd), KITH_OK);
  assert_int_equal(kith_libevent_update(f->ke), KITH_OK);
  assert_non_null(f->ke->io);
  RUN_UNTIL(f, sent(f, "<stream:stream"), WAIT_MS);
  fx_close(f);
}

/* A callback detaches the adapter in the middle of its own processing. */
static void test_detach_inside_a_callback(void **state)
{
  fx_t *f = fx_ready();

  (void)state;
  f->detach_on_message = 1;
  say(f, "<message from='bob@localhost/x'><body>bye</body></message>");
  RUN_UNTIL(f, f->messages == 1, WAIT_MS);
  assert_null(f->ke);
  /* Detached: only the test's own peer event is left. */
  assert_int_equal(pending(f), 1);
  fx_close(f);
}

static void test_attach_rejects_bad_arguments(void **state)
{
  struct event_base *base = event_base_new();
  kith_conn_t *conn = NULL;
  kith_libevent_t *ke = (kith_libevent_t *)&conn;

  (void)state;
  assert_non_null(base);
  assert_int_equal(kith_conn_new(NULL, &conn), KITH_OK);
  assert_int_equal(kith_libevent_attach(NULL, conn, &ke), KITH_EINVAL);
  assert_null(ke);
  assert_int_equal(kith_libevent_attach(base, NULL, &ke), KITH_EINVAL);
  assert_int_equal(kith_libevent_attach(base, conn, NULL), KITH_EINVAL);
  /* An idle connection attaches and leaves nothing pending. */
  assert_int_equal(kith_libevent_attach(base, conn, &ke), KITH_OK);
  assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
  assert_int_equal(kith_libevent_update(ke), KITH_OK);
  assert_int_equal(kith_libevent_update(NULL), KITH_OK);
  assert_ptr_equal(kith_libevent_conn(ke), conn);
  kith_libevent_detach(ke);
  kith_libevent_detach(NULL);
  kith_conn_free(conn);
  event_base_free(base);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_send_from_outside_callbacks),
      cmocka_unit_test(test_large_stanza_needs_write_interest),
      cmocka_unit_test(test_received_stanzas_are_dispatched),
      cmocka_unit_test(test_iq_timeout_fires_through_the_loop_timer),
      cmocka_unit_test(test_peer_close_is_noticed),
      cmocka_unit_test(test_disconnect_and_close_timeout),
      cmocka_unit_test(test_reconnect_reusing_the_fd_number),
      cmocka_unit_test(test_idle_connection_then_update),
      cmocka_unit_test(test_detach_inside_a_callback),
      cmocka_unit_test(test_attach_rejects_bad_arguments),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

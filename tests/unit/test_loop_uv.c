/*
 * Unit tests: the libuv adapter (include/kith/uv.h) on a real uv_loop_t.
 *
 * A scripted server plays the other end of a socketpair: the test writes
 * what the server would say and a uv_poll_t of its own collects what kith
 * writes. Everything runs in the real libuv loop, so the tests see what an
 * application would: output queued from outside kith's callbacks going out
 * (write interest), stanzas dispatched, iq and close timeouts firing from
 * the adapter's timer, the peer's close noticed, a reconnect onto a new
 * socket that reuses the old fd number, and a detach that leaves the loop
 * empty (uv_loop_close() returns 0; the ASan build checks the memory).
 * No network is involved.
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
#include <unistd.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "kith/uv.h"
#include "session/conn.h"

#define CLIENT_HEADER                                                          \
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                 \
  "xmlns:stream='http://etherx.jabber.org/streams' id='c1' "                   \
  "from='localhost' version='1.0'>"
#define WAIT_MS 5000

typedef struct fx {
  uv_loop_t loop;
  kith_conn_t *conn;
  kith_uv_t *uv;
  int peer;             /* the scripted server's end */
  uv_poll_t *peer_poll; /* collects what kith writes; NULL after hangup */
  uv_timer_t guard;     /* bounds every wait */
  int expired;
  uv_timer_t app; /* the application's own timer */
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

/* ---- The scripted peer ------------------------------------------------ */

static void on_peer_readable(uv_poll_t *h, int status, int events)
{
  fx_t *f = h->data;

  (void)status;
  (void)events;
  for (;;) {
    ssize_t n = recv(f->peer, f->got + f->gotlen, f->gotcap - 1 - f->gotlen,
                     MSG_DONTWAIT);
    if (n <= 0) {
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        uv_poll_stop(h); /* kith closed its end */
      }
      break;
    }
    f->gotlen += (size_t)n;
  }
  f->got[f->gotlen] = '\0';
}

static void free_handle(uv_handle_t *h)
{
  free(h);
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
  f->peer_poll = malloc(sizeof(*f->peer_poll));
  assert_non_null(f->peer_poll);
  assert_int_equal(uv_poll_init(&f->loop, f->peer_poll, f->peer), 0);
  f->peer_poll->data = f;
  assert_int_equal(uv_poll_start(f->peer_poll, UV_READABLE, on_peer_readable),
                   0);
  return sv[0];
}

static int peer_socket(fx_t *f)
{
  return peer_socket_as(f, -1);
}

/* Stop watching the peer's socket and close it. */
static void peer_hangup(fx_t *f)
{
  if (f->peer_poll != NULL)
    uv_close((uv_handle_t *)f->peer_poll, free_handle);
  f->peer_poll = NULL;
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

static void on_guard(uv_timer_t *t)
{
  ((fx_t *)t->data)->expired = 1;
}

/* Run the real loop until `cond` holds, for at most `ms`. */
#define RUN_UNTIL(f, cond, ms)                                                 \
  do {                                                                         \
    (f)->expired = 0;                                                          \
    uv_timer_start(&(f)->guard, on_guard, (ms), 0);                            \
    while (!(cond) && !(f)->expired)                                           \
      uv_run(&(f)->loop, UV_RUN_ONCE);                                         \
    uv_timer_stop(&(f)->guard);                                                \
    assert_true(cond);                                                         \
  } while (0)

static void on_app_timer(uv_timer_t *t)
{
  fx_t *f = t->data;

  f->app_cb(f);
}

/* Call `cb` from the application's own timer, outside kith's callbacks. */
static void app_later(fx_t *f, void (*cb)(fx_t *f), uint64_t ms)
{
  f->app_cb = cb;
  uv_timer_start(&f->app, on_app_timer, ms, 0);
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
    kith_uv_detach(f->uv);
    f->uv = NULL;
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

  assert_int_equal(uv_loop_init(&f->loop), 0);
  uv_timer_init(&f->loop, &f->guard);
  uv_timer_init(&f->loop, &f->app);
  f->guard.data = f->app.data = f;
  assert_int_equal(kith_conn_new(NULL, &f->conn), KITH_OK);
  assert_int_equal(kith_conn_set_jid(f->conn, "alice@localhost"), KITH_OK);
  assert_int_equal(kith_conn_set_password(f->conn, "pw"), KITH_OK);
  assert_int_equal(kith_conn_set_timeouts(f->conn, 0, 150), KITH_OK);
  assert_true(kith_conn_on(f->conn, KITH_EVENT_ANY, on_event, f) > 0);
  assert_true(
      kith_conn_add_handler(f->conn, "message", NULL, NULL, on_message, f) > 0);
  fd = peer_socket(f);
  assert_int_equal(kith__conn_adopt_fd(f->conn, fd), KITH_OK);
  assert_int_equal(kith_uv_attach(&f->loop, f->conn, &f->uv), KITH_OK);
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

/* Tear everything down; the loop must be left with no handle at all. */
static void fx_close(fx_t *f)
{
  kith_uv_detach(f->uv);
  kith_conn_free(f->conn);
  peer_hangup(f);
  uv_close((uv_handle_t *)&f->guard, NULL);
  uv_close((uv_handle_t *)&f->app, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
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

static void send_hello(fx_t *f)
{
  kith_stanza_t *m = message("hello");

  assert_int_equal(kith_conn_send(f->conn, m), KITH_OK);
  kith_stanza_free(m);
}

/* kith_conn_send() from the application's own timer: only the prepare
 * hook can notice that the connection now wants to write. */
static void test_send_from_outside_callbacks(void **state)
{
  fx_t *f = fx_ready();

  (void)state;
  app_later(f, send_hello, 5);
  RUN_UNTIL(f, sent(f, "<body>hello</body></message>"), WAIT_MS);
  /* Written out: back to waiting for input only, or the loop would spin. */
  RUN_UNTIL(f, f->uv->poll_events == UV_READABLE, WAIT_MS);
  fx_close(f);
}

/* A stanza far larger than the socket buffer goes out in pieces, each
 * one written when libuv reports the socket writable again. The peer
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
  assert_int_equal(kith_uv_update(f->uv), KITH_OK);
  assert_true(f->uv->poll_events & UV_WRITABLE);
  RUN_UNTIL(f, sent(f, "</body></message>"), WAIT_MS);
  assert_true(f->gotlen > n);
  assert_int_equal(f->uv->poll_events, UV_READABLE);
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
  uint64_t t0 = uv_hrtime(), ms;

  (void)state;
  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  kith_stanza_set_attr(iq, "type", "get");
  kith_stanza_add_element(iq, "ping", KITH_NS_PING, NULL);
  assert_int_equal(kith_conn_send_iq(f->conn, iq, 80, on_iq, f), KITH_OK);
  kith_stanza_free(iq);
  RUN_UNTIL(f, f->iq_done == 1, WAIT_MS);
  ms = (uv_hrtime() - t0) / 1000000u;
  assert_int_equal(f->iq_status, KITH_ETIMEDOUT);
  assert_true(ms >= 79 && ms < 2000);
  assert_true(sent(f, "urn:xmpp:ping")); /* the request did go out */
  assert_true(kith_conn_is_ready(f->conn));
  fx_close(f);
}

/* The peer goes away: kith notices, and an idle connection keeps nothing
 * alive in the loop, so uv_run() returns by itself as kith_run() would. */
static void test_peer_close_is_noticed(void **state)
{
  fx_t *f = fx_ready();

  (void)state;
  peer_hangup(f);
  RUN_UNTIL(f, f->disconnected == 1, WAIT_MS);
  assert_int_equal(f->status, KITH_ECLOSED);
  assert_int_equal(kith_conn_fd(f->conn), -1);
  assert_null(f->uv->poll);
  assert_false(uv_is_active((uv_handle_t *)&f->uv->timer));
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  fx_close(f);
}

static void leave(fx_t *f)
{
  kith_conn_disconnect(f->conn);
}

/* A clean logout asked for from outside the callbacks, then the close
 * timeout, which only the loop timer can fire. */
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
 * write: output is queued on both). Had the adapter kept its watcher
 * registered across the call, epoll would know nothing of the new socket
 * (closing the old one dropped the registration) and the session would
 * hang. */
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
  assert_int_equal(uv_poll_stop(f->peer_poll), 0);
  m = message(body);
  assert_int_equal(kith_conn_send(f->conn, m), KITH_OK);
  kith_stanza_free(m);
  free(body);
  RUN_UNTIL(f, f->uv->poll_events == (UV_READABLE | UV_WRITABLE), WAIT_MS);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(f->uv->poll_events, UV_READABLE | UV_WRITABLE);

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

/* An idle attached connection that starts again outside the loop: the
 * loop has nothing to run until kith_uv_update() picks up the new fd. */
static void test_idle_connection_then_update(void **state)
{
  fx_t *f = fx_ready();
  int fd;

  (void)state;
  peer_hangup(f);
  RUN_UNTIL(f, f->disconnected == 1, WAIT_MS);
  assert_int_equal(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
  fd = peer_socket(f);
  assert_int_equal(kith__conn_adopt_fd(f->conn, fd), KITH_OK);
  assert_int_equal(kith_uv_update(f->uv), KITH_OK);
  assert_non_null(f->uv->poll);
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
  assert_null(f->uv);
  /* Detached: the adapter's handles are gone; the test's own remain. */
  peer_hangup(f);
  uv_close((uv_handle_t *)&f->guard, NULL);
  uv_close((uv_handle_t *)&f->app, NULL);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  kith_conn_free(f->conn);
  free(f->got);
  free(f);
}

static void test_attach_rejects_bad_arguments(void **state)
{
  uv_loop_t loop;
  kith_conn_t *conn = NULL;
  kith_uv_t *uv = (kith_uv_t *)&loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(kith_conn_new(NULL, &conn), KITH_OK);
  assert_int_equal(kith_uv_attach(NULL, conn, &uv), KITH_EINVAL);
  assert_null(uv);
  assert_int_equal(kith_uv_attach(&loop, NULL, &uv), KITH_EINVAL);
  assert_int_equal(kith_uv_attach(&loop, conn, NULL), KITH_EINVAL);
  /* An idle connection attaches and keeps nothing active. */
  assert_int_equal(kith_uv_attach(&loop, conn, &uv), KITH_OK);
  assert_int_equal(uv_loop_alive(&loop), 0);
  assert_int_equal(kith_uv_update(uv), KITH_OK);
  assert_int_equal(kith_uv_update(NULL), KITH_OK);
  assert_ptr_equal(kith_uv_conn(uv), conn);
  kith_uv_detach(uv);
  kith_uv_detach(NULL);
  kith_conn_free(conn);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
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

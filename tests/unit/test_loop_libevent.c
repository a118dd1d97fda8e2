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
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "kith/libevent.h"
#include "session/conn.h"

#define FX_LOOP_MEMBERS                                                        \
  struct event_base *base;                                                     \
  kith_libevent_t *ke;                                                         \
  struct event *peer_ev; /* collects what kith writes; NULL after hangup */    \
  struct event *guard;   /* bounds every wait */                               \
  struct event *app;     /* the application's own timer */

#include "loop_fixture.h"

static uint64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- libevent's side of the fixture ------------------------------------- */

static void on_peer_readable(evutil_socket_t fd, short what, void *ud)
{
  fx_t *f = ud;

  (void)fd;
  (void)what;
  if (!peer_collect(f))
    event_del(f->peer_ev); /* kith closed its end */
}

static void peer_watch(fx_t *f)
{
  f->peer_ev =
      event_new(f->base, f->peer, EV_READ | EV_PERSIST, on_peer_readable, f);
  assert_non_null(f->peer_ev);
  assert_int_equal(event_add(f->peer_ev, NULL), 0);
}

static void peer_unwatch(fx_t *f)
{
  if (f->peer_ev != NULL)
    event_free(f->peer_ev);
  f->peer_ev = NULL;
}

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
  evtimer_add(f->guard, &tv);
}

static void guard_stop(fx_t *f)
{
  evtimer_del(f->guard);
}

static void loop_run_once(fx_t *f)
{
  event_base_loop(f->base, EVLOOP_ONCE);
}

static void on_app_timer(evutil_socket_t fd, short what, void *ud)
{
  fx_t *f = ud;

  (void)fd;
  (void)what;
  f->app_cb(f);
}

static void app_later(fx_t *f, void (*cb)(fx_t *f), long ms)
{
  struct timeval tv;

  tv.tv_sec = 0;
  tv.tv_usec = ms * 1000;
  f->app_cb = cb;
  evtimer_add(f->app, &tv);
}

/* The application's own event changed the connection: libevent has no
 * hook before it waits, so the adapter must be told. */
static void app_changed(fx_t *f)
{
  assert_int_equal(kith_libevent_update(f->ke), KITH_OK);
}

static void fx_loop_open(fx_t *f)
{
  f->base = event_base_new();
  assert_non_null(f->base);
  f->guard = evtimer_new(f->base, on_guard, f);
  f->app = evtimer_new(f->base, on_app_timer, f);
  assert_non_null(f->guard);
  assert_non_null(f->app);
}

static void fx_attach(fx_t *f)
{
  assert_int_equal(kith_libevent_attach(f->base, f->conn, &f->ke), KITH_OK);
}

static void fx_detach(fx_t *f)
{
  kith_libevent_detach(f->ke);
  f->ke = NULL;
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

/* ---- Tests -------------------------------------------------------------- */

/* The application's own event sends, then tells the adapter
 * (send_hello(), app_changed()). */
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

  (void)state;
  send_big(f, n);
  assert_int_equal(kith_libevent_update(f->ke), KITH_OK);
  assert_true(f->ke->io_flags & EV_WRITE);
  RUN_UNTIL(f, sent(f, "</body></message>"), WAIT_MS);
  assert_true(f->gotlen > n);
  assert_int_equal(f->ke->io_flags, EV_READ);
  fx_close(f);
}

/* Nothing arrives: only the adapter's timer can fire the iq timeout. */
static void test_iq_timeout_fires_through_the_loop_timer(void **state)
{
  fx_t *f = fx_ready();
  uint64_t t0 = now_ms(), ms;

  (void)state;
  send_ping(f, 80);
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

/* kith closes its socket and, within the same kith_conn_process() call,
 * gets a new one with the same number and the same interest (read and
 * write: output is queued on both). Had the adapter kept its event added
 * across the call, libevent would believe the fd still registered while
 * epoll, which dropped the closed socket, knows nothing of the new one:
 * the session would hang. */
static void test_reconnect_reusing_the_fd_number(void **state)
{
  fx_t *f = fx_ready();

  (void)state;
  /* The peer stops reading, so the stanza stays queued. */
  assert_int_equal(event_del(f->peer_ev), 0);
  send_big(f, 200 * 1024);
  assert_int_equal(kith_libevent_update(f->ke), KITH_OK);
  event_base_loop(f->base, EVLOOP_NONBLOCK);
  assert_int_equal(f->ke->io_flags, EV_READ | EV_WRITE);
  reconnect_onto_the_same_fd(f);
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

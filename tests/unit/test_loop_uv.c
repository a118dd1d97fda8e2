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
#include <stdlib.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "kith/uv.h"
#include "session/conn.h"

#define FX_LOOP_MEMBERS                                                        \
  uv_loop_t loop;                                                              \
  kith_uv_t *uv;                                                               \
  uv_poll_t *peer_poll; /* collects what kith writes; NULL after hangup */     \
  uv_timer_t guard;     /* bounds every wait */                                \
  uv_timer_t app;       /* the application's own timer */

#include "loop_fixture.h"

/* ---- libuv's side of the fixture ---------------------------------------- */

static void on_peer_readable(uv_poll_t *h, int status, int events)
{
  (void)status;
  (void)events;
  if (!peer_collect(h->data))
    uv_poll_stop(h); /* kith closed its end */
}

static void free_handle(uv_handle_t *h)
{
  free(h);
}

static void peer_watch(fx_t *f)
{
  f->peer_poll = malloc(sizeof(*f->peer_poll));
  assert_non_null(f->peer_poll);
  assert_int_equal(uv_poll_init(&f->loop, f->peer_poll, f->peer), 0);
  f->peer_poll->data = f;
  assert_int_equal(uv_poll_start(f->peer_poll, UV_READABLE, on_peer_readable),
                   0);
}

static void peer_unwatch(fx_t *f)
{
  if (f->peer_poll != NULL)
    uv_close((uv_handle_t *)f->peer_poll, free_handle);
  f->peer_poll = NULL;
}

static void on_guard(uv_timer_t *t)
{
  ((fx_t *)t->data)->expired = 1;
}

static void guard_start(fx_t *f, long ms)
{
  uv_timer_start(&f->guard, on_guard, (uint64_t)ms, 0);
}

static void guard_stop(fx_t *f)
{
  uv_timer_stop(&f->guard);
}

static void loop_run_once(fx_t *f)
{
  uv_run(&f->loop, UV_RUN_ONCE);
}

static void on_app_timer(uv_timer_t *t)
{
  fx_t *f = t->data;

  f->app_cb(f);
}

static void app_later(fx_t *f, void (*cb)(fx_t *f), long ms)
{
  f->app_cb = cb;
  uv_timer_start(&f->app, on_app_timer, (uint64_t)ms, 0);
}

/* Nothing to tell: the adapter's prepare hook notices on the next loop
 * iteration that the connection wants to write (the point of
 * test_send_from_outside_callbacks()). */
static void app_changed(fx_t *f)
{
  (void)f;
}

static void fx_loop_open(fx_t *f)
{
  assert_int_equal(uv_loop_init(&f->loop), 0);
  uv_timer_init(&f->loop, &f->guard);
  uv_timer_init(&f->loop, &f->app);
  f->guard.data = f->app.data = f;
}

static void fx_attach(fx_t *f)
{
  assert_int_equal(kith_uv_attach(&f->loop, f->conn, &f->uv), KITH_OK);
}

static void fx_detach(fx_t *f)
{
  kith_uv_detach(f->uv);
  f->uv = NULL;
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

/* ---- Tests -------------------------------------------------------------- */

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

  (void)state;
  send_big(f, n);
  assert_int_equal(kith_uv_update(f->uv), KITH_OK);
  assert_true(f->uv->poll_events & UV_WRITABLE);
  RUN_UNTIL(f, sent(f, "</body></message>"), WAIT_MS);
  assert_true(f->gotlen > n);
  assert_int_equal(f->uv->poll_events, UV_READABLE);
  fx_close(f);
}

/* Nothing arrives: only the adapter's timer can fire the iq timeout. */
static void test_iq_timeout_fires_through_the_loop_timer(void **state)
{
  fx_t *f = fx_ready();
  uint64_t t0 = uv_hrtime(), ms;

  (void)state;
  send_ping(f, 80);
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

/* kith closes its socket and, within the same kith_conn_process() call,
 * gets a new one with the same number and the same interest (read and
 * write: output is queued on both). Had the adapter kept its watcher
 * registered across the call, epoll would know nothing of the new socket
 * (closing the old one dropped the registration) and the session would
 * hang. */
static void test_reconnect_reusing_the_fd_number(void **state)
{
  fx_t *f = fx_ready();

  (void)state;
  /* The peer stops reading, so the stanza stays queued. */
  assert_int_equal(uv_poll_stop(f->peer_poll), 0);
  send_big(f, 200 * 1024);
  RUN_UNTIL(f, f->uv->poll_events == (UV_READABLE | UV_WRITABLE), WAIT_MS);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(f->uv->poll_events, UV_READABLE | UV_WRITABLE);
  reconnect_onto_the_same_fd(f);
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

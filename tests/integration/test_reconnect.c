/*
 * Integration: reconnect with exponential backoff. A listener on loopback
 * accepts each connection and closes it at once, so every attempt fails
 * and the delays can be read off the reconnect_scheduled events.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "kith/kith.h"

typedef struct rec {
  long delays[16];
  int n, disconnects, connected;
} rec_t;

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  rec_t *r = ud;

  (void)conn;
  if (ev->type == KITH_EVENT_RECONNECT_SCHEDULED && r->n < 16)
    r->delays[r->n++] = ev->delay_ms;
  if (ev->type == KITH_EVENT_DISCONNECTED)
    r->disconnects++;
  if (ev->type == KITH_EVENT_CONNECTED)
    r->connected++;
}

static int listen_loopback(unsigned *port)
{
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(fd, 8), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  *port = ntohs(sa.sin_port);
  return fd;
}

static void test_backoff_doubles_to_max(void **state)
{
  kith_conn_t *conn;
  rec_t r;
  unsigned port;
  int lfd = listen_loopback(&port), i;

  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(kith_conn_new(NULL, &conn), KITH_OK);
  kith_conn_on(conn, KITH_EVENT_ANY, on_event, &r);
  kith_conn_set_jid(conn, "alice@localhost");
  kith_conn_set_password(conn, "x");
  kith_conn_set_server(conn, "127.0.0.1", port);
  assert_int_equal(kith_conn_set_reconnect(conn, 1, 20, 80), KITH_OK);
  assert_int_equal(kith_conn_connect(conn), KITH_OK);
  for (i = 0; i < 2000 && r.n < 5; i++) {
    int c = accept(lfd, NULL, NULL);
    if (c >= 0)
      close(c);
    kith_run_once(&conn, 1, 5);
  }
  assert_int_equal(r.n, 5);
  assert_int_equal(r.delays[0], 20);
  assert_int_equal(r.delays[1], 40);
  assert_int_equal(r.delays[2], 80);
  assert_int_equal(r.delays[3], 80);
  assert_int_equal(r.delays[4], 80);
  assert_true(r.connected >= 5);
  assert_int_equal(r.disconnects, 5);
  /* Disconnecting while a reconnect waits stops it for good. */
  assert_true(kith_conn_is_active(conn));
  kith_conn_disconnect(conn);
  assert_false(kith_conn_is_active(conn));
  assert_int_equal(kith_conn_timeout(conn), -1);
  kith_conn_free(conn);
  close(lfd);
}

static void test_no_reconnect_by_default(void **state)
{
  kith_conn_t *conn;
  rec_t r;
  unsigned port;
  int lfd = listen_loopback(&port), i;

  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(kith_conn_new(NULL, &conn), KITH_OK);
  kith_conn_on(conn, KITH_EVENT_ANY, on_event, &r);
  kith_conn_set_jid(conn, "alice@localhost");
  kith_conn_set_password(conn, "x");
  kith_conn_set_server(conn, "127.0.0.1", port);
  assert_int_equal(kith_conn_connect(conn), KITH_OK);
  for (i = 0; i < 400 && kith_conn_is_active(conn); i++) {
    int c = accept(lfd, NULL, NULL);
    if (c >= 0)
      close(c);
    kith_run_once(&conn, 1, 5);
  }
  assert_false(kith_conn_is_active(conn));
  assert_int_equal(r.disconnects, 1);
  assert_int_equal(r.n, 0);
  assert_int_equal(kith_run(conn), KITH_ECLOSED);
  kith_conn_free(conn);
  close(lfd);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backoff_doubles_to_max),
      cmocka_unit_test(test_no_reconnect_by_default),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

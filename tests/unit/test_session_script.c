/*
 * Unit tests: the session layer against a scripted peer.
 *
 * The test plays the server on the other end of a socketpair: it writes
 * what the server would say, runs kith_conn_process(), and reads what the
 * connection wrote. This covers the error paths a real server will not
 * produce on demand. No network is involved.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "session/conn.h"

#define COMPONENT_HEADER                                                       \
  "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "       \
  "xmlns:stream='http://etherx.jabber.org/streams' id='s3cr1d' "               \
  "from='bot.localhost'>"

typedef struct peer {
  kith_conn_t *conn;
  int fd; /* the scripted server's end */
  char got[65536];
  size_t gotlen;
  int started, disconnected, reconnects;
  kith_status_t status;
  char text[512];
} peer_t;

#include "script_peer.h"

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  peer_t *p = ud;

  (void)conn;
  if (ev->type == KITH_EVENT_SESSION_START)
    p->started++;
  if (ev->type == KITH_EVENT_RECONNECT_SCHEDULED)
    p->reconnects++;
  if (ev->type == KITH_EVENT_DISCONNECTED) {
    p->disconnected++;
    p->status = ev->status;
    snprintf(p->text, sizeof(p->text), "%s", ev->text ? ev->text : "");
  }
}

static void peer_open(peer_t *p, const char *component)
{
  memset(p, 0, sizeof(*p));
  assert_int_equal(kith_conn_new(NULL, &p->conn), KITH_OK);
  assert_true(kith_conn_on(p->conn, KITH_EVENT_ANY, on_event, p) > 0);
  if (component) {
    assert_int_equal(kith_conn_set_server(p->conn, "127.0.0.1", 5347), KITH_OK);
    assert_int_equal(kith_conn_set_component(p->conn, component, "secret"),
                     KITH_OK);
  } else {
    assert_int_equal(kith_conn_set_jid(p->conn, "alice@localhost"), KITH_OK);
    assert_int_equal(kith_conn_set_password(p->conn, "pw"), KITH_OK);
  }
  peer_adopt(p);
}

static void peer_close(peer_t *p)
{
  kith_conn_free(p->conn);
  close(p->fd);
}

/* A component session that has completed its handshake. */
static void component_ready(peer_t *p)
{
  peer_open(p, "bot.localhost");
  assert_non_null(strstr(p->got, "xmlns='jabber:component:accept'"));
  assert_non_null(strstr(p->got, "to='bot.localhost'"));
  forget_sent(p);
  say(p, COMPONENT_HEADER);
  assert_non_null(strstr(p->got, "<handshake>"));
  forget_sent(p);
  say(p, "<handshake/>");
  assert_int_equal(p->started, 1);
  assert_true(kith_conn_is_ready(p->conn));
}

static void test_component_handshake_digest(void **state)
{
  peer_t p;
  const char *h;

  (void)state;
  peer_open(&p, "bot.localhost");
  forget_sent(&p);
  say(&p, COMPONENT_HEADER);
  h = strstr(p.got, "<handshake>");
  assert_non_null(h);
  /* XEP-0114: hex(SHA-1(id + secret)); printf s3cr1dsecret | sha1sum */
  assert_string_equal(h, "<handshake>0e8ab888e69525b3925a6ef2fd0e5d40c3c7ecba"
                         "</handshake>");
  peer_close(&p);
}

static void iq_cb(kith_conn_t *conn, kith_status_t status,
                  const kith_stanza_t *reply, void *ud)
{
  int *r = ud;

  (void)conn;
  (void)reply;
  r[0]++;
  r[1] = (int)status;
}

static kith_stanza_t *make_iq(const char *to, const char *id)
{
  kith_stanza_t *iq = NULL;

  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  kith_stanza_set_attr(iq, "type", "get");
  kith_stanza_set_attr(iq, "from", "bot.localhost");
  kith_stanza_set_attr(iq, "to", to);
  if (id)
    kith_stanza_set_attr(iq, "id", id);
  kith_stanza_add_element(iq, "ping", KITH_NS_PING, NULL);
  return iq;
}

static void test_iq_reply_must_come_from_the_target(void **state)
{
  peer_t p;
  int r[2] = {0, -1};
  kith_stanza_t *iq;

  (void)state;
  component_ready(&p);
  iq = make_iq("romeo@example.net", "q1");
  assert_int_equal(kith_conn_send_iq(p.conn, iq, 0, iq_cb, r), KITH_OK);
  kith_stanza_free(iq);
  pump(&p);
  assert_non_null(strstr(p.got, "id='q1'"));
  /* A forged reply from someone else is ignored... */
  say(&p, "<iq type='result' id='q1' from='mallory@example.net' "
          "to='bot.localhost'/>");
  assert_int_equal(r[0], 0);
  /* ...and so is a reply with no 'from' to a request that had a 'to'. */
  say(&p, "<iq type='result' id='q1' to='bot.localhost'/>");
  assert_int_equal(r[0], 0);
  /* The real one counts, normalized: case in the domain does not matter. */
  say(&p, "<iq type='result' id='q1' from='romeo@EXAMPLE.net' "
          "to='bot.localhost'/>");
  assert_int_equal(r[0], 1);
  assert_int_equal(r[1], KITH_OK);
  /* A duplicate reply finds nothing to answer. */
  say(&p, "<iq type='result' id='q1' from='romeo@example.net'/>");
  assert_int_equal(r[0], 1);
  peer_close(&p);
}

static void test_iq_error_and_timeout(void **state)
{
  peer_t p;
  int r[2] = {0, -1}, t[2] = {0, -1};
  kith_stanza_t *iq;

  (void)state;
  component_ready(&p);
  iq = make_iq("juliet@example.com", "e1");
  assert_int_equal(kith_conn_send_iq(p.conn, iq, 0, iq_cb, r), KITH_OK);
  kith_stanza_free(iq);
  say(&p, "<iq type='error' id='e1' from='juliet@example.com'><error "
          "type='cancel'><item-not-found "
          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
  assert_int_equal(r[0], 1);
  assert_int_equal(r[1], KITH_ESTANZA);

  iq = make_iq("juliet@example.com", "t1");
  assert_int_equal(kith_conn_send_iq(p.conn, iq, 30, iq_cb, t), KITH_OK);
  kith_stanza_free(iq);
  assert_true(kith_conn_timeout(p.conn) <= 30);
  usleep(60 * 1000);
  kith_conn_process(p.conn, 0);
  assert_int_equal(t[0], 1);
  assert_int_equal(t[1], KITH_ETIMEDOUT);
  kith_conn_process(p.conn, 0);
  assert_int_equal(t[0], 1);
  assert_true(kith_conn_is_ready(p.conn)); /* a timeout ends nothing else */
  peer_close(&p);
}

static void test_iq_cancelled_on_disconnect(void **state)
{
  peer_t p;
  int r[2] = {0, -1};
  kith_stanza_t *iq;

  (void)state;
  component_ready(&p);
  iq = make_iq("juliet@example.com", NULL);
  assert_int_equal(kith_conn_send_iq(p.conn, iq, 0, iq_cb, r), KITH_OK);
  kith_stanza_free(iq);
  say(&p, "</stream:stream>");
  assert_int_equal(r[0], 1);
  assert_int_equal(r[1], KITH_ECANCELED);
  assert_int_equal(p.disconnected, 1);
  assert_int_equal(p.status, KITH_ECLOSED);
  /* The peer's close was answered with ours (RFC 6120 4.4). */
  assert_non_null(strstr(p.got, "</stream:stream>"));
  peer_close(&p);
}

static void test_send_iq_rejects_bad_input(void **state)
{
  peer_t p;
  int r[2] = {0, -1};
  kith_stanza_t *msg = NULL;

  (void)state;
  component_ready(&p);
  assert_int_equal(kith_stanza_new(NULL, "message", NULL, &msg), KITH_OK);
  assert_int_equal(kith_conn_send_iq(p.conn, msg, 0, iq_cb, r), KITH_EINVAL);
  kith_stanza_set_attr(msg, "type", "result");
  assert_int_equal(kith_conn_send_iq(p.conn, msg, 0, iq_cb, NULL), KITH_EINVAL);
  kith_stanza_free(msg);
  assert_int_equal(r[0], 0); /* an error return means no callback, ever */
  peer_close(&p);
}

static int take_messages(kith_conn_t *conn, const kith_stanza_t *st, void *ud)
{
  (void)conn;
  (void)st;
  ++*(int *)ud;
  return 1;
}

static void test_unhandled_iq_answered(void **state)
{
  peer_t p;
  int seen = 0;

  (void)state;
  component_ready(&p);
  assert_true(kith_conn_add_handler(p.conn, "message", NULL, NULL,
                                    take_messages, &seen) > 0);
  forget_sent(&p);
  say(&p, "<iq type='get' id='v1' from='romeo@example.net' "
          "to='bot.localhost'><query xmlns='jabber:iq:version'/></iq>");
  assert_non_null(strstr(p.got, "type='error'"));
  assert_non_null(strstr(p.got, "service-unavailable"));
  assert_non_null(strstr(p.got, "to='romeo@example.net'"));
  assert_non_null(strstr(p.got, "from='bot.localhost'"));
  forget_sent(&p);
  say(&p, "<iq type='get' id='p1' from='localhost' to='bot.localhost'>"
          "<ping xmlns='urn:xmpp:ping'/></iq>");
  assert_non_null(strstr(p.got, "type='result'"));
  assert_non_null(strstr(p.got, "id='p1'"));
  /* Results are never answered; messages reach the handler. */
  forget_sent(&p);
  say(&p, "<iq type='result' id='zz' from='localhost'/><message "
          "from='a@b' to='bot.localhost'><body>hi</body></message>");
  assert_int_equal(p.gotlen, 0);
  assert_int_equal(seen, 1);
  peer_close(&p);
}

static void test_handler_removal_by_id(void **state)
{
  peer_t p;
  int a = 0, b = 0;
  unsigned ida, idb;

  (void)state;
  component_ready(&p);
  /* The same function registered twice, told apart by id. */
  ida = kith_conn_add_handler(p.conn, "message", NULL, NULL, take_messages, &a);
  idb =
      kith_conn_add_handler(p.conn, "message", "chat", NULL, take_messages, &b);
  assert_true(ida > 0 && idb > 0 && ida != idb);
  kith_conn_off(p.conn, ida);
  say(&p, "<message type='chat' from='a@b'><body>1</body></message>");
  assert_int_equal(a, 0);
  assert_int_equal(b, 1);
  say(&p, "<message type='normal' from='a@b'><body>2</body></message>");
  assert_int_equal(b, 1);
  peer_close(&p);
}

static void test_stream_error_reported(void **state)
{
  peer_t p;

  (void)state;
  component_ready(&p);
  say(&p, "<stream:error><system-shutdown "
          "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
          "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>going down for "
          "maintenance</text></stream:error>");
  assert_int_equal(p.disconnected, 1);
  assert_int_equal(p.status, KITH_ESTREAM);
  assert_string_equal(p.text, "system-shutdown: going down for maintenance");
  assert_false(kith_conn_is_active(p.conn));
  peer_close(&p);
}

static void test_handshake_rejected(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, "bot.localhost");
  say(&p, COMPONENT_HEADER);
  say(&p, "<stream:error><not-authorized "
          "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
  assert_int_equal(p.started, 0);
  assert_int_equal(p.status, KITH_EAUTH);
  assert_non_null(strstr(p.text, "not-authorized"));
  assert_non_null(strstr(p.text, "bot.localhost"));
  peer_close(&p);
}

static void test_oversized_stanza_policy_violation(void **state)
{
  peer_t p;
  char big[2048];

  (void)state;
  component_ready(&p);
  kith_conn_set_limits(p.conn, 1024, 0);
  memset(big, 'x', sizeof(big));
  memcpy(big, "<message><body>", 15);
  big[sizeof(big) - 1] = '\0';
  forget_sent(&p);
  say(&p, big);
  assert_non_null(strstr(p.got, "<policy-violation"));
  assert_int_equal(p.disconnected, 1);
  assert_int_equal(p.status, KITH_ELIMIT);
  peer_close(&p);
}

static void test_restricted_xml(void **state)
{
  peer_t p;

  (void)state;
  component_ready(&p);
  forget_sent(&p);
  say(&p, "<!-- a comment is not allowed in XMPP -->");
  assert_non_null(strstr(p.got, "<restricted-xml"));
  assert_int_equal(p.status, KITH_EXML);
  peer_close(&p);
}

static void test_clean_disconnect(void **state)
{
  peer_t p;

  (void)state;
  component_ready(&p);
  forget_sent(&p);
  kith_conn_disconnect(p.conn);
  pump(&p);
  assert_string_equal(p.got, "</stream:stream>");
  assert_int_equal(p.disconnected, 0); /* waits for the peer's close */
  assert_true(kith_conn_is_active(p.conn));
  say(&p, "</stream:stream>");
  assert_int_equal(p.disconnected, 1);
  assert_int_equal(p.status, KITH_OK);
  assert_false(kith_conn_is_active(p.conn));
  peer_close(&p);
}

static void test_disconnect_close_timeout(void **state)
{
  peer_t p;

  (void)state;
  component_ready(&p);
  kith_conn_set_timeouts(p.conn, 0, 30);
  kith_conn_disconnect(p.conn);
  pump(&p);
  assert_int_equal(p.disconnected, 0);
  usleep(60 * 1000);
  kith_conn_process(p.conn, 0);
  assert_int_equal(p.disconnected, 1);
  assert_int_equal(p.status, KITH_OK);
  assert_non_null(strstr(p.text, "in time"));
  peer_close(&p);
}

static void test_client_requires_starttls(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, NULL);
  assert_non_null(strstr(p.got, "xmlns='jabber:client'"));
  assert_non_null(strstr(p.got, "to='localhost'"));
  assert_null(strstr(p.got, "from=")); /* not before TLS */
  say(&p, CLIENT_HEADER "<stream:features><mechanisms "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>"
                        "PLAIN</mechanism></mechanisms></stream:features>");
  assert_int_equal(p.disconnected, 1);
  assert_int_equal(p.status, KITH_ETLS);
  assert_non_null(strstr(p.text, "STARTTLS"));
  assert_null(strstr(p.got, "<auth"));
  peer_close(&p);
}

static void test_client_starttls_refused(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, NULL);
  say(&p, CLIENT_HEADER "<stream:features><starttls "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
                        "</starttls></stream:features>");
  assert_non_null(strstr(p.got, "<starttls"));
  say(&p, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  assert_int_equal(p.status, KITH_ETLS);
  peer_close(&p);
}

static void test_connect_timeout(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, NULL);
  kith_conn_set_timeouts(p.conn, 30, 0);
  /* The deadline was set at adoption with the default; a silent peer
   * still ends the attempt once the (new) budget has passed. */
  p.conn->deadline = kith__now_ms() + 30;
  usleep(60 * 1000);
  kith_conn_process(p.conn, 0);
  assert_int_equal(p.disconnected, 1);
  assert_int_equal(p.status, KITH_ETIMEDOUT);
  peer_close(&p);
}

/* Just after kith_conn_connect() the dialer has no socket yet: a loop
 * built on the hooks must be told to call kith_conn_process() at once
 * (timeout 0), not to sleep the connect timeout away with nothing to
 * wait on. kith_run() is such a loop. */
static void test_connect_asks_to_be_processed_at_once(void **state)
{
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  kith_conn_t *conn = NULL;
  int lfd, i;

  (void)state;
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(lfd >= 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(lfd, 1), 0);
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
  assert_int_equal(kith_conn_new(NULL, &conn), KITH_OK);
  assert_int_equal(kith_conn_set_jid(conn, "alice@localhost"), KITH_OK);
  assert_int_equal(kith_conn_set_password(conn, "pw"), KITH_OK);
  assert_int_equal(
      kith_conn_set_server(conn, "127.0.0.1", (unsigned)ntohs(sa.sin_port)),
      KITH_OK);
  assert_int_equal(kith_conn_connect(conn), KITH_OK);
  if (kith_conn_fd(conn) < 0)
    assert_int_equal(kith_conn_timeout(conn), 0);
  /* One process call opens the socket; then there is an fd to wait on. */
  for (i = 0; i < 3 && kith_conn_fd(conn) < 0; i++)
    kith_conn_process(conn, 0);
  assert_true(kith_conn_fd(conn) >= 0);
  assert_true(kith_conn_timeout(conn) > 0);
  kith_conn_free(conn);
  close(lfd);
}

static void test_send_queue_cap(void **state)
{
  peer_t p;
  kith_stanza_t *msg = NULL, *body = NULL;
  char *big = malloc(1024 * 1024 + 1);
  size_t queued;
  int i, sent = 0;
  kith_status_t rc = KITH_OK;

  (void)state;
  component_ready(&p);
  memset(big, 'x', 1024 * 1024);
  big[1024 * 1024] = '\0';
  assert_int_equal(kith_stanza_new(NULL, "message", NULL, &msg), KITH_OK);
  kith_stanza_set_attr(msg, "to", "romeo@example.net");
  kith_stanza_add_element(msg, "body", NULL, &body);
  kith_stanza_add_text(body, big);
  /* Nobody drains the queue: it fills up to its cap, 16 MiB. */
  for (i = 0; i < 32 && rc == KITH_OK; i++) {
    queued = p.conn->out.len;
    rc = kith_conn_send(p.conn, msg);
    sent += rc == KITH_OK;
  }
  assert_int_equal(rc, KITH_ELIMIT);
  assert_int_equal(sent, 15); /* 15 x ~1 MiB fit, the 16th would not */
  /* A refused stanza leaves nothing half-written in the queue. */
  assert_int_equal(p.conn->out.len, queued);
  assert_true(p.conn->out.len <= KITH_DEFAULT_SEND_QUEUE_MAX);
  /* A small stanza still fits, and the connection carries on. */
  kith_stanza_remove_child(msg, body);
  assert_int_equal(kith_conn_send(p.conn, msg), KITH_OK);
  assert_true(kith_conn_is_ready(p.conn));
  kith_stanza_free(msg);
  free(big);
  peer_close(&p);
}

static void test_event_names(void **state)
{
  (void)state;
  assert_string_equal(kith_event_name(KITH_EVENT_SESSION_START),
                      "session_start");
  assert_string_equal(kith_event_name(KITH_EVENT_DISCONNECTED), "disconnected");
  assert_string_equal(kith_event_name((kith_event_type_t)999), "unknown");
}

static void test_config_validation(void **state)
{
  kith_conn_t *conn;

  (void)state;
  assert_int_equal(kith_conn_new(NULL, &conn), KITH_OK);
  assert_int_equal(kith_conn_connect(conn), KITH_EINVAL); /* no JID */
  assert_int_equal(kith_conn_set_jid(conn, "@localhost"), KITH_EJID);
  assert_non_null(strstr(kith_conn_error_text(conn), "invalid JID"));
  assert_int_equal(kith_conn_set_jid(conn, "localhost"), KITH_OK);
  assert_int_equal(kith_conn_set_password(conn, "x"), KITH_OK);
  assert_int_equal(kith_conn_connect(conn), KITH_EINVAL); /* no localpart */
  assert_int_equal(kith_conn_set_component(conn, "gw.localhost", "s"), KITH_OK);
  assert_int_equal(kith_conn_connect(conn), KITH_EINVAL); /* no server */
  assert_int_equal(kith_conn_set_server(conn, "h", 70000), KITH_EINVAL);
  assert_int_equal(kith_conn_fd(conn), -1);
  assert_int_equal(kith_conn_timeout(conn), -1);
  kith_conn_disconnect(conn); /* idle: no-op */
  kith_conn_free(conn);
  kith_conn_free(NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_component_handshake_digest),
      cmocka_unit_test(test_iq_reply_must_come_from_the_target),
      cmocka_unit_test(test_iq_error_and_timeout),
      cmocka_unit_test(test_iq_cancelled_on_disconnect),
      cmocka_unit_test(test_send_iq_rejects_bad_input),
      cmocka_unit_test(test_unhandled_iq_answered),
      cmocka_unit_test(test_handler_removal_by_id),
      cmocka_unit_test(test_stream_error_reported),
      cmocka_unit_test(test_handshake_rejected),
      cmocka_unit_test(test_oversized_stanza_policy_violation),
      cmocka_unit_test(test_restricted_xml),
      cmocka_unit_test(test_clean_disconnect),
      cmocka_unit_test(test_disconnect_close_timeout),
      cmocka_unit_test(test_client_requires_starttls),
      cmocka_unit_test(test_client_starttls_refused),
      cmocka_unit_test(test_connect_timeout),
      cmocka_unit_test(test_send_queue_cap),
      cmocka_unit_test(test_event_names),
      cmocka_unit_test(test_config_validation),
      cmocka_unit_test(test_connect_asks_to_be_processed_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

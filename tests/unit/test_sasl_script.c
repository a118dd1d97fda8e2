/*
 * Unit tests: SASL negotiation against a scripted peer that runs GNU
 * SASL's server side, so the exchange is real SCRAM and the test can
 * tamper with what a real server would never get wrong: the server's final
 * signature, a success without proof, odd mechanism lists.
 *
 * The connection is told to treat its plain socketpair as encrypted
 * (kith__conn_test_assume_tls); everything after TLS is exercised as is.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <gsasl.h>

#include "kith/kith.h"
#include "session/conn.h"

#define HEADER                                                                 \
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                 \
  "xmlns:stream='http://etherx.jabber.org/streams' id='t1' "                   \
  "from='localhost' version='1.0'>"
#define MECHS(list)                                                            \
  HEADER "<stream:features><mechanisms "                                       \
         "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" list                      \
         "</mechanisms></stream:features>"

typedef struct peer {
  kith_conn_t *conn;
  int fd;
  char got[16384];
  size_t gotlen;
  int started, disconnected;
  kith_status_t status;
  char text[512], jid[256];
  Gsasl *gs;
  Gsasl_session *srv;
} peer_t;

#include "script_peer.h"

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  peer_t *p = ud;

  (void)conn;
  if (ev->type == KITH_EVENT_SESSION_START) {
    p->started++;
    snprintf(p->jid, sizeof(p->jid), "%s", ev->jid);
  }
  if (ev->type == KITH_EVENT_DISCONNECTED) {
    p->disconnected++;
    p->status = ev->status;
    snprintf(p->text, sizeof(p->text), "%s", ev->text ? ev->text : "");
  }
}

static int server_cb(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop)
{
  (void)ctx;
  if (prop == GSASL_PASSWORD) {
    const char *user = gsasl_property_fast(s, GSASL_AUTHID);
    if (user && strcmp(user, "alice") == 0)
      return gsasl_property_set(s, GSASL_PASSWORD, "alice-secret");
  }
  return GSASL_NO_CALLBACK;
}

/* The text content of the first <tag ...>...</tag> the client sent. */
static char *sent_text(peer_t *p, const char *tag)
{
  static char buf[4096];
  char open[64], close[64];
  const char *a, *b;

  snprintf(open, sizeof(open), "<%s", tag);
  snprintf(close, sizeof(close), "</%s>", tag);
  a = strstr(p->got, open);
  assert_non_null(a);
  a = strchr(a, '>');
  assert_non_null(a);
  b = strstr(a, close);
  assert_non_null(b);
  assert_true((size_t)(b - a - 1) < sizeof(buf));
  memcpy(buf, a + 1, (size_t)(b - a - 1));
  buf[b - a - 1] = '\0';
  return buf;
}

static void peer_open(peer_t *p, const char *password)
{
  memset(p, 0, sizeof(*p));
  assert_int_equal(gsasl_init(&p->gs), GSASL_OK);
  gsasl_callback_set(p->gs, server_cb);
  assert_int_equal(kith_conn_new(NULL, &p->conn), KITH_OK);
  kith_conn_on(p->conn, KITH_EVENT_ANY, on_event, p);
  assert_int_equal(kith_conn_set_jid(p->conn, "alice@localhost/r"), KITH_OK);
  assert_int_equal(kith_conn_set_password(p->conn, password), KITH_OK);
  kith__conn_test_assume_tls(p->conn);
  peer_adopt(p);
  /* Once "encrypted", the client says who it is (RFC 6120 4.7.1). */
  assert_non_null(strstr(p->got, "from='alice@localhost'"));
  forget_sent(p);
}

static void peer_close(peer_t *p)
{
  kith_conn_free(p->conn);
  if (p->srv)
    gsasl_finish(p->srv);
  gsasl_done(p->gs);
  close(p->fd);
}

/* Offer `mechs`; expect the client to pick `expect`; run the SCRAM
 * exchange up to the server's final message, which is returned (base64,
 * static) without being sent. */
static const char *scram_until_final(peer_t *p, const char *mechs,
                                     const char *expect)
{
  static char final64[1024];
  char *out = NULL, xml[2048];
  char attr[128];

  say(p, mechs);
  snprintf(attr, sizeof(attr), "mechanism='%s'", expect);
  assert_non_null(strstr(p->got, attr));
  assert_int_equal(gsasl_server_start(p->gs, expect, &p->srv), GSASL_OK);
  assert_int_equal(gsasl_step64(p->srv, sent_text(p, "auth"), &out),
                   GSASL_NEEDS_MORE);
  snprintf(xml, sizeof(xml),
           "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s"
           "</challenge>",
           out);
  gsasl_free(out);
  forget_sent(p);
  say(p, xml);
  assert_int_equal(gsasl_step64(p->srv, sent_text(p, "response"), &out),
                   GSASL_OK);
  snprintf(final64, sizeof(final64), "%s", out);
  gsasl_free(out);
  forget_sent(p);
  return final64;
}

static void succeed_with(peer_t *p, const char *data)
{
  char xml[2048];

  snprintf(xml, sizeof(xml),
           "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</success>",
           data);
  say(p, xml);
}

static void test_scram_sha256_full_session(void **state)
{
  peer_t p;
  const char *final;

  (void)state;
  peer_open(&p, "alice-secret");
  final = scram_until_final(
      &p,
      MECHS("<mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism>"
            "<mechanism>SCRAM-SHA-256</mechanism>"),
      "SCRAM-SHA-256");
  succeed_with(&p, final);
  assert_int_equal(p.disconnected, 0);
  /* Authenticated: a new stream, then bind with the requested resource. */
  assert_non_null(strstr(p.got, "<stream:stream"));
  forget_sent(&p);
  say(&p, HEADER "<stream:features><bind "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/>"
                 "</session></stream:features>");
  assert_non_null(strstr(p.got, "<resource>r</resource>"));
  {
    char xml[512];
    const char *id = strstr(p.got, "id='");
    char idv[64];
    assert_non_null(id);
    sscanf(id + 4, "%63[^']", idv);
    snprintf(xml, sizeof(xml),
             "<iq type='result' id='%s'><bind "
             "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/r"
             "</jid></bind></iq>",
             idv);
    say(&p, xml);
  }
  assert_int_equal(p.started, 1);
  assert_string_equal(p.jid, "alice@localhost/r");
  assert_string_equal(kith_conn_sasl_mechanism(p.conn), "SCRAM-SHA-256");
  peer_close(&p);
}

static void test_server_signature_must_verify(void **state)
{
  peer_t p;
  const char *final;
  char *raw = NULL, *b64 = NULL, text[512];
  size_t rawlen = 0, b64len = 0;
  char *v;

  (void)state;
  peer_open(&p, "alice-secret");
  final = scram_until_final(&p, MECHS("<mechanism>SCRAM-SHA-1</mechanism>"),
                            "SCRAM-SHA-1");
  /* Flip one character of the signature in "v=...". */
  assert_int_equal(gsasl_base64_from(final, strlen(final), &raw, &rawlen),
                   GSASL_OK);
  /* The decoded bytes carry no terminating NUL. */
  assert_true(rawlen < sizeof(text));
  memcpy(text, raw, rawlen);
  text[rawlen] = '\0';
  v = strstr(text, "v=");
  assert_non_null(v);
  v[2] = v[2] == 'A' ? 'B' : 'A';
  assert_int_equal(gsasl_base64_to(text, rawlen, &b64, &b64len), GSASL_OK);
  succeed_with(&p, b64);
  gsasl_free(raw);
  gsasl_free(b64);
  assert_int_equal(p.started, 0);
  assert_int_equal(p.disconnected, 1);
  assert_int_equal(p.status, KITH_EAUTH);
  assert_non_null(strstr(p.text, "SCRAM-SHA-1"));
  /* No new stream was opened for an unproven server. */
  assert_null(strstr(p.got, "<stream:stream"));
  peer_close(&p);
}

static void test_success_without_proof(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, "alice-secret");
  scram_until_final(&p, MECHS("<mechanism>SCRAM-SHA-1</mechanism>"),
                    "SCRAM-SHA-1");
  say(&p, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  assert_int_equal(p.status, KITH_EAUTH);
  assert_non_null(strstr(p.text, "did not prove"));
  peer_close(&p);
}

static void test_wrong_password_failure_text(void **state)
{
  peer_t p;

  (void)state;
  peer_open(&p, "not-it");
  say(&p, MECHS("<mechanism>SCRAM-SHA-1</mechanism>"));
  say(&p, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>"
          "<text>bad proof</text></failure>");
  assert_int_equal(p.status, KITH_EAUTH);
  assert_string_equal(p.text, "not-authorized: wrong password or unknown "
                              "account for alice@localhost (bad proof)");
  peer_close(&p);
}

static void test_mechanism_choice(void **state)
{
  peer_t p;

  (void)state;
  /* -PLUS needs channel binding, which a plain socket has none of. */
  peer_open(&p, "x");
  say(&p, MECHS("<mechanism>SCRAM-SHA-1-PLUS</mechanism>"
                "<mechanism>SCRAM-SHA-1</mechanism>"));
  assert_non_null(strstr(p.got, "mechanism='SCRAM-SHA-1'"));
  /* Non-PLUS with no binding data uses the gs2 flag 'n' ("biws" = "n,,"). */
  assert_non_null(strstr(p.got, ">biws"));
  peer_close(&p);

  peer_open(&p, "x");
  say(&p, MECHS("<mechanism>SCRAM-SHA-256-PLUS</mechanism>"
                "<mechanism>DIGEST-MD5</mechanism>"));
  assert_int_equal(p.status, KITH_EAUTH);
  assert_non_null(strstr(p.text, "no acceptable SASL mechanism"));
  assert_null(strstr(p.got, "<auth"));
  peer_close(&p);

  peer_open(&p, "x");
  say(&p, MECHS("<mechanism>PLAIN</mechanism>"));
  assert_non_null(strstr(p.got, "mechanism='PLAIN'"));
  peer_close(&p);

  peer_open(&p, "x");
  say(&p, HEADER "<stream:features/>");
  assert_int_equal(p.status, KITH_EAUTH);
  assert_non_null(strstr(p.text, "no SASL mechanism"));
  peer_close(&p);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scram_sha256_full_session),
      cmocka_unit_test(test_server_signature_must_verify),
      cmocka_unit_test(test_success_without_proof),
      cmocka_unit_test(test_wrong_password_failure_text),
      cmocka_unit_test(test_mechanism_choice),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

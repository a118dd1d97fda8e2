/*
 * Integration: client and component sessions against the lab's Prosody.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kith/kith.h"
#include "lab.h"

typedef struct watcher {
  int started, disconnected, stream_errors;
  kith_status_t status;
  char text[512];
  char jid[256];
  /* what the client logged: mechanism chosen, and whether <auth> was sent */
  int sent_auth;
  char mech[64];
} watcher_t;

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  watcher_t *w = ud;

  (void)conn;
  switch (ev->type) {
  case KITH_EVENT_SESSION_START:
    w->started++;
    snprintf(w->jid, sizeof(w->jid), "%s", ev->jid ? ev->jid : "");
    break;
  case KITH_EVENT_DISCONNECTED:
    w->disconnected++;
    w->status = ev->status;
    snprintf(w->text, sizeof(w->text), "%s", ev->text ? ev->text : "");
    break;
  case KITH_EVENT_STREAM_ERROR:
    w->stream_errors++;
    break;
  default:
    break;
  }
}

static void on_log(void *ud, kith_log_level_t level, const char *area,
                   const char *msg)
{
  watcher_t *w = ud;
  const char *p;

  (void)level;
  (void)area;
  if (strncmp(msg, "SEND ", 5) == 0 && strstr(msg, "<auth "))
    w->sent_auth = 1;
  if ((p = strstr(msg, "authenticated with ")) != NULL)
    snprintf(w->mech, sizeof(w->mech), "%s", p + 19);
}

typedef struct client {
  kith_ctx_t *ctx;
  kith_conn_t *conn;
  watcher_t w;
} client_t;

static void client_init(client_t *c, const char *jid, const char *password,
                        const char *ca)
{
  memset(c, 0, sizeof(*c));
  assert_int_equal(kith_ctx_new(NULL, &c->ctx), KITH_OK);
  kith_ctx_set_log(c->ctx, KITH_LOG_TRACE, on_log, &c->w);
  assert_int_equal(kith_conn_new(c->ctx, &c->conn), KITH_OK);
  assert_true(kith_conn_on(c->conn, KITH_EVENT_ANY, on_event, &c->w) > 0);
  assert_int_equal(kith_conn_set_server(c->conn, lab_get("XMPP_HOST"),
                                        (unsigned)lab_get_int("C2S_PORT")),
                   KITH_OK);
  assert_int_equal(kith_conn_set_ca_file(c->conn, ca), KITH_OK);
  if (jid) {
    assert_int_equal(kith_conn_set_jid(c->conn, jid), KITH_OK);
    assert_int_equal(kith_conn_set_password(c->conn, password), KITH_OK);
  }
  kith_conn_set_timeouts(c->conn, 10000, 2000);
}

static void client_free(client_t *c)
{
  kith_conn_free(c->conn);
  kith_ctx_free(c->ctx);
}

/* Run the loop over the given connections until *flag becomes non-zero or
 * ten seconds pass. */
static int run_until(kith_conn_t **conns, size_t n, const int *flag)
{
  int i;

  for (i = 0; i < 1000 && !*flag; i++)
    kith_run_once(conns, n, 10);
  return *flag;
}

static void disconnect_and_wait(client_t *c)
{
  int before = c->w.disconnected;

  kith_conn_disconnect(c->conn);
  while (kith_conn_is_active(c->conn))
    kith_run_once(&c->conn, 1, 100);
  assert_int_equal(c->w.disconnected, before + 1);
}

static void test_login_scram_starttls(void **state)
{
  client_t c;

  (void)state;
  client_init(&c, lab_get("ALICE_JID"), lab_get("ALICE_PASSWORD"),
              lab_get("CA_FILE"));
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.started));
  assert_true(kith_conn_is_ready(c.conn));
  assert_non_null(strstr(c.w.jid, "alice@localhost/"));
  assert_string_equal(kith_conn_jid(c.conn), c.w.jid);
  assert_non_null(strstr(c.w.mech, "SCRAM-SHA-"));
  assert_string_equal(kith_conn_sasl_mechanism(c.conn), c.w.mech);
  assert_non_null(strstr(kith_conn_tls_info(c.conn), "TLSv1."));
  assert_non_null(kith_conn_features(c.conn));
  disconnect_and_wait(&c);
  assert_int_equal(c.w.status, KITH_OK);
  assert_false(kith_conn_is_active(c.conn));
  client_free(&c);
}

/* Log in and return the mechanism the session used. */
static void login_expect(const char *jid, const char *password,
                         const char *mech, const char *tls)
{
  client_t c;

  client_init(&c, jid, password, lab_get("CA_FILE"));
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.started));
  assert_string_equal(kith_conn_sasl_mechanism(c.conn), mech);
  assert_non_null(strstr(kith_conn_tls_info(c.conn), tls));
  disconnect_and_wait(&c);
  client_free(&c);
}

static void test_login_scram_sha256(void **state)
{
  (void)state;
  /* A host whose credentials are stored for SCRAM-SHA-256 only. */
  login_expect(lab_get("SHA256_JID"), lab_get("SHA256_PASSWORD"),
               "SCRAM-SHA-256", "TLSv1.3");
}

static void test_login_scram_plus_tls_unique(void **state)
{
  (void)state;
  /* A TLS 1.2 host: Prosody 0.12 offers -PLUS with tls-unique there, and
   * kith must pick it, binding the channel. */
  login_expect(lab_get("TLS12_JID"), lab_get("TLS12_PASSWORD"),
               "SCRAM-SHA-1-PLUS", "TLSv1.2");
}

static void test_requested_resource(void **state)
{
  client_t c;
  char jid[300];

  (void)state;
  snprintf(jid, sizeof(jid), "%s/Balcony", lab_get("ALICE_JID"));
  client_init(&c, jid, lab_get("ALICE_PASSWORD"), lab_get("CA_FILE"));
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.started));
  assert_string_equal(c.w.jid, "alice@localhost/Balcony");
  disconnect_and_wait(&c);
  client_free(&c);
}

static void test_wrong_password(void **state)
{
  client_t c;

  (void)state;
  client_init(&c, lab_get("ALICE_JID"), "not-the-password", lab_get("CA_FILE"));
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.disconnected));
  assert_int_equal(c.w.started, 0);
  assert_int_equal(c.w.status, KITH_EAUTH);
  assert_non_null(strstr(c.w.text, "not-authorized"));
  assert_non_null(strstr(c.w.text, "alice@localhost"));
  assert_string_equal(kith_conn_error_text(c.conn), c.w.text);
  client_free(&c);
}

static void test_unknown_ca(void **state)
{
  client_t c;

  (void)state;
  client_init(&c, lab_get("ALICE_JID"), lab_get("ALICE_PASSWORD"),
              lab_get("OTHER_CA_FILE"));
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.disconnected));
  assert_int_equal(c.w.status, KITH_ECERT);
  assert_non_null(strstr(c.w.text, "certificate verification failed"));
  /* No credentials may leave the machine over an unverified channel. */
  assert_int_equal(c.w.sent_auth, 0);
  client_free(&c);
}

static void on_iq(kith_conn_t *conn, kith_status_t status,
                  const kith_stanza_t *reply, void *ud)
{
  int *out = ud;

  (void)conn;
  out[0]++;
  out[1] = (int)status;
  if (reply && kith_stanza_error_condition(reply) &&
      strcmp(kith_stanza_error_condition(reply), "service-unavailable") == 0)
    out[2] = 1;
}

static kith_stanza_t *ping_to(const char *to)
{
  kith_stanza_t *iq = NULL;

  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(iq, "type", "get"), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(iq, "to", to), KITH_OK);
  assert_int_equal(kith_stanza_add_element(iq, "ping", KITH_NS_PING, NULL),
                   KITH_OK);
  return iq;
}

static void test_ping_round_trip(void **state)
{
  client_t c;
  int got[3] = {0, -1, 0};
  kith_stanza_t *iq;

  (void)state;
  client_init(&c, lab_get("ALICE_JID"), lab_get("ALICE_PASSWORD"),
              lab_get("CA_FILE"));
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.started));

  iq = ping_to("localhost");
  assert_int_equal(kith_conn_send_iq(c.conn, iq, 0, on_iq, got), KITH_OK);
  assert_non_null(kith_stanza_id(iq));
  kith_stanza_free(iq);
  assert_true(run_until(&c.conn, 1, &got[0]));
  assert_int_equal(got[1], KITH_OK);

  /* An error reply comes back through the same callback, once. */
  got[0] = 0;
  /* (Prosody answers pings to any bare JID itself, so ask for something
   * nobody serves.) */
  iq = ping_to("nobody-here@localhost");
  kith_stanza_remove_child(iq, kith_stanza_first_child(iq));
  assert_int_equal(
      kith_stanza_add_element(iq, "query", "urn:example:none", NULL), KITH_OK);
  assert_int_equal(kith_conn_send_iq(c.conn, iq, 0, on_iq, got), KITH_OK);
  kith_stanza_free(iq);
  assert_true(run_until(&c.conn, 1, &got[0]));
  assert_int_equal(got[1], KITH_ESTANZA);
  assert_int_equal(got[2], 1);

  /* A pending iq is cancelled, exactly once, when the connection ends. */
  got[0] = 0;
  iq = ping_to("localhost");
  assert_int_equal(kith_conn_send_iq(c.conn, iq, 0, on_iq, got), KITH_OK);
  kith_stanza_free(iq);
  kith_conn_free(c.conn);
  assert_int_equal(got[0], 1);
  assert_int_equal(got[1], KITH_ECANCELED);
  kith_ctx_free(c.ctx);
}

static void test_server_closes_stream(void **state)
{
  client_t a, b;
  char jid[300];
  kith_conn_t *both[2];

  (void)state;
  /* A second login with the same full JID makes Prosody close the first
   * stream with a <conflict/> stream error. */
  snprintf(jid, sizeof(jid), "%s/Twin", lab_get("BOB_JID"));
  client_init(&a, jid, lab_get("BOB_PASSWORD"), lab_get("CA_FILE"));
  client_init(&b, jid, lab_get("BOB_PASSWORD"), lab_get("CA_FILE"));
  both[0] = a.conn;
  both[1] = b.conn;
  assert_int_equal(kith_conn_connect(a.conn), KITH_OK);
  assert_true(run_until(both, 1, &a.w.started));
  assert_int_equal(kith_conn_connect(b.conn), KITH_OK);
  assert_true(run_until(both, 2, &a.w.disconnected));
  assert_int_equal(a.w.status, KITH_ESTREAM);
  assert_int_equal(a.w.stream_errors, 1);
  assert_non_null(strstr(a.w.text, "conflict"));
  assert_true(run_until(both, 2, &b.w.started));
  disconnect_and_wait(&b);
  client_free(&a);
  client_free(&b);
}

static void component_init(client_t *c, const char *domain, const char *secret)
{
  client_init(c, NULL, NULL, lab_get("CA_FILE"));
  assert_int_equal(
      kith_conn_set_server(c->conn, lab_get("XMPP_HOST"),
                           (unsigned)lab_get_int("COMPONENT_PORT")),
      KITH_OK);
  assert_int_equal(kith_conn_set_component(c->conn, domain, secret), KITH_OK);
}

static void test_component_handshake(void **state)
{
  client_t c;
  int got[3] = {0, -1, 0};
  kith_stanza_t *iq;

  (void)state;
  component_init(&c, lab_get("COMPONENT_DOMAIN"), lab_get("COMPONENT_SECRET"));
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.started));
  assert_string_equal(c.w.jid, lab_get("COMPONENT_DOMAIN"));

  /* A component pings the server; the reply must come from 'localhost'. */
  iq = ping_to("localhost");
  assert_int_equal(
      kith_stanza_set_attr(iq, "from", lab_get("COMPONENT_DOMAIN")), KITH_OK);
  assert_int_equal(kith_conn_send_iq(c.conn, iq, 0, on_iq, got), KITH_OK);
  kith_stanza_free(iq);
  assert_true(run_until(&c.conn, 1, &got[0]));
  assert_int_equal(got[1], KITH_OK);
  disconnect_and_wait(&c);
  assert_int_equal(c.w.status, KITH_OK);
  client_free(&c);
}

static void test_component_wrong_secret(void **state)
{
  client_t c;

  (void)state;
  component_init(&c, lab_get("COMPONENT_DOMAIN"), "wrong-secret");
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.disconnected));
  assert_int_equal(c.w.started, 0);
  assert_int_equal(c.w.status, KITH_EAUTH);
  assert_non_null(strstr(c.w.text, "not-authorized"));
  assert_non_null(strstr(c.w.text, lab_get("COMPONENT_DOMAIN")));
  client_free(&c);
}

static void test_component_unknown_domain(void **state)
{
  client_t c;

  (void)state;
  component_init(&c, "nosuch.localhost", "whatever");
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.disconnected));
  assert_int_equal(c.w.started, 0);
  assert_int_not_equal(c.w.status, KITH_OK);
  assert_non_null(strstr(c.w.text, "nosuch.localhost"));
  client_free(&c);
}

static void test_connection_refused(void **state)
{
  client_t c;

  (void)state;
  client_init(&c, lab_get("ALICE_JID"), lab_get("ALICE_PASSWORD"),
              lab_get("CA_FILE"));
  /* Port 1 on loopback: nothing listens there. */
  assert_int_equal(kith_conn_set_server(c.conn, "127.0.0.1", 1), KITH_OK);
  assert_int_equal(kith_conn_connect(c.conn), KITH_OK);
  assert_true(run_until(&c.conn, 1, &c.w.disconnected));
  assert_int_equal(c.w.status, KITH_ECONNECT);
  assert_non_null(strstr(c.w.text, "127.0.0.1:1"));
  client_free(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_login_scram_starttls),
      cmocka_unit_test(test_login_scram_sha256),
      cmocka_unit_test(test_login_scram_plus_tls_unique),
      cmocka_unit_test(test_requested_resource),
      cmocka_unit_test(test_wrong_password),
      cmocka_unit_test(test_unknown_ca),
      cmocka_unit_test(test_ping_round_trip),
      cmocka_unit_test(test_server_closes_stream),
      cmocka_unit_test(test_component_handshake),
      cmocka_unit_test(test_component_wrong_secret),
      cmocka_unit_test(test_component_unknown_domain),
      cmocka_unit_test(test_connection_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

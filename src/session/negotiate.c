/*
 * Stream negotiation, one function per phase.
 *
 * Client (RFC 6120): header -> features -> STARTTLS -> TLS -> header ->
 * features -> SASL -> header -> features -> bind [-> session] -> ready.
 * Component (XEP-0114): header -> handshake -> ready.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/ctx.h"
#include "session/conn.h"

/* Mechanisms in order of preference. -PLUS ones need channel binding;
 * PLAIN is only ever used inside TLS (which kith always requires). */
static const char *const mech_order[] = {
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
};

void kith__negotiate_reset(kith_conn_t *conn)
{
  if (conn->sasl) {
    gsasl_finish(conn->sasl);
    conn->sasl = NULL;
  }
  if (conn->gsasl) {
    gsasl_done(conn->gsasl);
    conn->gsasl = NULL;
  }
  conn->sasl_mech[0] = '\0';
  conn->sasl_done = 0;
  kith__free(conn->ctx, conn->stream_id);
  conn->stream_id = NULL;
  kith_stanza_free(conn->features);
  conn->features = NULL;
  kith__free(conn->ctx, conn->bound_jid);
  conn->bound_jid = NULL;
}

/* Send a small element with optional text content. */
static kith_status_t send_simple(kith_conn_t *conn, const char *name,
                                 const char *ns, const char *attr,
                                 const char *value, const char *text)
{
  kith_stanza_t *st = NULL;
  kith_status_t rc = kith_stanza_new(conn->ctx, name, ns, &st);

  if (rc == KITH_OK && attr)
    rc = kith_stanza_set_attr(st, attr, value);
  if (rc == KITH_OK && text)
    rc = kith_stanza_add_text(st, text);
  if (rc == KITH_OK)
    rc = kith__conn_write_stanza(conn, st);
  kith_stanza_free(st);
  return rc;
}

/* ---- Header ------------------------------------------------------------- */

static void send_handshake(kith_conn_t *conn)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0, i;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  EVP_MD_CTX *h = EVP_MD_CTX_new();

  /* XEP-0114: hex(SHA-1(stream id + secret)). */
  if (h == NULL || EVP_DigestInit_ex(h, EVP_sha1(), NULL) != 1 ||
      EVP_DigestUpdate(h, conn->stream_id, strlen(conn->stream_id)) != 1 ||
      EVP_DigestUpdate(h, conn->secret, strlen(conn->secret)) != 1 ||
      EVP_DigestFinal_ex(h, md, &mdlen) != 1) {
    EVP_MD_CTX_free(h);
    kith__conn_fail(conn, KITH_ENOMEM, "cannot compute the handshake");
    return;
  }
  EVP_MD_CTX_free(h);
  for (i = 0; i < mdlen; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  conn->phase = KITH__PH_HANDSHAKE;
  if (send_simple(conn, "handshake", NULL, NULL, NULL, hex) != KITH_OK)
    kith__conn_fail(conn, KITH_ENOMEM, "cannot send the handshake");
}

void kith__negotiate_stream_start(kith_conn_t *conn, const kith_stanza_t *root)
{
  const char *id = kith_stanza_attr(root, "id");

  if (strcmp(kith_stanza_name(root), "stream") != 0 ||
      kith_stanza_ns(root) == NULL ||
      strcmp(kith_stanza_ns(root), KITH_NS_STREAMS) != 0) {
    kith__conn_fail(conn, KITH_EPROTO,
                    "the server did not open an XMPP stream");
    return;
  }
  kith__free(conn->ctx, conn->stream_id);
  conn->stream_id = kith__strdup(conn->ctx, id ? id : "");
  if (conn->stream_id == NULL) {
    kith__conn_fail(conn, KITH_ENOMEM, "out of memory");
    return;
  }
  if (conn->component_domain) {
    /* Without an id there is nothing to hash. A server that refuses the
     * domain sends such a header followed by its stream error, so wait for
     * what comes next rather than fail here. */
    if (id == NULL || *id == '\0')
      conn->phase = KITH__PH_HANDSHAKE;
    else
      send_handshake(conn);
    return;
  }
  conn->phase = KITH__PH_FEATURES;
}

/* ---- Stream errors ------------------------------------------------------ */

static void on_stream_error(kith_conn_t *conn, const kith_stanza_t *st)
{
  const kith_stanza_t *c;
  const char *cond = "undefined-condition", *text = NULL;
  char msg[512];
  kith_status_t status = KITH_ESTREAM;

  for (c = kith_stanza_first_child(st); c; c = kith_stanza_next(c)) {
    const char *ns = kith_stanza_ns(c);
    if (ns == NULL || strcmp(ns, KITH_NS_STREAM_ERRORS) != 0)
      continue;
    if (strcmp(kith_stanza_name(c), "text") == 0)
      text = kith_stanza_text(c);
    else
      cond = kith_stanza_name(c);
  }
  if (strcmp(cond, "not-authorized") == 0)
    status = KITH_EAUTH;
  if (conn->phase == KITH__PH_HANDSHAKE && status == KITH_EAUTH)
    snprintf(msg, sizeof(msg),
             "not-authorized: the server rejected the handshake for %s "
             "(wrong secret?)%s%s",
             conn->component_domain, text ? ": " : "", text ? text : "");
  else if (conn->phase == KITH__PH_HANDSHAKE &&
           strcmp(cond, "host-unknown") == 0)
    snprintf(msg, sizeof(msg),
             "host-unknown: the server does not know the component "
             "domain %s%s%s",
             conn->component_domain, text ? ": " : "", text ? text : "");
  else
    snprintf(msg, sizeof(msg), "%s%s%s", cond, text ? ": " : "",
             text ? text : "");
  {
    kith_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = KITH_EVENT_STREAM_ERROR;
    ev.status = status;
    ev.text = msg;
    ev.stanza = st;
    kith__emit(conn, &ev);
  }
  kith__conn_write(conn, "</stream:stream>", 16);
  kith__conn_fail(conn, status, "%s", msg);
}

/* ---- Features ----------------------------------------------------------- */

static kith_status_t keep_features(kith_conn_t *conn, const kith_stanza_t *st)
{
  kith_stanza_t *copy = NULL;
  kith_status_t rc = kith_stanza_copy(st, &copy);

  if (rc != KITH_OK)
    return rc;
  kith_stanza_free(conn->features);
  conn->features = copy;
  return KITH_OK;
}

static void start_sasl(kith_conn_t *conn, const kith_stanza_t *features);
static void start_bind(kith_conn_t *conn, const kith_stanza_t *features);

static void on_features(kith_conn_t *conn, const kith_stanza_t *st)
{
  if (keep_features(conn, st) != KITH_OK) {
    kith__conn_fail(conn, KITH_ENOMEM, "out of memory");
    return;
  }
  if (!conn->tls_active) {
    if (kith_stanza_child(st, "starttls", KITH_NS_TLS) == NULL) {
      kith__conn_fail(conn, KITH_ETLS,
                      "the server does not offer STARTTLS, and kith "
                      "requires TLS");
      return;
    }
    conn->phase = KITH__PH_STARTTLS;
    if (send_simple(conn, "starttls", KITH_NS_TLS, NULL, NULL, NULL) != KITH_OK)
      kith__conn_fail(conn, KITH_ENOMEM, "out of memory");
    return;
  }
  if (!conn->authenticated) {
    start_sasl(conn, st);
    return;
  }
  start_bind(conn, st);
}

static void on_starttls_reply(kith_conn_t *conn, const kith_stanza_t *st)
{
  if (strcmp(kith_stanza_name(st), "proceed") != 0) {
    kith__conn_fail(conn, KITH_ETLS, "the server refused STARTTLS");
    return;
  }
  kith__conn_start_tls(conn);
}

/* ---- SASL --------------------------------------------------------------- */

static const char *sasl_error_text(int rc)
{
  const char *s = gsasl_strerror(rc);
  return s ? s : "unknown SASL error";
}

/* Is channel binding type `type` acceptable to the server? Without a
 * XEP-0440 list, any type the TLS layer can provide is tried. */
static int server_accepts_cb(const kith_stanza_t *features, const char *type)
{
  const kith_stanza_t *list =
      kith_stanza_child(features, "sasl-channel-binding", "urn:xmpp:sasl-cb:0");
  const kith_stanza_t *c;

  if (list == NULL)
    return 1;
  for (c = kith_stanza_first_child(list); c; c = kith_stanza_next(c)) {
    const char *t = kith_stanza_attr(c, "type");
    if (t && strcmp(t, type) == 0)
      return 1;
  }
  return 0;
}

/* Channel binding data the server would accept, or 0 when there is none.
 * `type` gets "tls-exporter" or "tls-unique". */
static int channel_binding(kith_conn_t *conn, const kith_stanza_t *features,
                           const char **type, unsigned char *cb, size_t cap,
                           size_t *len)
{
  return conn->tls &&
         kith__tls_channel_binding(conn->tls, type, cb, cap, len) == KITH_OK &&
         server_accepts_cb(features, *type);
}

/* Give the -PLUS mechanism its channel binding data (base64). Only -PLUS
 * sessions may carry it: GNU SASL refuses a plain SCRAM exchange that has
 * binding data set. */
static int set_channel_binding(kith_conn_t *conn, const kith_stanza_t *features)
{
  unsigned char cb[64];
  size_t len = 0;
  const char *type = NULL;
  char *b64 = NULL;
  size_t b64len = 0;

  if (!channel_binding(conn, features, &type, cb, sizeof(cb), &len) ||
      gsasl_base64_to((const char *)cb, len, &b64, &b64len) != GSASL_OK)
    return 0;
  gsasl_property_set(conn->sasl,
                     strcmp(type, "tls-exporter") == 0 ? GSASL_CB_TLS_EXPORTER
                                                       : GSASL_CB_TLS_UNIQUE,
                     b64);
  gsasl_free(b64);
  return 1;
}

static int offered(const kith_stanza_t *mechs, const char *name)
{
  const kith_stanza_t *m;

  for (m = kith_stanza_first_child(mechs); m; m = kith_stanza_next(m))
    if (strcmp(kith_stanza_name(m), "mechanism") == 0 &&
        strcmp(kith_stanza_text(m), name) == 0)
      return 1;
  return 0;
}

static const char *choose_mech(kith_conn_t *conn, const kith_stanza_t *mechs,
                               int have_cb)
{
  size_t i;

  for (i = 0; i < sizeof(mech_order) / sizeof(mech_order[0]); i++) {
    const char *m = mech_order[i];
    if (strstr(m, "-PLUS") && !have_cb)
      continue;
    if (offered(mechs, m) && gsasl_client_support_p(conn->gsasl, m))
      return m;
  }
  return NULL;
}

/* Run one SASL step on base64 `in` and send `elem` with the output. */
static int sasl_step(kith_conn_t *conn, const char *in, const char *elem)
{
  char *out = NULL;
  int rc = gsasl_step64(conn->sasl, in, &out);

  if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
    kith__conn_fail(conn, KITH_EAUTH, "SASL %s failed for %s: %s",
                    conn->sasl_mech, kith_jid_bare(conn->jid),
                    sasl_error_text(rc));
    return rc;
  }
  conn->sasl_done = rc == GSASL_OK;
  if (elem) {
    if (strcmp(elem, "auth") == 0)
      send_simple(conn, "auth", KITH_NS_SASL, "mechanism", conn->sasl_mech,
                  out && *out ? out : "=");
    else
      send_simple(conn, elem, KITH_NS_SASL, NULL, NULL, out ? out : "");
  }
  gsasl_free(out);
  return rc;
}

static void start_sasl(kith_conn_t *conn, const kith_stanza_t *features)
{
  const kith_stanza_t *mechs =
      kith_stanza_child(features, "mechanisms", KITH_NS_SASL);
  const char *mech;
  int rc, have_cb;

  if (mechs == NULL) {
    kith__conn_fail(conn, KITH_EAUTH, "the server offers no SASL mechanism");
    return;
  }
  if (conn->gsasl == NULL && gsasl_init(&conn->gsasl) != GSASL_OK) {
    kith__conn_fail(conn, KITH_ENOMEM, "cannot initialize GNU SASL");
    return;
  }
  {
    unsigned char cb[64];
    size_t len = 0;
    const char *type = NULL;
    have_cb = channel_binding(conn, features, &type, cb, sizeof(cb), &len);
  }
  mech = choose_mech(conn, mechs, have_cb);
  if (mech == NULL) {
    kith__conn_fail(conn, KITH_EAUTH,
                    "no acceptable SASL mechanism (kith supports SCRAM-SHA-256,"
                    " SCRAM-SHA-1, their -PLUS variants, and PLAIN over TLS)");
    return;
  }
  rc = gsasl_client_start(conn->gsasl, mech, &conn->sasl);
  if (rc != GSASL_OK) {
    kith__conn_fail(conn, KITH_EAUTH, "cannot start SASL %s: %s", mech,
                    sasl_error_text(rc));
    return;
  }
  snprintf(conn->sasl_mech, sizeof(conn->sasl_mech), "%s", mech);
  gsasl_property_set(conn->sasl, GSASL_AUTHID, kith_jid_local(conn->jid));
  gsasl_property_set(conn->sasl, GSASL_PASSWORD, conn->password);
  if (strstr(mech, "-PLUS") && !set_channel_binding(conn, features)) {
    kith__conn_fail(conn, KITH_EAUTH, "channel binding data unavailable");
    return;
  }
  kith__info(conn->ctx, "sasl", "authenticating as %s with %s",
             kith_jid_bare(conn->jid), mech);
  conn->phase = KITH__PH_SASL;
  sasl_step(conn, "", "auth");
}

static void on_sasl_failure(kith_conn_t *conn, const kith_stanza_t *st)
{
  const kith_stanza_t *c;
  const char *cond = "failure", *text = NULL;
  char detail[300] = "";

  for (c = kith_stanza_first_child(st); c; c = kith_stanza_next(c)) {
    if (strcmp(kith_stanza_name(c), "text") == 0)
      text = kith_stanza_text(c);
    else
      cond = kith_stanza_name(c);
  }
  if (text && *text)
    snprintf(detail, sizeof(detail), " (%.280s)", text);
  /* not-authorized covers both a wrong password and an unknown account;
   * servers do not say which, on purpose. */
  if (strcmp(cond, "not-authorized") == 0)
    kith__conn_fail(conn, KITH_EAUTH,
                    "not-authorized: wrong password or unknown account for "
                    "%s%s",
                    kith_jid_bare(conn->jid), detail);
  else
    kith__conn_fail(conn, KITH_EAUTH, "%s: SASL %s failed for %s%s", cond,
                    conn->sasl_mech, kith_jid_bare(conn->jid), detail);
}

static void on_sasl_success(kith_conn_t *conn, const kith_stanza_t *st)
{
  const char *data = kith_stanza_text(st);

  /* The server's final message carries its proof (SCRAM's v=); the
   * mechanism must verify it before we believe the server. */
  if (!conn->sasl_done) {
    if (*data == '\0' || strcmp(data, "=") == 0) {
      kith__conn_fail(conn, KITH_EAUTH,
                      "SASL %s: the server did not prove that it knows the "
                      "password (no final message)",
                      conn->sasl_mech);
      return;
    }
    if (sasl_step(conn, data, NULL) != GSASL_OK) {
      if (conn->sasl_done == 0)
        kith__conn_fail(conn, KITH_EAUTH,
                        "SASL %s: the server's final signature does not "
                        "verify",
                        conn->sasl_mech);
      return;
    }
  }
  kith__info(conn->ctx, "sasl", "authenticated with %s", conn->sasl_mech);
  conn->authenticated = 1;
  if (kith__conn_open_stream(conn) != KITH_OK)
    kith__conn_fail(conn, KITH_ENOMEM, "cannot restart the stream");
}

static void on_sasl_reply(kith_conn_t *conn, const kith_stanza_t *st)
{
  const char *name = kith_stanza_name(st);

  if (strcmp(name, "challenge") == 0)
    sasl_step(conn, kith_stanza_text(st), "response");
  else if (strcmp(name, "success") == 0)
    on_sasl_success(conn, st);
  else if (strcmp(name, "failure") == 0)
    on_sasl_failure(conn, st);
  else
    kith__conn_fail(conn, KITH_EPROTO, "unexpected <%s/> during SASL", name);
}

/* ---- Bind --------------------------------------------------------------- */

static void on_session_result(kith_conn_t *conn, kith_status_t status,
                              const kith_stanza_t *reply, void *ud)
{
  (void)ud;
  if (status == KITH_ECANCELED)
    return;
  if (status != KITH_OK) {
    const char *cond = reply ? kith_stanza_error_condition(reply) : NULL;
    kith__conn_fail(conn, KITH_EPROTO, "session establishment failed: %s",
                    cond ? cond : kith_strerror(status));
    return;
  }
  kith__conn_ready(conn);
}

static void start_session_iq(kith_conn_t *conn)
{
  kith_stanza_t *iq = NULL;
  kith_status_t rc = kith_stanza_new(conn->ctx, "iq", NULL, &iq);

  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(iq, "type", "set");
  if (rc == KITH_OK)
    rc = kith_stanza_add_element(iq, "session", KITH_NS_SESSION, NULL);
  if (rc == KITH_OK)
    rc = kith__iq_track(conn, iq, 0, on_session_result, NULL);
  kith_stanza_free(iq);
  if (rc != KITH_OK)
    kith__conn_fail(conn, rc, "cannot send the session request");
}

static void on_bind_result(kith_conn_t *conn, kith_status_t status,
                           const kith_stanza_t *reply, void *ud)
{
  const kith_stanza_t *bind, *sess;
  const char *jid;
  char *norm = NULL;

  (void)ud;
  if (status == KITH_ECANCELED)
    return;
  if (status != KITH_OK) {
    const char *cond = reply ? kith_stanza_error_condition(reply) : NULL;
    kith__conn_fail(conn, KITH_EPROTO, "resource binding failed: %s",
                    cond ? cond : kith_strerror(status));
    return;
  }
  bind = kith_stanza_child(reply, "bind", KITH_NS_BIND);
  jid = bind ? kith_stanza_child_text(bind, "jid", KITH_NS_BIND) : NULL;
  if (jid == NULL ||
      kith_jid_normalize(conn->ctx, jid, 0, &norm, NULL) != KITH_OK) {
    kith__conn_fail(conn, KITH_EPROTO,
                    "the server's bind result has no valid JID");
    return;
  }
  conn->bound_jid = norm;
  /* RFC 3921's session establishment, only where still required. */
  sess = kith_stanza_child(conn->features, "session", KITH_NS_SESSION);
  if (sess && kith_stanza_child(sess, "optional", NULL) == NULL) {
    start_session_iq(conn);
    return;
  }
  kith__conn_ready(conn);
}

static void start_bind(kith_conn_t *conn, const kith_stanza_t *features)
{
  kith_stanza_t *iq = NULL, *bind = NULL;
  const char *res = kith_jid_resource(conn->jid);
  kith_status_t rc;

  if (kith_stanza_child(features, "bind", KITH_NS_BIND) == NULL) {
    kith__conn_fail(conn, KITH_EPROTO,
                    "the server does not offer resource binding");
    return;
  }
  conn->phase = KITH__PH_BIND;
  rc = kith_stanza_new(conn->ctx, "iq", NULL, &iq);
  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(iq, "type", "set");
  if (rc == KITH_OK)
    rc = kith_stanza_add_element(iq, "bind", KITH_NS_BIND, &bind);
  if (rc == KITH_OK && res) {
    kith_stanza_t *r = NULL;
    rc = kith_stanza_add_element(bind, "resource", NULL, &r);
    if (rc == KITH_OK)
      rc = kith_stanza_add_text(r, res);
  }
  if (rc == KITH_OK)
    rc = kith__iq_track(conn, iq, 0, on_bind_result, NULL);
  kith_stanza_free(iq);
  if (rc != KITH_OK)
    kith__conn_fail(conn, rc, "cannot send the bind request");
}

/* ---- Component handshake ------------------------------------------------ */

static void on_handshake_reply(kith_conn_t *conn, const kith_stanza_t *st)
{
  if (conn->stream_id[0] == '\0') {
    kith__conn_fail(conn, KITH_EPROTO,
                    "the server's stream header has no id to hash");
    return;
  }
  if (strcmp(kith_stanza_name(st), "handshake") != 0) {
    kith__conn_fail(conn, KITH_EPROTO, "unexpected <%s/> during the handshake",
                    kith_stanza_name(st));
    return;
  }
  conn->bound_jid = kith__strdup(conn->ctx, conn->component_domain);
  if (conn->bound_jid == NULL) {
    kith__conn_fail(conn, KITH_ENOMEM, "out of memory");
    return;
  }
  kith__conn_ready(conn);
}

/* ---- Dispatch ----------------------------------------------------------- */

int kith__negotiate_stanza(kith_conn_t *conn, const kith_stanza_t *st)
{
  const char *ns = kith_stanza_ns(st);
  const char *name = kith_stanza_name(st);

  if (ns && strcmp(ns, KITH_NS_STREAMS) == 0 && strcmp(name, "error") == 0) {
    on_stream_error(conn, st);
    return 1;
  }
  switch (conn->phase) {
  case KITH__PH_HEADER:
    kith__conn_fail(conn, KITH_EPROTO, "stanza before the stream header");
    return 1;
  case KITH__PH_FEATURES:
    if (ns && strcmp(ns, KITH_NS_STREAMS) == 0 && strcmp(name, "features") == 0)
      on_features(conn, st);
    else
      kith__conn_fail(conn, KITH_EPROTO, "expected stream features, got <%s/>",
                      name);
    return 1;
  case KITH__PH_STARTTLS:
    on_starttls_reply(conn, st);
    return 1;
  case KITH__PH_SASL:
    on_sasl_reply(conn, st);
    return 1;
  case KITH__PH_HANDSHAKE:
    on_handshake_reply(conn, st);
    return 1;
  case KITH__PH_BIND:
    /* Only the bind/session iq replies, through iq tracking. */
    if (strcmp(name, "iq") == 0)
      kith__dispatch_stanza(conn, st);
    return 1;
  case KITH__PH_READY:
    return 0;
  }
  return 0;
}

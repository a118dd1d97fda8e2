/*
 * Connections: lifecycle, configuration, I/O, timers and teardown.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/ctx.h"
#include "session/conn.h"
#include "xml/serialize.h"

#define READ_CHUNK 16384
/* Reads per kith_conn_process() call before yielding to other work. */
#define READS_PER_PROCESS 64

uint64_t kith__now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- Creation and configuration ---------------------------------------- */

kith_status_t kith_conn_new(kith_ctx_t *ctx, kith_conn_t **out)
{
  kith_conn_t *conn;
  unsigned char rnd[4];

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  conn = kith__calloc(ctx, 1, sizeof(*conn));
  if (conn == NULL)
    return KITH_ENOMEM;
  conn->ctx = ctx;
  conn->fd = -1;
  conn->iq_timeout_ms = KITH_DEFAULT_IQ_TIMEOUT_MS;
  conn->connect_timeout_ms = KITH_DEFAULT_CONNECT_TIMEOUT_MS;
  conn->close_timeout_ms = KITH_DEFAULT_CLOSE_TIMEOUT_MS;
  conn->max_stanza = KITH_PARSER_DEFAULT_MAX_STANZA;
  conn->max_depth = KITH_PARSER_DEFAULT_MAX_DEPTH;
  conn->reconnect_initial_ms = 1000;
  conn->reconnect_max_ms = 60000;
  kith__dialer_init(&conn->dialer, ctx);
  kith__buf_init(&conn->out, ctx, KITH_DEFAULT_SEND_QUEUE_MAX);
  if (RAND_bytes(rnd, sizeof(rnd)) != 1)
    memset(rnd, 0x5a, sizeof(rnd));
  snprintf(conn->id_prefix, sizeof(conn->id_prefix), "k%02x%02x%02x%02x",
           rnd[0], rnd[1], rnd[2], rnd[3]);
  *out = conn;
  return KITH_OK;
}

kith_ctx_t *kith_conn_ctx(const kith_conn_t *conn)
{
  return conn->ctx;
}

static kith_status_t set_str(kith_conn_t *conn, char **field, const char *v)
{
  char *copy = NULL;

  if (conn->state != KITH__ST_IDLE)
    return KITH_ESTATE;
  if (v && (copy = kith__strdup(conn->ctx, v)) == NULL)
    return KITH_ENOMEM;
  if (*field == conn->password && *field)
    memset(*field, 0, strlen(*field));
  kith__free(conn->ctx, *field);
  *field = copy;
  return KITH_OK;
}

kith_status_t kith_conn_set_jid(kith_conn_t *conn, const char *jid)
{
  kith_jid_t *parsed;
  const char *reason = NULL;
  kith_status_t rc;

  if (conn == NULL || jid == NULL)
    return KITH_EINVAL;
  if (conn->state != KITH__ST_IDLE)
    return KITH_ESTATE;
  rc = kith_jid_parse(conn->ctx, jid, &parsed, &reason);
  if (rc != KITH_OK) {
    snprintf(conn->err, sizeof(conn->err), "invalid JID '%.200s': %s", jid,
             reason ? reason : kith_strerror(rc));
    return rc;
  }
  kith_jid_free(conn->jid);
  conn->jid = parsed;
  return KITH_OK;
}

kith_status_t kith_conn_set_password(kith_conn_t *conn, const char *password)
{
  return conn ? set_str(conn, &conn->password, password) : KITH_EINVAL;
}

kith_status_t kith_conn_set_component(kith_conn_t *conn, const char *domain,
                                      const char *secret)
{
  kith_status_t rc;
  char *norm = NULL;
  const char *reason = NULL;

  if (conn == NULL || domain == NULL || secret == NULL)
    return KITH_EINVAL;
  rc = kith_jid_normalize(conn->ctx, domain, 1, &norm, &reason);
  if (rc != KITH_OK) {
    snprintf(conn->err, sizeof(conn->err), "invalid component domain: %s",
             reason ? reason : kith_strerror(rc));
    return rc;
  }
  rc = set_str(conn, &conn->component_domain, norm);
  kith__free(conn->ctx, norm);
  if (rc == KITH_OK)
    rc = set_str(conn, &conn->secret, secret);
  return rc;
}

kith_status_t kith_conn_set_server(kith_conn_t *conn, const char *host,
                                   unsigned port)
{
  if (conn == NULL || port > 65535)
    return KITH_EINVAL;
  if (conn->state != KITH__ST_IDLE)
    return KITH_ESTATE;
  conn->port = port;
  return set_str(conn, &conn->host, host);
}

kith_status_t kith_conn_set_ca_file(kith_conn_t *conn, const char *path)
{
  return conn ? set_str(conn, &conn->ca_file, path) : KITH_EINVAL;
}

kith_status_t kith_conn_set_insecure_skip_verify(kith_conn_t *conn, int skip)
{
  if (conn == NULL)
    return KITH_EINVAL;
  if (conn->state != KITH__ST_IDLE)
    return KITH_ESTATE;
  conn->insecure = skip != 0;
  return KITH_OK;
}

kith_status_t kith_conn_set_iq_timeout(kith_conn_t *conn, unsigned ms)
{
  if (conn == NULL)
    return KITH_EINVAL;
  conn->iq_timeout_ms = ms ? ms : KITH_DEFAULT_IQ_TIMEOUT_MS;
  return KITH_OK;
}

kith_status_t kith_conn_set_timeouts(kith_conn_t *conn, unsigned connect_ms,
                                     unsigned close_ms)
{
  if (conn == NULL)
    return KITH_EINVAL;
  conn->connect_timeout_ms =
      connect_ms ? connect_ms : KITH_DEFAULT_CONNECT_TIMEOUT_MS;
  conn->close_timeout_ms = close_ms ? close_ms : KITH_DEFAULT_CLOSE_TIMEOUT_MS;
  return KITH_OK;
}

kith_status_t kith_conn_set_limits(kith_conn_t *conn, size_t max_stanza,
                                   unsigned max_depth)
{
  if (conn == NULL)
    return KITH_EINVAL;
  if (max_stanza)
    conn->max_stanza = max_stanza;
  if (max_depth)
    conn->max_depth = max_depth;
  if (conn->parser)
    kith__parser_set_limits(conn->parser, conn->max_stanza, conn->max_depth);
  return KITH_OK;
}

kith_status_t kith_conn_set_reconnect(kith_conn_t *conn, int enable,
                                      unsigned initial_ms, unsigned max_ms)
{
  if (conn == NULL)
    return KITH_EINVAL;
  conn->reconnect = enable != 0;
  conn->reconnect_initial_ms = initial_ms ? initial_ms : 1000;
  conn->reconnect_max_ms = max_ms ? max_ms : 60000;
  if (conn->reconnect_max_ms < conn->reconnect_initial_ms)
    conn->reconnect_max_ms = conn->reconnect_initial_ms;
  return KITH_OK;
}

int kith_conn_is_ready(const kith_conn_t *conn)
{
  return conn && conn->state == KITH__ST_STREAM &&
         conn->phase == KITH__PH_READY;
}

int kith_conn_is_active(const kith_conn_t *conn)
{
  return conn && conn->state != KITH__ST_IDLE;
}

const char *kith_conn_jid(const kith_conn_t *conn)
{
  return conn ? conn->bound_jid : NULL;
}

const kith_stanza_t *kith_conn_features(const kith_conn_t *conn)
{
  return conn && kith_conn_is_ready(conn) ? conn->features : NULL;
}

int kith_conn_is_component(const kith_conn_t *conn)
{
  return conn && conn->component_domain != NULL;
}

const char *kith_conn_tls_info(const kith_conn_t *conn)
{
  return conn && conn->tls_active ? conn->tls_info : NULL;
}

const char *kith_conn_sasl_mechanism(const kith_conn_t *conn)
{
  return conn && conn->authenticated ? conn->sasl_mech : NULL;
}

const char *kith_conn_error_text(const kith_conn_t *conn)
{
  return conn ? conn->err : "";
}

const char *kith_conn_new_id(kith_conn_t *conn, char *buf, size_t size)
{
  snprintf(buf, size, "%s-%lu", conn->id_prefix, ++conn->id_counter);
  return buf;
}

/* ---- Teardown ----------------------------------------------------------- */

/* Close the socket and drop per-connection state; keep the configuration,
 * the handlers and the pending iqs (the caller cancels those). */
static void drop_transport(kith_conn_t *conn)
{
  if (conn->tls) {
    kith__tls_shutdown(conn->tls);
    kith__tls_free(conn->tls);
    conn->tls = NULL;
  }
  if (conn->fd >= 0)
    close(conn->fd);
  conn->fd = -1;
  kith__dialer_free(&conn->dialer);
  kith__parser_free(conn->parser);
  conn->parser = NULL;
  kith__buf_free(&conn->out);
  kith__negotiate_reset(conn);
  conn->tls_active = conn->authenticated = 0;
  conn->deadline = 0;
  conn->ending = 0;
  conn->more_to_read = 0;
  conn->fail_status = KITH_OK;
  conn->fail_text[0] = '\0';
}

static int should_reconnect(const kith_conn_t *conn, kith_status_t status)
{
  if (!conn->reconnect || conn->close_requested)
    return 0;
  /* Retrying cannot fix credentials or an untrusted certificate. */
  return status != KITH_OK && status != KITH_EAUTH && status != KITH_ECERT;
}

/* End the connection: close, cancel iqs, fire DISCONNECTED, and schedule a
 * reconnect when that is configured. */
static void end_connection(kith_conn_t *conn, kith_status_t status,
                           const char *text)
{
  char msg[sizeof(conn->err)];
  int was_ready = kith_conn_is_ready(conn);

  snprintf(msg, sizeof(msg), "%s",
           text && *text ? text : kith_strerror(status));
  if (status != KITH_OK)
    kith__info(conn->ctx, "session", "disconnected: %s", msg);
  drop_transport(conn);
  conn->end_status = status;
  snprintf(conn->err, sizeof(conn->err), "%s", msg);
  if (should_reconnect(conn, status)) {
    conn->state = KITH__ST_RECONNECT_WAIT;
    if (conn->reconnect_delay_ms == 0 || was_ready)
      conn->reconnect_delay_ms = conn->reconnect_initial_ms;
    conn->reconnect_at = kith__now_ms() + conn->reconnect_delay_ms;
  } else {
    conn->state = KITH__ST_IDLE;
  }
  conn->close_requested = 0;
  kith__iq_cancel_all(conn, KITH_ECANCELED);
  kith__emit_simple(conn, KITH_EVENT_DISCONNECTED, status, msg, NULL);
  if (conn->state == KITH__ST_RECONNECT_WAIT) {
    kith_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = KITH_EVENT_RECONNECT_SCHEDULED;
    ev.status = status;
    ev.text = msg;
    ev.delay_ms = (long)conn->reconnect_delay_ms;
    kith__emit(conn, &ev);
    /* The next failure waits twice as long, up to the maximum. */
    conn->reconnect_delay_ms =
        conn->reconnect_delay_ms > conn->reconnect_max_ms / 2
            ? conn->reconnect_max_ms
            : conn->reconnect_delay_ms * 2;
  }
}

void kith_conn_free(kith_conn_t *conn)
{
  if (conn == NULL)
    return;
  drop_transport(conn);
  conn->state = KITH__ST_IDLE;
  kith__iq_cancel_all(conn, KITH_ECANCELED);
  kith__conn_run_free_hooks(conn);
  kith__handlers_free(conn);
  kith_jid_free(conn->jid);
  if (conn->password)
    memset(conn->password, 0, strlen(conn->password));
  if (conn->secret)
    memset(conn->secret, 0, strlen(conn->secret));
  kith__free(conn->ctx, conn->password);
  kith__free(conn->ctx, conn->component_domain);
  kith__free(conn->ctx, conn->secret);
  kith__free(conn->ctx, conn->host);
  kith__free(conn->ctx, conn->ca_file);
  kith__free(conn->ctx, conn->bound_jid);
  kith__free(conn->ctx, conn->stream_ns);
  kith__free(conn->ctx, conn);
}

void kith__conn_fail(kith_conn_t *conn, kith_status_t status, const char *fmt,
                     ...)
{
  va_list ap;

  if (conn->ending)
    return; /* the first reason is the one worth reporting */
  conn->ending = 1;
  conn->fail_status = status;
  va_start(ap, fmt);
  vsnprintf(conn->fail_text, sizeof(conn->fail_text), fmt, ap);
  va_end(ap);
  if (conn->parser)
    kith__parser_stop(conn->parser);
}

/* ---- Writing ------------------------------------------------------------ */

kith_status_t kith__conn_write(kith_conn_t *conn, const char *data, size_t len)
{
  kith_status_t rc;

  if (conn->fd < 0)
    return KITH_ESTATE;
  rc = kith__buf_add(&conn->out, data, len);
  if (rc == KITH_OK && kith__log_enabled(conn->ctx, KITH_LOG_TRACE))
    kith__log(conn->ctx, KITH_LOG_TRACE, "xml", "SEND %.*s", (int)len, data);
  return rc;
}

kith_status_t kith__conn_write_stanza(kith_conn_t *conn,
                                      const kith_stanza_t *st)
{
  size_t before = conn->out.len;
  kith_status_t rc;
  const char *ns = conn->component_domain ? KITH_NS_COMPONENT : KITH_NS_CLIENT;

  if (conn->fd < 0)
    return KITH_ESTATE;
  rc = kith__xml_serialize(&conn->out, st, ns);
  if (rc != KITH_OK) {
    /* Never leave half a stanza in the queue. */
    conn->out.len = before;
    if (conn->out.data)
      conn->out.data[before] = '\0';
    return rc;
  }
  if (kith__log_enabled(conn->ctx, KITH_LOG_TRACE))
    kith__log(conn->ctx, KITH_LOG_TRACE, "xml", "SEND %s",
              conn->out.data + before);
  return KITH_OK;
}

kith_status_t kith_conn_send(kith_conn_t *conn, const kith_stanza_t *stanza)
{
  if (conn == NULL || stanza == NULL)
    return KITH_EINVAL;
  if (!kith_conn_is_ready(conn))
    return KITH_ESTATE;
  return kith__conn_write_stanza(conn, stanza);
}

/* Write out what the queue holds. Returns KITH_OK (maybe with data left),
 * or an error that ends the connection. */
static kith_status_t flush(kith_conn_t *conn)
{
  while (conn->out.len > 0) {
    size_t n = 0;
    kith_status_t rc;

    if (conn->tls) {
      rc = kith__tls_write(conn->tls, conn->out.data, conn->out.len, &n);
      if (rc == KITH_EAGAIN)
        return KITH_OK;
      if (rc != KITH_OK) {
        snprintf(conn->err, sizeof(conn->err), "%s",
                 kith__tls_error(conn->tls));
        return rc;
      }
    } else {
      ssize_t w = send(conn->fd, conn->out.data, conn->out.len, MSG_NOSIGNAL);
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return KITH_OK;
      if (w < 0) {
        snprintf(conn->err, sizeof(conn->err), "write failed: %s",
                 strerror(errno));
        return KITH_EIO;
      }
      n = (size_t)w;
    }
    kith__buf_consume(&conn->out, n);
  }
  return KITH_OK;
}

/* ---- Stream set-up ------------------------------------------------------ */

static void on_stream_start(void *ud, const kith_stanza_t *root)
{
  kith__negotiate_stream_start(ud, root);
}

static void on_stanza(void *ud, kith_stanza_t *st)
{
  kith_conn_t *conn = ud;

  if (kith__log_enabled(conn->ctx, KITH_LOG_TRACE)) {
    char *xml = NULL;
    if (kith_stanza_to_string(st, NULL, &xml, NULL) == KITH_OK)
      kith__log(conn->ctx, KITH_LOG_TRACE, "xml", "RECV %s", xml);
    kith__free(conn->ctx, xml);
  }
  if (!kith__negotiate_stanza(conn, st) && kith_conn_is_ready(conn))
    kith__dispatch_stanza(conn, st);
  kith_stanza_free(st);
}

static void on_stream_end(void *ud)
{
  kith_conn_t *conn = ud;

  if (conn->state == KITH__ST_CLOSING) {
    kith__conn_fail(conn, KITH_OK, "disconnected");
    return;
  }
  /* Answer the peer's close before going away (RFC 6120 4.4). */
  kith__conn_write(conn, "</stream:stream>", 16);
  flush(conn);
  kith__conn_fail(conn, KITH_ECLOSED, "the server closed the stream");
}

/* Items streamed by the parser: only a ready session has requests that
 * a roster result could answer. */
static void on_item(void *ud, const kith_stanza_t *shell,
                    const kith_stanza_t *item)
{
  kith_conn_t *conn = ud;

  if (conn->stream_cb && !conn->ending && kith_conn_is_ready(conn))
    conn->stream_cb(conn->stream_ud, shell, item);
}

kith_status_t kith__conn_set_item_stream(kith_conn_t *conn, const char *ns,
                                         kith__parser_item_cb cb, void *ud)
{
  char *copy = NULL;

  if (conn == NULL || (cb && ns == NULL))
    return KITH_EINVAL;
  if (cb && (copy = kith__strdup(conn->ctx, ns)) == NULL)
    return KITH_ENOMEM;
  if (conn->parser) {
    kith_status_t rc = kith__parser_set_item_stream(conn->parser, copy,
                                                    cb ? on_item : NULL, conn);
    if (rc != KITH_OK) {
      kith__free(conn->ctx, copy);
      return rc;
    }
  }
  kith__free(conn->ctx, conn->stream_ns);
  conn->stream_ns = copy;
  conn->stream_cb = cb;
  conn->stream_ud = cb ? ud : NULL;
  return KITH_OK;
}

/* Send our stream header for a new stream (initial or restarted). */
kith_status_t kith__conn_open_stream(kith_conn_t *conn)
{
  static const kith__parser_cbs_t cbs = {on_stream_start, on_stanza,
                                         on_stream_end};
  kith__buf_t *b = &conn->out;
  const char *to = conn->component_domain ? conn->component_domain
                                          : kith_jid_domain(conn->jid);
  kith_status_t rc;

  if (conn->parser == NULL) {
    rc = kith__parser_new(conn->ctx, &cbs, conn, &conn->parser);
    if (rc == KITH_OK && conn->stream_cb)
      rc = kith__parser_set_item_stream(conn->parser, conn->stream_ns, on_item,
                                        conn);
    if (rc != KITH_OK) {
      kith__parser_free(conn->parser);
      conn->parser = NULL;
      return rc;
    }
    kith__parser_set_limits(conn->parser, conn->max_stanza, conn->max_depth);
  } else if ((rc = kith__parser_reset(conn->parser)) != KITH_OK) {
    return rc;
  }
  conn->phase = KITH__PH_HEADER;
  rc = kith__buf_adds(b, "<?xml version='1.0'?><stream:stream xmlns='");
  if (rc == KITH_OK)
    rc = kith__buf_adds(b, conn->component_domain ? KITH_NS_COMPONENT
                                                  : KITH_NS_CLIENT);
  if (rc == KITH_OK)
    rc = kith__buf_adds(b, "' xmlns:stream='" KITH_NS_STREAMS "' to='");
  if (rc == KITH_OK)
    rc = kith__xml_escape(b, to, strlen(to), 1);
  if (rc == KITH_OK && !conn->component_domain && conn->tls_active) {
    /* RFC 6120 4.7.1: say who we are once the channel is encrypted. */
    const char *from = kith_jid_bare(conn->jid);
    rc = kith__buf_adds(b, "' from='");
    if (rc == KITH_OK)
      rc = kith__xml_escape(b, from, strlen(from), 1);
  }
  if (rc == KITH_OK)
    rc = kith__buf_adds(
        b, conn->component_domain ? "'>" : "' version='1.0' xml:lang='en'>");
  return rc;
}

kith_status_t kith__conn_start_tls(kith_conn_t *conn)
{
  char err[512] = "";
  kith_status_t rc;
  const char *name = kith_jid_domain(conn->jid);

  if (conn->insecure)
    kith__warn(conn->ctx, "tls",
               "certificate verification is OFF for %s (testing only)", name);
  rc = kith__tls_new(conn->ctx, conn->fd, name, conn->ca_file, !conn->insecure,
                     &conn->tls, err, sizeof(err));
  if (rc != KITH_OK) {
    kith__conn_fail(conn, rc, "%s", err);
    return rc;
  }
  conn->state = KITH__ST_TLS;
  kith__parser_stop(conn->parser);
  return KITH_OK;
}

void kith__conn_ready(kith_conn_t *conn)
{
  conn->phase = KITH__PH_READY;
  conn->deadline = 0;
  conn->reconnect_delay_ms = 0;
  kith__info(conn->ctx, "session", "session started as %s", conn->bound_jid);
  kith__emit_simple(conn, KITH_EVENT_SESSION_START, KITH_OK, NULL,
                    conn->bound_jid);
}

/* ---- Connecting --------------------------------------------------------- */

static kith_status_t start_connect(kith_conn_t *conn)
{
  const char *domain;
  kith_status_t rc;

  conn->ending = 0;
  conn->fail_status = KITH_OK;
  conn->close_requested = 0;
  kith__buf_init(&conn->out, conn->ctx, KITH_DEFAULT_SEND_QUEUE_MAX);
  kith__dialer_init(&conn->dialer, conn->ctx);
  if (conn->component_domain) {
    domain = conn->component_domain;
    rc = kith__dialer_resolve(&conn->dialer, domain, conn->host, conn->port,
                              NULL, 5347);
  } else {
    domain = kith_jid_domain(conn->jid);
    rc = kith__dialer_resolve(&conn->dialer, domain, conn->host, conn->port,
                              "xmpp-client", 5222);
  }
  if (rc != KITH_OK) {
    snprintf(conn->err, sizeof(conn->err), "%s", conn->dialer.err);
    kith__dialer_free(&conn->dialer);
    return rc;
  }
  conn->state = KITH__ST_CONNECTING;
  conn->deadline = kith__now_ms() + conn->connect_timeout_ms;
  return KITH_OK;
}

kith_status_t kith_conn_connect(kith_conn_t *conn)
{
  if (conn == NULL)
    return KITH_EINVAL;
  if (conn->state != KITH__ST_IDLE)
    return KITH_ESTATE;
  if (conn->component_domain) {
    if (conn->host == NULL) {
      snprintf(conn->err, sizeof(conn->err),
               "a component needs an explicit server host");
      return KITH_EINVAL;
    }
  } else if (conn->jid == NULL || kith_jid_local(conn->jid) == NULL ||
             conn->password == NULL) {
    snprintf(conn->err, sizeof(conn->err),
             "a client needs a JID with a localpart and a password");
    return KITH_EINVAL;
  }
  conn->err[0] = '\0';
  conn->reconnect_delay_ms = 0;
  return start_connect(conn);
}

kith_status_t kith__conn_adopt_fd(kith_conn_t *conn, int fd)
{
  kith_status_t rc;

  if (conn->state != KITH__ST_IDLE)
    return KITH_ESTATE;
  kith__buf_init(&conn->out, conn->ctx, KITH_DEFAULT_SEND_QUEUE_MAX);
  conn->ending = 0;
  conn->close_requested = 0;
  conn->fd = fd;
  conn->state = KITH__ST_STREAM;
  conn->deadline = kith__now_ms() + conn->connect_timeout_ms;
  rc = kith__conn_open_stream(conn);
  if (rc != KITH_OK) {
    drop_transport(conn);
    conn->state = KITH__ST_IDLE;
  }
  return rc;
}

void kith__conn_test_assume_tls(kith_conn_t *conn)
{
  conn->tls_active = 1;
}

kith_status_t kith__conn_test_ready(kith_conn_t *conn, const char *bound_jid,
                                    const kith_stanza_t *features)
{
  kith_status_t rc = KITH_OK;

  if (conn->state != KITH__ST_STREAM)
    return KITH_ESTATE;
  kith_stanza_free(conn->features);
  conn->features = NULL;
  if (features)
    rc = kith_stanza_copy(features, &conn->features);
  if (rc == KITH_OK) {
    kith__free(conn->ctx, conn->bound_jid);
    conn->bound_jid = kith__strdup(conn->ctx, bound_jid);
    rc = conn->bound_jid ? KITH_OK : KITH_ENOMEM;
  }
  if (rc != KITH_OK)
    return rc;
  conn->authenticated = 1;
  kith__conn_ready(conn);
  return KITH_OK;
}

void kith_conn_disconnect(kith_conn_t *conn)
{
  if (conn == NULL)
    return;
  switch (conn->state) {
  case KITH__ST_IDLE:
  case KITH__ST_CLOSING:
    return;
  case KITH__ST_RECONNECT_WAIT:
    conn->state = KITH__ST_IDLE;
    return;
  case KITH__ST_STREAM:
    conn->close_requested = 1;
    kith__conn_write(conn, "</stream:stream>", 16);
    conn->state = KITH__ST_CLOSING;
    conn->deadline = kith__now_ms() + conn->close_timeout_ms;
    return;
  default:
    /* Nothing was said on the stream yet: just close. */
    conn->close_requested = 1;
    kith__conn_fail(conn, KITH_OK, "disconnected before the stream opened");
    return;
  }
}

/* ---- Processing --------------------------------------------------------- */

static void step_connecting(kith_conn_t *conn)
{
  int fd = -1;
  kith_status_t rc = kith__dialer_step(&conn->dialer, &fd);

  if (rc == KITH_EAGAIN)
    return;
  if (rc != KITH_OK) {
    kith__conn_fail(conn, KITH_ECONNECT, "%s", conn->dialer.err);
    return;
  }
  conn->fd = fd;
  kith__dialer_free(&conn->dialer);
  kith__emit_simple(conn, KITH_EVENT_CONNECTED, KITH_OK, NULL, NULL);
  conn->state = KITH__ST_STREAM;
  rc = kith__conn_open_stream(conn);
  if (rc != KITH_OK)
    kith__conn_fail(conn, rc, "cannot open the stream");
}

static void step_tls(kith_conn_t *conn)
{
  char desc[128];
  kith_status_t rc = kith__tls_handshake(conn->tls);

  if (rc == KITH_EAGAIN)
    return;
  if (rc != KITH_OK) {
    kith__conn_fail(conn, rc, "%s", kith__tls_error(conn->tls));
    return;
  }
  kith__tls_describe(conn->tls, desc, sizeof(desc));
  snprintf(conn->tls_info, sizeof(conn->tls_info), "%s", desc);
  kith__info(conn->ctx, "tls", "TLS established: %s", desc);
  conn->tls_active = 1;
  conn->state = KITH__ST_STREAM;
  rc = kith__conn_open_stream(conn);
  if (rc != KITH_OK)
    kith__conn_fail(conn, rc, "cannot restart the stream");
}

/* Send a stream error for a parse failure, then end. */
static void parse_failed(kith_conn_t *conn, kith_status_t rc)
{
  const char *cond = kith__parser_error_condition(conn->parser);
  const char *text = kith__parser_error_text(conn->parser);

  if (cond) {
    kith__buf_adds(&conn->out, "<stream:error><");
    kith__buf_adds(&conn->out, cond);
    kith__buf_adds(&conn->out, " xmlns='" KITH_NS_STREAM_ERRORS
                               "'/></stream:error></stream:stream>");
    flush(conn);
  }
  kith__conn_fail(conn, rc, "%s: %s", cond ? cond : "xml",
                  text ? text : kith_strerror(rc));
}

static void step_read(kith_conn_t *conn)
{
  char buf[READ_CHUNK];
  int i;

  for (i = 0; i < READS_PER_PROCESS; i++) {
    size_t n = 0;
    kith_status_t rc;

    if (conn->tls) {
      rc = kith__tls_read(conn->tls, buf, sizeof(buf), &n);
    } else {
      ssize_t r = recv(conn->fd, buf, sizeof(buf), 0);
      rc = KITH_OK;
      if (r > 0)
        n = (size_t)r;
      else if (r == 0)
        rc = KITH_ECLOSED;
      else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        rc = KITH_EAGAIN;
      else
        rc = KITH_EIO;
    }
    if (rc == KITH_EAGAIN)
      return;
    if (rc != KITH_OK) {
      if (conn->state == KITH__ST_CLOSING)
        kith__conn_fail(conn, KITH_OK, "disconnected");
      else if (rc == KITH_ECLOSED)
        kith__conn_fail(conn, KITH_ECLOSED, "the server closed the connection");
      else
        kith__conn_fail(conn, rc, "read failed: %s",
                        conn->tls ? kith__tls_error(conn->tls)
                                  : strerror(errno));
      return;
    }
    if (kith__log_enabled(conn->ctx, KITH_LOG_TRACE))
      kith__log(conn->ctx, KITH_LOG_TRACE, "xml", "RECV-RAW %.*s", (int)n, buf);
    rc = kith__parser_feed(conn->parser, buf, n);
    if (rc != KITH_OK && !conn->ending) {
      parse_failed(conn, rc);
      return;
    }
    /* A callback may have changed the state (STARTTLS) or ended it. */
    if (conn->ending || conn->state == KITH__ST_TLS || conn->fd < 0)
      return;
  }
  conn->more_to_read = 1;
}

static void check_timers(kith_conn_t *conn, uint64_t now)
{
  if (conn->deadline && now >= conn->deadline) {
    if (conn->state == KITH__ST_CLOSING)
      kith__conn_fail(conn, KITH_OK,
                      "disconnected (the server did not "
                      "close its stream in time)");
    else
      kith__conn_fail(conn, KITH_ETIMEDOUT,
                      "no session within %u ms of connecting",
                      conn->connect_timeout_ms);
  }
  if (conn->state == KITH__ST_STREAM || conn->state == KITH__ST_CLOSING)
    kith__iq_expire(conn, now);
}

kith_status_t kith_conn_process(kith_conn_t *conn, int ready)
{
  uint64_t now;
  kith_status_t rc;

  if (conn == NULL)
    return KITH_EINVAL;
  now = kith__now_ms();
  switch (conn->state) {
  case KITH__ST_IDLE:
    return KITH_OK;
  case KITH__ST_RECONNECT_WAIT:
    if (now < conn->reconnect_at)
      return KITH_OK;
    kith__info(conn->ctx, "session", "reconnecting");
    rc = start_connect(conn);
    if (rc != KITH_OK)
      end_connection(conn, rc, conn->err);
    return rc;
  case KITH__ST_CONNECTING:
    step_connecting(conn);
    break;
  case KITH__ST_TLS:
    step_tls(conn);
    break;
  case KITH__ST_STREAM:
  case KITH__ST_CLOSING:
    if ((ready & KITH_IO_READ) || conn->more_to_read ||
        (conn->tls && kith__tls_want(conn->tls) == KITH_IO_WRITE)) {
      conn->more_to_read = 0;
      step_read(conn);
    }
    break;
  }
  /* STARTTLS <proceed/> arrived: start the handshake at once. */
  if (conn->state == KITH__ST_TLS && !conn->ending && conn->tls &&
      !conn->tls_active)
    step_tls(conn);
  if (!conn->ending)
    check_timers(conn, now);
  if (!conn->ending && conn->fd >= 0 && conn->out.len &&
      conn->state != KITH__ST_CONNECTING && conn->state != KITH__ST_TLS) {
    rc = flush(conn);
    if (rc != KITH_OK)
      kith__conn_fail(conn, rc, "%s", conn->err);
  }
  if (conn->ending) {
    char text[sizeof(conn->fail_text)];
    rc = conn->fail_status;
    memcpy(text, conn->fail_text, sizeof(text));
    end_connection(conn, rc, text);
    return rc;
  }
  return KITH_OK;
}

/* ---- Loop hooks --------------------------------------------------------- */

int kith_conn_fd(const kith_conn_t *conn)
{
  if (conn == NULL)
    return -1;
  if (conn->state == KITH__ST_CONNECTING)
    return conn->dialer.fd;
  return conn->fd;
}

int kith_conn_want(const kith_conn_t *conn)
{
  if (conn == NULL)
    return 0;
  switch (conn->state) {
  case KITH__ST_CONNECTING:
    return KITH_IO_WRITE;
  case KITH__ST_TLS:
    return kith__tls_want(conn->tls);
  case KITH__ST_STREAM:
  case KITH__ST_CLOSING:
    return KITH_IO_READ | (conn->out.len ? KITH_IO_WRITE : 0);
  default:
    return 0;
  }
}

static long until(uint64_t when, uint64_t now)
{
  return when <= now ? 0 : (long)(when - now);
}

long kith_conn_timeout(const kith_conn_t *conn)
{
  uint64_t now = kith__now_ms(), next = 0;

  if (conn == NULL || conn->state == KITH__ST_IDLE)
    return -1;
  if (conn->ending || conn->more_to_read)
    return 0;
  /* Connecting, but the dialer has not opened its socket yet (just after
   * kith_conn_connect() or a reconnect): there is no fd to wait on, so
   * kith_conn_process() must run at once to open it. */
  if (conn->state == KITH__ST_CONNECTING && conn->dialer.fd < 0)
    return 0;
  if (conn->state == KITH__ST_RECONNECT_WAIT)
    return until(conn->reconnect_at, now);
  next = conn->deadline;
  if (kith__iq_next_deadline(conn) &&
      (next == 0 || kith__iq_next_deadline(conn) < next))
    next = kith__iq_next_deadline(conn);
  return next ? until(next, now) : -1;
}

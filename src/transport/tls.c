/*
 * TLS client on OpenSSL 3.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kith/conn.h"
#include "core/ctx.h"
#include "transport/tls.h"

struct kith__tls {
  kith_ctx_t *ctx;
  SSL_CTX *sslctx;
  SSL *ssl;
  int want;
  char server_name[256];
  char err[512];
};

static void set_openssl_error(kith__tls_t *t, const char *what)
{
  unsigned long e = ERR_get_error();
  char buf[256];

  if (e) {
    ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(t->err, sizeof(t->err), "%s: %s", what, buf);
  } else {
    snprintf(t->err, sizeof(t->err), "%s", what);
  }
  ERR_clear_error();
}

kith_status_t kith__tls_new(kith_ctx_t *ctx, int fd, const char *server_name,
                            const char *ca_file, int verify, kith__tls_t **out,
                            char *err, size_t errlen)
{
  kith__tls_t *t = kith__calloc(ctx, 1, sizeof(*t));

  *out = NULL;
  if (t == NULL)
    return KITH_ENOMEM;
  t->ctx = ctx;
  snprintf(t->server_name, sizeof(t->server_name), "%s", server_name);
  t->sslctx = SSL_CTX_new(TLS_client_method());
  if (t->sslctx == NULL)
    goto fail;
  SSL_CTX_set_min_proto_version(t->sslctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(t->sslctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (ca_file) {
    if (SSL_CTX_load_verify_locations(t->sslctx, ca_file, NULL) != 1) {
      set_openssl_error(t, "cannot load CA file");
      snprintf(err, errlen, "%s (%s)", t->err, ca_file);
      kith__tls_free(t);
      return KITH_ETLS;
    }
  } else {
    SSL_CTX_set_default_verify_paths(t->sslctx);
  }
  SSL_CTX_set_verify(t->sslctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                     NULL);
  t->ssl = SSL_new(t->sslctx);
  if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1)
    goto fail;
  SSL_set_tlsext_host_name(t->ssl, server_name);
  if (verify && SSL_set1_host(t->ssl, server_name) != 1)
    goto fail;
  SSL_set_connect_state(t->ssl);
  *out = t;
  return KITH_OK;
fail:
  set_openssl_error(t, "cannot set up TLS");
  snprintf(err, errlen, "%s", t->err);
  kith__tls_free(t);
  return KITH_ETLS;
}

void kith__tls_free(kith__tls_t *t)
{
  if (t == NULL)
    return;
  SSL_free(t->ssl);
  SSL_CTX_free(t->sslctx);
  kith__free(t->ctx, t);
}

/* Map an SSL_* return code. */
static kith_status_t check(kith__tls_t *t, int ret, const char *what)
{
  int e = SSL_get_error(t->ssl, ret);

  switch (e) {
  case SSL_ERROR_WANT_READ:
    t->want = KITH_IO_READ;
    return KITH_EAGAIN;
  case SSL_ERROR_WANT_WRITE:
    t->want = KITH_IO_WRITE;
    return KITH_EAGAIN;
  case SSL_ERROR_ZERO_RETURN:
    snprintf(t->err, sizeof(t->err), "the peer closed the TLS session");
    return KITH_ECLOSED;
  case SSL_ERROR_SYSCALL:
    if (ERR_peek_error() == 0) {
      snprintf(t->err, sizeof(t->err), "%s: connection closed by peer", what);
      return KITH_ECLOSED;
    }
    /* fall through */
  default:
    set_openssl_error(t, what);
    return KITH_ETLS;
  }
}

kith_status_t kith__tls_handshake(kith__tls_t *t)
{
  int ret = SSL_do_handshake(t->ssl);
  long vr;
  kith_status_t rc;

  if (ret == 1)
    return KITH_OK;
  rc = check(t, ret, "TLS handshake failed");
  if (rc == KITH_EAGAIN)
    return rc;
  vr = SSL_get_verify_result(t->ssl);
  if (vr != X509_V_OK) {
    snprintf(t->err, sizeof(t->err),
             "certificate verification failed for %s: %s", t->server_name,
             X509_verify_cert_error_string(vr));
    ERR_clear_error();
    return KITH_ECERT;
  }
  return rc == KITH_ECLOSED ? KITH_ETLS : rc;
}

int kith__tls_want(const kith__tls_t *t)
{
  return t->want ? t->want : KITH_IO_READ;
}

kith_status_t kith__tls_read(kith__tls_t *t, char *buf, size_t cap, size_t *n)
{
  size_t got = 0;
  int ret = SSL_read_ex(t->ssl, buf, cap, &got);

  *n = 0;
  if (ret == 1) {
    *n = got;
    return KITH_OK;
  }
  return check(t, ret, "TLS read failed");
}

kith_status_t kith__tls_write(kith__tls_t *t, const char *buf, size_t len,
                              size_t *n)
{
  size_t put = 0;
  int ret = SSL_write_ex(t->ssl, buf, len, &put);

  *n = 0;
  if (ret == 1) {
    *n = put;
    return KITH_OK;
  }
  return check(t, ret, "TLS write failed");
}

void kith__tls_shutdown(kith__tls_t *t)
{
  if (t && t->ssl && SSL_is_init_finished(t->ssl))
    SSL_shutdown(t->ssl);
  ERR_clear_error();
}

kith_status_t kith__tls_channel_binding(kith__tls_t *t, const char **type,
                                        unsigned char *out, size_t cap,
                                        size_t *len)
{
  static const char label[] = "EXPORTER-Channel-Binding";

  if (SSL_version(t->ssl) >= TLS1_3_VERSION) {
    if (cap < 32 ||
        SSL_export_keying_material(t->ssl, out, 32, label, sizeof(label) - 1,
                                   NULL, 0, 0) != 1) {
      ERR_clear_error();
      return KITH_EUNSUPPORTED;
    }
    *type = "tls-exporter";
    *len = 32;
    return KITH_OK;
  }
  /* tls-unique: the first Finished message of the handshake, which is the
   * client's own on a full (non-resumed) handshake. */
  if (SSL_session_reused(t->ssl))
    return KITH_EUNSUPPORTED;
  *len = SSL_get_finished(t->ssl, out, cap);
  if (*len == 0 || *len > cap)
    return KITH_EUNSUPPORTED;
  *type = "tls-unique";
  return KITH_OK;
}

const char *kith__tls_describe(kith__tls_t *t, char *buf, size_t size)
{
  snprintf(buf, size, "%s %s", SSL_get_version(t->ssl),
           SSL_get_cipher_name(t->ssl));
  return buf;
}

const char *kith__tls_error(const kith__tls_t *t)
{
  return t->err;
}

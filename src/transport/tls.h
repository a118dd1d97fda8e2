/*
 * Internal: TLS over a connected non-blocking socket (OpenSSL 3).
 *
 * Verification is on by default: the chain against the CA file (or the
 * system store) and the host name against the server's domain. Turning it
 * off is for tests only and is logged as a warning by the caller.
 */
#ifndef KITH_TRANSPORT_TLS_H
#define KITH_TRANSPORT_TLS_H

#include <stddef.h>
#include "kith/ctx.h"

typedef struct kith__tls kith__tls_t;

kith_status_t kith__tls_new(kith_ctx_t *ctx, int fd, const char *server_name,
                            const char *ca_file, int verify, kith__tls_t **out,
                            char *err, size_t errlen);
void kith__tls_free(kith__tls_t *t);

/* Drive the handshake: KITH_OK when done, KITH_EAGAIN to wait for
 * kith__tls_want(), KITH_ECERT (verification) or KITH_ETLS otherwise, with
 * kith__tls_error() saying why. */
kith_status_t kith__tls_handshake(kith__tls_t *t);

/* KITH_IO_READ or KITH_IO_WRITE: what the last operation that returned
 * KITH_EAGAIN is waiting for. */
int kith__tls_want(const kith__tls_t *t);

/* Read: KITH_OK with *n > 0, KITH_EAGAIN, KITH_ECLOSED (peer closed), or
 * KITH_ETLS. */
kith_status_t kith__tls_read(kith__tls_t *t, char *buf, size_t cap, size_t *n);
/* Write: KITH_OK with *n > 0 bytes taken, KITH_EAGAIN, or KITH_ETLS. */
kith_status_t kith__tls_write(kith__tls_t *t, const char *buf, size_t len,
                              size_t *n);

/* Send close_notify (best effort, never blocks). */
void kith__tls_shutdown(kith__tls_t *t);

/*
 * Channel binding data for SCRAM-PLUS: "tls-exporter" (RFC 9266) under
 * TLS 1.3, "tls-unique" (RFC 5929) under TLS 1.2. Writes at most `cap`
 * bytes into `out`. Returns KITH_OK, or KITH_EUNSUPPORTED.
 */
kith_status_t kith__tls_channel_binding(kith__tls_t *t, const char **type,
                                        unsigned char *out, size_t cap,
                                        size_t *len);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" and the like, for logs. */
const char *kith__tls_describe(kith__tls_t *t, char *buf, size_t size);
const char *kith__tls_error(const kith__tls_t *t);

#endif /* KITH_TRANSPORT_TLS_H */

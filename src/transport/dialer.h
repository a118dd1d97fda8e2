/*
 * Internal: finding and connecting to the server.
 *
 * Resolution (blocking, at connect time only): an explicit host and port
 * when given; otherwise the SRV records for `_SERVICE._tcp.DOMAIN` in
 * priority order, falling back to DOMAIN on the default port (RFC 6120
 * 3.2). Every address of every target is then tried in turn with a
 * non-blocking connect.
 */
#ifndef KITH_TRANSPORT_DIALER_H
#define KITH_TRANSPORT_DIALER_H

#include <stddef.h>
#include <sys/socket.h>
#include "kith/ctx.h"

typedef struct kith__dial_addr {
  struct sockaddr_storage sa;
  socklen_t salen;
  char label[320]; /* "host:port (address)" for messages */
} kith__dial_addr_t;

typedef struct kith__dialer {
  kith_ctx_t *ctx;
  kith__dial_addr_t *addrs;
  size_t n;
  size_t next; /* the next address to try */
  int fd;      /* the socket being connected, or -1 */
  char err[512];
} kith__dialer_t;

void kith__dialer_init(kith__dialer_t *d, kith_ctx_t *ctx);
void kith__dialer_free(kith__dialer_t *d); /* closes an unfinished socket */

/* Resolve the targets. `host` NULL means SRV lookup of `service` for
 * `domain`. Returns KITH_OK, KITH_ERESOLVE (d->err says why), KITH_ENOMEM. */
kith_status_t kith__dialer_resolve(kith__dialer_t *d, const char *domain,
                                   const char *host, unsigned port,
                                   const char *service, unsigned default_port);

/*
 * Advance. Returns KITH_OK with *fd set when a connection is established
 * (the caller now owns the fd), KITH_EAGAIN with *fd the socket to wait on
 * for writability, or KITH_ECONNECT when every address failed (d->err).
 */
kith_status_t kith__dialer_step(kith__dialer_t *d, int *fd);

#endif /* KITH_TRANSPORT_DIALER_H */

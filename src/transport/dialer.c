/*
 * Resolving (SRV, then A/AAAA) and non-blocking connect.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx.h"
#include "transport/dialer.h"

#define MAX_SRV 16
#define MAX_ADDRS 64

typedef struct srv_target {
  unsigned priority, weight, port;
  char host[NS_MAXDNAME];
} srv_target_t;

void kith__dialer_init(kith__dialer_t *d, kith_ctx_t *ctx)
{
  memset(d, 0, sizeof(*d));
  d->ctx = ctx;
  d->fd = -1;
}

void kith__dialer_free(kith__dialer_t *d)
{
  if (d->fd >= 0)
    close(d->fd);
  d->fd = -1;
  kith__free(d->ctx, d->addrs);
  d->addrs = NULL;
  d->n = d->next = 0;
}

static int srv_cmp(const void *a, const void *b)
{
  const srv_target_t *x = a, *y = b;

  if (x->priority != y->priority)
    return x->priority < y->priority ? -1 : 1;
  /* Within a priority, heavier targets first: a deterministic stand-in for
   * RFC 2782's weighted random choice, good enough for a client. */
  if (x->weight != y->weight)
    return x->weight > y->weight ? -1 : 1;
  return 0;
}

/* Look up SRV records. Returns the number found (0 when there are none or
 * the lookup failed, which means: fall back to the domain), or -1 when the
 * domain says the service is decidedly not available (target "."). */
static int lookup_srv(const char *service, const char *domain,
                      srv_target_t *out, int max)
{
  unsigned char answer[4096];
  char name[NS_MAXDNAME];
  ns_msg msg;
  ns_rr rr;
  int len, count, i, n = 0;

  snprintf(name, sizeof(name), "_%s._tcp.%s", service, domain);
  len = res_query(name, ns_c_in, ns_t_srv, answer, sizeof(answer));
  if (len < 0 || ns_initparse(answer, len, &msg) < 0)
    return 0;
  count = ns_msg_count(msg, ns_s_an);
  for (i = 0; i < count && n < max; i++) {
    const unsigned char *rd;
    if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_srv ||
        ns_rr_rdlen(rr) < 7)
      continue;
    rd = ns_rr_rdata(rr);
    out[n].priority = ns_get16(rd);
    out[n].weight = ns_get16(rd + 2);
    out[n].port = ns_get16(rd + 4);
    if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, out[n].host,
                  sizeof(out[n].host)) < 0)
      continue;
    if (strcmp(out[n].host, ".") == 0 || out[n].host[0] == '\0')
      return count == 1 ? -1 : n;
    n++;
  }
  qsort(out, (size_t)n, sizeof(*out), srv_cmp);
  return n;
}

static kith_status_t add_host(kith__dialer_t *d, const char *host,
                              unsigned port)
{
  struct addrinfo hints, *res = NULL, *ai;
  char portstr[16], addr[INET6_ADDRSTRLEN];
  int rc;

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  snprintf(portstr, sizeof(portstr), "%u", port);
  rc = getaddrinfo(host, portstr, &hints, &res);
  if (rc != 0) {
    snprintf(d->err, sizeof(d->err), "cannot resolve %s: %s", host,
             gai_strerror(rc));
    return KITH_ERESOLVE;
  }
  for (ai = res; ai && d->n < MAX_ADDRS; ai = ai->ai_next) {
    kith__dial_addr_t *a = &d->addrs[d->n];
    const void *p;
    if (ai->ai_addrlen > sizeof(a->sa))
      continue;
    memcpy(&a->sa, ai->ai_addr, ai->ai_addrlen);
    a->salen = ai->ai_addrlen;
    p = ai->ai_family == AF_INET6
            ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
            : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
    if (!inet_ntop(ai->ai_family, p, addr, sizeof(addr)))
      strcpy(addr, "?");
    snprintf(a->label, sizeof(a->label), "%.255s:%u (%s)", host, port, addr);
    d->n++;
  }
  freeaddrinfo(res);
  return KITH_OK;
}

kith_status_t kith__dialer_resolve(kith__dialer_t *d, const char *domain,
                                   const char *host, unsigned port,
                                   const char *service, unsigned default_port)
{
  srv_target_t srv[MAX_SRV];
  kith_status_t rc = KITH_OK;
  int i, nsrv = 0;

  kith__dialer_free(d);
  d->addrs = kith__calloc(d->ctx, MAX_ADDRS, sizeof(*d->addrs));
  if (d->addrs == NULL)
    return KITH_ENOMEM;
  if (host)
    return add_host(d, host, port ? port : default_port);
  if (service)
    nsrv = lookup_srv(service, domain, srv, MAX_SRV);
  if (nsrv < 0) {
    snprintf(d->err, sizeof(d->err), "%s has no %s service (SRV target \".\")",
             domain, service);
    return KITH_ERESOLVE;
  }
  for (i = 0; i < nsrv; i++)
    rc = add_host(d, srv[i].host, srv[i].port);
  if (d->n == 0) /* no SRV records, or none of them resolved */
    rc = add_host(d, domain, port ? port : default_port);
  return d->n ? KITH_OK : rc;
}

static int start_one(kith__dialer_t *d, const kith__dial_addr_t *a)
{
  int fd, one = 1;

  fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, (const struct sockaddr *)&a->sa, a->salen) < 0 &&
      errno != EINPROGRESS) {
    snprintf(d->err, sizeof(d->err), "cannot connect to %s: %s", a->label,
             strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

kith_status_t kith__dialer_step(kith__dialer_t *d, int *fd)
{
  for (;;) {
    if (d->fd >= 0) {
      int err = 0;
      socklen_t len = sizeof(err);
      struct sockaddr_storage peer;
      socklen_t plen = sizeof(peer);

      if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
      if (err == 0 &&
          getpeername(d->fd, (struct sockaddr *)&peer, &plen) == 0) {
        *fd = d->fd;
        d->fd = -1;
        return KITH_OK;
      }
      if (err == 0 && errno == ENOTCONN) {
        /* Still in progress: not writable yet. */
        *fd = d->fd;
        return KITH_EAGAIN;
      }
      snprintf(d->err, sizeof(d->err), "cannot connect to %s: %s",
               d->addrs[d->next - 1].label, strerror(err ? err : errno));
      close(d->fd);
      d->fd = -1;
    }
    if (d->next >= d->n)
      return KITH_ECONNECT;
    d->fd = start_one(d, &d->addrs[d->next++]);
    if (d->fd >= 0) {
      *fd = d->fd;
      return KITH_EAGAIN;
    }
  }
}

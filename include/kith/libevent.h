/*
 * kith: a header-only libevent 2 adapter.
 *
 * Drives a kith_conn_t from a struct event_base with exactly what
 * kith_run_once() does (src/session/loop.c), using only the public loop
 * hooks: kith_conn_fd(), kith_conn_want(), kith_conn_timeout() and
 * kith_conn_process(). libkith does not link libevent; include this header
 * in the program that does, and link that program with libevent.
 *
 *   #include <kith/kith.h>
 *   #include <kith/libevent.h>
 *
 *   kith_libevent_t *ke;
 *   kith_conn_connect(conn);
 *   kith_libevent_attach(base, conn, &ke);
 *   event_base_dispatch(base);  // returns once kith is idle (and your
 *                               // own events are gone)
 *   kith_libevent_detach(ke);
 *   kith_conn_free(conn);
 *
 * How it works:
 *
 * - One event watches kith_conn_fd() for what kith_conn_want() asks for,
 *   and one timer event fires when kith_conn_timeout() says a timer is
 *   due. Either calls kith_conn_process() (with the ready bits, or 0 for
 *   the timer), and then the adapter reads the three hooks again.
 *
 * - Interest tracking. kith_conn_send(), kith_conn_send_iq(), the
 *   kith_roster_*() requests, kith_conn_disconnect() and
 *   kith_conn_connect() change what the connection waits for (they queue
 *   output, start timers, open a socket). Calls made inside kith's
 *   callbacks are covered: the adapter re-reads the hooks after every
 *   kith_conn_process(). libevent 2.1 has no hook that runs before each
 *   wait (libuv's prepare), so after such calls made anywhere else (your
 *   own events, signals, timers, or before the loop starts) call
 *   kith_libevent_update(). Forgetting it does not lose anything, but the
 *   output then waits for the connection's next read or timer, which on a
 *   quiet connection can be a long time.
 *
 * - Reconnects. The fd changes when kith reconnects, and is -1 while it
 *   waits to reconnect or is idle; the adapter makes a new event whenever
 *   kith_conn_fd() or the interest differs from the one it watches. Inside
 *   one kith_conn_process() call kith may also close its socket and open a
 *   new one that gets the same number (the dialer trying the next address,
 *   an application reconnecting from its DISCONNECTED handler), which
 *   libevent could not tell apart from the old one. So the adapter removes
 *   its event before every kith_conn_process() and adds it again
 *   afterwards: the fd is never closed while libevent watches it. That
 *   costs a couple of epoll_ctl() calls per wake-up, which an XMPP
 *   connection does not notice.
 *
 * - Loop lifetime. The events are pending only while kith needs them, so
 *   event_base_dispatch() returns when the connection is idle
 *   (disconnected, no reconnect pending) and none of your own events is
 *   pending: the same condition that ends kith_run().
 *
 * Rules: one adapter per connection, and do not also call kith_run() or
 * kith_conn_process() on an attached connection. Detach before
 * kith_conn_free() and before event_base_free(). The adapter's memory
 * comes from malloc() and is freed by kith_libevent_detach().
 */
#ifndef KITH_LIBEVENT_H
#define KITH_LIBEVENT_H

#include <stdlib.h>
#include <event2/event.h>

#include "kith/conn.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The adapter. Its fields are private; use the functions below. */
typedef struct kith_libevent {
  struct event_base *base;
  kith_conn_t *conn;
  struct event *io; /* watches io_fd for io_flags, or NULL */
  evutil_socket_t io_fd;
  short io_flags;      /* EV_READ/EV_WRITE of `io` */
  int io_added;        /* `io` is pending */
  struct event *timer; /* kith_conn_timeout() */
  int busy;            /* inside kith_conn_process() */
  int detached;        /* kith_libevent_detach() ran while busy */
} kith_libevent_t;

/* ---- Internals (not API) --------------------------------------------- */

static inline void kith_libevent__process(kith_libevent_t *a, int ready);

static inline void kith_libevent__on_io(evutil_socket_t fd, short what,
                                        void *ud)
{
  int ready = 0;

  (void)fd;
  /* The epoll, poll and select back ends report an error or hang-up as
   * both EV_READ and EV_WRITE, as kith_run_once() maps POLLERR/POLLHUP. */
  if (what & EV_READ)
    ready |= KITH_IO_READ;
  if (what & EV_WRITE)
    ready |= KITH_IO_WRITE;
  kith_libevent__process((kith_libevent_t *)ud, ready);
}

static inline void kith_libevent__on_timer(evutil_socket_t fd, short what,
                                           void *ud)
{
  (void)fd;
  (void)what;
  kith_libevent__process((kith_libevent_t *)ud, 0);
}

/* Make the io event match `fd` and `want`. */
static inline kith_status_t kith_libevent__sync_io(kith_libevent_t *a, int fd,
                                                   int want)
{
  short flags = 0;

  if (fd >= 0)
    flags = (short)(((want & KITH_IO_READ) ? EV_READ : 0) |
                    ((want & KITH_IO_WRITE) ? EV_WRITE : 0));
  /* An event's fd and flags are fixed: a change needs a new event. */
  if (a->io != NULL && (a->io_fd != fd || a->io_flags != flags)) {
    event_free(a->io);
    a->io = NULL;
    a->io_added = 0;
  }
  if (flags != 0 && a->io == NULL) {
    a->io = event_new(a->base, fd, (short)(flags | EV_PERSIST),
                      kith_libevent__on_io, a);
    if (a->io == NULL)
      return KITH_ENOMEM;
    a->io_fd = fd;
    a->io_flags = flags;
  }
  if (a->io != NULL && !a->io_added) {
    if (event_add(a->io, NULL) != 0)
      return KITH_EIO;
    a->io_added = 1;
  }
  return KITH_OK;
}

/* Make the events match the hooks. Returns KITH_OK, or the status of a
 * libevent call that failed; the next call tries again. */
static inline kith_status_t kith_libevent__sync(kith_libevent_t *a)
{
  kith_status_t rc;
  long t;

  if (a->detached || a->busy)
    return KITH_OK; /* after kith_conn_process() returns, it syncs */
  rc =
      kith_libevent__sync_io(a, kith_conn_fd(a->conn), kith_conn_want(a->conn));
  /* Re-arming every time is cheap and keeps the timer right whatever
   * changed the deadline (a new iq, a reply, a reconnect). */
  t = kith_conn_timeout(a->conn);
  if (t >= 0) {
    struct timeval tv;
    tv.tv_sec = (long)(t / 1000);
    tv.tv_usec = (long)(t % 1000) * 1000;
    if (event_add(a->timer, &tv) != 0 && rc == KITH_OK)
      rc = KITH_EIO;
  } else {
    event_del(a->timer);
  }
  return rc;
}

static inline void kith_libevent__process(kith_libevent_t *a, int ready)
{
  /* kith may close the socket in this call (and even open another with
   * the same number): stop watching it first. */
  if (a->io != NULL && a->io_added) {
    event_del(a->io);
    a->io_added = 0;
  }
  a->busy = 1;
  kith_conn_process(a->conn, ready);
  a->busy = 0;
  if (a->detached) { /* a callback detached us; we could not free then */
    free(a);
    return;
  }
  kith_libevent__sync(a);
}

/* ---- API -------------------------------------------------------------- */

/**
 * Attach `conn` to `base` and start watching it. `conn` may be idle,
 * connecting or connected; after kith_conn_connect() on an attached idle
 * connection call kith_libevent_update(). *out gets the adapter, to pass
 * to kith_libevent_detach(). Returns KITH_OK, KITH_EINVAL (a NULL
 * argument), KITH_ENOMEM or KITH_EIO (libevent refused the fd); on error
 * nothing is attached.
 */
static inline kith_status_t kith_libevent_attach(struct event_base *base,
                                                 kith_conn_t *conn,
                                                 kith_libevent_t **out)
{
  kith_libevent_t *a;
  kith_status_t rc;

  if (out != NULL)
    *out = NULL;
  if (base == NULL || conn == NULL || out == NULL)
    return KITH_EINVAL;
  a = (kith_libevent_t *)calloc(1, sizeof(*a));
  if (a == NULL)
    return KITH_ENOMEM;
  a->base = base;
  a->conn = conn;
  a->io_fd = -1;
  a->timer = evtimer_new(base, kith_libevent__on_timer, a);
  if (a->timer == NULL) {
    free(a);
    return KITH_ENOMEM;
  }
  rc = kith_libevent__sync(a);
  if (rc != KITH_OK) {
    if (a->io != NULL)
      event_free(a->io);
    event_free(a->timer);
    free(a);
    return rc;
  }
  *out = a;
  return KITH_OK;
}

/**
 * Re-read the connection's fd, interest and timeout now. Call it after
 * kith calls made outside kith's callbacks that may queue output, start
 * a timer or open a socket: kith_conn_send(), kith_conn_send_iq(),
 * kith_roster_*() requests, kith_conn_disconnect(), kith_conn_connect().
 * Inside kith's callbacks it is not needed (and does nothing: the adapter
 * re-reads when kith_conn_process() returns). Returns KITH_OK, or
 * KITH_ENOMEM / KITH_EIO when a libevent call failed (the next update
 * tries again). NULL is a no-op.
 */
static inline kith_status_t kith_libevent_update(kith_libevent_t *a)
{
  return a != NULL ? kith_libevent__sync(a) : KITH_OK;
}

/** The attached connection, or NULL for NULL. */
static inline kith_conn_t *kith_libevent_conn(const kith_libevent_t *a)
{
  return a != NULL ? a->conn : NULL;
}

/**
 * Stop watching the connection, free the adapter's events and the
 * adapter. The connection is not touched: it stays connected, so
 * disconnect it first (and run the loop until DISCONNECTED) for a clean
 * logout, or free it after this call. Safe inside kith's callbacks (the
 * adapter is then freed when kith_conn_process() returns). NULL is a
 * no-op.
 */
static inline void kith_libevent_detach(kith_libevent_t *a)
{
  if (a == NULL || a->detached)
    return;
  a->detached = 1;
  if (a->io != NULL)
    event_free(a->io);
  a->io = NULL;
  event_free(a->timer);
  a->timer = NULL;
  if (!a->busy)
    free(a);
}

#ifdef __cplusplus
}
#endif

#endif /* KITH_LIBEVENT_H */

/*
 * kith: a header-only libuv adapter.
 *
 * Drives a kith_conn_t from a uv_loop_t with exactly what kith_run_once()
 * does (src/session/loop.c), using only the public loop hooks:
 * kith_conn_fd(), kith_conn_want(), kith_conn_timeout() and
 * kith_conn_process(). libkith does not link libuv; include this header
 * in the program that does, and link that program with libuv.
 *
 *   #include <kith/kith.h>
 *   #include <kith/uv.h>
 *
 *   kith_uv_t *uv;
 *   kith_conn_connect(conn);
 *   kith_uv_attach(loop, conn, &uv);
 *   uv_run(loop, UV_RUN_DEFAULT);  // returns once kith is idle (and
 *                                  // your own handles are done)
 *   kith_uv_detach(uv);
 *   kith_conn_free(conn);
 *   uv_run(loop, UV_RUN_DEFAULT);  // lets libuv finish closing
 *   uv_loop_close(loop);           // 0: the adapter left nothing behind
 *
 * How it works:
 *
 * - One uv_poll_t watches kith_conn_fd() for the events kith_conn_want()
 *   asks for, and one uv_timer_t fires when kith_conn_timeout() says a
 *   timer is due. Either calls kith_conn_process() (with the ready bits,
 *   or 0 for the timer), and then the adapter reads the three hooks again.
 *
 * - Interest tracking. kith_conn_send(), kith_conn_send_iq(), the
 *   kith_roster_*() requests and kith_conn_disconnect() only queue output;
 *   the socket must then be watched for writing. Calls made inside kith's
 *   callbacks are covered by the re-read after kith_conn_process(). Calls
 *   made anywhere else (your own timers, sockets, signals) are covered by a
 *   uv_prepare_t that re-reads the hooks once per loop iteration, just
 *   before libuv blocks, so nothing is needed from you. kith_uv_update()
 *   does the same re-read at once, for when the loop is not running yet
 *   (after a kith_conn_connect() made while uv_run() is not running).
 *
 * - Reconnects. The fd changes when kith reconnects, and is -1 while it
 *   waits to reconnect or is idle; the adapter makes a new uv_poll_t
 *   whenever kith_conn_fd() differs from the one it watches. Inside one
 *   kith_conn_process() call kith may also close its socket and open a new
 *   one that gets the same number (the dialer trying the next address, an
 *   application reconnecting from its DISCONNECTED handler). libuv must
 *   never watch an fd that gets closed, so the adapter stops the watcher
 *   before every kith_conn_process() and starts it again afterwards. That
 *   costs a few epoll_ctl() calls per wake-up, which an XMPP connection
 *   does not notice.
 *
 * - Loop lifetime. The poll and timer handles are active only while kith
 *   needs them and the prepare handle is unreferenced, so uv_run() returns
 *   when the connection is idle (disconnected, no reconnect pending) and
 *   nothing else of yours is active: the same condition that ends
 *   kith_run().
 *
 * Rules: one adapter per connection, and do not also call kith_run() or
 * kith_conn_process() on an attached connection. Detach before
 * kith_conn_free(). The adapter's memory comes from malloc(); after
 * kith_uv_detach() it is released by libuv's close callbacks, so run the
 * loop once more before uv_loop_close().
 */
#ifndef KITH_UV_H
#define KITH_UV_H

#include <stdlib.h>
#include <uv.h>

#include "kith/conn.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The adapter. Its fields are private; use the functions below. */
typedef struct kith_uv {
  uv_loop_t *loop;
  kith_conn_t *conn;
  uv_poll_t *poll;   /* watches poll_fd, or NULL; malloc'ed per fd */
  int poll_fd;       /* the fd `poll` was made for, or -1 */
  int poll_events;   /* UV_READABLE/UV_WRITABLE started on `poll`, or 0 */
  uv_timer_t timer;  /* kith_conn_timeout() */
  uv_prepare_t prep; /* re-reads the hooks before each wait */
  int open_handles;  /* timer and prep until their close callbacks ran */
  int busy;          /* inside kith_conn_process() */
  int detached;
} kith_uv_t;

/* ---- Internals (not API) --------------------------------------------- */

static inline void kith_uv__free_handle(uv_handle_t *h)
{
  free(h);
}

static inline void kith_uv__on_closed(uv_handle_t *h)
{
  kith_uv_t *a = (kith_uv_t *)h->data;

  if (--a->open_handles == 0)
    free(a);
}

/* Stop watching and let libuv free the poll handle. */
static inline void kith_uv__drop_poll(kith_uv_t *a)
{
  if (a->poll == NULL)
    return;
  a->poll->data = NULL;
  uv_close((uv_handle_t *)a->poll, kith_uv__free_handle);
  a->poll = NULL;
  a->poll_fd = -1;
  a->poll_events = 0;
}

static inline kith_status_t kith_uv__status(int uverr)
{
  if (uverr == 0)
    return KITH_OK;
  if (uverr == UV_ENOMEM)
    return KITH_ENOMEM;
  if (uverr == UV_EEXIST)
    return KITH_EEXIST;
  return KITH_EIO;
}

static inline void kith_uv__process(kith_uv_t *a, int ready);

static inline void kith_uv__on_poll(uv_poll_t *p, int status, int events)
{
  kith_uv_t *a = (kith_uv_t *)p->data;
  int ready = 0;

  if (a == NULL)
    return;
  /* An error (libuv reports POLLERR as UV_EBADF and stops the handle):
   * let kith's next read or write find out what happened, as
   * kith_run_once() does for POLLERR. */
  if (status < 0)
    ready = KITH_IO_READ | KITH_IO_WRITE;
  if (events & (UV_READABLE | UV_DISCONNECT))
    ready |= KITH_IO_READ;
  if (events & UV_WRITABLE)
    ready |= KITH_IO_WRITE;
  kith_uv__process(a, ready);
}

static inline void kith_uv__on_timer(uv_timer_t *t)
{
  kith_uv__process((kith_uv_t *)t->data, 0);
}

/* Make the poll handle match `fd` and `want`. */
static inline kith_status_t kith_uv__sync_poll(kith_uv_t *a, int fd, int want)
{
  int events = 0, rc = 0;

  if (fd >= 0)
    events = ((want & KITH_IO_READ) ? UV_READABLE : 0) |
             ((want & KITH_IO_WRITE) ? UV_WRITABLE : 0);
  if (a->poll != NULL && a->poll_fd != fd)
    kith_uv__drop_poll(a); /* a new socket, or none */
  if (events != 0 && a->poll == NULL) {
    a->poll = (uv_poll_t *)malloc(sizeof(*a->poll));
    if (a->poll == NULL)
      return KITH_ENOMEM;
    rc = uv_poll_init(a->loop, a->poll, fd);
    if (rc != 0) {
      free(a->poll);
      a->poll = NULL;
      return kith_uv__status(rc);
    }
    a->poll->data = a;
    a->poll_fd = fd;
    a->poll_events = 0;
  }
  if (a->poll != NULL && events != a->poll_events) {
    if (events != 0)
      rc = uv_poll_start(a->poll, events, kith_uv__on_poll);
    else
      rc = uv_poll_stop(a->poll);
    a->poll_events = rc == 0 ? events : 0;
  }
  return kith_uv__status(rc);
}

/* Make the handles match the hooks. Returns KITH_OK, or the status of a
 * libuv call that failed; the next call tries again. */
static inline kith_status_t kith_uv__sync(kith_uv_t *a)
{
  kith_status_t rc;
  long t;

  if (a->detached || a->busy)
    return KITH_OK; /* after kith_conn_process() returns, it syncs */
  rc = kith_uv__sync_poll(a, kith_conn_fd(a->conn), kith_conn_want(a->conn));
  /* Re-arming every time is cheap and keeps the timer right whatever
   * changed the deadline (a new iq, a reply, a reconnect). */
  t = kith_conn_timeout(a->conn);
  if (t >= 0)
    uv_timer_start(&a->timer, kith_uv__on_timer, (uint64_t)t, 0);
  else
    uv_timer_stop(&a->timer);
  return rc;
}

static inline void kith_uv__process(kith_uv_t *a, int ready)
{
  /* kith may close the socket in this call (and even open another with
   * the same number): stop watching it first, as libuv requires. */
  if (a->poll != NULL && a->poll_events != 0) {
    uv_poll_stop(a->poll);
    a->poll_events = 0;
  }
  a->busy = 1;
  kith_conn_process(a->conn, ready);
  a->busy = 0;
  /* A callback may have detached us; the memory lives until the close
   * callbacks, which libuv runs later in this iteration. */
  if (!a->detached)
    kith_uv__sync(a);
}

static inline void kith_uv__on_prepare(uv_prepare_t *p)
{
  kith_uv__sync((kith_uv_t *)p->data);
}

/* ---- API -------------------------------------------------------------- */

/**
 * Attach `conn` to `loop` and start watching it. `conn` may be idle,
 * connecting or connected; an idle one is watched once it connects (see
 * kith_uv_update()). *out gets the adapter, to pass to kith_uv_detach().
 * Returns KITH_OK, KITH_EINVAL (a NULL argument), KITH_ENOMEM, KITH_EEXIST
 * (another handle on this loop already polls the connection's fd) or
 * KITH_EIO (libuv refused the fd). On error *out is NULL and nothing
 * watches the connection; handles already made close (and free their
 * memory) the next time the loop runs.
 */
static inline kith_status_t kith_uv_attach(uv_loop_t *loop, kith_conn_t *conn,
                                           kith_uv_t **out)
{
  kith_uv_t *a;
  kith_status_t rc;

  if (out != NULL)
    *out = NULL;
  if (loop == NULL || conn == NULL || out == NULL)
    return KITH_EINVAL;
  a = (kith_uv_t *)calloc(1, sizeof(*a));
  if (a == NULL)
    return KITH_ENOMEM;
  a->loop = loop;
  a->conn = conn;
  a->poll_fd = -1;
  uv_timer_init(loop, &a->timer);
  uv_prepare_init(loop, &a->prep);
  a->timer.data = a;
  a->prep.data = a;
  a->open_handles = 2;
  uv_prepare_start(&a->prep, kith_uv__on_prepare);
  /* The prepare hook alone must not keep uv_run() going: only kith's
   * socket and timer should. */
  uv_unref((uv_handle_t *)&a->prep);
  rc = kith_uv__sync(a);
  if (rc != KITH_OK) {
    a->detached = 1;
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, kith_uv__on_closed);
    uv_close((uv_handle_t *)&a->prep, kith_uv__on_closed);
    return rc;
  }
  *out = a;
  return KITH_OK;
}

/**
 * Re-read the connection's fd, interest and timeout now. The prepare hook
 * does this before every wait, so this is needed only when the loop is
 * not running: for example after kith_conn_connect() on an attached idle
 * connection, before calling uv_run() again (an idle connection keeps no
 * handle active, so uv_run() would return at once). Harmless anywhere,
 * including inside kith's callbacks (where it does nothing: the adapter
 * re-reads when kith_conn_process() returns). Returns KITH_OK, or
 * KITH_ENOMEM / KITH_EEXIST / KITH_EIO when a libuv call failed (the
 * adapter retries at the next iteration). NULL is a no-op.
 */
static inline kith_status_t kith_uv_update(kith_uv_t *a)
{
  return a != NULL ? kith_uv__sync(a) : KITH_OK;
}

/** The attached connection, or NULL for NULL. */
static inline kith_conn_t *kith_uv_conn(const kith_uv_t *a)
{
  return a != NULL ? a->conn : NULL;
}

/**
 * Stop watching the connection and close the adapter's handles. The
 * connection is not touched: it stays connected, so disconnect it first
 * (and run the loop until DISCONNECTED) for a clean logout, or free it
 * after this call. The adapter is invalid once this returns; its memory
 * is freed by the close callbacks, so run the loop once more (uv_run()
 * in any mode) before uv_loop_close(). Safe inside kith's callbacks.
 * NULL is a no-op.
 */
static inline void kith_uv_detach(kith_uv_t *a)
{
  if (a == NULL || a->detached)
    return;
  a->detached = 1;
  kith_uv__drop_poll(a);
  uv_close((uv_handle_t *)&a->timer, kith_uv__on_closed);
  uv_close((uv_handle_t *)&a->prep, kith_uv__on_closed);
}

#ifdef __cplusplus
}
#endif

#endif /* KITH_UV_H */

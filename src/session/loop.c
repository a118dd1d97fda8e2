/*
 * The built-in poll(2) loop, written only on the public loop hooks so that
 * an application's own loop can do exactly the same.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>

#include "core/ctx.h"
#include "session/conn.h"

#define MAX_POLL 64

kith_status_t kith_run_once(kith_conn_t *const *conns, size_t n,
                            long max_wait_ms)
{
  struct pollfd fds[MAX_POLL];
  size_t idx[MAX_POLL];
  size_t i, nfds = 0;
  long wait = max_wait_ms;
  int rc;

  if (n > MAX_POLL)
    return KITH_EINVAL;
  for (i = 0; i < n; i++) {
    long t = kith_conn_timeout(conns[i]);
    int fd = kith_conn_fd(conns[i]);
    int want = kith_conn_want(conns[i]);

    if (t >= 0 && (wait < 0 || t < wait))
      wait = t;
    idx[i] = (size_t)-1;
    if (fd < 0 || want == 0)
      continue;
    fds[nfds].fd = fd;
    fds[nfds].events = (short)(((want & KITH_IO_READ) ? POLLIN : 0) |
                               ((want & KITH_IO_WRITE) ? POLLOUT : 0));
    fds[nfds].revents = 0;
    idx[i] = nfds++;
  }
  /* Nothing to wait for at all: waiting forever would never end. */
  if (nfds == 0 && wait < 0)
    return KITH_OK;
  if (wait > 1000L * 3600)
    wait = 1000L * 3600;
  rc = poll(fds, nfds, (int)wait);
  if (rc < 0 && errno != EINTR)
    return KITH_EIO;
  for (i = 0; i < n; i++) {
    int ready = 0;
    if (idx[i] != (size_t)-1 && rc > 0) {
      short re = fds[idx[i]].revents;
      if (re & (POLLIN | POLLHUP | POLLERR))
        ready |= KITH_IO_READ;
      if (re & (POLLOUT | POLLERR | POLLHUP))
        ready |= KITH_IO_WRITE;
    }
    kith_conn_process(conns[i], ready);
  }
  return KITH_OK;
}

kith_status_t kith_run(kith_conn_t *conn)
{
  if (conn == NULL)
    return KITH_EINVAL;
  while (kith_conn_is_active(conn)) {
    kith_status_t rc = kith_run_once(&conn, 1, -1);
    if (rc != KITH_OK)
      return rc;
  }
  return conn->end_status;
}

/*
 * Test helper: a throwaway redis-server on 127.0.0.1 for one test binary.
 *
 * redis_server_start() picks a free port, starts /usr/bin/redis-server
 * without persistence in `dir`, and waits until it answers PING. The
 * server dies with the test process even when the test crashes
 * (PR_SET_PDEATHSIG), and redis_server_stop() ends it normally.
 */
#ifndef KITH_TEST_REDIS_SERVER_H
#define KITH_TEST_REDIS_SERVER_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#define REDIS_SERVER_BIN "/usr/bin/redis-server"

typedef struct redis_server {
  pid_t pid;
  int port;
} redis_server_t;

static int redis_server_available(void)
{
  return access(REDIS_SERVER_BIN, X_OK) == 0;
}

/* A port nothing listens on right now (another process may take it before
 * redis-server does; the caller retries). */
static int redis_free_port(void)
{
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

  if (fd < 0)
    return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

/* 1 when the server on `port` answers PING with +PONG. */
static int redis_ping(int port)
{
  struct sockaddr_in sa;
  char buf[16];
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok = 0;

  if (fd < 0)
    return 0;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
      write(fd, "PING\r\n", 6) == 6 && read(fd, buf, 7) >= 5)
    ok = memcmp(buf, "+PONG", 5) == 0;
  close(fd);
  return ok;
}

static pid_t redis_spawn(int port, const char *dir)
{
  char p[16];
  pid_t pid;
  int fd;

  snprintf(p, sizeof(p), "%d", port);
  if ((pid = fork()) != 0)
    return pid;
  /* The child: die with the test, keep the test's output clean. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if ((fd = open("/dev/null", O_RDWR)) >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
  }
  execl(REDIS_SERVER_BIN, "redis-server", "--port", p, "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", dir, (char *)NULL);
  _exit(127);
}

static void redis_server_stop(redis_server_t *r)
{
  int i, status;

  if (r->pid <= 0)
    return;
  kill(r->pid, SIGTERM);
  for (i = 0; i < 200; i++) { /* 2 s, then SIGKILL */
    if (waitpid(r->pid, &status, WNOHANG) == r->pid)
      break;
    usleep(10000);
  }
  if (i == 200) {
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &status, 0);
  }
  r->pid = 0;
}

/* 0 when a server is up on r->port; -1 (with a note on stderr) if not. */
static int redis_server_start(redis_server_t *r, const char *dir)
{
  int attempt, i, status;

  r->pid = 0;
  for (attempt = 0; attempt < 3; attempt++) {
    if ((r->port = redis_free_port()) < 0)
      return -1;
    if ((r->pid = redis_spawn(r->port, dir)) < 0)
      return -1;
    for (i = 0; i < 500; i++) { /* 5 s */
      if (redis_ping(r->port))
        return 0;
      if (waitpid(r->pid, &status, WNOHANG) == r->pid)
        break; /* it exited: most likely the port was taken; retry */
      usleep(10000);
    }
    if (i == 500)
      redis_server_stop(r);
    r->pid = 0;
  }
  fprintf(stderr, "note: could not start %s\n", REDIS_SERVER_BIN);
  return -1;
}

#endif /* KITH_TEST_REDIS_SERVER_H */

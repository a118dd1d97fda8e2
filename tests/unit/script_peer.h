/*
 * Test helper: the scripted peer of a kith connection.
 *
 * The test plays the server on the other end of a socketpair: it writes
 * what the server would say (say(), sayf()), lets the connection work
 * (pump(): kith_conn_process() a few times) and reads what the
 * connection wrote into p->got. No network is involved.
 *
 * Each test file keeps its own peer type, because each one watches
 * different things (events per type, a roster, SASL state); the helpers
 * here only touch its I/O part. So the file defines `peer_t` before it
 * includes this header (after <cmocka.h>), with at least:
 *
 *   typedef struct peer {
 *     kith_conn_t *conn;
 *     int fd;        -- the scripted server's end
 *     char got[N];   -- what kith wrote, NUL-terminated
 *     size_t gotlen;
 *     ...
 *   } peer_t;
 *
 * and writes its own forget() when it has more to forget than
 * forget_sent() does. A peer that also logs kith's events defines
 * SCRIPT_PEER_EVENT_LOG for the helpers at the end of this header.
 */
#ifndef KITH_TEST_SCRIPT_PEER_H
#define KITH_TEST_SCRIPT_PEER_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kith/kith.h"
#include "session/conn.h"

/* What a client-to-server stream header from the server looks like. */
#define CLIENT_HEADER                                                          \
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                 \
  "xmlns:stream='http://etherx.jabber.org/streams' id='c1' "                   \
  "from='localhost' version='1.0'>"

/* A new socketpair: the test keeps one end in p->fd and gets kith's end
 * back, non-blocking, to hand to kith__conn_adopt_fd(). */
static inline int peer_socketpair(peer_t *p)
{
  int sv[2];

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  p->fd = sv[1];
  return sv[0];
}

/* Let the connection work, then collect what it sent. */
static inline void pump(peer_t *p)
{
  int i;

  for (i = 0; i < 4; i++)
    kith_conn_process(p->conn, KITH_IO_READ | KITH_IO_WRITE);
  for (;;) {
    ssize_t n = recv(p->fd, p->got + p->gotlen, sizeof(p->got) - 1 - p->gotlen,
                     MSG_DONTWAIT);
    if (n <= 0)
      break;
    p->gotlen += (size_t)n;
  }
  p->got[p->gotlen] = '\0';
}

/* The connection adopts kith's end of a new socketpair and writes its
 * stream header, which lands in p->got. */
static inline void peer_adopt(peer_t *p)
{
  assert_int_equal(kith__conn_adopt_fd(p->conn, peer_socketpair(p)), KITH_OK);
  pump(p);
}

static inline void say(peer_t *p, const char *xml)
{
  assert_int_equal(send(p->fd, xml, strlen(xml), MSG_NOSIGNAL),
                   (ssize_t)strlen(xml));
  pump(p);
}

static inline void sayf(peer_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void sayf(peer_t *p, const char *fmt, ...)
{
  char buf[4096];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  say(p, buf);
}

/* Drop what kith sent so far. */
static inline void forget_sent(peer_t *p)
{
  p->gotlen = 0;
  p->got[0] = '\0';
}

static inline int sent(const peer_t *p, const char *needle)
{
  return strstr(p->got, needle) != NULL;
}

static inline int count_of(const char *hay, const char *needle)
{
  int n = 0;

  while ((hay = strstr(hay, needle)) != NULL) {
    n++;
    hay += strlen(needle);
  }
  return n;
}

/* The id of the last iq kith sent that contains `needle` (static). */
static inline const char *iq_id(const peer_t *p, const char *needle)
{
  static char id[64];
  const char *hit = NULL, *h = p->got, *iq, *a;
  size_t n;

  while ((h = strstr(h, needle)) != NULL)
    hit = h++;
  assert_non_null(hit);
  for (iq = hit; iq > p->got && strncmp(iq, "<iq", 3) != 0; iq--)
    ;
  a = strstr(iq, " id='");
  assert_non_null(a);
  a += 5;
  n = strcspn(a, "'");
  assert_true(n < sizeof(id));
  memcpy(id, a, n);
  id[n] = '\0';
  return id;
}

/* The '>' that ends the stanza starting at `s`: kith writes one stanza
 * after another, so what it sent splits at the points where the element
 * depth returns to zero. */
static inline char *stanza_end(char *s)
{
  int depth = 0;
  char *e;

  for (e = s; *e; e++) {
    if (e[0] == '<' && e[1] == '/')
      depth--;
    else if (e[0] == '<')
      depth++;
    else if (e[0] == '/' && e[1] == '>')
      depth--;
    if (e[0] == '>' && depth == 0)
      break;
  }
  assert_true(*e == '>');
  return e;
}

#ifdef SCRIPT_PEER_EVENT_LOG
/*
 * The event log, for a peer_t that also has
 *
 *   int n[KITH_EVENT_COUNT_];  -- events seen, per type
 *   char log[N];               -- one line per roster event
 *   size_t loglen;
 *
 * The file's own event handler counts each event with count_event() and
 * writes the roster events (those it returns 1 for) with log_line(), in
 * whatever form its tests look for with logged().
 */

static inline int count_event(peer_t *p, const kith_event_t *ev)
{
  p->n[ev->type]++;
  return ev->type >= KITH_EVENT_ROSTER_RECEIVED;
}

/* Append one line to p->log; a line that does not fit is left out. */
static inline void log_line(peer_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void log_line(peer_t *p, const char *fmt, ...)
{
  va_list ap;
  int len;

  va_start(ap, fmt);
  len = vsnprintf(p->log + p->loglen, sizeof(p->log) - p->loglen, fmt, ap);
  va_end(ap);
  if (len > 0 && (size_t)len < sizeof(p->log) - p->loglen)
    p->loglen += (size_t)len;
}

static inline int logged(const peer_t *p, const char *line)
{
  return strstr(p->log, line) != NULL;
}

/* Drop the events seen so far. */
static inline void forget_events(peer_t *p)
{
  p->loglen = 0;
  p->log[0] = '\0';
  memset(p->n, 0, sizeof(p->n));
}
#endif /* SCRIPT_PEER_EVENT_LOG */

#endif /* KITH_TEST_SCRIPT_PEER_H */

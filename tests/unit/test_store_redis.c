/*
 * Unit tests: the Redis store backend against a private redis-server.
 *
 * The shared store table (test_store.c) runs the common cases; these are
 * the ones only Redis has: the Redis Cluster key-slot rule, MULTI/EXEC
 * atomicity, reconnecting, timeouts, damaged values, prefixes, URIs.
 *
 * Each binary starts its own redis-server on a free loopback port without
 * persistence (tests/unit/redis_server.h) and stops it at the end. Without
 * /usr/bin/redis-server every test is skipped.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "kith/store.h"
#include "kith/ctx.h"
#include "failing_alloc.h"
#include "redis_server.h"
#include "store_io.h"
#include "tmpdir.h"

static char tmpdir[256];
static redis_server_t srv;

/* ---- helpers: time, a raw connection, the server ------------------------ */

static double now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static redisContext *raw_connect(void)
{
  struct timeval tv = {5, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);

  assert_non_null(c);
  assert_int_equal(c->err, 0);
  return c;
}

/* Run a command on a fresh raw connection; the reply is the caller's. */
static redisReply *raw(const char *fmt, ...)
{
  redisContext *c = raw_connect();
  redisReply *reply;
  va_list ap;

  va_start(ap, fmt);
  reply = redisvCommand(c, fmt, ap);
  va_end(ap);
  redisFree(c);
  assert_non_null(reply);
  return reply;
}

static void raw_ok(const char *fmt, ...)
{
  redisContext *c = raw_connect();
  redisReply *reply;
  va_list ap;

  va_start(ap, fmt);
  reply = redisvCommand(c, fmt, ap);
  va_end(ap);
  redisFree(c);
  assert_non_null(reply);
  if (reply->type == REDIS_REPLY_ERROR)
    fail_msg("%s: %s", fmt, reply->str);
  freeReplyObject(reply);
}

static long long raw_int(const char *fmt, ...)
{
  redisContext *c = raw_connect();
  redisReply *reply;
  long long v;
  va_list ap;

  va_start(ap, fmt);
  reply = redisvCommand(c, fmt, ap);
  va_end(ap);
  redisFree(c);
  assert_non_null(reply);
  assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
  v = reply->integer;
  freeReplyObject(reply);
  return v;
}

/* Stop the server and start a new one on the same port. */
static void restart_server(void)
{
  int port = srv.port, i;

  redis_server_stop(&srv);
  srv.port = port;
  srv.pid = redis_spawn(port, tmpdir);
  assert_true(srv.pid > 0);
  for (i = 0; i < 500 && !redis_ping(port); i++)
    usleep(10000);
  assert_true(redis_ping(port));
}

/* ---- helpers: stores and batches (the sink is store_io.h's) ------------- */

static kith_store_t *open_uri(const char *uri)
{
  kith_store_t *st = NULL;
  char err[512];
  kith_status_t rc = kith_store_open(NULL, uri, &st, err, sizeof(err));

  if (rc != KITH_OK)
    fail_msg("open %s: %s: %s", uri, kith_status_name(rc), err);
  assert_string_equal(kith_store_backend_name(st), "redis");
  return st;
}

/* redis://127.0.0.1:PORT/0 followed by `tail` ("?prefix=x", ...). */
static kith_store_t *open_store(const char *tail)
{
  char uri[512];

  snprintf(uri, sizeof(uri), "redis://127.0.0.1:%d/0%s", srv.port, tail);
  return open_uri(uri);
}

/* The groups of `g` joined by '|' (static, until the next call). */
static const char *groups_joined(const got_item_t *g)
{
  static char buf[1024];
  size_t i, len = 0;
  int n;

  buf[0] = '\0';
  for (i = 0; i < g->ngroups; i++) {
    n = snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? "|" : "",
                 g->groups[i]);
    assert_true(n >= 0 && (size_t)n < sizeof(buf) - len);
    len += (size_t)n;
  }
  return buf;
}

static kith_store_op_t put(const char *jid, const char *name,
                           const char *const *groups, size_t ngroups,
                           unsigned flags)
{
  kith_store_op_t op;

  memset(&op, 0, sizeof(op));
  op.type = KITH_STORE_PUT;
  op.item.jid = jid;
  op.item.name = name;
  op.item.groups = groups;
  op.item.ngroups = ngroups;
  op.item.flags = flags;
  return op;
}

/* One PUT of `jid` plus a version, the smallest useful batch. */
static kith_status_t put_one(kith_store_t *st, const char *owner,
                             const char *jid, const char *version)
{
  kith_store_op_t ops[2];

  ops[0] = put(jid, NULL, NULL, 0, 3);
  ops[1] = simple_op(KITH_STORE_VERSION, NULL, version);
  return kith_store_apply(st, owner, ops, 2);
}

typedef struct owners {
  char *v[64];
  size_t n;
  size_t calls;
} owners_t;

static kith_status_t on_owner(void *ud, const char *owner)
{
  owners_t *o = ud;

  o->calls++;
  if (o->n < 64)
    o->v[o->n++] = strdup(owner);
  return KITH_OK;
}

static int has_owner(const owners_t *o, const char *owner)
{
  size_t i;

  for (i = 0; i < o->n; i++)
    if (strcmp(o->v[i], owner) == 0)
      return 1;
  return 0;
}

static void owners_free(owners_t *o)
{
  while (o->n)
    free(o->v[--o->n]);
  o->calls = 0;
}

/* ---- the Redis Cluster key slot ----------------------------------------- */

/* CRC16-CCITT (XMODEM), as Redis Cluster computes it. */
static unsigned crc16(const char *p, size_t len)
{
  unsigned crc = 0;
  size_t i;
  int b;

  for (i = 0; i < len; i++) {
    crc ^= (unsigned)(unsigned char)p[i] << 8;
    for (b = 0; b < 8; b++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xFFFF : (crc << 1) & 0xFFFF;
  }
  return crc;
}

/* The slot of a key: the hash tag (first '{' up to the first '}' after it,
 * when not empty) or else the whole key. */
static unsigned keyslot(const char *key, size_t len)
{
  size_t s, e;

  for (s = 0; s < len && key[s] != '{'; s++)
    ;
  if (s < len) {
    for (e = s + 1; e < len && key[e] != '}'; e++)
      ;
    if (e < len && e != s + 1)
      return crc16(key + s + 1, e - s - 1) & 16383;
  }
  return crc16(key, len) & 16383;
}

/* ---- fixtures ----------------------------------------------------------- */

static int group_setup(void **state)
{
  (void)state;
  if (tmpdir_make(tmpdir, sizeof(tmpdir), "redis") == NULL)
    return -1;
  return redis_server_start(&srv, tmpdir) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
  (void)state;
  /* A test that failed while the server was stopped must not leave it. */
  if (srv.pid > 0)
    kill(srv.pid, SIGCONT);
  redis_server_stop(&srv);
  tmpdir_remove(tmpdir);
  return 0;
}

/* Every test starts with an empty server that is up and running. */
static int test_setup(void **state)
{
  (void)state;
  if (srv.pid > 0)
    kill(srv.pid, SIGCONT);
  if (srv.pid <= 0 || !redis_ping(srv.port))
    restart_server();
  raw_ok("FLUSHALL");
  return 0;
}

/* ---- the cases ---------------------------------------------------------- */

static void test_roundtrip(void **state)
{
  static const char *const g1[] = {
      "Friends", "1:x 2:y", "with space", "{}%*?", "-", "line\nbreak", ""};
  static const char *const g2[] = {"Ærø ☃"};
  const char *owner = "}we{ird%7B@example.com";
  kith_store_t *st = open_store("?prefix=rt");
  kith_store_op_t ops[5];
  node_t nd = {0};
  const got_item_t *g;

  (void)state;
  ops[0] = put("alice@example.net", "Alice\nSmith", g1, 7, 0x11F);
  ops[1] = put("bob@example.net", NULL, NULL, 0, 0);
  ops[2] = put("carol@example.net", "", g2, 1, KITH_STORE_WHITELISTED);
  ops[3] = put("dave@example.net", "Ærøskøbing ☃ 3:x", NULL, 0, 0x01);
  ops[4] = simple_op(KITH_STORE_VERSION, NULL, "ver 1\n{x}");
  apply_ok(st, owner, ops, 5);

  assert_int_equal(load(st, owner, &nd), KITH_OK);
  assert_int_equal(nd.versions, 1);
  assert_string_equal(nd.version, "ver 1\n{x}");
  assert_int_equal(nd.n, 4);
  g = find(&nd, "alice@example.net");
  assert_non_null(g);
  assert_non_null(g->name); /* has a name */
  assert_string_equal(g->name, "Alice\nSmith");
  assert_string_equal(groups_joined(g),
                      "Friends|1:x 2:y|with space|{}%*?|-|line\n"
                      "break|");
  assert_int_equal(g->flags, 0x11F);
  g = find(&nd, "bob@example.net");
  assert_non_null(g);
  assert_null(g->name); /* has no name */
  assert_string_equal(groups_joined(g), "");
  g = find(&nd, "carol@example.net");
  assert_non_null(g);
  assert_non_null(g->name); /* has a name: the empty one */
  assert_string_equal(g->name, "");
  assert_string_equal(groups_joined(g), "Ærø ☃");
  assert_int_equal(g->flags, KITH_STORE_WHITELISTED);
  g = find(&nd, "dave@example.net");
  assert_non_null(g);
  assert_string_equal(g->name, "Ærøskøbing ☃ 3:x");
  node_free(&nd);
  kith_store_close(st);
}

/* Delete, clear the version, then clear, then drop, then refill. */
static void test_lifecycle(void **state)
{
  const char *owner = "me@example.com";
  kith_store_t *st = open_store("?prefix=lc");
  kith_store_op_t ops[3];
  node_t nd = {0};

  (void)state;
  ops[0] = put("alice@example.net", "Alice", NULL, 0, 3);
  ops[1] = put("bob@example.net", NULL, NULL, 0, 3);
  ops[2] = put("carol@example.net", NULL, NULL, 0, 3);
  apply_ok(st, owner, ops, 3);
  ops[0] = simple_op(KITH_STORE_DELETE, "bob@example.net", NULL);
  ops[1] = simple_op(KITH_STORE_DELETE, "nobody@example.net", NULL);
  ops[2] = simple_op(KITH_STORE_VERSION, NULL, NULL);
  apply_ok(st, owner, ops, 3);
  assert_int_equal(load(st, owner, &nd), KITH_OK);
  assert_null(nd.version);
  assert_int_equal(nd.n, 2);
  assert_null(find(&nd, "bob@example.net"));

  ops[0] = simple_op(KITH_STORE_VERSION, NULL, "v2");
  ops[1] = simple_op(KITH_STORE_CLEAR, NULL, NULL);
  apply_ok(st, owner, ops, 2);
  assert_int_equal(load(st, owner, &nd), KITH_OK);
  assert_int_equal(nd.versions, 1);
  assert_null(nd.version);
  assert_int_equal(nd.n, 0);

  ops[0] = simple_op(KITH_STORE_DROP, NULL, NULL);
  apply_ok(st, owner, ops, 1);
  assert_int_equal(load(st, owner, &nd), KITH_ENOTFOUND);
  assert_int_equal(raw_int("DBSIZE"), 0);

  /* A batch may drop and then refill: the owner is known again. */
  ops[0] = simple_op(KITH_STORE_DROP, NULL, NULL);
  ops[1] = put("erin@example.net", NULL, NULL, 0, 2);
  apply_ok(st, owner, ops, 2);
  assert_int_equal(load(st, owner, &nd), KITH_OK);
  assert_int_equal(nd.n, 1);
  node_free(&nd);
  kith_store_close(st);
}

static void test_keyslot(void **state)
{
  static const char *const owners[] = {"alice@example.com",
                                       "{a}@x",
                                       "}b{@x",
                                       "a}{b}@x",
                                       "%7B@x",
                                       "{}@x",
                                       "x{@y",
                                       "}@z",
                                       "{",
                                       "}",
                                       "%",
                                       "%25{%}@x"};
  kith_store_t *st = open_store("?prefix=slot");
  node_t nd = {0};
  size_t i, k;

  (void)state;
  for (i = 0; i < sizeof(owners) / sizeof(owners[0]); i++) {
    kith_store_op_t drop = simple_op(KITH_STORE_DROP, NULL, NULL);
    redisReply *keys;
    unsigned slot;

    assert_int_equal(put_one(st, owners[i], "c@x", "v"), KITH_OK);
    keys = raw("KEYS slot:*");
    assert_int_equal(keys->type, REDIS_REPLY_ARRAY);
    assert_int_equal(keys->elements, 2);
    slot = keyslot(keys->element[0]->str, keys->element[0]->len);
    for (k = 0; k < keys->elements; k++) {
      const redisReply *key = keys->element[k];

      /* The tag is the owner's, not the whole key's. */
      assert_true(memchr(key->str, '{', key->len) != NULL);
      if (keyslot(key->str, key->len) != slot)
        fail_msg("owner %s: key %s is in slot %u, not %u", owners[i], key->str,
                 keyslot(key->str, key->len), slot);
    }
    freeReplyObject(keys);
    /* And the owner still round-trips through its encoded key. */
    assert_int_equal(load(st, owners[i], &nd), KITH_OK);
    assert_int_equal(nd.n, 1);
    apply_ok(st, owners[i], &drop, 1);
    assert_int_equal(raw_int("DBSIZE"), 0);
  }
  node_free(&nd);
  kith_store_close(st);
}

static void test_invalid_ops_write_nothing(void **state)
{
  static const char *const g[] = {"G", NULL};
  kith_store_t *st = open_store("?prefix=inv");
  kith_store_op_t ops[3];

  (void)state;
  ops[0] = put("a@x", NULL, NULL, 0, 1);
  ops[1] = put("b@x", NULL, NULL, 0, 1);
  ops[2] = put(NULL, NULL, NULL, 0, 1);
  assert_int_equal(kith_store_apply(st, "me@x", ops, 3), KITH_EINVAL);
  assert_non_null(strstr(kith_store_errmsg(st), "operation 2"));
  ops[2] = simple_op(KITH_STORE_DELETE, NULL, NULL);
  assert_int_equal(kith_store_apply(st, "me@x", ops, 3), KITH_EINVAL);
  ops[2] = put("c@x", NULL, NULL, 1, 1);
  assert_int_equal(kith_store_apply(st, "me@x", ops, 3), KITH_EINVAL);
  ops[2] = put("c@x", NULL, g, 2, 1);
  assert_int_equal(kith_store_apply(st, "me@x", ops, 3), KITH_EINVAL);
  ops[2] = simple_op((kith_store_op_type_t)99, NULL, NULL);
  assert_int_equal(kith_store_apply(st, "me@x", ops, 3), KITH_EINVAL);
  assert_int_equal(kith_store_apply(st, "", ops, 2), KITH_EINVAL);
  assert_int_equal(raw_int("DBSIZE"), 0);
  kith_store_close(st);
}

/* A transaction the server refuses while queueing (here: out of memory)
 * is discarded whole by EXEC. */
static void test_refused_batch_writes_nothing(void **state)
{
  kith_store_t *st = open_store("?prefix=oom");
  kith_store_op_t ops[3];
  node_t nd = {0};

  (void)state;
  assert_int_equal(put_one(st, "me@x", "old@x", "v1"), KITH_OK);
  raw_ok("CONFIG SET maxmemory 1");
  ops[0] = put("new@x", NULL, NULL, 0, 1);
  ops[1] = simple_op(KITH_STORE_DELETE, "old@x", NULL);
  ops[2] = simple_op(KITH_STORE_VERSION, NULL, "v2");
  assert_int_equal(kith_store_apply(st, "me@x", ops, 3), KITH_ESTORE);
  raw_ok("CONFIG SET maxmemory 0");
  assert_non_null(strstr(kith_store_errmsg(st), "nothing written"));
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  assert_string_equal(nd.version, "v1");
  assert_int_equal(nd.n, 1);
  assert_non_null(find(&nd, "old@x"));
  node_free(&nd);
  kith_store_close(st);
}

static void test_reconnect_after_client_kill(void **state)
{
  kith_store_t *st = open_store("?prefix=rc");
  node_t nd = {0};

  (void)state;
  assert_int_equal(put_one(st, "me@x", "a@x", "v1"), KITH_OK);
  assert_true(raw_int("CLIENT KILL TYPE normal SKIPME yes") >= 1);
  assert_int_equal(put_one(st, "me@x", "b@x", "v2"), KITH_OK);
  assert_true(raw_int("CLIENT KILL TYPE normal SKIPME yes") >= 1);
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  assert_string_equal(nd.version, "v2");
  assert_int_equal(nd.n, 2);
  node_free(&nd);
  kith_store_close(st);
}

/* Writing a large batch into a connection the server has closed raises
 * SIGPIPE, which must neither kill the process nor reach it. */
static void test_no_sigpipe(void **state)
{
  kith_store_t *st = open_store("?prefix=pipe");
  enum { N = 50000 };
  kith_store_op_t *ops = calloc(N, sizeof(*ops));
  char(*jids)[32] = calloc(N, sizeof(*jids));
  sigset_t pending;
  node_t nd = {0};
  int i;

  (void)state;
  assert_true(ops && jids);
  for (i = 0; i < N; i++) {
    snprintf(jids[i], sizeof(jids[i]), "contact%06d@example.net", i);
    ops[i] =
        put(jids[i], "A name long enough to fill socket buffers", NULL, 0, 3);
  }
  assert_int_equal(put_one(st, "me@x", "a@x", "v1"), KITH_OK);
  assert_true(raw_int("CLIENT KILL TYPE normal SKIPME yes") >= 1);
  usleep(50000); /* let the close arrive first */
  apply_ok(st, "me@x", ops, N);
  sigemptyset(&pending);
  sigpending(&pending);
  assert_false(sigismember(&pending, SIGPIPE));
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  assert_int_equal(nd.n, N + 1);
  node_free(&nd);
  free(ops);
  free(jids);
  kith_store_close(st);
}

static void test_reconnect_after_restart(void **state)
{
  kith_store_t *st;
  owners_t o = {{0}, 0, 0};
  node_t nd = {0};

  char uri[128];

  (void)state;
  snprintf(uri, sizeof(uri), "redis://127.0.0.1:%d/3?prefix=rs", srv.port);
  st = open_uri(uri);
  assert_int_equal(put_one(st, "me@x", "a@x", "v1"), KITH_OK);
  restart_server(); /* without persistence: the data is gone */
  assert_int_equal(put_one(st, "me@x", "b@x", "v2"), KITH_OK);
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  assert_int_equal(nd.n, 1);
  assert_string_equal(nd.version, "v2");
  /* The reconnect selected database 3 again: database 0 is empty. */
  assert_int_equal(raw_int("DBSIZE"), 0);
  restart_server();
  assert_int_equal(kith_store_owners(st, on_owner, &o), KITH_OK);
  assert_int_equal(o.n, 0);
  node_free(&nd);
  kith_store_close(st);
}

static void test_server_gone(void **state)
{
  kith_store_t *st = open_store("?prefix=gone&timeout=1000");
  owners_t o = {{0}, 0, 0};
  node_t nd = {0};
  char where[64], uri[128], err[512];
  kith_store_t *st2 = NULL;
  double t0;

  (void)state;
  snprintf(where, sizeof(where), "127.0.0.1:%d", srv.port);
  assert_int_equal(put_one(st, "me@x", "a@x", "v1"), KITH_OK);
  redis_server_stop(&srv);

  t0 = now();
  assert_int_equal(put_one(st, "me@x", "b@x", "v2"), KITH_ESTORE);
  assert_true(now() - t0 < 1.0);
  assert_non_null(strstr(kith_store_errmsg(st), where));
  assert_non_null(strstr(kith_store_errmsg(st), "connect"));
  assert_int_equal(load(st, "me@x", &nd), KITH_ESTORE);
  assert_non_null(strstr(kith_store_errmsg(st), where));
  assert_int_equal(kith_store_owners(st, on_owner, &o), KITH_ESTORE);
  assert_int_equal(kith_store_reset(st), KITH_ESTORE);

  /* Opening fails the same way, and names the server. */
  snprintf(uri, sizeof(uri), "redis://%s/0", where);
  assert_int_equal(kith_store_open(NULL, uri, &st2, err, sizeof(err)),
                   KITH_ESTORE);
  assert_null(st2);
  assert_non_null(strstr(err, where));

  /* The same store recovers once the server is back. */
  restart_server();
  assert_int_equal(put_one(st, "me@x", "c@x", "v3"), KITH_OK);
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  assert_string_equal(nd.version, "v3");
  node_free(&nd);
  kith_store_close(st);
}

/* A server that accepts but never answers: the call fails after one
 * timeout, not after a retry's second one. */
static void test_timeout(void **state)
{
  kith_store_t *st = open_store("?prefix=to&timeout=300");
  node_t nd = {0};
  double t0, dt;

  (void)state;
  assert_int_equal(put_one(st, "me@x", "a@x", "v1"), KITH_OK);
  kill(srv.pid, SIGSTOP);
  t0 = now();
  assert_int_equal(put_one(st, "me@x", "b@x", "v2"), KITH_ESTORE);
  dt = now() - t0;
  kill(srv.pid, SIGCONT);
  assert_true(dt >= 0.25 && dt < 0.6);
  assert_non_null(strstr(kith_store_errmsg(st), "no answer within 300 ms"));
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  node_free(&nd);
  kith_store_close(st);
}

/* Put `value` (binary) into the item field c@x of me@x, then load. */
static void expect_corrupt_item(kith_store_t *st, const char *value, size_t len)
{
  const char *argv[] = {"HSET", "cor:{me@x}:items", "c@x", value};
  size_t lens[] = {4, 16, 3, len};
  redisContext *c = raw_connect();
  redisReply *reply = redisCommandArgv(c, 4, argv, lens);
  node_t nd = {0};

  assert_non_null(reply);
  assert_int_not_equal(reply->type, REDIS_REPLY_ERROR);
  freeReplyObject(reply);
  redisFree(c);
  if (load(st, "me@x", &nd) != KITH_ECORRUPT)
    fail_msg("value \"%.*s\" was not refused", (int)len, value);
  assert_non_null(strstr(kith_store_errmsg(st), "cor:{me@x}:items"));
  node_free(&nd);
}

static void test_corrupt_values(void **state)
{
  static const char *const bad[] = {
      "garbage",  "",       "3",         "3 ",       "3 - ",      "3 -",
      "3 - 1",    "3 - 1 ", "3 - 1 2:a", "3 - 0 ",   "4096 - 0",  "3 - 99999",
      "3 5:Al 0", "3 2:Al", "x - 0",     "3 - 0 x",  "3 - 2 1:a", "3 - 1 1:a ",
      "3 -1:a 0", "-3 - 0", "3 1:a 0 x", "3 - 1 0:a"};
  kith_store_t *st = open_store("?prefix=cor");
  kith_store_op_t op;
  node_t nd = {0};
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(put_one(st, "me@x", "ok@x", "v"), KITH_OK);
    expect_corrupt_item(st, bad[i], strlen(bad[i]));
  }
  expect_corrupt_item(st, "3 3:a\0b 0", 9); /* a NUL in the name */
  expect_corrupt_item(st, "3 - 0 ", 6);     /* a trailing space */
  /* A good value still decodes (the cases above are not too strict). */
  raw_ok("HSET cor:{me@x}:items c@x %s", "3 1:a 2 1:b 0:");
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  assert_int_equal(nd.n, 2);

  /* A key of the wrong type, on load and on apply. */
  raw_ok("DEL cor:{me@x}:items");
  raw_ok("SET cor:{me@x}:items x");
  assert_int_equal(load(st, "me@x", &nd), KITH_ECORRUPT);
  assert_non_null(strstr(kith_store_errmsg(st), "cor:{me@x}:items"));
  assert_non_null(strstr(kith_store_errmsg(st), "WRONGTYPE"));
  assert_int_equal(put_one(st, "me@x", "ok@x", "v"), KITH_ECORRUPT);
  assert_non_null(strstr(kith_store_errmsg(st), "cor:{me@x}:items"));

  /* The meta hash: a layout from the future, none at all, wrong type. */
  raw_ok("DEL cor:{me@x}:items");
  raw_ok("HSET cor:{me@x}:meta fmt 9");
  assert_int_equal(load(st, "me@x", &nd), KITH_ECORRUPT);
  assert_non_null(strstr(kith_store_errmsg(st), "cor:{me@x}:meta"));
  raw_ok("HDEL cor:{me@x}:meta fmt");
  raw_ok("HSET cor:{me@x}:meta ver 1");
  assert_int_equal(load(st, "me@x", &nd), KITH_ECORRUPT);
  raw_ok("DEL cor:{me@x}:meta");
  raw_ok("LPUSH cor:{me@x}:meta x");
  assert_int_equal(load(st, "me@x", &nd), KITH_ECORRUPT);
  assert_non_null(strstr(kith_store_errmsg(st), "cor:{me@x}:meta"));

  /* Reset clears even unreadable data; then the owner is simply gone. */
  assert_int_equal(kith_store_reset(st), KITH_OK);
  assert_int_equal(load(st, "me@x", &nd), KITH_ENOTFOUND);
  op = simple_op(KITH_STORE_CLEAR, NULL, NULL);
  apply_ok(st, "me@x", &op, 1);
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  node_free(&nd);
  kith_store_close(st);
}

/* Two prefixes in one database do not see each other, even when one
 * prefix, as a glob pattern, would match the other's keys. */
static void test_prefix_isolation(void **state)
{
  kith_store_t *a = open_store("?prefix=p*"), *b = open_store("?prefix=pX");
  kith_store_t *c = open_store(""); /* the default prefix, "kith" */
  owners_t o = {{0}, 0, 0};
  node_t nd = {0};

  (void)state;
  assert_int_equal(put_one(a, "me@x", "from-a@x", "va"), KITH_OK);
  assert_int_equal(put_one(b, "me@x", "from-b@x", "vb"), KITH_OK);
  assert_int_equal(put_one(b, "only-b@x", "x@x", "vb"), KITH_OK);
  assert_int_equal(put_one(c, "me@x", "from-c@x", "vc"), KITH_OK);
  assert_int_equal(raw_int("EXISTS kith:{me@x}:meta"), 1);

  assert_int_equal(load(a, "me@x", &nd), KITH_OK);
  assert_string_equal(nd.version, "va");
  assert_int_equal(nd.n, 1);
  assert_non_null(find(&nd, "from-a@x"));
  assert_int_equal(load(a, "only-b@x", &nd), KITH_ENOTFOUND);

  assert_int_equal(kith_store_owners(a, on_owner, &o), KITH_OK);
  assert_int_equal(o.n, 1);
  assert_true(has_owner(&o, "me@x"));
  owners_free(&o);

  assert_int_equal(kith_store_reset(a), KITH_OK);
  assert_int_equal(load(a, "me@x", &nd), KITH_ENOTFOUND);
  assert_int_equal(load(b, "me@x", &nd), KITH_OK);
  assert_string_equal(nd.version, "vb");
  assert_int_equal(kith_store_owners(b, on_owner, &o), KITH_OK);
  assert_int_equal(o.n, 2);
  assert_int_equal(load(c, "me@x", &nd), KITH_OK);
  owners_free(&o);
  node_free(&nd);
  kith_store_close(a);
  kith_store_close(b);
  kith_store_close(c);
}

static void test_reset_spares_foreign_keys(void **state)
{
  kith_store_t *st = open_store("?prefix=kr");
  node_t nd = {0};

  (void)state;
  assert_int_equal(put_one(st, "a@x", "c@x", "v"), KITH_OK);
  assert_int_equal(put_one(st, "b@x", "c@x", "v"), KITH_OK);
  raw_ok("SET kr:other x");
  raw_ok("SET kr:{x}:foo x");
  raw_ok("SET kr:{a{b}:meta x"); /* not an encoding kith writes */
  raw_ok("SET kr:{orphan@x}:items x");
  assert_int_equal(kith_store_reset(st), KITH_OK);
  assert_int_equal(load(st, "a@x", &nd), KITH_ENOTFOUND);
  assert_int_equal(raw_int("EXISTS kr:other kr:{x}:foo kr:{a{b}:meta"), 3);
  assert_int_equal(raw_int("DBSIZE"), 3);
  node_free(&nd);
  kith_store_close(st);
}

static void test_many_owners(void **state)
{
  kith_store_t *st = open_store("?prefix=many");
  owners_t o = {{0}, 0, 0};
  char owner[64];
  int i;

  (void)state;
  for (i = 0; i < 2500; i++) {
    snprintf(owner, sizeof(owner), "user%d@example.com", i);
    /* An empty batch is enough to make an owner known. */
    assert_int_equal(kith_store_apply(st, owner, NULL, 0), KITH_OK);
  }
  assert_int_equal(kith_store_owners(st, on_owner, &o), KITH_OK);
  assert_int_equal(o.calls, 2500);
  owners_free(&o);
  kith_store_close(st);
}

#define BIG 100000

static void test_big_node(void **state)
{
  kith_store_t *st = open_store("?prefix=big");
  static const char *const g[] = {"Friends", "Work"};
  kith_store_op_t *ops = calloc(BIG + 1, sizeof(*ops));
  char(*jids)[32] = calloc(BIG, sizeof(*jids));
  node_t nd = {0};
  double t0, t1, t2;
  int i;

  (void)state;
  assert_true(ops && jids);
  for (i = 0; i < BIG; i++) {
    snprintf(jids[i], sizeof(jids[i]), "contact%06d@example.net", i);
    ops[i] = put(jids[i], i % 2 ? "Some Name" : NULL, g, (size_t)(i % 3), 3);
  }
  ops[BIG] = simple_op(KITH_STORE_VERSION, NULL, "big");
  t0 = now();
  apply_ok(st, "me@x", ops, BIG + 1);
  t1 = now();
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  t2 = now();
  print_message("100k items: apply %.0f ms, load %.0f ms\n", (t1 - t0) * 1000,
                (t2 - t1) * 1000);
  assert_int_equal(nd.n, BIG);
  assert_string_equal(nd.version, "big");
  assert_string_equal(find(&nd, "contact099999@example.net")->name,
                      "Some Name");
  node_free(&nd);
  free(ops);
  free(jids);
  kith_store_close(st);
}

static void test_bad_uris(void **state)
{
  static const char *const bad[] = {
      "redis://",
      "redis://:6379",
      "redis://h:",
      "redis://h:0",
      "redis://h:65536",
      "redis://h:123456",
      "redis://h:abc",
      "redis://h:1x",
      "redis://h/x",
      "redis://h/1x",
      "redis://h/-1",
      "redis://h/99999999999",
      "redis://[::1",
      "redis://[::1]x",
      "redis://[]:6379",
      "redis://::1:6379",
      "redis://fe80::1",
      "redis://u:p@h:6379",
      "redis://h?prefix=",
      "redis://h?prefix=a{b",
      "redis://h?prefix=a}b",
      "redis://h?timeout=0",
      "redis://h?timeout=x",
      "redis://h?timeout=-5",
      "redis://h?timeout=99999999999",
      "redis://h?bogus=1",
      "redis://h?noequals",
      "redis://h#x",
  };
  kith_store_t *st;
  char err[512];
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    st = (kith_store_t *)1;
    err[0] = '\0';
    if (kith_store_open(NULL, bad[i], &st, err, sizeof(err)) != KITH_EINVAL)
      fail_msg("%s was not refused with EINVAL", bad[i]);
    assert_null(st);
    assert_true(strlen(err) > 10);
  }
}

static void test_good_uris(void **state)
{
  const char *tails[] = {"",
                         "/",
                         "/0",
                         "/7",
                         "?timeout=2000",
                         "/0?prefix=a:b&timeout=100&",
                         "/?prefix=x"};
  char uri[256], err[512];
  kith_store_t *st;
  node_t nd = {0};
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
    snprintf(uri, sizeof(uri), "redis://127.0.0.1:%d%s", srv.port, tails[i]);
    st = open_uri(uri);
    assert_string_equal(kith_store_uri(st), uri);
    assert_int_equal(put_one(st, "me@x", "a@x", "v"), KITH_OK);
    kith_store_close(st);
  }
  assert_int_equal(raw_int("EXISTS x:{me@x}:meta a:b:{me@x}:meta"), 2);

  /* Another database is another store. */
  snprintf(uri, sizeof(uri), "redis://127.0.0.1:%d/7", srv.port);
  st = open_uri(uri);
  assert_int_equal(kith_store_reset(st), KITH_OK);
  kith_store_close(st);
  st = open_store("");
  assert_int_equal(load(st, "me@x", &nd), KITH_OK);
  kith_store_close(st);

  /* A database the server does not have; a host by name; IPv6 brackets
   * reach the connect (the server listens on 127.0.0.1 only). */
  snprintf(uri, sizeof(uri), "redis://127.0.0.1:%d/999", srv.port);
  assert_int_equal(kith_store_open(NULL, uri, &st, err, sizeof(err)),
                   KITH_ESTORE);
  assert_non_null(strstr(err, "SELECT 999"));
  snprintf(uri, sizeof(uri), "redis://localhost:%d/0", srv.port);
  st = open_uri(uri);
  kith_store_close(st);
  snprintf(uri, sizeof(uri), "redis://[::1]:%d/0?timeout=500", srv.port);
  if (kith_store_open(NULL, uri, &st, err, sizeof(err)) == KITH_OK)
    kith_store_close(st); /* some hosts map ::1 to the IPv4 listener */
  else
    assert_non_null(strstr(err, "[::1]"));
  node_free(&nd);
}

/* ---- failing allocator --------------------------------------------------- */

/* One whole session with allocation number `fail_at` failing. Returns 1
 * once a run got through without reaching it. */
static int torture_once(long fail_at)
{
  static const char *const g[] = {"A", "B"};
  falloc_t f = {0, 0, 0}; /* only allocation `fail_at` fails */
  kith_allocator_t alloc = falloc_allocator(&f);
  kith_ctx_t *ctx = NULL;
  kith_store_t *st = NULL;
  kith_store_op_t ops[3];
  owners_t o = {{0}, 0, 0};
  node_t nd = {0};
  char uri[128];
  kith_status_t rc;

  assert_int_equal(kith_ctx_new(&alloc, &ctx), KITH_OK);
  f.attempts = 0; /* count from here */
  f.fail_at = fail_at;
  snprintf(uri, sizeof(uri), "redis://127.0.0.1:%d/0?prefix=tt", srv.port);
  rc = kith_store_open(ctx, uri, &st, NULL, 0);
  if (rc == KITH_OK) {
    ops[0] = put("a@x", "A", g, 2, 3);
    ops[1] = simple_op(KITH_STORE_DELETE, "b@x", NULL);
    ops[2] = simple_op(KITH_STORE_VERSION, NULL, "v");
    rc = kith_store_apply(st, "me@x", ops, 3);
    /* All or nothing, whatever failed. */
    if (load(st, "me@x", &nd) == KITH_OK)
      assert_int_equal(nd.n, 1);
    if (rc == KITH_OK)
      rc = kith_store_owners(st, on_owner, &o);
    if (rc == KITH_OK)
      rc = kith_store_reset(st);
  }
  if (rc != KITH_OK && rc != KITH_ENOMEM)
    fail_msg("allocation %ld failing gave %s: %s", fail_at,
             kith_status_name(rc), kith_store_errmsg(st));
  kith_store_close(st);
  kith_ctx_free(ctx);
  owners_free(&o);
  node_free(&nd);
  return f.attempts < fail_at;
}

static void test_failing_allocator(void **state)
{
  long i;

  (void)state;
  for (i = 1; i < 10000; i++) {
    raw_ok("FLUSHALL");
    if (torture_once(i))
      return;
  }
  fail_msg("more than 10000 allocations");
}

static void test_skipped(void **state)
{
  (void)state;
  skip();
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_roundtrip, test_setup),
      cmocka_unit_test_setup(test_lifecycle, test_setup),
      cmocka_unit_test_setup(test_keyslot, test_setup),
      cmocka_unit_test_setup(test_invalid_ops_write_nothing, test_setup),
      cmocka_unit_test_setup(test_refused_batch_writes_nothing, test_setup),
      cmocka_unit_test_setup(test_reconnect_after_client_kill, test_setup),
      cmocka_unit_test_setup(test_no_sigpipe, test_setup),
      cmocka_unit_test_setup(test_reconnect_after_restart, test_setup),
      cmocka_unit_test_setup(test_server_gone, test_setup),
      cmocka_unit_test_setup(test_timeout, test_setup),
      cmocka_unit_test_setup(test_corrupt_values, test_setup),
      cmocka_unit_test_setup(test_prefix_isolation, test_setup),
      cmocka_unit_test_setup(test_reset_spares_foreign_keys, test_setup),
      cmocka_unit_test_setup(test_many_owners, test_setup),
      cmocka_unit_test_setup(test_big_node, test_setup),
      cmocka_unit_test_setup(test_bad_uris, test_setup),
      cmocka_unit_test_setup(test_good_uris, test_setup),
      cmocka_unit_test_setup(test_failing_allocator, test_setup),
  };
  const struct CMUnitTest skipped[] = {cmocka_unit_test(test_skipped)};

  if (!redis_server_available()) {
    printf("skipping the Redis store tests: %s is not installed\n",
           REDIS_SERVER_BIN);
    return cmocka_run_group_tests_name("store_redis (skipped)", skipped, NULL,
                                       NULL);
  }
  return cmocka_run_group_tests_name("store_redis", tests, group_setup,
                                     group_teardown);
}

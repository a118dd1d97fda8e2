/*
 * Stores: the Redis backend, through hiredis (0.14 or later; Redis 4.0 or
 * later for multi-field HSET and UNLINK).
 *
 * Key layout, for the prefix P (option prefix=, default "kith") and an
 * owner O:
 *
 *   P:{E}:meta    hash  "fmt" -> "1"      the owner is known (layout 1)
 *                       "ver" -> version  absent when none is stored
 *   P:{E}:items   hash  contact JID -> encoded item (see encode_item())
 *
 * E is O with '%', '{' and '}' percent-encoded, so the hash tag of both keys
 * is exactly "{E}": never empty, never cut short by a brace inside the JID.
 * Both keys of an owner therefore share one Redis Cluster slot, and every
 * MULTI/EXEC below touches one owner only. The prefix may not contain braces
 * (it would capture the hash tag). Owners are listed by SCAN MATCH over the
 * meta keys, so no index spans slots.
 *
 * Every call is one round trip of pipelined commands. A lost connection is
 * regained and the call sent once more. This is safe because a new
 * connection never inherits a half-sent MULTI (Redis discards a
 * transaction whose client went away before EXEC), and because every batch
 * is idempotent: applying it twice leaves what applying it once does. A
 * timeout is not retried, so a call never waits much beyond the timeout.
 * (A retry can undo what another process wrote to the same owner in
 * between; kith expects one writer per owner, as in a component takeover.)
 *
 * Redis does not roll back a transaction whose command fails at run time.
 * Ours can only fail on a key that holds another type than a hash, that is
 * data kith did not write; such an owner is reported as KITH_ECORRUPT and
 * is damaged already, so a batch landing half on it loses nothing valid.
 *
 * On Redis Cluster, hiredis 0.14 follows no MOVED redirections: point the
 * URI at a proxy or a node that owns the slots. owners() and reset() SCAN
 * the one server connected to.
 *
 * hiredis 0.14 allocates with plain malloc (allocator hooks arrived in
 * hiredis 1.0), so replies bypass kith's allocator; everything kith builds
 * itself goes through it.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "core/ctx.h"
#include "store/store.h"

#define DEFAULT_PORT 6379
#define DEFAULT_PREFIX "kith"
#define DEFAULT_TIMEOUT_MS 5000
#define LAYOUT "1"
/* Contacts per HSET/HDEL command: large batches go out in slices. */
#define SLICE_ITEMS 1000
/* No single argument or command kith builds may exceed Redis's own bulk
 * limit (proto-max-bulk-len, 512 MiB). */
#define ARG_CAP (512u * 1024 * 1024)
#define SCAN_COUNT "1000"

typedef struct redis_store {
  kith_ctx_t *ctx;
  redisContext *c; /* NULL while disconnected */
  char *host;      /* without IPv6 brackets */
  int port;
  int db;
  int timeout_ms;
  char *prefix;
  char where[300]; /* "HOST:PORT/DB" for messages */
  int lost;        /* the last failure was a lost connection */
  char err[512];   /* why the current call fails */
} redis_store_t;

/* Replies of one round trip, owned by the caller (not by the store, so a
 * sink or owner callback may call the store again). */
typedef struct replies {
  redisReply **v;
  size_t n, cap;
} replies_t;

/* One command being built; every argument is copied into `data`. */
typedef struct cmd {
  kith__buf_t data;
  size_t *off, *len;
  const char **argv;
  size_t argc, cap;
} cmd_t;

static kith_status_t fail(redis_store_t *r, kith_status_t rc, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));

static kith_status_t fail(redis_store_t *r, kith_status_t rc, const char *fmt,
                          ...)
{
  int n = snprintf(r->err, sizeof(r->err),
                   "redis store%s%s: ", r->where[0] ? " " : "", r->where);
  va_list ap;

  if (n < 0 || (size_t)n >= sizeof(r->err))
    n = 0;
  va_start(ap, fmt);
  vsnprintf(r->err + n, sizeof(r->err) - (size_t)n, fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- SIGPIPE ------------------------------------------------------------
 * hiredis writes with write(2), which raises SIGPIPE on a connection the
 * server has reset. A library must not kill its process for that, nor
 * change the process's signal handling, so SIGPIPE is blocked around our
 * I/O and a SIGPIPE we caused is consumed (the way libpq does it). */

typedef struct sigpipe_guard {
  sigset_t old;
  int was_pending;
} sigpipe_guard_t;

static void sigpipe_block(sigpipe_guard_t *g)
{
  sigset_t set, pending;

  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &g->old);
  sigemptyset(&pending);
  sigpending(&pending);
  g->was_pending = sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_restore(const sigpipe_guard_t *g)
{
  sigset_t set, pending;
  struct timespec zero = {0, 0};
  int saved = errno;

  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  sigemptyset(&pending);
  if (!g->was_pending && sigpending(&pending) == 0 &&
      sigismember(&pending, SIGPIPE) == 1)
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
      ;
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
  errno = saved;
}

/* ---- Replies and commands ---------------------------------------------- */

static void replies_free(redis_store_t *r, replies_t *rs)
{
  size_t i;

  for (i = 0; i < rs->n; i++)
    if (rs->v[i])
      freeReplyObject(rs->v[i]);
  kith__free(r->ctx, rs->v);
  rs->v = NULL;
  rs->n = rs->cap = 0;
}

static void cmd_init(cmd_t *cm, kith_ctx_t *ctx)
{
  memset(cm, 0, sizeof(*cm));
  kith__buf_init(&cm->data, ctx, ARG_CAP);
}

static void cmd_free(cmd_t *cm)
{
  kith_ctx_t *ctx = cm->data.ctx;

  kith__free(ctx, cm->off);
  kith__free(ctx, cm->len);
  kith__free(ctx, (void *)cm->argv);
  kith__buf_free(&cm->data);
}

static kith_status_t cmd_arg(cmd_t *cm, const void *p, size_t len)
{
  kith_ctx_t *ctx = cm->data.ctx;
  size_t off = cm->data.len;
  kith_status_t rc;

  if (cm->argc == cm->cap) {
    size_t cap = cm->cap ? cm->cap * 2 : 16;
    size_t *o = kith__realloc(ctx, cm->off, cap * sizeof(*o));
    size_t *l = o ? kith__realloc(ctx, cm->len, cap * sizeof(*l)) : NULL;

    if (o)
      cm->off = o;
    if (l == NULL)
      return KITH_ENOMEM;
    cm->len = l;
    cm->cap = cap;
  }
  if ((rc = kith__buf_add(&cm->data, p, len)) != KITH_OK)
    return rc;
  cm->off[cm->argc] = off;
  cm->len[cm->argc++] = len;
  return KITH_OK;
}

static kith_status_t cmd_args(cmd_t *cm, const char *s)
{
  return cmd_arg(cm, s, strlen(s));
}

/* Queue the command on the connection (nothing is written yet) and empty
 * `cm` for the next one. */
static kith_status_t cmd_append(cmd_t *cm, redisContext *c, size_t *ncmds)
{
  kith_ctx_t *ctx = cm->data.ctx;
  const char **argv;
  size_t i;
  int ok;

  argv = kith__realloc(ctx, (void *)cm->argv, cm->cap * sizeof(*argv));
  if (argv == NULL)
    return KITH_ENOMEM;
  cm->argv = argv;
  for (i = 0; i < cm->argc; i++)
    argv[i] = cm->data.data + cm->off[i];
  ok = redisAppendCommandArgv(c, (int)cm->argc, argv, cm->len) == REDIS_OK;
  cm->argc = 0;
  kith__buf_reset(&cm->data);
  if (!ok)
    return KITH_ENOMEM;
  (*ncmds)++;
  return KITH_OK;
}

/* Queue a command of up to four C-string arguments (NULLs end it). */
static kith_status_t simple(cmd_t *cm, redisContext *c, size_t *ncmds,
                            const char *a0, const char *a1, const char *a2,
                            const char *a3)
{
  const char *a[4] = {a0, a1, a2, a3};
  kith_status_t rc = KITH_OK;
  size_t i;

  for (i = 0; i < 4 && a[i] && rc == KITH_OK; i++)
    rc = cmd_args(cm, a[i]);
  return rc == KITH_OK ? cmd_append(cm, c, ncmds) : rc;
}

/* ---- Connection --------------------------------------------------------- */

static void disconnect(redis_store_t *r)
{
  if (r->c)
    redisFree(r->c);
  r->c = NULL;
}

/* Read `n` replies into `rs`. On failure the connection is closed (it may
 * hold a half-sent pipeline) and r->lost says whether it was lost, which is
 * worth one retry, rather than timed out. */
static kith_status_t read_replies(redis_store_t *r, size_t n, replies_t *rs)
{
  sigpipe_guard_t g;
  void *reply = NULL;
  int ok = 1, saved = 0, timedout;

  r->lost = 0;
  if (n > rs->cap) {
    redisReply **v = kith__realloc(r->ctx, rs->v, n * sizeof(*v));

    if (v == NULL) {
      disconnect(r); /* it holds commands whose replies go unread */
      return fail(r, KITH_ENOMEM, "out of memory");
    }
    rs->v = v;
    rs->cap = n;
  }
  sigpipe_block(&g);
  while (rs->n < n) {
    errno = 0;
    if (redisGetReply(r->c, &reply) != REDIS_OK) {
      ok = 0;
      break;
    }
    rs->v[rs->n++] = reply;
  }
  saved = errno;
  sigpipe_restore(&g);
  if (ok)
    return KITH_OK;
  if (r->c->err == REDIS_ERR_OOM) {
    disconnect(r);
    return fail(r, KITH_ENOMEM, "out of memory");
  }
  timedout =
      r->c->err == REDIS_ERR_IO && (saved == EAGAIN || saved == EWOULDBLOCK);
  r->lost =
      !timedout && (r->c->err == REDIS_ERR_EOF || r->c->err == REDIS_ERR_IO);
  if (timedout)
    fail(r, KITH_ESTORE, "no answer within %d ms (option timeout=)",
         r->timeout_ms);
  else if (r->lost)
    fail(r, KITH_ESTORE, "connection lost: %s", r->c->errstr);
  else
    fail(r, KITH_ESTORE, "protocol error: %s", r->c->errstr);
  disconnect(r);
  return KITH_ESTORE;
}

/* Name the connection (visible in CLIENT LIST) and select the database. */
static kith_status_t handshake(redis_store_t *r, const char *how)
{
  replies_t rs = {NULL, 0, 0};
  char db[16];
  cmd_t cm;
  size_t n = 0;
  kith_status_t rc;

  snprintf(db, sizeof(db), "%d", r->db);
  cmd_init(&cm, r->ctx);
  rc = simple(&cm, r->c, &n, "CLIENT", "SETNAME", "kith-store", NULL);
  if (rc == KITH_OK)
    rc = simple(&cm, r->c, &n, "SELECT", db, NULL, NULL);
  cmd_free(&cm);
  if (rc != KITH_OK)
    rc = fail(r, rc, "out of memory");
  else if ((rc = read_replies(r, n, &rs)) != KITH_OK && rc != KITH_ENOMEM)
    rc = fail(r, rc, "%s: %s", how,
              r->lost ? "connection lost in the handshake"
                      : "no answer to the handshake");
  else if (rs.n == 2 && rs.v[1]->type == REDIS_REPLY_ERROR)
    rc = fail(r, KITH_ESTORE, "SELECT %d: %s", r->db, rs.v[1]->str);
  /* CLIENT SETNAME may be refused (by a proxy, say): the name is only a
   * courtesy to whoever reads CLIENT LIST. */
  replies_free(r, &rs);
  if (rc != KITH_OK)
    disconnect(r);
  return rc;
}

/* Connect, or reconnect when `again`, and say which in a failure. */
static kith_status_t connect_now(redis_store_t *r, int again)
{
  const char *how =
      again ? "connection lost; cannot reconnect" : "cannot connect";
  struct timeval tv;
  redisContext *c;

  tv.tv_sec = r->timeout_ms / 1000;
  tv.tv_usec = (r->timeout_ms % 1000) * 1000;
  if ((c = redisConnectWithTimeout(r->host, r->port, tv)) == NULL)
    return fail(r, KITH_ENOMEM, "out of memory");
  if (c->err) {
    fail(r, KITH_ESTORE, "%s: %s", how, c->errstr);
    redisFree(c);
    return KITH_ESTORE;
  }
  /* redisConnectWithTimeout() bounds the connect only; this bounds every
   * read and write as well. */
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    fail(r, KITH_ESTORE, "cannot set the timeout: %s", c->errstr);
    redisFree(c);
    return KITH_ESTORE;
  }
  redisEnableKeepAlive(c);
  r->c = c;
  return handshake(r, how);
}

/* Appends one call's commands to r->c and counts them in *ncmds. */
typedef kith_status_t (*append_fn)(redis_store_t *r, void *ud, size_t *ncmds);

/*
 * One round trip: connect if needed, queue the commands, send them, read
 * every reply into `rs`. A connection lost on the way is regained and the
 * whole exchange sent once more (see the top of the file for why that is
 * safe). Error replies are left in `rs` for the caller to judge.
 */
static kith_status_t roundtrip(redis_store_t *r, append_fn append, void *ud,
                               replies_t *rs)
{
  kith_status_t rc;
  size_t n;
  int attempt;

  for (attempt = 0;; attempt++) {
    replies_free(r, rs);
    if (r->c == NULL && (rc = connect_now(r, attempt > 0)) != KITH_OK)
      return rc;
    n = 0;
    if ((rc = append(r, ud, &n)) != KITH_OK) {
      /* Queued commands were not sent: drop them with the connection. */
      disconnect(r);
      if (rc == KITH_ELIMIT)
        return fail(r, KITH_EINVAL,
                    "a value is larger than Redis takes "
                    "(512 MiB)");
      return fail(r, rc, "out of memory");
    }
    if ((rc = read_replies(r, n, rs)) == KITH_OK)
      return KITH_OK;
    if (!r->lost || attempt > 0)
      return rc;
    kith__debug(r->ctx, "store", "redis %s: %s; reconnecting", r->where,
                r->err);
  }
}

/* ---- Keys and items ----------------------------------------------------- */

typedef struct keys {
  kith__buf_t items, meta;
} keys_t;

/* P:{E}:suffix, E being the owner with '%', '{' and '}' percent-encoded. */
static kith_status_t key_build(kith__buf_t *b, const char *prefix,
                               const char *owner, const char *suffix)
{
  kith_status_t rc;
  const char *p;

  kith__buf_reset(b);
  rc = kith__buf_adds(b, prefix);
  if (rc == KITH_OK)
    rc = kith__buf_adds(b, ":{");
  for (p = owner; *p && rc == KITH_OK; p++) {
    if (*p == '%')
      rc = kith__buf_adds(b, "%25");
    else if (*p == '{')
      rc = kith__buf_adds(b, "%7B");
    else if (*p == '}')
      rc = kith__buf_adds(b, "%7D");
    else
      rc = kith__buf_addc(b, *p);
  }
  if (rc == KITH_OK)
    rc = kith__buf_adds(b, "}:");
  return rc == KITH_OK ? kith__buf_adds(b, suffix) : rc;
}

static void keys_free(keys_t *k)
{
  kith__buf_free(&k->items);
  kith__buf_free(&k->meta);
}

static kith_status_t keys_make(redis_store_t *r, const char *owner, keys_t *k)
{
  kith_status_t rc;

  kith__buf_init(&k->items, r->ctx, ARG_CAP);
  kith__buf_init(&k->meta, r->ctx, ARG_CAP);
  rc = key_build(&k->items, r->prefix, owner, "items");
  if (rc == KITH_OK)
    rc = key_build(&k->meta, r->prefix, owner, "meta");
  if (rc != KITH_OK)
    keys_free(k);
  return rc;
}

/*
 * The owner encoded in `key`, when it is one of ours: PREFIX:{E}:SUFFIX
 * with a well-formed E. Written into `out` (emptied first).
 */
static int owner_from_key(const char *prefix, const char *suffix,
                          const char *key, size_t klen, kith__buf_t *out)
{
  size_t plen = strlen(prefix), slen = strlen(suffix), i;
  const char *e;
  size_t elen;

  kith__buf_reset(out);
  if (klen < plen + slen + 4 || memcmp(key, prefix, plen) != 0 ||
      memcmp(key + plen, ":{", 2) != 0 ||
      memcmp(key + klen - slen - 2, "}:", 2) != 0 ||
      memcmp(key + klen - slen, suffix, slen) != 0)
    return 0;
  e = key + plen + 2;
  elen = klen - plen - slen - 4;
  for (i = 0; i < elen; i++) {
    char ch = e[i];

    if (ch == '{' || ch == '}' || ch == '\0')
      return 0;
    if (ch == '%') {
      if (i + 3 > elen)
        return 0;
      if (memcmp(e + i, "%25", 3) == 0)
        ch = '%';
      else if (memcmp(e + i, "%7B", 3) == 0)
        ch = '{';
      else if (memcmp(e + i, "%7D", 3) == 0)
        ch = '}';
      else
        return 0;
      i += 2;
    }
    if (kith__buf_addc(out, ch) != KITH_OK)
      return -1;
  }
  return out->len > 0;
}

static kith_status_t add_str(kith__buf_t *b, const char *s)
{
  size_t len = strlen(s);
  kith_status_t rc = kith__buf_printf(b, "%zu:", len);

  return rc == KITH_OK ? kith__buf_add(b, s, len) : rc;
}

/*
 * An item's stored value, binary-safe and self-delimiting:
 *   FLAGS SP NAME SP NGROUPS (SP GROUP)*
 * FLAGS and NGROUPS are decimal; NAME is "-" when there is none; NAME and
 * every GROUP are LEN ":" BYTES. For example 3 5:Alice 2 7:Friends 4:Work.
 */
static kith_status_t encode_item(kith__buf_t *b, const kith_store_item_t *it)
{
  kith_status_t rc;
  size_t i;

  kith__buf_reset(b);
  rc = kith__buf_printf(b, "%u ", it->flags & KITH_STORE_FLAG_MASK);
  if (rc == KITH_OK)
    rc = it->name ? add_str(b, it->name) : kith__buf_addc(b, '-');
  if (rc == KITH_OK)
    rc = kith__buf_printf(b, " %zu", it->ngroups);
  for (i = 0; i < it->ngroups && rc == KITH_OK; i++)
    if ((rc = kith__buf_addc(b, ' ')) == KITH_OK)
      rc = add_str(b, it->groups[i]);
  return rc;
}

typedef struct dec {
  char *p, *end;
} dec_t;

/* A decimal number no larger than `max`. */
static int dec_num(dec_t *d, unsigned long long max, unsigned long long *out)
{
  unsigned long long v = 0;
  char *start = d->p;

  while (d->p < d->end && *d->p >= '0' && *d->p <= '9') {
    unsigned digit = (unsigned)(*d->p++ - '0');

    if (v > (max - digit) / 10)
      return 0;
    v = v * 10 + digit;
  }
  *out = v;
  return d->p > start;
}

/* LEN ":" BYTES, NUL-terminated in place: the byte after BYTES (a space,
 * or the NUL hiredis puts after every string) becomes the terminator, so
 * it is checked first and `*sep` says what it was. */
static int dec_str(dec_t *d, const char **s, char *sep)
{
  unsigned long long len;

  if (!dec_num(d, (unsigned long long)(d->end - d->p), &len) ||
      d->p >= d->end || *d->p++ != ':' || len > (size_t)(d->end - d->p))
    return 0;
  if (memchr(d->p, '\0', (size_t)len) != NULL)
    return 0;
  *s = d->p;
  d->p += len;
  if (d->p < d->end && *d->p != ' ')
    return 0;
  *sep = d->p < d->end ? *d->p : '\0';
  *d->p = '\0';
  if (d->p < d->end)
    d->p++;
  return 1;
}

/* Decode `value` (modified in place) into `it`; `groups` grows to fit. */
static int decode_item(kith_ctx_t *ctx, char *value, size_t len,
                       kith_store_item_t *it, const char ***groups,
                       size_t *gcap)
{
  dec_t d = {value, value + len};
  unsigned long long flags, n, i;
  char sep = '\0';

  if (!dec_num(&d, KITH_STORE_FLAG_MASK, &flags) ||
      (flags & ~(unsigned long long)KITH_STORE_FLAG_MASK) != 0 ||
      d.p >= d.end || *d.p++ != ' ')
    return 0;
  it->flags = (unsigned)flags;
  it->name = NULL;
  if (d.p < d.end && *d.p == '-' && d.p + 1 < d.end && d.p[1] == ' ')
    d.p += 2;
  else if (!dec_str(&d, &it->name, &sep) || sep != ' ')
    return 0;
  /* Each group takes at least three bytes (" 0:"): bound the count before
   * allocating for it. */
  if (!dec_num(&d, (unsigned long long)(d.end - d.p) / 3, &n))
    return 0;
  if (n > *gcap) {
    const char **g = kith__realloc(ctx, (void *)*groups, n * sizeof(*g));

    if (g == NULL)
      return -1;
    *groups = g;
    *gcap = n;
  }
  if (n > 0 && (d.p >= d.end || *d.p++ != ' '))
    return 0;
  for (i = 0; i < n; i++)
    if (!dec_str(&d, &(*groups)[i], &sep) || (i + 1 < n) != (sep == ' '))
      return 0;
  it->groups = *groups;
  it->ngroups = (size_t)n;
  return d.p == d.end;
}

/* ---- apply -------------------------------------------------------------- */

typedef struct apply_call {
  const keys_t *k;
  const kith_store_op_t *ops;
  size_t n;
  kith__buf_t val;   /* one encoded item */
  kith__buf_t kinds; /* per command inside MULTI: 'i'tems, 'm'eta, 'b'oth */
} apply_call_t;

static kith_status_t validate(redis_store_t *r, const kith_store_op_t *ops,
                              size_t n)
{
  static const char *const names[] = {"put", "delete", "version", "clear",
                                      "drop"};
  size_t i, g;

  for (i = 0; i < n; i++) {
    const kith_store_op_t *op = &ops[i];

    if ((unsigned)op->type > KITH_STORE_DROP)
      return fail(r, KITH_EINVAL, "operation %zu: unknown type %d", i,
                  (int)op->type);
    if (op->type != KITH_STORE_PUT && op->type != KITH_STORE_DELETE)
      continue;
    if (op->item.jid == NULL)
      return fail(r, KITH_EINVAL, "operation %zu (%s): no JID", i,
                  names[op->type]);
    if (op->type == KITH_STORE_DELETE)
      continue;
    if (op->item.ngroups > 0 && op->item.groups == NULL)
      return fail(r, KITH_EINVAL,
                  "operation %zu (put %s): %zu groups but "
                  "no group array",
                  i, op->item.jid, op->item.ngroups);
    for (g = 0; g < op->item.ngroups; g++)
      if (op->item.groups[g] == NULL)
        return fail(r, KITH_EINVAL,
                    "operation %zu (put %s): group %zu is "
                    "NULL",
                    i, op->item.jid, g);
  }
  return KITH_OK;
}

/* Queue one command and note which key it writes. */
static kith_status_t queue(apply_call_t *a, cmd_t *cm, redisContext *c,
                           size_t *ncmds, char kind)
{
  kith_status_t rc = cmd_append(cm, c, ncmds);

  return rc == KITH_OK ? kith__buf_addc(&a->kinds, kind) : rc;
}

/* A run of PUTs (one HSET) or DELETEs (one HDEL) from ops[i], in slices of
 * SLICE_ITEMS contacts or about a megabyte. Order is kept: a later PUT of
 * the same JID in one HSET wins, as it would alone. */
static kith_status_t append_run(redis_store_t *r, apply_call_t *a, cmd_t *cm,
                                size_t i, size_t *next, size_t *ncmds)
{
  kith_store_op_type_t t = a->ops[i].type;
  kith_status_t rc;
  size_t j;

  rc = cmd_args(cm, t == KITH_STORE_PUT ? "HSET" : "HDEL");
  if (rc == KITH_OK)
    rc = cmd_arg(cm, a->k->items.data, a->k->items.len);
  for (j = i; j < a->n && a->ops[j].type == t && rc == KITH_OK; j++) {
    const kith_store_item_t *it = &a->ops[j].item;

    if (j > i && (j - i == SLICE_ITEMS || cm->data.len > (1u << 20)))
      break;
    rc = cmd_args(cm, it->jid);
    if (rc == KITH_OK && t == KITH_STORE_PUT &&
        (rc = encode_item(&a->val, it)) == KITH_OK)
      rc = cmd_arg(cm, a->val.data, a->val.len);
  }
  *next = j;
  return rc == KITH_OK ? queue(a, cm, r->c, ncmds, 'i') : rc;
}

static kith_status_t append_op(redis_store_t *r, apply_call_t *a, cmd_t *cm,
                               size_t i, size_t *next, size_t *ncmds)
{
  const kith_store_op_t *op = &a->ops[i];
  const char *items = a->k->items.data, *meta = a->k->meta.data;
  kith_status_t rc;

  *next = i + 1;
  switch (op->type) {
  case KITH_STORE_PUT:
  case KITH_STORE_DELETE:
    return append_run(r, a, cm, i, next, ncmds);
  case KITH_STORE_VERSION:
    if (op->version == NULL)
      rc = cmd_args(cm, "HDEL");
    else
      rc = cmd_args(cm, "HSET");
    if (rc == KITH_OK)
      rc = cmd_args(cm, meta);
    if (rc == KITH_OK)
      rc = cmd_args(cm, "ver");
    if (rc == KITH_OK && op->version)
      rc = cmd_args(cm, op->version);
    return rc == KITH_OK ? queue(a, cm, r->c, ncmds, 'm') : rc;
  case KITH_STORE_CLEAR:
    /* UNLINK frees a big hash in the background instead of stalling the
     * server. */
    if ((rc = cmd_args(cm, "UNLINK")) == KITH_OK &&
        (rc = cmd_args(cm, items)) == KITH_OK &&
        (rc = queue(a, cm, r->c, ncmds, 'i')) == KITH_OK)
      rc = simple(cm, r->c, ncmds, "HDEL", meta, "ver", NULL);
    return rc == KITH_OK ? kith__buf_addc(&a->kinds, 'm') : rc;
  case KITH_STORE_DROP:
    rc = simple(cm, r->c, ncmds, "UNLINK", items, meta, NULL);
    return rc == KITH_OK ? kith__buf_addc(&a->kinds, 'b') : rc;
  }
  return KITH_EINVAL; /* validate() let no other type through */
}

static kith_status_t append_apply(redis_store_t *r, void *ud, size_t *ncmds)
{
  apply_call_t *a = ud;
  kith_status_t rc;
  size_t i, next;
  cmd_t cm;

  cmd_init(&cm, r->ctx);
  kith__buf_reset(&a->kinds);
  rc = simple(&cm, r->c, ncmds, "MULTI", NULL, NULL, NULL);
  for (i = 0; i < a->n && rc == KITH_OK; i = next)
    rc = append_op(r, a, &cm, i, &next, ncmds);
  /* Any batch makes the owner known, unless it ends by forgetting it. */
  if (rc == KITH_OK && (a->n == 0 || a->ops[a->n - 1].type != KITH_STORE_DROP))
    if ((rc = simple(&cm, r->c, ncmds, "HSET", a->k->meta.data, "fmt",
                     LAYOUT)) == KITH_OK)
      rc = kith__buf_addc(&a->kinds, 'm');
  if (rc == KITH_OK)
    rc = simple(&cm, r->c, ncmds, "EXEC", NULL, NULL, NULL);
  cmd_free(&cm);
  return rc;
}

static const char *kind_key(const apply_call_t *a, char kind)
{
  if (kind == 'i')
    return a->k->items.data;
  if (kind == 'm')
    return a->k->meta.data;
  return a->k->meta.data; /* UNLINK of both cannot fail on a type */
}

/*
 * Judge the replies: MULTI, one QUEUED per command, then EXEC. A command
 * refused while queueing (out of memory on the server, say) makes EXEC
 * discard the whole transaction: nothing was written. A command failing
 * inside EXEC can only be a key holding another type than ours, which
 * Redis does not roll back; that owner's data is then damaged anyway.
 */
static kith_status_t check_apply(redis_store_t *r, const apply_call_t *a,
                                 const replies_t *rs)
{
  const redisReply *exec = rs->v[rs->n - 1];
  size_t nq = rs->n - 2, i;

  for (i = 0; i + 1 < rs->n; i++)
    if (rs->v[i]->type == REDIS_REPLY_ERROR)
      return fail(r, KITH_ESTORE,
                  "batch for key %s refused, nothing "
                  "written: %s",
                  a->k->items.data, rs->v[i]->str);
  if (exec->type == REDIS_REPLY_ERROR)
    return fail(r, KITH_ESTORE,
                "batch for key %s refused, nothing "
                "written: %s",
                a->k->items.data, exec->str);
  if (exec->type != REDIS_REPLY_ARRAY || exec->elements != nq)
    return fail(r, KITH_ECORRUPT,
                "key %s: unexpected reply to EXEC (type "
                "%d)",
                a->k->items.data, exec->type);
  for (i = 0; i < nq; i++)
    if (exec->element[i]->type == REDIS_REPLY_ERROR)
      return fail(r, KITH_ECORRUPT,
                  "key %s: %s (not written by kith; the "
                  "owner's data is damaged)",
                  kind_key(a, a->kinds.data[i]), exec->element[i]->str);
  return KITH_OK;
}

static kith_status_t redis_apply(kith_store_t *store, void *impl,
                                 const char *owner, const kith_store_op_t *ops,
                                 size_t n)
{
  redis_store_t *r = impl;
  replies_t rs = {NULL, 0, 0};
  apply_call_t a;
  keys_t k;
  kith_status_t rc;

  r->err[0] = '\0';
  if (*owner == '\0')
    rc = fail(r, KITH_EINVAL, "empty owner");
  else if ((rc = validate(r, ops, n)) == KITH_OK &&
           (rc = keys_make(r, owner, &k)) == KITH_OK) {
    memset(&a, 0, sizeof(a));
    a.k = &k;
    a.ops = ops;
    a.n = n;
    kith__buf_init(&a.val, r->ctx, ARG_CAP);
    kith__buf_init(&a.kinds, r->ctx, ARG_CAP);
    if ((rc = roundtrip(r, append_apply, &a, &rs)) == KITH_OK)
      rc = check_apply(r, &a, &rs);
    replies_free(r, &rs);
    kith__buf_free(&a.val);
    kith__buf_free(&a.kinds);
    keys_free(&k);
  }
  if (rc != KITH_OK && r->err[0])
    kith_store_set_error(store, "%s", r->err);
  return rc;
}

/* ---- load --------------------------------------------------------------- */

static kith_status_t append_load(redis_store_t *r, void *ud, size_t *ncmds)
{
  const keys_t *k = ud;
  kith_status_t rc;
  cmd_t cm;

  /* One transaction, so the version and the items are one snapshot. */
  cmd_init(&cm, r->ctx);
  rc = simple(&cm, r->c, ncmds, "MULTI", NULL, NULL, NULL);
  if (rc == KITH_OK)
    rc = simple(&cm, r->c, ncmds, "HGETALL", k->meta.data, NULL, NULL);
  if (rc == KITH_OK)
    rc = simple(&cm, r->c, ncmds, "HGETALL", k->items.data, NULL, NULL);
  if (rc == KITH_OK)
    rc = simple(&cm, r->c, ncmds, "EXEC", NULL, NULL, NULL);
  cmd_free(&cm);
  return rc;
}

/* A hash as HGETALL returns it, or ECORRUPT naming the key. */
static kith_status_t check_hash(redis_store_t *r, const char *key,
                                const redisReply *h)
{
  size_t i;

  if (h->type == REDIS_REPLY_ERROR)
    return fail(r, KITH_ECORRUPT, "key %s: %s", key, h->str);
  if (h->type != REDIS_REPLY_ARRAY || h->elements % 2 != 0)
    return fail(r, KITH_ECORRUPT, "key %s: unexpected reply (type %d)", key,
                h->type);
  for (i = 0; i < h->elements; i++)
    if (h->element[i]->type != REDIS_REPLY_STRING)
      return fail(r, KITH_ECORRUPT,
                  "key %s: unexpected reply element "
                  "(type %d)",
                  key, h->element[i]->type);
  return KITH_OK;
}

static int is(const redisReply *s, const char *text)
{
  return s->len == strlen(text) && memcmp(s->str, text, s->len) == 0;
}

/* The meta hash: known or not, the layout, the version. */
static kith_status_t load_meta(redis_store_t *r, const char *key,
                               const redisReply *h, const char **ver)
{
  const redisReply *fmt = NULL, *vr = NULL;
  kith_status_t rc;
  size_t i;

  *ver = NULL;
  if ((rc = check_hash(r, key, h)) != KITH_OK)
    return rc;
  if (h->elements == 0)
    return KITH_ENOTFOUND;
  for (i = 0; i < h->elements; i += 2) {
    if (is(h->element[i], "fmt"))
      fmt = h->element[i + 1];
    else if (is(h->element[i], "ver"))
      vr = h->element[i + 1];
  }
  if (fmt == NULL)
    return fail(r, KITH_ECORRUPT, "key %s: no \"fmt\" field", key);
  if (!is(fmt, LAYOUT))
    return fail(r, KITH_ECORRUPT,
                "key %s: layout \"%s\" is not one this "
                "kith reads (" LAYOUT ")",
                key, fmt->str);
  if (vr && memchr(vr->str, '\0', vr->len) != NULL)
    return fail(r, KITH_ECORRUPT, "key %s: the version holds a NUL byte", key);
  *ver = vr ? vr->str : NULL;
  return KITH_OK;
}

/* Feed every item to the sink; the reply strings are decoded in place. */
static kith_status_t load_items(redis_store_t *r, const char *key,
                                const redisReply *h,
                                const kith_store_sink_t *sink)
{
  const char **groups = NULL;
  size_t gcap = 0, i;
  kith_status_t rc;
  int ok;

  if ((rc = check_hash(r, key, h)) != KITH_OK)
    return rc;
  for (i = 0; i < h->elements && rc == KITH_OK; i += 2) {
    const redisReply *f = h->element[i], *v = h->element[i + 1];
    kith_store_item_t it;

    if (memchr(f->str, '\0', f->len) != NULL)
      ok = 0;
    else if ((ok = decode_item(r->ctx, v->str, v->len, &it, &groups, &gcap)) ==
             1) {
      it.jid = f->str;
      rc = sink->item(sink->ud, &it);
    }
    if (ok < 0)
      rc = fail(r, KITH_ENOMEM, "out of memory");
    else if (!ok)
      rc = fail(r, KITH_ECORRUPT,
                "key %s: the item of field \"%.*s\" "
                "cannot be decoded",
                key, (int)(f->len > 200 ? 200 : f->len), f->str);
  }
  kith__free(r->ctx, (void *)groups);
  return rc;
}

static kith_status_t redis_load(kith_store_t *store, void *impl,
                                const char *owner,
                                const kith_store_sink_t *sink)
{
  redis_store_t *r = impl;
  replies_t rs = {NULL, 0, 0};
  const redisReply *exec;
  const char *ver;
  kith_status_t rc;
  keys_t k;

  r->err[0] = '\0';
  if (*owner == '\0')
    return KITH_ENOTFOUND; /* apply() never takes an empty owner */
  if ((rc = keys_make(r, owner, &k)) != KITH_OK)
    return rc;
  if ((rc = roundtrip(r, append_load, &k, &rs)) == KITH_OK) {
    exec = rs.v[3];
    if (exec->type == REDIS_REPLY_ERROR)
      rc = fail(r, KITH_ESTORE, "key %s: %s", k.items.data, exec->str);
    else if (exec->type != REDIS_REPLY_ARRAY || exec->elements != 2)
      rc = fail(r, KITH_ECORRUPT,
                "key %s: unexpected reply to EXEC (type "
                "%d)",
                k.items.data, exec->type);
    else if ((rc = load_meta(r, k.meta.data, exec->element[0], &ver)) ==
             KITH_OK) {
      /* Check the items before the version reaches the sink, so a damaged
       * node is refused before any of it is passed on. */
      if ((rc = check_hash(r, k.items.data, exec->element[1])) == KITH_OK &&
          sink->version)
        rc = sink->version(sink->ud, ver);
      if (rc == KITH_OK)
        rc = load_items(r, k.items.data, exec->element[1], sink);
    }
  }
  replies_free(r, &rs);
  keys_free(&k);
  if (rc != KITH_OK && r->err[0])
    kith_store_set_error(store, "%s", r->err);
  return rc;
}

/* ---- owners and reset --------------------------------------------------- */

/* Owners already reported: SCAN may return a key twice when the keyspace
 * shrinks while it runs, and every owner is reported once. An open
 * addressing set of owned strings. */
typedef struct seen {
  kith_ctx_t *ctx;
  char **slot;
  size_t cap, n;
} seen_t;

static uint64_t hash_str(const char *s)
{
  uint64_t h = 14695981039346656037ull; /* FNV-1a */

  while (*s)
    h = (h ^ (unsigned char)*s++) * 1099511628211ull;
  return h;
}

static char **seen_find(char **slot, size_t cap, const char *s)
{
  size_t i = (size_t)hash_str(s) & (cap - 1);

  while (slot[i] && strcmp(slot[i], s) != 0)
    i = (i + 1) & (cap - 1);
  return &slot[i];
}

static kith_status_t seen_grow(seen_t *set)
{
  size_t cap = set->cap ? set->cap * 2 : 64, i;
  char **slot = kith__calloc(set->ctx, cap, sizeof(*slot));

  if (slot == NULL)
    return KITH_ENOMEM;
  for (i = 0; i < set->cap; i++)
    if (set->slot[i])
      *seen_find(slot, cap, set->slot[i]) = set->slot[i];
  kith__free(set->ctx, set->slot);
  set->slot = slot;
  set->cap = cap;
  return KITH_OK;
}

/* *added is 1 when `s` was not in the set yet. */
static kith_status_t seen_add(seen_t *set, const char *s, int *added)
{
  char **p;

  *added = 0;
  if ((set->n + 1) * 2 > set->cap && seen_grow(set) != KITH_OK)
    return KITH_ENOMEM;
  p = seen_find(set->slot, set->cap, s);
  if (*p)
    return KITH_OK;
  if ((*p = kith__strdup(set->ctx, s)) == NULL)
    return KITH_ENOMEM;
  set->n++;
  *added = 1;
  return KITH_OK;
}

static void seen_free(seen_t *set)
{
  size_t i;

  for (i = 0; i < set->cap; i++)
    kith__free(set->ctx, set->slot[i]);
  kith__free(set->ctx, set->slot);
}

typedef struct scan_call {
  char cursor[32];
  kith__buf_t pattern;
} scan_call_t;

static kith_status_t append_scan(redis_store_t *r, void *ud, size_t *ncmds)
{
  scan_call_t *sc = ud;
  kith_status_t rc = KITH_OK;
  const char *argv[] = {"SCAN",           sc->cursor, "MATCH",
                        sc->pattern.data, "COUNT",    SCAN_COUNT};
  size_t i;
  cmd_t cm;

  cmd_init(&cm, r->ctx);
  for (i = 0; i < sizeof(argv) / sizeof(argv[0]) && rc == KITH_OK; i++)
    rc = cmd_args(&cm, argv[i]);
  if (rc == KITH_OK)
    rc = cmd_append(&cm, r->c, ncmds);
  cmd_free(&cm);
  return rc;
}

/* PREFIX:{*}:SUFFIX with the glob characters of the prefix escaped. */
static kith_status_t scan_init(redis_store_t *r, scan_call_t *sc,
                               const char *suffix)
{
  kith_status_t rc = KITH_OK;
  const char *p;

  strcpy(sc->cursor, "0");
  kith__buf_init(&sc->pattern, r->ctx, ARG_CAP);
  for (p = r->prefix; *p && rc == KITH_OK; p++) {
    if (strchr("*?[]\\", *p))
      rc = kith__buf_addc(&sc->pattern, '\\');
    if (rc == KITH_OK)
      rc = kith__buf_addc(&sc->pattern, *p);
  }
  if (rc == KITH_OK)
    rc = kith__buf_adds(&sc->pattern, ":{*}:");
  return rc == KITH_OK ? kith__buf_adds(&sc->pattern, suffix) : rc;
}

/* One page of SCAN: its keys, and the cursor for the next page. */
static kith_status_t scan_page(redis_store_t *r, scan_call_t *sc, replies_t *rs,
                               const redisReply **keys)
{
  const redisReply *page, *cur;
  kith_status_t rc;
  size_t i;

  if ((rc = roundtrip(r, append_scan, sc, rs)) != KITH_OK)
    return rc;
  page = rs->v[0];
  if (page->type == REDIS_REPLY_ERROR)
    return fail(r, KITH_ESTORE, "SCAN: %s", page->str);
  if (page->type != REDIS_REPLY_ARRAY || page->elements != 2 ||
      (cur = page->element[0])->type != REDIS_REPLY_STRING || cur->len == 0 ||
      cur->len >= sizeof(sc->cursor) ||
      page->element[1]->type != REDIS_REPLY_ARRAY)
    return fail(r, KITH_ECORRUPT, "unexpected reply to SCAN over %s",
                sc->pattern.data);
  *keys = page->element[1];
  for (i = 0; i < (*keys)->elements; i++)
    if ((*keys)->element[i]->type != REDIS_REPLY_STRING)
      return fail(r, KITH_ECORRUPT, "unexpected reply to SCAN over %s",
                  sc->pattern.data);
  memcpy(sc->cursor, cur->str, cur->len + 1);
  return KITH_OK;
}

/* Report the owners of one page's meta keys that were not reported yet. */
static kith_status_t report_owners(redis_store_t *r, const redisReply *keys,
                                   seen_t *set, kith__buf_t *owner,
                                   kith_store_owner_fn fn, void *ud)
{
  kith_status_t rc = KITH_OK;
  size_t i;
  int ours, added;

  for (i = 0; i < keys->elements && rc == KITH_OK; i++) {
    const redisReply *key = keys->element[i];

    ours = owner_from_key(r->prefix, "meta", key->str, key->len, owner);
    if (ours < 0)
      return fail(r, KITH_ENOMEM, "out of memory");
    if (ours == 0)
      continue; /* another application's key that the pattern matched */
    if ((rc = seen_add(set, owner->data, &added)) != KITH_OK)
      return fail(r, rc, "out of memory");
    if (added)
      rc = fn(ud, owner->data);
  }
  return rc;
}

static kith_status_t redis_owners(kith_store_t *store, void *impl,
                                  kith_store_owner_fn fn, void *ud)
{
  redis_store_t *r = impl;
  replies_t rs = {NULL, 0, 0};
  seen_t set = {r->ctx, NULL, 0, 0};
  const redisReply *keys;
  kith__buf_t owner;
  scan_call_t sc;
  kith_status_t rc;

  r->err[0] = '\0';
  kith__buf_init(&owner, r->ctx, ARG_CAP);
  if ((rc = scan_init(r, &sc, "meta")) != KITH_OK)
    rc = fail(r, rc, "out of memory");
  while (rc == KITH_OK) {
    if ((rc = scan_page(r, &sc, &rs, &keys)) == KITH_OK)
      rc = report_owners(r, keys, &set, &owner, fn, ud);
    replies_free(r, &rs);
    if (strcmp(sc.cursor, "0") == 0)
      break;
  }
  kith__buf_free(&sc.pattern);
  kith__buf_free(&owner);
  seen_free(&set);
  if (rc != KITH_OK && r->err[0])
    kith_store_set_error(store, "%s", r->err);
  return rc;
}

typedef struct unlink_call {
  const redisReply *keys;
  kith__buf_t owner; /* scratch */
} unlink_call_t;

/* One of our keys, whatever its owner: PREFIX:{E}:items or PREFIX:{E}:meta. */
static int our_key(redis_store_t *r, const redisReply *key, kith__buf_t *tmp)
{
  int ours = owner_from_key(r->prefix, "items", key->str, key->len, tmp);

  if (ours == 0)
    ours = owner_from_key(r->prefix, "meta", key->str, key->len, tmp);
  return ours;
}

static kith_status_t append_unlink(redis_store_t *r, void *ud, size_t *ncmds)
{
  unlink_call_t *u = ud;
  kith_status_t rc = KITH_OK;
  size_t i;
  cmd_t cm;
  int ours;

  /* One command per key: on Redis Cluster, keys of different owners live
   * in different slots and may not share a command. */
  cmd_init(&cm, r->ctx);
  for (i = 0; i < u->keys->elements && rc == KITH_OK; i++) {
    const redisReply *key = u->keys->element[i];

    if ((ours = our_key(r, key, &u->owner)) < 0)
      rc = KITH_ENOMEM;
    else if (ours && (rc = cmd_args(&cm, "UNLINK")) == KITH_OK &&
             (rc = cmd_arg(&cm, key->str, key->len)) == KITH_OK)
      rc = cmd_append(&cm, r->c, ncmds);
  }
  cmd_free(&cm);
  return rc;
}

/* Delete every key of the layout under our prefix, readable or not. */
static kith_status_t redis_reset(kith_store_t *store, void *impl)
{
  redis_store_t *r = impl;
  replies_t rs = {NULL, 0, 0}, done = {NULL, 0, 0};
  unlink_call_t u;
  scan_call_t sc;
  kith_status_t rc;

  r->err[0] = '\0';
  kith__buf_init(&u.owner, r->ctx, ARG_CAP);
  if ((rc = scan_init(r, &sc, "*")) != KITH_OK)
    rc = fail(r, rc, "out of memory");
  while (rc == KITH_OK) {
    if ((rc = scan_page(r, &sc, &rs, &u.keys)) == KITH_OK &&
        u.keys->elements > 0)
      rc = roundtrip(r, append_unlink, &u, &done);
    replies_free(r, &done);
    replies_free(r, &rs);
    if (strcmp(sc.cursor, "0") == 0)
      break;
  }
  kith__buf_free(&sc.pattern);
  kith__buf_free(&u.owner);
  if (rc != KITH_OK && r->err[0])
    kith_store_set_error(store, "%s", r->err);
  return rc;
}

/* ---- Opening ------------------------------------------------------------ */

static void redis_close(void *impl)
{
  redis_store_t *r = impl;

  if (r == NULL)
    return;
  disconnect(r);
  kith__free(r->ctx, r->host);
  kith__free(r->ctx, r->prefix);
  kith__free(r->ctx, r);
}

static const kith_store_backend_t redis_backend = {
    "redis", redis_load, redis_apply, redis_owners, redis_reset, redis_close};

/* A decimal of 1 to `maxdigits` digits at *p, no larger than `max`. */
static int parse_num(const char **p, size_t maxdigits, long max, long *out)
{
  size_t n = strspn(*p, "0123456789"), i;
  long v = 0;

  if (n == 0 || n > maxdigits)
    return 0;
  for (i = 0; i < n; i++)
    v = v * 10 + ((*p)[i] - '0');
  *p += n;
  *out = v;
  return v <= max;
}

static kith_status_t set_option(void *ud, const char *key, const char *value)
{
  redis_store_t *r = ud;
  const char *p = value;
  long ms;

  if (strcmp(key, "prefix") == 0) {
    /* A brace in the prefix would capture the hash tag and put every
     * owner into one slot (or, with "{}", split an owner's keys). */
    if (*value == '\0' || strpbrk(value, "{}") != NULL)
      return fail(r, KITH_EINVAL,
                  "prefix=%s: the prefix must be non-empty "
                  "and hold no '{' or '}'",
                  value);
    kith__free(r->ctx, r->prefix);
    if ((r->prefix = kith__strdup(r->ctx, value)) == NULL)
      return fail(r, KITH_ENOMEM, "out of memory");
  } else if (strcmp(key, "timeout") == 0) {
    if (!parse_num(&p, 9, 86400000, &ms) || *p != '\0' || ms == 0)
      return fail(r, KITH_EINVAL,
                  "timeout=%s: expected milliseconds, 1 to "
                  "86400000",
                  value);
    r->timeout_ms = (int)ms;
  } else {
    return fail(r, KITH_EINVAL,
                "unknown option '%s' (known: prefix, "
                "timeout)",
                key);
  }
  return KITH_OK;
}

/* Letters, digits, '.', '-', '_'; in brackets also ':' (required) and
 * '%' (a zone). */
static int host_ok(const char *h, size_t len, int bracketed)
{
  size_t i;

  for (i = 0; i < len; i++)
    if (!isalnum((unsigned char)h[i]) && strchr(".-_", h[i]) == NULL &&
        !(bracketed && (h[i] == ':' || h[i] == '%')))
      return 0;
  return !bracketed || memchr(h, ':', len) != NULL;
}

/* HOST or [IPV6] at the start of `rest`; *p is left after it. */
static kith_status_t parse_host(redis_store_t *r, const char *rest,
                                const char **p)
{
  const char *h = rest, *hend;

  if (*h == '[') {
    if ((hend = strchr(++h, ']')) == NULL)
      return fail(r, KITH_EINVAL, "redis://%s: '[' without ']'", rest);
    *p = hend + 1;
    if (**p != '\0' && strchr(":/?", **p) == NULL)
      return fail(r, KITH_EINVAL, "redis://%s: unexpected text after ']'",
                  rest);
  } else {
    hend = h + strcspn(h, ":/?");
    *p = hend;
  }
  if (hend == h)
    return fail(r, KITH_EINVAL,
                "redis://%s: no host (expected "
                "redis://HOST:PORT/DB; an IPv6 address goes "
                "in brackets)",
                rest);
  if (memchr(h, '@', (size_t)(hend - h)) != NULL)
    return fail(r, KITH_EINVAL,
                "redis://%s: user names and passwords in "
                "the URI are not supported",
                rest);
  if (!host_ok(h, (size_t)(hend - h), *rest == '['))
    return fail(r, KITH_EINVAL,
                "redis://%s: \"%.*s\" is not a host name "
                "or address",
                rest, (int)(hend - h), h);
  if ((r->host = kith__strndup(r->ctx, h, (size_t)(hend - h))) == NULL)
    return fail(r, KITH_ENOMEM, "out of memory");
  return KITH_OK;
}

/* "HOST:PORT/DB?OPTS", every part after HOST optional. */
static kith_status_t parse_uri(redis_store_t *r, const char *rest)
{
  const char *p = rest;
  long v;
  kith_status_t rc;

  if ((rc = parse_host(r, rest, &p)) != KITH_OK)
    return rc;
  if (*p == ':') {
    p++;
    if (!parse_num(&p, 5, 65535, &v) || v == 0)
      return fail(r, KITH_EINVAL,
                  "redis://%s: the port must be a number "
                  "from 1 to 65535 (an IPv6 address goes "
                  "in brackets)",
                  rest);
    r->port = (int)v;
  }
  if (*p == '/' && *++p != '\0' && *p != '?') {
    if (!parse_num(&p, 9, INT_MAX, &v))
      return fail(r, KITH_EINVAL,
                  "redis://%s: the database must be a "
                  "number",
                  rest);
    r->db = (int)v;
  }
  snprintf(r->where, sizeof(r->where), "%s%s%s:%d/%d",
           strchr(r->host, ':') ? "[" : "", r->host,
           strchr(r->host, ':') ? "]" : "", r->port, r->db);
  if (*p == '?') {
    rc = kith__store_options(r->ctx, p + 1, set_option, r);
    if (rc == KITH_EINVAL && r->err[0] == '\0')
      return fail(r, rc, "options '%s': expected key=value&...", p + 1);
    return rc == KITH_ENOMEM ? fail(r, rc, "out of memory") : rc;
  }
  if (*p != '\0')
    return fail(r, KITH_EINVAL,
                "redis://%s: unexpected '%c' (expected "
                "redis://HOST:PORT/DB?OPTIONS)",
                rest, *p);
  return KITH_OK;
}

kith_status_t kith__store_open_redis(kith_ctx_t *ctx, const char *rest,
                                     kith_store_t **out, char *err,
                                     size_t errlen)
{
  redis_store_t *r;
  kith_status_t rc;

  *out = NULL;
  ctx = kith__ctx(ctx);
  if ((r = kith__calloc(ctx, 1, sizeof(*r))) == NULL) {
    kith__store_err(err, errlen, "out of memory");
    return KITH_ENOMEM;
  }
  r->ctx = ctx;
  r->port = DEFAULT_PORT;
  r->timeout_ms = DEFAULT_TIMEOUT_MS;
  rc = parse_uri(r, rest);
  if (rc == KITH_OK && r->prefix == NULL &&
      (r->prefix = kith__strdup(ctx, DEFAULT_PREFIX)) == NULL)
    rc = fail(r, KITH_ENOMEM, "out of memory");
  if (rc == KITH_OK)
    rc = connect_now(r, 0);
  if (rc == KITH_OK &&
      (rc = kith_store_new(ctx, &redis_backend, r, out)) != KITH_OK)
    fail(r, rc, "out of memory");
  if (rc != KITH_OK) {
    kith__store_err(err, errlen, "%s", r->err);
    redis_close(r);
  }
  return rc;
}

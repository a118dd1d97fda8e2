/*
 * Unit tests: the roster stores.
 *
 * One table of cases runs against every backend: memory:, sqlite: in a
 * temporary directory, and redis:// against a redis-server this binary
 * starts on loopback when /usr/bin/redis-server exists. Then come the
 * cases only one backend has: SQLite's damaged files, schema checks and
 * options, and the memory backend's atomicity under failing allocations.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "kith/store.h"
#include "kith/roster.h"
#include "kith/ctx.h"
#include "failing_alloc.h"
#include "redis_server.h"
#include "store_io.h"
#include "tmpdir.h"

static char tmpdir[256];

/* ---- what a load gave back (store_io.h) --------------------------------- */

/* The item as stored must equal `want`, field for field. */
static void assert_item(const node_t *nd, const kith_store_item_t *want)
{
  const got_item_t *g = find(nd, want->jid);
  size_t i;

  if (g == NULL) {
    fail_msg("item %s missing", want->jid);
    return;
  }
  if (want->name == NULL)
    assert_null(g->name);
  else
    assert_string_equal(g->name, want->name);
  assert_int_equal(g->ngroups, want->ngroups);
  for (i = 0; i < want->ngroups; i++)
    assert_string_equal(g->groups[i], want->groups[i]);
  assert_int_equal(g->flags & KITH_STORE_FLAG_MASK,
                   want->flags & KITH_STORE_FLAG_MASK);
}

/* ---- batches ------------------------------------------------------------ */

static kith_store_op_t put(const kith_store_item_t *it)
{
  kith_store_op_t op;

  memset(&op, 0, sizeof(op));
  op.type = KITH_STORE_PUT;
  op.item = *it;
  return op;
}

static void put_one(kith_store_t *st, const char *owner, const char *jid,
                    const char *name)
{
  kith_store_item_t it = {jid, name, NULL, 0, KITH_ROSTER_TO};
  kith_store_op_t op = put(&it);

  apply_ok(st, owner, &op, 1);
}

/* Owners listed by kith_store_owners(). */
typedef struct owner_set {
  char **v;
  size_t n;
} owner_set_t;

static kith_status_t got_owner(void *ud, const char *owner)
{
  owner_set_t *s = ud;

  s->v = realloc(s->v, (s->n + 1) * sizeof(char *));
  s->v[s->n++] = strdup(owner);
  return KITH_OK;
}

static size_t owner_count(const owner_set_t *s, const char *owner)
{
  size_t i, c = 0;

  for (i = 0; i < s->n; i++)
    c += strcmp(s->v[i], owner) == 0;
  return c;
}

static void owners_free(owner_set_t *s)
{
  size_t i;

  for (i = 0; i < s->n; i++)
    free(s->v[i]);
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

static void list_owners(kith_store_t *st, owner_set_t *s)
{
  owners_free(s);
  assert_int_equal(kith_store_owners(st, got_owner, s), KITH_OK);
}

/* ---- the backends and the fixture --------------------------------------- */

typedef struct backend {
  const char *name;
  int persistent; /* survives close and reopen */
  int port;       /* redis */
} backend_t;

struct tcase;

typedef struct fix {
  const backend_t *b;
  const struct tcase *c;
  char uri[600];
  kith_store_t *st;
  node_t nd;
  owner_set_t os;
} fix_t;

typedef void (*case_fn)(fix_t *f);

typedef struct tcase {
  const char *name;
  case_fn fn;
  int persistent_only;
} tcase_t;

typedef struct combo {
  const backend_t *b;
  const tcase_t *c;
  size_t idx;
  char name[96];
} combo_t;

static void open_ok(fix_t *f)
{
  char err[512];
  kith_status_t rc = kith_store_open(NULL, f->uri, &f->st, err, sizeof(err));

  if (rc != KITH_OK)
    fail_msg("open %s: %s: %s", f->uri, kith_status_name(rc), err);
  assert_string_equal(kith_store_backend_name(f->st), f->b->name);
}

static void reopen(fix_t *f)
{
  kith_store_close(f->st);
  f->st = NULL;
  open_ok(f);
}

/* ---- the shared cases --------------------------------------------------- */

static const char *const g_one[] = {"Friends"};
static const char *const g_three[] = {"Wörk ✓ 日本語", "two\nlines",
                                      "<tag> & \"quotes\"\t'"};
static const char *const g_two[] = {"b-group", "a-group"}; /* kept in order */

static const kith_store_item_t rt_items[] = {
    {"alice@example.com", "Alice", NULL, 0, 0},
    {"bob@example.com", NULL, g_one, 1, KITH_ROSTER_FROM | KITH_ROSTER_TO},
    {"carol@example.com", "Carol ✓\nsecond line", g_three, 3,
     KITH_ROSTER_PENDING_IN | KITH_STORE_WHITELISTED},
    {"dave@example.com", "Dave", g_two, 2, KITH_STORE_FLAG_MASK},
    {"eve@example.com", "Eve", NULL, 0,
     KITH_ROSTER_PENDING_OUT | KITH_ROSTER_APPROVED},
};
#define N_RT (sizeof(rt_items) / sizeof(rt_items[0]))

static void put_rt(fix_t *f, const char *owner, const char *version)
{
  kith_store_op_t ops[N_RT + 1];
  size_t i;

  for (i = 0; i < N_RT; i++)
    ops[i] = put(&rt_items[i]);
  ops[N_RT] = simple_op(KITH_STORE_VERSION, NULL, version);
  apply_ok(f->st, owner, ops, N_RT + 1);
}

static void check_rt(fix_t *f, const char *owner, const char *version)
{
  size_t i;

  assert_int_equal(load(f->st, owner, &f->nd), KITH_OK);
  assert_int_equal(f->nd.versions, 1);
  assert_string_equal(f->nd.version, version);
  assert_int_equal(f->nd.n, N_RT);
  for (i = 0; i < N_RT; i++)
    assert_item(&f->nd, &rt_items[i]);
}

static void case_roundtrip(fix_t *f)
{
  put_rt(f, "me@example.com", "ver-1");
  check_rt(f, "me@example.com", "ver-1");
}

static void case_replace(fix_t *f)
{
  kith_store_item_t it = {"x@example.com", "Old", g_two, 2, 0x1F};
  kith_store_op_t op;

  op = put(&it);
  apply_ok(f->st, "me@example.com", &op, 1);
  it.name = NULL;
  it.groups = NULL;
  it.ngroups = 0;
  it.flags = KITH_ROSTER_TO;
  op = put(&it);
  apply_ok(f->st, "me@example.com", &op, 1);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_int_equal(f->nd.n, 1);
  assert_item(&f->nd, &it);
}

static void case_flag_bits(fix_t *f)
{
  char jid[32];
  kith_store_item_t it = {jid, NULL, NULL, 0, 0};
  kith_store_op_t op;
  unsigned bit;

  /* Every bit of the mask alone, then bits outside the mask. */
  for (bit = 1; bit <= KITH_STORE_FLAG_MASK; bit <<= 1) {
    if (!(bit & KITH_STORE_FLAG_MASK))
      continue;
    snprintf(jid, sizeof(jid), "bit%u@example.com", bit);
    it.flags = bit;
    op = put(&it);
    apply_ok(f->st, "me@example.com", &op, 1);
  }
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_int_equal(f->nd.n, (size_t)__builtin_popcount(KITH_STORE_FLAG_MASK));
  for (bit = 1; bit <= KITH_STORE_FLAG_MASK; bit <<= 1) {
    if (!(bit & KITH_STORE_FLAG_MASK))
      continue;
    snprintf(jid, sizeof(jid), "bit%u@example.com", bit);
    it.flags = bit;
    assert_item(&f->nd, &it);
  }
}

static void case_delete(fix_t *f)
{
  kith_store_op_t ops[2];

  put_rt(f, "me@example.com", "v1");
  ops[0] = simple_op(KITH_STORE_DELETE, "bob@example.com", NULL);
  ops[1] = simple_op(KITH_STORE_DELETE, "nobody@example.com", NULL);
  apply_ok(f->st, "me@example.com", ops, 2);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_int_equal(f->nd.n, N_RT - 1);
  assert_null(find(&f->nd, "bob@example.com"));
  assert_item(&f->nd, &rt_items[0]);
  assert_string_equal(f->nd.version, "v1");
}

static void case_version(fix_t *f)
{
  kith_store_op_t op;

  /* Items alone: the owner has no version. */
  put_one(f->st, "me@example.com", "a@example.com", "A");
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_int_equal(f->nd.versions, 1);
  assert_null(f->nd.version);
  op = simple_op(KITH_STORE_VERSION, NULL, "v7");
  apply_ok(f->st, "me@example.com", &op, 1);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_string_equal(f->nd.version, "v7");
  op = simple_op(KITH_STORE_VERSION, NULL, "");
  apply_ok(f->st, "me@example.com", &op, 1);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_string_equal(f->nd.version, "");
  op = simple_op(KITH_STORE_VERSION, NULL, NULL);
  apply_ok(f->st, "me@example.com", &op, 1);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_null(f->nd.version);
  assert_int_equal(f->nd.n, 1);
}

static void case_clear(fix_t *f)
{
  kith_store_op_t op = simple_op(KITH_STORE_CLEAR, NULL, NULL);

  put_rt(f, "me@example.com", "v1");
  apply_ok(f->st, "me@example.com", &op, 1);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_int_equal(f->nd.versions, 1);
  assert_null(f->nd.version);
  assert_int_equal(f->nd.n, 0);
  list_owners(f->st, &f->os);
  assert_int_equal(owner_count(&f->os, "me@example.com"), 1);
}

static void case_drop(fix_t *f)
{
  kith_store_item_t it = {"new@example.com", "New", NULL, 0, 0};
  kith_store_op_t ops[3];

  put_rt(f, "me@example.com", "v1");
  put_rt(f, "other@example.com", "v2");
  ops[0] = simple_op(KITH_STORE_DROP, NULL, NULL);
  apply_ok(f->st, "me@example.com", ops, 1);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_ENOTFOUND);
  list_owners(f->st, &f->os);
  assert_int_equal(f->os.n, 1);
  assert_int_equal(owner_count(&f->os, "other@example.com"), 1);
  check_rt(f, "other@example.com", "v2");

  /* A DROP followed by more operations leaves the owner known, with
   * only what came after the DROP. */
  put_rt(f, "me@example.com", "v1");
  ops[0] = simple_op(KITH_STORE_DROP, NULL, NULL);
  ops[1] = put(&it);
  ops[2] = simple_op(KITH_STORE_VERSION, NULL, "v9");
  apply_ok(f->st, "me@example.com", ops, 3);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_int_equal(f->nd.n, 1);
  assert_item(&f->nd, &it);
  assert_string_equal(f->nd.version, "v9");

  /* Dropping an unknown owner is fine. */
  ops[0] = simple_op(KITH_STORE_DROP, NULL, NULL);
  apply_ok(f->st, "ghost@example.com", ops, 1);
  assert_int_equal(load(f->st, "ghost@example.com", &f->nd), KITH_ENOTFOUND);
}

static void case_empty_batch(fix_t *f)
{
  apply_ok(f->st, "me@example.com", NULL, 0);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_int_equal(f->nd.versions, 1);
  assert_null(f->nd.version);
  assert_int_equal(f->nd.n, 0);
  list_owners(f->st, &f->os);
  assert_int_equal(owner_count(&f->os, "me@example.com"), 1);
}

static void case_owners(fix_t *f)
{
  list_owners(f->st, &f->os);
  assert_int_equal(f->os.n, 0);
  put_one(f->st, "a@example.com", "x@example.com", NULL);
  put_one(f->st, "b@example.com", "x@example.com", NULL);
  put_one(f->st, "b@example.com", "y@example.com", NULL);
  put_one(f->st, "c@example.com", "x@example.com", NULL);
  list_owners(f->st, &f->os);
  assert_int_equal(f->os.n, 3);
  assert_int_equal(owner_count(&f->os, "a@example.com"), 1);
  assert_int_equal(owner_count(&f->os, "b@example.com"), 1);
  assert_int_equal(owner_count(&f->os, "c@example.com"), 1);
}

static void case_atomic(fix_t *f)
{
  kith_store_item_t ok = {"new@example.com", "New", g_one, 1, 0};
  kith_store_item_t bad = {NULL, "No JID", NULL, 0, 0};
  kith_store_op_t ops[4];

  put_rt(f, "me@example.com", "v1");
  ops[0] = put(&ok);
  ops[1] = simple_op(KITH_STORE_DELETE, "alice@example.com", NULL);
  ops[2] = simple_op(KITH_STORE_VERSION, NULL, "v2");
  ops[3] = put(&bad);
  assert_int_equal(kith_store_apply(f->st, "me@example.com", ops, 4),
                   KITH_EINVAL);
  assert_true(kith_store_errmsg(f->st)[0] != '\0');
  check_rt(f, "me@example.com", "v1");
  assert_null(find(&f->nd, "new@example.com"));

  /* A DELETE without a JID, after a CLEAR: nothing happens either. */
  ops[0] = simple_op(KITH_STORE_CLEAR, NULL, NULL);
  ops[1] = simple_op(KITH_STORE_DELETE, NULL, NULL);
  assert_int_equal(kith_store_apply(f->st, "me@example.com", ops, 2),
                   KITH_EINVAL);
  check_rt(f, "me@example.com", "v1");

  /* A failed batch does not make its owner known. */
  ops[0] = put(&ok);
  ops[1] = put(&bad);
  assert_int_equal(kith_store_apply(f->st, "new@example.com", ops, 2),
                   KITH_EINVAL);
  assert_int_equal(load(f->st, "new@example.com", &f->nd), KITH_ENOTFOUND);
  list_owners(f->st, &f->os);
  assert_int_equal(f->os.n, 1);
}

static void case_unknown(fix_t *f)
{
  assert_int_equal(load(f->st, "nobody@example.com", &f->nd), KITH_ENOTFOUND);
  assert_int_equal(f->nd.versions, 0);
  assert_int_equal(f->nd.n, 0);
  put_one(f->st, "me@example.com", "a@example.com", NULL);
  assert_int_equal(load(f->st, "nobody@example.com", &f->nd), KITH_ENOTFOUND);
}

static void case_sink_stops(fix_t *f)
{
  kith_store_sink_t sink = {got_version, got_item, &f->nd};

  put_rt(f, "me@example.com", "v1");
  node_free(&f->nd);
  f->nd.stop_after = 2;
  assert_int_equal(kith_store_load(f->st, "me@example.com", &sink),
                   KITH_ECANCELED);
  assert_int_equal(f->nd.n, 2);
  /* The store still works after a stopped load. */
  f->nd.stop_after = 0;
  check_rt(f, "me@example.com", "v1");
}

static void case_reset(fix_t *f)
{
  put_rt(f, "me@example.com", "v1");
  put_rt(f, "other@example.com", "v2");
  assert_int_equal(kith_store_reset(f->st), KITH_OK);
  list_owners(f->st, &f->os);
  assert_int_equal(f->os.n, 0);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_ENOTFOUND);
  put_rt(f, "me@example.com", "v3");
  check_rt(f, "me@example.com", "v3");
}

static void case_reopen(fix_t *f)
{
  kith_store_op_t op = simple_op(KITH_STORE_DROP, NULL, NULL);

  put_rt(f, "me@example.com", "v1");
  put_rt(f, "other@example.com", "v2");
  put_rt(f, "gone@example.com", "v3");
  apply_ok(f->st, "gone@example.com", &op, 1);
  apply_ok(f->st, "empty@example.com", NULL, 0);
  reopen(f);
  check_rt(f, "me@example.com", "v1");
  check_rt(f, "other@example.com", "v2");
  assert_int_equal(load(f->st, "gone@example.com", &f->nd), KITH_ENOTFOUND);
  assert_int_equal(load(f->st, "empty@example.com", &f->nd), KITH_OK);
  assert_int_equal(f->nd.n, 0);
  list_owners(f->st, &f->os);
  assert_int_equal(f->os.n, 3);
}

#define MANY_OWNERS 2000

static void case_many_owners(fix_t *f)
{
  char owner[64], jid[64], ver[16];
  kith_store_item_t it = {jid, "Contact", g_one, 1, KITH_ROSTER_TO};
  kith_store_op_t ops[3];
  int i;

  for (i = 0; i < MANY_OWNERS; i++) {
    snprintf(owner, sizeof(owner), "user%d@example.com", i);
    snprintf(jid, sizeof(jid), "contact%d@example.net", i);
    snprintf(ver, sizeof(ver), "v%d", i);
    ops[0] = put(&it);
    ops[1] = simple_op(KITH_STORE_DELETE, "none@example.net", NULL);
    ops[2] = simple_op(KITH_STORE_VERSION, NULL, ver);
    apply_ok(f->st, owner, ops, 3);
  }
  list_owners(f->st, &f->os);
  assert_int_equal(f->os.n, MANY_OWNERS);
  for (i = 0; i < MANY_OWNERS; i += 97) {
    snprintf(owner, sizeof(owner), "user%d@example.com", i);
    snprintf(jid, sizeof(jid), "contact%d@example.net", i);
    snprintf(ver, sizeof(ver), "v%d", i);
    assert_int_equal(load(f->st, owner, &f->nd), KITH_OK);
    assert_string_equal(f->nd.version, ver);
    assert_int_equal(f->nd.n, 1);
    assert_item(&f->nd, &it);
  }
}

#define BIG_BATCH 10000

static void case_big_batch(fix_t *f)
{
  kith_store_op_t *ops = calloc(BIG_BATCH + 1, sizeof(*ops));
  kith_store_item_t *items = calloc(BIG_BATCH, sizeof(*items));
  char(*jids)[40] = calloc(BIG_BATCH, sizeof(*jids));
  int i;

  assert_true(ops && items && jids);
  for (i = 0; i < BIG_BATCH; i++) {
    snprintf(jids[i], sizeof(jids[i]), "contact%05d@example.net", i);
    items[i].jid = jids[i];
    items[i].name = i % 2 ? "Odd" : NULL;
    items[i].groups = g_three;
    items[i].ngroups = (size_t)(i % 4);
    items[i].flags = (unsigned)i & KITH_STORE_FLAG_MASK;
    ops[i] = put(&items[i]);
  }
  ops[BIG_BATCH] = simple_op(KITH_STORE_VERSION, NULL, "big");
  apply_ok(f->st, "me@example.com", ops, BIG_BATCH + 1);
  assert_int_equal(load(f->st, "me@example.com", &f->nd), KITH_OK);
  assert_string_equal(f->nd.version, "big");
  assert_int_equal(f->nd.n, BIG_BATCH);
  for (i = 0; i < BIG_BATCH; i += 101)
    assert_item(&f->nd, &items[i]);
  assert_item(&f->nd, &items[BIG_BATCH - 1]);
  free(ops);
  free(items);
  free(jids);
}

static const tcase_t cases[] = {
    {"put/load round-trip", case_roundtrip, 0},
    {"put replaces", case_replace, 0},
    {"every flag bit", case_flag_bits, 0},
    {"delete", case_delete, 0},
    {"version set and clear", case_version, 0},
    {"clear keeps the owner", case_clear, 0},
    {"drop forgets the owner", case_drop, 0},
    {"empty batch makes the owner known", case_empty_batch, 0},
    {"owners", case_owners, 0},
    {"batch atomicity", case_atomic, 0},
    {"unknown owner", case_unknown, 0},
    {"sink stops the load", case_sink_stops, 0},
    {"reset", case_reset, 0},
    {"reopen keeps everything", case_reopen, 1},
    {"many owners", case_many_owners, 0},
    {"10,000-item batch", case_big_batch, 0},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static int combo_setup(void **state)
{
  const combo_t *c = *state;
  fix_t *f = calloc(1, sizeof(*f));

  assert_non_null(f);
  f->b = c->b;
  f->c = c->c;
  if (strcmp(c->b->name, "memory") == 0)
    snprintf(f->uri, sizeof(f->uri), "memory:");
  else if (strcmp(c->b->name, "sqlite") == 0)
    /* Durability is the crash test's business: without an fsync per
     * batch the many-owners case takes a fraction of a second. */
    snprintf(f->uri, sizeof(f->uri),
             "sqlite:%s/case%zu/x.db?synchronous=normal", tmpdir, c->idx);
  else
    snprintf(f->uri, sizeof(f->uri), "redis://127.0.0.1:%d/0?prefix=kt%zu",
             c->b->port, c->idx);
  *state = f;
  return 0;
}

static int combo_teardown(void **state)
{
  fix_t *f = *state;

  kith_store_close(f->st);
  node_free(&f->nd);
  owners_free(&f->os);
  free(f);
  return 0;
}

static void run_combo(void **state)
{
  fix_t *f = *state;

  if (f->c->persistent_only && !f->b->persistent)
    skip();
  open_ok(f);
  f->c->fn(f);
}

/* ---- SQLite only -------------------------------------------------------- */

static void path_in_tmp(char *buf, size_t len, const char *name)
{
  snprintf(buf, len, "%s/%s", tmpdir, name);
}

static kith_status_t open_path(const char *path, const char *opts,
                               kith_store_t **st, char *err, size_t errlen)
{
  char uri[600];

  snprintf(uri, sizeof(uri), "sqlite:%s%s%s", path, opts ? "?" : "",
           opts ? opts : "");
  return kith_store_open(NULL, uri, st, err, errlen);
}

static void write_file(const char *path, const void *data, size_t len)
{
  FILE *fp = fopen(path, "wb");

  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
}

static void sql_exec(const char *path, const char *sql)
{
  sqlite3 *db = NULL;

  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  sqlite3_close(db);
}

/* The first column of the first row of `sql`, as text ("" for none). */
static void sql_text(const char *path, const char *sql, char *out, size_t len)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;

  out[0] = '\0';
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static void test_sqlite_garbage(void **state)
{
  char path[300], err[512], junk[8192];
  kith_store_t *st = (kith_store_t *)1;
  size_t i;

  (void)state;
  path_in_tmp(path, sizeof(path), "garbage.db");
  for (i = 0; i < sizeof(junk); i++)
    junk[i] = (char)(i * 131 + 7);
  write_file(path, junk, sizeof(junk));
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_ECORRUPT);
  assert_null(st);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, "not a SQLite database"));

  /* A cache may say so: on_corrupt=reset keeps the damaged file aside
   * and starts empty. */
  {
    char pat[320];
    glob_t gl;

    assert_int_equal(open_path(path, "on_corrupt=reset", &st, err, sizeof(err)),
                     KITH_OK);
    assert_non_null(st);
    kith_store_close(st);
    snprintf(pat, sizeof(pat), "%s.corrupt-*", path);
    assert_int_equal(glob(pat, 0, NULL, &gl), 0);
    assert_int_equal(gl.gl_pathc, 1);
    globfree(&gl);
    assert_int_equal(open_path(path, "on_corrupt=maybe", &st, err, sizeof(err)),
                     KITH_EINVAL);
    assert_non_null(strstr(err, "on_corrupt"));
  }
}

/* A store whose file is damaged past its schema: it opens, the load
 * fails with KITH_ECORRUPT, and a reset moves the file aside. */
static void test_sqlite_damaged_reset(void **state)
{
  char path[300], err[512], pat[320], name[160], jid[64];
  kith_store_item_t it = {jid, name, g_three, 3, KITH_ROSTER_TO};
  static char jids[2000][40];
  static kith_store_item_t items[2000];
  static kith_store_op_t ops[2000];
  kith_store_op_t op;
  kith_store_t *st = NULL;
  node_t nd = {0};
  owner_set_t os = {0};
  glob_t gl;
  struct stat sb;
  FILE *fp;
  long off;
  int i;

  (void)state;
  path_in_tmp(path, sizeof(path), "damaged/x.db");
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_OK);
  snprintf(jid, sizeof(jid), "after-reset@example.net");
  memset(name, 'n', sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  for (i = 0; i < 2000; i++) {
    snprintf(jids[i], sizeof(jids[i]), "contact%d@example.net", i);
    items[i] = it;
    items[i].jid = jids[i];
    ops[i] = put(&items[i]);
  }
  apply_ok(st, "me@example.com", ops, 2000);
  kith_store_close(st);
  /* Closing checkpointed the WAL: everything is in the main file. Keep
   * the first pages (header, kith_schema, owners), trash the rest. */
  assert_int_equal(stat(path, &sb), 0);
  assert_true(sb.st_size > 40 * 4096);
  assert_non_null(fp = fopen(path, "r+b"));
  fseek(fp, 4 * 4096, SEEK_SET);
  for (off = 4 * 4096; off < sb.st_size; off++)
    fputc(0xA5 ^ (int)(off & 0x3F), fp);
  assert_int_equal(fclose(fp), 0);

  if (open_path(path, NULL, &st, err, sizeof(err)) != KITH_OK)
    fail_msg("%s", err);
  assert_int_equal(load(st, "me@example.com", &nd), KITH_ECORRUPT);
  assert_non_null(strstr(kith_store_errmsg(st), path));
  assert_int_equal(kith_store_reset(st), KITH_OK);
  snprintf(pat, sizeof(pat), "%s.corrupt-*", path);
  /* The file moved aside, with its -wal and -shm if closing left any. */
  assert_int_equal(glob(pat, 0, NULL, &gl), 0);
  assert_in_range(gl.gl_pathc, 1, 3);
  assert_null(strstr(gl.gl_pathv[0], "-wal"));
  globfree(&gl);
  assert_int_equal(load(st, "me@example.com", &nd), KITH_ENOTFOUND);
  list_owners(st, &os);
  assert_int_equal(os.n, 0);
  op = put(&it);
  apply_ok(st, "me@example.com", &op, 1);
  kith_store_close(st);
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_OK);
  assert_int_equal(load(st, "me@example.com", &nd), KITH_OK);
  assert_int_equal(nd.n, 1);
  assert_item(&nd, &it);
  kith_store_close(st);
  node_free(&nd);
  owners_free(&os);
}

static void test_sqlite_not_kith(void **state)
{
  char path[300], err[512], mode[32];
  kith_store_t *st = NULL;

  (void)state;
  path_in_tmp(path, sizeof(path), "other-app.db");
  sql_exec(path, "CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES(1)");
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_ECORRUPT);
  assert_null(st);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, "not a kith store"));
  /* The other application's file is left as it was: not switched to WAL. */
  sql_text(path, "PRAGMA journal_mode", mode, sizeof(mode));
  assert_string_equal(mode, "delete");

  /* Another application's id in the header, even with no tables. */
  path_in_tmp(path, sizeof(path), "other-id.db");
  sql_exec(path, "PRAGMA application_id = 1234");
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_ECORRUPT);
  assert_non_null(strstr(err, "not a kith store"));
}

static void test_sqlite_newer_schema(void **state)
{
  char path[300], err[512];
  kith_store_t *st = NULL;

  (void)state;
  path_in_tmp(path, sizeof(path), "newer.db");
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_OK);
  kith_store_close(st);
  sql_exec(path, "UPDATE kith_schema SET version = 99");
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_ESTORE);
  assert_null(st);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, "newer"));
}

static void test_sqlite_options(void **state)
{
  static const struct {
    const char *opts;
    kith_status_t rc;
    const char *msg;
  } t[] = {
      {"synchronous=bogus", KITH_EINVAL, "synchronous must be"},
      {"synchronous=", KITH_EINVAL, "synchronous must be"},
      {"synchronous", KITH_EINVAL, "malformed options"},
      {"frobnicate=1", KITH_EINVAL, "unknown option 'frobnicate'"},
      {"synchronous=full&x=1", KITH_EINVAL, "unknown option 'x'"},
      {"busy_timeout=abc", KITH_EINVAL, "busy_timeout"},
      {"busy_timeout=-5", KITH_EINVAL, "busy_timeout"},
      {"busy_timeout=99999999999", KITH_EINVAL, "busy_timeout"},
      {"synchronous=off", KITH_OK, NULL},
      {"synchronous=normal&busy_timeout=100", KITH_OK, NULL},
      {"synchronous=full", KITH_OK, NULL},
      {"synchronous=EXTRA&busy_timeout=0", KITH_OK, NULL},
      {"", KITH_OK, NULL},
  };
  char path[300], err[512];
  kith_store_t *st;
  size_t i;

  (void)state;
  path_in_tmp(path, sizeof(path), "options.db");
  for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    st = NULL;
    err[0] = '\0';
    if (open_path(path, t[i].opts, &st, err, sizeof(err)) != t[i].rc)
      fail_msg("options '%s': got %s", t[i].opts, err);
    if (t[i].msg && strstr(err, t[i].msg) == NULL)
      fail_msg("options '%s': message '%s'", t[i].opts, err);
    if (t[i].rc == KITH_OK) {
      assert_non_null(st);
      put_one(st, "me@example.com", "a@example.com", NULL);
    } else {
      assert_null(st);
    }
    kith_store_close(st);
  }
}

static void test_sqlite_file_layout(void **state)
{
  char path[300], dir[300], err[512], text[64];
  kith_store_t *st = NULL;
  struct stat sb;

  (void)state;
  path_in_tmp(path, sizeof(path), "a/b/c/roster.db");
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_OK);
  put_one(st, "me@example.com", "a@example.com", NULL);
  path_in_tmp(dir, sizeof(dir), "a");
  assert_int_equal(stat(dir, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  path_in_tmp(dir, sizeof(dir), "a/b/c");
  assert_int_equal(stat(dir, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  sql_text(path, "PRAGMA journal_mode", text, sizeof(text));
  assert_string_equal(text, "wal");
  sql_text(path, "PRAGMA application_id", text, sizeof(text));
  assert_string_equal(text, "1802073192"); /* 0x6B697468, "kith" */
  sql_text(path, "SELECT version FROM kith_schema", text, sizeof(text));
  assert_string_equal(text, "1");
  kith_store_close(st);
  /* Reopening a current store changes nothing. */
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_OK);
  kith_store_close(st);
  sql_text(path, "SELECT count(*) FROM items", text, sizeof(text));
  assert_string_equal(text, "1");

  /* A path below a regular file cannot be created. */
  path_in_tmp(path, sizeof(path), "a/b/c/roster.db/sub/x.db");
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_ESTORE);
  assert_non_null(strstr(err, "roster.db/sub"));
}

static void test_sqlite_default_path(void **state)
{
  char xdg[300], want[400], err[512];
  kith_store_t *st = NULL;
  struct stat sb;

  (void)state;
  path_in_tmp(xdg, sizeof(xdg), "xdg");
  setenv("XDG_DATA_HOME", xdg, 1);
  assert_int_equal(kith_store_open(NULL, "sqlite:", &st, err, sizeof(err)),
                   KITH_OK);
  snprintf(want, sizeof(want), "sqlite:%s/kith/roster.db", xdg);
  assert_string_equal(kith_store_uri(st), want);
  kith_store_close(st);
  assert_int_equal(stat(want + 7, &sb), 0);
  unsetenv("XDG_DATA_HOME");
}

static void test_sqlite_empty_strings(void **state)
{
  static const char *const g_empty[] = {""};
  static const char *const g_mixed[] = {"", "a", ""};
  kith_store_item_t items[] = {
      {"a@example.com", "", g_empty, 1, 0},
      {"b@example.com", NULL, g_mixed, 3, 0},
      {"c@example.com", NULL, NULL, 0, 0},
  };
  char path[300], err[512];
  kith_store_op_t ops[3];
  kith_store_t *st = NULL;
  node_t nd = {0};
  size_t i;

  (void)state;
  path_in_tmp(path, sizeof(path), "empty-strings.db");
  assert_int_equal(open_path(path, NULL, &st, err, sizeof(err)), KITH_OK);
  for (i = 0; i < 3; i++)
    ops[i] = put(&items[i]);
  apply_ok(st, "me@example.com", ops, 3);
  assert_int_equal(load(st, "me@example.com", &nd), KITH_OK);
  for (i = 0; i < 3; i++)
    assert_item(&nd, &items[i]);
  kith_store_close(st);
  node_free(&nd);
}

/* ---- failing allocations ------------------------------------------------ */

/* Each allocation of a batch fails in turn: the batch fails whole and the
 * store is as it was, until enough succeed and the batch applies. */
static void torture(const char *uri)
{
  static const kith_store_item_t fresh = {"new@example.com", "New", g_three, 3,
                                          KITH_ROSTER_TO};
  /* Sticky: once allocation k fails, every later one does too. */
  falloc_t fl = {0, 0, 1};
  kith_allocator_t a = falloc_allocator(&fl);
  kith_ctx_t *ctx = NULL;
  kith_store_t *st = NULL;
  fix_t f;
  kith_store_op_t ops[N_RT + 4];
  kith_status_t rc;
  char err[512];
  long k;
  size_t i;

  memset(&f, 0, sizeof(f));
  assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
  /* Opening: every failure is clean. */
  for (k = 1;; k++) {
    fl.attempts = 0;
    fl.fail_at = k;
    rc = kith_store_open(ctx, uri, &st, err, sizeof(err));
    if (rc == KITH_OK)
      break;
    assert_int_equal(rc, KITH_ENOMEM);
    assert_null(st);
  }
  fl.fail_at = 0;
  f.st = st;
  put_rt(&f, "me@example.com", "v1");
  for (i = 0; i < N_RT; i++)
    ops[i] = put(&rt_items[i]);
  ops[0] = put(&fresh);
  ops[N_RT] = simple_op(KITH_STORE_DELETE, "bob@example.com", NULL);
  ops[N_RT + 1] = simple_op(KITH_STORE_VERSION, NULL, "v2");
  for (k = 1;; k++) {
    fl.attempts = 0;
    fl.fail_at = k;
    rc = kith_store_apply(st, k % 2 ? "me@example.com" : "new@example.com", ops,
                          N_RT + 2);
    fl.fail_at = 0;
    if (rc == KITH_OK)
      break;
    assert_int_equal(rc, KITH_ENOMEM);
    check_rt(&f, "me@example.com", "v1");
    assert_int_equal(load(st, "new@example.com", &f.nd), KITH_ENOTFOUND);
  }
  assert_int_equal(
      load(st, k % 2 ? "me@example.com" : "new@example.com", &f.nd), KITH_OK);
  assert_string_equal(f.nd.version, "v2");
  assert_item(&f.nd, &fresh);
  assert_null(find(&f.nd, "bob@example.com"));
  kith_store_close(st);
  kith_ctx_free(ctx);
  node_free(&f.nd);
}

static void test_memory_enomem(void **state)
{
  (void)state;
  torture("memory:");
}

static void test_sqlite_enomem(void **state)
{
  char uri[400];

  (void)state;
  snprintf(uri, sizeof(uri), "sqlite:%s/enomem.db", tmpdir);
  torture(uri);
}

/* ---- main --------------------------------------------------------------- */

int main(void)
{
  static backend_t backends[] = {
      {"memory", 0, 0}, {"sqlite", 1, 0}, {"redis", 1, 0}};
  static combo_t combos[3][NCASES];
  static struct CMUnitTest tests[3][NCASES];
  const struct CMUnitTest only[] = {
      cmocka_unit_test(test_sqlite_garbage),
      cmocka_unit_test(test_sqlite_damaged_reset),
      cmocka_unit_test(test_sqlite_not_kith),
      cmocka_unit_test(test_sqlite_newer_schema),
      cmocka_unit_test(test_sqlite_options),
      cmocka_unit_test(test_sqlite_file_layout),
      cmocka_unit_test(test_sqlite_default_path),
      cmocka_unit_test(test_sqlite_empty_strings),
      cmocka_unit_test(test_memory_enomem),
      cmocka_unit_test(test_sqlite_enomem),
  };
  redis_server_t rs = {0, 0};
  char group[64], rdir[300];
  size_t nb = 2, b, i;
  int fails = 0;

  if (tmpdir_make(tmpdir, sizeof(tmpdir), "test-store") == NULL) {
    perror("mkdtemp");
    return 1;
  }
  path_in_tmp(rdir, sizeof(rdir), "redis");
  if (!redis_server_available()) {
    printf("note: %s not found: the redis rows are skipped\n",
           REDIS_SERVER_BIN);
  } else if (mkdir(rdir, 0700) == 0 && redis_server_start(&rs, rdir) == 0) {
    backends[2].port = rs.port;
    nb = 3;
  } else {
    printf("note: redis-server did not start: the redis rows are skipped\n");
  }
  for (b = 0; b < nb; b++) {
    for (i = 0; i < NCASES; i++) {
      combo_t *c = &combos[b][i];

      c->b = &backends[b];
      c->c = &cases[i];
      c->idx = i;
      snprintf(c->name, sizeof(c->name), "%s: %s", backends[b].name,
               cases[i].name);
      tests[b][i].name = c->name;
      tests[b][i].test_func = run_combo;
      tests[b][i].setup_func = combo_setup;
      tests[b][i].teardown_func = combo_teardown;
      tests[b][i].initial_state = c;
    }
    snprintf(group, sizeof(group), "store/%s", backends[b].name);
    fails += _cmocka_run_group_tests(group, tests[b], NCASES, NULL, NULL);
  }
  fails +=
      cmocka_run_group_tests_name("store/backend-specific", only, NULL, NULL);
  redis_server_stop(&rs);
  tmpdir_remove(tmpdir);
  return fails;
}

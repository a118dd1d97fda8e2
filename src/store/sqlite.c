/*
 * Stores: the SQLite backend ("sqlite:PATH?OPTS").
 *
 * The file is in WAL mode. Its schema carries its own version in the table
 * kith_schema, and the file header's application_id says it is a kith
 * store. Opening a file brings its schema up to date by running the missing
 * entries of `migrations` in one transaction; a file with a newer version
 * than this code knows is refused rather than guessed at.
 *
 * Schema version 1:
 *   owners(owner TEXT PRIMARY KEY, version TEXT)
 *   items(owner, jid, name, groups BLOB, flags, PRIMARY KEY (owner, jid))
 * both WITHOUT ROWID, so an owner's items sit together in the B-tree. The
 * groups of an item are one blob: each name followed by a NUL byte, in
 * order. XML text cannot contain NUL, so any group name fits; no groups is
 * the empty blob.
 *
 * Every apply() is one BEGIN IMMEDIATE .. COMMIT transaction: the items of
 * a roster push and its version are on disk together or not at all. With
 * synchronous=full (the default) a batch is durable once apply() returns.
 *
 * SQLite's own memory does not go through the kith_ctx_t allocator: its
 * allocator is process-wide (sqlite3_config) and not ours to replace.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "core/ctx.h"
#include "store/store.h"

/* PRAGMA application_id of a kith store: "kith" in ASCII. */
#define KITH_APP_ID 0x6B697468
#define MSG_MAX 512

/* Created in an empty file, before the first migration. */
static const char bootstrap[] = "CREATE TABLE kith_schema("
                                " id INTEGER PRIMARY KEY CHECK (id = 1),"
                                " version INTEGER NOT NULL);"
                                "INSERT INTO kith_schema VALUES (1, 0);";

/* migrations[i] takes the schema from version i to version i + 1. Append
 * only: a released entry never changes. */
static const char *const migrations[] = {
    /* 1: owners and items. */
    "CREATE TABLE owners("
    " owner TEXT PRIMARY KEY NOT NULL,"
    " version TEXT) WITHOUT ROWID;"
    "CREATE TABLE items("
    " owner TEXT NOT NULL,"
    " jid TEXT NOT NULL,"
    " name TEXT,"
    " groups BLOB NOT NULL,"
    " flags INTEGER NOT NULL,"
    " PRIMARY KEY (owner, jid)) WITHOUT ROWID;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The cached statements. */
enum {
  S_BEGIN,
  S_COMMIT,
  S_OWNER_ADD,
  S_OWNER_DROP,
  S_VERSION_SET,
  S_ITEM_PUT,
  S_ITEM_DEL,
  S_ITEMS_CLEAR,
  S_LOAD,
  S_OWNERS,
  S_NSTMT
};

static const char *const stmt_sql[S_NSTMT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_OWNER_ADD] = "INSERT OR IGNORE INTO owners(owner) VALUES (?1)",
    [S_OWNER_DROP] = "DELETE FROM owners WHERE owner = ?1",
    [S_VERSION_SET] = "UPDATE owners SET version = ?2 WHERE owner = ?1",
    [S_ITEM_PUT] = "INSERT OR REPLACE INTO items(owner, jid, name, groups,"
                   " flags) VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_ITEM_DEL] = "DELETE FROM items WHERE owner = ?1 AND jid = ?2",
    [S_ITEMS_CLEAR] = "DELETE FROM items WHERE owner = ?1",
    /* One statement, so the version and the items come from one snapshot
     * even while another process writes. An owner without items gives one
     * row with a NULL jid; an unknown owner gives none. */
    [S_LOAD] = "SELECT o.version, i.jid, i.name, i.groups, i.flags"
               " FROM owners o LEFT JOIN items i ON i.owner = o.owner"
               " WHERE o.owner = ?1",
    [S_OWNERS] = "SELECT owner FROM owners",
};

static const char *const sync_names[] = {"off", "normal", "full", "extra"};

typedef struct sql_store {
  kith_ctx_t *ctx;
  sqlite3 *db;
  char *path;
  int sync; /* index into sync_names */
  int busy_ms;
  int reset_damaged; /* on_corrupt=reset: a damaged file is set aside */
  sqlite3_stmt *stmt[S_NSTMT];
  unsigned char *blob; /* encoded groups of a PUT */
  size_t blob_cap;
  const char **groups; /* decoded groups of a loaded item */
  size_t groups_cap;
  char msg[MSG_MAX]; /* why the last internal step failed */
} sql_store_t;

/* ---- errors ----------------------------------------------------------- */

static kith_status_t status_of(int src)
{
  switch (src & 0xff) {
  case SQLITE_OK:
    return KITH_OK;
  case SQLITE_NOMEM:
    return KITH_ENOMEM;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    return KITH_ECORRUPT;
  default:
    return KITH_ESTORE;
  }
}

/* Record a failed SQLite call (`src`, its message in the connection). */
static kith_status_t db_fail(sql_store_t *s, int src, const char *what)
{
  kith_status_t rc = status_of(src);
  const char *em = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src);

  if (rc == KITH_OK)
    rc = KITH_ESTORE;
  if (rc == KITH_ECORRUPT)
    snprintf(s->msg, sizeof(s->msg),
             "sqlite store '%s' is damaged or is not a SQLite database "
             "(%s: %s)",
             s->path, what, em);
  else
    snprintf(s->msg, sizeof(s->msg), "sqlite store '%s': %s: %s", s->path, what,
             em);
  return rc;
}

/* ---- statements ------------------------------------------------------- */

static sqlite3_stmt *stmt(sql_store_t *s, int id)
{
  if (s->stmt[id] == NULL)
    sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                       &s->stmt[id], NULL);
  return s->stmt[id];
}

/* Step a statement that returns no rows, then make it ready again. */
static kith_status_t step_done(sql_store_t *s, sqlite3_stmt *st,
                               const char *what)
{
  int src = sqlite3_step(st);
  kith_status_t rc = KITH_OK;

  if (src != SQLITE_DONE && src != SQLITE_ROW)
    rc = db_fail(s, src, what);
  sqlite3_reset(st);
  return rc;
}

/* Run a cached statement whose parameters are ?1 = owner and, when not
 * NULL, ?2 = `arg`. */
static kith_status_t run(sql_store_t *s, int id, const char *owner,
                         const char *arg, const char *what)
{
  sqlite3_stmt *st = stmt(s, id);

  if (st == NULL)
    return db_fail(s, sqlite3_errcode(s->db), what);
  if ((owner && sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC)) ||
      (sqlite3_bind_parameter_count(st) >= 2 &&
       sqlite3_bind_text(st, 2, arg, -1, SQLITE_STATIC)))
    return db_fail(s, sqlite3_errcode(s->db), what);
  return step_done(s, st, what);
}

static void stmts_finalize(sql_store_t *s)
{
  int i;

  for (i = 0; i < S_NSTMT; i++) {
    sqlite3_finalize(s->stmt[i]);
    s->stmt[i] = NULL;
  }
}

/* End a failed write transaction, keeping the failure's message. */
static void rollback(sql_store_t *s)
{
  if (s->db && !sqlite3_get_autocommit(s->db))
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- opening ---------------------------------------------------------- */

/* mkdir -p the directory of the path, mode 0700 for what it creates. */
static kith_status_t make_parent(sql_store_t *s)
{
  char *dir = kith__strdup(s->ctx, s->path), *slash, *p, c;
  kith_status_t rc = KITH_OK;
  struct stat sb;

  if (dir == NULL)
    return KITH_ENOMEM;
  slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir || (*slash = '\0', stat(dir, &sb) == 0))
    goto out;
  for (p = dir + 1;; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    c = *p;
    *p = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
      snprintf(s->msg, sizeof(s->msg),
               "sqlite store '%s': cannot create directory '%s': %s", s->path,
               dir, strerror(errno));
      rc = KITH_ESTORE;
      break;
    }
    if ((*p = c) == '\0')
      break;
  }
out:
  kith__free(s->ctx, dir);
  return rc;
}

/* One integer from a one-row query. */
static int query_int(sql_store_t *s, const char *sql, int *out)
{
  sqlite3_stmt *st = NULL;
  int src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

  if (src == SQLITE_OK) {
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
      *out = sqlite3_column_int(st, 0);
      src = SQLITE_OK;
    } else if (src == SQLITE_DONE) {
      *out = -1;
      src = SQLITE_OK;
    }
  }
  if (src != SQLITE_OK)
    db_fail(s, src, "reading the schema");
  sqlite3_finalize(st);
  return src;
}

/* The schema version of the open file: -1 when the file is empty (a new
 * store). KITH_ECORRUPT when it is not a kith store. */
static kith_status_t schema_version(sql_store_t *s, int *version)
{
  int app = 0, ntables = 0, nkith = 0, src;

  if ((src = query_int(s, "PRAGMA application_id", &app)) ||
      (src = query_int(s, "SELECT count(*) FROM sqlite_master", &ntables)) ||
      (src = query_int(s,
                       "SELECT count(*) FROM sqlite_master"
                       " WHERE type = 'table' AND name = 'kith_schema'",
                       &nkith)))
    return status_of(src);
  *version = -1;
  if (ntables == 0 && app == 0)
    return KITH_OK;
  if ((app != 0 && app != KITH_APP_ID) || nkith == 0) {
    snprintf(s->msg, sizeof(s->msg),
             "sqlite store '%s' is a SQLite database but not a kith store",
             s->path);
    return KITH_ECORRUPT;
  }
  if ((src = query_int(s, "SELECT version FROM kith_schema WHERE id = 1",
                       version)))
    return status_of(src);
  if (*version < 0) {
    snprintf(s->msg, sizeof(s->msg),
             "sqlite store '%s' is damaged: its schema version is missing",
             s->path);
    return KITH_ECORRUPT;
  }
  return KITH_OK;
}

static kith_status_t exec(sql_store_t *s, const char *sql, const char *what)
{
  int src = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

  return src == SQLITE_OK ? KITH_OK : db_fail(s, src, what);
}

/* Bring the schema up to date, in one transaction. */
static kith_status_t migrate(sql_store_t *s)
{
  char sql[96];
  kith_status_t rc;
  int version = -1;

  if ((rc = exec(s, "BEGIN IMMEDIATE", "opening")) != KITH_OK)
    return rc;
  if ((rc = schema_version(s, &version)) != KITH_OK)
    goto fail;
  if (version > SCHEMA_VERSION) {
    snprintf(s->msg, sizeof(s->msg),
             "sqlite store '%s' has schema version %d, newer than this "
             "kith knows (%d): use a newer kith",
             s->path, version, SCHEMA_VERSION);
    rc = KITH_ESTORE;
    goto fail;
  }
  if (version < 0) {
    snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", KITH_APP_ID);
    if ((rc = exec(s, sql, "creating the schema")) != KITH_OK ||
        (rc = exec(s, bootstrap, "creating the schema")) != KITH_OK)
      goto fail;
    version = 0;
  }
  for (; version < SCHEMA_VERSION; version++) {
    snprintf(sql, sizeof(sql), "UPDATE kith_schema SET version = %d",
             version + 1);
    if ((rc = exec(s, migrations[version], "migrating the schema")) !=
            KITH_OK ||
        (rc = exec(s, sql, "migrating the schema")) != KITH_OK)
      goto fail;
  }
  if ((rc = exec(s, "COMMIT", "opening")) == KITH_OK)
    return KITH_OK;
fail:
  rollback(s);
  return rc;
}

/* WAL and the chosen durability; both are per connection or idempotent. */
static kith_status_t set_modes(sql_store_t *s)
{
  sqlite3_stmt *st = NULL;
  const char *mode = NULL;
  char sql[64];
  kith_status_t rc = KITH_OK;
  int src;

  src = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
  if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
    mode = (const char *)sqlite3_column_text(st, 0);
  if (mode == NULL)
    rc = db_fail(s, src, "switching to WAL mode");
  else if (strcmp(mode, "wal") != 0) {
    snprintf(s->msg, sizeof(s->msg),
             "sqlite store '%s': cannot use WAL mode (journal mode stays "
             "'%s')",
             s->path, mode);
    rc = KITH_ESTORE;
  }
  sqlite3_finalize(st);
  if (rc != KITH_OK)
    return rc;
  snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s", sync_names[s->sync]);
  return exec(s, sql, "setting synchronous");
}

static void db_close(sql_store_t *s)
{
  stmts_finalize(s);
  sqlite3_close(s->db);
  s->db = NULL;
}

static kith_status_t db_open(sql_store_t *s)
{
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  kith_status_t rc;
  int src;

  if ((rc = make_parent(s)) != KITH_OK)
    return rc;
  src = sqlite3_open_v2(s->path, &s->db, flags, NULL);
  if (s->db == NULL) {
    snprintf(s->msg, sizeof(s->msg), "sqlite store '%s': out of memory",
             s->path);
    return KITH_ENOMEM;
  }
  if (src != SQLITE_OK) {
    rc = db_fail(s, src, "cannot open");
    db_close(s);
    return rc == KITH_ECORRUPT ? rc : KITH_ESTORE;
  }
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_busy_timeout(s->db, s->busy_ms);
  if ((rc = migrate(s)) != KITH_OK || (rc = set_modes(s)) != KITH_OK)
    db_close(s);
  return rc;
}

static kith_status_t move_aside(sql_store_t *s);

/* ---- options ---------------------------------------------------------- */

static kith_status_t option(void *ud, const char *key, const char *value)
{
  sql_store_t *s = ud;

  if (strcmp(key, "synchronous") == 0) {
    int i;

    for (i = 0; i < 4; i++)
      if (strcasecmp(value, sync_names[i]) == 0) {
        s->sync = i;
        return KITH_OK;
      }
    snprintf(s->msg, sizeof(s->msg),
             "sqlite: synchronous must be off, normal, full or extra, not "
             "'%s'",
             value);
    return KITH_EINVAL;
  }
  if (strcmp(key, "busy_timeout") == 0) {
    char *end;
    long ms;

    errno = 0;
    ms = strtol(value, &end, 10);
    if (*value < '0' || *value > '9' || *end != '\0' || errno || ms > INT_MAX) {
      snprintf(s->msg, sizeof(s->msg),
               "sqlite: busy_timeout must be a number of milliseconds, not "
               "'%s'",
               value);
      return KITH_EINVAL;
    }
    s->busy_ms = (int)ms;
    return KITH_OK;
  }
  if (strcmp(key, "on_corrupt") == 0) {
    if (strcmp(value, "reset") == 0 || strcmp(value, "fail") == 0) {
      s->reset_damaged = value[0] == 'r';
      return KITH_OK;
    }
    snprintf(s->msg, sizeof(s->msg),
             "sqlite: on_corrupt must be reset or fail, not '%s'", value);
    return KITH_EINVAL;
  }
  snprintf(s->msg, sizeof(s->msg),
           "sqlite: unknown option '%s' (known: synchronous, busy_timeout, "
           "on_corrupt)",
           key);
  return KITH_EINVAL;
}

/* ---- apply ------------------------------------------------------------ */

static kith_status_t check_ops(kith_store_t *store, const kith_store_op_t *ops,
                               size_t n)
{
  size_t i, g;

  for (i = 0; i < n; i++) {
    const kith_store_item_t *it = &ops[i].item;
    int ok;

    switch (ops[i].type) {
    case KITH_STORE_PUT:
      ok = it->jid && (it->groups || it->ngroups == 0);
      for (g = 0; ok && g < it->ngroups; g++)
        ok = it->groups[g] != NULL;
      break;
    case KITH_STORE_DELETE:
      ok = it->jid != NULL;
      break;
    case KITH_STORE_VERSION:
    case KITH_STORE_CLEAR:
    case KITH_STORE_DROP:
      ok = 1;
      break;
    default:
      ok = 0;
    }
    if (!ok) {
      kith_store_set_error(store,
                           "sqlite store: operation %zu of the batch is "
                           "invalid (missing JID or group, or unknown type)",
                           i);
      return KITH_EINVAL;
    }
  }
  return KITH_OK;
}

/* The groups as one blob of NUL-terminated names, in s->blob. */
static kith_status_t encode_groups(sql_store_t *s, const kith_store_item_t *it,
                                   size_t *len)
{
  size_t need = 0, i;
  unsigned char *nb;

  for (i = 0; i < it->ngroups; i++)
    need += strlen(it->groups[i]) + 1;
  if (need > s->blob_cap) {
    if ((nb = kith__realloc(s->ctx, s->blob, need)) == NULL)
      return KITH_ENOMEM;
    s->blob = nb;
    s->blob_cap = need;
  }
  *len = 0;
  for (i = 0; i < it->ngroups; i++) {
    size_t l = strlen(it->groups[i]) + 1;

    memcpy(s->blob + *len, it->groups[i], l);
    *len += l;
  }
  return KITH_OK;
}

static kith_status_t put_item(sql_store_t *s, const char *owner,
                              const kith_store_item_t *it)
{
  sqlite3_stmt *st = stmt(s, S_ITEM_PUT);
  kith_status_t rc;
  size_t len;

  if (st == NULL)
    return db_fail(s, sqlite3_errcode(s->db), "storing an item");
  if ((rc = encode_groups(s, it, &len)) != KITH_OK) {
    snprintf(s->msg, sizeof(s->msg), "sqlite store '%s': out of memory",
             s->path);
    return rc;
  }
  /* A zero-length blob, not NULL, for no groups: bind a non-NULL pointer. */
  if (sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC) ||
      sqlite3_bind_text(st, 2, it->jid, -1, SQLITE_STATIC) ||
      sqlite3_bind_text(st, 3, it->name, -1, SQLITE_STATIC) ||
      sqlite3_bind_blob64(st, 4, len ? (void *)s->blob : (void *)"", len,
                          SQLITE_STATIC) ||
      sqlite3_bind_int(st, 5, (int)(it->flags & KITH_STORE_FLAG_MASK)))
    return db_fail(s, sqlite3_errcode(s->db), "storing an item");
  return step_done(s, st, "storing an item");
}

static kith_status_t apply_op(sql_store_t *s, const char *owner,
                              const kith_store_op_t *op)
{
  kith_status_t rc;

  switch (op->type) {
  case KITH_STORE_PUT:
    return put_item(s, owner, &op->item);
  case KITH_STORE_DELETE:
    return run(s, S_ITEM_DEL, owner, op->item.jid, "deleting an item");
  case KITH_STORE_VERSION:
    return run(s, S_VERSION_SET, owner, op->version, "setting the version");
  case KITH_STORE_CLEAR:
    if ((rc = run(s, S_ITEMS_CLEAR, owner, NULL, "clearing")) != KITH_OK)
      return rc;
    return run(s, S_VERSION_SET, owner, NULL, "clearing");
  case KITH_STORE_DROP:
    if ((rc = run(s, S_ITEMS_CLEAR, owner, NULL, "dropping")) != KITH_OK)
      return rc;
    return run(s, S_OWNER_DROP, owner, NULL, "dropping");
  }
  return KITH_EINVAL;
}

static kith_status_t not_open(kith_store_t *store, sql_store_t *s)
{
  kith_store_set_error(store, "sqlite store '%s' is not open (a reset failed)",
                       s->path);
  return KITH_ESTORE;
}

static kith_status_t sql_apply(kith_store_t *store, void *impl,
                               const char *owner, const kith_store_op_t *ops,
                               size_t n)
{
  sql_store_t *s = impl;
  kith_status_t rc;
  int known = 0;
  size_t i;

  if ((rc = check_ops(store, ops, n)) != KITH_OK)
    return rc;
  if (s->db == NULL)
    return not_open(store, s);
  s->msg[0] = '\0';
  if ((rc = run(s, S_BEGIN, NULL, NULL, "starting a transaction")) != KITH_OK)
    goto out;
  /* Every operation but DROP needs the owner's row; a DROP removes it. */
  for (i = 0; i < n && rc == KITH_OK; i++) {
    if (ops[i].type != KITH_STORE_DROP && !known) {
      if ((rc = run(s, S_OWNER_ADD, owner, NULL, "adding the owner")))
        break;
      known = 1;
    }
    if (ops[i].type == KITH_STORE_DROP)
      known = 0;
    rc = apply_op(s, owner, &ops[i]);
  }
  if (rc == KITH_OK && n == 0)
    rc = run(s, S_OWNER_ADD, owner, NULL, "adding the owner");
  if (rc == KITH_OK)
    rc = run(s, S_COMMIT, NULL, NULL, "committing");
  if (rc != KITH_OK)
    rollback(s);
out:
  if (rc != KITH_OK)
    kith_store_set_error(store, "%s", s->msg);
  return rc;
}

/* ---- load, owners ----------------------------------------------------- */

/* Split a groups blob into s->groups. KITH_ECORRUPT when malformed. */
static kith_status_t decode_groups(sql_store_t *s, const char *b, size_t len,
                                   size_t *n)
{
  const char **ng;
  size_t i, count = 0;

  *n = 0;
  if (len == 0)
    return KITH_OK;
  if (b == NULL || b[len - 1] != '\0')
    return KITH_ECORRUPT;
  for (i = 0; i < len; i++)
    count += b[i] == '\0';
  if (count > s->groups_cap) {
    ng = kith__realloc(s->ctx, s->groups, count * sizeof(*ng));
    if (ng == NULL)
      return KITH_ENOMEM;
    s->groups = ng;
    s->groups_cap = count;
  }
  for (i = 0; i < len; i += strlen(b + i) + 1)
    s->groups[(*n)++] = b + i;
  return KITH_OK;
}

/* Feed one row of S_LOAD (past its version column) to the sink. */
static kith_status_t load_row(kith_store_t *store, sql_store_t *s,
                              sqlite3_stmt *st, const kith_store_sink_t *sink)
{
  kith_store_item_t it;
  kith_status_t rc;

  it.jid = (const char *)sqlite3_column_text(st, 1);
  if (it.jid == NULL)
    return KITH_OK; /* the owner has no items */
  it.name = (const char *)sqlite3_column_text(st, 2);
  rc = decode_groups(s, sqlite3_column_blob(st, 3),
                     (size_t)sqlite3_column_bytes(st, 3), &it.ngroups);
  if (rc != KITH_OK) {
    kith_store_set_error(store,
                         rc == KITH_ECORRUPT
                             ? "sqlite store '%s' is damaged: item %s has "
                               "malformed groups"
                             : "sqlite store '%s': out of memory (item %s)",
                         s->path, it.jid);
    return rc;
  }
  it.groups = it.ngroups ? s->groups : NULL;
  it.flags = (unsigned)sqlite3_column_int(st, 4) & KITH_STORE_FLAG_MASK;
  return sink->item(sink->ud, &it);
}

static kith_status_t sql_load(kith_store_t *store, void *impl,
                              const char *owner, const kith_store_sink_t *sink)
{
  sql_store_t *s = impl;
  sqlite3_stmt *st;
  kith_status_t rc = KITH_ENOTFOUND;
  int src;

  if (s->db == NULL)
    return not_open(store, s);
  if ((st = stmt(s, S_LOAD)) == NULL ||
      sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC)) {
    rc = db_fail(s, sqlite3_errcode(s->db), "loading");
    kith_store_set_error(store, "%s", s->msg);
    return rc;
  }
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    if (rc == KITH_ENOTFOUND) {
      /* The first row: the owner is known, its version comes first. */
      const char *ver = (const char *)sqlite3_column_text(st, 0);

      rc = sink->version ? sink->version(sink->ud, ver) : KITH_OK;
      if (rc != KITH_OK)
        break;
    }
    if ((rc = load_row(store, s, st, sink)) != KITH_OK)
      break;
  }
  if (src != SQLITE_ROW && src != SQLITE_DONE) {
    rc = db_fail(s, src, "loading");
    kith_store_set_error(store, "%s", s->msg);
  }
  sqlite3_reset(st);
  return rc;
}

static kith_status_t sql_owners(kith_store_t *store, void *impl,
                                kith_store_owner_fn fn, void *ud)
{
  sql_store_t *s = impl;
  sqlite3_stmt *st;
  kith_status_t rc = KITH_OK;
  int src;

  if (s->db == NULL)
    return not_open(store, s);
  if ((st = stmt(s, S_OWNERS)) == NULL) {
    rc = db_fail(s, sqlite3_errcode(s->db), "listing owners");
    kith_store_set_error(store, "%s", s->msg);
    return rc;
  }
  while ((src = sqlite3_step(st)) == SQLITE_ROW)
    if ((rc = fn(ud, (const char *)sqlite3_column_text(st, 0))) != KITH_OK)
      break;
  if (src != SQLITE_ROW && src != SQLITE_DONE) {
    rc = db_fail(s, src, "listing owners");
    kith_store_set_error(store, "%s", s->msg);
  }
  sqlite3_reset(st);
  return rc;
}

/* ---- reset, close ----------------------------------------------------- */

/* KITH_OK when PRAGMA quick_check finds the open file sound. */
static kith_status_t check_sound(sql_store_t *s)
{
  sqlite3_stmt *st = NULL;
  kith_status_t rc = KITH_OK;
  int src = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);

  if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
    const char *res = (const char *)sqlite3_column_text(st, 0);
    if (res == NULL || strcmp(res, "ok") != 0)
      rc = KITH_ECORRUPT;
  } else {
    rc = db_fail(s, src, "checking");
  }
  sqlite3_finalize(st);
  return rc;
}

/* Empty a sound file in place: other processes may have it open. */
static kith_status_t wipe(sql_store_t *s)
{
  kith_status_t rc;

  if ((rc = exec(s,
                 "BEGIN IMMEDIATE; DELETE FROM items; DELETE FROM owners;"
                 " COMMIT",
                 "resetting")) != KITH_OK)
    rollback(s);
  return rc;
}

/* Rename PATH (and its -wal, -shm, -journal) to PATH.corrupt-TIME. */
static kith_status_t move_aside(sql_store_t *s)
{
  static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
  size_t plen = strlen(s->path), cap = plen + 64, i;
  char *src = kith__malloc(s->ctx, cap), *dst = kith__malloc(s->ctx, cap);
  long long now = (long long)time(NULL);
  kith_status_t rc = KITH_OK;
  struct stat sb;
  int k;

  if (src == NULL || dst == NULL) {
    rc = KITH_ENOMEM;
    goto out;
  }
  for (k = 0; k < 1000; k++) {
    if (k == 0)
      snprintf(dst, cap, "%s.corrupt-%lld", s->path, now);
    else
      snprintf(dst, cap, "%s.corrupt-%lld.%d", s->path, now, k);
    if (lstat(dst, &sb) != 0)
      break;
  }
  plen = strlen(dst);
  for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
    snprintf(src, cap, "%s%s", s->path, sfx[i]);
    snprintf(dst + plen, cap - plen, "%s", sfx[i]);
    if (rename(src, dst) != 0 && errno != ENOENT) {
      snprintf(s->msg, sizeof(s->msg),
               "sqlite store '%s': cannot move '%s' aside: %s", s->path, src,
               strerror(errno));
      rc = KITH_ESTORE;
      break;
    }
  }
out:
  kith__free(s->ctx, src);
  kith__free(s->ctx, dst);
  return rc;
}

static kith_status_t sql_reset(kith_store_t *store, void *impl)
{
  sql_store_t *s = impl;
  kith_status_t rc = KITH_ECORRUPT;

  s->msg[0] = '\0';
  if (s->db && (rc = check_sound(s)) == KITH_OK && (rc = wipe(s)) == KITH_OK)
    return KITH_OK;
  if (rc == KITH_ECORRUPT) {
    /* Damaged (or never opened): keep the file for a post-mortem. */
    db_close(s);
    if ((rc = move_aside(s)) == KITH_OK)
      rc = db_open(s);
  }
  if (rc != KITH_OK)
    kith_store_set_error(store, "%s", s->msg);
  return rc;
}

static void sql_close(void *impl)
{
  sql_store_t *s = impl;

  if (s == NULL)
    return;
  db_close(s);
  kith__free(s->ctx, s->path);
  kith__free(s->ctx, s->blob);
  kith__free(s->ctx, s->groups);
  kith__free(s->ctx, s);
}

static const kith_store_backend_t sql_backend = {
    "sqlite", sql_load, sql_apply, sql_owners, sql_reset, sql_close,
};

kith_status_t kith__store_open_sqlite(kith_ctx_t *ctx, const char *rest,
                                      kith_store_t **out, char *err,
                                      size_t errlen)
{
  const char *q = strchr(rest, '?');
  sql_store_t *s;
  kith_status_t rc;

  *out = NULL;
  if ((s = kith__calloc(ctx, 1, sizeof(*s))) == NULL) {
    kith__store_err(err, errlen, "sqlite: out of memory");
    return KITH_ENOMEM;
  }
  s->ctx = ctx;
  s->sync = 2; /* full: a batch is on disk when apply() returns */
  s->busy_ms = 5000;
  s->path = kith__strndup(ctx, rest, q ? (size_t)(q - rest) : strlen(rest));
  if (s->path == NULL) {
    rc = KITH_ENOMEM;
    snprintf(s->msg, sizeof(s->msg), "sqlite: out of memory");
  } else if (s->path[0] == '\0') {
    rc = KITH_EINVAL;
    snprintf(s->msg, sizeof(s->msg), "sqlite: no path given");
  } else if ((rc = kith__store_options(ctx, q ? q + 1 : NULL, option, s)) !=
             KITH_OK) {
    if (rc == KITH_EINVAL && s->msg[0] == '\0')
      snprintf(s->msg, sizeof(s->msg),
               "sqlite: malformed options '%s' (expected key=value&...)",
               q + 1);
  } else if ((rc = db_open(s)) == KITH_ECORRUPT && s->reset_damaged) {
    /* A cache the server can refill: keep the damaged file for a
     * post-mortem and start empty, saying so. */
    kith__warn(ctx, "store", "%s; moved aside as %s.corrupt-*, starting empty",
               s->msg, s->path);
    if ((rc = move_aside(s)) == KITH_OK)
      rc = db_open(s);
  }
  if (rc == KITH_OK) {
    rc = kith_store_new(ctx, &sql_backend, s, out);
    if (rc != KITH_OK)
      snprintf(s->msg, sizeof(s->msg), "sqlite: out of memory");
  }
  if (rc != KITH_OK) {
    if (rc == KITH_ENOMEM && s->msg[0] == '\0')
      snprintf(s->msg, sizeof(s->msg), "sqlite: out of memory");
    kith__store_err(err, errlen, "%s", s->msg);
    sql_close(s);
  }
  return rc;
}

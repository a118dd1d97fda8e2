/*
 * Crash test of the SQLite store (issue 4).
 *
 * 200 times: a child process opens sqlite:TMP/crash.db and applies
 * numbered roster changes, writing each number to a pipe once
 * kith_store_apply() has returned KITH_OK; the parent kills it with
 * SIGKILL after a random delay of 0-20 ms. After each kill the parent
 * checks the file with SQLite itself:
 *   - PRAGMA integrity_check says ok;
 *   - the stored version is at least the last acknowledged number;
 *   - the items and the version agree: the items are exactly those the
 *     batch numbered `version` leaves, whole, and none from a later batch.
 *
 * Batch N puts the three items fixed-K (name "N", groups "batch N" and
 * "line\nN", flags N & mask) and item-N, deletes item-(N-3) and sets the
 * version to "N". After batch V the owner has fixed-0..2 of batch V and
 * item-max(1,V-2) .. item-V.
 *
 * KITH_CRASH_SEED=N repeats a run; the seed is printed.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "kith/store.h"
#include "kith/roster.h"
#include "tmpdir.h"

#define ROUNDS 200
#define MAX_DELAY_US 20000
#define NFIXED 3
#define KEEP 3 /* item-N lives for KEEP batches */
#define OWNER "crash@example.com"

static char tmpdir[256];
static uint64_t rng;

static uint64_t next_rand(void)
{
  /* xorshift64*: reproducible from the printed seed on every libc. */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}

/* ---- the child ---------------------------------------------------------- */

static kith_status_t child_version(void *ud, const char *version)
{
  *(long *)ud = version ? strtol(version, NULL, 10) : 0;
  return KITH_OK;
}

static kith_status_t child_item(void *ud, const kith_store_item_t *it)
{
  (void)ud;
  (void)it;
  return KITH_OK;
}

static void die(const char *what, kith_status_t rc, kith_store_t *st,
                const char *err)
{
  fprintf(stderr, "crash child: %s: %s: %s\n", what, kith_status_name(rc),
          st ? kith_store_errmsg(st) : err);
  _exit(3);
}

/* Apply batches from the stored version on, forever. Never returns. */
static void child(const char *uri, int fd)
{
  char names[NFIXED + 1][24], g1[32], g2[32], ver[24], jids[NFIXED + 2][40];
  const char *groups[2] = {g1, g2};
  kith_store_sink_t sink = {child_version, child_item, NULL};
  kith_store_item_t items[NFIXED + 1];
  kith_store_op_t ops[NFIXED + 3];
  kith_store_t *st = NULL;
  kith_status_t rc;
  char err[512];
  long n = 0;
  int i;

  if ((rc = kith_store_open(NULL, uri, &st, err, sizeof(err))) != KITH_OK)
    die("open", rc, NULL, err);
  sink.ud = &n;
  rc = kith_store_load(st, OWNER, &sink);
  if (rc != KITH_OK && rc != KITH_ENOTFOUND)
    die("load", rc, st, NULL);
  for (n++;; n++) {
    snprintf(g1, sizeof(g1), "batch %ld", n);
    snprintf(g2, sizeof(g2), "line\n%ld", n);
    snprintf(ver, sizeof(ver), "%ld", n);
    memset(ops, 0, sizeof(ops));
    for (i = 0; i <= NFIXED; i++) {
      if (i < NFIXED)
        snprintf(jids[i], sizeof(jids[i]), "fixed-%d@example.com", i);
      else
        snprintf(jids[i], sizeof(jids[i]), "item-%ld@example.com", n);
      snprintf(names[i], sizeof(names[i]), "%ld", n);
      items[i].jid = jids[i];
      items[i].name = names[i];
      items[i].groups = groups;
      items[i].ngroups = 2;
      items[i].flags = (unsigned)n & KITH_STORE_FLAG_MASK;
      ops[i].type = KITH_STORE_PUT;
      ops[i].item = items[i];
    }
    snprintf(jids[NFIXED + 1], sizeof(jids[0]), "item-%ld@example.com",
             n - KEEP);
    ops[NFIXED + 1].type = KITH_STORE_DELETE;
    ops[NFIXED + 1].item.jid = jids[NFIXED + 1];
    ops[NFIXED + 2].type = KITH_STORE_VERSION;
    ops[NFIXED + 2].version = ver;
    if ((rc = kith_store_apply(st, OWNER, ops, NFIXED + 3)) != KITH_OK)
      die("apply", rc, st, NULL);
    if (write(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
      _exit(4);
  }
}

/* ---- the parent's check ------------------------------------------------- */

/* The groups blob batch `n` writes: each name NUL-terminated. */
static size_t want_groups(long n, char *buf, size_t len)
{
  int a = snprintf(buf, len, "batch %ld", n) + 1;
  int b = snprintf(buf + a, len - (size_t)a, "line\n%ld", n) + 1;

  return (size_t)(a + b);
}

static long query_long(sqlite3 *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  long v = 0;

  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    v = strtol((const char *)sqlite3_column_text(st, 0), NULL, 10);
  sqlite3_finalize(st);
  return v;
}

static void check_item(long version, const char *jid, const char *name,
                       const void *groups, int glen, int flags)
{
  char want[64];
  size_t wl;
  long m = 0;

  if (strncmp(jid, "fixed-", 6) == 0) {
    m = version;
  } else if (sscanf(jid, "item-%ld@", &m) != 1) {
    fail_msg("unexpected item %s", jid);
  } else if (m > version || m <= version - KEEP || m < 1) {
    fail_msg("item %s does not belong with version %ld", jid, version);
  }
  if (name == NULL || strtol(name, NULL, 10) != m)
    fail_msg("item %s has name %s, expected %ld", jid, name ? name : "NULL", m);
  wl = want_groups(m, want, sizeof(want));
  if ((size_t)glen != wl || memcmp(groups, want, wl) != 0)
    fail_msg("item %s: groups are not those of batch %ld", jid, m);
  assert_int_equal(flags, (int)((unsigned)m & KITH_STORE_FLAG_MASK));
}

/* Check the file after a kill; returns the stored version. */
static long check_db(const char *path, long acked)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  char ic[64] = "";
  long version, nitems = 0, want;

  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL),
                   SQLITE_OK);
  assert_int_equal(
      sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
      SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW)
    snprintf(ic, sizeof(ic), "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  assert_string_equal(ic, "ok");

  if (query_long(db, "SELECT count(*) FROM sqlite_master"
                     " WHERE name = 'owners'") == 0) {
    /* Killed before the schema was committed: nothing was acknowledged. */
    assert_int_equal(acked, 0);
    sqlite3_close(db);
    return 0;
  }
  version =
      query_long(db, "SELECT version FROM owners WHERE owner = '" OWNER "'");
  if (version < acked)
    fail_msg("version %ld but %ld was acknowledged", version, acked);
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT jid, name, groups, flags FROM "
                                      "items WHERE owner = '" OWNER "'",
                                      -1, &st, NULL),
                   SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW) {
    check_item(version, (const char *)sqlite3_column_text(st, 0),
               (const char *)sqlite3_column_text(st, 1),
               sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2),
               sqlite3_column_int(st, 3));
    nitems++;
  }
  sqlite3_finalize(st);
  want = version == 0 ? 0 : NFIXED + (version < KEEP ? version : KEEP);
  if (nitems != want)
    fail_msg("%ld items with version %ld, expected %ld", nitems, version, want);
  sqlite3_close(db);
  return version;
}

/* ---- one round ---------------------------------------------------------- */

/* Run a child, kill it, return the last number it acknowledged (or
 * `acked` when it acknowledged none). */
static long crash_once(const char *uri, long acked)
{
  struct timespec ts;
  int fds[2], status;
  long n, us = (long)(next_rand() % (MAX_DELAY_US + 1));
  pid_t pid;

  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child(uri, fds[1]);
  }
  close(fds[1]);
  ts.tv_sec = 0;
  ts.tv_nsec = us * 1000;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  kill(pid, SIGKILL);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  /* The write end is closed in both processes now: read to EOF. */
  while (read(fds[0], &n, sizeof(n)) == (ssize_t)sizeof(n))
    acked = n;
  close(fds[0]);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    fail_msg("the child ended on its own (status %d)", status);
  return acked;
}

static void test_crash(void **state)
{
  char path[300], uri[400], err[512];
  const char *env = getenv("KITH_CRASH_SEED");
  uint64_t seed;
  long acked = 0, version = 0, prev = 0, unacked = 0, idle = 0;
  kith_store_t *st = NULL;
  kith_store_sink_t sink = {child_version, child_item, NULL};
  int round;

  (void)state;
  seed = env ? strtoull(env, NULL, 10)
             : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  rng = seed ? seed : 1;
  printf("crash test: seed %llu (KITH_CRASH_SEED to repeat)\n",
         (unsigned long long)seed);
  snprintf(path, sizeof(path), "%s/crash.db", tmpdir);
  snprintf(uri, sizeof(uri), "sqlite:%s?synchronous=full", path);
  for (round = 0; round < ROUNDS; round++) {
    acked = crash_once(uri, acked);
    if (access(path, F_OK) != 0) {
      idle++; /* killed before the file existed */
      continue;
    }
    version = check_db(path, acked);
    unacked += version > acked;
    idle += version == prev;
    prev = version;
  }
  printf("crash test: %d kills, %ld batches committed, %ld acknowledged; "
         "%ld kills after a commit reached the WAL but before its "
         "acknowledgement, %ld with no new "
         "commit\n",
         ROUNDS, version, acked, unacked, idle);
  assert_true(version >= 10); /* the children did real work */

  /* And the store itself reads what SQLite sees. */
  assert_int_equal(kith_store_open(NULL, uri, &st, err, sizeof(err)), KITH_OK);
  sink.ud = &acked;
  assert_int_equal(kith_store_load(st, OWNER, &sink), KITH_OK);
  assert_int_equal(acked, version);
  kith_store_close(st);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crash),
  };
  int fails;

  if (tmpdir_make(tmpdir, sizeof(tmpdir), "test-crash") == NULL) {
    perror("mkdtemp");
    return 1;
  }
  fails = cmocka_run_group_tests_name("store/crash", tests, NULL, NULL);
  tmpdir_remove(tmpdir);
  return fails;
}

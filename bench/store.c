/*
 * bench/store: what keeping rosters in a store costs.
 *
 * Part 1, per backend (SQLite with synchronous=full, the durable default,
 * and synchronous=normal; Redis; memory as the floor): one owner with N
 * items (names, 0-3 groups, assorted flags) saved in ONE kith_store_apply()
 * and, for a second owner, in applies of 1,000 items; the first owner
 * loaded back (checked item by item once, then timed, best of three); and
 * single-item updates, one apply per item holding a PUT and a VERSION as a
 * roster push does, counted for at most UPD_MAX updates or UPD_BUDGET
 * seconds, whichever comes first.
 *
 * Part 2, the component: a store filled with J owner JIDs of 10 contacts
 * each, one apply per owner (the API batches per owner; SQLite fills with
 * synchronous=normal, since a million fsyncs would take most of an hour).
 * A fill that overruns FILL_BUDGET stops there and the run says how many
 * owners it holds; kith_store_owners() then lists them, timed. Then, per store,
 * two child processes (exec'd afresh, so their peak RSS is theirs alone) run a
 * kith_roster on that store, one under a memory limit and one without: warm
 * each of the A active owners looked up once (all cold loads); active  random
 * lookups among the A active owners, ACTIVE_ROUNDS * A of them, one in
 * CHANGE_EVERY changing an item and the version (a push), so commits write
 * through and eviction runs; cold    random lookups across all J owners (mostly
 * loads from the store). Each lookup is bracketed by kith__roster_begin()/end()
 * as the component brackets a stanza: eviction runs when a batch ends, never on
 * a bare lookup. After each phase the child prints the resident nodes,
 * kith_roster_memory(), the live bytes of kith's heap (a counting
 * allocator; SQLite's and hiredis's own memory are not in it), RSS now and
 * peak RSS (VmHWM; see rss_peak()). At the end the child checks that its
 * last push is in the store, and that nothing was logged as an error.
 *
 * Redis: without --redis-port a private redis-server is started on a free
 * loopback port (no persistence, its dir in the temporary directory) and
 * stopped at the end; without redis-server, Redis is skipped with a note.
 * Keys use the prefix "kithbench", which is wiped at the start and the end
 * (so a shared server keeps everything else). SQLite files live in a
 * temporary directory removed at the end.
 *
 * Figures only: nothing here fails on timing. Exit status 1 means a store
 * misbehaved (an error, or data that did not come back as written).
 *
 *   store [--items N] [--jids N] [--active N] [--cold N] [--limit MIB]
 *         [--redis-port P]
 */
#define _GNU_SOURCE /* nftw() */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "kith/roster.h"
#include "kith/store.h"
#include "roster/model.h"

#define UPD_MAX 2000
#define UPD_BUDGET 10.0
#define BATCH 1000
#define CONTACTS 10
#define FILL_BUDGET 100.0
#define ACTIVE_ROUNDS 10
#define CHANGE_EVERY 100
#define PHASE_BUDGET 20.0
#define NGROUPS 20
#define REDIS_PREFIX "kithbench"

typedef struct opts {
  size_t items, jids, active, cold, limit_mib;
  int redis_port; /* 0: start a private server */
} opts_t;

/* ---- Small helpers ------------------------------------------------------ */

static double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
  uint64_t x = *s;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static double mib(double bytes)
{
  return bytes / (1024.0 * 1024.0);
}

static size_t rss_now(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, res = 0;

  if (f == NULL)
    return 0;
  if (fscanf(f, "%lu %lu", &size, &res) != 2)
    res = 0;
  fclose(f);
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Peak RSS of this program image. getrusage()'s ru_maxrss would do but
 * for exec: Linux carries the pre-exec maximum over (the forked copy of
 * the parent's pages), so the child would report the parent's peak. The
 * memory map's own high-water mark (VmHWM) starts afresh at exec. */
static size_t rss_peak(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  unsigned long kb = 0;
  struct rusage ru;

  while (f && fgets(line, sizeof(line), f))
    if (sscanf(line, "VmHWM: %lu kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  if (kb == 0 && getrusage(RUSAGE_SELF, &ru) == 0)
    kb = (unsigned long)ru.ru_maxrss;
  return (size_t)kb * 1024;
}

static off_t file_size(const char *path)
{
  struct stat st;

  return stat(path, &st) == 0 ? st.st_size : 0;
}

static void die(const char *what, kith_status_t rc, kith_store_t *store)
{
  fprintf(stderr, "store: %s: %s%s%s\n", what, kith_strerror(rc),
          store ? ": " : "", store ? kith_store_errmsg(store) : "");
  exit(1);
}

/* ---- A counting allocator for kith's heap ------------------------------- */

typedef struct counter {
  size_t live, peak;
} counter_t;

typedef struct hdr {
  size_t size;
  size_t pad; /* keep 16-byte alignment */
} hdr_t;

static void *c_malloc(size_t n, void *ud)
{
  counter_t *c = ud;
  hdr_t *h = malloc(sizeof(*h) + n);

  if (h == NULL)
    return NULL;
  h->size = n;
  c->live += n;
  if (c->live > c->peak)
    c->peak = c->live;
  return h + 1;
}

static void c_free(void *p, void *ud)
{
  counter_t *c = ud;
  hdr_t *h;

  if (p == NULL)
    return;
  h = (hdr_t *)p - 1;
  c->live -= h->size;
  free(h);
}

static void *c_realloc(void *p, size_t n, void *ud)
{
  hdr_t *h;
  void *q;

  if (p == NULL)
    return c_malloc(n, ud);
  h = (hdr_t *)p - 1;
  q = c_malloc(n, ud);
  if (q == NULL)
    return NULL;
  memcpy(q, p, h->size < n ? h->size : n);
  c_free(p, ud);
  return q;
}

/* ---- The temporary directory and the private Redis ----------------------
 * Removed and stopped at exit, and on SIGINT/SIGTERM (the handler only
 * kills and unlinks the files it knows of: both are async-signal-safe). */

static char tmpdir[256];
static pid_t redis_pid;
static pid_t main_pid;
static char known[16][320];
static size_t nknown;

static void know(const char *name)
{
  static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
  size_t i;

  for (i = 0; i < 4 && nknown < 16; i++)
    snprintf(known[nknown++], sizeof(known[0]), "%s/%s%s", tmpdir, name,
             sfx[i]);
}

static void stop_redis(void)
{
  if (redis_pid > 0) {
    kill(redis_pid, SIGTERM);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
  }
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
  return remove(path) == 0 ? 0 : -1;
}

static void cleanup(void)
{
  if (getpid() != main_pid)
    return;
  stop_redis();
  if (tmpdir[0] && nftw(tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "store: could not remove %s\n", tmpdir);
  tmpdir[0] = '\0';
}

static void on_signal(int sig)
{
  size_t i;

  if (redis_pid > 0)
    kill(redis_pid, SIGTERM);
  for (i = 0; i < nknown; i++)
    unlink(known[i]);
  if (tmpdir[0])
    rmdir(tmpdir);
  _exit(128 + sig);
}

static void setup_tmp(void)
{
  const char *base = getenv("TMPDIR");

  snprintf(tmpdir, sizeof(tmpdir), "%s/kith-bench-XXXXXX",
           base && *base ? base : "/tmp");
  if (mkdtemp(tmpdir) == NULL) {
    perror("store: mkdtemp");
    exit(1);
  }
  main_pid = getpid();
  know("p1-full.db");
  know("p1-normal.db");
  know("component.db");
  atexit(cleanup);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
}

static int free_port(void)
{
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

/* Start redis-server on `port`; 1 when it answers, 0 when it is missing
 * or did not come up (with a note on stdout). */
static int start_redis(int port, const char *uri)
{
  char portstr[16];
  double t0 = now_s();
  kith_store_t *st = NULL;
  int status, fd;

  snprintf(portstr, sizeof(portstr), "%d", port);
  if ((redis_pid = fork()) == 0) {
    if ((fd = open("/dev/null", O_WRONLY)) >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execlp("redis-server", "redis-server", "--port", portstr, "--bind",
           "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmpdir,
           (char *)NULL);
    _exit(127);
  }
  while (now_s() - t0 < 10.0) {
    if (waitpid(redis_pid, &status, WNOHANG) == redis_pid) {
      redis_pid = 0;
      printf("redis: skipped (%s)\n",
             WIFEXITED(status) && WEXITSTATUS(status) == 127
                 ? "redis-server not found"
                 : "redis-server exited at start");
      return 0;
    }
    if (kith_store_open(NULL, uri, &st, NULL, 0) == KITH_OK) {
      kith_store_close(st);
      return 1;
    }
    usleep(20000);
  }
  printf("redis: skipped (redis-server did not answer on port %d)\n", port);
  stop_redis();
  return 0;
}

/* The server's used_memory (INFO memory), or 0. */
static size_t redis_used_memory(int port)
{
  redisContext *c = redisConnect("127.0.0.1", port);
  redisReply *r;
  size_t used = 0;
  const char *p;

  if (c == NULL || c->err) {
    redisFree(c);
    return 0;
  }
  r = redisCommand(c, "INFO memory");
  if (r && r->type == REDIS_REPLY_STRING &&
      (p = strstr(r->str, "used_memory:")) != NULL)
    used = (size_t)strtoull(p + strlen("used_memory:"), NULL, 10);
  freeReplyObject(r);
  redisFree(c);
  return used;
}

static kith_store_t *open_store(kith_ctx_t *ctx, const char *uri)
{
  kith_store_t *st = NULL;
  char err[512];
  kith_status_t rc = kith_store_open(ctx, uri, &st, err, sizeof(err));

  if (rc != KITH_OK) {
    fprintf(stderr, "store: opening %s: %s: %s\n", uri, kith_strerror(rc), err);
    exit(1);
  }
  return st;
}

/* Wipe what an earlier run may have left (Redis keys under our prefix). */
static void wipe(const char *uri)
{
  kith_store_t *st = open_store(NULL, uri);
  kith_status_t rc = kith_store_reset(st);

  if (rc != KITH_OK)
    die("reset", rc, st);
  kith_store_close(st);
}

/* ---- Part 1: the items of one owner ------------------------------------ */

static char group_names[NGROUPS][16];

typedef struct p1data {
  size_t n;
  char (*jids)[48];
  char (*names)[32];
  const char **gptr; /* 3 per item */
  kith_store_op_t *ops;
} p1data_t;

static unsigned p1_flags(size_t i)
{
  static const unsigned sub[4] = {KITH_ROSTER_FROM | KITH_ROSTER_TO,
                                  KITH_ROSTER_TO, KITH_ROSTER_FROM, 0};
  unsigned f = sub[i % 4];

  if (i % 16 == 3)
    f |= KITH_ROSTER_PENDING_IN;
  if (i % 32 == 5)
    f |= KITH_STORE_WHITELISTED;
  return f;
}

static void p1_make(p1data_t *d, size_t n)
{
  size_t i, g;

  for (i = 0; i < NGROUPS; i++)
    snprintf(group_names[i], sizeof(group_names[i]), "Group %02zu", i);
  d->n = n;
  d->jids = calloc(n, sizeof(*d->jids));
  d->names = calloc(n, sizeof(*d->names));
  d->gptr = calloc(n * 3, sizeof(*d->gptr));
  d->ops = calloc(n + 1, sizeof(*d->ops));
  if (!d->jids || !d->names || !d->gptr || !d->ops) {
    fprintf(stderr, "store: out of memory\n");
    exit(1);
  }
  for (i = 0; i < n; i++) {
    kith_store_item_t *it = &d->ops[i].item;

    snprintf(d->jids[i], sizeof(d->jids[i]), "contact%07zu@example.com", i);
    snprintf(d->names[i], sizeof(d->names[i]), "Contact %zu", i);
    for (g = 0; g < i % 4; g++)
      d->gptr[i * 3 + g] = group_names[(i + g * 7) % NGROUPS];
    d->ops[i].type = KITH_STORE_PUT;
    it->jid = d->jids[i];
    it->name = i % 8 == 7 ? NULL : d->names[i];
    it->groups = &d->gptr[i * 3];
    it->ngroups = i % 4;
    it->flags = p1_flags(i);
  }
}

static void p1_free(p1data_t *d)
{
  free(d->jids);
  free(d->names);
  free(d->gptr);
  free(d->ops);
}

/* Apply ops[from, from + k) plus a VERSION. */
static void apply_slice(kith_store_t *st, const char *owner, p1data_t *d,
                        size_t from, size_t k, const char *ver)
{
  kith_store_op_t save = d->ops[from + k];
  kith_status_t rc;

  d->ops[from + k].type = KITH_STORE_VERSION;
  d->ops[from + k].version = ver;
  rc = kith_store_apply(st, owner, d->ops + from, k + 1);
  d->ops[from + k] = save;
  if (rc != KITH_OK)
    die("apply", rc, st);
}

/* What a load of the part-1 owner brings back. */
typedef struct p1load {
  const p1data_t *d;
  int verify;
  size_t items, bad;
  char ver[64];
  const char *watch_jid; /* report this item's name in watch_name */
  char watch_name[64];
} p1load_t;

static kith_status_t p1_version(void *ud, const char *version)
{
  p1load_t *l = ud;

  snprintf(l->ver, sizeof(l->ver), "%s", version ? version : "(none)");
  return KITH_OK;
}

static int p1_same(const kith_store_item_t *want, const kith_store_item_t *got)
{
  size_t g;

  if ((want->name == NULL) != (got->name == NULL) ||
      (want->name && strcmp(want->name, got->name) != 0) ||
      want->ngroups != got->ngroups || want->flags != got->flags)
    return 0;
  for (g = 0; g < want->ngroups; g++)
    if (strcmp(want->groups[g], got->groups[g]) != 0)
      return 0;
  return 1;
}

static kith_status_t p1_item(void *ud, const kith_store_item_t *it)
{
  p1load_t *l = ud;
  size_t i;

  l->items++;
  if (l->watch_jid && strcmp(it->jid, l->watch_jid) == 0)
    snprintf(l->watch_name, sizeof(l->watch_name), "%s",
             it->name ? it->name : "(none)");
  if (!l->verify)
    return KITH_OK;
  i = (size_t)strtoull(it->jid + strlen("contact"), NULL, 10);
  if (strncmp(it->jid, "contact", 7) != 0 || i >= l->d->n ||
      strcmp(it->jid, l->d->jids[i]) != 0 || !p1_same(&l->d->ops[i].item, it)) {
    if (l->bad++ < 3)
      fprintf(stderr, "store: item %s did not come back as written\n", it->jid);
  }
  return KITH_OK;
}

static void p1_load(kith_store_t *st, const char *owner, p1load_t *l)
{
  kith_store_sink_t sink = {p1_version, p1_item, l};
  kith_status_t rc;

  l->items = l->bad = 0;
  l->ver[0] = '\0';
  if ((rc = kith_store_load(st, owner, &sink)) != KITH_OK)
    die("load", rc, st);
}

typedef struct p1res {
  double save_all, save_batch, load, upd_rate, upd_mean;
  size_t nupd;
  double secs;
  int bad;
} p1res_t;

/* Single-item updates: one apply of PUT + VERSION per item. */
static void p1_updates(kith_store_t *st, const char *owner, p1data_t *d,
                       p1res_t *r, char *last_jid, char *last_name)
{
  char name[64], ver[32];
  kith_store_op_t ops[2];
  double t0 = now_s(), t;
  kith_status_t rc;
  size_t k;

  for (k = 0; k < UPD_MAX && now_s() - t0 < UPD_BUDGET; k++) {
    size_t i = (k * 7919) % d->n;

    snprintf(name, sizeof(name), "Renamed %zu", k);
    snprintf(ver, sizeof(ver), "u%zu", k);
    ops[0] = d->ops[i];
    ops[0].item.name = name;
    ops[1].type = KITH_STORE_VERSION;
    ops[1].version = ver;
    if ((rc = kith_store_apply(st, owner, ops, 2)) != KITH_OK)
      die("update", rc, st);
    strcpy(last_jid, d->jids[i]);
    strcpy(last_name, name);
  }
  t = now_s() - t0;
  r->nupd = k;
  r->upd_rate = (double)k / t;
  r->upd_mean = t / (double)k * 1e6;
}

static void p1_check(const char *label, kith_store_t *st, p1data_t *d,
                     p1res_t *r, const char *last_jid, const char *last_name)
{
  p1load_t l;
  char ver[32];

  memset(&l, 0, sizeof(l));
  l.d = d;
  l.watch_jid = last_jid;
  p1_load(st, "bench@example.com", &l);
  snprintf(ver, sizeof(ver), "u%zu", r->nupd - 1);
  if (l.items != d->n || strcmp(l.ver, ver) != 0 ||
      strcmp(l.watch_name, last_name) != 0) {
    fprintf(stderr,
            "store: %s: after the updates: %zu items (want %zu), "
            "version %s (want %s), %s named '%s' (want '%s')\n",
            label, l.items, d->n, l.ver, ver, last_jid, l.watch_name,
            last_name);
    r->bad = 1;
  }
}

static void p1_loads(const char *label, kith_store_t *st, p1data_t *d,
                     p1res_t *r)
{
  p1load_t l;
  double t, best = 0;
  int k;

  memset(&l, 0, sizeof(l));
  l.d = d;
  l.verify = 1;
  p1_load(st, "bench@example.com", &l);
  if (l.items != d->n || l.bad || strcmp(l.ver, "v1") != 0) {
    fprintf(stderr,
            "store: %s: loaded %zu items (want %zu), %zu wrong, "
            "version %s (want v1)\n",
            label, l.items, d->n, l.bad, l.ver);
    r->bad = 1;
  }
  l.verify = 0;
  for (k = 0; k < 3; k++) {
    t = now_s();
    p1_load(st, "bench@example.com", &l);
    t = now_s() - t;
    if (best == 0 || t < best)
      best = t;
  }
  r->load = (double)d->n / best;
}

static void part1_backend(const char *label, const char *uri, p1data_t *d)
{
  kith_store_t *st = open_store(NULL, uri);
  char last_jid[64] = "", last_name[64] = "";
  p1res_t r;
  double t0 = now_s(), t;
  size_t i;

  memset(&r, 0, sizeof(r));
  t = now_s();
  apply_slice(st, "bench@example.com", d, 0, d->n, "v1");
  r.save_all = (double)d->n / (now_s() - t);
  t = now_s();
  for (i = 0; i < d->n; i += BATCH)
    apply_slice(st, "batch@example.com", d, i,
                d->n - i < BATCH ? d->n - i : BATCH, "v1");
  r.save_batch = (double)d->n / (now_s() - t);
  p1_loads(label, st, d, &r);
  p1_updates(st, "bench@example.com", d, &r, last_jid, last_name);
  p1_check(label, st, d, &r, last_jid, last_name);
  kith_store_close(st);
  r.secs = now_s() - t0;
  printf("%-15s %12.0f %12.0f %12.0f %10.0f %7zu %9.1f %7.1f s%s\n", label,
         r.save_all, r.save_batch, r.load, r.upd_rate, r.nupd, r.upd_mean,
         r.secs, r.bad ? "  WRONG DATA" : "");
  fflush(stdout);
  if (r.bad)
    exit(1);
}

static void part1(const opts_t *o, const char *redis_uri)
{
  char uri[512];
  p1data_t d;
  double t0 = now_s();

  p1_make(&d, o->items);
  printf("\nPart 1: one owner with %zu items (names, 0-3 groups)\n"
         "  save: one apply of all items / applies of %d; load: best of 3\n"
         "  updates: one apply (PUT + VERSION) per item, at most %d or "
         "%.0f s\n\n",
         o->items, BATCH, UPD_MAX, UPD_BUDGET);
  printf("%-15s %12s %12s %12s %10s %7s %9s %9s\n", "store", "save 1xN",
         "save xBATCH", "load", "updates", "n", "mean", "phase");
  printf("%-15s %12s %12s %12s %10s %7s %9s %9s\n", "", "items/s", "items/s",
         "items/s", "per s", "", "us", "");
  snprintf(uri, sizeof(uri), "sqlite:%s/p1-full.db", tmpdir);
  part1_backend("sqlite full", uri, &d);
  snprintf(uri, sizeof(uri), "sqlite:%s/p1-normal.db?synchronous=normal",
           tmpdir);
  part1_backend("sqlite normal", uri, &d);
  if (redis_uri)
    part1_backend("redis", redis_uri, &d);
  part1_backend("memory", "memory:", &d);
  p1_free(&d);
  printf("[part 1: %.1f s]\n", now_s() - t0);
}

/* ---- Part 2: a component's store ---------------------------------------- */

static void owner_jid(char *buf, size_t len, size_t i)
{
  snprintf(buf, len, "u%07zu@example.com", i);
}

/* Owner i's ten contacts: other owners, spread out. */
static void fill_owner(kith_store_t *st, size_t i, size_t jids)
{
  static const char *const gn[3] = {"Friends", "Work", "Family"};
  static const unsigned sub[4] = {KITH_ROSTER_FROM | KITH_ROSTER_TO,
                                  KITH_ROSTER_TO, KITH_ROSTER_FROM, 0};
  char owner[48], cj[CONTACTS][48], nm[CONTACTS][32];
  kith_store_op_t ops[CONTACTS + 1];
  kith_status_t rc;
  size_t j;

  owner_jid(owner, sizeof(owner), i);
  memset(ops, 0, sizeof(ops));
  for (j = 0; j < CONTACTS; j++) {
    owner_jid(cj[j], sizeof(cj[j]), (i + 1 + j * 99991) % jids);
    snprintf(nm[j], sizeof(nm[j]), "Friend %zu", j);
    ops[j].type = KITH_STORE_PUT;
    ops[j].item.jid = cj[j];
    ops[j].item.name = nm[j];
    ops[j].item.groups = gn;
    ops[j].item.ngroups = j % 4;
    ops[j].item.flags = sub[(i + j) % 4];
  }
  ops[CONTACTS].type = KITH_STORE_VERSION;
  ops[CONTACTS].version = "1";
  if ((rc = kith_store_apply(st, owner, ops, CONTACTS + 1)) != KITH_OK)
    die("fill", rc, st);
}

/* Fill up to `jids` owners within FILL_BUDGET; returns how many. */
static size_t fill(const char *label, const char *uri, size_t jids)
{
  kith_store_t *st = open_store(NULL, uri);
  double t0 = now_s(), t;
  int tty = isatty(2);
  size_t i;

  for (i = 0; i < jids; i++) {
    if (i % 10000 == 0 && i > 0) {
      t = now_s() - t0;
      if (tty)
        fprintf(stderr, "\r  filling %s: %zu owners, %.0f/s  ", label, i,
                (double)i / t);
      if (t > FILL_BUDGET)
        break;
    }
    fill_owner(st, i, jids);
  }
  t = now_s() - t0;
  if (tty)
    fprintf(stderr, "\r%60s\r", "");
  kith_store_close(st);
  printf("fill %-8s %zu owners x %d contacts in %.1f s: %.0f owners/s, "
         "%.0f items/s%s\n",
         label, i, CONTACTS, t, (double)i / t, (double)(i * CONTACTS) / t,
         i < jids ? " (FILL_BUDGET reached: fewer owners than asked)" : "");
  fflush(stdout);
  return i;
}

/* synchronous=normal left the fill's pages for the kernel to write back;
 * write them now, or the first component run would compete with that. */
static void flush_disk(void)
{
  int fd = open(tmpdir, O_RDONLY | O_DIRECTORY);
  double t0 = now_s();

  if (fd >= 0) {
    syncfs(fd);
    close(fd);
  }
  printf("  [syncfs after the fill: %.1f s]\n", now_s() - t0);
}

static kith_status_t count_owner(void *ud, const char *owner)
{
  ++*(size_t *)ud;
  return KITH_OK;
}

/* kith_store_owners() over the filled store: timed, and it must list
 * every owner once. */
static int list_owners(const char *uri, size_t jids)
{
  kith_store_t *st = open_store(NULL, uri);
  size_t n = 0;
  double t = now_s();
  kith_status_t rc = kith_store_owners(st, count_owner, &n);

  t = now_s() - t;
  if (rc != KITH_OK)
    die("owners", rc, st);
  kith_store_close(st);
  printf("  kith_store_owners: %zu owners in %.1f s (%.0f/s)%s\n", n, t,
         (double)n / t, n != jids ? "  WRONG COUNT" : "");
  return n != jids;
}

/* Run the component child for one store and one limit. */
static int run_child(const char *self, const char *label, const char *uri,
                     size_t jids, const opts_t *o, size_t limit)
{
  char a[5][32];
  pid_t pid;
  int st;

  snprintf(a[0], sizeof(a[0]), "%zu", jids);
  snprintf(a[1], sizeof(a[1]), "%zu", o->active < jids ? o->active : jids);
  snprintf(a[2], sizeof(a[2]), "%zu", limit);
  snprintf(a[3], sizeof(a[3]), "%zu", o->cold);
  fflush(stdout);
  if ((pid = fork()) == 0) {
    execl(self, self, "--child", label, uri, a[0], a[1], a[2], a[3],
          (char *)NULL);
    perror("store: exec");
    _exit(127);
  }
  if (pid < 0 || waitpid(pid, &st, 0) != pid)
    return 1;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    printf("%s: the component child failed (status %d)\n", label, st);
    return 1;
  }
  return 0;
}

static void part2_header(void)
{
  printf("%-7s %7s %-6s %7s %7s %8s %8s %7s %9s %9s %9s %9s\n", "store",
         "limit", "phase", "lookups", "loads", "lookup/s", "loads/s", "nodes",
         "roster_mem", "kith heap", "RSS", "peak RSS");
}

static int part2_store(const char *self, const char *label, const char *uri,
                       const opts_t *o, int redis_port)
{
  size_t before = redis_port ? redis_used_memory(redis_port) : 0, jids;
  char path[320], wal[330];
  double t0 = now_s(), used;
  int bad = 0;

  jids = fill(label, uri, o->jids);
  if (redis_port) {
    used = (double)(redis_used_memory(redis_port) - before);
    printf("  redis used_memory: %.1f MiB for the data (%.0f B per owner)\n",
           mib(used), used / (double)jids);
  } else {
    snprintf(path, sizeof(path), "%s/component.db", tmpdir);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    printf("  sqlite file: %.1f MiB (+ %.1f MiB WAL)\n",
           mib((double)file_size(path)), mib((double)file_size(wal)));
    flush_disk();
  }
  bad |= list_owners(uri, jids);
  printf("  [fill and listing: %.1f s]\n", now_s() - t0);
  part2_header();
  fflush(stdout);
  t0 = now_s();
  /* The child opens SQLite with the default, durable synchronous=full. */
  if (!redis_port) {
    snprintf(path, sizeof(path), "sqlite:%s/component.db", tmpdir);
    uri = path;
  }
  bad |= run_child(self, label, uri, jids, o, o->limit_mib << 20);
  bad |= run_child(self, label, uri, jids, o, 0);
  printf("  [component runs: %.1f s]\n", now_s() - t0);
  return bad;
}

static int part2(const char *self, const opts_t *o, const char *redis_uri,
                 int redis_port)
{
  char uri[512];
  double t0 = now_s();
  int bad = 0;

  printf("\nPart 2: a component with %zu owner JIDs x %d contacts in the "
         "store, %zu active\n"
         "  fill: one apply per owner (SQLite with synchronous=normal)\n"
         "  runs: SQLite opened with the default synchronous=full; memory "
         "limit %zu MiB, then none\n"
         "  warm: each active owner once; active: %d x %zu lookups among "
         "them, 1 in %d a push\n"
         "  (item + version); cold: %zu lookups across all owners. Each "
         "phase stops after %.0f s.\n"
         "  kith heap: live bytes of kith's allocations (SQLite and hiredis "
         "memory not included)\n\n",
         o->jids, CONTACTS, o->active, o->limit_mib, ACTIVE_ROUNDS, o->active,
         CHANGE_EVERY, o->cold, PHASE_BUDGET);
  snprintf(uri, sizeof(uri), "sqlite:%s/component.db?synchronous=normal",
           tmpdir);
  bad |= part2_store(self, "sqlite", uri, o, 0);
  if (redis_uri) {
    wipe(redis_uri);
    bad |= part2_store(self, "redis", redis_uri, o, redis_port);
  }
  printf("[part 2: %.1f s]\n", now_s() - t0);
  return bad;
}

/* ---- Part 2, in the child: the component's roster ------------------------ */

typedef struct comp {
  const char *label;
  size_t limit;
  kith_roster_t *roster;
  counter_t *heap;
  size_t lookups, loads, changes, failed, errors;
  char last_owner[48]; /* the owner of the last push */
} comp_t;

/* A push: rename the node's first item and bump the version. */
static void push(kith_roster_node_t *node, size_t k)
{
  size_t cursor = 0, g, ng;
  kith_roster_item_t *it = kith_roster_node_next(node, &cursor);
  char jid[64], name[32], ver[32], grp[8][32];
  const char *gp[8];

  if (it == NULL)
    return;
  snprintf(jid, sizeof(jid), "%s", kith_roster_item_jid(it));
  ng = kith_roster_item_group_count(it);
  for (g = 0; g < ng && g < 8; g++) {
    snprintf(grp[g], sizeof(grp[g]), "%s", kith_roster_item_group_at(it, g));
    gp[g] = grp[g];
  }
  snprintf(name, sizeof(name), "Touched %zu", k);
  snprintf(ver, sizeof(ver), "t%zu", k);
  if (kith__roster_item_upsert_norm(node, jid, name, gp, g, NULL, NULL) !=
          KITH_OK ||
      kith__roster_node_set_version(node, ver) != KITH_OK) {
    fprintf(stderr, "store: push: out of memory\n");
    exit(1);
  }
}

/* One stanza's worth: look the owner up (loading it if need be), maybe
 * change it, and end the batch (commit, then eviction). */
static void lookup(comp_t *c, size_t idx, int change)
{
  char owner[48];
  kith_roster_node_t *node;

  owner_jid(owner, sizeof(owner), idx);
  kith__roster_begin(c->roster);
  if (kith__roster_node_resident(c->roster, owner) == NULL)
    c->loads++;
  node = kith_roster_node(c->roster, owner);
  if (node == NULL || kith_roster_node_size(node) != CONTACTS) {
    if (c->failed++ < 3)
      fprintf(stderr, "store: %s: %s: %s\n", c->label, owner,
              node ? "wrong number of items"
                   : kith_store_errmsg(kith_roster_store(c->roster)));
  } else if (change) {
    push(node, c->changes++);
    snprintf(c->last_owner, sizeof(c->last_owner), "%s", owner);
  }
  kith__roster_end(c->roster);
  c->lookups++;
}

static void comp_row(comp_t *c, const char *phase, double secs)
{
  char limit[32];

  if (c->limit)
    snprintf(limit, sizeof(limit), "%zuMiB", c->limit >> 20);
  else
    snprintf(limit, sizeof(limit), "none");
  printf("%-7s %7s %-6s %7zu %7zu %8.0f %8.0f %7zu %6.1f MiB %5.1f MiB "
         "%5.1f MiB %5.1f MiB\n",
         c->label, limit, phase, c->lookups, c->loads,
         secs > 0 ? (double)c->lookups / secs : 0,
         secs > 0 ? (double)c->loads / secs : 0,
         kith_roster_node_count(c->roster),
         mib((double)kith_roster_memory(c->roster)), mib((double)c->heap->live),
         mib((double)rss_now()), mib((double)rss_peak()));
  fflush(stdout);
  c->lookups = c->loads = 0;
}

static void comp_phases(comp_t *c, size_t jids, size_t active, size_t cold)
{
  size_t stride = jids / active, k, n = ACTIVE_ROUNDS * active;
  uint64_t rng = 0x9E3779B97F4A7C15ULL;
  double t0 = now_s();

  for (k = 0; k < active && now_s() - t0 < PHASE_BUDGET; k++)
    lookup(c, k * stride, 0);
  comp_row(c, "warm", now_s() - t0);
  t0 = now_s();
  for (k = 0; k < n; k++) {
    if (k % 1024 == 0 && now_s() - t0 > PHASE_BUDGET)
      break;
    lookup(c, (rng_next(&rng) % active) * stride, k % CHANGE_EVERY == 0);
  }
  comp_row(c, "active", now_s() - t0);
  t0 = now_s();
  for (k = 0; k < cold; k++) {
    if (k % 1024 == 0 && now_s() - t0 > PHASE_BUDGET)
      break;
    lookup(c, rng_next(&rng) % jids, 0);
  }
  comp_row(c, "cold", now_s() - t0);
}

/* Store errors are logged (no connection here for the event): count them. */
static void on_log(void *ud, kith_log_level_t level, const char *area,
                   const char *msg)
{
  comp_t *c = ud;

  if (c->errors++ < 3)
    fprintf(stderr, "store: %s: kith %s %s: %s\n", c->label,
            kith_log_level_name(level), area, msg);
}

static kith_status_t last_version(void *ud, const char *version)
{
  snprintf(ud, 32, "%s", version ? version : "(none)");
  return KITH_OK;
}

static kith_status_t any_item(void *ud, const kith_store_item_t *it)
{
  return KITH_OK;
}

/* The last push must be in the store, version and all. */
static int check_last_push(comp_t *c, kith_store_t *st)
{
  char ver[32] = "", want[32];
  kith_store_sink_t sink = {last_version, any_item, ver};
  kith_status_t rc;

  if (c->changes == 0)
    return 0;
  snprintf(want, sizeof(want), "t%zu", c->changes - 1);
  rc = kith_store_load(st, c->last_owner, &sink);
  if (rc != KITH_OK || strcmp(ver, want) != 0) {
    fprintf(stderr,
            "store: %s: the last push to %s: %s, version %s (want %s)\n",
            c->label, c->last_owner, kith_strerror(rc), ver, want);
    return 1;
  }
  return 0;
}

static int child_main(char **argv)
{
  counter_t heap = {0, 0};
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &heap};
  kith_ctx_t *ctx = NULL;
  kith_store_t *st;
  comp_t c;
  kith_status_t rc;
  size_t ctx_bytes;
  int bad;

  memset(&c, 0, sizeof(c));
  c.label = argv[0];
  c.limit = (size_t)strtoull(argv[4], NULL, 10);
  c.heap = &heap;
  if (kith_ctx_new(&a, &ctx) != KITH_OK)
    die("setup", KITH_ENOMEM, NULL);
  /* The context itself is the one allocation that stays to the end. */
  ctx_bytes = heap.live;
  kith_ctx_set_log(ctx, KITH_LOG_ERROR, on_log, &c);
  if (kith_roster_new(ctx, &c.roster) != KITH_OK)
    die("setup", KITH_ENOMEM, NULL);
  st = open_store(ctx, argv[1]);
  if ((rc = kith_roster_set_store(c.roster, st)) != KITH_OK)
    die("kith_roster_set_store", rc, st);
  if (c.limit)
    kith_roster_set_memory_limit(c.roster, c.limit);
  comp_row(&c, "start", 0);
  comp_phases(&c, (size_t)strtoull(argv[2], NULL, 10),
              (size_t)strtoull(argv[3], NULL, 10),
              (size_t)strtoull(argv[5], NULL, 10));
  if (c.failed)
    fprintf(stderr, "store: %s: %zu lookups failed\n", c.label, c.failed);
  kith_roster_free(c.roster);
  bad = check_last_push(&c, st) || c.failed || c.errors;
  kith_store_close(st);
  if (heap.live != ctx_bytes)
    fprintf(stderr, "store: %s: %zu bytes of kith's heap not freed\n", c.label,
            heap.live - ctx_bytes);
  kith_ctx_free(ctx);
  return bad;
}

/* ---- main ---------------------------------------------------------------- */

static size_t num_arg(int argc, char **argv, int *i)
{
  char *end;
  unsigned long long v;

  if (*i + 1 >= argc) {
    fprintf(stderr, "store: %s needs a number\n", argv[*i]);
    exit(2);
  }
  v = strtoull(argv[++*i], &end, 10);
  if (*end != '\0' || v == 0) {
    fprintf(stderr, "store: %s %s: expected a positive number\n", argv[*i - 1],
            argv[*i]);
    exit(2);
  }
  return (size_t)v;
}

static void parse_opts(int argc, char **argv, opts_t *o)
{
  int i;

  o->items = 100000;
  o->jids = 1000000;
  o->active = 10000;
  o->cold = 50000;
  o->limit_mib = 16;
  o->redis_port = 0;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--items") == 0)
      o->items = num_arg(argc, argv, &i);
    else if (strcmp(argv[i], "--jids") == 0)
      o->jids = num_arg(argc, argv, &i);
    else if (strcmp(argv[i], "--active") == 0)
      o->active = num_arg(argc, argv, &i);
    else if (strcmp(argv[i], "--cold") == 0)
      o->cold = num_arg(argc, argv, &i);
    else if (strcmp(argv[i], "--limit") == 0)
      o->limit_mib = num_arg(argc, argv, &i);
    else if (strcmp(argv[i], "--redis-port") == 0)
      o->redis_port = (int)num_arg(argc, argv, &i);
    else {
      fprintf(stderr,
              "usage: store [--items N] [--jids N] [--active N] [--cold N] "
              "[--limit MIB] [--redis-port P]\n");
      exit(2);
    }
  }
  if (o->active > o->jids)
    o->active = o->jids;
}

int main(int argc, char **argv)
{
  char self[4096], redis_uri[128];
  const char *ruri = NULL;
  ssize_t len;
  opts_t o;
  int port, bad;
  double t0 = now_s();

  if (argc == 8 && strcmp(argv[1], "--child") == 0)
    return child_main(argv + 2);
  parse_opts(argc, argv, &o);
  if ((len = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0) {
    perror("store: /proc/self/exe");
    return 1;
  }
  self[len] = '\0';
  setup_tmp();
  printf("bench/store: roster stores (temporary directory %s)\n", tmpdir);
  port = o.redis_port ? o.redis_port : free_port();
  snprintf(redis_uri, sizeof(redis_uri),
           "redis://127.0.0.1:%d/0?prefix=" REDIS_PREFIX, port);
  if (o.redis_port || start_redis(port, redis_uri)) {
    printf("redis: %s server on 127.0.0.1:%d, key prefix %s\n",
           o.redis_port ? "the given" : "a private", port, REDIS_PREFIX);
    ruri = redis_uri;
    wipe(ruri);
  }
  part1(&o, ruri);
  bad = part2(self, &o, ruri, ruri ? port : 0);
  if (ruri)
    wipe(ruri);
  cleanup();
  printf("[total: %.1f s]\n", now_s() - t0);
  return bad;
}

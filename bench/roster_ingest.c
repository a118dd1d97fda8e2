/*
 * bench/roster_ingest: how fast a roster result goes from bytes to items.
 *
 * For 1,000 / 10,000 / 100,000 / 1,000,000 items (names, 0-3 groups), build
 * one roster result, feed it in 4 KiB chunks through the real stream parser
 * in item-streaming mode (default 256 KiB stanza limit) and the roster
 * sync's per-item step (kith__sync_fetch_item: wire item read + model
 * upsert, the code a client fetch runs), then finish the fetch with the
 * shell; in memory, and time expat alone parsing the same bytes in the
 * same chunks. The timed run uses the default allocator; the roster's heap
 * is counted in a second, untimed run. Each size runs in its own child
 * process so that peak RSS means something (it is read after the timed
 * run, before the counted and the extra whole-tree runs).
 *
 * Prints: items, bytes, kith ns/item, kith MB/s, expat ns/item, the ratio
 * kith/expat, roster heap per item (all of it, and beyond the item's own
 * strings), peak RSS, and for comparison ns/item of the old path (the
 * result built as one tree under a raised limit, then walked).
 *
 *   roster_ingest [MAX_ITEMS]
 */
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kith_config.h"
#include "core/buf.h"
#include "kith/roster.h"
#include "roster/model.h"
#include "roster/sync.h"
#include "roster/wire.h"
#include "xml/parser.h"

#define CHUNK 4096
#define NGROUPS 20

static const char *const subs[] = {"both", "to", "from", "none"};

/* ---- A counting allocator for the roster's heap ------------------------ */

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

/* A real realloc(), as the default allocator does: copying every block
 * that grows would charge the roster's growing arrays (8 MB of item
 * pointers at a million items) a copy that kith does not make. */
static void *c_realloc(void *p, size_t n, void *ud)
{
  counter_t *c = ud;
  hdr_t *h;
  size_t old;

  if (p == NULL)
    return c_malloc(n, ud);
  h = (hdr_t *)p - 1;
  old = h->size;
  h = realloc(h, sizeof(*h) + n);
  if (h == NULL)
    return NULL;
  h->size = n;
  c->live = c->live - old + n;
  if (c->live > c->peak)
    c->peak = c->live;
  return h + 1;
}

/* ---- The input --------------------------------------------------------- */

static double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The stream header, then one roster result of n items, then the close.
 * *strings gets the bytes of the items' own strings (jid and name, each
 * with its NUL); group names are counted once, as the model interns them. */
static char *make_input(size_t n, size_t *len, size_t *strings)
{
  kith__buf_t b;
  size_t i, g;

  kith__buf_init(&b, NULL, (size_t)1 << 31);
  kith__buf_adds(&b, "<?xml version='1.0'?><stream:stream "
                     "xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' "
                     "from='example.com' id='s' version='1.0'>");
  kith__buf_adds(&b, "<iq type='result' id='r1' to='me@example.com/r'>"
                     "<query xmlns='jabber:iq:roster' ver='v1'>");
  *strings = 0;
  for (i = 0; i < n; i++) {
    char jid[64], name[64];
    snprintf(jid, sizeof(jid), "contact%07zu@example.com", i);
    snprintf(name, sizeof(name), "Contact %zu", i);
    *strings += strlen(jid) + 1 + strlen(name) + 1;
    kith__buf_printf(&b, "<item jid='%s' name='%s' subscription='%s'>", jid,
                     name, subs[i % 4]);
    for (g = 0; g < i % 4; g++)
      kith__buf_printf(&b, "<group>Group %zu</group>", (i + g * 7) % NGROUPS);
    kith__buf_adds(&b, "</item>");
  }
  for (g = 0; g < NGROUPS; g++)
    *strings += strlen("Group 00") + 1;
  kith__buf_adds(&b, "</query></iq></stream:stream>");
  return kith__buf_take(&b, len);
}

/* ---- expat alone ------------------------------------------------------- */

static void XMLCALL x_start(void *ud, const XML_Char *n, const XML_Char **a)
{
  (void)n;
  (void)a;
  ++*(size_t *)ud;
}

static void XMLCALL x_end(void *ud, const XML_Char *n)
{
  (void)ud;
  (void)n;
}

static void XMLCALL x_text(void *ud, const XML_Char *s, int len)
{
  (void)ud;
  (void)s;
  (void)len;
}

static double time_expat(const char *in, size_t len)
{
  XML_Parser p = XML_ParserCreateNS(NULL, '\x01');
  size_t off, elements = 0;
  double t0;

  XML_SetUserData(p, &elements);
  XML_SetElementHandler(p, x_start, x_end);
  XML_SetCharacterDataHandler(p, x_text);
  /* As kith's parser runs it (kith_config.h tells whether expat has it). */
#ifdef KITH_HAVE_XML_SETREPARSEDEFERRALENABLED
  XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
  t0 = now_s();
  for (off = 0; off < len; off += CHUNK) {
    size_t n = len - off < CHUNK ? len - off : CHUNK;
    if (XML_Parse(p, in + off, (int)n, 0) != XML_STATUS_OK) {
      fprintf(stderr, "expat: %s\n", XML_ErrorString(XML_GetErrorCode(p)));
      exit(1);
    }
  }
  t0 = now_s() - t0;
  XML_ParserFree(p);
  return t0;
}

/* ---- kith: streamed (the real path) ------------------------------------ */

typedef struct run {
  kith__sync_req_t *req;
  kith_roster_node_t *node;
  size_t items, stanzas;
  kith_status_t rc;
} run_t;

static void on_item(void *ud, const kith_stanza_t *shell,
                    const kith_stanza_t *item)
{
  kith__sync_fetch_item(((run_t *)ud)->req, shell, item);
}

static void on_shell(void *ud, kith_stanza_t *st)
{
  run_t *r = ud;

  r->stanzas++;
  r->rc = kith__sync_fetch_finish(r->req, st);
  kith_stanza_free(st);
}

static void feed_all(kith__parser_t *p, const char *in, size_t len)
{
  size_t off;

  for (off = 0; off < len; off += CHUNK) {
    size_t k = len - off < CHUNK ? len - off : CHUNK;
    if (kith__parser_feed(p, in + off, k) != KITH_OK) {
      fprintf(stderr, "parser: %s\n", kith__parser_error_text(p));
      exit(1);
    }
  }
}

/* ---- kith: the old whole-tree path, for comparison ----------------------- */

static kith_status_t put_item(void *ud, const kith__wire_item_view_t *it)
{
  run_t *r = ud;
  kith_roster_item_t *item = NULL;
  int changed = 0;
  kith_status_t rc = kith__roster_item_upsert_norm(
      r->node, it->jid, it->name, it->groups, it->ngroups, &item, &changed);
  unsigned flags = 0;

  if (rc != KITH_OK)
    return rc;
  if (it->subscription == KITH_SUB_FROM || it->subscription == KITH_SUB_BOTH)
    flags |= KITH_ROSTER_FROM;
  if (it->subscription == KITH_SUB_TO || it->subscription == KITH_SUB_BOTH)
    flags |= KITH_ROSTER_TO;
  kith__roster_item_set_flags(item, flags);
  r->items++;
  return KITH_OK;
}

static void on_tree(void *ud, kith_stanza_t *st)
{
  run_t *r = ud;
  kith__wire_roster_info_t info;

  r->rc = kith__wire_roster_foreach(NULL, st, put_item, r, &info);
  if (r->rc == KITH_OK && info.ver)
    r->rc = kith__roster_node_set_version(r->node, info.ver);
  kith_stanza_free(st);
}

static double time_tree(const char *in, size_t len, size_t n)
{
  kith_roster_t *roster = NULL;
  kith__parser_t *p = NULL;
  kith__parser_cbs_t cbs = {NULL, on_tree, NULL};
  run_t r = {NULL, NULL, 0, 0, KITH_OK};
  double t0;

  kith_roster_new(NULL, &roster);
  kith__roster_set_max_items(roster, n + 1);
  kith_roster_add_node(roster, "me@example.com", &r.node);
  kith__parser_new(NULL, &cbs, &r, &p);
  kith__parser_set_limits(p, len, 0); /* the whole result is one tree */
  t0 = now_s();
  feed_all(p, in, len);
  t0 = now_s() - t0;
  if (r.rc != KITH_OK || r.items != n) {
    fprintf(stderr, "tree ingest failed\n");
    exit(1);
  }
  kith__parser_free(p);
  kith_roster_free(roster);
  return t0;
}

/*
 * One streamed ingest of the input into a fresh roster, the way a client
 * fetch runs it; returns the seconds it took. The roster's context uses
 * `alloc` (NULL: the default allocator); with a counter, *heap gets the
 * bytes the roster holds at the end.
 */
static double ingest(const char *in, size_t len, size_t n,
                     const kith_allocator_t *alloc, size_t *heap)
{
  kith_ctx_t *rctx = NULL;
  kith_roster_t *roster = NULL;
  kith__parser_t *p = NULL;
  kith__parser_cbs_t cbs = {NULL, on_shell, NULL};
  run_t r = {NULL, NULL, 0, 0, KITH_OK};
  double t;

  if (alloc)
    kith_ctx_new(alloc, &rctx);
  kith_roster_new(rctx, &roster);
  kith__roster_set_self(roster, "me@example.com");
  r.node = kith_roster_self(roster);
  r.req = kith__sync_fetch_new(roster);
  kith__parser_new(NULL, &cbs, &r, &p);
  /* The default 256 KiB stanza limit stays: items stream out. */
  kith__parser_set_item_stream(p, "jabber:iq:roster", on_item, &r);
  t = now_s();
  feed_all(p, in, len);
  t = now_s() - t;
  if (r.rc != KITH_OK || r.stanzas != 1 || kith_roster_node_size(r.node) != n) {
    fprintf(stderr, "ingest failed: %s, %zu of %zu items\n",
            kith_strerror(r.rc), kith_roster_node_size(r.node), n);
    exit(1);
  }
  kith__sync_fetch_free(r.req);
  kith__parser_free(p);
  if (heap)
    *heap = ((counter_t *)alloc->ud)->live;
  kith_roster_free(roster);
  kith_ctx_free(rctx);
  return t;
}

static void one_size(size_t n, int tree)
{
  size_t len = 0, strings = 0, heap = 0;
  char *in = make_input(n, &len, &strings);
  counter_t c = {0, 0};
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &c};
  double t_kith, t_expat, t_tree = 0;
  struct rusage ru;

  t_expat = time_expat(in, len);
  /* Timed with the default allocator, as an application runs it; then
   * again, untimed, through the counting allocator for the heap figures
   * (its header on every block and its bookkeeping are not kith's). */
  t_kith = ingest(in, len, n, NULL, NULL);
  getrusage(RUSAGE_SELF, &ru);
  ingest(in, len, n, &a, &heap);
  if (tree)
    t_tree = time_tree(in, len, n);
  printf("%9zu %8.1f MB %8.0f %8.1f %8.0f %6.2fx %8.1f %8.1f %8.1f MB", n,
         (double)len / 1e6, t_kith * 1e9 / (double)n,
         (double)len / 1e6 / t_kith, t_expat * 1e9 / (double)n,
         t_kith / t_expat, (double)heap / (double)n,
         (double)(heap - strings) / (double)n, (double)ru.ru_maxrss / 1024.0);
  if (tree)
    printf(" %8.0f\n", t_tree * 1e9 / (double)n);
  else
    printf(" %8s\n", "-");
  free(in);
}

int main(int argc, char **argv)
{
  size_t max = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
  int tree = argc > 2 ? atoi(argv[2]) : 1;
  size_t n;

  printf("roster_ingest: one roster result fed in %d-byte chunks through "
         "kith's stream parser\n(items streamed, 256 KiB stanza limit) and "
         "the roster fetch's per-item step,\nagainst expat alone on the same "
         "bytes. 'tree': the old whole-tree path.\n"
         "Usage: roster_ingest [MAX_ITEMS [TREE(0|1)]]\n\n",
         CHUNK);
  printf("%9s %11s %8s %8s %8s %7s %8s %8s %11s %8s\n", "items", "input",
         "kith", "kith", "expat", "kith/", "heap/", "beyond", "peak", "tree");
  printf("%9s %11s %8s %8s %8s %7s %8s %8s %11s %8s\n", "", "", "ns/item",
         "MB/s", "ns/item", "expat", "item B", "strs B", "RSS", "ns/item");
  fflush(stdout);
  for (n = 1000; n <= max; n *= 10) {
    pid_t pid = fork();
    int st;
    if (pid == 0) {
      one_size(n, tree);
      fflush(stdout);
      _exit(0);
    }
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      return 1;
  }
  return 0;
}

/*
 * Unit tests: the XMPP stream parser (src/xml/parser.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kith/stanza.h"
#include "core/buf.h"
#include "core/ctx.h"
#include "xml/parser.h"

/* ------------------------------------------------------------------ */
/* An allocator that counts live blocks and bytes, and can fail.       */

struct counting {
  long allocs, live, fail_at;
  int failed;
  size_t bytes, peak;
};

typedef union hdr {
  size_t size;
  max_align_t align;
} hdr_t;

static void *c_malloc(size_t n, void *ud)
{
  struct counting *c = ud;
  hdr_t *h;

  if (++c->allocs == c->fail_at) {
    c->failed = 1;
    return NULL;
  }
  h = malloc(sizeof(*h) + n);
  if (h == NULL)
    return NULL;
  h->size = n;
  c->live++;
  c->bytes += n;
  if (c->bytes > c->peak)
    c->peak = c->bytes;
  return h + 1;
}

static void *c_realloc(void *p, size_t n, void *ud)
{
  struct counting *c = ud;
  hdr_t *h, *nh;

  if (p == NULL)
    return c_malloc(n, ud);
  if (++c->allocs == c->fail_at) {
    c->failed = 1;
    return NULL;
  }
  h = (hdr_t *)p - 1;
  c->bytes -= h->size;
  nh = realloc(h, sizeof(*h) + n);
  if (nh == NULL) {
    c->bytes += h->size;
    return NULL;
  }
  nh->size = n;
  c->bytes += n;
  if (c->bytes > c->peak)
    c->peak = c->bytes;
  return nh + 1;
}

static void c_free(void *p, void *ud)
{
  struct counting *c = ud;
  hdr_t *h;

  if (p == NULL)
    return;
  h = (hdr_t *)p - 1;
  c->bytes -= h->size;
  c->live--;
  free(h);
}

/* ------------------------------------------------------------------ */
/* A recorder for the parser's callbacks.                              */

#define MAX_EVENTS 64

struct rec {
  kith__parser_t *p;
  kith__buf_t log;
  size_t offset; /* bytes fed before the current call */
  size_t at[MAX_EVENTS];
  int nev;
  int starts, stanzas, ends;
  const char *reset_on; /* kith__parser_reset() when this stanza arrives */
  const char *stop_on;  /* kith__parser_stop() when this one arrives */
  int stop_on_start;
  kith_status_t nested; /* result of a feed from inside a callback */
};

static void note(struct rec *r)
{
  if (r->nev < MAX_EVENTS)
    r->at[r->nev] = r->offset;
  r->nev++;
}

static void on_start(void *ud, const kith_stanza_t *root)
{
  struct rec *r = ud;
  char *s;

  r->starts++;
  note(r);
  assert_null(kith_stanza_first_child(root));
  if (kith_stanza_to_string(root, NULL, &s, NULL) != KITH_OK)
    s = NULL;
  kith__buf_printf(&r->log, "S %s\n", s ? s : "(nomem)");
  kith_free(kith_stanza_ctx(root), s);
  if (r->stop_on_start)
    kith__parser_stop(r->p);
}

static void on_stanza(void *ud, kith_stanza_t *st)
{
  struct rec *r = ud;
  size_t n;
  char *s;

  r->stanzas++;
  note(r);
  if (kith_stanza_to_string(st, KITH_NS_CLIENT, &s, NULL) != KITH_OK)
    s = NULL;
  kith__buf_printf(&r->log, "T %s\n", s ? s : "(nomem)");
  kith_free(kith_stanza_ctx(st), s);
  if (kith__parser_streamed(r->p, &n))
    kith__buf_printf(&r->log, "N %zu\n", n);
  r->nested = kith__parser_feed(r->p, "<x/>", 4);
  if (r->reset_on && strcmp(kith_stanza_name(st), r->reset_on) == 0)
    assert_int_equal(kith__parser_reset(r->p), KITH_OK);
  if (r->stop_on && strcmp(kith_stanza_name(st), r->stop_on) == 0)
    kith__parser_stop(r->p);
  kith_stanza_free(st);
}

static void on_end(void *ud)
{
  struct rec *r = ud;

  r->ends++;
  note(r);
  kith__buf_adds(&r->log, "E\n");
}

static const kith__parser_cbs_t cbs = {on_start, on_stanza, on_end};

/* Callbacks that allocate nothing, for the failing-allocator runs. */
static void count_stanza(void *ud, kith_stanza_t *st)
{
  ((struct rec *)ud)->stanzas++;
  kith_stanza_free(st);
}

static const kith__parser_cbs_t count_cbs = {NULL, count_stanza, NULL};

static void rec_init(struct rec *r, kith_ctx_t *ctx)
{
  memset(r, 0, sizeof(*r));
  kith__buf_init(&r->log, NULL, 1 << 20);
  assert_int_equal(kith__parser_new(ctx, &cbs, r, &r->p), KITH_OK);
}

static void rec_free(struct rec *r)
{
  kith__parser_free(r->p);
  kith__buf_free(&r->log);
}

static kith_status_t feed(struct rec *r, const char *s, size_t len)
{
  kith_status_t rc = kith__parser_feed(r->p, s, len);

  r->offset += len;
  return rc;
}

static kith_status_t feed_bytewise(struct rec *r, const char *s, size_t len)
{
  kith_status_t rc = KITH_OK;
  size_t i;

  for (i = 0; i < len && rc == KITH_OK; i++)
    rc = feed(r, s + i, 1);
  return rc;
}

static kith_status_t feed_str(struct rec *r, const char *s)
{
  return feed(r, s, strlen(s));
}

static char *read_file(const char *name, size_t *len)
{
  char path[512];
  FILE *f;
  char *data;
  long n;

  snprintf(path, sizeof(path), "%s/xml/%s", KITH_TEST_DATA_DIR, name);
  f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n > 0);
  rewind(f);
  data = malloc((size_t)n + 1);
  assert_non_null(data);
  assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
  data[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return data;
}

/* ------------------------------------------------------------------ */
/* A stream in pieces: the header, stanzas, the footer.                */

#define HEADER                                                                 \
  "<stream:stream xmlns='jabber:client' "                                      \
  "xmlns:stream='http://etherx.jabber.org/streams' from='example.com' "        \
  "id='s1' version='1.0' xml:lang='en'>"

static const char *const pieces[] = {
    "<?xml version='1.0' encoding='UTF-8'?>\n" HEADER,
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
    "</stream:features>",
    "\n  ",
    "<message from='a@b' to='c@d' type='chat'><body>Hi &amp; bye "
    "<![CDATA[x>y]]> \xe2\x99\xa5</body></message>",
    " ",
    "<presence from='a@b/r'><show>dnd</show><nick "
    "xmlns='http://jabber.org/protocol/nick'>A</nick></presence>",
    "<iq type='result' id='r1'><query xmlns='jabber:iq:roster' ver='1'>"
    "<item jid='x@y' name=\"Q'uote>\" subscription='both'><group>G</group>"
    "</item></query></iq>",
    "<presence/>",
    "\n</stream:stream>",
};
/* Which pieces end with an event. */
static const int piece_event[] = {1, 1, 0, 1, 0, 1, 1, 1, 1};
#define NPIECES (sizeof(pieces) / sizeof(pieces[0]))

static char *whole_stream(size_t *len, size_t *ends, int *nends)
{
  kith__buf_t b;
  size_t i;
  char *s;

  kith__buf_init(&b, NULL, 1 << 16);
  *nends = 0;
  for (i = 0; i < NPIECES; i++) {
    assert_int_equal(kith__buf_adds(&b, pieces[i]), KITH_OK);
    if (piece_event[i])
      ends[(*nends)++] = b.len - 1;
  }
  s = kith__buf_take(&b, len);
  kith__buf_free(&b);
  return s;
}

static void test_stream_events(void **state)
{
  struct rec r;
  size_t len, ends[NPIECES];
  int nends;
  char *doc = whole_stream(&len, ends, &nends);

  (void)state;
  rec_init(&r, NULL);
  assert_int_equal(feed(&r, doc, len), KITH_OK);
  assert_null(kith__parser_error_condition(r.p));
  assert_null(kith__parser_error_text(r.p));
  assert_int_equal(r.starts, 1);
  assert_int_equal(r.stanzas, 5);
  assert_int_equal(r.ends, 1);
  assert_string_equal(
      r.log.data,
      "S <stream xmlns='http://etherx.jabber.org/streams' from='example.com'"
      " id='s1' version='1.0' xml:lang='en'/>\n"
      "T <features xmlns='http://etherx.jabber.org/streams'><bind "
      "xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></features>\n"
      "T <message from='a@b' to='c@d' type='chat'><body>Hi &amp; bye x&gt;y "
      "\xe2\x99\xa5</body></message>\n"
      "T <presence from='a@b/r'><show>dnd</show><nick "
      "xmlns='http://jabber.org/protocol/nick'>A</nick></presence>\n"
      "T <iq type='result' id='r1'><query xmlns='jabber:iq:roster' ver='1'>"
      "<item jid='x@y' name='Q&apos;uote&gt;' subscription='both'><group>G"
      "</group></item></query></iq>\n"
      "T <presence/>\n"
      "E\n");
  /* A feed from inside a callback is refused. */
  assert_int_equal(r.nested, KITH_ESTATE);
  rec_free(&r);
  free(doc);
}

static void test_every_split_point(void **state)
{
  struct rec whole, r;
  size_t len, i, ends[NPIECES];
  int nends;
  char *doc = whole_stream(&len, ends, &nends);

  (void)state;
  rec_init(&whole, NULL);
  assert_int_equal(feed(&whole, doc, len), KITH_OK);
  for (i = 0; i <= len; i++) {
    rec_init(&r, NULL);
    assert_int_equal(feed(&r, doc, i), KITH_OK);
    assert_int_equal(feed(&r, doc + i, len - i), KITH_OK);
    assert_string_equal(r.log.data, whole.log.data);
    rec_free(&r);
  }
  rec_free(&whole);
  free(doc);
}

static void test_delivery_moment(void **state)
{
  struct rec r;
  size_t len, ends[NPIECES];
  int nends, i;
  char *doc = whole_stream(&len, ends, &nends);

  (void)state;
  rec_init(&r, NULL);
  assert_int_equal(feed_bytewise(&r, doc, len), KITH_OK);
  /* Every event fires in the call that feeds its final '>', not later. */
  assert_int_equal(r.nev, nends);
  for (i = 0; i < nends; i++) {
    assert_int_equal(doc[ends[i]], '>');
    assert_int_equal(r.at[i], ends[i]);
  }
  rec_free(&r);
  free(doc);
}

/*
 * The lexer that decides what goes to expat at once must not be fooled by
 * '<' and '>' that are not markup: in CDATA, in quoted values of both
 * kinds, and '>' in text. At every split point each stanza still arrives
 * in the call that feeds its final '>', and the events are the same.
 */
static const char *const lookalikes[] = {
    "<message><body><![CDATA[<x a='>'> \"<\" ]] >]]>z &gt; y</body></message>",
    "<presence a='x>y&lt;' b=\"'>'\"/>",
    "<message><body>a > b</body><x c='>' d=\">\"/></message>",
    "<iq type='result' id='q'><query xmlns='jabber:iq:roster'><item "
    "jid='a@b' name='&lt;]]>&apos;&quot;'/></query></iq>",
    "<presence/>",
};

static void test_markup_lookalikes(void **state)
{
  kith__buf_t b;
  size_t ends[8], nends = 0, i, k, len;
  struct rec whole, r;

  (void)state;
  kith__buf_init(&b, NULL, 1 << 16);
  assert_int_equal(kith__buf_adds(&b, HEADER), KITH_OK);
  for (i = 0; i < sizeof(lookalikes) / sizeof(lookalikes[0]); i++) {
    assert_int_equal(kith__buf_adds(&b, lookalikes[i]), KITH_OK);
    ends[nends++] = b.len - 1;
    assert_int_equal(kith__buf_adds(&b, "\n "), KITH_OK);
  }
  len = b.len;
  rec_init(&whole, NULL);
  assert_int_equal(feed_bytewise(&whole, b.data, len), KITH_OK);
  /* The header, then each stanza at its last byte. */
  assert_int_equal(whole.nev, (int)nends + 1);
  for (i = 0; i < nends; i++)
    assert_int_equal(whole.at[i + 1], ends[i]);
  for (k = 0; k <= len; k++) {
    rec_init(&r, NULL);
    assert_int_equal(feed(&r, b.data, k), KITH_OK);
    assert_int_equal(feed(&r, b.data + k, len - k), KITH_OK);
    assert_string_equal(r.log.data, whole.log.data);
    for (i = 0; i < nends; i++)
      assert_int_equal(r.at[i + 1], ends[i] < k ? 0 : k);
    rec_free(&r);
  }
  rec_free(&whole);
  kith__buf_free(&b);
}

static void test_transcript(void **state)
{
  struct rec whole, r;
  size_t len, i, step;
  char *doc = read_file("server-transcript.xml", &len);

  (void)state;
  rec_init(&whole, NULL);
  assert_int_equal(feed(&whole, doc, len), KITH_OK);
  assert_int_equal(whole.starts, 1);
  assert_int_equal(whole.stanzas, 9);
  assert_int_equal(whole.ends, 1);
  assert_non_null(strstr(whole.log.data, "xmlns:ns3='urn:example:x' "
                                         "ns3:mood='happy'"));
  assert_non_null(strstr(whole.log.data, "<jid>juliet@im.example.com/balcony"));
  assert_non_null(strstr(whole.log.data, "Romeo \xe2\x99\xa5</nick>"));
  for (i = 0; i <= len; i++) {
    rec_init(&r, NULL);
    assert_int_equal(feed(&r, doc, i), KITH_OK);
    assert_int_equal(feed(&r, doc + i, len - i), KITH_OK);
    assert_string_equal(r.log.data, whole.log.data);
    rec_free(&r);
  }
  for (step = 1; step < 40; step += 3) {
    rec_init(&r, NULL);
    for (i = 0; i < len; i += step)
      assert_int_equal(feed(&r, doc + i, i + step > len ? len - i : step),
                       KITH_OK);
    assert_string_equal(r.log.data, whole.log.data);
    rec_free(&r);
  }
  rec_free(&whole);
  free(doc);
}

/* Stanzas delivered through a callback that keeps them. */
struct keep {
  kith_stanza_t *st[8];
  int n;
  const kith_stanza_t *root_seen;
  char root_ns[64], root_name[32], root_lang[8], root_to[32];
  size_t root_attrs;
};

static void keep_start(void *ud, const kith_stanza_t *root)
{
  struct keep *k = ud;

  snprintf(k->root_ns, sizeof(k->root_ns), "%s", kith_stanza_ns(root));
  snprintf(k->root_name, sizeof(k->root_name), "%s", kith_stanza_name(root));
  snprintf(k->root_lang, sizeof(k->root_lang), "%s",
           kith_stanza_attr(root, "xml:lang"));
  snprintf(k->root_to, sizeof(k->root_to), "%s", kith_stanza_to(root));
  k->root_attrs = kith_stanza_attr_count(root);
}

static void keep_stanza(void *ud, kith_stanza_t *st)
{
  struct keep *k = ud;

  assert_true(k->n < 8);
  k->st[k->n++] = st;
}

static void test_namespaces(void **state)
{
  static const kith__parser_cbs_t kcbs = {keep_start, keep_stanza, NULL};
  const char *doc =
      "<stream:stream xmlns='jabber:component:accept' "
      "xmlns:stream='http://etherx.jabber.org/streams' to='gw.example' "
      "xml:lang='de'>"
      "<message><x:foo xmlns:x='urn:x' x:a='1'><bar/><x:baz/></x:foo>"
      "</message>"
      "<stream:features/>"
      "<db:result xmlns:db='jabber:server:dialback'/>"
      "<iq xmlns='jabber:client'><q xmlns=''/></iq>";
  kith__parser_t *p;
  struct keep k;
  kith_stanza_t *foo;
  int i;

  (void)state;
  memset(&k, 0, sizeof(k));
  assert_int_equal(kith__parser_new(NULL, &kcbs, &k, &p), KITH_OK);
  assert_int_equal(kith__parser_feed(p, doc, strlen(doc)), KITH_OK);
  assert_string_equal(k.root_name, "stream");
  assert_string_equal(k.root_ns, KITH_NS_STREAMS);
  assert_string_equal(k.root_lang, "de");
  assert_string_equal(k.root_to, "gw.example");
  assert_int_equal(k.root_attrs, 2);
  assert_int_equal(k.n, 4);
  assert_string_equal(kith_stanza_ns(k.st[0]), KITH_NS_COMPONENT);
  foo = kith_stanza_first_child(k.st[0]);
  assert_string_equal(kith_stanza_name(foo), "foo");
  assert_string_equal(kith_stanza_ns(foo), "urn:x");
  assert_string_equal(kith_stanza_attr(foo, "urn:x|a"), "1");
  assert_string_equal(kith_stanza_ns(kith_stanza_first_child(foo)),
                      KITH_NS_COMPONENT);
  assert_string_equal(kith_stanza_ns(kith_stanza_child(foo, "baz", NULL)),
                      "urn:x");
  assert_string_equal(kith_stanza_name(k.st[1]), "features");
  assert_string_equal(kith_stanza_ns(k.st[1]), KITH_NS_STREAMS);
  assert_string_equal(kith_stanza_name(k.st[2]), "result");
  assert_string_equal(kith_stanza_ns(k.st[2]), "jabber:server:dialback");
  assert_string_equal(kith_stanza_ns(k.st[3]), KITH_NS_CLIENT);
  assert_string_equal(kith_stanza_ns(kith_stanza_first_child(k.st[3])), "");
  for (i = 0; i < k.n; i++)
    kith_stanza_free(k.st[i]);
  kith__parser_free(p);

  /* No default namespace at all: stanzas have none. */
  memset(&k, 0, sizeof(k));
  assert_int_equal(kith__parser_new(NULL, &kcbs, &k, &p), KITH_OK);
  doc = "<s:stream xmlns:s='http://etherx.jabber.org/streams'><a><b/></a>";
  assert_int_equal(kith__parser_feed(p, doc, strlen(doc)), KITH_OK);
  assert_int_equal(k.n, 1);
  assert_null(kith_stanza_ns(k.st[0]));
  assert_null(kith_stanza_ns(kith_stanza_first_child(k.st[0])));
  kith_stanza_free(k.st[0]);
  kith__parser_free(p);
}

/* ------------------------------------------------------------------ */
/* Limits                                                              */

/* A stanza of exactly `size` bytes: <message><body>xxx</body></message> */
static void make_stanza(kith__buf_t *b, size_t size)
{
  const char *head = "<message><body>", *tail = "</body></message>";
  size_t fill = size - strlen(head) - strlen(tail), i;

  assert_int_equal(kith__buf_adds(b, head), KITH_OK);
  for (i = 0; i < fill; i++)
    assert_int_equal(kith__buf_addc(b, (char)('a' + i % 26)), KITH_OK);
  assert_int_equal(kith__buf_adds(b, tail), KITH_OK);
}

static void check_size_limit(size_t max, size_t size, int bytewise,
                             kith_status_t want)
{
  struct rec r;
  kith__buf_t b;
  kith_status_t rc;

  kith__buf_init(&b, NULL, 4u << 20);
  rec_init(&r, NULL);
  if (max)
    kith__parser_set_limits(r.p, max, 0);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  /* Whitespace before the stanza does not count against it. */
  assert_int_equal(kith__buf_adds(&b, "\n    \n"), KITH_OK);
  make_stanza(&b, size);
  rc = bytewise ? feed_bytewise(&r, b.data, b.len) : feed(&r, b.data, b.len);
  assert_int_equal(rc, want);
  if (want == KITH_OK) {
    assert_int_equal(r.stanzas, 1);
  } else {
    assert_int_equal(r.stanzas, 0);
    assert_string_equal(kith__parser_error_condition(r.p), "policy-violation");
    assert_non_null(strstr(kith__parser_error_text(r.p), "stanza exceeds"));
  }
  rec_free(&r);
  kith__buf_free(&b);
}

static void test_stanza_size_limit(void **state)
{
  (void)state;
  check_size_limit(1000, 1000, 0, KITH_OK);
  check_size_limit(1000, 1000, 1, KITH_OK);
  check_size_limit(1000, 1001, 0, KITH_ELIMIT);
  check_size_limit(1000, 1001, 1, KITH_ELIMIT);
  check_size_limit(0, KITH_PARSER_DEFAULT_MAX_STANZA, 0, KITH_OK);
  check_size_limit(0, KITH_PARSER_DEFAULT_MAX_STANZA + 1, 0, KITH_ELIMIT);
  check_size_limit(0, KITH_PARSER_DEFAULT_MAX_STANZA + 100000, 0, KITH_ELIMIT);
}

static void test_empty_stanza_size_limit(void **state)
{
  struct rec r;
  kith__buf_t b;
  size_t i;

  (void)state;
  /* A stanza that is one start tag: <presence a='xxx'/> of 500 bytes. */
  kith__buf_init(&b, NULL, 1 << 16);
  assert_int_equal(kith__buf_adds(&b, "<presence a='"), KITH_OK);
  for (i = b.len; i < 500 - 3; i++)
    assert_int_equal(kith__buf_addc(&b, 'v'), KITH_OK);
  assert_int_equal(kith__buf_adds(&b, "'/>"), KITH_OK);
  assert_int_equal(b.len, 500);
  rec_init(&r, NULL);
  kith__parser_set_limits(r.p, 500, 0);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  assert_int_equal(feed_bytewise(&r, b.data, b.len), KITH_OK);
  assert_int_equal(r.stanzas, 1);
  kith__parser_set_limits(r.p, 499, 0);
  assert_int_equal(feed(&r, b.data, b.len), KITH_ELIMIT);
  assert_int_equal(r.stanzas, 1);
  rec_free(&r);
  kith__buf_free(&b);
}

static void test_keepalives_do_not_count(void **state)
{
  struct rec r;
  char spaces[700];
  int i;

  (void)state;
  memset(spaces, ' ', sizeof(spaces));
  rec_init(&r, NULL);
  kith__parser_set_limits(r.p, 600, 0);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  for (i = 0; i < 20; i++) {
    assert_int_equal(feed(&r, spaces, sizeof(spaces)), KITH_OK);
    assert_int_equal(feed_str(&r, "<presence/>"), KITH_OK);
    assert_int_equal(feed_bytewise(&r, spaces, 123), KITH_OK);
  }
  assert_int_equal(r.stanzas, 20);
  rec_free(&r);
}

static void nest(kith__buf_t *b, int depth)
{
  int i;

  for (i = 0; i < depth; i++)
    assert_int_equal(kith__buf_adds(b, "<a>"), KITH_OK);
  for (i = 0; i < depth; i++)
    assert_int_equal(kith__buf_adds(b, "</a>"), KITH_OK);
}

static void check_depth(unsigned max, int depth, kith_status_t want)
{
  struct rec r;
  kith__buf_t b;

  kith__buf_init(&b, NULL, 1 << 16);
  nest(&b, depth);
  rec_init(&r, NULL);
  kith__parser_set_limits(r.p, 0, max);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  assert_int_equal(feed(&r, b.data, b.len), want);
  if (want != KITH_OK) {
    assert_string_equal(kith__parser_error_condition(r.p), "policy-violation");
    assert_int_equal(r.stanzas, 0);
  } else {
    assert_int_equal(r.stanzas, 1);
  }
  rec_free(&r);
  kith__buf_free(&b);
}

static void test_depth_limit(void **state)
{
  (void)state;
  /* The stream root is depth 0 and a stanza depth 1. */
  check_depth(0, 32, KITH_OK);
  check_depth(0, 33, KITH_ELIMIT);
  check_depth(4, 4, KITH_OK);
  check_depth(4, 5, KITH_ELIMIT);
  check_depth(100, 100, KITH_OK);
}

static void test_huge_text_stopped_early(void **state)
{
  struct counting c;
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &c};
  kith_ctx_t *ctx;
  struct rec r;
  char chunk[4096];
  size_t fed = 0, max = 64 * 1024;
  kith_status_t rc;

  (void)state;
  memset(&c, 0, sizeof(c));
  memset(chunk, 'x', sizeof(chunk));
  assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
  rec_init(&r, ctx);
  kith__parser_set_limits(r.p, max, 0);
  assert_int_equal(feed_str(&r, HEADER "<message><body>"), KITH_OK);
  do {
    rc = feed(&r, chunk, sizeof(chunk));
    fed += sizeof(chunk);
  } while (rc == KITH_OK && fed < (10u << 20));
  assert_int_equal(rc, KITH_ELIMIT);
  assert_string_equal(kith__parser_error_condition(r.p), "policy-violation");
  /* Stopped within a chunk of the limit, with memory to match. */
  assert_true(fed <= max + sizeof(chunk));
  if (c.peak > 3 * max + 64 * 1024)
    fail_msg("peak %zu bytes for a %zu-byte limit", c.peak, max);
  rec_free(&r);
  kith_ctx_free(ctx);
  assert_int_equal(c.live, 0);
}

static void test_huge_start_tag_stopped_early(void **state)
{
  struct counting c;
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &c};
  kith_ctx_t *ctx;
  struct rec r;
  char chunk[1000];
  size_t fed = 0, max = 64 * 1024;
  kith_status_t rc;

  (void)state;
  memset(&c, 0, sizeof(c));
  memset(chunk, 'y', sizeof(chunk));
  assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
  rec_init(&r, ctx);
  kith__parser_set_limits(r.p, max, 0);
  assert_int_equal(feed_str(&r, HEADER "<message a='"), KITH_OK);
  do {
    rc = feed(&r, chunk, sizeof(chunk));
    fed += sizeof(chunk);
  } while (rc == KITH_OK && fed < (10u << 20));
  assert_int_equal(rc, KITH_ELIMIT);
  /* An unfinished start tag is allowed a few KiB of slack, no more. */
  assert_true(fed <= max + 4096 + sizeof(chunk));
  if (c.peak > 3 * max + 64 * 1024)
    fail_msg("peak %zu bytes for a %zu-byte limit", c.peak, max);
  rec_free(&r);
  kith_ctx_free(ctx);
  assert_int_equal(c.live, 0);
}

static void test_trickled_start_tag(void **state)
{
  struct rec r;
  kith__buf_t b;
  size_t i;

  (void)state;
  /* A 200 KB start tag fed a byte at a time: delivered at its last byte,
   * without expat rescanning the tag on every call. */
  kith__buf_init(&b, NULL, 1 << 20);
  assert_int_equal(kith__buf_adds(&b, "<message a='"), KITH_OK);
  for (i = 0; i < 200000; i++)
    assert_int_equal(kith__buf_addc(&b, i % 100 ? 'z' : '>'), KITH_OK);
  assert_int_equal(kith__buf_adds(&b, "'/>"), KITH_OK);
  rec_init(&r, NULL);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  assert_int_equal(feed_bytewise(&r, b.data, b.len), KITH_OK);
  assert_int_equal(r.stanzas, 1);
  assert_int_equal(r.at[1], r.offset - 1);
  rec_free(&r);
  kith__buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Forbidden XML                                                       */

static const struct {
  const char *prolog; /* NULL: the usual header */
  const char *body;   /* after the header and one good stanza */
  kith_status_t status;
  const char *cond;
} bad_cases[] = {
    {"<!DOCTYPE stream>", NULL, KITH_EXML, "restricted-xml"},
    {"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY a 'b'>]>", NULL, KITH_EXML,
     "restricted-xml"},
    {"<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 "
     "'&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>",
     NULL, KITH_EXML, "restricted-xml"},
    {"<?xml version='1.1'?>", NULL, KITH_EXML, "restricted-xml"},
    {"<?xml version='2.0'?>", NULL, KITH_EXML, "not-well-formed"},
    {"<?xml version='1.0' encoding='UTF-16'?>", NULL, KITH_EXML,
     "unsupported-encoding"},
    {"<?xml version='1.0' encoding='ISO-8859-1'?>", NULL, KITH_EXML,
     "unsupported-encoding"},
    {"\xff\xfe<\0?\0x\0m\0l\0", NULL, KITH_EXML, "unsupported-encoding"},
    {"<!-- hello -->", NULL, KITH_EXML, "restricted-xml"},
    {"<?php echo 1; ?>", NULL, KITH_EXML, "restricted-xml"},
    {NULL, "<!-- between stanzas -->", KITH_EXML, "restricted-xml"},
    {NULL, "<message><!-- inside --></message>", KITH_EXML, "restricted-xml"},
    {NULL, "<message><?pi data?></message>", KITH_EXML, "restricted-xml"},
    {NULL, "<?xml version='1.0'?>", KITH_EXML, "not-well-formed"},
    {NULL, "<message>&ent;</message>", KITH_EXML, "restricted-xml"},
    {NULL, "<message>\xc3\x28</message>", KITH_EXML, "unsupported-encoding"},
    {NULL, "<message>\xff</message>", KITH_EXML, "unsupported-encoding"},
    {NULL, "<message>\xc0\xaf</message>", KITH_EXML, "unsupported-encoding"},
    {NULL, "<message>\xed\xa0\x80</message>", KITH_EXML,
     "unsupported-encoding"},
    {NULL, "<message>\xf4\x90\x80\x80</message>", KITH_EXML,
     "unsupported-encoding"},
    {NULL, "<message a='\x80'/>", KITH_EXML, "unsupported-encoding"},
    {NULL, "<message>\x01</message>", KITH_EXML, "not-well-formed"},
    {NULL, "<message></presence>", KITH_EXML, "not-well-formed"},
    {NULL, "<message><body></message>", KITH_EXML, "not-well-formed"},
    {NULL, "<p:message/>", KITH_EXML, "not-well-formed"},
    {NULL, "<message a='1' a='2'/>", KITH_EXML, "not-well-formed"},
    {NULL, "</stream:stream><again/>", KITH_EXML, "not-well-formed"},
    {NULL, "<message>&#0;</message>", KITH_EXML, "not-well-formed"},
    {NULL, "<message a=b/>", KITH_EXML, "not-well-formed"},
    /* The first error in the stream wins, even when bytes before a UTF-8
     * error were still held back from expat (found by fuzz_parser). */
    {NULL, "<message a='1'b='2' \xff/>", KITH_EXML, "not-well-formed"},
};

static void test_forbidden_xml(void **state)
{
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
    struct rec r;
    kith__buf_t doc;
    kith_status_t rc;
    int pass;

    kith__buf_init(&doc, NULL, 1 << 16);
    if (bad_cases[i].prolog) {
      const char *pl = bad_cases[i].prolog;
      /* The UTF-16 case holds NULs. */
      size_t n = pl[0] == '\xff' ? 12 : strlen(pl);

      assert_int_equal(kith__buf_add(&doc, pl, n), KITH_OK);
      assert_int_equal(kith__buf_adds(&doc, HEADER "<presence/>"), KITH_OK);
    } else {
      assert_int_equal(kith__buf_adds(&doc, HEADER "<presence/>"), KITH_OK);
      assert_int_equal(kith__buf_adds(&doc, bad_cases[i].body), KITH_OK);
    }
    for (pass = 0; pass < 2; pass++) {
      rec_init(&r, NULL);
      rc = pass ? feed_bytewise(&r, doc.data, doc.len)
                : feed(&r, doc.data, doc.len);
      if (rc != bad_cases[i].status || !kith__parser_error_condition(r.p) ||
          strcmp(kith__parser_error_condition(r.p), bad_cases[i].cond) != 0)
        fail_msg(
            "case %zu pass %d: got %s / %s (%s)", i, pass, kith_status_name(rc),
            kith__parser_error_condition(r.p)
                ? kith__parser_error_condition(r.p)
                : "-",
            kith__parser_error_text(r.p) ? kith__parser_error_text(r.p) : "-");
      /* The good stanza before the bad bytes was delivered. */
      assert_int_equal(r.stanzas, bad_cases[i].prolog ? 0 : 1);
      assert_non_null(kith__parser_error_text(r.p));
      rec_free(&r);
    }
    kith__buf_free(&doc);
  }
}

/* The UTF-8 check reads ASCII eight bytes at a time: a bad byte, and a
 * good sequence, at every offset around those words, fed whole and a
 * byte at a time. */
static void test_utf8_at_every_offset(void **state)
{
  static const char *const good[] = {"\xc3\xa9", "\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80", "\xef\xbf\xbd"};
  static const char *const bad[] = {"\xff",         "\x80",
                                    "\xc3\x28",     "\xc0\xaf",
                                    "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                    "\xc3"};
  size_t k, i;
  int pass;

  (void)state;
  for (k = 0; k < 40; k++) {
    for (i = 0; i < sizeof(good) / sizeof(good[0]) + 7; i++) {
      int ok = i < sizeof(good) / sizeof(good[0]);
      const char *seq = ok ? good[i] : bad[i - 4];
      char body[128];
      kith_status_t rc;

      snprintf(body, sizeof(body), "<message>%.*s%s%.*s</message>", (int)k,
               "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz", seq,
               (int)(39 - k), "0123456789012345678901234567890123456789");
      for (pass = 0; pass < 2; pass++) {
        struct rec r;

        rec_init(&r, NULL);
        assert_int_equal(feed_str(&r, HEADER), KITH_OK);
        rc = pass ? feed_bytewise(&r, body, strlen(body)) : feed_str(&r, body);
        if (ok) {
          assert_int_equal(rc, KITH_OK);
          assert_int_equal(r.stanzas, 1);
          assert_non_null(strstr(r.log.data, seq));
        } else {
          assert_int_equal(rc, KITH_EXML);
          assert_string_equal(kith__parser_error_condition(r.p),
                              "unsupported-encoding");
          assert_int_equal(r.stanzas, 0);
        }
        rec_free(&r);
      }
    }
  }
}

static void test_errors_are_sticky(void **state)
{
  struct rec r;
  const char *text;

  (void)state;
  rec_init(&r, NULL);
  assert_int_equal(feed_str(&r, HEADER "<presence/><!--x-->"), KITH_EXML);
  assert_string_equal(kith__parser_error_condition(r.p), "restricted-xml");
  text = kith__parser_error_text(r.p);
  assert_int_equal(r.stanzas, 1);
  assert_int_equal(feed_str(&r, "<presence/>"), KITH_EXML);
  assert_int_equal(feed(&r, NULL, 0), KITH_EXML);
  assert_int_equal(r.stanzas, 1);
  assert_string_equal(kith__parser_error_condition(r.p), "restricted-xml");
  assert_ptr_equal(kith__parser_error_text(r.p), text);
  /* A reset starts a clean stream. */
  assert_int_equal(kith__parser_reset(r.p), KITH_OK);
  assert_null(kith__parser_error_condition(r.p));
  assert_int_equal(feed_str(&r, HEADER "<presence/>"), KITH_OK);
  assert_int_equal(r.starts, 2);
  assert_int_equal(r.stanzas, 2);
  rec_free(&r);
}

/* ------------------------------------------------------------------ */
/* Reset and stop                                                      */

static void test_reset_from_callback(void **state)
{
  struct rec r;

  (void)state;
  rec_init(&r, NULL);
  r.reset_on = "proceed";
  /* After <proceed/> the server starts TLS: the bytes that follow in the
   * same read are not XML of this stream and must be dropped. */
  assert_int_equal(feed_str(&r, HEADER
                            "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                            "\x16\x03\x01 not xml <<<"),
                   KITH_OK);
  assert_int_equal(r.starts, 1);
  assert_int_equal(r.stanzas, 1);
  assert_null(kith__parser_error_condition(r.p));
  /* A new stream, with its own XML declaration. */
  r.reset_on = NULL;
  assert_int_equal(
      feed_str(&r, "<?xml version='1.0'?>" HEADER "<stream:features/>"),
      KITH_OK);
  assert_int_equal(r.starts, 2);
  assert_int_equal(r.stanzas, 2);
  /* Reset from a callback in a byte-at-a-time feed too. */
  r.reset_on = "success";
  assert_int_equal(
      feed_str(&r, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
      KITH_OK);
  assert_int_equal(feed_bytewise(&r, HEADER "<presence/>", strlen(HEADER) + 11),
                   KITH_OK);
  assert_int_equal(r.starts, 3);
  assert_int_equal(r.stanzas, 4);
  rec_free(&r);
}

static void test_stop_from_callback(void **state)
{
  struct rec whole, r;
  size_t len, ends[NPIECES];
  int nends;
  char *doc = whole_stream(&len, ends, &nends);

  (void)state;
  rec_init(&whole, NULL);
  assert_int_equal(feed(&whole, doc, len), KITH_OK);
  rec_init(&r, NULL);
  r.stop_on = "message";
  assert_int_equal(feed(&r, doc, len), KITH_OK);
  /* Nothing after the stopping stanza was delivered in that call. */
  assert_int_equal(r.stanzas, 2);
  assert_int_equal(r.ends, 0);
  assert_null(kith__parser_error_condition(r.p));
  /* The next feed call resumes where it stopped, losing nothing. */
  r.stop_on = "presence";
  assert_int_equal(feed(&r, NULL, 0), KITH_OK);
  assert_int_equal(r.stanzas, 3);
  assert_int_equal(feed(&r, NULL, 0), KITH_OK);
  assert_int_equal(r.stanzas, 5); /* the iq, then <presence/> stops */
  assert_int_equal(r.ends, 0);
  assert_int_equal(feed(&r, NULL, 0), KITH_OK);
  assert_int_equal(r.ends, 1);
  assert_string_equal(r.log.data, whole.log.data);
  rec_free(&r);

  /* Stopping in stream_start, and an empty root whose end is reported
   * by expat in the same breath: it waits for the next call. */
  rec_init(&r, NULL);
  r.stop_on_start = 1;
  assert_int_equal(feed_str(&r, "<stream:stream "
                                "xmlns:stream='http://etherx.jabber.org/"
                                "streams'/>"),
                   KITH_OK);
  assert_int_equal(r.starts, 1);
  assert_int_equal(r.ends, 0);
  assert_int_equal(feed(&r, NULL, 0), KITH_OK);
  assert_int_equal(r.ends, 1);
  rec_free(&r);

  /* Stop, then reset before resuming: the stopped input is dropped. */
  rec_init(&r, NULL);
  r.stop_on = "message";
  assert_int_equal(feed(&r, doc, len), KITH_OK);
  assert_int_equal(kith__parser_reset(r.p), KITH_OK);
  assert_int_equal(feed_str(&r, HEADER "<presence/>"), KITH_OK);
  assert_int_equal(r.starts, 2);
  assert_int_equal(r.stanzas, 3);
  assert_int_equal(r.ends, 0);
  rec_free(&r);

  rec_free(&whole);
  free(doc);
  /* Stop outside a callback does nothing. */
  kith__parser_stop(NULL);
}

static void test_null_callbacks(void **state)
{
  kith__parser_t *p;
  const char *doc = HEADER "<presence/><message><body>x</body></message>"
                           "</stream:stream>";

  (void)state;
  assert_int_equal(kith__parser_new(NULL, NULL, NULL, NULL), KITH_EINVAL);
  assert_int_equal(kith__parser_new(NULL, NULL, NULL, &p), KITH_OK);
  kith__parser_stop(p);
  assert_int_equal(kith__parser_feed(p, doc, strlen(doc)), KITH_OK);
  assert_int_equal(kith__parser_feed(p, NULL, 3), KITH_EINVAL);
  kith__parser_free(p);
  kith__parser_free(NULL);
  kith__parser_set_limits(NULL, 1, 1);
  assert_int_equal(kith__parser_feed(NULL, "x", 1), KITH_EINVAL);
  assert_int_equal(kith__parser_reset(NULL), KITH_EINVAL);
  assert_null(kith__parser_error_condition(NULL));
  assert_null(kith__parser_error_text(NULL));
}

/* ------------------------------------------------------------------ */
/* Allocation failures                                                 */

static void test_alloc_failures(void **state)
{
  struct counting c;
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &c};
  size_t len, ends[NPIECES];
  int nends, bytewise;
  char *doc = whole_stream(&len, ends, &nends);
  long n;

  (void)state;
  for (bytewise = 0; bytewise < 2; bytewise++) {
    for (n = 1;; n++) {
      kith_ctx_t *ctx;
      kith__parser_t *p = NULL;
      struct rec r;
      kith_status_t rc;

      memset(&c, 0, sizeof(c));
      assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
      c.fail_at = n + 1;
      memset(&r, 0, sizeof(r));
      kith__buf_init(&r.log, NULL, 1 << 20);
      rc = kith__parser_new(ctx, &count_cbs, &r, &p);
      r.p = p;
      if (rc == KITH_OK) {
        rc = bytewise ? feed_bytewise(&r, doc, len) : feed(&r, doc, len);
        if (rc == KITH_ENOMEM)
          assert_string_equal(kith__parser_error_condition(p),
                              "resource-constraint");
        /* Recover with a reset, once memory is back. */
        c.fail_at = 0;
        if (rc != KITH_OK) {
          assert_int_equal(kith__parser_reset(p), KITH_OK);
          assert_int_equal(feed_str(&r, HEADER "<presence/>"), KITH_OK);
        }
      }
      kith__parser_free(p);
      kith__buf_free(&r.log);
      kith_ctx_free(ctx);
      assert_int_equal(c.live, 0);
      if (!c.failed && rc == KITH_OK)
        break;
      if (rc != KITH_ENOMEM)
        fail_msg("allocation %ld failed but got %s", n, kith_status_name(rc));
    }
    assert_true(n > 10);
  }
  free(doc);
}

/* ------------------------------------------------------------------ */
/* Item streaming                                                      */

#define ROSTER_NS "jabber:iq:roster"

/* Log each streamed item with what the shell says at that moment. */
static void on_item(void *ud, const kith_stanza_t *shell,
                    const kith_stanza_t *item)
{
  struct rec *r = ud;
  const kith_stanza_t *q = kith_stanza_parent(item);
  char *s;

  note(r);
  assert_non_null(q);
  assert_ptr_equal(kith_stanza_parent(q), shell);
  assert_string_equal(kith_stanza_name(shell), "iq");
  /* The item is the query's only child element while it is delivered. */
  assert_ptr_equal(kith_stanza_first_child(q), item);
  assert_null(kith_stanza_next(item));
  if (kith_stanza_to_string(item, ROSTER_NS, &s, NULL) != KITH_OK)
    s = NULL;
  kith__buf_printf(&r->log, "I %s id=%s ver=%s\n", s ? s : "(nomem)",
                   kith_stanza_id(shell) ? kith_stanza_id(shell) : "-",
                   kith_stanza_attr(q, "ver") ? kith_stanza_attr(q, "ver")
                                              : "-");
  kith_free(kith_stanza_ctx(item), s);
}

static void rec_stream(struct rec *r)
{
  assert_int_equal(kith__parser_set_item_stream(r->p, ROSTER_NS, on_item, r),
                   KITH_OK);
}

static const char stream_doc[] =
    "<iq type='result' id='r1'><query xmlns='jabber:iq:roster' ver='v7'>\n"
    "<item jid='a@x' name='A'><group>G</group></item>\n"
    "<item jid='b@x'/>\n"
    "</query></iq>"
    "<iq type='set' id='p1'><query xmlns='jabber:iq:roster'>"
    "<item jid='c@x'/></query></iq>"
    "<iq type='result' id='o1'><query xmlns='jabber:iq:private'>"
    "<item jid='d@x'/></query></iq>"
    "<iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>"
    "<iq type='result' id='e1'/>"
    "<message><body>hi</body></message>";

static const char stream_log[] =
    "I <item jid='a@x' name='A'><group>G</group></item> id=r1 ver=v7\n"
    "I <item jid='b@x'/> id=r1 ver=v7\n"
    "T <iq type='result' id='r1'><query xmlns='jabber:iq:roster' "
    "ver='v7'/></iq>\n"
    "N 2\n"
    "T <iq type='set' id='p1'><query xmlns='jabber:iq:roster'>"
    "<item jid='c@x'/></query></iq>\n"
    "T <iq type='result' id='o1'><query xmlns='jabber:iq:private'>"
    "<item jid='d@x'/></query></iq>\n"
    "T <iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>\n"
    "T <iq type='result' id='e1'/>\n"
    "T <message><body>hi</body></message>\n";

/* Items come out one by one; every other stanza is untouched; the shell
 * comes last with the count. The same for every split and 1 byte at a
 * time. */
static void test_stream_items(void **state)
{
  size_t len = sizeof(stream_doc) - 1, cut;
  struct rec r;

  (void)state;
  for (cut = 0; cut <= len + 1; cut++) {
    rec_init(&r, NULL);
    rec_stream(&r);
    assert_int_equal(feed_str(&r, HEADER), KITH_OK);
    kith__buf_reset(&r.log);
    if (cut == len + 1) {
      assert_int_equal(feed_bytewise(&r, stream_doc, len), KITH_OK);
    } else {
      assert_int_equal(feed(&r, stream_doc, cut), KITH_OK);
      assert_int_equal(feed(&r, stream_doc + cut, len - cut), KITH_OK);
    }
    assert_non_null(r.log.data);
    assert_string_equal(r.log.data, stream_log);
    rec_free(&r);
  }
}

/* An item is delivered when its last byte arrives, not at the end. */
static void test_stream_delivery_moment(void **state)
{
  const char *first_end = strstr(stream_doc, "</item>") + 7;
  size_t hdr = strlen(HEADER);
  struct rec r;

  (void)state;
  rec_init(&r, NULL);
  rec_stream(&r);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  r.nev = 0;
  assert_int_equal(
      feed_bytewise(&r, stream_doc, (size_t)(first_end - stream_doc)), KITH_OK);
  assert_int_equal(r.nev, 1);
  assert_int_equal(r.at[0], hdr + (size_t)(first_end - stream_doc) - 1);
  assert_int_equal(r.stanzas, 0);
  rec_free(&r);
}

/* A roster result of `n` items of about `item` bytes each. */
static void make_roster(kith__buf_t *b, size_t n, size_t item)
{
  size_t i, k;

  assert_int_equal(kith__buf_adds(b, "<iq type='result' id='big'>"
                                     "<query xmlns='jabber:iq:roster' "
                                     "ver='v1'>"),
                   KITH_OK);
  for (i = 0; i < n; i++) {
    assert_int_equal(kith__buf_printf(b,
                                      "\n<item jid='u%zu@example.org' "
                                      "subscription='both' name='",
                                      i),
                     KITH_OK);
    for (k = 0; k < item; k++)
      assert_int_equal(kith__buf_addc(b, (char)('a' + k % 26)), KITH_OK);
    assert_int_equal(kith__buf_adds(b, "'><group>Friends</group></item>"),
                     KITH_OK);
  }
  assert_int_equal(kith__buf_adds(b, "\n</query></iq>"), KITH_OK);
}

static void count_item(void *ud, const kith_stanza_t *shell,
                       const kith_stanza_t *item)
{
  (void)shell;
  (void)item;
  ((struct rec *)ud)->nev++;
}

/* 2 MB of roster passes the default 256 KiB limit only when streamed. */
static void check_big_roster(int streaming, int bytewise, kith_status_t want)
{
  kith__buf_t b;
  struct rec r;

  kith__buf_init(&b, NULL, 8u << 20);
  make_roster(&b, 20000, 40);
  assert_true(b.len > 2000000);
  rec_init(&r, NULL);
  if (streaming)
    assert_int_equal(
        kith__parser_set_item_stream(r.p, ROSTER_NS, count_item, &r), KITH_OK);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  r.nev = 0;
  assert_int_equal(bytewise ? feed_bytewise(&r, b.data, b.len)
                            : feed(&r, b.data, b.len),
                   want);
  if (want == KITH_OK) {
    assert_int_equal(r.nev, 20000 + 1); /* the items, then the shell */
    assert_int_equal(r.stanzas, 1);
    assert_non_null(strstr(r.log.data, "N 20000\n"));
  } else {
    assert_int_equal(r.stanzas, 0);
    assert_string_equal(kith__parser_error_condition(r.p), "policy-violation");
  }
  rec_free(&r);
  kith__buf_free(&b);
}

static void test_stream_big_roster(void **state)
{
  (void)state;
  check_big_roster(1, 0, KITH_OK);
  check_big_roster(1, 1, KITH_OK);
  check_big_roster(0, 0, KITH_ELIMIT);
}

/* Each item and the shell are held to the limit separately. */
static void check_stream_limit(const char *doc, int bytewise,
                               kith_status_t want, const char *text)
{
  struct rec r;

  rec_init(&r, NULL);
  kith__parser_set_limits(r.p, 1000, 0);
  rec_stream(&r);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  assert_int_equal(bytewise ? feed_bytewise(&r, doc, strlen(doc))
                            : feed(&r, doc, strlen(doc)),
                   want);
  if (want != KITH_OK) {
    assert_string_equal(kith__parser_error_condition(r.p), "policy-violation");
    assert_non_null(strstr(kith__parser_error_text(r.p), text));
    assert_int_equal(r.stanzas, 0);
  } else {
    assert_int_equal(r.stanzas, 1);
  }
  rec_free(&r);
}

static void test_stream_limits(void **state)
{
  const char *head = "<iq type='result'><query xmlns='jabber:iq:roster'>";
  kith__buf_t ok, big, shell, items;
  size_t i;
  int bw;

  (void)state;
  kith__buf_init(&ok, NULL, 1 << 20);
  kith__buf_init(&big, NULL, 1 << 20);
  kith__buf_init(&shell, NULL, 1 << 20);
  kith__buf_init(&items, NULL, 1 << 20);
  /* An item of exactly 1000 bytes passes; 1001 does not. */
  kith__buf_adds(&ok, head);
  kith__buf_adds(&big, head);
  kith__buf_adds(&ok, "<item jid='");
  kith__buf_adds(&big, "<item jid='");
  for (i = 0; i < 1000 - 11 - 9; i++) {
    kith__buf_addc(&ok, 'a');
    kith__buf_addc(&big, 'a');
  }
  kith__buf_addc(&big, 'a');
  kith__buf_adds(&ok, "'></item></query></iq>");
  kith__buf_adds(&big, "'></item></query></iq>");
  /* Many items and much whitespace: 100 KB in all, fine. */
  kith__buf_adds(&items, head);
  for (i = 0; i < 1000; i++)
    kith__buf_adds(&items, "<item jid='someone@example.org'/>\n\n   \n     "
                           "                                            \n");
  kith__buf_adds(&items, "</query></iq>");
  /* A shell over the limit (a long 'ver'). */
  kith__buf_adds(&shell, "<iq type='result'><query xmlns='jabber:iq:roster' "
                         "ver='");
  for (i = 0; i < 1000; i++)
    kith__buf_addc(&shell, 'v');
  kith__buf_adds(&shell, "'><item jid='a@b'/></query></iq>");
  for (bw = 0; bw < 2; bw++) {
    check_stream_limit(ok.data, bw, KITH_OK, NULL);
    check_stream_limit(big.data, bw, KITH_ELIMIT, "streamed item exceeds");
    check_stream_limit(items.data, bw, KITH_OK, NULL);
    check_stream_limit(shell.data, bw, KITH_ELIMIT, "stanza exceeds");
  }
  kith__buf_free(&ok);
  kith__buf_free(&big);
  kith__buf_free(&shell);
  kith__buf_free(&items);
}

/* Depth still counts from the stream; a reset keeps the setting; turning
 * streaming off drops the rest of a streaming stanza's items and then
 * restores whole stanzas. */
static void test_stream_depth_and_switch(void **state)
{
  struct rec r;
  const char *deep = "<iq type='result'><query xmlns='jabber:iq:roster'>"
                     "<item jid='a@b'><group><x/></group></item></query></iq>";
  const char *one = "<iq type='result'><query xmlns='jabber:iq:roster'>"
                    "<item jid='a@b'/></query></iq>";

  (void)state;
  rec_init(&r, NULL);
  kith__parser_set_limits(r.p, 0, 4);
  rec_stream(&r);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  assert_int_equal(feed_str(&r, deep), KITH_ELIMIT);
  assert_string_equal(kith__parser_error_condition(r.p), "policy-violation");
  assert_int_equal(kith__parser_reset(r.p), KITH_OK);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  r.nev = 0;
  assert_int_equal(feed_str(&r, one), KITH_OK);
  assert_int_equal(r.nev, 2); /* the item, then the shell */
  /* Off while a stanza streams: the rest of its items are dropped. */
  r.nev = 0;
  assert_int_equal(feed_str(&r, "<iq type='result'><query xmlns='"
                                "jabber:iq:roster'><item jid='a@b'/>"),
                   KITH_OK);
  assert_int_equal(r.nev, 1);
  assert_int_equal(kith__parser_set_item_stream(r.p, NULL, NULL, NULL),
                   KITH_OK);
  assert_int_equal(feed_str(&r, "<item jid='c@d'/></query></iq>"), KITH_OK);
  assert_int_equal(r.nev, 2); /* only the shell */
  assert_non_null(strstr(r.log.data, "N 2\n"));
  kith__buf_reset(&r.log);
  assert_int_equal(feed_str(&r, one), KITH_OK);
  assert_string_equal(r.log.data, "T <iq type='result'><query "
                                  "xmlns='jabber:iq:roster'><item "
                                  "jid='a@b'/></query></iq>\n");
  assert_int_equal(kith__parser_set_item_stream(r.p, NULL, on_item, NULL),
                   KITH_EINVAL);
  rec_free(&r);
}

/*
 * Items of every shape come out of the stream exactly as the same items
 * built in the whole tree: namespaced and xml: attributes, entities,
 * nested and foreign children, mixed text, xmlns='', empty elements, and
 * an item too large for the parser's first block of item memory. At every
 * split point of the input.
 */
static const char shapes_head[] =
    "<iq type='result' id='r9'><query xmlns='jabber:iq:roster' ver='v9'>\n"
    "<item jid='a@x' name='A &amp; B' subscription='both' xml:lang='en' "
    "xmlns:e='urn:e' e:extra='1'><group>G1</group><group>G&lt;2</group>"
    "<e:note>n<b>bold</b>tail &#x263A;</e:note></item>\n"
    "<item/>\n"
    "<item jid='b@x'><group></group><x xmlns=''>t<y/></x></item>"
    "<other xmlns='urn:other' a=\"1\">text</other>"
    "<item jid='c@x' name='";
static const char shapes_tail[] = "'>text<group>G</group>more</item>\n"
                                  "</query></iq>";

static char *shapes_doc(size_t name_len, size_t *len)
{
  kith__buf_t b;
  size_t i;
  char *s;

  kith__buf_init(&b, NULL, 1 << 20);
  assert_int_equal(kith__buf_adds(&b, shapes_head), KITH_OK);
  for (i = 0; i < name_len; i++)
    assert_int_equal(kith__buf_addc(&b, (char)('a' + i % 26)), KITH_OK);
  assert_int_equal(kith__buf_adds(&b, shapes_tail), KITH_OK);
  s = kith__buf_take(&b, len);
  kith__buf_free(&b);
  return s;
}

/* The log on_item would write for each element child of the query of a
 * result built whole (streaming off). */
static void whole_items_log(const char *doc, size_t len, kith__buf_t *out)
{
  const kith_stanza_t *q, *c;
  kith_stanza_t *iq = NULL;
  char *s;

  assert_int_equal(kith_stanza_parse(NULL, doc, len, &iq), KITH_OK);
  q = kith_stanza_first_child(iq);
  for (c = kith_stanza_first_child(q); c; c = kith_stanza_next(c)) {
    assert_int_equal(kith_stanza_to_string(c, ROSTER_NS, &s, NULL), KITH_OK);
    kith__buf_printf(out, "I %s id=r9 ver=v9\n", s);
    kith_free(NULL, s);
  }
  kith_stanza_free(iq);
}

static void test_stream_item_shapes(void **state)
{
  size_t len, cut, hdr = strlen(HEADER);
  char *doc = shapes_doc(5000, &len);
  kith__buf_t want;
  struct rec r;

  (void)state;
  kith__buf_init(&want, NULL, 1 << 20);
  whole_items_log(doc, len, &want);
  for (cut = 0; cut <= len; cut += cut < 700 || cut > len - 300 ? 1 : 97) {
    rec_init(&r, NULL);
    rec_stream(&r);
    assert_int_equal(feed_str(&r, HEADER), KITH_OK);
    kith__buf_reset(&r.log);
    assert_int_equal(feed(&r, doc, cut), KITH_OK);
    assert_int_equal(feed(&r, doc + cut, len - cut), KITH_OK);
    assert_int_equal(r.stanzas, 1);
    /* The items, in order, then the shell. */
    assert_int_equal(strncmp(r.log.data, want.data, want.len), 0);
    assert_non_null(strstr(r.log.data + want.len, "\nN 5\n"));
    rec_free(&r);
  }
  (void)hdr;
  kith__buf_free(&want);
  free(doc);
}

/* What a callback takes from a streamed item is its own: a copy and
 * joined text outlive the item, and nothing leaks. */
struct taken {
  kith_stanza_t *copies[8];
  char *texts[8];
  int n;
};

static void keep_item(void *ud, const kith_stanza_t *shell,
                      const kith_stanza_t *item)
{
  struct taken *k = ud;
  kith_stanza_t *copy = NULL;

  (void)shell;
  assert_true(k->n < 8);
  assert_int_equal(kith_stanza_copy(item, &copy), KITH_OK);
  assert_null(kith_stanza_parent(copy));
  k->copies[k->n] = copy;
  /* Mixed content: joined on demand, cached in the (streamed) element. */
  k->texts[k->n] = kith__strdup(NULL, kith_stanza_text(item));
  k->n++;
}

/* Replace "nsN" by "ns" for any number N, in place. */
static void normalize_prefixes(char *s)
{
  char *out = s;

  while (*s) {
    *out++ = *s;
    if (s[0] == 'n' && s[1] == 's' && s[2] >= '0' && s[2] <= '9') {
      *out++ = 's';
      for (s += 2; *s >= '0' && *s <= '9'; s++)
        ;
      continue;
    }
    s++;
  }
  *out = '\0';
}

static void test_stream_item_outlives_copy(void **state)
{
  struct counting c;
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &c};
  kith_ctx_t *ctx;
  struct taken k;
  struct rec r;
  kith__buf_t want, got;
  size_t len, i;
  char *doc = shapes_doc(5000, &len), *s;

  (void)state;
  memset(&c, 0, sizeof(c));
  memset(&k, 0, sizeof(k));
  kith__buf_init(&want, NULL, 1 << 20);
  kith__buf_init(&got, NULL, 1 << 20);
  whole_items_log(doc, len, &want);
  assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
  rec_init(&r, ctx);
  assert_int_equal(kith__parser_set_item_stream(r.p, ROSTER_NS, keep_item, &k),
                   KITH_OK);
  assert_int_equal(feed_str(&r, HEADER), KITH_OK);
  assert_int_equal(feed(&r, doc, len), KITH_OK);
  rec_free(&r);
  /* The parser is gone; the copies still read as the items did. */
  assert_int_equal(k.n, 5);
  assert_string_equal(k.texts[0], "");
  assert_string_equal(k.texts[3], "text");
  assert_string_equal(k.texts[4], "textmore");
  for (i = 0; i < (size_t)k.n; i++) {
    assert_int_equal(kith_stanza_to_string(k.copies[i], ROSTER_NS, &s, NULL),
                     KITH_OK);
    kith__buf_printf(&got, "I %s id=r9 ver=v9\n", s);
    kith_free(ctx, s);
    kith_stanza_free(k.copies[i]);
    kith__free(NULL, k.texts[i]);
  }
  kith_ctx_free(ctx);
  assert_int_equal(c.live, 0);
  /* Namespace prefixes are the serializer's to pick (ns1, ns4, ...). */
  normalize_prefixes(got.data);
  normalize_prefixes(want.data);
  assert_string_equal(got.data, want.data);
  kith__buf_free(&want);
  kith__buf_free(&got);
  free(doc);
}

/* Streaming under a failing allocator: each allocation fails in turn;
 * the parser reports it, recovers after a reset, and leaks nothing. */
static void test_stream_alloc_failures(void **state)
{
  struct counting c;
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &c};
  size_t len;
  char *doc = shapes_doc(9000, &len);
  long n;
  int bytewise;

  (void)state;
  for (bytewise = 0; bytewise < 2; bytewise++) {
    for (n = 1;; n++) {
      kith_ctx_t *ctx;
      kith__parser_t *p = NULL;
      struct rec r;
      kith_status_t rc;

      memset(&c, 0, sizeof(c));
      assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
      c.fail_at = n + 1;
      memset(&r, 0, sizeof(r));
      kith__buf_init(&r.log, NULL, 1 << 20);
      rc = kith__parser_new(ctx, &count_cbs, &r, &p);
      r.p = p;
      if (rc == KITH_OK)
        rc = kith__parser_set_item_stream(p, ROSTER_NS, count_item, &r);
      if (rc == KITH_OK) {
        rc = feed_str(&r, HEADER);
        if (rc == KITH_OK)
          rc = bytewise ? feed_bytewise(&r, doc, len) : feed(&r, doc, len);
        if (rc == KITH_OK) {
          assert_int_equal(r.nev, 5);
          assert_int_equal(r.stanzas, 1);
        }
      } else if (rc == KITH_ENOMEM) {
        kith__parser_free(p); /* set_item_stream failed: nothing to feed */
        p = NULL;
      }
      if (rc == KITH_ENOMEM && p) {
        assert_string_equal(kith__parser_error_condition(p),
                            "resource-constraint");
        c.fail_at = 0;
        assert_int_equal(kith__parser_reset(p), KITH_OK);
        assert_int_equal(feed_str(&r, HEADER "<presence/>"), KITH_OK);
      }
      kith__parser_free(p);
      kith__buf_free(&r.log);
      kith_ctx_free(ctx);
      assert_int_equal(c.live, 0);
      if (!c.failed && rc == KITH_OK)
        break;
      if (rc != KITH_ENOMEM)
        fail_msg("allocation %ld failed but got %s", n, kith_status_name(rc));
    }
    assert_true(n > 5);
  }
  free(doc);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_events),
      cmocka_unit_test(test_every_split_point),
      cmocka_unit_test(test_delivery_moment),
      cmocka_unit_test(test_markup_lookalikes),
      cmocka_unit_test(test_transcript),
      cmocka_unit_test(test_namespaces),
      cmocka_unit_test(test_stanza_size_limit),
      cmocka_unit_test(test_empty_stanza_size_limit),
      cmocka_unit_test(test_keepalives_do_not_count),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_huge_text_stopped_early),
      cmocka_unit_test(test_huge_start_tag_stopped_early),
      cmocka_unit_test(test_trickled_start_tag),
      cmocka_unit_test(test_forbidden_xml),
      cmocka_unit_test(test_utf8_at_every_offset),
      cmocka_unit_test(test_errors_are_sticky),
      cmocka_unit_test(test_reset_from_callback),
      cmocka_unit_test(test_stop_from_callback),
      cmocka_unit_test(test_null_callbacks),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_stream_items),
      cmocka_unit_test(test_stream_delivery_moment),
      cmocka_unit_test(test_stream_big_roster),
      cmocka_unit_test(test_stream_limits),
      cmocka_unit_test(test_stream_depth_and_switch),
      cmocka_unit_test(test_stream_item_shapes),
      cmocka_unit_test(test_stream_item_outlives_copy),
      cmocka_unit_test(test_stream_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

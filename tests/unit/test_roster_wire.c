/*
 * Unit tests: the roster wire layer (src/roster/wire.c): roster results
 * and pushes, roster and presence builders, presence parsing.
 *
 * Shapes come from the Prosody transcripts in tests/data/transcripts (what
 * a real server sends and what the client sent it), the rest from
 * RFC 6121 and XEP-0172.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kith/jid.h"
#include "kith/roster.h"
#include "kith/stanza.h"
#include "core/ctx.h"
#include "roster/wire.h"

#define OWN_BARE "alice@example.com"
#define OWN_FULL "alice@example.com/kith"
#define ERRNS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* ------------------------------------------------------------------ */
/* A counting allocator that can fail the Nth allocation.              */

struct counting {
  long allocs;  /* allocations attempted (malloc, and realloc of a block) */
  long live;    /* blocks not yet freed */
  long fail_at; /* refuse this allocation (1-based); 0 never */
  int failed;   /* an allocation was refused */
};

static int refuse_now(struct counting *c)
{
  if (c->fail_at && ++c->allocs == c->fail_at) {
    c->failed = 1;
    return 1;
  }
  if (!c->fail_at)
    c->allocs++;
  return 0;
}

static void *c_malloc(size_t n, void *ud)
{
  struct counting *c = ud;

  if (refuse_now(c))
    return NULL;
  c->live++;
  return malloc(n);
}

static void *c_realloc(void *p, size_t n, void *ud)
{
  if (p == NULL)
    return c_malloc(n, ud);
  if (refuse_now(ud))
    return NULL;
  return realloc(p, n);
}

static void c_free(void *p, void *ud)
{
  struct counting *c = ud;

  if (p) {
    c->live--;
    free(p);
  }
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static kith_stanza_t *parse_in(kith_ctx_t *ctx, const char *xml)
{
  kith_stanza_t *st = NULL;

  assert_int_equal(kith_stanza_parse(ctx, xml, strlen(xml), &st), KITH_OK);
  assert_non_null(st);
  return st;
}

static kith_stanza_t *parse(const char *xml)
{
  return parse_in(NULL, xml);
}

static void assert_xml(const kith_stanza_t *st, const char *want)
{
  char *s = NULL;

  assert_int_equal(kith_stanza_to_string(st, NULL, &s, NULL), KITH_OK);
  assert_string_equal(s, want);
  kith_free(kith_stanza_ctx(st), s);
}

static void assert_str(const char *got, const char *want)
{
  if (want == NULL)
    assert_null(got);
  else {
    assert_non_null(got);
    assert_string_equal(got, want);
  }
}

/* Parse a roster result and return its items (allocating API). */
static kith__wire_item_t *result_items(const char *xml, size_t *n,
                                       size_t *skipped)
{
  kith_stanza_t *iq = parse(xml);
  kith__wire_item_t *items = NULL;
  int unchanged = -1;

  assert_int_equal(kith__wire_parse_roster_result(NULL, iq, &items, n, NULL,
                                                  &unchanged, skipped),
                   KITH_OK);
  assert_int_equal(unchanged, 0);
  kith_stanza_free(iq);
  return items;
}

static void assert_groups(const kith__wire_item_t *it, size_t n, ...)
{
  va_list ap;
  size_t i;

  assert_int_equal(it->ngroups, n);
  va_start(ap, n);
  for (i = 0; i < n; i++)
    assert_string_equal(it->groups[i], va_arg(ap, const char *));
  va_end(ap);
}

/* Read a whole file under tests/data. */
static char *read_data(const char *rel)
{
  char path[512];
  FILE *f;
  char *buf;
  long len;

  snprintf(path, sizeof(path), "%s/%s", KITH_TEST_DATA_DIR, rel);
  f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  len = ftell(f);
  assert_true(len > 0);
  rewind(f);
  buf = malloc((size_t)len + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
  buf[len] = '\0';
  fclose(f);
  return buf;
}

/*
 * Length of the top-level element at s (which starts with '<'), for the
 * transcripts' records, which hold several stanzas back to back. Good
 * enough for what servers send there: no CDATA, comments or '>' in values.
 */
static size_t element_len(const char *s)
{
  const char *p = s;
  int depth = 0;

  do {
    const char *gt = strchr(p, '>');

    assert_non_null(gt);
    if (p[1] == '/')
      depth--;
    else if (gt[-1] != '/')
      depth++;
    p = gt + 1;
    while (depth > 0 && *p && *p != '<')
      p++;
  } while (depth > 0);
  return (size_t)(p - s);
}

/* ------------------------------------------------------------------ */
/* Name tables                                                         */

static void test_name_tables(void **state)
{
  static const char *const subs[] = {"none", "to", "from", "both", "remove"};
  static const char *const types[] = {
      NULL,          "unavailable",  "subscribe", "subscribed",
      "unsubscribe", "unsubscribed", "probe",     "error"};
  int i;

  (void)state;
  for (i = 0; i < 5; i++) {
    assert_int_equal(kith__wire_sub_from_name(subs[i]), i);
    assert_string_equal(kith__wire_sub_name(i), subs[i]);
  }
  assert_int_equal(KITH__WIRE_SUB_BOTH, KITH_SUB_BOTH);
  assert_int_equal(kith__wire_sub_from_name("None"), -1);
  assert_int_equal(kith__wire_sub_from_name(""), -1);
  assert_int_equal(kith__wire_sub_from_name(NULL), -1);
  assert_null(kith__wire_sub_name(5));
  assert_null(kith__wire_sub_name(-1));

  for (i = 0; i < KITH__WIRE_PT_COUNT; i++) {
    assert_int_equal(kith__wire_ptype_from_attr(types[i]), i);
    assert_str(kith__wire_ptype_attr(i), types[i]);
  }
  assert_string_equal(kith__wire_ptype_name(KITH__WIRE_PT_AVAILABLE),
                      "available");
  assert_string_equal(kith__wire_ptype_name(KITH__WIRE_PT_PROBE), "probe");
  assert_string_equal(kith__wire_ptype_name(99), "?");
  assert_int_equal(kith__wire_ptype_from_attr("available"), -1);
  assert_int_equal(kith__wire_ptype_from_attr("Subscribe"), -1);
  assert_null(kith__wire_ptype_attr(KITH__WIRE_PT_COUNT));

  assert_int_equal(kith__wire_show_from_text(NULL), KITH_SHOW_AVAILABLE);
  assert_int_equal(kith__wire_show_from_text(""), KITH_SHOW_AVAILABLE);
  assert_int_equal(kith__wire_show_from_text("chat"), KITH_SHOW_CHAT);
  assert_int_equal(kith__wire_show_from_text("away"), KITH_SHOW_AWAY);
  assert_int_equal(kith__wire_show_from_text("xa"), KITH_SHOW_XA);
  assert_int_equal(kith__wire_show_from_text("dnd"), KITH_SHOW_DND);
  assert_int_equal(kith__wire_show_from_text("available"), -1);
  assert_int_equal(kith__wire_show_from_text("unavailable"), -1);
  assert_int_equal(kith__wire_show_from_text("DND"), -1);
  assert_string_equal(kith__wire_show_text(KITH_SHOW_XA), "xa");
  assert_null(kith__wire_show_text(KITH_SHOW_AVAILABLE));
  assert_null(kith__wire_show_text(KITH_SHOW_UNAVAILABLE));
  assert_null(kith__wire_show_text(-1));

  assert_true(kith__wire_error_valid("cancel", "service-unavailable"));
  assert_true(kith__wire_error_valid("modify", "bad-request"));
  assert_true(kith__wire_error_valid("wait", "unexpected-request"));
  assert_false(kith__wire_error_valid("fatal", "bad-request"));
  assert_false(kith__wire_error_valid("cancel", "no-such-condition"));
  assert_false(kith__wire_error_valid(NULL, "bad-request"));
  assert_false(kith__wire_error_valid("cancel", NULL));
}

/* ------------------------------------------------------------------ */
/* Roster results                                                      */

static void test_result_rfc_example(void **state)
{
  kith__wire_item_t *items;
  size_t n = 0, skipped = 9;

  (void)state;
  /* RFC 6121 2.2, with ask and approved added. */
  items = result_items(
      "<iq id='hu2bac18' to='juliet@example.com/balcony' type='result'>"
      "<query xmlns='jabber:iq:roster' ver='ver11'>"
      "<item jid='romeo@example.net' name='Romeo' subscription='both'>"
      "<group>Friends</group></item>"
      "<item jid='mercutio@example.com' name='Mercutio' subscription='from'/>"
      "<item jid='benvolio@example.net' name='Benvolio' subscription='to'"
      " approved='true'/>"
      "<item jid='nurse@example.com' ask='subscribe'/>"
      "</query></iq>",
      &n, &skipped);
  assert_int_equal(n, 4);
  assert_int_equal(skipped, 0);
  assert_string_equal(items[0].jid, "romeo@example.net");
  assert_string_equal(items[0].name, "Romeo");
  assert_int_equal(items[0].subscription, KITH__WIRE_SUB_BOTH);
  assert_groups(&items[0], 1, "Friends");
  assert_int_equal(items[0].ask, 0);
  assert_int_equal(items[0].approved, 0);
  assert_string_equal(items[1].jid, "mercutio@example.com");
  assert_int_equal(items[1].subscription, KITH__WIRE_SUB_FROM);
  assert_groups(&items[1], 0);
  assert_null(items[1].groups);
  assert_int_equal(items[2].subscription, KITH__WIRE_SUB_TO);
  assert_int_equal(items[2].approved, 1);
  /* No subscription attribute means none (RFC 6121 2.1.2.5). */
  assert_string_equal(items[3].jid, "nurse@example.com");
  assert_null(items[3].name);
  assert_int_equal(items[3].subscription, KITH__WIRE_SUB_NONE);
  assert_int_equal(items[3].ask, 1);
  kith__wire_items_free(NULL, items, n);
}

static void test_result_unchanged_vs_empty(void **state)
{
  kith__wire_item_t *items = (kith__wire_item_t *)1;
  const char *ver = "x";
  int unchanged = -1;
  size_t n = 9;
  kith_stanza_t *iq;

  (void)state;
  /* RFC 6121 2.6.3: no <query/> at all means "nothing changed". */
  iq = parse("<iq to='alice@localhost/kith' type='result' id='roster3'/>");
  assert_int_equal(kith__wire_parse_roster_result(NULL, iq, &items, &n, &ver,
                                                  &unchanged, NULL),
                   KITH_OK);
  assert_null(items);
  assert_int_equal(n, 0);
  assert_null(ver);
  assert_int_equal(unchanged, 1);
  kith_stanza_free(iq);

  /* An empty roster is a query without items: it replaces the cache. */
  iq = parse("<iq type='result' id='r'><query xmlns='jabber:iq:roster'/></iq>");
  assert_int_equal(kith__wire_parse_roster_result(NULL, iq, &items, &n, &ver,
                                                  &unchanged, NULL),
                   KITH_OK);
  assert_int_equal(n, 0);
  assert_null(ver);
  assert_int_equal(unchanged, 0);
  kith__wire_items_free(NULL, items, n);
  kith_stanza_free(iq);

  /* Prosody's answer to ver='' for a never-saved roster: ver '1'. */
  iq = parse("<iq to='alice@localhost/kith' type='result' id='roster1'>"
             "<query xmlns='jabber:iq:roster' ver='1'/></iq>");
  assert_int_equal(kith__wire_parse_roster_result(NULL, iq, &items, &n, &ver,
                                                  &unchanged, NULL),
                   KITH_OK);
  assert_int_equal(n, 0);
  assert_string_equal(ver, "1");
  assert_int_equal(unchanged, 0);
  kith__wire_items_free(NULL, items, n);
  kith_stanza_free(iq);

  /* An empty version string is a version. */
  iq = parse("<iq type='result' id='r'>"
             "<query xmlns='jabber:iq:roster' ver=''/></iq>");
  assert_int_equal(
      kith__wire_parse_roster_result(NULL, iq, &items, &n, &ver, NULL, NULL),
      KITH_OK);
  assert_string_equal(ver, "");
  kith__wire_items_free(NULL, items, n);
  kith_stanza_free(iq);
}

static void test_result_not_a_result(void **state)
{
  static const struct {
    const char *xml;
    kith_status_t want;
  } cases[] = {
      {"<iq type='error' id='r'><query xmlns='jabber:iq:roster'/>"
       "<error type='cancel'><service-unavailable xmlns='" ERRNS "'/>"
       "</error></iq>",
       KITH_ESTANZA},
      {"<iq type='set' id='r'><query xmlns='jabber:iq:roster'/></iq>",
       KITH_EPROTO},
      {"<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
       KITH_EPROTO},
      {"<iq id='r'><query xmlns='jabber:iq:roster'/></iq>", KITH_EPROTO},
      {"<message type='result'><query xmlns='jabber:iq:roster'/></message>",
       KITH_EPROTO},
      {"<iq type='result' id='r'><query xmlns='jabber:iq:private'/></iq>",
       KITH_EPROTO},
      {"<iq type='result' id='r'><ping xmlns='urn:xmpp:ping'/></iq>",
       KITH_EPROTO},
  };
  kith__wire_roster_info_t info;
  kith__wire_item_t *items;
  size_t i, n;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    kith_stanza_t *iq = parse(cases[i].xml);

    items = (kith__wire_item_t *)1;
    n = 7;
    assert_int_equal(
        kith__wire_parse_roster_result(NULL, iq, &items, &n, NULL, NULL, NULL),
        cases[i].want);
    assert_null(items);
    assert_int_equal(n, 0);
    kith_stanza_free(iq);
  }
  assert_int_equal(
      kith__wire_parse_roster_result(NULL, NULL, &items, &n, NULL, NULL, NULL),
      KITH_EINVAL);
  assert_int_equal(kith__wire_roster_foreach(NULL, NULL, NULL, NULL, &info),
                   KITH_EINVAL);
}

static void test_result_groups(void **state)
{
  kith__wire_item_t *items;
  size_t n = 0;

  (void)state;
  items = result_items(
      "<iq type='result' id='r'><query xmlns='jabber:iq:roster'>"
      /* Order kept, duplicates and empty groups dropped. */
      "<item jid='a@example.com'><group>B</group><group>A</group>"
      "<group>B</group><group/><group></group><group>A</group>"
      "<group>C</group><group> </group></item>"
      /* Only groups in the roster namespace count; case matters. */
      "<item jid='b@example.com'><group xmlns='urn:other'>X</group>"
      "<group>x</group><group>X</group><note>ignored</note></item>"
      /* Only empty groups: no groups. */
      "<item jid='c@example.com'><group/></item>"
      /* A long list (hashed), then short ones naming the same groups:
       * nothing carries over from one item to the next. */
      "<item jid='d@example.com'><group>1</group><group>2</group>"
      "<group>3</group><group>4</group><group>5</group><group>6</group>"
      "<group>7</group><group>8</group><group>9</group><group>1</group>"
      "</item>"
      "<item jid='e@example.com'><group>9</group></item>"
      "<item jid='f@example.com'><group>5</group><group>1</group></item>"
      "</query></iq>",
      &n, NULL);
  assert_int_equal(n, 6);
  assert_groups(&items[0], 4, "B", "A", "C", " ");
  assert_groups(&items[1], 2, "x", "X");
  assert_groups(&items[2], 0);
  assert_groups(&items[3], 9, "1", "2", "3", "4", "5", "6", "7", "8", "9");
  assert_groups(&items[4], 1, "9");
  assert_groups(&items[5], 2, "5", "1");
  kith__wire_items_free(NULL, items, n);
}

/* Many groups go through the hash set; the result must not change. */
static void test_result_many_groups(void **state)
{
  kith_stanza_t *iq, *query, *item;
  kith__wire_item_t *items = NULL;
  char name[32];
  size_t n, i;
  int k;

  (void)state;
  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(iq, "type", "result"), KITH_OK);
  assert_int_equal(kith_stanza_add_element(iq, "query", KITH_NS_ROSTER, &query),
                   KITH_OK);
  /* Items with 1..40 groups, each group sent twice in a row and once
   * more at the end. */
  for (k = 1; k <= 40; k++) {
    int g;

    assert_int_equal(kith_stanza_add_element(query, "item", NULL, &item),
                     KITH_OK);
    snprintf(name, sizeof(name), "u%d@example.com", k);
    assert_int_equal(kith_stanza_set_attr(item, "jid", name), KITH_OK);
    for (g = 0; g < 2 * k + k; g++) {
      kith_stanza_t *grp;

      snprintf(name, sizeof(name), "g%d", g < 2 * k ? g / 2 : g - 2 * k);
      assert_int_equal(kith_stanza_add_element(item, "group", NULL, &grp),
                       KITH_OK);
      assert_int_equal(kith_stanza_add_text(grp, name), KITH_OK);
    }
  }
  assert_int_equal(
      kith__wire_parse_roster_result(NULL, iq, &items, &n, NULL, NULL, NULL),
      KITH_OK);
  assert_int_equal(n, 40);
  for (i = 0; i < n; i++) {
    size_t g;

    assert_int_equal(items[i].ngroups, i + 1);
    for (g = 0; g < items[i].ngroups; g++) {
      snprintf(name, sizeof(name), "g%zu", g);
      assert_string_equal(items[i].groups[g], name);
    }
  }
  kith__wire_items_free(NULL, items, n);
  kith_stanza_free(iq);
}

static void test_result_escaped_names(void **state)
{
  kith__wire_item_t *items;
  size_t n = 0;

  (void)state;
  items = result_items(
      "<iq type='result' id='r'><query xmlns='jabber:iq:roster'>"
      "<item jid='ben@example.com' name='Ben &amp; Jerry&apos;s &lt;3 &quot;"
      "&#x263A;&#10;'><group>R&amp;D &gt; Ops</group></item>"
      "<item jid='noname@example.com' name=''/>"
      "<item jid='utf8@example.com' name='J&#xFC;rgen \xC3\xA9'/>"
      "</query></iq>",
      &n, NULL);
  assert_int_equal(n, 3);
  /* Attribute values are normalized by XML: the &#10; stays a newline. */
  assert_string_equal(items[0].name, "Ben & Jerry's <3 \"\xE2\x98\xBA\n");
  assert_groups(&items[0], 1, "R&D > Ops");
  /* An empty name is no name. */
  assert_null(items[1].name);
  assert_string_equal(items[2].name, "J\xC3\xBCrgen \xC3\xA9");
  kith__wire_items_free(NULL, items, n);
}

struct logrec {
  int warns, debugs;
};

static void rec_log(void *ud, kith_log_level_t level, const char *area,
                    const char *msg)
{
  struct logrec *r = ud;

  assert_string_equal(area, "roster");
  (void)msg;
  if (level == KITH_LOG_WARN)
    r->warns++;
  else if (level == KITH_LOG_DEBUG)
    r->debugs++;
}

static void test_result_invalid_items_skipped(void **state)
{
  struct logrec rec = {0, 0};
  kith__wire_item_t *items = NULL;
  kith_ctx_t *ctx;
  kith_stanza_t *iq;
  size_t n = 0, skipped = 0;

  (void)state;
  assert_int_equal(kith_ctx_new(NULL, &ctx), KITH_OK);
  kith_ctx_set_log(ctx, KITH_LOG_DEBUG, rec_log, &rec);
  iq = parse("<iq type='result' id='r'><query xmlns='jabber:iq:roster'>"
             "<item jid='ok1@example.com'/>"
             "<item name='no jid'/>"
             "<item jid=''/>"
             "<item jid='@example.com'/>"
             "<item jid='a@b@c'/>"
             "<item jid='bad&lt;char@example.com'/>"
             "<item jid='x@-bad-.com'/>"
             "<item jid='remove@example.com' subscription='remove'/>"
             "<item jid='bogus@example.com' subscription='Both'/>"
             "<item jid='Mixed.Case@Example.COM/Resource' subscription='to'/>"
             "<item xmlns='urn:not-roster' jid='ignored@example.com'/>"
             "<other jid='ignored2@example.com'/>"
             "<item jid='ok2@example.com.'/>"
             "</query></iq>");
  assert_int_equal(
      kith__wire_parse_roster_result(ctx, iq, &items, &n, NULL, NULL, &skipped),
      KITH_OK);
  assert_int_equal(n, 3);
  assert_int_equal(skipped, 8);
  assert_string_equal(items[0].jid, "ok1@example.com");
  /* Normalized to the bare JID. */
  assert_string_equal(items[1].jid, "mixed.case@example.com");
  assert_int_equal(items[1].subscription, KITH__WIRE_SUB_TO);
  /* The trailing dot goes (RFC 7622 3.2). */
  assert_string_equal(items[2].jid, "ok2@example.com");
  /* One debug line per skipped item, one warning for the lot. */
  assert_int_equal(rec.debugs, 8);
  assert_int_equal(rec.warns, 1);
  kith__wire_items_free(ctx, items, n);
  kith_stanza_free(iq);
  kith_ctx_free(ctx);
}

struct visit {
  int calls;
  int stop_at;
  char last[64];
};

static kith_status_t visit_item(void *ud, const kith__wire_item_view_t *it)
{
  struct visit *v = ud;

  v->calls++;
  snprintf(v->last, sizeof(v->last), "%s", it->jid);
  return v->calls == v->stop_at ? KITH_ECANCELED : KITH_OK;
}

static void test_foreach_visitor(void **state)
{
  kith__wire_roster_info_t info;
  struct visit v = {0, 0, ""};
  kith_stanza_t *iq;

  (void)state;
  iq = parse("<iq type='result' id='r'>"
             "<query xmlns='jabber:iq:roster' ver='v7'>"
             "<item jid='a@example.com'/><item jid='B@example.com'/>"
             "<item jid='bad@'/><item jid='c@example.com'/>"
             "</query></iq>");
  assert_int_equal(kith__wire_roster_foreach(NULL, iq, visit_item, &v, &info),
                   KITH_OK);
  assert_int_equal(v.calls, 3);
  assert_string_equal(v.last, "c@example.com");
  assert_int_equal(info.count, 3);
  assert_int_equal(info.skipped, 1);
  assert_int_equal(info.unchanged, 0);
  assert_string_equal(info.ver, "v7");

  /* The visitor's status stops the walk and comes back. */
  v.calls = 0;
  v.stop_at = 2;
  assert_int_equal(kith__wire_roster_foreach(NULL, iq, visit_item, &v, &info),
                   KITH_ECANCELED);
  assert_int_equal(v.calls, 2);
  assert_string_equal(v.last, "b@example.com");
  assert_int_equal(info.count, 1);
  kith_stanza_free(iq);
}

/*
 * The walk takes JIDs that look normalized as they are, without the JID
 * module. Whatever path a JID takes, the result must be exactly what
 * kith_jid_normalize() says.
 */
static void check_item_jid(const char *jid)
{
  kith_stanza_t *iq, *query, *item;
  kith__wire_item_t *items = NULL;
  char *want = NULL;
  size_t n = 0;

  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(iq, "type", "result"), KITH_OK);
  assert_int_equal(kith_stanza_add_element(iq, "query", KITH_NS_ROSTER, &query),
                   KITH_OK);
  assert_int_equal(kith_stanza_add_element(query, "item", NULL, &item),
                   KITH_OK);
  if (kith_stanza_set_attr(item, "jid", jid) != KITH_OK) {
    kith_stanza_free(iq); /* not even a valid attribute value */
    return;
  }
  assert_int_equal(
      kith__wire_parse_roster_result(NULL, iq, &items, &n, NULL, NULL, NULL),
      KITH_OK);
  if (kith_jid_normalize(NULL, jid, 1, &want, NULL) == KITH_OK) {
    if (n != 1 || strcmp(items[0].jid, want) != 0)
      fail_msg("'%s': got '%s', want '%s'", jid, n ? items[0].jid : "(none)",
               want);
  } else if (n != 0) {
    fail_msg("'%s': accepted as '%s', but it is invalid", jid, items[0].jid);
  }
  kith_free(NULL, want);
  kith__wire_items_free(NULL, items, n);
  kith_stanza_free(iq);
}

static void test_item_jid_paths(void **state)
{
  static const char *const fixed[] = {
      "example.com",
      "a@b",
      "a@b.c",
      "user@1.2.3.4",
      "1.2.3.4",
      "user@1.2.3",
      "user@123",
      "user@a.123",
      "user@123.a",
      "user@[::1]",
      "user@[::1",
      "user@-a.com",
      "user@a-.com",
      "user@a--b.com",
      "user@xn--bcher-kva.ch",
      "user@XN--BCHER-KVA.ch",
      "user@example.com.",
      "user@example..com",
      "user@.example.com",
      "user@",
      "@example.com",
      "user@example.com/",
      "user@example.com/r",
      "user/r@example.com",
      "a@b@c",
      "USER@example.com",
      "user@EXAMPLE.com",
      "us er@example.com",
      "\xC3\xA9@example.com",
      "user@\xC3\xA9xample.com",
      "user@exa\xE3\x80\x82mple.com",
      "!#$%*+-.=?^_`{|}~@example.com",
  };
  char buf[2200];
  size_t i;
  int c;

  (void)state;
  for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
    check_item_jid(fixed[i]);
  /* Every ASCII byte in the localpart and in the domainpart. */
  for (c = 1; c < 128; c++) {
    snprintf(buf, sizeof(buf), "a%cb@example.com", c);
    check_item_jid(buf);
    snprintf(buf, sizeof(buf), "%c@example.com", c);
    check_item_jid(buf);
    snprintf(buf, sizeof(buf), "user@ex%cample.com", c);
    check_item_jid(buf);
    snprintf(buf, sizeof(buf), "user@%c.example.com", c);
    check_item_jid(buf);
    snprintf(buf, sizeof(buf), "user@example.c%c", c);
    check_item_jid(buf);
  }
  /* Length limits: a label of 63/64 bytes, parts of 1023/1024 bytes. */
  for (i = 62; i <= 65; i++) {
    memset(buf, 'l', i);
    strcpy(buf + i, ".example.com");
    check_item_jid(buf);
  }
  for (i = 1022; i <= 1025; i++) {
    memset(buf, 'n', i);
    strcpy(buf + i, "@example.com");
    check_item_jid(buf);
  }
  for (i = 1021; i <= 1025; i++) {
    size_t k;

    strcpy(buf, "u@");
    for (k = 0; k < i; k++)
      buf[2 + k] = (k % 60 == 59) ? '.' : 'd';
    buf[2 + i] = '\0';
    check_item_jid(buf);
  }
}

/* A bigger roster, built in memory, through the visitor. */
static kith_status_t count_item(void *ud, const kith__wire_item_view_t *it)
{
  size_t *seen = ud;
  char want[32];

  snprintf(want, sizeof(want), "contact%zu@example.com", *seen);
  if (strcmp(it->jid, want) != 0 || it->ngroups != 1 ||
      it->subscription != KITH__WIRE_SUB_BOTH)
    return KITH_EPROTO;
  (*seen)++;
  return KITH_OK;
}

static void test_result_large(void **state)
{
  kith__wire_roster_info_t info;
  kith_stanza_t *iq, *query;
  size_t i, seen = 0;
  char jid[32];

  (void)state;
  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(iq, "type", "result"), KITH_OK);
  assert_int_equal(kith_stanza_add_element(iq, "query", KITH_NS_ROSTER, &query),
                   KITH_OK);
  for (i = 0; i < 20000; i++) {
    kith_stanza_t *item, *grp;

    snprintf(jid, sizeof(jid), "contact%zu@example.com", i);
    assert_int_equal(kith_stanza_add_element(query, "item", NULL, &item),
                     KITH_OK);
    assert_int_equal(kith_stanza_set_attr(item, "jid", jid), KITH_OK);
    assert_int_equal(kith_stanza_set_attr(item, "subscription", "both"),
                     KITH_OK);
    assert_int_equal(kith_stanza_add_element(item, "group", NULL, &grp),
                     KITH_OK);
    assert_int_equal(kith_stanza_add_text(grp, i % 2 ? "Odd" : "Even"),
                     KITH_OK);
  }
  assert_int_equal(
      kith__wire_roster_foreach(NULL, iq, count_item, &seen, &info), KITH_OK);
  assert_int_equal(seen, 20000);
  assert_int_equal(info.count, 20000);
  kith_stanza_free(iq);
}

/*
 * The walk allocates scratch space once, not per item, when the server
 * sends normalized JIDs (it does); a JID that needs normalizing costs one
 * allocation.
 */
static kith_status_t nop_item(void *ud, const kith__wire_item_view_t *it)
{
  (void)it;
  (*(size_t *)ud)++;
  return KITH_OK;
}

static void count_walk_allocs(const char *fmt, long *allocs)
{
  struct counting c = {0, 0, 0, 0};
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &c};
  kith__wire_roster_info_t info;
  kith_stanza_t *iq, *query;
  kith_ctx_t *ctx;
  size_t i, seen = 0;
  char jid[48];

  assert_int_equal(kith_stanza_new(NULL, "iq", NULL, &iq), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(iq, "type", "result"), KITH_OK);
  assert_int_equal(kith_stanza_add_element(iq, "query", KITH_NS_ROSTER, &query),
                   KITH_OK);
  for (i = 0; i < 1000; i++) {
    kith_stanza_t *item, *grp;

    snprintf(jid, sizeof(jid), fmt, i);
    assert_int_equal(kith_stanza_add_element(query, "item", NULL, &item),
                     KITH_OK);
    assert_int_equal(kith_stanza_set_attr(item, "jid", jid), KITH_OK);
    assert_int_equal(kith_stanza_add_element(item, "group", NULL, &grp),
                     KITH_OK);
    assert_int_equal(kith_stanza_add_text(grp, "G"), KITH_OK);
  }
  assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
  c.allocs = 0;
  assert_int_equal(kith__wire_roster_foreach(ctx, iq, nop_item, &seen, &info),
                   KITH_OK);
  assert_int_equal(seen, 1000);
  *allocs = c.allocs;
  kith_ctx_free(ctx);
  assert_int_equal(c.live, 0);
  kith_stanza_free(iq);
}

static void test_result_allocations(void **state)
{
  long allocs = 0;

  (void)state;
  count_walk_allocs("contact%zu@example.com", &allocs);
  assert_int_equal(allocs, 1); /* the group list, once */
  count_walk_allocs("Contact%zu@example.com", &allocs);
  assert_int_equal(allocs, 1 + 1000);
}

/* ------------------------------------------------------------------ */
/* Roster pushes                                                       */

static const char *const push_body =
    "<query xmlns='jabber:iq:roster' ver='ver14'>"
    "<item jid='Nurse@Example.com' name='Nurse' subscription='none'>"
    "<group>Servants</group></item></query></iq>";

static kith_status_t push_with(const char *head, int accept_full,
                               kith__wire_item_t *item, const char **ver,
                               kith__wire_reject_t *rej)
{
  static char ver_copy[64];
  char xml[1024];
  kith_stanza_t *iq;
  kith_status_t st;

  snprintf(xml, sizeof(xml), "%s%s", head, push_body);
  iq = parse(xml);
  st = kith__wire_check_push(NULL, iq, OWN_BARE, OWN_FULL, accept_full, item,
                             ver, rej);
  /* 'ver' is borrowed from the stanza, which goes now. */
  if (ver && *ver) {
    snprintf(ver_copy, sizeof(ver_copy), "%s", *ver);
    *ver = ver_copy;
  }
  kith_stanza_free(iq);
  return st;
}

static void test_push_accepted(void **state)
{
  static const char *const heads[] = {
      /* No 'from': implicitly from the account (RFC 6121 2.1.6). */
      "<iq type='set' id='p1'>",
      "<iq to='alice@example.com/kith' type='set' id='p1'>",
      /* The bare JID, also spelled differently. */
      "<iq from='alice@example.com' type='set' id='p1'>",
      "<iq from='ALICE@Example.COM' type='set' id='p1'>",
      "<iq from='alice@example.com.' type='set' id='p1'>",
  };
  kith__wire_reject_t rej;
  kith__wire_item_t item;
  const char *ver = NULL;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
    assert_int_equal(push_with(heads[i], 0, &item, NULL, &rej), KITH_OK);
    assert_string_equal(item.jid, "nurse@example.com");
    assert_string_equal(item.name, "Nurse");
    assert_groups(&item, 1, "Servants");
    assert_int_equal(item.subscription, KITH__WIRE_SUB_NONE);
    assert_null(rej.condition);
    kith__wire_item_clear(NULL, &item);
  }
  /* The own full JID only with the option, and only that resource. */
  assert_int_equal(
      push_with("<iq from='alice@example.com/kith' type='set' id='p1'>", 1,
                &item, &ver, &rej),
      KITH_OK);
  assert_string_equal(ver, "ver14");
  kith__wire_item_clear(NULL, &item);
  assert_int_equal(
      push_with("<iq from='Alice@example.com/kith' type='set' id='p1'>", 1,
                &item, NULL, &rej),
      KITH_OK);
  kith__wire_item_clear(NULL, &item);
}

static void test_push_rejected(void **state)
{
  static const struct {
    const char *head; /* the iq start tag; push_body follows */
    int accept_full;
    const char *type, *condition;
    int may_ignore;
  } cases[] = {
      /* Unauthorized senders (RFC 6121 2.1.6). */
      {"<iq from='bob@example.com' type='set' id='p'>", 0, "cancel",
       "service-unavailable", 1},
      {"<iq from='alice@evil.example' type='set' id='p'>", 0, "cancel",
       "service-unavailable", 1},
      {"<iq from='example.com' type='set' id='p'>", 0, "cancel",
       "service-unavailable", 1},
      {"<iq from='alice@example.com/kith' type='set' id='p'>", 0, "cancel",
       "service-unavailable", 1},
      {"<iq from='alice@example.com/other' type='set' id='p'>", 1, "cancel",
       "service-unavailable", 1},
      {"<iq from='alice@example.com/Kith' type='set' id='p'>", 1, "cancel",
       "service-unavailable", 1},
      {"<iq from='@example.com' type='set' id='p'>", 0, "cancel",
       "service-unavailable", 1},
      /* Not a push. */
      {"<iq type='get' id='p'>", 0, "cancel", "service-unavailable", 0},
      {"<iq type='bogus' id='p'>", 0, "modify", "bad-request", 0},
      {"<iq id='p'>", 0, "modify", "bad-request", 0},
      {"<iq type='result' id='p'>", 0, NULL, NULL, 0},
      {"<iq type='error' id='p'>", 0, NULL, NULL, 0},
      {"<iq type='set'>", 0, NULL, NULL, 0},
  };
  kith__wire_reject_t rej;
  kith__wire_item_t item;
  const char *ver;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ver = "x";
    assert_int_equal(
        push_with(cases[i].head, cases[i].accept_full, &item, &ver, &rej),
        KITH_EPROTO);
    assert_null(item.jid);
    assert_null(ver);
    assert_str(rej.type, cases[i].type);
    assert_str(rej.condition, cases[i].condition);
    assert_int_equal(rej.may_ignore, cases[i].may_ignore);
    assert_non_null(rej.reason);
  }
}

static void test_push_payload_rejected(void **state)
{
  static const struct {
    const char *xml;
    const char *type, *condition;
  } cases[] = {
      /* RFC 6121 2.1.6: one and only one item. */
      {"<iq type='set' id='p'><query xmlns='jabber:iq:roster'>"
       "<item jid='a@example.com'/><item jid='b@example.com'/></query></iq>",
       "modify", "bad-request"},
      {"<iq type='set' id='p'><query xmlns='jabber:iq:roster'/></iq>", "modify",
       "bad-request"},
      {"<iq type='set' id='p'><query xmlns='jabber:iq:roster'>"
       "<other/></query></iq>",
       "modify", "bad-request"},
      /* Wrong namespace, or no query: not a roster push at all. */
      {"<iq type='set' id='p'><query xmlns='jabber:iq:rosterx'>"
       "<item jid='a@example.com'/></query></iq>",
       "cancel", "service-unavailable"},
      {"<iq type='set' id='p'><query><item jid='a@example.com'/></query></iq>",
       "cancel", "service-unavailable"},
      {"<iq type='set' id='p'/>", "cancel", "service-unavailable"},
      /* An invalid item. */
      {"<iq type='set' id='p'><query xmlns='jabber:iq:roster'>"
       "<item jid='a@@example.com'/></query></iq>",
       "modify", "jid-malformed"},
      {"<iq type='set' id='p'><query xmlns='jabber:iq:roster'>"
       "<item name='x'/></query></iq>",
       "modify", "bad-request"},
      {"<iq type='set' id='p'><query xmlns='jabber:iq:roster'>"
       "<item jid='a@example.com' subscription='all'/></query></iq>",
       "modify", "bad-request"},
      /* Not even an iq: never answered. */
      {"<message type='set' id='p'><query xmlns='jabber:iq:roster'>"
       "<item jid='a@example.com'/></query></message>",
       NULL, NULL},
  };
  kith__wire_reject_t rej;
  kith__wire_item_t item;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    kith_stanza_t *iq = parse(cases[i].xml);

    assert_int_equal(
        kith__wire_check_push(NULL, iq, OWN_BARE, NULL, 0, &item, NULL, &rej),
        KITH_EPROTO);
    assert_str(rej.type, cases[i].type);
    assert_str(rej.condition, cases[i].condition);
    assert_int_equal(rej.may_ignore, 0);
    assert_null(item.jid);
    kith_stanza_free(iq);
  }
}

static void test_push_remove_and_args(void **state)
{
  kith__wire_reject_t rej;
  kith__wire_item_t item;
  const char *ver = NULL;
  kith_stanza_t *iq;

  (void)state;
  iq = parse("<iq type='set' id='p'><query xmlns='jabber:iq:roster' ver='2'>"
             "<item jid='bob@localhost' subscription='remove'/></query></iq>");
  assert_int_equal(kith__wire_check_push(NULL, iq, "alice@localhost", NULL, 0,
                                         &item, &ver, &rej),
                   KITH_OK);
  assert_int_equal(item.subscription, KITH__WIRE_SUB_REMOVE);
  assert_string_equal(ver, "2");
  kith__wire_item_clear(NULL, &item);
  kith__wire_item_clear(NULL, &item); /* twice is fine */
  kith__wire_item_clear(NULL, NULL);

  /* Bad own JIDs and missing arguments. */
  assert_int_equal(
      kith__wire_check_push(NULL, iq, "@bad", NULL, 0, &item, NULL, &rej),
      KITH_EINVAL);
  assert_int_equal(
      kith__wire_check_push(NULL, iq, OWN_BARE, "bad@", 1, &item, NULL, &rej),
      KITH_EINVAL);
  assert_int_equal(
      kith__wire_check_push(NULL, iq, NULL, NULL, 0, &item, NULL, &rej),
      KITH_EINVAL);
  assert_int_equal(
      kith__wire_check_push(NULL, iq, OWN_BARE, NULL, 0, NULL, NULL, &rej),
      KITH_EINVAL);
  assert_int_equal(
      kith__wire_check_push(NULL, iq, OWN_BARE, NULL, 0, &item, NULL, NULL),
      KITH_EINVAL);
  assert_int_equal(
      kith__wire_check_push(NULL, NULL, OWN_BARE, NULL, 0, &item, NULL, &rej),
      KITH_EINVAL);
  kith_stanza_free(iq);
}

/* Push, answer: the reply a rejected push gets, exactly. */
static void test_push_reply(void **state)
{
  kith__wire_reject_t rej;
  kith__wire_item_t item;
  kith_stanza_t *iq, *reply;

  (void)state;
  iq = parse("<iq from='bob@example.com' to='alice@example.com/kith'"
             " type='set' id='p1'><query xmlns='jabber:iq:roster'>"
             "<item jid='eve@example.com'/></query></iq>");
  assert_int_equal(
      kith__wire_check_push(NULL, iq, OWN_BARE, OWN_FULL, 0, &item, NULL, &rej),
      KITH_EPROTO);
  assert_int_equal(
      kith__wire_build_error(NULL, iq, rej.type, rej.condition, &reply),
      KITH_OK);
  assert_xml(reply, "<iq type='error' id='p1' to='bob@example.com'"
                    " from='alice@example.com/kith'><error type='cancel'>"
                    "<service-unavailable xmlns='" ERRNS "'/></error></iq>");
  assert_string_equal(kith_stanza_error_condition(reply),
                      "service-unavailable");
  kith_stanza_free(reply);
  kith_stanza_free(iq);
}

/* ------------------------------------------------------------------ */
/* The Prosody transcripts                                             */

/*
 * Every server record of the login transcript that is a roster stanza
 * reads as it should: the versioned empty roster, the push after a set,
 * the "unchanged" result, and the remove push.
 */
static void test_transcript_login(void **state)
{
  char *text = read_data("transcripts/prosody-c2s-login.txt");
  char *line, *save = NULL;
  int results = 0, unchanged = 0, pushes = 0, removes = 0;

  (void)state;
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    const char *p;

    if (strncmp(line, "S: <iq", 6) != 0)
      continue;
    for (p = line + 3; *p == '<'; p += element_len(p)) {
      size_t len = element_len(p);
      kith_stanza_t *st = NULL;
      kith__wire_reject_t rej;
      kith__wire_item_t item;
      kith__wire_roster_info_t info;
      struct visit v = {0, 0, ""};
      const char *ver = NULL;

      assert_int_equal(kith_stanza_parse(NULL, p, len, &st), KITH_OK);
      if (strcmp(kith_stanza_type(st), "set") == 0) {
        assert_int_equal(kith__wire_check_push(NULL, st, "alice@localhost",
                                               "alice@localhost/kith", 0, &item,
                                               &ver, &rej),
                         KITH_OK);
        assert_string_equal(item.jid, "bob@localhost");
        if (item.subscription == KITH__WIRE_SUB_REMOVE) {
          removes++;
          assert_string_equal(ver, "2");
        } else {
          pushes++;
          assert_string_equal(ver, "1");
          assert_string_equal(item.name, "Bob");
          assert_groups(&item, 1, "Friends");
          assert_int_equal(item.subscription, KITH__WIRE_SUB_NONE);
        }
        kith__wire_item_clear(NULL, &item);
      } else if (strcmp(kith_stanza_id(st), "bind1") == 0) {
        /* Not every result is a roster result. */
        assert_int_equal(
            kith__wire_roster_foreach(NULL, st, visit_item, &v, &info),
            KITH_EPROTO);
      } else {
        assert_int_equal(
            kith__wire_roster_foreach(NULL, st, visit_item, &v, &info),
            KITH_OK);
        assert_int_equal(v.calls, 0);
        if (info.unchanged)
          unchanged++;
        else {
          results++;
          assert_string_equal(info.ver, "1");
        }
      }
      kith_stanza_free(st);
    }
  }
  assert_int_equal(results, 1);
  assert_true(unchanged >= 1);
  assert_int_equal(pushes, 1);
  assert_int_equal(removes, 1);
  free(text);
}

/* What the client sent in the login transcript, rebuilt byte for byte. */
static void test_transcript_client_requests(void **state)
{
  static const char *const groups[] = {"Friends"};
  char *text = read_data("transcripts/prosody-c2s-login.txt");
  char *subs = read_data("transcripts/prosody-subscriptions.txt");
  kith_stanza_t *st;
  char *xml;

  (void)state;
  assert_int_equal(kith__wire_build_roster_get(NULL, "", &st), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "id", "roster1"), KITH_OK);
  assert_int_equal(kith_stanza_to_string(st, NULL, &xml, NULL), KITH_OK);
  assert_non_null(strstr(text, xml));
  kith_free(NULL, xml);
  kith_stanza_free(st);

  assert_int_equal(kith__wire_build_roster_get(NULL, "1", &st), KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "id", "roster3"), KITH_OK);
  assert_xml(st, "<iq type='get' id='roster3'>"
                 "<query xmlns='jabber:iq:roster' ver='1'/></iq>");
  assert_int_equal(kith_stanza_to_string(st, NULL, &xml, NULL), KITH_OK);
  assert_non_null(strstr(text, xml));
  kith_free(NULL, xml);
  kith_stanza_free(st);

  assert_int_equal(kith__wire_build_roster_set(NULL, "bob@localhost", "Bob",
                                               groups, 1, NULL, &st),
                   KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "id", "roster2"), KITH_OK);
  assert_int_equal(kith_stanza_to_string(st, NULL, &xml, NULL), KITH_OK);
  assert_non_null(strstr(text, xml));
  kith_free(NULL, xml);
  kith_stanza_free(st);

  assert_int_equal(kith__wire_build_roster_set(NULL, "bob@localhost", NULL,
                                               NULL, 0, "remove", &st),
                   KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "id", "roster4"), KITH_OK);
  assert_xml(st, "<iq type='set' id='roster4'><query xmlns='jabber:iq:roster'>"
                 "<item jid='bob@localhost' subscription='remove'/>"
                 "</query></iq>");
  assert_int_equal(kith_stanza_to_string(st, NULL, &xml, NULL), KITH_OK);
  assert_non_null(strstr(text, xml));
  kith_free(NULL, xml);
  kith_stanza_free(st);

  assert_int_equal(kith__wire_build_subscription(NULL, "dave@localhost",
                                                 KITH__WIRE_PT_SUBSCRIBE, NULL,
                                                 NULL, &st),
                   KITH_OK);
  assert_int_equal(kith_stanza_to_string(st, NULL, &xml, NULL), KITH_OK);
  assert_string_equal(xml, "<presence to='dave@localhost' type='subscribe'/>");
  assert_non_null(strstr(subs, xml));
  kith_free(NULL, xml);
  kith_stanza_free(st);
  free(subs);
  free(text);
}

/*
 * The two-client subscription transcript: every push the server sent is
 * accepted for the connection it went to, every presence parses, and the
 * available presences carry show and priority.
 */
static void check_subscription_stanza(const kith_stanza_t *st,
                                      const char *owner, int *pushes,
                                      int *available)
{
  kith__wire_presence_t pr;
  kith__wire_reject_t rej;
  kith__wire_item_t item;
  char bare[64];

  snprintf(bare, sizeof(bare), "%s@localhost", owner);
  if (strcmp(kith_stanza_name(st), "iq") == 0 &&
      strcmp(kith_stanza_type(st), "result") == 0) {
    /* The replies to roster sets: not pushes, never answered. */
    assert_int_equal(
        kith__wire_check_push(NULL, st, bare, NULL, 0, &item, NULL, &rej),
        KITH_EPROTO);
    assert_null(rej.condition);
    return;
  }
  if (strcmp(kith_stanza_name(st), "iq") == 0) {
    assert_int_equal(
        kith__wire_check_push(NULL, st, bare, NULL, 0, &item, NULL, &rej),
        KITH_OK);
    /* Each owner's roster holds the other one. */
    assert_string_equal(item.jid, strcmp(owner, "carol") == 0
                                      ? "dave@localhost"
                                      : "carol@localhost");
    kith__wire_item_clear(NULL, &item);
    (*pushes)++;
    return;
  }
  assert_int_equal(kith__wire_parse_presence(NULL, st, &pr, NULL), KITH_OK);
  assert_string_equal(pr.to, bare);
  assert_non_null(pr.from_bare);
  assert_true(strcmp(pr.from_bare, bare) != 0);
  if (pr.type == KITH__WIRE_PT_AVAILABLE) {
    assert_string_equal(pr.resource, "r");
    assert_int_equal(pr.show, KITH_SHOW_CHAT);
    assert_int_equal(pr.priority, 5);
    (*available)++;
  }
  kith__wire_presence_clear(&pr);
}

static void test_transcript_subscriptions(void **state)
{
  char *text = read_data("transcripts/prosody-subscriptions.txt");
  char *line, *save = NULL;
  int pushes = 0, available = 0, stanzas = 0;

  (void)state;
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char owner[16];
    const char *p;

    if (sscanf(line, "S[%15[a-z]]: ", owner) != 1)
      continue;
    /* Stanzas only, not the stream's end tag. */
    p = strchr(line, ' ') + 1;
    for (; p[0] == '<' && p[1] != '/'; p += element_len(p)) {
      kith_stanza_t *st = NULL;

      assert_int_equal(kith_stanza_parse(NULL, p, element_len(p), &st),
                       KITH_OK);
      check_subscription_stanza(st, owner, &pushes, &available);
      kith_stanza_free(st);
      stanzas++;
    }
  }
  assert_true(pushes >= 6);
  assert_true(available >= 4);
  assert_true(stanzas > pushes + available);
  free(text);
}

/* ------------------------------------------------------------------ */
/* Builders                                                            */

static void test_build_roster_get(void **state)
{
  kith_stanza_t *st = (kith_stanza_t *)1;

  (void)state;
  assert_int_equal(kith__wire_build_roster_get(NULL, NULL, &st), KITH_OK);
  assert_xml(st, "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>");
  kith_stanza_free(st);
  assert_int_equal(kith__wire_build_roster_get(NULL, "", &st), KITH_OK);
  assert_xml(st,
             "<iq type='get'><query xmlns='jabber:iq:roster' ver=''/></iq>");
  kith_stanza_free(st);
  assert_int_equal(kith__wire_build_roster_get(NULL, "v'1&2", &st), KITH_OK);
  assert_xml(st, "<iq type='get'><query xmlns='jabber:iq:roster'"
                 " ver='v&apos;1&amp;2'/></iq>");
  kith_stanza_free(st);
  assert_int_equal(kith__wire_build_roster_get(NULL, NULL, NULL), KITH_EINVAL);
}

static void test_build_roster_set(void **state)
{
  static const char *const groups[] = {"Servants", "A&B", "Servants", "<x>",
                                       "A&B"};
  static const char *const empty[] = {"ok", ""};
  static const char *const null_group[] = {"ok", NULL};
  kith_stanza_t *st = (kith_stanza_t *)1;

  (void)state;
  assert_int_equal(kith__wire_build_roster_set(NULL, "Nurse@Example.COM/res",
                                               "Ben & Jerry's \"<3\"", groups,
                                               5, NULL, &st),
                   KITH_OK);
  assert_xml(st, "<iq type='set'><query xmlns='jabber:iq:roster'>"
                 "<item jid='nurse@example.com'"
                 " name='Ben &amp; Jerry&apos;s &quot;&lt;3&quot;'>"
                 "<group>Servants</group><group>A&amp;B</group>"
                 "<group>&lt;x&gt;</group></item></query></iq>");
  kith_stanza_free(st);

  /* No name, no groups. */
  assert_int_equal(kith__wire_build_roster_set(NULL, "bob@localhost", "", NULL,
                                               0, NULL, &st),
                   KITH_OK);
  assert_xml(st, "<iq type='set'><query xmlns='jabber:iq:roster'>"
                 "<item jid='bob@localhost'/></query></iq>");
  kith_stanza_free(st);

  /* Remove sends only the jid (name and groups are not looked at). */
  assert_int_equal(kith__wire_build_roster_set(NULL, "bob@localhost", "Bob",
                                               empty, 2, "remove", &st),
                   KITH_OK);
  assert_xml(st, "<iq type='set'><query xmlns='jabber:iq:roster'>"
                 "<item jid='bob@localhost' subscription='remove'/>"
                 "</query></iq>");
  kith_stanza_free(st);

  /* Refused. */
  assert_int_equal(kith__wire_build_roster_set(NULL, "bob@localhost", NULL,
                                               empty, 2, NULL, &st),
                   KITH_EINVAL);
  assert_null(st);
  assert_int_equal(kith__wire_build_roster_set(NULL, "bob@localhost", NULL,
                                               null_group, 2, NULL, &st),
                   KITH_EINVAL);
  assert_int_equal(kith__wire_build_roster_set(NULL, "bob@localhost", NULL,
                                               NULL, 1, NULL, &st),
                   KITH_EINVAL);
  assert_int_equal(kith__wire_build_roster_set(NULL, "bob@localhost", NULL,
                                               NULL, 0, "both", &st),
                   KITH_EINVAL);
  assert_int_equal(
      kith__wire_build_roster_set(NULL, NULL, NULL, NULL, 0, NULL, &st),
      KITH_EINVAL);
  assert_int_equal(
      kith__wire_build_roster_set(NULL, "bob@", NULL, NULL, 0, NULL, &st),
      KITH_EJID);
  assert_null(st);
  assert_int_equal(kith__wire_build_roster_set(NULL, "bob@localhost", NULL,
                                               NULL, 0, NULL, NULL),
                   KITH_EINVAL);
}

/* Built, serialized, parsed again, read back: the same item. */
static void test_roster_set_round_trip(void **state)
{
  static const char *const groups[] = {"Family", "Caf\xC3\xA9 & co", "Family"};
  kith__wire_reject_t rej;
  kith__wire_item_t item;
  kith_stanza_t *st, *back;
  char *xml;

  (void)state;
  assert_int_equal(kith__wire_build_roster_set(NULL, "Mum@Home.example",
                                               "M\xC3\xBCm <3", groups, 3, NULL,
                                               &st),
                   KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "id", "push7"), KITH_OK);
  assert_int_equal(kith_stanza_to_string(st, NULL, &xml, NULL), KITH_OK);
  back = parse(xml);
  assert_int_equal(
      kith__wire_check_push(NULL, back, OWN_BARE, NULL, 0, &item, NULL, &rej),
      KITH_OK);
  assert_string_equal(item.jid, "mum@home.example");
  assert_string_equal(item.name, "M\xC3\xBCm <3");
  assert_groups(&item, 2, "Family", "Caf\xC3\xA9 & co");
  assert_int_equal(item.subscription, KITH__WIRE_SUB_NONE);
  kith__wire_item_clear(NULL, &item);
  kith_stanza_free(back);
  kith_free(NULL, xml);
  kith_stanza_free(st);
}

static void test_build_result_and_error(void **state)
{
  kith_stanza_t *req, *st = (kith_stanza_t *)1;

  (void)state;
  req = parse("<iq from='alice@example.com' to='alice@example.com/kith'"
              " type='set' id='push1'><query xmlns='jabber:iq:roster'/></iq>");
  assert_int_equal(kith__wire_build_result(NULL, req, &st), KITH_OK);
  assert_xml(st, "<iq type='result' id='push1' to='alice@example.com'"
                 " from='alice@example.com/kith'/>");
  kith_stanza_free(st);
  assert_int_equal(
      kith__wire_build_error(NULL, req, "modify", "bad-request", &st), KITH_OK);
  assert_xml(st, "<iq type='error' id='push1' to='alice@example.com'"
                 " from='alice@example.com/kith'><error type='modify'>"
                 "<bad-request xmlns='" ERRNS "'/></error></iq>");
  kith_stanza_free(st);
  assert_int_equal(kith__wire_build_error(NULL, req, "modify", "bad", &st),
                   KITH_EINVAL);
  assert_null(st);
  assert_int_equal(
      kith__wire_build_error(NULL, req, "oops", "bad-request", &st),
      KITH_EINVAL);
  kith_stanza_free(req);

  /* No addresses: none in the reply either. */
  req = parse("<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
  assert_int_equal(kith__wire_build_result(NULL, req, &st), KITH_OK);
  assert_xml(st, "<iq type='result' id='g'/>");
  kith_stanza_free(st);
  kith_stanza_free(req);

  /* A presence can get an error too; an error never gets one. */
  req = parse("<presence from='x@example.com/r' type='subscribe'/>");
  assert_int_equal(kith__wire_build_result(NULL, req, &st), KITH_EINVAL);
  assert_int_equal(kith__wire_build_error(NULL, req, "auth", "forbidden", &st),
                   KITH_OK);
  assert_xml(st, "<presence type='error' to='x@example.com/r'>"
                 "<error type='auth'><forbidden xmlns='" ERRNS "'/>"
                 "</error></presence>");
  kith_stanza_free(st);
  kith_stanza_free(req);

  static const char *const unanswerable[] = {
      "<iq type='result' id='r'/>",
      "<iq type='error' id='r'/>",
      "<iq type='set'/>",
      "<presence type='error'/>",
      "<message type='error' id='m'/>",
      "<stream-thing/>",
  };
  for (size_t i = 0; i < sizeof(unanswerable) / sizeof(unanswerable[0]); i++) {
    req = parse(unanswerable[i]);
    assert_int_equal(kith__wire_build_result(NULL, req, &st), KITH_EINVAL);
    assert_int_equal(
        kith__wire_build_error(NULL, req, "cancel", "bad-request", &st),
        KITH_EINVAL);
    assert_null(st);
    kith_stanza_free(req);
  }
  assert_int_equal(kith__wire_build_result(NULL, NULL, &st), KITH_EINVAL);
  assert_int_equal(
      kith__wire_build_error(NULL, NULL, "cancel", "bad-request", &st),
      KITH_EINVAL);
}

static void test_build_presence(void **state)
{
  kith_stanza_t *st = (kith_stanza_t *)1;

  (void)state;
  assert_int_equal(kith__wire_build_presence(
                       NULL, NULL, KITH__WIRE_PT_AVAILABLE, NULL,
                       KITH_SHOW_AVAILABLE, NULL, KITH__WIRE_NO_PRIORITY, &st),
                   KITH_OK);
  assert_xml(st, "<presence/>");
  kith_stanza_free(st);

  assert_int_equal(
      kith__wire_build_presence(NULL, NULL, KITH__WIRE_PT_AVAILABLE, NULL,
                                KITH_SHOW_AWAY, "Out & about", 5, &st),
      KITH_OK);
  assert_xml(st, "<presence><show>away</show><status>Out &amp; about</status>"
                 "<priority>5</priority></presence>");
  kith_stanza_free(st);

  /* A component's directed presence: both addresses, normalized. */
  assert_int_equal(kith__wire_build_presence(
                       NULL, "Carol@LocalHost/R", KITH__WIRE_PT_AVAILABLE,
                       "Bot@GW.example", KITH_SHOW_CHAT, "", -128, &st),
                   KITH_OK);
  assert_xml(st, "<presence to='carol@localhost/R' from='bot@gw.example'>"
                 "<show>chat</show><priority>-128</priority></presence>");
  kith_stanza_free(st);

  /* Priority out of range is left out, as is show UNAVAILABLE. */
  assert_int_equal(
      kith__wire_build_presence(NULL, NULL, KITH__WIRE_PT_AVAILABLE, NULL,
                                KITH_SHOW_UNAVAILABLE, NULL, 128, &st),
      KITH_OK);
  assert_xml(st, "<presence/>");
  kith_stanza_free(st);

  assert_int_equal(
      kith__wire_build_presence(NULL, NULL, KITH__WIRE_PT_UNAVAILABLE, NULL,
                                KITH_SHOW_UNAVAILABLE, "Gone", 3, &st),
      KITH_OK);
  assert_xml(st, "<presence type='unavailable'><status>Gone</status>"
                 "</presence>");
  kith_stanza_free(st);

  /* A probe carries nothing but its addresses. */
  assert_int_equal(kith__wire_build_presence(
                       NULL, "dave@localhost", KITH__WIRE_PT_PROBE,
                       "bot@gw.example", KITH_SHOW_AVAILABLE, "hi", 1, &st),
                   KITH_OK);
  assert_xml(st, "<presence to='dave@localhost' type='probe'"
                 " from='bot@gw.example'/>");
  kith_stanza_free(st);

  /* Refused. */
  assert_int_equal(kith__wire_build_presence(NULL, NULL,
                                             KITH__WIRE_PT_SUBSCRIBE, NULL,
                                             KITH_SHOW_AVAILABLE, NULL, 0, &st),
                   KITH_EINVAL);
  assert_null(st);
  assert_int_equal(kith__wire_build_presence(NULL, NULL, KITH__WIRE_PT_ERROR,
                                             NULL, KITH_SHOW_AVAILABLE, NULL, 0,
                                             &st),
                   KITH_EINVAL);
  assert_int_equal(kith__wire_build_presence(NULL, NULL,
                                             KITH__WIRE_PT_UNAVAILABLE, NULL,
                                             KITH_SHOW_DND, NULL, 0, &st),
                   KITH_EINVAL);
  assert_int_equal(kith__wire_build_presence(NULL, NULL,
                                             KITH__WIRE_PT_AVAILABLE, NULL, 6,
                                             NULL, 0, &st),
                   KITH_EINVAL);
  assert_int_equal(kith__wire_build_presence(NULL, NULL, -1, NULL,
                                             KITH_SHOW_AVAILABLE, NULL, 0, &st),
                   KITH_EINVAL);
  assert_int_equal(kith__wire_build_presence(NULL, "bad@", 0, NULL,
                                             KITH_SHOW_AVAILABLE, NULL, 0, &st),
                   KITH_EJID);
  assert_null(st);
  assert_int_equal(kith__wire_build_presence(NULL, NULL, 0, "@bad",
                                             KITH_SHOW_AVAILABLE, NULL, 0, &st),
                   KITH_EJID);
  assert_int_equal(kith__wire_build_presence(
                       NULL, NULL, 0, NULL, KITH_SHOW_AVAILABLE, NULL, 0, NULL),
                   KITH_EINVAL);
}

static void test_build_subscription(void **state)
{
  static const char *const types[] = {"subscribe", "subscribed", "unsubscribe",
                                      "unsubscribed"};
  kith_stanza_t *st = (kith_stanza_t *)1;
  char want[160];
  int t;

  (void)state;
  /* XEP-0172: the nick travels with the request. */
  assert_int_equal(kith__wire_build_subscription(NULL, "Dave@LocalHost/r",
                                                 KITH__WIRE_PT_SUBSCRIBE,
                                                 "Carol & Co", NULL, &st),
                   KITH_OK);
  assert_xml(st, "<presence to='dave@localhost' type='subscribe'>"
                 "<nick xmlns='http://jabber.org/protocol/nick'>"
                 "Carol &amp; Co</nick></presence>");
  kith_stanza_free(st);

  for (t = KITH__WIRE_PT_SUBSCRIBE; t <= KITH__WIRE_PT_UNSUBSCRIBED; t++) {
    assert_int_equal(kith__wire_build_subscription(NULL, "dave@localhost", t,
                                                   "", "bot@gw.example", &st),
                     KITH_OK);
    snprintf(want, sizeof(want),
             "<presence to='dave@localhost' type='%s' from='bot@gw.example'/>",
             types[t - KITH__WIRE_PT_SUBSCRIBE]);
    assert_xml(st, want);
    kith_stanza_free(st);
  }
  assert_int_equal(kith__wire_build_subscription(NULL, "dave@localhost",
                                                 KITH__WIRE_PT_SUBSCRIBED,
                                                 "Bot", NULL, &st),
                   KITH_OK);
  assert_xml(st, "<presence to='dave@localhost' type='subscribed'>"
                 "<nick xmlns='http://jabber.org/protocol/nick'>Bot</nick>"
                 "</presence>");
  kith_stanza_free(st);

  assert_int_equal(kith__wire_build_subscription(NULL, "dave@localhost",
                                                 KITH__WIRE_PT_AVAILABLE, NULL,
                                                 NULL, &st),
                   KITH_EINVAL);
  assert_null(st);
  assert_int_equal(kith__wire_build_subscription(NULL, "dave@localhost",
                                                 KITH__WIRE_PT_PROBE, NULL,
                                                 NULL, &st),
                   KITH_EINVAL);
  assert_int_equal(kith__wire_build_subscription(
                       NULL, NULL, KITH__WIRE_PT_SUBSCRIBE, NULL, NULL, &st),
                   KITH_EINVAL);
  assert_int_equal(kith__wire_build_subscription(
                       NULL, "dave@", KITH__WIRE_PT_SUBSCRIBE, NULL, NULL, &st),
                   KITH_EJID);
  assert_int_equal(kith__wire_build_subscription(NULL, "dave@localhost",
                                                 KITH__WIRE_PT_SUBSCRIBE, NULL,
                                                 "bad@", &st),
                   KITH_EJID);
  assert_null(st);
}

/* Built, serialized, parsed again, read back: the same presence. */
static void test_presence_round_trip(void **state)
{
  kith__wire_presence_t pr;
  kith_stanza_t *st, *back;
  char *xml;

  (void)state;
  assert_int_equal(kith__wire_build_presence(NULL, "carol@localhost",
                                             KITH__WIRE_PT_AVAILABLE,
                                             "bot@gw.example/Main",
                                             KITH_SHOW_DND, "Busy <3", -7, &st),
                   KITH_OK);
  assert_int_equal(kith_stanza_to_string(st, NULL, &xml, NULL), KITH_OK);
  back = parse(xml);
  assert_int_equal(kith__wire_parse_presence(NULL, back, &pr, NULL), KITH_OK);
  assert_int_equal(pr.type, KITH__WIRE_PT_AVAILABLE);
  assert_string_equal(pr.from_full, "bot@gw.example/Main");
  assert_string_equal(pr.from_bare, "bot@gw.example");
  assert_string_equal(pr.resource, "Main");
  assert_string_equal(pr.to, "carol@localhost");
  assert_int_equal(pr.show, KITH_SHOW_DND);
  assert_string_equal(pr.status, "Busy <3");
  assert_int_equal(pr.priority, -7);
  assert_null(pr.nick);
  kith__wire_presence_clear(&pr);
  kith_stanza_free(back);
  kith_free(NULL, xml);
  kith_stanza_free(st);

  assert_int_equal(kith__wire_build_subscription(NULL, "carol@localhost",
                                                 KITH__WIRE_PT_SUBSCRIBE,
                                                 "D\xC3\xA1ve", NULL, &st),
                   KITH_OK);
  assert_int_equal(kith_stanza_to_string(st, NULL, &xml, NULL), KITH_OK);
  back = parse(xml);
  assert_int_equal(kith__wire_parse_presence(NULL, back, &pr, NULL), KITH_OK);
  assert_int_equal(pr.type, KITH__WIRE_PT_SUBSCRIBE);
  assert_string_equal(pr.nick, "D\xC3\xA1ve");
  assert_null(pr.from_full);
  kith__wire_presence_clear(&pr);
  kith_stanza_free(back);
  kith_free(NULL, xml);
  kith_stanza_free(st);
}

/* ------------------------------------------------------------------ */
/* Presence parsing                                                    */

static kith_status_t presence_of(const char *xml, kith__wire_presence_t *pr,
                                 const char **reason)
{
  kith_stanza_t *st = parse(xml);
  kith_status_t rc = kith__wire_parse_presence(NULL, st, pr, reason);

  /* Borrowed strings die with the stanza: keep the tests honest by only
   * reading owned fields afterwards, or copying before. */
  kith_stanza_free(st);
  return rc;
}

static void test_presence_types(void **state)
{
  static const char *const attrs[] = {
      "",
      " type='unavailable'",
      " type='subscribe'",
      " type='subscribed'",
      " type='unsubscribe'",
      " type='unsubscribed'",
      " type='probe'",
      " type='error'",
  };
  kith__wire_presence_t pr;
  const char *why;
  char xml[160];
  int i;

  (void)state;
  for (i = 0; i < KITH__WIRE_PT_COUNT; i++) {
    snprintf(xml, sizeof(xml),
             "<presence from='dave@localhost/r' to='carol@localhost'%s/>",
             attrs[i]);
    why = "x";
    assert_int_equal(presence_of(xml, &pr, &why), KITH_OK);
    assert_null(why);
    assert_int_equal(pr.type, i);
    assert_string_equal(pr.from_bare, "dave@localhost");
    assert_int_equal(pr.show, i == KITH__WIRE_PT_UNAVAILABLE
                                  ? KITH_SHOW_UNAVAILABLE
                                  : KITH_SHOW_AVAILABLE);
    assert_int_equal(pr.priority, 0);
    kith__wire_presence_clear(&pr);
  }
  assert_int_equal(presence_of("<presence type='available'/>", &pr, &why),
                   KITH_EPROTO);
  assert_string_equal(why, "unknown presence type");
  assert_null(pr.from_jid_);
  assert_int_equal(presence_of("<presence type='Subscribe'/>", &pr, &why),
                   KITH_EPROTO);
  assert_int_equal(presence_of("<message from='a@b'/>", &pr, &why),
                   KITH_EPROTO);
  assert_string_equal(why, "not a presence");
  assert_int_equal(kith__wire_parse_presence(NULL, NULL, &pr, &why),
                   KITH_EINVAL);

  /* An error presence parses; its condition is in the stanza. */
  {
    kith_stanza_t *st = parse(
        "<presence from='x@example.com' type='error'><error type='cancel'>"
        "<remote-server-not-found xmlns='" ERRNS "'/></error></presence>");

    assert_int_equal(kith__wire_parse_presence(NULL, st, &pr, NULL), KITH_OK);
    assert_int_equal(pr.type, KITH__WIRE_PT_ERROR);
    assert_string_equal(kith_stanza_error_condition(st),
                        "remote-server-not-found");
    kith__wire_presence_clear(&pr);
    kith_stanza_free(st);
  }
}

static void test_presence_addresses(void **state)
{
  kith__wire_presence_t pr;
  const char *why;

  (void)state;
  /* Normalized; the resource keeps its case. */
  assert_int_equal(presence_of("<presence from='Dave@LocalHost/Phone'"
                               " to='CAROL@localhost/Kith'/>",
                               &pr, NULL),
                   KITH_OK);
  assert_string_equal(pr.from_full, "dave@localhost/Phone");
  assert_string_equal(pr.from_bare, "dave@localhost");
  assert_string_equal(pr.resource, "Phone");
  assert_string_equal(pr.to, "carol@localhost/Kith");
  kith__wire_presence_clear(&pr);

  /* A resource may hold '@' and '/'. */
  assert_int_equal(
      presence_of("<presence from='dave@localhost/a@b/c'/>", &pr, NULL),
      KITH_OK);
  assert_string_equal(pr.resource, "a@b/c");
  assert_null(pr.to);
  kith__wire_presence_clear(&pr);

  /* From a bare JID, or a server. */
  assert_int_equal(presence_of("<presence from='dave@localhost'/>", &pr, NULL),
                   KITH_OK);
  assert_string_equal(pr.from_full, "dave@localhost");
  assert_null(pr.resource);
  kith__wire_presence_clear(&pr);
  assert_int_equal(presence_of("<presence from='localhost'/>", &pr, NULL),
                   KITH_OK);
  assert_string_equal(pr.from_bare, "localhost");
  kith__wire_presence_clear(&pr);

  /* No 'from' at all. */
  assert_int_equal(presence_of("<presence type='unavailable'/>", &pr, NULL),
                   KITH_OK);
  assert_null(pr.from_full);
  assert_null(pr.from_bare);
  assert_null(pr.resource);
  kith__wire_presence_clear(&pr);

  /* Invalid addresses are errors, not crashes. */
  assert_int_equal(presence_of("<presence from='@localhost'/>", &pr, &why),
                   KITH_EJID);
  assert_string_equal(why, "'from' is not a valid JID");
  assert_null(pr.from_full);
  assert_int_equal(presence_of("<presence from='dave@localhost/'/>", &pr, &why),
                   KITH_EJID);
  assert_int_equal(
      presence_of("<presence from='dave@localhost' to='a@b@c'/>", &pr, &why),
      KITH_EJID);
  assert_string_equal(why, "'to' is not a valid JID");
  assert_null(pr.from_jid_);
  kith__wire_presence_clear(&pr);
  kith__wire_presence_clear(NULL);
}

static void test_presence_show_status_priority(void **state)
{
  static const struct {
    const char *body;
    int show, priority;
  } cases[] = {
      {"", KITH_SHOW_AVAILABLE, 0},
      {"<show>chat</show>", KITH_SHOW_CHAT, 0},
      {"<show>away</show>", KITH_SHOW_AWAY, 0},
      {"<show>xa</show>", KITH_SHOW_XA, 0},
      {"<show>dnd</show>", KITH_SHOW_DND, 0},
      {"<show/>", KITH_SHOW_AVAILABLE, 0},
      {"<show>busy</show>", KITH_SHOW_AVAILABLE, 0},
      {"<show xmlns='urn:other'>dnd</show>", KITH_SHOW_AVAILABLE, 0},
      {"<show>xa</show><show>dnd</show>", KITH_SHOW_XA, 0},
      {"<priority>5</priority>", KITH_SHOW_AVAILABLE, 5},
      {"<priority>-128</priority>", KITH_SHOW_AVAILABLE, -128},
      {"<priority>127</priority>", KITH_SHOW_AVAILABLE, 127},
      {"<priority>128</priority>", KITH_SHOW_AVAILABLE, 127},
      {"<priority>-129</priority>", KITH_SHOW_AVAILABLE, -128},
      {"<priority>99999999999999999999</priority>", KITH_SHOW_AVAILABLE, 127},
      {"<priority>-99999999999999999999</priority>", KITH_SHOW_AVAILABLE, -128},
      {"<priority> 7 </priority>", KITH_SHOW_AVAILABLE, 7},
      {"<priority>+3</priority>", KITH_SHOW_AVAILABLE, 3},
      {"<priority>-0</priority>", KITH_SHOW_AVAILABLE, 0},
      {"<priority>abc</priority>", KITH_SHOW_AVAILABLE, 0},
      {"<priority>1.5</priority>", KITH_SHOW_AVAILABLE, 0},
      {"<priority>-</priority>", KITH_SHOW_AVAILABLE, 0},
      {"<priority/>", KITH_SHOW_AVAILABLE, 0},
      {"<priority xmlns='urn:other'>9</priority>", KITH_SHOW_AVAILABLE, 0},
  };
  kith__wire_presence_t pr;
  char xml[256];
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    snprintf(xml, sizeof(xml), "<presence from='d@l/r'>%s</presence>",
             cases[i].body);
    assert_int_equal(presence_of(xml, &pr, NULL), KITH_OK);
    if (pr.show != cases[i].show || pr.priority != cases[i].priority)
      fail_msg("%s: show %d priority %d", cases[i].body, pr.show, pr.priority);
    kith__wire_presence_clear(&pr);
  }
  /* Show means nothing on other types. */
  assert_int_equal(
      presence_of("<presence type='unavailable'><show>dnd</show></presence>",
                  &pr, NULL),
      KITH_OK);
  assert_int_equal(pr.show, KITH_SHOW_UNAVAILABLE);
  kith__wire_presence_clear(&pr);
}

static void test_presence_status_and_nick(void **state)
{
  kith__wire_presence_t pr;
  kith_stanza_t *st;

  (void)state;
  /* The status without xml:lang wins; else the first. */
  st = parse("<presence from='d@l/r' xml:lang='en'>"
             "<status xml:lang='fr'>Parti</status>"
             "<status>Gone &amp; back</status>"
             "<status>Second</status>"
             "<nick xmlns='http://jabber.org/protocol/nick'>D&#xE1;ve</nick>"
             "</presence>");
  assert_int_equal(kith__wire_parse_presence(NULL, st, &pr, NULL), KITH_OK);
  assert_string_equal(pr.status, "Gone & back");
  assert_string_equal(pr.nick, "D\xC3\xA1ve");
  kith__wire_presence_clear(&pr);
  kith_stanza_free(st);

  st = parse("<presence from='d@l/r'>"
             "<status xml:lang='fr'>Parti</status>"
             "<status xml:lang='de'>Weg</status>"
             "<nick>not XEP-0172</nick></presence>");
  assert_int_equal(kith__wire_parse_presence(NULL, st, &pr, NULL), KITH_OK);
  assert_string_equal(pr.status, "Parti");
  assert_null(pr.nick);
  kith__wire_presence_clear(&pr);
  kith_stanza_free(st);

  /* Empty texts are absent. */
  st = parse("<presence from='d@l' type='subscribe'><status/>"
             "<nick xmlns='http://jabber.org/protocol/nick'/></presence>");
  assert_int_equal(kith__wire_parse_presence(NULL, st, &pr, NULL), KITH_OK);
  assert_null(pr.status);
  assert_null(pr.nick);
  kith__wire_presence_clear(&pr);
  kith_stanza_free(st);

  /* Component stream namespace: children in the same namespace count. */
  st = parse("<presence xmlns='jabber:component:accept' from='d@l/r'"
             " to='bot@gw.example'><show>away</show><priority>2</priority>"
             "</presence>");
  assert_int_equal(kith__wire_parse_presence(NULL, st, &pr, NULL), KITH_OK);
  assert_int_equal(pr.show, KITH_SHOW_AWAY);
  assert_int_equal(pr.priority, 2);
  kith__wire_presence_clear(&pr);
  kith_stanza_free(st);
}

/* ------------------------------------------------------------------ */
/* Failing allocator: every allocation in turn                        */

/*
 * One operation under test. It builds its input with `ctx` (while the
 * allocator still counts only), then runs with `ctx` failing the Nth
 * allocation, and frees everything it made, success or not.
 */
typedef kith_status_t (*op_fn)(kith_ctx_t *ctx, struct counting *c);

/* Arm the allocator: from now on, fail allocation number c->fail_at. */
static void arm(struct counting *c, long n)
{
  c->allocs = 0;
  c->failed = 0;
  c->fail_at = n;
}

static long g_fail_at; /* the N of the current round */

static kith_stanza_t *input(kith_ctx_t *ctx, struct counting *c,
                            const char *xml)
{
  kith_stanza_t *st;

  c->fail_at = 0;
  st = parse_in(ctx, xml);
  arm(c, g_fail_at);
  return st;
}

/* A result with everything: a JID that needs normalizing, more groups
 * than the linear limit, a group whose text comes in two pieces. */
static kith_status_t op_parse_result(kith_ctx_t *ctx, struct counting *c)
{
  kith_stanza_t *iq, *grp;
  kith__wire_item_t *items = NULL;
  kith_status_t st;
  size_t n = 0;

  c->fail_at = 0;
  iq = parse_in(ctx, "<iq type='result' id='r'><query xmlns='jabber:iq:roster'"
                     " ver='3'><item jid='Upper@Example.com' name='U'>"
                     "<group>a</group><group>b</group><group>c</group>"
                     "<group>d</group><group>e</group><group>f</group>"
                     "<group>g</group><group>h</group><group>i</group>"
                     "<group>a</group></item><item jid='plain@example.com'/>"
                     "<item jid='bad@'/></query></iq>");
  grp = kith_stanza_first_child(
      kith_stanza_first_child(kith_stanza_first_child(iq)));
  assert_int_equal(kith_stanza_add_text(grp, "-more"), KITH_OK);
  assert_int_equal(kith_stanza_add_element(grp, "x", NULL, NULL), KITH_OK);
  assert_int_equal(kith_stanza_add_text(grp, "-end"), KITH_OK);
  arm(c, g_fail_at);
  st = kith__wire_parse_roster_result(ctx, iq, &items, &n, NULL, NULL, NULL);
  if (st == KITH_OK) {
    assert_int_equal(n, 2);
    assert_string_equal(items[0].jid, "upper@example.com");
    /* "a-more-end" differs from the last "a": ten groups. */
    assert_int_equal(items[0].ngroups, 10);
    assert_string_equal(items[0].groups[0], "a-more-end");
  }
  kith__wire_items_free(ctx, items, n);
  kith_stanza_free(iq);
  return st;
}

static kith_status_t op_check_push(kith_ctx_t *ctx, struct counting *c)
{
  kith_stanza_t *iq = input(
      ctx, c,
      "<iq from='Alice@Example.com/kith' type='set' id='p'>"
      "<query xmlns='jabber:iq:roster' ver='9'><item jid='Bob@Example.com'"
      " name='Bob'><group>x</group><group>y</group></item></query></iq>");
  kith__wire_reject_t rej;
  kith__wire_item_t item;
  kith_status_t st;

  st = kith__wire_check_push(ctx, iq, OWN_BARE, OWN_FULL, 1, &item, NULL, &rej);
  if (st == KITH_OK)
    assert_string_equal(item.jid, "bob@example.com");
  kith__wire_item_clear(ctx, &item);
  kith_stanza_free(iq);
  return st;
}

static kith_status_t op_check_push_refused(kith_ctx_t *ctx, struct counting *c)
{
  kith_stanza_t *iq = input(ctx, c,
                            "<iq from='eve@example.com' type='set' id='p'>"
                            "<query xmlns='jabber:iq:roster'>"
                            "<item jid='bob@example.com'/></query></iq>");
  kith__wire_reject_t rej;
  kith__wire_item_t item;
  kith_status_t st;

  st = kith__wire_check_push(ctx, iq, OWN_BARE, OWN_FULL, 0, &item, NULL, &rej);
  kith_stanza_free(iq);
  /* The refusal is the expected outcome here. */
  return st == KITH_EPROTO ? KITH_OK : st;
}

static kith_status_t op_parse_presence(kith_ctx_t *ctx, struct counting *c)
{
  kith_stanza_t *p = input(ctx, c,
                           "<presence from='Dave@LocalHost/R' to='c@l/k'>"
                           "<show>xa</show><status>s</status>"
                           "<priority>4</priority><nick xmlns='"
                           "http://jabber.org/protocol/nick'>D</nick>"
                           "</presence>");
  kith__wire_presence_t pr;
  kith_status_t st;

  st = kith__wire_parse_presence(ctx, p, &pr, NULL);
  if (st == KITH_OK)
    assert_string_equal(pr.from_full, "dave@localhost/R");
  kith__wire_presence_clear(&pr);
  kith_stanza_free(p);
  return st;
}

static kith_status_t op_builders(kith_ctx_t *ctx, struct counting *c)
{
  static const char *const groups[] = {"a", "b", "a", "c", "d", "e",
                                       "f", "g", "h", "i", "j"};
  kith_stanza_t *st = NULL, *req;
  kith_status_t rc;

  req = input(ctx, c, "<iq from='a@b' to='c@d/e' type='set' id='i'/>");
  rc = kith__wire_build_roster_get(ctx, "", &st);
  kith_stanza_free(st);
  if (rc == KITH_OK)
    rc = kith__wire_build_roster_set(ctx, "X@Example.com", "X", groups, 11,
                                     NULL, &st);
  kith_stanza_free(st);
  if (rc == KITH_OK)
    rc = kith__wire_build_roster_set(ctx, "x@example.com", NULL, NULL, 0,
                                     "remove", &st);
  kith_stanza_free(st);
  if (rc == KITH_OK)
    rc = kith__wire_build_result(ctx, req, &st);
  kith_stanza_free(st);
  if (rc == KITH_OK)
    rc = kith__wire_build_error(ctx, req, "cancel", "service-unavailable", &st);
  kith_stanza_free(st);
  if (rc == KITH_OK)
    rc = kith__wire_build_presence(ctx, "A@B/c", KITH__WIRE_PT_AVAILABLE, "D@E",
                                   KITH_SHOW_DND, "st", 1, &st);
  kith_stanza_free(st);
  if (rc == KITH_OK)
    rc = kith__wire_build_subscription(ctx, "A@B/c", KITH__WIRE_PT_SUBSCRIBE,
                                       "nick", "D@E", &st);
  kith_stanza_free(st);
  kith_stanza_free(req);
  return rc;
}

static void run_failing(op_fn op)
{
  struct counting c = {0, 0, 0, 0};
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &c};
  kith_ctx_t *ctx;
  int failures = 0;

  for (g_fail_at = 1; g_fail_at < 100000; g_fail_at++) {
    kith_status_t st;

    c.fail_at = 0;
    assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
    st = op(ctx, &c);
    c.fail_at = 0;
    kith_ctx_free(ctx);
    if (c.live != 0)
      fail_msg("allocation %ld refused: %ld block(s) leaked", g_fail_at,
               c.live);
    if (!c.failed) {
      assert_int_equal(st, KITH_OK);
      break;
    }
    if (st != KITH_ENOMEM)
      fail_msg("allocation %ld refused: status %s", g_fail_at,
               kith_status_name(st));
    failures++;
  }
  /* The operation allocated, so the loop saw failures before success. */
  assert_true(failures > 0);
}

static void test_failing_allocator(void **state)
{
  (void)state;
  run_failing(op_parse_result);
  run_failing(op_check_push);
  run_failing(op_check_push_refused);
  run_failing(op_parse_presence);
  run_failing(op_builders);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_name_tables),
      cmocka_unit_test(test_result_rfc_example),
      cmocka_unit_test(test_result_unchanged_vs_empty),
      cmocka_unit_test(test_result_not_a_result),
      cmocka_unit_test(test_result_groups),
      cmocka_unit_test(test_result_many_groups),
      cmocka_unit_test(test_result_escaped_names),
      cmocka_unit_test(test_result_invalid_items_skipped),
      cmocka_unit_test(test_foreach_visitor),
      cmocka_unit_test(test_item_jid_paths),
      cmocka_unit_test(test_result_large),
      cmocka_unit_test(test_result_allocations),
      cmocka_unit_test(test_push_accepted),
      cmocka_unit_test(test_push_rejected),
      cmocka_unit_test(test_push_payload_rejected),
      cmocka_unit_test(test_push_remove_and_args),
      cmocka_unit_test(test_push_reply),
      cmocka_unit_test(test_transcript_login),
      cmocka_unit_test(test_transcript_client_requests),
      cmocka_unit_test(test_transcript_subscriptions),
      cmocka_unit_test(test_build_roster_get),
      cmocka_unit_test(test_build_roster_set),
      cmocka_unit_test(test_roster_set_round_trip),
      cmocka_unit_test(test_build_result_and_error),
      cmocka_unit_test(test_build_presence),
      cmocka_unit_test(test_build_subscription),
      cmocka_unit_test(test_presence_round_trip),
      cmocka_unit_test(test_presence_types),
      cmocka_unit_test(test_presence_addresses),
      cmocka_unit_test(test_presence_show_status_priority),
      cmocka_unit_test(test_presence_status_and_nick),
      cmocka_unit_test(test_failing_allocator),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

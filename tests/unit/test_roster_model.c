/*
 * Unit tests: the roster model (src/roster/model.c): nodes, items,
 * normalization, groups, broadcast targets, resources, limits, the change
 * hook, a failing-allocator run and a memory measurement.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kith/roster.h"
#include "kith/stanza.h"
#include "roster/model.h"
#include "roster/subscription.h"

/* ---- A counting allocator that can fail the Nth allocation ------------ */

typedef struct talloc {
  long fail_at;     /* fail this allocation attempt (1-based); 0 never */
  long attempts;    /* allocation attempts (malloc and realloc) */
  long live;        /* live blocks */
  size_t bytes;     /* live bytes requested */
  size_t footprint; /* live bytes as glibc malloc lays them out */
} talloc_t;

/* Each block carries its size in front, so frees can be counted. */
#define HDR 16

/* A glibc chunk: the request plus an 8-byte header, in 16-byte steps,
 * at least 32. Used to report what the heap really holds. */
static size_t chunk_of(size_t n)
{
  size_t c = (n + 8 + 15) & ~(size_t)15;
  return c < 32 ? 32 : c;
}

static void *t_malloc(size_t n, void *ud)
{
  talloc_t *t = ud;
  unsigned char *p;

  if (++t->attempts == t->fail_at)
    return NULL;
  p = malloc(n + HDR);
  if (p == NULL)
    return NULL;
  memcpy(p, &n, sizeof(n));
  t->live++;
  t->bytes += n;
  t->footprint += chunk_of(n);
  return p + HDR;
}

static void t_free(void *ptr, void *ud)
{
  talloc_t *t = ud;
  unsigned char *p = (unsigned char *)ptr - HDR;
  size_t n;

  memcpy(&n, p, sizeof(n));
  t->live--;
  t->bytes -= n;
  t->footprint -= chunk_of(n);
  free(p);
}

static void *t_realloc(void *ptr, size_t n, void *ud)
{
  talloc_t *t = ud;
  unsigned char *q;
  size_t old;

  if (ptr == NULL)
    return t_malloc(n, ud);
  if (++t->attempts == t->fail_at)
    return NULL;
  memcpy(&old, (unsigned char *)ptr - HDR, sizeof(old));
  q = realloc((unsigned char *)ptr - HDR, n + HDR);
  if (q == NULL)
    return NULL;
  memcpy(q, &n, sizeof(n));
  t->bytes += n - old;
  t->footprint += chunk_of(n) - chunk_of(old);
  return q + HDR;
}

static kith_ctx_t *tctx(talloc_t *t)
{
  kith_allocator_t a = {t_malloc, t_realloc, t_free, t};
  kith_ctx_t *ctx = NULL;

  assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
  return ctx;
}

/* ---- Helpers ---------------------------------------------------------- */

static kith_roster_node_t *one_node(kith_roster_t **r, kith_ctx_t *ctx)
{
  kith_roster_node_t *n = NULL;

  assert_int_equal(kith_roster_new(ctx, r), KITH_OK);
  assert_int_equal(kith_roster_add_node(*r, "owner@example.com", &n), KITH_OK);
  return n;
}

static kith_roster_item_t *add(kith_roster_node_t *n, const char *jid,
                               const char *name, const char *const *groups,
                               size_t ngroups)
{
  kith_roster_item_t *it = NULL;

  assert_int_equal(
      kith__roster_item_upsert(n, jid, name, groups, ngroups, &it, NULL),
      KITH_OK);
  assert_non_null(it);
  return it;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Everything observable about a node, as one string (items sorted), so a
 * failed call can be checked to have changed nothing.
 */
static char *snapshot(const kith_roster_node_t *n)
{
  size_t count = kith_roster_node_size(n), cur = 0, i, j, len = 0;
  char **lines = calloc(count + 1, sizeof(char *)), *out;
  kith_roster_item_t *it;

  for (i = 0; (it = kith_roster_node_next(n, &cur)) != NULL; i++) {
    char buf[1024];
    int k = snprintf(
        buf, sizeof(buf), "%s|%s|%u|%d|", kith_roster_item_jid(it),
        kith_roster_item_name(it) ? kith_roster_item_name(it) : "(none)",
        kith_roster_item_flags(it), kith_roster_item_whitelisted(it));
    for (j = 0; j < kith_roster_item_group_count(it); j++)
      k += snprintf(buf + k, sizeof(buf) - (size_t)k, "g=%s,",
                    kith_roster_item_group_at(it, j));
    for (j = 0; j < kith_roster_item_resource_count(it); j++) {
      const char *res = kith_roster_item_resource_at(it, j), *status;
      kith_show_t show;
      int prio;

      kith_roster_item_presence(it, res, &show, &status, &prio, NULL);
      k += snprintf(buf + k, sizeof(buf) - (size_t)k, "r=%s/%d/%d/%s,", res,
                    show, prio, status ? status : "-");
    }
    lines[i] = strdup(buf);
    len += strlen(buf) + 1;
  }
  qsort(lines, count, sizeof(char *), cmp_str);
  len += 256;
  for (i = 0; i < kith_roster_node_group_count(n); i++)
    len += strlen(kith_roster_node_group_at(n, i)) + 1;
  out = calloc(1, len);
  snprintf(out, len, "v=%s;",
           kith_roster_node_version(n) ? kith_roster_node_version(n)
                                       : "(none)");
  for (i = 0; i < kith_roster_node_group_count(n); i++) {
    strcat(out, kith_roster_node_group_at(n, i));
    strcat(out, ",");
  }
  for (i = 0; i < count; i++) {
    strcat(out, "\n");
    strcat(out, lines[i]);
    free(lines[i]);
  }
  free(lines);
  return out;
}

/* ---- Nodes ------------------------------------------------------------ */

static void test_presence_changes(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  kith_roster_item_t *it = add(n, "romeo@example.net", NULL, NULL, 0);
  kith__presence_change_t c;

  (void)state;
  /* First resource: online; the same again: nothing; a new status on a
   * known resource: changed; a second resource: nothing new. */
  assert_int_equal(
      kith__roster_item_track_available(it, "a", KITH_SHOW_AWAY, "out", 1, &c),
      KITH_OK);
  assert_int_equal(c, KITH__PRESENCE_ONLINE);
  assert_int_equal(
      kith__roster_item_track_available(it, "a", KITH_SHOW_AWAY, "out", 1, &c),
      KITH_OK);
  assert_int_equal(c, KITH__PRESENCE_SAME);
  assert_int_equal(kith__roster_item_track_available(it, "a", KITH_SHOW_AWAY,
                                                     "back soon", 1, &c),
                   KITH_OK);
  assert_int_equal(c, KITH__PRESENCE_CHANGED);
  assert_int_equal(
      kith__roster_item_track_available(it, "b", KITH_SHOW_CHAT, NULL, 0, &c),
      KITH_OK);
  assert_int_equal(c, KITH__PRESENCE_SAME);
  /* Offline only when the last resource goes; bare JID clears all. */
  assert_int_equal(kith__roster_item_track_unavailable(it, "a"),
                   KITH__PRESENCE_SAME);
  assert_int_equal(kith__roster_item_track_unavailable(it, "zz"),
                   KITH__PRESENCE_SAME);
  assert_int_equal(kith__roster_item_track_unavailable(it, "b"),
                   KITH__PRESENCE_OFFLINE);
  kith__roster_item_track_available(it, "a", KITH_SHOW_AVAILABLE, NULL, 0, &c);
  kith__roster_item_track_available(it, "b", KITH_SHOW_AVAILABLE, NULL, 0, &c);
  assert_int_equal(kith__roster_item_track_unavailable(it, NULL),
                   KITH__PRESENCE_OFFLINE);
  assert_int_equal(kith__roster_item_track_unavailable(it, NULL),
                   KITH__PRESENCE_SAME);
  /* A bad priority is refused and reports no change. */
  assert_int_not_equal(kith__roster_item_track_available(
                           it, "a", KITH_SHOW_AVAILABLE, NULL, 500, &c),
                       KITH_OK);
  assert_int_equal(c, KITH__PRESENCE_SAME);
  kith_roster_free(r);
}

static void test_nodes(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *a, *b, *c, *n;

  (void)state;
  assert_int_equal(kith_roster_new(NULL, &r), KITH_OK);
  assert_null(kith_roster_self(r));
  assert_int_equal(kith_roster_add_node(r, "Bot@GW.Example/res", &a), KITH_OK);
  assert_string_equal(kith_roster_node_owner(a), "bot@gw.example");
  assert_int_equal(kith_roster_add_node(r, "bot@gw.example", &n), KITH_OK);
  assert_ptr_equal(n, a);
  assert_int_equal(kith_roster_add_node(r, "other@gw.example", &b), KITH_OK);
  assert_int_equal(kith_roster_add_node(r, "third@gw.example", &c), KITH_OK);
  assert_int_equal(kith_roster_add_node(r, "@bad", &n), KITH_EJID);
  assert_null(n);
  assert_int_equal(kith_roster_node_count(r), 3);
  assert_ptr_equal(kith_roster_node_at(r, 0), a);
  assert_ptr_equal(kith_roster_node_at(r, 2), c);
  assert_null(kith_roster_node_at(r, 3));
  assert_ptr_equal(kith_roster_node(r, "OTHER@gw.example/x"), b);
  assert_null(kith_roster_node(r, "nobody@gw.example"));
  assert_null(kith_roster_node(r, "@bad"));

  assert_int_equal(kith__roster_set_self(r, "Other@GW.example/home"), KITH_OK);
  assert_ptr_equal(kith_roster_self(r), b);
  /* Removal keeps creation order and clears the self pointer. */
  assert_int_equal(kith_roster_remove_node(r, "other@gw.example"), KITH_OK);
  assert_null(kith_roster_self(r));
  assert_int_equal(kith_roster_node_count(r), 2);
  assert_ptr_equal(kith_roster_node_at(r, 0), a);
  assert_ptr_equal(kith_roster_node_at(r, 1), c);
  assert_ptr_equal(kith_roster_node(r, "third@gw.example"), c);
  assert_int_equal(kith_roster_remove_node(r, "other@gw.example"),
                   KITH_ENOTFOUND);
  assert_int_equal(kith__roster_set_self(r, "new@example.com"), KITH_OK);
  assert_int_equal(kith_roster_node_count(r), 3);
  assert_string_equal(kith_roster_node_owner(kith_roster_self(r)),
                      "new@example.com");
  kith_roster_free(r);
  kith_roster_free(NULL);
}

/* ---- Items ------------------------------------------------------------ */

static void test_items_crud(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  const char *g[] = {"Friends"};
  kith_roster_item_t *it, *it2;
  int changed = -1;

  (void)state;
  assert_int_equal(kith__roster_item_upsert(n, "Juliet@Example.COM/balcony",
                                            "Juliet", g, 1, &it, &changed),
                   KITH_OK);
  assert_int_equal(changed, 1);
  assert_string_equal(kith_roster_item_jid(it), "juliet@example.com");
  assert_string_equal(kith_roster_item_name(it), "Juliet");
  assert_int_equal(kith_roster_item_flags(it), 0);
  assert_int_equal(kith_roster_item_sub(it), KITH_SUB_NONE);
  assert_int_equal(kith_roster_node_size(n), 1);

  /* Lookup normalizes: case, resource. */
  assert_ptr_equal(kith_roster_node_item(n, "juliet@example.com"), it);
  assert_ptr_equal(kith_roster_node_item(n, "JULIET@example.com/other"), it);
  assert_null(kith_roster_node_item(n, "romeo@example.net"));
  assert_null(kith_roster_node_item(n, "@invalid"));
  assert_null(kith__roster_item_find_norm(n, "Juliet@Example.COM"));

  /* Same content: no change. */
  assert_int_equal(kith__roster_item_upsert(n, "juliet@example.com", "Juliet",
                                            g, 1, &it2, &changed),
                   KITH_OK);
  assert_int_equal(changed, 0);
  assert_ptr_equal(it2, it);
  /* A new name: changed (the item may move). "" means no name. */
  assert_int_equal(kith__roster_item_upsert(n, "juliet@example.com", "", g, 1,
                                            &it, &changed),
                   KITH_OK);
  assert_int_equal(changed, 1);
  assert_null(kith_roster_item_name(it));
  assert_int_equal(kith_roster_node_size(n), 1);

  /* Flags: invalid combinations normalized; subscription derived. */
  assert_int_equal(
      kith__roster_item_set_flags(it, KITH_ROSTER_TO | KITH_ROSTER_PENDING_OUT),
      1);
  assert_int_equal(kith_roster_item_flags(it), KITH_ROSTER_TO);
  assert_int_equal(kith_roster_item_sub(it), KITH_SUB_TO);
  assert_int_equal(kith__roster_item_set_flags(it, KITH_ROSTER_TO), 0);
  kith__roster_item_set_flags(it, KITH_ROSTER_TO | KITH_ROSTER_FROM);
  assert_int_equal(kith_roster_item_sub(it), KITH_SUB_BOTH);
  /* Flags, whitelist survive a name change (the item moves). */
  kith_roster_item_set_whitelisted(it, 1);
  it = add(n, "juliet@example.com", "J", g, 1);
  assert_int_equal(kith_roster_item_sub(it), KITH_SUB_BOTH);
  assert_true(kith_roster_item_whitelisted(it));
  assert_ptr_equal(kith__roster_item_node(it), n);
  assert_ptr_equal(kith__roster_node_roster(n), r);

  /* Errors. */
  assert_int_equal(kith__roster_item_upsert(n, "@x", NULL, NULL, 0, &it2, NULL),
                   KITH_EJID);
  assert_null(it2);
  assert_int_equal(
      kith__roster_item_upsert_norm(n, "a@b/c", NULL, NULL, 0, NULL, NULL),
      KITH_EINVAL);
  assert_int_equal(kith__roster_item_remove(n, "romeo@example.net"),
                   KITH_ENOTFOUND);
  assert_int_equal(kith__roster_item_remove(n, "Juliet@example.com/x"),
                   KITH_OK);
  assert_int_equal(kith_roster_node_size(n), 0);
  assert_int_equal(kith_roster_node_group_count(n), 0);
  kith_roster_free(r);
}

/* Many inserts and removals against a reference: the hash stays right. */
static void test_items_stress(void **state)
{
  enum { KEYS = 3000, OPS = 40000 };
  static char present[KEYS];
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  uint32_t seed = 12345;
  size_t i, count = 0, cur = 0, seen = 0;
  char jid[64];

  (void)state;
  memset(present, 0, sizeof(present));
  for (i = 0; i < OPS; i++) {
    unsigned k;

    seed = seed * 1103515245u + 12345u;
    k = (seed >> 8) % KEYS;
    snprintf(jid, sizeof(jid), "user%u@example.org", k);
    if (present[k]) {
      assert_int_equal(kith__roster_item_remove(n, jid), KITH_OK);
      present[k] = 0;
      count--;
    } else {
      add(n, jid, NULL, NULL, 0);
      present[k] = 1;
      count++;
    }
  }
  assert_int_equal(kith_roster_node_size(n), count);
  for (i = 0; i < KEYS; i++) {
    snprintf(jid, sizeof(jid), "user%zu@example.org", i);
    if (present[i])
      assert_non_null(kith__roster_item_find_norm(n, jid));
    else
      assert_null(kith__roster_item_find_norm(n, jid));
  }
  /* Iteration visits each item once. */
  while (kith_roster_node_next(n, &cur))
    seen++;
  assert_int_equal(seen, count);
  kith_roster_free(r);
}

/* ---- Groups ----------------------------------------------------------- */

static void test_groups(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  const char *ga[] = {"Friends", "Work", "Friends"};
  const char *gb[] = {"Family", "Work"};
  const char *gb2[] = {"Work", "Family"};
  const char *bad[] = {"Work", ""};
  kith_roster_item_t *a, *b, *c, *out[4];
  int changed;

  (void)state;
  a = add(n, "a@example.com", NULL, ga, 3);
  assert_int_equal(kith_roster_item_group_count(a), 2);
  assert_string_equal(kith_roster_item_group_at(a, 0), "Friends");
  assert_string_equal(kith_roster_item_group_at(a, 1), "Work");
  assert_null(kith_roster_item_group_at(a, 2));
  b = add(n, "b@example.com", NULL, gb, 2);
  c = add(n, "c@example.com", "C", NULL, 0);
  /* The node's index: every group once, first-use order. */
  assert_int_equal(kith_roster_node_group_count(n), 3);
  assert_string_equal(kith_roster_node_group_at(n, 0), "Friends");
  assert_string_equal(kith_roster_node_group_at(n, 1), "Work");
  assert_string_equal(kith_roster_node_group_at(n, 2), "Family");
  assert_int_equal(kith_roster_node_group_items(n, "Work", out, 4), 2);
  assert_int_equal(kith_roster_node_group_items(n, "Work", out, 1), 2);
  assert_int_equal(kith_roster_node_group_items(n, "Friends", out, 4), 1);
  assert_ptr_equal(out[0], a);
  assert_int_equal(kith_roster_node_group_items(n, "", out, 4), 1);
  assert_ptr_equal(out[0], c);
  assert_int_equal(kith_roster_node_group_items(n, "work", NULL, 0), 0);

  /* Reordering is a change; the same order is not. */
  assert_int_equal(
      kith__roster_item_upsert(n, "b@example.com", NULL, gb, 2, &b, &changed),
      KITH_OK);
  assert_int_equal(changed, 0);
  assert_int_equal(
      kith__roster_item_upsert(n, "b@example.com", NULL, gb2, 2, &b, &changed),
      KITH_OK);
  assert_int_equal(changed, 1);
  assert_string_equal(kith_roster_item_group_at(b, 0), "Work");
  /* The last member leaving takes the group out of the index. */
  a = add(n, "a@example.com", NULL, gb + 1, 1);
  assert_int_equal(kith_roster_node_group_count(n), 2);
  assert_string_equal(kith_roster_node_group_at(n, 0), "Work");
  assert_string_equal(kith_roster_node_group_at(n, 1), "Family");
  assert_int_equal(kith_roster_node_group_items(n, "Friends", out, 4), 0);
  assert_int_equal(kith__roster_item_remove(n, "b@example.com"), KITH_OK);
  assert_int_equal(kith_roster_node_group_count(n), 1);
  assert_int_equal(kith_roster_node_group_items(n, "Family", out, 4), 0);
  assert_int_equal(kith_roster_node_group_items(n, "Work", out, 4), 1);
  /* An empty group name is refused, with no change. */
  assert_int_equal(
      kith__roster_item_upsert(n, "a@example.com", NULL, bad, 2, NULL, NULL),
      KITH_EINVAL);
  assert_int_equal(kith_roster_item_group_count(a), 1);
  assert_int_equal(
      kith__roster_item_upsert(n, "a@example.com", NULL, NULL, 1, NULL, NULL),
      KITH_EINVAL);
  kith_roster_free(r);
}

/* Many groups on one item: deduplication takes the set path. */
static void test_groups_many(void **state)
{
  enum { NG = 500 };
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  static char names[NG][16];
  const char *list[2 * NG];
  kith_roster_item_t *it;
  size_t i;

  (void)state;
  for (i = 0; i < NG; i++) {
    snprintf(names[i], sizeof(names[i]), "group-%zu", i);
    list[i] = names[i];
    list[NG + i] = names[NG - 1 - i];
  }
  it = add(n, "many@example.com", NULL, list, 2 * NG);
  assert_int_equal(kith_roster_item_group_count(it), NG);
  for (i = 0; i < NG; i++)
    assert_string_equal(kith_roster_item_group_at(it, i), names[i]);
  assert_int_equal(kith_roster_node_group_count(n), NG);
  assert_int_equal(kith__roster_item_remove(n, "many@example.com"), KITH_OK);
  assert_int_equal(kith_roster_node_group_count(n), 0);
  kith_roster_free(r);
}

/* ---- Broadcast targets ------------------------------------------------- */

static void test_broadcast_targets(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  kith_roster_item_t *out[KITH__ST_COUNT];
  char jid[32];
  size_t i, count;

  (void)state;
  for (i = 0; i < KITH__ST_COUNT; i++) {
    snprintf(jid, sizeof(jid), "c%zu@example.com", i);
    kith__roster_item_set_flags(add(n, jid, NULL, NULL, 0),
                                kith__sub_state_flags((kith__sub_state_t)i));
  }
  count = kith_roster_node_broadcast_targets(n, out, KITH__ST_COUNT);
  /* From, From + Pending Out, Both; never None or To. */
  assert_int_equal(count, 3);
  for (i = 0; i < count; i++) {
    kith_sub_t s = kith_roster_item_sub(out[i]);

    assert_true(s == KITH_SUB_FROM || s == KITH_SUB_BOTH);
  }
  assert_int_equal(kith_roster_node_broadcast_targets(n, NULL, 0), 3);
  kith_roster_free(r);
}

/* ---- Resources --------------------------------------------------------- */

static void test_resources(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  kith_roster_item_t *it = add(n, "c@example.com", NULL, NULL, 0);
  kith_show_t show;
  const char *status;
  int prio;
  int64_t last;

  (void)state;
  assert_null(kith_roster_item_best_resource(it));
  assert_int_equal(kith__roster_item_set_presence(it, "phone", KITH_SHOW_AWAY,
                                                  "out", 5, 1000, NULL),
                   KITH_OK);
  assert_int_equal(kith__roster_item_set_presence(it, "pc", KITH_SHOW_CHAT,
                                                  NULL, 5, 900, NULL),
                   KITH_OK);
  assert_int_equal(kith_roster_item_resource_count(it), 2);
  assert_string_equal(kith_roster_item_resource_at(it, 0), "phone");
  assert_int_equal(
      kith_roster_item_presence(it, "phone", &show, &status, &prio, &last),
      KITH_OK);
  assert_int_equal(show, KITH_SHOW_AWAY);
  assert_string_equal(status, "out");
  assert_int_equal(prio, 5);
  assert_int_equal(last, 1000);
  assert_int_equal(
      kith_roster_item_presence(it, "pc", NULL, &status, NULL, NULL), KITH_OK);
  assert_null(status);
  assert_int_equal(
      kith_roster_item_presence(it, "tablet", NULL, NULL, NULL, NULL),
      KITH_ENOTFOUND);

  /* Same priority: show decides (chat beats away despite being older). */
  assert_string_equal(kith_roster_item_best_resource(it), "pc");
  /* Higher priority beats a better show. */
  kith__roster_item_set_presence(it, "work", KITH_SHOW_DND, NULL, 10, 500,
                                 NULL);
  assert_string_equal(kith_roster_item_best_resource(it), "work");
  /* Same priority and show: the most recent wins. */
  kith__roster_item_set_presence(it, "laptop", KITH_SHOW_DND, NULL, 10, 600,
                                 NULL);
  assert_string_equal(kith_roster_item_best_resource(it), "laptop");
  /* An update moves the ranking. */
  kith__roster_item_set_presence(it, "laptop", KITH_SHOW_DND, NULL, -1, 700,
                                 NULL);
  assert_string_equal(kith_roster_item_best_resource(it), "work");
  assert_int_equal(kith_roster_item_resource_count(it), 4);

  /* The bare JID as a resource; time 0 means now. */
  assert_int_equal(
      kith__roster_item_set_presence(it, NULL, KITH_SHOW_XA, NULL, 0, 0, NULL),
      KITH_OK);
  assert_int_equal(kith_roster_item_presence(it, "", NULL, NULL, NULL, &last),
                   KITH_OK);
  assert_true(last > 1600000000000LL);

  /* Invalid arguments. */
  assert_int_equal(kith__roster_item_set_presence(it, "x", KITH_SHOW_CHAT, NULL,
                                                  128, 1, NULL),
                   KITH_EINVAL);
  assert_int_equal(kith__roster_item_set_presence(
                       it, "x", KITH_SHOW_UNAVAILABLE, NULL, 0, 1, NULL),
                   KITH_EINVAL);
  assert_int_equal(kith__roster_item_set_presence(it, "x", KITH_SHOW_CHAT, NULL,
                                                  -129, 1, NULL),
                   KITH_EINVAL);
  assert_int_equal(kith__roster_item_set_presence(it, "x", KITH_SHOW_CHAT, NULL,
                                                  -128, 1, NULL),
                   KITH_OK);

  /* Clearing. */
  assert_int_equal(kith__roster_item_clear_presence(it, "work"), KITH_OK);
  assert_int_equal(kith__roster_item_clear_presence(it, "work"),
                   KITH_ENOTFOUND);
  assert_string_equal(kith_roster_item_resource_at(it, 2), "laptop");
  assert_string_equal(kith_roster_item_best_resource(it), "pc");
  kith__roster_item_clear_all_presence(it);
  assert_int_equal(kith_roster_item_resource_count(it), 0);
  assert_null(kith_roster_item_best_resource(it));
  assert_string_equal(kith_show_name(KITH_SHOW_XA), "xa");
  kith_roster_free(r);
}

static void test_presence_stanza(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  kith_roster_item_t *it = add(n, "c@example.com", NULL, NULL, 0);
  kith_stanza_t *st;
  const kith_stanza_t *kept;

  (void)state;
  assert_int_equal(kith_stanza_new(NULL, "presence", KITH_NS_CLIENT, &st),
                   KITH_OK);
  assert_int_equal(kith_stanza_set_attr(st, "from", "c@example.com/pc"),
                   KITH_OK);
  assert_int_equal(
      kith__roster_item_set_presence(it, "pc", KITH_SHOW_CHAT, NULL, 0, 1, st),
      KITH_OK);
  kith_stanza_free(st); /* the model keeps its own copy */
  kept = kith__roster_item_presence_stanza(it, "pc");
  assert_non_null(kept);
  assert_string_equal(kith_stanza_attr(kept, "from"), "c@example.com/pc");
  assert_null(kith__roster_item_presence_stanza(it, "phone"));
  /* An update without a stanza drops the old copy. */
  kith__roster_item_set_presence(it, "pc", KITH_SHOW_AWAY, NULL, 0, 2, NULL);
  assert_null(kith__roster_item_presence_stanza(it, "pc"));
  kith_roster_free(r);
}

/* ---- Limits ------------------------------------------------------------- */

static void test_item_limit(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  kith_roster_item_t *it;
  char jid[32];
  int i;

  (void)state;
  kith__roster_set_max_items(r, 5);
  for (i = 0; i < 5; i++) {
    snprintf(jid, sizeof(jid), "c%d@example.com", i);
    add(n, jid, NULL, NULL, 0);
  }
  /* Exactly at the limit: an update still works, a new item does not. */
  add(n, "c0@example.com", "renamed", NULL, 0);
  assert_int_equal(
      kith__roster_item_upsert(n, "c5@example.com", NULL, NULL, 0, &it, NULL),
      KITH_ELIMIT);
  assert_null(it);
  assert_int_equal(kith_roster_node_size(n), 5);
  assert_null(kith_roster_node_item(n, "c5@example.com"));
  assert_int_equal(kith__roster_item_remove(n, "c1@example.com"), KITH_OK);
  add(n, "c5@example.com", NULL, NULL, 0);
  assert_int_equal(kith_roster_node_size(n), 5);
  kith_roster_free(r);
}

static void test_resource_limit(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  kith_roster_item_t *it = add(n, "c@example.com", NULL, NULL, 0);
  char res[16];
  int i;

  (void)state;
  for (i = 0; i < 64; i++) {
    snprintf(res, sizeof(res), "r%d", i);
    assert_int_equal(kith__roster_item_set_presence(it, res, KITH_SHOW_CHAT,
                                                    NULL, 0, i + 1, NULL),
                     KITH_OK);
  }
  assert_int_equal(kith_roster_item_resource_count(it), 64);
  assert_int_equal(kith__roster_item_set_presence(it, "r64", KITH_SHOW_CHAT,
                                                  NULL, 0, 1, NULL),
                   KITH_ELIMIT);
  assert_int_equal(kith_roster_item_resource_count(it), 64);
  /* Updating an existing resource at the limit is fine. */
  assert_int_equal(kith__roster_item_set_presence(it, "r3", KITH_SHOW_AWAY, "x",
                                                  1, 100, NULL),
                   KITH_OK);
  assert_string_equal(kith_roster_item_best_resource(it), "r3");
  kith__roster_set_max_resources(r, 2);
  assert_int_equal(kith__roster_item_set_presence(it, "r63", KITH_SHOW_AWAY,
                                                  NULL, 1, 100, NULL),
                   KITH_OK);
  kith_roster_free(r);
}

/* ---- Version, clear, hook, policy -------------------------------------- */

typedef struct events {
  int n;
  kith__roster_change_t what[16];
  char jid[16][64];
} events_t;

static void record(void *ud, kith_roster_node_t *node, kith_roster_item_t *it,
                   kith__roster_change_t what)
{
  events_t *e = ud;

  (void)node;
  if (e->n >= 16)
    return;
  e->what[e->n] = what;
  snprintf(e->jid[e->n], sizeof(e->jid[0]), "%s",
           it ? kith_roster_item_jid(it) : "-");
  e->n++;
}

static void test_hook_version_clear(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  const char *g[] = {"G"};
  kith_roster_item_t *it;
  events_t e;

  (void)state;
  memset(&e, 0, sizeof(e));
  kith__roster_set_hook(r, record, &e);
  it = add(n, "a@example.com", NULL, g, 1);        /* ITEM */
  add(n, "a@example.com", NULL, g, 1);             /* unchanged: none */
  kith__roster_item_set_flags(it, KITH_ROSTER_TO); /* ITEM */
  kith__roster_item_set_flags(it, KITH_ROSTER_TO); /* none */
  kith_roster_item_set_whitelisted(it, 1);         /* ITEM */
  kith_roster_item_set_whitelisted(it, 1);         /* none */
  kith__roster_item_set_presence(it, "r", KITH_SHOW_CHAT, NULL, 0, 1,
                                 NULL); /* volatile: none */
  assert_int_equal(kith__roster_node_set_version(n, "v1"), KITH_OK);
  assert_int_equal(kith__roster_node_set_version(n, "v1"), KITH_OK);
  assert_string_equal(kith_roster_node_version(n), "v1");
  add(n, "b@example.com", NULL, NULL, 0); /* ITEM */
  assert_int_equal(kith__roster_item_remove(n, "b@example.com"), KITH_OK);
  assert_int_equal(e.n, 6);
  assert_int_equal(e.what[0], KITH__CHANGE_ITEM);
  assert_int_equal(e.what[1], KITH__CHANGE_ITEM);
  assert_int_equal(e.what[2], KITH__CHANGE_ITEM);
  assert_int_equal(e.what[3], KITH__CHANGE_VERSION);
  assert_string_equal(e.jid[3], "-");
  assert_int_equal(e.what[4], KITH__CHANGE_ITEM);
  assert_int_equal(e.what[5], KITH__CHANGE_REMOVED);
  assert_string_equal(e.jid[5], "b@example.com");

  kith__roster_node_clear(n);
  assert_int_equal(e.n, 7);
  assert_int_equal(e.what[6], KITH__CHANGE_CLEARED);
  assert_int_equal(kith_roster_node_size(n), 0);
  assert_int_equal(kith_roster_node_group_count(n), 0);
  assert_null(kith_roster_node_version(n));
  kith__roster_node_clear(n); /* nothing to clear: no event */
  assert_int_equal(e.n, 7);
  /* The node still works after a clear. */
  add(n, "c@example.com", NULL, g, 1);
  assert_int_equal(kith_roster_node_group_count(n), 1);
  /* Removing a node tells the store to drop it. */
  assert_int_equal(kith_roster_remove_node(r, "owner@example.com"), KITH_OK);
  assert_int_equal(e.n, 9);
  assert_int_equal(e.what[8], KITH__CHANGE_NODE_REMOVED);
  kith__roster_set_hook(r, NULL, NULL);
  kith_roster_free(r);
}

static void test_policy(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  kith_auto_authorize_t a;
  int s;

  (void)state;
  kith__roster_node_policy(n, &a, &s);
  assert_int_equal(a, KITH_AUTHORIZE_ACCEPT);
  assert_int_equal(s, 1);
  assert_int_equal(kith__roster_node_auto_authorize(n), KITH_AUTHORIZE_INHERIT);
  assert_int_equal(kith__roster_node_auto_subscribe(n), -1);
  assert_int_equal(kith__roster_set_policy(r, KITH_AUTHORIZE_REJECT, 0),
                   KITH_OK);
  assert_int_equal(kith__roster_set_policy(r, KITH_AUTHORIZE_INHERIT, 0),
                   KITH_EINVAL);
  kith__roster_node_policy(n, &a, &s);
  assert_int_equal(a, KITH_AUTHORIZE_REJECT);
  assert_int_equal(s, 0);
  kith__roster_policy(r, &a, &s);
  assert_int_equal(a, KITH_AUTHORIZE_REJECT);
  assert_int_equal(s, 0);
  kith_roster_node_set_auto_authorize(n, KITH_AUTHORIZE_MANUAL);
  kith_roster_node_set_auto_subscribe(n, 1);
  kith__roster_node_policy(n, &a, &s);
  assert_int_equal(a, KITH_AUTHORIZE_MANUAL);
  assert_int_equal(s, 1);
  kith_roster_node_set_auto_authorize(n, KITH_AUTHORIZE_INHERIT);
  kith_roster_node_set_auto_subscribe(n, -1);
  kith__roster_node_policy(n, &a, NULL);
  assert_int_equal(a, KITH_AUTHORIZE_REJECT);
  kith_roster_free(r);
}

static int detached;

static void on_detach(kith_roster_t *r, void *ud)
{
  (void)r;
  assert_ptr_equal(ud, &detached);
  detached++;
}

static void test_detach_and_presence_reset(void **state)
{
  kith_roster_t *r;
  kith_roster_node_t *n = one_node(&r, NULL);
  kith_roster_item_t *it = add(n, "c@example.com", NULL, NULL, 0);

  (void)state;
  kith__roster_item_set_presence(it, "r", KITH_SHOW_CHAT, NULL, 0, 1, NULL);
  kith__roster_clear_all_presence(r);
  assert_int_equal(kith_roster_item_resource_count(it), 0);
  kith__roster_set_detach(r, on_detach, &detached);
  assert_ptr_equal(kith__roster_attachment(r), &detached);
  detached = 0;
  kith_roster_free(r);
  assert_int_equal(detached, 1);
}

/* ---- Normalization cost ------------------------------------------------- */

/* Looking up an already normalized JID allocates nothing. */
static void test_lookup_fast_path(void **state)
{
  talloc_t t;
  kith_ctx_t *ctx;
  kith_roster_t *r;
  kith_roster_node_t *n;
  long before;

  (void)state;
  memset(&t, 0, sizeof(t));
  ctx = tctx(&t);
  n = one_node(&r, ctx);
  add(n, "c@example.com", NULL, NULL, 0);
  before = t.attempts;
  assert_non_null(kith_roster_node_item(n, "c@example.com"));
  assert_non_null(kith_roster_node(r, "owner@example.com"));
  assert_int_equal(t.attempts, before);
  /* Re-upserting an existing, normalized JID skips normalization too. */
  add(n, "c@example.com", NULL, NULL, 0);
  assert_int_equal(t.attempts, before);
  /* Another form normalizes (and frees what it allocated). */
  assert_non_null(kith_roster_node_item(n, "C@Example.com/r"));
  assert_true(t.attempts > before);
  kith_roster_free(r);
  assert_int_equal(t.live, 1); /* the context itself */
  kith_ctx_free(ctx);
}

/* ---- Failing allocator --------------------------------------------------- */

/* Run `call`; on failure check that the node did not change, and stop. */
#define STEP(call)                                                             \
  do {                                                                         \
    char *before_ = snapshot(n);                                               \
    kith_status_t st_ = (call);                                                \
    if (st_ != KITH_OK) {                                                      \
      char *after_ = snapshot(n);                                              \
      assert_int_equal(st_, KITH_ENOMEM);                                      \
      assert_string_equal(before_, after_);                                    \
      free(after_);                                                            \
      free(before_);                                                           \
      goto out;                                                                \
    }                                                                          \
    free(before_);                                                             \
  } while (0)

/* One pass of work through the model; returns 1 when it all succeeded. */
static int torture_pass(kith_ctx_t *ctx)
{
  const char *g1[] = {"Friends", "Work"};
  const char *g2[] = {"Work", "Family", "Work", "New"};
  const char *many[12] = {"g0", "g1", "g2", "g3", "g4",  "g5",
                          "g6", "g7", "g8", "g9", "g10", "g0"};
  kith_roster_t *r = NULL;
  kith_roster_node_t *n = NULL;
  kith_roster_item_t *it = NULL;
  kith_stanza_t *st = NULL;
  char jid[32];
  int i, done = 0;

  if (kith_roster_new(ctx, &r) != KITH_OK)
    return 0;
  if (kith_roster_add_node(r, "Owner@Example.com", &n) != KITH_OK) {
    assert_int_equal(kith_roster_node_count(r), 0);
    goto out_free;
  }
  STEP(kith__roster_item_upsert(n, "A@example.com/r", "A", g1, 2, &it, NULL));
  STEP(kith__roster_item_upsert(n, "b@example.com", NULL, g2, 4, NULL, NULL));
  STEP(kith__roster_item_upsert(n, "a@example.com", "A2", g2, 4, &it, NULL));
  STEP(
      kith__roster_item_upsert(n, "m@example.com", NULL, many, 12, NULL, NULL));
  for (i = 0; i < 40; i++) {
    snprintf(jid, sizeof(jid), "c%d@Example.com", i);
    STEP(kith__roster_item_upsert(n, jid, NULL, g1 + i % 2, 1, NULL, NULL));
  }
  STEP(kith__roster_node_set_version(n, "ver-1"));
  if (kith_stanza_new(ctx, "presence", KITH_NS_CLIENT, &st) != KITH_OK)
    goto out;
  STEP(
      kith__roster_item_set_presence(it, "pc", KITH_SHOW_CHAT, "hi", 1, 5, st));
  STEP(kith__roster_item_set_presence(it, "phone", KITH_SHOW_AWAY, NULL, 0, 6,
                                      st));
  STEP(kith__roster_item_set_presence(it, "pc", KITH_SHOW_DND, "busy", 2, 7,
                                      NULL));
  STEP(kith__roster_item_remove(n, "b@example.com"));
  STEP(kith__roster_set_self(r, "owner@example.com"));
  STEP(kith_roster_add_node(r, "second@example.com", NULL));
  done = 1;
out:
  kith_stanza_free(st);
out_free:
  kith_roster_free(r);
  return done;
}

static void test_failing_allocator(void **state)
{
  long fail_at;
  int completed = 0;

  (void)state;
  for (fail_at = 1; !completed; fail_at++) {
    talloc_t t;
    kith_ctx_t *ctx;

    memset(&t, 0, sizeof(t));
    ctx = tctx(&t);
    t.attempts = 0;
    t.fail_at = fail_at;
    completed = torture_pass(ctx);
    /* Nothing leaked: only the context's own block is left. */
    assert_int_equal(t.live, 1);
    kith_ctx_free(ctx);
    assert_int_equal(t.live, 0);
    assert_true(fail_at < 10000);
  }
  print_message("failing allocator: %ld allocation points exercised\n",
                fail_at - 1);
}

/* ---- Memory ------------------------------------------------------------- */

static void test_memory(void **state)
{
  enum { N = 100000 };
  static const char *first[] = {"alice", "bob",   "carol", "dave", "erin",
                                "frank", "grace", "heidi", "ivan", "judy"};
  static const char *last[] = {"smith", "johnson",  "garcia", "miller",
                               "davis", "martinez", "lopez",  "wilson"};
  static const char *domains[] = {"example.org", "jabber.example.net",
                                  "chat.example.com", "xmpp.example.de"};
  static const char *gnames[20] = {
      "Friends",  "Family", "Work",   "Colleagues", "School",
      "Football", "Chess",  "Band",   "Family2",    "Neighbours",
      "Gaming",   "Books",  "Travel", "Support",    "Sales",
      "Ops",      "Dev",    "QA",     "Board",      "Others"};
  talloc_t t;
  kith_ctx_t *ctx;
  kith_roster_t *r;
  kith_roster_node_t *n;
  size_t strings = 0, bytes0, foot0, i;
  long live0;
  uint32_t seed = 42;
  double per_item, foot_item;

  (void)state;
  memset(&t, 0, sizeof(t));
  ctx = tctx(&t);
  n = one_node(&r, ctx);
  bytes0 = t.bytes;
  foot0 = t.footprint;
  live0 = t.live;
  for (i = 0; i < N; i++) {
    const char *groups[3];
    char jid[96], name[64];
    size_t ng, k;

    seed = seed * 1103515245u + 12345u;
    snprintf(jid, sizeof(jid), "%s.%s%zu@%s", first[i % 10], last[(i / 10) % 8],
             i, domains[(seed >> 4) % 4]);
    snprintf(name, sizeof(name), "%c%s %c%s", first[i % 10][0] - 32,
             first[i % 10] + 1, last[(i / 10) % 8][0] - 32,
             last[(i / 10) % 8] + 1);
    ng = (seed >> 12) % 4;
    for (k = 0; k < ng; k++)
      groups[k] = gnames[(seed >> (16 + 4 * k)) % 20];
    /* One item in five has no name. */
    add(n, jid, (seed >> 20) % 5 ? name : NULL, groups, ng);
  }
  {
    size_t cur = 0;
    kith_roster_item_t *it;

    while ((it = kith_roster_node_next(n, &cur)) != NULL) {
      strings += strlen(kith_roster_item_jid(it)) + 1;
      if (kith_roster_item_name(it))
        strings += strlen(kith_roster_item_name(it)) + 1;
    }
  }
  assert_int_equal(kith_roster_node_size(n), N);
  per_item = (double)(t.bytes - bytes0 - strings) / N;
  foot_item = (double)(t.footprint - foot0 - strings) / N;
  print_message(
      "roster memory, %d items: %.1f bytes/item beyond strings "
      "(requested); %.1f with glibc chunk overhead; %.2f blocks/item; "
      "strings %.1f bytes/item\n",
      N, per_item, foot_item, (double)(t.live - live0) / N,
      (double)strings / N);
  assert_true(per_item < 200.0);
  assert_true(foot_item < 200.0);
  /* One allocation per item, plus a few tables. */
  assert_true(t.live - live0 < N + 32);
  kith_roster_free(r);
  assert_int_equal(t.live, 1);
  kith_ctx_free(ctx);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nodes),
      cmocka_unit_test(test_presence_changes),
      cmocka_unit_test(test_items_crud),
      cmocka_unit_test(test_items_stress),
      cmocka_unit_test(test_groups),
      cmocka_unit_test(test_groups_many),
      cmocka_unit_test(test_broadcast_targets),
      cmocka_unit_test(test_resources),
      cmocka_unit_test(test_presence_stanza),
      cmocka_unit_test(test_item_limit),
      cmocka_unit_test(test_resource_limit),
      cmocka_unit_test(test_hook_version_clear),
      cmocka_unit_test(test_policy),
      cmocka_unit_test(test_detach_and_presence_reset),
      cmocka_unit_test(test_lookup_fast_path),
      cmocka_unit_test(test_failing_allocator),
      cmocka_unit_test(test_memory),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}

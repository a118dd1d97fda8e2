/*
 * The roster wire layer: roster items, pushes and presence between stanzas
 * and plain structs (see roster/wire.h for the contract).
 *
 * Roster results can hold a million items, so reading one is built as a
 * walk that yields borrowed views: strings point into the stanza, the
 * group list lives in scratch space reused from item to item, and a JID is
 * normalized (and so allocated) only when it is not already in normalized
 * form. The allocating parse is a visitor on top of that walk.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/ctx.h"
#include "kith/jid.h"
#include "roster/wire.h"

#define AREA "roster"

/* Longest DNS label (RFC 1035 2.3.4); mirrors the JID module's rule. */
#define LABEL_MAX 63

/* Up to this many groups an item's duplicates are found by a linear scan;
 * above it, by a hash set, so a hostile item cannot make the walk
 * quadratic. */
#define LINEAR_GROUPS 8

_Static_assert(KITH__WIRE_SUB_NONE == 0 && KITH__WIRE_SUB_TO == 1 &&
                   KITH__WIRE_SUB_FROM == 2 && KITH__WIRE_SUB_BOTH == 3,
               "the subscription table is indexed by value");

/* ------------------------------------------------------------------ */
/* Name tables                                                         */

static const char *const sub_names[KITH__WIRE_SUB_COUNT] = {
    "none", "to", "from", "both", "remove"};

/* Presence types: the name for logs, and the 'type' attribute. */
static const struct {
  const char *name;
  const char *attr;
} ptypes[KITH__WIRE_PT_COUNT] = {
    [KITH__WIRE_PT_AVAILABLE] = {"available", NULL},
    [KITH__WIRE_PT_UNAVAILABLE] = {"unavailable", "unavailable"},
    [KITH__WIRE_PT_SUBSCRIBE] = {"subscribe", "subscribe"},
    [KITH__WIRE_PT_SUBSCRIBED] = {"subscribed", "subscribed"},
    [KITH__WIRE_PT_UNSUBSCRIBE] = {"unsubscribe", "unsubscribe"},
    [KITH__WIRE_PT_UNSUBSCRIBED] = {"unsubscribed", "unsubscribed"},
    [KITH__WIRE_PT_PROBE] = {"probe", "probe"},
    [KITH__WIRE_PT_ERROR] = {"error", "error"},
};

/* <show/> texts by kith_show_t; NULL where no <show/> is written. */
#define SHOW_COUNT (KITH_SHOW_UNAVAILABLE + 1)
static const char *const show_texts[SHOW_COUNT] = {
    [KITH_SHOW_CHAT] = "chat", [KITH_SHOW_AVAILABLE] = NULL,
    [KITH_SHOW_AWAY] = "away", [KITH_SHOW_XA] = "xa",
    [KITH_SHOW_DND] = "dnd",   [KITH_SHOW_UNAVAILABLE] = NULL,
};

/* RFC 6120 8.3.2 error types and 8.3.3 defined conditions. */
static const char *const error_types[] = {"auth", "cancel", "continue",
                                          "modify", "wait"};
static const char *const error_conditions[] = {
    "bad-request",
    "conflict",
    "feature-not-implemented",
    "forbidden",
    "gone",
    "internal-server-error",
    "item-not-found",
    "jid-malformed",
    "not-acceptable",
    "not-allowed",
    "not-authorized",
    "policy-violation",
    "recipient-unavailable",
    "redirect",
    "registration-required",
    "remote-server-not-found",
    "remote-server-timeout",
    "resource-constraint",
    "service-unavailable",
    "subscription-required",
    "undefined-condition",
    "unexpected-request",
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static int str_in(const char *s, const char *const *set, size_t n)
{
  size_t i;

  if (s == NULL)
    return 0;
  for (i = 0; i < n; i++) {
    if (strcmp(s, set[i]) == 0)
      return 1;
  }
  return 0;
}

int kith__wire_sub_from_name(const char *name)
{
  int i;

  if (name == NULL)
    return -1;
  /* Every roster item has one: the first letter picks the candidate. */
  for (i = 0; i < KITH__WIRE_SUB_COUNT; i++) {
    if (name[0] == sub_names[i][0] && strcmp(name, sub_names[i]) == 0)
      return i;
  }
  return -1;
}

const char *kith__wire_sub_name(int sub)
{
  return sub >= 0 && sub < KITH__WIRE_SUB_COUNT ? sub_names[sub] : NULL;
}

int kith__wire_ptype_from_attr(const char *type)
{
  int i;

  if (type == NULL)
    return KITH__WIRE_PT_AVAILABLE;
  for (i = KITH__WIRE_PT_AVAILABLE + 1; i < KITH__WIRE_PT_COUNT; i++) {
    if (strcmp(type, ptypes[i].attr) == 0)
      return i;
  }
  return -1;
}

const char *kith__wire_ptype_attr(int type)
{
  return type >= 0 && type < KITH__WIRE_PT_COUNT ? ptypes[type].attr : NULL;
}

const char *kith__wire_ptype_name(int type)
{
  return type >= 0 && type < KITH__WIRE_PT_COUNT ? ptypes[type].name : "?";
}

int kith__wire_show_from_text(const char *text)
{
  int i;

  if (text == NULL || text[0] == '\0')
    return KITH_SHOW_AVAILABLE;
  for (i = 0; i < SHOW_COUNT; i++) {
    if (show_texts[i] && strcmp(text, show_texts[i]) == 0)
      return i;
  }
  return -1;
}

const char *kith__wire_show_text(int show)
{
  return show >= 0 && show < SHOW_COUNT ? show_texts[show] : NULL;
}

int kith__wire_error_valid(const char *type, const char *condition)
{
  return str_in(type, error_types, COUNT_OF(error_types)) &&
         str_in(condition, error_conditions, COUNT_OF(error_conditions));
}

/* ------------------------------------------------------------------ */
/* Stanza helpers                                                      */

/* The namespace an element is in: its own, else its nearest ancestor's.
 * "" (explicitly none) and NULL both mean no namespace. */
static const char *eff_ns(const kith_stanza_t *el)
{
  for (; el; el = kith_stanza_parent(el)) {
    const char *ns = kith_stanza_ns(el);

    if (ns != NULL)
      return ns[0] ? ns : NULL;
  }
  return NULL;
}

static int ns_equal(const char *a, const char *b)
{
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether `el` is <name/> in namespace `ns`. */
static int is_el(const kith_stanza_t *el, const char *name, const char *ns)
{
  return strcmp(kith_stanza_name(el), name) == 0 && ns_equal(eff_ns(el), ns);
}

static int str_is(const char *s, const char *want)
{
  return s != NULL && strcmp(s, want) == 0;
}

/* ------------------------------------------------------------------ */
/* JIDs                                                                */

/*
 * The bytes is_normal_bare() accepts, by value. L: a byte a normalized
 * localpart holds as it is: printable ASCII (0x21-0x7E) except upper case
 * (nodeprep folds it) and what nodeprep prohibits (" & ' / : < > @). H: a
 * byte of a lower-case hostname label ('a'-'z', '0'-'9', '-'), which is an
 * L too. Non-ASCII bytes are neither. A table, because this runs over
 * every byte of every JID of a roster result.
 */
enum { JB_LOCAL = 1, JB_LABEL = 2 };
#define L JB_LOCAL
#define H (JB_LOCAL | JB_LABEL)
static const unsigned char jid_bytes[256] = {
    /* 0x00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20 */ 0, L, 0, L, L, L, 0, 0, L, L, L, L, L, H, L, 0,
    /* 0x30 */ H, H, H, H, H, H, H, H, H, H, 0, L, 0, L, 0, L,
    /* 0x40 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x50 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, L, L, L, L, L,
    /* 0x60 */ L, H, H, H, H, H, H, H, H, H, H, H, H, H, H, H,
    /* 0x70 */ H, H, H, H, H, H, H, H, H, H, H, L, L, L, L, 0,
};
#undef L
#undef H

/*
 * Whether `s` is exactly what kith_jid_normalize(s, bare) would return,
 * judged without allocating. Only a conservative ASCII subset qualifies: a
 * localpart of bytes nodeprep leaves alone, and a domainpart of lower-case
 * hostname labels whose last label is not all digits. Anything else (upper
 * case, non-ASCII, a resource, a trailing dot, an address literal, ...)
 * returns 0 and goes through the JID module, which decides.
 */
static int is_normal_bare(const char *s)
{
  const unsigned char *d = (const unsigned char *)s, *domain, *label;
  int numeric = 1;
  size_t n;

  /* A localpart runs to the first '@'. Every byte a domain label holds is
   * one a localpart holds too, so stopping at any other byte (but the
   * end) rules the string out either way. */
  while (jid_bytes[*d] & JB_LOCAL)
    d++;
  if (*d == '@') {
    n = (size_t)(d - (const unsigned char *)s);
    if (n == 0 || n > KITH_JID_PART_MAX)
      return 0;
    domain = ++d;
  } else if (*d == '\0') {
    domain = d = (const unsigned char *)s;
  } else {
    return 0;
  }
  for (label = domain;; d++) {
    if (*d == '.' || *d == '\0') {
      n = (size_t)(d - label);
      if (n == 0 || n > LABEL_MAX || label[0] == '-' || label[n - 1] == '-')
        return 0;
      if (*d == '\0')
        break;
      label = d + 1;
      numeric = 1;
    } else if ((jid_bytes[*d] & JB_LABEL) == 0) {
      return 0;
    } else if (*d < '0' || *d > '9') {
      numeric = 0;
    }
  }
  /* A last label of digits only must be an IPv4 address; let the JID
   * module judge that. */
  return (size_t)(d - domain) <= KITH_JID_PART_MAX && !numeric;
}

/* ------------------------------------------------------------------ */
/* Reading roster items                                                */

/* Scratch space reused from item to item (the layout is in wire.h so that
 * a caller can keep one across streamed items). */
typedef kith__wire_walk_t walk_t;

static void walk_init(walk_t *w, kith_ctx_t *ctx)
{
  memset(w, 0, sizeof(*w));
  w->ctx = ctx;
}

/* Drop what belongs to the current item only. */
static void walk_next(walk_t *w)
{
  kith__free(w->ctx, w->jid);
  w->jid = NULL;
}

static void walk_done(walk_t *w)
{
  walk_next(w);
  kith__free(w->ctx, w->groups);
  kith__free(w->ctx, w->slots);
  w->groups = NULL;
  w->slots = NULL;
}

void kith__wire_walk_init(kith__wire_walk_t *w, kith_ctx_t *ctx)
{
  walk_init(w, ctx);
}

void kith__wire_walk_done(kith__wire_walk_t *w)
{
  walk_done(w);
}

/* Make room for at least `count` group pointers. */
static kith_status_t groups_grow(walk_t *w, size_t count)
{
  size_t cap = 2 * w->groups_cap;
  const char **g;

  if (count <= w->groups_cap)
    return KITH_OK;
  if (count > SIZE_MAX / (4 * sizeof(size_t)))
    return KITH_ENOMEM;
  if (cap < count)
    cap = count < 8 ? 8 : count;
  if ((g = kith__realloc(w->ctx, w->groups, cap * sizeof(*g))) == NULL)
    return KITH_ENOMEM;
  w->groups = g;
  w->groups_cap = cap;
  return KITH_OK;
}

/* Prepare duplicate detection for `count` groups: a linear scan for a few,
 * an empty hash set for more. */
static kith_status_t dedupe_begin(walk_t *w, size_t count)
{
  size_t need = 16;

  w->nslots = 0;
  if (count <= LINEAR_GROUPS)
    return KITH_OK;
  while (need < 2 * count)
    need <<= 1;
  if (need > w->slots_cap) {
    size_t *s = kith__realloc(w->ctx, w->slots, need * sizeof(*s));

    if (s == NULL)
      return KITH_ENOMEM;
    w->slots = s;
    w->slots_cap = need;
  }
  memset(w->slots, 0, need * sizeof(*w->slots));
  w->nslots = need;
  return KITH_OK;
}

/* FNV-1a: short keys, no adversary gains much from collisions here since
 * the set is per item and bounded by the item's own size. */
static size_t str_hash(const char *s)
{
  uint32_t h = 2166136261u;

  while (*s)
    h = (h ^ (unsigned char)*s++) * 16777619u;
  return h;
}

/*
 * Whether `text` is among the first `n` groups; when it is not, it is
 * recorded in the hash set (if one is in use) as index n, where the
 * caller stores it.
 */
static int group_seen(walk_t *w, const char *text, size_t n)
{
  size_t i, mask;

  if (w->nslots == 0) {
    for (i = 0; i < n; i++) {
      if (strcmp(w->groups[i], text) == 0)
        return 1;
    }
    return 0;
  }
  mask = w->nslots - 1;
  for (i = str_hash(text) & mask; w->slots[i]; i = (i + 1) & mask) {
    if (strcmp(w->groups[w->slots[i] - 1], text) == 0)
      return 1;
  }
  w->slots[i] = n + 1;
  return 0;
}

/*
 * Whether `el` is in namespace `uri`. `same` is an element's namespace
 * string known to be `uri`: parsed children share their parent's string,
 * so comparing pointers settles the common case without strcmp().
 */
static int in_ns(const kith_stanza_t *el, const char *same, const char *uri)
{
  const char *ns = eff_ns(el);

  return (ns && ns == same) || ns_equal(ns, uri);
}

/* Collect the item's groups: document order, no duplicates, no empties. */
static kith_status_t read_groups(walk_t *w, const kith_stanza_t *item,
                                 kith__wire_item_view_t *v)
{
  const char *ns = eff_ns(item); /* jabber:iq:roster, checked by the caller */
  const kith_stanza_t *c;
  size_t n = 0, i, kept = 0;
  kith_status_t st;

  v->groups = NULL;
  v->ngroups = 0;
  for (c = kith_stanza_first_child(item); c; c = kith_stanza_next(c)) {
    const char *text;

    if (strcmp(kith_stanza_name(c), "group") != 0 ||
        !in_ns(c, ns, KITH_NS_ROSTER))
      continue;
    /* Text from several pieces is joined on demand, which can fail. */
    if ((text = kith_stanza_text(c)) == NULL)
      return KITH_ENOMEM;
    if (text[0] == '\0')
      continue;
    if ((st = groups_grow(w, n + 1)) != KITH_OK)
      return st;
    w->groups[n++] = text;
  }
  /* Always: a hash set left from an earlier item must not be consulted. */
  if ((st = dedupe_begin(w, n)) != KITH_OK)
    return st;
  /* Compact in place: kept <= i, and group_seen() reads only [0, kept). */
  for (i = 0; i < n; i++) {
    if (!group_seen(w, w->groups[i], kept))
      w->groups[kept++] = w->groups[i];
  }
  v->groups = kept ? w->groups : NULL;
  v->ngroups = kept;
  return KITH_OK;
}

/* The item's JID in normalized bare form, borrowed from the stanza when it
 * already is, else from w->jid. */
static kith_status_t item_jid(walk_t *w, const char *raw, const char **out,
                              const char **reason)
{
  kith_status_t st;

  if (is_normal_bare(raw)) {
    *out = raw;
    return KITH_OK;
  }
  st = kith_jid_normalize(w->ctx, raw, 1, &w->jid, reason);
  *out = w->jid;
  return st;
}

/* The attributes of an <item/> that matter. */
typedef struct item_attrs {
  const char *jid, *name, *sub, *ask, *approved;
} item_attrs_t;

/* One pass over the item's attributes rather than one lookup each: this
 * runs once per item of rosters that can hold a million. */
static void read_item_attrs(const kith_stanza_t *el, item_attrs_t *a)
{
  size_t i, n = kith_stanza_attr_count(el);

  memset(a, 0, sizeof(*a));
  for (i = 0; i < n; i++) {
    const char *name = NULL, *value = NULL;

    kith_stanza_attr_at(el, i, &name, &value);
    /* The first letter picks the one candidate to compare with. */
    switch (name[0]) {
    case 'j':
      if (strcmp(name, "jid") == 0)
        a->jid = value;
      break;
    case 'n':
      if (strcmp(name, "name") == 0)
        a->name = value;
      break;
    case 's':
      if (strcmp(name, "subscription") == 0)
        a->sub = value;
      break;
    case 'a':
      if (strcmp(name, "ask") == 0)
        a->ask = value;
      else if (strcmp(name, "approved") == 0)
        a->approved = value;
      break;
    default:
      break;
    }
  }
}

/*
 * Read one <item/> into a view. KITH_OK; KITH_EPROTO (no jid, bad
 * subscription) or KITH_EJID (invalid JID) with a static *reason: the
 * item is invalid; KITH_ENOMEM.
 */
static kith_status_t item_read(walk_t *w, const kith_stanza_t *el,
                               int allow_remove, kith__wire_item_view_t *v,
                               const char **reason)
{
  item_attrs_t a;
  kith_status_t st;

  memset(v, 0, sizeof(*v));
  read_item_attrs(el, &a);
  if (a.jid == NULL) {
    *reason = "item has no 'jid'";
    return KITH_EPROTO;
  }
  v->subscription =
      a.sub ? kith__wire_sub_from_name(a.sub) : KITH__WIRE_SUB_NONE;
  if (v->subscription < 0 ||
      (v->subscription == KITH__WIRE_SUB_REMOVE && !allow_remove)) {
    *reason = "item has an invalid 'subscription'";
    return KITH_EPROTO;
  }
  if ((st = item_jid(w, a.jid, &v->jid, reason)) != KITH_OK)
    return st;
  v->name = a.name && a.name[0] ? a.name : NULL;
  v->ask = str_is(a.ask, "subscribe");
  v->approved = str_is(a.approved, "true") || str_is(a.approved, "1");
  return read_groups(w, el, v);
}

/* ------------------------------------------------------------------ */
/* Owned items                                                         */

kith_status_t kith__wire_item_copy(kith_ctx_t *ctx,
                                   const kith__wire_item_view_t *view,
                                   kith__wire_item_t *out)
{
  size_t strs, ptr_off, i, len;
  char *block, *p;

  if (out)
    memset(out, 0, sizeof(*out));
  if (view == NULL || out == NULL || view->jid == NULL ||
      (view->ngroups && view->groups == NULL))
    return KITH_EINVAL;
  strs = strlen(view->jid) + 1 + (view->name ? strlen(view->name) + 1 : 0);
  for (i = 0; i < view->ngroups; i++) {
    if (view->groups[i] == NULL)
      return KITH_EINVAL;
    strs += strlen(view->groups[i]) + 1;
  }
  /* One block: the strings, then the aligned group pointer array. */
  ptr_off = (strs + _Alignof(char *) - 1) & ~(_Alignof(char *) - 1);
  if (view->ngroups > (SIZE_MAX - ptr_off) / sizeof(char *))
    return KITH_ENOMEM;
  block = kith__malloc(ctx, ptr_off + view->ngroups * sizeof(char *));
  if (block == NULL)
    return KITH_ENOMEM;
  len = strlen(view->jid) + 1;
  memcpy(block, view->jid, len);
  out->jid = block;
  p = block + len;
  if (view->name) {
    len = strlen(view->name) + 1;
    out->name = memcpy(p, view->name, len);
    p += len;
  }
  out->groups = view->ngroups ? (char **)(void *)(block + ptr_off) : NULL;
  for (i = 0; i < view->ngroups; i++) {
    len = strlen(view->groups[i]) + 1;
    out->groups[i] = memcpy(p, view->groups[i], len);
    p += len;
  }
  out->ngroups = view->ngroups;
  out->subscription = view->subscription;
  out->ask = view->ask;
  out->approved = view->approved;
  return KITH_OK;
}

void kith__wire_item_view(const kith__wire_item_t *item,
                          kith__wire_item_view_t *view)
{
  if (view == NULL)
    return;
  memset(view, 0, sizeof(*view));
  if (item == NULL)
    return;
  view->jid = item->jid;
  view->name = item->name;
  view->groups = (const char *const *)item->groups;
  view->ngroups = item->ngroups;
  view->subscription = item->subscription;
  view->ask = item->ask;
  view->approved = item->approved;
}

void kith__wire_item_clear(kith_ctx_t *ctx, kith__wire_item_t *item)
{
  if (item == NULL)
    return;
  kith__free(ctx, item->jid);
  memset(item, 0, sizeof(*item));
}

void kith__wire_items_free(kith_ctx_t *ctx, kith__wire_item_t *items, size_t n)
{
  size_t i;

  if (items == NULL)
    return;
  for (i = 0; i < n; i++)
    kith__wire_item_clear(ctx, &items[i]);
  kith__free(ctx, items);
}

/* ------------------------------------------------------------------ */
/* Roster results                                                      */

/*
 * Check that `iq` is a roster result and find its query: *query is NULL
 * for the "unchanged" result with no child (RFC 6121 2.6.3).
 */
static kith_status_t result_query(const kith_stanza_t *iq,
                                  const kith_stanza_t **query)
{
  const char *type = kith_stanza_type(iq);

  *query = NULL;
  if (strcmp(kith_stanza_name(iq), "iq") != 0 || type == NULL)
    return KITH_EPROTO;
  if (strcmp(type, "error") == 0)
    return KITH_ESTANZA;
  if (strcmp(type, "result") != 0)
    return KITH_EPROTO;
  *query = kith_stanza_child(iq, "query", KITH_NS_ROSTER);
  if (*query == NULL && kith_stanza_first_child(iq) != NULL)
    return KITH_EPROTO;
  return KITH_OK;
}

kith_status_t kith__wire_roster_foreach(kith_ctx_t *ctx,
                                        const kith_stanza_t *iq,
                                        kith__wire_item_fn fn, void *ud,
                                        kith__wire_roster_info_t *info)
{
  const kith_stanza_t *query, *el;
  kith_status_t st;
  walk_t w;

  if (info)
    memset(info, 0, sizeof(*info));
  if (iq == NULL || fn == NULL || info == NULL)
    return KITH_EINVAL;
  if ((st = result_query(iq, &query)) != KITH_OK)
    return st;
  if (query == NULL) {
    info->unchanged = 1;
    return KITH_OK;
  }
  info->ver = kith_stanza_attr(query, "ver");
  walk_init(&w, ctx);
  for (el = kith_stanza_first_child(query); el && st == KITH_OK;
       el = kith_stanza_next(el))
    st = kith__wire_roster_item(&w, el, fn, ud, info);
  walk_done(&w);
  if (info->skipped)
    kith__warn(ctx, AREA, "roster result: skipped %zu invalid item(s)",
               info->skipped);
  return st;
}

kith_status_t kith__wire_roster_item(kith__wire_walk_t *w,
                                     const kith_stanza_t *el,
                                     kith__wire_item_fn fn, void *ud,
                                     kith__wire_roster_info_t *info)
{
  const kith_stanza_t *query = kith_stanza_parent(el);
  kith__wire_item_view_t v;
  const char *reason = NULL;
  kith_status_t st;

  if (strcmp(kith_stanza_name(el), "item") != 0 ||
      !in_ns(el, query ? eff_ns(query) : NULL, KITH_NS_ROSTER))
    return KITH_OK;
  st = item_read(w, el, 0, &v, &reason);
  if (st == KITH_OK) {
    if ((st = fn(ud, &v)) == KITH_OK)
      info->count++;
  } else if (st != KITH_ENOMEM) {
    kith__debug(w->ctx, AREA, "roster result: skipped item %zu: %s",
                info->count + info->skipped + 1, reason);
    info->skipped++;
    st = KITH_OK;
  }
  walk_next(w);
  return st;
}

/* State of the allocating parse: a growing array of owned items. */
typedef struct collect {
  kith_ctx_t *ctx;
  kith__wire_item_t *items;
  size_t n, cap;
} collect_t;

static kith_status_t collect_item(void *ud, const kith__wire_item_view_t *v)
{
  collect_t *c = ud;
  kith_status_t st;

  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 16;
    kith__wire_item_t *items;

    if (cap > SIZE_MAX / sizeof(*items))
      return KITH_ENOMEM;
    items = kith__realloc(c->ctx, c->items, cap * sizeof(*items));
    if (items == NULL)
      return KITH_ENOMEM;
    c->items = items;
    c->cap = cap;
  }
  st = kith__wire_item_copy(c->ctx, v, &c->items[c->n]);
  if (st == KITH_OK)
    c->n++;
  return st;
}

kith_status_t kith__wire_parse_roster_result(kith_ctx_t *ctx,
                                             const kith_stanza_t *iq,
                                             kith__wire_item_t **items,
                                             size_t *n, const char **ver,
                                             int *unchanged, size_t *skipped)
{
  collect_t c = {ctx, NULL, 0, 0};
  kith__wire_roster_info_t info;
  kith_status_t st;

  if (items)
    *items = NULL;
  if (n)
    *n = 0;
  if (ver)
    *ver = NULL;
  if (unchanged)
    *unchanged = 0;
  if (skipped)
    *skipped = 0;
  if (items == NULL || n == NULL)
    return KITH_EINVAL;
  st = kith__wire_roster_foreach(ctx, iq, collect_item, &c, &info);
  if (st != KITH_OK) {
    kith__wire_items_free(ctx, c.items, c.n);
    return st;
  }
  *items = c.items;
  *n = c.n;
  if (ver)
    *ver = info.ver;
  if (unchanged)
    *unchanged = info.unchanged;
  if (skipped)
    *skipped = info.skipped;
  return KITH_OK;
}

/* ------------------------------------------------------------------ */
/* Roster pushes                                                       */

static kith_status_t refuse(kith__wire_reject_t *rej, const char *type,
                            const char *condition, const char *reason,
                            int may_ignore)
{
  rej->type = type;
  rej->condition = condition;
  rej->reason = reason;
  rej->may_ignore = may_ignore;
  return KITH_EPROTO;
}

/*
 * Whether `from` may push to this account (RFC 6121 2.1.6): KITH_OK when
 * it may, KITH_EPROTO when it may not, KITH_EINVAL for an invalid own JID,
 * KITH_ENOMEM.
 */
static kith_status_t check_sender(kith_ctx_t *ctx, const char *from,
                                  const char *own_bare, const char *own_full,
                                  int accept_full)
{
  char *bare = NULL, *full = NULL;
  kith_jid_t *sender = NULL;
  kith_status_t st;

  st = kith_jid_normalize(ctx, own_bare, 1, &bare, NULL);
  if (st == KITH_OK && own_full)
    st = kith_jid_normalize(ctx, own_full, 0, &full, NULL);
  if (st != KITH_OK) {
    st = st == KITH_ENOMEM ? st : KITH_EINVAL;
  } else if (from != NULL) {
    /* An invalid 'from' is simply not the account. */
    st = kith_jid_parse(ctx, from, &sender, NULL);
    if (st == KITH_OK) {
      int ok =
          kith_jid_is_bare(sender)
              ? strcmp(kith_jid_bare(sender), bare) == 0
              : accept_full && full && strcmp(kith_jid_full(sender), full) == 0;

      st = ok ? KITH_OK : KITH_EPROTO;
    } else if (st != KITH_ENOMEM) {
      st = KITH_EPROTO;
    }
  }
  kith_jid_free(sender);
  kith__free(ctx, bare);
  kith__free(ctx, full);
  return st;
}

/* Steps 5 and 6 of kith__wire_check_push(): the one item. */
static kith_status_t push_item(kith_ctx_t *ctx, const kith_stanza_t *query,
                               kith__wire_item_t *item,
                               kith__wire_reject_t *rej)
{
  const kith_stanza_t *el, *found = NULL;
  kith__wire_item_view_t v;
  const char *reason = NULL;
  size_t count = 0;
  kith_status_t st;
  walk_t w;

  for (el = kith_stanza_first_child(query); el; el = kith_stanza_next(el)) {
    if (is_el(el, "item", KITH_NS_ROSTER) && count++ == 0)
      found = el;
  }
  if (count != 1)
    return refuse(rej, "modify", "bad-request",
                  count ? "roster push has more than one item"
                        : "roster push has no item",
                  0);
  walk_init(&w, ctx);
  st = item_read(&w, found, 1, &v, &reason);
  if (st == KITH_OK)
    st = kith__wire_item_copy(ctx, &v, item);
  walk_done(&w);
  if (st == KITH_EJID)
    return refuse(rej, "modify", "jid-malformed",
                  "roster push item has an invalid JID", 0);
  if (st == KITH_EPROTO)
    return refuse(rej, "modify", "bad-request", reason, 0);
  return st;
}

kith_status_t kith__wire_check_push(kith_ctx_t *ctx, const kith_stanza_t *iq,
                                    const char *own_bare_jid,
                                    const char *own_full_jid,
                                    int accept_full_jid,
                                    kith__wire_item_t *item, const char **ver,
                                    kith__wire_reject_t *rej)
{
  const kith_stanza_t *query;
  const char *type;
  kith_status_t st;

  if (item)
    memset(item, 0, sizeof(*item));
  if (ver)
    *ver = NULL;
  if (rej)
    memset(rej, 0, sizeof(*rej));
  if (iq == NULL || own_bare_jid == NULL || item == NULL || rej == NULL)
    return KITH_EINVAL;
  type = kith_stanza_type(iq);
  if (strcmp(kith_stanza_name(iq), "iq") != 0)
    return refuse(rej, NULL, NULL, "not an iq", 0);
  if (str_is(type, "result") || str_is(type, "error"))
    return refuse(rej, NULL, NULL, "an iq result or error is not a push", 0);
  if (kith_stanza_id(iq) == NULL)
    return refuse(rej, NULL, NULL, "iq has no 'id' to answer", 0);
  if (!str_is(type, "set") && !str_is(type, "get"))
    return refuse(rej, "modify", "bad-request", "iq has no valid 'type'", 0);
  st = check_sender(ctx, kith_stanza_from(iq), own_bare_jid, own_full_jid,
                    accept_full_jid);
  if (st == KITH_EPROTO)
    return refuse(rej, "cancel", "service-unavailable",
                  "roster push from an unauthorized sender", 1);
  if (st != KITH_OK)
    return st;
  if ((query = kith_stanza_child(iq, "query", KITH_NS_ROSTER)) == NULL)
    return refuse(rej, "cancel", "service-unavailable",
                  "iq has no roster query", 0);
  if (strcmp(type, "get") == 0)
    return refuse(rej, "cancel", "service-unavailable",
                  "a client does not serve roster gets", 0);
  if ((st = push_item(ctx, query, item, rej)) != KITH_OK)
    return st;
  if (ver)
    *ver = kith_stanza_attr(query, "ver");
  return KITH_OK;
}

/* ------------------------------------------------------------------ */
/* Builders                                                            */

/* Hand over `root` on success, free it on failure. */
static kith_status_t finish(kith_status_t st, kith_stanza_t *root,
                            kith_stanza_t **out)
{
  if (st != KITH_OK) {
    kith_stanza_free(root);
    return st;
  }
  *out = root;
  return KITH_OK;
}

/* Set attribute `name` to the normalized `jid` (bare or full form); no
 * attribute for NULL. KITH_EJID when invalid. */
static kith_status_t set_jid_attr(kith_ctx_t *ctx, kith_stanza_t *st,
                                  const char *name, const char *jid, int bare)
{
  char *norm = NULL;
  kith_status_t rc;

  if (jid == NULL)
    return KITH_OK;
  rc = kith_jid_normalize(ctx, jid, bare, &norm, NULL);
  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(st, name, norm);
  kith__free(ctx, norm);
  return rc;
}

/* Append <name>text</name> (namespace `ns`, NULL inherits). */
static kith_status_t add_text_el(kith_stanza_t *parent, const char *name,
                                 const char *ns, const char *text)
{
  kith_stanza_t *el = NULL;
  kith_status_t st = kith_stanza_add_element(parent, name, ns, &el);

  return st == KITH_OK ? kith_stanza_add_text(el, text) : st;
}

/* <iq type=TYPE><query xmlns='jabber:iq:roster'/></iq>. */
static kith_status_t roster_iq(kith_ctx_t *ctx, const char *type,
                               kith_stanza_t **iq, kith_stanza_t **query)
{
  kith_status_t st = kith_stanza_new(ctx, "iq", NULL, iq);

  if (st == KITH_OK)
    st = kith_stanza_set_attr(*iq, "type", type);
  if (st == KITH_OK)
    st = kith_stanza_add_element(*iq, "query", KITH_NS_ROSTER, query);
  return st;
}

kith_status_t kith__wire_build_roster_get(kith_ctx_t *ctx, const char *ver,
                                          kith_stanza_t **out)
{
  kith_stanza_t *iq = NULL, *query = NULL;
  kith_status_t st;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  st = roster_iq(ctx, "get", &iq, &query);
  if (st == KITH_OK && ver)
    st = kith_stanza_set_attr(query, "ver", ver);
  return finish(st, iq, out);
}

/* Append the groups to `item`, each once, in order. */
static kith_status_t add_groups(kith_ctx_t *ctx, kith_stanza_t *item,
                                const char *const *groups, size_t ngroups)
{
  kith_status_t st;
  size_t i, n = 0;
  walk_t w;

  walk_init(&w, ctx);
  st = groups_grow(&w, ngroups);
  if (st == KITH_OK)
    st = dedupe_begin(&w, ngroups);
  for (i = 0; i < ngroups && st == KITH_OK; i++) {
    if (group_seen(&w, groups[i], n))
      continue;
    w.groups[n++] = groups[i];
    st = add_text_el(item, "group", NULL, groups[i]);
  }
  walk_done(&w);
  return st;
}

kith_status_t
kith__wire_build_roster_set(kith_ctx_t *ctx, const char *jid, const char *name,
                            const char *const *groups, size_t ngroups,
                            const char *subscription, kith_stanza_t **out)
{
  kith_stanza_t *iq = NULL, *query = NULL, *item = NULL;
  int remove = subscription != NULL;
  kith_status_t st;
  size_t i;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  if (jid == NULL || (remove && strcmp(subscription, "remove") != 0))
    return KITH_EINVAL;
  for (i = 0; i < ngroups && !remove; i++) {
    if (groups == NULL || groups[i] == NULL || groups[i][0] == '\0')
      return KITH_EINVAL;
  }
  st = roster_iq(ctx, "set", &iq, &query);
  if (st == KITH_OK)
    st = kith_stanza_add_element(query, "item", NULL, &item);
  if (st == KITH_OK)
    st = set_jid_attr(ctx, item, "jid", jid, 1);
  if (st == KITH_OK && remove)
    st = kith_stanza_set_attr(item, "subscription", "remove");
  if (st == KITH_OK && !remove && name && name[0])
    st = kith_stanza_set_attr(item, "name", name);
  if (st == KITH_OK && !remove)
    st = add_groups(ctx, item, groups, ngroups);
  return finish(st, iq, out);
}

/* A reply skeleton: the request's element name, `type`, its id, and the
 * addresses swapped. */
static kith_status_t reply_head(kith_ctx_t *ctx, const kith_stanza_t *request,
                                const char *type, kith_stanza_t **out)
{
  kith_stanza_t *st = NULL;
  kith_status_t rc = kith_stanza_new(ctx, kith_stanza_name(request), NULL, &st);

  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(st, "type", type);
  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(st, "id", kith_stanza_id(request));
  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(st, "to", kith_stanza_from(request));
  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(st, "from", kith_stanza_to(request));
  if (rc != KITH_OK) {
    kith_stanza_free(st);
    st = NULL;
  }
  *out = st;
  return rc;
}

kith_status_t kith__wire_build_result(kith_ctx_t *ctx,
                                      const kith_stanza_t *request,
                                      kith_stanza_t **out)
{
  const char *type;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  if (request == NULL || strcmp(kith_stanza_name(request), "iq") != 0 ||
      kith_stanza_id(request) == NULL)
    return KITH_EINVAL;
  type = kith_stanza_type(request);
  if (!str_is(type, "get") && !str_is(type, "set"))
    return KITH_EINVAL;
  return reply_head(ctx, request, "result", out);
}

/* Whether RFC 6120 lets `request` be answered with an error (8.3.1: never
 * an error; 8.2.3: never an iq result; an iq reply needs the id). */
static int answerable(const kith_stanza_t *request)
{
  const char *name = kith_stanza_name(request);
  const char *type = kith_stanza_type(request);

  if (str_is(type, "error"))
    return 0;
  if (strcmp(name, "iq") == 0)
    return !str_is(type, "result") && kith_stanza_id(request) != NULL;
  return strcmp(name, "message") == 0 || strcmp(name, "presence") == 0;
}

kith_status_t kith__wire_build_error(kith_ctx_t *ctx,
                                     const kith_stanza_t *request,
                                     const char *type, const char *condition,
                                     kith_stanza_t **out)
{
  kith_stanza_t *reply = NULL, *err = NULL;
  kith_status_t st;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  if (request == NULL || !kith__wire_error_valid(type, condition) ||
      !answerable(request))
    return KITH_EINVAL;
  st = reply_head(ctx, request, "error", &reply);
  if (st == KITH_OK)
    st = kith_stanza_add_element(reply, "error", NULL, &err);
  if (st == KITH_OK)
    st = kith_stanza_set_attr(err, "type", type);
  if (st == KITH_OK)
    st = kith_stanza_add_element(err, condition, KITH_NS_STANZA_ERRORS, NULL);
  return finish(st, reply, out);
}

/* <presence to=TO type=TYPE from=FROM/>, addresses normalized. */
static kith_status_t presence_head(kith_ctx_t *ctx, const char *to, int to_bare,
                                   int type, const char *from,
                                   kith_stanza_t **out)
{
  kith_status_t st = kith_stanza_new(ctx, "presence", NULL, out);

  if (st == KITH_OK)
    st = set_jid_attr(ctx, *out, "to", to, to_bare);
  if (st == KITH_OK)
    st = kith_stanza_set_attr(*out, "type", kith__wire_ptype_attr(type));
  if (st == KITH_OK)
    st = set_jid_attr(ctx, *out, "from", from, 0);
  return st;
}

/* Whether build_presence() accepts this type and show together. */
static int presence_args_ok(int type, int show)
{
  if (type == KITH__WIRE_PT_AVAILABLE)
    return show >= 0 && show < SHOW_COUNT;
  if (type != KITH__WIRE_PT_UNAVAILABLE && type != KITH__WIRE_PT_PROBE)
    return 0;
  return show == KITH_SHOW_AVAILABLE || show == KITH_SHOW_UNAVAILABLE;
}

kith_status_t kith__wire_build_presence(kith_ctx_t *ctx, const char *to,
                                        int type, const char *from, int show,
                                        const char *status, int priority,
                                        kith_stanza_t **out)
{
  const char *show_text = NULL;
  kith_stanza_t *p = NULL;
  kith_status_t st;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  if (!presence_args_ok(type, show))
    return KITH_EINVAL;
  if (type == KITH__WIRE_PT_AVAILABLE)
    show_text = kith__wire_show_text(show);
  st = presence_head(ctx, to, 0, type, from, &p);
  if (st == KITH_OK && show_text)
    st = add_text_el(p, "show", NULL, show_text);
  if (st == KITH_OK && type != KITH__WIRE_PT_PROBE && status && status[0])
    st = add_text_el(p, "status", NULL, status);
  if (st == KITH_OK && type == KITH__WIRE_PT_AVAILABLE && priority >= -128 &&
      priority <= 127) {
    char num[8];

    /* A number, not XML: formatting it is safe. */
    snprintf(num, sizeof(num), "%d", priority);
    st = add_text_el(p, "priority", NULL, num);
  }
  return finish(st, p, out);
}

kith_status_t kith__wire_build_subscription(kith_ctx_t *ctx, const char *to,
                                            int type, const char *nick,
                                            const char *from,
                                            kith_stanza_t **out)
{
  kith_stanza_t *p = NULL;
  kith_status_t st;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  if (to == NULL || type < KITH__WIRE_PT_SUBSCRIBE ||
      type > KITH__WIRE_PT_UNSUBSCRIBED)
    return KITH_EINVAL;
  st = presence_head(ctx, to, 1, type, from, &p);
  if (st == KITH_OK && nick && nick[0])
    st = add_text_el(p, "nick", KITH_NS_NICK, nick);
  return finish(st, p, out);
}

/* ------------------------------------------------------------------ */
/* Parsing presence                                                    */

static int xml_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Read an xs:byte leniently: surrounding whitespace, an optional sign and
 * digits. Returns 0 when `s` is no integer; otherwise stores the value
 * clamped to -128..127 and sets *clamped when it had to.
 */
static int parse_priority(const char *s, int *out, int *clamped)
{
  long v = 0;
  int neg = 0, digits = 0;

  while (xml_space(*s))
    s++;
  if (*s == '+' || *s == '-')
    neg = *s++ == '-';
  for (; *s >= '0' && *s <= '9'; s++, digits++) {
    /* Past 1000 the value is clamped anyway; stop growing it. */
    if (v < 1000)
      v = v * 10 + (*s - '0');
  }
  while (xml_space(*s))
    s++;
  if (digits == 0 || *s != '\0')
    return 0;
  if (neg)
    v = -v;
  *clamped = v < -128 || v > 127;
  *out = v < -128 ? -128 : v > 127 ? 127 : (int)v;
  return 1;
}

/* The children of a presence that carry its payload. */
typedef struct presence_parts {
  const kith_stanza_t *show, *status, *status_nolang, *priority, *nick;
} presence_parts_t;

static void find_parts(const kith_stanza_t *st, presence_parts_t *pp)
{
  const char *ns = eff_ns(st);
  const kith_stanza_t *c;

  memset(pp, 0, sizeof(*pp));
  for (c = kith_stanza_first_child(st); c; c = kith_stanza_next(c)) {
    const char *name = kith_stanza_name(c);

    if (!ns_equal(eff_ns(c), ns)) {
      if (!pp->nick && is_el(c, "nick", KITH_NS_NICK))
        pp->nick = c;
    } else if (strcmp(name, "show") == 0) {
      pp->show = pp->show ? pp->show : c;
    } else if (strcmp(name, "status") == 0) {
      pp->status = pp->status ? pp->status : c;
      if (!pp->status_nolang && !kith_stanza_attr(c, "xml:lang"))
        pp->status_nolang = c;
    } else if (strcmp(name, "priority") == 0) {
      pp->priority = pp->priority ? pp->priority : c;
    }
  }
}

/* The text of `el`, NULL for no element or empty text; ENOMEM when the
 * text could not be joined. */
static kith_status_t part_text(const kith_stanza_t *el, const char **out)
{
  const char *t;

  *out = NULL;
  if (el == NULL)
    return KITH_OK;
  if ((t = kith_stanza_text(el)) == NULL)
    return KITH_ENOMEM;
  *out = t[0] ? t : NULL;
  return KITH_OK;
}

/* Fill show, status, priority and nick. KITH_OK or KITH_ENOMEM. */
static kith_status_t read_payload(kith_ctx_t *ctx, const kith_stanza_t *st,
                                  kith__wire_presence_t *p)
{
  const char *show = NULL, *prio = NULL;
  presence_parts_t pp;
  int clamped = 0;

  find_parts(st, &pp);
  if (part_text(pp.status_nolang ? pp.status_nolang : pp.status, &p->status) !=
          KITH_OK ||
      part_text(pp.nick, &p->nick) != KITH_OK ||
      part_text(pp.show, &show) != KITH_OK ||
      part_text(pp.priority, &prio) != KITH_OK)
    return KITH_ENOMEM;
  p->show = KITH_SHOW_AVAILABLE;
  if (p->type == KITH__WIRE_PT_UNAVAILABLE) {
    p->show = KITH_SHOW_UNAVAILABLE;
  } else if (p->type == KITH__WIRE_PT_AVAILABLE &&
             (p->show = kith__wire_show_from_text(show)) < 0) {
    kith__debug(ctx, AREA, "presence: unknown <show/>, taken as available");
    p->show = KITH_SHOW_AVAILABLE;
  }
  p->priority = 0;
  if (prio && !parse_priority(prio, &p->priority, &clamped))
    kith__debug(ctx, AREA, "presence: <priority/> is no integer, taken as 0");
  else if (clamped)
    kith__debug(ctx, AREA, "presence: <priority/> clamped to %d", p->priority);
  return KITH_OK;
}

/* Parse one address attribute; NULL stays NULL. */
static kith_status_t read_addr(kith_ctx_t *ctx, const char *value,
                               kith_jid_t **out)
{
  const char *why = NULL;
  kith_status_t st;

  if (value == NULL)
    return KITH_OK;
  st = kith_jid_parse(ctx, value, out, &why);
  if (st == KITH_EJID)
    kith__debug(ctx, AREA, "presence: invalid address: %s", why);
  return st;
}

kith_status_t kith__wire_parse_presence(kith_ctx_t *ctx,
                                        const kith_stanza_t *st,
                                        kith__wire_presence_t *out,
                                        const char **reason)
{
  const char *why = NULL;
  kith_status_t rc = KITH_OK;

  if (out)
    memset(out, 0, sizeof(*out));
  if (st == NULL || out == NULL) {
    rc = KITH_EINVAL;
    why = "argument is NULL";
  } else if (strcmp(kith_stanza_name(st), "presence") != 0) {
    rc = KITH_EPROTO;
    why = "not a presence";
  } else if ((out->type = kith__wire_ptype_from_attr(kith_stanza_type(st))) <
             0) {
    rc = KITH_EPROTO;
    why = "unknown presence type";
  } else if ((rc = read_addr(ctx, kith_stanza_from(st), &out->from_jid_)) !=
             KITH_OK) {
    why = rc == KITH_EJID ? "'from' is not a valid JID" : "out of memory";
  } else if ((rc = read_addr(ctx, kith_stanza_to(st), &out->to_jid_)) !=
             KITH_OK) {
    why = rc == KITH_EJID ? "'to' is not a valid JID" : "out of memory";
  } else if ((rc = read_payload(ctx, st, out)) != KITH_OK) {
    why = "out of memory";
  }
  if (reason)
    *reason = why;
  if (rc != KITH_OK) {
    kith__wire_presence_clear(out);
    return rc;
  }
  out->from_full = kith_jid_full(out->from_jid_);
  out->from_bare = kith_jid_bare(out->from_jid_);
  out->resource = kith_jid_resource(out->from_jid_);
  out->to = kith_jid_full(out->to_jid_);
  return KITH_OK;
}

void kith__wire_presence_clear(kith__wire_presence_t *p)
{
  if (p == NULL)
    return;
  kith_jid_free(p->from_jid_);
  kith_jid_free(p->to_jid_);
  memset(p, 0, sizeof(*p));
}

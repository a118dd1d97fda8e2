/*
 * The XMPP stream parser on top of expat, and kith_stanza_parse().
 *
 * Input flows: caller -> UTF-8 check and tag lexer (scan) -> a small hold
 * buffer -> expat -> the handlers below, which build stanza trees (a
 * streamed item's in reused memory: see "Streamed items").
 *
 * Why the hold buffer: reparse deferral is switched off so that a stanza is
 * delivered the moment its last byte arrives, but without deferral expat
 * rescans an unfinished token from its start on every call, which is
 * quadratic when a large start tag trickles in a few bytes at a time
 * (CVE-2023-52425). So bytes go to expat at once only up to the last '>'
 * that closes markup (which the lexer finds); any rest is held until more
 * markup closes or the held bytes outgrow what expat would rescan, which
 * keeps the total work linear while delivery stays immediate.
 *
 * Stream error conditions (RFC 6120 4.9.3 and 11):
 *   DOCTYPE, comment, processing instruction, entity declaration or a
 *     reference to an entity other than the predefined five: restricted-xml
 *     (4.9.3.18, 11.1).
 *   An XML declaration with version 1.x other than 1.0: restricted-xml.
 *     XMPP is defined only for XML 1.0 (11.8); 4.9.3.25 unsupported-version
 *     is about the stream header's 'version' attribute, which is the
 *     session's to check, and an XML 1.1 document is well-formed XML, so
 *     neither not-well-formed nor unsupported-version describes it; using
 *     XML outside XMPP's XML profile is what restricted-xml is for. Version
 *     numbers that are not 1.x are not XML: not-well-formed.
 *   An encoding other than UTF-8 declared, or bytes that are not valid
 *     UTF-8: unsupported-encoding (4.9.3.22 names "violating the rules of
 *     the UTF-8 encoding" explicitly; 11.6).
 *   A stanza over max_stanza bytes or nesting over max_depth:
 *     policy-violation (DESIGN.md, "Limits that protect memory").
 *   Out of memory: resource-constraint (4.9.3.17).
 *   Anything else expat rejects (including unbound prefixes): not-well-formed
 *     (4.9.3.13, 11.3).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <expat.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kith_config.h"
#include "core/buf.h"
#include "core/ctx.h"
#include "xml/chars.h"
#include "xml/parser.h"
#include "xml/stanza.h"

#define NS_SEP '|'
/* Held bytes go to expat when they reach this much, or more (see above). */
#define HOLD_MIN 4096u
/* Bytes kept for later when a callback stops the parser, beyond the limit
 * on one stanza. */
#define PENDING_EXTRA (64u * 1024u)

enum halt { HALT_NONE, HALT_STOP, HALT_ERROR, HALT_RESET };

/* Tag lexer states: enough of XML's syntax to know which '>' ends markup. */
enum lex {
  LX_TEXT,
  LX_LT,      /* after '<' */
  LX_TAG,     /* start or end tag */
  LX_SQ,      /* in a '...' attribute value */
  LX_DQ,      /* in a "..." attribute value */
  LX_BANG,    /* after "<!" */
  LX_COMMENT, /* ends with "-->" */
  LX_CDATA,   /* ends with "]]>" */
  LX_PI,      /* ends with "?>" */
  LX_DECL     /* <!DOCTYPE ...>: ends with '>' */
};

struct kith__parser {
  kith_ctx_t *ctx;
  XML_Parser xp;
  kith__parser_cbs_t cbs;
  void *ud;
  size_t max_stanza;
  unsigned max_depth;
  int fragment; /* kith_stanza_parse(): the document element is a stanza */

  /* The tree being built. */
  unsigned level;        /* open elements, the stream root included */
  kith_stanza_t *top;    /* the stanza being built */
  kith_stanza_t *cur;    /* its innermost open element */
  kith_stanza_t *result; /* fragment mode: the parsed element */
  kith__buf_t text;      /* character data not yet in the tree */
  kith__attr_t *scratch; /* attribute list handed to kith__stanza_make */
  size_t scratch_cap;
  kith__ns_t *last_ns; /* namespace most recently seen, for sharing */

  /* Byte offsets since the start of the stream. */
  uint64_t received;     /* accepted from the caller */
  uint64_t given;        /* passed to expat */
  uint64_t mark;         /* end of the last stanza or inter-stanza text */
  uint64_t stanza_start; /* first byte of the stanza being built */
  uint64_t event_end;    /* end of the last event expat reported */

  kith__buf_t hold;    /* scanned bytes not yet given to expat */
  kith__buf_t pending; /* unscanned bytes kept by kith__parser_stop() */
  unsigned char lex, lex_run;
  kith__utf8_t utf8;

  /* Item streaming (kith__parser_set_item_stream()). The configuration
   * survives resets; the rest is per stanza. */
  char *stream_ns;
  kith__parser_item_cb item_cb;
  void *item_ud;
  kith_stanza_t *squery; /* the streamed child of the stanza being built */
  int item_open;         /* a streamed item is being built */
  kith_stanza_t *item;   /* that item, built in `arena` */
  uint64_t item_start;   /* its first byte */
  uint64_t skipped;      /* bytes of items and text under squery so far */
  size_t nstreamed;      /* items streamed from the stanza being built */
  int was_streamed;      /* the stanza being delivered had squery */
  size_t delivered_streamed;
  /* Memory for the streamed item being built (see "Streamed items"). */
  union arena_block *arena;

  int in_feed, in_expat, halt;
  int stopped;      /* a callback stopped the parser; resume on next feed */
  int xp_suspended; /* expat is suspended (XML_StopParser resumable) */
  int deferred_end; /* stream_end to deliver on resume */

  kith_status_t status;
  const char *cond;
  char errtext[160];
};

/* ------------------------------------------------------------------ */
/* expat's memory through the kith context                             */

/*
 * expat's allocator hooks take no user pointer, so the context is passed in
 * a thread-local variable around each expat call that may allocate, and
 * every block remembers its context in a header for realloc and free. This
 * puts expat's buffers under the application's allocator and limits too.
 */
static _Thread_local kith_ctx_t *xm_ctx;
/* Set when one of expat's allocations fails: expat reports some of those
 * as other errors (an unbound prefix, for one), so the parser checks this
 * flag to blame memory instead. */
static _Thread_local int xm_failed;

typedef union xm_header {
  kith_ctx_t *ctx;
  /* Never read: it pads the header so that the block after it is aligned
   * for any type, as malloc's would be. */
  /* cppcheck-suppress unusedStructMember */
  max_align_t align;
} xm_header_t;

static void *xm_malloc(size_t size)
{
  xm_header_t *h;

  if (size > SIZE_MAX - sizeof(*h))
    return NULL;
  h = kith__malloc(xm_ctx, sizeof(*h) + size);
  if (h == NULL) {
    xm_failed = 1;
    return NULL;
  }
  h->ctx = xm_ctx;
  return h + 1;
}

static void *xm_realloc(void *ptr, size_t size)
{
  xm_header_t *h;

  if (ptr == NULL)
    return xm_malloc(size);
  if (size > SIZE_MAX - sizeof(*h))
    return NULL;
  h = (xm_header_t *)ptr - 1;
  h = kith__realloc(h->ctx, h, sizeof(*h) + size);
  if (h == NULL) {
    xm_failed = 1;
    return NULL;
  }
  return h + 1;
}

static void xm_free(void *ptr)
{
  xm_header_t *h;

  if (ptr == NULL)
    return;
  h = (xm_header_t *)ptr - 1;
  kith__free(h->ctx, h);
}

static const XML_Memory_Handling_Suite xm_suite = {xm_malloc, xm_realloc,
                                                   xm_free};

/* Run `call` with expat's allocations charged to p's context. The
 * previous values are restored: a callback may parse with another
 * context. */
#define WITH_XM(p, failed, call)                                               \
  do {                                                                         \
    kith_ctx_t *saved_ctx_ = xm_ctx;                                           \
    int saved_failed_ = xm_failed;                                             \
    xm_ctx = (p)->ctx;                                                         \
    xm_failed = 0;                                                             \
    call;                                                                      \
    (failed) = xm_failed;                                                      \
    xm_ctx = saved_ctx_;                                                       \
    xm_failed = saved_failed_;                                                 \
  } while (0)

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static void fail(kith__parser_t *p, kith_status_t status, const char *cond,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Record the first error and stop expat. A pending reset wins: it throws
 * the stream away, errors included. */
static void fail(kith__parser_t *p, kith_status_t status, const char *cond,
                 const char *fmt, ...)
{
  va_list ap;

  if (p->status != KITH_OK || p->halt == HALT_RESET)
    return;
  p->status = status;
  p->cond = cond;
  va_start(ap, fmt);
  vsnprintf(p->errtext, sizeof(p->errtext), fmt, ap);
  va_end(ap);
  p->halt = HALT_ERROR;
  if (p->in_expat)
    XML_StopParser(p->xp, XML_FALSE);
  kith__debug(p->ctx, "xml", "stream error %s: %s", cond, p->errtext);
}

static void fail_nomem(kith__parser_t *p)
{
  fail(p, KITH_ENOMEM, "resource-constraint", "out of memory");
}

static void fail_expat(kith__parser_t *p, int alloc_failed)
{
  enum XML_Error e = XML_GetErrorCode(p->xp);
  const char *cond = "not-well-formed";
  kith_status_t status = KITH_EXML;

  if (alloc_failed)
    e = XML_ERROR_NO_MEMORY;
  switch (e) {
  case XML_ERROR_NO_MEMORY:
    fail_nomem(p);
    return;
  case XML_ERROR_UNDEFINED_ENTITY:
  case XML_ERROR_RECURSIVE_ENTITY_REF:
  case XML_ERROR_BINARY_ENTITY_REF:
  case XML_ERROR_ASYNC_ENTITY:
  case XML_ERROR_PARAM_ENTITY_REF:
  case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
  case XML_ERROR_ENTITY_DECLARED_IN_PE:
    cond = "restricted-xml";
    break;
  case XML_ERROR_UNKNOWN_ENCODING:
  case XML_ERROR_INCORRECT_ENCODING:
    cond = "unsupported-encoding";
    break;
  default:
    break;
  }
  fail(p, status, cond, "%s at line %lu, column %lu", XML_ErrorString(e),
       (unsigned long)XML_GetCurrentLineNumber(p->xp),
       (unsigned long)XML_GetCurrentColumnNumber(p->xp));
}

/* ------------------------------------------------------------------ */
/* Streamed items                                                      */

/*
 * A streamed item lives only until its callback returns, and a roster
 * result streams a million of them, so an item is not built with an
 * allocation per element and per text as other stanzas are. Its elements
 * and text, laid out as xml/stanza.h defines them, go into an arena that
 * is emptied after each item; the first block is kept, so a roster's
 * items cost no allocation at all. What the elements reference outside
 * the arena is released one by one (item_release()): their namespace
 * references, and a text_cache that kith_stanza_text() may allocate
 * during the callback. Nothing outside points into the arena once the
 * item is released: the item hangs under the shell's streamed child only
 * while its callback runs (its parent pointer is set from the start), and
 * it never reaches kith_stanza_free().
 */
#define ARENA_ALIGN _Alignof(max_align_t)
#define ARENA_FIRST 4096u
/* A block larger than this (after a large item) is not kept. */
#define ARENA_KEEP (64u * 1024u)

typedef union arena_block {
  struct {
    union arena_block *next; /* the older, smaller blocks */
    size_t size, used;       /* bytes after the header */
  } h;
  /* Never read: it aligns the bytes after the header. */
  /* cppcheck-suppress unusedStructMember */
  max_align_t align;
} arena_block_t;

/* `n` bytes from the arena, aligned for any type; NULL when out of
 * memory. */
static void *arena_alloc(kith__parser_t *p, size_t n)
{
  arena_block_t *b = p->arena;

  if (n > SIZE_MAX / 4)
    return NULL;
  n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  if (b == NULL || b->h.size - b->h.used < n) {
    size_t size = b ? 2 * b->h.size : ARENA_FIRST;

    while (size < n)
      size *= 2;
    if ((b = kith__malloc(p->ctx, sizeof(*b) + size)) == NULL)
      return NULL;
    b->h.next = p->arena;
    b->h.size = size;
    b->h.used = 0;
    p->arena = b;
  }
  b->h.used += n;
  return (char *)(b + 1) + b->h.used - n;
}

/* Empty the arena, keeping its newest block unless it is large. */
static void arena_reset(kith__parser_t *p, int keep)
{
  arena_block_t *b = p->arena, *old;

  if (b == NULL)
    return;
  while ((old = b->h.next) != NULL) {
    b->h.next = old->h.next;
    kith__free(p->ctx, old);
  }
  b->h.used = 0;
  if (!keep || b->h.size > ARENA_KEEP) {
    kith__free(p->ctx, b);
    p->arena = NULL;
  }
}

/* Append node `n` to the children of `parent` (stanza.c's link_node()). */
static void link_child(kith_stanza_t *parent, kith__node_t *n)
{
  n->parent = parent;
  n->next = NULL;
  n->prev = parent->last;
  if (parent->last)
    parent->last->next = n;
  else
    parent->first = n;
  parent->last = n;
}

/* Take node `n` out of the children of its parent, freeing nothing. */
static void unlink_child(kith__node_t *n)
{
  kith_stanza_t *parent = n->parent;

  if (n->prev)
    n->prev->next = n->next;
  else
    parent->first = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    parent->last = n->prev;
  n->prev = n->next = NULL;
}

/* The XML namespace's attributes are stored as "xml:NAME", as
 * kith__stanza_make() stores them; every other name as expat gives it. */
#define XML_URI_BAR KITH_NS_XML "|"
#define XML_URI_BAR_LEN (sizeof(XML_URI_BAR) - 1)

static int is_xml_attr(const char *name)
{
  return name[0] == 'h' && strncmp(name, XML_URI_BAR, XML_URI_BAR_LEN) == 0;
}

/* Copy attribute name `name` (`n` bytes with its NUL) as stored to
 * `dst`; returns the byte after its NUL. */
static char *put_attr_name(char *dst, const char *name, size_t n)
{
  if (is_xml_attr(name)) {
    memcpy(dst, "xml:", 4);
    dst += 4;
    name += XML_URI_BAR_LEN;
    n -= XML_URI_BAR_LEN;
  }
  memcpy(dst, name, n);
  return dst + n;
}

/* Attributes whose lengths arena_element() keeps from its first pass to
 * its second (an <item/> has at most five that matter); it measures the
 * strings of any further ones again. */
#define ATTR_LENS 8

/*
 * An element of a streamed item in the arena, laid out as
 * kith__stanza_make() lays it out: the struct, the attribute array, the
 * name, the attribute strings. Takes over the reference `ns` (released on
 * failure too).
 */
static kith_stanza_t *arena_element(kith__parser_t *p, const char *local,
                                    kith__ns_t *ns, const XML_Char **atts)
{
  size_t nattrs, size, len = strlen(local) + 1, i, lens[2 * ATTR_LENS];
  kith_stanza_t *el;
  char *s;

  size = sizeof(*el) + len;
  for (nattrs = 0; atts[2 * nattrs]; nattrs++) {
    size_t n = strlen(atts[2 * nattrs]) + 1,
           v = strlen(atts[2 * nattrs + 1]) + 1;

    if (nattrs < ATTR_LENS) {
      lens[2 * nattrs] = n;
      lens[2 * nattrs + 1] = v;
    }
    size += sizeof(kith__attr_t) + n + v;
  }
  if ((el = arena_alloc(p, size)) == NULL) {
    kith__ns_unref(ns);
    return NULL;
  }
  memset(el, 0, sizeof(*el));
  el->ctx = p->ctx;
  el->ns = ns;
  el->nattrs = nattrs;
  el->attrs = nattrs ? (kith__attr_t *)(el + 1) : NULL;
  s = (char *)(el + 1) + nattrs * sizeof(kith__attr_t);
  memcpy(s, local, len);
  el->name = s;
  s += len;
  for (i = 0; i < nattrs; i++) {
    el->attrs[i].name = s;
    len = i < ATTR_LENS ? lens[2 * i] : strlen(atts[2 * i]) + 1;
    s = put_attr_name(s, atts[2 * i], len);
    el->attrs[i].value = s;
    len = i < ATTR_LENS ? lens[2 * i + 1] : strlen(atts[2 * i + 1]) + 1;
    memcpy(s, atts[2 * i + 1], len);
    s += len;
  }
  return el;
}

/* Text of a streamed item in the arena, appended to `parent`. The parser
 * never adds text twice in a row to an element (text is flushed only
 * before a child element starts and when the element ends), so unlike
 * kith__stanza_append_text() there is nothing to merge with. */
static int arena_text(kith__parser_t *p, kith_stanza_t *parent, const char *s,
                      size_t len)
{
  kith__text_t *t = arena_alloc(p, sizeof(*t) + len + 1);

  if (t == NULL)
    return -1;
  memset(&t->node, 0, sizeof(t->node));
  t->node.is_text = 1;
  t->len = len;
  memcpy(t->data, s, len);
  t->data[len] = '\0';
  link_child(parent, &t->node);
  return 0;
}

/* Release what the arena-built tree `root` references outside the arena
 * (see above), depth first without recursion. */
static void item_release(kith_stanza_t *root)
{
  kith__node_t *n = &root->node;

  while (n) {
    if (!n->is_text) {
      kith_stanza_t *el = (kith_stanza_t *)n;

      kith__ns_unref(el->ns);
      el->ns = NULL;
      if (el->text_cache) {
        kith__free(el->ctx, el->text_cache);
        el->text_cache = NULL;
      }
      if (el->first) {
        n = el->first;
        continue;
      }
    }
    while (n != &root->node && n->next == NULL)
      n = &n->parent->node;
    n = n == &root->node ? NULL : n->next;
  }
}

/* Drop the item being built, if any, and empty the arena. */
static void item_drop(kith__parser_t *p, int keep)
{
  if (p->item)
    item_release(p->item);
  p->item = NULL;
  p->item_open = 0;
  arena_reset(p, keep);
}

/* ------------------------------------------------------------------ */
/* Handlers                                                            */

static void mark_event(kith__parser_t *p)
{
  p->event_end = (uint64_t)XML_GetCurrentByteIndex(p->xp) +
                 (uint64_t)XML_GetCurrentByteCount(p->xp);
}

/* Move buffered character data into the open element. */
static int flush_text(kith__parser_t *p)
{
  if (p->text.len == 0)
    return 0;
  if (p->item_open ? arena_text(p, p->cur, p->text.data, p->text.len) != 0
                   : kith__stanza_append_text(p->cur, p->text.data,
                                              p->text.len) != KITH_OK) {
    fail_nomem(p);
    return -1;
  }
  kith__buf_reset(&p->text);
  return 0;
}

/* A reference for namespace uri[0..len): the parent's or the last one seen
 * when equal, so that a roster's items share one string. */
static kith__ns_t *ns_lookup(kith__parser_t *p, const char *uri, size_t len)
{
  kith__ns_t *ns;

  if (p->cur && kith__ns_is(p->cur->ns, uri, len))
    return kith__ns_ref(p->cur->ns);
  if (kith__ns_is(p->last_ns, uri, len))
    return kith__ns_ref(p->last_ns);
  ns = kith__ns_new(p->ctx, uri, len);
  if (ns) {
    kith__ns_unref(p->last_ns);
    p->last_ns = kith__ns_ref(ns);
  }
  return ns;
}

/* Turn expat's NULL-terminated name/value list into p->scratch. */
static int collect_attrs(kith__parser_t *p, const XML_Char **atts, size_t *n)
{
  size_t count = 0, i;

  while (atts[2 * count])
    count++;
  if (count > p->scratch_cap) {
    kith__attr_t *a = kith__realloc(p->ctx, p->scratch, count * sizeof(*a));

    if (a == NULL)
      return -1;
    p->scratch = a;
    p->scratch_cap = count;
  }
  for (i = 0; i < count; i++) {
    p->scratch[i].name = atts[2 * i];
    p->scratch[i].value = atts[2 * i + 1];
  }
  *n = count;
  return 0;
}

/*
 * Build the element for an expat start event ("URI|local" or "local"): in
 * the arena when it belongs to a streamed item (`streamed`), else as a
 * stanza of its own. NULL when out of memory (reported).
 */
static kith_stanza_t *make_element(kith__parser_t *p, const XML_Char *name,
                                   const XML_Char **atts, int streamed)
{
  const char *bar = strrchr(name, NS_SEP), *local = bar ? bar + 1 : name;
  kith__ns_t *ns = NULL;
  kith_stanza_t *el = NULL;
  size_t n;

  if (bar) {
    ns = ns_lookup(p, name, (size_t)(bar - name));
    if (ns == NULL)
      goto nomem;
  } else if (p->cur && p->cur->ns && p->cur->ns->len) {
    /* No namespace under a parent that has one (xmlns=''): say so with
     * "", since NULL would mean "inherit" to the serializer. */
    ns = ns_lookup(p, "", 0);
    if (ns == NULL)
      goto nomem;
  }
  if (streamed) {
    if ((el = arena_element(p, local, ns, atts)) == NULL)
      goto nomem;
    return el;
  }
  if (collect_attrs(p, atts, &n) != 0) {
    kith__ns_unref(ns);
    goto nomem;
  }
  if (kith__stanza_make(p->ctx, local, strlen(local), ns, p->scratch, n, &el) !=
      KITH_OK)
    goto nomem;
  return el;

nomem:
  fail_nomem(p);
  return NULL;
}

/* Bytes of the unit that the stanza limit applies to, up to the last
 * event: the streamed item being built, or else the stanza without its
 * streamed items and the text between them. */
static uint64_t unit_size(const kith__parser_t *p)
{
  if (p->item_open)
    return p->event_end - p->item_start;
  return p->event_end - p->stanza_start - p->skipped;
}

static int unit_over(kith__parser_t *p)
{
  if (unit_size(p) <= p->max_stanza)
    return 0;
  fail(p, KITH_ELIMIT, "policy-violation",
       p->item_open ? "streamed item exceeds %zu bytes"
                    : "stanza exceeds %zu bytes",
       p->max_stanza);
  return 1;
}

/* Does `el`, just opened at depth 2 under p->top, start streaming? The
 * first child in the stream namespace of an <iq type='result'/>. */
static int starts_stream(const kith__parser_t *p, const kith_stanza_t *el)
{
  const char *type;

  if (p->item_cb == NULL || p->squery || p->nstreamed || p->cur != p->top ||
      el->ns == NULL || strcmp(el->ns->uri, p->stream_ns) != 0 ||
      strcmp(kith_stanza_name(p->top), "iq") != 0)
    return 0;
  type = kith_stanza_type(p->top);
  return type && strcmp(type, "result") == 0;
}

static void deliver_root(kith__parser_t *p, kith_stanza_t *root)
{
  p->mark = p->event_end;
  if (p->cbs.stream_start)
    p->cbs.stream_start(p->ud, root);
  kith_stanza_free(root);
}

static void XMLCALL on_start(void *ud, const XML_Char *name,
                             const XML_Char **atts)
{
  kith__parser_t *p = ud;
  unsigned depth = p->level + (p->fragment ? 1u : 0u);
  kith_stanza_t *el;
  int item;

  if (p->halt != HALT_NONE)
    return;
  mark_event(p);
  if (depth > p->max_depth) {
    fail(p, KITH_ELIMIT, "policy-violation",
         "elements nested deeper than %u levels", p->max_depth);
    return;
  }
  if (flush_text(p) != 0)
    return;
  /* A child of the streamed child is a streamed item. */
  item = p->squery && p->cur == p->squery;
  el = make_element(p, name, atts, item || p->item_open);
  if (el == NULL)
    return;
  p->level++;
  if (depth == 0) {
    deliver_root(p, el);
    return;
  }
  if (depth == 1) {
    p->top = el;
    p->stanza_start = (uint64_t)XML_GetCurrentByteIndex(p->xp);
    p->mark = p->stanza_start;
    p->skipped = 0;
    p->nstreamed = 0;
  } else if (item) {
    /* The shell so far must fit, then the item. It is linked under the
     * streamed child only while it is delivered (see "Streamed items"). */
    p->item = el;
    p->item_open = 1;
    el->node.parent = p->squery;
    p->item_start = (uint64_t)XML_GetCurrentByteIndex(p->xp);
    if (p->item_start - p->stanza_start - p->skipped > p->max_stanza) {
      item_drop(p, 1);
      fail(p, KITH_ELIMIT, "policy-violation", "stanza exceeds %zu bytes",
           p->max_stanza);
      return;
    }
  } else {
    if (depth == 2 && starts_stream(p, el))
      p->squery = el;
    kith__stanza_append(p->cur, el);
  }
  p->cur = el;
  if (unit_over(p))
    return;
  if (p->cur == p->squery)
    p->mark = p->event_end;
}

static void deliver_stanza(kith__parser_t *p)
{
  kith_stanza_t *st = p->top;

  p->top = NULL;
  p->mark = p->event_end;
  p->was_streamed = p->squery != NULL;
  p->delivered_streamed = p->nstreamed;
  p->squery = NULL;
  p->nstreamed = 0;
  p->skipped = 0;
  if (p->fragment)
    p->result = st;
  else if (p->cbs.stanza)
    p->cbs.stanza(p->ud, st);
  else
    kith_stanza_free(st);
  p->was_streamed = 0;
  p->delivered_streamed = 0;
}

/* A streamed item closed: hand it over as the streamed child's only
 * child, then drop it. */
static void deliver_item(kith__parser_t *p)
{
  kith_stanza_t *item = p->item;

  p->item_open = 0;
  p->skipped += p->event_end - p->item_start;
  p->mark = p->event_end;
  p->nstreamed++;
  /* Streaming may have been turned off since the stanza began. */
  if (p->item_cb) {
    kith__stanza_append(p->squery, item);
    p->item_cb(p->item_ud, p->top, item);
    unlink_child(&item->node);
  }
  item_drop(p, 1);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
  kith__parser_t *p = ud;
  unsigned depth;

  (void)name;
  /* expat still reports the end of an empty root after a callback stopped
   * the parser in stream_start; it is delivered on resume. */
  if (p->halt == HALT_STOP && !p->fragment && p->level == 1) {
    p->level = 0;
    p->deferred_end = 1;
    return;
  }
  if (p->halt != HALT_NONE)
    return;
  mark_event(p);
  depth = p->level - 1 + (p->fragment ? 1u : 0u);
  if (flush_text(p) != 0)
    return;
  p->level--;
  if (depth == 0) {
    p->mark = p->event_end;
    if (p->cbs.stream_end)
      p->cbs.stream_end(p->ud);
    return;
  }
  if (p->item_open && p->cur == p->item) {
    if (unit_over(p))
      return;
    p->cur = p->squery;
    deliver_item(p);
    return;
  }
  p->cur = p->cur->node.parent;
  if (depth > 1)
    return;
  if (unit_over(p))
    return;
  deliver_stanza(p);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
  kith__parser_t *p = ud;
  kith_status_t rc;

  if (p->halt != HALT_NONE)
    return;
  mark_event(p);
  if (p->cur == NULL) {
    /* Whitespace between stanzas (keepalives): not part of any stanza. */
    p->mark = p->event_end;
    return;
  }
  if (p->cur == p->squery) {
    /* Between streamed items: counted with neither the items nor the
     * shell, and dropped (a roster query has no text). */
    p->skipped += p->event_end - p->mark;
    p->mark = p->event_end;
    return;
  }
  rc = kith__buf_add(&p->text, s, (size_t)len);
  if (rc == KITH_ELIMIT)
    fail(p, KITH_ELIMIT, "policy-violation", "stanza exceeds %zu bytes",
         p->max_stanza);
  else if (rc != KITH_OK)
    fail_nomem(p);
}

static void XMLCALL on_xml_decl(void *ud, const XML_Char *version,
                                const XML_Char *encoding, int standalone)
{
  kith__parser_t *p = ud;

  (void)standalone;
  if (p->halt != HALT_NONE || version == NULL)
    return;
  mark_event(p);
  if (strcmp(version, "1.0") != 0) {
    if (strncmp(version, "1.", 2) == 0)
      fail(p, KITH_EXML, "restricted-xml",
           "XML version %.16s is not XML 1.0 (RFC 6120 11.8)", version);
    else
      fail(p, KITH_EXML, "not-well-formed", "bad XML version %.16s", version);
    return;
  }
  if (encoding && strcasecmp(encoding, "UTF-8") != 0)
    fail(p, KITH_EXML, "unsupported-encoding",
         "encoding %.32s is not UTF-8 (RFC 6120 11.6)", encoding);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name,
                               const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
  (void)name;
  (void)sysid;
  (void)pubid;
  (void)has_internal_subset;
  fail(ud, KITH_EXML, "restricted-xml", "DOCTYPE is not allowed");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
  (void)data;
  fail(ud, KITH_EXML, "restricted-xml", "comments are not allowed");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target,
                          const XML_Char *data)
{
  (void)target;
  (void)data;
  fail(ud, KITH_EXML, "restricted-xml",
       "processing instructions are not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_pe,
                                   const XML_Char *value, int value_len,
                                   const XML_Char *base, const XML_Char *sysid,
                                   const XML_Char *pubid,
                                   const XML_Char *notation)
{
  (void)name;
  (void)is_pe;
  (void)value;
  (void)value_len;
  (void)base;
  (void)sysid;
  (void)pubid;
  (void)notation;
  fail(ud, KITH_EXML, "restricted-xml", "entity declarations are not allowed");
}

/* ------------------------------------------------------------------ */
/* expat instances                                                     */

static XML_Parser xp_create(kith__parser_t *p)
{
  static const XML_Char sep[] = {NS_SEP, '\0'};
  XML_Parser xp;
  int failed;

  /* Naming UTF-8 here makes expat ignore the encoding the document
   * declares (checked in on_xml_decl) and never guess UTF-16. */
  WITH_XM(p, failed, xp = XML_ParserCreate_MM("UTF-8", &xm_suite, sep));
  (void)failed;
  if (xp == NULL)
    return NULL;
  XML_SetUserData(xp, p);
  XML_SetElementHandler(xp, on_start, on_end);
  XML_SetCharacterDataHandler(xp, on_text);
  XML_SetXmlDeclHandler(xp, on_xml_decl);
  XML_SetStartDoctypeDeclHandler(xp, on_doctype);
  XML_SetCommentHandler(xp, on_comment);
  XML_SetProcessingInstructionHandler(xp, on_pi);
  XML_SetEntityDeclHandler(xp, on_entity_decl);
  XML_SetParamEntityParsing(xp, XML_PARAM_ENTITY_PARSING_NEVER);
#ifdef KITH_HAVE_XML_SETREPARSEDEFERRALENABLED
  XML_SetReparseDeferralEnabled(xp, XML_FALSE);
#endif
  return xp;
}

/* After an expat call: note suspension, translate expat's own errors. */
static void after_expat(kith__parser_t *p, enum XML_Status st, int alloc_failed)
{
  if (st == XML_STATUS_SUSPENDED)
    p->xp_suspended = 1;
  else if (st == XML_STATUS_ERROR &&
           XML_GetErrorCode(p->xp) != XML_ERROR_ABORTED)
    fail_expat(p, alloc_failed);
}

/* Pass n bytes to expat. */
static void give(kith__parser_t *p, const char *s, size_t n, int final)
{
  enum XML_Status st;
  void *b = NULL;
  int failed;

  if (n > (size_t)INT32_MAX) {
    fail(p, KITH_ELIMIT, "policy-violation", "input chunk too large");
    return;
  }
  if (n) {
    WITH_XM(p, failed, b = XML_GetBuffer(p->xp, (int)n));
    if (b == NULL) {
      fail_expat(p, failed);
      return;
    }
    memcpy(b, s, n);
  }
  p->given += n;
  p->in_expat = 1;
  WITH_XM(p, failed,
          st = XML_ParseBuffer(p->xp, (int)n, final ? XML_TRUE : XML_FALSE));
  p->in_expat = 0;
  after_expat(p, st, failed);
}

static void give_hold(kith__parser_t *p)
{
  if (p->hold.len == 0 || p->halt != HALT_NONE)
    return;
  give(p, p->hold.data, p->hold.len, 0);
  kith__buf_reset(&p->hold);
}

/* ------------------------------------------------------------------ */
/* Scanning and limits                                                 */

/* Advance the tag lexer by one byte; non-zero when `c` ends markup. */
static int lex_step(unsigned char *lex, unsigned char *run, char c)
{
  switch (*lex) {
  case LX_TEXT:
    if (c == '<')
      *lex = LX_LT;
    return 0;
  case LX_LT:
    if (c == '!' || c == '?') {
      *lex = c == '!' ? LX_BANG : LX_PI;
      *run = 0;
      return 0;
    }
    /* c is the first byte of a tag's name or its '/'. */
    *lex = LX_TAG;
    /* fall through */
  case LX_TAG:
    if (c == '\'' || c == '"')
      *lex = c == '\'' ? LX_SQ : LX_DQ;
    break;
  case LX_SQ:
  case LX_DQ:
    if (c == (*lex == LX_SQ ? '\'' : '"'))
      *lex = LX_TAG;
    return 0;
  case LX_BANG:
    *lex = c == '-' ? LX_COMMENT : c == '[' ? LX_CDATA : LX_DECL;
    break;
  case LX_COMMENT:
  case LX_CDATA:
    /* "-->" or "]]>": count the dashes or brackets before a '>'. */
    if (c == (*lex == LX_COMMENT ? '-' : ']')) {
      *run = *run < 2 ? *run + 1 : 2;
      return 0;
    }
    if (c != '>' || *run < 2) {
      *run = 0;
      return 0;
    }
    break;
  case LX_PI:
    if (c != '>' || !*run) {
      *run = c == '?';
      return 0;
    }
    break;
  default: /* LX_DECL */
    break;
  }
  if (c != '>' || *lex == LX_SQ || *lex == LX_DQ)
    return 0;
  *lex = LX_TEXT;
  return 1;
}

/*
 * Ordinary markup (text, tags, quoted values: no comments, CDATA,
 * declarations or PIs) moves the lexer only at four bytes: '<', '>' and
 * the two quotes. scan_plain() finds them 64 bytes at a time as a bit
 * mask and steps from one to the next through `plain`, which makes the
 * transitions lex_step() makes. This runs over every byte of the stream:
 * stepping through it a byte or a word at a time cost a tenth of what
 * expat spends on the same bytes, and more than expat in branch misses.
 */
enum { P_TEXT, P_TAG, P_SQ, P_DQ };

/* The four bytes, numbered from 1 (0: any other byte). */
static const unsigned char plain_byte[256] = {
    ['<'] = 1, ['>'] = 2, ['\''] = 3, ['"'] = 4};

/* The next state by state and byte ('<', '>', '\'', '"'). A '<' in text
 * is looked at by the caller first: it may open a comment or a PI. */
static const unsigned char plain[4][4] = {
    /* text */ {P_TAG, P_TEXT, P_TEXT, P_TEXT},
    /* tag */ {P_TAG, P_TEXT, P_SQ, P_DQ},
    /* '...' */ {P_SQ, P_SQ, P_TAG, P_SQ},
    /* "..." */ {P_DQ, P_DQ, P_DQ, P_TAG},
};

/* Bit k set when s[k] is one of the four bytes, for k < len <= 64. */
static uint64_t plain_mask(const char *s, size_t len)
{
  uint64_t m = 0;
  size_t k = 0;
#if defined(__SSE2__)
  const __m128i lt = _mm_set1_epi8('<'), gt = _mm_set1_epi8('>');
  const __m128i sq = _mm_set1_epi8('\''), dq = _mm_set1_epi8('"');

  for (; k + 16 <= len; k += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + k));
    __m128i e = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(x, lt), _mm_cmpeq_epi8(x, gt)),
        _mm_or_si128(_mm_cmpeq_epi8(x, sq), _mm_cmpeq_epi8(x, dq)));

    m |= (uint64_t)(unsigned)_mm_movemask_epi8(e) << k;
  }
#endif
  for (; k < len; k++)
    m |= (uint64_t)(plain_byte[(unsigned char)s[k]] != 0) << k;
  return m;
}

static unsigned lowest_bit(uint64_t m)
{
#if defined(__GNUC__)
  return (unsigned)__builtin_ctzll(m);
#else
  unsigned k = 0;

  while (!(m & 1)) {
    m >>= 1;
    k++;
  }
  return k;
#endif
}

/*
 * Run the lexer from s[i], in a plain state (LX_TEXT, LX_TAG, LX_SQ or
 * LX_DQ), to `n` or to where a '<' that may open something else leaves
 * it in LX_LT; returns where it stopped. *closes as for scan().
 */
static size_t scan_plain(const char *s, size_t i, size_t n, unsigned char *lex,
                         size_t *closes)
{
  unsigned st = *lex == LX_TEXT  ? P_TEXT
                : *lex == LX_TAG ? P_TAG
                : *lex == LX_SQ  ? P_SQ
                                 : P_DQ;
  size_t base;

  for (base = i; base < n; base += 64) {
    uint64_t m = plain_mask(s + base, n - base < 64 ? n - base : 64);

    for (; m; m &= m - 1) {
      size_t at = base + lowest_bit(m);
      unsigned b = plain_byte[(unsigned char)s[at]] - 1u;

      if (st == P_TEXT && b == 0 &&
          (at + 1 == n || s[at + 1] == '!' || s[at + 1] == '?')) {
        *lex = LX_LT;
        return at + 1;
      }
      if (st == P_TAG && b == 1) /* '>' ends a tag */
        *closes = at + 1;
      st = plain[st][b];
    }
  }
  *lex = st == P_TEXT  ? LX_TEXT
         : st == P_TAG ? LX_TAG
         : st == P_SQ  ? LX_SQ
                       : LX_DQ;
  return n;
}

/*
 * Check n bytes for UTF-8 and run the tag lexer over the valid ones.
 * Returns how many bytes are valid; *closes gets the offset just after the
 * last '>' that ends markup (0 if none).
 */
static size_t scan(kith__parser_t *p, const char *s, size_t n, size_t *closes)
{
  size_t ok = kith__utf8_scan(&p->utf8, (const unsigned char *)s, n), i = 0;
  unsigned char lex = p->lex, run = p->lex_run;

  *closes = 0;
  while (i < ok) {
    if (lex == LX_TEXT || lex == LX_TAG || lex == LX_SQ || lex == LX_DQ) {
      i = scan_plain(s, i, ok, &lex, closes);
    } else {
      if (lex_step(&lex, &run, s[i]))
        *closes = i + 1;
      i++;
    }
  }
  p->lex = lex;
  p->lex_run = run;
  return ok;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Where the bytes counted against the limit start, and how many may
 * follow. Inside a stanza that is exact. Between stanzas the next stanza's
 * start is not known until its start tag is complete, so whitespace held
 * before it is allowed for with HOLD_MIN bytes of slack; the exact check
 * follows when the start tag is parsed. */
static uint64_t limit_end(const kith__parser_t *p)
{
  if (p->item_open)
    return add_sat(p->item_start, p->max_stanza);
  if (p->cur && p->cur != p->squery)
    return add_sat(add_sat(p->stanza_start, p->skipped), p->max_stanza);
  return add_sat(add_sat(p->mark, p->max_stanza), HOLD_MIN);
}

static void check_running(kith__parser_t *p)
{
  if (p->halt == HALT_NONE && p->received > limit_end(p))
    fail(p, KITH_ELIMIT, "policy-violation", "stanza exceeds %zu bytes",
         p->max_stanza);
}

/* Hold no more than what expat would rescan if given the bytes now. */
static size_t hold_threshold(const kith__parser_t *p)
{
  uint64_t partial = p->given - p->event_end;

  if (partial < HOLD_MIN)
    return HOLD_MIN;
  return partial > SIZE_MAX ? SIZE_MAX : (size_t)partial;
}

/* Keep the unscanned rest of the input after kith__parser_stop(). */
static void stash(kith__parser_t *p, const char *s, size_t n)
{
  kith_status_t rc = kith__buf_add(&p->pending, s, n);

  if (rc == KITH_ELIMIT) {
    p->halt = HALT_NONE;
    fail(p, KITH_ELIMIT, "policy-violation",
         "too much input while the parser is stopped");
  } else if (rc != KITH_OK) {
    p->halt = HALT_NONE;
    fail_nomem(p);
  }
}

/*
 * Feed input through scan, hold and expat, slice by slice; no slice goes
 * more than one byte past the stanza limit before the limit is checked.
 */
static void pump(kith__parser_t *p, const char *data, size_t len)
{
  size_t off = 0;

  while (off < len && p->halt == HALT_NONE) {
    const char *s = data + off;
    uint64_t end = limit_end(p);
    size_t n = len - off, ok, closes, now, done = 0;

    /* Limits may have been lowered since the last check. */
    check_running(p);
    if (p->halt != HALT_NONE)
      return;
    if (end - p->received < n)
      n = (size_t)(end - p->received) + 1;
    ok = scan(p, s, n, &closes);
    p->received += ok;
    /* Give expat everything up to the last markup close, or everything
     * valid before a UTF-8 error so that earlier errors come first. */
    now = ok < n ? ok : closes;
    if (now || ok < n) {
      give_hold(p);
      if (p->halt == HALT_NONE && now) {
        give(p, s, now, 0);
        done = now;
      }
    }
    if (p->halt == HALT_ERROR || p->halt == HALT_RESET)
      return;
    if (done < ok && kith__buf_add(&p->hold, s + done, ok - done) != KITH_OK) {
      fail_nomem(p);
      return;
    }
    if (p->halt == HALT_STOP) {
      stash(p, s + ok, len - off - ok);
      return;
    }
    if (ok < n) {
      fail(p, KITH_EXML, "unsupported-encoding", "invalid UTF-8 at byte %llu",
           (unsigned long long)p->received);
      return;
    }
    if (p->hold.len >= hold_threshold(p))
      give_hold(p);
    check_running(p);
    off += ok;
  }
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

static void clear_state(kith__parser_t *p, int keep_arena)
{
  /* The item is not in p->top's tree (see "Streamed items"). */
  item_drop(p, keep_arena);
  kith_stanza_free(p->top);
  kith_stanza_free(p->result);
  kith__ns_unref(p->last_ns);
  p->top = p->cur = p->result = p->squery = NULL;
  p->last_ns = NULL;
  p->item_open = p->was_streamed = 0;
  p->item_start = p->skipped = 0;
  p->nstreamed = p->delivered_streamed = 0;
  p->level = 0;
  kith__buf_reset(&p->text);
  kith__buf_reset(&p->hold);
  kith__buf_free(&p->pending);
  p->received = p->given = p->mark = p->stanza_start = p->event_end = 0;
  p->lex = LX_TEXT;
  p->lex_run = 0;
  memset(&p->utf8, 0, sizeof(p->utf8));
  p->halt = HALT_NONE;
  p->stopped = p->xp_suspended = p->deferred_end = 0;
  p->status = KITH_OK;
  p->cond = NULL;
  p->errtext[0] = '\0';
}

static size_t pending_cap(size_t max_stanza)
{
  return max_stanza > SIZE_MAX / 4 - PENDING_EXTRA
             ? SIZE_MAX / 4
             : 2 * max_stanza + PENDING_EXTRA;
}

static kith_status_t parser_new(kith_ctx_t *ctx, const kith__parser_cbs_t *cbs,
                                void *ud, int fragment, kith__parser_t **out)
{
  kith__parser_t *p;

  *out = NULL;
  p = kith__calloc(ctx, 1, sizeof(*p));
  if (p == NULL)
    return KITH_ENOMEM;
  p->ctx = ctx;
  if (cbs)
    p->cbs = *cbs;
  p->ud = ud;
  p->fragment = fragment;
  p->max_stanza = KITH_PARSER_DEFAULT_MAX_STANZA;
  p->max_depth = KITH_PARSER_DEFAULT_MAX_DEPTH;
  kith__buf_init(&p->text, ctx, p->max_stanza);
  kith__buf_init(&p->hold, ctx, SIZE_MAX / 4);
  kith__buf_init(&p->pending, ctx, pending_cap(p->max_stanza));
  p->xp = xp_create(p);
  if (p->xp == NULL) {
    kith__free(ctx, p);
    return KITH_ENOMEM;
  }
  *out = p;
  return KITH_OK;
}

kith_status_t kith__parser_new(kith_ctx_t *ctx, const kith__parser_cbs_t *cbs,
                               void *ud, kith__parser_t **out)
{
  if (out == NULL)
    return KITH_EINVAL;
  return parser_new(ctx, cbs, ud, 0, out);
}

void kith__parser_free(kith__parser_t *p)
{
  if (p == NULL)
    return;
  clear_state(p, 0);
  kith__buf_free(&p->text);
  kith__buf_free(&p->hold);
  kith__free(p->ctx, p->scratch);
  kith__free(p->ctx, p->stream_ns);
  XML_ParserFree(p->xp);
  kith__free(p->ctx, p);
}

void kith__parser_set_limits(kith__parser_t *p, size_t max_stanza,
                             unsigned max_depth)
{
  if (p == NULL)
    return;
  if (max_stanza) {
    p->max_stanza = max_stanza;
    p->text.cap = max_stanza;
    p->pending.cap = pending_cap(max_stanza);
  }
  if (max_depth)
    p->max_depth = max_depth;
}

kith_status_t kith__parser_set_item_stream(kith__parser_t *p,
                                           const char *child_ns,
                                           kith__parser_item_cb cb, void *ud)
{
  char *ns = NULL;

  if (p == NULL || p->fragment || (cb && child_ns == NULL))
    return KITH_EINVAL;
  if (cb && (ns = kith__strdup(p->ctx, child_ns)) == NULL)
    return KITH_ENOMEM;
  kith__free(p->ctx, p->stream_ns);
  p->stream_ns = ns;
  p->item_cb = cb;
  p->item_ud = cb ? ud : NULL;
  return KITH_OK;
}

int kith__parser_streamed(const kith__parser_t *p, size_t *count)
{
  if (count)
    *count = p ? p->delivered_streamed : 0;
  return p ? p->was_streamed : 0;
}

/* Start a new stream now. A fresh expat instance is made first, so that
 * running out of memory leaves a parser that reports it, not a broken one
 * (XML_ParserReset cannot report a failed allocation). */
static kith_status_t do_reset(kith__parser_t *p)
{
  XML_Parser xp = xp_create(p);

  clear_state(p, 1);
  if (xp == NULL) {
    fail_nomem(p);
    return KITH_ENOMEM;
  }
  XML_ParserFree(p->xp);
  p->xp = xp;
  return KITH_OK;
}

kith_status_t kith__parser_reset(kith__parser_t *p)
{
  if (p == NULL)
    return KITH_EINVAL;
  if (!p->in_feed)
    return do_reset(p);
  /* From a callback: expat is on the stack, so the reset waits until the
   * feed call unwinds; the rest of that call's input is discarded. */
  p->halt = HALT_RESET;
  if (p->in_expat)
    XML_StopParser(p->xp, XML_FALSE);
  return KITH_OK;
}

void kith__parser_stop(kith__parser_t *p)
{
  if (p == NULL || !p->in_feed || p->halt != HALT_NONE)
    return;
  p->halt = HALT_STOP;
  if (p->in_expat)
    XML_StopParser(p->xp, XML_TRUE);
}

/* Continue after a stop: first what expat and the stop left over, then the
 * new input (already appended to p->pending). */
static void resume(kith__parser_t *p)
{
  kith__buf_t q;

  p->stopped = 0;
  if (p->deferred_end) {
    p->deferred_end = 0;
    if (p->cbs.stream_end)
      p->cbs.stream_end(p->ud);
    if (p->halt != HALT_NONE)
      return;
  }
  if (p->xp_suspended) {
    enum XML_Status st;
    int failed;

    p->xp_suspended = 0;
    p->in_expat = 1;
    WITH_XM(p, failed, st = XML_ResumeParser(p->xp));
    p->in_expat = 0;
    after_expat(p, st, failed);
    if (p->halt != HALT_NONE)
      return;
  }
  q = p->pending;
  kith__buf_init(&p->pending, p->ctx, q.cap);
  pump(p, q.data, q.len);
  kith__buf_free(&q);
}

kith_status_t kith__parser_feed(kith__parser_t *p, const char *data, size_t len)
{
  if (p == NULL || (data == NULL && len))
    return KITH_EINVAL;
  if (p->in_feed)
    return KITH_ESTATE;
  if (p->status != KITH_OK)
    return p->status;
  p->in_feed = 1;
  p->halt = HALT_NONE;
  if (p->stopped) {
    /* Queue the new bytes behind what the stop left, then resume. */
    stash(p, data, len);
    if (p->halt == HALT_NONE)
      resume(p);
  } else {
    pump(p, data, len);
  }
  p->in_feed = 0;
  if (p->halt == HALT_RESET)
    return do_reset(p);
  if (p->halt == HALT_STOP)
    p->stopped = 1;
  if (p->halt != HALT_ERROR)
    p->halt = HALT_NONE;
  return p->status;
}

const char *kith__parser_error_condition(const kith__parser_t *p)
{
  return p ? p->cond : NULL;
}

const char *kith__parser_error_text(const kith__parser_t *p)
{
  return p && p->cond ? p->errtext : NULL;
}

/* ------------------------------------------------------------------ */
/* One standalone element                                              */

kith_status_t kith_stanza_parse(kith_ctx_t *ctx, const char *xml, size_t len,
                                kith_stanza_t **out)
{
  kith__parser_t *p;
  kith_status_t rc;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  if (xml == NULL && len)
    return KITH_EINVAL;
  rc = parser_new(ctx, NULL, NULL, 1, &p);
  if (rc != KITH_OK)
    return rc;
  p->in_feed = 1;
  pump(p, xml, len);
  give_hold(p);
  if (p->halt == HALT_NONE)
    give(p, NULL, 0, 1);
  p->in_feed = 0;
  rc = p->status;
  if (rc == KITH_OK && p->result == NULL) {
    /* expat reports a missing element as an error at the final call, so
     * this is only reached if that ever changes. */
    rc = KITH_EXML;
  }
  if (rc == KITH_OK) {
    *out = p->result;
    p->result = NULL;
  }
  kith__parser_free(p);
  return rc;
}

/*
 * Stanza trees: elements, attributes, text, shared namespaces.
 */
#include <stdint.h>
#include <string.h>

#include "core/ctx.h"
#include "xml/chars.h"
#include "xml/stanza.h"

#define XML_PREFIX "xml:"
#define XML_URI_BAR KITH_NS_XML "|"
#define XMLNS_URI "http://www.w3.org/2000/xmlns/"

/* ------------------------------------------------------------------ */
/* Shared namespace strings                                            */

kith__ns_t *kith__ns_new(kith_ctx_t *ctx, const char *uri, size_t len)
{
  kith__ns_t *ns;

  if (len > SIZE_MAX - sizeof(*ns) - 1)
    return NULL;
  ns = kith__malloc(ctx, sizeof(*ns) + len + 1);
  if (ns == NULL)
    return NULL;
  ns->refs = 1;
  ns->ctx = ctx;
  ns->len = len;
  memcpy(ns->uri, uri, len);
  ns->uri[len] = '\0';
  return ns;
}

kith__ns_t *kith__ns_ref(kith__ns_t *ns)
{
  if (ns)
    ns->refs++;
  return ns;
}

void kith__ns_unref(kith__ns_t *ns)
{
  if (ns && --ns->refs == 0)
    kith__free(ns->ctx, ns);
}

int kith__ns_is(const kith__ns_t *ns, const char *uri, size_t len)
{
  return ns && ns->len == len && memcmp(ns->uri, uri, len) == 0;
}

/* The namespace an element is in when serialized: its own, else the
 * nearest ancestor's. NULL when no element up the chain has one. */
static const kith__ns_t *effective_ns(const kith_stanza_t *st)
{
  while (st && st->ns == NULL)
    st = st->node.parent;
  return st ? st->ns : NULL;
}

/* ------------------------------------------------------------------ */
/* Attribute blocks                                                    */

static int is_xml_uri_name(const char *name)
{
  return name[0] == 'h' &&
         strncmp(name, XML_URI_BAR, sizeof(XML_URI_BAR) - 1) == 0;
}

/* Bytes needed for the stored name of `name` (with its NUL). */
static size_t stored_name_size(const char *name)
{
  if (is_xml_uri_name(name))
    return sizeof(XML_PREFIX) - 1 + strlen(name + sizeof(XML_URI_BAR) - 1) + 1;
  return strlen(name) + 1;
}

/* Bytes the strings of `n` attributes take, or SIZE_MAX on overflow. */
static size_t attr_strings_size(const kith__attr_t *a, size_t n)
{
  size_t total = 0, i;

  for (i = 0; i < n; i++) {
    size_t s = stored_name_size(a[i].name);

    if (total > SIZE_MAX - s)
      return SIZE_MAX;
    total += s;
    s = strlen(a[i].value) + 1;
    if (total > SIZE_MAX - s)
      return SIZE_MAX;
    total += s;
  }
  return total;
}

static char *put_str(char *dst, const char *a, const char *b)
{
  size_t la = strlen(a), lb = b ? strlen(b) : 0;

  memcpy(dst, a, la);
  if (b)
    memcpy(dst + la, b, lb);
  dst[la + lb] = '\0';
  return dst + la + lb + 1;
}

/* Copy `n` attributes into dst[] with their strings at `strings`. */
static void attrs_fill(kith__attr_t *dst, char *strings,
                       const kith__attr_t *src, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++) {
    const char *name = src[i].name, *value = src[i].value;

    dst[i].name = strings;
    if (is_xml_uri_name(name))
      strings = put_str(strings, XML_PREFIX, name + sizeof(XML_URI_BAR) - 1);
    else
      strings = put_str(strings, name, NULL);
    dst[i].value = strings;
    strings = put_str(strings, value, NULL);
  }
}

/* ------------------------------------------------------------------ */
/* Construction and destruction                                        */

kith_status_t kith__stanza_make(kith_ctx_t *ctx, const char *name,
                                size_t name_len, kith__ns_t *ns,
                                const kith__attr_t *attrs, size_t nattrs,
                                kith_stanza_t **out)
{
  size_t strs = attr_strings_size(attrs, nattrs), size;
  kith_stanza_t *st;
  char *p;

  size = sizeof(*st);
  if (strs == SIZE_MAX || nattrs > (SIZE_MAX - size) / sizeof(kith__attr_t))
    goto nomem;
  size += nattrs * sizeof(kith__attr_t);
  if (name_len > SIZE_MAX - size - 1 || strs > SIZE_MAX - size - name_len - 1)
    goto nomem;
  size += name_len + 1 + strs;
  st = kith__malloc(ctx, size);
  if (st == NULL)
    goto nomem;
  memset(st, 0, sizeof(*st));
  st->ctx = ctx;
  st->ns = ns;
  st->nattrs = nattrs;
  st->attrs = nattrs ? (kith__attr_t *)(st + 1) : NULL;
  p = (char *)(st + 1) + nattrs * sizeof(kith__attr_t);
  memcpy(p, name, name_len);
  p[name_len] = '\0';
  st->name = p;
  if (nattrs)
    attrs_fill(st->attrs, p + name_len + 1, attrs, nattrs);
  *out = st;
  return KITH_OK;

nomem:
  kith__ns_unref(ns);
  return KITH_ENOMEM;
}

static void invalidate_text(kith_stanza_t *st)
{
  kith__free(st->ctx, st->text_cache);
  st->text_cache = NULL;
}

static void node_release(kith__node_t *n)
{
  kith_stanza_t *el;

  if (n->is_text) {
    kith__free(n->parent->ctx, n);
    return;
  }
  el = (kith_stanza_t *)n;
  invalidate_text(el);
  if (el->attrs_own)
    kith__free(el->ctx, el->attrs);
  kith__ns_unref(el->ns);
  kith__free(el->ctx, el);
}

/* Free an element and its subtree without recursion: trees built by hand
 * may be deeper than any stack. Children are unlinked on the way down. */
static void subtree_free(kith_stanza_t *root)
{
  kith__node_t *n = &root->node;

  for (;;) {
    kith_stanza_t *parent;
    int at_root;

    if (!n->is_text && ((kith_stanza_t *)n)->first) {
      kith_stanza_t *el = (kith_stanza_t *)n;
      kith__node_t *c = el->first;

      el->first = c->next;
      n = c;
      continue;
    }
    parent = n->parent;
    at_root = n == &root->node;
    node_release(n);
    if (at_root)
      return;
    n = &parent->node;
  }
}

static void unlink_node(kith_stanza_t *parent, kith__node_t *n)
{
  if (n->prev)
    n->prev->next = n->next;
  else
    parent->first = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    parent->last = n->prev;
  n->prev = n->next = NULL;
  n->parent = NULL;
}

static void link_node(kith_stanza_t *parent, kith__node_t *n)
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

void kith__stanza_append(kith_stanza_t *parent, kith_stanza_t *child)
{
  link_node(parent, &child->node);
  invalidate_text(parent);
}

kith_status_t kith__stanza_append_text(kith_stanza_t *parent, const char *s,
                                       size_t len)
{
  kith__text_t *t;

  if (len == 0)
    return KITH_OK;
  invalidate_text(parent);
  if (parent->last && parent->last->is_text) {
    /* Coalesce with the text that ends the list. realloc may move the
     * node, so the links that point at it are mended afterwards. */
    kith__text_t *old = (kith__text_t *)parent->last;

    if (len > SIZE_MAX - sizeof(*t) - old->len - 1)
      return KITH_ENOMEM;
    t = kith__realloc(parent->ctx, old, sizeof(*t) + old->len + len + 1);
    if (t == NULL)
      return KITH_ENOMEM;
    if (t->node.prev)
      t->node.prev->next = &t->node;
    else
      parent->first = &t->node;
    parent->last = &t->node;
    memcpy(t->data + t->len, s, len);
    t->len += len;
    t->data[t->len] = '\0';
    return KITH_OK;
  }
  if (len > SIZE_MAX - sizeof(*t) - 1)
    return KITH_ENOMEM;
  t = kith__malloc(parent->ctx, sizeof(*t) + len + 1);
  if (t == NULL)
    return KITH_ENOMEM;
  memset(&t->node, 0, sizeof(t->node));
  t->node.is_text = 1;
  t->len = len;
  memcpy(t->data, s, len);
  t->data[len] = '\0';
  link_node(parent, &t->node);
  return KITH_OK;
}

/* ------------------------------------------------------------------ */
/* Checks for the builder API                                          */

static int valid_ns(const char *ns)
{
  return kith__xml_valid_chars(ns, strlen(ns)) && strcmp(ns, XMLNS_URI) &&
         strcmp(ns, KITH_NS_XML);
}

/* Attribute names: "local", "xml:local" or "URI|local". Namespace
 * declarations are the serializer's business, so "xmlns" is refused, and
 * the XML namespace is spelled "xml:NAME" only. */
static int valid_attr_name(const char *name)
{
  const char *bar = strrchr(name, '|');

  if (bar) {
    size_t ulen = (size_t)(bar - name);

    if (ulen == 0 || !kith__xml_valid_chars(name, ulen))
      return 0;
    if ((ulen == strlen(KITH_NS_XML) && !memcmp(name, KITH_NS_XML, ulen)) ||
        (ulen == strlen(XMLNS_URI) && !memcmp(name, XMLNS_URI, ulen)))
      return 0;
    return kith__xml_valid_ncname(bar + 1, strlen(bar + 1));
  }
  if (strncmp(name, XML_PREFIX, sizeof(XML_PREFIX) - 1) == 0)
    name += sizeof(XML_PREFIX) - 1;
  else if (strcmp(name, "xmlns") == 0)
    return 0;
  return kith__xml_valid_ncname(name, strlen(name));
}

/* A reference to `ns` for a new element under `parent`: an ancestor's
 * string when one matches (and lives in the same context), else a copy. */
static kith_status_t ns_for(kith_ctx_t *ctx, const kith_stanza_t *parent,
                            const char *ns, kith__ns_t **out)
{
  size_t len;

  *out = NULL;
  if (ns == NULL)
    return KITH_OK;
  len = strlen(ns);
  for (; parent; parent = parent->node.parent) {
    if (parent->ns && parent->ns->ctx == ctx &&
        kith__ns_is(parent->ns, ns, len)) {
      *out = kith__ns_ref(parent->ns);
      return KITH_OK;
    }
  }
  *out = kith__ns_new(ctx, ns, len);
  return *out ? KITH_OK : KITH_ENOMEM;
}

static kith_status_t new_element(kith_ctx_t *ctx, const kith_stanza_t *parent,
                                 const char *name, const char *ns,
                                 kith_stanza_t **out)
{
  kith__ns_t *ref;
  kith_status_t rc;

  if (name == NULL || !kith__xml_valid_ncname(name, strlen(name)) ||
      (ns && !valid_ns(ns)))
    return KITH_EINVAL;
  rc = ns_for(ctx, parent, ns, &ref);
  if (rc != KITH_OK)
    return rc;
  return kith__stanza_make(ctx, name, strlen(name), ref, NULL, 0, out);
}

/* ------------------------------------------------------------------ */
/* Public API: life cycle                                              */

kith_status_t kith_stanza_new(kith_ctx_t *ctx, const char *name, const char *ns,
                              kith_stanza_t **out)
{
  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  return new_element(ctx, NULL, name, ns, out);
}

void kith_stanza_free(kith_stanza_t *st)
{
  if (st == NULL)
    return;
  /* Freeing a child would leave its parent pointing at freed memory, so a
   * child is detached first: the same as kith_stanza_remove_child(). */
  if (st->node.parent) {
    invalidate_text(st->node.parent);
    unlink_node(st->node.parent, &st->node);
  }
  subtree_free(st);
}

static kith_status_t clone_one(const kith_stanza_t *src, kith_stanza_t **out)
{
  return kith__stanza_make(src->ctx, src->name, strlen(src->name),
                           kith__ns_ref(src->ns), src->attrs, src->nattrs, out);
}

/* Copy the children of `src` under `dst`, depth first without recursion.
 * `d` always stands for the copy of the current node's parent. */
static kith_status_t copy_children(const kith_stanza_t *src, kith_stanza_t *dst)
{
  const kith__node_t *n = src->first;
  kith_stanza_t *d = dst;
  kith_status_t rc;

  while (n) {
    if (n->is_text) {
      const kith__text_t *t = (const kith__text_t *)n;

      rc = kith__stanza_append_text(d, t->data, t->len);
      if (rc != KITH_OK)
        return rc;
    } else {
      const kith_stanza_t *el = (const kith_stanza_t *)n;
      kith_stanza_t *c;

      rc = clone_one(el, &c);
      if (rc != KITH_OK)
        return rc;
      kith__stanza_append(d, c);
      if (el->first) {
        d = c;
        n = el->first;
        continue;
      }
    }
    while (n->next == NULL) {
      if (n->parent == src)
        return KITH_OK;
      n = &n->parent->node;
      d = d->node.parent;
    }
    n = n->next;
  }
  return KITH_OK;
}

kith_status_t kith_stanza_copy(const kith_stanza_t *st, kith_stanza_t **out)
{
  kith_stanza_t *root;
  kith_status_t rc;

  if (out == NULL)
    return KITH_EINVAL;
  *out = NULL;
  if (st == NULL)
    return KITH_EINVAL;
  rc = clone_one(st, &root);
  if (rc != KITH_OK)
    return rc;
  rc = copy_children(st, root);
  if (rc != KITH_OK) {
    subtree_free(root);
    return rc;
  }
  *out = root;
  return KITH_OK;
}

kith_ctx_t *kith_stanza_ctx(const kith_stanza_t *st)
{
  return st ? st->ctx : NULL;
}

const char *kith_stanza_name(const kith_stanza_t *st)
{
  return st ? st->name : NULL;
}

const char *kith_stanza_ns(const kith_stanza_t *st)
{
  return st && st->ns ? st->ns->uri : NULL;
}

kith_status_t kith_stanza_set_ns(kith_stanza_t *st, const char *ns)
{
  kith__ns_t *ref;
  kith_status_t rc;

  if (st == NULL || (ns && !valid_ns(ns)))
    return KITH_EINVAL;
  /* Children sharing the old string hold their own references, so
   * replacing ours never leaves them dangling. */
  rc = ns_for(st->ctx, st->node.parent, ns, &ref);
  if (rc != KITH_OK)
    return rc;
  kith__ns_unref(st->ns);
  st->ns = ref;
  return KITH_OK;
}

/* ------------------------------------------------------------------ */
/* Attributes                                                          */

static size_t attr_index(const kith_stanza_t *st, const char *name)
{
  size_t i;

  for (i = 0; i < st->nattrs; i++) {
    if (strcmp(st->attrs[i].name, name) == 0)
      return i;
  }
  return SIZE_MAX;
}

const char *kith_stanza_attr(const kith_stanza_t *st, const char *name)
{
  size_t i;

  if (st == NULL || name == NULL)
    return NULL;
  i = attr_index(st, name);
  return i == SIZE_MAX ? NULL : st->attrs[i].value;
}

/* Replace the attribute block with `n` attributes from `src` (which may
 * point into the old block: it is freed only after the copy). */
static kith_status_t attrs_replace(kith_stanza_t *st, const kith__attr_t *src,
                                   size_t n)
{
  size_t strs = attr_strings_size(src, n);
  kith__attr_t *block = NULL;

  if (n) {
    if (strs == SIZE_MAX || n > (SIZE_MAX - strs) / sizeof(*block))
      return KITH_ENOMEM;
    block = kith__malloc(st->ctx, n * sizeof(*block) + strs);
    if (block == NULL)
      return KITH_ENOMEM;
    attrs_fill(block, (char *)(block + n), src, n);
  }
  if (st->attrs_own)
    kith__free(st->ctx, st->attrs);
  st->attrs = block;
  st->nattrs = n;
  st->attrs_own = 1;
  return KITH_OK;
}

kith_status_t kith_stanza_set_attr(kith_stanza_t *st, const char *name,
                                   const char *value)
{
  kith__attr_t stack[8], *tmp;
  size_t i, n;
  kith_status_t rc;

  if (st == NULL || name == NULL || !valid_attr_name(name) ||
      (value && !kith__xml_valid_chars(value, strlen(value))))
    return KITH_EINVAL;
  i = attr_index(st, name);
  if (value == NULL && i == SIZE_MAX)
    return KITH_OK;
  if (value && i != SIZE_MAX && strcmp(st->attrs[i].value, value) == 0)
    return KITH_OK;
  /* Build the new list in a scratch array; most elements have few
   * attributes, so the stack does. */
  n = st->nattrs + 1;
  tmp = n <= 8 ? stack : kith__calloc(st->ctx, n, sizeof(*tmp));
  if (tmp == NULL)
    return KITH_ENOMEM;
  if (st->nattrs)
    memcpy(tmp, st->attrs, st->nattrs * sizeof(*tmp));
  n = st->nattrs;
  if (value == NULL) {
    memmove(tmp + i, tmp + i + 1, (n - i - 1) * sizeof(*tmp));
    n--;
  } else if (i != SIZE_MAX) {
    tmp[i].value = value;
  } else {
    tmp[n].name = name;
    tmp[n].value = value;
    n++;
  }
  rc = attrs_replace(st, tmp, n);
  if (tmp != stack)
    kith__free(st->ctx, tmp);
  return rc;
}

size_t kith_stanza_attr_count(const kith_stanza_t *st)
{
  return st ? st->nattrs : 0;
}

kith_status_t kith_stanza_attr_at(const kith_stanza_t *st, size_t i,
                                  const char **name, const char **value)
{
  if (st == NULL)
    return KITH_EINVAL;
  if (i >= st->nattrs)
    return KITH_ENOTFOUND;
  if (name)
    *name = st->attrs[i].name;
  if (value)
    *value = st->attrs[i].value;
  return KITH_OK;
}

/* ------------------------------------------------------------------ */
/* Children                                                            */

kith_status_t kith_stanza_add_child(kith_stanza_t *parent, kith_stanza_t *child)
{
  const kith_stanza_t *up;

  if (parent == NULL || child == NULL || child->node.parent)
    return KITH_EINVAL;
  /* Refuse cycles: the child must not be the parent or above it. */
  for (up = parent; up; up = up->node.parent) {
    if (up == child)
      return KITH_EINVAL;
  }
  kith__stanza_append(parent, child);
  return KITH_OK;
}

kith_status_t kith_stanza_add_element(kith_stanza_t *parent, const char *name,
                                      const char *ns, kith_stanza_t **out)
{
  kith_stanza_t *el;
  kith_status_t rc;

  if (out)
    *out = NULL;
  if (parent == NULL)
    return KITH_EINVAL;
  rc = new_element(parent->ctx, parent, name, ns, &el);
  if (rc != KITH_OK)
    return rc;
  kith__stanza_append(parent, el);
  if (out)
    *out = el;
  return KITH_OK;
}

kith_status_t kith_stanza_add_text(kith_stanza_t *parent, const char *text)
{
  if (text == NULL)
    return KITH_EINVAL;
  return kith_stanza_add_text_len(parent, text, strlen(text));
}

kith_status_t kith_stanza_add_text_len(kith_stanza_t *parent, const char *text,
                                       size_t len)
{
  if (parent == NULL || (text == NULL && len))
    return KITH_EINVAL;
  if (!kith__xml_valid_chars(text, len))
    return KITH_EINVAL;
  return kith__stanza_append_text(parent, text, len);
}

void kith_stanza_remove_child(kith_stanza_t *parent, kith_stanza_t *child)
{
  if (parent == NULL || child == NULL || child->node.parent != parent)
    return;
  invalidate_text(parent);
  unlink_node(parent, &child->node);
  subtree_free(child);
}

static kith_stanza_t *next_element(const kith__node_t *n)
{
  for (; n; n = n->next) {
    if (!n->is_text)
      return (kith_stanza_t *)n;
  }
  return NULL;
}

static int ns_matches(const kith_stanza_t *el, const char *ns)
{
  const kith__ns_t *eff;

  if (ns == NULL)
    return 1;
  eff = effective_ns(el);
  return eff ? strcmp(eff->uri, ns) == 0 : ns[0] == '\0';
}

kith_stanza_t *kith_stanza_child(const kith_stanza_t *st, const char *name,
                                 const char *ns)
{
  kith_stanza_t *c;

  if (st == NULL)
    return NULL;
  for (c = next_element(st->first); c; c = next_element(c->node.next)) {
    if ((name == NULL || strcmp(c->name, name) == 0) && ns_matches(c, ns))
      return c;
  }
  return NULL;
}

kith_stanza_t *kith_stanza_first_child(const kith_stanza_t *st)
{
  return st ? next_element(st->first) : NULL;
}

kith_stanza_t *kith_stanza_next(const kith_stanza_t *st)
{
  return st ? next_element(st->node.next) : NULL;
}

kith_stanza_t *kith_stanza_parent(const kith_stanza_t *st)
{
  return st ? st->node.parent : NULL;
}

/* ------------------------------------------------------------------ */
/* Text                                                                */

const char *kith_stanza_text(const kith_stanza_t *st)
{
  const kith__node_t *n;
  const kith__text_t *only = NULL;
  size_t count = 0, total = 0;
  char *p;

  if (st == NULL)
    return NULL;
  if (st->text_cache)
    return st->text_cache;
  for (n = st->first; n; n = n->next) {
    if (n->is_text) {
      only = (const kith__text_t *)n;
      total += only->len;
      count++;
    }
  }
  if (count == 0)
    return "";
  if (count == 1)
    return only->data;
  /* Mixed content: join the pieces once and keep the result until the
   * element changes. The cache is not part of the element's value, so
   * filling it through a const pointer is sound. */
  p = kith__malloc(st->ctx, total + 1);
  if (p == NULL)
    return NULL;
  ((kith_stanza_t *)st)->text_cache = p;
  for (n = st->first; n; n = n->next) {
    if (n->is_text) {
      memcpy(p, ((const kith__text_t *)n)->data,
             ((const kith__text_t *)n)->len);
      p += ((const kith__text_t *)n)->len;
    }
  }
  *p = '\0';
  return st->text_cache;
}

const char *kith_stanza_child_text(const kith_stanza_t *st, const char *name,
                                   const char *ns)
{
  const kith_stanza_t *c = kith_stanza_child(st, name, ns);

  return c ? kith_stanza_text(c) : NULL;
}

/* ------------------------------------------------------------------ */
/* Errors and common attributes                                        */

/* The first child of `holder` in namespace `ns` other than <text/>. */
static const char *condition_in(const kith_stanza_t *holder, const char *ns)
{
  const kith_stanza_t *c;

  for (c = kith_stanza_first_child(holder); c; c = kith_stanza_next(c)) {
    if (strcmp(c->name, "text") != 0 && ns_matches(c, ns))
      return c->name;
  }
  return NULL;
}

const char *kith_stanza_error_condition(const kith_stanza_t *st)
{
  const char *type;

  if (st == NULL)
    return NULL;
  if (strcmp(st->name, "error") == 0 && ns_matches(st, KITH_NS_STREAMS))
    return condition_in(st, KITH_NS_STREAM_ERRORS);
  type = kith_stanza_attr(st, "type");
  if (type == NULL || strcmp(type, "error") != 0)
    return NULL;
  return condition_in(kith_stanza_child(st, "error", NULL),
                      KITH_NS_STANZA_ERRORS);
}

const char *kith_stanza_id(const kith_stanza_t *st)
{
  return kith_stanza_attr(st, "id");
}

const char *kith_stanza_type(const kith_stanza_t *st)
{
  return kith_stanza_attr(st, "type");
}

const char *kith_stanza_from(const kith_stanza_t *st)
{
  return kith_stanza_attr(st, "from");
}

const char *kith_stanza_to(const kith_stanza_t *st)
{
  return kith_stanza_attr(st, "to");
}

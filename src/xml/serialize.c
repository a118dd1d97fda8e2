/*
 * The XML serializer: escaping, namespace declarations, generated prefixes.
 */
#include <limits.h>
#include <string.h>

#include "core/ctx.h"
#include "xml/serialize.h"
#include "xml/stanza.h"

/* kith_stanza_to_string() refuses to build a string longer than this. */
#define STRING_CAP ((size_t)INT_MAX)

/* Bit 1: escaped in text; bit 2: escaped in attribute values. */
static const unsigned char special[256] = {
    ['&'] = 3, ['<'] = 3,  ['>'] = 3,  ['\r'] = 3,
    ['"'] = 2, ['\''] = 2, ['\t'] = 2, ['\n'] = 2,
};

static const char *entity(char c)
{
  switch (c) {
  case '&':
    return "&amp;";
  case '<':
    return "&lt;";
  case '>':
    return "&gt;";
  case '"':
    return "&quot;";
  case '\'':
    return "&apos;";
  case '\t':
    return "&#9;";
  case '\n':
    return "&#10;";
  default: /* '\r' */
    return "&#13;";
  }
}

kith_status_t kith__xml_escape(kith__buf_t *out, const char *s, size_t len,
                               int attr)
{
  unsigned char mask = attr ? 2 : 1;
  size_t i, run = 0;
  kith_status_t rc;

  for (i = 0; i < len; i++) {
    if (!(special[(unsigned char)s[i]] & mask))
      continue;
    rc = kith__buf_add(out, s + run, i - run);
    if (rc == KITH_OK)
      rc = kith__buf_adds(out, entity(s[i]));
    if (rc != KITH_OK)
      return rc;
    run = i + 1;
  }
  return kith__buf_add(out, s + run, len - run);
}

/* The namespace `el` is in: its own, else the nearest ancestor's in its
 * tree (a subtree written alone keeps the namespace it inherits), else the
 * one in scope where the output goes. */
static const char *effective(const kith_stanza_t *el, const char *root_inh)
{
  for (; el; el = el->node.parent) {
    if (el->ns)
      return el->ns->uri;
  }
  return root_inh;
}

static kith_status_t add_quoted(kith__buf_t *out, const char *name,
                                const char *value, size_t vlen)
{
  kith_status_t rc = kith__buf_addc(out, ' ');

  if (rc == KITH_OK)
    rc = kith__buf_adds(out, name);
  if (rc == KITH_OK)
    rc = kith__buf_add(out, "='", 2);
  if (rc == KITH_OK)
    rc = kith__xml_escape(out, value, vlen, 1);
  if (rc == KITH_OK)
    rc = kith__buf_addc(out, '\'');
  return rc;
}

/* Index of the first attribute of `el` in namespace name[0..ulen): the
 * number in its generated prefix. */
static size_t prefix_of(const kith_stanza_t *el, const char *uri, size_t ulen)
{
  size_t j;

  for (j = 0;; j++) {
    const char *bar = strrchr(el->attrs[j].name, '|');

    if (bar && (size_t)(bar - el->attrs[j].name) == ulen &&
        memcmp(el->attrs[j].name, uri, ulen) == 0)
      return j;
  }
}

static kith_status_t add_attr(kith__buf_t *out, const kith_stanza_t *el,
                              size_t i)
{
  const char *name = el->attrs[i].name, *value = el->attrs[i].value;
  const char *bar = strrchr(name, '|');
  size_t ulen, pfx;
  kith_status_t rc;

  if (bar == NULL)
    return add_quoted(out, name, value, strlen(value));
  ulen = (size_t)(bar - name);
  pfx = prefix_of(el, name, ulen);
  if (pfx == i) {
    /* First attribute in this namespace: declare its prefix here. */
    rc = kith__buf_printf(out, " xmlns:ns%zu='", pfx);
    if (rc == KITH_OK)
      rc = kith__xml_escape(out, name, ulen, 1);
    if (rc == KITH_OK)
      rc = kith__buf_addc(out, '\'');
    if (rc != KITH_OK)
      return rc;
  }
  rc = kith__buf_printf(out, " ns%zu:%s='", pfx, bar + 1);
  if (rc == KITH_OK)
    rc = kith__xml_escape(out, value, strlen(value), 1);
  if (rc == KITH_OK)
    rc = kith__buf_addc(out, '\'');
  return rc;
}

/* "<name xmlns='...' attrs" and then "/>" or ">". `decl` is the namespace
 * to declare, or NULL. */
static kith_status_t open_tag(kith__buf_t *out, const kith_stanza_t *el,
                              const char *decl)
{
  kith_status_t rc = kith__buf_addc(out, '<');
  size_t i;

  if (rc == KITH_OK)
    rc = kith__buf_adds(out, el->name);
  if (rc == KITH_OK && decl)
    rc = add_quoted(out, "xmlns", decl, strlen(decl));
  for (i = 0; rc == KITH_OK && i < el->nattrs; i++)
    rc = add_attr(out, el, i);
  if (rc == KITH_OK)
    rc = el->first ? kith__buf_addc(out, '>') : kith__buf_add(out, "/>", 2);
  return rc;
}

/* The xmlns to declare on `el`, or NULL. Below the root, an element without
 * a namespace of its own inherits and never declares one, which also keeps
 * this from walking up long chains of such elements. */
static const char *declaration(const kith_stanza_t *el, const kith_stanza_t *st,
                               const char *root_inh)
{
  const char *eff, *inh;

  if (el == st) {
    eff = effective(el, root_inh);
    inh = root_inh;
  } else if (el->ns == NULL) {
    return NULL;
  } else {
    eff = el->ns->uri;
    inh = effective(el->node.parent, root_inh);
  }
  return strcmp(eff, inh) != 0 ? eff : NULL;
}

static kith_status_t close_tag(kith__buf_t *out, const kith_stanza_t *el)
{
  kith_status_t rc = kith__buf_add(out, "</", 2);

  if (rc == KITH_OK)
    rc = kith__buf_adds(out, el->name);
  if (rc == KITH_OK)
    rc = kith__buf_addc(out, '>');
  return rc;
}

/* Depth first without recursion: hand-built trees may be deeper than the
 * stack allows. */
kith_status_t kith__xml_serialize(kith__buf_t *out, const kith_stanza_t *st,
                                  const char *ctx_ns)
{
  const char *root_inh = ctx_ns ? ctx_ns : "";
  const kith__node_t *n;
  kith_status_t rc;

  if (out == NULL || st == NULL)
    return KITH_EINVAL;
  n = &st->node;
  for (;;) {
    if (n->is_text) {
      const kith__text_t *t = (const kith__text_t *)n;

      rc = kith__xml_escape(out, t->data, t->len, 0);
    } else {
      const kith_stanza_t *el = (const kith_stanza_t *)n;

      rc = open_tag(out, el, declaration(el, st, root_inh));
      if (rc == KITH_OK && el->first) {
        n = el->first;
        continue;
      }
    }
    if (rc != KITH_OK)
      return rc;
    /* Close every element this node was the last child of. */
    for (;;) {
      if (n == &st->node)
        return KITH_OK;
      if (n->next) {
        n = n->next;
        break;
      }
      n = &n->parent->node;
      rc = close_tag(out, (const kith_stanza_t *)n);
      if (rc != KITH_OK)
        return rc;
    }
  }
}

kith_status_t kith_stanza_to_string(const kith_stanza_t *st, const char *ctx_ns,
                                    char **out, size_t *len)
{
  kith__buf_t b;
  kith_status_t rc;

  if (out)
    *out = NULL;
  if (len)
    *len = 0;
  if (st == NULL || out == NULL)
    return KITH_EINVAL;
  kith__buf_init(&b, st->ctx, STRING_CAP);
  rc = kith__xml_serialize(&b, st, ctx_ns);
  if (rc == KITH_OK) {
    *out = kith__buf_take(&b, len);
    if (*out == NULL)
      rc = KITH_ENOMEM;
  }
  kith__buf_free(&b);
  return rc;
}

/*
 * Internal: the stanza tree's layout, for the parser and the serializer.
 *
 * An element is one allocation: the struct, then its attribute array, then
 * its name, then the attribute strings. Attributes changed later move to a
 * separate block (attrs_own). A text child is one allocation holding its
 * bytes. Namespace URIs are reference-counted and shared: a parsed child in
 * its parent's namespace points at the parent's string instead of copying it.
 *
 * Namespace values: NULL means "none given" (inherits the parent's when
 * serialized); "" means explicitly no namespace (xmlns='') under a parent
 * that has one. The parser produces "" only in that case.
 */
#ifndef KITH_XML_STANZA_H
#define KITH_XML_STANZA_H

#include <stddef.h>
#include "kith/stanza.h"

/* A shared namespace URI. Freed with the context it was allocated from. */
typedef struct kith__ns {
  size_t refs;
  kith_ctx_t *ctx;
  size_t len;
  char uri[];
} kith__ns_t;

kith__ns_t *kith__ns_new(kith_ctx_t *ctx, const char *uri, size_t len);
kith__ns_t *kith__ns_ref(kith__ns_t *ns); /* NULL-safe */
void kith__ns_unref(kith__ns_t *ns);      /* NULL-safe */
/* Non-zero when ns holds exactly uri[0..len). */
int kith__ns_is(const kith__ns_t *ns, const char *uri, size_t len);

typedef struct kith__attr {
  const char *name;
  const char *value;
} kith__attr_t;

typedef struct kith__node {
  struct kith_stanza *parent;
  struct kith__node *prev;
  struct kith__node *next;
  unsigned char is_text;
} kith__node_t;

typedef struct kith__text {
  kith__node_t node;
  size_t len;
  char data[]; /* NUL-terminated */
} kith__text_t;

struct kith_stanza {
  kith__node_t node; /* first member: a kith__node_t * converts back */
  kith_ctx_t *ctx;
  kith__ns_t *ns;
  const char *name;
  kith__attr_t *attrs;
  size_t nattrs;
  kith__node_t *first;
  kith__node_t *last;
  char *text_cache; /* kith_stanza_text() when several text children */
  unsigned char attrs_own;
};

/*
 * Create an element in one allocation. `ns` is a reference the call takes
 * over (released on failure too). Attribute names "URI|local" whose URI is
 * the XML namespace are stored as "xml:local"; nothing else is checked, so
 * callers pass names and values that are already valid (the parser) or
 * were checked (the builder API). Returns KITH_OK or KITH_ENOMEM.
 */
kith_status_t kith__stanza_make(kith_ctx_t *ctx, const char *name,
                                size_t name_len, kith__ns_t *ns,
                                const kith__attr_t *attrs, size_t nattrs,
                                kith_stanza_t **out);

/* Append a root `child` to `parent`, no checks. */
void kith__stanza_append(kith_stanza_t *parent, kith_stanza_t *child);

/* Append text (not checked), merged into a text child that ends the list.
 * Returns KITH_OK or KITH_ENOMEM. */
kith_status_t kith__stanza_append_text(kith_stanza_t *parent, const char *s,
                                       size_t len);

#endif /* KITH_XML_STANZA_H */

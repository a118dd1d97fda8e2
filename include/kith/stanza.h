/*
 * kith: XML stanza trees.
 *
 * A kith_stanza_t is an element with a name, a resolved namespace URI,
 * ordered attributes and ordered children (elements and text). Build one
 * with the functions below and send it through kith_conn_send(); never
 * build XML with string formatting. Serialization escapes text and
 * attribute values in exactly one place (kith_stanza_to_string()).
 *
 * Ownership: a child added with kith_stanza_add_child() belongs to its
 * parent; kith_stanza_free() frees a root and its whole subtree. Borrowed
 * strings returned here stay valid until that element is next modified or
 * freed. Setters copy their arguments.
 *
 * Attributes: names are stored as written without a namespace, except
 * attributes in the XML namespace, which are stored as "xml:NAME" (for
 * example "xml:lang"). Other namespaced attributes are stored as
 * "URI|local" and serialized with a generated prefix.
 *
 * Namespaces: an element's namespace is NULL when none was given (it then
 * inherits its parent's), or "" for an element explicitly in no namespace
 * (xmlns='') below one that has a namespace; the parser produces "" only
 * there. Lookups by namespace (kith_stanza_child()) compare the namespace
 * an element is in, its own or else the nearest ancestor's.
 *
 * Checks: the builder functions refuse, with KITH_EINVAL, names that are not
 * XML names without a colon, text and values that are not UTF-8 made of XML
 * 1.0 characters, and namespace declarations written as attributes, so that
 * what the serializer writes is always well-formed.
 */
#ifndef KITH_STANZA_H
#define KITH_STANZA_H

#include <stddef.h>
#include "export.h"
#include "status.h"
#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kith_stanza kith_stanza_t;

/* Namespaces used throughout. */
#define KITH_NS_CLIENT "jabber:client"
#define KITH_NS_COMPONENT "jabber:component:accept"
#define KITH_NS_STREAMS "http://etherx.jabber.org/streams"
#define KITH_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define KITH_NS_STANZA_ERRORS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define KITH_NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define KITH_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define KITH_NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define KITH_NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define KITH_NS_ROSTER "jabber:iq:roster"
#define KITH_NS_ROSTER_VER "urn:xmpp:features:rosterver"
#define KITH_NS_PRE_APPROVAL "urn:xmpp:features:pre-approval"
#define KITH_NS_PING "urn:xmpp:ping"
#define KITH_NS_NICK "http://jabber.org/protocol/nick"
#define KITH_NS_XML "http://www.w3.org/XML/1998/namespace"

/**
 * Create an element. `name` is required; `ns` may be NULL, meaning the
 * element inherits its parent's namespace when serialized, or "" for no
 * namespace. Returns KITH_OK, KITH_EINVAL (NULL `out` or `name`, a name
 * that is not an XML name or has a colon, `ns` with characters XML forbids
 * or one of the reserved xml/xmlns namespace URIs) or KITH_ENOMEM.
 */
KITH_EXTERN kith_status_t kith_stanza_new(kith_ctx_t *ctx, const char *name,
                                          const char *ns, kith_stanza_t **out);

/**
 * Free an element and its subtree. NULL is a no-op. Meant for roots; an
 * element that still has a parent is detached first, as by
 * kith_stanza_remove_child().
 */
KITH_EXTERN void kith_stanza_free(kith_stanza_t *st);

/**
 * Deep copy into *out, a new root in the same context (`st` may be a
 * child). Returns KITH_OK, KITH_EINVAL or KITH_ENOMEM (*out NULL).
 */
KITH_EXTERN kith_status_t kith_stanza_copy(const kith_stanza_t *st,
                                           kith_stanza_t **out);

/** The context the element was created with. */
KITH_EXTERN kith_ctx_t *kith_stanza_ctx(const kith_stanza_t *st);

/** The element's local name (no prefix), or NULL for NULL. Borrowed. */
KITH_EXTERN const char *kith_stanza_name(const kith_stanza_t *st);
/** The resolved namespace URI, NULL when none was given, or "" for no
 * namespace. Borrowed. */
KITH_EXTERN const char *kith_stanza_ns(const kith_stanza_t *st);
/** Set (copy) the namespace; NULL clears it. Children keep theirs.
 * Returns KITH_OK, KITH_EINVAL (as for kith_stanza_new()) or KITH_ENOMEM. */
KITH_EXTERN kith_status_t kith_stanza_set_ns(kith_stanza_t *st, const char *ns);

/** An attribute's value, or NULL when absent. Borrowed. */
KITH_EXTERN const char *kith_stanza_attr(const kith_stanza_t *st,
                                         const char *name);
/**
 * Set an attribute (copied, replacing any old value in place so the order
 * stays; a new one goes last). `value` NULL removes the attribute, which is
 * not an error when it is absent. `name` is "local", "xml:local" or
 * "URI|local"; "xmlns" and "xmlns:..." are refused (the serializer declares
 * namespaces), as is the XML namespace spelled as a URI. Returns KITH_OK,
 * KITH_EINVAL or KITH_ENOMEM. Invalidates borrowed attribute strings.
 */
KITH_EXTERN kith_status_t kith_stanza_set_attr(kith_stanza_t *st,
                                               const char *name,
                                               const char *value);
/** Number of attributes. */
KITH_EXTERN size_t kith_stanza_attr_count(const kith_stanza_t *st);
/**
 * The i-th attribute (0-based, in order). Returns KITH_ENOTFOUND past the
 * end. Borrowed strings.
 */
KITH_EXTERN kith_status_t kith_stanza_attr_at(const kith_stanza_t *st, size_t i,
                                              const char **name,
                                              const char **value);

/**
 * Append `child` (a root) to `parent`; the parent takes ownership. Returns
 * KITH_EINVAL, without taking ownership, when either is NULL, `child`
 * already has a parent, or `child` is `parent` or one of its ancestors.
 */
KITH_EXTERN kith_status_t kith_stanza_add_child(kith_stanza_t *parent,
                                                kith_stanza_t *child);
/**
 * Create and append a child element in one call; *out (may be NULL) gets
 * the borrowed new child. `ns` NULL inherits.
 */
KITH_EXTERN kith_status_t kith_stanza_add_element(kith_stanza_t *parent,
                                                  const char *name,
                                                  const char *ns,
                                                  kith_stanza_t **out);
/**
 * Append text (copied) after the existing children, merged with text that
 * already ends the list. Returns KITH_OK, KITH_EINVAL (NULL, not UTF-8, or
 * characters XML 1.0 forbids such as NUL or form feed) or KITH_ENOMEM.
 */
KITH_EXTERN kith_status_t kith_stanza_add_text(kith_stanza_t *parent,
                                               const char *text);
/** Append `len` bytes of text (need not be NUL-terminated). */
KITH_EXTERN kith_status_t kith_stanza_add_text_len(kith_stanza_t *parent,
                                                   const char *text,
                                                   size_t len);
/**
 * Detach `child` from its parent and free it (with its subtree). Nothing
 * happens when `child` is not a child of `parent`.
 */
KITH_EXTERN void kith_stanza_remove_child(kith_stanza_t *parent,
                                          kith_stanza_t *child);

/**
 * First element child matching `name` and `ns` (either may be NULL for
 * any), or NULL. `ns` is compared with the namespace the child is in, its
 * own or inherited. Borrowed.
 */
KITH_EXTERN kith_stanza_t *kith_stanza_child(const kith_stanza_t *st,
                                             const char *name, const char *ns);
/** First element child (text is skipped), or NULL. */
KITH_EXTERN kith_stanza_t *kith_stanza_first_child(const kith_stanza_t *st);
/** Next element sibling (text is skipped), or NULL. */
KITH_EXTERN kith_stanza_t *kith_stanza_next(const kith_stanza_t *st);
/** Parent element, or NULL for a root. */
KITH_EXTERN kith_stanza_t *kith_stanza_parent(const kith_stanza_t *st);

/**
 * The element's direct character data (all its text children joined, text
 * of child elements excluded), or "" when it has none. Borrowed, valid
 * until the element is modified. NULL for a NULL element, or when joining
 * several text children runs out of memory.
 */
KITH_EXTERN const char *kith_stanza_text(const kith_stanza_t *st);
/** Text of the first child matching name/ns, or NULL if no such child. */
KITH_EXTERN const char *kith_stanza_child_text(const kith_stanza_t *st,
                                               const char *name,
                                               const char *ns);

/**
 * Serialize to XML. Namespace declarations are written where an element's
 * namespace differs from its parent's; at the root, an `xmlns` equal to
 * `ctx_ns` (the stream's default namespace, may be NULL) is omitted.
 * Text escapes & < > and CR; attribute values (single-quoted) also " ' TAB
 * and LF, so parsing the output gives the same tree back. "URI|local"
 * attributes get a prefix "nsN" declared on their element.
 * *out is NUL-terminated and freed with kith_free(); *len (may be NULL)
 * gets its length. Returns KITH_OK, KITH_EINVAL, KITH_ENOMEM or KITH_ELIMIT
 * (over INT_MAX bytes).
 */
KITH_EXTERN kith_status_t kith_stanza_to_string(const kith_stanza_t *st,
                                                const char *ctx_ns, char **out,
                                                size_t *len);

/**
 * Parse one complete XML element from `xml` (`len` bytes) into a new tree,
 * with the same rules and default limits as the stream parser (the element
 * counts as a stanza: depth 1, at most 256 KiB). An XML declaration and
 * whitespace around the element are allowed. Returns KITH_EXML (malformed
 * or forbidden XML), KITH_ELIMIT, KITH_ENOMEM, or KITH_EINVAL (NULL `out`,
 * or NULL `xml` with a non-zero `len`); *out is NULL on failure.
 */
KITH_EXTERN kith_status_t kith_stanza_parse(kith_ctx_t *ctx, const char *xml,
                                            size_t len, kith_stanza_t **out);

/**
 * For an error stanza (type='error'), the defined condition element's name
 * ("item-not-found", ...) in the stanza-errors namespace, or NULL. For a
 * stream error (<stream:error/>), the condition in the stream-errors
 * namespace ("conflict", ...). The \<text/\> element is skipped. Borrowed.
 */
KITH_EXTERN const char *kith_stanza_error_condition(const kith_stanza_t *st);

/** The 'id' attribute, or NULL. Borrowed. */
KITH_EXTERN const char *kith_stanza_id(const kith_stanza_t *st);
/** The 'type' attribute, or NULL. Borrowed. */
KITH_EXTERN const char *kith_stanza_type(const kith_stanza_t *st);
/** The 'from' attribute as sent (not normalized), or NULL. Borrowed. */
KITH_EXTERN const char *kith_stanza_from(const kith_stanza_t *st);
/** The 'to' attribute as sent (not normalized), or NULL. Borrowed. */
KITH_EXTERN const char *kith_stanza_to(const kith_stanza_t *st);

#ifdef __cplusplus
}
#endif

#endif /* KITH_STANZA_H */

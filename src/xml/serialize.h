/*
 * Internal: the one XML serializer.
 *
 * Everything kith writes as XML goes through these two functions, which
 * append to a capped buffer (core/buf.h) and report KITH_ELIMIT when the
 * buffer's cap would be passed, KITH_ENOMEM when it cannot grow. On error
 * the buffer may hold a partial result; callers discard it.
 */
#ifndef KITH_XML_SERIALIZE_H
#define KITH_XML_SERIALIZE_H

#include <stddef.h>
#include "core/buf.h"
#include "kith/stanza.h"

/*
 * Append `st` and its subtree. An element's `xmlns` is declared where its
 * namespace differs from its parent's; at `st` itself, unless it equals
 * `ctx_ns` (the default namespace in scope where the output goes, for
 * example "jabber:client" inside a stream; NULL for none). Attributes
 * "xml:NAME" are written as is; "URI|local" ones get a generated prefix
 * ("ns" and a number) declared on the same element.
 */
kith_status_t kith__xml_serialize(kith__buf_t *out, const kith_stanza_t *st,
                                  const char *ctx_ns);

/*
 * Append s[0..len) escaped. Text (`attr` 0): & < > and CR (as &#13;, which
 * a parser would otherwise turn into LF). Attribute values (`attr` non-zero,
 * for a value quoted with ' or "): also " ' TAB LF as &quot; &apos; &#9;
 * &#10;, so that attribute-value normalization keeps them. The input is
 * not checked for UTF-8; callers pass valid XML characters.
 */
kith_status_t kith__xml_escape(kith__buf_t *out, const char *s, size_t len,
                               int attr);

#endif /* KITH_XML_SERIALIZE_H */

/*
 * Internal: the XMPP stream parser (expat underneath).
 *
 * Feed it bytes in chunks of any size (one byte at a time included). It
 * reports the stream header, each complete top-level element (a "stanza",
 * depth 1 under the stream root) as soon as its last byte has been fed, and
 * the end of the stream. Namespaces are resolved.
 *
 * Limits are enforced while parsing: a stanza whose serialized input exceeds
 * `max_stanza` bytes, or nesting deeper than `max_depth` (the stream root is
 * depth 0, a stanza depth 1), stops the parser with a stream error. So do
 * DOCTYPE declarations, comments, processing instructions (other than the
 * XML declaration), invalid UTF-8, XML versions other than 1.0, and
 * anything expat considers not well-formed.
 *
 * After an error, kith__parser_feed() keeps returning the same error and no
 * callback fires again.
 *
 * Item streaming (kith__parser_set_item_stream()): a roster result is one
 * stanza that may hold a million items, too big to build as one tree under
 * the stanza limit. In this mode, when a stanza <iq type='result'/> has a
 * child element in the configured namespace (the first such child only;
 * the "streamed child", a roster <query/>), each element child of it (an
 * <item/>) goes to the item callback the moment its end tag is parsed and
 * is freed right after; it is never kept in the tree. Text directly inside
 * the streamed child is dropped (a roster query has none that matters).
 * The stanza limit then applies to each item and, separately, to the rest
 * of the stanza (the "shell": the iq and streamed child start and end tags
 * and any other children); items and the text between them are not
 * counted in it. The depth limit applies as always. When the stanza ends,
 * the shell (its streamed child now empty) is delivered through the
 * `stanza` callback as usual, and kith__parser_streamed() tells that
 * callback it was streamed and how many items were. Every other stanza,
 * roster pushes (type 'set') included, is built and delivered whole.
 */
#ifndef KITH_XML_PARSER_H
#define KITH_XML_PARSER_H

#include <stddef.h>
#include "kith/ctx.h"
#include "kith/stanza.h"

#define KITH_PARSER_DEFAULT_MAX_STANZA (256u * 1024u)
#define KITH_PARSER_DEFAULT_MAX_DEPTH 32u

typedef struct kith__parser kith__parser_t;

typedef struct kith__parser_cbs {
  /* The stream root opened. `root` is an element with the root's name,
   * namespace and attributes, and no children; borrowed for the call. */
  void (*stream_start)(void *ud, const kith_stanza_t *root);
  /* A complete top-level element. Ownership passes to the callback. */
  void (*stanza)(void *ud, kith_stanza_t *stanza);
  /* The stream root closed (</stream:stream>). */
  void (*stream_end)(void *ud);
} kith__parser_cbs_t;

/*
 * An item streamed out of a stanza (see "Item streaming" above). `shell` is
 * the stanza so far: the iq with its attributes, and the streamed child
 * with its attributes (a roster's 'ver'), holding `item` as its only child
 * element for the duration of the call. Both are borrowed for the call;
 * kith_stanza_parent(item) is the streamed child. The item lives in memory
 * the parser reuses for the next item (a roster's items cost no allocation
 * each): keep nothing of it past the call but copies (kith_stanza_copy(),
 * or strings copied out). The callback may call kith__parser_stop() or
 * kith__parser_reset() as the other callbacks may.
 */
typedef void (*kith__parser_item_cb)(void *ud, const kith_stanza_t *shell,
                                     const kith_stanza_t *item);

kith_status_t kith__parser_new(kith_ctx_t *ctx, const kith__parser_cbs_t *cbs,
                               void *ud, kith__parser_t **out);
void kith__parser_free(kith__parser_t *p);

/* Set the limits (0 keeps the current value). Takes effect at once. */
void kith__parser_set_limits(kith__parser_t *p, size_t max_stanza,
                             unsigned max_depth);

/*
 * Stream the items of iq results whose child is in namespace `child_ns`
 * (copied) to `cb` (see "Item streaming" above); `cb` NULL turns streaming
 * off. The setting survives kith__parser_reset(). Safe at any time, from
 * callbacks too: a stanza whose child is already streaming goes on
 * streaming, to the new callback, and when streaming was turned off its
 * remaining items are dropped (the shell still comes). KITH_OK,
 * KITH_EINVAL (NULL parser, `cb` without `child_ns`, or the parser of
 * kith_stanza_parse()), KITH_ENOMEM.
 */
kith_status_t kith__parser_set_item_stream(kith__parser_t *p,
                                           const char *child_ns,
                                           kith__parser_item_cb cb, void *ud);

/*
 * From the `stanza` callback: non-zero when the stanza being delivered had
 * its child streamed (it is the shell; its items went to the item
 * callback), with *count (may be NULL) set to how many element children
 * of the streamed child were streamed out (dropped ones included, when
 * streaming was turned off halfway). A consumer compares it with what it
 * took to know the result it applied is complete. 0 and *count 0 for a
 * stanza built whole, and outside the `stanza` callback.
 */
int kith__parser_streamed(const kith__parser_t *p, size_t *count);

/*
 * Feed `len` bytes. Callbacks fire from inside this call. Returns KITH_OK,
 * or on a stream error KITH_EXML (not-well-formed / restricted XML /
 * encoding problems) or KITH_ELIMIT (a limit was hit), or KITH_ENOMEM.
 * It is safe for a callback to call kith__parser_reset() or
 * kith__parser_stop(); feeding stops after the current element. Also
 * KITH_EINVAL for NULL arguments and KITH_ESTATE when called again from
 * inside one of its own callbacks.
 */
kith_status_t kith__parser_feed(kith__parser_t *p, const char *data,
                                size_t len);

/*
 * Start over for a new stream (after STARTTLS or SASL success). Bytes still
 * unparsed from the previous feed call are discarded, and a sticky error is
 * cleared. Safe to call from a callback.
 */
kith_status_t kith__parser_reset(kith__parser_t *p);

/* Stop delivering callbacks for the rest of the current feed call; the
 * parser stays usable (used by the session when it tears down). The input
 * not yet delivered is kept: the next feed call (even with no new bytes,
 * feed(p, NULL, 0)) resumes delivery. */
void kith__parser_stop(kith__parser_t *p);

/*
 * After an error: the RFC 6120 stream error condition to send to the peer
 * ("not-well-formed", "restricted-xml", "policy-violation",
 * "unsupported-encoding", "unsupported-version", "invalid-xml",
 * "resource-constraint"), and a human-readable detail. NULL before any
 * error.
 */
const char *kith__parser_error_condition(const kith__parser_t *p);
const char *kith__parser_error_text(const kith__parser_t *p);

#endif /* KITH_XML_PARSER_H */

/*
 * Internal: UTF-8 and XML 1.0 character rules.
 *
 * The stream parser checks UTF-8 itself as input arrives, so that a broken
 * encoding is reported as such ("unsupported-encoding", RFC 6120 4.9.3.22)
 * rather than as the anonymous invalid token expat reports for the same
 * bytes: expat rejects malformed UTF-8 too, so the check adds the stream
 * error's condition, not strictness. The builder API checks names and
 * character data so that the serializer can only ever write well-formed XML.
 */
#ifndef KITH_XML_CHARS_H
#define KITH_XML_CHARS_H

#include <stddef.h>

/* Incremental UTF-8 checker. Zero-initialize to start. */
typedef struct kith__utf8 {
  unsigned char need; /* continuation bytes still expected */
  unsigned char lo;   /* allowed range of the next continuation byte */
  unsigned char hi;
} kith__utf8_t;

/*
 * Check `len` more bytes of a UTF-8 stream. Returns the offset of the first
 * byte that cannot continue valid UTF-8 (overlong forms, surrogates, code
 * points above U+10FFFF, stray continuation bytes), or `len` when every byte
 * is acceptable so far. A sequence cut at the end is carried in *st.
 */
size_t kith__utf8_scan(kith__utf8_t *st, const unsigned char *s, size_t len);

/*
 * Non-zero when s[0..len) is complete UTF-8 made only of XML 1.0 characters
 * (#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]).
 */
int kith__xml_valid_chars(const char *s, size_t len);

/*
 * Non-zero when s[0..len) is an XML NCName (a name without a colon). ASCII
 * characters are checked exactly; non-ASCII characters are accepted when they
 * are valid XML characters (the full Unicode name tables are not applied).
 */
int kith__xml_valid_ncname(const char *s, size_t len);

#endif /* KITH_XML_CHARS_H */

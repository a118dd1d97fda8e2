/*
 * UTF-8 and XML 1.0 character rules.
 */
#include <stdint.h>
#include <string.h>

#include "xml/chars.h"

/* The high bit of each byte of a 64-bit word. */
#define HIGH_BITS UINT64_C(0x8080808080808080)

/* The index of the first byte at or after `i` that is not ASCII, or
 * `len`. Eight bytes at a time first: XMPP is mostly ASCII, and the
 * UTF-8 check sees every byte of the stream. */
static size_t skip_ascii(const unsigned char *s, size_t i, size_t len)
{
  uint64_t w;

  while (len - i >= sizeof(w)) {
    memcpy(&w, s + i, sizeof(w));
    if (w & HIGH_BITS)
      break;
    i += sizeof(w);
  }
  while (i < len && s[i] < 0x80)
    i++;
  return i;
}

size_t kith__utf8_scan(kith__utf8_t *st, const unsigned char *s, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++) {
    unsigned char c;

    if (st->need == 0 && (i = skip_ascii(s, i, len)) == len)
      break;
    c = s[i];
    if (st->need) {
      if (c < st->lo || c > st->hi)
        return i;
      st->need--;
      st->lo = 0x80;
      st->hi = 0xBF;
      continue;
    }
    /* A lead byte (ASCII was skipped). It fixes the length and, for E0,
     * ED, F0 and F4, narrows the second byte to exclude overlong forms,
     * surrogates and values above U+10FFFF (RFC 3629 section 4). */
    st->lo = 0x80;
    st->hi = 0xBF;
    if (c < 0xC2)
      return i;
    if (c < 0xE0) {
      st->need = 1;
    } else if (c < 0xF0) {
      st->need = 2;
      if (c == 0xE0)
        st->lo = 0xA0;
      else if (c == 0xED)
        st->hi = 0x9F;
    } else if (c < 0xF5) {
      st->need = 3;
      if (c == 0xF0)
        st->lo = 0x90;
      else if (c == 0xF4)
        st->hi = 0x8F;
    } else {
      return i;
    }
  }
  return len;
}

/* Decode one code point from valid UTF-8 at s (n bytes available). Returns
 * its length, or 0 when the bytes are not valid UTF-8. */
static size_t decode(const unsigned char *s, size_t n, unsigned long *cp)
{
  kith__utf8_t st = {0, 0, 0};
  size_t len, i;

  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  len = s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
  if (len > n || kith__utf8_scan(&st, s, len) != len || st.need)
    return 0;
  *cp = s[0] & (0x7F >> len);
  for (i = 1; i < len; i++)
    *cp = (*cp << 6) | (s[i] & 0x3F);
  return len;
}

static int is_xml_char(unsigned long c)
{
  if (c < 0x20)
    return c == 0x9 || c == 0xA || c == 0xD;
  return c <= 0xD7FF || (c >= 0xE000 && c <= 0xFFFD) ||
         (c >= 0x10000 && c <= 0x10FFFF);
}

int kith__xml_valid_chars(const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, n;
  unsigned long cp;

  while (i < len) {
    if (p[i] >= 0x20 && p[i] < 0x80) {
      i++;
      continue;
    }
    n = decode(p + i, len - i, &cp);
    if (n == 0 || !is_xml_char(cp))
      return 0;
    i += n;
  }
  return 1;
}

static int ascii_name_start(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int ascii_name_char(unsigned char c)
{
  return ascii_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

int kith__xml_valid_ncname(const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t i;

  if (len == 0 || (p[0] < 0x80 && !ascii_name_start(p[0])))
    return 0;
  for (i = 0; i < len; i++) {
    if (p[i] < 0x80 && !ascii_name_char(p[i]))
      return 0;
  }
  return kith__xml_valid_chars(s, len);
}

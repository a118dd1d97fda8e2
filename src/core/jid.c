/*
 * Jabber IDs (RFC 7622).
 *
 * A JID is split as RFC 7622 section 3.1 says, then each part is prepared
 * with the stringprep profile XMPP used before PRECIS (libidn's nodeprep,
 * nameprep and resourceprep, as Prosody does). The result lives in one
 * allocation: the struct, then the strings
 *
 *   [local NUL] [local@]domain NUL [[local@]domain/resource NUL]
 *
 * so the domainpart is a suffix of the bare form, the resourcepart a suffix
 * of the full form, and a bare JID stores its bare form only once.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <punycode.h>
#include <stringprep.h>

#include "core/ctx.h"
#include "kith/jid.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/*
 * Longest raw part accepted before preparation. Preparation can shrink a
 * part (fullwidth forms, characters mapped to nothing), so the 1023-byte
 * limit is checked on the result; this bound only keeps libidn's work small
 * for hostile input (its canonical reordering is quadratic).
 */
#define RAW_PART_MAX 4092
_Static_assert(RAW_PART_MAX == 4 * KITH_JID_PART_MAX, "raw limit text");

/* Longest DNS label (RFC 1035 section 2.3.4), in octets of its ASCII form. */
#define LABEL_MAX 63
#define ACE_PREFIX_LEN 4 /* "xn--" */

struct kith_jid {
  kith_ctx_t *ctx;
  uint16_t bare_off;   /* 0 exactly when there is no localpart */
  uint16_t domain_off; /* inside the bare form */
  uint16_t full_off;   /* equals bare_off when there is no resourcepart */
  uint16_t res_off;    /* 0 when there is no resourcepart */
  char data[];
};

/* Three parts, the bare form and the full form fit in 16-bit offsets. */
_Static_assert(6 * (KITH_JID_PART_MAX + 1) <= UINT16_MAX, "offsets fit");

enum part { LOCAL, DOMAIN, RESOURCE, NPARTS };

/* Outcome of preparing one string with one profile. */
typedef enum prc { P_OK, P_EMPTY, P_LONG, P_RAW_LONG, P_BAD, NPRCS } prc_t;

/* Reason texts, indexed by part and outcome. */
static const char *const part_reasons[NPARTS][NPRCS] = {
    {NULL, "localpart is empty",
     "localpart exceeds " STR(KITH_JID_PART_MAX) " bytes",
     "localpart input exceeds " STR(RAW_PART_MAX) " bytes",
     "localpart is not valid (nodeprep failed)"},
    {NULL, "domainpart is empty",
     "domainpart exceeds " STR(KITH_JID_PART_MAX) " bytes",
     "domainpart input exceeds " STR(RAW_PART_MAX) " bytes",
     "domainpart is not valid (nameprep failed)"},
    {NULL, "resourcepart is empty",
     "resourcepart exceeds " STR(KITH_JID_PART_MAX) " bytes",
     "resourcepart input exceeds " STR(RAW_PART_MAX) " bytes",
     "resourcepart is not valid (resourceprep failed)"},
};

#define R_NULL "argument is NULL"
#define R_NOMEM "out of memory"
#define R_UTF8 "input is not valid UTF-8"
#define R_HOSTNAME "domainpart is not a valid hostname"
#define R_EMPTY_LABEL "domainpart has an empty label"
#define R_LONG_LABEL "domainpart has a label over 63 bytes"
#define R_IPV4 "domainpart is not a valid IPv4 address"
#define R_IPV6 "domainpart is not a valid IPv6 address"

typedef struct prepared {
  char s[KITH_JID_PART_MAX + 1];
  size_t len;
  int present;
} prepared_t;

/* State of one parse: the prepared parts and libidn's scratch space. */
typedef struct prep {
  kith_ctx_t *ctx;
  uint32_t *ucs4;  /* code points for stringprep_4i(), made on first need */
  size_t ucs4_cap; /* in code points */
  size_t raw_max;  /* longest raw part in bytes; sizes ucs4 */
  const char *reason;
  prepared_t part[NPARTS];
} prep_t;

static kith_status_t fail(prep_t *pp, const char *reason)
{
  pp->reason = reason;
  return KITH_EJID;
}

static kith_status_t fail_part(prep_t *pp, enum part which, prc_t rc)
{
  return fail(pp, part_reasons[which][rc]);
}

static kith_status_t nomem(prep_t *pp)
{
  pp->reason = R_NOMEM;
  return KITH_ENOMEM;
}

/*
 * Decode one code point from s[0..n). Returns its length in bytes, or 0
 * when the sequence is not well-formed UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF, no truncated sequence).
 */
static size_t utf8_decode(const char *str, size_t n, uint32_t *cp)
{
  const unsigned char *s = (const unsigned char *)str;
  uint32_t c = s[0], min;
  size_t len, i;

  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, c &= 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, c &= 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, c &= 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    c = (c << 6) | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
    return 0;
  *cp = c;
  return len;
}

static int utf8_valid(const char *s, size_t n)
{
  size_t i = 0;
  uint32_t cp;

  while (i < n) {
    size_t k = utf8_decode(s + i, n - i, &cp);

    if (k == 0)
      return 0;
    i += k;
  }
  return 1;
}

/* Encode a Unicode scalar value (not NUL) into b[0..4); 0 if it is none. */
static size_t utf8_encode(uint32_t c, char *b)
{
  if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
    return 0;
  if (c < 0x80) {
    b[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    b[0] = (char)(0xC0 | (c >> 6));
    b[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    b[0] = (char)(0xE0 | (c >> 12));
    b[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    b[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  b[0] = (char)(0xF0 | (c >> 18));
  b[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  b[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  b[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

static int is_ascii(const char *s, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if ((unsigned char)s[i] >= 0x80)
      return 0;
  return 1;
}

/*
 * The ASCII fast path. For ASCII input the three profiles reduce to these
 * rules: nodeprep and nameprep fold A-Z (RFC 3454 table B.2); nodeprep and
 * resourceprep prohibit ASCII controls (C.2.1); nodeprep also prohibits
 * the space (C.1.1) and "&'/:<>@ (RFC 3920 appendix A.5). test_jid.c
 * checks this against libidn for every ASCII character. Nameprep allows
 * every ASCII character; the hostname rules are checked per label later.
 */
static prc_t prep_ascii(enum part which, const char *in, size_t len, char *out,
                        size_t cap)
{
  static const char node_prohibited[] = " \"&'/:<>@";
  size_t i;

  for (i = 0; i < len; i++) {
    char c = in[i];

    if (which != DOMAIN && ((unsigned char)c < 0x20 || c == 0x7F))
      return P_BAD;
    if (which == LOCAL &&
        memchr(node_prohibited, c, sizeof(node_prohibited) - 1))
      return P_BAD;
    if (which != RESOURCE && c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    if (i < cap)
      out[i] = c;
  }
  if (len > cap)
    return P_LONG;
  out[len] = '\0';
  return P_OK;
}

static int scratch_alloc(prep_t *pp)
{
  /* A profile maps each code point to at most STRINGPREP_MAX_MAP_CHARS
   * before NFKC. If NFKC then outgrows KITH_JID_PART_MAX + 1 code points,
   * the result would exceed the byte limit anyway, so libidn's "buffer too
   * small" always means "too long". */
  size_t cap = STRINGPREP_MAX_MAP_CHARS * pp->raw_max;

  if (cap < KITH_JID_PART_MAX + 1)
    cap = KITH_JID_PART_MAX + 1;
  cap++;
  pp->ucs4 = kith__malloc(pp->ctx, cap * sizeof(*pp->ucs4));
  if (pp->ucs4 == NULL)
    return -1;
  pp->ucs4_cap = cap;
  return 0;
}

/*
 * Prepare valid UTF-8 `in` with `profile` into out[0..cap] (NUL included).
 * Returns P_OK and sets *outlen, or P_LONG, P_BAD, or -1 when out of
 * memory. libidn's NFKC step allocates with malloc(3) internally; that is
 * the one allocation the context's allocator cannot see.
 */
static int prep_unicode(prep_t *pp, const Stringprep_profile *profile,
                        const char *in, size_t len, char *out, size_t cap,
                        size_t *outlen)
{
  size_t n = 0, i = 0, o = 0, k;
  char b[4];

  if (pp->ucs4 == NULL && scratch_alloc(pp) != 0)
    return -1;
  while (i < len) {
    k = utf8_decode(in + i, len - i, &pp->ucs4[n++]);
    if (k == 0)
      return P_BAD;
    i += k;
  }
  switch (stringprep_4i(pp->ucs4, &n, pp->ucs4_cap, 0, profile)) {
  case STRINGPREP_OK:
    break;
  case STRINGPREP_TOO_SMALL_BUFFER:
    return P_LONG;
  case STRINGPREP_NFKC_FAILED: /* only when its malloc fails */
  case STRINGPREP_MALLOC_ERROR:
    return -1;
  default:
    return P_BAD;
  }
  for (i = 0; i < n; i++) {
    k = utf8_encode(pp->ucs4[i], b);
    if (k == 0)
      return P_BAD;
    if (o + k > cap)
      return P_LONG;
    memcpy(out + o, b, k);
    o += k;
  }
  out[o] = '\0';
  *outlen = o;
  return P_OK;
}

/* Prepare the localpart or the resourcepart. */
static kith_status_t prep_text(prep_t *pp, enum part which, const char *raw,
                               size_t len)
{
  prepared_t *o = &pp->part[which];
  const Stringprep_profile *profile =
      which == LOCAL ? stringprep_xmpp_nodeprep : stringprep_xmpp_resourceprep;
  int rc;

  o->present = 1;
  if (len == 0)
    return fail_part(pp, which, P_EMPTY);
  if (len > RAW_PART_MAX)
    return fail_part(pp, which, P_RAW_LONG);
  if (is_ascii(raw, len)) {
    rc = prep_ascii(which, raw, len, o->s, KITH_JID_PART_MAX);
    o->len = len;
  } else {
    rc = prep_unicode(pp, profile, raw, len, o->s, KITH_JID_PART_MAX, &o->len);
  }
  if (rc < 0)
    return nomem(pp);
  if (rc != P_OK)
    return fail_part(pp, which, (prc_t)rc);
  if (o->len == 0)
    return fail_part(pp, which, P_EMPTY);
  return KITH_OK;
}

/*
 * An IPv6 literal in brackets. It is stored in the canonical text form of
 * RFC 5952 (what inet_ntop() writes), so that "[::1]" and "[0:0::1]" name
 * the same server and compare equal.
 */
static kith_status_t prep_ipv6(prep_t *pp, const char *raw, size_t len)
{
  prepared_t *o = &pp->part[DOMAIN];
  char text[INET6_ADDRSTRLEN];
  struct in6_addr addr;
  size_t n;

  if (len < 3 || raw[len - 1] != ']' || len - 2 >= sizeof(text))
    return fail(pp, R_IPV6);
  memcpy(text, raw + 1, len - 2);
  text[len - 2] = '\0';
  if (inet_pton(AF_INET6, text, &addr) != 1 ||
      inet_ntop(AF_INET6, &addr, text, sizeof(text)) == NULL)
    return fail(pp, R_IPV6);
  n = strlen(text);
  o->s[0] = '[';
  memcpy(o->s + 1, text, n);
  o->s[n + 1] = ']';
  o->s[n + 2] = '\0';
  o->len = n + 2;
  return KITH_OK;
}

/*
 * Length of the label at s[0..n), up to the next label separator or the
 * end; *seplen gets the separator's length, 0 at the end. Besides '.',
 * IDNA (RFC 3490 section 3.1) counts U+3002, U+FF0E and U+FF61 as dots.
 */
static size_t label_len(const char *s, size_t n, size_t *seplen)
{
  static const char wide_dots[][4] = {"\xE3\x80\x82", "\xEF\xBC\x8E",
                                      "\xEF\xBD\xA1"};
  size_t i, d;

  for (i = 0; i < n; i++) {
    if (s[i] == '.') {
      *seplen = 1;
      return i;
    }
    if ((unsigned char)s[i] < 0xE3 || n - i < 3)
      continue;
    for (d = 0; d < sizeof(wide_dots) / sizeof(wide_dots[0]); d++) {
      if (memcmp(s + i, wide_dots[d], 3) == 0) {
        *seplen = 3;
        return i;
      }
    }
  }
  *seplen = 0;
  return n;
}

/*
 * Whether a non-ASCII label's ASCII form ("xn--" and Punycode) fits in a
 * DNS label. Punycode writes at least one character per code point, so a
 * longer label cannot fit and the array bound is never a limit.
 */
static int ace_fits(const char *s, size_t n)
{
  punycode_uint cp[LABEL_MAX - ACE_PREFIX_LEN];
  char ace[LABEL_MAX - ACE_PREFIX_LEN];
  size_t count = 0, i = 0, acelen = sizeof(ace);

  while (i < n) {
    size_t k;

    if (count == sizeof(cp) / sizeof(cp[0]))
      return 0;
    k = utf8_decode(s + i, n - i, &cp[count]);
    if (k == 0)
      return 0;
    i += k;
    count++;
  }
  return punycode_encode(count, cp, NULL, &acelen, ace) == punycode_success;
}

/*
 * Hostname rules for one prepared label (RFC 1123 and the STD3 rules of
 * IDNA): ASCII characters are letters, digits or '-', no '-' at either
 * end, 1..63 octets in the form DNS sees. Other characters have passed
 * nameprep.
 */
static kith_status_t check_label(prep_t *pp, const char *s, size_t n)
{
  int ascii = 1;
  size_t i;

  if (n == 0)
    return fail(pp, R_EMPTY_LABEL);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];

    if (c >= 0x80)
      ascii = 0;
    else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return fail(pp, R_HOSTNAME);
  }
  if (s[0] == '-' || s[n - 1] == '-')
    return fail(pp, R_HOSTNAME);
  if (ascii ? n > LABEL_MAX : !ace_fits(s, n))
    return fail(pp, R_LONG_LABEL);
  return KITH_OK;
}

/*
 * A name whose last label is all digits is no DNS name (RFC 3696 section
 * 2); it must then be a dotted-quad IPv4 address.
 */
static kith_status_t check_numeric(prep_t *pp)
{
  const char *s = pp->part[DOMAIN].s, *last = strrchr(s, '.');
  struct in_addr addr;

  last = last ? last + 1 : s;
  if (strspn(last, "0123456789") != strlen(last))
    return KITH_OK;
  if (strspn(s, "0123456789.") != strlen(s))
    return fail(pp, R_HOSTNAME);
  if (inet_pton(AF_INET, s, &addr) != 1)
    return fail(pp, R_IPV4);
  return KITH_OK;
}

/* Nameprep one label and append it to the domainpart being built. */
static kith_status_t prep_label(prep_t *pp, const char *raw, size_t len)
{
  prepared_t *o = &pp->part[DOMAIN];
  size_t pos = o->len, cap, n;
  int rc;

  if (pos > 0) {
    if (pos >= KITH_JID_PART_MAX)
      return fail_part(pp, DOMAIN, P_LONG);
    o->s[pos++] = '.';
  }
  cap = KITH_JID_PART_MAX - pos;
  if (is_ascii(raw, len)) {
    rc = prep_ascii(DOMAIN, raw, len, o->s + pos, cap);
    n = len;
  } else {
    rc = prep_unicode(pp, stringprep_nameprep, raw, len, o->s + pos, cap, &n);
  }
  if (rc < 0)
    return nomem(pp);
  if (rc != P_OK)
    return fail_part(pp, DOMAIN, (prc_t)rc);
  o->len = pos + n;
  return check_label(pp, o->s + pos, n);
}

/*
 * Prepare the domainpart label by label, as IDNA does, so that the bidi
 * rule applies per label and a right-to-left label may sit beside "com".
 * One trailing dot is removed (RFC 7622 section 3.2).
 */
static kith_status_t prep_domain(prep_t *pp, const char *raw, size_t len)
{
  prepared_t *o = &pp->part[DOMAIN];
  size_t i = 0;

  o->present = 1;
  o->len = 0;
  o->s[0] = '\0';
  if (len == 0)
    return fail_part(pp, DOMAIN, P_EMPTY);
  if (len > RAW_PART_MAX)
    return fail_part(pp, DOMAIN, P_RAW_LONG);
  if (raw[0] == '[')
    return prep_ipv6(pp, raw, len);
  for (;;) {
    size_t seplen, n = label_len(raw + i, len - i, &seplen);
    kith_status_t st;

    if (n == 0 && seplen == 0 && i > 0)
      break; /* the trailing dot */
    if (n == 0)
      return fail(pp, R_EMPTY_LABEL);
    st = prep_label(pp, raw + i, n);
    if (st != KITH_OK)
      return st;
    i += n + seplen;
    if (seplen == 0)
      break;
  }
  return check_numeric(pp);
}

/* Split `str` (RFC 7622 section 3.1) and prepare each part. */
static kith_status_t prepare(prep_t *pp, const char *str)
{
  size_t len = strlen(str), head, llen, dlen, rlen;
  const char *slash, *at, *dom;
  kith_status_t st;

  if (!utf8_valid(str, len))
    return fail(pp, R_UTF8);
  /* The resourcepart is everything after the first '/', so it may hold
   * '@' and '/'; the localpart is what precedes the first '@' before it. */
  slash = memchr(str, '/', len);
  head = slash ? (size_t)(slash - str) : len;
  at = memchr(str, '@', head);
  dom = at ? at + 1 : str;
  llen = at ? (size_t)(at - str) : 0;
  dlen = head - (size_t)(dom - str);
  rlen = slash ? len - head - 1 : 0;
  pp->raw_max = llen > dlen ? llen : dlen;
  if (rlen > pp->raw_max)
    pp->raw_max = rlen;
  if (pp->raw_max > RAW_PART_MAX)
    pp->raw_max = RAW_PART_MAX;
  if (at && (st = prep_text(pp, LOCAL, str, llen)) != KITH_OK)
    return st;
  if ((st = prep_domain(pp, dom, dlen)) != KITH_OK)
    return st;
  if (slash && (st = prep_text(pp, RESOURCE, slash + 1, rlen)) != KITH_OK)
    return st;
  return KITH_OK;
}

static void prep_init(prep_t *pp, kith_ctx_t *ctx)
{
  int i;

  pp->ctx = ctx;
  pp->ucs4 = NULL;
  pp->ucs4_cap = 0;
  pp->raw_max = 0;
  pp->reason = NULL;
  for (i = 0; i < NPARTS; i++) {
    pp->part[i].present = 0;
    pp->part[i].len = 0;
  }
}

static void prep_done(prep_t *pp)
{
  kith__free(pp->ctx, pp->ucs4);
  pp->ucs4 = NULL;
}

/* Write "[local@]domain" at p; returns the end. */
static char *put_bare(char *p, const prep_t *pp)
{
  const prepared_t *l = &pp->part[LOCAL], *d = &pp->part[DOMAIN];

  if (l->present) {
    memcpy(p, l->s, l->len);
    p += l->len;
    *p++ = '@';
  }
  memcpy(p, d->s, d->len);
  return p + d->len;
}

static size_t bare_len(const prep_t *pp)
{
  const prepared_t *l = &pp->part[LOCAL];

  return (l->present ? l->len + 1 : 0) + pp->part[DOMAIN].len;
}

static kith_jid_t *build_jid(const prep_t *pp)
{
  const prepared_t *l = &pp->part[LOCAL], *r = &pp->part[RESOURCE];
  size_t blen = bare_len(pp);
  size_t size = (l->present ? l->len + 1 : 0) + blen + 1 +
                (r->present ? blen + 1 + r->len + 1 : 0);
  kith_jid_t *jid = kith__malloc(pp->ctx, sizeof(*jid) + size);
  char *p;

  if (jid == NULL)
    return NULL;
  jid->ctx = pp->ctx;
  p = jid->data;
  if (l->present) {
    memcpy(p, l->s, l->len + 1);
    p += l->len + 1;
  }
  jid->bare_off = (uint16_t)(p - jid->data);
  jid->domain_off = (uint16_t)(jid->bare_off + blen - pp->part[DOMAIN].len);
  p = put_bare(p, pp);
  *p++ = '\0';
  jid->full_off = jid->bare_off;
  jid->res_off = 0;
  if (r->present) {
    jid->full_off = (uint16_t)(p - jid->data);
    p = put_bare(p, pp);
    *p++ = '/';
    jid->res_off = (uint16_t)(p - jid->data);
    memcpy(p, r->s, r->len + 1);
  }
  return jid;
}

static kith_status_t check_args(const char *str, const void *out,
                                const char **reason)
{
  if (reason)
    *reason = NULL;
  if (str != NULL && out != NULL)
    return KITH_OK;
  if (reason)
    *reason = R_NULL;
  return KITH_EINVAL;
}

kith_status_t kith_jid_parse(kith_ctx_t *ctx, const char *str, kith_jid_t **out,
                             const char **reason)
{
  prep_t pp;
  kith_status_t st;

  if (out)
    *out = NULL;
  if ((st = check_args(str, out, reason)) != KITH_OK)
    return st;
  prep_init(&pp, ctx);
  st = prepare(&pp, str);
  /* The scratch goes first so that a parse never holds two blocks. */
  prep_done(&pp);
  if (st == KITH_OK && (*out = build_jid(&pp)) == NULL)
    st = nomem(&pp);
  if (st != KITH_OK && reason)
    *reason = pp.reason;
  return st;
}

kith_status_t kith_jid_normalize(kith_ctx_t *ctx, const char *str, int bare,
                                 char **out, const char **reason)
{
  prep_t pp;
  kith_status_t st;
  char *s = NULL, *p;

  if (out)
    *out = NULL;
  if ((st = check_args(str, out, reason)) != KITH_OK)
    return st;
  prep_init(&pp, ctx);
  st = prepare(&pp, str);
  prep_done(&pp);
  if (st == KITH_OK) {
    size_t size;

    bare = bare || !pp.part[RESOURCE].present;
    size = bare_len(&pp) + 1 + (bare ? 0 : pp.part[RESOURCE].len + 1);
    if ((s = kith__malloc(ctx, size)) == NULL)
      st = nomem(&pp);
  }
  if (st != KITH_OK) {
    if (reason)
      *reason = pp.reason;
    return st;
  }
  p = put_bare(s, &pp);
  if (!bare) {
    *p++ = '/';
    memcpy(p, pp.part[RESOURCE].s, pp.part[RESOURCE].len);
    p += pp.part[RESOURCE].len;
  }
  *p = '\0';
  *out = s;
  return KITH_OK;
}

void kith_jid_free(kith_jid_t *jid)
{
  if (jid)
    kith__free(jid->ctx, jid);
}

static size_t jid_size(const kith_jid_t *jid)
{
  /* The full form is the last string in the block. */
  return sizeof(*jid) + jid->full_off + strlen(jid->data + jid->full_off) + 1;
}

kith_status_t kith_jid_copy(const kith_jid_t *jid, kith_jid_t **out)
{
  kith_jid_t *copy;
  size_t size;

  if (out)
    *out = NULL;
  if (jid == NULL || out == NULL)
    return KITH_EINVAL;
  size = jid_size(jid);
  copy = kith__malloc(jid->ctx, size);
  if (copy == NULL)
    return KITH_ENOMEM;
  memcpy(copy, jid, size);
  *out = copy;
  return KITH_OK;
}

const char *kith_jid_local(const kith_jid_t *jid)
{
  return jid && jid->bare_off ? jid->data : NULL;
}

const char *kith_jid_domain(const kith_jid_t *jid)
{
  return jid ? jid->data + jid->domain_off : NULL;
}

const char *kith_jid_resource(const kith_jid_t *jid)
{
  return jid && jid->res_off ? jid->data + jid->res_off : NULL;
}

const char *kith_jid_bare(const kith_jid_t *jid)
{
  return jid ? jid->data + jid->bare_off : NULL;
}

const char *kith_jid_full(const kith_jid_t *jid)
{
  return jid ? jid->data + jid->full_off : NULL;
}

int kith_jid_is_bare(const kith_jid_t *jid)
{
  return jid != NULL && jid->res_off == 0;
}

int kith_jid_equal(const kith_jid_t *a, const kith_jid_t *b)
{
  return a && b && strcmp(kith_jid_full(a), kith_jid_full(b)) == 0;
}

int kith_jid_bare_equal(const kith_jid_t *a, const kith_jid_t *b)
{
  return a && b && strcmp(kith_jid_bare(a), kith_jid_bare(b)) == 0;
}

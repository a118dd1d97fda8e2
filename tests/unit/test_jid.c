/*
 * Unit tests: JID parsing and normalization (RFC 7622 with the stringprep
 * profiles), accessors, comparison, copy, and a failing-allocator run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <stringprep.h>

#include "kith/jid.h"
#include "kith/ctx.h"
#include "core/ctx.h"

/* One vector: the input, and either its normalized full form or, when
 * `full` is NULL, the reason parsing must give. */
struct vector {
  const char *in;
  const char *full;
  const char *reason;
};

#define OK(in, full)                                                           \
  {                                                                            \
    in, full, NULL                                                             \
  }
#define BAD(in, reason)                                                        \
  {                                                                            \
    in, NULL, reason                                                           \
  }

#define R_NODEPREP "localpart is not valid (nodeprep failed)"
#define R_RESPREP "resourcepart is not valid (resourceprep failed)"
#define R_NAMEPREP "domainpart is not valid (nameprep failed)"
#define R_HOST "domainpart is not a valid hostname"
#define R_LABEL "domainpart has an empty label"
#define R_UTF8 "input is not valid UTF-8"

static const struct vector vectors[] = {
    /* Plain forms and case. The resourcepart keeps its case. */
    OK("user@example.com", "user@example.com"),
    OK("example.com", "example.com"),
    OK("example.com/res", "example.com/res"),
    OK("USER@EXAMPLE.COM", "user@example.com"),
    OK("User@Example.COM/Resource", "user@example.com/Resource"),
    OK("user@localhost", "user@localhost"),
    OK("user@a-b.example", "user@a-b.example"),
    OK("user@x1.example", "user@x1.example"),
    /* IDN domains and non-ASCII case folding. */
    OK("user@m\xc3\xbcller.example", "user@m\xc3\xbcller.example"),
    OK("user@M\xc3\x9cLLER.Example", "user@m\xc3\xbcller.example"),
    OK("\xc3\x84\xc3\x96\xc3\x9c@EXAMPLE.COM",
       "\xc3\xa4\xc3\xb6\xc3\xbc@example.com"),
    OK("user@example.com/\xc3\x84\xc3\x96\xc3\x9c",
       "user@example.com/\xc3\x84\xc3\x96\xc3\x9c"),
    OK("stra\xc3\x9f"
       "e@example.com",
       "strasse@example.com"),
    OK("user@xn--mller-kva.example", "user@xn--mller-kva.example"),
    /* A right-to-left label beside "example": bidi is checked per label. */
    OK("user@\xd9\x85\xd8\xab\xd8\xa7\xd9\x84.example",
       "user@\xd9\x85\xd8\xab\xd8\xa7\xd9\x84.example"),
    /* Fullwidth forms fold to ASCII (NFKC), also in the resourcepart. */
    OK("\xef\xbd\x95\xef\xbd\x93\xef\xbd\x85\xef\xbd\x92@example.com",
       "user@example.com"),
    OK("user@example.com/\xef\xbc\xb2\xef\xbd\x85\xef\xbd\x93",
       "user@example.com/Res"),
    /* Other label separators: U+3002 and U+FF0E. */
    OK("user@b\xc3\xbc"
       "cher\xe3\x80\x82"
       "example",
       "user@b\xc3\xbc"
       "cher.example"),
    OK("user@EXAMPLE\xef\xbc\x8e"
       "COM",
       "user@example.com"),
    /* A soft hyphen is mapped to nothing (table B.1). */
    OK("soft\xc2\xadhyphen@example.com", "softhyphen@example.com"),
    /* One trailing dot is dropped. */
    OK("user@example.com.", "user@example.com"),
    OK("user@example.com./res", "user@example.com/res"),
    OK("example.com.", "example.com"),
    /* '@' and '/' belong to the resourcepart after the first '/'. */
    OK("user@example.com/a@b/c", "user@example.com/a@b/c"),
    OK("example.com/user@host", "example.com/user@host"),
    OK("user@example.com//", "user@example.com//"),
    OK("user@example.com/ spaced res ", "user@example.com/ spaced res "),
    OK("user@example.com/a\xc2\xa0"
       "b",
       "user@example.com/a b"), /* NFKC makes the no-break space a space */
    /* IP literals; IPv6 in its canonical text form. */
    OK("user@192.168.0.1", "user@192.168.0.1"),
    OK("user@192.168.0.1/r", "user@192.168.0.1/r"),
    OK("user@[::1]", "user@[::1]"),
    OK("user@[2001:DB8:0:0::1]/r", "user@[2001:db8::1]/r"),
    OK("[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]"),

    /* Empty parts. */
    BAD("", "domainpart is empty"),
    BAD("@example.com", "localpart is empty"),
    BAD("user@", "domainpart is empty"),
    BAD("user@/res", "domainpart is empty"),
    BAD("/res", "domainpart is empty"),
    BAD("user@example.com/", "resourcepart is empty"),
    BAD("\xc2\xad@example.com", "localpart is empty"),
    BAD("user@example.com/\xc2\xad", "resourcepart is empty"),
    /* Characters nodeprep prohibits, spaces included. */
    BAD("us er@example.com", R_NODEPREP),
    BAD("us\"er@example.com", R_NODEPREP),
    BAD("us&er@example.com", R_NODEPREP),
    BAD("us'er@example.com", R_NODEPREP),
    BAD("us:er@example.com", R_NODEPREP),
    BAD("us<er@example.com", R_NODEPREP),
    BAD("us>er@example.com", R_NODEPREP),
    BAD("us\x7f"
        "er@example.com",
        R_NODEPREP),
    BAD("us\xef\xbc\xa0"
        "er@example.com",
        R_NODEPREP), /* fullwidth '@' becomes '@' */
    BAD("us\xc2\xa0"
        "er@example.com",
        R_NODEPREP), /* no-break space */
    /* Resourceprep: controls, non-ASCII spaces, bidi. */
    BAD("user@example.com/a\x01", R_RESPREP),
    BAD("user@example.com/a\xe2\x80\xa8"
        "b",
        R_RESPREP), /* line separator */
    BAD("user@example.com/\xd8\xa7"
        "a",
        R_RESPREP),
    /* Hostname rules. */
    BAD("a@b@example.com", R_HOST),
    BAD("user@exa mple.com", R_HOST),
    BAD("user@exa_mple.com", R_HOST),
    BAD("user@-example.com", R_HOST),
    BAD("user@example-.com", R_HOST),
    BAD("user@exa\"mple.com", R_HOST),
    BAD("user@exa<mple>.com", R_HOST),
    BAD("user@exa\tmple.com", R_HOST),
    BAD("user@exa\xef\xbc\x8fmple.com", R_HOST), /* fullwidth '/' */
    BAD("user@a\xe2\x80\xa4"
        "b.example",
        R_HOST), /* one dot leader */
    BAD("user@example.123", R_HOST),
    BAD("user@example..com", R_LABEL),
    BAD("user@example.com..", R_LABEL),
    BAD("user@.example.com", R_LABEL),
    BAD("user@.", R_LABEL),
    BAD("user@\xc2\xad.example", R_LABEL),
    BAD("user@\xd9\x85"
        "a.example",
        R_NAMEPREP),
    BAD("user@1.2.3.256", "domainpart is not a valid IPv4 address"),
    BAD("user@1.2.3", "domainpart is not a valid IPv4 address"),
    BAD("user@[::1", "domainpart is not a valid IPv6 address"),
    BAD("user@[::g]", "domainpart is not a valid IPv6 address"),
    BAD("user@[::1].", "domainpart is not a valid IPv6 address"),
    BAD("user@[1.2.3.4]", "domainpart is not a valid IPv6 address"),
    BAD("user@[]", "domainpart is not a valid IPv6 address"),
    /* Invalid UTF-8: stray byte, overlong '/', surrogate, truncation. */
    BAD("\xff@example.com", R_UTF8),
    BAD("user@example.com/\xc0\xaf", R_UTF8),
    BAD("\xed\xa0\x80@example.com", R_UTF8),
    BAD("user@example.com/\xe2\x82", R_UTF8),
    BAD("user@example.com/\xf4\x90\x80\x80", R_UTF8),
};

static void test_vectors(void **state)
{
  size_t i, n = sizeof(vectors) / sizeof(vectors[0]);

  (void)state;
  assert_true(n >= 40);
  for (i = 0; i < n; i++) {
    const struct vector *v = &vectors[i];
    kith_jid_t *jid = (kith_jid_t *)1;
    const char *why = "unset";
    kith_status_t st = kith_jid_parse(NULL, v->in, &jid, &why);

    if (v->full) {
      if (st != KITH_OK)
        print_error("vector %zu \"%s\": %s\n", i, v->in, why);
      assert_int_equal(st, KITH_OK);
      assert_null(why);
      assert_string_equal(kith_jid_full(jid), v->full);
      kith_jid_free(jid);
    } else {
      if (st != KITH_EJID || strcmp(why ? why : "", v->reason) != 0)
        print_error("vector %zu \"%s\": status %d, %s\n", i, v->in, st,
                    why ? why : "(null)");
      assert_int_equal(st, KITH_EJID);
      assert_null(jid);
      assert_string_equal(why, v->reason);
    }
  }
}

static void test_accessors(void **state)
{
  kith_jid_t *j;

  (void)state;
  assert_int_equal(
      kith_jid_parse(NULL, "Juliet@Capulet.example/Balcony@x/y", &j, NULL),
      KITH_OK);
  assert_string_equal(kith_jid_local(j), "juliet");
  assert_string_equal(kith_jid_domain(j), "capulet.example");
  assert_string_equal(kith_jid_resource(j), "Balcony@x/y");
  assert_string_equal(kith_jid_bare(j), "juliet@capulet.example");
  assert_string_equal(kith_jid_full(j), "juliet@capulet.example/Balcony@x/y");
  assert_false(kith_jid_is_bare(j));
  kith_jid_free(j);

  assert_int_equal(kith_jid_parse(NULL, "Capulet.example", &j, NULL), KITH_OK);
  assert_null(kith_jid_local(j));
  assert_null(kith_jid_resource(j));
  assert_string_equal(kith_jid_domain(j), "capulet.example");
  assert_string_equal(kith_jid_bare(j), "capulet.example");
  assert_ptr_equal(kith_jid_bare(j), kith_jid_full(j));
  assert_true(kith_jid_is_bare(j));
  kith_jid_free(j);

  assert_int_equal(kith_jid_parse(NULL, "capulet.example/r", &j, NULL),
                   KITH_OK);
  assert_null(kith_jid_local(j));
  assert_string_equal(kith_jid_bare(j), "capulet.example");
  assert_string_equal(kith_jid_full(j), "capulet.example/r");
  assert_string_equal(kith_jid_resource(j), "r");
  kith_jid_free(j);

  assert_int_equal(kith_jid_parse(NULL, "a@b", &j, NULL), KITH_OK);
  assert_string_equal(kith_jid_local(j), "a");
  assert_string_equal(kith_jid_domain(j), "b");
  assert_ptr_equal(kith_jid_bare(j), kith_jid_full(j));
  kith_jid_free(j);
}

static kith_jid_t *must_parse(const char *s)
{
  kith_jid_t *j = NULL;
  const char *why = NULL;

  if (kith_jid_parse(NULL, s, &j, &why) != KITH_OK)
    fail_msg("\"%s\": %s", s, why);
  return j;
}

static void test_compare(void **state)
{
  kith_jid_t *a = must_parse("Romeo@Montague.example/Orchard");
  kith_jid_t *b = must_parse("romeo@MONTAGUE.example./Orchard");
  kith_jid_t *c = must_parse("romeo@montague.example/orchard");
  kith_jid_t *d = must_parse("romeo@montague.example");
  kith_jid_t *e = must_parse("juliet@montague.example/Orchard");

  (void)state;
  assert_true(kith_jid_equal(a, b));
  assert_true(kith_jid_bare_equal(a, b));
  assert_false(kith_jid_equal(a, c)); /* resource case matters */
  assert_true(kith_jid_bare_equal(a, c));
  assert_false(kith_jid_equal(a, d));
  assert_true(kith_jid_bare_equal(a, d));
  assert_true(kith_jid_equal(d, d));
  assert_false(kith_jid_bare_equal(a, e));
  assert_false(kith_jid_equal(a, e));
  assert_false(kith_jid_equal(a, NULL));
  assert_false(kith_jid_equal(NULL, a));
  assert_false(kith_jid_equal(NULL, NULL));
  assert_false(kith_jid_bare_equal(NULL, a));
  assert_false(kith_jid_bare_equal(a, NULL));
  kith_jid_free(a);
  kith_jid_free(b);
  kith_jid_free(c);
  kith_jid_free(d);
  kith_jid_free(e);
}

static void test_copy(void **state)
{
  const char *inputs[] = {"a@b.example/r", "b.example", "a@b.example",
                          "b.example/r/s"};
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
    kith_jid_t *j = must_parse(inputs[i]), *k = NULL;

    assert_int_equal(kith_jid_copy(j, &k), KITH_OK);
    assert_non_null(k);
    assert_ptr_not_equal(j, k);
    assert_true(kith_jid_equal(j, k));
    kith_jid_free(j); /* the copy must not depend on the original */
    assert_string_equal(kith_jid_full(k), inputs[i]);
    assert_int_equal(kith_jid_is_bare(k), strchr(inputs[i], '/') == NULL);
    if (strchr(inputs[i], '@'))
      assert_string_equal(kith_jid_local(k), "a");
    else
      assert_null(kith_jid_local(k));
    assert_string_equal(kith_jid_domain(k), "b.example");
    kith_jid_free(k);
  }
}

static void test_null_handling(void **state)
{
  kith_jid_t *j = (kith_jid_t *)1;
  char *s = (char *)1;
  const char *why = NULL;

  (void)state;
  kith_jid_free(NULL);
  assert_int_equal(kith_jid_parse(NULL, NULL, &j, &why), KITH_EINVAL);
  assert_null(j);
  assert_non_null(why);
  assert_int_equal(kith_jid_parse(NULL, "a@b", NULL, NULL), KITH_EINVAL);
  assert_int_equal(kith_jid_copy(NULL, &j), KITH_EINVAL);
  assert_null(j);
  j = must_parse("a@b");
  assert_int_equal(kith_jid_copy(j, NULL), KITH_EINVAL);
  kith_jid_free(j);
  assert_int_equal(kith_jid_normalize(NULL, NULL, 0, &s, NULL), KITH_EINVAL);
  assert_null(s);
  assert_int_equal(kith_jid_normalize(NULL, "a@b", 0, NULL, &why), KITH_EINVAL);
  assert_null(kith_jid_local(NULL));
  assert_null(kith_jid_domain(NULL));
  assert_null(kith_jid_resource(NULL));
  assert_null(kith_jid_bare(NULL));
  assert_null(kith_jid_full(NULL));
  assert_false(kith_jid_is_bare(NULL));
}

static void test_normalize(void **state)
{
  char *s = (char *)1;
  const char *why = NULL;

  (void)state;
  assert_int_equal(kith_jid_normalize(NULL, "A@B.Example/R", 0, &s, &why),
                   KITH_OK);
  assert_string_equal(s, "a@b.example/R");
  kith_free(NULL, s);
  assert_int_equal(kith_jid_normalize(NULL, "A@B.Example/R", 1, &s, &why),
                   KITH_OK);
  assert_string_equal(s, "a@b.example");
  kith_free(NULL, s);
  assert_int_equal(kith_jid_normalize(NULL, "B.Example.", 0, &s, &why),
                   KITH_OK);
  assert_string_equal(s, "b.example");
  kith_free(NULL, s);
  /* A bare result still needs a valid resourcepart. */
  assert_int_equal(kith_jid_normalize(NULL, "a@b/", 1, &s, &why), KITH_EJID);
  assert_null(s);
  assert_string_equal(why, "resourcepart is empty");
}

/* A string of `n` copies of `unit`, as a new heap block. */
static char *repeat(const char *unit, size_t n)
{
  size_t u = strlen(unit), i;
  char *s = malloc(u * n + 1);

  assert_non_null(s);
  for (i = 0; i < n; i++)
    memcpy(s + i * u, unit, u);
  s[u * n] = '\0';
  return s;
}

/* A hostname of exactly `n` bytes made of 63-byte labels and one shorter. */
static char *hostname(size_t n)
{
  char *s = malloc(n + 1);
  size_t i;

  assert_non_null(s);
  for (i = 0; i < n; i++)
    s[i] = (i % 64 == 63) ? '.' : 'a';
  if (s[n - 1] == '.')
    s[n - 2] = '.', s[n - 1] = 'a'; /* keep the last label non-empty */
  s[n] = '\0';
  return s;
}

/* Parse "<pre><mid><post>" and compare with the expected reason (NULL: OK). */
static void expect(const char *pre, const char *mid, const char *post,
                   const char *reason)
{
  size_t len = strlen(pre) + strlen(mid) + strlen(post);
  char *s = malloc(len + 1);
  kith_jid_t *j = NULL;
  const char *why = NULL;
  kith_status_t st;

  assert_non_null(s);
  snprintf(s, len + 1, "%s%s%s", pre, mid, post);
  st = kith_jid_parse(NULL, s, &j, &why);
  if (reason == NULL) {
    if (st != KITH_OK)
      fail_msg("%zu-byte part: %s", strlen(mid), why);
    kith_jid_free(j);
  } else {
    if (st != KITH_EJID || strcmp(why, reason) != 0)
      fail_msg("%zu-byte part: status %d (%s), want %s", strlen(mid), st,
               why ? why : "no reason", reason);
  }
  free(s);
}

static void test_part_limits(void **state)
{
  char *s;

  (void)state;
  s = repeat("a", 1023);
  expect("", s, "@example.com", NULL);
  expect("example.com/", s, "", NULL);
  free(s);
  s = repeat("a", 1024);
  expect("", s, "@example.com", "localpart exceeds 1023 bytes");
  expect("example.com/", s, "", "resourcepart exceeds 1023 bytes");
  free(s);
  s = hostname(1023);
  expect("user@", s, "/r", NULL);
  free(s);
  s = hostname(1024);
  expect("user@", s, "/r", "domainpart exceeds 1023 bytes");
  free(s);

  /* Non-ASCII parts go through libidn; the limit is the same. */
  s = repeat("\xc3\xa4", 511); /* 1022 bytes */
  expect("a", s, "@example.com", NULL);
  expect("example.com/R", s, "", NULL);
  expect("", s, "ab@example.com", "localpart exceeds 1023 bytes");
  expect("example.com/", s, "AB", "resourcepart exceeds 1023 bytes");
  free(s);
  /* Uppercase folds to the same length: Ä is two bytes, like ä. */
  s = repeat("\xc3\x84", 512);
  expect("", s, "@example.com", "localpart exceeds 1023 bytes");
  free(s);

  /* The limit applies after preparation: 1026 bytes of fullwidth letters
   * become 342 ASCII bytes. */
  s = repeat("\xef\xbc\xa1", 342);
  expect("", s, "@example.com", NULL);
  free(s);
  /* Expansion: U+FDFA (3 bytes) becomes 18 characters (33 bytes), so 31
   * of them make exactly 1023 bytes and 32 too many. */
  s = repeat("\xef\xb7\xba", 31);
  expect("example.com/", s, "", NULL);
  free(s);
  s = repeat("\xef\xb7\xba", 32);
  expect("example.com/", s, "", "resourcepart exceeds 1023 bytes");
  free(s);

  /* Raw input is bounded before preparation. */
  s = repeat("\xc2\xad", 2045); /* 4090 bytes mapped to nothing */
  expect("a", s, "@example.com", NULL);
  expect("ab", s, "@example.com", NULL);
  expect("abc", s, "@example.com", "localpart input exceeds 4092 bytes");
  free(s);
}

static void test_label_limits(void **state)
{
  char *s;

  (void)state;
  s = repeat("a", 63);
  expect("user@", s, ".example", NULL);
  free(s);
  s = repeat("a", 64);
  expect("user@", s, ".example", "domainpart has a label over 63 bytes");
  expect("user@", s, "", "domainpart has a label over 63 bytes");
  free(s);
  /* IDN labels count in their ASCII form, "xn--" and Punycode, not in
   * UTF-8: 40 'ä' are 80 bytes of UTF-8 but "xn--" plus 42 characters. */
  s = repeat("\xc3\xa4", 40);
  expect("user@", s, ".example", NULL);
  free(s);
  s = repeat("\xe4\xb8\xad", 30); /* 90 bytes, 36 in ASCII form */
  expect("user@", s, ".example", NULL);
  free(s);
  /* 59 'ä' need 61 Punycode characters; 60 can never fit in 59. */
  s = repeat("\xc3\xa4", 59);
  expect("user@", s, ".example", "domainpart has a label over 63 bytes");
  free(s);
  s = repeat("\xc3\xa4", 60);
  expect("user@", s, ".example", "domainpart has a label over 63 bytes");
  free(s);
  /* The edge: "mü" and 54 'a' make 63 bytes in ASCII form (57 in UTF-8),
   * one more 'a' makes 64 (58 in UTF-8). */
  s = repeat("a", 54);
  expect("user@m\xc3\xbc", s, ".example", NULL);
  free(s);
  s = repeat("a", 55);
  expect("user@m\xc3\xbc", s, ".example",
         "domainpart has a label over 63 bytes");
  free(s);
}

/*
 * The ASCII fast path must agree with libidn for every ASCII character, in
 * every profile.
 */
static void cross_check(int c, const Stringprep_profile *profile,
                        const char *pre, const char *post)
{
  char in[8], libidn[64], jidstr[64], want[96];
  int rc, nameprep = profile == stringprep_nameprep;
  kith_jid_t *j = NULL;
  const char *got;

  snprintf(in, sizeof(in), "a%cb", c);
  snprintf(libidn, sizeof(libidn), "%s", in);
  rc = stringprep(libidn, sizeof(libidn), 0, profile);
  snprintf(jidstr, sizeof(jidstr), "%s%s%s", pre, in, post);
  if (kith_jid_parse(NULL, jidstr, &j, NULL) != KITH_OK) {
    /* Where kith refuses, libidn must refuse too; for the domainpart the
     * hostname rules refuse more: everything but letters, digits, '-'. */
    if (rc == STRINGPREP_OK && !nameprep)
      fail_msg("kith refuses 0x%02x that libidn accepts", c);
    if (nameprep && (c == '-' || (c >= '0' && c <= '9') ||
                     ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')))
      fail_msg("kith refuses hostname character 0x%02x", c);
    return;
  }
  if (rc != STRINGPREP_OK)
    fail_msg("kith accepts 0x%02x that libidn refuses", c);
  if (profile == stringprep_xmpp_nodeprep)
    got = kith_jid_local(j);
  else if (nameprep)
    got = kith_jid_domain(j);
  else
    got = kith_jid_resource(j);
  snprintf(want, sizeof(want), "%s%s", libidn, nameprep ? post : "");
  if (got == NULL || strcmp(got, want) != 0)
    fail_msg("0x%02x: kith \"%s\", libidn \"%s\"", c, got ? got : "(null)",
             want);
  kith_jid_free(j);
}

static void test_ascii_matches_libidn(void **state)
{
  int c;

  (void)state;
  for (c = 1; c < 0x80; c++) {
    cross_check(c, stringprep_xmpp_resourceprep, "x@example.com/", "");
    /* '/' and '@' move the split; '.' splits labels. */
    if (c == '/' || c == '@')
      continue;
    cross_check(c, stringprep_xmpp_nodeprep, "", "@example.com");
    if (c != '.')
      cross_check(c, stringprep_nameprep, "x@", ".example");
  }
}

/* An allocator that fails the Nth allocation and counts blocks. */
struct failing {
  int calls, fail_at;
  long live;
};

static void *f_malloc(size_t n, void *ud)
{
  struct failing *f = ud;

  if (++f->calls == f->fail_at)
    return NULL;
  f->live++;
  return malloc(n);
}

static void *f_realloc(void *p, size_t n, void *ud)
{
  struct failing *f = ud;

  if (p == NULL)
    return f_malloc(n, ud);
  if (++f->calls == f->fail_at)
    return NULL;
  return realloc(p, n);
}

static void f_free(void *p, void *ud)
{
  struct failing *f = ud;

  if (p)
    f->live--;
  free(p);
}

/* Fail each allocation in turn until `op` succeeds. Returns the number of
 * allocations the successful run made. */
static int torture(const char *in, const char *full, int which)
{
  int n;

  for (n = 1; n < 100; n++) {
    struct failing f = {0, n, 0};
    kith_allocator_t a = {f_malloc, f_realloc, f_free, &f};
    kith_ctx_t *ctx = NULL;
    kith_jid_t *j = NULL, *k = NULL;
    char *s = NULL;
    const char *why = NULL;
    kith_status_t st;

    f.fail_at = 0;
    assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
    f.calls = 0;
    f.fail_at = n;
    if (which == 0) {
      st = kith_jid_parse(ctx, in, &j, &why);
    } else if (which == 1) {
      st = kith_jid_normalize(ctx, in, 0, &s, &why);
    } else {
      f.fail_at = 0;
      assert_int_equal(kith_jid_parse(ctx, in, &j, NULL), KITH_OK);
      f.calls = 0;
      f.fail_at = n;
      st = kith_jid_copy(j, &k);
    }
    if (st == KITH_OK) {
      assert_true(f.calls < n);
      assert_string_equal(which == 0   ? kith_jid_full(j)
                          : which == 1 ? s
                                       : kith_jid_full(k),
                          full);
      kith_jid_free(j);
      kith_jid_free(k);
      kith_free(ctx, s);
      assert_int_equal(f.live, 1); /* only the context is left */
      kith_ctx_free(ctx);
      return n - 1;
    }
    assert_int_equal(st, KITH_ENOMEM);
    if (which != 2) {
      assert_null(j);
      assert_string_equal(why, "out of memory");
    }
    assert_null(k);
    assert_null(s);
    kith_jid_free(j); /* with which == 2, j is the original */
    assert_int_equal(f.live, 1);
    kith_ctx_free(ctx);
  }
  fail_msg("never succeeded");
  return -1;
}

static void test_failing_allocator(void **state)
{
  const char *in = "\xc3\x84\xc3\x96\xc3\x9c@M\xc3\x9cLLER.example/R\xc3\x84";
  const char *full = "\xc3\xa4\xc3\xb6\xc3\xbc@m\xc3\xbcller.example/R\xc3\x84";

  (void)state;
  /* Scratch for libidn plus the JID (or the string) itself. */
  assert_int_equal(torture(in, full, 0), 2);
  assert_int_equal(torture(in, full, 1), 2);
  assert_int_equal(torture(in, full, 2), 1);
  /* ASCII needs no scratch: one block. */
  assert_int_equal(torture("A@B.example/r", "a@b.example/r", 0), 1);
  assert_int_equal(torture("A@B.example/r", "a@b.example/r", 1), 1);
}

/* The JID remembers its context: free and copy use its allocator. */
static void test_ctx_remembered(void **state)
{
  struct failing f = {0, 0, 0};
  kith_allocator_t a = {f_malloc, f_realloc, f_free, &f};
  kith_ctx_t *ctx;
  kith_jid_t *j, *k;

  (void)state;
  assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
  assert_int_equal(kith_jid_parse(ctx, "a@b/c", &j, NULL), KITH_OK);
  assert_int_equal(f.live, 2);
  assert_int_equal(kith_jid_copy(j, &k), KITH_OK);
  assert_int_equal(f.live, 3);
  kith_jid_free(j);
  kith_jid_free(k);
  assert_int_equal(f.live, 1);
  kith_ctx_free(ctx);
  assert_int_equal(f.live, 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_accessors),
      cmocka_unit_test(test_compare),
      cmocka_unit_test(test_copy),
      cmocka_unit_test(test_null_handling),
      cmocka_unit_test(test_normalize),
      cmocka_unit_test(test_part_limits),
      cmocka_unit_test(test_label_limits),
      cmocka_unit_test(test_ascii_matches_libidn),
      cmocka_unit_test(test_failing_allocator),
      cmocka_unit_test(test_ctx_remembered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

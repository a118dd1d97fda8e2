/*
 * Fuzz target: JID parsing.
 *
 * Any input either parses, and then the result obeys the invariants below,
 * or fails with KITH_EJID and a reason. With the default allocator nothing
 * may report KITH_ENOMEM: that would mean an invalid input is misreported.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kith/jid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
  if (!ok)
    abort();
}

static void check_parts(const kith_jid_t *j)
{
  const char *local = kith_jid_local(j), *domain = kith_jid_domain(j);
  const char *res = kith_jid_resource(j), *bare = kith_jid_bare(j);
  const char *full = kith_jid_full(j);
  size_t blen, dlen;

  check(domain != NULL && bare != NULL && full != NULL);
  blen = strlen(bare);
  dlen = strlen(domain);
  check(dlen > 0 && dlen <= KITH_JID_PART_MAX);
  /* The bare form is [local@]domain and a prefix of the full form. */
  check(strncmp(full, bare, blen) == 0);
  check(blen >= dlen && strcmp(bare + blen - dlen, domain) == 0);
  if (local) {
    size_t llen = strlen(local);

    check(llen > 0 && llen <= KITH_JID_PART_MAX);
    check(strchr(local, '@') == NULL && strchr(local, '/') == NULL);
    check(strncmp(bare, local, llen) == 0 && bare[llen] == '@');
    check(blen == llen + 1 + dlen);
  } else {
    check(blen == dlen);
  }
  check(strchr(domain, '@') == NULL && strchr(domain, '/') == NULL);
  if (res) {
    check(!kith_jid_is_bare(j));
    check(full[blen] == '/' && strcmp(full + blen + 1, res) == 0);
    check(strlen(res) > 0 && strlen(res) <= KITH_JID_PART_MAX);
  } else {
    check(kith_jid_is_bare(j));
    check(strcmp(full, bare) == 0);
  }
}

/* Normalization is idempotent and the other entry points agree. */
static void check_stable(const kith_jid_t *j, const char *in)
{
  kith_jid_t *again = NULL, *copy = NULL;
  char *s = NULL;

  check(kith_jid_parse(NULL, kith_jid_full(j), &again, NULL) == KITH_OK);
  check(strcmp(kith_jid_full(again), kith_jid_full(j)) == 0);
  check(kith_jid_equal(j, again) && kith_jid_bare_equal(j, again));
  kith_jid_free(again);
  check(kith_jid_parse(NULL, kith_jid_bare(j), &again, NULL) == KITH_OK);
  check(strcmp(kith_jid_full(again), kith_jid_bare(j)) == 0);
  kith_jid_free(again);

  check(kith_jid_copy(j, &copy) == KITH_OK);
  check(kith_jid_equal(j, copy));
  kith_jid_free(copy);

  check(kith_jid_normalize(NULL, in, 0, &s, NULL) == KITH_OK);
  check(strcmp(s, kith_jid_full(j)) == 0);
  kith_free(NULL, s);
  check(kith_jid_normalize(NULL, in, 1, &s, NULL) == KITH_OK);
  check(strcmp(s, kith_jid_bare(j)) == 0);
  kith_free(NULL, s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *in = malloc(size + 1);
  kith_jid_t *j = NULL;
  const char *why = NULL;
  kith_status_t st;

  if (in == NULL)
    return 0;
  memcpy(in, data, size);
  in[size] = '\0';
  st = kith_jid_parse(NULL, in, &j, &why);
  if (st == KITH_OK) {
    check(j != NULL && why == NULL);
    check_parts(j);
    check_stable(j, in);
    kith_jid_free(j);
  } else {
    char *s = (char *)1;

    check(st == KITH_EJID && j == NULL && why != NULL && why[0] != '\0');
    check(kith_jid_normalize(NULL, in, 0, &s, NULL) == KITH_EJID);
    check(s == NULL);
  }
  free(in);
  return 0;
}

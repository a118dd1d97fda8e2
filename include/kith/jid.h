/*
 * kith: Jabber IDs (RFC 7622).
 *
 * A kith_jid_t is an immutable, parsed and normalized JID. Parsing applies
 * the stringprep profiles that Prosody uses (libidn): nodeprep to the
 * localpart, nameprep to the domainpart, resourceprep to the resourcepart,
 * and enforces the 1023-byte limit on each part after preparation.
 */
#ifndef KITH_JID_H
#define KITH_JID_H

#include <stddef.h>
#include "export.h"
#include "status.h"
#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kith_jid kith_jid_t;

/** Longest part of a JID, in bytes after preparation (RFC 7622 3.2-3.4). */
#define KITH_JID_PART_MAX 1023

/**
 * Parse and normalize `str` (NUL-terminated UTF-8).
 *
 * On success returns KITH_OK and sets *out to a new JID owned by the caller
 * (free with kith_jid_free()). On failure returns KITH_EJID (or KITH_ENOMEM,
 * KITH_EINVAL for NULL arguments), leaves *out NULL and, when `reason` is
 * not NULL, sets *reason to a static English text such as "localpart is
 * empty" or "domainpart exceeds 1023 bytes".
 */
KITH_EXTERN kith_status_t kith_jid_parse(kith_ctx_t *ctx, const char *str,
                                         kith_jid_t **out,
                                         const char **reason);

/** Free a JID. NULL is a no-op. */
KITH_EXTERN void kith_jid_free(kith_jid_t *jid);

/** Copy a JID. Returns KITH_OK or KITH_ENOMEM. */
KITH_EXTERN kith_status_t kith_jid_copy(const kith_jid_t *jid,
                                        kith_jid_t **out);

/** The normalized localpart, or NULL when the JID has none. Borrowed. */
KITH_EXTERN const char *kith_jid_local(const kith_jid_t *jid);
/** The normalized domainpart. Never NULL. Borrowed. */
KITH_EXTERN const char *kith_jid_domain(const kith_jid_t *jid);
/** The normalized resourcepart, or NULL when there is none. Borrowed. */
KITH_EXTERN const char *kith_jid_resource(const kith_jid_t *jid);
/** The normalized bare form, "local@domain" or "domain". Borrowed. */
KITH_EXTERN const char *kith_jid_bare(const kith_jid_t *jid);
/** The normalized full form (bare plus "/resource" if any). Borrowed. */
KITH_EXTERN const char *kith_jid_full(const kith_jid_t *jid);
/** Non-zero when the JID has no resource. */
KITH_EXTERN int kith_jid_is_bare(const kith_jid_t *jid);

/** Non-zero when the full normalized forms are equal. */
KITH_EXTERN int kith_jid_equal(const kith_jid_t *a, const kith_jid_t *b);
/** Non-zero when the bare normalized forms are equal. */
KITH_EXTERN int kith_jid_bare_equal(const kith_jid_t *a, const kith_jid_t *b);

/**
 * Convenience: normalize `str` into a new string in full form (or bare form
 * when `bare` is non-zero). The result is freed with kith_free(ctx, ...).
 * Errors as kith_jid_parse().
 */
KITH_EXTERN kith_status_t kith_jid_normalize(kith_ctx_t *ctx, const char *str,
                                             int bare, char **out,
                                             const char **reason);

#ifdef __cplusplus
}
#endif

#endif /* KITH_JID_H */

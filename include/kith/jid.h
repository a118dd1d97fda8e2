/*
 * kith: Jabber IDs (RFC 7622).
 *
 * A kith_jid_t is an immutable, parsed and normalized JID. Parsing applies
 * the stringprep profiles that Prosody uses (libidn): nodeprep to the
 * localpart, nameprep to the domainpart, resourceprep to the resourcepart,
 * and enforces the 1023-byte limit on each part after preparation.
 *
 * Splitting follows RFC 7622 section 3.1: the resourcepart is everything
 * after the first '/' (it may contain '@' and '/'); the localpart is what
 * precedes the first '@' before that. The domainpart is prepared label by
 * label, as IDNA does: U+3002, U+FF0E and U+FF61 separate labels like '.',
 * one trailing dot is removed, and each label must be a hostname label
 * (ASCII letters, digits and '-' but not at either end; non-ASCII
 * characters that pass nameprep) of 1 to 63 bytes in its ASCII ("xn--")
 * form. A name whose last label is numeric must be a dotted-quad IPv4
 * address; an IPv6 address in brackets is stored in its canonical RFC 5952
 * form ("[2001:db8::1]"). The resourcepart keeps its case.
 *
 * A JID is one block from its context's allocator and remembers that
 * context, which must outlive it. Borrowed strings live as long as the JID.
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
 * Parse and normalize `str` (NUL-terminated UTF-8). `ctx` may be NULL for
 * the default context.
 *
 * On success returns KITH_OK and sets *out to a new JID owned by the caller
 * (free with kith_jid_free()). On failure returns KITH_EJID (or KITH_ENOMEM,
 * KITH_EINVAL for NULL arguments), leaves *out NULL and, when `reason` is
 * not NULL, sets *reason to a static English text such as "localpart is
 * empty", "domainpart exceeds 1023 bytes", "input is not valid UTF-8" or
 * "localpart is not valid (nodeprep failed)". On success *reason is NULL.
 *
 * A part longer than 4092 bytes before preparation is refused outright
 * ("localpart input exceeds 4092 bytes"), which bounds libidn's work.
 * Non-ASCII parts go through libidn, whose NFKC step allocates with
 * malloc(3) internally, outside the context's allocator.
 */
KITH_EXTERN kith_status_t kith_jid_parse(kith_ctx_t *ctx, const char *str,
                                         kith_jid_t **out, const char **reason);

/** Free a JID. NULL is a no-op. */
KITH_EXTERN void kith_jid_free(kith_jid_t *jid);

/**
 * Copy a JID into a new one from the same context. Returns KITH_OK,
 * KITH_ENOMEM, or KITH_EINVAL when an argument is NULL; *out is NULL on
 * failure.
 */
KITH_EXTERN kith_status_t kith_jid_copy(const kith_jid_t *jid,
                                        kith_jid_t **out);

/*
 * Accessors: each returns NULL (or 0) for a NULL JID. The bare form is a
 * prefix of the full form; for a bare JID they are the same pointer.
 */

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

/**
 * Non-zero when the full normalized forms are equal, byte for byte (so the
 * resourcepart compares case-sensitively). NULL equals nothing, not even
 * NULL.
 */
KITH_EXTERN int kith_jid_equal(const kith_jid_t *a, const kith_jid_t *b);
/** Non-zero when the bare normalized forms are equal. NULL as above. */
KITH_EXTERN int kith_jid_bare_equal(const kith_jid_t *a, const kith_jid_t *b);

/**
 * Convenience: normalize `str` into a new string in full form (or bare form
 * when `bare` is non-zero; the whole JID is still validated). The result is
 * freed with kith_free(ctx, ...). Errors as kith_jid_parse().
 */
KITH_EXTERN kith_status_t kith_jid_normalize(kith_ctx_t *ctx, const char *str,
                                             int bare, char **out,
                                             const char **reason);

#ifdef __cplusplus
}
#endif

#endif /* KITH_JID_H */

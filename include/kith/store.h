/*
 * kith: roster stores (persistence).
 *
 * A store keeps roster nodes outside the process: for each owner bare JID,
 * its items (JID, name, groups, subscription flags, whitelist bit) and its
 * roster version. Presence is volatile and never stored.
 *
 * Every change is one atomic batch (kith_store_apply()): the items of a
 * roster push and the version it carries, or a whole roster result and its
 * version, are committed together or not at all.
 *
 * Stores are opened from a URI, the same in the API and the CLI:
 *   sqlite:PATH          SQLite (the default; PATH created if missing)
 *   sqlite:              the default path, $XDG_DATA_HOME/kith/roster.db
 *                        ($HOME/.local/share/kith/roster.db without it)
 *   redis://HOST:PORT/DB Redis through hiredis (DB optional, default 0)
 *   memory:              in the process only (gone when closed)
 *
 * A custom backend is a kith_store_backend_t given to kith_store_new(); see
 * docs/stores.md for a worked example. Every call is synchronous: a store
 * is read and written from the thread that drives the roster, and a slow
 * store slows the connection down with it.
 *
 * Attach a store to a roster with kith_roster_set_store() (kith/roster.h).
 */
#ifndef KITH_STORE_H
#define KITH_STORE_H

#include <stddef.h>
#include "kith/export.h"
#include "kith/status.h"
#include "kith/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kith_store kith_store_t;

/*
 * Stored flag bits beyond the subscription flags KITH_ROSTER_FROM ..
 * KITH_ROSTER_APPROVED (0x01..0x10, kith/roster.h): the whitelist bit, and
 * the mark of a component's stranger row (a pending request from a
 * contact that has no item, RFC 6121 A.1; no name or groups).
 */
#define KITH_STORE_WHITELISTED 0x100u
#define KITH_STORE_STRANGER 0x200u
/* Every bit a store must keep. */
#define KITH_STORE_FLAG_MASK 0x31Fu

/** One stored item. Strings are borrowed for the duration of the call. */
typedef struct kith_store_item {
  const char *jid;           /* the contact's normalized bare JID */
  const char *name;          /* NULL when the item has no name */
  const char *const *groups; /* `ngroups` names, in order */
  size_t ngroups;
  unsigned flags; /* KITH_ROSTER_* | KITH_STORE_WHITELISTED */
} kith_store_item_t;

/** What one operation of a batch does. */
typedef enum kith_store_op_type {
  KITH_STORE_PUT = 0,     /* add or replace `item` */
  KITH_STORE_DELETE = 1,  /* delete the item `item.jid` (absent is fine) */
  KITH_STORE_VERSION = 2, /* set the version to `version` (NULL clears) */
  KITH_STORE_CLEAR = 3,   /* delete every item and the version; the owner
                             stays known */
  KITH_STORE_DROP = 4     /* forget the owner: items, version, and the
                             owner itself (kith_store_owners() stops
                             listing it) */
} kith_store_op_type_t;

/** One operation of a batch. */
typedef struct kith_store_op {
  kith_store_op_type_t type;
  kith_store_item_t item; /* PUT: every field; DELETE: item.jid */
  const char *version;    /* VERSION */
} kith_store_op_t;

/**
 * Receives a loaded node: `version` once (NULL when none is stored), then
 * `item` once per item. A non-OK return stops the load, which returns it.
 */
typedef struct kith_store_sink {
  kith_status_t (*version)(void *ud, const char *version);
  kith_status_t (*item)(void *ud, const kith_store_item_t *item);
  void *ud;
} kith_store_sink_t;

/** Called once per owner by kith_store_owners(); non-OK stops the walk. */
typedef kith_status_t (*kith_store_owner_fn)(void *ud, const char *owner);

/**
 * A backend. Every function gets the store (for kith_store_set_error()) and
 * the `impl` given to kith_store_new(). Owners and JIDs arrive normalized.
 * Return KITH_OK, KITH_ENOTFOUND (load of an owner the store does not
 * know), KITH_EINVAL (a malformed batch, e.g. a PUT without a JID: nothing
 * applied), KITH_ESTORE (the store failed: I/O, connection lost and not
 * regained, ...), KITH_ECORRUPT (the stored data cannot be read) or
 * KITH_ENOMEM, and say why with kith_store_set_error(). Flag bits outside
 * KITH_STORE_FLAG_MASK are not stored.
 */
typedef struct kith_store_backend {
  const char *name; /* "sqlite", "redis", "memory", or your own */
  /** Feed the owner's node to `sink`. KITH_ENOTFOUND: unknown owner. */
  kith_status_t (*load)(kith_store_t *store, void *impl, const char *owner,
                        const kith_store_sink_t *sink);
  /**
   * Apply `n` operations to the owner atomically, in order: all or none.
   * Applying any batch makes the owner known (an empty batch just does
   * that), except a batch whose last operation is KITH_STORE_DROP.
   */
  kith_status_t (*apply)(kith_store_t *store, void *impl, const char *owner,
                         const kith_store_op_t *ops, size_t n);
  /** Call `fn` for every known owner, in no particular order. */
  kith_status_t (*owners)(kith_store_t *store, void *impl,
                          kith_store_owner_fn fn, void *ud);
  /**
   * Forget everything and start empty, even when the stored data is
   * unreadable (a damaged SQLite file is moved aside and recreated). May
   * be NULL: kith_store_reset() then drops every owner.
   */
  kith_status_t (*reset)(kith_store_t *store, void *impl);
  /** Release everything. May be NULL. */
  void (*close)(void *impl);
} kith_store_backend_t;

/**
 * Open a store by URI (see the top of this file). KITH_EINVAL for an
 * unknown scheme or a malformed URI, KITH_ESTORE when the store cannot be
 * opened, KITH_ECORRUPT when it is not a kith store or is damaged; then
 * *out is NULL and, when `err`/`errlen` are given, `err` says why.
 */
KITH_EXTERN kith_status_t kith_store_open(kith_ctx_t *ctx, const char *uri,
                                          kith_store_t **out, char *err,
                                          size_t errlen);

/** Wrap a custom backend. `impl` is closed by kith_store_close(). */
KITH_EXTERN kith_status_t kith_store_new(kith_ctx_t *ctx,
                                         const kith_store_backend_t *backend,
                                         void *impl, kith_store_t **out);

/** Close a store (calls the backend's close). NULL is a no-op. */
KITH_EXTERN void kith_store_close(kith_store_t *store);

/** The backend's name ("sqlite", "redis", "memory", ...). */
KITH_EXTERN const char *kith_store_backend_name(const kith_store_t *store);

/** The URI the store was opened with (the default path filled in). */
KITH_EXTERN const char *kith_store_uri(const kith_store_t *store);

/** Load one owner's node into `sink`. KITH_ENOTFOUND: unknown owner. */
KITH_EXTERN kith_status_t kith_store_load(kith_store_t *store,
                                          const char *owner,
                                          const kith_store_sink_t *sink);

/** Apply a batch atomically (see kith_store_backend_t.apply). */
KITH_EXTERN kith_status_t kith_store_apply(kith_store_t *store,
                                           const char *owner,
                                           const kith_store_op_t *ops,
                                           size_t n);

/** Call `fn` for every owner the store knows. */
KITH_EXTERN kith_status_t kith_store_owners(kith_store_t *store,
                                            kith_store_owner_fn fn, void *ud);

/**
 * Forget everything the store holds (see kith_store_backend_t.reset). A
 * client does this when its cache is damaged, then fetches the whole
 * roster again.
 */
KITH_EXTERN kith_status_t kith_store_reset(kith_store_t *store);

/**
 * The text of the last error (empty when none). Valid until the next call
 * on the store.
 */
KITH_EXTERN const char *kith_store_errmsg(const kith_store_t *store);

/** For backends: record why the current call fails (printf format). */
KITH_EXTERN void kith_store_set_error(kith_store_t *store, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * The default store path, $XDG_DATA_HOME/kith/roster.db (or
 * $HOME/.local/share/kith/roster.db), written into `buf`. KITH_ELIMIT when
 * it does not fit, KITH_ENOTFOUND when neither variable is set.
 */
KITH_EXTERN kith_status_t kith_store_default_path(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* KITH_STORE_H */

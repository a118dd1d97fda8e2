/*
 * kith: connections (client and XEP-0114 component).
 *
 * A kith_conn_t is one XML stream to a server. A client connection finds
 * the server (SRV `_xmpp-client._tcp`, else the domain on port 5222, or an
 * explicit host and port), requires STARTTLS with a verified certificate,
 * authenticates with SASL (SCRAM-SHA-256, SCRAM-SHA-1, their -PLUS variants
 * when channel binding is available, PLAIN only over TLS) and binds a
 * resource. A component connection (kith_conn_set_component()) connects to
 * an explicit host and port and completes the XEP-0114 handshake.
 *
 * The event loop belongs to the application: either drive the connection
 * yourself (kith_conn_fd(), kith_conn_want(), kith_conn_timeout(),
 * kith_conn_process()), or call kith_run(), which does the same with
 * poll(2). Nothing blocks except kith_run() and DNS at connect time.
 *
 * The callback contract: if a function that takes a callback returns an
 * error, the callback never fires; otherwise it fires exactly once, with
 * KITH_ECANCELED when the connection goes down first. Callbacks run from
 * inside kith_conn_process() / kith_run(). Never free a connection from
 * inside one of its own callbacks; call kith_conn_disconnect() instead.
 */
#ifndef KITH_CONN_H
#define KITH_CONN_H

#include <stddef.h>
#include "kith/export.h"
#include "kith/status.h"
#include "kith/ctx.h"
#include "kith/stanza.h"
#include "kith/event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kith_conn kith_conn_t;

/** I/O interest and readiness bits for kith_conn_want()/kith_conn_process(). */
#define KITH_IO_READ 1
#define KITH_IO_WRITE 2

/** Defaults, all changeable per connection. */
#define KITH_DEFAULT_IQ_TIMEOUT_MS 30000u
#define KITH_DEFAULT_CONNECT_TIMEOUT_MS 30000u
#define KITH_DEFAULT_CLOSE_TIMEOUT_MS 5000u
#define KITH_DEFAULT_SEND_QUEUE_MAX (16u * 1024u * 1024u)

/**
 * Create a connection. `ctx` may be NULL (default context). The new
 * connection is idle until kith_conn_connect().
 */
KITH_EXTERN kith_status_t kith_conn_new(kith_ctx_t *ctx, kith_conn_t **out);

/**
 * Free a connection. If it is still connected the socket is closed at once
 * (no stream close is sent); pending iq callbacks fire with KITH_ECANCELED.
 * NULL is a no-op. Never call it from inside the connection's callbacks.
 */
KITH_EXTERN void kith_conn_free(kith_conn_t *conn);

/** The connection's context. */
KITH_EXTERN kith_ctx_t *kith_conn_ctx(const kith_conn_t *conn);

/* ---- Configuration (copied; only while idle, else KITH_ESTATE) -------- */

/**
 * Set the account JID (client). A resource in the JID is requested at bind
 * time; without one the server chooses. KITH_EJID if invalid.
 */
KITH_EXTERN kith_status_t kith_conn_set_jid(kith_conn_t *conn, const char *jid);
/** Set the password (client) or NULL to clear it. */
KITH_EXTERN kith_status_t kith_conn_set_password(kith_conn_t *conn,
                                                 const char *password);
/**
 * Make this a XEP-0114 component connection for `domain` with the shared
 * `secret`. A component needs an explicit server (kith_conn_set_server()).
 */
KITH_EXTERN kith_status_t kith_conn_set_component(kith_conn_t *conn,
                                                  const char *domain,
                                                  const char *secret);
/**
 * Connect to `host` and `port` instead of looking up SRV records. `host`
 * NULL goes back to the SRV lookup. `port` 0 means 5222 for a client and
 * 5347 for a component.
 */
KITH_EXTERN kith_status_t kith_conn_set_server(kith_conn_t *conn,
                                               const char *host, unsigned port);
/** Trust the CA certificates in this PEM file instead of the system's. */
KITH_EXTERN kith_status_t kith_conn_set_ca_file(kith_conn_t *conn,
                                                const char *path);
/**
 * FOR TESTING ONLY: when `skip` is non-zero the server certificate and host
 * name are not verified, and a warning is logged at every connect.
 */
KITH_EXTERN kith_status_t kith_conn_set_insecure_skip_verify(kith_conn_t *conn,
                                                             int skip);
/** Timeout for iq replies (0 = default, 30 s). */
KITH_EXTERN kith_status_t kith_conn_set_iq_timeout(kith_conn_t *conn,
                                                   unsigned ms);
/**
 * Timeout from kith_conn_connect() until the session starts (0 = default,
 * 30 s), and for the peer's stream close after kith_conn_disconnect() (0 =
 * default, 5 s).
 */
KITH_EXTERN kith_status_t kith_conn_set_timeouts(kith_conn_t *conn,
                                                 unsigned connect_ms,
                                                 unsigned close_ms);
/**
 * Parser limits for incoming XML (0 keeps the default: 256 KiB per stanza,
 * depth 32). A peer exceeding them gets a policy-violation stream error.
 */
KITH_EXTERN kith_status_t kith_conn_set_limits(kith_conn_t *conn,
                                               size_t max_stanza,
                                               unsigned max_depth);
/**
 * Reconnect with exponential backoff after an unexpected disconnect.
 * `enable` 0 turns it off (the default). Delays start at `initial_ms`
 * (0 = 1000) and double up to `max_ms` (0 = 60000). Authentication and
 * certificate failures are not retried.
 */
KITH_EXTERN kith_status_t kith_conn_set_reconnect(kith_conn_t *conn, int enable,
                                                  unsigned initial_ms,
                                                  unsigned max_ms);

/* ---- Lifecycle ------------------------------------------------------- */

/**
 * Start connecting. DNS resolution happens here and blocks; everything else
 * proceeds in kith_conn_process(). Returns KITH_OK when the attempt has
 * started; its outcome arrives as KITH_EVENT_SESSION_START or
 * KITH_EVENT_DISCONNECTED. Errors: KITH_ESTATE (not idle), KITH_EINVAL
 * (missing JID, password or server), KITH_ERESOLVE, KITH_ECONNECT.
 */
KITH_EXTERN kith_status_t kith_conn_connect(kith_conn_t *conn);

/**
 * Close cleanly: send `</stream:stream>` and wait (up to the close timeout)
 * for the peer's close, then KITH_EVENT_DISCONNECTED fires with KITH_OK.
 * Stops any pending reconnect. No-op when idle.
 */
KITH_EXTERN void kith_conn_disconnect(kith_conn_t *conn);

/** Non-zero once the session has started and until it ends. */
KITH_EXTERN int kith_conn_is_ready(const kith_conn_t *conn);
/** Non-zero while connecting, connected, closing or waiting to reconnect. */
KITH_EXTERN int kith_conn_is_active(const kith_conn_t *conn);

/** Non-zero for a XEP-0114 component connection. */
KITH_EXTERN int kith_conn_is_component(const kith_conn_t *conn);
/** The bound full JID (client) or the component domain; NULL before. */
KITH_EXTERN const char *kith_conn_jid(const kith_conn_t *conn);
/**
 * The server's stream features after the session started, or NULL.
 * Borrowed until the connection ends.
 */
KITH_EXTERN const kith_stanza_t *kith_conn_features(const kith_conn_t *conn);
/**
 * The TLS protocol and cipher in use ("TLSv1.3 TLS_AES_256_GCM_SHA384"),
 * or NULL without TLS. Borrowed until the connection ends.
 */
KITH_EXTERN const char *kith_conn_tls_info(const kith_conn_t *conn);
/** The SASL mechanism that authenticated the session, or NULL. */
KITH_EXTERN const char *kith_conn_sasl_mechanism(const kith_conn_t *conn);
/**
 * Text describing the last error on this connection ("" if none), valid
 * until the next call on the connection.
 */
KITH_EXTERN const char *kith_conn_error_text(const kith_conn_t *conn);

/* ---- Events and stanzas ---------------------------------------------- */

typedef void (*kith_event_cb)(kith_conn_t *conn, const kith_event_t *event,
                              void *ud);

/**
 * Register an event handler for `type` (or KITH_EVENT_ANY). Returns an id
 * > 0 for kith_conn_off(), or 0 when out of memory.
 */
KITH_EXTERN unsigned kith_conn_on(kith_conn_t *conn, kith_event_type_t type,
                                  kith_event_cb cb, void *ud);
/** Remove an event or stanza handler by id. Unknown ids are ignored. */
KITH_EXTERN void kith_conn_off(kith_conn_t *conn, unsigned id);

/**
 * Stanza handler. Return non-zero when the stanza was handled; then no
 * later handler sees it. An iq get/set that no handler takes is answered
 * with a service-unavailable error.
 */
typedef int (*kith_stanza_cb)(kith_conn_t *conn, const kith_stanza_t *stanza,
                              void *ud);

/**
 * Register a handler for incoming stanzas whose element name equals `name`
 * ("message", "presence", "iq"; NULL for any), whose `type` attribute
 * equals `type` (NULL for any) and which have a child element in namespace
 * `child_ns` (NULL for any). Returns an id > 0, or 0 when out of memory.
 */
KITH_EXTERN unsigned kith_conn_add_handler(kith_conn_t *conn, const char *name,
                                           const char *type,
                                           const char *child_ns,
                                           kith_stanza_cb cb, void *ud);

/**
 * Send a stanza. It is serialized at once (the caller keeps ownership) and
 * queued. Errors: KITH_ESTATE (session not started), KITH_ELIMIT (send
 * queue full), KITH_ENOMEM.
 */
KITH_EXTERN kith_status_t kith_conn_send(kith_conn_t *conn,
                                         const kith_stanza_t *stanza);

/**
 * Callback for kith_conn_send_iq(). `status` is KITH_OK for a result,
 * KITH_ESTANZA for an error reply (see kith_stanza_error_condition()),
 * KITH_ETIMEDOUT, or KITH_ECANCELED on disconnect. `reply` is the reply
 * stanza (borrowed for the call) or NULL when there is none.
 */
typedef void (*kith_iq_cb)(kith_conn_t *conn, kith_status_t status,
                           const kith_stanza_t *reply, void *ud);

/**
 * Send an iq of type get or set and track its reply. An `id` is assigned if
 * the stanza has none. Only a reply whose `from` matches the request's `to`
 * counts (no `to` matches no `from`, the account's bare JID or its domain).
 * `timeout_ms` 0 uses the connection's iq timeout. The callback fires
 * exactly once unless this returns an error.
 */
KITH_EXTERN kith_status_t kith_conn_send_iq(kith_conn_t *conn,
                                            kith_stanza_t *iq,
                                            unsigned timeout_ms, kith_iq_cb cb,
                                            void *ud);

/**
 * Write a new unique stanza id into `buf` (at least 24 bytes) and return
 * it.
 */
KITH_EXTERN const char *kith_conn_new_id(kith_conn_t *conn, char *buf,
                                         size_t size);

/* ---- Event loop ------------------------------------------------------ */

/** The socket to watch, or -1 when there is none (idle or waiting). */
KITH_EXTERN int kith_conn_fd(const kith_conn_t *conn);
/** KITH_IO_READ and/or KITH_IO_WRITE: what to wait for on the fd. */
KITH_EXTERN int kith_conn_want(const kith_conn_t *conn);
/**
 * Milliseconds until the connection needs kith_conn_process() even with no
 * I/O (a timer), or -1 when no timer is pending.
 */
KITH_EXTERN long kith_conn_timeout(const kith_conn_t *conn);
/**
 * Do the work that `ready` (KITH_IO_READ / KITH_IO_WRITE bits that poll
 * reported, 0 for none) and the timers allow. Fires callbacks. Returns
 * KITH_OK, or the error that ended the connection in this call (the
 * DISCONNECTED event has fired by then).
 */
KITH_EXTERN kith_status_t kith_conn_process(kith_conn_t *conn, int ready);

/**
 * One round of the built-in loop over `n` connections (at most 64): poll
 * for up to `max_wait_ms` (-1 to wait for the next event or timer), then
 * process each. Returns at once when no connection has an fd or a timer.
 * Returns KITH_OK, KITH_EINVAL (too many), or KITH_EIO when poll fails.
 */
KITH_EXTERN kith_status_t kith_run_once(kith_conn_t *const *conns, size_t n,
                                        long max_wait_ms);

/**
 * The built-in loop: runs kith_run_once() until `conn` is no longer active
 * (disconnected with no reconnect pending). Returns the status of the last
 * disconnect (KITH_OK for a requested one).
 */
KITH_EXTERN kith_status_t kith_run(kith_conn_t *conn);

#ifdef __cplusplus
}
#endif

#endif /* KITH_CONN_H */

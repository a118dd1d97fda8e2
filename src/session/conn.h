/*
 * Internal: the connection object shared by the session modules.
 *
 *   conn.c       lifecycle, configuration, socket/TLS I/O, timers, teardown
 *   negotiate.c  stream negotiation: STARTTLS, SASL, bind (client) and the
 *                XEP-0114 handshake (component), one function per phase
 *   dispatch.c   event and stanza handlers, iq tracking
 *   loop.c       kith_run() and kith_run_once() on top of the public hooks
 */
#ifndef KITH_SESSION_CONN_H
#define KITH_SESSION_CONN_H

#include <stdint.h>
#include <gsasl.h>

#include "kith/conn.h"
#include "kith/jid.h"
#include "core/buf.h"
#include "transport/dialer.h"
#include "transport/tls.h"
#include "xml/parser.h"

typedef enum conn_state {
  KITH__ST_IDLE,          /* no connection, nothing scheduled */
  KITH__ST_CONNECTING,    /* TCP connect in progress */
  KITH__ST_TLS,           /* TLS handshake in progress */
  KITH__ST_STREAM,        /* XML stream open: negotiating or ready */
  KITH__ST_CLOSING,       /* we sent </stream:stream>; waiting for peer */
  KITH__ST_RECONNECT_WAIT /* disconnected; a reconnect is scheduled */
} kith__conn_state_t;

/* What the stream is waiting for while in KITH__ST_STREAM. */
typedef enum conn_phase {
  KITH__PH_HEADER,    /* the peer's stream header */
  KITH__PH_FEATURES,  /* <stream:features> */
  KITH__PH_STARTTLS,  /* <proceed/> */
  KITH__PH_SASL,      /* <challenge/>, <success/> or <failure/> */
  KITH__PH_BIND,      /* the bind (and session) iq results */
  KITH__PH_HANDSHAKE, /* the component's <handshake/> */
  KITH__PH_READY      /* session started */
} kith__conn_phase_t;

typedef struct kith__handler {
  struct kith__handler *next;
  unsigned id;
  int removed;
  int is_event;
  int is_free_hook; /* runs from kith_conn_free(); see kith__conn_on_free */
  kith_event_type_t event;
  char *name, *type, *child_ns;
  kith_event_cb event_cb;
  kith_stanza_cb stanza_cb;
  void (*free_cb)(kith_conn_t *conn, void *ud);
  void *ud;
} kith__handler_t;

typedef struct kith__pending_iq {
  struct kith__pending_iq *next;
  char *id;
  char *to; /* normalized full form of the request's 'to', or NULL */
  uint64_t deadline;
  kith_iq_cb cb;
  void *ud;
} kith__pending_iq_t;

struct kith_conn {
  kith_ctx_t *ctx;

  /* Configuration. */
  kith_jid_t *jid;
  char *password;
  char *component_domain;
  char *secret;
  char *host;
  unsigned port;
  char *ca_file;
  int insecure;
  unsigned iq_timeout_ms, connect_timeout_ms, close_timeout_ms;
  size_t max_stanza;
  unsigned max_depth;
  int reconnect;
  unsigned reconnect_initial_ms, reconnect_max_ms, reconnect_delay_ms;

  /* Connection state. */
  kith__conn_state_t state;
  kith__conn_phase_t phase;
  kith__dialer_t dialer;
  int fd;
  kith__tls_t *tls;
  int tls_active;
  int authenticated;
  kith__parser_t *parser;
  /* Item streaming for every parser of this connection (set by the
   * roster layer; see kith__conn_set_item_stream()). */
  char *stream_ns;
  kith__parser_item_cb stream_cb;
  void *stream_ud;
  kith__buf_t out;
  uint64_t deadline;     /* connect or close deadline, 0 for none */
  uint64_t reconnect_at; /* when in KITH__ST_RECONNECT_WAIT */
  int close_requested;

  /* Negotiation. */
  Gsasl *gsasl;
  Gsasl_session *sasl;
  char sasl_mech[32];
  char tls_info[128];
  int sasl_done; /* the mechanism finished, server verified */
  char *stream_id;
  kith_stanza_t *features;
  char *bound_jid;

  /* An end noticed inside a callback, acted on after it returns: `ending`
   * is set, `fail_status` says why (KITH_OK for a requested close). */
  int ending;
  int more_to_read; /* the read budget ran out with data still waiting */
  kith_status_t fail_status;
  kith_status_t end_status;
  char fail_text[512];
  char err[512];

  /* Handlers and iq tracking. */
  kith__handler_t *handlers;
  unsigned next_handler_id;
  int dispatching;
  kith__pending_iq_t *iqs;
  char id_prefix[12];
  unsigned long id_counter;
};

uint64_t kith__now_ms(void);

/* conn.c */
kith_status_t kith__conn_write(kith_conn_t *conn, const char *data, size_t len);
kith_status_t kith__conn_write_stanza(kith_conn_t *conn,
                                      const kith_stanza_t *st);
/* Record a failure to be acted on once the current callback returns. */
void kith__conn_fail(kith_conn_t *conn, kith_status_t status, const char *fmt,
                     ...) __attribute__((format(printf, 3, 4)));
kith_status_t kith__conn_open_stream(kith_conn_t *conn);
kith_status_t kith__conn_start_tls(kith_conn_t *conn);
/* Tests: use an already connected socket (a socketpair end played by a
 * scripted peer) instead of resolving and dialing. Takes the fd. */
kith_status_t kith__conn_adopt_fd(kith_conn_t *conn, int fd);
/* Tests: treat the adopted plain socket as if TLS were established, so a
 * scripted peer can play the SASL exchange. No TLS object exists; I/O
 * stays plain (the I/O paths test conn->tls, not conn->tls_active). */
void kith__conn_test_assume_tls(kith_conn_t *conn);
/* Tests: on an adopted fd, skip negotiation and start the session as
 * `bound_jid` with the server's `features` (copied; may be NULL). Fires
 * SESSION_START. */
kith_status_t kith__conn_test_ready(kith_conn_t *conn, const char *bound_jid,
                                    const kith_stanza_t *features);
/*
 * Stream the items of iq results whose child is in `ns` (copied) out of
 * the parser (xml/parser.h, "Item streaming"): `cb(ud, shell, item)` for
 * each item, then the shell (now holding an empty child) through the
 * usual stanza dispatch, iq tracking included. Applies to the current
 * parser and to every one the connection makes later (STARTTLS and SASL
 * restarts, reconnects). Items reach `cb` only while the session is ready;
 * `cb` must check who sent them (the shell's 'id' and 'from'), since the
 * connection cannot know yet whether the shell will answer a request.
 * `cb` NULL turns streaming off. One user per connection: a second call
 * replaces the first. Safe from any callback. KITH_OK, KITH_EINVAL,
 * KITH_ENOMEM.
 */
kith_status_t kith__conn_set_item_stream(kith_conn_t *conn, const char *ns,
                                         kith__parser_item_cb cb, void *ud);
/* The session started: fire SESSION_START. */
void kith__conn_ready(kith_conn_t *conn);

/* negotiate.c */
void kith__negotiate_stream_start(kith_conn_t *conn, const kith_stanza_t *root);
/* Handle a stanza during negotiation. Returns non-zero when consumed. */
int kith__negotiate_stanza(kith_conn_t *conn, const kith_stanza_t *st);
void kith__negotiate_reset(kith_conn_t *conn);

/* dispatch.c */
void kith__emit(kith_conn_t *conn, kith_event_t *ev);
void kith__emit_simple(kith_conn_t *conn, kith_event_type_t type,
                       kith_status_t status, const char *text, const char *jid);
void kith__dispatch_stanza(kith_conn_t *conn, const kith_stanza_t *st);
/* Does a reply from `from` (as sent, may be NULL) answer a request sent to
 * `to` (normalized, or NULL)? RFC 6120 10.3: a request with no 'to' went to
 * the account itself and may be answered with no 'from', the bare JID, the
 * domain or the bound JID. */
int kith__conn_reply_matches(kith_conn_t *conn, const char *to,
                             const char *from);
/* Internal iq send usable before the session is ready (bind). */
kith_status_t kith__iq_track(kith_conn_t *conn, kith_stanza_t *iq,
                             unsigned timeout_ms, kith_iq_cb cb, void *ud);
void kith__iq_cancel_all(kith_conn_t *conn, kith_status_t status);
void kith__iq_expire(kith_conn_t *conn, uint64_t now);
uint64_t kith__iq_next_deadline(const kith_conn_t *conn);
void kith__handlers_free(kith_conn_t *conn);
/* Register `fn` to run when the connection is freed, so that objects
 * attached to it (a roster) can forget it instead of touching freed
 * memory later. Returns an id for kith_conn_off(), 0 when out of memory. */
unsigned kith__conn_on_free(kith_conn_t *conn,
                            void (*fn)(kith_conn_t *conn, void *ud), void *ud);
/* Run the free hooks (from kith_conn_free()). */
void kith__conn_run_free_hooks(kith_conn_t *conn);

#endif /* KITH_SESSION_CONN_H */

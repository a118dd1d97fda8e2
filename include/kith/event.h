/*
 * kith: events.
 *
 * Every event has a type from KITH_EVENT_MAP and a name that SleekXMPP and
 * slixmpp users know ("session_start", "presence_subscribe", ...).
 * Handlers are registered on a connection with kith_conn_on() and removed
 * by the id it returns.
 */
#ifndef KITH_EVENT_H
#define KITH_EVENT_H

#include "kith/export.h"
#include "kith/status.h"
#include "kith/stanza.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(ENUM_SUFFIX, "name"). Append only: the numbers are part of the ABI. */
#define KITH_EVENT_MAP(XX)                                                     \
  XX(SESSION_START, "session_start")                                           \
  XX(DISCONNECTED, "disconnected")                                             \
  XX(CONNECTED, "connected")                                                   \
  XX(RECONNECT_SCHEDULED, "reconnect_scheduled")                               \
  XX(STREAM_ERROR, "stream_error")

typedef enum kith_event_type {
#define KITH_EVENT_ENUM_(suffix, name) KITH_EVENT_##suffix,
  KITH_EVENT_MAP(KITH_EVENT_ENUM_)
#undef KITH_EVENT_ENUM_
      KITH_EVENT_COUNT_, /* not an event; the number of types */
  KITH_EVENT_ANY = -1    /* for kith_conn_on(): every event */
} kith_event_type_t;

/**
 * An event. Every pointer is borrowed for the duration of the handler call
 * and may be NULL when it does not apply.
 *
 * - SESSION_START: `jid` is the bound full JID (client) or the component's
 *   domain; fired after resource binding / the component handshake.
 * - DISCONNECTED: `status` says why (KITH_OK for a disconnect the
 *   application asked for), `text` gives the detail, for example
 *   "not-authorized: wrong password or unknown account for alice@localhost".
 * - CONNECTED: the TCP connection is up (negotiation starts).
 * - RECONNECT_SCHEDULED: `delay_ms` until the next attempt.
 * - STREAM_ERROR: the peer sent a stream error; `text` is
 *   "condition: text"; DISCONNECTED follows.
 */
typedef struct kith_event {
  kith_event_type_t type;
  kith_status_t status;
  const char *text;
  const char *jid;
  const kith_stanza_t *stanza;
  long delay_ms;
} kith_event_t;

/** The event's name ("session_start", ...), or "unknown". Static. */
KITH_EXTERN const char *kith_event_name(kith_event_type_t type);

#ifdef __cplusplus
}
#endif

#endif /* KITH_EVENT_H */

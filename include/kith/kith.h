/*
 * kith: XMPP roster management and presence subscriptions.
 *
 * Include this header for the whole public API.
 */
#ifndef KITH_H
#define KITH_H

#include "kith/export.h"
#include "kith/version.h"
#include "kith/status.h"
#include "kith/ctx.h"
#include "kith/jid.h"
#include "kith/stanza.h"
#include "kith/event.h"
#include "kith/conn.h"
#include "kith/roster.h"

#endif /* KITH_H */

#!/usr/bin/python3
"""slixmpp as the peer of a kith client, for tests/integration/test_roster.c.

    slixmpp_peer.py MODE ACCOUNT KITH_JID KITH_STATUS STATUS_1 STATUS_2

Not a test by itself (the name does not start with test_): the C test
spawns it with KITH_LAB_ENV set and talks to it only through the lab's
Prosody. It logs in as ACCOUNT (ALICE, BOB, ...) with resource "slixmpp",
trusting only the lab's CA_FILE, and goes online with <show>chat</show>
and STATUS_1.

MODE "wait" tells the kith client (KITH_JID, a bare JID) "peer-ready" in a
chat message and leaves the first step to it; "subscribe" asks it first. Either way slixmpp's defaults
(auto_authorize=True, auto_subscribe=True) answer the other side's request
and ask back, so the subscription ends up both ways.

The peer then waits until its roster says 'both' for KITH_JID and it has
seen presence from KITH_JID carrying KITH_STATUS, changes its own status
to STATUS_2, sends the kith client the chat message "peer-ok" and leaves;
in "subscribe" mode it first removes KITH_JID from its roster.
On any failure it sends "peer-fail: REASON" instead and exits 1. It never
runs longer than about 30 seconds.
"""

import asyncio
import logging
import os
import sys

import slixmpp

from labenv import load_lab_env

STEP_TIMEOUT = 25.0


async def run(env, mode, account, kith_jid, kith_status, status_1, status_2):
    loop = asyncio.get_running_loop()
    xmpp = slixmpp.ClientXMPP(env[account + "_JID"] + "/slixmpp",
                              env[account + "_PASSWORD"])
    xmpp.ca_certs = env["CA_FILE"]
    xmpp.use_ipv6 = False
    # The defaults this scenario relies on.
    assert xmpp.roster.auto_authorize is True
    assert xmpp.roster.auto_subscribe is True

    started = loop.create_future()
    seen = {"full": None}

    def settle_start(error=None):
        if not started.done():
            if error:
                started.set_exception(RuntimeError(error))
            else:
                started.set_result(True)

    def on_presence(pres):
        if pres["from"].bare != kith_jid:
            return
        if pres["status"] == kith_status:
            seen["full"] = pres["from"]

    xmpp.add_event_handler("session_start", lambda _: settle_start())
    xmpp.add_event_handler("failed_all_auth",
                           lambda _: settle_start("authentication failed"))
    xmpp.add_event_handler("connection_failed",
                           lambda e: settle_start("connect: %s" % e))
    xmpp.add_event_handler("disconnected",
                           lambda _: settle_start("disconnected early"))
    xmpp.add_event_handler("presence_available", on_presence)
    xmpp.add_event_handler("changed_status", on_presence)

    xmpp.connect((env["XMPP_HOST"], int(env["C2S_PORT"])))
    await asyncio.wait_for(started, STEP_TIMEOUT)
    try:
        await asyncio.wait_for(xmpp.get_roster(), STEP_TIMEOUT)
        xmpp.send_presence(pshow="chat", pstatus=status_1, ppriority=1)
        if mode == "subscribe":
            xmpp.send_presence(pto=kith_jid, ptype="subscribe")
        else:
            # No presence reaches kith before a subscription: say it here.
            xmpp.send_message(mto=kith_jid, mbody="peer-ready", mtype="chat")

        def done():
            item = xmpp.client_roster[kith_jid]
            return item["subscription"] == "both" and seen["full"] is not None

        deadline = loop.time() + STEP_TIMEOUT
        while not done():
            if loop.time() > deadline:
                item = xmpp.client_roster[kith_jid]
                raise RuntimeError(
                    "no mutual subscription with kith presence: "
                    "subscription=%s pending_out=%s seen=%s"
                    % (item["subscription"], item["pending_out"],
                       seen["full"]))
            await asyncio.sleep(0.05)
        xmpp.send_presence(pshow="chat", pstatus=status_2, ppriority=1)
        xmpp.send_message(mto=seen["full"], mbody="peer-ok", mtype="chat")
        if mode == "subscribe":
            # Drop the kith client from the roster: the server cancels the
            # subscription both ways (RFC 6121 2.5.2).
            await asyncio.wait_for(xmpp.del_roster_item(kith_jid),
                                   STEP_TIMEOUT)
        print("slixmpp peer: ok", flush=True)
    except Exception as e:  # noqa: BLE001 - tell the kith side, then fail
        xmpp.send_message(mto=kith_jid, mbody="peer-fail: %s" % e,
                          mtype="chat")
        raise
    finally:
        await asyncio.wait_for(xmpp.disconnect(wait=2.0), STEP_TIMEOUT)


def main():
    if len(sys.argv) != 7 or sys.argv[1] not in ("wait", "subscribe"):
        sys.exit(__doc__)
    logging.basicConfig(level=logging.DEBUG if os.environ.get("LAB_DEBUG")
                        else logging.CRITICAL)
    env = load_lab_env()
    try:
        asyncio.run(asyncio.wait_for(run(env, *sys.argv[1:]), 30))
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        print("slixmpp peer: FAIL: %s: %s" % (type(e).__name__, e),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""slixmpp as the peer of a kith COMPONENT, for test_component_peers.c.

    slixmpp_component_peer.py ACCOUNT OWNER_JID OWNER_STATUS STATUS_1 STATUS_2

Not a test by itself (the name does not start with test_): the C test
spawns it with KITH_LAB_ENV set and talks to it only through the lab's
Prosody. It logs in as ACCOUNT (CAROL, ...) with resource "slixmpp",
trusting only the lab's CA_FILE, goes online with <show>chat</show> and
STATUS_1, and asks OWNER_JID (a bare JID the kith component serves, e.g.
user1@bot.localhost) for a subscription. slixmpp's defaults
(auto_authorize=True, auto_subscribe=True) accept the component's request
back.

It waits until
  - its roster says 'both' for OWNER_JID, with nothing pending,
  - OWNER_JID answered 'subscribed' and asked 'subscribe' itself,
  - presence came from a FULL JID of OWNER_JID carrying OWNER_STATUS,
then changes its own status to STATUS_2 and sends that full JID the chat
message "peer-ok". Next it waits for unavailable presence from the same
full JID (the test shuts the component's roster down), removes OWNER_JID
from its roster (the server sends unsubscribe and unsubscribed: RFC 6121
2.5.2), prints "slixmpp component peer: ok" and exits 0.

On any failure before "peer-ok" it sends OWNER_JID "peer-fail: REASON";
any failure exits 1 with the reason on stderr. It never runs longer than
about 45 seconds.
"""

import asyncio
import logging
import os
import sys

import slixmpp

from labenv import load_lab_env, wait_until

STEP_TIMEOUT = 15.0


def wait_until_step(loop, cond, what):
    return wait_until(loop, cond, what, STEP_TIMEOUT)


async def run(env, account, owner, owner_status, status_1, status_2):
    loop = asyncio.get_running_loop()
    xmpp = slixmpp.ClientXMPP(env[account + "_JID"] + "/slixmpp",
                              env[account + "_PASSWORD"])
    xmpp.ca_certs = env["CA_FILE"]
    xmpp.use_ipv6 = False
    # The defaults this scenario relies on.
    assert xmpp.roster.auto_authorize is True
    assert xmpp.roster.auto_subscribe is True

    started = loop.create_future()
    seen = {"full": None, "subscribed": False, "subscribe": False,
            "offline": False, "bare_presence": None}

    def settle_start(error=None):
        if not started.done():
            if error:
                started.set_exception(RuntimeError(error))
            else:
                started.set_result(True)

    def on_available(pres):
        if pres["from"].bare != owner:
            return
        if not pres["from"].resource:
            seen["bare_presence"] = str(pres["from"])
        elif pres["status"] == owner_status:
            seen["full"] = pres["from"]

    def on_unavailable(pres):
        if seen["full"] is not None and pres["from"] == seen["full"]:
            seen["offline"] = True

    def on_subscribed(pres):
        if pres["from"].bare == owner:
            seen["subscribed"] = True

    def on_subscribe(pres):
        if pres["from"].bare == owner:
            seen["subscribe"] = True

    xmpp.add_event_handler("session_start", lambda _: settle_start())
    xmpp.add_event_handler("failed_all_auth",
                           lambda _: settle_start("authentication failed"))
    xmpp.add_event_handler("connection_failed",
                           lambda e: settle_start("connect: %s" % e))
    xmpp.add_event_handler("disconnected",
                           lambda _: settle_start("disconnected early"))
    xmpp.add_event_handler("presence_available", on_available)
    xmpp.add_event_handler("changed_status", on_available)
    xmpp.add_event_handler("presence_unavailable", on_unavailable)
    xmpp.add_event_handler("presence_subscribed", on_subscribed)
    xmpp.add_event_handler("presence_subscribe", on_subscribe)

    xmpp.connect((env["XMPP_HOST"], int(env["C2S_PORT"])))
    await asyncio.wait_for(started, STEP_TIMEOUT)
    said_ok = False
    try:
        await asyncio.wait_for(xmpp.get_roster(), STEP_TIMEOUT)
        xmpp.send_presence(pshow="chat", pstatus=status_1, ppriority=1)
        xmpp.send_presence(pto=owner, ptype="subscribe")

        def mutual():
            item = xmpp.client_roster[owner]
            return (item["subscription"] == "both" and not item["pending_out"]
                    and seen["subscribed"] and seen["subscribe"]
                    and seen["full"] is not None)

        def mutual_state():
            item = xmpp.client_roster[owner]
            return ("mutual subscription and presence: subscription=%s "
                    "pending_out=%s subscribed=%s subscribe=%s full=%s "
                    "bare_presence=%s"
                    % (item["subscription"], item["pending_out"],
                       seen["subscribed"], seen["subscribe"], seen["full"],
                       seen["bare_presence"]))

        await wait_until_step(loop, mutual, mutual_state)
        xmpp.send_presence(pshow="chat", pstatus=status_2, ppriority=1)
        xmpp.send_message(mto=seen["full"], mbody="peer-ok", mtype="chat")
        said_ok = True
        await wait_until_step(loop, lambda: seen["offline"],
                         lambda: "unavailable from %s" % seen["full"])
        await asyncio.wait_for(xmpp.del_roster_item(owner), STEP_TIMEOUT)
        print("slixmpp component peer: ok", flush=True)
    except Exception as e:  # noqa: BLE001 - tell the kith side, then fail
        if not said_ok:
            xmpp.send_message(mto=owner, mbody="peer-fail: %s" % e,
                              mtype="chat")
        raise
    finally:
        await asyncio.wait_for(xmpp.disconnect(wait=2.0), STEP_TIMEOUT)


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    logging.basicConfig(level=logging.DEBUG if os.environ.get("LAB_DEBUG")
                        else logging.CRITICAL)
    env = load_lab_env()
    try:
        asyncio.run(asyncio.wait_for(run(env, *sys.argv[1:]), 45))
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        print("slixmpp component peer: FAIL: %s: %s" % (type(e).__name__, e),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

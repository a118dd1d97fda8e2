#!/usr/bin/python3
"""slixmpp as the peer of a kith component that restarts, for
test_component_peers.c.

    slixmpp_restart_peer.py ACCOUNT OWNER_JID GO_FILE

Not a test by itself: the C test spawns it with KITH_LAB_ENV set.

1. It logs in as ACCOUNT with resource "slixmpp", goes online, asks
   OWNER_JID (a JID the kith component serves) for a subscription and
   accepts the component's request back (slixmpp's defaults), until its
   roster says 'both' with nothing pending. Then it logs out.
2. It waits for GO_FILE to exist (the test restarts the component in
   between), logs in again and goes online. Its server then probes
   OWNER_JID (RFC 6121 4.3.1): the restarted component must answer from
   its stored roster, with presence (unavailable: the owner is offline),
   never with 'unsubscribed'. It waits for that answer, checks the roster
   still says 'both', removes OWNER_JID and exits 0 ("ok" on stdout).

Any failure exits 1 with the reason on stderr. It never runs longer than
about 60 seconds.
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


async def session(env, account, owner, seen):
    """Log in; return the client once its roster arrived."""
    loop = asyncio.get_running_loop()
    xmpp = slixmpp.ClientXMPP(env[account + "_JID"] + "/slixmpp",
                              env[account + "_PASSWORD"])
    xmpp.ca_certs = env["CA_FILE"]
    xmpp.use_ipv6 = False
    started = loop.create_future()

    def settle(error=None):
        if not started.done():
            if error:
                started.set_exception(RuntimeError(error))
            else:
                started.set_result(True)

    def on_presence(pres):
        if pres["from"].bare == owner:
            seen.append(pres["type"])

    xmpp.add_event_handler("session_start", lambda _: settle())
    xmpp.add_event_handler("failed_all_auth",
                           lambda _: settle("authentication failed"))
    xmpp.add_event_handler("connection_failed",
                           lambda e: settle("connect: %s" % e))
    xmpp.add_event_handler("presence", on_presence)
    xmpp.connect((env["XMPP_HOST"], int(env["C2S_PORT"])))
    await asyncio.wait_for(started, STEP_TIMEOUT)
    await asyncio.wait_for(xmpp.get_roster(), STEP_TIMEOUT)
    return xmpp


async def run(env, account, owner, go_file):
    loop = asyncio.get_running_loop()
    seen = []

    # 1. Subscribe both ways.
    xmpp = await session(env, account, owner, seen)
    xmpp.send_presence(pshow="chat", ppriority=1)
    xmpp.send_presence(pto=owner, ptype="subscribe")

    def mutual():
        item = xmpp.client_roster[owner]
        return item["subscription"] == "both" and not item["pending_out"]

    await wait_until_step(loop, mutual, "subscription both with " + owner)
    await asyncio.wait_for(xmpp.disconnect(wait=2.0), STEP_TIMEOUT)

    # 2. After the component's restart, log in again: the server probes.
    await wait_until_step(loop, lambda: os.path.exists(go_file), go_file)
    del seen[:]
    xmpp = await session(env, account, owner, seen)
    try:
        if xmpp.client_roster[owner]["subscription"] != "both":
            raise RuntimeError("roster lost 'both' with %s" % owner)
        xmpp.send_presence(pshow="chat", ppriority=1)
        await wait_until_step(loop, lambda: "unavailable" in seen or
                         "unsubscribed" in seen,
                         "the answer to the probe of " + owner)
        if "unsubscribed" in seen:
            raise RuntimeError("the restarted component answered "
                               "'unsubscribed': it forgot the subscription")
        await asyncio.wait_for(xmpp.del_roster_item(owner), STEP_TIMEOUT)
        print("ok", flush=True)
    finally:
        await asyncio.wait_for(xmpp.disconnect(wait=2.0), STEP_TIMEOUT)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    logging.basicConfig(level=logging.DEBUG if os.environ.get("LAB_DEBUG")
                        else logging.CRITICAL)
    env = load_lab_env()
    try:
        asyncio.run(asyncio.wait_for(run(env, *sys.argv[1:]), 60))
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        print("slixmpp restart peer: FAIL: %s: %s" % (type(e).__name__, e),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Integration: Debian's slixmpp as a peer against the lab's Prosody.

Logs alice in (STARTTLS, trusting only the lab's CA_FILE), fetches her
roster, sends presence and disconnects; then checks that a client trusting
only OTHER_CA_FILE is refused at TLS. Later tests use slixmpp the same way
as the "other side" of kith scenarios. Exits non-zero on any failure and
never runs longer than about a minute.
"""

import asyncio
import logging
import os
import sys

import slixmpp

from labenv import load_lab_env

STEP_TIMEOUT = 15.0


def make_client(env, jid, password, ca_file):
    xmpp = slixmpp.ClientXMPP(jid, password)
    xmpp.ca_certs = ca_file
    # Only the lab: never look anything up in DNS.
    xmpp.use_ipv6 = False
    return xmpp


async def login_roundtrip(env):
    """Alice logs in, fetches her roster, goes online, disconnects."""
    loop = asyncio.get_running_loop()
    xmpp = make_client(env, env["ALICE_JID"] + "/slixmpp",
                       env["ALICE_PASSWORD"], env["CA_FILE"])
    started = loop.create_future()

    def settle(value=None, error=None):
        if not started.done():
            if error:
                started.set_exception(RuntimeError(error))
            else:
                started.set_result(value)

    xmpp.add_event_handler("session_start", lambda _: settle(True))
    xmpp.add_event_handler("failed_all_auth", lambda _: settle(error="authentication failed"))
    xmpp.add_event_handler("ssl_invalid_chain", lambda e: settle(error="TLS: %s" % e))
    xmpp.add_event_handler("connection_failed", lambda e: settle(error="connect: %s" % e))
    xmpp.add_event_handler("stream_error", lambda e: settle(error="stream error: %s" % e))
    xmpp.add_event_handler("disconnected", lambda _: settle(error="disconnected early"))

    xmpp.connect((env["XMPP_HOST"], int(env["C2S_PORT"])))
    try:
        await asyncio.wait_for(started, STEP_TIMEOUT)
        print("session started as", xmpp.boundjid.full)
        assert xmpp.boundjid.bare == env["ALICE_JID"], xmpp.boundjid
        await asyncio.wait_for(xmpp.get_roster(), STEP_TIMEOUT)
        print("roster fetched: %d item(s), ver=%r"
              % (len(xmpp.client_roster), xmpp.client_roster.version))
        xmpp.send_presence()
    finally:
        await asyncio.wait_for(xmpp.disconnect(wait=1.0), STEP_TIMEOUT)
    print("disconnected")


async def unknown_ca_is_refused(env):
    """A client that trusts only the unrelated CA must not get a session."""
    loop = asyncio.get_running_loop()
    xmpp = make_client(env, env["BOB_JID"] + "/slixmpp", env["BOB_PASSWORD"],
                       env["OTHER_CA_FILE"])
    outcome = loop.create_future()

    def settle(value):
        if not outcome.done():
            outcome.set_result(value)

    xmpp.add_event_handler("session_start", lambda _: settle("session"))
    xmpp.add_event_handler("ssl_invalid_chain", lambda _: settle("invalid-chain"))
    xmpp.add_event_handler("disconnected", lambda _: settle("disconnected"))
    xmpp.connect((env["XMPP_HOST"], int(env["C2S_PORT"])))
    try:
        result = await asyncio.wait_for(outcome, STEP_TIMEOUT)
    finally:
        xmpp.abort()
    assert result == "invalid-chain", "expected a TLS refusal, got %r" % result
    print("unknown CA refused:", result)


async def main():
    env = load_lab_env()
    await login_roundtrip(env)
    await unknown_ca_is_refused(env)


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL if not os.environ.get("LAB_DEBUG")
                        else logging.DEBUG)
    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        print("FAIL: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
    print("OK")

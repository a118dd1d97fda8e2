#!/usr/bin/python3
"""Integration: the examples in examples/ against the lab's Prosody.

Each example runs as a user would run it ($KITH_EXAMPLES_DIR/NAME with
--jid/--server/--ca-file and the password in $KITH_PASSWORD), against a
peer: another lab account through the kith CLI ($KITH_BIN), or slixmpp
(python3-slixmpp). The checks read the example's output and, independently,
what the server holds afterwards (`kith roster list --json` as each account
concerned):

  roster_rename        the contact's new name and groups on the server
  roster_remove        both ways of removing; a missing contact fails
  policy               each of the four flags, with a requester's view of
                       the answer (accepted both ways / one way / declined;
                       --custom accepts a known contact, declines a stranger)
  custom_subscription  the allow-list accepts and subscribes back, refuses
                       with 'unsubscribed', and does not ask back when a
                       request of ours is pending already
  component_two_jids   one contact ends 'both' with user1 and 'none' with
                       user2; every stanza it received from the component
                       came from user1 or user2; a second run reads the
                       rosters back from its --store

The lab accounts are shared with the other integration tests, so every
account starts and ends with an empty roster and nothing pending (reset()).
Every wait is bounded; the whole test takes about 10 s.
"""

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import slixmpp

LAB = {}
with open(os.environ["KITH_LAB_ENV"], encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            LAB[k] = v
KITH = os.environ["KITH_BIN"]
EXAMPLES = os.environ["KITH_EXAMPLES_DIR"]
SERVER = "%s:%s" % (LAB["XMPP_HOST"], LAB["C2S_PORT"])
ACCOUNTS = ["ALICE", "BOB", "CAROL", "DAVE"]
USER1 = "user1@" + LAB["COMPONENT_DOMAIN"]
USER2 = "user2@" + LAB["COMPONENT_DOMAIN"]
WAIT = 10.0  # the longest any single wait may take, in seconds
TMP = tempfile.mkdtemp(prefix="kith-test-examples-")
# The kith CLI caches rosters here, not in the user's home.
os.environ["XDG_DATA_HOME"] = TMP
FAILED = []


def jid(account):
    return LAB[account + "_JID"]


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name +
          ("" if cond else ": " + str(detail)), flush=True)
    if not cond:
        FAILED.append(name)
    return cond


def account_env(account):
    env = dict(os.environ)
    env["KITH_PASSWORD"] = LAB[account + "_PASSWORD"]
    env.pop("KITH_JID", None)
    return env


def client_args(account):
    return ["--jid", jid(account), "--server", SERVER,
            "--ca-file", LAB["CA_FILE"]]


def example(name, account, *args, timeout=WAIT):
    """Run an example to its end as ACCOUNT; a CompletedProcess."""
    return subprocess.run([os.path.join(EXAMPLES, name)] +
                          client_args(account) + list(args),
                          env=account_env(account), capture_output=True,
                          text=True, timeout=timeout)


def kith(account, *args):
    return subprocess.run([KITH] + client_args(account) + list(args),
                          env=account_env(account), capture_output=True,
                          text=True, timeout=WAIT)


def roster(account):
    """What the server holds: ACCOUNT's roster, JID -> item."""
    r = kith(account, "roster", "list", "--json")
    check("kith roster list as %s" % account, r.returncode == 0, r.stderr)
    return {i["jid"]: i for i in json.loads(r.stdout or "[]")}


def sub(items, contact):
    """(subscription, ask) of CONTACT in a roster(), or None."""
    item = items.get(contact)
    return (item["subscription"], item["ask"]) if item else None


class Background:
    """An example running beside the test, its output collected by line."""

    def __init__(self, argv, env):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def has(self, text):
        with self.cond:
            return any(text in line for line in self.lines)

    def wait_for(self, text, timeout=WAIT):
        """Wait until a line contains TEXT (or the process ended)."""
        with self.cond:
            return self.cond.wait_for(
                lambda: any(text in line for line in self.lines)
                or not self.reader.is_alive(), timeout) and self.has(text)

    def stop(self):
        """SIGINT (a clean disconnect), then its exit code, output, stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(WAIT)
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        return self.proc.returncode, "\n".join(self.lines), err


def background(name, account, *args):
    return Background([os.path.join(EXAMPLES, name)] + client_args(account) +
                      list(args), account_env(account))


# ---- Resetting the lab accounts (as test_component_peers.c does) ----------

def new_client(account, resource):
    xmpp = slixmpp.ClientXMPP(jid(account) + "/" + resource,
                              LAB[account + "_PASSWORD"])
    xmpp.ca_certs = LAB["CA_FILE"]
    xmpp.use_ipv6 = False  # only the lab, never DNS
    return xmpp


async def start(xmpp):
    started = asyncio.get_running_loop().create_future()

    def settle(error=None):
        if not started.done():
            if error:
                started.set_exception(RuntimeError(error))
            else:
                started.set_result(True)

    xmpp.add_event_handler("session_start", lambda _: settle())
    xmpp.add_event_handler("failed_all_auth",
                           lambda _: settle("authentication failed"))
    xmpp.add_event_handler("connection_failed",
                           lambda e: settle("connect: %s" % e))
    xmpp.add_event_handler("disconnected",
                           lambda _: settle("disconnected early"))
    xmpp.connect((LAB["XMPP_HOST"], int(LAB["C2S_PORT"])))
    await asyncio.wait_for(started, WAIT)
    await asyncio.wait_for(xmpp.get_roster(), WAIT)


async def reset_account(account):
    """Empty roster, nothing pending; sends no presence, answers nothing."""
    xmpp = new_client(account, "reset")
    xmpp.roster.auto_authorize = None
    xmpp.roster.auto_subscribe = False
    await start(xmpp)
    try:
        # Cancel every request left pending with us (RFC 6121 3.2).
        for other in [jid(a) for a in ACCOUNTS if a != account] + [USER1,
                                                                   USER2]:
            xmpp.send_presence(pto=other, ptype="unsubscribed")
        # Removing an item cancels the subscriptions both ways (2.5.2).
        for contact in list(xmpp.client_roster.keys()):
            if contact != jid(account):
                await asyncio.wait_for(xmpp.del_roster_item(contact), WAIT)
        await asyncio.wait_for(xmpp.get_roster(), WAIT)
        left = [c for c in xmpp.client_roster.keys() if c != jid(account)]
        if left:
            raise RuntimeError("%s still has %s" % (account, left))
    finally:
        await asyncio.wait_for(xmpp.disconnect(wait=1.0), WAIT)


def reset():
    async def all_accounts():
        await asyncio.gather(*[reset_account(a) for a in ACCOUNTS])
    asyncio.run(asyncio.wait_for(all_accounts(), 3 * WAIT))


# ---- 1. roster_rename -------------------------------------------------------

def test_roster_rename():
    contact = "romeo@localhost"
    r = kith("ALICE", "roster", "add", contact, "--name", "romeo")
    check("rename: contact added first", r.returncode == 0, r.stderr)
    r = example("roster_rename", "ALICE", contact, "Romeo", "Montagues",
                "Verona")
    check("rename: exit 0", r.returncode == 0, r.stdout + r.stderr)
    check("rename: lists the roster first",
          "roster of alice@localhost: 1 item(s)" in r.stdout and
          "  romeo@localhost name=romeo subscription=none" in r.stdout,
          r.stdout)
    push = [line for line in r.stdout.splitlines()
            if line.startswith("roster_update " + contact)]
    # The server keeps groups as a set: their order is its own.
    check("rename: prints the server's push",
          len(push) == 1 and "name=Romeo" in push[0] and
          sorted(push[0].split("groups=")[-1].split(",")) ==
          ["Montagues", "Verona"], r.stdout)
    item = roster("ALICE").get(contact, {})
    check("rename: the server has the name and groups",
          item.get("name") == "Romeo" and
          sorted(item.get("groups", [])) == ["Montagues", "Verona"], item)


# ---- 2. roster_remove -------------------------------------------------------

def test_roster_remove():
    kith("ALICE", "roster", "add", "tybalt@localhost")
    r = example("roster_remove", "ALICE", "romeo@localhost")
    check("remove (del_roster_item): exit 0", r.returncode == 0,
          r.stdout + r.stderr)
    check("remove (del_roster_item): the push",
          "roster_update romeo@localhost removed" in r.stdout, r.stdout)
    r = example("roster_remove", "ALICE", "--subscription-remove",
                "tybalt@localhost")
    check("remove (subscription='remove'): exit 0", r.returncode == 0,
          r.stdout + r.stderr)
    check("remove (subscription='remove'): the push",
          "roster_update tybalt@localhost removed" in r.stdout, r.stdout)
    r = example("roster_remove", "ALICE", "nobody@localhost")
    check("remove of a missing contact: exit 1 with the condition",
          r.returncode == 1 and "item-not-found" in r.stdout,
          r.stdout + r.stderr)
    left = roster("ALICE")
    check("remove: the server has neither",
          "romeo@localhost" not in left and "tybalt@localhost" not in left,
          left)


# ---- 3. policy ----------------------------------------------------------------

def run_policy(owner, flag, requests):
    """OWNER runs `policy FLAG`; each account in REQUESTS asks it for a
    subscription once it is online. Returns the example's output."""
    p = background("policy", owner, flag, "--for", str(WAIT * 2))
    ready = p.wait_for("presence_available " + jid(owner))
    for account in requests:
        r = kith(account, "presence", "subscribe", jid(owner))
        check("policy %s: %s asks" % (flag, account), r.returncode == 0,
              r.stderr)
    # The policy answers in the same round that prints the request, so
    # once the last one is printed every answer is on its way.
    seen = all(p.wait_for("roster_subscription_request " + jid(a))
               for a in requests)
    code, out, err = p.stop()
    check("policy %s: online, saw every request, exit 0" % flag,
          ready and seen and code == 0 and "disconnected - OK" in out,
          "code=%s\n%s\n%s" % (code, out, err))
    return out


def test_policy():
    a, b, c, d = (jid(x) for x in ACCOUNTS)
    # Accept, and ask back: bob sees alice; alice's request waits for bob.
    run_policy("ALICE", "--accept-both", ["BOB"])
    rb, ra = roster("BOB"), roster("ALICE")
    check("accept-both: bob has a subscription to alice",
          sub(rb, a) == ("to", None), rb)
    check("accept-both: alice asked bob back",
          sub(ra, b) == ("from", "subscribe"), ra)
    # Removing alice from bob's roster cancels both directions (example 2).
    r = example("roster_remove", "BOB", a)
    ra = roster("ALICE")
    check("remove cancels the subscriptions both ways",
          r.returncode == 0 and sub(ra, b) == ("none", None),
          r.stdout + r.stderr + str(ra))
    # Prosody sends that 'unsubscribed' without its own outbound
    # processing, so alice's request stays stored with bob: reset.
    reset()

    # Accept only: dave sees carol; carol asks nothing.
    run_policy("CAROL", "--accept-one-way", ["DAVE"])
    rd, rc = roster("DAVE"), roster("CAROL")
    check("accept-one-way: dave has a subscription to carol",
          sub(rd, c) == ("to", None), rd)
    check("accept-one-way: carol did not ask back",
          sub(rc, d) == ("from", None), rc)

    # Decline: alice's request to bob is refused, and bob keeps no item.
    run_policy("BOB", "--decline-all", ["ALICE"])
    ra, rb = roster("ALICE"), roster("BOB")
    check("decline-all: alice was refused", sub(ra, b) == ("none", None), ra)
    check("decline-all: bob has no subscription from alice",
          sub(rb, a) in (None, ("none", None)), rb)

    # Custom: alice accepts carol, whom she added herself, and declines
    # dave, a stranger to her.
    kith("ALICE", "roster", "add", c, "--name", "Carol")
    out = run_policy("ALICE", "--custom", ["CAROL", "DAVE"])
    check("custom: the application decided",
          "custom: accepted %s (in our roster): success" % c in out and
          "custom: declined %s (a stranger): success" % d in out, out)
    rc, rd, ra = roster("CAROL"), roster("DAVE"), roster("ALICE")
    check("custom: carol has a subscription to alice",
          sub(rc, a) == ("to", None), rc)
    check("custom: dave was refused", sub(rd, a) == ("none", None), rd)
    check("custom: alice asked nobody back", sub(ra, c) == ("from", None), ra)


# ---- 4. custom_subscription -------------------------------------------------

def test_custom_subscription():
    a, b, c, d = (jid(x) for x in ACCOUNTS)
    allow = os.path.join(TMP, "allowed.txt")
    with open(allow, "w", encoding="utf-8") as f:
        f.write("# who may see alice\n%s\nDave@LocalHost  # any case\n" % b)
    # Alice asked dave first: when dave asks, she must not ask again.
    r = kith("ALICE", "presence", "subscribe", d)
    check("custom_subscription: alice asks dave first", r.returncode == 0,
          r.stderr)
    p = background("custom_subscription", "ALICE", "--for", str(WAIT * 2),
                   allow)
    ready = p.wait_for("session_start " + a)
    for account in ("BOB", "CAROL", "DAVE"):
        kith(account, "presence", "subscribe", a)
    done = (p.wait_for("asked %s back" % b) and p.wait_for("refused " + c)
            and p.wait_for("not asking %s back" % d))
    code, out, err = p.stop()
    check("custom_subscription: answered all three, exit 0",
          ready and done and code == 0, "code=%s\n%s\n%s" % (code, out, err))
    check("custom_subscription: the backend read the allow-list",
          "backend: 2 JID(s) allowed" in out, out)
    check("custom_subscription: allowed JIDs recorded in the backend",
          "backend: recorded the subscription of " + b in out and
          "backend: %s subscribed" % b in out and
          "backend: %s subscribed" % d in out, out)
    check("custom_subscription: dave's request found ours pending",
          "not asking %s back: our request is pending" % d in out, out)
    ra, rb, rc, rd = (roster(x) for x in ACCOUNTS)
    check("custom_subscription: bob subscribed, alice asked back",
          sub(rb, a) == ("to", None) and sub(ra, b) == ("from", "subscribe"),
          "%s %s" % (rb, ra))
    check("custom_subscription: carol refused", sub(rc, a) == ("none", None),
          rc)
    check("custom_subscription: dave subscribed, alice's one request",
          sub(rd, a) == ("to", None) and sub(ra, d) == ("from", "subscribe"),
          "%s %s" % (rd, ra))


# ---- 5. component_two_jids --------------------------------------------------

def component(store, seconds, *args):
    env = dict(os.environ)
    env["KITH_COMPONENT_SECRET"] = LAB["COMPONENT_SECRET"]
    return Background([os.path.join(EXAMPLES, "component_two_jids"),
                       "--domain", LAB["COMPONENT_DOMAIN"], "--server",
                       "%s:%s" % (LAB["XMPP_HOST"], LAB["COMPONENT_PORT"]),
                       "--store", store, "--for", str(seconds)] + list(args),
                      env)


async def carol_asks_both(comp):
    """slixmpp as carol asks user1 and user2; returns every stanza it got
    from the component's domain as (name, type, from)."""
    loop = asyncio.get_running_loop()
    xmpp = new_client("CAROL", "slixmpp")  # accepts and asks back
    got = []

    def record(stanza):
        if isinstance(stanza, (slixmpp.Presence, slixmpp.Message,
                               slixmpp.Iq)) and \
                stanza["from"].domain == LAB["COMPONENT_DOMAIN"]:
            got.append((stanza.name, stanza["type"], str(stanza["from"])))
        return stanza

    def seen(name, typ, frm):
        return any(g[0] == name and g[1] == typ and g[2].startswith(frm)
                   for g in got)

    async def until(cond, what):
        deadline = loop.time() + WAIT
        while not cond():
            if loop.time() > deadline:
                raise RuntimeError("timed out waiting for " + what)
            await asyncio.sleep(0.05)

    xmpp.add_filter("in", record)
    await start(xmpp)
    try:
        xmpp.send_presence(pstatus="carol is here")
        xmpp.send_presence(pto=USER1, ptype="subscribe")
        xmpp.send_presence(pto=USER2, ptype="subscribe")
        # Both sides' view: slixmpp's roster changes as it answers, before
        # its answer reaches the component.
        await until(lambda: xmpp.client_roster[USER1]["subscription"] == "both"
                    and not xmpp.client_roster[USER1]["pending_out"]
                    and comp.has("[%s] roster_subscription_authorized %s"
                                 % (USER1, jid("CAROL")))
                    and seen("presence", "unsubscribed", USER2)
                    and seen("presence", "available", USER1 + "/bot"),
                    "user1 both, user2 refused, user1 online: %s" % got)
        comp.proc.send_signal(signal.SIGINT)  # it says goodbye, then leaves
        await until(lambda: seen("presence", "unavailable", USER1 + "/bot"),
                    "unavailable from user1: %s" % got)
    finally:
        await asyncio.wait_for(xmpp.disconnect(wait=1.0), WAIT)
    return got


def seen_from(got, typ, frm):
    return any(g[0] == "presence" and g[1] == typ and g[2] == frm
               for g in got)


def test_component_two_jids():
    cj = jid("CAROL")
    store = "sqlite:" + os.path.join(TMP, "component.db")
    comp = component(store, WAIT * 3, "--ask", cj)
    ready = comp.wait_for("session_start")
    got = []
    try:
        got = asyncio.run(asyncio.wait_for(carol_asks_both(comp), 3 * WAIT))
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        check("component: carol's side", False, "%s: %s" % (type(e).__name__,
                                                             e))
    code, out, err = comp.stop()
    check("component: online, exit 0 after SIGINT", ready and code == 0,
          "code=%s\n%s\n%s" % (code, out, err))
    check("component: user1 asked carol (kith_roster_send_subscription)",
          "%s asked %s: success" % (USER1, cj) in out and
          seen_from(got, "subscribe", USER1), out)
    check("component: each node applied its own policy",
          "[%s] roster_subscription_request %s" % (USER1, cj) in out and
          "[%s] roster_subscription_request %s" % (USER2, cj) in out and
          "[%s] roster_subscription_authorized %s" % (USER1, cj) in out, out)
    check("component: user1 'both', user2 no subscription for carol",
          "roster of %s: 1 contact(s)\n  %s subscription=both" % (USER1, cj)
          in out and
          ("roster of %s: 0 contact(s)" % USER2 in out or
           "roster of %s: 1 contact(s)\n  %s subscription=none" % (USER2, cj)
           in out), out)
    strays = [g for g in got if g[2].split("/")[0] not in (USER1, USER2)]
    check("component: every stanza carol got came from user1 or user2",
          len(got) >= 4 and not strays, "strays=%s got=%s" % (strays, got))
    rc = roster("CAROL")
    check("component: the server agrees (carol's roster)",
          sub(rc, USER1) == ("both", None) and
          sub(rc, USER2) in (None, ("none", None)), rc)
    # A second run reads the rosters back from the store.
    comp = component(store, 0.5)
    comp.wait_for("] disconnected")
    code, out, err = comp.stop()
    check("component: a restart reads user1's roster from the store",
          code == 0 and "roster of %s: 1 contact(s)\n  %s subscription=both"
          % (USER1, cj) in out, "code=%s\n%s\n%s" % (code, out, err))


def main():
    logging.basicConfig(level=logging.DEBUG if os.environ.get("LAB_DEBUG")
                        else logging.CRITICAL)
    steps = [("reset", reset), ("roster_rename", test_roster_rename),
             ("roster_remove", test_roster_remove), ("policy", test_policy),
             ("reset", reset),
             ("custom_subscription", test_custom_subscription),
             ("component_two_jids", test_component_two_jids)]
    t0 = time.monotonic()
    try:
        for name, step in steps:
            t = time.monotonic()
            try:
                step()
            except Exception as e:  # noqa: BLE001 - a failed step
                check(name, False, "%s: %s" % (type(e).__name__, e))
            print("---- %s: %.1f s" % (name, time.monotonic() - t),
                  flush=True)
    finally:
        t = time.monotonic()
        try:
            reset()
        except Exception as e:  # noqa: BLE001
            check("final reset", False, "%s: %s" % (type(e).__name__, e))
        print("---- final reset: %.1f s; total %.1f s"
              % (time.monotonic() - t, time.monotonic() - t0), flush=True)
        subprocess.run(["rm", "-rf", TMP], check=False)
    if FAILED:
        print("%d check(s) failed: %s" % (len(FAILED), ", ".join(FAILED)))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()

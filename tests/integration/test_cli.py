"""Integration: the kith CLI against the lab's Prosody.

Runs the real binary ($KITH_BIN) with the lab's accounts: roster add / set /
list --json / remove, watch --json while another account subscribes with a
nick, failures with their exit codes, and `kith demo` (which starts a
throwaway server of its own). Every call is bounded in time.
"""
import json
import os
import subprocess
import sys
import time

KITH = os.environ["KITH_BIN"]
LAB = {}
with open(os.environ["KITH_LAB_ENV"]) as f:
    for line in f:
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            LAB[k] = v
FAILED = []


def kith(account, *args, timeout=30, password=None):
    env = dict(os.environ)
    env["KITH_PASSWORD"] = password or LAB[account + "_PASSWORD"]
    cmd = [KITH, "--jid", LAB[account + "_JID"], "--server",
           "127.0.0.1:" + LAB["C2S_PORT"], "--ca-file", LAB["CA_FILE"]]
    return subprocess.run(cmd + list(args), env=env, capture_output=True,
                          text=True, timeout=timeout)


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + detail))
    if not cond:
        FAILED.append(name)


def roster(account):
    r = kith(account, "roster", "list", "--json")
    check(account + " roster list exit 0", r.returncode == 0, r.stderr)
    return {i["jid"]: i for i in json.loads(r.stdout or "[]")}


def test_roster_crud():
    ghost = "ghost-cli@localhost"
    if ghost in roster("ALICE"):
        kith("ALICE", "roster", "remove", ghost)
    r = kith("ALICE", "roster", "add", ghost, "--name", "Ghost & Co",
             "--group", "Friends", "--group", "Work")
    check("roster add", r.returncode == 0, r.stderr)
    item = roster("ALICE").get(ghost)
    check("list shows the item", item is not None)
    if item:
        check("list --json keys", sorted(item) == sorted(
            ["jid", "name", "subscription", "ask", "approved", "groups"]),
            str(item))
        check("name escaped and back", item["name"] == "Ghost & Co",
              str(item))
        check("groups", sorted(item["groups"]) == ["Friends", "Work"],
              str(item))
        check("subscription none", item["subscription"] == "none", str(item))
    r = kith("ALICE", "roster", "add", ghost)
    check("add twice refused", r.returncode == 1, r.stderr)
    r = kith("ALICE", "roster", "set", ghost, "--name", "G")
    check("roster set", r.returncode == 0, r.stderr)
    item = roster("ALICE").get(ghost) or {}
    check("set replaced name and groups",
          item.get("name") == "G" and item.get("groups") == [], str(item))
    r = kith("ALICE", "roster", "remove", ghost)
    check("roster remove", r.returncode == 0, r.stderr)
    check("item gone", ghost not in roster("ALICE"))
    r = kith("ALICE", "roster", "set", ghost)
    check("set of a missing item refused", r.returncode == 1, r.stderr)


def test_watch_sees_subscription():
    env = dict(os.environ)
    env["KITH_PASSWORD"] = LAB["BOB_PASSWORD"]
    watch = subprocess.Popen(
        [KITH, "--jid", LAB["BOB_JID"], "--server",
         "127.0.0.1:" + LAB["C2S_PORT"], "--ca-file", LAB["CA_FILE"],
         "watch", "--json", "--for", "10", "--auto-authorize", "reject"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 10
    while time.time() < deadline:
        line = watch.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
        if lines[-1]["event"] == "roster_received":
            break
    check("watch starts with session_start",
          bool(lines) and lines[0]["event"] == "session_start"
          and lines[0]["jid"].startswith(LAB["BOB_JID"] + "/"), str(lines[:1]))
    r = kith("CAROL", "presence", "subscribe", LAB["BOB_JID"], "--nick",
             "Carol")
    check("presence subscribe", r.returncode == 0, r.stderr)
    out, err = watch.communicate(timeout=20)
    events = lines + [json.loads(l) for l in out.splitlines() if l.strip()]
    req = [e for e in events if e["event"] == "roster_subscription_request"]
    check("watch saw the request with the nick",
          any(e.get("nick") == "Carol" for e in req), str(req))
    check("watch ended cleanly", watch.returncode == 0, err)
    # Bob's policy was reject: carol's item must not gain 'to'.
    item = roster("CAROL").get(LAB["BOB_JID"], {})
    check("rejected: carol has no subscription to bob",
          item.get("subscription") in (None, "none", "from"), str(item))
    kith("CAROL", "roster", "remove", LAB["BOB_JID"])


def test_failures():
    r = kith("ALICE", "ping", password="wrong")
    check("wrong password exits 1", r.returncode == 1, r.stderr)
    check("wrong password says why", "not-authorized" in r.stderr, r.stderr)
    r = subprocess.run([KITH, "roster", "frobnicate"], capture_output=True,
                       text=True, timeout=10)
    check("usage error exits 2", r.returncode == 2, r.stderr)


def test_demo():
    r = subprocess.run([KITH, "demo"], capture_output=True, text=True,
                       timeout=90)
    check("demo exits 0", r.returncode == 0, r.stderr[-2000:])
    check("demo shows both rosters subscribed",
          r.stdout.count("subscription=both") >= 2, r.stdout[-2000:])
    check("demo shows a presence change", "changed_status" in r.stdout,
          r.stdout[-2000:])


for t in (test_roster_crud, test_watch_sees_subscription, test_failures,
          test_demo):
    try:
        t()
    except Exception as e:  # a crash or timeout is a failure, not an abort
        check(t.__name__, False, repr(e))
print("%d failed" % len(FAILED))
sys.exit(1 if FAILED else 0)

"""Integration: the kith CLI against the lab's Prosody.

Runs the real binary ($KITH_BIN) with the lab's accounts: roster add / set /
list --json / remove, watch --json while another account subscribes with a
nick, failures with their exit codes, the roster store (a versioned fetch
resumed from a SQLite cache, list --offline, export and import), `kith
component` answering a subscription with its rosters in a store, and `kith
demo` (which starts a throwaway server of its own). Every call is bounded
in time. The default store ($XDG_DATA_HOME/kith/roster.db) lives in a
temporary directory, removed at the end.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

KITH = os.environ["KITH_BIN"]
LAB = {}
with open(os.environ["KITH_LAB_ENV"]) as f:
    for line in f:
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            LAB[k] = v
FAILED = []
TMP = tempfile.mkdtemp(prefix="kith-test-cli-")
# Every kith below caches its roster here unless told otherwise.
os.environ["XDG_DATA_HOME"] = os.path.join(TMP, "xdg")


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
    check("demo says where the rosters are kept",
          "rosters are kept in sqlite:" in r.stdout and
          "kept in the store" in r.stdout, r.stdout[-2000:])


def store(name):
    return "sqlite:" + os.path.join(TMP, name)


def roster_fetch(stderr):
    """The ver sent with the roster get in a -vvv log, and whether the
    result carried a roster (False: the empty result of RFC 6121 2.6.3)."""
    sent = re.search(r"SEND <iq type='get' id='([^']+)'><query "
                     r"xmlns='jabber:iq:roster'(?: ver='([^']*)')?", stderr)
    if not sent:
        return None, None
    reply = re.search(r"RECV <iq [^\n]*id='%s'[^\n]*" % re.escape(sent.group(1)),
                      stderr)
    if not reply:
        return sent.group(2), None
    return sent.group(2), "jabber:iq:roster" in reply.group(0)


def test_store_resumes_versioned_fetch():
    cache = store("alice.db")
    contact = "cache-cli@localhost"
    # A roster that is not empty (an empty cache asks for everything),
    # added through another store: `cache` starts empty.
    r = kith("ALICE", "roster", "add", contact, "--name", "Cached", "--group",
             "Store")
    check("add a contact to cache", r.returncode == 0, r.stderr)
    first = kith("ALICE", "--store", cache, "-vvv", "roster", "list", "--json")
    second = kith("ALICE", "--store", cache, "-vvv", "roster", "list",
                  "--json")
    check("list twice exit 0", first.returncode == 0 and
          second.returncode == 0, first.stderr[-500:] + second.stderr[-500:])
    ver, full = roster_fetch(first.stderr)
    check("first run gets a roster", full is True, str(full))
    ver, full = roster_fetch(second.stderr)
    check("second run sends the cached ver", bool(ver), str(ver))
    check("second run gets the empty result", full is False, str(full))
    online = json.loads(second.stdout or "[]")
    check("same roster both runs", json.loads(first.stdout or "[]") == online,
          first.stdout + second.stdout)
    check("cached item listed", any(i["jid"] == contact and
                                    i["groups"] == ["Store"] for i in online),
          second.stdout)
    off = kith("ALICE", "--store", cache, "roster", "list", "--offline",
               "--json")
    check("list --offline exit 0", off.returncode == 0, off.stderr)
    check("list --offline == online", json.loads(off.stdout or "null") ==
          online, off.stdout)
    text = kith("ALICE", "--store", cache, "roster", "list", "--offline")
    check("list --offline text", 'name=Cached' in text.stdout, text.stdout)
    r = kith("ALICE", "--store", cache, "roster", "list", "--offline",
             password="wrong")
    check("list --offline needs no password", r.returncode == 0, r.stderr)
    r = kith("DAVE", "--store", cache, "roster", "list", "--offline")
    check("unknown owner offline exits 1", r.returncode == 1 and
          "no roster for " + LAB["DAVE_JID"] in r.stderr, r.stderr)

    path = os.path.join(TMP, "alice.json")
    r = kith("ALICE", "--store", cache, "roster", "export", path)
    check("export exit 0", r.returncode == 0, r.stderr)
    with open(path) as f:
        exported = json.load(f)
    check("export is list --json", exported == online, str(exported))
    r = kith("ALICE", "--store", cache, "roster", "export")
    check("export to stdout", r.returncode == 0 and
          json.loads(r.stdout or "null") == online, r.stdout + r.stderr)
    copy = store("copy.db")
    r = kith("ALICE", "--store", copy, "roster", "import", path)
    check("import exit 0", r.returncode == 0 and "imported" in r.stdout,
          r.stdout + r.stderr)
    r = kith("ALICE", "--store", copy, "roster", "list", "--offline", "--json")
    check("imported store lists the same", r.returncode == 0 and
          json.loads(r.stdout or "null") == online, r.stdout + r.stderr)

    bad = os.path.join(TMP, "bad.json")
    with open(bad, "w") as f:
        json.dump([{"jid": "new1@localhost"}, {"jid": "new2@localhost"},
                   {"jid": "new3@localhost", "groups": "Friends"}], f)
    r = kith("ALICE", "--store", copy, "roster", "import", bad)
    check("bad import exits 1 naming the item", r.returncode == 1 and
          "item [2]" in r.stderr and "groups" in r.stderr, r.stderr)
    r = kith("ALICE", "--store", copy, "roster", "list", "--offline", "--json")
    check("bad import wrote nothing", json.loads(r.stdout or "null") == online,
          r.stdout)
    kith("ALICE", "--store", cache, "roster", "remove", contact)


def test_import_progress():
    big = os.path.join(TMP, "big.json")
    items = [{"jid": "contact%d@example.org" % i, "name": "C %d" % i,
              "subscription": ["none", "to", "from", "both"][i % 4],
              "ask": None, "approved": False, "groups": ["G%d" % (i % 3)]}
             for i in range(5000)]
    with open(big, "w") as f:
        json.dump(items, f)
    t0 = time.time()
    r = kith("BOB", "--store", store("big.db"), "roster", "import", big,
             "--json")
    check("import of 5000 exit 0", r.returncode == 0, r.stderr[-500:])
    check("progress on stderr", "imported 1000/5000" in r.stderr and
          "imported 5000/5000" in r.stderr, r.stderr[-500:])
    done = json.loads(r.stdout or "{}")
    check("5 batches", done.get("items") == 5000 and
          done.get("batches") == 5, r.stdout)
    r = kith("BOB", "--store", store("big.db"), "roster", "list", "--offline",
             "--json")
    got = json.loads(r.stdout or "[]")
    check("5000 items stored", len(got) == 5000 and got[0]["groups"] ==
          ["G0"] and got[0]["subscription"] == "none", str(got[:1]))
    check("import and list under 10 s", time.time() - t0 < 10,
          "%.1f s" % (time.time() - t0))


def component_cmd(db, *extra):
    return [KITH, "component", "--domain", LAB["COMPONENT_DOMAIN"],
            "--secret-env", "KITH_TEST_BOT_SECRET", "--server",
            "127.0.0.1:" + LAB["COMPONENT_PORT"], "--store", db,
            "--json"] + list(extra)


def test_component_answers_subscription():
    env = dict(os.environ)
    env["KITH_TEST_BOT_SECRET"] = LAB["COMPONENT_SECRET"]
    db = store("bot.db")
    user = "user1@" + LAB["COMPONENT_DOMAIN"]
    comp = subprocess.Popen(component_cmd(db, "--serve", user, "--for", "20"),
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    start = json.loads(comp.stdout.readline() or "{}")
    check("component session_start", start.get("event") == "session_start"
          and start.get("owners") == 1 and start.get("store") == db,
          str(start))
    r = kith("ALICE", "presence", "subscribe", user)
    check("subscribe to the component's JID", r.returncode == 0, r.stderr)
    item = {}
    for _ in range(50):  # the answer goes component -> server -> alice
        item = roster("ALICE").get(user, {})
        if item.get("subscription") in ("to", "both"):
            break
        time.sleep(0.1)
    check("the component approved", item.get("subscription") in
          ("to", "both"), str(item))
    comp.send_signal(signal.SIGTERM)
    out, err = comp.communicate(timeout=15)
    check("component exits 0 on SIGTERM", comp.returncode == 0, err)
    events = [json.loads(l) for l in out.splitlines() if l.strip()]
    check("component saw the request", any(
        e["event"] == "roster_subscription_request" and
        e.get("owner") == user and e["jid"] == LAB["ALICE_JID"]
        for e in events), out)
    check("component's last line is disconnected",
          bool(events) and events[-1]["event"] == "disconnected", out)
    r = kith("ALICE", "--jid", user, "--store", db, "roster", "list",
             "--offline", "--json")
    stored = {i["jid"]: i for i in json.loads(r.stdout or "[]")}
    check("the component's roster is in its store", stored.get(
        LAB["ALICE_JID"], {}).get("subscription") in ("from", "both"),
        r.stdout + r.stderr)
    # A restart serves what the store holds, without --serve.
    r = subprocess.run(component_cmd(db, "--for", "1"), env=env,
                       capture_output=True, text=True, timeout=20)
    first = json.loads((r.stdout.splitlines() or ["{}"])[0])
    check("restarted component loads its owner", r.returncode == 0 and
          first.get("owners") == 1, r.stdout + r.stderr)
    kith("ALICE", "roster", "remove", user)


def test_store_failures():
    r = kith("ALICE", "--store", "nosuch:thing", "roster", "list")
    check("malformed store URI exits 2", r.returncode == 2, r.stderr)
    r = kith("ALICE", "--store", "sqlite:/proc/kith/no/roster.db", "roster",
             "list")
    check("unopenable store exits 1 naming it", r.returncode == 1 and
          "sqlite:/proc/kith/no/roster.db" in r.stderr, r.stderr)
    r = subprocess.run([KITH, "component", "--domain",
                        LAB["COMPONENT_DOMAIN"], "--secret-env", "HOME",
                        "--server", "127.0.0.1:" + LAB["COMPONENT_PORT"]],
                       capture_output=True, text=True, timeout=10)
    check("component without --store exits 2", r.returncode == 2, r.stderr)
    # A damaged cache: said so, set aside, and the roster fetched whole.
    path = os.path.join(TMP, "damaged.db")
    with open(path, "wb") as f:
        f.write(bytes((i * 131 + 7) & 0xFF for i in range(8192)))
    r = kith("ALICE", "--store", "sqlite:" + path, "roster", "list", "--json")
    aside = [n for n in os.listdir(TMP) if n.startswith("damaged.db.corrupt-")]
    check("damaged cache is reset and fetched whole", r.returncode == 0 and
          "damaged.db" in r.stderr and "fetching the whole roster" in r.stderr
          and len(aside) == 1, r.stderr + repr(aside))
    r = kith("ALICE", "--store", "sqlite:" + path, "roster", "list",
             "--offline", "--json")
    check("reset cache holds the fetched roster", r.returncode == 0, r.stderr)


for t in (test_roster_crud, test_watch_sees_subscription, test_failures,
          test_store_resumes_versioned_fetch, test_import_progress,
          test_component_answers_subscription, test_store_failures,
          test_demo):
    try:
        t()
    except Exception as e:  # a crash or timeout is a failure, not an abort
        check(t.__name__, False, repr(e))
shutil.rmtree(TMP, ignore_errors=True)
print("%d failed" % len(FAILED))
sys.exit(1 if FAILED else 0)

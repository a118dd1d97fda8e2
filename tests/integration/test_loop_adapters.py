#!/usr/bin/python3
"""Integration: the event-loop examples against the lab's Prosody.

Runs, as alice, the three examples that drive kith from a loop other than
kith_run():

  own_loop         its own poll(2) loop, reading commands on stdin: adds a
                   contact (and later removes it), lists the roster, and
                   gives up on its own deadline (--for) when stdin stays
                   open
  uv_roster        the libuv adapter (include/kith/uv.h)
  libevent_roster  the libevent adapter (include/kith/libevent.h)

Each adapter example must start a session, print the roster with the
contact own_loop added, send presence and log out cleanly with exit 0: once
at the end of --for, once on SIGINT; with a wrong password it must exit 1
instead of hanging. Every run is bounded in time (the whole test takes a
few seconds); alice's roster ends as it began.
"""

import os
import queue
import signal
import subprocess
import sys
import threading
import time

LAB = {}
with open(os.environ["KITH_LAB_ENV"], encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            LAB[k] = v
EXAMPLES = os.environ["KITH_EXAMPLES_DIR"]
KITH = os.environ.get("KITH_BIN")
ALICE = LAB["ALICE_JID"]
CONTACT = "loop-adapters@" + LAB["DOMAIN"]
NAME = "Loop Adapters"
WAIT = 15  # the longest any single run or wait may take, in seconds
FAILED = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name +
          ("" if cond else ": " + str(detail)), flush=True)
    if not cond:
        FAILED.append(name)
    return cond


def command(example, *args, password=None):
    env = dict(os.environ)
    env["KITH_PASSWORD"] = password or LAB["ALICE_PASSWORD"]
    env.pop("KITH_JID", None)
    return [os.path.join(EXAMPLES, example), "--jid", ALICE, "--server",
            "%s:%s" % (LAB["XMPP_HOST"], LAB["C2S_PORT"]), "--ca-file",
            LAB["CA_FILE"]] + list(args), env


def run(example, *args, stdin="", password=None):
    """Run to the end; returns (exit status, stdout, stderr, seconds)."""
    cmd, env = command(example, *args, password=password)
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, env=env, input=stdin, capture_output=True,
                           text=True, timeout=WAIT)
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", e.stderr or "", WAIT
    return r.returncode, r.stdout, r.stderr, time.monotonic() - t0


def started(out):
    return ("session started as %s/" % ALICE) in out


def test_own_loop_adds_the_contact():
    rc, out, err, _ = run("own_loop", "--for", str(WAIT - 5),
                          stdin="add %s %s\nlist\nbogus\n" % (CONTACT, NAME))
    check("own_loop: exit 0", rc == 0, (rc, err))
    check("own_loop: session started", started(out), out)
    check("own_loop: initial roster printed", "roster: " in out, out)
    check("own_loop: add answered", "add %s: ok" % CONTACT in out, out)
    check("own_loop: push seen", "update: %s\n" % CONTACT in out, out)
    check("own_loop: unknown command reported",
          "unknown command: bogus" in out, out)
    check("own_loop: logged out cleanly at the end of its input",
          "disconnected: disconnected\n" in out, out)


def test_own_loop_deadline():
    """stdin stays open: only the loop's own timer can end it."""
    cmd, env = command("own_loop", "--for", "1")
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        p.wait(timeout=WAIT)
        out, err = p.stdout.read(), p.stderr.read()
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    finally:
        p.stdin.close()
    check("own_loop --for 1: exit 0", p.returncode == 0, (p.returncode, err))
    check("own_loop --for 1: its own timer fired", "time is up" in out, out)
    check("own_loop --for 1: logged out", "disconnected: disconnected\n" in out,
          out)


def check_roster_run(label, rc, out, err):
    check(label + ": exit 0", rc == 0, (rc, err))
    check(label + ": session started", started(out), out)
    check(label + ": roster printed with the contact",
          "roster: " in out and '%s "%s"' % (CONTACT, NAME) in out, out)
    check(label + ": presence sent", "presence sent" in out, out)
    check(label + ": logged out cleanly",
          "leaving\n" in out and "disconnected: disconnected\n" in out, out)


def test_adapter_for(example):
    rc, out, err, secs = run(example, "--for", "1")
    check_roster_run(example + " --for 1", rc, out, err)
    check(example + " --for 1: took about a second", 1 <= secs < 10, secs)


def test_adapter_sigint(example):
    """No --for: it stays online until SIGINT."""
    cmd, env = command(example)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in p.stdout],
                     daemon=True).start()
    seen, deadline = [], time.monotonic() + WAIT
    try:
        while not any("presence sent" in l for l in seen):
            seen.append(lines.get(timeout=max(0.1,
                                              deadline - time.monotonic())))
        time.sleep(0.3)
        check(example + ": still online before SIGINT", p.poll() is None)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=WAIT)
    except (queue.Empty, subprocess.TimeoutExpired):
        p.kill()
        p.wait()
    time.sleep(0.1)  # let the reader thread drain the pipe
    while not lines.empty():
        seen.append(lines.get())
    check_roster_run(example + " SIGINT", p.returncode, "".join(seen),
                     p.stderr.read())


def test_adapter_wrong_password(example):
    rc, out, err, _ = run(example, password="wrong")
    check(example + " wrong password: exit 1", rc == 1, (rc, out, err))
    check(example + " wrong password: says why", "not-authorized" in out, out)


def test_own_loop_removes_the_contact():
    rc, out, err, _ = run("own_loop", "--for", str(WAIT - 5),
                          stdin="remove %s\nlist\nquit\n" % CONTACT)
    check("own_loop remove: exit 0", rc == 0, (rc, err))
    check("own_loop remove: answered", "remove %s: ok" % CONTACT in out, out)
    check("own_loop remove: push seen",
          "update: %s removed" % CONTACT in out, out)


def cleanup():
    """Leave alice's roster as we found it, whatever failed above."""
    if not KITH:
        return
    env = dict(os.environ)
    env["KITH_PASSWORD"] = LAB["ALICE_PASSWORD"]
    subprocess.run([KITH, "--jid", ALICE, "--server",
                    "%s:%s" % (LAB["XMPP_HOST"], LAB["C2S_PORT"]),
                    "--ca-file", LAB["CA_FILE"], "roster", "remove",
                    CONTACT], env=env, capture_output=True, timeout=WAIT)


TESTS = [test_own_loop_adds_the_contact, test_own_loop_deadline]
for ex in ("uv_roster", "libevent_roster"):
    TESTS += [lambda ex=ex: test_adapter_for(ex),
              lambda ex=ex: test_adapter_sigint(ex),
              lambda ex=ex: test_adapter_wrong_password(ex)]
TESTS.append(test_own_loop_removes_the_contact)

try:
    for t in TESTS:
        try:
            t()
        except Exception as e:  # a crash or timeout is a failure, not an abort
            check(getattr(t, "__name__", "test"), False, repr(e))
        if "own_loop: session started" in FAILED:
            # Without a session nothing else can pass; each run would only
            # wait out its time limit.
            print("no session at all: skipping the other runs")
            break
finally:
    if FAILED:
        cleanup()
print("%d failed" % len(FAILED))
sys.exit(1 if FAILED else 0)

"""What the Python tests and slixmpp peers share (not a test itself).

load_lab_env() reads the lab's key=value file ($KITH_LAB_ENV, written by
tests/lab/lab.sh start); wait_until() polls a condition in asyncio with a
bound. The scripts import it from their own directory.
"""

import asyncio
import os
import sys


def load_lab_env():
    path = os.environ.get("KITH_LAB_ENV")
    if not path:
        sys.exit("KITH_LAB_ENV is not set: run through ctest, or export "
                 "KITH_LAB_ENV=DIR/lab.env after tests/lab/lab.sh start DIR")
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


async def wait_until(loop, cond, what, timeout):
    """Poll cond() every 50 ms; after `timeout` s raise RuntimeError naming
    `what` (a string, or a function giving one)."""
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise RuntimeError("timed out waiting for %s"
                               % (what() if callable(what) else what))
        await asyncio.sleep(0.05)

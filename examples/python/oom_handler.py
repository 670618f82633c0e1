"""oom_handler.py - a user-space OOM handler in Python (memgrp.Client.oom_handler).

    python3 oom_handler.py [--socket PATH] [--step SIZE] [--ceiling SIZE] [--count N] GROUP

At each OOM of GROUP, the manager sends a snapshot of it and waits (up to
the group's --oom-handler-timeout) for a decision. This handler raises the
limit by --step (default 16M) while the new limit stays within --ceiling
(default: twice the limit it first saw); past that it kills the newest
process, keeping the oldest services. One line per decision.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memgrp  # noqa: E402

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size(text):
    unit = text[-1:].upper()
    return int(text[:-1]) * UNITS[unit] if unit in UNITS else int(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket")
    ap.add_argument("--step", type=size, default=16 << 20)
    ap.add_argument("--ceiling", type=size)
    ap.add_argument("--count", type=int, default=-1)
    ap.add_argument("group")
    a = ap.parse_args()
    c = memgrp.Client(a.socket)
    c.oom_handler(a.group)
    print("handling", a.group, flush=True)
    ceiling = a.ceiling
    n = 0
    while a.count < 0 or n < a.count:
        snap = c.oom_handler_read()
        n += 1
        ceiling = ceiling or 2 * snap.limit
        others = [p for p in snap.procs if p.pid != os.getpid()]
        try:
            if snap.limit + a.step <= ceiling:
                c.oom_answer(snap.seq, limit=snap.limit + a.step)
                print("snapshot %d: limit raised to %d" % (snap.seq, snap.limit + a.step), flush=True)
            elif others:
                v = min(others, key=lambda p: p.age_ms)
                c.oom_answer(snap.seq, kill=[v.pid])
                print("snapshot %d: killed the newest, pid %d (%s)" % (snap.seq, v.pid, v.comm), flush=True)
            else:
                c.oom_answer(snap.seq)
                print("snapshot %d: resume" % snap.seq, flush=True)
        except memgrp.Error as e:
            print("snapshot %d: refused: %s" % (snap.seq, e), flush=True)
    c.close()


if __name__ == "__main__":
    main()

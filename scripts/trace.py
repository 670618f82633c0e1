#!/usr/bin/env python3
"""trace.py - prints what an agent's handler did to pages (MEMGRP_TRACE=DIR files).

Usage: trace.py FILE [ADDR [LEN]]   (ADDR, LEN: hex or decimal; LEN default 4096)
Without ADDR: a count of records by kind. With it: every record touching
[ADDR, ADDR+LEN), oldest first, with the staging slots that held those
pages followed through compression and release.
"""
import struct
import sys

REC = struct.Struct("<QHHiQQ")  # mgi_trace_rec_t
# enum mgi_trace_op in src/agent/trace.h, in its order
OPS = {1: "FAULT", 2: "ZFILL", 3: "EEXIST", 4: "MISSING", 5: "REMOVE", 6: "UNMAP", 7: "REMAP",
       8: "EVICT", 9: "COMPRESS", 10: "ACTIVATE", 11: "RESTORE", 12: "DROP_STAGED",
       13: "DROP_STORED", 14: "RELEASE_Q", 15: "RELEASED", 16: "BLOCK", 17: "CONFLICT", 18: "UNREPORTED",
       19: "FORK_KEPT", 20: "FORK_COPIED"}
PAGE = 4096


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    nrec = len(data) // REC.size
    nxt = REC.unpack_from(data, 0)[4]
    order = list(range(nxt, nrec)) + list(range(1, nxt))
    for i in order:
        ns, op, n, c, a, b = REC.unpack_from(data, i * REC.size)
        if op:
            yield ns, OPS.get(op, str(op)), n, c, a, b


def span(op, n, c, a, b):
    """The application pages a record touches, as [start, end)."""
    if op in ("FAULT", "EEXIST", "MISSING", "COMPRESS", "ACTIVATE", "DROP_STAGED", "DROP_STORED",
              "CONFLICT"):
        return a & ~(PAGE - 1), (a & ~(PAGE - 1)) + PAGE
    if op == "ZFILL":
        return a, a + max(n, b) * PAGE
    if op in ("REMOVE", "UNMAP"):
        return a, b
    if op in ("REMAP", "EVICT", "RESTORE", "UNREPORTED"):
        return a, a + n * PAGE
    return None


def evict_result(c):
    """An EVICT record's c: (pages moved, rc)."""
    return c >> 8, -(c & 0xff)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    recs = list(records(sys.argv[1]))
    if len(sys.argv) == 2:
        counts = {}
        for r in recs:
            counts[r[1]] = counts.get(r[1], 0) + 1
        for k, v in sorted(counts.items()):
            print(f"{k:12} {v}")
        return
    lo = int(sys.argv[2], 0)
    hi = lo + (int(sys.argv[3], 0) if len(sys.argv) > 3 else PAGE)
    slots = set()  # staging slots that held one of our pages
    t0 = recs[0][0] if recs else 0
    for ns, op, n, c, a, b in recs:
        s = span(op, n, c, a, b)
        hit = s and s[0] < hi and s[1] > lo
        if op == "EVICT" and hit:
            for i in range(evict_result(c)[0]):
                if lo <= a + i * PAGE < hi:
                    slots.add(b + i)
        if op in ("RELEASE_Q", "RELEASED", "BLOCK") and any(b <= x < b + max(n, 1) for x in slots):
            hit = True
        if op in ("COMPRESS", "ACTIVATE", "DROP_STAGED") and b in slots:
            hit = True
        if not hit:
            continue
        extra = ""
        if op == "EVICT":
            extra = " moved={} rc={}".format(*evict_result(c))
        elif op in ("ZFILL", "RESTORE", "ACTIVATE"):
            extra = f" rc={c}"
        elif op in ("COMPRESS", "RELEASED"):
            extra = f" c={c:#x}"
        elif op == "EEXIST":
            extra = " (not counted)" if c else " (counted)"
        elif op == "UNMAP" and n == 1:
            extra = " (a move's old range: skipped)"
        print(f"{ns / 1e9:.6f} +{(ns - t0) / 1e6:10.3f}ms {op:12} a={a:#x} b={b:#x} n={n}{extra}")


main()

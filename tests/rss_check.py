#!/usr/bin/env python3
"""rss_check.py - compares a group's usage with its processes' anonymous memory (proportional: a frame shared counted once).

Usage: rss_check.py MEMGRP GROUP [TOLERANCE]
Prints both figures; exits 1 if they differ by more than TOLERANCE (0.05)
of the RSS, 2 if the group cannot be read.
"""
import json
import subprocess
import sys
import time


def anon_kb(pid):
    # Pss_Anon, not Anonymous: a frame a forked child shares copy-on-write
    # with its parent is charged once (src/agent/cow.c), as memcg charges
    # it; RSS counts it in each process, PSS splits it between them.
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    memgrp, group = sys.argv[1], sys.argv[2]
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
    # A group with no process yet (or no longer: its programs start and end
    # on a loaded host at their own pace) has nothing to compare: read it
    # again, for up to 3 s.
    st = None
    for _ in range(30):
        out = subprocess.run([memgrp, "stat", "--json", group], capture_output=True, text=True)
        if out.returncode == 0:
            st = json.loads(out.stdout)
            if st["processes"] and st["usage"]:
                break
        time.sleep(0.1)
    if st is None:
        print(f"cannot read group {group}: {out.stderr.strip()}")
        return 2
    rss = 0
    for p in st["processes"]:
        kb = anon_kb(p["pid"])
        if kb is not None:
            rss += kb * 1024
    usage = st["usage"]
    diff = abs(usage - rss) / rss if rss else 1.0
    print(f"    {group}: usage {usage / 2**20:.1f} MiB, anonymous RSS {rss / 2**20:.1f} MiB "
          f"over {len(st['processes'])} processes, difference {100 * diff:.1f}% "
          f"(untracked {st['untracked_bytes'] / 2**20:.1f} MiB)")
    return 0 if diff <= tol else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""oom_host.py - bench/oom_host.sh's watch of one round: when MemAvailable
went under the floor, which of the workload's processes died and when, and
when MemAvailable came back over the floor.

Usage: oom_host.py FLOOR_KIB TIMEOUT_S NAME=PID...
Prints one line: "short_ms S killed NAME kill_ms K room_ms R under_ms U"
(times from the start of the watch; -1: did not happen): S the first
sample under the floor, K the first death, R the first sample at or over
the floor after it, U the time under the floor in all (the host's other
load moves MemAvailable too); sampling every 10 ms.
"""
import os
import sys
import time


def avail_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return -1


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def main():
    floor, timeout = int(sys.argv[1]), float(sys.argv[2])
    procs = dict(a.split("=") for a in sys.argv[3:])
    t0 = time.monotonic()
    short = kill = room = -1
    under, last = 0.0, None
    killed = "none"
    while time.monotonic() - t0 < timeout:
        now = (time.monotonic() - t0) * 1000
        av = avail_kib()
        if last is not None and av < floor:
            under += now - last
        last = now
        if short < 0 and av < floor:
            short = now
        for name, pid in procs.items():
            if killed == "none" and not alive(pid):
                killed, kill = name, now
        if kill >= 0 and room < 0 and av >= floor:
            room = now
        if room >= 0 and killed != "none":
            break
        time.sleep(0.01)
    print(f"short_ms {short:.0f} killed {killed} kill_ms {kill:.0f} room_ms {room:.0f} under_ms {under:.0f}",
          flush=True)


if __name__ == "__main__":
    os.nice(-5) if os.geteuid() == 0 else None
    main()

#!/usr/bin/env python3
# kcg_clean.py - removes the kernel cgroups (the backstop's) of the managers at the given sockets, for tests whose memgrpd exited while processes still ran.
# Usage: kcg_clean.py [--kill] SOCKET...   Prints what it could not remove; exit 1 then.
# --kill: the test's own processes still in them (a background child its
# `memgrp run` left behind) are killed first, and removal is retried for 3 s.
import os
import signal
import sys
import time


def manager_dir(sock):
    """memgrp@ + FNV-1a of the socket path, below our memory cgroup (docs/design.md)."""
    h = 2166136261
    for b in sock.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    mount = self_cg = None
    for line in open("/proc/self/mounts"):
        f = line.split()
        if f[2] == "cgroup" and "memory" in f[3].split(","):
            mount = f[1]
            break
    for line in open("/proc/self/cgroup"):
        i, ctrl, path = line.rstrip("\n").split(":", 2)
        if "memory" in ctrl.split(","):
            self_cg = path
    if not mount or self_cg is None:
        return None
    return os.path.join(mount + self_cg.rstrip("/"), "memgrp@%08x" % h)


def kill_all(base):
    for root, _, files in os.walk(base):
        if "cgroup.procs" in files:
            for pid in open(os.path.join(root, "cgroup.procs")).read().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass


def remove(base):
    """The directories under base, deepest first; what could not go, with why."""
    failed = []
    for root, dirs, _ in os.walk(base, topdown=False):
        try:
            os.rmdir(root)
        except OSError as e:
            failed.append("%s: %s" % (root, e.strerror))
    return failed


args = sys.argv[1:]
kill = bool(args) and args[0] == "--kill"
if kill:
    args = args[1:]
left = 0
for sock in args:
    base = manager_dir(sock)
    if not base or not os.path.isdir(base):
        continue
    deadline = time.time() + (3 if kill else 0)
    while True:
        if kill:
            kill_all(base)
        failed = remove(base)
        if not failed or time.time() >= deadline:
            break
        time.sleep(0.1)
    for f in failed:
        print(f)
    left += len(failed)
sys.exit(1 if left else 0)

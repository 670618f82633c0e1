#!/usr/bin/env python3
# kcg_clean.py - removes the kernel cgroups (the backstop's) of the managers at the given sockets, for tests whose memgrpd exited while processes still ran.
# Usage: kcg_clean.py SOCKET...   Prints what it could not remove; exit 1 then.
import os
import sys


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


left = 0
for sock in sys.argv[1:]:
    base = manager_dir(sock)
    if not base or not os.path.isdir(base):
        continue
    for root, dirs, _ in os.walk(base, topdown=False):
        try:
            os.rmdir(root)
        except OSError as e:
            print("%s: %s" % (root, e.strerror))
            left += 1
sys.exit(1 if left else 0)

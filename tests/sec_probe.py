#!/usr/bin/env python3
"""sec_probe.py - hostile and plain clients of a memgrp manager, for test_security.sh.

Message layouts as fuzz/make_msg_seeds.py writes them (src/core/proto.h on
x86-64). Each subcommand prints one line the test greps.

  fds SOCK N              N connections, each sending an empty message
                          carrying 9 fds (SCM_RIGHTS)
  idle SOCK N FILE        holds N connections until FILE exists; prints how
                          many connected and how many were refused at once
  pipe SOCK               REGISTER (oom, default group) passing a full,
                          blocking pipe instead of an eventfd; prints the reply
  forge SOCK GROUP        joins GROUP (HELLO as itself), then sends OOM_KILL
                          whose comm carries a newline and a fake log line
  list SOCK [GROUP]       (joins GROUP first if given) LIST_REQ; prints names
  set SOCK GROUP MAX HIGH SET with memory_max MAX and memory_high HIGH
                          (bytes); prints the reply
"""
import array
import os
import select
import socket
import struct
import sys
import time

MAGIC, VERSION = 0x4D475250, 3
HELLO, WELCOME, OOM_KILL, SET, REPLY, LIST_REQ, LIST, REGISTER = 1, 2, 3, 6, 7, 10, 11, 15
SIZES = {HELLO: 152, OOM_KILL: 64, SET: 792, LIST_REQ: 144, REGISTER: 168}
NAME = 128
KEEP = 2**64 - 1


def hdr(t):
    return struct.pack("<IHHII", MAGIC, VERSION, t, SIZES[t], 0)


def name(g):
    return g.encode().ljust(NAME, b"\0")


def conn(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    return s


def reply_of(s, timeout=5):
    s.settimeout(timeout)
    data = s.recv(65536)
    if len(data) < 16:
        return None, "closed"
    t = struct.unpack_from("<H", data, 6)[0]
    if t == REPLY:
        status = struct.unpack_from("<i", data, 16)[0]
        msg = data[24:24 + 160].split(b"\0")[0].decode(errors="replace")
        return status, msg
    return t, data


def hello(s, group):
    s.send(hdr(HELLO) + struct.pack("<ii", os.getpid(), -1) + name(group))
    s.settimeout(5)
    msg, anc, _, _ = s.recvmsg(256, socket.CMSG_SPACE(16 * 4))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % 4])
            for fd in fds:
                os.close(fd)
    return struct.unpack_from("<H", msg, 6)[0]


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "fds":
        null = [os.open("/dev/null", os.O_RDONLY) for _ in range(9)]
        for _ in range(int(sys.argv[3])):
            s = conn(path)
            s.sendmsg([b""], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", null))])
            s.close()
        print("sent")
    elif cmd == "idle":
        held, refused = [], 0
        for _ in range(int(sys.argv[3])):
            try:
                s = conn(path)
            except OSError:
                refused += 1
                continue
            held.append(s)
        time.sleep(0.5)
        for s in held:  # a refused one was told so and closed
            p = select.poll()
            p.register(s, select.POLLIN)
            if p.poll(0):
                refused += 1
        print(f"connected {len(held)} refused {refused}", flush=True)
        while not os.path.exists(sys.argv[4]):
            time.sleep(0.1)
    elif cmd == "pipe":
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            while True:
                os.write(w, b"x" * 65536)
        except BlockingIOError:
            pass
        os.set_blocking(w, True)
        s = conn(path)
        msg = hdr(REGISTER) + name("") + struct.pack("<IIQII", 3, 0, 0, 0, 0)
        s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
        status, text = reply_of(s)
        print(f"status {status}: {text}")
    elif cmd == "forge":
        s = conn(path)
        t = hello(s, sys.argv[3])
        comm = b"x\nmemgrpd: 00:00:00 FORGED\n"[:16]
        s.send(hdr(OOM_KILL) + struct.pack("<iiQQQ", os.getpid(), 1, 1, 1, 1) + comm.ljust(16, b"\0"))
        time.sleep(0.5)
        print(f"joined {t == WELCOME}; sent")
    elif cmd == "list":
        s = conn(path)
        if len(sys.argv) > 3:
            hello(s, sys.argv[3])
        s.send(hdr(LIST_REQ) + name(""))
        s.settimeout(5)
        data = s.recv(1 << 20)
        count = struct.unpack_from("<I", data, 16)[0]
        names = [data[24 + i * NAME: 24 + (i + 1) * NAME].split(b"\0")[0].decode() for i in range(count)]
        print("names: " + " ".join(names))
    elif cmd == "set":
        s = conn(path)
        msg = hdr(SET) + name(sys.argv[3]) + struct.pack(
            "<8Q", int(sys.argv[4]), int(sys.argv[5]), KEEP, KEEP, KEEP, KEEP, KEEP, KEEP)
        # no OOM settings given (oom_set 0), no pre-kill hook, no handler settings, no huge-page settings (thp_set 0)
        msg += bytes(6 * 4 + 2 * 128 + 2 * 4 + 256 + 2 * 4 + 8 + 6 * 4)
        s.send(msg)
        status, text = reply_of(s)
        print(f"status {status}: {text}")


main()

#!/usr/bin/env python3
"""make_msg_seeds.py - writes protocol-v3 seed messages for fuzz/fuzz_msg.c.

One valid message per type (v3-hello, v3-create, ...) and a few invalid ones
(v3-invalid-...) into fuzz/corpus/msg/, next to the older seeds, which stay
(they now exercise the version check).
The layouts follow src/core/proto.h (with segment.h, group.h and counter.h
for the sizes) on x86-64: host byte order (little-endian), natural
alignment. Every struct is written with '<' and explicit padding ('x'), and
its size, the stats' field offsets and the segment size are checked
against what the C compiler gives for proto.h (a small probe compiled with
$CC, default cc), so that a change in proto.h shows up here as a failed
check rather than as seeds that silently stop parsing.

Usage: fuzz/make_msg_seeds.py [OUTPUT_DIR]   (default: fuzz/corpus/msg)
"""

import errno
import os
import re
import struct
import subprocess
import sys
import tempfile

# proto.h / group.h / segment.h / counter.h
MGI_MSG_MAGIC = 0x4D475250  # "MGRP"
MGI_PROTO_VERSION = 3
MGI_GROUP_NAME_MAX = 128
MGI_COMM_MAX = 16
MGI_STAT_PROCS_MAX = 256
MGI_LIST_MAX = 256
MGI_DEPTH_MAX = 8
MGI_PAGES_UNLIMITED = (2**63 - 1) // 4096
MGI_SET_KEEP = 2**64 - 1
MGI_SET_UNLIMITED = 2**64 - 2
SEGMENT_BYTES = 98304  # sizeof(mgi_segment_t), for WELCOME's segment_bytes

HELLO, WELCOME, OOM_KILL, STAT_REQ, STAT, SET, REPLY, CREATE = 1, 2, 3, 4, 5, 6, 7, 8
RM, LIST_REQ, LIST, OOM_REQ, ATTACH, MOVE, REGISTER, UNREGISTER = 9, 10, 11, 12, 13, 14, 15, 16
COOP_DONE, RECLAIM_REQ, EVICT, EVICTED = 17, 18, 19, 20
PLACE, UFFD_FEATURES = 21, 24
GRANT, GRANTED = 30, 31
OOM_PRIORITY = 40
OOM_RECORD_REQ, OOM_RECORD = 41, 42
OOM_ACT = 43
OOM_HANDLER, OOM_SNAPSHOT, OOM_DECISION = 44, 45, 46
SPARE, FORKED = 47, 48
MGI_GRANT_ASK_MAX = 128

REG_THRESHOLD, REG_PRESSURE, REG_OOM, REG_COOPERATE, REG_LADDER = 1, 2, 3, 4, 5
MGI_COOP_PRIORITY_MAX = 1000
WATCH_MEMORY, WATCH_MEMSW = 0, 1

# sizeof each message struct (checked with offsetof/sizeof on gcc x86-64).
SIZES = {
    HELLO: 152,      # hdr 16, pid, slot, group[128]
    WELCOME: 160,    # hdr, slot, segment_bytes, nsegments, flags, group[128]
    MOVE: 160,       # laid out as WELCOME
    OOM_KILL: 64,    # hdr, killer, victim, 3 x u64, victim_comm[16]
    OOM_REQ: 24,     # hdr, pid, level
    ATTACH: 152,     # hdr, group[128], pid, reserved
    STAT_REQ: 144,   # mgi_msg_group_t: hdr, group[128]
    RM: 144,
    LIST_REQ: 144,
    STAT: 11640,     # hdr, group, stats (156 x u64), nprocs, reserved, procs[256] x 40
    SET: 792,        # hdr, group[128], memory_max, high, low, soft, swap_max, swappiness,
                     # mode, backend; oom_set, policy, scope, signal, grace_ms, kill_disable,
                     # prefer[128], avoid[128], prekill_timeout_ms, reserved, prekill[256],
                     # handler_timeout_ms, reserved, reserve; thp_set, mode, threshold, rate, weight, reserved
    CREATE: 792,
    OOM_HANDLER: 144,     # laid out as STAT_REQ
    OOM_SNAPSHOT: 9408,   # hdr, seq, group[128], usage, limit, reserve, timeout_ms, nprocs,
                          # total, reserved, procs[64] x 144
    OOM_DECISION: 104,    # hdr, seq, action, npids, limit, pids[16]
    OOM_PRIORITY: 24,  # hdr, pid, priority
    OOM_RECORD_REQ: 152,  # hdr, group[128], after
    OOM_RECORD: 4128,     # hdr, seq, len, reserved, text[4096]
    OOM_ACT: 152,         # hdr, group[128], pid, action
    SPARE: 24,            # hdr, slot, pid
    FORKED: 24,           # laid out as SPARE
    RECLAIM_REQ: 32, # hdr, pid, level, pages
    EVICT: 32,       # hdr, pages, freed
    EVICTED: 32,
    GRANT: 40,       # hdr, pid, swap, pages, refused, reserved
    GRANTED: 40,     # laid out as GRANT
    REGISTER: 168,   # hdr, group, kind, counter, threshold u64, level, mode
    UNREGISTER: 24,  # hdr, id, reserved
    COOP_DONE: 24,   # laid out as UNREGISTER
    UFFD_FEATURES: 24,  # laid out as UNREGISTER: id holds the features
    PLACE: 144,      # laid out as STAT_REQ
    REPLY: 184,      # hdr, status, value, message[160]
    LIST: 32792,     # hdr, count, truncated, names[256][128]
}

HDR = struct.Struct("<IHHII")  # magic, version, type, len, reserved
assert HDR.size == 16


def name(s, size=MGI_GROUP_NAME_MAX):
    """A NUL-padded char array (struct's 's' pads with NULs)."""
    b = s.encode() if isinstance(s, str) else s
    assert len(b) <= size
    return b


def msg(mtype, body_fmt, *fields, length=None, version=MGI_PROTO_VERSION, hdr_len=None):
    """Header + body; the body format follows the header (offset 16)."""
    body = struct.pack("<" + body_fmt, *fields)
    total = HDR.size + len(body)
    if length is None:
        assert total == SIZES[mtype], (mtype, total, SIZES[mtype])
    hdr = HDR.pack(MGI_MSG_MAGIC, version, mtype, total if hdr_len is None else hdr_len, 0)
    return hdr + body


G = f"{MGI_GROUP_NAME_MAX}s"


def hello(pid, slot, group, **kw):
    return msg(HELLO, "ii" + G, pid, slot, name(group), **kw)


def welcome(mtype, slot, nsegments, group):
    return msg(mtype, "iII4x" + G, slot, SEGMENT_BYTES, nsegments, name(group))


def oom_kill(killer, victim, usage, maxp, victim_pages, comm):
    return msg(OOM_KILL, "iiQQQ16s", killer, victim, usage, maxp, victim_pages,
               name(comm, MGI_COMM_MAX))


def oom_req(pid, level):
    return msg(OOM_REQ, "iI", pid, level)


def group_msg(mtype, group):
    return msg(mtype, G, name(group))


def set_msg(mtype, group, memory_max, high=MGI_SET_KEEP, low=MGI_SET_KEEP, soft=MGI_SET_KEEP,
            swap_max=MGI_SET_KEEP, swappiness=MGI_SET_KEEP, mode=MGI_SET_KEEP,
            backend=MGI_SET_KEEP, oom_set=0, oom_policy=0, oom_scope=0, oom_signal=0,
            oom_grace_ms=0, oom_kill_disable=0, oom_prefer="", oom_avoid="",
            oom_prekill_timeout_ms=0, oom_prekill="", oom_handler_timeout_ms=0, oom_reserve=0,
            thp_set=0, thp_mode=0, thp_threshold=0, thp_rate=0, thp_weight=0):
    return msg(mtype, G + "8Q6I128s128sII256sIIQ6I", name(group), memory_max, high, low, soft,
               swap_max, swappiness, mode, backend, oom_set, oom_policy, oom_scope, oom_signal,
               oom_grace_ms, oom_kill_disable, name(oom_prefer), name(oom_avoid),
               oom_prekill_timeout_ms, 0, name(oom_prekill, 256), oom_handler_timeout_ms, 0,
               oom_reserve, thp_set, thp_mode, thp_threshold, thp_rate, thp_weight, 0)


def oom_snapshot(seq, group, usage, limit, reserve, timeout_ms, procs, total=None):
    """procs: (pid, priority, charged, age_ms, growth, comm, cmdline)."""
    assert len(procs) <= 64
    body = struct.pack("<Q" + G + "QQQIIII", seq, name(group), usage, limit, reserve, timeout_ms,
                       len(procs), len(procs) if total is None else total, 0)
    for pid, prio, charged, age, growth, comm, cmd in procs:  # mgi_oomh_proc_t, 144 bytes
        body += struct.pack("<iiQQQ16s96s", pid, prio, charged, age, growth,
                            name(comm, MGI_COMM_MAX), name(cmd, 96))
    body += bytes(144 * (64 - len(procs)))
    return msg(OOM_SNAPSHOT, f"{len(body)}s", body)


def oom_decision(seq, action, pids=(), limit=0, npids=None):
    pids = list(pids) + [0] * (16 - len(pids))
    return msg(OOM_DECISION, "QIIQ16i", seq, action, len([p for p in pids if p]) if npids is None
               else npids, limit, *pids)


def oom_act(group, pid, action):
    return msg(OOM_ACT, G + "iI", name(group), pid, action)


def oom_priority(pid, priority):
    return msg(OOM_PRIORITY, "ii", pid, priority)


def spare(mtype, slot, pid):
    return msg(mtype, "ii", slot, pid)


def oom_record_req(group, after):
    return msg(OOM_RECORD_REQ, G + "Q", name(group), after)


def oom_record(seq, text, length=None):
    b = text.encode()
    return msg(OOM_RECORD, "QII4096s", seq, len(b) if length is None else length, 0, b)


def reclaim_req(pid, level, pages):
    return msg(RECLAIM_REQ, "iIQ", pid, level, pages)


def evict(mtype, pages, freed=0):
    return msg(mtype, "QQ", pages, freed)


def grant(mtype, pid, pages, swap=0, refused=0):
    return msg(mtype, "iIQII", pid, swap, pages, refused, 0)


def attach(group, pid):
    return msg(ATTACH, G + "i4x", name(group), pid)


def register(group, kind, counter, threshold, level, mode):
    return msg(REGISTER, G + "IIQII", name(group), kind, counter, threshold, level, mode)


def unregister(reg_id, mtype=UNREGISTER):
    return msg(mtype, "I4x", reg_id)


def reply(status, value, message):
    return msg(REPLY, "iI160s", status, value, name(message, 160))


# mgi_stats_t, in order (all uint64_t; the 24 stall-histogram buckets, then
# the kernel backstop's figures).
STATS_FIELDS = ("usage", "max_usage", "limit", "failcnt", "pgfault", "nr_processes",
                "tracked_bytes", "untracked_bytes", "oom_kill", "coop_requests", "coop_freed",
                "high", "low", "soft", "swappiness", "mode", "estimate", "mapped", "resident",
                "slow_regions", "fast_regions", "mode_switches", "mode_switch_avg_us",
                "swap_usage", "swap_max_usage",
                "swap_limit", "memsw_usage", "staged_bytes", "stored_pages",
                "same_filled_pages", "compressed_bytes", "pswpout", "pswpin", "pgmajfault",
                "pgdeactivate", "pgactivate", "refault", "workingset_activate",
                "swap_file_bytes", "written_back_pages",
                "reclaim_stalls", "reclaim_stall_p50_us", "reclaim_stall_p99_us") + \
    tuple(f"reclaim_hist{i}" for i in range(24)) + \
    ("unmanaged_processes", "kernel_usage", "kernel_max_usage", "kernel_limit", "kernel_file",
     "kernel_shmem", "kernel_anon", "backend", "tamper_reports", "cooperators") + \
    tuple(f"restore_hist{i}" for i in range(24)) + ("restore_ns",) + \
    tuple(f"notify_hist{i}" for i in range(24)) + ("notify_ns",) + \
    ("under_oom", "oom_pauses", "ladder_coop", "ladder_coop_enough", "ladder_evict",
     "ladder_evict_empty", "oom_none", "vrange_bytes", "vrange_purged_pages",
     "ladder_purge", "host_short", "host_ladder_purge", "host_ladder_coop", "host_ladder_soft",
     "host_ladder_evict", "host_ladder_kill", "host_ladder_dry_run", "oom_handler_asked", "oom_handler_kill",
     "oom_handler_raise", "oom_handler_resume", "oom_handler_fallback",
     "thp_huge_pages", "thp_promotions", "thp_demotions", "thp_fill_bytes", "thp_share",
     "thp_compactions", "thp_compact_cpu_us")

# The struct behind each type, for the compiler's check.
C_TYPES = {
    HELLO: "mgi_msg_hello_t", WELCOME: "mgi_msg_welcome_t", MOVE: "mgi_msg_welcome_t",
    OOM_KILL: "mgi_msg_oom_t", OOM_REQ: "mgi_msg_oom_req_t", ATTACH: "mgi_msg_attach_t",
    STAT_REQ: "mgi_msg_group_t", RM: "mgi_msg_group_t", LIST_REQ: "mgi_msg_group_t",
    STAT: "mgi_msg_stat_t", SET: "mgi_msg_set_t", CREATE: "mgi_msg_set_t",
    RECLAIM_REQ: "mgi_msg_reclaim_req_t", EVICT: "mgi_msg_evict_t", EVICTED: "mgi_msg_evict_t",
    REGISTER: "mgi_msg_register_t", UNREGISTER: "mgi_msg_unregister_t",
    COOP_DONE: "mgi_msg_unregister_t", UFFD_FEATURES: "mgi_msg_unregister_t",
    PLACE: "mgi_msg_group_t", REPLY: "mgi_msg_reply_t", LIST: "mgi_msg_list_t",
    GRANT: "mgi_msg_grant_t", GRANTED: "mgi_msg_grant_t",
    OOM_PRIORITY: "mgi_msg_oom_priority_t",
    OOM_RECORD_REQ: "mgi_msg_oom_record_req_t", OOM_RECORD: "mgi_msg_oom_record_t",
    OOM_ACT: "mgi_msg_oom_act_t",
    OOM_HANDLER: "mgi_msg_group_t", OOM_SNAPSHOT: "mgi_msg_oom_snapshot_t",
    OOM_DECISION: "mgi_msg_oom_decision_t",
    SPARE: "mgi_msg_spare_t", FORKED: "mgi_msg_spare_t",
}


def check_layout(src):
    """Compiles a probe against src/core/proto.h and compares: every
    message size, the segment size, the version and each stats field's
    offset. Exits with the differences if any."""
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "proto.h"',
             'int main(void) {', 'printf("version %d\\n", MGI_PROTO_VERSION);',
             'printf("segment %zu\\n", sizeof(mgi_segment_t));',
             'printf("stats %zu\\n", sizeof(mgi_stats_t));']
    lines += [f'printf("size {t} %zu\\n", sizeof({c}));' for t, c in C_TYPES.items()]
    for i, f in enumerate(STATS_FIELDS):
        hist = re.match(r"(\w+_hist)(\d+)$", f)
        field = f"{hist.group(1)}[{hist.group(2)}]" if hist else f
        lines.append(f'printf("field {i} %zu\\n", offsetof(mgi_stats_t, {field}));')
    lines.append("return 0; }")
    with tempfile.TemporaryDirectory() as d:
        c, exe = os.path.join(d, "probe.c"), os.path.join(d, "probe")
        with open(c, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-D_GNU_SOURCE", "-I", os.path.join(src, "src/core"), "-I",
                        os.path.join(src, "include"), c, "-o", exe], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    bad = []
    for line in out.splitlines():
        w = line.split()
        if w[0] == "version" and int(w[1]) != MGI_PROTO_VERSION:
            bad.append(f"MGI_PROTO_VERSION is {w[1]}, this script writes {MGI_PROTO_VERSION}")
        elif w[0] == "segment" and int(w[1]) != SEGMENT_BYTES:
            bad.append(f"sizeof(mgi_segment_t) is {w[1]}, SEGMENT_BYTES says {SEGMENT_BYTES}")
        elif w[0] == "stats" and int(w[1]) != 8 * len(STATS_FIELDS):
            bad.append(f"sizeof(mgi_stats_t) is {w[1]}, STATS_FIELDS has {len(STATS_FIELDS)} fields")
        elif w[0] == "size" and int(w[2]) != SIZES[int(w[1])]:
            bad.append(f"type {w[1]}: sizeof {w[2]}, SIZES says {SIZES[int(w[1])]}")
        elif w[0] == "field" and int(w[2]) != 8 * int(w[1]):
            bad.append(f"stats field {STATS_FIELDS[int(w[1])]} at {w[2]}, not {8 * int(w[1])}")
    if bad:
        sys.exit("proto.h changed; update this script:\n  " + "\n  ".join(bad))


def stat(group, figures, procs):
    assert len(figures) == len(STATS_FIELDS) and len(procs) <= MGI_STAT_PROCS_MAX
    body = struct.pack(f"<{G}{len(figures)}QI4x", name(group), *figures, len(procs))
    for pid, charged, pgfault, comm in procs:  # mgi_proc_stat_t, 40 bytes
        body += struct.pack("<i4xQQ16s", pid, charged, pgfault, name(comm, MGI_COMM_MAX))
    body += bytes(40 * (MGI_STAT_PROCS_MAX - len(procs)))
    return msg(STAT, f"{len(body)}s", body)


def list_msg(names, truncated=0):
    assert len(names) <= MGI_LIST_MAX
    arr = b"".join(struct.pack(G, name(n)) for n in names)
    arr += bytes(MGI_GROUP_NAME_MAX * (MGI_LIST_MAX - len(names)))
    return msg(LIST, f"II{len(arr)}s", len(names), truncated, arr)


MiB = 1 << 20

def figures(**kw):
    return [kw.get(f, 0) for f in STATS_FIELDS]


VALID = {
    "v3-hello": hello(1234, -1, "web/api"),
    "v3-hello-default-group": hello(1234, 7, ""),
    "v3-welcome": welcome(WELCOME, 3, 2, "web/api"),
    "v3-move": welcome(MOVE, 5, 1, "batch"),
    "v3-oom-kill": oom_kill(10, 11, 100, 64, 80, "hog"),
    "v3-oom-req": oom_req(1234, 1),
    "v3-oom-req-level-zero": oom_req(1234, 0),
    "v3-stat-req": group_msg(STAT_REQ, "web"),
    "v3-stat-req-default-group": group_msg(STAT_REQ, ""),
    "v3-stat": stat("web",
                    figures(usage=48 * MiB, max_usage=60 * MiB, limit=64 * MiB, failcnt=2,
                            pgfault=12288, nr_processes=2, tracked_bytes=40 * MiB,
                            untracked_bytes=8 * MiB, oom_kill=1, coop_requests=3,
                            coop_freed=4 * MiB, swap_usage=16 * MiB, pswpout=9000,
                            pswpin=5000, reclaim_hist10=12, reclaim_stalls=12),
                    [(100, 32 * MiB, 8192, "api-server"), (101, 16 * MiB, 4096, "db")]),
    "v3-set": set_msg(SET, "web", 64 * MiB),
    "v3-set-unlimited": set_msg(SET, "web/api", MGI_SET_UNLIMITED),
    "v3-set-reclaim": set_msg(SET, "web", MGI_SET_KEEP, high=48 * MiB, low=8 * MiB,
                              soft=32 * MiB, swap_max=1 << 30, swappiness=60),
    "v3-set-high-under-max": set_msg(SET, "web", 64 * MiB, high=32 * MiB, low=16 * MiB),
    "v3-set-mode-estimate": set_msg(SET, "web", MGI_SET_KEEP, mode=1),
    "v3-reclaim-req": reclaim_req(1234, 1, 128),
    "v3-evict": evict(EVICT, 512),
    "v3-evict-age": evict(EVICT, 0),
    "v3-evicted": evict(EVICTED, 512, 300),
    "v3-reply": reply(-errno.EBUSY, 0, "group 'web' has 1 child group(s): remove them first"),
    "v3-create": set_msg(CREATE, "web/api", 32 * MiB),
    "v3-create-unlimited": set_msg(CREATE, "web", MGI_SET_KEEP),
    "v3-create-kernel": set_msg(CREATE, "web", 64 * MiB, soft=32 * MiB, backend=1),
    "v3-set-backend-agent": set_msg(SET, "web", MGI_SET_KEEP, backend=0),
    "v3-rm": group_msg(RM, "web/api"),
    "v3-list-req": group_msg(LIST_REQ, ""),
    "v3-list": list_msg(["", "web", "web/api", "web/db"]),
    "v3-attach": attach("web/db", 4321),
    "v3-register-threshold": register("web", REG_THRESHOLD, WATCH_MEMORY, 48 * MiB, 0, 0),
    "v3-register-pressure": register("", REG_PRESSURE, WATCH_MEMORY, 0, 2, 1),
    "v3-register-oom": register("web", REG_OOM, WATCH_MEMORY, 0, 0, 0),
    "v3-register-ladder": register("web", REG_LADDER, WATCH_MEMORY, 0, 0, 0),
    "v3-register-cooperate": register("web/api", REG_COOPERATE, WATCH_MEMORY, 0, 500, 0),
    "v3-unregister": unregister(1),
    "v3-coop-done": unregister(7, COOP_DONE),
    "v3-uffd-features": unregister(0x1001a, UFFD_FEATURES),
    "v3-place": group_msg(PLACE, "web/api"),
    "v3-grant": grant(GRANT, 1234, 64),
    "v3-grant-swap": grant(GRANT, 1234, 1, swap=1),
    "v3-granted": grant(GRANTED, 0, 97),
    "v3-granted-refused": grant(GRANTED, 0, 0, refused=1),
    "v3-set-oom": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x1f, oom_policy=1, oom_scope=1,
                          oom_signal=15, oom_grace_ms=2000, oom_prefer="^stress",
                          oom_avoid="(^|/)postgres"),
    "v3-create-oom-policy": set_msg(CREATE, "web/batch", 32 * MiB, oom_set=1, oom_policy=4),
    "v3-set-oom-kill-disable": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x20, oom_kill_disable=1),
    "v3-oom-act-kill": oom_act("web", 4242, 1),
    "v3-set-oom-prekill": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x40,
                                  oom_prekill_timeout_ms=1000,
                                  oom_prekill="/usr/local/bin/dump-heap --fast"),
    "v3-set-oom-prekill-clear": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x40),
    "v3-oom-act-resume": oom_act("", 0, 2),
    "v3-oom-handler": group_msg(OOM_HANDLER, "web"),
    "v3-oom-handler-own-group": group_msg(OOM_HANDLER, ""),
    "v3-oom-snapshot": oom_snapshot(3, "web", 64 * MiB, 64 * MiB, 8 * MiB, 1000,
                                    [(101, 0, 40 * MiB, 90000, 0, "postgres", "postgres -D /db"),
                                     (202, 500, 24 * MiB, 1200, 16 * MiB, "batch", "batch --all")]),
    "v3-oom-snapshot-empty": oom_snapshot(1, "web/api", 1 * MiB, 1 * MiB, 0, 4000, []),
    "v3-oom-decision-kill": oom_decision(3, 1, [202, 303]),
    "v3-oom-decision-raise": oom_decision(3, 2, limit=96 * MiB),
    "v3-oom-decision-raise-unlimited": oom_decision(4, 2, limit=MGI_SET_UNLIMITED),
    "v3-oom-decision-resume": oom_decision(5, 3),
    "v3-set-oom-handler": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x180,
                                  oom_handler_timeout_ms=2000, oom_reserve=8 * MiB),
    "v3-oom-priority": oom_priority(0, 500),
    "v3-oom-priority-pid": oom_priority(4321, -1000),
    "v3-spare-ask": spare(SPARE, -1, 0),
    "v3-spare-give": spare(SPARE, 7, 0),
    "v3-forked": spare(FORKED, 7, 4321),
    "v3-oom-record-req": oom_record_req("web", 3),
    "v3-oom-record-req-own-group": oom_record_req("", 0),
    "v3-oom-record": oom_record(4, '{"group": "web", "policy": "largest", "victim": {"pid": 77}}'),
}

# Each fails a different check of mgi_msg_parse.
unterminated = b"a" * MGI_GROUP_NAME_MAX
INVALID = {
    "v3-invalid-create-bad-group-name": set_msg(CREATE, "web//api", 32 * MiB),
    "v3-invalid-create-dot-component": set_msg(CREATE, "web/.api", 32 * MiB),
    "v3-invalid-create-below-one-page": set_msg(CREATE, "web", 4095),
    "v3-invalid-hello-unterminated-group": hello(1234, -1, unterminated),
    "v3-invalid-stat-req-unterminated-group": group_msg(STAT_REQ, unterminated),
    "v3-invalid-oom-req-level-out-of-range": oom_req(1234, MGI_DEPTH_MAX),
    "v3-invalid-welcome-nsegments-out-of-range": welcome(WELCOME, 3, MGI_DEPTH_MAX + 1, "web"),
    "v3-invalid-rm-root": group_msg(RM, ""),
    "v3-invalid-list-bad-name": list_msg(["web", "web/"]),
    "v3-invalid-hello-len-mismatch": hello(1234, -1, "web", hdr_len=24),
    "v3-invalid-hello-version-2": hello(1234, -1, "web", version=2),
    "v3-invalid-register-kind-6": register("web", 6, WATCH_MEMORY, 0, 0, 0),
    "v3-invalid-register-cooperate-priority": register("web", REG_COOPERATE, WATCH_MEMORY, 0,
                                                       MGI_COOP_PRIORITY_MAX + 1, 0),
    "v3-invalid-coop-done-id-zero": unregister(0, COOP_DONE),
    "v3-invalid-uffd-features-none": unregister(0, UFFD_FEATURES),
    "v3-invalid-set-swappiness": set_msg(SET, "web", MGI_SET_KEEP, swappiness=101),
    "v3-invalid-create-backend-2": set_msg(CREATE, "web", 64 * MiB, backend=2),
    "v3-invalid-reclaim-req-pages-zero": reclaim_req(1234, 0, 0),
    "v3-invalid-reclaim-req-level": reclaim_req(1234, MGI_DEPTH_MAX, 1),
    "v3-invalid-evicted-huge": evict(EVICTED, 1, MGI_PAGES_UNLIMITED + 1),
    "v3-invalid-set-high-above-max": set_msg(SET, "web", 64 * MiB, high=128 * MiB),
    "v3-invalid-set-max-8e": set_msg(SET, "web", 1 << 63),
    "v3-invalid-create-swap-max-u64": set_msg(CREATE, "web", 64 * MiB, swap_max=2**64 - 3),
    "v3-invalid-set-mode": set_msg(SET, "web", MGI_SET_KEEP, mode=7),
    "v3-invalid-grant-pages-zero": grant(GRANT, 1234, 0),
    "v3-invalid-grant-too-many": grant(GRANT, 1234, MGI_GRANT_ASK_MAX + 1),
    "v3-invalid-grant-pid": grant(GRANT, -1, 1),
    "v3-invalid-grant-swap-2": grant(GRANT, 1234, 1, swap=2),
    "v3-invalid-granted-refused-none": grant(GRANTED, 0, 0),
    "v3-invalid-granted-refused-deep": grant(GRANTED, 0, 0, refused=MGI_DEPTH_MAX),
    "v3-invalid-set-oom-policy": set_msg(SET, "web", MGI_SET_KEEP, oom_set=1, oom_policy=5),
    "v3-invalid-set-oom-flags": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x40),
    "v3-invalid-set-oom-kill-disable-2": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x20,
                                                 oom_kill_disable=2),
    "v3-invalid-set-oom-kill-disable-no-flag": set_msg(SET, "web", MGI_SET_KEEP,
                                                       oom_kill_disable=1),
    "v3-invalid-oom-act-unknown": oom_act("web", 0, 3),
    "v3-invalid-set-oom-prekill-no-timeout": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x40,
                                                     oom_prekill="/bin/true"),
    "v3-invalid-set-oom-prekill-timeout-long": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x40,
                                                       oom_prekill_timeout_ms=4001,
                                                       oom_prekill="/bin/true"),
    "v3-invalid-set-oom-prekill-no-flag": set_msg(SET, "web", MGI_SET_KEEP,
                                                  oom_prekill_timeout_ms=5,
                                                  oom_prekill="/bin/true"),
    "v3-invalid-set-oom-prekill-unterminated": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x40,
                                                       oom_prekill_timeout_ms=5,
                                                       oom_prekill="x" * 256),
    "v3-invalid-oom-act-kill-no-pid": oom_act("web", 0, 1),
    "v3-invalid-oom-handler-bad-group": group_msg(OOM_HANDLER, "web//api"),
    "v3-invalid-oom-snapshot-seq-zero": oom_snapshot(0, "web", 0, 0, 0, 1000, []),
    "v3-invalid-oom-snapshot-timeout": oom_snapshot(1, "web", 0, 0, 0, 4001, []),
    "v3-invalid-oom-snapshot-total": oom_snapshot(1, "web", 0, 0, 0, 1000,
                                                  [(101, 0, 0, 0, 0, "a", "a")], total=0),
    "v3-invalid-oom-snapshot-pid": oom_snapshot(1, "web", 0, 0, 0, 1000,
                                                [(0, 0, 0, 0, 0, "a", "a")]),
    "v3-invalid-oom-snapshot-priority": oom_snapshot(1, "web", 0, 0, 0, 1000,
                                                     [(7, 1001, 0, 0, 0, "a", "a")]),
    "v3-invalid-oom-snapshot-no-group": oom_snapshot(1, "", 0, 0, 0, 1000, []),
    "v3-invalid-oom-decision-seq-zero": oom_decision(0, 3),
    "v3-invalid-oom-decision-action": oom_decision(1, 4),
    "v3-invalid-oom-decision-kill-none": oom_decision(1, 1, []),
    "v3-invalid-oom-decision-kill-pid-range": oom_decision(1, 1, [1 << 22]),
    "v3-invalid-oom-decision-kill-past-npids": oom_decision(1, 1, [5, 6], npids=1),
    "v3-invalid-oom-decision-kill-too-many": oom_decision(1, 1, [5], npids=17),
    "v3-invalid-oom-decision-raise-zero": oom_decision(1, 2, limit=0),
    "v3-invalid-oom-decision-raise-huge": oom_decision(1, 2, limit=2**63),
    "v3-invalid-oom-decision-resume-pid": oom_decision(1, 3, [5]),
    "v3-invalid-oom-decision-resume-limit": oom_decision(1, 3, limit=4096),
    "v3-invalid-set-oom-handler-timeout-long": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x80,
                                                       oom_handler_timeout_ms=4001),
    "v3-invalid-set-oom-handler-timeout-zero": set_msg(SET, "web", MGI_SET_KEEP, oom_set=0x80),
    "v3-invalid-set-oom-handler-no-flag": set_msg(SET, "web", MGI_SET_KEEP,
                                                  oom_handler_timeout_ms=100),
    "v3-invalid-set-oom-reserve-no-flag": set_msg(SET, "web", MGI_SET_KEEP, oom_reserve=4096),
    "v20-set-thp": set_msg(SET, "web", MGI_SET_KEEP, thp_set=15, thp_mode=1, thp_threshold=75,
                           thp_rate=10, thp_weight=300),
    "v20-invalid-set-thp-weight": set_msg(SET, "web", MGI_SET_KEEP, thp_set=8, thp_weight=10001),
    "v20-invalid-set-thp-mode": set_msg(SET, "web", MGI_SET_KEEP, thp_set=1, thp_mode=3),
    "v20-invalid-set-thp-threshold": set_msg(SET, "web", MGI_SET_KEEP, thp_set=2, thp_threshold=0),
    "v20-invalid-set-thp-no-flag": set_msg(SET, "web", MGI_SET_KEEP, thp_rate=5),
    "v3-invalid-oom-act-resume-pid": oom_act("web", 77, 2),
    "v3-invalid-oom-act-bad-group": oom_act("../web", 77, 1),
    "v3-invalid-set-oom-scope": set_msg(SET, "web", MGI_SET_KEEP, oom_set=2, oom_scope=2),
    "v3-invalid-set-oom-signal-hup": set_msg(SET, "web", MGI_SET_KEEP, oom_set=4, oom_signal=1),
    "v3-invalid-set-oom-grace-kill": set_msg(SET, "web", MGI_SET_KEEP, oom_set=4, oom_signal=9,
                                             oom_grace_ms=100),
    "v3-invalid-set-oom-grace-long": set_msg(SET, "web", MGI_SET_KEEP, oom_set=4, oom_signal=15,
                                             oom_grace_ms=5001),
    "v3-invalid-set-oom-regex-unterminated": set_msg(SET, "web", MGI_SET_KEEP, oom_set=8,
                                                     oom_prefer=unterminated),
    "v3-invalid-oom-priority-range": oom_priority(0, 1001),
    "v3-invalid-oom-priority-pid": oom_priority(-5, 0),
    "v3-invalid-spare-slot": spare(SPARE, 512, 0),
    "v3-invalid-spare-pid": spare(SPARE, 3, 99),
    "v3-invalid-forked-slot": spare(FORKED, -1, 4321),
    "v3-invalid-forked-pid": spare(FORKED, 3, 1),
    "v3-invalid-oom-record-req-bad-group": oom_record_req("web/../x", 0),
    "v3-invalid-oom-record-seq-zero": oom_record(0, "{}"),
    "v3-invalid-oom-record-len-short": oom_record(1, "{}", length=1),
    "v3-invalid-oom-record-len-huge": oom_record(1, "{}", length=4096),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    check_layout(os.path.dirname(here))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "msg")
    os.makedirs(out, exist_ok=True)
    for fname, data in {**VALID, **INVALID}.items():
        with open(os.path.join(out, fname), "wb") as f:
            f.write(data)
    print(f"wrote {len(VALID)} valid and {len(INVALID)} invalid seeds to {out}")


if __name__ == "__main__":
    main()

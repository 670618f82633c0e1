#!/usr/bin/env python3
"""make_statefile_seeds.py - writes seeds for fuzz/fuzz_statefile.c and
fuzz/fuzz_segment.c: damaged segments as a state directory (or a hostile
process) could hold them.

The offsets come from the compiler: a small C program printing offsetof()
of the fields patched is built against src/core and run, so the seeds follow
segment.h as it is. A seed for fuzz_statefile.c is a list of patches (3
bytes of offset, 1 of length, the bytes) over a valid segment, or 'R' and
raw bytes (a truncated file, a garbage body); fuzz_segment.c takes patches
over the accounting part only (offsets relative to it).

Usage: fuzz/make_statefile_seeds.py   (run from the source tree)
"""

import os
import random
import struct
import subprocess
import sys
import tempfile

HELPER = r'''
#include <stdio.h>
#include <stddef.h>
#include "segment.h"
#define P(name, expr) printf("%s %zu\n", name, (size_t)(expr))
int main(void)
{
	P("size", sizeof(mgi_segment_t));
	P("acct", offsetof(mgi_segment_t, acct));
	P("ctl_memory_max", offsetof(mgi_segment_t, ctl.memory.max));
	P("ctl_group", offsetof(mgi_segment_t, ctl.group));
	P("ctl_granted", offsetof(mgi_segment_t, ctl.granted));
	P("ctl_swap_granted", offsetof(mgi_segment_t, ctl.swap_granted));
	P("ctl_oom_set", offsetof(mgi_segment_t, ctl.oom_set));
	P("ctl_oom_policy", offsetof(mgi_segment_t, ctl.oom_policy));
	P("ctl_oom_signal", offsetof(mgi_segment_t, ctl.oom_signal));
	P("ctl_oom_grace", offsetof(mgi_segment_t, ctl.oom_grace_ms));
	P("ctl_oom_prefer", offsetof(mgi_segment_t, ctl.oom_prefer));
	P("ctl_oom_kill_disable", offsetof(mgi_segment_t, ctl.oom_kill_disable));
	P("ctl_under_oom", offsetof(mgi_segment_t, ctl.under_oom));
	P("ctl_oom_prekill_timeout", offsetof(mgi_segment_t, ctl.oom_prekill_timeout_ms));
	P("ctl_oom_prekill", offsetof(mgi_segment_t, ctl.oom_prekill));
	P("ctl_oom_handler_timeout", offsetof(mgi_segment_t, ctl.oom_handler_timeout_ms));
	P("ctl_oom_reserve", offsetof(mgi_segment_t, ctl.oom_reserve_pages));
	P("ctl_oom_handling", offsetof(mgi_segment_t, ctl.oom_handling));
	P("ctl_pid0", offsetof(mgi_segment_t, ctl.procs[0].pid));
	P("ctl_pid_stride", sizeof(mgi_proc_id_t));
	P("ctl_th0_size", offsetof(mgi_segment_t, ctl.thresholds[0].set.size));
	P("ctl_th0_entries", offsetof(mgi_segment_t, ctl.thresholds[0].set.entries));
	P("acct_usage", offsetof(mgi_segment_t, acct.memory.usage));
	P("acct_swap_usage", offsetof(mgi_segment_t, acct.swap.usage));
	P("acct_pos0", offsetof(mgi_segment_t, acct.thresholds[0].state));
	P("acct_pending0", offsetof(mgi_segment_t, acct.pending[0]));
	P("acct_charged0", offsetof(mgi_segment_t, acct.procs[0].charged));
	P("acct_slot_stride", sizeof(mgi_proc_slot_t));
	return 0;
}
'''


def offsets():
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'core')
    with tempfile.TemporaryDirectory() as d:
        c, exe = os.path.join(d, 'o.c'), os.path.join(d, 'o')
        with open(c, 'w') as f:
            f.write(HELPER)
        subprocess.run(['cc', '-std=gnu17', '-I', src, c, '-o', exe], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def patch(off, data):
    out = b''
    while data:
        chunk = data[:255]
        out += struct.pack('>I', off)[1:] + bytes([len(chunk)]) + chunk
        off += len(chunk)
        data = data[255:]
    return out


def main():
    o = offsets()
    here = os.path.dirname(os.path.abspath(__file__))
    rnd = random.Random(1)
    u64 = lambda v: struct.pack('<Q', v & (2**64 - 1))
    i32 = lambda v: struct.pack('<i', v)
    a = o['acct']
    state = {
        'valid': b'',
        'garbage-body': b'R' + bytes(rnd.randrange(256) for _ in range(o['size'])),
        'truncated': b'R' + bytes(200),
        'huge-threshold-count': patch(o['ctl_th0_size'], struct.pack('<I', 0xffffffff)),
        'unsorted-thresholds': patch(o['ctl_th0_size'], struct.pack('<I', 2)) +
        patch(o['ctl_th0_entries'], u64(50) + u64(1) + u64(10) + u64(2)),
        'limit-beyond-any': patch(o['ctl_memory_max'], u64(-1)),
        'limit-zero': patch(o['ctl_memory_max'], u64(0)),
        'negative-looking-usage': patch(o['acct_usage'], u64(-5788214932561581428)),
        'bad-threshold-position': patch(o['acct_pos0'], u64(1000)),
        'pending-huge': patch(o['acct_pending0'] + 8 * 7, u64(-1)),
        'planted-pid-1': patch(o['ctl_pid0'], i32(1)),
        'planted-pid-huge': patch(o['ctl_pid0'] + o['ctl_pid_stride'], i32(1 << 30)),
        'phantom-processes': b''.join(
            patch(o['ctl_pid0'] + k * o['ctl_pid_stride'], i32(rnd.randrange(2, 40000)))
            + patch(o['acct_charged0'] + k * o['acct_slot_stride'], u64(rnd.randrange(1, 1 << 40)))
            for k in range(62)),
        'duplicate-pid': patch(o['ctl_pid0'], i32(4242)) +
        patch(o['ctl_pid0'] + o['ctl_pid_stride'], i32(4242)),
        'free-slot-holding': patch(o['acct_charged0'] + 3 * o['acct_slot_stride'], u64(77)),
        'grant-beyond-any': patch(o['ctl_granted'], u64(-1)),
        'swap-grant-beyond-any': patch(o['ctl_swap_granted'], u64(1 << 62)),
        'grant-above-parent': patch(o['ctl_granted'], u64(1 << 20)) +
        patch(o['ctl_swap_granted'], u64(3)),
        'grant-within-parent': patch(o['ctl_granted'], u64(100)) +
        patch(o['acct_usage'], u64(90)),
        'oom-settings': patch(o['ctl_oom_set'], struct.pack('<IIIII', 0x1f, 1, 1, 15, 2000)) +
        patch(o['ctl_oom_prefer'], b'^stress\0'),
        'oom-policy-unknown': patch(o['ctl_oom_policy'], struct.pack('<I', 9)),
        'oom-flags-unknown': patch(o['ctl_oom_set'], struct.pack('<I', 0x80000000)),
        'oom-signal-hup': patch(o['ctl_oom_signal'], struct.pack('<I', 1)),
        'oom-grace-long': patch(o['ctl_oom_grace'], struct.pack('<I', 60000)),
        'oom-regex-unterminated': patch(o['ctl_oom_prefer'], b'x' * 128),
        'oom-paused': patch(o['ctl_oom_set'], struct.pack('<I', 0x20)) +
        patch(o['ctl_oom_kill_disable'], struct.pack('<I', 1)) +
        patch(o['ctl_under_oom'], struct.pack('<I', 1)),
        'oom-kill-disable-bad': patch(o['ctl_oom_kill_disable'], struct.pack('<I', 3)),
        'oom-under-oom-bad': patch(o['ctl_under_oom'], struct.pack('<I', 2)),
        'oom-prekill': patch(o['ctl_oom_set'], struct.pack('<I', 0x40)) +
        patch(o['ctl_oom_prekill_timeout'], struct.pack('<I', 1000)) +
        patch(o['ctl_oom_prekill'], b'/bin/logger -t memgrp-oom\0'),
        'oom-prekill-unterminated': patch(o['ctl_oom_prekill'], b'y' * 256),
        'oom-prekill-timeout-long': patch(o['ctl_oom_prekill_timeout'], struct.pack('<I', 4001)),
        'oom-handler': patch(o['ctl_oom_set'], struct.pack('<I', 0x180)) +
        patch(o['ctl_oom_handler_timeout'], struct.pack('<I', 2000)) +
        patch(o['ctl_oom_reserve'], u64(2048)) + patch(o['ctl_oom_handling'], struct.pack('<I', 1)),
        'oom-handler-timeout-long': patch(o['ctl_oom_handler_timeout'], struct.pack('<I', 4001)),
        'oom-reserve-huge': patch(o['ctl_oom_reserve'], u64(-1)),
        'oom-handling-bad': patch(o['ctl_oom_handling'], struct.pack('<I', 7)),
        'slot-oom-priority': patch(o['ctl_pid0'], i32(4242)) + patch(o['ctl_pid0'] + 4, i32(-700)),
        'slot-oom-priority-bad': patch(o['ctl_pid0'], i32(4242)) + patch(o['ctl_pid0'] + 4, i32(5000)),
        'top-level-grant': patch(o['ctl_group'], b'web\0') + patch(o['ctl_granted'], u64(8)),
    }
    live = {  # offsets relative to the accounting part
        'usage-huge': patch(o['acct_usage'] - a, u64(-1)),
        'usage-zero': patch(o['acct_usage'] - a, u64(0)),
        'swap-huge': patch(o['acct_swap_usage'] - a, u64(-2)),
        'position-past-set': patch(o['acct_pos0'] - a, u64(0xffffffff)),
        'position-odd-generation': patch(o['acct_pos0'] - a, u64((3 << 32) | 2)),
        'pending-huge': patch(o['acct_pending0'] - a + 8 * 3, u64(-1)),
        'charged-huge': patch(o['acct_charged0'] - a, u64(1 << 62)),
        'free-slot-holding': patch(o['acct_charged0'] - a + 9 * o['acct_slot_stride'], u64(5)),
        'random-scribble': b''.join(
            patch(rnd.randrange(o['size'] - a - 256),
                  bytes(rnd.randrange(256) for _ in range(200)))
            for _ in range(40)),
    }
    for d, seeds in ((os.path.join(here, 'corpus', 'statefile'), state),
                     (os.path.join(here, 'corpus', 'segment'), live)):
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)
    print('wrote %d statefile and %d segment seeds' % (len(state), len(live)))


if __name__ == '__main__':
    sys.exit(main())

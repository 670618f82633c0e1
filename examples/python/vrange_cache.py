"""vrange_cache.py - a cache that lends its idle entries back to memgrp (volatile ranges) and rebuilds only what was purged.

    memgrp run -m 64M -- python3 examples/python/vrange_cache.py [ENTRIES] [MORE_MB]

ENTRIES entries of 64 KiB each live in one mmap. While idle they are volatile
(mg_vrange): under pressure memgrp takes their pages first, at no cost. The
program then needs MORE_MB of other memory for a while (pressure), and looks
its entries up again: the per-page report says exactly which entries lost pages; only
those are rebuilt, and every entry is checked against its contents.
"""
import mmap
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memgrp  # noqa: E402

ENTRY = 64 << 10


def content(i):
    return (i.to_bytes(4, "little") * (ENTRY // 4))


def main():
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    more = (int(sys.argv[2]) if len(sys.argv) > 2 else 0) << 20
    m = mmap.mmap(-1, entries * ENTRY, flags=mmap.MAP_PRIVATE)
    for i in range(entries):
        m[i * ENTRY:(i + 1) * ENTRY] = content(i)
    base = memgrp.address_of(m)
    memgrp.vrange(base, len(m))                 # idle: lent back
    other = mmap.mmap(-1, max(more, mmap.PAGESIZE), flags=mmap.MAP_PRIVATE)
    for off in range(0, more, mmap.PAGESIZE):   # the pressure
        other[off] = 1
    other.close()                               # the pressure passes
    # pinned again, with the pages purged up to that moment (one step)
    purged_pages = memgrp.vrange_unpin(base, len(m))
    lost = sorted({p * mmap.PAGESIZE // ENTRY for p in purged_pages})
    for i in lost:                              # rebuild exactly these
        m[i * ENTRY:(i + 1) * ENTRY] = content(i)
    bad = [i for i in range(entries) if m[i * ENTRY:(i + 1) * ENTRY] != content(i)]
    print(f"entries {entries}, pages purged {len(purged_pages)}, entries rebuilt {len(lost)}, "
          f"wrong {len(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""grow.py - grows its memory in steps, as a cache or a leaky service would.

Usage: python3 grow.py TOTAL_MB [STEP_MB]
Prints a line per step and the total reached.
"""
import sys

total = int(sys.argv[1])
step = int(sys.argv[2]) if len(sys.argv) > 2 else 8
blocks = []
while len(blocks) * step < total:
    block = bytearray(step << 20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    blocks.append(block)
    print(f"  python3: holding {len(blocks) * step} MB", flush=True)
print(f"  python3: done, {total} MB held")

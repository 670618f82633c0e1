"""cache_app.py - a Python service with an unbounded cache that cooperates with
memgrp: run it under `memgrp run -m 64M -- python3 cache_app.py`.

Usage: python3 cache_app.py [--no-cooperate] [REQUESTS]
Each request caches a 256 KiB result that is never evicted on its own.
With the cooperator the cache is dropped when the group nears its limit;
without it the service is killed at the limit.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

cooperate = "--no-cooperate" not in sys.argv
args = [a for a in sys.argv[1:] if not a.startswith("--")]
requests = int(args[0]) if args else 600

cache = {}
coop = None
if cooperate:
    import memgrp
    coop = memgrp.Cooperator(fraction=0.7).start()
    coop.add_cache(cache.clear)
    print(f"cache_app: cooperating; limit {coop.limit >> 20} MiB, freeing at {coop.at >> 20} MiB", flush=True)

for r in range(requests):
    result = bytearray(256 << 10)
    result[::4096] = bytes([r & 0xff]) * len(result[::4096])
    cache[r] = result
    time.sleep(0.001)  # the time to serve a request

# what is still cached is intact
assert all(v[0] == (k & 0xff) for k, v in cache.items())
if coop:
    print(f"cache_app: served {requests} requests; the cache was dropped {coop.events + coop.asked} "
          f"times ({coop.asked} when asked at the limit), {coop.freed >> 20} MiB freed in all; "
          f"{len(cache)} entries left, verified", flush=True)
else:
    print(f"cache_app: served {requests} requests, {len(cache)} entries cached", flush=True)

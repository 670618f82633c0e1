# bigdict.py - builds a dict of N int -> str entries, then prints a checksum: the sum of key * len(value).
import sys

n = int(sys.argv[1])
d = {i: str(i) for i in range(n)}
print(len(d), sum(k * len(v) for k, v in d.items()))

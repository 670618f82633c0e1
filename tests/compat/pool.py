# pool.py - a multiprocessing pool (fork) computing sums of squares with a list per task; prints each result.
import multiprocessing as mp
import sys


def work(n):
    # A list per task so that every worker faults memory in, not only CPU.
    xs = [i * i for i in range(n)]
    return n, sum(xs)


if __name__ == "__main__":
    count, size = int(sys.argv[1]), int(sys.argv[2])
    with mp.get_context("fork").Pool(2) as pool:
        for n, s in pool.imap(work, [size + k for k in range(count)]):
            print(n, s)

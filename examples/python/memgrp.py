"""memgrp.py - cooperate with memgrp from Python, through libmemgrp (ctypes).

No compiled extension: the module loads libmemgrp.so ($MEMGRP_LIB, else
the system's) and wraps its C API (include/memgrp.h, man memgrp(3)).

    import memgrp
    coop = memgrp.Cooperator(fraction=0.7)   # own group, $MEMGRP_SOCKET
    coop.add_cache(my_cache.clear)           # anything that frees memory
    coop.start()                             # a daemon thread waits for events

When the group's usage crosses `fraction` of its limit, when its pressure
reaches the level asked for, or when the manager asks (the group is at its
limit and this process cooperates: it is asked before anything is killed),
the cooperator runs gc.collect(), calls every registered cache-dropping
callable, hands freed heap back to the system (malloc_trim) and records
what was really freed (usage before and after, from the manager, not what
the callbacks claim).

CPython caveat, measured: a thread that faults at the limit holds the GIL
while it waits, so this process's own cooperator thread cannot run until
the manager gives up on it (its wait, 200 ms by default) and kills. Asked
at the limit, a Python process helps when another process of the group is
the one waiting; for its own allocations, free on a threshold below the
limit (the default here, at 70 %).
"""
import ctypes
import ctypes.util
import errno
import gc
import os
import select
import threading

_lib = None


def _load():
    global _lib
    if _lib is None:
        path = os.environ.get("MEMGRP_LIB") or ctypes.util.find_library("memgrp") or "libmemgrp.so"
        lib = ctypes.CDLL(path, use_errno=True)
        lib.mg_connect.restype = ctypes.c_void_p
        lib.mg_connect.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
        lib.mg_close.argtypes = [ctypes.c_void_p]
        lib.mg_last_error.restype = ctypes.c_char_p
        lib.mg_last_error.argtypes = [ctypes.c_void_p]
        lib.mg_threshold_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint64]
        lib.mg_pressure_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        lib.mg_oom_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.mg_cooperate_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
        lib.mg_cooperate_done.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.mg_remove.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.mg_oom_priority_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.mg_stats.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Stats)]
        lib.mg_ladder_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.mg_ladder_read.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Ladder)]
        lib.mg_oom_handler_register.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.mg_oom_handler_read.argtypes = [ctypes.c_void_p, ctypes.POINTER(OomSnapshot), ctypes.c_int]
        lib.mg_oom_handler_answer.argtypes = [ctypes.c_void_p, ctypes.POINTER(OomDecision)]
        lib.mg_event_read.restype = ctypes.c_int64
        lib.mg_event_read.argtypes = [ctypes.c_int]
        lib.mg_vrange.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                  ctypes.POINTER(ctypes.c_int)]
        lib.mg_vrange_purged.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                         ctypes.POINTER(ctypes.c_uint8)]
        lib.mg_vrange_unpin.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                        ctypes.POINTER(ctypes.c_uint8)]
        _lib = lib
    return _lib


class Stats(ctypes.Structure):
    """A group's figures (mg_stats_t); sizes in bytes."""
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "usage", "max_usage", "limit", "failcnt", "pgfault", "nr_processes",
        "tracked_bytes", "untracked_bytes", "oom_kill")]


class Ladder(ctypes.Structure):
    """A group's ladder counts (mg_ladder_t): each step taken (or ended
    so) in the group and below; under_oom 1 while paused at OOM."""
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "coop", "coop_enough", "evict", "evict_empty", "oom_kill", "oom_pauses",
        "oom_none", "under_oom", "purge", "handler_asked", "handler_kill", "handler_raise",
        "handler_resume", "handler_fallback")]


class OomProc(ctypes.Structure):
    """One process of an OOM snapshot (mg_oom_proc_t); sizes in bytes."""
    _fields_ = [("pid", ctypes.c_int), ("priority", ctypes.c_int), ("charged", ctypes.c_uint64),
                ("age_ms", ctypes.c_uint64), ("growth", ctypes.c_uint64),
                ("comm_", ctypes.c_char * 16), ("cmdline_", ctypes.c_char * 96)]

    @property
    def comm(self):
        return self.comm_.decode(errors="replace")

    @property
    def cmdline(self):
        return self.cmdline_.decode(errors="replace")


class OomSnapshot(ctypes.Structure):
    """What an OOM handler decides on (mg_oom_snapshot_t): the group's
    usage, limit and reserve, the decision's timeout, and its processes,
    the largest first (procs)."""
    _fields_ = [("seq", ctypes.c_uint64), ("group_", ctypes.c_char * 128),
                ("usage", ctypes.c_uint64), ("limit", ctypes.c_uint64), ("reserve", ctypes.c_uint64),
                ("timeout_ms", ctypes.c_uint), ("nprocs", ctypes.c_uint), ("total", ctypes.c_uint),
                ("procs_", OomProc * 64)]

    @property
    def group(self):
        return self.group_.decode()

    @property
    def procs(self):
        return list(self.procs_[:self.nprocs])


class OomDecision(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint64), ("action", ctypes.c_int), ("limit", ctypes.c_uint64),
                ("npids", ctypes.c_uint), ("pids", ctypes.c_int * 16)]


OOM_KILL, OOM_RAISE, OOM_RESUME = 1, 2, 3


class Error(OSError):
    pass


MEMORY, MEMSW = 0, 1
PRESSURE = {"low": 0, "medium": 1, "critical": 2}


class Client:
    """One connection to a manager (memgrpd, or `memgrp run`'s)."""

    def __init__(self, socket_path=None):
        lib = _load()
        err = ctypes.c_int(0)
        self._c = lib.mg_connect(socket_path.encode() if socket_path else None, ctypes.byref(err))
        if not self._c:
            raise Error(-err.value, "no memgrp manager: " + os.strerror(-err.value))

    def _check(self, rc):
        if rc < 0:
            raise Error(-rc, _load().mg_last_error(self._c).decode())
        return rc

    @staticmethod
    def _group(group):
        return group.encode() if group else None

    def threshold(self, nbytes, group=None, counter=MEMORY):
        """An eventfd readable on every crossing of nbytes, up or down."""
        return self._check(_load().mg_threshold_add(self._c, self._group(group), counter, nbytes))

    def pressure(self, level="low", group=None, hierarchy=False):
        """An eventfd readable each time the group's pressure enters level."""
        return self._check(_load().mg_pressure_add(self._c, self._group(group), PRESSURE[level],
                                                   1 if hierarchy else 0))

    def oom(self, group=None):
        """An eventfd readable on each OOM kill that concerns the group."""
        return self._check(_load().mg_oom_add(self._c, self._group(group)))

    def cooperate(self, priority=100, group=None):
        """An eventfd on which the manager asks for memory: read_event()
        gives the pages asked for; call done(efd) once they are freed."""
        return self._check(_load().mg_cooperate_add(self._c, self._group(group), priority))

    def done(self, efd):
        self._check(_load().mg_cooperate_done(self._c, efd))

    def remove(self, efd):
        self._check(_load().mg_remove(self._c, efd))

    def oom_priority(self, priority, pid=0):
        """Ranks pid (0: this process) at priority (-1000..1000, higher
        dies first) under its group's --oom-policy priority."""
        self._check(_load().mg_oom_priority_set(self._c, pid, priority))

    def stats(self, group=None):
        st = Stats()
        self._check(_load().mg_stats(self._c, self._group(group), ctypes.byref(st)))
        return st

    def ladder(self, group=None):
        """An eventfd counting the group's ladder steps taken and episodes
        ended; ladder_read() tells which."""
        return self._check(_load().mg_ladder_add(self._c, self._group(group)))

    def ladder_read(self, group=None):
        lad = Ladder()
        self._check(_load().mg_ladder_read(self._c, self._group(group), ctypes.byref(lad)))
        return lad

    def oom_handler(self, group=None):
        """Makes this client the group's OOM handler: at its OOM the manager
        sends a snapshot (oom_handler_read) and waits for oom_answer up to
        the group's --oom-handler-timeout, else applies its policy. Use a
        Client of its own for it; closing it unregisters."""
        self._check(_load().mg_oom_handler_register(self._c, self._group(group)))

    def oom_handler_read(self, timeout_ms=-1):
        """The next OomSnapshot, or None when none came in timeout_ms."""
        snap = OomSnapshot()
        rc = _load().mg_oom_handler_read(self._c, ctypes.byref(snap), timeout_ms)
        if rc == -errno.ETIMEDOUT:
            return None
        self._check(rc)
        return snap

    def oom_answer(self, seq, kill=None, limit=None):
        """Answers snapshot seq: kill (a list of pids of the group), or
        limit (raise the limit to these bytes), or neither (resume: the
        faulting threads retry). Raises Error when the manager refused it
        (then the group's policy applies)."""
        d = OomDecision(seq=seq)
        if kill:
            if len(kill) > 16:
                raise ValueError("at most 16 pids per decision")
            d.action, d.npids = OOM_KILL, len(kill)
            for i, pid in enumerate(kill):
                d.pids[i] = pid
        elif limit is not None:
            d.action, d.limit = OOM_RAISE, limit
        else:
            d.action = OOM_RESUME
        self._check(_load().mg_oom_handler_answer(self._c, ctypes.byref(d)))

    @staticmethod
    def read_event(efd):
        """Events counted on efd since the last read (blocks until one)."""
        n = _load().mg_event_read(efd)
        if n < 0:
            raise Error(-n, os.strerror(-n))
        return n

    def close(self):
        if self._c:
            _load().mg_close(self._c)
            self._c = None


class Cooperator:
    """Frees memory when the group asks for it, from a daemon thread."""

    def __init__(self, fraction=0.7, pressure=None, priority=100, socket_path=None, log=print):
        self.client = Client(socket_path)
        self.log = log
        self.caches = []
        self.freed = 0          # bytes really freed, summed
        self.events = 0
        self.lock = threading.Lock()  # one client call at a time
        st = self.client.stats()
        self.limit = st.limit
        self.at = int(st.limit * fraction) if fraction else None
        self.fds = [self.client.threshold(self.at)] if fraction else []
        self.coop_fd = self.client.cooperate(priority) if priority is not None else None
        if self.coop_fd is not None:
            self.fds.append(self.coop_fd)
        if pressure:
            self.fds.append(self.client.pressure(pressure))
        self.asked = 0          # requests from the manager, answered

    def add_cache(self, drop):
        """drop(): frees what it can (e.g. a dict's clear)."""
        self.caches.append(drop)

    def start(self):
        threading.Thread(target=self._run, name="memgrp-cooperator", daemon=True).start()
        return self

    def free_now(self):
        """Runs the collector and every cache dropper; returns bytes freed."""
        with self.lock:
            before = self.client.stats().usage
        for drop in self.caches:
            drop()
        gc.collect()
        try:  # give freed heap back to the system, or usage would not fall
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass
        with self.lock:
            after = self.client.stats().usage
        freed = max(0, before - after)
        self.freed += freed
        return before, after, freed

    def _run(self):
        poller = select.poll()
        for fd in self.fds:
            poller.register(fd, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                n = Client.read_event(fd)
                if fd == self.coop_fd:
                    # The group is at its limit: free first, talk after.
                    before, after, freed = self.free_now()
                    with self.lock:
                        self.client.done(fd)
                    self.asked += 1
                    self.log(f"memgrp: asked for {n * 4096 >> 20} MiB at the limit: freed "
                             f"{freed >> 20} MiB (usage now {after >> 20} MiB)")
                    continue
                with self.lock:
                    usage = self.client.stats().usage
                if self.at is not None and fd == self.fds[0] and usage < self.at:
                    continue  # a downward crossing
                self.events += 1
                before, after, freed = self.free_now()
                self.log(f"memgrp: usage {before >> 20} MiB of {self.limit >> 20} MiB reached a "
                         f"threshold or level: freed {freed >> 20} MiB (usage now {after >> 20} MiB)")


# Volatile ranges (mg_vrange): memory this process lends back. No manager
# connection: the memgrp agent in this process answers (under `memgrp run`);
# without it the calls raise Error(ENOTSUP).
VRANGE_VOLATILE, VRANGE_NONVOLATILE, VRANGE_SIGBUS = 0, 1, 2
PAGE = 4096


def _vcheck(rc, what):
    if rc < 0:
        raise Error(-rc, f"{what}: {os.strerror(-rc)}")
    return rc


def address_of(buf):
    """The address of a writable buffer (an mmap.mmap, a bytearray). For
    mg_vrange it must be page aligned: use mmap.mmap."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def vrange(addr, length, volatile=True, sigbus=False):
    """Makes [addr, addr + length) volatile (its pages may be purged under
    pressure; a purged page reads as zeros, or raises SIGBUS with sigbus),
    or non-volatile again: then returns whether anything was purged."""
    lib = _load()
    if volatile:
        mode = VRANGE_VOLATILE | (VRANGE_SIGBUS if sigbus else 0)
        _vcheck(lib.mg_vrange(addr, length, mode, None), "mg_vrange")
        return False
    purged = ctypes.c_int(0)
    _vcheck(lib.mg_vrange(addr, length, VRANGE_NONVOLATILE, ctypes.byref(purged)), "mg_vrange")
    return bool(purged.value)


def vrange_purged(addr, length):
    """The pages of a volatile range purged since it was made volatile: a
    list of page indexes from addr."""
    pages = (length + PAGE - 1) // PAGE
    bits = (ctypes.c_uint8 * ((pages + 7) // 8))()
    _vcheck(_load().mg_vrange_purged(addr, length, bits), "mg_vrange_purged")
    return [k for k in range(pages) if bits[k // 8] >> (k % 8) & 1]


def vrange_unpin(addr, length):
    """Makes a volatile range non-volatile again and returns the pages
    purged up to that moment (page indexes from addr), in one step: a page
    purged meanwhile is never missed, as it can be between vrange_purged and
    vrange(volatile=False)."""
    pages = (length + PAGE - 1) // PAGE
    bits = (ctypes.c_uint8 * ((pages + 7) // 8))()
    _vcheck(_load().mg_vrange_unpin(addr, length, bits), "mg_vrange_unpin")
    return [k for k in range(pages) if bits[k // 8] >> (k % 8) & 1]

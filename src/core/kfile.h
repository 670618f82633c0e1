/* kfile.h - the kernel memory cgroup's files, parsed: memory.stat, memory.events, oom_control, /proc/PID/cgroup, mounts. */
#ifndef MGI_CORE_KFILE_H
#define MGI_CORE_KFILE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Pure parsers of the text the kernel's cgroup files hold, as its
 * documentation lays them out (Documentation/admin-guide/cgroup-v1/memory.rst,
 * cgroup-v2.rst). Every function takes the bytes read (not necessarily
 * NUL-terminated), returns 0 or -EINVAL for text that is not in the
 * documented form, and writes its outputs only on success. No syscalls:
 * src/daemon/kcgroup.c reads the files; these are unit-tested and fuzzed
 * (fuzz/fuzz_kfile.c).
 */

/* "Flat keyed" files (memory.stat, memory.events, v1 memory.oom_control):
 * lines "KEY VALUE\n", VALUE a decimal u64. Fills vals[i] for each keys[i]
 * present (others untouched) and sets bit i of *found. Unknown keys are
 * skipped (the kernel adds keys over time); a malformed line is -EINVAL. */
int mgi_kfile_keyed(const char *buf, size_t len, const char *const *keys, unsigned nkeys,
		    uint64_t *vals, uint32_t *found);

/* A single-value file (memory.usage_in_bytes, memory.max, memory.current):
 * a decimal u64, or "max" (v2: no limit) as UINT64_MAX, then an optional
 * newline. */
int mgi_kfile_u64(const char *buf, size_t len, uint64_t *out);

/* The memory cgroup of a process from /proc/PID/cgroup: for version 1 the
 * line whose controller list holds "memory", for version 2 the "0::" line.
 * Copies its path (starting with '/') into out. -ENOENT: no such line;
 * -ENAMETOOLONG: it does not fit. */
int mgi_kfile_proc_cgroup(const char *buf, size_t len, int version, char *out, size_t outlen);

/* One line of /proc/self/mounts: if it mounts a cgroup v1 hierarchy with
 * the memory controller (type "cgroup", option "memory") returns 1, a
 * cgroup2 hierarchy returns 2, anything else 0; the mount point (octal
 * escapes such as \040 decoded) goes into dir. -EINVAL for a line that is
 * not a mounts line, -ENAMETOOLONG. */
int mgi_kfile_mount_line(const char *line, size_t len, char *dir, size_t dirlen);

/* Whether a space-separated list (cgroup.controllers, cgroup.subtree_control)
 * names `word`. */
int mgi_kfile_has_word(const char *buf, size_t len, const char *word);

#endif

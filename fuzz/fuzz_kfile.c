/* fuzz_kfile.c - libFuzzer target for the parsers of the kernel cgroup's files (memory.stat, memory.events, oom_control, /proc/PID/cgroup, mounts). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const char *const keys[] = {"total_cache", "total_shmem", "total_rss", "high",
					   "max", "oom_kill", "under_oom", "file", "shmem", "anon"};
	/* Exactly len bytes, no NUL after them: a parser reading past the
	 * end is caught by ASan. */
	char *buf = malloc(len ? len : 1);
	uint64_t vals[10], v = 5;
	uint32_t found = 0xffffffffu;
	char out[64], dir[64];
	int rc;

	if (!buf)
		return 0;
	memcpy(buf, data, len);
	memset(vals, 0xab, sizeof(vals));
	rc = mgi_kfile_keyed(buf, len, keys, 10, vals, &found);
	if (rc != 0 && rc != -EINVAL)
		abort();
	if (rc != 0 && found != 0xffffffffu)
		abort(); /* an error writes nothing */
	for (unsigned k = 0; rc == 0 && k < 10; k++)
		if (!(found & (1u << k)) && vals[k] != 0xababababababababULL)
			abort(); /* a key not found is left alone */
	rc = mgi_kfile_u64(buf, len, &v);
	if (rc != 0 && (rc != -EINVAL || v != 5))
		abort();
	for (int version = 1; version <= 2; version++) {
		memset(out, 'x', sizeof(out));
		rc = mgi_kfile_proc_cgroup(buf, len, version, out, sizeof(out));
		if (rc == 0 && (out[0] != '/' || !memchr(out, '\0', sizeof(out))))
			abort();
		if (rc != 0 && rc != -ENOENT && rc != -EINVAL && rc != -ENAMETOOLONG)
			abort();
	}
	rc = mgi_kfile_mount_line(buf, len, dir, sizeof(dir));
	if (rc < -ENAMETOOLONG && rc != -EINVAL)
		abort();
	if (rc >= 0 && (rc > 2 || !memchr(dir, '\0', sizeof(dir))))
		abort();
	(void)mgi_kfile_has_word(buf, len, "memory");
	free(buf);
	return 0;
}

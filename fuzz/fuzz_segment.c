/* fuzz_segment.c - libFuzzer target for a segment handed back to a new
 * manager (a file in memgrpd's state directory, or a rejoining process's
 * memfd): a valid segment damaged by the input, then everything the
 * adopting manager runs on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static mgi_segment_t seg;
	unsigned char *raw = (unsigned char *)&seg;
	char err[96];

	mgi_segment_init(&seg, "web/api", 16);
	/* The input is a list of patches: 3 bytes of offset (scaled over the
	 * segment), 1 byte of length, then that many bytes written there. */
	while (len >= 4) {
		size_t off = ((size_t)data[0] << 16 | (size_t)data[1] << 8 | data[2]) %
			     sizeof(seg);
		size_t n = data[3];
		data += 4;
		len -= 4;
		if (n > len)
			n = len;
		if (n > sizeof(seg) - off)
			n = sizeof(seg) - off;
		memcpy(raw + off, data, n);
		data += n;
		len -= n;
	}
	if (!mgi_segment_valid(&seg, sizeof(seg)))
		return 0;
	/* What the tree checks before it takes a segment's group name. */
	seg.group[sizeof(seg.group) - 1] = '\0';
	if (seg.group[0] && mgi_group_name_check(seg.group, err, sizeof(err)) != 0)
		return 0;
	mgi_segment_forget_manager(&seg);
	/* Forgotten: no thresholds, nothing pending, no cooperators. */
	for (int i = 0; i < 2; i++)
		if (mgi_threshold_count(&seg.thresholds[i].set) != 0)
			abort();
	for (int l = 0; l < MGI_LISTENERS_MAX; l++)
		if (atomic_load(&seg.listeners[l].pending))
			abort();
	if (atomic_load(&seg.cooperators))
		abort();
	/* Then used as a manager and its agents use it: nothing may read or
	 * write outside it whatever the figures hold. */
	mgi_counter_path_t path = mgi_segment_path(&seg);
	if (mgi_segment_check_thresholds(&seg) != 0)
		abort(); /* nothing registered: nothing to cross */
	int largest = mgi_segment_largest(&seg), coldest = mgi_segment_coldest(&seg);
	if (largest < -1 || largest >= MGI_PROCS_MAX || coldest < -1 || coldest >= MGI_PROCS_MAX)
		abort();
	if (mgi_segment_nr_procs(&seg) > MGI_PROCS_MAX)
		abort();
	mgi_segment_count_stall(&seg, (uint64_t)seg.pgfault);
	for (int s = 0; s < MGI_PROCS_MAX; s++) {
		int32_t pid = atomic_load(&seg.procs[s].pid);
		if (pid > 0)
			mgi_segment_release(&seg, s, pid, &path);
	}
	if (mgi_segment_nr_procs(&seg) != 0)
		abort();
	return 0;
}

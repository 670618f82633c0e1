/* fuzz_statefile.c - libFuzzer target for a segment read back from memgrpd's
 * state directory: mgi_segment_check over whatever the files hold, then,
 * for what it accepts, everything the restarted manager runs on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grant.h"
#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static mgi_segment_t seg;
	unsigned char *raw = (unsigned char *)&seg;
	size_t bytes = sizeof(seg);
	char why[200];

	mgi_segment_init(&seg, "web/api", 16);
	if (len >= 1 && data[0] == 'R') {
		/* Raw: the input is the files' bytes (a short one is a
		 * truncated file), after a valid header. */
		bytes = len - 1 < sizeof(seg) ? len - 1 : sizeof(seg);
		memcpy(raw + 64, data + 1, bytes > 64 ? bytes - 64 : 0);
	} else {
		/* Patches over a valid segment: 3 bytes of offset (scaled over
		 * it), 1 byte of length, then that many bytes written there. */
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
	}
	if (mgi_segment_check(&seg, bytes, why, sizeof(why)) != 0) {
		if (!why[0] || strlen(why) >= sizeof(why))
			abort(); /* a refusal always says why */
		return 0;
	}
	/* Accepted: every slot names a plausible pid, once; what a slot holds
	 * fits the group's usage, give or take the one fault-around window
	 * mgi_segment_check allows for a charge in flight (release clamps it). */
	uint64_t usage = mgi_counter_read(&seg.acct.memory);
	for (int s = 0; s < MGI_PROCS_MAX; s++) {
		int32_t pid = atomic_load(&seg.ctl.procs[s].pid);
		/* (a spare slot, MGI_SLOT_SPARE, is a manager's own: kept for a fork) */
		if (pid == 1 || pid >= MGI_PID_MAX || pid < MGI_SLOT_SPARE)
			abort();
		if (pid > 0 && atomic_load(&seg.acct.procs[s].charged) > usage + MGI_FAULT_AROUND_MAX)
			abort();
	}
	/* Its grant against a parent's usage, as a restart places it: one
	 * above is clamped, and returning it then never uncharges the parent
	 * below what it held for others. */
	static mgi_segment_t parent;
	const uint64_t parent_usage = 1000;
	mgi_segment_init(&parent, "web", 16);
	mgi_counter_path_t ppath = mgi_segment_path(&parent), pswap = mgi_segment_swap_path(&ppath);
	mgi_counter_charge(&ppath, parent_usage);
	mgi_counter_charge(&pswap, parent_usage);
	if (atomic_load(&seg.ctl.granted) > MGI_PAGES_UNLIMITED ||
	    atomic_load(&seg.ctl.swap_granted) > MGI_PAGES_UNLIMITED)
		abort();
	if (mgi_segment_check_grant(&parent, &seg, why, sizeof(why)) != 0) {
		if (!why[0])
			abort();
		if (atomic_load(&seg.ctl.granted) > parent_usage)
			atomic_store(&seg.ctl.granted, parent_usage);
		if (atomic_load(&seg.ctl.swap_granted) > parent_usage)
			atomic_store(&seg.ctl.swap_granted, parent_usage);
		if (mgi_segment_check_grant(&parent, &seg, why, sizeof(why)) != 0)
			abort();
	}
	if (mgi_grant_return_all(&ppath, &seg.ctl.granted) > parent_usage ||
	    mgi_grant_return_all(&pswap, &seg.ctl.swap_granted) > parent_usage ||
	    mgi_counter_read(&parent.acct.memory) > parent_usage ||
	    mgi_counter_read(&parent.acct.swap) > parent_usage)
		abort();
	mgi_segment_forget_manager(&seg);
	for (int i = 0; i < 2; i++)
		if (mgi_threshold_count(&seg.ctl.thresholds[i].set) != 0)
			abort();
	mgi_counter_path_t path = mgi_segment_path(&seg);
	if (mgi_segment_check_thresholds(&seg) != 0)
		abort(); /* nothing registered: nothing to cross */
	mgi_segment_audit(&seg, 64, why, sizeof(why));
	for (int s = 0; s < MGI_PROCS_MAX; s++) {
		int32_t pid = atomic_load(&seg.ctl.procs[s].pid);
		if (pid > 0 && mgi_segment_release(&seg, s, pid, &path) < 0)
			abort();
	}
	if (mgi_segment_nr_procs(&seg) != 0)
		abort();
	return 0;
}

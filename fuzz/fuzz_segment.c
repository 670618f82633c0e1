/* fuzz_segment.c - libFuzzer target for a live segment as the manager sees
 * it: a group in use (thresholds registered, processes in their slots)
 * whose accounting part the input rewrites, as any of the group's
 * processes may, then everything the manager runs on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static void count(void *arg, const mgi_threshold_event_t *ev)
{
	(void)arg;
	if (ev->listener >= MGI_LISTENERS_MAX)
		abort(); /* only registered listeners are ever reported */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static mgi_segment_t seg, parent;
	unsigned char *acct = (unsigned char *)&seg.acct;
	char why[160];

	mgi_segment_init(&parent, "web", 16);
	mgi_segment_init(&seg, "web/api", 16);
	mgi_counter_path_t path = mgi_segment_path(&seg);
	mgi_segment_path_add(&path, &parent);
	for (int i = 0; i < 4; i++) {
		int s = mgi_segment_claim(&seg, 100 + i);
		mgi_counter_charge(&path, 10);
		atomic_store(&seg.acct.procs[s].charged, 10);
	}
	mgi_counter_charge(&(mgi_counter_path_t){.level = {&parent.acct.memory},
						  .limit = {&parent.ctl.memory}, .depth = 1},
			   25); /* web's own processes */
	for (int i = 0; i < 2; i++)
		for (uint64_t l = 0; l < 6; l++)
			mgi_threshold_register(&seg.ctl.thresholds[i].set, &seg.acct.thresholds[i],
					       10 * l + 5, l, 40);
	/* The input is a list of patches over the accounting part only: 3
	 * bytes of offset (scaled over it), 1 byte of length, then that many
	 * bytes written there. */
	while (len >= 4) {
		size_t off = ((size_t)data[0] << 16 | (size_t)data[1] << 8 | data[2]) %
			     MGI_SEGMENT_ACCT_BYTES;
		size_t n = data[3];
		data += 4;
		len -= 4;
		if (n > len)
			n = len;
		if (n > MGI_SEGMENT_ACCT_BYTES - off)
			n = MGI_SEGMENT_ACCT_BYTES - off;
		memcpy(acct + off, data, n);
		data += n;
		len -= n;
	}
	/* What agents run (they trust nothing either: the checks must stay in
	 * bounds), then the manager: an audit, then its reads. */
	mgi_segment_check_thresholds(&seg);
	for (int i = 0; i < 2; i++)
		mgi_threshold_check(&seg.ctl.thresholds[i].set, &seg.acct.thresholds[i],
				    mgi_counter_read(&seg.acct.memory), count, NULL);
	mgi_segment_audit(&seg, 64, why, sizeof(why));
	if (mgi_counter_read(&seg.acct.memory) > MGI_PAGES_UNLIMITED ||
	    mgi_counter_read(&seg.acct.swap) > MGI_PAGES_UNLIMITED)
		abort(); /* clamped */
	for (int l = 0; l < MGI_LISTENERS_MAX; l++)
		if (atomic_load(&seg.acct.pending[l]) > MGI_PENDING_MAX)
			abort();
	for (int i = 0; i < 2; i++)
		if ((uint32_t)atomic_load(&seg.acct.thresholds[i].state) >
		    mgi_threshold_count(&seg.ctl.thresholds[i].set))
			abort(); /* repaired */
	int largest = mgi_segment_largest(&seg), coldest = mgi_segment_coldest(&seg);
	if (largest < -1 || largest >= MGI_PROCS_MAX || coldest < -1 || coldest >= MGI_PROCS_MAX)
		abort();
	if (largest >= 0 && atomic_load(&seg.ctl.procs[largest].pid) < 100)
		abort(); /* a victim is always a process the manager placed */
	if (mgi_segment_nr_procs(&seg) != 4)
		abort(); /* the processes' bytes cannot add or remove one */
	/* Their exits: each release takes from web no more than web/api held. */
	uint64_t web_before = mgi_counter_read(&parent.acct.memory);
	uint64_t api_before = mgi_counter_read(&seg.acct.memory);
	for (int s = 0; s < MGI_PROCS_MAX; s++) {
		int32_t pid = atomic_load(&seg.ctl.procs[s].pid);
		if (pid > 0 && mgi_segment_release(&seg, s, pid, &path) < 0)
			abort();
	}
	if (web_before - mgi_counter_read(&parent.acct.memory) > api_before)
		abort();
	if (mgi_segment_nr_procs(&seg) != 0)
		abort();
	return 0;
}

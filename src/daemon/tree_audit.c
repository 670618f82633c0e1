/* tree_audit.c - the groups' segments checked for tampering; a truncated accounting file restored. */
#include "tree.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"
#include "tree_int.h"

/*
 * A group whose accounting file was truncated under the manager (the guard
 * patched zeros over its reads of the cut pages): the file gets its size
 * back (what was cut reads as zeros, for the group's processes too) and is
 * mapped again in place of the patch. The group goes on from those
 * figures, as one whose process wrote zeros there would: only its own
 * figures are wrong. Returns whether it was repaired, with why.
 */
static bool repair_truncated(mgi_group_node_t *n, char *why, size_t whylen)
{
	struct stat st;
	long long was;

	if (!mgi_guard_take(&n->seg->acct))
		return false;
	was = fstat(n->acctfd, &st) == 0 ? (long long)st.st_size : -1;
	if (was >= 0 && was < (long long)MGI_SEGMENT_ACCT_BYTES &&
	    ftruncate(n->acctfd, MGI_SEGMENT_ACCT_BYTES) != 0) {
		/* The patch stays: the manager reads zeros, its writes are
		 * its own; tried again at the next fault. */
		snprintf(why, whylen, "its accounting file was truncated to %lld bytes and cannot be "
			 "restored (%s)", was, strerror(errno));
		return true;
	}
	if (mmap(&n->seg->acct, MGI_SEGMENT_ACCT_BYTES, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, n->acctfd, 0) == MAP_FAILED) {
		snprintf(why, whylen, "its accounting file was truncated to %lld bytes; restored, "
			 "but it cannot be mapped again (%s)", was, strerror(errno));
		return true;
	}
	snprintf(why, whylen, "its accounting file was truncated to %lld bytes (restored to %zu: "
		 "the figures cut read as zero)", was, (size_t)MGI_SEGMENT_ACCT_BYTES);
	return true;
}

unsigned mgi_tree_audit(mgi_tree_t *t, void (*say)(void *arg, const char *msg), void *arg)
{
	unsigned told = 0;

	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		mgi_group_node_t *n = &t->node[g];
		char why[200];
		if (!n->used)
			continue;
		/* Charges in flight: a process's slot may run ahead of the
		 * counter by what it is uncharging (a large munmap). */
		uint64_t slack = (uint64_t)1024 * (mgi_segment_nr_procs(n->seg) + 1);
		unsigned bits = mgi_segment_audit(n->seg, slack, why, sizeof(why));
		if (bits & MGI_TAMPER_SLOTS) {
			/* Seen twice in a row, or it was a charge in flight. */
			unsigned again = mgi_segment_audit(n->seg, slack, NULL, 0);
			if (!(again & MGI_TAMPER_SLOTS))
				bits &= ~(unsigned)MGI_TAMPER_SLOTS;
		}
		/* Reported every time: each truncation is a new act. */
		if (repair_truncated(n, why, sizeof(why))) {
			bits = MGI_TAMPER_TRUNCATED;
			n->tampered &= ~(unsigned)MGI_TAMPER_TRUNCATED;
			mgi_segment_audit(n->seg, slack, NULL, 0);
		}
		if (!(bits & ~n->tampered))
			continue;
		n->tampered |= bits;
		mgi_tree_sayf(say, arg, "group '%s': its accounting was tampered with: %s (clamped; only this "
			       "group's figures are affected)",
		     g ? n->name : "(root)", why);
		told++;
	}
	return told;
}

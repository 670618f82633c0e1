/* tree_int.h - what the group tree's own files share (tree.c, tree_restore.c, tree_audit.c, tree_limits.c). */
#ifndef MGI_TREE_INT_H
#define MGI_TREE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "tree.h"

#define SEGMENT_PREFIX "segment-" /* the control part's file */
#define ACCOUNT_PREFIX "account-" /* the accounting part's, same suffix */

/* The accounting part's file name for a control part's. */
void mgi_tree_account_file(const char *ctl, char *out, size_t outlen);
/* say() with a printf format (messages up to 511 bytes). */
void mgi_tree_sayf(void (*say)(void *, const char *), void *arg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Maps a segment's two parts back to back; NULL with errno. */
mgi_segment_t *mgi_tree_map_pair(int ctlfd, int acctfd);
void mgi_tree_unmap_pair(mgi_segment_t *seg);
/* A segment's mapping and fds released (those that are: NULL, -1 are
 * skipped), and set to NULL and -1. */
void mgi_tree_close_parts(mgi_segment_t **seg, int *ctl, int *acct, int *ro);
/* A new group's segment into node n: files in dirfd, or memfds if -1. */
int mgi_tree_new_segment(int dirfd, mgi_group_node_t *n, const char *name,
			 uint32_t fault_around);
/* An unused node's index (not the root's), or -ENOSPC (why says so). */
int mgi_tree_free_node(const mgi_tree_t *t, char *why, size_t whylen);
/* Bytes as a count of pages for a limit (rounded down; "unlimited" and
 * UINT64_MAX stay unlimited). */
uint64_t mgi_tree_pages(uint64_t bytes);

#endif

/* kbackend.h - groups served by their kernel memory cgroup alone, with no agent (--backend kernel). */
#ifndef MGI_KBACKEND_H
#define MGI_KBACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/*
 * A group created with the kernel backend (ctl.backend) has no agent: its
 * processes run as they are (no LD_PRELOAD, no HELLO) in the group's kernel
 * memory cgroup, which the backstop makes (backstop.c) with the group's
 * limit exactly (no slack: the kernel is the accountant). The manager
 * drives the same API over it:
 *  - limits: memory.limit_in_bytes = max; memory.soft_limit_in_bytes (v1);
 *    memory.high / memory.low (v2); memsw = max + swap where the kernel
 *    accounts it; what the version lacks is refused with a message;
 *  - thresholds and pressure levels: an eventfd of the manager's on
 *    memory.usage_in_bytes through cgroup.event_control (v1), whose
 *    wake-up the manager passes on to the client's eventfd; v2 has none:
 *    usage is read every 100 ms while crossings are armed;
 *  - cooperative reclaim: asked at the same ask watermark as with the agent
 *    (90 % of the limit), armed the same way;
 *  - OOM: the backstop's (kernel's killer off, memgrp picks the largest
 *    process by RSS, the same message and event as memgrp's own OOM);
 *  - stats in memgrp's names from the kernel's files.
 * Estimate mode and the compressed store need the agent: refused.
 * Children of a kernel-backend group are kernel-backend too; a kernel-
 * backend group is created only at the top or under another one.
 */

struct mgi_manager;

/* Whether group g is served by the kernel backend. */
bool mgi_kbackend_is(const struct mgi_manager *m, int g);

/*
 * CREATE of `name` with `set`: the backend it gets (MGI_BACKEND_*: a child
 * of a kernel-backend group inherits it), or -errno with why (a mix the
 * tree cannot account, or an option the kernel backend cannot honour).
 */
int mgi_kbackend_check_create(struct mgi_manager *m, const char *name, const mgi_msg_set_t *set,
			      char *why, size_t whylen);

/*
 * Limits for kernel-backend group g: checked (what this kernel lacks is
 * refused) and written to its kernel cgroup. Call before the tree takes
 * them: an error (the kernel could not bring usage under a lower limit)
 * leaves both as they were, as far as the kernel allows. 0 or -errno, why.
 */
int mgi_kbackend_set(struct mgi_manager *m, int g, const mgi_msg_set_t *set, char *why,
		     size_t whylen);

/* The group's usage as the kernel counts it, in pages (for coop.c). */
uint64_t mgi_kbackend_usage(const struct mgi_manager *m, int g);

/*
 * Arms a crossing of `bytes` of group g's usage (memsw: memory + swap) for
 * registration ri: the manager's eventfd on the kernel's threshold. up_only:
 * passed on only when usage is at or above it after the wake-up (pressure
 * levels, the ask watermark). Returns 0 or -errno.
 */
int mgi_kbackend_arm(struct mgi_manager *m, int ri, int g, bool memsw, uint64_t bytes,
		     bool up_only);
/* Drops every crossing armed for registration ri. */
void mgi_kbackend_release(struct mgi_manager *m, int ri);
/* Handles an epoll tag of the kernel backend's; false if the tag is not one. */
bool mgi_kbackend_event(struct mgi_manager *m, uint64_t tag);
/* Drops everything (the manager ends). */
void mgi_kbackend_destroy(struct mgi_manager *m);

/* Fills the stats of kernel-backend group g in memgrp's names from the
 * kernel's figures, and the process list from its cgroup.procs. */
void mgi_kbackend_stat_msg(const struct mgi_manager *m, int g, mgi_msg_t *out);
void mgi_kbackend_stats(const struct mgi_manager *m, int g, mgi_stats_t *st);

#endif

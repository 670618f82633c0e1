/* manager.h - the group manager: segment, control socket, process bookkeeping. */
#ifndef MGI_MANAGER_H
#define MGI_MANAGER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "segment.h"

/*
 * One manager serves one group for now (memgrpd with a tree of groups is
 * future work). It owns the group's segment (a memfd), listens on the
 * control socket, gives each agent that says HELLO a slot and the segment,
 * and releases a process's slot, uncharging its pages, when the process's
 * connection closes (exit, exec, kill). It is event-driven: idle means
 * blocked in epoll_wait, zero CPU.
 */

#define MGI_MANAGER_CONNS_MAX 1024

struct mgi_conn {
	int fd;
	int slot;  /* -1 until HELLO */
	pid_t pid;
};

typedef struct mgi_manager {
	mgi_segment_t *seg;
	int segfd;
	int listen_fd;
	int epfd;
	char sock_path[108];
	struct mgi_conn conns[MGI_MANAGER_CONNS_MAX];
	unsigned nconns;
} mgi_manager_t;

typedef struct mgi_limits {
	uint64_t memory_max; /* bytes; UINT64_MAX: none */
} mgi_limits_t;

/*
 * Creates the segment for `group` with the limits and listens at sock_path
 * (its directory is created; a stale socket file is replaced, a live one is
 * refused with -EADDRINUSE). Returns 0 or -errno with a reason in err.
 */
int mgi_manager_create(mgi_manager_t *m, const char *group, const mgi_limits_t *lim,
		       uint32_t fault_around, const char *sock_path, char *err, size_t errlen);

/* Adds an fd (e.g. a signalfd) for the caller to the manager's epoll set,
 * with `tag` returned by mgi_manager_poll when it is readable. */
int mgi_manager_watch(mgi_manager_t *m, int fd, uint64_t tag);

/*
 * Waits up to timeout_ms (-1: forever) and handles what arrived. Returns
 * the tag of a caller's fd that became readable, 0 if none did, or -errno.
 */
int64_t mgi_manager_poll(mgi_manager_t *m, int timeout_ms);

/* Stops listening, closes everything, unlinks the socket. */
void mgi_manager_destroy(mgi_manager_t *m);

/* Applies a SET request. Returns 0, or -EBUSY (usage above the new limit)
 * with the reason in why. */
int mgi_manager_set(mgi_manager_t *m, const mgi_msg_set_t *set, char *why, size_t whylen);

/* The group's figures now (mgi_stats_t is in proto.h). */
void mgi_manager_stats(const mgi_segment_t *seg, mgi_stats_t *out);

/* The STAT message for the group's current figures and processes. */
void mgi_manager_stat_msg(const mgi_segment_t *seg, mgi_msg_t *out);

/* Prints the stats' "key": value pairs, comma-separated, no braces. */
#include <stdio.h>
void mgi_stats_print_json_fields(FILE *f, const mgi_stats_t *s);

/* Writes stats as one JSON object to path. Returns 0 or -errno. */
int mgi_stats_write_json(const mgi_stats_t *s, const char *path);

#endif

/* proto.c - building and validating control-socket messages. */
#include "proto.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>

#include "escape.h"
#include "page.h"
#include "size.h"
#include "victim.h"

#define FIELD(name, is_size) {#name, offsetof(mgi_stats_t, name), is_size}
const mgi_stats_field_t mgi_stats_fields[] = {
	FIELD(usage, 1),
	FIELD(max_usage, 1),
	FIELD(limit, 1),
	FIELD(failcnt, 0),
	FIELD(pgfault, 0),
	FIELD(nr_processes, 0),
	FIELD(tracked_bytes, 1),
	FIELD(untracked_bytes, 1),
	FIELD(oom_kill, 0),
	FIELD(coop_requests, 0),
	FIELD(coop_freed, 1),
	FIELD(high, 1),
	FIELD(low, 1),
	FIELD(soft, 1),
	FIELD(swappiness, 0),
	FIELD(mode, 0),
	FIELD(estimate, 1),
	FIELD(mapped, 1),
	FIELD(resident, 1),
	FIELD(slow_regions, 0),
	FIELD(fast_regions, 0),
	FIELD(mode_switches, 0),
	FIELD(mode_switch_avg_us, 0),
	FIELD(swap_usage, 1),
	FIELD(swap_max_usage, 1),
	FIELD(swap_limit, 1),
	FIELD(memsw_usage, 1),
	FIELD(staged_bytes, 1),
	FIELD(stored_pages, 0),
	FIELD(same_filled_pages, 0),
	FIELD(compressed_bytes, 1),
	FIELD(pswpout, 0),
	FIELD(pswpin, 0),
	FIELD(pgmajfault, 0),
	FIELD(pgdeactivate, 0),
	FIELD(pgactivate, 0),
	FIELD(refault, 0),
	FIELD(workingset_activate, 0),
	FIELD(swap_file_bytes, 1),
	FIELD(written_back_pages, 0),
	FIELD(reclaim_stalls, 0),
	FIELD(reclaim_stall_p50_us, 0),
	FIELD(reclaim_stall_p99_us, 0),
	FIELD(unmanaged_processes, 0),
	FIELD(kernel_usage, 1),
	FIELD(kernel_max_usage, 1),
	FIELD(kernel_limit, 1),
	FIELD(kernel_file, 1),
	FIELD(kernel_shmem, 1),
	FIELD(kernel_anon, 1),
	FIELD(backend, 0),
	FIELD(tamper_reports, 0),
	FIELD(cooperators, 0),
	FIELD(under_oom, 0),
	FIELD(oom_pauses, 0),
	FIELD(ladder_coop, 0),
	FIELD(ladder_coop_enough, 0),
	FIELD(ladder_evict, 0),
	FIELD(ladder_evict_empty, 0),
	FIELD(oom_none, 0),
	FIELD(vrange_bytes, 1),
	FIELD(vrange_purged_pages, 0),
	FIELD(ladder_purge, 0),
	FIELD(host_short, 0),
	FIELD(host_ladder_purge, 0),
	FIELD(host_ladder_coop, 0),
	FIELD(host_ladder_soft, 0),
	FIELD(host_ladder_evict, 0),
	FIELD(host_ladder_kill, 0),
	FIELD(host_ladder_dry_run, 0),
	FIELD(oom_handler_asked, 0),
	FIELD(oom_handler_kill, 0),
	FIELD(oom_handler_raise, 0),
	FIELD(oom_handler_resume, 0),
	FIELD(oom_handler_fallback, 0),
	FIELD(thp_huge_pages, 0),
	FIELD(thp_promotions, 0),
	FIELD(thp_demotions, 0),
	FIELD(thp_fill_bytes, 1),
	FIELD(thp_share, 0),
	FIELD(thp_compactions, 0),
	FIELD(thp_compact_cpu_us, 0),
	{NULL, 0, 0},
};
#undef FIELD


size_t mgi_stats_json_fields(const mgi_stats_t *s, char *buf, size_t len)
{
	size_t at = 0;

	if (len)
		buf[0] = '\0';
	for (const mgi_stats_field_t *fl = mgi_stats_fields; fl->name; fl++)
		mgi_text_put(buf, len, &at, "%s\"%s\": %llu", fl == mgi_stats_fields ? "" : ", ", fl->name,
		    (unsigned long long)mgi_stats_get(s, fl));
	/* bucket i counts the direct-reclaim stalls shorter than 2^i us */
	mgi_text_put(buf, len, &at, ", \"reclaim_stall_hist\": [");
	for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
		mgi_text_put(buf, len, &at, "%s%llu", b ? ", " : "", (unsigned long long)s->reclaim_hist[b]);
	mgi_text_put(buf, len, &at, "]");
	/* the same buckets for the restores of evicted pages at their faults */
	mgi_text_put(buf, len, &at, ", \"restore_fault_hist\": [");
	for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
		mgi_text_put(buf, len, &at, "%s%llu", b ? ", " : "", (unsigned long long)s->restore_hist[b]);
	mgi_text_put(buf, len, &at, "], \"restore_fault_ns\": %llu", (unsigned long long)s->restore_ns);
	/* and the notifications' latency */
	mgi_text_put(buf, len, &at, ", \"notify_latency_hist\": [");
	for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
		mgi_text_put(buf, len, &at, "%s%llu", b ? ", " : "", (unsigned long long)s->notify_hist[b]);
	mgi_text_put(buf, len, &at, "], \"notify_latency_ns\": %llu", (unsigned long long)s->notify_ns);
	return at;
}

void mgi_stats_stall_quantiles(mgi_stats_t *s)
{
	uint64_t total = 0, seen = 0;

	for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
		total += s->reclaim_hist[b];
	s->reclaim_stalls = total;
	s->reclaim_stall_p50_us = s->reclaim_stall_p99_us = 0;
	for (int b = 0; b < MGI_RECLAIM_BUCKETS && total; b++) {
		seen += s->reclaim_hist[b];
		if (!s->reclaim_stall_p50_us && seen * 2 >= total)
			s->reclaim_stall_p50_us = 1ULL << b;
		if (seen * 100 >= total * 99) {
			s->reclaim_stall_p99_us = 1ULL << b;
			break;
		}
	}
}

static size_t size_of_type(int type)
{
	switch (type) {
	case MGI_MSG_HELLO: return sizeof(mgi_msg_hello_t);
	case MGI_MSG_WELCOME: return sizeof(mgi_msg_welcome_t);
	case MGI_MSG_MOVE: return sizeof(mgi_msg_welcome_t);
	case MGI_MSG_ATTACH: return sizeof(mgi_msg_attach_t);
	case MGI_MSG_REGISTER: return sizeof(mgi_msg_register_t);
	case MGI_MSG_UNREGISTER: return sizeof(mgi_msg_unregister_t);
	case MGI_MSG_COOP_DONE: return sizeof(mgi_msg_unregister_t);
	case MGI_MSG_UFFD_FEATURES: return sizeof(mgi_msg_unregister_t);
	case MGI_MSG_OOM_KILL: return sizeof(mgi_msg_oom_t);
	case MGI_MSG_STAT_REQ: return sizeof(mgi_msg_group_t);
	case MGI_MSG_RM: return sizeof(mgi_msg_group_t);
	case MGI_MSG_PLACE: return sizeof(mgi_msg_group_t);
	case MGI_MSG_LIST_REQ: return sizeof(mgi_msg_group_t);
	case MGI_MSG_LIST: return sizeof(mgi_msg_list_t);
	case MGI_MSG_CREATE: return sizeof(mgi_msg_set_t);
	case MGI_MSG_OOM_REQ: return sizeof(mgi_msg_oom_req_t);
	case MGI_MSG_RECLAIM_REQ: return sizeof(mgi_msg_reclaim_req_t);
	case MGI_MSG_EVICT: return sizeof(mgi_msg_evict_t);
	case MGI_MSG_EVICTED: return sizeof(mgi_msg_evict_t);
	case MGI_MSG_GRANT: return sizeof(mgi_msg_grant_t);
	case MGI_MSG_GRANTED: return sizeof(mgi_msg_grant_t);
	case MGI_MSG_OOM_PRIORITY: return sizeof(mgi_msg_oom_priority_t);
	case MGI_MSG_SPARE: return sizeof(mgi_msg_spare_t);
	case MGI_MSG_FORKED: return sizeof(mgi_msg_spare_t);
	case MGI_MSG_OOM_RECORD_REQ: return sizeof(mgi_msg_oom_record_req_t);
	case MGI_MSG_OOM_RECORD: return sizeof(mgi_msg_oom_record_t);
	case MGI_MSG_OOM_ACT: return sizeof(mgi_msg_oom_act_t);
	case MGI_MSG_OOM_HANDLER: return sizeof(mgi_msg_group_t);
	case MGI_MSG_OOM_SNAPSHOT: return sizeof(mgi_msg_oom_snapshot_t);
	case MGI_MSG_OOM_DECISION: return sizeof(mgi_msg_oom_decision_t);
	case MGI_MSG_STAT: return sizeof(mgi_msg_stat_t);
	case MGI_MSG_SET: return sizeof(mgi_msg_set_t);
	case MGI_MSG_REPLY: return sizeof(mgi_msg_reply_t);
	default: return 0;
	}
}

void mgi_msg_init(mgi_msg_t *m, enum mgi_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->hdr.magic = MGI_MSG_MAGIC;
	m->hdr.version = MGI_PROTO_VERSION;
	m->hdr.type = (uint16_t)type;
	m->hdr.len = (uint32_t)size_of_type(type);
}

void mgi_msg_reply_vfmt(mgi_msg_t *m, int status, const char *fmt, va_list ap)
{
	mgi_msg_init(m, MGI_MSG_REPLY);
	m->reply.status = status;
	vsnprintf(m->reply.message, sizeof(m->reply.message), fmt, ap);
}

static int bad(int code, char *err, size_t errlen, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", why);
	return code;
}

/* A group field: NUL-terminated in its array, and "" (the default group)
 * or a valid name. */
static int check_group(char *g, int may_be_default, char *err, size_t errlen)
{
	char why[96];

	if (memchr(g, '\0', MGI_GROUP_NAME_MAX) == NULL)
		return bad(-EINVAL, err, errlen, "group name not terminated");
	if (!*g)
		return may_be_default ? 0 : bad(-EINVAL, err, errlen, "no group named");
	if (mgi_group_name_check(g, why, sizeof(why)) != 0)
		return bad(-EINVAL, err, errlen, why);
	return 0;
}

/* A byte field of SET/CREATE: kept, no limit, or what a counter holds. */
static bool limit_ok(uint64_t bytes)
{
	return bytes == MGI_SET_KEEP || bytes == MGI_SET_UNLIMITED || mgi_size_is_limit(bytes);
}

static bool limited(uint64_t bytes)
{
	return bytes != MGI_SET_KEEP && bytes != MGI_SET_UNLIMITED;
}

/* The OOM settings of SET/CREATE: only the fields oom_set names are read,
 * but every field is in range (what is not given is 0). The regexes'
 * syntax is checked where they are compiled (the manager: regcomp). */
static int check_oom(const mgi_msg_set_t *s, char *err, size_t errlen)
{
	if (s->oom_set & ~MGI_OOM_SET_ALL)
		return bad(-EINVAL, err, errlen, "oom settings: unknown flags");
	if (s->oom_policy > MGI_OOM_POLICY_MAX)
		return bad(-EINVAL, err, errlen,
			   "oom policy is largest (0), newest, oldest, priority or growth (4)");
	if (s->oom_scope > MGI_OOM_SCOPE_GROUP)
		return bad(-EINVAL, err, errlen, "oom kill scope is process (0) or group (1)");
	if ((s->oom_set & MGI_OOM_SET_SIGNAL) ? s->oom_signal != SIGKILL && s->oom_signal != SIGTERM
					      : s->oom_signal != 0)
		return bad(-EINVAL, err, errlen, "oom signal is KILL (9) or TERM (15)");
	if (s->oom_grace_ms > MGI_OOM_GRACE_MAX_MS ||
	    (s->oom_grace_ms && s->oom_signal != SIGTERM))
		return bad(-EINVAL, err, errlen,
			   "oom grace: up to 5 s, and only with signal TERM (KILL has no grace)");
	if ((s->oom_set & MGI_OOM_SET_DISABLE) ? s->oom_kill_disable > 1 : s->oom_kill_disable != 0)
		return bad(-EINVAL, err, errlen, "oom kill disable is 0 or 1 (and only with its flag)");
	if (!memchr(s->oom_prefer, '\0', sizeof(s->oom_prefer)) ||
	    !memchr(s->oom_avoid, '\0', sizeof(s->oom_avoid)))
		return bad(-EINVAL, err, errlen, "oom regex not terminated");
	if (!memchr(s->oom_prekill, '\0', sizeof(s->oom_prekill)) || s->oom_prekill_reserved)
		return bad(-EINVAL, err, errlen, "oom pre-kill command not terminated, or a reserved field set");
	if ((s->oom_set & MGI_OOM_SET_PREKILL) && s->oom_prekill[0]
		    ? s->oom_prekill_timeout_ms < 1 || s->oom_prekill_timeout_ms > MGI_OOM_PREKILL_TIMEOUT_MAX_MS
		    : s->oom_prekill_timeout_ms != 0 || s->oom_prekill[0])
		return bad(-EINVAL, err, errlen,
			   "oom pre-kill: a command with a timeout of 1 ms to 4 s (none without one)");
	if ((s->oom_set & MGI_OOM_SET_HANDLER)
		    ? s->oom_handler_timeout_ms < 1 || s->oom_handler_timeout_ms > MGI_OOM_HANDLER_TIMEOUT_MAX_MS
		    : s->oom_handler_timeout_ms != 0)
		return bad(-EINVAL, err, errlen, "oom handler timeout: 1 ms to 4 s (and only with its flag)");
	if (s->oom_handler_reserved || (!(s->oom_set & MGI_OOM_SET_RESERVE) && s->oom_reserve) ||
	    s->oom_reserve > MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE)
		return bad(-EINVAL, err, errlen, "oom reserve: a size (and only with its flag), or a reserved field set");
	return 0;
}

static int check_limits(const mgi_msg_set_t *s, char *err, size_t errlen)
{
	if (s->memory_max != MGI_SET_KEEP && s->memory_max != MGI_SET_UNLIMITED &&
	    s->memory_max < MGI_PAGE_SIZE)
		return bad(-EINVAL, err, errlen, "memory_max below one page");
	if (!limit_ok(s->memory_max) || !limit_ok(s->memory_high) || !limit_ok(s->memory_low) ||
	    !limit_ok(s->memory_soft) || !limit_ok(s->swap_max))
		return bad(-ERANGE, err, errlen,
			   "a limit beyond what the counters hold (8E less a page): no limit is its own value");
	/* Within one request, high and low may not exceed the hard limit
	 * (memcg v2 accepts and ignores them; here it is a clear error). A
	 * later lower max leaves them above it, inert. */
	if (s->memory_max != MGI_SET_KEEP && s->memory_max != MGI_SET_UNLIMITED &&
	    ((limited(s->memory_high) && s->memory_high > s->memory_max) ||
	     (limited(s->memory_low) && s->memory_low > s->memory_max)))
		return bad(-EINVAL, err, errlen, "memory_high and memory_low may not exceed memory_max");
	if (s->swappiness != MGI_SET_KEEP && s->swappiness > 100)
		return bad(-EINVAL, err, errlen, "swappiness is 0 to 100");
	if (s->mode != MGI_SET_KEEP && s->mode > MGI_MODE_ESTIMATE)
		return bad(-EINVAL, err, errlen, "mode is exact (0) or estimate (1)");
	if (s->backend != MGI_SET_KEEP && s->backend > MGI_BACKEND_KERNEL)
		return bad(-EINVAL, err, errlen, "backend is agent (0) or kernel (1)");
	if (s->thp_set & ~MGI_THP_SET_ALL ||
	    ((s->thp_set & MGI_THP_SET_MODE) ? s->thp_mode > MGI_THP_ALWAYS : s->thp_mode != 0) ||
	    ((s->thp_set & MGI_THP_SET_THRESHOLD) ? s->thp_threshold < 1 || s->thp_threshold > 100
						   : s->thp_threshold != 0) ||
	    ((s->thp_set & MGI_THP_SET_RATE) ? s->thp_rate > MGI_THP_RATE_MAX : s->thp_rate != 0) ||
	    ((s->thp_set & MGI_THP_SET_WEIGHT) ? s->thp_weight < 1 || s->thp_weight > 10000
						: s->thp_weight != 0) || s->thp_reserved)
		return bad(-EINVAL, err, errlen, "huge pages: mode never/ingens/always (0-2), threshold "
						 "1 to 100, rate at most 1000000, weight 1 to 10000, each "
						 "only with its flag");
	/* high, low, soft and swap_max: any byte count (0 is meaningful) */
	return check_oom(s, err, errlen);
}

/* OOM_SNAPSHOT: figures in range, names terminated (cut at their end). */
static int check_snapshot(mgi_msg_oom_snapshot_t *s, char *err, size_t errlen)
{
	if (s->seq == 0)
		return bad(-EINVAL, err, errlen, "oom snapshot: sequence numbers start at 1");
	if (s->nprocs > MGI_OOMH_PROCS_MAX || s->total < s->nprocs)
		return bad(-EINVAL, err, errlen, "oom snapshot: process count out of range");
	if (s->timeout_ms < 1 || s->timeout_ms > MGI_OOM_HANDLER_TIMEOUT_MAX_MS)
		return bad(-EINVAL, err, errlen, "oom snapshot: timeout is 1 ms to 4 s");
	for (uint32_t i = 0; i < s->nprocs; i++) {
		mgi_oomh_proc_t *p = &s->procs[i];
		if (p->pid <= 0 || p->pid >= MGI_PID_MAX)
			return bad(-EINVAL, err, errlen, "oom snapshot: a pid out of range");
		if (p->priority < MGI_OOM_PRIORITY_MIN || p->priority > MGI_OOM_PRIORITY_MAX)
			return bad(-EINVAL, err, errlen, "oom snapshot: a priority out of range");
		p->comm[MGI_COMM_MAX - 1] = '\0';
		p->cmdline[MGI_OOMH_CMDLINE_MAX - 1] = '\0';
	}
	return check_group(s->group, 0, err, errlen);
}

/* OOM_DECISION: one action, its fields and no other's. */
static int check_decision(const mgi_msg_oom_decision_t *d, char *err, size_t errlen)
{
	if (d->seq == 0)
		return bad(-EINVAL, err, errlen, "oom decision: sequence numbers start at 1");
	if (d->action < MGI_OOMH_KILL || d->action > MGI_OOMH_RESUME)
		return bad(-EINVAL, err, errlen, "oom decision: kill (1), raise (2) or resume (3)");
	if (d->action == MGI_OOMH_KILL ? d->npids < 1 || d->npids > MGI_OOMH_PIDS_MAX : d->npids != 0)
		return bad(-EINVAL, err, errlen, "oom decision: kill names 1 to 16 pids, the others none");
	for (uint32_t i = 0; i < MGI_OOMH_PIDS_MAX; i++)
		if (i < d->npids ? d->pids[i] <= 0 || d->pids[i] >= MGI_PID_MAX : d->pids[i] != 0)
			return bad(-EINVAL, err, errlen, "oom decision: a pid out of range, or one past npids");
	if (d->action == MGI_OOMH_RAISE
		    ? d->limit != MGI_SET_UNLIMITED && (d->limit < MGI_PAGE_SIZE || !mgi_size_is_limit(d->limit))
		    : d->limit != 0)
		return bad(-EINVAL, err, errlen, "oom decision: raise names a limit (a page or more), the others none");
	return 0;
}

/* Over 100 lines on purpose: one switch over the message types, each case
 * the few checks its fields need; a new message is one case here, and the
 * fuzz target (fuzz_msg) covers the one function. */
int mgi_msg_parse(const void *buf, size_t len, mgi_msg_t *out, char *err, size_t errlen)
{
	mgi_msg_hdr_t h;
	size_t want;

	if (!buf || len < sizeof(h))
		return bad(-EPROTO, err, errlen, "message shorter than its header");
	memcpy(&h, buf, sizeof(h));
	if (h.magic != MGI_MSG_MAGIC)
		return bad(-EPROTO, err, errlen, "bad magic: not a memgrp message");
	if (h.version != MGI_PROTO_VERSION)
		return bad(-EPROTO, err, errlen, "protocol version mismatch");
	want = size_of_type(h.type);
	if (!want)
		return bad(-EPROTO, err, errlen, "unknown message type");
	if (h.len != len || len != want)
		return bad(-EPROTO, err, errlen, "message length does not match its type");
	memset(out, 0, sizeof(*out));
	memcpy(out, buf, len);
	switch (h.type) {
	case MGI_MSG_HELLO:
		if (out->hello.pid <= 0)
			return bad(-EINVAL, err, errlen, "hello: pid must be positive");
		if (out->hello.slot < -1 || out->hello.slot >= MGI_PROCS_MAX)
			return bad(-EINVAL, err, errlen, "hello: slot out of range");
		return check_group(out->hello.group, 1, err, errlen) ?: h.type;
	case MGI_MSG_REGISTER:
		if (out->reg.kind < MGI_REG_THRESHOLD || out->reg.kind > MGI_REG_LADDER)
			return bad(-EINVAL, err, errlen, "register: unknown kind");
		if (out->reg.counter > MGI_WATCH_MEMSW)
			return bad(-EINVAL, err, errlen, "register: counter is memory or memsw");
		if (out->reg.kind == MGI_REG_THRESHOLD &&
		    (out->reg.threshold == 0 || out->reg.threshold >= (uint64_t)MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE))
			return bad(-EINVAL, err, errlen, "register: threshold must be above 0 and finite");
		if (out->reg.kind == MGI_REG_COOPERATE && out->reg.level > MGI_COOP_PRIORITY_MAX)
			return bad(-EINVAL, err, errlen, "register: priority is 0 to 1000");
		if (out->reg.kind != MGI_REG_COOPERATE && out->reg.level > MGI_PRESSURE_CRITICAL)
			return bad(-EINVAL, err, errlen, "register: pressure level is low, medium or critical");
		if (out->reg.mode > MGI_PRESSURE_HIERARCHY)
			return bad(-EINVAL, err, errlen, "register: pressure mode is local or hierarchy");
		return check_group(out->reg.group, 1, err, errlen) ?: h.type;
	case MGI_MSG_UNREGISTER:
	case MGI_MSG_COOP_DONE:
		if (out->unreg.id == 0)
			return bad(-EINVAL, err, errlen, "unregister: id 0 is never given");
		break;
	case MGI_MSG_UFFD_FEATURES:
		if (out->unreg.id == 0 || out->unreg.reserved != 0)
			return bad(-EINVAL, err, errlen, "uffd features: none asked, or a reserved field set");
		break;
	case MGI_MSG_ATTACH:
		if (out->attach.pid <= 0)
			return bad(-EINVAL, err, errlen, "attach: pid must be positive");
		return check_group(out->attach.group, 1, err, errlen) ?: h.type;
	case MGI_MSG_WELCOME:
	case MGI_MSG_MOVE:
		if (out->welcome.slot < 0 || out->welcome.slot >= MGI_PROCS_MAX)
			return bad(-EINVAL, err, errlen, "welcome: slot out of range");
		if (out->welcome.nsegments < 1 || out->welcome.nsegments > MGI_DEPTH_MAX)
			return bad(-EINVAL, err, errlen, "welcome: segment count out of range");
		return check_group(out->welcome.group, 1, err, errlen) ?: h.type;
	case MGI_MSG_OOM_REQ:
		if (out->oom_req.pid <= 0)
			return bad(-EINVAL, err, errlen, "oom request: pid must be positive");
		if (out->oom_req.level >= MGI_DEPTH_MAX)
			return bad(-EINVAL, err, errlen, "oom request: level out of range");
		break;
	case MGI_MSG_STAT_REQ:
	case MGI_MSG_RM:
	case MGI_MSG_PLACE:
		return check_group(out->group.group, h.type != MGI_MSG_RM, err, errlen) ?: h.type;
	case MGI_MSG_LIST_REQ:
		break;
	case MGI_MSG_LIST:
		if (out->list.count > MGI_LIST_MAX)
			return bad(-EINVAL, err, errlen, "list: too many names");
		for (uint32_t i = 0; i < out->list.count; i++)
			if (check_group(out->list.names[i], 1, err, errlen) != 0)
				return -EINVAL;
		break;
	case MGI_MSG_CREATE:
		return check_limits(&out->set, err, errlen) ?:
		       check_group(out->set.group, 0, err, errlen) ?: h.type;
	case MGI_MSG_RECLAIM_REQ:
		if (out->reclaim_req.pid <= 0)
			return bad(-EINVAL, err, errlen, "reclaim request: pid must be positive");
		if (out->reclaim_req.level >= MGI_DEPTH_MAX)
			return bad(-EINVAL, err, errlen, "reclaim request: level out of range");
		if (out->reclaim_req.pages == 0 || out->reclaim_req.pages > MGI_PAGES_UNLIMITED)
			return bad(-EINVAL, err, errlen, "reclaim request: pages out of range");
		break;
	case MGI_MSG_EVICT:
	case MGI_MSG_EVICTED:
		if (out->evict.pages > MGI_PAGES_UNLIMITED || out->evict.freed > MGI_PAGES_UNLIMITED)
			return bad(-EINVAL, err, errlen, "evict: pages out of range");
		break;
	case MGI_MSG_GRANT:
		if (out->grant.pid <= 0)
			return bad(-EINVAL, err, errlen, "grant: pid must be positive");
		if (out->grant.swap > 1)
			return bad(-EINVAL, err, errlen, "grant: swap must be 0 or 1");
		if (out->grant.pages == 0 || out->grant.pages > MGI_GRANT_ASK_MAX)
			return bad(-EINVAL, err, errlen, "grant: pages out of range (1 to two fault-around windows)");
		break;
	case MGI_MSG_GRANTED:
		if (out->grant.swap > 1)
			return bad(-EINVAL, err, errlen, "granted: swap must be 0 or 1");
		if (out->grant.pages > MGI_PAGES_UNLIMITED)
			return bad(-EINVAL, err, errlen, "granted: pages out of range");
		if (out->grant.pages == 0 &&
		    (out->grant.refused == 0 || out->grant.refused >= MGI_DEPTH_MAX))
			return bad(-EINVAL, err, errlen, "granted: a refusal names no ancestor");
		break;
	case MGI_MSG_OOM_PRIORITY:
		if (out->oom_priority.pid < 0 || out->oom_priority.pid >= MGI_PID_MAX)
			return bad(-EINVAL, err, errlen, "oom priority: pid out of range (0: yourself)");
		if (out->oom_priority.priority < MGI_OOM_PRIORITY_MIN ||
		    out->oom_priority.priority > MGI_OOM_PRIORITY_MAX)
			return bad(-EINVAL, err, errlen, "oom priority: -1000 to 1000");
		break;
	case MGI_MSG_SPARE:
		if (out->spare.slot < -1 || out->spare.slot >= MGI_PROCS_MAX)
			return bad(-EINVAL, err, errlen, "spare: slot out of range (-1 to 511)");
		if (out->spare.pid != 0)
			return bad(-EINVAL, err, errlen, "spare: pid must be 0");
		break;
	case MGI_MSG_FORKED:
		if (out->spare.slot < 0 || out->spare.slot >= MGI_PROCS_MAX)
			return bad(-EINVAL, err, errlen, "forked: slot out of range (0 to 511)");
		if (out->spare.pid <= 1 || out->spare.pid >= MGI_PID_MAX)
			return bad(-EINVAL, err, errlen, "forked: pid out of range");
		break;
	case MGI_MSG_OOM_RECORD_REQ:
		return check_group(out->oom_record_req.group, 1, err, errlen) ?: h.type;
	case MGI_MSG_OOM_ACT:
		if (out->oom_act.action != MGI_OOM_ACT_KILL && out->oom_act.action != MGI_OOM_ACT_RESUME)
			return bad(-EINVAL, err, errlen, "oom act: kill (1) or resume (2)");
		if (out->oom_act.action == MGI_OOM_ACT_KILL
			    ? out->oom_act.pid <= 0 || out->oom_act.pid >= MGI_PID_MAX
			    : out->oom_act.pid != 0)
			return bad(-EINVAL, err, errlen, "oom act: kill names a pid, resume none");
		return check_group(out->oom_act.group, 1, err, errlen) ?: h.type;
	case MGI_MSG_OOM_HANDLER:
		return check_group(out->group.group, 1, err, errlen) ?: h.type;
	case MGI_MSG_OOM_SNAPSHOT:
		return check_snapshot(&out->oom_snapshot, err, errlen) ?: h.type;
	case MGI_MSG_OOM_DECISION:
		return check_decision(&out->oom_decision, err, errlen) ?: h.type;
	case MGI_MSG_OOM_RECORD:
		if (out->oom_record.seq == 0)
			return bad(-EINVAL, err, errlen, "oom record: sequence numbers start at 1");
		if (out->oom_record.len >= MGI_OOM_RECORD_MAX ||
		    memchr(out->oom_record.text, '\0', out->oom_record.len) != NULL ||
		    out->oom_record.text[out->oom_record.len] != '\0')
			return bad(-EINVAL, err, errlen, "oom record: text length does not match");
		break;
	case MGI_MSG_OOM_KILL:
		if (out->oom.killer <= 0 || out->oom.victim <= 0)
			return bad(-EINVAL, err, errlen, "oom: pids must be positive");
		out->oom.victim_comm[MGI_COMM_MAX - 1] = '\0';
		break;
	case MGI_MSG_SET:
		return check_limits(&out->set, err, errlen) ?:
		       check_group(out->set.group, 1, err, errlen) ?: h.type;
	case MGI_MSG_REPLY:
		if (out->reply.status > 0)
			return bad(-EINVAL, err, errlen, "reply: status must be 0 or negative");
		out->reply.message[sizeof(out->reply.message) - 1] = '\0';
		break;
	case MGI_MSG_STAT:
		if (out->stat.nprocs > MGI_STAT_PROCS_MAX)
			return bad(-EINVAL, err, errlen, "stat: too many processes");
		if (check_group(out->stat.group, 1, err, errlen) != 0)
			return -EINVAL;
		for (uint32_t i = 0; i < out->stat.nprocs; i++)
			out->stat.procs[i].comm[MGI_COMM_MAX - 1] = '\0';
		break;
	}
	return h.type;
}

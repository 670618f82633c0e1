/* promtext.c - groups' figures as Prometheus text exposition; the metrics listen address parser. */
#include "promtext.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "counter.h"
#include "escape.h"
#include "page.h"

enum { GAUGE, COUNTER };
/* How a value is shown: as it is, +Inf at the unlimited mark (limits). */
enum { PLAIN, LIMIT };

typedef struct family {
	const char *name; /* without the memgrp_ prefix */
	int type;
	int show;
	size_t offset;    /* in mgi_stats_t, or PRESSURE */
	const char *help;
} family_t;

#define AT(f) offsetof(mgi_stats_t, f)
#define PRESSURE ((size_t)-1) /* computed from usage and limit */

/* Prometheus names: base units (bytes), _total for counters; the stats'
 * own names where they are already those (memcg's words otherwise). */
static const family_t families[] = {
	{"usage_bytes", GAUGE, PLAIN, AT(usage), "Memory charged to the group and its subtree."},
	{"max_usage_bytes", GAUGE, PLAIN, AT(max_usage), "Highest usage seen (memory.max_usage_in_bytes)."},
	{"limit_bytes", GAUGE, LIMIT, AT(limit), "Hard limit (memory.max); +Inf when none."},
	{"high_bytes", GAUGE, LIMIT, AT(high), "Background reclaim starts above it (memory.high); +Inf when none."},
	{"low_bytes", GAUGE, PLAIN, AT(low), "Protected from ancestors' reclaim below it (memory.low)."},
	{"soft_limit_bytes", GAUGE, LIMIT, AT(soft), "Reclaimed to first when the host is short; +Inf when none."},
	{"swap_usage_bytes", GAUGE, PLAIN, AT(swap_usage), "Pages of the group held in compressed stores, uncompressed size."},
	{"swap_limit_bytes", GAUGE, LIMIT, AT(swap_limit), "Swap limit; +Inf when none."},
	{"memsw_usage_bytes", GAUGE, PLAIN, AT(memsw_usage), "Memory plus swap."},
	{"compressed_bytes", GAUGE, PLAIN, AT(compressed_bytes), "Size of the compressed stores' contents."},
	{"staged_bytes", GAUGE, PLAIN, AT(staged_bytes), "Pages in staging areas, second chance before compression."},
	{"swap_file_bytes", GAUGE, PLAIN, AT(swap_file_bytes), "Bytes written back to swap files."},
	{"tracked_bytes", GAUGE, PLAIN, AT(tracked_bytes), "Anonymous memory the agents track."},
	{"untracked_bytes", GAUGE, PLAIN, AT(untracked_bytes), "Anonymous memory the agents see but do not track."},
	{"processes", GAUGE, PLAIN, AT(nr_processes), "Processes with the agent in the group."},
	{"unmanaged_processes", GAUGE, PLAIN, AT(unmanaged_processes), "Processes in the group's kernel cgroup without an agent."},
	{"cooperators", GAUGE, PLAIN, AT(cooperators), "Clients registered to free memory when asked."},
	{"pressure_level", GAUGE, PLAIN, PRESSURE, "Usage against the group's own limit: 0 none, 1 low (75%), 2 medium (90%), 3 critical (98%)."},
	{"kernel_usage_bytes", GAUGE, PLAIN, AT(kernel_usage), "Usage of the group's kernel memory cgroup (0 without one)."},
	{"kernel_limit_bytes", GAUGE, LIMIT, AT(kernel_limit), "Limit of the group's kernel memory cgroup; +Inf when none."},
	{"limit_hits_total", COUNTER, PLAIN, AT(failcnt), "Charges the limit refused (memory.failcnt)."},
	{"page_faults_total", COUNTER, PLAIN, AT(pgfault), "Page faults the agents resolved (pgfault)."},
	{"major_faults_total", COUNTER, PLAIN, AT(pgmajfault), "Faults that restored a page from a compressed store (pgmajfault)."},
	{"swapout_pages_total", COUNTER, PLAIN, AT(pswpout), "Pages evicted into compressed stores (pswpout)."},
	{"swapin_pages_total", COUNTER, PLAIN, AT(pswpin), "Pages restored from compressed stores (pswpin)."},
	{"written_back_pages_total", COUNTER, PLAIN, AT(written_back_pages), "Pages written from a store to its swap file."},
	{"oom_kills_total", COUNTER, PLAIN, AT(oom_kill), "Processes killed at the group's limit."},
	{"coop_requests_total", COUNTER, PLAIN, AT(coop_requests), "Requests sent to cooperating clients."},
	{"coop_freed_bytes_total", COUNTER, PLAIN, AT(coop_freed), "Bytes cooperating clients freed when asked."},
	{"mode_switches_total", COUNTER, PLAIN, AT(mode_switches), "Estimate mode: regions turned slow or fast."},
	{"under_oom", GAUGE, PLAIN, AT(under_oom), "1 while the group is paused at OOM (--oom-kill-disable)."},
	{"oom_pauses_total", COUNTER, PLAIN, AT(oom_pauses), "OOM pauses (--oom-kill-disable) here and below."},
	{"oom_none_total", COUNTER, PLAIN, AT(oom_none), "OOM actions that found no process to kill."},
	{"ladder_coop_total", COUNTER, PLAIN, AT(ladder_coop), "Cooperative episodes: cooperating clients asked to free memory."},
	{"ladder_coop_enough_total", COUNTER, PLAIN, AT(ladder_coop_enough), "Cooperative episodes that freed what was needed."},
	{"ladder_evict_total", COUNTER, PLAIN, AT(ladder_evict), "Eviction episodes for refused charges."},
	{"ladder_evict_empty_total", COUNTER, PLAIN, AT(ladder_evict_empty), "Eviction episodes that freed nothing."},
	{"host_short_total", COUNTER, PLAIN, AT(host_short), "Host shortages seen by memgrpd (root only)."},
	{"host_ladder_purge_total", COUNTER, PLAIN, AT(host_ladder_purge), "Host ladder: volatile ranges purged (root only)."},
	{"host_ladder_coop_total", COUNTER, PLAIN, AT(host_ladder_coop), "Host ladder: cooperating clients asked (root only)."},
	{"host_ladder_soft_total", COUNTER, PLAIN, AT(host_ladder_soft), "Host ladder: groups above their soft limit or memory.low evicted (root only)."},
	{"host_ladder_evict_total", COUNTER, PLAIN, AT(host_ladder_evict), "Host ladder: groups evicted (root only)."},
	{"host_ladder_kill_total", COUNTER, PLAIN, AT(host_ladder_kill), "Host ladder: kills (root only)."},
	{"host_ladder_dry_run_total", COUNTER, PLAIN, AT(host_ladder_dry_run), "Host ladder: steps --dry-run logged instead of taking (root only)."},
	{"vrange_bytes", GAUGE, PLAIN, AT(vrange_bytes), "Memory made volatile (mg_vrange) and not purged yet."},
	{"vrange_purged_pages_total", COUNTER, PLAIN, AT(vrange_purged_pages), "Volatile pages purged under pressure (mg_vrange)."},
	{"ladder_purge_total", COUNTER, PLAIN, AT(ladder_purge), "Purge episodes: volatile pages purged first (the ladder's first rung)."},
	{"oom_handler_asked_total", COUNTER, PLAIN, AT(oom_handler_asked), "OOMs sent to the group's user-space OOM handler."},
	{"oom_handler_kill_total", COUNTER, PLAIN, AT(oom_handler_kill), "OOM handler decisions: kill."},
	{"oom_handler_raise_total", COUNTER, PLAIN, AT(oom_handler_raise), "OOM handler decisions: raise the limit."},
	{"oom_handler_resume_total", COUNTER, PLAIN, AT(oom_handler_resume), "OOM handler decisions: resume."},
	{"oom_handler_fallback_total", COUNTER, PLAIN, AT(oom_handler_fallback), "OOMs where the policy acted instead of the handler (late, gone, refused)."},
	{"thp_huge_pages", GAUGE, PLAIN, AT(thp_huge_pages), "Huge pages (2 MiB) the group's processes hold, here and below."},
	{"thp_promotions_total", COUNTER, PLAIN, AT(thp_promotions), "Blocks promoted to huge pages, here and below."},
	{"thp_demotions_total", COUNTER, PLAIN, AT(thp_demotions), "Huge pages split again (a page of them went), here and below."},
	{"thp_fill_bytes_total", COUNTER, PLAIN, AT(thp_fill_bytes), "Bytes filled with zeros to promote blocks (bloat), here and below."},
	{"thp_compactions_total", COUNTER, PLAIN, AT(thp_compactions), "Compactions memgrpd asked of the kernel for huge pages (root only)."},
	{"thp_share", GAUGE, PLAIN, AT(thp_share), "Huge pages the group's subtree is entitled to (--thp-weight, idle penalty)."},
};


/* Appends n bytes of s (what fits, NUL-terminated), counting all. The
 * samples are written with this and put_u64, not printf: a scrape of 100
 * groups is some 3000 lines, and printf was half of its CPU (perf). */
static void put_mem(char *buf, size_t len, size_t *at, const char *s, size_t n)
{
	if (*at < len) {
		size_t room = len - *at - 1, k = n < room ? n : room;
		memcpy(buf + *at, s, k);
		buf[*at + k] = '\0';
	}
	*at += n;
}

static void put_str(char *buf, size_t len, size_t *at, const char *s)
{
	put_mem(buf, len, at, s, strlen(s));
}

static void put_u64(char *buf, size_t len, size_t *at, uint64_t v)
{
	char d[24];
	int i = (int)sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put_mem(buf, len, at, d + i, sizeof(d) - (size_t)i);
}

/* The label value: the text format escapes backslash, quote and newline.
 * Group names cannot hold them (core/group.c), but the figures' source is
 * a segment other processes write, so the renderer does not rely on it. */
static void put_label(char *buf, size_t len, size_t *at, const char *name)
{
	if (!*name) {
		put_mem(buf, len, at, "/", 1);
		return;
	}
	for (const char *p = name; *p;) {
		size_t plain = strcspn(p, "\\\"\n");
		put_mem(buf, len, at, p, plain);
		p += plain;
		if (!*p)
			break;
		put_mem(buf, len, at, *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : "\\n", 2);
		p++;
	}
}

/* name{group="LABEL" (the caller closes it) */
static void put_series(char *buf, size_t len, size_t *at, const char *name, const char *suffix,
		       const char *group)
{
	put_mem(buf, len, at, "memgrp_", 7);
	put_str(buf, len, at, name);
	put_str(buf, len, at, suffix);
	put_mem(buf, len, at, "{group=\"", 8);
	put_label(buf, len, at, group);
}

unsigned mgi_prom_pressure(uint64_t usage, uint64_t limit)
{
	static const unsigned pct[] = {98, 90, 75}; /* notify.c's levels, highest first */

	if (limit == 0 || limit >= (uint64_t)MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE)
		return 0;
	for (unsigned i = 0; i < 3; i++)
		/* usage >= limit * pct / 100, without overflow */
		if ((unsigned __int128)usage * 100 >= (unsigned __int128)limit * pct[i])
			return 3 - i;
	return 0;
}

const char *mgi_prom_pressure_name(unsigned level)
{
	static const char *const names[] = {"none", "low", "medium", "critical"};
	return level < 4 ? names[level] : "?";
}

static void put_value(char *buf, size_t len, size_t *at, const family_t *f, const mgi_prom_group_t *g)
{
	uint64_t v;

	if (f->offset == PRESSURE)
		v = mgi_prom_pressure(g->st->usage, g->st->limit);
	else
		v = *(const uint64_t *)((const char *)g->st + f->offset);
	if (f->show == LIMIT && v >= (uint64_t)MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE) {
		put_mem(buf, len, at, "+Inf\n", 5);
	} else {
		put_u64(buf, len, at, v);
		put_mem(buf, len, at, "\n", 1);
	}
}

/* One group's histogram from power-of-two buckets: cumulative _bucket
 * lines (le[b]: the bound's label text), _count, and _sum when sum_ns. */
static void put_hist(char *buf, size_t len, size_t *at, const char *name, const char *group,
		     const uint64_t *hist, char le[][32], const uint64_t *sum_ns)
{
	uint64_t cum = 0;

	for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++) {
		cum += hist[b];
		put_series(buf, len, at, name, "_bucket", group);
		put_str(buf, len, at, le[b]);
		put_u64(buf, len, at, cum);
		put_mem(buf, len, at, "\n", 1);
	}
	if (sum_ns) {
		char v[48];
		put_series(buf, len, at, name, "_sum", group);
		snprintf(v, sizeof(v), "\"} %.9g\n", (double)*sum_ns / 1e9);
		put_str(buf, len, at, v);
	}
	put_series(buf, len, at, name, "_count", group);
	put_mem(buf, len, at, "\"} ", 3);
	put_u64(buf, len, at, cum);
	put_mem(buf, len, at, "\n", 1);
}

size_t mgi_prom_render(const mgi_prom_group_t *groups, size_t n, char *buf, size_t len)
{
	size_t at = 0;

	if (len)
		buf[0] = '\0';
	for (size_t k = 0; k < sizeof(families) / sizeof(families[0]); k++) {
		const family_t *f = &families[k];
		mgi_text_put(buf, len, &at, "# HELP memgrp_%s %s\n# TYPE memgrp_%s %s\n", f->name, f->help,
		    f->name, f->type == COUNTER ? "counter" : "gauge");
		for (size_t i = 0; i < n; i++) {
			put_series(buf, len, &at, f->name, "", groups[i].name);
			put_mem(buf, len, &at, "\"} ", 3);
			put_value(buf, len, &at, f, &groups[i]);
		}
	}
	/*
	 * Direct-reclaim stalls: the agents count them in power-of-two
	 * buckets (bucket b: shorter than 2^b us; the last also takes
	 * everything longer). Prometheus buckets are cumulative and "less
	 * than or equal": le is the bucket's upper bound in seconds. The
	 * agents keep no sum of the stalls' times, so no _sum line is made
	 * up: histogram_quantile() needs only the buckets.
	 */
	mgi_text_put(buf, len, &at,
	    "# HELP memgrp_reclaim_stall_seconds Faults that waited for direct reclaim, by how long "
	    "(bucket bounds are the agents' power-of-two microseconds; no _sum is kept).\n"
	    "# TYPE memgrp_reclaim_stall_seconds histogram\n");
	char le[MGI_RECLAIM_BUCKETS][32]; /* each bucket's bound, written once */
	for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++) {
		if (b + 1 < MGI_RECLAIM_BUCKETS)
			snprintf(le[b], sizeof(le[b]), "\",le=\"%.9g\"} ", (double)(1ULL << b) / 1e6);
		else
			snprintf(le[b], sizeof(le[b]), "\",le=\"+Inf\"} ");
	}
	for (size_t i = 0; i < n; i++)
		put_hist(buf, len, &at, "reclaim_stall_seconds", groups[i].name, groups[i].st->reclaim_hist,
			 le, NULL);
	/* Faults on evicted pages, timed by the agents around the restore
	 * (decompression and the copy that wakes the thread): the same
	 * buckets, and a real _sum (restore_ns). */
	mgi_text_put(buf, len, &at,
	    "# HELP memgrp_restore_fault_seconds Faults on evicted pages, by how long the restore "
	    "took (bucket bounds are the agents' power-of-two microseconds).\n"
	    "# TYPE memgrp_restore_fault_seconds histogram\n");
	for (size_t i = 0; i < n; i++)
		put_hist(buf, len, &at, "restore_fault_seconds", groups[i].name, groups[i].st->restore_hist,
			 le, &groups[i].st->restore_ns);
	/* Notifications: from the crossing an agent noted to the manager's
	 * eventfd writes (the manager's own measure, per group). */
	mgi_text_put(buf, len, &at,
	    "# HELP memgrp_notification_latency_seconds Threshold and pressure notifications, by "
	    "the time from the crossing to the listeners' eventfds written.\n"
	    "# TYPE memgrp_notification_latency_seconds histogram\n");
	for (size_t i = 0; i < n; i++)
		put_hist(buf, len, &at, "notification_latency_seconds", groups[i].name,
			 groups[i].st->notify_hist, le, &groups[i].st->notify_ns);
	return at;
}

static int bad(char *err, size_t errlen, const char *s, const char *why)
{
	snprintf(err, errlen, "'%s': %s", s, why);
	return -EINVAL;
}

int mgi_listen_parse(const char *s, mgi_listen_addr_t *out, char *err, size_t errlen)
{
	char host[64];
	const char *port_s;
	char *end;
	unsigned long port;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return bad(err, errlen, s ? s : "", "empty; PORT, ADDR:PORT or [ADDR6]:PORT");
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return bad(err, errlen, s, "an IPv6 address is written [ADDR]:PORT");
		if ((size_t)(close - s - 1) >= sizeof(host))
			return bad(err, errlen, s, "address too long");
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		port_s = close + 2;
		out->family = AF_INET6;
		if (inet_pton(AF_INET6, host, out->addr) != 1)
			return bad(err, errlen, s, "not an IPv6 address");
	} else {
		const char *colon = strrchr(s, ':');
		out->family = AF_INET;
		if (!colon) {
			static const uint8_t loopback[4] = {127, 0, 0, 1};
			memcpy(out->addr, loopback, 4);
			port_s = s;
		} else {
			if ((size_t)(colon - s) >= sizeof(host) || colon == s)
				return bad(err, errlen, s, "no address before ':'");
			memcpy(host, s, (size_t)(colon - s));
			host[colon - s] = '\0';
			port_s = colon + 1;
			if (!strcmp(host, "localhost"))
				snprintf(host, sizeof(host), "127.0.0.1");
			if (strchr(host, ':'))
				return bad(err, errlen, s, "an IPv6 address is written [ADDR]:PORT");
			if (inet_pton(AF_INET, host, out->addr) != 1)
				return bad(err, errlen, s,
					   "not an IPv4 address (give a numeric address, or localhost)");
		}
	}
	if (*port_s < '0' || *port_s > '9')
		return bad(err, errlen, s, "no port number");
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno || *end || port > 65535)
		return bad(err, errlen, s, "the port is a number from 0 to 65535");
	out->port = (uint16_t)port;
	return 0;
}

void mgi_listen_format(const mgi_listen_addr_t *a, char *out, size_t len)
{
	char host[64] = "?";

	inet_ntop(a->family == AF_INET6 ? AF_INET6 : AF_INET, a->addr, host, sizeof(host));
	snprintf(out, len, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, (unsigned)a->port);
}

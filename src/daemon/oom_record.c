/* oom_record.c - the post-mortem record of every OOM kill: one JSON line in the log, the last ones kept for OOM_RECORD_REQ (memgrp events --json). */
#include "oom_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "conn.h"
#include "oslayer.h"
#include <time.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Writes s as a JSON string (quoted, escaped) at *p within end. */
static void json_str(char **p, char *end, const char *s)
{
	if (*p >= end)
		return;
	*(*p)++ = '"';
	for (; *s && *p < end - 8; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			*(*p)++ = '\\';
			*(*p)++ = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			/* bytes as \u00XX: a command line is the process's word,
			 * not necessarily UTF-8 */
			*p += snprintf(*p, (size_t)(end - *p), "\\u%04x", ch);
		} else {
			*(*p)++ = (char)ch;
		}
	}
	if (*p < end - 1)
		*(*p)++ = '"';
	**p = '\0';
}

#define APPEND(p, end, ...)                                                       \
	do {                                                                      \
		if ((p) < (end))                                                  \
			(p) += snprintf((p), (size_t)((end) - (p)), __VA_ARGS__); \
		if ((p) > (end))                                                  \
			(p) = (end);                                              \
	} while (0)

struct mgi_oom_records {
	uint64_t next_seq;
	struct {
		uint64_t seq; /* 0: empty */
		int target;
		char text[MGI_OOM_RECORD_MAX];
	} r[MGI_OOM_RECORDS];
};

/* Keeps a record for OOM_RECORD_REQ (memgrp events --json), the oldest
 * dropped; without memory for the ring the log alone has it. */
static void keep_record(mgi_manager_t *m, int target, const char *text, size_t len)
{
	struct mgi_oom_records *rs = m->oom_records;

	if (!rs && !(rs = m->oom_records = calloc(1, sizeof(*rs))))
		return;
	uint64_t seq = ++rs->next_seq;
	size_t slot = (size_t)(seq % MGI_OOM_RECORDS);
	rs->r[slot].seq = seq;
	rs->r[slot].target = target;
	if (len >= MGI_OOM_RECORD_MAX)
		len = MGI_OOM_RECORD_MAX - 1;
	memcpy(rs->r[slot].text, text, len);
	rs->r[slot].text[len] = '\0';
}

void mgi_oom_on_record_req(mgi_manager_t *m, unsigned i, const mgi_msg_oom_record_req_t *req)
{
	struct mgi_conn *c = &m->conns[i];
	const struct mgi_oom_records *rs = m->oom_records;
	int g = mgi_conn_lookup(m, c, req->group), best = -1;
	static mgi_msg_t out;

	if (g < 0)
		return;
	if (!mgi_conn_may_watch(m, c, g)) {
		mgi_conn_reply(c, -EPERM, "group '%s' is not yours to watch", m->tree.node[g].name);
		return;
	}
	for (int s = 0; rs && s < MGI_OOM_RECORDS; s++) {
		int t = rs->r[s].target;
		if (rs->r[s].seq <= req->after || t < 0 || t >= MGI_GROUPS_MAX || !m->tree.node[t].used ||
		    !(t == g || mgi_tree_is_under(&m->tree, t, g) || mgi_tree_is_under(&m->tree, g, t)))
			continue;
		if (best < 0 || rs->r[s].seq < rs->r[best].seq)
			best = s;
	}
	if (best < 0) {
		mgi_conn_reply(c, -ENOENT, "no OOM record after %llu for group '%s'",
			       (unsigned long long)req->after, m->tree.node[g].name);
		return;
	}
	mgi_msg_init(&out, MGI_MSG_OOM_RECORD);
	out.oom_record.seq = rs->r[best].seq;
	out.oom_record.len = (uint32_t)strlen(rs->r[best].text);
	memcpy(out.oom_record.text, rs->r[best].text, out.oom_record.len + 1);
	send(c->fd, &out, out.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void mgi_oom_record(mgi_manager_t *m, const mgi_oom_kill_t *k, const mgi_victim_t *cand, size_t n,
		    size_t victim, const char *why, const char *cmd)
{
	static char buf[MGI_OOM_RECORD_MAX];
	char *p = buf, *end = buf + sizeof(buf) - 2; /* room for a newline */
	const mgi_segment_t *seg = m->tree.node[k->target].seg;
	const mgi_victim_t *v = &cand[victim];
	struct timespec ts;
	int sig = k->signal ? k->signal : SIGKILL;

	clock_gettime(CLOCK_REALTIME, &ts);
	APPEND(p, end, "{\"time\": %lld.%03ld, \"group\": ", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
	json_str(&p, end, m->tree.node[k->target].name);
	APPEND(p, end, ", \"reason\": ");
	json_str(&p, end, k->state ? k->state : "");
	APPEND(p, end, ", \"policy\": \"%s\", \"scope\": \"%s\", \"signal\": \"%s\", \"victim\": "
		       "{\"pid\": %d, \"group\": ", mgi_oom_policy_name(k->policy.policy),
	       k->scope ? k->scope : "process", sig == SIGTERM ? "TERM" : "KILL", (int)v->pid);
	json_str(&p, end, v->group >= 0 && v->group < MGI_GROUPS_MAX ? m->tree.node[v->group].name : "");
	APPEND(p, end, ", \"cmdline\": ");
	/* at most 400 bytes of it: escaped (6 bytes a control byte at worst)
	 * the record still fits its MGI_OOM_RECORD_MAX whole */
	char shortcmd[401];
	snprintf(shortcmd, sizeof(shortcmd), "%s", cmd ? cmd : "");
	json_str(&p, end, shortcmd);
	APPEND(p, end, ", \"charged\": %llu, \"age_ms\": %llu, \"priority\": %d, \"oom_score_adj\": %d, "
		       "\"chosen\": ", (unsigned long long)v->pages * MGI_PAGE_SIZE,
	       (unsigned long long)v->age_ms, v->priority, v->adj);
	json_str(&p, end, why ? why : "");
	APPEND(p, end, "}, \"stats\": {\"usage\": %llu, \"max_usage\": %llu, \"limit\": %llu, "
		       "\"failcnt\": %llu, \"oom_kill\": %llu, \"candidates\": %zu}, \"largest\": [",
	       (unsigned long long)mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE,
	       (unsigned long long)atomic_load(&seg->acct.memory.watermark) * MGI_PAGE_SIZE,
	       (unsigned long long)mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE,
	       (unsigned long long)atomic_load(&seg->acct.memory.failcnt),
	       (unsigned long long)atomic_load(&seg->ctl.oom_kill), n);
	/* the three largest candidates, largest first (n is small: a
	 * selection, not a sort) */
	static bool shown[MGI_MANAGER_CONNS_MAX];
	memset(shown, 0, sizeof(shown));
	for (int r = 0; r < 3; r++) {
		int big = -1;
		for (size_t i = 0; i < n && i < MGI_MANAGER_CONNS_MAX; i++)
			if (!shown[i] && (big < 0 || cand[i].pages > cand[big].pages))
				big = (int)i;
		if (big < 0)
			break;
		shown[big] = true;
		APPEND(p, end, "%s{\"pid\": %d, \"charged\": %llu}", r ? ", " : "", (int)cand[big].pid,
		       (unsigned long long)cand[big].pages * MGI_PAGE_SIZE);
	}
	APPEND(p, end, "]}");
	keep_record(m, k->target, buf, (size_t)(p - buf));
	/* Its own line in the log, whole: mgi_manager_log cuts at 400 bytes.
	 * Nothing in it needs escaping for the log (json_str escaped every
	 * control byte a client could have put there). One write: the line
	 * is not interleaved with another writer's. */
	char head[96];
	struct tm tm;
	localtime_r(&ts.tv_sec, &tm);
	int hn = snprintf(head, sizeof(head), "%s: %02d:%02d:%02d oom-record ", m->who, tm.tm_hour,
			  tm.tm_min, tm.tm_sec);
	if (p == buf || p[-1] != '\n')
		*p++ = '\n'; /* cut short (a huge command line): the line still ends */
	struct iovec iov[2] = {{head, (size_t)hn}, {buf, (size_t)(p - buf)}};
	if (writev(STDERR_FILENO, iov, 2) < 0) {
		/* the log is gone: nothing to tell it */
	}
}

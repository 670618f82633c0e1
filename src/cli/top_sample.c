/* top_sample.c - `memgrp top`'s samples: each manager's groups, their rates, the order they are shown in. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "oslayer.h"
#include "promtext.h"
#include "top.h"

double mgi_top_now_s(void)
{
	return (double)mgi_os_now_ns() / 1e9;
}

/* The groups of the manager at sock, appended to s. The root appears
 * only when processes joined it (memgrpd's default group). */
static void collect_manager(const char *sock, struct sample *s)
{
	static mgi_msg_t req, list, st;
	char err[256];

	mgi_msg_init(&req, MGI_MSG_LIST_REQ);
	if (mgi_request(sock, &req, MGI_MSG_LIST, &list, err, sizeof(err)) != 0)
		return; /* a stale socket: nobody serves it */
	for (uint32_t i = 0; i < list.list.count && s->n < ROWS_MAX; i++) {
		mgi_msg_init(&req, MGI_MSG_STAT_REQ);
		memcpy(req.group.group, list.list.names[i], MGI_GROUP_NAME_MAX);
		if (mgi_request(sock, &req, MGI_MSG_STAT, &st, err, sizeof(err)) != 0)
			continue; /* removed meanwhile */
		if (!st.stat.group[0] && !st.stat.figures.nr_processes)
			continue;
		struct row *r = &s->rows[s->n++];
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%s", st.stat.group[0] ? st.stat.group : "/");
		r->st = st.stat.figures;
	}
}

void mgi_top_collect(const char *sock, struct sample *s)
{
	char path[300];
	struct dirent *d;
	DIR *dir;

	s->n = 0;
	s->at = mgi_top_now_s();
	if (sock) {
		collect_manager(sock, s);
	} else {
		collect_manager(MGI_MEMGRPD_SOCKET, s);
		if ((dir = opendir("/run/memgrp"))) {
			while ((d = readdir(dir))) {
				size_t len = strlen(d->d_name);
				if (len < 6 || strcmp(d->d_name + len - 5, ".sock") != 0 ||
				    !strcmp(d->d_name, "memgrpd.sock"))
					continue;
				snprintf(path, sizeof(path), "/run/memgrp/%s", d->d_name);
				collect_manager(path, s);
			}
			closedir(dir);
		}
	}
	/* The tree: a group's parent is the longest name that prefixes it
	 * up to a '/'. */
	for (int i = 0; i < s->n; i++) {
		struct row *r = &s->rows[i];
		r->parent = -1;
		r->depth = 0;
		for (const char *p = r->name; *p; p++)
			r->depth += *p == '/';
		if (!strcmp(r->name, "/"))
			r->depth = 0;
		char *slash = strrchr(r->name, '/');
		if (slash && slash != r->name) {
			size_t plen = (size_t)(slash - r->name);
			for (int j = 0; j < s->n; j++)
				if (strlen(s->rows[j].name) == plen && !strncmp(s->rows[j].name, r->name, plen))
					r->parent = j;
		}
	}
}

void mgi_top_rates(struct sample *cur, const struct sample *prev)
{
	for (int i = 0; i < cur->n; i++) {
		struct row *r = &cur->rows[i];
		r->faults_s = r->evictions_s = -1;
		r->interval_s = 0;
		for (int j = 0; prev && j < prev->n; j++) {
			const struct row *p = &prev->rows[j];
			double dt = cur->at - prev->at;
			if (strcmp(p->name, r->name) != 0 || dt <= 0)
				continue;
			/* counters only grow; a group removed and made again
			 * under the same name starts over */
			r->interval_s = dt;
			r->faults_s = r->st.pgfault >= p->st.pgfault ? (double)(r->st.pgfault - p->st.pgfault) / dt : 0;
			r->evictions_s = r->st.pswpout >= p->st.pswpout ? (double)(r->st.pswpout - p->st.pswpout) / dt : 0;
			break;
		}
	}
}

static enum sort_key sort_by;

/* Whether a comes before b among siblings. */
static bool before(const struct row *a, const struct row *b)
{
	double x = 0, y = 0;

	switch (sort_by) {
	case BY_NAME:
		return strcmp(a->name, b->name) < 0;
	case BY_USAGE: x = (double)a->st.usage; y = (double)b->st.usage; break;
	case BY_FAULTS: x = a->faults_s; y = b->faults_s; break;
	case BY_EVICTIONS: x = a->evictions_s; y = b->evictions_s; break;
	case BY_SWAP: x = (double)a->st.swap_usage; y = (double)b->st.swap_usage; break;
	case BY_OOM: x = (double)a->st.oom_kill; y = (double)b->st.oom_kill; break;
	case BY_PRESSURE:
		x = mgi_prom_pressure(a->st.usage, a->st.limit) + (double)a->st.usage / 1e30;
		y = mgi_prom_pressure(b->st.usage, b->st.limit) + (double)b->st.usage / 1e30;
		break;
	}
	if (x != y)
		return x > y;
	return strcmp(a->name, b->name) < 0;
}

static int order(struct sample *s, int parent, int *out, int n)
{
	for (;;) {
		int best = -1;
		for (int i = 0; i < s->n; i++) {
			struct row *r = &s->rows[i];
			if (r->printed || r->parent != parent)
				continue;
			if (best < 0 || before(r, &s->rows[best]))
				best = i;
		}
		if (best < 0)
			return n;
		s->rows[best].printed = true;
		out[n++] = best;
		n = order(s, best, out, n);
	}
}

int mgi_top_order(struct sample *s, enum sort_key key, int *out)
{
	sort_by = key;
	for (int i = 0; i < s->n; i++)
		s->rows[i].printed = false;
	return order(s, -1, out, 0);
}

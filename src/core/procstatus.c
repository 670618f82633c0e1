/* procstatus.c - parses /proc/PID/status and /proc/PID/stat text: the fields memgrp reads about a process. */
#include "procstatus.h"

#include <errno.h>
#include <string.h>

/* Reads an unsigned decimal at *p (after blanks) up to end; false when
 * there is none or it passes max. Advances *p past it. */
static int read_uint(const char **p, const char *end, uint64_t max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end || *s < '0' || *s > '9')
		return 0;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*p = s;
	*out = v;
	return 1;
}

/* A "KEY:" at the start of [line, end)? Returns the text after it or NULL. */
static const char *field(const char *line, const char *end, const char *key)
{
	size_t kl = strlen(key);
	if ((size_t)(end - line) < kl || memcmp(line, key, kl) != 0)
		return NULL;
	return line + kl;
}

int mgi_proc_status_parse(const char *buf, size_t len, mgi_proc_status_t *out)
{
	const char *p = buf, *end = buf + len;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end, *v;
		uint64_t a, b;

		if (!(out->have & MGI_PS_NAME) && (v = field(p, le, "Name:"))) {
			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			size_t n = (size_t)(le - v);
			if (n >= sizeof(out->name))
				n = sizeof(out->name) - 1;
			memcpy(out->name, v, n);
			out->name[n] = '\0';
			out->have |= MGI_PS_NAME;
		} else if (!(out->have & MGI_PS_PPID) && (v = field(p, le, "PPid:"))) {
			if (read_uint(&v, le, INT32_MAX, &a)) {
				out->ppid = (int32_t)a;
				out->have |= MGI_PS_PPID;
			}
		} else if (!(out->have & MGI_PS_UID) && (v = field(p, le, "Uid:"))) {
			if (read_uint(&v, le, UINT32_MAX, &a) && read_uint(&v, le, UINT32_MAX, &b)) {
				out->ruid = (uint32_t)a;
				out->euid = (uint32_t)b;
				out->have |= MGI_PS_UID;
			}
		} else if (!(out->have & MGI_PS_RSS_ANON) && (v = field(p, le, "RssAnon:"))) {
			if (read_uint(&v, le, UINT64_MAX >> 10, &out->rss_anon_kb))
				out->have |= MGI_PS_RSS_ANON;
		} else if (!(out->have & MGI_PS_RSS_FILE) && (v = field(p, le, "RssFile:"))) {
			if (read_uint(&v, le, UINT64_MAX >> 10, &out->rss_file_kb))
				out->have |= MGI_PS_RSS_FILE;
		} else if (!(out->have & MGI_PS_RSS_SHMEM) && (v = field(p, le, "RssShmem:"))) {
			if (read_uint(&v, le, UINT64_MAX >> 10, &out->rss_shmem_kb))
				out->have |= MGI_PS_RSS_SHMEM;
		}
		p = nl ? nl + 1 : end;
	}
	return out->have ? 0 : -EINVAL;
}

uint64_t mgi_proc_status_charged_pages(const mgi_proc_status_t *st, uint64_t page_size)
{
	uint64_t kb_per_page = page_size >> 10;

	if (!kb_per_page)
		return 0;
	/* Each figure is below 2^54 KiB (the parser's bound): no overflow. */
	return st->rss_anon_kb / kb_per_page + st->rss_shmem_kb / kb_per_page;
}

/* Skips one field of /proc/PID/stat after blanks: false at the end. */
static int skip_field(const char **p, const char *end)
{
	const char *s = *p;

	while (s < end && *s == ' ')
		s++;
	if (s == end)
		return 0;
	while (s < end && *s != ' ' && *s != '\n')
		s++;
	*p = s;
	return 1;
}

int mgi_pid_stat_parse(const char *buf, size_t len, mgi_pid_stat_t *out)
{
	const char *end = buf + len, *open_paren = memchr(buf, '(', len), *close_paren = NULL;
	/* Fields after the comm, counted from state (3); the ones kept. */
	enum { F_STATE = 3, F_FLAGS = 9, F_MINFLT = 10, F_MAJFLT = 12, F_START = 22 };

	memset(out, 0, sizeof(*out));
	for (const char *q = buf; q < end; q++)
		if (*q == ')')
			close_paren = q;
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -EINVAL;
	size_t n = (size_t)(close_paren - open_paren - 1);
	if (n >= sizeof(out->comm))
		n = sizeof(out->comm) - 1;
	memcpy(out->comm, open_paren + 1, n);

	const char *p = close_paren + 1;
	while (p < end && *p == ' ')
		p++;
	if (p == end || *p == '\n')
		goto bad;
	out->state = *p++;
	for (int f = F_STATE + 1; f <= F_START; f++) {
		uint64_t *keep = f == F_FLAGS ? &out->flags : f == F_MINFLT ? &out->minflt :
				 f == F_MAJFLT ? &out->majflt : f == F_START ? &out->starttime : NULL;
		if (keep) {
			if (!read_uint(&p, end, UINT64_MAX, keep))
				goto bad;
		} else if (!skip_field(&p, end)) {
			goto bad;
		}
	}
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

int mgi_pid_stat_exiting(const mgi_pid_stat_t *st)
{
	return st->state == 'Z' || st->state == 'X' || (st->flags & MGI_PF_EXITING);
}

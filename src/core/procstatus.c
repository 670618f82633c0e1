/* procstatus.c - parses /proc/PID/status text: the fields memgrp reads about a process. */
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

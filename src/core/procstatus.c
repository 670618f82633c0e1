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

/* Reads a lowercase hex number at *p up to end (at least one digit, no
 * overflow). Advances *p past it. */
static int read_hex(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s == end || !((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
		return 0;
	for (; s < end && ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')); s++) {
		if (v >> 60)
			return 0;
		v = v << 4 | (uint64_t)(*s <= '9' ? *s - '0' : *s - 'a' + 10);
	}
	*p = s;
	*out = v;
	return 1;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

void mgi_smaps_init(mgi_smaps_t *s)
{
	memset(s, 0, sizeof(*s));
}

/* Adds the VMA being read to the sums (see procstatus.h). */
static void close_vma(mgi_smaps_t *s)
{
	if (s->cur) {
		uint64_t anon = s->cur_anon_kb < s->cur_kb ? s->cur_anon_kb : s->cur_kb;
		uint64_t mem = s->cur_um || s->cur_nr ? anon : s->cur_kb;
		uint64_t memsw = s->cur_um ? s->cur_kb : mem;
		s->mem_kb = sat_add(s->mem_kb, mem);
		s->memsw_kb = sat_add(s->memsw_kb, memsw);
		s->vmas++;
	}
	s->cur = 0;
	s->cur_kb = s->cur_anon_kb = 0;
	s->cur_um = s->cur_nr = 0;
}

/* A VMA's header: "START-END PERMS OFFSET MAJ:MIN INODE [PATH]". Returns
 * whether the line is one; *eligible whether the agent may charge it. */
static int vma_header(const char *p, const char *end, uint64_t *kb, int *eligible)
{
	uint64_t start, stop, off, inode;
	const char *perms;

	if (!read_hex(&p, end, &start) || p == end || *p++ != '-' || !read_hex(&p, end, &stop) ||
	    end - p < 6 || *p++ != ' ')
		return 0;
	perms = p;
	p += 4;
	if (*p++ != ' ' || !read_hex(&p, end, &off) || p == end || *p++ != ' ')
		return 0;
	while (p < end && *p != ' ') /* the device, "fe:00" */
		p++;
	if (!read_uint(&p, end, UINT64_MAX, &inode) || stop < start)
		return 0;
	while (p < end && *p == ' ')
		p++;
	*kb = (stop - start) >> 10;
	*eligible = perms[1] == 'w' && perms[3] == 'p' && inode == 0 && (p == end || *p == '[');
	return 1;
}

void mgi_smaps_line(mgi_smaps_t *s, const char *line, size_t len)
{
	const char *end = line + len, *v;
	uint64_t kb;
	int eligible;

	if (len && line[len - 1] == '\n')
		end--;
	if (vma_header(line, end, &kb, &eligible)) {
		close_vma(s);
		s->cur = eligible;
		s->cur_kb = kb;
		return;
	}
	if (!s->cur)
		return;
	if ((v = field(line, end, "Anonymous:"))) {
		if (!read_uint(&v, end, UINT64_MAX >> 10, &kb))
			kb = 0;
		s->cur_anon_kb = kb;
	} else if ((v = field(line, end, "VmFlags:"))) {
		/* two-letter flags separated by spaces */
		while (v < end) {
			while (v < end && *v == ' ')
				v++;
			const char *t = v;
			while (v < end && *v != ' ')
				v++;
			if (v - t == 2 && t[0] == 'u' && t[1] == 'm')
				s->cur_um = 1;
			else if (v - t == 2 && t[0] == 'n' && t[1] == 'r')
				s->cur_nr = 1;
		}
	}
}

void mgi_smaps_end(mgi_smaps_t *s)
{
	close_vma(s);
}

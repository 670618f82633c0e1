/* procstatus.h - parses /proc/PID/status text: the fields memgrp reads about a process. */
#ifndef MGI_PROCSTATUS_H
#define MGI_PROCSTATUS_H

#include <stddef.h>
#include <stdint.h>

/* Which fields a parse found (mgi_proc_status_t.have). */
#define MGI_PS_PPID 0x01
#define MGI_PS_UID 0x02
#define MGI_PS_RSS_ANON 0x04
#define MGI_PS_RSS_FILE 0x08
#define MGI_PS_RSS_SHMEM 0x10
#define MGI_PS_NAME 0x20

typedef struct mgi_proc_status {
	unsigned have;           /* MGI_PS_* of the fields found */
	int32_t ppid;
	uint32_t ruid, euid;
	uint64_t rss_anon_kb, rss_file_kb, rss_shmem_kb;
	char name[64];           /* "Name:" as the kernel wrote it (escaped) */
} mgi_proc_status_t;

/*
 * Parses len bytes of /proc/PID/status text (no terminating NUL needed).
 * The text is untrusted: the process picks its own Name (the kernel escapes
 * its newlines, but a forged buffer may hold anything), so a field counts
 * only at the start of a line, only its first occurrence is kept, a number
 * that does not fit or a line without a value leaves the field unset, and
 * nothing is read past len. Kernel threads have no Rss* lines; callers
 * check `have`. Returns 0, or -EINVAL if no field was found at all.
 */
int mgi_proc_status_parse(const char *buf, size_t len, mgi_proc_status_t *out);

/* RssAnon + RssShmem in pages of page_size bytes: the memory memgrp
 * charges (0 for a field absent). */
uint64_t mgi_proc_status_charged_pages(const mgi_proc_status_t *st, uint64_t page_size);

#endif

/* procstatus.h - parses /proc/PID/status and /proc/PID/stat text: the fields memgrp reads about a process. */
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

/* The fields of /proc/PID/stat memgrp reads (proc(5) numbers them). */
typedef struct mgi_pid_stat {
	char comm[64];          /* (2), between the first '(' and the last ')'; truncated */
	char state;             /* (3): 'R', 'S', 'Z', ... */
	uint64_t flags;         /* (9): PF_* */
	uint64_t minflt, majflt; /* (10), (12) */
	uint64_t starttime;     /* (22), clock ticks after boot */
} mgi_pid_stat_t;

#define MGI_PF_EXITING 0x4 /* the kernel's PF_EXITING: the process is in exit */

/*
 * Parses len bytes of /proc/PID/stat text (no terminating NUL needed).
 * The comm is the process's own choice and may hold spaces and ')': the
 * fields are read after the last ')'. Returns 0 when every field above
 * was read, -EINVAL otherwise (out is then zeroed).
 */
int mgi_pid_stat_parse(const char *buf, size_t len, mgi_pid_stat_t *out);

/* Whether the process is on its way out: a zombie, dead, or exiting. */
int mgi_pid_stat_exiting(const mgi_pid_stat_t *st);

#endif

/* fuzz_procstatus.c - libFuzzer target for the /proc/PID/status and /proc/PID/stat parsers (a managed process picks its own name). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "procstatus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* Exactly len bytes, no NUL after them: a read past the end is
	 * caught by ASan. */
	char *buf = malloc(len ? len : 1);
	mgi_proc_status_t st;
	int rc;

	if (!buf)
		return 0;
	memcpy(buf, data, len);
	memset(&st, 0xab, sizeof(st));
	rc = mgi_proc_status_parse(buf, len, &st);
	if (rc != 0 && rc != -EINVAL)
		abort();
	if ((rc == 0) != (st.have != 0))
		abort(); /* 0 exactly when a field was found */
	if (st.have & ~(unsigned)(MGI_PS_PPID | MGI_PS_UID | MGI_PS_RSS_ANON | MGI_PS_RSS_FILE |
				  MGI_PS_RSS_SHMEM | MGI_PS_NAME))
		abort();
	if (!memchr(st.name, '\0', sizeof(st.name)) || (!(st.have & MGI_PS_NAME) && st.name[0]))
		abort();
	if (memchr(st.name, '\n', strlen(st.name)))
		abort(); /* a name never spans lines */
	if (st.ppid < 0 || st.rss_anon_kb > UINT64_MAX >> 10 || st.rss_file_kb > UINT64_MAX >> 10 ||
	    st.rss_shmem_kb > UINT64_MAX >> 10)
		abort();
	/* Unset fields are zero, so sums of them stay defined. */
	if ((!(st.have & MGI_PS_PPID) && st.ppid) || (!(st.have & MGI_PS_UID) && (st.ruid || st.euid)) ||
	    (!(st.have & MGI_PS_RSS_ANON) && st.rss_anon_kb))
		abort();
	(void)mgi_proc_status_charged_pages(&st, 4096);

	/* The same bytes as /proc/PID/stat (its comm is the process's). */
	mgi_pid_stat_t ps;
	memset(&ps, 0xab, sizeof(ps));
	rc = mgi_pid_stat_parse(buf, len, &ps);
	if (rc != 0 && rc != -EINVAL)
		abort();
	if (!memchr(ps.comm, '\0', sizeof(ps.comm)))
		abort();
	if (rc != 0 && (ps.state || ps.flags || ps.minflt || ps.majflt || ps.starttime || ps.comm[0]))
		abort(); /* refused: nothing half-read */
	free(buf);
	return 0;
}

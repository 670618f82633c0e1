/* test_procstatus.c - the /proc/PID/status and /proc/PID/stat parsers on literal files, and the OS layer's readers on a real /proc. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "oslayer.h"
#include "procstatus.h"

/* A process's status as Linux 6.x writes it (trimmed after RssShmem). */
static const char linux6[] =
	"Name:\tredis-server\n"
	"Umask:\t0022\n"
	"State:\tS (sleeping)\n"
	"Tgid:\t4242\n"
	"PPid:\t4200\n"
	"TracerPid:\t0\n"
	"Uid:\t1000\t0\t0\t0\n"
	"Gid:\t1000\t1000\t1000\t1000\n"
	"VmRSS:\t    9000 kB\n"
	"RssAnon:\t    6000 kB\n"
	"RssFile:\t    2000 kB\n"
	"RssShmem:\t    1000 kB\n"
	"VmData:\t  100000 kB\n";

static int parse(const char *s, mgi_proc_status_t *st)
{
	return mgi_proc_status_parse(s, strlen(s), st);
}

static void reads_the_fields_memgrp_uses(void)
{
	mgi_proc_status_t st;

	CHECK_INT_EQ(parse(linux6, &st), 0);
	CHECK_EQ(st.have, MGI_PS_NAME | MGI_PS_PPID | MGI_PS_UID | MGI_PS_RSS_ANON |
				  MGI_PS_RSS_FILE | MGI_PS_RSS_SHMEM);
	CHECK_STR_EQ(st.name, "redis-server");
	CHECK_INT_EQ(st.ppid, 4200);
	CHECK_EQ(st.ruid, 1000);
	CHECK_EQ(st.euid, 0); /* a setuid program: the two differ */
	CHECK_EQ(st.rss_anon_kb, 6000);
	CHECK_EQ(st.rss_file_kb, 2000);
	CHECK_EQ(st.rss_shmem_kb, 1000);
	/* Charged: anon + shmem, in pages. */
	CHECK_EQ(mgi_proc_status_charged_pages(&st, MGI_PAGE_SIZE),
		 (6000 + 1000) * 1024 / MGI_PAGE_SIZE);
}

static void a_kernel_thread_has_no_rss(void)
{
	mgi_proc_status_t st;

	CHECK_INT_EQ(parse("Name:\tkworker/0:1\nPPid:\t2\nUid:\t0\t0\t0\t0\n", &st), 0);
	CHECK_EQ(st.have, MGI_PS_NAME | MGI_PS_PPID | MGI_PS_UID);
	CHECK_EQ(mgi_proc_status_charged_pages(&st, MGI_PAGE_SIZE), 0);
}

/* The process names itself: whatever its Name holds, it cannot pose as
 * another field (the kernel escapes a newline in it; a forged buffer with
 * a raw one still gives only the first occurrence of each field). */
static void a_hostile_name_forges_nothing(void)
{
	mgi_proc_status_t st;

	CHECK_INT_EQ(parse("Name:\tUid:\t0\t0 RssAnon: 1\\nPPid: 1\n"
			   "PPid:\t77\nUid:\t1000\t1000\t1000\t1000\nRssAnon:\t8 kB\n", &st), 0);
	CHECK_INT_EQ(st.ppid, 77);
	CHECK_EQ(st.ruid, 1000);
	CHECK_EQ(st.rss_anon_kb, 8);
	CHECK_INT_EQ(parse("Name:\tx\nPPid:\t5\nPPid:\t1\nRssAnon:\t4 kB\nRssAnon:\t999999 kB\n", &st), 0);
	CHECK_INT_EQ(st.ppid, 5);
	CHECK_EQ(st.rss_anon_kb, 4);
	/* A field only counts at the start of a line. */
	CHECK_INT_EQ(parse("Name:\tx PPid: 1\n", &st), 0);
	CHECK_EQ(st.have, MGI_PS_NAME);
	/* A long name is cut, terminated. */
	char longname[200] = "Name:\t";
	memset(longname + 6, 'a', 150);
	CHECK_INT_EQ(parse(longname, &st), 0);
	CHECK_EQ(strlen(st.name), sizeof(st.name) - 1);
}

static void bad_numbers_leave_the_field_unset(void)
{
	mgi_proc_status_t st;

	/* Past the type's range, negative, missing, not a number. */
	CHECK_INT_EQ(parse("PPid:\t2147483648\nUid:\t4294967296\t0\nRssAnon:\t99999999999999999999 kB\n"
			   "RssFile:\t-1 kB\nRssShmem:\n", &st), -EINVAL);
	CHECK_EQ(st.have, 0);
	CHECK_INT_EQ(parse("PPid:\t2147483647\nUid:\t4294967295\t4294967295\n"
			   "RssAnon:\t18014398509481983 kB\n", &st), 0);
	CHECK_INT_EQ(st.ppid, 2147483647);
	CHECK_EQ(st.ruid, 4294967295u);
	CHECK_EQ(st.rss_anon_kb, UINT64_MAX >> 10);
	/* One uid is not enough: the setuid check needs both. */
	CHECK_INT_EQ(parse("Uid:\t5\n", &st), -EINVAL);
	CHECK_INT_EQ(parse("", &st), -EINVAL);
	CHECK_INT_EQ(parse("garbage\n\n\n", &st), -EINVAL);
}

static void stops_at_len(void)
{
	mgi_proc_status_t st;
	const char *s = "PPid:\t12345\n";

	/* Cut inside the number: only what is within len counts. */
	CHECK_INT_EQ(mgi_proc_status_parse(s, 8, &st), 0);
	CHECK_INT_EQ(st.ppid, 12);
	CHECK_INT_EQ(mgi_proc_status_parse(s, 5, &st), -EINVAL);
}

/* The OS layer's reader on a proc root of the test's own (the backstop
 * reads one from its configuration) and on the real /proc. */
static void reads_a_proc_root(void)
{
	char dir[] = "/tmp/mgt-proc-XXXXXX", path[128];
	mgi_proc_status_t st;
	int fd, rc;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/4242", dir);
	CHECK(mkdir(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/4242/status", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, linux6, sizeof(linux6) - 1) == (ssize_t)(sizeof(linux6) - 1));
	close(fd);
	rc = mgi_proc_status_read(dir, 4242, &st);
	int missing = mgi_proc_status_read(dir, 4243, &st);
	unlink(path);
	snprintf(path, sizeof(path), "%s/4242", dir);
	rmdir(path);
	rmdir(dir);
	CHECK_INT_EQ(rc, 0);
	CHECK_INT_EQ(missing, -ENOENT);
	CHECK_INT_EQ(mgi_proc_status_read(dir, 0, &st), -EINVAL);

	CHECK_INT_EQ(mgi_proc_status_read(NULL, getpid(), &st), 0);
	CHECK_INT_EQ(st.ppid, getppid());
	CHECK_EQ(st.ruid, getuid());
	CHECK_EQ(st.euid, geteuid());
	CHECK(st.have & MGI_PS_RSS_ANON);
	CHECK_GE(st.rss_anon_kb, 1); /* this test's own stack and heap */
}

/* /proc/PID/stat as Linux 6.x writes it, with a comm that holds a space
 * and a ')' (a process names itself) and a negative tpgid. */
static const char stat6[] =
	"4242 (evil) S 1 (x) R 4200 4242 4242 0 -1 4194560 1234 0 56 0 10 20 0 0 20 0 3 0 "
	"987654 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

static void stat_reads_the_fields_memgrp_uses(void)
{
	mgi_pid_stat_t st;

	CHECK_INT_EQ(mgi_pid_stat_parse(stat6, sizeof(stat6) - 1, &st), 0);
	CHECK_STR_EQ(st.comm, "evil) S 1 (x");
	CHECK_EQ(st.state, 'R');
	CHECK_EQ(st.flags, 4194560);
	CHECK_EQ(st.minflt, 1234);
	CHECK_EQ(st.majflt, 56);
	CHECK_EQ(st.starttime, 987654);
	CHECK(!mgi_pid_stat_exiting(&st));
	st.flags |= MGI_PF_EXITING;
	CHECK(mgi_pid_stat_exiting(&st));
	st.flags = 0;
	st.state = 'Z';
	CHECK(mgi_pid_stat_exiting(&st));
}

static void stat_refuses_what_it_cannot_read(void)
{
	mgi_pid_stat_t st;
	const char *bad[] = {
		"", "4242 evil S 1", "4242 (evil", "4242 (evil) ", "4242 (evil) S 1 2 3",
		/* flags not a number */
		"4242 (e) S 1 2 3 4 5 x 1 2 3 4 5 6 7 8 9 10 11 12 13\n",
		/* cut before starttime */
		"4242 (e) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&st, 0x5a, sizeof(st));
		CHECK_MSG(mgi_pid_stat_parse(bad[i], strlen(bad[i]), &st) == -EINVAL, "case %zu", i);
		CHECK_EQ(st.state, 0); /* zeroed: nothing half-read */
		CHECK_EQ(st.starttime, 0);
	}
	/* Nothing is read past len: the same text cut one byte short of
	 * starttime's last digit reads another number, never beyond. */
	CHECK_INT_EQ(mgi_pid_stat_parse(stat6, (size_t)(strstr(stat6, "987654") - stat6) + 5, &st), 0);
	CHECK_EQ(st.starttime, 98765);
}

static void stat_reads_this_process(void)
{
	mgi_pid_stat_t st;

	CHECK_INT_EQ(mgi_pid_stat_read(NULL, getpid(), &st), 0);
	CHECK_EQ(st.state, 'R');
	CHECK(!mgi_pid_stat_exiting(&st));
	CHECK_LT(mgi_pid_age_ms(&st), 600000); /* this test started minutes ago at most */
	CHECK_INT_EQ(mgi_pid_stat_read(NULL, 0, &st), -EINVAL);
}

static void pidfd_signals_only_its_process(void)
{
	pid_t child = fork();
	int fd, status;

	CHECK(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	fd = mgi_pidfd_open(child);
	CHECK_MSG(fd >= 0, "pidfd_open: %s", strerror(-fd));
	CHECK_INT_EQ(mgi_pidfd_send_signal(fd, 0), 0);
	CHECK_INT_EQ(mgi_pidfd_send_signal(fd, SIGKILL), 0);
	CHECK(waitpid(child, &status, 0) == child);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* Reaped: the pidfd names no process now, whoever gets the pid. */
	CHECK_INT_EQ(mgi_pidfd_send_signal(fd, 0), -ESRCH);
	close(fd);
	CHECK_INT_EQ(mgi_pidfd_open(-1), -EINVAL);
	CHECK_INT_EQ(mgi_os_page_size_check(), 0);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(reads_the_fields_memgrp_uses);
	MGT_RUN(a_kernel_thread_has_no_rss);
	MGT_RUN(a_hostile_name_forges_nothing);
	MGT_RUN(bad_numbers_leave_the_field_unset);
	MGT_RUN(stops_at_len);
	MGT_RUN(reads_a_proc_root);
	MGT_RUN(pidfd_signals_only_its_process);
	MGT_RUN(stat_reads_the_fields_memgrp_uses);
	MGT_RUN(stat_refuses_what_it_cannot_read);
	MGT_RUN(stat_reads_this_process);
	MGT_DONE();
}

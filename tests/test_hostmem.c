/* test_hostmem.c - the PSI and MemAvailable parsers on literal files and this host's, and the host verdict's rule against kills on a PSI blip. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "harness.h"
#include "hostmem.h"

static const char psi6[] = "some avg10=0.29 avg60=0.27 avg300=0.11 total=1113592671\n"
			   "full avg10=12.07 avg60=0.06 avg300=100.00 total=247479972\n";

static int psi(const char *s, mgi_psi_t *out)
{
	return mgi_psi_parse(s, strlen(s), out);
}

static void psi_reads_both_lines(void)
{
	mgi_psi_t p;

	CHECK_INT_EQ(psi(psi6, &p), 0);
	CHECK_EQ(p.have, MGI_PSI_SOME | MGI_PSI_FULL);
	CHECK_EQ(p.some_avg10, 29);
	CHECK_EQ(p.some_avg60, 27);
	CHECK_EQ(p.some_avg300, 11);
	CHECK_EQ(p.some_total_us, 1113592671);
	CHECK_EQ(p.full_avg10, 1207);
	CHECK_EQ(p.full_avg300, 10000);
	CHECK_EQ(p.full_total_us, 247479972);
	/* a "some" line alone (no trailing newline either) is enough */
	CHECK_INT_EQ(psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0", &p), 0);
	CHECK_EQ(p.have, MGI_PSI_SOME);
}

static void psi_refuses_what_it_cannot_read(void)
{
	static const char *const bad[] = {
		"",
		"full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n", /* no "some" */
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=1\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=100.01 avg60=0.00 avg300=0.00 total=1\n", /* over 100 % */
		"some avg10=0.0 avg60=0.00 avg300=0.00 total=1\n",    /* one decimal */
		"some avg10=0.00 avg300=0.00 avg60=0.00 total=1\n",   /* out of order */
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=18446744073709551616\n",
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=\n",
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=1 \n",
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n\n",
		"some avg10=-1.00 avg60=0.00 avg300=0.00 total=1\n",
		"memory avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
	};
	mgi_psi_t p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0xab, sizeof(p));
		CHECK_MSG(psi(bad[i], &p) == -EINVAL, "accepted: '%s'", bad[i]);
		CHECK_EQ(p.have, 0);
		CHECK_EQ(p.some_total_us, 0);
	}
	/* stops at len: the same text cut inside a number is another number */
	CHECK_INT_EQ(mgi_psi_parse(psi6, strlen("some avg10=0.29 avg60=0.27 avg300=0.11 total=11"), &p), 0);
	CHECK_EQ(p.some_total_us, 11);
}

/* A whole file of this host's /proc, or skip. */
static ssize_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, got = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + got, len - (size_t)got)) > 0)
		got += n;
	close(fd);
	return got;
}

static void reads_this_host(void)
{
	static char buf[16384];
	mgi_psi_t p;
	uint64_t avail;
	ssize_t n = slurp("/proc/pressure/memory", buf, sizeof(buf));

	if (n > 0) {
		CHECK_INT_EQ(mgi_psi_parse(buf, (size_t)n, &p), 0);
		CHECK(p.have & MGI_PSI_SOME);
	}
	n = slurp("/proc/meminfo", buf, sizeof(buf));
	if (n <= 0)
		SKIP("no /proc/meminfo");
	CHECK_INT_EQ(mgi_meminfo_available(buf, (size_t)n, &avail), 0);
	CHECK_LT(0, avail);
	CHECK_EQ(avail % 1024, 0);
}

static void meminfo_available(void)
{
	static const char mi[] = "MemTotal:       16318104 kB\nMemFree:         1034104 kB\n"
				 "MemAvailable:    9876543 kB\nBuffers:          123 kB\n";
	uint64_t v = 1;

	CHECK_INT_EQ(mgi_meminfo_available(mi, strlen(mi), &v), 0);
	CHECK_EQ(v, 9876543ULL << 10);
	CHECK_INT_EQ(mgi_meminfo_available("MemTotal: 1 kB\n", 15, &v), -ENOENT);
	CHECK_EQ(v, 0);
	CHECK_INT_EQ(mgi_meminfo_available("MemAvailable: 12 MB\n", 20, &v), -EINVAL);
	CHECK_INT_EQ(mgi_meminfo_available("MemAvailable: kB\n", 17, &v), -EINVAL);
	CHECK_INT_EQ(mgi_meminfo_available("MemAvailable: 18014398509481984 kB\n", 35, &v), -EINVAL);
	CHECK_EQ(v, 0);
	/* cut at len: the line ends there */
	CHECK_INT_EQ(mgi_meminfo_available("MemAvailable: 5 kB", 18, &v), 0);
	CHECK_EQ(v, 5 << 10);
}

static mgi_psi_t full_at(uint64_t total_us)
{
	return (mgi_psi_t){.have = MGI_PSI_SOME | MGI_PSI_FULL, .full_total_us = total_us};
}

static void a_blip_never_kills(void)
{
	const mgi_host_rule_t rule = {.min_available = 100 << 20, .sustain_ms = 2000};
	mgi_host_state_t st = {0};
	uint64_t low = 50 << 20, plenty = 500 << 20;

	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 1000, plenty, NULL, NULL), MGI_HOST_FINE);
	/* short for 1.9 s, sampled every 100 ms: the cheap steps only */
	for (uint64_t t = 1100; t < 3000; t += 100)
		CHECK_INT_EQ(mgi_host_judge(&st, &rule, t, low, NULL, NULL), MGI_HOST_RECLAIM);
	/* one sample with room starts the count again */
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 3000, plenty, NULL, NULL), MGI_HOST_FINE);
	for (uint64_t t = 3100; t < 5100; t += 100)
		CHECK_INT_EQ(mgi_host_judge(&st, &rule, t, low, NULL, NULL), MGI_HOST_RECLAIM);
	/* 2 s short all along: a kill */
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 5100, low, NULL, NULL), MGI_HOST_KILL);
	/* after it, the count starts again */
	mgi_host_killed(&st, 5100);
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 5200, low, NULL, NULL), MGI_HOST_RECLAIM);
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 7100, low, NULL, NULL), MGI_HOST_KILL);
	/* unknown MemAvailable is not short */
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 7200, UINT64_MAX, NULL, NULL), MGI_HOST_FINE);
}

static void pressure_from_the_total(void)
{
	const mgi_host_rule_t rule = {.pressure_bp = 2000, .sustain_ms = 1000};
	mgi_host_state_t st = {0};
	mgi_psi_t p;
	uint32_t bp = 1;

	p = full_at(1000000);
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 10000, UINT64_MAX, &p, &bp), MGI_HOST_FINE);
	CHECK_EQ(bp, 0); /* the first sample: nothing to compare with */
	/* 500 ms of full stall over 1 s: 50 % */
	p = full_at(1500000);
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 11000, UINT64_MAX, &p, &bp), MGI_HOST_RECLAIM);
	CHECK_EQ(bp, 5000);
	/* 10 % over the next second: under 20 %, fine */
	p = full_at(1600000);
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 12000, UINT64_MAX, &p, &bp), MGI_HOST_FINE);
	CHECK_EQ(bp, 1000);
	/* stalled for 1 s all along: a kill (no floor set: pressure alone) */
	p = full_at(1900000);
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 12500, UINT64_MAX, &p, &bp), MGI_HOST_RECLAIM);
	p = full_at(2500000);
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 13500, UINT64_MAX, &p, &bp), MGI_HOST_KILL);
	CHECK_EQ(bp, 6000);
	/* a total that went back says nothing */
	p = full_at(10);
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 14500, UINT64_MAX, &p, &bp), MGI_HOST_FINE);
	CHECK_EQ(bp, 0);
	/* more stall than time (samples' clocks differ): 100 % at most */
	p = full_at(5000000);
	mgi_host_judge(&st, &rule, 15500, UINT64_MAX, &p, &bp);
	CHECK_EQ(bp, 10000);
}

static void pressure_with_memory_to_spare_never_kills(void)
{
	const mgi_host_rule_t rule = {.min_available = 100 << 20, .pressure_bp = 1000, .sustain_ms = 1000};
	mgi_host_state_t st = {0};
	mgi_psi_t p;

	for (uint64_t t = 0; t <= 5000; t += 100) {
		p = full_at(t * 1000); /* stalled all the time */
		CHECK_NE(mgi_host_judge(&st, &rule, t, 500 << 20, &p, NULL), MGI_HOST_KILL);
	}
	CHECK(st.short_now);
	/* memory short too, and it has been short (stalled) long enough */
	p = full_at(5100 * 1000);
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 5100, 50 << 20, &p, NULL), MGI_HOST_KILL);
}

/* --host-pressure's syntax: the kind, the share, the optional window;
 * and the trigger text the kernel is given. */
static void pressure_option(void)
{
	static const struct {
		const char *text;
		unsigned kind;
		uint32_t bp, window_ms;
		const char *trigger;
	} good[] = {
		{"full 10%", MGI_PSI_FULL, 1000, 1000, "full 100000 1000000"},
		{"some 25%/2s", MGI_PSI_SOME, 2500, 2000, "some 500000 2000000"},
		{"full 0.5%/500ms", MGI_PSI_FULL, 50, 500, "full 2500 500000"},
		{"full 100%/10s", MGI_PSI_FULL, 10000, 10000, "full 10000000 10000000"},
		{"some 0.01%", MGI_PSI_SOME, 1, 1000, "some 100 1000000"},
		{"full 12.34%/3", MGI_PSI_FULL, 1234, 3000, "full 370200 3000000"},
	};
	static const char *const bad[] = {
		"", "full", "full ", "full 10", "10%", "FULL 10%", "full  10%", "full 10 %", "full 0%",
		"full 100.01%", "full 101%", "full 1.234%", "full 10%/", "full 10%/1h", "full 10%/499ms",
		"full 10%/11s", "full 10%/2s ", "full -1%", "medium 10%", "full 10%%", "full .5%",
		"full 18446744073709551617%",
	};
	mgi_host_pressure_t p;
	char err[160], trig[64];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK_MSG(mgi_host_pressure_parse(good[i].text, strlen(good[i].text), &p, err, sizeof(err)) == 0,
			  "refused '%s': %s", good[i].text, err);
		CHECK_EQ(p.kind, good[i].kind);
		CHECK_EQ(p.bp, good[i].bp);
		CHECK_EQ(p.window_ms, good[i].window_ms);
		CHECK_INT_EQ(mgi_host_trigger_text(&p, trig, sizeof(trig)), (int)strlen(good[i].trigger));
		CHECK_STR_EQ(trig, good[i].trigger);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		memset(&p, 0xab, sizeof(p));
		CHECK_MSG(mgi_host_pressure_parse(bad[i], strlen(bad[i]), &p, err, sizeof(err)) == -EINVAL,
			  "accepted '%s'", bad[i]);
		CHECK_EQ(p.bp, 0);
		CHECK_MSG(err[0] != '\0', "no reason for '%s'", bad[i]);
	}
	/* the text ends at len */
	CHECK_INT_EQ(mgi_host_pressure_parse("full 10%/2sXYZ", 11, &p, err, sizeof(err)), 0);
	CHECK_EQ(p.window_ms, 2000);
	CHECK_INT_EQ(mgi_host_trigger_text(&p, trig, 8), -ENOSPC);
}

static void durations(void)
{
	uint64_t ms;

	CHECK_INT_EQ(mgi_host_duration_ms("2", 1, 60000, &ms), 0);
	CHECK_EQ(ms, 2000);
	CHECK_INT_EQ(mgi_host_duration_ms("250ms", 5, 60000, &ms), 0);
	CHECK_EQ(ms, 250);
	CHECK_INT_EQ(mgi_host_duration_ms("60s", 3, 60000, &ms), 0);
	CHECK_EQ(ms, 60000);
	CHECK_INT_EQ(mgi_host_duration_ms("61s", 3, 60000, &ms), -EINVAL);
	CHECK_INT_EQ(mgi_host_duration_ms("60001ms", 7, 60000, &ms), -EINVAL);
	CHECK_INT_EQ(mgi_host_duration_ms("", 0, 60000, &ms), -EINVAL);
	CHECK_INT_EQ(mgi_host_duration_ms("1m", 2, 60000, &ms), -EINVAL);
	CHECK_INT_EQ(mgi_host_duration_ms("s", 1, 60000, &ms), -EINVAL);
	CHECK_INT_EQ(mgi_host_duration_ms("99999999999999999999s", 21, UINT64_MAX, &ms), -EINVAL);
	CHECK_EQ(ms, 0);
}

/* --host-pressure some: the "some" total decides, "full" is not looked at. */
static void pressure_some(void)
{
	const mgi_host_rule_t rule = {.pressure_bp = 1000, .sustain_ms = 1000, .pressure_some = true};
	mgi_host_state_t st = {0};
	mgi_psi_t p = {.have = MGI_PSI_SOME | MGI_PSI_FULL};
	uint32_t bp;

	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 1000, UINT64_MAX, &p, &bp), MGI_HOST_FINE);
	p.some_total_us = 200000; /* 20 % of the next second */
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 2000, UINT64_MAX, &p, &bp), MGI_HOST_RECLAIM);
	CHECK_EQ(bp, 2000);
	p.some_total_us = 400000;
	p.full_total_us = 0;
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 3000, UINT64_MAX, &p, &bp), MGI_HOST_KILL);
	/* a "some" line alone is enough for this rule */
	p.have = MGI_PSI_SOME;
	p.some_total_us = 400000;
	CHECK_INT_EQ(mgi_host_judge(&st, &rule, 4000, UINT64_MAX, &p, &bp), MGI_HOST_FINE);
	CHECK_EQ(bp, 0);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(psi_reads_both_lines);
	MGT_RUN(psi_refuses_what_it_cannot_read);
	MGT_RUN(reads_this_host);
	MGT_RUN(meminfo_available);
	MGT_RUN(a_blip_never_kills);
	MGT_RUN(pressure_from_the_total);
	MGT_RUN(pressure_with_memory_to_spare_never_kills);
	MGT_RUN(pressure_option);
	MGT_RUN(durations);
	MGT_RUN(pressure_some);
	MGT_DONE();
}

/* hostwatch.c - memgrpd's watch on the host: a PSI trigger on /proc/pressure/memory polled for POLLPRI (or periodic reads where the kernel refuses it) and MemAvailable, judged by core/hostmem.c, handed to the host ladder. */
#include "hostwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "manager.h"
#include "oslayer.h"
#include "size.h"

/*
 * Idle costs as little as the rule allows: with --host-pressure alone and
 * a trigger the kernel took, nothing runs until the kernel says the stall
 * reached the threshold within the window; a floor (--min-available) has
 * no kernel notification, so MemAvailable is read every HOST_TICK_MS
 * (measured: 3.4 ms of CPU in 30 s, docs/benchmarks.md). While the host
 * is short it is sampled every HOST_SHORT_TICK_MS, so that a step's
 * effect shows before the next, and the sustain count (hostmem.h's rule)
 * ends on time.
 */
#define HOST_TICK_MS 500
#define HOST_SHORT_TICK_MS 200
#define PSI_PATH "/proc/pressure/memory"

static struct {
	bool on, trigger, short_now;
	int psi_fd, timerfd;
	unsigned tick_ms;
	uint64_t short_since_ms;
	mgi_host_config_t c;
	mgi_host_state_t st;
} hw = {.psi_fd = -1, .timerfd = -1};

static void tick(unsigned ms)
{
	struct itimerspec its = {{0, 0}, {0, 0}};

	if (hw.tick_ms == ms)
		return;
	hw.tick_ms = ms;
	if (ms) {
		its.it_value.tv_sec = ms / 1000;
		its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
		its.it_interval = its.it_value;
	}
	timerfd_settime(hw.timerfd, 0, &its, NULL);
}

/* The tick while the host has room: none where only the trigger matters. */
static unsigned idle_tick(void)
{
	return hw.c.rule.min_available || (hw.c.rule.pressure_bp && !hw.trigger) ? HOST_TICK_MS : 0;
}

/* One read of each file; UINT64_MAX / false for what cannot be read. */
static uint64_t read_available(void)
{
	char buf[4096];
	uint64_t avail;
	int n = mgi_os_read_small("/proc/meminfo", buf, sizeof(buf));

	return n > 0 && mgi_meminfo_available(buf, (size_t)n, &avail) == 0 ? avail : UINT64_MAX;
}

static bool read_psi(mgi_psi_t *p)
{
	char buf[512];
	int n = mgi_os_read_small(PSI_PATH, buf, sizeof(buf));

	return n > 0 && mgi_psi_parse(buf, (size_t)n, p) == 0;
}

/* A sample judged and acted on. */
static void sample(mgi_manager_t *m)
{
	uint64_t now_ms = mgi_os_now_ns() / 1000000ULL, avail = read_available();
	mgi_psi_t psi;
	bool have_psi = hw.c.rule.pressure_bp && read_psi(&psi);
	uint32_t bp = 0;
	mgi_host_verdict_t v = mgi_host_judge(&hw.st, &hw.c.rule, now_ms, avail, have_psi ? &psi : NULL, &bp);

	if (v == MGI_HOST_FINE) {
		if (hw.short_now)
			mgi_host_ladder_relieved(m, avail, now_ms - hw.short_since_ms);
		hw.short_now = false;
		tick(idle_tick());
		return;
	}
	if (!hw.short_now) {
		hw.short_now = true;
		hw.short_since_ms = now_ms;
	}
	tick(HOST_SHORT_TICK_MS);
	if (mgi_host_ladder_step(m, v, &hw.c, avail, bp, now_ms - hw.short_since_ms))
		mgi_host_killed(&hw.st, now_ms);
}

static int fail(char *err, size_t errlen, int rc, const char *what)
{
	snprintf(err, errlen, "%s: %s", what, strerror(-rc));
	mgi_hostwatch_stop();
	return rc;
}

int mgi_hostwatch_start(mgi_manager_t *m, const mgi_host_config_t *c, char *err, size_t errlen)
{
	char trig[64], floor[16];
	mgi_psi_t psi;

	hw.c = *c;
	hw.st = (mgi_host_state_t){0};
	hw.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (hw.timerfd < 0)
		return fail(err, errlen, -errno, "timerfd");
	int rc = mgi_manager_watch(m, hw.timerfd, MGI_HOST_TAG_BASE);
	if (rc != 0)
		return fail(err, errlen, rc, "epoll");
	if (c->pressure.bp) {
		/* no PSI at all (CONFIG_PSI off, psi=0): --host-pressure
		 * cannot be honoured, and saying so beats watching nothing */
		if (!read_psi(&psi)) {
			int e = access(PSI_PATH, R_OK) != 0 ? -errno : -EPROTO;
			return fail(err, errlen, e, "--host-pressure needs " PSI_PATH " (a kernel with PSI)");
		}
		mgi_host_trigger_text(&c->pressure, trig, sizeof(trig));
		hw.psi_fd = open(PSI_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (hw.psi_fd >= 0 && write(hw.psi_fd, trig, strlen(trig) + 1) > 0) {
			struct epoll_event ev = {.events = EPOLLPRI, .data.u64 = MGI_HOST_TAG_BASE + 1};
			if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, hw.psi_fd, &ev) == 0)
				hw.trigger = true;
		}
		if (!hw.trigger) {
			/* e.g. EPERM/EINVAL for an unprivileged window that is
			 * not a multiple of 2 s, EOPNOTSUPP in some containers */
			mgi_manager_log(m, "host: the kernel refused the PSI trigger '%s' on %s (%s): "
					   "reading it every %d ms instead", trig, PSI_PATH,
					strerror(errno), HOST_TICK_MS);
			if (hw.psi_fd >= 0)
				close(hw.psi_fd);
			hw.psi_fd = -1;
		}
	}
	hw.on = true;
	mgi_size_format(c->rule.min_available, floor, sizeof(floor));
	mgi_manager_log(m, "host: watching MemAvailable%s%s%s, pressure %s%s; a kill after %llu ms "
			   "short%s", c->rule.min_available ? " (floor " : " (no floor",
			c->rule.min_available ? floor : "", ")", c->pressure.bp ? "" : "not watched",
			hw.trigger ? " (PSI trigger)" : c->pressure.bp ? " (PSI read periodically)" : "",
			(unsigned long long)c->rule.sustain_ms, c->dry_run ? " (--dry-run: nothing is done)" : "");
	tick(idle_tick());
	sample(m); /* the baseline (and a host already short) */
	return 0;
}

bool mgi_hostwatch_event(mgi_manager_t *m, int64_t tag)
{
	uint64_t expirations;

	if (!hw.on || tag < MGI_HOST_TAG_BASE || tag >= MGI_HOST_TAG_BASE + MGI_HOST_TAGS)
		return false;
	if (tag == MGI_HOST_TAG_BASE && read(hw.timerfd, &expirations, sizeof(expirations)) < 0) {
		/* EAGAIN: rearmed meanwhile */
	}
	/* the trigger's POLLPRI is consumed by the poll itself (the kernel
	 * reports once per window): nothing to read */
	sample(m);
	return true;
}

void mgi_hostwatch_stop(void)
{
	if (hw.psi_fd >= 0)
		close(hw.psi_fd);
	if (hw.timerfd >= 0)
		close(hw.timerfd);
	hw.psi_fd = hw.timerfd = -1;
	hw.on = hw.trigger = false;
	hw.tick_ms = 0;
}

/* hostmem.c - PSI and MemAvailable parsed, and the host verdict with its rule against kills on a PSI blip (hostmem.h). */
#include "hostmem.h"

#include <errno.h>
#include <string.h>

/* Skips the literal lit at *p (before end): true if it was there. */
static bool lit(const char **p, const char *end, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(end - *p) < n || memcmp(*p, s, n) != 0)
		return false;
	*p += n;
	return true;
}

/* A decimal number without sign at *p: 0, or -EINVAL (no digit, or more
 * than UINT64_MAX). */
static int number(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;

	*v = 0;
	while (*p < end && **p >= '0' && **p <= '9') {
		unsigned d = (unsigned)(**p - '0');
		if (*v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		*v = *v * 10 + d;
		(*p)++;
	}
	return *p > s ? 0 : -EINVAL;
}

/* "N.DD" (a percentage: 0.00 to 100.00) as hundredths. */
static int percent(const char **p, const char *end, uint32_t *v)
{
	uint64_t whole, frac;
	const char *f;

	if (number(p, end, &whole) != 0 || !lit(p, end, "."))
		return -EINVAL;
	f = *p;
	if (number(p, end, &frac) != 0 || *p - f != 2 || whole > 100 || whole * 100 + frac > 10000)
		return -EINVAL;
	*v = (uint32_t)(whole * 100 + frac);
	return 0;
}

/* One line's fields after "some"/"full", up to its end (a newline or the
 * buffer's end). */
static int psi_line(const char **p, const char *end, uint32_t avg[3], uint64_t *total)
{
	if (!lit(p, end, " avg10=") || percent(p, end, &avg[0]) != 0 || !lit(p, end, " avg60=") ||
	    percent(p, end, &avg[1]) != 0 || !lit(p, end, " avg300=") || percent(p, end, &avg[2]) != 0 ||
	    !lit(p, end, " total=") || number(p, end, total) != 0)
		return -EINVAL;
	if (*p < end && !lit(p, end, "\n"))
		return -EINVAL;
	return 0;
}

int mgi_psi_parse(const char *buf, size_t len, mgi_psi_t *out)
{
	const char *p = buf, *end = buf + len;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		uint32_t avg[3];
		uint64_t total;
		unsigned which;
		if (lit(&p, end, "some"))
			which = MGI_PSI_SOME;
		else if (lit(&p, end, "full"))
			which = MGI_PSI_FULL;
		else
			goto bad;
		if ((out->have & which) || psi_line(&p, end, avg, &total) != 0)
			goto bad;
		out->have |= which;
		if (which == MGI_PSI_SOME) {
			out->some_avg10 = avg[0], out->some_avg60 = avg[1], out->some_avg300 = avg[2];
			out->some_total_us = total;
		} else {
			out->full_avg10 = avg[0], out->full_avg60 = avg[1], out->full_avg300 = avg[2];
			out->full_total_us = total;
		}
	}
	if (out->have & MGI_PSI_SOME)
		return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

int mgi_meminfo_available(const char *buf, size_t len, uint64_t *bytes)
{
	const char *p = buf, *end = buf + len;

	*bytes = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl : end;
		if (lit(&p, eol, "MemAvailable:")) {
			uint64_t kb;
			while (p < eol && (*p == ' ' || *p == '\t'))
				p++;
			if (number(&p, eol, &kb) != 0 || !lit(&p, eol, " kB") || p != eol ||
			    kb > UINT64_MAX >> 10)
				return -EINVAL;
			*bytes = kb << 10;
			return 0;
		}
		p = nl ? nl + 1 : end;
	}
	return -ENOENT;
}

mgi_host_verdict_t mgi_host_judge(mgi_host_state_t *st, const mgi_host_rule_t *rule, uint64_t now_ms,
				  uint64_t avail, const mgi_psi_t *psi, uint32_t *stall_bp)
{
	bool full = psi && (psi->have & MGI_PSI_FULL);
	uint32_t stall = 0;

	/* the stall share since the last sample: a total that went back
	 * (another reader's file? a reset) or no time passed says nothing */
	if (full && st->have_last && now_ms > st->last_ms && psi->full_total_us >= st->last_full_us) {
		uint64_t waited_us = psi->full_total_us - st->last_full_us;
		uint64_t span_us = (now_ms - st->last_ms) * 1000;
		uint64_t bp = waited_us >= span_us ? 10000 : waited_us * 10000 / span_us;
		stall = (uint32_t)bp;
	}
	if (full) {
		st->have_last = true;
		st->last_ms = now_ms;
		st->last_full_us = psi->full_total_us;
	}
	if (stall_bp)
		*stall_bp = stall;

	bool mem_short = rule->min_available && avail != UINT64_MAX && avail < rule->min_available;
	bool stalled = rule->pressure_bp && stall >= rule->pressure_bp;
	if (!mem_short && !stalled) {
		st->short_now = false;
		return MGI_HOST_FINE;
	}
	if (!st->short_now) {
		st->short_now = true;
		st->short_since_ms = now_ms;
	}
	/* the blip rule (hostmem.h): short all along for sustain_ms, and
	 * memory itself short where a floor is set */
	if (now_ms - st->short_since_ms >= rule->sustain_ms && (mem_short || !rule->min_available))
		return MGI_HOST_KILL;
	return MGI_HOST_RECLAIM;
}

void mgi_host_killed(mgi_host_state_t *st, uint64_t now_ms)
{
	st->short_since_ms = now_ms;
}

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
	unsigned kind = rule->pressure_some ? MGI_PSI_SOME : MGI_PSI_FULL;
	bool full = psi && (psi->have & kind);
	uint64_t total = !full ? 0 : rule->pressure_some ? psi->some_total_us : psi->full_total_us;
	uint32_t stall = 0;

	/* the stall share since the last sample: a total that went back
	 * (another reader's file? a reset) or no time passed says nothing */
	if (full && st->have_last && now_ms > st->last_ms && total >= st->last_full_us) {
		uint64_t waited_us = total - st->last_full_us;
		uint64_t span_us = (now_ms - st->last_ms) * 1000;
		uint64_t bp = waited_us >= span_us ? 10000 : waited_us * 10000 / span_us;
		stall = (uint32_t)bp;
	}
	if (full) {
		st->have_last = true;
		st->last_ms = now_ms;
		st->last_full_us = total;
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

/* An error message, as size.c's. */
static int fail(char *err, size_t errlen, const char *why)
{
	if (errlen) {
		size_t n = strlen(why) < errlen - 1 ? strlen(why) : errlen - 1;
		memcpy(err, why, n);
		err[n] = '\0';
	}
	return -EINVAL;
}

int mgi_host_duration_ms(const char *text, size_t len, uint64_t max_ms, uint64_t *ms)
{
	const char *p = text, *end = text + len;
	uint64_t n;

	*ms = 0;
	if (number(&p, end, &n) != 0 || n > max_ms)
		return -EINVAL;
	if (p == end || lit(&p, end, "s")) {
		if (n > max_ms / 1000)
			return -EINVAL;
		n *= 1000;
	} else if (!lit(&p, end, "ms")) {
		return -EINVAL;
	}
	if (p != end)
		return -EINVAL;
	*ms = n;
	return 0;
}

static int pressure_parse(const char *text, size_t len, mgi_host_pressure_t *out, char *err,
			    size_t errlen)
{
	const char *p = text, *end = text + len, *w;
	uint64_t whole, frac = 0, window = MGI_HOST_WINDOW_DEFAULT_MS;

	if (lit(&p, end, "some "))
		out->kind = MGI_PSI_SOME;
	else if (lit(&p, end, "full "))
		out->kind = MGI_PSI_FULL;
	else
		return fail(err, errlen, "a kind first, \"some\" or \"full\" (e.g. \"full 10%\")");
	if (number(&p, end, &whole) != 0 || whole > 100)
		return fail(err, errlen, "a share of time from 0.01% to 100% after the kind (e.g. \"full 10%\")");
	if (lit(&p, end, ".")) {
		const char *f = p;
		if (number(&p, end, &frac) != 0 || p - f > 2)
			return fail(err, errlen, "at most two decimals in the percentage");
		if (p - f == 1)
			frac *= 10;
	}
	if (!lit(&p, end, "%"))
		return fail(err, errlen, "the share ends with '%' (e.g. \"full 10%\")");
	if (whole * 100 + frac > 10000 || whole * 100 + frac == 0)
		return fail(err, errlen, "a share of time from 0.01% to 100%");
	if (lit(&p, end, "/")) {
		w = p;
		if (mgi_host_duration_ms(w, (size_t)(end - w), MGI_HOST_WINDOW_MAX_MS, &window) != 0 ||
		    window < MGI_HOST_WINDOW_MIN_MS) {
					return fail(err, errlen, "the window after '/' is a duration from 500ms to 10s "
						 "(e.g. \"full 10%/2s\")");
		}
		p = end;
	}
	if (p != end) {
			return fail(err, errlen, "nothing after the share but an optional /WINDOW (e.g. "
					 "\"some 25%/2s\")");
	}
	out->bp = (uint32_t)(whole * 100 + frac);
	out->window_ms = (uint32_t)window;
	return 0;
}

int mgi_host_pressure_parse(const char *text, size_t len, mgi_host_pressure_t *out, char *err,
			    size_t errlen)
{
	int rc = pressure_parse(text, len, out, err, errlen);

	if (rc != 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int mgi_host_trigger_text(const mgi_host_pressure_t *p, char *buf, size_t len)
{
	static const char digits[] = "0123456789";
	uint64_t window_us = (uint64_t)p->window_ms * 1000;
	/* the kernel wants a stall of at least 1 us within the window */
	uint64_t stall_us = window_us * p->bp / 10000 ? window_us * p->bp / 10000 : 1;
	uint64_t v[2] = {stall_us, window_us};
	char tmp[64];
	size_t at = 0;

	memcpy(tmp, p->kind == MGI_PSI_SOME ? "some" : "full", 4);
	at = 4;
	for (int i = 0; i < 2; i++) {
		char d[24];
		int nd = 0;
		uint64_t x = v[i];
		do {
			d[nd++] = digits[x % 10];
			x /= 10;
		} while (x);
		tmp[at++] = ' ';
		while (nd)
			tmp[at++] = d[--nd];
	}
	if (at + 1 > len)
		return -ENOSPC;
	memcpy(buf, tmp, at);
	buf[at] = '\0';
	return (int)at;
}

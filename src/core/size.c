/* size.c - parsing and formatting sizes with K/M/G/T/P suffixes and "max". */
#include "size.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Enough fraction digits for any 64-bit result; later digits cannot change
 * the rounded-down byte count by more than it already is truncated. */
#define FRACTION_DIGITS_MAX 19

static int fail(int code, char *err, size_t errlen, const char *text,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(int code, char *err, size_t errlen, const char *text,
		const char *fmt, ...)
{
	char why[96];
	va_list ap;

	if (!err || errlen == 0)
		return code;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* %.40s: a huge argument must not turn into a huge message. */
	snprintf(err, errlen, "'%.40s%s': %s", text, strlen(text) > 40 ? "..." : "",
		 why);
	return code;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool word_is(const char *text, const char *word)
{
	for (; *word; text++, word++)
		if (lower(*text) != *word)
			return false;
	return *text == '\0';
}

static int suffix_shift(char c)
{
	switch (lower(c)) {
	case 'k': return 10;
	case 'm': return 20;
	case 'g': return 30;
	case 't': return 40;
	case 'p': return 50;
	case 'e': return 60;
	default: return -1;
	}
}

int mgi_size_parse(const char *text, uint64_t *out, char *err, size_t errlen)
{
	unsigned __int128 whole = 0, frac = 0, frac_scale = 1, value;
	const char *p = text;
	bool has_frac = false;
	int shift = 0;

	if (!text || !*text)
		return fail(-EINVAL, err, errlen, text ? text : "",
			    "empty size (expected e.g. 4096, 64K, 1.5G or max)");
	if (word_is(text, "max") || word_is(text, "infinity")) {
		*out = MGI_SIZE_MAX;
		return 0;
	}
	if (!is_digit(*p))
		return fail(-EINVAL, err, errlen, text,
			    "a size starts with a digit (e.g. 4096, 64K, 1.5G) or is 'max'");
	for (; is_digit(*p); p++) {
		whole = whole * 10 + (unsigned)(*p - '0');
		if (whole > UINT64_MAX)
			return fail(-ERANGE, err, errlen, text,
				    "too large for 64 bits (use 'max' for no limit)");
	}
	if (*p == '.') {
		unsigned digits = 0;

		has_frac = true;
		p++;
		if (!is_digit(*p))
			return fail(-EINVAL, err, errlen, text,
				    "expected a digit after '.'");
		for (; is_digit(*p); p++) {
			if (digits++ >= FRACTION_DIGITS_MAX)
				continue;
			frac = frac * 10 + (unsigned)(*p - '0');
			frac_scale *= 10;
		}
	}
	if (*p) {
		shift = suffix_shift(*p);
		if (shift >= 0) {
			p++;
			if (lower(p[0]) == 'i' && lower(p[1]) == 'b')
				p += 2;
			else if (lower(p[0]) == 'b')
				p++;
		} else if (lower(*p) == 'b' && p[1] == '\0') {
			shift = 0;
			p++;
		} else {
			return fail(-EINVAL, err, errlen, text,
				    "unknown suffix '%.8s' (use K, M, G, T, P or E)", p);
		}
		if (*p)
			return fail(-EINVAL, err, errlen, text,
				    "unexpected '%.8s' after the unit", p);
	}
	if (has_frac && shift == 0)
		return fail(-EINVAL, err, errlen, text,
			    "a fraction needs a unit (e.g. 1.5G)");

	/* whole < 2^64 and shift <= 60, so this fits in 128 bits; so does
	 * frac << shift with frac < 10^19 < 2^64. */
	value = (whole << shift) + ((frac << shift) / frac_scale);
	if (value > UINT64_MAX)
		return fail(-ERANGE, err, errlen, text, "too large for 64 bits (use 'max' for no limit)");
	*out = (uint64_t)value;
	return 0;
}

int mgi_size_parse_limit(const char *text, uint64_t *out, char *err, size_t errlen)
{
	uint64_t v;
	char most[16];
	int rc;

	if (text && (word_is(text, "max") || word_is(text, "infinity"))) {
		*out = MGI_SIZE_MAX;
		return 0;
	}
	rc = mgi_size_parse(text, &v, err, errlen);
	if (rc == -ERANGE || (rc == 0 && !mgi_size_is_limit(v)))
		return fail(-ERANGE, err, errlen, text,
			    "beyond the largest limit (%s); use 'max' for no limit",
			    mgi_size_format(MGI_SIZE_LIMIT_MAX, most, sizeof(most)));
	if (rc == 0)
		*out = v;
	return rc;
}

char *mgi_size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	int u = -1;
	uint64_t scale = 1;

	if (len == 0)
		return buf;
	if (bytes == MGI_SIZE_MAX) {
		snprintf(buf, len, "max");
		return buf;
	}
	while (u < 5 && bytes / scale >= 1024) {
		scale <<= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)bytes);
	else if (bytes % scale == 0)
		snprintf(buf, len, "%llu%c", (unsigned long long)(bytes / scale),
			 units[u]);
	else
		/* Tenths, rounded down so that "1.9G" never means more than is. */
		snprintf(buf, len, "%llu.%llu%c",
			 (unsigned long long)(bytes / scale),
			 (unsigned long long)((bytes % scale) * 10 / scale), units[u]);
	return buf;
}

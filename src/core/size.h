/* size.h - the one parser and formatter for sizes ("4096", "64K", "1.5G", "max"). */
#ifndef MGI_CORE_SIZE_H
#define MGI_CORE_SIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counter.h"
#include "page.h"

/* The value "max" parses to: no limit. */
#define MGI_SIZE_MAX UINT64_MAX

/*
 * Parses a size in bytes: a decimal number, optionally with a fraction, and
 * an optional binary suffix K, M, G, T, P or E (case-insensitive, powers of
 * 1024, an optional trailing "B" or "iB" allowed: "64KiB", "64kb"); or the
 * word "max" (or "infinity") for no limit. A fraction needs a suffix
 * ("1.5G"); the result is rounded down to a whole byte. No sign, no spaces,
 * no hex, no exponent.
 *
 * Returns 0 and stores the value, or a negative errno and leaves *out
 * unaltered: -EINVAL for malformed text, -ERANGE when the value does not
 * fit in 64 bits. If err is not NULL, on error it receives a one-line
 * description ("'12X': unknown suffix 'X' (use K, M, G, T, P or E)").
 */
int mgi_size_parse(const char *text, uint64_t *out, char *err, size_t errlen);

/* The largest byte count a limit may name: its pages must stay below
 * MGI_PAGES_UNLIMITED (counter.h), the counters' "no limit". */
#define MGI_SIZE_LIMIT_MAX (MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE - 1)

/* Whether bytes may be a limit: at most MGI_SIZE_LIMIT_MAX. (MGI_SIZE_MAX,
 * "max", is no limit and is the caller's to accept.) */
static inline bool mgi_size_is_limit(uint64_t bytes)
{
	return bytes <= MGI_SIZE_LIMIT_MAX;
}

/*
 * Parses a limit: as mgi_size_parse, but only the word "max" (or
 * "infinity") means no limit (MGI_SIZE_MAX); a number beyond
 * MGI_SIZE_LIMIT_MAX, which the counters cannot hold, is refused with
 * -ERANGE and a reason, never read as "max".
 */
int mgi_size_parse_limit(const char *text, uint64_t *out, char *err, size_t errlen);

/*
 * Formats bytes for people: "max", whole units when exact ("64M"), else one
 * decimal ("1.5G") or plain bytes under 1K. Always NUL-terminates; returns
 * buf. 16 bytes are always enough.
 */
char *mgi_size_format(uint64_t bytes, char *buf, size_t len);

#endif

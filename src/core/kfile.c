/* kfile.c - parsers of the kernel memory cgroup's text files (see kfile.h). */
#include "kfile.h"

#include <errno.h>
#include <string.h>

/* Parses a decimal u64 at p (at least one digit, no sign); returns the
 * number of bytes used, 0 if none or on overflow. */
static size_t parse_dec(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	if (i)
		*out = v;
	return i;
}

static size_t line_len(const char *p, size_t len)
{
	const char *nl = memchr(p, '\n', len);
	return nl ? (size_t)(nl - p) : len;
}

int mgi_kfile_keyed(const char *buf, size_t len, const char *const *keys, unsigned nkeys,
		    uint64_t *vals, uint32_t *found)
{
	uint64_t tmp[32];
	uint32_t seen = 0;
	size_t pos = 0;

	if (nkeys > 32)
		return -EINVAL;
	while (pos < len) {
		const char *l = buf + pos;
		size_t n = line_len(l, len - pos);
		const char *sp = memchr(l, ' ', n);
		uint64_t v;

		pos += n + 1;
		if (n == 0)
			continue; /* a blank line (only ever the last) */
		if (!sp || sp == l)
			return -EINVAL;
		size_t klen = (size_t)(sp - l), vlen = n - klen - 1;
		if (vlen == 0 || parse_dec(sp + 1, vlen, &v) != vlen)
			return -EINVAL;
		for (unsigned k = 0; k < nkeys; k++)
			if (strlen(keys[k]) == klen && memcmp(keys[k], l, klen) == 0) {
				tmp[k] = v;
				seen |= 1u << k;
			}
	}
	for (unsigned k = 0; k < nkeys; k++)
		if (seen & (1u << k))
			vals[k] = tmp[k];
	*found = seen;
	return 0;
}

int mgi_kfile_u64(const char *buf, size_t len, uint64_t *out)
{
	uint64_t v;
	size_t n;

	if (len && buf[len - 1] == '\n')
		len--;
	if (len == 3 && memcmp(buf, "max", 3) == 0) {
		*out = UINT64_MAX;
		return 0;
	}
	n = parse_dec(buf, len, &v);
	if (n == 0 || n != len)
		return -EINVAL;
	*out = v;
	return 0;
}

int mgi_kfile_has_word(const char *buf, size_t len, const char *word)
{
	size_t wl = strlen(word), i = 0;

	while (i < len) {
		while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == ','))
			i++;
		size_t s = i;
		while (i < len && buf[i] != ' ' && buf[i] != '\n' && buf[i] != ',')
			i++;
		/* cgroup.subtree_control lists names; a '+' may lead in writes */
		if (i - s == wl && wl && memcmp(buf + s, word, wl) == 0)
			return 1;
	}
	return 0;
}

int mgi_kfile_proc_cgroup(const char *buf, size_t len, int version, char *out, size_t outlen)
{
	size_t pos = 0;

	while (pos < len) {
		const char *l = buf + pos;
		size_t n = line_len(l, len - pos);
		const char *c1, *c2;

		pos += n + 1;
		/* "ID:CONTROLLERS:PATH"; the path may itself hold ':' */
		if (!(c1 = memchr(l, ':', n)) || !(c2 = memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - l))))
			continue;
		size_t clen = (size_t)(c2 - c1 - 1), plen = n - (size_t)(c2 + 1 - l);
		int match = version == 2 ? (clen == 0 && c1 - l == 1 && l[0] == '0')
					 : mgi_kfile_has_word(c1 + 1, clen, "memory");
		if (!match)
			continue;
		if (plen == 0 || c2[1] != '/')
			return -EINVAL;
		if (plen >= outlen)
			return -ENAMETOOLONG;
		memcpy(out, c2 + 1, plen);
		out[plen] = '\0';
		if (memchr(out, '\0', plen))
			return -EINVAL;
		return 0;
	}
	return -ENOENT;
}

/* The next space-separated field of a mounts line. */
static const char *field(const char *p, const char *end, size_t *flen)
{
	while (p < end && *p == ' ')
		p++;
	const char *s = p;
	while (p < end && *p != ' ')
		p++;
	*flen = (size_t)(p - s);
	return s;
}

int mgi_kfile_mount_line(const char *line, size_t len, char *dir, size_t dirlen)
{
	const char *end = line + line_len(line, len), *f[4];
	size_t fl[4], o = 0;

	const char *p = line;
	for (int k = 0; k < 4; k++) {
		f[k] = field(p, end, &fl[k]);
		if (fl[k] == 0)
			return -EINVAL;
		p = f[k] + fl[k];
	}
	int kind = 0;
	if (fl[2] == 7 && memcmp(f[2], "cgroup2", 7) == 0)
		kind = 2;
	else if (fl[2] == 6 && memcmp(f[2], "cgroup", 6) == 0 && mgi_kfile_has_word(f[3], fl[3], "memory"))
		kind = 1;
	/* The mount point, with the kernel's octal escapes of space, tab,
	 * newline and backslash decoded. */
	for (size_t i = 0; i < fl[1]; i++) {
		char c = f[1][i];
		if (c == '\\') {
			if (i + 3 >= fl[1] || f[1][i + 1] < '0' || f[1][i + 1] > '3' ||
			    f[1][i + 2] < '0' || f[1][i + 2] > '7' || f[1][i + 3] < '0' ||
			    f[1][i + 3] > '7')
				return -EINVAL;
			c = (char)((f[1][i + 1] - '0') * 64 + (f[1][i + 2] - '0') * 8 + (f[1][i + 3] - '0'));
			i += 3;
		}
		if (c == '\0')
			return -EINVAL;
		if (o + 1 >= dirlen)
			return -ENAMETOOLONG;
		dir[o++] = c;
	}
	dir[o] = '\0';
	return kind;
}

/* group.c - group names: checks, depth, parent, ancestry. */
#include "group.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "counter.h" /* MGI_DEPTH_MAX */

static int bad(char *err, size_t errlen, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", why);
	return -EINVAL;
}

static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

int mgi_group_name_check(const char *name, char *err, size_t errlen)
{
	size_t len = strnlen(name, MGI_GROUP_NAME_MAX);
	unsigned depth = 0;

	if (len == 0)
		return bad(err, errlen, "empty group name");
	if (len == MGI_GROUP_NAME_MAX)
		return bad(err, errlen, "group name longer than 127 characters");
	for (const char *p = name; *p;) {
		size_t n = 0;
		if (*p == '.')
			return bad(err, errlen, "a group name component may not start with '.'");
		while (p[n] && p[n] != '/') {
			if (!name_char(p[n]))
				return bad(err, errlen,
					   "group names use letters, digits, '_', '-', '.' and '/'");
			n++;
		}
		if (n == 0)
			return bad(err, errlen, "empty component in group name (leading, trailing or double '/')");
		if (n > MGI_GROUP_COMPONENT_MAX)
			return bad(err, errlen, "group name component longer than 63 characters");
		if (++depth > MGI_DEPTH_MAX)
			return bad(err, errlen, "groups nest at most 8 deep");
		p += n;
		if (*p == '/' && !*++p)
			return bad(err, errlen, "empty component in group name (leading, trailing or double '/')");
	}
	return 0;
}

unsigned mgi_group_depth(const char *name)
{
	unsigned d = *name ? 1 : 0;

	for (; *name; name++)
		d += *name == '/';
	return d;
}

void mgi_group_parent(const char *name, char *out)
{
	const char *slash = strrchr(name, '/');
	size_t n = slash ? (size_t)(slash - name) : 0;

	memcpy(out, name, n);
	out[n] = '\0';
}

int mgi_group_is_under(const char *name, const char *ancestor)
{
	size_t n = strlen(ancestor);

	if (n == 0)
		return 1;
	return strncmp(name, ancestor, n) == 0 && (name[n] == '\0' || name[n] == '/');
}

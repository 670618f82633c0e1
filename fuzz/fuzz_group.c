/* fuzz_group.c - libFuzzer target for group names: the check, depth, parent, ancestry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"
#include "group.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char name[MGI_GROUP_NAME_MAX + 32], err[96], parent[MGI_GROUP_NAME_MAX];

	if (len >= sizeof(name))
		len = sizeof(name) - 1;
	memcpy(name, data, len);
	name[len] = '\0';

	memset(err, 'x', sizeof(err));
	if (mgi_group_name_check(name, err, sizeof(err)) != 0) {
		/* Refused with a reason, always a terminated string. */
		if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
			abort();
		return 0;
	}
	/* A valid name: 1..8 components, its parent is valid or the root,
	 * one level up, and the name is under its parent and the root. */
	unsigned depth = mgi_group_depth(name);
	if (depth < 1 || depth > MGI_DEPTH_MAX || strlen(name) >= MGI_GROUP_NAME_MAX)
		abort();
	mgi_group_parent(name, parent);
	if (mgi_group_depth(parent) != depth - 1)
		abort();
	if (*parent && mgi_group_name_check(parent, NULL, 0) != 0)
		abort();
	if (!mgi_group_is_under(name, parent) || !mgi_group_is_under(name, "") ||
	    !mgi_group_is_under(name, name) || (*parent && mgi_group_is_under(parent, name)))
		abort();
	return 0;
}

/* group.h - group names: "web/api" paths, their checks and their parents. */
#ifndef MGI_CORE_GROUP_H
#define MGI_CORE_GROUP_H

#include <stddef.h>

/*
 * A group is named by its path from the root: components separated by '/',
 * like a cgroup directory ("web", "web/api"). The root group is the empty
 * name. Each component is 1 to 63 characters from [A-Za-z0-9_.-] and does
 * not start with '.'; there are at most MGI_DEPTH_MAX (counter.h)
 * components, because a charge walks one counter per level.
 */

/* Longest name, with its NUL (the segment and the messages use it too). */
#define MGI_GROUP_NAME_MAX 128
#define MGI_GROUP_COMPONENT_MAX 63

/* Returns 0 if name is a valid group name other than the root, or -EINVAL
 * with a one-line reason in err (if not NULL). */
int mgi_group_name_check(const char *name, char *err, size_t errlen);

/* Number of components: 0 for the root, 1 for "web", 2 for "web/api". */
unsigned mgi_group_depth(const char *name);

/* Writes the parent's name ("" for a top-level group) to out, which has
 * MGI_GROUP_NAME_MAX bytes. name must be valid and not the root. */
void mgi_group_parent(const char *name, char *out);

/* Whether `name` is `ancestor` or below it ("web/api" is under "web" and
 * under the root "", not under "we"). */
int mgi_group_is_under(const char *name, const char *ancestor);

#endif

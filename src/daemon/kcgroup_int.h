/* kcgroup_int.h - what kcgroup.c and kcgroup_clean.c share. */
#ifndef MGI_DAEMON_KCGROUP_INT_H
#define MGI_DAEMON_KCGROUP_INT_H

#include <stdbool.h>

#include "kcgroup.h"

#define PATH_LEN 512

/* mount + base [+ "/" group] [+ "/" leaf] [+ "/" file] into out
 * (PATH_LEN): 0 or -ENAMETOOLONG. */
int mgi_kcg_path_of(const mgi_kcg_t *k, const char *group, bool procs, const char *file, char *out);

#endif

/* rss.h - the test programs' own anonymous RSS, as the kernel reports it. */
#ifndef MGT_PROGS_RSS_H
#define MGT_PROGS_RSS_H

#include <stdio.h>

/* This process's anonymous RSS in KiB (RssAnon in /proc/self/status), or -1. */
static inline long rss_anon_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

#endif

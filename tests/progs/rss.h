/* rss.h - the test programs' own anonymous RSS (and other status figures), as the kernel reports it. */
#ifndef MGT_PROGS_RSS_H
#define MGT_PROGS_RSS_H

#include <stdio.h>
#include <string.h>

/* A "NAME: N kB" figure of /proc/self/status (name with its colon), or -1. */
static inline long status_kb(const char *name)
{
	char line[256];
	size_t len = strlen(name);
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, len) == 0 && sscanf(line + len, " %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* This process's anonymous RSS in KiB (RssAnon in /proc/self/status), or -1. */
static inline long rss_anon_kb(void)
{
	return status_kb("RssAnon:");
}

#endif

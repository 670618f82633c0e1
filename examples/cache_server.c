/* cache_server.c - a cache that cooperates with memgrp: it registers a
 * threshold on its own group through libmemgrp and, when usage crosses it,
 * drops the least recently used half of its cache instead of waiting to be
 * killed. Run it under `memgrp run -m 64M -- cache_server`.
 *
 * Usage: cache_server [--no-cooperate] [REQUESTS] [ENTRY_KB]
 * Each request stores one entry (a filled buffer) in the cache; the cache
 * never evicts on its own, as a naive cache would not. With --no-cooperate
 * it ignores memgrp and is killed at the limit. */
#include <malloc.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memgrp.h"

struct entry {
	unsigned char *data;
	size_t len;
};

int main(int argc, char **argv)
{
	bool cooperate = true;
	int a = 1;
	if (argc > 1 && !strcmp(argv[1], "--no-cooperate")) {
		cooperate = false;
		a++;
	}
	long requests = argc > a ? atol(argv[a]) : 400;
	size_t entry = (size_t)(argc > a + 1 ? atol(argv[a + 1]) : 512) << 10;
	struct entry *cache = calloc((size_t)requests, sizeof(*cache));
	long oldest = 0, count = 0, shrinks = 0, dropped = 0, most = 0;
	mg_client_t *c = NULL;
	int efd = -1;
	char lim[16], at[16];

	if (cooperate) {
		int err;
		mg_stats_t st;
		c = mg_connect(NULL, &err);
		if (!c || mg_stats(c, NULL, &st) != 0 || st.limit == 0) {
			fprintf(stderr, "cache_server: not under memgrp (%s): not cooperating\n",
				c ? mg_last_error(c) : "no manager");
		} else {
			/* Shrink at 70 % of the group's limit: room to react. */
			uint64_t threshold = st.limit / 10 * 7;
			efd = mg_threshold_add(c, NULL, MG_COUNTER_MEMORY, threshold);
			if (efd < 0)
				fprintf(stderr, "cache_server: %s\n", mg_last_error(c));
			printf("cache_server: group limit %s, shrinking at %s\n",
			       mg_format_size(st.limit, lim, sizeof(lim)),
			       mg_format_size(threshold, at, sizeof(at)));
		}
	}
	for (long r = 0; r < requests; r++) {
		struct entry *e = &cache[r];
		e->len = entry;
		e->data = malloc(entry);
		if (!e->data)
			return 1;
		memset(e->data, (int)(r & 0xff), entry);
		count++;
		if (count > most)
			most = count;
		usleep(500); /* the time to serve a request */
		struct pollfd p = {.fd = efd, .events = POLLIN};
		if (efd < 0 || poll(&p, 1, 0) != 1)
			continue;
		mg_event_read(efd);
		mg_stats_t st;
		if (mg_stats(c, NULL, &st) != 0 || st.usage < st.limit / 10 * 7)
			continue; /* a downward crossing: nothing to do */
		/* Drop the older half, and give the memory back to the system. */
		long drop = count / 2;
		for (long i = 0; i < drop; i++, oldest++) {
			free(cache[oldest].data);
			cache[oldest].data = NULL;
		}
		malloc_trim(0);
		count -= drop;
		dropped += drop;
		shrinks++;
		mg_stats_t after;
		mg_stats(c, NULL, &after);
		printf("cache_server: usage %s crossed the threshold: dropped %ld entries, usage now %s\n",
		       mg_format_size(st.usage, lim, sizeof(lim)), drop,
		       mg_format_size(after.usage, at, sizeof(at)));
		fflush(stdout);
	}
	/* Check what is left before saying so. */
	for (long i = oldest; i < requests; i++)
		for (size_t k = 0; k < cache[i].len; k += 4096)
			if (cache[i].data[k] != (unsigned char)(i & 0xff))
				return 2;
	printf("cache_server: served %ld requests, cache peaked at %ld entries, shrank %ld times "
	       "(%ld entries dropped), the rest verified\n", requests, most, shrinks, dropped);
	mg_close(c);
	return 0;
}

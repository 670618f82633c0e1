/* cache_server.c - a cache that cooperates with memgrp: it registers a
 * threshold on its own group through libmemgrp and, when usage crosses it,
 * drops the least recently used half of its cache instead of waiting to be
 * killed. Run it under `memgrp run -m 64M -- cache_server`.
 *
 * Usage: cache_server [--no-cooperate | --when-asked] [REQUESTS] [ENTRY_KB]
 * Each request stores one entry (a filled buffer) in the cache; the cache
 * never evicts on its own, as a naive cache would not. With --no-cooperate
 * it ignores memgrp and is killed at the limit. With --when-asked it
 * registers no threshold: it declares itself a cooperating client
 * (mg_cooperate_add), and a thread of its own frees what the manager asks
 * for when the group reaches its limit. */
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
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

/* The cache, shared with the cooperating thread in --when-asked mode. The
 * lock is never held while touching new memory: a thread that faults at the
 * limit waits for the manager, which may be waiting for the other thread. */
static struct entry *cache;
static long oldest, count, dropped, asked_times;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static long drop_oldest(long n)
{
	long done = 0;
	for (; done < n && count > 0; done++, oldest++, count--) {
		free(cache[oldest].data);
		cache[oldest].data = NULL;
	}
	dropped += done;
	return done;
}

struct coop {
	mg_client_t *c;
	int efd;
	size_t entry;
};

static void *cooperator_main(void *arg)
{
	struct coop *co = arg;
	for (;;) {
		int64_t pages = mg_event_read(co->efd);
		if (pages <= 0)
			return NULL;
		long want = (long)(((uint64_t)pages * 4096 + co->entry - 1) / co->entry);
		pthread_mutex_lock(&lock);
		long done = drop_oldest(want);
		asked_times++;
		pthread_mutex_unlock(&lock);
		malloc_trim(0);
		mg_cooperate_done(co->c, co->efd);
		printf("cache_server: asked to free %lld KiB: dropped %ld entries\n",
		       (long long)pages * 4, done);
		fflush(stdout);
	}
}
int main(int argc, char **argv)
{
	bool cooperate = true, when_asked = false;
	int a = 1;
	if (argc > 1 && !strcmp(argv[1], "--no-cooperate")) {
		cooperate = false;
		a++;
	} else if (argc > 1 && !strcmp(argv[1], "--when-asked")) {
		when_asked = true;
		a++;
		/* Entries come from mmap and go back with munmap, always. glibc
		 * raises its mmap threshold after such a free, and later entries
		 * would come from the heap: a thread growing the heap faults in new
		 * memory while holding the allocator's lock, and if it waits at the
		 * limit there, the cooperator's free() waits for that lock and frees
		 * nothing (seen: "the cooperating client freed 0 in 200 ms", then an
		 * OOM kill, under the kernel backend). A program that frees memory
		 * when asked must not free through a lock a faulting thread can hold
		 * (here the cooperator is another thread; in the threshold mode
		 * below the thread that allocates frees too). */
		mallopt(M_MMAP_THRESHOLD, 128 << 10);
	}
	long requests = argc > a ? atol(argv[a]) : 400;
	size_t entry = (size_t)(argc > a + 1 ? atol(argv[a + 1]) : 512) << 10;
	long shrinks = 0, most = 0;
	cache = calloc((size_t)requests, sizeof(*cache));
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
		} else if (when_asked) {
			static struct coop co;
			pthread_t t;
			co.c = c;
			co.entry = entry;
			co.efd = mg_cooperate_add(c, NULL, 100);
			if (co.efd < 0 || pthread_create(&t, NULL, cooperator_main, &co) != 0) {
				fprintf(stderr, "cache_server: %s\n", mg_last_error(c));
				return 1;
			}
			printf("cache_server: group limit %s, freeing when asked\n",
			       mg_format_size(st.limit, lim, sizeof(lim)));
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
		unsigned char *data = malloc(entry);
		if (!data)
			return 1;
		memset(data, (int)(r & 0xff), entry); /* may wait at the limit */
		pthread_mutex_lock(&lock);
		cache[r] = (struct entry){.data = data, .len = entry};
		count++;
		if (count > most)
			most = count;
		pthread_mutex_unlock(&lock);
		usleep(500); /* the time to serve a request */
		struct pollfd p = {.fd = efd, .events = POLLIN};
		if (efd < 0 || poll(&p, 1, 0) != 1)
			continue;
		mg_event_read(efd);
		mg_stats_t st;
		if (mg_stats(c, NULL, &st) != 0 || st.usage < st.limit / 10 * 7)
			continue; /* a downward crossing: nothing to do */
		/* Drop the older half, and give the memory back to the system. */
		pthread_mutex_lock(&lock);
		long drop = drop_oldest(count / 2);
		pthread_mutex_unlock(&lock);
		malloc_trim(0);
		shrinks++;
		mg_stats_t after;
		mg_stats(c, NULL, &after);
		printf("cache_server: usage %s crossed the threshold: dropped %ld entries, usage now %s\n",
		       mg_format_size(st.usage, lim, sizeof(lim)), drop,
		       mg_format_size(after.usage, at, sizeof(at)));
		fflush(stdout);
	}
	/* Check what is left before saying so. */
	pthread_mutex_lock(&lock);
	for (long i = oldest; i < requests; i++)
		for (size_t k = 0; k < cache[i].len; k += 4096)
			if (cache[i].data[k] != (unsigned char)(i & 0xff))
				return 2;
	printf("cache_server: served %ld requests, cache peaked at %ld entries, shrank %ld times "
	       "on its threshold and %ld times when asked (%ld entries dropped), the rest verified\n",
	       requests, most, shrinks, asked_times, dropped);
	pthread_mutex_unlock(&lock);
	mg_close(c);
	return 0;
}

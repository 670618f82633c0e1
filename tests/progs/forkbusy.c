/* forkbusy.c - forks while the agent's handler is busy evicting; each child must evict for itself. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/*
 * Usage: prog_forkbusy BUSY_MB CHILD_MB FORKS
 *
 * A thread keeps rewriting BUSY_MB (more than the group's limit), so the
 * agent's handler spends most of its time evicting, while the main thread
 * forks FORKS times at random moments. Each child writes CHILD_MB of new
 * memory with a pattern and verifies it: it can only get there by evicting
 * (its copy of the busy buffer already fills the limit). A child whose
 * agent inherited its parent's handler mid-eviction and took that state
 * for its own would never evict: its faults would wait, or it would be
 * killed. Exit 0 when every child verified its memory and the busy buffer
 * is intact.
 */

#define PAGE 4096UL

static unsigned char *busy;
static size_t busy_len;
static atomic_bool stop;
static atomic_ulong passes;

static void *rewriter(void *arg)
{
	(void)arg;
	rewrite_until(busy, busy_len, &stop, &passes, "busy buffer");
	return NULL;
}

static int child(size_t len, uint64_t seed)
{
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 2;
	fill(p, len, seed);
	return verify(p, len, seed) >= 0 ? 3 : 0;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		DIE("usage: prog_forkbusy BUSY_MB CHILD_MB FORKS");
	busy_len = strtoul(argv[1], NULL, 10) << 20;
	size_t child_len = strtoul(argv[2], NULL, 10) << 20;
	int forks = atoi(argv[3]);
	if (!busy_len || !child_len || forks < 1)
		DIE("BUSY_MB, CHILD_MB and FORKS must be positive");

	busy = mmap(NULL, busy_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (busy == MAP_FAILED)
		DIE("mmap failed");
	pthread_t t;
	if (pthread_create(&t, NULL, rewriter, NULL) != 0)
		DIE("pthread_create failed");
	/* Wait until the rewriter runs at the limit: its faults evict. */
	while (atomic_load(&passes) < 1)
		usleep(1000);

	uint64_t r = (uint64_t)time(NULL);
	for (int i = 0; i < forks; i++) {
		r = r * 6364136223846793005ULL + 1442695040888963407ULL;
		usleep((useconds_t)(r >> 33) % 20000);
		pid_t pid = fork();
		if (pid < 0)
			DIE("fork failed");
		if (pid == 0)
			_exit(child(child_len, r));
		int st = 0;
		if (waitpid(pid, &st, 0) != pid)
			DIE("waitpid failed");
		if (WIFSIGNALED(st))
			DIE("fork %d: the child was killed by signal %d", i + 1, WTERMSIG(st));
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			DIE("fork %d: the child's memory came back wrong (status %d)", i + 1, WEXITSTATUS(st));
	}
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	printf("forkbusy ok: %d children wrote and verified %zu MiB each, %lu busy passes\n", forks,
	       child_len >> 20, atomic_load(&passes));
	return 0;
}

/* forkcheck.c - fork without exec: parent and child read and write inherited memory. */
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv)
{
	size_t len = (size_t)(argc > 1 ? atol(argv[1]) : 64) << 20;
	unsigned char *heap = malloc(len), *anon;
	long bad;
	int st;
	pid_t pid;

	anon = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!heap || anon == MAP_FAILED)
		DIE("allocation failed");
	fill(heap, len, 1);
	fill(anon, len / 2, 2); /* half touched: the child faults the rest */
	pid = fork();
	if (pid < 0)
		DIE("fork failed");
	if (pid == 0) {
		if ((bad = verify(heap, len, 1)) >= 0)
			DIE("child: inherited heap byte %ld differs", bad);
		if ((bad = verify(anon, len / 2, 2)) >= 0)
			DIE("child: inherited mmap byte %ld differs", bad);
		fill(heap, len, 3);    /* copy-on-write */
		fill(anon, len, 4);    /* including never-touched pages */
		unsigned char *mine = malloc(len);
		if (!mine)
			DIE("child: malloc failed");
		fill(mine, len, 5);
		if (verify(heap, len, 3) >= 0 || verify(anon, len, 4) >= 0 || verify(mine, len, 5) >= 0)
			DIE("child: its own writes did not read back");
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		DIE("child failed (status %d)", st);
	if ((bad = verify(heap, len, 1)) >= 0)
		DIE("parent: heap byte %ld changed by the child", bad);
	if ((bad = verify(anon, len / 2, 2)) >= 0)
		DIE("parent: mmap byte %ld changed by the child", bad);
	for (size_t i = len / 2; i < len; i++)
		if (anon[i])
			DIE("parent: untouched page reads %d, not 0", anon[i]);
	printf("fork ok: %zu MB verified in parent and child\n", len >> 20);
	return 0;
}

/* termhold.c - holds MB of memory and answers SIGTERM by exiting cleanly (exit) or not at all (ignore). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

static volatile sig_atomic_t termed;

static void on_term(int sig)
{
	(void)sig;
	termed = 1;
}

int main(int argc, char **argv)
{
	/* termhold MB SECONDS exit|ignore: with "exit", SIGTERM ends the hold:
	 * the memory is checked, "terminated cleanly" printed, status 0; with
	 * "ignore", SIGTERM is ignored (only SIGKILL ends it). */
	if (argc != 4 || (strcmp(argv[3], "exit") && strcmp(argv[3], "ignore")))
		DIE("usage: termhold MB SECONDS exit|ignore");
	size_t len = (size_t)atol(argv[1]) << 20;
	double secs = atof(argv[2]);
	struct sigaction sa = {.sa_handler = strcmp(argv[3], "exit") ? SIG_IGN : on_term};
	sigaction(SIGTERM, &sa, NULL);
	/* mmap, not malloc: charged in sanitizer builds too (hold.c) */
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap failed");
	fill(p, len, 5);
	printf("holding %zu MB\n", len >> 20);
	fflush(stdout);
	for (double t = 0; t < secs && !termed; t += 0.02)
		usleep(20000);
	if (verify(p, len, 5) >= 0)
		DIE("held memory changed");
	if (termed) {
		printf("terminated cleanly\n");
		fflush(stdout);
	}
	return 0;
}

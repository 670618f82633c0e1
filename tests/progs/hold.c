/* hold.c - touches MB of memory, verifies it, then holds it for a while. */
#include <string.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv)
{
	/* hold MB [SECONDS] ; also reachable as argv[1] == "hold" from spawn. */
	int a = argc > 1 && !strcmp(argv[1], "hold") ? 2 : 1;
	size_t len = (size_t)(argc > a ? atol(argv[a]) : 16) << 20;
	double secs = argc > a + 1 ? atof(argv[a + 1]) : 1.0;
	unsigned char *p = malloc(len);

	if (!p)
		DIE("malloc failed");
	fill(p, len, 9);
	printf("holding %zu MB\n", len >> 20);
	fflush(stdout);
	usleep((useconds_t)(secs * 1e6));
	if (verify(p, len, 9) >= 0)
		DIE("held memory changed");
	return 0;
}

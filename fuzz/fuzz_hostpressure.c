/* fuzz_hostpressure.c - libFuzzer target for memgrpd's --host-pressure and --host-sustain texts and the PSI trigger text made from them. */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* Exactly len bytes, no NUL after them: a read past the end is
	 * caught by ASan. */
	char *buf = malloc(len ? len : 1), err[160], trig[64];
	mgi_host_pressure_t p;
	uint64_t ms;
	int rc;

	if (!buf)
		return 0;
	memcpy(buf, data, len);
	memset(&p, 0xab, sizeof(p));
	err[0] = '\0';
	rc = mgi_host_pressure_parse(buf, len, &p, err, sizeof(err));
	if (rc != 0 && rc != -EINVAL)
		abort();
	if (rc != 0 && (p.bp || p.kind || p.window_ms || !err[0] || !memchr(err, '\0', sizeof(err))))
		abort(); /* zeroed, and a reason */
	if (rc == 0) {
		if ((p.kind != MGI_PSI_SOME && p.kind != MGI_PSI_FULL) || p.bp < 1 || p.bp > 10000 ||
		    p.window_ms < MGI_HOST_WINDOW_MIN_MS || p.window_ms > MGI_HOST_WINDOW_MAX_MS)
			abort();
		/* what the kernel is given: "KIND STALL WINDOW", stall within
		 * the window and at least 1 us */
		int n = mgi_host_trigger_text(&p, trig, sizeof(trig));
		unsigned long long stall, window;
		char kind[8];
		if (n <= 0 || (size_t)n != strlen(trig) ||
		    sscanf(trig, "%4s %llu %llu", kind, &stall, &window) != 3 || !stall || stall > window ||
		    window != (unsigned long long)p.window_ms * 1000)
			abort();
	}
	rc = mgi_host_duration_ms(buf, len, 60000, &ms);
	if ((rc != 0 && rc != -EINVAL) || (rc != 0 && ms) || ms > 60000)
		abort();
	free(buf);
	return 0;
}

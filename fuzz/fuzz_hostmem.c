/* fuzz_hostmem.c - libFuzzer target for the /proc/pressure/memory and /proc/meminfo parsers and the host verdict fed with what they read. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* Exactly len bytes, no NUL after them: a read past the end is
	 * caught by ASan. */
	char *buf = malloc(len ? len : 1);
	mgi_psi_t p;
	uint64_t avail;
	uint32_t bp;
	int rc;

	if (!buf)
		return 0;
	memcpy(buf, data, len);
	memset(&p, 0xab, sizeof(p));
	rc = mgi_psi_parse(buf, len, &p);
	if (rc != 0 && rc != -EINVAL)
		abort();
	if (rc == 0 && !(p.have & MGI_PSI_SOME))
		abort(); /* a "some" line at least */
	if (rc != 0 && (p.have || p.some_total_us || p.full_total_us || p.some_avg10))
		abort(); /* zeroed on failure */
	if (p.have & ~(MGI_PSI_SOME | MGI_PSI_FULL) || p.some_avg10 > 10000 || p.some_avg60 > 10000 ||
	    p.some_avg300 > 10000 || p.full_avg10 > 10000 || p.full_avg60 > 10000 || p.full_avg300 > 10000)
		abort();
	rc = mgi_meminfo_available(buf, len, &avail);
	if (rc != 0 && rc != -EINVAL && rc != -ENOENT)
		abort();
	if ((rc != 0 && avail) || avail % 1024)
		abort();
	/* two samples a second apart, the second's total from the input */
	const mgi_host_rule_t rule = {.min_available = 1 << 20, .pressure_bp = 1, .sustain_ms = 500};
	mgi_host_state_t st = {0};
	mgi_psi_t first = {.have = MGI_PSI_SOME | MGI_PSI_FULL};
	mgi_host_judge(&st, &rule, 1000, rc == 0 ? avail : UINT64_MAX, &first, NULL);
	mgi_host_verdict_t v = mgi_host_judge(&st, &rule, 2000, rc == 0 ? avail : UINT64_MAX, &p, &bp);
	if (bp > 10000 || (v != MGI_HOST_FINE && v != MGI_HOST_RECLAIM && v != MGI_HOST_KILL))
		abort();
	free(buf);
	return 0;
}

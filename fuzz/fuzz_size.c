/* fuzz_size.c - libFuzzer target for the size parser and formatter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "size.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char text[256], err[128], buf[16];
	uint64_t value = 0xdeadbeef, back;
	int rc;

	if (len >= sizeof(text))
		len = sizeof(text) - 1;
	memcpy(text, data, len);
	text[len] = '\0';

	/* A limit is what a counter holds, or the word "max": never a
	 * number read as no limit. */
	uint64_t limit = 0xdeadbeef;
	memset(err, 'x', sizeof(err));
	rc = mgi_size_parse_limit(text, &limit, err, sizeof(err));
	if (rc != 0 && (limit != 0xdeadbeef || memchr(err, '\0', sizeof(err)) == NULL))
		abort();
	if (rc == 0 && !mgi_size_is_limit(limit) &&
	    !(limit == MGI_SIZE_MAX && (text[0] == 'm' || text[0] == 'M' || text[0] == 'i' ||
					text[0] == 'I')))
		abort();

	memset(err, 'x', sizeof(err));
	rc = mgi_size_parse(text, &value, err, sizeof(err));
	if (rc != 0) {
		/* Errors leave the output alone and say why in a string. */
		if (value != 0xdeadbeef || memchr(err, '\0', sizeof(err)) == NULL ||
		    err[0] != '\'')
			abort();
		return 0;
	}
	/* Whatever parsed formats back to something that parses to at most it. */
	mgi_size_format(value, buf, sizeof(buf));
	if (mgi_size_parse(buf, &back, NULL, 0) != 0 || back > value)
		abort();
	return 0;
}

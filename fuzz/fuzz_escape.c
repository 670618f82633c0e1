/* fuzz_escape.c - libFuzzer target for mgi_escape: client text made safe for a log line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

/* Decodes what mgi_escape wrote; returns the decoded length, or -1 if the
 * text holds a control byte, a lone backslash or a malformed escape. */
static long unescape(const char *s, char *out)
{
	long n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			return -1;
		if (c != '\\') {
			out[n++] = (char)c;
			continue;
		}
		static const char hex[] = "0123456789abcdef";
		const char *h1, *h2;
		if (s[1] != 'x' || !s[2] || !s[3] || !(h1 = strchr(hex, s[2])) ||
		    !(h2 = strchr(hex, s[3])))
			return -1;
		out[n++] = (char)((h1 - hex) << 4 | (h2 - hex));
		s += 3;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* first byte: the output size (0..255); the rest: the client's text */
	char out[256], back[256], sentinel = 0x5a;
	size_t outlen, inlen;

	if (len < 1)
		return 0;
	outlen = data[0];
	const char *in = (const char *)data + 1;
	inlen = len - 1;
	memset(out, sentinel, sizeof(out));
	if (mgi_escape(in, inlen, out, outlen) != out)
		abort();
	if (outlen == 0) {
		if (out[0] != sentinel)
			abort(); /* nothing written where there is no room */
		return 0;
	}
	size_t n = strnlen(out, outlen);
	if (n == outlen)
		abort(); /* always terminated within outlen */
	for (size_t i = outlen; i < sizeof(out); i++)
		if (out[i] != sentinel)
			abort(); /* never past outlen */
	/* No control byte survives, every escape is whole, and the text
	 * decodes to a prefix of the input (up to its first NUL). */
	long d = unescape(out, back);
	size_t upto = strnlen(in, inlen);
	if (d < 0 || (size_t)d > upto || memcmp(back, in, (size_t)d) != 0)
		abort();
	/* Truncated only for lack of room: what fits is written. */
	if ((size_t)d < upto && n + 4 < outlen - 1)
		abort();
	return 0;
}

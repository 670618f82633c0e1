/* fuzz_promtext.c - libFuzzer target for the metrics text renderer and the --metrics-listen parser (src/core/promtext.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "promtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

/*
 * First byte even: the rest is a --metrics-listen argument; what parses
 * must format and parse back to the same address. Odd: the rest fills a
 * group's figures (a segment's processes write them: any value) and then
 * its name; the text must be as long as said, cut short exactly, and
 * every line a comment or one sample (a name cannot break a line).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static char text[1 << 16], part[1 << 16];

	if (len < 1)
		return 0;
	if (!(data[0] & 1)) {
		char s[256], err[160], back[80];
		mgi_listen_addr_t a, b;
		size_t n = len - 1 < sizeof(s) - 1 ? len - 1 : sizeof(s) - 1;
		memcpy(s, data + 1, n);
		s[n] = '\0';
		if (mgi_listen_parse(s, &a, err, sizeof(err)) != 0) {
			if (!err[0])
				abort(); /* a refusal says why */
			return 0;
		}
		mgi_listen_format(&a, back, sizeof(back));
		if (mgi_listen_parse(back, &b, err, sizeof(err)) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
			abort();
		return 0;
	}
	mgi_stats_t st;
	char name[MGI_GROUP_NAME_MAX];
	size_t take = len - 1 < sizeof(st) ? len - 1 : sizeof(st);
	memset(&st, 0, sizeof(st));
	memcpy(&st, data + 1, take);
	size_t nl = len - 1 - take < sizeof(name) - 1 ? len - 1 - take : sizeof(name) - 1;
	memcpy(name, data + 1 + take, nl);
	name[nl] = '\0';
	mgi_prom_group_t g[2] = {{.name = name, .st = &st}, {.name = "", .st = &st}};
	size_t n = mgi_prom_render(g, 2, text, sizeof(text));
	if (n >= sizeof(text) || strlen(text) != n || text[n - 1] != '\n')
		abort();
	size_t cut = (size_t)data[0] * 37 % (n + 1) + 1;
	if (mgi_prom_render(g, 2, part, cut) != n || strlen(part) != cut - 1 ||
	    memcmp(part, text, cut - 1) != 0)
		abort();
	for (const char *p = text; *p;) {
		const char *end = strchr(p, '\n');
		if (*p != '#' && (strncmp(p, "memgrp_", 7) != 0 || !memchr(p, '{', (size_t)(end - p))))
			abort();
		p = end + 1;
	}
	return 0;
}

/* client.c - libmemgrp entry points; thin wrappers over src/core for now. */
#include "memgrp.h"

#include "../core/size.h"

unsigned mg_version(void)
{
	return MG_VERSION;
}

int mg_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen)
{
	return mgi_size_parse(text, bytes, err, errlen);
}

char *mg_format_size(uint64_t bytes, char *buf, size_t len)
{
	return mgi_size_format(bytes, buf, len);
}

/* fuzz_msg.c - libFuzzer target for the control-socket message parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	mgi_msg_t m;
	char err[96];
	int type;

	memset(err, 'x', sizeof(err));
	type = mgi_msg_parse(data, len, &m, err, sizeof(err));
	if (type < 0) {
		if (memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		return 0;
	}
	/* Whatever is accepted is exactly a valid message of its type. */
	if (m.hdr.len != len || m.hdr.type != type)
		abort();
	if (type == MGI_MSG_HELLO && (m.hello.pid <= 0 || m.hello.slot >= MGI_PROCS_MAX))
		abort();
	if (type == MGI_MSG_OOM_KILL && strnlen(m.oom.victim_comm, MGI_COMM_MAX) >= MGI_COMM_MAX)
		abort();
	return 0;
}

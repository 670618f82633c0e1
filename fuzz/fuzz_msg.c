/* fuzz_msg.c - libFuzzer target for the control-socket message parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "size.h"

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
	/* A GRANT asks for what one fault can need, no more; a refusal names
	 * an ancestor (level 0 is the group's own grant, never refused so). */
	if (type == MGI_MSG_GRANT &&
	    (m.grant.pid <= 0 || m.grant.swap > 1 || m.grant.pages == 0 ||
	     m.grant.pages > MGI_GRANT_ASK_MAX))
		abort();
	if (type == MGI_MSG_GRANTED && m.grant.pages == 0 &&
	    (m.grant.refused == 0 || m.grant.refused >= MGI_DEPTH_MAX))
		abort();
	/* An accepted limit is kept, none, or one a counter holds; high and
	 * low never above a max given with them. */
	if (type == MGI_MSG_SET || type == MGI_MSG_CREATE) {
		const uint64_t f[] = {m.set.memory_max, m.set.memory_high, m.set.memory_low,
				      m.set.memory_soft, m.set.swap_max};
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			if (f[i] != MGI_SET_KEEP && f[i] != MGI_SET_UNLIMITED && !mgi_size_is_limit(f[i]))
				abort();
		if (m.set.memory_max < MGI_SET_UNLIMITED &&
		    ((m.set.memory_high < MGI_SET_UNLIMITED && m.set.memory_high > m.set.memory_max) ||
		     (m.set.memory_low < MGI_SET_UNLIMITED && m.set.memory_low > m.set.memory_max)))
			abort();
	}
	return 0;
}

/* trace.c - MEMGRP_TRACE: the handler's actions on pages, to a file per process. */
#include "trace.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "options.h"
#include "os.h"

mgi_trace_rec_t *mgi_trace_ring;
/* Written by the handler thread only (its helpers' work is traced when the
 * handler queues it and when it reads the answer). Record 0 is the header:
 * its `a` is the next record's index. */
static uint64_t next = 1;

void mgi_trace_init(void)
{
	const char *dir = mgi_env_str(MGI_ENV_TRACE);
	size_t bytes = (size_t)MGI_TRACE_RECORDS * sizeof(mgi_trace_rec_t);
	char path[512];
	int fd;
	void *m;

	if (mgi_trace_ring) /* a forked child: its parent's file is not ours */
		mgi_raw_munmap(mgi_trace_ring, bytes);
	mgi_trace_ring = NULL;
	next = 1;
	if (!dir || !*dir)
		return;
	snprintf(path, sizeof(path), "%s/memgrp-trace.%d", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) {
		mgi_agent_log("MEMGRP_TRACE: cannot create %s: not tracing", path);
		if (fd >= 0)
			close(fd);
		return;
	}
	/* A shared file mapping: never registered with userfaultfd. */
	m = mgi_raw_mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		mgi_agent_log("MEMGRP_TRACE: cannot map %s: not tracing", path);
		return;
	}
	mgi_trace_ring = m;
}

void mgi_trace_put(enum mgi_trace_op op, uint64_t a, uint64_t b, uint32_t n, int32_t c)
{
	mgi_trace_rec_t *r = &mgi_trace_ring[next];

	r->ns = mgi_now_ns();
	r->op = (uint16_t)op;
	r->n = n > 0xffff ? 0xffff : (uint16_t)n;
	r->c = c;
	r->a = a;
	r->b = b;
	next = next + 1 < MGI_TRACE_RECORDS ? next + 1 : 1;
	__atomic_store_n(&mgi_trace_ring[0].a, next, __ATOMIC_RELEASE);
}

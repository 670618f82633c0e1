/* trace.h - an optional record of what the handler does to which pages, for post-mortems. */
#ifndef MGI_AGENT_TRACE_H
#define MGI_AGENT_TRACE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * With MEMGRP_TRACE=DIR each process's agent appends one 32-byte record per
 * action of its handler on application pages to DIR/memgrp-trace.PID (a
 * ring of MGI_TRACE_RECORDS, a shared file mapping: nothing is lost when
 * the process dies). tools/trace.py prints the records touching an
 * address. Off, each call site costs one predictable branch.
 */
enum mgi_trace_op {
	MGI_TR_FAULT = 1,  /* a = address */
	MGI_TR_ZFILL,      /* a = start, n = pages asked, b = pages copied, c = rc */
	MGI_TR_EEXIST,     /* a = page present though absent to us (c = 1: not counted) */
	MGI_TR_MISSING,    /* a = page we thought present that faulted */
	MGI_TR_REMOVE,     /* a = start, b = end */
	MGI_TR_UNMAP,      /* a = start, b = end, n = 1: a move's old range, skipped */
	MGI_TR_REMAP,      /* a = from, b = to, n = pages */
	MGI_TR_EVICT,      /* a = run, n = pages asked, b = first slot, c = moved << 8 | -rc */
	MGI_TR_COMPRESS,   /* a = page, b = slot, c = its first word's low 31 bits */
	MGI_TR_ACTIVATE,   /* a = page, b = slot, c = rc */
	MGI_TR_RESTORE,    /* a = page, n = pages asked, b = pages copied, c = rc */
	MGI_TR_DROP_STAGED,/* a = page, b = slot */
	MGI_TR_DROP_STORED,/* a = page */
	MGI_TR_RELEASE_Q,  /* b = first slot, n = slots */
	MGI_TR_RELEASED,   /* b = first slot, n = slots, c = madvise's errno */
	MGI_TR_BLOCK,      /* b = slot found holding a frame, a = its first word */
	MGI_TR_CONFLICT,   /* a = page */
	MGI_TR_UNREPORTED, /* a = run, b = first slot, n = pages a failed move moved after all */
	MGI_TR_FORK_KEPT,  /* a fork whose child keeps the store; b = mut_seq at its prepare */
	MGI_TR_FORK_COPIED,/* a fork copied into; b = mut_seq at its prepare, c = why (fork.c) */
};

typedef struct mgi_trace_rec {
	uint64_t ns;
	uint16_t op;
	uint16_t n;
	int32_t c;
	uint64_t a, b;
} mgi_trace_rec_t;

#define MGI_TRACE_RECORDS (1u << 24) /* 512 MiB of file, sparse */

extern mgi_trace_rec_t *mgi_trace_ring;

void mgi_trace_init(void);
void mgi_trace_put(enum mgi_trace_op op, uint64_t a, uint64_t b, uint32_t n, int32_t c);

/* A macro: the arguments are not evaluated unless tracing. */
#define mgi_trace(op, a, b, n, c)                                                  \
	do {                                                                       \
		if (__builtin_expect(mgi_trace_ring != 0, 0))                      \
			mgi_trace_put((op), (uint64_t)(a), (uint64_t)(b), (uint32_t)(n), \
				      (int32_t)(c));                               \
	} while (0)

#endif

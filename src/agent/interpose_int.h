/* interpose_int.h - what interpose.c (mmap family) and interpose_malloc.c (malloc family) share. */
#ifndef MGI_INTERPOSE_INT_H
#define MGI_INTERPOSE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent.h"

#define PAGE MGI_PAGE_SIZE

static inline uintptr_t page_up(uintptr_t a)
{
	return (a + PAGE - 1) & ~(PAGE - 1);
}

static inline bool active(void)
{
	return atomic_load_explicit(&mgi_agent_active, memory_order_acquire);
}

#endif

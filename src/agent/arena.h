/* arena.h - the agent's own memory: one reserved range, never managed. */
#ifndef MGI_AGENT_ARENA_H
#define MGI_AGENT_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Everything the agent allocates (registry, bitmaps, the handler's stack,
 * the zero page source) comes from one range reserved at start-up with
 * PROT_NONE and MAP_NORESERVE and committed as it fills. One range makes
 * "never register the agent's own memory" a single comparison, and the
 * MAP_NORESERVE flag keeps the kernel from merging it with an application
 * mapping next to it (merging needs equal flags).
 *
 * Not thread-safe: the fault handler is its only user after start-up.
 */

typedef struct mgi_arena {
	uintptr_t base, end;  /* the reservation */
	uintptr_t bump;       /* next unused byte */
	uintptr_t committed;  /* [base, committed) is read-write */
	void *free_lists[40]; /* by power-of-two size class */
} mgi_arena_t;

/* Reserves `bytes` of address space. Returns 0 or a negative errno. */
int mgi_arena_init(mgi_arena_t *a, size_t bytes);

/* Releases the whole range (used in a forked child for the parent's arena). */
void mgi_arena_destroy(mgi_arena_t *a);

/* Zeroed memory, 16-byte aligned (page aligned from a page up), or NULL. */
void *mgi_arena_alloc(mgi_arena_t *a, size_t bytes);

/* Returns memory of the size it was allocated with. */
void mgi_arena_free(mgi_arena_t *a, void *p, size_t bytes);

static inline bool mgi_arena_contains(const mgi_arena_t *a, uintptr_t addr)
{
	return addr >= a->base && addr < a->end;
}

#endif

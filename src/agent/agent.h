/* agent.h - the in-process agent's state, shared by its files. */
#ifndef MGI_AGENT_H
#define MGI_AGENT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "counter.h"
#include "registry.h"
#include "segment.h"

#define MGI_ARENA_BYTES (1UL << 32)      /* address space only: NORESERVE */
#define MGI_HANDLER_STACK (512UL << 10)
#define MGI_WATCHDOG_STACK (64UL << 10)
#define MGI_ELF_RANGES_MAX 512
/* Larger anonymous regions are address-space reservations (sanitizer
 * shadow, language runtimes' heaps reserved up front), not memory in use:
 * they are neither registered (a bitmap and mincore over terabytes) nor
 * counted. */
#define MGI_REGION_MAX_BYTES (64UL << 30)

typedef struct mgi_range {
	uintptr_t start, end;
} mgi_range_t;

/* A learn request: a range registered by an application thread that the
 * handler must add to the registry (and charge for any pages already
 * present). Written to a pipe: 16 bytes, so writes are atomic. */
typedef mgi_range_t mgi_learn_req_t;

struct mgi_agent {
	_Atomic bool active;     /* faults are being handled */
	pid_t pid;
	int uffd;
	int conn;                /* to the manager; its closing tells our end */
	int wakefd;              /* the manager's eventfd: thresholds crossed */
	int mapsfd;              /* /proc/self/maps, for PROCMAP_QUERY */
	int learn_rd, learn_wr;  /* pipe of mgi_learn_req_t */
	mgi_segment_t *seg;      /* the group's segment: slots, figures */
	mgi_segment_t *anc[MGI_DEPTH_MAX]; /* seg, then its ancestors' */
	unsigned nsegs;
	char group[MGI_GROUP_NAME_MAX]; /* as the manager named it in WELCOME */
	int slot;
	mgi_proc_slot_t *me;
	mgi_counter_path_t path;

	mgi_arena_t arena;
	mgi_registry_t reg;
	void *zeros;             /* MGI_FAULT_AROUND_MAX pages of zeros */
	void *stack;
	pthread_t handler;
	sem_t ready;
	int init_error;          /* set by the handler's start-up scan */
	_Atomic unsigned parked; /* faults the handler holds for a retry */
	_Atomic uint64_t lost_faults; /* woken by the watchdog */
	bool drop_one_fault;     /* fault injection: MEMGRP_INJECT=drop-fault */
	void *watch_stack;
	pthread_t watchdog;

	/* Loaded ELF objects' extents: the anonymous bss after their data
	 * must not be registered (the handler itself uses libc's). */
	mgi_range_t elf[MGI_ELF_RANGES_MAX];
	unsigned nelf;
	uint64_t untracked_bytes;
};

extern struct mgi_agent mgi_agent;

/* handler.c */
void *mgi_handler_main(void *arg);
/* watchdog.c: arg is a 4 KiB scratch buffer in the arena */
void *mgi_watchdog_main(void *arg);
/* Registers the eligible anonymous regions of the address space and learns
 * them. Called by the handler at start-up. */
void mgi_scan_and_register(void);

/* interpose.c: registers [start, end) for the application (page aligned)
 * and asks the handler to learn it. Safe from any application thread. */
void mgi_register_for_app(uintptr_t start, uintptr_t end);
/* The VMA around addr, registered if it is eligible and not yet. */
void mgi_register_vma_at(uintptr_t addr);

/* move.c: reads what the manager sends on the connection (MOVE) and
 * answers. Called by the handler thread when the connection is readable;
 * returns false once the manager has gone (stop polling it). */
bool mgi_agent_on_manager_message(void);

/* agent.c */
/* Maps one segment memfd and checks it. Returns it or NULL. */
mgi_segment_t *mgi_agent_map_segment(int fd);
void mgi_agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool mgi_agent_excluded(uintptr_t start, uintptr_t end);

#endif

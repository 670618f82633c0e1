/* top.h - `memgrp top`'s samples: the groups of every manager, their rates, the order shown (top_sample.c). */
#ifndef MGI_CLI_TOP_H
#define MGI_CLI_TOP_H

#include <stdbool.h>

#include "proto.h"

#define ROWS_MAX 1024

struct row {
	char name[MGI_GROUP_NAME_MAX];
	mgi_stats_t st;
	double faults_s, evictions_s; /* -1: no earlier sample */
	double interval_s;            /* since the earlier sample; 0: none */
	int depth;
	int parent; /* index in the sample, -1: top level */
	bool printed;
};

struct sample {
	struct row rows[ROWS_MAX];
	int n;
	double at; /* CLOCK_MONOTONIC seconds */
};

enum sort_key { BY_USAGE, BY_NAME, BY_FAULTS, BY_EVICTIONS, BY_SWAP, BY_OOM, BY_PRESSURE };

double mgi_top_now_s(void);
/* Every manager's groups, as `memgrp ls` finds them, or the one at sock;
 * each row's parent and depth in the tree. */
void mgi_top_collect(const char *sock, struct sample *s);
/* Rates from the earlier sample prev (NULL: none), matched by name. */
void mgi_top_rates(struct sample *cur, const struct sample *prev);
/* The order to show in out (indexes into s): the tree depth first,
 * siblings sorted by key. Returns how many. */
int mgi_top_order(struct sample *s, enum sort_key key, int *out);

#endif

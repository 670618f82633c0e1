/* promtext.h - groups' figures as Prometheus text exposition; the metrics listen address parser. */
#ifndef MGI_PROMTEXT_H
#define MGI_PROMTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* One group as the exposition shows it. */
typedef struct mgi_prom_group {
	const char *name;        /* its path ("web/api"); "" is the root, shown as "/" */
	const mgi_stats_t *st;   /* its figures, as STAT answers them */
} mgi_prom_group_t;

/*
 * Renders the groups as Prometheus text format 0.0.4 into buf (NUL-terminated,
 * cut short if len is): each family's HELP and TYPE once, then one sample
 * per group with the label group="PATH". Returns the length the whole text
 * needs, as snprintf does (callers with a shorter buffer ask again). Never
 * fails: every value comes from plain integers; a limit at or above the
 * unlimited mark is +Inf.
 */
size_t mgi_prom_render(const mgi_prom_group_t *groups, size_t n, char *buf, size_t len);

/* A group's pressure level, as notify.c places its thresholds against the
 * group's own limit: 0 none (no limit, or under 75 %), 1 low (from 75 %),
 * 2 medium (from 90 %), 3 critical (from 98 %). */
unsigned mgi_prom_pressure(uint64_t usage, uint64_t limit);
/* Its name: "none", "low", "medium", "critical". */
const char *mgi_prom_pressure_name(unsigned level);

/* Where the metrics endpoint listens. */
typedef struct mgi_listen_addr {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network order; the first 4 bytes for AF_INET */
	uint16_t port;    /* host order; 0: any free port */
} mgi_listen_addr_t;

/*
 * Parses --metrics-listen: "PORT" (loopback, 127.0.0.1), "ADDR:PORT" with
 * an IPv4 literal, "localhost:PORT", or "[ADDR6]:PORT". A host other than
 * loopback must be given explicitly: nothing defaults to all interfaces.
 * Returns 0, or -EINVAL with why in err.
 */
int mgi_listen_parse(const char *s, mgi_listen_addr_t *out, char *err, size_t errlen);

/* The address as "ADDR:PORT" or "[ADDR6]:PORT" (for logs and errors). */
void mgi_listen_format(const mgi_listen_addr_t *a, char *out, size_t len);

#endif

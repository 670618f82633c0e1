/* hostmem.h - the host's memory as memgrpd will watch it (PSI's /proc/pressure/memory, /proc/meminfo's MemAvailable) and the rule that keeps a PSI blip from killing: parsers and the verdict, pure code. */
#ifndef MGI_HOSTMEM_H
#define MGI_HOSTMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One read of /proc/pressure/memory. Averages in hundredths of a percent
 * (the file's two decimals, "avg10=12.34" -> 1234); totals in µs. */
#define MGI_PSI_SOME 1u
#define MGI_PSI_FULL 2u
typedef struct mgi_psi {
	unsigned have; /* MGI_PSI_SOME | MGI_PSI_FULL: the lines found */
	uint32_t some_avg10, some_avg60, some_avg300;
	uint32_t full_avg10, full_avg60, full_avg300;
	uint64_t some_total_us, full_total_us;
} mgi_psi_t;

/*
 * Parses the text of /proc/pressure/memory (buf, len bytes, no NUL
 * needed): lines "some|full avg10=A avg60=A avg300=A total=T". Returns 0
 * with the lines found in out->have (a "some" line at least), -EINVAL on
 * anything else (an unknown line, a field missing or out of order, a
 * number malformed or too large, a line twice); out is zeroed first.
 */
int mgi_psi_parse(const char *buf, size_t len, mgi_psi_t *out);

/*
 * MemAvailable from the text of /proc/meminfo, in bytes: 0, -ENOENT if no
 * such line (kernels before 3.14), -EINVAL if its value is malformed or
 * does not fit in bytes. *bytes is 0 unless 0 is returned.
 */
int mgi_meminfo_available(const char *buf, size_t len, uint64_t *bytes);

/*
 * The host's verdict, sample by sample. The host is short when MemAvailable
 * is under min_available (if set) or when the share of time in which every
 * task waited on memory (PSI "full", from the total's growth between two
 * samples: exact, not the 10 s average's lag) reaches pressure_bp (hundredths
 * of a percent, if set).
 *
 * The rule against kills on a blip: the cheap steps of the ladder
 * (cooperators, soft limits, eviction) may run from the first short
 * sample; a kill only when every sample for at least sustain_ms said short
 * (one sample with room starts the count again), and, when min_available
 * is set, MemAvailable is still under it at that sample (pressure alone
 * with memory to spare is a stall, not a shortage a kill cures). After a
 * kill (mgi_host_killed) the count starts again: the victim's memory
 * shows before the next one is judged.
 */
typedef struct mgi_host_rule {
	uint64_t min_available; /* bytes; 0: not watched */
	uint32_t pressure_bp;   /* 1..10000; 0: not watched */
	uint64_t sustain_ms;    /* how long short before a kill */
	bool pressure_some;     /* the stall share of "some" (a task waited), not "full" */
} mgi_host_rule_t;

typedef struct mgi_host_state {
	bool have_last, short_now;
	uint64_t last_ms, last_full_us;
	uint64_t short_since_ms;
} mgi_host_state_t;

typedef enum mgi_host_verdict {
	MGI_HOST_FINE,    /* nothing to do */
	MGI_HOST_RECLAIM, /* short: the cheap steps */
	MGI_HOST_KILL,    /* short for sustain_ms, memory still short: a kill */
} mgi_host_verdict_t;

/* One sample at now_ms: avail in bytes (UINT64_MAX: unknown), psi NULL
 * or without MGI_PSI_FULL when unknown. *stall_bp (if not NULL) gets the
 * full-stall share since the last sample (0 at the first). */
mgi_host_verdict_t mgi_host_judge(mgi_host_state_t *st, const mgi_host_rule_t *rule, uint64_t now_ms,
				  uint64_t avail, const mgi_psi_t *psi, uint32_t *stall_bp);

/* A kill was made at now_ms: the sustain count starts again. */
void mgi_host_killed(mgi_host_state_t *st, uint64_t now_ms);

/*
 * memgrpd's --host-pressure: "KIND PERCENT%[/WINDOW]", KIND "some" (a
 * task waited on memory) or "full" (every task did), PERCENT from 0.01
 * to 100 with at most two decimals, WINDOW a duration from 500ms to 10s
 * ("500ms", "2s"; default 1s), e.g. "full 10%" or "some 25%/2s": the host
 * is short when that share of WINDOW was stalled. Also what the kernel's
 * PSI trigger takes: "KIND STALL_US WINDOW_US" (mgi_host_trigger_text).
 * Returns 0, or -EINVAL with why in err (anything else: no default
 * applies to a malformed text). out is zeroed first.
 */
#define MGI_HOST_WINDOW_MIN_MS 500
#define MGI_HOST_WINDOW_MAX_MS 10000
#define MGI_HOST_WINDOW_DEFAULT_MS 1000
typedef struct mgi_host_pressure {
	unsigned kind;      /* MGI_PSI_SOME or MGI_PSI_FULL */
	uint32_t bp;        /* hundredths of a percent, 1..10000 */
	uint32_t window_ms; /* MGI_HOST_WINDOW_MIN_MS..MAX_MS */
} mgi_host_pressure_t;
int mgi_host_pressure_parse(const char *text, size_t len, mgi_host_pressure_t *out, char *err,
			    size_t errlen);

/* The PSI trigger's text for p ("full 100000 1000000", with its NUL) in
 * buf; returns its length without the NUL, or -ENOSPC. */
int mgi_host_trigger_text(const mgi_host_pressure_t *p, char *buf, size_t len);

/* A duration "N", "Ns" or "Nms" (N whole; bare: seconds) in ms, up to
 * max_ms: 0, or -EINVAL. (--host-sustain, the pressure's window.) */
int mgi_host_duration_ms(const char *text, size_t len, uint64_t max_ms, uint64_t *ms);

#endif

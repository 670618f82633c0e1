/* metrics.h - a manager's Prometheus endpoint (libmicrohttpd) and textfile writer. */
#ifndef MGI_METRICS_H
#define MGI_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mgi_manager;
struct mgi_metrics;

/* The tags the metrics' fds have in the manager's epoll set: callers of
 * mgi_manager_poll pass them to mgi_metrics_event. */
#define MGI_METRICS_TAG_BASE 0x6d00
#define MGI_METRICS_TAGS 2

/* How often --metrics-file is rewritten. */
#define MGI_METRICS_FILE_INTERVAL_S 5

/*
 * Readies what the options ask for, before the manager exists, so that bad
 * input is said before anything else is touched: binds the listen address
 * (listen: --metrics-listen, mgi_listen_parse's forms; NULL: none) and
 * checks that the file's temporary twin can be made (file: NULL: none).
 * Returns 0 with *out set (NULL when neither is asked), or -errno with a
 * reason in err.
 */
int mgi_metrics_open(struct mgi_metrics **out, const char *listen, const char *file, char *err,
		     size_t errlen);

/*
 * Starts serving m's groups (its scope and below): the HTTP server's own
 * thread, the request eventfd and the file's timer in m's epoll set, and
 * the file's first version written now. Logs where it serves. On failure
 * returns -errno with a reason in err; x is then to be closed.
 */
int mgi_metrics_start(struct mgi_metrics *x, struct mgi_manager *m, char *err, size_t errlen);

/* For a tag mgi_manager_poll returned: true if it was the metrics' (a
 * scrape wants a snapshot, or the file is due), handled. x may be NULL. */
bool mgi_metrics_event(struct mgi_metrics *x, int64_t tag);

/* The HTTP port actually bound (an asked port 0 picks a free one). */
unsigned mgi_metrics_port(const struct mgi_metrics *x);

/* Stops the server (waiting for its thread) and frees x. NULL is fine.
 * Call before the manager is destroyed. */
void mgi_metrics_close(struct mgi_metrics *x);

#endif

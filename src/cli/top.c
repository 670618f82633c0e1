/* top.c - `memgrp top`: a live view of the groups, sortable; --once and --json for scripts. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "counter.h"
#include "oslayer.h"
#include "page.h"
#include "promtext.h"
#include "size.h"
#include "top.h"

#define BAR 20

static const struct {
	const char *name;
	char key;
} sorts[] = {
	[BY_USAGE] = {"usage", 'u'},      [BY_NAME] = {"name", 'n'},  [BY_FAULTS] = {"faults", 'f'},
	[BY_EVICTIONS] = {"evictions", 'e'}, [BY_SWAP] = {"swap", 's'}, [BY_OOM] = {"oom", 'o'},
	[BY_PRESSURE] = {"pressure", 'p'},
};
#define NSORTS ((int)(sizeof(sorts) / sizeof(sorts[0])))

static enum sort_key sort_by;

static volatile sig_atomic_t stop;
static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static bool unlimited(uint64_t v)
{
	return v >= (uint64_t)MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE;
}

static void fmt_size(uint64_t v, char *buf, size_t len)
{
	if (unlimited(v))
		snprintf(buf, len, "max");
	else
		mgi_size_format(v, buf, len);
}

/* At most 6 characters: "1023.9M" loses its tenth ("1023M"). */
static void fmt_size_compact(uint64_t v, char *buf, size_t len)
{
	char *dot;

	fmt_size(v, buf, len);
	if (strlen(buf) > 6 && (dot = strchr(buf, '.')) != NULL)
		memmove(dot, dot + 2, strlen(dot + 2) + 1);
}

static void fmt_rate(double v, char *buf, size_t len)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else if (v >= 1e6)
		snprintf(buf, len, "%.1fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(buf, len, "%.1fK", v / 1e3);
	else
		snprintf(buf, len, "%.0f", v);
}

/*
 * Which columns a table has and how wide they are: the widest that fits
 * the terminal. Past the full layout (about 137 columns), the steps below
 * are taken in order until the rows fit: figures written compactly (6
 * characters, pressure abbreviated), then the compression ratio, the
 * compressed size and the cooperators dropped, the bar halved, the group
 * column narrowed (names cut with '~'), then the bar, swap and the rates
 * dropped; room a step freed beyond the need goes back to the names. Usage,
 * limit, OOM kills and processes always stay.
 */
struct layout {
	int group_w, num_w, bar; /* bar: its cells, 0: none */
	bool compact, ratio, compr, coop, swap, rates, pressure;
};

static int layout_width(const struct layout *l)
{
	int w = l->group_w + 2 * (1 + l->num_w) + 4 + 6; /* usage, limit, oom, procs */

	w += l->bar ? l->bar + 3 : 0;
	w += l->swap ? 1 + l->num_w : 0;
	w += l->compr ? 1 + l->num_w : 0;
	w += l->ratio ? (l->compact ? 6 : 7) : 0;
	w += l->rates ? 2 * (1 + l->num_w) : 0;
	w += l->pressure ? (l->compact ? 5 : 9) : 0;
	w += l->coop ? 5 : 0;
	return w;
}

/* The widest layout for `cols` columns (0: no limit). */
static struct layout layout_for(int cols)
{
	struct layout l = {.group_w = 28, .num_w = 8, .bar = BAR, .ratio = true, .compr = true,
			   .coop = true, .swap = true, .rates = true, .pressure = true};
	int step = 0;

	while (cols > 0 && layout_width(&l) > cols) {
		switch (step++) {
		case 0: l.compact = true; l.num_w = 6; l.group_w = 20; break;
		case 1: l.ratio = false; break;
		case 2: l.compr = false; break;
		case 3: l.coop = false; break;
		case 4: l.bar = BAR / 2; break;
		case 5: {
			/* the group column gives up what it must, down to 12 */
			int over = layout_width(&l) - cols;
			l.group_w = l.group_w - over >= 12 ? l.group_w - over : 12;
			break;
		}
		case 6: l.bar = 0; break;
		case 7: l.swap = false; break;
		case 8: l.pressure = false; break;
		case 9: l.rates = false; break;
		case 10: {
			int over = layout_width(&l) - cols;
			l.group_w = l.group_w - over >= 6 ? l.group_w - over : 6;
			break;
		}
		default: return l; /* as narrow as it goes */
		}
	}
	/* room left over (a step freed more than needed) goes to the names */
	if (cols > 0 && l.group_w < 28) {
		int spare = cols - layout_width(&l);
		l.group_w += spare < 28 - l.group_w ? spare : 28 - l.group_w;
	}
	return l;
}

static const char *pressure_short(unsigned level)
{
	static const char *const names[] = {"none", "low", "med", "crit"};
	return level < 4 ? names[level] : "?";
}

static void print_table(FILE *f, struct sample *s, const int *idx, int n, int cols)
{
	struct layout l = layout_for(cols);
	int w = l.num_w;

	fprintf(f, "%-*s %*s %*s", l.group_w, "GROUP", w, "USAGE", w, "LIMIT");
	if (l.bar)
		fprintf(f, " %-*s", l.bar + 2, "");
	if (l.swap)
		fprintf(f, " %*s", w, "SWAP");
	if (l.compr)
		fprintf(f, " %*s", w, "COMPR");
	if (l.ratio)
		fprintf(f, " %*s", l.compact ? 5 : 6, "RATIO");
	if (l.rates)
		fprintf(f, " %*s %*s", w, l.compact ? "FLT/s" : "FAULT/s", w,
			l.compact ? "EVI/s" : "EVICT/s");
	if (l.pressure)
		fprintf(f, " %-*s", l.compact ? 4 : 8, l.compact ? "PRES" : "PRESSURE");
	if (l.coop)
		fprintf(f, " %4s", "COOP");
	fprintf(f, " %3s %5s\n", "OOM", "PROCS");
	for (int k = 0; k < n; k++) {
		const struct row *r = &s->rows[idx[k]];
		char name[MGI_GROUP_NAME_MAX + 64], use[16], lim[16], swp[16], cmp[16], ratio[16];
		char fr[16], er[16], bar[BAR + 3];
		const char *leaf = r->depth && strrchr(r->name, '/') ? strrchr(r->name, '/') + 1 : r->name;
		void (*size)(uint64_t, char *, size_t) = l.compact ? fmt_size_compact : fmt_size;
		snprintf(name, sizeof(name), "%*s%s", 2 * r->depth, "", leaf);
		if ((int)strlen(name) > l.group_w) {
			/* cut, and said so */
			name[l.group_w - 1] = '~';
			name[l.group_w] = '\0';
		}
		size(r->st.usage, use, sizeof(use));
		size(r->st.limit, lim, sizeof(lim));
		size(r->st.swap_usage, swp, sizeof(swp));
		size(r->st.compressed_bytes, cmp, sizeof(cmp));
		if (r->st.compressed_bytes)
			snprintf(ratio, sizeof(ratio), "%.1f",
				 (double)r->st.swap_usage / (double)r->st.compressed_bytes);
		else
			snprintf(ratio, sizeof(ratio), "-");
		fmt_rate(r->faults_s, fr, sizeof(fr));
		fmt_rate(r->evictions_s, er, sizeof(er));
		fprintf(f, "%-*s %*s %*s", l.group_w, name, w, use, w, lim);
		if (l.bar) {
			/* usage against the limit; blank without a limit */
			bar[0] = '[';
			for (int b = 0; b < l.bar; b++) {
				bool full = !unlimited(r->st.limit) && r->st.limit &&
					    (double)r->st.usage * l.bar >= (double)r->st.limit * (b + 0.5);
				bar[1 + b] = unlimited(r->st.limit) ? ' ' : full ? '#' : '.';
			}
			bar[l.bar + 1] = ']';
			bar[l.bar + 2] = '\0';
			fprintf(f, " %s", bar);
		}
		if (l.swap)
			fprintf(f, " %*s", w, swp);
		if (l.compr)
			fprintf(f, " %*s", w, cmp);
		if (l.ratio)
			fprintf(f, " %*s", l.compact ? 5 : 6, ratio);
		if (l.rates)
			fprintf(f, " %*s %*s", w, fr, w, er);
		unsigned level = mgi_prom_pressure(r->st.usage, r->st.limit);
		if (l.pressure)
			fprintf(f, " %-*s", l.compact ? 4 : 8,
				l.compact ? pressure_short(level) : mgi_prom_pressure_name(level));
		if (l.coop)
			fprintf(f, " %4llu", (unsigned long long)r->st.cooperators);
		fprintf(f, " %3llu %5llu\n", (unsigned long long)r->st.oom_kill,
			(unsigned long long)r->st.nr_processes);
	}
}

static void print_json(struct sample *s, const int *idx, int n)
{
	printf("[");
	for (int k = 0; k < n; k++) {
		const struct row *r = &s->rows[idx[k]];
		unsigned level = mgi_prom_pressure(r->st.usage, r->st.limit);
		printf("%s{\"group\": ", k ? ",\n " : "");
		mgi_json_str(stdout, r->name);
		printf(", \"depth\": %d, \"interval_s\": %.6f, \"faults_per_s\": %.3f, "
		       "\"evictions_per_s\": %.3f, \"pressure\": \"%s\", \"pressure_level\": %u, "
		       "\"compression_ratio\": %.3f, ",
		       r->depth, r->interval_s, r->faults_s < 0 ? 0 : r->faults_s,
		       r->evictions_s < 0 ? 0 : r->evictions_s,
		       mgi_prom_pressure_name(level), level,
		       r->st.compressed_bytes ? (double)r->st.swap_usage / (double)r->st.compressed_bytes : 0.0);
		mgi_stats_print_json_fields(stdout, &r->st);
		printf("}");
	}
	printf("]\n");
}

/* The live view's first line, cut to the width, and a blank line. */
static void __attribute__((format(printf, 2, 3))) header(int cols, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (cols > 0 && cols < (int)sizeof(line))
		line[cols] = '\0';
	printf("%s\n\n", line);
}

/* The columns the table may use: --width, else the terminal's, else
 * $COLUMNS; 0 (no limit: the full layout) when none says. */
static int table_cols(int width_opt)
{
	struct winsize ws;
	const char *env = getenv("COLUMNS");
	char *end;

	if (width_opt > 0)
		return width_opt;
	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (env && *env) {
		long c = strtol(env, &end, 10);
		if (!*end && c > 0 && c < 100000)
			return (int)c;
	}
	return 0;
}

static void top_usage(FILE *out)
{
	fprintf(out,
		"Usage: memgrp top [--socket PATH] [--once] [--json] [--sort KEY] [--interval SECS]\n"
		"\n"
		"A live view of the groups (memgrpd's and every running `memgrp run`'s, or\n"
		"the manager's at --socket), as a tree: usage against the limit with a bar,\n"
		"swap (pages in compressed stores, uncompressed size), the stores'\n"
		"compressed size and ratio, faults and evictions per second, the pressure\n"
		"level (low 75%%, medium 90%%, critical 98%% of the group's own limit),\n"
		"cooperating clients, OOM kills and processes. Refreshed every second.\n"
		"\n"
		"On a terminal, keys sort the groups (siblings, under their parent):\n"
		"  u usage  n name  f faults/s  e evictions/s  s swap  o OOM kills\n"
		"  p pressure  q quit\n"
		"When stdout is not a terminal, the table is printed plainly each interval.\n"
		"\n"
		"Options:\n"
		"  --once           print once and exit (two samples an interval apart,\n"
		"                   for the rates)\n"
		"  --json           with --once: the groups as a JSON array (every stat,\n"
		"                   plus depth, interval_s, faults_per_s, evictions_per_s,\n"
		"                   pressure, compression_ratio); without: one array per\n"
		"                   interval (rates 0 in the first)\n"
		"  --sort KEY       usage (default), name, faults, evictions, swap, oom,\n"
		"                   pressure\n"
		"  --interval SECS  between refreshes (default 1; 0.1 to 3600)\n"
		"  --width COLS     fit the table in COLS columns (default: the terminal's\n"
		"                   width, else $COLUMNS, else no limit): below about 137\n"
		"                   the figures are written compactly, then the ratio,\n"
		"                   compressed size, cooperators, bar, swap, pressure and\n"
		"                   rates give way, in that order (30 at least)\n"
		"  --socket PATH    one manager's groups only\n");
}

/* The terminal reads single keys, unechoed, without waiting (saved: its
 * settings to restore). Whether it could. */
static bool keys_raw(struct termios *saved)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, saved) != 0)
		return false;
	raw = *saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	return tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
}

/* One sample shown: a JSON line, or the table (on a terminal, in place of
 * the last one, under a header; else after a blank line when gap). */
static void show(struct sample *cur, int *idx, bool json, bool tty, bool gap, long width)
{
	int n = mgi_top_order(cur, sort_by, idx);

	if (json) {
		print_json(cur, idx, n);
	} else {
		if (tty) {
			char when[16];
			time_t t = time(NULL);
			struct tm tm;
			localtime_r(&t, &tm);
			strftime(when, sizeof(when), "%H:%M:%S", &tm);
			printf("\033[H\033[2J");
			header(table_cols((int)width), "memgrp top - %s - %d group%s - sort: %s - keys: "
			       "u n f e s o p, q quits", when, n, n == 1 ? "" : "s",
			       sorts[sort_by].name);
		} else if (gap) {
			printf("\n");
		}
		print_table(stdout, cur, idx, n, table_cols((int)width));
	}
	fflush(stdout);
}

/* Waits the interval, reading keys meanwhile (with raw_on): q stops, a
 * sort key redraws the sample just shown in the new order at once. */
static void wait_keys(double interval, bool raw_on, struct sample *shown, int *idx, long width)
{
	double until = mgi_top_now_s() + interval;

	while (!stop) {
		double left = until - mgi_top_now_s();
		if (left <= 0)
			break;
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		int r = poll(&p, raw_on ? 1 : 0, (int)(left * 1000) + 1);
		char c;
		if (r <= 0 || !raw_on || read(STDIN_FILENO, &c, 1) != 1)
			continue;
		if (c == 'q') {
			stop = 1;
			break;
		}
		for (int k = 0; k < NSORTS; k++)
			if (sorts[k].key == c) {
				sort_by = (enum sort_key)k;
				until = 0; /* redraw now, in the new order */
			}
		if (until == 0) {
			/* re-sort the sample just shown */
			int m = mgi_top_order(shown, sort_by, idx);
			printf("\033[H\033[2J");
			header(table_cols((int)width), "memgrp top - sort: %s - keys: u n f e s o p, "
			       "q quits", sorts[sort_by].name);
			print_table(stdout, shown, idx, m, table_cols((int)width));
			fflush(stdout);
			until = mgi_top_now_s() + interval;
		}
	}
}

/* Over 100 lines on purpose: most of it is the option switch (one case an
 * option); the sampling, showing and key handling are the calls above. */
int mgi_cmd_top(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"once", no_argument, NULL, 'o'},
		{"json", no_argument, NULL, 'j'},
		{"sort", required_argument, NULL, 's'},
		{"interval", required_argument, NULL, 'i'},
		{"socket", required_argument, NULL, 'S'},
		{"width", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct sample a, b;
	static int idx[ROWS_MAX];
	struct sample *cur = &a, *prev = NULL;
	const char *sock = mgi_cli_socket;
	bool once = false, json = false, tty;
	double interval = 1.0;
	long width = 0;
	struct termios saved;
	int opt;
	char *end;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			once = true;
			break;
		case 'j':
			json = true;
			break;
		case 's': {
			int k;
			for (k = 0; k < NSORTS && strcmp(sorts[k].name, optarg) != 0; k++)
				;
			if (k == NSORTS) {
				fprintf(stderr, "memgrp top: --sort: usage, name, faults, evictions, swap, "
						"oom or pressure, not '%s'\n", optarg);
				return MGI_EXIT_USAGE;
			}
			sort_by = (enum sort_key)k;
			break;
		}
		case 'i':
			errno = 0;
			interval = strtod(optarg, &end);
			if (errno || *end || !*optarg || !(interval >= 0.1 && interval <= 3600)) {
				fprintf(stderr, "memgrp top: --interval: seconds, 0.1 to 3600\n");
				return MGI_EXIT_USAGE;
			}
			break;
		case 'S':
			sock = optarg;
			break;
		case 'w':
			errno = 0;
			width = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || width < 30 || width > 10000) {
				fprintf(stderr, "memgrp top: --width: columns, 30 to 10000\n");
				return MGI_EXIT_USAGE;
			}
			break;
		case 'h':
			top_usage(stdout);
			return MGI_EXIT_OK;
		default:
			top_usage(stderr);
			return MGI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "memgrp top: unexpected argument '%s'\n", argv[optind]);
		return MGI_EXIT_USAGE;
	}
	if (sock && !mgi_manager_answers(sock)) {
		fprintf(stderr, "memgrp top: no manager answers at %s\n", sock);
		return MGI_EXIT_FAILURE;
	}
	tty = !once && !json && isatty(STDOUT_FILENO);
	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	bool raw_on = tty && keys_raw(&saved);
	for (bool first = true; !stop; first = false) {
		mgi_top_collect(sock, cur);
		mgi_top_rates(cur, prev);
		if (once && first) {
			/* the rates need a second sample */
			prev = cur;
			cur = cur == &a ? &b : &a;
			usleep((useconds_t)(interval * 1e6));
			continue;
		}
		show(cur, idx, json, tty, !first && !once, width);
		if (once || ferror(stdout))
			break;
		prev = cur;
		cur = cur == &a ? &b : &a;
		wait_keys(interval, raw_on, prev, idx, width);
	}
	if (raw_on)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	return MGI_EXIT_OK;
}

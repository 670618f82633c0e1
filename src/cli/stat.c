/* stat.c - `memgrp stat`: a group's figures from its manager, as text or JSON. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "page.h"
#include "proto.h"
#include "size.h"

int mgi_socket_for_group(const char *group, char *out, size_t len)
{
	if (!*group || strchr(group, '/') || group[0] == '.') {
		errno = EINVAL;
		return -1;
	}
	return snprintf(out, len, "/run/memgrp/%s.sock", group) < (int)len ? 0 : -1;
}

void mgi_stats_print_json_fields(FILE *f, const mgi_stats_t *s)
{
	char small[4096], *buf = small;
	size_t need = mgi_stats_json_fields(s, small, sizeof(small));

	/* The table grows with the stats: ask again with room for all. */
	if (need >= sizeof(small) && (buf = malloc(need + 1)) != NULL)
		mgi_stats_json_fields(s, buf, need + 1);
	fputs(buf ? buf : small, f);
	if (buf != small)
		free(buf);
}

int mgi_stats_write_json(const mgi_stats_t *s, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputc('{', f);
	mgi_stats_print_json_fields(f, s);
	fputs("}\n", f);
	return fclose(f) == 0 ? 0 : -errno;
}

static void print_json(const mgi_msg_stat_t *s)
{
	printf("{\"group\": ");
	mgi_json_str(stdout, s->group);
	printf(", ");
	mgi_stats_print_json_fields(stdout, &s->figures);
	printf(", \"processes\": [");
	for (uint32_t i = 0; i < s->nprocs; i++) {
		printf("%s{\"pid\": %d, \"comm\": ", i ? ", " : "", s->procs[i].pid);
		mgi_json_str(stdout, s->procs[i].comm);
		printf(", \"charged\": %llu, \"pgfault\": %llu}",
		       (unsigned long long)s->procs[i].charged,
		       (unsigned long long)s->procs[i].pgfault);
	}
	printf("]}\n");
}

static void print_text(const mgi_msg_stat_t *s)
{
	char a[16];
	const uint64_t unlimited = (uint64_t)MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE;

	printf("%-16s %s\n", "group", s->group);
	for (const mgi_stats_field_t *f = mgi_stats_fields; f->name; f++) {
		uint64_t v = mgi_stats_get(&s->figures, f);
		if (!strcmp(f->name, "backend"))
			printf("%-16s %s\n", f->name, v == MGI_BACKEND_KERNEL ? "kernel" : "agent");
		else if (!f->is_size)
			printf("%-16s %llu\n", f->name, (unsigned long long)v);
		else if (v >= unlimited)
			printf("%-16s max\n", f->name);
		else
			printf("%-16s %s\n", f->name, mgi_size_format(v, a, sizeof(a)));
	}
	if (s->nprocs)
		printf("%8s  %-16s %10s %10s\n", "PID", "COMM", "CHARGED", "PGFAULT");
	for (uint32_t i = 0; i < s->nprocs; i++)
		printf("%8d  %-16s %10s %10llu\n", s->procs[i].pid, s->procs[i].comm,
		       mgi_size_format(s->procs[i].charged, a, sizeof(a)),
		       (unsigned long long)s->procs[i].pgfault);
}

int mgi_cmd_stat(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *group = "";
	char path[108], err[256];
	static mgi_msg_t reply, req;
	bool json = false;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "js:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 's': sock = optarg; break;
		case 'h':
			printf("Usage: memgrp stat [--json] [--socket PATH] [GROUP]\n"
			       "Prints a group's figures (sizes in bytes in JSON). Usage, max_usage and\n"
			       "failcnt are the group's counter's, which counts its whole subtree;\n"
			       "processes, faults and tracked sizes are summed over the subtree.\n"
			       "The manager is found at --socket, else $MEMGRP_SOCKET, else memgrpd\n"
			       "(%s), else /run/memgrp/TOP.sock for a group TOP/...\n"
			       "Without GROUP: the default group of the manager at --socket or\n"
			       "$MEMGRP_SOCKET (inside `memgrp run`, the group it runs in).\n",
			       MGI_MEMGRPD_SOCKET);
			return MGI_EXIT_OK;
		default: return MGI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		if (optind + 1 < argc) {
			fprintf(stderr, "memgrp stat: one group at a time\n");
			return MGI_EXIT_USAGE;
		}
		group = argv[optind];
		if (mgi_group_name_check(group, err, sizeof(err)) != 0) {
			fprintf(stderr, "memgrp stat: '%s' is not a group name: %s\n", group, err);
			return MGI_EXIT_USAGE;
		}
	}
	if (mgi_find_manager(sock, group, path, sizeof(path), err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp stat: %s\n", err);
		return MGI_EXIT_USAGE;
	}
	mgi_msg_init(&req, MGI_MSG_STAT_REQ);
	snprintf(req.group.group, sizeof(req.group.group), "%s", group);
	if (mgi_request(path, &req, MGI_MSG_STAT, &reply, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp stat: %s\n", err);
		return MGI_EXIT_FAILURE;
	}
	if (json)
		print_json(&reply.stat);
	else
		print_text(&reply.stat);
	return MGI_EXIT_OK;
}

/* request.c - one request to a group's manager and its parsed answer. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

int mgi_request(const char *sock, const mgi_msg_t *req, int want, mgi_msg_t *reply, char *err,
		size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static char buf[sizeof(mgi_msg_t) + 1];
	char why[96];
	ssize_t n;
	int fd, type;

	if (strlen(sock) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path too long");
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		snprintf(err, errlen, "no manager answers at %s: %s", sock, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	/* A manager that hangs must not hang the command. */
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, req, req->hdr.len, MSG_NOSIGNAL) < 0 || (n = recv(fd, buf, sizeof(buf), 0)) <= 0) {
		snprintf(err, errlen, "the manager at %s did not answer", sock);
		close(fd);
		return -EPROTO;
	}
	close(fd);
	type = mgi_msg_parse(buf, (size_t)n, reply, why, sizeof(why));
	if (type == MGI_MSG_REPLY && want != MGI_MSG_REPLY) {
		/* Refused: the manager says why. */
		snprintf(err, errlen, "%s", reply->reply.message);
		return reply->reply.status < 0 ? reply->reply.status : -EPROTO;
	}
	if (type != want) {
		snprintf(err, errlen, "bad answer from the manager at %s: %s", sock,
			 type < 0 ? why : "unexpected message");
		return -EPROTO;
	}
	return 0;
}

int mgi_request_reply(const char *sock, const mgi_msg_t *req, char *err, size_t errlen)
{
	static mgi_msg_t r;
	int rc = mgi_request(sock, req, MGI_MSG_REPLY, &r, err, errlen);

	if (rc != 0)
		return rc;
	snprintf(err, errlen, "%s", r.reply.message);
	return r.reply.status;
}

const char *mgi_cli_socket;

bool mgi_manager_answers(const char *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;
	bool ok;

	if (strlen(sock) >= sizeof(sa.sun_path))
		return false;
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

int mgi_find_manager(const char *sock_opt, const char *group, char *out, size_t len, char *err,
		     size_t errlen)
{
	char top[MGI_GROUP_NAME_MAX];
	const char *env = getenv("MEMGRP_SOCKET");

	if (!sock_opt || !*sock_opt)
		sock_opt = mgi_cli_socket;
	if (!sock_opt || !*sock_opt)
		sock_opt = env;
	if (sock_opt && *sock_opt) {
		if (snprintf(out, len, "%s", sock_opt) < (int)len)
			return 0;
		snprintf(err, errlen, "socket path too long");
		return -1;
	}
	if (group && *group && mgi_group_name_check(group, err, errlen) != 0)
		return -1;
	if (mgi_manager_answers(MGI_MEMGRPD_SOCKET)) {
		snprintf(out, len, "%s", MGI_MEMGRPD_SOCKET);
		return 0;
	}
	if (!group || !*group) {
		snprintf(err, errlen, "which group? (name one, or give --socket PATH)");
		return -1;
	}
	snprintf(top, sizeof(top), "%s", group);
	if (strchr(top, '/'))
		*strchr(top, '/') = '\0';
	return mgi_socket_for_group(top, out, len);
}

void mgi_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

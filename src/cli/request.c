/* request.c - one request to a group's manager and its parsed answer. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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
	if (send(fd, req, req->hdr.len, MSG_NOSIGNAL) < 0 || (n = recv(fd, buf, sizeof(buf), 0)) <= 0) {
		snprintf(err, errlen, "the manager at %s did not answer", sock);
		close(fd);
		return -EPROTO;
	}
	close(fd);
	type = mgi_msg_parse(buf, (size_t)n, reply, why, sizeof(why));
	if (type != want) {
		snprintf(err, errlen, "bad answer from the manager at %s: %s", sock,
			 type < 0 ? why : "unexpected message");
		return -EPROTO;
	}
	return 0;
}

int mgi_group_socket(const char *sock_opt, const char *group, char *out, size_t len)
{
	if (sock_opt && *sock_opt)
		return snprintf(out, len, "%s", sock_opt) < (int)len ? 0 : -1;
	if (group)
		return mgi_socket_for_group(group, out, len);
	return -1;
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

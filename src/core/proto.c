/* proto.c - building and validating control-socket messages. */
#include "proto.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define FIELD(name, is_size) {#name, offsetof(mgi_stats_t, name), is_size}
const mgi_stats_field_t mgi_stats_fields[] = {
	FIELD(usage, 1),
	FIELD(max_usage, 1),
	FIELD(limit, 1),
	FIELD(failcnt, 0),
	FIELD(pgfault, 0),
	FIELD(nr_processes, 0),
	FIELD(tracked_bytes, 1),
	FIELD(untracked_bytes, 1),
	FIELD(oom_kill, 0),
	{NULL, 0, 0},
};
#undef FIELD

static size_t size_of_type(int type)
{
	switch (type) {
	case MGI_MSG_HELLO: return sizeof(mgi_msg_hello_t);
	case MGI_MSG_WELCOME: return sizeof(mgi_msg_welcome_t);
	case MGI_MSG_OOM_KILL: return sizeof(mgi_msg_oom_t);
	case MGI_MSG_STAT_REQ: return sizeof(mgi_msg_stat_req_t);
	case MGI_MSG_STAT: return sizeof(mgi_msg_stat_t);
	case MGI_MSG_SET: return sizeof(mgi_msg_set_t);
	case MGI_MSG_REPLY: return sizeof(mgi_msg_reply_t);
	default: return 0;
	}
}

void mgi_msg_init(mgi_msg_t *m, enum mgi_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->hdr.magic = MGI_MSG_MAGIC;
	m->hdr.version = MGI_PROTO_VERSION;
	m->hdr.type = (uint16_t)type;
	m->hdr.len = (uint32_t)size_of_type(type);
}

static int bad(int code, char *err, size_t errlen, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", why);
	return code;
}

int mgi_msg_parse(const void *buf, size_t len, mgi_msg_t *out, char *err, size_t errlen)
{
	mgi_msg_hdr_t h;
	size_t want;

	if (!buf || len < sizeof(h))
		return bad(-EPROTO, err, errlen, "message shorter than its header");
	memcpy(&h, buf, sizeof(h));
	if (h.magic != MGI_MSG_MAGIC)
		return bad(-EPROTO, err, errlen, "bad magic: not a memgrp message");
	if (h.version != MGI_PROTO_VERSION)
		return bad(-EPROTO, err, errlen, "protocol version mismatch");
	want = size_of_type(h.type);
	if (!want)
		return bad(-EPROTO, err, errlen, "unknown message type");
	if (h.len != len || len != want)
		return bad(-EPROTO, err, errlen, "message length does not match its type");
	memset(out, 0, sizeof(*out));
	memcpy(out, buf, len);
	switch (h.type) {
	case MGI_MSG_HELLO:
		if (out->hello.pid <= 0)
			return bad(-EINVAL, err, errlen, "hello: pid must be positive");
		if (out->hello.slot < -1 || out->hello.slot >= MGI_PROCS_MAX)
			return bad(-EINVAL, err, errlen, "hello: slot out of range");
		break;
	case MGI_MSG_WELCOME:
		if (out->welcome.slot < 0 || out->welcome.slot >= MGI_PROCS_MAX)
			return bad(-EINVAL, err, errlen, "welcome: slot out of range");
		break;
	case MGI_MSG_OOM_KILL:
		if (out->oom.killer <= 0 || out->oom.victim <= 0)
			return bad(-EINVAL, err, errlen, "oom: pids must be positive");
		out->oom.victim_comm[MGI_COMM_MAX - 1] = '\0';
		break;
	case MGI_MSG_SET:
		if (out->set.memory_max != MGI_SET_KEEP && out->set.memory_max != MGI_SET_UNLIMITED &&
		    out->set.memory_max < 4096)
			return bad(-EINVAL, err, errlen, "set: memory_max below one page");
		break;
	case MGI_MSG_REPLY:
		if (out->reply.status > 0)
			return bad(-EINVAL, err, errlen, "reply: status must be 0 or negative");
		out->reply.message[sizeof(out->reply.message) - 1] = '\0';
		break;
	case MGI_MSG_STAT:
		if (out->stat.nprocs > MGI_STAT_PROCS_MAX)
			return bad(-EINVAL, err, errlen, "stat: too many processes");
		out->stat.group[MGI_GROUP_NAME_MAX - 1] = '\0';
		for (uint32_t i = 0; i < out->stat.nprocs; i++)
			out->stat.procs[i].comm[MGI_COMM_MAX - 1] = '\0';
		break;
	}
	return h.type;
}

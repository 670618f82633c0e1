/* test_group.c - group names: checks and their reasons, depth, parent, ancestry. */
#include <errno.h>

#include "counter.h"
#include "group.h"
#include "harness.h"

/* n copies of c in buf (at most size - 1), NUL-terminated. */
static char *repeat(char *buf, size_t size, char c, size_t n)
{
	if (n >= size)
		n = size - 1;
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static void accepts_valid_names(void)
{
	static const char *const ok[] = {
		"web", "web/api", "a-b_c.d", "A9", "x", "web/api/v1", "a/b/c/d/e/f/g/h",
		"a.b/c..d", "-dash/_under",
	};
	char err[128];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		err[0] = '\0';
		CHECK_MSG(mgi_group_name_check(ok[i], err, sizeof(err)) == 0, "'%s' refused: %s",
			  ok[i], err);
	}
	/* A component of exactly 63 characters and a name of exactly 127. */
	char name[MGI_GROUP_NAME_MAX + 8];
	repeat(name, sizeof(name), 'c', MGI_GROUP_COMPONENT_MAX);
	CHECK_INT_EQ(mgi_group_name_check(name, err, sizeof(err)), 0);
	repeat(name, sizeof(name), 'c', 127);
	name[63] = '/'; /* 63 + '/' + 63 characters */
	CHECK_EQ(strlen(name), 127);
	CHECK_INT_EQ(mgi_group_name_check(name, err, sizeof(err)), 0);
	/* err may be NULL. */
	CHECK_INT_EQ(mgi_group_name_check("web", NULL, 0), 0);
}

/* Each refusal is -EINVAL with its own reason. */
static void rejects_bad_names_with_reasons(void)
{
	static const struct {
		const char *name, *why;
	} bad[] = {
		{"", "empty group name"},
		{"/web", "empty component in group name (leading, trailing or double '/')"},
		{"web/", "empty component in group name (leading, trailing or double '/')"},
		{"web//api", "empty component in group name (leading, trailing or double '/')"},
		{"/", "empty component in group name (leading, trailing or double '/')"},
		{".web", "a group name component may not start with '.'"},
		{"web/.api", "a group name component may not start with '.'"},
		{"..", "a group name component may not start with '.'"},
		{"web api", "group names use letters, digits, '_', '-', '.' and '/'"},
		{"web/*", "group names use letters, digits, '_', '-', '.' and '/'"},
		{"caf\xc3\xa9", "group names use letters, digits, '_', '-', '.' and '/'"},
		{"web\\api", "group names use letters, digits, '_', '-', '.' and '/'"},
		{"a/b/c/d/e/f/g/h/i", "groups nest at most 8 deep"},
	};
	char err[128];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(err, "unset");
		CHECK_MSG(mgi_group_name_check(bad[i].name, err, sizeof(err)) == -EINVAL,
			  "'%s' accepted", bad[i].name);
		CHECK_MSG(strcmp(err, bad[i].why) == 0, "'%s': got \"%s\", want \"%s\"",
			  bad[i].name, err, bad[i].why);
	}
}

static void rejects_long_names(void)
{
	char name[MGI_GROUP_NAME_MAX * 2], err[128];

	/* One component of 64 characters, alone and below a parent. */
	repeat(name, sizeof(name), 'c', MGI_GROUP_COMPONENT_MAX + 1);
	CHECK_INT_EQ(mgi_group_name_check(name, err, sizeof(err)), -EINVAL);
	CHECK_STR_EQ(err, "group name component longer than 63 characters");
	snprintf(name, sizeof(name), "web/");
	repeat(name + 4, sizeof(name) - 4, 'c', MGI_GROUP_COMPONENT_MAX + 1);
	CHECK_INT_EQ(mgi_group_name_check(name, err, sizeof(err)), -EINVAL);
	CHECK_STR_EQ(err, "group name component longer than 63 characters");

	/* 128 characters (no room for the NUL in MGI_GROUP_NAME_MAX), and
	 * more, in valid components. */
	for (size_t len = MGI_GROUP_NAME_MAX; len < sizeof(name); len += 37) {
		repeat(name, sizeof(name), 'c', len);
		for (size_t i = 40; i < len; i += 41)
			name[i] = '/';
		CHECK_INT_EQ(mgi_group_name_check(name, err, sizeof(err)), -EINVAL);
		CHECK_STR_EQ(err, "group name longer than 127 characters");
	}
}

/* The reason is cut to fit err, and always terminated. */
static void short_error_buffer(void)
{
	char err[8];

	memset(err, 'x', sizeof(err));
	CHECK_INT_EQ(mgi_group_name_check("", err, sizeof(err)), -EINVAL);
	CHECK_STR_EQ(err, "empty g");
	CHECK_INT_EQ(mgi_group_name_check("", NULL, 0), -EINVAL);
	memset(err, 'x', sizeof(err));
	CHECK_INT_EQ(mgi_group_name_check("", err, 0), -EINVAL);
	CHECK_EQ(err[0], 'x'); /* errlen 0: not written */
}

static void depth(void)
{
	CHECK_EQ(mgi_group_depth(""), 0);
	CHECK_EQ(mgi_group_depth("web"), 1);
	CHECK_EQ(mgi_group_depth("web/api"), 2);
	CHECK_EQ(mgi_group_depth("a.b/c-d/e_f"), 3);
	CHECK_EQ(mgi_group_depth("a/b/c/d/e/f/g/h"), MGI_DEPTH_MAX);
}

static void parent(void)
{
	char out[MGI_GROUP_NAME_MAX];

	memset(out, 'x', sizeof(out));
	mgi_group_parent("web", out);
	CHECK_STR_EQ(out, "");
	mgi_group_parent("web/api", out);
	CHECK_STR_EQ(out, "web");
	mgi_group_parent("web/api/v1", out);
	CHECK_STR_EQ(out, "web/api");
	mgi_group_parent("a/b/c/d/e/f/g/h", out);
	CHECK_STR_EQ(out, "a/b/c/d/e/f/g");

	/* The parent of the longest name fits. */
	char name[MGI_GROUP_NAME_MAX];
	repeat(name, sizeof(name), 'c', 127);
	name[63] = '/';
	mgi_group_parent(name, out);
	CHECK_EQ(strlen(out), 63);
	CHECK(strncmp(out, name, 63) == 0);
}

static void is_under(void)
{
	CHECK(mgi_group_is_under("web/api", "web"));
	CHECK(mgi_group_is_under("web/api", ""));
	CHECK(!mgi_group_is_under("web/api", "we"));
	CHECK(mgi_group_is_under("web", "web"));
	CHECK(mgi_group_is_under("web/api/v1", "web"));
	CHECK(mgi_group_is_under("web/api/v1", "web/api"));
	CHECK(mgi_group_is_under("", ""));
	CHECK(mgi_group_is_under("web", ""));
	CHECK(!mgi_group_is_under("web", "web/api"));
	CHECK(!mgi_group_is_under("webx", "web"));
	CHECK(!mgi_group_is_under("web-2/api", "web"));
	CHECK(!mgi_group_is_under("", "web"));
	CHECK(!mgi_group_is_under("db", "web"));
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(accepts_valid_names);
	MGT_RUN(rejects_bad_names_with_reasons);
	MGT_RUN(rejects_long_names);
	MGT_RUN(short_error_buffer);
	MGT_RUN(depth);
	MGT_RUN(parent);
	MGT_RUN(is_under);
	MGT_DONE();
}

/* test_options.c - the agent's environment table: defaults, ranges, choices, and what a bad value logs. */
#include <stdarg.h>
#include <stdlib.h>

#include "harness.h"
#include "options.h"

/* options.c logs through the agent's logger; here it is kept for checks. */
void mgi_agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char logged[512];
void mgi_agent_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(logged, sizeof(logged), fmt, ap);
	va_end(ap);
}

static void strings_unset_or_empty_are_null(void)
{
	unsetenv("MEMGRP_GROUP");
	CHECK(mgi_env_str(MGI_ENV_GROUP) == NULL);
	setenv("MEMGRP_GROUP", "", 1);
	CHECK(mgi_env_str(MGI_ENV_GROUP) == NULL);
	setenv("MEMGRP_GROUP", "web/api", 1);
	CHECK_STR_EQ(mgi_env_str(MGI_ENV_GROUP), "web/api");
	unsetenv("MEMGRP_GROUP");
}

static void numbers_keep_the_default_on_bad_input(void)
{
	const char *bad[] = {"x", "-1", "12us", "1001", " 5", "99999999999999999999999"};

	unsetenv("MEMGRP_POLL_US");
	uint64_t def = mgi_env_uint(MGI_ENV_POLL_US);
	setenv("MEMGRP_POLL_US", "0", 1);
	CHECK_EQ(mgi_env_uint(MGI_ENV_POLL_US), 0);
	setenv("MEMGRP_POLL_US", "1000", 1);
	CHECK_EQ(mgi_env_uint(MGI_ENV_POLL_US), 1000);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		logged[0] = '\0';
		setenv("MEMGRP_POLL_US", bad[i], 1);
		CHECK_EQ(mgi_env_uint(MGI_ENV_POLL_US), def);
		CHECK_MSG(strstr(logged, "MEMGRP_POLL_US=") && strstr(logged, "from 0 to 1000"),
			  "'%s' logged '%s'", bad[i], logged);
	}
	unsetenv("MEMGRP_POLL_US");
	setenv("MEMGRP_SWAP_FILE_AFTER", "18446744073709551615", 1);
	CHECK_EQ(mgi_env_uint(MGI_ENV_SWAP_FILE_AFTER), UINT64_MAX);
	unsetenv("MEMGRP_SWAP_FILE_AFTER");
	CHECK_EQ(mgi_env_uint(MGI_ENV_SWAP_FILE_AFTER), 0);
}

static void choices_map_to_their_index(void)
{
	unsetenv("MEMGRP_CODEC");
	CHECK_EQ(mgi_env_choice(MGI_ENV_CODEC), 0);
	setenv("MEMGRP_CODEC", "zstd", 1);
	CHECK_EQ(mgi_env_choice(MGI_ENV_CODEC), 1);
	setenv("MEMGRP_INJECT", "move-misreport", 1);
	CHECK_EQ(mgi_env_choice(MGI_ENV_INJECT), 2);
	logged[0] = '\0';
	setenv("MEMGRP_CODEC", "gzip", 1);
	CHECK_EQ(mgi_env_choice(MGI_ENV_CODEC), 0);
	CHECK_MSG(strstr(logged, "MEMGRP_CODEC=gzip: unknown; using lz4"), "logged '%s'", logged);
	setenv("MEMGRP_ESTIMATE_VICTIM", "least-recent", 1);
	CHECK_EQ(mgi_env_choice(MGI_ENV_ESTIMATE_VICTIM), 1);
	unsetenv("MEMGRP_CODEC");
	unsetenv("MEMGRP_INJECT");
	unsetenv("MEMGRP_ESTIMATE_VICTIM");
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(strings_unset_or_empty_are_null);
	MGT_RUN(numbers_keep_the_default_on_bad_input);
	MGT_RUN(choices_map_to_their_index);
	MGT_DONE();
}

/* test_size.c - the size parser and formatter. */
#include <errno.h>

#include "harness.h"
#include "size.h"

static void parses_plain_and_suffixed(void)
{
	struct { const char *in; uint64_t want; } ok[] = {
		{"0", 0}, {"4096", 4096}, {"64K", 64 << 10}, {"64k", 64 << 10},
		{"64KiB", 64 << 10}, {"64kb", 64 << 10}, {"1M", 1 << 20},
		{"1.5G", 3ULL << 29}, {"2T", 2ULL << 40}, {"1P", 1ULL << 50},
		{"0.5K", 512}, {"1.0001K", 1024}, {"100B", 100},
		{"007", 7}, {"18446744073709551615", UINT64_MAX},
		{"max", UINT64_MAX}, {"15E", 15ULL << 60}, {"MAX", UINT64_MAX}, {"infinity", UINT64_MAX},
		{"15.99999999999999999999P", (16ULL << 50) - 1},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 12345;
		char err[128] = "";
		int rc = mgi_size_parse(ok[i].in, &v, err, sizeof(err));
		CHECK_MSG(rc == 0, "'%s' rejected: %s", ok[i].in, err);
		CHECK_MSG(v == ok[i].want, "'%s' -> %llu, want %llu", ok[i].in,
			  (unsigned long long)v, (unsigned long long)ok[i].want);
	}
}

static void rejects_bad_input_clearly(void)
{
	struct { const char *in; int rc; const char *says; } bad[] = {
		{"", -EINVAL, "empty"}, {"-1", -EINVAL, "starts with a digit"},
		{"+1", -EINVAL, "starts with a digit"}, {" 1", -EINVAL, "digit"},
		{"1 ", -EINVAL, "suffix"}, {"12X", -EINVAL, "unknown suffix 'X'"},
		{"1.5", -EINVAL, "fraction needs a unit"}, {"1.", -EINVAL, "after '.'"},
		{".5K", -EINVAL, "digit"}, {"1KK", -EINVAL, "after the unit"},
		{"1Kx", -EINVAL, "after the unit"}, {"0x10", -EINVAL, "suffix"},
		{"1e9", -EINVAL, "after the unit"}, {"maxi", -EINVAL, "digit"},
		{"18446744073709551616", -ERANGE, "too large"},
		{"16E", -ERANGE, "too large"}, {"12Q", -EINVAL, "unknown suffix"}, {"16384P", -ERANGE, "too large"},
		{"99999999999999999999999", -ERANGE, "too large"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 777;
		char err[128] = "";
		int rc = mgi_size_parse(bad[i].in, &v, err, sizeof(err));
		CHECK_MSG(rc == bad[i].rc, "'%s' gave %d, want %d", bad[i].in, rc,
			  bad[i].rc);
		CHECK_MSG(v == 777, "'%s' altered the output on error", bad[i].in);
		CHECK_MSG(strstr(err, bad[i].says) != NULL,
			  "'%s': message \"%s\" lacks \"%s\"", bad[i].in, err,
			  bad[i].says);
	}
	/* NULL text and NULL/short error buffers are safe. */
	uint64_t v;
	char tiny[4];
	CHECK_INT_EQ(mgi_size_parse(NULL, &v, NULL, 0), -EINVAL);
	CHECK_INT_EQ(mgi_size_parse("zz", &v, tiny, sizeof(tiny)), -EINVAL);
	CHECK_EQ(strlen(tiny), 3);
}

static void long_input_gives_short_message(void)
{
	char in[4096], err[256];
	uint64_t v;
	memset(in, '9', sizeof(in) - 2);
	in[sizeof(in) - 2] = 'Z';
	in[sizeof(in) - 1] = '\0';
	CHECK_INT_EQ(mgi_size_parse(in, &v, err, sizeof(err)), -ERANGE);
	CHECK_LT(strlen(err), 120);
}

static void formats_for_people(void)
{
	char buf[16];
	CHECK_STR_EQ(mgi_size_format(0, buf, sizeof(buf)), "0");
	CHECK_STR_EQ(mgi_size_format(1023, buf, sizeof(buf)), "1023");
	CHECK_STR_EQ(mgi_size_format(1024, buf, sizeof(buf)), "1K");
	CHECK_STR_EQ(mgi_size_format(64 << 20, buf, sizeof(buf)), "64M");
	CHECK_STR_EQ(mgi_size_format(3ULL << 29, buf, sizeof(buf)), "1.5G");
	CHECK_STR_EQ(mgi_size_format((2ULL << 30) - 1, buf, sizeof(buf)), "1.9G");
	CHECK_STR_EQ(mgi_size_format(UINT64_MAX, buf, sizeof(buf)), "max");
	CHECK_STR_EQ(mgi_size_format(UINT64_MAX - 1, buf, sizeof(buf)), "15.9E");
}

/* Whatever format prints, parse reads back to at most the value (format
 * rounds down) and exactly when it printed whole units. */
static void format_parse_round_trip(void)
{
	uint64_t s = mgt_seed();
	for (int i = 0; i < 100000; i++) {
		uint64_t v = mgt_rand(&s) >> mgt_below(&s, 64), back = 0;
		char buf[16], err[128];
		mgi_size_format(v, buf, sizeof(buf));
		CHECK_MSG(mgi_size_parse(buf, &back, err, sizeof(err)) == 0,
			  "format gave unparsable '%s': %s", buf, err);
		CHECK_LE(back, v);
		if (!strchr(buf, '.'))
			CHECK_EQ(back, v);
	}
}

/* Limits: only the word means "no limit"; a number the counters cannot
 * hold is refused, never read as max (a security review found
 * "-m 18446744073709551615" and "-m 8E" silently unlimited). */
static void limits_refuse_what_counters_cannot_hold(void)
{
	const char *too_big[] = {"18446744073709551615", "8E", "15E", "9223372036854775807",
				 "18446744073709551616"};
	char err[160], most[16];
	uint64_t v;

	for (size_t i = 0; i < sizeof(too_big) / sizeof(too_big[0]); i++) {
		v = 7;
		err[0] = '\0';
		CHECK_INT_EQ(mgi_size_parse_limit(too_big[i], &v, err, sizeof(err)), -ERANGE);
		CHECK_EQ(v, 7);
		CHECK_MSG(strstr(err, "use 'max' for no limit") != NULL, "'%s': %s", too_big[i], err);
	}
	CHECK_INT_EQ(mgi_size_parse_limit("max", &v, err, sizeof(err)), 0);
	CHECK_EQ(v, MGI_SIZE_MAX);
	CHECK_INT_EQ(mgi_size_parse_limit("64M", &v, err, sizeof(err)), 0);
	CHECK_EQ(v, 64ULL << 20);
	/* The edge: the largest limit parses, one byte more does not. */
	mgi_size_format(MGI_SIZE_LIMIT_MAX, most, sizeof(most));
	snprintf(err, sizeof(err), "%llu", (unsigned long long)MGI_SIZE_LIMIT_MAX);
	CHECK_INT_EQ(mgi_size_parse_limit(err, &v, NULL, 0), 0);
	CHECK_EQ(v, MGI_SIZE_LIMIT_MAX);
	CHECK_INT_EQ((int)(v / 4096 < MGI_PAGES_UNLIMITED), 1);
	snprintf(err, sizeof(err), "%llu", (unsigned long long)MGI_SIZE_LIMIT_MAX + 1);
	CHECK_INT_EQ(mgi_size_parse_limit(err, &v, NULL, 0), -ERANGE);
	CHECK_INT_EQ(mgi_size_parse_limit("lots", &v, NULL, 0), -EINVAL);
	CHECK_INT_EQ((int)mgi_size_is_limit(MGI_SIZE_MAX), 0);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(parses_plain_and_suffixed);
	MGT_RUN(rejects_bad_input_clearly);
	MGT_RUN(long_input_gives_short_message);
	MGT_RUN(formats_for_people);
	MGT_RUN(format_parse_round_trip);
	MGT_RUN(limits_refuse_what_counters_cannot_hold);
	MGT_DONE();
}

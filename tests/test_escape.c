/* test_escape.c - client text made safe for one log line. */
#include "escape.h"
#include "harness.h"

static void plain_text_passes(void)
{
	char out[64];
	CHECK_STR_EQ(mgi_escape("sleep", 16, out, sizeof(out)), "sleep");
	CHECK_STR_EQ(mgi_escape("caf\xc3\xa9", 16, out, sizeof(out)), "caf\xc3\xa9");
	CHECK_STR_EQ(mgi_escape("", 16, out, sizeof(out)), "");
}

static void control_bytes_are_escaped(void)
{
	char out[64];
	CHECK_STR_EQ(mgi_escape("a\nb", 16, out, sizeof(out)), "a\\x0ab");
	CHECK_STR_EQ(mgi_escape("\r\t\x1b[2J", 16, out, sizeof(out)), "\\x0d\\x09\\x1b[2J");
	CHECK_STR_EQ(mgi_escape("\x7f", 16, out, sizeof(out)), "\\x7f");
	/* A backslash is escaped too: "\x0a" typed by a client stays told apart. */
	CHECK_STR_EQ(mgi_escape("\\x0a", 16, out, sizeof(out)), "\\x5cx0a");
}

static void every_byte_comes_out_printable(void)
{
	char in[256], out[256 * 4 + 1];
	for (int i = 0; i < 255; i++)
		in[i] = (char)(i + 1);
	in[255] = '\0';
	mgi_escape(in, sizeof(in), out, sizeof(out));
	CHECK_INT_EQ((int)strlen(out) > 255, 1);
	for (size_t i = 0; out[i]; i++)
		CHECK_MSG((unsigned char)out[i] >= 0x20 && out[i] != 0x7f, "byte %zu is 0x%02x", i,
			  (unsigned char)out[i]);
}

static void stops_at_inlen_and_truncates_whole_escapes(void)
{
	char out[8];
	/* comm fields are fixed arrays that may lack a NUL */
	char comm[4] = {'a', 'b', 'c', 'd'};
	CHECK_STR_EQ(mgi_escape(comm, sizeof(comm), out, sizeof(out)), "abcd");
	CHECK_STR_EQ(mgi_escape("abcd\nefgh", 16, out, sizeof(out)), "abcd");
	CHECK_STR_EQ(mgi_escape("ab\ncdefgh", 16, out, sizeof(out)), "ab\\x0ac");
	CHECK_STR_EQ(mgi_escape("abc", 16, out, 1), "");
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(plain_text_passes);
	MGT_RUN(control_bytes_are_escaped);
	MGT_RUN(every_byte_comes_out_printable);
	MGT_RUN(stops_at_inlen_and_truncates_whole_escapes);
	MGT_DONE();
}

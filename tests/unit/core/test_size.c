/* test_size.c - "N[BKMG]" sizes: what parses, each way to get one wrong,
 * and the "120.0 MiB" form reasons show. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gitgate/core/size.h"

static const struct {
	const char *text;
	uint64_t bytes;
} good[] = {
	{"1", 1},
	{"100", 100},
	{"100B", 100},
	{"1K", 1024},
	{"50M", (uint64_t)50 << 20},
	{"5M", (uint64_t)5 << 20},
	{"2G", (uint64_t)2 << 30},
	{"050M", (uint64_t)50 << 20},
	{"18446744073709551615", UINT64_MAX},
	{"18446744073709551615B", UINT64_MAX},
	{"17179869183G", (uint64_t)17179869183 << 30},
};

START_TEST(parse_good)
{
	struct gg_err err = GG_ERR_INIT;
	uint64_t v = 0;

	ck_assert_msg(size_parse(&v, good[_i].text, &err) == 0, "%s: %s",
		      good[_i].text, err.msg);
	ck_assert_uint_eq(v, good[_i].bytes);
}
END_TEST

#define NOT_A_SIZE                                                             \
	"\" is not a size: want digits and at most one unit, B, K, M or G "    \
	"(e.g. \"50M\")"

static const struct {
	const char *text;
	const char *msg;
} bad[] = {
	{"", "\"" NOT_A_SIZE},
	{"M", "\"M" NOT_A_SIZE},
	{"50m", "\"50m" NOT_A_SIZE},
	{"50k", "\"50k" NOT_A_SIZE},
	{"50MB", "\"50MB" NOT_A_SIZE},
	{"50MiB", "\"50MiB" NOT_A_SIZE},
	{"5T", "\"5T" NOT_A_SIZE},
	{"-5M", "\"-5M" NOT_A_SIZE},
	{"+5M", "\"+5M" NOT_A_SIZE},
	{" 5M", "\" 5M" NOT_A_SIZE},
	{"5M ", "\"5M " NOT_A_SIZE},
	{"5 M", "\"5 M" NOT_A_SIZE},
	{"5.5M", "\"5.5M" NOT_A_SIZE},
	{"0x10", "\"0x10" NOT_A_SIZE},
	{"1e6", "\"1e6" NOT_A_SIZE},
	{"5\n", "\"5?" NOT_A_SIZE},
	{"0", "\"0\" is zero: the smallest limit is 1 byte"},
	{"0K", "\"0K\" is zero: the smallest limit is 1 byte"},
	{"000G", "\"000G\" is zero: the smallest limit is 1 byte"},
	{"18446744073709551616",
	 "\"18446744073709551616\" is too large (it does not fit in 64 bits)"},
	{"17179869184G",
	 "\"17179869184G\" is too large (it does not fit in 64 bits)"},
	{"99999999999999999999999999K",
	 "\"99999999999999999999999999K\" is too large (it does not fit in 64 "
	 "bits)"},
};

START_TEST(parse_bad)
{
	struct gg_err err = GG_ERR_INIT;
	uint64_t v = 7;

	ck_assert_int_eq(size_parse(&v, bad[_i].text, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, bad[_i].msg);
	ck_assert_uint_eq(v, 7); /* untouched */
}
END_TEST

/* A long junk string is shown shortened, never whole. */
START_TEST(parse_shows_short_text)
{
	struct gg_err err = GG_ERR_INIT;
	char text[300];
	uint64_t v;

	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	ck_assert_int_eq(size_parse(&v, text, &err), GG_EINVAL);
	ck_assert(strlen(err.msg) < 140);
	ck_assert(strstr(err.msg, "...\" is not a size") != NULL);
}
END_TEST

static const struct {
	uint64_t bytes;
	const char *text;
} formats[] = {
	{0, "0 B"},
	{1, "1 B"},
	{1023, "1023 B"},
	{1024, "1.0 KiB"},
	{1536, "1.5 KiB"},
	{(uint64_t)50 << 20, "50.0 MiB"},
	{(uint64_t)120 << 20, "120.0 MiB"},
	{((uint64_t)120 << 20) + (1 << 19), "120.5 MiB"},
	{((uint64_t)1 << 20) - 1, "1.0 MiB"}, /* not "1024.0 KiB" */
	{((uint64_t)1 << 20) - 60, "1023.9 KiB"},
	{(uint64_t)2 << 30, "2.0 GiB"},
	{(uint64_t)3 << 40, "3.0 TiB"},
	{UINT64_MAX, "16.0 EiB"},
};

START_TEST(format_table)
{
	char buf[SIZE_FORMAT_MAX];

	size_format(buf, sizeof(buf), formats[_i].bytes);
	ck_assert_str_eq(buf, formats[_i].text);
}
END_TEST

static Suite *size_suite(void)
{
	Suite *s = suite_create("size");
	TCase *tc = tcase_create("core");

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
	tcase_add_loop_test(tc, parse_good, 0, N(good));
	tcase_add_loop_test(tc, parse_bad, 0, N(bad));
	tcase_add_test(tc, parse_shows_short_text);
	tcase_add_loop_test(tc, format_table, 0, N(formats));
#undef N
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(size_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

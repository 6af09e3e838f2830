/* test_timeutil.c - RFC 3339 parsing and formatting. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gitgate/core/timeutil.h"

static const struct {
	const char *text;
	int64_t want;
} good[] = {
	{"1970-01-01T00:00:00Z", 0},
	{"2022-01-01T00:00:00+00:00", 1640995200},
	{"2022-01-01T00:00:00-00:00", 1640995200},
	{"2022-01-01t00:00:00z", 1640995200},
	{"2022-01-01 00:00:00Z", 1640995200},
	{"2022-01-01T01:30:00+01:30", 1640995200},
	{"2021-12-31T19:00:00-05:00", 1640995200},
	{"2022-01-01T00:00:00.5Z", 1640995200}, /* floor */
	{"2022-01-01T00:00:00.999999999Z", 1640995200},
	{"2022-01-01T00:00:00.123456789012345678901Z", 1640995200},
	{"2000-02-29T12:00:00Z", 951825600}, /* leap year */
	{"2024-02-29T00:00:00Z", 1709164800},
	{"2016-12-31T23:59:60Z", 1483228799}, /* leap second = :59 */
	{"1969-12-31T23:59:59Z", -1},
	{"1937-01-01T12:00:27.87+00:20", -1041337173}, /* RFC 3339 example */
	{"1985-04-12T23:20:50.52Z", 482196050},	       /* RFC 3339 example */
	{"1996-12-19T16:39:57-08:00", 851042397},      /* RFC 3339 example */
	{"0000-01-01T00:00:00Z", INT64_C(-62167219200)},
	{"9999-12-31T23:59:59Z", INT64_C(253402300799)},
	{"2038-01-19T03:14:08Z", INT64_C(2147483648)}, /* past 32 bits */
};

START_TEST(test_parse_good)
{
	struct gg_err err = GG_ERR_INIT;
	int64_t t = 42;

	ck_assert_msg(timeutil_parse_rfc3339(&t, good[_i].text,
					     strlen(good[_i].text),
					     &err) == GG_OK,
		      "%s: %s", good[_i].text, err.msg);
	ck_assert_msg(t == good[_i].want, "%s: got %lld", good[_i].text,
		      (long long)t);
}
END_TEST

static const char *const bad[] = {
	"",
	"2022-01-01",
	"2022-01-01T00:00:00",	     /* no zone */
	"2022-02-30T00:00:00Z",	     /* Feb 30 */
	"2023-02-29T00:00:00Z",	     /* not a leap year */
	"1900-02-29T00:00:00Z",	     /* century, not leap */
	"2022-13-01T00:00:00Z",	     /* month 13 */
	"2022-00-01T00:00:00Z",	     /* month 0 */
	"2022-01-00T00:00:00Z",	     /* day 0 */
	"2022-04-31T00:00:00Z",	     /* April 31 */
	"2022-01-01T24:00:00Z",	     /* hour 24 */
	"2022-01-01T00:60:00Z",	     /* minute 60 */
	"2022-01-01T00:00:61Z",	     /* second 61 */
	"2022-01-01T00:00:00.Z",     /* empty fraction */
	"2022-01-01T00:00:00,5Z",    /* comma fraction */
	"2022-01-01T00:00:00+0100",  /* offset without colon */
	"2022-01-01T00:00:00+01",    /* short offset */
	"2022-01-01T00:00:00+24:00", /* offset hour */
	"2022-01-01T00:00:00+01:60", /* offset minute */
	"2022-01-01T00:00:00ZZ",     /* trailing */
	"2022-01-01T00:00:00Z ",     /* trailing space */
	" 2022-01-01T00:00:00Z",     /* leading space */
	"2022-01-01X00:00:00Z",	     /* separator */
	"2022-1-01T00:00:00Z",	     /* one-digit month */
	"22-01-01T00:00:00Z",	     /* two-digit year */
	"+2022-01-01T00:00:00Z",     /* sign */
	"2022-01-01T0:00:00Z",	     /* one-digit hour */
	"2022-01-01T00:00Z",	     /* no seconds */
	"2022-01-01T00:00:00UTC",    /* zone name */
	"0000-01-01T00:00:00+00:01", /* before year 0 in UTC */
	"9999-12-31T23:59:59-00:01", /* after year 9999 in UTC */
	"2022-01-01T00:00:00.0000000000000000000000000000000000000000000000Z",
	"２０２２-01-01T00:00:00Z", /* non-ASCII digits */
};

START_TEST(test_parse_bad)
{
	struct gg_err err = GG_ERR_INIT;
	int64_t t = 42;

	ck_assert_msg(timeutil_parse_rfc3339(&t, bad[_i], strlen(bad[_i]),
					     &err) == GG_EINVAL,
		      "accepted %s", bad[_i]);
	ck_assert(!strncmp(err.msg, "invalid RFC 3339 time: ", 23));
	ck_assert(t == 42); /* untouched on failure */
}
END_TEST

START_TEST(test_parse_not_nul_terminated)
{
	const char text[] = "2022-01-01T00:00:00Zgarbage";
	int64_t t;

	ck_assert_int_eq(timeutil_parse_rfc3339(&t, text, 20, NULL), GG_OK);
	ck_assert(t == 1640995200);
	ck_assert_int_eq(timeutil_parse_rfc3339(&t, text, 19, NULL), GG_EINVAL);
}
END_TEST

START_TEST(test_format)
{
	char buf[TIMEUTIL_RFC3339_SIZE];

	ck_assert_int_eq(timeutil_format_rfc3339(buf, sizeof(buf), 0, NULL),
			 GG_OK);
	ck_assert_str_eq(buf, "1970-01-01T00:00:00Z");
	ck_assert_int_eq(timeutil_format_rfc3339(buf, sizeof(buf), -1, NULL),
			 GG_OK);
	ck_assert_str_eq(buf, "1969-12-31T23:59:59Z");
	ck_assert_int_eq(
		timeutil_format_rfc3339(buf, sizeof(buf), 951825600, NULL),
		GG_OK);
	ck_assert_str_eq(buf, "2000-02-29T12:00:00Z");
	ck_assert_int_eq(timeutil_format_rfc3339(buf, sizeof(buf),
						 INT64_C(253402300799), NULL),
			 GG_OK);
	ck_assert_str_eq(buf, "9999-12-31T23:59:59Z");
	ck_assert_int_eq(timeutil_format_rfc3339(buf, sizeof(buf),
						 INT64_C(-62167219200), NULL),
			 GG_OK);
	ck_assert_str_eq(buf, "0000-01-01T00:00:00Z");
}
END_TEST

START_TEST(test_format_errors)
{
	char buf[TIMEUTIL_RFC3339_SIZE];

	ck_assert_int_eq(timeutil_format_rfc3339(buf, sizeof(buf),
						 INT64_C(253402300800), NULL),
			 GG_EINVAL);
	ck_assert_int_eq(timeutil_format_rfc3339(buf, sizeof(buf),
						 INT64_C(-62167219201), NULL),
			 GG_EINVAL);
	ck_assert_int_eq(timeutil_format_rfc3339(buf, sizeof(buf) - 1, 0, NULL),
			 GG_ELIMIT);
}
END_TEST

/* Format then parse is the identity, and agrees with gmtime_r, across the
 * whole range in irregular steps. */
START_TEST(test_roundtrip_vs_gmtime)
{
	char buf[TIMEUTIL_RFC3339_SIZE], want[TIMEUTIL_RFC3339_SIZE];
	int64_t t, back;
	struct tm tm;
	time_t tt;

	for (t = INT64_C(-62167219200); t <= INT64_C(253402300799);
	     t += INT64_C(86399) * 997 + 13) {
		ck_assert_int_eq(
			timeutil_format_rfc3339(buf, sizeof(buf), t, NULL),
			GG_OK);
		ck_assert_int_eq(
			timeutil_parse_rfc3339(&back, buf, strlen(buf), NULL),
			GG_OK);
		ck_assert(back == t);
		tt = (time_t)t;
		ck_assert_ptr_nonnull(gmtime_r(&tt, &tm));
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (tm.tm_year + 1900 >= 1000)
			ck_assert_str_eq(buf, want);
	}
}
END_TEST

START_TEST(test_now)
{
	int64_t now = timeutil_now();

	ck_assert(now > 1600000000);
	ck_assert(now - (int64_t)time(NULL) <= 1);
}
END_TEST

START_TEST(test_now_ms_and_mono_ms)
{
	int64_t wall = timeutil_now_ms(), a, b;
	struct timespec nap = { 0, 20 * 1000 * 1000 };

	ck_assert(wall / 1000 - (int64_t)time(NULL) <= 1);
	ck_assert(wall / 1000 - (int64_t)time(NULL) >= -1);
	a = timeutil_mono_ms();
	nanosleep(&nap, NULL);
	b = timeutil_mono_ms();
	ck_assert(b - a >= 20);
	ck_assert(b - a < 2000);
}
END_TEST

static Suite *timeutil_suite(void)
{
	Suite *s = suite_create("timeutil");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_parse_good, 0,
			    sizeof(good) / sizeof(good[0]));
	tcase_add_loop_test(tc, test_parse_bad, 0,
			    sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_parse_not_nul_terminated);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_format_errors);
	tcase_add_test(tc, test_roundtrip_vs_gmtime);
	tcase_add_test(tc, test_now);
	tcase_add_test(tc, test_now_ms_and_mono_ms);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(timeutil_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

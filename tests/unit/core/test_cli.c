/* test_cli.c - DUR parsing and the shared --help / error helpers. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gitgate/core/cli.h"

static const struct {
	const char *text;
	int64_t secs;
} good_durations[] = {
	{ "90s", 90 },
	{ "15m", 900 },
	{ "1h", 3600 },
	{ "7d", 604800 },
	{ "1s", 1 },
	{ "3600s", 3600 },
	/* The documented ceiling is 100 years; exactly that is accepted. */
	{ "36500d", 3153600000LL },
	{ "3153600000s", 3153600000LL },
};

START_TEST(test_duration_good)
{
	int64_t out = -1;

	ck_assert_msg(cli_parse_duration(&out, good_durations[_i].text) == 0,
		      "%s refused", good_durations[_i].text);
	ck_assert_int_eq(out, good_durations[_i].secs);
}
END_TEST

static const char *const bad_durations[] = {
	"", "0s", "0d", "1", "h", "1x", "-1h", "+1h", "1.5h", " 1h", "1h ",
	"1hh", "1H", "1 h", "s1", "0x10s", "999999999999d", "36501d",
	"3153600001s", "99999999999999999999999999s",
};

START_TEST(test_duration_bad)
{
	int64_t out = 42;

	ck_assert_msg(cli_parse_duration(&out, bad_durations[_i]) == -1,
		      "\"%s\" accepted", bad_durations[_i]);
}
END_TEST

START_TEST(test_duration_null)
{
	int64_t out = 42;

	ck_assert_int_eq(cli_parse_duration(&out, NULL), -1);
}
END_TEST

START_TEST(test_wants_help)
{
	char *help[] = { "mint", "--repo", "o/n", "--help", NULL };
	char *short_h[] = { "mint", "-h", NULL };
	char *none[] = { "mint", "--repo", "o/n", NULL };
	/* After "--" everything is an operand (a token could be "-h"). */
	char *after_dd[] = { "inspect", "--", "--help", NULL };
	/* argv[0] is the subcommand name, never an option. */
	char *argv0[] = { "--help", NULL };
	char *lookalike[] = { "mint", "--helpme", "-help", "--h", NULL };

	ck_assert_int_eq(cli_wants_help(4, help), 1);
	ck_assert_int_eq(cli_wants_help(2, short_h), 1);
	ck_assert_int_eq(cli_wants_help(3, none), 0);
	ck_assert_int_eq(cli_wants_help(3, after_dd), 0);
	ck_assert_int_eq(cli_wants_help(1, argv0), 0);
	ck_assert_int_eq(cli_wants_help(4, lookalike), 0);
	ck_assert_int_eq(cli_wants_help(0, argv0), 0);
}
END_TEST

/* Run fn with stderr redirected to a temporary file; returns what it
 * printed (static buffer) and stores fn's return value in *ret. */
static const char *capture_stderr(int (*fn)(void), int *ret)
{
	static char out[1024];
	char path[] = "/tmp/gg-test-cli-XXXXXX";
	int fd = mkstemp(path), saved;
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	ck_assert_int_ge(saved, 0);
	dup2(fd, 2);
	*ret = fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	return out;
}

static int call_fail(void)
{
	return cli_fail("reading config", "no such file");
}

static int call_usage(void)
{
	return cli_usage_error("usage: gitgate mint ...\n", "mint: unknown "
			       "option %s", "--bogus");
}

START_TEST(test_fail_and_usage_output)
{
	const char *text;
	int ret;

	text = capture_stderr(call_fail, &ret);
	ck_assert_int_eq(ret, CLI_FAIL);
	ck_assert_str_eq(text, "gitgate: reading config: no such file\n");

	text = capture_stderr(call_usage, &ret);
	ck_assert_int_eq(ret, CLI_USAGE);
	ck_assert_str_eq(text, "gitgate: mint: unknown option --bogus\n"
			       "usage: gitgate mint ...\n");
}
END_TEST

START_TEST(test_option_name)
{
	static int flag;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "since", required_argument, NULL, 's' },
		{ "verbose", no_argument, &flag, 's' }, /* sets flag: no val */
		{ "ttl", required_argument, NULL, 260 },
		{ NULL, 0, NULL, 0 },
	};

	ck_assert_str_eq(cli_option_name(opts, 's'), "since");
	ck_assert_str_eq(cli_option_name(opts, 'c'), "config");
	ck_assert_str_eq(cli_option_name(opts, 260), "ttl");
	ck_assert_str_eq(cli_option_name(opts, 'x'), "?");
	ck_assert_str_eq(cli_option_name(NULL, 's'), "?");
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_duration_good, 0,
			    sizeof(good_durations) / sizeof(good_durations[0]));
	tcase_add_loop_test(tc, test_duration_bad, 0,
			    sizeof(bad_durations) / sizeof(bad_durations[0]));
	tcase_add_test(tc, test_duration_null);
	tcase_add_test(tc, test_wants_help);
	tcase_add_test(tc, test_fail_and_usage_output);
	tcase_add_test(tc, test_option_name);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

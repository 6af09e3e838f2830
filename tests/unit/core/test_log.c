/* test_log.c - the operational log's two formats: text lines, and one
 * JSON object per line whose msg survives quotes, backslashes, control
 * bytes and errno text. stderr is redirected to a file and read back. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gitgate/core/log.h"

/* Run fn with stderr captured; returns what it wrote (malloc'd). */
static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/gg-test-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	static char buf[8192];
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
	unlink(path);
	return strdup(buf);
}

static void emit_tricky(void)
{
	errno = ENOENT;
	log_warn("open \"%s\"", "a\\b\tc");
	log_info("plain %d", 42);
	log_debug("not shown at info");
}

START_TEST(text_lines)
{
	char *out;

	log_set_format(LOG_FORMAT_TEXT);
	log_set_level(LOG_LEVEL_INFO);
	out = capture(emit_tricky);
	ck_assert_ptr_nonnull(strstr(out, " gitgate[warn]: open \"a\\b?c\": "
					  "No such file or directory\n"));
	ck_assert_ptr_nonnull(strstr(out, " gitgate[info]: plain 42\n"));
	ck_assert_ptr_null(strstr(out, "not shown"));
	free(out);
}
END_TEST

START_TEST(json_lines)
{
	char *out, *second;

	log_set_format(LOG_FORMAT_JSON);
	log_set_level(LOG_LEVEL_INFO);
	out = capture(emit_tricky);
	log_set_format(LOG_FORMAT_TEXT);
	ck_assert_msg(!strncmp(out, "{\"time\":\"", 9), "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "Z\",\"level\":\"warn\",\"msg\":"
					  "\"open \\\"a\\\\b?c\\\": No such "
					  "file or directory\"}\n"));
	second = strchr(out, '\n') + 1;
	ck_assert_ptr_nonnull(strstr(second, "\"level\":\"info\",\"msg\":"
					     "\"plain 42\"}\n"));
	ck_assert_ptr_null(strstr(out, "not shown"));
	free(out);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, text_lines);
	tcase_add_test(tc, json_lines);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

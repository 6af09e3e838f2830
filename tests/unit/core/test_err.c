/* test_err.c - the error convention: first error wins, scrubbed messages. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/err.h"

START_TEST(test_init)
{
	struct gg_err err;

	memset(&err, 'x', sizeof(err));
	gg_err_init(&err);
	ck_assert_int_eq(err.code, GG_OK);
	ck_assert_str_eq(err.msg, "");
	gg_err_init(NULL); /* must not crash */
}
END_TEST

START_TEST(test_set_returns_code)
{
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(
		gg_err_set(&err, GG_EINVAL, "bad length %zu", (size_t)7),
		GG_EINVAL);
	ck_assert_int_eq(err.code, GG_EINVAL);
	ck_assert_str_eq(err.msg, "bad length 7");
}
END_TEST

START_TEST(test_first_error_wins)
{
	struct gg_err err = GG_ERR_INIT;

	gg_err_set(&err, GG_ELIMIT, "first");
	/* The later call keeps the earlier message but returns its own code,
	 * so "return gg_err_set(...)" still propagates the right value. */
	ck_assert_int_eq(gg_err_set(&err, GG_EIO, "second"), GG_EIO);
	ck_assert_int_eq(err.code, GG_ELIMIT);
	ck_assert_str_eq(err.msg, "first");
	errno = ENOENT;
	ck_assert_int_eq(gg_err_errno(&err, GG_EIO, "third"), GG_EIO);
	ck_assert_str_eq(err.msg, "first");
}
END_TEST

START_TEST(test_null_err)
{
	ck_assert_int_eq(gg_err_set(NULL, GG_EDENIED, "x %d", 1), GG_EDENIED);
	errno = EACCES;
	ck_assert_int_eq(gg_err_errno(NULL, GG_EIO, "y"), GG_EIO);
}
END_TEST

START_TEST(test_control_chars_scrubbed)
{
	struct gg_err err = GG_ERR_INIT;

	/* A client-supplied ref name must not be able to forge log lines
	 * or send terminal escapes. */
	gg_err_set(&err, GG_EINVAL, "ref %s", "a\nb\rc\td\x1b[31me\x7f" "f");
	ck_assert_str_eq(err.msg, "ref a?b?c?d?[31me?f");
}
END_TEST

START_TEST(test_errno_appends_strerror)
{
	struct gg_err err = GG_ERR_INIT;
	char want[GG_ERR_MSG_MAX];

	snprintf(want, sizeof(want), "open /x: %s", strerror(ENOENT));
	errno = ENOENT;
	ck_assert_int_eq(gg_err_errno(&err, GG_EIO, "open %s", "/x"), GG_EIO);
	ck_assert_int_eq(err.code, GG_EIO);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

START_TEST(test_long_message_truncated)
{
	struct gg_err err = GG_ERR_INIT;
	char big[GG_ERR_MSG_MAX * 2];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	gg_err_set(&err, GG_EINVAL, "%s", big);
	ck_assert_uint_eq(strlen(err.msg), GG_ERR_MSG_MAX - 1);

	gg_err_init(&err);
	errno = ENOENT;
	gg_err_errno(&err, GG_EIO, "%s", big);
	ck_assert_uint_eq(strlen(err.msg), GG_ERR_MSG_MAX - 1);
	ck_assert_int_eq(err.code, GG_EIO);
}
END_TEST

START_TEST(test_sanitize_plain)
{
	char dst[16];

	gg_err_sanitize(dst, sizeof(dst), "hello", 5);
	ck_assert_str_eq(dst, "hello");
	/* len, not the NUL, bounds the copy */
	gg_err_sanitize(dst, sizeof(dst), "hello", 3);
	ck_assert_str_eq(dst, "hel");
	gg_err_sanitize(dst, sizeof(dst), "", 0);
	ck_assert_str_eq(dst, "");
}
END_TEST

START_TEST(test_sanitize_nonprintable)
{
	const unsigned char in[] = { 0x01, 'a', 0x00, 'b', 0x7f, 0x80, 0xff,
				     ' ', '~', '\n' };
	char dst[32];

	gg_err_sanitize(dst, sizeof(dst), in, sizeof(in));
	ck_assert_str_eq(dst, "?a?b??? ~?");
}
END_TEST

START_TEST(test_sanitize_truncation)
{
	char dst[8];

	memset(dst, 'z', sizeof(dst));
	/* exactly fits: no ellipsis */
	gg_err_sanitize(dst, sizeof(dst), "abcdefg", 7);
	ck_assert_str_eq(dst, "abcdefg");
	/* one byte too many: cut, marked with "..." */
	gg_err_sanitize(dst, sizeof(dst), "abcdefgh", 8);
	ck_assert_str_eq(dst, "abcd...");
	gg_err_sanitize(dst, sizeof(dst), "abc\x01" "efghijklmnop", 16);
	ck_assert_str_eq(dst, "abc?...");
}
END_TEST

START_TEST(test_sanitize_tiny_buffers)
{
	char dst[4] = { 'z', 'z', 'z', 'z' };

	gg_err_sanitize(dst, 0, "abc", 3); /* nothing written */
	ck_assert_int_eq(dst[0], 'z');
	gg_err_sanitize(dst, 1, "abc", 3);
	ck_assert_str_eq(dst, "");
	/* Too small for an ellipsis: still cut and terminated. */
	gg_err_sanitize(dst, 4, "abcdef", 6);
	ck_assert_uint_le(strlen(dst), 3);
}
END_TEST

static Suite *err_suite(void)
{
	Suite *s = suite_create("err");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_init);
	tcase_add_test(tc, test_set_returns_code);
	tcase_add_test(tc, test_first_error_wins);
	tcase_add_test(tc, test_null_err);
	tcase_add_test(tc, test_control_chars_scrubbed);
	tcase_add_test(tc, test_errno_appends_strerror);
	tcase_add_test(tc, test_long_message_truncated);
	tcase_add_test(tc, test_sanitize_plain);
	tcase_add_test(tc, test_sanitize_nonprintable);
	tcase_add_test(tc, test_sanitize_truncation);
	tcase_add_test(tc, test_sanitize_tiny_buffers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(err_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

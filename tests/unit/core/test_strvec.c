/* test_strvec.c - sorting owned strings, dropping duplicates (freed: ASan
 * checks), and looking them up. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/strvec.h"

static char **vec_of(const char *const *s, size_t n)
{
	char **v = calloc(n ? n : 1, sizeof(*v));
	size_t i;

	ck_assert_ptr_nonnull(v);
	for (i = 0; i < n; i++) {
		v[i] = strdup(s[i]);
		ck_assert_ptr_nonnull(v[i]);
	}
	return v;
}

static void vec_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

START_TEST(test_sort_unique_and_contains)
{
	static const char *const in[] = { "b", "a", "c", "a", "b", "b", "" };
	size_t n = 7;
	char **v = vec_of(in, n);

	strvec_sort_unique(v, &n);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(v[0], "");
	ck_assert_str_eq(v[1], "a");
	ck_assert_str_eq(v[2], "b");
	ck_assert_str_eq(v[3], "c");
	ck_assert(strvec_contains(v, n, "a"));
	ck_assert(strvec_contains(v, n, ""));
	ck_assert(strvec_contains(v, n, "c"));
	ck_assert(!strvec_contains(v, n, "ab"));
	ck_assert(!strvec_contains(v, n, "d"));
	vec_free(v, n);
}
END_TEST

START_TEST(test_empty_and_all_equal)
{
	static const char *const same[] = { "x", "x", "x" };
	size_t n = 0;
	char **v = vec_of(NULL, 0);

	strvec_sort_unique(v, &n);
	ck_assert_uint_eq(n, 0);
	ck_assert(!strvec_contains(v, 0, "x"));
	vec_free(v, 0);
	n = 3;
	v = vec_of(same, n);
	strvec_sort_unique(v, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert(strvec_contains(v, n, "x"));
	vec_free(v, n);
}
END_TEST

START_TEST(test_many)
{
	char buf[32], **v = calloc(20000, sizeof(*v));
	size_t i, n = 20000;

	ck_assert_ptr_nonnull(v);
	for (i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "k%zu", (i * 7919) % 10000);
		v[i] = strdup(buf);
	}
	strvec_sort_unique(v, &n);
	ck_assert_uint_eq(n, 10000);
	for (i = 1; i < n; i++)
		ck_assert_int_lt(strcmp(v[i - 1], v[i]), 0);
	ck_assert(strvec_contains(v, n, "k9999"));
	ck_assert(!strvec_contains(v, n, "k10000"));
	vec_free(v, n);
}
END_TEST

static Suite *strvec_suite(void)
{
	Suite *s = suite_create("strvec");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_sort_unique_and_contains);
	tcase_add_test(tc, test_empty_and_all_equal);
	tcase_add_test(tc, test_many);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(strvec_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

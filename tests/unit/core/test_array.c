/* test_array.c - array_grow: room for every element up to the cap, each
 * element kept across moves (ASan checks every write), the cap and size
 * overflow refused with the array left intact. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "gitgate/core/array.h"
#include "gitgate/core/err.h"

START_TEST(test_fills_to_the_cap)
{
	void *p = NULL;
	size_t *a, n;

	for (n = 0; n < 1000; n++) {
		ck_assert_int_eq(array_grow(&p, n, sizeof(*a), 1000), GG_OK);
		a = p;
		a[n] = n * 3; /* out of bounds under ASan if no room */
	}
	a = p;
	for (n = 0; n < 1000; n++)
		ck_assert_uint_eq(a[n], n * 3);
	/* At the cap: refused, and the array is still the caller's. */
	ck_assert_int_eq(array_grow(&p, 1000, sizeof(*a), 1000), GG_ELIMIT);
	ck_assert_ptr_eq(p, a);
	ck_assert_uint_eq(a[999], 999 * 3);
	free(p);
}
END_TEST

START_TEST(test_no_realloc_between_powers_of_two)
{
	void *p = NULL, *before;
	size_t n;

	ck_assert_int_eq(array_grow(&p, 0, 4, 100), GG_OK);
	before = p;
	for (n = 1; n < 8; n++) {
		ck_assert_int_eq(array_grow(&p, n, 4, 100), GG_OK);
		ck_assert_ptr_eq(p, before);
	}
	free(p);
}
END_TEST

START_TEST(test_size_overflow_is_enomem)
{
	void *p = NULL;
	char *a;
	size_t n;

	for (n = 0; n < 9; n++) {
		ck_assert_int_eq(array_grow(&p, n, 1, SIZE_MAX), GG_OK);
		a = p;
		a[n] = 'x';
	}
	a = p;
	/* Growing to 16 elements of SIZE_MAX / 8 bytes overflows size_t. */
	ck_assert_int_eq(array_grow(&p, 8, SIZE_MAX / 8, SIZE_MAX), GG_ENOMEM);
	ck_assert_ptr_eq(p, a);
	ck_assert_int_eq(array_grow(&p, 0, 0, 10), GG_ENOMEM);
	free(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("array");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_fills_to_the_cap);
	tcase_add_test(tc, test_no_realloc_between_powers_of_two);
	tcase_add_test(tc, test_size_overflow_is_enomem);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

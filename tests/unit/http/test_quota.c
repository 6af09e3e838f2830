/* test_quota.c - per-token request counts: the limit holds exactly, keys
 * are independent, and counts balance under concurrent use. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>

#include "gitgate/http/quota.h"

START_TEST(test_limit_is_exact)
{
	struct gg_err err = GG_ERR_INIT;
	struct quota *q = NULL;
	unsigned i;

	ck_assert_int_eq(quota_new(&q, 3, &err), GG_OK);
	ck_assert_uint_eq(quota_limit(q), 3);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(quota_take(q, "jti-a", &err), GG_OK);
	ck_assert_int_eq(quota_take(q, "jti-a", &err), GG_ELIMIT);
	ck_assert_str_eq(err.msg, "too many requests in flight with this "
				  "token (limit 3)");
	ck_assert_uint_eq(quota_held(q, "jti-a"), 3); /* refusal not counted */
	/* another token has its own budget */
	ck_assert_int_eq(quota_take(q, "jti-b", NULL), GG_OK);
	ck_assert_uint_eq(quota_held(q, "jti-b"), 1);
	/* one ends: one more may start */
	quota_give(q, "jti-a");
	ck_assert_uint_eq(quota_held(q, "jti-a"), 2);
	ck_assert_int_eq(quota_take(q, "jti-a", NULL), GG_OK);
	for (i = 0; i < 3; i++)
		quota_give(q, "jti-a");
	quota_give(q, "jti-b");
	ck_assert_uint_eq(quota_held(q, "jti-a"), 0);
	ck_assert_uint_eq(quota_held(q, "jti-b"), 0);
	quota_free(q);
}
END_TEST

START_TEST(test_bad_limit_and_stray_give)
{
	struct gg_err err = GG_ERR_INIT;
	struct quota *q = (struct quota *)1;

	ck_assert_int_eq(quota_new(&q, 0, &err), GG_EINVAL);
	ck_assert_ptr_null(q);
	ck_assert_int_eq(quota_new(&q, 1, &err), GG_OK);
	quota_give(q, "never-taken"); /* ignored, no underflow */
	ck_assert_uint_eq(quota_held(q, "never-taken"), 0);
	ck_assert_int_eq(quota_take(q, "never-taken", NULL), GG_OK);
	ck_assert_int_eq(quota_take(q, "never-taken", NULL), GG_ELIMIT);
	quota_give(q, "never-taken");
	quota_free(q);
	quota_free(NULL);
}
END_TEST

/* More keys than buckets: chains form, and every key keeps its own count;
 * entries left in the table are freed by quota_free (ASan checks). */
START_TEST(test_many_keys)
{
	struct quota *q = NULL;
	char key[32];
	unsigned i;

	ck_assert_int_eq(quota_new(&q, 2, NULL), GG_OK);
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "jti-%u", i);
		ck_assert_int_eq(quota_take(q, key, NULL), GG_OK);
		if (i % 2)
			ck_assert_int_eq(quota_take(q, key, NULL), GG_OK);
	}
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "jti-%u", i);
		ck_assert_uint_eq(quota_held(q, key), i % 2 ? 2 : 1);
		ck_assert_int_eq(quota_take(q, key, NULL),
				 i % 2 ? GG_ELIMIT : GG_OK);
		if (i % 3 == 0) {
			quota_give(q, key);
			quota_give(q, key);
			ck_assert_uint_eq(quota_held(q, key), 0);
		}
	}
	quota_free(q);
}
END_TEST

struct worker {
	struct quota *q;
	const char *key;
	unsigned refused;
};

static void *churn(void *arg)
{
	struct worker *w = arg;
	unsigned i;

	for (i = 0; i < 20000; i++) {
		if (quota_take(w->q, w->key, NULL) == GG_OK)
			quota_give(w->q, w->key);
		else
			w->refused++;
	}
	return NULL;
}

/* Eight threads on two keys with a limit of 4 per key: whatever the
 * interleaving, every take is matched and the counts end at zero. */
START_TEST(test_concurrent_balance)
{
	struct worker w[8];
	pthread_t t[8];
	struct quota *q = NULL;
	unsigned i;

	ck_assert_int_eq(quota_new(&q, 4, NULL), GG_OK);
	for (i = 0; i < 8; i++) {
		w[i].q = q;
		w[i].key = i % 2 ? "odd" : "even";
		w[i].refused = 0;
		ck_assert_int_eq(pthread_create(&t[i], NULL, churn, &w[i]), 0);
	}
	for (i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	ck_assert_uint_eq(quota_held(q, "odd"), 0);
	ck_assert_uint_eq(quota_held(q, "even"), 0);
	quota_free(q);
}
END_TEST

static Suite *quota_suite(void)
{
	Suite *s = suite_create("quota");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_limit_is_exact);
	tcase_add_test(tc, test_bad_limit_and_stray_give);
	tcase_add_test(tc, test_many_keys);
	tcase_add_test(tc, test_concurrent_balance);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(quota_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

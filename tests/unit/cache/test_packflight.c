/* test_packflight.c - shared git upload-pack runs on a real repository,
 * and the clean environment of git children (gitproc). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gitgate/cache/gitproc.h"
#include "gitgate/cache/packflight.h"
static char tmp[1024]; /* the scratch directory (gitfixture.h) */
#include "gitfixture.h"

static char repo[1200], git_path[1024];
static char body[256];
static size_t body_len;

static void setup(void)
{
	char tip[41], *g;

	gitfixture_scratch("packflight");
	run("git init -q --bare src.git && git init -q w && cd w && "
	    "for i in 1 2 3; do echo $i > f$i && git add f$i && "
	    "git commit -qm c$i; done && git push -q ../src.git HEAD:main");
	snprintf(repo, sizeof(repo), "%s/src.git", tmp);
	gitfixture_rev(tip, repo, "main");
	body_len = (size_t)snprintf(body, sizeof(body),
				    "%04xwant %s no-progress\n00000009done\n",
				    4 + 5 + 40 + 13, tip);
	g = gitproc_find_git();
	ck_assert_ptr_nonnull(g);
	snprintf(git_path, sizeof(git_path), "%s", g);
	free(g);
}

static void teardown(void)
{
	gitfixture_remove_scratch();
}

static int released;

static void on_release(void *hold)
{
	(void)hold;
	__atomic_add_fetch(&released, 1, __ATOMIC_SEQ_CST);
}

static void wait_released(int n)
{
	int i;

	for (i = 0; i < 250 && __atomic_load_n(&released, __ATOMIC_SEQ_CST) < n;
	     i++)
		usleep(20000);
	ck_assert_int_eq(released, n);
}

static struct packflight_run run_for(const char *mirror)
{
	return (struct packflight_run){ git_path, mirror, tmp, NULL,
					(const unsigned char *)body, body_len,
					on_release, NULL };
}

/* Read f to its end into out (at most cap bytes); the final state. */
static enum packflight_state read_all(struct packflight *f, char *out,
				      size_t cap, size_t *len)
{
	enum packflight_state st = PACKFLIGHT_WAIT;
	size_t hold = 16;
	ssize_t n;

	*len = 0;
	for (;;) {
		n = packflight_read(f, *len, out + *len, cap - *len, hold,
				    1000, &st);
		if (n > 0) {
			*len += (size_t)n;
			continue;
		}
		if (st == PACKFLIGHT_TAIL) {
			hold = 0; /* the caller's audit line would go here */
			continue;
		}
		if (st != PACKFLIGHT_WAIT)
			return st;
	}
}

START_TEST(identical_requests_share_one_run)
{
	static char a[1 << 16], b[1 << 16];
	unsigned char key[PACKFLIGHT_KEY] = { 1 };
	struct gg_err err = GG_ERR_INIT;
	struct packflight_run r = run_for(repo);
	struct packflight_set *s;
	struct packflight *f1, *f2;
	size_t la, lb;

	released = 0;
	ck_assert_int_eq(packflight_set_new(&s, &err), 0);
	ck_assert_int_eq(packflight_join(s, key, &r, &f1, &err), 0);
	ck_assert_int_eq(packflight_join(s, key, &r, &f2, &err), 0);
	ck_assert_ptr_eq(f1, f2);
	ck_assert_uint_eq(packflight_joined(f1), 2);
	ck_assert_uint_eq(packflight_runs(s), 1);
	ck_assert_int_eq(released, 1); /* the joiner's hold, given back */
	ck_assert_int_eq(read_all(f1, a, sizeof(a), &la), PACKFLIGHT_END);
	ck_assert_int_eq(read_all(f2, b, sizeof(b), &lb), PACKFLIGHT_END);
	ck_assert_uint_eq(la, lb);
	ck_assert_mem_eq(a, b, la);
	ck_assert_mem_eq(a, "0008NAK\n", 8);
	ck_assert_ptr_nonnull(memmem(a, la, "PACK", 4));
	packflight_leave(s, f1);
	packflight_leave(s, f2);
	wait_released(2); /* the run's hold, once its thread is done */
	/* a different key is a run of its own */
	key[0] = 2;
	ck_assert_int_eq(packflight_join(s, key, &r, &f1, &err), 0);
	ck_assert_uint_eq(packflight_runs(s), 2);
	ck_assert_int_eq(read_all(f1, a, sizeof(a), &la), PACKFLIGHT_END);
	packflight_leave(s, f1);
	packflight_set_free(s);
}
END_TEST

START_TEST(failed_run_says_why)
{
	static char a[4096];
	unsigned char key[PACKFLIGHT_KEY] = { 3 };
	struct gg_err err = GG_ERR_INIT;
	struct packflight_run r = run_for("/nonexistent/mirror.git");
	struct packflight_set *s;
	struct packflight *f;
	size_t la;

	ck_assert_int_eq(packflight_set_new(&s, &err), 0);
	ck_assert_int_eq(packflight_join(s, key, &r, &f, &err), 0);
	ck_assert_int_eq(read_all(f, a, sizeof(a), &la), PACKFLIGHT_FAILED);
	ck_assert_msg(strstr(packflight_why(f), "exited with"), "%s",
		      packflight_why(f));
	packflight_leave(s, f);
	/* a failed run is not joined: the next request tries again */
	ck_assert_int_eq(packflight_join(s, key, &r, &f, &err), 0);
	ck_assert_uint_eq(packflight_runs(s), 2);
	ck_assert_int_eq(read_all(f, a, sizeof(a), &la), PACKFLIGHT_FAILED);
	packflight_leave(s, f);
	packflight_set_free(s);
}
END_TEST

START_TEST(leaving_early_ends_the_run)
{
	unsigned char key[PACKFLIGHT_KEY] = { 4 };
	struct gg_err err = GG_ERR_INIT;
	struct packflight_run r = run_for(repo);
	struct packflight_set *s;
	struct packflight *f;

	released = 0;
	ck_assert_int_eq(packflight_set_new(&s, &err), 0);
	ck_assert_int_eq(packflight_join(s, key, &r, &f, &err), 0);
	packflight_leave(s, f); /* nobody reads: killed, freed by its thread */
	wait_released(1);
	packflight_set_free(s);
}
END_TEST

/* No variable of gitgate's reaches git: only the fixed set and
 * GIT_PROTOCOL. */
START_TEST(children_get_a_clean_environment)
{
	char *argv[] = { "/usr/bin/env", NULL };
	struct gg_err err = GG_ERR_INIT;
	struct gitproc p;
	char out[4096];
	size_t len = 0;
	ssize_t n;

	setenv("GITGATE_UPSTREAM_TOKEN", "ghs_secretsecret", 1);
	ck_assert_int_eq(gitproc_spawn(&p, argv, "version=2", &err), 0);
	close(p.in);
	p.in = -1;
	for (;;) {
		n = read(p.out, out + len, sizeof(out) - 1 - len);
		if (n > 0)
			len += (size_t)n;
		else if (n == 0)
			break;
		else
			usleep(10000);
	}
	out[len] = '\0';
	ck_assert_int_eq(gitproc_wait(&p), 0);
	ck_assert_ptr_null(strstr(out, "ghs_secret"));
	ck_assert_ptr_null(strstr(out, "GITGATE"));
	ck_assert_ptr_nonnull(strstr(out, "GIT_PROTOCOL=version=2\n"));
	ck_assert_ptr_nonnull(strstr(out, "GIT_CONFIG_NOSYSTEM=1\n"));
	unsetenv("GITGATE_UPSTREAM_TOKEN");
}
END_TEST

START_TEST(run_reports_stderr)
{
	char *argv[] = { git_path, "-C", "/nonexistent", "status", NULL };
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(gitproc_run(argv, &err), GG_ERR);
	ck_assert_msg(strstr(err.msg, "git: fatal:"), "%s", err.msg);
}
END_TEST

static Suite *packflight_suite(void)
{
	Suite *s = suite_create("packflight");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, identical_requests_share_one_run);
	tcase_add_test(tc, failed_run_says_why);
	tcase_add_test(tc, leaving_early_ends_the_run);
	tcase_add_test(tc, children_get_a_clean_environment);
	tcase_add_test(tc, run_reports_stderr);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as gitgate serve does: packflight.h */
	return gitfixture_main(packflight_suite());
}

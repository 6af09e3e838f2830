/* test_authstate.c - the keys and revocations a running proxy checks
 * tokens against: loading, change detection, and reloads in which one part
 * fails (that part keeps its previous state, the other still reloads). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/token/authstate.h"
#include "gitgate/token/keyfile.h"
#include "gitgate/token/token.h"

#define NOW 1800000000

static char dir[64], keypath[128], revpath[128];
static char *tok_a, *tok_b; /* jti "j-a", "j-b" */

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static char *mint(const struct keyfile_secret *key, const char *jti)
{
	char *repos[] = { "acme/app" };
	struct token_claims in = {
		.sub = "agent", .jti = (char *)jti, .exp = NOW + 3600,
		.repos = repos, .nrepos = 1, .ops = TOKEN_OP_FETCH,
	};
	struct gg_err err = GG_ERR_INIT;
	char *token = NULL;

	ck_assert_msg(token_sign(&token, &in, key->sk, &err) == GG_OK, "%s",
		      err.msg);
	return token;
}

static void setup(void)
{
	struct gg_err err = GG_ERR_INIT;
	struct keyfile_secret *key = NULL;
	char sk[160];

	snprintf(dir, sizeof(dir), "/tmp/gg-authstate-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_msg(keyfile_generate(dir, &err) == GG_OK, "%s", err.msg);
	snprintf(keypath, sizeof(keypath), "%s/verify.pub", dir);
	snprintf(revpath, sizeof(revpath), "%s/revoked.txt", dir);
	snprintf(sk, sizeof(sk), "%s/signing.key", dir);
	ck_assert_msg(keyfile_load_secret(&key, sk, &err) == GG_OK, "%s",
		      err.msg);
	tok_a = mint(key, "j-a");
	tok_b = mint(key, "j-b");
	keyfile_secret_free(key);
}

static void teardown(void)
{
	char cmd[128];

	free(tok_a);
	free(tok_b);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct authstate *state_new(void)
{
	const char *keys[] = { keypath };
	struct gg_err err = GG_ERR_INIT;
	struct authstate *as = NULL;

	ck_assert_msg(authstate_new(&as, keys, 1, revpath, &err) == GG_OK,
		      "%s", err.msg);
	return as;
}

static int verify(struct authstate *as, const char *token)
{
	struct token_claims *c = NULL;
	int rc = authstate_verify(as, &c, token, strlen(token), NOW, NULL);

	token_claims_free(c);
	return rc;
}

START_TEST(test_load_and_verify)
{
	struct authstate *as = state_new(); /* no revocation file yet */
	const char *keys[] = { keypath };
	struct gg_err err = GG_ERR_INIT;

	ck_assert_uint_eq(authstate_nkeys(as), 1);
	ck_assert_uint_eq(authstate_nrevoked(as), 0);
	ck_assert_int_eq(verify(as, tok_a), GG_OK);
	/* nothing changed: no reload */
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 0);
	ck_assert_int_eq(authstate_refresh(as, 1, &err), 1);
	authstate_free(as);
	ck_assert_int_eq(authstate_new(&as, keys, 0, revpath, &err),
			 GG_EINVAL);
	ck_assert_ptr_null(as);
}
END_TEST

START_TEST(test_revocation_applies_despite_broken_key_file)
{
	struct authstate *as = state_new();
	struct gg_err err = GG_ERR_INIT;

	write_text(keypath, "k4.public.this-is-not-a-key\n");
	write_text(revpath, "j-a\n");
	ck_assert_int_lt(authstate_refresh(as, 0, &err), 0);
	ck_assert_msg(!strncmp(err.msg, "verify keys not reloaded (the "
				       "previous stay): ", 45),
		      "%s", err.msg);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	ck_assert_int_eq(verify(as, tok_b), GG_OK); /* previous key kept */
	ck_assert_uint_eq(authstate_nrevoked(as), 1);
	authstate_free(as);
}
END_TEST

START_TEST(test_unreadable_revocations_keep_previous)
{
	struct authstate *as;
	struct gg_err err = GG_ERR_INIT;

	write_text(revpath, "j-a\n");
	as = state_new();
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	/* a directory where the file was: it cannot be read */
	ck_assert_int_eq(unlink(revpath), 0);
	ck_assert_int_eq(mkdir(revpath, 0700), 0);
	ck_assert_int_lt(authstate_refresh(as, 0, &err), 0);
	ck_assert_msg(!strncmp(err.msg, "revocations not reloaded (the "
				       "previous stay): ", 45),
		      "%s", err.msg);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	ck_assert_int_eq(verify(as, tok_b), GG_OK);
	/* both broken */
	write_text(keypath, "garbage\n");
	gg_err_init(&err);
	ck_assert_int_lt(authstate_refresh(as, 0, &err), 0);
	ck_assert_msg(!strncmp(err.msg, "nothing reloaded: ", 18), "%s",
		      err.msg);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	ck_assert_int_eq(verify(as, tok_b), GG_OK);
	authstate_free(as);
}
END_TEST

/* Missing at start-up: nothing revoked yet. Gone while running: the
 * revocations stay (a deleted or moved-aside file must not un-revoke). */
START_TEST(test_revocation_file_removed_while_running)
{
	struct authstate *as;
	struct gg_err err = GG_ERR_INIT;

	write_text(revpath, "j-a\n");
	as = state_new();
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	ck_assert_int_eq(unlink(revpath), 0);
	ck_assert_int_lt(authstate_refresh(as, 0, &err), 0);
	ck_assert_msg(strstr(err.msg, "revocations not reloaded (the previous "
				      "stay): ") && strstr(err.msg, ": missing"),
		      "%s", err.msg);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	ck_assert_uint_eq(authstate_nrevoked(as), 1);
	/* back, with more: reloaded */
	write_text(revpath, "j-a\nj-b\n");
	gg_err_init(&err);
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 1);
	ck_assert_int_eq(verify(as, tok_b), GG_EREVOKED);
	authstate_free(as);
}
END_TEST

START_TEST(test_problem_lines_reported_rest_applied)
{
	struct authstate *as = state_new();
	struct gg_err err = GG_ERR_INIT;
	char first[256];
	FILE *f;

	ck_assert_uint_eq(authstate_revocation_problems(as, first,
							sizeof(first)),
			  0);
	ck_assert_str_eq(first, "");
	f = fopen(revpath, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "j-a # leaked\nnot\x01ok\n%s\n", tok_b);
	fclose(f);
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 1);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	ck_assert_int_eq(verify(as, tok_b), GG_EREVOKED); /* pasted whole */
	ck_assert_uint_eq(authstate_revocation_problems(as, first,
							sizeof(first)),
			  1);
	ck_assert_str_eq(first, "line 2: jti must be printable ASCII without "
				"spaces");
	authstate_free(as);
}
END_TEST

/* An edit that breaks the line revoking a token must not un-revoke it:
 * while the file has problems, the previous list stays as well. */
START_TEST(test_problem_file_keeps_previous_list)
{
	struct authstate *as;
	struct gg_err err = GG_ERR_INIT;
	char first[256];

	write_text(revpath, "j-a\nj-b\n");
	as = state_new();
	ck_assert_int_eq(verify(as, tok_b), GG_EREVOKED);
	/* j-b's line broken (a non-printable byte typed into it) */
	write_text(revpath, "j-a\nj\x01b\nj-c\n");
	ck_assert_int_eq(authstate_refresh(as, 1, &err), 1);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	ck_assert_int_eq(verify(as, tok_b), GG_EREVOKED);
	ck_assert_uint_eq(authstate_nrevoked(as), 3);
	ck_assert_uint_eq(authstate_revocation_problems(as, first,
							sizeof(first)),
			  1);
	ck_assert_str_eq(first, "line 2: jti must be printable ASCII without "
				"spaces; until the file has none, 1 earlier "
				"revocation(s) it no longer lists stay");
	/* a second edit with problems: still everything ever listed */
	write_text(revpath, "j-c x\x01\n");
	ck_assert_int_eq(authstate_refresh(as, 1, &err), 1);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	ck_assert_int_eq(verify(as, tok_b), GG_EREVOKED);
	ck_assert_uint_eq(authstate_nrevoked(as), 3);
	ck_assert_uint_eq(authstate_revocation_problems(as, first,
							sizeof(first)),
			  1);
	ck_assert_str_eq(first, "line 1: several fields: each is revoked (a "
				"comment starts with '#'); until the file has "
				"none, 2 earlier revocation(s) it no longer "
				"lists stay");
	/* a clean file is taken as it is once it has settled (1 s): a
	 * deliberate un-revoke works */
	write_text(revpath, "j-c\n");
	ck_assert_int_eq(authstate_refresh(as, 1, &err), 1);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	usleep(1100 * 1000);
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 1);
	ck_assert_int_eq(verify(as, tok_a), GG_OK);
	ck_assert_int_eq(verify(as, tok_b), GG_OK);
	ck_assert_uint_eq(authstate_nrevoked(as), 1);
	ck_assert_uint_eq(authstate_revocation_problems(as, first,
							sizeof(first)),
			  0);
	ck_assert_str_eq(first, "");
	authstate_free(as);
}
END_TEST

/* An editor that saves in place truncates the file, then writes it: a
 * poll in between sees an empty (or half-written) file, which must not
 * un-revoke anything, even for one poll. Only a file that stays without
 * an entry for AUTHSTATE_SETTLE_MS (1 s) un-revokes it. */
START_TEST(test_in_place_save_never_unrevokes)
{
	struct authstate *as;
	struct gg_err err = GG_ERR_INIT;

	write_text(revpath, "j-a\nj-b\n");
	as = state_new();
	write_text(revpath, ""); /* truncated: the poll lands here */
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 1);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	ck_assert_int_eq(verify(as, tok_b), GG_EREVOKED);
	usleep(300 * 1000);
	/* nothing changed, not settled yet: no reload */
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 0);
	write_text(revpath, "j-a\nj-b\nj-c\n"); /* the write lands */
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 1);
	ck_assert_uint_eq(authstate_nrevoked(as), 3);
	usleep(1100 * 1000);
	/* the file grew: nothing was pending, nothing reloads */
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 0);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	/* a real un-revoke: j-a removed, and the file stays so */
	write_text(revpath, "j-b\nj-c\n");
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 1);
	ck_assert_int_eq(verify(as, tok_a), GG_EREVOKED);
	usleep(1100 * 1000);
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 1);
	ck_assert_int_eq(verify(as, tok_a), GG_OK);
	ck_assert_int_eq(verify(as, tok_b), GG_EREVOKED);
	ck_assert_uint_eq(authstate_nrevoked(as), 2);
	ck_assert_int_eq(authstate_refresh(as, 0, &err), 0);
	authstate_free(as);
}
END_TEST

static Suite *authstate_suite(void)
{
	Suite *s = suite_create("authstate");
	TCase *tc = tcase_create("reload");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_load_and_verify);
	tcase_add_test(tc, test_revocation_applies_despite_broken_key_file);
	tcase_add_test(tc, test_unreadable_revocations_keep_previous);
	tcase_add_test(tc, test_problem_lines_reported_rest_applied);
	tcase_add_test(tc, test_revocation_file_removed_while_running);
	tcase_add_test(tc, test_problem_file_keeps_previous_list);
	tcase_add_test(tc, test_in_place_save_never_unrevokes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(authstate_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

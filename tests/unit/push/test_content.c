/*
 * test_content.c - the content rules over real repositories made with the
 * git CLI: every rule, merges (plain and evil), history already known,
 * secrets added and removed, binaries, the per-commit memo and the bounds.
 */
#include "gitgate/push/content.h"
#include "gitgate/core/limits.h"

#include <check.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmp[1024];
#include "gitfixture.h"

/* A fake classic PAT: ghp_ and 36 base62 characters. */
#define PAT "ghp_" "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"

static const char *policy_text =
	"{\"protected_paths\": [\".github/workflows/**\", \"CODEOWNERS\"],\n"
	" \"forbidden_paths\": [\"**/id_rsa\"],\n"
	" \"max_file_size\": \"1K\",\n"
	" \"commit_emails\": [\"*@example.com\"],\n"
	" \"secrets\": true,\n"
	" \"secret_rules\": [{\"id\": \"acme-key\", \"regex\": "
	"\"acme_[0-9a-f]{32}\"}]}\n";

static struct sitepolicy *pol;
static struct sitepolicy_rules *rules;
static struct secretscan_db *db;
static git_repository *repo;
static struct content_rules cr;
static struct content_findings found;

static void setup(void)
{
	struct secretscan_opts so = { .builtins = true };
	struct secretscan_rule custom = { "acme-key", "acme_[0-9a-f]{32}" };
	struct gg_err err = GG_ERR_INIT;
	char path[1100];

	gitfixture_scratch("content");
	ck_assert_int_eq(sitepolicy_parse(&pol, "policy.json", policy_text,
					  strlen(policy_text), NULL, &err),
			 0);
	ck_assert_int_eq(sitepolicy_for_repo(&rules, pol, "acme/app", &err), 0);
	so.rules = &custom;
	so.nrules = 1;
	ck_assert_int_eq(secretscan_db_new(&db, &so, &err), 0);
	memset(&cr, 0, sizeof(cr));
	cr.policy = rules;
	cr.db = db;
	run("git init -q -b main r && cd r && mkdir -p .github/workflows && "
	    "echo 'on: push' > .github/workflows/ci.yml && echo hi > README && "
	    "git add -A && git commit -q -m base");
	snprintf(path, sizeof(path), "%s/r/.git", tmp);
	ck_assert_int_eq(git_repository_open(&repo, path), 0);
	memset(&found, 0, sizeof(found));
}

static void teardown(void)
{
	content_findings_release(&found);
	git_repository_free(repo);
	sitepolicy_rules_free(rules);
	sitepolicy_free(pol);
	secretscan_db_free(db);
	gitfixture_remove_scratch();
}

/* Check branch "topic" (not hidden) against main; returns the code. */
static int check_topic(struct gg_err *err)
{
	struct content_check *cc;
	char tip[41];
	int ret;

	content_findings_release(&found);
	gitfixture_rev(tip, "r/.git", "refs/heads/topic");
	ck_assert_int_eq(content_check_new(&cc, repo, &cr, err), 0);
	ret = content_check_ref(cc, NULL, tip, "refs/heads/topic", &found,
				err);
	content_check_free(cc);
	return ret;
}

static void expect_none(void)
{
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(check_topic(&err), 0);
	ck_assert_msg(found.n == 0, "unexpected finding: %s",
		      found.n ? found.v[0].reason : "");
}

/* fmt with "%.7s" replaced by the commit's abbreviation. */
static void expand(char *out, size_t size, const char *fmt, const char *tip)
{
	const char *at = strstr(fmt, "%.7s");

	ck_assert_ptr_nonnull(at);
	ck_assert_int_lt(snprintf(out, size, "%.*s%.7s%s", (int)(at - fmt), fmt,
				  tip, at + 4),
			 (int)size);
}

/* Exactly one finding, with this rule and reason ("%s" for the commit's
 * abbreviation, of topic's tip). */
static void expect_one(const char *rule, const char *path, const char *fmt)
{
	struct gg_err err = GG_ERR_INIT;
	char tip[41], want[512];

	ck_assert_int_eq(check_topic(&err), 0);
	gitfixture_rev(tip, "r/.git", "refs/heads/topic");
	expand(want, sizeof(want), fmt, tip);
	ck_assert_uint_eq(found.n, 1);
	ck_assert_str_eq(found.v[0].rule, rule);
	ck_assert_str_eq(found.v[0].reason, want);
	if (path)
		ck_assert_str_eq(found.v[0].path, path);
	else
		ck_assert_ptr_null(found.v[0].path);
	ck_assert_str_eq(found.v[0].commit, tip);
}

#define ON_TOPIC "cd r && git checkout -q -b topic && "

START_TEST(test_clean_push)
{
	run(ON_TOPIC "echo more >> README && git commit -qam ok");
	expect_none();
}
END_TEST

START_TEST(test_protected_path)
{
	run(ON_TOPIC "echo x >> .github/workflows/ci.yml && git commit -qam w");
	expect_one("protected_path", ".github/workflows/ci.yml",
		   ".github/workflows/ci.yml is protected by site policy "
		   "(commit %.7s)");
}
END_TEST

START_TEST(test_protected_delete_and_rename)
{
	run(ON_TOPIC "git mv .github/workflows/ci.yml moved.yml && "
		     "git commit -qm mv");
	expect_one("protected_path", ".github/workflows/ci.yml",
		   ".github/workflows/ci.yml is protected by site policy "
		   "(commit %.7s)");
}
END_TEST

START_TEST(test_allow_paths_unlocks_protected_only)
{
	const char *allow[] = { ".github/**", "**/id_rsa" };

	cr.allow_paths = allow;
	cr.nallow_paths = 2;
	run(ON_TOPIC "echo x >> .github/workflows/ci.yml && mkdir k && "
		     "echo key > k/id_rsa && git add -A && git commit -qm w");
	expect_one("forbidden_path", "k/id_rsa",
		   "k/id_rsa is forbidden by site policy (commit %.7s)");
}
END_TEST

START_TEST(test_forbidden_delete_allowed)
{
	/* The forbidden file is on main already (history known). */
	run("cd r && echo key > id_rsa && git add id_rsa && git commit -qm k");
	run(ON_TOPIC "git rm -q id_rsa && git commit -qm clean");
	expect_none();
}
END_TEST

START_TEST(test_max_file_size)
{
	run(ON_TOPIC "head -c 2048 /dev/zero > big.bin && git add big.bin && "
		     "git commit -qm big");
	expect_one("max_file_size", "big.bin",
		   "big.bin is 2.0 KiB, over the site limit of 1.0 KiB "
		   "(commit %.7s)");
}
END_TEST

START_TEST(test_commit_email)
{
	run(ON_TOPIC "echo x >> README && git -c user.email=x@evil.test "
		     "commit -q --author='X <x@evil.test>' -am evil");
	expect_one("commit_email", NULL,
		   "commit %.7s author x@evil.test not allowed: allowed "
		   "*@example.com");
}
END_TEST

START_TEST(test_committer_email)
{
	run(ON_TOPIC "echo x >> README && GIT_COMMITTER_EMAIL=c@evil.test "
		     "git commit -qam c");
	expect_one("commit_email", NULL,
		   "commit %.7s committer c@evil.test not allowed: allowed "
		   "*@example.com");
}
END_TEST

START_TEST(test_token_emails_narrow)
{
	const char *mine[] = { "agent@example.com" };

	cr.emails = mine;
	cr.nemails = 1;
	/* test@example.com matches the policy but not the token's claim. */
	run(ON_TOPIC "echo x >> README && git commit -qam t");
	expect_one("commit_email", NULL,
		   "commit %.7s author test@example.com not allowed: allowed "
		   "agent@example.com");
}
END_TEST

START_TEST(test_token_emails_without_policy)
{
	const char *mine[] = { "TEST@example.com" };

	cr.policy = NULL;
	cr.emails = mine;
	cr.nemails = 1;
	ck_assert(content_rules_active(&cr));
	run(ON_TOPIC "echo x >> README && git commit -qam t");
	expect_none(); /* addresses compare regardless of case */
}
END_TEST

START_TEST(test_secret_added)
{
	run(ON_TOPIC "printf 'a\\nb\\ntoken = \"%s\"\\n' > conf.py && "
		     "git add conf.py && git commit -qm s", PAT);
	expect_one("secret:github-pat", "conf.py",
		   "secret detected (github-pat) in conf.py:3 (commit %.7s)");
	ck_assert_uint_eq(found.v[0].line, 3);
	ck_assert_uint_eq(strlen(found.v[0].hash), SECRETSCAN_HASH_HEX);
	ck_assert_ptr_null(strstr(found.v[0].reason, PAT));
}
END_TEST

START_TEST(test_secret_added_then_removed)
{
	struct gg_err err = GG_ERR_INIT;
	char first[41];

	run(ON_TOPIC "echo 'k = \"%s\"' >> README && git commit -qam leak && "
		     "git revert --no-edit HEAD >/dev/null", PAT);
	gitfixture_rev(first, "r/.git", "refs/heads/topic~1");
	ck_assert_int_eq(check_topic(&err), 0);
	ck_assert_uint_eq(found.n, 1);
	ck_assert_str_eq(found.v[0].commit, first);
	ck_assert_str_eq(found.v[0].rule, "secret:github-pat");
}
END_TEST

START_TEST(test_secret_custom_rule_and_line)
{
	run(ON_TOPIC "printf 'one\\ntwo\\n' > notes.txt && git add -A && "
		     "git commit -qm a && printf 'one\\nk acme_0123456789abcdef"
		     "0123456789abcdef\\ntwo\\n' > notes.txt && "
		     "git commit -qam b");
	expect_one("secret:acme-key", "notes.txt",
		   "secret detected (acme-key) in notes.txt:2 (commit %.7s)");
}
END_TEST

START_TEST(test_secret_in_parent_not_reported)
{
	/* On main already; the topic moves the line and edits the file. */
	run("cd r && printf 'x\\nk = \"%s\"\\n' > old.py && git add old.py && "
	    "git commit -qm known", PAT);
	run(ON_TOPIC "printf 'k = \"%s\"\\nx\\ny\\n' > old.py && "
		     "git commit -qam moved", PAT);
	expect_none();
}
END_TEST

START_TEST(test_secret_rules_off)
{
	rules->secrets = false;
	rules->nsecret_rules = 0;
	run(ON_TOPIC "echo '%s' > t && git add t && git commit -qm s", PAT);
	expect_none();
}
END_TEST

START_TEST(test_binary_not_scanned)
{
	run(ON_TOPIC "printf '\\000%s' > blob.dat && git add blob.dat && "
		     "git commit -qm bin", PAT);
	expect_none();
}
END_TEST

START_TEST(test_big_text_not_scannable)
{
	rules->max_file_size = 0;
	run(ON_TOPIC "yes line | head -c %d > huge.txt && git add huge.txt && "
		     "git commit -qm huge",
	    GG_MAX_SCAN_BLOB + 1);
	expect_one("content_check", "huge.txt",
		   "gitgate could not check content: huge.txt is 32.0 MiB, "
		   "over the secret scan's limit of 32.0 MiB (commit %.7s)");
}
END_TEST

START_TEST(test_plain_merge_of_main)
{
	/* main gets a workflow change (known upstream); topic merges it. */
	run(ON_TOPIC "echo t > t.txt && git add t.txt && git commit -qm t && "
		     "git checkout -q main && echo y >> .github/workflows/ci.yml "
		     "&& git commit -qam wf && git checkout -q topic && "
		     "git merge -q --no-edit main");
	expect_none();
}
END_TEST

START_TEST(test_evil_merge)
{
	run(ON_TOPIC "echo t > t.txt && git add t.txt && git commit -qm t && "
		     "git checkout -q main && echo y > m.txt && git add m.txt && "
		     "git commit -qm m && git checkout -q topic && "
		     "git merge -q --no-commit main && "
		     "echo evil >> .github/workflows/ci.yml && "
		     "git add -A && git commit -qm merge");
	expect_one("protected_path", ".github/workflows/ci.yml",
		   ".github/workflows/ci.yml is protected by site policy "
		   "(commit %.7s)");
}
END_TEST

START_TEST(test_root_commit_changes_all)
{
	run("cd r && git checkout -q --orphan topic && "
	    "git commit -qm root");
	expect_one("protected_path", ".github/workflows/ci.yml",
		   ".github/workflows/ci.yml is protected by site policy "
		   "(commit %.7s)");
}
END_TEST

START_TEST(test_known_history_hidden)
{
	struct content_check *cc;
	struct gg_err err = GG_ERR_INIT;
	char tip[41];

	/* Every ref hides its history: main's base commit has a workflow
	 * file, but it is upstream's already. */
	gitfixture_rev(tip, "r/.git", "refs/heads/main");
	ck_assert_int_eq(content_check_new(&cc, repo, &cr, &err), 0);
	ck_assert_int_eq(content_check_ref(cc, NULL, tip, NULL, &found, &err),
			 0);
	ck_assert_uint_eq(found.n, 0);
	content_check_free(cc);
}
END_TEST

START_TEST(test_memo_shared_commits)
{
	struct content_check *cc;
	struct gg_err err = GG_ERR_INIT;
	char tip[41];
	struct content_findings again = { 0 };

	run(ON_TOPIC "echo x >> .github/workflows/ci.yml && git commit -qam w");
	gitfixture_rev(tip, "r/.git", "refs/heads/topic");
	ck_assert_int_eq(content_check_new(&cc, repo, &cr, &err), 0);
	ck_assert_int_eq(content_check_ref(cc, NULL, tip, "refs/heads/topic",
					   &found, &err),
			 0);
	ck_assert_int_eq(content_check_ref(cc, NULL, tip, "refs/heads/topic",
					   &again, &err),
			 0);
	ck_assert_uint_eq(found.n, 1);
	ck_assert_uint_eq(again.n, 1);
	ck_assert_str_eq(again.v[0].reason, found.v[0].reason);
	content_findings_release(&again);
	content_check_free(cc);
}
END_TEST

START_TEST(test_old_value_hidden)
{
	struct content_check *cc;
	struct gg_err err = GG_ERR_INIT;
	char tip[41], old[41];

	run(ON_TOPIC "echo x >> .github/workflows/ci.yml && git commit -qam w "
		     "&& echo y >> README && git commit -qam r");
	gitfixture_rev(tip, "r/.git", "refs/heads/topic");
	gitfixture_rev(old, "r/.git", "refs/heads/topic~1");
	ck_assert_int_eq(content_check_new(&cc, repo, &cr, &err), 0);
	ck_assert_int_eq(content_check_ref(cc, old, tip, "refs/heads/topic",
					   &found, &err),
			 0);
	ck_assert_uint_eq(found.n, 0);
	content_check_free(cc);
}
END_TEST

START_TEST(test_path_too_deep)
{
	struct gg_err err = GG_ERR_INIT;
	char dir[2 * (GG_MAX_CONTENT_DEPTH + 2) + 1];
	size_t i;

	for (i = 0; i < GG_MAX_CONTENT_DEPTH + 1; i++)
		memcpy(dir + 2 * i, "d/", 2);
	dir[2 * i - 1] = '\0';
	run(ON_TOPIC "mkdir -p %s && echo x > %s/f && git add -A && "
		     "git commit -qm deep", dir, dir);
	ck_assert_int_eq(check_topic(&err), GG_ELIMIT);
	ck_assert_str_eq(err.msg, "a path more than 128 directories deep");
}
END_TEST

START_TEST(test_not_a_commit)
{
	struct content_check *cc;
	struct gg_err err = GG_ERR_INIT;
	char blob[64];

	capture(blob, sizeof(blob), "cd r && git rev-parse HEAD:README");
	ck_assert_int_eq(content_check_new(&cc, repo, &cr, &err), 0);
	ck_assert_int_eq(content_check_ref(cc, NULL, blob, NULL, &found, &err),
			 GG_ERR);
	ck_assert_str_eq(err.msg,
			 "the pushed object is not a commit nor a tag of one");
	ck_assert_int_eq(content_check_ref(cc, NULL, "nothex", NULL, &found,
					   &err),
			 GG_EINVAL);
	content_check_free(cc);
}
END_TEST

START_TEST(test_missing_object)
{
	struct content_check *cc;
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(content_check_new(&cc, repo, &cr, &err), 0);
	ck_assert_int_eq(content_check_ref(cc, NULL,
					   "1234567890123456789012345678901234567890",
					   NULL, &found, &err),
			 GG_ENOTFOUND);
	content_check_free(cc);
}
END_TEST

START_TEST(test_rules_inactive)
{
	struct content_rules none = { 0 };
	struct sitepolicy_rules empty = { 0 };

	ck_assert(!content_rules_active(&none));
	none.policy = &empty;
	ck_assert(!content_rules_active(&none));
	empty.secrets = true; /* but no database */
	ck_assert(!content_rules_active(&none));
	ck_assert(content_rules_active(&cr));
}
END_TEST

static Suite *content_suite(void)
{
	Suite *s = suite_create("content");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_clean_push);
	tcase_add_test(tc, test_protected_path);
	tcase_add_test(tc, test_protected_delete_and_rename);
	tcase_add_test(tc, test_allow_paths_unlocks_protected_only);
	tcase_add_test(tc, test_forbidden_delete_allowed);
	tcase_add_test(tc, test_max_file_size);
	tcase_add_test(tc, test_commit_email);
	tcase_add_test(tc, test_committer_email);
	tcase_add_test(tc, test_token_emails_narrow);
	tcase_add_test(tc, test_token_emails_without_policy);
	tcase_add_test(tc, test_secret_added);
	tcase_add_test(tc, test_secret_added_then_removed);
	tcase_add_test(tc, test_secret_custom_rule_and_line);
	tcase_add_test(tc, test_secret_in_parent_not_reported);
	tcase_add_test(tc, test_secret_rules_off);
	tcase_add_test(tc, test_binary_not_scanned);
	tcase_add_test(tc, test_big_text_not_scannable);
	tcase_add_test(tc, test_plain_merge_of_main);
	tcase_add_test(tc, test_evil_merge);
	tcase_add_test(tc, test_root_commit_changes_all);
	tcase_add_test(tc, test_known_history_hidden);
	tcase_add_test(tc, test_memo_shared_commits);
	tcase_add_test(tc, test_old_value_hidden);
	tcase_add_test(tc, test_path_too_deep);
	tcase_add_test(tc, test_not_a_commit);
	tcase_add_test(tc, test_missing_object);
	tcase_add_test(tc, test_rules_inactive);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	git_libgit2_init();
	return gitfixture_main(content_suite());
}

/* test_policy.c - ref patterns and push decisions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gitgate/core/limits.h"
#include "gitgate/push/policy.h"

struct match_row {
	const char *pattern;
	const char *ref;
	bool match;
};

static const struct match_row match_rows[] = {
	/* exact names, case */
	{"main", "refs/heads/main", true},
	{"main", "refs/heads/main2", false},
	{"main", "refs/heads/mai", false},
	{"main", "refs/heads/Main", false},
	{"Main", "refs/heads/main", false},
	{"MAIN", "refs/heads/MAIN", true},
	{"heads/main", "refs/heads/main", false},
	{"heads/main", "refs/heads/heads/main", true},
	/* branch patterns never reach outside refs/heads/ */
	{"main", "refs/tags/main", false},
	{"main", "refs/remotes/origin/main", false},
	{"main", "refs/notes/main", false},
	/* '*' within one segment */
	{"*", "refs/heads/main", true},
	{"*", "refs/heads/a/b", false},
	{"*", "refs/tags/v1", false},
	{"agent/*", "refs/heads/agent/x", true},
	{"agent/*", "refs/heads/agent/x/y", false},
	{"agent/*", "refs/heads/agent", false},
	{"agent/*", "refs/heads/agentx/y", false},
	{"a/*/b", "refs/heads/a/x/b", true},
	{"a/*/b", "refs/heads/a/b", false},
	{"feat-*", "refs/heads/feat-1", true},
	{"feat-*", "refs/heads/feat-", true},
	{"feat-*", "refs/heads/feat", false},
	{"*-wip", "refs/heads/x-wip", true},
	{"*-wip", "refs/heads/x-wip2", false},
	{"a*b*c", "refs/heads/abc", true},
	{"a*b*c", "refs/heads/a-b-c-c", true},
	{"a*b*c", "refs/heads/a-b-c-d", false},
	/* '**' at the start, middle and end */
	{"**", "refs/heads/a", true},
	{"**", "refs/heads/a/b/c", true},
	{"**", "refs/tags/a", false},
	{"**/fix", "refs/heads/fix", true},
	{"**/fix", "refs/heads/a/b/fix", true},
	{"**/fix", "refs/heads/a/fix/b", false},
	{"a/**/b", "refs/heads/a/b", true},
	{"a/**/b", "refs/heads/a/x/y/b", true},
	{"a/**/b", "refs/heads/a/x/y/c", false},
	{"a/**/b", "refs/heads/a", false},
	{"a/**/**/b", "refs/heads/a/b", true},
	{"**/**", "refs/heads/a", true},
	{"agent/**", "refs/heads/agent/x", true},
	{"agent/**", "refs/heads/agent/x/y/z", true},
	{"agent/**", "refs/heads/agent", false}, /* gitignore rule */
	{"agent/**", "refs/heads/agent2/x", false},
	{"**/x/**", "refs/heads/x", false},
	{"**/x/**", "refs/heads/a/x/b", true},
	/* full ref patterns; tags only via refs/tags/ */
	{"refs/heads/main", "refs/heads/main", true},
	{"refs/heads/*", "refs/heads/x", true},
	{"refs/heads/**", "refs/heads/a", true},
	{"refs/heads/**", "refs/heads", false},
	{"refs/tags/*", "refs/tags/v1", true},
	{"refs/tags/*", "refs/tags/rel/v1", false},
	{"refs/tags/*", "refs/heads/main", false},
	{"refs/tags/v*", "refs/tags/v1.2", true},
	{"refs/tags/v*", "refs/tags/x1", false},
	{"refs/tags/v*", "refs/tags/V1", false},
	{"refs/tags/**", "refs/tags/a/b", true},
	{"refs/**", "refs/heads/x", true},
	{"refs/**", "refs/tags/x", false},
	{"refs/*/x", "refs/tags/x", false},
	{"refs/*/x", "refs/notes/x", true},
	/* invalid patterns and names match nothing */
	{"agent/", "refs/heads/agent/x", false},
	{"/agent", "refs/heads/agent", false},
	{"a//b", "refs/heads/a/b", false},
	{"a/../b", "refs/heads/b", false},
	{"", "refs/heads/x", false},
	{"a**", "refs/heads/abc", false},
	{"*", "refs/heads/", false},
	{"*/*", "refs/heads/a//b", false},
	{"**", "refs/heads//a", false},
};

START_TEST(match_table)
{
	const struct match_row *r = &match_rows[_i];

	ck_assert_msg(policy_match(r->pattern, r->ref) == r->match,
		      "policy_match(\"%s\", \"%s\") should be %s", r->pattern,
		      r->ref, r->match ? "true" : "false");
}
END_TEST

struct check_row {
	const char *pattern;
	const char *why; /* NULL = valid */
};

static const struct check_row check_rows[] = {
	{"main", NULL},
	{"agent/*", NULL},
	{"agent/**", NULL},
	{"**/x", NULL},
	{"a*b", NULL},
	{"refs/tags/v*", NULL},
	{"caf\xc3\xa9", NULL},
	{"", "is empty"},
	{"agent/", "ends with '/'"},
	{"/agent", "starts with '/'"},
	{"a//b", "has an empty segment"},
	{"a/../b", "contains \"..\""},
	{"a..b", "contains \"..\""},
	{"a b", "contains a space"},
	{"a\tb", "contains a control character"},
	{"a~b", "contains one of ~^:?[\\"},
	{"a^b", "contains one of ~^:?[\\"},
	{"a:b", "contains one of ~^:?[\\"},
	{"a?b", "contains one of ~^:?[\\"},
	{"a[b", "contains one of ~^:?[\\"},
	{"a\\b", "contains one of ~^:?[\\"},
	{"a@{1}", "contains \"@{\""},
	{"a.", "ends with '.'"},
	{".x", "has a segment starting with '.'"},
	{"x/.y", "has a segment starting with '.'"},
	{"x.lock", "has a segment ending with \".lock\""},
	{"a**", "uses \"**\" inside a segment (it must be a whole segment)"},
	{"***", "uses \"**\" inside a segment (it must be a whole segment)"},
};

START_TEST(pattern_check_table)
{
	const struct check_row *r = &check_rows[_i];
	struct gg_err err = GG_ERR_INIT;
	char expect[256], shown[80];
	int rc = policy_pattern_check(r->pattern, &err);

	if (!r->why) {
		ck_assert_msg(rc == 0, "%s: %s", r->pattern, err.msg);
		return;
	}
	gg_err_sanitize(shown, sizeof(shown), r->pattern, strlen(r->pattern));
	snprintf(expect, sizeof(expect), "invalid ref pattern \"%s\": %s",
		 shown, r->why);
	ck_assert_int_eq(rc, GG_EINVAL);
	ck_assert_str_eq(err.msg, expect);
}
END_TEST

START_TEST(pattern_check_length)
{
	struct gg_err err = GG_ERR_INIT;
	char p[GG_MAX_PATTERN_LEN + 2];

	memset(p, 'a', sizeof(p));
	p[GG_MAX_PATTERN_LEN] = '\0';
	ck_assert_int_eq(policy_pattern_check(p, &err), 0);
	p[GG_MAX_PATTERN_LEN] = 'a';
	p[GG_MAX_PATTERN_LEN + 1] = '\0';
	ck_assert_int_eq(policy_pattern_check(p, &err), GG_ELIMIT);
	ck_assert(strstr(err.msg, "is too long") != NULL);
	ck_assert(!policy_match(p, "refs/heads/a"));
}
END_TEST

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "*a*a*a...*b" against "aaaa...": exponential for naive backtracking. */
START_TEST(pathological_star_is_fast)
{
	char pat[GG_MAX_PATTERN_LEN + 1], ref[GG_MAX_REFNAME + 1];
	size_t i, n = 0;
	double t0;
	int k;

	for (i = 0; n + 3 < GG_MAX_PATTERN_LEN; i++) {
		pat[n++] = '*';
		pat[n++] = 'a';
	}
	pat[n++] = 'b';
	pat[n] = '\0';
	memcpy(ref, "refs/heads/", 11);
	memset(ref + 11, 'a', GG_MAX_REFNAME - 11);
	ref[GG_MAX_REFNAME] = '\0';
	t0 = now();
	for (k = 0; k < 20; k++)
		ck_assert(!policy_match(pat, ref));
	ref[GG_MAX_REFNAME - 1] = 'b';
	ck_assert(policy_match(pat, ref));
	ck_assert_msg(now() - t0 < 2.0, "took %.2fs", now() - t0);
}
END_TEST

/* Many "**" segments against a deep name: bounded at segment level too. */
START_TEST(pathological_globstar_is_fast)
{
	char pat[GG_MAX_PATTERN_LEN + 1], ref[GG_MAX_REFNAME + 1];
	size_t n = 0;
	double t0;
	int k;

	while (n + 6 < GG_MAX_PATTERN_LEN) {
		memcpy(pat + n, "**/a/", 5);
		n += 5;
	}
	memcpy(pat + n, "b", 2);
	memcpy(ref, "refs/heads/", 11);
	for (n = 11; n + 2 < GG_MAX_REFNAME; n += 2)
		memcpy(ref + n, "a/", 2);
	memcpy(ref + n, "c", 2);
	t0 = now();
	for (k = 0; k < 20; k++)
		ck_assert(!policy_match(pat, ref));
	ck_assert_msg(now() - t0 < 2.0, "took %.2fs", now() - t0);
}
END_TEST

START_TEST(action_names)
{
	ck_assert_str_eq(policy_action_name(POLICY_CREATE), "create");
	ck_assert_str_eq(policy_action_name(POLICY_UPDATE), "update");
	ck_assert_str_eq(policy_action_name(POLICY_FORCE), "force");
	ck_assert_str_eq(policy_action_name(POLICY_DELETE), "delete");
}
END_TEST

static const char *const agent_pats[] = {"agent/*", "fix-*"};

static int decide(const char *const *pats, size_t n, bool push, bool force,
		  bool del, const char *ref, enum policy_action a,
		  struct gg_err *err)
{
	struct policy_rules r = {pats, n, push, force, del};

	gg_err_init(err);
	return policy_decide(&r, ref, a, err);
}

START_TEST(decide_reasons)
{
	struct gg_err err;

	ck_assert_int_eq(decide(agent_pats, 2, false, true, true,
				"refs/heads/agent/x", POLICY_CREATE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "push not allowed by token");
	ck_assert_int_eq(decide(agent_pats, 1, true, false, false,
				"refs/heads/main", POLICY_UPDATE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "branch not allowed by token: allowed "
				  "agent/*");
	ck_assert_int_eq(decide(agent_pats, 2, true, false, false,
				"refs/heads/main", POLICY_CREATE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "branch not allowed by token: allowed "
				  "agent/*, fix-*");
	ck_assert_int_eq(decide(NULL, 0, true, false, false, "refs/heads/main",
				POLICY_CREATE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "branch not allowed by token: allowed "
				  "nothing");
	ck_assert_int_eq(decide(agent_pats, 2, true, true, true, "refs/tags/v1",
				POLICY_CREATE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "tag not allowed by token: allowed "
				  "agent/*, fix-*");
	ck_assert_int_eq(decide(agent_pats, 1, true, true, true,
				"refs/notes/commits", POLICY_UPDATE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "ref not allowed by token: allowed agent/*");
	ck_assert_int_eq(decide(agent_pats, 2, true, false, true,
				"refs/heads/agent/x", POLICY_FORCE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "force-push not allowed by token");
	ck_assert_int_eq(decide(agent_pats, 2, true, true, false,
				"refs/heads/fix-1", POLICY_DELETE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "deletion not allowed by token");
	/* a branch outside the patterns is refused as a branch first */
	ck_assert_int_eq(decide(agent_pats, 2, true, false, false,
				"refs/heads/main", POLICY_DELETE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "branch not allowed by token: allowed "
				  "agent/*, fix-*");
}
END_TEST

START_TEST(decide_allows)
{
	static const char *const tag_pats[] = {"refs/tags/v*"};
	struct gg_err err;

	ck_assert_int_eq(decide(agent_pats, 2, true, false, false,
				"refs/heads/agent/x", POLICY_CREATE, &err),
			 0);
	ck_assert_int_eq(err.code, GG_OK);
	ck_assert_str_eq(err.msg, "");
	ck_assert_int_eq(decide(agent_pats, 2, true, false, false,
				"refs/heads/fix-2", POLICY_UPDATE, &err),
			 0);
	ck_assert_int_eq(decide(agent_pats, 2, true, true, false,
				"refs/heads/fix-2", POLICY_FORCE, &err),
			 0);
	ck_assert_int_eq(decide(agent_pats, 2, true, false, true,
				"refs/heads/fix-2", POLICY_DELETE, &err),
			 0);
	ck_assert_int_eq(decide(tag_pats, 1, true, false, false,
				"refs/tags/v1.0", POLICY_CREATE, &err),
			 0);
	/* moving an existing tag is a FORCE (caller decides that) */
	ck_assert_int_eq(decide(tag_pats, 1, true, false, false,
				"refs/tags/v1.0", POLICY_FORCE, &err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "force-push not allowed by token");
}
END_TEST

/* Longer names than libgit2 can list may be deleted, not created or
 * moved: one upstream would stop every history check on the repository. */
START_TEST(decide_ref_name_length)
{
	static const char *const all[] = {"agent/**"};
	char ref[GG_MAX_NEW_REFNAME + 2];
	struct gg_err err;
	size_t n;

	n = (size_t)snprintf(ref, sizeof(ref), "refs/heads/agent/");
	memset(ref + n, 'y', sizeof(ref) - 1 - n);
	ref[GG_MAX_NEW_REFNAME] = '\0'; /* exactly the limit */
	ck_assert_int_eq(decide(all, 1, true, true, true, ref, POLICY_CREATE,
				&err),
			 0);
	ref[GG_MAX_NEW_REFNAME] = 'y'; /* one byte over */
	ref[GG_MAX_NEW_REFNAME + 1] = '\0';
	ck_assert_int_eq(decide(all, 1, true, true, true, ref, POLICY_CREATE,
				&err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "ref name longer than 1023 bytes not allowed "
				  "(gitgate could no longer check the "
				  "repository's history)");
	ck_assert_int_eq(decide(all, 1, true, true, true, ref, POLICY_FORCE,
				&err),
			 GG_EDENIED);
	ck_assert_int_eq(decide(all, 1, true, true, true, ref, POLICY_DELETE,
				&err),
			 0);
	/* the token's own rules still come first */
	ck_assert_int_eq(decide(all, 1, true, true, false, ref, POLICY_DELETE,
				&err),
			 GG_EDENIED);
	ck_assert_str_eq(err.msg, "deletion not allowed by token");
}
END_TEST

/* A pattern of n copies of c. */
static char *pattern_of(size_t n, char c)
{
	char *p = malloc(n + 1);

	ck_assert_ptr_nonnull(p);
	memset(p, c, n);
	p[n] = '\0';
	return p;
}

START_TEST(decide_reason_truncation)
{
	const char *prefix = "branch not allowed by token: allowed ";
	char *p150 = pattern_of(150, 'x'), *p10 = pattern_of(10, 'y');
	char *p160 = pattern_of(160, 'z'), *p170 = pattern_of(170, 'w');
	const char *pats[3];
	char expect[512];
	struct gg_err err;

	/* 37 + 160 = 197 bytes: fits whole */
	pats[0] = p160;
	decide(pats, 1, true, false, false, "refs/heads/m", POLICY_CREATE,
	       &err);
	snprintf(expect, sizeof(expect), "%s%s", prefix, p160);
	ck_assert_str_eq(err.msg, expect);
	/* 37 + 170 = 207 > 200: even the first is cut */
	pats[0] = p170;
	decide(pats, 1, true, false, false, "refs/heads/m", POLICY_CREATE,
	       &err);
	ck_assert_str_eq(err.msg, "branch not allowed by token: allowed "
				  "...");
	/* 37 + 150 + 2 + 10 = 199: both fit */
	pats[0] = p150;
	pats[1] = p10;
	decide(pats, 2, true, false, false, "refs/heads/m", POLICY_CREATE,
	       &err);
	snprintf(expect, sizeof(expect), "%s%s, %s", prefix, p150, p10);
	ck_assert_str_eq(err.msg, expect);
	ck_assert_uint_eq(strlen(err.msg), 199);
	/* a third one no longer fits: the list ends in ", ..." */
	pats[2] = p10;
	decide(pats, 3, true, false, false, "refs/heads/m", POLICY_CREATE,
	       &err);
	snprintf(expect, sizeof(expect), "%s%s, ...", prefix, p150);
	ck_assert_str_eq(err.msg, expect);
	ck_assert_uint_le(strlen(err.msg), GG_MAX_REASON_LEN);
	free(p150);
	free(p10);
	free(p160);
	free(p170);
}
END_TEST

START_TEST(decide_reason_many_patterns)
{
	char names[100][16];
	const char *pats[100];
	struct gg_err err;
	size_t i, len;

	for (i = 0; i < 100; i++) {
		snprintf(names[i], sizeof(names[i]), "team-%02zu/*", i);
		pats[i] = names[i];
	}
	decide(pats, 100, true, false, false, "refs/tags/x", POLICY_CREATE,
	       &err);
	len = strlen(err.msg);
	ck_assert_uint_le(len, GG_MAX_REASON_LEN);
	ck_assert(strncmp(err.msg,
			  "tag not allowed by token: allowed "
			  "team-00/*, team-01/*, ",
			  55) == 0);
	ck_assert_str_eq(err.msg + len - 5, ", ...");
}
END_TEST

/* git rewrites these strings into its own messages; never emit them. */
START_TEST(reasons_avoid_git_reserved_strings)
{
	static const char *const reserved[] = {
		"non-fast forward", "fetch first",    "needs force",
		"stale info",	    "already exists", "up to date",
		"no match",	    "forced update",  "atomic push failed",
	};
	static const enum policy_action acts[] = {POLICY_CREATE, POLICY_UPDATE,
						  POLICY_FORCE, POLICY_DELETE};
	static const char *const refs[] = {"refs/heads/main",
					   "refs/heads/agent/x", "refs/tags/v1",
					   "refs/x/y"};
	struct gg_err err;
	size_t a, r, k;
	int push;

	for (push = 0; push < 2; push++)
		for (a = 0; a < 4; a++)
			for (r = 0; r < 4; r++) {
				decide(agent_pats, 1, push, false, false,
				       refs[r], acts[a], &err);
				for (k = 0; k < 9; k++)
					ck_assert(
						!strstr(err.msg, reserved[k]));
			}
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *m = tcase_create("match");
	TCase *d = tcase_create("decide");

	tcase_add_loop_test(m, match_table, 0,
			    sizeof(match_rows) / sizeof(match_rows[0]));
	tcase_add_loop_test(m, pattern_check_table, 0,
			    sizeof(check_rows) / sizeof(check_rows[0]));
	tcase_add_test(m, pattern_check_length);
	tcase_add_test(m, pathological_star_is_fast);
	tcase_add_test(m, pathological_globstar_is_fast);
	tcase_add_test(d, action_names);
	tcase_add_test(d, decide_reasons);
	tcase_add_test(d, decide_allows);
	tcase_add_test(d, decide_ref_name_length);
	tcase_add_test(d, decide_reason_truncation);
	tcase_add_test(d, decide_reason_many_patterns);
	tcase_add_test(d, reasons_avoid_git_reserved_strings);
	suite_add_tcase(s, m);
	suite_add_tcase(s, d);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

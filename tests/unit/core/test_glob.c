/* test_glob.c - the wildcard matcher: path globs, repository globs (case
 * folded), email globs (flat), validation, and bounded cost. Ref patterns
 * are policy_match's, tested in push/test_policy.c on the same code. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gitgate/core/glob.h"
#include "gitgate/core/limits.h"

#define SEG 0
#define FOLD GLOB_CASEFOLD
#define EMAIL (GLOB_FLAT | GLOB_CASEFOLD)

struct match_row {
	const char *pattern;
	const char *name;
	unsigned flags;
	bool match;
};

static const struct match_row match_rows[] = {
	/* anchored at the top of the tree */
	{"CODEOWNERS", "CODEOWNERS", SEG, true},
	{"CODEOWNERS", "docs/CODEOWNERS", SEG, false},
	{"CODEOWNERS", "CODEOWNERS2", SEG, false},
	{"**/CODEOWNERS", "CODEOWNERS", SEG, true},
	{"**/CODEOWNERS", "docs/CODEOWNERS", SEG, true},
	{"**/CODEOWNERS", ".github/x/CODEOWNERS", SEG, true},
	/* a directory and everything under it, not the name itself */
	{".github/workflows/**", ".github/workflows/ci.yml", SEG, true},
	{".github/workflows/**", ".github/workflows/a/b.yml", SEG, true},
	{".github/workflows/**", ".github/workflows", SEG, false},
	{".github/workflows/**", ".github/workflowsx/ci.yml", SEG, false},
	{".github/workflows/**", "x/.github/workflows/ci.yml", SEG, false},
	/* '*' within one segment */
	{"**/*.pem", "key.pem", SEG, true},
	{"**/*.pem", "a/b/key.pem", SEG, true},
	{"**/*.pem", ".pem", SEG, true},
	{"**/*.pem", "key.pem.txt", SEG, false},
	{"**/*.pem", "key.pem/readme", SEG, false},
	{"*.md", "README.md", SEG, true},
	{"*.md", "docs/README.md", SEG, false},
	{"docs/*", "docs/a", SEG, true},
	{"docs/*", "docs/a/b", SEG, false},
	{"a/*/c", "a/b/c", SEG, true},
	{"a/*/c", "a/c", SEG, false},
	{"a*b*c", "a-b-c-c", SEG, true},
	{"a*b*c", "a-b-c-d", SEG, false},
	{"**/id_rsa", "id_rsa", SEG, true},
	{"**/id_rsa", "home/.ssh/id_rsa", SEG, true},
	{"**/id_rsa", "id_rsa.pub", SEG, false},
	{"**/.env", "app/.env", SEG, true},
	{"**/.env", "app/.env.example", SEG, false},
	/* "**" in the middle, several, alone */
	{"src/**/test_*.c", "src/test_x.c", SEG, true},
	{"src/**/test_*.c", "src/a/b/test_x.c", SEG, true},
	{"src/**/test_*.c", "src/a/b/x.c", SEG, false},
	{"a/**/**/b", "a/b", SEG, true},
	{"**/x/**", "x", SEG, false},
	{"**/x/**", "a/x/b", SEG, true},
	{"**", "a", SEG, true},
	{"**", "a/b/c", SEG, true},
	/* paths are case-sensitive, repository names are not */
	{"README.md", "readme.md", SEG, false},
	{"acme/*", "ACME/Infra", SEG, false},
	{"acme/*", "ACME/Infra", FOLD, true},
	{"Acme/Infra", "acme/infra", FOLD, true},
	{"acme/*", "acme/infra/x", FOLD, false},
	{"*/*", "acme/infra", FOLD, true},
	{"acme/infra-*", "acme/infra-prod", FOLD, true},
	{"acme/infra-*", "acme/infra", FOLD, false},
	/* names that are no path match nothing */
	{"**", "", SEG, false},
	{"**", "/a", SEG, false},
	{"**", "a/", SEG, false},
	{"**", "a//b", SEG, false},
	{"*", "", SEG, false},
	/* invalid patterns match nothing */
	{"a//b", "a/b", SEG, false},
	{"/a", "a", SEG, false},
	{"a/", "a", SEG, false},
	{"a**", "abc", SEG, false},
	{"a/../b", "b", SEG, false},
	{"", "", SEG, false},
	/* flat (email globs): '*' crosses '/', letters fold */
	{"*@example.com", "alice@example.com", EMAIL, true},
	{"*@example.com", "a/b@example.com", EMAIL, true},
	{"*@example.com", "Alice@EXAMPLE.com", EMAIL, true},
	{"*@example.com", "alice@example.com.evil", EMAIL, false},
	{"*@example.com", "alice@sub.example.com", EMAIL, false},
	{"*@*.example.com", "alice@sub.example.com", EMAIL, true},
	{"*@*.example.com", "alice@example.com", EMAIL, false},
	{"bot+*@example.com", "bot+ci@example.com", EMAIL, true},
	{"alice@example.com", "alice@example.com", EMAIL, true},
	{"alice@example.com", "alice2@example.com", EMAIL, false},
	{"*", "", EMAIL, false},
	{"**@example.com", "a@example.com", EMAIL, false},
	{"*@example.com", "a@example.com", GLOB_FLAT, true},
	{"*@example.com", "a@Example.com", GLOB_FLAT, false},
};

START_TEST(match_table)
{
	const struct match_row *r = &match_rows[_i];

	ck_assert_msg(glob_match(r->pattern, r->name, r->flags) == r->match,
		      "glob_match(\"%s\", \"%s\", %u) should be %s", r->pattern,
		      r->name, r->flags, r->match ? "true" : "false");
}
END_TEST

START_TEST(match_null)
{
	ck_assert(!glob_match(NULL, "a", 0));
	ck_assert(!glob_match("a", NULL, 0));
}
END_TEST

struct check_row {
	const char *pattern;
	unsigned flags;
	const char *why; /* NULL = valid */
};

static const struct check_row check_rows[] = {
	{"CODEOWNERS", SEG, NULL},
	{".github/workflows/**", SEG, NULL},
	{"**/*.pem", SEG, NULL},
	{"**", SEG, NULL},
	{"a b/c~d^e:f?g[h\\i", SEG, NULL}, /* paths may hold what refs not */
	{"caf\xc3\xa9/*", SEG, NULL},
	{".env", SEG, NULL},
	{"a/.../b", SEG, NULL},
	{"*@example.com", EMAIL, NULL},
	{"a/b@*", EMAIL, NULL},
	{"", SEG, "is empty"},
	{"", EMAIL, "is empty"},
	{"/etc/passwd", SEG, "starts with '/'"},
	{"docs/", SEG, "ends with '/'"},
	{"a//b", SEG, "has an empty segment"},
	{".", SEG, "has a \".\" or \"..\" segment"},
	{"a/./b", SEG, "has a \".\" or \"..\" segment"},
	{"../x", SEG, "has a \".\" or \"..\" segment"},
	{"a/..", SEG, "has a \".\" or \"..\" segment"},
	{"a**", SEG,
	 "uses \"**\" inside a segment (it must be a whole "
	 "segment)"},
	{"x/***/y", SEG,
	 "uses \"**\" inside a segment (it must be a whole "
	 "segment)"},
	{"a\tb", SEG, "contains a control character"},
	{"a\x7f", EMAIL, "contains a control character"},
	{"**@example.com", EMAIL,
	 "uses \"**\" (here '*' already matches "
	 "anything)"},
};

START_TEST(check_table)
{
	const struct check_row *r = &check_rows[_i];
	struct gg_err err = GG_ERR_INIT;
	char expect[GG_ERR_MSG_MAX], shown[80];
	int rc = glob_check(r->pattern, r->flags, &err);

	if (!r->why) {
		ck_assert_msg(rc == 0, "%s: %s", r->pattern, err.msg);
		return;
	}
	gg_err_sanitize(shown, sizeof(shown), r->pattern, strlen(r->pattern));
	snprintf(expect, sizeof(expect), "invalid glob \"%s\": %s", shown,
		 r->why);
	ck_assert_int_eq(rc, GG_EINVAL);
	ck_assert_str_eq(err.msg, expect);
}
END_TEST

START_TEST(check_length)
{
	struct gg_err err = GG_ERR_INIT;
	char p[GG_MAX_PATTERN_LEN + 2];

	memset(p, 'a', sizeof(p));
	p[GG_MAX_PATTERN_LEN] = '\0';
	ck_assert_int_eq(glob_check(p, 0, &err), 0);
	ck_assert(glob_match(p, p, 0));
	p[GG_MAX_PATTERN_LEN] = 'a';
	p[GG_MAX_PATTERN_LEN + 1] = '\0';
	ck_assert_int_eq(glob_check(p, 0, &err), GG_ELIMIT);
	ck_assert(strstr(err.msg, "\": is too long") != NULL);
	ck_assert(!glob_match(p, p, 0));
}
END_TEST

/*
 * glob_match_under: can the pattern match some path below dir? Asked of a
 * token's allow_paths with dir ".github/workflows" to decide whether the
 * upstream credential gets workflows: write.
 */
struct under_row {
	const char *pattern;
	const char *dir;
	unsigned flags;
	bool under;
};

#define WF ".github/workflows"

static const struct under_row under_rows[] = {
	/* patterns that reach inside .github/workflows */
	{".github/**", WF, SEG, true},
	{"**", WF, SEG, true},
	{".github/workflows/ci.yml", WF, SEG, true},
	{".github/workflows/*.yml", WF, SEG, true},
	{".github/workflows/**", WF, SEG, true},
	{".github/workflows/*", WF, SEG, true},
	{"**/*.yml", WF, SEG, true},
	{"**/workflows/**", WF, SEG, true},
	{"**/ci.yml", WF, SEG, true},
	{".github/**/ci.yml", WF, SEG, true},
	{".github/*/ci.yml", WF, SEG, true},
	{"*/workflows/x/**", WF, SEG, true},
	{".github/workflows/a/b/c.yml", WF, SEG, true},
	/* patterns that cannot */
	{".github/*", WF, SEG, false},	       /* .github/workflows itself */
	{".github/workflows", WF, SEG, false}, /* only that exact name */
	{".github", WF, SEG, false},
	{"*", WF, SEG, false},
	{"*/*", WF, SEG, false},
	{"src/**", WF, SEG, false},
	{".github/actions/**", WF, SEG, false},
	{".github/workflowsx/**", WF, SEG, false},
	{".github/workflow/*", WF, SEG, false},
	{"x/.github/workflows/**", WF, SEG, false},
	{"**/*.yml/x", "a", SEG, true},
	{"a/b", "a/b/c", SEG, false},
	/* case: paths are as written unless folded */
	{".GitHub/**", WF, SEG, false},
	{".GitHub/**", WF, FOLD, true},
	{".GITHUB/WORKFLOWS/*.YML", WF, FOLD, true},
	{".GITHUB/WORKFLOWS/*.YML", WF, SEG, false},
	/* flat patterns are for emails, never paths */
	{".github/**", WF, GLOB_FLAT, false},
	{"*", WF, GLOB_FLAT, false},
	{"*", WF, EMAIL, false},
	/* bad patterns match nothing */
	{"", WF, SEG, false},
	{"/.github/**", WF, SEG, false},
	{".github/", WF, SEG, false},
	{".github//workflows/*", WF, SEG, false},
	{".github/../.github/**", WF, SEG, false},
	{"./.github/**", WF, SEG, false},
	{".github/w**", WF, SEG, false},
	{".github/\tx", WF, SEG, false},
	/* bad dirs are no directory */
	{"**", "", SEG, false},
	{"**", "/.github/workflows", SEG, false},
	{"**", ".github/workflows/", SEG, false},
	{"**", ".github//workflows", SEG, false},
	{".github/**", "/", SEG, false},
};

START_TEST(under_table)
{
	const struct under_row *r = &under_rows[_i];

	ck_assert_msg(
		glob_match_under(r->pattern, r->dir, r->flags) == r->under,
		"glob_match_under(\"%s\", \"%s\", %u) should be %s", r->pattern,
		r->dir, r->flags, r->under ? "true" : "false");
}
END_TEST

/*
 * Agrees with glob_match, both ways, on every table row (flat ones are
 * never "under", by definition): under is true exactly when some
 * "dir/s1[/s2[/s3]]" matches, the segments drawn from the pattern's own
 * segments with their '*' removed, plus "x" (enough to give every
 * pattern segment of these rows a name that matches it).
 */
#define MAX_ALPHA 8

static size_t witness_alphabet(char alpha[][64], const char *pattern)
{
	const char *p = pattern, *e;
	size_t n = 0, i, j;

	snprintf(alpha[n++], 64, "x");
	while (n < MAX_ALPHA && *p) {
		e = strchr(p, '/');
		if (!e)
			e = p + strlen(p);
		for (i = 0, j = 0; p + i < e && j < 63; i++)
			if (p[i] != '*')
				alpha[n][j++] = p[i];
		alpha[n][j] = '\0';
		if (j > 0)
			n++;
		p = *e ? e + 1 : e;
	}
	return n;
}

/* Does some name + "/s1[/s2...]" (up to depth more segments from alpha)
 * match? The first such name into found. */
static bool some_match_below(const struct under_row *r, const char *name,
			     char alpha[][64], size_t n, int depth, char *found,
			     size_t foundsz)
{
	char longer[512];
	size_t a;

	for (a = 0; depth > 0 && a < n; a++) {
		snprintf(longer, sizeof(longer), "%.300s/%.63s", name,
			 alpha[a]);
		if (glob_match(r->pattern, longer, r->flags)) {
			snprintf(found, foundsz, "%s", longer);
			return true;
		}
		if (some_match_below(r, longer, alpha, n, depth - 1, found,
				     foundsz))
			return true;
	}
	return false;
}

START_TEST(under_agrees_with_match)
{
	const struct under_row *r = &under_rows[_i];
	char alpha[MAX_ALPHA][64], witness[512] = "";
	bool any;

	if ((r->flags & GLOB_FLAT) || !*r->dir || r->dir[0] == '/' ||
	    r->dir[strlen(r->dir) - 1] == '/' || strstr(r->dir, "//"))
		return;
	any = some_match_below(r, r->dir, alpha,
			       witness_alphabet(alpha, r->pattern), 3, witness,
			       sizeof(witness));
	ck_assert_msg(any == r->under,
		      "glob_match_under(\"%s\", \"%s\") is %s but a "
		      "matching name below it %s%s",
		      r->pattern, r->dir, r->under ? "true" : "false",
		      any ? "exists: " : "was not found", witness);
}
END_TEST

#undef MAX_ALPHA

START_TEST(under_null_and_long)
{
	char *p = malloc(GG_MAX_PATTERN_LEN + 2);
	size_t n;

	ck_assert(!glob_match_under(NULL, WF, 0));
	ck_assert(!glob_match_under("**", NULL, 0));
	ck_assert_ptr_nonnull(p);
	/* the most segments a pattern can have: "aa/a/a/.../a" */
	memcpy(p, "aa", 2);
	for (n = 2; n + 2 <= GG_MAX_PATTERN_LEN; n += 2)
		memcpy(p + n, "/a", 2);
	p[n] = '\0';
	ck_assert_uint_eq(strlen(p), GG_MAX_PATTERN_LEN);
	ck_assert(glob_match_under(p, "aa", 0));
	ck_assert(glob_match_under(p, "aa/a/a", 0));
	ck_assert(!glob_match_under(p, "a", 0));
	ck_assert(!glob_match_under(p, p, 0)); /* p itself, nothing below */
	/* "**" at every level */
	memcpy(p, "**", 2);
	for (n = 2; n + 3 <= GG_MAX_PATTERN_LEN; n += 3)
		memcpy(p + n, "/**", 3);
	p[n] = '\0';
	ck_assert(glob_match_under(p, WF, 0));
	ck_assert(glob_match_under(p, "a/b/c/d/e/f/g/h", 0));
	/* one byte too long: refused */
	memset(p, 'a', GG_MAX_PATTERN_LEN + 1);
	p[GG_MAX_PATTERN_LEN + 1] = '\0';
	ck_assert(!glob_match_under(p, "a", 0));
	p[0] = '*';
	p[1] = '*';
	p[2] = '/';
	ck_assert(!glob_match_under(p, "a", 0));
	free(p);
}
END_TEST

#undef WF

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The worst cases of naive backtracking, at the largest sizes allowed:
 * "*a*a*a...b" against a long run of 'a' (flat, as for emails), and
 * "**" before every segment against a deep path with no match.
 */
START_TEST(pathological_is_fast)
{
	char *pat = malloc(GG_MAX_PATTERN_LEN + 1), *name = malloc(8193);
	size_t n;
	double t0 = seconds();
	int k;

	ck_assert(pat && name);
	for (n = 0; n + 3 < GG_MAX_PATTERN_LEN; n += 2)
		memcpy(pat + n, "*a", 2);
	memcpy(pat + n, "b", 2);
	memset(name, 'a', 8192);
	name[8192] = '\0';
	for (k = 0; k < 10; k++)
		ck_assert(!glob_match(pat, name, EMAIL));
	for (n = 0; n + 6 < GG_MAX_PATTERN_LEN; n += 5)
		memcpy(pat + n, "**/a/", 5);
	memcpy(pat + n, "b", 2);
	for (n = 0; n + 3 < 8192; n += 2)
		memcpy(name + n, "a/", 2);
	memcpy(name + n, "c", 2);
	for (k = 0; k < 10; k++)
		ck_assert(!glob_match(pat, name, SEG));
	ck_assert_msg(seconds() - t0 < 2.0, "took %.2fs", seconds() - t0);
	free(pat);
	free(name);
}
END_TEST

static Suite *glob_suite(void)
{
	Suite *s = suite_create("glob");
	TCase *tc = tcase_create("core");

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
	tcase_add_loop_test(tc, match_table, 0, N(match_rows));
	tcase_add_test(tc, match_null);
	tcase_add_loop_test(tc, check_table, 0, N(check_rows));
	tcase_add_test(tc, check_length);
	tcase_add_loop_test(tc, under_table, 0, N(under_rows));
	tcase_add_loop_test(tc, under_agrees_with_match, 0, N(under_rows));
	tcase_add_test(tc, under_null_and_long);
	tcase_add_test(tc, pathological_is_fast);
#undef N
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(glob_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

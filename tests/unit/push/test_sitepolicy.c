/* test_sitepolicy.c - the site-policy file: what parses, every way a key
 * can be wrong (with its line:column), all problems reported together,
 * bounds, merging for a repository, email matching, loading from disk. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/core/limits.h"
#include "gitgate/push/sitepolicy.h"

#define P "/etc/gitgate/policy.json"

/* The tables write JSON with single quotes (as test_config.c does); no
 * test needs a literal one. */
static char *dq(const char *json)
{
	char *text = strdup(json), *p;

	ck_assert_ptr_nonnull(text);
	for (p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	return text;
}

static int parse_q(struct sitepolicy **out, const char *json,
		   const struct sitepolicy_opts *opts, struct gg_err *err)
{
	char *text = dq(json);
	int rc = sitepolicy_parse(out, P, text, strlen(text), opts, err);

	free(text);
	return rc;
}

static struct sitepolicy *parse_ok(const char *json)
{
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;

	ck_assert_msg(parse_q(&pol, json, NULL, &err) == GG_OK, "refused: %s",
		      err.msg);
	ck_assert_ptr_nonnull(pol);
	return pol;
}

static void assert_list(const struct sitepolicy_list *l, const char *joined)
{
	char buf[1024] = "";
	size_t i, len = 0;

	for (i = 0; i < l->n; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
					i ? " " : "", l->v[i]);
	ck_assert_str_eq(buf, joined);
}

#define ISSUE_EXAMPLE                                                          \
	"{\n"                                                                  \
	"  'protected_refs': ['main', 'release/**', 'refs/tags/**'],\n"        \
	"  'protected_paths': ['.github/workflows/**', '.github/actions/**', " \
	"'CODEOWNERS'],\n"                                                     \
	"  'forbidden_paths': ['**/*.pem', '**/id_rsa', '**/id_ed25519', "     \
	"'**/.env'],\n"                                                        \
	"  'max_file_size': '50M',\n"                                          \
	"  'commit_emails': ['*@example.com', "                                \
	"'*@users.noreply.github.com'],\n"                                     \
	"  'secrets': true,\n"                                                 \
	"  'secret_rules': [ { 'id': 'acme-api-key', 'regex': "                \
	"'acme_[0-9a-f]{32}' } ],\n"                                           \
	"  'repos': { 'acme/infra': { 'protected_paths': ['terraform/**'], "   \
	"'max_file_size': '5M' } }\n"                                          \
	"}\n"

START_TEST(test_issue_example)
{
	struct sitepolicy *pol = parse_ok(ISSUE_EXAMPLE);
	const struct sitepolicy_rules *top = sitepolicy_top(pol);

	assert_list(&top->protected_refs, "main release/** refs/tags/**");
	assert_list(&top->protected_paths,
		    ".github/workflows/** .github/actions/** CODEOWNERS");
	assert_list(&top->forbidden_paths,
		    "**/*.pem **/id_rsa **/id_ed25519 **/.env");
	assert_list(&top->commit_emails,
		    "*@example.com *@users.noreply.github.com");
	ck_assert_uint_eq(top->max_file_size, 50u << 20);
	ck_assert(top->secrets);
	ck_assert_uint_eq(top->nsecret_rules, 1);
	ck_assert_str_eq(top->secret_rules[0].id, "acme-api-key");
	ck_assert_str_eq(top->secret_rules[0].regex, "acme_[0-9a-f]{32}");
	ck_assert_uint_eq(sitepolicy_nrepos(pol), 1);
	ck_assert_str_eq(sitepolicy_repo_glob(pol, 0), "acme/infra");
	ck_assert_ptr_null(sitepolicy_repo_glob(pol, 1));
	sitepolicy_free(pol);
}
END_TEST

START_TEST(test_issue_example_for_repo)
{
	struct sitepolicy *pol = parse_ok(ISSUE_EXAMPLE);
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy_rules *r = NULL;
	static const char *const spellings[] = {"acme/infra", "ACME/Infra"};
	size_t i;

	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(
			sitepolicy_for_repo(&r, pol, spellings[i], &err), 0);
		assert_list(&r->protected_paths,
			    ".github/workflows/** .github/actions/** "
			    "CODEOWNERS terraform/**");
		assert_list(&r->protected_refs, "main release/** refs/tags/**");
		ck_assert_uint_eq(r->max_file_size, 5u << 20);
		ck_assert(r->secrets);
		ck_assert_uint_eq(r->nsecret_rules, 1);
		sitepolicy_rules_free(r);
	}
	ck_assert_int_eq(sitepolicy_for_repo(&r, pol, "acme/web", &err), 0);
	assert_list(&r->protected_paths,
		    ".github/workflows/** .github/actions/** CODEOWNERS");
	ck_assert_uint_eq(r->max_file_size, 50u << 20);
	sitepolicy_rules_free(r);
	sitepolicy_free(pol);
}
END_TEST

START_TEST(test_empty_policy)
{
	struct sitepolicy *pol = parse_ok("{}");
	const struct sitepolicy_rules *top = sitepolicy_top(pol);
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy_rules *r;

	ck_assert_uint_eq(top->protected_refs.n + top->protected_paths.n +
				  top->forbidden_paths.n +
				  top->commit_emails.n + top->nsecret_rules,
			  0);
	ck_assert_uint_eq(top->max_file_size, 0);
	ck_assert(!top->secrets);
	ck_assert_uint_eq(sitepolicy_nrepos(pol), 0);
	ck_assert_int_eq(sitepolicy_for_repo(&r, pol, "a/b", &err), 0);
	ck_assert_uint_eq(r->protected_refs.n, 0);
	sitepolicy_rules_free(r);
	ck_assert_int_eq(sitepolicy_for_entry(&r, pol, 0, &err), GG_ENOTFOUND);
	ck_assert_ptr_null(r);
	sitepolicy_free(pol);
	sitepolicy_free(NULL);
	sitepolicy_rules_free(NULL);
	sitepolicy_problems_release(NULL);
}
END_TEST

/* Empty lists and empty repos entries are allowed: they add nothing. */
START_TEST(test_empty_lists)
{
	struct sitepolicy *pol = parse_ok(
		"{'protected_refs':[],'protected_paths':[],"
		"'forbidden_paths':[],'commit_emails':[],'secret_rules':[],"
		"'secrets':false,'repos':{'a/b':{},'*/"
		"*':{'secret_rules':[]}}}");

	ck_assert_uint_eq(sitepolicy_nrepos(pol), 2);
	sitepolicy_free(pol);
}
END_TEST

/*
 * One problem each, on line 1. The message is exactly
 * "<P>:1:<col>: <msg>" where col is where `at` first occurs in the JSON:
 * the table says what the position must point at, not a number to keep
 * in step by hand.
 */
static const struct {
	const char *json;
	const char *at;
	const char *msg;
} bad_one[] = {
	/* unknown keys, at the key */
	{"{'protected_ref':[]}", "'protected_ref'",
	 "protected_ref: unknown key"},
	{"{'secrets':true,'Secrets':true}", "'Secrets'",
	 "Secrets: unknown key"},
	{"{'bad\\u0001key':1}", "'bad", "bad?key: unknown key"},
	{"{'repos':{'a/b':{'x':1}}}", "'x'", "repos[\"a/b\"].x: unknown key"},
	{"{'repos':{'a/b':{'repos':{}}}}", "'repos':{}",
	 "repos[\"a/b\"].repos: not allowed inside a repos entry (entries do "
	 "not nest)"},
	{"{'secret_rules':[{'id':'a','regex':'x','name':'n'}]}", "'name'",
	 "secret_rules[0].name: unknown key"},
	/* lists */
	{"{'protected_refs':'main'}", "'main'",
	 "protected_refs: must be an array of ref patterns"},
	{"{'protected_paths':{}}", "{}",
	 "protected_paths: must be an array of path globs"},
	{"{'forbidden_paths':null}", "null",
	 "forbidden_paths: must be an array of path globs"},
	{"{'commit_emails':'*@x'}", "'*@x'",
	 "commit_emails: must be an array of email globs"},
	{"{'protected_refs':['main',5]}", "5",
	 "protected_refs[1]: must be a string"},
	{"{'protected_paths':['a',['b']]}", "['b']",
	 "protected_paths[1]: must be a string"},
	{"{'commit_emails':[true]}", "true",
	 "commit_emails[0]: must be a string"},
	/* ref patterns: policy_pattern_check */
	{"{'protected_refs':['a..b']}", "'a..b'",
	 "protected_refs[0]: invalid ref pattern \"a..b\": contains \"..\""},
	{"{'protected_refs':['']}", "''",
	 "protected_refs[0]: invalid ref pattern \"\": is empty"},
	{"{'protected_refs':['x.lock']}", "'x.lock'",
	 "protected_refs[0]: invalid ref pattern \"x.lock\": has a segment "
	 "ending with \".lock\""},
	{"{'protected_refs':['a b']}", "'a b'",
	 "protected_refs[0]: invalid ref pattern \"a b\": contains a space"},
	/* path globs: glob_check */
	{"{'protected_paths':['a//b']}", "'a//b'",
	 "protected_paths[0]: invalid glob \"a//b\": has an empty segment"},
	{"{'protected_paths':['/etc']}", "'/etc'",
	 "protected_paths[0]: invalid glob \"/etc\": starts with '/'"},
	{"{'forbidden_paths':['docs/']}", "'docs/'",
	 "forbidden_paths[0]: invalid glob \"docs/\": ends with '/'"},
	{"{'forbidden_paths':['../x']}", "'../x'",
	 "forbidden_paths[0]: invalid glob \"../x\": has a \".\" or \"..\" "
	 "segment"},
	{"{'forbidden_paths':['a**']}", "'a**'",
	 "forbidden_paths[0]: invalid glob \"a**\": uses \"**\" inside a "
	 "segment (it must be a whole segment)"},
	{"{'forbidden_paths':['']}", "''",
	 "forbidden_paths[0]: invalid glob \"\": is empty"},
	{"{'protected_paths':['a\\tb']}", "'a",
	 "protected_paths[0]: invalid glob \"a?b\": contains a control "
	 "character"},
	/* email globs */
	{"{'commit_emails':['example.com']}", "'example.com'",
	 "commit_emails[0]: invalid email glob \"example.com\": needs exactly "
	 "one '@' with something on each side"},
	{"{'commit_emails':['*@']}", "'*@'",
	 "commit_emails[0]: invalid email glob \"*@\": needs exactly one '@' "
	 "with something on each side"},
	{"{'commit_emails':['@x.com']}", "'@x.com'",
	 "commit_emails[0]: invalid email glob \"@x.com\": needs exactly one "
	 "'@' with something on each side"},
	{"{'commit_emails':['a@b@c']}", "'a@b@c'",
	 "commit_emails[0]: invalid email glob \"a@b@c\": needs exactly one "
	 "'@' with something on each side"},
	{"{'commit_emails':['a b@x']}", "'a b@x'",
	 "commit_emails[0]: invalid email glob \"a b@x\": contains a space, "
	 "'<' or '>'"},
	{"{'commit_emails':['<a@x>']}", "'<a@x>'",
	 "commit_emails[0]: invalid email glob \"<a@x>\": contains a space, "
	 "'<' or '>'"},
	{"{'commit_emails':['**@x']}", "'**@x'",
	 "commit_emails[0]: invalid glob \"**@x\": uses \"**\" (here '*' "
	 "already matches anything)"},
	/* max_file_size */
	{"{'max_file_size':50}", "50",
	 "max_file_size: must be a string such as \"50M\" (a bare number "
	 "would not say its unit)"},
	{"{'max_file_size':null}", "null",
	 "max_file_size: must be a string such as \"50M\" (a bare number "
	 "would not say its unit)"},
	{"{'max_file_size':'50m'}", "'50m'",
	 "max_file_size: \"50m\" is not a size: want digits and at most one "
	 "unit, B, K, M or G (e.g. \"50M\")"},
	{"{'max_file_size':'-1M'}", "'-1M'",
	 "max_file_size: \"-1M\" is not a size: want digits and at most one "
	 "unit, B, K, M or G (e.g. \"50M\")"},
	{"{'max_file_size':'5 M'}", "'5 M'",
	 "max_file_size: \"5 M\" is not a size: want digits and at most one "
	 "unit, B, K, M or G (e.g. \"50M\")"},
	{"{'max_file_size':'1.5G'}", "'1.5G'",
	 "max_file_size: \"1.5G\" is not a size: want digits and at most one "
	 "unit, B, K, M or G (e.g. \"50M\")"},
	{"{'max_file_size':'0M'}", "'0M'",
	 "max_file_size: \"0M\" is zero: the smallest limit is 1 byte"},
	{"{'max_file_size':'17179869184G'}", "'17179869184G'",
	 "max_file_size: \"17179869184G\" is too large (it does not fit in 64 "
	 "bits)"},
	{"{'repos':{'a/b':{'max_file_size':''}}}", "''",
	 "repos[\"a/b\"].max_file_size: \"\" is not a size: want digits and "
	 "at most one unit, B, K, M or G (e.g. \"50M\")"},
	/* secrets */
	{"{'secrets':'yes'}", "'yes'", "secrets: must be true or false"},
	{"{'secrets':1}", "1", "secrets: must be true or false"},
	/* secret_rules */
	{"{'secret_rules':{}}", "{}",
	 "secret_rules: must be an array of {\"id\", \"regex\"} objects"},
	{"{'secret_rules':[5]}", "5",
	 "secret_rules[0]: must be an object {\"id\", \"regex\"}"},
	{"{'secret_rules':[{'regex':'x'}]}", "{'regex'",
	 "secret_rules[0].id: required"},
	{"{'secret_rules':[{'id':'a'}]}", "{'id'",
	 "secret_rules[0].regex: required"},
	{"{'secret_rules':[{'id':'','regex':'x'}]}", "''",
	 "secret_rules[0].id: must be a non-empty string"},
	{"{'secret_rules':[{'id':7,'regex':'x'}]}", "7",
	 "secret_rules[0].id: must be a non-empty string"},
	{"{'secret_rules':[{'id':'Acme','regex':'x'}]}", "'Acme'",
	 "secret_rules[0].id: \"Acme\" may use only a-z, 0-9, '.', '_' and "
	 "'-'"},
	{"{'secret_rules':[{'id':'a b','regex':'x'}]}", "'a b'",
	 "secret_rules[0].id: \"a b\" may use only a-z, 0-9, '.', '_' and "
	 "'-'"},
	{"{'secret_rules':[{'id':'a','regex':''}]}", "''",
	 "secret_rules[0].regex: must be a non-empty string"},
	{"{'secret_rules':[{'id':'a','regex':['x']}]}", "['x']",
	 "secret_rules[0].regex: must be a non-empty string"},
	{"{'secret_rules':[{'id':'a','regex':'x'},{'id':'a','regex':'y'}]}",
	 "'a','regex':'y'",
	 "secret_rules[1].id: \"a\" is already the id of secret_rules[0].id "
	 "(line 1)"},
	{"{'secret_rules':[{'id':'k','regex':'x'}],"
	 "'repos':{'a/b':{'secret_rules':[{'id':'k','regex':'y'}]}}}",
	 "'k','regex':'y'",
	 "repos[\"a/b\"].secret_rules[0].id: \"k\" is already the id of "
	 "secret_rules[0].id (line 1)"},
	/* repos */
	{"{'repos':[]}", "[]",
	 "repos: must be an object of \"owner/name\" globs"},
	{"{'repos':{'acme':{}}}", "'acme'",
	 "repos[\"acme\"]: invalid repository glob \"acme\": must be "
	 "OWNER/NAME (each may use '*')"},
	{"{'repos':{'a/b/c':{}}}", "'a/b/c'",
	 "repos[\"a/b/c\"]: invalid repository glob \"a/b/c\": must be "
	 "OWNER/NAME (each may use '*')"},
	{"{'repos':{'a//b':{}}}", "'a//b'",
	 "repos[\"a//b\"]: invalid glob \"a//b\": has an empty segment"},
	{"{'repos':{'**/x':{}}}", "'**/x'",
	 "repos[\"**/x\"]: invalid repository glob \"**/x\": \"**\" has no "
	 "use here ('*' matches a whole owner or name)"},
	{"{'repos':{'a b/c':{}}}", "'a b/c'",
	 "repos[\"a b/c\"]: invalid repository glob \"a b/c\": may use only "
	 "letters, digits, '.', '_', '-' and '*'"},
	{"{'repos':{'a/b':5}}", "5",
	 "repos[\"a/b\"]: must be an object of "
	 "rules"},
	{"{'repos':{'a/b':{'protected_paths':['x//']}}}", "'x//'",
	 "repos[\"a/b\"].protected_paths[0]: invalid glob \"x//\": ends with "
	 "'/'"},
	/* the document itself */
	{"['a']", "[", "the policy must be a JSON object"},
};

START_TEST(test_bad_one)
{
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = (struct sitepolicy *)1;
	char want[GG_ERR_MSG_MAX];
	char *text = dq(bad_one[_i].json), *at = dq(bad_one[_i].at);
	const char *where = strstr(text, at);

	ck_assert_msg(where != NULL, "'%s' not in '%s'", at, text);
	snprintf(want, sizeof(want), P ":1:%d: %s", (int)(where - text) + 1,
		 bad_one[_i].msg);
	ck_assert_msg(sitepolicy_parse(&pol, P, text, strlen(text), NULL,
				       &err) == GG_EINVAL,
		      "accepted: %s", text);
	ck_assert_ptr_null(pol);
	ck_assert_str_eq(err.msg, want);
	free(text);
	free(at);
}
END_TEST

/* Syntax and duplicate keys: jansson's message at jansson's position. */
static const struct {
	const char *json;
	const char *msg;
} not_json[] = {
	{"", P ":1:1: '[' or '{' expected near end of file"},
	{"{'secrets':true,'secrets':false}",
	 P ":1:25: duplicate object key near '\"secrets\"'"},
	{"{\n  'repos': {'a/b': {}, 'a/b': {}}\n}",
	 P ":2:28: duplicate object key near '\"a/b\"'"},
	{"{'secrets':}", P ":1:12: unexpected token near '}'"},
	{"{'secrets':true", P ":1:15: '}' expected near end of file"},
	{"{'a':'\\u0000'}", P ":1:13: \\u0000 is not allowed without "
			      "JSON_ALLOW_NUL near '\"\\u0000\"'"},
};

START_TEST(test_not_json)
{
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;

	ck_assert_int_eq(parse_q(&pol, not_json[_i].json, NULL, &err),
			 GG_EINVAL);
	ck_assert_ptr_null(pol);
	ck_assert_str_eq(err.msg, not_json[_i].msg);
}
END_TEST

/* Every problem is reported, in file order, each at its own line:column. */
START_TEST(test_all_problems_together)
{
	struct sitepolicy_problems probs = {NULL, 0, 0};
	struct sitepolicy_opts opts = {NULL, NULL, &probs};
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;
	static const char *const want[] = {
		P ":2:30: protected_refs[1]: invalid ref pattern \"a..b\": "
		  "contains \"..\"",
		P ":3:3: protectd_paths: unknown key",
		P ":4:20: max_file_size: \"50 MB\" is not a size: want digits "
		  "and at most one unit, B, K, M or G (e.g. \"50M\")",
		P ":6:5: secret_rules[0].id: required",
		P ":6:15: secret_rules[0].regex: must be a non-empty string",
		P ":9:28: repos[\"acme/*\"].secrets: must be true or false",
		P ":10:5: repos[\"x\"]: invalid repository glob \"x\": must be "
		  "OWNER/NAME (each may use '*')",
		P ":10:30: repos[\"x\"].commit_emails[0]: invalid email glob "
		  "\"nobody\": needs exactly one '@' with something on each "
		  "side",
	};
	size_t i;

	ck_assert_int_eq(parse_q(&pol,
				 "{\n"
				 "  'protected_refs': ['main', 'a..b'],\n"
				 "  'protectd_paths': [],\n"
				 "  'max_file_size': '50 MB',\n"
				 "  'secret_rules': [\n"
				 "    {'regex': 5}\n"
				 "  ],\n"
				 "  'repos': {\n"
				 "    'acme/*': { 'secrets': 'no' },\n"
				 "    'x': { 'commit_emails': ['nobody'] }\n"
				 "  }\n"
				 "}\n",
				 &opts, &err),
			 GG_EINVAL);
	ck_assert_ptr_null(pol);
	for (i = 0; i < probs.n && i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_str_eq(probs.lines[i], want[i]);
	ck_assert_uint_eq(probs.n, sizeof(want) / sizeof(want[0]));
	ck_assert_uint_eq(probs.more, 0);
	ck_assert_str_eq(err.msg, P ":2:30: protected_refs[1]: invalid ref "
				    "pattern \"a..b\": contains \"..\" (and 7 "
				    "more)");
	sitepolicy_problems_release(&probs);
	ck_assert_ptr_null(probs.lines);
}
END_TEST

/* Columns count characters, as jansson's do; positions survive escapes
 * in keys and strings full of JSON punctuation before the culprit. */
START_TEST(test_positions_robust)
{
	static const struct {
		const char *json;
		const char *msg;
	} rows[] = {
		{"{'protected_paths': ['caf\xc3\xa9', 'a//b']}",
		 P ":1:30: protected_paths[1]: invalid glob \"a//b\": has an "
		   "empty segment"},
		{"{'prot\\u0065cted_paths': ['a//b']}",
		 P ":1:27: protected_paths[0]: invalid glob \"a//b\": has an "
		   "empty segment"},
		{"{'protected_paths': ['a,]}\\'\\\\', 'x', '/y']}", P
		 ":1:39: protected_paths[2]: invalid glob \"/y\": starts with "
		 "'/'"},
		{"{'secrets' : true ,\r\n 'secrets2' : 1}",
		 P ":2:2: secrets2: unknown key"},
		{"\n\n   [1]", P ":3:4: the policy must be a JSON object"},
		{"{'repos':{'a/b':{'protected_refs':[]},'c/"
		 "d':{'x':{'y':[1]}}}}",
		 P ":1:46: repos[\"c/d\"].x: unknown key"},
	};
	struct gg_err err;
	struct sitepolicy *pol;
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		gg_err_init(&err);
		ck_assert_int_eq(parse_q(&pol, rows[i].json, NULL, &err),
				 GG_EINVAL);
		ck_assert_str_eq(err.msg, rows[i].msg);
	}
}
END_TEST

/* "{'<key>':[<pre>0<post>,<pre>1<post>,...]}" with n items (an object
 * instead of the array when object). */
static char *many(const char *key, const char *pre, const char *post, size_t n,
		  bool object)
{
	size_t len = strlen(key) + n * (strlen(pre) + strlen(post) + 24) + 16;
	size_t i, at;
	char *s = malloc(len);

	ck_assert_ptr_nonnull(s);
	at = (size_t)snprintf(s, len, "{'%s':%c", key, object ? '{' : '[');
	for (i = 0; i < n; i++)
		at += (size_t)snprintf(s + at, len - at, "%s%s%zu%s",
				       i ? "," : "", pre, i, post);
	snprintf(s + at, len - at, "%c}", object ? '}' : ']');
	return s;
}

static int parse_many(const char *key, const char *pre, const char *post,
		      size_t n, bool object, struct gg_err *err)
{
	struct sitepolicy *pol = NULL;
	char *json = many(key, pre, post, n, object);
	int rc = parse_q(&pol, json, NULL, err);

	sitepolicy_free(pol);
	free(json);
	return rc;
}

/* Past GG_MAX_POLICY_PROBLEMS lines the rest are counted, not kept. */
START_TEST(test_problem_cap)
{
	struct sitepolicy_problems probs = {NULL, 0, 0};
	struct sitepolicy_opts opts = {NULL, NULL, &probs};
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;
	char *json = many("protected_paths", "'/", "'",
			  GG_MAX_POLICY_PROBLEMS + 50, false);
	char want[128];

	ck_assert_int_eq(parse_q(&pol, json, &opts, &err), GG_EINVAL);
	ck_assert_uint_eq(probs.n, GG_MAX_POLICY_PROBLEMS);
	ck_assert_uint_eq(probs.more, 50);
	snprintf(want, sizeof(want),
		 P ":1:%d: protected_paths[99]: invalid glob \"/99\": starts "
		   "with '/'",
		 (int)(strstr(json, "'/99'") - json) + 1);
	ck_assert_str_eq(probs.lines[GG_MAX_POLICY_PROBLEMS - 1], want);
	ck_assert(strstr(err.msg, " (and 149 more)") != NULL);
	sitepolicy_problems_release(&probs);
	free(json);
}
END_TEST

/* A long message is cut before the count, which always shows. */
START_TEST(test_err_keeps_count)
{
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;
	char json[600];
	char name[301];

	memset(name, 'k', 300);
	name[300] = '\0';
	snprintf(json, sizeof(json), "{'%s':1,'b':2}", name);
	ck_assert_int_eq(parse_q(&pol, json, NULL, &err), GG_EINVAL);
	ck_assert_uint_lt(strlen(err.msg), GG_ERR_MSG_MAX);
	ck_assert(strstr(err.msg, "...: unknown key (and 1 more)") != NULL);
}
END_TEST

START_TEST(test_limits)
{
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(parse_many("forbidden_paths", "'p", "'",
				    GG_MAX_POLICY_PATTERNS, false, &err),
			 0);
	ck_assert_int_eq(parse_many("forbidden_paths", "'p", "'",
				    GG_MAX_POLICY_PATTERNS + 1, false, &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, P ":1:20: forbidden_paths: too many "
				    "patterns: the file may hold 4096 in all "
				    "its lists together");
	gg_err_init(&err);
	ck_assert_int_eq(parse_many("secret_rules", "{'id':'r",
				    "','regex':'x'}", GG_MAX_SECRET_RULES,
				    false, &err),
			 0);
	ck_assert_int_eq(parse_many("secret_rules", "{'id':'r",
				    "','regex':'x'}", GG_MAX_SECRET_RULES + 1,
				    false, &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, P ":1:17: secret_rules: too many rules: "
				    "the file may hold 256 in all");
	gg_err_init(&err);
	ck_assert_int_eq(parse_many("repos", "'o/r", "':{}",
				    GG_MAX_POLICY_REPOS, true, &err),
			 0);
	ck_assert_int_eq(parse_many("repos", "'o/r", "':{}",
				    GG_MAX_POLICY_REPOS + 1, true, &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, P ":1:10: repos: too many entries (at most "
				    "1024)");
}
END_TEST

/* The pattern count covers all lists and levels together. */
START_TEST(test_pattern_limit_across_lists)
{
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;
	char *a = many("protected_paths", "'a", "'", GG_MAX_POLICY_PATTERNS - 1,
		       false);
	size_t len = strlen(a);
	char *json = malloc(len + 64);

	ck_assert_ptr_nonnull(json);
	memcpy(json, a, len - 1); /* drop the final '}' */
	snprintf(json + len - 1, 64,
		 ",'repos':{'a/b':{'commit_emails':"
		 "['a@b','c@d']}}}");
	ck_assert_int_eq(parse_q(&pol, json, NULL, &err), GG_EINVAL);
	ck_assert(strstr(err.msg, "repos[\"a/b\"].commit_emails: too many "
				  "patterns") != NULL);
	free(a);
	free(json);
}
END_TEST

START_TEST(test_lengths)
{
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;
	size_t jsz = GG_MAX_SECRET_REGEX + GG_MAX_PATTERN_LEN + 200;
	char *json = malloc(jsz);
	char id[GG_MAX_SECRET_RULE_ID + 2];
	char *big;

	ck_assert_ptr_nonnull(json);
	/* a pattern of GG_MAX_PATTERN_LEN is fine, one byte more is not */
	snprintf(json, jsz, "{'protected_paths':['%0*d']}", GG_MAX_PATTERN_LEN,
		 0);
	ck_assert_int_eq(parse_q(&pol, json, NULL, &err), 0);
	sitepolicy_free(pol);
	snprintf(json, jsz, "{'protected_paths':['%0*d']}",
		 GG_MAX_PATTERN_LEN + 1, 0);
	ck_assert_int_eq(parse_q(&pol, json, NULL, &err), GG_EINVAL);
	ck_assert(strstr(err.msg, ":1:21: protected_paths[0]: invalid glob "
				  "\"0000") != NULL);
	ck_assert(strstr(err.msg, "...\": is too long") != NULL);
	/* rule ids and regexes */
	memset(id, 'a', sizeof(id) - 1);
	id[GG_MAX_SECRET_RULE_ID] = '\0';
	gg_err_init(&err);
	snprintf(json, jsz, "{'secret_rules':[{'id':'%s','regex':'%0*d'}]}", id,
		 GG_MAX_SECRET_REGEX, 0);
	ck_assert_int_eq(parse_q(&pol, json, NULL, &err), 0);
	sitepolicy_free(pol);
	id[GG_MAX_SECRET_RULE_ID] = 'a';
	id[GG_MAX_SECRET_RULE_ID + 1] = '\0';
	snprintf(json, jsz, "{'secret_rules':[{'id':'%s','regex':'%0*d'}]}", id,
		 GG_MAX_SECRET_REGEX + 1, 0);
	gg_err_init(&err);
	ck_assert_int_eq(parse_q(&pol, json, NULL, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, P ":1:24: secret_rules[0].id: is longer "
				    "than 64 bytes (and 1 more)");
	/* the whole file */
	big = calloc(GG_MAX_POLICY_LEN + 2, 1);
	ck_assert_ptr_nonnull(big);
	memset(big, ' ', GG_MAX_POLICY_LEN + 1);
	big[0] = '{';
	big[GG_MAX_POLICY_LEN - 1] = '}';
	gg_err_init(&err);
	ck_assert_int_eq(
		sitepolicy_parse(&pol, P, big, GG_MAX_POLICY_LEN, NULL, &err),
		0);
	sitepolicy_free(pol);
	ck_assert_int_eq(sitepolicy_parse(&pol, P, big, GG_MAX_POLICY_LEN + 1,
					  NULL, &err),
			 GG_ELIMIT);
	ck_assert_str_eq(err.msg, P ": larger than 1048576 bytes");
	free(big);
	free(json);
}
END_TEST

/* Lists are added in file order; scalars are replaced, a later matching
 * entry winning; an entry that leaves a scalar out keeps the top's. */
START_TEST(test_merge_rules)
{
	struct sitepolicy *pol = parse_ok(
		"{'max_file_size':'50M','secrets':true,"
		"'protected_refs':['main'],"
		"'secret_rules':[{'id':'top','regex':'t'}],"
		"'repos':{"
		"'acme/*':{'max_file_size':'5M','secrets':false,"
		"'protected_paths':['x'],'protected_refs':['dev']},"
		"'acme/infra':{'max_file_size':'1G','protected_paths':['y'],"
		"'forbidden_paths':['z'],'commit_emails':['*@acme.test'],"
		"'secret_rules':[{'id':'infra','regex':'i'}]},"
		"'*/infra':{'protected_paths':['w']}}}");
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy_rules *r;

	ck_assert_int_eq(sitepolicy_for_repo(&r, pol, "Acme/Infra", &err), 0);
	assert_list(&r->protected_refs, "main dev");
	assert_list(&r->protected_paths, "x y w");
	assert_list(&r->forbidden_paths, "z");
	assert_list(&r->commit_emails, "*@acme.test");
	ck_assert_uint_eq(r->max_file_size, 1u << 30);
	ck_assert(!r->secrets);
	ck_assert_uint_eq(r->nsecret_rules, 2);
	ck_assert_str_eq(r->secret_rules[0].id, "top");
	ck_assert_str_eq(r->secret_rules[1].id, "infra");
	sitepolicy_rules_free(r);

	ck_assert_int_eq(sitepolicy_for_repo(&r, pol, "acme/web", &err), 0);
	assert_list(&r->protected_paths, "x");
	ck_assert_uint_eq(r->max_file_size, 5u << 20);
	ck_assert(!r->secrets);
	ck_assert_uint_eq(r->nsecret_rules, 1);
	sitepolicy_rules_free(r);

	ck_assert_int_eq(sitepolicy_for_repo(&r, pol, "other/infra", &err), 0);
	assert_list(&r->protected_paths, "w");
	ck_assert_uint_eq(r->max_file_size, 50u << 20);
	ck_assert(r->secrets);
	sitepolicy_rules_free(r);

	/* one entry alone, as `policy check` shows it */
	ck_assert_int_eq(sitepolicy_for_entry(&r, pol, 1, &err), 0);
	assert_list(&r->protected_refs, "main");
	assert_list(&r->protected_paths, "y");
	ck_assert_uint_eq(r->max_file_size, 1u << 30);
	ck_assert(r->secrets); /* the top's: this entry does not set it */
	sitepolicy_rules_free(r);
	ck_assert_int_eq(sitepolicy_for_entry(&r, pol, 3, &err), GG_ENOTFOUND);
	ck_assert_str_eq(err.msg, "site policy: no repos entry 3");

	/* the top level is untouched by merging */
	assert_list(&sitepolicy_top(pol)->protected_refs, "main");
	sitepolicy_free(pol);
}
END_TEST

/* The secret-scan engine's hook: called once per well-formed rule; what it
 * refuses is a problem at the regex, naming the rule. */
struct hook_log {
	int calls;
	char seen[256];
};

static int fake_engine(void *payload, const char *id, const char *regex,
		       struct gg_err *err)
{
	struct hook_log *log = payload;
	size_t len = strlen(log->seen);

	log->calls++;
	snprintf(log->seen + len, sizeof(log->seen) - len, "%s=%s;", id, regex);
	if (strchr(regex, '('))
		return gg_err_set(err, GG_EINVAL, "missing close paren");
	return strchr(regex, ')') ? GG_EINVAL : 0;
}

START_TEST(test_regex_hook)
{
	struct hook_log log = {0, ""};
	struct sitepolicy_opts opts = {fake_engine, &log, NULL};
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;

	ck_assert_int_eq(
		parse_q(&pol,
			"{'secret_rules':[{'regex':'ok','id':'a'},"
			"{'id':'b','regex':'x('},{'id':'B','regex':'y('},"
			"{'id':'c','regex':'z)'}]}",
			&opts, &err),
		GG_EINVAL);
	ck_assert_int_eq(log.calls, 3); /* not for the bad id */
	ck_assert_str_eq(log.seen, "a=ok;b=x(;c=z);");
	ck_assert_str_eq(err.msg,
			 P ":1:60: secret_rules[1].regex: rule \"b\": missing "
			   "close paren (and 2 more)");
	ck_assert_ptr_null(pol);

	log.calls = 0;
	log.seen[0] = '\0';
	gg_err_init(&err);
	ck_assert_int_eq(parse_q(&pol,
				 "{'secret_rules':[{'id':'a','regex':'ok'}],"
				 "'repos':{'a/b':{'secret_rules':"
				 "[{'id':'b','regex':'fine'}]}}}",
				 &opts, &err),
			 0);
	ck_assert_int_eq(log.calls, 2);
	sitepolicy_free(pol);
}
END_TEST

START_TEST(test_problems_only_on_failure)
{
	struct sitepolicy_problems probs = {NULL, 0, 0};
	struct sitepolicy_opts opts = {NULL, NULL, &probs};
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;

	ck_assert_int_eq(parse_q(&pol, "{'secrets':true}", &opts, &err), 0);
	ck_assert_uint_eq(probs.n, 0);
	ck_assert_ptr_null(probs.lines);
	sitepolicy_free(pol);
	/* a syntax error is a problem line like any other */
	ck_assert_int_eq(parse_q(&pol, "{", &opts, &err), GG_EINVAL);
	ck_assert_uint_eq(probs.n, 1);
	ck_assert_str_eq(probs.lines[0], P ":1:1: string or '}' expected "
					   "near end of file");
	sitepolicy_problems_release(&probs);
}
END_TEST

static const struct {
	const char *pattern;
	const char *email;
	bool match;
} emails[] = {
	{"*@example.com", "alice@example.com", true},
	{"*@example.com", "Alice@Example.COM", true},
	{"*@example.com", "a/b@example.com", true},
	{"*@example.com", "x@evil.test@example.com", false},
	{"*@example.com", "@example.com", false},
	{"*@example.com", "alice@", false},
	{"*@example.com", "alice", false},
	{"*@example.com", "", false},
	{"*@example.com", "alice@example.com.evil.test", false},
	{"*@users.noreply.github.com", "1+bot@users.noreply.github.com", true},
	{"alice@*", "alice@anywhere.test", true},
	{"alice@*", "bob@anywhere.test", false},
};

START_TEST(test_email_match)
{
	ck_assert_msg(
		sitepolicy_email_match(emails[_i].pattern, emails[_i].email) ==
			emails[_i].match,
		"%s ~ %s", emails[_i].pattern, emails[_i].email);
	ck_assert(!sitepolicy_email_match("*@x", NULL));
}
END_TEST

/* ---- files ---- */

static char tmpdir[64];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/gg-sitepolicy-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(test_load_ok)
{
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;
	char path[128], *text = dq(ISSUE_EXAMPLE);

	snprintf(path, sizeof(path), "%s/policy.json", tmpdir);
	write_file(path, text);
	ck_assert_int_eq(sitepolicy_load(&pol, path, NULL, &err), 0);
	ck_assert_uint_eq(sitepolicy_top(pol)->max_file_size, 50u << 20);
	sitepolicy_free(pol);
	free(text);
}
END_TEST

START_TEST(test_load_errors)
{
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = (struct sitepolicy *)1;
	char path[128], want[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/missing.json", tmpdir);
	ck_assert_int_eq(sitepolicy_load(&pol, path, NULL, &err), GG_EIO);
	ck_assert_ptr_null(pol);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	ck_assert_str_eq(err.msg, want);

	gg_err_init(&err);
	ck_assert_int_eq(sitepolicy_load(&pol, tmpdir, NULL, &err), GG_EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
	ck_assert_str_eq(err.msg, want);

	/* a FIFO is refused at once, never waited on */
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	gg_err_init(&err);
	ck_assert_int_eq(sitepolicy_load(&pol, path, NULL, &err), GG_EINVAL);

	snprintf(path, sizeof(path), "%s/big.json", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(ftruncate(fileno(f), GG_MAX_POLICY_LEN + 1), 0);
	fclose(f);
	gg_err_init(&err);
	ck_assert_int_eq(sitepolicy_load(&pol, path, NULL, &err), GG_ELIMIT);
	snprintf(want, sizeof(want), "%s: larger than 1048576 bytes", path);
	ck_assert_str_eq(err.msg, want);

	snprintf(path, sizeof(path), "%s/bad.json", tmpdir);
	write_file(path, "{\n  \"secrets\": \"yes\"\n}\n");
	gg_err_init(&err);
	ck_assert_int_eq(sitepolicy_load(&pol, path, NULL, &err), GG_EINVAL);
	snprintf(want, sizeof(want), "%s:2:14: secrets: must be true or false",
		 path);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

static Suite *sitepolicy_suite(void)
{
	Suite *s = suite_create("sitepolicy");
	TCase *tc = tcase_create("parse");
	TCase *files = tcase_create("files");

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
	tcase_add_test(tc, test_issue_example);
	tcase_add_test(tc, test_issue_example_for_repo);
	tcase_add_test(tc, test_empty_policy);
	tcase_add_test(tc, test_empty_lists);
	tcase_add_loop_test(tc, test_bad_one, 0, N(bad_one));
	tcase_add_loop_test(tc, test_not_json, 0, N(not_json));
	tcase_add_test(tc, test_all_problems_together);
	tcase_add_test(tc, test_positions_robust);
	tcase_add_test(tc, test_problem_cap);
	tcase_add_test(tc, test_err_keeps_count);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_pattern_limit_across_lists);
	tcase_add_test(tc, test_lengths);
	tcase_add_test(tc, test_merge_rules);
	tcase_add_test(tc, test_regex_hook);
	tcase_add_test(tc, test_problems_only_on_failure);
	tcase_add_loop_test(tc, test_email_match, 0, N(emails));
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(files, make_tmpdir, remove_tmpdir);
	tcase_add_test(files, test_load_ok);
	tcase_add_test(files, test_load_errors);
	suite_add_tcase(s, files);
#undef N
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sitepolicy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

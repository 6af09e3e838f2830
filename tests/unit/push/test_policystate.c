/* test_policystate.c - the site policy in force: no policy, loading,
 * snapshots that outlive a reload, a broken reload keeping the previous
 * policy, change detection, regex problems by id, when a secret-scan
 * database exists and what it matches, concurrent readers. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gitgate/push/policystate.h"
#include "gitgate/push/secretscan.h"
#include "gitgate/push/sitepolicy.h"

static char tmpdir[64];
static char path[128];

/* Long enough for the scan's literal, and no built-in rule's shape. */
static const char upstream[] = "upstream-Secret-0123456789-zz";

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/gg-policystate-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/policy.json", tmpdir);
}

static void remove_tmpdir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Write the policy (single quotes stand for double ones) to a new file
 * renamed over path, as editors and config management do. */
static void write_policy(const char *json)
{
	char tmp[160], *text = strdup(json), *p;
	FILE *f;

	ck_assert_ptr_nonnull(text);
	for (p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
	free(text);
}

static struct policystate *new_ok(const void *secret, size_t len)
{
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps = NULL;

	ck_assert_msg(policystate_new(&ps, path, secret, len, NULL, &err) ==
			      GG_OK,
		      "refused: %s", err.msg);
	ck_assert_ptr_nonnull(ps);
	return ps;
}

static const char *first_ref(const struct policysnap *s)
{
	const struct sitepolicy_rules *top =
		sitepolicy_top(policysnap_policy(s));

	return top->protected_refs.n ? top->protected_refs.v[0] : "";
}

START_TEST(test_no_path)
{
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps = NULL;

	ck_assert_int_eq(policystate_new(&ps, NULL, upstream, strlen(upstream),
					 NULL, &err),
			 GG_OK);
	ck_assert_ptr_nonnull(ps);
	ck_assert_ptr_null(policystate_get(ps));
	ck_assert_ptr_null(policystate_path(ps));
	ck_assert_int_eq(policystate_refresh(ps, 0, &err), 0);
	ck_assert_int_eq(policystate_refresh(ps, 1, &err), 0);
	ck_assert_ptr_null(policystate_get(ps));
	ck_assert_int_eq(err.code, GG_OK);
	policysnap_put(NULL);
	ck_assert_ptr_null(policysnap_policy(NULL));
	ck_assert_ptr_null(policysnap_db(NULL));
	policystate_free(ps);
	policystate_free(NULL);
}
END_TEST

START_TEST(test_loads)
{
	struct policystate *ps;
	struct policysnap *s;
	char line[POLICYSNAP_DESCRIBE_MAX];

	write_policy("{'protected_refs': ['main', 'release/**'],\n"
		     " 'forbidden_paths': ['**/*.pem'],\n"
		     " 'repos': {'acme/*': {'protected_refs': ['dev']}}}\n");
	ps = new_ok(NULL, 0);
	ck_assert_str_eq(policystate_path(ps), path);
	s = policystate_get(ps);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(first_ref(s), "main");
	ck_assert_uint_eq(sitepolicy_nrepos(policysnap_policy(s)), 1);
	policysnap_describe(line, sizeof(line), s);
	ck_assert_str_eq(line, "3 protected ref patterns, 0 protected paths, "
			       "1 forbidden path, 0 commit email patterns, "
			       "1 repos entry, no secret scan");
	policysnap_put(s);
	policysnap_describe(line, sizeof(line), NULL);
	ck_assert_str_eq(line, "none");
	policystate_free(ps);
}
END_TEST

/* A push holding the old snapshot keeps reading it after a reload; the
 * last put frees it (ASan build: no leak, no use after free). */
START_TEST(test_snapshot_survives_reload)
{
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps;
	struct policysnap *old, *fresh, *again;

	write_policy("{'protected_refs': ['main']}");
	ps = new_ok(NULL, 0);
	old = policystate_get(ps);
	again = policystate_get(ps);
	ck_assert_ptr_eq(old, again);
	policysnap_put(again);

	write_policy("{'protected_refs': ['trunk', 'stable']}");
	ck_assert_int_eq(policystate_refresh(ps, 0, &err), 1);
	ck_assert_int_eq(err.code, GG_OK);
	fresh = policystate_get(ps);
	ck_assert_ptr_ne(old, fresh);
	ck_assert_str_eq(first_ref(fresh), "trunk");
	ck_assert_str_eq(first_ref(old), "main"); /* still whole */
	ck_assert_uint_eq(
		sitepolicy_top(policysnap_policy(old))->protected_refs.n, 1);
	policystate_free(ps); /* the state goes first: snapshots live on */
	ck_assert_str_eq(first_ref(old), "main");
	ck_assert_str_eq(first_ref(fresh), "trunk");
	policysnap_put(old);
	policysnap_put(fresh);
}
END_TEST

START_TEST(test_broken_reload_keeps_previous)
{
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps;
	struct policysnap *s;
	char want[256];

	write_policy("{'protected_refs': ['main']}");
	ps = new_ok(NULL, 0);
	write_policy("{\n 'protected_refs': ['a..b'],\n 'colour': 1\n}\n");
	ck_assert_int_lt(policystate_refresh(ps, 0, &err), 0);
	ck_assert_int_eq(err.code, GG_EINVAL);
	snprintf(want, sizeof(want),
		 "%s:2:21: protected_refs[0]: invalid ref pattern \"a..b\": "
		 "contains \"..\" (and 1 more)",
		 path);
	ck_assert_str_eq(err.msg, want);
	s = policystate_get(ps);
	ck_assert_str_eq(first_ref(s), "main");
	policysnap_put(s);

	/* Reported once per change, not every poll; a forced one retries. */
	gg_err_init(&err);
	ck_assert_int_eq(policystate_refresh(ps, 0, &err), 0);
	ck_assert_int_lt(policystate_refresh(ps, 1, &err), 0);

	/* A file that goes away keeps the previous policy too. */
	ck_assert_int_eq(unlink(path), 0);
	gg_err_init(&err);
	ck_assert_int_lt(policystate_refresh(ps, 0, &err), 0);
	ck_assert_int_eq(err.code, GG_EIO);
	ck_assert_ptr_nonnull(strstr(err.msg, "No such file"));
	s = policystate_get(ps);
	ck_assert_str_eq(first_ref(s), "main");
	policysnap_put(s);

	/* Fixed: it loads again. */
	write_policy("{'protected_refs': ['fixed']}");
	gg_err_init(&err);
	ck_assert_int_eq(policystate_refresh(ps, 0, &err), 1);
	s = policystate_get(ps);
	ck_assert_str_eq(first_ref(s), "fixed");
	policysnap_put(s);
	policystate_free(ps);
}
END_TEST

START_TEST(test_unchanged)
{
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps;
	struct policysnap *a, *b;

	write_policy("{'protected_refs': ['main']}");
	ps = new_ok(NULL, 0);
	a = policystate_get(ps);
	ck_assert_int_eq(policystate_refresh(ps, 0, &err), 0);
	b = policystate_get(ps);
	ck_assert_ptr_eq(a, b);
	policysnap_put(b);
	ck_assert_int_eq(policystate_refresh(ps, 1, &err), 1); /* SIGHUP */
	b = policystate_get(ps);
	ck_assert_ptr_ne(a, b);
	ck_assert_int_eq(policystate_refresh(ps, 0, &err), 0);
	ck_assert_int_eq(err.code, GG_OK);
	policysnap_put(a);
	policysnap_put(b);
	policystate_free(ps);
}
END_TEST

START_TEST(test_start_problems)
{
	struct sitepolicy_problems probs = {NULL, 0, 0};
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps = NULL;
	char want[256];

	write_policy("{\n 'max_file_size': 5,\n"
		     " 'secret_rules': [{'id': 'acme-bad', 'regex': 'x('},\n"
		     "                  {'id': 'github-pat', 'regex': 'y'}]\n"
		     "}\n");
	ck_assert_int_eq(policystate_new(&ps, path, upstream, strlen(upstream),
					 &probs, &err),
			 GG_EINVAL);
	ck_assert_ptr_null(ps);
	ck_assert_uint_eq(probs.n, 3);
	ck_assert_uint_eq(probs.more, 0);
	snprintf(want, sizeof(want),
		 "%s:2:19: max_file_size: must be a string such as \"50M\" (a "
		 "bare number would not say its unit) (and 2 more)",
		 path);
	ck_assert_str_eq(err.msg, want);
	/* The regex the engine refuses: its position and id, the engine's
	 * reason once. */
	snprintf(want, sizeof(want),
		 "%s:3:47: secret_rules[0].regex: rule \"acme-bad\": ", path);
	ck_assert_msg(!strncmp(probs.lines[1], want, strlen(want)), "%s",
		      probs.lines[1]);
	ck_assert_ptr_null(strstr(probs.lines[1], "secret rule acme-bad"));
	snprintf(want, sizeof(want),
		 "%s:4:49: secret_rules[1].regex: rule \"github-pat\": id is "
		 "taken by a built-in rule",
		 path);
	ck_assert_str_eq(probs.lines[2], want);
	ck_assert_ptr_null(strstr(err.msg, upstream));
	sitepolicy_problems_release(&probs);

	/* Without a problems list: err alone. */
	gg_err_init(&err);
	ck_assert_int_eq(policystate_new(&ps, path, NULL, 0, NULL, &err),
			 GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "(and 2 more)"));

	/* Unreadable: no problem lines, the reason in err. */
	ck_assert_int_eq(unlink(path), 0);
	gg_err_init(&err);
	ck_assert_int_eq(policystate_new(&ps, path, NULL, 0, &probs, &err),
			 GG_EIO);
	ck_assert_uint_eq(probs.n, 0);
	sitepolicy_problems_release(&probs);
}
END_TEST

/* A bad regex in a repos entry, found on reload. */
START_TEST(test_bad_regex_on_reload)
{
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps;

	write_policy("{'secrets': false}");
	ps = new_ok(upstream, strlen(upstream));
	write_policy("{'repos': {'acme/*': {'secret_rules': "
		     "[{'id': 'acme.tok', 'regex': '[a-'}]}}}");
	ck_assert_int_lt(policystate_refresh(ps, 0, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "repos[\"acme/*\"]"));
	ck_assert_ptr_nonnull(strstr(err.msg, "rule \"acme.tok\""));
	policystate_free(ps);
}
END_TEST

START_TEST(test_no_db_without_secrets)
{
	static const char *const cases[] = {
		"{}",
		"{'secrets': false, 'protected_refs': ['main']}",
		"{'repos': {'a/*': {'secrets': false}, 'b/*': {}}}",
	};
	struct policystate *ps;
	struct policysnap *s;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_policy(cases[i]);
		ps = new_ok(upstream, strlen(upstream));
		s = policystate_get(ps);
		ck_assert_ptr_nonnull(s);
		ck_assert_msg(policysnap_db(s) == NULL, "%s", cases[i]);
		policysnap_put(s);
		policystate_free(ps);
	}
}
END_TEST

struct seen {
	char rules[512];
	size_t n;
};

static int on_match(const struct secretscan_match *m, void *payload)
{
	struct seen *seen = payload;
	size_t len = strlen(seen->rules);

	snprintf(seen->rules + len, sizeof(seen->rules) - len, "%s%s",
		 len ? " " : "", m->rule);
	seen->n++;
	return 0;
}

/* Scan text with the snapshot's database; the rule ids that matched. */
static void scan(struct seen *seen, const struct policysnap *s,
		 const char *text)
{
	struct gg_err err = GG_ERR_INIT;
	struct secretscan_scratch *scratch = NULL;
	const struct secretscan_db *db = policysnap_db(s);

	memset(seen, 0, sizeof(*seen));
	ck_assert_ptr_nonnull(db);
	ck_assert_int_eq(secretscan_scratch_new(&scratch, db, &err), 0);
	ck_assert_int_eq(secretscan_scan(db, scratch, text, strlen(text),
					 on_match, seen, &err),
			 0);
	secretscan_scratch_free(scratch);
}

static int has_rule(const struct secretscan_db *db, const char *id)
{
	size_t i;

	for (i = 0; i < secretscan_db_count(db); i++)
		if (!strcmp(secretscan_db_rule_id(db, i), id))
			return 1;
	return 0;
}

/* "ghp_" + 36 base62, put together here so the source itself holds no
 * token-shaped string. */
static void fake_pat(char *out, size_t outsz)
{
	static const char b62[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				  "qrstuvwxyz0123456789";
	size_t i, n;

	n = (size_t)snprintf(out, outsz, "%s%s", "gh", "p_");
	for (i = 0; i < 36 && n + 1 < outsz; i++)
		out[n++] = b62[(i * 7 + 3) % 62];
	out[n] = '\0';
}

START_TEST(test_db_matches)
{
	static const char *const cases[] = {
		"{'secrets': true}",
		"{'repos': {'acme/*': {'secrets': true}}}",
		"{'secrets': false, 'repos': {'acme/x': {'secret_rules': "
		"[{'id': 'acme-key', 'regex': 'acme_[0-9a-f]{8}'}]}}}",
	};
	struct policystate *ps;
	struct policysnap *s;
	struct seen seen;
	char pat[64], text[256];
	size_t i;

	fake_pat(pat, sizeof(pat));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_policy(cases[i]);
		ps = new_ok(upstream, strlen(upstream));
		s = policystate_get(ps);
		ck_assert_msg(policysnap_db(s) != NULL, "%s", cases[i]);
		/* One compile: built-ins, customs and the literal, whatever
		 * the entry that asked for a scan. */
		ck_assert(has_rule(policysnap_db(s), "github-pat"));
		ck_assert(has_rule(policysnap_db(s), SECRETSCAN_UPSTREAM_ID));
		ck_assert_int_eq(has_rule(policysnap_db(s), "acme-key"),
				 i == 2);
		snprintf(text, sizeof(text), "token = %s\n", pat);
		scan(&seen, s, text);
		ck_assert_str_eq(seen.rules, "github-pat");
		snprintf(text, sizeof(text), "x\npassword: %s\n", upstream);
		scan(&seen, s, text);
		ck_assert_str_eq(seen.rules, SECRETSCAN_UPSTREAM_ID);
		if (i == 2) {
			scan(&seen, s, "k = acme_0123abcd\n");
			ck_assert_str_eq(seen.rules, "acme-key");
		}
		policysnap_put(s);
		policystate_free(ps);
	}
}
END_TEST

/* Custom rules of the top level and of every entry: all in the one
 * database; no upstream secret given, no literal. */
START_TEST(test_db_collects_every_entry)
{
	struct policystate *ps;
	struct policysnap *s;
	const struct secretscan_db *db;
	size_t nbuiltin;

	write_policy(
		"{'secret_rules': [{'id': 'top', 'regex': 'top_[0-9]{6}'}],"
		" 'repos': {"
		"  'a/*': {'secret_rules': [{'id': 'a1', 'regex': 'a1_x+'},"
		"                           {'id': 'a2', 'regex': 'a2_y+'}]},"
		"  'b/*': {},"
		"  'c/*': {'secret_rules': [{'id': 'c1', 'regex': 'c1_z+'}]}"
		"}}");
	ps = new_ok(NULL, 0);
	s = policystate_get(ps);
	db = policysnap_db(s);
	ck_assert_ptr_nonnull(db);
	secretscan_builtins(&nbuiltin);
	ck_assert_uint_eq(secretscan_db_count(db), nbuiltin + 4);
	ck_assert(has_rule(db, "top"));
	ck_assert(has_rule(db, "a1"));
	ck_assert(has_rule(db, "a2"));
	ck_assert(has_rule(db, "c1"));
	ck_assert(!has_rule(db, SECRETSCAN_UPSTREAM_ID));
	policysnap_put(s);
	policystate_free(ps);
}
END_TEST

/* The secret never reaches a message, even when the scan refuses it. */
START_TEST(test_short_secret_refused_unquoted)
{
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps = NULL;

	write_policy("{'secrets': true}");
	ck_assert_int_eq(policystate_new(&ps, path, "hunter2", 7, NULL, &err),
			 GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "secret scan"));
	ck_assert_ptr_null(strstr(err.msg, "hunter2"));
	/* No scan, no literal needed: fine. */
	write_policy("{'protected_refs': ['main']}");
	gg_err_init(&err);
	ck_assert_int_eq(policystate_new(&ps, path, "hunter2", 7, NULL, &err),
			 GG_OK);
	policystate_free(ps);
}
END_TEST

/* Readers take and drop snapshots while the main thread reloads. */
#define READERS 4

struct reader {
	struct policystate *ps;
	int stop;
	pthread_mutex_t lock;
	unsigned long reads;
};

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	struct policysnap *s;
	int stop = 0;

	while (!stop) {
		s = policystate_get(r->ps);
		ck_assert_ptr_nonnull(s);
		ck_assert_uint_eq(first_ref(s)[0], 'r');
		policysnap_put(s);
		pthread_mutex_lock(&r->lock);
		r->reads++;
		stop = r->stop;
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

START_TEST(test_concurrent_readers)
{
	struct gg_err err = GG_ERR_INIT;
	struct reader r;
	pthread_t t[READERS];
	char json[64];
	int i;

	write_policy("{'protected_refs': ['r0']}");
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.lock, NULL);
	r.ps = new_ok(NULL, 0);
	for (i = 0; i < READERS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, read_loop, &r), 0);
	for (i = 1; i <= 50; i++) {
		snprintf(json, sizeof(json), "{'protected_refs': ['r%d']}", i);
		write_policy(json);
		ck_assert_int_eq(policystate_refresh(r.ps, 1, &err), 1);
	}
	pthread_mutex_lock(&r.lock);
	r.stop = 1;
	pthread_mutex_unlock(&r.lock);
	for (i = 0; i < READERS; i++)
		pthread_join(t[i], NULL);
	ck_assert_uint_gt(r.reads, 0);
	policystate_free(r.ps);
	pthread_mutex_destroy(&r.lock);
}
END_TEST

static Suite *policystate_suite(void)
{
	Suite *s = suite_create("policystate");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_test(tc, test_no_path);
	tcase_add_test(tc, test_loads);
	tcase_add_test(tc, test_snapshot_survives_reload);
	tcase_add_test(tc, test_broken_reload_keeps_previous);
	tcase_add_test(tc, test_unchanged);
	tcase_add_test(tc, test_start_problems);
	tcase_add_test(tc, test_bad_regex_on_reload);
	tcase_add_test(tc, test_no_db_without_secrets);
	tcase_add_test(tc, test_db_matches);
	tcase_add_test(tc, test_db_collects_every_entry);
	tcase_add_test(tc, test_short_secret_refused_unquoted);
	tcase_add_test(tc, test_concurrent_readers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(policystate_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

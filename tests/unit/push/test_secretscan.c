/* test_secretscan.c - the secret scan: built-in rules, custom rules, the
 * upstream literal, folding, line numbers, hashes, binary detection.
 *
 * Samples are assembled at run time from split literals and generated
 * characters, so this file holds nothing that itself looks like a live
 * credential to a scanner. */
#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/limits.h"
#include "gitgate/push/secretscan.h"

#define B62 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define B64 B62 "+/"
#define B64URL B62 "-_"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#define DIGITS "0123456789"
#define HEX "0123456789abcdef"

/* A sample: literal pieces and runs of n characters drawn from a set. */
struct piece {
	const char *lit;
	size_t n;
	const char *set;
};
#define L(s)                                                                   \
	{                                                                      \
		(s), 0, NULL                                                   \
	}
#define R(n, set)                                                              \
	{                                                                      \
		NULL, (n), (set)                                               \
	}

struct sample {
	const char *rule; /* expected rule; NULL for a near miss */
	struct piece p[8];
};

static const struct sample positives[] = {
	{"github-pat", {L("gh"), L("p_"), R(36, B62)}},
	{"github-pat",
	 {L("github"), L("_pat_"), R(22, B62), L("_"), R(59, B62)}},
	{"github-oauth", {L("gh"), L("o_"), R(36, B62)}},
	{"github-app-token", {L("gh"), L("s_"), R(36, B62)}},
	{"github-app-token", {L("gh"), L("u_"), R(40, B62)}},
	{"github-refresh-token", {L("gh"), L("r_"), R(36, B62)}},
	{"gitlab-pat", {L("gl"), L("pat-"), R(20, B64URL)}},
	{"aws-access-key-id", {L("AK"), L("IA"), R(16, UPPER)}},
	{"aws-access-key-id", {L("AS"), L("IA"), R(16, UPPER)}},
	{"private-key",
	 {L("-----BEGIN RSA PRIV"), L("ATE KEY-----\n"), R(64, B64), L("\n"),
	  R(64, B64)}},
	{"private-key",
	 {L("-----BEGIN PRIV"), L("ATE KEY-----\\n"), R(64, B64)}},
	{"private-key",
	 {L("-----BEGIN OPENSSH PRIV"), L("ATE KEY-----\r\n"), R(70, B64)}},
	{"private-key",
	 {L("-----BEGIN RSA PRIV"), L("ATE KEY-----\n"),
	  L("Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"),
	  R(32, "0123456789ABCDEF"), L("\n\n"), R(64, B64)}},
	{"private-key",
	 {L("-----BEGIN PGP PRIV"), L("ATE KEY BLOCK-----\n"),
	  L("Version: GnuPG v2\n\n"), R(64, B64)}},
	{"private-key",
	 {L("-----BEGIN PGP PRIV"), L("ATE KEY BLOCK-----\n"), L("\n"),
	  R(64, B64)}},
	{"private-key",
	 {L("-----BEGIN EC PRIV"), L("ATE KEY-----\n  "), R(64, B64)}},
	{"slack-token",
	 {L("xo"), L("xb-"), R(11, DIGITS), L("-"), R(13, DIGITS), L("-"),
	  R(24, B62)}},
	{"slack-token",
	 {L("xo"), L("xp-"), R(11, DIGITS), L("-"), R(11, DIGITS), L("-"),
	  R(32, HEX)}},
	{"stripe-live-key", {L("sk"), L("_live_"), R(24, B62)}},
	{"stripe-live-key", {L("rk"), L("_live_"), R(99, B62)}},
	{"google-api-key", {L("AI"), L("za"), R(35, B64URL)}},
	{"npm-token", {L("np"), L("m_"), R(36, B62)}},
	{"pypi-token", {L("py"), L("pi-AgEIcHlwaS5vcmc"), R(120, B64URL)}},
	{"pypi-token",
	 {L("py"), L("pi-AgENdGVzdC5weXBpLm9yZw"), R(120, B64URL)}},
	{"openai-api-key", {L("sk"), L("-proj-"), R(156, B64URL)}},
	{"openai-api-key",
	 {L("sk"), L("-"), R(20, B62), L("T3Blbk"), L("FJ"), R(20, B62)}},
	{"anthropic-api-key",
	 {L("sk"), L("-ant-api03-"), R(93, B64URL), L("AA")}},
	{"gitgate-token",
	 {L("v4"), L(".public."), R(120, B64URL), L("."), R(20, B64URL)}},
};

static const struct sample near_misses[] = {
	{NULL, {L("gh"), L("p_"), R(35, B62), L(" x")}},
	{NULL, {L("xgh"), L("p_"), R(36, B62)}}, /* no word boundary */
	{NULL, {L("gh"), L("o_"), R(20, B62)}},
	{NULL, {L("gh"), L("x_"), R(36, B62)}},
	{NULL, {L("gh"), L("r-"), R(36, B62)}},
	{NULL, {L("github"), L("_pat_"), R(40, B62)}},
	{NULL, {L("gl"), L("pat-"), R(19, B62), L(" ")}},
	{NULL, {L("AK"), L("IA"), R(15, UPPER), L(" ")}},
	{NULL, {L("AK"), L("IA"), R(17, UPPER)}}, /* too long */
	{NULL, {L("ak"), L("ia"), R(16, UPPER)}},
	{NULL, {L("-----BEGIN PUB"), L("LIC KEY-----\n"), R(64, B64)}},
	{NULL, {L("-----BEGIN CERTIFICATE-----\n"), R(64, B64)}},
	{NULL,
	 {L("\"-----BEGIN PRIV"), L("ATE KEY-----\", 27) == 0)\n"),
	  L("\treturn parse(p);\n")}}, /* a parser naming the header */
	{NULL,
	 {L("h[] = \"-----BEGIN PRIV"), L("ATE KEY-----\\n\";\n"),
	  L("\treturn memcmp(p, h, sizeof(h) - 1);\n")}},
	{NULL, {L("xo"), L("xb-your-bot-token-here")}},
	{NULL, {L("xo"), L("xz-"), R(11, DIGITS), L("-"), R(24, B62)}},
	{NULL, {L("sk"), L("_test_"), R(24, B62)}},
	{NULL, {L("AI"), L("za"), R(30, B62), L(" ")}},
	{NULL, {L("np"), L("m_"), R(35, B62), L(" ")}},
	{NULL, {L("np"), L("m_"), R(37, B62)}},
	{NULL, {L("py"), L("pi-AgEAAAAAAAAA"), R(60, B64URL)}},
	{NULL, {L("sk"), L("-"), R(48, B62)}},
	{NULL, {L("sk"), L("-proj-"), R(20, B62), L(" ")}},
	{NULL, {L("sk"), L("-ant-api03-"), R(40, B64URL), L(" ")}},
	{NULL, {L("v4"), L(".local."), R(120, B62)}},
	{NULL, {L("v4"), L(".public."), R(40, B64URL), L(" ")}},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define PREFIX "value = \""

/* PREFIX, the sample, "\";\n": deterministic per seed. */
static size_t build(char *out, size_t cap, const struct sample *s,
		    unsigned seed)
{
	size_t len = strlen(PREFIX), k, n;

	memcpy(out, PREFIX, len);
	for (k = 0; k < N(s->p) && (s->p[k].lit || s->p[k].n); k++) {
		if (s->p[k].lit) {
			n = strlen(s->p[k].lit);
			ck_assert_uint_lt(len + n, cap);
			memcpy(out + len, s->p[k].lit, n);
			len += n;
			continue;
		}
		ck_assert_uint_lt(len + s->p[k].n, cap);
		for (n = 0; n < s->p[k].n; n++, len++)
			out[len] = s->p[k].set[(seed * 31 + len * 7 + n) %
					       strlen(s->p[k].set)];
	}
	ck_assert_uint_lt(len + 4, cap);
	memcpy(out + len, "\";\n", 4);
	return len + 3;
}

struct found {
	size_t n;
	struct secretscan_match m[16];
};

static int collect(const struct secretscan_match *m, void *payload)
{
	struct found *f = payload;

	if (f->n < N(f->m))
		f->m[f->n] = *m;
	f->n++;
	return 0;
}

static struct secretscan_db *db_or_fail(const struct secretscan_opts *o)
{
	struct secretscan_db *db = NULL;
	struct gg_err err = GG_ERR_INIT;

	ck_assert_msg(secretscan_db_new(&db, o, &err) == 0, "%s", err.msg);
	return db;
}

static struct secretscan_db *builtin_db(void)
{
	struct secretscan_opts o = {.builtins = true};

	return db_or_fail(&o);
}

static void scan_into(struct found *f, const struct secretscan_db *db,
		      const char *buf, size_t len)
{
	struct secretscan_scratch *s;
	struct gg_err err = GG_ERR_INIT;

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(secretscan_scratch_new(&s, db, &err), 0);
	ck_assert_msg(secretscan_scan(db, s, buf, len, collect, f, &err) == 0,
		      "%s", err.msg);
	secretscan_scratch_free(s);
}

START_TEST(builtin_positive)
{
	struct secretscan_db *db = builtin_db();
	const struct sample *s = &positives[_i];
	char buf[512];
	size_t len = build(buf, sizeof(buf), s, (unsigned)_i);
	struct found f;

	scan_into(&f, db, buf, len);
	ck_assert_msg(f.n == 1, "%s (row %d): %zu matches", s->rule, _i, f.n);
	ck_assert_str_eq(f.m[0].rule, s->rule);
	ck_assert_uint_eq(f.m[0].offset, strlen(PREFIX));
	ck_assert_uint_eq(f.m[0].line, 1);
	ck_assert_uint_gt(f.m[0].len, 0);
	ck_assert_uint_le(f.m[0].offset + f.m[0].len, len - 3);
	secretscan_db_free(db);
}
END_TEST

START_TEST(builtin_near_miss)
{
	struct secretscan_db *db = builtin_db();
	char buf[512];
	size_t len = build(buf, sizeof(buf), &near_misses[_i], (unsigned)_i);
	struct found f;

	scan_into(&f, db, buf, len);
	ck_assert_msg(f.n == 0, "near miss %d matched %s", _i,
		      f.n ? f.m[0].rule : "");
	secretscan_db_free(db);
}
END_TEST

/* Every built-in rule has a positive sample above. */
START_TEST(every_builtin_tested)
{
	size_t n, i, k;
	const struct secretscan_rule *r = secretscan_builtins(&n);
	bool seen;

	ck_assert_uint_ge(n, 15);
	for (i = 0; i < n; i++) {
		seen = false;
		for (k = 0; k < N(positives); k++)
			seen = seen || strcmp(positives[k].rule, r[i].id) == 0;
		ck_assert_msg(seen, "no positive sample for %s", r[i].id);
	}
}
END_TEST

struct bad_rule {
	const char *id;
	const char *regex;
	const char *want; /* in the message */
};

static const struct bad_rule bad_rules[] = {
	{"acme-key", "acme_[0-9a-f", "secret rule acme-key: "},
	{"acme-key", "acme_(unclosed", "secret rule acme-key: "},
	{"acme-key", "a*", "secret rule acme-key: "},	  /* matches "" */
	{"acme-key", "(a)\\1", "secret rule acme-key: "}, /* backref */
	/* too complex for start-of-match tracking */
	{"acme-key", "\\bx-[0-9]{1,20}-(?:[0-9A-Za-z]{1,40}-){0,4}[a-z]{8}",
	 "secret rule acme-key: Pattern is too large"},
	{"acme-key", "", "secret rule acme-key: empty regex"},
	{"", "acme", "secret rule 1: empty id"},
	{"acme key", "acme", "secret rule acme key: id may hold only"},
	{"github-pat", "acme", "secret rule github-pat: id already used"},
	{"upstream-secret", "acme", "id already used"},
};

START_TEST(custom_rule_refused)
{
	const struct bad_rule *b = &bad_rules[_i];
	struct secretscan_rule rule = {b->id, b->regex};
	static const char secret[] = "upstream-secret-value-0123456789";
	struct secretscan_opts o = {
		.builtins = true,
		.rules = &rule,
		.nrules = 1,
		.upstream_secret = secret,
		.upstream_secret_len = sizeof(secret) - 1,
	};
	struct secretscan_db *db = (void *)1;
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(secretscan_db_new(&db, &o, &err), GG_EINVAL);
	ck_assert_ptr_null(db);
	ck_assert_msg(strstr(err.msg, b->want), "message: %s", err.msg);
	/* where the engine refused it, its reason follows the id */
	if (b->want[strlen(b->want) - 1] == ' ')
		ck_assert_uint_gt(strlen(err.msg), strlen(b->want));
	ck_assert_ptr_null(strstr(err.msg, secret));
}
END_TEST

START_TEST(custom_rule_limits)
{
	static struct secretscan_rule rules[GG_MAX_SECRET_RULES + 1];
	static char ids[GG_MAX_SECRET_RULES + 1][16];
	char long_id[GG_MAX_SECRET_RULE_ID + 2];
	struct secretscan_opts o = {.rules = rules};
	struct secretscan_db *db;
	struct gg_err err = GG_ERR_INIT;

	for (size_t i = 0; i < N(rules); i++) {
		snprintf(ids[i], sizeof(ids[i]), "r%zu", i);
		rules[i].id = ids[i];
		rules[i].regex = "acme_[0-9]{8}";
	}
	o.nrules = N(rules);
	ck_assert_int_eq(secretscan_db_new(&db, &o, &err), GG_ELIMIT);
	gg_err_init(&err);
	o.nrules = GG_MAX_SECRET_RULES;
	ck_assert_int_eq(secretscan_db_new(&db, &o, &err), 0);
	ck_assert_uint_eq(secretscan_db_count(db), GG_MAX_SECRET_RULES);
	secretscan_db_free(db);

	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	rules[0].id = long_id;
	o.nrules = 1;
	gg_err_init(&err);
	ck_assert_int_eq(secretscan_db_new(&db, &o, &err), GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "id longer than"));

	o.nrules = 0;
	gg_err_init(&err);
	ck_assert_int_eq(secretscan_db_new(&db, &o, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "no secret rules to compile");
}
END_TEST

START_TEST(custom_rule_matches)
{
	static const struct secretscan_rule rules[] = {
		{"acme-api-key", "acme_[0-9a-f]{32,}"},
		{"password-line", "^password="},
	};
	struct secretscan_opts o = {
		.builtins = true, .rules = rules, .nrules = 2};
	struct secretscan_db *db = db_or_fail(&o);
	char buf[256];
	struct found f;
	int len;

	len = snprintf(buf, sizeof(buf),
		       "a\nkey = acme_%s%s\nx password=1\npassword=2\n",
		       "0123456789abcdef0123456789abcdef", "01234567");
	scan_into(&f, db, buf, (size_t)len);
	ck_assert_uint_eq(f.n, 2);
	ck_assert_str_eq(f.m[0].rule, "acme-api-key");
	ck_assert_uint_eq(f.m[0].line, 2);
	ck_assert_uint_eq(f.m[0].len, 5 + 40); /* the longest extent */
	ck_assert_str_eq(f.m[1].rule, "password-line");
	ck_assert_uint_eq(f.m[1].line, 4); /* '^' at line starts only */
	ck_assert_uint_eq(secretscan_db_count(db), 17);
	ck_assert_str_eq(secretscan_db_rule_id(db, 16), "password-line");
	ck_assert_ptr_null(secretscan_db_rule_id(db, 17));
	secretscan_db_free(db);
}
END_TEST

/* Overlapping matches of one rule fold into the first. */
START_TEST(overlaps_fold)
{
	static const struct secretscan_rule rule = {"eight", "[a-z]{8}"};
	struct secretscan_opts o = {.rules = &rule, .nrules = 1};
	struct secretscan_db *db = db_or_fail(&o);
	struct found f;

	scan_into(&f, db, "abcdefghijklmnopqr", 18);
	ck_assert_uint_eq(f.n, 2);
	ck_assert_uint_eq(f.m[0].offset, 0);
	ck_assert_uint_eq(f.m[0].len, 8);
	ck_assert_uint_eq(f.m[1].offset, 8);
	ck_assert_uint_eq(f.m[1].len, 8);
	secretscan_db_free(db);
}
END_TEST

START_TEST(upstream_secret_literal)
{
	/* regex metacharacters in the secret match only themselves */
	char secret[64];
	char buf[256];
	struct secretscan_opts o = {.builtins = true};
	struct secretscan_db *db;
	struct found f;
	int len;

	snprintf(secret, sizeof(secret), "%s%s", "up.str*am+(", "x)[y]\\z?$");
	o.upstream_secret = secret;
	o.upstream_secret_len = strlen(secret);
	db = db_or_fail(&o);
	len = snprintf(buf, sizeof(buf), "up-strrram+(x)[y]\\z?$\nA=%s;\n",
		       secret);
	scan_into(&f, db, buf, (size_t)len);
	ck_assert_uint_eq(f.n, 1);
	ck_assert_str_eq(f.m[0].rule, SECRETSCAN_UPSTREAM_ID);
	ck_assert_uint_eq(f.m[0].line, 2);
	ck_assert_uint_eq(f.m[0].len, strlen(secret));
	ck_assert_mem_eq(buf + f.m[0].offset, secret, strlen(secret));
	ck_assert_ptr_null(strstr(f.m[0].rule, secret));
	ck_assert_ptr_null(strstr(secret, f.m[0].hash));
	secretscan_db_free(db);
}
END_TEST

START_TEST(upstream_secret_size)
{
	static const char secret[] = "shortone";
	struct secretscan_opts o = {.upstream_secret = secret};
	struct secretscan_db *db;
	struct gg_err err = GG_ERR_INIT;

	o.upstream_secret_len = GG_MIN_SECRET_LITERAL - 1;
	ck_assert_int_eq(secretscan_db_new(&db, &o, &err), GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "upstream secret: 7 bytes"));
	ck_assert_ptr_null(strstr(err.msg, "shorton"));
	o.upstream_secret_len = GG_MIN_SECRET_LITERAL;
	gg_err_init(&err);
	ck_assert_int_eq(secretscan_db_new(&db, &o, &err), 0);
	ck_assert_uint_eq(secretscan_db_count(db), 1);
	secretscan_db_free(db);
}
END_TEST

START_TEST(binary_detection)
{
	static char buf[GG_BINARY_PROBE_LEN + 100];

	memset(buf, 'a', sizeof(buf));
	ck_assert(!secretscan_is_binary(buf, sizeof(buf)));
	ck_assert(!secretscan_is_binary(buf, 0));
	buf[GG_BINARY_PROBE_LEN] = '\0'; /* past git's window */
	ck_assert(!secretscan_is_binary(buf, sizeof(buf)));
	buf[GG_BINARY_PROBE_LEN - 1] = '\0';
	ck_assert(secretscan_is_binary(buf, sizeof(buf)));
	ck_assert(!secretscan_is_binary(buf, GG_BINARY_PROBE_LEN - 1));
	buf[0] = '\0';
	ck_assert(secretscan_is_binary(buf, 1));
}
END_TEST

static bool has(const struct found *f, const char *rule, size_t line)
{
	for (size_t i = 0; i < f->n && i < N(f->m); i++)
		if (strcmp(f->m[i].rule, rule) == 0 && f->m[i].line == line)
			return true;
	return false;
}

/* Reports come when each match is complete, not in buffer order: here
 * the second GitHub token completes the first, and the AWS key between
 * them is reported last. Line numbers hold either way. */
START_TEST(line_numbers)
{
	struct secretscan_db *db = builtin_db();
	char gh1[64], gh2[64], aws[64], buf[512];
	struct found f;
	int len;

	build(gh1, sizeof(gh1), &positives[0], 1);
	build(gh2, sizeof(gh2), &positives[0], 2);
	build(aws, sizeof(aws), &positives[7], 3);
	len = snprintf(buf, sizeof(buf), "one\n%s\r\nthree\n%s\n\n%s", gh1, aws,
		       gh2);
	scan_into(&f, db, buf, (size_t)len);
	ck_assert_uint_eq(f.n, 3);
	ck_assert(has(&f, "github-pat", 2));
	ck_assert(has(&f, "aws-access-key-id", 5));
	ck_assert(has(&f, "github-pat", 8));
	for (size_t i = 0; i < 3; i++)
		ck_assert_uint_eq(
			f.m[i].offset,
			(size_t)(strstr(buf, f.m[i].line == 2	? gh1
					     : f.m[i].line == 5 ? aws
								: gh2) -
				 buf) +
				strlen(PREFIX));
	secretscan_db_free(db);
}
END_TEST

START_TEST(hash_stable)
{
	unsigned char key[SECRETSCAN_KEY_BYTES] = {1, 2, 3};
	struct secretscan_opts o = {.builtins = true, .hash_key = key};
	struct secretscan_db *a = db_or_fail(&o), *b = db_or_fail(&o), *c;
	char buf[128], direct[SECRETSCAN_HASH_HEX + 1];
	size_t len = build(buf, sizeof(buf), &positives[0], 5);
	struct found fa, fb, fc;

	scan_into(&fa, a, buf, len);
	scan_into(&fb, b, buf, len);
	ck_assert_uint_eq(fa.n, 1);
	ck_assert_uint_eq(strlen(fa.m[0].hash), SECRETSCAN_HASH_HEX);
	ck_assert_uint_eq(strspn(fa.m[0].hash, HEX), SECRETSCAN_HASH_HEX);
	ck_assert_str_eq(fa.m[0].hash, fb.m[0].hash);
	secretscan_hash(direct, a, buf + fa.m[0].offset, fa.m[0].len);
	ck_assert_str_eq(fa.m[0].hash, direct);
	/* another key, another hash */
	key[0] = 9;
	c = db_or_fail(&o);
	scan_into(&fc, c, buf, len);
	ck_assert_str_ne(fa.m[0].hash, fc.m[0].hash);
	secretscan_db_free(a);
	secretscan_db_free(b);
	secretscan_db_free(c);
	/* without a key, one per process: reloads agree */
	o.hash_key = NULL;
	a = db_or_fail(&o);
	b = db_or_fail(&o);
	scan_into(&fa, a, buf, len);
	scan_into(&fb, b, buf, len);
	ck_assert_str_eq(fa.m[0].hash, fb.m[0].hash);
	ck_assert_str_ne(fa.m[0].hash, fc.m[0].hash);
	secretscan_db_free(a);
	secretscan_db_free(b);
}
END_TEST

static int stop_at_first(const struct secretscan_match *m, void *payload)
{
	(void)m;
	(*(int *)payload)++;
	return 7;
}

START_TEST(callback_stops)
{
	struct secretscan_db *db = builtin_db();
	struct secretscan_scratch *s;
	struct gg_err err = GG_ERR_INIT;
	char one[128], buf[512];
	int calls = 0, len;

	build(one, sizeof(one), &positives[0], 1);
	len = snprintf(buf, sizeof(buf), "%s%s%s", one, one, one);
	ck_assert_int_eq(secretscan_scratch_new(&s, db, &err), 0);
	ck_assert_int_eq(secretscan_scan(db, s, buf, (size_t)len, stop_at_first,
					 &calls, &err),
			 7);
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(err.msg, "");
	/* the scratch is fine afterwards, and with an empty buffer */
	ck_assert_int_eq(
		secretscan_scan(db, s, NULL, 0, stop_at_first, &calls, &err),
		0);
	ck_assert_int_eq(calls, 1);
	secretscan_scratch_free(s);
	secretscan_db_free(db);
}
END_TEST

/* hs_scan takes an unsigned length: a longer buffer is refused, not cut
 * (the buffer is never read). */
START_TEST(oversized_buffer)
{
	struct secretscan_db *db = builtin_db();
	struct secretscan_scratch *s;
	struct gg_err err = GG_ERR_INIT;
	struct found f = {0};

	if (sizeof(size_t) <= sizeof(unsigned)) {
		secretscan_db_free(db);
		return;
	}
	ck_assert_int_eq(secretscan_scratch_new(&s, db, &err), 0);
	ck_assert_int_eq(secretscan_scan(db, s, "x", (size_t)UINT_MAX + 1,
					 collect, &f, &err),
			 GG_ELIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "in one buffer"));
	ck_assert_uint_eq(f.n, 0);
	secretscan_scratch_free(s);
	secretscan_db_free(db);
}
END_TEST

/* A scratch made for one database scans with another (a reload). */
START_TEST(scratch_rebinds)
{
	static const struct secretscan_rule rules[] = {
		{"a1", "alpha_[0-9]{6}"},
		{"a2", "beta_[0-9]{6}"},
		{"a3", "gamma_[0-9]{6}"}};
	struct secretscan_opts small = {.rules = rules, .nrules = 1};
	struct secretscan_opts big = {
		.builtins = true, .rules = rules, .nrules = 3};
	struct secretscan_db *a = db_or_fail(&small), *b = db_or_fail(&big);
	struct secretscan_scratch *s;
	struct gg_err err = GG_ERR_INIT;
	struct found f = {0};
	static const char text[] = "alpha_123456 gamma_123456";

	ck_assert_int_eq(secretscan_scratch_new(&s, a, &err), 0);
	ck_assert_int_eq(secretscan_scan(a, s, text, sizeof(text) - 1, collect,
					 &f, &err),
			 0);
	ck_assert_uint_eq(f.n, 1);
	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(secretscan_scan(b, s, text, sizeof(text) - 1, collect,
					 &f, &err),
			 0);
	ck_assert_uint_eq(f.n, 2);
	ck_assert(has(&f, "a3", 1));
	secretscan_scratch_free(s);
	secretscan_db_free(a);
	secretscan_db_free(b);
}
END_TEST

struct worker {
	const struct secretscan_db *db;
	const char *buf;
	size_t len;
	size_t found;
};

static void *scan_many(void *arg)
{
	struct worker *w = arg;
	struct secretscan_scratch *s;
	struct gg_err err = GG_ERR_INIT;
	struct found f;

	if (secretscan_scratch_new(&s, w->db, &err) != 0)
		return NULL;
	for (int i = 0; i < 200; i++) {
		memset(&f, 0, sizeof(f));
		if (secretscan_scan(w->db, s, w->buf, w->len, collect, &f,
				    &err) != 0)
			break;
		w->found += f.n;
	}
	secretscan_scratch_free(s);
	return NULL;
}

/* One database, read-only, shared by threads with a scratch each. */
START_TEST(shared_across_threads)
{
	struct secretscan_db *db = builtin_db();
	char buf[4096];
	size_t len = 0;
	struct worker w[4];
	pthread_t t[4];

	for (size_t i = 0; i < N(positives); i++)
		len += build(buf + len, sizeof(buf) - len, &positives[i],
			     (unsigned)i);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){db, buf, len, 0};
		ck_assert_int_eq(pthread_create(&t[i], NULL, scan_many, &w[i]),
				 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_uint_eq(w[i].found, 200 * N(positives));
	}
	secretscan_db_free(db);
}
END_TEST

static Suite *secretscan_suite(void)
{
	Suite *s = suite_create("secretscan");
	TCase *r = tcase_create("rules");
	TCase *e = tcase_create("engine");

	tcase_add_loop_test(r, builtin_positive, 0, (int)N(positives));
	tcase_add_loop_test(r, builtin_near_miss, 0, (int)N(near_misses));
	tcase_add_test(r, every_builtin_tested);
	tcase_add_loop_test(r, custom_rule_refused, 0, (int)N(bad_rules));
	tcase_add_test(r, custom_rule_limits);
	tcase_add_test(r, custom_rule_matches);
	tcase_add_test(r, upstream_secret_literal);
	tcase_add_test(r, upstream_secret_size);
	tcase_add_test(e, overlaps_fold);
	tcase_add_test(e, binary_detection);
	tcase_add_test(e, line_numbers);
	tcase_add_test(e, hash_stable);
	tcase_add_test(e, callback_stops);
	tcase_add_test(e, oversized_buffer);
	tcase_add_test(e, scratch_rebinds);
	tcase_add_test(e, shared_across_threads);
	suite_add_tcase(s, r);
	suite_add_tcase(s, e);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(secretscan_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

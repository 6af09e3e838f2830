/* Unit tests for the audit log: line format, hash chain, writer. */
#include "gitgate/audit/audit.h"
#include "gitgate/core/limits.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZERO40 "0000000000000000000000000000000000000000"
#define ONE40 "1111111111111111111111111111111111111111"

/* The canonical form of known_record() chained to genesis, split where the
 * hash member goes (keys sorted: duration_ms < hash < jti). */
#define KNOWN_A_REST                                                         \
	"\"bytes_in\":1234,\"bytes_out\":56,\"client\":\"127.0.0.1\","        \
	"\"decision\":\"allow\",\"duration_ms\":78,"
#define KNOWN_A "{" KNOWN_A_REST
#define KNOWN_B                                                              \
	"\"jti\":\"j-1\",\"prev\":\"" AUDIT_GENESIS "\",\"reason\":null,"     \
	"\"refs\":[{\"action\":\"create\",\"new\":\"" ONE40 "\",\"old\":\""   \
	ZERO40 "\",\"ref\":\"refs/heads/agent/x\",\"result\":\"ok\"}],"       \
	"\"repo\":\"octo/demo\",\"request_id\":\"r-1\",\"service\":"          \
	"\"git-receive-pack\",\"status\":200,\"sub\":\"agent-7\",\"time\":"   \
	"\"2026-11-23T10:00:00.123Z\"}"
/* BLAKE2b-256 of KNOWN_A KNOWN_B, computed with Python's hashlib. */
#define KNOWN_HASH "f86cfd449bacaa20b72aa933d56d9b6c09324d7781cf15c91028deaa06a38e9f"

static const struct audit_ref known_ref = {
	.ref = "refs/heads/agent/x",
	.old = ZERO40,
	.new = ONE40,
	.action = "create",
	.result = "ok",
};

#define COMMIT40 "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"

/* A ref refused by a content rule, and an allowed one beside it. */
static const struct audit_ref rule_refs[] = {
	{
		.ref = "refs/heads/agent/x",
		.old = ZERO40,
		.new = ONE40,
		.action = "create",
		.result = "secret detected (github-pat) in src/a.py:3 "
			  "(commit 1a2b3c4)",
		.rule = "secret:github-pat",
		.path = "src/a.py",
		.commit = COMMIT40,
	},
	{
		.ref = "refs/heads/agent/y",
		.old = ONE40,
		.new = ZERO40,
		.action = "delete",
		.result = "atomic push failure",
	},
};

static struct audit_record known_record(void)
{
	struct audit_record rec;

	memset(&rec, 0, sizeof(rec));
	rec.time_ms = 1795428000123; /* 2026-11-23T10:00:00.123Z */
	rec.request_id = "r-1";
	rec.sub = "agent-7";
	rec.jti = "j-1";
	rec.repo = "octo/demo";
	rec.service = "git-receive-pack";
	rec.client = "127.0.0.1";
	rec.decision = "allow";
	rec.refs = &known_ref;
	rec.nrefs = 1;
	rec.status = 200;
	rec.bytes_in = 1234;
	rec.bytes_out = 56;
	rec.duration_ms = 78;
	return rec;
}

/* ---- helpers: a scratch directory per test ---- */

static char tmpdir[256];

static void setup_dir(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/gg-audit-XXXXXX",
		 base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_dir(void)
{
	char path[512];
	struct dirent *de;
	DIR *d = opendir(tmpdir);

	for (de = d ? readdir(d) : NULL; de; de = readdir(d)) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

static char *tpath(const char *name)
{
	static char path[4][512];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	return p;
}

static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	FILE *f = fopen(path, "rb");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fstat(fileno(f), &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	*len = fread(buf, 1, (size_t)st.st_size, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void spit(const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
	fclose(f);
}

/* Write n records to path through the real writer. */
static void write_records(const char *path, int n)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_log *log = NULL;
	char id[32];
	int i;

	ck_assert_msg(audit_open(&log, path, &err) == 0, "%s", err.msg);
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "r-%d", i);
		rec.request_id = id;
		rec.decision = i % 3 ? "allow" : "deny";
		ck_assert_msg(audit_append(log, &rec, &err) == 0, "%s",
			      err.msg);
	}
	audit_close(log);
}

/* Verify one file; return the code, with the message in err. */
static int verify(const char *path, struct audit_chain *chain,
		  struct gg_err *err)
{
	audit_chain_init(chain);
	gg_err_init(err);
	return audit_verify_file(chain, path, err);
}

/* Append n records through log; 0 or the first failure. */
static int append_n(struct audit_log *log, int n)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	int i, ret;

	for (i = 0; i < n; i++) {
		ret = audit_append(log, &rec, &err);
		if (ret)
			return ret;
	}
	return 0;
}

/* The hash a file's chain ends with. */
static void last_hash(char out[AUDIT_HASH_HEX + 1], const char *path)
{
	struct gg_err err;
	struct audit_chain chain;

	ck_assert_msg(verify(path, &chain, &err) == 0, "%s", err.msg);
	memcpy(out, chain.last, AUDIT_HASH_HEX + 1);
}

static void expect_fail(const char *path, const char *msg)
{
	struct gg_err err;
	struct audit_chain chain;

	ck_assert_int_ne(verify(path, &chain, &err), 0);
	ck_assert_msg(strstr(err.msg, msg), "got '%s', want '%s'", err.msg,
		      msg);
}

/* Offset of the start of line n (1-based) in buf. */
static size_t line_off(const char *buf, int n)
{
	const char *p = buf;

	while (--n > 0)
		p = strchr(p, '\n') + 1;
	return (size_t)(p - buf);
}

/* ---- format ---- */

START_TEST(test_format_known_hash)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	unsigned char digest[32];
	char hex[65], hash[AUDIT_HASH_HEX + 1], *line = NULL;
	size_t len = 0;
	static const char canon[] = KNOWN_A KNOWN_B;
	static const char expected[] =
		KNOWN_A "\"hash\":\"" KNOWN_HASH "\"," KNOWN_B "\n";

	crypto_generichash(digest, sizeof(digest),
			   (const unsigned char *)canon, strlen(canon), NULL,
			   0);
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	ck_assert_str_eq(hex, KNOWN_HASH);

	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	ck_assert_str_eq(line, expected);
	ck_assert_uint_eq(len, strlen(expected));
	ck_assert_str_eq(hash, KNOWN_HASH);
	free(line);
}
END_TEST

START_TEST(test_format_nulls)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	char hash[AUDIT_HASH_HEX + 1], *line = NULL;
	size_t len;

	rec.sub = NULL;
	rec.jti = NULL;
	rec.repo = NULL;
	rec.service = NULL;
	rec.refs = NULL;
	rec.nrefs = 0;
	rec.reason = "";
	rec.decision = "deny";
	rec.status = 401;
	rec.bytes_in = UINT64_MAX;
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	ck_assert_ptr_nonnull(strstr(line, "\"sub\":null"));
	ck_assert_ptr_nonnull(strstr(line, "\"jti\":null"));
	ck_assert_ptr_nonnull(strstr(line, "\"repo\":null"));
	ck_assert_ptr_nonnull(strstr(line, "\"service\":null"));
	ck_assert_ptr_nonnull(strstr(line, "\"refs\":[]"));
	ck_assert_ptr_nonnull(strstr(line, "\"reason\":\"\""));
	ck_assert_ptr_nonnull(strstr(line, "\"bytes_in\":9223372036854775807"));
	free(line);
}
END_TEST

/* The string member key of obj, which must exist. */
static const char *member(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	ck_assert_msg(s != NULL, "no string member '%s'", key);
	return s;
}

/* rule, path and commit go into the ref object when set, and are left
 * out (not null) when not; the line still checks. */
START_TEST(test_format_rule_fields)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_ref only_rule = known_ref;
	char hash[AUDIT_HASH_HEX + 1], *line = NULL;
	struct audit_line parsed;
	json_error_t jerr;
	json_t *obj, *refs, *r0, *r1;
	size_t len;

	rec.decision = "deny";
	rec.refs = rule_refs;
	rec.nrefs = 2;
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	obj = json_loadb(line, len - 1, JSON_REJECT_DUPLICATES, &jerr);
	ck_assert_msg(obj != NULL, "%s", jerr.text);
	refs = json_object_get(obj, "refs");
	ck_assert_uint_eq(json_array_size(refs), 2);
	r0 = json_array_get(refs, 0);
	ck_assert_uint_eq(json_object_size(r0), 8);
	ck_assert_str_eq(member(r0, "ref"), "refs/heads/agent/x");
	ck_assert_str_eq(member(r0, "result"), rule_refs[0].result);
	ck_assert_str_eq(member(r0, "rule"), "secret:github-pat");
	ck_assert_str_eq(member(r0, "path"), "src/a.py");
	ck_assert_str_eq(member(r0, "commit"), COMMIT40);
	r1 = json_array_get(refs, 1);
	ck_assert_uint_eq(json_object_size(r1), 5);
	ck_assert_str_eq(member(r1, "result"), "atomic push failure");
	ck_assert_ptr_null(json_object_get(r1, "rule"));
	ck_assert_ptr_null(json_object_get(r1, "path"));
	ck_assert_ptr_null(json_object_get(r1, "commit"));
	json_decref(obj);
	ck_assert_int_eq(audit_line_check(&parsed, line, len - 1, &err), 0);
	ck_assert_str_eq(parsed.hash, hash);
	free(line);

	/* each is optional on its own */
	only_rule.rule = "protected_ref";
	rec.refs = &only_rule;
	rec.nrefs = 1;
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	ck_assert_ptr_nonnull(strstr(line, "\"rule\":\"protected_ref\""));
	ck_assert_ptr_null(strstr(line, "\"path\""));
	ck_assert_ptr_null(strstr(line, "\"commit\""));
	free(line);
}
END_TEST

START_TEST(test_format_time)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	char hash[AUDIT_HASH_HEX + 1], *line = NULL, *t;
	size_t len;

	rec.time_ms = 5; /* ms below one second */
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	ck_assert_ptr_nonnull(strstr(line, "\"time\":\"1970-01-01T00:00:00.005Z\""));
	free(line);

	rec.time_ms = 0; /* now */
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	t = strstr(line, "\"time\":\"");
	ck_assert_ptr_nonnull(t);
	t += 8;
	ck_assert_int_eq(t[4], '-');
	ck_assert_int_eq(t[10], 'T');
	ck_assert_int_eq(t[19], '.');
	ck_assert_int_eq(t[23], 'Z');
	ck_assert(strncmp(t, "2024", 4) >= 0);
	free(line);
}
END_TEST

START_TEST(test_format_refuses)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	char hash[AUDIT_HASH_HEX + 1], *line = NULL;
	size_t len;

	rec.decision = "maybe";
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 GG_EINVAL);
	ck_assert_ptr_null(line);
	rec.decision = "allow";
	gg_err_init(&err);
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec, "00",
					   &err),
			 GG_EINVAL);
	gg_err_init(&err);
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   "ABCDEF" AUDIT_GENESIS, &err),
			 GG_EINVAL);
}
END_TEST

START_TEST(test_redaction)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_ref ref = known_ref;
	char hash[AUDIT_HASH_HEX + 1], *line = NULL;
	size_t len;
	struct audit_line parsed;

	rec.sub = "v4.public.eyJzdWIiOiJ4In0sig";
	rec.jti = "v4.local.abc";
	rec.reason = "bad token v4.public.AAAA";
	rec.client = "k4.secret.AAAA";
	rec.request_id = "Bearer v4.public.x";
	rec.repo = "basic dXNlcjpwYXNz";
	ref.result = "k4.local-wrap.pie.AAAA";
	ref.ref = "refs/heads/v3.public.x";
	rec.refs = &ref;
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	ck_assert_ptr_null(strstr(line, ".public."));
	ck_assert_ptr_null(strstr(line, ".local"));
	ck_assert_ptr_null(strstr(line, ".secret"));
	ck_assert_ptr_null(strstr(line, "dXNlcjpwYXNz"));
	ck_assert_ptr_nonnull(strstr(line, "\"sub\":\"[redacted]\""));
	ck_assert_ptr_nonnull(strstr(line, "\"result\":\"[redacted]\""));
	/* only the token is redacted: the rest still says what it was */
	ck_assert_ptr_nonnull(
		strstr(line, "\"reason\":\"bad token [redacted]\""));
	ck_assert_ptr_nonnull(
		strstr(line, "\"ref\":\"refs/heads/[redacted]\""));
	ck_assert_ptr_nonnull(strstr(line, "\"request_id\":\"[redacted]\""));
	/* Ordinary look-alikes stay. */
	ck_assert_ptr_nonnull(strstr(line, "\"service\":\"git-receive-pack\""));
	ck_assert_int_eq(audit_line_check(&parsed, line, len - 1, &err), 0);
	free(line);
}
END_TEST

/* A ref named after a token, with bytes that are not UTF-8 around it. */
START_TEST(test_redaction_keeps_context)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_ref ref = known_ref;
	char hash[AUDIT_HASH_HEX + 1], *line = NULL;
	size_t len;

	ref.ref = "refs/heads/agent/v4.public.eyJhIjoxfQ-_x/\xe9t\xc3\xa9";
	rec.refs = &ref;
	rec.reason = "k4.secret.AAAA and v4.local.BBBB.x end";
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	ck_assert_ptr_nonnull(strstr(line, "\"ref\":\"refs/heads/agent/"
					   "[redacted]/\\\\xe9t\\u00E9\""));
	ck_assert_ptr_nonnull(strstr(line, "\"reason\":\"[redacted] and "
					   "[redacted] end\""));
	ck_assert_ptr_null(strstr(line, "eyJhIjoxfQ"));
	free(line);
}
END_TEST

START_TEST(test_non_utf8_and_controls)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_ref ref = known_ref;
	char hash[AUDIT_HASH_HEX + 1], *line = NULL;
	size_t len;
	struct audit_line parsed;

	ref.ref = "refs/heads/\xff\xfe-x";
	rec.refs = &ref;
	rec.sub = "jos\xc3\xa9\x7f";
	rec.reason = "a\nb\x1b[31m";
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	/* bytes that are not UTF-8 are kept, as \xNN (git forbids '\' in ref
	 * names, so this is unambiguous); \xff and \xfe stay apart */
	ck_assert_ptr_nonnull(
		strstr(line, "\"ref\":\"refs/heads/\\\\xff\\\\xfe-x\""));
	/* ENSURE_ASCII: upper-case hex, DEL left as is. */
	ck_assert_ptr_nonnull(strstr(line, "\"sub\":\"jos\\u00E9\x7f\""));
	ck_assert_ptr_nonnull(strstr(line, "\"reason\":\"a\\nb\\u001B[31m\""));
	ck_assert_ptr_null(memchr(line, '\n', len - 1));
	ck_assert_int_eq(audit_line_check(&parsed, line, len - 1, &err), 0);
	free(line);
}
END_TEST

/* ---- single-line checks ---- */

static void check_variant(const char *line, const char *want)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_line parsed;

	ck_assert_int_eq(audit_line_check(&parsed, line, strlen(line), &err),
			 GG_EINVAL);
	ck_assert_msg(strstr(err.msg, want), "got '%s', want '%s'", err.msg,
		      want);
}

START_TEST(test_line_check)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_line parsed;
	static const char good[] =
		KNOWN_A "\"hash\":\"" KNOWN_HASH "\"," KNOWN_B;

	ck_assert_int_eq(audit_line_check(&parsed, good, strlen(good), &err),
			 0);
	ck_assert_str_eq(parsed.hash, KNOWN_HASH);
	ck_assert_str_eq(parsed.prev, AUDIT_GENESIS);

	/* Same JSON meaning, different bytes: whitespace. */
	check_variant("{ " KNOWN_A_REST "\"hash\":\"" KNOWN_HASH "\"," KNOWN_B,
		      "not in canonical form");
	/* Duplicate keys never parse. */
	check_variant("{\"bytes_in\":1," KNOWN_A_REST "\"hash\":\"" KNOWN_HASH
		      "\"," KNOWN_B,
		      "does not parse");
	check_variant(KNOWN_A "\"hash\":\"" KNOWN_HASH "\"," KNOWN_B "\r",
		      "carriage return");
	check_variant(KNOWN_A KNOWN_B, "hash is missing");
	check_variant("{\"time\":1}", "missing field");
	check_variant("[1,2]", "parse");
	check_variant("", "parse");
	check_variant("garbage", "parse");
}
END_TEST

START_TEST(test_line_check_reordered_keys)
{
	/* Re-serialised with bytes_in moved last: every value (and so the
	 * hash over the canonical form) is the same, the bytes are not. */
	static const char good[] =
		KNOWN_A "\"hash\":\"" KNOWN_HASH "\"," KNOWN_B;
	static const char first[] = "{\"bytes_in\":1234,";
	const char *rest = good + strlen(first);
	char moved[sizeof(good) + 8];

	snprintf(moved, sizeof(moved), "{%.*s,\"bytes_in\":1234}",
		 (int)(strlen(rest) - 1), rest);
	ck_assert_uint_eq(strlen(moved), strlen(good));
	check_variant(moved, "not in canonical form");
}
END_TEST

START_TEST(test_line_check_escape_spelling)
{
	/* \u00e9 and \u00E9 mean the same; only the canonical one passes. */
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	char hash[AUDIT_HASH_HEX + 1], *line = NULL, *p;
	size_t len;

	rec.sub = "jos\xc3\xa9";
	ck_assert_int_eq(audit_line_format(&line, &len, hash, &rec,
					   AUDIT_GENESIS, &err),
			 0);
	line[len - 1] = '\0';
	p = strstr(line, "\\u00E9");
	ck_assert_ptr_nonnull(p);
	p[5] = 'e';
	check_variant(line, "not in canonical form");
	free(line);
}
END_TEST

/* ---- chain over files ---- */

START_TEST(test_chain_intact)
{
	struct gg_err err;
	struct audit_chain chain;
	struct audit_line parsed;
	size_t len;
	char *buf;

	setup_dir();
	write_records(tpath("a.jsonl"), 5);
	ck_assert_msg(verify(tpath("a.jsonl"), &chain, &err) == 0, "%s",
		      err.msg);
	ck_assert_uint_eq(chain.records, 5);
	ck_assert(!chain.continued);
	buf = slurp(tpath("a.jsonl"), &len);
	/* The last line's hash is the chain's last hash. */
	ck_assert_int_eq(audit_line_check(&parsed, buf + line_off(buf, 5),
					  len - line_off(buf, 5) - 1, &err),
			 0);
	ck_assert_str_eq(chain.last, parsed.hash);
	ck_assert_ptr_nonnull(strstr(buf, "\"prev\":\"" AUDIT_GENESIS "\""));
	free(buf);
	teardown_dir();
}
END_TEST

/* A log whose refs carry rule, path and commit verifies; editing one of
 * them breaks the chain. */
START_TEST(test_chain_rule_fields)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_log *log = NULL;
	struct audit_chain chain;
	size_t len, i;
	char *buf, *p;

	setup_dir();
	ck_assert_msg(audit_open(&log, tpath("r.jsonl"), &err) == 0, "%s",
		      err.msg);
	for (i = 0; i < 4; i++) {
		rec.refs = i % 2 ? &known_ref : rule_refs;
		rec.nrefs = i % 2 ? 1 : 2;
		rec.decision = i % 2 ? "allow" : "deny";
		ck_assert_msg(audit_append(log, &rec, &err) == 0, "%s",
			      err.msg);
	}
	audit_close(log);
	ck_assert_msg(verify(tpath("r.jsonl"), &chain, &err) == 0, "%s",
		      err.msg);
	ck_assert_uint_eq(chain.records, 4);

	buf = slurp(tpath("r.jsonl"), &len);
	p = strstr(buf + line_off(buf, 3), "\"rule\":\"secret:github-pat\"");
	ck_assert_ptr_nonnull(p);
	memcpy(p + 8, "SECRET", 6);
	spit(tpath("r.jsonl"), buf, len);
	free(buf);
	expect_fail(tpath("r.jsonl"), "line 3: hash mismatch");
	teardown_dir();
}
END_TEST

START_TEST(test_chain_empty)
{
	struct gg_err err;
	struct audit_chain chain;

	setup_dir();
	spit(tpath("e"), "", 0);
	ck_assert_int_eq(verify(tpath("e"), &chain, &err), 0);
	ck_assert_uint_eq(chain.records, 0);
	ck_assert_str_eq(chain.last, AUDIT_GENESIS);
	teardown_dir();
}
END_TEST

START_TEST(test_chain_edit_byte)
{
	size_t len, off;
	char *buf, *p;

	setup_dir();
	write_records(tpath("a"), 5);
	buf = slurp(tpath("a"), &len);
	off = line_off(buf, 3);
	p = strstr(buf + off, "\"status\":200");
	ck_assert_ptr_nonnull(p);
	p[10] = '1'; /* 200 -> 210 */
	spit(tpath("a"), buf, len);
	expect_fail(tpath("a"), "line 3: hash mismatch (line edited)");
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_chain_edit_hash_and_prev)
{
	size_t len;
	char *buf, *p;

	setup_dir();
	write_records(tpath("a"), 4);
	buf = slurp(tpath("a"), &len);
	p = strstr(buf + line_off(buf, 2), "\"prev\":\"");
	p[8] = p[8] == 'a' ? 'b' : 'a';
	spit(tpath("a"), buf, len);
	expect_fail(tpath("a"), "line 2: hash mismatch");
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_chain_delete_line)
{
	size_t len, a, b;
	char *buf;

	setup_dir();
	write_records(tpath("a"), 5);
	buf = slurp(tpath("a"), &len);
	a = line_off(buf, 3);
	b = line_off(buf, 4);
	memmove(buf + a, buf + b, len - b);
	spit(tpath("a"), buf, len - (b - a));
	expect_fail(tpath("a"), "line 3: prev does not match line 2's hash "
				"(line deleted or reordered)");
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_chain_swap_lines)
{
	size_t len, a, b, c;
	char *buf, *out;

	setup_dir();
	write_records(tpath("a"), 5);
	buf = slurp(tpath("a"), &len);
	a = line_off(buf, 2);
	b = line_off(buf, 3);
	c = line_off(buf, 4);
	out = malloc(len);
	ck_assert_ptr_nonnull(out);
	memcpy(out, buf, a);
	memcpy(out + a, buf + b, c - b);
	memcpy(out + a + (c - b), buf + a, b - a);
	memcpy(out + c, buf + c, len - c);
	spit(tpath("a"), out, len);
	expect_fail(tpath("a"), "line 2: prev does not match line 1's hash");
	free(out);
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_chain_truncated)
{
	size_t len;
	char *buf;

	setup_dir();
	write_records(tpath("a"), 3);
	buf = slurp(tpath("a"), &len);
	spit(tpath("a"), buf, len - 10);
	expect_fail(tpath("a"), "line 3: truncated line");
	/* Only the newline missing is a truncated line too. */
	spit(tpath("a"), buf, len - 1);
	expect_fail(tpath("a"), "line 3: truncated line");
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_chain_garbage)
{
	size_t len;
	char *buf, *more;

	setup_dir();
	write_records(tpath("a"), 3);
	buf = slurp(tpath("a"), &len);
	more = malloc(len + 32);
	ck_assert_ptr_nonnull(more);
	memcpy(more, buf, len);
	memcpy(more + len, "garbage\n", 8);
	spit(tpath("a"), more, len + 8);
	expect_fail(tpath("a"), "line 4: does not parse");
	memcpy(more + len, "\n", 1);
	spit(tpath("a"), more, len + 1);
	expect_fail(tpath("a"), "line 4: does not parse");
	free(more);
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_chain_crlf)
{
	size_t len, off;
	char *buf, *out;

	setup_dir();
	write_records(tpath("a"), 3);
	buf = slurp(tpath("a"), &len);
	off = line_off(buf, 3) - 1; /* the newline ending line 2 */
	out = malloc(len + 1);
	ck_assert_ptr_nonnull(out);
	memcpy(out, buf, off);
	out[off] = '\r';
	memcpy(out + off + 1, buf + off, len - off);
	spit(tpath("a"), out, len + 1);
	expect_fail(tpath("a"), "line 2: ends with a carriage return");
	free(out);
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_chain_head_cut)
{
	struct gg_err err;
	struct audit_chain chain;
	size_t len, b;
	char *buf;

	setup_dir();
	write_records(tpath("a"), 4);
	buf = slurp(tpath("a"), &len);
	b = line_off(buf, 2);
	spit(tpath("a"), buf + b, len - b);
	/* Looks like a rotated continuation: not an error, but flagged. */
	ck_assert_int_eq(verify(tpath("a"), &chain, &err), 0);
	ck_assert(chain.continued);
	ck_assert_uint_eq(chain.records, 3);
	ck_assert_str_ne(chain.first_prev, AUDIT_GENESIS);
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_chain_missing_file)
{
	expect_fail("/nonexistent/gitgate/audit.jsonl", "cannot open");
}
END_TEST

/* ---- writer ---- */

struct worker {
	struct audit_log *log;
	int id;
	int failures;
};

#define NTHREADS 32
#define PER_THREAD 50

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct audit_record rec = known_record();
	struct gg_err err;
	char id[32];
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		gg_err_init(&err);
		snprintf(id, sizeof(id), "t%d-%d", w->id, i);
		rec.request_id = id;
		if (audit_append(w->log, &rec, &err))
			w->failures++;
	}
	return NULL;
}

START_TEST(test_writer_threads)
{
	struct gg_err err = GG_ERR_INIT;
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];
	struct audit_log *log = NULL;
	struct audit_chain chain;
	struct stat st;
	size_t len, lines = 0, i;
	char *buf;
	int t;

	setup_dir();
	ck_assert_int_eq(audit_open(&log, tpath("a"), &err), 0);
	for (t = 0; t < NTHREADS; t++) {
		w[t].log = log;
		w[t].id = t;
		w[t].failures = 0;
		ck_assert_int_eq(pthread_create(&th[t], NULL, worker_run, &w[t]),
				 0);
	}
	for (t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		ck_assert_int_eq(w[t].failures, 0);
	}
	ck_assert(audit_healthy(log));
	audit_close(log);
	ck_assert_msg(verify(tpath("a"), &chain, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(chain.records, NTHREADS * PER_THREAD);
	buf = slurp(tpath("a"), &len);
	for (i = 0; i < len; i++)
		lines += buf[i] == '\n';
	ck_assert_uint_eq(lines, NTHREADS * PER_THREAD);
	/* Every request id appears exactly once. */
	ck_assert_ptr_nonnull(strstr(buf, "\"request_id\":\"t31-49\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"request_id\":\"t0-0\""));
	ck_assert_int_eq(stat(tpath("a"), &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_writer_restart_continues)
{
	struct gg_err err;
	struct audit_chain chain;

	setup_dir();
	write_records(tpath("a"), 2);
	write_records(tpath("a"), 3); /* a new process, same file */
	ck_assert_msg(verify(tpath("a"), &chain, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(chain.records, 5);
	ck_assert(!chain.continued);
	teardown_dir();
}
END_TEST

/* Every line names its writer; the name is hashed like any field, so
 * changing it breaks the chain. */
START_TEST(test_writer_instance)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_chain chain;
	struct audit_log *log = NULL;
	char host[GG_MAX_INSTANCE_LEN + 1] = "";
	size_t len;
	char *buf, *at;

	setup_dir();
	setenv("GITGATE_INSTANCE", "gg-b", 1);
	write_records(tpath("a"), 2);
	buf = slurp(tpath("a"), &len);
	ck_assert_ptr_nonnull(strstr(buf, "\"instance\":\"gg-b\""));
	ck_assert_msg(verify(tpath("a"), &chain, &err) == 0, "%s", err.msg);
	at = strstr(buf, "gg-b");
	at[3] = 'c';
	spit(tpath("a"), buf, len);
	free(buf);
	expect_fail(tpath("a"), "line 1: hash mismatch");

	/* default: the host name */
	unsetenv("GITGATE_INSTANCE");
	ck_assert_int_eq(gethostname(host, sizeof(host) - 1), 0);
	ck_assert_msg(audit_open(&log, tpath("b"), &err) == 0, "%s", err.msg);
	ck_assert_str_eq(audit_instance(log), host);
	audit_close(log);

	/* refused names */
	setenv("GITGATE_INSTANCE", "two words", 1);
	ck_assert_int_eq(audit_open(&log, tpath("c"), &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "GITGATE_INSTANCE: want 1 to 253 "
				  "printable characters without spaces");
	setenv("GITGATE_INSTANCE", "", 1);
	gg_err_init(&err);
	ck_assert_int_eq(audit_open(&log, tpath("c"), &err), GG_EINVAL);
	unsetenv("GITGATE_INSTANCE");
	teardown_dir();
}
END_TEST

static void expect_open_fails(const char *path, const char *msg)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_log *log = NULL;

	ck_assert_int_ne(audit_open(&log, path, &err), 0);
	ck_assert_ptr_null(log);
	ck_assert_msg(strstr(err.msg, msg), "got '%s', want '%s'", err.msg,
		      msg);
}

START_TEST(test_writer_open_refuses_bad_tail)
{
	size_t len;
	char *buf;

	setup_dir();
	write_records(tpath("a"), 3);
	buf = slurp(tpath("a"), &len);
	spit(tpath("a"), buf, len - 5);
	expect_open_fails(tpath("a"), "last line is truncated");
	buf[len - 20] = buf[len - 20] == '0' ? '1' : '0';
	spit(tpath("a"), buf, len);
	expect_open_fails(tpath("a"), "last line:");
	spit(tpath("a"), "not json\n", 9);
	expect_open_fails(tpath("a"), "does not parse");
	expect_open_fails("/nonexistent/dir/audit.jsonl", "open");
	free(buf);
	teardown_dir();
}
END_TEST

START_TEST(test_writer_rotation)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_log *log = NULL;
	struct audit_chain chain;
	char old_last[AUDIT_HASH_HEX + 1];

	setup_dir();
	ck_assert_int_eq(audit_open(&log, tpath("a"), &err), 0);
	ck_assert_int_eq(audit_append(log, &rec, &err), 0);
	ck_assert_int_eq(audit_append(log, &rec, &err), 0);
	ck_assert_int_eq(append_n(log, 1), 0);
	ck_assert_int_eq(rename(tpath("a"), tpath("a.1")), 0);
	ck_assert_int_eq(audit_reopen(log, &err), 0);
	ck_assert_int_eq(audit_append(log, &rec, &err), 0);
	ck_assert_int_eq(audit_append(log, &rec, &err), 0);
	/* A reopen without a rename keeps the same file. */
	ck_assert_int_eq(audit_reopen(log, &err), 0);
	ck_assert_int_eq(audit_append(log, &rec, &err), 0);
	audit_close(log);

	ck_assert_int_eq(verify(tpath("a.1"), &chain, &err), 0);
	ck_assert_uint_eq(chain.records, 3);
	memcpy(old_last, chain.last, sizeof(old_last));
	ck_assert_int_eq(verify(tpath("a"), &chain, &err), 0);
	ck_assert_uint_eq(chain.records, 3);
	ck_assert(chain.continued);
	ck_assert_str_eq(chain.first_prev, old_last);

	/* Both, in order: one chain of 6. */
	audit_chain_init(&chain);
	ck_assert_int_eq(audit_verify_file(&chain, tpath("a.1"), &err), 0);
	ck_assert_int_eq(audit_verify_file(&chain, tpath("a"), &err), 0);
	ck_assert_uint_eq(chain.records, 6);
	ck_assert(!chain.continued);
	/* Out of order: the link between the files is broken. */
	audit_chain_init(&chain);
	ck_assert_int_eq(audit_verify_file(&chain, tpath("a"), &err), 0);
	ck_assert_int_ne(audit_verify_file(&chain, tpath("a.1"), &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "line 1: prev does not match "
					      "the last hash of the previous "
					      "file"));
	teardown_dir();
}
END_TEST

START_TEST(test_writer_reopen_refuses_foreign)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_log *log = NULL;
	struct audit_chain chain;

	setup_dir();
	ck_assert_int_eq(audit_open(&log, tpath("a"), &err), 0);
	ck_assert_int_eq(audit_append(log, &rec, &err), 0);
	ck_assert_int_eq(rename(tpath("a"), tpath("a.1")), 0);
	write_records(tpath("a"), 2); /* an unrelated chain at the path */
	ck_assert_int_eq(audit_reopen(log, &err), GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "another chain"));
	gg_err_init(&err);
	ck_assert_int_eq(audit_append(log, &rec, &err), 0);
	audit_close(log);
	ck_assert_int_eq(verify(tpath("a.1"), &chain, &err), 0);
	ck_assert_uint_eq(chain.records, 2);
	teardown_dir();
}
END_TEST

START_TEST(test_writer_one_writer_per_file)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_log *log = NULL, *second = NULL;

	setup_dir();
	ck_assert_int_eq(audit_open(&log, tpath("a"), &err), 0);
	ck_assert_int_eq(audit_open(&second, tpath("a"), &err), GG_EEXISTS);
	ck_assert_ptr_nonnull(strstr(err.msg, "in use by another writer"));
	ck_assert_ptr_null(second);
	audit_close(log);
	gg_err_init(&err);
	ck_assert_int_eq(audit_open(&second, tpath("a"), &err), 0);
	audit_close(second);
	teardown_dir();
}
END_TEST

START_TEST(test_writer_dev_full)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_log *log = NULL;

	if (access("/dev/full", W_OK) != 0)
		return;
	ck_assert_msg(audit_open(&log, "/dev/full", &err) == 0, "%s", err.msg);
	ck_assert(audit_healthy(log));
	ck_assert_int_eq(audit_append(log, &rec, &err), GG_EIO);
	ck_assert_msg(strstr(err.msg, "write") &&
			      strstr(err.msg, strerror(ENOSPC)),
		      "%s", err.msg);
	ck_assert(!audit_healthy(log));
	gg_err_init(&err);
	ck_assert_int_eq(audit_append(log, &rec, &err), GG_EIO);
	ck_assert(!audit_healthy(log));
	audit_close(log);
}
END_TEST

/* A file size limit makes write(2) short and then fail (EFBIG), leaving a
 * partial line: the writer must cut it, report, and recover. */
START_TEST(test_writer_partial_write_cut)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_log *log = NULL;
	struct audit_chain chain;
	struct rlimit saved, lim;
	struct stat st;
	off_t good;

	setup_dir();
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(audit_open(&log, tpath("a"), &err), 0);
	ck_assert_int_eq(audit_append(log, &rec, &err), 0);
	ck_assert_int_eq(stat(tpath("a"), &st), 0);
	good = st.st_size;
	getrlimit(RLIMIT_FSIZE, &saved);
	lim = saved;
	lim.rlim_cur = (rlim_t)good + 100; /* mid-way through line 2 */
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(audit_append(log, &rec, &err), GG_EIO);
	ck_assert_msg(strstr(err.msg, strerror(EFBIG)), "%s", err.msg);
	ck_assert(!audit_healthy(log));
	ck_assert_int_eq(stat(tpath("a"), &st), 0);
	ck_assert_int_eq(st.st_size, good); /* the partial line is gone */
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
	gg_err_init(&err);
	ck_assert_int_eq(audit_append(log, &rec, &err), 0);
	ck_assert(audit_healthy(log));
	audit_close(log);
	signal(SIGXFSZ, SIG_DFL);
	ck_assert_msg(verify(tpath("a"), &chain, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(chain.records, 2);
	teardown_dir();
}
END_TEST

/* ---- following the path (rotation or deletion without SIGHUP) ---- */

/* Deleted while open: the next line goes to a new file at the path,
 * continuing the chain, and audit_follow says what happened, once. */
START_TEST(test_follow_deleted)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_log *log = NULL;
	struct audit_chain chain;
	char old_last[AUDIT_HASH_HEX + 1];

	setup_dir();
	ck_assert_int_eq(audit_open(&log, tpath("a"), &err), 0);
	ck_assert_int_eq(append_n(log, 2), 0);
	last_hash(old_last, tpath("a"));
	ck_assert_int_eq(unlink(tpath("a")), 0);
	ck_assert_int_eq(append_n(log, 1), 0);
	/* the append followed the path already */
	ck_assert_int_eq(audit_follow(log, &err), 0);
	ck_assert_int_eq(append_n(log, 1), 0);
	audit_close(log);
	ck_assert_msg(verify(tpath("a"), &chain, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(chain.records, 2); /* none lost, none twice */
	ck_assert(chain.continued);
	ck_assert_str_eq(chain.first_prev, old_last);
	teardown_dir();
}
END_TEST

/* Deleted with its directory: no new file can be made at the path, and a
 * line written to the deleted one would be lost, so the append fails (the
 * proxy answers 503) until the path works again. */
START_TEST(test_follow_deleted_dir_fails_closed)
{
	struct audit_record rec = known_record();
	struct gg_err err = GG_ERR_INIT;
	struct audit_log *log = NULL;
	char path[600];

	setup_dir();
	ck_assert_int_eq(mkdir(tpath("sub"), 0700), 0);
	snprintf(path, sizeof(path), "%s/a", tpath("sub"));
	ck_assert_int_eq(audit_open(&log, path, &err), 0);
	ck_assert_int_eq(append_n(log, 1), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(tpath("sub")), 0);
	gg_err_init(&err);
	ck_assert_int_eq(audit_append(log, &rec, &err), GG_EIO);
	ck_assert_msg(strstr(err.msg, "was deleted and cannot be opened anew"),
		      "%s", err.msg);
	ck_assert(!audit_healthy(log));
	/* the server's periodic probe (what /readyz reports) agrees */
	gg_err_init(&err);
	ck_assert_int_eq(audit_probe(log, &err), GG_EIO);
	ck_assert_msg(strstr(err.msg, "was deleted and cannot be opened anew"),
		      "%s", err.msg);
	ck_assert(!audit_healthy(log));
	/* the directory is back: the probe makes the new file */
	ck_assert_int_eq(mkdir(tpath("sub"), 0700), 0);
	gg_err_init(&err);
	ck_assert_msg(audit_probe(log, &err) == 0, "%s", err.msg);
	ck_assert(audit_healthy(log));
	ck_assert_int_eq(append_n(log, 1), 0);
	ck_assert(audit_healthy(log));
	audit_close(log);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(tpath("sub")), 0);
	teardown_dir();
}
END_TEST

/* Renamed away, no line since: the periodic check makes the new file. */
START_TEST(test_follow_renamed)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_log *log = NULL;
	struct audit_chain chain;
	struct stat st;

	setup_dir();
	ck_assert_int_eq(audit_open(&log, tpath("a"), &err), 0);
	ck_assert_int_eq(append_n(log, 2), 0);
	ck_assert_int_eq(audit_follow(log, &err), 0);
	ck_assert_int_eq(rename(tpath("a"), tpath("a.1")), 0);
	ck_assert_int_eq(audit_follow(log, &err), 1);
	ck_assert_int_eq(stat(tpath("a"), &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(append_n(log, 3), 0);
	audit_close(log);
	audit_chain_init(&chain);
	ck_assert_int_eq(audit_verify_file(&chain, tpath("a.1"), &err), 0);
	ck_assert_int_eq(audit_verify_file(&chain, tpath("a"), &err), 0);
	ck_assert_uint_eq(chain.records, 5);
	ck_assert(!chain.continued);
	teardown_dir();
}
END_TEST

/* A file with another chain at the path is refused, like on SIGHUP: lines
 * keep going to the old file. Once that file changes (emptied), it is
 * taken over. */
START_TEST(test_follow_refused)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_log *log = NULL;
	struct audit_chain chain;

	setup_dir();
	ck_assert_int_eq(audit_open(&log, tpath("a"), &err), 0);
	ck_assert_int_eq(append_n(log, 1), 0);
	ck_assert_int_eq(rename(tpath("a"), tpath("a.1")), 0);
	write_records(tpath("a"), 2);
	ck_assert_int_eq(audit_follow(log, &err),
			 GG_EINVAL);
	ck_assert_msg(strstr(err.msg, "another chain"), "%s", err.msg);
	gg_err_init(&err);
	ck_assert_int_eq(audit_follow(log, &err),
			 GG_EINVAL); /* remembered, same message */
	ck_assert_msg(strstr(err.msg, "another chain"), "%s", err.msg);
	ck_assert_int_eq(append_n(log, 1), 0);
	ck_assert_int_eq(verify(tpath("a.1"), &chain, &err), 0);
	ck_assert_uint_eq(chain.records, 2);
	ck_assert_int_eq(truncate(tpath("a"), 0), 0);
	gg_err_init(&err);
	ck_assert_int_eq(audit_follow(log, &err), 1);
	ck_assert_int_eq(append_n(log, 1), 0);
	audit_close(log);
	audit_chain_init(&chain);
	ck_assert_int_eq(audit_verify_file(&chain, tpath("a.1"), &err), 0);
	ck_assert_int_eq(audit_verify_file(&chain, tpath("a"), &err), 0);
	ck_assert_uint_eq(chain.records, 3);
	teardown_dir();
}
END_TEST

/* Devices and pipes have no rotation: never "reopened". */
START_TEST(test_follow_not_devices)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_log *log = NULL;
	int i;

	ck_assert_int_eq(audit_open(&log, "/dev/null", &err), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(append_n(log, 1), 0);
		ck_assert_int_eq(audit_follow(log, &err),
				 0);
	}
	audit_close(log);
}
END_TEST

/* ---- room reserved for lines written at the end of a transfer ---- */

START_TEST(test_reserve_allocates)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_log *log = NULL;
	struct audit_chain chain;
	struct stat before, st;
	size_t reserved = 0;
	char reason[GG_ERR_MSG_MAX];
	bool prealloc;

	setup_dir();
	rec.refs = NULL;
	rec.nrefs = 0;
	ck_assert_int_eq(audit_open(&log, tpath("a"), &err), 0);
	ck_assert_int_eq(append_n(log, 1), 0);
	ck_assert_int_eq(stat(tpath("a"), &before), 0);
	ck_assert_int_eq(audit_reserve(log, &reserved, &rec, &err), 0);
	ck_assert_int_eq(stat(tpath("a"), &st), 0);
	ck_assert_int_eq(st.st_size, before.st_size); /* readers see nothing */
	/* Blocks past the end: the file system can preallocate (ext4, XFS,
	 * tmpfs...), and then the room is there. */
	prealloc = (off_t)st.st_blocks * 512 > (st.st_size + 4095) / 4096 * 4096;
	if (prealloc)
		ck_assert_int_ge((off_t)st.st_blocks * 512,
				 st.st_size + (off_t)reserved);
	/* The line fits whatever its counters and reason became: the worst
	 * reason is all control bytes, six bytes each once escaped. */
	memset(reason, 0x01, sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	rec.reason = reason;
	rec.bytes_in = rec.bytes_out = UINT64_MAX;
	rec.duration_ms = INT64_MIN;
	rec.status = INT32_MIN;
	ck_assert_int_eq(audit_append_reserved(log, &rec, reserved, &err), 0);
	ck_assert_int_eq(stat(tpath("a"), &st), 0);
	ck_assert_int_le(st.st_size - before.st_size, (off_t)reserved);
	ck_assert_int_eq(audit_reserve(log, &reserved, &rec, &err), 0);
	audit_unreserve(log, reserved);
	audit_close(log);
	ck_assert_int_eq(stat(tpath("a"), &st), 0);
	/* closing gives the room back */
	if (prealloc)
		ck_assert_int_lt((off_t)st.st_blocks * 512,
				 st.st_size + (off_t)reserved);
	ck_assert_msg(verify(tpath("a"), &chain, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(chain.records, 2);
	teardown_dir();
}
END_TEST

/* A device cannot promise: the reservation succeeds, the write fails. */
START_TEST(test_reserve_dev_full)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_record rec = known_record();
	struct audit_log *log = NULL;
	size_t reserved = 0;

	if (access("/dev/full", W_OK) != 0)
		return;
	ck_assert_int_eq(audit_open(&log, "/dev/full", &err), 0);
	ck_assert_int_eq(audit_reserve(log, &reserved, &rec, &err), 0);
	ck_assert_uint_gt(reserved, 0);
	ck_assert_int_eq(audit_append_reserved(log, &rec, reserved, &err),
			 GG_EIO);
	ck_assert(!audit_healthy(log));
	audit_close(log);
}
END_TEST

/* ---- reader ---- */

START_TEST(test_reader_incremental)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_reader r;
	const char *line;
	size_t len;
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	audit_reader_init(&r, fds[0]);
	ck_assert_int_eq(write(fds[1], "one\ntw", 6), 6);
	ck_assert_int_eq(audit_reader_next(&line, &len, &r, &err), 1);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(memcmp(line, "one", 3), 0);
	close(fds[1]);
	ck_assert_int_eq(audit_reader_next(&line, &len, &r, &err), 0);
	ck_assert_uint_eq(audit_reader_pending(&r), 2);
	audit_reader_release(&r);
	close(fds[0]);

	ck_assert_int_eq(pipe(fds), 0);
	audit_reader_init(&r, fds[0]);
	ck_assert_int_eq(write(fds[1], "tw", 2), 2);
	ck_assert_int_eq(write(fds[1], "o\n\nthree\n", 9), 9);
	close(fds[1]);
	ck_assert_int_eq(audit_reader_next(&line, &len, &r, &err), 1);
	ck_assert_int_eq(memcmp(line, "two", 3), 0);
	ck_assert_int_eq(audit_reader_next(&line, &len, &r, &err), 1);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(audit_reader_next(&line, &len, &r, &err), 1);
	ck_assert_uint_eq(len, 5);
	ck_assert_int_eq(audit_reader_next(&line, &len, &r, &err), 0);
	ck_assert_uint_eq(audit_reader_pending(&r), 0);
	audit_reader_release(&r);
	close(fds[0]);
}
END_TEST

START_TEST(test_reader_long_line)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_reader r;
	const char *line;
	size_t len, i;
	char *big;
	int fd;

	setup_dir();
	/* 200 KiB: grows the buffer several times, then one line. */
	big = malloc(200 * 1024 + 1);
	ck_assert_ptr_nonnull(big);
	for (i = 0; i < 200 * 1024; i++)
		big[i] = 'x';
	big[200 * 1024] = '\n';
	spit(tpath("big"), big, 200 * 1024 + 1);
	fd = open(tpath("big"), O_RDONLY);
	audit_reader_init(&r, fd);
	ck_assert_int_eq(audit_reader_next(&line, &len, &r, &err), 1);
	ck_assert_uint_eq(len, 200 * 1024);
	ck_assert_int_eq(audit_reader_next(&line, &len, &r, &err), 0);
	audit_reader_release(&r);
	close(fd);
	free(big);
	teardown_dir();
}
END_TEST

static Suite *audit_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *fmt = tcase_create("format");
	TCase *chain = tcase_create("chain");
	TCase *writer = tcase_create("writer");
	TCase *reader = tcase_create("reader");

	tcase_add_test(fmt, test_format_known_hash);
	tcase_add_test(fmt, test_format_nulls);
	tcase_add_test(fmt, test_format_rule_fields);
	tcase_add_test(fmt, test_format_time);
	tcase_add_test(fmt, test_format_refuses);
	tcase_add_test(fmt, test_redaction);
	tcase_add_test(fmt, test_redaction_keeps_context);
	tcase_add_test(fmt, test_non_utf8_and_controls);
	tcase_add_test(fmt, test_line_check);
	tcase_add_test(fmt, test_line_check_reordered_keys);
	tcase_add_test(fmt, test_line_check_escape_spelling);
	suite_add_tcase(s, fmt);

	tcase_add_test(chain, test_chain_intact);
	tcase_add_test(chain, test_chain_rule_fields);
	tcase_add_test(chain, test_chain_empty);
	tcase_add_test(chain, test_chain_edit_byte);
	tcase_add_test(chain, test_chain_edit_hash_and_prev);
	tcase_add_test(chain, test_chain_delete_line);
	tcase_add_test(chain, test_chain_swap_lines);
	tcase_add_test(chain, test_chain_truncated);
	tcase_add_test(chain, test_chain_garbage);
	tcase_add_test(chain, test_chain_crlf);
	tcase_add_test(chain, test_chain_head_cut);
	tcase_add_test(chain, test_chain_missing_file);
	suite_add_tcase(s, chain);

	tcase_add_test(writer, test_writer_threads);
	tcase_add_test(writer, test_writer_restart_continues);
	tcase_add_test(writer, test_writer_instance);
	tcase_add_test(writer, test_writer_open_refuses_bad_tail);
	tcase_add_test(writer, test_writer_rotation);
	tcase_add_test(writer, test_writer_reopen_refuses_foreign);
	tcase_add_test(writer, test_writer_one_writer_per_file);
	tcase_add_test(writer, test_writer_dev_full);
	tcase_add_test(writer, test_writer_partial_write_cut);
	tcase_add_test(writer, test_follow_deleted);
	tcase_add_test(writer, test_follow_deleted_dir_fails_closed);
	tcase_add_test(writer, test_follow_renamed);
	tcase_add_test(writer, test_follow_refused);
	tcase_add_test(writer, test_follow_not_devices);
	tcase_add_test(writer, test_reserve_allocates);
	tcase_add_test(writer, test_reserve_dev_full);
	tcase_set_timeout(writer, 120);
	suite_add_tcase(s, writer);

	tcase_add_test(reader, test_reader_incremental);
	tcase_add_test(reader, test_reader_long_line);
	suite_add_tcase(s, reader);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(audit_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

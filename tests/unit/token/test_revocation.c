/* test_revocation.c - revocation file parsing, loading and atomic append. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gitgate/core/limits.h"
#include "gitgate/token/revocation.h"

static char dir[64];
static char path[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gg-revoke-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/revoked.txt", dir);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static char *read_file(void)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static struct revocation_set *parse(const char *text)
{
	struct revocation_set *set = NULL;
	struct gg_err err = GG_ERR_INIT;

	ck_assert_msg(revocation_parse(&set, text, strlen(text), &err) == GG_OK,
		      "%s", err.msg);
	return set;
}

/* ---- parse ------------------------------------------------------------ */

START_TEST(test_parse_format)
{
	struct revocation_set *set = parse("# revoked by ops\n"
					   "\n"
					   "abc\n"
					   "  def  \n"
					   "\tghi\r\n"
					   "   # indented comment\n"
					   "abc\n"
					   "last-without-newline");

	ck_assert_uint_eq(revocation_count(set), 4);
	ck_assert(revocation_contains(set, "abc"));
	ck_assert(revocation_contains(set, "def"));
	ck_assert(revocation_contains(set, "ghi"));
	ck_assert(revocation_contains(set, "last-without-newline"));
	ck_assert(!revocation_contains(set, "ab"));
	ck_assert(!revocation_contains(set, "# revoked by ops"));
	ck_assert(!revocation_contains(set, ""));
	ck_assert(!revocation_contains(set, NULL));
	revocation_free(set);
}
END_TEST

START_TEST(test_parse_empty)
{
	struct revocation_set *set = parse("");

	ck_assert_uint_eq(revocation_count(set), 0);
	ck_assert(!revocation_contains(set, "x"));
	revocation_free(set);
	ck_assert(!revocation_contains(NULL, "x"));
	ck_assert_uint_eq(revocation_count(NULL), 0);
	revocation_free(NULL);
}
END_TEST

START_TEST(test_parse_many_sorted_lookup)
{
	char *text = malloc(10 * 5000 + 1), *p = text;
	struct revocation_set *set;
	char jti[16];
	int i;

	/* reverse order, so the sort matters */
	for (i = 4999; i >= 0; i--)
		p += snprintf(p, 11, "jti-%05d\n", i);
	set = parse(text);
	ck_assert_uint_eq(revocation_count(set), 5000);
	for (i = 0; i < 5000; i += 7) {
		snprintf(jti, sizeof(jti), "jti-%05d", i);
		ck_assert(revocation_contains(set, jti));
	}
	ck_assert(!revocation_contains(set, "jti-05000"));
	revocation_free(set);
	free(text);
}
END_TEST

/* Parse text that must succeed; check count and problems. */
static struct revocation_set *parse_n(const char *text, size_t len,
				      size_t count, size_t problems,
				      const char *first)
{
	struct revocation_set *set = NULL;
	struct gg_err err = GG_ERR_INIT;
	const char *got;

	ck_assert_msg(revocation_parse(&set, text, len, &err) == GG_OK, "%s",
		      err.msg);
	ck_assert_uint_eq(revocation_count(set), count);
	ck_assert_uint_eq(revocation_problems(set, &got), problems);
	ck_assert_str_eq(got, first);
	return set;
}

START_TEST(test_parse_problems_skip_only_their_line)
{
	struct revocation_set *set;
	struct gg_err err = GG_ERR_INIT;
	char *big;

	/* a '#' comment after the jti is fine */
	set = parse_n("JTI2\nJTI   # leaked in CI log\n", 30, 2, 0, "");
	ck_assert(revocation_contains(set, "JTI"));
	ck_assert(revocation_contains(set, "JTI2"));
	revocation_free(set);
	/* other text after it: every field counts (revoking more is the
	 * safe misreading), and the line is reported */
	set = parse_n("ok\nnot ok\n", 10, 2, 1,
		      "line 2: several fields: each is revoked (a comment "
		      "starts with '#')");
	ck_assert(revocation_contains(set, "not"));
	ck_assert(revocation_contains(set, "ok"));
	ck_assert(!revocation_contains(set, "ok\nnot"));
	revocation_free(set);
	/* a line that is no jti is skipped; the lines around it apply */
	set = parse_n("good1\n#x\nbad\x01\ngood2\ncaf\xc3\xa9\n", 26, 2, 2,
		      "line 3: jti must be printable ASCII without spaces");
	ck_assert(revocation_contains(set, "good1"));
	ck_assert(revocation_contains(set, "good2"));
	revocation_free(set);
	revocation_free(parse_n("a\0b\nc\n", 6, 1, 1, "line 1: not a jti"));
	big = malloc(GG_MAX_REVOCATIONS_LEN + 1);
	memset(big, 'a', GG_MAX_REVOCATIONS_LEN + 1);
	revocation_free(parse_n(big, GG_MAX_CLAIM_STR + 1, 0, 1,
				"line 1: not a jti"));
	revocation_free(parse_n(big, GG_MAX_CLAIM_STR, 1, 0, ""));
	/* the only whole-file failure: too long to read */
	set = (struct revocation_set *)1;
	ck_assert_int_eq(
		revocation_parse(&set, big, GG_MAX_REVOCATIONS_LEN + 1, &err),
		GG_ELIMIT);
	ck_assert_ptr_null(set);
	free(big);
	ck_assert_uint_eq(revocation_problems(NULL, NULL), 0);
}
END_TEST

START_TEST(test_parse_whole_token_line)
{
	const char *tok = "v4.public.eyJqdGkiOiJ4In0AAAA.eyJraWQiOiJrIn0";
	char line[GG_MAX_TOKEN_LEN + 64];
	struct revocation_set *set;
	size_t n = strlen(tok);

	snprintf(line, sizeof(line), "%s  # pasted from the CI log\n", tok);
	set = parse_n(line, strlen(line), 1, 0, "");
	ck_assert(revocation_contains_token(set, tok, n));
	ck_assert(!revocation_contains_token(set, tok, n - 1)); /* prefix */
	ck_assert(!revocation_contains_token(set, "v4.public.eyJqdGkiOiJ4In0AAAA"
					     ".eyJraWQiOiJrIn0X", n + 1));
	ck_assert(!revocation_contains_token(set, "v4.public.\0", 11));
	ck_assert(!revocation_contains_token(NULL, tok, n));
	revocation_free(set);
	/* longer than a jti may be, up to a token's limit */
	memcpy(line, "v4.public.", 10);
	memset(line + 10, 'A', GG_MAX_TOKEN_LEN - 10);
	set = parse_n(line, GG_MAX_TOKEN_LEN, 1, 0, "");
	ck_assert(revocation_contains_token(set, line, GG_MAX_TOKEN_LEN));
	revocation_free(set);
	line[GG_MAX_TOKEN_LEN] = 'A';
	revocation_free(parse_n(line, GG_MAX_TOKEN_LEN + 1, 0, 1,
				"line 1: token longer than 8192 bytes"));
	revocation_free(parse_n("v4.public.a\x7f\n", 13, 0, 1,
				"line 1: token must be printable ASCII"));
}
END_TEST

#define TOK "v4.public.eyJqdGkiOiJ4In0AAAA.eyJraWQiOiJrIn0"
#define HASH_MSG "'#' inside an entry: revoked the part before it (a " \
		 "comment needs a space before '#')"
#define COMMA_MSG "',' inside an entry: revoked each part between commas"
#define QUOTE_MSG "quotes around an entry: revoked it without them"
#define CHARS_MSG "jti may not contain '#', ',' or quotes"
#define BEARER_MSG "'Bearer' before the entry: what follows it is revoked"
#define FIELDS_MSG "several fields: each is revoked (a comment starts " \
		   "with '#')"

static struct revocation_set *parse_s(const char *text, size_t count,
				      size_t problems, const char *first)
{
	return parse_n(text, strlen(text), count, problems, first);
}

/* "abc#note": a comment without its space, or a jti with '#' in it (some
 * PASETO libraries allow that): both are revoked. */
START_TEST(test_parse_hash_inside_entry)
{
	struct revocation_set *set;

	set = parse_s("ok # fine\nabc#note\n", 2, 1, "line 2: " HASH_MSG);
	ck_assert(!revocation_contains(set, "abc#note"));
	ck_assert(revocation_contains(set, "abc"));
	ck_assert(revocation_contains(set, "ok"));
	ck_assert(!revocation_contains(set, "note"));
	revocation_free(set);
	set = parse_s(TOK "#leaked\n", 1, 1, "line 1: " HASH_MSG);
	ck_assert(revocation_contains_token(set, TOK, strlen(TOK)));
	revocation_free(set);
	/* as written is no jti (non-printable): the part before '#' is */
	set = parse_s("abc#\x01\n", 1, 1, "line 1: " HASH_MSG);
	ck_assert(revocation_contains(set, "abc"));
	revocation_free(set);
	/* a '#' starting the line, or a field, is a comment */
	revocation_free(parse_s("#abc#def\nabc #def#x\n", 1, 0, ""));
}
END_TEST

START_TEST(test_parse_comma_list)
{
	struct revocation_set *set;
	char *big, *p;
	int i;

	set = parse_s("a,b\n", 2, 1, "line 1: " COMMA_MSG);
	ck_assert(!revocation_contains(set, "a,b"));
	ck_assert(revocation_contains(set, "a"));
	ck_assert(revocation_contains(set, "b"));
	revocation_free(set);
	/* empty parts are nothing; a trailing comma after a token */
	set = parse_s(",a,,b,\n" TOK ",\n", 3, 2, "line 1: " COMMA_MSG);
	ck_assert(revocation_contains(set, "a"));
	ck_assert(revocation_contains(set, "b"));
	ck_assert(revocation_contains_token(set, TOK, strlen(TOK)));
	revocation_free(set);
	/* with '#' too: the part before '#' of the field and of each part */
	set = parse_s("a,b#c,d\n", 3, 1, "line 1: " HASH_MSG);
	ck_assert(revocation_contains(set, "a"));
	ck_assert(revocation_contains(set, "b"));
	ck_assert(revocation_contains(set, "d"));
	revocation_free(set);
	/* a part that is no jti is left out, the others count */
	set = parse_s("a,#b,c\x01\n", 1, 1, "line 1: " HASH_MSG);
	ck_assert(revocation_contains(set, "a"));
	revocation_free(set);
	/* a list longer than one jti may be: its parts still count */
	big = malloc(100 * 12 + 1);
	for (p = big, i = 0; i < 100; i++)
		p += sprintf(p, "jti-%06d,", i);
	set = parse_s(big, 100, 1, "line 1: " COMMA_MSG);
	ck_assert(revocation_contains(set, "jti-000000"));
	ck_assert(revocation_contains(set, "jti-000099"));
	revocation_free(set);
	free(big);
}
END_TEST

START_TEST(test_parse_quotes)
{
	struct revocation_set *set;

	set = parse_s("\"" TOK "\"\n", 1, 1, "line 1: " QUOTE_MSG);
	ck_assert(revocation_contains_token(set, TOK, strlen(TOK)));
	revocation_free(set);
	/* pasted from JSON: quotes and a trailing comma */
	set = parse_s("  \"" TOK "\",\n", 1, 1, "line 1: " COMMA_MSG);
	ck_assert(revocation_contains_token(set, TOK, strlen(TOK)));
	revocation_free(set);
	set = parse_s("'abc'\n`def`\n\"\"\n", 2, 3, "line 1: " QUOTE_MSG);
	ck_assert(revocation_contains(set, "abc"));
	ck_assert(revocation_contains(set, "def"));
	revocation_free(set);
	/* a quote inside an entry: no jti has one */
	revocation_free(parse_s("a\"b\n", 0, 1, "line 1: " CHARS_MSG));
}
END_TEST

/* An Authorization header's value pasted: the token is revoked, not the
 * word "Bearer". */
START_TEST(test_parse_bearer)
{
	struct revocation_set *set;

	set = parse_s("Bearer " TOK "\n", 1, 1, "line 1: " BEARER_MSG);
	ck_assert(revocation_contains_token(set, TOK, strlen(TOK)));
	ck_assert(!revocation_contains(set, "Bearer"));
	revocation_free(set);
	set = parse_s("x\n  bEARER\t" TOK "  # from curl -v\n", 2, 1,
		      "line 2: " BEARER_MSG);
	ck_assert(revocation_contains_token(set, TOK, strlen(TOK)));
	revocation_free(set);
	set = parse_s("Authorization: Bearer " TOK "\n", 1, 1,
		      "line 1: " BEARER_MSG);
	ck_assert(revocation_contains_token(set, TOK, strlen(TOK)));
	revocation_free(set);
	set = parse_s("Bearer jti-1\n", 1, 1, "line 1: " BEARER_MSG);
	ck_assert(revocation_contains(set, "jti-1"));
	revocation_free(set);
	/* "Bearer" alone, or before a comment, is a jti like any other */
	set = parse_s("Bearer\nbearer # odd jti\nBearerX " TOK "\n", 4, 1,
		      "line 3: " FIELDS_MSG);
	ck_assert(revocation_contains(set, "Bearer"));
	ck_assert(revocation_contains(set, "bearer"));
	ck_assert(revocation_contains(set, "BearerX"));
	revocation_free(set);
	/* followed by something that is no token: nothing to revoke */
	revocation_free(parse_s("Bearer a\x01\n", 0, 1,
				"line 1: jti must be printable ASCII without "
				"spaces"));
}
END_TEST

START_TEST(test_parse_several_fields)
{
	struct revocation_set *set;

	set = parse_s("j1 leaked in CI # 2024-05-01\n", 4, 1,
		      "line 1: " FIELDS_MSG);
	ck_assert(revocation_contains(set, "j1"));
	ck_assert(revocation_contains(set, "CI"));
	ck_assert(!revocation_contains(set, "2024-05-01"));
	revocation_free(set);
	set = parse_s("j1\t" TOK " j\x01 j2#x\n", 3, 1, "line 1: " FIELDS_MSG);
	ck_assert(revocation_contains_token(set, TOK, strlen(TOK)));
	ck_assert(revocation_contains(set, "j2"));
	revocation_free(set);
	/* nothing on the line is an entry: skipped, with the first reason */
	revocation_free(parse_s("\x01,\x02 caf\xc3\xa9 #x\n", 0, 1,
				"line 1: jti must be printable ASCII without "
				"spaces"));
}
END_TEST

/* The file is capped; each byte adds at most a few entries. */
START_TEST(test_parse_worst_case_bounded)
{
	size_t len = GG_MAX_REVOCATIONS_LEN, i;
	char *text = malloc(len);
	struct revocation_set *set;

	for (i = 0; i < len; i++)
		text[i] = "a,\"b#,"[i % 6];
	set = parse_n(text, len, 2, 1, "line 1: " HASH_MSG);
	ck_assert(revocation_contains(set, "a"));
	ck_assert(revocation_contains(set, "b"));
	revocation_free(set);
	/* the same, one candidate per line */
	for (i = 0; i < len; i++)
		text[i] = "ab\n"[i % 3];
	revocation_free(parse_n(text, len, 2, 0, "")); /* "ab", "a" */
	free(text);
}
END_TEST

START_TEST(test_merge)
{
	struct revocation_set *a = parse_s("b\nd\nf\nx y\n", 5, 1,
					   "line 4: " FIELDS_MSG);
	struct revocation_set *b = parse("a\nd\ng\n");
	struct revocation_set *none = parse("");
	const char *first;

	ck_assert_int_eq(revocation_merge(a, b, NULL), GG_OK);
	ck_assert_uint_eq(revocation_count(a), 7);
	ck_assert(revocation_contains(a, "a"));
	ck_assert(revocation_contains(a, "b"));
	ck_assert(revocation_contains(a, "d"));
	ck_assert(revocation_contains(a, "g"));
	ck_assert(revocation_contains(a, "y"));
	ck_assert(!revocation_contains(a, "c"));
	/* a keeps its own problems */
	ck_assert_uint_eq(revocation_problems(a, &first), 1);
	ck_assert_str_eq(first, "line 4: " FIELDS_MSG);
	ck_assert_int_eq(revocation_merge(a, NULL, NULL), GG_OK);
	ck_assert_int_eq(revocation_merge(a, none, NULL), GG_OK);
	ck_assert_uint_eq(revocation_count(a), 7);
	/* into an empty set; b stays as it was */
	ck_assert_int_eq(revocation_merge(none, b, NULL), GG_OK);
	ck_assert_uint_eq(revocation_count(none), 3);
	ck_assert(revocation_contains(none, "g"));
	ck_assert_uint_eq(revocation_count(b), 3);
	revocation_free(a);
	revocation_free(b);
	revocation_free(none);
}
END_TEST

START_TEST(test_check_jti)
{
	ck_assert_int_eq(revocation_check_jti("Ab-_9.~!", NULL), GG_OK);
	ck_assert_int_eq(revocation_check_jti("", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("#x", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("a b", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("a\n", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("\x7f", NULL), GG_EINVAL);
	/* the file reads these as comment, separator and quotes: a jti with
	 * one could not be revoked exactly */
	ck_assert_int_eq(revocation_check_jti("team#1", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("a,b", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("a\"b", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("'a", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("a`", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("Zm9v+/=", NULL), GG_OK);
}
END_TEST

/* ---- load ------------------------------------------------------------- */

START_TEST(test_load_missing_is_empty)
{
	struct revocation_set *set;

	ck_assert_int_eq(revocation_load(&set, path, NULL), GG_OK);
	ck_assert_uint_eq(revocation_count(set), 0);
	revocation_free(set);
}
END_TEST

START_TEST(test_load)
{
	struct revocation_set *set;
	struct gg_err err = GG_ERR_INIT;

	write_file("x1\nx2\n");
	ck_assert_int_eq(revocation_load(&set, path, NULL), GG_OK);
	ck_assert_uint_eq(revocation_count(set), 2);
	revocation_free(set);
	write_file("x1\nx\x01\ny # z\n");
	ck_assert_int_eq(revocation_load(&set, path, &err), GG_OK);
	ck_assert_uint_eq(revocation_count(set), 2);
	ck_assert_uint_eq(revocation_problems(set, NULL), 1);
	revocation_free(set);
	ck_assert_int_eq(revocation_load(&set, dir, &err), GG_EIO);
}
END_TEST

/* A FIFO would block open() until a writer came, and with it the proxy's
 * polling thread: it is refused at once instead. */
START_TEST(test_load_fifo_refused_without_blocking)
{
	struct revocation_set *set = NULL;
	struct gg_err err = GG_ERR_INIT;
	char want[160];

	ck_assert_int_eq(mkfifo(path, 0600), 0);
	alarm(5); /* a hang fails the test instead of the suite's timeout */
	ck_assert_int_eq(revocation_load(&set, path, &err), GG_EINVAL);
	alarm(0);
	ck_assert_ptr_null(set);
	snprintf(want, sizeof(want), "%s: not a regular file", path);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

/* ---- append ----------------------------------------------------------- */

START_TEST(test_append_creates_and_dedups)
{
	const char *first[] = {"a1", "a2", "a1"};
	const char *again[] = {"a2", "a3"};
	struct revocation_set *set;
	struct stat st;

	ck_assert_int_eq(revocation_append(NULL, path, first, 3, NULL), GG_OK);
	ck_assert_str_eq(read_file(), "a1\na2\n");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0644);
	ck_assert_int_eq(revocation_append(NULL, path, again, 2, NULL), GG_OK);
	ck_assert_str_eq(read_file(), "a1\na2\na3\n");
	/* nothing new: file untouched */
	ck_assert_int_eq(revocation_append(NULL, path, again, 2, NULL), GG_OK);
	ck_assert_str_eq(read_file(), "a1\na2\na3\n");
	ck_assert_int_eq(revocation_load(&set, path, NULL), GG_OK);
	ck_assert_uint_eq(revocation_count(set), 3);
	revocation_free(set);
}
END_TEST

START_TEST(test_append_keeps_comments_and_mode)
{
	const char *jtis[] = {"new"};

	write_file("# hand-written\nold"); /* no final newline */
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(revocation_append(NULL, path, jtis, 1, NULL), GG_OK);
	ck_assert_str_eq(read_file(), "# hand-written\nold\nnew\n");
	{
		struct stat st;

		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_uint_eq(st.st_mode & 0777, 0640);
	}
}
END_TEST

START_TEST(test_append_refuses_bad_input)
{
	const char *bad[] = {"ok", "not ok"};
	struct gg_err err = GG_ERR_INIT;
	char missing[160];

	ck_assert_int_eq(revocation_append(NULL, path, bad, 2, &err), GG_EINVAL);
	ck_assert(access(path, F_OK) != 0); /* nothing written */
	/* a line the parser does not understand does not block a revocation
	 * and is kept as it is */
	write_file("bad\x01line\n");
	gg_err_init(&err);
	ck_assert_int_eq(revocation_append(NULL, path, bad, 1, &err), GG_OK);
	ck_assert_str_eq(read_file(), "bad\x01line\nok\n");
	snprintf(missing, sizeof(missing), "%s/no/such/dir/r.txt", dir);
	gg_err_init(&err);
	ck_assert_int_eq(revocation_append(NULL, missing, bad, 1, &err), GG_EIO);
}
END_TEST

/* `revoke abc` writes "abc" although "abc#note" revokes it too: once that
 * line is fixed or removed, "abc" must still be there. */
START_TEST(test_append_compares_with_wellformed_lines_only)
{
	const char *jtis[] = {"abc", "ok"};
	struct revocation_set *set = NULL;
	struct gg_err err = GG_ERR_INIT;
	const char *first;

	write_file("abc#note\nok\n");
	ck_assert_int_eq(revocation_append(&set, path, jtis, 2, &err), GG_OK);
	ck_assert_str_eq(read_file(), "abc#note\nok\nabc\n");
	/* out: the file as the proxy reads it now */
	ck_assert_uint_eq(revocation_count(set), 2);
	ck_assert(revocation_contains(set, "abc"));
	ck_assert_uint_eq(revocation_problems(set, &first), 1);
	ck_assert_str_eq(first, "line 1: " HASH_MSG);
	revocation_free(set);
	/* nothing new: file untouched, out still filled */
	ck_assert_int_eq(revocation_append(&set, path, jtis, 2, &err), GG_OK);
	ck_assert_str_eq(read_file(), "abc#note\nok\nabc\n");
	ck_assert_uint_eq(revocation_count(set), 2);
	ck_assert_uint_eq(revocation_problems(set, NULL), 1);
	revocation_free(set);
	/* a new file: out holds just the new jtis */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(revocation_append(&set, path, jtis, 1, &err), GG_OK);
	ck_assert_uint_eq(revocation_count(set), 1);
	ck_assert_uint_eq(revocation_problems(set, NULL), 0);
	revocation_free(set);
}
END_TEST

/* A file the proxy could not read (too long) would revoke nothing. */
START_TEST(test_append_refuses_to_outgrow_the_cap)
{
	const char *jtis[] = {"abc"};
	struct revocation_set *set = (struct revocation_set *)1;
	struct gg_err err = GG_ERR_INIT;
	size_t len = GG_MAX_REVOCATIONS_LEN - 4;
	char *text = malloc(len + 1), msg[256];
	FILE *f;

	memset(text, '#', len);
	text[len] = '\0';
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	/* "\n" + "abc\n" is one byte too many */
	ck_assert_int_eq(revocation_append(&set, path, jtis, 1, &err),
			 GG_ELIMIT);
	ck_assert_ptr_null(set);
	snprintf(msg, sizeof(msg), "%s: would be longer than %d bytes", path,
		 GG_MAX_REVOCATIONS_LEN);
	ck_assert_str_eq(err.msg, msg);
	/* exactly the cap is fine */
	f = fopen(path, "w");
	ck_assert_uint_eq(fwrite(text, 1, len - 1, f), len - 1);
	fclose(f);
	ck_assert_int_eq(revocation_append(NULL, path, jtis, 1, NULL), GG_OK);
	ck_assert_int_eq(revocation_load(&set, path, NULL), GG_OK);
	ck_assert(revocation_contains(set, "abc"));
	revocation_free(set);
	free(text);
}
END_TEST

/* Forked writers racing: the lock + rename must not lose any entry. */
START_TEST(test_append_concurrent)
{
	enum { WRITERS = 8, EACH = 25 };
	struct revocation_set *set;
	char jti[32];
	const char *one[1] = {jti};
	pid_t pids[WRITERS];
	int i, j, status;

	for (i = 0; i < WRITERS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			for (j = 0; j < EACH; j++) {
				snprintf(jti, sizeof(jti), "w%d-%d", i, j);
				if (revocation_append(NULL, path, one, 1, NULL))
					_exit(1);
			}
			_exit(0);
		}
	}
	for (i = 0; i < WRITERS; i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ck_assert_int_eq(revocation_load(&set, path, NULL), GG_OK);
	ck_assert_uint_eq(revocation_count(set), WRITERS * EACH);
	for (i = 0; i < WRITERS; i++)
		for (j = 0; j < EACH; j++) {
			snprintf(jti, sizeof(jti), "w%d-%d", i, j);
			ck_assert(revocation_contains(set, jti));
		}
	revocation_free(set);
}
END_TEST

static Suite *revocation_suite(void)
{
	Suite *s = suite_create("revocation");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_parse_format);
	tcase_add_test(tc, test_parse_empty);
	tcase_add_test(tc, test_parse_many_sorted_lookup);
	tcase_add_test(tc, test_parse_problems_skip_only_their_line);
	tcase_add_test(tc, test_parse_whole_token_line);
	tcase_add_test(tc, test_parse_hash_inside_entry);
	tcase_add_test(tc, test_parse_comma_list);
	tcase_add_test(tc, test_parse_quotes);
	tcase_add_test(tc, test_parse_bearer);
	tcase_add_test(tc, test_parse_several_fields);
	tcase_add_test(tc, test_parse_worst_case_bounded);
	tcase_add_test(tc, test_merge);
	tcase_add_test(tc, test_check_jti);
	tcase_add_test(tc, test_load_missing_is_empty);
	tcase_add_test(tc, test_load);
	tcase_add_test(tc, test_load_fifo_refused_without_blocking);
	tcase_add_test(tc, test_append_creates_and_dedups);
	tcase_add_test(tc, test_append_keeps_comments_and_mode);
	tcase_add_test(tc, test_append_refuses_bad_input);
	tcase_add_test(tc, test_append_compares_with_wellformed_lines_only);
	tcase_add_test(tc, test_append_refuses_to_outgrow_the_cap);
	tcase_add_test(tc, test_append_concurrent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(revocation_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

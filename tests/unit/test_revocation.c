/* test_revocation.c - revocation file parsing, loading and atomic append. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gitgate/limits.h"
#include "gitgate/revocation.h"

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
	/* other text after it: the jti still counts (revoking more is the
	 * safe misreading), and the line is reported */
	set = parse_n("ok\nnot ok\n", 10, 2, 1,
		      "line 2: only the first field is read (a comment "
		      "starts with '#')");
	ck_assert(revocation_contains(set, "not"));
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

START_TEST(test_check_jti)
{
	ck_assert_int_eq(revocation_check_jti("Ab-_9.~!", NULL), GG_OK);
	ck_assert_int_eq(revocation_check_jti("", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("#x", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("a b", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("a\n", NULL), GG_EINVAL);
	ck_assert_int_eq(revocation_check_jti("\x7f", NULL), GG_EINVAL);
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

/* ---- append ----------------------------------------------------------- */

START_TEST(test_append_creates_and_dedups)
{
	const char *first[] = {"a1", "a2", "a1"};
	const char *again[] = {"a2", "a3"};
	struct revocation_set *set;
	struct stat st;

	ck_assert_int_eq(revocation_append(path, first, 3, NULL), GG_OK);
	ck_assert_str_eq(read_file(), "a1\na2\n");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0644);
	ck_assert_int_eq(revocation_append(path, again, 2, NULL), GG_OK);
	ck_assert_str_eq(read_file(), "a1\na2\na3\n");
	/* nothing new: file untouched */
	ck_assert_int_eq(revocation_append(path, again, 2, NULL), GG_OK);
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
	ck_assert_int_eq(revocation_append(path, jtis, 1, NULL), GG_OK);
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

	ck_assert_int_eq(revocation_append(path, bad, 2, &err), GG_EINVAL);
	ck_assert(access(path, F_OK) != 0); /* nothing written */
	/* a line the parser does not understand does not block a revocation
	 * and is kept as it is */
	write_file("bad\x01line\n");
	gg_err_init(&err);
	ck_assert_int_eq(revocation_append(path, bad, 1, &err), GG_OK);
	ck_assert_str_eq(read_file(), "bad\x01line\nok\n");
	snprintf(missing, sizeof(missing), "%s/no/such/dir/r.txt", dir);
	gg_err_init(&err);
	ck_assert_int_eq(revocation_append(missing, bad, 1, &err), GG_EIO);
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
				if (revocation_append(path, one, 1, NULL))
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
	tcase_add_test(tc, test_check_jti);
	tcase_add_test(tc, test_load_missing_is_empty);
	tcase_add_test(tc, test_load);
	tcase_add_test(tc, test_append_creates_and_dedups);
	tcase_add_test(tc, test_append_keeps_comments_and_mode);
	tcase_add_test(tc, test_append_refuses_bad_input);
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

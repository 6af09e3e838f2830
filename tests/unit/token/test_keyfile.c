/* test_keyfile.c - key generation, permissions, loading. */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/token/keyfile.h"
#include "gitgate/core/limits.h"
#include "gitgate/token/paseto.h"

static char dir[64];
static char keydir[96], spath[128], ppath[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gg-keyfile-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(keydir, sizeof(keydir), "%s/keys", dir);
	snprintf(spath, sizeof(spath), "%s/signing.key", keydir);
	snprintf(ppath, sizeof(ppath), "%s/verify.pub", keydir);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void put(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static char *slurp(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

START_TEST(test_generate_modes_and_contents)
{
	mode_t old = umask(_i ? 0077 : 0);
	struct gg_err err = GG_ERR_INIT;
	char *text;

	ck_assert_int_eq(keyfile_generate(keydir, &err), GG_OK);
	umask(old);
	ck_assert_uint_eq(mode_of(keydir), 0700);
	ck_assert_uint_eq(mode_of(spath), 0600);
	ck_assert_uint_eq(mode_of(ppath), 0644);
	text = slurp(spath);
	ck_assert_uint_eq(strlen(text), 97);
	ck_assert(!strncmp(text, "k4.secret.", 10) && text[96] == '\n');
	text = slurp(ppath);
	ck_assert_uint_eq(strlen(text), 54);
	ck_assert(!strncmp(text, "k4.public.", 10) && text[53] == '\n');
}
END_TEST

START_TEST(test_generate_in_existing_dir)
{
	ck_assert_int_eq(mkdir(keydir, 0755), 0);
	ck_assert_int_eq(keyfile_generate(keydir, NULL), GG_OK);
	ck_assert_uint_eq(mode_of(keydir), 0755); /* not our directory */
}
END_TEST

START_TEST(test_generate_refuses_overwrite)
{
	struct gg_err err = GG_ERR_INIT;
	char before[256], want[256];

	ck_assert_int_eq(keyfile_generate(keydir, NULL), GG_OK);
	snprintf(before, sizeof(before), "%s", slurp(spath));
	ck_assert_int_eq(keyfile_generate(keydir, &err), GG_EEXISTS);
	snprintf(want, sizeof(want), "%s exists (refusing to overwrite)",
		 spath);
	ck_assert_str_eq(err.msg, want);
	ck_assert_str_eq(slurp(spath), before);
}
END_TEST

/* Only verify.pub exists: refuse, and leave no stray signing.key. */
START_TEST(test_generate_refuses_half_pair)
{
	struct gg_err err = GG_ERR_INIT;
	char want[256];

	ck_assert_int_eq(mkdir(keydir, 0700), 0);
	put(ppath, "keep me\n", 0644);
	ck_assert_int_eq(keyfile_generate(keydir, &err), GG_EEXISTS);
	snprintf(want, sizeof(want), "%s exists (refusing to overwrite)",
		 ppath);
	ck_assert_str_eq(err.msg, want);
	ck_assert(access(spath, F_OK) != 0);
	ck_assert_str_eq(slurp(ppath), "keep me\n");
}
END_TEST

START_TEST(test_generate_not_a_dir)
{
	struct gg_err err = GG_ERR_INIT;

	put(keydir, "", 0644);
	ck_assert_int_eq(keyfile_generate(keydir, &err), GG_EINVAL);
	ck_assert(strstr(err.msg, "not a directory") != NULL);
}
END_TEST

START_TEST(test_load_pair_and_sign)
{
	struct keyfile_secret *sec;
	struct token_key pub;
	unsigned char sig[64];
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(keyfile_generate(keydir, NULL), GG_OK);
	ck_assert_int_eq(keyfile_load_secret(&sec, spath, &err), GG_OK);
	ck_assert_int_eq(keyfile_load_public(&pub, ppath, &err), GG_OK);
	ck_assert_str_eq(sec->pid, pub.pid);
	ck_assert_uint_eq(strlen(pub.pid), 51);
	ck_assert(memcmp(sec->sk + 32, pub.pk, 32) == 0);
	crypto_sign_detached(sig, NULL, (const unsigned char *)"m", 1, sec->sk);
	ck_assert_int_eq(crypto_sign_verify_detached(
				 sig, (const unsigned char *)"m", 1, pub.pk),
			 0);
	keyfile_secret_free(sec);
	keyfile_secret_free(NULL);
}
END_TEST

/* 0400 is fine; any group/other bit is refused with the exact message. */
START_TEST(test_secret_permissions)
{
	static const mode_t modes[] = {0644, 0640, 0604, 0660, 0602, 0610};
	struct keyfile_secret *sec;
	struct gg_err err;
	char want[256];
	size_t i;

	ck_assert_int_eq(keyfile_generate(keydir, NULL), GG_OK);
	ck_assert_int_eq(chmod(spath, 0400), 0);
	ck_assert_int_eq(keyfile_load_secret(&sec, spath, NULL), GG_OK);
	keyfile_secret_free(sec);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		ck_assert_int_eq(chmod(spath, modes[i]), 0);
		gg_err_init(&err);
		ck_assert_int_eq(keyfile_load_secret(&sec, spath, &err),
				 GG_EINVAL);
		ck_assert_ptr_null(sec);
		snprintf(want, sizeof(want),
			 "%s: permissions %04o are too open (want 0600)", spath,
			 (unsigned)modes[i]);
		ck_assert_str_eq(err.msg, want);
	}
}
END_TEST

START_TEST(test_secret_bad_contents)
{
	struct keyfile_secret *sec;
	struct gg_err err = GG_ERR_INIT;
	char want[256], big[GG_MAX_KEYFILE_LEN + 2];

	ck_assert_int_eq(mkdir(keydir, 0700), 0);
	put(spath, "k4.local.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8\n",
	    0600);
	ck_assert_int_eq(keyfile_load_secret(&sec, spath, &err), GG_EINVAL);
	snprintf(want, sizeof(want), "%s: not a k4.secret key", spath);
	ck_assert_str_eq(err.msg, want);
	put(spath, "", 0600);
	gg_err_init(&err);
	ck_assert_int_eq(keyfile_load_secret(&sec, spath, &err), GG_EINVAL);
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put(spath, big, 0600);
	gg_err_init(&err);
	ck_assert_int_eq(keyfile_load_secret(&sec, spath, &err), GG_ELIMIT);
	gg_err_init(&err);
	ck_assert_int_eq(keyfile_load_secret(&sec, keydir, &err), GG_EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file", keydir);
	ck_assert_str_eq(err.msg, want);
	gg_err_init(&err);
	ck_assert_int_eq(keyfile_load_secret(&sec, ppath, &err), GG_EIO);
	snprintf(want, sizeof(want), "%s: No such file or directory", ppath);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

/* Vector k4.secret-2 with CRLF line ending: whitespace at the end is
 * tolerated (editors add it), anything else is not. */
START_TEST(test_secret_vector_crlf)
{
	struct keyfile_secret *sec;
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(mkdir(keydir, 0700), 0);
	put(spath,
	    "k4.secret.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8c5WpIyC_5kWKh"
	    "S8VEYSZ05dYfuTF-ZdQFV4D9vLTcNQ\r\n",
	    0600);
	ck_assert_int_eq(keyfile_load_secret(&sec, spath, &err), GG_OK);
	ck_assert_uint_eq(sec->sk[0], 0x70);
	keyfile_secret_free(sec);
	put(spath,
	    " k4.secret.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8c5WpIyC_5kWK"
	    "hS8VEYSZ05dYfuTF-ZdQFV4D9vLTcNQ\n",
	    0600);
	ck_assert_int_eq(keyfile_load_secret(&sec, spath, &err), GG_EINVAL);
}
END_TEST

START_TEST(test_public_bad_contents)
{
	struct token_key pub;
	struct gg_err err = GG_ERR_INIT;
	char want[256];

	ck_assert_int_eq(mkdir(keydir, 0700), 0);
	put(ppath, "k4.secret-ish\n", 0644);
	ck_assert_int_eq(keyfile_load_public(&pub, ppath, &err), GG_EINVAL);
	snprintf(want, sizeof(want), "%s: not a k4.public key", ppath);
	ck_assert_str_eq(err.msg, want);
	put(ppath, "k4.public.AAAA\n", 0644);
	gg_err_init(&err);
	ck_assert_int_eq(keyfile_load_public(&pub, ppath, &err), GG_EINVAL);
	snprintf(want, sizeof(want), "%s: k4.public key has the wrong length",
		 ppath);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

/* keygen --out /etc/gitgate/keys on a fresh host: parents are made too,
 * each 0700 whatever the umask; a parent that exists keeps its mode. */
START_TEST(test_generate_creates_parents)
{
	mode_t old = umask(_i ? 0277 : 022);
	struct gg_err err = GG_ERR_INIT;
	char a[96], ab[128], deep[160], sp[200];

	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(ab, sizeof(ab), "%s/a/b", dir);
	snprintf(deep, sizeof(deep), "%s/a/b//keys/", dir);
	snprintf(sp, sizeof(sp), "%s/a/b/keys/signing.key", dir);
	ck_assert_int_eq(chmod(dir, 0751), 0);
	ck_assert_int_eq(keyfile_generate(deep, &err), GG_OK);
	umask(old);
	ck_assert_str_eq(err.msg, "");
	ck_assert_uint_eq(mode_of(dir), 0751);
	ck_assert_uint_eq(mode_of(a), 0700);
	ck_assert_uint_eq(mode_of(ab), 0700);
	ck_assert_uint_eq(mode_of(sp), 0600);
	ck_assert(!strncmp(slurp(sp), "k4.secret.", 10));
	/* Everything exists now: still no overwrite. */
	ck_assert_int_eq(keyfile_generate(deep, &err), GG_EEXISTS);
}
END_TEST

START_TEST(test_generate_parent_not_a_dir)
{
	struct gg_err err = GG_ERR_INIT;
	char file[96], below[128], want[256];

	snprintf(file, sizeof(file), "%s/file", dir);
	snprintf(below, sizeof(below), "%s/file/keys", dir);
	put(file, "", 0644);
	ck_assert_int_eq(keyfile_generate(below, &err), GG_EINVAL);
	snprintf(want, sizeof(want), "%s: not a directory", file);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

/* A FIFO would block open() until a writer appears: refused at once. */
START_TEST(test_load_fifo_refused)
{
	struct keyfile_secret *sec = (struct keyfile_secret *)1;
	struct token_key pub;
	struct gg_err err = GG_ERR_INIT;
	char fifo[96], want[256];

	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	snprintf(want, sizeof(want), "%s: not a regular file", fifo);
	alarm(3); /* a regression hangs: fail fast instead */
	ck_assert_int_eq(keyfile_load_secret(&sec, fifo, &err), GG_EINVAL);
	ck_assert_ptr_null(sec);
	ck_assert_str_eq(err.msg, want);
	gg_err_init(&err);
	ck_assert_int_eq(keyfile_load_public(&pub, fifo, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, want);
	gg_err_init(&err);
	ck_assert_int_eq(keyfile_load_public(&pub, "/dev/null", &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, "/dev/null: not a regular file");
	alarm(0);
}
END_TEST

/* verify.pub passed where signing.key belongs: say what it is, whatever
 * its mode (0644 is verify.pub's normal mode, not the problem). */
START_TEST(test_secret_given_public_key)
{
	static const mode_t modes[] = {0644, 0600};
	struct keyfile_secret *sec;
	struct gg_err err;
	char want[256];
	size_t i;

	ck_assert_int_eq(keyfile_generate(keydir, NULL), GG_OK);
	snprintf(want, sizeof(want),
		 "%s: is a public key (k4.public); a signing key (k4.secret, "
		 "e.g. signing.key) is needed",
		 ppath);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		ck_assert_int_eq(chmod(ppath, modes[i]), 0);
		gg_err_init(&err);
		ck_assert_int_eq(keyfile_load_secret(&sec, ppath, &err),
				 GG_EINVAL);
		ck_assert_ptr_null(sec);
		ck_assert_str_eq(err.msg, want);
	}
}
END_TEST

/* signing.key passed where verify.pub belongs: named, never echoed. */
START_TEST(test_public_given_secret_key)
{
	struct token_key pub;
	struct gg_err err = GG_ERR_INIT;
	char want[256], body[16];

	ck_assert_int_eq(keyfile_generate(keydir, NULL), GG_OK);
	memcpy(body, slurp(spath) + 10, 8);
	body[8] = '\0';
	ck_assert_int_eq(keyfile_load_public(&pub, spath, &err), GG_EINVAL);
	snprintf(want, sizeof(want),
		 "%s: is a signing key (k4.secret); a public key (k4.public, "
		 "e.g. verify.pub) is needed",
		 spath);
	ck_assert_str_eq(err.msg, want);
	ck_assert_ptr_null(strstr(err.msg, body));
}
END_TEST

static Suite *keyfile_suite(void)
{
	Suite *s = suite_create("keyfile");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_generate_modes_and_contents, 0, 2);
	tcase_add_test(tc, test_generate_in_existing_dir);
	tcase_add_test(tc, test_generate_refuses_overwrite);
	tcase_add_test(tc, test_generate_refuses_half_pair);
	tcase_add_test(tc, test_generate_not_a_dir);
	tcase_add_test(tc, test_load_pair_and_sign);
	tcase_add_test(tc, test_secret_permissions);
	tcase_add_test(tc, test_secret_bad_contents);
	tcase_add_test(tc, test_secret_vector_crlf);
	tcase_add_test(tc, test_public_bad_contents);
	tcase_add_loop_test(tc, test_generate_creates_parents, 0, 2);
	tcase_add_test(tc, test_generate_parent_not_a_dir);
	tcase_add_test(tc, test_load_fifo_refused);
	tcase_add_test(tc, test_secret_given_public_key);
	tcase_add_test(tc, test_public_given_secret_key);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	/* No sodium_init() here on purpose: the module must do it itself
	 * (the CLI calls keyfile_generate first thing). */
	sr = srunner_create(keyfile_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

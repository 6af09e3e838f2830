/*
 * test_ghjwt.c - the App key and its RS256 JWTs: a known key
 * (fixtures/upstream, test-only) and the JWT python3-cryptography signed
 * with it for a fixed time (RS256 is deterministic), every kind of key
 * file that must be refused, with its message.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/token/b64.h"
#include "gitgate/upstream/ghjwt.h"

#define NOW 1700000000
#define LABEL "upstream.github_app.private_key_file"

/* python3-cryptography: RS256 over {"iat":NOW-60,"exp":NOW+540,
 * "iss":"123456"} with app-test-pkcs1.pem. */
static const char vector[] =
	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE2OTk5OTk5NDAsImV"
	"4cCI6MTcwMDAwMDU0MCwiaXNzIjoiMTIzNDU2In0.Fej8fB7CCuWPV0LoJoPIl8K"
	"nVTm5nhpiMEYvRiswWfjyLS7JOTEtfhJlMU4lrR_pUQjmhQNtMZ25TGKMhSX65wR"
	"TqqtJJBO0CYyM029Wd04Uj-Xi45Q-GY1ltPDIPfz5L9krAEIQPCYmngn1KvKKPyA"
	"epF4DeGd85pHPIHi6Qqha-4id9UdzT3zzFJ5B_npB3-4rYgzvWc97jXi0AgB6yPq"
	"v4XYIZYDw2Vd4eUsYkA2GRs32NIt9Q0GR0jTIIqFIVRSNTxyBOUw5wid1EvuAyXY"
	"bxhSkmEDX2qLUPtwiYRgPyD33FI6Bu0cV9Bu4L1Z8MhLY2vaOLizfDUyj-_wsuA";

static char tmpdir[] = "/tmp/gg-ghjwt-XXXXXX";

/* fixtures/upstream/NAME copied into the temp dir with mode, as path. */
static const char *fixture(const char *name, mode_t mode)
{
	static char path[4096];
	char src[4096], buf[16384];
	const char *root = getenv("GG_SOURCE_ROOT");
	FILE *in, *out;
	size_t n;

	snprintf(src, sizeof(src), "%s/fixtures/upstream/%s",
		 root ? root : ".", name);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	in = fopen(src, "rb");
	ck_assert_msg(in != NULL, "fixture %s missing", src);
	out = fopen(path, "wb");
	ck_assert_ptr_nonnull(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
}

static void check_vector(const char *name)
{
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = NULL;
	char *jwt = NULL;

	ck_assert_msg(ghjwt_key_load(&key, fixture(name, 0600), LABEL, &err) ==
			      GG_OK,
		      "%s", err.msg);
	ck_assert_int_eq(ghjwt_sign(&jwt, key, "123456", NOW, &err), GG_OK);
	ck_assert_str_eq(jwt, vector);
	ghjwt_free(jwt);
	ghjwt_key_free(key);
}

START_TEST(test_vector_pkcs1)
{
	check_vector("app-test-pkcs1.pem");
}
END_TEST

START_TEST(test_vector_pkcs8)
{
	check_vector("app-test-pkcs8.pem");
}
END_TEST

/* The claims as GitHub reads them: integers, iss a string. */
START_TEST(test_claims)
{
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = NULL;
	char *jwt = NULL, claims[256];
	const char *dot1, *dot2;
	size_t len = 0;

	ck_assert_int_eq(ghjwt_key_load(&key, fixture("app-test-pkcs8.pem",
						      0400),
					LABEL, &err),
			 GG_OK);
	ck_assert_int_eq(ghjwt_sign(&jwt, key, "42", 2000000000, &err), GG_OK);
	dot1 = strchr(jwt, '.');
	dot2 = strchr(dot1 + 1, '.');
	ck_assert_ptr_nonnull(dot2);
	ck_assert_int_eq(b64_decode(claims, sizeof(claims) - 1, &len, dot1 + 1,
				    (size_t)(dot2 - dot1 - 1), &err),
			 GG_OK);
	claims[len] = '\0';
	ck_assert_str_eq(claims,
			 "{\"iat\":1999999940,\"exp\":2000000540,\"iss\":\"42\"}");
	ghjwt_free(jwt);
	ghjwt_key_free(key);
}
END_TEST

static const struct {
	const char *name; /* fixture, or NULL: write text */
	const char *text;
	mode_t mode;
	const char *msg; /* after "LABEL: " */
} bad[] = {
	{ "small-1024.pem", NULL, 0600,
	  "RSA key of 1024 bits, want at least 2048" },
	{ "ec.pem", NULL, 0600, "not an RSA key (GitHub App keys are RSA)" },
	{ "encrypted.pem", NULL, 0600,
	  "cannot read an unencrypted PEM private key (PKCS#1 or PKCS#8)" },
	{ "app-test-pkcs1.pem", NULL, 0644,
	  "permissions 0644 are too open (want 0600)" },
	{ "app-test-pkcs1.pem", NULL, 0640,
	  "permissions 0640 are too open (want 0600)" },
	{ NULL, "not a key at all\n", 0600,
	  "cannot read an unencrypted PEM private key (PKCS#1 or PKCS#8)" },
	{ NULL, "", 0600,
	  "cannot read an unencrypted PEM private key (PKCS#1 or PKCS#8)" },
	{ NULL, "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n", 0600,
	  "cannot read an unencrypted PEM private key (PKCS#1 or PKCS#8)" },
};

START_TEST(test_bad_keys)
{
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = (struct ghjwt_key *)1;
	char path[4096], want[512];
	const char *p;
	FILE *f;

	if (bad[_i].name) {
		p = fixture(bad[_i].name, bad[_i].mode);
	} else {
		snprintf(path, sizeof(path), "%s/text.pem", tmpdir);
		f = fopen(path, "w");
		ck_assert_ptr_nonnull(f);
		fputs(bad[_i].text, f);
		fclose(f);
		ck_assert_int_eq(chmod(path, bad[_i].mode), 0);
		p = path;
	}
	ck_assert_int_ne(ghjwt_key_load(&key, p, LABEL, &err), GG_OK);
	ck_assert_ptr_null(key);
	snprintf(want, sizeof(want), LABEL ": %s", bad[_i].msg);
	ck_assert_msg(!strncmp(err.msg, want, strlen(want)),
		      "got \"%s\", want \"%s...\"", err.msg, want);
}
END_TEST

START_TEST(test_missing_and_directory)
{
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = NULL;
	char path[4096];

	snprintf(path, sizeof(path), "%s/none.pem", tmpdir);
	ck_assert_int_eq(ghjwt_key_load(&key, path, LABEL, &err), GG_EIO);
	ck_assert_ptr_nonnull(strstr(err.msg, "No such file or directory"));
	gg_err_init(&err);
	ck_assert_int_eq(ghjwt_key_load(&key, tmpdir, LABEL, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, LABEL ": not a regular file");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ghjwt");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_vector_pkcs1);
	tcase_add_test(tc, test_vector_pkcs8);
	tcase_add_test(tc, test_claims);
	tcase_add_loop_test(tc, test_bad_keys, 0,
			    (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_missing_and_directory);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/*
 * test_ghjwt.c - the App key and its RS256 JWTs.
 *
 * A known key (fixtures/upstream, test-only) and the JWTs
 * python3-cryptography signed with it for fixed times
 * (fixtures/upstream/vector.py; RSASSA-PKCS1-v1_5 is deterministic, so
 * gitgate must produce exactly those bytes); the decoded header and
 * claims as GitHub reads them; the signature checked with OpenSSL's
 * EVP_DigestVerify against the public key alone; and every key file that
 * must be refused, each with its exact message, the label in front.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gitgate/core/limits.h"
#include "gitgate/token/b64.h"
#include "gitgate/upstream/ghjwt.h"

#include "fixture.h"

#define NOW 1700000000
#define APP_ID "123456"

/* fixtures/upstream/vector.py: RS256 over {"alg":"RS256","typ":"JWT"} .
 * {"iat":NOW-60,"exp":NOW+540,"iss":"123456"} with app-test-pkcs1.pem
 * (app-test-pkcs8.pem is the same key). */
static const char vector_2048[] =
	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
	"eyJpYXQiOjE2OTk5OTk5NDAsImV4cCI6MTcwMDAwMDU0MCwiaXNzIjoiMTIzNDU2In0."
	"Fej8fB7CCuWPV0LoJoPIl8KnVTm5nhpiMEYvRiswWfjyLS7JOTEtfhJlMU4lrR_pUQjm"
	"hQNtMZ25TGKMhSX65wRTqqtJJBO0CYyM029Wd04Uj-Xi45Q-GY1ltPDIPfz5L9krAEIQ"
	"PCYmngn1KvKKPyAepF4DeGd85pHPIHi6Qqha-4id9UdzT3zzFJ5B_npB3-4rYgzvWc97"
	"jXi0AgB6yPqv4XYIZYDw2Vd4eUsYkA2GRs32NIt9Q0GR0jTIIqFIVRSNTxyBOUw5wid1"
	"EvuAyXYbxhSkmEDX2qLUPtwiYRgPyD33FI6Bu0cV9Bu4L1Z8MhLY2vaOLizfDUyj-_ws"
	"uA";

/* The same claims with app-test-4096.pem (a 512-byte signature). */
static const char vector_4096[] =
	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
	"eyJpYXQiOjE2OTk5OTk5NDAsImV4cCI6MTcwMDAwMDU0MCwiaXNzIjoiMTIzNDU2In0."
	"SfwbZfgUYZgOo1MKRAUMCj36m0wnjVBFKgdYPGDUzWx9is2ywuZcpEOBNJxDHYNLSOg5"
	"nAqCTSHn3Kr9Wg2rXtFbmb54Qu9b1Wwk-BanMJrcuxNNcWGJ_5wR7PvBvl9tq_nS5pjb"
	"zG53JeX2WtZu3i74iWsaOZDikQlFIVnpbMRiM9ZyiZZmMhjXvoySgWLIgYrujv9pz6ac"
	"XYlTDMP9WBsKwLzrtrMcaYQP6tcQ3K4Czjz082jqvRSczjmcF59X-GqP8GuggNTMbpG4"
	"8UqIqYHgL1zDXemrcUQe0Os4nKEl4kLaywFIjG0Dt7cjlwoImxdiTfPLtXPrmYOEYbwV"
	"3EhFHJmNuA8hYeyW653nXV3B604UM2dQPwe8p2LSw7BoW7u-sjPycKjba7wt-QUCYVbH"
	"uyd0oouJKwb4WdyUb0qbicBV-LHy0CzgPVhFf8N5LzUnQ6OaA_KFkc81QiPllO6_YjLn"
	"suaEC_a327V9wtCrYXPjW0BMO37ZBEBeNThLXN-MFD2U8z9lMxQvTD3JTYfg6WWQ0oqa"
	"p3uL8296d5_28BWklVozErX0gcMxDIss0lEv8s1LNwPvgUyltxC_zmKa2wzZ9CUc_hkn"
	"6EmNLOeuaCjnUeBKY2V8GBRmxBDos2WQNDiDG_QTXXtZq9YMgF-KXxfJsbQraCarTY04"
	"Y_4";

/* app-test-pkcs1.pem, app id "42", now 2000000000. */
static const char vector_42[] =
	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
	"eyJpYXQiOjE5OTk5OTk5NDAsImV4cCI6MjAwMDAwMDU0MCwiaXNzIjoiNDIifQ."
	"RK54MNGYUeSOqZLhWsmEhb6XUGNG5a3d3LyeUbD1U3ZqCZuhRE4htPrFd1mhz7wFEOqv"
	"DvG3Zs9Zuq_jWXX6Ld9aY71ci9yWR_4z7OiNrZZb_RNfRe52B144JOMS9fA3RqZ45ucF"
	"Rp-1wf0-tTyi8L9Gr7CWOmoKBrr8re7_J2KgVEGcbWNu_aPYji58MhsNT1YUQJK-QnEp"
	"wGgli6PYHThyQ4BS-1341yObjw_kAf_uYhGUgXOe48iuzp_dABC_9_1GJQSYJNIwS_fZ"
	"Yoq24ZmJwJkj5gBx7JCYZ8CvFPfO_cNFaYgvYoNIqidLPGCfdkqMX0n0A0E_L-fmlTOg"
	"yQ";

static char tmpdir[] = "/tmp/gg-ghjwt-XXXXXX";

/* ---- files ---------------------------------------------------------- */


/* len bytes of data as tmpdir/NAME with mode; the path in a static
 * buffer (valid until the next call). */
static const char *write_temp(const char *name, const void *data, size_t len,
			      mode_t mode)
{
	static char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

/* A fixture copied into the temp dir with mode (git keeps no 0600). */
static const char *fixture(const char *name, mode_t mode)
{
	size_t len = 0;
	char *text = read_fixture(name, &len);
	const char *path = write_temp(name, text, len, mode);

	free(text);
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

/* The label as cred.c builds it: the config key and the path. */
static const char *label_for(const char *path)
{
	static char label[640];

	snprintf(label, sizeof(label),
		 "upstream.github_app.private_key_file: %s", path);
	return label;
}

static struct ghjwt_key *load_ok(const char *name)
{
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = NULL;
	const char *path = fixture(name, 0600);

	ck_assert_msg(ghjwt_key_load(&key, path, label_for(path), &err) ==
			      GG_OK,
		      "%s: %s", name, err.msg);
	ck_assert_ptr_nonnull(key);
	return key;
}

static char *sign_ok(const struct ghjwt_key *key, const char *app_id,
		     int64_t now)
{
	struct gg_err err = GG_ERR_INIT;
	char *jwt = NULL;

	ck_assert_msg(ghjwt_sign(&jwt, key, app_id, now, &err) == GG_OK, "%s",
		      err.msg);
	ck_assert_ptr_nonnull(jwt);
	return jwt;
}

/* ---- the known vectors ---------------------------------------------- */

static void check_vector(const char *name, const char *app_id, int64_t now,
			 const char *want)
{
	struct ghjwt_key *key = load_ok(name);
	char *jwt = sign_ok(key, app_id, now);

	ck_assert_str_eq(jwt, want);
	ghjwt_free(jwt);
	/* signing is repeatable: the same key, the same bytes */
	jwt = sign_ok(key, app_id, now);
	ck_assert_str_eq(jwt, want);
	ghjwt_free(jwt);
	ghjwt_key_free(key);
}

START_TEST(vector_pkcs1_file)
{
	check_vector("app-test-pkcs1.pem", APP_ID, NOW, vector_2048);
}
END_TEST

START_TEST(vector_pkcs8)
{
	check_vector("app-test-pkcs8.pem", APP_ID, NOW, vector_2048);
}
END_TEST

START_TEST(vector_rsa4096)
{
	check_vector("app-test-4096.pem", APP_ID, NOW, vector_4096);
}
END_TEST

START_TEST(vector_other_id_and_time)
{
	check_vector("app-test-pkcs1.pem", "42", 2000000000, vector_42);
}
END_TEST

/* ghjwt_key_from_pem: the PEM in memory, not NUL-terminated (ASan sees
 * any read past len), both forms. */
START_TEST(vector_from_memory)
{
	static const char *const names[] = {"app-test-pkcs1.pem",
					    "app-test-pkcs8.pem"};
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key;
	size_t i, len;
	char *text, *exact, *jwt;

	/* See known_bug_sign_needs_sodium_init: nothing on this path calls
	 * sodium_init, which ghjwt_sign's sodium_malloc needs. */
	ck_assert_int_ge(sodium_init(), 0);
	for (i = 0; i < 2; i++) {
		text = read_fixture(names[i], &len);
		exact = malloc(len);
		ck_assert_ptr_nonnull(exact);
		memcpy(exact, text, len);
		free(text);
		key = NULL;
		ck_assert_msg(ghjwt_key_from_pem(&key, exact, len, "mem",
						 &err) == GG_OK,
			      "%s", err.msg);
		free(exact);
		jwt = sign_ok(key, APP_ID, NOW);
		ck_assert_str_eq(jwt, vector_2048);
		ghjwt_free(jwt);
		ghjwt_key_free(key);
	}
}
END_TEST

/* ---- what GitHub reads ---------------------------------------------- */

/* Part k (0..2) of jwt, base64url-decoded into out. */
static size_t jwt_part(unsigned char *out, size_t outsz, const char *jwt, int k)
{
	struct gg_err err = GG_ERR_INIT;
	const char *s = jwt, *e;
	size_t len = 0;
	int i;

	for (i = 0; i < k; i++) {
		s = strchr(s, '.');
		ck_assert_ptr_nonnull(s);
		s++;
	}
	e = strchr(s, '.');
	if (!e)
		e = s + strlen(s);
	ck_assert_msg(b64_decode(out, outsz, &len, s, (size_t)(e - s), &err) ==
			      GG_OK,
		      "part %d: %s", k, err.msg);
	return len;
}

static json_t *jwt_json(const char *jwt, int k, char *text, size_t textsz)
{
	size_t len = jwt_part((unsigned char *)text, textsz - 1, jwt, k);
	json_error_t jerr;
	json_t *v;

	text[len] = '\0';
	v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	ck_assert_msg(json_is_object(v), "part %d \"%s\": %s", k, text,
		      jerr.text);
	return v;
}

static void check_claims(const char *jwt, const char *app_id, int64_t now)
{
	char text[512];
	json_t *h, *c, *v;
	const char *p;
	int dots = 0;

	for (p = jwt; *p; p++) {
		ck_assert_msg((*p >= 'A' && *p <= 'Z') ||
				      (*p >= 'a' && *p <= 'z') ||
				      (*p >= '0' && *p <= '9') || *p == '-' ||
				      *p == '_' || *p == '.',
			      "byte 0x%02x in the JWT", (unsigned char)*p);
		dots += *p == '.';
	}
	ck_assert_int_eq(dots, 2);

	h = jwt_json(jwt, 0, text, sizeof(text));
	ck_assert_str_eq(text, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	ck_assert_uint_eq(json_object_size(h), 2);
	ck_assert_str_eq(json_string_value(json_object_get(h, "alg")), "RS256");
	ck_assert_str_eq(json_string_value(json_object_get(h, "typ")), "JWT");
	json_decref(h);

	c = jwt_json(jwt, 1, text, sizeof(text));
	ck_assert_uint_eq(json_object_size(c), 3);
	v = json_object_get(c, "iat");
	ck_assert_msg(json_is_integer(v), "iat not an integer: %s", text);
	ck_assert_int_eq(json_integer_value(v), now - 60);
	v = json_object_get(c, "exp");
	ck_assert_msg(json_is_integer(v), "exp not an integer: %s", text);
	ck_assert_int_eq(json_integer_value(v), now + 540);
	/* under GitHub's 10-minute limit, counted from iat */
	ck_assert_int_le(json_integer_value(v) -
				 json_integer_value(json_object_get(c, "iat")),
			 600);
	v = json_object_get(c, "iss");
	ck_assert_msg(json_is_string(v), "iss not a string: %s", text);
	ck_assert_str_eq(json_string_value(v), app_id);
	json_decref(c);
}

START_TEST(claims_as_github_reads_them)
{
	static const int64_t times[] = {NOW, 1, 2000000000, 4102444800};
	struct ghjwt_key *key = load_ok("app-test-pkcs8.pem");
	size_t i;
	char *jwt;

	for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		jwt = sign_ok(key, APP_ID, times[i]);
		check_claims(jwt, APP_ID, times[i]);
		ghjwt_free(jwt);
	}
	jwt = sign_ok(key, "1", NOW);
	check_claims(jwt, "1", NOW);
	ghjwt_free(jwt);
	ghjwt_key_free(key);
}
END_TEST

/* EVP_DigestVerify of jwt's signature with the public key only. */
static int verify(EVP_PKEY *pub, const char *jwt, size_t *siglen)
{
	unsigned char sig[1024];
	const char *dot2 = strrchr(jwt, '.');
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	ck_assert_ptr_nonnull(dot2);
	*siglen = jwt_part(sig, sizeof(sig), jwt, 2);
	ck_assert_ptr_nonnull(md);
	ck_assert_int_eq(
		EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	ok = EVP_DigestVerify(md, sig, *siglen, (const unsigned char *)jwt,
			      (size_t)(dot2 - jwt));
	EVP_MD_CTX_free(md);
	return ok;
}

START_TEST(signature_verifies_with_public_key)
{
	struct ghjwt_key *key = load_ok("app-test-pkcs1.pem");
	size_t len = 0, siglen = 0;
	char *pem = read_fixture("app-test-pub.pem", &len);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	char *jwt, *copy;

	ck_assert_ptr_nonnull(pub);
	BIO_free(bio);
	free(pem);
	/* the vector, and a JWT of today */
	ck_assert_int_eq(verify(pub, vector_2048, &siglen), 1);
	ck_assert_uint_eq(siglen, 256);
	jwt = sign_ok(key, APP_ID, (int64_t)time(NULL));
	ck_assert_int_eq(verify(pub, jwt, &siglen), 1);
	ck_assert_uint_eq(siglen, 256);
	/* a changed claim no longer verifies: the check has teeth */
	copy = strdup(jwt);
	ck_assert_ptr_nonnull(copy);
	copy[strchr(copy, '.') - copy + 5] ^= 1;
	ck_assert_int_ne(verify(pub, copy, &siglen), 1);
	free(copy);
	ghjwt_free(jwt);
	EVP_PKEY_free(pub);
	ghjwt_key_free(key);
}
END_TEST

START_TEST(sign_refuses_overlong_app_id)
{
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = load_ok("app-test-pkcs1.pem");
	char id[200], *jwt = (char *)1;

	memset(id, '7', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	ck_assert_int_eq(ghjwt_sign(&jwt, key, id, NOW, &err), GG_EINVAL);
	ck_assert_ptr_null(jwt);
	ck_assert_str_eq(err.msg, "github_app: app id too long");
	ghjwt_key_free(key);
	ghjwt_key_free(NULL);
	ghjwt_free(NULL);
}
END_TEST

/* ---- keys that must be refused -------------------------------------- */

#define UNREADABLE                                                             \
	"cannot read an unencrypted PEM private key (PKCS#1 or PKCS#8): "

enum bad_kind { FIXTURE, TEXT, TRUNCATED, OVERSIZE };

static const struct bad_row {
	const char *what;
	enum bad_kind kind;
	const char *src; /* fixture name or text */
	mode_t mode;
	int code;
	const char *msg;  /* after "LABEL: " */
	bool prefix_only; /* msg ends in OpenSSL's reason (any) */
} bad[] = {
	{"garbage", TEXT, "not a key at all\n", 0600, GG_EINVAL, UNREADABLE,
	 true},
	{"empty file", TEXT, "", 0600, GG_EINVAL, UNREADABLE, true},
	{"truncated PEM (half)", TRUNCATED, "app-test-pkcs1.pem", 0600,
	 GG_EINVAL, UNREADABLE, true},
	{"PEM without its END line", TEXT,
	 "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n", 0600, GG_EINVAL,
	 UNREADABLE, true},
	{"a public key", FIXTURE, "app-test-pub.pem", 0600, GG_EINVAL,
	 UNREADABLE, true},
	{"EC P-256 key", FIXTURE, "ec.pem", 0600, GG_EINVAL,
	 "not an RSA key (GitHub App keys are RSA)", false},
	{"RSA-1024", FIXTURE, "small-1024.pem", 0600, GG_EINVAL,
	 "RSA key of 1024 bits, want at least 2048", false},
	{"encrypted PKCS#8", FIXTURE, "encrypted.pem", 0600, GG_EINVAL,
	 UNREADABLE, true},
	{"encrypted PKCS#1", FIXTURE, "encrypted-pkcs1.pem", 0600, GG_EINVAL,
	 UNREADABLE, true},
	{"mode 0644", FIXTURE, "app-test-pkcs1.pem", 0644, GG_EINVAL,
	 "permissions 0644 are too open (want 0600)", false},
	{"mode 0640", FIXTURE, "app-test-pkcs1.pem", 0640, GG_EINVAL,
	 "permissions 0640 are too open (want 0600)", false},
	{"mode 0604", FIXTURE, "app-test-pkcs8.pem", 0604, GG_EINVAL,
	 "permissions 0604 are too open (want 0600)", false},
	{"mode 0660", FIXTURE, "app-test-pkcs8.pem", 0660, GG_EINVAL,
	 "permissions 0660 are too open (want 0600)", false},
	{"over 16 KiB", OVERSIZE, NULL, 0600, GG_ELIMIT,
	 "larger than 16384 bytes", false},
};

START_TEST(bad_key_file)
{
	const struct bad_row *r = &bad[_i];
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = (struct ghjwt_key *)1;
	const char *path = NULL;
	char want[1024], *text, *big;
	size_t len = 0;

	switch (r->kind) {
	case FIXTURE:
		path = fixture(r->src, r->mode);
		break;
	case TEXT:
		path = write_temp("text.pem", r->src, strlen(r->src), r->mode);
		break;
	case TRUNCATED:
		text = read_fixture(r->src, &len);
		path = write_temp("half.pem", text, len / 2, r->mode);
		free(text);
		break;
	case OVERSIZE:
		/* a good key followed by padding past the limit */
		text = read_fixture("app-test-pkcs1.pem", &len);
		big = malloc(GG_MAX_APP_KEY_LEN + 1);
		ck_assert_ptr_nonnull(big);
		memset(big, '\n', GG_MAX_APP_KEY_LEN + 1);
		memcpy(big, text, len);
		path = write_temp("big.pem", big, GG_MAX_APP_KEY_LEN + 1,
				  r->mode);
		free(big);
		free(text);
		break;
	}
	ck_assert_int_eq(GG_MAX_APP_KEY_LEN, 16384);
	snprintf(want, sizeof(want), "%s: %s", label_for(path), r->msg);
	ck_assert_msg(ghjwt_key_load(&key, path, label_for(path), &err) ==
			      r->code,
		      "%s: code %d, \"%s\"", r->what, err.code, err.msg);
	ck_assert_ptr_null(key);
	ck_assert_int_eq(err.code, r->code);
	if (r->prefix_only) {
		ck_assert_msg(!strncmp(err.msg, want, strlen(want)) &&
				      strlen(err.msg) > strlen(want),
			      "%s: got \"%s\", want \"%s<reason>\"", r->what,
			      err.msg, want);
	} else {
		ck_assert_msg(!strcmp(err.msg, want),
			      "%s: got \"%s\", want \"%s\"", r->what, err.msg,
			      want);
	}
	ck_assert_ptr_null(strchr(err.msg, '\n'));
}
END_TEST

/* The same refusals from memory: the PEM parser's, without a file. */
START_TEST(bad_pem_in_memory)
{
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = (struct ghjwt_key *)1;
	size_t len = 0;
	char *text = read_fixture("ec.pem", &len), *big;

	ck_assert_int_eq(ghjwt_key_from_pem(&key, text, len, "ec", &err),
			 GG_EINVAL);
	ck_assert_ptr_null(key);
	ck_assert_str_eq(err.msg, "ec: not an RSA key (GitHub App keys are "
				  "RSA)");
	free(text);

	gg_err_init(&err);
	key = (struct ghjwt_key *)1;
	ck_assert_int_eq(ghjwt_key_from_pem(&key, "", 0, "empty", &err),
			 GG_EINVAL);
	ck_assert_ptr_null(key);
	ck_assert_msg(!strncmp(err.msg, "empty: " UNREADABLE,
			       strlen("empty: " UNREADABLE)),
		      "%s", err.msg);

	gg_err_init(&err);
	big = calloc(1, GG_MAX_APP_KEY_LEN + 1);
	ck_assert_ptr_nonnull(big);
	ck_assert_int_eq(ghjwt_key_from_pem(&key, big, GG_MAX_APP_KEY_LEN + 1,
					    "big", &err),
			 GG_ELIMIT);
	ck_assert_str_eq(err.msg, "big: larger than 16384 bytes");
	free(big);
}
END_TEST

START_TEST(missing_directory_fifo)
{
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = (struct ghjwt_key *)1;
	char path[512], want[1024];

	snprintf(path, sizeof(path), "%s/none.pem", tmpdir);
	ck_assert_int_eq(ghjwt_key_load(&key, path, label_for(path), &err),
			 GG_EIO);
	ck_assert_ptr_null(key);
	snprintf(want, sizeof(want), "%s: No such file or directory",
		 label_for(path));
	ck_assert_str_eq(err.msg, want);

	gg_err_init(&err);
	key = (struct ghjwt_key *)1;
	ck_assert_int_eq(ghjwt_key_load(&key, tmpdir, label_for(tmpdir), &err),
			 GG_EINVAL);
	ck_assert_ptr_null(key);
	snprintf(want, sizeof(want), "%s: not a regular file",
		 label_for(tmpdir));
	ck_assert_str_eq(err.msg, want);

	/* a FIFO with no writer: refused at once, not waited on */
	snprintf(path, sizeof(path), "%s/fifo.pem", tmpdir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	gg_err_init(&err);
	key = (struct ghjwt_key *)1;
	alarm(10);
	ck_assert_int_eq(ghjwt_key_load(&key, path, label_for(path), &err),
			 GG_EINVAL);
	alarm(0);
	ck_assert_ptr_null(key);
	snprintf(want, sizeof(want), "%s: not a regular file", label_for(path));
	ck_assert_str_eq(err.msg, want);
}
END_TEST

/* ---- an encrypted key never prompts --------------------------------- */

/*
 * Run load(path) in a child that is the leader of a new session whose
 * controlling terminal is a fresh pty: OpenSSL's default passphrase
 * prompt would be written to that terminal (/dev/tty) and then wait for
 * an answer. The parent collects whatever the terminal shows, for up to
 * limit_s seconds (or until it shows stop_on); returns the child's exit
 * status, or -1 if it had to be killed (it was waiting for a passphrase).
 */
static int on_pty(int (*load)(const char *), const char *path, int limit_s,
		  const char *stop_on, char *shown, size_t shownsz)
{
	size_t used = 0;
	int master, status = 0;
	time_t deadline;
	char *slave;
	ssize_t n;
	pid_t pid;

	shown[0] = '\0';
	master = posix_openpt(O_RDWR | O_NOCTTY);
	ck_assert_int_ge(master, 0);
	ck_assert_int_eq(grantpt(master), 0);
	ck_assert_int_eq(unlockpt(master), 0);
	slave = ptsname(master);
	ck_assert_ptr_nonnull(slave);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd;

		close(master);
		if (setsid() < 0)
			_exit(90);
		fd = open(slave, O_RDWR); /* becomes the controlling tty */
		if (fd < 0)
			_exit(91);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		_exit(load(path));
	}
	deadline = time(NULL) + limit_s;
	while (time(NULL) <= deadline) {
		struct pollfd p = {master, POLLIN, 0};

		/* POLLHUP (no slave open) returns at once: pace the loop */
		if (poll(&p, 1, 50) > 0 && (p.revents & POLLIN) &&
		    used + 1 < shownsz) {
			n = read(master, shown + used, shownsz - 1 - used);
			if (n > 0) {
				used += (size_t)n;
				shown[used] = '\0';
			}
		} else {
			usleep(20 * 1000);
		}
		if (stop_on && strstr(shown, stop_on))
			break; /* seen: no need to wait any longer */
		if (waitpid(pid, &status, WNOHANG) == pid) {
			/* what it wrote just before it left */
			while (used + 1 < shownsz &&
			       (n = read(master, shown + used,
					 shownsz - 1 - used)) > 0) {
				used += (size_t)n;
				shown[used] = '\0';
			}
			close(master);
			return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(master);
	return -1;
}

/* 0: refused with the expected message; 1: loaded; 2: other message. */
static int load_encrypted(const char *path)
{
	struct gg_err err = GG_ERR_INIT;
	struct ghjwt_key *key = NULL;
	int ret = ghjwt_key_load(&key, path, "enc", &err);

	ghjwt_key_free(key);
	if (ret == GG_OK)
		return 1;
	return strncmp(err.msg, "enc: " UNREADABLE, strlen("enc: " UNREADABLE))
		       ? 2
		       : 0;
}

/* The control: OpenSSL left to its default callback does prompt, so the
 * harness above would see gitgate prompt too. */
static int load_openssl_default(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (!f)
		return 3;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(k);
	return 4;
}

START_TEST(encrypted_key_never_prompts)
{
	static const char *const names[] = {"encrypted.pem",
					    "encrypted-pkcs1.pem"};
	char shown[512];
	const char *path;
	size_t i;
	int rc, probe = posix_openpt(O_RDWR | O_NOCTTY);

	if (probe < 0) {
		/* no pty here: still refused, but "never prompts" unproven */
		printf("ghjwt: no pseudo-terminal (%s): prompt check skipped\n",
		       strerror(errno));
		for (i = 0; i < 2; i++)
			ck_assert_int_eq(
				load_encrypted(fixture(names[i], 0600)), 0);
		return;
	}
	close(probe);
	path = fixture("encrypted.pem", 0600);
	ck_assert_int_eq(on_pty(load_openssl_default, path, 3, "pass phrase",
				shown, sizeof(shown)),
			 -1);
	ck_assert_msg(strstr(shown, "pass phrase") != NULL,
		      "control: OpenSSL showed \"%s\"", shown);
	for (i = 0; i < 2; i++) {
		path = fixture(names[i], 0600);
		rc = on_pty(load_encrypted, path, 10, NULL, shown,
			    sizeof(shown));
		ck_assert_msg(rc == 0,
			      "%s: status %d, the terminal showed \"%s\"",
			      names[i], rc, shown);
		/* (a log line about the secure heap may show; no prompt) */
		ck_assert_msg(!strstr(shown, "phrase") && !strstr(shown, "PEM"),
			      "%s: the terminal showed \"%s\"", names[i],
			      shown);
	}
}
END_TEST

/* ---- bugs these cases found, since fixed -------------------------- */

/*
 * KNOWN BUG (src/upstream/ghjwt.c, ghjwt_sign, the sodium_malloc at line
 * 171): ghjwt_sign allocates the JWT with sodium_malloc but nothing on the
 * ghjwt_key_from_pem path calls sodium_init (ghjwt_key_load only gets it
 * from config_read_secret_file). In a process that loaded its key from
 * memory, libsodium aborts (sodium_misuse: page size unset). Every other
 * module that uses sodium_malloc calls sodium_init itself (cred.c,
 * config.c, keyfile.c...). Want: the vector, no abort. Run in a child so
 * that no earlier test's sodium_init hides it (the check fork mode does
 * that too; CK_FORK=no would hide it).
 */
START_TEST(known_bug_sign_needs_sodium_init)
{
	size_t len = 0;
	char *text = read_fixture("app-test-pkcs1.pem", &len);
	int status = 0;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct gg_err err = GG_ERR_INIT;
		struct ghjwt_key *key = NULL;
		char *jwt = NULL;

		if (ghjwt_key_from_pem(&key, text, len, "mem", &err) != GG_OK)
			_exit(2);
		if (ghjwt_sign(&jwt, key, APP_ID, NOW, &err) != GG_OK)
			_exit(3);
		_exit(strcmp(jwt, vector_2048) ? 4 : 0);
	}
	free(text);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "ghjwt_key_from_pem + ghjwt_sign without sodium_init: "
		      "%s %d (SIGABRT is 6)",
		      WIFSIGNALED(status) ? "killed by signal" : "exit",
		      WIFSIGNALED(status) ? WTERMSIG(status)
					  : WEXITSTATUS(status));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ghjwt");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, vector_pkcs1_file);
	tcase_add_test(tc, vector_pkcs8);
	tcase_add_test(tc, vector_rsa4096);
	tcase_add_test(tc, vector_other_id_and_time);
	tcase_add_test(tc, vector_from_memory);
	tcase_add_test(tc, claims_as_github_reads_them);
	tcase_add_test(tc, signature_verifies_with_public_key);
	tcase_add_test(tc, sign_refuses_overlong_app_id);
	tcase_add_loop_test(tc, bad_key_file, 0,
			    (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, bad_pem_in_memory);
	tcase_add_test(tc, missing_directory_fifo);
	tcase_add_test(tc, encrypted_key_never_prompts);
	suite_add_tcase(s, tc);
	tc = tcase_create("fixed_bugs");
	tcase_add_test(tc, known_bug_sign_needs_sodium_init);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

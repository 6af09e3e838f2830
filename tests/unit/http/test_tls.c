/* test_tls.c - the HTTPS listener's certificate: a good pair loads; a
 * mismatched, expired, not-yet-valid, garbage or missing one, and a key
 * others can read, are refused with the reason; a reload swaps the pair
 * only when the new one is good. Certificates are made here with GnuTLS,
 * with exactly the validity each case needs. */
#include <check.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gitgate/core/timeutil.h"
#include "gitgate/http/tls.h"

#define DAY (24 * 3600)

static char dir[64];
static char cert_path[128], key_path[128], other_key_path[128];

static void write_file(const char *path, const void *data, size_t len,
		       mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static gnutls_x509_privkey_t make_key(const char *path)
{
	gnutls_x509_privkey_t key;
	gnutls_datum_t pem;

	ck_assert_int_ge(gnutls_x509_privkey_init(&key), 0);
	ck_assert_int_ge(gnutls_x509_privkey_generate(
				 key, GNUTLS_PK_ECDSA,
				 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
				 0),
			 0);
	ck_assert_int_ge(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM,
						     &pem),
			 0);
	write_file(path, pem.data, pem.size, 0600);
	gnutls_free(pem.data);
	return key;
}

/* A self-signed certificate for key valid [now+from, now+until). */
static void make_cert(const char *path, gnutls_x509_privkey_t key,
		      long from, long until, unsigned char serial)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t pem;
	time_t now = time(NULL);

	ck_assert_int_ge(gnutls_x509_crt_init(&crt), 0);
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, &serial, 1);
	gnutls_x509_crt_set_activation_time(crt, now + from);
	gnutls_x509_crt_set_expiration_time(crt, now + until);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
				      "127.0.0.1", 9);
	ck_assert_int_ge(gnutls_x509_crt_set_key(crt, key), 0);
	ck_assert_int_ge(gnutls_x509_crt_sign2(crt, crt, key,
					       GNUTLS_DIG_SHA256, 0),
			 0);
	ck_assert_int_ge(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM,
						 &pem),
			 0);
	write_file(path, pem.data, pem.size, 0644);
	gnutls_free(pem.data);
	gnutls_x509_crt_deinit(crt);
}

static gnutls_x509_privkey_t key, other_key;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gg-tls-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	snprintf(other_key_path, sizeof(other_key_path), "%s/other.pem", dir);
	key = make_key(key_path);
	other_key = make_key(other_key_path);
	make_cert(cert_path, key, -DAY, 30 * DAY, 1);
}

static void teardown(void)
{
	gnutls_x509_privkey_deinit(key);
	gnutls_x509_privkey_deinit(other_key);
	unlink(cert_path);
	unlink(key_path);
	unlink(other_key_path);
	rmdir(dir);
}

/* Load and expect refusal with exactly want (paths put in for %s). */
static void expect_refused(const char *cert, const char *k, int code,
			   const char *want)
{
	struct gg_err err = GG_ERR_INIT;
	struct tls_cert *c = (struct tls_cert *)1;

	ck_assert_int_eq(tls_cert_load(&c, cert, k, timeutil_now(), &err),
			 code);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(err.msg, want);
}

START_TEST(test_good_pair)
{
	struct gg_err err = GG_ERR_INIT;
	struct tls_cert *c = NULL;
	char line[256];
	int64_t now = timeutil_now();

	ck_assert_int_eq(tls_cert_load(&c, cert_path, key_path, now, &err),
			 GG_OK);
	ck_assert_int_le(tls_cert_not_before(c), now - DAY + 5);
	ck_assert_int_ge(tls_cert_not_after(c), now + 30 * DAY - 5);
	tls_cert_describe(c, line, sizeof(line));
	ck_assert_msg(!strncmp(line, "serial 01, expires 20", 21), "%s", line);
	tls_cert_free(c);
}
END_TEST

START_TEST(test_mismatch)
{
	char want[512];

	snprintf(want, sizeof(want),
		 "tls.key_file: %s: not the key of the certificate in %s",
		 other_key_path, cert_path);
	expect_refused(cert_path, other_key_path, GG_EINVAL, want);
}
END_TEST

START_TEST(test_expired)
{
	char want[512], when[TIMEUTIL_RFC3339_SIZE];
	struct gg_err err = GG_ERR_INIT;

	make_cert(cert_path, key, -30 * DAY, -DAY, 2);
	/* the message gives the day it expired, to the second */
	ck_assert_int_eq(timeutil_format_rfc3339(when, sizeof(when),
						 timeutil_now() - DAY, &err),
			 0);
	snprintf(want, sizeof(want),
		 "tls.cert_file: %s: certificate expired on %.10s", cert_path,
		 when);
	{
		struct tls_cert *c = NULL;

		ck_assert_int_eq(tls_cert_load(&c, cert_path, key_path,
					       timeutil_now(), &err),
				 GG_EEXPIRED);
		ck_assert_ptr_null(c);
		ck_assert_msg(!strncmp(err.msg, want, strlen(want)), "%s",
			      err.msg);
	}
}
END_TEST

START_TEST(test_not_yet_valid)
{
	struct gg_err err = GG_ERR_INIT;
	struct tls_cert *c = NULL;
	char want[512];

	make_cert(cert_path, key, DAY, 30 * DAY, 3);
	snprintf(want, sizeof(want),
		 "tls.cert_file: %s: certificate not valid before 20",
		 cert_path);
	ck_assert_int_eq(tls_cert_load(&c, cert_path, key_path,
				       timeutil_now(), &err),
			 GG_ENOTYET);
	ck_assert_msg(!strncmp(err.msg, want, strlen(want)), "%s", err.msg);
}
END_TEST

START_TEST(test_garbage)
{
	char want[512];
	static const char junk[] = "this is not a certificate\n";

	write_file(cert_path, junk, sizeof(junk) - 1, 0644);
	snprintf(want, sizeof(want),
		 "tls.cert_file: %s: no PEM certificate in it", cert_path);
	expect_refused(cert_path, key_path, GG_EINVAL, want);
	/* a good certificate with a garbage key */
	make_cert(cert_path, key, -DAY, DAY, 4);
	write_file(key_path, junk, sizeof(junk) - 1, 0600);
	snprintf(want, sizeof(want),
		 "tls.key_file: %s: not a PEM private key without a "
		 "passphrase (%s)",
		 key_path, gnutls_strerror(GNUTLS_E_BASE64_DECODING_ERROR));
	{
		struct gg_err err = GG_ERR_INIT;
		struct tls_cert *c = NULL;

		ck_assert_int_eq(tls_cert_load(&c, cert_path, key_path,
					       timeutil_now(), &err),
				 GG_EINVAL);
		ck_assert_msg(!strncmp(err.msg, want, strlen(key_path) + 40),
			      "%s", err.msg);
	}
}
END_TEST

START_TEST(test_missing)
{
	char want[512], missing[160];

	snprintf(missing, sizeof(missing), "%s/nope.pem", dir);
	snprintf(want, sizeof(want),
		 "tls.cert_file: %s: No such file or directory", missing);
	expect_refused(missing, key_path, GG_EIO, want);
	snprintf(want, sizeof(want),
		 "tls.key_file: %s: No such file or directory", missing);
	expect_refused(cert_path, missing, GG_EIO, want);
}
END_TEST

START_TEST(test_key_0644)
{
	char want[512];

	ck_assert_int_eq(chmod(key_path, 0644), 0);
	snprintf(want, sizeof(want),
		 "tls.key_file: %s: permissions 0644 are too open (want "
		 "0600)",
		 key_path);
	expect_refused(cert_path, key_path, GG_EINVAL, want);
}
END_TEST

/* The served pair changes only to a good one; the retrieve callback hands
 * out the current pair. */
START_TEST(test_server_reload)
{
	struct gg_err err = GG_ERR_INIT;
	struct tls_server *ts = NULL, *second = NULL;
	gnutls_pcert_st *pcert = NULL;
	unsigned npcert = 0;
	gnutls_privkey_t pk = NULL;
	char line[256];

	ck_assert_int_eq(tls_server_new(&ts, cert_path, key_path, &err),
			 GG_OK);
	ck_assert_int_eq(tls_server_new(&second, cert_path, key_path, &err),
			 GG_EEXISTS);
	gg_err_init(&err); /* messages are set once */
	ck_assert_int_eq(tls_server_refresh(ts, 0, &err), 0);
	/* a new serial on disk: served from the next handshake on */
	make_cert(cert_path, key, -DAY, 60 * DAY, 9);
	ck_assert_int_eq(tls_server_refresh(ts, 0, &err), 1);
	tls_cert_describe(tls_server_current(ts), line, sizeof(line));
	ck_assert_msg(!strncmp(line, "serial 09,", 10), "%s", line);
	ck_assert_int_eq(tls_server_retrieve(NULL, NULL, 0, NULL, 0, &pcert,
					     &npcert, &pk),
			 0);
	ck_assert_uint_eq(npcert, 1);
	ck_assert_ptr_nonnull(pk);
	/* a broken replacement: refused once, the good pair stays */
	make_cert(cert_path, other_key, -DAY, DAY, 10);
	ck_assert_int_lt(tls_server_refresh(ts, 0, &err), 0);
	ck_assert_msg(strstr(err.msg, "not the key of the certificate") !=
			      NULL,
		      "%s", err.msg);
	ck_assert_int_eq(tls_server_refresh(ts, 0, &err), 0);
	tls_cert_describe(tls_server_current(ts), line, sizeof(line));
	ck_assert_msg(!strncmp(line, "serial 09,", 10), "%s", line);
	/* SIGHUP (force) tries again, unchanged files or not */
	ck_assert_int_lt(tls_server_refresh(ts, 1, &err), 0);
	tls_server_free(ts);
	ck_assert_int_eq(tls_server_retrieve(NULL, NULL, 0, NULL, 0, &pcert,
					     &npcert, &pk),
			 -1);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("load");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_good_pair);
	tcase_add_test(tc, test_mismatch);
	tcase_add_test(tc, test_expired);
	tcase_add_test(tc, test_not_yet_valid);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_missing);
	tcase_add_test(tc, test_key_0644);
	tcase_add_test(tc, test_server_reload);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tls_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/*
 * test_paserk.c - k4.public / k4.secret / k4.pid against every case of the
 * official PASERK vectors ($GG_SHARED_DIR/vectors/PASERK), plus decoding
 * errors.
 */
#include <check.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/token/paserk.h"
#include "vectors.h"

typedef int (*encode_fn)(char *out, size_t outsz, const unsigned char *key,
			 size_t keylen, struct gg_err *err);
typedef int (*decode_fn)(unsigned char *key, const char *text, size_t len,
			 struct gg_err *err);

/* Run every case of one vectors file: encode must give the exact PASERK
 * (or fail when expect-fail), decode must give back the key. */
static void run_file(const char *file, encode_fn enc, decode_fn dec,
		     size_t *ncases)
{
	json_t *root = vectors_load("PASERK", file), *t;
	unsigned char key[128], back[64];
	char out[128];
	size_t i, klen;

	*ncases = 0;
	if (!root)
		return;
	json_array_foreach(json_object_get(root, "tests"), i, t)
	{
		struct gg_err err = GG_ERR_INIT;

		klen = unhex(key, sizeof(key), str(t, "key"));
		if (expect_fail(t)) {
			ck_assert_msg(enc(out, sizeof(out), key, klen, &err) !=
					      GG_OK,
				      "%s: must fail", str(t, "name"));
			ck_assert_msg(err.msg[0] != '\0', "no message");
		} else {
			ck_assert_int_eq(enc(out, sizeof(out), key, klen, &err),
					 GG_OK);
			ck_assert_str_eq(out, str(t, "paserk"));
			if (dec) {
				ck_assert_int_eq(
					dec(back, out, strlen(out), &err),
					GG_OK);
				ck_assert(memcmp(back, key, klen) == 0);
			}
		}
		(*ncases)++;
	}
	json_decref(root);
}

static int dec_public(unsigned char *key, const char *text, size_t len,
		      struct gg_err *err)
{
	return paserk_public_decode(key, text, len, err);
}

static int dec_secret(unsigned char *key, const char *text, size_t len,
		      struct gg_err *err)
{
	return paserk_secret_decode(key, text, len, err);
}

START_TEST(test_vectors_public)
{
	size_t n;

	run_file("k4.public.json", paserk_public_encode, dec_public, &n);
	printf("k4.public.json: %zu cases\n", n);
}
END_TEST

START_TEST(test_vectors_secret)
{
	size_t n;

	run_file("k4.secret.json", paserk_secret_encode, dec_secret, &n);
	printf("k4.secret.json: %zu cases\n", n);
}
END_TEST

START_TEST(test_vectors_pid)
{
	size_t n;

	run_file("k4.pid.json", paserk_pid, NULL, &n);
	printf("k4.pid.json: %zu cases\n", n);
}
END_TEST

/* k4.secret-1 of the vectors, used for hand-made variants below. */
static const char *secret1 =
	"k4.secret.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA7aie8zrakLWKjqNAq"
	"bw1zZTIVdx3iQ6Y6wEihi1naKQ";

START_TEST(test_secret_inconsistent_halves)
{
	unsigned char sk[64];
	char text[PASERK_SECRET_SIZE], out[PASERK_SECRET_SIZE];
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(
		paserk_secret_decode(sk, secret1, strlen(secret1), &err),
		GG_OK);
	/* flip one bit of the public half: decode and encode refuse */
	sk[40] ^= 1;
	ck_assert_int_eq(paserk_secret_encode(out, sizeof(out), sk, 64, &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, "k4.secret key's public half does not "
				  "match its seed");
	memcpy(text, "k4.secret.", 10);
	sodium_bin2base64(text + 10, sizeof(text) - 10, sk, 64,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	gg_err_init(&err);
	ck_assert_int_eq(paserk_secret_decode(sk, text, strlen(text), &err),
			 GG_EINVAL);
	/* the output is wiped on failure */
	ck_assert(sodium_is_zero(sk, 64));
}
END_TEST

static const struct {
	const char *text;
	const char *msg;
} bad_public[] = {
	{"", "not a k4.public key"},
	{"k3.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8",
	 "not a k4.public key"},
	{"k4.local.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8",
	 "not a k4.public key"},
	{"k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo",
	 "k4.public key has the wrong length"},
	{"k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8A",
	 "k4.public key has the wrong length"},
	{"k4.public.cHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo8",
	 "k4.public key is not canonical base64url"},
	/* last character with unused low bits set */
	{"k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo9",
	 "k4.public key is not canonical base64url"},
	{"k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8\n",
	 "k4.public key has the wrong length"},
};

START_TEST(test_public_decode_errors)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char pk[32];

	ck_assert_int_eq(paserk_public_decode(pk, bad_public[_i].text,
					      strlen(bad_public[_i].text),
					      &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, bad_public[_i].msg);
}
END_TEST

START_TEST(test_secret_decode_errors)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char sk[64];
	const char *pub =
		"k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8";

	ck_assert_int_eq(paserk_secret_decode(sk, pub, strlen(pub), &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, "not a k4.secret key");
	gg_err_init(&err);
	ck_assert_int_eq(
		paserk_secret_decode(sk, secret1, strlen(secret1) - 1, &err),
		GG_EINVAL);
	ck_assert_str_eq(err.msg, "k4.secret key has the wrong length");
}
END_TEST

START_TEST(test_pid_of_generated_key)
{
	unsigned char pk[32], sk[64], back[32];
	char pub[PASERK_PUBLIC_SIZE], pid[PASERK_PID_SIZE];

	crypto_sign_keypair(pk, sk);
	ck_assert_int_eq(paserk_public_encode(pub, sizeof(pub), pk, 32, NULL),
			 GG_OK);
	ck_assert_uint_eq(strlen(pub), PASERK_PUBLIC_LEN);
	ck_assert_int_eq(paserk_public_decode(back, pub, strlen(pub), NULL),
			 GG_OK);
	ck_assert(memcmp(back, pk, 32) == 0);
	ck_assert_int_eq(paserk_pid(pid, sizeof(pid), pk, 32, NULL), GG_OK);
	ck_assert_uint_eq(strlen(pid), PASERK_PID_LEN);
	ck_assert(!strncmp(pid, "k4.pid.", 7));
}
END_TEST

START_TEST(test_small_buffers)
{
	unsigned char pk[32] = {0};
	char out[PASERK_PUBLIC_SIZE];
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(
		paserk_public_encode(out, PASERK_PUBLIC_LEN, pk, 32, &err),
		GG_ELIMIT);
	gg_err_init(&err);
	ck_assert_int_eq(paserk_pid(out, PASERK_PID_LEN, pk, 32, &err),
			 GG_ELIMIT);
}
END_TEST

static Suite *paserk_suite(void)
{
	Suite *s = suite_create("paserk");
	TCase *tc = tcase_create("core"), *vec = tcase_create("vectors");

	tcase_add_test(vec, test_vectors_public);
	tcase_add_test(vec, test_vectors_secret);
	tcase_add_test(vec, test_vectors_pid);
	suite_add_tcase(s, vec);
	tcase_add_test(tc, test_secret_inconsistent_halves);
	tcase_add_loop_test(tc, test_public_decode_errors, 0,
			    sizeof(bad_public) / sizeof(bad_public[0]));
	tcase_add_test(tc, test_secret_decode_errors);
	tcase_add_test(tc, test_pid_of_generated_key);
	tcase_add_test(tc, test_small_buffers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return vectors_main(paserk_suite());
}

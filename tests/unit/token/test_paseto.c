/*
 * test_paseto.c - PAE, v4.public sign/verify, framing errors, and every
 * case of the official v4 vectors ($GG_SHARED_DIR/vectors/v4.json).
 */
#include <check.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/token/paseto.h"
#include "vectors.h"

/* ---- helpers ---------------------------------------------------------- */

/* Standard v4 test key pair (4-S-1). */
static const char *std_pk_hex =
	"1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2";
static const char *std_sk_hex =
	"b4cbfb43df4ce210727d953e4a713307fa19bb7d9f85041438d9e11b942a3774"
	"1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2";

static void std_keys(unsigned char pk[32], unsigned char sk[64])
{
	unhex(pk, 32, std_pk_hex);
	unhex(sk, 64, std_sk_hex);
}

/* Split and check in one go, as a verifier would. */
static int verify(const char *token, const unsigned char pk[32],
		  const char *implicit, struct gg_err *err)
{
	struct paseto_msg msg;
	int rc;

	rc = paseto_v4_public_split(&msg, token, strlen(token), err);
	if (rc == GG_OK)
		rc = paseto_v4_public_check(&msg, pk, implicit,
					    implicit ? strlen(implicit) : 0,
					    err);
	paseto_msg_release(&msg);
	return rc;
}

/* ---- PAE -------------------------------------------------------------- */

START_TEST(test_pae_spec_examples)
{
	static const unsigned char empty[8] = {0};
	static const unsigned char one_empty[16] = {1};
	static const unsigned char test[] = {1, 0, 0,	0,   0,	  0,  0,
					     0, 4, 0,	0,   0,	  0,  0,
					     0, 0, 't', 'e', 's', 't'};
	struct paseto_piece p[2] = {{"", 0}, {"test", 4}};
	unsigned char *out;
	size_t len;

	ck_assert_int_eq(paseto_pae(&out, &len, NULL, 0, NULL), GG_OK);
	ck_assert(len == 8 && memcmp(out, empty, 8) == 0);
	free(out);
	ck_assert_int_eq(paseto_pae(&out, &len, p, 1, NULL), GG_OK);
	ck_assert(len == 16 && memcmp(out, one_empty, 16) == 0);
	free(out);
	ck_assert_int_eq(paseto_pae(&out, &len, p + 1, 1, NULL), GG_OK);
	ck_assert(len == sizeof(test) && memcmp(out, test, len) == 0);
	free(out);
}
END_TEST

START_TEST(test_pae_two_pieces)
{
	struct paseto_piece p[2] = {{"ab", 2}, {"c", 1}};
	static const unsigned char want[] = {2, 0, 0, 0, 0, 0, 0, 0,   2,
					     0, 0, 0, 0, 0, 0, 0, 'a', 'b',
					     1, 0, 0, 0, 0, 0, 0, 0,   'c'};
	unsigned char *out;
	size_t len;

	ck_assert_int_eq(paseto_pae(&out, &len, p, 2, NULL), GG_OK);
	ck_assert(len == sizeof(want) && memcmp(out, want, len) == 0);
	free(out);
}
END_TEST

/* ---- official vectors ------------------------------------------------- */

static void run_sign_case(json_t *t)
{
	unsigned char pk[32], sk[64];
	const char *payload = str(t, "payload"), *footer = str(t, "footer");
	const char *implicit = str(t, "implicit-assertion");
	struct gg_err err = GG_ERR_INIT;
	struct paseto_msg msg;
	char *token;

	ck_assert_uint_eq(unhex(pk, 32, str(t, "public-key")), 32);
	ck_assert_uint_eq(unhex(sk, 64, str(t, "secret-key")), 64);
	ck_assert_int_eq(paseto_v4_public_sign(&token, payload, strlen(payload),
					       footer, strlen(footer), implicit,
					       strlen(implicit), sk, &err),
			 GG_OK);
	/* Ed25519 is deterministic: byte-exact tokens. */
	ck_assert_str_eq(token, str(t, "token"));
	free(token);
	ck_assert_int_eq(verify(str(t, "token"), pk, implicit, &err), GG_OK);
	ck_assert_int_eq(paseto_v4_public_split(&msg, str(t, "token"),
						strlen(str(t, "token")), &err),
			 GG_OK);
	ck_assert(msg.mlen == strlen(payload) &&
		  memcmp(msg.m, payload, msg.mlen) == 0);
	ck_assert(msg.flen == strlen(footer) &&
		  memcmp(msg.footer, footer, msg.flen) == 0);
	ck_assert(msg.has_footer == (footer[0] != '\0'));
	paseto_msg_release(&msg);
	/* The implicit assertion is bound: dropping or changing it fails. */
	if (implicit[0]) {
		gg_err_init(&err);
		ck_assert_int_eq(verify(str(t, "token"), pk, NULL, &err),
				 GG_EBADSIG);
		ck_assert_str_eq(err.msg, "bad signature");
	}
}

static void run_fail_case(json_t *t)
{
	const char *implicit = str(t, "implicit-assertion");
	struct gg_err err = GG_ERR_INIT;
	unsigned char pk[32], sk[64];

	std_keys(pk, sk);
	if (str(t, "public-key"))
		unhex(pk, 32, str(t, "public-key"));
	ck_assert_int_ne(verify(str(t, "token"), pk, implicit, &err), GG_OK);
	ck_assert(!strncmp(err.msg, "malformed: ", 11) ||
		  !strcmp(err.msg, "bad signature"));
}

/* v4.local: version/purpose confusion must fail at the framing. */
static void run_local_case(json_t *t)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char pk[32], sk[64];

	std_keys(pk, sk);
	ck_assert_int_eq(verify(str(t, "token"), pk, NULL, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "malformed: v4.local token, want v4.public");
}

START_TEST(test_official_vectors)
{
	json_t *root = vectors_load(NULL, "v4.json"), *t;
	size_t i, nsign = 0, nfail = 0, nlocal = 0;
	const char *name;

	if (!root)
		return;
	json_array_foreach(json_object_get(root, "tests"), i, t)
	{
		name = str(t, "name");
		if (!strncmp(name, "4-S-", 4)) {
			ck_assert(!expect_fail(t));
			run_sign_case(t);
			nsign++;
		} else if (!strncmp(name, "4-F-", 4)) {
			ck_assert(expect_fail(t));
			run_fail_case(t);
			nfail++;
		} else if (!strncmp(name, "4-E-", 4)) {
			run_local_case(t);
			nlocal++;
		} else {
			ck_abort_msg("unknown vector %s", name);
		}
	}
	printf("v4.json: %zu sign, %zu must-fail, %zu v4.local cases\n", nsign,
	       nfail, nlocal);
	ck_assert_uint_eq(nsign + nfail + nlocal, 17);
	ck_assert_uint_ge(nsign, 3);
	json_decref(root);
}
END_TEST

/* ---- sign/verify properties ------------------------------------------- */

static char *sign_std(const char *m, const char *f)
{
	unsigned char pk[32], sk[64];
	char *token;

	std_keys(pk, sk);
	ck_assert_int_eq(paseto_v4_public_sign(&token, m, strlen(m), f,
					       strlen(f), NULL, 0, sk, NULL),
			 GG_OK);
	return token;
}

START_TEST(test_roundtrip_no_footer)
{
	unsigned char pk[32], sk[64];
	char *token = sign_std("{\"a\":1}", "");

	std_keys(pk, sk);
	ck_assert(strchr(token + 10, '.') == NULL);
	ck_assert_int_eq(verify(token, pk, NULL, NULL), GG_OK);
	free(token);
}
END_TEST

START_TEST(test_empty_message)
{
	unsigned char pk[32], sk[64];
	char *token = sign_std("", "");

	std_keys(pk, sk);
	ck_assert_int_eq(verify(token, pk, NULL, NULL), GG_OK);
	free(token);
}
END_TEST

/* Re-sign the split parts with one byte changed in the decoded body. */
static char *reassemble(const unsigned char *body, size_t blen,
			const char *footer)
{
	char *t = malloc(10 + blen * 2 + 2 + strlen(footer) * 2 + 1);

	memcpy(t, "v4.public.", 10);
	sodium_bin2base64(t + 10, blen * 2 + 2, body, blen,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (footer[0]) {
		size_t n = strlen(t);

		t[n] = '.';
		sodium_bin2base64(t + n + 1, strlen(footer) * 2 + 1,
				  (const unsigned char *)footer, strlen(footer),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
	return t;
}

START_TEST(test_tampering)
{
	unsigned char pk[32], sk[64], body[256];
	char *token = sign_std("{\"sub\":\"x\"}", "{\"kid\":\"k\"}"), *bad;
	struct gg_err err;
	struct paseto_msg msg;
	size_t blen, i;

	std_keys(pk, sk);
	ck_assert_int_eq(
		paseto_v4_public_split(&msg, token, strlen(token), NULL),
		GG_OK);
	blen = msg.mlen + 64;
	memcpy(body, msg.m, blen);
	paseto_msg_release(&msg);
	/* every byte of payload and signature */
	for (i = 0; i < blen; i++) {
		body[i] ^= 0x01;
		bad = reassemble(body, blen, "{\"kid\":\"k\"}");
		gg_err_init(&err);
		ck_assert_int_eq(verify(bad, pk, NULL, &err), GG_EBADSIG);
		free(bad);
		body[i] ^= 0x01;
	}
	/* footer changed */
	bad = reassemble(body, blen, "{\"kid\":\"j\"}");
	ck_assert_int_eq(verify(bad, pk, NULL, NULL), GG_EBADSIG);
	free(bad);
	/* footer dropped */
	bad = reassemble(body, blen, "");
	ck_assert_int_eq(verify(bad, pk, NULL, NULL), GG_EBADSIG);
	free(bad);
	/* untouched still verifies */
	bad = reassemble(body, blen, "{\"kid\":\"k\"}");
	ck_assert_str_eq(bad, token);
	free(bad);
	free(token);
}
END_TEST

START_TEST(test_wrong_key)
{
	unsigned char pk[32], sk[64];
	struct gg_err err = GG_ERR_INIT;
	char *token = sign_std("{}", "");

	crypto_sign_keypair(pk, sk);
	ck_assert_int_eq(verify(token, pk, NULL, &err), GG_EBADSIG);
	ck_assert_str_eq(err.msg, "bad signature");
	free(token);
}
END_TEST

START_TEST(test_implicit_assertion)
{
	unsigned char pk[32], sk[64];
	char *token;

	std_keys(pk, sk);
	ck_assert_int_eq(
		paseto_v4_public_sign(&token, "m", 1, "", 0, "ia", 2, sk, NULL),
		GG_OK);
	ck_assert_int_eq(verify(token, pk, "ia", NULL), GG_OK);
	ck_assert_int_eq(verify(token, pk, "ib", NULL), GG_EBADSIG);
	ck_assert_int_eq(verify(token, pk, NULL, NULL), GG_EBADSIG);
	free(token);
}
END_TEST

/* ---- framing ---------------------------------------------------------- */

static const struct {
	const char *token;
	const char *msg;
} framing[] = {
	{"", "malformed: not a v4.public token"},
	{"v4.public", "malformed: not a v4.public token"},
	{"V4.PUBLIC.AAAA", "malformed: not a v4.public token"},
	{"v4.local.AAAA", "malformed: v4.local token, want v4.public"},
	{"v3.public.AAAA", "malformed: v3.public token, want v4.public"},
	{"v2.public.AAAA", "malformed: v2.public token, want v4.public"},
	{"v2.local.AAAA", "malformed: v2.local token, want v4.public"},
	{"v1.local.AAAA", "malformed: v1.local token, want v4.public"},
	{"v4.secret.AAAA", "malformed: not a v4.public token"},
	{"v4.public.", "malformed: token too short for a signature"},
	{"v4.public.AAAA", "malformed: token too short for a signature"},
	{"v4.public.AAAA.", "malformed: empty footer after '.'"},
	{"v4.public.AAAA.AA.AA", "malformed: too many '.' separators"},
};

START_TEST(test_framing_errors)
{
	struct gg_err err = GG_ERR_INIT;
	struct paseto_msg msg;

	ck_assert_int_eq(paseto_v4_public_split(&msg, framing[_i].token,
						strlen(framing[_i].token),
						&err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, framing[_i].msg);
	ck_assert_ptr_null(msg.buf);
}
END_TEST

/* Valid framing with one defect in the base64 of body or footer. */
START_TEST(test_framing_base64)
{
	char *token = sign_std("{}", "{\"kid\":\"k\"}"), *dot, buf[512];
	struct gg_err err;
	struct paseto_msg msg;

	dot = strrchr(token, '.');
	/* padding on the body */
	snprintf(buf, sizeof(buf), "%.*s==%s", (int)(dot - token), token, dot);
	gg_err_init(&err);
	ck_assert_int_eq(paseto_v4_public_split(&msg, buf, strlen(buf), &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg,
			 "malformed: payload is not canonical base64url");
	/* bad character in the footer */
	snprintf(buf, sizeof(buf), "%s!", token);
	gg_err_init(&err);
	ck_assert_int_eq(paseto_v4_public_split(&msg, buf, strlen(buf), &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg,
			 "malformed: footer is not canonical base64url");
	/* high byte in the body (libsodium 1.0.18 alone would accept it) */
	snprintf(buf, sizeof(buf), "%s", token);
	buf[20] = (char)0xc3;
	gg_err_init(&err);
	ck_assert_int_eq(paseto_v4_public_split(&msg, buf, strlen(buf), &err),
			 GG_EINVAL);
	free(token);
}
END_TEST

START_TEST(test_split_footer_nul_terminated)
{
	char *token = sign_std("{}", "{\"kid\":\"k\"}");
	struct paseto_msg msg;

	ck_assert_int_eq(
		paseto_v4_public_split(&msg, token, strlen(token), NULL),
		GG_OK);
	ck_assert(msg.has_footer);
	ck_assert_str_eq((const char *)msg.footer, "{\"kid\":\"k\"}");
	paseto_msg_release(&msg);
	paseto_msg_release(&msg); /* idempotent */
	free(token);
}
END_TEST

static Suite *paseto_suite(void)
{
	Suite *s = suite_create("paseto");
	TCase *tc = tcase_create("core"), *vec = tcase_create("vectors");

	tcase_add_test(vec, test_official_vectors);
	suite_add_tcase(s, vec);
	tcase_add_test(tc, test_pae_spec_examples);
	tcase_add_test(tc, test_pae_two_pieces);
	tcase_add_test(tc, test_roundtrip_no_footer);
	tcase_add_test(tc, test_empty_message);
	tcase_add_test(tc, test_tampering);
	tcase_add_test(tc, test_wrong_key);
	tcase_add_test(tc, test_implicit_assertion);
	tcase_add_loop_test(tc, test_framing_errors, 0,
			    sizeof(framing) / sizeof(framing[0]));
	tcase_add_test(tc, test_framing_base64);
	tcase_add_test(tc, test_split_footer_nul_terminated);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return vectors_main(paseto_suite());
}

/* test_b64.c - strict unpadded base64url. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/token/b64.h"

static const struct {
	const char *bin;
	const char *text;
} rfc4648[] = {
	{"", ""},
	{"f", "Zg"},
	{"fo", "Zm8"},
	{"foo", "Zm9v"},
	{"foob", "Zm9vYg"},
	{"fooba", "Zm9vYmE"},
	{"foobar", "Zm9vYmFy"},
};

START_TEST(test_encode_rfc4648)
{
	const char *bin = rfc4648[_i].bin, *text = rfc4648[_i].text;
	struct gg_err err = GG_ERR_INIT;
	char out[16];

	ck_assert_uint_eq(b64_encoded_len(strlen(bin)), strlen(text));
	ck_assert_int_eq(b64_encode(out, sizeof(out), bin, strlen(bin), &err),
			 GG_OK);
	ck_assert_str_eq(out, text);
}
END_TEST

START_TEST(test_decode_rfc4648)
{
	const char *bin = rfc4648[_i].bin, *text = rfc4648[_i].text;
	struct gg_err err = GG_ERR_INIT;
	unsigned char out[16];
	size_t n = 99;

	ck_assert_int_eq(
		b64_decode(out, sizeof(out), &n, text, strlen(text), &err),
		GG_OK);
	ck_assert_uint_eq(n, strlen(bin));
	ck_assert(memcmp(out, bin, n) == 0);
}
END_TEST

START_TEST(test_urlsafe_alphabet)
{
	const unsigned char bin[] = {0xfb, 0xff, 0xbf};
	struct gg_err err = GG_ERR_INIT;
	unsigned char back[3];
	char out[8];
	size_t n;

	ck_assert_int_eq(b64_encode(out, sizeof(out), bin, 3, &err), GG_OK);
	ck_assert_str_eq(out, "-_-_");
	ck_assert_int_eq(b64_decode(back, 3, &n, "-_-_", 4, &err), GG_OK);
	ck_assert(n == 3 && memcmp(back, bin, 3) == 0);
}
END_TEST

START_TEST(test_roundtrip_all_lengths)
{
	unsigned char bin[100], back[100];
	char text[140];
	size_t len, n, i;

	for (len = 0; len <= sizeof(bin); len++) {
		for (i = 0; i < len; i++)
			bin[i] = (unsigned char)(i * 37 + len);
		ck_assert_int_eq(b64_encode(text, sizeof(text), bin, len, NULL),
				 GG_OK);
		ck_assert_uint_eq(strlen(text), b64_encoded_len(len));
		ck_assert_uint_ge(b64_decoded_max(strlen(text)), len);
		ck_assert_int_eq(b64_decode(back, sizeof(back), &n, text,
					    strlen(text), NULL),
				 GG_OK);
		ck_assert_uint_eq(n, len);
		ck_assert(memcmp(bin, back, len) == 0);
	}
}
END_TEST

/* Every one of these must be refused: one byte string, one text. */
static const char *const bad[] = {
	"Zg==",	   /* padding */
	"Zg=",	   /* partial padding */
	"Zm9v=",   /* padding after a full group */
	"Zm8=",	   /* padding */
	"Zh",	   /* non-canonical: unused low bits set */
	"Zm9",	   /* non-canonical: 'Zm9' has low bits set */
	"Z",	   /* impossible length (4n+1) */
	"Zm9vY",   /* impossible length */
	"+/8",	   /* standard alphabet, not URL-safe */
	"Zm 9v",   /* whitespace inside */
	"Zm9v\n",  /* trailing newline */
	" Zm9v",   /* leading space */
	"Zm9v!",   /* trailing garbage */
	"Zm9v.Zg", /* a dot */
	"Zm\x80v", /* non-ASCII: libsodium 1.0.18 alone accepts these */
	"Zm9\xff", "Zm\xc3\xa9v",
};

START_TEST(test_decode_rejects)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char out[16];
	size_t n = 99;

	ck_assert_int_eq(b64_decode(out, sizeof(out), &n, bad[_i],
				    strlen(bad[_i]), &err),
			 GG_EINVAL);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(err.msg, "invalid base64url");
}
END_TEST

START_TEST(test_decode_embedded_nul)
{
	unsigned char out[16];
	size_t n;

	ck_assert_int_eq(b64_decode(out, sizeof(out), &n, "Zm\0v", 4, NULL),
			 GG_EINVAL);
}
END_TEST

/* Exhaustive: exactly the 64 alphabet characters are accepted. */
START_TEST(test_decode_alphabet_exhaustive)
{
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			       "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char out[8];
	char text[4] = {'Z', 'm', 0, 'v'};
	size_t n;
	int c, rc;

	for (c = 0; c < 256; c++) {
		text[2] = (char)c;
		rc = b64_decode(out, sizeof(out), &n, text, 4, NULL);
		if (c != 0 && strchr(alphabet, c))
			ck_assert_int_eq(rc, GG_OK);
		else
			ck_assert_int_eq(rc, GG_EINVAL);
	}
}
END_TEST

START_TEST(test_decode_empty)
{
	unsigned char out[1];
	size_t n = 99;

	ck_assert_int_eq(b64_decode(out, sizeof(out), &n, "", 0, NULL), GG_OK);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_buffers_too_small)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char out[2];
	char text[4];
	size_t n;

	ck_assert_int_eq(b64_decode(out, sizeof(out), &n, "Zm9v", 4, &err),
			 GG_ELIMIT);
	gg_err_init(&err);
	/* "foo" needs 4 characters plus the NUL. */
	ck_assert_int_eq(b64_encode(text, sizeof(text), "foo", 3, &err),
			 GG_ELIMIT);
}
END_TEST

static Suite *b64_suite(void)
{
	Suite *s = suite_create("b64");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_encode_rfc4648, 0,
			    sizeof(rfc4648) / sizeof(rfc4648[0]));
	tcase_add_loop_test(tc, test_decode_rfc4648, 0,
			    sizeof(rfc4648) / sizeof(rfc4648[0]));
	tcase_add_test(tc, test_urlsafe_alphabet);
	tcase_add_test(tc, test_roundtrip_all_lengths);
	tcase_add_loop_test(tc, test_decode_rejects, 0,
			    sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_decode_embedded_nul);
	tcase_add_test(tc, test_decode_alphabet_exhaustive);
	tcase_add_test(tc, test_decode_empty);
	tcase_add_test(tc, test_buffers_too_small);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(b64_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

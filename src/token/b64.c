/*
 * b64.c - strict base64url on top of libsodium's constant-time codec.
 *
 * sodium_base642bin with the URLSAFE_NO_PADDING variant, ignore == NULL and
 * b64_end == NULL rejects padding, ASCII characters outside the alphabet,
 * trailing garbage and non-canonical final bits (see tests/unit/test_b64.c).
 * But libsodium 1.0.18 decodes every byte 0x80-0xff as if it were an
 * alphabet character, which would let anyone rewrite a token's text
 * without changing its signed bytes; so the alphabet is checked here first.
 */
#include "gitgate/token/b64.h"

#include <sodium.h>
#include <stdint.h>

size_t b64_encoded_len(size_t binlen)
{
	/* 4 characters per 3 bytes, the last group without padding. */
	return binlen / 3 * 4 + (binlen % 3 ? binlen % 3 + 1 : 0);
}

size_t b64_decoded_max(size_t textlen)
{
	return textlen / 4 * 3 + (textlen % 4 ? (textlen % 4) * 3 / 4 : 0);
}

int b64_encode(char *out, size_t outsz, const void *bin, size_t binlen,
	       struct gg_err *err)
{
	if (binlen > (SIZE_MAX - 1) / 4 * 3 - 3)
		return gg_err_set(err, GG_ELIMIT, "base64url input too long");
	/* b64_encoded_len + 1 is exactly libsodium's
	 * sodium_base64_ENCODED_LEN for the no-padding variant; a smaller
	 * buffer would make sodium_bin2base64 abort. */
	if (outsz < b64_encoded_len(binlen) + 1)
		return gg_err_set(err, GG_ELIMIT,
				  "base64url output buffer too small");
	sodium_bin2base64(out, outsz, bin, binlen,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return GG_OK;
}

/* Is every character in [A-Za-z0-9_-]? Branch-free per character, since
 * key files pass through here too. */
static int alphabet_ok(const char *text, size_t len)
{
	unsigned bad = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned c = (unsigned char)text[i];
		unsigned ok =
			((c >= 'A') & (c <= 'Z')) | ((c >= 'a') & (c <= 'z')) |
			((c >= '0') & (c <= '9')) | (c == '-') | (c == '_');

		bad |= ok ^ 1u;
	}
	return bad == 0;
}

int b64_decode(void *out, size_t outsz, size_t *outlen, const char *text,
	       size_t textlen, struct gg_err *err)
{
	size_t n = 0;

	*outlen = 0;
	if (b64_decoded_max(textlen) > outsz)
		return gg_err_set(err, GG_ELIMIT,
				  "base64url input too long (%zu characters)",
				  textlen);
	if (!alphabet_ok(text, textlen) ||
	    sodium_base642bin(out, outsz, text, textlen, NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return gg_err_set(err, GG_EINVAL, "invalid base64url");
	*outlen = n;
	return GG_OK;
}

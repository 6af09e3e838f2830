/*
 * paseto.c - PASETO v4.public on libsodium's Ed25519.
 *
 * Spec: https://github.com/paseto-standard/paseto-spec (Version4.md, "Sign"
 * and "Verify"; Common.md, "PAE").
 */
#include "gitgate/token/paseto.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/token/b64.h"

#define HEADER_LEN (sizeof(PASETO_V4_PUBLIC_HEADER) - 1)

static void le64(unsigned char out[8], uint64_t n)
{
	int i;

	/* The spec clears the top bit so the encoding is also valid for
	 * languages without unsigned 64-bit integers. */
	n &= UINT64_MAX >> 1;
	for (i = 0; i < 8; i++) {
		out[i] = (unsigned char)(n & 0xff);
		n >>= 8;
	}
}

int paseto_pae(unsigned char **out, size_t *outlen,
	       const struct paseto_piece *pieces, size_t n, struct gg_err *err)
{
	unsigned char *buf, *p;
	size_t total = 8, i;

	*out = NULL;
	*outlen = 0;
	for (i = 0; i < n; i++) {
		if (pieces[i].len > SIZE_MAX - 8 - total)
			return gg_err_set(err, GG_ELIMIT, "PAE input too long");
		total += 8 + pieces[i].len;
	}
	buf = malloc(total);
	if (!buf)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	p = buf;
	le64(p, n);
	p += 8;
	for (i = 0; i < n; i++) {
		le64(p, pieces[i].len);
		p += 8;
		if (pieces[i].len)
			memcpy(p, pieces[i].data, pieces[i].len);
		p += pieces[i].len;
	}
	*out = buf;
	*outlen = total;
	return GG_OK;
}

void paseto_msg_init(struct paseto_msg *msg)
{
	memset(msg, 0, sizeof(*msg));
}

void paseto_msg_release(struct paseto_msg *msg)
{
	free(msg->buf);
	paseto_msg_init(msg);
}

/* Name the wrong kind of token without echoing it. */
static int wrong_header(const char *token, size_t len, struct gg_err *err)
{
	static const char *const known[] = {
		"v4.local.", "v3.public.", "v3.local.", "v2.public.",
		"v2.local.", "v1.public.", "v1.local."};
	size_t i, klen;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		klen = strlen(known[i]);
		if (len >= klen && !memcmp(token, known[i], klen))
			return gg_err_set(
				err, GG_EINVAL,
				"malformed: %.*s token, want v4.public",
				(int)(klen - 1), known[i]);
	}
	return gg_err_set(err, GG_EINVAL, "malformed: not a v4.public token");
}

/* Decode one base64url part into dst; what names it in the message. */
static int decode_part(unsigned char *dst, size_t cap, size_t *outlen,
		       const char *text, size_t len, const char *what,
		       struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;

	if (b64_decode(dst, cap, outlen, text, len, &inner) != GG_OK)
		return gg_err_set(err, GG_EINVAL,
				  "malformed: %s is not canonical base64url",
				  what);
	return GG_OK;
}

int paseto_v4_public_split(struct paseto_msg *out, const char *token,
			   size_t len, struct gg_err *err)
{
	const char *body, *dot, *foot = NULL;
	size_t blen, footlen = 0, bcap, fcap, n;
	unsigned char *buf;
	int rc;

	paseto_msg_init(out);
	if (len < HEADER_LEN ||
	    memcmp(token, PASETO_V4_PUBLIC_HEADER, HEADER_LEN) != 0)
		return wrong_header(token, len, err);
	body = token + HEADER_LEN;
	blen = len - HEADER_LEN;
	dot = memchr(body, '.', blen);
	if (dot) {
		foot = dot + 1;
		footlen = blen - (size_t)(foot - body);
		blen = (size_t)(dot - body);
		if (footlen == 0)
			return gg_err_set(err, GG_EINVAL,
					  "malformed: empty footer after '.'");
		if (memchr(foot, '.', footlen))
			return gg_err_set(err, GG_EINVAL,
					  "malformed: too many '.' separators");
	}
	bcap = b64_decoded_max(blen);
	fcap = b64_decoded_max(footlen);
	if (bcap < PASETO_V4_SIG_LEN)
		return gg_err_set(err, GG_EINVAL,
				  "malformed: token too short for a signature");
	/* One allocation: body, then footer plus a NUL terminator. Both caps
	 * are below len, so the sum cannot overflow. */
	buf = malloc(bcap + fcap + 1);
	if (!buf)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	rc = decode_part(buf, bcap, &n, body, blen, "payload", err);
	if (rc != GG_OK)
		goto out;
	if (n < PASETO_V4_SIG_LEN) {
		rc = gg_err_set(err, GG_EINVAL,
				"malformed: token too short for a signature");
		goto out;
	}
	out->m = buf;
	out->mlen = n - PASETO_V4_SIG_LEN;
	out->sig = buf + out->mlen;
	out->footer = buf + bcap;
	if (foot) {
		rc = decode_part(buf + bcap, fcap, &out->flen, foot, footlen,
				 "footer", err);
		if (rc != GG_OK)
			goto out;
		out->has_footer = true;
	}
	buf[bcap + out->flen] = '\0';
	out->buf = buf;
	buf = NULL;
	rc = GG_OK;
out:
	if (buf) {
		free(buf);
		paseto_msg_init(out);
	}
	return rc;
}

int paseto_v4_public_check(const struct paseto_msg *msg,
			   const unsigned char pk[PASETO_V4_PK_LEN],
			   const void *implicit, size_t ilen,
			   struct gg_err *err)
{
	struct paseto_piece pieces[4] = {
		{PASETO_V4_PUBLIC_HEADER, HEADER_LEN},
		{msg->m, msg->mlen},
		{msg->footer, msg->flen},
		{implicit, ilen},
	};
	unsigned char *m2 = NULL;
	size_t m2len;
	int rc;

	if (!msg->sig)
		return gg_err_set(err, GG_EINVAL, "malformed: empty token");
	rc = paseto_pae(&m2, &m2len, pieces, 4, err);
	if (rc != GG_OK)
		return rc;
	if (crypto_sign_verify_detached(msg->sig, m2, m2len, pk) != 0)
		rc = gg_err_set(err, GG_EBADSIG, "bad signature");
	free(m2);
	return rc;
}

/* Assemble header || b64(m || sig) [ "." b64(footer) ] into *out. */
static int assemble(char **out, const unsigned char *msig, size_t msiglen,
		    const void *footer, size_t flen, struct gg_err *err)
{
	size_t blen = b64_encoded_len(msiglen), flen64 = 0, total;
	char *tok;
	int rc;

	if (flen)
		flen64 = 1 + b64_encoded_len(flen);
	total = HEADER_LEN + blen + flen64 + 1;
	tok = malloc(total);
	if (!tok)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	memcpy(tok, PASETO_V4_PUBLIC_HEADER, HEADER_LEN);
	rc = b64_encode(tok + HEADER_LEN, total - HEADER_LEN, msig, msiglen,
			err);
	if (rc == GG_OK && flen) {
		tok[HEADER_LEN + blen] = '.';
		rc = b64_encode(tok + HEADER_LEN + blen + 1,
				total - HEADER_LEN - blen - 1, footer, flen,
				err);
	}
	if (rc != GG_OK) {
		free(tok);
		return rc;
	}
	*out = tok;
	return GG_OK;
}

int paseto_v4_public_sign(char **out, const void *m, size_t mlen,
			  const void *footer, size_t flen, const void *implicit,
			  size_t ilen, const unsigned char sk[PASETO_V4_SK_LEN],
			  struct gg_err *err)
{
	struct paseto_piece pieces[4] = {
		{PASETO_V4_PUBLIC_HEADER, HEADER_LEN},
		{m, mlen},
		{footer, flen},
		{implicit, ilen},
	};
	unsigned char *m2 = NULL, *msig = NULL;
	size_t m2len;
	int rc;

	*out = NULL;
	/* Token sizes are bounded far below this; the check keeps the
	 * arithmetic below obviously safe. */
	if (mlen > SIZE_MAX / 4 || flen > SIZE_MAX / 4)
		return gg_err_set(err, GG_ELIMIT, "message too long");
	rc = paseto_pae(&m2, &m2len, pieces, 4, err);
	if (rc != GG_OK)
		goto out;
	msig = malloc(mlen + PASETO_V4_SIG_LEN);
	if (!msig) {
		rc = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	if (mlen)
		memcpy(msig, m, mlen);
	crypto_sign_detached(msig + mlen, NULL, m2, m2len, sk);
	rc = assemble(out, msig, mlen + PASETO_V4_SIG_LEN, footer, flen, err);
out:
	free(m2);
	free(msig);
	return rc;
}

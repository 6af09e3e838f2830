/*
 * paserk.c - k4.public / k4.secret / k4.pid (PASERK spec, "Types").
 *
 * Messages never quote key material; decode failures name only the kind of
 * problem.
 */
#include "gitgate/token/paserk.h"

#include <sodium.h>
#include <string.h>

#include "gitgate/token/b64.h"

#define PUBLIC_PREFIX "k4.public."
#define SECRET_PREFIX "k4.secret."
#define PID_PREFIX "k4.pid."
#define PLEN(s) (sizeof(s) - 1)
#define PID_HASH_LEN 33 /* BLAKE2b-264 */

/* Write prefix || base64url(bin) into out. */
static int encode(char *out, size_t outsz, const char *prefix, size_t plen,
		  const unsigned char *bin, size_t binlen, struct gg_err *err)
{
	if (outsz < plen + b64_encoded_len(binlen) + 1)
		return gg_err_set(err, GG_ELIMIT, "PASERK buffer too small");
	memcpy(out, prefix, plen);
	return b64_encode(out + plen, outsz - plen, bin, binlen, err);
}

/* Check prefix and decode exactly want bytes into out. */
static int decode(unsigned char *out, size_t want, const char *text, size_t len,
		  const char *prefix, size_t plen, struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;
	unsigned char buf[64 + 3];
	size_t n;
	int rc;

	if (len < plen || memcmp(text, prefix, plen) != 0)
		return gg_err_set(err, GG_EINVAL, "not a %.*s key",
				  (int)(plen - 1), prefix);
	if (len - plen != b64_encoded_len(want))
		return gg_err_set(err, GG_EINVAL,
				  "%.*s key has the wrong length",
				  (int)(plen - 1), prefix);
	rc = b64_decode(buf, sizeof(buf), &n, text + plen, len - plen, &inner);
	if (rc != GG_OK || n != want) {
		rc = gg_err_set(err, GG_EINVAL,
				"%.*s key is not canonical base64url",
				(int)(plen - 1), prefix);
		goto out;
	}
	memcpy(out, buf, want);
	rc = GG_OK;
out:
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

int paserk_public_encode(char *out, size_t outsz, const unsigned char *pk,
			 size_t keylen, struct gg_err *err)
{
	if (keylen != crypto_sign_PUBLICKEYBYTES)
		return gg_err_set(err, GG_EINVAL,
				  "k4.public key must be 32 bytes, not %zu",
				  keylen);
	return encode(out, outsz, PUBLIC_PREFIX, PLEN(PUBLIC_PREFIX), pk,
		      keylen, err);
}

int paserk_public_decode(unsigned char pk[32], const char *text, size_t len,
			 struct gg_err *err)
{
	return decode(pk, crypto_sign_PUBLICKEYBYTES, text, len, PUBLIC_PREFIX,
		      PLEN(PUBLIC_PREFIX), err);
}

/* Does the pk half of sk belong to its seed half? */
static int secret_consistent(const unsigned char *sk, struct gg_err *err)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char *derived;
	int rc = GG_OK;

	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR,
				  "libsodium failed to initialise");
	derived = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (!derived)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	crypto_sign_seed_keypair(pk, derived, sk);
	if (sodium_memcmp(derived, sk, crypto_sign_SECRETKEYBYTES) != 0)
		rc = gg_err_set(err, GG_EINVAL,
				"k4.secret key's public half does not match "
				"its seed");
	sodium_free(derived);
	return rc;
}

int paserk_secret_encode(char *out, size_t outsz, const unsigned char *sk,
			 size_t keylen, struct gg_err *err)
{
	int rc;

	if (keylen != crypto_sign_SECRETKEYBYTES)
		return gg_err_set(err, GG_EINVAL,
				  "k4.secret key must be 64 bytes, not %zu",
				  keylen);
	rc = secret_consistent(sk, err);
	if (rc != GG_OK)
		return rc;
	return encode(out, outsz, SECRET_PREFIX, PLEN(SECRET_PREFIX), sk,
		      keylen, err);
}

int paserk_secret_decode(unsigned char sk[64], const char *text, size_t len,
			 struct gg_err *err)
{
	int rc;

	rc = decode(sk, crypto_sign_SECRETKEYBYTES, text, len, SECRET_PREFIX,
		    PLEN(SECRET_PREFIX), err);
	if (rc == GG_OK)
		rc = secret_consistent(sk, err);
	if (rc != GG_OK)
		sodium_memzero(sk, crypto_sign_SECRETKEYBYTES);
	return rc;
}

int paserk_pid(char *out, size_t outsz, const unsigned char *pk, size_t keylen,
	       struct gg_err *err)
{
	char pub[PASERK_PUBLIC_SIZE];
	unsigned char hash[PID_HASH_LEN];
	crypto_generichash_state st;
	int rc;

	rc = paserk_public_encode(pub, sizeof(pub), pk, keylen, err);
	if (rc != GG_OK)
		return rc;
	/* The id hashes the header and the full PASERK string of the key,
	 * not the raw key bytes (checked by the k4.pid vectors). */
	crypto_generichash_init(&st, NULL, 0, sizeof(hash));
	crypto_generichash_update(&st, (const unsigned char *)PID_PREFIX,
				  PLEN(PID_PREFIX));
	crypto_generichash_update(&st, (const unsigned char *)pub,
				  PASERK_PUBLIC_LEN);
	crypto_generichash_final(&st, hash, sizeof(hash));
	return encode(out, outsz, PID_PREFIX, PLEN(PID_PREFIX), hash,
		      sizeof(hash), err);
}

/*
 * ghjwt.c - RS256 App JWTs with OpenSSL's libcrypto (see ghjwt.h).
 */
#include "gitgate/upstream/ghjwt.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "gitgate/config/config.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/token/b64.h"

struct ghjwt_key {
	EVP_PKEY *pkey;
};

/* Big enough for the private numbers of a few RSA-4096 keys and the
 * temporaries of signing with them; a power of two, as OpenSSL wants. */
#define SECURE_HEAP_SIZE (256 * 1024)

static pthread_once_t secure_once = PTHREAD_ONCE_INIT;

static void secure_heap_init(void)
{
	/* 0 or 2 means no (or an imperfect) secure heap: the key then lives
	 * in the ordinary heap, still out of core dumps (serve disables
	 * them) but swappable. Say so rather than fail: the limit is the
	 * host's (RLIMIT_MEMLOCK). */
	if (CRYPTO_secure_malloc_init(SECURE_HEAP_SIZE, 32) != 1)
		log_warnx("github_app: OpenSSL's secure heap is not "
			  "available (RLIMIT_MEMLOCK?): the App key is held "
			  "in ordinary memory");
}

/* OpenSSL's reason for the last failure, for a message; the queue is
 * cleared so it cannot leak into a later, unrelated report. */
static const char *ossl_reason(char *buf, size_t bufsz)
{
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, buf, bufsz);
	else
		snprintf(buf, bufsz, "not a PEM private key");
	ERR_clear_error();
	return buf;
}

/* An encrypted key would make OpenSSL ask for a passphrase on the
 * terminal: refuse instead (-1 = no passphrase). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int ghjwt_key_from_pem(struct ghjwt_key **out, const char *pem, size_t len,
		       const char *label, struct gg_err *err)
{
	char why[160];
	struct ghjwt_key *k;
	EVP_PKEY *pkey;
	BIO *bio;

	*out = NULL;
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR, "libsodium failed to start");
	pthread_once(&secure_once, secure_heap_init);
	if (len > GG_MAX_APP_KEY_LEN)
		return gg_err_set(err, GG_ELIMIT, "%s: larger than %d bytes",
				  label, GG_MAX_APP_KEY_LEN);
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return gg_err_set(err, GG_ENOMEM, "%s: out of memory", label);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (!pkey)
		return gg_err_set(err, GG_EINVAL,
				  "%s: cannot read an unencrypted PEM private "
				  "key (PKCS#1 or PKCS#8): %s",
				  label, ossl_reason(why, sizeof(why)));
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pkey);
		return gg_err_set(err, GG_EINVAL,
				  "%s: not an RSA key (GitHub App keys are "
				  "RSA)", label);
	}
	if (EVP_PKEY_get_bits(pkey) < 2048) {
		int bits = EVP_PKEY_get_bits(pkey);

		EVP_PKEY_free(pkey);
		return gg_err_set(err, GG_EINVAL,
				  "%s: RSA key of %d bits, want at least 2048",
				  label, bits);
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pkey);
		return gg_err_set(err, GG_ENOMEM, "%s: out of memory", label);
	}
	k->pkey = pkey;
	*out = k;
	return GG_OK;
}

int ghjwt_key_load(struct ghjwt_key **out, const char *path,
		   const char *label, struct gg_err *err)
{
	char *pem = NULL;
	size_t len = 0;
	int ret;

	*out = NULL;
	ret = config_read_secret_file(&pem, &len, path, label,
				      GG_MAX_APP_KEY_LEN, err);
	if (ret)
		return ret;
	ret = ghjwt_key_from_pem(out, pem, len, label, err);
	config_secret_free(pem); /* wipes */
	return ret;
}

void ghjwt_key_free(struct ghjwt_key *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey); /* clears its private numbers */
	free(key);
}

/* base64url of len bytes appended at dst (room for it checked by the
 * caller); returns the characters written. */
static size_t put_b64(char *dst, size_t room, const void *bin, size_t len)
{
	if (b64_encode(dst, room, bin, len, NULL) != GG_OK)
		return 0;
	return strlen(dst);
}

int ghjwt_sign(char **out, const struct ghjwt_key *key, const char *app_id,
	       int64_t now, struct gg_err *err)
{
	static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	unsigned char sig[1024]; /* RSA-8192 at most */
	char claims[128], why[160];
	size_t siglen = sizeof(sig), cap, n, m;
	EVP_MD_CTX *md = NULL;
	char *jwt;
	int len;

	*out = NULL;
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR, "libsodium failed to start");
	len = snprintf(claims, sizeof(claims),
		       "{\"iat\":%" PRId64 ",\"exp\":%" PRId64
		       ",\"iss\":\"%s\"}",
		       now - GG_APP_JWT_BACKDATE_S, now + GG_APP_JWT_LIFE_S,
		       app_id);
	if (len < 0 || (size_t)len >= sizeof(claims))
		return gg_err_set(err, GG_EINVAL, "github_app: app id too long");
	cap = b64_encoded_len(sizeof(header) - 1) + 1 +
	      b64_encoded_len((size_t)len) + 1 + b64_encoded_len(sizeof(sig)) +
	      1;
	jwt = sodium_malloc(cap);
	if (!jwt)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	n = put_b64(jwt, cap, header, sizeof(header) - 1);
	jwt[n++] = '.';
	n += put_b64(jwt + n, cap - n, claims, (size_t)len);
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
				      key->pkey) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)jwt,
			   n) != 1) {
		EVP_MD_CTX_free(md);
		sodium_free(jwt);
		return gg_err_set(err, GG_ERR, "github_app: signing the JWT "
					       "failed: %s",
				  ossl_reason(why, sizeof(why)));
	}
	EVP_MD_CTX_free(md);
	jwt[n++] = '.';
	m = put_b64(jwt + n, cap - n, sig, siglen);
	if (m == 0) {
		sodium_free(jwt);
		return gg_err_set(err, GG_ERR, "github_app: JWT too long");
	}
	*out = jwt;
	return GG_OK;
}

void ghjwt_free(char *jwt)
{
	if (jwt)
		sodium_free(jwt); /* wipes */
}

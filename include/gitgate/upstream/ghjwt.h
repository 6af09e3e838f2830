/*
 * ghjwt.h - the GitHub App's private key and the JWTs it signs.
 *
 * GitHub authenticates an App by a JWT: RS256 over
 * {"iat": now - 60, "exp": now + 540, "iss": "<app id>"}, integer times,
 * expiry under GitHub's 10-minute limit. The key is read from a private
 * file (config_read_secret_file: locked memory, wiped) and parsed by
 * OpenSSL's libcrypto, whose secure heap (mlocked, kept out of core
 * dumps, cleared on free) holds its private numbers. A JWT is itself a
 * credential: it is returned in locked memory and never logged.
 */
#ifndef GITGATE_GHJWT_H
#define GITGATE_GHJWT_H

#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

struct ghjwt_key;

/* Load an RSA private key (PEM, PKCS#1 or PKCS#8, unencrypted, at least
 * 2048 bits) from path; label names it in messages
 * ("upstream.github_app.private_key_file: /path: ..."). */
int ghjwt_key_load(struct ghjwt_key **out, const char *path,
		   const char *label, struct gg_err *err);

/* The same from PEM text already in memory (pem need not be
 * NUL-terminated). */
int ghjwt_key_from_pem(struct ghjwt_key **out, const char *pem, size_t len,
		       const char *label, struct gg_err *err);

void ghjwt_key_free(struct ghjwt_key *key);

/* Sign the App JWT for app_id at time now (Unix seconds, the caller's
 * best idea of GitHub's clock). *out is sodium_malloc'd, NUL-terminated;
 * free with ghjwt_free (wipes it). */
int ghjwt_sign(char **out, const struct ghjwt_key *key, const char *app_id,
	       int64_t now, struct gg_err *err);

void ghjwt_free(char *jwt);

#endif

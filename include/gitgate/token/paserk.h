/*
 * paserk.h - PASERK serialisation of v4 keys (paseto-standard/paserk):
 *   k4.public.<base64url(32-byte Ed25519 public key)>
 *   k4.secret.<base64url(64-byte libsodium secret key: seed || pk)>
 *   k4.pid.<base64url(BLAKE2b-264("k4.pid." || "k4.public.…"))>
 *
 * Encoders take an explicit key length and refuse any other size (the
 * PASERK vectors require that keys of other versions fail). Secret keys
 * must be consistent: the pk half must be the one the seed derives, or
 * Ed25519 signing would leak the seed; encode and decode both refuse an
 * inconsistent key.
 */
#ifndef GITGATE_PASERK_H
#define GITGATE_PASERK_H

#include <stddef.h>

#include "gitgate/core/err.h"

#define PASERK_PUBLIC_LEN 53 /* "k4.public." + 43 */
#define PASERK_SECRET_LEN 96 /* "k4.secret." + 86 */
#define PASERK_PID_LEN 51    /* "k4.pid." + 44 */

/* Buffer sizes including the NUL. */
#define PASERK_PUBLIC_SIZE (PASERK_PUBLIC_LEN + 1)
#define PASERK_SECRET_SIZE (PASERK_SECRET_LEN + 1)
#define PASERK_PID_SIZE (PASERK_PID_LEN + 1)

/* out: PASERK_PUBLIC_SIZE bytes. keylen must be 32. */
int paserk_public_encode(char *out, size_t outsz, const unsigned char *pk,
			 size_t keylen, struct gg_err *err);
/* Decode "k4.public.…" (exact, no surrounding whitespace) into pk. */
int paserk_public_decode(unsigned char pk[32], const char *text, size_t len,
			 struct gg_err *err);

/* out: PASERK_SECRET_SIZE bytes (put it in sodium_malloc'd memory).
 * keylen must be 64 and the pk half must match the seed. */
int paserk_secret_encode(char *out, size_t outsz, const unsigned char *sk,
			 size_t keylen, struct gg_err *err);
/* Decode "k4.secret.…" into sk (64 bytes), checking consistency. */
int paserk_secret_decode(unsigned char sk[64], const char *text, size_t len,
			 struct gg_err *err);

/* out: PASERK_PID_SIZE bytes; the key id of public key pk (keylen 32). */
int paserk_pid(char *out, size_t outsz, const unsigned char *pk, size_t keylen,
	       struct gg_err *err);

#endif

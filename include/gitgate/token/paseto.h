/*
 * paseto.h - PASETO v4.public (Ed25519) framing, PAE, signing and
 * verification: the low-level layer, with no claims and no policy.
 *
 * Token layout: "v4.public." base64url(m || sig) [ "." base64url(footer) ].
 * The signature covers PAE("v4.public.", m, footer, implicit assertion).
 * Error messages use token.h's vocabulary ("malformed: …", "bad signature")
 * so the token layer can pass them through unchanged, and never quote the
 * token itself.
 */
#ifndef GITGATE_PASETO_H
#define GITGATE_PASETO_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"

#define PASETO_V4_PUBLIC_HEADER "v4.public."
#define PASETO_V4_SIG_LEN 64 /* crypto_sign_BYTES */
#define PASETO_V4_PK_LEN 32  /* crypto_sign_PUBLICKEYBYTES */
#define PASETO_V4_SK_LEN 64  /* crypto_sign_SECRETKEYBYTES: seed || pk */

/* One PAE input. */
struct paseto_piece {
	const void *data;
	size_t len;
};

/*
 * Pre-Authentication Encoding: LE64(n) || for each piece LE64(len) || data,
 * with the top bit of every LE64 cleared as the spec demands. *out is
 * malloc'd (caller frees). PAE of zero pieces is eight zero bytes.
 */
int paseto_pae(unsigned char **out, size_t *outlen,
	       const struct paseto_piece *pieces, size_t n, struct gg_err *err);

/*
 * A v4.public token split into its decoded parts. Invariant after a
 * successful paseto_v4_public_split: buf owns everything; sig points at
 * PASETO_V4_SIG_LEN bytes; footer is NUL-terminated (footer[flen] == 0,
 * also when has_footer is false) so it can be handed to a JSON parser; m
 * may contain any bytes.
 */
struct paseto_msg {
	unsigned char *buf;
	const unsigned char *m;
	size_t mlen;
	const unsigned char *sig;
	const unsigned char *footer;
	size_t flen;
	bool has_footer;
};

void paseto_msg_init(struct paseto_msg *msg);
/* Free the contents and re-init; safe on an init'd or released msg. */
void paseto_msg_release(struct paseto_msg *msg);

/*
 * Check the header and decode the parts, WITHOUT verifying the signature.
 * Fails with GG_EINVAL "malformed: …" on: another version or purpose
 * (v4.local., v3.public., …), missing or non-canonical base64url, a body
 * shorter than the signature, an empty footer after a '.', extra '.'.
 */
int paseto_v4_public_split(struct paseto_msg *out, const char *token,
			   size_t len, struct gg_err *err);

/* Verify msg's signature with the Ed25519 public key pk and the implicit
 * assertion (may be NULL when ilen == 0). GG_EBADSIG "bad signature". */
int paseto_v4_public_check(const struct paseto_msg *msg,
			   const unsigned char pk[PASETO_V4_PK_LEN],
			   const void *implicit, size_t ilen,
			   struct gg_err *err);

/*
 * Sign message m with footer (flen 0 = no footer) and implicit assertion
 * (ilen 0 = none) using the libsodium-layout secret key sk. *out is a
 * malloc'd NUL-terminated token. Ed25519 is deterministic, so equal inputs
 * give equal tokens.
 */
int paseto_v4_public_sign(char **out, const void *m, size_t mlen,
			  const void *footer, size_t flen, const void *implicit,
			  size_t ilen, const unsigned char sk[PASETO_V4_SK_LEN],
			  struct gg_err *err);

#endif

/*
 * b64.h - strict unpadded base64url (RFC 4648 section 5), as PASETO and
 * PASERK require.
 *
 * Decoding accepts exactly the canonical encoding: no '=' padding, no
 * characters outside [A-Za-z0-9_-], no whitespace, no trailing garbage and no
 * set bits in the unused low bits of the last character. So each byte string
 * has exactly one accepted text, and a token cannot be altered without
 * changing its signed bytes.
 */
#ifndef GITGATE_B64_H
#define GITGATE_B64_H

#include <stddef.h>

#include "gitgate/core/err.h"

/* Characters needed to encode binlen bytes, excluding the NUL. */
size_t b64_encoded_len(size_t binlen);

/* Largest number of bytes textlen characters can decode to. */
size_t b64_decoded_max(size_t textlen);

/* Encode bin into out (outsz >= b64_encoded_len(binlen) + 1), NUL-terminated.
 * GG_ELIMIT if out is too small. */
int b64_encode(char *out, size_t outsz, const void *bin, size_t binlen,
	       struct gg_err *err);

/* Decode text (not necessarily NUL-terminated) into out (capacity outsz);
 * *outlen receives the byte count. GG_EINVAL "invalid base64url" for any
 * non-canonical input, GG_ELIMIT if out is too small. On failure *outlen is
 * 0 and out's contents are unspecified. */
int b64_decode(void *out, size_t outsz, size_t *outlen, const char *text,
	       size_t textlen, struct gg_err *err);

#endif

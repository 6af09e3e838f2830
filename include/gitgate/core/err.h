/*
 * err.h - the one error convention used everywhere in gitgate.
 *
 * Functions that can fail return int: 0 (GG_OK) on success, a negative GG_E*
 * code on failure. The human-readable one-line reason goes into a
 * caller-owned struct gg_err, set exactly once where the problem is found
 * and then propagated unchanged by returning the code. Handlers run on many
 * threads, so the error lives with the request, never in a global.
 *
 * Invariant: msg is always NUL-terminated; code == GG_OK means msg == "".
 * A message never contains a secret (token, key, upstream credential).
 */
#ifndef GITGATE_ERR_H
#define GITGATE_ERR_H

#include <stddef.h>

enum gg_code {
	GG_OK = 0,
	GG_ERR = -1,       /* generic failure */
	GG_ENOMEM = -2,    /* allocation failed */
	GG_EINVAL = -3,    /* malformed input */
	GG_EIO = -4,       /* I/O failure (errno-based) */
	GG_ENOTFOUND = -5, /* no such file/object/route */
	GG_EEXISTS = -6,   /* refuse to overwrite */
	GG_EAGAIN = -7,    /* incremental parser: need more bytes */
	GG_ELIMIT = -8,    /* input exceeds a named maximum */
	GG_EEXPIRED = -9,  /* token expired */
	GG_ENOTYET = -10,  /* token not yet valid (nbf) */
	GG_EBADSIG = -11,  /* signature does not verify */
	GG_EREVOKED = -12, /* token jti on the revocation list */
	GG_ENOKEY = -13,   /* token kid names no configured key */
	GG_EDENIED = -14,  /* policy refuses */
	GG_EUPSTREAM = -15, /* upstream failed or refused */
	GG_ENOSPACE = -16, /* disk space kept in reserve would be used */
	GG_ERATELIMIT = -17 /* a service asks to be called again later */
};

#define GG_ERR_MSG_MAX 256

struct gg_err {
	int code;
	char msg[GG_ERR_MSG_MAX];
};

#define GG_ERR_INIT { 0, { 0 } }

void gg_err_init(struct gg_err *err);

/*
 * Record an error and return code, so callers can write
 *     return gg_err_set(err, GG_EINVAL, "bad length %zu", n);
 * The first error recorded wins: a later call keeps the earlier message (the
 * place that found the problem knows best) but still returns its own code.
 * err may be NULL. Non-printable bytes in the message are replaced by '?', so
 * attacker-controlled input cannot smuggle control characters into logs.
 */
int gg_err_set(struct gg_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like gg_err_set, appending ": strerror(errno)". */
int gg_err_errno(struct gg_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copy bytes into dst (size dstsz) for use in a message: non-printable bytes
 * become '?', and input longer than dstsz-1 is cut with "...". */
void gg_err_sanitize(char *dst, size_t dstsz, const void *src, size_t len);

#endif

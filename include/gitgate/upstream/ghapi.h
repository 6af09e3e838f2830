/*
 * ghapi.h - one call to GitHub's REST API (libcurl), as the App's
 * credential source needs: a JWT-authenticated GET or POST, bounded in
 * time and size, with the headers that say when to retry.
 *
 * The answer body may hold an installation token: it is kept in locked
 * memory and wiped by ghapi_reply_release. Transport failures are turned
 * into the operator-facing reasons of issue 16 ("GitHub API unreachable:
 * ...", "GitHub API timed out: ..."); judging an HTTP status is the
 * caller's (cred.c).
 */
#ifndef GITGATE_GHAPI_H
#define GITGATE_GHAPI_H

#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

struct ghapi_call {
	const char *method;  /* "GET" or "POST" */
	const char *url;     /* api_url + path */
	const char *jwt;     /* sent as Authorization: Bearer */
	const char *body;    /* POST: JSON text; NULL for GET */
	const char *ca_file; /* trust anchors; NULL: the system's */
	const char *ca_dir;
	long connect_timeout_s;
	long timeout_s;      /* the whole call */
};

struct ghapi_reply {
	long status;
	char *body;  /* sodium_malloc'd, NUL-terminated; never NULL on GG_OK */
	size_t len;
	int64_t date;                /* Date header, Unix seconds; 0: none */
	int64_t retry_after;         /* seconds; -1: no Retry-After */
	int64_t ratelimit_remaining; /* -1: no X-RateLimit-Remaining */
	int64_t ratelimit_reset;     /* Unix seconds; -1: none */
};

/* Make the call. GG_OK with *out filled for any HTTP answer (judge
 * out->status); GG_EUPSTREAM when no usable answer came (err:
 * unreachable, timed out, or over GG_MAX_API_REPLY). Release *out either
 * way. */
int ghapi_do(struct ghapi_reply *out, const struct ghapi_call *call,
	     struct gg_err *err);

void ghapi_reply_release(struct ghapi_reply *r);

/* The "message" of a GitHub error body, sanitized into buf ("" if none). */
void ghapi_message(char *buf, size_t bufsz, const struct ghapi_reply *r);

#endif

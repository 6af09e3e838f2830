/*
 * route.h - pure request classification: which git smart-HTTP endpoint a
 * (method, path, service) triple addresses, and where the token is in an
 * Authorization header. No I/O; unit-tested and fuzzable.
 */
#ifndef GITGATE_ROUTE_H
#define GITGATE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"

enum route_kind {
	ROUTE_HEALTHZ,
	ROUTE_INFO_REFS,    /* GET  /O/N(.git)/info/refs?service=… */
	ROUTE_UPLOAD_PACK,  /* POST /O/N(.git)/git-upload-pack */
	ROUTE_RECEIVE_PACK  /* POST /O/N(.git)/git-receive-pack */
};

enum route_service { ROUTE_SVC_NONE, ROUTE_SVC_UPLOAD, ROUTE_SVC_RECEIVE };

/* Owner and repository names are GitHub-shaped: [A-Za-z0-9._-], at most
 * 100 characters each (GitHub's limits are 39 and 100), never "." or "..",
 * so they are safe to paste into an upstream URL and a cache path. */
#define ROUTE_NAME_MAX 100

struct route {
	enum route_kind kind;
	enum route_service service;
	char repo[2 * ROUTE_NAME_MAX + 2]; /* "owner/name", no ".git" */
};

/*
 * Classify a request. service is the ?service= argument (may be NULL).
 * Returns 0, or GG_ENOTFOUND (404: not a path we serve, or dumb HTTP),
 * GG_EDENIED (405: right path, wrong method; out->kind is the path's);
 * err->msg says which.
 */
int route_parse(struct route *out, const char *method, const char *path,
		const char *service, struct gg_err *err);

/* The methods a kind of path answers, for a 405's Allow header. */
const char *route_allowed_methods(enum route_kind kind);

/* "git-upload-pack" / "git-receive-pack" */
const char *route_service_name(enum route_service svc);

/*
 * Find the token in an Authorization header value: the password of Basic
 * credentials (any user name) or a Bearer token. The token is copied into
 * buf (bufsz bytes, NUL-terminated) and its length returned in *len.
 * The caller wipes buf after use. GG_EINVAL for a malformed header,
 * GG_ELIMIT when it does not fit.
 */
int route_auth_token(char *buf, size_t bufsz, size_t *len,
		     const char *authorization, struct gg_err *err);

/*
 * Whether a request header's name and value are free of control characters
 * (bytes below 0x20 but HTAB, and DEL). A bare CR in a value forwarded
 * upstream ends the line early for a server that reads it so: header
 * injection on a connection that carries gitgate's credential. RFC 9110
 * 5.5 lets a recipient reject such a field; gitgate does.
 */
bool route_header_ok(const char *name, const char *value);

#endif

/*
 * gate.c - headers, credential, grant, quota (see gate.h).
 */
#include "gitgate/http/gate.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/core/metrics.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/http/quota.h"
#include "gitgate/token/authstate.h"
#include "gitgate/token/token.h"

/* ---- headers ------------------------------------------------------- */

struct count_ctx {
	const char *name;
	int count;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind,
				    const char *key, const char *value)
{
	struct count_ctx *c = cls;

	(void)kind;
	(void)value;
	if (!strcasecmp(key, c->name))
		c->count++;
	return MHD_YES;
}

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind,
				    const char *key, const char *value)
{
	bool *bad = cls;

	(void)kind;
	if (route_header_ok(key, value))
		return MHD_YES;
	*bad = true;
	return MHD_NO; /* stop iterating */
}

/* Some header holds a control character (see route_header_ok). */
static bool header_malformed(struct MHD_Connection *conn)
{
	bool bad = false;

	MHD_get_connection_values(conn, MHD_HEADER_KIND, check_header, &bad);
	return bad;
}

static int header_count(struct MHD_Connection *conn, const char *name)
{
	struct count_ctx c = { name, 0 };

	MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &c);
	return c.count;
}

/* Headers whose duplicates could make gitgate and upstream disagree. */
static const char *const single_headers[] = {
	"Authorization", "Content-Type", "Content-Encoding", "Git-Protocol",
	"Content-Length", "Transfer-Encoding", NULL
};

/*
 * A body is framed by Content-Length or by chunked Transfer-Encoding,
 * never both: a request with both is how requests are smuggled (one hop
 * reads the length, the next the chunks, and the rest of the body is taken
 * for a new request on the same upstream connection, with gitgate's
 * credential). RFC 9112 6.1 lets a server reject it; gitgate does, and
 * any coding but chunked, which libmicrohttpd cannot frame either.
 */
static const char *framing_refusal(struct request *req, unsigned *status)
{
	const char *te = MHD_lookup_connection_value(
		req->conn, MHD_HEADER_KIND, "Transfer-Encoding");

	if (!te)
		return NULL;
	*status = MHD_HTTP_NOT_IMPLEMENTED;
	if (strcasecmp(te, "chunked"))
		return "unsupported Transfer-Encoding (only chunked)";
	*status = MHD_HTTP_BAD_REQUEST;
	if (MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
					"Content-Length"))
		return "Content-Length and Transfer-Encoding together";
	return NULL;
}

/* The refusal of a request whose headers gitgate will not judge, or NULL;
 * *status is its answer's status. */
static const char *header_refusal(struct request *req, unsigned *status)
{
	size_t i;

	*status = MHD_HTTP_BAD_REQUEST;
	for (i = 0; single_headers[i]; i++)
		if (header_count(req->conn, single_headers[i]) > 1)
			return "repeated header";
	if (header_malformed(req->conn))
		return "control character in a request header";
	return framing_refusal(req, status);
}

/* ---- credential ---------------------------------------------------- */

/* Verify the request's token against the keys and revocations as they
 * are now. 0 with *claims set; otherwise reason says why, for a 401, and
 * *claims holds the token's unverified claims when the signature was good
 * but the token is expired, not yet valid or revoked (the holder is then
 * known, and the audit record should say who tried), else NULL. */
static int check_token(struct request *req, struct token_claims **claims,
		       char *reason, size_t size)
{
	char token[GG_MAX_TOKEN_LEN + 1];
	struct gg_err err = GG_ERR_INIT;
	const char *auth;
	size_t len = 0;
	bool bare;
	int ret;

	*claims = NULL;
	auth = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
					   "Authorization");
	if (!auth) {
		snprintf(reason, size, "authentication required: use the "
				       "token as the password");
		return GG_EINVAL;
	}
	ret = route_auth_token(token, sizeof(token), &len, auth, &err);
	/* Its messages name what is wrong with the header ("empty
	 * credentials"); only a token that was found is "token ...". */
	bare = ret != 0 && ret != GG_ELIMIT;
	if (ret == 0)
		ret = authstate_verify(req->px->auth, claims, token, len,
				       timeutil_now_ms() / 1000, &err);
	if (ret == GG_EEXPIRED || ret == GG_ENOTYET || ret == GG_EREVOKED)
		token_decode_unverified(claims, token, len, NULL);
	sodium_memzero(token, sizeof(token));
	if (ret != 0)
		snprintf(reason, size, "%s%s", bare ? "" : "token ",
			 ret == GG_ELIMIT ? "too long" : err.msg);
	return ret;
}

bool gate_recheck(struct request *req, char *reason, size_t size)
{
	struct token_claims *now = NULL;
	int ret = check_token(req, &now, reason, size);

	token_claims_free(now);
	if (ret != 0)
		log_info("request %s: %s: push refused at its decision: %s",
			 req->id, req->route.repo, reason);
	return ret == 0;
}

/* ---- grant and quota ----------------------------------------------- */

/* The refusal (403) of a token that does not grant this request, or 0. */
static int grant_refusal(const struct request *req, char *reason,
			 size_t size)
{
	bool push = req->route.service == ROUTE_SVC_RECEIVE;
	unsigned need = push ? TOKEN_OP_PUSH : TOKEN_OP_FETCH;

	if (!token_claims_has_repo(req->claims, req->route.repo)) {
		snprintf(reason, size, "token does not grant access to %s",
			 req->route.repo);
		return GG_EDENIED;
	}
	if (!(req->claims->ops & need)) {
		snprintf(reason, size, "token does not allow %s to %s",
			 push ? "push" : "fetch", req->route.repo);
		return GG_EDENIED;
	}
	return GG_OK;
}

/* A token bound to networks (its cidr claim) is refused from any other
 * client address, before its grants are looked at: whoever holds it
 * elsewhere learns nothing about what it could do. */
static int address_refusal(const struct request *req, char *reason,
			   size_t size)
{
	if (token_claims_allow_client(req->claims, req->has_client_addr
							   ? &req->client_addr
							   : NULL))
		return GG_OK;
	snprintf(reason, size, "token not valid from this address");
	return GG_EDENIED;
}

/* One token may hold only so many requests at once (quota.h): past that,
 * refuse at once rather than let it take every connection slot. */
static enum MHD_Result take_quota(struct request *req)
{
	struct gg_err err = GG_ERR_INIT;
	int ret = quota_take(req->px->per_token, req->claims->jti, &err);

	if (ret == GG_ELIMIT)
		return request_deny(req, MHD_HTTP_TOO_MANY_REQUESTS, err.msg);
	if (ret != GG_OK)
		return request_deny(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    err.msg);
	req->quota_taken = true;
	return MHD_YES;
}

/* The metrics label of a 401: no credential at all, or why the token
 * failed (metrics.h). */
static const char *token_refusal_label(const struct request *req, int code)
{
	if (!MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
					 "Authorization"))
		return "missing";
	return metrics_token_reason(code);
}

enum MHD_Result gate_admit(struct request *req)
{
	char reason[GG_ERR_MSG_MAX + 8];
	const char *refusal;
	enum MHD_Result ret;
	unsigned status;
	int code;

	refusal = header_refusal(req, &status);
	if (refusal)
		return request_deny(req, status, refusal);
	if (req->client_refusal[0]) /* whose request is it? fail closed */
		return request_deny(req, MHD_HTTP_BAD_REQUEST,
				    req->client_refusal);
	code = check_token(req, &req->claims, reason, sizeof(reason));
	if (code != 0) {
		metrics_token_refused(token_refusal_label(req, code));
		return request_deny(req, MHD_HTTP_UNAUTHORIZED, reason);
	}
	if (address_refusal(req, reason, sizeof(reason)) != 0) {
		metrics_token_refused("address");
		return request_deny(req, MHD_HTTP_FORBIDDEN, reason);
	}
	if (grant_refusal(req, reason, sizeof(reason)) != 0) {
		metrics_token_refused(
			token_claims_has_repo(req->claims, req->route.repo)
				? "operation"
				: "repo");
		return request_deny(req, MHD_HTTP_FORBIDDEN, reason);
	}
	ret = take_quota(req);
	if (ret != MHD_YES || req->state == REQ_ANSWERED)
		return ret;
	if (request_audit_down(req) || request_reserve_record(req) != 0)
		return request_deny(req, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "audit log unavailable");
	return MHD_YES;
}

/*
 * request.c - a request's life and the answers every pipeline stage gives:
 * text replies, audited refusals, the audit line (see request.h).
 */
#include "gitgate/http/request.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gitgate/audit/audit.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/core/metrics.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/http/cachefetch.h"
#include "gitgate/http/quota.h"
#include "gitgate/http/relay.h"
#include "gitgate/http/xff.h"
#include "gitgate/push/policystate.h"
#include "gitgate/upstream/cred.h"
#include "gitgate/push/push.h"
#include "gitgate/token/token.h"

struct xff_values {
	const char *v[GG_MAX_XFF_HEADERS];
	size_t n;
	bool too_many;
};

static enum MHD_Result collect_xff(void *cls, enum MHD_ValueKind kind,
				   const char *key, const char *value)
{
	struct xff_values *x = cls;

	(void)kind;
	if (strcasecmp(key, "X-Forwarded-For"))
		return MHD_YES;
	if (x->n == GG_MAX_XFF_HEADERS) {
		x->too_many = true;
		return MHD_NO;
	}
	x->v[x->n++] = value ? value : "";
	return MHD_YES;
}

/* The peer's address, then the client it vouches for (xff.h). A header
 * gitgate cannot read leaves the peer as the client, for the audit line
 * of the 400 the gate answers with client_refusal. */
static void client_address(struct request *req)
{
	const union MHD_ConnectionInfo *ci;
	struct gg_err err = GG_ERR_INIT;
	struct xff_values x = { .n = 0, .too_many = false };
	struct cidr_addr peer;

	ci = MHD_get_connection_info(req->conn,
				     MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (cidr_addr_from_sockaddr(&peer, ci ? ci->client_addr : NULL) !=
	    GG_OK) {
		snprintf(req->client, sizeof(req->client), "?");
		return;
	}
	req->client_addr = peer;
	req->has_client_addr = true;
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, collect_xff, &x);
	if (x.too_many && cidr_list_contains(req->px->trusted_proxies,
					     req->px->ntrusted_proxies,
					     &peer))
		snprintf(req->client_refusal, sizeof(req->client_refusal),
			 "malformed X-Forwarded-For: more than %d headers",
			 GG_MAX_XFF_HEADERS);
	else if (xff_resolve(&req->client_addr, &peer, x.v, x.n,
			     req->px->trusted_proxies,
			     req->px->ntrusted_proxies, &err) != GG_OK)
		snprintf(req->client_refusal, sizeof(req->client_refusal),
			 "%s", err.msg);
	cidr_addr_format(req->client, sizeof(req->client), &req->client_addr);
}

struct request *request_new(const struct proxy *px,
			    struct MHD_Connection *conn)
{
	struct request *req = calloc(1, sizeof(*req));
	unsigned char rnd[16];

	if (!req)
		return NULL;
	req->px = px;
	req->conn = conn;
	req->start_ms = timeutil_now_ms();
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(req->id, sizeof(req->id), rnd, sizeof(rnd));
	client_address(req);
	return req;
}

void request_free(struct request *req)
{
	if (!req)
		return;
	request_audit(req, NULL, 0);
	if (req->reserved) /* audited before it reserved: give it back */
		audit_unreserve(req->px->audit, req->reserved);
	if (req->quota_taken)
		quota_give(req->px->per_token, req->claims->jti);
	cachefetch_release(req);
	relay_free(req->relay);
	cred_lease_free(req->lease);
	free(req->replay);
	free(req->prefix);
	push_free(req->push);
	policysnap_put(req->policy); /* after the push that borrowed it */
	token_claims_free(req->claims);
	sodium_memzero(req, sizeof(*req));
	free(req);
}

/* ---- answers ------------------------------------------------------- */

enum MHD_Result request_text(struct request *req, unsigned status,
			     const char *text, bool challenge)
{
	char body[GG_ERR_MSG_MAX + 2];
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t n;

	n = (size_t)snprintf(body, sizeof(body), "%s\n", text);
	if (n >= sizeof(body))
		n = sizeof(body) - 1;
	resp = MHD_create_response_from_buffer(n, body,
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type",
				"text/plain; charset=utf-8");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	if (challenge)
		MHD_add_response_header(resp, "WWW-Authenticate",
					"Basic realm=\"gitgate\"");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE && req->retry_after > 0) {
		char secs[24];

		snprintf(secs, sizeof(secs), "%lld",
			 (long long)req->retry_after);
		MHD_add_response_header(resp, "Retry-After", secs);
	}
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED) /* RFC 9110: say which */
		MHD_add_response_header(resp, "Allow",
					route_allowed_methods(req->route.kind));
	ret = MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* While the log is unhealthy the answer is 503 whatever the refusal, and
 * the line, if it can be written, says so. */
enum MHD_Result request_deny(struct request *req, unsigned status,
			     const char *reason)
{
	bool challenge;

	if (request_audit_down(req)) {
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
		reason = "audit log unavailable";
	}
	challenge = status == MHD_HTTP_UNAUTHORIZED;
	req->state = REQ_ANSWERED;
	req->status = (int)status;
	req->decision = "deny";
	if (reason != req->reason) {
		size_t n = strnlen(reason, sizeof(req->reason) - 1);

		memcpy(req->reason, reason, n); /* cut, like any message */
		req->reason[n] = '\0';
	}
	request_audit(req, NULL, 0);
	if (req->audit_failed)
		return request_text(req, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "audit log unavailable", false);
	return request_text(req, status, reason, challenge);
}

/* ---- audit --------------------------------------------------------- */

static void fill_record(struct audit_record *rec, const struct request *req,
			const struct audit_ref *refs, size_t nrefs)
{
	memset(rec, 0, sizeof(*rec));
	rec->time_ms = req->start_ms;
	rec->request_id = req->id;
	rec->sub = req->claims ? req->claims->sub : NULL;
	rec->jti = req->claims ? req->claims->jti : NULL;
	rec->repo = req->route.repo[0] ? req->route.repo : NULL;
	rec->service = route_service_name(req->route.service);
	rec->client = req->client;
	rec->decision = req->decision ? req->decision : "deny";
	rec->reason = req->reason;
	rec->refs = refs;
	rec->nrefs = nrefs;
	rec->status = req->status;
	rec->bytes_in = req->bytes_in;
	rec->bytes_out = req->bytes_out;
	rec->duration_ms = timeutil_now_ms() - req->start_ms;
	rec->cache = req->cache;
	/* relayed (bypass): what upstream sent is what it cost */
	rec->upstream_bytes = req->upstream_bytes +
			      (req->cache && req->relay ? req->bytes_out : 0);
}

/* Every decision is audited once: the metrics count it there too, from
 * the same fields, so /metrics and the audit log never disagree. */
static void count_request(const struct audit_record *rec)
{
	metrics_request(rec->service, rec->decision, rec->status,
			rec->duration_ms, rec->bytes_in, rec->bytes_out);
	if (rec->cache)
		metrics_cache_result(rec->cache);
}

static void warn_audit(const struct gg_err *err)
{
	log_warnx("audit log: %s (refusing requests until it can be "
		  "written)", err->msg);
}

void request_audit(struct request *req, const struct audit_ref *refs,
		   size_t nrefs)
{
	struct audit_record rec;
	struct gg_err err = GG_ERR_INIT;
	size_t reserved = req->reserved;

	if (req->audited || !req->px->audit)
		return;
	req->audited = true;
	req->reserved = 0; /* used up by the append, whatever it gives */
	fill_record(&rec, req, refs, nrefs);
	count_request(&rec);
	if (audit_append_reserved(req->px->audit, &rec, reserved, &err) !=
	    0) {
		req->audit_failed = true;
		warn_audit(&err);
	}
}

bool request_audit_down(const struct request *req)
{
	return req->px->audit && !audit_healthy(req->px->audit);
}

/* An allowed request may stream its answer before its line is written
 * (see forward.c): room set aside first makes a full disk a clean 503 now
 * rather than a transfer broken off at its end. */
int request_reserve_record(struct request *req)
{
	struct audit_record rec;
	struct gg_err err = GG_ERR_INIT;
	int ret;

	if (!req->px->audit)
		return 0;
	fill_record(&rec, req, NULL, 0);
	ret = audit_reserve(req->px->audit, &req->reserved, &rec, &err);
	if (ret)
		warn_audit(&err);
	return ret;
}

/* ---- request facts ------------------------------------------------- */

char *request_repo_url(const struct request *req, const char *suffix)
{
	size_t len = strlen(req->px->upstream_url) + 1 +
		     strlen(req->route.repo) + 4 + strlen(suffix) + 1;
	char *url = malloc(len);

	if (url)
		snprintf(url, len, "%s/%s.git%s", req->px->upstream_url,
			 req->route.repo, suffix);
	return url;
}

int64_t request_content_length(const struct request *req)
{
	const char *v = MHD_lookup_connection_value(
		req->conn, MHD_HEADER_KIND, "Content-Length");
	char *end;
	long long n;

	if (!v)
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end || n < 0)
		return -1;
	return n;
}

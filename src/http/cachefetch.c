/*
 * cachefetch.c - pack requests answered by the fetch cache (see
 * cachefetch.h).
 */
#include "gitgate/http/cachefetch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gitgate/cache/cache.h"
#include "gitgate/cache/fetchreq.h"
#include "gitgate/cache/packflight.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/http/forward.h"
#include "gitgate/http/relay.h"

/* How long a reader waits for output before it looks at its client. */
#define WAIT_MS 250

bool cachefetch_applies(const struct request *req)
{
	return req->px->cache && req->route.kind == ROUTE_UPLOAD_PACK;
}

static const char *header(const struct request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* Relay from here on: what was held goes first. 0, or the refusal's
 * code with req->reason set (answered when the body is complete). */
static int to_upstream(struct request *req, int64_t length)
{
	struct gg_err err = GG_ERR_INIT;

	req->cache = "bypass";
	if (forward_begin(req, length, &err) != 0) {
		snprintf(req->reason, sizeof(req->reason), "%s", err.msg);
		req->body_status = (unsigned)-err.code;
		req->body_failed = true;
		return err.code;
	}
	if (req->cbody_len) {
		forward_keep_body(req, (const char *)req->cbody,
				  req->cbody_len);
		if (relay_write_body(req->relay, req->cbody, req->cbody_len))
			req->body_failed = true;
	}
	free(req->cbody);
	req->cbody = NULL;
	req->cbody_len = 0;
	req->state = REQ_STREAM_BODY;
	return GG_OK;
}

enum MHD_Result cachefetch_begin(struct request *req)
{
	int64_t length = request_content_length(req);

	req->state = REQ_CACHE_BODY;
	if (length > GG_MAX_CACHE_BODY)
		to_upstream(req, length);
	return MHD_YES;
}

void cachefetch_chunk(struct request *req, const char *data, size_t len)
{
	unsigned char *nb;

	if (req->body_failed)
		return;
	if (req->cbody_len + len > GG_MAX_CACHE_BODY) {
		if (to_upstream(req, request_content_length(req)) == GG_OK) {
			forward_keep_body(req, data, len);
			if (relay_write_body(req->relay, data, len))
				req->body_failed = true;
		}
		return;
	}
	nb = realloc(req->cbody, req->cbody_len + len + 1);
	if (!nb) {
		snprintf(req->reason, sizeof(req->reason), "out of memory");
		req->body_status = (unsigned)-GG_ENOMEM;
		req->body_failed = true;
		return;
	}
	req->cbody = nb;
	memcpy(req->cbody + req->cbody_len, data, len);
	req->cbody_len += len;
}

/* The body as git upload-pack must read it; NULL when it cannot be
 * (an encoding other than gzip, a corrupt stream): relayed instead. */
static unsigned char *decoded(struct request *req, size_t *len)
{
	const char *enc = header(req, "Content-Encoding");
	struct gg_err err = GG_ERR_INIT;
	unsigned char *out;

	if (!enc || !strcasecmp(enc, "identity")) {
		out = malloc(req->cbody_len + 1);
		if (out) {
			memcpy(out, req->cbody, req->cbody_len);
			*len = req->cbody_len;
		}
		return out;
	}
	if (strcasecmp(enc, "gzip") && strcasecmp(enc, "x-gzip"))
		return NULL;
	if (fetchreq_gunzip(&out, len, req->cbody, req->cbody_len,
			    GG_MAX_CACHE_BODY, &err) != 0)
		return NULL;
	return out;
}

/* GIT_PROTOCOL for upload-pack: the client's header when it is made of
 * the characters git's own keys and values use, else none. */
static const char *git_protocol(const struct request *req)
{
	const char *v = header(req, "Git-Protocol");
	size_t i;

	if (!v || strlen(v) > 200)
		return NULL;
	for (i = 0; v[i]; i++)
		if (!(v[i] >= 'a' && v[i] <= 'z') && !(v[i] >= 'A' && v[i] <= 'Z') &&
		    !(v[i] >= '0' && v[i] <= '9') && !strchr("=:._-", v[i]))
			return NULL;
	return v;
}

/* Has the client hung up while gitgate waited for output? */
static bool client_left(struct request *req)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char c;
	ssize_t n;

	if (!ci)
		return false;
	n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			  errno != EINTR);
}

/* libmicrohttpd's reader for an answer from the mirror: the flight's
 * output, its last bytes held back until the audit line is on disk. */
static ssize_t read_flight(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct request *req = cls;
	enum packflight_state st;
	ssize_t n;

	(void)pos;
	if (max == 0)
		return 0;
	for (;;) {
		n = packflight_read(req->flight, req->flight_off, buf, max,
				    req->audited ? 0 : REQUEST_HOLDBACK, WAIT_MS,
				    &st);
		if (n > 0) {
			req->flight_off += (uint64_t)n;
			req->bytes_out += (uint64_t)n;
			return n;
		}
		if (st == PACKFLIGHT_WAIT && !client_left(req))
			continue;
		if (st == PACKFLIGHT_TAIL || st == PACKFLIGHT_END) {
			request_audit(req, NULL, 0);
			if (req->audit_failed)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			if (st == PACKFLIGHT_TAIL)
				continue;
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		snprintf(req->reason, sizeof(req->reason), "%s",
			 st == PACKFLIGHT_WAIT ? "client disconnected "
						 "mid-transfer"
					       : packflight_why(req->flight));
		if (st != PACKFLIGHT_WAIT)
			log_warnx("request %s: %s: fetch cache: %s", req->id,
				  req->route.repo, req->reason);
		req->decision = "deny";
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
}

static enum MHD_Result answer_from_mirror(struct request *req,
					  const unsigned char *body,
					  size_t len)
{
	struct gg_err err = GG_ERR_INIT;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (request_reserve_record(req) != 0)
		return request_text(req, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "audit log unavailable", false);
	if (cache_serve(req->px->cache, req->cuse, git_protocol(req), body,
			len, &req->flight, &err) != 0)
		return forward_refuse(req, err.code, err.msg);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
						 read_flight, req, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type",
				"application/x-git-upload-pack-result");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	req->state = REQ_ANSWERED;
	req->status = MHD_HTTP_OK;
	req->decision = "allow";
	ret = MHD_queue_response(req->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Where the request is answered from: HIT/MISS with req->cuse held, or
 * BYPASS; an error is answered here (*ret). */
static bool choose(struct request *req, const unsigned char *body,
		   size_t len, enum cache_result *res, enum MHD_Result *ret)
{
	struct gg_err err = GG_ERR_INIT;
	struct fetchreq fr;
	int64_t retry_after = 0;
	int rc;

	*res = CACHE_BYPASS;
	if (!body || fetchreq_parse(&fr, body, len,
				    fetchreq_version(header(req, "Git-Protocol")),
				    &err) != 0)
		return false; /* upstream answers what we cannot read */
	rc = cache_decide(req->px->cache, req->route.repo, &fr, res,
			  &req->cuse, &req->upstream_bytes, &retry_after, &err);
	fetchreq_release(&fr);
	if (rc == 0)
		return false;
	req->retry_after = retry_after;
	req->cache = "miss";
	*ret = forward_refuse(req, rc, err.msg);
	return true;
}

enum MHD_Result cachefetch_done(struct request *req)
{
	static const char *const names[] = { "hit", "miss", "bypass" };
	enum cache_result res;
	enum MHD_Result ret;
	unsigned char *body;
	size_t len = 0;

	if (req->state == REQ_STREAM_BODY) { /* it went upstream already */
		relay_finish_body(req->relay);
		return forward_answer(req);
	}
	if (req->body_failed)
		return forward_refuse(req, -(int)req->body_status, req->reason);
	body = decoded(req, &len);
	if (choose(req, body, len, &res, &ret)) {
		free(body);
		return ret;
	}
	req->cache = names[res];
	if (res != CACHE_BYPASS) {
		ret = answer_from_mirror(req, body, len);
		free(body);
		return ret;
	}
	free(body);
	if (to_upstream(req, (int64_t)req->cbody_len) != GG_OK)
		return forward_refuse(req, -(int)req->body_status, req->reason);
	relay_finish_body(req->relay);
	return forward_answer(req);
}

void cachefetch_release(struct request *req)
{
	if (req->flight)
		packflight_leave(cache_flights(req->px->cache), req->flight);
	req->flight = NULL;
	cache_use_free(req->cuse);
	req->cuse = NULL;
	free(req->cbody);
	req->cbody = NULL;
}

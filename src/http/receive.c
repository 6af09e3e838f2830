/*
 * receive.c - spool, decide, forward, merge the report (see receive.h).
 */
#include "gitgate/http/receive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/http/forward.h"
#include "gitgate/http/gate.h"
#include "gitgate/http/relay.h"
#include "gitgate/push/policystate.h"
#include "gitgate/push/push.h"

/* ---- spooling ------------------------------------------------------ */

/* Known before the body arrives, so inspection can start as soon as the
 * command list is parsed (mirror refresh and pack indexing overlap the
 * client's upload). The site policy is taken once, here: the whole push
 * is judged by the policy in force when it began, whatever reloads come
 * meanwhile; request_free gives it back. */
static int set_push_ctx(struct request *req, struct gg_err *err)
{
	char *url = request_repo_url(req, "");
	struct push_ctx ctx;
	int ret;

	if (!url)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	memset(&ctx, 0, sizeof(ctx));
	ctx.cache_dir = req->px->cache_dir;
	ctx.repo = req->route.repo;
	ctx.upstream_repo_url = url;
	ctx.cred = req->px->cred;
	ctx.claims = req->claims;
	if (!req->policy)
		req->policy = policystate_get(req->px->policy);
	ctx.policy = req->policy;
	ret = push_set_ctx(req->push, &ctx, err); /* copies the strings */
	free(url);
	return ret;
}

enum MHD_Result receive_begin(struct request *req)
{
	const char *enc = MHD_lookup_connection_value(
		req->conn, MHD_HEADER_KIND, "Content-Encoding");
	/* gitgate must read the push to judge it: only encodings it can
	 * decode are accepted. */
	bool gzip = enc && !strcasecmp(enc, "gzip");
	struct gg_err err = GG_ERR_INIT;
	char reason[64];
	int ret;

	if (enc && !gzip && strcasecmp(enc, "identity"))
		return request_deny(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
				    "unsupported Content-Encoding for a push");
	/* A declared length past the cap is refused now rather than after
	 * 2 GiB have been spooled. (A gzip body's length says nothing exact
	 * about its decoded size: push_body judges.) */
	if (!gzip &&
	    request_content_length(req) > (int64_t)GG_MAX_PUSH_BYTES) {
		snprintf(reason, sizeof(reason), "push larger than %llu bytes",
			 (unsigned long long)GG_MAX_PUSH_BYTES);
		return request_deny(req, MHD_HTTP_CONTENT_TOO_LARGE, reason);
	}
	ret = push_new(&req->push, req->px->cache_dir, gzip, &err);
	if (ret == 0)
		ret = set_push_ctx(req, &err);
	if (ret != 0) {
		log_warnx("request %s: %s", req->id, err.msg);
		return request_deny(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "cannot spool push");
	}
	req->state = REQ_SPOOL_BODY;
	return MHD_YES;
}

/* The answer to a push body that could not be taken. */
static unsigned body_status(int code)
{
	switch (code) {
	case GG_ELIMIT:
		return MHD_HTTP_CONTENT_TOO_LARGE;
	case GG_ENOSPACE:
		return MHD_HTTP_INSUFFICIENT_STORAGE;
	case GG_EIO:
	case GG_ENOMEM:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	default:
		return MHD_HTTP_BAD_REQUEST;
	}
}

void receive_chunk(struct request *req, const char *data, size_t len)
{
	struct gg_err err = GG_ERR_INIT;

	if (req->body_failed)
		return;
	if (push_body(req->push, data, len, &err) != 0) {
		log_warnx("request %s: %s", req->id, err.msg);
		req->body_failed = true;
		req->body_status = body_status(err.code);
		snprintf(req->reason, sizeof(req->reason), "%s", err.msg);
	}
}

/* ---- forwarding ---------------------------------------------------- */

static int write_to_relay(void *payload, const void *buf, size_t len)
{
	return relay_write_body(payload, buf, len);
}

/* Send what push_decide kept upstream; on failure the relay is left for
 * forward_answer / the caller to report. */
static int send_push(struct request *req, struct gg_err *err)
{
	int ret;

	ret = forward_start(req, (int64_t)push_forward_len(req->push), err);
	if (ret)
		return ret;
	/* An error here means upstream stopped reading early; its answer
	 * (collected next) says why. */
	push_forward_write(req->push, write_to_relay, req->relay, err);
	gg_err_init(err);
	relay_finish_body(req->relay);
	return GG_OK;
}

/* Read upstream's whole receive-pack reply (it is small: a report and
 * progress) so it can be merged with local refusals. */
static const char *read_upstream_reply(struct request *req,
				       unsigned char **out, size_t *outlen)
{
	size_t cap = 16 * 1024, len = 0;
	unsigned char *buf = malloc(cap), *nb;
	ssize_t n;

	*out = NULL;
	*outlen = 0;
	while (buf) {
		if (len == cap) {
			if (cap >= GG_MAX_REPORT_LEN) {
				free(buf);
				return "upstream reply too large";
			}
			nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		n = relay_read(req->relay, buf + len, cap - len);
		if (n < 0) {
			free(buf);
			return "upstream connection failed";
		}
		if (n == 0) {
			*out = buf;
			*outlen = len;
			return NULL;
		}
		len += (size_t)n;
	}
	free(buf);
	return "out of memory";
}

/* Forward the refs that may land and read upstream's report into
 * *reply. true when upstream refused or failed outright: *ret then holds
 * the answer already given. *upstream_error names a report that could not
 * be read whole (the refs then failed, as far as the client knows). */
static bool forward_push(struct request *req, unsigned char **reply,
			 size_t *reply_len, const char **upstream_error,
			 enum MHD_Result *ret)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay_response meta;

	req->resend = send_push; /* replayable from the spool */
	if (send_push(req, &err) != 0) {
		*ret = forward_refuse(req, err.code, err.msg);
		return true;
	}
	if (forward_wait(req, &meta, false, ret))
		return true;
	*upstream_error = read_upstream_reply(req, reply, reply_len);
	return false;
}

/* ---- answering ----------------------------------------------------- */

static enum MHD_Result queue_push_result(struct request *req,
					 unsigned char *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type",
				"application/x-git-receive-pack-result");
	MHD_add_response_header(resp, "Cache-Control",
				"no-cache, max-age=0, must-revalidate");
	MHD_add_response_header(resp, "Pragma", "no-cache");
	MHD_add_response_header(resp, "Expires",
				"Fri, 01 Jan 1980 00:00:00 GMT");
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	ret = MHD_queue_response(req->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Forward what may go upstream, merge the answer with gitgate's own
 * refusals, audit the per-ref outcome, then answer the client. */
static enum MHD_Result answer_push(struct request *req)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char *reply = NULL, *body = NULL;
	size_t reply_len = 0, body_len = 0, nrefs = 0;
	const struct audit_ref *refs = NULL;
	const char *upstream_error = NULL, *summary;
	enum MHD_Result ret;

	if (push_forward_len(req->push) > 0 &&
	    forward_push(req, &reply, &reply_len, &upstream_error, &ret))
		return ret;
	if (push_respond(&body, &body_len, &refs, &nrefs, req->push, reply,
			 reply_len, upstream_error, &err) != 0) {
		free(reply);
		return request_deny(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    err.msg);
	}
	free(reply);
	summary = push_refusal_summary(req->push);
	req->state = REQ_ANSWERED;
	req->status = MHD_HTTP_OK;
	req->decision = summary ? "deny" : "allow";
	snprintf(req->reason, sizeof(req->reason), "%s",
		 summary ? summary : upstream_error ? upstream_error : "");
	req->bytes_out = body_len;
	request_audit(req, refs, nrefs);
	if (req->audit_failed) {
		free(body);
		return request_text(req, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "audit log unavailable", false);
	}
	return queue_push_result(req, body, body_len);
}

/* The request had no commands (git's auth probe): pass it through. */
static enum MHD_Result forward_probe(struct request *req)
{
	struct gg_err err = GG_ERR_INIT;

	req->resend = send_push;
	if (send_push(req, &err) != 0)
		return forward_refuse(req, err.code, err.msg);
	return forward_answer(req);
}

enum MHD_Result receive_done(struct request *req)
{
	char reason[GG_ERR_MSG_MAX + 8];
	struct gg_err err = GG_ERR_INIT;

	if (req->body_failed) {
		push_end_inspection(req->push);
		return request_deny(req, req->body_status, req->reason);
	}
	if (push_decide(req->push, NULL, &err) != 0)
		return request_deny(req, MHD_HTTP_BAD_REQUEST, err.msg);
	if (!gate_recheck(req, reason, sizeof(reason)))
		return request_deny(req, MHD_HTTP_UNAUTHORIZED, reason);
	if (push_is_probe(req->push))
		return forward_probe(req);
	return answer_push(req);
}

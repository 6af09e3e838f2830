/*
 * forward.c - requests relayed upstream and their answers streamed back
 * (see forward.h): info/refs, upload-pack, and the receive-pack probe.
 */
#include "gitgate/http/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "gitgate/core/glob.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/core/metrics.h"
#include "gitgate/http/relay.h"
#include "gitgate/proto/pktline.h"
#include "gitgate/proto/receivepack.h"
#include "gitgate/token/token.h"
#include "gitgate/upstream/cred.h"

/* ---- relaying ----------------------------------------------------- */

/* Upstream's answer: the bytes read ahead first, then the relay. */
static ssize_t read_body(struct request *req, char *dst, size_t room)
{
	size_t n = req->prefix_len - req->prefix_off;

	if (n == 0)
		return relay_read(req->relay, dst, room);
	if (n > room)
		n = room;
	memcpy(dst, req->prefix + req->prefix_off, n);
	req->prefix_off += n;
	return (ssize_t)n;
}

/* Read the next part of upstream's answer into buf (room max) behind the
 * held tail, and hold the new last REQUEST_HOLDBACK bytes back: returns how many
 * bytes of buf to pass on (0: all still held, or the end of upstream's
 * answer, which sets relay_eof), or relay_read's error. The tail goes in
 * front and upstream's bytes straight after it, so each read costs two
 * REQUEST_HOLDBACK copies, never a move of the block (this is the fetch path). */
static ssize_t read_holding_back(struct request *req, char *buf, size_t max)
{
	char small[3 * REQUEST_HOLDBACK];
	char *dst = buf;
	size_t room = max, total;
	ssize_t n;

	/* libmicrohttpd may offer a sliver of its buffer: read so little that
	 * what is passed on fits into it. */
	if (max < 2 * REQUEST_HOLDBACK) {
		dst = small;
		room = max + REQUEST_HOLDBACK;
	}
	memcpy(dst, req->tail, req->held);
	n = read_body(req, dst + req->held, room - req->held);
	req->relay_eof = n == 0;
	if (n <= 0)
		return n;
	total = req->held + (size_t)n;
	if (total <= REQUEST_HOLDBACK) {
		memcpy(req->tail, dst, total);
		req->held = total;
		return 0;
	}
	memcpy(req->tail, dst + total - REQUEST_HOLDBACK, REQUEST_HOLDBACK);
	req->held = REQUEST_HOLDBACK;
	if (dst == small)
		memcpy(buf, small, total - REQUEST_HOLDBACK);
	return (ssize_t)(total - REQUEST_HOLDBACK);
}

/*
 * Response body of a relayed request. At the end of the stream the audit
 * line (with the final byte count) is written and synced BEFORE the last
 * REQUEST_HOLDBACK bytes go out: a client only sees a complete, successful
 * transfer once its record is on disk. If the record cannot be written
 * (room for it was reserved before the answer began, so that takes an
 * I/O error, or a log on a device or pipe), the response is broken off
 * without those bytes, and git reports the fetch as failed (fail closed).
 */
static ssize_t read_relay(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct request *req = cls;
	size_t send;
	ssize_t n;

	(void)pos;
	/* relay_read with no room would look like the end of the answer;
	 * libmicrohttpd does not offer none, but never read it that way. */
	if (max == 0)
		return 0;
	while (!req->relay_eof) {
		n = read_holding_back(req, buf, max);
		if (n < 0) {
			/* A client that left while upstream stalled is seen
			 * here (the relay watches it); one that left while
			 * data flowed, in on_completed. */
			bool left = relay_client_left(req->relay);

			snprintf(req->reason, sizeof(req->reason), "%s",
				 left ? "client disconnected mid-transfer"
				      : "upstream failed mid-transfer");
			if (!left)
				metrics_upstream_error("transfer");
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (n > 0)
			return n;
	}
	if (!req->audited) {
		req->bytes_out = relay_bytes_down(req->relay);
		request_audit(req, NULL, 0);
	}
	if (req->audit_failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (req->held == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	send = req->held < max ? req->held : max;
	memcpy(buf, req->tail, send);
	memmove(req->tail, req->tail + send, req->held - send);
	req->held -= send;
	return (ssize_t)send;
}

/* Client headers forwarded upstream. Authorization never is: upstream gets
 * gitgate's credential instead. */
static const char *const fwd_headers[] = {
	"Content-Type", "Accept", "Git-Protocol", "Content-Encoding",
	"User-Agent", "Accept-Encoding", "Accept-Language", NULL
};

struct header_list {
	char *lines[8];
	size_t n;
};

static void header_list_release(struct header_list *h)
{
	while (h->n > 0)
		free(h->lines[--h->n]);
}

static int collect_headers(struct header_list *out, struct request *req)
{
	const char *v;
	size_t i, len;

	out->n = 0;
	for (i = 0; fwd_headers[i]; i++) {
		v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
						fwd_headers[i]);
		if (!v)
			continue;
		/* The push path parses upstream's reply itself, and rewrites
		 * the receive-pack advertisement (peek_advert): ask for both
		 * uncompressed. */
		if (req->route.service == ROUTE_SVC_RECEIVE &&
		    !strcmp(fwd_headers[i], "Accept-Encoding"))
			continue;
		if (req->route.kind == ROUTE_RECEIVE_PACK &&
		    !strcmp(fwd_headers[i], "Content-Encoding"))
			continue; /* the body goes up decoded */
		len = strlen(fwd_headers[i]) + 2 + strlen(v) + 1;
		out->lines[out->n] = malloc(len);
		if (!out->lines[out->n])
			return -1;
		snprintf(out->lines[out->n], len, "%s: %s", fwd_headers[i], v);
		out->n++;
	}
	return 0;
}

static char *upstream_url(const struct request *req)
{
	switch (req->route.kind) {
	case ROUTE_INFO_REFS:
		return request_repo_url(req, req->route.service == ROUTE_SVC_UPLOAD
					     ? "/info/refs?service=git-upload-pack"
					     : "/info/refs?service=git-receive-pack");
	case ROUTE_UPLOAD_PACK:
		return request_repo_url(req, "/git-upload-pack");
	default:
		return request_repo_url(req, "/git-receive-pack");
	}
}

static bool is_push(const struct request *req)
{
	return req->route.kind == ROUTE_RECEIVE_PACK ||
	       (req->route.kind == ROUTE_INFO_REFS &&
		req->route.service == ROUTE_SVC_RECEIVE);
}

/* GitHub's workflows permission is all or nothing: granted when any
 * allow_paths glob of the token can reach a file below
 * .github/workflows (the site policy still judges each path). */
static bool may_change_workflows(const struct token_claims *cl)
{
	size_t i;

	for (i = 0; cl && i < cl->nallow_paths; i++)
		if (glob_match_under(cl->allow_paths[i], ".github/workflows",
				     0))
			return true;
	return false;
}

/* The narrowest upstream credential for this request, taken once and
 * kept until the request ends (a retry reuses it). */
static int take_credential(struct request *req, struct gg_err *err)
{
	struct cred_want want = {
		.repo = req->route.repo,
		.access = is_push(req) ? CRED_WRITE : CRED_READ,
		.workflows = is_push(req) && may_change_workflows(req->claims),
	};

	int ret;

	if (req->lease)
		return GG_OK;
	ret = cred_get(req->px->cred, &want, &req->lease, &req->retry_after,
		       err);
	if (ret == GG_EUPSTREAM || ret == GG_ERATELIMIT)
		metrics_upstream_error(ret == GG_ERATELIMIT ? "rate_limit"
							    : "credential");
	return ret;
}

int forward_start(struct request *req, int64_t content_length,
		  struct gg_err *err)
{
	struct header_list headers = { .n = 0 };
	struct relay_request rr;
	char *url;
	int ret;

	ret = take_credential(req, err);
	if (ret)
		return ret;
	url = upstream_url(req);
	if (!url || collect_headers(&headers, req) != 0) {
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	memset(&rr, 0, sizeof(rr));
	rr.method = req->route.kind == ROUTE_INFO_REFS ? "GET" : "POST";
	rr.url = url;
	rr.secret = cred_lease_secret(req->lease);
	rr.headers = (const char *const *)headers.lines;
	rr.nheaders = headers.n;
	rr.content_length = content_length;
	rr.shared = req->px->shared;
	/* A fetch whose client left is dropped at once. A push is not: once
	 * its body is upstream it may land whatever the client does, and the
	 * audit must then say how upstream answered. */
	if (req->route.kind != ROUTE_RECEIVE_PACK) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		rr.watch_client = ci != NULL;
		rr.client_fd = ci ? ci->connect_fd : -1;
	}
	ret = relay_start(&req->relay, &rr, err);
out:
	header_list_release(&headers);
	free(url);
	return ret;
}

enum MHD_Result forward_refuse(struct request *req, int code,
			       const char *reason)
{
	unsigned status = code == GG_EUPSTREAM	  ? MHD_HTTP_BAD_GATEWAY
			  : code == GG_ERATELIMIT ? MHD_HTTP_SERVICE_UNAVAILABLE
						  : MHD_HTTP_INTERNAL_SERVER_ERROR;

	log_warnx("request %s: %s: %s", req->id, req->route.repo, reason);
	return request_deny(req, status, reason);
}

/* A fetch or info/refs sent again: the same request, the same token. */
static int resend_fetch(struct request *req, struct gg_err *err)
{
	int ret;

	if (req->route.kind == ROUTE_INFO_REFS)
		return forward_start(req, 0, err);
	ret = forward_start(req, (int64_t)req->replay_len, err);
	if (ret)
		return ret;
	if (relay_write_body(req->relay, req->replay, req->replay_len) != 0)
		return GG_OK; /* upstream's answer says why */
	relay_finish_body(req->relay);
	return GG_OK;
}

int forward_begin(struct request *req, int64_t content_length,
		  struct gg_err *err)
{
	int ret = forward_start(req, content_length, err);

	if (ret)
		return ret;
	if (req->route.kind == ROUTE_INFO_REFS) {
		req->resend = resend_fetch;
	} else if (cred_lease_fresh(req->lease) &&
		   content_length <= GG_MAX_REPLAY_BODY) {
		/* Only a fresh token may meet GitHub's replication delay:
		 * otherwise nothing is kept. */
		req->resend = resend_fetch;
		req->replay_ok = true;
	}
	return GG_OK;
}

/* The body cannot be kept whole: no retry, and nothing kept. */
static void drop_replay(struct request *req)
{
	req->replay_ok = false;
	req->resend = NULL;
	free(req->replay);
	req->replay = NULL;
	req->replay_len = 0;
}

void forward_keep_body(struct request *req, const char *data, size_t len)
{
	unsigned char *nb;

	if (!req->replay_ok)
		return;
	if (len > GG_MAX_REPLAY_BODY - req->replay_len) {
		drop_replay(req);
		return;
	}
	nb = realloc(req->replay, req->replay_len + len);
	if (!nb) {
		drop_replay(req);
		return;
	}
	memcpy(nb + req->replay_len, data, len);
	req->replay = nb;
	req->replay_len += len;
}

/* A 401 just after the token was minted may be GitHub's replication
 * delay (the git servers do not know it yet): wait, send once more. */
static int retry_fresh_401(struct request *req, struct relay_response *meta,
			   struct gg_err *err)
{
	if (meta->status != 401 || req->retried || !req->resend ||
	    !req->lease || !cred_lease_fresh(req->lease))
		return GG_OK;
	req->retried = true;
	log_info("request %s: %s: upstream refused a token minted moments "
		 "ago; retrying once in %d ms (replication delay)",
		 req->id, req->route.repo, GG_APP_REPLICATION_WAIT_MS);
	relay_free(req->relay);
	req->relay = NULL;
	usleep(GG_APP_REPLICATION_WAIT_MS * 1000);
	if (req->resend(req, err) != 0)
		return err->code;
	return relay_wait_headers(req->relay, meta, err);
}

/* Map an upstream status to what the client gets; NULL = pass through. */
static const char *upstream_refusal(long status, unsigned *client_status)
{
	if (status >= 200 && status < 300)
		return NULL;
	if (status == 404) {
		*client_status = MHD_HTTP_NOT_FOUND;
		return "repository not found upstream";
	}
	*client_status = MHD_HTTP_BAD_GATEWAY;
	if (status == 401 || status == 403)
		return "upstream rejected gitgate's credential";
	if (status >= 300 && status < 400)
		return "upstream redirected (not followed)";
	return "upstream failed";
}

/* Most bytes read ahead for the first ref line of an advertisement: it
 * fits one packet, and the service line and flush come before it. */
#define ADVERT_PEEK_MAX (GG_MAX_PKT_LEN + 1024)

/* Read upstream's receive-pack advertisement up to its first ref line into
 * req->prefix, with push-cert dropped (rp_advert_rewrite). Anything not
 * recognised passes on as read. Returns 0, 1 for a SHA-256 repository
 * (refused: gitgate's push checks read SHA-1 packs only), or -1 when
 * upstream failed (err says why). */
static int peek_advert(struct request *req, struct gg_err *err)
{
	unsigned char *buf = malloc(ADVERT_PEEK_MAX);
	struct gg_err why = GG_ERR_INIT;
	struct pkt_buf out;
	size_t len = 0, used;
	bool sha256 = false;
	ssize_t n;
	int ret = GG_EAGAIN;

	if (!buf) {
		gg_err_set(err, GG_ENOMEM, "out of memory");
		return -1;
	}
	pkt_buf_init(&out, 2 * ADVERT_PEEK_MAX);
	while (ret == GG_EAGAIN && len < ADVERT_PEEK_MAX) {
		n = relay_read(req->relay, (char *)buf + len,
			       ADVERT_PEEK_MAX - len);
		if (n < 0) {
			free(buf);
			pkt_buf_release(&out);
			gg_err_set(err, GG_EUPSTREAM,
				   "upstream failed mid-transfer");
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		gg_err_init(&why);
		ret = rp_advert_rewrite(&out, &used, &sha256, buf, len, &why);
	}
	if (ret == GG_OK && !sha256 &&
	    pkt_buf_add(&out, buf + used, len - used, &why) == GG_OK) {
		free(buf);
		req->prefix = pkt_buf_detach(&out, &req->prefix_len);
		return 0;
	}
	pkt_buf_release(&out);
	req->prefix = buf; /* as upstream sent it */
	req->prefix_len = len;
	return ret == GG_OK && sha256 ? 1 : 0;
}

/* Upstream's answer headers, as relay.c kept them, passed on. */
static void copy_headers(struct MHD_Response *resp,
			 const struct relay_response *meta)
{
	const char *colon;
	char name[64];
	size_t i, n;

	for (i = 0; i < meta->nheaders; i++) {
		colon = strchr(meta->headers[i], ':');
		if (!colon)
			continue;
		n = (size_t)(colon - meta->headers[i]);
		if (n >= sizeof(name))
			continue;
		memcpy(name, meta->headers[i], n);
		name[n] = '\0';
		colon++;
		while (*colon == ' ')
			colon++;
		MHD_add_response_header(resp, name, colon);
	}
}

/* gitgate_upstream_errors_total's kind for an upstream refusal: 429 is
 * GitHub's rate limit (as is a 403 with Retry-After, counted as auth
 * here: the headers are not at hand). */
static const char *upstream_error_kind(long status)
{
	if (status == 429)
		return "rate_limit";
	if (status == 401 || status == 403)
		return "auth";
	if (status >= 300 && status < 400)
		return "redirect";
	return "status";
}

bool forward_wait(struct request *req, struct relay_response *meta,
		  bool status_in_reason, enum MHD_Result *ret)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned status = MHD_HTTP_BAD_GATEWAY;
	const char *refusal;
	char why[GG_ERR_MSG_MAX];

	if (relay_wait_headers(req->relay, meta, &err) != 0 ||
	    retry_fresh_401(req, meta, &err) != 0) {
		*ret = forward_refuse(req, err.code, err.msg);
		return true;
	}
	refusal = upstream_refusal(meta->status, &status);
	if (!refusal)
		return false;
	if (meta->status != 404) /* the repository's answer, not a fault */
		metrics_upstream_error(upstream_error_kind(meta->status));
	snprintf(why, sizeof(why), "%s (HTTP %ld)", refusal, meta->status);
	log_warnx("request %s: %s: %s", req->id, req->route.repo, why);
	relay_abort(req->relay);
	*ret = request_deny(req, status,
			    status_in_reason && meta->status != 404 ? why
								    : refusal);
	return true;
}

/* Refuse a receive-pack advertisement gitgate cannot rewrite or will not
 * serve. true when *ret holds the refusal's answer. */
static bool advert_refused(struct request *req,
			   const struct relay_response *meta,
			   enum MHD_Result *ret)
{
	struct gg_err err = GG_ERR_INIT;
	int peek;

	if (req->route.kind != ROUTE_INFO_REFS ||
	    req->route.service != ROUTE_SVC_RECEIVE || meta->status != 200 ||
	    relay_response_has(meta, "Content-Encoding"))
		return false;
	peek = peek_advert(req, &err);
	if (peek == 0)
		return false;
	relay_abort(req->relay);
	*ret = peek < 0 ? request_deny(req, MHD_HTTP_BAD_GATEWAY, err.msg)
			: request_deny(req, MHD_HTTP_FORBIDDEN,
				       "pushing to a SHA-256 repository is "
				       "not supported by gitgate");
	return true;
}

enum MHD_Result forward_answer(struct request *req)
{
	struct relay_response meta;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (forward_wait(req, &meta, true, &ret) ||
	    advert_refused(req, &meta, &ret))
		return ret;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
						 256 * 1024, read_relay, req,
						 NULL);
	if (!resp)
		return MHD_NO;
	copy_headers(resp, &meta);
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	req->state = REQ_ANSWERED;
	req->status = (int)meta.status;
	req->decision = "allow";
	ret = MHD_queue_response(req->conn, (unsigned)meta.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

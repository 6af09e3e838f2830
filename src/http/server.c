/*
 * server.c - the proxy's HTTP front (libmicrohttpd, thread per connection).
 *
 * Request life: the first callback classifies the route, authenticates the
 * token and checks repo and operation; a refusal is answered at once
 * (401/403/404) and audited before the client sees it. Allowed requests are
 * relayed: info/refs and upload-pack stream both ways through a relay;
 * receive-pack bodies are spooled to disk first (push rules need the whole
 * command list and pack before anything goes upstream).
 */
#include "gitgate/http/server.h"
#include "gitgate/audit/audit.h"
#include "gitgate/token/authstate.h"
#include "gitgate/http/connwatch.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/push/mirror.h"
#include "gitgate/proto/pktline.h"
#include "gitgate/push/push.h"
#include "gitgate/http/quota.h"
#include "gitgate/proto/receivepack.h"
#include "gitgate/http/relay.h"
#include "gitgate/http/route.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/token/token.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct server {
	struct config *cfg; /* private copy of the paths we need */
	char *upstream_url;
	char *secret; /* sodium_malloc'd */
	char *cache_dir;
	struct authstate *auth;
	struct audit_log *audit;
	struct relay_shared *shared;
	struct connwatch *watch; /* header deadlines */
	struct quota *per_token; /* requests in flight per jti */
	unsigned swept;          /* connections shut down, not yet logged */
	int64_t swept_logged_ms;
	char follow_warned[GG_ERR_MSG_MAX]; /* last audit_follow refusal */
	struct MHD_Daemon *daemon;
	int listen_fd;
	unsigned in_flight; /* requests between first callback and completion */
	pthread_mutex_t lock;
};

enum req_state { REQ_NEW, REQ_STREAM_BODY, REQ_SPOOL_BODY, REQ_ANSWERED };

/* Bytes at the end of a relayed response kept from the client until its
 * audit line is on disk: at least the flush-pkt that ends every git
 * response (or the pack's checksum), and a gzip body's 8-byte trailer with
 * some deflate data before it. Without them git cannot take a cut-off
 * transfer for a complete one; curl's complaint about a missing last
 * chunk alone is not enough (a v2 clone then exits 0: measured). Small,
 * so that keepalive packets during a long, quiet pack computation still
 * reach the client. */
#define HOLDBACK 16

struct request {
	struct server *srv;
	struct MHD_Connection *conn;
	enum req_state state;
	struct route route;
	char id[33];
	char client[INET6_ADDRSTRLEN + 8];
	int64_t start_ms;
	struct token_claims *claims;
	struct relay *relay;
	struct push *push;
	bool body_failed;  /* upstream gave up mid-body: discard the rest */
	unsigned body_status; /* for a push body that could not be taken */
	bool audited;
	bool quota_taken;  /* counted in srv->per_token under its jti */
	bool audit_failed; /* its line could not be written */
	size_t reserved;   /* audit log room set aside for its line */
	bool relay_eof;    /* upstream's answer has all been read */
	size_t held;       /* bytes of tail not yet passed on */
	char tail[HOLDBACK];
	unsigned char *prefix; /* response bytes read ahead (see peek_advert) */
	size_t prefix_len, prefix_off;
	int status;        /* HTTP status sent to the client */
	const char *decision;
	char reason[GG_ERR_MSG_MAX];
	uint64_t bytes_in;
	uint64_t bytes_out;
};

/* ---- responses ---------------------------------------------------- */

/* Every answer names its request (X-Request-Id), as the audit line does. */
static enum MHD_Result queue_text(struct request *req, unsigned status,
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
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED) /* RFC 9110: say which */
		MHD_add_response_header(resp, "Allow",
					route_allowed_methods(req->route.kind));
	ret = MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- audit -------------------------------------------------------- */

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
}

static void warn_audit(const struct gg_err *err)
{
	log_warnx("audit log: %s (refusing requests until it can be "
		  "written)", err->msg);
}

static void audit_request(struct request *req, const struct audit_ref *refs,
			  size_t nrefs)
{
	struct audit_record rec;
	struct gg_err err = GG_ERR_INIT;
	size_t reserved = req->reserved;

	if (req->audited || !req->srv->audit)
		return;
	req->audited = true;
	req->reserved = 0; /* used up by the append, whatever it gives */
	fill_record(&rec, req, refs, nrefs);
	if (audit_append_reserved(req->srv->audit, &rec, reserved, &err) !=
	    0) {
		req->audit_failed = true;
		warn_audit(&err);
	}
}

/* An allowed request may stream its answer before its line is written
 * (see read_relay): set room aside for the line first, so a full disk is
 * a clean 503 now rather than a transfer broken off at its end. */
static int reserve_record(struct request *req)
{
	struct audit_record rec;
	struct gg_err err = GG_ERR_INIT;
	int ret;

	if (!req->srv->audit)
		return 0;
	fill_record(&rec, req, NULL, 0);
	ret = audit_reserve(req->srv->audit, &req->reserved, &rec, &err);
	if (ret)
		warn_audit(&err);
	return ret;
}

/* Answer with a refusal, audited first (fail closed: if the audit line
 * cannot be written the client gets 503 instead). While the log is
 * unhealthy the answer is 503 whatever the refusal, and the line, if it
 * can be written, says so. */
static enum MHD_Result deny(struct request *req, unsigned status,
			    const char *reason)
{
	bool challenge;

	if (req->srv->audit && !audit_healthy(req->srv->audit)) {
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
		reason = "audit log unavailable";
	}
	challenge = status == MHD_HTTP_UNAUTHORIZED;
	req->state = REQ_ANSWERED;
	req->status = (int)status;
	req->decision = "deny";
	if (reason != req->reason) { /* callers may pass req->reason itself */
		size_t n = strnlen(reason, sizeof(req->reason) - 1);

		memcpy(req->reason, reason, n); /* cut, like any message */
		req->reason[n] = '\0';
	}
	audit_request(req, NULL, 0);
	if (req->audit_failed)
		return queue_text(req, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "audit log unavailable", false);
	return queue_text(req, status, reason, challenge);
}

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
 * held tail, and hold the new last HOLDBACK bytes back: returns how many
 * bytes of buf to pass on (0: all still held, or the end of upstream's
 * answer, which sets relay_eof), or relay_read's error. The tail goes in
 * front and upstream's bytes straight after it, so each read costs two
 * HOLDBACK copies, never a move of the block (this is the fetch path). */
static ssize_t read_holding_back(struct request *req, char *buf, size_t max)
{
	char small[3 * HOLDBACK];
	char *dst = buf;
	size_t room = max, total;
	ssize_t n;

	/* libmicrohttpd may offer a sliver of its buffer: read so little that
	 * what is passed on fits into it. */
	if (max < 2 * HOLDBACK) {
		dst = small;
		room = max + HOLDBACK;
	}
	memcpy(dst, req->tail, req->held);
	n = read_body(req, dst + req->held, room - req->held);
	req->relay_eof = n == 0;
	if (n <= 0)
		return n;
	total = req->held + (size_t)n;
	if (total <= HOLDBACK) {
		memcpy(req->tail, dst, total);
		req->held = total;
		return 0;
	}
	memcpy(req->tail, dst + total - HOLDBACK, HOLDBACK);
	req->held = HOLDBACK;
	if (dst == small)
		memcpy(buf, small, total - HOLDBACK);
	return (ssize_t)(total - HOLDBACK);
}

/*
 * Response body of a relayed request. At the end of the stream the audit
 * line (with the final byte count) is written and synced BEFORE the last
 * HOLDBACK bytes go out: a client only sees a complete, successful
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
			snprintf(req->reason, sizeof(req->reason), "%s",
				 relay_client_left(req->relay)
					 ? "client disconnected mid-transfer"
					 : "upstream failed mid-transfer");
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (n > 0)
			return n;
	}
	if (!req->audited) {
		req->bytes_out = relay_bytes_down(req->relay);
		audit_request(req, NULL, 0);
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

/* "<upstream>/<owner/name>.git<suffix>", malloc'd; NULL when out of memory.
 * The one place that maps a repository to its upstream URL. */
static char *repo_url(const struct request *req, const char *suffix)
{
	size_t len = strlen(req->srv->upstream_url) + 1 +
		     strlen(req->route.repo) + 4 + strlen(suffix) + 1;
	char *url = malloc(len);

	if (url)
		snprintf(url, len, "%s/%s.git%s", req->srv->upstream_url,
			 req->route.repo, suffix);
	return url;
}

static char *upstream_url(const struct request *req)
{
	switch (req->route.kind) {
	case ROUTE_INFO_REFS:
		return repo_url(req, req->route.service == ROUTE_SVC_UPLOAD
					     ? "/info/refs?service=git-upload-pack"
					     : "/info/refs?service=git-receive-pack");
	case ROUTE_UPLOAD_PACK:
		return repo_url(req, "/git-upload-pack");
	default:
		return repo_url(req, "/git-receive-pack");
	}
}

static int start_relay(struct request *req, int64_t content_length,
		       struct gg_err *err)
{
	struct header_list headers = { .n = 0 };
	struct relay_request rr;
	char *url = upstream_url(req);
	int ret;

	if (!url || collect_headers(&headers, req) != 0) {
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	memset(&rr, 0, sizeof(rr));
	rr.method = req->route.kind == ROUTE_INFO_REFS ? "GET" : "POST";
	rr.url = url;
	rr.secret = req->srv->secret;
	rr.headers = (const char *const *)headers.lines;
	rr.nheaders = headers.n;
	rr.content_length = content_length;
	rr.shared = req->srv->shared;
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

/* Wait for upstream's answer and queue the streamed response. */
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

static enum MHD_Result answer_from_relay(struct request *req)
{
	struct relay_response meta;
	struct gg_err err = GG_ERR_INIT;
	struct MHD_Response *resp;
	unsigned status = MHD_HTTP_BAD_GATEWAY;
	const char *refusal;
	char why[GG_ERR_MSG_MAX];
	enum MHD_Result ret;
	size_t i;

	if (relay_wait_headers(req->relay, &meta, &err) != 0) {
		log_warnx("request %s: %s: %s", req->id, req->route.repo,
			  err.msg);
		return deny(req, MHD_HTTP_BAD_GATEWAY, err.msg);
	}
	refusal = upstream_refusal(meta.status, &status);
	if (refusal) {
		snprintf(why, sizeof(why), "%s (HTTP %ld)", refusal,
			 meta.status);
		log_warnx("request %s: %s: %s", req->id, req->route.repo, why);
		relay_abort(req->relay);
		return deny(req, status, meta.status == 404 ? refusal : why);
	}
	if (req->route.kind == ROUTE_INFO_REFS &&
	    req->route.service == ROUTE_SVC_RECEIVE && meta.status == 200 &&
	    !relay_response_has(&meta, "Content-Encoding")) {
		int peek = peek_advert(req, &err);

		if (peek != 0)
			relay_abort(req->relay);
		if (peek < 0)
			return deny(req, MHD_HTTP_BAD_GATEWAY, err.msg);
		if (peek > 0)
			return deny(req, MHD_HTTP_FORBIDDEN,
				    "pushing to a SHA-256 repository is not "
				    "supported by gitgate");
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
						 256 * 1024, read_relay, req,
						 NULL);
	if (!resp)
		return MHD_NO;
	for (i = 0; i < meta.nheaders; i++) {
		const char *colon = strchr(meta.headers[i], ':');
		char name[64];
		size_t n = (size_t)(colon - meta.headers[i]);

		if (!colon || n >= sizeof(name))
			continue;
		memcpy(name, meta.headers[i], n);
		name[n] = '\0';
		colon++;
		while (*colon == ' ')
			colon++;
		MHD_add_response_header(resp, name, colon);
	}
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	req->state = REQ_ANSWERED;
	req->status = (int)meta.status;
	req->decision = "allow";
	ret = MHD_queue_response(req->conn, (unsigned)meta.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- authentication and authorisation ------------------------------ */

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
		ret = authstate_verify(req->srv->auth, claims, token, len,
				       timeutil_now_ms() / 1000, &err);
	if (ret == GG_EEXPIRED || ret == GG_ENOTYET || ret == GG_EREVOKED)
		token_decode_unverified(claims, token, len, NULL);
	sodium_memzero(token, sizeof(token));
	if (ret != 0)
		snprintf(reason, size, "%s%s", bare ? "" : "token ",
			 ret == GG_ELIMIT ? "too long" : err.msg);
	return ret;
}

static enum MHD_Result authenticate(struct request *req)
{
	char reason[GG_ERR_MSG_MAX + 8];

	if (check_token(req, &req->claims, reason, sizeof(reason)) != 0)
		return deny(req, MHD_HTTP_UNAUTHORIZED, reason);
	return MHD_YES;
}

/* A push is decided only once its whole body is in, which a client can
 * make last minutes: is the token still good, so that one revoked or
 * expired meanwhile lands nothing (interface.md: refused within 1 s)? */
static bool token_still_good(struct request *req, char *reason, size_t size)
{
	struct token_claims *now = NULL;
	int ret = check_token(req, &now, reason, size);

	token_claims_free(now);
	if (ret != 0)
		log_info("request %s: %s: push refused at its decision: %s",
			 req->id, req->route.repo, reason);
	return ret == 0;
}

static enum MHD_Result authorise(struct request *req)
{
	char reason[GG_ERR_MSG_MAX];
	bool push = req->route.service == ROUTE_SVC_RECEIVE;
	unsigned need = push ? TOKEN_OP_PUSH : TOKEN_OP_FETCH;

	if (!token_claims_has_repo(req->claims, req->route.repo)) {
		snprintf(reason, sizeof(reason),
			 "token does not grant access to %s", req->route.repo);
		return deny(req, MHD_HTTP_FORBIDDEN, reason);
	}
	if (!(req->claims->ops & need)) {
		snprintf(reason, sizeof(reason), "token does not allow %s to %s",
			 push ? "push" : "fetch", req->route.repo);
		return deny(req, MHD_HTTP_FORBIDDEN, reason);
	}
	return MHD_YES;
}

/* One token may hold only so many requests at once (quota.h): past that,
 * refuse at once rather than let it take every connection slot. */
static enum MHD_Result take_quota(struct request *req)
{
	struct gg_err err = GG_ERR_INIT;
	int ret = quota_take(req->srv->per_token, req->claims->jti, &err);

	if (ret == GG_ELIMIT)
		return deny(req, MHD_HTTP_TOO_MANY_REQUESTS, err.msg);
	if (ret != GG_OK)
		return deny(req, MHD_HTTP_INTERNAL_SERVER_ERROR, err.msg);
	req->quota_taken = true;
	return MHD_YES;
}

/* ---- request phases ------------------------------------------------ */

static int set_push_ctx(struct request *req, struct gg_err *err);

static void client_address(struct request *req)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;
	char host[INET6_ADDRSTRLEN] = "?";

	ci = MHD_get_connection_info(req->conn,
				     MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	sa = ci ? ci->client_addr : NULL;
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET,
			  &((const struct sockaddr_in *)(const void *)sa)
				   ->sin_addr,
			  host, sizeof(host));
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)(const void *)sa)
				   ->sin6_addr,
			  host, sizeof(host));
	snprintf(req->client, sizeof(req->client), "%s", host);
}

static struct request *request_new(struct server *srv,
				   struct MHD_Connection *conn)
{
	struct request *req = calloc(1, sizeof(*req));
	unsigned char rnd[16];

	if (!req)
		return NULL;
	req->srv = srv;
	req->conn = conn;
	req->start_ms = timeutil_now_ms();
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(req->id, sizeof(req->id), rnd, sizeof(rnd));
	client_address(req);
	pthread_mutex_lock(&srv->lock);
	srv->in_flight++;
	pthread_mutex_unlock(&srv->lock);
	return req;
}

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

static enum MHD_Result begin(struct request *req, const char *url,
			     const char *method)
{
	struct gg_err err = GG_ERR_INIT;
	const char *service, *refusal;
	unsigned status;
	size_t i;
	int ret;

	service = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
					      "service");
	ret = route_parse(&req->route, method, url, service, &err);
	if (ret == GG_EDENIED)
		return deny(req, MHD_HTTP_METHOD_NOT_ALLOWED, err.msg);
	if (ret != 0)
		return deny(req, MHD_HTTP_NOT_FOUND, err.msg);
	if (req->route.kind == ROUTE_HEALTHZ) {
		req->state = REQ_ANSWERED;
		req->audited = true; /* health checks are not decisions */
		/* Every request is refused while the audit log cannot be
		 * written: the health check must say so. */
		if (req->srv->audit && !audit_healthy(req->srv->audit))
			return queue_text(req,
					  MHD_HTTP_SERVICE_UNAVAILABLE,
					  "audit log unavailable", false);
		return queue_text(req, MHD_HTTP_OK, "ok", false);
	}
	for (i = 0; single_headers[i]; i++)
		if (header_count(req->conn, single_headers[i]) > 1)
			return deny(req, MHD_HTTP_BAD_REQUEST,
				    "repeated header");
	if (header_malformed(req->conn))
		return deny(req, MHD_HTTP_BAD_REQUEST,
			    "control character in a request header");
	refusal = framing_refusal(req, &status);
	if (refusal)
		return deny(req, status, refusal);
	if (authenticate(req) != MHD_YES || req->state == REQ_ANSWERED)
		return MHD_YES;
	if (authorise(req) != MHD_YES || req->state == REQ_ANSWERED)
		return MHD_YES;
	if (take_quota(req) != MHD_YES || req->state == REQ_ANSWERED)
		return MHD_YES;
	if ((req->srv->audit && !audit_healthy(req->srv->audit)) ||
	    reserve_record(req) != 0)
		return deny(req, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "audit log unavailable");
	return MHD_YES;
}

static int64_t client_content_length(struct request *req)
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

/* Allowed request: start relaying (GET, upload-pack) or spooling. */
static enum MHD_Result proceed(struct request *req)
{
	struct gg_err err = GG_ERR_INIT;
	int ret;

	if (req->route.kind == ROUTE_RECEIVE_PACK) {
		const char *enc = MHD_lookup_connection_value(
			req->conn, MHD_HEADER_KIND, "Content-Encoding");

		/* gitgate must read the push to judge it: only encodings it
		 * can decode are accepted. */
		bool gzip = enc && !strcasecmp(enc, "gzip");
		char reason[64];

		if (enc && !gzip && strcasecmp(enc, "identity"))
			return deny(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
				    "unsupported Content-Encoding for a push");
		/* A declared length past the cap is refused now rather than
		 * after 2 GiB have been spooled. (A gzip body's length says
		 * nothing exact about its decoded size: push_body judges.) */
		if (!gzip &&
		    client_content_length(req) > (int64_t)GG_MAX_PUSH_BYTES) {
			snprintf(reason, sizeof(reason),
				 "push larger than %llu bytes",
				 (unsigned long long)GG_MAX_PUSH_BYTES);
			return deny(req, MHD_HTTP_CONTENT_TOO_LARGE, reason);
		}
		ret = push_new(&req->push, req->srv->cache_dir, gzip, &err);
		if (ret == 0)
			ret = set_push_ctx(req, &err);
		if (ret != 0) {
			log_warnx("request %s: %s", req->id, err.msg);
			return deny(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "cannot spool push");
		}
		req->state = REQ_SPOOL_BODY;
		return MHD_YES;
	}
	ret = start_relay(req,
				 req->route.kind == ROUTE_INFO_REFS
					 ? 0
					 : client_content_length(req),
				 &err);
	if (ret != 0)
		return deny(req, MHD_HTTP_INTERNAL_SERVER_ERROR, err.msg);
	if (req->route.kind == ROUTE_INFO_REFS)
		return answer_from_relay(req);
	req->state = REQ_STREAM_BODY;
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

static enum MHD_Result body_chunk(struct request *req, const char *data,
				  size_t len)
{
	struct gg_err err = GG_ERR_INIT;

	req->bytes_in += len;
	if (req->body_failed)
		return MHD_YES;
	if (req->state == REQ_STREAM_BODY) {
		if (relay_write_body(req->relay, data, len) != 0)
			req->body_failed = true;
		return MHD_YES;
	}
	if (push_body(req->push, data, len, &err) != 0) {
		log_warnx("request %s: %s", req->id, err.msg);
		req->body_failed = true;
		req->body_status = body_status(err.code);
		snprintf(req->reason, sizeof(req->reason), "%s", err.msg);
	}
	return MHD_YES;
}

static int write_to_relay(void *payload, const void *buf, size_t len)
{
	return relay_write_body(payload, buf, len);
}

/* Send what push_decide kept upstream; on failure the relay is left for
 * answer_from_relay / the caller to report. */
static int send_push(struct request *req, struct gg_err *err)
{
	int ret;

	ret = start_relay(req, (int64_t)push_forward_len(req->push), err);
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
	struct relay_response meta;
	unsigned status = MHD_HTTP_BAD_GATEWAY;
	const char *refusal;

	if (push_forward_len(req->push) > 0) {
		if (send_push(req, &err) != 0)
			return deny(req, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    err.msg);
		if (relay_wait_headers(req->relay, &meta, &err) != 0) {
			log_warnx("request %s: %s: %s", req->id,
				  req->route.repo, err.msg);
			return deny(req, MHD_HTTP_BAD_GATEWAY, err.msg);
		}
		refusal = upstream_refusal(meta.status, &status);
		if (refusal) {
			log_warnx("request %s: %s: %s (HTTP %ld)", req->id,
				  req->route.repo, refusal, meta.status);
			relay_abort(req->relay);
			return deny(req, status, refusal);
		}
		upstream_error = read_upstream_reply(req, &reply, &reply_len);
	}
	if (push_respond(&body, &body_len, &refs, &nrefs, req->push, reply,
			 reply_len, upstream_error, &err) != 0) {
		free(reply);
		return deny(req, MHD_HTTP_INTERNAL_SERVER_ERROR, err.msg);
	}
	free(reply);
	summary = push_refusal_summary(req->push);
	req->state = REQ_ANSWERED;
	req->status = MHD_HTTP_OK;
	req->decision = summary ? "deny" : "allow";
	snprintf(req->reason, sizeof(req->reason), "%s",
		 summary ? summary : upstream_error ? upstream_error : "");
	req->bytes_out = body_len;
	audit_request(req, refs, nrefs);
	if (req->audit_failed) {
		free(body);
		return queue_text(req, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "audit log unavailable", false);
	}
	return queue_push_result(req, body, body_len);
}

/* The request had no commands (git's auth probe): pass it through. */
static enum MHD_Result forward_probe(struct request *req)
{
	struct gg_err err = GG_ERR_INIT;

	if (send_push(req, &err) != 0)
		return deny(req, MHD_HTTP_INTERNAL_SERVER_ERROR, err.msg);
	return answer_from_relay(req);
}

/* Known before the body arrives, so inspection can start as soon as the
 * command list is parsed (mirror refresh and pack indexing overlap the
 * client's upload). */
static int set_push_ctx(struct request *req, struct gg_err *err)
{
	char *url = repo_url(req, "");
	struct push_ctx ctx;
	int ret;

	if (!url)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	memset(&ctx, 0, sizeof(ctx));
	ctx.cache_dir = req->srv->cache_dir;
	ctx.repo = req->route.repo;
	ctx.upstream_repo_url = url;
	ctx.secret = req->srv->secret;
	ctx.claims = req->claims;
	ret = push_set_ctx(req->push, &ctx, err); /* copies the strings */
	free(url);
	return ret;
}

static enum MHD_Result finish_push(struct request *req)
{
	char reason[GG_ERR_MSG_MAX + 8];
	struct gg_err err = GG_ERR_INIT;

	if (push_decide(req->push, NULL, &err) != 0)
		return deny(req, MHD_HTTP_BAD_REQUEST, err.msg);
	if (!token_still_good(req, reason, sizeof(reason)))
		return deny(req, MHD_HTTP_UNAUTHORIZED, reason);
	if (push_is_probe(req->push))
		return forward_probe(req);
	return answer_push(req);
}

static enum MHD_Result body_done(struct request *req)
{
	if (req->state == REQ_STREAM_BODY) {
		relay_finish_body(req->relay);
		return answer_from_relay(req);
	}
	if (req->body_failed) {
		push_end_inspection(req->push);
		return deny(req, req->body_status, req->reason);
	}
	return finish_push(req);
}

static enum MHD_Result start(struct request *req, const char *url,
			     const char *method)
{
	if (begin(req, url, method) != MHD_YES)
		return MHD_NO;
	if (req->state == REQ_ANSWERED)
		return MHD_YES;
	return proceed(req);
}

/* ---- connections --------------------------------------------------- */

static struct connwatch_conn *conn_watch(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* Every connection is watched from accept to close: see connwatch.h. */
static void on_connection(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct server *srv = cls;
	const union MHD_ConnectionInfo *ci;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		/* before libmicrohttpd closes the descriptor */
		connwatch_remove(srv->watch, *socket_context);
		*socket_context = NULL;
		return;
	}
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	*socket_context = ci ? connwatch_add(srv->watch, ci->connect_fd,
					     timeutil_mono_ms())
			     : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct request *req = *con_cls;

	(void)version;
	if (!req) {
		connwatch_busy(((struct server *)cls)->watch, conn_watch(conn));
		req = request_new(cls, conn);
		if (!req)
			return MHD_NO;
		*con_cls = req;
		/* Bodyless requests are answered on the next call, once MHD
		 * knows the (empty) body is complete: a response queued now
		 * would make it close the connection instead of keeping it
		 * alive for git's next request. Requests with a body are
		 * judged now, so a refusal does not wait for the upload. */
		if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
			return MHD_YES;
		return start(req, url, method);
	}
	if (req->state == REQ_NEW)
		return start(req, url, method);
	if (req->state == REQ_ANSWERED) {
		*upload_data_size = 0; /* refused: discard the body */
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		enum MHD_Result r = body_chunk(req, upload_data,
					       *upload_data_size);
		*upload_data_size = 0;
		return r;
	}
	return body_done(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct request *req = *con_cls;

	/* kept alive: the next request's headers are owed from now */
	connwatch_idle(srv->watch, conn_watch(conn), timeutil_mono_ms());
	if (!req)
		return;
	if (req->relay) {
		if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
			relay_abort(req->relay);
		if (!req->audited && !req->push)
			req->bytes_out = relay_bytes_down(req->relay);
	}
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !req->audited) {
		if (!req->reason[0])
			snprintf(req->reason, sizeof(req->reason),
				 "client disconnected or timed out");
		if (!req->decision)
			req->decision = "deny";
	}
	audit_request(req, NULL, 0);
	if (req->reserved) /* audited before it reserved: give it back */
		audit_unreserve(srv->audit, req->reserved);
	if (req->quota_taken)
		quota_give(srv->per_token, req->claims->jti);
	relay_free(req->relay);
	free(req->prefix);
	push_free(req->push);
	token_claims_free(req->claims);
	sodium_memzero(req, sizeof(*req));
	free(req);
	*con_cls = NULL;
	pthread_mutex_lock(&srv->lock);
	srv->in_flight--;
	pthread_mutex_unlock(&srv->lock);
}

/* ---- lifecycle ----------------------------------------------------- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	log_info("http: %s", msg);
}

/* Bind the listen address ourselves: getaddrinfo handles IPv4 and IPv6
 * literals and names alike, and errors can name the address. */
static int open_listener(const char *host, unsigned short port,
			 struct gg_err *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[8];
	int fd = -1, one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0)
		return gg_err_set(err, GG_EINVAL, "listen: %s: %s", host,
				  gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return gg_err_errno(err, GG_EIO, "listen: cannot bind %s:%u",
				    host, port);
	return fd;
}

/* Lines of the revocation file that were skipped: the others apply, but
 * the operator must hear of it (a revocation may be among them). */
static void warn_revocation_problems(struct server *srv)
{
	char first[GG_ERR_MSG_MAX];
	size_t n = authstate_revocation_problems(srv->auth, first,
						 sizeof(first));

	if (n)
		log_warnx("revocations: %zu line(s) to fix, first %s",
			  n, first);
}

/* Pushes spool under cache_dir: find out now, naming the key, rather than
 * answer every push 500 (a file, a read-only or missing parent...). */
static int check_cache_dir(const char *dir, struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;
	struct push *probe = NULL;
	int ret = push_new(&probe, dir, false, &inner);

	push_free(probe);
	if (ret)
		return gg_err_set(err, ret, "cache_dir: %s", inner.msg);
	return GG_OK;
}

static int load_state(struct server *srv, const struct config *cfg,
		      struct gg_err *err)
{
	int ret;

	srv->upstream_url = strdup(cfg->upstream_url);
	srv->cache_dir = strdup(cfg->cache_dir);
	if (!srv->upstream_url || !srv->cache_dir)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	ret = config_load_upstream_secret(&srv->secret, cfg, err);
	if (ret)
		return ret;
	ret = check_cache_dir(srv->cache_dir, err);
	if (ret)
		return ret;
	ret = authstate_new(&srv->auth, (const char *const *)cfg->verify_keys,
			    cfg->nverify_keys, cfg->revocations, err);
	if (ret)
		return ret;
	warn_revocation_problems(srv);
	ret = audit_open(&srv->audit, cfg->audit_log, err);
	if (ret)
		return ret;
	ret = relay_global_init(err);
	if (ret == 0)
		ret = mirror_global_init(err);
	if (ret)
		return ret;
	srv->shared = relay_shared_new();
	if (!srv->shared)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	return GG_OK;
}

static const struct connwatch_limits watch_limits = {
	.deadline_ms = GG_HEADER_DEADLINE_MS,
	.grace_ms = GG_HEADER_GRACE_MS,
	.pressure = GG_HEADER_PRESSURE,
};

int server_new(struct server **out, const struct config *cfg,
	       struct gg_err *err)
{
	struct server *srv = calloc(1, sizeof(*srv));
	int ret;

	*out = NULL;
	if (!srv)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	pthread_mutex_init(&srv->lock, NULL);
	srv->listen_fd = -1;
	ret = load_state(srv, cfg, err);
	if (ret)
		goto fail;
	ret = quota_new(&srv->per_token, GG_MAX_REQUESTS_PER_TOKEN, err);
	if (ret)
		goto fail;
	ret = connwatch_new(&srv->watch, &watch_limits, err);
	if (ret)
		goto fail;
	srv->listen_fd = open_listener(cfg->listen_host, cfg->listen_port, err);
	if (srv->listen_fd < 0) {
		ret = srv->listen_fd;
		goto fail;
	}
	srv->daemon = MHD_start_daemon(
		/* poll, not select: with select libmicrohttpd refuses every
		 * connection once any descriptor in the process reaches
		 * FD_SETSIZE (1024), and each relayed request holds about four
		 * (client, upstream, pipe, spool): ~250 transfers stuck on a
		 * hung upstream took /healthz down (measured). */
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, srv,
		/* First, so that no message goes to MHD's own logger. */
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)GG_CONN_IDLE_S,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)GG_MAX_CONNECTIONS,
		/* Also the block read_relay fills (~254 KiB, see relay.c).
		 * The pool ends up resident for every connection: with 512
		 * KiB, 64 concurrent clones peaked at 81 MiB RSS even with
		 * small relay reads (measured), over the 64 MiB budget. */
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
		MHD_OPTION_END);
	if (!srv->daemon) {
		ret = gg_err_set(err, GG_ERR, "cannot start HTTP server");
		goto fail;
	}
	*out = srv;
	return GG_OK;
fail:
	server_free(srv);
	return ret;
}

/* Shut down connections that owe a request past their deadline; the log
 * says so at most every 5 s, so a flood cannot flood the log too. */
static void sweep_connections(struct server *srv)
{
	int64_t now = timeutil_mono_ms();

	srv->swept += connwatch_sweep(srv->watch, now, NULL);
	if (!srv->swept || now - srv->swept_logged_ms < 5000)
		return;
	log_warnx("closed %u connection(s) that sent no complete request "
		  "in time (%d s; %d s while over %d wait)",
		  srv->swept, GG_HEADER_DEADLINE_MS / 1000,
		  GG_HEADER_GRACE_MS / 1000, GG_HEADER_PRESSURE);
	srv->swept = 0;
	srv->swept_logged_ms = now;
}

/* The audit log file was deleted or renamed away without a SIGHUP: carry
 * on in a new file at the path (audit_follow says so). A refusal is
 * logged once, not every tick. */
static void follow_audit_log(struct server *srv)
{
	struct gg_err err = GG_ERR_INIT;
	int ret = audit_follow(srv->audit, &err);

	if (ret < 0 && strcmp(err.msg, srv->follow_warned))
		log_warnx("audit log: %s", err.msg);
	snprintf(srv->follow_warned, sizeof(srv->follow_warned), "%s",
		 ret < 0 ? err.msg : "");
}

void server_tick(struct server *srv, int force)
{
	struct gg_err err = GG_ERR_INIT;
	int ret;

	sweep_connections(srv);
	ret = authstate_refresh(srv->auth, force, &err);
	if (ret < 0)
		log_warnx("reload: %s", err.msg);
	if (ret > 0)
		log_info("reloaded: %zu key(s), %zu revoked token(s)",
			 authstate_nkeys(srv->auth),
			 authstate_nrevoked(srv->auth));
	if (ret != 0)
		warn_revocation_problems(srv);
	if (force) {
		gg_err_init(&err);
		if (audit_reopen(srv->audit, &err) != 0)
			log_warnx("audit log reopen failed: %s", err.msg);
		else
			log_info("audit log reopened");
	}
	follow_audit_log(srv);
	if (!audit_healthy(srv->audit)) {
		gg_err_init(&err);
		if (audit_probe(srv->audit, &err) == 0)
			log_info("audit log writable again");
	}
}

static unsigned in_flight(struct server *srv)
{
	unsigned n;

	pthread_mutex_lock(&srv->lock);
	n = srv->in_flight;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

unsigned server_shutdown(struct server *srv, unsigned grace_s)
{
	struct timespec tick = { 0, 50 * 1000 * 1000 };
	unsigned waited = 0, left;
	int fd;

	if (!srv->daemon)
		return 0;
	fd = MHD_quiesce_daemon(srv->daemon);
	if (fd >= 0) {
		close(fd);
		srv->listen_fd = -1;
	}
	while ((left = in_flight(srv)) > 0 && waited < grace_s * 20) {
		nanosleep(&tick, NULL);
		waited++;
	}
	MHD_stop_daemon(srv->daemon);
	srv->daemon = NULL;
	return left;
}

void server_free(struct server *srv)
{
	if (!srv)
		return;
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	relay_shared_free(srv->shared);
	audit_close(srv->audit);
	authstate_free(srv->auth);
	config_secret_free(srv->secret);
	free(srv->upstream_url);
	free(srv->cache_dir);
	connwatch_free(srv->watch); /* after the daemon: no connection left */
	quota_free(srv->per_token);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

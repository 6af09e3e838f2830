/*
 * server.c - the proxy's HTTP front: libmicrohttpd's callbacks adapted to
 * the request pipeline (see request.h), and the server's lifecycle.
 *
 * Request life: the first callback routes the request and passes it
 * through the gate (gate.c); a refusal is answered at once (401/403/404)
 * and audited before the client sees it. Allowed requests are relayed:
 * info/refs and upload-pack stream both ways (forward.c); receive-pack
 * bodies are spooled to disk first (receive.c: push rules need the whole
 * command list and pack before anything goes upstream).
 */
#include "gitgate/http/server.h"

#include <curl/curl.h>
#include <errno.h>
#include <git2.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gitgate/audit/audit.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/core/metrics.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/cache/cache.h"
#include "gitgate/http/admin.h"
#include "gitgate/http/cachefetch.h"
#include "gitgate/http/connwatch.h"
#include "gitgate/http/forward.h"
#include "gitgate/http/gate.h"
#include "gitgate/http/listener.h"
#include "gitgate/http/quota.h"
#include "gitgate/http/receive.h"
#include "gitgate/http/relay.h"
#include "gitgate/http/request.h"
#include "gitgate/http/tls.h"
#include "gitgate/push/mirror.h"
#include "gitgate/push/policystate.h"
#include "gitgate/push/push.h"
#include "gitgate/push/sitepolicy.h"
#include "gitgate/token/authstate.h"
#include "gitgate/upstream/cred.h"

struct server {
	struct proxy px; /* what the request pipeline reads */
	struct connwatch *watch; /* header deadlines */
	unsigned swept;          /* connections shut down, not yet logged */
	int64_t swept_logged_ms;
	char follow_warned[GG_ERR_MSG_MAX]; /* last audit_follow refusal */
	struct MHD_Daemon *daemon;
	struct tls_server *tls; /* NULL: plain HTTP */
	int listen_fd;
	unsigned in_flight; /* requests between first callback and completion */
	pthread_mutex_t lock;
	struct admin *admin; /* "admin_listen"; NULL: off */
	atomic_bool stopping; /* server_shutdown began: /readyz says 503 */
};

/* ---- request phases ------------------------------------------------ */

/* Health checks are not decisions: not audited. Every request is refused
 * while the audit log cannot be written, and the health check says so. */
static enum MHD_Result answer_healthz(struct request *req)
{
	req->state = REQ_ANSWERED;
	req->audited = true;
	if (request_audit_down(req))
		return request_text(req, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "audit log unavailable", false);
	return request_text(req, MHD_HTTP_OK, "ok", false);
}

static enum MHD_Result begin(struct request *req, const char *url,
			     const char *method)
{
	struct gg_err err = GG_ERR_INIT;
	const char *service;
	int ret;

	service = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
					      "service");
	ret = route_parse(&req->route, method, url, service, &err);
	if (ret == GG_EDENIED)
		return request_deny(req, MHD_HTTP_METHOD_NOT_ALLOWED, err.msg);
	if (ret != 0)
		return request_deny(req, MHD_HTTP_NOT_FOUND, err.msg);
	if (req->route.kind == ROUTE_HEALTHZ)
		return answer_healthz(req);
	return gate_admit(req);
}

/* Admitted request: start relaying (GET, upload-pack) or spooling. */
static enum MHD_Result proceed(struct request *req)
{
	struct gg_err err = GG_ERR_INIT;
	int64_t length = 0;

	if (req->route.kind == ROUTE_RECEIVE_PACK)
		return receive_begin(req);
	if (cachefetch_applies(req))
		return cachefetch_begin(req);
	if (req->route.kind != ROUTE_INFO_REFS)
		length = request_content_length(req);
	if (forward_begin(req, length, &err) != 0)
		return forward_refuse(req, err.code, err.msg);
	if (req->route.kind == ROUTE_INFO_REFS)
		return forward_answer(req);
	req->state = REQ_STREAM_BODY;
	return MHD_YES;
}

static void body_chunk(struct request *req, const char *data, size_t len)
{
	req->bytes_in += len;
	if (req->state == REQ_STREAM_BODY)
		forward_keep_body(req, data, len); /* even once upstream
						    * stopped: a retry may
						    * need it all */
	if (req->state == REQ_CACHE_BODY) {
		cachefetch_chunk(req, data, len);
		return;
	}
	if (req->body_failed)
		return;
	if (req->state == REQ_SPOOL_BODY) {
		receive_chunk(req, data, len);
		return;
	}
	if (relay_write_body(req->relay, data, len) != 0)
		req->body_failed = true;
}

static enum MHD_Result body_done(struct request *req)
{
	if (req->state == REQ_SPOOL_BODY)
		return receive_done(req);
	if (req->state == REQ_CACHE_BODY)
		return cachefetch_done(req);
	relay_finish_body(req->relay);
	return forward_answer(req);
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

/* in_flight counts requests from their first callback to on_completed:
 * server_shutdown waits for it to reach 0. */
static void count_in_flight(struct server *srv, int delta)
{
	pthread_mutex_lock(&srv->lock);
	srv->in_flight += (unsigned)delta;
	pthread_mutex_unlock(&srv->lock);
	metrics_in_flight_add(delta);
}

static enum MHD_Result first_call(struct server *srv,
				  struct MHD_Connection *conn, const char *url,
				  const char *method, void **con_cls)
{
	struct request *req;

	connwatch_busy(srv->watch, conn_watch(conn));
	req = request_new(&srv->px, conn);
	if (!req)
		return MHD_NO;
	count_in_flight(srv, 1);
	*con_cls = req;
	/* Bodyless requests are answered on the next call, once MHD knows
	 * the (empty) body is complete: a response queued now would make it
	 * close the connection instead of keeping it alive for git's next
	 * request. Requests with a body are judged now, so a refusal does
	 * not wait for the upload. */
	if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
		return MHD_YES;
	return start(req, url, method);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct request *req = *con_cls;

	(void)version;
	if (!req)
		return first_call(cls, conn, url, method, con_cls);
	if (req->state == REQ_NEW)
		return start(req, url, method);
	if (req->state == REQ_ANSWERED) {
		*upload_data_size = 0; /* refused: discard the body */
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		body_chunk(req, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
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
	request_free(req); /* audits it if no stage did */
	*con_cls = NULL;
	count_in_flight(srv, -1);
}

/* ---- lifecycle ----------------------------------------------------- */

/* Lines of the revocation file that were skipped: the others apply, but
 * the operator must hear of it (a revocation may be among them). */
static void warn_revocation_problems(struct server *srv)
{
	char first[GG_ERR_MSG_MAX];
	size_t n = authstate_revocation_problems(srv->px.auth, first,
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

/* The start-up / reload line: what is in force, no pattern or secret. */
static void log_policy(struct server *srv, const char *what)
{
	struct policysnap *s = policystate_get(srv->px.policy);
	char line[POLICYSNAP_DESCRIBE_MAX];

	if (!s)
		return;
	policysnap_describe(line, sizeof(line), s);
	log_info("%s %s: %s", what, policystate_path(srv->px.policy), line);
	policysnap_put(s);
}

/* A site policy with problems stops the start: every problem is logged, a
 * line each (file:line:column), and err is the summary. */
static int load_policy(struct server *srv, const struct config *cfg,
		       struct gg_err *err)
{
	const char *secret = cred_static_secret(srv->px.cred);
	struct sitepolicy_problems probs = { NULL, 0, 0 };
	struct gg_err why = GG_ERR_INIT;
	size_t i;
	int ret;

	/* An App's tokens are not known in advance: the built-in ghs_ rule
	 * finds them instead of the literal. */
	ret = policystate_new(&srv->px.policy, cfg->policy, secret,
			      secret ? strlen(secret) : 0, &probs, &why);
	if (ret == GG_OK) {
		log_policy(srv, "site policy");
		return GG_OK;
	}
	for (i = 0; i < probs.n; i++)
		log_warnx("policy: %s", probs.lines[i]);
	if (probs.more)
		log_warnx("policy: %s: %zu more problems not shown",
			  cfg->policy, probs.more);
	sitepolicy_problems_release(&probs);
	return gg_err_set(err, ret, "policy: %s", why.msg);
}

/* fetch_cache: without git on the host it stays off, with a warning (the
 * proxy works as before). */
static void start_cache(struct server *srv, const struct config *cfg)
{
	struct cache_opts o = { srv->px.cache_dir, srv->px.upstream_url,
				srv->px.cred, cfg->cache_max_size };
	struct gg_err err = GG_ERR_INIT;

	if (!cfg->fetch_cache)
		return;
	if (cache_new(&srv->px.cache, &o, &err) != 0) {
		log_warnx("fetch_cache: off: %s", err.msg);
		return;
	}
	log_info("fetch_cache: on (max_size %llu bytes)",
		 (unsigned long long)cfg->cache_max_size);
}

/* Which peers may name the client (xff.h), said at start: an operator
 * trusting more than their proxies lets any client claim any address. */
static int copy_trusted_proxies(struct proxy *px, const struct config *cfg,
				struct gg_err *err)
{
	char net[CIDR_TEXT_MAX];
	size_t i;

	if (cfg->ntrusted_proxies == 0)
		return GG_OK;
	px->trusted_proxies = calloc(cfg->ntrusted_proxies,
				     sizeof(*px->trusted_proxies));
	if (!px->trusted_proxies)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	memcpy(px->trusted_proxies, cfg->trusted_proxies,
	       cfg->ntrusted_proxies * sizeof(*px->trusted_proxies));
	px->ntrusted_proxies = cfg->ntrusted_proxies;
	for (i = 0; i < px->ntrusted_proxies; i++) {
		cidr_format(net, sizeof(net), &px->trusted_proxies[i]);
		log_info("trusted proxy %s: its X-Forwarded-For names the "
			 "client", net);
		if ((px->trusted_proxies[i].v4 &&
		     px->trusted_proxies[i].prefix == 96) ||
		    px->trusted_proxies[i].prefix == 0)
			log_warnx("trusted_proxies: %s trusts every %s"
				  "client to name its own address", net,
				  px->trusted_proxies[i].prefix ? "IPv4 "
								 : "");
	}
	return GG_OK;
}

static int load_state(struct server *srv, const struct config *cfg,
		      struct gg_err *err)
{
	char line[GG_ERR_MSG_MAX];
	int ret;

	srv->px.upstream_url = strdup(cfg->upstream_url);
	srv->px.cache_dir = strdup(cfg->cache_dir);
	if (!srv->px.upstream_url || !srv->px.cache_dir)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	ret = copy_trusted_proxies(&srv->px, cfg, err);
	if (ret)
		return ret;
	ret = cred_new(&srv->px.cred, cfg, err);
	if (ret)
		return ret;
	cred_describe(srv->px.cred, line, sizeof(line));
	log_info("upstream %s: credential: %s", srv->px.upstream_url, line);
	ret = check_cache_dir(srv->px.cache_dir, err);
	if (ret)
		return ret;
	ret = load_policy(srv, cfg, err);
	if (ret)
		return ret;
	ret = authstate_new(&srv->px.auth, (const char *const *)cfg->verify_keys,
			    cfg->nverify_keys, cfg->revocations, err);
	if (ret)
		return ret;
	warn_revocation_problems(srv);
	ret = audit_open(&srv->px.audit, cfg->audit_log, err);
	if (ret)
		return ret;
	ret = relay_global_init(err);
	if (ret == 0)
		ret = mirror_global_init(err);
	if (ret)
		return ret;
	srv->px.shared = relay_shared_new();
	start_cache(srv, cfg);
	if (!srv->px.shared)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	return GG_OK;
}

static const struct connwatch_limits watch_limits = {
	.deadline_ms = GG_HEADER_DEADLINE_MS,
	.grace_ms = GG_HEADER_GRACE_MS,
	.pressure = GG_HEADER_PRESSURE,
};

/* With tls, every handshake asks tls.c for the certificate: a reload then
 * reaches new connections without restarting the daemon. Without, these
 * options are skipped (MHD_OPTION_ARRAY with nothing but the end). */
static void tls_options(struct MHD_OptionItem opts[3], struct server *srv)
{
	memset(opts, 0, 3 * sizeof(opts[0]));
	opts[0].option = MHD_OPTION_END;
	opts[1].option = MHD_OPTION_END;
	opts[2].option = MHD_OPTION_END;
	if (!srv->tls)
		return;
	opts[0].option = MHD_OPTION_HTTPS_CERT_CALLBACK;
	opts[0].ptr_value = (void *)tls_server_retrieve;
	opts[1].option = MHD_OPTION_HTTPS_PRIORITIES;
	opts[1].ptr_value = (void *)tls_priorities;
}

static int start_daemon(struct server *srv, struct gg_err *err)
{
	struct MHD_OptionItem tls_opts[3];

	tls_options(tls_opts, srv);
	srv->daemon = MHD_start_daemon(
		/* poll, not select: with select libmicrohttpd refuses every
		 * connection once any descriptor in the process reaches
		 * FD_SETSIZE (1024), and each relayed request holds about four
		 * (client, upstream, pipe, spool): ~250 transfers stuck on a
		 * hung upstream took /healthz down (measured). */
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			(srv->tls ? MHD_USE_TLS : 0),
		0, NULL, NULL, on_request, srv,
		/* First, so that no message goes to MHD's own logger. */
		MHD_OPTION_EXTERNAL_LOGGER, listener_mhd_log, "http",
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
		MHD_OPTION_ARRAY, tls_opts,
		MHD_OPTION_END);
	if (!srv->daemon)
		return gg_err_set(err, GG_ERR, "cannot start HTTP server");
	return GG_OK;
}

/* Tokens are bearer secrets: in clear text past this machine, anyone on
 * the path can replay them until they expire. */
static void warn_plain_http(const struct server *srv, const struct config *cfg)
{
	if (srv->tls || listener_is_loopback(srv->listen_fd))
		return;
	log_warnx("listen: %s:%u is not a loopback address and \"tls\" is "
		  "not configured: tokens (bearer secrets) would cross the "
		  "network in clear text; configure \"tls\" (README "
		  "\"TLS\")",
		  cfg->listen_host, cfg->listen_port);
}

static int load_tls(struct server *srv, const struct config *cfg,
		    struct gg_err *err)
{
	char line[GG_ERR_MSG_MAX];
	int ret;

	if (!cfg->tls_cert_file)
		return GG_OK;
	ret = tls_check_support(err);
	if (ret == 0)
		ret = tls_server_new(&srv->tls, cfg->tls_cert_file,
				     cfg->tls_key_file, err);
	if (ret)
		return ret;
	tls_cert_describe(tls_server_current(srv->tls), line, sizeof(line));
	log_info("tls: %s: %s", cfg->tls_cert_file, line);
	return GG_OK;
}

/* ---- admin listener ------------------------------------------------ */

static size_t not_ready(char *buf, size_t size, size_t n, const char *line)
{
	size_t used = strlen(buf);

	if (used < size)
		snprintf(buf + used, size - used, "%s\n", line);
	return n + 1;
}

/* /readyz: can this instance serve git now? Each failing part is a line,
 * so a probe's log says what to fix. */
static size_t server_ready(void *cls, char *buf, size_t size)
{
	struct server *srv = cls;
	char why[GG_ERR_MSG_MAX], line[GG_ERR_MSG_MAX + 32];
	size_t n = 0;

	if (atomic_load(&srv->stopping))
		n = not_ready(buf, size, n, "shutting down");
	if (authstate_nkeys(srv->px.auth) == 0)
		n = not_ready(buf, size, n, "keys: no verify key loaded");
	if (!audit_healthy(srv->px.audit))
		n = not_ready(buf, size, n, "audit log: not writable");
	if (!cred_ready(srv->px.cred, timeutil_mono_ms(), why,
			 sizeof(why))) {
		snprintf(line, sizeof(line), "upstream credential: %s", why);
		n = not_ready(buf, size, n, line);
	}
	return n;
}

static void set_build_info(void)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	char git2[32];
	int major = 0, minor = 0, rev = 0;

	git_libgit2_version(&major, &minor, &rev);
	snprintf(git2, sizeof(git2), "%d.%d.%d", major, minor, rev);
	metrics_set_build_info(GG_VERSION, git2, cv ? cv->version : "",
			       MHD_get_version());
}

static int start_admin(struct server *srv, const struct config *cfg,
		       struct gg_err *err)
{
	int ret;

	if (!cfg->admin_host)
		return GG_OK;
	ret = admin_new(&srv->admin, cfg->admin_host, cfg->admin_port,
			server_ready, srv, err);
	if (ret == GG_OK)
		log_info("admin_listen: %s:%u serves /metrics, /healthz and "
			 "/readyz",
			 cfg->admin_host, cfg->admin_port);
	return ret;
}

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
	set_build_info();
	ret = load_tls(srv, cfg, err); /* first: a bad certificate is the
					* likeliest mistake in a new setup */
	if (ret)
		goto fail;
	ret = load_state(srv, cfg, err);
	if (ret)
		goto fail;
	ret = quota_new(&srv->px.per_token, GG_MAX_REQUESTS_PER_TOKEN, err);
	if (ret)
		goto fail;
	ret = connwatch_new(&srv->watch, &watch_limits, err);
	if (ret)
		goto fail;
	srv->listen_fd = listener_open("listen", cfg->listen_host,
				       cfg->listen_port, err);
	if (srv->listen_fd < 0) {
		ret = srv->listen_fd;
		goto fail;
	}
	warn_plain_http(srv, cfg);
	ret = start_daemon(srv, err);
	if (ret == 0)
		ret = start_admin(srv, cfg, err);
	if (ret)
		goto fail;
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
	int ret = audit_follow(srv->px.audit, &err);

	if (ret < 0 && strcmp(err.msg, srv->follow_warned))
		log_warnx("audit log: %s", err.msg);
	snprintf(srv->follow_warned, sizeof(srv->follow_warned), "%s",
		 ret < 0 ? err.msg : "");
}

/* A broken edit keeps the policy in force (policystate.h): pushes go on
 * being judged by the last good one, never by none. */
static void refresh_policy(struct server *srv, int force)
{
	struct gg_err err = GG_ERR_INIT;
	int ret = policystate_refresh(srv->px.policy, force, &err);

	if (ret < 0)
		log_warnx("site policy reload failed, keeping the previous "
			  "one: %s",
			  err.msg);
	if (ret > 0)
		log_policy(srv, "reloaded site policy from");
}

/* A renewed certificate reaches new handshakes; a broken one is logged
 * and the one in force stays (open connections are never touched). */
static void refresh_tls(struct server *srv, int force)
{
	struct gg_err err = GG_ERR_INIT;
	char line[GG_ERR_MSG_MAX];
	int ret;

	if (!srv->tls)
		return;
	ret = tls_server_refresh(srv->tls, force, &err);
	if (ret < 0)
		log_warnx("tls: certificate reload failed, keeping the "
			  "previous one: %s",
			  err.msg);
	if (ret > 0) {
		tls_cert_describe(tls_server_current(srv->tls), line,
				  sizeof(line));
		log_info("tls: reloaded certificate: %s", line);
	}
}

void server_tick(struct server *srv, int force)
{
	struct gg_err err = GG_ERR_INIT;
	bool was_healthy;
	int ret;

	sweep_connections(srv);
	ret = authstate_refresh(srv->px.auth, force, &err);
	if (ret < 0)
		log_warnx("reload: %s", err.msg);
	if (ret > 0)
		log_info("reloaded: %zu key(s), %zu revoked token(s)",
			 authstate_nkeys(srv->px.auth),
			 authstate_nrevoked(srv->px.auth));
	if (ret != 0)
		warn_revocation_problems(srv);
	refresh_policy(srv, force);
	refresh_tls(srv, force);
	if (force) {
		gg_err_init(&err);
		if (audit_reopen(srv->px.audit, &err) != 0)
			log_warnx("audit log reopen failed: %s", err.msg);
		else
			log_info("audit log reopened");
	}
	follow_audit_log(srv);
	was_healthy = audit_healthy(srv->px.audit);
	gg_err_init(&err);
	if (audit_probe(srv->px.audit, &err) == 0 && !was_healthy)
		log_info("audit log writable again");
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

	atomic_store(&srv->stopping, true);
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
	admin_free(srv->admin); /* first: it reads the state below */
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	relay_shared_free(srv->px.shared);
	cache_free(srv->px.cache); /* after the daemon: no request left */
	audit_close(srv->px.audit);
	authstate_free(srv->px.auth);
	policystate_free(srv->px.policy); /* pushes are over: no snapshot held */
	cred_free(srv->px.cred);
	free(srv->px.upstream_url);
	free(srv->px.cache_dir);
	free(srv->px.trusted_proxies);
	connwatch_free(srv->watch); /* after the daemon: no connection left */
	quota_free(srv->px.per_token);
	tls_server_free(srv->tls); /* after the daemon: no handshake left */
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

/*
 * request.h - one client request through the proxy, and what every stage
 * of its pipeline shares (internal to src/http).
 *
 * Pipeline, one file per stage:
 *   server.c   libmicrohttpd's callbacks: accept, route, dispatch, finish
 *   gate.c     headers, credential -> claims, repo/op, per-token quota
 *   forward.c  relay upstream and stream the answer (fetches, info/refs)
 *   receive.c  pushes: spool, decide, forward, merge the report
 *   request.c  answers, refusals and audit lines, used by all of them
 *
 * Ownership: server.c creates a request on the connection's first callback
 * (request_new) and frees it when libmicrohttpd reports the request done
 * (request_free); stages fill its fields in between. A request is used by
 * one thread at a time (libmicrohttpd's connection thread).
 */
#ifndef GITGATE_HTTP_REQUEST_H
#define GITGATE_HTTP_REQUEST_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/cidr.h"
#include "gitgate/core/err.h"
#include "gitgate/http/route.h"

struct audit_ref;
struct cred_lease;
struct cache_use;
struct packflight;
struct fetch_cache;

/* What the pipeline stages read from the running server. Set up once by
 * server_new; the objects it points to are themselves thread-safe. */
struct proxy {
	char *upstream_url;
	struct cred *cred; /* upstream credential source (cred.h) */
	char *cache_dir;
	struct authstate *auth;
	struct audit_log *audit;
	struct relay_shared *shared;
	struct quota *per_token;    /* requests in flight per jti */
	struct policystate *policy; /* site policy; never NULL once started
				     * (it says "no policy" itself) */
	struct fetch_cache *cache;  /* NULL: fetch_cache off (cachefetch.c) */
	/* config "trusted_proxies" (copied; NULL and 0: none) */
	struct cidr *trusted_proxies;
	size_t ntrusted_proxies;
};

enum req_state { REQ_NEW, REQ_STREAM_BODY, REQ_SPOOL_BODY, REQ_CACHE_BODY,
		 REQ_ANSWERED };

/* Bytes at the end of a relayed response kept from the client until its
 * audit line is on disk: at least the flush-pkt that ends every git
 * response (or the pack's checksum), and a gzip body's 8-byte trailer with
 * some deflate data before it. Without them git cannot take a cut-off
 * transfer for a complete one; curl's complaint about a missing last
 * chunk alone is not enough (a v2 clone then exits 0: measured). Small,
 * so that keepalive packets during a long, quiet pack computation still
 * reach the client. */
#define REQUEST_HOLDBACK 16

struct request {
	const struct proxy *px;
	struct MHD_Connection *conn;
	enum req_state state;
	struct route route;
	char id[33];
	/* The client: the peer, or whom a trusted proxy's X-Forwarded-For
	 * names (xff.h); client is its text, for the audit line.
	 * has_client_addr false: the peer's address is unknown (then any
	 * token with a cidr claim is refused). client_refusal: the header
	 * was malformed, set by request_new; the gate answers 400 with it. */
	char client[INET6_ADDRSTRLEN + 8];
	struct cidr_addr client_addr;
	bool has_client_addr;
	char client_refusal[GG_ERR_MSG_MAX];
	int64_t start_ms;
	struct token_claims *claims;
	struct relay *relay;
	struct push *push;
	/* The site policy this push is judged by (policystate_get), or NULL;
	 * dropped by request_free after the push that borrows it. */
	struct policysnap *policy;
	/* The upstream credential, taken by forward_start (cred.h). */
	struct cred_lease *lease;
	int64_t retry_after; /* a 503's Retry-After, seconds; 0: none */
	/* Send the request upstream again (relay restarted, body replayed),
	 * or NULL when it cannot be: for one retry of a 401 right after a
	 * token was minted (forward.c). */
	int (*resend)(struct request *req, struct gg_err *err);
	bool retried;
	/* An upload-pack body kept for that retry: only while the token is
	 * fresh, and only up to GG_MAX_REPLAY_BODY (replay_ok false past it). */
	unsigned char *replay;
	size_t replay_len;
	bool replay_ok;
	bool body_failed;  /* upstream gave up mid-body: discard the rest */
	unsigned body_status; /* for a push body that could not be taken */
	/* Fetch cache (cachefetch.c): the body held to decide, the answer's
	 * source, and what it cost upstream. cache NULL: not a cached fetch. */
	unsigned char *cbody;
	size_t cbody_len;
	const char *cache;	/* "hit" | "miss" | "bypass" (audited) */
	uint64_t upstream_bytes;
	struct cache_use *cuse;
	struct packflight *flight;
	uint64_t flight_off;
	bool audited;
	bool quota_taken;  /* counted in px->per_token under its jti */
	bool audit_failed; /* its line could not be written */
	size_t reserved;   /* audit log room set aside for its line */
	bool relay_eof;    /* upstream's answer has all been read */
	size_t held;       /* bytes of tail not yet passed on */
	char tail[REQUEST_HOLDBACK];
	unsigned char *prefix; /* response bytes read ahead (forward.c) */
	size_t prefix_len, prefix_off;
	int status;        /* HTTP status sent to the client */
	const char *decision;
	char reason[GG_ERR_MSG_MAX];
	uint64_t bytes_in;
	uint64_t bytes_out;
};

/* A new request on conn, with a random id and the client's address
 * (through px->trusted_proxies; see xff.h); NULL when out of memory. */
struct request *request_new(const struct proxy *px,
			    struct MHD_Connection *conn);

/* Audit it if no stage did, give back what it holds (audit room, quota),
 * and free it, wiped. request_free(NULL) is a no-op. */
void request_free(struct request *req);

/* Queue a text/plain answer; challenge adds WWW-Authenticate (401). Every
 * answer names its request (X-Request-Id), as the audit line does. */
enum MHD_Result request_text(struct request *req, unsigned status,
			     const char *text, bool challenge);

/* Answer with a refusal, audited first (fail closed: if the audit line
 * cannot be written the client gets 503 instead). reason may be
 * req->reason itself. */
enum MHD_Result request_deny(struct request *req, unsigned status,
			     const char *reason);

/* Write the request's audit line, once (later calls do nothing), with the
 * per-ref outcomes of a push; sets audit_failed if it cannot be written. */
void request_audit(struct request *req, const struct audit_ref *refs,
		   size_t nrefs);

/* Is the audit log failing to take lines? Every request is then refused
 * (503), and /healthz says so. */
bool request_audit_down(const struct request *req);

/* Set room aside in the audit log for this request's line, before an
 * answer that streams ahead of it. 0, or the audit error (logged). */
int request_reserve_record(struct request *req);

/* "<upstream>/<owner/name>.git<suffix>", malloc'd; NULL when out of memory.
 * The one place that maps a repository to its upstream URL. */
char *request_repo_url(const struct request *req, const char *suffix);

/* The client's Content-Length, or -1 when absent or not a number. */
int64_t request_content_length(const struct request *req);

#endif

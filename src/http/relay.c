/*
 * relay.c - one upstream transfer, libcurl multi interface, two phases.
 *
 * Request phase: a relay thread drives curl while the HTTP thread (a
 * libmicrohttpd connection thread, which may block) feeds the request body
 * through a bounded pipe; curl's read callback blocks on that pipe, which
 * gives backpressure without a poll loop on the HTTP side. The thread stops
 * once upstream's final headers are in and the body is finished (or the
 * transfer ended). A GET has no body, so it needs no thread: the caller
 * drives this phase itself in relay_wait_headers.
 *
 * Response phase: the HTTP thread drives curl itself from relay_read, and
 * curl's write callback copies straight into the caller's buffer: one copy
 * per byte in user space and no thread hand-off per block (a fetch is
 * mostly response body; against the former pipe between two threads this
 * cut gitgate's CPU per 205 MiB fetch from about 0.18-0.24 s to 0.14-0.17 s).
 * Backpressure: curl reads only while relay_read drives it, and only as
 * much as the caller's buffer takes (see gather; a read that overflows
 * pauses curl until the next relay_read); between calls nothing is read
 * from upstream, and TCP flow control holds the upstream back. Bytes that do
 * not fit (body bytes that came with the headers, the tail of a read that
 * straddles the end of the caller's buffer) go to a spill buffer of at
 * most GG_RELAY_BUF, drained first; only past that does curl hold them.
 *
 * Exactly one thread drives curl at a time; the hand-over is published
 * under the lock (handed_over). relay_abort may come from any thread: it
 * only sets a flag, aborts the body pipe and wakes curl_multi_poll.
 */
#include "gitgate/http/relay.h"
#include "gitgate/http/bpipe.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/metrics.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Bytes curl asks the socket for at once, and the most one relay_read
 * fills (about one socket read per call, matching libmicrohttpd's block,
 * forward.c). Large reads keep syscalls, and the ACKs each read sends, few:
 * gitgate's CPU per fetched byte grows as reads shrink (measured: 128 KiB
 * reads cost more than the copy they save). But every transfer touches
 * about three blocks (curl's buffer, libmicrohttpd's, a spill), so only the
 * first RELAY_FAST_SLOTS concurrent transfers get large reads, which keeps
 * 64 concurrent clones within 64 MiB of RSS. */
#define RELAY_BLOCK_LARGE (256 * 1024)
#define RELAY_BLOCK_SMALL (64 * 1024)
#define RELAY_FAST_SLOTS 4
/* curl_multi_poll's longest sleep; aborts wake it at once anyway. */
#define RELAY_POLL_MS 1000
/* See next_read_room and gather. */
#define RELAY_READ_MARGIN (16 * 1024)
#define RELAY_GATHER_MIN (64 * 1024)
#define RELAY_GATHER_US 1000
#define RELAY_GATHER_NAP_US 250

struct relay_shared {
	CURLSH *share;
	int active; /* atomic: transfers between relay_start and relay_free */
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

struct relay {
	struct relay_shared *shared; /* counted in shared->active, or NULL */
	size_t block; /* RELAY_BLOCK_LARGE or _SMALL */
	CURLM *multi;
	CURL *curl;
	struct curl_slist *headers;
	struct bpipe *up; /* request body: HTTP thread -> curl */
	pthread_t thread;
	bool thread_started;
	bool has_body;
	int client_fd;        /* watched in the request phase, or -1 */
	bool client_gone;     /* it hung up before the response headers */
	int64_t body_limit;   /* declared request body length, or -1 */
	uint64_t body_written; /* by relay_write_body, against body_limit */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool headers_ready; /* final status line and headers seen */
	bool handed_over;   /* request phase over: the caller drives curl */
	bool switched;      /* upstream answered 101, which nobody asked for */
	bool done;          /* curl finished the transfer (result is set) */
	CURLcode result;
	long status;
	char *resp_headers[RELAY_MAX_HEADERS];
	size_t nresp_headers;
	char errbuf[CURL_ERROR_SIZE];

	/* Owned by whichever thread drives curl (see the top of the file). */
	char *dst;        /* the caller's buffer in relay_read, else NULL */
	size_t dst_room;
	size_t dst_len;
	unsigned char *spill;
	size_t spill_cap;
	size_t spill_off;
	size_t spill_len;
	bool paused;      /* on_write asked curl to hold its data */
	size_t this_read; /* bytes delivered in the current drive() */
	size_t last_read; /* bytes the last drive() that brought any did */

	int aborted; /* atomic: set once by relay_abort / relay_free */
	uint64_t bytes_up;
	uint64_t bytes_down;
};

/* Response headers worth passing to a git client; everything else
 * (Set-Cookie, WWW-Authenticate, Connection, Transfer-Encoding, ...) stays
 * with gitgate. */
static const char *const kept_headers[] = {
	"Content-Type", "Cache-Control", "Pragma", "Expires",
	"Content-Encoding", "Last-Modified", NULL
};

/* Trust anchors for a TLS upstream: the system's, unless SSL_CERT_FILE or
 * SSL_CERT_DIR (OpenSSL's convention) name others. libcurl itself ignores
 * those variables; gitgate passes them on, and so does the mirror. Read
 * once, before any thread starts. */
static const char *ca_file, *ca_dir;

int relay_global_init(struct gg_err *err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return gg_err_set(err, GG_ERR, "libcurl failed to start");
	ca_file = getenv("SSL_CERT_FILE");
	ca_dir = getenv("SSL_CERT_DIR");
	return GG_OK;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a,
		       void *payload)
{
	struct relay_shared *s = payload;

	(void)h;
	(void)a;
	pthread_mutex_lock(&s->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *payload)
{
	struct relay_shared *s = payload;

	(void)h;
	pthread_mutex_unlock(&s->locks[data]);
}

struct relay_shared *relay_shared_new(void)
{
	struct relay_shared *s = calloc(1, sizeof(*s));
	int i;

	if (!s)
		return NULL;
	s->share = curl_share_init();
	if (!s->share) {
		free(s);
		return NULL;
	}
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->locks[i], NULL);
	curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
	/* Reusing upstream connections saves a TCP (and TLS) handshake on
	 * every info/refs round trip. */
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(s->share, CURLSHOPT_SHARE,
			  CURL_LOCK_DATA_SSL_SESSION);
	return s;
}

void relay_shared_free(struct relay_shared *s)
{
	int i;

	if (!s)
		return;
	curl_share_cleanup(s->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->locks[i]);
	free(s);
}

static bool is_aborted(struct relay *r)
{
	return __atomic_load_n(&r->aborted, __ATOMIC_ACQUIRE) != 0;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *payload)
{
	struct relay *r = payload;
	ssize_t n = bpipe_read(r->up, buf, size * nitems);

	if (n < 0)
		return CURL_READFUNC_ABORT;
	__atomic_add_fetch(&r->bytes_up, (uint64_t)n, __ATOMIC_RELAXED);
	return (size_t)n;
}

/* Make room for len more spilled bytes; false if past GG_RELAY_BUF. */
static bool spill_reserve(struct relay *r, size_t len)
{
	size_t need, cap;
	unsigned char *p;

	if (r->spill_off > 0) {
		memmove(r->spill, r->spill + r->spill_off, r->spill_len);
		r->spill_off = 0;
	}
	if (len > GG_RELAY_BUF - r->spill_len)
		return false;
	need = r->spill_len + len;
	if (need <= r->spill_cap)
		return true;
	cap = r->spill_cap ? r->spill_cap : 16 * 1024;
	while (cap < need)
		cap *= 2;
	if (cap > GG_RELAY_BUF)
		cap = GG_RELAY_BUF;
	p = realloc(r->spill, cap);
	if (!p)
		return false;
	r->spill = p;
	r->spill_cap = cap;
	return true;
}

static size_t spill_take(struct relay *r, void *buf, size_t max)
{
	size_t n = r->spill_len < max ? r->spill_len : max;

	if (n == 0)
		return 0; /* r->spill may be NULL: memcpy wants no NULL */
	memcpy(buf, r->spill + r->spill_off, n);
	r->spill_off += n;
	r->spill_len -= n;
	if (r->spill_len == 0) {
		r->spill_off = 0;
		/* Up to a block is kept: the caller's buffer often has less
		 * room than a read (libmicrohttpd's is what its last send
		 * left free), so spills of up to a block are common, and
		 * freeing them cost an mmap, page faults and an munmap each
		 * (about 600 per 205 MiB fetch). Only a larger one, from the
		 * request phase, is given back. */
		if (r->spill_cap > r->block) {
			free(r->spill);
			r->spill = NULL;
			r->spill_cap = 0;
		}
	}
	return n;
}

/* Request phase: there is no caller buffer, and once the request body is
 * finished the read that brought the headers is the last one. Response
 * phase: curl reads only while relay_read drives it, and fill and gather
 * decide whether to read again; a pause is needed only once a read
 * overflowed the caller's buffer, so that curl, which may deliver more
 * than one read per call (TLS records), stops at once. */
static void pause_if_full(struct relay *r, bool spilled)
{
	bool full;

	if (r->paused)
		return;
	full = r->dst ? spilled : bpipe_closed(r->up);
	if (full) {
		r->paused = true;
		curl_easy_pause(r->curl, CURLPAUSE_RECV);
	}
}

/* Body bytes: into the caller's buffer while it has room, the rest into the
 * spill buffer; only when that is full too does curl keep them (pause). */
static size_t on_write(char *data, size_t size, size_t nmemb, void *payload)
{
	struct relay *r = payload;
	size_t n = size * nmemb, room, k;

	if (is_aborted(r))
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	room = r->dst ? r->dst_room - r->dst_len : 0;
	k = n < room ? n : room;
	if (n > k && !spill_reserve(r, n - k)) {
		r->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (k > 0) {
		memcpy(r->dst + r->dst_len, data, k);
		r->dst_len += k;
	}
	if (n > k) {
		memcpy(r->spill + r->spill_len, data + k, n - k);
		r->spill_len += n - k;
	}
	__atomic_add_fetch(&r->bytes_down, (uint64_t)n, __ATOMIC_RELAXED);
	r->this_read += n;
	pause_if_full(r, n > k);
	return n;
}

/* Is line[0..len) ("Name: value") a header called name (any case)? */
static bool header_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len > n && line[n] == ':' && !strncasecmp(line, name, n);
}

static bool header_kept(const char *line, size_t len)
{
	size_t i;

	for (i = 0; kept_headers[i]; i++)
		if (header_is(line, len, kept_headers[i]))
			return true;
	return false;
}

bool relay_response_has(const struct relay_response *resp, const char *name)
{
	size_t i;

	for (i = 0; i < resp->nheaders; i++)
		if (header_is(resp->headers[i], strlen(resp->headers[i]), name))
			return true;
	return false;
}

static void reset_headers_locked(struct relay *r)
{
	size_t i;

	for (i = 0; i < r->nresp_headers; i++)
		free(r->resp_headers[i]);
	r->nresp_headers = 0;
}

/* Called once per header line, including each status line (a 100 Continue
 * comes before the final one) and the empty line that ends a block. */
static size_t on_header(char *data, size_t size, size_t nitems, void *payload)
{
	struct relay *r = payload;
	size_t len = size * nitems, n = len;
	long status = 0;

	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		n--;
	pthread_mutex_lock(&r->lock);
	if (r->headers_ready) {
		/* Chunked trailers arrive here too. The header set handed to
		 * relay_wait_headers is frozen: the reader holds pointers into
		 * it until relay_free. */
	} else if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
		reset_headers_locked(r);
	} else if (n == 0) {
		curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status == 101) {
			/* gitgate asks for no upgrade: what follows is no HTTP
			 * answer, and as a body before any final status it
			 * would stall the transfer for good. */
			r->switched = true;
			pthread_mutex_unlock(&r->lock);
			return 0; /* curl fails with CURLE_WRITE_ERROR */
		}
		if (status >= 200) {
			r->status = status;
			r->headers_ready = true;
			pthread_cond_broadcast(&r->cond);
		}
	} else if (header_kept(data, n) &&
		   r->nresp_headers < RELAY_MAX_HEADERS) {
		char *h = strndup(data, n);
		if (h)
			r->resp_headers[r->nresp_headers++] = h;
	}
	pthread_mutex_unlock(&r->lock);
	return len;
}

/* Lets an abort stop a transfer blocked on the network even between polls
 * (curl calls this about once a second). */
static int on_progress(void *payload, curl_off_t dt, curl_off_t dn,
		       curl_off_t ut, curl_off_t un)
{
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return is_aborted(payload) ? 1 : 0;
}

static void finish(struct relay *r, CURLcode rc)
{
	pthread_mutex_lock(&r->lock);
	r->result = rc;
	r->done = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	/* Nobody reads the request body any more: wake a blocked writer. */
	bpipe_abort(r->up);
}

/* One round of curl work that does not wait on the network. Only the
 * thread driving curl calls this. */
static void drive(struct relay *r)
{
	CURLMsg *msg;
	int running, left;

	if (r->done)
		return;
	r->this_read = 0;
	if (curl_multi_perform(r->multi, &running) != CURLM_OK) {
		finish(r, CURLE_OUT_OF_MEMORY);
		return;
	}
	if (r->this_read > 0)
		r->last_read = r->this_read;
	while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == r->curl)
			finish(r, msg->data.result);
	}
}

/* The client's socket turned readable while it owes nothing more: a
 * hang-up, or bytes of a next request (then it cannot be told apart, and
 * the watch ends). Peeking leaves the bytes to libmicrohttpd. */
static void check_client(struct relay *r)
{
	char c;
	ssize_t n = recv(r->client_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0) {
		r->client_fd = -1;
	} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
			      errno != EINTR)) {
		pthread_mutex_lock(&r->lock);
		r->client_gone = true;
		pthread_mutex_unlock(&r->lock);
		relay_abort(r);
	}
}

/* Wait for the network (curl_multi_poll), and once the request body is
 * all in, also for the client hanging up: before upstream answers (pack
 * generation, or a hung server), and while the answer stalls mid-body,
 * when nothing is sent to the client that would tell libmicrohttpd it
 * left. */
static void wait_watching_client(struct relay *r)
{
	struct curl_waitfd w = { r->client_fd, CURL_WAIT_POLLIN, 0 };
	bool watch = r->client_fd >= 0 && bpipe_closed(r->up);

	curl_multi_poll(r->multi, watch ? &w : NULL, watch ? 1 : 0,
			RELAY_POLL_MS, NULL);
	if (watch && (w.revents & CURL_WAIT_POLLIN))
		check_client(r);
}

/* The request phase is over once the final headers are in and the caller
 * has finished the body: from then on only the response is left, which
 * relay_read drives. */
static bool request_phase_over(struct relay *r)
{
	bool ready;

	if (r->done || is_aborted(r))
		return true;
	pthread_mutex_lock(&r->lock);
	ready = r->headers_ready;
	pthread_mutex_unlock(&r->lock);
	return ready && bpipe_closed(r->up);
}

static void drive_request_phase(struct relay *r)
{
	drive(r);
	while (!request_phase_over(r)) {
		wait_watching_client(r);
		drive(r);
	}
	pthread_mutex_lock(&r->lock);
	r->handed_over = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void *relay_thread(void *payload)
{
	drive_request_phase(payload);
	return NULL;
}

static int setup_headers(struct relay *r, const struct relay_request *req)
{
	struct curl_slist *l;
	size_t i;

	for (i = 0; i < req->nheaders; i++) {
		l = curl_slist_append(r->headers, req->headers[i]);
		if (!l)
			return -1;
		r->headers = l;
	}
	if (r->has_body && req->content_length < 0) {
		l = curl_slist_append(r->headers, "Transfer-Encoding: chunked");
		if (!l)
			return -1;
		r->headers = l;
	}
	/* Without these curl would add its own Accept and User-Agent-less
	 * defaults that git servers do not expect. */
	l = curl_slist_append(r->headers, "Accept:");
	if (!l)
		return -1;
	r->headers = l;
	/* curl would add "Expect: 100-continue" to a chunked or >1 MiB body
	 * (every large push) and hold the body back for a round trip, or a
	 * whole second where a server or proxy in between ignores it. git
	 * sends it only with Negotiate (Kerberos) auth, which gitgate does
	 * not use upstream; the client's own Expect is never forwarded. */
	l = curl_slist_append(r->headers, "Expect:");
	if (!l)
		return -1;
	r->headers = l;
	return 0;
}

static int setup_curl(struct relay *r, const struct relay_request *req)
{
	CURL *c = r->curl;
	long idle = req->idle_timeout_s ? req->idle_timeout_s : 300;
	long conn = req->connect_timeout_s ? req->connect_timeout_s : 10;

	if (setup_headers(r, req) != 0)
		return -1;
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (ca_file && *ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	if (ca_dir && *ca_dir)
		curl_easy_setopt(c, CURLOPT_CAPATH, ca_dir);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(c, CURLOPT_USERNAME, "x-access-token");
	curl_easy_setopt(c, CURLOPT_PASSWORD, req->secret);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, conn);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, idle);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, (long)r->block);
	curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 128L * 1024);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	if (req->shared)
		curl_easy_setopt(c, CURLOPT_SHARE, req->shared->share);
	if (r->has_body) {
		/* Never on a pooled connection: upstreams close idle ones
		 * (lighttpd after 5 s), and curl can only retry on a fresh one
		 * by rewinding the body, which streams from the client and
		 * cannot be replayed ("necessary data rewind wasn't possible",
		 * a 502). GETs keep the pool; they are the latency-bound ones. */
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
		/* Nor back into the pool afterwards: should a body ever be
		 * framed differently here and upstream, what follows it
		 * cannot become the next request's start. */
		curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, r);
		if (req->content_length >= 0)
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)req->content_length);
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	return 0;
}

static int start_thread(struct relay *r)
{
	pthread_attr_t attr;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	rc = pthread_create(&r->thread, &attr, relay_thread, r);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		r->thread_started = true;
	return rc;
}

static void choose_block(struct relay *r, struct relay_shared *shared)
{
	int n = 1;

	if (shared) {
		r->shared = shared;
		n = __atomic_add_fetch(&shared->active, 1, __ATOMIC_RELAXED);
	}
	r->block = n <= RELAY_FAST_SLOTS ? RELAY_BLOCK_LARGE
					 : RELAY_BLOCK_SMALL;
}

int relay_start(struct relay **out, const struct relay_request *req,
		struct gg_err *err)
{
	struct relay *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	choose_block(r, req->shared);
	r->has_body = !strcmp(req->method, "POST");
	r->body_limit = r->has_body ? req->content_length : -1;
	r->client_fd = req->watch_client ? req->client_fd : -1;
	r->up = bpipe_new(GG_RELAY_BUF);
	r->multi = curl_multi_init();
	r->curl = curl_easy_init();
	if (!r->up || !r->multi || !r->curl || setup_curl(r, req) != 0 ||
	    curl_multi_add_handle(r->multi, r->curl) != CURLM_OK) {
		relay_free(r);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	if (!r->has_body)
		bpipe_close(r->up);
	else if (start_thread(r) != 0) {
		relay_free(r);
		return gg_err_set(err, GG_ERR, "cannot start relay thread");
	}
	*out = r;
	return GG_OK;
}

int relay_write_body(struct relay *r, const void *buf, size_t len)
{
	/* Never more than the length announced upstream: bytes past it
	 * would be read there as the start of another request. */
	if (r->body_limit >= 0 &&
	    len > (uint64_t)r->body_limit - r->body_written) {
		relay_abort(r);
		return -1;
	}
	r->body_written += len;
	return bpipe_write(r->up, buf, len);
}

int relay_finish_body(struct relay *r)
{
	if (bpipe_aborted(r->up))
		return -1;
	bpipe_close(r->up);
	/* The relay thread may be waiting in curl_multi_poll for just this. */
	curl_multi_wakeup(r->multi);
	return 0;
}

/* Return once the caller may drive curl: after the relay thread handed
 * over, or, without a thread, after driving the request phase here. */
static void take_over(struct relay *r)
{
	bool over;

	pthread_mutex_lock(&r->lock);
	if (r->thread_started)
		while (!r->handed_over)
			pthread_cond_wait(&r->cond, &r->lock);
	over = r->handed_over;
	pthread_mutex_unlock(&r->lock);
	if (!over)
		drive_request_phase(r);
}

int relay_wait_headers(struct relay *r, struct relay_response *out,
		       struct gg_err *err)
{
	size_t i;
	int ret = GG_OK;

	memset(out, 0, sizeof(*out));
	take_over(r);
	pthread_mutex_lock(&r->lock);
	if (r->headers_ready) {
		out->status = r->status;
		for (i = 0; i < r->nresp_headers; i++)
			out->headers[i] = r->resp_headers[i];
		out->nheaders = r->nresp_headers;
	} else if (r->switched) {
		ret = gg_err_set(err, GG_EUPSTREAM,
				 "upstream switched protocols (HTTP 101), "
				 "which gitgate never asks for");
	} else if (r->client_gone) {
		ret = gg_err_set(err, GG_EUPSTREAM,
				 "client disconnected before upstream answered");
	} else {
		metrics_upstream_error(r->done && r->result ==
							 CURLE_OPERATION_TIMEDOUT
					       ? "timeout"
					       : "connect");
		ret = gg_err_set(err, GG_EUPSTREAM, "upstream %s: %s",
				 r->done && r->result == CURLE_OPERATION_TIMEDOUT
					 ? "timed out"
					 : "unreachable",
				 r->errbuf[0] ? r->errbuf
				 : r->done    ? curl_easy_strerror(r->result)
					      : "transfer aborted");
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Room the next drive() needs to fit without spilling. One drive is one
 * socket read for plain HTTP (a few for TLS), at most r->block each, but
 * they come in the sizes the upstream sends in: while they stay small,
 * twice the last one (plus a margin) is taken as enough; ones that fill
 * most of a block make it a whole block. */
static size_t next_read_room(const struct relay *r)
{
	size_t need = 2 * r->last_read + RELAY_READ_MARGIN;

	return need < r->block ? need : r->block;
}

/* An upstream that streams as it generates (git http-backend behind most
 * servers) arrives in reads of a few tens of KiB, and each relay_read is
 * one send to the client. So after the first bytes, read on:
 *  - while another read fits (next_read_room), or while less than a
 *    quarter block is in hand, which is too little for a send of its own
 *    (a read that then does not fit spills, and goes first next time);
 *  - when the socket is empty and less than RELAY_GATHER_MIN is in, nap
 *    RELAY_GATHER_NAP_US and try again, until RELAY_GATHER_US have passed.
 * A nap rather than a poll: waking on the first bytes to arrive meant one
 * small read per wake-up, while a nap lets several pieces collect for one
 * read. A response that ends returns at once, and a full buffer stops it:
 * only data in the middle of a slow stream, such as progress messages,
 * waits, and about a millisecond at most. Measured on a streamed 205 MiB
 * fetch (bench --upstream-streaming): sends to the client 9,300 -> 1,900
 * per fetch, and with naps gitgate's CPU per fetch 0.3 -> 0.17 s, fetch
 * ratio 1.17-1.31 -> 1.01-1.06. */
static void gather(struct relay *r)
{
	int64_t deadline = mono_us() + RELAY_GATHER_US;
	size_t want = r->dst_room < RELAY_GATHER_MIN ? r->dst_room
						     : RELAY_GATHER_MIN;
	size_t before;

	for (;;) {
		if (r->dst_len == r->dst_room)
			return;
		if (r->dst_room - r->dst_len < next_read_room(r) &&
		    r->dst_len >= r->block / 4)
			return;
		before = r->dst_len;
		drive(r);
		if (r->paused || r->done || is_aborted(r))
			return;
		if (r->dst_len > before)
			continue;
		if (r->dst_len >= want || mono_us() >= deadline)
			return;
		usleep(RELAY_GATHER_NAP_US);
	}
}

/* Drive curl until the caller's buffer (which starts with got bytes from
 * the spill) holds something, the transfer ended, or an abort; then gather
 * more while it fits. */
static void fill(struct relay *r, char *buf, size_t got, size_t max)
{
	r->dst = buf;
	r->dst_len = got;
	r->dst_room = max;
	if (r->paused) {
		/* curl hands over what it held right here, via on_write */
		r->paused = false;
		if (curl_easy_pause(r->curl, CURLPAUSE_CONT) != CURLE_OK)
			finish(r, CURLE_WRITE_ERROR);
	}
	if (r->dst_len == 0) {
		drive(r);
		while (r->dst_len == 0 && !r->done && !is_aborted(r)) {
			wait_watching_client(r);
			drive(r);
		}
	}
	/* With bytes from the spill in hand, read only what fits (see
	 * gather): a read into too little room would spill again. */
	if (!r->paused && !r->done && !is_aborted(r))
		gather(r);
	r->dst = NULL;
}

ssize_t relay_read(struct relay *r, void *buf, size_t max)
{
	size_t got;

	take_over(r);
	if (is_aborted(r) || (r->done && r->result != CURLE_OK))
		return -1;
	if (!r->headers_ready)
		return -1; /* ended without a response (cannot be CURLE_OK) */
	if (max > r->block)
		max = r->block; /* see RELAY_BLOCK_LARGE */
	got = spill_take(r, buf, max);
	if (r->spill_len > 0 || got == max || r->done)
		return (ssize_t)got; /* 0 only at the clean end */
	fill(r, buf, got, max);
	if (is_aborted(r))
		return -1;
	/* Bytes gathered before a failure go out first; the next call
	 * reports the failure. */
	if (r->dst_len == 0 && r->done && r->result != CURLE_OK)
		return -1;
	return (ssize_t)r->dst_len;
}

void relay_abort(struct relay *r)
{
	__atomic_store_n(&r->aborted, 1, __ATOMIC_RELEASE);
	bpipe_abort(r->up);
	curl_multi_wakeup(r->multi);
}

bool relay_client_left(struct relay *r)
{
	bool gone;

	pthread_mutex_lock(&r->lock);
	gone = r->client_gone;
	pthread_mutex_unlock(&r->lock);
	return gone;
}

uint64_t relay_bytes_up(struct relay *r)
{
	return __atomic_load_n(&r->bytes_up, __ATOMIC_RELAXED);
}

uint64_t relay_bytes_down(struct relay *r)
{
	return __atomic_load_n(&r->bytes_down, __ATOMIC_RELAXED);
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	if (r->thread_started) {
		pthread_mutex_lock(&r->lock);
		if (!r->done)
			relay_abort(r);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->thread, NULL);
	}
	if (r->multi && r->curl)
		curl_multi_remove_handle(r->multi, r->curl);
	if (r->curl)
		curl_easy_cleanup(r->curl);
	if (r->multi)
		curl_multi_cleanup(r->multi);
	curl_slist_free_all(r->headers);
	reset_headers_locked(r);
	free(r->spill);
	bpipe_free(r->up);
	if (r->shared)
		__atomic_sub_fetch(&r->shared->active, 1, __ATOMIC_RELAXED);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

/*
 * relay.c - one upstream transfer per thread, libcurl easy interface.
 *
 * Why a thread per transfer: libmicrohttpd runs each client connection on
 * its own thread and lets it block, so a second thread that blocks inside
 * curl's callbacks gives simple, correct backpressure in both directions
 * with two bounded pipes, and a stalled client stalls only its own pair.
 */
#include "gitgate/relay.h"
#include "gitgate/bpipe.h"
#include "gitgate/limits.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct relay_shared {
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

struct relay {
	CURL *curl;
	struct curl_slist *headers;
	struct bpipe *up;   /* request body: HTTP thread -> curl */
	struct bpipe *down; /* response body: curl -> HTTP thread */
	pthread_t thread;
	bool thread_started;
	bool has_body;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool headers_ready; /* final status line and headers seen */
	bool done;          /* curl_easy_perform returned */
	bool aborted;
	CURLcode result;
	long status;
	char *resp_headers[RELAY_MAX_HEADERS];
	size_t nresp_headers;
	char errbuf[CURL_ERROR_SIZE];

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

int relay_global_init(struct gg_err *err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return gg_err_set(err, GG_ERR, "libcurl failed to start");
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

static size_t on_read(char *buf, size_t size, size_t nitems, void *payload)
{
	struct relay *r = payload;
	ssize_t n = bpipe_read(r->up, buf, size * nitems);

	if (n < 0)
		return CURL_READFUNC_ABORT;
	__atomic_add_fetch(&r->bytes_up, (uint64_t)n, __ATOMIC_RELAXED);
	return (size_t)n;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *payload)
{
	struct relay *r = payload;
	size_t n = size * nmemb;

	/* Counted on arrival: an abort while the pipe is full must not lose
	 * a piece the client may already have partly read. */
	__atomic_add_fetch(&r->bytes_down, (uint64_t)n, __ATOMIC_RELAXED);
	if (bpipe_write(r->down, data, n) != 0)
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	return n;
}

static bool header_kept(const char *line, size_t len)
{
	size_t i, n;

	for (i = 0; kept_headers[i]; i++) {
		n = strlen(kept_headers[i]);
		if (len > n && line[n] == ':' &&
		    !strncasecmp(line, kept_headers[i], n))
			return true;
	}
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

/* Lets a client that went away stop a transfer blocked on the network. */
static int on_progress(void *payload, curl_off_t dt, curl_off_t dn,
		       curl_off_t ut, curl_off_t un)
{
	struct relay *r = payload;
	bool aborted;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	pthread_mutex_lock(&r->lock);
	aborted = r->aborted;
	pthread_mutex_unlock(&r->lock);
	return aborted ? 1 : 0;
}

static void *relay_thread(void *payload)
{
	struct relay *r = payload;
	CURLcode rc = curl_easy_perform(r->curl);

	pthread_mutex_lock(&r->lock);
	r->result = rc;
	r->done = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	/* Nobody reads the request body any more: wake a blocked writer. */
	bpipe_abort(r->up);
	if (rc == CURLE_OK)
		bpipe_close(r->down);
	else
		bpipe_abort(r->down);
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
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(c, CURLOPT_USERNAME, "x-access-token");
	curl_easy_setopt(c, CURLOPT_PASSWORD, req->secret);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, conn);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, idle);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
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

int relay_start(struct relay **out, const struct relay_request *req,
		struct gg_err *err)
{
	struct relay *r = calloc(1, sizeof(*r));
	pthread_attr_t attr;
	int rc;

	*out = NULL;
	if (!r)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->has_body = !strcmp(req->method, "POST");
	r->up = bpipe_new(GG_RELAY_BUF);
	r->down = bpipe_new(GG_RELAY_BUF);
	r->curl = curl_easy_init();
	if (!r->up || !r->down || !r->curl || setup_curl(r, req) != 0) {
		relay_free(r);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	if (!r->has_body)
		bpipe_close(r->up);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	rc = pthread_create(&r->thread, &attr, relay_thread, r);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		relay_free(r);
		return gg_err_set(err, GG_ERR, "cannot start relay thread");
	}
	r->thread_started = true;
	*out = r;
	return GG_OK;
}

int relay_write_body(struct relay *r, const void *buf, size_t len)
{
	return bpipe_write(r->up, buf, len);
}

int relay_finish_body(struct relay *r)
{
	if (bpipe_aborted(r->up))
		return -1;
	bpipe_close(r->up);
	return 0;
}

int relay_wait_headers(struct relay *r, struct relay_response *out,
		       struct gg_err *err)
{
	size_t i;
	int ret = GG_OK;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&r->lock);
	while (!r->headers_ready && !r->done)
		pthread_cond_wait(&r->cond, &r->lock);
	if (r->headers_ready) {
		out->status = r->status;
		for (i = 0; i < r->nresp_headers; i++)
			out->headers[i] = r->resp_headers[i];
		out->nheaders = r->nresp_headers;
	} else {
		ret = gg_err_set(err, GG_EUPSTREAM, "upstream unreachable: %s",
				 r->errbuf[0] ? r->errbuf
					      : curl_easy_strerror(r->result));
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

ssize_t relay_read(struct relay *r, void *buf, size_t max)
{
	return bpipe_read(r->down, buf, max);
}

void relay_abort(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
	r->aborted = true;
	pthread_mutex_unlock(&r->lock);
	bpipe_abort(r->up);
	bpipe_abort(r->down);
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
			r->aborted = true;
		pthread_mutex_unlock(&r->lock);
		if (r->aborted) {
			bpipe_abort(r->up);
			bpipe_abort(r->down);
		}
		pthread_join(r->thread, NULL);
	}
	if (r->curl)
		curl_easy_cleanup(r->curl);
	curl_slist_free_all(r->headers);
	reset_headers_locked(r);
	bpipe_free(r->up);
	bpipe_free(r->down);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

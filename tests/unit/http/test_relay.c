/*
 * test_relay.c - real HTTP transfers through relay.c against a small
 * libmicrohttpd upstream started inside the test on a free loopback port.
 * The upstream records what it received (method, path, headers, body
 * length and hash) so each test can assert the exact bytes that went up.
 */
#include <arpa/inet.h>
#include <check.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gitgate/http/relay.h"

#define SECRET "s3cret"
/* base64("x-access-token:s3cret") */
#define SECRET_BASIC "Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0"
#define BIG_LEN (20u * 1024 * 1024)

/* What the upstream saw in the last completed request. */
struct seen {
	char method[16];
	char url[128];
	char authorization[256];
	char content_length[32];
	char transfer_encoding[32];
	char content_type[128];
	char git_protocol[64];
	char expect[64];
	int has_accept;
	uint64_t body_len;
	uint64_t body_hash;
};

struct upstream {
	struct MHD_Daemon *daemon;
	unsigned short port;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int release_stall;
	struct seen seen;
};

/* One upstream per test (set up in the fixture): "up", below. */

struct conn_state {
	int started;
	uint64_t len;
	uint64_t hash;
};

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

#define FNV_INIT 14695981039346656037ull

/* Byte i of the big test stream: position-dependent, so a lost or
 * reordered block shows up at its offset. */
static unsigned char stream_byte(uint64_t i)
{
	uint32_t x = (uint32_t)i * 2654435761u;

	return (unsigned char)(x >> 24 ^ x >> 11 ^ (uint32_t)i);
}

static void fill_stream(unsigned char *buf, uint64_t pos, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = stream_byte(pos + i);
}

static void copy_value(char *dst, size_t dstsz, struct MHD_Connection *c,
		       const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

	snprintf(dst, dstsz, "%s", v ? v : "");
}

static ssize_t big_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	uint64_t total = *(const uint64_t *)cls;
	size_t n = max;

	if (pos >= total)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > total - pos)
		n = (size_t)(total - pos);
	fill_stream((unsigned char *)buf, pos, n);
	return (ssize_t)n;
}

static ssize_t endless_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	fill_stream((unsigned char *)buf, pos, max);
	return (ssize_t)max;
}

#define TRUNC_AT (1024u * 1024 + 7)

/* Upstream dies mid-body: the connection closes after TRUNC_AT bytes. */
static ssize_t truncated_reader(void *cls, uint64_t pos, char *buf,
				size_t max)
{
	size_t n = max;

	(void)cls;
	if (pos >= TRUNC_AT)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (n > TRUNC_AT - pos)
		n = (size_t)(TRUNC_AT - pos);
	fill_stream((unsigned char *)buf, pos, n);
	return (ssize_t)n;
}

#define TRICKLE_PIECE (4u * 1024)
#define TRICKLE_LEN (512u * 1024)

/* An upstream that streams as it generates: a 4 KiB piece every 50 us,
 * each sent on its own (the response's block is one piece). */
static ssize_t trickle_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	size_t n = max < TRICKLE_PIECE ? max : TRICKLE_PIECE;

	(void)cls;
	if (pos >= TRICKLE_LEN)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > TRICKLE_LEN - pos)
		n = (size_t)(TRICKLE_LEN - pos);
	usleep(50);
	fill_stream((unsigned char *)buf, pos, n);
	return (ssize_t)n;
}

static struct upstream up;

/* Some body, then nothing until the test releases the stall (or 20 s),
 * then a broken end. */
static ssize_t stall_body_reader(void *cls, uint64_t pos, char *buf,
				 size_t max)
{
	struct timespec until;

	(void)cls;
	if (pos == 0) {
		max = max < 1000 ? max : 1000;
		fill_stream((unsigned char *)buf, 0, max);
		return (ssize_t)max;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 20;
	pthread_mutex_lock(&up.lock);
	while (!up.release_stall &&
	       pthread_cond_timedwait(&up.cond, &up.lock, &until) == 0)
		;
	pthread_mutex_unlock(&up.lock);
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static ssize_t abc_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	if (pos > 0 || max < 3)
		return MHD_CONTENT_READER_END_OF_STREAM;
	memcpy(buf, "abc", 3);
	return 3;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
			     struct MHD_Response *r)
{
	enum MHD_Result ret = MHD_queue_response(c, status, r);

	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status,
				  const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);

	MHD_add_response_header(r, "Content-Type", "text/plain");
	return reply(c, status, r);
}

/* A 200 whose body reader produces while it is sent, in blocks of up to
 * block bytes; chunked when size is MHD_SIZE_UNKNOWN. */
static enum MHD_Result reply_stream(struct MHD_Connection *c, uint64_t size,
				    size_t block,
				    MHD_ContentReaderCallback reader, void *cls)
{
	return reply(c, MHD_HTTP_OK,
		     MHD_create_response_from_callback(size, block, reader, cls,
						       NULL));
}

/* 200, text/plain, "abc" chunked, then the trailer name: value. */
static enum MHD_Result reply_trailer(struct MHD_Connection *c, const char *name,
				     const char *value)
{
	struct MHD_Response *r = MHD_create_response_from_callback(
		MHD_SIZE_UNKNOWN, 1024, abc_reader, NULL, NULL);

	MHD_add_response_header(r, "Content-Type", "text/plain");
	MHD_add_response_footer(r, name, value);
	return reply(c, MHD_HTTP_OK, r);
}

static const uint64_t big_len = BIG_LEN;

static enum MHD_Result respond(struct upstream *u, struct MHD_Connection *c,
			       const char *url, struct conn_state *cs)
{
	struct MHD_Response *r;
	char text[128];
	int i;

	if (!strcmp(url, "/o/n.git/info/refs")) {
		r = MHD_create_response_from_buffer(5, (void *)"hello",
						    MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(
			r, "Content-Type",
			"application/x-git-upload-pack-advertisement");
		MHD_add_response_header(r, "Set-Cookie", "session=abc");
		MHD_add_response_header(r, "WWW-Authenticate",
					"Basic realm=\"GitHub\"");
		MHD_add_response_header(r, "Cache-Control", "no-cache");
		MHD_add_response_header(r, "X-GitHub-Request-Id", "1234");
		return reply(c, MHD_HTTP_OK, r);
	}
	if (!strcmp(url, "/echo")) {
		snprintf(text, sizeof(text), "len=%llu hash=%016llx",
			 (unsigned long long)cs->len,
			 (unsigned long long)cs->hash);
		return reply_text(c, MHD_HTTP_OK, text);
	}
	if (!strcmp(url, "/missing"))
		return reply_text(c, MHD_HTTP_NOT_FOUND, "nope");
	if (!strcmp(url, "/many-headers")) {
		r = MHD_create_response_from_buffer(0, (void *)"",
						    MHD_RESPMEM_PERSISTENT);
		for (i = 0; i < RELAY_MAX_HEADERS + 4; i++) {
			snprintf(text, sizeof(text), "v%d", i);
			MHD_add_response_header(r, "Cache-Control", text);
		}
		return reply(c, MHD_HTTP_OK, r);
	}
	if (!strcmp(url, "/big") || !strcmp(url, "/big-chunked"))
		return reply_stream(
			c, !strcmp(url, "/big") ? BIG_LEN : MHD_SIZE_UNKNOWN,
			32 * 1024, big_reader, (void *)&big_len);
	if (!strcmp(url, "/truncated") || !strcmp(url, "/truncated-chunked"))
		return reply_stream(c,
				    !strcmp(url, "/truncated")
					    ? 4u * TRUNC_AT
					    : MHD_SIZE_UNKNOWN,
				    32 * 1024, truncated_reader, NULL);
	if (!strcmp(url, "/stall-body"))
		return reply_stream(c, MHD_SIZE_UNKNOWN, 32 * 1024,
				    stall_body_reader, NULL);
	if (!strcmp(url, "/trickle"))
		return reply_stream(c, MHD_SIZE_UNKNOWN, TRICKLE_PIECE,
				    trickle_reader, NULL);
	if (!strcmp(url, "/endless"))
		return reply_stream(c, MHD_SIZE_UNKNOWN, 32 * 1024,
				    endless_reader, NULL);
	/* A chunked body whose trailer line looks like a status line; curl
	 * hands trailers to the header callback. */
	if (!strcmp(url, "/trailer"))
		return reply_trailer(c, "HTTP/1.1", "200");
	if (!strcmp(url, "/trailer-kept"))
		return reply_trailer(c, "Cache-Control", "from-trailer");
	if (!strcmp(url, "/stall")) {
		/* Thread per connection: blocking here stalls only this
		 * client, until the test releases it (or 20 s pass). */
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 20;
		pthread_mutex_lock(&u->lock);
		while (!u->release_stall &&
		       pthread_cond_timedwait(&u->cond, &u->lock, &until) == 0)
			;
		pthread_mutex_unlock(&u->lock);
		return reply_text(c, MHD_HTTP_OK, "late");
	}
	return reply_text(c, MHD_HTTP_NOT_FOUND, "no such test path");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *data_size, void **con_cls)
{
	struct upstream *u = cls;
	struct conn_state *cs = *con_cls;
	struct seen s;

	(void)version;
	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return MHD_NO;
		cs->hash = FNV_INIT;
		*con_cls = cs;
		return MHD_YES;
	}
	if (*data_size) {
		cs->hash = fnv1a(cs->hash, data, *data_size);
		cs->len += *data_size;
		*data_size = 0;
		return MHD_YES;
	}
	memset(&s, 0, sizeof(s));
	snprintf(s.method, sizeof(s.method), "%s", method);
	snprintf(s.url, sizeof(s.url), "%s", url);
	copy_value(s.authorization, sizeof(s.authorization), c,
		   "Authorization");
	copy_value(s.content_length, sizeof(s.content_length), c,
		   "Content-Length");
	copy_value(s.transfer_encoding, sizeof(s.transfer_encoding), c,
		   "Transfer-Encoding");
	copy_value(s.content_type, sizeof(s.content_type), c,
		   "Content-Type");
	copy_value(s.git_protocol, sizeof(s.git_protocol), c, "Git-Protocol");
	copy_value(s.expect, sizeof(s.expect), c, "Expect");
	s.has_accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						   "Accept") != NULL;
	s.body_len = cs->len;
	s.body_hash = cs->hash;
	pthread_mutex_lock(&u->lock);
	u->seen = s;
	pthread_mutex_unlock(&u->lock);
	return respond(u, c, url, cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void upstream_start(void)
{
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;

	memset(&up, 0, sizeof(up));
	pthread_mutex_init(&up.lock, NULL);
	pthread_cond_init(&up.cond, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = 0; /* the kernel picks a free port */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	up.daemon = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION |
			MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, &up, MHD_OPTION_SOCK_ADDR, &sa,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
	ck_assert_ptr_nonnull(up.daemon);
	info = MHD_get_daemon_info(up.daemon, MHD_DAEMON_INFO_BIND_PORT);
	ck_assert_ptr_nonnull(info);
	up.port = info->port;
	ck_assert_uint_ne(up.port, 0);
}

static void upstream_release_stall(void)
{
	pthread_mutex_lock(&up.lock);
	up.release_stall = 1;
	pthread_cond_broadcast(&up.cond);
	pthread_mutex_unlock(&up.lock);
}

static void upstream_stop(void)
{
	upstream_release_stall();
	MHD_stop_daemon(up.daemon);
	pthread_mutex_destroy(&up.lock);
	pthread_cond_destroy(&up.cond);
}

static struct seen upstream_seen(void)
{
	struct seen s;

	pthread_mutex_lock(&up.lock);
	s = up.seen;
	pthread_mutex_unlock(&up.lock);
	return s;
}

static const char *url_for(const char *path)
{
	static char url[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", up.port, path);
	return url;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A request for url with the upstream credential and nothing else set. */
static void request_init(struct relay_request *req, const char *method,
			 const char *url)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->url = url;
	req->secret = SECRET;
}

static struct relay *start(const char *method, const char *path,
			   const char *const *headers, size_t nheaders,
			   int64_t content_length)
{
	struct relay_request req;
	struct gg_err err = GG_ERR_INIT;
	struct relay *r = NULL;

	request_init(&req, method, url_for(path));
	req.headers = headers;
	req.nheaders = nheaders;
	req.content_length = content_length;
	ck_assert_msg(relay_start(&r, &req, &err) == GG_OK, "%s", err.msg);
	ck_assert_ptr_nonnull(r);
	return r;
}

/* GET path (no headers of the client's); upstream's status and headers
 * must arrive, into resp. */
static struct relay *get(const char *path, struct relay_response *resp)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay *r = start("GET", path, NULL, 0, -1);

	ck_assert_int_eq(relay_wait_headers(r, resp, &err), GG_OK);
	return r;
}

/* relay_free stops a transfer that is still going: it must not wait for
 * upstream (5 s is far more than it takes). */
static void free_quickly(struct relay *r)
{
	double t0 = now_s();

	relay_free(r);
	ck_assert_double_lt(now_s() - t0, 5.0);
}

/* Read the whole response body into a static buffer (small bodies). */
static const char *read_all_small(struct relay *r, ssize_t *total)
{
	static char body[4096];
	ssize_t n;

	*total = 0;
	while ((n = relay_read(r, body + *total,
			       sizeof(body) - 1 - (size_t)*total)) > 0)
		*total += n;
	ck_assert_int_eq(n, 0);
	body[*total] = '\0';
	return body;
}

START_TEST(test_get_headers_and_body)
{
	const char *hdrs[] = { "Git-Protocol: version=2" };
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay *r = start("GET", "/o/n.git/info/refs", hdrs, 1, -1);
	struct seen s;
	const char *body;
	ssize_t len;
	size_t i;
	int saw_type = 0, saw_cache = 0;

	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_OK);
	ck_assert_int_eq(resp.status, 200);
	/* Only headers a git client needs come back: never the upstream's
	 * cookies or its authentication challenge. */
	ck_assert_uint_eq(resp.nheaders, 2);
	for (i = 0; i < resp.nheaders; i++) {
		if (!strcmp(resp.headers[i],
			    "Content-Type: application/"
			    "x-git-upload-pack-advertisement"))
			saw_type++;
		else if (!strcmp(resp.headers[i], "Cache-Control: no-cache"))
			saw_cache++;
		else
			ck_abort_msg("unexpected header \"%s\"",
				     resp.headers[i]);
	}
	ck_assert_int_eq(saw_type, 1);
	ck_assert_int_eq(saw_cache, 1);
	ck_assert(relay_response_has(&resp, "content-type"));
	ck_assert(relay_response_has(&resp, "Cache-Control"));
	ck_assert(!relay_response_has(&resp, "Cache"));
	ck_assert(!relay_response_has(&resp, "Content-Encoding"));
	ck_assert(!relay_response_has(&resp, "Set-Cookie")); /* not kept */
	body = read_all_small(r, &len);
	ck_assert_str_eq(body, "hello");
	ck_assert_uint_eq(relay_bytes_down(r), 5);
	ck_assert_uint_eq(relay_bytes_up(r), 0);

	s = upstream_seen();
	ck_assert_str_eq(s.method, "GET");
	ck_assert_str_eq(s.url, "/o/n.git/info/refs");
	ck_assert_str_eq(s.authorization, SECRET_BASIC);
	ck_assert_str_eq(s.git_protocol, "version=2");
	ck_assert_int_eq(s.has_accept, 0);
	ck_assert_uint_eq(s.body_len, 0);
	/* a GET has no body to feed */
	ck_assert_int_eq(relay_write_body(r, "x", 1), -1);
	relay_free(r);
}
END_TEST

START_TEST(test_status_passed_through)
{
	struct relay_response resp;
	struct relay *r = get("/missing", &resp);
	ssize_t len;

	ck_assert_int_eq(resp.status, 404);
	ck_assert_str_eq(read_all_small(r, &len), "nope");
	relay_free(r);
}
END_TEST

START_TEST(test_kept_headers_capped)
{
	struct relay_response resp;
	struct relay *r = get("/many-headers", &resp);
	ssize_t len;

	ck_assert_uint_eq(resp.nheaders, RELAY_MAX_HEADERS);
	ck_assert_str_eq(resp.headers[0], "Cache-Control: v0");
	read_all_small(r, &len);
	relay_free(r);
}
END_TEST

static char want_echo[128];

static const char *expect_echo(uint64_t len, uint64_t hash)
{
	snprintf(want_echo, sizeof(want_echo), "len=%llu hash=%016llx",
		 (unsigned long long)len, (unsigned long long)hash);
	return want_echo;
}

START_TEST(test_post_content_length)
{
	const char *hdrs[] = {
		"Content-Type: application/x-git-upload-pack-request",
		"Accept: application/x-git-upload-pack-result",
	};
	const char *body = "0032want 0123456789012345678901234567890123456789\n"
			   "00000009done\n";
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay *r;
	struct seen s;
	char cl[32];
	ssize_t len;

	r = start("POST", "/echo", hdrs, 2, (int64_t)strlen(body));
	ck_assert_int_eq(relay_write_body(r, body, 10), 0);
	ck_assert_int_eq(relay_write_body(r, body + 10, strlen(body) - 10), 0);
	/* With a known length curl may already have sent the last byte and
	 * finished, and then finish_body reports -1 ("already ended"); only
	 * the upstream's view below tells whether the body arrived. */
	relay_finish_body(r);
	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_OK);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_str_eq(read_all_small(r, &len),
			 expect_echo(strlen(body),
				     fnv1a(FNV_INIT, body, strlen(body))));
	ck_assert_uint_eq(relay_bytes_up(r), strlen(body));
	ck_assert_uint_eq(relay_bytes_down(r), (uint64_t)len);

	s = upstream_seen();
	ck_assert_str_eq(s.method, "POST");
	snprintf(cl, sizeof(cl), "%zu", strlen(body));
	ck_assert_str_eq(s.content_length, cl);
	ck_assert_str_eq(s.transfer_encoding, "");
	ck_assert_str_eq(s.content_type,
			 "application/x-git-upload-pack-request");
	/* the client's Accept survives relay's removal of curl's own */
	ck_assert_int_eq(s.has_accept, 1);
	ck_assert_str_eq(s.authorization, SECRET_BASIC);
	relay_free(r);
}
END_TEST

/* Stream n bytes of the test stream into the relay in odd-sized pieces;
 * returns their hash. */
static uint64_t feed(struct relay *r, uint64_t n)
{
	static unsigned char buf[70000];
	uint64_t pos = 0, hash = FNV_INIT;
	uint32_t lcg = 99;
	size_t len;

	while (pos < n) {
		lcg = lcg * 1103515245u + 12345u;
		len = 1 + (lcg >> 8) % sizeof(buf);
		if (len > n - pos)
			len = (size_t)(n - pos);
		fill_stream(buf, pos, len);
		hash = fnv1a(hash, buf, len);
		ck_assert_int_eq(relay_write_body(r, buf, len), 0);
		pos += len;
	}
	return hash;
}

/* POST n bytes of the test stream, in odd-sized pieces, with a known
 * length or (content_length < 0) chunked; the upstream must echo exactly
 * those bytes. Returns what the upstream saw of the request. */
static struct seen post_stream(const char *const *hdrs, size_t nhdrs,
			       uint64_t n, int64_t content_length)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay *r = start("POST", "/echo", hdrs, nhdrs, content_length);
	uint64_t hash;
	ssize_t len;
	int rc;

	hash = feed(r, n);
	rc = relay_finish_body(r);
	if (content_length < 0) /* else may be -1: test_post_content_length */
		ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_OK);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_str_eq(read_all_small(r, &len), expect_echo(n, hash));
	ck_assert_uint_eq(relay_bytes_up(r), n);
	relay_free(r);
	return upstream_seen();
}

/* Bytes past the declared length would reach upstream as the start of
 * another request on the same connection: refused, and the transfer is
 * over, before any of them leaves. */
START_TEST(test_post_body_past_length_refused)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay *r;

	r = start("POST", "/echo", NULL, 0, 4);
	ck_assert_int_eq(relay_write_body(r, "0000", 4), 0);
	ck_assert_int_eq(relay_write_body(r, "G", 1), -1);
	ck_assert_int_eq(relay_finish_body(r), -1);
	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_EUPSTREAM);
	relay_free(r);

	/* one write that runs past it is refused whole */
	r = start("POST", "/echo", NULL, 0, 4);
	ck_assert_int_eq(relay_write_body(r, "0000GET / HTTP/1.1\r\n", 20),
			 -1);
	ck_assert_uint_eq(relay_bytes_up(r), 0);
	relay_free(r);
}
END_TEST

START_TEST(test_post_chunked)
{
	/* many times the pipe size */
	struct seen s = post_stream(NULL, 0, 5u * 1024 * 1024, -1);

	ck_assert_str_eq(s.transfer_encoding, "chunked");
	ck_assert_str_eq(s.content_length, "");
	ck_assert_str_eq(s.authorization, SECRET_BASIC);
	/* curl's own default for a chunked body; git never asks for it */
	ck_assert_str_eq(s.expect, "");
}
END_TEST

/* An interim "100 Continue" is not the final status. gitgate never asks
 * for one itself, so the request carries its own Expect here. */
START_TEST(test_interim_100_not_final)
{
	static const char *const hdrs[] = { "Expect: 100-continue" };
	struct seen s = post_stream(hdrs, 1, 2u * 1024 * 1024, -1);

	ck_assert_str_eq(s.expect, "100-continue");
}
END_TEST

START_TEST(test_post_large_content_length)
{
	const uint64_t n = 3u * 1024 * 1024 + 17;
	struct seen s = post_stream(NULL, 0, n, (int64_t)n);

	/* curl's own default past 1 MiB */
	ck_assert_str_eq(s.expect, "");
}
END_TEST

/* n bytes of the test stream starting at offset pos, or abort. */
static void check_stream(const unsigned char *buf, uint64_t pos, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (buf[i] != stream_byte(pos + i))
			ck_abort_msg("wrong byte at offset %llu",
				     (unsigned long long)(pos + i));
}

/* Read with sizes up to maxread, varying, checking every byte. */
static void download_big(const char *path, size_t maxread)
{
	static unsigned char buf[700 * 1024];
	struct relay_response resp;
	struct relay *r = get(path, &resp);
	uint64_t pos = 0;
	uint32_t lcg = 4242;
	size_t max;
	ssize_t n;

	ck_assert_int_eq(resp.status, 200);
	for (;;) {
		lcg = lcg * 1103515245u + 12345u;
		max = 1 + (lcg >> 8) % maxread;
		n = relay_read(r, buf, max);
		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		check_stream(buf, pos, (size_t)n);
		pos += (uint64_t)n;
	}
	ck_assert_uint_eq(pos, BIG_LEN);
	ck_assert_uint_eq(relay_bytes_down(r), BIG_LEN);
	relay_free(r);
}

START_TEST(test_large_download)
{
	download_big("/big", 5000);
}
END_TEST

START_TEST(test_large_download_chunked)
{
	download_big("/big-chunked", 5000);
}
END_TEST

/* Buffers of varying size up to more than a block, as libmicrohttpd's room
 * varies: reads stop when another would not fit, the tail of one that
 * straddles the end of the buffer is spilled and goes first next time; no
 * byte may be lost, doubled or reordered. */
START_TEST(test_large_download_big_reads)
{
	download_big("/big", 700 * 1024);
	download_big("/big-chunked", 700 * 1024);
}
END_TEST

/* Pieces that trickle in are gathered into larger blocks (one send to the
 * client each, in the proxy) rather than handed on one by one; every byte
 * still arrives in order. Without gathering, an idle machine reads each
 * piece on its own (128 reads). gather waits up to 1 ms of wall time, so
 * the bound leaves room for a loaded machine, where the producer's 50 us
 * naps stretch and fewer pieces arrive per millisecond. */
START_TEST(test_trickle_gathered)
{
	static unsigned char buf[256 * 1024];
	struct relay_response resp;
	struct relay *r = get("/trickle", &resp);
	uint64_t pos = 0;
	unsigned reads = 0;
	ssize_t n;

	while ((n = relay_read(r, buf, sizeof(buf))) > 0) {
		check_stream(buf, pos, (size_t)n);
		pos += (uint64_t)n;
		reads++;
	}
	ck_assert_int_eq(n, 0);
	ck_assert_uint_eq(pos, TRICKLE_LEN);
	ck_assert_msg(reads < TRICKLE_LEN / TRICKLE_PIECE * 3 / 4,
		      "%u reads for %u pieces", reads,
		      TRICKLE_LEN / TRICKLE_PIECE);
	relay_free(r);
}
END_TEST

/* Read to the end; returns the last relay_read result (0 or -1). */
static ssize_t drain(struct relay *r, uint64_t *total)
{
	static unsigned char buf[600 * 1024];
	ssize_t n;

	*total = 0;
	while ((n = relay_read(r, buf, sizeof(buf))) > 0)
		*total += (uint64_t)n;
	return n;
}

START_TEST(test_upstream_dies_mid_body)
{
	const char *paths[] = { "/truncated", "/truncated-chunked" };
	struct relay_response resp;
	struct relay *r;
	uint64_t total;
	size_t i;
	char c;

	/* A short body must reach the client as an error, never as a clean
	 * end: with or without a Content-Length from upstream. */
	for (i = 0; i < 2; i++) {
		r = get(paths[i], &resp);
		ck_assert_int_eq(resp.status, 200);
		ck_assert_int_eq(drain(r, &total), -1);
		ck_assert_uint_le(total, TRUNC_AT);
		/* and it stays an error */
		ck_assert_int_eq(relay_read(r, &c, 1), -1);
		relay_free(r);
	}
}
END_TEST

struct reader {
	struct relay *r;
	ssize_t last;
	uint64_t total;
};

static void *reader_main(void *payload)
{
	struct reader *rd = payload;

	rd->last = drain(rd->r, &rd->total);
	return NULL;
}

START_TEST(test_abort_wakes_blocked_reader)
{
	struct relay_response resp;
	struct reader rd = { NULL, 0, 0 };
	pthread_t t;
	double t0;

	/* The reader waits inside relay_read for bytes that never come; an
	 * abort from another thread must end that wait at once, with an
	 * error. */
	rd.r = get("/stall-body", &resp);
	ck_assert_int_eq(pthread_create(&t, NULL, reader_main, &rd), 0);
	sleep_ms(300);
	t0 = now_s();
	relay_abort(rd.r);
	pthread_join(t, NULL);
	ck_assert_double_lt(now_s() - t0, 2.0);
	ck_assert_int_eq(rd.last, -1);
	ck_assert_uint_eq(rd.total, 1000);
	relay_free(rd.r);
}
END_TEST

START_TEST(test_idle_timeout_mid_body)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay_request req;
	struct relay *r = NULL;
	uint64_t total;
	double t0 = now_s();

	request_init(&req, "GET", url_for("/stall-body"));
	req.idle_timeout_s = 1;
	ck_assert_int_eq(relay_start(&r, &req, &err), GG_OK);
	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_OK);
	/* curl averages the speed over about 5 s, so the 1000 bytes keep it
	 * above the 1 byte/s limit for a while: expect about 7 s. */
	ck_assert_int_eq(drain(r, &total), -1);
	ck_assert_uint_eq(total, 1000);
	ck_assert_double_lt(now_s() - t0, 15.0);
	relay_free(r);
}
END_TEST

/* A loopback port nobody listens on: bind to port 0, note it, close. */
static unsigned short free_port(void)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

START_TEST(test_connection_refused)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay_request req;
	struct relay *r = NULL;
	char url[64], buf[16];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/o/n.git/info/refs",
		 free_port());
	request_init(&req, "GET", url);
	ck_assert_int_eq(relay_start(&r, &req, &err), GG_OK);
	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_EUPSTREAM);
	ck_assert_int_eq(err.code, GG_EUPSTREAM);
	ck_assert_msg(!strncmp(err.msg, "upstream unreachable", 20), "got %s",
		      err.msg);
	ck_assert_ptr_null(strstr(err.msg, SECRET));
	ck_assert_int_eq(resp.status, 0);
	ck_assert_uint_eq(resp.nheaders, 0);
	ck_assert_int_eq(relay_read(r, buf, sizeof(buf)), -1);
	relay_free(r);
}
END_TEST

START_TEST(test_post_connection_refused)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay_request req;
	struct relay *r = NULL;
	static char buf[64 * 1024];
	char url[64];
	int i, ret = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/o/n/git-upload-pack",
		 free_port());
	request_init(&req, "POST", url);
	req.content_length = -1;
	ck_assert_int_eq(relay_start(&r, &req, &err), GG_OK);
	/* More than the pipe holds: once the transfer has failed the writer
	 * must be told (-1), not left blocked on a full pipe. */
	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < 64 && ret == 0; i++)
		ret = relay_write_body(r, buf, sizeof(buf));
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(relay_finish_body(r), -1);
	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_EUPSTREAM);
	relay_free(r);
}
END_TEST

START_TEST(test_abort_mid_transfer)
{
	static unsigned char buf[64 * 1024];
	struct relay_response resp;
	struct relay *r = get("/endless", &resp);
	uint64_t got = 0;
	ssize_t n;

	ck_assert_int_eq(resp.status, 200);
	while (got < 1024 * 1024) {
		n = relay_read(r, buf, sizeof(buf));
		ck_assert_int_gt(n, 0);
		got += (uint64_t)n;
	}
	relay_abort(r);
	/* the client must see a broken body, never a clean end */
	ck_assert_int_eq(relay_read(r, buf, sizeof(buf)), -1);
	ck_assert_int_eq(relay_read(r, buf, sizeof(buf)), -1);
	free_quickly(r);
}
END_TEST

START_TEST(test_bytes_down_after_abort)
{
	static unsigned char buf[5000];
	struct relay_response resp;
	struct relay *r;
	uint64_t got;
	ssize_t n;
	int round;

	/* The audit log's bytes_out for an aborted transfer: every byte the
	 * client was given came from upstream, so the counter can never be
	 * below what was read. Where the abort lands relative to curl's
	 * writes is timing, so try it a number of times. */
	for (round = 0; round < 50; round++) {
		r = get("/endless", &resp);
		for (got = 0; got < 300 * 1000; got += (uint64_t)n) {
			n = relay_read(r, buf, sizeof(buf));
			ck_assert_int_gt(n, 0);
		}
		relay_abort(r);
		ck_assert_int_eq(relay_read(r, buf, sizeof(buf)), -1);
		ck_assert_msg(relay_bytes_down(r) >= got,
			      "round %d: bytes_down %llu < %llu delivered",
			      round,
			      (unsigned long long)relay_bytes_down(r),
			      (unsigned long long)got);
		relay_free(r);
	}
}
END_TEST

START_TEST(test_free_without_reading)
{
	struct relay_response resp;
	struct relay *r;

	/* The client went away after the headers: curl is blocked writing
	 * into a full pipe, and relay_free alone must unblock it. */
	r = get("/endless", &resp);
	sleep_ms(200);
	free_quickly(r);
}
END_TEST

START_TEST(test_free_while_upstream_stalls)
{
	struct relay *r = start("GET", "/stall", NULL, 0, -1);

	/* Nothing moves on the socket: only curl's progress callback can
	 * notice the abort (about once a second). */
	sleep_ms(200);
	free_quickly(r);
}
END_TEST

START_TEST(test_abort_before_headers)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay *r = start("GET", "/stall", NULL, 0, -1);
	double t0;

	sleep_ms(200);
	t0 = now_s();
	relay_abort(r);
	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_EUPSTREAM);
	ck_assert_double_lt(now_s() - t0, 5.0);
	relay_free(r);
}
END_TEST

START_TEST(test_idle_timeout)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay_request req;
	struct relay *r = NULL;
	double t0 = now_s();

	request_init(&req, "GET", url_for("/stall"));
	req.idle_timeout_s = 1;
	ck_assert_int_eq(relay_start(&r, &req, &err), GG_OK);
	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_EUPSTREAM);
	ck_assert_double_lt(now_s() - t0, 10.0);
	relay_free(r);
}
END_TEST

START_TEST(test_shared_connection_cache)
{
	struct relay_shared *shared = relay_shared_new();
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay_request req;
	struct relay *r;
	ssize_t len;
	int i;

	ck_assert_ptr_nonnull(shared);
	for (i = 0; i < 3; i++) {
		request_init(&req, "GET", url_for("/o/n.git/info/refs"));
		req.shared = shared;
		ck_assert_int_eq(relay_start(&r, &req, &err), GG_OK);
		ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_OK);
		ck_assert_int_eq(resp.status, 200);
		ck_assert_str_eq(read_all_small(r, &len), "hello");
		ck_assert_str_eq(upstream_seen().authorization, SECRET_BASIC);
		relay_free(r);
	}
	relay_shared_free(shared);
	relay_shared_free(NULL);
}
END_TEST

START_TEST(test_many_transfers_read_smaller_blocks)
{
	static unsigned char buf[700 * 1024];
	struct relay_shared *shared = relay_shared_new();
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay_request req;
	struct relay *r[6];
	ssize_t n;
	int i;

	/* Memory per transfer follows its block: past the first 4 at once a
	 * transfer never fills more than 64 KiB per read. */
	request_init(&req, "GET", url_for("/big"));
	req.shared = shared;
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(relay_start(&r[i], &req, &err), GG_OK);
	for (i = 0; i < 6; i++) {
		ck_assert_int_eq(relay_wait_headers(r[i], &resp, &err), GG_OK);
		n = relay_read(r[i], buf, sizeof(buf));
		ck_assert_int_gt(n, 0);
		ck_assert_int_le(n, i < 4 ? 256 * 1024 : 64 * 1024);
	}
	for (i = 0; i < 6; i++)
		relay_free(r[i]);
	relay_shared_free(shared);
}
END_TEST

START_TEST(test_headers_survive_trailers)
{
	struct relay_response resp;
	struct relay *r = get("/trailer", &resp);
	ssize_t len;

	ck_assert_uint_eq(resp.nheaders, 1);
	ck_assert_str_eq(resp.headers[0], "Content-Type: text/plain");
	ck_assert_str_eq(read_all_small(r, &len), "abc");
	/* relay.h: the headers are borrowed "valid until relay_free". A
	 * trailer line beginning "HTTP/" must not free them under the
	 * HTTP thread that is still copying them into its response. */
	ck_assert_str_eq(resp.headers[0], "Content-Type: text/plain");
	relay_free(r);
}
END_TEST

START_TEST(test_trailers_are_not_headers)
{
	struct gg_err err = GG_ERR_INIT;
	struct relay_response resp;
	struct relay *r = start("GET", "/trailer-kept", NULL, 0, -1);
	ssize_t len;

	/* Read the body first so curl has certainly seen the trailer; the
	 * headers of the response are still the ones before the body. */
	ck_assert_str_eq(read_all_small(r, &len), "abc");
	ck_assert_int_eq(relay_wait_headers(r, &resp, &err), GG_OK);
	ck_assert_uint_eq(resp.nheaders, 1);
	ck_assert_str_eq(resp.headers[0], "Content-Type: text/plain");
	relay_free(r);
}
END_TEST

START_TEST(test_free_null)
{
	relay_free(NULL);
}
END_TEST

static Suite *relay_suite(void)
{
	Suite *s = suite_create("relay");
	TCase *tc = tcase_create("http");

	tcase_add_checked_fixture(tc, upstream_start, upstream_stop);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_get_headers_and_body);
	tcase_add_test(tc, test_status_passed_through);
	tcase_add_test(tc, test_kept_headers_capped);
	tcase_add_test(tc, test_post_content_length);
	tcase_add_test(tc, test_post_body_past_length_refused);
	tcase_add_test(tc, test_post_chunked);
	tcase_add_test(tc, test_interim_100_not_final);
	tcase_add_test(tc, test_post_large_content_length);
	tcase_add_test(tc, test_large_download);
	tcase_add_test(tc, test_large_download_chunked);
	tcase_add_test(tc, test_large_download_big_reads);
	tcase_add_test(tc, test_trickle_gathered);
	tcase_add_test(tc, test_upstream_dies_mid_body);
	tcase_add_test(tc, test_abort_wakes_blocked_reader);
	tcase_add_test(tc, test_idle_timeout_mid_body);
	tcase_add_test(tc, test_connection_refused);
	tcase_add_test(tc, test_post_connection_refused);
	tcase_add_test(tc, test_abort_mid_transfer);
	tcase_add_test(tc, test_bytes_down_after_abort);
	tcase_add_test(tc, test_free_without_reading);
	tcase_add_test(tc, test_free_while_upstream_stalls);
	tcase_add_test(tc, test_abort_before_headers);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_shared_connection_cache);
	tcase_add_test(tc, test_many_transfers_read_smaller_blocks);
	tcase_add_test(tc, test_headers_survive_trailers);
	tcase_add_test(tc, test_trailers_are_not_headers);
	tcase_add_test(tc, test_free_null);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct gg_err err = GG_ERR_INIT;
	SRunner *sr;
	int failed;

	/* curl_global_init is not thread-safe: once, before any test. */
	if (relay_global_init(&err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return EXIT_FAILURE;
	}
	sr = srunner_create(relay_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * ghapi.c - one GitHub REST API call over libcurl (see ghapi.h).
 */
#include "gitgate/upstream/ghapi.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gitgate/core/limits.h"
#include "gitgate/core/timeutil.h"

struct call_state {
	struct ghapi_reply *reply;
	bool too_large;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *payload)
{
	struct call_state *st = payload;
	struct ghapi_reply *r = st->reply;
	size_t n = size * nmemb;

	if (n > GG_MAX_API_REPLY - r->len) {
		st->too_large = true;
		return 0; /* curl stops: CURLE_WRITE_ERROR */
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* "Name: value" of header line (len bytes, CRLF included) when it is
 * called name: the value, trimmed, into buf. */
static bool header_value(char *buf, size_t bufsz, const char *line,
			 size_t len, const char *name)
{
	size_t nl = strlen(name), vl;

	if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl))
		return false;
	line += nl + 1;
	len -= nl + 1;
	while (len && (*line == ' ' || *line == '\t'))
		line++, len--;
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
		       line[len - 1] == ' '))
		len--;
	vl = len < bufsz - 1 ? len : bufsz - 1;
	memcpy(buf, line, vl);
	buf[vl] = '\0';
	return true;
}

/* A non-negative decimal integer, or -1. */
static int64_t number(const char *s)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtoll(s, &end, 10);
	return *end == '\0' && v >= 0 ? (int64_t)v : -1;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *payload)
{
	struct call_state *st = payload;
	struct ghapi_reply *r = st->reply;
	size_t n = size * nmemb;
	char v[128];
	time_t t;

	if (header_value(v, sizeof(v), data, n, "Date")) {
		t = curl_getdate(v, NULL);
		r->date = t > 0 ? (int64_t)t : 0;
	} else if (header_value(v, sizeof(v), data, n, "Retry-After")) {
		/* seconds, or an HTTP date */
		r->retry_after = number(v);
		if (r->retry_after < 0 && (t = curl_getdate(v, NULL)) > 0)
			r->retry_after = (int64_t)t - timeutil_now();
		if (r->retry_after < 0 && t > 0)
			r->retry_after = 0;
	} else if (header_value(v, sizeof(v), data, n,
				"X-RateLimit-Remaining")) {
		r->ratelimit_remaining = number(v);
	} else if (header_value(v, sizeof(v), data, n, "X-RateLimit-Reset")) {
		r->ratelimit_reset = number(v);
	} else if (n > 5 && !strncmp(data, "HTTP/", 5)) {
		/* a new response (after a 100 Continue): forget the last */
		r->retry_after = r->ratelimit_remaining = -1;
		r->ratelimit_reset = -1;
	}
	return n;
}

static int transport_error(CURLcode rc, const char *errbuf,
			   const struct ghapi_call *call, struct gg_err *err)
{
	const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);

	if (rc == CURLE_OPERATION_TIMEDOUT)
		return gg_err_set(err, GG_EUPSTREAM,
				  "GitHub API timed out: %s %s after %ld s: "
				  "check upstream.github_app.api_url and the "
				  "network",
				  call->method, call->url, call->timeout_s);
	return gg_err_set(err, GG_EUPSTREAM,
			  "GitHub API unreachable: %s %s: %s: check "
			  "upstream.github_app.api_url and the network",
			  call->method, call->url, why);
}

/* Headers with the JWT in them are wiped before curl frees them. */
static void wipe_headers(struct curl_slist *h)
{
	struct curl_slist *l;

	for (l = h; l; l = l->next)
		sodium_memzero(l->data, strlen(l->data));
	curl_slist_free_all(h);
}

static struct curl_slist *make_headers(const struct ghapi_call *call)
{
	static const char *const fixed[] = {
		"Accept: application/vnd.github+json",
		"X-GitHub-Api-Version: 2022-11-28",
		"User-Agent: gitgate/" GG_VERSION, "Expect:", NULL
	};
	struct curl_slist *h = NULL, *l;
	size_t i, n = strlen(call->jwt) + 32;
	char *auth = sodium_malloc(n);

	if (!auth)
		return NULL;
	snprintf(auth, n, "Authorization: Bearer %s", call->jwt);
	h = curl_slist_append(NULL, auth);
	sodium_free(auth);
	for (i = 0; h && fixed[i]; i++) {
		l = curl_slist_append(h, fixed[i]);
		if (!l) {
			wipe_headers(h);
			return NULL;
		}
		h = l;
	}
	if (h && call->body) {
		l = curl_slist_append(h, "Content-Type: application/json");
		if (!l) {
			wipe_headers(h);
			return NULL;
		}
		h = l;
	}
	return h;
}

static void setup(CURL *c, const struct ghapi_call *call,
		  struct curl_slist *headers, struct call_state *st,
		  char *errbuf)
{
	curl_easy_setopt(c, CURLOPT_URL, call->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, call->connect_timeout_s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, call->timeout_s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, st);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, st);
	if (call->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, call->ca_file);
	if (call->ca_dir)
		curl_easy_setopt(c, CURLOPT_CAPATH, call->ca_dir);
	if (call->body) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, call->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
				 (long)strlen(call->body));
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
}

int ghapi_do(struct ghapi_reply *out, const struct ghapi_call *call,
	     struct gg_err *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct call_state st = { out, false };
	struct curl_slist *headers;
	CURLcode rc;
	CURL *c;
	int ret = GG_OK;

	memset(out, 0, sizeof(*out));
	out->retry_after = out->ratelimit_remaining = -1;
	out->ratelimit_reset = -1;
	out->body = sodium_malloc(GG_MAX_API_REPLY + 1);
	if (!out->body)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	out->body[0] = '\0';
	c = curl_easy_init();
	headers = c ? make_headers(call) : NULL;
	if (!headers) {
		curl_easy_cleanup(c);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	setup(c, call, headers, &st, errbuf);
	rc = curl_easy_perform(c);
	if (st.too_large)
		ret = gg_err_set(err, GG_EUPSTREAM,
				 "GitHub API answer to %s %s is over %d bytes",
				 call->method, call->url, GG_MAX_API_REPLY);
	else if (rc != CURLE_OK)
		ret = transport_error(rc, errbuf, call, err);
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_cleanup(c);
	wipe_headers(headers);
	return ret;
}

void ghapi_reply_release(struct ghapi_reply *r)
{
	if (r->body)
		sodium_free(r->body); /* wipes */
	r->body = NULL;
	r->len = 0;
}

void ghapi_message(char *buf, size_t bufsz, const struct ghapi_reply *r)
{
	json_t *root, *m;

	buf[0] = '\0';
	if (!r->body || !r->len)
		return;
	root = json_loadb(r->body, r->len, 0, NULL);
	m = root ? json_object_get(root, "message") : NULL;
	if (json_is_string(m))
		gg_err_sanitize(buf, bufsz, json_string_value(m),
				json_string_length(m));
	json_decref(root);
}

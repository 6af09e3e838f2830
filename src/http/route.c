/*
 * route.c - classify smart-HTTP requests and extract the token.
 */
#include "gitgate/http/route.h"
#include "gitgate/core/limits.h"

#include <sodium.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* Validate one path segment [s, s+n) as an owner or repository name. */
static bool valid_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > ROUTE_NAME_MAX)
		return false;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (i = 0; i < n; i++)
		if (!name_char(s[i]))
			return false;
	return true;
}

static const struct {
	const char *suffix;
	enum route_kind kind;
	const char *method;
} endpoints[] = {
	{ "/info/refs", ROUTE_INFO_REFS, "GET" },
	{ "/git-upload-pack", ROUTE_UPLOAD_PACK, "POST" },
	{ "/git-receive-pack", ROUTE_RECEIVE_PACK, "POST" },
};

const char *route_allowed_methods(enum route_kind kind)
{
	size_t i;

	for (i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
		if (endpoints[i].kind == kind)
			return endpoints[i].method;
	return "GET, HEAD"; /* /healthz */
}

static int parse_service(enum route_service *out, const char *service,
			 struct gg_err *err)
{
	if (!service)
		return gg_err_set(err, GG_ENOTFOUND,
				  "only smart HTTP is served: the service "
				  "parameter is required");
	if (!strcmp(service, "git-upload-pack"))
		*out = ROUTE_SVC_UPLOAD;
	else if (!strcmp(service, "git-receive-pack"))
		*out = ROUTE_SVC_RECEIVE;
	else
		return gg_err_set(err, GG_ENOTFOUND, "unknown service");
	return GG_OK;
}

/* Split "/owner/name[.git]" (len bytes) into out->repo. */
static int parse_repo(struct route *out, const char *p, size_t len)
{
	const char *slash;
	size_t olen, nlen;

	if (len < 4 || p[0] != '/')
		return -1;
	p++;
	len--;
	slash = memchr(p, '/', len);
	if (!slash)
		return -1;
	olen = (size_t)(slash - p);
	nlen = len - olen - 1;
	if (nlen > 4 && !memcmp(slash + 1 + nlen - 4, ".git", 4))
		nlen -= 4;
	/* "/o/.git" would name the repository ".git": git's own directory
	 * name, never a repository. */
	if (nlen == 4 && !strncasecmp(slash + 1, ".git", 4))
		return -1;
	if (!valid_name(p, olen) || !valid_name(slash + 1, nlen))
		return -1;
	memcpy(out->repo, p, olen);
	out->repo[olen] = '/';
	memcpy(out->repo + olen + 1, slash + 1, nlen);
	out->repo[olen + 1 + nlen] = '\0';
	return 0;
}

int route_parse(struct route *out, const char *method, const char *path,
		const char *service, struct gg_err *err)
{
	size_t len, slen, i;

	memset(out, 0, sizeof(*out));
	if (!strcmp(path, "/healthz")) {
		out->kind = ROUTE_HEALTHZ;
		if (strcmp(method, "GET") && strcmp(method, "HEAD"))
			return gg_err_set(err, GG_EDENIED,
					  "method not allowed");
		return GG_OK;
	}
	len = strlen(path);
	for (i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
		slen = strlen(endpoints[i].suffix);
		if (len <= slen || strcmp(path + len - slen, endpoints[i].suffix))
			continue;
		if (parse_repo(out, path, len - slen) != 0)
			return gg_err_set(err, GG_ENOTFOUND,
					  "not a repository path: expected "
					  "/OWNER/NAME.git/...");
		out->kind = endpoints[i].kind;
		if (strcmp(method, endpoints[i].method))
			return gg_err_set(err, GG_EDENIED,
					  "method not allowed");
		if (out->kind == ROUTE_UPLOAD_PACK)
			out->service = ROUTE_SVC_UPLOAD;
		else if (out->kind == ROUTE_RECEIVE_PACK)
			out->service = ROUTE_SVC_RECEIVE;
		else
			return parse_service(&out->service, service, err);
		return GG_OK;
	}
	return gg_err_set(err, GG_ENOTFOUND, "not found");
}

const char *route_service_name(enum route_service svc)
{
	switch (svc) {
	case ROUTE_SVC_UPLOAD:
		return "git-upload-pack";
	case ROUTE_SVC_RECEIVE:
		return "git-receive-pack";
	default:
		return NULL;
	}
}

static const char *skip_spaces(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* Length of s without trailing spaces/tabs. */
static size_t trimmed_len(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n;
}

static int copy_token(char *buf, size_t bufsz, size_t *len, const char *tok,
		      size_t n, struct gg_err *err)
{
	if (n == 0)
		return gg_err_set(err, GG_EINVAL, "empty credentials");
	if (n >= bufsz)
		return gg_err_set(err, GG_ELIMIT, "token too long");
	memcpy(buf, tok, n);
	buf[n] = '\0';
	*len = n;
	return GG_OK;
}

static int basic_token(char *buf, size_t bufsz, size_t *len, const char *b64,
		       struct gg_err *err)
{
	/* Decoded credentials are at most 3/4 of the header. */
	unsigned char raw[GG_MAX_HEADER_LEN];
	size_t rawlen = 0, n = trimmed_len(b64);
	const char *end = NULL;
	unsigned char *colon;
	int ret;

	if (n == 0)
		return gg_err_set(err, GG_EINVAL, "empty Basic credentials");
	if (sodium_base642bin(raw, sizeof(raw) - 1, b64, n, NULL, &rawlen,
			      &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != b64 + n) {
		ret = gg_err_set(err, GG_EINVAL,
				 "Basic credentials are not base64");
		goto out;
	}
	colon = memchr(raw, ':', rawlen);
	if (!colon) {
		ret = gg_err_set(err, GG_EINVAL,
				 "Basic credentials have no password");
		goto out;
	}
	if (memchr(colon + 1, '\0', rawlen - (size_t)(colon + 1 - raw))) {
		ret = gg_err_set(err, GG_EINVAL, "NUL byte in credentials");
		goto out;
	}
	ret = copy_token(buf, bufsz, len, (const char *)colon + 1,
			 rawlen - (size_t)(colon + 1 - raw), err);
out:
	sodium_memzero(raw, sizeof(raw));
	return ret;
}

int route_auth_token(char *buf, size_t bufsz, size_t *len,
		     const char *authorization, struct gg_err *err)
{
	const char *p;

	*len = 0;
	if (!authorization)
		return gg_err_set(err, GG_EINVAL, "no credentials");
	if (strlen(authorization) > GG_MAX_HEADER_LEN)
		return gg_err_set(err, GG_ELIMIT,
				  "Authorization header too long");
	p = skip_spaces(authorization);
	if (!strncasecmp(p, "Basic", 5) && (p[5] == ' ' || p[5] == '\t'))
		return basic_token(buf, bufsz, len, skip_spaces(p + 5), err);
	if (!strncasecmp(p, "Bearer", 6) && (p[6] == ' ' || p[6] == '\t')) {
		p = skip_spaces(p + 6);
		return copy_token(buf, bufsz, len, p, trimmed_len(p), err);
	}
	return gg_err_set(err, GG_EINVAL,
			  "unsupported Authorization scheme (use Basic or "
			  "Bearer)");
}

static bool no_ctl(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}

bool route_header_ok(const char *name, const char *value)
{
	return (!name || no_ctl(name)) && (!value || no_ctl(value));
}

/*
 * config.c - load and strictly validate the JSON config file.
 *
 * Every problem is collected before refusing (a operator fixing a config
 * wants the whole list, not one error per restart), and each names the key.
 */
#include "gitgate/config/config.h"
#include "gitgate/core/size.h"
#include "gitgate/core/limits.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Problems found so far, joined with "; ". */
struct problems {
	char buf[GG_ERR_MSG_MAX * 4];
	size_t len;
	int count;
};

static void problem(struct problems *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct problems *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	p->count++;
	if (p->len + 3 >= sizeof(p->buf))
		return;
	if (p->len) {
		memcpy(p->buf + p->len, "; ", 3);
		p->len += 2;
	}
	va_start(ap, fmt);
	n = vsnprintf(p->buf + p->len, sizeof(p->buf) - p->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		p->len += (size_t)n < sizeof(p->buf) - p->len
				  ? (size_t)n
				  : sizeof(p->buf) - p->len - 1;
}

/* Directory part of path ("." when it has none); caller frees. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static char *resolve(const char *dir, const char *rel)
{
	size_t n;
	char *out;

	if (rel[0] == '/')
		return strdup(rel);
	n = strlen(dir) + 1 + strlen(rel) + 1;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s%s%s", dir,
			 dir[strlen(dir) - 1] == '/' ? "" : "/", rel);
	return out;
}

/* Port digits after HOST: (text), 1..65535, digits only: strtol alone
 * would accept " 80", "+80" and "0x50". */
static int parse_port(unsigned short *out, const char *text,
		      const char *label, struct problems *p)
{
	char safe[24];
	long port = 0;
	size_t i, n = strlen(text);

	gg_err_sanitize(safe, sizeof(safe), text, n);
	if (n == 0) {
		problem(p, "%s: missing port (want HOST:PORT, e.g. "
			   "127.0.0.1:8080)", label);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (text[i] < '0' || text[i] > '9') {
			problem(p, "%s: port '%s' is not a number", label, safe);
			return -1;
		}
		if (port <= 65535)
			port = port * 10 + (text[i] - '0');
	}
	if (port < 1 || port > 65535) {
		problem(p, "%s: port %s out of range 1-65535", label, safe);
		return -1;
	}
	*out = (unsigned short)port;
	return 0;
}

/* An IPv6 literal, with an optional %zone left to getaddrinfo. */
static bool is_ipv6(const char *text, size_t len)
{
	struct in6_addr a6;
	char addr[INET6_ADDRSTRLEN];
	size_t n = strcspn(text, "%");

	if (n > len)
		n = len;
	if (n >= sizeof(addr))
		return false;
	memcpy(addr, text, n);
	addr[n] = '\0';
	return inet_pton(AF_INET6, addr, &a6) == 1;
}

/* "[v6]:port": host and hostlen point into text; rest gets the port
 * text after "]:". */
static int split_bracketed(const char **host, size_t *hostlen,
			   const char **rest, const char *text,
			   const char *label, struct problems *p)
{
	const char *close = strchr(text, ']');
	char safe[64];

	if (!close) {
		problem(p, "%s: missing ']' after the IPv6 address", label);
		return -1;
	}
	*host = text + 1;
	*hostlen = (size_t)(close - *host);
	if (*hostlen == 0) {
		problem(p, "%s: empty IPv6 address in '[]'", label);
		return -1;
	}
	if (!is_ipv6(*host, *hostlen)) {
		gg_err_sanitize(safe, sizeof(safe), *host, *hostlen);
		problem(p, "%s: '%s' in brackets is not an IPv6 address", label,
			safe);
		return -1;
	}
	if (close[1] != ':' && close[1] != '\0') {
		problem(p, "%s: expected ':PORT' after ']'", label);
		return -1;
	}
	*rest = close[1] ? close + 2 : close + 1;
	return 0;
}

static int split_plain(size_t *hostlen, const char **rest, const char *text,
		       const char *label, struct problems *p)
{
	const char *colon = strchr(text, ':');

	if (strpbrk(text, "[]")) {
		problem(p, "%s: '[' and ']' go only around an IPv6 "
			   "address (e.g. [::1]:8080)", label);
		return -1;
	}
	if (colon && strchr(colon + 1, ':')) {
		problem(p, "%s: an IPv6 address needs brackets (e.g. "
			   "[::1]:8080)", label);
		return -1;
	}
	/* "8080" alone: the port is there, the host is not. */
	if (!colon && text[strspn(text, "0123456789")] == '\0') {
		problem(p, "%s: missing host (want HOST:PORT, e.g. "
			   "127.0.0.1:8080)", label);
		return -1;
	}
	*hostlen = colon ? (size_t)(colon - text) : strlen(text);
	*rest = colon ? colon + 1 : text + strlen(text);
	return 0;
}

/* Parse "host:port" or "[v6]:port" (the key label: "listen",
 * "admin_listen"); each way to get it wrong has its own message, collected
 * in p like every other config problem. */
static int parse_hostport(char **host_out, unsigned short *port_out,
			  const char *text, const char *label,
			  struct problems *p)
{
	const char *host = text, *rest;
	size_t hostlen;
	int rc;

	if (text[0] == '[')
		rc = split_bracketed(&host, &hostlen, &rest, text, label, p);
	else
		rc = split_plain(&hostlen, &rest, text, label, p);
	if (rc != 0)
		return -1;
	if (hostlen == 0) {
		problem(p, "%s: missing host (want HOST:PORT, e.g. "
			   "127.0.0.1:8080)", label);
		return -1;
	}
	if (hostlen > 255) {
		problem(p, "%s: host longer than 255 bytes", label);
		return -1;
	}
	if (parse_port(port_out, rest, label, p) != 0)
		return -1;
	*host_out = strndup(host, hostlen);
	return 0; /* NULL host: config_parse reports out of memory */
}

/* Fetch an optional string member; records a problem for wrong types. */
static const char *get_string(json_t *obj, const char *key, const char *label,
			      int required, struct problems *p)
{
	json_t *v = json_object_get(obj, key);

	if (!v) {
		if (required)
			problem(p, "%s: required", label);
		return NULL;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		problem(p, "%s: must be a non-empty string", label);
		return NULL;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		problem(p, "%s: contains a NUL byte", label);
		return NULL;
	}
	return json_string_value(v);
}

static void check_keys(json_t *obj, const char *const *allowed,
		       const char *prefix, struct problems *p)
{
	const char *key;
	json_t *v;
	size_t i;
	char safe[64];

	json_object_foreach(obj, key, v) {
		for (i = 0; allowed[i]; i++)
			if (!strcmp(key, allowed[i]))
				break;
		if (!allowed[i]) {
			gg_err_sanitize(safe, sizeof(safe), key, strlen(key));
			problem(p, "%s%s: unknown key", prefix, safe);
		}
	}
}

/* Keep path (owned) as entry index of the verify_key array. The same
 * file twice is refused: in a rotation it usually means the new key's path
 * was meant, and the old key alone would silently stay in force. Paths are
 * compared as resolved, so "k.pub" and "/etc/gitgate/k.pub" are the same. */
static void add_verify_key(struct config *cfg, size_t index, char *path,
			   struct problems *p)
{
	size_t i;

	if (!path) {
		problem(p, "verify_key[%zu]: out of memory", index);
		return;
	}
	for (i = 0; i < cfg->nverify_keys; i++) {
		if (!strcmp(cfg->verify_keys[i], path)) {
			problem(p, "verify_key[%zu]: same file as "
				   "verify_key[%zu]", index, i);
			free(path);
			return;
		}
	}
	cfg->verify_keys[cfg->nverify_keys++] = path;
}

static void parse_verify_keys(struct config *cfg, json_t *root,
			      const char *dir, struct problems *p)
{
	json_t *v = json_object_get(root, "verify_key"), *item;
	size_t i;

	if (!v) {
		problem(p, "verify_key: required");
		return;
	}
	if (json_is_string(v)) {
		v = json_pack("[O]", v);
	} else if (json_is_array(v) && json_array_size(v) > 0 &&
		   json_array_size(v) <= GG_MAX_KEYS) {
		json_incref(v);
	} else {
		problem(p, "verify_key: must be a path or an array of 1..%d "
			   "paths", GG_MAX_KEYS);
		return;
	}
	cfg->verify_keys = calloc(json_array_size(v), sizeof(char *));
	json_array_foreach(v, i, item) {
		if (!json_is_string(item) || json_string_length(item) == 0) {
			problem(p, "verify_key[%zu]: must be a non-empty "
				   "string", i);
			continue;
		}
		if (cfg->verify_keys)
			add_verify_key(cfg, i,
				       resolve(dir, json_string_value(item)),
				       p);
	}
	json_decref(v);
}

/* An http(s) URL without credentials, query or fragment ("upstream.url",
 * "upstream.github_app.api_url"); NULL (reported) when it is not one. */
static char *http_url(const char *url, const char *key, struct problems *p)
{
	const char *host = !strncmp(url, "http://", 7)	  ? url + 7
			   : !strncmp(url, "https://", 8) ? url + 8
							  : NULL;
	char *copy;
	size_t n;

	if (!host)
		problem(p, "%s: must start with http:// or https://", key);
	else if (*host == '\0' || *host == '/')
		problem(p, "%s: has no host", key);
	else if (strchr(url, '@') || strchr(url, '?') || strchr(url, '#'))
		problem(p, "%s: must not contain credentials, query or "
			   "fragment", key);
	else if (strlen(url) > GG_MAX_URL_LEN / 2)
		problem(p, "%s: too long", key);
	else if (!(copy = strdup(url)))
		problem(p, "%s: out of memory", key);
	else {
		n = strlen(copy);
		while (n > 0 && copy[n - 1] == '/')
			copy[--n] = '\0';
		return copy;
	}
	return NULL;
}

/* The App id: GitHub shows it as a number; a JSON string of digits or a
 * JSON integer are both taken. */
static void parse_app_id(struct config *cfg, json_t *app, struct problems *p)
{
	json_t *v = json_object_get(app, "app_id");
	char buf[32];
	const char *s = buf;
	size_t i, n;

	if (!v) {
		problem(p, "upstream.github_app.app_id: required");
		return;
	}
	if (json_is_integer(v) && json_integer_value(v) > 0)
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
	else if (json_is_string(v))
		s = json_string_value(v);
	else {
		problem(p, "upstream.github_app.app_id: must be a string of "
			   "digits");
		return;
	}
	n = strlen(s);
	for (i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (n == 0 || i != n || n > 20) {
		problem(p, "upstream.github_app.app_id: must be a string of "
			   "digits");
		return;
	}
	cfg->app_id = strdup(s);
	if (!cfg->app_id)
		problem(p, "upstream.github_app.app_id: out of memory");
}

static void parse_github_app(struct config *cfg, json_t *up, const char *dir,
			     struct problems *p)
{
	static const char *const keys[] = { "app_id", "private_key_file",
					    "api_url", NULL };
	json_t *app = json_object_get(up, "github_app");
	const char *key, *api;

	if (!app)
		return;
	if (!json_is_object(app)) {
		problem(p, "upstream.github_app: must be an object");
		return;
	}
	cfg->github_app = true;
	check_keys(app, keys, "upstream.github_app.", p);
	parse_app_id(cfg, app, p);
	key = get_string(app, "private_key_file",
			 "upstream.github_app.private_key_file", 1, p);
	if (key && !(cfg->app_key_file = resolve(dir, key)))
		problem(p, "upstream.github_app.private_key_file: out of "
			   "memory");
	api = get_string(app, "api_url", "upstream.github_app.api_url", 0, p);
	if (!api && json_object_get(app, "api_url"))
		return; /* wrong type: reported */
	cfg->app_api_url = http_url(api ? api : "https://api.github.com",
				    "upstream.github_app.api_url", p);
}

static void parse_upstream(struct config *cfg, json_t *root, const char *dir,
			   struct problems *p)
{
	static const char *const keys[] = { "url", "token_file",
					    "github_app", NULL };
	json_t *up = json_object_get(root, "upstream");
	const char *url, *tf;

	if (!up) {
		problem(p, "upstream: required");
		return;
	}
	if (!json_is_object(up)) {
		problem(p, "upstream: must be an object");
		return;
	}
	check_keys(up, keys, "upstream.", p);
	url = get_string(up, "url", "upstream.url", 1, p);
	if (url)
		cfg->upstream_url = http_url(url, "upstream.url", p);
	tf = get_string(up, "token_file", "upstream.token_file", 0, p);
	if (tf)
		cfg->upstream_token_file = resolve(dir, tf);
	parse_github_app(cfg, up, dir, p);
	if (tf && json_object_get(up, "github_app"))
		problem(p, "upstream: upstream.token_file and "
			   "upstream.github_app are both set: keep exactly "
			   "one");
}

static char *path_key(json_t *root, const char *key, const char *def,
		      const char *dir, struct problems *p)
{
	const char *v = get_string(root, key, key, 0, p);

	if (!v && json_object_get(root, key))
		return NULL; /* wrong type: already reported */
	return resolve(dir, v ? v : def);
}

/* An optional path key: NULL when absent (or wrong, reported). */
static char *optional_path(json_t *root, const char *key, const char *dir,
			   struct problems *p)
{
	const char *v = get_string(root, key, key, 0, p);
	char *path;

	if (!v)
		return NULL;
	path = resolve(dir, v);
	if (!path)
		problem(p, "%s: out of memory", key);
	return path;
}

/* fetch_cache: { "enabled": bool, "max_size": "50G" }, both optional. */
static void parse_fetch_cache(struct config *cfg, json_t *root,
			      struct problems *p)
{
	static const char *const keys[] = { "enabled", "max_size", NULL };
	json_t *fc = json_object_get(root, "fetch_cache");
	json_t *en;
	const char *size;
	struct gg_err err = GG_ERR_INIT;

	cfg->cache_max_size = GG_CACHE_DEFAULT_MAX_SIZE;
	if (!fc)
		return;
	if (!json_is_object(fc)) {
		problem(p, "fetch_cache: must be an object");
		return;
	}
	check_keys(fc, keys, "fetch_cache.", p);
	en = json_object_get(fc, "enabled");
	if (en && !json_is_boolean(en))
		problem(p, "fetch_cache.enabled: must be true or false");
	cfg->fetch_cache = en && json_is_true(en);
	size = get_string(fc, "max_size", "fetch_cache.max_size", 0, p);
	if (size && size_parse(&cfg->cache_max_size, size, &err) != 0)
		problem(p, "fetch_cache.max_size: %s", err.msg);
}

/* "tls": { "cert_file", "key_file" }, both required once "tls" is there:
 * half a TLS setup is a mistake to report, never plain HTTP. The files
 * themselves are read (and the key's permissions checked) by the server
 * at start-up, which can say what is wrong with the certificate. */
static void parse_tls(struct config *cfg, json_t *root, const char *dir,
		      struct problems *p)
{
	static const char *const keys[] = { "cert_file", "key_file", NULL };
	json_t *tls = json_object_get(root, "tls");
	const char *cert, *key;

	if (!tls)
		return;
	if (!json_is_object(tls)) {
		problem(p, "tls: must be an object");
		return;
	}
	check_keys(tls, keys, "tls.", p);
	cert = get_string(tls, "cert_file", "tls.cert_file", 1, p);
	key = get_string(tls, "key_file", "tls.key_file", 1, p);
	if (cert && !(cfg->tls_cert_file = resolve(dir, cert)))
		problem(p, "tls.cert_file: out of memory");
	if (key && !(cfg->tls_key_file = resolve(dir, key)))
		problem(p, "tls.key_file: out of memory");
}

/* "trusted_proxies": an array of CIDRs (cidr.h). [] trusts no one, as
 * leaving the key out does. */
static void parse_trusted_proxies(struct config *cfg, json_t *root,
				  struct problems *p)
{
	json_t *v = json_object_get(root, "trusted_proxies"), *item;
	struct gg_err err;
	size_t i;

	if (!v)
		return;
	if (!json_is_array(v) || json_array_size(v) > GG_MAX_TRUSTED_PROXIES) {
		problem(p, "trusted_proxies: must be an array of at most %d "
			   "CIDRs",
			GG_MAX_TRUSTED_PROXIES);
		return;
	}
	if (json_array_size(v) == 0)
		return;
	cfg->trusted_proxies = calloc(json_array_size(v),
				      sizeof(*cfg->trusted_proxies));
	if (!cfg->trusted_proxies) {
		problem(p, "trusted_proxies: out of memory");
		return;
	}
	json_array_foreach(v, i, item) {
		gg_err_init(&err);
		if (!json_is_string(item))
			problem(p, "trusted_proxies[%zu]: must be a string",
				i);
		else if (cidr_parse(&cfg->trusted_proxies[i],
				    json_string_value(item), &err) != GG_OK)
			problem(p, "trusted_proxies[%zu]: %s", i, err.msg);
	}
	cfg->ntrusted_proxies = json_array_size(v);
}

/* The admin listener serves metrics and probes, never git: on the
 * sandbox-facing address it would hand repository traffic figures to every
 * sandbox (and a port cannot be bound twice anyway). */
static void parse_admin_listen(struct config *cfg, json_t *root,
			       struct problems *p)
{
	const char *text = get_string(root, "admin_listen", "admin_listen", 0,
				      p);

	if (!text ||
	    parse_hostport(&cfg->admin_host, &cfg->admin_port, text,
			   "admin_listen", p) != 0 ||
	    !cfg->admin_host || !cfg->listen_host)
		return;
	if (cfg->admin_port == cfg->listen_port &&
	    !strcmp(cfg->admin_host, cfg->listen_host))
		problem(p, "admin_listen: must differ from listen (the admin "
			   "listener is never the sandbox-facing one)");
}

static void parse_log_format(struct config *cfg, json_t *root,
			     struct problems *p)
{
	const char *text = get_string(root, "log_format", "log_format", 0, p);

	if (!text)
		return;
	if (!strcmp(text, "json"))
		cfg->log_json = true;
	else if (strcmp(text, "text") != 0)
		problem(p, "log_format: must be \"text\" or \"json\"");
}

static void parse_root(struct config *cfg, json_t *root, const char *dir,
		       struct problems *p)
{
	static const char *const keys[] = { "listen", "verify_key",
					    "upstream", "audit_log",
					    "revocations", "cache_dir",
					    "policy", "fetch_cache", "tls",
					    "trusted_proxies", "admin_listen",
					    "log_format", NULL };
	const char *listen;

	check_keys(root, keys, "", p);
	listen = get_string(root, "listen", "listen", 1, p);
	if (listen)
		parse_hostport(&cfg->listen_host, &cfg->listen_port, listen,
			       "listen", p);
	parse_verify_keys(cfg, root, dir, p);
	parse_upstream(cfg, root, dir, p);
	cfg->audit_log = path_key(root, "audit_log", "audit.jsonl", dir, p);
	cfg->revocations = path_key(root, "revocations", "revoked.txt", dir, p);
	cfg->cache_dir = path_key(root, "cache_dir", "cache", dir, p);
	cfg->policy = optional_path(root, "policy", dir, p);
	parse_fetch_cache(cfg, root, p);
	parse_tls(cfg, root, dir, p);
	parse_trusted_proxies(cfg, root, p);
	parse_admin_listen(cfg, root, p);
	parse_log_format(cfg, root, p);
}

int config_parse(struct config **out, const char *path, const char *text,
		 size_t len, struct gg_err *err)
{
	struct problems p = { .len = 0, .count = 0 };
	struct config *cfg = NULL;
	json_error_t jerr;
	json_t *root = NULL;
	char *dir = NULL;
	int ret = GG_ENOMEM;

	*out = NULL;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		ret = gg_err_set(err, GG_EINVAL, "%s:%d:%d: %s", path,
				 jerr.line, jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		ret = gg_err_set(err, GG_EINVAL,
				 "%s: must be a JSON object", path);
		goto out;
	}
	cfg = calloc(1, sizeof(*cfg));
	dir = dir_of(path);
	if (!cfg || !dir || !(cfg->path = strdup(path)))
		goto nomem;
	parse_root(cfg, root, dir, &p);
	if (p.count) {
		ret = gg_err_set(err, GG_EINVAL, "%s: %s", path, p.buf);
		goto out;
	}
	if (!cfg->audit_log || !cfg->revocations || !cfg->cache_dir ||
	    !cfg->listen_host || !cfg->upstream_url ||
	    (json_object_get(root, "admin_listen") && !cfg->admin_host) ||
	    (cfg->github_app && (!cfg->app_id || !cfg->app_key_file ||
				 !cfg->app_api_url)) ||
	    cfg->nverify_keys == 0)
		goto nomem;
	*out = cfg;
	cfg = NULL;
	ret = GG_OK;
	goto out;
nomem:
	ret = gg_err_set(err, GG_ENOMEM, "%s: out of memory", path);
out:
	config_free(cfg);
	free(dir);
	json_decref(root);
	return ret;
}

/* Read a whole small regular file (at most max bytes) into a
 * NUL-terminated buffer; label names the file in messages
 * ("upstream.token_file: /path"). */
static int read_small_file(char **out, size_t *outlen, const char *path,
			   const char *label, size_t max, int private,
			   struct gg_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ret;

	/* O_NONBLOCK: a FIFO would block open() until a writer came; this
	 * way fstat gets to refuse it. No effect on a regular file. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return gg_err_errno(err, GG_EIO, "%s", label);
	if (fstat(fd, &st) != 0) {
		ret = gg_err_errno(err, GG_EIO, "%s", label);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = gg_err_set(err, GG_EINVAL, "%s: not a regular file",
				 label);
		goto out;
	}
	if (private && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		ret = gg_err_set(err, GG_EINVAL,
				 "%s: permissions %04o are too open (want "
				 "0600)",
				 label, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	buf = malloc(max + 1);
	if (!buf) {
		ret = gg_err_set(err, GG_ENOMEM, "%s: out of memory", label);
		goto out;
	}
	for (;;) {
		n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = gg_err_errno(err, GG_EIO, "%s", label);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			ret = gg_err_set(err, GG_ELIMIT,
					 "%s: larger than %zu bytes", label,
					 max);
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	ret = GG_OK;
out:
	if (buf) {
		/* May hold part of a secret file. */
		sodium_memzero(buf, max + 1);
		free(buf);
	}
	close(fd);
	return ret;
}

int config_load(struct config **out, const char *path, struct gg_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int ret;

	*out = NULL;
	ret = read_small_file(&text, &len, path, path, GG_MAX_CONFIG_LEN, 0,
			      err);
	if (ret)
		return ret;
	ret = config_parse(out, path, text, len, err);
	free(text);
	return ret;
}

void config_free(struct config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->nverify_keys; i++)
		free(cfg->verify_keys[i]);
	free(cfg->verify_keys);
	free(cfg->path);
	free(cfg->listen_host);
	free(cfg->admin_host);
	free(cfg->upstream_url);
	free(cfg->upstream_token_file);
	free(cfg->app_id);
	free(cfg->app_key_file);
	free(cfg->app_api_url);
	free(cfg->audit_log);
	free(cfg->revocations);
	free(cfg->cache_dir);
	free(cfg->policy);
	free(cfg->tls_cert_file);
	free(cfg->tls_key_file);
	free(cfg->trusted_proxies);
	free(cfg);
}

/* Copy text (len bytes, no NULs) into guarded memory; strips one trailing
 * newline (and CR) as files written by editors and `echo` carry one. */
static int secret_dup(char **out, const char *text, size_t len,
		      const char *what, struct gg_err *err)
{
	char *s;

	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len == 0)
		return gg_err_set(err, GG_EINVAL, "%s: upstream secret is "
						  "empty", what);
	if (memchr(text, '\n', len) || memchr(text, '\0', len))
		return gg_err_set(err, GG_EINVAL, "%s: upstream secret must "
						  "be one line", what);
	s = sodium_malloc(len + 1);
	if (!s)
		return gg_err_set(err, GG_ENOMEM, "%s: out of memory", what);
	memcpy(s, text, len);
	s[len] = '\0';
	*out = s;
	return GG_OK;
}

/* GITGATE_UPSTREAM_TOKEN counts as set when non-empty. */
static const char *env_secret(void)
{
	const char *env = getenv("GITGATE_UPSTREAM_TOKEN");

	return env && *env ? env : NULL;
}

int config_check_upstream_source(const struct config *cfg, struct gg_err *err)
{
	const char *env = env_secret();
	const char *other = cfg->upstream_token_file ? "upstream.token_file"
			    : cfg->github_app	     ? "upstream.github_app"
						     : NULL;

	if (cfg->upstream_token_file && cfg->github_app)
		return gg_err_set(err, GG_EINVAL,
				  "upstream: upstream.token_file and "
				  "upstream.github_app are both set: keep "
				  "exactly one");
	if (env && other)
		return gg_err_set(err, GG_EINVAL,
				  "upstream: GITGATE_UPSTREAM_TOKEN and %s are "
				  "both set: keep exactly one of "
				  "upstream.token_file, GITGATE_UPSTREAM_TOKEN "
				  "and upstream.github_app",
				  other);
	if (!env && !other)
		return gg_err_set(err, GG_EINVAL,
				  "upstream: no credential: set one of "
				  "upstream.token_file, GITGATE_UPSTREAM_TOKEN "
				  "or upstream.github_app");
	return GG_OK;
}

int config_read_secret_file(char **out, size_t *outlen, const char *path,
			    const char *label, size_t max, struct gg_err *err)
{
	char *text = NULL, *s;
	size_t len = 0;
	int ret;

	*out = NULL;
	*outlen = 0;
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR, "libsodium failed to start");
	/* Permissions are checked on the opened file (fstat), not the path,
	 * so a swap between check and read cannot slip past. */
	ret = read_small_file(&text, &len, path, label, max, 1, err);
	if (ret)
		return ret;
	s = sodium_malloc(len + 1);
	if (!s)
		ret = gg_err_set(err, GG_ENOMEM, "%s: out of memory", label);
	else {
		memcpy(s, text, len);
		s[len] = '\0';
		*out = s;
		*outlen = len;
	}
	sodium_memzero(text, len);
	free(text);
	return ret;
}

int config_load_upstream_secret(char **out, const struct config *cfg,
				struct gg_err *err)
{
	const char *env = env_secret();
	char label[GG_ERR_MSG_MAX];
	char *text = NULL;
	size_t len = 0;
	int ret;

	*out = NULL;
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR, "libsodium failed to start");
	ret = config_check_upstream_source(cfg, err);
	if (ret)
		return ret;
	if (env)
		return secret_dup(out, env, strlen(env),
				  "GITGATE_UPSTREAM_TOKEN", err);
	if (!cfg->upstream_token_file)
		return gg_err_set(err, GG_EINVAL,
				  "upstream.github_app: mints its tokens; "
				  "there is no static secret to load");
	snprintf(label, sizeof(label), "upstream.token_file: %s",
		 cfg->upstream_token_file);
	ret = config_read_secret_file(&text, &len, cfg->upstream_token_file,
				      label, GG_MAX_KEYFILE_LEN, err);
	if (ret)
		return ret;
	ret = secret_dup(out, text, len, "upstream.token_file", err);
	sodium_free(text); /* wipes */
	return ret;
}

void config_secret_free(char *secret)
{
	if (secret)
		sodium_free(secret); /* sodium_free wipes before freeing */
}


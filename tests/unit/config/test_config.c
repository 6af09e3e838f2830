/* test_config.c - strict config validation, file loading, upstream secret. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/config/config.h"
#include "gitgate/core/limits.h"

#define CFG_PATH "/etc/gitgate/config.json"

/*
 * The tables write JSON with single quotes, which read far better in C
 * than \" everywhere; parse_q turns them into double quotes first. No test
 * needs a literal single quote.
 */
static int parse_q(struct config **out, const char *path, const char *json,
		   struct gg_err *err)
{
	size_t i, len = strlen(json);
	char *text = malloc(len + 1);
	int ret;

	ck_assert_ptr_nonnull(text);
	for (i = 0; i <= len; i++)
		text[i] = json[i] == '\'' ? '"' : json[i];
	ret = config_parse(out, path, text, len, err);
	free(text);
	return ret;
}

static struct config *parse_ok(const char *json)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = NULL;
	int ret = parse_q(&cfg, CFG_PATH, json, &err);

	ck_assert_msg(ret == GG_OK, "refused: %s", err.msg);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(err.code, GG_OK);
	return cfg;
}

#define MIN_CONFIG                                                            \
	"{'listen':'127.0.0.1:8080','verify_key':'keys/verify.pub',"         \
	"'upstream':{'url':'https://github.com'}}"

START_TEST(test_minimal)
{
	struct config *cfg = parse_ok(MIN_CONFIG);

	ck_assert_str_eq(cfg->path, CFG_PATH);
	ck_assert_str_eq(cfg->listen_host, "127.0.0.1");
	ck_assert_uint_eq(cfg->listen_port, 8080);
	ck_assert_uint_eq(cfg->nverify_keys, 1);
	ck_assert_str_eq(cfg->verify_keys[0], "/etc/gitgate/keys/verify.pub");
	ck_assert_str_eq(cfg->upstream_url, "https://github.com");
	ck_assert_ptr_null(cfg->upstream_token_file);
	/* Defaults live next to the config file. */
	ck_assert_str_eq(cfg->audit_log, "/etc/gitgate/audit.jsonl");
	ck_assert_str_eq(cfg->revocations, "/etc/gitgate/revoked.txt");
	ck_assert_str_eq(cfg->cache_dir, "/etc/gitgate/cache");
	ck_assert_ptr_null(cfg->policy); /* optional, no default */
	config_free(cfg);
	config_free(NULL);
}
END_TEST

/* "trusted_proxies": parsed networks, in order; absent or [] = none. */
START_TEST(test_trusted_proxies)
{
	struct config *cfg = parse_ok(
		"{'listen':'h:1','verify_key':'k','upstream':{'url':'http://u'},"
		"'trusted_proxies':['127.0.0.1/32','10.0.0.0/8','fd00::/8',"
		"'192.0.2.9']}");
	struct cidr_addr a;
	char buf[CIDR_TEXT_MAX];
	static const char *const want[] = { "127.0.0.1/32", "10.0.0.0/8",
					    "fd00::/8", "192.0.2.9/32" };
	size_t i;

	ck_assert_uint_eq(cfg->ntrusted_proxies, 4);
	for (i = 0; i < 4; i++) {
		cidr_format(buf, sizeof(buf), &cfg->trusted_proxies[i]);
		ck_assert_str_eq(buf, want[i]);
	}
	ck_assert_int_eq(cidr_addr_parse(&a, "10.9.8.7", 8, NULL), GG_OK);
	ck_assert(cidr_list_contains(cfg->trusted_proxies,
				     cfg->ntrusted_proxies, &a));
	config_free(cfg);
	cfg = parse_ok(MIN_CONFIG);
	ck_assert_ptr_null(cfg->trusted_proxies);
	ck_assert_uint_eq(cfg->ntrusted_proxies, 0);
	config_free(cfg);
	cfg = parse_ok("{'listen':'h:1','verify_key':'k','upstream':{'url':"
		       "'http://u'},'trusted_proxies':[]}");
	ck_assert_ptr_null(cfg->trusted_proxies);
	ck_assert_uint_eq(cfg->ntrusted_proxies, 0);
	config_free(cfg);
}
END_TEST

/* GG_MAX_TRUSTED_PROXIES entries pass, one more is refused; each bad
 * entry is its own problem, collected together. */
START_TEST(test_trusted_proxies_limits)
{
	char json[4096];
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;
	size_t len;
	int i;

	len = (size_t)snprintf(json, sizeof(json),
			       "{'listen':'h:1','verify_key':'k','upstream':"
			       "{'url':'http://u'},'trusted_proxies':[");
	for (i = 0; i < GG_MAX_TRUSTED_PROXIES; i++)
		len += (size_t)snprintf(json + len, sizeof(json) - len,
					"%s'10.0.%d.0/24'", i ? "," : "", i);
	snprintf(json + len, sizeof(json) - len, "]}");
	cfg = parse_ok(json);
	ck_assert_uint_eq(cfg->ntrusted_proxies, GG_MAX_TRUSTED_PROXIES);
	config_free(cfg);
	snprintf(json + len, sizeof(json) - len, ",'10.1.0.0/24']}");
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH, json, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, CFG_PATH ": trusted_proxies: must be an "
					   "array of at most 64 CIDRs");
	gg_err_init(&err);
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH,
				 "{'listen':'h:1','verify_key':'k','upstream':"
				 "{'url':'http://u'},'trusted_proxies':['x',"
				 "'10.0.0.0/8',true]}",
				 &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, CFG_PATH ": trusted_proxies[0]: cidr 'x': "
					   "not an IPv4 or IPv6 address (want "
					   "ADDRESS/LENGTH, e.g. 10.0.0.0/8); "
					   "trusted_proxies[2]: must be a "
					   "string");
}
END_TEST

/* "policy": resolved like every path, relative to the config file. */
START_TEST(test_policy_path)
{
	struct config *cfg = parse_ok(
		"{'listen':'h:1','verify_key':'k','upstream':{'url':'http://u'},"
		"'policy':'policy/site.json'}");

	ck_assert_str_eq(cfg->policy, "/etc/gitgate/policy/site.json");
	config_free(cfg);
	cfg = parse_ok("{'listen':'h:1','verify_key':'k',"
		       "'upstream':{'url':'http://u'},'policy':'/srv/p.json'}");
	ck_assert_str_eq(cfg->policy, "/srv/p.json");
	config_free(cfg);
}
END_TEST

START_TEST(test_fetch_cache)
{
	struct config *cfg = parse_ok(
		"{'listen':'h:1','verify_key':'k','upstream':{'url':'http://u'}}");

	ck_assert(!cfg->fetch_cache); /* off unless enabled */
	ck_assert_uint_eq(cfg->cache_max_size, 50ULL << 30);
	config_free(cfg);
	cfg = parse_ok("{'listen':'h:1','verify_key':'k','upstream':{'url':"
		       "'http://u'},'fetch_cache':{'enabled':true,"
		       "'max_size':'512M'}}");
	ck_assert(cfg->fetch_cache);
	ck_assert_uint_eq(cfg->cache_max_size, 512ULL << 20);
	config_free(cfg);
	cfg = parse_ok("{'listen':'h:1','verify_key':'k','upstream':{'url':"
		       "'http://u'},'fetch_cache':{'enabled':false}}");
	ck_assert(!cfg->fetch_cache);
	config_free(cfg);
}
END_TEST

/* admin_listen: off unless set, and may share listen's port on another
 * host; log_format: text unless "json". */
START_TEST(test_admin_listen_and_log_format)
{
	struct config *cfg = parse_ok(
		"{'listen':'h:1','verify_key':'k','upstream':{'url':'http://u'}}");

	ck_assert_ptr_null(cfg->admin_host);
	ck_assert(!cfg->log_json);
	config_free(cfg);
	cfg = parse_ok("{'listen':'0.0.0.0:8080','verify_key':'k',"
		       "'upstream':{'url':'http://u'},"
		       "'admin_listen':'[::1]:9090','log_format':'json'}");
	ck_assert_str_eq(cfg->admin_host, "::1");
	ck_assert_uint_eq(cfg->admin_port, 9090);
	ck_assert(cfg->log_json);
	config_free(cfg);
	cfg = parse_ok("{'listen':'10.0.0.1:8080','verify_key':'k',"
		       "'upstream':{'url':'http://u'},"
		       "'admin_listen':'127.0.0.1:8080','log_format':'text'}");
	ck_assert_str_eq(cfg->admin_host, "127.0.0.1");
	ck_assert_uint_eq(cfg->admin_port, 8080);
	ck_assert(!cfg->log_json);
	config_free(cfg);
}
END_TEST

/* "tls": both files, resolved like every path; half of it is refused. */
START_TEST(test_tls_paths)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = parse_ok(
		"{'listen':'h:1','verify_key':'k','upstream':{'url':'http://u'},"
		"'tls':{'cert_file':'tls/cert.pem','key_file':'/k/key.pem'}}");

	ck_assert_str_eq(cfg->tls_cert_file, "/etc/gitgate/tls/cert.pem");
	ck_assert_str_eq(cfg->tls_key_file, "/k/key.pem");
	config_free(cfg);
	cfg = parse_ok("{'listen':'h:1','verify_key':'k',"
		       "'upstream':{'url':'http://u'}}");
	ck_assert_ptr_null(cfg->tls_cert_file);
	ck_assert_ptr_null(cfg->tls_key_file);
	config_free(cfg);
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH,
				 "{'listen':'h:1','verify_key':'k',"
				 "'upstream':{'url':'http://u'},"
				 "'tls':{'cert_file':'c','extra':1}}",
				 &err),
			 GG_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err.msg, CFG_PATH ": tls.extra: unknown key; "
				  "tls.key_file: required");
}
END_TEST

START_TEST(test_full)
{
	struct config *cfg = parse_ok(
		"{\n"
		"  'listen': '[::1]:9',\n"
		"  'verify_key': ['keys/new.pub', '/srv/keys/old.pub'],\n"
		"  'upstream': { 'url': 'http://git.example:8080/prefix/',\n"
		"                'token_file': 'github-token' },\n"
		"  'audit_log': '/var/log/gitgate/audit.jsonl',\n"
		"  'revocations': 'state/revoked.txt',\n"
		"  'cache_dir': '/var/cache/gitgate'\n"
		"}\n");

	ck_assert_str_eq(cfg->listen_host, "::1");
	ck_assert_uint_eq(cfg->listen_port, 9);
	ck_assert_uint_eq(cfg->nverify_keys, 2);
	ck_assert_str_eq(cfg->verify_keys[0], "/etc/gitgate/keys/new.pub");
	ck_assert_str_eq(cfg->verify_keys[1], "/srv/keys/old.pub");
	ck_assert_str_eq(cfg->upstream_url, "http://git.example:8080/prefix");
	ck_assert_str_eq(cfg->upstream_token_file, "/etc/gitgate/github-token");
	ck_assert_str_eq(cfg->audit_log, "/var/log/gitgate/audit.jsonl");
	ck_assert_str_eq(cfg->revocations, "/etc/gitgate/state/revoked.txt");
	ck_assert_str_eq(cfg->cache_dir, "/var/cache/gitgate");
	config_free(cfg);
}
END_TEST

START_TEST(test_verify_key_max_entries)
{
	char json[1024];
	struct config *cfg;
	size_t i, len;

	len = (size_t)snprintf(json, sizeof(json),
			       "{'listen':'h:1','upstream':{'url':'https://h'},"
			       "'verify_key':[");
	for (i = 0; i < GG_MAX_KEYS; i++)
		len += (size_t)snprintf(json + len, sizeof(json) - len,
					"%s'k%zu.pub'", i ? "," : "", i);
	snprintf(json + len, sizeof(json) - len, "]}");
	cfg = parse_ok(json);
	ck_assert_uint_eq(cfg->nverify_keys, GG_MAX_KEYS);
	ck_assert_str_eq(cfg->verify_keys[GG_MAX_KEYS - 1],
			 "/etc/gitgate/k15.pub");
	config_free(cfg);
}
END_TEST

START_TEST(test_verify_key_too_many)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;
	char json[1024];
	size_t i, len;

	len = (size_t)snprintf(json, sizeof(json),
			       "{'listen':'h:1','upstream':{'url':'https://h'},"
			       "'verify_key':[");
	for (i = 0; i < GG_MAX_KEYS + 1; i++)
		len += (size_t)snprintf(json + len, sizeof(json) - len,
					"%s'k%zu.pub'", i ? "," : "", i);
	snprintf(json + len, sizeof(json) - len, "]}");
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH, json, &err), GG_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err.msg, CFG_PATH ": verify_key: must be a path or "
				  "an array of 1..16 paths");
}
END_TEST

static const struct {
	const char *url;
	const char *want;
} url_strip[] = {
	{ "https://github.com/", "https://github.com" },
	{ "https://github.com//", "https://github.com" },
	{ "http://h:8080/a/b/", "http://h:8080/a/b" },
	{ "http://h", "http://h" },
};

START_TEST(test_github_app)
{
	struct config *cfg = parse_ok(
		"{'listen':'h:1','verify_key':'k','upstream':{'url':'https://"
		"github.com','github_app':{'app_id':'123456',"
		"'private_key_file':'app.pem'}}}");

	ck_assert(cfg->github_app);
	ck_assert_str_eq(cfg->app_id, "123456");
	ck_assert_str_eq(cfg->app_key_file, "/etc/gitgate/app.pem");
	ck_assert_str_eq(cfg->app_api_url, "https://api.github.com");
	ck_assert_ptr_null(cfg->upstream_token_file);
	config_free(cfg);
	/* an integer id; GitHub Enterprise's API with its trailing slash */
	cfg = parse_ok("{'listen':'h:1','verify_key':'k','upstream':{'url':"
		       "'https://ghe.example','github_app':{'app_id':42,"
		       "'private_key_file':'/k/app.pem','api_url':"
		       "'https://ghe.example/api/v3/'}}}");
	ck_assert_str_eq(cfg->app_id, "42");
	ck_assert_str_eq(cfg->app_key_file, "/k/app.pem");
	ck_assert_str_eq(cfg->app_api_url, "https://ghe.example/api/v3");
	config_free(cfg);
	cfg = parse_ok(MIN_CONFIG);
	ck_assert(!cfg->github_app);
	ck_assert_ptr_null(cfg->app_id);
	config_free(cfg);
}
END_TEST

START_TEST(test_upstream_url_trailing_slash)
{
	char json[256];
	struct config *cfg;

	snprintf(json, sizeof(json),
		 "{'listen':'h:1','verify_key':'k','upstream':{'url':'%s'}}",
		 url_strip[_i].url);
	cfg = parse_ok(json);
	ck_assert_str_eq(cfg->upstream_url, url_strip[_i].want);
	config_free(cfg);
}
END_TEST

START_TEST(test_upstream_url_length)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;
	char url[GG_MAX_URL_LEN], json[GG_MAX_URL_LEN + 128];
	size_t max = GG_MAX_URL_LEN / 2;

	/* The proxy appends "/OWNER/NAME.git/git-receive-pack" (up to ~220
	 * bytes), so the base URL gets half of GG_MAX_URL_LEN. */
	memcpy(url, "https://h/", 10);
	memset(url + 10, 'a', max - 10);
	url[max] = '\0';
	snprintf(json, sizeof(json),
		 "{'listen':'h:1','verify_key':'k','upstream':{'url':'%s'}}",
		 url);
	cfg = parse_ok(json);
	ck_assert_uint_eq(strlen(cfg->upstream_url), max);
	config_free(cfg);

	url[max] = 'a';
	url[max + 1] = '\0';
	snprintf(json, sizeof(json),
		 "{'listen':'h:1','verify_key':'k','upstream':{'url':'%s'}}",
		 url);
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH, json, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, CFG_PATH ": upstream.url: too long");
}
END_TEST

static const struct {
	const char *listen;
	const char *host;
	unsigned short port;
} listen_good[] = {
	{ "127.0.0.1:8080", "127.0.0.1", 8080 },
	{ "[::1]:9", "::1", 9 },
	{ "localhost:1", "localhost", 1 },
	{ "0.0.0.0:65535", "0.0.0.0", 65535 },
	{ "[::]:443", "::", 443 },
	{ "[fe80::1%lo]:80", "fe80::1%lo", 80 },
	{ "[::ffff:127.0.0.1]:8080", "::ffff:127.0.0.1", 8080 },
	{ "host:0080", "host", 80 },
};

START_TEST(test_listen_good)
{
	char json[256];
	struct config *cfg;

	snprintf(json, sizeof(json),
		 "{'listen':'%s','verify_key':'k',"
		 "'upstream':{'url':'http://u'}}",
		 listen_good[_i].listen);
	cfg = parse_ok(json);
	ck_assert_str_eq(cfg->listen_host, listen_good[_i].host);
	ck_assert_uint_eq(cfg->listen_port, listen_good[_i].port);
	config_free(cfg);
}
END_TEST

/* Each way to get listen wrong has its own message. */
static const struct {
	const char *listen;
	const char *msg;
} listen_bad[] = {
	{ "8080", "missing host (want HOST:PORT, e.g. 127.0.0.1:8080)" },
	{ ":80", "missing host (want HOST:PORT, e.g. 127.0.0.1:8080)" },
	{ "localhost", "missing port (want HOST:PORT, e.g. 127.0.0.1:8080)" },
	{ "host:", "missing port (want HOST:PORT, e.g. 127.0.0.1:8080)" },
	{ "host:0", "port 0 out of range 1-65535" },
	{ "host:65536", "port 65536 out of range 1-65535" },
	{ "host:70000", "port 70000 out of range 1-65535" },
	{ "host:99999999999999999999",
	  "port 99999999999999999999 out of range 1-65535" },
	{ "host:80x", "port '80x' is not a number" },
	{ "host:-1", "port '-1' is not a number" },
	{ "host:0x50", "port '0x50' is not a number" },
	/* A port is digits only: strtol's leading blanks and sign are not
	 * part of HOST:PORT. */
	{ "host: 80", "port ' 80' is not a number" },
	{ "host:+80", "port '+80' is not a number" },
	{ "a:b:c", "an IPv6 address needs brackets (e.g. [::1]:8080)" },
	{ "::1:80", "an IPv6 address needs brackets (e.g. [::1]:8080)" },
	{ "[::1]", "missing port (want HOST:PORT, e.g. 127.0.0.1:8080)" },
	{ "[::1]:", "missing port (want HOST:PORT, e.g. 127.0.0.1:8080)" },
	{ "[::1]:0", "port 0 out of range 1-65535" },
	{ "[]:80", "empty IPv6 address in '[]'" },
	{ "[::1]x:80", "expected ':PORT' after ']'" },
	{ "[::1:80", "missing ']' after the IPv6 address" },
	{ "[localhost]:80", "'localhost' in brackets is not an IPv6 address" },
	{ "[127.0.0.1]:80", "'127.0.0.1' in brackets is not an IPv6 address" },
	{ "[[::1]]:80", "'[::1' in brackets is not an IPv6 address" },
	{ "host]:80", "'[' and ']' go only around an IPv6 address "
		      "(e.g. [::1]:8080)" },
	{ "a[b:80", "'[' and ']' go only around an IPv6 address "
		    "(e.g. [::1]:8080)" },
};

START_TEST(test_listen_bad)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;
	char json[256], want[GG_ERR_MSG_MAX];

	snprintf(json, sizeof(json),
		 "{'listen':'%s','verify_key':'k',"
		 "'upstream':{'url':'http://u'}}",
		 listen_bad[_i].listen);
	snprintf(want, sizeof(want), "%s: listen: %s", CFG_PATH,
		 listen_bad[_i].msg);
	ck_assert_msg(parse_q(&cfg, CFG_PATH, json, &err) == GG_EINVAL,
		      "listen \"%s\" accepted", listen_bad[_i].listen);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

/* A host name of exactly 255 bytes is fine; 256 is not. */
START_TEST(test_listen_host_length)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;
	char host[257], json[512];

	memset(host, 'h', 255);
	host[255] = '\0';
	snprintf(json, sizeof(json),
		 "{'listen':'%s:1','verify_key':'k',"
		 "'upstream':{'url':'http://u'}}", host);
	cfg = parse_ok(json);
	ck_assert_str_eq(cfg->listen_host, host);
	config_free(cfg);
	host[255] = 'h';
	host[256] = '\0';
	snprintf(json, sizeof(json),
		 "{'listen':'%s:1','verify_key':'k',"
		 "'upstream':{'url':'http://u'}}", host);
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH, json, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, CFG_PATH ": listen: host longer than 255 "
				  "bytes");
}
END_TEST

#define VK "'verify_key':'k'"
#define UP "'upstream':{'url':'https://h'}"
#define LI "'listen':'h:1'"

/* One problem each; the message is exactly "<path>: <what>". */
static const struct {
	const char *json;
	const char *msg;
} bad_one[] = {
	/* missing required keys */
	{ "{" VK "," UP "}", "listen: required" },
	{ "{" LI "," UP "}", "verify_key: required" },
	{ "{" LI "," VK "}", "upstream: required" },
	{ "{" LI "," VK ",'upstream':{}}", "upstream.url: required" },
	{ "{" LI "," VK ",'upstream':{'token_file':'t'}}",
	  "upstream.url: required" },
	/* unknown keys, named with their full path */
	{ "{" LI "," VK "," UP ",'listn':'h:1'}", "listn: unknown key" },
	{ "{" LI "," VK ",'upstream':{'url':'https://h','token':'x'}}",
	  "upstream.token: unknown key" },
	{ "{" LI "," VK "," UP ",'bad\\u0001key':1}", "bad?key: unknown key" },
	/* wrong types */
	{ "{'listen':8080," VK "," UP "}",
	  "listen: must be a non-empty string" },
	{ "{'listen':null," VK "," UP "}",
	  "listen: must be a non-empty string" },
	{ "{" LI ",'verify_key':5," UP "}",
	  "verify_key: must be a path or an array of 1..16 paths" },
	{ "{" LI ",'verify_key':{'a':'b'}," UP "}",
	  "verify_key: must be a path or an array of 1..16 paths" },
	{ "{" LI ",'verify_key':true," UP "}",
	  "verify_key: must be a path or an array of 1..16 paths" },
	{ "{" LI ",'verify_key':[]," UP "}",
	  "verify_key: must be a path or an array of 1..16 paths" },
	{ "{" LI ",'verify_key':['a',5]," UP "}",
	  "verify_key[1]: must be a non-empty string" },
	{ "{" LI ",'verify_key':['a',['b']]," UP "}",
	  "verify_key[1]: must be a non-empty string" },
	/* the same file twice, also when spelled differently */
	{ "{" LI ",'verify_key':['a.pub','b.pub','a.pub']," UP "}",
	  "verify_key[2]: same file as verify_key[0]" },
	{ "{" LI ",'verify_key':['k.pub','/etc/gitgate/k.pub']," UP "}",
	  "verify_key[1]: same file as verify_key[0]" },
	{ "{" LI "," VK ",'upstream':'https://h'}",
	  "upstream: must be an object" },
	{ "{" LI "," VK ",'upstream':['https://h']}",
	  "upstream: must be an object" },
	{ "{" LI "," VK ",'upstream':{'url':5}}",
	  "upstream.url: must be a non-empty string" },
	{ "{" LI "," VK ",'upstream':{'url':'https://h','token_file':true}}",
	  "upstream.token_file: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'audit_log':5}",
	  "audit_log: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'revocations':null}",
	  "revocations: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'cache_dir':['c']}",
	  "cache_dir: must be a non-empty string" },
	/* empty strings */
	{ "{'listen':''," VK "," UP "}", "listen: must be a non-empty string" },
	{ "{" LI ",'verify_key':''," UP "}",
	  "verify_key[0]: must be a non-empty string" },
	{ "{" LI ",'verify_key':['a','']," UP "}",
	  "verify_key[1]: must be a non-empty string" },
	{ "{" LI "," VK ",'upstream':{'url':''}}",
	  "upstream.url: must be a non-empty string" },
	{ "{" LI "," VK ",'upstream':{'url':'https://h','token_file':''}}",
	  "upstream.token_file: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'audit_log':''}",
	  "audit_log: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'revocations':''}",
	  "revocations: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'cache_dir':''}",
	  "cache_dir: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'policy':''}",
	  "policy: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'policy':true}",
	  "policy: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'policy':{'file':'p.json'}}",
	  "policy: must be a non-empty string" },
	/* trusted_proxies */
	{ "{" LI "," VK "," UP ",'trusted_proxies':'10.0.0.0/8'}",
	  "trusted_proxies: must be an array of at most 64 CIDRs" },
	{ "{" LI "," VK "," UP ",'trusted_proxies':{'a':'10.0.0.0/8'}}",
	  "trusted_proxies: must be an array of at most 64 CIDRs" },
	{ "{" LI "," VK "," UP ",'trusted_proxies':['10.0.0.0/8',7]}",
	  "trusted_proxies[1]: must be a string" },
	{ "{" LI "," VK "," UP ",'trusted_proxies':['proxy.internal']}",
	  "trusted_proxies[0]: cidr 'proxy.internal': not an IPv4 or IPv6 "
	  "address (want ADDRESS/LENGTH, e.g. 10.0.0.0/8)" },
	{ "{" LI "," VK "," UP ",'trusted_proxies':['10.0.0.0/33']}",
	  "trusted_proxies[0]: cidr '10.0.0.0/33': prefix length must be a "
	  "number 0-32" },
	{ "{" LI "," VK "," UP ",'trusted_proxies':['10.0.0.1/8']}",
	  "trusted_proxies[0]: cidr '10.0.0.1/8': address has bits set after "
	  "the prefix (did you mean 10.0.0.0/8?)" },
	{ "{" LI "," VK "," UP ",'trusted_proxies':['']}",
	  "trusted_proxies[0]: cidr '': want ADDRESS/LENGTH (e.g. 10.0.0.0/8 "
	  "or 2001:db8::/32)" },
	/* upstream.url shape */
	{ "{" LI "," VK ",'upstream':{'url':'ftp://h'}}",
	  "upstream.url: must start with http:// or https://" },
	{ "{" LI "," VK ",'upstream':{'url':'github.com'}}",
	  "upstream.url: must start with http:// or https://" },
	{ "{" LI "," VK ",'upstream':{'url':'file:///etc/passwd'}}",
	  "upstream.url: must start with http:// or https://" },
	{ "{" LI "," VK ",'upstream':{'url':'https://u:p@h'}}",
	  "upstream.url: must not contain credentials, query or fragment" },
	{ "{" LI "," VK ",'upstream':{'url':'https://tok@h/'}}",
	  "upstream.url: must not contain credentials, query or fragment" },
	{ "{" LI "," VK ",'upstream':{'url':'https://h/?a=b'}}",
	  "upstream.url: must not contain credentials, query or fragment" },
	{ "{" LI "," VK ",'upstream':{'url':'https://h/#top'}}",
	  "upstream.url: must not contain credentials, query or fragment" },
	/* upstream.github_app */
#define APP(body) "{" LI "," VK ",'upstream':{'url':'https://h'," body "}}"
	{ APP("'github_app':true"), "upstream.github_app: must be an object" },
	{ APP("'github_app':{'private_key_file':'k.pem'}"),
	  "upstream.github_app.app_id: required" },
	{ APP("'github_app':{'app_id':'123'}"),
	  "upstream.github_app.private_key_file: required" },
	{ APP("'github_app':{'app_id':'12a','private_key_file':'k.pem'}"),
	  "upstream.github_app.app_id: must be a string of digits" },
	{ APP("'github_app':{'app_id':'','private_key_file':'k.pem'}"),
	  "upstream.github_app.app_id: must be a string of digits" },
	{ APP("'github_app':{'app_id':12.5,'private_key_file':'k.pem'}"),
	  "upstream.github_app.app_id: must be a string of digits" },
	{ APP("'github_app':{'app_id':-4,'private_key_file':'k.pem'}"),
	  "upstream.github_app.app_id: must be a string of digits" },
	{ APP("'github_app':{'app_id':'123456789012345678901',"
	      "'private_key_file':'k.pem'}"),
	  "upstream.github_app.app_id: must be a string of digits" },
	{ APP("'github_app':{'app_id':'1','private_key_file':'k.pem',"
	      "'api_url':'ftp://h'}"),
	  "upstream.github_app.api_url: must start with http:// or https://" },
	{ APP("'github_app':{'app_id':'1','private_key_file':'k.pem',"
	      "'api_url':'https://x:y@h'}"),
	  "upstream.github_app.api_url: must not contain credentials, query "
	  "or fragment" },
	{ APP("'github_app':{'app_id':'1','private_key_file':'k.pem',"
	      "'api_url':5}"),
	  "upstream.github_app.api_url: must be a non-empty string" },
	{ APP("'github_app':{'app_id':'1','private_key_file':'k.pem',"
	      "'key':'x'}"),
	  "upstream.github_app.key: unknown key" },
	{ APP("'token_file':'t','github_app':{'app_id':'1',"
	      "'private_key_file':'k.pem'}"),
	  "upstream: upstream.token_file and upstream.github_app are both "
	  "set: keep exactly one" },
#undef APP
	/* admin_listen, log_format */
	{ "{" LI "," VK "," UP ",'admin_listen':'h:1'}",
	  "admin_listen: must differ from listen (the admin listener is never "
	  "the sandbox-facing one)" },
	{ "{" LI "," VK "," UP ",'admin_listen':'127.0.0.1'}",
	  "admin_listen: missing port (want HOST:PORT, e.g. "
	  "127.0.0.1:8080)" },
	{ "{" LI "," VK "," UP ",'admin_listen':'h:0'}",
	  "admin_listen: port 0 out of range 1-65535" },
	{ "{" LI "," VK "," UP ",'admin_listen':9090}",
	  "admin_listen: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'log_format':'yaml'}",
	  "log_format: must be \"text\" or \"json\"" },
	{ "{" LI "," VK "," UP ",'log_format':true}",
	  "log_format: must be a non-empty string" },
	/* fetch_cache */
	{ "{" LI "," VK "," UP ",'fetch_cache':true}",
	  "fetch_cache: must be an object" },
	{ "{" LI "," VK "," UP ",'fetch_cache':{'enabled':'yes'}}",
	  "fetch_cache.enabled: must be true or false" },
	{ "{" LI "," VK "," UP ",'fetch_cache':{'enabled':true,'size':'1G'}}",
	  "fetch_cache.size: unknown key" },
	{ "{" LI "," VK "," UP ",'fetch_cache':{'max_size':50}}",
	  "fetch_cache.max_size: must be a non-empty string" },
	{ "{" LI "," VK "," UP ",'fetch_cache':{'max_size':'50GB'}}",
	  "fetch_cache.max_size: \"50GB\" is not a size: want digits and at "
	  "most one unit, B, K, M or G (e.g. \"50M\")" },
};

START_TEST(test_bad_one)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;
	char want[GG_ERR_MSG_MAX];

	snprintf(want, sizeof(want), "%s: %s", CFG_PATH, bad_one[_i].msg);
	ck_assert_msg(parse_q(&cfg, CFG_PATH, bad_one[_i].json, &err) ==
			      GG_EINVAL,
		      "accepted: %s", bad_one[_i].json);
	ck_assert_int_eq(err.code, GG_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

START_TEST(test_url_credentials_not_echoed)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;

	/* Whoever pasted a credential into the URL must not find it in the
	 * journal. */
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH,
				 "{" LI "," VK ",'upstream':{'url':"
				 "'https://x-access-token:ghp_TOPSECRET@h'}}",
				 &err),
			 GG_EINVAL);
	ck_assert_ptr_null(strstr(err.msg, "TOPSECRET"));
}
END_TEST

/* A URL with no host would only fail at the first request, as
 * "https:/o/n.git/..." once the trailing slashes are stripped. */
static const char *const url_no_host[] = {
	"https://", "http://", "https:///", "http:///o/n",
};

START_TEST(test_url_without_host)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;
	char json[256];

	snprintf(json, sizeof(json),
		 "{" LI "," VK ",'upstream':{'url':'%s'}}", url_no_host[_i]);
	ck_assert_msg(parse_q(&cfg, CFG_PATH, json, &err) == GG_EINVAL,
		      "upstream.url \"%s\" accepted as \"%s\"",
		      url_no_host[_i],
		      cfg ? cfg->upstream_url : "");
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(strstr(err.msg, "upstream.url: "));
}
END_TEST

START_TEST(test_all_problems_reported)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;

	ck_assert_int_eq(parse_q(&cfg, CFG_PATH, "{}", &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, CFG_PATH ": listen: required; "
				  "verify_key: required; upstream: required");

	gg_err_init(&err);
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH,
				 "{'bogus':true,'listen':5,'verify_key':[],"
				 "'upstream':{'url':'ftp://x','extra':1}}",
				 &err),
			 GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "bogus: unknown key"));
	ck_assert_ptr_nonnull(
		strstr(err.msg, "listen: must be a non-empty string"));
	ck_assert_ptr_nonnull(strstr(err.msg, "verify_key: must be a path"));
	ck_assert_ptr_nonnull(strstr(err.msg, "upstream.extra: unknown key"));
	ck_assert_ptr_nonnull(
		strstr(err.msg, "upstream.url: must start with http://"));
}
END_TEST

START_TEST(test_many_problems_truncated)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;
	char json[8192];
	size_t len = 0;
	int i;

	len += (size_t)snprintf(json, sizeof(json), "{");
	for (i = 0; i < 60; i++)
		len += (size_t)snprintf(json + len, sizeof(json) - len,
					"%s'unknown_key_number_%02d_"
					"padding_padding_padding':1",
					i ? "," : "", i);
	snprintf(json + len, sizeof(json) - len, "}");
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH, json, &err), GG_EINVAL);
	ck_assert_uint_eq(strlen(err.msg), GG_ERR_MSG_MAX - 1);
	ck_assert_ptr_nonnull(
		strstr(err.msg, CFG_PATH ": unknown_key_number_00_"));
}
END_TEST

START_TEST(test_long_unknown_key_shortened)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;
	char json[512], key[201];

	memset(key, 'k', 200);
	key[200] = '\0';
	snprintf(json, sizeof(json), "{" LI "," VK "," UP ",'%s':1}", key);
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH, json, &err), GG_EINVAL);
	/* An attacker-sized key name must not crowd out the other problems. */
	ck_assert_ptr_nonnull(strstr(err.msg, "kkk...: unknown key"));
	ck_assert_uint_lt(strlen(err.msg), 120);
}
END_TEST

START_TEST(test_not_json)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;

	ck_assert_int_eq(parse_q(&cfg, CFG_PATH,
				 "{\n  'listen': '127.0.0.1:8080',\n  oops\n}",
				 &err),
			 GG_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(!strncmp(err.msg, CFG_PATH ":3:", strlen(CFG_PATH) + 3),
		      "no path:line:col in \"%s\"", err.msg);
	ck_assert_str_eq(err.msg, CFG_PATH ":3:6: string or '}' expected "
				  "near 'oops'");
}
END_TEST

static const char *const not_json[] = {
	"", "{", "   ", "{'listen':}", "{} {}", "{'a':1,}", "'just a string'",
	"5", "nul", "{'a':'\\u0000'}", "{'a':'\xff'}",
};

START_TEST(test_not_json_table)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;

	ck_assert_int_eq(parse_q(&cfg, CFG_PATH, not_json[_i], &err),
			 GG_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(!strncmp(err.msg, CFG_PATH ":1:", strlen(CFG_PATH) + 3),
		      "no path:line:col in \"%s\"", err.msg);
}
END_TEST

START_TEST(test_not_an_object)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;

	ck_assert_int_eq(parse_q(&cfg, CFG_PATH, "['listen']", &err),
			 GG_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err.msg, CFG_PATH ": must be a JSON object");
}
END_TEST

START_TEST(test_duplicate_keys)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;

	/* Two "listen"s: which one wins would depend on the parser. */
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH,
				 "{'listen':'h:1'," VK "," UP
				 ",'listen':'0.0.0.0:2'}",
				 &err),
			 GG_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(strstr(err.msg, "duplicate object key"));

	gg_err_init(&err);
	ck_assert_int_eq(parse_q(&cfg, CFG_PATH,
				 "{" LI "," VK ",'upstream':{'url':'https://a',"
				 "'url':'https://b'}}",
				 &err),
			 GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "duplicate object key"));
}
END_TEST

START_TEST(test_embedded_nul_in_text)
{
	static const char text[] = "{\"listen\":\"h:1\"}\0{}";
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;

	/* len, not the NUL, delimits the file: a NUL byte is not JSON. */
	ck_assert_int_eq(config_parse(&cfg, CFG_PATH, text, sizeof(text) - 1,
				      &err),
			 GG_EINVAL);
	ck_assert_ptr_null(cfg);
}
END_TEST

START_TEST(test_relative_config_path)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;

	ck_assert_int_eq(parse_q(&cfg, "config.json", MIN_CONFIG, &err),
			 GG_OK);
	ck_assert_str_eq(cfg->verify_keys[0], "./keys/verify.pub");
	ck_assert_str_eq(cfg->audit_log, "./audit.jsonl");
	config_free(cfg);

	ck_assert_int_eq(parse_q(&cfg, "conf/gitgate.json", MIN_CONFIG, &err),
			 GG_OK);
	ck_assert_str_eq(cfg->verify_keys[0], "conf/keys/verify.pub");
	config_free(cfg);
}
END_TEST

START_TEST(test_config_in_root_dir)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;

	/* "//x" is implementation-defined in POSIX and looks wrong in logs. */
	ck_assert_int_eq(parse_q(&cfg, "/config.json", MIN_CONFIG, &err),
			 GG_OK);
	ck_assert_str_eq(cfg->verify_keys[0], "/keys/verify.pub");
	ck_assert_str_eq(cfg->cache_dir, "/cache");
	config_free(cfg);
}
END_TEST

/* --- config_load and the upstream secret: real files in a temp dir --- */

static char tmpdir[64];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/gg-test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	/* Tests run in any order in one process under CK_FORK=no. */
	unsetenv("GITGATE_UPSTREAM_TOKEN");
}

static void remove_tmpdir(void)
{
	char path[384];
	struct dirent *de;
	DIR *d = opendir(tmpdir);

	unsetenv("GITGATE_UPSTREAM_TOKEN");
	/* The tests only create plain files directly in tmpdir. */
	while (d && (de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

/* Write a file in tmpdir with exactly this mode; returns its path
 * (static buffer). */
static const char *put_file(const char *name, const void *data, size_t len,
			    mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	/* fchmod, not open's mode: the umask must not change the test. */
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

START_TEST(test_load_ok)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;
	const char *json = "{\"listen\":\"127.0.0.1:1\",\"verify_key\":"
			   "\"v.pub\",\"upstream\":{\"url\":\"https://h\","
			   "\"token_file\":\"tok\"}}\n";
	char want[128];
	const char *path = put_file("config.json", json, strlen(json), 0644);

	ck_assert_int_eq(config_load(&cfg, path, &err), GG_OK);
	ck_assert_str_eq(cfg->path, path);
	snprintf(want, sizeof(want), "%s/v.pub", tmpdir);
	ck_assert_str_eq(cfg->verify_keys[0], want);
	snprintf(want, sizeof(want), "%s/tok", tmpdir);
	ck_assert_str_eq(cfg->upstream_token_file, want);
	config_free(cfg);
}
END_TEST

START_TEST(test_load_missing)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;
	char path[128], want[256];

	snprintf(path, sizeof(path), "%s/nope.json", tmpdir);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	ck_assert_int_eq(config_load(&cfg, path, &err), GG_EIO);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

START_TEST(test_load_directory)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;
	char want[256];

	snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
	ck_assert_int_eq(config_load(&cfg, tmpdir, &err), GG_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err.msg, want);
}
END_TEST


START_TEST(test_load_size_limit)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;
	const char *head = "{\"listen\":\"h:1\",\"verify_key\":\"k\","
			   "\"upstream\":{\"url\":\"https://h\"}}";
	char *big = malloc(GG_MAX_CONFIG_LEN + 1), want[256];
	const char *path;

	ck_assert_ptr_nonnull(big);
	/* A valid config padded with whitespace to exactly the limit loads. */
	memset(big, ' ', GG_MAX_CONFIG_LEN + 1);
	memcpy(big, head, strlen(head));
	path = put_file("exact.json", big, GG_MAX_CONFIG_LEN, 0644);
	ck_assert_int_eq(config_load(&cfg, path, &err), GG_OK);
	config_free(cfg);

	/* One byte more is refused before parsing. */
	path = put_file("big.json", big, GG_MAX_CONFIG_LEN + 1, 0644);
	snprintf(want, sizeof(want), "%s: larger than %d bytes", path,
		 GG_MAX_CONFIG_LEN);
	ck_assert_int_eq(config_load(&cfg, path, &err), GG_ELIMIT);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err.msg, want);
	free(big);
}
END_TEST

START_TEST(test_load_reports_bad_config)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg;
	const char *path = put_file("bad.json", "{\n\"x\"\n}", 7, 0644);
	char want[128];

	/* jansson reports where it noticed: the '}' on line 3. */
	snprintf(want, sizeof(want), "%s:3:1: ", path);
	ck_assert_int_eq(config_load(&cfg, path, &err), GG_EINVAL);
	ck_assert_msg(!strncmp(err.msg, want, strlen(want)), "got \"%s\"",
		      err.msg);
}
END_TEST

#define SECRET "ghp_S3CRETVALUE0123456789"

static int load_secret(char **out, const char *token_file,
		       struct gg_err *err)
{
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.upstream_token_file = (char *)token_file;
	return config_load_upstream_secret(out, &cfg, err);
}

/* A FIFO blocks open() until a writer comes: refused at once instead, for
 * the config and for the upstream secret file alike. */
START_TEST(test_load_fifo_refused)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = (struct config *)1;
	char path[128], want[256], *s = (char *)1;

	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	alarm(3); /* a regression hangs: fail fast instead */
	snprintf(want, sizeof(want), "%s: not a regular file", path);
	ck_assert_int_eq(config_load(&cfg, path, &err), GG_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err.msg, want);

	unsetenv("GITGATE_UPSTREAM_TOKEN");
	gg_err_init(&err);
	ck_assert_int_eq(load_secret(&s, path, &err), GG_EINVAL);
	ck_assert_ptr_null(s);
	snprintf(want, sizeof(want),
		 "upstream.token_file: %s: not a regular file", path);
	ck_assert_str_eq(err.msg, want);
	alarm(0);
}
END_TEST

START_TEST(test_secret_env_and_file_refused)
{
	struct gg_err err = GG_ERR_INIT;
	const char *path = put_file("tok", "from-file", 9, 0600);
	struct config cfg;
	char *s = (char *)1;

	/* Two sources: which one is meant cannot be guessed. */
	setenv("GITGATE_UPSTREAM_TOKEN", SECRET, 1);
	ck_assert_int_eq(load_secret(&s, path, &err), GG_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err.msg, "upstream: GITGATE_UPSTREAM_TOKEN and "
				  "upstream.token_file are both set: keep "
				  "exactly one of upstream.token_file, "
				  "GITGATE_UPSTREAM_TOKEN and "
				  "upstream.github_app");
	ck_assert_ptr_null(strstr(err.msg, "S3CRET"));

	memset(&cfg, 0, sizeof(cfg));
	cfg.github_app = true;
	gg_err_init(&err);
	ck_assert_int_eq(config_check_upstream_source(&cfg, &err), GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "GITGATE_UPSTREAM_TOKEN and "
					      "upstream.github_app are both"));
	/* the App alone is one source, but has no static secret */
	unsetenv("GITGATE_UPSTREAM_TOKEN");
	gg_err_init(&err);
	ck_assert_int_eq(config_check_upstream_source(&cfg, &err), GG_OK);
	ck_assert_int_eq(config_load_upstream_secret(&s, &cfg, &err),
			 GG_EINVAL);
	cfg.github_app = false;
	gg_err_init(&err);
	ck_assert_int_eq(config_check_upstream_source(&cfg, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "upstream: no credential: set one of "
				  "upstream.token_file, GITGATE_UPSTREAM_TOKEN "
				  "or upstream.github_app");

	setenv("GITGATE_UPSTREAM_TOKEN", SECRET "\n", 1);
	gg_err_init(&err);
	ck_assert_int_eq(load_secret(&s, NULL, &err), GG_OK);
	ck_assert_str_eq(s, SECRET);
	config_secret_free(s);
	config_secret_free(NULL);
}
END_TEST

START_TEST(test_secret_env_empty_falls_back)
{
	struct gg_err err = GG_ERR_INIT;
	const char *path = put_file("tok", SECRET "\n", strlen(SECRET) + 1,
				    0600);
	char *s = NULL;

	setenv("GITGATE_UPSTREAM_TOKEN", "", 1);
	ck_assert_int_eq(load_secret(&s, path, &err), GG_OK);
	ck_assert_str_eq(s, SECRET);
	config_secret_free(s);
}
END_TEST

START_TEST(test_secret_env_multiline)
{
	struct gg_err err = GG_ERR_INIT;
	char *s = (char *)1;

	setenv("GITGATE_UPSTREAM_TOKEN", SECRET "\nsecond", 1);
	ck_assert_int_eq(load_secret(&s, NULL, &err), GG_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err.msg, "GITGATE_UPSTREAM_TOKEN: upstream secret "
				  "must be one line");
	ck_assert_ptr_null(strstr(err.msg, "S3CRET"));
}
END_TEST

static const struct {
	const char *content;
	mode_t mode;
} secret_files_ok[] = {
	{ SECRET, 0600 },
	{ SECRET "\n", 0600 },
	{ SECRET "\r\n", 0600 },
	{ SECRET "\n", 0400 },
	{ SECRET "\n", 0700 },
};

START_TEST(test_secret_file_ok)
{
	struct gg_err err = GG_ERR_INIT;
	const char *c = secret_files_ok[_i].content;
	const char *path = put_file("tok", c, strlen(c),
				    secret_files_ok[_i].mode);
	char *s = NULL;

	ck_assert_int_eq(load_secret(&s, path, &err), GG_OK);
	ck_assert_str_eq(s, SECRET);
	config_secret_free(s);
}
END_TEST

static const mode_t too_open[] = { 0644, 0640, 0604, 0660, 0610, 0601 };

START_TEST(test_secret_file_too_open)
{
	struct gg_err err = GG_ERR_INIT;
	const char *path = put_file("tok", SECRET "\n", strlen(SECRET) + 1,
				    too_open[_i]);
	char *s = (char *)1, want[256];

	snprintf(want, sizeof(want),
		 "upstream.token_file: %s: permissions %04o are too open "
		 "(want 0600)",
		 path, (unsigned)too_open[_i]);
	ck_assert_int_eq(load_secret(&s, path, &err), GG_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err.msg, want);
	ck_assert_ptr_null(strstr(err.msg, "S3CRET"));
}
END_TEST

START_TEST(test_secret_file_0644_message)
{
	struct gg_err err = GG_ERR_INIT;
	const char *path = put_file("tok", SECRET, strlen(SECRET), 0644);
	char *s;

	ck_assert_int_eq(load_secret(&s, path, &err), GG_EINVAL);
	ck_assert_ptr_nonnull(
		strstr(err.msg, "permissions 0644 are too open"));
}
END_TEST

START_TEST(test_secret_file_missing)
{
	struct gg_err err = GG_ERR_INIT;
	char path[128], want[256];
	char *s = (char *)1;

	snprintf(path, sizeof(path), "%s/absent", tmpdir);
	snprintf(want, sizeof(want), "upstream.token_file: %s: %s", path,
		 strerror(ENOENT));
	ck_assert_int_eq(load_secret(&s, path, &err), GG_EIO);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

static const char *const secret_files_bad[] = {
	"", "\n", "\r\n", "\n\n",
};

START_TEST(test_secret_file_empty)
{
	struct gg_err err = GG_ERR_INIT;
	const char *c = secret_files_bad[_i];
	const char *path = put_file("tok", c, strlen(c), 0600);
	char *s = (char *)1;

	ck_assert_int_eq(load_secret(&s, path, &err), GG_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err.msg,
			 "upstream.token_file: upstream secret is empty");
}
END_TEST

START_TEST(test_secret_file_multiline)
{
	struct gg_err err = GG_ERR_INIT;
	const char *c = SECRET "\nghp_OTHERLINE\n";
	const char *path = put_file("tok", c, strlen(c), 0600);
	char *s = (char *)1;

	ck_assert_int_eq(load_secret(&s, path, &err), GG_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err.msg, "upstream.token_file: upstream secret must "
				  "be one line");
	ck_assert_ptr_null(strstr(err.msg, "S3CRET"));
	ck_assert_ptr_null(strstr(err.msg, "OTHERLINE"));
}
END_TEST

START_TEST(test_secret_file_nul)
{
	static const char c[] = SECRET "\0tail";
	struct gg_err err = GG_ERR_INIT;
	const char *path = put_file("tok", c, sizeof(c) - 1, 0600);
	char *s = (char *)1;

	/* A NUL would silently cut the credential libcurl sends. */
	ck_assert_int_eq(load_secret(&s, path, &err), GG_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_ptr_null(strstr(err.msg, "S3CRET"));
}
END_TEST

START_TEST(test_secret_file_too_big)
{
	struct gg_err err = GG_ERR_INIT;
	char big[GG_MAX_KEYFILE_LEN + 1];
	const char *path;
	char *s = (char *)1;

	memset(big, 'A', sizeof(big));
	memcpy(big, SECRET, strlen(SECRET));
	path = put_file("tok", big, sizeof(big), 0600);
	ck_assert_int_eq(load_secret(&s, path, &err), GG_ELIMIT);
	ck_assert_ptr_null(s);
	ck_assert_ptr_null(strstr(err.msg, "S3CRET"));
	ck_assert_ptr_nonnull(strstr(err.msg, "larger than 1024 bytes"));
}
END_TEST

START_TEST(test_secret_none)
{
	struct gg_err err = GG_ERR_INIT;
	char *s = (char *)1;

	unsetenv("GITGATE_UPSTREAM_TOKEN");
	ck_assert_int_eq(load_secret(&s, NULL, &err), GG_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err.msg, "upstream: no credential: set one of "
				  "upstream.token_file, GITGATE_UPSTREAM_TOKEN "
				  "or upstream.github_app");
	setenv("GITGATE_UPSTREAM_TOKEN", "", 1);
	gg_err_init(&err);
	s = (char *)1;
	ck_assert_int_eq(load_secret(&s, NULL, &err), GG_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err.msg, "upstream: no credential: set one of "
				  "upstream.token_file, GITGATE_UPSTREAM_TOKEN "
				  "or upstream.github_app");
	unsetenv("GITGATE_UPSTREAM_TOKEN");
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parse");
	TCase *files = tcase_create("files");

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
	tcase_add_test(tc, test_minimal);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_policy_path);
	tcase_add_test(tc, test_fetch_cache);
	tcase_add_test(tc, test_admin_listen_and_log_format);
	tcase_add_test(tc, test_tls_paths);
	tcase_add_test(tc, test_trusted_proxies);
	tcase_add_test(tc, test_trusted_proxies_limits);
	tcase_add_test(tc, test_github_app);
	tcase_add_test(tc, test_verify_key_max_entries);
	tcase_add_test(tc, test_verify_key_too_many);
	tcase_add_loop_test(tc, test_upstream_url_trailing_slash, 0,
			    N(url_strip));
	tcase_add_test(tc, test_upstream_url_length);
	tcase_add_loop_test(tc, test_listen_good, 0, N(listen_good));
	tcase_add_loop_test(tc, test_listen_bad, 0, N(listen_bad));
	tcase_add_test(tc, test_listen_host_length);
	tcase_add_loop_test(tc, test_bad_one, 0, N(bad_one));
	tcase_add_test(tc, test_url_credentials_not_echoed);
	tcase_add_loop_test(tc, test_url_without_host, 0, N(url_no_host));
	tcase_add_test(tc, test_all_problems_reported);
	tcase_add_test(tc, test_many_problems_truncated);
	tcase_add_test(tc, test_long_unknown_key_shortened);
	tcase_add_test(tc, test_not_json);
	tcase_add_loop_test(tc, test_not_json_table, 0, N(not_json));
	tcase_add_test(tc, test_not_an_object);
	tcase_add_test(tc, test_duplicate_keys);
	tcase_add_test(tc, test_embedded_nul_in_text);
	tcase_add_test(tc, test_relative_config_path);
	tcase_add_test(tc, test_config_in_root_dir);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(files, make_tmpdir, remove_tmpdir);
	tcase_add_test(files, test_load_ok);
	tcase_add_test(files, test_load_missing);
	tcase_add_test(files, test_load_directory);
	tcase_add_test(files, test_load_fifo_refused);
	tcase_add_test(files, test_load_size_limit);
	tcase_add_test(files, test_load_reports_bad_config);
	tcase_add_test(files, test_secret_env_and_file_refused);
	tcase_add_test(files, test_secret_env_empty_falls_back);
	tcase_add_test(files, test_secret_env_multiline);
	tcase_add_loop_test(files, test_secret_file_ok, 0,
			    N(secret_files_ok));
	tcase_add_loop_test(files, test_secret_file_too_open, 0, N(too_open));
	tcase_add_test(files, test_secret_file_0644_message);
	tcase_add_test(files, test_secret_file_missing);
	tcase_add_loop_test(files, test_secret_file_empty, 0,
			    N(secret_files_bad));
	tcase_add_test(files, test_secret_file_multiline);
	tcase_add_test(files, test_secret_file_nul);
	tcase_add_test(files, test_secret_file_too_big);
	tcase_add_test(files, test_secret_none);
	suite_add_tcase(s, files);
#undef N
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

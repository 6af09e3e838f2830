/*
 * config.h - the JSON config file of ../shared/interface.md.
 *
 * Loaded with jansson (duplicate keys rejected), validated strictly: unknown
 * keys, wrong types and missing required keys are all collected and
 * reported together ("config.json: upstream.url: required"), then refused.
 * Relative paths are resolved against the config file's directory, so every
 * path in struct config is absolute or as given when already absolute.
 */
#ifndef GITGATE_CONFIG_H
#define GITGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/cidr.h"
#include "gitgate/core/err.h"

struct config {
	char *path;           /* the config file itself */
	char *listen_host;    /* "127.0.0.1", "::1", "0.0.0.0" */
	unsigned short listen_port;
	char **verify_keys;   /* paths; at least one */
	size_t nverify_keys;
	char *upstream_url;   /* no trailing '/' */
	char *upstream_token_file; /* NULL when only the env var is used */
	/* upstream.github_app (all NULL/false without it) */
	bool github_app;
	char *app_id;         /* digits */
	char *app_key_file;   /* PEM RSA private key */
	char *app_api_url;    /* no trailing '/'; default https://api.github.com */
	char *audit_log;
	char *revocations;
	char *cache_dir;
	char *policy;         /* site-policy file (sitepolicy.h); NULL: none */
	bool fetch_cache;     /* fetch_cache.enabled: serve packs from mirrors */
	uint64_t cache_max_size; /* fetch_cache.max_size, bytes (default 50G) */
	/* "tls": HTTPS on listen; both NULL (plain HTTP) or both set */
	char *tls_cert_file;  /* PEM certificate chain, leaf first */
	char *tls_key_file;   /* PEM private key, mode 0600 */
	/* trusted_proxies: peers whose X-Forwarded-For names the client
	 * (xff.h). NULL and 0 when absent or []; at most
	 * GG_MAX_TRUSTED_PROXIES. */
	struct cidr *trusted_proxies;
	size_t ntrusted_proxies;
	/* "admin_listen": /metrics, /healthz, /readyz; NULL host: off */
	char *admin_host;
	unsigned short admin_port;
	bool log_json;        /* "log_format": "json" (default "text") */
};

/* Parse text (the file's contents) as if read from path; pure except for
 * path resolution. On error, err->msg holds every problem found, joined
 * with "; " (truncated if very many). */
int config_parse(struct config **out, const char *path, const char *text,
		 size_t len, struct gg_err *err);
/* Read path (max GG_MAX_CONFIG_LEN) and config_parse it. */
int config_load(struct config **out, const char *path, struct gg_err *err);
void config_free(struct config *cfg);

/*
 * The upstream credential comes from exactly one of upstream.token_file,
 * GITGATE_UPSTREAM_TOKEN (when non-empty) and upstream.github_app: GG_OK,
 * or GG_EINVAL naming the keys when two or none are set.
 */
int config_check_upstream_source(const struct config *cfg,
				 struct gg_err *err);

/*
 * Read a private file (regular, no group/other permission bits, at most
 * max bytes) into locked memory: *out is sodium_malloc'd and
 * NUL-terminated, *outlen its length; free with config_secret_free. label
 * names the file in messages ("upstream.token_file: /path: ...").
 */
int config_read_secret_file(char **out, size_t *outlen, const char *path,
			    const char *label, size_t max, struct gg_err *err);

/*
 * Load the static upstream secret, from GITGATE_UPSTREAM_TOKEN or
 * upstream.token_file, whichever is set (config_check_upstream_source
 * first; refused for upstream.github_app). The file's trailing newline is
 * stripped. *out is sodium_malloc'd, NUL-terminated; free with
 * config_secret_free (wipes it).
 */
int config_load_upstream_secret(char **out, const struct config *cfg,
				struct gg_err *err);
void config_secret_free(char *secret);

#endif

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

#include <stddef.h>

#include "gitgate/core/err.h"

struct config {
	char *path;           /* the config file itself */
	char *listen_host;    /* "127.0.0.1", "::1", "0.0.0.0" */
	unsigned short listen_port;
	char **verify_keys;   /* paths; at least one */
	size_t nverify_keys;
	char *upstream_url;   /* no trailing '/' */
	char *upstream_token_file; /* NULL when only the env var is used */
	char *audit_log;
	char *revocations;
	char *cache_dir;
	char *policy;         /* site-policy file (sitepolicy.h); NULL: none */
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
 * Load the upstream secret: GITGATE_UPSTREAM_TOKEN wins when set and
 * non-empty, else upstream_token_file (refused if group/world readable,
 * trailing newline stripped). *out is sodium_malloc'd, NUL-terminated;
 * free with config_secret_free (wipes it).
 */
int config_load_upstream_secret(char **out, const struct config *cfg,
				struct gg_err *err);
void config_secret_free(char *secret);

#endif

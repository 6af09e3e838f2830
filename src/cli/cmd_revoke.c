/*
 * cmd_revoke.c - `gitgate revoke --config FILE TOKEN-OR-JTI...`: add jtis
 * to the revocation file the proxy watches.
 *
 * Every argument is checked before anything is written, so a typo in the
 * third argument does not leave the first two half-done.
 */
#include "gitgate/core/cli.h"
#include "gitgate/core/limits.h"
#include "gitgate/token/revocation.h"
#include "gitgate/token/token.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
	"usage: gitgate revoke --config FILE TOKEN-OR-JTI...\n"
	"\n"
	"Add tokens to the revocation list named by the config's\n"
	"\"revocations\" key (default revoked.txt next to the config); a\n"
	"running proxy refuses them within a second.\n"
	"  TOKEN-OR-JTI  a v4.public token (its jti is taken, the signature\n"
	"                is not needed) or a bare jti; '-' reads whitespace-\n"
	"                separated items from stdin\n"
	"Prints \"revoked <jti>\" per item.\n";

#define DEFAULT_REVOCATIONS "revoked.txt"

struct items {
	char **jtis; /* malloc'd strings */
	size_t n;
	size_t cap;
};

static void items_release(struct items *it)
{
	size_t i;

	for (i = 0; i < it->n; i++)
		free(it->jtis[i]);
	free(it->jtis);
}

/* The config as JSON, or NULL after saying why, in the words `serve`
 * uses ("PATH: No such file or directory", "PATH:LINE:COL: ..."). */
static json_t *load_config(const char *config)
{
	json_error_t jerr;
	struct stat st;
	json_t *root;
	int fd;

	/* O_NONBLOCK: a FIFO must be refused, not waited on. */
	fd = open(config, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		fprintf(stderr, "gitgate: revoke: %s: %s\n", config,
			strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		fprintf(stderr, "gitgate: revoke: %s: %s\n", config,
			S_ISDIR(st.st_mode) ? strerror(EISDIR)
					    : "not a regular file");
		close(fd);
		return NULL;
	}
	root = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
	close(fd);
	if (!root)
		fprintf(stderr, "gitgate: revoke: %s:%d:%d: %s\n", config,
			jerr.line, jerr.column, jerr.text);
	else if (!json_is_object(root)) {
		fprintf(stderr, "gitgate: revoke: %s: must be a JSON object\n",
			config);
		json_decref(root);
		root = NULL;
	}
	return root;
}

/* The revocations path of the config: its "revocations" key (default
 * revoked.txt), relative to the config file's directory. Just this one
 * key; the full validation is config_load's job in `serve`. */
static int revocations_path(char **out, const char *config)
{
	const char *rel = DEFAULT_REVOCATIONS, *slash;
	json_t *root, *v;
	size_t dirlen;

	root = load_config(config);
	if (!root)
		return CLI_FAIL;
	v = json_object_get(root, "revocations");
	if (v && (!json_is_string(v) || !*json_string_value(v))) {
		json_decref(root);
		fprintf(stderr,
			"gitgate: revoke: %s: revocations: must be a "
			"non-empty string\n",
			config);
		return CLI_FAIL;
	}
	if (v)
		rel = json_string_value(v);
	slash = strrchr(config, '/');
	dirlen = rel[0] == '/' || !slash ? 0 : (size_t)(slash - config) + 1;
	*out = malloc(dirlen + strlen(rel) + 1);
	if (*out) {
		memcpy(*out, config, dirlen);
		memcpy(*out + dirlen, rel, strlen(rel) + 1);
	}
	json_decref(root);
	return *out ? CLI_OK : cli_fail("revoke", "out of memory");
}

/* A token looks like "v<digit>." ...; anything else is a bare jti. */
static bool looks_like_token(const char *s, size_t len)
{
	return len > 3 && s[0] == 'v' && s[1] >= '0' && s[1] <= '9' &&
	       s[2] == '.';
}

/* Resolve one argument to a jti and add it to it. */
static int add_item(struct items *it, const char *arg, size_t len)
{
	struct token_claims *c = NULL;
	struct gg_err err = GG_ERR_INIT;
	char **grown, *jti;

	if (looks_like_token(arg, len)) {
		if (token_decode_unverified(&c, arg, len, &err) != GG_OK)
			return cli_fail("revoke", err.msg);
		jti = strdup(c->jti);
		token_claims_free(c);
	} else {
		jti = strndup(arg, len);
		if (jti && revocation_check_jti(jti, &err) != GG_OK) {
			free(jti);
			return cli_fail("revoke", err.msg);
		}
	}
	if (!jti)
		return cli_fail("revoke", "out of memory");
	if (it->n == it->cap) {
		it->cap = it->cap ? it->cap * 2 : 8;
		grown = realloc(it->jtis, it->cap * sizeof(*grown));
		if (!grown) {
			free(jti);
			return cli_fail("revoke", "out of memory");
		}
		it->jtis = grown;
	}
	it->jtis[it->n++] = jti;
	return CLI_OK;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* '-': whitespace-separated items from stdin (at most the size of a whole
 * revocation file). */
static int add_stdin(struct items *it)
{
	char *buf = malloc(GG_MAX_REVOCATIONS_LEN + 1);
	size_t len = 0, n, i = 0, start;
	int rc = CLI_OK;

	if (!buf)
		return cli_fail("revoke", "out of memory");
	do {
		n = fread(buf + len, 1, GG_MAX_REVOCATIONS_LEN + 1 - len,
			  stdin);
		len += n;
	} while (n > 0 && len <= GG_MAX_REVOCATIONS_LEN);
	if (ferror(stdin) || len > GG_MAX_REVOCATIONS_LEN)
		rc = cli_fail("revoke", "cannot read stdin (unreadable or "
					"too long)");
	while (rc == CLI_OK && i < len) {
		while (i < len && is_ws(buf[i]))
			i++;
		start = i;
		while (i < len && !is_ws(buf[i]))
			i++;
		if (i > start)
			rc = add_item(it, buf + start, i - start);
	}
	free(buf);
	return rc;
}

/* The file may hold hand-written lines that are not as documented: say
 * so (the revocation just made applies either way). */
static void warn_problems(const char *path, const struct revocation_set *set)
{
	const char *first;
	size_t n = revocation_problems(set, &first);

	if (n)
		fprintf(stderr, "gitgate: revoke: warning: %s: %zu line(s) to "
			"fix (until then a running proxy also keeps every "
			"revocation it had), first %s\n",
			path, n, first);
}

static int revoke_all(const char *config, char **args, int nargs)
{
	struct gg_err err = GG_ERR_INIT;
	struct revocation_set *written = NULL;
	struct items it = {NULL, 0, 0};
	char *path = NULL;
	int i, rc = CLI_OK;

	for (i = 0; i < nargs && rc == CLI_OK; i++) {
		if (!strcmp(args[i], "-"))
			rc = add_stdin(&it);
		else
			rc = add_item(&it, args[i], strlen(args[i]));
	}
	if (rc == CLI_OK && it.n == 0)
		rc = cli_fail("revoke", "no token or jti on stdin");
	if (rc == CLI_OK)
		rc = revocations_path(&path, config);
	if (rc == CLI_OK &&
	    revocation_append(&written, path, (const char *const *)it.jtis,
			      it.n, &err) != GG_OK)
		rc = cli_fail("revoke", err.msg);
	for (i = 0; rc == CLI_OK && (size_t)i < it.n; i++)
		printf("revoked %s\n", it.jtis[i]);
	if (rc == CLI_OK)
		warn_problems(path, written);
	revocation_free(written);
	free(path);
	items_release(&it);
	return rc;
}

int cmd_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	int c;

	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	opterr = 0;
	optind = 1;
	for (;;) {
		c = getopt_long(argc, argv, ":", opts, NULL);
		if (c == -1)
			break;
		if (c != 'c')
			return cli_bad_option(usage, "revoke", c, argc, argv);
		config = optarg;
	}
	if (!config || !*config)
		return cli_usage_error(usage, "revoke: missing --config FILE");
	if (optind >= argc)
		return cli_usage_error(usage, "revoke: missing TOKEN-OR-JTI");
	return revoke_all(config, argv + optind, argc - optind);
}

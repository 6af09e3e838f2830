/*
 * cmd_mint.c - `gitgate mint`: sign one scoped token and print it.
 *
 * Everything the user typed is validated before the key is even opened,
 * with the same validators the verifier uses, so a token that mint prints
 * is always one the proxy accepts (until it expires).
 */
#include "gitgate/core/cidr.h"
#include "gitgate/core/cli.h"
#include "gitgate/token/keyfile.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/token/token.h"

#include <getopt.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char usage[] =
	"usage: gitgate mint --key FILE --repo OWNER/NAME [--repo ...]\n"
	"                    [--push PATTERN ...] [--allow-force] "
	"[--allow-delete]\n"
	"                    [--allow-path GLOB ...] [--email ADDR ...]\n"
	"                    [--cidr CIDR ...] [--no-fetch] [--ttl DUR] "
	"[--sub TEXT]\n"
	"\n"
	"Print one token (v4.public...) and a newline on stdout.\n"
	"  --key FILE        signing.key from gitgate keygen (mode 0600)\n"
	"  --repo OWNER/NAME repository the token may use (repeatable)\n"
	"  --push PATTERN    branch pattern the token may push to "
	"(repeatable);\n"
	"                    '*' matches within a path segment, '**' across\n"
	"                    segments; 'refs/tags/v*' grants tags\n"
	"  --allow-force     allow non-fast-forward pushes to those branches\n"
	"  --allow-delete    allow deleting those branches\n"
	"  --allow-path GLOB path the token may change although the site\n"
	"                    policy protects it (repeatable; never unlocks\n"
	"                    forbidden_paths)\n"
	"  --email ADDR      the only author/committer email its commits may\n"
	"                    carry (repeatable; narrows commit_emails)\n"
	"  --cidr CIDR       client network the token is valid from, e.g.\n"
	"                    10.0.0.5/32 or 2001:db8::/64 (repeatable; any\n"
	"                    other client address is refused)\n"
	"  --no-fetch        do not grant fetch/clone\n"
	"  --ttl DUR         lifetime: <n>s, <n>m, <n>h or <n>d (default 1h,\n"
	"                    at most 7d)\n"
	"  --sub TEXT        who holds the token, shown in the audit log\n"
	"                    (default: user@host of whoever runs mint)\n";

struct mint_opts {
	const char *key;
	char *repos[GG_MAX_CLAIM_ITEMS];
	size_t nrepos;
	char *pushes[GG_MAX_CLAIM_ITEMS];
	size_t npushes;
	bool allow_force;
	bool allow_delete;
	char *allow_paths[GG_MAX_CLAIM_ITEMS];
	size_t nallow_paths;
	char *emails[GG_MAX_CLAIM_ITEMS];
	size_t nemails;
	char cidr_text[GG_MAX_CLAIM_ITEMS][CIDR_TEXT_MAX]; /* canonical */
	char *cidr[GG_MAX_CLAIM_ITEMS];
	size_t ncidr;
	bool no_fetch;
	int64_t ttl;
	const char *sub;
};

enum {
	OPT_KEY = 256,
	OPT_REPO,
	OPT_PUSH,
	OPT_FORCE,
	OPT_DELETE,
	OPT_NO_FETCH,
	OPT_TTL,
	OPT_SUB,
	OPT_ALLOW_PATH,
	OPT_EMAIL,
	OPT_CIDR,
};

/* Append a validated --repo / --push / --allow-path / --email / --cidr
 * value. The same value twice is refused rather than silently merged: it
 * is most often a copy-paste slip where a different repository or branch was
 * meant, and the token would lack the grant the user thinks it has.
 * Repositories and emails compare case-insensitively, as the proxy and
 * the site policy match them. */
static int add_item(char **items, size_t *n, const char *value,
		    const char *flag, bool nocase,
		    int (*check)(const char *, struct gg_err *))
{
	struct gg_err err = GG_ERR_INIT;
	size_t i;

	if (check(value, &err) != GG_OK)
		return cli_usage_error(usage, "mint: %s: %s", flag, err.msg);
	for (i = 0; i < *n; i++) {
		if (!strcmp(items[i], value))
			return cli_usage_error(usage,
					       "mint: %s: '%s' given twice",
					       flag, value);
		if (nocase && !strcasecmp(items[i], value))
			return cli_usage_error(usage,
					       "mint: %s: '%s' is the same as "
					       "'%s' (names match "
					       "case-insensitively)",
					       flag, value, items[i]);
	}
	if (*n >= GG_MAX_CLAIM_ITEMS)
		return cli_usage_error(usage, "mint: %s: at most %d allowed",
				       flag, GG_MAX_CLAIM_ITEMS);
	items[(*n)++] = (char *)value;
	return CLI_OK;
}

/* A --cidr value, kept in canonical form ("2001:DB8::/32" is signed as
 * "2001:db8::/32", "10.0.0.5" as "10.0.0.5/32"), so that the same network
 * written twice is caught whatever its spelling. */
static int add_cidr(struct mint_opts *o, const char *value)
{
	struct gg_err err = GG_ERR_INIT;
	char *canon;
	struct cidr net;

	if (cidr_parse(&net, value, &err) != GG_OK)
		return cli_usage_error(usage, "mint: --cidr: %s", err.msg);
	if (o->ncidr >= GG_MAX_CLAIM_ITEMS)
		return cli_usage_error(usage, "mint: --cidr: at most %d allowed",
				       GG_MAX_CLAIM_ITEMS);
	canon = o->cidr_text[o->ncidr];
	cidr_format(canon, CIDR_TEXT_MAX, &net);
	return add_item(o->cidr, &o->ncidr, canon, "--cidr", false,
			token_check_cidr);
}

static int parse_ttl(int64_t *out, const char *text)
{
	size_t zeros = strspn(text, "0");

	/* "0s" has the right form: say what is wrong with it. */
	if (zeros > 0 && text[zeros] && strchr("smhd", text[zeros]) &&
	    !text[zeros + 1])
		return cli_usage_error(usage, "mint: --ttl: must be longer "
					      "than 0");
	if (cli_parse_duration(out, text) != 0)
		return cli_usage_error(usage,
				       "mint: --ttl: '%s' is not a duration "
				       "like 90s, 15m, 1h or 7d",
				       text);
	if (*out > GG_MAX_TTL)
		return cli_usage_error(usage, "mint: --ttl: at most 7d");
	return CLI_OK;
}

static int parse_one(struct mint_opts *o, int c, int argc, char **argv)
{
	switch (c) {
	case OPT_KEY:
		o->key = optarg;
		return CLI_OK;
	case OPT_REPO:
		return add_item(o->repos, &o->nrepos, optarg, "--repo", true,
				token_check_repo);
	case OPT_PUSH:
		return add_item(o->pushes, &o->npushes, optarg, "--push", false,
				token_check_pattern);
	case OPT_ALLOW_PATH:
		return add_item(o->allow_paths, &o->nallow_paths, optarg,
				"--allow-path", false, token_check_allow_path);
	case OPT_EMAIL:
		return add_item(o->emails, &o->nemails, optarg, "--email", true,
				token_check_email);
	case OPT_CIDR:
		return add_cidr(o, optarg);
	case OPT_FORCE:
		o->allow_force = true;
		return CLI_OK;
	case OPT_DELETE:
		o->allow_delete = true;
		return CLI_OK;
	case OPT_NO_FETCH:
		o->no_fetch = true;
		return CLI_OK;
	case OPT_TTL:
		return parse_ttl(&o->ttl, optarg);
	case OPT_SUB:
		o->sub = optarg;
		return CLI_OK;
	default:
		return cli_bad_option(usage, "mint", c, argc, argv);
	}
}

/* Combinations that would mint a useless or surprising token. */
static int check_opts(const struct mint_opts *o)
{
	struct gg_err err = GG_ERR_INIT;

	if (!o->key || !*o->key)
		return cli_usage_error(usage, "mint: missing --key FILE");
	if (o->nrepos == 0)
		return cli_usage_error(usage,
				       "mint: missing --repo OWNER/NAME");
	if (o->no_fetch && o->npushes == 0)
		return cli_usage_error(usage, "mint: --no-fetch without --push "
					      "would grant nothing");
	if ((o->allow_force || o->allow_delete) && o->npushes == 0)
		return cli_usage_error(usage, "mint: %s needs --push PATTERN",
				       o->allow_force ? "--allow-force"
						      : "--allow-delete");
	/* Both only shape what a push may carry. */
	if ((o->nallow_paths || o->nemails) && o->npushes == 0)
		return cli_usage_error(usage, "mint: %s needs --push PATTERN",
				       o->nallow_paths ? "--allow-path"
						       : "--email");
	if (o->sub && token_check_sub(o->sub, &err) != GG_OK)
		return cli_usage_error(usage, "mint: --sub: %s", err.msg);
	return CLI_OK;
}

static int parse_args(struct mint_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, OPT_KEY},
		{"repo", required_argument, NULL, OPT_REPO},
		{"push", required_argument, NULL, OPT_PUSH},
		{"allow-force", no_argument, NULL, OPT_FORCE},
		{"allow-delete", no_argument, NULL, OPT_DELETE},
		{"no-fetch", no_argument, NULL, OPT_NO_FETCH},
		{"ttl", required_argument, NULL, OPT_TTL},
		{"sub", required_argument, NULL, OPT_SUB},
		{"allow-path", required_argument, NULL, OPT_ALLOW_PATH},
		{"email", required_argument, NULL, OPT_EMAIL},
		{"cidr", required_argument, NULL, OPT_CIDR},
		{NULL, 0, NULL, 0},
	};
	int c, rc;

	opterr = 0;
	optind = 1;
	for (;;) {
		c = getopt_long(argc, argv, ":", opts, NULL);
		if (c == -1)
			break;
		rc = parse_one(o, c, argc, argv);
		if (rc != CLI_OK)
			return rc;
	}
	if (optind < argc)
		return cli_usage_error(usage, "mint: unexpected argument '%s'",
				       argv[optind]);
	return check_opts(o);
}

/* "user@host" of the caller, or "gitgate-mint" if that is not a valid
 * sub (no passwd entry, odd host name). */
static void default_sub(char *buf, size_t size)
{
	struct passwd *pw = getpwuid(geteuid());
	char host[256] = "";

	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	if (pw && pw->pw_name && host[0])
		snprintf(buf, size, "%s@%s", pw->pw_name, host);
	else
		buf[0] = '\0';
	if (token_check_sub(buf, NULL) != GG_OK)
		snprintf(buf, size, "gitgate-mint");
}

static int sign_and_print(const struct mint_opts *o, const char *sub,
			  const struct keyfile_secret *key)
{
	struct gg_err err = GG_ERR_INIT;
	int64_t now = timeutil_now();
	struct token_claims c = {
		.sub = (char *)sub,
		.iat = now,
		.has_iat = true,
		.exp = now + o->ttl,
		.repos = (char **)o->repos,
		.nrepos = o->nrepos,
		.ops = (o->no_fetch ? 0u : TOKEN_OP_FETCH) |
		       (o->npushes ? TOKEN_OP_PUSH : 0u),
		.branches = (char **)o->pushes,
		.nbranches = o->npushes,
		.allow_force = o->allow_force,
		.allow_delete = o->allow_delete,
		.allow_paths = (char **)o->allow_paths,
		.nallow_paths = o->nallow_paths,
		.emails = (char **)o->emails,
		.nemails = o->nemails,
		.cidr = (char **)o->cidr,
		.ncidr = o->ncidr,
	};
	char *token = NULL;
	int rc = CLI_OK;

	if (token_sign(&token, &c, key->sk, &err) != GG_OK)
		return cli_fail("mint", err.msg);
	if (printf("%s\n", token) < 0 || fflush(stdout) != 0)
		rc = cli_fail("mint", "cannot write the token to stdout");
	/* The token is a credential: do not leave it in freed memory. */
	sodium_memzero(token, strlen(token));
	free(token);
	return rc;
}

int cmd_mint(int argc, char **argv)
{
	struct mint_opts o = {.ttl = GG_DEFAULT_TTL};
	struct keyfile_secret *key = NULL;
	struct gg_err err = GG_ERR_INIT;
	char sub[GG_MAX_CLAIM_STR + 1];
	int rc;

	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	rc = parse_args(&o, argc, argv);
	if (rc != CLI_OK)
		return rc;
	if (o.sub)
		snprintf(sub, sizeof(sub), "%s", o.sub);
	else
		default_sub(sub, sizeof(sub));
	if (keyfile_load_secret(&key, o.key, &err) != GG_OK)
		return cli_fail("mint", err.msg);
	rc = sign_and_print(&o, sub, key);
	keyfile_secret_free(key);
	return rc;
}

/*
 * cmd_inspect.c - `gitgate inspect [--key FILE] TOKEN`: show a token's
 * claims; with --key also verify signature and times, as the proxy would
 * (without the revocation list).
 */
#include "gitgate/core/cli.h"
#include "gitgate/token/keyfile.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/token/token.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: gitgate inspect [--key FILE] TOKEN\n"
	"\n"
	"Print the token's claims as JSON (times in RFC 3339, UTC).\n"
	"  --key FILE   verify.pub to check the signature and expiry with\n"
	"               (repeatable); exit 1 with the reason if invalid\n"
	"  TOKEN        the token, or '-' to read it from stdin (keeps it out\n"
	"               of shell history and ps)\n"
	"Without --key the signature is NOT checked (a warning says so).\n";

/* Room for the largest token plus surrounding whitespace. */
#define STDIN_CAP (GG_MAX_TOKEN_LEN + 256)

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Read stdin into buf (STDIN_CAP + 1 bytes); -1 if longer or unreadable. */
static int read_stdin(char *buf, size_t *len)
{
	size_t n;

	*len = 0;
	do {
		n = fread(buf + *len, 1, STDIN_CAP + 1 - *len, stdin);
		*len += n;
	} while (n > 0 && *len <= STDIN_CAP);
	if (ferror(stdin) || *len > STDIN_CAP)
		return -1;
	buf[*len] = '\0';
	return 0;
}

/* The token text without surrounding whitespace (pasted tokens often
 * carry a newline). *start points into text. */
static void trim(const char **start, size_t *len, const char *text,
		 size_t textlen)
{
	while (textlen && is_ws(*text)) {
		text++;
		textlen--;
	}
	while (textlen && is_ws(text[textlen - 1]))
		textlen--;
	*start = text;
	*len = textlen;
}

static int load_keys(struct token_keyset *set, char **paths, size_t n)
{
	struct gg_err err = GG_ERR_INIT;
	size_t i;

	for (i = 0; i < n; i++) {
		if (keyfile_load_public(&set->keys[i], paths[i], &err) != GG_OK)
			return cli_fail("inspect", err.msg);
	}
	set->nkeys = n;
	return CLI_OK;
}

static int print_claims(const struct token_claims *c)
{
	char *json = token_claims_to_json(c);
	int rc = CLI_OK;

	if (!json)
		return cli_fail("inspect", "cannot format the claims");
	if (printf("%s\n", json) < 0 || fflush(stdout) != 0)
		rc = cli_fail("inspect", "cannot write to stdout");
	free(json);
	return rc;
}

static int inspect(const char *token, size_t len, char **keypaths, size_t nkeys)
{
	struct token_key keys[GG_MAX_KEYS];
	struct token_keyset set = {keys, 0};
	struct token_claims *c = NULL;
	struct gg_err err = GG_ERR_INIT;
	int rc;

	if (nkeys == 0) {
		fputs("gitgate: warning: signature not verified (no --key)\n",
		      stderr);
		rc = token_decode_unverified(&c, token, len, &err);
	} else {
		rc = load_keys(&set, keypaths, nkeys);
		if (rc != CLI_OK)
			return rc;
		rc = token_verify(&c, token, len, &set, timeutil_now(), NULL,
				  &err);
	}
	if (rc != GG_OK)
		return cli_fail("inspect", err.msg);
	rc = print_claims(c);
	token_claims_free(c);
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{NULL, 0, NULL, 0},
	};
	char *keypaths[GG_MAX_KEYS], buf[STDIN_CAP + 1];
	const char *token;
	size_t nkeys = 0, len;
	int c, rc;

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
		if (c != 'k')
			return cli_bad_option(usage, "inspect", c, argc, argv);
		if (nkeys == GG_MAX_KEYS)
			return cli_usage_error(usage,
					       "inspect: --key: at most %d "
					       "allowed",
					       GG_MAX_KEYS);
		keypaths[nkeys++] = optarg;
	}
	if (optind >= argc)
		return cli_usage_error(usage, "inspect: missing TOKEN");
	if (optind + 1 < argc)
		return cli_usage_error(usage, "inspect: unexpected argument "
					      "after TOKEN");
	if (!strcmp(argv[optind], "-")) {
		if (read_stdin(buf, &len) != 0)
			return cli_fail("inspect", "cannot read a token from "
						   "stdin (unreadable or "
						   "longer than 8 KiB)");
		trim(&token, &len, buf, len);
	} else {
		trim(&token, &len, argv[optind], strlen(argv[optind]));
	}
	rc = inspect(token, len, keypaths, nkeys);
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

/*
 * cmd_keygen.c - `gitgate keygen --out DIR`: a fresh Ed25519 key pair as
 * PASERK files. Never overwrites: rotating keys is a deliberate act.
 */
#include "gitgate/core/cli.h"
#include "gitgate/token/keyfile.h"

#include <getopt.h>
#include <stdio.h>

static const char usage[] =
	"usage: gitgate keygen --out DIR\n"
	"\n"
	"Create a signing key pair in DIR (DIR and any missing parents are\n"
	"created with mode 0700; existing directories are left as they are):\n"
	"  DIR/signing.key  k4.secret PASERK, mode 0600: keep it where tokens\n"
	"                   are minted (gitgate mint --key)\n"
	"  DIR/verify.pub   k4.public PASERK, mode 0644: give it to the proxy\n"
	"                   (config \"verify_key\") and to gitgate inspect "
	"--key\n"
	"Existing files are never overwritten.\n";

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"out", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gg_err err = GG_ERR_INIT;
	const char *out = NULL;
	int c;

	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	opterr = 0;
	optind = 1;
	for (;;) {
		c = getopt_long(argc, argv, ":h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'o')
			out = optarg;
		else
			return cli_bad_option(usage, "keygen", c, argc, argv);
	}
	if (optind < argc)
		return cli_usage_error(usage,
				       "keygen: unexpected argument '%s'",
				       argv[optind]);
	if (!out || !*out)
		return cli_usage_error(usage, "keygen: missing --out DIR");
	if (keyfile_generate(out, &err) != GG_OK)
		return cli_fail("keygen", err.msg);
	printf("wrote %s/signing.key and %s/verify.pub\n", out, out);
	return CLI_OK;
}

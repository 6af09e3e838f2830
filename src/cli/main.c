/* gitgate - scoped-credential git smart-HTTP proxy: subcommand dispatch. */
#include "gitgate/core/cli.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
	"usage: gitgate <command> [options]\n"
	"\n"
	"commands:\n"
	"  serve    --config FILE            run the proxy\n"
	"  keygen   --out DIR                create a signing/verify key pair\n"
	"  mint     --key FILE --repo O/N …  print a scoped token\n"
	"  inspect  [--key FILE] TOKEN       show (and verify) a token's claims\n"
	"  revoke   --config FILE TOKEN|JTI… revoke tokens\n"
	"  audit    --config FILE|--log FILE review or verify the audit log\n"
	"  policy   check FILE               validate a site-policy file\n"
	"  policy   test --policy FILE ...   judge one ref update of a local repo\n"
	"  doctor   --config FILE [--repo R] check a deployment step by step\n"
	"\n"
	"Run 'gitgate <command> --help' for a command's options;\n"
	"'gitgate --version' prints the version.\n";

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "serve", cmd_serve },	    { "keygen", cmd_keygen },
	{ "mint", cmd_mint },	    { "inspect", cmd_inspect },
	{ "revoke", cmd_revoke },   { "audit", cmd_audit },
	{ "policy", cmd_policy },   { "doctor", cmd_doctor },
};

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		fputs("gitgate: missing command\n", stderr);
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		puts("gitgate " GG_VERSION);
		return CLI_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "gitgate: unknown command '%s'\n", argv[1]);
	fputs(usage, stderr);
	return CLI_USAGE;
}

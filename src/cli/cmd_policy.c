/*
 * cmd_policy.c - `gitgate policy check FILE`: validate a site-policy file
 * (sitepolicy.h) and print the rules it puts in force, so an operator sees
 * what a repos entry merged into the top level really gives.
 *
 * Secret rules are checked for shape here; their regexes are not compiled
 * (the engine is not wired to this command), so a regex the engine would
 * refuse passes `check` but not the proxy's start-up.
 */
#include "gitgate/core/cli.h"
#include "gitgate/core/size.h"
#include "gitgate/push/sitepolicy.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
	"usage: gitgate policy check FILE\n"
	"\n"
	"Validate a site-policy file and print the rules in force: the top\n"
	"level, then for each \"repos\" entry the top level with that entry\n"
	"merged in (lists added, max_file_size and secrets replaced). A\n"
	"repository that several entries match gets all of them, in file\n"
	"order. Problems are printed one per line, all of them, as\n"
	"FILE:LINE:COLUMN: KEY: REASON, and the exit status is 1.\n"
	"The regexes of secret_rules are checked for shape only, not\n"
	"compiled.\n";

#define LABEL_WIDTH 17

/* Bytes a terminal could take for a command (a regex may hold any) as
 * \xNN; everything else as it is. */
static void put_safe(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			printf("\\x%02x", (unsigned char)*s);
		else
			putchar(*s);
	}
}

static void put_label(const char *name)
{
	printf("  %s:%*s", name, (int)(LABEL_WIDTH - strlen(name) - 1), "");
}

static void print_list(const char *name, const struct sitepolicy_list *l,
		       const char *none)
{
	size_t i;

	put_label(name);
	if (l->n == 0)
		fputs(none, stdout);
	for (i = 0; i < l->n; i++) {
		fputs(i ? ", " : "", stdout);
		put_safe(l->v[i]);
	}
	putchar('\n');
}

static void print_secret_rules(const struct sitepolicy_rules *r)
{
	size_t i;

	put_label("secret_rules");
	if (r->nsecret_rules == 0)
		puts("none");
	for (i = 0; i < r->nsecret_rules; i++) {
		if (i)
			printf("%*s", LABEL_WIDTH + 2, "");
		put_safe(r->secret_rules[i].id);
		fputs(" /", stdout);
		put_safe(r->secret_rules[i].regex);
		puts("/");
	}
}

static void print_rules(const struct sitepolicy_rules *r)
{
	char size[SIZE_FORMAT_MAX];

	print_list("protected_refs", &r->protected_refs, "none");
	print_list("protected_paths", &r->protected_paths, "none");
	print_list("forbidden_paths", &r->forbidden_paths, "none");
	put_label("max_file_size");
	if (r->max_file_size) {
		size_format(size, sizeof(size), r->max_file_size);
		printf("%s (%llu bytes)\n", size,
		       (unsigned long long)r->max_file_size);
	} else {
		puts("no limit");
	}
	print_list("commit_emails", &r->commit_emails, "any");
	put_label("secrets");
	puts(r->secrets ? "on (built-in rules)" : "off");
	print_secret_rules(r);
}

static int print_policy(const struct sitepolicy *pol)
{
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy_rules *r;
	size_t i;

	puts("top level:");
	print_rules(sitepolicy_top(pol));
	for (i = 0; i < sitepolicy_nrepos(pol); i++) {
		if (sitepolicy_for_entry(&r, pol, i, &err) != 0)
			return cli_fail("policy check", err.msg);
		fputs("repos ", stdout);
		put_safe(sitepolicy_repo_glob(pol, i));
		puts(" (top level and this entry):");
		print_rules(r);
		sitepolicy_rules_free(r);
	}
	return CLI_OK;
}

static int check_file(const char *path)
{
	struct sitepolicy_problems probs = {NULL, 0, 0};
	struct sitepolicy_opts opts = {NULL, NULL, &probs};
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy *pol = NULL;
	size_t i;
	int ret;

	if (sitepolicy_load(&pol, path, &opts, &err) == GG_OK) {
		ret = print_policy(pol);
	} else if (probs.n == 0) {
		ret = cli_fail("policy check", err.msg);
	} else {
		for (i = 0; i < probs.n; i++)
			fprintf(stderr, "gitgate: policy check: %s\n",
				probs.lines[i]);
		if (probs.more)
			fprintf(stderr,
				"gitgate: policy check: %s: %zu more "
				"problems not shown\n",
				path, probs.more);
		ret = CLI_FAIL;
	}
	sitepolicy_problems_release(&probs);
	sitepolicy_free(pol);
	return ret;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {{NULL, 0, NULL, 0}};
	int c;

	opterr = 0;
	optind = 1;
	c = getopt_long(argc, argv, ":", opts, NULL);
	if (c != -1)
		return cli_bad_option(usage, "policy check", c, argc, argv);
	if (optind >= argc)
		return cli_usage_error(usage, "policy check: missing FILE");
	if (optind + 1 < argc)
		return cli_usage_error(usage,
				       "policy check: unexpected argument '%s'",
				       argv[optind + 1]);
	return check_file(argv[optind]);
}

int cmd_policy(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (argc < 2)
		return cli_usage_error(usage, "policy: missing subcommand "
					      "(check)");
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "test"))
		return cli_usage_error(usage, "policy: 'test' is not available "
					      "in this version (only 'check')");
	return cli_usage_error(usage, "policy: unknown subcommand '%s'",
			       argv[1]);
}

/*
 * cmd_policy.c - the site-policy file from the command line:
 *   `gitgate policy check FILE`: validate it (regexes compiled by the
 *   secret-scan engine, as the proxy's start-up does) and print the rules it
 *   puts in force, so an operator sees what a repos entry merged into the
 *   top level really gives;
 *   `gitgate policy test ...`: judge one ref update of a local repository
 *   with the same code the proxy runs (policystate, content), so rules can
 *   be tried on real history before they are deployed.
 */
#include "gitgate/core/cli.h"
#include "gitgate/core/glob.h"
#include "gitgate/core/size.h"
#include "gitgate/push/content.h"
#include "gitgate/push/policystate.h"
#include "gitgate/push/sitepolicy.h"

#include <getopt.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: gitgate policy check FILE\n"
	"       gitgate policy test --policy FILE --git-dir DIR\n"
	"                           [--allow-path GLOB]... [--email ADDR]...\n"
	"                           [--repo OWNER/NAME] REF OLD NEW\n"
	"\n"
	"check: validate a site-policy file and print the rules in force: the\n"
	"top level, then for each \"repos\" entry the top level with that\n"
	"entry merged in (lists added, max_file_size and secrets replaced). A\n"
	"repository that several entries match gets all of them, in file\n"
	"order. Problems are printed one per line, all of them, as\n"
	"FILE:LINE:COLUMN: KEY: REASON, and the exit status is 1. Custom\n"
	"secret_rules are compiled, as at the proxy's start-up.\n"
	"\n"
	"test: evaluate \"update REF from OLD to NEW\" in the repository DIR\n"
	"as the proxy would for a token with these allow_paths and emails\n"
	"claims: new commits are those not reachable from DIR's other refs\n"
	"nor from OLD (40 zeros for a creation; NEW 40 zeros for a deletion).\n"
	"--repo picks the \"repos\" entries that apply (default: the top\n"
	"level only). Prints every finding; exit status 1 if the update\n"
	"would be refused, 0 if allowed.\n";

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
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps = NULL;
	struct policysnap *snap;
	size_t i;
	int ret;

	if (policystate_new(&ps, path, NULL, 0, &probs, &err) == GG_OK) {
		snap = policystate_get(ps);
		ret = print_policy(policysnap_policy(snap));
		policysnap_put(snap);
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
	policystate_free(ps);
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

/* ---- test ---------------------------------------------------------- */

struct test_args {
	const char *policy, *git_dir, *repo;
	const char **allow_paths, **emails;
	size_t nallow_paths, nemails;
	const char *ref, *old_hex, *new_hex;
};

static int add_arg(const char ***v, size_t *n, const char *s)
{
	const char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -1;
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

static bool is_zero(const char *hex)
{
	return strspn(hex, "0") == strlen(hex);
}

static bool is_oid(const char *hex)
{
	return strlen(hex) == 40 && strspn(hex, "0123456789abcdef") == 40;
}

static int parse_test(struct test_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{"policy", required_argument, NULL, 'p'},
		{"git-dir", required_argument, NULL, 'g'},
		{"allow-path", required_argument, NULL, 'a'},
		{"email", required_argument, NULL, 'e'},
		{"repo", required_argument, NULL, 'r'},
		{NULL, 0, NULL, 0}};
	struct gg_err err = GG_ERR_INIT;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 'p': a->policy = optarg; break;
		case 'g': a->git_dir = optarg; break;
		case 'r': a->repo = optarg; break;
		case 'a':
			if (glob_check(optarg, 0, &err) != 0)
				return cli_usage_error(usage, "policy test: "
						       "--allow-path: %s",
						       err.msg);
			if (add_arg(&a->allow_paths, &a->nallow_paths, optarg))
				return cli_fail("policy test", "out of memory");
			break;
		case 'e':
			if (!strchr(optarg, '@'))
				return cli_usage_error(usage, "policy test: "
						       "--email: not an email "
						       "address: '%s'", optarg);
			if (add_arg(&a->emails, &a->nemails, optarg))
				return cli_fail("policy test", "out of memory");
			break;
		default:
			return cli_bad_option(usage, "policy test", c, argc,
					      argv);
		}
	}
	if (!a->policy || !a->git_dir)
		return cli_usage_error(usage, "policy test: --policy and "
					      "--git-dir are required");
	if (argc - optind != 3)
		return cli_usage_error(usage, "policy test: expected REF OLD "
					      "NEW");
	a->ref = argv[optind];
	a->old_hex = argv[optind + 1];
	a->new_hex = argv[optind + 2];
	if (strncmp(a->ref, "refs/", 5))
		return cli_usage_error(usage, "policy test: REF must be a full "
					      "ref name (refs/heads/...)");
	if (!is_oid(a->old_hex) || !is_oid(a->new_hex))
		return cli_usage_error(usage, "policy test: OLD and NEW must "
					      "be 40 lower-case hex digits");
	return -1; /* parsed */
}

static int load_for_test(struct policystate **ps, const char *path)
{
	struct sitepolicy_problems probs = {NULL, 0, 0};
	struct gg_err err = GG_ERR_INIT;
	size_t i;
	int ret = policystate_new(ps, path, NULL, 0, &probs, &err);

	for (i = 0; ret && i < probs.n; i++)
		fprintf(stderr, "gitgate: policy test: %s\n", probs.lines[i]);
	if (ret && probs.n == 0)
		cli_fail("policy test", err.msg);
	sitepolicy_problems_release(&probs);
	return ret;
}

static int print_findings(const struct content_findings *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		printf("refused: %s: %s\n", f->v[i].rule, f->v[i].reason);
	if (f->more)
		printf("refused: ... and %zu more\n", f->more);
	return f->n ? CLI_FAIL : CLI_OK;
}

static int judge(const struct test_args *a, const struct content_rules *cr)
{
	struct content_findings f = {NULL, 0, 0};
	struct content_check *cc = NULL;
	struct gg_err err = GG_ERR_INIT;
	git_repository *repo = NULL;
	int ret;

	if (git_repository_open_ext(&repo, a->git_dir,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
		const git_error *e = git_error_last();

		return cli_fail(a->git_dir, e ? e->message : "not a repository");
	}
	ret = content_check_new(&cc, repo, cr, &err);
	if (ret == 0)
		ret = content_check_ref(cc, a->old_hex, a->new_hex, a->ref, &f,
					&err);
	if (ret) {
		printf("refused: content_check: gitgate could not check "
		       "content: %s\n", err.msg);
		ret = CLI_FAIL;
	} else {
		ret = print_findings(&f);
	}
	content_findings_release(&f);
	content_check_free(cc);
	git_repository_free(repo);
	return ret;
}

static int run_test(const struct test_args *a)
{
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps = NULL;
	struct policysnap *snap;
	struct sitepolicy_rules *rules = NULL;
	struct content_rules cr;
	int ret;

	if (load_for_test(&ps, a->policy) != 0)
		return CLI_FAIL;
	snap = policystate_get(ps);
	ret = sitepolicy_for_repo(&rules, policysnap_policy(snap),
				  a->repo ? a->repo : "", &err);
	if (ret) {
		ret = cli_fail("policy test", err.msg);
		goto out;
	}
	if (sitepolicy_ref_protected(rules, a->ref)) {
		printf("refused: protected_ref: %s is protected by site "
		       "policy\n", a->ref);
		ret = CLI_FAIL;
		goto out;
	}
	memset(&cr, 0, sizeof(cr));
	cr.policy = rules;
	cr.db = policysnap_db(snap);
	cr.allow_paths = a->allow_paths;
	cr.nallow_paths = a->nallow_paths;
	cr.emails = a->emails;
	cr.nemails = a->nemails;
	ret = is_zero(a->new_hex) || !content_rules_active(&cr)
		      ? CLI_OK
		      : judge(a, &cr);
	if (ret == CLI_OK)
		printf("allowed: %s %.7s..%.7s\n", a->ref, a->old_hex,
		       a->new_hex);
out:
	sitepolicy_rules_free(rules);
	policysnap_put(snap);
	policystate_free(ps);
	return ret;
}

static int cmd_test(int argc, char **argv)
{
	struct test_args a;
	int ret;

	memset(&a, 0, sizeof(a));
	ret = parse_test(&a, argc, argv);
	if (ret < 0) {
		git_libgit2_init();
		ret = run_test(&a);
		git_libgit2_shutdown();
	}
	free(a.allow_paths);
	free(a.emails);
	return ret;
}

int cmd_policy(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (argc < 2)
		return cli_usage_error(usage, "policy: missing subcommand "
					      "(check, test)");
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "test"))
		return cmd_test(argc - 1, argv + 1);
	return cli_usage_error(usage, "policy: unknown subcommand '%s'",
			       argv[1]);
}

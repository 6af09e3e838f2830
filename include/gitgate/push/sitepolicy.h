/*
 * sitepolicy.h - the site-policy file (config key "policy"): parsed and
 * validated, then asked for the rules in force for one repository. No
 * enforcement here: this is the data the push checks read.
 *
 * The file is a JSON object (duplicate keys refused, unknown keys refused):
 *   protected_refs   array of ref patterns (token syntax, policy.h)
 *   protected_paths  array of path globs (glob.h, segmented)
 *   forbidden_paths  array of path globs
 *   max_file_size    string "N[BKMG]" (size.h); a bare JSON number is
 *                    refused, as it would not say its unit
 *   commit_emails    array of email globs (sitepolicy_email_match)
 *   secrets          true or false: the built-in secret rules
 *   secret_rules     array of {"id", "regex"}: id 1..GG_MAX_SECRET_RULE_ID
 *                    bytes of [a-z0-9._-], unique in the whole file; regex
 *                    1..GG_MAX_SECRET_REGEX bytes
 *   repos            object: "owner/name" glob (GLOB_CASEFOLD, exactly one
 *                    '/', no "**") -> object with the keys above but repos
 * A repository gets the top-level rules, then every repos entry whose glob
 * matches it, in file order: lists are appended, scalars (max_file_size,
 * secrets) replaced, so a later entry wins.
 *
 * Bounds: the file at most GG_MAX_POLICY_LEN bytes, GG_MAX_POLICY_PATTERNS
 * patterns and GG_MAX_SECRET_RULES rules in all (so a merged list never
 * exceeds them either), GG_MAX_POLICY_REPOS repos entries, every pattern at
 * most GG_MAX_PATTERN_LEN bytes.
 *
 * Problems: every one is collected, each a line
 *     "<file>:<line>:<column>: <key>: <reason>"
 * with <key> as a path into the document ('repos["acme/infra"].max_file_size',
 * 'protected_paths[2]'). Lines and columns count as jansson's do (from 1;
 * columns in characters), so syntax errors, which jansson finds, and
 * semantic ones agree. jansson does not keep positions of values: the
 * parser finds one again by walking the text to the same member (objects
 * keep their members in file order in jansson, so the k-th member parsed
 * is the k-th in the text) and reports where the value starts, or, for an
 * unknown key or a bad repos glob, where the key starts.
 *
 * Secret rules are checked for shape only. Compiling the regexes is the
 * secret-scan engine's job: the caller passes it in as opts->check_regex
 * (e.g. one that builds a one-rule database), and a regex it refuses
 * becomes one more problem, at the regex, naming the rule's id.
 */
#ifndef GITGATE_SITEPOLICY_H
#define GITGATE_SITEPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

/* Strings borrowed from the struct sitepolicy they came from. */
struct sitepolicy_list {
	const char **v;
	size_t n;
};

/* Field for field a struct secretscan_rule. */
struct sitepolicy_secret_rule {
	const char *id;
	const char *regex;
};

/* The rules in force for one repository. */
struct sitepolicy_rules {
	struct sitepolicy_list protected_refs;
	struct sitepolicy_list protected_paths;
	struct sitepolicy_list forbidden_paths;
	struct sitepolicy_list commit_emails; /* empty: any address */
	const struct sitepolicy_secret_rule *secret_rules;
	size_t nsecret_rules;
	uint64_t max_file_size; /* bytes; 0: no limit */
	bool secrets;		/* scan with the built-in rules */
};

struct sitepolicy;

/* Compile-check one custom rule: 0, or a negative GG_E* code with err->msg
 * the engine's one-line reason. */
typedef int (*sitepolicy_regex_fn)(void *payload, const char *id,
				   const char *regex, struct gg_err *err);

/* Every problem line, in file order: the first GG_MAX_POLICY_PROBLEMS of
 * them; more counts those beyond. */
struct sitepolicy_problems {
	char **lines;
	size_t n;
	size_t more;
};

struct sitepolicy_opts {
	sitepolicy_regex_fn check_regex; /* NULL: shape only */
	void *payload;
	/* NULL: err alone. Otherwise filled on GG_EINVAL (release it with
	 * sitepolicy_problems_release either way). */
	struct sitepolicy_problems *problems;
};

/*
 * Parse text (len bytes, the file's contents) as if read from path, the
 * name problems start with. opts may be NULL. GG_EINVAL when the policy
 * has problems: err->msg is the first line, followed by " (and N more)"
 * when there are others. GG_ELIMIT when len > GG_MAX_POLICY_LEN, GG_ENOMEM.
 * Pure: no I/O.
 */
int sitepolicy_parse(struct sitepolicy **out, const char *path,
		     const char *text, size_t len,
		     const struct sitepolicy_opts *opts, struct gg_err *err);

/* Read path (a regular file of at most GG_MAX_POLICY_LEN bytes) and
 * sitepolicy_parse it; GG_EIO "<path>: <strerror>" if it cannot be read. */
int sitepolicy_load(struct sitepolicy **out, const char *path,
		    const struct sitepolicy_opts *opts, struct gg_err *err);

void sitepolicy_free(struct sitepolicy *pol);
void sitepolicy_problems_release(struct sitepolicy_problems *problems);

/* The top-level rules, as written (borrowed from pol). */
const struct sitepolicy_rules *sitepolicy_top(const struct sitepolicy *pol);

/* Entries of repos, in file order, and the glob of entry i < count. */
size_t sitepolicy_nrepos(const struct sitepolicy *pol);
const char *sitepolicy_repo_glob(const struct sitepolicy *pol, size_t i);

/*
 * The effective rules for repo ("owner/name", matched case-insensitively):
 * top level plus every matching repos entry. *out is the caller's (free
 * with sitepolicy_rules_free); its strings are borrowed from pol, which
 * must outlive it. GG_ENOMEM only.
 */
int sitepolicy_for_repo(struct sitepolicy_rules **out,
			const struct sitepolicy *pol, const char *repo,
			struct gg_err *err);

/* The top level plus repos entry i alone (what `policy check` prints for
 * each entry); as sitepolicy_for_repo otherwise. */
int sitepolicy_for_entry(struct sitepolicy_rules **out,
			 const struct sitepolicy *pol, size_t i,
			 struct gg_err *err);

void sitepolicy_rules_free(struct sitepolicy_rules *rules);

/* Does a protected_refs pattern of rules (NULL: none) match ref? */
bool sitepolicy_ref_protected(const struct sitepolicy_rules *rules,
			      const char *ref);

/*
 * Does email match an email glob of commit_emails? Email globs use
 * GLOB_FLAT | GLOB_CASEFOLD: '*' matches any run of bytes ('/' included:
 * a local part may hold one), letters match regardless of case (as mail
 * domains and, in practice, hosted identities do). The address itself
 * must hold exactly one '@' with something on both sides, so
 * "x@evil.test@example.com" matches no "*@example.com".
 */
bool sitepolicy_email_match(const char *pattern, const char *email);

#endif

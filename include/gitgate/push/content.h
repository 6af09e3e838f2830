/*
 * content.h - what a push carries: the site policy's content rules applied
 * to every new commit of a ref update (protected and forbidden paths, file
 * size, commit emails, secrets on added lines).
 *
 * Used by the proxy (push.c, on the mirror with the pushed pack attached)
 * and by `gitgate policy test` (on a local repository), so both decide the
 * same way.
 *
 * New commits: reachable from the new tip but from no ref of the
 * repository (upstream's refs, in the mirror) nor from the old value.
 * Every one is checked, merges included. A path counts as changed by a
 * commit when it differs from every parent (an evil merge is caught, a
 * plain merge of main is not); a root commit changes all its paths.
 *
 * Findings carry the rule (protected_path, forbidden_path, max_file_size,
 * commit_email, secret:<id>, content_check for what could not be
 * evaluated), the path (NULL for commit_email), the commit and the reason
 * line git shows. A secret is never quoted: only its rule, place and hash
 * (secretscan.h).
 *
 * Results per commit are remembered, so refs sharing history cost one
 * check. The work is bounded (GG_MAX_CONTENT_* in limits.h): past a bound
 * the check fails with GG_ELIMIT and the caller refuses (fail closed).
 */
#ifndef GITGATE_CONTENT_H
#define GITGATE_CONTENT_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"
#include "gitgate/push/secretscan.h"
#include "gitgate/push/sitepolicy.h"

struct git_repository;

/* Everything that decides a push's content; all borrowed. */
struct content_rules {
	const struct sitepolicy_rules *policy; /* NULL: no site policy */
	const char *const *allow_paths;	       /* token claim allow_paths */
	size_t nallow_paths;
	const char *const *emails; /* token claim emails; NULL: claim absent */
	size_t nemails;
	/* Compiled secret rules (all of the policy file's); only the ids the
	 * repository's rules name count. NULL: no secret scan. */
	const struct secretscan_db *db;
};

struct content_finding {
	char *rule;   /* "protected_path", "secret:github-pat", ... */
	char *path;   /* NULL for commit_email */
	char commit[41];
	size_t line;  /* secrets: line in the new file; else 0 */
	char hash[SECRETSCAN_HASH_HEX + 1]; /* secrets: the match's; else "" */
	char *reason; /* as git shows it */
};

/* One ref's findings: the first GG_MAX_CONTENT_FINDINGS; more counts the
 * rest. */
struct content_findings {
	struct content_finding *v;
	size_t n;
	size_t more;
};

struct content_check;

/* Would these rules check anything at all? */
bool content_rules_active(const struct content_rules *rules);

/* A checker over repo (borrowed). GG_ENOMEM, or GG_ERR when the secret
 * scan's working memory cannot be made. */
int content_check_new(struct content_check **out, struct git_repository *repo,
		      const struct content_rules *rules, struct gg_err *err);
void content_check_free(struct content_check *cc);

/*
 * Check the new commits of "update to new_hex from old_hex" (old_hex NULL
 * or all zeros for a creation). Commits reachable from any ref of the
 * repository are not new, except from except_ref (NULL: every ref counts;
 * `policy test` names the ref being updated). *out is filled (release it
 * with content_findings_release; empty when all is well). Returns 0,
 * GG_ENOTFOUND when an object the check needs is missing (fetch, retry),
 * GG_ELIMIT past a bound, GG_ERR for another failure (err says what).
 */
int content_check_ref(struct content_check *cc, const char *old_hex,
		      const char *new_hex, const char *except_ref,
		      struct content_findings *out, struct gg_err *err);

void content_findings_release(struct content_findings *f);

#endif

/*
 * policy.h - pure decisions about ref updates. No I/O.
 *
 * Pattern language (token claim "branches"):
 *   - a pattern starting with "refs/" is matched against the full ref name;
 *     otherwise it is matched against the name under "refs/heads/".
 *   - '*' matches any run of characters within one '/'-separated segment
 *     (possibly empty); "**" as a whole segment matches zero or more whole
 *     segments, except at the end, where it needs at least one (as in
 *     gitignore: pattern agent/ followed by ** matches "agent/x" and
 *     "agent/x/y", not "agent"); matching is case-sensitive (git ref names are).
 *   - tags are granted only by a pattern starting with "refs/tags/".
 */
#ifndef GITGATE_POLICY_H
#define GITGATE_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"

enum policy_action {
	POLICY_CREATE, /* old is zero */
	POLICY_UPDATE, /* new descends from old (fast-forward) */
	POLICY_FORCE,  /* non-fast-forward, or any move of an existing tag */
	POLICY_DELETE  /* new is zero */
};

const char *policy_action_name(enum policy_action action);

struct policy_rules {
	const char *const *patterns;
	size_t npatterns;
	bool allow_push; /* "push" in ops */
	bool allow_force;
	bool allow_delete;
};

/* Validate a pattern (used by mint): non-empty, no empty segments, no "..",
 * no leading/trailing '/', only ref-name-legal characters, '*' allowed. */
int policy_pattern_check(const char *pattern, struct gg_err *err);

/* Does refname match pattern (rules above)? */
bool policy_match(const char *pattern, const char *refname);

/*
 * Decide one ref update. Returns 0 if allowed; GG_EDENIED with err->msg the
 * reason git will show, e.g. "branch not allowed by token: allowed <patterns>",
 * "force-push not allowed by token", "deletion not allowed by token",
 * "tag not allowed by token: allowed <patterns>", "push not allowed by
 * token".
 * Reasons never use git's reserved strings ("non-fast forward", "fetch
 * first", ...), which git would rewrite.
 */
int policy_decide(const struct policy_rules *rules, const char *refname,
		  enum policy_action action, struct gg_err *err);

#endif

/*
 * glob.h - the one wildcard matcher of gitgate: ref patterns (policy.h),
 * and the site policy's path, repository and email globs (sitepolicy.h).
 * Pure, no allocation.
 *
 * Segmented matching (the default), written below with segment lists
 * because a slash followed by a star cannot appear in a C comment:
 *   - pattern and name are split into '/'-separated segments;
 *   - a pattern segment "**" matches zero or more whole segments, except
 *     when it is the last of a pattern that has other segments, like
 *     ["a", "**"]: there it matches one or more (gitignore's rule: the
 *     pattern grants what is inside a/, not a name "a" itself);
 *   - any other pattern segment matches exactly one name segment, in which
 *     '*' matches any run of bytes (possibly empty) and every other byte
 *     matches itself;
 *   - the whole name must match: a path glob ["CODEOWNERS"] matches only
 *     the file at the top of the tree, ["**", "CODEOWNERS"] matches it
 *     anywhere.
 *
 * GLOB_FLAT: no segments. '*' matches any run of bytes, '/' included, and
 * "**" is refused (it would mean the same as '*'). For email addresses,
 * whose local part may contain '/'.
 *
 * GLOB_CASEFOLD: ASCII letters match regardless of case (repository names
 * and email addresses; never paths or refs, which git keeps as written).
 *
 * Cost: O(pattern length x name length) at worst, never exponential; a
 * later "**" or '*' makes the earlier ones' choices irrelevant, so one
 * backtracking point per level suffices.
 */
#ifndef GITGATE_GLOB_H
#define GITGATE_GLOB_H

#include <stdbool.h>

#include "gitgate/core/err.h"

enum glob_flags {
	GLOB_FLAT = 1 << 0,
	GLOB_CASEFOLD = 1 << 1,
};

/*
 * Is pattern a well-formed glob? 1..GG_MAX_PATTERN_LEN bytes, no control
 * byte; segmented also: no leading or trailing '/', no empty, "." or ".."
 * segment, "**" only as a whole segment; flat: no "**". GG_EINVAL (or
 * GG_ELIMIT when too long) with err->msg `invalid glob "<pattern>": <why>`.
 * Callers add the rules of their kind of name on top (policy.h, for refs).
 */
int glob_check(const char *pattern, unsigned flags, struct gg_err *err);

/*
 * Does name match pattern (rules above)? False when pattern fails
 * glob_check, and, segmented, when name is empty, starts or ends with '/'
 * or has an empty segment: such a name is no path, ref or repository.
 */
bool glob_match(const char *pattern, const char *name, unsigned flags);

/*
 * Can pattern match some path below dir ("dir/x", "dir/x/y", ...)? dir is
 * a name, not a glob (".github/workflows"). Segmented patterns only:
 * false for GLOB_FLAT, a bad pattern or a bad dir. Decides whether a
 * token's allow_paths may change workflow files (upstream credential).
 */
bool glob_match_under(const char *pattern, const char *dir, unsigned flags);

#endif

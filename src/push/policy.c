/*
 * policy.c - ref pattern matching and push decisions (see policy.h).
 *
 * Matching is glob.h's segmented matching (the same code matches the
 * site policy's path globs), on the name under refs/heads/ or, for a
 * pattern starting with "refs/", on the full name. On top of it:
 *   - patterns follow git's ref-name rules (pattern_rule below), stricter
 *     than glob_check, so every valid pattern is also a valid glob;
 *   - tags (refs/tags/...) match only patterns that start with
 *     "refs/tags/", so a pattern ["refs", "**"] or ["*"] never grants a
 *     tag.
 */
#include "gitgate/push/policy.h"

#include <stdio.h>
#include <string.h>

#include "gitgate/core/glob.h"
#include "gitgate/core/limits.h"

#define HEADS "refs/heads/"
#define TAGS "refs/tags/"
/* ASCII, not "…": reasons travel through git and terminals of any
 * encoding, and gitgate's error scrubbing keeps messages ASCII. */
#define ELLIPSIS "..."

const char *policy_action_name(enum policy_action action)
{
	switch (action) {
	case POLICY_CREATE:
		return "create";
	case POLICY_UPDATE:
		return "update";
	case POLICY_FORCE:
		return "force";
	case POLICY_DELETE:
		return "delete";
	}
	return "unknown";
}

/* ---- pattern validation ---- */

static const char *pattern_char_rule(unsigned char c)
{
	if (c < 0x20 || c == 0x7f)
		return "contains a control character";
	if (c == ' ')
		return "contains a space";
	if (strchr("~^:?[\\", c))
		return "contains one of ~^:?[\\";
	return NULL;
}

/* Rules on one segment s[0..n) of a pattern. */
static const char *pattern_segment_rule(const char *s, size_t n)
{
	const char *star = memchr(s, '*', n);

	if (n == 0)
		return "has an empty segment";
	if (s[0] == '.')
		return "has a segment starting with '.'";
	if (n >= 5 && memcmp(s + n - 5, ".lock", 5) == 0)
		return "has a segment ending with \".lock\"";
	if (star && star + 1 < s + n && star[1] == '*' && n != 2)
		return "uses \"**\" inside a segment (it must be a whole "
		       "segment)";
	return NULL;
}

static const char *pattern_rule(const char *p, size_t len)
{
	const char *why = NULL;
	size_t i, start;

	if (len == 0)
		return "is empty";
	if (len > GG_MAX_PATTERN_LEN)
		return "is too long";
	if (p[0] == '/')
		return "starts with '/'";
	if (p[len - 1] == '/')
		return "ends with '/'";
	if (p[len - 1] == '.')
		return "ends with '.'";
	for (i = 0; i < len && !why; i++) {
		why = pattern_char_rule((unsigned char)p[i]);
		if (!why && p[i] == '.' && p[i + 1] == '.')
			why = "contains \"..\"";
		if (!why && p[i] == '@' && p[i + 1] == '{')
			why = "contains \"@{\"";
	}
	for (start = 0, i = 0; i <= len && !why; i++) {
		if (i < len && p[i] != '/')
			continue;
		why = pattern_segment_rule(p + start, i - start);
		start = i + 1;
	}
	return why;
}

int policy_pattern_check(const char *pattern, struct gg_err *err)
{
	size_t len = strnlen(pattern, GG_MAX_PATTERN_LEN + 1);
	const char *why = pattern_rule(pattern, len);
	char shown[80];

	if (!why)
		return 0;
	gg_err_sanitize(shown, sizeof(shown), pattern, len);
	return gg_err_set(err, len > GG_MAX_PATTERN_LEN ? GG_ELIMIT : GG_EINVAL,
			  "invalid ref pattern \"%s\": %s", shown, why);
}

/* ---- matching ---- */

static bool starts_with(const char *s, const char *pre)
{
	return strncmp(s, pre, strlen(pre)) == 0;
}

bool policy_match(const char *pattern, const char *refname)
{
	if (!pattern || !refname ||
	    pattern_rule(pattern, strnlen(pattern, GG_MAX_PATTERN_LEN + 1)) !=
		    NULL)
		return false;
	if (strnlen(refname, GG_MAX_REFNAME + 1) > GG_MAX_REFNAME)
		return false;
	if (starts_with(refname, TAGS) && !starts_with(pattern, TAGS))
		return false;
	if (starts_with(pattern, "refs/"))
		return glob_match(pattern, refname, 0);
	if (!starts_with(refname, HEADS))
		return false;
	return glob_match(pattern, refname + strlen(HEADS), 0);
}

/* ---- decisions ---- */

/*
 * "allowed p1, p2, ..." into buf, cut with "..." so the whole reason stays
 * within GG_MAX_REASON_LEN bytes (git shows it on one line).
 */
static void format_allowed(char *buf, size_t size, const char *prefix,
			   const struct policy_rules *rules)
{
	const size_t tail = sizeof(", " ELLIPSIS);
	size_t len, i, n;

	len = (size_t)snprintf(buf, size, "%s: allowed ", prefix);
	if (rules->npatterns == 0) {
		snprintf(buf + len, size - len, "nothing");
		return;
	}
	for (i = 0; i < rules->npatterns; i++) {
		n = strlen(rules->patterns[i]) + (i ? 2 : 0);
		/* room for this pattern, and "..." too unless it is last */
		if (len + n + (i + 1 < rules->npatterns ? tail : 1) > size) {
			snprintf(buf + len, size - len, "%s" ELLIPSIS,
				 i ? ", " : "");
			return;
		}
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
					i ? ", " : "", rules->patterns[i]);
	}
}

static const char *ref_kind_word(const char *refname)
{
	if (starts_with(refname, HEADS))
		return "branch";
	if (starts_with(refname, TAGS))
		return "tag";
	return "ref";
}

static bool any_match(const struct policy_rules *rules, const char *refname)
{
	size_t i;

	for (i = 0; i < rules->npatterns; i++)
		if (policy_match(rules->patterns[i], refname))
			return true;
	return false;
}

int policy_decide(const struct policy_rules *rules, const char *refname,
		  enum policy_action action, struct gg_err *err)
{
	char reason[GG_MAX_REASON_LEN + 1];
	char prefix[32];

	if (!rules->allow_push)
		return gg_err_set(err, GG_EDENIED, "push not allowed by token");
	if (!any_match(rules, refname)) {
		snprintf(prefix, sizeof(prefix), "%s not allowed by token",
			 ref_kind_word(refname));
		format_allowed(reason, sizeof(reason), prefix, rules);
		return gg_err_set(err, GG_EDENIED, "%s", reason);
	}
	if (action == POLICY_FORCE && !rules->allow_force)
		return gg_err_set(err, GG_EDENIED,
				  "force-push not allowed by token");
	if (action == POLICY_DELETE && !rules->allow_delete)
		return gg_err_set(err, GG_EDENIED,
				  "deletion not allowed by token");
	/* Deleting one stays allowed: it is how such a ref is got rid of. */
	if (action != POLICY_DELETE &&
	    strnlen(refname, GG_MAX_NEW_REFNAME + 1) > GG_MAX_NEW_REFNAME)
		return gg_err_set(err, GG_EDENIED,
				  "ref name longer than %d bytes not allowed "
				  "(gitgate could no longer check the "
				  "repository's history)",
				  GG_MAX_NEW_REFNAME);
	return 0;
}

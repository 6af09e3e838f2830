/*
 * glob.c - wildcard matching over '/'-separated segments (see glob.h).
 */
#include "gitgate/core/glob.h"

#include <string.h>

#include "gitgate/core/limits.h"

/* ---- validation ---- */

static bool is_globstar(const char *s, size_t n)
{
	return n == 2 && s[0] == '*' && s[1] == '*';
}

/* Rules on one segment s[0..n) of a segmented pattern. */
static const char *segment_rule(const char *s, size_t n)
{
	const char *star = memchr(s, '*', n);

	if (n == 0)
		return "has an empty segment";
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return "has a \".\" or \"..\" segment";
	if (star && star + 1 < s + n && star[1] == '*' && !is_globstar(s, n))
		return "uses \"**\" inside a segment (it must be a whole "
		       "segment)";
	return NULL;
}

static const char *segments_rule(const char *p, size_t len)
{
	const char *why = NULL;
	size_t i, start = 0;

	if (p[0] == '/')
		return "starts with '/'";
	if (p[len - 1] == '/')
		return "ends with '/'";
	for (i = 0; i <= len && !why; i++) {
		if (i < len && p[i] != '/')
			continue;
		why = segment_rule(p + start, i - start);
		start = i + 1;
	}
	return why;
}

static const char *glob_rule(const char *p, size_t len, unsigned flags)
{
	size_t i;

	if (len == 0)
		return "is empty";
	if (len > GG_MAX_PATTERN_LEN)
		return "is too long";
	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return "contains a control character";
	if (!(flags & GLOB_FLAT))
		return segments_rule(p, len);
	if (strstr(p, "**"))
		return "uses \"**\" (here '*' already matches anything)";
	return NULL;
}

int glob_check(const char *pattern, unsigned flags, struct gg_err *err)
{
	size_t len = strnlen(pattern, GG_MAX_PATTERN_LEN + 1);
	const char *why = glob_rule(pattern, len, flags);
	char shown[80];

	if (!why)
		return 0;
	gg_err_sanitize(shown, sizeof(shown), pattern, len);
	return gg_err_set(err, len > GG_MAX_PATTERN_LEN ? GG_ELIMIT : GG_EINVAL,
			  "invalid glob \"%s\": %s", shown, why);
}

/* ---- matching ---- */

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool byte_eq(char a, char b, bool fold)
{
	return a == b || (fold && ascii_lower(a) == ascii_lower(b));
}

/* '*'-glob over bytes: p[0..pn) against s[0..sn). On a mismatch the last
 * '*' absorbs one more byte and matching resumes after it. */
static bool star_match(const char *p, size_t pn, const char *s, size_t sn,
		       bool fold)
{
	size_t pi = 0, si = 0, star_p = 0, star_s = 0;
	bool star = false;

	while (si < sn) {
		if (pi < pn && p[pi] == '*') {
			star = true;
			star_p = ++pi;
			star_s = si;
		} else if (pi < pn && byte_eq(p[pi], s[si], fold)) {
			pi++;
			si++;
		} else if (star) {
			pi = star_p;
			si = ++star_s;
		} else {
			return false;
		}
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

/* Segment cursor: s[0..n) is the current segment; s == NULL at the end. */
struct seg {
	const char *s;
	size_t n;
};

static struct seg seg_first(const char *str)
{
	struct seg g = {str, strcspn(str, "/")};

	return g;
}

static struct seg seg_next(struct seg g)
{
	if (g.s[g.n] == '\0') {
		g.s = NULL;
		g.n = 0;
		return g;
	}
	return seg_first(g.s + g.n + 1);
}

static bool seg_is_globstar(struct seg g)
{
	return g.s && is_globstar(g.s, g.n);
}

/*
 * Match segment lists, the same algorithm one level up: star_p/star_n
 * remember where the last "**" began and how much of the name it has
 * absorbed; on a mismatch it absorbs one more segment.
 */
static bool segments_match(const char *pattern, const char *name, bool fold)
{
	struct seg p = seg_first(pattern), n = seg_first(name);
	struct seg star_p = {NULL, 0}, star_n = {NULL, 0};
	bool have_star = false, first = true;

	for (;;) {
		if (seg_is_globstar(p)) {
			if (!first && !seg_next(p).s)
				return n.s != NULL; /* trailing: one or more */
			have_star = true;
			star_p = p = seg_next(p);
			star_n = n;
			first = false;
			continue;
		}
		first = false;
		if (!n.s)
			return p.s == NULL;
		if (p.s && star_match(p.s, p.n, n.s, n.n, fold)) {
			p = seg_next(p);
			n = seg_next(n);
			continue;
		}
		if (!have_star || !star_n.s)
			return false;
		star_n = seg_next(star_n);
		n = star_n;
		p = star_p;
	}
}

/* A name we are willing to match: no empty segments anywhere. */
static bool name_shape_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && name[0] != '/' && name[len - 1] != '/' &&
	       !strstr(name, "//");
}

bool glob_match(const char *pattern, const char *name, unsigned flags)
{
	bool fold = (flags & GLOB_CASEFOLD) != 0;
	size_t plen;

	if (!pattern || !name)
		return false;
	plen = strnlen(pattern, GG_MAX_PATTERN_LEN + 1);
	if (glob_rule(pattern, plen, flags))
		return false;
	if (flags & GLOB_FLAT)
		return *name &&
		       star_match(pattern, plen, name, strlen(name), fold);
	return name_shape_ok(name) && segments_match(pattern, name, fold);
}

/* Pattern segments reachable once the globstars at or after them have
 * been given nothing (they match zero segments). */
static void globstar_closure(bool *at, const struct seg *segs, size_t k)
{
	size_t i;

	for (i = 0; i < k; i++)
		if (at[i] && seg_is_globstar(segs[i]))
			at[i + 1] = true;
}

/*
 * Run the pattern's segments as an automaton over dir's segments (a set
 * of positions, as a "**" may absorb or let pass each segment); dir's
 * paths can match when some position short of the end survives: what is
 * left of the pattern can then be given a name below dir.
 */
bool glob_match_under(const char *pattern, const char *dir, unsigned flags)
{
	struct seg segs[GG_MAX_PATTERN_LEN / 2 + 1], p, d;
	bool cur[GG_MAX_PATTERN_LEN / 2 + 2], next[sizeof(cur)], any;
	bool fold = (flags & GLOB_CASEFOLD) != 0;
	size_t k = 0, i;

	if (!pattern || !dir || (flags & GLOB_FLAT) ||
	    glob_rule(pattern, strnlen(pattern, GG_MAX_PATTERN_LEN + 1),
		      flags) ||
	    !name_shape_ok(dir))
		return false;
	for (p = seg_first(pattern); p.s; p = seg_next(p))
		segs[k++] = p;
	memset(cur, 0, sizeof(cur));
	cur[0] = true;
	globstar_closure(cur, segs, k);
	for (d = seg_first(dir); d.s; d = seg_next(d)) {
		memset(next, 0, sizeof(next));
		any = false;
		for (i = 0; i < k; i++) {
			if (!cur[i])
				continue;
			if (seg_is_globstar(segs[i]))
				any = next[i] = true;
			else if (star_match(segs[i].s, segs[i].n, d.s, d.n,
					    fold))
				any = next[i + 1] = true;
		}
		if (!any)
			return false;
		memcpy(cur, next, sizeof(cur));
		globstar_closure(cur, segs, k);
	}
	for (i = 0; i < k; i++)
		if (cur[i])
			return true;
	return false;
}

/*
 * sitepolicy.c - parse and validate the site-policy file, and merge its
 * rules for one repository (see sitepolicy.h).
 *
 * The parser walks jansson's tree once, in file order, and turns every
 * problem into a line on the spot; it never stops at the first. Where a
 * problem is, jansson cannot say for a value it parsed fine, so each value
 * carries its path (member and element indexes from the root) and locate
 * walks the text along that path to find it again: the text is known to
 * be valid JSON by then, so the walk needs no error handling, only bounds.
 * A walk costs one pass over the text at most, and only the problems kept
 * (GG_MAX_POLICY_PROBLEMS) are located.
 */
#include "gitgate/push/sitepolicy.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/core/array.h"
#include "gitgate/core/glob.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/size.h"
#include "gitgate/push/policy.h"

/* One level of the file, the top or one repos entry; strings owned. */
struct level {
	char *glob; /* repos key; NULL at the top */
	struct sitepolicy_rules rules;
	bool has_max_file_size;
	bool has_secrets;
};

struct sitepolicy {
	struct level top;
	struct level *repos;
	size_t nrepos;
};

/* ---- where a value is ---- */

/* Deepest value: repos -> entry -> secret_rules -> rule -> member. */
#define JPATH_MAX 6
#define LABEL_MAX 200

/* A value: its indexes from the root (member index in an object, element
 * index in an array) and its name in messages. */
struct at {
	size_t idx[JPATH_MAX];
	size_t depth;
	char label[LABEL_MAX];
};

static void label_append(struct at *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* a->label += fmt..., cut at LABEL_MAX. */
static void label_append(struct at *a, const char *fmt, ...)
{
	size_t n = strlen(a->label);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->label + n, sizeof(a->label) - n, fmt, ap);
	va_end(ap);
}

static void at_child(struct at *child, const struct at *parent, size_t i)
{
	*child = *parent;
	if (child->depth < JPATH_MAX)
		child->idx[child->depth++] = i;
}

/* Member i of an object, named key (shown sanitised). */
static void at_member(struct at *child, const struct at *parent, size_t i,
		      const char *key)
{
	char safe[64];

	at_child(child, parent, i);
	gg_err_sanitize(safe, sizeof(safe), key, strlen(key));
	label_append(child, "%s%s", parent->label[0] ? "." : "", safe);
}

static void at_element(struct at *child, const struct at *parent, size_t i)
{
	at_child(child, parent, i);
	label_append(child, "[%zu]", i);
}

/* A member that is not there: reported where its object starts. */
static void at_missing(struct at *child, const struct at *parent,
		       const char *key)
{
	*child = *parent;
	label_append(child, ".%s", key);
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *t, size_t len, size_t i)
{
	while (i < len && is_ws(t[i]))
		i++;
	return i;
}

/* i at a '"': just past the closing one. */
static size_t skip_string(const char *t, size_t len, size_t i)
{
	for (i++; i < len && t[i] != '"'; i++)
		if (t[i] == '\\')
			i++;
	return i < len ? i + 1 : len;
}

/* i at a value: just past it. */
static size_t skip_value(const char *t, size_t len, size_t i)
{
	size_t depth = 0;

	while (i < len) {
		if (t[i] == '"') {
			i = skip_string(t, len, i);
			if (depth == 0)
				return i;
			continue;
		}
		if (t[i] == '{' || t[i] == '[') {
			depth++;
		} else if (t[i] == '}' || t[i] == ']') {
			if (depth == 0)
				return i; /* end of a scalar */
			if (--depth == 0)
				return i + 1;
		} else if (depth == 0 && (t[i] == ',' || is_ws(t[i]))) {
			return i;
		}
		i++;
	}
	return i;
}

/* i at a member's key: where its value starts. */
static size_t member_value(const char *t, size_t len, size_t i)
{
	i = skip_ws(t, len, skip_string(t, len, i));
	if (i < len && t[i] == ':')
		i++;
	return skip_ws(t, len, i);
}

/* i at a value in a list: where the next item starts. */
static size_t next_item(const char *t, size_t len, size_t i)
{
	i = skip_ws(t, len, skip_value(t, len, i));
	if (i < len && t[i] == ',')
		i++;
	return skip_ws(t, len, i);
}

/* Offset of the value at, or of its key (the last index is a member). */
static size_t locate(const char *t, size_t len, const struct at *at, bool key)
{
	size_t i = skip_ws(t, len, 0), d, k;
	bool obj;

	for (d = 0; d < at->depth && i < len; d++) {
		obj = t[i] == '{';
		i = skip_ws(t, len, i + 1);
		for (k = 0; k < at->idx[d] && i < len; k++)
			i = next_item(t, len,
				      obj ? member_value(t, len, i) : i);
		if (obj && !(key && d + 1 == at->depth))
			i = member_value(t, len, i);
	}
	return i;
}

/* Line and column of offset off, counted as jansson counts them: from 1,
 * columns in characters (UTF-8 continuation bytes do not count). */
static void text_position(int *line, int *col, const char *t, size_t off)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off; i++) {
		if (t[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)t[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

/* ---- problems ---- */

struct seen_id {
	const char *id;
	struct at at;
};

struct parser {
	const char *path;
	const char *text;
	size_t len;
	const struct sitepolicy_opts *opts;
	struct sitepolicy_problems probs;
	size_t npatterns; /* in all lists so far */
	size_t nrules;
	struct seen_id *ids; /* secret rule ids so far, GG_MAX_SECRET_RULES */
	size_t nids;
	bool nomem;
};

/* One problem line. The reason may quote the file (a value, jansson's
 * "near" text): non-printable bytes become '?', as in every message. */
static void add_line(struct parser *ps, int line, int col, const char *label,
		     const char *text)
{
	void *lines = ps->probs.lines;
	char reason[GG_ERR_MSG_MAX];
	size_t n;
	char *s;

	if (ps->probs.n >= GG_MAX_POLICY_PROBLEMS) {
		ps->probs.more++;
		return;
	}
	gg_err_sanitize(reason, sizeof(reason), text, strlen(text));
	n = strlen(ps->path) + strlen(label) + strlen(reason) + 32;
	s = malloc(n);
	if (!s || array_grow(&lines, ps->probs.n, sizeof(char *),
			     GG_MAX_POLICY_PROBLEMS) != GG_OK) {
		free(s);
		ps->nomem = true;
		return;
	}
	snprintf(s, n, "%s:%d:%d: %s%s%s", ps->path, line, col, label,
		 label[0] ? ": " : "", reason);
	ps->probs.lines = lines;
	ps->probs.lines[ps->probs.n++] = s;
}

static void problem(struct parser *ps, const struct at *at, bool key,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A problem with the value at (or its key): one line, positioned. */
static void problem(struct parser *ps, const struct at *at, bool key,
		    const char *fmt, ...)
{
	char reason[GG_ERR_MSG_MAX];
	va_list ap;
	int line, col;

	if (ps->probs.n >= GG_MAX_POLICY_PROBLEMS) {
		ps->probs.more++; /* no position needed: spare the walk */
		return;
	}
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	text_position(&line, &col, ps->text,
		      locate(ps->text, ps->len, at, key));
	add_line(ps, line, col, at->label, reason);
}

/* ---- values ---- */

enum kind { KIND_REF, KIND_PATH, KIND_EMAIL };

static const char *const kind_noun[] = {
	[KIND_REF] = "ref patterns",
	[KIND_PATH] = "path globs",
	[KIND_EMAIL] = "email globs",
};

/* Email globs: flat globs that look like an address. */
static int email_glob_check(const char *pattern, struct gg_err *err)
{
	const char *at = strchr(pattern, '@');
	char shown[80];
	int rc = glob_check(pattern, GLOB_FLAT | GLOB_CASEFOLD, err);

	if (rc)
		return rc;
	gg_err_sanitize(shown, sizeof(shown), pattern, strlen(pattern));
	if (!at || at == pattern || !at[1] || strchr(at + 1, '@'))
		return gg_err_set(err, GG_EINVAL,
				  "invalid email glob \"%s\": needs exactly "
				  "one '@' with something on each side",
				  shown);
	if (strpbrk(pattern, " <>"))
		return gg_err_set(err, GG_EINVAL,
				  "invalid email glob \"%s\": contains a "
				  "space, '<' or '>'",
				  shown);
	return 0;
}

static int kind_check(enum kind kind, const char *s, struct gg_err *err)
{
	switch (kind) {
	case KIND_REF:
		return policy_pattern_check(s, err);
	case KIND_PATH:
		return glob_check(s, 0, err);
	case KIND_EMAIL:
		return email_glob_check(s, err);
	}
	return GG_EINVAL;
}

/* The pattern item at, or NULL after reporting why not. */
static const char *pattern_item(struct parser *ps, json_t *item,
				const struct at *at, enum kind kind)
{
	struct gg_err e = GG_ERR_INIT;

	if (!json_is_string(item)) {
		problem(ps, at, false, "must be a string");
		return NULL;
	}
	if (kind_check(kind, json_string_value(item), &e) != 0) {
		problem(ps, at, false, "%s", e.msg);
		return NULL;
	}
	return json_string_value(item);
}

static void parse_list(struct parser *ps, struct sitepolicy_list *out,
		       json_t *v, const struct at *at, enum kind kind)
{
	struct at child;
	const char *s;
	json_t *item;
	size_t i, n;

	if (!json_is_array(v)) {
		problem(ps, at, false, "must be an array of %s",
			kind_noun[kind]);
		return;
	}
	n = json_array_size(v);
	if (n > GG_MAX_POLICY_PATTERNS - ps->npatterns) {
		problem(ps, at, false,
			"too many patterns: the file may hold %d in all its "
			"lists together",
			GG_MAX_POLICY_PATTERNS);
		ps->npatterns = GG_MAX_POLICY_PATTERNS;
		return;
	}
	ps->npatterns += n;
	out->v = calloc(n ? n : 1, sizeof(*out->v));
	if (!out->v) {
		ps->nomem = true;
		return;
	}
	json_array_foreach(v, i, item) {
		at_element(&child, at, i);
		s = pattern_item(ps, item, &child, kind);
		if (!s)
			continue;
		out->v[out->n] = strdup(s);
		if (!out->v[out->n])
			ps->nomem = true;
		else
			out->n++;
	}
}

static void parse_size(struct parser *ps, struct level *lv, json_t *v,
		       const struct at *at)
{
	struct gg_err e = GG_ERR_INIT;

	if (!json_is_string(v))
		problem(ps, at, false,
			"must be a string such as \"50M\" (a bare number "
			"would not say its unit)");
	else if (size_parse(&lv->rules.max_file_size, json_string_value(v),
			    &e) != 0)
		problem(ps, at, false, "%s", e.msg);
	else
		lv->has_max_file_size = true;
}

static void parse_secrets(struct parser *ps, struct level *lv, json_t *v,
			  const struct at *at)
{
	if (!json_is_boolean(v)) {
		problem(ps, at, false, "must be true or false");
		return;
	}
	lv->rules.secrets = json_is_true(v);
	lv->has_secrets = true;
}

/* ---- secret rules ---- */

static bool id_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '-';
}

/* A rule id already used in the file, or NULL. */
static const struct seen_id *seen_id(const struct parser *ps, const char *id)
{
	size_t i;

	for (i = 0; i < ps->nids; i++)
		if (!strcmp(ps->ids[i].id, id))
			return &ps->ids[i];
	return NULL;
}

/* v as a string of 1..max bytes, or NULL after reporting why not. */
static const char *bounded_string(struct parser *ps, json_t *v,
				  const struct at *at, size_t max)
{
	const char *s = json_string_value(v);

	if (!s || !*s) {
		problem(ps, at, false, "must be a non-empty string");
		return NULL;
	}
	if (strlen(s) > max) {
		problem(ps, at, false, "is longer than %zu bytes", max);
		return NULL;
	}
	return s;
}

/* Ids name rules in reasons and audit records: one id, one rule, even
 * across repos entries that may both apply to a repository. */
static bool id_is_new(struct parser *ps, const char *id, const struct at *at)
{
	const struct seen_id *first = seen_id(ps, id);
	int line, col;

	if (first) {
		text_position(&line, &col, ps->text,
			      locate(ps->text, ps->len, &first->at, false));
		problem(ps, at, false,
			"\"%s\" is already the id of %s (line %d)", id,
			first->at.label, line);
		return false;
	}
	ps->ids[ps->nids].id = id;
	ps->ids[ps->nids++].at = *at;
	return true;
}

static const char *rule_id(struct parser *ps, json_t *v, const struct at *at)
{
	const char *id = bounded_string(ps, v, at, GG_MAX_SECRET_RULE_ID), *p;

	if (!id)
		return NULL;
	for (p = id; *p && id_char_ok(*p); p++)
		;
	if (*p) {
		problem(ps, at, false,
			"\"%s\" may use only a-z, 0-9, '.', '_' and '-'", id);
		return NULL;
	}
	return id_is_new(ps, id, at) ? id : NULL;
}

/* The engine's verdict, when the caller gave us one. */
static void compile_check(struct parser *ps, const char *id, const char *re,
			  const struct at *at)
{
	struct gg_err e = GG_ERR_INIT;

	if (!ps->opts || !ps->opts->check_regex)
		return;
	if (ps->opts->check_regex(ps->opts->payload, id, re, &e) != 0)
		problem(ps, at, false, "rule \"%s\": %s", id,
			e.msg[0] ? e.msg : "does not compile");
}

/* One {"id", "regex"}; 0 when out holds it (owned copies). */
static int parse_rule(struct parser *ps, struct sitepolicy_secret_rule *out,
		      json_t *obj, const struct at *at)
{
	const char *key, *id = NULL, *re = NULL;
	struct at child, re_at;
	json_t *v;
	size_t i = 0;

	if (!json_is_object(obj)) {
		problem(ps, at, false, "must be an object {\"id\", \"regex\"}");
		return -1;
	}
	at_missing(&child, at, "id");
	if (!json_object_get(obj, "id"))
		problem(ps, &child, false, "required");
	at_missing(&re_at, at, "regex");
	if (!json_object_get(obj, "regex"))
		problem(ps, &re_at, false, "required");
	json_object_foreach(obj, key, v) {
		at_member(&child, at, i++, key);
		if (!strcmp(key, "id")) {
			id = rule_id(ps, v, &child);
		} else if (!strcmp(key, "regex")) {
			re = bounded_string(ps, v, &child, GG_MAX_SECRET_REGEX);
			re_at = child;
		} else {
			problem(ps, &child, true, "unknown key");
		}
	}
	if (!id || !re)
		return -1;
	compile_check(ps, id, re, &re_at);
	out->id = strdup(id);
	out->regex = strdup(re);
	if (!out->id || !out->regex)
		ps->nomem = true;
	return 0;
}

static void parse_secret_rules(struct parser *ps, struct level *lv, json_t *v,
			       const struct at *at)
{
	struct sitepolicy_secret_rule *rules;
	struct at child;
	json_t *item;
	size_t i, n;

	if (!json_is_array(v)) {
		problem(ps, at, false,
			"must be an array of {\"id\", \"regex\"} objects");
		return;
	}
	n = json_array_size(v);
	if (n > GG_MAX_SECRET_RULES - ps->nrules) {
		problem(ps, at, false,
			"too many rules: the file may hold %d in all",
			GG_MAX_SECRET_RULES);
		ps->nrules = GG_MAX_SECRET_RULES;
		return;
	}
	ps->nrules += n;
	rules = calloc(n ? n : 1, sizeof(*rules));
	if (!rules) {
		ps->nomem = true;
		return;
	}
	lv->rules.secret_rules = rules;
	json_array_foreach(v, i, item) {
		at_element(&child, at, i);
		if (parse_rule(ps, &rules[lv->rules.nsecret_rules], item,
			       &child) == 0)
			lv->rules.nsecret_rules++;
	}
}

/* ---- levels and repos ---- */

static const struct {
	const char *key;
	size_t off;
	enum kind kind;
} list_keys[] = {
	{"protected_refs", offsetof(struct sitepolicy_rules, protected_refs),
	 KIND_REF},
	{"protected_paths", offsetof(struct sitepolicy_rules, protected_paths),
	 KIND_PATH},
	{"forbidden_paths", offsetof(struct sitepolicy_rules, forbidden_paths),
	 KIND_PATH},
	{"commit_emails", offsetof(struct sitepolicy_rules, commit_emails),
	 KIND_EMAIL},
};

static void parse_repos(struct parser *ps, struct sitepolicy *pol, json_t *v,
			const struct at *at);

/* One member of a level; false if key is no list key. */
static bool parse_list_member(struct parser *ps, struct level *lv,
			      const char *key, json_t *v, const struct at *at)
{
	size_t i;

	for (i = 0; i < sizeof(list_keys) / sizeof(list_keys[0]); i++) {
		if (strcmp(key, list_keys[i].key))
			continue;
		parse_list(ps,
			   (struct sitepolicy_list *)((char *)&lv->rules +
						      list_keys[i].off),
			   v, at, list_keys[i].kind);
		return true;
	}
	return false;
}

static void parse_member(struct parser *ps, struct sitepolicy *pol,
			 struct level *lv, const char *key, json_t *v,
			 const struct at *at)
{
	if (parse_list_member(ps, lv, key, v, at))
		return;
	if (!strcmp(key, "max_file_size"))
		parse_size(ps, lv, v, at);
	else if (!strcmp(key, "secrets"))
		parse_secrets(ps, lv, v, at);
	else if (!strcmp(key, "secret_rules"))
		parse_secret_rules(ps, lv, v, at);
	else if (!strcmp(key, "repos") && lv == &pol->top)
		parse_repos(ps, pol, v, at);
	else if (!strcmp(key, "repos"))
		problem(ps, at, true,
			"not allowed inside a repos entry (entries do not "
			"nest)");
	else
		problem(ps, at, true, "unknown key");
}

static void parse_level(struct parser *ps, struct sitepolicy *pol,
			struct level *lv, json_t *obj, const struct at *at)
{
	struct at child;
	const char *key;
	json_t *v;
	size_t i = 0;

	json_object_foreach(obj, key, v) {
		at_member(&child, at, i++, key);
		parse_member(ps, pol, lv, key, v, &child);
	}
}

static bool repo_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	       c == '*';
}

/* The reason glob (a checked glob) is no owner/name glob, or NULL. */
static const char *repo_glob_rule(const char *glob)
{
	const char *slash = strchr(glob, '/'), *p;

	if (!slash || strchr(slash + 1, '/'))
		return "must be OWNER/NAME (each may use '*')";
	if ((size_t)(slash - glob) > GG_MAX_REPO_PART ||
	    strlen(slash + 1) > GG_MAX_REPO_PART)
		return "owner and name are at most 100 characters each";
	for (p = glob; *p; p++)
		if (*p != '/' && !repo_char_ok(*p))
			return "may use only letters, digits, '.', '_', '-' "
			       "and '*'";
	if (strstr(glob, "**"))
		return "\"**\" has no use here ('*' matches a whole owner or "
		       "name)";
	return NULL;
}

static void check_repo_glob(struct parser *ps, const char *glob,
			    const struct at *at)
{
	struct gg_err e = GG_ERR_INIT;
	const char *why;
	char shown[80];

	if (glob_check(glob, GLOB_CASEFOLD, &e) != 0) {
		problem(ps, at, true, "%s", e.msg);
		return;
	}
	why = repo_glob_rule(glob);
	gg_err_sanitize(shown, sizeof(shown), glob, strlen(glob));
	if (why)
		problem(ps, at, true, "invalid repository glob \"%s\": %s",
			shown, why);
}

/* Member i of repos, key glob: labelled repos["<glob>"]. */
static void at_repo(struct at *child, const struct at *parent, size_t i,
		    const char *glob)
{
	char safe[80];

	at_child(child, parent, i);
	gg_err_sanitize(safe, sizeof(safe), glob, strlen(glob));
	label_append(child, "[\"%s\"]", safe);
}

static void parse_repos(struct parser *ps, struct sitepolicy *pol, json_t *v,
			const struct at *at)
{
	struct level *lv;
	struct at child;
	const char *key;
	json_t *entry;
	size_t i = 0;

	if (!json_is_object(v)) {
		problem(ps, at, false,
			"must be an object of \"owner/name\" globs");
		return;
	}
	if (json_object_size(v) > GG_MAX_POLICY_REPOS) {
		problem(ps, at, false, "too many entries (at most %d)",
			GG_MAX_POLICY_REPOS);
		return;
	}
	pol->repos = calloc(json_object_size(v) + 1, sizeof(*pol->repos));
	if (!pol->repos) {
		ps->nomem = true;
		return;
	}
	json_object_foreach(v, key, entry) {
		at_repo(&child, at, i++, key);
		check_repo_glob(ps, key, &child);
		if (!json_is_object(entry)) {
			problem(ps, &child, false,
				"must be an object of rules");
			continue;
		}
		lv = &pol->repos[pol->nrepos++];
		lv->glob = strdup(key);
		if (!lv->glob)
			ps->nomem = true;
		parse_level(ps, pol, lv, entry, &child);
	}
}

/* ---- parse ---- */

static void level_release(struct level *lv)
{
	const struct sitepolicy_list *lists[] = {
		&lv->rules.protected_refs, &lv->rules.protected_paths,
		&lv->rules.forbidden_paths, &lv->rules.commit_emails};
	size_t i, k;

	for (k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
		for (i = 0; i < lists[k]->n; i++)
			free((char *)lists[k]->v[i]);
		free(lists[k]->v);
	}
	for (i = 0; i < lv->rules.nsecret_rules; i++) {
		free((char *)lv->rules.secret_rules[i].id);
		free((char *)lv->rules.secret_rules[i].regex);
	}
	free((void *)lv->rules.secret_rules);
	free(lv->glob);
}

void sitepolicy_free(struct sitepolicy *pol)
{
	size_t i;

	if (!pol)
		return;
	level_release(&pol->top);
	for (i = 0; i < pol->nrepos; i++)
		level_release(&pol->repos[i]);
	free(pol->repos);
	free(pol);
}

void sitepolicy_problems_release(struct sitepolicy_problems *problems)
{
	size_t i;

	if (!problems)
		return;
	for (i = 0; i < problems->n; i++)
		free(problems->lines[i]);
	free(problems->lines);
	problems->lines = NULL;
	problems->n = 0;
	problems->more = 0;
}

static void parse_root(struct parser *ps, struct sitepolicy *pol)
{
	struct at root = {.depth = 0, .label = ""};
	json_error_t jerr;
	json_t *doc;

	doc = json_loadb(ps->text, ps->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc)
		add_line(ps, jerr.line > 0 ? jerr.line : 1,
			 jerr.column > 0 ? jerr.column : 1, "", jerr.text);
	else if (!json_is_object(doc))
		problem(ps, &root, false, "the policy must be a JSON object");
	else
		parse_level(ps, pol, &pol->top, doc, &root);
	json_decref(doc);
}

/* err: the first problem, and how many others there are. */
static int report(const struct parser *ps, struct gg_err *err)
{
	size_t others = ps->probs.n - 1 + ps->probs.more;
	char suffix[48] = "", first[GG_ERR_MSG_MAX];

	if (others)
		snprintf(suffix, sizeof(suffix), " (and %zu more)", others);
	snprintf(first, sizeof(first) - strlen(suffix), "%s",
		 ps->probs.lines[0]);
	return gg_err_set(err, GG_EINVAL, "%s%s", first, suffix);
}

int sitepolicy_parse(struct sitepolicy **out, const char *path,
		     const char *text, size_t len,
		     const struct sitepolicy_opts *opts, struct gg_err *err)
{
	struct parser ps = {
		.path = path, .text = text, .len = len, .opts = opts};
	struct sitepolicy *pol;
	int ret;

	*out = NULL;
	if (len > GG_MAX_POLICY_LEN)
		return gg_err_set(err, GG_ELIMIT, "%s: larger than %d bytes",
				  path, GG_MAX_POLICY_LEN);
	pol = calloc(1, sizeof(*pol));
	ps.ids = calloc(GG_MAX_SECRET_RULES, sizeof(*ps.ids));
	if (pol && ps.ids)
		parse_root(&ps, pol);
	if (!pol || !ps.ids || ps.nomem) {
		ret = gg_err_set(err, GG_ENOMEM, "%s: out of memory", path);
	} else if (ps.probs.n) {
		ret = report(&ps, err);
	} else {
		*out = pol;
		pol = NULL;
		ret = GG_OK;
	}
	if (ret == GG_EINVAL && opts && opts->problems) {
		sitepolicy_problems_release(opts->problems);
		*opts->problems = ps.probs;
	} else {
		sitepolicy_problems_release(&ps.probs);
	}
	free(ps.ids);
	sitepolicy_free(pol);
	return ret;
}

/* Read a regular file whole; a file that grows while read is refused. */
static int read_policy(char **out, size_t *outlen, const char *path,
		       struct gg_err *err)
{
	struct stat st;
	size_t len = 0, cap;
	ssize_t n;
	char *buf;
	int fd, ret = GG_OK;

	/* O_NONBLOCK: a FIFO must be refused by fstat, not waited on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return gg_err_errno(err, GG_EIO, "%s", path);
	if (fstat(fd, &st) != 0)
		ret = gg_err_errno(err, GG_EIO, "%s", path);
	else if (!S_ISREG(st.st_mode))
		ret = gg_err_set(err, GG_EINVAL, "%s: not a regular file",
				 path);
	else if (st.st_size > GG_MAX_POLICY_LEN)
		ret = gg_err_set(err, GG_ELIMIT, "%s: larger than %d bytes",
				 path, GG_MAX_POLICY_LEN);
	cap = ret ? 0 : (size_t)st.st_size + 1;
	buf = ret ? NULL : malloc(cap);
	if (!ret && !buf)
		ret = gg_err_set(err, GG_ENOMEM, "%s: out of memory", path);
	while (!ret && len < cap) {
		n = read(fd, buf + len, cap - len);
		if (n == 0)
			break;
		if (n > 0)
			len += (size_t)n;
		else if (errno != EINTR)
			ret = gg_err_errno(err, GG_EIO, "%s", path);
	}
	if (!ret && len == cap)
		ret = gg_err_set(err, GG_EIO, "%s: changed while being read",
				 path);
	close(fd);
	if (ret) {
		free(buf);
		return ret;
	}
	*out = buf;
	*outlen = len;
	return GG_OK;
}

int sitepolicy_load(struct sitepolicy **out, const char *path,
		    const struct sitepolicy_opts *opts, struct gg_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int ret;

	*out = NULL;
	ret = read_policy(&text, &len, path, err);
	if (ret)
		return ret;
	ret = sitepolicy_parse(out, path, text, len, opts, err);
	free(text);
	return ret;
}

/* ---- queries ---- */

const struct sitepolicy_rules *sitepolicy_top(const struct sitepolicy *pol)
{
	return &pol->top.rules;
}

size_t sitepolicy_nrepos(const struct sitepolicy *pol)
{
	return pol->nrepos;
}

const char *sitepolicy_repo_glob(const struct sitepolicy *pol, size_t i)
{
	return i < pol->nrepos ? pol->repos[i].glob : NULL;
}

/* old[0..n) followed by src[0..sn), elements of size bytes: old is
 * reallocated (and so consumed) on success, left alone on failure. */
static void *append_items(const void *old, size_t n, const void *src, size_t sn,
			  size_t size)
{
	char *v = realloc((void *)old, (n + sn) * size);

	if (v && sn)
		memcpy(v + n * size, src, sn * size);
	return v;
}

static int list_append(struct sitepolicy_list *dst,
		       const struct sitepolicy_list *src)
{
	const char **v;

	if (!src->n)
		return 0;
	v = append_items(dst->v, dst->n, src->v, src->n, sizeof(*v));
	if (!v)
		return GG_ENOMEM;
	dst->v = v;
	dst->n += src->n;
	return 0;
}

/* Lists appended, scalars replaced where lv sets them. */
static int merge_level(struct sitepolicy_rules *dst, const struct level *lv)
{
	const struct sitepolicy_rules *src = &lv->rules;
	const struct sitepolicy_secret_rule *rules;

	if (list_append(&dst->protected_refs, &src->protected_refs) ||
	    list_append(&dst->protected_paths, &src->protected_paths) ||
	    list_append(&dst->forbidden_paths, &src->forbidden_paths) ||
	    list_append(&dst->commit_emails, &src->commit_emails))
		return GG_ENOMEM;
	if (src->nsecret_rules) {
		rules = append_items(dst->secret_rules, dst->nsecret_rules,
				     src->secret_rules, src->nsecret_rules,
				     sizeof(*rules));
		if (!rules)
			return GG_ENOMEM;
		dst->secret_rules = rules;
		dst->nsecret_rules += src->nsecret_rules;
	}
	if (lv->has_max_file_size)
		dst->max_file_size = src->max_file_size;
	if (lv->has_secrets)
		dst->secrets = src->secrets;
	return 0;
}

void sitepolicy_rules_free(struct sitepolicy_rules *rules)
{
	if (!rules)
		return;
	free(rules->protected_refs.v);
	free(rules->protected_paths.v);
	free(rules->forbidden_paths.v);
	free(rules->commit_emails.v);
	free((void *)rules->secret_rules);
	free(rules);
}

/* Top level, then the entries matching repo, or (repo NULL) entry only. */
static int merged(struct sitepolicy_rules **out, const struct sitepolicy *pol,
		  const char *repo, size_t only, struct gg_err *err)
{
	struct sitepolicy_rules *r = calloc(1, sizeof(*r));
	int rc = r ? merge_level(r, &pol->top) : GG_ENOMEM;
	size_t i;

	for (i = 0; rc == 0 && i < pol->nrepos; i++) {
		if (repo ? glob_match(pol->repos[i].glob, repo, GLOB_CASEFOLD)
			 : i == only)
			rc = merge_level(r, &pol->repos[i]);
	}
	if (rc) {
		sitepolicy_rules_free(r);
		return gg_err_set(err, GG_ENOMEM, "site policy: out of memory");
	}
	*out = r;
	return 0;
}

int sitepolicy_for_repo(struct sitepolicy_rules **out,
			const struct sitepolicy *pol, const char *repo,
			struct gg_err *err)
{
	*out = NULL;
	return merged(out, pol, repo, 0, err);
}

int sitepolicy_for_entry(struct sitepolicy_rules **out,
			 const struct sitepolicy *pol, size_t i,
			 struct gg_err *err)
{
	*out = NULL;
	if (i >= pol->nrepos)
		return gg_err_set(err, GG_ENOTFOUND,
				  "site policy: no repos entry %zu", i);
	return merged(out, pol, NULL, i, err);
}

bool sitepolicy_email_match(const char *pattern, const char *email)
{
	const char *at;

	if (!email)
		return false;
	at = strchr(email, '@');
	if (!at || at == email || !at[1] || strchr(at + 1, '@'))
		return false;
	return glob_match(pattern, email, GLOB_FLAT | GLOB_CASEFOLD);
}

bool sitepolicy_ref_protected(const struct sitepolicy_rules *rules,
			      const char *ref)
{
	size_t i;

	for (i = 0; rules && i < rules->protected_refs.n; i++)
		if (policy_match(rules->protected_refs.v[i], ref))
			return true;
	return false;
}

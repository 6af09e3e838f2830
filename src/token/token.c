/*
 * token.c - gitgate's claims on top of PASETO v4.public.
 *
 * Order of checks in token_verify: size, framing, footer kid -> key,
 * signature, then (only now trusting the bytes) claims, times, revocation.
 * Every "malformed" message is set where the problem is found and carries
 * the claim's name, never the token.
 */
#include "gitgate/token/token.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gitgate/token/b64.h"
#include "gitgate/core/glob.h"
#include "gitgate/core/limits.h"
#include "gitgate/token/paserk.h"
#include "gitgate/token/paseto.h"
#include "gitgate/token/revocation.h"
#include "gitgate/core/timeutil.h"

#define JSON_FLAGS JSON_REJECT_DUPLICATES

/* ---- validators ------------------------------------------------------- */

static bool repo_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

static int check_repo_part(const char *repo, const char *part, size_t len,
			   struct gg_err *err)
{
	size_t i;

	if (len == 0 || len > GG_MAX_REPO_PART)
		return gg_err_set(err, GG_EINVAL,
				  "repo '%s': owner and name must be 1-%d "
				  "characters",
				  repo, GG_MAX_REPO_PART);
	for (i = 0; i < len; i++)
		if (!repo_char(part[i]))
			return gg_err_set(err, GG_EINVAL,
					  "repo '%s': only letters, digits, "
					  "'-', '_' and '.' are allowed",
					  repo);
	if ((len == 1 && part[0] == '.') || memmem(part, len, "..", 2))
		return gg_err_set(err, GG_EINVAL,
				  "repo '%s': '.' and '..' are not names",
				  repo);
	return GG_OK;
}

int token_check_repo(const char *repo, struct gg_err *err)
{
	const char *slash;
	size_t len, nlen;
	int rc;

	len = strnlen(repo, 2 * GG_MAX_REPO_PART + 2);
	if (len > 2 * GG_MAX_REPO_PART + 1)
		return gg_err_set(err, GG_EINVAL,
				  "repo name too long (owner and name at most "
				  "%d characters each)",
				  GG_MAX_REPO_PART);
	slash = memchr(repo, '/', len);
	if (!slash || memchr(slash + 1, '/', len - (size_t)(slash - repo) - 1))
		return gg_err_set(err, GG_EINVAL,
				  "repo '%s' must be OWNER/NAME", repo);
	rc = check_repo_part(repo, repo, (size_t)(slash - repo), err);
	if (rc != GG_OK)
		return rc;
	nlen = len - (size_t)(slash - repo) - 1;
	rc = check_repo_part(repo, slash + 1, nlen, err);
	if (rc != GG_OK)
		return rc;
	/* The proxy strips ".git" from URLs, so such a grant could never
	 * match: refuse it where the mistake is made. */
	if (nlen >= 4 && !strcasecmp(slash + 1 + nlen - 4, ".git"))
		return gg_err_set(err, GG_EINVAL,
				  "repo '%s': leave out the .git suffix", repo);
	return GG_OK;
}

/* One '/'-separated segment of a ref pattern. */
static int check_segment(const char *pattern, const char *seg, size_t len,
			 struct gg_err *err)
{
	static const char bad[] = " ~^:?[\\";
	const char *star;
	size_t i;

	if (len == 0)
		return gg_err_set(err, GG_EINVAL,
				  "pattern '%s': empty path segment", pattern);
	if (seg[0] == '.' || (len >= 5 && !memcmp(seg + len - 5, ".lock", 5)))
		return gg_err_set(err, GG_EINVAL,
				  "pattern '%s': a segment may not start with "
				  "'.' or end with '.lock'",
				  pattern);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)seg[i];

		if (c < 0x20 || c == 0x7f || strchr(bad, c))
			return gg_err_set(err, GG_EINVAL,
					  "pattern '%s': character not allowed "
					  "in a ref name",
					  pattern);
	}
	star = memmem(seg, len, "**", 2);
	if (star && len != 2)
		return gg_err_set(err, GG_EINVAL,
				  "pattern '%s': '**' must be a whole segment",
				  pattern);
	return GG_OK;
}

int token_check_pattern(const char *pattern, struct gg_err *err)
{
	size_t len = strnlen(pattern, GG_MAX_PATTERN_LEN + 1), start = 0, i;
	int rc;

	if (len == 0 || len > GG_MAX_PATTERN_LEN)
		return gg_err_set(err, GG_EINVAL, "pattern must be 1-%d bytes",
				  GG_MAX_PATTERN_LEN);
	if (pattern[0] == '/' || pattern[len - 1] == '/' ||
	    pattern[len - 1] == '.')
		return gg_err_set(err, GG_EINVAL,
				  "pattern '%s': may not start or end with '/' "
				  "or end with '.'",
				  pattern);
	if (strstr(pattern, "..") || strstr(pattern, "@{") ||
	    !strcmp(pattern, "@"))
		return gg_err_set(err, GG_EINVAL,
				  "pattern '%s': '..', '@{' and '@' are not "
				  "allowed in ref names",
				  pattern);
	for (i = 0; i <= len; i++) {
		if (i == len || pattern[i] == '/') {
			rc = check_segment(pattern, pattern + start, i - start,
					   err);
			if (rc != GG_OK)
				return rc;
			start = i + 1;
		}
	}
	return GG_OK;
}

int token_check_sub(const char *sub, struct gg_err *err)
{
	size_t len = strnlen(sub, GG_MAX_CLAIM_STR + 1), i;

	if (len == 0 || len > GG_MAX_CLAIM_STR)
		return gg_err_set(err, GG_EINVAL, "sub must be 1-%d bytes",
				  GG_MAX_CLAIM_STR);
	for (i = 0; i < len; i++)
		if ((unsigned char)sub[i] < 0x20 || sub[i] == 0x7f)
			return gg_err_set(err, GG_EINVAL,
					  "sub may not contain control "
					  "characters");
	return GG_OK;
}

int token_check_allow_path(const char *glob, struct gg_err *err)
{
	return glob_check(glob, 0, err);
}

/* A literal address as git records it: git itself strips '<' and '>', so
 * an entry holding one could never match a commit. */
int token_check_email(const char *email, struct gg_err *err)
{
	size_t len = strnlen(email, TOKEN_MAX_EMAIL_LEN + 1), i;
	const char *at = memchr(email, '@', len);
	char shown[80];

	if (len == 0 || len > TOKEN_MAX_EMAIL_LEN)
		return gg_err_set(err, GG_EINVAL, "email must be 1-%d bytes",
				  TOKEN_MAX_EMAIL_LEN);
	gg_err_sanitize(shown, sizeof(shown), email, len);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)email[i];

		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return gg_err_set(err, GG_EINVAL,
					  "email '%s': may not contain spaces, "
					  "control characters, '<' or '>'",
					  shown);
	}
	if (!at || at == email || at + 1 == email + len ||
	    memchr(at + 1, '@', len - (size_t)(at + 1 - email)))
		return gg_err_set(err, GG_EINVAL,
				  "email '%s': needs exactly one '@' with "
				  "something on each side",
				  shown);
	return GG_OK;
}

int token_check_cidr(const char *cidr, struct gg_err *err)
{
	struct cidr net;

	return cidr_parse(&net, cidr, err);
}

/* ---- claims <- JSON --------------------------------------------------- */

void token_claims_free(struct token_claims *claims)
{
	size_t i;

	if (!claims)
		return;
	free(claims->sub);
	free(claims->jti);
	for (i = 0; i < claims->nrepos; i++)
		free(claims->repos[i]);
	free(claims->repos);
	for (i = 0; i < claims->nbranches; i++)
		free(claims->branches[i]);
	free(claims->branches);
	for (i = 0; i < claims->nallow_paths; i++)
		free(claims->allow_paths[i]);
	free(claims->allow_paths);
	for (i = 0; i < claims->nemails; i++)
		free(claims->emails[i]);
	free(claims->emails);
	for (i = 0; i < claims->ncidr; i++)
		free(claims->cidr[i]);
	free(claims->cidr);
	free(claims->cidr_nets);
	free(claims);
}

typedef int (*check_fn)(const char *value, struct gg_err *err);

/* Run a validator on a claim value; reword its message as "malformed". */
static int check_claim(check_fn check, const char *name, const char *value,
		       struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;

	if (check(value, &inner) != GG_OK)
		return gg_err_set(err, GG_EINVAL, "malformed: %s: %s", name,
				  inner.msg);
	return GG_OK;
}

/* A string claim. *out stays NULL when absent and not required. */
static int get_string(const char **out, json_t *obj, const char *name,
		      bool required, struct gg_err *err)
{
	json_t *v = json_object_get(obj, name);

	*out = NULL;
	if (!v) {
		if (required)
			return gg_err_set(err, GG_EINVAL,
					  "malformed: missing claim '%s'",
					  name);
		return GG_OK;
	}
	if (!json_is_string(v))
		return gg_err_set(err, GG_EINVAL,
				  "malformed: claim '%s' must be a string",
				  name);
	if (json_string_length(v) > GG_MAX_CLAIM_STR)
		return gg_err_set(err, GG_EINVAL,
				  "malformed: claim '%s' is too long", name);
	*out = json_string_value(v);
	return GG_OK;
}

static int dup_string(char **out, json_t *obj, const char *name, check_fn check,
		      struct gg_err *err)
{
	const char *s;
	int rc;

	rc = get_string(&s, obj, name, true, err);
	if (rc != GG_OK)
		return rc;
	rc = check_claim(check, name, s, err);
	if (rc != GG_OK)
		return rc;
	*out = strdup(s);
	if (!*out)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	return GG_OK;
}

static int get_time(int64_t *out, bool *present, json_t *obj, const char *name,
		    bool required, struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;
	const char *s;
	int rc;

	rc = get_string(&s, obj, name, required, err);
	if (rc != GG_OK)
		return rc;
	if (present)
		*present = s != NULL;
	if (!s)
		return GG_OK;
	if (timeutil_parse_rfc3339(out, s, strlen(s), &inner) != GG_OK)
		return gg_err_set(err, GG_EINVAL, "malformed: claim '%s': %s",
				  name, inner.msg);
	return GG_OK;
}

static int get_bool(bool *out, json_t *obj, const char *name,
		    struct gg_err *err)
{
	json_t *v = json_object_get(obj, name);

	*out = false;
	if (!v)
		return GG_OK;
	if (!json_is_boolean(v))
		return gg_err_set(err, GG_EINVAL,
				  "malformed: claim '%s' must be true or false",
				  name);
	*out = json_is_true(v);
	return GG_OK;
}

/* An array of strings, each passing check; absent = empty if optional. */
static int get_string_array(char ***out, size_t *n, json_t *obj,
			    const char *name, bool required, check_fn check,
			    struct gg_err *err)
{
	json_t *arr = json_object_get(obj, name), *v;
	char **items;
	size_t i, len;
	int rc;

	*out = NULL;
	*n = 0;
	if (!arr && !required)
		return GG_OK;
	if (!arr)
		return gg_err_set(err, GG_EINVAL,
				  "malformed: missing claim '%s'", name);
	if (!json_is_array(arr))
		return gg_err_set(err, GG_EINVAL,
				  "malformed: claim '%s' must be an array",
				  name);
	len = json_array_size(arr);
	if (len > GG_MAX_CLAIM_ITEMS)
		return gg_err_set(err, GG_EINVAL,
				  "malformed: claim '%s' has more than %d "
				  "entries",
				  name, GG_MAX_CLAIM_ITEMS);
	items = calloc(len ? len : 1, sizeof(*items));
	if (!items)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	/* Publish the array first so the caller's free releases partial
	 * results on every error path below. */
	*out = items;
	for (i = 0; i < len; i++) {
		v = json_array_get(arr, i);
		if (!json_is_string(v))
			return gg_err_set(err, GG_EINVAL,
					  "malformed: claim '%s' must hold "
					  "strings",
					  name);
		rc = check_claim(check, name, json_string_value(v), err);
		if (rc != GG_OK)
			return rc;
		items[i] = strdup(json_string_value(v));
		if (!items[i])
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		*n = i + 1;
	}
	return GG_OK;
}

/*
 * An optional list that only matters when it holds something (allow_paths,
 * emails). An empty one is refused rather than read as absent: for a claim
 * that narrows (emails), [] would otherwise silently mean "no limit".
 */
static int get_optional_list(char ***out, size_t *n, json_t *obj,
			     const char *name, check_fn check,
			     struct gg_err *err)
{
	json_t *arr = json_object_get(obj, name);

	*out = NULL;
	*n = 0;
	if (json_is_array(arr) && json_array_size(arr) == 0)
		return gg_err_set(err, GG_EINVAL,
				  "malformed: claim '%s' is empty (leave it "
				  "out instead)",
				  name);
	return get_string_array(out, n, obj, name, false, check, err);
}

static int check_op(const char *op, struct gg_err *err)
{
	if (strcmp(op, "fetch") != 0 && strcmp(op, "push") != 0)
		return gg_err_set(err, GG_EINVAL,
				  "'%s' is not \"fetch\" or \"push\"", op);
	return GG_OK;
}

static int get_ops(unsigned *out, json_t *obj, struct gg_err *err)
{
	char **ops = NULL;
	size_t n = 0, i;
	int rc;

	*out = 0;
	rc = get_string_array(&ops, &n, obj, "ops", true, check_op, err);
	for (i = 0; i < n; i++)
		*out |= !strcmp(ops[i], "push") ? TOKEN_OP_PUSH
						: TOKEN_OP_FETCH;
	for (i = 0; i < n; i++)
		free(ops[i]);
	free(ops);
	return rc;
}

/* The cidr claim, as strings (checked) and parsed. An empty list is
 * refused like the other narrowing lists: [] must not mean "anywhere". */
static int get_cidr(struct token_claims *c, json_t *obj, struct gg_err *err)
{
	size_t i;
	int rc;

	rc = get_optional_list(&c->cidr, &c->ncidr, obj, "cidr",
			       token_check_cidr, err);
	if (rc != GG_OK || c->ncidr == 0)
		return rc;
	c->cidr_nets = calloc(c->ncidr, sizeof(*c->cidr_nets));
	if (!c->cidr_nets)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	for (i = 0; i < c->ncidr; i++) {
		rc = cidr_parse(&c->cidr_nets[i], c->cidr[i], err);
		if (rc != GG_OK) /* checked above: cannot happen */
			return rc;
	}
	return GG_OK;
}

static int claims_from_object(struct token_claims *c, json_t *obj,
			      struct gg_err *err)
{
	int rc;

	rc = dup_string(&c->sub, obj, "sub", token_check_sub, err);
	if (rc == GG_OK)
		rc = dup_string(&c->jti, obj, "jti", revocation_check_jti, err);
	if (rc == GG_OK)
		rc = get_time(&c->exp, NULL, obj, "exp", true, err);
	if (rc == GG_OK)
		rc = get_time(&c->iat, &c->has_iat, obj, "iat", false, err);
	if (rc == GG_OK)
		rc = get_time(&c->nbf, &c->has_nbf, obj, "nbf", false, err);
	if (rc == GG_OK)
		rc = get_string_array(&c->repos, &c->nrepos, obj, "repos", true,
				      token_check_repo, err);
	if (rc == GG_OK)
		rc = get_ops(&c->ops, obj, err);
	if (rc == GG_OK)
		rc = get_string_array(&c->branches, &c->nbranches, obj,
				      "branches", false, token_check_pattern,
				      err);
	if (rc == GG_OK)
		rc = get_bool(&c->allow_force, obj, "allow_force", err);
	if (rc == GG_OK)
		rc = get_bool(&c->allow_delete, obj, "allow_delete", err);
	if (rc == GG_OK)
		rc = get_optional_list(&c->allow_paths, &c->nallow_paths, obj,
				       "allow_paths", token_check_allow_path,
				       err);
	if (rc == GG_OK)
		rc = get_optional_list(&c->emails, &c->nemails, obj, "emails",
				       token_check_email, err);
	if (rc == GG_OK)
		rc = get_cidr(c, obj, err);
	return rc;
}

/* Parse a JSON object (payload or footer); what names it in messages. */
static int load_json(json_t **out, const void *buf, size_t len,
		     const char *what, struct gg_err *err)
{
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	root = json_loadb(buf, len, JSON_FLAGS, &jerr);
	if (!root)
		return gg_err_set(err, GG_EINVAL,
				  "malformed: %s is not valid JSON: %s", what,
				  jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return gg_err_set(err, GG_EINVAL,
				  "malformed: %s is not a JSON object", what);
	}
	*out = root;
	return GG_OK;
}

static int claims_parse(struct token_claims **out, const unsigned char *m,
			size_t mlen, struct gg_err *err)
{
	struct token_claims *c;
	json_t *root;
	int rc;

	*out = NULL;
	rc = load_json(&root, m, mlen, "payload", err);
	if (rc != GG_OK)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(root);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	rc = claims_from_object(c, root, err);
	json_decref(root);
	if (rc != GG_OK) {
		token_claims_free(c);
		return rc;
	}
	*out = c;
	return GG_OK;
}

/* ---- footer and keys -------------------------------------------------- */

/* The footer's kid (borrowed from *root, which the caller decrefs). */
static int footer_kid(const char **kid, json_t **root,
		      const struct paseto_msg *msg, struct gg_err *err)
{
	json_t *v;
	int rc;

	*kid = NULL;
	rc = load_json(root, msg->footer, msg->flen, "footer", err);
	if (rc != GG_OK)
		return rc;
	v = json_object_get(*root, "kid");
	if (!json_is_string(v))
		return gg_err_set(err, GG_EINVAL,
				  "malformed: footer needs a string \"kid\"");
	*kid = json_string_value(v);
	return GG_OK;
}

static int check_footer_syntax(const struct paseto_msg *msg, struct gg_err *err)
{
	const char *kid;
	json_t *root = NULL;
	int rc;

	if (!msg->has_footer)
		return GG_OK;
	rc = footer_kid(&kid, &root, msg, err);
	json_decref(root);
	return rc;
}

/* Key ids are public, so a plain comparison is fine here. */
static const struct token_key *find_key(const struct token_keyset *keys,
					const char *kid)
{
	size_t i;

	for (i = 0; keys && i < keys->nkeys; i++)
		if (!strcmp(keys->keys[i].pid, kid))
			return &keys->keys[i];
	return NULL;
}

static int verify_signature(const struct paseto_msg *msg,
			    const struct token_keyset *keys, struct gg_err *err)
{
	const struct token_key *key;
	struct gg_err scratch;
	const char *kid;
	json_t *root = NULL;
	size_t i;
	int rc;

	if (msg->has_footer) {
		rc = footer_kid(&kid, &root, msg, err);
		if (rc != GG_OK)
			goto out;
		key = find_key(keys, kid);
		if (!key)
			rc = gg_err_set(err, GG_ENOKEY, "unknown key");
		else
			rc = paseto_v4_public_check(msg, key->pk, NULL, 0, err);
		goto out;
	}
	/* No footer: any configured key may have signed it. */
	for (i = 0; keys && i < keys->nkeys; i++) {
		gg_err_init(&scratch);
		if (paseto_v4_public_check(msg, keys->keys[i].pk, NULL, 0,
					   &scratch) == GG_OK) {
			rc = GG_OK;
			goto out;
		}
	}
	rc = gg_err_set(err, GG_EBADSIG, "bad signature");
out:
	json_decref(root);
	return rc;
}

/* ---- public API ------------------------------------------------------- */

static int check_size(size_t len, struct gg_err *err)
{
	if (len > GG_MAX_TOKEN_LEN)
		return gg_err_set(err, GG_EINVAL,
				  "malformed: token longer than %d bytes",
				  GG_MAX_TOKEN_LEN);
	return GG_OK;
}

/* Revoked by its jti, or as this very token (pasted whole into the file). */
static int check_validity(const struct token_claims *c, int64_t now,
			  const struct revocation_set *revoked,
			  const char *token, size_t len, struct gg_err *err)
{
	if (now >= c->exp)
		return gg_err_set(err, GG_EEXPIRED, "expired");
	if (c->has_nbf && now < c->nbf)
		return gg_err_set(err, GG_ENOTYET, "not yet valid");
	if (revoked && (revocation_contains(revoked, c->jti) ||
			revocation_contains_token(revoked, token, len)))
		return gg_err_set(err, GG_EREVOKED, "revoked");
	return GG_OK;
}

int token_verify(struct token_claims **out, const char *token, size_t len,
		 const struct token_keyset *keys, int64_t now,
		 const struct revocation_set *revoked, struct gg_err *err)
{
	struct token_claims *c = NULL;
	struct paseto_msg msg;
	int rc;

	*out = NULL;
	paseto_msg_init(&msg);
	rc = check_size(len, err);
	if (rc == GG_OK)
		rc = paseto_v4_public_split(&msg, token, len, err);
	if (rc == GG_OK)
		rc = verify_signature(&msg, keys, err);
	if (rc == GG_OK)
		rc = claims_parse(&c, msg.m, msg.mlen, err);
	if (rc == GG_OK)
		rc = check_validity(c, now, revoked, token, len, err);
	paseto_msg_release(&msg);
	if (rc != GG_OK) {
		token_claims_free(c);
		return rc;
	}
	*out = c;
	return GG_OK;
}

int token_decode_unverified(struct token_claims **out, const char *token,
			    size_t len, struct gg_err *err)
{
	struct paseto_msg msg;
	int rc;

	*out = NULL;
	paseto_msg_init(&msg);
	rc = check_size(len, err);
	if (rc == GG_OK)
		rc = paseto_v4_public_split(&msg, token, len, err);
	if (rc == GG_OK)
		rc = check_footer_syntax(&msg, err);
	if (rc == GG_OK)
		rc = claims_parse(out, msg.m, msg.mlen, err);
	paseto_msg_release(&msg);
	return rc;
}

/* ---- claims -> JSON --------------------------------------------------- */

/* json_object_set_new that reports failure (NULL value or OOM). */
static int put(json_t *obj, const char *key, json_t *value)
{
	if (!value)
		return -1;
	return json_object_set_new(obj, key, value);
}

static json_t *time_json(int64_t t)
{
	char buf[TIMEUTIL_RFC3339_SIZE];

	if (timeutil_format_rfc3339(buf, sizeof(buf), t, NULL) != GG_OK)
		return NULL;
	return json_string(buf);
}

static json_t *strings_json(char *const *items, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, json_string(items[i])) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *ops_json(unsigned ops)
{
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	if (((ops & TOKEN_OP_FETCH) &&
	     json_array_append_new(arr, json_string("fetch")) != 0) ||
	    ((ops & TOKEN_OP_PUSH) &&
	     json_array_append_new(arr, json_string("push")) != 0)) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/* Claims in a fixed order (jansson keeps insertion order). */
static json_t *claims_json(const struct token_claims *c, const char *jti)
{
	json_t *obj = json_object();
	int bad = !obj;

	if (bad)
		return NULL;
	bad |= put(obj, "sub", json_string(c->sub ? c->sub : ""));
	bad |= put(obj, "jti", json_string(jti ? jti : ""));
	if (c->has_iat)
		bad |= put(obj, "iat", time_json(c->iat));
	bad |= put(obj, "exp", time_json(c->exp));
	if (c->has_nbf)
		bad |= put(obj, "nbf", time_json(c->nbf));
	bad |= put(obj, "repos", strings_json(c->repos, c->nrepos));
	bad |= put(obj, "ops", ops_json(c->ops));
	bad |= put(obj, "branches", strings_json(c->branches, c->nbranches));
	bad |= put(obj, "allow_force", json_boolean(c->allow_force));
	bad |= put(obj, "allow_delete", json_boolean(c->allow_delete));
	/* Optional lists only when present: the parser refuses them empty. */
	if (c->nallow_paths)
		bad |= put(obj, "allow_paths",
			   strings_json(c->allow_paths, c->nallow_paths));
	if (c->nemails)
		bad |= put(obj, "emails", strings_json(c->emails, c->nemails));
	if (c->ncidr)
		bad |= put(obj, "cidr", strings_json(c->cidr, c->ncidr));
	if (bad) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

char *token_claims_to_json(const struct token_claims *claims)
{
	json_t *obj = claims_json(claims, claims->jti);
	char *text;

	if (!obj)
		return NULL;
	text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(obj);
	return text;
}

/* A jti never starts with '-', so `gitgate revoke JTI` cannot mistake it
 * for an option; redrawing costs well under one bit of the 144. */
static int random_jti(char out[64], struct gg_err *err)
{
	unsigned char bytes[GG_JTI_RANDOM_BYTES];
	int rc;

	do {
		randombytes_buf(bytes, sizeof(bytes));
		rc = b64_encode(out, 64, bytes, sizeof(bytes), err);
	} while (rc == GG_OK && out[0] == '-');
	return rc;
}

/* footer {"kid":"<pid of sk's public half>"} */
static int make_footer(char **out, const unsigned char sk[64],
		       struct gg_err *err)
{
	char pid[PASERK_PID_SIZE];
	json_t *obj;
	int rc;

	*out = NULL;
	rc = paserk_pid(pid, sizeof(pid), sk + 32, 32, err);
	if (rc != GG_OK)
		return rc;
	obj = json_pack("{s:s}", "kid", pid);
	if (obj)
		*out = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (!*out)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	return GG_OK;
}

int token_sign(char **out, const struct token_claims *claims,
	       const unsigned char sk[64], struct gg_err *err)
{
	struct token_claims *check = NULL;
	char jti[64], *payload = NULL, *footer = NULL;
	json_t *obj = NULL;
	int rc;

	*out = NULL;
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR,
				  "libsodium failed to initialise");
	rc = claims->jti ? GG_OK : random_jti(jti, err);
	if (rc != GG_OK)
		goto out;
	obj = claims_json(claims, claims->jti ? claims->jti : jti);
	if (obj)
		payload = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!payload) {
		rc = gg_err_set(err, GG_EINVAL,
				"claims cannot be encoded (invalid UTF-8 or "
				"time out of range)");
		goto out;
	}
	/* Sign only what we would accept: parse our own payload back. */
	rc = claims_parse(&check, (const unsigned char *)payload,
			  strlen(payload), err);
	if (rc == GG_OK)
		rc = make_footer(&footer, sk, err);
	if (rc == GG_OK)
		rc = paseto_v4_public_sign(out, payload, strlen(payload),
					   footer, strlen(footer), NULL, 0, sk,
					   err);
	if (rc == GG_OK && strlen(*out) > GG_MAX_TOKEN_LEN) {
		free(*out);
		*out = NULL;
		rc = gg_err_set(err, GG_ELIMIT,
				"token would be longer than %d bytes",
				GG_MAX_TOKEN_LEN);
	}
out:
	token_claims_free(check);
	json_decref(obj);
	free(payload);
	free(footer);
	return rc;
}

bool token_claims_has_repo(const struct token_claims *claims, const char *repo)
{
	size_t i;

	for (i = 0; i < claims->nrepos; i++)
		if (!strcasecmp(claims->repos[i], repo))
			return true;
	return false;
}

bool token_claims_allow_client(const struct token_claims *claims,
			       const struct cidr_addr *addr)
{
	if (claims->ncidr == 0)
		return true;
	return addr && cidr_list_contains(claims->cidr_nets, claims->ncidr,
					  addr);
}

/*
 * content.c - the site policy's content rules over a push's new commits,
 * with libgit2: one revision walk per ref, one tree diff per commit (its
 * first parent; other parents filter the result), blob headers for sizes,
 * and the added lines of text blobs for the secret scan.
 */
#include "gitgate/push/content.h"
#include "gitgate/core/array.h"
#include "gitgate/core/glob.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/size.h"

#include <git2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What one commit found: a range of cc->all. */
struct seen {
	git_oid oid;
	size_t first, n, more;
	bool used;
};

struct content_check {
	git_repository *repo;
	git_odb *odb;
	const struct content_rules *r;
	struct secretscan_scratch *scratch;
	bool scan; /* any secret rule counts for this repository */

	struct seen *seen; /* open addressing, cap a power of two */
	size_t cap, count;
	struct content_finding *all;
	size_t nall;

	/* Work so far, against GG_MAX_CONTENT_*. */
	size_t commits, changes;
	uint64_t bytes;
};

/* The commit being checked and where its findings go. */
struct commit_ctx {
	struct content_check *cc;
	const git_commit *c;
	char hex[GIT_OID_HEXSZ + 1];
	struct seen *s;
	git_tree *parents[GG_MAX_PARENTS_CHECKED];
	size_t nparents;
};

static int git_fail(struct gg_err *err, int rc, const char *what)
{
	const git_error *e = git_error_last();

	return gg_err_set(err, rc == GIT_ENOTFOUND ? GG_ENOTFOUND : GG_ERR,
			  "%s: %s", what,
			  e && e->message ? e->message : "libgit2 error");
}

/* ---- rules ---------------------------------------------------------- */

static bool list_match(const struct sitepolicy_list *l, const char *path)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (glob_match(l->v[i], path, 0))
			return true;
	return false;
}

static bool path_unlocked(const struct content_rules *r, const char *path)
{
	size_t i;

	for (i = 0; i < r->nallow_paths; i++)
		if (glob_match(r->allow_paths[i], path, 0))
			return true;
	return false;
}

/* Which secret rule ids count here: the built-in set (and the upstream
 * secret) when "secrets" is on, and the repository's own custom rules. */
static bool secret_counts(const struct content_rules *r, const char *id)
{
	const struct sitepolicy_rules *p = r->policy;
	const struct secretscan_rule *b;
	size_t i, n;

	for (i = 0; i < p->nsecret_rules; i++)
		if (!strcmp(p->secret_rules[i].id, id))
			return true;
	if (!p->secrets)
		return false;
	if (!strcmp(id, SECRETSCAN_UPSTREAM_ID))
		return true;
	b = secretscan_builtins(&n);
	for (i = 0; i < n; i++)
		if (!strcmp(b[i].id, id))
			return true;
	return false;
}

static bool paths_active(const struct content_rules *r)
{
	const struct sitepolicy_rules *p = r->policy;

	return p && (p->protected_paths.n || p->forbidden_paths.n ||
		     p->max_file_size || ((p->secrets || p->nsecret_rules) &&
					  r->db));
}

static bool emails_active(const struct content_rules *r)
{
	return r->emails || (r->policy && r->policy->commit_emails.n);
}

bool content_rules_active(const struct content_rules *r)
{
	return paths_active(r) || emails_active(r);
}

/* ---- findings ------------------------------------------------------- */

static void finding_release(struct content_finding *f)
{
	free(f->rule);
	free(f->path);
	free(f->reason);
	memset(f, 0, sizeof(*f));
}

void content_findings_release(struct content_findings *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		finding_release(&f->v[i]);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

static int finding_copy(struct content_finding *dst,
			const struct content_finding *src)
{
	memset(dst, 0, sizeof(*dst));
	memcpy(dst->commit, src->commit, sizeof(dst->commit));
	dst->line = src->line;
	memcpy(dst->hash, src->hash, sizeof(dst->hash));
	dst->rule = strdup(src->rule);
	dst->reason = strdup(src->reason);
	dst->path = src->path ? strdup(src->path) : NULL;
	if (!dst->rule || !dst->reason || (src->path && !dst->path)) {
		finding_release(dst);
		return GG_ENOMEM;
	}
	return GG_OK;
}

/* Record a finding of the commit being checked (reason printf-style). */
static int add_finding(struct commit_ctx *k, const char *rule,
		       const char *path, size_t line, const char *hash,
		       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int add_finding(struct commit_ctx *k, const char *rule,
		       const char *path, size_t line, const char *hash,
		       const char *fmt, ...)
{
	struct content_check *cc = k->cc;
	struct content_finding *f;
	char reason[GG_ERR_MSG_MAX + GG_MAX_CONTENT_PATH];
	va_list ap;

	if (k->s->n >= GG_MAX_CONTENT_FINDINGS) {
		k->s->more++;
		return GG_OK;
	}
	if (array_grow((void **)&cc->all, cc->nall, sizeof(*cc->all),
		       SIZE_MAX / sizeof(*cc->all)) != 0)
		return GG_ENOMEM;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	f = &cc->all[cc->nall];
	memset(f, 0, sizeof(*f));
	memcpy(f->commit, k->hex, sizeof(f->commit));
	f->line = line;
	if (hash)
		snprintf(f->hash, sizeof(f->hash), "%s", hash);
	f->rule = strdup(rule);
	f->reason = strdup(reason);
	f->path = path ? strdup(path) : NULL;
	if (!f->rule || !f->reason || (path && !f->path)) {
		finding_release(f);
		return GG_ENOMEM;
	}
	cc->nall++;
	k->s->n++;
	return GG_OK;
}

/* ---- the per-commit memo ---------------------------------------------- */

static size_t slot_of(const struct seen *tab, size_t cap, const git_oid *id)
{
	uint64_t h;
	size_t i;

	memcpy(&h, id->id, sizeof(h)); /* object ids are uniform already */
	for (i = (size_t)h & (cap - 1); tab[i].used &&
					git_oid_cmp(&tab[i].oid, id) != 0;
	     i = (i + 1) & (cap - 1))
		;
	return i;
}

static int seen_grow(struct content_check *cc)
{
	size_t i, ncap = cc->cap ? cc->cap * 2 : 1024;
	struct seen *tab = calloc(ncap, sizeof(*tab));

	if (!tab)
		return GG_ENOMEM;
	for (i = 0; i < cc->cap; i++)
		if (cc->seen[i].used)
			tab[slot_of(tab, ncap, &cc->seen[i].oid)] = cc->seen[i];
	free(cc->seen);
	cc->seen = tab;
	cc->cap = ncap;
	return GG_OK;
}

/* The memo entry of id: *fresh when it was not there (now added). */
static struct seen *seen_get(struct content_check *cc, const git_oid *id,
			     bool *fresh)
{
	struct seen *s;

	if ((cc->count + 1) * 10 > cc->cap * 7 && seen_grow(cc) != 0)
		return NULL;
	s = &cc->seen[slot_of(cc->seen, cc->cap, id)];
	*fresh = !s->used;
	if (*fresh) {
		memset(s, 0, sizeof(*s));
		git_oid_cpy(&s->oid, id);
		s->used = true;
		s->first = cc->nall;
		cc->count++;
	}
	return s;
}

/* ---- commit emails ----------------------------------------------------- */

static bool email_allowed(const struct content_rules *r, const char *email)
{
	const struct sitepolicy_rules *p = r->policy;
	bool ok = !p || p->commit_emails.n == 0;
	size_t i;

	for (i = 0; !ok && i < p->commit_emails.n; i++)
		ok = sitepolicy_email_match(p->commit_emails.v[i], email);
	if (!ok || !r->emails)
		return ok;
	for (i = 0; i < r->nemails; i++)
		if (!strcasecmp(r->emails[i], email))
			return true;
	return false;
}

/* "a, b": what may pass. With the token's emails claim, those of its
 * addresses the site's patterns also let through (the two narrow each
 * other); else the site's patterns. */
static void allowed_text(char *buf, size_t bufsz, const struct content_rules *r)
{
	const char *const *v = r->emails ? r->emails : r->policy->commit_emails.v;
	size_t i, n = r->emails ? r->nemails : r->policy->commit_emails.n;
	size_t used = 0;

	buf[0] = '\0';
	for (i = 0; i < n && used < bufsz; i++) {
		if (r->emails && !email_allowed(r, v[i]))
			continue;
		used += (size_t)snprintf(buf + used, bufsz - used, "%s%s",
					 used ? ", " : "", v[i]);
	}
	if (!buf[0])
		snprintf(buf, bufsz, "none");
}

static int check_person(struct commit_ctx *k, const char *role,
			const git_signature *sig)
{
	const char *email = sig && sig->email ? sig->email : "";
	char allowed[512];

	if (email_allowed(k->cc->r, email))
		return GG_OK;
	allowed_text(allowed, sizeof(allowed), k->cc->r);
	return add_finding(k, "commit_email", NULL, 0, NULL,
			   "commit %.7s %s %s not allowed: allowed %s", k->hex,
			   role, *email ? email : "(empty)", allowed);
}

static int check_emails(struct commit_ctx *k)
{
	const git_signature *a = git_commit_author(k->c);
	const git_signature *c = git_commit_committer(k->c);
	int ret;

	if (!emails_active(k->cc->r))
		return GG_OK;
	ret = check_person(k, "author", a);
	if (ret == 0 && (!a || !c || !a->email || !c->email ||
			 strcmp(a->email, c->email)))
		ret = check_person(k, "committer", c);
	return ret;
}

/* ---- secrets ------------------------------------------------------------ */

/* A blob loaded for the scan, counted against the work budget. */
static int load_text(git_blob **out, struct content_check *cc,
		     const git_oid *id, struct gg_err *err)
{
	int rc = git_blob_lookup(out, cc->repo, id);

	if (rc < 0)
		return git_fail(err, rc, "reading a blob");
	cc->bytes += (uint64_t)git_blob_rawsize(*out);
	if (cc->bytes > GG_MAX_CONTENT_BYTES) {
		git_blob_free(*out);
		*out = NULL;
		return gg_err_set(err, GG_ELIMIT,
				  "more than %llu GiB of files to scan in one "
				  "push",
				  (unsigned long long)(GG_MAX_CONTENT_BYTES >>
						       30));
	}
	return GG_OK;
}

static bool blob_is_text(const git_blob *b)
{
	return !secretscan_is_binary(git_blob_rawcontent(b),
				     (size_t)git_blob_rawsize(b));
}

/* Added lines of one file, as one buffer for one scan, and the line
 * number in the new file of each of its lines. */
struct added {
	char *buf;
	size_t len, cap;
	size_t *lines;
	size_t nlines, linecap;
	bool failed;
};

static int added_line(const git_diff_delta *d, const git_diff_hunk *h,
		      const git_diff_line *l, void *payload)
{
	struct added *a = payload;
	size_t need = l->content_len + 1;

	(void)d;
	(void)h;
	if (l->origin != GIT_DIFF_LINE_ADDITION)
		return 0;
	if (a->len + need > a->cap) {
		size_t ncap = a->cap ? a->cap : 4096;
		char *nb;

		while (ncap < a->len + need)
			ncap *= 2;
		nb = realloc(a->buf, ncap);
		if (!nb)
			goto fail;
		a->buf = nb;
		a->cap = ncap;
	}
	if (array_grow((void **)&a->lines, a->nlines, sizeof(*a->lines),
		       SIZE_MAX / sizeof(*a->lines)) != 0)
		goto fail;
	memcpy(a->buf + a->len, l->content, l->content_len);
	a->len += l->content_len;
	if (l->content_len == 0 || l->content[l->content_len - 1] != '\n')
		a->buf[a->len++] = '\n';
	a->lines[a->nlines++] = (size_t)l->new_lineno;
	return 0;
fail:
	a->failed = true;
	return -1;
}

/* The versions this commit's parents have of the path: a match also found
 * in one of them is not new (moved lines, conflict resolutions). */
struct olds {
	git_blob *v[GG_MAX_PARENTS_CHECKED];
	size_t n;
};

struct scan_ctx {
	struct commit_ctx *k;
	const char *path;
	const size_t *lines; /* NULL: buffer lines are file lines */
	const struct olds *olds;
	int ret;
};

struct known_ctx {
	const char *rule;
	const char *hash;
	bool found;
};

static int known_match(const struct secretscan_match *m, void *payload)
{
	struct known_ctx *q = payload;

	if (!strcmp(m->rule, q->rule) && !strcmp(m->hash, q->hash)) {
		q->found = true;
		return 1; /* stop: found */
	}
	return 0;
}

static bool in_olds(struct content_check *cc, const struct olds *olds,
		    const struct secretscan_match *m)
{
	struct known_ctx q = { m->rule, m->hash, false };
	size_t i;

	for (i = 0; i < olds->n && !q.found; i++)
		secretscan_scan(cc->r->db, cc->scratch,
				git_blob_rawcontent(olds->v[i]),
				(size_t)git_blob_rawsize(olds->v[i]),
				known_match, &q, NULL);
	return q.found;
}

static int on_secret(const struct secretscan_match *m, void *payload)
{
	struct scan_ctx *s = payload;
	struct content_check *cc = s->k->cc;
	char rule[GG_MAX_SECRET_RULE_ID + 8];
	size_t line;

	if (!secret_counts(cc->r, m->rule) || in_olds(cc, s->olds, m))
		return 0;
	line = s->lines ? s->lines[m->line - 1] : m->line;
	snprintf(rule, sizeof(rule), "secret:%s", m->rule);
	s->ret = add_finding(s->k, rule, s->path, line, m->hash,
			     "secret detected (%s) in %s:%zu (commit %.7s)",
			     m->rule, s->path, line, s->k->hex);
	return s->ret ? 1 : 0;
}

static int scan_buffer(struct commit_ctx *k, const char *path, const void *buf,
		       size_t len, const size_t *lines, const struct olds *olds,
		       struct gg_err *err)
{
	struct scan_ctx s = { k, path, lines, olds, GG_OK };
	int ret = secretscan_scan(k->cc->r->db, k->cc->scratch, buf, len,
				  on_secret, &s, err);

	if (s.ret)
		return gg_err_set(err, s.ret, "out of memory");
	return ret < 0 ? ret : GG_OK;
}

/* Scan what the commit adds to path: the lines new has and olds->v[0]
 * lacks, or all of new when there is no text old version. */
static int scan_added(struct commit_ctx *k, const char *path, git_blob *nb,
		      const struct olds *olds, struct gg_err *err)
{
	git_diff_options o;
	struct added a = { 0 };
	int rc, ret;

	if (olds->n == 0)
		return scan_buffer(k, path, git_blob_rawcontent(nb),
				   (size_t)git_blob_rawsize(nb), NULL, olds,
				   err);
	git_diff_options_init(&o, GIT_DIFF_OPTIONS_VERSION);
	o.context_lines = 0;
	o.interhunk_lines = 0;
	o.flags = GIT_DIFF_FORCE_TEXT;
	rc = git_diff_blobs(olds->v[0], path, nb, path, &o, NULL, NULL, NULL,
			    added_line, &a);
	if (a.failed)
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
	else if (rc < 0)
		ret = git_fail(err, rc, "diffing a file");
	else
		ret = scan_buffer(k, path, a.buf, a.len, a.lines, olds, err);
	free(a.buf);
	free(a.lines);
	return ret;
}

static bool is_file_mode(uint16_t mode)
{
	return mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE ||
	       mode == GIT_FILEMODE_LINK;
}

static void olds_release(struct olds *o)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		git_blob_free(o->v[i]);
	o->n = 0;
}

/* Add the text version of a parent (id, mode) to olds, when it is one. */
static int olds_add(struct olds *o, struct content_check *cc,
		    const git_oid *id, uint16_t mode, struct gg_err *err)
{
	git_blob *b;
	size_t i;
	int ret;

	if (!is_file_mode(mode) || o->n >= GG_MAX_PARENTS_CHECKED)
		return GG_OK;
	for (i = 0; i < o->n; i++)
		if (!git_oid_cmp(git_blob_id(o->v[i]), id))
			return GG_OK;
	ret = load_text(&b, cc, id, err);
	if (ret)
		return ret;
	if (git_blob_rawsize(b) > GG_MAX_SCAN_BLOB || !blob_is_text(b)) {
		git_blob_free(b);
		return GG_OK;
	}
	o->v[o->n++] = b;
	return GG_OK;
}

/* The parents' versions of path, first parent first. */
static int collect_olds(struct olds *o, struct commit_ctx *k,
			const git_diff_delta *d, struct gg_err *err)
{
	git_tree_entry *e;
	size_t i;
	int rc, ret = GG_OK;

	if (d->status != GIT_DELTA_ADDED)
		ret = olds_add(o, k->cc, &d->old_file.id, d->old_file.mode, err);
	for (i = 1; ret == 0 && i < k->nparents; i++) {
		rc = git_tree_entry_bypath(&e, k->parents[i], d->new_file.path);
		if (rc == GIT_ENOTFOUND)
			continue;
		if (rc < 0)
			return git_fail(err, rc, "reading a tree");
		ret = olds_add(o, k->cc, git_tree_entry_id(e),
			       (uint16_t)git_tree_entry_filemode(e), err);
		git_tree_entry_free(e);
	}
	return ret;
}

static int check_secrets(struct commit_ctx *k, const git_diff_delta *d,
			 uint64_t size, struct gg_err *err)
{
	struct olds olds = { { 0 }, 0 };
	char have[32], limit[32];
	git_blob *nb = NULL;
	int ret;

	if (size > GG_MAX_SCAN_BLOB) {
		size_format(have, sizeof(have), size);
		size_format(limit, sizeof(limit), GG_MAX_SCAN_BLOB);
		return add_finding(k, "content_check", d->new_file.path, 0, NULL,
				   "gitgate could not check content: %s is %s, "
				   "over the secret scan's limit of %s "
				   "(commit %.7s)",
				   d->new_file.path, have, limit, k->hex);
	}
	ret = load_text(&nb, k->cc, &d->new_file.id, err);
	if (ret == 0 && blob_is_text(nb)) {
		ret = collect_olds(&olds, k, d, err);
		if (ret == 0)
			ret = scan_added(k, d->new_file.path, nb, &olds, err);
	}
	olds_release(&olds);
	git_blob_free(nb);
	return ret;
}

/* ---- paths ------------------------------------------------------------- */

static int check_size(struct commit_ctx *k, const git_diff_delta *d,
		      uint64_t *size, struct gg_err *err)
{
	const struct sitepolicy_rules *p = k->cc->r->policy;
	char have[32], limit[32];
	git_object_t type;
	size_t len;
	int rc = git_odb_read_header(&len, &type, k->cc->odb, &d->new_file.id);

	if (rc < 0)
		return git_fail(err, rc, "reading a blob");
	*size = len;
	if (!p->max_file_size || len <= p->max_file_size)
		return GG_OK;
	size_format(have, sizeof(have), len);
	size_format(limit, sizeof(limit), p->max_file_size);
	return add_finding(k, "max_file_size", d->new_file.path, 0, NULL,
			   "%s is %s, over the site limit of %s (commit %.7s)",
			   d->new_file.path, have, limit, k->hex);
}

static int path_bounds(const char *path, struct gg_err *err)
{
	size_t depth = 0;
	const char *s;

	if (strlen(path) > GG_MAX_CONTENT_PATH)
		return gg_err_set(err, GG_ELIMIT,
				  "a path longer than %d bytes",
				  GG_MAX_CONTENT_PATH);
	for (s = path; *s; s++)
		depth += *s == '/';
	if (depth > GG_MAX_CONTENT_DEPTH)
		return gg_err_set(err, GG_ELIMIT,
				  "a path more than %d directories deep",
				  GG_MAX_CONTENT_DEPTH);
	return GG_OK;
}

/* One path the commit changes (against every parent). */
static int check_change(struct commit_ctx *k, const git_diff_delta *d,
			struct gg_err *err)
{
	const struct content_rules *r = k->cc->r;
	const struct sitepolicy_rules *p = r->policy;
	bool gone = d->status == GIT_DELTA_DELETED;
	const char *path = gone ? d->old_file.path : d->new_file.path;
	uint64_t size = 0;
	int ret = path_bounds(path, err);

	if (ret)
		return ret;
	if (list_match(&p->protected_paths, path) && !path_unlocked(r, path))
		ret = add_finding(k, "protected_path", path, 0, NULL,
				  "%s is protected by site policy (commit %.7s)",
				  path, k->hex);
	if (ret || gone)
		return ret;
	if (list_match(&p->forbidden_paths, path))
		ret = add_finding(k, "forbidden_path", path, 0, NULL,
				  "%s is forbidden by site policy (commit %.7s)",
				  path, k->hex);
	if (ret || !is_file_mode(d->new_file.mode))
		return ret; /* a submodule's commit is not content here */
	ret = check_size(k, d, &size, err);
	if (ret == 0 && k->cc->scan)
		ret = check_secrets(k, d, size, err);
	return ret;
}

/* Does path (as the delta has it) differ from parent i's version? */
static int differs_from(bool *out, struct commit_ctx *k, size_t i,
			const git_diff_delta *d, struct gg_err *err)
{
	bool gone = d->status == GIT_DELTA_DELETED;
	const char *path = gone ? d->old_file.path : d->new_file.path;
	git_tree_entry *e;
	int rc = git_tree_entry_bypath(&e, k->parents[i], path);

	if (rc == GIT_ENOTFOUND) {
		*out = !gone;
		return GG_OK;
	}
	if (rc < 0)
		return git_fail(err, rc, "reading a tree");
	*out = gone || git_oid_cmp(git_tree_entry_id(e), &d->new_file.id) ||
	       git_tree_entry_filemode(e) != (git_filemode_t)d->new_file.mode;
	git_tree_entry_free(e);
	return GG_OK;
}

static int check_delta(struct commit_ctx *k, const git_diff_delta *d,
		       struct gg_err *err)
{
	bool changed = true;
	size_t i;
	int ret = GG_OK;

	for (i = 1; ret == 0 && changed && i < k->nparents; i++)
		ret = differs_from(&changed, k, i, d, err);
	if (ret || !changed)
		return ret;
	if (++k->cc->changes > GG_MAX_CONTENT_CHANGES)
		return gg_err_set(err, GG_ELIMIT,
				  "more than %d changed paths in one push",
				  GG_MAX_CONTENT_CHANGES);
	return check_change(k, d, err);
}

static int check_paths(struct commit_ctx *k, struct gg_err *err)
{
	git_diff_options o;
	git_tree *tree = NULL;
	git_diff *diff = NULL;
	size_t i, n;
	int rc, ret = GG_OK;

	if (!paths_active(k->cc->r))
		return GG_OK;
	rc = git_commit_tree(&tree, k->c);
	if (rc < 0)
		return git_fail(err, rc, "reading a commit's tree");
	git_diff_options_init(&o, GIT_DIFF_OPTIONS_VERSION);
	o.flags = GIT_DIFF_SKIP_BINARY_CHECK;
	rc = git_diff_tree_to_tree(&diff, k->cc->repo,
				   k->nparents ? k->parents[0] : NULL, tree, &o);
	if (rc < 0)
		ret = git_fail(err, rc, "comparing trees");
	n = ret ? 0 : git_diff_num_deltas(diff);
	if (n > GG_MAX_COMMIT_CHANGES)
		ret = gg_err_set(err, GG_ELIMIT,
				 "commit %.7s changes more than %d paths",
				 k->hex, GG_MAX_COMMIT_CHANGES);
	for (i = 0; ret == 0 && i < n; i++)
		ret = check_delta(k, git_diff_get_delta(diff, i), err);
	git_diff_free(diff);
	git_tree_free(tree);
	return ret;
}

/* ---- commits ----------------------------------------------------------- */

static int load_parents(struct commit_ctx *k, struct gg_err *err)
{
	unsigned i, n = git_commit_parentcount(k->c);
	git_commit *pc;
	int rc;

	if (n > GG_MAX_PARENTS_CHECKED)
		return gg_err_set(err, GG_ELIMIT,
				  "commit %.7s has more than %d parents", k->hex,
				  GG_MAX_PARENTS_CHECKED);
	for (i = 0; i < n; i++) {
		rc = git_commit_parent(&pc, k->c, i);
		if (rc == 0) {
			rc = git_commit_tree(&k->parents[i], pc);
			git_commit_free(pc);
		}
		if (rc < 0)
			return git_fail(err, rc, "reading a parent commit");
		k->nparents++;
	}
	return GG_OK;
}

static int check_commit(struct content_check *cc, const git_oid *id,
			struct seen *s, struct gg_err *err)
{
	struct commit_ctx k = { .cc = cc, .s = s };
	git_commit *c;
	size_t i;
	int ret, rc = git_commit_lookup(&c, cc->repo, id);

	if (rc < 0)
		return git_fail(err, rc, "reading a commit");
	k.c = c;
	git_oid_tostr(k.hex, sizeof(k.hex), id);
	ret = check_emails(&k);
	if (ret == 0)
		ret = load_parents(&k, err);
	if (ret == 0)
		ret = check_paths(&k, err);
	if (ret == GG_ENOMEM && !err->code)
		gg_err_set(err, GG_ENOMEM, "out of memory");
	for (i = 0; i < k.nparents; i++)
		git_tree_free(k.parents[i]);
	git_commit_free(c);
	return ret;
}

/* Copy commit s's findings to the ref's list. */
static int report_seen(struct content_findings *out,
		       const struct content_check *cc, const struct seen *s)
{
	size_t i;

	out->more += s->more;
	for (i = 0; i < s->n; i++) {
		if (out->n >= GG_MAX_CONTENT_FINDINGS) {
			out->more++;
			continue;
		}
		if (array_grow((void **)&out->v, out->n, sizeof(*out->v),
			       GG_MAX_CONTENT_FINDINGS) != 0 ||
		    finding_copy(&out->v[out->n], &cc->all[s->first + i]) != 0)
			return GG_ENOMEM;
		out->n++;
	}
	return GG_OK;
}

/* The commit an object id names (a tag is peeled). */
static int peel_commit(git_oid *out, git_repository *repo, const git_oid *id,
		       struct gg_err *err)
{
	git_object *obj, *c;
	int rc = git_object_lookup(&obj, repo, id, GIT_OBJECT_ANY);

	if (rc < 0)
		return git_fail(err, rc, "reading the pushed object");
	rc = git_object_peel(&c, obj, GIT_OBJECT_COMMIT);
	git_object_free(obj);
	if (rc < 0)
		return gg_err_set(err, GG_ERR,
				  "the pushed object is not a commit nor a tag "
				  "of one");
	git_oid_cpy(out, git_object_id(c));
	git_object_free(c);
	return GG_OK;
}

/* Hide a ref's commit from the walk; refs to non-commits hide nothing. */
static void hide_ref(git_revwalk *w, git_repository *repo, const char *name)
{
	git_oid id, cid;

	if (git_reference_name_to_id(&id, repo, name) == 0 &&
	    peel_commit(&cid, repo, &id, NULL) == 0)
		git_revwalk_hide(w, &cid);
}

static int hide_known(git_revwalk *w, struct content_check *cc,
		      const char *old_hex, const char *except_ref,
		      struct gg_err *err)
{
	git_reference_iterator *it;
	const char *name;
	git_oid id, cid;
	int rc;

	if (old_hex && strspn(old_hex, "0") != strlen(old_hex) &&
	    git_oid_fromstr(&id, old_hex) == 0 &&
	    peel_commit(&cid, cc->repo, &id, NULL) == 0)
		git_revwalk_hide(w, &cid);
	rc = git_reference_iterator_new(&it, cc->repo);
	if (rc < 0)
		return git_fail(err, rc, "listing refs");
	while ((rc = git_reference_next_name(&name, it)) == 0)
		if (!except_ref || strcmp(name, except_ref))
			hide_ref(w, cc->repo, name);
	git_reference_iterator_free(it);
	return rc == GIT_ITEROVER ? GG_OK : git_fail(err, rc, "listing refs");
}

static int walk_new(git_revwalk *w, struct content_check *cc,
		    struct content_findings *out, struct gg_err *err)
{
	struct seen *s;
	bool fresh;
	git_oid id;
	int rc, ret = GG_OK;

	while (ret == 0 && (rc = git_revwalk_next(&id, w)) == 0) {
		s = seen_get(cc, &id, &fresh);
		if (!s)
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		if (fresh && ++cc->commits > GG_MAX_CONTENT_COMMITS)
			return gg_err_set(err, GG_ELIMIT,
					  "more than %d new commits in one push",
					  GG_MAX_CONTENT_COMMITS);
		if (fresh)
			ret = check_commit(cc, &id, s, err);
		if (ret == 0 && report_seen(out, cc, s) != 0)
			ret = gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	if (ret)
		return ret;
	return rc == GIT_ITEROVER ? GG_OK
				  : git_fail(err, rc, "walking new commits");
}

int content_check_ref(struct content_check *cc, const char *old_hex,
		      const char *new_hex, const char *except_ref,
		      struct content_findings *out, struct gg_err *err)
{
	git_revwalk *w = NULL;
	git_oid id, cid;
	int rc, ret;

	memset(out, 0, sizeof(*out));
	if (git_oid_fromstr(&id, new_hex) < 0)
		return gg_err_set(err, GG_EINVAL, "bad object id");
	ret = peel_commit(&cid, cc->repo, &id, err);
	if (ret)
		return ret;
	rc = git_revwalk_new(&w, cc->repo);
	if (rc < 0)
		return git_fail(err, rc, "walking new commits");
	git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
	rc = git_revwalk_push(w, &cid);
	ret = rc < 0 ? git_fail(err, rc, "walking new commits")
		     : hide_known(w, cc, old_hex, except_ref, err);
	if (ret == 0)
		ret = walk_new(w, cc, out, err);
	git_revwalk_free(w);
	if (ret)
		content_findings_release(out);
	return ret;
}

/* ---- life cycle -------------------------------------------------------- */

int content_check_new(struct content_check **out, struct git_repository *repo,
		      const struct content_rules *rules, struct gg_err *err)
{
	struct content_check *cc = calloc(1, sizeof(*cc));
	int ret;

	*out = NULL;
	if (!cc)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	cc->repo = repo;
	cc->r = rules;
	cc->scan = rules->policy && rules->db &&
		   (rules->policy->secrets || rules->policy->nsecret_rules);
	if (git_repository_odb(&cc->odb, repo) < 0) {
		free(cc);
		return git_fail(err, GIT_ERROR, "opening the object database");
	}
	if (cc->scan) {
		ret = secretscan_scratch_new(&cc->scratch, rules->db, err);
		if (ret) {
			content_check_free(cc);
			return ret;
		}
	}
	*out = cc;
	return GG_OK;
}

void content_check_free(struct content_check *cc)
{
	size_t i;

	if (!cc)
		return;
	for (i = 0; i < cc->nall; i++)
		finding_release(&cc->all[i]);
	free(cc->all);
	free(cc->seen);
	secretscan_scratch_free(cc->scratch);
	git_odb_free(cc->odb);
	free(cc);
}

/*
 * policystate.c - the site policy in force: loaded, compiled, swapped on
 * reload, shared by reference count (see policystate.h).
 */
#include "gitgate/push/policystate.h"
#include "gitgate/core/filesig.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gitgate/core/limits.h"

struct policysnap {
	atomic_size_t refs;
	struct sitepolicy *pol;
	struct secretscan_db *db; /* NULL: nothing scans */
};

/* The policy in force and what its file looked like at the last load
 * attempt. */
struct policystate {
	pthread_mutex_t lock; /* guards cur */
	struct policysnap *cur;
	char *path;	       /* NULL: no policy */
	unsigned char *secret; /* sodium_malloc'd; NULL: none */
	size_t secret_len;
	struct filesig sig; /* only the refreshing thread touches it */
};

/* ---- snapshots ---- */

static void snap_free(struct policysnap *s)
{
	secretscan_db_free(s->db);
	sitepolicy_free(s->pol);
	free(s);
}

void policysnap_put(struct policysnap *s)
{
	if (!s)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		snap_free(s);
}

const struct sitepolicy *policysnap_policy(const struct policysnap *s)
{
	return s ? s->pol : NULL;
}

const struct secretscan_db *policysnap_db(const struct policysnap *s)
{
	return s ? s->db : NULL;
}

/* ---- loading ---- */

static bool is_reserved_id(const char *id)
{
	const struct secretscan_rule *b;
	size_t n, i;

	if (!strcmp(id, SECRETSCAN_UPSTREAM_ID))
		return true;
	b = secretscan_builtins(&n);
	for (i = 0; i < n; i++)
		if (!strcmp(id, b[i].id))
			return true;
	return false;
}

/* sitepolicy_regex_fn: compile the one rule alone. The built-ins are left
 * out (speed), so an id they already use is refused here by name: the
 * combined compile would refuse it too, but without a position. */
static int check_regex(void *payload, const char *id, const char *regex,
		       struct gg_err *err)
{
	struct secretscan_rule rule = {id, regex};
	struct secretscan_opts opts;
	struct secretscan_db *db = NULL;
	struct gg_err why = GG_ERR_INIT;
	char prefix[GG_MAX_SECRET_RULE_ID + 16];
	const char *reason;
	size_t n;
	int ret;

	(void)payload;
	if (is_reserved_id(id))
		return gg_err_set(err, GG_EINVAL,
				  "id is taken by a built-in rule");
	memset(&opts, 0, sizeof(opts));
	opts.builtins = false;
	opts.rules = &rule;
	opts.nrules = 1;
	ret = secretscan_db_new(&db, &opts, &why);
	secretscan_db_free(db);
	if (ret == GG_OK)
		return GG_OK;
	/* The problem line names the rule already: drop the engine's own
	 * "secret rule <id>: ". */
	n = (size_t)snprintf(prefix, sizeof(prefix), "secret rule %s: ", id);
	reason = why.msg;
	if (n < sizeof(prefix) && !strncmp(reason, prefix, n))
		reason += n;
	return gg_err_set(err, ret, "%s", reason);
}

/* Append rules[skip..n) to v (room for GG_MAX_SECRET_RULES). */
static void add_rules(struct secretscan_rule *v, size_t *nv,
		      const struct sitepolicy_rules *r, size_t skip)
{
	size_t i;

	for (i = skip; i < r->nsecret_rules && *nv < GG_MAX_SECRET_RULES; i++) {
		v[*nv].id = r->secret_rules[i].id;
		v[*nv].regex = r->secret_rules[i].regex;
		(*nv)++;
	}
}

/*
 * Every custom rule of the file, and whether any rule set scans with the
 * built-ins. An entry's own rules are what sitepolicy_for_entry adds after
 * the top level's (lists are appended in that order).
 */
static int collect_rules(struct secretscan_rule *v, size_t *nv, bool *any,
			 const struct sitepolicy *pol, struct gg_err *err)
{
	const struct sitepolicy_rules *top = sitepolicy_top(pol);
	struct sitepolicy_rules *r;
	size_t i;
	int ret;

	*nv = 0;
	*any = top->secrets;
	add_rules(v, nv, top, 0);
	for (i = 0; i < sitepolicy_nrepos(pol); i++) {
		ret = sitepolicy_for_entry(&r, pol, i, err);
		if (ret)
			return ret;
		*any = *any || r->secrets;
		add_rules(v, nv, r, top->nsecret_rules);
		sitepolicy_rules_free(r);
	}
	*any = *any || *nv > 0;
	return GG_OK;
}

static int compile_db(struct secretscan_db **out, const struct policystate *ps,
		      const struct sitepolicy *pol, struct gg_err *err)
{
	struct secretscan_rule *rules;
	struct secretscan_opts opts;
	struct gg_err why = GG_ERR_INIT;
	size_t n = 0;
	bool any = false;
	int ret;

	*out = NULL;
	rules = calloc(GG_MAX_SECRET_RULES, sizeof(*rules));
	if (!rules)
		return gg_err_set(err, GG_ENOMEM, "%s: out of memory",
				  ps->path);
	ret = collect_rules(rules, &n, &any, pol, err);
	if (ret == GG_OK && any) {
		memset(&opts, 0, sizeof(opts));
		opts.builtins = true;
		opts.rules = rules;
		opts.nrules = n;
		opts.upstream_secret = ps->secret;
		opts.upstream_secret_len = ps->secret_len;
		ret = secretscan_db_new(out, &opts, &why);
		if (ret)
			gg_err_set(err, ret, "%s: secret scan: %s", ps->path,
				   why.msg);
	}
	free(rules);
	return ret;
}

/* A fresh snapshot of the file (one reference, the caller's). */
static int load_snap(struct policysnap **out, const struct policystate *ps,
		     struct sitepolicy_problems *problems, struct gg_err *err)
{
	struct sitepolicy_opts opts = {check_regex, NULL, problems};
	struct policysnap *s;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	atomic_init(&s->refs, 1);
	ret = sitepolicy_load(&s->pol, ps->path, &opts, err);
	if (ret == GG_OK)
		ret = compile_db(&s->db, ps, s->pol, err);
	if (ret) {
		snap_free(s);
		return ret;
	}
	*out = s;
	return GG_OK;
}

int policystate_new(struct policystate **out, const char *path,
		    const void *upstream_secret, size_t upstream_secret_len,
		    struct sitepolicy_problems *problems, struct gg_err *err)
{
	struct policystate *ps;
	int ret;

	*out = NULL;
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR, "libsodium failed to start");
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	pthread_mutex_init(&ps->lock, NULL);
	if (!path) {
		*out = ps;
		return GG_OK;
	}
	ps->path = strdup(path);
	if (!ps->path)
		goto nomem;
	if (upstream_secret && upstream_secret_len) {
		/* sodium_malloc memory is locked (sodium_mlock) and guarded,
		 * and sodium_free wipes it. */
		ps->secret = sodium_malloc(upstream_secret_len);
		if (!ps->secret)
			goto nomem;
		memcpy(ps->secret, upstream_secret, upstream_secret_len);
		ps->secret_len = upstream_secret_len;
	}
	ps->sig = filesig_of(ps->path);
	ret = load_snap(&ps->cur, ps, problems, err);
	if (ret) {
		policystate_free(ps);
		return ret;
	}
	*out = ps;
	return GG_OK;
nomem:
	policystate_free(ps);
	return gg_err_set(err, GG_ENOMEM, "out of memory");
}

void policystate_free(struct policystate *ps)
{
	if (!ps)
		return;
	policysnap_put(ps->cur);
	if (ps->secret)
		sodium_free(ps->secret); /* wipes */
	free(ps->path);
	pthread_mutex_destroy(&ps->lock);
	free(ps);
}

int policystate_refresh(struct policystate *ps, int force, struct gg_err *err)
{
	struct policysnap *fresh = NULL, *old;
	struct filesig now;
	int ret;

	if (!ps || !ps->path)
		return 0;
	now = filesig_of(ps->path);
	if (!force && filesig_equal(&now, &ps->sig))
		return 0;
	/* Remembered even if the load fails: reported once per change. */
	ps->sig = now;
	ret = load_snap(&fresh, ps, NULL, err);
	if (ret)
		return ret;
	pthread_mutex_lock(&ps->lock);
	old = ps->cur;
	ps->cur = fresh;
	pthread_mutex_unlock(&ps->lock);
	policysnap_put(old); /* pushes still holding it keep it alive */
	return 1;
}

const char *policystate_path(const struct policystate *ps)
{
	return ps ? ps->path : NULL;
}

struct policysnap *policystate_get(struct policystate *ps)
{
	struct policysnap *s;

	if (!ps)
		return NULL;
	pthread_mutex_lock(&ps->lock);
	s = ps->cur;
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&ps->lock);
	return s;
}

/* ---- the log line ---- */

struct counts {
	size_t refs, protected_paths, forbidden_paths, emails;
};

static void count_rules(struct counts *c, const struct sitepolicy_rules *r,
			const struct sitepolicy_rules *minus)
{
	c->refs += r->protected_refs.n - (minus ? minus->protected_refs.n : 0);
	c->protected_paths +=
		r->protected_paths.n - (minus ? minus->protected_paths.n : 0);
	c->forbidden_paths +=
		r->forbidden_paths.n - (minus ? minus->forbidden_paths.n : 0);
	c->emails += r->commit_emails.n - (minus ? minus->commit_emails.n : 0);
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

void policysnap_describe(char *buf, size_t bufsz, const struct policysnap *s)
{
	const struct sitepolicy_rules *top;
	struct sitepolicy_rules *r;
	struct counts c = {0, 0, 0, 0};
	size_t i, nrepos;
	char scan[64];

	if (!bufsz)
		return;
	if (!s) {
		snprintf(buf, bufsz, "none");
		return;
	}
	top = sitepolicy_top(s->pol);
	nrepos = sitepolicy_nrepos(s->pol);
	count_rules(&c, top, NULL);
	for (i = 0; i < nrepos; i++) {
		if (sitepolicy_for_entry(&r, s->pol, i, NULL) != 0)
			continue; /* out of memory: the counts fall short */
		count_rules(&c, r, top);
		sitepolicy_rules_free(r);
	}
	if (s->db)
		snprintf(scan, sizeof(scan), "secret scan of %zu rules",
			 secretscan_db_count(s->db));
	else
		snprintf(scan, sizeof(scan), "no secret scan");
	snprintf(buf, bufsz,
		 "%zu protected ref pattern%s, %zu protected path%s, "
		 "%zu forbidden path%s, %zu commit email pattern%s, "
		 "%zu repos entr%s, %s",
		 c.refs, plural(c.refs), c.protected_paths,
		 plural(c.protected_paths), c.forbidden_paths,
		 plural(c.forbidden_paths), c.emails, plural(c.emails), nrepos,
		 nrepos == 1 ? "y" : "ies", scan);
}

/*
 * secretscan.c - the secret scan: rules compiled into one Hyperscan block-
 * mode database, matches folded and reported by offset (see secretscan.h).
 *
 * Hyperscan reports a match at every end offset at which a pattern
 * matches, with HS_FLAG_SOM_LEFTMOST also its leftmost start. A scan
 * keeps, per rule, the match being extended (same start, later end) and
 * reports it once a non-overlapping match of that rule starts, or the
 * buffer ends: one report per match, with its longest extent, and
 * overlapping matches of one rule folded into the first.
 */
#include "gitgate/push/secretscan.h"

#include <hs.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/limits.h"

/* A line break in a PEM block: a real one, or the two-character "\n"
 * escape of a key pasted into JSON or a string literal. */
#define PEM_NL "(?:\\r?\\n|(?:\\\\r)?\\\\n)"

/* After the header: an armor header ("Proc-Type: ", "Version: ") or,
 * after an optional blank line and indentation, 32 base64 characters of
 * the key. Kept this simple so that Hyperscan can track the start. */
#define PEM_BODY                                                               \
	PEM_NL "(?:[A-Z][A-Za-z-]{1,20}: |(?:" PEM_NL ")?[ \\t]*"              \
	       "[A-Za-z0-9+/]{32})"

/* Sources of each format: secretscan.h. Fixed-length heads, not whole
 * tokens, where a format has no fixed end: see there. */
static const struct secretscan_rule builtin_rules[] = {
	{"github-pat",
	 "\\b(?:ghp_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})"},
	{"github-oauth", "\\bgho_[A-Za-z0-9]{36}"},
	{"github-app-token", "\\bgh[us]_[A-Za-z0-9]{36}"},
	{"github-refresh-token", "\\bghr_[A-Za-z0-9]{36}"},
	{"gitlab-pat", "\\bglpat-[A-Za-z0-9_-]{20}"},
	{"aws-access-key-id", "\\b(?:AKIA|ASIA)[A-Z0-9]{16}\\b"},
	{"private-key",
	 "-----BEGIN[ A-Z0-9]{0,40} PRIVATE KEY(?: BLOCK)?-----" PEM_BODY},
	{"slack-token", "\\bxox[abposr]-[0-9]{1,20}-[0-9A-Za-z-]{10}"},
	{"stripe-live-key", "\\b[rs]k_live_[0-9A-Za-z]{24}"},
	{"google-api-key", "\\bAIza[0-9A-Za-z_-]{35}"},
	{"npm-token", "\\bnpm_[A-Za-z0-9]{36}\\b"},
	{"pypi-token",
	 "\\bpypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50}"},
	{"openai-api-key", "\\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40}"
			   "|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})"},
	{"anthropic-api-key",
	 "\\bsk-ant-(?:api|admin|oat|ort)[0-9]{2}-[A-Za-z0-9_-]{80}"},
	{"gitgate-token", "\\bv4\\.public\\.[A-Za-z0-9_-]{86}"},
};

#define NBUILTIN (sizeof(builtin_rules) / sizeof(builtin_rules[0]))

struct secretscan_db {
	hs_database_t *hs;
	char **ids; /* by Hyperscan expression id */
	size_t n;
	unsigned char *key; /* sodium_malloc, SECRETSCAN_KEY_BYTES */
};

/* One rule's latest match in the current scan (valid when epoch is the
 * scan's); pending until reported. */
struct fold {
	uint64_t epoch;
	size_t from, to;
	bool pending;
};

struct secretscan_scratch {
	hs_scratch_t *hs;
	const struct secretscan_db *db; /* last bound to */
	struct fold *folds;		/* by rule */
	unsigned *touched;		/* rules with a fold this scan */
	size_t cap;
	uint64_t epoch;
};

struct scan_ctx {
	const struct secretscan_db *db;
	struct secretscan_scratch *s;
	const unsigned char *buf;
	size_t ntouched;
	secretscan_match_fn fn;
	void *payload;
	int stopped;	/* fn's nonzero return */
	size_t line_at; /* line_no is the line of byte line_at */
	size_t line_no;
};

/* Set once per process (init_once), then only read. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool once_ok;
static unsigned char process_key[SECRETSCAN_KEY_BYTES];

/* A compiled database holds the upstream secret's bytes: Hyperscan
 * allocates databases through this pair, which wipes them when freed.
 * (The compiler's own temporaries are beyond reach; the escaped pattern
 * handed to it is wiped by compile_set_release.) */
union wipe_header {
	size_t size;
	max_align_t align; /* what Hyperscan requires of an allocator */
};

static void *wiping_alloc(size_t size)
{
	union wipe_header *h;

	if (size > SIZE_MAX - sizeof(*h))
		return NULL;
	h = malloc(sizeof(*h) + size);
	if (!h)
		return NULL;
	h->size = size;
	return h + 1;
}

static void wiping_free(void *p)
{
	union wipe_header *h;

	if (!p)
		return;
	h = (union wipe_header *)p - 1;
	sodium_memzero(p, h->size);
	free(h);
}

static void init_once(void)
{
	if (sodium_init() < 0)
		return;
	randombytes_buf(process_key, sizeof(process_key));
	if (hs_set_database_allocator(wiping_alloc, wiping_free) != HS_SUCCESS)
		return;
	once_ok = true;
}

const struct secretscan_rule *secretscan_builtins(size_t *count)
{
	*count = NBUILTIN;
	return builtin_rules;
}

bool secretscan_is_binary(const void *buf, size_t len)
{
	if (len > GG_BINARY_PROBE_LEN)
		len = GG_BINARY_PROBE_LEN;
	return len > 0 && memchr(buf, 0, len) != NULL;
}

void secretscan_hash(char out[SECRETSCAN_HASH_HEX + 1],
		     const struct secretscan_db *db, const void *data,
		     size_t len)
{
	unsigned char h[crypto_generichash_BYTES_MIN];

	crypto_generichash(h, sizeof(h), data, len, db->key,
			   SECRETSCAN_KEY_BYTES);
	sodium_bin2hex(out, SECRETSCAN_HASH_HEX + 1, h,
		       SECRETSCAN_HASH_HEX / 2);
	sodium_memzero(h, sizeof(h));
}

size_t secretscan_db_count(const struct secretscan_db *db)
{
	return db->n;
}

const char *secretscan_db_rule_id(const struct secretscan_db *db, size_t i)
{
	return i < db->n ? db->ids[i] : NULL;
}

/* ---- compiling ---- */

/* What hs_compile_multi takes, and the escaped upstream secret (wiped). */
struct compile_set {
	const char **exprs;
	unsigned *flags;
	unsigned *ids;
	size_t n;
	char *literal; /* sodium_malloc */
	size_t literal_size;
};

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static bool is_taken(const char *id, const struct secretscan_rule *rules,
		     size_t before)
{
	size_t i;

	if (strcmp(id, SECRETSCAN_UPSTREAM_ID) == 0)
		return true;
	for (i = 0; i < NBUILTIN; i++)
		if (strcmp(id, builtin_rules[i].id) == 0)
			return true;
	for (i = 0; i < before; i++)
		if (strcmp(id, rules[i].id) == 0)
			return true;
	return false;
}

static int check_custom(const struct secretscan_rule *rules, size_t i,
			struct gg_err *err)
{
	const char *id = rules[i].id;
	char shown[GG_MAX_SECRET_RULE_ID + 4];
	size_t len = id ? strnlen(id, GG_MAX_SECRET_RULE_ID + 1) : 0;
	size_t k;

	if (len == 0)
		return gg_err_set(err, GG_EINVAL, "secret rule %zu: empty id",
				  i + 1);
	gg_err_sanitize(shown, sizeof(shown), id, len);
	if (len > GG_MAX_SECRET_RULE_ID)
		return gg_err_set(err, GG_EINVAL,
				  "secret rule %s: id longer than %d bytes",
				  shown, GG_MAX_SECRET_RULE_ID);
	for (k = 0; k < len; k++)
		if (!id_char(id[k]))
			return gg_err_set(err, GG_EINVAL,
					  "secret rule %s: id may hold only "
					  "A-Z a-z 0-9 . _ -",
					  shown);
	if (is_taken(id, rules, i))
		return gg_err_set(err, GG_EINVAL,
				  "secret rule %s: id already used", id);
	if (!rules[i].regex || !rules[i].regex[0])
		return gg_err_set(err, GG_EINVAL, "secret rule %s: empty regex",
				  id);
	if (strnlen(rules[i].regex, GG_MAX_SECRET_REGEX + 1) >
	    GG_MAX_SECRET_REGEX)
		return gg_err_set(err, GG_EINVAL,
				  "secret rule %s: regex longer than %d bytes",
				  id, GG_MAX_SECRET_REGEX);
	return 0;
}

static int check_opts(const struct secretscan_opts *o, struct gg_err *err)
{
	size_t i;
	int rc;

	if (o->nrules > GG_MAX_SECRET_RULES)
		return gg_err_set(err, GG_ELIMIT,
				  "more than %d custom secret rules",
				  GG_MAX_SECRET_RULES);
	for (i = 0; i < o->nrules; i++) {
		rc = check_custom(o->rules, i, err);
		if (rc)
			return rc;
	}
	if (o->upstream_secret &&
	    (o->upstream_secret_len < GG_MIN_SECRET_LITERAL ||
	     o->upstream_secret_len > GG_MAX_SECRET_LITERAL))
		return gg_err_set(err, GG_EINVAL,
				  "upstream secret: %zu bytes, the secret scan "
				  "takes %d to %d",
				  o->upstream_secret_len, GG_MIN_SECRET_LITERAL,
				  GG_MAX_SECRET_LITERAL);
	if (!o->builtins && o->nrules == 0 && !o->upstream_secret)
		return gg_err_set(err, GG_EINVAL, "no secret rules to compile");
	return 0;
}

/* The secret as a regex of \xHH escapes: every byte literal, whatever it
 * is, and no parsing of the secret's own text. */
static int escape_literal(struct compile_set *cs, const unsigned char *p,
			  size_t len, struct gg_err *err)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	cs->literal_size = len * 4 + 1;
	cs->literal = sodium_malloc(cs->literal_size);
	if (!cs->literal)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	for (i = 0; i < len; i++) {
		cs->literal[i * 4] = '\\';
		cs->literal[i * 4 + 1] = 'x';
		cs->literal[i * 4 + 2] = hex[p[i] >> 4];
		cs->literal[i * 4 + 3] = hex[p[i] & 15];
	}
	cs->literal[len * 4] = '\0';
	return 0;
}

static void add_expr(struct compile_set *cs, const char *expr, unsigned flags)
{
	cs->exprs[cs->n] = expr;
	cs->flags[cs->n] = flags;
	cs->ids[cs->n] = (unsigned)cs->n;
	cs->n++;
}

static int build_set(struct compile_set *cs, const struct secretscan_opts *o,
		     struct gg_err *err)
{
	size_t max = NBUILTIN + o->nrules + 1, i;

	cs->exprs = calloc(max, sizeof(*cs->exprs));
	cs->flags = calloc(max, sizeof(*cs->flags));
	cs->ids = calloc(max, sizeof(*cs->ids));
	if (!cs->exprs || !cs->flags || !cs->ids)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	for (i = 0; o->builtins && i < NBUILTIN; i++)
		add_expr(cs, builtin_rules[i].regex, HS_FLAG_SOM_LEFTMOST);
	for (i = 0; i < o->nrules; i++)
		add_expr(cs, o->rules[i].regex,
			 HS_FLAG_SOM_LEFTMOST | HS_FLAG_MULTILINE);
	if (o->upstream_secret) {
		if (escape_literal(cs, o->upstream_secret,
				   o->upstream_secret_len, err))
			return GG_ENOMEM;
		add_expr(cs, cs->literal, HS_FLAG_SOM_LEFTMOST);
	}
	return 0;
}

static void compile_set_release(struct compile_set *cs)
{
	free(cs->exprs);
	free(cs->flags);
	free(cs->ids);
	if (cs->literal) {
		sodium_memzero(cs->literal, cs->literal_size);
		sodium_free(cs->literal);
	}
}

static int set_ids(struct secretscan_db *db, const struct secretscan_opts *o,
		   struct gg_err *err)
{
	size_t i, k = 0;

	db->ids = calloc(NBUILTIN + o->nrules + 1, sizeof(*db->ids));
	if (!db->ids)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	for (i = 0; o->builtins && i < NBUILTIN; i++)
		db->ids[k++] = strdup(builtin_rules[i].id);
	for (i = 0; i < o->nrules; i++)
		db->ids[k++] = strdup(o->rules[i].id);
	if (o->upstream_secret)
		db->ids[k++] = strdup(SECRETSCAN_UPSTREAM_ID);
	db->n = k;
	for (i = 0; i < k; i++)
		if (!db->ids[i])
			return gg_err_set(err, GG_ENOMEM, "out of memory");
	return 0;
}

/* Name the rule a compile error is about; the engine's message never
 * quotes the expression, and the upstream secret gets none at all. */
static int compile_failed(const struct secretscan_db *db,
			  const hs_compile_error_t *ce, bool has_literal,
			  struct gg_err *err)
{
	int at = ce->expression;

	if (at < 0 || (size_t)at >= db->n)
		return gg_err_set(err, GG_EINVAL, "secret rules: %s",
				  ce->message);
	if (has_literal && (size_t)at == db->n - 1)
		return gg_err_set(err, GG_EINVAL,
				  "upstream secret: the secret scan cannot "
				  "compile it");
	return gg_err_set(err, GG_EINVAL, "secret rule %s: %s", db->ids[at],
			  ce->message);
}

static int compile_db(struct secretscan_db *db, const struct secretscan_opts *o,
		      struct gg_err *err)
{
	struct compile_set cs = {0};
	hs_compile_error_t *ce = NULL;
	int rc;

	rc = build_set(&cs, o, err);
	if (rc == 0 &&
	    hs_compile_multi(cs.exprs, cs.flags, cs.ids, (unsigned)cs.n,
			     HS_MODE_BLOCK, NULL, &db->hs, &ce) != HS_SUCCESS) {
		rc = ce ? compile_failed(db, ce, o->upstream_secret != NULL,
					 err)
			: gg_err_set(err, GG_ERR,
				     "secret rules: compile failed");
		hs_free_compile_error(ce);
	}
	compile_set_release(&cs);
	return rc;
}

int secretscan_db_new(struct secretscan_db **out,
		      const struct secretscan_opts *opts, struct gg_err *err)
{
	struct secretscan_db *db;
	int rc;

	*out = NULL;
	pthread_once(&once, init_once);
	if (!once_ok)
		return gg_err_set(err, GG_ERR,
				  "secret scan: libsodium or Hyperscan "
				  "failed to initialise");
	rc = check_opts(opts, err);
	if (rc)
		return rc;
	db = calloc(1, sizeof(*db));
	if (!db)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	db->key = sodium_malloc(SECRETSCAN_KEY_BYTES);
	if (!db->key) {
		rc = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(db->key, opts->hash_key ? opts->hash_key : process_key,
	       SECRETSCAN_KEY_BYTES);
	rc = set_ids(db, opts, err);
	if (rc == 0)
		rc = compile_db(db, opts, err);
out:
	if (rc) {
		secretscan_db_free(db);
		return rc;
	}
	*out = db;
	return 0;
}

void secretscan_db_free(struct secretscan_db *db)
{
	size_t i;

	if (!db)
		return;
	hs_free_database(db->hs);
	for (i = 0; db->ids && i < db->n; i++)
		free(db->ids[i]);
	free(db->ids);
	sodium_free(db->key);
	free(db);
}

/* ---- scratch ---- */

/* Fit s to db: Hyperscan's scratch grows to serve every database it was
 * allocated for, and the fold table to db's rule count. */
static int scratch_bind(struct secretscan_scratch *s,
			const struct secretscan_db *db, struct gg_err *err)
{
	struct fold *folds;
	unsigned *touched;

	if (s->db == db && s->cap >= db->n)
		return 0;
	if (hs_alloc_scratch(db->hs, &s->hs) != HS_SUCCESS)
		return gg_err_set(err, GG_ENOMEM,
				  "secret scan: cannot allocate scratch");
	if (s->cap < db->n) {
		folds = realloc(s->folds, db->n * sizeof(*folds));
		if (folds)
			s->folds = folds;
		touched = realloc(s->touched, db->n * sizeof(*touched));
		if (touched)
			s->touched = touched;
		if (!folds || !touched)
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		memset(s->folds, 0, db->n * sizeof(*folds));
		s->cap = db->n;
	}
	s->db = db;
	return 0;
}

int secretscan_scratch_new(struct secretscan_scratch **out,
			   const struct secretscan_db *db, struct gg_err *err)
{
	struct secretscan_scratch *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	rc = scratch_bind(s, db, err);
	if (rc) {
		secretscan_scratch_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void secretscan_scratch_free(struct secretscan_scratch *s)
{
	if (!s)
		return;
	hs_free_scratch(s->hs);
	free(s->folds);
	free(s->touched);
	free(s);
}

/* ---- scanning ---- */

static size_t count_newlines(const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len, *nl;
	size_t n = 0;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		n++;
		p = nl + 1;
	}
	return n;
}

/* Line of byte off: counted on from the last match's line, since most
 * come in buffer order. */
static size_t line_of(struct scan_ctx *c, size_t off)
{
	if (off < c->line_at) {
		c->line_at = 0;
		c->line_no = 1;
	}
	c->line_no += count_newlines(c->buf + c->line_at, off - c->line_at);
	c->line_at = off;
	return c->line_no;
}

static int report(struct scan_ctx *c, unsigned rule, struct fold *f)
{
	struct secretscan_match m;

	f->pending = false;
	m.rule = c->db->ids[rule];
	m.offset = f->from;
	m.len = f->to - f->from;
	m.line = line_of(c, f->from);
	secretscan_hash(m.hash, c->db, c->buf + f->from, m.len);
	return c->fn(&m, c->payload);
}

static int on_match(unsigned int id, unsigned long long from,
		    unsigned long long to, unsigned int flags, void *ctx)
{
	struct scan_ctx *c = ctx;
	struct fold *f = &c->s->folds[id];

	(void)flags;
	if (f->epoch != c->s->epoch) {
		f->epoch = c->s->epoch;
		f->pending = false;
		f->to = 0;
		c->s->touched[c->ntouched++] = id;
	}
	if (f->pending && f->from == from) {
		if (to > f->to)
			f->to = (size_t)to;
		return 0;
	}
	if (from < f->to)
		return 0; /* inside this rule's previous match */
	if (f->pending) {
		c->stopped = report(c, id, f);
		if (c->stopped)
			return 1;
	}
	f->from = (size_t)from;
	f->to = (size_t)to;
	f->pending = true;
	return 0;
}

static int flush(struct scan_ctx *c)
{
	size_t i;
	unsigned id;
	int rc;

	for (i = 0; i < c->ntouched; i++) {
		id = c->s->touched[i];
		if (!c->s->folds[id].pending)
			continue;
		rc = report(c, id, &c->s->folds[id]);
		if (rc)
			return rc;
	}
	return 0;
}

int secretscan_scan(const struct secretscan_db *db,
		    struct secretscan_scratch *s, const void *buf, size_t len,
		    secretscan_match_fn fn, void *payload, struct gg_err *err)
{
	struct scan_ctx c = {
		.db = db,
		.s = s,
		.buf = buf,
		.fn = fn,
		.payload = payload,
		.line_no = 1,
	};
	hs_error_t hrc;
	int rc;

	if (len > UINT_MAX)
		return gg_err_set(err, GG_ELIMIT,
				  "secret scan: %zu bytes in one buffer, over "
				  "%u",
				  len, UINT_MAX);
	rc = scratch_bind(s, db, err);
	if (rc)
		return rc;
	s->epoch++;
	hrc = hs_scan(db->hs, len ? buf : "", (unsigned)len, 0, s->hs, on_match,
		      &c);
	if (hrc == HS_SCAN_TERMINATED)
		return c.stopped;
	if (hrc == HS_SCRATCH_IN_USE)
		return gg_err_set(err, GG_ERR,
				  "secret scan: scratch used by two scans "
				  "at once");
	if (hrc != HS_SUCCESS)
		return gg_err_set(err, GG_ERR,
				  "secret scan: Hyperscan error %d", hrc);
	return flush(&c);
}

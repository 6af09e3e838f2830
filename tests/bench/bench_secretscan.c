/*
 * bench_secretscan.c - secret-scan throughput on text, one thread (so the
 * figures are per core), with every built-in rule and a custom one.
 *
 * The corpus: real text files (headers, Perl and Python sources from
 * /usr/include, /usr/share/perl, /usr/lib/python3*) up to half the size,
 * the rest generated source-like lines (code, prose, config, lock-file
 * hashes and base64, and near misses of every rule's prefix), with one
 * planted credential per MiB. It is scanned as file-sized buffers (as the
 * push inspection will call it) and line by line (the per-call cost), and
 * compared with the same rules in Hyperscan without start-of-match
 * tracking and, when built with libpcre2, in PCRE2 JIT (one alternation,
 * and one pass per rule); then again with 64 custom rules added, where a
 * pass per rule shows what each rule costs. Run by hand:
 *   build/tests/bench/bench_secretscan [MiB (default 128)] [repetitions]
 */
#include <ftw.h>
#include <hs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef GG_BENCH_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

#include "gitgate/push/secretscan.h"

#define MIB (1024 * 1024)
#define CHUNK (64 * 1024) /* a typical file's added text */
#define MAX_REAL_FILE (4 * MIB)

struct corpus {
	char *buf;
	size_t len, cap;
	size_t *cuts; /* buffer boundaries: file ends, or ~CHUNK apart */
	size_t ncuts, cutcap;
	size_t planted;
	size_t real_bytes, real_files;
};

/* One rule set, as secretscan compiled it and as the other engines get
 * it: the built-ins, the custom rules, and the upstream secret. */
struct bench {
	struct secretscan_db *db;
	struct secretscan_scratch *s;
	const struct secretscan_rule *rules; /* built-ins, then custom */
	size_t nrules;
};

#define MAX_CUSTOM 64
#define NBENCH_RULES (32 + MAX_CUSTOM)
static const char upstream[] = "bench-upstream-credential-0123456789";

static struct corpus corpus;
static size_t real_cap;
static uint64_t rng = 0x9e3779b97f4a7c15u;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	return p;
}

static void append(const void *p, size_t n)
{
	while (corpus.len + n > corpus.cap) {
		corpus.cap = corpus.cap ? corpus.cap * 2 : 16 * MIB;
		corpus.buf = xrealloc(corpus.buf, corpus.cap);
	}
	memcpy(corpus.buf + corpus.len, p, n);
	corpus.len += n;
}

static void cut(void)
{
	if (corpus.ncuts == corpus.cutcap) {
		corpus.cutcap = corpus.cutcap ? corpus.cutcap * 2 : 4096;
		corpus.cuts = xrealloc(corpus.cuts,
				       corpus.cutcap * sizeof(*corpus.cuts));
	}
	corpus.cuts[corpus.ncuts++] = corpus.len;
}

/* ---- real text ---- */

static int add_file(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	FILE *f;
	char *data;
	size_t n;

	(void)ftw;
	if (corpus.real_bytes >= real_cap)
		return 1;
	if (type != FTW_F || !S_ISREG(st->st_mode) || st->st_size == 0 ||
	    st->st_size > MAX_REAL_FILE)
		return 0;
	f = fopen(path, "rb");
	if (!f)
		return 0;
	data = xrealloc(NULL, (size_t)st->st_size);
	n = fread(data, 1, (size_t)st->st_size, f);
	fclose(f);
	if (n > 0 && !secretscan_is_binary(data, n)) {
		append(data, n);
		cut();
		corpus.real_bytes += n;
		corpus.real_files++;
	}
	free(data);
	return 0;
}

/* ---- generated text ---- */

static const char *const words[] = {
	"buffer", "request", "config",	"client", "token", "value",  "index",
	"length", "result",  "handler", "stream", "parse", "update", "repo",
	"branch", "commit",  "policy",	"secret", "key",   "public", "private",
	"the",	  "and",     "of",	"to",	  "a",	   "in",     "is",
	"that",	  "for",     "with",	"task",	  "ask",   "mask",   "desk",
	"gh",	  "npm",     "pypi",	"glpat",  "xox",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static const char b62[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static void random_chars(char *out, size_t n, const char *set, size_t setn)
{
	for (size_t i = 0; i < n; i++)
		out[i] = set[next() % setn];
}

static const char *word(void)
{
	return words[next() % NWORDS];
}

/* Lines a repository's text is made of, plus near misses of the rules. */
static int gen_line(char *out, size_t cap)
{
	char blob[96];
	unsigned k = (unsigned)(next() % 12);

	random_chars(blob, sizeof(blob), b62, 62);
	switch (k) {
	case 0:
		return snprintf(out, cap,
				"static int %s_%s(struct %s *p, "
				"size_t n)\n",
				word(), word(), word());
	case 1:
		return snprintf(out, cap,
				"\tif (p->%s > MAX_%u)\n\t\treturn "
				"-EINVAL;\n",
				word(), (unsigned)(next() % 999));
	case 2:
		return snprintf(out, cap,
				"    %s = self.%s.get(url, params="
				"{'page': %u})\n",
				word(), word(), (unsigned)(next() % 100));
	case 3:
		return snprintf(out, cap, "/* %s %s %s %s %s %s %s %s. */\n",
				word(), word(), word(), word(), word(), word(),
				word(), word());
	case 4:
		return snprintf(out, cap,
				"  %s_url: \"https://api.example."
				"com/v1/%s/%.12s\"\n",
				word(), word(), blob);
	case 5:
		return snprintf(out, cap, "  integrity sha512-%.88s==\n", blob);
	case 6:
		return snprintf(out, cap, "%.40s %s/%s\n", blob, word(),
				word());
	case 7: /* prefixes without a credential after them */
		return snprintf(out, cap,
				"%s-proj-%s ghp_%s AKIA%s npm_%s "
				"xoxb-%s-%s\n",
				word(), word(), word(), word(), word(), word(),
				word());
	case 8:
		return snprintf(out, cap,
				"-----BEGIN CERTIFICATE-----\n"
				"%.64s\n",
				blob);
	case 9:
		return snprintf(out, cap,
				"const char *h = \"-----BEGIN "
				"PRIVATE KEY-----\"; /* %s */\n",
				word());
	case 10:
		return snprintf(out, cap, "\t%s = sk-%.16s; v4.local.%.20s\n",
				word(), blob, blob + 20);
	default:
		return snprintf(out, cap, "%s %s %s %s %s %s\n", word(), word(),
				word(), word(), word(), word());
	}
}

/* A credential of each rule's format, built here so this file holds none. */
static int gen_secret(char *out, size_t cap, unsigned k)
{
	char body[128];

	random_chars(body, sizeof(body), b62, 62);
	switch (k % 8) {
	case 0:
		return snprintf(out, cap,
				"token = \"gh"
				"p_%.36s\"\n",
				body);
	case 1:
		return snprintf(out, cap,
				"AWS_KEY=AK"
				"IA%.16s\n",
				"Q7X2"
				"M4K9P1ZR8T3W");
	case 2:
		return snprintf(out, cap,
				"key: sk_li"
				"ve_%.24s\n",
				body);
	case 3:
		return snprintf(out, cap,
				"NPM=np"
				"m_%.36s\n",
				body);
	case 4:
		return snprintf(out, cap,
				"x = 'AI"
				"za%.35s'\n",
				body);
	case 5:
		return snprintf(out, cap,
				"gl"
				"pat-%.20s\n",
				body);
	case 6:
		return snprintf(out, cap,
				"-----BEGIN RSA PRIV"
				"ATE KEY-----"
				"\n%.64s\n",
				body);
	default:
		return snprintf(out, cap,
				"ANTHROPIC=sk-an"
				"t-api03-%.80s\n",
				body);
	}
}

static void generate(size_t total)
{
	char line[512];
	size_t last_cut = corpus.len, next_plant = corpus.len + MIB;
	int n;

	while (corpus.len < total) {
		if (corpus.len >= next_plant) {
			n = gen_secret(line, sizeof(line),
				       (unsigned)corpus.planted++);
			next_plant += MIB;
		} else {
			n = gen_line(line, sizeof(line));
		}
		append(line, (size_t)n);
		if (corpus.len - last_cut >= CHUNK) {
			cut();
			last_cut = corpus.len;
		}
	}
	cut();
}

static void build_corpus(size_t total)
{
	static const char *const roots[] = {"/usr/include", "/usr/share/perl",
					    "/usr/lib/python3"};

	real_cap = total / 2;
	for (size_t i = 0; i < 3 && corpus.real_bytes < real_cap; i++)
		nftw(roots[i], add_file, 32, FTW_PHYS);
	generate(total);
}

/* ---- engines ---- */

static int count_match(const struct secretscan_match *m, void *payload)
{
	(void)m;
	(*(size_t *)payload)++;
	return 0;
}

static void scan_or_die(const struct secretscan_db *db,
			struct secretscan_scratch *s, const char *p, size_t n,
			size_t *found)
{
	struct gg_err err = GG_ERR_INIT;

	if (secretscan_scan(db, s, p, n, count_match, found, &err) != 0) {
		fprintf(stderr, "bench: %s\n", err.msg);
		exit(1);
	}
}

static double run_files(const struct bench *b, size_t *found)
{
	double t = now_s();
	size_t from = 0;

	for (size_t i = 0; i < corpus.ncuts; i++) {
		scan_or_die(b->db, b->s, corpus.buf + from,
			    corpus.cuts[i] - from, found);
		from = corpus.cuts[i];
	}
	return now_s() - t;
}

static double run_lines(const struct bench *b, size_t *found)
{
	const char *p = corpus.buf, *end = corpus.buf + corpus.len, *nl;
	double t = now_s();

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl ? nl + 1 : end;
		scan_or_die(b->db, b->s, p, (size_t)(nl - p), found);
		p = nl;
	}
	return now_s() - t;
}

static int hs_count(unsigned id, unsigned long long from, unsigned long long to,
		    unsigned flags, void *ctx)
{
	(void)id, (void)from, (void)to, (void)flags;
	(*(size_t *)ctx)++;
	return 0;
}

/* The same rules without HS_FLAG_SOM_LEFTMOST: what tracking a match's
 * start costs. Counts raw end-of-match reports. */
static double run_hs_nosom(const struct bench *b, size_t *found)
{
	const char *exprs[NBENCH_RULES];
	unsigned ids[NBENCH_RULES];
	hs_database_t *db;
	hs_scratch_t *scratch = NULL;
	hs_compile_error_t *ce;
	size_t from = 0;
	double t;

	for (size_t i = 0; i < b->nrules; i++) {
		exprs[i] = b->rules[i].regex;
		ids[i] = (unsigned)i;
	}
	if (hs_compile_multi(exprs, NULL, ids, (unsigned)b->nrules,
			     HS_MODE_BLOCK, NULL, &db, &ce) != HS_SUCCESS ||
	    hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
		fprintf(stderr, "bench: hyperscan compile failed\n");
		exit(1);
	}
	t = now_s();
	for (size_t i = 0; i < corpus.ncuts; i++) {
		hs_scan(db, corpus.buf + from,
			(unsigned)(corpus.cuts[i] - from), 0, scratch, hs_count,
			found);
		from = corpus.cuts[i];
	}
	t = now_s() - t;
	hs_free_scratch(scratch);
	hs_free_database(db);
	return t;
}

#ifdef GG_BENCH_PCRE2
static pcre2_code *pcre2_or_die(const char *re, uint32_t options)
{
	int ec;
	PCRE2_SIZE at;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
					 options, &ec, &at, NULL);

	if (!code || pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) != 0) {
		fprintf(stderr, "bench: pcre2 cannot compile %s\n", re);
		exit(1);
	}
	return code;
}

/* Every match of code in every buffer, with JIT and a match limit. */
static double pcre2_pass(pcre2_code *code, size_t *found)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	PCRE2_SIZE off, *ov = pcre2_get_ovector_pointer(md);
	size_t from = 0, len;
	double t;

	pcre2_set_match_limit(mc, 100000);
	t = now_s();
	for (size_t i = 0; i < corpus.ncuts; i++) {
		len = corpus.cuts[i] - from;
		off = 0;
		while (pcre2_jit_match(code, (PCRE2_SPTR)corpus.buf + from, len,
				       off, 0, md, mc) >= 0) {
			(*found)++;
			off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
		}
		from = corpus.cuts[i];
	}
	t = now_s() - t;
	pcre2_match_context_free(mc);
	pcre2_match_data_free(md);
	return t;
}

/* All rules as one pattern, the upstream secret quoted (\Q...\E). */
static double run_pcre2_alternation(const struct bench *b, size_t *found)
{
	size_t cap = 65536, len = 0;
	char *re = xrealloc(NULL, cap);
	pcre2_code *code;
	double t;

	for (size_t i = 0; i < b->nrules; i++)
		len += (size_t)snprintf(re + len, cap - len, "(?:%s)|",
					b->rules[i].regex);
	snprintf(re + len, cap - len, "\\Q%s\\E", upstream);
	code = pcre2_or_die(re, PCRE2_MULTILINE);
	t = pcre2_pass(code, found);
	pcre2_code_free(code);
	free(re);
	return t;
}

/* One pass per rule, and one for the upstream secret as a literal. */
static double run_pcre2_per_rule(const struct bench *b, size_t *found)
{
	pcre2_code *code;
	double t = 0;

	for (size_t i = 0; i <= b->nrules; i++) {
		code = i < b->nrules ? pcre2_or_die(b->rules[i].regex,
						    PCRE2_MULTILINE)
				     : pcre2_or_die(upstream, PCRE2_LITERAL);
		t += pcre2_pass(code, found);
		pcre2_code_free(code);
	}
	return t;
}
#endif

/* ---- driver ---- */

static void print_row(const char *what, double secs, size_t found, size_t bytes)
{
	printf("%-56s %6.0f MB/s  (%6.3f s, %zu matches)\n", what,
	       (double)bytes / 1e6 / secs, secs, found);
}

typedef double (*run_fn)(const struct bench *b, size_t *found);

/* Best of reps: the run least disturbed by other load on the machine. */
static double best(long reps, run_fn run, const struct bench *b, size_t *found)
{
	double t, min = 1e9;

	for (long i = 0; i < reps; i++) {
		*found = 0;
		t = run(b, found);
		if (t < min)
			min = t;
	}
	return min;
}

/* Custom rules of the shapes sites write: a prefix and a body, some
 * case-insensitive with a key=value context. */
static void custom_rules(struct secretscan_rule *out, unsigned n)
{
	static char ids[MAX_CUSTOM][32], res[MAX_CUSTOM][128];

	for (unsigned i = 0; i < n && i < MAX_CUSTOM; i++) {
		snprintf(ids[i], sizeof(ids[i]), "custom-%u", i);
		if (i % 3 == 0)
			snprintf(res[i], sizeof(res[i]), "acme%u_[0-9a-f]{32}",
				 i);
		else if (i % 3 == 1)
			snprintf(res[i], sizeof(res[i]),
				 "(?i)corp%u[_-]?token\\s*[:=]\\s*"
				 "[A-Za-z0-9]{24}",
				 i);
		else
			snprintf(res[i], sizeof(res[i]),
				 "\\bint%u-[A-Z0-9]{20}\\b", i);
		out[i].id = ids[i];
		out[i].regex = res[i];
	}
}

static void bench_init(struct bench *b, struct secretscan_rule *all,
		       size_t ncustom)
{
	size_t nb;
	const struct secretscan_rule *builtin = secretscan_builtins(&nb);
	struct secretscan_opts o = {
		.builtins = true,
		.rules = all + nb,
		.nrules = ncustom,
		.upstream_secret = upstream,
		.upstream_secret_len = sizeof(upstream) - 1,
	};
	struct secretscan_db *db;
	struct gg_err err = GG_ERR_INIT;
	double t;

	memcpy(all, builtin, nb * sizeof(*all));
	custom_rules(all + nb, (unsigned)ncustom);
	t = now_s();
	if (secretscan_db_new(&db, &o, &err) != 0 ||
	    secretscan_scratch_new(&b->s, db, &err) != 0) {
		fprintf(stderr, "bench: %s\n", err.msg);
		exit(1);
	}
	printf("compile: %zu rules (%zu built-in, %zu custom, the upstream "
	       "secret) in %.1f ms\n",
	       secretscan_db_count(db), nb, ncustom, (now_s() - t) * 1e3);
	b->db = db;
	b->rules = all;
	b->nrules = nb + ncustom;
}

static void bench_release(struct bench *b)
{
	secretscan_scratch_free(b->s);
	secretscan_db_free(b->db);
}

static void run_set(long reps, size_t ncustom, bool all_modes)
{
	struct secretscan_rule all[NBENCH_RULES];
	struct bench b;
	size_t found;
	double t;

	bench_init(&b, all, ncustom);
	t = best(reps, run_files, &b, &found);
	print_row("secretscan_scan, file-sized buffers", t, found, corpus.len);
	if (all_modes) {
		t = best(reps, run_lines, &b, &found);
		print_row("secretscan_scan, one call per line", t, found,
			  corpus.len);
		t = best(reps, run_hs_nosom, &b, &found);
		print_row("Hyperscan, same rules without start of match", t,
			  found, corpus.len);
	}
#ifdef GG_BENCH_PCRE2
	if (all_modes) {
		t = best(reps, run_pcre2_alternation, &b, &found);
		print_row("PCRE2 JIT, all rules as one alternation", t, found,
			  corpus.len);
	}
	t = best(reps, run_pcre2_per_rule, &b, &found);
	print_row("PCRE2 JIT, one pass per rule", t, found, corpus.len);
#endif
	bench_release(&b);
}

int main(int argc, char **argv)
{
	long mib = 128, reps = 3;
	size_t lines = 0;

	if (argc > 1)
		mib = strtol(argv[1], NULL, 10);
	if (argc > 2)
		reps = strtol(argv[2], NULL, 10);
	if (mib < 1 || mib > 4000 || reps < 1 || reps > 100) {
		fprintf(stderr, "usage: bench_secretscan [MiB 1-4000] "
				"[repetitions 1-100]\n");
		return 2;
	}
	build_corpus((size_t)mib * MIB);
	for (size_t i = 0; i < corpus.len; i++)
		lines += corpus.buf[i] == '\n';
	printf("engine: libhs %s\n", hs_version());
	printf("corpus: %.1f MiB (%.1f MiB real text in %zu files), %zu "
	       "buffers, %zu lines, %zu planted credentials\n",
	       (double)corpus.len / MIB, (double)corpus.real_bytes / MIB,
	       corpus.real_files, corpus.ncuts, lines, corpus.planted);
	run_set(reps, 1, true);
	run_set(reps, MAX_CUSTOM, false);
	free(corpus.buf);
	free(corpus.cuts);
	return 0;
}

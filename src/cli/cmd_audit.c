/*
 * cmd_audit.c - `gitgate audit` (review the audit log) and `gitgate audit
 * verify` (check its hash chain). Format and chain rules: audit.h.
 *
 * Several --log files are either one log's rotated files (oldest first:
 * one chain across them) or the logs of several instances (each its own
 * chain). Each file's first line tells which: files whose lines carry the
 * same "instance" (or none, as before instances were recorded) form one
 * chain, in the order given. Viewing merges all of them by time.
 */
#include "gitgate/audit/audit.h"
#include "gitgate/core/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SYNOPSIS                                                             \
	"usage: gitgate audit (--config FILE | --log FILE...) [--since DUR]\n" \
	"                     [--repo OWNER/NAME] [--sub TEXT]\n"             \
	"                     [--decision allow|deny] [--json] [--follow]\n"  \
	"       gitgate audit verify (--config FILE | --log FILE...)\n"

/* Bad usage gets the synopsis; --help the whole text. */
static const char usage[] = SYNOPSIS;
static const char help[] =
	SYNOPSIS
	"\n"
	"Review the audit log (a table for people, or the matching JSON lines\n"
	"verbatim with --json), or check its hash chain with 'verify'.\n"
	"\n"
	"  --config FILE      read the log named by the config's \"audit_log\"\n"
	"                     (default audit.jsonl, relative to the config)\n"
	"  --log FILE         read FILE; repeat for rotated files (oldest first)\n"
	"                     or for several instances' logs (merged by time,\n"
	"                     each instance's chain verified on its own)\n"
	"  --since DUR        only records newer than DUR ago (90s, 15m, 1h, 7d)\n"
	"  --repo OWNER/NAME  only this repository (case-insensitive)\n"
	"  --sub TEXT         only tokens with this subject\n"
	"  --decision D       only allow or only deny\n"
	"  --json             print matching lines as they are in the log\n"
	"  --follow           keep printing new records (survives rotation);\n"
	"                     stop with Ctrl-C\n"
	"  -h, --help         show this help\n"
	"\n"
	"verify prints \"ok: N records, chain intact, last hash HEX\" or exits 1\n"
	"naming the first bad line.\n";

#define POLL_NS (200 * 1000 * 1000)
#define REFS_SHOWN 3

enum col { COL_TIME, COL_INSTANCE, COL_SUB, COL_REPO, COL_SERVICE,
	   COL_DECISION, COL_REFS, COL_REASON, NCOLS };

static const char *const col_names[NCOLS] = {
	"TIME", "INSTANCE", "SUB", "REPO", "SERVICE", "DECISION", "REFS",
	"REASON",
};

struct opts {
	bool verify;
	const char *config;
	const char **logs; /* borrowed from argv */
	size_t nlogs;
	bool has_since;
	int64_t since_s;
	const char *repo;
	const char *sub;
	const char *decision;
	bool json;
	bool follow;
};

struct row {
	char *cell[NCOLS];
};

/* One record kept for the merge by time (several --log files). */
struct entry {
	int64_t time_ms;
	size_t seq; /* order read: ties keep it (stable) */
	json_t *obj;
	char *line; /* the line as it is in the file (--json) */
	size_t len;
};

struct view {
	const struct opts *o;
	int64_t since_ms; /* records older than this are skipped */
	bool streaming;   /* print table rows at once (--follow, after start) */
	bool merging;     /* keep matching records in entries, sort, print */
	bool show_instance; /* the INSTANCE column (several --log files) */
	struct row *rows;
	size_t nrows, caprows;
	size_t width[NCOLS];
	struct entry *entries;
	size_t nentries, capentries;
	int64_t last_time_ms; /* of the last record read, for one without */
};

/* The one flag a signal handler may set: --follow stops cleanly. */
static volatile sig_atomic_t stop_requested;

/* ---- options ---- */

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "log", required_argument, NULL, 'l' },
	{ "since", required_argument, NULL, 's' },
	{ "repo", required_argument, NULL, 'r' },
	{ "sub", required_argument, NULL, 'u' },
	{ "decision", required_argument, NULL, 'd' },
	{ "json", no_argument, NULL, 'j' },
	{ "follow", no_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Options valid for `audit` only, refused after `verify`. */
static bool view_only(int c)
{
	return c == 's' || c == 'r' || c == 'u' || c == 'd' || c == 'j' ||
	       c == 'f';
}

static int take_option(struct opts *o, int c, const char *arg,
		       const char *cmd)
{
	switch (c) {
	case 'c':
		if (o->config)
			return cli_usage_error(usage, "%s: --config: given "
						      "twice", cmd);
		o->config = arg;
		return 0;
	case 'l':
		o->logs[o->nlogs++] = arg;
		return 0;
	case 's':
		o->has_since = true;
		if (cli_parse_duration(&o->since_s, arg) < 0)
			return cli_usage_error(usage,
					       "audit: --since: '%s' is not a "
					       "duration like 90s, 15m, 1h or "
					       "7d",
					       arg);
		return 0;
	case 'r':
		o->repo = arg;
		return 0;
	case 'u':
		o->sub = arg;
		return 0;
	case 'd':
		if (strcmp(arg, "allow") && strcmp(arg, "deny"))
			return cli_usage_error(usage, "audit: --decision: "
						      "must be allow or deny");
		o->decision = arg;
		return 0;
	case 'j':
		o->json = true;
		return 0;
	default:
		o->follow = true;
		return 0;
	}
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	const char *cmd = o->verify ? "audit verify" : "audit";
	int c, ret;

	opterr = 0;
	optind = 1;
	for (;;) {
		c = getopt_long(argc, argv, ":h", long_opts, NULL);
		if (c == -1)
			break;
		if (c == '?' || c == ':')
			return cli_bad_option(usage, cmd, c, argc, argv);
		/* Named from the table: argv[optind - 1] is the value
		 * after "--since 1h", and "--since=1h" as a whole. */
		if (o->verify && view_only(c))
			return cli_usage_error(usage,
					       "audit verify: --%s: verify "
					       "takes only --config or --log",
					       cli_option_name(long_opts, c));
		ret = take_option(o, c, optarg, cmd);
		if (ret)
			return ret;
	}
	if (optind < argc)
		return cli_usage_error(usage, "%s: unexpected argument '%s'",
				       cmd, argv[optind]);
	if (!o->config == !o->nlogs)
		return cli_usage_error(usage, "%s: give exactly one of "
					      "--config FILE or --log FILE", cmd);
	return 0;
}

/* ---- config ---- */

static char *path_join_dir(const char *base, const char *name)
{
	const char *slash = strrchr(base, '/');
	size_t dirlen, n;
	char *out;

	if (name[0] == '/' || !slash)
		return strdup(name);
	dirlen = (size_t)(slash - base);
	n = dirlen + 1 + strlen(name) + 1;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%.*s/%s", (int)dirlen, base, name);
	return out;
}

/* The "audit_log" key of the config file, resolved against the config's
 * directory. Only this key is read: config.c validates the whole file when
 * the proxy starts. */
static int config_audit_log(char **out, const char *cfgpath,
			    struct gg_err *err)
{
	const char *name = "audit.jsonl";
	json_error_t jerr;
	json_t *root, *v;
	int ret = 0;

	root = json_load_file(cfgpath, JSON_REJECT_DUPLICATES, &jerr);
	if (!root && jerr.line < 1) /* not read at all; text names the file */
		return gg_err_set(err, GG_EIO, "config: %s", jerr.text);
	if (!root)
		return gg_err_set(err, GG_EINVAL, "config %s:%d:%d: %s",
				  cfgpath, jerr.line, jerr.column, jerr.text);
	v = json_is_object(root) ? json_object_get(root, "audit_log") : NULL;
	if (!json_is_object(root))
		ret = gg_err_set(err, GG_EINVAL, "config %s: not a JSON object",
				 cfgpath);
	else if (v && (!json_is_string(v) || !*json_string_value(v)))
		ret = gg_err_set(err, GG_EINVAL,
				 "config %s: audit_log: must be a non-empty "
				 "string",
				 cfgpath);
	else if (v)
		name = json_string_value(v);
	if (!ret) {
		*out = path_join_dir(cfgpath, name);
		if (!*out)
			ret = gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	json_decref(root);
	return ret;
}

/* ---- verify ---- */

static const char *get_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}


static int verify_fail(const char *path, size_t nfiles, const char *why)
{
	char msg[GG_ERR_MSG_MAX + 256];

	if (nfiles > 1)
		snprintf(msg, sizeof(msg), "%s: %s", path, why);
	else
		snprintf(msg, sizeof(msg), "%s", why);
	return cli_fail("audit verify", msg);
}

/* The "instance" of path's first line, malloc'd; "" for a file without
 * one (empty, or written before instances were recorded) and for a first
 * line that does not parse (verify then says why). NULL only when the
 * file cannot be read or memory runs out. */
static char *first_instance(const char *path, struct gg_err *err)
{
	struct audit_reader r;
	const char *line, *name = NULL;
	json_t *obj = NULL;
	size_t len;
	char *out;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		gg_err_errno(err, GG_EIO, "cannot open %s", path);
		return NULL;
	}
	audit_reader_init(&r, fd);
	if (audit_reader_next(&line, &len, &r, err) == 1) {
		obj = json_loadb(line, len, 0, NULL);
		name = get_str(obj, "instance");
	}
	out = strdup(name ? name : "");
	json_decref(obj);
	audit_reader_release(&r);
	close(fd);
	if (!out)
		gg_err_set(err, GG_ENOMEM, "out of memory");
	return out;
}

/* One chain: the files whose first lines name the same instance. */
struct group {
	char *instance;
	struct audit_chain chain;
	bool noted;
	size_t last_file; /* index of its last file in the --log order */
};

struct groups {
	struct group *g;
	size_t n;
	size_t *of; /* of[i]: the group of file i */
};

static void groups_free(struct groups *gs)
{
	size_t i;

	for (i = 0; i < gs->n; i++)
		free(gs->g[i].instance);
	free(gs->g);
	free(gs->of);
}

static size_t group_find(struct groups *gs, char *instance)
{
	size_t i;

	for (i = 0; i < gs->n; i++)
		if (!strcmp(gs->g[i].instance, instance)) {
			free(instance);
			return i;
		}
	gs->g[gs->n].instance = instance;
	audit_chain_init(&gs->g[gs->n].chain);
	gs->g[gs->n].noted = false;
	return gs->n++;
}

static int groups_make(struct groups *gs, const char *const *paths, size_t n,
		       struct gg_err *err)
{
	char *instance;
	size_t i;

	gs->n = 0;
	gs->g = calloc(n, sizeof(*gs->g));
	gs->of = calloc(n, sizeof(*gs->of));
	if (!gs->g || !gs->of)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		instance = first_instance(paths[i], err);
		if (!instance)
			return err->code;
		gs->of[i] = group_find(gs, instance);
		gs->g[gs->of[i]].last_file = i;
	}
	return 0;
}

static void note_continued(struct group *g, const char *path)
{
	if (!g->chain.continued || g->noted)
		return;
	fprintf(stderr,
		"gitgate: audit verify: note: %s continues from previous file "
		"(first prev %s); its head cannot be checked\n",
		path, g->chain.first_prev);
	g->noted = true;
}

static void print_group(const struct group *g, const char *const *paths,
			const struct groups *gs, size_t n)
{
	size_t i;

	printf("ok: instance %s (", g->instance[0] ? g->instance : "-");
	for (i = 0; i < n; i++)
		if (&gs->g[gs->of[i]] == g)
			printf("%s%s", paths[i], i == g->last_file ? "" : ", ");
	printf("): %llu records, chain intact, last hash %s\n",
	       (unsigned long long)g->chain.records, g->chain.last);
}

static int run_verify(const char *const *paths, size_t n)
{
	struct gg_err err = GG_ERR_INIT;
	struct groups gs = { 0 };
	struct group *g;
	size_t i;
	int ret = CLI_OK;

	if (groups_make(&gs, paths, n, &err)) {
		groups_free(&gs);
		return cli_fail("audit verify", err.msg);
	}
	for (i = 0; i < n && ret == CLI_OK; i++) {
		g = &gs.g[gs.of[i]];
		if (audit_verify_file(&g->chain, paths[i], &err))
			ret = verify_fail(paths[i], n, err.msg);
		else
			note_continued(g, paths[i]);
	}
	for (i = 0; i < gs.n && ret == CLI_OK; i++) {
		if (gs.n == 1)
			printf("ok: %llu records, chain intact, last hash %s\n",
			       (unsigned long long)gs.g[0].chain.records,
			       gs.g[0].chain.last);
		else
			print_group(&gs.g[i], paths, &gs, n);
	}
	groups_free(&gs);
	return ret;
}

/* For viewing: last[i] is whether file i is the newest of its chain (the
 * one --follow follows). */
static int last_files(bool **out, const char *const *paths, size_t n)
{
	struct gg_err err = GG_ERR_INIT;
	struct groups gs = { 0 };
	bool *last = calloc(n, sizeof(*last));
	size_t i;
	int ret = last ? groups_make(&gs, paths, n, &err) : GG_ENOMEM;

	if (!ret)
		for (i = 0; i < gs.n; i++)
			last[gs.g[i].last_file] = true;
	groups_free(&gs);
	if (ret) {
		free(last);
		return cli_fail("audit", last ? err.msg : "out of memory");
	}
	*out = last;
	return 0;
}

/* ---- filters ---- */

static bool digits(int *out, const char **p, int n)
{
	int v = 0;

	while (n-- > 0) {
		if (**p < '0' || **p > '9')
			return false;
		v = v * 10 + (*(*p)++ - '0');
	}
	*out = v;
	return true;
}

static bool expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The log's own time format: YYYY-MM-DDTHH:MM:SS[.fff]Z. */
static bool parse_time_ms(int64_t *out, const char *s)
{
	int y, mo, d, h, mi, sec, ms = 0, scale = 100, dig;

	if (!digits(&y, &s, 4) || !expect(&s, '-') || !digits(&mo, &s, 2) ||
	    !expect(&s, '-') || !digits(&d, &s, 2) || !expect(&s, 'T') ||
	    !digits(&h, &s, 2) || !expect(&s, ':') || !digits(&mi, &s, 2) ||
	    !expect(&s, ':') || !digits(&sec, &s, 2))
		return false;
	if (expect(&s, '.'))
		while (digits(&dig, &s, 1)) {
			ms += dig * scale;
			scale /= 10;
		}
	if (!expect(&s, 'Z') || *s || mo < 1 || mo > 12 || d < 1 || d > 31)
		return false;
	*out = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) *
		       1000 +
	       ms;
	return true;
}

static bool matches(const struct view *v, const json_t *obj)
{
	const struct opts *o = v->o;
	const char *s;
	int64_t t;

	s = get_str(obj, "decision");
	if (o->decision && (!s || strcmp(s, o->decision)))
		return false;
	s = get_str(obj, "sub");
	if (o->sub && (!s || strcmp(s, o->sub)))
		return false;
	s = get_str(obj, "repo");
	if (o->repo && (!s || strcasecmp(s, o->repo)))
		return false;
	s = get_str(obj, "time");
	if (o->has_since && (!s || !parse_time_ms(&t, s) || t < v->since_ms))
		return false;
	return true;
}

/* ---- table ---- */

/* A cell for a terminal: "-" when absent; control characters (C0, DEL and
 * the UTF-8 encoded C1 range, which terminals may obey) become '?'. */
static char *cell_text(const char *s)
{
	unsigned char *out, *p;

	if (!s || !*s)
		return strdup("-");
	out = (unsigned char *)strdup(s);
	for (p = out; p && *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
		else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			p[0] = '?';
			p[1] = '?';
		}
	}
	return (char *)out;
}

/* Display width: code points, not bytes (jansson hands us valid UTF-8). */
static size_t cell_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static const char *service_text(const char *s)
{
	if (s && !strcmp(s, "git-upload-pack"))
		return "fetch";
	if (s && !strcmp(s, "git-receive-pack"))
		return "push";
	return s;
}

/* git's report-status words: a refused ref's reason would make the column
 * unreadably wide, so it goes to the REASON column instead. */
static const char *result_word(const char *result)
{
	return result && !strcmp(result, "ok") ? "ok" : "ng";
}

static const char *str_or(const char *s, const char *dflt)
{
	return s ? s : dflt;
}

/* "refs/heads/x:create:ok,refs/heads/main:update:ng,+2 more". */
static char *refs_text(const json_t *refs)
{
	size_t i, n = json_array_size(refs), sz = 0;
	const json_t *r;
	char *buf = NULL;
	FILE *f;

	if (n == 0)
		return strdup("-");
	f = open_memstream(&buf, &sz);
	if (!f)
		return NULL;
	for (i = 0; i < n && i < REFS_SHOWN; i++) {
		r = json_array_get(refs, i);
		fprintf(f, "%s%s:%s:%s", i ? "," : "",
			str_or(get_str(r, "ref"), "?"),
			str_or(get_str(r, "action"), "?"),
			result_word(get_str(r, "result")));
	}
	if (n > REFS_SHOWN)
		fprintf(f, ",+%zu more", n - REFS_SHOWN);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The record's reason; without one, why the first refused ref was
 * refused (the full per-ref detail is in --json). */
static const char *reason_text(const json_t *obj)
{
	const json_t *refs = json_object_get(obj, "refs");
	const char *s = get_str(obj, "reason"), *res;
	size_t i;

	if (s && *s)
		return s;
	for (i = 0; i < json_array_size(refs); i++) {
		res = get_str(json_array_get(refs, i), "result");
		if (res && strcmp(res, "ok"))
			return res;
	}
	return NULL;
}

static void row_free(struct row *r)
{
	size_t c;

	for (c = 0; c < NCOLS; c++)
		free(r->cell[c]);
}

static int row_build(struct row *r, const json_t *obj)
{
	char *refs = refs_text(json_object_get(obj, "refs"));
	size_t c;

	r->cell[COL_TIME] = cell_text(get_str(obj, "time"));
	r->cell[COL_INSTANCE] = cell_text(get_str(obj, "instance"));
	r->cell[COL_SUB] = cell_text(get_str(obj, "sub"));
	r->cell[COL_REPO] = cell_text(get_str(obj, "repo"));
	r->cell[COL_SERVICE] = cell_text(service_text(get_str(obj, "service")));
	r->cell[COL_DECISION] = cell_text(get_str(obj, "decision"));
	r->cell[COL_REFS] = refs ? cell_text(refs) : NULL;
	r->cell[COL_REASON] = cell_text(reason_text(obj));
	free(refs);
	for (c = 0; c < NCOLS; c++)
		if (!r->cell[c]) {
			row_free(r);
			return GG_ENOMEM;
		}
	return 0;
}

static void print_cells(const struct view *v, char *const *cells)
{
	const size_t *width = v->width;
	size_t c, w;

	for (c = 0; c + 1 < NCOLS; c++) {
		if (c == COL_INSTANCE && !v->show_instance)
			continue;
		fputs(cells[c], stdout);
		for (w = cell_width(cells[c]); w < width[c] + 2; w++)
			putchar(' ');
	}
	fputs(cells[NCOLS - 1], stdout);
	putchar('\n');
}

static void table_widths(struct view *v)
{
	size_t c, i, w;

	for (c = 0; c < NCOLS; c++) {
		v->width[c] = strlen(col_names[c]);
		for (i = 0; i < v->nrows; i++) {
			w = cell_width(v->rows[i].cell[c]);
			if (w > v->width[c])
				v->width[c] = w;
		}
	}
}

/* Widths come from the rows shown; under --follow, rows arriving later
 * keep the widths of the first screen (they may overflow, never wrap).
 * With print false the rows are only dropped. */
static void table_flush(struct view *v, bool print)
{
	size_t i;

	table_widths(v);
	if (print)
		print_cells(v, (char *const *)col_names);
	for (i = 0; i < v->nrows; i++) {
		if (print)
			print_cells(v, v->rows[i].cell);
		row_free(&v->rows[i]);
	}
	free(v->rows);
	v->rows = NULL;
	v->nrows = v->caprows = 0;
}

static int table_add(struct view *v, const json_t *obj)
{
	struct row r, *nrows;
	size_t ncap;

	if (row_build(&r, obj))
		return GG_ENOMEM;
	if (v->streaming) {
		print_cells(v, r.cell);
		row_free(&r);
		return 0;
	}
	if (v->nrows == v->caprows) {
		ncap = v->caprows ? v->caprows * 2 : 64;
		nrows = realloc(v->rows, ncap * sizeof(*nrows));
		if (!nrows) {
			row_free(&r);
			return GG_ENOMEM;
		}
		v->rows = nrows;
		v->caprows = ncap;
	}
	v->rows[v->nrows++] = r;
	return 0;
}

/* ---- reading ---- */

struct source {
	const char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t line;
	struct audit_reader r;
};

static void warn_line(const struct source *s, const char *why)
{
	fprintf(stderr, "gitgate: audit: %s: line %llu: %s\n", s->path,
		(unsigned long long)s->line, why);
}

/* The record's time; one without a readable time sorts with the record
 * read before it. */
static int64_t record_time(struct view *v, const json_t *obj)
{
	int64_t t;
	const char *s = get_str(obj, "time");

	if (s && parse_time_ms(&t, s))
		v->last_time_ms = t;
	return v->last_time_ms;
}

static int keep_entry(struct view *v, json_t *obj, const char *line,
		      size_t len)
{
	struct entry *e, *grown;
	size_t ncap;

	if (v->nentries == v->capentries) {
		ncap = v->capentries ? v->capentries * 2 : 256;
		grown = realloc(v->entries, ncap * sizeof(*grown));
		if (!grown)
			return GG_ENOMEM;
		v->entries = grown;
		v->capentries = ncap;
	}
	e = &v->entries[v->nentries];
	e->line = malloc(len + 1);
	if (!e->line)
		return GG_ENOMEM;
	memcpy(e->line, line, len);
	e->line[len] = '\0';
	e->len = len;
	e->time_ms = record_time(v, obj);
	e->seq = v->nentries++;
	e->obj = json_incref(obj);
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->time_ms != y->time_ms)
		return x->time_ms < y->time_ms ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int print_record(struct view *v, const json_t *obj, const char *line,
			size_t len)
{
	if (v->o->json) {
		fwrite(line, 1, len, stdout);
		putchar('\n');
		return 0;
	}
	return table_add(v, obj);
}

/* The kept records in time order (for ties, the order read), then
 * dropped; with print false only dropped (a file could not be read: no
 * partial output). */
static int merge_flush(struct view *v, bool print)
{
	size_t i;
	int ret = print ? 0 : GG_ERR;

	qsort(v->entries, v->nentries, sizeof(*v->entries), entry_cmp);
	for (i = 0; i < v->nentries; i++) {
		if (!ret)
			ret = print_record(v, v->entries[i].obj,
					   v->entries[i].line,
					   v->entries[i].len);
		json_decref(v->entries[i].obj);
		free(v->entries[i].line);
	}
	free(v->entries);
	v->entries = NULL;
	v->nentries = v->capentries = 0;
	v->merging = false;
	return print ? ret : 0;
}

/* Viewing is lenient (verify is the integrity check): a line that is not
 * JSON is reported and skipped. */
static int handle_line(struct view *v, const struct source *s,
		       const char *line, size_t len)
{
	json_t *obj;
	int ret = 0;

	obj = json_loadb(line, len, 0, NULL);
	if (!json_is_object(obj)) {
		warn_line(s, "not a JSON object, skipped");
	} else if (matches(v, obj)) {
		if (v->merging) {
			ret = keep_entry(v, obj, line, len);
		} else if (v->o->json) {
			fwrite(line, 1, len, stdout);
			putchar('\n');
		} else {
			ret = table_add(v, obj);
		}
	}
	json_decref(obj);
	return ret;
}

static int drain(struct view *v, struct source *s, struct gg_err *err)
{
	const char *line;
	size_t len;
	int ret;

	for (;;) {
		ret = audit_reader_next(&line, &len, &s->r, err);
		if (ret != 1)
			break;
		s->line++;
		if (handle_line(v, s, line, len))
			return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	fflush(stdout);
	return ret;
}

static int source_open(struct source *s, const char *path, struct gg_err *err)
{
	struct stat st;

	s->path = path;
	s->line = 0;
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0)
		return gg_err_errno(err, GG_EIO, "cannot open %s", path);
	if (fstat(s->fd, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	audit_reader_init(&s->r, s->fd);
	return 0;
}

static void source_close(struct source *s)
{
	if (audit_reader_pending(&s->r) > 0) {
		s->line++;
		warn_line(s, "truncated (no newline), skipped");
	}
	audit_reader_release(&s->r);
	close(s->fd);
	s->fd = -1;
}

/* ---- follow ---- */

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* The path now names another file (renamed for rotation, then
 * recreated): finish the old one, then switch. A path that does not exist
 * yet keeps us on the old file until it does. */
static int follow_rotation(struct view *v, struct source *s,
			   struct gg_err *err)
{
	struct stat st;
	int ret;

	if (stat(s->path, &st) < 0 ||
	    (st.st_dev == s->dev && st.st_ino == s->ino))
		return 0;
	ret = drain(v, s, err);
	if (ret < 0)
		return ret;
	source_close(s);
	return source_open(s, s->path, err);
}

/* Truncated in place (copytruncate rotation): start over from the top. */
static void follow_truncation(struct source *s)
{
	struct stat st;
	off_t pos = lseek(s->fd, 0, SEEK_CUR);

	if (fstat(s->fd, &st) < 0 || pos < 0 || st.st_size >= pos)
		return;
	audit_reader_release(&s->r);
	lseek(s->fd, 0, SEEK_SET);
	audit_reader_init(&s->r, s->fd);
	s->line = 0;
}

/* ---- view ---- */

static int read_file(struct view *v, const char *path, bool keep_open,
		     struct source *s, struct gg_err *err)
{
	int ret = source_open(s, path, err);

	if (ret)
		return ret;
	ret = drain(v, s, err);
	if (ret < 0 || !keep_open)
		source_close(s);
	return ret < 0 ? ret : 0;
}

/* Follow every source still open; rows print as they arrive. */
static int follow_all(struct view *v, struct source *srcs, size_t n,
		      struct gg_err *err)
{
	struct timespec tick = { 0, POLL_NS };
	size_t i;
	int ret;

	while (!stop_requested) {
		for (i = 0; i < n; i++) {
			if (srcs[i].fd < 0)
				continue;
			ret = drain(v, &srcs[i], err);
			if (ret >= 0)
				ret = follow_rotation(v, &srcs[i], err);
			if (ret < 0)
				return ret;
			follow_truncation(&srcs[i]);
		}
		nanosleep(&tick, NULL);
	}
	return 0;
}

static void close_all(struct source *srcs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (srcs[i].fd >= 0)
			source_close(&srcs[i]);
}

/* Read every file (merged by time when there are several); with --follow
 * the last file of each chain stays open and is followed. */
static int view_files(struct view *v, struct source *srcs,
		      const char *const *paths, const bool *last, size_t n,
		      struct gg_err *err)
{
	size_t i;
	int ret = 0;

	for (i = 0; i < n && !ret; i++)
		ret = read_file(v, paths[i], v->o->follow && last[i], &srcs[i],
				err);
	if (v->merging && merge_flush(v, ret == 0) && !ret)
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
	return ret;
}

static int run_view(const struct opts *o, const char *const *paths,
		    const bool *last, size_t n)
{
	struct gg_err err = GG_ERR_INIT;
	struct source *srcs = calloc(n, sizeof(*srcs));
	struct view v;
	size_t i;
	int ret;

	if (!srcs)
		return cli_fail("audit", "out of memory");
	for (i = 0; i < n; i++)
		srcs[i].fd = -1;
	memset(&v, 0, sizeof(v));
	v.o = o;
	v.merging = n > 1;
	v.show_instance = n > 1;
	if (o->has_since)
		v.since_ms = ((int64_t)time(NULL) - o->since_s) * 1000;
	if (o->follow)
		catch_stop_signals();
	ret = view_files(&v, srcs, paths, last, n, &err);
	/* A log that cannot be read prints no table, not a header alone. */
	if (!o->json)
		table_flush(&v, ret == 0);
	if (fflush(stdout) != 0 || ferror(stdout))
		ret = cli_fail("audit", "cannot write to stdout");
	else if (ret)
		ret = cli_fail("audit", err.msg);
	else if (o->follow) {
		v.streaming = true;
		ret = follow_all(&v, srcs, n, &err);
		ret = ret ? cli_fail("audit", err.msg) : CLI_OK;
	}
	close_all(srcs, n);
	free(srcs);
	return ret;
}

int cmd_audit(int argc, char **argv)
{
	struct gg_err err = GG_ERR_INIT;
	struct opts o;
	char *cfg_log = NULL;
	bool *last = NULL;
	int ret;

	if (cli_wants_help(argc, argv)) {
		fputs(help, stdout);
		return CLI_OK;
	}
	memset(&o, 0, sizeof(o));
	o.verify = argc > 1 && !strcmp(argv[1], "verify");
	o.logs = calloc((size_t)argc, sizeof(*o.logs));
	if (!o.logs)
		return cli_fail("audit", "out of memory");
	ret = o.verify ? parse_opts(&o, argc - 1, argv + 1) :
			 parse_opts(&o, argc, argv);
	if (ret)
		goto out;
	if (o.config) {
		if (config_audit_log(&cfg_log, o.config, &err)) {
			ret = cli_fail(o.verify ? "audit verify" : "audit",
				       err.msg);
			goto out;
		}
		o.logs[0] = cfg_log;
		o.nlogs = 1;
	}
	if (o.verify)
		ret = run_verify(o.logs, o.nlogs);
	else if (o.nlogs == 1 || !o.follow)
		ret = run_view(&o, o.logs, &o.follow, o.nlogs);
	else {
		ret = last_files(&last, o.logs, o.nlogs);
		if (ret == 0)
			ret = run_view(&o, o.logs, last, o.nlogs);
	}
out:
	free(last);
	free(cfg_log);
	free(o.logs);
	return ret;
}

#include "gitgate/core/metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/*
 * Every label set is a fixed table; a value is found by its index, so the
 * registry is plain arrays of atomics, sized at compile time, and a scrape
 * can never grow it. The last entry of each table is the catch-all.
 */
static const char *const services[] = { "git-upload-pack",
					"git-receive-pack", "none" };
#define NSERVICES (sizeof(services) / sizeof(services[0]))

static const char *const decisions[] = { "allow", "deny" };
#define NDECISIONS 2

/* The statuses gitgate answers with; anything else is "other". */
static const int statuses[] = { 0,   200, 400, 401, 403, 404, 405, 408,
				411, 413, 429, 431, 500, 501, 502, 503,
				504 };
#define NSTATUSES (sizeof(statuses) / sizeof(statuses[0]) + 1)

static const char *const token_reasons[] = {
	"missing",     "malformed", "too_long", "bad_signature",
	"unknown_key", "expired",   "not_yet_valid", "revoked",
	"address",     "repo",      "operation", "other"
};
#define NTOKEN_REASONS (sizeof(token_reasons) / sizeof(token_reasons[0]))

static const char *const upstream_kinds[] = {
	"connect", "timeout", "auth",	    "status",	  "redirect",
	"transfer", "credential", "rate_limit", "other"
};
#define NUPSTREAM_KINDS (sizeof(upstream_kinds) / sizeof(upstream_kinds[0]))

static const char *const policy_rules[] = {
	"token",	"protected_ref", "protected_path", "forbidden_path",
	"max_file_size", "commit_email", "secret",	   "content_check",
	"other"
};
#define NPOLICY_RULES (sizeof(policy_rules) / sizeof(policy_rules[0]))

static const char *const cache_results[] = { "hit", "miss", "bypass" };
#define NCACHE_RESULTS 3

/* ---- histograms ---------------------------------------------------- */

#define HIST_MAX_BOUNDS 16

/* Counts per bucket (not cumulative: render sums them), the last one past
 * every bound; sum in the histogram's own unit (ms or us). */
struct hist {
	_Atomic uint64_t bucket[HIST_MAX_BOUNDS + 1];
	_Atomic uint64_t sum;
	_Atomic uint64_t count;
};

struct hist_shape {
	const int64_t *bounds; /* ascending, in the recorded unit */
	size_t n;
	double unit_s; /* seconds per recorded unit */
};

static const int64_t request_ms[] = { 5,    10,	  25,	 50,	100,
				      250,  500,  1000,	 2500,	5000,
				      10000, 30000, 60000, 300000 };
static const int64_t audit_us[] = { 100,  250,	 500,	1000,  2500,
				    5000, 10000, 25000, 100000, 1000000 };
static const int64_t fetch_ms[] = { 100,   250,	  500,	  1000,	  2500,
				    5000,  10000, 30000, 60000, 120000,
				    300000, 600000 };

#define SHAPE(arr, unit) { arr, sizeof(arr) / sizeof(arr[0]), unit }
static const struct hist_shape request_shape = SHAPE(request_ms, 1e-3);
static const struct hist_shape audit_shape = SHAPE(audit_us, 1e-6);
static const struct hist_shape fetch_shape = SHAPE(fetch_ms, 1e-3);

static void hist_observe(struct hist *h, const struct hist_shape *shape,
			 int64_t v)
{
	size_t i = 0;

	if (v < 0)
		v = 0;
	while (i < shape->n && v > shape->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, (uint64_t)v, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

/* ---- the registry -------------------------------------------------- */

struct registry {
	_Atomic uint64_t requests[NSERVICES][NDECISIONS][NSTATUSES];
	struct hist duration[NSERVICES];
	_Atomic uint64_t bytes_in[NSERVICES];
	_Atomic uint64_t bytes_out[NSERVICES];
	_Atomic int64_t in_flight;
	_Atomic uint64_t token_refusals[NTOKEN_REASONS];
	struct hist audit_append;
	_Atomic uint64_t audit_failures;
	struct hist mirror_fetch;
	_Atomic uint64_t mirror_fetch_bytes;
	_Atomic uint64_t mirror_fetch_failures;
	_Atomic uint64_t upstream_errors[NUPSTREAM_KINDS];
	_Atomic uint64_t policy_refusals[NPOLICY_RULES];
	_Atomic uint64_t cache[NCACHE_RESULTS];
};

static struct registry reg;

/* Set once, before the listeners start; read by scrapes after. */
static char build_labels[256];
static int64_t start_time_s;

#define INC(field) atomic_fetch_add_explicit(&(field), 1, memory_order_relaxed)
#define ADD(field, v)                                                          \
	atomic_fetch_add_explicit(&(field), (v), memory_order_relaxed)
#define GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* Index of name in a table whose last entry is the catch-all. */
static size_t lookup(const char *const *table, size_t n, const char *name)
{
	size_t i;

	for (i = 0; name && i + 1 < n; i++)
		if (!strcmp(table[i], name))
			return i;
	return n - 1;
}

static size_t status_index(int status)
{
	size_t i;

	for (i = 0; i + 1 < NSTATUSES; i++)
		if (statuses[i] == status)
			return i;
	return NSTATUSES - 1;
}

void metrics_request(const char *service, const char *decision, int status,
		     int64_t duration_ms, uint64_t bytes_in,
		     uint64_t bytes_out)
{
	size_t s = lookup(services, NSERVICES, service);
	size_t d = decision && !strcmp(decision, "allow") ? 0 : 1;

	INC(reg.requests[s][d][status_index(status)]);
	hist_observe(&reg.duration[s], &request_shape, duration_ms);
	ADD(reg.bytes_in[s], bytes_in);
	ADD(reg.bytes_out[s], bytes_out);
}

void metrics_in_flight_add(int delta)
{
	ADD(reg.in_flight, delta);
}

void metrics_token_refused(const char *reason)
{
	INC(reg.token_refusals[lookup(token_reasons, NTOKEN_REASONS,
				      reason)]);
}

const char *metrics_token_reason(int code)
{
	switch (code) {
	case GG_ELIMIT:
		return "too_long";
	case GG_EBADSIG:
		return "bad_signature";
	case GG_ENOKEY:
		return "unknown_key";
	case GG_EEXPIRED:
		return "expired";
	case GG_ENOTYET:
		return "not_yet_valid";
	case GG_EREVOKED:
		return "revoked";
	case GG_EINVAL:
		return "malformed";
	default:
		return "other";
	}
}

void metrics_audit_append(int64_t duration_us, bool ok)
{
	hist_observe(&reg.audit_append, &audit_shape, duration_us);
	if (!ok)
		INC(reg.audit_failures);
}

void metrics_mirror_fetch(int64_t duration_ms, uint64_t bytes, bool ok)
{
	hist_observe(&reg.mirror_fetch, &fetch_shape, duration_ms);
	ADD(reg.mirror_fetch_bytes, bytes);
	if (!ok)
		INC(reg.mirror_fetch_failures);
}

void metrics_upstream_error(const char *kind)
{
	INC(reg.upstream_errors[lookup(upstream_kinds, NUPSTREAM_KINDS,
				       kind)]);
}

void metrics_policy_refused(const char *rule)
{
	const char *r = !rule ? "token"
			: !strncmp(rule, "secret:", 7) ? "secret"
						       : rule;

	INC(reg.policy_refusals[lookup(policy_rules, NPOLICY_RULES, r)]);
}

void metrics_cache_result(const char *result)
{
	size_t i;

	for (i = 0; result && i < NCACHE_RESULTS; i++)
		if (!strcmp(cache_results[i], result))
			INC(reg.cache[i]);
}

void metrics_set_build_info(const char *version, const char *libgit2,
			    const char *libcurl, const char *libmicrohttpd)
{
	snprintf(build_labels, sizeof(build_labels),
		 "version=\"%s\",libgit2=\"%s\",libcurl=\"%s\","
		 "libmicrohttpd=\"%s\"",
		 version, libgit2, libcurl, libmicrohttpd);
	start_time_s = (int64_t)time(NULL);
}

void metrics_reset(void)
{
	memset(&reg, 0, sizeof(reg));
}

/* ---- rendering ----------------------------------------------------- */

struct text {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void put(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		char *grown = realloc(t->buf, t->cap * 2 + (size_t)n);

		if (!grown) {
			t->failed = true;
			return;
		}
		t->buf = grown;
		t->cap = t->cap * 2 + (size_t)n;
	}
}

static void head(struct text *t, const char *name, const char *type,
		 const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family of one unlabelled sample. */
static void put_scalar(struct text *t, const char *name, const char *type,
		       const char *help, long long v)
{
	head(t, name, type, help);
	put(t, "%s %lld\n", name, v);
}

/* A histogram's series for one label set (labels: "" or `k="v"`). */
static void put_hist(struct text *t, const char *name, const char *labels,
		     struct hist *h, const struct hist_shape *shape)
{
	const char *sep = labels[0] ? "," : "";
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i < shape->n; i++) {
		cum += GET(h->bucket[i]);
		put(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
		    (double)shape->bounds[i] * shape->unit_s,
		    (unsigned long long)cum);
	}
	cum += GET(h->bucket[shape->n]);
	put(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
	    (unsigned long long)cum);
	put(t, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "", (double)GET(h->sum) * shape->unit_s);
	/* count = the buckets' total, read above: a request recorded
	 * between the reads must not make count disagree with +Inf */
	put(t, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "", (unsigned long long)cum);
}

/* A histogram family of one unlabelled series. */
static void put_histogram(struct text *t, const char *name, const char *help,
			  struct hist *h, const struct hist_shape *shape)
{
	head(t, name, "histogram", help);
	put_hist(t, name, "", h, shape);
}

/* A counter family over one label (every value, zero included, so rates
 * exist from the first scrape). */
static void put_counters(struct text *t, const char *name, const char *help,
			 const char *label, const char *const *values,
			 _Atomic uint64_t *counts, size_t n)
{
	size_t i;

	head(t, name, "counter", help);
	for (i = 0; i < n; i++)
		put(t, "%s{%s=\"%s\"} %llu\n", name, label, values[i],
		    (unsigned long long)GET(counts[i]));
}

static void render_requests(struct text *t)
{
	size_t s, d, st;
	char code[16];
	uint64_t v;

	head(t, "gitgate_requests_total", "counter",
	     "Audited requests by service, decision and HTTP status.");
	for (s = 0; s < NSERVICES; s++)
		for (d = 0; d < NDECISIONS; d++)
			for (st = 0; st < NSTATUSES; st++) {
				v = GET(reg.requests[s][d][st]);
				/* sparse: a series appears once it happens */
				if (!v)
					continue;
				if (st + 1 < NSTATUSES)
					snprintf(code, sizeof(code), "%d",
						 statuses[st]);
				else
					snprintf(code, sizeof(code), "other");
				put(t,
				    "gitgate_requests_total{service=\"%s\","
				    "decision=\"%s\",status=\"%s\"} %llu\n",
				    services[s], decisions[d], code,
				    (unsigned long long)v);
			}
	head(t, "gitgate_request_duration_seconds", "histogram",
	     "Time from a request's first byte to its audit line.");
	for (s = 0; s < NSERVICES; s++) {
		char labels[64];

		snprintf(labels, sizeof(labels), "service=\"%s\"", services[s]);
		put_hist(t, "gitgate_request_duration_seconds", labels,
			 &reg.duration[s], &request_shape);
	}
	put_counters(t, "gitgate_request_bytes_received_total",
		     "Request body bytes received from clients.", "service",
		     services, reg.bytes_in, NSERVICES);
	put_counters(t, "gitgate_request_bytes_sent_total",
		     "Response bytes sent to clients.", "service", services,
		     reg.bytes_out, NSERVICES);
	put_scalar(t, "gitgate_requests_in_flight", "gauge",
		   "Requests received and not yet completed.",
		   (long long)GET(reg.in_flight));
}

static void render_subsystems(struct text *t)
{
	put_counters(t, "gitgate_token_refusals_total",
		     "Requests refused for their credential, by reason.",
		     "reason", token_reasons, reg.token_refusals,
		     NTOKEN_REASONS);
	put_histogram(t, "gitgate_audit_append_seconds",
		      "Time to append and flush one audit line.",
		      &reg.audit_append, &audit_shape);
	put_scalar(t, "gitgate_audit_append_failures_total", "counter",
		   "Audit lines that could not be written.",
		   (long long)GET(reg.audit_failures));
	put_histogram(t, "gitgate_mirror_fetch_seconds",
		      "Mirror fetches from upstream and their duration.",
		      &reg.mirror_fetch, &fetch_shape);
	put_scalar(t, "gitgate_mirror_fetch_bytes_total", "counter",
		   "Pack bytes mirror fetches brought in.",
		   (long long)GET(reg.mirror_fetch_bytes));
	put_scalar(t, "gitgate_mirror_fetch_failures_total", "counter",
		   "Mirror fetches that failed.",
		   (long long)GET(reg.mirror_fetch_failures));
	put_counters(t, "gitgate_upstream_errors_total",
		     "Upstream failures, by kind.", "kind", upstream_kinds,
		     reg.upstream_errors, NUPSTREAM_KINDS);
	put_counters(t, "gitgate_policy_refusals_total",
		     "Refs refused, by the rule that refused them.", "rule",
		     policy_rules, reg.policy_refusals, NPOLICY_RULES);
	put_counters(t, "gitgate_fetch_cache_requests_total",
		     "Pack requests judged by the fetch cache, by result.",
		     "result", cache_results, reg.cache, NCACHE_RESULTS);
}

static long count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static long resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, rss = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

static void render_process(struct text *t)
{
	struct rusage ru;
	long fds = count_open_fds(), rss = resident_bytes();

	head(t, "gitgate_build_info", "gauge",
	     "Always 1; the labels say what is running.");
	put(t, "gitgate_build_info{%s} 1\n", build_labels);
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		head(t, "process_cpu_seconds_total", "counter",
		     "User and system CPU time spent, in seconds.");
		put(t, "process_cpu_seconds_total %.3f\n",
		    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			    (double)(ru.ru_utime.tv_usec +
				     ru.ru_stime.tv_usec) / 1e6);
	}
	if (rss >= 0)
		put_scalar(t, "process_resident_memory_bytes", "gauge",
			   "Resident memory size in bytes.", rss);
	if (fds >= 0)
		put_scalar(t, "process_open_fds", "gauge",
			   "Number of open file descriptors.", fds);
	put_scalar(t, "process_start_time_seconds", "gauge",
		   "Start time of the process since the Unix epoch, in "
		   "seconds.",
		   (long long)start_time_s);
}

int metrics_render(char **out, size_t *len, struct gg_err *err)
{
	struct text t = { malloc(16384), 0, 16384, false };

	*out = NULL;
	*len = 0;
	if (!t.buf)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	t.buf[0] = '\0';
	render_requests(&t);
	render_subsystems(&t);
	render_process(&t);
	if (t.failed) {
		free(t.buf);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	*out = t.buf;
	*len = t.len;
	return GG_OK;
}

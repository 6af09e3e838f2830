/*
 * report.c - parse upstream's receive-pack response and build the merged
 * response for the client (see report.h).
 */
#include "gitgate/proto/report.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/array.h"
#include "gitgate/core/limits.h"
#include "gitgate/proto/pktline.h"

void report_init(struct report *r)
{
	memset(r, 0, sizeof(*r));
}

static void ref_release(struct report_ref *ref)
{
	size_t i;

	for (i = 0; i < ref->noptions; i++)
		free(ref->options[i]);
	free(ref->options);
	free(ref->refname);
	free(ref->reason);
}

void report_release(struct report *r)
{
	size_t i;

	for (i = 0; i < r->nrefs; i++)
		ref_release(&r->refs[i]);
	free(r->refs);
	free(r->unpack);
	free(r->progress);
	free(r->progress_chunks);
	free(r->fatal);
	report_init(r);
}

unsigned report_flags(const struct rp_caps *caps)
{
	unsigned f = 0;

	if (caps->side_band_64k)
		f |= REPORT_SIDEBAND;
	if (caps->report_status || caps->report_status_v2)
		f |= REPORT_EXPECT_STATUS;
	return f;
}

/* ---- helpers ---- */

static int nomem(struct gg_err *err)
{
	return gg_err_set(err, GG_ENOMEM, "out of memory");
}

/* Make room for element n of the array at arr; *out is the (possibly
 * moved) array, which the caller stores back whatever this returns. */
static int reserve(void **out, void *arr, size_t n, size_t sz, size_t max,
		   struct gg_err *err)
{
	int rc;

	*out = arr;
	rc = array_grow(out, n, sz, max);
	if (rc == GG_ELIMIT)
		return gg_err_set(err, rc,
				  "upstream report has more than %zu entries",
				  max);
	if (rc != GG_OK)
		return nomem(err);
	return GG_OK;
}

static bool starts_with(const unsigned char *s, size_t len, const char *pre)
{
	size_t n = strlen(pre);

	return len >= n && memcmp(s, pre, n) == 0;
}

static int bad_line(const unsigned char *s, size_t len, const char *why,
		    struct gg_err *err)
{
	char shown[80];

	gg_err_sanitize(shown, sizeof(shown), s, len);
	return gg_err_set(err, GG_EINVAL, "upstream report: %s: \"%s\"", why,
			  shown);
}

/* ---- side-band demultiplexing ---- */

/* Store a band-3 message as one printable line. */
static int set_fatal(struct report *r, const unsigned char *d, size_t n,
		     struct gg_err *err)
{
	size_t i;

	while (n > 0 && (d[n - 1] == '\n' || d[n - 1] == '\r'))
		n--;
	r->fatal = pkt_dup_bytes(d, n);
	if (!r->fatal)
		return nomem(err);
	for (i = 0; i < n; i++)
		if ((unsigned char)r->fatal[i] < 0x20 || r->fatal[i] == 0x7f)
			r->fatal[i] = '?';
	return 0;
}

/* Keep a band-2 payload and remember its size (empty ones carry nothing
 * and are dropped). */
static int add_progress(struct report *r, struct pkt_buf *prog,
			const unsigned char *d, size_t n, struct gg_err *err)
{
	void *na;
	int rc;

	if (n == 0)
		return 0;
	rc = reserve(&na, r->progress_chunks, r->nprogress_chunks,
		     sizeof(*r->progress_chunks), GG_MAX_REPORT_LEN, err);
	r->progress_chunks = na;
	if (rc < 0)
		return rc;
	rc = pkt_buf_add(prog, d, n, err);
	if (rc < 0)
		return rc;
	r->progress_chunks[r->nprogress_chunks++] = n;
	return 0;
}

/*
 * Split the side-band stream in body into band-1 bytes (inner, the
 * report-status pkt-lines) and band-2 bytes (r->progress). Stops at the
 * closing flush or at a band-3 message.
 */
static int demux(struct report *r, struct pkt_buf *inner,
		 const unsigned char *body, size_t len, struct gg_err *err)
{
	struct pkt_buf prog;
	const unsigned char *d;
	struct pkt pkt;
	size_t pos = 0, used, n;
	int rc = 0, band;

	pkt_buf_init(&prog, GG_MAX_REPORT_LEN);
	for (;;) {
		if (pos == len) {
			rc = gg_err_set(err, GG_EINVAL,
					"upstream report: "
					"side-band stream ends without flush");
			break;
		}
		rc = pkt_read(&pkt, &used, body + pos, len - pos, PKT_EOF, err);
		if (rc < 0)
			break;
		pos += used;
		if (pkt.type == PKT_FLUSH) {
			if (pos != len)
				rc = gg_err_set(err, GG_EINVAL,
						"upstream "
						"report: %zu bytes after the "
						"side-band flush",
						len - pos);
			break;
		}
		if (pkt.type != PKT_DATA) {
			rc = gg_err_set(err, GG_EINVAL,
					"upstream report: "
					"unexpected special packet");
			break;
		}
		rc = pkt_sideband_split(&band, &d, &n, &pkt, err);
		if (rc < 0)
			break;
		if (band == 1)
			rc = pkt_buf_add(inner, d, n, err);
		else if (band == 2)
			rc = add_progress(r, &prog, d, n, err);
		else {
			rc = set_fatal(r, d, n, err);
			break;
		}
		if (rc < 0)
			break;
	}
	r->progress = pkt_buf_detach(&prog, &r->progress_len);
	return rc;
}

/* ---- report-status lines ---- */

static int add_ref(struct report *r, const unsigned char *name, size_t nlen,
		   const unsigned char *reason, size_t rlen, bool ok,
		   struct gg_err *err)
{
	struct report_ref *ref;
	void *na;
	int rc;

	rc = rp_refname_check((const char *)name, nlen, err);
	if (rc < 0)
		return rc;
	rc = reserve(&na, r->refs, r->nrefs, sizeof(*ref), GG_MAX_REPORT_REFS,
		     err);
	r->refs = na;
	if (rc < 0)
		return rc;
	ref = &r->refs[r->nrefs];
	memset(ref, 0, sizeof(*ref));
	ref->ok = ok;
	ref->refname = pkt_dup_bytes(name, nlen);
	if (!ok)
		ref->reason = pkt_dup_bytes(reason, rlen);
	if (!ref->refname || (!ok && !ref->reason)) {
		ref_release(ref);
		return nomem(err);
	}
	r->nrefs++;
	return 0;
}

static int line_ok(struct report *r, const unsigned char *s, size_t len,
		   struct gg_err *err)
{
	return add_ref(r, s + 3, len - 3, NULL, 0, true, err);
}

static int line_ng(struct report *r, const unsigned char *s, size_t len,
		   struct gg_err *err)
{
	const unsigned char *name = s + 3;
	const unsigned char *sp = memchr(name, ' ', len - 3);
	size_t nlen = sp ? (size_t)(sp - name) : len - 3;

	/* git's send-pack accepts "ng <ref>" without a reason */
	if (!sp)
		return add_ref(r, name, nlen, s + len, 0, false, err);
	return add_ref(r, name, nlen, sp + 1, (size_t)(s + len - sp - 1), false,
		       err);
}

static int line_option(struct report *r, const unsigned char *s, size_t len,
		       struct gg_err *err)
{
	struct report_ref *ref;
	void *na;
	char *opt;
	int rc;

	if (r->nrefs == 0)
		return bad_line(s, len, "option line before any ref", err);
	ref = &r->refs[r->nrefs - 1];
	rc = reserve(&na, ref->options, ref->noptions, sizeof(char *),
		     GG_MAX_REPORT_REFS, err);
	ref->options = na;
	if (rc < 0)
		return rc;
	opt = pkt_dup_bytes(s + 7, len - 7);
	if (!opt)
		return nomem(err);
	ref->options[ref->noptions++] = opt;
	return 0;
}

static int status_line(struct report *r, const unsigned char *s, size_t len,
		       struct gg_err *err)
{
	if (memchr(s, '\0', len))
		return bad_line(s, len, "NUL byte in line", err);
	if (!r->unpack) {
		if (!starts_with(s, len, "unpack "))
			return bad_line(s, len, "expected \"unpack\"", err);
		r->unpack = pkt_dup_bytes(s + 7, len - 7);
		return r->unpack ? 0 : nomem(err);
	}
	if (starts_with(s, len, "ok "))
		return line_ok(r, s, len, err);
	if (starts_with(s, len, "ng "))
		return line_ng(r, s, len, err);
	if (starts_with(s, len, "option "))
		return line_option(r, s, len, err);
	return bad_line(s, len, "unexpected line", err);
}

/* Parse the report-status pkt-lines in s[0..len), which must end with
 * exactly one flush. */
static int parse_status(struct report *r, const unsigned char *s, size_t len,
			struct gg_err *err)
{
	struct pkt pkt;
	size_t pos = 0, used;
	int rc;

	for (;;) {
		if (pos == len)
			return gg_err_set(err, GG_EINVAL,
					  "upstream report: "
					  "ends without flush");
		rc = pkt_read(&pkt, &used, s + pos, len - pos,
			      PKT_EOF | PKT_CHOMP_LF, err);
		if (rc < 0)
			return rc;
		pos += used;
		if (pkt.type == PKT_FLUSH)
			break;
		if (pkt.type != PKT_DATA)
			return gg_err_set(err, GG_EINVAL,
					  "upstream report: "
					  "unexpected special packet");
		rc = status_line(r, pkt.data, pkt.len, err);
		if (rc < 0)
			return rc;
	}
	if (!r->unpack)
		return gg_err_set(err, GG_EINVAL,
				  "upstream report: no "
				  "\"unpack\" line");
	if (pos != len)
		return gg_err_set(err, GG_EINVAL,
				  "upstream report: %zu bytes "
				  "after the final flush",
				  len - pos);
	r->have_status = true;
	return 0;
}

static int parse_body(struct report *r, const unsigned char *body, size_t len,
		      unsigned flags, struct gg_err *err)
{
	struct pkt_buf inner;
	int rc = 0;

	pkt_buf_init(&inner, GG_MAX_REPORT_LEN);
	if (flags & REPORT_SIDEBAND) {
		rc = demux(r, &inner, body, len, err);
		body = inner.data;
		len = inner.len;
	}
	if (rc == 0 && len > 0)
		rc = parse_status(r, body, len, err);
	else if (rc == 0 && (flags & REPORT_EXPECT_STATUS) && !r->fatal)
		rc = gg_err_set(err, GG_EINVAL,
				"upstream sent no "
				"report-status");
	pkt_buf_release(&inner);
	return rc;
}

int report_parse(struct report *out, const void *body, size_t len,
		 unsigned flags, struct gg_err *err)
{
	int rc;

	report_init(out);
	if (len > GG_MAX_REPORT_LEN)
		return gg_err_set(err, GG_ELIMIT,
				  "upstream report of %zu "
				  "bytes exceeds maximum %d",
				  len, GG_MAX_REPORT_LEN);
	rc = parse_body(out, body, len, flags, err);
	if (rc < 0)
		report_release(out);
	return rc;
}

/* ---- merging ---- */

/* Upstream entries sorted by ref name (stable), for lookup per command. */
struct ref_index {
	const struct report_ref **v;
	size_t n;
};

static int cmp_ref(const void *a, const void *b)
{
	const struct report_ref *const *x = a, *const *y = b;
	int c = strcmp((*x)->refname, (*y)->refname);

	if (c)
		return c;
	/* same name: keep upstream's order (entries live in one array) */
	return (*x > *y) - (*x < *y);
}

static int index_build(struct ref_index *ix, const struct report *up,
		       struct gg_err *err)
{
	size_t i;

	ix->v = NULL;
	ix->n = 0;
	if (!up || up->nrefs == 0)
		return 0;
	ix->v = calloc(up->nrefs, sizeof(*ix->v));
	if (!ix->v)
		return nomem(err);
	for (i = 0; i < up->nrefs; i++)
		ix->v[i] = &up->refs[i];
	ix->n = up->nrefs;
	qsort(ix->v, ix->n, sizeof(*ix->v), cmp_ref);
	return 0;
}

/* First index entry for refname, or ix->n if none. */
static size_t index_find(const struct ref_index *ix, const char *refname)
{
	size_t lo = 0, hi = ix->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(ix->v[mid]->refname, refname) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ix->n && strcmp(ix->v[lo]->refname, refname) == 0)
		return lo;
	return ix->n;
}

/* Everything report_merge needs while writing. */
struct merge_ctx {
	const struct report_merge *m;
	struct ref_index ix;
	bool any_refused;
	bool v2;
	size_t max_pkt;	    /* side-band packet size, 0 without side-band */
	size_t notes_bytes; /* note line bytes written so far */
	bool notes_full;    /* REPORT_MAX_NOTES_BYTES reached: no more notes */
};

static bool refused(const struct merge_ctx *c, size_t i)
{
	return c->m->refusals && c->m->refusals[i];
}

/* The len bytes of local text at src as a single report line: cut to
 * size - 1 bytes, control chars -> '?'. */
static void clean_text(char *dst, size_t size, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i < len && src[i] && i + 1 < size; i++)
		dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f)
				 ? '?'
				 : src[i];
	dst[i] = '\0';
}

/* One local reason as a single report line. */
static void clean_reason(char *dst, size_t size, const char *src)
{
	clean_text(dst, size, src, strlen(src));
}

static int write_ng(struct pkt_buf *out, const char *ref, const char *reason,
		    struct gg_err *err)
{
	char clean[GG_MAX_REASON_LEN + 1];

	clean_reason(clean, sizeof(clean), reason);
	return pkt_writef(out, err, "ng %s %s\n", ref, clean);
}

/*
 * Room for text in a line of fixed bytes plus text: upstream may have sent
 * a full-size line without LF, and we always add one, so cut rather than
 * fail the whole response.
 */
static int fit(size_t fixed, const char *text)
{
	size_t n = strlen(text), room = GG_MAX_PKT_DATA - fixed;

	return (int)(n < room ? n : room);
}

static int write_upstream_ref(struct pkt_buf *out, const struct merge_ctx *c,
			      const struct report_ref *u, struct gg_err *err)
{
	size_t i, fixed = strlen(u->refname) + 5; /* "ng " ref " " LF */
	int rc;

	if (u->ok)
		rc = pkt_writef(out, err, "ok %s\n", u->refname);
	else
		rc = pkt_writef(out, err, "ng %s %.*s\n", u->refname,
				fit(fixed, u->reason), u->reason);
	for (i = 0; c->v2 && i < u->noptions && rc == 0; i++)
		rc = pkt_writef(out, err, "option %.*s\n",
				fit(8, u->options[i]), u->options[i]);
	return rc;
}

/* Decide a command's status without upstream's lines: the local reason,
 * or NULL when upstream's report decides. */
static const char *local_verdict(const struct merge_ctx *c, size_t i)
{
	const struct report_merge *m = c->m;

	if (refused(c, i))
		return m->refusals[i];
	if (c->any_refused && m->req->caps.atomic)
		return REPORT_ATOMIC_REASON;
	if (m->upstream_error)
		return m->upstream_error;
	if (!m->upstream)
		return "not forwarded upstream (gitgate internal error)";
	if (m->upstream->fatal)
		return m->upstream->fatal;
	return NULL;
}

/*
 * Final verdict for command i: *why is the failure reason to write as one
 * "ng" line, or NULL when upstream's entries ix.v[*first...] (same name)
 * are to be passed through. Also records results[i].
 */
static void verdict(const struct merge_ctx *c, size_t i, const char **why,
		    size_t *first)
{
	struct report_result *res = c->m->results ? &c->m->results[i] : NULL;
	const struct report_ref *u;

	*why = local_verdict(c, i);
	*first = c->ix.n;
	if (!*why) {
		*first = index_find(&c->ix, c->m->req->commands[i].refname);
		if (*first == c->ix.n)
			*why = "no status from upstream";
	}
	if (!res)
		return;
	u = *why ? NULL : c->ix.v[*first];
	res->ok = u && u->ok;
	res->reason = u ? u->reason : *why;
}

static int write_command_status(struct pkt_buf *out, const struct merge_ctx *c,
				size_t i, struct gg_err *err)
{
	const char *ref = c->m->req->commands[i].refname;
	const char *why;
	size_t k;
	int rc = 0;

	verdict(c, i, &why, &k);
	if (why)
		return write_ng(out, ref, why, err);
	for (; k < c->ix.n && rc == 0; k++) {
		if (strcmp(c->ix.v[k]->refname, ref) != 0)
			break;
		rc = write_upstream_ref(out, c, c->ix.v[k], err);
	}
	return rc;
}

/* The report-status pkt-lines, ending with their flush. */
static int write_status(struct pkt_buf *out, const struct merge_ctx *c,
			struct gg_err *err)
{
	const struct report *up = c->m->upstream;
	const char *unpack = "ok";
	size_t i;
	int rc;

	if (c->m->local_unpack_error)
		unpack = c->m->local_unpack_error;
	else if (up && up->unpack && !c->m->upstream_error)
		unpack = up->unpack;
	rc = pkt_writef(out, err, "unpack %.*s\n", fit(8, unpack), unpack);
	for (i = 0; i < c->m->req->ncommands && rc == 0; i++)
		rc = write_command_status(out, c, i, err);
	if (rc == 0)
		rc = pkt_write_flush(out, err);
	return rc;
}

/* Fill results[] when the client gets no report (no report-status). */
static void results_only(const struct merge_ctx *c)
{
	const char *why;
	size_t i, k;

	for (i = 0; i < c->m->req->ncommands; i++)
		verdict(c, i, &why, &k);
}

static int band2_line(struct pkt_buf *out, const struct merge_ctx *c,
		      const char *what, const char *ref, const char *reason,
		      struct gg_err *err)
{
	char clean[GG_MAX_REASON_LEN + 1];
	char line[GG_MAX_REFNAME + GG_MAX_REASON_LEN + 64];
	int n;

	clean_reason(clean, sizeof(clean), reason);
	if (ref)
		n = snprintf(line, sizeof(line), "gitgate: %s %s: %s\n", what,
			     ref, clean);
	else
		n = snprintf(line, sizeof(line), "gitgate: %s: %s\n", what,
			     clean);
	if (n < 0 || (size_t)n >= sizeof(line))
		return gg_err_set(err, GG_ELIMIT, "progress line too long");
	return pkt_write_sideband(out, 2, line, (size_t)n, c->max_pkt, err);
}

/* Prefix of a note line: under its "gitgate: refusing" line, indented. */
#define NOTE_PREFIX "gitgate:   "

/* The next line of notes at *p (without its '\n'), or NULL at the end;
 * *p moves past it. */
static const char *next_note(const char **p, size_t *len)
{
	const char *s = *p, *nl;

	if (!*s)
		return NULL;
	nl = strchr(s, '\n');
	*len = nl ? (size_t)(nl - s) : strlen(s);
	*p = nl ? nl + 1 : s + *len;
	return s;
}

/* Write one note line unless it would pass REPORT_MAX_NOTES_BYTES; 1 when
 * it did not fit (nothing written), 0 when written, negative on error. */
static int note_line(struct pkt_buf *out, struct merge_ctx *c, const char *text,
		     size_t len, struct gg_err *err)
{
	char clean[GG_MAX_REASON_LEN + 1];
	char line[sizeof(NOTE_PREFIX) + GG_MAX_REASON_LEN + 1];
	int n, rc;

	clean_text(clean, sizeof(clean), text, len);
	n = snprintf(line, sizeof(line), NOTE_PREFIX "%s\n", clean);
	if (n < 0 || (size_t)n >= sizeof(line))
		return gg_err_set(err, GG_ELIMIT, "progress line too long");
	if ((size_t)n > REPORT_MAX_NOTES_BYTES - c->notes_bytes)
		return 1;
	rc = pkt_write_sideband(out, 2, line, (size_t)n, c->max_pkt, err);
	if (rc < 0)
		return rc;
	c->notes_bytes += (size_t)n;
	return 0;
}

/*
 * The notes of one refused command, one band-2 line per non-empty line:
 * at most REPORT_MAX_NOTE_LINES, none once REPORT_MAX_NOTES_BYTES have
 * gone out over the whole response; the lines left out are counted in a
 * last "... and N more" line.
 */
static int write_notes(struct pkt_buf *out, struct merge_ctx *c,
		       const char *notes, size_t hidden, struct gg_err *err)
{
	const char *p = notes, *text;
	char line[sizeof(NOTE_PREFIX) + 48];
	size_t len = 0, shown = 0, more = hidden;
	int n, rc;

	for (text = next_note(&p, &len); text; text = next_note(&p, &len)) {
		if (len == 0)
			continue;
		if (more == hidden && !c->notes_full &&
		    shown < REPORT_MAX_NOTE_LINES) {
			rc = note_line(out, c, text, len, err);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				shown++;
				continue;
			}
			c->notes_full = true;
		}
		more++;
	}
	if (more == 0)
		return 0;
	n = snprintf(line, sizeof(line), NOTE_PREFIX "... and %zu more\n",
		     more);
	if (n < 0 || (size_t)n >= sizeof(line))
		return gg_err_set(err, GG_ELIMIT, "progress line too long");
	return pkt_write_sideband(out, 2, line, (size_t)n, c->max_pkt, err);
}

/* Upstream's band-2 packets as they came (split further only if the
 * client's side-band packets are smaller). */
static int write_upstream_progress(struct pkt_buf *out,
				   const struct merge_ctx *c,
				   const struct report *up, struct gg_err *err)
{
	size_t i, pos = 0;
	int rc = 0;

	for (i = 0; i < up->nprogress_chunks && rc == 0; i++) {
		rc = pkt_write_sideband(out, 2, up->progress + pos,
					up->progress_chunks[i], c->max_pkt,
					err);
		pos += up->progress_chunks[i];
	}
	return rc;
}

static int write_progress(struct pkt_buf *out, struct merge_ctx *c,
			  struct gg_err *err)
{
	const struct report_merge *m = c->m;
	const char *failed = m->upstream_error;
	size_t i;
	int rc = 0;

	for (i = 0; i < m->req->ncommands && rc == 0; i++) {
		if (!refused(c, i))
			continue;
		rc = band2_line(out, c, "refusing", m->req->commands[i].refname,
				m->refusals[i], err);
		if (rc == 0 && m->notes && m->notes[i])
			rc = write_notes(out, c, m->notes[i],
					 m->notes_more ? m->notes_more[i] : 0,
					 err);
	}
	if (!failed && m->upstream && m->upstream->fatal)
		failed = m->upstream->fatal;
	if (rc == 0 && failed)
		rc = band2_line(out, c, "upstream failed", NULL, failed, err);
	if (rc == 0 && m->upstream)
		rc = write_upstream_progress(out, c, m->upstream, err);
	return rc;
}

static int merge_sideband(struct pkt_buf *out, struct merge_ctx *c,
			  bool want_status, struct gg_err *err)
{
	struct pkt_buf status;
	int rc;

	rc = write_progress(out, c, err);
	if (rc < 0)
		return rc;
	if (want_status) {
		pkt_buf_init(&status, out->max);
		rc = write_status(&status, c, err);
		if (rc == 0)
			rc = pkt_write_sideband(out, 1, status.data, status.len,
						c->max_pkt, err);
		pkt_buf_release(&status);
		if (rc < 0)
			return rc;
	}
	return pkt_write_flush(out, err);
}

static void ctx_init(struct merge_ctx *c, const struct report_merge *m)
{
	const struct rp_caps *caps = &m->req->caps;
	size_t i;

	c->m = m;
	c->any_refused = false;
	for (i = 0; i < m->req->ncommands; i++)
		if (refused(c, i))
			c->any_refused = true;
	c->v2 = caps->report_status_v2;
	c->notes_bytes = 0;
	c->notes_full = false;
	c->max_pkt = 0;
	if (caps->side_band_64k)
		c->max_pkt = GG_MAX_PKT_LEN;
}

int report_merge(struct pkt_buf *out, const struct report_merge *m,
		 struct gg_err *err)
{
	const struct rp_caps *caps = &m->req->caps;
	bool want_status = caps->report_status || caps->report_status_v2;
	struct merge_ctx c;
	int rc;

	ctx_init(&c, m);
	rc = index_build(&c.ix, m->upstream, err);
	if (rc < 0)
		return rc;
	if (!want_status)
		results_only(&c);
	if (c.max_pkt)
		rc = merge_sideband(out, &c, want_status, err);
	else if (want_status)
		rc = write_status(out, &c, err);
	free(c.ix.v);
	return rc;
}

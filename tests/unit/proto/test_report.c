/* test_report.c - receive-pack response parsing and merging. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/proto/report.h"

#define O1 "1111111111111111111111111111111111111111"
#define O2 "2222222222222222222222222222222222222222"
#define ZZ "0000000000000000000000000000000000000000"

/* Literal with explicit length (the data may contain NUL bytes). */
#define LIT(s) s, sizeof(s) - 1

/* ---- helpers ---- */

static void pl(struct pkt_buf *b, const char *s)
{
	ck_assert_int_eq(pkt_write(b, s, strlen(s), NULL), 0);
}

static void flush(struct pkt_buf *b)
{
	ck_assert_int_eq(pkt_write_flush(b, NULL), 0);
}

/* Wrap all of inner (pkt-lines) into band 1, then a flush. */
static void wrap_band1(struct pkt_buf *out, const struct pkt_buf *inner,
		       size_t max_pkt)
{
	ck_assert_int_eq(pkt_write_sideband(out, 1, inner->data, inner->len,
					    max_pkt, NULL),
			 0);
}

static void band(struct pkt_buf *b, int n, const char *s)
{
	ck_assert_int_eq(pkt_write_sideband(b, n, s, strlen(s), 65520, NULL),
			 0);
}

static int parse(struct report *r, const struct pkt_buf *b, unsigned flags,
		 struct gg_err *err)
{
	return report_parse(r, b->data, b->len, flags, err);
}

/* b (made here) = the lines of ap, up to a NULL, as pkt-lines, then a
 * flush. */
static void vlines(struct pkt_buf *b, va_list ap)
{
	const char *line;

	pkt_buf_init(b, 1 << 20);
	for (line = va_arg(ap, const char *); line != NULL;
	     line = va_arg(ap, const char *))
		pl(b, line);
	flush(b);
}

/* b (made here) = the lines given as pkt-lines, then a flush. */
static void lines(struct pkt_buf *b, ...) __attribute__((sentinel));
static void lines(struct pkt_buf *b, ...)
{
	va_list ap;

	va_start(ap, b);
	vlines(b, ap);
	va_end(ap);
}

/* Parse a report made of the lines given (NULL-terminated) and a flush;
 * it must parse. */
static void parse_lines(struct report *r, unsigned flags, ...)
	__attribute__((sentinel));
static void parse_lines(struct report *r, unsigned flags, ...)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf b;
	va_list ap;

	va_start(ap, flags);
	vlines(&b, ap);
	va_end(ap);
	ck_assert_int_eq(parse(r, &b, flags, &err), 0);
	pkt_buf_release(&b);
}

/* report_merge into out (made here), which must succeed. */
static void merge(struct pkt_buf *out, const struct report_merge *m)
{
	struct gg_err err = GG_ERR_INIT;

	pkt_buf_init(out, 1 << 20);
	ck_assert_int_eq(report_merge(out, m, &err), 0);
}

/* out holds exactly want's bytes. */
static void expect_bytes(const struct pkt_buf *out, const struct pkt_buf *want)
{
	ck_assert_uint_eq(out->len, want->len);
	ck_assert_mem_eq(out->data, want->data, want->len);
}

/* The merge answers a client without side-band with exactly the lines
 * given (NULL-terminated) and a flush. */
static void expect_merged(const struct report_merge *m, ...)
	__attribute__((sentinel));
static void expect_merged(const struct report_merge *m, ...)
{
	struct pkt_buf out, want;
	va_list ap;

	merge(&out, m);
	va_start(ap, m);
	vlines(&want, ap);
	va_end(ap);
	expect_bytes(&out, &want);
	pkt_buf_release(&want);
	pkt_buf_release(&out);
}

/* The merge answers a side-band-64k client with the progress lines
 * (NULL-terminated), then the report lines given (NULL-terminated) with a
 * flush, in band 1, then the closing flush. */
static void expect_merged_sideband(const struct report_merge *m,
				   const char *const *progress, ...)
	__attribute__((sentinel));
static void expect_merged_sideband(const struct report_merge *m,
				   const char *const *progress, ...)
{
	struct pkt_buf out, inner, want;
	va_list ap;

	merge(&out, m);
	va_start(ap, progress);
	vlines(&inner, ap);
	va_end(ap);
	pkt_buf_init(&want, 1 << 20);
	for (; *progress; progress++)
		band(&want, 2, *progress);
	wrap_band1(&want, &inner, 65520);
	flush(&want);
	expect_bytes(&out, &want);
	pkt_buf_release(&want);
	pkt_buf_release(&inner);
	pkt_buf_release(&out);
}

static void expect_parse_fail(const void *body, size_t len, unsigned flags,
			      int code, const char *msg)
{
	struct gg_err err = GG_ERR_INIT;
	struct report r;

	ck_assert_int_eq(report_parse(&r, body, len, flags, &err), code);
	ck_assert_str_eq(err.msg, msg);
	ck_assert_ptr_null(r.refs);
	ck_assert_ptr_null(r.unpack);
}

/* Parse a request body made of the given first command line + caps and
 * further command lines. */
static void make_req(struct rp_request *req, const char *caps,
		     const char *const *cmds, size_t n)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf b;
	char line[512];
	size_t i, len;

	pkt_buf_init(&b, 1 << 20);
	for (i = 0; i < n; i++) {
		len = (size_t)snprintf(line, sizeof(line), "%s", cmds[i]);
		if (i == 0) {
			line[len] = '\0';
			len += 1 + (size_t)snprintf(line + len + 1,
						    sizeof(line) - len - 1,
						    "%s", caps);
		}
		ck_assert_int_eq(pkt_write(&b, line, len, NULL), 0);
	}
	flush(&b);
	if (strstr(caps, "push-options"))
		flush(&b);
	rp_request_init(req);
	ck_assert_msg(rp_parse(req, b.data, b.len, &err) == 0, "%s", err.msg);
	pkt_buf_release(&b);
}

/* ---- parsing ---- */

START_TEST(parse_plain_v1)
{
	struct report r;

	parse_lines(&r, REPORT_EXPECT_STATUS, "unpack ok\n",
		    "ok refs/heads/main\n",
		    "ng refs/heads/x pre-receive hook declined\n",
		    "ng refs/heads/y\n", NULL);
	ck_assert(r.have_status);
	ck_assert_str_eq(r.unpack, "ok");
	ck_assert_uint_eq(r.nrefs, 3);
	ck_assert_str_eq(r.refs[0].refname, "refs/heads/main");
	ck_assert(r.refs[0].ok);
	ck_assert_ptr_null(r.refs[0].reason);
	ck_assert_str_eq(r.refs[1].refname, "refs/heads/x");
	ck_assert(!r.refs[1].ok);
	ck_assert_str_eq(r.refs[1].reason, "pre-receive hook declined");
	ck_assert_str_eq(r.refs[2].reason, "");
	ck_assert_uint_eq(r.progress_len, 0);
	ck_assert_ptr_null(r.fatal);
	report_release(&r);
}
END_TEST

START_TEST(parse_unpack_error)
{
	struct report r;

	parse_lines(&r, REPORT_EXPECT_STATUS,
		    "unpack index-pack abnormal exit\n",
		    "ng refs/heads/a unpacker error\n", NULL);
	ck_assert_str_eq(r.unpack, "index-pack abnormal exit");
	ck_assert_str_eq(r.refs[0].reason, "unpacker error");
	report_release(&r);
}
END_TEST

/* Bytes captured from git 2.39 http-backend (see fixtures/push). */
START_TEST(parse_sideband_real_bytes)
{
	static const char body[] = "002e\001000eunpack ok\n0017ok refs/heads/"
				   "main\n00000000";
	struct gg_err err = GG_ERR_INIT;
	struct report r;

	ck_assert_int_eq(report_parse(&r, LIT(body),
				      REPORT_SIDEBAND | REPORT_EXPECT_STATUS,
				      &err),
			 0);
	ck_assert_str_eq(r.unpack, "ok");
	ck_assert_uint_eq(r.nrefs, 1);
	ck_assert_str_eq(r.refs[0].refname, "refs/heads/main");
	report_release(&r);
}
END_TEST

START_TEST(parse_sideband_split_and_progress)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf inner, b;
	struct report r;
	size_t cut;

	pkt_buf_init(&inner, 1 << 20);
	pl(&inner, "unpack ok\n");
	pl(&inner, "ng refs/heads/a some reason with spaces\n");
	flush(&inner);
	pkt_buf_init(&b, 1 << 20);
	band(&b, 2, "Resolving deltas: 100% (1/1)\n");
	/* band 1 split in the middle of an inner pkt-line header */
	cut = 16;
	ck_assert_int_eq(
		pkt_write_sideband(&b, 1, inner.data, cut, 65520, NULL), 0);
	band(&b, 2, "more progress\r");
	ck_assert_int_eq(pkt_write_sideband(&b, 1, inner.data + cut,
					    inner.len - cut, 65520, NULL),
			 0);
	flush(&b);
	ck_assert_int_eq(
		parse(&r, &b, REPORT_SIDEBAND | REPORT_EXPECT_STATUS, &err), 0);
	ck_assert_str_eq(r.refs[0].reason, "some reason with spaces");
	ck_assert_uint_eq(r.progress_len, 29 + 14);
	ck_assert_mem_eq(r.progress,
			 "Resolving deltas: 100% (1/1)\nmore "
			 "progress\r",
			 r.progress_len);
	ck_assert_uint_eq(r.nprogress_chunks, 2);
	ck_assert_uint_eq(r.progress_chunks[0], 29);
	ck_assert_uint_eq(r.progress_chunks[1], 14);
	report_release(&r);
	pkt_buf_release(&inner);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(parse_v2_options)
{
	struct report r;

	parse_lines(&r, REPORT_EXPECT_STATUS, "unpack ok\n",
		    "ok refs/for/main/topic\n",
		    "option refname refs/changes/1/1\n",
		    "option old-oid " O1 "\n", "option new-oid " O2 "\n",
		    "option forced-update\n", "ok refs/heads/b\n", NULL);
	ck_assert_uint_eq(r.nrefs, 2);
	ck_assert_uint_eq(r.refs[0].noptions, 4);
	ck_assert_str_eq(r.refs[0].options[0], "refname refs/changes/1/1");
	ck_assert_str_eq(r.refs[0].options[1], "old-oid " O1);
	ck_assert_str_eq(r.refs[0].options[2], "new-oid " O2);
	ck_assert_str_eq(r.refs[0].options[3], "forced-update");
	ck_assert_uint_eq(r.refs[1].noptions, 0);
	report_release(&r);
}
END_TEST

START_TEST(parse_band3_fatal)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf b;
	struct report r;

	pkt_buf_init(&b, 1 << 20);
	band(&b, 2, "Counting objects\n");
	band(&b, 3, "pack exceeds\tmaximum size\n");
	pl(&b, "anything after band 3 is ignored");
	ck_assert_int_eq(
		parse(&r, &b, REPORT_SIDEBAND | REPORT_EXPECT_STATUS, &err), 0);
	ck_assert_str_eq(r.fatal, "pack exceeds?maximum size");
	ck_assert(!r.have_status);
	ck_assert_uint_eq(r.nrefs, 0);
	ck_assert_uint_eq(r.progress_len, 17);
	report_release(&r);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(parse_no_status_expected)
{
	struct gg_err err = GG_ERR_INIT;
	struct report r;

	ck_assert_int_eq(report_parse(&r, "", 0, 0, &err), 0);
	ck_assert(!r.have_status);
	report_release(&r);
	ck_assert_int_eq(report_parse(&r, LIT("0008\002hi\n0000"),
				      REPORT_SIDEBAND, &err),
			 0);
	ck_assert(!r.have_status);
	ck_assert_uint_eq(r.progress_len, 3);
	report_release(&r);
}
END_TEST

START_TEST(parse_garbage)
{
	expect_parse_fail(LIT("hello"), REPORT_EXPECT_STATUS, GG_EINVAL,
			  "bad pkt-line length \"hell\"");
	expect_parse_fail(LIT("0009hello0000"), REPORT_EXPECT_STATUS, GG_EINVAL,
			  "upstream report: expected \"unpack\": "
			  "\"hello\"");
	expect_parse_fail(
		LIT("000eunpack ok\n0013xx refs/heads/a0000"),
		REPORT_EXPECT_STATUS, GG_EINVAL,
		"upstream report: unexpected line: \"xx refs/heads/a\"");
	expect_parse_fail(LIT("000eunpack ok\n0014ok refs/heads/a\n"),
			  REPORT_EXPECT_STATUS, GG_EINVAL,
			  "upstream report: ends without flush");
	expect_parse_fail(LIT("000eunpack ok\n0000junk"), REPORT_EXPECT_STATUS,
			  GG_EINVAL,
			  "upstream report: 4 bytes after the final flush");
	expect_parse_fail(LIT("000eunpack ok\n0018option forced-update0000"),
			  REPORT_EXPECT_STATUS, GG_EINVAL,
			  "upstream report: option line before any ref: "
			  "\"option forced-update\"");
	expect_parse_fail(LIT("000eunpack ok\n000eok heads/a0000"),
			  REPORT_EXPECT_STATUS, GG_EINVAL,
			  "invalid ref name \"heads/a\": does not start with "
			  "refs/");
	expect_parse_fail(LIT("000eunpack ok\n0001"), REPORT_EXPECT_STATUS,
			  GG_EINVAL,
			  "upstream report: unexpected special "
			  "packet");
	expect_parse_fail(LIT("0000"), REPORT_EXPECT_STATUS, GG_EINVAL,
			  "upstream report: no \"unpack\" line");
	expect_parse_fail(
		LIT("000eunpack ok\n0013ok refs/\0heads/0000"),
		REPORT_EXPECT_STATUS, GG_EINVAL,
		"upstream report: NUL byte in line: \"ok refs/?heads/\"");
	expect_parse_fail("", 0, REPORT_EXPECT_STATUS, GG_EINVAL,
			  "upstream sent no report-status");
}
END_TEST

START_TEST(parse_sideband_garbage)
{
	expect_parse_fail(LIT("0006\004x0000"), REPORT_SIDEBAND, GG_EINVAL,
			  "side-band: bad band 4");
	expect_parse_fail(LIT("0008\002hi\n"), REPORT_SIDEBAND, GG_EINVAL,
			  "upstream report: side-band stream ends without "
			  "flush");
	expect_parse_fail(LIT("0008\002hi\n0000x"), REPORT_SIDEBAND, GG_EINVAL,
			  "upstream report: 1 bytes after the side-band flush");
	expect_parse_fail(LIT("0008\002hi\n0000"),
			  REPORT_SIDEBAND | REPORT_EXPECT_STATUS, GG_EINVAL,
			  "upstream sent no report-status");
	expect_parse_fail(LIT("0009\002hi"), REPORT_SIDEBAND, GG_EINVAL,
			  "truncated pkt-line: length 0009 but only 7 bytes "
			  "before end of input");
	/* band 1 holding a truncated inner stream */
	expect_parse_fail(LIT("000d\001000eunpa0000"),
			  REPORT_SIDEBAND | REPORT_EXPECT_STATUS, GG_EINVAL,
			  "truncated pkt-line: length 000e but only 8 bytes "
			  "before end of input");
}
END_TEST

START_TEST(parse_too_large)
{
	unsigned char *big = calloc(1, GG_MAX_REPORT_LEN + 1);

	ck_assert_ptr_nonnull(big);
	expect_parse_fail(big, GG_MAX_REPORT_LEN + 1, REPORT_EXPECT_STATUS,
			  GG_ELIMIT,
			  "upstream report of 4194305 bytes "
			  "exceeds maximum 4194304");
	free(big);
}
END_TEST

START_TEST(flags_from_caps)
{
	struct rp_caps c;

	memset(&c, 0, sizeof(c));
	ck_assert_uint_eq(report_flags(&c), 0);
	c.side_band_64k = true;
	c.report_status_v2 = true;
	ck_assert_uint_eq(report_flags(&c),
			  REPORT_SIDEBAND | REPORT_EXPECT_STATUS);
}
END_TEST

/* ---- merging ---- */

static const char *const two_cmds[] = {ZZ " " O1 " refs/heads/a",
				       ZZ " " O1 " refs/heads/b"};

/* Everything hand-computed: the exact bytes git will receive. */
START_TEST(merge_literal_sideband)
{
	static const char want[] =
		"0028\002gitgate: refusing refs/heads/b: no\n"
		"0008\002hi\n"
		"0042\001"
		"000eunpack ok\n"
		"0014ok refs/heads/a\n"
		"0017ng refs/heads/b no\n"
		"0000"
		"0000";
	static const char *const refusals[] = {NULL, "no"};
	static const char *const quiet_notes[] = {"a is not refused", "\n\n"};
	struct gg_err err = GG_ERR_INIT;
	struct report_result res[2];
	struct rp_request req;
	struct pkt_buf up, out;
	struct report r;
	struct report_merge m;

	make_req(&req, " report-status side-band-64k", two_cmds, 2);
	pkt_buf_init(&up, 1 << 20);
	band(&up, 2, "hi\n");
	ck_assert_int_eq(pkt_buf_add(&up,
				     LIT("002b\001000eunpack ok\n0014ok "
					 "refs/heads/a\n0000"),
				     NULL),
			 0);
	flush(&up);
	ck_assert_int_eq(
		parse(&r, &up, REPORT_SIDEBAND | REPORT_EXPECT_STATUS, &err),
		0);
	m = (struct report_merge){&req, refusals, &r, NULL, res, NULL, NULL, NULL};
	merge(&out, &m);
	ck_assert_uint_eq(out.len, sizeof(want) - 1);
	ck_assert_mem_eq(out.data, want, out.len);
	ck_assert(res[0].ok);
	ck_assert_ptr_null(res[0].reason);
	ck_assert(!res[1].ok);
	ck_assert_str_eq(res[1].reason, "no");
	pkt_buf_release(&out);

	/* notes with nothing to show (an allowed ref's, blank lines) leave
	 * the bytes exactly as without notes */
	m.notes = quiet_notes;
	merge(&out, &m);
	ck_assert_uint_eq(out.len, sizeof(want) - 1);
	ck_assert_mem_eq(out.data, want, out.len);
	pkt_buf_release(&out);
	pkt_buf_release(&up);
	report_release(&r);
	rp_request_release(&req);
}
END_TEST

static const char *const three_cmds[] = {O1 " " O2 " refs/heads/agent/x",
					 ZZ " " O1 " refs/heads/main",
					 ZZ " " O2 " refs/heads/agent/y"};
static const char *const refuse_main[] = {
	NULL, "branch not allowed by token: allowed agent/*", NULL};

START_TEST(merge_non_atomic_order_and_upstream_ng)
{
	struct rp_request req;
	struct report r;
	struct report_merge m;

	make_req(&req, " report-status", three_cmds, 3);
	/* upstream answers in its own order; the client gets its order */
	parse_lines(&r, REPORT_EXPECT_STATUS, "unpack ok\n",
		    "ng refs/heads/agent/y protected branch hook declined\n",
		    "ok refs/heads/agent/x\n", NULL);
	m = (struct report_merge){&req, refuse_main, &r,  NULL,
				  NULL, NULL,	     NULL, NULL};
	expect_merged(&m, "unpack ok\n", "ok refs/heads/agent/x\n",
		      "ng refs/heads/main branch not allowed by token: allowed "
		      "agent/*\n",
		      "ng refs/heads/agent/y protected branch hook declined\n",
		      NULL);
	report_release(&r);
	rp_request_release(&req);
}
END_TEST

START_TEST(merge_atomic_refusal)
{
	static const char *const progress[] = {
		"gitgate: refusing refs/heads/main: branch not allowed "
		"by token: allowed agent/*\n",
		NULL};
	struct report_result res[3];
	struct rp_request req;
	struct report_merge m;

	make_req(&req, " report-status-v2 side-band-64k atomic", three_cmds, 3);
	m = (struct report_merge){&req, refuse_main, NULL, NULL,
				  res,	NULL,	     NULL, NULL};
	expect_merged_sideband(
		&m, progress, "unpack ok\n",
		"ng refs/heads/agent/x atomic push failure\n",
		"ng refs/heads/main branch not allowed by token: "
		"allowed agent/*\n",
		"ng refs/heads/agent/y atomic push failure\n", NULL);
	ck_assert(!res[0].ok && !res[1].ok && !res[2].ok);
	ck_assert_str_eq(res[0].reason, REPORT_ATOMIC_REASON);
	ck_assert_str_eq(res[1].reason, refuse_main[1]);
	rp_request_release(&req);
}
END_TEST

START_TEST(merge_atomic_all_allowed_passes_through)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf up, out;
	struct rp_request req;
	struct report r;
	struct report_merge m;

	make_req(&req, " report-status atomic", two_cmds, 2);
	lines(&up, "unpack ok\n", "ok refs/heads/a\n", "ok refs/heads/b\n",
	      NULL);
	ck_assert_int_eq(parse(&r, &up, REPORT_EXPECT_STATUS, &err), 0);
	m = (struct report_merge){&req, NULL, &r, NULL, NULL, NULL, NULL, NULL};
	merge(&out, &m);
	expect_bytes(&out, &up);
	pkt_buf_release(&out);
	pkt_buf_release(&up);
	report_release(&r);
	rp_request_release(&req);
}
END_TEST

START_TEST(merge_without_report_status)
{
	static const char *const refusals[] = {"nope", NULL};
	struct gg_err err = GG_ERR_INIT;
	struct report_result res[2];
	struct rp_request req;
	struct pkt_buf out;
	struct report r;
	struct report_merge m;

	/* side-band only: just the progress lines and the closing flush */
	make_req(&req, " side-band-64k", two_cmds, 2);
	ck_assert_int_eq(report_parse(&r, LIT("0008\002up\n0000"),
				      REPORT_SIDEBAND, &err),
			 0);
	m = (struct report_merge){&req, refusals, &r, NULL, res, NULL, NULL, NULL};
	merge(&out, &m);
	ck_assert_uint_eq(out.len, 42 + 8 + 4);
	ck_assert_mem_eq(out.data,
			 "002a\002gitgate: refusing refs/heads/a: "
			 "nope\n0008\002up\n0000",
			 out.len);
	/* results still say what happened, though upstream gave no report */
	ck_assert(!res[0].ok);
	ck_assert_str_eq(res[1].reason, "no status from upstream");
	report_release(&r);
	rp_request_release(&req);
	pkt_buf_release(&out);

	/* neither: the response body is empty */
	make_req(&req, " quiet", two_cmds, 2);
	m = (struct report_merge){&req, refusals, NULL, NULL, NULL, NULL, NULL, NULL};
	merge(&out, &m);
	ck_assert_uint_eq(out.len, 0);
	rp_request_release(&req);
}
END_TEST

START_TEST(merge_upstream_error)
{
	static const char *const refusals[] = {NULL, "nope"};
	static const char *const progress[] = {
		"gitgate: refusing refs/heads/b: nope\n",
		"gitgate: upstream failed: upstream returned HTTP 502\n", NULL};
	struct rp_request req;
	struct report_merge m;

	make_req(&req, " report-status side-band-64k", two_cmds, 2);
	m = (struct report_merge){
		&req, refusals, NULL, "upstream returned HTTP 502",
		NULL, NULL,	NULL, NULL};
	expect_merged_sideband(&m, progress, "unpack ok\n",
			       "ng refs/heads/a upstream returned HTTP 502\n",
			       "ng refs/heads/b nope\n", NULL);
	rp_request_release(&req);
}
END_TEST

START_TEST(merge_upstream_fatal)
{
	static const char *const progress[] = {
		"gitgate: upstream failed: pack too big\n", "Counting\n", NULL};
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf up;
	struct rp_request req;
	struct report r;
	struct report_merge m;

	make_req(&req, " report-status side-band-64k", two_cmds, 2);
	pkt_buf_init(&up, 1 << 20);
	band(&up, 2, "Counting\n");
	band(&up, 3, "pack too big\n");
	ck_assert_int_eq(
		parse(&r, &up, REPORT_SIDEBAND | REPORT_EXPECT_STATUS, &err),
		0);
	m = (struct report_merge){&req, NULL, &r, NULL, NULL, NULL, NULL, NULL};
	expect_merged_sideband(&m, progress, "unpack ok\n",
			       "ng refs/heads/a pack too big\n",
			       "ng refs/heads/b pack too big\n", NULL);
	pkt_buf_release(&up);
	report_release(&r);
	rp_request_release(&req);
}
END_TEST

START_TEST(merge_v2_options)
{
	static const char *const refusals[] = {NULL, "nope"};
	struct rp_request req;
	struct report r;
	struct report_merge m;

	/* upstream's v2 report: a with options, nothing for b (refused) */
	parse_lines(&r, REPORT_EXPECT_STATUS, "unpack ok\n",
		    "ok refs/heads/a\n", "option old-oid " O1 "\n",
		    "option forced-update\n", NULL);
	/* v2 client: options follow their ref */
	make_req(&req, " report-status-v2", two_cmds, 2);
	m = (struct report_merge){&req, refusals, &r, NULL, NULL, NULL, NULL, NULL};
	expect_merged(&m, "unpack ok\n", "ok refs/heads/a\n",
		      "option old-oid " O1 "\n", "option forced-update\n",
		      "ng refs/heads/b nope\n", NULL);
	rp_request_release(&req);

	/* v1 client: option lines are not part of its grammar */
	make_req(&req, " report-status", two_cmds, 2);
	m.req = &req;
	expect_merged(&m, "unpack ok\n", "ok refs/heads/a\n",
		      "ng refs/heads/b nope\n", NULL);
	rp_request_release(&req);
	report_release(&r);
}
END_TEST

START_TEST(merge_missing_ref_and_unpack_error)
{
	struct rp_request req;
	struct report r;
	struct report_merge m;

	make_req(&req, " report-status", two_cmds, 2);
	parse_lines(&r, REPORT_EXPECT_STATUS,
		    "unpack unpack-objects abnormal exit\n",
		    "ng refs/heads/a unpacker error\n",
		    "ok refs/heads/not-asked\n", NULL);
	m = (struct report_merge){&req, NULL, &r, NULL, NULL, NULL, NULL, NULL};
	expect_merged(&m, "unpack unpack-objects abnormal exit\n",
		      "ng refs/heads/a unpacker error\n",
		      "ng refs/heads/b no status from upstream\n", NULL);
	report_release(&r);
	rp_request_release(&req);
}
END_TEST

/* receive-pack knows only side-band-64k: a client asking for plain
 * "side-band" gets a bare report, as upstream would send it. */
START_TEST(merge_plain_sideband_is_not_used)
{
	struct gg_err err = GG_ERR_INIT;
	char cmds_buf[60][128];
	const char *cmds[60];
	const char *refusals[60];
	struct rp_request req;
	struct pkt_buf out;
	struct report_merge m;
	size_t pos = 0, used, i, n = 0;
	struct pkt p;

	for (i = 0; i < 60; i++) {
		snprintf(cmds_buf[i], sizeof(cmds_buf[i]),
			 ZZ " " O1 " refs/heads/branch-number-%02zu", i);
		cmds[i] = cmds_buf[i];
		refusals[i] = "branch not allowed by token: allowed agent/*";
	}
	make_req(&req, " report-status side-band", cmds, 60);
	m = (struct report_merge){&req, refusals, NULL, NULL, NULL, NULL, NULL, NULL};
	merge(&out, &m);
	while (pos < out.len) {
		ck_assert_int_eq(pkt_read(&p, &used, out.data + pos,
					  out.len - pos, PKT_EOF, &err),
				 0);
		if (n == 0) {
			ck_assert_int_eq(p.type, PKT_DATA);
			ck_assert_uint_eq(p.len, strlen("unpack ok\n"));
			ck_assert_mem_eq(p.data, "unpack ok\n", p.len);
		} else if (n <= 60) {
			ck_assert_int_eq(p.type, PKT_DATA);
			ck_assert_mem_eq(p.data, "ng refs/heads/branch-number-",
					 28);
		}
		pos += used;
		n++;
	}
	ck_assert_int_eq(p.type, PKT_FLUSH);
	/* unpack, 60 ng lines, flush: no side-band, so no progress lines */
	ck_assert_uint_eq(n, 1 + 60 + 1);
	pkt_buf_release(&out);
	rp_request_release(&req);
}
END_TEST

START_TEST(merge_cleans_local_reasons)
{
	static const char *const refusals[] = {"bad\nline\tand more", NULL};
	char long_reason[400];
	const char *refusals2[2] = {long_reason, long_reason};
	struct rp_request req;
	struct pkt_buf out;
	struct report_merge m;

	make_req(&req, " report-status atomic", two_cmds, 2);
	m = (struct report_merge){&req, refusals, NULL, NULL, NULL, NULL, NULL, NULL};
	expect_merged(&m, "unpack ok\n", "ng refs/heads/a bad?line?and more\n",
		      "ng refs/heads/b atomic push failure\n", NULL);

	memset(long_reason, 'r', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = '\0';
	m.refusals = refusals2;
	merge(&out, &m);
	/* unpack line (14) + two ng lines cut to 200 reason bytes + flush */
	ck_assert_uint_eq(out.len, 14 + 2 * (4 + 16 + 200 + 1) + 4);
	pkt_buf_release(&out);
	rp_request_release(&req);
}
END_TEST

START_TEST(merge_output_cap)
{
	static const char *const refusals[] = {"nope", NULL};
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf out;
	struct report_merge m;

	make_req(&req, " report-status", two_cmds, 2);
	m = (struct report_merge){&req, refusals, NULL, NULL, NULL, NULL, NULL, NULL};
	pkt_buf_init(&out, 20);
	ck_assert_int_eq(report_merge(&out, &m, &err), GG_ELIMIT);
	ck_assert_uint_eq(out.len, 0);
	rp_request_release(&req);
}
END_TEST

/* An upstream line of maximum size without LF still fits once the merge
 * adds the LF: the reason is cut by a byte rather than failing. */
START_TEST(merge_max_length_upstream_line)
{
	static const char *const cmds[] = {ZZ " " O1 " refs/heads/a"};
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf up, out;
	struct rp_request req;
	struct report r;
	struct report_merge m;
	char *line = malloc(GG_MAX_PKT_DATA);
	struct pkt p;
	size_t used, pos;

	ck_assert_ptr_nonnull(line);
	memcpy(line, "ng refs/heads/a ", 16);
	memset(line + 16, 'r', GG_MAX_PKT_DATA - 16);
	make_req(&req, " report-status", cmds, 1);
	pkt_buf_init(&up, 1 << 20);
	pl(&up, "unpack ok\n");
	ck_assert_int_eq(pkt_write(&up, line, GG_MAX_PKT_DATA, NULL), 0);
	flush(&up);
	ck_assert_int_eq(parse(&r, &up, REPORT_EXPECT_STATUS, &err), 0);
	ck_assert_uint_eq(strlen(r.refs[0].reason), GG_MAX_PKT_DATA - 16);
	m = (struct report_merge){&req, NULL, &r, NULL, NULL, NULL, NULL, NULL};
	merge(&out, &m);
	pos = 14;
	ck_assert_int_eq(pkt_read(&p, &used, out.data + pos, out.len - pos,
				  PKT_EOF, &err),
			 0);
	ck_assert_uint_eq(p.len, GG_MAX_PKT_DATA);
	ck_assert_uint_eq(p.data[p.len - 1], '\n');
	pkt_buf_release(&out);
	pkt_buf_release(&up);
	report_release(&r);
	rp_request_release(&req);
	free(line);
}
END_TEST

/* Upstream progress packets are kept one for one, and re-split when the
 * client only speaks the old 1000-byte side-band. */
START_TEST(merge_progress_packets)
{
	static const char *const cmds[] = {ZZ " " O1 " refs/heads/a"};
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf up, out;
	char big[1500];
	struct rp_request req;
	struct report r;
	struct report_merge m;

	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	pkt_buf_init(&up, 1 << 20);
	band(&up, 2, "one\n");
	band(&up, 2, big);
	band(&up, 2, "two\n");
	flush(&up);
	ck_assert_int_eq(parse(&r, &up, REPORT_SIDEBAND, &err), 0);
	ck_assert_uint_eq(r.nprogress_chunks, 3);
	make_req(&req, " side-band-64k", cmds, 1);
	m = (struct report_merge){&req, NULL, &r, NULL, NULL, NULL, NULL, NULL};
	merge(&out, &m);
	expect_bytes(&out, &up);
	rp_request_release(&req);
	pkt_buf_release(&out);

	/* Plain "side-band" is not receive-pack's: no channel for progress,
	 * and no report-status asked for, so there is nothing to send. */
	make_req(&req, " side-band", cmds, 1);
	m.req = &req;
	merge(&out, &m);
	ck_assert_uint_eq(out.len, 0);
	pkt_buf_release(&out);
	pkt_buf_release(&up);
	report_release(&r);
	rp_request_release(&req);
}
END_TEST

/* ---- notes under local refusals ---- */

/* The band-2 payloads of a merged side-band response, in order, each as a
 * string (made here; free each). Returns how many. */
static size_t band2_payloads(char **lines, size_t max,
			     const struct pkt_buf *out)
{
	struct gg_err err = GG_ERR_INIT;
	size_t pos = 0, used, n = 0;
	struct pkt p;

	while (pos < out->len) {
		ck_assert_int_eq(pkt_read(&p, &used, out->data + pos,
					  out->len - pos, PKT_EOF, &err),
				 0);
		pos += used;
		if (p.type != PKT_DATA || p.data[0] != 2)
			continue;
		ck_assert_uint_lt(n, max);
		lines[n] = pkt_dup_bytes(p.data + 1, p.len - 1);
		ck_assert_ptr_nonnull(lines[n]);
		n++;
	}
	return n;
}

static void free_lines(char **lines, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(lines[i]);
}

/* Each refusal's notes follow its line in band 2, indented, blank lines
 * skipped, cleaned like reasons; the report itself is unchanged. */
START_TEST(merge_notes_sideband)
{
	static const char *const refusals[] = {
		"content check failed: 2 findings", "nope"};
	static const char *const notes[] = {
		"secret detected (github-pat) in a.py:3 (commit 1a2b3c4)\n"
		"\n"
		"secret detected (aws-access-key) in b/c.env:12 (commit "
		"1a2b3c4)\n",
		"x\ty\r\033[31mred\177"};
	static const char *const progress[] = {
		"gitgate: refusing refs/heads/a: content check failed: 2 "
		"findings\n",
		"gitgate:   secret detected (github-pat) in a.py:3 (commit "
		"1a2b3c4)\n",
		"gitgate:   secret detected (aws-access-key) in b/c.env:12 "
		"(commit 1a2b3c4)\n",
		"gitgate: refusing refs/heads/b: nope\n",
		"gitgate:   x?y??[31mred?\n",
		NULL};
	struct rp_request req;
	struct report_merge m;

	make_req(&req, " report-status side-band-64k", two_cmds, 2);
	m = (struct report_merge){
		.req = &req, .refusals = refusals, .notes = notes};
	expect_merged_sideband(&m, progress, "unpack ok\n",
			       "ng refs/heads/a content check failed: 2 "
			       "findings\n",
			       "ng refs/heads/b nope\n", NULL);
	rp_request_release(&req);
}
END_TEST

/* Notes belong to local refusals: an atomic failure or an allowed ref
 * shows none. */
START_TEST(merge_notes_only_for_refused)
{
	static const char *const refusals[] = {NULL, "nope"};
	static const char *const notes[] = {"not shown", "shown"};
	static const char *const progress[] = {
		"gitgate: refusing refs/heads/b: nope\n", "gitgate:   shown\n",
		NULL};
	struct rp_request req;
	struct report_merge m;

	make_req(&req, " report-status side-band-64k atomic", two_cmds, 2);
	m = (struct report_merge){
		.req = &req, .refusals = refusals, .notes = notes};
	expect_merged_sideband(&m, progress, "unpack ok\n",
			       "ng refs/heads/a atomic push failure\n",
			       "ng refs/heads/b nope\n", NULL);
	rp_request_release(&req);
}
END_TEST

/* More than REPORT_MAX_NOTE_LINES lines: the first 50, then a count. */
START_TEST(merge_notes_line_cap)
{
	static const char *const cmds[] = {ZZ " " O1 " refs/heads/a"};
	const char *refusals[1] = {"60 findings"};
	const char *notes[1];
	char text[60 * 16], *lines[64];
	char want[32];
	struct rp_request req;
	struct report_merge m;
	struct pkt_buf out;
	size_t i, n, pos = 0;

	for (i = 0; i < 60; i++)
		pos += (size_t)snprintf(text + pos, sizeof(text) - pos,
					"finding %zu\n", i);
	notes[0] = text;
	make_req(&req, " report-status side-band-64k", cmds, 1);
	m = (struct report_merge){
		.req = &req, .refusals = refusals, .notes = notes};
	merge(&out, &m);
	n = band2_payloads(lines, 64, &out);
	ck_assert_uint_eq(n, 1 + REPORT_MAX_NOTE_LINES + 1);
	ck_assert_str_eq(lines[0], "gitgate: refusing refs/heads/a: 60 "
				   "findings\n");
	for (i = 0; i < REPORT_MAX_NOTE_LINES; i++) {
		snprintf(want, sizeof(want), "gitgate:   finding %zu\n", i);
		ck_assert_str_eq(lines[1 + i], want);
	}
	ck_assert_str_eq(lines[n - 1], "gitgate:   ... and 10 more\n");
	free_lines(lines, n);
	pkt_buf_release(&out);

	/* exactly 50 ("finding N\n" x 10, "finding NN\n" x 40): no count */
	text[10 * 10 + 40 * 11] = '\0';
	merge(&out, &m);
	n = band2_payloads(lines, 64, &out);
	ck_assert_uint_eq(n, 1 + REPORT_MAX_NOTE_LINES);
	ck_assert_str_eq(lines[n - 1], "gitgate:   finding 49\n");
	free_lines(lines, n);
	pkt_buf_release(&out);

	/* ... and 20 more its author did not keep: counted too */
	{
		const size_t hidden[1] = {20};

		m.notes_more = hidden;
		merge(&out, &m);
		n = band2_payloads(lines, 64, &out);
		ck_assert_uint_eq(n, 1 + REPORT_MAX_NOTE_LINES + 1);
		ck_assert_str_eq(lines[n - 1], "gitgate:   ... and 20 more\n");
		free_lines(lines, n);
		pkt_buf_release(&out);
		text[10 * 10 + 40 * 11] = 'f'; /* the 60 lines again */
		merge(&out, &m);
		n = band2_payloads(lines, 64, &out);
		ck_assert_str_eq(lines[n - 1], "gitgate:   ... and 30 more\n");
		free_lines(lines, n);
		pkt_buf_release(&out);
	}
	rp_request_release(&req);
}
END_TEST

/* All notes together stay within REPORT_MAX_NOTES_BYTES: once a line
 * does not fit, no further note goes out, each ref saying how many it
 * lost. Long lines are cut to GG_MAX_REASON_LEN. */
START_TEST(merge_notes_byte_cap)
{
	enum { NREFS = 8, LONG = 300 };
	static const char *const cmds[NREFS] = {
		ZZ " " O1 " refs/heads/r0", ZZ " " O1 " refs/heads/r1",
		ZZ " " O1 " refs/heads/r2", ZZ " " O1 " refs/heads/r3",
		ZZ " " O1 " refs/heads/r4", ZZ " " O1 " refs/heads/r5",
		ZZ " " O1 " refs/heads/r6", ZZ " " O1 " refs/heads/r7"};
	const char *refusals[NREFS], *notes[NREFS];
	static char many[50 * (LONG + 1) + 1], last[sizeof(many) + 8];
	const size_t line_len = strlen("gitgate:   ") + GG_MAX_REASON_LEN + 1;
	const size_t fit = REPORT_MAX_NOTES_BYTES / line_len;
	char *lines[NREFS * 52];
	char want[64];
	struct rp_request req;
	struct report_merge m;
	struct pkt_buf out;
	size_t i, n, k, shown = 0, bytes = 0, ref = 0;

	for (i = 0; i < 50; i++) {
		memset(many + i * (LONG + 1), 'a' + (char)(i % 26), LONG);
		many[i * (LONG + 1) + LONG] = '\n';
	}
	many[sizeof(many) - 1] = '\0';
	/* a short note that would still fit after the cap: not shown */
	snprintf(last, sizeof(last), "short\n%s", many);
	for (i = 0; i < NREFS; i++) {
		refusals[i] = "secrets";
		notes[i] = i == NREFS - 1 ? last : many;
	}
	ck_assert_uint_lt(fit, (NREFS - 1) * 50);
	ck_assert_uint_gt(REPORT_MAX_NOTES_BYTES - fit * line_len, 6 + 11);
	make_req(&req, " report-status side-band-64k", cmds, NREFS);
	m = (struct report_merge){
		.req = &req, .refusals = refusals, .notes = notes};
	merge(&out, &m);
	n = band2_payloads(lines, NREFS * 52, &out);
	for (k = 0; k < n; k++) {
		if (strncmp(lines[k], "gitgate: refusing ", 18) == 0) {
			snprintf(want, sizeof(want),
				 "gitgate: refusing refs/heads/r%zu: secrets\n",
				 ref++);
			ck_assert_str_eq(lines[k], want);
			continue;
		}
		ck_assert_mem_eq(lines[k], "gitgate:   ", 11);
		if (strncmp(lines[k] + 11, "... and ", 8) == 0)
			continue;
		ck_assert_uint_eq(strlen(lines[k]), line_len);
		shown++;
		bytes += strlen(lines[k]);
	}
	ck_assert_uint_eq(ref, NREFS);
	ck_assert_uint_eq(shown, fit);
	ck_assert_uint_le(bytes, REPORT_MAX_NOTES_BYTES);
	/* refs 0..5 show all 50; ref 6 what fits, then its count; ref 7 only
	 * its count (short line included) */
	snprintf(want, sizeof(want), "gitgate:   ... and %zu more\n",
		 50 - (fit - 6 * 50));
	ck_assert_str_eq(lines[n - 3], want);
	ck_assert_str_eq(lines[n - 2],
			 "gitgate: refusing refs/heads/r7: secrets\n");
	ck_assert_str_eq(lines[n - 1], "gitgate:   ... and 51 more\n");
	free_lines(lines, n);
	pkt_buf_release(&out);
	rp_request_release(&req);
}
END_TEST

/* Without side-band-64k there is no channel for notes: the response is
 * byte for byte the one without them. */
START_TEST(merge_notes_without_sideband)
{
	static const char *const refusals[] = {"secrets", NULL};
	static const char *const notes[] = {"secret detected (x) in a:1", NULL};
	static const char *const caps[] = {" report-status",
					   " report-status side-band"};
	struct pkt_buf with, without;
	struct rp_request req;
	struct report_merge m;
	size_t i;

	for (i = 0; i < 2; i++) {
		make_req(&req, caps[i], two_cmds, 2);
		m = (struct report_merge){.req = &req,
					  .refusals = refusals,
					  .upstream_error = "down"};
		merge(&without, &m);
		m.notes = notes;
		merge(&with, &m);
		expect_bytes(&with, &without);
		pkt_buf_release(&with);
		pkt_buf_release(&without);
		rp_request_release(&req);
	}
}
END_TEST

/* ---- real git fixtures (fixtures/push, made by make.sh) ---- */

static unsigned char *load(const char *name, size_t *len)
{
	const char *root = getenv("GG_SOURCE_ROOT");
	char path[4096];
	unsigned char *buf;
	FILE *f;
	long n;

	ck_assert_msg(root != NULL, "GG_SOURCE_ROOT not set");
	snprintf(path, sizeof(path), "%s/fixtures/push/%s", root, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

struct real_case {
	const char *dir;
	const char *suffix;   /* "" or ".1" for multi-POST cases */
	bool ok0;	      /* status of the first ref */
	const char *reason0;  /* its ng reason */
	const char *progress; /* band-2 text, or NULL */
};

static const struct real_case real_cases[] = {
	{"create", "", true, NULL, NULL},
	{"update", "", true, NULL, NULL},
	{"atomic", "", true, NULL, NULL},
	{"delete", "", true, NULL, NULL},
	{"tag", "", true, NULL, NULL},
	{"options", "", true, NULL, NULL},
	{"hook-declined", "", false, "pre-receive hook declined",
	 "checking refs...\npolicy: no pushes to refs/heads/frozen\n"},
	{"nonff", "", false, "non-fast-forward",
	 "error: denying non-fast-forward refs/heads/main (you should pull "
	 "first)\n"},
	{"probe", ".1", true, NULL, NULL},
	{"plain", "", true, NULL, NULL},
	{"shallow", "", true, NULL, NULL},
};

static void load_case(const struct real_case *c, struct rp_request *req,
		      unsigned char **resp, size_t *resp_len)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char *body;
	char name[128];
	size_t len;

	snprintf(name, sizeof(name), "%s/request%s", c->dir, c->suffix);
	body = load(name, &len);
	rp_request_init(req);
	ck_assert_msg(rp_parse(req, body, len, &err) == 0, "%s", err.msg);
	free(body);
	snprintf(name, sizeof(name), "%s/response%s", c->dir, c->suffix);
	*resp = load(name, resp_len);
}

/* Parse git http-backend's real reply; with nothing refused, the merged
 * response is byte for byte what git itself sent. */
START_TEST(real_git_responses)
{
	const struct real_case *c = &real_cases[_i];
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct report_result res[2];
	struct report_merge m;
	struct pkt_buf out;
	unsigned char *resp;
	struct report r;
	size_t len, i;

	load_case(c, &req, &resp, &len);
	ck_assert_msg(
		report_parse(&r, resp, len, report_flags(&req.caps), &err) == 0,
		"%s: %s", c->dir, err.msg);
	ck_assert(r.have_status);
	ck_assert_str_eq(r.unpack, "ok");
	ck_assert_uint_eq(r.nrefs, req.ncommands);
	for (i = 0; i < r.nrefs; i++)
		ck_assert_str_eq(r.refs[i].refname, req.commands[i].refname);
	ck_assert(r.refs[0].ok == c->ok0);
	if (c->reason0)
		ck_assert_str_eq(r.refs[0].reason, c->reason0);
	if (c->progress) {
		ck_assert_uint_eq(r.progress_len, strlen(c->progress));
		ck_assert_mem_eq(r.progress, c->progress, r.progress_len);
	} else {
		ck_assert_uint_eq(r.progress_len, 0);
	}
	m = (struct report_merge){&req, NULL, &r, NULL, res, NULL, NULL, NULL};
	pkt_buf_init(&out, GG_MAX_REPORT_LEN);
	ck_assert_int_eq(report_merge(&out, &m, &err), 0);
	ck_assert_uint_eq(out.len, len);
	ck_assert_mem_eq(out.data, resp, len);
	ck_assert(res[0].ok == c->ok0);
	pkt_buf_release(&out);
	report_release(&r);
	rp_request_release(&req);
	free(resp);
}
END_TEST

START_TEST(real_git_probe_response)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	unsigned char *body;
	struct report r;
	size_t len;

	body = load("probe/request.0", &len);
	ck_assert_int_eq(rp_parse(&req, body, len, &err), 0);
	free(body);
	body = load("probe/response.0", &len);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(
		report_parse(&r, body, len, report_flags(&req.caps), &err), 0);
	ck_assert(!r.have_status);
	report_release(&r);
	rp_request_release(&req);
	free(body);
}
END_TEST

/* The real atomic request with one ref refused by gitgate: nothing goes
 * upstream and both refs fail, the other with git's atomic wording. */
START_TEST(real_git_atomic_refused)
{
	static const char want[] =
		"004c\002gitgate: refusing refs/heads/b: branch not allowed by "
		"token: allowed a\n"
		"007a\001"
		"000eunpack ok\n"
		"0028ng refs/heads/a atomic push failure\n"
		"003bng refs/heads/b branch not allowed by token: allowed a\n"
		"0000"
		"0000";
	static const char *const refusals[] = {
		NULL, "branch not allowed by token: allowed a"};
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct report_merge m;
	struct pkt_buf out;
	unsigned char *resp;
	size_t len;

	load_case(&real_cases[2], &req, &resp, &len);
	ck_assert(req.caps.atomic);
	m = (struct report_merge){&req, refusals, NULL, NULL, NULL, NULL, NULL, NULL};
	pkt_buf_init(&out, GG_MAX_REPORT_LEN);
	ck_assert_int_eq(report_merge(&out, &m, &err), 0);
	ck_assert_uint_eq(out.len, sizeof(want) - 1);
	ck_assert_mem_eq(out.data, want, out.len);
	pkt_buf_release(&out);
	rp_request_release(&req);
	free(resp);
}
END_TEST

/* ---- end-to-end gate fixtures (fixtures/push/gate/make-gate.sh) ---- */

/* Like load, but NULL when the file does not exist. */
static unsigned char *load_opt(const char *name, size_t *len)
{
	const char *root = getenv("GG_SOURCE_ROOT");
	char path[4096];
	FILE *f;

	ck_assert_msg(root != NULL, "GG_SOURCE_ROOT not set");
	snprintf(path, sizeof(path), "%s/fixtures/push/%s", root, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fclose(f);
	return load(name, len);
}

/* Read "index<TAB>reason" lines into why[] (strings owned by *store). */
static void read_refusals(const char **why, size_t n, char *store)
{
	char *line = store, *next, *tab;
	unsigned long i;

	while (line && *line) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		tab = strchr(line, '\t');
		ck_assert_ptr_nonnull(tab);
		i = strtoul(line, NULL, 10);
		ck_assert_uint_lt(i, n);
		why[i] = tab + 1;
		line = next;
	}
}

struct gate_post {
	const char *dir;
	const char *sfx;
};

static const struct gate_post gate_posts[] = {
	{"gate-partial", ""},	      {"gate-atomic", ""},
	{"gate-tag-refused", ""},     {"gate-delete-refused", ""},
	{"gate-allowed-options", ""}, {"gate-probe-partial", ".0"},
	{"gate-probe-partial", ".1"},
};

static unsigned char *gate_file(const struct gate_post *g, const char *f,
				size_t *len, bool required)
{
	char name[256];

	snprintf(name, sizeof(name), "%s/%s%s", g->dir, f, g->sfx);
	return required ? load(name, len) : load_opt(name, len);
}

/* What a real git push sent through the gate, and what git accepted:
 * the rewrite equals "forwarded", the merge equals "client-response". */
START_TEST(gate_fixtures)
{
	const struct gate_post *g = &gate_posts[_i];
	struct gg_err err = GG_ERR_INIT;
	unsigned char *body, *fwd, *up, *want, *ref;
	size_t blen, flen, ulen, wlen, rlen, i;
	const char **why;
	bool *keep;
	struct rp_request req;
	struct report r;
	struct report_merge m;
	struct pkt_buf out;

	body = gate_file(g, "client-request", &blen, true);
	fwd = gate_file(g, "forwarded", &flen, true);
	want = gate_file(g, "client-response", &wlen, true);
	ref = gate_file(g, "refusals", &rlen, true);
	up = gate_file(g, "upstream-response", &ulen, false);
	ref[rlen] = '\0';
	ck_assert_int_eq(rp_parse(&req, body, blen, &err), 0);
	why = calloc(req.ncommands + 1, sizeof(*why));
	keep = calloc(req.ncommands + 1, sizeof(*keep));
	read_refusals(why, req.ncommands, (char *)ref);
	for (i = 0; i < req.ncommands; i++)
		keep[i] = why[i] == NULL;
	pkt_buf_init(&out, GG_MAX_PUSH_HEADER);
	if (req.ncommands > 0 && flen > 0) {
		ck_assert_int_eq(rp_serialize(&out, &req, keep, NULL, &err), 0);
		if (rp_pack_expected(&req, keep))
			ck_assert_int_eq(
				pkt_buf_add(&out, body + req.header_len,
					    blen - req.header_len, &err),
				0);
		ck_assert_uint_eq(out.len, flen);
		ck_assert_mem_eq(out.data, fwd, flen);
	}
	ck_assert((up != NULL) == (flen > 0));
	if (up)
		ck_assert_int_eq(report_parse(&r, up, ulen,
					      report_flags(&req.caps), &err),
				 0);
	m = (struct report_merge){&req, why, up ? &r : NULL, NULL, NULL,
				  NULL, NULL, NULL};
	pkt_buf_release(&out);
	ck_assert_int_eq(report_merge(&out, &m, &err), 0);
	ck_assert_uint_eq(out.len, wlen);
	if (wlen > 0) /* the probe's reply is empty: out.data is NULL */
		ck_assert_mem_eq(out.data, want, wlen);
	if (up)
		report_release(&r);
	pkt_buf_release(&out);
	rp_request_release(&req);
	free(why);
	free(keep);
	free(body);
	free(fwd);
	free(up);
	free(want);
	free(ref);
}
END_TEST

static Suite *report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *p = tcase_create("parse");
	TCase *m = tcase_create("merge");
	TCase *g = tcase_create("real-git");

	tcase_add_test(p, parse_plain_v1);
	tcase_add_test(p, parse_unpack_error);
	tcase_add_test(p, parse_sideband_real_bytes);
	tcase_add_test(p, parse_sideband_split_and_progress);
	tcase_add_test(p, parse_v2_options);
	tcase_add_test(p, parse_band3_fatal);
	tcase_add_test(p, parse_no_status_expected);
	tcase_add_test(p, parse_garbage);
	tcase_add_test(p, parse_sideband_garbage);
	tcase_add_test(p, parse_too_large);
	tcase_add_test(p, flags_from_caps);
	tcase_add_test(m, merge_literal_sideband);
	tcase_add_test(m, merge_non_atomic_order_and_upstream_ng);
	tcase_add_test(m, merge_atomic_refusal);
	tcase_add_test(m, merge_atomic_all_allowed_passes_through);
	tcase_add_test(m, merge_without_report_status);
	tcase_add_test(m, merge_upstream_error);
	tcase_add_test(m, merge_upstream_fatal);
	tcase_add_test(m, merge_v2_options);
	tcase_add_test(m, merge_missing_ref_and_unpack_error);
	tcase_add_test(m, merge_plain_sideband_is_not_used);
	tcase_add_test(m, merge_cleans_local_reasons);
	tcase_add_test(m, merge_output_cap);
	tcase_add_test(m, merge_max_length_upstream_line);
	tcase_add_test(m, merge_progress_packets);
	tcase_add_test(m, merge_notes_sideband);
	tcase_add_test(m, merge_notes_only_for_refused);
	tcase_add_test(m, merge_notes_line_cap);
	tcase_add_test(m, merge_notes_byte_cap);
	tcase_add_test(m, merge_notes_without_sideband);
	tcase_add_loop_test(g, real_git_responses, 0,
			    sizeof(real_cases) / sizeof(real_cases[0]));
	tcase_add_test(g, real_git_probe_response);
	tcase_add_test(g, real_git_atomic_refused);
	tcase_add_loop_test(g, gate_fixtures, 0,
			    sizeof(gate_posts) / sizeof(gate_posts[0]));
	suite_add_tcase(s, p);
	suite_add_tcase(s, m);
	suite_add_tcase(s, g);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(report_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

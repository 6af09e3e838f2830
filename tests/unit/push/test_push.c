/*
 * test_push.c - push.c from request body to client response, against real
 * repositories and no HTTP: an "upstream" bare repository built with the
 * git CLI in a temporary directory per test (libgit2 fetches it over the
 * local transport), request bodies built exactly as git's send-pack sends
 * them (pkt-line commands with the capability list after a NUL on the first
 * one, a flush, then a thin pack from `git pack-objects --revs --thin
 * --stdout`), written to a file and fed to push_body in odd-sized chunks.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "gitgate/push/mirror.h"
#include "gitgate/push/push.h"
#include "gitgate/proto/receivepack.h"
#include "gitgate/proto/report.h"
#include "gitgate/upstream/cred.h"

#define REPO "owner/repo"
#define ZERO "0000000000000000000000000000000000000000"
#define UNKNOWN_OID "1234567890abcdef1234567890abcdef12345678"

/* Capability lists as git 2.39 sends them (leading space included). */
#define CAPS_SB                                                                \
	" report-status side-band-64k quiet object-format=sha1 "               \
	"agent=git/2.39.5"
#define CAPS_ATOMIC                                                            \
	" report-status side-band-64k quiet atomic object-format=sha1 "        \
	"agent=git/2.39.5"
#define CAPS_PLAIN " report-status agent=git/2.39.5"

#define R_BRANCH "branch not allowed by token: allowed agent/*"
#define R_TAG "tag not allowed by token: allowed agent/*"
#define R_FORCE "force-push not allowed by token"
#define R_DELETE "deletion not allowed by token"
#define R_HISTORY "gitgate could not check history: "
#define R_PATTERNS "branch not allowed by token: allowed agent/*, feature/**"
#define R_UNKNOWN R_HISTORY "cannot find commit 1234567890ab"

static char tmp[1024];
static char cache[1100];
static char up[1100];
static char mpath[1200];

/*
 * Repositories made by the fixture:
 *   c1 -- c2 -- n1       upstream: main, agent/ff, agent/div at c2;
 *     \                            agent/old and tag v1 at c1
 *      d1                n1 and d1 exist only in the client's work repo
 * Every commit edits one line of the 300-line big.txt, so thin packs carry
 * it as a delta against a blob the client knows upstream has.
 */
static char c1[41], c2[41], n1[41], d1[41];

#include "gitfixture.h"

/* The commit what names in the client's work repository. */
static void rev(char out[41], const char *what)
{
	gitfixture_rev(out, "work/.git", what);
}

static void setup(void)
{
	struct gg_err err = GG_ERR_INIT;

	gitfixture_scratch("push");
	snprintf(cache, sizeof(cache), "%s/cache", tmp);
	snprintf(up, sizeof(up), "%s/up.git", tmp);
	snprintf(mpath, sizeof(mpath), "%s/mirrors/%s.git", cache, REPO);
	ck_assert_int_eq(mirror_global_init(&err), 0);
	run("git init -q -b main work && cd work &&"
	    " seq 1 300 | sed 's/^/line /' > big.txt && echo hello > README &&"
	    " git add . && git commit -qm c1 && git tag v1 &&"
	    " sed -i 's/^line 5$/line five/' big.txt && git commit -qam c2 &&"
	    " git checkout -q -b next &&"
	    " sed -i 's/^line 100$/line hundred/' big.txt &&"
	    " git commit -qam n1 &&"
	    " git checkout -q -b side main~1 &&"
	    " sed -i 's/^line 200$/line two hundred/' big.txt &&"
	    " git commit -qam d1 && git checkout -q main && cd .. &&"
	    " git init -q --bare -b main up.git &&"
	    " git -C work push -q ../up.git main:refs/heads/main"
	    " main:refs/heads/agent/ff main:refs/heads/agent/div"
	    " main~1:refs/heads/agent/old refs/tags/v1:refs/tags/v1");
	rev(c1, "main~1");
	rev(c2, "main");
	rev(n1, "next");
	rev(d1, "side");
}

/* ---- byte buffers and pkt-lines (written here, independent of
 * pktline.c) ---- */

struct buf {
	unsigned char *data;
	size_t len;
	size_t cap;
	size_t header_len; /* for request bodies: where the pack starts */
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = (b->len + len + 1) * 2;

		b->data = realloc(b->data, cap);
		ck_assert_ptr_nonnull(b->data);
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

static void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void pkt(struct buf *b, const void *data, size_t len)
{
	char hdr[5];

	ck_assert_uint_le(len + 4, 65520);
	snprintf(hdr, sizeof(hdr), "%04zx", len + 4);
	buf_add(b, hdr, 4);
	buf_add(b, data, len);
}

static void pkt_str(struct buf *b, const char *s)
{
	pkt(b, s, strlen(s));
}

static void flush_pkt(struct buf *b)
{
	buf_add(b, "0000", 4);
}

static bool contains(const struct buf *b, const char *s)
{
	return memmem(b->data, b->len, s, strlen(s)) != NULL;
}

/* The write callback for push_forward_write. */
static int buf_write(void *payload, const void *data, size_t len)
{
	buf_add(payload, data, len);
	return 0;
}

static int refuse_write(void *payload, const void *data, size_t len)
{
	(void)payload;
	(void)data;
	(void)len;
	return 1;
}

/* ---- request bodies ---- */

struct cmd {
	const char *old;
	const char *new;
	const char *ref;
};

/* Append the output of `git pack-objects` for revs (one per line, "^x"
 * for what upstream has) as git send-pack runs it. */
static void add_pack(struct buf *b, const char *revs, bool thin)
{
	char path[1300];
	unsigned char chunk[4096];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/pack.revs", tmp);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(revs, f);
	ck_assert_int_eq(fclose(f), 0);
	run("git -C work pack-objects --all-progress-implied --revs --stdout"
	    " %s --delta-base-offset -q < pack.revs > pack.out",
	    thin ? "--thin" : "");
	snprintf(path, sizeof(path), "%s/pack.out", tmp);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	for (n = fread(chunk, 1, sizeof(chunk), f); n > 0;
	     n = fread(chunk, 1, sizeof(chunk), f))
		buf_add(b, chunk, n);
	fclose(f);
}

/* A receive-pack request body: commands (caps on the first), flush, and
 * a pack of revs unless revs is NULL (delete-only pushes carry none). */
static void make_body_pack(struct buf *b, const struct cmd *cmds, size_t n,
			   const char *caps, const char *revs, bool thin)
{
	char line[1024];
	size_t i;
	int len;

	memset(b, 0, sizeof(*b));
	for (i = 0; i < n; i++) {
		len = snprintf(line, sizeof(line), "%s %s %s", cmds[i].old,
			       cmds[i].new, cmds[i].ref);
		ck_assert(len > 0 && (size_t)len < sizeof(line));
		if (i == 0) {
			line[len] = '\0';
			len += 1 + snprintf(line + len + 1,
					    sizeof(line) - (size_t)len - 1,
					    "%s", caps);
		}
		pkt(b, line, (size_t)len);
	}
	flush_pkt(b);
	b->header_len = b->len;
	if (revs)
		add_pack(b, revs, thin);
}

static void make_body(struct buf *b, const struct cmd *cmds, size_t n,
		      const char *caps, const char *revs)
{
	make_body_pack(b, cmds, n, caps, revs, true);
}

/* What send-pack feeds pack-objects for a push of n1 (and d1): the new
 * tips, then every upstream tip the client has (c2, c1) negated. */
static char revs_buf[512];

static const char *revs_n1(void)
{
	snprintf(revs_buf, sizeof(revs_buf), "%s\n^%s\n^%s\n", n1, c2, c1);
	return revs_buf;
}

static const char *revs_n1_d1(void)
{
	snprintf(revs_buf, sizeof(revs_buf), "%s\n%s\n^%s\n^%s\n", n1, d1, c2,
		 c1);
	return revs_buf;
}

static void write_file(const char *name, const void *data, size_t len)
{
	char path[1300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	if (len)
		ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static void gzip_buf(struct buf *out, const void *data, size_t len)
{
	z_stream z;
	uLong bound;

	memset(&z, 0, sizeof(z));
	memset(out, 0, sizeof(*out));
	ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
				      Z_DEFAULT_STRATEGY),
			 Z_OK);
	bound = deflateBound(&z, (uLong)len);
	out->data = malloc(bound + 1);
	ck_assert_ptr_nonnull(out->data);
	out->cap = bound + 1;
	z.next_in = (unsigned char *)data;
	z.avail_in = (uInt)len;
	z.next_out = out->data;
	z.avail_out = (uInt)bound;
	ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	out->len = bound - z.avail_out;
	ck_assert_int_eq(deflateEnd(&z), Z_OK);
}

/* Chunk sizes push_body is fed with, cycled. */
struct pattern {
	const size_t *sizes;
	size_t n;
};

static const size_t odd_sizes[] = {7, 4096, 13, 1, 333};
static const size_t whole_size[] = {1 << 20};
static const size_t one_byte[] = {1};
static const struct pattern patterns[] = {
	{odd_sizes, 5},
	{whole_size, 1},
	{one_byte, 1},
};
#define ODD (&patterns[0])

/* Feed tmp/name to push_body in chunks; the first error, or 0. */
static int feed_file(struct push *p, const char *name,
		     const struct pattern *pat, struct gg_err *err)
{
	static unsigned char chunk[1 << 20];
	char path[1300];
	size_t i = 0, want;
	ssize_t n;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (;;) {
		want = pat->sizes[i++ % pat->n];
		if (want > sizeof(chunk))
			want = sizeof(chunk);
		n = read(fd, chunk, want);
		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		rc = push_body(p, chunk, (size_t)n, err);
		if (rc)
			break;
	}
	close(fd);
	return rc;
}

static char *pat_agent[] = {"agent/*"};
static char *pat_agent_tags[] = {"agent/*", "refs/tags/*"};

static void claims_init(struct token_claims *cl, char **pats, size_t n,
			bool force, bool del)
{
	memset(cl, 0, sizeof(*cl));
	cl->sub = "agent-1";
	cl->ops = TOKEN_OP_FETCH | TOKEN_OP_PUSH;
	cl->branches = pats;
	cl->nbranches = n;
	cl->allow_force = force;
	cl->allow_delete = del;
}

/* The upstream here is a local directory: any static secret will do. */
static struct cred *test_cred;

__attribute__((destructor)) static void free_test_cred(void)
{
	cred_free(test_cred);
}

static struct push_ctx ctx_for(const struct token_claims *cl)
{
	struct push_ctx ctx = {.cache_dir = cache, .repo = REPO, .upstream_repo_url = up,
			       .claims = cl};

	if (!test_cred)
		ck_assert_int_eq(cred_new_static(&test_cred, "unused-secret",
						 NULL), GG_OK);
	ctx.cred = test_cred;

	return ctx;
}

static struct push *start(bool gzip)
{
	struct gg_err err = GG_ERR_INIT;
	struct push *p = NULL;

	ck_assert_msg(push_new(&p, cache, gzip, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* body -> file -> push_body (gzip'd first if asked) -> push_decide with
 * ctx, which must succeed. */
static struct push *decide_ctx(const struct buf *body, bool gzip,
			       const struct push_ctx *ctx,
			       const struct pattern *pat)
{
	struct gg_err err = GG_ERR_INIT;
	struct buf z;
	struct push *p;

	if (gzip) {
		gzip_buf(&z, body->data, body->len);
		write_file("body", z.data, z.len);
		buf_free(&z);
	} else {
		write_file("body", body->data, body->len);
	}
	p = start(gzip);
	/* GG_PUSH_STREAMING=1 (the "push-streaming" test): the context comes
	 * first, as the proxy gives it, so the mirror is prepared and the
	 * pack indexed while the body streams in. */
	if (getenv("GG_PUSH_STREAMING"))
		ck_assert_msg(push_set_ctx(p, ctx, &err) == 0, "%s", err.msg);
	ck_assert_msg(feed_file(p, "body", pat, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(push_spool_len(p), body->len);
	ck_assert_int_ge(push_spool_fd(p), 0);
	ck_assert_msg(push_decide(p, ctx, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(err.msg, "");
	return p;
}

static struct push *decide(const struct buf *body,
			   const struct token_claims *cl)
{
	struct push_ctx ctx = ctx_for(cl);

	return decide_ctx(body, false, &ctx, ODD);
}

static void forward(struct push *p, struct buf *out)
{
	struct gg_err err = GG_ERR_INIT;

	memset(out, 0, sizeof(*out));
	ck_assert_msg(push_forward_write(p, buf_write, out, &err) == 0, "%s",
		      err.msg);
	ck_assert_uint_eq(out->len, push_forward_len(p));
}

static void respond(struct push *p, const struct buf *upstream,
		    const char *upstream_error, struct buf *resp,
		    const struct audit_ref **refs, size_t *nrefs)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char *out = NULL;
	size_t outlen = 0;

	ck_assert_msg(push_respond(&out, &outlen, refs, nrefs, p,
				   upstream ? upstream->data : NULL,
				   upstream ? upstream->len : 0, upstream_error,
				   &err) == 0,
		      "%s", err.msg);
	memset(resp, 0, sizeof(*resp));
	buf_add(resp, out, outlen);
	free(out);
}

/* upstream's receive-pack reply: the lines (NULL-terminated list) as
 * pkt-lines and a flush; with side-band, all of that inside band-1
 * packets, then the side-band flush. */
static void reply(struct buf *out, bool sideband, ...)
	__attribute__((sentinel));
static void reply(struct buf *out, bool sideband, ...)
{
	unsigned char band[65520];
	struct buf inner;
	const char *line;
	size_t off, n;
	va_list ap;

	memset(&inner, 0, sizeof(inner));
	memset(out, 0, sizeof(*out));
	va_start(ap, sideband);
	for (line = va_arg(ap, const char *); line != NULL;
	     line = va_arg(ap, const char *))
		pkt_str(&inner, line);
	va_end(ap);
	flush_pkt(&inner);
	if (!sideband) {
		buf_add(out, inner.data, inner.len);
		buf_free(&inner);
		return;
	}
	for (off = 0; off < inner.len; off += n) {
		n = inner.len - off;
		if (n > sizeof(band) - 5)
			n = sizeof(band) - 5;
		band[0] = 1;
		memcpy(band + 1, inner.data + off, n);
		pkt(out, band, n + 1);
	}
	flush_pkt(out);
	buf_free(&inner);
}

static void parse_response(struct report *rep, const struct buf *resp,
			   bool sideband)
{
	struct gg_err err = GG_ERR_INIT;

	ck_assert_msg(report_parse(rep, resp->data, resp->len,
				   REPORT_EXPECT_STATUS |
					   (sideband ? REPORT_SIDEBAND : 0),
				   &err) == 0,
		      "%s", err.msg);
	ck_assert_str_eq(rep->unpack, "ok");
}

/* reason NULL: "ok <ref>" expected. */
static void expect_ref(const struct report *rep, size_t i, const char *ref,
		       const char *reason)
{
	ck_assert_uint_lt(i, rep->nrefs);
	ck_assert_str_eq(rep->refs[i].refname, ref);
	if (!reason) {
		ck_assert_msg(rep->refs[i].ok, "%s: %s", ref,
			      rep->refs[i].reason);
		return;
	}
	ck_assert_msg(!rep->refs[i].ok, "%s is ok", ref);
	ck_assert_str_eq(rep->refs[i].reason, reason);
}

static void expect_audit(const struct audit_ref *refs, size_t i,
			 const struct cmd *c, const char *action,
			 const char *result)
{
	ck_assert_str_eq(refs[i].ref, c->ref);
	ck_assert_str_eq(refs[i].old, c->old);
	ck_assert_str_eq(refs[i].new, c->new);
	ck_assert_str_eq(refs[i].action, action);
	ck_assert_str_eq(refs[i].result, result);
}

/* Each of cmds as audited (the nrefs refs) and as reported to the client
 * in resp (side-band-64k requests): results[i] is "ok" or why it failed. */
static void expect_results(const struct audit_ref *refs, size_t nrefs,
			   const struct buf *resp, const struct cmd *cmds,
			   size_t n, const char *const *actions,
			   const char *const *results)
{
	struct report rep;
	size_t i;

	ck_assert_uint_eq(nrefs, n);
	parse_response(&rep, resp, true);
	ck_assert_uint_eq(rep.nrefs, n);
	for (i = 0; i < n; i++) {
		expect_audit(refs, i, &cmds[i], actions[i], results[i]);
		expect_ref(&rep, i, cmds[i].ref,
			   strcmp(results[i], "ok") ? results[i] : NULL);
	}
	report_release(&rep);
}

/* Respond with nothing forwarded; check the audit refs and the report the
 * client gets (side-band-64k requests). */
static void expect_local_only(struct push *p, const struct cmd *cmds, size_t n,
			      const char *const *actions,
			      const char *const *reasons)
{
	const struct audit_ref *refs = NULL;
	struct buf fwd, resp;
	size_t nrefs = 0;

	ck_assert_uint_eq(push_forward_len(p), 0);
	forward(p, &fwd);
	ck_assert_uint_eq(fwd.len, 0);
	respond(p, NULL, NULL, &resp, &refs, &nrefs);
	expect_results(refs, nrefs, &resp, cmds, n, actions, reasons);
	buf_free(&resp);
	buf_free(&fwd);
}

/* The forwarded body is exactly the original request. */
static void expect_forward_raw(struct push *p, const struct buf *body)
{
	struct buf fwd;

	ck_assert_uint_eq(push_forward_len(p), body->len);
	forward(p, &fwd);
	ck_assert_uint_eq(fwd.len, body->len);
	ck_assert_msg(memcmp(fwd.data, body->data, body->len) == 0,
		      "forwarded body differs from the request");
	buf_free(&fwd);
}

/* Nothing refused in a push of the one command c: upstream gets the
 * request byte for byte and c is audited as action with upstream's word,
 * "ok" when upstream_ok (its report-status says so), else "x" (upstream
 * failed with that). Returns the number of audit refs. */
static size_t expect_passed_through(struct push *p, const struct buf *body,
				    const struct cmd *c, const char *action,
				    bool upstream_ok)
{
	const struct audit_ref *refs = NULL;
	struct buf upb, resp;
	size_t nrefs = 0;
	char line[256];

	ck_assert_ptr_null(push_refusal_summary(p));
	expect_forward_raw(p, body);
	if (upstream_ok) {
		snprintf(line, sizeof(line), "ok %s\n", c->ref);
		reply(&upb, true, "unpack ok\n", line, NULL);
		respond(p, &upb, NULL, &resp, &refs, &nrefs);
		buf_free(&upb);
	} else {
		respond(p, NULL, "x", &resp, &refs, &nrefs);
	}
	expect_audit(refs, 0, c, action, upstream_ok ? "ok" : "x");
	buf_free(&resp);
	return nrefs;
}

/* Parse what push.c forwards, as upstream's receive-pack would. */
static void parse_forwarded(struct rp_request *fr, const struct buf *fwd)
{
	struct gg_err err = GG_ERR_INIT;

	rp_request_init(fr);
	ck_assert_msg(rp_parse(fr, fwd->data, fwd->len, &err) == 0, "%s",
		      err.msg);
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static struct mirror *open_mirror(void)
{
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m = NULL;

	ck_assert_msg(mirror_open(&m, cache, REPO, &err) == 0, "%s", err.msg);
	return m;
}

/* ---- all allowed ---- */

START_TEST(all_allowed_forwards_original)
{
	const struct pattern *pat = &patterns[_i];
	struct cmd cmds[] = {
		{ZERO, n1, "refs/heads/agent/x"},
		{c2, n1, "refs/heads/agent/ff"},
	};
	static const char *const actions[] = {"create", "update"};
	static const char *const results[] = {"ok", "ok"};
	const struct audit_ref *refs = NULL;
	struct push_ctx ctx;
	struct token_claims cl;
	struct buf body, upb, resp;
	struct push *p;
	size_t nrefs = 0;

	claims_init(&cl, pat_agent, 1, false, false);
	ctx = ctx_for(&cl);
	make_body(&body, cmds, 2, CAPS_SB, revs_n1());
	ck_assert_uint_gt(body.len, body.header_len);
	p = decide_ctx(&body, false, &ctx, pat);
	ck_assert(!push_is_probe(p));
	ck_assert_ptr_null(push_refusal_summary(p));
	expect_forward_raw(p, &body);
	reply(&upb, true, "unpack ok\n", "ok refs/heads/agent/x\n",
	      "ok refs/heads/agent/ff\n", NULL);
	respond(p, &upb, NULL, &resp, &refs, &nrefs);
	expect_results(refs, nrefs, &resp, cmds, 2, actions, results);
	buf_free(&resp);
	buf_free(&upb);
	buf_free(&body);
	push_free(p);
}
END_TEST

START_TEST(spool_is_anonymous)
{
	struct gg_err err = GG_ERR_INIT;
	char dir[1200];
	struct dirent *de;
	struct push *p;
	int entries = 0;
	DIR *d;

	p = start(false);
	ck_assert_int_eq(push_body(p, "0000", 4, &err), 0);
	snprintf(dir, sizeof(dir), "%s/tmp", cache);
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	for (de = readdir(d); de != NULL; de = readdir(d))
		entries += de->d_name[0] != '.';
	closedir(d);
	ck_assert_int_eq(entries, 0);
	ck_assert_uint_eq(push_spool_len(p), 4);
	push_free(p);
	push_free(NULL);
}
END_TEST

/* Spooling stops short of the disk reserve: a few 2 GiB pushes (a 2 MiB
 * gzip body can be one) must not fill the disk the audit log is on. */
START_TEST(spool_keeps_disk_reserve)
{
	static char chunk[1 << 20];
	struct gg_err err = GG_ERR_INIT;
	struct statvfs st;
	uint64_t avail;
	struct push *p;
	int i, ret = 0;

	p = start(false);
	push_set_spool_reserve(p, UINT64_MAX / 2);
	ck_assert_int_eq(push_body(p, "0000", 4, &err), GG_ENOSPACE);
	ck_assert_str_eq(err.msg, "not enough disk space to take the push "
				  "(cache_dir keeps 8796093022207 MiB free)");
	ck_assert_uint_eq(push_spool_len(p), 0);
	push_free(p);
	/* checked before every write: leave 8 MiB above the reserve */
	ck_assert_int_eq(statvfs(cache, &st), 0);
	avail = (uint64_t)st.f_bavail * st.f_frsize;
	if (avail < ((uint64_t)64 << 20))
		return; /* too little room to run this half at all */
	/* a command section, then pack bytes, as the 1 MiB chunks below */
	snprintf(chunk, sizeof(chunk), "%04x%040d %040d refs/heads/agent/x%c"
		 "report-status\n0000", 4 + 82 + 18 + 1 + 14, 0, 1, 0);
	p = start(false);
	push_set_spool_reserve(p, avail - ((uint64_t)8 << 20));
	gg_err_init(&err);
	for (i = 0; i < 64 && ret == 0; i++)
		ret = push_body(p, chunk, sizeof(chunk), &err);
	/* after about 7 MiB (others' writes on the same disk may move it a
	 * little either way) */
	ck_assert_int_eq(ret, GG_ENOSPACE);
	ck_assert_uint_le(push_spool_len(p), (uint64_t)12 << 20);
	ck_assert_uint_ge(push_spool_len(p), (uint64_t)2 << 20);
	push_free(p);
	p = start(false);
	push_set_spool_reserve(p, 0);
	gg_err_init(&err);
	ck_assert_int_eq(push_body(p, "0000", 4, &err), GG_OK);
	push_free(p);
}
END_TEST

/* ---- refused before anything goes upstream ---- */

static char *pat_agent_feature[] = {"agent/*", "feature/**"};

/* The token of a case: branch patterns (npats of them) and grants. */
struct token_case {
	char **pats;
	size_t npats;
	bool force, del;
	bool fetch_only; /* no push operation */
};

/* A push gitgate answers alone: no command is forwarded (each refused, or
 * failing with the refused one in an atomic push). */
struct local_refusal {
	struct cmd cmds[3];
	size_t n;
	const char *actions[3];
	const char *reasons[3];
	struct token_case token;
	const char *caps;	   /* of the first command */
	const char *(*revs)(void); /* the pack's revs, or NULL: no pack */
	const char *summary;	   /* push_refusal_summary, NULL: unchecked */
	bool no_mirror;		   /* decided on names alone: no mirror */
};

static const struct local_refusal local_refusals[] = {
	{
		/* force-push */
		.cmds = {{c2, d1, "refs/heads/agent/div"}},
		.n = 1,
		.actions = {"force"},
		.reasons = {R_FORCE},
		.token = {pat_agent, 1},
		.caps = CAPS_SB,
		.revs = revs_n1_d1,
		.summary = R_FORCE,
	},
	{
		/* deletion, force allowed; a delete needs no history */
		.cmds = {{c1, ZERO, "refs/heads/agent/old"}},
		.n = 1,
		.actions = {"delete"},
		.reasons = {R_DELETE},
		.token = {pat_agent, 1, .force = true},
		.caps = CAPS_SB,
		.summary = R_DELETE,
		.no_mirror = true,
	},
	{
		/* a token for fetching only */
		.cmds = {{ZERO, n1, "refs/heads/agent/x"}},
		.n = 1,
		.actions = {"create"},
		.reasons = {"push not allowed by token"},
		.token = {pat_agent, 1, .force = true, .del = true,
			  .fetch_only = true},
		.caps = CAPS_SB,
		.revs = revs_n1,
	},
	{
		/* the reason lists the patterns; refused on its name alone */
		.cmds = {{c2, n1, "refs/heads/main"}},
		.n = 1,
		.actions = {"update"},
		.reasons = {R_PATTERNS},
		.token = {pat_agent_feature, 2, .force = true, .del = true},
		.caps = CAPS_SB,
		.revs = revs_n1,
		.summary = R_PATTERNS,
		.no_mirror = true,
	},
	{
		/* a tag, with no tag pattern granted */
		.cmds = {{ZERO, n1, "refs/tags/v2"}},
		.n = 1,
		.actions = {"create"},
		.reasons = {R_TAG},
		.token = {pat_agent, 1, .force = true, .del = true},
		.caps = CAPS_SB,
		.revs = revs_n1,
		.summary = R_TAG,
	},
	{
		/* atomic: one refusal fails all */
		.cmds = {{ZERO, n1, "refs/heads/agent/x"},
			 {c2, n1, "refs/heads/main"},
			 {c2, n1, "refs/heads/agent/ff"}},
		.n = 3,
		.actions = {"create", "update", "update"},
		.reasons = {REPORT_ATOMIC_REASON, R_BRANCH,
			    REPORT_ATOMIC_REASON},
		.token = {pat_agent, 1},
		.caps = CAPS_ATOMIC,
		.revs = revs_n1,
		.summary = R_BRANCH,
	},
	{
		/* non-atomic, every command refused */
		.cmds = {{c2, n1, "refs/heads/main"},
			 {c2, d1, "refs/heads/agent/div"}},
		.n = 2,
		.actions = {"update", "force"},
		.reasons = {R_BRANCH, R_FORCE},
		.token = {pat_agent, 1},
		.caps = CAPS_SB,
		.revs = revs_n1_d1,
	},
	{
		/* an old id neither upstream nor the pack has */
		.cmds = {{UNKNOWN_OID, n1, "refs/heads/agent/ff"}},
		.n = 1,
		.actions = {"force"},
		.reasons = {R_UNKNOWN},
		.token = {pat_agent, 1},
		.caps = CAPS_SB,
		.revs = revs_n1,
		.summary = R_UNKNOWN,
	},
};

START_TEST(refused_locally)
{
	const struct local_refusal *c = &local_refusals[_i];
	struct token_claims cl;
	struct buf body;
	struct push *p;

	claims_init(&cl, c->token.pats, c->token.npats, c->token.force,
		    c->token.del);
	if (c->token.fetch_only)
		cl.ops = TOKEN_OP_FETCH;
	make_body(&body, c->cmds, c->n, c->caps, c->revs ? c->revs() : NULL);
	p = decide(&body, &cl);
	if (c->summary)
		ck_assert_str_eq(push_refusal_summary(p), c->summary);
	expect_local_only(p, c->cmds, c->n, c->actions, c->reasons);
	if (c->no_mirror)
		ck_assert(!is_dir(mpath));
	buf_free(&body);
	push_free(p);
}
END_TEST

/* ---- single commands allowed ---- */

START_TEST(force_allowed)
{
	struct cmd cmds[] = {{c2, d1, "refs/heads/agent/div"}};
	struct token_claims cl;
	struct buf body;
	struct push *p;

	claims_init(&cl, pat_agent, 1, true, false);
	make_body(&body, cmds, 1, CAPS_SB, revs_n1_d1());
	p = decide(&body, &cl);
	ck_assert_uint_eq(
		expect_passed_through(p, &body, &cmds[0], "force", true), 1);
	buf_free(&body);
	push_free(p);
}
END_TEST

START_TEST(delete_allowed_no_pack)
{
	struct cmd cmds[] = {{c1, ZERO, "refs/heads/agent/old"}};
	const struct audit_ref *refs = NULL;
	struct token_claims cl;
	struct rp_request fr;
	struct buf body, fwd, upb, resp;
	struct push *p;
	size_t nrefs = 0;

	claims_init(&cl, pat_agent, 1, false, true);
	make_body(&body, cmds, 1, CAPS_SB, NULL);
	ck_assert_uint_eq(body.len, body.header_len);
	p = decide(&body, &cl);
	expect_forward_raw(p, &body);
	forward(p, &fwd);
	parse_forwarded(&fr, &fwd);
	ck_assert_uint_eq(fr.header_len, fwd.len);
	rp_request_release(&fr);
	reply(&upb, true, "unpack ok\n", "ok refs/heads/agent/old\n", NULL);
	respond(p, &upb, NULL, &resp, &refs, &nrefs);
	expect_audit(refs, 0, &cmds[0], "delete", "ok");
	buf_free(&resp);
	buf_free(&upb);
	buf_free(&fwd);
	buf_free(&body);
	push_free(p);
}
END_TEST

/* ---- tags ---- */

START_TEST(tag_move_is_force)
{
	/* v1 moves c1 -> c2, a fast-forward in the graph: still a rewrite. */
	struct cmd cmds[] = {
		{ZERO, n1, "refs/tags/v2"},
		{c1, c2, "refs/tags/v1"},
		{c1, ZERO, "refs/tags/old"},
	};
	struct cmd kept[] = {{ZERO, n1, "refs/tags/v2"}};
	const struct audit_ref *refs = NULL;
	struct token_claims cl;
	struct buf body, want, fwd, upb, resp;
	struct report rep;
	struct push *p;
	size_t nrefs = 0;

	claims_init(&cl, pat_agent_tags, 2, false, false);
	make_body(&body, cmds, 3, CAPS_SB, revs_n1());
	p = decide(&body, &cl);
	ck_assert_str_eq(push_refusal_summary(p), R_FORCE);
	/* Tags are never classified from history: no mirror. */
	ck_assert(!is_dir(mpath));
	forward(p, &fwd);
	make_body(&want, kept, 1, CAPS_SB, NULL);
	ck_assert_uint_eq(fwd.len, want.len + body.len - body.header_len);
	ck_assert(memcmp(fwd.data, want.data, want.len) == 0);
	ck_assert(memcmp(fwd.data + want.len, body.data + body.header_len,
			 body.len - body.header_len) == 0);
	reply(&upb, true, "unpack ok\n", "ok refs/tags/v2\n", NULL);
	respond(p, &upb, NULL, &resp, &refs, &nrefs);
	ck_assert_uint_eq(nrefs, 3);
	expect_audit(refs, 0, &cmds[0], "create", "ok");
	expect_audit(refs, 1, &cmds[1], "force", R_FORCE);
	expect_audit(refs, 2, &cmds[2], "delete", R_DELETE);
	parse_response(&rep, &resp, true);
	expect_ref(&rep, 0, "refs/tags/v2", NULL);
	expect_ref(&rep, 1, "refs/tags/v1", R_FORCE);
	expect_ref(&rep, 2, "refs/tags/old", R_DELETE);
	report_release(&rep);
	buf_free(&resp);
	buf_free(&upb);
	buf_free(&fwd);
	buf_free(&want);
	buf_free(&body);
	push_free(p);
}
END_TEST

START_TEST(tag_move_allowed_with_force)
{
	struct cmd cmds[] = {{c1, c2, "refs/tags/v1"}};
	struct token_claims cl;
	struct buf body;
	struct push *p;
	char revs[256];

	claims_init(&cl, pat_agent_tags, 2, true, false);
	snprintf(revs, sizeof(revs), "%s\n^%s\n^%s\n", c2, c2, c1);
	make_body(&body, cmds, 1, CAPS_SB, revs);
	p = decide(&body, &cl);
	expect_passed_through(p, &body, &cmds[0], "force", true);
	buf_free(&body);
	push_free(p);
}
END_TEST

/* ---- mixed requests ---- */

START_TEST(mixed_non_atomic_rewrites_commands)
{
	struct cmd cmds[] = {
		{c2, n1, "refs/heads/main"},
		{ZERO, n1, "refs/heads/agent/x"},
		{ZERO, n1, "refs/tags/v2"},
		{c2, n1, "refs/heads/agent/ff"},
		{c2, d1, "refs/heads/agent/div"},
	};
	struct cmd kept[] = {cmds[1], cmds[3]};
	static const char *const actions[] = {"update", "create", "create",
					      "update", "force"};
	static const char *const results[] = {R_BRANCH, "ok", R_TAG, "ok",
					      R_FORCE};
	const struct audit_ref *refs = NULL;
	struct token_claims cl;
	struct rp_request fr;
	struct buf body, want, fwd, upb, resp;
	struct push *p;
	size_t nrefs = 0, packlen, i;

	claims_init(&cl, pat_agent, 1, false, false);
	make_body(&body, cmds, 5, CAPS_SB, revs_n1_d1());
	packlen = body.len - body.header_len;
	p = decide(&body, &cl);
	ck_assert_str_eq(push_refusal_summary(p), R_BRANCH);

	/* Upstream gets the allowed commands (caps moved to the first kept
	 * one) and the very same pack. */
	forward(p, &fwd);
	parse_forwarded(&fr, &fwd);
	ck_assert_uint_eq(fr.ncommands, 2);
	for (i = 0; i < 2; i++) {
		ck_assert_str_eq(fr.commands[i].refname, kept[i].ref);
		ck_assert_str_eq(fr.commands[i].old_oid, kept[i].old);
		ck_assert_str_eq(fr.commands[i].new_oid, kept[i].new);
	}
	ck_assert_str_eq(fr.caps.raw, CAPS_SB);
	ck_assert(fr.caps.side_band_64k);
	ck_assert_uint_eq(fwd.len - fr.header_len, packlen);
	ck_assert(memcmp(fwd.data + fr.header_len, body.data + body.header_len,
			 packlen) == 0);
	make_body(&want, kept, 2, CAPS_SB, NULL);
	ck_assert_uint_eq(fr.header_len, want.len);
	ck_assert(memcmp(fwd.data, want.data, want.len) == 0);
	rp_request_release(&fr);

	reply(&upb, true, "unpack ok\n", "ok refs/heads/agent/x\n",
	      "ok refs/heads/agent/ff\n", NULL);
	respond(p, &upb, NULL, &resp, &refs, &nrefs);
	ck_assert(contains(&resp, "ng refs/heads/main " R_BRANCH));
	ck_assert(contains(&resp, "ok refs/heads/agent/x"));
	ck_assert(contains(&resp,
			   "gitgate: refusing refs/heads/main: " R_BRANCH));
	expect_results(refs, nrefs, &resp, cmds, 5, actions, results);
	buf_free(&resp);
	buf_free(&upb);
	buf_free(&want);
	buf_free(&fwd);
	buf_free(&body);
	push_free(p);
}
END_TEST

START_TEST(mixed_report_status_without_sideband)
{
	struct cmd cmds[] = {
		{c2, n1, "refs/heads/main"},
		{ZERO, n1, "refs/heads/agent/x"},
	};
	const struct audit_ref *refs = NULL;
	struct token_claims cl;
	struct buf body, fwd, upb, resp, want;
	struct report rep;
	struct push *p;
	size_t nrefs = 0;

	claims_init(&cl, pat_agent, 1, false, false);
	make_body(&body, cmds, 2, CAPS_PLAIN, revs_n1());
	p = decide(&body, &cl);
	forward(p, &fwd);
	ck_assert_uint_gt(fwd.len, 0);
	reply(&upb, false, "unpack ok\n", "ok refs/heads/agent/x\n", NULL);
	respond(p, &upb, NULL, &resp, &refs, &nrefs);
	/* Exactly git's report-status, in the client's order. */
	memset(&want, 0, sizeof(want));
	pkt_str(&want, "unpack ok\n");
	pkt_str(&want, "ng refs/heads/main " R_BRANCH "\n");
	pkt_str(&want, "ok refs/heads/agent/x\n");
	flush_pkt(&want);
	ck_assert_uint_eq(resp.len, want.len);
	ck_assert_str_eq((char *)resp.data, (char *)want.data);
	parse_response(&rep, &resp, false);
	expect_ref(&rep, 0, "refs/heads/main", R_BRANCH);
	expect_ref(&rep, 1, "refs/heads/agent/x", NULL);
	report_release(&rep);
	buf_free(&want);
	buf_free(&resp);
	buf_free(&upb);
	buf_free(&fwd);
	buf_free(&body);
	push_free(p);
}
END_TEST

START_TEST(mixed_delete_only_forward_has_no_pack)
{
	struct cmd cmds[] = {
		{c2, n1, "refs/heads/main"},
		{c1, ZERO, "refs/heads/agent/old"},
	};
	struct cmd kept[] = {{c1, ZERO, "refs/heads/agent/old"}};
	const struct audit_ref *refs = NULL;
	struct token_claims cl;
	struct rp_request fr;
	struct buf body, want, fwd, upb, resp;
	struct push *p;
	size_t nrefs = 0;

	claims_init(&cl, pat_agent, 1, false, true);
	make_body(&body, cmds, 2, CAPS_SB, revs_n1());
	ck_assert_uint_gt(body.len, body.header_len);
	p = decide(&body, &cl);
	forward(p, &fwd);
	make_body(&want, kept, 1, CAPS_SB, NULL);
	ck_assert_uint_eq(push_forward_len(p), want.len);
	ck_assert_uint_eq(fwd.len, want.len);
	ck_assert(memcmp(fwd.data, want.data, want.len) == 0);
	parse_forwarded(&fr, &fwd);
	ck_assert_uint_eq(fr.ncommands, 1);
	ck_assert_uint_eq(fr.header_len, fwd.len);
	rp_request_release(&fr);
	reply(&upb, true, "unpack ok\n", "ok refs/heads/agent/old\n", NULL);
	respond(p, &upb, NULL, &resp, &refs, &nrefs);
	expect_audit(refs, 0, &cmds[0], "update", R_BRANCH);
	expect_audit(refs, 1, &cmds[1], "delete", "ok");
	buf_free(&resp);
	buf_free(&upb);
	buf_free(&fwd);
	buf_free(&want);
	buf_free(&body);
	push_free(p);
}
END_TEST

START_TEST(atomic_all_allowed_forwards_original)
{
	struct cmd cmds[] = {
		{ZERO, n1, "refs/heads/agent/x"},
		{c2, n1, "refs/heads/agent/ff"},
	};
	struct token_claims cl;
	struct buf body;
	struct push *p;

	claims_init(&cl, pat_agent, 1, false, false);
	make_body(&body, cmds, 2, CAPS_ATOMIC, revs_n1());
	p = decide(&body, &cl);
	ck_assert_ptr_null(push_refusal_summary(p));
	expect_forward_raw(p, &body);
	buf_free(&body);
	push_free(p);
}
END_TEST

/* ---- upstream trouble ---- */

START_TEST(upstream_error_and_unreadable_reply)
{
	struct cmd cmds[] = {{ZERO, n1, "refs/heads/agent/x"}};
	const struct audit_ref *refs = NULL;
	struct token_claims cl;
	struct buf body, resp, garbage;
	struct report rep;
	struct push *p;
	size_t nrefs = 0;

	claims_init(&cl, pat_agent, 1, false, false);
	make_body(&body, cmds, 1, CAPS_SB, revs_n1());
	p = decide(&body, &cl);
	respond(p, NULL, "upstream answered HTTP 502", &resp, &refs, &nrefs);
	expect_audit(refs, 0, &cmds[0], "create", "upstream answered HTTP 502");
	parse_response(&rep, &resp, true);
	expect_ref(&rep, 0, "refs/heads/agent/x", "upstream answered HTTP 502");
	report_release(&rep);
	buf_free(&resp);
	push_free(p);

	p = decide(&body, &cl);
	memset(&garbage, 0, sizeof(garbage));
	buf_add(&garbage, "<html>bad gateway</html>", 24);
	respond(p, &garbage, NULL, &resp, &refs, &nrefs);
	expect_audit(refs, 0, &cmds[0], "create",
		     "unreadable reply from upstream");
	buf_free(&resp);
	buf_free(&garbage);
	buf_free(&body);
	push_free(p);
}
END_TEST

/* Forwarding body when upstream stops reading fails, and says so. */
static void expect_forward_stops(const struct buf *body,
				 const struct token_claims *cl)
{
	struct gg_err err = GG_ERR_INIT;
	struct push *p = decide(body, cl);

	ck_assert_int_eq(push_forward_write(p, refuse_write, NULL, &err),
			 GG_EUPSTREAM);
	ck_assert_str_eq(err.msg, "upstream stopped reading");
	push_free(p);
}

START_TEST(forward_write_stops)
{
	struct cmd cmds[] = {
		{c2, n1, "refs/heads/main"},
		{ZERO, n1, "refs/heads/agent/x"},
	};
	struct token_claims cl;
	struct buf body;

	claims_init(&cl, pat_agent, 1, false, false);
	/* rewritten body */
	make_body(&body, cmds, 2, CAPS_SB, revs_n1());
	expect_forward_stops(&body, &cl);
	buf_free(&body);
	/* original body */
	make_body(&body, cmds + 1, 1, CAPS_SB, revs_n1());
	expect_forward_stops(&body, &cl);
	buf_free(&body);
}
END_TEST

/* ---- probe ---- */

START_TEST(probe)
{
	struct token_claims cl;
	struct push_ctx ctx;
	struct buf body, fwd;
	struct push *p;
	bool gzip = _i == 1;

	claims_init(&cl, pat_agent, 1, false, false);
	ctx = ctx_for(&cl);
	memset(&body, 0, sizeof(body));
	flush_pkt(&body);
	p = decide_ctx(&body, gzip, &ctx, ODD);
	ck_assert(push_is_probe(p));
	ck_assert_ptr_null(push_refusal_summary(p));
	ck_assert_uint_eq(push_forward_len(p), 4);
	forward(p, &fwd);
	ck_assert_uint_eq(fwd.len, 4);
	ck_assert(memcmp(fwd.data, "0000", 4) == 0);
	ck_assert(!is_dir(mpath));
	buf_free(&fwd);
	buf_free(&body);
	push_free(p);
}
END_TEST

/* ---- gzip ---- */

START_TEST(gzip_same_decisions)
{
	struct cmd cmds[] = {
		{c2, n1, "refs/heads/main"},
		{ZERO, n1, "refs/heads/agent/x"},
		{c2, n1, "refs/heads/agent/ff"},
		{c2, d1, "refs/heads/agent/div"},
	};
	const struct audit_ref *refs[2];
	struct token_claims cl;
	struct push_ctx ctx;
	struct buf body, fwd[2], resp[2];
	struct push *p[2];
	size_t nrefs[2], i, k;

	claims_init(&cl, pat_agent, 1, false, false);
	ctx = ctx_for(&cl);
	make_body(&body, cmds, 4, CAPS_SB, revs_n1_d1());
	for (k = 0; k < 2; k++) {
		p[k] = decide_ctx(&body, k == 1, &ctx, ODD);
		forward(p[k], &fwd[k]);
		respond(p[k], NULL, "x", &resp[k], &refs[k], &nrefs[k]);
	}
	ck_assert_uint_eq(fwd[0].len, fwd[1].len);
	ck_assert(memcmp(fwd[0].data, fwd[1].data, fwd[0].len) == 0);
	ck_assert_uint_lt(fwd[0].len, body.len);
	ck_assert_uint_eq(resp[0].len, resp[1].len);
	ck_assert(memcmp(resp[0].data, resp[1].data, resp[0].len) == 0);
	ck_assert_uint_eq(nrefs[0], 4);
	ck_assert_uint_eq(nrefs[1], 4);
	for (i = 0; i < 4; i++) {
		ck_assert_str_eq(refs[0][i].action, refs[1][i].action);
		ck_assert_str_eq(refs[0][i].result, refs[1][i].result);
	}
	ck_assert_str_eq(refs[1][0].result, R_BRANCH);
	ck_assert_str_eq(refs[1][2].action, "update");
	ck_assert_str_eq(refs[1][3].result, R_FORCE);
	ck_assert_str_eq(push_refusal_summary(p[1]), R_BRANCH);
	for (k = 0; k < 2; k++) {
		buf_free(&fwd[k]);
		buf_free(&resp[k]);
		push_free(p[k]);
	}
	buf_free(&body);
}
END_TEST

/* Feed z (a gzip'd body) in odd chunks; the first error. */
static int feed_gzip(struct push *p, const struct buf *z, struct gg_err *err)
{
	write_file("body.gz", z->data, z->len);
	return feed_file(p, "body.gz", ODD, err);
}

/* z, fed as a gzip'd body, is refused while streaming with msg. */
static void expect_gzip_refused(const struct buf *z, const char *msg)
{
	struct gg_err err = GG_ERR_INIT;
	struct push *p = start(true);

	ck_assert_int_eq(feed_gzip(p, z, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, msg);
	push_free(p);
}

START_TEST(gzip_corrupt)
{
	struct cmd cmds[] = {{ZERO, n1, "refs/heads/agent/x"}};
	struct buf body, z;

	make_body(&body, cmds, 1, CAPS_SB, revs_n1());

	/* Not gzip at all. */
	memset(&z, 0, sizeof(z));
	buf_add(&z, body.data, body.len);
	expect_gzip_refused(&z, "corrupt gzip request body");
	buf_free(&z);

	/* A flipped byte in the CRC-32 of the gzip trailer. */
	gzip_buf(&z, body.data, body.len);
	z.data[z.len - 6] ^= 0x01;
	expect_gzip_refused(&z, "corrupt gzip request body");
	buf_free(&z);

	/* Garbage after the end of the gzip stream. */
	gzip_buf(&z, body.data, body.len);
	buf_add(&z, "trailing", 8);
	expect_gzip_refused(&z, "data after the end of the gzip request body");
	buf_free(&z);
	buf_free(&body);
}
END_TEST

START_TEST(gzip_truncated)
{
	struct cmd cmds[] = {{ZERO, n1, "refs/heads/agent/x"}};
	struct gg_err err = GG_ERR_INIT;
	struct token_claims cl;
	struct push_ctx ctx;
	struct buf body, z;
	struct push *p;
	size_t cut[3], i;

	claims_init(&cl, pat_agent, 1, false, false);
	ctx = ctx_for(&cl);
	make_body(&body, cmds, 1, CAPS_SB, revs_n1());
	gzip_buf(&z, body.data, body.len);
	cut[0] = 3;	    /* inside the trailer */
	cut[1] = 10;	    /* end of the deflate data */
	cut[2] = z.len / 2; /* half */
	for (i = 0; i < 3; i++) {
		size_t len = z.len;

		z.len -= cut[i];
		p = start(true);
		gg_err_init(&err);
		ck_assert_msg(feed_gzip(p, &z, &err) == 0, "%s", err.msg);
		ck_assert_int_eq(push_decide(p, &ctx, &err), GG_EINVAL);
		ck_assert_str_eq(err.msg, "truncated gzip request body");
		push_free(p);
		z.len = len;
	}
	buf_free(&z);
	buf_free(&body);
}
END_TEST

/* ---- malformed command lists ---- */

static void malformed_body(struct buf *b, int which)
{
	struct cmd dup[] = {
		{ZERO, n1, "refs/heads/agent/x"},
		{ZERO, n1, "refs/heads/agent/x"},
	};
	struct cmd bad_oid[] = {
		{"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", n1,
		 "refs/heads/agent/x"},
	};
	struct cmd bad_ref[] = {{ZERO, n1, "refs/heads/a..b"}};
	struct cmd ok[] = {{ZERO, n1, "refs/heads/agent/x"}};

	switch (which) {
	case 0:
		make_body(b, bad_oid, 1, CAPS_SB, NULL);
		break;
	case 1:
		make_body(b, dup, 2, CAPS_SB, NULL);
		break;
	case 2:
		make_body(b, bad_ref, 1, CAPS_SB, NULL);
		break;
	case 3: /* cut before the flush: the command list never ends */
		make_body(b, ok, 1, CAPS_SB, NULL);
		b->len -= 4;
		break;
	case 4: /* not a pkt-line length */
		memset(b, 0, sizeof(*b));
		buf_add(b, "zzzz0000", 8);
		break;
	default: /* empty body */
		memset(b, 0, sizeof(*b));
		break;
	}
}

START_TEST(malformed_command_list)
{
	struct gg_err err = GG_ERR_INIT, err2, perr = GG_ERR_INIT;
	struct token_claims cl;
	struct rp_request req;
	struct push_ctx ctx;
	struct buf body, z;
	struct push *p;
	bool gzip = _i >= 6;
	int rc, prc;

	claims_init(&cl, pat_agent, 1, true, true);
	ctx = ctx_for(&cl);
	malformed_body(&body, _i % 6);
	/* The parser's verdict on the same bytes. */
	rp_request_init(&req);
	prc = rp_parse(&req, body.data, body.len, &perr);
	rp_request_release(&req);
	ck_assert_int_eq(prc, GG_EINVAL);
	ck_assert(perr.msg[0]);

	p = start(gzip);
	if (gzip) {
		gzip_buf(&z, body.data, body.len);
		rc = feed_gzip(p, &z, &err);
		buf_free(&z);
	} else {
		write_file("body", body.data, body.len);
		rc = feed_file(p, "body", ODD, &err);
	}
	gg_err_init(&err2);
	ck_assert_int_eq(push_decide(p, &ctx, &err2), GG_EINVAL);
	if (rc) {
		/* Found while streaming: push_body says why (the server
		 * answers 400 with that and never calls push_decide, which
		 * still fails closed). */
		ck_assert_int_eq(rc, GG_EINVAL);
		ck_assert_str_eq(err.msg, perr.msg);
	} else {
		/* Found at the end of the body: push_decide says why. */
		ck_assert_str_eq(err2.msg, perr.msg);
	}
	push_free(p);
	buf_free(&body);
}
END_TEST

/* ---- classification against the mirror ---- */

START_TEST(mirror_lacks_old_fetches)
{
	struct cmd cmds[] = {
		{c2, n1, "refs/heads/agent/ff"},
		{c2, d1, "refs/heads/agent/div"},
	};
	struct cmd kept[] = {{c2, n1, "refs/heads/agent/ff"}};
	const struct audit_ref *refs = NULL;
	struct token_claims cl;
	struct buf body, want, fwd, resp;
	struct mirror *m;
	struct push *p;
	size_t nrefs = 0;

	claims_init(&cl, pat_agent, 1, false, false);
	make_body(&body, cmds, 2, CAPS_SB, revs_n1_d1());
	ck_assert(!is_dir(mpath)); /* no mirror yet */
	p = decide(&body, &cl);
	forward(p, &fwd);
	make_body(&want, kept, 1, CAPS_SB, NULL);
	ck_assert_uint_eq(fwd.len, want.len + body.len - body.header_len);
	ck_assert(memcmp(fwd.data, want.data, want.len) == 0);
	respond(p, NULL, "x", &resp, &refs, &nrefs);
	expect_audit(refs, 0, &cmds[0], "update", "x");
	expect_audit(refs, 1, &cmds[1], "force", R_FORCE);
	push_free(p);

	/* The mirror kept what was fetched, not what was pushed. */
	m = open_mirror();
	ck_assert(mirror_has(m, c2));
	ck_assert(mirror_has(m, c1));
	ck_assert(!mirror_has(m, n1));
	ck_assert(!mirror_has(m, d1));
	mirror_close(m);
	buf_free(&resp);
	buf_free(&fwd);
	buf_free(&want);
	buf_free(&body);
}
END_TEST

/* A mirror fetched when upstream had only c1 (on agent/old). */
static void stale_mirror(void)
{
	struct gg_err err = GG_ERR_INIT;
	char early[1200];
	struct mirror *m;

	run("git init -q --bare -b main early.git &&"
	    " git -C work push -q ../early.git main~1:refs/heads/agent/old");
	snprintf(early, sizeof(early), "%s/early.git", tmp);
	m = open_mirror();
	ck_assert_msg(mirror_fetch(m, early, "s", &err) == 0, "%s", err.msg);
	ck_assert(mirror_has(m, c1));
	ck_assert(!mirror_has(m, c2));
	mirror_close(m);
}

/* agent/old c1 -> new where new descends from c2, which upstream has
 * (main) but the stale mirror does not. */
static void expect_stale_update(const char *new, const char *revs, bool thin)
{
	struct cmd cmds[] = {{c1, new, "refs/heads/agent/old"}};
	const struct audit_ref *refs = NULL;
	struct token_claims cl;
	struct buf body, resp;
	struct mirror *m;
	struct push *p;
	size_t nrefs = 0;

	stale_mirror();
	claims_init(&cl, pat_agent, 1, false, false);
	make_body_pack(&body, cmds, 1, CAPS_SB, revs, thin);
	p = decide(&body, &cl);
	respond(p, NULL, "x", &resp, &refs, &nrefs);
	ck_assert_msg(push_refusal_summary(p) == NULL, "refused: %s",
		      push_refusal_summary(p));
	expect_audit(refs, 0, &cmds[0], "update", "x");
	expect_forward_raw(p, &body);
	push_free(p);
	m = open_mirror();
	ck_assert(mirror_has(m, c2));
	mirror_close(m);
	buf_free(&resp);
	buf_free(&body);
}

START_TEST(stale_mirror_thin_pack_bases)
{
	/* The thin pack's deltas need c2's blob: mirror_add_pack says
	 * GG_ENOTFOUND, push.c fetches and retries. */
	expect_stale_update(n1, revs_n1(), true);
}
END_TEST

START_TEST(stale_mirror_intermediate_commit)
{
	/* Same push with a self-contained pack (what `git push --no-thin`
	 * sends, or any push whose objects do not deltify against upstream
	 * ones): the pack indexes fine, but n1's parent c2 is neither in the
	 * pack nor in the mirror, so only a refresh can settle the ancestry.
	 * (Before dfd8c27 this was refused: "gitgate could not check
	 * history: ancestry: object not found".) */
	expect_stale_update(n1, revs_n1(), false);
}
END_TEST

START_TEST(stale_mirror_existing_commit)
{
	/* git push origin main:agent/old after main moved upstream: new is
	 * c2, which upstream has, so the pack is empty. (Before dfd8c27 this
	 * was refused: "... cannot find commit <c2>".) */
	char revs[256];

	snprintf(revs, sizeof(revs), "%s\n^%s\n^%s\n", c2, c2, c1);
	expect_stale_update(c2, revs, true);
}
END_TEST

/* A request whose pack section is damaged: cut short by cut bytes, or
 * with the byte at flip (from the pack start) changed. */
static void damaged_body(struct buf *b, const struct cmd *cmds, size_t n,
			 size_t cut, size_t flip)
{
	make_body(b, cmds, n, CAPS_SB, revs_n1());
	ck_assert_uint_gt(b->len - b->header_len, cut + flip);
	b->len -= cut;
	if (flip)
		b->data[b->header_len + flip] ^= 0x5a;
}

START_TEST(unreadable_pack_refused)
{
	/* _i: 0 truncated pack, 1 corrupt byte in the pack */
	struct cmd cmds[] = {
		{c2, n1, "refs/heads/agent/ff"},
		{ZERO, n1, "refs/heads/agent/x"},
	};
	const struct audit_ref *refs = NULL;
	struct gg_err err = GG_ERR_INIT;
	struct token_claims cl;
	struct buf body, resp, fwd;
	struct report rep;
	struct push *p;
	size_t nrefs = 0;
	const char *why;

	claims_init(&cl, pat_agent, 1, false, false);
	damaged_body(&body, cmds, 2, _i == 0 ? 30 : 0, _i == 0 ? 0 : 40);
	p = decide(&body, &cl);
	why = push_refusal_summary(p);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(!strncmp(why, R_HISTORY "pushed pack: ",
			       strlen(R_HISTORY "pushed pack: ")),
		      "%s", why);
	/* The create needs no history: it goes upstream alone, with the
	 * pack as the client sent it (upstream will reject it). */
	forward(p, &fwd);
	ck_assert_uint_eq(fwd.len, push_forward_len(p));
	ck_assert(contains(&fwd, "refs/heads/agent/x"));
	ck_assert(!contains(&fwd, "refs/heads/agent/ff"));
	respond(p, NULL, "x", &resp, &refs, &nrefs);
	ck_assert_str_eq(refs[0].action, "force");
	ck_assert_str_eq(refs[0].result, why);
	buf_free(&fwd);
	buf_free(&resp);
	push_free(p);

	/* Only the update, nothing forwarded: the client is told its pack
	 * could not be unpacked, as git's receive-pack would. */
	buf_free(&body);
	damaged_body(&body, cmds, 1, _i == 0 ? 30 : 0, _i == 0 ? 0 : 40);
	p = decide(&body, &cl);
	ck_assert_uint_eq(push_forward_len(p), 0);
	respond(p, NULL, NULL, &resp, &refs, &nrefs);
	ck_assert_msg(report_parse(&rep, resp.data, resp.len,
				   REPORT_SIDEBAND | REPORT_EXPECT_STATUS,
				   &err) == 0,
		      "%s", err.msg);
	ck_assert_msg(!strncmp(rep.unpack, "pushed pack: ", 13), "unpack %s",
		      rep.unpack);
	ck_assert_uint_eq(rep.nrefs, 1);
	ck_assert(!rep.refs[0].ok);
	ck_assert_str_eq(rep.refs[0].reason, push_refusal_summary(p));
	report_release(&rep);
	buf_free(&resp);
	push_free(p);

	/* With force allowed the worst case is allowed: forwarded as is. */
	claims_init(&cl, pat_agent, 1, true, false);
	p = decide(&body, &cl);
	ck_assert_ptr_null(push_refusal_summary(p));
	expect_forward_raw(p, &body);
	respond(p, NULL, "x", &resp, &refs, &nrefs);
	ck_assert_str_eq(refs[0].action, "force");
	buf_free(&resp);
	buf_free(&body);
	push_free(p);
}
END_TEST

START_TEST(unknown_old_allowed_with_force)
{
	struct cmd cmds[] = {{UNKNOWN_OID, n1, "refs/heads/agent/ff"}};
	struct token_claims cl;
	struct buf body;
	struct push *p;

	claims_init(&cl, pat_agent, 1, true, false);
	make_body(&body, cmds, 1, CAPS_SB, revs_n1());
	p = decide(&body, &cl);
	expect_passed_through(p, &body, &cmds[0], "force", false);
	buf_free(&body);
	push_free(p);
}
END_TEST

START_TEST(upstream_unreachable_refused)
{
	/* c1 -> n1: the walk leaves the pack at c2, which the empty mirror
	 * lacks, so only a fetch could tell, and it fails. */
	struct cmd cmds[] = {
		{c1, n1, "refs/heads/agent/ff"},
		{ZERO, n1, "refs/heads/agent/x"},
	};
	const struct audit_ref *refs = NULL;
	struct token_claims cl;
	struct push_ctx ctx;
	struct buf body, resp;
	struct push *p;
	char url[1200];
	size_t nrefs = 0;

	claims_init(&cl, pat_agent, 1, false, false);
	ctx = ctx_for(&cl);
	snprintf(url, sizeof(url), "%s/nowhere.git", tmp);
	ctx.upstream_repo_url = url;
	make_body(&body, cmds, 2, CAPS_SB, revs_n1());
	p = decide_ctx(&body, false, &ctx, ODD);
	respond(p, NULL, "x", &resp, &refs, &nrefs);
	ck_assert_str_eq(refs[0].action, "force");
	ck_assert_msg(!strncmp(refs[0].result, R_HISTORY "mirror fetch: ",
			       strlen(R_HISTORY "mirror fetch: ")),
		      "%s", refs[0].result);
	/* The create needs no history and still goes ahead. */
	ck_assert_str_eq(refs[1].action, "create");
	ck_assert_str_eq(refs[1].result, "x");
	ck_assert_str_eq(push_refusal_summary(p), refs[0].result);
	buf_free(&resp);
	buf_free(&body);
	push_free(p);
}
END_TEST

/* ---- sizes ---- */

START_TEST(large_pack)
{
	/* A pack of several hundred KiB: the spool, the indexer feed and the
	 * forward copy all go round their 64 KiB buffers many times; gzip'd
	 * and fed whole, inflate fills its output buffer repeatedly. */
	struct cmd cmds[] = {{NULL, NULL, "refs/heads/agent/ff"}};
	const struct pattern *pat = &patterns[_i == 0 ? 0 : 1];
	struct token_claims cl;
	struct push_ctx ctx;
	struct buf body;
	struct push *p;
	char n2[41], revs[256];

	run("cd work && git checkout -q -b big main && awk 'BEGIN { srand(42);"
	    " for (i = 0; i < 40000; i++) printf \"%%08x%%08x\\n\","
	    " int(rand() * 4294967296), int(rand() * 4294967296) }' > rand.txt"
	    " && git add rand.txt && git commit -qm big");
	rev(n2, "big");
	cmds[0].old = c2;
	cmds[0].new = n2;
	snprintf(revs, sizeof(revs), "%s\n^%s\n^%s\n", n2, c2, c1);
	claims_init(&cl, pat_agent, 1, false, false);
	ctx = ctx_for(&cl);
	make_body(&body, cmds, 1, CAPS_SB, revs);
	ck_assert_uint_gt(body.len - body.header_len, 256 * 1024);
	p = decide_ctx(&body, _i == 1, &ctx, pat);
	expect_passed_through(p, &body, &cmds[0], "update", false);
	buf_free(&body);
	push_free(p);
}
END_TEST

START_TEST(many_commands)
{
	/* 3000 branch deletions with one refused in the middle: the
	 * rewritten command list keeps the other 2999 in order. The gzip'd
	 * body is small and inflates to far more than one 64 KiB buffer. */
	enum { N = 3000, BAD = 1234 };
	struct cmd *cmds = calloc(N, sizeof(*cmds));
	char(*names)[64] = calloc(N, sizeof(*names));
	struct token_claims cl;
	struct push_ctx ctx;
	struct rp_request fr;
	struct buf body, fwd;
	struct push *p;
	size_t i, k;

	ck_assert_ptr_nonnull(cmds);
	ck_assert_ptr_nonnull(names);
	for (i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "refs/heads/%s/b%04zu",
			 i == BAD ? "other" : "agent", i);
		cmds[i].old = c1;
		cmds[i].new = ZERO;
		cmds[i].ref = names[i];
	}
	claims_init(&cl, pat_agent, 1, false, true);
	ctx = ctx_for(&cl);
	make_body(&body, cmds, N, CAPS_SB, NULL);
	for (k = 0; k < 2; k++) {
		p = decide_ctx(&body, k == 1, &ctx, &patterns[1]);
		ck_assert_str_eq(push_refusal_summary(p), R_BRANCH);
		forward(p, &fwd);
		parse_forwarded(&fr, &fwd);
		ck_assert_uint_eq(fr.ncommands, N - 1);
		ck_assert_uint_eq(fr.header_len, fwd.len);
		for (i = 0; i < N - 1; i++)
			ck_assert_str_eq(fr.commands[i].refname,
					 names[i < BAD ? i : i + 1]);
		rp_request_release(&fr);
		buf_free(&fwd);
		push_free(p);
	}
	buf_free(&body);
	free(names);
	free(cmds);
}
END_TEST

static Suite *push_suite(void)
{
	Suite *s = suite_create("push");
	TCase *b = tcase_create("basic");
	TCase *r = tcase_create("rules");
	TCase *x = tcase_create("mixed");
	TCase *z = tcase_create("body");
	TCase *m = tcase_create("mirror");
	TCase *l = tcase_create("sizes");
	TCase *all[] = {b, r, x, z, m, l};
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tcase_add_checked_fixture(all[i], setup,
					  gitfixture_remove_scratch);
		tcase_set_timeout(all[i], 120);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_loop_test(b, all_allowed_forwards_original, 0,
			    sizeof(patterns) / sizeof(patterns[0]));
	tcase_add_test(b, spool_is_anonymous);
	tcase_add_test(b, spool_keeps_disk_reserve);
	tcase_add_loop_test(b, probe, 0, 2);
	tcase_add_test(b, upstream_error_and_unreadable_reply);
	tcase_add_test(b, forward_write_stops);
	tcase_add_loop_test(r, refused_locally, 0,
			    sizeof(local_refusals) / sizeof(local_refusals[0]));
	tcase_add_test(r, force_allowed);
	tcase_add_test(r, delete_allowed_no_pack);
	tcase_add_test(r, tag_move_is_force);
	tcase_add_test(r, tag_move_allowed_with_force);
	tcase_add_test(x, mixed_non_atomic_rewrites_commands);
	tcase_add_test(x, mixed_report_status_without_sideband);
	tcase_add_test(x, mixed_delete_only_forward_has_no_pack);
	tcase_add_test(x, atomic_all_allowed_forwards_original);
	tcase_add_test(z, gzip_same_decisions);
	tcase_add_test(z, gzip_corrupt);
	tcase_add_test(z, gzip_truncated);
	tcase_add_loop_test(z, malformed_command_list, 0, 12);
	tcase_add_test(m, mirror_lacks_old_fetches);
	tcase_add_test(m, stale_mirror_thin_pack_bases);
	tcase_add_test(m, stale_mirror_intermediate_commit);
	tcase_add_test(m, stale_mirror_existing_commit);
	tcase_add_loop_test(m, unreadable_pack_refused, 0, 2);
	tcase_add_test(m, unknown_old_allowed_with_force);
	tcase_add_test(m, upstream_unreachable_refused);
	tcase_add_loop_test(l, large_pack, 0, 2);
	tcase_add_test(l, many_commands);
	return s;
}

int main(void)
{
	return gitfixture_main(push_suite());
}

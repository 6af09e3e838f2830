/*
 * push.c - receive-pack requests: spool, parse, classify, decide, forward,
 * report. The decision is fail-closed throughout: a command whose action
 * cannot be established is refused unless every possible action would be
 * allowed anyway.
 */
#include "gitgate/push/push.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/metrics.h"
#include "gitgate/core/log.h"
#include "gitgate/push/content.h"
#include "gitgate/push/mirror.h"
#include "gitgate/push/packscan.h"
#include "gitgate/proto/pktline.h"
#include "gitgate/push/policy.h"
#include "gitgate/push/policystate.h"
#include "gitgate/push/sitepolicy.h"
#include "gitgate/proto/receivepack.h"
#include "gitgate/proto/report.h"
#include "gitgate/upstream/cred.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

/* The site rule that refused a command; strings owned, NULL when none. */
struct site_refusal {
	char *rule, *path, *commit;
	size_t line;
	char hash[SECRETSCAN_HASH_HEX + 1];
};

struct push {
	int fd;
	uint64_t len; /* decoded bytes spooled */
	uint64_t reserve; /* free bytes to leave on the spool's filesystem */

	bool gzip;
	bool z_ready;
	bool z_end;
	z_stream z;

	struct rp_parser parser;
	int parse_rc; /* GG_EAGAIN while parsing, 0 done, <0 failed */
	struct gg_err parse_err;

	/* The context (push_set_ctx or push_decide); strings owned. */
	struct push_ctx ctx;
	char *ctx_strs[3];
	bool has_ctx;

	/* Set once the command list is parsed (header_done): */
	bool *need;        /* per command: fast-forward check needed */
	struct mirror *m;  /* open when any command needs it */
	bool fetched;      /* the mirror was refreshed for this push */
	bool fetch_failed; /* ... and that failed: nothing more to try */
	struct packscan *scan; /* reads the pack's commits as it arrives */
	bool indexing;     /* ... and the mirror indexes it (content rules) */
	unsigned walks;        /* of the mirror's history, for this push */
	int prep_ret;      /* the mirror could not be opened early */
	struct gg_err prep_err; /* why */
	bool decided;      /* push_decide succeeded */

	/* After push_decide: */
	struct rp_request req;
	enum policy_action *actions;
	char **refusals; /* per command: NULL = allowed; owned */
	bool *keep;
	size_t nkept;
	bool forward_raw;
	bool forward_pack;
	struct pkt_buf header; /* rewritten command section */

	char *pack_error; /* the pushed pack could not be read */

	/* Site policy for this repository (NULL: none) and the content
	 * rules built from it and the token; set by first_pass. */
	struct sitepolicy_rules *site;
	struct content_rules content;
	/* Per command: which site rule refused it (for the audit record). */
	struct site_refusal *site_why;
	char **notes; /* per command, owned: every finding (remote: lines) */
	size_t *notes_more; /* per command: findings beyond those kept */

	/* After push_respond: */
	struct audit_ref *arefs;
	char **results; /* per command, owned */
};

/* ---- spooling ------------------------------------------------------ */

/* An anonymous file in dir: O_TMPFILE where the filesystem supports it,
 * else a named one unlinked straight away. */
static int spool_open(const char *dir, struct gg_err *err)
{
	char path[4096];
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	if ((size_t)snprintf(path, sizeof(path), "%s/push-XXXXXX", dir) >=
	    sizeof(path))
		return gg_err_set(err, GG_ELIMIT, "spool path too long");
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return gg_err_errno(err, GG_EIO, "cannot create spool in %s",
				    dir);
	unlink(path);
	return fd;
}

int push_new(struct push **out, const char *cache_dir, bool gzip,
	     struct gg_err *err)
{
	char dir[4096];
	struct push *p;
	int fd;

	*out = NULL;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/tmp", cache_dir) >=
	    sizeof(dir))
		return gg_err_set(err, GG_ELIMIT, "cache_dir path too long");
	if (mkdir(cache_dir, 0700) != 0 && errno != EEXIST)
		return gg_err_errno(err, GG_EIO, "cannot create %s", cache_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return gg_err_errno(err, GG_EIO, "cannot create %s", dir);
	fd = spool_open(dir, err);
	if (fd < 0)
		return fd;
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	p->fd = fd;
	p->reserve = GG_SPOOL_RESERVE;
	p->parse_rc = GG_EAGAIN;
	rp_parser_init(&p->parser);
	rp_request_init(&p->req);
	pkt_buf_init(&p->header, GG_MAX_PUSH_HEADER);
	p->gzip = gzip;
	if (gzip) {
		/* 16 + MAX_WBITS: gzip framing only, as Content-Encoding
		 * promises. */
		if (inflateInit2(&p->z, 16 + MAX_WBITS) != Z_OK) {
			push_free(p);
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		}
		p->z_ready = true;
	}
	*out = p;
	return GG_OK;
}

static int first_pass(struct push *p);
static int open_mirror(struct push *p, struct gg_err *err);

static bool wants_content(const struct push *p, size_t i);

/* Content rules read trees and blobs, which only libgit2's index of the
 * pack gives: build it while the pack streams in, overlapping the
 * client's upload, when some command will be checked. Failing here only
 * means the pack is indexed from the spool later. */
static void start_indexing(struct push *p)
{
	size_t i;
	bool any = false;

	for (i = 0; i < p->req.ncommands; i++)
		any = any || wants_content(p, i);
	if (!any || !content_rules_active(&p->content))
		return;
	p->prep_ret = open_mirror(p, &p->prep_err);
	p->indexing = p->prep_ret == 0 && mirror_pack_begin(p->m, NULL) == 0;
}

/* The command list is complete: classify what needs no history and, with
 * a context, open the mirror and start scanning the pack as it arrives.
 * Only allocation failures are errors here; anything else is retried, or
 * fails closed, in push_decide. */
static int header_done(struct push *p)
{
	size_t i;
	bool any = false;

	rp_parser_detach(&p->req, &p->parser);
	if (p->req.ncommands == 0 || !p->has_ctx)
		return GG_OK;
	if (first_pass(p) != 0)
		return GG_ENOMEM;
	start_indexing(p);
	for (i = 0; i < p->req.ncommands; i++)
		any = any || p->need[i];
	if (!any)
		return GG_OK;
	if (!p->m)
		p->prep_ret = open_mirror(p, &p->prep_err);
	if (packscan_new(&p->scan, &p->prep_err) != 0)
		return GG_ENOMEM;
	return GG_OK;
}

/* Let the scanner see pack bytes while they stream in. Its errors are
 * sticky and only mean "inconclusive": push_decide then indexes. */
static void stream_pack(struct push *p, const unsigned char *data, size_t len)
{
	if (p->scan && len > 0)
		packscan_feed(p->scan, data, len, NULL);
	if (p->indexing && len > 0 &&
	    mirror_pack_append(p->m, data, len, NULL) != 0)
		p->indexing = false; /* abandoned: index from the spool */
}

void push_set_spool_reserve(struct push *p, uint64_t bytes)
{
	p->reserve = bytes;
}

/* Would len more bytes leave the filesystem below the reserve? Asked
 * before every write (one cheap syscall per chunk of at most 256 KiB):
 * checking only now and then let many concurrent pushes each write a
 * stretch unchecked, together past the reserve. */
static int check_space(struct push *p, size_t len, struct gg_err *err)
{
	struct statvfs st;
	uint64_t avail;

	if (fstatvfs(p->fd, &st) != 0)
		return gg_err_errno(err, GG_EIO, "spooling push");
	avail = (uint64_t)st.f_bavail * st.f_frsize;
	if (avail < p->reserve || avail - p->reserve < len)
		return gg_err_set(err, GG_ENOSPACE,
				  "not enough disk space to take the push "
				  "(cache_dir keeps %llu MiB free)",
				  (unsigned long long)(p->reserve >> 20));
	return GG_OK;
}

/* Write decoded bytes to the spool and let the parser see them while the
 * command section is still incomplete. */
static int spool_append(struct push *p, const unsigned char *data, size_t len,
			struct gg_err *err)
{
	size_t off = 0, used = 0;
	ssize_t n;
	int ret;

	if (len > GG_MAX_PUSH_BYTES - p->len)
		return gg_err_set(err, GG_ELIMIT, "push larger than %llu bytes",
				  (unsigned long long)GG_MAX_PUSH_BYTES);
	ret = check_space(p, len, err);
	if (ret)
		return ret;
	if (p->parse_rc == GG_EAGAIN) {
		p->parse_rc = rp_parser_feed(&p->parser, &used, data, len,
					     &p->parse_err);
		if (p->parse_rc != 0 && p->parse_rc != GG_EAGAIN)
			return gg_err_set(err, p->parse_rc, "%s",
					  p->parse_err.msg);
		if (p->parse_rc == 0) {
			if (header_done(p) != 0)
				return gg_err_set(err, GG_ENOMEM,
						  "out of memory");
			stream_pack(p, data + used, len - used);
		}
	} else if (p->parse_rc == 0) {
		stream_pack(p, data, len);
	}
	while (off < len) {
		n = write(p->fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gg_err_errno(err, GG_EIO, "spooling push");
		off += (size_t)n;
	}
	p->len += len;
	return GG_OK;
}

static int inflate_append(struct push *p, const void *data, size_t len,
			  struct gg_err *err)
{
	unsigned char buf[64 * 1024];
	int rc, ret;

	if (p->z_end)
		return len ? gg_err_set(err, GG_EINVAL,
					"data after the end of the gzip "
					"request body")
			   : GG_OK;
	p->z.next_in = (unsigned char *)data;
	p->z.avail_in = (uInt)len;
	do {
		p->z.next_out = buf;
		p->z.avail_out = sizeof(buf);
		rc = inflate(&p->z, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
			return gg_err_set(err, GG_EINVAL,
					  "corrupt gzip request body");
		ret = spool_append(p, buf, sizeof(buf) - p->z.avail_out, err);
		if (ret)
			return ret;
		if (rc == Z_STREAM_END) {
			p->z_end = true;
			if (p->z.avail_in)
				return gg_err_set(err, GG_EINVAL,
						  "data after the end of the "
						  "gzip request body");
			break;
		}
	} while (p->z.avail_in > 0 || p->z.avail_out == 0);
	return GG_OK;
}

int push_body(struct push *p, const void *data, size_t len,
	      struct gg_err *err)
{
	/* zlib counts in uInt: feed huge chunks in slices. */
	const size_t slice = 1u << 30;
	const unsigned char *d = data;
	int ret;

	if (!p->gzip)
		return spool_append(p, data, len, err);
	while (len > 0) {
		size_t n = len < slice ? len : slice;

		ret = inflate_append(p, d, n, err);
		if (ret)
			return ret;
		d += n;
		len -= n;
	}
	return GG_OK;
}

int push_spool_fd(const struct push *p)
{
	return p->fd;
}

uint64_t push_spool_len(const struct push *p)
{
	return p->len;
}

/* ---- classification and decision ------------------------------------ */

int push_set_ctx(struct push *p, const struct push_ctx *ctx,
		 struct gg_err *err)
{
	p->ctx = *ctx;
	p->ctx_strs[0] = strdup(ctx->cache_dir);
	p->ctx_strs[1] = strdup(ctx->repo);
	p->ctx_strs[2] = strdup(ctx->upstream_repo_url);
	if (!p->ctx_strs[0] || !p->ctx_strs[1] || !p->ctx_strs[2])
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	p->ctx.cache_dir = p->ctx_strs[0];
	p->ctx.repo = p->ctx_strs[1];
	p->ctx.upstream_repo_url = p->ctx_strs[2];
	p->has_ctx = true;
	return GG_OK;
}

static struct policy_rules rules_of(const struct token_claims *cl)
{
	struct policy_rules rules = {
		.patterns = (const char *const *)cl->branches,
		.npatterns = cl->nbranches,
		.allow_push = (cl->ops & TOKEN_OP_PUSH) != 0,
		.allow_force = cl->allow_force,
		.allow_delete = cl->allow_delete,
	};
	return rules;
}

static bool is_tag(const char *ref)
{
	return !strncmp(ref, "refs/tags/", 10);
}

static int refuse(struct push *p, size_t i, const char *reason)
{
	if (p->refusals[i])
		return GG_OK;
	p->refusals[i] = strdup(reason);
	return p->refusals[i] ? GG_OK : GG_ENOMEM;
}

/* Record which site rule refused command i (for the audit record). */
static int note_rule(struct push *p, size_t i, const char *rule,
		     const struct content_finding *f)
{
	struct site_refusal *w = &p->site_why[i];

	if (w->rule)
		return GG_OK;
	w->rule = strdup(rule);
	if (!w->rule)
		return GG_ENOMEM;
	if (!f)
		return GG_OK;
	w->path = f->path ? strdup(f->path) : NULL;
	w->commit = strdup(f->commit);
	w->line = f->line;
	memcpy(w->hash, f->hash, sizeof(w->hash));
	return (f->path && !w->path) || !w->commit ? GG_ENOMEM : GG_OK;
}

/* The site policy's rules for this repository, and with the token's
 * claims, the content rules. */
static int site_setup(struct push *p)
{
	const struct token_claims *cl = p->ctx.claims;
	struct gg_err e = GG_ERR_INIT;

	if (p->ctx.policy &&
	    sitepolicy_for_repo(&p->site, policysnap_policy(p->ctx.policy),
				p->ctx.repo, &e) != 0)
		return GG_ENOMEM;
	p->content.policy = p->site;
	p->content.db = p->ctx.policy ? policysnap_db(p->ctx.policy) : NULL;
	p->content.allow_paths = (const char *const *)cl->allow_paths;
	p->content.nallow_paths = cl->nallow_paths;
	p->content.emails = (const char *const *)cl->emails;
	p->content.nemails = cl->nemails;
	return GG_OK;
}

/* protected_refs: no token may touch them, whatever its claims. */
static int check_protected_ref(struct push *p, size_t i, bool *refused)
{
	const char *ref = p->req.commands[i].refname;
	char why[GG_MAX_REFNAME + 64];

	*refused = sitepolicy_ref_protected(p->site, ref);
	if (!*refused)
		return GG_OK;
	snprintf(why, sizeof(why), "%s is protected by site policy", ref);
	if (refuse(p, i, why) || note_rule(p, i, "protected_ref", NULL))
		return GG_ENOMEM;
	return GG_OK;
}

/* Everything decidable without history; sets need[i] for branch updates
 * whose fast-forwardness matters. */
static int first_pass(struct push *p)
{
	struct policy_rules rules = rules_of(p->ctx.claims);
	struct gg_err perr;
	size_t i, n = p->req.ncommands;
	bool prot;

	p->actions = calloc(n, sizeof(*p->actions));
	p->refusals = calloc(n, sizeof(*p->refusals));
	p->keep = calloc(n, sizeof(*p->keep));
	p->need = calloc(n, sizeof(*p->need));
	p->site_why = calloc(n, sizeof(*p->site_why));
	p->notes = calloc(n, sizeof(*p->notes));
	p->notes_more = calloc(n, sizeof(*p->notes_more));
	if (!p->actions || !p->refusals || !p->keep || !p->need ||
	    !p->site_why || !p->notes || !p->notes_more || site_setup(p) != 0)
		return GG_ENOMEM;
	for (i = 0; i < n; i++) {
		const struct rp_command *c = &p->req.commands[i];

		switch (rp_command_kind(c)) {
		case RP_CREATE:
			p->actions[i] = POLICY_CREATE;
			break;
		case RP_DELETE:
			p->actions[i] = POLICY_DELETE;
			break;
		default:
			/* Moving an existing tag is a rewrite, whatever the
			 * commit graph says. */
			p->actions[i] = is_tag(c->refname) ? POLICY_FORCE
							   : POLICY_UPDATE;
			p->need[i] = !is_tag(c->refname);
			break;
		}
		gg_err_init(&perr);
		if (check_protected_ref(p, i, &prot) != 0)
			return GG_ENOMEM;
		if (prot) {
			p->need[i] = false; /* refused whatever its ancestry */
		} else if (p->req.caps.push_options) {
			/* Server-side automation can act on other branches
			 * (GitLab: -o merge_request.target=main with
			 * merge_when_pipeline_succeeds), beyond what the
			 * token grants; gitgate does not advertise them. */
			p->need[i] = false;
			if (refuse(p, i, "push options (git push -o) are not "
					 "allowed through gitgate"))
				return GG_ENOMEM;
		} else if (policy_decide(&rules, c->refname, p->actions[i],
					 &perr) != 0) {
			/* Refused whatever its ancestry: no history is read
			 * (nor fetched) for it, so its audit action stays
			 * "update" even for a rewrite. */
			p->need[i] = false;
			if (refuse(p, i, perr.msg))
				return GG_ENOMEM;
		}
	}
	return GG_OK;
}

static int refresh(struct push *p, struct gg_err *err)
{
	int ret;

	struct cred_want want = { p->ctx.repo, CRED_READ, false };
	struct cred_lease *lease = NULL;

	p->fetched = true;
	ret = p->ctx.cred ? cred_get(p->ctx.cred, &want, &lease, NULL, err)
			  : gg_err_set(err, GG_EUPSTREAM,
				       "no upstream credential");
	if (ret == GG_OK)
		ret = mirror_fetch(p->m, p->ctx.upstream_repo_url,
				   cred_lease_secret(lease), err);
	cred_lease_free(lease);
	p->fetch_failed = ret != 0;
	return ret;
}

/* Open (or create, empty) the mirror. It is refreshed only when a walk
 * needs a commit it lacks: an update's new commits usually lead to old
 * inside the pack itself, so most pushes never wait for a fetch, not
 * even the first one to a repository. */
static int open_mirror(struct push *p, struct gg_err *err)
{
	if (p->m)
		return GG_OK;
	return mirror_open(&p->m, p->ctx.cache_dir, p->ctx.repo, err);
}

/* Each walk of the mirror's history costs up to its whole length, and a
 * push names as many (old, new) pairs as it likes: cap them per push. */
static int charge_walk(struct push *p, struct gg_err *err)
{
	if (++p->walks <= GG_MAX_HISTORY_WALKS)
		return GG_OK;
	return gg_err_set(err, GG_ELIMIT,
			  "more than %d history checks in one push (push fewer "
			  "branches at once)",
			  GG_MAX_HISTORY_WALKS);
}

/* Where the scanned pack's commits end: ask the mirror. */
static int outside_mirror(void *payload, const char *old_hex,
			  const unsigned char *oids, size_t n, bool *descends,
			  struct gg_err *err)
{
	struct push *p = payload;
	int ret = charge_walk(p, err);

	return ret ? ret : mirror_reaches(descends, p->m, old_hex, oids, n,
					  err);
}

static int classify_one(struct push *p, size_t i, struct gg_err *err)
{
	const struct rp_command *c = &p->req.commands[i];
	bool ff;
	int ret;

	if (p->scan)
		ret = packscan_descends(&ff, p->scan, c->old_oid, c->new_oid,
					outside_mirror, p, err);
	else if ((ret = charge_walk(p, err)) == 0)
		ret = mirror_is_ancestor(&ff, p->m, c->old_oid, c->new_oid,
					 err);
	if (ret == 0)
		p->actions[i] = ff ? POLICY_UPDATE : POLICY_FORCE;
	return ret;
}

/* update or force for each command in need[]: from the scanned pack's
 * commits and the mirror, or (no scan) from the mirror with the pack
 * indexed into it. */
static int ancestry(struct push *p, struct gg_err *err)
{
	size_t i;
	int ret = GG_OK;

	for (i = 0; ret == 0 && i < p->req.ncommands; i++)
		if (p->need[i])
			ret = classify_one(p, i, err);
	return ret;
}

/* Thin-pack bases and commits the scanner reads from the mirror. */
static int lookup_mirror(void *payload, const unsigned char *oid, int *type,
			 unsigned char **data, size_t *len)
{
	return mirror_read(payload, oid, type, data, len);
}

struct scan_feed {
	struct packscan *scan;
	struct gg_err *err;
};

static int feed_scan(void *payload, const void *buf, size_t len)
{
	struct scan_feed *f = payload;

	return packscan_feed(f->scan, buf, len, f->err);
}

static int copy_spool(struct push *p, uint64_t off,
		      int (*write)(void *, const void *, size_t),
		      void *payload, struct gg_err *err);

/* Scan the spooled pack now (no context came before the body). */
static int scan_spool(struct push *p, struct gg_err *err)
{
	struct scan_feed f = { NULL, err };
	int ret = packscan_new(&p->scan, err);

	if (ret)
		return ret;
	f.scan = p->scan;
	return copy_spool(p, p->req.header_len, feed_scan, &f, err);
}

/* The scan could not settle the push (ret, why): may the pack go to full
 * indexing? Returns ret if so; else a final error with err set, when the
 * scan hit one of its limits or saw what indexing could not bear
 * (libgit2 holds about 140 bytes per object, and whole objects). */
static int index_refusal(const struct packscan *s, int ret,
			 const struct gg_err *why, struct gg_err *err)
{
	if (!s)
		return gg_err_set(err, GG_ERR, "pushed pack was not scanned");
	if (packscan_limited(s))
		return gg_err_set(err, GG_ELIMIT,
				  "pack beyond what gitgate inspects (a commit "
				  "over %d MiB, or too many objects): %s",
				  GG_MAX_SCAN_OBJECT >> 20, why->msg);
	if (packscan_nobjects(s) > GG_MAX_INDEX_OBJECTS)
		return gg_err_set(err, GG_ELIMIT,
				  "pack of %u objects too large to inspect "
				  "(the scan could not settle it; limit %u)",
				  packscan_nobjects(s), GG_MAX_INDEX_OBJECTS);
	if (packscan_max_object(s) > GG_MAX_INDEX_OBJECT_SIZE)
		return gg_err_set(err, GG_ELIMIT,
				  "pack with an object over %d MiB too large "
				  "to inspect (the scan could not settle it)",
				  (int)(GG_MAX_INDEX_OBJECT_SIZE >> 20));
	return ret;
}

/*
 * The fast path: ancestry from the pack's commits (scanned as they
 * streamed in) and the mirror. Whatever it cannot establish - a corrupt or
 * unusual pack, a commit it could not find even after a refresh - it
 * leaves to full indexing (index_and_walk), so it never decides on less
 * than libgit2 would. Final (err set, fail closed): a failed refresh
 * (without upstream's history neither path can decide), a limit hit by
 * the walks, and what index_refusal refuses.
 */
static int scan_ancestry(struct push *p, struct gg_err *err)
{
	struct gg_err e = GG_ERR_INIT;
	int ret = p->scan ? GG_OK : scan_spool(p, &e);

	if (ret == 0)
		ret = packscan_finish(p->scan, &e);
	if (ret == 0)
		ret = packscan_resolve(p->scan, p->fd, p->req.header_len,
				       lookup_mirror, p->m, &e);
	if (ret == 0)
		ret = ancestry(p, &e);
	if (ret == GG_ENOTFOUND && !p->fetched) {
		/* History may run through commits the pack leaves out because
		 * upstream has them (another branch), or a thin delta's base
		 * may be new upstream: refresh, resolve and walk again. */
		gg_err_init(&e);
		ret = refresh(p, &e);
		if (ret == 0)
			ret = packscan_resolve(p->scan, p->fd, p->req.header_len,
					       lookup_mirror, p->m, &e);
		if (ret == 0)
			ret = ancestry(p, &e);
	}
	if (ret && (p->fetch_failed || e.code == GG_ELIMIT))
		gg_err_set(err, ret, "%s", e.msg); /* final: fail closed */
	else if (ret)
		ret = index_refusal(p->scan, ret, &e, err);
	if (ret && !err->code)
		log_info("push to %s: pack scan inconclusive (%s); indexing "
			 "the pack", p->ctx.repo, e.msg);
	packscan_free(p->scan);
	p->scan = NULL;
	return ret;
}

/* Attach the pushed pack, indexed by libgit2, to the mirror handle (once):
 * the index built while it streamed in, else one from the spool. A thin
 * pack's missing bases are fetched once. */
static int attach_pushed_pack(struct push *p, struct gg_err *err)
{
	uint64_t pack_len = p->len - p->req.header_len;
	int ret = GG_ENOTFOUND;

	if (mirror_has_pack(p->m) || pack_len == 0)
		return GG_OK;
	if (p->indexing) {
		p->indexing = false;
		ret = mirror_pack_commit(p->m, err);
		if (ret == 0)
			return GG_OK;
		gg_err_init(err); /* indexed again below, told apart there */
	}
	ret = mirror_add_pack(p->m, p->fd, p->req.header_len, pack_len, err);
	if (ret == GG_ENOTFOUND && !p->fetched) {
		gg_err_init(err);
		ret = refresh(p, err);
		if (ret == 0)
			ret = mirror_add_pack(p->m, p->fd, p->req.header_len,
					      pack_len, err);
	}
	if (ret == GG_EINVAL && !p->pack_error)
		p->pack_error = strdup(err->msg);
	return ret;
}

/* The slow, complete path: index the whole pack into the mirror handle
 * with libgit2 (thin bases from the mirror) and ask the commit graph. */
static int index_and_walk(struct push *p, struct gg_err *err)
{
	int ret = attach_pushed_pack(p, err);

	if (ret == 0)
		ret = ancestry(p, err);
	if (ret != 0 && ret != GG_EINVAL && !p->fetched && !p->pack_error) {
		gg_err_init(err);
		ret = refresh(p, err);
		if (ret == 0)
			ret = ancestry(p, err);
	}
	return ret;
}

/* Establish update-vs-force for the commands in need[]. */
static int classify_with_mirror(struct push *p, struct gg_err *err)
{
	int ret;

	if (p->prep_ret)
		return gg_err_set(err, p->prep_ret, "%s", p->prep_err.msg);
	ret = open_mirror(p, err); /* no-op when opened early */
	if (ret)
		return ret;
	ret = scan_ancestry(p, err);
	if (ret == 0 || err->code != 0) /* settled, or final */
		return ret;
	return index_and_walk(p, err);
}

static int check_content(struct push *p);

static int decide_commands(struct push *p)
{
	struct policy_rules rules = rules_of(p->ctx.claims);
	struct gg_err perr, merr = GG_ERR_INIT;
	char why[GG_ERR_MSG_MAX + 64];
	bool any = false;
	size_t i, n = p->req.ncommands;

	for (i = 0; i < n; i++)
		any = any || p->need[i];
	if (any && classify_with_mirror(p, &merr) != 0) {
		log_warnx("push to %s: cannot classify: %s", p->ctx.repo,
			  merr.msg);
		snprintf(why, sizeof(why), "gitgate could not check history: %s",
			 merr.msg);
		for (i = 0; i < n; i++) {
			if (!p->need[i] || p->refusals[i])
				continue;
			/* Fail closed unless a force-push would be allowed
			 * anyway; then record the worst case. */
			p->actions[i] = POLICY_FORCE;
			if (!rules.allow_force && refuse(p, i, why))
				return GG_ENOMEM;
		}
	}
	for (i = 0; i < n; i++) {
		gg_err_init(&perr);
		if (!p->refusals[i] &&
		    policy_decide(&rules, p->req.commands[i].refname,
				  p->actions[i], &perr) != 0 &&
		    refuse(p, i, perr.msg))
			return GG_ENOMEM;
	}
	return check_content(p);
}

/* ---- content rules ------------------------------------------------- */

/* Does command i carry commits the content rules must see? */
static bool wants_content(const struct push *p, size_t i)
{
	return !p->refusals[i] && p->actions[i] != POLICY_DELETE;
}

/* Attach the pushed pack to the mirror handle (trees and blobs come from
 * it), fetching once when the mirror lacks a thin pack's bases. */
static int attach_for_content(struct push *p, struct gg_err *err)
{
	int ret = p->prep_ret ? gg_err_set(err, p->prep_ret, "%s",
					   p->prep_err.msg)
			      : open_mirror(p, err);

	return ret ? ret : attach_pushed_pack(p, err);
}

/* Per command: its findings, or why it could not be checked. */
struct content_result {
	struct content_findings f;
	int ret;
	struct gg_err err;
};

static void results_release(struct content_result *res, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		content_findings_release(&res[i].f);
		res[i].ret = GG_OK;
		gg_err_init(&res[i].err);
	}
}

/* Check every command that carries commits. True when a fresher mirror
 * could change an answer: a missing object, or a finding (which may be
 * in a commit upstream got meanwhile, from someone else). */
static bool content_pass(struct push *p, struct content_result *res)
{
	struct content_check *cc = NULL;
	struct gg_err e = GG_ERR_INIT;
	int made = content_check_new(&cc, mirror_repo(p->m), &p->content, &e);
	bool again = false;
	size_t i;

	for (i = 0; i < p->req.ncommands; i++) {
		const struct rp_command *c = &p->req.commands[i];

		if (!wants_content(p, i))
			continue;
		if (made != 0) {
			res[i].ret = made;
			res[i].err = e;
			continue;
		}
		res[i].ret = content_check_ref(cc, c->old_oid, c->new_oid, NULL,
					       &res[i].f, &res[i].err);
		again = again || res[i].ret == GG_ENOTFOUND || res[i].f.n > 0;
	}
	content_check_free(cc);
	return again;
}

/* Every finding kept of a ref, one per line, for the remote: lines (those
 * not kept are counted in notes_more). */
static char *join_findings(const struct content_findings *f)
{
	size_t i, len = 1;
	char *out, *w;

	for (i = 0; i < f->n; i++)
		len += strlen(f->v[i].reason) + 1;
	out = malloc(len);
	if (!out)
		return NULL;
	w = out;
	*w = '\0';
	for (i = 0; i < f->n; i++)
		w += snprintf(w, len - (size_t)(w - out), "%s\n",
			      f->v[i].reason);
	return out;
}

static int apply_content(struct push *p, size_t i,
			 const struct content_result *r)
{
	const struct content_finding *first = &r->f.v[0];
	char why[GG_ERR_MSG_MAX + 48];

	if (r->ret) {
		log_warnx("push to %s: cannot check content of %s: %s",
			  p->ctx.repo, p->req.commands[i].refname, r->err.msg);
		snprintf(why, sizeof(why), "gitgate could not check content: %s",
			 r->err.msg);
		return refuse(p, i, why) ||
				       note_rule(p, i, "content_check", NULL)
			       ? GG_ENOMEM
			       : GG_OK;
	}
	if (r->f.n == 0)
		return GG_OK;
	log_info("push to %s: %s refused: %s", p->ctx.repo,
		 p->req.commands[i].refname, first->reason);
	p->notes[i] = r->f.n > 1 || r->f.more ? join_findings(&r->f) : NULL;
	if ((r->f.n > 1 || r->f.more) && !p->notes[i])
		return GG_ENOMEM;
	p->notes_more[i] = r->f.more;
	return refuse(p, i, first->reason) ||
			       note_rule(p, i, first->rule, first)
		       ? GG_ENOMEM
		       : GG_OK;
}

/*
 * The site policy's content rules on every new commit of every command
 * still allowed. New means not reachable from the mirror's refs: when
 * the first pass finds anything (or misses an object) and the mirror was
 * not refreshed for this push, it is refreshed and the check run again,
 * so a stale mirror can never turn upstream's own commits into findings.
 * Anything that cannot be evaluated refuses the command (fail closed).
 */
static int check_content(struct push *p)
{
	struct content_result *res;
	struct gg_err e = GG_ERR_INIT;
	size_t i, n = p->req.ncommands;
	bool any = false;
	int ret = GG_OK;

	for (i = 0; i < n; i++)
		any = any || wants_content(p, i);
	if (!any || !content_rules_active(&p->content))
		return GG_OK;
	res = calloc(n, sizeof(*res));
	if (!res)
		return GG_ENOMEM;
	if (attach_for_content(p, &e) != 0) {
		for (i = 0; i < n; i++) {
			res[i].ret = wants_content(p, i) ? e.code : GG_OK;
			res[i].err = e;
		}
	} else if (content_pass(p, res) && !p->fetched &&
		   refresh(p, &e) == 0) {
		results_release(res, n);
		content_pass(p, res);
	}
	for (i = 0; ret == 0 && i < n; i++)
		if (wants_content(p, i))
			ret = apply_content(p, i, &res[i]);
	results_release(res, n);
	free(res);
	return ret;
}

/* What goes upstream: the body as is, a rewritten one, or nothing. */
static int plan_forward(struct push *p, struct gg_err *err)
{
	size_t i, n = p->req.ncommands;

	p->nkept = 0;
	for (i = 0; i < n; i++) {
		p->keep[i] = p->refusals[i] == NULL;
		p->nkept += p->keep[i];
	}
	if (p->nkept == 0 || (p->req.caps.atomic && p->nkept < n)) {
		p->nkept = 0;
		return GG_OK;
	}
	if (p->nkept == n) {
		p->forward_raw = true;
		return GG_OK;
	}
	p->forward_pack = rp_pack_expected(&p->req, p->keep) &&
			  p->len > p->req.header_len;
	return rp_serialize(&p->header, &p->req, p->keep, NULL, err);
}

static int decide(struct push *p, const struct push_ctx *ctx,
		  struct gg_err *err)
{
	int ret;

	if (p->gzip && !p->z_end)
		return gg_err_set(err, GG_EINVAL,
				  "truncated gzip request body");
	if (!p->has_ctx) {
		if (!ctx)
			return gg_err_set(err, GG_EINVAL, "no push context");
		ret = push_set_ctx(p, ctx, err);
		if (ret)
			return ret;
	}
	if (p->parse_rc == GG_EAGAIN) {
		p->parse_rc = rp_parser_finish(&p->parser, &p->parse_err);
		if (p->parse_rc == 0 && header_done(p) != 0)
			return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	if (p->parse_rc != 0)
		return gg_err_set(err, GG_EINVAL, "%s", p->parse_err.msg);
	if (p->req.ncommands > 0 && !p->need && first_pass(p) != 0)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	if (p->req.ncommands > 0) {
		if (decide_commands(p) != 0)
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		ret = plan_forward(p, err);
		if (ret)
			return ret;
	}
	p->decided = true;
	return GG_OK;
}

int push_decide(struct push *p, const struct push_ctx *ctx,
		struct gg_err *err)
{
	int ret = decide(p, ctx, err);

	push_end_inspection(p);
	return ret;
}

void push_end_inspection(struct push *p)
{
	if (!p)
		return;
	mirror_close(p->m);
	p->m = NULL;
	packscan_free(p->scan);
	p->scan = NULL;
}

bool push_is_probe(const struct push *p)
{
	return p->decided && p->req.ncommands == 0;
}

/* Nothing is forwarded unless push_decide succeeded. */
uint64_t push_forward_len(const struct push *p)
{
	if (!p->decided)
		return 0;
	if (push_is_probe(p) || p->forward_raw)
		return p->len;
	if (p->nkept == 0)
		return 0;
	return p->header.len +
	       (p->forward_pack ? p->len - p->req.header_len : 0);
}

static int copy_spool(struct push *p, uint64_t off,
		      int (*write)(void *, const void *, size_t),
		      void *payload, struct gg_err *err)
{
	unsigned char buf[64 * 1024];
	ssize_t n;

	while (off < p->len) {
		n = pread(p->fd, buf, sizeof(buf), (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return gg_err_errno(err, GG_EIO, "reading push spool");
		if (write(payload, buf, (size_t)n) != 0)
			return gg_err_set(err, GG_EUPSTREAM,
					  "upstream stopped reading");
		off += (uint64_t)n;
	}
	return GG_OK;
}

int push_forward_write(struct push *p,
		       int (*write)(void *payload, const void *buf, size_t len),
		       void *payload, struct gg_err *err)
{
	if (!p->decided)
		return gg_err_set(err, GG_EINVAL, "push not decided");
	if (push_is_probe(p) || p->forward_raw)
		return copy_spool(p, 0, write, payload, err);
	if (p->nkept == 0)
		return GG_OK;
	if (write(payload, p->header.data, p->header.len) != 0)
		return gg_err_set(err, GG_EUPSTREAM,
				  "upstream stopped reading");
	if (!p->forward_pack)
		return GG_OK;
	return copy_spool(p, p->req.header_len, write, payload, err);
}

/* ---- response ------------------------------------------------------ */

static int fill_audit(struct push *p, const struct report_result *res)
{
	size_t i, n = p->req.ncommands;

	p->arefs = calloc(n, sizeof(*p->arefs));
	p->results = calloc(n, sizeof(*p->results));
	if (!p->arefs || !p->results)
		return GG_ENOMEM;
	for (i = 0; i < n; i++) {
		p->results[i] = strdup(res[i].ok ? "ok"
						 : res[i].reason ? res[i].reason
								 : "refused");
		if (!p->results[i])
			return GG_ENOMEM;
		p->arefs[i].ref = p->req.commands[i].refname;
		p->arefs[i].old = p->req.commands[i].old_oid;
		p->arefs[i].new = p->req.commands[i].new_oid;
		p->arefs[i].action = policy_action_name(p->actions[i]);
		p->arefs[i].result = p->results[i];
		if (p->site_why) {
			const struct site_refusal *w = &p->site_why[i];

			p->arefs[i].rule = w->rule;
			p->arefs[i].path = w->path;
			p->arefs[i].commit = w->commit;
			p->arefs[i].line = w->line;
			p->arefs[i].hash = w->hash[0] ? w->hash : NULL;
		}
		/* refused by gitgate itself (not upstream, not an atomic
		 * push's collateral): by a site rule, else by the token */
		if (p->refusals[i])
			metrics_policy_refused(p->site_why
						       ? p->site_why[i].rule
						       : NULL);
	}
	return GG_OK;
}

int push_respond(unsigned char **out, size_t *outlen,
		 const struct audit_ref **refs, size_t *nrefs, struct push *p,
		 const void *upstream, size_t upstream_len,
		 const char *upstream_error, struct gg_err *err)
{
	struct report rep;
	struct report_result *res = NULL;
	struct report_merge m;
	struct pkt_buf buf;
	struct gg_err perr = GG_ERR_INIT;
	char why[GG_ERR_MSG_MAX + 48];
	int ret;

	*out = NULL;
	*outlen = 0;
	report_init(&rep);
	pkt_buf_init(&buf, 2 * GG_MAX_REPORT_LEN);
	res = calloc(p->req.ncommands ? p->req.ncommands : 1, sizeof(*res));
	if (!res) {
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	if (upstream && !upstream_error &&
	    report_parse(&rep, upstream, upstream_len,
			 report_flags(&p->req.caps), &perr) != 0) {
		log_warnx("unreadable receive-pack reply from upstream: %s",
			  perr.msg);
		snprintf(why, sizeof(why), "unreadable reply from upstream");
		upstream_error = why;
	}
	memset(&m, 0, sizeof(m));
	m.req = &p->req;
	m.refusals = (const char *const *)p->refusals;
	m.notes = (const char *const *)p->notes;
	m.notes_more = p->notes_more;
	m.upstream = upstream && !upstream_error ? &rep : NULL;
	m.upstream_error = upstream_error;
	m.local_unpack_error = upstream ? NULL : p->pack_error;
	m.results = res;
	ret = report_merge(&buf, &m, err);
	if (ret)
		goto out;
	if (fill_audit(p, res) != 0) {
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	*out = pkt_buf_detach(&buf, outlen);
	*refs = p->arefs;
	*nrefs = p->req.ncommands;
out:
	free(res);
	pkt_buf_release(&buf);
	report_release(&rep);
	return ret;
}

const char *push_refusal_summary(const struct push *p)
{
	size_t i;

	for (i = 0; i < p->req.ncommands; i++)
		if (p->refusals && p->refusals[i])
			return p->refusals[i];
	return NULL;
}

void push_free(struct push *p)
{
	size_t i;

	if (!p)
		return;
	close(p->fd);
	if (p->z_ready)
		inflateEnd(&p->z);
	for (i = 0; i < p->req.ncommands; i++) {
		if (p->refusals)
			free(p->refusals[i]);
		if (p->results)
			free(p->results[i]);
		if (p->site_why) {
			free(p->site_why[i].rule);
			free(p->site_why[i].path);
			free(p->site_why[i].commit);
		}
		free(p->notes ? p->notes[i] : NULL);
	}
	free(p->site_why);
	free(p->notes);
	free(p->notes_more);
	sitepolicy_rules_free(p->site);
	free(p->refusals);
	free(p->results);
	free(p->pack_error);
	free(p->need);
	mirror_close(p->m);
	packscan_free(p->scan);
	for (i = 0; i < 3; i++)
		free(p->ctx_strs[i]);
	free(p->arefs);
	free(p->actions);
	free(p->keep);
	pkt_buf_release(&p->header);
	rp_request_release(&p->req);
	rp_parser_release(&p->parser);
	free(p);
}

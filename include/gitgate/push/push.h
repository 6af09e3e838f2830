/*
 * push.h - one receive-pack request from spool to verdict.
 *
 * Life cycle (src/http/receive.c drives it):
 *   push_new            spool file created (unlinked at once: nothing is
 *                       left behind whatever happens)
 *   push_set_ctx        (optional, before the body) lets inspection start
 *                       as soon as the command list is parsed: the pack's
 *                       commits are read (packscan) while it streams in,
 *                       overlapping the client's upload
 *   push_body ...       body appended (gzip request bodies inflated), the
 *                       command section parsed as it streams by
 *   push_decide         every command classified (create / update / force /
 *                       delete; ancestry from the pack's commits and the
 *                       mirror, which is fetched only when the walk needs
 *                       a commit it lacks; full libgit2 indexing when the
 *                       scan is inconclusive) and checked against the
 *                       token; fails closed
 *   push_forward_len    what, if anything, goes upstream (the original body,
 *   push_forward_write  or a rewritten command list + the same pack)
 *   push_respond        upstream's reply merged with local refusals into
 *                       the body the client gets
 *   push_free
 */
#ifndef GITGATE_PUSH_H
#define GITGATE_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/audit/audit.h"
#include "gitgate/core/err.h"
#include "gitgate/token/token.h"

struct policysnap;
struct cred;

struct push;

struct push_ctx {
	const char *cache_dir;
	const char *repo;              /* "owner/name" */
	const char *upstream_repo_url; /* <upstream.url>/owner/name.git */
	struct cred *cred;             /* upstream credential, for mirror
					* refreshes (a read token) */
	const struct token_claims *claims;
	/* The site policy in force (policystate.h), or NULL for none. Borrowed:
	 * the caller holds a reference for the push's whole life. */
	const struct policysnap *policy;
};

int push_new(struct push **out, const char *cache_dir, bool gzip,
	     struct gg_err *err);
void push_free(struct push *p);

/* Give the context before the body arrives (see above). Strings are
 * copied; claims and cred are borrowed and must outlive the push. */
int push_set_ctx(struct push *p, const struct push_ctx *ctx,
		 struct gg_err *err);

/* Append a chunk of the request body. GG_ELIMIT past GG_MAX_PUSH_BYTES,
 * GG_ENOSPACE when spooling would eat into the disk reserve,
 * GG_EINVAL for a corrupt gzip stream or malformed command section. */
int push_body(struct push *p, const void *data, size_t len,
	      struct gg_err *err);

/* Free bytes to keep on the spool's filesystem (GG_SPOOL_RESERVE unless
 * set; tests set it to provoke GG_ENOSPACE). */
void push_set_spool_reserve(struct push *p, uint64_t bytes);

/* Decide every command. GG_EINVAL if the request is malformed (err says
 * why: answer 400); otherwise 0, with refusals recorded per command.
 * ctx may be NULL when push_set_ctx was called. */
int push_decide(struct push *p, const struct push_ctx *ctx,
		struct gg_err *err);

/* Close the mirror and remove the pushed pack's temporary index (done by
 * push_decide on every path; call it when a push is refused before
 * push_decide, e.g. for a bad body), so nothing is left in the cache once
 * the client has its answer. Idempotent. */
void push_end_inspection(struct push *p);

/* True when the request had no commands (git's "0000" probe): forward it
 * untouched and relay the answer as is. */
bool push_is_probe(const struct push *p);

/* Bytes to send upstream, 0 when nothing goes upstream (everything was
 * refused, or an atomic push had a refusal). */
uint64_t push_forward_len(const struct push *p);

/* Write the forwarded body through write(payload, buf, len) (nonzero return
 * stops it). */
int push_forward_write(struct push *p,
		       int (*write)(void *payload, const void *buf, size_t len),
		       void *payload, struct gg_err *err);

/*
 * Build the client's response body (*out malloc'd, *outlen bytes) from
 * upstream's reply (NULL when nothing was forwarded) or upstream_error
 * (non-NULL when the forward failed), and fill the per-ref audit records
 * (*refs borrowed from p, valid until push_free).
 */
int push_respond(unsigned char **out, size_t *outlen,
		 const struct audit_ref **refs, size_t *nrefs, struct push *p,
		 const void *upstream, size_t upstream_len,
		 const char *upstream_error, struct gg_err *err);

/* Summary for the audit record's reason: NULL when every ref was allowed,
 * else the first refusal's reason. Borrowed from p. */
const char *push_refusal_summary(const struct push *p);

/* Raw body (for probes): the spool's fd and length. */
int push_spool_fd(const struct push *p);
uint64_t push_spool_len(const struct push *p);

#endif

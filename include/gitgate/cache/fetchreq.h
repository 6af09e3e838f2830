/*
 * fetchreq.h - what an upload-pack request asks for, read by the fetch
 * cache to decide whether gitgate's mirror may answer it. Pure: no I/O.
 *
 * The cache only needs the wants (what the client will be sent) and
 * whether the request is a pack request at all; everything else (haves,
 * shallow, deepen, filter, capabilities) is git upload-pack's business
 * and passes through untouched. Anything this reader does not understand
 * makes the request "not cacheable", and the proxy relays it upstream as
 * it always did: the cache never guesses.
 */
#ifndef GITGATE_FETCHREQ_H
#define GITGATE_FETCHREQ_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"

enum fetchreq_kind {
	FETCHREQ_PACK,	 /* v0/v1 negotiation, or v2 command=fetch */
	FETCHREQ_OTHER	 /* v2 ls-refs, object-info, ...: relay it */
};

struct fetchreq {
	enum fetchreq_kind kind;
	unsigned char *wants; /* nwants 20-byte object ids, in order */
	size_t nwants;
	/* v2 want-ref names a ref, not an object: only upstream can say
	 * what it points at now, so such a request is relayed. */
	bool want_ref;
};

/*
 * Read body (the decoded request, see fetchreq_gunzip) as protocol
 * version (0, 1 or 2; from the client's Git-Protocol header). GG_EINVAL
 * for malformed pkt-lines or want lines, GG_ELIMIT past
 * GG_MAX_CACHE_WANTS wants. Release with fetchreq_release.
 */
int fetchreq_parse(struct fetchreq *out, const unsigned char *body,
		   size_t len, int version, struct gg_err *err);
void fetchreq_release(struct fetchreq *r);

/*
 * Inflate a gzip body (git compresses upload-pack requests over 1 KiB)
 * into *out (malloc'd, caller frees), at most max bytes: GG_ELIMIT past
 * it, GG_EINVAL for a corrupt or truncated stream.
 */
int fetchreq_gunzip(unsigned char **out, size_t *outlen,
		    const unsigned char *in, size_t inlen, size_t max,
		    struct gg_err *err);

/* The protocol version a Git-Protocol header value asks for ("version=2",
 * possibly among other colon-separated keys): 2, 1, or 0 (also for NULL
 * or anything unrecognised, as git itself treats it). */
int fetchreq_version(const char *git_protocol);

#endif

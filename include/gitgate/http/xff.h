/*
 * xff.h - the client's address behind trusted proxies: X-Forwarded-For
 * read the one way that a client cannot spoof. Pure: no I/O, no
 * libmicrohttpd; the gate passes the header values in.
 *
 * Only a peer (the connection's address) in the trusted list may name
 * the client; from any other peer the header is ignored, whatever it
 * says. Several X-Forwarded-For headers are one list, joined in order
 * with commas (RFC 7230 3.2.2). Each proxy appends the address it saw
 * on the right, so the list is walked from the right: the first address
 * that is not itself a trusted proxy is the client; everything left of
 * it was written by that client and is never read. If every address is
 * a trusted proxy, the leftmost is the client.
 *
 * Elements are IP addresses as cidr_addr_parse reads them, with
 * optional spaces or tabs around; empty elements are skipped (RFC 7230
 * 7). Any element the walk reaches that is not an address ("unknown",
 * "1.2.3.4:80", "[::1]"), or a list with no address at all, is
 * malformed: the request is then refused rather than attributed to a
 * guess (fail closed).
 */
#ifndef GITGATE_HTTP_XFF_H
#define GITGATE_HTTP_XFF_H

#include <stddef.h>

#include "gitgate/core/cidr.h"
#include "gitgate/core/err.h"

/*
 * The client address of a request from peer carrying the nvalues
 * X-Forwarded-For header values (in the order received; nvalues may be
 * 0), given the trusted networks. GG_OK with *out set (to peer when the
 * header does not count), or GG_EINVAL with err->msg
 * "malformed X-Forwarded-For: ..." and *out untouched.
 */
int xff_resolve(struct cidr_addr *out, const struct cidr_addr *peer,
		const char *const *values, size_t nvalues,
		const struct cidr *trusted, size_t ntrusted,
		struct gg_err *err);

#endif

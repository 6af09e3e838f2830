/*
 * cachefetch.h - upload-pack requests with the fetch cache on (internal
 * to src/http; see request.h and gitgate/cache/cache.h).
 *
 * The body is held (up to GG_MAX_CACHE_BODY) instead of streamed
 * upstream, so that its wants can be read; then the request is answered
 * from the mirror (hit, miss) or relayed upstream with the held body
 * (bypass). A body over the limit is relayed as it arrives. Either way the
 * audit line carries "cache" and "upstream_bytes".
 */
#ifndef GITGATE_HTTP_CACHEFETCH_H
#define GITGATE_HTTP_CACHEFETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/http/request.h"

/* Is req a pack request the cache takes (cache on, POST upload-pack)? */
bool cachefetch_applies(const struct request *req);
/* Start holding the body (state REQ_CACHE_BODY), or relay at once when
 * its declared length is over the limit. */
enum MHD_Result cachefetch_begin(struct request *req);
void cachefetch_chunk(struct request *req, const char *data, size_t len);
/* The whole body is in: decide and answer. */
enum MHD_Result cachefetch_done(struct request *req);
/* What the request holds of the cache (request_free). */
void cachefetch_release(struct request *req);

#endif

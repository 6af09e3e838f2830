/*
 * receive.h - the push flow (internal to src/http; see request.h).
 *
 * A receive-pack body is spooled to disk while push.c inspects it (command
 * list, pack, upstream's refs through the mirror); once the whole body is
 * in, the push is decided, the token checked again, what may land is
 * forwarded upstream, and upstream's report is merged with gitgate's own
 * refusals into the one answer git reads. Nothing goes upstream before the
 * decision.
 */
#ifndef GITGATE_HTTP_RECEIVE_H
#define GITGATE_HTTP_RECEIVE_H

#include <stddef.h>

#include "gitgate/http/request.h"

/* An admitted push: check its framing and start spooling it (state
 * REQ_SPOOL_BODY), or refuse it (REQ_ANSWERED). */
enum MHD_Result receive_begin(struct request *req);

/* The next part of the body. A body that cannot be taken is remembered
 * (body_failed) and the rest discarded, to be refused by receive_done. */
void receive_chunk(struct request *req, const char *data, size_t len);

/* The whole body is in: decide, forward, and answer. */
enum MHD_Result receive_done(struct request *req);

#endif

/*
 * gate.h - the token gate: what a request must pass before anything goes
 * upstream (internal to src/http; see request.h for the pipeline).
 *
 * In order: headers gitgate and upstream could read differently (repeated,
 * control characters, ambiguous body framing) -> a malformed
 * X-Forwarded-For from a trusted proxy (xff.h) -> the credential verified
 * against the keys and revocations as they are now -> the client address
 * in the token's cidr claim, if it has one -> the repository and
 * operation granted by its claims -> the token's quota of requests in
 * flight -> room in the audit log for the request's line. The first
 * failure answers the request (401/403/400/429/503, audited).
 */
#ifndef GITGATE_HTTP_GATE_H
#define GITGATE_HTTP_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/http/request.h"

/* Pass req through the gate. MHD_YES with req->state still REQ_NEW: it may
 * proceed, req->claims set and its quota taken. MHD_YES with REQ_ANSWERED:
 * refused, and answered. MHD_NO: libmicrohttpd could not queue an answer. */
enum MHD_Result gate_admit(struct request *req);

/* Is the request's token still good now? A push is decided only once its
 * whole body is in, which a client can make last minutes: a token revoked
 * or expired meanwhile must land nothing (interface.md: refused within
 * 1 s). false with reason (for a 401) set. */
bool gate_recheck(struct request *req, char *reason, size_t size);

#endif

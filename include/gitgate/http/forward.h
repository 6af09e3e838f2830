/*
 * forward.h - relay a request upstream with gitgate's credential and stream
 * upstream's answer back (internal to src/http; see request.h).
 *
 * The answer is held back by REQUEST_HOLDBACK bytes until the request's
 * audit line is on disk, so a client only sees a complete transfer once it
 * is recorded (fail closed).
 */
#ifndef GITGATE_HTTP_FORWARD_H
#define GITGATE_HTTP_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "gitgate/http/request.h"

struct relay_response;

/* Start req->relay to the upstream URL of req's route, forwarding the
 * client headers upstream may need (never Authorization). content_length
 * is the body's length, or -1 when it is not known in advance. */
int forward_start(struct request *req, int64_t content_length,
		  struct gg_err *err);

/* forward_start for a fetch or info/refs from the client (server.c): also
 * sets up the one retry of a 401 from a freshly minted token
 * (request.h: resend), keeping a small upload-pack body for it. */
int forward_begin(struct request *req, int64_t content_length,
		  struct gg_err *err);

/* A chunk of a streamed upload-pack body, kept if a retry may need it. */
void forward_keep_body(struct request *req, const char *data, size_t len);

/* Answer a request that could not be forwarded: code from forward_start
 * or the credential (GG_EUPSTREAM 502, GG_ERATELIMIT 503 with
 * Retry-After, else 500), reason as given; logged and audited. */
enum MHD_Result forward_refuse(struct request *req, int code,
			       const char *reason);

/* Wait for upstream's status and headers and queue the streamed answer;
 * an upstream refusal or failure is answered as a refusal (404/502). */
enum MHD_Result forward_answer(struct request *req);

/* Wait for upstream's status and headers into *meta. true when they
 * refused the request (upstream failed, or answered other than 2xx): it is
 * then answered (404/502, audited) and *ret holds libmicrohttpd's result.
 * The client's reason names upstream's status, except for a 404 or when
 * status_in_reason is false (a push's reason, which git prints, stays
 * short); the log line always does. */
bool forward_wait(struct request *req, struct relay_response *meta,
		  bool status_in_reason, enum MHD_Result *ret);

#endif

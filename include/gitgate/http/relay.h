/*
 * relay.h - one HTTP transfer to the upstream (libcurl), with bounded memory
 * and backpressure in both directions.
 *
 * The HTTP side (a libmicrohttpd connection thread) feeds the request body
 * with relay_write_body / relay_finish_body, waits for the status and
 * headers with relay_wait_headers, then pulls the response body with
 * relay_read, all from one thread. While the body goes up, a relay thread
 * runs curl and the body passes through a pipe of GG_RELAY_BUF bytes; after
 * it, relay_read runs curl itself and curl writes straight into the
 * caller's buffer, reading from upstream only as fast as the caller reads.
 * So memory per transfer is fixed whatever the pack size, and a slow
 * client slows only its own upstream transfer, never others.
 *
 * Order: relay_wait_headers and relay_read return only once the request
 * body is finished (relay_finish_body, or the transfer ended), so call them
 * after it.
 *
 * Ownership: relay_start returns a relay the caller must relay_free (which
 * aborts it if still running and joins its thread). Strings in struct
 * relay_request are copied; the secret is handed to libcurl and never
 * logged.
 */
#ifndef GITGATE_RELAY_H
#define GITGATE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gitgate/core/err.h"

struct relay_shared; /* connection cache shared by all transfers */

int relay_global_init(struct gg_err *err);
struct relay_shared *relay_shared_new(void);
void relay_shared_free(struct relay_shared *shared);

struct relay_request {
	const char *method; /* "GET" or "POST" */
	const char *url;
	const char *secret; /* upstream password for user x-access-token */
	const char *const *headers; /* "Name: value" lines to send */
	size_t nheaders;
	int64_t content_length; /* POST: -1 = unknown, sent chunked */
	long connect_timeout_s; /* 0: default 10 s */
	long idle_timeout_s;    /* 0: default 300 s without progress */
	/* The client's socket, watched (never read) from the end of the
	 * request body until the transfer ends, whenever gitgate waits on
	 * upstream: a client that hangs up meanwhile ends the transfer
	 * instead of leaving it (and its token's slot) waiting on a slow or
	 * hung upstream. */
	bool watch_client;
	int client_fd;
	struct relay_shared *shared; /* may be NULL */
};

#define RELAY_MAX_HEADERS 16

struct relay_response {
	long status;
	/* Response headers kept for the client ("Name: value"), borrowed
	 * from the relay: valid until relay_free. */
	const char *headers[RELAY_MAX_HEADERS];
	size_t nheaders;
};

struct relay;

int relay_start(struct relay **out, const struct relay_request *req,
		struct gg_err *err);

/* Request body. Both return 0, or -1 when the transfer already ended or
 * failed (the caller should discard the rest of the client's body).
 * Bytes past a declared content_length abort the transfer (-1). */
int relay_write_body(struct relay *r, const void *buf, size_t len);
int relay_finish_body(struct relay *r);

/* Block until upstream sent its final status and headers (0) or the
 * transfer failed before that (GG_EUPSTREAM, err says why). */
int relay_wait_headers(struct relay *r, struct relay_response *out,
		       struct gg_err *err);

/* Does resp keep a header called name (any case)? */
bool relay_response_has(const struct relay_response *resp, const char *name);

/* Response body: bytes read (at least 1; blocks until some arrive), 0 at
 * the end, -1 if the transfer failed or was aborted (the client must see a
 * broken response, not a short one). A buffer of several hundred KiB lets
 * each call take a whole socket read. */
ssize_t relay_read(struct relay *r, void *buf, size_t max);

/* Give up (client went away): wakes both sides, stops curl. Safe from any
 * thread, also while another one is inside relay_read. */
void relay_abort(struct relay *r);

/* Counters for the audit log: bytes sent to / received from upstream
 * (received counts what arrived, even if the client went away before
 * reading all of it). */
uint64_t relay_bytes_up(struct relay *r);

/* Did the watched client (watch_client) hang up? Then a failed
 * relay_read was its doing, not upstream's. */
bool relay_client_left(struct relay *r);
uint64_t relay_bytes_down(struct relay *r);

void relay_free(struct relay *r);

#endif

/*
 * metrics.h - the process's counters, gauges and histograms, rendered in
 * Prometheus' text format for the admin listener's GET /metrics.
 *
 * One registry per process (like a Prometheus client library's default
 * one): every stage records into it without passing a handle around.
 * Recording is lock-free (relaxed atomics), so it costs a request nothing
 * measurable; a scrape reads each value once and may see one request's
 * counters half-updated, which Prometheus tolerates.
 *
 * Labels come from fixed sets only (service, decision, a known status,
 * reason, rule, kind, result): never a repository, sub, jti or token, both
 * for cardinality and because whoever may scrape /metrics is not whoever
 * may read repository names. Strings outside a set count as "other".
 */
#ifndef GITGATE_METRICS_H
#define GITGATE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

/* One audited request: service "git-upload-pack" | "git-receive-pack" |
 * NULL (refused before it named one), decision "allow" | "deny", the HTTP
 * status the client got, its duration and client-side bytes. */
void metrics_request(const char *service, const char *decision, int status,
		     int64_t duration_ms, uint64_t bytes_in,
		     uint64_t bytes_out);

/* Requests between their first callback and completion (+1 / -1). */
void metrics_in_flight_add(int delta);

/* A credential refused: reason is one of "missing", "malformed",
 * "too_long", "bad_signature", "unknown_key", "expired", "not_yet_valid",
 * "revoked", "address", "repo", "operation". */
void metrics_token_refused(const char *reason);

/* The reason label for a token_verify / authstate_verify error code. */
const char *metrics_token_reason(int code);

/* One audit line appended (ok) or not, and how long it took. */
void metrics_audit_append(int64_t duration_us, bool ok);

/* One mirror fetch from upstream: its duration, the pack bytes it brought
 * in, and whether it succeeded. */
void metrics_mirror_fetch(int64_t duration_ms, uint64_t bytes, bool ok);

/* Upstream failed: kind is one of "connect", "timeout", "auth" (rejected
 * gitgate's credential), "status" (another non-2xx), "redirect",
 * "transfer" (broken mid-answer), "credential" (could not get one),
 * "rate_limit". */
void metrics_upstream_error(const char *kind);

/* A ref refused by a rule: the audit ref entry's rule ("protected_ref",
 * "protected_path", "forbidden_path", "max_file_size", "commit_email",
 * "secret:<id>" counted as "secret", "content_check": a rule that could
 * not be evaluated), or NULL for the token's own claims
 * (counted as "token"). */
void metrics_policy_refused(const char *rule);

/* A pack request judged by the fetch cache: "hit" | "miss" | "bypass". */
void metrics_cache_result(const char *result);

/* gitgate_build_info's labels, set once at start (copied; values must be
 * label-safe: no quote, backslash or newline). */
void metrics_set_build_info(const char *version, const char *libgit2,
			    const char *libcurl, const char *libmicrohttpd);

/* The whole registry as Prometheus text (version 0.0.4), malloc'd and
 * NUL-terminated in *out (length *len); free with free(). Includes the
 * process_* metrics read from /proc/self. GG_ENOMEM only. */
int metrics_render(char **out, size_t *len, struct gg_err *err);

/* Zero every value (tests). */
void metrics_reset(void);

#endif

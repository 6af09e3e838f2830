/*
 * cred.h - the upstream credential: what gitgate sends upstream, as
 * Basic x-access-token:<secret>, for one repository and operation.
 *
 * Two sources, exactly one configured (config_check_upstream_source):
 *   static   one secret (upstream.token_file or GITGATE_UPSTREAM_TOKEN),
 *            the same for every request;
 *   App      upstream.github_app: an installation token minted per
 *            (installation, repository, permission set), narrowed to the
 *            one repository and to contents:read (fetches, mirror
 *            fetches) or contents:write (pushes), workflows:write only when
 *            asked (the sandbox token may change .github/workflows).
 *
 * App tokens are cached and reused until GG_APP_TOKEN_MARGIN_S before
 * they expire (half their lifetime for short-lived ones), so under steady
 * load GitHub's API is called about once per key and hour. Concurrent
 * requests for the same key wait for one API call (single-flight). Tokens
 * live in locked memory, wiped when the last lease is dropped; the App key
 * in OpenSSL's secure heap (ghjwt.h). Installation ids are cached
 * GG_APP_INSTALL_TTL_S, "not installed" GG_APP_INSTALL_MISS_TTL_S.
 *
 * Thread-safe: one struct cred serves every request thread.
 */
#ifndef GITGATE_CRED_H
#define GITGATE_CRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/config/config.h"
#include "gitgate/core/err.h"

struct cred;
struct cred_lease; /* one credential in use by one request */

enum cred_access { CRED_READ, CRED_WRITE };

struct cred_want {
	const char *repo; /* "OWNER/NAME" */
	enum cred_access access;
	bool workflows;   /* also workflows: write (CRED_WRITE only) */
};

struct cred_stats {
	uint64_t installation_calls; /* GET /repos/O/N/installation */
	uint64_t token_calls;        /* POST .../access_tokens */
	uint64_t cache_hits;         /* cred_get answered from the cache */
	uint64_t waits;              /* cred_get waited for another's call */
};

/* The source cfg names (after config_check_upstream_source): loads the
 * static secret or the App's key. Errors name the key to fix. */
int cred_new(struct cred **out, const struct config *cfg, struct gg_err *err);

/* A static source holding a copy of secret (tests, tools). */
int cred_new_static(struct cred **out, const char *secret,
		    struct gg_err *err);

/* Wipes every cached token. Leases must all be freed first. */
void cred_free(struct cred *c);

/* The static secret (for the secret scan's literal), or NULL for an App. */
const char *cred_static_secret(const struct cred *c);

/* One line for the start-up log: "static secret" or "GitHub App 123456
 * (https://api.github.com)". No secret. */
void cred_describe(const struct cred *c, char *buf, size_t bufsz);

/*
 * The credential for want, in *out (free with cred_lease_free). Errors:
 *   GG_EUPSTREAM   GitHub refused or failed; err is the one-line reason
 *                  naming what the operator must fix (a 502 for git);
 *   GG_ERATELIMIT  GitHub's rate limit: *retry_after_s says when to try
 *                  again (>= 1; a 503 with Retry-After for git);
 *   GG_ENOMEM.
 */
int cred_get(struct cred *c, const struct cred_want *want,
	     struct cred_lease **out, int64_t *retry_after_s,
	     struct gg_err *err);

/* The secret to send; valid until cred_lease_free. */
const char *cred_lease_secret(const struct cred_lease *l);

/* Was this token minted within GG_APP_FRESH_S? A 401 from the git
 * upstream may then be GitHub's replication delay, worth one retry.
 * Always false for a static secret. */
bool cred_lease_fresh(const struct cred_lease *l);

/* cred_lease_free(NULL) is a no-op. */
void cred_lease_free(struct cred_lease *l);

void cred_get_stats(struct cred *c, struct cred_stats *out);

/* How long an App's failed API call keeps cred_ready false. Readiness
 * must come back on its own: an instance out of its balancer's pool gets
 * no request that could make the call that clears it. */
#define CRED_FAULT_HOLD_MS 30000

/* Can the credential be used now (/readyz; now_ms: timeutil_mono_ms())?
 * A static secret always can; an App cannot for CRED_FAULT_HOLD_MS after
 * an API call that could not authenticate it at all (GitHub unreachable,
 * JWT refused), or until a later call succeeds. false with the reason in
 * why: fixed text and the configured api_url, never a repository or
 * secret (the admin port is not where repository names are read). */
bool cred_ready(struct cred *c, int64_t now_ms, char *why, size_t size);

#endif

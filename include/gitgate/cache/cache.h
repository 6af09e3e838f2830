/*
 * cache.h - the fetch cache: pack requests answered from gitgate's mirror
 * of a repository instead of upstream (issue #17; README "Fetch cache").
 *
 * Freshness and authorization stay upstream's. A request is served from
 * the mirror only when every object it wants is in the mirror and is one
 * of, or (for commits) reachable from, the refs upstream advertised to
 * gitgate's own fetch within GG_CACHE_FRESH_MS. Otherwise the mirror is
 * brought up to date first (one fetch per repository at a time, however
 * many requests wait: they share it), and a request whose wants are still
 * not covered is relayed upstream ("bypass"). So a ref upstream deleted or
 * force-pushed away stops being served within that window, and a
 * repository gitgate's credential can no longer read stops being served
 * at once (the fetch fails, and the request with it).
 *
 * Identical concurrent pack requests (same repository, protocol and body)
 * share one git upload-pack run (packflight.h).
 *
 * Disk: the mirrors together stay under max_size; the least recently used
 * ones not in use are removed whole after a fetch grew the total.
 *
 * Thread-safe: one struct fetch_cache serves every connection thread.
 */
#ifndef GITGATE_CACHE_H
#define GITGATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

struct cred;
struct fetchreq;
struct packflight;

enum cache_result { CACHE_HIT, CACHE_MISS, CACHE_BYPASS };

struct cache_opts {
	const char *cache_dir;
	const char *upstream_url; /* no trailing '/' */
	struct cred *cred;	  /* borrowed; READ leases for fetches */
	uint64_t max_size;
};

struct fetch_cache;
/* A repository's mirror held in use (never evicted) by one request. */
struct cache_use;

/* GG_ENOTFOUND when git is not on PATH (the caller runs without the
 * cache, with a warning). */
int cache_new(struct fetch_cache **out, const struct cache_opts *o,
	      struct gg_err *err);
/* Waits for background repacks to end. */
void cache_free(struct fetch_cache *c);

/*
 * Decide where the pack request r for repo ("owner/name") is served,
 * updating the mirror first when needed. HIT or MISS: *use holds the
 * mirror (cache_use_free when done). BYPASS: *use is NULL, relay it.
 * *upstream_bytes: what a fetch this request waited for cost (0 if none).
 * Errors (upstream unreachable, credential refused, mirror unusable):
 * GG_EUPSTREAM / GG_ERATELIMIT with *retry_after, or others; the request
 * is then refused, never served from a mirror that could not be checked.
 */
int cache_decide(struct fetch_cache *c, const char *repo,
		 const struct fetchreq *r, enum cache_result *res,
		 struct cache_use **use, uint64_t *upstream_bytes,
		 int64_t *retry_after, struct gg_err *err);

/*
 * Join (or start) the upload-pack run answering body (the decoded
 * request) on the mirror held by use, with GIT_PROTOCOL git_protocol
 * (NULL for v0). The flight keeps its own hold on the mirror.
 */
int cache_serve(struct fetch_cache *c, struct cache_use *use,
		const char *git_protocol, const unsigned char *body,
		size_t len, struct packflight **out, struct gg_err *err);

void cache_use_free(struct cache_use *u);

/* The flights cache_serve joins (packflight_read/leave on them). */
struct packflight_set *cache_flights(struct fetch_cache *c);

/* Counters for tests, logs and metrics. */
struct cache_stats {
	uint64_t fetches;	/* mirror fetches run for pack requests */
	uint64_t fetch_bytes;	/* what they downloaded */
	uint64_t evictions;
	uint64_t repacks;
	uint64_t total_size;	/* bytes of mirrors last measured */
};
void cache_get_stats(struct fetch_cache *c, struct cache_stats *out);

#endif

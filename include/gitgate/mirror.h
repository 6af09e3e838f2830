/*
 * mirror.h - a per-repository bare mirror of the upstream under cache_dir,
 * used to classify pushes (fast-forward or not) without trusting the client.
 *
 * mirror_open takes an exclusive lock on the repository (flock on a lock
 * file, which also excludes other threads of this process since each open
 * gets its own lock), so concurrent pushes and refreshes of the same repo
 * never corrupt it; pushes to different repositories do not contend.
 *
 * A pushed pack is indexed into a private temporary directory and attached
 * to this handle's object database only: rejected objects never enter the
 * mirror. mirror_close removes the temporary pack and releases the lock.
 */
#ifndef GITGATE_MIRROR_H
#define GITGATE_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "gitgate/err.h"

struct mirror;

/* One-time libgit2 start-up (thread-safe after this). */
int mirror_global_init(struct gg_err *err);

/* Open (creating if needed) cache_dir/mirrors/<repo>.git, locked. repo is
 * "owner/name" as validated by route_parse. */
int mirror_open(struct mirror **out, const char *cache_dir, const char *repo,
		struct gg_err *err);
void mirror_close(struct mirror *m);

/* Does the object (40-hex) exist in the mirror or the attached pack? */
bool mirror_has(struct mirror *m, const char *hex);

/* Fetch all branches and tags (refs/heads/, refs/tags/) from url with user x-access-token and
 * the secret (never logged), pruning refs deleted upstream. */
int mirror_fetch(struct mirror *m, const char *url, const char *secret,
		 struct gg_err *err);

/* Index the pack stored in fd at [off, off+len) (thin packs are completed
 * from the mirror) and attach it to this handle. GG_ENOTFOUND when a delta
 * base is missing from the mirror (fetch, then retry); GG_EINVAL for a
 * corrupt or truncated pack. len 0 is a no-op. */
int mirror_add_pack(struct mirror *m, int fd, uint64_t off, uint64_t len,
		    struct gg_err *err);

/* *out = new is old or descends from it. Both must be commits present in
 * the mirror or the attached pack; anything else is an error (callers fail
 * closed). */
int mirror_is_ancestor(bool *out, struct mirror *m, const char *old_hex,
		       const char *new_hex, struct gg_err *err);

#endif

/*
 * mirror.h - a per-repository bare mirror of the upstream under cache_dir,
 * used to classify pushes (fast-forward or not) without trusting the client.
 *
 * Writers are serialised by an exclusive flock on <mirror>.git.lock (each
 * open of the file gets its own lock, so it excludes other threads of this
 * process as well as other processes): creating the mirror and every fetch
 * take it. Readers do not: git writes packs under temporary names and
 * renames them into place, so a concurrent fetch never shows a reader a
 * partial object. Pushes to one repository therefore only wait for each
 * other while a fetch runs, not while a slow client uploads.
 *
 * A pushed pack is indexed into a private temporary directory and attached
 * to this handle's object database only: rejected objects never enter the
 * mirror. mirror_close removes the temporary pack and releases the lock.
 */
#ifndef GITGATE_MIRROR_H
#define GITGATE_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

struct mirror;
struct git_repository;

/* One-time libgit2 start-up (thread-safe after this). */
int mirror_global_init(struct gg_err *err);

/* Open (creating if needed, under the lock) cache_dir/mirrors/<repo>.git.
 * repo is "owner/name" as validated by route_parse. */
int mirror_open(struct mirror **out, const char *cache_dir, const char *repo,
		struct gg_err *err);
void mirror_close(struct mirror *m);

/* Bytes the last mirror_fetch on this handle downloaded (0: nothing new). */
uint64_t mirror_fetched_bytes(const struct mirror *m);
/* The mirror's directory (for git itself). */
const char *mirror_path(const struct mirror *m);
/*
 * Remove cache_dir/mirrors/<repo>.git whole (eviction, or a mirror found
 * corrupt): GG_EAGAIN while any handle has it open in this process. The
 * next mirror_open makes a new, empty one.
 */
int mirror_remove(const char *cache_dir, const char *repo, struct gg_err *err);

/* Does the object (40-hex) exist in the mirror or the attached pack? */
bool mirror_has(struct mirror *m, const char *hex);

/* Read object oid (20 bytes) for the pack scanner: GG_ENOTFOUND when
 * absent, else *type (commit 1, tree 2, blob 3, tag 4) and, for commits
 * only, the body in *data (malloc'd, the caller frees) and *len;
 * GG_ELIMIT for a commit over GG_MAX_SCAN_OBJECT (not read). */
int mirror_read(struct mirror *m, const unsigned char *oid, int *type,
		unsigned char **data, size_t *len);

/* The libgit2 repository behind the handle, the pushed pack attached once
 * mirror_add_pack succeeded (content checks read trees and blobs through
 * it). Borrowed: valid until mirror_close. */
struct git_repository *mirror_repo(struct mirror *m);

/* Is a pushed pack attached to this handle? */
bool mirror_has_pack(const struct mirror *m);

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

/* The same in steps, for a pack indexed while it streams in: begin,
 * append its bytes in order, commit (which attaches it). A failed append
 * or commit abandons the pack (nothing attached; begin again or use
 * mirror_add_pack); abandon drops one being indexed. Codes as
 * mirror_add_pack. */
int mirror_pack_begin(struct mirror *m, struct gg_err *err);
int mirror_pack_append(struct mirror *m, const void *data, size_t len,
		       struct gg_err *err);
int mirror_pack_commit(struct mirror *m, struct gg_err *err);
void mirror_pack_abandon(struct mirror *m);

/* *out = old is one of the n commits (GIT_OID_RAWSZ-byte ids, back to
 * back) or an ancestor of any of them: one graph walk for all. Every one
 * must be a commit present in the mirror or the attached pack; GG_ENOTFOUND
 * otherwise (callers refresh, or fail closed). */
int mirror_reaches(bool *out, struct mirror *m, const char *old_hex,
		   const unsigned char *oids, size_t n, struct gg_err *err);

/* *out = new is old or descends from it. Both must be commits present in
 * the mirror or the attached pack; anything else is an error (callers fail
 * closed). */
int mirror_is_ancestor(bool *out, struct mirror *m, const char *old_hex,
		       const char *new_hex, struct gg_err *err);

#endif

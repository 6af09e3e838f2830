/*
 * packscan.h - read a pushed pack as it streams in and keep only what the
 * fast-forward check needs: the id and parents of every commit in it.
 *
 * Why not index it: libgit2's indexer hashes every object (collision-
 * detecting SHA-1) and writes a second copy of the pack, about one CPU
 * second per 100 MiB on the push's critical path. Ancestry needs none of
 * the blobs and trees. The scanner inflates each entry once to find where
 * it ends (the pack format stores no compressed lengths), keeps commit
 * bodies only, and hashes those itself, so a commit's id is always the
 * hash of the bytes that will go upstream: the client cannot claim a
 * parent it did not send.
 *
 * Deltas whose chain ends in a commit are resolved afterwards
 * (packscan_resolve) by reading the entries back from the spool; a thin
 * pack's bases come from a lookup callback (the mirror). What the scanner
 * cannot establish it leaves unknown, never guesses: an absent commit makes
 * packscan_descends return GG_ENOTFOUND, and the caller falls back to full
 * indexing (fail closed).
 *
 * Life cycle: packscan_new, packscan_feed ..., packscan_finish,
 * packscan_resolve, then any number of packscan_descends; packscan_free.
 */
#ifndef GITGATE_PACKSCAN_H
#define GITGATE_PACKSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

#define PACKSCAN_OID_LEN 20 /* SHA-1 only: sha256 pushes are refused */

/* Object types as the pack format numbers them. */
enum packscan_type {
	PACKSCAN_COMMIT = 1,
	PACKSCAN_TREE = 2,
	PACKSCAN_BLOB = 3,
	PACKSCAN_TAG = 4,
	PACKSCAN_OFS_DELTA = 6,
	PACKSCAN_REF_DELTA = 7
};

struct packscan;

int packscan_new(struct packscan **out, struct gg_err *err);
void packscan_free(struct packscan *s);

/* The pack's bytes, in order, in chunks of any size. GG_EINVAL for a
 * malformed pack, GG_ELIMIT past the scanner's limits; after an error
 * every later call fails the same way. */
int packscan_feed(struct packscan *s, const void *data, size_t len,
		  struct gg_err *err);

/* No more bytes: GG_EINVAL unless exactly the announced entries and the
 * 20-byte trailer arrived. (The trailer's checksum is upstream's to
 * verify; commit ids are checked here by hashing.) */
int packscan_finish(struct packscan *s, struct gg_err *err);

/*
 * Where thin-pack bases come from. Return 0 with *type set when the object
 * exists; for commits also *data (malloc'd, the caller frees) and *len.
 * GG_ENOTFOUND when absent; any other code is an error.
 */
typedef int (*packscan_lookup_fn)(void *payload,
				  const unsigned char oid[PACKSCAN_OID_LEN],
				  int *type, unsigned char **data, size_t *len);

/* Resolve the deltas that turn out to be commits. The pack's bytes are
 * read back from fd, where the pack starts at offset off. lookup may be
 * NULL (no thin bases). May be called again (after the lookup's source
 * learnt more): deltas left unknown are retried. */
int packscan_resolve(struct packscan *s, int fd, uint64_t off,
		     packscan_lookup_fn lookup, void *payload,
		     struct gg_err *err);

/* Commits found, and entries whose type stayed unknown. */
size_t packscan_ncommits(const struct packscan *s);
size_t packscan_unknown(const struct packscan *s);

/* Did the scan hit one of its limits (GG_MAX_SCAN_*, a commit larger than
 * GG_MAX_SCAN_OBJECT, the work budget)? Then what it could not learn must
 * not be learnt another way: full indexing has no such limits. */
bool packscan_limited(const struct packscan *s);

/* Objects the pack's header announces (0 before the header is in). */
uint32_t packscan_nobjects(const struct packscan *s);

/* The largest object in the pack, as far as scanned: a whole object's
 * size, or the size a delta says it builds (UINT64_MAX if it cannot be
 * read). */
uint64_t packscan_max_object(const struct packscan *s);

/*
 * Is old one of the n commits outside the pack (oids: n >= 1 distinct
 * PACKSCAN_OID_LEN-byte ids), or an ancestor of any of them? GG_ENOTFOUND
 * when one of them is not there either.
 */
typedef int (*packscan_outside_fn)(void *payload, const char *old_hex,
				   const unsigned char *oids, size_t n,
				   bool *descends, struct gg_err *err);

/*
 * *out = new_hex is old_hex or descends from it, walking the pack's
 * commits and asking outside() once about all the commits the walk leaves
 * the pack through (never when it does not leave it). GG_ENOTFOUND when a
 * commit on the way is nowhere to be found; GG_EINVAL unless both ids are
 * 40 hex digits.
 */
int packscan_descends(bool *out, struct packscan *s, const char *old_hex,
		      const char *new_hex, packscan_outside_fn outside,
		      void *payload, struct gg_err *err);

#endif

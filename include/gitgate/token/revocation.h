/*
 * revocation.h - the set of revoked token ids (jti).
 *
 * File format: one entry per line: a jti, or a whole token (v4.public.…),
 * which revokes that exact token. Blank lines, lines starting with '#' and
 * a '#' comment after the entry (after a space) are ignored. A missing
 * file is an empty set (nothing revoked yet).
 *
 * An operator edits this file by hand, and a revocation must never wait
 * for a typo to be fixed, nor be lost to one: every other line is read so
 * as to revoke everything it might mean (revoking more is the safe way to
 * misread) and counted as a problem (revocation_problems) whose message
 * says what was done:
 *   - each field before a '#' comment is an entry ("j1 j2");
 *   - "Bearer " (any case, maybe after "Authorization:") is skipped;
 *   - a field with '#' in it revokes the part before '#' ("abc#note":
 *     "abc");
 *   - a field with ',' revokes each part ("a,b,");
 *   - quotes around a field or part revoke it without them.
 * No jti or token holds '#', ',' or a quote (revocation_check_jti), so
 * reading a field only these ways loses nothing.
 * A line that yields no jti or token (non-printable bytes, too long) is
 * skipped: nothing on it could match a token the proxy accepts.
 */
#ifndef GITGATE_REVOCATION_H
#define GITGATE_REVOCATION_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"

struct revocation_set;

/* Parse file contents (pure; used by tests and fuzzers). */
int revocation_parse(struct revocation_set **out, const char *text,
		     size_t len, struct gg_err *err);
/* Load path; a missing file yields an empty set. */
int revocation_load(struct revocation_set **out, const char *path,
		    struct gg_err *err);
void revocation_free(struct revocation_set *set);
bool revocation_contains(const struct revocation_set *set, const char *jti);
/* Whether the whole token (len bytes) is listed as such. */
bool revocation_contains_token(const struct revocation_set *set,
			       const char *token, size_t len);
size_t revocation_count(const struct revocation_set *set);
/* Lines not understood (or not whole) when parsing; *first (may be NULL)
 * is set to the first one's description ("line 2: ..."), "" if none. */
size_t revocation_problems(const struct revocation_set *set,
			   const char **first);

/*
 * Add the entries of from that set lacks (set keeps its problems). The
 * proxy keeps the previous list this way while the file has problems, so
 * breaking a line cannot un-revoke what it revoked.
 */
int revocation_merge(struct revocation_set *set,
		     const struct revocation_set *from, struct gg_err *err);

/*
 * Add jtis to the file at path atomically: take an exclusive lock, write
 * old contents + new lines to a temporary file in the same directory, fsync,
 * rename over path. Readers see the old or the new file, never a partial
 * one. jtis already present on a well-formed line are not added twice; a
 * file that would grow past GG_MAX_REVOCATIONS_LEN is refused (GG_ELIMIT).
 * out (may be NULL) receives the list as the file now holds it, read as
 * the proxy reads it, e.g. for its revocation_problems.
 */
int revocation_append(struct revocation_set **out, const char *path,
		      const char *const *jtis, size_t n, struct gg_err *err);

/*
 * A jti as the revocation file can hold it (added to the contract;
 * source-compatible): 1..GG_MAX_CLAIM_STR printable ASCII characters
 * without spaces, not starting with '#'. Tokens with any other jti are
 * refused as malformed, so every accepted token can be revoked.
 */
int revocation_check_jti(const char *jti, struct gg_err *err);

#endif

/*
 * authstate.h - the verify keys and revocation set a running proxy checks
 * tokens against, reloaded when their files change (polled) or on SIGHUP.
 *
 * Requests verify under a read lock; a reload builds the new key set and
 * revocation set completely, then swaps them in under the write lock, so a
 * request sees the old state or the new one, never a mix. Keys and
 * revocations reload independently, and the part that fails keeps its
 * previous state (and says why): a typo in a key file must not lock every
 * sandbox out, nor hold up a revocation. A revocation file with problems
 * loads, but adds to the previous list instead of replacing it.
 */
#ifndef GITGATE_AUTHSTATE_H
#define GITGATE_AUTHSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"
#include "gitgate/token/token.h"

struct authstate;

/* Loads everything once; fails if any key cannot be loaded. */
int authstate_new(struct authstate **out, const char *const *key_paths,
		  size_t nkeys, const char *revocations_path,
		  struct gg_err *err);
void authstate_free(struct authstate *as);

/* token_verify against the current keys and revocations. */
int authstate_verify(struct authstate *as, struct token_claims **out,
		     const char *token, size_t len, int64_t now,
		     struct gg_err *err);

/* Reload when a file changed since the last load (or always when force).
 * Returns 1 if reloaded, 0 if nothing changed, <0 when the keys or the
 * revocations (or both) failed to load: err says which; that part keeps
 * its previous state, the other is reloaded. */
int authstate_refresh(struct authstate *as, int force, struct gg_err *err);

/* Counts for the start-up / reload log line. */
size_t authstate_nkeys(struct authstate *as);
size_t authstate_nrevoked(struct authstate *as);
/* Lines of the revocation file not understood (or only guessed at) at the
 * last load (see revocation.h); the first one's description is copied
 * into first. While there are any, a reload keeps the previous list as
 * well, and first then ends with how many revocations are kept so. */
size_t authstate_revocation_problems(struct authstate *as, char *first,
				     size_t firstsz);

#endif

/*
 * authstate.c - hot-reloaded key set and revocation list.
 */
#include "gitgate/token/authstate.h"
#include "gitgate/core/filesig.h"
#include "gitgate/token/keyfile.h"
#include "gitgate/core/limits.h"
#include "gitgate/token/revocation.h"
#include "gitgate/core/timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* See keep_previous. */
#define AUTHSTATE_SETTLE_MS 1000

/* The keys and revocations in force. sigs: what each file looked like
 * when last loaded; any change triggers a reload (renames, how `gitgate
 * revoke` writes, change the inode). */
struct authstate {
	pthread_rwlock_t lock;
	char **key_paths;
	size_t nkeys;
	char *revocations_path;
	struct filesig *sigs; /* nkeys + 1 (revocations last) */

	/* Current state, replaced whole on reload. */
	struct token_keyset keyset;
	struct revocation_set *revoked;
	size_t revocations_kept; /* of those, earlier ones the file lacks */
	bool revocations_seen; /* the file existed at some load */

	/* A clean file that drops revocations, waiting to settle (see
	 * keep_previous); only the refreshing thread touches these. */
	bool shrink_pending;
	struct filesig shrink_sig;
	int64_t shrink_since; /* monotonic ms */
};

/* Load every key into a fresh set. Messages name the config key, as every
 * start-up error does. */
static int load_keys(struct token_keyset *keys, struct authstate *as,
		     struct gg_err *err)
{
	struct gg_err why = GG_ERR_INIT;
	size_t i;
	int ret;

	keys->keys = calloc(as->nkeys, sizeof(*keys->keys));
	keys->nkeys = 0;
	if (!keys->keys)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	for (i = 0; i < as->nkeys; i++) {
		ret = keyfile_load_public(&keys->keys[i], as->key_paths[i],
					  &why);
		if (ret) {
			gg_err_set(err, ret, "verify_key: %s", why.msg);
			free(keys->keys);
			keys->keys = NULL;
			keys->nkeys = 0;
			return ret;
		}
		keys->nkeys++;
	}
	return GG_OK;
}

static int load_revocations(struct revocation_set **out, const char *path,
			    struct gg_err *err)
{
	struct gg_err why = GG_ERR_INIT;
	int ret = revocation_load(out, path, &why);

	if (ret)
		return gg_err_set(err, ret, "revocations: %s", why.msg);
	return GG_OK;
}

/* Has the file that would drop revocations stayed as it is long enough? */
static bool settled(struct authstate *as, const struct filesig *sig)
{
	if (!as->shrink_pending || !filesig_equal(&as->shrink_sig, sig))
		return false;
	return timeutil_mono_ms() - as->shrink_since >= AUTHSTATE_SETTLE_MS;
}

/*
 * The previous list is kept as well (merged into fresh) in two cases:
 *   - the file has problems: an edit may have broken the very line that
 *     revoked a token, so until the file is clean again nothing goes;
 *   - the file would drop revocations but changed less than
 *     AUTHSTATE_SETTLE_MS ago: an editor that saves in place (truncate,
 *     then write) shows a poll an empty or half-written file for a moment,
 *     which must not un-revoke anything even for 200 ms. A deliberate
 *     un-revoke takes effect once the file has stayed the same that long
 *     (authstate_refresh keeps polling while one is pending).
 * *kept is how many entries only the previous list had.
 */
static int keep_previous(struct authstate *as, struct revocation_set *fresh,
			 const struct filesig *sig, size_t *kept,
			 struct gg_err *err)
{
	size_t before = revocation_count(fresh);
	bool clean = revocation_problems(fresh, NULL) == 0;
	int ret;

	*kept = 0;
	if (clean && settled(as, sig)) {
		as->shrink_pending = false;
		return GG_OK;
	}
	pthread_rwlock_rdlock(&as->lock);
	ret = revocation_merge(fresh, as->revoked, err);
	pthread_rwlock_unlock(&as->lock);
	if (ret)
		return gg_err_set(err, ret, "revocations: out of memory");
	*kept = revocation_count(fresh) - before;
	as->shrink_pending = clean && *kept > 0;
	if (as->shrink_pending && !filesig_equal(&as->shrink_sig, sig)) {
		as->shrink_sig = *sig;
		as->shrink_since = timeutil_mono_ms();
	}
	return GG_OK;
}

static void snapshot_sigs(struct filesig *sigs, struct authstate *as)
{
	size_t i;

	for (i = 0; i < as->nkeys; i++)
		sigs[i] = filesig_of(as->key_paths[i]);
	sigs[as->nkeys] = filesig_of(as->revocations_path);
}

int authstate_new(struct authstate **out, const char *const *key_paths,
		  size_t nkeys, const char *revocations_path,
		  struct gg_err *err)
{
	struct authstate *as;
	size_t i;
	int ret;

	*out = NULL;
	if (nkeys == 0 || nkeys > GG_MAX_KEYS)
		return gg_err_set(err, GG_EINVAL, "need 1..%d verify keys",
				  GG_MAX_KEYS);
	as = calloc(1, sizeof(*as));
	if (!as)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	pthread_rwlock_init(&as->lock, NULL);
	as->key_paths = calloc(nkeys, sizeof(char *));
	as->sigs = calloc(nkeys + 1, sizeof(*as->sigs));
	as->revocations_path = strdup(revocations_path);
	if (!as->key_paths || !as->sigs || !as->revocations_path)
		goto nomem;
	for (i = 0; i < nkeys; i++) {
		as->key_paths[i] = strdup(key_paths[i]);
		if (!as->key_paths[i])
			goto nomem;
		as->nkeys++;
	}
	snapshot_sigs(as->sigs, as);
	as->revocations_seen = as->sigs[as->nkeys].exists;
	ret = load_keys(&as->keyset, as, err);
	if (ret == GG_OK)
		ret = load_revocations(&as->revoked, as->revocations_path,
				       err);
	if (ret) {
		authstate_free(as);
		return ret;
	}
	*out = as;
	return GG_OK;
nomem:
	authstate_free(as);
	return gg_err_set(err, GG_ENOMEM, "out of memory");
}

void authstate_free(struct authstate *as)
{
	size_t i;

	if (!as)
		return;
	for (i = 0; i < as->nkeys; i++)
		free(as->key_paths[i]);
	free(as->key_paths);
	free(as->sigs);
	free(as->revocations_path);
	free(as->keyset.keys);
	revocation_free(as->revoked);
	pthread_rwlock_destroy(&as->lock);
	free(as);
}

int authstate_verify(struct authstate *as, struct token_claims **out,
		     const char *token, size_t len, int64_t now,
		     struct gg_err *err)
{
	int ret;

	pthread_rwlock_rdlock(&as->lock);
	ret = token_verify(out, token, len, &as->keyset, now, as->revoked,
			   err);
	pthread_rwlock_unlock(&as->lock);
	return ret;
}

static bool changed(struct authstate *as, struct filesig *now)
{
	size_t i;

	for (i = 0; i <= as->nkeys; i++)
		if (!filesig_equal(&as->sigs[i], &now[i]))
			return true;
	return false;
}

/*
 * Keys and revocations load independently: a typo in a key file must not
 * hold up a revocation, nor a broken revocation file a key rotation. What
 * fails keeps its previous state, and err says which.
 */
int authstate_refresh(struct authstate *as, int force, struct gg_err *err)
{
	struct filesig *now = calloc(as->nkeys + 1, sizeof(*now));
	struct gg_err kerr = GG_ERR_INIT, rerr = GG_ERR_INIT;
	struct token_keyset keys, old_keys = { NULL, 0 };
	struct revocation_set *revoked = NULL, *old_revoked = NULL;
	int kret, rret;
	size_t kept = 0;
	bool gone;

	if (!now)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	snapshot_sigs(now, as);
	if (!force && !changed(as, now) &&
	    !(as->shrink_pending && settled(as, &now[as->nkeys]))) {
		free(now);
		return 0;
	}
	/* Remember the new signatures even if loading fails, so a broken
	 * file is reported once per change rather than every poll. */
	memcpy(as->sigs, now, (as->nkeys + 1) * sizeof(*now));
	gone = !now[as->nkeys].exists && as->revocations_seen;
	free(now);
	kret = load_keys(&keys, as, &kerr);
	/* A missing file means "nothing revoked yet" only at start-up: once
	 * running, a file that disappears (deleted, moved aside) must not
	 * un-revoke every token. */
	rret = gone ? gg_err_set(&rerr, GG_ENOTFOUND, "revocations: %s: missing",
				 as->revocations_path)
		    : load_revocations(&revoked, as->revocations_path, &rerr);
	if (rret == GG_OK)
		rret = keep_previous(as, revoked, &as->sigs[as->nkeys], &kept,
				     &rerr);
	if (rret != GG_OK) {
		revocation_free(revoked);
		revoked = NULL;
	}
	pthread_rwlock_wrlock(&as->lock);
	if (kret == GG_OK) {
		old_keys = as->keyset;
		as->keyset = keys;
	}
	if (rret == GG_OK) {
		old_revoked = as->revoked;
		as->revoked = revoked;
		as->revocations_kept = kept;
		as->revocations_seen |= as->sigs[as->nkeys].exists;
	}
	pthread_rwlock_unlock(&as->lock);
	free(old_keys.keys);
	revocation_free(old_revoked);
	if (kret && rret)
		return gg_err_set(err, kret, "nothing reloaded: %s; %s",
				  kerr.msg, rerr.msg);
	if (kret)
		return gg_err_set(err, kret, "verify keys not reloaded (the "
				  "previous stay): %s",
				  kerr.msg);
	if (rret)
		return gg_err_set(err, rret, "revocations not reloaded (the "
				  "previous stay): %s",
				  rerr.msg);
	return 1;
}

size_t authstate_nkeys(struct authstate *as)
{
	size_t n;

	pthread_rwlock_rdlock(&as->lock);
	n = as->keyset.nkeys;
	pthread_rwlock_unlock(&as->lock);
	return n;
}

size_t authstate_nrevoked(struct authstate *as)
{
	size_t n;

	pthread_rwlock_rdlock(&as->lock);
	n = revocation_count(as->revoked);
	pthread_rwlock_unlock(&as->lock);
	return n;
}

size_t authstate_revocation_problems(struct authstate *as, char *first,
				     size_t firstsz)
{
	const char *text;
	size_t n;

	pthread_rwlock_rdlock(&as->lock);
	n = revocation_problems(as->revoked, &text);
	if (first && firstsz && as->revocations_kept)
		snprintf(first, firstsz, "%s; until the file has none, %zu "
			 "earlier revocation(s) it no longer lists stay",
			 text, as->revocations_kept);
	else if (first && firstsz)
		snprintf(first, firstsz, "%s", text);
	pthread_rwlock_unlock(&as->lock);
	return n;
}

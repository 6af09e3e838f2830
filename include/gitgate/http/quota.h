/*
 * quota.h - how many requests one token may have in flight at once.
 *
 * Every request holds one of gitgate's 1024 connection slots (and a thread)
 * while it runs, and a token holder controls how long that is: a push body
 * trickled a byte a minute never trips the idle timeout. Without a per-token
 * bound one sandbox, with a valid token, could take every slot and lock all
 * the others out. A quota counts a token's requests from authentication to
 * the end of the response and refuses the one past the limit, so one token
 * can hold at most `limit` slots however it paces its bytes.
 *
 * Keys are jtis (one token, one budget). Thread-safe. Buckets are chosen with
 * a keyed hash (SipHash, random key per quota), so a holder cannot pick jtis
 * that collide; tokens are minted by the admin anyway, but third-party
 * mints choose their own jtis.
 */
#ifndef GITGATE_QUOTA_H
#define GITGATE_QUOTA_H

#include "gitgate/core/err.h"

struct quota;

/* limit >= 1. */
int quota_new(struct quota **out, unsigned limit, struct gg_err *err);
/* Every quota_take must have been matched by quota_give. */
void quota_free(struct quota *q);

/* Count one more request for key: GG_OK, or GG_ELIMIT (the key already has
 * `limit` in flight; nothing counted) or GG_ENOMEM. */
int quota_take(struct quota *q, const char *key, struct gg_err *err);
/* The request that took a unit for key has ended. */
void quota_give(struct quota *q, const char *key);
/* Requests key has in flight now (for tests and logs). */
unsigned quota_held(struct quota *q, const char *key);
unsigned quota_limit(const struct quota *q);

#endif

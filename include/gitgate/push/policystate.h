/*
 * policystate.h - the site policy a running proxy enforces (config key
 * "policy", sitepolicy.h), with its secret-scan database compiled, reloaded
 * when the file changes (polled) or on SIGHUP.
 *
 * A struct policysnap is one load of the file: the parsed policy and the
 * database, immutable and reference-counted. Each push takes a reference
 * when it starts (policystate_get) and keeps reading that snapshot until it
 * gives it back (policysnap_put), whatever reloads happen meanwhile: a push
 * is judged by one policy from start to end, never a mix. A reload builds
 * the new snapshot completely, then swaps it in under a mutex; the old one
 * is freed by whoever drops its last reference.
 *
 * Invariants:
 *   - Once a policy has loaded, one is always in force: a reload that fails
 *     (unreadable file, any problem in it, a regex the engine refuses)
 *     leaves the previous snapshot in place and says why.
 *   - The database is NULL exactly when no rule set of the file scans
 *     (no "secrets": true at the top or in any repos entry, and no
 *     secret_rules anywhere). Otherwise it is ONE compile of the built-in
 *     rules, every custom rule of the whole file (ids are unique file-wide)
 *     and the upstream secret as a literal (SECRETSCAN_UPSTREAM_ID) when one
 *     was given. Which rule ids count for a repository is the push checks'
 *     business (sitepolicy_for_repo), not this module's.
 *   - The upstream secret is copied into sodium_malloc'd (locked, guarded)
 *     memory, wiped when the state is freed, and never appears in a
 *     message.
 *
 * Threads: policystate_get and policysnap_put from any thread;
 * policystate_refresh from one thread at a time (the server's main loop).
 */
#ifndef GITGATE_POLICYSTATE_H
#define GITGATE_POLICYSTATE_H

#include <stddef.h>

#include "gitgate/core/err.h"
#include "gitgate/push/secretscan.h"
#include "gitgate/push/sitepolicy.h"

struct policystate;
struct policysnap;

/* Room for any policysnap_describe line. */
#define POLICYSNAP_DESCRIBE_MAX 256

/*
 * Load path once (path NULL: no policy; policystate_get then returns NULL
 * for good). upstream_secret (upstream_secret_len bytes; NULL or 0 bytes
 * for none) is copied and compiled into every database as a literal.
 *
 * Regexes of secret_rules are compiled one by one while parsing, so each
 * one the engine refuses (and a custom id that is a built-in's) is a
 * problem line of its own, at the regex, naming the rule's id.
 *
 * GG_EINVAL when the file has problems: err->msg is the first line and
 * " (and N more)" when there are others; problems (may be NULL) then
 * holds every line (release it with sitepolicy_problems_release whatever
 * the outcome). GG_EINVAL also when the combined database does not
 * compile (err says why, problems empty), GG_EIO when the file cannot be
 * read, GG_ELIMIT, GG_ENOMEM.
 */
int policystate_new(struct policystate **out, const char *path,
		    const void *upstream_secret, size_t upstream_secret_len,
		    struct sitepolicy_problems *problems, struct gg_err *err);
void policystate_free(struct policystate *ps);

/*
 * Reload when the file changed since the last attempt (device, inode,
 * size or mtime differ: a rename or an in-place edit), or always when
 * force. 1: reloaded; 0: unchanged (or no policy configured); <0: the load
 * failed, the previous snapshot stays in force, and err says why (the
 * first problem and how many more, as policystate_new). A file that
 * failed is not retried until it changes again (or force), so a broken
 * file is reported once per change, not once per poll.
 */
int policystate_refresh(struct policystate *ps, int force, struct gg_err *err);

/* The path given to policystate_new (borrowed), or NULL. */
const char *policystate_path(const struct policystate *ps);

/* A new reference to the snapshot in force (NULL when there is no policy,
 * or ps is NULL). Give it back with policysnap_put. */
struct policysnap *policystate_get(struct policystate *ps);

/* Drop a reference; the last one frees the snapshot. NULL is a no-op. */
void policysnap_put(struct policysnap *s);

/* The parsed policy and the database (NULL: nothing to scan for), both
 * borrowed from s: valid while the reference is held. */
const struct sitepolicy *policysnap_policy(const struct policysnap *s);
const struct secretscan_db *policysnap_db(const struct policysnap *s);

/* One line for the operational log (no secret, no pattern): patterns
 * counted over the whole file (top level and every repos entry), e.g.
 * "2 protected ref patterns, 1 protected path, 0 forbidden paths, 0 commit
 * email patterns, 3 repos entries, secret scan of 18 rules" ("no secret
 * scan" without a database; "none" for s NULL). */
void policysnap_describe(char *buf, size_t bufsz, const struct policysnap *s);

#endif

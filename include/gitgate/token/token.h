/*
 * token.h - gitgate's scoped tokens: PASETO v4.public with the claims of
 * ../shared/interface.md, signed and verified with Ed25519 (libsodium).
 *
 * Verification is a pure function of (token, key set, now, revocation set):
 * no I/O, no clock, no globals, so the proxy can call it on every request
 * from any thread and tests can pin "now".
 */
#ifndef GITGATE_TOKEN_H
#define GITGATE_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/cidr.h"
#include "gitgate/core/err.h"

struct revocation_set;

enum token_op { TOKEN_OP_FETCH = 1u << 0, TOKEN_OP_PUSH = 1u << 1 };

/* Decoded claims. Times are Unix seconds (fractions truncated toward the
 * past for iat/nbf, so a token is never accepted early). Strings are owned
 * by the struct and NUL-terminated. */
struct token_claims {
	char *sub;
	char *jti;
	int64_t iat;
	int64_t exp;
	int64_t nbf;
	bool has_iat;
	bool has_nbf;
	char **repos;     /* "owner/name" as written in the token */
	size_t nrepos;
	unsigned ops;     /* TOKEN_OP_* bits */
	char **branches;  /* ref patterns, see policy.h */
	size_t nbranches;
	bool allow_force;
	bool allow_delete;
	/* Optional lists: absent from the token = NULL and 0. A list that is
	 * present is never empty (the parser refuses []), so a count of 0
	 * always means "claim absent".
	 * allow_paths: path globs (glob.h, segmented) the token may change
	 * although the site policy's protected_paths lists them.
	 * emails: the only author/committer addresses its new commits may
	 * carry (literal addresses, not globs). */
	char **allow_paths;
	size_t nallow_paths;
	char **emails;
	size_t nemails;
	/* cidr: the client addresses the token is valid from, as written in
	 * the token, and parsed (cidr_nets[i] is cidr[i]; NULL when ncidr
	 * is 0). Filled by the parser; token_sign reads only the strings. */
	char **cidr;
	size_t ncidr;
	struct cidr *cidr_nets;
};

void token_claims_free(struct token_claims *claims);

/* One verifying key: raw Ed25519 public key and its PASERK id. */
struct token_key {
	unsigned char pk[32];
	char pid[64]; /* "k4.pid.…", NUL-terminated */
};

struct token_keyset {
	struct token_key *keys;
	size_t nkeys;
};

/*
 * Verify a token and return its claims in *out (caller frees with
 * token_claims_free). now is Unix seconds. revoked may be NULL.
 * On failure returns a GG_E* code and err->msg is exactly one of:
 *   "malformed: <detail>"  GG_EINVAL  (bad framing, base64, JSON, claims,
 *                                      v4.local / other versions, > 8 KiB)
 *   "unknown key"          GG_ENOKEY  (footer kid names no key in keys)
 *   "bad signature"        GG_EBADSIG
 *   "expired"              GG_EEXPIRED
 *   "not yet valid"        GG_ENOTYET
 *   "revoked"              GG_EREVOKED
 * Signature is checked before any claim is trusted.
 */
int token_verify(struct token_claims **out, const char *token, size_t len,
		 const struct token_keyset *keys, int64_t now,
		 const struct revocation_set *revoked, struct gg_err *err);

/*
 * Decode a token's claims WITHOUT verifying the signature (for `inspect`
 * without --key and for `revoke TOKEN`). Framing and claim syntax are still
 * checked. Never use the result for an access decision.
 */
int token_decode_unverified(struct token_claims **out, const char *token,
			    size_t len, struct gg_err *err);

/* Claims as a JSON text (caller frees with free()), times as RFC 3339 UTC. */
char *token_claims_to_json(const struct token_claims *claims);

/*
 * Sign claims with a 64-byte Ed25519 secret key (libsodium layout), adding
 * footer {"kid":"<pid>"}; *out is a malloc'd NUL-terminated "v4.public.…".
 * A fresh random jti is generated when claims->jti is NULL.
 */
int token_sign(char **out, const struct token_claims *claims,
	       const unsigned char sk[64], struct gg_err *err);

/* Case-insensitive exact match of "owner/name" against claims->repos. */
bool token_claims_has_repo(const struct token_claims *claims,
			   const char *repo);

/* May a request from addr use this token? true when the token has no cidr
 * claim, else only when addr is in one of its networks; addr NULL (the
 * client's address is unknown) is then never allowed (fail closed). */
bool token_claims_allow_client(const struct token_claims *claims,
			       const struct cidr_addr *addr);

/* Longest address in the emails claim (RFC 5321's path limit). */
#define TOKEN_MAX_EMAIL_LEN 254

/*
 * Claim validators shared by token parsing and `mint` (added to the
 * contract; source-compatible). Each returns 0 or GG_EINVAL with a message
 * naming the offending value (sanitised).
 *   repo:    "owner/name": exactly one '/', both parts 1..GG_MAX_REPO_PART
 *            of [A-Za-z0-9._-], no "..", not "." , name not ending ".git".
 *   pattern: a ref pattern as policy.h describes: 1..GG_MAX_PATTERN_LEN
 *            bytes, no empty segment, no leading/trailing '/', no trailing
 *            '.', no "..", git ref-name rules per segment (no leading '.',
 *            no ".lock" suffix, none of space ~ ^ : ? [ \ or control
 *            bytes, no "@{", not "@"), '*' anywhere but "**" only as a
 *            whole segment.
 *   sub:     1..GG_MAX_CLAIM_STR bytes, no control characters.
 *   allow_path: a segmented path glob, glob_check(glob, 0, err) (its
 *            message: `invalid glob "<glob>": <why>`).
 *   email:   1..TOKEN_MAX_EMAIL_LEN bytes, exactly one '@' with at least
 *            one byte on each side, no space, control byte, '<' or '>'.
 *   cidr:    a network as cidr_parse reads it (cidr.h; its messages).
 */
int token_check_repo(const char *repo, struct gg_err *err);
int token_check_pattern(const char *pattern, struct gg_err *err);
int token_check_sub(const char *sub, struct gg_err *err);
int token_check_allow_path(const char *glob, struct gg_err *err);
int token_check_email(const char *email, struct gg_err *err);
int token_check_cidr(const char *cidr, struct gg_err *err);

#endif

/*
 * secretscan.h - find credentials in text: the built-in rules, a site's
 * custom rules and the configured upstream secret, compiled together into
 * one Hyperscan (vectorscan) database and matched in one linear pass.
 *
 * Why this engine: the scan runs on every line a push adds, so it must be
 * linear in the input whatever the rules (no backtracking, no match
 * limits to tune) and must not slow down as rules are added. vectorscan
 * (the portable fork of Hyperscan; either provides libhs) compiles all
 * rules into one automaton: 1.4-1.8 GB/s per core with the built-in set,
 * about the same with 64 custom rules more, where PCRE2 JIT does 0.9 GB/s
 * with one pass per rule and 0.15 GB/s with the 64 more
 * (tests/bench/bench_secretscan.c; README "Secret scan engine").
 *
 * Invariants:
 *   - A compiled struct secretscan_db is immutable: share one across
 *     threads, read-only. Each thread (request) scans with a scratch of its
 *     own; a scratch is never used by two scans at once.
 *   - Nothing here copies matched text anywhere: a match is reported as a
 *     rule id, a byte offset and length into the caller's buffer, a line
 *     number, and a short keyed hash. Error messages never contain the
 *     upstream secret, and its compiled form is wiped when freed.
 *   - Every match of a rule is reported once, from its leftmost start with
 *     the longest extent the rule gives it, once the scan knows it is
 *     complete; a match of a rule that overlaps that rule's previous one
 *     is folded into it. Matches come in no particular order.
 *
 * Built-in rules (id: what it matches; where the format is documented).
 * Each begins at a word boundary, so a longer identifier that merely
 * contains a prefix does not match. Where a format has no fixed end, the
 * rule matches a fixed-length head of the credential: enough to tell it
 * from ordinary text and to recognise a repeat by its hash, and simple
 * enough for the engine to track where the match starts.
 *   github-pat           ghp_ + 36 base62; github_pat_ + 82 of
 *                        [A-Za-z0-9_] (fine-grained: 22 + '_' + 59).
 *                        GitHub changelog 2021-03-31 "Authentication token
 *                        format updates" (prefixes; tokens may grow to 255
 *                        characters, hence heads); GitHub docs "About
 *                        authentication to GitHub".
 *   github-oauth         gho_ + 36 base62 (same sources).
 *   github-app-token     ghu_ (user-to-server), ghs_ (server-to-server).
 *   github-refresh-token ghr_.
 *   gitlab-pat           glpat- + 20 of [A-Za-z0-9_-] (newer routable
 *                        tokens are longer and carry '.'-separated parts).
 *                        GitLab docs "Personal access token prefix";
 *                        gitlab-org/gitlab#342327.
 *   aws-access-key-id    AKIA (long-term) or ASIA (temporary) + 16 upper
 *                        alphanumerics, a whole word. AWS IAM User Guide,
 *                        "IAM identifiers": unique ID prefixes.
 *   private-key          a PEM or OpenPGP armor header "-----BEGIN ...
 *                        PRIVATE KEY-----" (RFC 7468 labels PRIVATE KEY,
 *                        ENCRYPTED PRIVATE KEY and the RSA/EC/DSA/OPENSSH
 *                        ones; RFC 4880 "PGP PRIVATE KEY BLOCK") and, on
 *                        the next line (a line break or the "\n" escape of
 *                        a key inside JSON), either an armor header
 *                        ("Proc-Type: ", "Version: ") or, after an optional
 *                        blank line and indentation, 32 base64 characters.
 *                        A program that only names the header does not
 *                        match. Give a key's lines to one scan, not one
 *                        scan per line.
 *   slack-token          xoxa-, xoxb-, xoxp-, xoxo-, xoxs-, xoxr- + a
 *                        numeric id + '-' + 10 of [0-9A-Za-z-] (Slack API
 *                        docs "Token types").
 *   stripe-live-key      sk_live_ / rk_live_ + 24 base62 (Stripe docs "API
 *                        keys": secret and restricted keys; test-mode
 *                        keys, sk_test_, grant nothing real).
 *   google-api-key       AIza + 35 of [A-Za-z0-9_-] (Google Cloud docs
 *                        "API keys": 39 characters in all).
 *   npm-token            npm_ + 36 base62, a whole word (GitHub blog
 *                        2021-09-23 "Announcing npm's new access token
 *                        format").
 *   pypi-token           pypi- + the macaroon's fixed head "AgEIcHlwaS5vcmc"
 *                        (the location "pypi.org" serialised; for
 *                        test.pypi.org "AgENdGVzdC5weXBpLm9yZw") + 50
 *                        base64url (PyPI help "API tokens"; pypitoken).
 *   openai-api-key       sk-proj- / sk-svcacct- / sk-admin- + 40 of
 *                        [A-Za-z0-9_-]; the legacy sk- + 20 + "T3BlbkFJ"
 *                        (base64 of "OpenAI") + 20 alphanumerics.
 *   anthropic-api-key    sk-ant- + api|admin|oat|ort + 2 digits + '-' + 80
 *                        of [A-Za-z0-9_-] (Anthropic console keys,
 *                        sk-ant-api03-..., sk-ant-admin01-...).
 *   gitgate-token        v4.public. + 86 base64url: the least a PASETO
 *                        v4.public token holds (its 64-byte signature);
 *                        gitgate's own tokens (interface.md).
 *   upstream-secret      the configured upstream credential, byte for byte.
 *
 * Custom rules use Hyperscan's PCRE subset (no backreferences or
 * lookaround); '^' and '$' match at line boundaries. A rule that matches
 * the empty string is refused, and so is one whose start the engine
 * cannot track ("Pattern is too large": long alternatives of bounded
 * repeats; write a fixed-length head instead).
 */
#ifndef GITGATE_SECRETSCAN_H
#define GITGATE_SECRETSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"

#define SECRETSCAN_KEY_BYTES 32 /* crypto_generichash_KEYBYTES */
#define SECRETSCAN_HASH_HEX 12	/* 48 bits: recognise, not reverse */
#define SECRETSCAN_UPSTREAM_ID "upstream-secret"

/* A rule: id (shown in reasons and audit records) and regex. */
struct secretscan_rule {
	const char *id;
	const char *regex;
};

struct secretscan_opts {
	bool builtins;			     /* include the built-in rules */
	const struct secretscan_rule *rules; /* custom rules, may be NULL */
	size_t nrules;
	/* The upstream credential, matched as a literal (rule
	 * SECRETSCAN_UPSTREAM_ID); NULL for none. Not kept: only its
	 * compiled form, which is wiped when the database is freed. */
	const void *upstream_secret;
	size_t upstream_secret_len;
	/* SECRETSCAN_KEY_BYTES for match hashes, or NULL for a random key
	 * made once per process (hashes then agree across policy reloads but
	 * not across restarts). Copied. */
	const unsigned char *hash_key;
};

struct secretscan_match {
	const char *rule; /* rule id, borrowed from the database */
	size_t offset;	  /* first byte of the match in the buffer */
	size_t len;	  /* bytes matched */
	size_t line;	  /* 1-based line of offset in the buffer */
	char hash[SECRETSCAN_HASH_HEX + 1]; /* secretscan_hash of the match */
};

struct secretscan_db;
struct secretscan_scratch;

/* Return 0 to go on; anything else stops the scan, and secretscan_scan
 * returns it unchanged. */
typedef int (*secretscan_match_fn)(const struct secretscan_match *m,
				   void *payload);

/* Compile the rule set. A custom rule with a bad id (empty, too long, not
 * [A-Za-z0-9._-], a duplicate, or a built-in's) or a regex that does not
 * compile fails with GG_EINVAL and a message naming the rule's id and the
 * engine's reason; an upstream secret outside GG_MIN_SECRET_LITERAL..
 * GG_MAX_SECRET_LITERAL bytes likewise (never quoting it). A set with no
 * rule at all is GG_EINVAL. */
int secretscan_db_new(struct secretscan_db **out,
		      const struct secretscan_opts *opts, struct gg_err *err);
void secretscan_db_free(struct secretscan_db *db);

/* Rules in the database, and the id of rule i < count (borrowed). */
size_t secretscan_db_count(const struct secretscan_db *db);
const char *secretscan_db_rule_id(const struct secretscan_db *db, size_t i);

/* The built-in rules, for `policy check` and the benchmark (static). */
const struct secretscan_rule *secretscan_builtins(size_t *count);

/* Per-thread working memory for scans of db. A scratch may later scan
 * with another database (a reloaded policy): it grows to fit. */
int secretscan_scratch_new(struct secretscan_scratch **out,
			   const struct secretscan_db *db, struct gg_err *err);
void secretscan_scratch_free(struct secretscan_scratch *s);

/* Scan buf (any bytes; len may be 0) and call fn for each match. Lines are
 * counted from 1 at buf; pass the added lines of one file as one buffer
 * where possible: each call has a fixed cost (well under a microsecond).
 * GG_ERR if the engine fails (message says why); otherwise 0, or what fn
 * returned to stop. The caller decides what is binary (below): this scans
 * whatever it is given. */
int secretscan_scan(const struct secretscan_db *db,
		    struct secretscan_scratch *s, const void *buf, size_t len,
		    secretscan_match_fn fn, void *payload, struct gg_err *err);

/* The short keyed hash of some bytes, as matches carry it: BLAKE2b keyed
 * with the database's key, its first 48 bits in lower-case hex. The same
 * bytes and key always give the same hash. */
void secretscan_hash(char out[SECRETSCAN_HASH_HEX + 1],
		     const struct secretscan_db *db, const void *data,
		     size_t len);

/* Whether git would call this blob binary: a NUL in its first
 * GG_BINARY_PROBE_LEN bytes. Binary blobs are not scanned. */
bool secretscan_is_binary(const void *buf, size_t len);

#endif

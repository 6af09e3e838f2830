/*
 * bench_token.c - how many tokens per second token_verify checks, for a
 * typical minted token (kid footer, 2 repos, 2 branch patterns) against one
 * key and a 100k-entry revocation list; plus the no-footer worst case that
 * tries every one of GG_MAX_KEYS keys. Run by hand: build/tests/bench/
 * bench_token [seconds-per-case].
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gitgate/core/limits.h"
#include "gitgate/token/paserk.h"
#include "gitgate/token/paseto.h"
#include "gitgate/token/revocation.h"
#include "gitgate/token/token.h"

#define NOW 1700000000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run token_verify for about secs seconds; return verifications/s. */
static double measure(const char *token, const struct token_keyset *keys,
		      const struct revocation_set *revoked, double secs)
{
	struct token_claims *c;
	double start = now_s(), elapsed;
	long n = 0;

	do {
		for (int i = 0; i < 100; i++) {
			if (token_verify(&c, token, strlen(token), keys, NOW,
					 revoked, NULL) != GG_OK) {
				fprintf(stderr,
					"bench: token did not verify\n");
				exit(1);
			}
			token_claims_free(c);
		}
		n += 100;
		elapsed = now_s() - start;
	} while (elapsed < secs);
	return (double)n / elapsed;
}

static struct revocation_set *big_revocation_list(void)
{
	size_t cap = 100000 * 24 + 1, len = 0;
	char *text = malloc(cap);
	struct revocation_set *set;

	for (int i = 0; i < 100000; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"revoked-jti-%010d\n", i);
	if (revocation_parse(&set, text, len, NULL) != GG_OK)
		exit(1);
	free(text);
	return set;
}

int main(int argc, char **argv)
{
	static unsigned char sk[GG_MAX_KEYS][64];
	struct token_key keys[GG_MAX_KEYS];
	char *repos[] = {"acme/widget", "acme/gadget"};
	char *branches[] = {"agent/*", "refs/tags/v*"};
	struct token_claims claims = {
		.sub = "sandbox-42@ci",
		.iat = NOW,
		.has_iat = true,
		.exp = NOW + 3600,
		.repos = repos,
		.nrepos = 2,
		.ops = TOKEN_OP_FETCH | TOKEN_OP_PUSH,
		.branches = branches,
		.nbranches = 2,
	};
	struct token_keyset one = {keys, 1}, all = {keys, GG_MAX_KEYS};
	struct revocation_set *revoked;
	struct paseto_msg msg;
	double secs = 2.0, sign_start;
	char *end;
	char *token, *bare;
	int i;

	if (argc > 1) {
		secs = strtod(argv[1], &end);
		if (*end || !(secs > 0 && secs <= 600)) {
			fprintf(stderr, "usage: bench_token [seconds 0-600]\n");
			return 2;
		}
	}
	if (sodium_init() < 0)
		return 1;
	for (i = 0; i < GG_MAX_KEYS; i++) {
		crypto_sign_keypair(keys[i].pk, sk[i]);
		paserk_pid(keys[i].pid, sizeof(keys[i].pid), keys[i].pk, 32,
			   NULL);
	}
	/* the last key signs, so the no-footer case tries all of them */
	sign_start = now_s();
	if (token_sign(&token, &claims, sk[GG_MAX_KEYS - 1], NULL) != GG_OK)
		return 1;
	printf("token_sign: %.0f us; typical token is %zu bytes\n",
	       (now_s() - sign_start) * 1e6, strlen(token));
	/* the same claims without a footer */
	paseto_v4_public_split(&msg, token, strlen(token), NULL);
	paseto_v4_public_sign(&bare, msg.m, msg.mlen, NULL, 0, NULL, 0,
			      sk[GG_MAX_KEYS - 1], NULL);
	paseto_msg_release(&msg);
	revoked = big_revocation_list();

	one.keys = &keys[GG_MAX_KEYS - 1];
	printf("token_verify: %.0f verifications/s (kid footer, 1 key)\n",
	       measure(token, &one, NULL, secs));
	printf("token_verify: %.0f verifications/s (kid footer, %d keys, "
	       "100000 revoked jtis)\n",
	       measure(token, &all, revoked, secs), GG_MAX_KEYS);
	printf("token_verify: %.0f verifications/s (no footer, worst case: "
	       "tries all %d keys)\n",
	       measure(bare, &all, revoked, secs), GG_MAX_KEYS);
	revocation_free(revoked);
	free(token);
	free(bare);
	return 0;
}

/* fuzz_token.c - token_verify / token_decode_unverified on arbitrary bytes,
 * with the PASETO spec's v4 test key (seeds in fixtures/fuzz/token are
 * signed with it) and a fixed "now". Anything accepted must print. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>

#include "gitgate/token/paserk.h"
#include "gitgate/token/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char seed_hex[] = "b4cbfb43df4ce210727d953e4a713307"
				       "fa19bb7d9f85041438d9e11b942a3774";
	static struct token_key key;
	static struct token_keyset keys = {&key, 1};
	unsigned char seed[32], sk[64];
	struct token_claims *c = NULL;

	if (!key.pid[0]) {
		if (sodium_init() < 0 ||
		    sodium_hex2bin(seed, 32, seed_hex, 64, NULL, NULL, NULL) ||
		    crypto_sign_seed_keypair(key.pk, sk, seed) ||
		    paserk_pid(key.pid, sizeof(key.pid), key.pk, 32, NULL))
			abort();
	}
	for (int pass = 0; pass < 2; pass++) {
		if ((pass ? token_decode_unverified(&c, (const char *)data,
						    size, NULL)
			  : token_verify(&c, (const char *)data, size, &keys,
					 1700000000, NULL, NULL)) == GG_OK) {
			char *json = token_claims_to_json(c);

			if (!json)
				abort();
			free(json);
		}
		token_claims_free(c);
		c = NULL;
	}
	return 0;
}

/* fuzz_advert.c - upstream's receive-pack advertisement, as gitgate rewrites
 * it (rp_advert_rewrite). What it writes must read back alike: the same
 * first line found, no push-cert left, the same object format, and a
 * second rewrite changes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/proto/receivepack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkt_buf once, twice;
	size_t used, used2;
	bool sha256, sha256_2;
	int rc;

	pkt_buf_init(&once, 4 * GG_MAX_PKT_LEN + size);
	pkt_buf_init(&twice, 4 * GG_MAX_PKT_LEN + size);
	rc = rp_advert_rewrite(&once, &used, &sha256, data, size, NULL);
	if (rc == GG_OK) {
		if (used > size || once.len > used ||
		    rp_advert_rewrite(&twice, &used2, &sha256_2, once.data,
				      once.len, NULL) != GG_OK ||
		    used2 != once.len || sha256_2 != sha256 ||
		    twice.len != once.len ||
		    memcmp(twice.data, once.data, once.len) != 0)
			abort();
	} else if (once.len != 0) {
		abort(); /* nothing written unless the rewrite succeeded */
	}
	pkt_buf_release(&once);
	pkt_buf_release(&twice);
	return 0;
}

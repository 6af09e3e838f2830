/* fuzz_fetchreq.c - an upload-pack request as the fetch cache reads it,
 * as v0 and v2 and through the gzip reader: no crash, and every want
 * returned is inside the result's array. */
#include <stdint.h>
#include <stdlib.h>

#include "gitgate/cache/fetchreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fetchreq r;
	unsigned char *out;
	size_t len, i;
	int v;

	for (v = 0; v <= 2; v += 2) {
		if (fetchreq_parse(&r, data, size, v, NULL) == 0) {
			if (r.kind == FETCHREQ_PACK && r.nwants == 0)
				abort();
			for (i = 0; i < r.nwants * 20; i++)
				(void)r.wants[i];
			fetchreq_release(&r);
		}
	}
	if (fetchreq_gunzip(&out, &len, data, size, 1 << 20, NULL) == 0) {
		if (len > 1 << 20)
			abort();
		free(out);
	}
	return 0;
}

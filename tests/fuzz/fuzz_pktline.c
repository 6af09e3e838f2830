/* fuzz_pktline.c - pkt_read over arbitrary bytes; every packet read must
 * re-encode to the same size, and side-band splitting must be safe. */
#include <stdint.h>
#include <stdlib.h>

#include "gitgate/proto/pktline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *d;
	struct pkt_buf out;
	size_t pos = 0, used, n;
	struct pkt p;
	int band;

	pkt_buf_init(&out, GG_MAX_PKT_LEN);
	while (pkt_read(&p, &used, data + pos, size - pos, PKT_EOF, NULL) ==
	       0) {
		pos += used;
		if (p.type != PKT_DATA)
			continue;
		if (pkt_write(&out, p.data, p.len, NULL) != 0 ||
		    out.len != used)
			abort();
		pkt_buf_release(&out);
		pkt_sideband_split(&band, &d, &n, &p, NULL);
	}
	pkt_buf_release(&out);
	return 0;
}

/* fuzz_receivepack.c - feed a push request in chunks (size from the first
 * byte); a parsed request must re-serialize into one that parses alike. */
#include <stdint.h>
#include <stdlib.h>

#include "gitgate/proto/receivepack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_request again;
	struct pkt_buf out;
	struct rp_parser p;
	size_t step, pos = 1, used, n;
	int rc = GG_EAGAIN;

	if (size < 1)
		return 0;
	step = (size_t)data[0] + 1;
	rp_parser_init(&p);
	while (rc == GG_EAGAIN && pos < size) {
		n = size - pos < step ? size - pos : step;
		rc = rp_parser_feed(&p, &used, data + pos, n, NULL);
		pos += used;
	}
	if (rc == GG_EAGAIN)
		rc = rp_parser_finish(&p, NULL);
	pkt_buf_init(&out, GG_MAX_PUSH_HEADER);
	if (rc == 0 && p.req.ncommands > 0) {
		if (rp_serialize(&out, &p.req, NULL, NULL, NULL) != 0 ||
		    rp_parse(&again, out.data, out.len, NULL) != 0 ||
		    again.ncommands != p.req.ncommands ||
		    again.header_len != out.len)
			abort();
		rp_request_release(&again);
	}
	pkt_buf_release(&out);
	rp_parser_release(&p);
	return 0;
}

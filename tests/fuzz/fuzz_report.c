/* fuzz_report.c - parse an upstream receive-pack reply (flags from the
 * first byte), then merge it for a client whose commands are the reported
 * refs; our own merged output must parse back with the client's flags. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/proto/report.h"

#define MAX_CMDS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_merge(const struct report *r, unsigned flags, bool atomic)
{
	struct rp_request req;
	struct report_merge m;
	struct report back;
	struct pkt_buf out;
	const char **why;
	size_t i;

	size_t j, n = 0;

	rp_request_init(&req);
	req.commands = calloc(MAX_CMDS, sizeof(*req.commands));
	why = calloc(MAX_CMDS, sizeof(*why));
	if (!req.commands || !why)
		abort();
	/* a client never names a ref twice: use each reported name once */
	for (i = 0; i < r->nrefs && n < MAX_CMDS; i++) {
		for (j = 0; j < n; j++)
			if (!strcmp(req.commands[j].refname,
				    r->refs[i].refname))
				break;
		if (j < n)
			continue;
		req.commands[n].refname = r->refs[i].refname; /* borrowed */
		why[n] = (n % 3 == 1) ? "refused\nby test" : NULL;
		n++;
	}
	req.ncommands = n;
	req.caps.side_band_64k = flags & REPORT_SIDEBAND;
	req.caps.report_status_v2 = flags & REPORT_EXPECT_STATUS;
	req.caps.atomic = atomic;
	m = (struct report_merge){.req = &req, .refusals = why, .upstream = r};
	pkt_buf_init(&out, 2 * GG_MAX_REPORT_LEN);
	if (report_merge(&out, &m, NULL) != 0 ||
	    report_parse(&back, out.data, out.len, flags, NULL) != 0 ||
	    ((flags & REPORT_EXPECT_STATUS) && back.nrefs < n))
		abort();
	report_release(&back);
	pkt_buf_release(&out);
	free(why);
	free(req.commands);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct report r;
	unsigned flags;

	if (size < 1)
		return 0;
	flags = data[0] & (REPORT_SIDEBAND | REPORT_EXPECT_STATUS);
	if (report_parse(&r, data + 1, size - 1, flags, NULL) != 0)
		return 0;
	check_merge(&r, flags, data[0] & 0x80);
	report_release(&r);
	return 0;
}

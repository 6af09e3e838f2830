/*
 * fuzz_xff.c - X-Forwarded-For values from a trusted peer, and each line
 * as a CIDR: a client writes the left part of the header, so the walk and
 * the address parser must never crash, overflow or read past a value.
 * Input: header values separated by '\n'.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/http/xff.h"

#define MAXV 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const nets[] = { "127.0.0.0/8", "10.9.0.0/16",
					    "fd00::/8" };
	const char *values[MAXV];
	struct cidr trusted[3], net;
	struct cidr_addr peer, out;
	char *text = malloc(size + 1), *p, *nl;
	size_t n = 0, i;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (i = 0; i < 3; i++)
		cidr_parse(&trusted[i], nets[i], NULL);
	cidr_addr_parse(&peer, "127.0.0.1", 9, NULL);
	for (p = text; p && n < MAXV; p = nl) {
		nl = strchr(p, '\n');
		if (nl)
			*nl++ = '\0';
		values[n++] = p;
		cidr_parse(&net, p, NULL);
	}
	xff_resolve(&out, &peer, values, n, trusted, 3, NULL);
	free(text);
	return 0;
}

/*
 * size.c - parse "N[BKMG]" and format sizes in binary units (see size.h).
 */
#include "gitgate/core/size.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Bits to shift for unit letter c, or -1 if c is no unit. */
static int unit_shift(char c)
{
	switch (c) {
	case 'B':
		return 0;
	case 'K':
		return 10;
	case 'M':
		return 20;
	case 'G':
		return 30;
	}
	return -1;
}

int size_parse(uint64_t *out, const char *text, struct gg_err *err)
{
	const char *p = text, *digits_end;
	uint64_t n = 0;
	bool big = false;
	char shown[40];
	int shift = 0;

	gg_err_sanitize(shown, sizeof(shown), text, strnlen(text, 64));
	while (*p >= '0' && *p <= '9') {
		if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			big = true;
		n = n * 10 + (uint64_t)(*p - '0');
		p++;
	}
	digits_end = p;
	if (*p)
		shift = unit_shift(*p++);
	if (digits_end == text || shift < 0 || *p)
		return gg_err_set(err, GG_EINVAL,
				  "\"%s\" is not a size: want digits and at "
				  "most one unit, B, K, M or G (e.g. \"50M\")",
				  shown);
	if (n == 0 && !big)
		return gg_err_set(err, GG_EINVAL,
				  "\"%s\" is zero: the smallest limit is 1 "
				  "byte",
				  shown);
	if (big || n > UINT64_MAX >> shift)
		return gg_err_set(
			err, GG_EINVAL,
			"\"%s\" is too large (it does not fit in 64 bits)",
			shown);
	*out = n << shift;
	return 0;
}

void size_format(char *buf, size_t bufsz, uint64_t bytes)
{
	static const char *const units[] = {"KiB", "MiB", "GiB",
					    "TiB", "PiB", "EiB"};
	double v = (double)bytes / 1024.0;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, bufsz, "%u B", (unsigned)bytes);
		return;
	}
	/* 1023.95 and over would print as "1024.0": say the next unit. */
	while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, bufsz, "%.1f %s", v, units[u]);
}

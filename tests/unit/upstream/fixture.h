/*
 * fixture.h - the keys of fixtures/upstream, for the upstream suites
 * (test_ghjwt, test_cred). Found through GG_SOURCE_ROOT, which
 * tests/meson.build sets.
 */
#ifndef GG_TEST_UPSTREAM_FIXTURE_H
#define GG_TEST_UPSTREAM_FIXTURE_H

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fixtures/upstream/NAME, read whole (malloc'd, NUL-terminated). */
static char *read_fixture(const char *name, size_t *len)
{
	const char *root = getenv("GG_SOURCE_ROOT");
	char path[4096];
	char *buf;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/fixtures/upstream/%s",
		 root ? root : ".", name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "fixture %s: %s (GG_SOURCE_ROOT set?)", path,
		      strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

#endif

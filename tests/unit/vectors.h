/*
 * vectors.h - shared by the Check suites of the token modules
 * (test_paseto.c, test_paserk.c, test_token.c): reading the official
 * PASETO/PASERK test vectors, and the main() they all need (libsodium
 * initialised before any test runs).
 *
 * The vectors are JSON files under $GG_SHARED_DIR/vectors (v4.json,
 * PASERK/k4.*.json), read at run time. They are not part of the
 * repository. Their cases sit in a tcase of their own, "vectors", which
 * meson runs as a test of its own (CK_RUN_CASE=vectors, tests/meson.build):
 * without the vectors directory that test exits 77, which meson reports as
 * SKIP rather than as a pass (the other cases run as CK_RUN_CASE=core).
 * A single missing file inside it prints one "SKIP <file>: ..." line and
 * its case checks nothing.
 *
 * Not every suite uses every helper (test_token.c only vectors_main), so
 * the static ones are marked unused.
 */
#ifndef GITGATE_TEST_VECTORS_H
#define GITGATE_TEST_VECTORS_H

#include <check.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Decode hex into out (at most cap bytes); fail the test on bad hex.
 * Returns the number of bytes written. */
__attribute__((unused)) static size_t unhex(unsigned char *out, size_t cap,
					    const char *hex)
{
	size_t len = 0;

	ck_assert_int_eq(
		sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &len, NULL),
		0);
	return len;
}

/* The vectors file $GG_SHARED_DIR/vectors/[subdir/]name (subdir may be
 * NULL), or NULL with a SKIP message when it cannot be read. The caller
 * json_decref()s the result. */
__attribute__((unused)) static json_t *vectors_load(const char *subdir,
						    const char *name)
{
	const char *dir = getenv("GG_SHARED_DIR");
	json_error_t jerr;
	char path[4096];
	json_t *root;

	if (!dir) {
		printf("SKIP %s: GG_SHARED_DIR not set\n", name);
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/vectors/%s%s%s", dir,
		 subdir ? subdir : "", subdir ? "/" : "", name);
	root = json_load_file(path, 0, &jerr);
	if (!root) {
		printf("SKIP %s: vectors not found (%s)\n", name, jerr.text);
		return NULL;
	}
	return root;
}

/* A string member of a test case, or NULL when absent or not a string. */
__attribute__((unused)) static const char *str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Whether a test case is marked "expect-fail": true. */
__attribute__((unused)) static bool expect_fail(json_t *t)
{
	return json_is_true(json_object_get(t, "expect-fail"));
}

/* Initialise libsodium, run the suite; returns the process exit status. */
static int vectors_main(Suite *suite)
{
	SRunner *sr;
	int failed;

	const char *only = getenv("CK_RUN_CASE"), *dir = getenv("GG_SHARED_DIR");
	char path[4096];
	struct stat st;

	if (sodium_init() < 0)
		return EXIT_FAILURE;
	if (only && !strcmp(only, "vectors")) {
		snprintf(path, sizeof(path), "%s/vectors", dir ? dir : "");
		if (!dir || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
			printf("SKIP: no official vectors at %s (they are not in "
			       "the repository: see ../shared)\n",
			       dir ? path : "$GG_SHARED_DIR/vectors (unset)");
			return 77; /* meson: skipped */
		}
	}
	sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif

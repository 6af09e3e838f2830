/* fuzz_packscan.c - a pushed pack fed in two chunks (split where the input
 * says) must scan as it does in one; then its deltas are resolved from a
 * memfd copy and the commits walked with nothing known outside the pack. */
#include <git2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gitgate/push/packscan.h"

/* The root and the tip of the seed fixtures/fuzz/packscan/normal. */
#define OLD_HEX "af8992378e70f3d89d16f73b3fc0795cbd6a89da"
#define NEW_HEX "7d40ebca5946b7a69a681d7683e151235108eb0e"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int outside_none(void *payload, const char *old_hex,
			const unsigned char *oids, size_t n, bool *descends,
			struct gg_err *err)
{
	(void)payload;
	(void)old_hex;
	(void)oids;
	*descends = false;
	return gg_err_set(err, GG_ENOTFOUND, "%zu commits not found", n);
}

/* Feed (in two calls, split at split) and finish. */
static int scan(struct packscan **s, const uint8_t *data, size_t size,
		size_t split, struct gg_err *err)
{
	int rc = packscan_new(s, err);

	if (rc == 0)
		rc = packscan_feed(*s, data, split, err);
	if (rc == 0)
		rc = packscan_feed(*s, data + split, size - split, err);
	if (rc == 0)
		rc = packscan_finish(*s, err);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct packscan *s = NULL, *whole = NULL;
	struct gg_err err = GG_ERR_INIT, err1 = GG_ERR_INIT;
	size_t split;
	bool d;
	int fd, rc, rc1;

	if (!ready)
		ready = git_libgit2_init() > 0; /* commit ids are hashed */
	split = size ? ((size_t)data[size - 1] << 8 | data[size / 2]) %
			       (size + 1)
		     : 0;
	rc = scan(&s, data, size, split, &err);
	rc1 = scan(&whole, data, size, size, &err1);
	if (rc != rc1 || (rc == 0 && (packscan_ncommits(s) !=
					      packscan_ncommits(whole) ||
				      packscan_unknown(s) !=
					      packscan_unknown(whole))))
		abort(); /* chunking changed the outcome */
	packscan_free(whole);
	if (rc == 0) {
		fd = memfd_create("fuzz-pack", MFD_CLOEXEC);
		if (fd < 0 || write(fd, data, size) != (ssize_t)size)
			abort();
		rc = packscan_resolve(s, fd, 0, NULL, NULL, &err);
		close(fd);
	}
	if (rc == 0) {
		if (packscan_descends(&d, s, NEW_HEX, NEW_HEX, outside_none,
				      NULL, &err) != 0 ||
		    !d)
			abort(); /* a commit descends from itself */
		rc = packscan_descends(&d, s, OLD_HEX, NEW_HEX, outside_none,
				       NULL, &err);
		if (rc != 0 && rc != GG_ENOTFOUND && rc != GG_ENOMEM)
			abort();
	}
	packscan_free(s);
	return 0;
}

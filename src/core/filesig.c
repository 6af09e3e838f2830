/*
 * filesig.c - file signatures for polled reloads (filesig.h).
 */
#include "gitgate/core/filesig.h"

#include <string.h>
#include <sys/stat.h>

struct filesig filesig_of(const char *path)
{
	struct filesig sig;
	struct stat st;

	memset(&sig, 0, sizeof(sig));
	if (stat(path, &st) == 0) {
		sig.exists = true;
		sig.dev = st.st_dev;
		sig.ino = st.st_ino;
		sig.size = st.st_size;
		sig.mtime = st.st_mtim;
	}
	return sig;
}

bool filesig_equal(const struct filesig *a, const struct filesig *b)
{
	return a->exists == b->exists && a->dev == b->dev &&
	       a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

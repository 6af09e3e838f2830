/*
 * filesig.h - has a file changed since we last read it? The files gitgate
 * reloads while running (keys, revocations, the site policy) are polled:
 * a signature of device, inode, size and modification time tells a
 * rename-into-place (new inode) and an in-place edit (size or mtime) from
 * no change, without reading the file.
 */
#ifndef GITGATE_FILESIG_H
#define GITGATE_FILESIG_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

struct filesig {
	bool exists; /* stat succeeded; the rest is zero otherwise */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* The signature of path now (exists false if it cannot be stat'ed). */
struct filesig filesig_of(const char *path);

/* Same file, same size, same modification time? */
bool filesig_equal(const struct filesig *a, const struct filesig *b);

#endif

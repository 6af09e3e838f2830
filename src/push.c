/*
 * push.c - receive-pack request spooling.
 */
#include "gitgate/push.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct push {
	int fd;
	uint64_t len;
	char repo[256];
};

/* An anonymous file in dir: O_TMPFILE where the filesystem supports it,
 * else a named one unlinked straight away. */
static int spool_open(const char *dir, struct gg_err *err)
{
	char path[4096];
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	if ((size_t)snprintf(path, sizeof(path), "%s/push-XXXXXX", dir) >=
	    sizeof(path))
		return gg_err_set(err, GG_ELIMIT, "spool path too long");
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return gg_err_errno(err, GG_EIO, "cannot create spool in %s",
				    dir);
	unlink(path);
	return fd;
}

int push_new(struct push **out, const char *cache_dir, const char *repo,
	     struct gg_err *err)
{
	char dir[4096];
	struct push *p;
	int fd;

	*out = NULL;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/tmp", cache_dir) >=
	    sizeof(dir))
		return gg_err_set(err, GG_ELIMIT, "cache_dir path too long");
	if (mkdir(cache_dir, 0700) != 0 && errno != EEXIST)
		return gg_err_errno(err, GG_EIO, "cannot create %s", cache_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return gg_err_errno(err, GG_EIO, "cannot create %s", dir);
	fd = spool_open(dir, err);
	if (fd < 0)
		return fd;
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	p->fd = fd;
	snprintf(p->repo, sizeof(p->repo), "%s", repo);
	*out = p;
	return GG_OK;
}

int push_body(struct push *p, const void *data, size_t len,
	      struct gg_err *err)
{
	const char *d = data;
	ssize_t n;

	while (len > 0) {
		n = write(p->fd, d, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gg_err_errno(err, GG_EIO, "spooling push");
		d += n;
		len -= (size_t)n;
		p->len += (uint64_t)n;
	}
	return GG_OK;
}

int push_spool_fd(const struct push *p)
{
	return p->fd;
}

uint64_t push_spool_len(const struct push *p)
{
	return p->len;
}

void push_free(struct push *p)
{
	if (!p)
		return;
	close(p->fd);
	free(p);
}

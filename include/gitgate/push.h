/*
 * push.h - one receive-pack request: the body spooled to disk (bounded
 * memory whatever the pack size), removed when the push is freed.
 */
#ifndef GITGATE_PUSH_H
#define GITGATE_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include "gitgate/err.h"

struct push;

/* Create the spool file under cache_dir/tmp (created if missing). The file
 * is unlinked at once, so nothing is left behind whatever happens. */
int push_new(struct push **out, const char *cache_dir, const char *repo,
	     struct gg_err *err);
int push_body(struct push *p, const void *data, size_t len,
	      struct gg_err *err);
int push_spool_fd(const struct push *p);
uint64_t push_spool_len(const struct push *p);
void push_free(struct push *p);

#endif

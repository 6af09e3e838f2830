/*
 * bpipe.h - a bounded, blocking byte pipe between two threads.
 *
 * It is how the HTTP side and the upstream (curl) side of a relay exchange
 * bytes with backpressure: a writer blocks while the pipe is full, a reader
 * while it is empty. Memory is fixed at creation (cap bytes), whatever flows
 * through. Either side can abort, waking the other, which then fails.
 *
 * States: open -> closed (writer finished; reader drains then sees EOF)
 *         any  -> aborted (both sides fail from then on).
 */
#ifndef GITGATE_BPIPE_H
#define GITGATE_BPIPE_H

#include <stddef.h>
#include <sys/types.h>

struct bpipe;

struct bpipe *bpipe_new(size_t cap);
void bpipe_free(struct bpipe *p);

/* Write all len bytes, blocking while full. 0, or -1 if aborted. */
int bpipe_write(struct bpipe *p, const void *buf, size_t len);

/* Write what fits now without blocking; returns bytes taken (may be 0),
 * or -1 if aborted. */
ssize_t bpipe_write_some(struct bpipe *p, const void *buf, size_t len);

/* Read up to max bytes, blocking while empty. Returns bytes read, 0 at EOF
 * (closed and drained), -1 if aborted. */
ssize_t bpipe_read(struct bpipe *p, void *buf, size_t max);

/* Like bpipe_read but never blocks: -2 when nothing is available yet. */
ssize_t bpipe_read_some(struct bpipe *p, void *buf, size_t max);

void bpipe_close(struct bpipe *p); /* writer: no more data */
void bpipe_abort(struct bpipe *p); /* either side: give up */
int bpipe_aborted(struct bpipe *p);
/* The writer is finished: closed (whether or not drained) or aborted. */
int bpipe_closed(struct bpipe *p);

#endif

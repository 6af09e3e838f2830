/*
 * bpipe.c - bounded blocking byte pipe (ring buffer + mutex + condvars).
 */
#include "gitgate/http/bpipe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bpipe {
	pthread_mutex_t lock;
	pthread_cond_t readable;
	pthread_cond_t writable;
	unsigned char *buf;
	size_t cap;
	size_t head; /* next byte to read */
	size_t used;
	int closed;
	int aborted;
};

struct bpipe *bpipe_new(size_t cap)
{
	struct bpipe *p;

	if (cap == 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->buf = malloc(cap);
	if (!p->buf) {
		free(p);
		return NULL;
	}
	p->cap = cap;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->readable, NULL);
	pthread_cond_init(&p->writable, NULL);
	return p;
}

void bpipe_free(struct bpipe *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->readable);
	pthread_cond_destroy(&p->writable);
	free(p->buf);
	free(p);
}

/* Copy up to len bytes in; lock held. Returns bytes copied. */
static size_t put_locked(struct bpipe *p, const unsigned char *src, size_t len)
{
	size_t n = p->cap - p->used, tail, first;

	if (n > len)
		n = len;
	tail = (p->head + p->used) % p->cap;
	first = p->cap - tail < n ? p->cap - tail : n;
	memcpy(p->buf + tail, src, first);
	memcpy(p->buf, src + first, n - first);
	p->used += n;
	if (n)
		pthread_cond_signal(&p->readable);
	return n;
}

static size_t take_locked(struct bpipe *p, unsigned char *dst, size_t max)
{
	size_t n = p->used < max ? p->used : max;
	size_t first = p->cap - p->head < n ? p->cap - p->head : n;

	memcpy(dst, p->buf + p->head, first);
	memcpy(dst + first, p->buf, n - first);
	p->head = (p->head + n) % p->cap;
	p->used -= n;
	/* Wake a blocked writer only once half the pipe is free: waking it
	 * for every few bytes read makes the two threads ping-pong. */
	if (n && p->cap - p->used >= p->cap / 2)
		pthread_cond_signal(&p->writable);
	return n;
}

int bpipe_write(struct bpipe *p, const void *buf, size_t len)
{
	const unsigned char *src = buf;
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	if (p->aborted || p->closed)
		ret = -1;
	while (ret == 0 && len > 0) {
		size_t n;

		while (!p->aborted && p->used == p->cap)
			pthread_cond_wait(&p->writable, &p->lock);
		if (p->aborted || p->closed) {
			ret = -1;
			break;
		}
		n = put_locked(p, src, len);
		src += n;
		len -= n;
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}

ssize_t bpipe_write_some(struct bpipe *p, const void *buf, size_t len)
{
	ssize_t ret;

	pthread_mutex_lock(&p->lock);
	if (p->aborted || p->closed)
		ret = -1;
	else
		ret = (ssize_t)put_locked(p, buf, len);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

ssize_t bpipe_read(struct bpipe *p, void *buf, size_t max)
{
	ssize_t ret;

	pthread_mutex_lock(&p->lock);
	while (!p->aborted && !p->closed && p->used == 0)
		pthread_cond_wait(&p->readable, &p->lock);
	if (p->aborted)
		ret = -1;
	else
		ret = (ssize_t)take_locked(p, buf, max);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

ssize_t bpipe_read_some(struct bpipe *p, void *buf, size_t max)
{
	ssize_t ret;

	pthread_mutex_lock(&p->lock);
	if (p->aborted)
		ret = -1;
	else if (p->used == 0 && !p->closed)
		ret = -2;
	else
		ret = (ssize_t)take_locked(p, buf, max);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

void bpipe_close(struct bpipe *p)
{
	pthread_mutex_lock(&p->lock);
	p->closed = 1;
	pthread_cond_broadcast(&p->readable);
	pthread_cond_broadcast(&p->writable);
	pthread_mutex_unlock(&p->lock);
}

void bpipe_abort(struct bpipe *p)
{
	pthread_mutex_lock(&p->lock);
	p->aborted = 1;
	pthread_cond_broadcast(&p->readable);
	pthread_cond_broadcast(&p->writable);
	pthread_mutex_unlock(&p->lock);
}

int bpipe_aborted(struct bpipe *p)
{
	int a;

	pthread_mutex_lock(&p->lock);
	a = p->aborted;
	pthread_mutex_unlock(&p->lock);
	return a;
}

int bpipe_closed(struct bpipe *p)
{
	int c;

	pthread_mutex_lock(&p->lock);
	c = p->closed || p->aborted;
	pthread_mutex_unlock(&p->lock);
	return c;
}

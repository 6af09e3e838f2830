/*
 * connwatch.c - deadlines for connections that owe gitgate a request.
 *
 * A plain list under one mutex: at most 1024 connections exist, a sweep
 * runs five times a second, and add/remove happen once per connection.
 */
#include "gitgate/http/connwatch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>

struct connwatch_conn {
	struct connwatch_conn *prev, *next;
	int fd;
	bool waiting;   /* no request in progress */
	bool shut;      /* already shut down by a sweep */
	int64_t since_ms; /* waiting since */
};

struct connwatch {
	struct connwatch_limits lim;
	pthread_mutex_t lock;
	struct connwatch_conn *head;
};

int connwatch_new(struct connwatch **out, const struct connwatch_limits *lim,
		  struct gg_err *err)
{
	struct connwatch *w;

	*out = NULL;
	if (lim->deadline_ms <= 0 || lim->grace_ms <= 0)
		return gg_err_set(err, GG_EINVAL, "connwatch: bad deadline");
	w = calloc(1, sizeof(*w));
	if (!w)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	w->lim = *lim;
	pthread_mutex_init(&w->lock, NULL);
	*out = w;
	return GG_OK;
}

void connwatch_free(struct connwatch *w)
{
	struct connwatch_conn *c, *next;

	if (!w)
		return;
	for (c = w->head; c; c = next) {
		next = c->next;
		free(c);
	}
	pthread_mutex_destroy(&w->lock);
	free(w);
}

struct connwatch_conn *connwatch_add(struct connwatch *w, int fd,
				     int64_t now_ms)
{
	struct connwatch_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->waiting = true;
	c->since_ms = now_ms;
	pthread_mutex_lock(&w->lock);
	c->next = w->head;
	if (w->head)
		w->head->prev = c;
	w->head = c;
	pthread_mutex_unlock(&w->lock);
	return c;
}

void connwatch_busy(struct connwatch *w, struct connwatch_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&w->lock);
	c->waiting = false;
	pthread_mutex_unlock(&w->lock);
}

void connwatch_idle(struct connwatch *w, struct connwatch_conn *c,
		    int64_t now_ms)
{
	if (!c)
		return;
	pthread_mutex_lock(&w->lock);
	c->waiting = true;
	c->since_ms = now_ms;
	pthread_mutex_unlock(&w->lock);
}

void connwatch_remove(struct connwatch *w, struct connwatch_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&w->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&w->lock);
	free(c);
}

static unsigned count_waiting(const struct connwatch *w)
{
	const struct connwatch_conn *c;
	unsigned n = 0;

	for (c = w->head; c; c = c->next)
		n += c->waiting && !c->shut;
	return n;
}

unsigned connwatch_sweep(struct connwatch *w, int64_t now_ms,
			 int *under_pressure)
{
	struct connwatch_conn *c;
	int64_t deadline;
	unsigned n = 0;
	bool pressed;

	pthread_mutex_lock(&w->lock);
	pressed = count_waiting(w) > w->lim.pressure;
	deadline = pressed ? w->lim.grace_ms : w->lim.deadline_ms;
	for (c = w->head; c; c = c->next) {
		if (!c->waiting || c->shut || now_ms - c->since_ms <= deadline)
			continue;
		/* Held under the lock, and remove() takes it before the
		 * descriptor is closed: fd is still this connection's. */
		shutdown(c->fd, SHUT_RDWR);
		c->shut = true;
		n++;
	}
	pthread_mutex_unlock(&w->lock);
	if (under_pressure)
		*under_pressure = pressed;
	return n;
}

unsigned connwatch_waiting(struct connwatch *w)
{
	unsigned n;

	pthread_mutex_lock(&w->lock);
	n = count_waiting(w);
	pthread_mutex_unlock(&w->lock);
	return n;
}

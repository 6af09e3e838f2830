/*
 * connwatch.h - deadlines for client connections that owe gitgate a request.
 *
 * Until a request's headers are complete nothing about it is authenticated,
 * so that phase is the one an anonymous client can stretch: libmicrohttpd's
 * connection timeout restarts with every byte, and a client that trickles
 * one header byte a minute holds a thread and one of the 1024 connection
 * slots for ever (slowloris). connwatch bounds it. Every connection that is
 * waiting for a request (new, or kept alive after one) must complete the
 * next request's headers within deadline_ms; when more than `pressure`
 * connections are waiting at once, within grace_ms. An overdue socket is
 * shut down (not closed: the descriptor stays libmicrohttpd's), so the
 * connection's thread sees end-of-file and closes it the usual way.
 *
 * Times are passed in (monotonic milliseconds) so that callers decide the
 * clock and tests need not sleep. All functions are thread-safe: entries
 * are added and removed by connection threads, swept by the ticking one.
 */
#ifndef GITGATE_CONNWATCH_H
#define GITGATE_CONNWATCH_H

#include "gitgate/core/err.h"

#include <stdint.h>

struct connwatch;
struct connwatch_conn;

struct connwatch_limits {
	int64_t deadline_ms; /* to complete a request's headers */
	int64_t grace_ms;    /* the same while under pressure */
	unsigned pressure;   /* more connections waiting than this */
};

int connwatch_new(struct connwatch **out, const struct connwatch_limits *lim,
		  struct gg_err *err);
/* Entries still registered are forgotten; no socket is touched. */
void connwatch_free(struct connwatch *w);

/* Register fd, waiting for a request since now_ms. NULL when out of
 * memory: the connection is then simply not watched. */
struct connwatch_conn *connwatch_add(struct connwatch *w, int fd,
				     int64_t now_ms);
/* A request's headers are complete: no deadline until it ends. */
void connwatch_busy(struct connwatch *w, struct connwatch_conn *c);
/* The request ended; the connection waits for the next one. */
void connwatch_idle(struct connwatch *w, struct connwatch_conn *c,
		    int64_t now_ms);
/* Forget c. Must be called before fd is closed (so a sweep can never shut
 * down a descriptor number that has been reused). c may be NULL. */
void connwatch_remove(struct connwatch *w, struct connwatch_conn *c);

/* Shut down every overdue connection; returns how many. Each is shut down
 * once and stops counting as waiting. *under_pressure (may be NULL) says
 * whether the grace deadline applied. */
unsigned connwatch_sweep(struct connwatch *w, int64_t now_ms,
			 int *under_pressure);

/* Connections waiting for a request now (for tests and logs). */
unsigned connwatch_waiting(struct connwatch *w);

#endif

/*
 * server.h - the proxy: listener, libmicrohttpd daemon, reloads, shutdown.
 * The request pipeline behind it is in request.h.
 *
 * Threading: one thread per client connection (libmicrohttpd), plus one
 * relay thread per upstream transfer. The caller's thread owns signals and
 * drives server_tick (reload polling) and server_shutdown.
 */
#ifndef GITGATE_SERVER_H
#define GITGATE_SERVER_H

#include "gitgate/config/config.h"
#include "gitgate/core/err.h"

struct server;

/* Load keys, revocations, the upstream secret and the audit log, bind the
 * listen address and start serving. Takes no ownership of cfg (copied). */
int server_new(struct server **out, const struct config *cfg,
	       struct gg_err *err);

/* Poll the key and revocation files; reload them if changed (or always
 * when force, i.e. on SIGHUP, which also reopens the audit log). */
void server_tick(struct server *srv, int force);

/* Stop accepting, let requests in flight finish for at most grace_s
 * seconds, then stop. Returns the number of requests cut off. */
unsigned server_shutdown(struct server *srv, unsigned grace_s);

void server_free(struct server *srv);

#endif

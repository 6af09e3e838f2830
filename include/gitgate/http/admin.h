/*
 * admin.h - the admin listener ("admin_listen"): GET /metrics (Prometheus
 * text), /healthz (the process answers) and /readyz (it can serve). Never
 * the sandbox-facing listener: what it tells is for operators and probes.
 * No authentication; bind it where only they reach (loopback, a pod's
 * port the NetworkPolicy keeps from sandboxes).
 */
#ifndef GITGATE_HTTP_ADMIN_H
#define GITGATE_HTTP_ADMIN_H

#include <stddef.h>

#include "gitgate/core/err.h"

struct admin;

/* Readiness: write one line per failing part into buf (each ending in
 * '\n', NUL-terminated, cut at size) and return how many failed; 0 means
 * ready. Called on the admin listener's thread. */
typedef size_t (*admin_ready_fn)(void *cls, char *buf, size_t size);

/* Bind host:port and serve on a thread of its own. Errors name
 * "admin_listen" and the address. */
int admin_new(struct admin **out, const char *host, unsigned short port,
	      admin_ready_fn ready, void *cls, struct gg_err *err);

/* Stop serving and close the socket. admin_free(NULL) is a no-op. */
void admin_free(struct admin *a);

#endif

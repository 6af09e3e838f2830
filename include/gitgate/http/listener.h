/*
 * listener.h - the listening sockets gitgate binds itself (the git
 * listener and the admin one), so errors name the address and both
 * resolve names and IPv4/IPv6 literals alike.
 */
#ifndef GITGATE_HTTP_LISTENER_H
#define GITGATE_HTTP_LISTENER_H

#include <stdarg.h>
#include <stdbool.h>

#include "gitgate/core/err.h"

/* A listening TCP socket (close-on-exec, SO_REUSEADDR) on host:port: the
 * descriptor, or a negative GG_E* code with err naming label ("listen",
 * "admin_listen") and the address. */
int listener_open(const char *label, const char *host, unsigned short port,
		  struct gg_err *err);

/* Is the socket bound to a loopback address (127/8, ::1, or 127/8 mapped
 * into IPv6)? */
bool listener_is_loopback(int fd);

/* libmicrohttpd's MHD_OPTION_EXTERNAL_LOGGER for both daemons: one log
 * line per message, trailing newlines cut, prefixed by cls (a const char
 * *, e.g. "http" or "admin http"). */
void listener_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#endif

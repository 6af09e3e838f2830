/*
 * sdnotify.h - systemd's readiness protocol (sd_notify(3)) without
 * libsystemd: one datagram per state change on the AF_UNIX socket named by
 * $NOTIFY_SOCKET, a file system path or, with a leading '@', an abstract
 * socket. Messages are newline-separated "KEY=VALUE" lines ("READY=1",
 * "STOPPING=1", "RELOADING=1", "WATCHDOG=1", "STATUS=...").
 *
 * Invariants: fd < 0 means notifications are off (no $NOTIFY_SOCKET: not
 * run by systemd with Type=notify), and every call is then a no-op that
 * succeeds; interval_ms > 0 only while the watchdog is on, and then
 * next_ms is the monotonic time the next WATCHDOG=1 is due.
 */
#ifndef GITGATE_SDNOTIFY_H
#define GITGATE_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "gitgate/core/err.h"

struct sdnotify {
	int fd;
	struct sockaddr_un addr;
	socklen_t addrlen;
	int64_t interval_ms; /* WATCHDOG_USEC / 2; 0 = no watchdog */
	int64_t next_ms;
};

/* Off: every call a no-op. No allocation. */
void sdnotify_init(struct sdnotify *n);

/*
 * Set up from the three environment values (each may be NULL), for a
 * process whose pid is self: sock is $NOTIFY_SOCKET, wd_usec
 * $WATCHDOG_USEC, wd_pid $WATCHDOG_PID (the watchdog is meant for that
 * process only; absent = this one). GG_EINVAL for a socket name that is
 * not absolute or '@', too long, or a watchdog value that is not a
 * positive decimal; GG_EIO if the socket cannot be made. On error n stays
 * off. Pure apart from socket(2): tests call it with their own values.
 */
int sdnotify_setup(struct sdnotify *n, const char *sock,
		   const char *wd_usec, const char *wd_pid, pid_t self,
		   struct gg_err *err);

/* sdnotify_setup from the environment, which it then clears of the three
 * variables, so that child processes (git upload-pack) do not talk to the
 * service manager on our behalf. Call before any thread exists. */
int sdnotify_from_env(struct sdnotify *n, struct gg_err *err);

bool sdnotify_enabled(const struct sdnotify *n);

/* Send msg as one datagram ("READY=1\nSTATUS=..."). GG_EIO with errno's
 * reason when the manager cannot be reached. */
int sdnotify_send(struct sdnotify *n, const char *msg, struct gg_err *err);

/* Milliseconds between watchdog pings (WATCHDOG_USEC / 2), 0 when off:
 * the caller's loop must wake at least this often. */
int64_t sdnotify_watchdog_interval_ms(const struct sdnotify *n);

/* Milliseconds from monotonic time now_ms until the next ping is due (0:
 * now), or -1 when the watchdog is off: how long the caller may sleep. */
int64_t sdnotify_watchdog_wait_ms(const struct sdnotify *n, int64_t now_ms);

/* Send WATCHDOG=1 if it is due at monotonic time now_ms (and schedule the
 * next); 1 when sent, 0 when not due or off, negative on a send error. */
int sdnotify_watchdog(struct sdnotify *n, int64_t now_ms, struct gg_err *err);

/* Close the socket; n is off afterwards. */
void sdnotify_release(struct sdnotify *n);

#endif

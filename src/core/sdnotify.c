/*
 * sdnotify.c - the sd_notify datagram protocol (see sdnotify.h). A dozen
 * lines of socket code are cheaper than a libsystemd dependency, and the
 * protocol is stable and documented (sd_notify(3), "Protocol").
 */
#include "gitgate/core/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sdnotify_init(struct sdnotify *n)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
}

/* A positive decimal of at most 18 digits (no sign, no spaces). */
static bool parse_positive(int64_t *out, const char *s)
{
	int64_t v = 0;
	size_t i;

	if (!s[0] || strlen(s) > 18)
		return false;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return v > 0;
}

static int set_address(struct sdnotify *n, const char *sock,
		       struct gg_err *err)
{
	size_t len = strlen(sock);

	if (sock[0] != '/' && sock[0] != '@')
		return gg_err_set(err, GG_EINVAL,
				  "NOTIFY_SOCKET: must be an absolute path or "
				  "start with '@'");
	if (len < 2 || len >= sizeof(n->addr.sun_path))
		return gg_err_set(err, GG_EINVAL,
				  "NOTIFY_SOCKET: %zu bytes, want 2 to %zu", len,
				  sizeof(n->addr.sun_path) - 1);
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, sock, len);
	/* An abstract name is not NUL-terminated: its length is the
	 * address length. */
	if (sock[0] == '@')
		n->addr.sun_path[0] = '\0';
	n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
				 (sock[0] == '/'));
	return 0;
}

/* The watchdog is ours unless WATCHDOG_PID names another process (then
 * the manager set it for a parent that exec'd us, and expects nothing). */
static int set_watchdog(struct sdnotify *n, const char *wd_usec,
			const char *wd_pid, pid_t self, struct gg_err *err)
{
	int64_t usec, pid;

	if (!wd_usec)
		return 0;
	if (!parse_positive(&usec, wd_usec))
		return gg_err_set(err, GG_EINVAL,
				  "WATCHDOG_USEC: not a positive number");
	if (wd_pid && (!parse_positive(&pid, wd_pid) || pid != (int64_t)self))
		return 0;
	/* Half the timeout, as sd_watchdog_enabled(3) advises; at least
	 * 1 ms so a tiny value still gives a loop that terminates. */
	n->interval_ms = usec / 2000 > 0 ? usec / 2000 : 1;
	n->next_ms = 0;
	return 0;
}

int sdnotify_setup(struct sdnotify *n, const char *sock,
		   const char *wd_usec, const char *wd_pid, pid_t self,
		   struct gg_err *err)
{
	int ret;

	sdnotify_init(n);
	if (!sock || !sock[0])
		return 0;
	ret = set_address(n, sock, err);
	if (!ret)
		ret = set_watchdog(n, wd_usec, wd_pid, self, err);
	if (ret) {
		sdnotify_init(n);
		return ret;
	}
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		ret = gg_err_errno(err, GG_EIO, "NOTIFY_SOCKET: socket");
		sdnotify_init(n);
	}
	return ret;
}

int sdnotify_from_env(struct sdnotify *n, struct gg_err *err)
{
	int ret = sdnotify_setup(n, getenv("NOTIFY_SOCKET"),
				 getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"),
				 getpid(), err);

	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return ret;
}

bool sdnotify_enabled(const struct sdnotify *n)
{
	return n->fd >= 0;
}

int sdnotify_send(struct sdnotify *n, const char *msg, struct gg_err *err)
{
	ssize_t sent;

	if (n->fd < 0)
		return 0;
	sent = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL,
		      (const struct sockaddr *)&n->addr, n->addrlen);
	if (sent < 0)
		return gg_err_errno(err, GG_EIO, "NOTIFY_SOCKET: send");
	return 0;
}

int64_t sdnotify_watchdog_interval_ms(const struct sdnotify *n)
{
	return n->fd >= 0 ? n->interval_ms : 0;
}

int64_t sdnotify_watchdog_wait_ms(const struct sdnotify *n, int64_t now_ms)
{
	if (n->fd < 0 || n->interval_ms <= 0)
		return -1;
	return n->next_ms > now_ms ? n->next_ms - now_ms : 0;
}

int sdnotify_watchdog(struct sdnotify *n, int64_t now_ms, struct gg_err *err)
{
	int ret;

	if (n->fd < 0 || n->interval_ms <= 0 || now_ms < n->next_ms)
		return 0;
	n->next_ms = now_ms + n->interval_ms;
	ret = sdnotify_send(n, "WATCHDOG=1", err);
	return ret ? ret : 1;
}

void sdnotify_release(struct sdnotify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	sdnotify_init(n);
}

/* test_sdnotify.c - the sd_notify datagrams, received on real unix
 * datagram sockets (a path and an abstract name), the watchdog schedule,
 * and each way the environment can be wrong. */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gitgate/core/sdnotify.h"

/* A receiving socket bound to name ('/' path or '@' abstract). */
static int bind_receiver(const char *name)
{
	struct sockaddr_un sa;
	size_t len = strlen(name);
	socklen_t salen;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, salen), 0);
	return fd;
}

/* The next datagram, or "" when none is waiting. */
static void recv_msg(int fd, char *buf, size_t cap)
{
	ssize_t n = recv(fd, buf, cap - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
}

static char sock_path[64];

static void make_path(void)
{
	snprintf(sock_path, sizeof(sock_path), "/tmp/gg-sdnotify-%d.sock",
		 (int)getpid());
	unlink(sock_path);
}

START_TEST(path_socket_gets_messages)
{
	struct gg_err err = GG_ERR_INIT;
	struct sdnotify n;
	char buf[256];
	int rx;

	make_path();
	rx = bind_receiver(sock_path);
	ck_assert_int_eq(sdnotify_setup(&n, sock_path, NULL, NULL, getpid(),
					&err),
			 0);
	ck_assert(sdnotify_enabled(&n));
	ck_assert_int_eq(sdnotify_send(&n, "READY=1\nSTATUS=up", &err), 0);
	recv_msg(rx, buf, sizeof(buf));
	ck_assert_str_eq(buf, "READY=1\nSTATUS=up");
	ck_assert_int_eq(sdnotify_send(&n, "STOPPING=1", &err), 0);
	recv_msg(rx, buf, sizeof(buf));
	ck_assert_str_eq(buf, "STOPPING=1");
	/* no watchdog asked for: never pings */
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(&n), 0);
	ck_assert_int_eq(sdnotify_watchdog(&n, 1000000, &err), 0);
	ck_assert_int_eq(sdnotify_watchdog_wait_ms(&n, 1000000), -1);
	recv_msg(rx, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	sdnotify_release(&n);
	ck_assert(!sdnotify_enabled(&n));
	close(rx);
	unlink(sock_path);
}
END_TEST

START_TEST(abstract_socket_gets_messages)
{
	struct gg_err err = GG_ERR_INIT;
	struct sdnotify n;
	char name[64], buf[64];
	int rx;

	snprintf(name, sizeof(name), "@gg-sdnotify-test-%d", (int)getpid());
	rx = bind_receiver(name);
	ck_assert_int_eq(sdnotify_setup(&n, name, NULL, NULL, getpid(), &err),
			 0);
	ck_assert_int_eq(sdnotify_send(&n, "RELOADING=1", &err), 0);
	recv_msg(rx, buf, sizeof(buf));
	ck_assert_str_eq(buf, "RELOADING=1");
	sdnotify_release(&n);
	close(rx);
}
END_TEST

START_TEST(watchdog_pings_at_half_the_timeout)
{
	struct gg_err err = GG_ERR_INIT;
	struct sdnotify n;
	char buf[64];
	int rx;

	make_path();
	rx = bind_receiver(sock_path);
	/* 3 s timeout: a ping every 1.5 s */
	ck_assert_int_eq(sdnotify_setup(&n, sock_path, "3000000", NULL,
					getpid(), &err),
			 0);
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(&n), 1500);
	ck_assert_int_eq(sdnotify_watchdog_wait_ms(&n, 10000), 0);
	ck_assert_int_eq(sdnotify_watchdog(&n, 10000, &err), 1); /* first: now */
	ck_assert_int_eq(sdnotify_watchdog_wait_ms(&n, 10400), 1100);
	recv_msg(rx, buf, sizeof(buf));
	ck_assert_str_eq(buf, "WATCHDOG=1");
	ck_assert_int_eq(sdnotify_watchdog(&n, 11499, &err), 0);
	recv_msg(rx, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(sdnotify_watchdog(&n, 11500, &err), 1);
	recv_msg(rx, buf, sizeof(buf));
	ck_assert_str_eq(buf, "WATCHDOG=1");
	sdnotify_release(&n);
	close(rx);
	unlink(sock_path);
}
END_TEST

START_TEST(watchdog_for_another_pid_is_off)
{
	struct gg_err err = GG_ERR_INIT;
	struct sdnotify n;
	char pid[32];

	make_path();
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	ck_assert_int_eq(sdnotify_setup(&n, sock_path, "3000000", pid,
					getpid(), &err),
			 0);
	ck_assert(sdnotify_enabled(&n));
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(&n), 0);
	sdnotify_release(&n);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	ck_assert_int_eq(sdnotify_setup(&n, sock_path, "3000000", pid,
					getpid(), &err),
			 0);
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(&n), 1500);
	sdnotify_release(&n);
}
END_TEST

START_TEST(no_socket_is_a_quiet_no_op)
{
	struct gg_err err = GG_ERR_INIT;
	struct sdnotify n;

	ck_assert_int_eq(sdnotify_setup(&n, NULL, "3000000", NULL, getpid(),
					&err),
			 0);
	ck_assert(!sdnotify_enabled(&n));
	ck_assert_int_eq(sdnotify_send(&n, "READY=1", &err), 0);
	ck_assert_int_eq(sdnotify_watchdog(&n, 5000, &err), 0);
	ck_assert_int_eq(sdnotify_setup(&n, "", NULL, NULL, getpid(), &err), 0);
	ck_assert(!sdnotify_enabled(&n));
	sdnotify_release(&n);
}
END_TEST

static const struct {
	const char *socket;
	const char *usec;
	const char *msg;
} bad[] = {
	{ "relative.sock", NULL,
	  "NOTIFY_SOCKET: must be an absolute path or start with '@'" },
	{ "@", NULL, "NOTIFY_SOCKET: 1 bytes, want 2 to 107" },
	{ "/tmp/x", "0", "WATCHDOG_USEC: not a positive number" },
	{ "/tmp/x", "-5", "WATCHDOG_USEC: not a positive number" },
	{ "/tmp/x", "5s", "WATCHDOG_USEC: not a positive number" },
	{ "/tmp/x", "", "WATCHDOG_USEC: not a positive number" },
};

START_TEST(bad_environment_is_refused)
{
	struct gg_err err = GG_ERR_INIT;
	struct sdnotify n;

	ck_assert_int_eq(sdnotify_setup(&n, bad[_i].socket, bad[_i].usec, NULL,
					getpid(), &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, bad[_i].msg);
	ck_assert(!sdnotify_enabled(&n));
}
END_TEST

START_TEST(long_path_is_refused)
{
	struct gg_err err = GG_ERR_INIT;
	struct sdnotify n;
	char path[200];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	ck_assert_int_eq(sdnotify_setup(&n, path, NULL, NULL, getpid(), &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, "NOTIFY_SOCKET: 199 bytes, want 2 to 107");
}
END_TEST

START_TEST(manager_gone_is_an_error)
{
	struct gg_err err = GG_ERR_INIT;
	struct sdnotify n;

	make_path(); /* nothing bound there */
	ck_assert_int_eq(sdnotify_setup(&n, sock_path, NULL, NULL, getpid(),
					&err),
			 0);
	ck_assert_int_eq(sdnotify_send(&n, "READY=1", &err), GG_EIO);
	ck_assert_str_eq(err.msg,
			 "NOTIFY_SOCKET: send: No such file or directory");
	sdnotify_release(&n);
}
END_TEST

START_TEST(from_env_clears_the_environment)
{
	struct gg_err err = GG_ERR_INIT;
	struct sdnotify n;
	char buf[64];
	int rx;

	make_path();
	rx = bind_receiver(sock_path);
	setenv("NOTIFY_SOCKET", sock_path, 1);
	setenv("WATCHDOG_USEC", "1000000", 1);
	unsetenv("WATCHDOG_PID");
	ck_assert_int_eq(sdnotify_from_env(&n, &err), 0);
	ck_assert_ptr_null(getenv("NOTIFY_SOCKET"));
	ck_assert_ptr_null(getenv("WATCHDOG_USEC"));
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(&n), 500);
	ck_assert_int_eq(sdnotify_send(&n, "READY=1", &err), 0);
	recv_msg(rx, buf, sizeof(buf));
	ck_assert_str_eq(buf, "READY=1");
	sdnotify_release(&n);
	close(rx);
	unlink(sock_path);
}
END_TEST

static Suite *sdnotify_suite(void)
{
	Suite *s = suite_create("sdnotify");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, path_socket_gets_messages);
	tcase_add_test(tc, abstract_socket_gets_messages);
	tcase_add_test(tc, watchdog_pings_at_half_the_timeout);
	tcase_add_test(tc, watchdog_for_another_pid_is_off);
	tcase_add_test(tc, no_socket_is_a_quiet_no_op);
	tcase_add_loop_test(tc, bad_environment_is_refused, 0,
			    (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, long_path_is_refused);
	tcase_add_test(tc, manager_gone_is_an_error);
	tcase_add_test(tc, from_env_clears_the_environment);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sdnotify_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

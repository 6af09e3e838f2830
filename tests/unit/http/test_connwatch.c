/* test_connwatch.c - header deadlines: which sockets a sweep shuts down,
 * when, and that it never touches one it must not. Real sockets
 * (socketpair): a shut-down socket is seen as end-of-file by its peer. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gitgate/http/connwatch.h"

static const struct connwatch_limits lim = {
	.deadline_ms = 20000, .grace_ms = 2000, .pressure = 2
};

struct pair {
	int watched; /* the server's end, registered */
	int peer;    /* the client's end */
};

static void pair_open(struct pair *p)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p->watched = sv[0];
	p->peer = sv[1];
}

static void pair_close(struct pair *p)
{
	close(p->watched);
	close(p->peer);
}

/* 1: the peer sees end-of-file (shut down); 0: nothing yet. */
static int peer_sees_eof(const struct pair *p)
{
	char c;
	ssize_t n = recv(p->peer, &c, 1, MSG_DONTWAIT);

	if (n == 0)
		return 1;
	ck_assert_int_eq(n, -1);
	ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
	return 0;
}

static struct connwatch *watch_new(const struct connwatch_limits *l)
{
	struct gg_err err = GG_ERR_INIT;
	struct connwatch *w = NULL;

	ck_assert_int_eq(connwatch_new(&w, l, &err), GG_OK);
	ck_assert_ptr_nonnull(w);
	return w;
}

START_TEST(test_bad_limits_refused)
{
	struct connwatch_limits bad = lim;
	struct gg_err err = GG_ERR_INIT;
	struct connwatch *w = (void *)1;

	bad.deadline_ms = 0;
	ck_assert_int_eq(connwatch_new(&w, &bad, &err), GG_EINVAL);
	ck_assert_ptr_null(w);
	ck_assert_str_eq(err.msg, "connwatch: bad deadline");
	bad = lim;
	bad.grace_ms = -1;
	gg_err_init(&err);
	ck_assert_int_eq(connwatch_new(&w, &bad, &err), GG_EINVAL);
}
END_TEST

START_TEST(test_overdue_connection_shut_down_once)
{
	struct connwatch *w = watch_new(&lim);
	struct connwatch_conn *c;
	struct pair p;
	int pressed = -1;
	char b;

	pair_open(&p);
	c = connwatch_add(w, p.watched, 1000);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(connwatch_waiting(w), 1);
	/* exactly at the deadline is still in time */
	ck_assert_uint_eq(connwatch_sweep(w, 1000 + 20000, &pressed), 0);
	ck_assert_int_eq(pressed, 0);
	ck_assert_int_eq(peer_sees_eof(&p), 0);
	ck_assert_uint_eq(connwatch_sweep(w, 1000 + 20001, NULL), 1);
	ck_assert_int_eq(peer_sees_eof(&p), 1);
	/* the server's own thread sees end-of-file too, and closes */
	ck_assert_int_eq(recv(p.watched, &b, 1, MSG_DONTWAIT), 0);
	/* shut down once; no longer counted as waiting */
	ck_assert_uint_eq(connwatch_sweep(w, 1000 + 90000, NULL), 0);
	ck_assert_uint_eq(connwatch_waiting(w), 0);
	connwatch_remove(w, c);
	connwatch_free(w);
	pair_close(&p);
}
END_TEST

START_TEST(test_busy_connection_has_no_deadline)
{
	struct connwatch *w = watch_new(&lim);
	struct connwatch_conn *c;
	struct pair p;

	pair_open(&p);
	c = connwatch_add(w, p.watched, 0);
	connwatch_busy(w, c);
	ck_assert_uint_eq(connwatch_waiting(w), 0);
	/* a request may legitimately run for hours (a large clone) */
	ck_assert_uint_eq(connwatch_sweep(w, 10 * 3600 * 1000, NULL), 0);
	ck_assert_int_eq(peer_sees_eof(&p), 0);
	/* kept alive after the request: the clock starts again then */
	connwatch_idle(w, c, 36000000);
	ck_assert_uint_eq(connwatch_waiting(w), 1);
	ck_assert_uint_eq(connwatch_sweep(w, 36000000 + 20000, NULL), 0);
	ck_assert_int_eq(peer_sees_eof(&p), 0);
	ck_assert_uint_eq(connwatch_sweep(w, 36000000 + 20001, NULL), 1);
	ck_assert_int_eq(peer_sees_eof(&p), 1);
	connwatch_remove(w, c);
	connwatch_free(w);
	pair_close(&p);
}
END_TEST

START_TEST(test_pressure_shortens_deadline)
{
	struct connwatch *w = watch_new(&lim);
	struct connwatch_conn *c[3];
	struct pair p[3];
	int i, pressed = -1;

	for (i = 0; i < 3; i++) {
		pair_open(&p[i]);
		c[i] = connwatch_add(w, p[i].watched, i == 2 ? 1500 : 0);
	}
	/* three waiting, pressure 2: grace (2 s) applies */
	ck_assert_uint_eq(connwatch_sweep(w, 2000, &pressed), 0);
	ck_assert_int_eq(pressed, 1);
	ck_assert_uint_eq(connwatch_sweep(w, 2001, &pressed), 2);
	ck_assert_int_eq(peer_sees_eof(&p[0]), 1);
	ck_assert_int_eq(peer_sees_eof(&p[1]), 1);
	ck_assert_int_eq(peer_sees_eof(&p[2]), 0); /* younger than grace */
	/* pressure is over: the third gets the full deadline */
	ck_assert_uint_eq(connwatch_sweep(w, 3501, &pressed), 0);
	ck_assert_int_eq(pressed, 0);
	ck_assert_int_eq(peer_sees_eof(&p[2]), 0);
	ck_assert_uint_eq(connwatch_sweep(w, 21501, NULL), 1);
	ck_assert_int_eq(peer_sees_eof(&p[2]), 1);
	for (i = 0; i < 3; i++) {
		connwatch_remove(w, c[i]);
		pair_close(&p[i]);
	}
	connwatch_free(w);
}
END_TEST

START_TEST(test_busy_connections_are_no_pressure)
{
	struct connwatch *w = watch_new(&lim);
	struct connwatch_conn *c[3];
	struct pair p[3];
	int i, pressed = -1;

	for (i = 0; i < 3; i++) {
		pair_open(&p[i]);
		c[i] = connwatch_add(w, p[i].watched, 0);
	}
	connwatch_busy(w, c[0]);
	ck_assert_uint_eq(connwatch_sweep(w, 10000, &pressed), 0);
	ck_assert_int_eq(pressed, 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(peer_sees_eof(&p[i]), 0);
		connwatch_remove(w, c[i]);
		pair_close(&p[i]);
	}
	connwatch_free(w);
}
END_TEST

START_TEST(test_removed_connection_untouched)
{
	struct connwatch *w = watch_new(&lim);
	struct connwatch_conn *a, *b, *c;
	struct pair pa, pb, pc;

	pair_open(&pa);
	pair_open(&pb);
	pair_open(&pc);
	a = connwatch_add(w, pa.watched, 0);
	b = connwatch_add(w, pb.watched, 0);
	c = connwatch_add(w, pc.watched, 0);
	/* head, middle and tail of the list */
	connwatch_remove(w, b);
	connwatch_remove(w, c);
	ck_assert_uint_eq(connwatch_waiting(w), 1);
	ck_assert_uint_eq(connwatch_sweep(w, 60000, NULL), 1);
	ck_assert_int_eq(peer_sees_eof(&pa), 1);
	ck_assert_int_eq(peer_sees_eof(&pb), 0);
	ck_assert_int_eq(peer_sees_eof(&pc), 0);
	connwatch_remove(w, a);
	ck_assert_uint_eq(connwatch_waiting(w), 0);
	/* NULL (a connection registered while out of memory) is a no-op */
	connwatch_busy(w, NULL);
	connwatch_idle(w, NULL, 0);
	connwatch_remove(w, NULL);
	/* entries left registered are freed with the watch */
	connwatch_add(w, pb.watched, 0);
	connwatch_free(w);
	ck_assert_int_eq(peer_sees_eof(&pb), 0);
	pair_close(&pa);
	pair_close(&pb);
	pair_close(&pc);
}
END_TEST

/* Connection threads come and go while another thread sweeps: under the
 * sanitizers this is where a missing lock or a use-after-free shows. */
struct churn {
	struct connwatch *w;
	int rounds;
};

static void *churn_thread(void *arg)
{
	struct churn *ch = arg;
	struct connwatch_conn *c;
	struct pair p;
	int i;

	for (i = 0; i < ch->rounds; i++) {
		pair_open(&p);
		c = connwatch_add(ch->w, p.watched, 0);
		connwatch_busy(ch->w, c);
		connwatch_idle(ch->w, c, i % 2 ? 0 : 1000000);
		connwatch_remove(ch->w, c);
		pair_close(&p);
	}
	return NULL;
}

START_TEST(test_concurrent_churn_and_sweeps)
{
	struct churn ch = { watch_new(&lim), 2000 };
	pthread_t t[4];
	int i;

	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, churn_thread, &ch),
				 0);
	for (i = 0; i < 2000; i++)
		connwatch_sweep(ch.w, 100000, NULL);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ck_assert_uint_eq(connwatch_waiting(ch.w), 0);
	connwatch_free(ch.w);
}
END_TEST

static Suite *connwatch_suite(void)
{
	Suite *s = suite_create("connwatch");
	TCase *tc = tcase_create("deadlines");

	tcase_add_test(tc, test_bad_limits_refused);
	tcase_add_test(tc, test_overdue_connection_shut_down_once);
	tcase_add_test(tc, test_busy_connection_has_no_deadline);
	tcase_add_test(tc, test_pressure_shortens_deadline);
	tcase_add_test(tc, test_busy_connections_are_no_pressure);
	tcase_add_test(tc, test_removed_connection_untouched);
	tcase_add_test(tc, test_concurrent_churn_and_sweeps);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(connwatch_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

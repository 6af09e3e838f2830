/* test_bpipe.c - bounded blocking pipe: ring arithmetic, EOF, abort,
 * backpressure between real threads. */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gitgate/http/bpipe.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

START_TEST(test_write_read_close_eof)
{
	struct bpipe *p = bpipe_new(16);
	char buf[32];

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(bpipe_write(p, "hello", 5), 0);
	ck_assert_int_eq(bpipe_write(p, "", 0), 0);
	ck_assert_int_eq(bpipe_read(p, buf, sizeof(buf)), 5);
	ck_assert(memcmp(buf, "hello", 5) == 0);
	ck_assert_int_eq(bpipe_write(p, "abc", 3), 0);
	bpipe_close(p);
	/* closed: the reader still drains what is there, then sees EOF */
	ck_assert_int_eq(bpipe_read(p, buf, 2), 2);
	ck_assert(memcmp(buf, "ab", 2) == 0);
	ck_assert_int_eq(bpipe_read(p, buf, sizeof(buf)), 1);
	ck_assert_int_eq(buf[0], 'c');
	ck_assert_int_eq(bpipe_read(p, buf, sizeof(buf)), 0);
	ck_assert_int_eq(bpipe_read(p, buf, sizeof(buf)), 0);
	ck_assert_int_eq(bpipe_read_some(p, buf, sizeof(buf)), 0);
	/* writing after close is an error, not silently dropped data */
	ck_assert_int_eq(bpipe_write(p, "x", 1), -1);
	ck_assert_int_eq(bpipe_write_some(p, "x", 1), -1);
	ck_assert_int_eq(bpipe_aborted(p), 0);
	bpipe_free(p);
	bpipe_free(NULL);
}
END_TEST

START_TEST(test_wraparound_small_cap)
{
	struct bpipe *p = bpipe_new(7);
	unsigned char in[16], out[16];
	unsigned wseq = 0, rseq = 0;
	ssize_t n;
	size_t i, k;
	int round;

	ck_assert_ptr_nonnull(p);
	/* Writes of 5 and reads of 3 walk head and tail over every offset
	 * of the 7-byte ring, so each split of a copy is exercised. */
	for (round = 0; round < 200; round++) {
		size_t wlen = (size_t)(round % 3 == 2 ? 2 : 5);

		for (i = 0; i < wlen; i++)
			in[i] = (unsigned char)(wseq + i);
		n = bpipe_write_some(p, in, wlen);
		ck_assert_int_ge(n, 0);
		wseq += (unsigned)n;
		n = bpipe_read_some(p, out, 3);
		ck_assert_int_gt(n, 0);
		for (k = 0; k < (size_t)n; k++)
			ck_assert_uint_eq(out[k], (unsigned char)(rseq + k));
		rseq += (unsigned)n;
	}
	/* drain */
	while ((n = bpipe_read_some(p, out, sizeof(out))) > 0) {
		for (k = 0; k < (size_t)n; k++)
			ck_assert_uint_eq(out[k], (unsigned char)(rseq + k));
		rseq += (unsigned)n;
	}
	ck_assert_int_eq(n, -2);
	ck_assert_uint_eq(rseq, wseq);
	bpipe_free(p);
}
END_TEST

START_TEST(test_exact_fill_and_split)
{
	struct bpipe *p = bpipe_new(7);
	char buf[8];

	ck_assert_int_eq(bpipe_write(p, "abcde", 5), 0);
	ck_assert_int_eq(bpipe_read(p, buf, 3), 3);
	ck_assert(memcmp(buf, "abc", 3) == 0);
	/* tail at 5: "fghij" splits 2 + 3 around the end, filling it */
	ck_assert_int_eq(bpipe_write(p, "fghij", 5), 0);
	ck_assert_int_eq(bpipe_write_some(p, "k", 1), 0);
	ck_assert_int_eq(bpipe_read(p, buf, 8), 7);
	ck_assert(memcmp(buf, "defghij", 7) == 0);
	ck_assert_int_eq(bpipe_read_some(p, buf, 8), -2);
	bpipe_free(p);
}
END_TEST

START_TEST(test_some_semantics)
{
	struct bpipe *p = bpipe_new(4);
	char buf[8];

	ck_assert_int_eq(bpipe_read_some(p, buf, sizeof(buf)), -2);
	/* takes what fits, never blocks */
	ck_assert_int_eq(bpipe_write_some(p, "abcdef", 6), 4);
	ck_assert_int_eq(bpipe_write_some(p, "x", 1), 0);
	ck_assert_int_eq(bpipe_read_some(p, buf, 2), 2);
	ck_assert(memcmp(buf, "ab", 2) == 0);
	ck_assert_int_eq(bpipe_write_some(p, "efg", 3), 2);
	ck_assert_int_eq(bpipe_read_some(p, buf, sizeof(buf)), 4);
	ck_assert(memcmp(buf, "cdef", 4) == 0);
	ck_assert_int_eq(bpipe_read_some(p, buf, sizeof(buf)), -2);
	bpipe_close(p);
	ck_assert_int_eq(bpipe_read_some(p, buf, sizeof(buf)), 0);
	bpipe_free(p);
}
END_TEST

START_TEST(test_closed_reports_writer_finished)
{
	struct bpipe *p = bpipe_new(8), *q = bpipe_new(8);
	char buf[8];

	ck_assert_int_eq(bpipe_closed(p), 0);
	ck_assert_int_eq(bpipe_write(p, "ab", 2), 0);
	bpipe_close(p);
	/* closed means the writer is done, even with bytes left to read */
	ck_assert_int_eq(bpipe_closed(p), 1);
	ck_assert_int_eq(bpipe_read(p, buf, sizeof(buf)), 2);
	ck_assert_int_eq(bpipe_closed(p), 1);
	bpipe_abort(q);
	ck_assert_int_eq(bpipe_closed(q), 1);
	bpipe_free(p);
	bpipe_free(q);
}
END_TEST

START_TEST(test_abort_fails_both_sides)
{
	struct bpipe *p = bpipe_new(8);
	char buf[8];

	ck_assert_int_eq(bpipe_write(p, "abc", 3), 0);
	bpipe_abort(p);
	ck_assert_int_eq(bpipe_aborted(p), 1);
	/* buffered data is not delivered: an aborted transfer must look
	 * broken, never short */
	ck_assert_int_eq(bpipe_read(p, buf, sizeof(buf)), -1);
	ck_assert_int_eq(bpipe_read_some(p, buf, sizeof(buf)), -1);
	ck_assert_int_eq(bpipe_write(p, "x", 1), -1);
	ck_assert_int_eq(bpipe_write_some(p, "x", 1), -1);
	/* abort after close still wins */
	bpipe_close(p);
	ck_assert_int_eq(bpipe_read(p, buf, sizeof(buf)), -1);
	bpipe_free(p);

	p = bpipe_new(8);
	bpipe_close(p);
	bpipe_abort(p);
	ck_assert_int_eq(bpipe_read(p, buf, sizeof(buf)), -1);
	bpipe_free(p);
}
END_TEST

struct blocked {
	struct bpipe *p;
	size_t len;
	long ret;
	int returned; /* set with __atomic once the call is back */
};

static void *blocked_writer(void *payload)
{
	struct blocked *b = payload;
	char data[64];

	memset(data, 'w', sizeof(data));
	b->ret = bpipe_write(b->p, data, b->len);
	__atomic_store_n(&b->returned, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *blocked_reader(void *payload)
{
	struct blocked *b = payload;
	char data[64];

	b->ret = (long)bpipe_read(b->p, data, b->len);
	__atomic_store_n(&b->returned, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static int has_returned(struct blocked *b)
{
	return __atomic_load_n(&b->returned, __ATOMIC_SEQ_CST);
}

START_TEST(test_abort_wakes_writer)
{
	struct blocked b = { bpipe_new(4), 10, 99, 0 };
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, blocked_writer, &b), 0);
	sleep_ms(200);
	ck_assert_msg(!has_returned(&b), "writer did not block on a full pipe");
	bpipe_abort(b.p);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(b.ret, -1);
	bpipe_free(b.p);
}
END_TEST

START_TEST(test_abort_wakes_reader)
{
	struct blocked b = { bpipe_new(4), 4, 99, 0 };
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, blocked_reader, &b), 0);
	sleep_ms(200);
	ck_assert_msg(!has_returned(&b), "reader did not block when empty");
	bpipe_abort(b.p);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(b.ret, -1);
	bpipe_free(b.p);
}
END_TEST

START_TEST(test_close_wakes_reader)
{
	struct blocked b = { bpipe_new(4), 4, 99, 0 };
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, blocked_reader, &b), 0);
	sleep_ms(200);
	ck_assert(!has_returned(&b));
	bpipe_close(b.p);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(b.ret, 0);
	bpipe_free(b.p);
}
END_TEST

START_TEST(test_writer_resumes_when_drained)
{
	struct blocked b = { bpipe_new(4), 10, 99, 0 };
	char buf[16];
	size_t got = 0;
	ssize_t n;
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, blocked_writer, &b), 0);
	sleep_ms(100);
	ck_assert(!has_returned(&b));
	/* Backpressure: only cap bytes were taken; draining lets the rest
	 * in, and bpipe_write returns only once all 10 are in. */
	while (got < 10) {
		n = bpipe_read(b.p, buf, sizeof(buf));
		ck_assert_int_gt(n, 0);
		ck_assert_int_le(n, 4);
		got += (size_t)n;
	}
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(b.ret, 0);
	ck_assert_int_eq(bpipe_read_some(b.p, buf, sizeof(buf)), -2);
	bpipe_free(b.p);
}
END_TEST

/* --- 10 MB through a 4 KiB pipe, odd chunk sizes on both sides --- */

#define STREAM_LEN (10u * 1024 * 1024)

/* Byte i of the test stream: position-dependent, so a lost, duplicated
 * or reordered chunk shows up at its exact offset. */
static unsigned char stream_byte(uint32_t i)
{
	uint32_t x = i * 2654435761u;

	return (unsigned char)(x >> 24 ^ x >> 11 ^ i);
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

struct producer {
	struct bpipe *p;
	int use_some;
	uint64_t hash;
	int ret;
};

static void *produce(void *payload)
{
	struct producer *pr = payload;
	static unsigned char chunk[9000];
	uint32_t pos = 0, lcg = 12345;
	size_t len, i, off;
	ssize_t n;

	pr->hash = 14695981039346656037ull;
	while (pos < STREAM_LEN) {
		lcg = lcg * 1103515245u + 12345u;
		len = 1 + (lcg >> 8) % sizeof(chunk); /* often > cap */
		if (len > STREAM_LEN - pos)
			len = STREAM_LEN - pos;
		for (i = 0; i < len; i++)
			chunk[i] = stream_byte(pos + (uint32_t)i);
		pr->hash = fnv1a(pr->hash, chunk, len);
		if (!pr->use_some) {
			if (bpipe_write(pr->p, chunk, len) != 0) {
				pr->ret = -1;
				return NULL;
			}
		} else {
			for (off = 0; off < len; off += (size_t)n) {
				n = bpipe_write_some(pr->p, chunk + off,
						     len - off);
				if (n < 0) {
					pr->ret = -1;
					return NULL;
				}
				if (n == 0)
					sched_yield();
			}
		}
		pos += (uint32_t)len;
	}
	bpipe_close(pr->p);
	pr->ret = 0;
	return NULL;
}

static void run_stream(int use_some)
{
	struct producer pr = { bpipe_new(4096), use_some, 0, 99 };
	unsigned char buf[6000];
	uint64_t hash = 14695981039346656037ull;
	uint32_t pos = 0, lcg = 777;
	size_t max, i;
	ssize_t n;
	pthread_t t;

	ck_assert_ptr_nonnull(pr.p);
	ck_assert_int_eq(pthread_create(&t, NULL, produce, &pr), 0);
	for (;;) {
		lcg = lcg * 1103515245u + 12345u;
		max = 1 + (lcg >> 8) % sizeof(buf);
		n = use_some ? bpipe_read_some(pr.p, buf, max)
			     : bpipe_read(pr.p, buf, max);
		if (n == -2) {
			sched_yield();
			continue;
		}
		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		ck_assert_int_le(n, (ssize_t)max);
		ck_assert_int_le(n, 4096);
		for (i = 0; i < (size_t)n; i++)
			if (buf[i] != stream_byte(pos + (uint32_t)i))
				ck_abort_msg("wrong byte at offset %u",
					     (unsigned)(pos + i));
		hash = fnv1a(hash, buf, (size_t)n);
		pos += (uint32_t)n;
	}
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(pr.ret, 0);
	ck_assert_uint_eq(pos, STREAM_LEN);
	ck_assert_uint_eq(hash, pr.hash);
	bpipe_free(pr.p);
}

START_TEST(test_stream_10mb_blocking)
{
	run_stream(0);
}
END_TEST

START_TEST(test_stream_10mb_nonblocking)
{
	run_stream(1);
}
END_TEST

static Suite *bpipe_suite(void)
{
	Suite *s = suite_create("bpipe");
	TCase *tc = tcase_create("single");
	TCase *tt = tcase_create("threads");

	tcase_add_test(tc, test_write_read_close_eof);
	tcase_add_test(tc, test_wraparound_small_cap);
	tcase_add_test(tc, test_exact_fill_and_split);
	tcase_add_test(tc, test_some_semantics);
	tcase_add_test(tc, test_abort_fails_both_sides);
	tcase_add_test(tc, test_closed_reports_writer_finished);
	suite_add_tcase(s, tc);

	/* Generous: under valgrind the 10 MB streams are slow. */
	tcase_set_timeout(tt, 120);
	tcase_add_test(tt, test_abort_wakes_writer);
	tcase_add_test(tt, test_abort_wakes_reader);
	tcase_add_test(tt, test_close_wakes_reader);
	tcase_add_test(tt, test_writer_resumes_when_drained);
	tcase_add_test(tt, test_stream_10mb_blocking);
	tcase_add_test(tt, test_stream_10mb_nonblocking);
	suite_add_tcase(s, tt);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(bpipe_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* test_pktline.c - pkt-line reader, writer and payload copy. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/proto/pktline.h"

/* Read one packet from a NUL-terminated literal (length = strlen). */
static int rd(struct pkt *p, size_t *used, const char *s, unsigned flags,
	      struct gg_err *err)
{
	return pkt_read(p, used, s, strlen(s), flags, err);
}

START_TEST(read_data_packet)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt p;
	size_t used;

	ck_assert_int_eq(rd(&p, &used, "0009hello0000", 0, &err), 0);
	ck_assert_int_eq(p.type, PKT_DATA);
	ck_assert_uint_eq(p.len, 5);
	ck_assert_uint_eq(used, 9);
	ck_assert_mem_eq(p.data, "hello", 5);
}
END_TEST

START_TEST(read_specials)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt p;
	size_t used;

	ck_assert_int_eq(rd(&p, &used, "0000", 0, &err), 0);
	ck_assert_int_eq(p.type, PKT_FLUSH);
	ck_assert_uint_eq(used, 4);
	ck_assert_ptr_null(p.data);
	ck_assert_int_eq(rd(&p, &used, "0001rest", 0, &err), 0);
	ck_assert_int_eq(p.type, PKT_DELIM);
	ck_assert_uint_eq(used, 4);
	ck_assert_int_eq(rd(&p, &used, "0002", 0, &err), 0);
	ck_assert_int_eq(p.type, PKT_RESPONSE_END);
	ck_assert_uint_eq(p.len, 0);
}
END_TEST

START_TEST(read_0003_0004_invalid)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt p;
	size_t used;

	ck_assert_int_eq(rd(&p, &used, "0003x", 0, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "invalid pkt-line length 0003");
	gg_err_init(&err);
	ck_assert_int_eq(rd(&p, &used, "0004", 0, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "empty pkt-line (0004) not allowed");
}
END_TEST

START_TEST(read_non_hex)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt p;
	size_t used;

	ck_assert_int_eq(rd(&p, &used, "00zzabc", 0, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "bad pkt-line length \"00zz\"");
	gg_err_init(&err);
	/* non-printable bytes never reach the message */
	ck_assert_int_eq(rd(&p, &used, "0\x1b[1", 0, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "bad pkt-line length \"0?[1\"");
	gg_err_init(&err);
	ck_assert_int_eq(pkt_read(&p, &used,
				  "00\xff"
				  "0",
				  4, 0, &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, "bad pkt-line length \"00?0\"");
	gg_err_init(&err);
	/* a sign or space is not hex either (no strtol leniency) */
	ck_assert_int_eq(rd(&p, &used, "+009hello", 0, &err), GG_EINVAL);
	gg_err_init(&err);
	ck_assert_int_eq(rd(&p, &used, " 009hello", 0, &err), GG_EINVAL);
}
END_TEST

START_TEST(read_uppercase_hex)
{
	struct gg_err err = GG_ERR_INIT;
	char buf[0x1a + 1];
	struct pkt p;
	size_t used;

	/* git's own reader accepts either case */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "001A", 4);
	buf[0x1a] = '\0';
	ck_assert_int_eq(rd(&p, &used, buf, 0, &err), 0);
	ck_assert_uint_eq(p.len, 0x16);
	memcpy(buf, "001a", 4);
	ck_assert_int_eq(rd(&p, &used, buf, 0, &err), 0);
	ck_assert_uint_eq(used, 0x1a);
}
END_TEST

START_TEST(read_max_length)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char *buf = malloc(GG_MAX_PKT_LEN + 1);
	struct pkt p;
	size_t used;

	ck_assert_ptr_nonnull(buf);
	memset(buf, 'a', GG_MAX_PKT_LEN + 1);
	memcpy(buf, "fff0", 4); /* 65520: largest allowed */
	ck_assert_int_eq(pkt_read(&p, &used, buf, GG_MAX_PKT_LEN, 0, &err), 0);
	ck_assert_uint_eq(p.len, GG_MAX_PKT_DATA);
	ck_assert_uint_eq(used, 65520);
	memcpy(buf, "fff1", 4); /* 65521 */
	ck_assert_int_eq(pkt_read(&p, &used, buf, GG_MAX_PKT_LEN + 1, 0, &err),
			 GG_ELIMIT);
	ck_assert_str_eq(err.msg,
			 "pkt-line length 65521 exceeds maximum 65520");
	gg_err_init(&err);
	/* refused as soon as the header is seen, not after 64 KiB arrive */
	ck_assert_int_eq(pkt_read(&p, &used, "ffff", 4, 0, &err), GG_ELIMIT);
	free(buf);
}
END_TEST

START_TEST(read_need_more)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt p;
	size_t used;

	ck_assert_int_eq(pkt_read(&p, &used, "", 0, 0, &err), GG_EAGAIN);
	ck_assert_uint_eq(used, 4);
	ck_assert_int_eq(pkt_read(&p, &used, "00", 2, 0, &err), GG_EAGAIN);
	ck_assert_uint_eq(used, 4);
	ck_assert_int_eq(rd(&p, &used, "000ahel", 0, &err), GG_EAGAIN);
	ck_assert_uint_eq(used, 10); /* header known: the packet needs 10 */
	ck_assert_int_eq(err.code, GG_OK);
	/* a clean end of input is not an error */
	ck_assert_int_eq(pkt_read(&p, &used, "", 0, PKT_EOF, &err), GG_EAGAIN);
	ck_assert_int_eq(err.code, GG_OK);
}
END_TEST

START_TEST(read_truncated_at_eof)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt p;
	size_t used;

	ck_assert_int_eq(rd(&p, &used, "000ahel", PKT_EOF, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "truncated pkt-line: length 000a but only "
				  "7 bytes before end of input");
	gg_err_init(&err);
	ck_assert_int_eq(rd(&p, &used, "00", PKT_EOF, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "truncated pkt-line: 2 of 4 length bytes "
				  "before end of input");
}
END_TEST

START_TEST(read_chomp)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt p;
	size_t used;

	ck_assert_int_eq(rd(&p, &used, "0006a\n", PKT_CHOMP_LF, &err), 0);
	ck_assert_uint_eq(p.len, 1);
	ck_assert_uint_eq(used, 6);
	ck_assert_int_eq(rd(&p, &used, "0006a\n", 0, &err), 0);
	ck_assert_uint_eq(p.len, 2);
	ck_assert_int_eq(rd(&p, &used, "0005\n", PKT_CHOMP_LF, &err), 0);
	ck_assert_uint_eq(p.len, 0);
	ck_assert_int_eq(rd(&p, &used, "0007a\n\n", PKT_CHOMP_LF, &err), 0);
	ck_assert_uint_eq(p.len, 2); /* only one LF is dropped */
}
END_TEST

/* Read a stream packet by packet; record a summary string of what came. */
static int summarize(char *out, size_t outsz, const unsigned char *buf,
		     size_t len)
{
	struct gg_err err = GG_ERR_INIT;
	size_t pos = 0, used, o = 0;
	struct pkt p;
	int rc;

	out[0] = '\0';
	for (;;) {
		rc = pkt_read(&p, &used, buf + pos, len - pos, PKT_EOF, &err);
		if (rc == GG_EAGAIN && pos == len)
			return 0;
		if (rc < 0)
			return rc;
		if (p.type == PKT_DATA)
			o += (size_t)snprintf(out + o, outsz - o, "[%.*s]",
					      (int)p.len, p.data);
		else
			o += (size_t)snprintf(out + o, outsz - o, "<%d>",
					      (int)p.type);
		pos += used;
	}
}

/* Incremental use: a caller that buffers bytes as they arrive and calls
 * pkt_read after each one sees exactly the packets of a whole-buffer read. */
START_TEST(byte_at_a_time_equals_whole)
{
	static const char stream[] = "0009hello00000001000Bworld!\n0002"
				     "0006ab0000";
	size_t len = sizeof(stream) - 1, have = 0, start = 0, used;
	char whole[256], inc[256];
	size_t o = 0;
	struct gg_err err = GG_ERR_INIT;
	struct pkt p;
	int rc;

	ck_assert_int_eq(summarize(whole, sizeof(whole),
				   (const unsigned char *)stream, len),
			 0);
	ck_assert_str_eq(whole, "[hello]<1><2>[world!\n]<3>[ab]<1>");
	inc[0] = '\0';
	for (have = 1; have <= len; have++) {
		rc = pkt_read(&p, &used, stream + start, have - start, 0, &err);
		if (rc == GG_EAGAIN)
			continue;
		ck_assert_int_eq(rc, 0);
		if (p.type == PKT_DATA)
			o += (size_t)snprintf(inc + o, sizeof(inc) - o,
					      "[%.*s]", (int)p.len, p.data);
		else
			o += (size_t)snprintf(inc + o, sizeof(inc) - o, "<%d>",
					      (int)p.type);
		start += used;
	}
	ck_assert_uint_eq(start, len);
	ck_assert_str_eq(inc, whole);
}
END_TEST

START_TEST(write_data_and_flush)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf b;

	pkt_buf_init(&b, 1024);
	ck_assert_int_eq(pkt_write(&b, "hello", 5, &err), 0);
	ck_assert_int_eq(pkt_writef(&b, &err, "ok %s\n", "refs/heads/x"), 0);
	ck_assert_int_eq(pkt_write_delim(&b, &err), 0);
	ck_assert_int_eq(pkt_write_flush(&b, &err), 0);
	ck_assert_uint_eq(b.len, 9 + 20 + 4 + 4);
	ck_assert_mem_eq(b.data, "0009hello0014ok refs/heads/x\n00010000",
			 b.len);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(write_limits)
{
	struct gg_err err = GG_ERR_INIT;
	char *big = malloc(GG_MAX_PKT_DATA + 1);
	struct pkt_buf b;
	struct pkt p;
	size_t used;

	ck_assert_ptr_nonnull(big);
	memset(big, 'z', GG_MAX_PKT_DATA + 1);
	pkt_buf_init(&b, 2 * GG_MAX_PKT_LEN);
	ck_assert_int_eq(pkt_write(&b, big, GG_MAX_PKT_DATA, &err), 0);
	ck_assert_mem_eq(b.data, "fff0zz", 6);
	ck_assert_int_eq(pkt_read(&p, &used, b.data, b.len, 0, &err), 0);
	ck_assert_uint_eq(p.len, GG_MAX_PKT_DATA);
	ck_assert_int_eq(pkt_write(&b, big, GG_MAX_PKT_DATA + 1, &err),
			 GG_ELIMIT);
	ck_assert_str_eq(err.msg, "pkt-line payload of 65517 bytes exceeds "
				  "maximum 65516");
	gg_err_init(&err);
	ck_assert_int_eq(pkt_write(&b, "", 0, &err), GG_EINVAL);
	gg_err_init(&err);
	ck_assert_int_eq(pkt_writef(&b, &err, "%s", ""), GG_EINVAL);
	pkt_buf_release(&b);
	free(big);
}
END_TEST

START_TEST(write_buffer_cap_frees)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf b;

	pkt_buf_init(&b, 12);
	ck_assert_int_eq(pkt_write(&b, "abcd", 4, &err), 0);
	ck_assert_uint_eq(b.len, 8);
	/* would reach 16 > 12: fails and drops everything (curl dynbuf) */
	ck_assert_int_eq(pkt_write(&b, "efgh", 4, &err), GG_ELIMIT);
	ck_assert_str_eq(err.msg, "output exceeds maximum of 12 bytes");
	ck_assert_uint_eq(b.len, 0);
	ck_assert_ptr_null(b.data);
	/* and it is reusable afterwards */
	ck_assert_int_eq(pkt_write_flush(&b, NULL), 0);
	ck_assert_mem_eq(b.data, "0000", 4);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(write_detach)
{
	struct pkt_buf b;
	unsigned char *d;
	size_t n;

	pkt_buf_init(&b, 64);
	ck_assert_int_eq(pkt_write(&b, "x", 1, NULL), 0);
	d = pkt_buf_detach(&b, &n);
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(d, "0005x", 5);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	free(d);
}
END_TEST

START_TEST(sideband_small)
{
	struct gg_err err = GG_ERR_INIT;
	struct pkt_buf b;

	pkt_buf_init(&b, 1024);
	ck_assert_int_eq(
		pkt_write_sideband(&b, 2, "hi\n", 3, GG_MAX_PKT_LEN, &err), 0);
	ck_assert_int_eq(pkt_write_sideband(&b, 1, "", 0, GG_MAX_PKT_LEN, &err),
			 0);
	ck_assert_uint_eq(b.len, 8);
	ck_assert_mem_eq(b.data, "0008\002hi\n", 8);
	ck_assert_int_eq(
		pkt_write_sideband(&b, 4, "x", 1, GG_MAX_PKT_LEN, &err),
		GG_EINVAL);
	ck_assert_str_eq(err.msg, "side-band: bad band 4");
	pkt_buf_release(&b);
}
END_TEST

/* Split len bytes on band 1 with max_pkt; check each packet's size. */
static void check_split(size_t len, size_t max_pkt, size_t npkts,
			size_t last_payload)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char *data = malloc(len);
	size_t pos = 0, used, n = 0, total = 0;
	struct pkt_buf b;
	struct pkt p;

	ck_assert_ptr_nonnull(data);
	memset(data, 'q', len);
	pkt_buf_init(&b, 4 * len + 1024);
	ck_assert_int_eq(pkt_write_sideband(&b, 1, data, len, max_pkt, &err),
			 0);
	while (pos < b.len) {
		ck_assert_int_eq(pkt_read(&p, &used, b.data + pos, b.len - pos,
					  PKT_EOF, &err),
				 0);
		ck_assert_uint_le(used, max_pkt);
		ck_assert_uint_eq(p.data[0], 1);
		total += p.len - 1;
		pos += used;
		n++;
	}
	ck_assert_uint_eq(n, npkts);
	ck_assert_uint_eq(total, len);
	ck_assert_uint_eq(p.len - 1, last_payload);
	pkt_buf_release(&b);
	free(data);
}

START_TEST(sideband_split_64k)
{
	/* 65520 - 5 = 65515 payload bytes per packet */
	check_split(65515, GG_MAX_PKT_LEN, 1, 65515);
	check_split(65516, GG_MAX_PKT_LEN, 2, 1);
	check_split(200000, GG_MAX_PKT_LEN, 4, 200000 - 3 * 65515);
}
END_TEST

START_TEST(sideband_split_old)
{
	/* old side-band: 1000-byte packets, 995 payload bytes each */
	check_split(995, GG_MAX_SIDEBAND_OLD_PKT, 1, 995);
	check_split(996, GG_MAX_SIDEBAND_OLD_PKT, 2, 1);
	check_split(5000, GG_MAX_SIDEBAND_OLD_PKT, 6, 5000 - 5 * 995);
}
END_TEST

START_TEST(sideband_split_read)
{
	struct gg_err err = GG_ERR_INIT;
	const unsigned char *d;
	struct pkt p;
	size_t used, n;
	int band;

	ck_assert_int_eq(rd(&p, &used, "0008\003bad", 0, &err), 0);
	ck_assert_int_eq(pkt_sideband_split(&band, &d, &n, &p, &err), 0);
	ck_assert_int_eq(band, 3);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(d, "bad", 3);
	ck_assert_int_eq(rd(&p, &used, "0006\007x", 0, &err), 0);
	ck_assert_int_eq(pkt_sideband_split(&band, &d, &n, &p, &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, "side-band: bad band 7");
	gg_err_init(&err);
	ck_assert_int_eq(rd(&p, &used, "0000", 0, &err), 0);
	ck_assert_int_eq(pkt_sideband_split(&band, &d, &n, &p, &err),
			 GG_EINVAL);
}
END_TEST

START_TEST(dup_bytes_copies_payload)
{
	static const char wire[] = "000brefs/a\nxyz";
	struct gg_err err = GG_ERR_INIT;
	struct pkt p;
	size_t used;
	char *a, *b;

	/* A borrowed, not NUL-terminated payload: copied, then terminated. */
	ck_assert_int_eq(
		pkt_read(&p, &used, wire, sizeof(wire) - 1, PKT_CHOMP_LF, &err),
		0);
	ck_assert_uint_eq(p.len, 6);
	a = pkt_dup_bytes(p.data, p.len);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_ne(a, p.data);
	ck_assert_str_eq(a, "refs/a");
	/* A slice: exactly len bytes, whatever follows in the input. */
	b = pkt_dup_bytes(p.data + 5, 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(b, "a");
	free(a);
	free(b);
	/* Bytes are copied as they are, an embedded NUL included. */
	a = pkt_dup_bytes("a\0b", 3);
	ck_assert_ptr_nonnull(a);
	ck_assert_mem_eq(a, "a\0b", 4);
	free(a);
}
END_TEST

START_TEST(dup_bytes_empty_and_limits)
{
	char *a, *b;

	/* len 0 still allocates: a fresh "", each call its own. */
	a = pkt_dup_bytes("abc", 0);
	b = pkt_dup_bytes(NULL, 0);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	ck_assert_str_eq(a, "");
	ck_assert_str_eq(b, "");
	free(a);
	free(b);
	/* len + 1 would wrap: refused before malloc, not a 0-byte buffer. */
	ck_assert_ptr_null(pkt_dup_bytes("x", SIZE_MAX));
}
END_TEST

static Suite *pktline_suite(void)
{
	Suite *s = suite_create("pktline");
	TCase *r = tcase_create("read");
	TCase *w = tcase_create("write");

	tcase_add_test(r, read_data_packet);
	tcase_add_test(r, read_specials);
	tcase_add_test(r, read_0003_0004_invalid);
	tcase_add_test(r, read_non_hex);
	tcase_add_test(r, read_uppercase_hex);
	tcase_add_test(r, read_max_length);
	tcase_add_test(r, read_need_more);
	tcase_add_test(r, read_truncated_at_eof);
	tcase_add_test(r, read_chomp);
	tcase_add_test(r, byte_at_a_time_equals_whole);
	tcase_add_test(r, sideband_split_read);
	tcase_add_test(r, dup_bytes_copies_payload);
	tcase_add_test(r, dup_bytes_empty_and_limits);
	tcase_add_test(w, write_data_and_flush);
	tcase_add_test(w, write_limits);
	tcase_add_test(w, write_buffer_cap_frees);
	tcase_add_test(w, write_detach);
	tcase_add_test(w, sideband_small);
	tcase_add_test(w, sideband_split_64k);
	tcase_add_test(w, sideband_split_old);
	suite_add_tcase(s, r);
	suite_add_tcase(s, w);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pktline_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

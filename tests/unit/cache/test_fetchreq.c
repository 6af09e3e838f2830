/* test_fetchreq.c - reading an upload-pack request's wants (v0/v1, v2),
 * the gzip reader and Git-Protocol versions, malformed input included. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "gitgate/cache/fetchreq.h"
#include "gitgate/core/limits.h"

#define A40 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B40 "0123456789abcdef0123456789abcdef01234567"

/* Append s as one pkt-line to buf at *len. */
static void pkt(char *buf, size_t *len, const char *s)
{
	*len += (size_t)sprintf(buf + *len, "%04zx%s", strlen(s) + 4, s);
}

static void special(char *buf, size_t *len, const char *s)
{
	memcpy(buf + *len, s, 4);
	*len += 4;
}

static int parse(struct fetchreq *r, const char *buf, size_t len, int v,
		 struct gg_err *err)
{
	return fetchreq_parse(r, (const unsigned char *)buf, len, v, err);
}

START_TEST(v0_wants_in_order)
{
	struct gg_err err = GG_ERR_INIT;
	struct fetchreq r;
	char buf[1024];
	size_t len = 0;

	pkt(buf, &len, "want " A40 " multi_ack_detailed side-band-64k "
		       "agent=git/2.39.5\n");
	pkt(buf, &len, "want " B40 "\n");
	pkt(buf, &len, "shallow " A40 "\n");
	pkt(buf, &len, "deepen 1\n");
	special(buf, &len, "0000");
	pkt(buf, &len, "have " B40 "\n");
	pkt(buf, &len, "done\n");
	ck_assert_int_eq(parse(&r, buf, len, 0, &err), 0);
	ck_assert_int_eq(r.kind, FETCHREQ_PACK);
	ck_assert_uint_eq(r.nwants, 2);
	ck_assert_uint_eq(r.wants[0], 0xaa);
	ck_assert_uint_eq(r.wants[20], 0x01);
	ck_assert_uint_eq(r.wants[39], 0x67);
	ck_assert(!r.want_ref);
	fetchreq_release(&r);
	ck_assert_ptr_null(r.wants);
}
END_TEST

START_TEST(v2_fetch_args_after_delim)
{
	struct gg_err err = GG_ERR_INIT;
	struct fetchreq r;
	char buf[1024];
	size_t len = 0;

	pkt(buf, &len, "command=fetch\n");
	pkt(buf, &len, "agent=git/2.39.5\n");
	/* a capability line that looks like a want is not one */
	pkt(buf, &len, "want " B40 "\n");
	special(buf, &len, "0001");
	pkt(buf, &len, "thin-pack\n");
	pkt(buf, &len, "want " A40 "\n");
	pkt(buf, &len, "filter blob:none\n");
	pkt(buf, &len, "done\n");
	special(buf, &len, "0000");
	ck_assert_int_eq(parse(&r, buf, len, 2, &err), 0);
	ck_assert_int_eq(r.kind, FETCHREQ_PACK);
	ck_assert_uint_eq(r.nwants, 1);
	ck_assert_uint_eq(r.wants[0], 0xaa);
	fetchreq_release(&r);
}
END_TEST

START_TEST(v2_other_commands_and_want_ref)
{
	struct gg_err err = GG_ERR_INIT;
	struct fetchreq r;
	char buf[1024];
	size_t len = 0;

	pkt(buf, &len, "command=ls-refs\n");
	special(buf, &len, "0001");
	pkt(buf, &len, "ref-prefix refs/heads/\n");
	special(buf, &len, "0000");
	ck_assert_int_eq(parse(&r, buf, len, 2, &err), 0);
	ck_assert_int_eq(r.kind, FETCHREQ_OTHER);
	fetchreq_release(&r);

	len = 0;
	pkt(buf, &len, "command=fetchx\n");
	special(buf, &len, "0001");
	pkt(buf, &len, "want " A40 "\n");
	ck_assert_int_eq(parse(&r, buf, len, 2, &err), 0);
	ck_assert_int_eq(r.kind, FETCHREQ_OTHER);
	fetchreq_release(&r);

	len = 0;
	pkt(buf, &len, "command=fetch\n");
	special(buf, &len, "0001");
	pkt(buf, &len, "want-ref refs/heads/main\n");
	pkt(buf, &len, "want " A40 "\n");
	ck_assert_int_eq(parse(&r, buf, len, 2, &err), 0);
	ck_assert(r.want_ref);
	fetchreq_release(&r);
}
END_TEST

/* Build a body from payloads; "0000" and "0001" are sent as they are,
 * "raw:" text is appended unframed. */
static size_t body_of(char *buf, const char *const *parts)
{
	size_t len = 0;

	for (; *parts; parts++) {
		if (!strcmp(*parts, "0000") || !strcmp(*parts, "0001"))
			special(buf, &len, *parts);
		else if (!strncmp(*parts, "raw:", 4))
			len += (size_t)sprintf(buf + len, "%s", *parts + 4);
		else
			pkt(buf, &len, *parts);
	}
	return len;
}

/* Every malformed shape is refused with its reason (then relayed). */
START_TEST(malformed_requests)
{
	static const struct {
		const char *parts[5];
		int version;
		int code;
		const char *msg;
	} cases[] = {
		{ { "raw:0040want " A40 "\n", NULL }, 0, GG_EINVAL, "" },
		{ { "raw:zzzz", NULL }, 0, GG_EINVAL, "" },
		{ { "want " A40, NULL }, 0, GG_OK, NULL },
		{ { "want aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", NULL }, 0,
		  GG_EINVAL, "malformed want line" },
		{ { "want AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", NULL }, 0,
		  GG_EINVAL, "bad object id" },
		{ { "want gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", NULL }, 0,
		  GG_EINVAL, "bad object id" },
		{ { "want " A40 "x\n", NULL }, 0, GG_EINVAL,
		  "malformed want line" },
		{ { "0000", NULL }, 0, GG_EINVAL, "without wants" },
		{ { NULL }, 0, GG_EINVAL, "without wants" },
		{ { "0001", "want-ref x\n", "0000", NULL }, 2, GG_EINVAL,
		  "without a command" },
		{ { "command=fetch\n", "0000", NULL }, 2, GG_EINVAL,
		  "without wants" },
	};
	char buf[512];
	size_t i, len;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gg_err err = GG_ERR_INIT;
		struct fetchreq r;
		int rc;

		len = body_of(buf, cases[i].parts);
		rc = parse(&r, buf, len, cases[i].version, &err);
		ck_assert_msg(rc == cases[i].code, "case %zu: %d (%s)", i, rc,
			      err.msg);
		if (rc == 0) {
			fetchreq_release(&r);
			continue;
		}
		ck_assert_ptr_null(r.wants);
		ck_assert_msg(strstr(err.msg, cases[i].msg), "case %zu: %s", i,
			      err.msg);
	}
}
END_TEST

START_TEST(too_many_wants)
{
	size_t n = GG_MAX_CACHE_WANTS + 1, len = 0, i;
	char *buf = malloc(n * 50 + 16);
	struct gg_err err = GG_ERR_INIT;
	struct fetchreq r;

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < n; i++)
		pkt(buf, &len, "want " A40 "\n");
	ck_assert_int_eq(parse(&r, buf, len, 0, &err), GG_ELIMIT);
	ck_assert_ptr_null(r.wants);
	len -= 50; /* exactly the limit */
	ck_assert_int_eq(parse(&r, buf, len, 0, &err), 0);
	ck_assert_uint_eq(r.nwants, GG_MAX_CACHE_WANTS);
	fetchreq_release(&r);
	free(buf);
}
END_TEST

/* gzip as git writes it (deflate, gzip wrapper) */
static size_t gz(unsigned char *out, size_t cap, const void *in, size_t len)
{
	z_stream zs;

	memset(&zs, 0, sizeof(zs));
	ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
				      Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (unsigned char *)in;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
	len = zs.total_out;
	deflateEnd(&zs);
	return len;
}

START_TEST(gunzip_round_trip_and_limits)
{
	static unsigned char plain[200000], packed[300000];
	struct gg_err err = GG_ERR_INIT;
	unsigned char *out;
	size_t n, len, i;

	for (i = 0; i < sizeof(plain); i++)
		plain[i] = (unsigned char)(i * 7 % 251);
	n = gz(packed, sizeof(packed), plain, sizeof(plain));
	ck_assert_int_eq(fetchreq_gunzip(&out, &len, packed, n, sizeof(plain),
					 &err), 0);
	ck_assert_uint_eq(len, sizeof(plain));
	ck_assert_mem_eq(out, plain, len);
	free(out);
	/* one byte over the limit */
	ck_assert_int_eq(fetchreq_gunzip(&out, &len, packed, n,
					 sizeof(plain) - 1, &err), GG_ELIMIT);
	ck_assert_ptr_null(out);
	ck_assert_ptr_nonnull(strstr(err.msg, "once decompressed"));
	gg_err_init(&err);
	/* truncated stream, corrupt stream, not gzip */
	ck_assert_int_eq(fetchreq_gunzip(&out, &len, packed, n / 2,
					 sizeof(plain), &err), GG_EINVAL);
	packed[n / 2] ^= 0xff;
	packed[n / 2 + 1] ^= 0xff;
	ck_assert_int_eq(fetchreq_gunzip(&out, &len, packed, n,
					 sizeof(plain), &err), GG_EINVAL);
	ck_assert_int_eq(fetchreq_gunzip(&out, &len, plain, 100,
					 sizeof(plain), &err), GG_EINVAL);
	gg_err_init(&err); /* the first error is kept: see err.h */
	ck_assert_int_eq(fetchreq_gunzip(&out, &len, plain, 0,
					 sizeof(plain), &err), GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "corrupt or truncated"));
}
END_TEST

START_TEST(protocol_versions)
{
	ck_assert_int_eq(fetchreq_version(NULL), 0);
	ck_assert_int_eq(fetchreq_version(""), 0);
	ck_assert_int_eq(fetchreq_version("version=2"), 2);
	ck_assert_int_eq(fetchreq_version("version=1"), 1);
	ck_assert_int_eq(fetchreq_version("object-format=sha1:version=2"), 2);
	ck_assert_int_eq(fetchreq_version("version=2:foo=bar"), 2);
	ck_assert_int_eq(fetchreq_version("version=3"), 0);
	ck_assert_int_eq(fetchreq_version("version=22"), 0);
	ck_assert_int_eq(fetchreq_version("xversion=2"), 0);
}
END_TEST

static Suite *fetchreq_suite(void)
{
	Suite *s = suite_create("fetchreq");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, v0_wants_in_order);
	tcase_add_test(tc, v2_fetch_args_after_delim);
	tcase_add_test(tc, v2_other_commands_and_want_ref);
	tcase_add_test(tc, malformed_requests);
	tcase_add_test(tc, too_many_wants);
	tcase_add_test(tc, gunzip_round_trip_and_limits);
	tcase_add_test(tc, protocol_versions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fetchreq_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/* test_xff.c - the client's address from X-Forwarded-For: only from a
 * trusted peer, rightmost untrusted hop, several headers as one list,
 * malformed lists refused. */
#include <check.h>
#include <string.h>

#include "gitgate/http/xff.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define MAXV 3

static const char *const trusted_text[] = { "127.0.0.1/32", "10.9.0.0/16",
					    "fd00::/8" };

/* peer, header values (NULL-terminated), expected client or message */
static const struct {
	const char *peer;
	const char *values[MAXV + 1];
	const char *client; /* NULL: refused with msg */
	const char *msg;
} cases[] = {
	/* no header, or an untrusted peer: the peer, header unread */
	{ "127.0.0.1", { NULL }, "127.0.0.1", NULL },
	{ "192.0.2.1", { "10.1.2.3", NULL }, "192.0.2.1", NULL },
	{ "192.0.2.1", { "garbage", NULL }, "192.0.2.1", NULL },
	{ "::ffff:192.0.2.1", { "10.1.2.3", NULL }, "192.0.2.1", NULL },
	/* trusted peer: the rightmost untrusted hop */
	{ "127.0.0.1", { "10.1.2.3", NULL }, "10.1.2.3", NULL },
	{ "::ffff:127.0.0.1", { "10.1.2.3", NULL }, "10.1.2.3", NULL },
	{ "127.0.0.1", { "1.2.3.4, 10.1.2.3", NULL }, "10.1.2.3", NULL },
	{ "127.0.0.1", { "1.2.3.4, 10.1.2.3, 10.9.0.1", NULL }, "10.1.2.3",
	  NULL },
	{ "127.0.0.1", { "10.1.2.3, 10.9.0.1, 127.0.0.1", NULL }, "10.1.2.3",
	  NULL },
	{ "fd00::1", { "2001:db8::5, fd00::2", NULL }, "2001:db8::5", NULL },
	{ "127.0.0.1", { "::ffff:10.1.2.3", NULL }, "10.1.2.3", NULL },
	/* every hop trusted: the leftmost */
	{ "127.0.0.1", { "10.9.0.7, 10.9.0.1", NULL }, "10.9.0.7", NULL },
	{ "127.0.0.1", { "127.0.0.1", NULL }, "127.0.0.1", NULL },
	/* several headers: one list, in order */
	{ "127.0.0.1", { "1.2.3.4", "10.1.2.3", NULL }, "10.1.2.3", NULL },
	{ "127.0.0.1", { "10.1.2.3", "10.9.0.1", NULL }, "10.1.2.3", NULL },
	{ "127.0.0.1", { "5.5.5.5, 10.1.2.3", "10.9.0.1", "10.9.0.2", NULL },
	  "10.1.2.3", NULL },
	{ "127.0.0.1", { "10.9.0.3", "10.9.0.1", NULL }, "10.9.0.3", NULL },
	/* spaces, tabs and empty elements */
	{ "127.0.0.1", { " \t10.1.2.3 \t", NULL }, "10.1.2.3", NULL },
	{ "127.0.0.1", { "10.1.2.3,,", NULL }, "10.1.2.3", NULL },
	{ "127.0.0.1", { ", 10.1.2.3 , ", NULL }, "10.1.2.3", NULL },
	{ "127.0.0.1", { "10.1.2.3", "", NULL }, "10.1.2.3", NULL },
	/* what the client wrote left of its own hop is never read */
	{ "127.0.0.1", { "not an address, 10.1.2.3", NULL }, "10.1.2.3",
	  NULL },
	{ "127.0.0.1", { "junk", "10.1.2.3", NULL }, "10.1.2.3", NULL },
	/* malformed where the walk reads it: refused */
	{ "127.0.0.1", { "unknown", NULL }, NULL,
	  "malformed X-Forwarded-For: 'unknown' is not an IP address" },
	{ "127.0.0.1", { "10.1.2.3, 10.9.0.1:8080", NULL }, NULL,
	  "malformed X-Forwarded-For: '10.9.0.1:8080' is not an IP address" },
	{ "127.0.0.1", { "[fd00::1]", NULL }, NULL,
	  "malformed X-Forwarded-For: '[fd00::1]' is not an IP address" },
	{ "127.0.0.1", { "10.1.2.3 10.1.2.4", NULL }, NULL,
	  "malformed X-Forwarded-For: '10.1.2.3 10.1.2.4' is not an IP "
	  "address" },
	{ "127.0.0.1", { "10.1.2.3;x", NULL }, NULL,
	  "malformed X-Forwarded-For: '10.1.2.3;x' is not an IP address" },
	{ "127.0.0.1", { "10.0.0.0/8", NULL }, NULL,
	  "malformed X-Forwarded-For: '10.0.0.0/8' is not an IP address" },
	{ "127.0.0.1", { "", NULL }, NULL,
	  "malformed X-Forwarded-For: no address" },
	{ "127.0.0.1", { " , ,", "", NULL }, NULL,
	  "malformed X-Forwarded-For: no address" },
	{ "127.0.0.1", { "10.1.2.3", "junk", NULL }, NULL,
	  "malformed X-Forwarded-For: 'junk' is not an IP address" },
	{ "127.0.0.1", { "10.9.0.1, x\x01y", NULL }, NULL,
	  "malformed X-Forwarded-For: 'x?y' is not an IP address" },
};

static struct cidr trusted[3];

static void setup(void)
{
	int i;

	for (i = 0; i < N(trusted_text); i++)
		ck_assert_int_eq(cidr_parse(&trusted[i], trusted_text[i], NULL),
				 GG_OK);
}

static struct cidr_addr addr(const char *text)
{
	struct cidr_addr a;

	ck_assert_int_eq(cidr_addr_parse(&a, text, strlen(text), NULL), GG_OK);
	return a;
}

START_TEST(resolve_table)
{
	struct cidr_addr peer = addr(cases[_i].peer), out, sentinel;
	struct gg_err err = GG_ERR_INIT;
	char buf[CIDR_TEXT_MAX];
	size_t n = 0;
	int rc;

	while (cases[_i].values[n])
		n++;
	memset(&sentinel, 0xaa, sizeof(sentinel));
	out = sentinel;
	rc = xff_resolve(&out, &peer, cases[_i].values, n, trusted,
			 N(trusted), &err);
	if (!cases[_i].client) {
		ck_assert_int_eq(rc, GG_EINVAL);
		ck_assert_str_eq(err.msg, cases[_i].msg);
		ck_assert(!memcmp(&out, &sentinel, sizeof(out))); /* untouched */
		return;
	}
	ck_assert_msg(rc == GG_OK, "case %d: %s", _i, err.msg);
	cidr_addr_format(buf, sizeof(buf), &out);
	ck_assert_str_eq(buf, cases[_i].client);
}
END_TEST

/* No trusted proxies at all: the header never counts. */
START_TEST(nothing_trusted)
{
	const char *values[] = { "10.1.2.3", "garbage" };
	struct cidr_addr peer = addr("127.0.0.1"), out;
	char buf[CIDR_TEXT_MAX];

	ck_assert_int_eq(xff_resolve(&out, &peer, values, 2, NULL, 0, NULL),
			 GG_OK);
	cidr_addr_format(buf, sizeof(buf), &out);
	ck_assert_str_eq(buf, "127.0.0.1");
}
END_TEST

/* Trusting everyone (0.0.0.0/0) makes the leftmost hop the client: that
 * is what the operator asked for, and the walk still reads it. */
START_TEST(everyone_trusted)
{
	const char *values[] = { "1.2.3.4, 10.1.2.3" };
	struct cidr_addr peer = addr("192.0.2.1"), out;
	char buf[CIDR_TEXT_MAX];
	struct cidr all;

	ck_assert_int_eq(cidr_parse(&all, "0.0.0.0/0", NULL), GG_OK);
	ck_assert_int_eq(xff_resolve(&out, &peer, values, 1, &all, 1, NULL),
			 GG_OK);
	cidr_addr_format(buf, sizeof(buf), &out);
	ck_assert_str_eq(buf, "1.2.3.4");
}
END_TEST

static Suite *xff_suite(void)
{
	Suite *s = suite_create("xff");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, resolve_table, 0, N(cases));
	tcase_add_test(tc, nothing_trusted);
	tcase_add_test(tc, everyone_trusted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(xff_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

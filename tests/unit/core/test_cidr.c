/* test_cidr.c - CIDR networks and addresses: canonical forms, membership
 * at the prefix edges (/0, /32, /128, odd lengths), IPv4-mapped IPv6, and
 * each way to write one wrong. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "gitgate/core/cidr.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* text -> canonical form */
static const struct {
	const char *text;
	const char *canon;
} good[] = {
	{"10.0.0.0/8", "10.0.0.0/8"},
	{"127.0.0.1/32", "127.0.0.1/32"},
	{"127.0.0.1", "127.0.0.1/32"},
	{"0.0.0.0/0", "0.0.0.0/0"},
	{"192.168.4.0/22", "192.168.4.0/22"},
	{"255.255.255.255/32", "255.255.255.255/32"},
	{"::/0", "::/0"},
	{"::1", "::1/128"},
	{"::1/128", "::1/128"},
	{"2001:DB8::/32", "2001:db8::/32"},
	{"2001:0db8:0000:0000:0000:0000:0000:0000/32", "2001:db8::/32"},
	{"fe80::/10", "fe80::/10"},
	{"::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"},
	{"::ffff:0:0/96", "::ffff:0.0.0.0/96"},
};

START_TEST(parse_canonical)
{
	struct gg_err err = GG_ERR_INIT;
	char buf[CIDR_TEXT_MAX];
	struct cidr net;

	ck_assert_msg(cidr_parse(&net, good[_i].text, &err) == GG_OK, "%s: %s",
		      good[_i].text, err.msg);
	cidr_format(buf, sizeof(buf), &net);
	ck_assert_str_eq(buf, good[_i].canon);
}
END_TEST

#define NOT_ADDR "': not an IPv4 or IPv6 address (want ADDRESS/LENGTH, " \
		 "e.g. 10.0.0.0/8)"
#define LEN32 "': prefix length must be a number 0-32"
#define LEN128 "': prefix length must be a number 0-128"

static const struct {
	const char *text;
	const char *msg;
} bad[] = {
	{"", "cidr '': want ADDRESS/LENGTH (e.g. 10.0.0.0/8 or "
	     "2001:db8::/32)"},
	{"10.0.0.0/33", "cidr '10.0.0.0/33" LEN32},
	{"10.0.0.0/-1", "cidr '10.0.0.0/-1" LEN32},
	{"10.0.0.0/+8", "cidr '10.0.0.0/+8" LEN32},
	{"10.0.0.0/08", "cidr '10.0.0.0/08" LEN32},
	{"10.0.0.0/", "cidr '10.0.0.0/" LEN32},
	{"10.0.0.0/8 ", "cidr '10.0.0.0/8 " LEN32},
	{"10.0.0.0/8/8", "cidr '10.0.0.0/8/8" LEN32},
	{"10.0.0.0/0x8", "cidr '10.0.0.0/0x8" LEN32},
	{"10.0.0.0/1000", "cidr '10.0.0.0/1000" LEN32},
	{"::/129", "cidr '::/129" LEN128},
	{"10.0.0/8", "cidr '10.0.0/8" NOT_ADDR},
	{"010.0.0.0/8", "cidr '010.0.0.0/8" NOT_ADDR},
	{"10.0.0.256/32", "cidr '10.0.0.256/32" NOT_ADDR},
	{" 10.0.0.0/8", "cidr ' 10.0.0.0/8" NOT_ADDR},
	{"/8", "cidr '/8" NOT_ADDR},
	{"localhost/8", "cidr 'localhost/8" NOT_ADDR},
	{"fe80::1%eth0/128", "cidr 'fe80::1%eth0/128" NOT_ADDR},
	{"[::1]/128", "cidr '[::1]/128" NOT_ADDR},
	{"1::2::3/64", "cidr '1::2::3/64" NOT_ADDR},
	{"10.0.0.0\n/8", "cidr '10.0.0.0?/8" NOT_ADDR},
	{"10.1.2.3/8", "cidr '10.1.2.3/8': address has bits set after the "
		       "prefix (did you mean 10.0.0.0/8?)"},
	{"10.0.0.1/31", "cidr '10.0.0.1/31': address has bits set after the "
			"prefix (did you mean 10.0.0.0/31?)"},
	{"1.0.0.0/0", "cidr '1.0.0.0/0': address has bits set after the "
		      "prefix (did you mean 0.0.0.0/0?)"},
	{"2001:db8::1/64", "cidr '2001:db8::1/64': address has bits set "
			   "after the prefix (did you mean 2001:db8::/64?)"},
	{"::1/0", "cidr '::1/0': address has bits set after the prefix (did "
		  "you mean ::/0?)"},
};

START_TEST(parse_bad)
{
	struct gg_err err = GG_ERR_INIT;
	struct cidr net = { .prefix = 7 };

	ck_assert_int_eq(cidr_parse(&net, bad[_i].text, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, bad[_i].msg);
	ck_assert_uint_eq(net.prefix, 7); /* untouched */
}
END_TEST

/* Longer than any network: refused, and shown shortened. */
START_TEST(parse_long)
{
	struct gg_err err = GG_ERR_INIT;
	char text[300];
	struct cidr net;

	memset(text, '1', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	ck_assert_int_eq(cidr_parse(&net, text, &err), GG_EINVAL);
	ck_assert(strstr(err.msg, "...': want ADDRESS/LENGTH") != NULL);
	ck_assert(strlen(err.msg) < 140);
}
END_TEST

static struct cidr net_of(const char *text)
{
	struct gg_err err = GG_ERR_INIT;
	struct cidr net;

	ck_assert_msg(cidr_parse(&net, text, &err) == GG_OK, "%s: %s", text,
		      err.msg);
	return net;
}

static struct cidr_addr addr_of(const char *text)
{
	struct gg_err err = GG_ERR_INIT;
	struct cidr_addr a;

	ck_assert_msg(cidr_addr_parse(&a, text, strlen(text), &err) == GG_OK,
		      "%s: %s", text, err.msg);
	return a;
}

static const struct {
	const char *net;
	const char *addr;
	bool in;
} member[] = {
	/* /32 and /128: exactly one address */
	{"127.0.0.1/32", "127.0.0.1", true},
	{"127.0.0.1/32", "127.0.0.2", false},
	{"127.0.0.1/32", "127.0.0.0", false},
	{"::1/128", "::1", true},
	{"::1/128", "::2", false},
	{"::1/128", "::", false},
	/* /0: all of its family, and IPv6's holds IPv4 as mapped */
	{"0.0.0.0/0", "0.0.0.0", true},
	{"0.0.0.0/0", "255.255.255.255", true},
	{"0.0.0.0/0", "::1", false},
	{"0.0.0.0/0", "2001:db8::1", false},
	{"::/0", "2001:db8::1", true},
	{"::/0", "10.0.0.1", true},
	/* the edges of a network */
	{"10.0.0.0/8", "10.0.0.0", true},
	{"10.0.0.0/8", "10.255.255.255", true},
	{"10.0.0.0/8", "9.255.255.255", false},
	{"10.0.0.0/8", "11.0.0.0", false},
	{"192.168.4.0/22", "192.168.7.255", true},
	{"192.168.4.0/22", "192.168.8.0", false},
	{"192.168.4.0/22", "192.168.3.255", false},
	{"10.0.0.0/31", "10.0.0.1", true},
	{"10.0.0.0/31", "10.0.0.2", false},
	{"128.0.0.0/1", "127.255.255.255", false},
	{"128.0.0.0/1", "128.0.0.0", true},
	{"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
	{"2001:db8::/32", "2001:db9::", false},
	{"fe80::/10", "febf::1", true},
	{"fe80::/10", "fec0::1", false},
	{"::/1", "7fff::", true},
	{"::/1", "8000::", false},
	/* IPv4-mapped IPv6 clients match IPv4 networks, and back */
	{"10.0.0.0/8", "::ffff:10.1.2.3", true},
	{"10.0.0.0/8", "::ffff:11.1.2.3", false},
	{"127.0.0.1/32", "::ffff:127.0.0.1", true},
	{"::ffff:10.0.0.0/104", "10.9.9.9", true},
	{"::ffff:10.0.0.0/104", "11.9.9.9", false},
	/* but other embeddings of IPv4 are not IPv4 */
	{"10.0.0.0/8", "::10.1.2.3", false},
	{"10.0.0.0/8", "64:ff9b::10.1.2.3", false},
	{"0.0.0.0/0", "::", false},
};

START_TEST(contains_table)
{
	struct cidr net = net_of(member[_i].net);
	struct cidr_addr a = addr_of(member[_i].addr);

	ck_assert_msg(cidr_contains(&net, &a) == member[_i].in,
		      "%s in %s: expected %d", member[_i].addr, member[_i].net,
		      member[_i].in);
}
END_TEST

START_TEST(list_contains)
{
	struct cidr nets[2];
	struct cidr_addr v6 = addr_of("2001:db8::5"), v4 = addr_of("10.2.3.4");
	struct cidr_addr other = addr_of("192.168.0.1");

	nets[0] = net_of("10.0.0.0/8");
	nets[1] = net_of("2001:db8::/32");
	ck_assert(cidr_list_contains(nets, 2, &v6));
	ck_assert(cidr_list_contains(nets, 2, &v4));
	ck_assert(!cidr_list_contains(nets, 2, &other));
	ck_assert(!cidr_list_contains(nets, 0, &v4)); /* empty: none */
}
END_TEST

static const struct {
	const char *text;
	const char *shown;
} addrs[] = {
	{"10.1.2.3", "10.1.2.3"},
	{"::ffff:10.1.2.3", "10.1.2.3"},
	{"::FFFF:a01:203", "10.1.2.3"},
	{"2001:DB8:0::1", "2001:db8::1"},
	{"::", "::"},
	{"::10.1.2.3", "::10.1.2.3"}, /* IPv4-compatible: not IPv4 */
};

START_TEST(addr_format)
{
	struct cidr_addr a = addr_of(addrs[_i].text);
	char buf[CIDR_TEXT_MAX];

	cidr_addr_format(buf, sizeof(buf), &a);
	ck_assert_str_eq(buf, addrs[_i].shown);
}
END_TEST

static const char *const bad_addrs[] = {
	"", "10.0.0.0/8", "10.0.0", "localhost", "[::1]", "::1%lo", " 1.2.3.4",
	"1.2.3.4:80", "unknown", "01.2.3.4",
};

START_TEST(addr_bad)
{
	struct gg_err err = GG_ERR_INIT;
	char want[128];
	struct cidr_addr a;

	snprintf(want, sizeof(want), "'%s' is not an IP address",
		 bad_addrs[_i]);
	ck_assert_int_eq(cidr_addr_parse(&a, bad_addrs[_i],
					 strlen(bad_addrs[_i]), &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

/* The length bounds the text: what follows is not read. */
START_TEST(addr_len)
{
	struct gg_err err = GG_ERR_INIT;
	struct cidr_addr a;
	char buf[CIDR_TEXT_MAX];

	ck_assert_int_eq(cidr_addr_parse(&a, "10.1.2.3, 10.9.9.9", 8, &err),
			 GG_OK);
	cidr_addr_format(buf, sizeof(buf), &a);
	ck_assert_str_eq(buf, "10.1.2.3");
	ck_assert_int_eq(cidr_addr_parse(&a, "10.1.2.3\0junk", 13, &err),
			 GG_EINVAL);
}
END_TEST

START_TEST(from_sockaddr)
{
	struct sockaddr_in in4 = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	struct sockaddr un = { .sa_family = AF_UNIX };
	char buf[CIDR_TEXT_MAX];
	struct cidr_addr a;

	inet_pton(AF_INET, "192.0.2.7", &in4.sin_addr);
	ck_assert_int_eq(cidr_addr_from_sockaddr(&a, (struct sockaddr *)&in4),
			 GG_OK);
	cidr_addr_format(buf, sizeof(buf), &a);
	ck_assert_str_eq(buf, "192.0.2.7");
	inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr);
	ck_assert_int_eq(cidr_addr_from_sockaddr(&a, (struct sockaddr *)&in6),
			 GG_OK);
	cidr_addr_format(buf, sizeof(buf), &a);
	ck_assert_str_eq(buf, "2001:db8::7");
	ck_assert_int_eq(cidr_addr_from_sockaddr(&a, &un), GG_EINVAL);
	ck_assert_int_eq(cidr_addr_from_sockaddr(&a, NULL), GG_EINVAL);
}
END_TEST

static Suite *cidr_suite(void)
{
	Suite *s = suite_create("cidr");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, parse_canonical, 0, N(good));
	tcase_add_loop_test(tc, parse_bad, 0, N(bad));
	tcase_add_test(tc, parse_long);
	tcase_add_loop_test(tc, contains_table, 0, N(member));
	tcase_add_test(tc, list_contains);
	tcase_add_loop_test(tc, addr_format, 0, N(addrs));
	tcase_add_loop_test(tc, addr_bad, 0, N(bad_addrs));
	tcase_add_test(tc, addr_len);
	tcase_add_test(tc, from_sockaddr);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cidr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/*
 * cidr.c - IPv4/IPv6 addresses and networks in one 128-bit space (see
 * cidr.h).
 */
#include "gitgate/core/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* ::ffff:0:0/96, where IPv4 lives in the 128-bit space. */
static const unsigned char v4_mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static bool is_v4_mapped(const struct cidr_addr *a)
{
	return !memcmp(a->bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix));
}

static void map_v4(struct cidr_addr *out, const void *in4)
{
	memcpy(out->bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix));
	memcpy(out->bytes + 12, in4, 4);
}

/* Address text (NUL-terminated, no prefix) into *out; *v4 says which
 * form it was. A ':' decides the family, so "1.2.3.4" is never read as
 * IPv6 nor "::1" as IPv4. */
static bool parse_addr_text(struct cidr_addr *out, bool *v4, const char *s)
{
	unsigned char buf[16];

	*v4 = strchr(s, ':') == NULL;
	if (*v4) {
		if (inet_pton(AF_INET, s, buf) != 1)
			return false;
		map_v4(out, buf);
		return true;
	}
	if (inet_pton(AF_INET6, s, buf) != 1)
		return false;
	memcpy(out->bytes, buf, sizeof(buf));
	return true;
}

int cidr_addr_parse(struct cidr_addr *out, const char *text, size_t len,
		    struct gg_err *err)
{
	char addr[INET6_ADDRSTRLEN], shown[64];
	bool v4;

	gg_err_sanitize(shown, sizeof(shown), text, len);
	/* memchr: a NUL inside would cut the text inet_pton sees. */
	if (len == 0 || len >= sizeof(addr) || memchr(text, '\0', len))
		return gg_err_set(err, GG_EINVAL,
				  "'%s' is not an IP address", shown);
	memcpy(addr, text, len);
	addr[len] = '\0';
	if (!parse_addr_text(out, &v4, addr))
		return gg_err_set(err, GG_EINVAL,
				  "'%s' is not an IP address", shown);
	return GG_OK;
}

/* Decimal 0..max, no sign, space or leading zero. */
static bool parse_len(unsigned *out, const char *s, unsigned max)
{
	unsigned n = 0;
	size_t i;

	if (!*s || (s[0] == '0' && s[1]) || strlen(s) > 3)
		return false;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		n = n * 10 + (unsigned)(s[i] - '0');
	}
	if (n > max)
		return false;
	*out = n;
	return true;
}

/* Zero every bit of a after the first prefix bits. */
static void mask(struct cidr_addr *a, unsigned prefix)
{
	unsigned i;

	for (i = 0; i < 16; i++) {
		if (prefix >= 8 * (i + 1))
			continue;
		if (prefix <= 8 * i)
			a->bytes[i] = 0;
		else
			a->bytes[i] &= (unsigned char)(0xff
						       << (8 * (i + 1) - prefix));
	}
}

/* The prefix part of text after '/', into net (whose address is set). */
static int parse_prefix(struct cidr *net, const char *len, const char *shown,
			struct gg_err *err)
{
	unsigned max = net->v4 ? 32 : 128, n;

	if (!parse_len(&n, len, max))
		return gg_err_set(err, GG_EINVAL,
				  "cidr '%s': prefix length must be a number "
				  "0-%u",
				  shown, max);
	net->prefix = net->v4 ? 96 + n : n;
	return GG_OK;
}

/* Refuse bits after the prefix, naming the network that was likely
 * meant: widening "10.1.2.3/8" to all of 10/8 without a word would grant
 * far more than the writer saw. */
static int check_host_bits(const struct cidr *net, const char *shown,
			   struct gg_err *err)
{
	struct cidr masked = *net;
	char meant[CIDR_TEXT_MAX];

	mask(&masked.addr, masked.prefix);
	if (!memcmp(masked.addr.bytes, net->addr.bytes, 16))
		return GG_OK;
	cidr_format(meant, sizeof(meant), &masked);
	return gg_err_set(err, GG_EINVAL,
			  "cidr '%s': address has bits set after the prefix "
			  "(did you mean %s?)",
			  shown, meant);
}

int cidr_parse(struct cidr *out, const char *text, struct gg_err *err)
{
	char buf[CIDR_TEXT_MAX], shown[64];
	size_t len = strnlen(text, sizeof(buf));
	struct cidr net;
	char *slash;
	int rc;

	gg_err_sanitize(shown, sizeof(shown), text,
			strnlen(text, sizeof(shown)));
	if (len == 0 || len >= sizeof(buf))
		return gg_err_set(err, GG_EINVAL,
				  "cidr '%s': want ADDRESS/LENGTH (e.g. "
				  "10.0.0.0/8 or 2001:db8::/32)",
				  shown);
	memcpy(buf, text, len + 1);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (!parse_addr_text(&net.addr, &net.v4, buf))
		return gg_err_set(err, GG_EINVAL,
				  "cidr '%s': not an IPv4 or IPv6 address "
				  "(want ADDRESS/LENGTH, e.g. 10.0.0.0/8)",
				  shown);
	net.prefix = 128; /* a bare address: one host */
	if (slash) {
		rc = parse_prefix(&net, slash + 1, shown, err);
		if (rc != GG_OK)
			return rc;
	}
	rc = check_host_bits(&net, shown, err);
	if (rc != GG_OK)
		return rc;
	*out = net;
	return GG_OK;
}

int cidr_addr_from_sockaddr(struct cidr_addr *out, const struct sockaddr *sa)
{
	const struct sockaddr_in *in4;
	const struct sockaddr_in6 *in6;

	if (sa && sa->sa_family == AF_INET) {
		in4 = (const struct sockaddr_in *)(const void *)sa;
		map_v4(out, &in4->sin_addr);
		return GG_OK;
	}
	if (sa && sa->sa_family == AF_INET6) {
		in6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(out->bytes, &in6->sin6_addr, 16);
		return GG_OK;
	}
	return GG_EINVAL;
}

void cidr_addr_format(char *buf, size_t size, const struct cidr_addr *addr)
{
	char text[INET6_ADDRSTRLEN] = "?";

	if (is_v4_mapped(addr))
		inet_ntop(AF_INET, addr->bytes + 12, text, sizeof(text));
	else
		inet_ntop(AF_INET6, addr->bytes, text, sizeof(text));
	snprintf(buf, size, "%s", text);
}

void cidr_format(char *buf, size_t size, const struct cidr *net)
{
	char text[INET6_ADDRSTRLEN] = "?";

	if (net->v4)
		inet_ntop(AF_INET, net->addr.bytes + 12, text, sizeof(text));
	else
		inet_ntop(AF_INET6, net->addr.bytes, text, sizeof(text));
	snprintf(buf, size, "%s/%u", text,
		 net->v4 ? net->prefix - 96 : net->prefix);
}

bool cidr_contains(const struct cidr *net, const struct cidr_addr *addr)
{
	struct cidr_addr a = *addr;

	mask(&a, net->prefix);
	return !memcmp(a.bytes, net->addr.bytes, 16);
}

bool cidr_list_contains(const struct cidr *nets, size_t n,
			const struct cidr_addr *addr)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (cidr_contains(&nets[i], addr))
			return true;
	return false;
}

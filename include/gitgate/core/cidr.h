/*
 * cidr.h - IP addresses and CIDR networks: parse, format, contains. Pure
 * (no I/O, no resolver), shared by the token's `cidr` claim and the
 * config's `trusted_proxies`.
 *
 * One address space: every address is held as 16 bytes, an IPv4 address
 * as its IPv4-mapped IPv6 form (::ffff:a.b.c.d, RFC 4291 2.5.5.2). So an
 * IPv4 network a.b.c.d/n is ::ffff:a.b.c.d/(96+n), and a client that a
 * dual-stack listener sees as ::ffff:10.0.0.5 is in 10.0.0.0/8, as it is
 * in ::ffff:10.0.0.0/104. IPv4 and IPv6 never match otherwise: 0.0.0.0/0
 * holds every IPv4 address and no other, ::/0 holds everything.
 *
 * Syntax (cidr_parse): ADDR "/" LEN, or ADDR alone (a single host: /32
 * or /128). ADDR is dotted-quad IPv4 (four decimal parts, no leading
 * zeros) or IPv6 text as inet_pton(3) reads it (no zone "%eth0", no
 * brackets); LEN is decimal without sign or leading zero, 0..32 for IPv4,
 * 0..128 for IPv6. Bits after the prefix must be zero: "10.1.2.3/8" is
 * refused (did you mean 10.0.0.0/8?) rather than widened silently.
 */
#ifndef GITGATE_CIDR_H
#define GITGATE_CIDR_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"

struct sockaddr;

/* Room for any text cidr_format or cidr_addr_format writes, NUL included:
 * the longest IPv6 text (45), "/128" and the NUL. */
#define CIDR_TEXT_MAX 52

/* One address, IPv4 as IPv4-mapped IPv6. */
struct cidr_addr {
	unsigned char bytes[16];
};

/* A network: addr with every bit after the first prefix bits zero. v4:
 * written as IPv4 (then prefix >= 96, and addr is IPv4-mapped), which is
 * how cidr_format shows it again. */
struct cidr {
	struct cidr_addr addr;
	unsigned prefix; /* 0..128, in the 128-bit space */
	bool v4;
};

/* Parse one network (syntax above). GG_EINVAL with err->msg naming the
 * text (sanitised, shortened) and what is wrong with it. */
int cidr_parse(struct cidr *out, const char *text, struct gg_err *err);

/* Parse one address of len bytes (no prefix; the syntax of ADDR above).
 * GG_EINVAL with `'<text>' is not an IP address`. */
int cidr_addr_parse(struct cidr_addr *out, const char *text, size_t len,
		    struct gg_err *err);

/* The address of a socket: AF_INET or AF_INET6; GG_EINVAL for any other
 * family (or sa NULL). */
int cidr_addr_from_sockaddr(struct cidr_addr *out, const struct sockaddr *sa);

/* Canonical text: "10.0.0.0/8", "2001:db8::/32" (RFC 5952 via inet_ntop);
 * a network parsed as IPv4 prints as IPv4. buf holds CIDR_TEXT_MAX. */
void cidr_format(char *buf, size_t size, const struct cidr *net);

/* "10.0.0.5" for an IPv4-mapped address, else the IPv6 text. */
void cidr_addr_format(char *buf, size_t size, const struct cidr_addr *addr);

bool cidr_contains(const struct cidr *net, const struct cidr_addr *addr);

/* Is addr in any of the n networks? (false when n == 0) */
bool cidr_list_contains(const struct cidr *nets, size_t n,
			const struct cidr_addr *addr);

#endif

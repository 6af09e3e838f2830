/*
 * pktline.c - pkt-line reader and bounded writer (see pktline.h).
 *
 * Modelled on libgit2's smart_pkt.c: the length header is decoded by one
 * small function, "need more bytes" is its own return code so callers can
 * feed input incrementally, and every size is checked before it is used.
 */
#include "gitgate/proto/pktline.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PKT_HDR 4

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode the 4-hex-digit length; -1 if any digit is not hex. */
static long decode_len(const unsigned char *h)
{
	long v = 0;
	int i, d;

	for (i = 0; i < PKT_HDR; i++) {
		d = hexval(h[i]);
		if (d < 0)
			return -1;
		v = (v << 4) | d;
	}
	return v;
}

static int bad_header(const unsigned char *h, struct gg_err *err)
{
	char shown[PKT_HDR + 1];

	gg_err_sanitize(shown, sizeof(shown), h, PKT_HDR);
	return gg_err_set(err, GG_EINVAL, "bad pkt-line length \"%s\"", shown);
}

static int read_special(struct pkt *out, size_t *out_used, long n)
{
	static const enum pkt_type types[] = {PKT_FLUSH, PKT_DELIM,
					      PKT_RESPONSE_END};

	out->type = types[n];
	out->data = NULL;
	out->len = 0;
	*out_used = PKT_HDR;
	return 0;
}

static int read_data(struct pkt *out, size_t *out_used, const unsigned char *b,
		     size_t len, size_t n, unsigned flags, struct gg_err *err)
{
	if (len < n) {
		*out_used = n;
		if (!(flags & PKT_EOF))
			return GG_EAGAIN;
		return gg_err_set(err, GG_EINVAL,
				  "truncated pkt-line: length %04zx but only "
				  "%zu bytes before end of input",
				  n, len);
	}
	out->type = PKT_DATA;
	out->data = b + PKT_HDR;
	out->len = n - PKT_HDR;
	if ((flags & PKT_CHOMP_LF) && out->data[out->len - 1] == '\n')
		out->len--;
	*out_used = n;
	return 0;
}

int pkt_read(struct pkt *out, size_t *out_used, const void *buf, size_t len,
	     unsigned flags, struct gg_err *err)
{
	const unsigned char *b = buf;
	long n;

	*out_used = PKT_HDR;
	if (len < PKT_HDR) {
		if (len == 0 || !(flags & PKT_EOF))
			return GG_EAGAIN;
		return gg_err_set(err, GG_EINVAL,
				  "truncated pkt-line: %zu of 4 length bytes "
				  "before end of input",
				  len);
	}
	n = decode_len(b);
	if (n < 0)
		return bad_header(b, err);
	if (n <= 2)
		return read_special(out, out_used, n);
	if (n == 3)
		return gg_err_set(err, GG_EINVAL,
				  "invalid pkt-line length 0003");
	if (n == PKT_HDR)
		return gg_err_set(err, GG_EINVAL,
				  "empty pkt-line (0004) not allowed");
	if (n > GG_MAX_PKT_LEN)
		return gg_err_set(err, GG_ELIMIT,
				  "pkt-line length %ld exceeds maximum %d", n,
				  GG_MAX_PKT_LEN);
	return read_data(out, out_used, b, len, (size_t)n, flags, err);
}

int pkt_sideband_split(int *out_band, const unsigned char **out_data,
		       size_t *out_len, const struct pkt *p, struct gg_err *err)
{
	if (p->type != PKT_DATA)
		return gg_err_set(err, GG_EINVAL,
				  "side-band: expected a data packet");
	if (p->data[0] < 1 || p->data[0] > 3)
		return gg_err_set(err, GG_EINVAL, "side-band: bad band %u",
				  (unsigned)p->data[0]);
	*out_band = p->data[0];
	*out_data = p->data + 1;
	*out_len = p->len - 1;
	return 0;
}

char *pkt_dup_bytes(const void *s, size_t len)
{
	char *d;

	if (len == SIZE_MAX)
		return NULL;
	d = malloc(len + 1);
	if (!d)
		return NULL;
	if (len > 0)
		memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

void pkt_buf_init(struct pkt_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void pkt_buf_release(struct pkt_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

unsigned char *pkt_buf_detach(struct pkt_buf *b, size_t *out_len)
{
	unsigned char *d = b->data;

	*out_len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return d;
}

/* Make room for add more bytes: grow geometrically, never past max. */
static int buf_grow(struct pkt_buf *b, size_t add, struct gg_err *err)
{
	size_t need, cap;
	unsigned char *d;

	if (add > b->max || b->len > b->max - add) {
		pkt_buf_release(b);
		return gg_err_set(err, GG_ELIMIT,
				  "output exceeds maximum of %zu bytes",
				  b->max);
	}
	need = b->len + add;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > b->max / 2 ? b->max : cap * 2;
	d = realloc(b->data, cap);
	if (!d) {
		pkt_buf_release(b);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	b->data = d;
	b->cap = cap;
	return 0;
}

int pkt_buf_add(struct pkt_buf *b, const void *data, size_t len,
		struct gg_err *err)
{
	int rc;

	if (len == 0)
		return 0;
	rc = buf_grow(b, len, err);
	if (rc < 0)
		return rc;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static void put_header(unsigned char *dst, size_t total)
{
	static const char hex[] = "0123456789abcdef";

	dst[0] = hex[(total >> 12) & 0xf];
	dst[1] = hex[(total >> 8) & 0xf];
	dst[2] = hex[(total >> 4) & 0xf];
	dst[3] = hex[total & 0xf];
}

static int check_payload(size_t len, struct gg_err *err)
{
	if (len == 0)
		return gg_err_set(err, GG_EINVAL,
				  "refusing to write an empty pkt-line");
	if (len > GG_MAX_PKT_DATA)
		return gg_err_set(err, GG_ELIMIT,
				  "pkt-line payload of %zu bytes exceeds "
				  "maximum %d",
				  len, GG_MAX_PKT_DATA);
	return 0;
}

/* Append one packet whose payload is prefix (0 or 1 byte) then data. The
 * whole packet is reserved first, so a failure never leaves a header
 * without its payload. */
static int write_framed(struct pkt_buf *out, const unsigned char *prefix,
			size_t plen, const void *data, size_t len,
			struct gg_err *err)
{
	unsigned char *dst;
	int rc;

	rc = check_payload(plen + len, err);
	if (rc < 0)
		return rc;
	rc = buf_grow(out, PKT_HDR + plen + len, err);
	if (rc < 0)
		return rc;
	dst = out->data + out->len;
	put_header(dst, PKT_HDR + plen + len);
	if (plen)
		memcpy(dst + PKT_HDR, prefix, plen);
	memcpy(dst + PKT_HDR + plen, data, len);
	out->len += PKT_HDR + plen + len;
	return 0;
}

int pkt_write(struct pkt_buf *out, const void *data, size_t len,
	      struct gg_err *err)
{
	return write_framed(out, NULL, 0, data, len, err);
}

int pkt_writef(struct pkt_buf *out, struct gg_err *err, const char *fmt, ...)
{
	va_list ap;
	size_t n;
	int len, rc;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		return gg_err_set(err, GG_EINVAL, "pkt-line format failed");
	n = (size_t)len;
	rc = check_payload(n, err);
	if (rc < 0)
		return rc;
	/* +1: vsnprintf writes a NUL after the payload; it is not kept. */
	rc = buf_grow(out, PKT_HDR + n + 1, err);
	if (rc < 0)
		return rc;
	put_header(out->data + out->len, PKT_HDR + n);
	va_start(ap, fmt);
	vsnprintf((char *)out->data + out->len + PKT_HDR, n + 1, fmt, ap);
	va_end(ap);
	out->len += PKT_HDR + n;
	return 0;
}

int pkt_write_flush(struct pkt_buf *out, struct gg_err *err)
{
	return pkt_buf_add(out, "0000", PKT_HDR, err);
}

int pkt_write_delim(struct pkt_buf *out, struct gg_err *err)
{
	return pkt_buf_add(out, "0001", PKT_HDR, err);
}

int pkt_write_sideband(struct pkt_buf *out, int band, const void *data,
		       size_t len, size_t max_pkt, struct gg_err *err)
{
	const unsigned char *p = data;
	unsigned char b = (unsigned char)band;
	size_t room, n;
	int rc;

	if (band < 1 || band > 3)
		return gg_err_set(err, GG_EINVAL, "side-band: bad band %d",
				  band);
	if (max_pkt < PKT_HDR + 2 || max_pkt > GG_MAX_PKT_LEN)
		return gg_err_set(err, GG_EINVAL,
				  "side-band: bad packet size %zu", max_pkt);
	room = max_pkt - PKT_HDR - 1;
	while (len > 0) {
		n = len < room ? len : room;
		rc = write_framed(out, &b, 1, p, n, err);
		if (rc < 0)
			return rc;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * pktline.h - git pkt-line framing: an incremental reader and a bounded
 * writer. Pure functions over caller-provided memory; no I/O.
 *
 * Wire format (gitprotocol-common): four hex digits giving the whole packet
 * length including those four bytes, then the payload. Specials: "0000"
 * flush, "0001" delim, "0002" response-end. Lengths 0003 and 0004 are
 * refused (0004 would be an empty data packet, which git says SHOULD NOT be
 * sent; we do not accept it). Hex digits may be upper or lower case, as in
 * git's own reader. The largest packet is GG_MAX_PKT_LEN (65520) bytes.
 *
 * Reader invariant: pkt_read never reads past buf[len) and never allocates;
 * a returned struct pkt borrows from the caller's buffer.
 *
 * Writer invariant (struct pkt_buf): data is NULL or holds len <= cap bytes;
 * len never exceeds max. An append that would pass max, or fails to
 * allocate, frees the contents (as curl's dynbuf does) and returns an error,
 * so a half-written response can never be sent by mistake.
 */
#ifndef GITGATE_PKTLINE_H
#define GITGATE_PKTLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"
#include "gitgate/core/limits.h"

enum pkt_type {
	PKT_DATA,	 /* payload of 1..GG_MAX_PKT_DATA bytes */
	PKT_FLUSH,	 /* "0000" */
	PKT_DELIM,	 /* "0001" (protocol v2) */
	PKT_RESPONSE_END /* "0002" (protocol v2) */
};

struct pkt {
	enum pkt_type type;
	const unsigned char
		*data; /* borrowed from the input; NULL unless DATA */
	size_t len;    /* payload bytes; 0 for the specials */
};

/* pkt_read flags */
#define PKT_EOF 0x1	 /* no bytes follow buf: a partial packet is an error */
#define PKT_CHOMP_LF 0x2 /* drop one trailing '\n' from a data payload */

/*
 * Read one packet from the start of buf[0..len).
 *
 * Returns 0 with *out filled and *out_used = bytes the packet occupies.
 * Returns GG_EAGAIN when buf holds only part of a packet (and PKT_EOF is not
 * set); *out_used is then the total size the packet needs if the header is
 * complete, else 4, so an accumulating caller knows how much to wait for.
 * len == 0 is always GG_EAGAIN with *out_used = 4 (no packet starts here;
 * at end of input that is a clean end, not an error).
 * Errors (message set in err, non-printable bytes replaced):
 *   GG_EINVAL non-hex length, length 0003 or 0004, truncated packet at EOF;
 *   GG_ELIMIT length above GG_MAX_PKT_LEN.
 * Input bytes are never modified. PKT_CHOMP_LF on "0005\n" yields len 0.
 */
int pkt_read(struct pkt *out, size_t *out_used, const void *buf, size_t len,
	     unsigned flags, struct gg_err *err);

/*
 * Split a side-band data packet into band (1 data, 2 progress, 3 fatal
 * error) and payload (borrowed from p). GG_EINVAL if p is not a data packet
 * or the band byte is not 1..3.
 */
int pkt_sideband_split(int *out_band, const unsigned char **out_data,
		       size_t *out_len, const struct pkt *p,
		       struct gg_err *err);

/*
 * Copy len bytes of a payload (a refname, a reason, an option) into a new
 * NUL-terminated string of len + 1 bytes that the caller frees. Always
 * allocates: len 0 gives a fresh "" (s may then be NULL). Bytes are copied
 * as they are: an embedded NUL is kept and shortens the string as C sees
 * it, so callers check the bytes themselves. NULL only when malloc fails
 * (or len is SIZE_MAX, whose + 1 would wrap).
 */
char *pkt_dup_bytes(const void *s, size_t len);

/* Bounded output buffer for building pkt-line streams. */
struct pkt_buf {
	unsigned char *data;
	size_t len;
	size_t cap;
	size_t max;
};

/* Start empty with a hard cap of max bytes; allocates nothing. */
void pkt_buf_init(struct pkt_buf *b, size_t max);
/* Free contents; b is left empty and reusable with the same max. */
void pkt_buf_release(struct pkt_buf *b);
/* Hand the bytes to the caller (who frees them); b is left empty. May
 * return NULL when empty. */
unsigned char *pkt_buf_detach(struct pkt_buf *b, size_t *out_len);
/* Append raw bytes (not framed). */
int pkt_buf_add(struct pkt_buf *b, const void *data, size_t len,
		struct gg_err *err);

/* Append one data packet; 1 <= len <= GG_MAX_PKT_DATA. */
int pkt_write(struct pkt_buf *out, const void *data, size_t len,
	      struct gg_err *err);
/* Append one data packet formatted like printf (GG_EINVAL if empty,
 * GG_ELIMIT if longer than GG_MAX_PKT_DATA). */
int pkt_writef(struct pkt_buf *out, struct gg_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int pkt_write_flush(struct pkt_buf *out, struct gg_err *err);
int pkt_write_delim(struct pkt_buf *out, struct gg_err *err);

/*
 * Append data on side-band channel band (1..3), split into packets of at
 * most max_pkt bytes each including the 4-byte length and the band byte:
 * GG_MAX_PKT_LEN for side-band-64k, GG_MAX_SIDEBAND_OLD_PKT for side-band.
 * len == 0 appends nothing.
 */
int pkt_write_sideband(struct pkt_buf *out, int band, const void *data,
		       size_t len, size_t max_pkt, struct gg_err *err);

#endif

/*
 * fetchreq.c - read the wants of an upload-pack request (see fetchreq.h).
 *
 * v0/v1 (gitprotocol-pack): "want <oid>[ <caps>]" lines, then shallow,
 * deepen and filter lines, a flush, "have" lines and maybe "done".
 * v2 (gitprotocol-v2): "command=<name>", capability lines, a delim, then
 * the command's arguments ("want <oid>", "want-ref <ref>", "have", ...).
 */
#include "gitgate/cache/fetchreq.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "gitgate/core/limits.h"
#include "gitgate/proto/pktline.h"

#define OID_HEX 40
#define OID_RAW 20

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* git sends lower case only */
}

static int add_want(struct fetchreq *r, const unsigned char *hex,
		    struct gg_err *err)
{
	unsigned char *o;
	size_t i;

	if (r->nwants >= GG_MAX_CACHE_WANTS)
		return gg_err_set(err, GG_ELIMIT, "more than %d wants",
				  GG_MAX_CACHE_WANTS);
	if (r->nwants % 64 == 0) {
		o = realloc(r->wants, (r->nwants + 64) * OID_RAW);
		if (!o)
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		r->wants = o;
	}
	o = r->wants + r->nwants * OID_RAW;
	for (i = 0; i < OID_RAW; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return gg_err_set(err, GG_EINVAL, "bad object id in "
					  "want line");
		o[i] = (unsigned char)(hi << 4 | lo);
	}
	r->nwants++;
	return GG_OK;
}

static bool starts(const struct pkt *p, const char *word)
{
	size_t n = strlen(word);

	return p->len >= n && !memcmp(p->data, word, n);
}

/* "want <40 hex>" followed by the end, a space (v0 capabilities) or
 * nothing else. */
static int want_line(struct fetchreq *r, const struct pkt *p,
		     struct gg_err *err)
{
	if (p->len < 5 + OID_HEX ||
	    (p->len > 5 + OID_HEX && p->data[5 + OID_HEX] != ' '))
		return gg_err_set(err, GG_EINVAL, "malformed want line");
	return add_want(r, p->data + 5, err);
}

/* One argument line; v2 says which section it is in. */
static int line(struct fetchreq *r, const struct pkt *p, bool v2,
		bool *args, struct gg_err *err)
{
	if (v2 && !*args) {
		/* the command and its capabilities */
		if (starts(p, "command=") &&
		    !(p->len == 13 && !memcmp(p->data + 8, "fetch", 5)))
			r->kind = FETCHREQ_OTHER;
		return GG_OK;
	}
	if (starts(p, "want "))
		return want_line(r, p, err);
	if (v2 && starts(p, "want-ref "))
		r->want_ref = true;
	return GG_OK;
}

int fetchreq_parse(struct fetchreq *out, const unsigned char *body,
		   size_t len, int version, struct gg_err *err)
{
	bool v2 = version == 2, args = false, seen_cmd = false;
	size_t off = 0, used;
	struct pkt p;
	int ret = GG_OK;

	memset(out, 0, sizeof(*out));
	out->kind = FETCHREQ_PACK;
	while (ret == GG_OK && off < len) {
		ret = pkt_read(&p, &used, body + off, len - off,
			       PKT_EOF | PKT_CHOMP_LF, err);
		if (ret)
			break;
		off += used;
		if (p.type == PKT_DELIM && v2)
			args = true;
		else if (p.type == PKT_DATA) {
			seen_cmd |= v2 && !args && starts(&p, "command=");
			ret = line(out, &p, v2, &args, err);
		}
	}
	if (ret == GG_OK && v2 && !seen_cmd)
		ret = gg_err_set(err, GG_EINVAL, "v2 request without a "
				 "command");
	if (ret == GG_OK && out->kind == FETCHREQ_PACK && out->nwants == 0)
		ret = gg_err_set(err, GG_EINVAL, "pack request without wants");
	if (ret)
		fetchreq_release(out);
	return ret;
}

void fetchreq_release(struct fetchreq *r)
{
	free(r->wants);
	r->wants = NULL;
	r->nwants = 0;
}

int fetchreq_gunzip(unsigned char **out, size_t *outlen,
		    const unsigned char *in, size_t inlen, size_t max,
		    struct gg_err *err)
{
	z_stream zs;
	unsigned char *buf;
	size_t cap = inlen * 4 + 1024;
	int zr = Z_OK;
	bool over = false;

	*out = NULL;
	*outlen = 0;
	if (cap > max)
		cap = max;
	buf = malloc(cap + 1);
	if (!buf)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		free(buf);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	zs.next_in = (unsigned char *)in;
	zs.avail_in = (uInt)inlen;
	while (zr == Z_OK) {
		if (zs.total_out == cap) {
			unsigned char *nb;

			if (cap >= max) {
				over = true;
				break;
			}
			cap = cap * 2 > max ? max : cap * 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				zr = Z_MEM_ERROR;
				break;
			}
			buf = nb;
		}
		zs.next_out = buf + zs.total_out;
		zs.avail_out = (uInt)(cap - zs.total_out);
		zr = inflate(&zs, Z_NO_FLUSH);
		if (zr == Z_BUF_ERROR && zs.avail_in == 0)
			break; /* input ended before the stream did */
		if (zr == Z_BUF_ERROR)
			zr = Z_OK; /* needs room: loop grows the buffer */
	}
	*outlen = zs.total_out;
	inflateEnd(&zs);
	if (zr == Z_STREAM_END) {
		*out = buf;
		return GG_OK;
	}
	free(buf);
	*outlen = 0;
	if (over)
		return gg_err_set(err, GG_ELIMIT, "request body over %zu bytes "
				  "once decompressed", max);
	if (zr == Z_MEM_ERROR)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	return gg_err_set(err, GG_EINVAL, "corrupt or truncated gzip body");
}

int fetchreq_version(const char *git_protocol)
{
	const char *s = git_protocol;

	while (s && *s) {
		if (!strncmp(s, "version=", 8) && (s[8] == '1' || s[8] == '2') &&
		    (s[9] == '\0' || s[9] == ':'))
			return s[8] - '0';
		s = strchr(s, ':');
		if (s)
			s++;
	}
	return 0;
}

/*
 * packscan.c - streaming pack reader that keeps commits only.
 *
 * Pack format (gitformat-pack): "PACK", version 2 or 3, object count, then
 * per object a header (type and inflated size as a varint; a base offset
 * or base id for deltas) followed by a zlib stream, then a 20-byte
 * checksum. Every length below is checked before it is trusted.
 */
#include "gitgate/push/packscan.h"
#include "gitgate/core/limits.h"

#include <errno.h>
#include <git2.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

enum state { S_HEADER, S_ENTRY, S_DATA, S_TRAILER, S_DONE };

/* types[] byte: the type the pack gives in the low nibble, the resolved
 * object type in the high one (0 while a delta is pending). */
#define RAW(t) ((t)&0x0f)
#define RESOLVED(t) ((t) >> 4)
#define T_UNKNOWN 0x0f
#define IS_DELTA(raw) ((raw) == PACKSCAN_OFS_DELTA || (raw) == PACKSCAN_REF_DELTA)

#define PACK_HEADER_LEN 12
#define MAX_ENTRY_HEADER 32 /* size varint + offset varint or base id */
#define SCRATCH_LEN (64 * 1024)
#define CACHE_SLOTS 64 /* more than pack-objects' delta window */
#define CACHE_MAX_LEN (64 * 1024) /* commits are small; big ones not kept */

struct commit {
	unsigned char oid[PACKSCAN_OID_LEN];
	uint32_t entry;    /* index into offs/types */
	uint32_t parents;  /* first parent in s->parents */
	uint32_t nparents;
};

_Static_assert(GG_MAX_SCAN_ENTRIES < UINT32_MAX &&
		       GG_MAX_SCAN_PARENTS < UINT32_MAX,
	       "struct commit indexes are 32-bit");

/* Recently rebuilt commit bodies: delta chains share their bases. */
struct cached {
	size_t entry;
	unsigned char *data;
	size_t len;
};

struct packscan {
	enum state st;
	int failed; /* sticky error code */
	struct gg_err ferr;

	uint64_t pos; /* pack bytes consumed so far */
	uint32_t nobjects, seen;
	unsigned char hdr[MAX_ENTRY_HEADER];
	size_t hlen;

	/* the entry being inflated */
	uint64_t entry_off;
	int type;
	uint64_t size, out;
	bool keep;
	z_stream z;
	bool z_ready;
	unsigned char *body;
	unsigned char *scratch;

	uint64_t *offs;
	uint8_t *types;
	size_t n, cap;

	struct commit *commits;
	size_t ncommits, ccap;
	unsigned char *parents; /* PACKSCAN_OID_LEN bytes each */
	size_t nparents, pcap;
	uint32_t *table; /* open addressing: commit index + 1, 0 = empty */
	size_t tsize;
	unsigned char key[crypto_shorthash_KEYBYTES]; /* table hash key */
	size_t unknown;

	/* Work done resolving and walking, against a budget that grows with
	 * the pack: a crafted pack cannot buy more than a linear amount of
	 * CPU (past it the scan gives up and the caller indexes). */
	uint64_t work;
	bool over_budget;
	bool limited; /* a GG_MAX_SCAN_* limit or the budget was hit */
	/* The largest object the pack makes: a whole object's size, or what
	 * a delta's header says it builds (read from its first bytes). */
	uint64_t max_object;
	unsigned char dhead[20]; /* a delta's first inflated bytes */

	/* packscan_resolve only */
	int fd;
	uint64_t base;
	packscan_lookup_fn lookup;
	void *payload;
	struct cached cache[CACHE_SLOTS];
	size_t cache_next;
};

int packscan_new(struct packscan **out, struct gg_err *err)
{
	struct packscan *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	if (sodium_init() < 0) {
		free(s);
		return gg_err_set(err, GG_ERR, "libsodium failed to start");
	}
	/* Keyed: parent ids in a pack are the client's choice, and must not
	 * be able to aim every lookup at one crowded run of the table. */
	randombytes_buf(s->key, sizeof(s->key));
	s->scratch = malloc(SCRATCH_LEN);
	if (!s->scratch || inflateInit(&s->z) != Z_OK) {
		free(s->scratch);
		free(s);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	s->z_ready = true;
	*out = s;
	return GG_OK;
}

static void cache_clear(struct packscan *s)
{
	size_t i;

	for (i = 0; i < CACHE_SLOTS; i++) {
		free(s->cache[i].data);
		s->cache[i].data = NULL;
	}
}

void packscan_free(struct packscan *s)
{
	if (!s)
		return;
	if (s->z_ready)
		inflateEnd(&s->z);
	cache_clear(s);
	free(s->body);
	free(s->scratch);
	free(s->offs);
	free(s->types);
	free(s->commits);
	free(s->parents);
	free(s->table);
	free(s);
}

/* Record the first error; every later call repeats it. */
static int fail(struct packscan *s, int code, const char *msg,
		struct gg_err *err)
{
	if (code == GG_ELIMIT)
		s->limited = true;
	if (!s->failed) {
		s->failed = code;
		gg_err_set(&s->ferr, code, "pack: %s (at byte %llu)", msg,
			   (unsigned long long)s->pos);
	}
	return gg_err_set(err, s->failed, "%s", s->ferr.msg);
}

/* ---- commits -------------------------------------------------------- */

static size_t slot_of(const struct packscan *s, const unsigned char *oid,
		      size_t tsize)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, oid, PACKSCAN_OID_LEN, s->key);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (tsize - 1));
}

/* Charge n units of work; GG_ELIMIT once the pack's budget is spent. */
static int charge(struct packscan *s, uint64_t n, struct gg_err *err)
{
	uint64_t budget = GG_SCAN_WORK_FACTOR * s->pos + GG_SCAN_WORK_BASE;

	s->work += n;
	if (s->work <= budget)
		return GG_OK;
	s->over_budget = true;
	s->limited = true;
	return gg_err_set(err, GG_ELIMIT, "pack too costly to scan");
}

static struct commit *find_commit(const struct packscan *s,
				  const unsigned char *oid)
{
	size_t i;

	if (!s->tsize)
		return NULL;
	for (i = slot_of(s, oid, s->tsize); s->table[i];
	     i = (i + 1) & (s->tsize - 1)) {
		struct commit *c = &s->commits[s->table[i] - 1];

		if (!memcmp(c->oid, oid, PACKSCAN_OID_LEN))
			return c;
	}
	return NULL;
}

static int table_grow(struct packscan *s)
{
	size_t i, j, nsize = s->tsize ? s->tsize * 2 : 64;
	uint32_t *t = calloc(nsize, sizeof(*t));

	if (!t)
		return GG_ENOMEM;
	for (i = 0; i < s->ncommits; i++) {
		for (j = slot_of(s, s->commits[i].oid, nsize); t[j];
		     j = (j + 1) & (nsize - 1))
			;
		t[j] = (uint32_t)(i + 1);
	}
	free(s->table);
	s->table = t;
	s->tsize = nsize;
	return GG_OK;
}

/* Grow *arr (of elem-sized items, *cap of them) to hold need items. */
static int grow(void *arr, size_t *cap, size_t need, size_t elem)
{
	void **p = arr;
	size_t ncap = *cap ? *cap : 16;
	void *q;

	if (need <= *cap)
		return GG_OK;
	while (ncap < need)
		ncap *= 2;
	q = realloc(*p, ncap * elem);
	if (!q)
		return GG_ENOMEM;
	*p = q;
	*cap = ncap;
	return GG_OK;
}

static bool is_hex40(const unsigned char *p)
{
	size_t i;

	for (i = 0; i < 40; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/*
 * Parents of a commit body: "tree <hex>\n" then "parent <hex>\n" lines.
 * Returns how many, or -1 (unknown) for anything git's own parser
 * (parse_commit_buffer) would read differently or reject: a body of 46
 * bytes or less, a parent line without its newline and one more byte, a
 * cut or malformed one. Stricter never hurts: unknown means "index it".
 */
static long parse_parents(const unsigned char *b, size_t len,
			  const unsigned char **first)
{
	size_t at = 46;
	long n = 0;

	if (len <= 46 || memcmp(b, "tree ", 5) || !is_hex40(b + 5) ||
	    b[45] != '\n')
		return -1;
	*first = b + at;
	while (len - at >= 7 && !memcmp(b + at, "parent ", 7)) {
		if (len - at <= 48 || !is_hex40(b + at + 7) ||
		    b[at + 47] != '\n' || n == GG_MAX_COMMIT_PARENTS)
			return -1;
		at += 48;
		n++;
	}
	return n;
}

/* A commit body from the pack: hash it (its id is what we computed, never
 * what anyone claims) and record its parents. A body that is not a
 * well-formed commit is left unknown: upstream will refuse it anyway. */
static int add_commit(struct packscan *s, size_t entry,
		      const unsigned char *body, size_t len)
{
	const unsigned char *p;
	struct commit *c;
	git_oid oid;
	long np = parse_parents(body, len, &p), i;
	size_t j;

	if (np < 0) {
		s->unknown++;
		return GG_OK;
	}
	if (git_odb_hash(&oid, body, len, GIT_OBJECT_COMMIT) < 0)
		return GG_ERR;
	if (find_commit(s, oid.id))
		return GG_OK; /* the same object twice */
	if ((size_t)np > GG_MAX_SCAN_PARENTS - s->nparents)
		return GG_ELIMIT;
	if ((s->ncommits + 1) * 2 > s->tsize && table_grow(s))
		return GG_ENOMEM;
	if (grow(&s->commits, &s->ccap, s->ncommits + 1, sizeof(*c)) ||
	    grow(&s->parents, &s->pcap, s->nparents + (size_t)np,
		 PACKSCAN_OID_LEN))
		return GG_ENOMEM;
	c = &s->commits[s->ncommits];
	memcpy(c->oid, oid.id, PACKSCAN_OID_LEN);
	c->entry = (uint32_t)entry;
	c->parents = (uint32_t)s->nparents;
	c->nparents = (uint32_t)np;
	for (i = 0; i < np; i++, p += 48) {
		git_oid par;

		git_oid_fromstrn(&par, (const char *)p + 7, 40);
		memcpy(s->parents + s->nparents++ * PACKSCAN_OID_LEN, par.id,
		       PACKSCAN_OID_LEN);
	}
	s->ncommits++;
	for (j = slot_of(s, c->oid, s->tsize); s->table[j];
	     j = (j + 1) & (s->tsize - 1))
		;
	s->table[j] = (uint32_t)s->ncommits;
	return GG_OK;
}

/* ---- entry headers -------------------------------------------------- */

struct entry_header {
	int type;
	uint64_t size;
	uint64_t base_off;          /* OFS_DELTA */
	const unsigned char *base;  /* REF_DELTA, PACKSCAN_OID_LEN bytes */
	size_t len;                 /* header bytes */
};

/* 0 when buf holds a whole header, GG_EAGAIN when it needs more bytes,
 * GG_EINVAL (msg set) when malformed. */
static int parse_entry_header(struct entry_header *h, const unsigned char *buf,
			      size_t len, uint64_t entry_off, const char **msg)
{
	size_t i = 0;
	unsigned shift = 4;
	unsigned char c;
	uint64_t d;

	if (len == 0)
		return GG_EAGAIN;
	c = buf[i++];
	h->type = (c >> 4) & 7;
	h->size = c & 15;
	while (c & 0x80) {
		if (i >= len)
			return GG_EAGAIN;
		if (shift > 57)
			return *msg = "object size out of range", GG_EINVAL;
		c = buf[i++];
		h->size |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
	}
	if (h->type == PACKSCAN_OFS_DELTA) {
		if (i >= len)
			return GG_EAGAIN;
		c = buf[i++];
		d = c & 0x7f;
		while (c & 0x80) {
			if (i >= len)
				return GG_EAGAIN;
			if (d >= ((uint64_t)1 << 56))
				return *msg = "delta offset out of range",
				       GG_EINVAL;
			c = buf[i++];
			d = ((d + 1) << 7) | (c & 0x7f);
		}
		if (d == 0 || d > entry_off - PACK_HEADER_LEN)
			return *msg = "delta base outside the pack", GG_EINVAL;
		h->base_off = entry_off - d;
	} else if (h->type == PACKSCAN_REF_DELTA) {
		if (len - i < PACKSCAN_OID_LEN)
			return GG_EAGAIN;
		h->base = buf + i;
		i += PACKSCAN_OID_LEN;
	} else if (h->type < PACKSCAN_COMMIT || h->type > PACKSCAN_TAG) {
		return *msg = "bad object type", GG_EINVAL;
	}
	h->len = i;
	return GG_OK;
}

/* ---- streaming ------------------------------------------------------ */

static size_t feed_pack_header(struct packscan *s, const unsigned char *d,
			       size_t len, struct gg_err *err, int *ret)
{
	size_t take = PACK_HEADER_LEN - s->hlen;
	uint32_t version;

	if (take > len)
		take = len;
	memcpy(s->hdr + s->hlen, d, take);
	s->hlen += take;
	if (s->hlen < PACK_HEADER_LEN)
		return take;
	s->hlen = 0;
	version = (uint32_t)s->hdr[4] << 24 | (uint32_t)s->hdr[5] << 16 |
		  (uint32_t)s->hdr[6] << 8 | s->hdr[7];
	s->nobjects = (uint32_t)s->hdr[8] << 24 | (uint32_t)s->hdr[9] << 16 |
		      (uint32_t)s->hdr[10] << 8 | s->hdr[11];
	if (memcmp(s->hdr, "PACK", 4))
		*ret = fail(s, GG_EINVAL, "no pack signature", err);
	else if (version != 2 && version != 3)
		*ret = fail(s, GG_EINVAL, "unsupported pack version", err);
	else if (s->nobjects > GG_MAX_SCAN_ENTRIES)
		*ret = fail(s, GG_ELIMIT, "too many objects to scan", err);
	s->st = s->nobjects ? S_ENTRY : S_TRAILER;
	return take;
}

static int delta_varint(const unsigned char **p, const unsigned char *end,
			uint64_t *v)
{
	unsigned shift = 0;
	unsigned char c;

	*v = 0;
	do {
		if (*p >= end || shift > 56)
			return GG_EINVAL;
		c = *(*p)++;
		*v |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
	} while (c & 0x80);
	return GG_OK;
}

static int start_entry(struct packscan *s, const struct entry_header *h)
{
	int resolved = IS_DELTA(h->type) ? 0 : h->type;

	if (s->n == s->cap) {
		size_t cap = s->cap;
		uint8_t *t;

		if (grow(&s->offs, &cap, s->n + 1, sizeof(*s->offs)))
			return GG_ENOMEM;
		t = realloc(s->types, cap); /* one byte per entry */
		if (!t)
			return GG_ENOMEM;
		s->types = t;
		s->cap = cap;
	}
	s->type = h->type;
	s->size = h->size;
	s->out = 0;
	if (!IS_DELTA(h->type) && h->size > s->max_object)
		s->max_object = h->size;
	s->keep = h->type == PACKSCAN_COMMIT && h->size <= GG_MAX_SCAN_OBJECT;
	if (h->type == PACKSCAN_COMMIT && !s->keep)
		s->limited = true;
	if (h->type == PACKSCAN_COMMIT && !s->keep) {
		resolved = T_UNKNOWN; /* too large to keep: never guessed */
		s->unknown++;
	}
	if (s->keep) {
		s->body = malloc(h->size ? h->size : 1);
		if (!s->body)
			return GG_ENOMEM;
	}
	s->offs[s->n] = s->entry_off;
	s->types[s->n] = (uint8_t)(h->type | resolved << 4);
	s->n++;
	s->st = S_DATA;
	return GG_OK;
}

static size_t feed_entry_header(struct packscan *s, const unsigned char *d,
				size_t len, struct gg_err *err, int *ret)
{
	struct entry_header h;
	const char *msg = NULL;
	size_t take = MAX_ENTRY_HEADER - s->hlen, had = s->hlen;
	int rc;

	if (take > len)
		take = len;
	if (had == 0)
		s->entry_off = s->pos;
	memcpy(s->hdr + had, d, take);
	rc = parse_entry_header(&h, s->hdr, had + take, s->entry_off, &msg);
	if (rc == GG_EAGAIN) {
		s->hlen += take;
		if (s->hlen == MAX_ENTRY_HEADER)
			*ret = fail(s, GG_EINVAL, "object header too long", err);
		return take;
	}
	if (rc) {
		*ret = fail(s, rc, msg, err);
		return take;
	}
	s->hlen = 0;
	if (start_entry(s, &h))
		*ret = fail(s, GG_ENOMEM, "out of memory", err);
	return h.len - had;
}

/* A delta starts with the sizes of its base and of what it builds; a
 * small delta can build a huge object (copies of its base), and full
 * indexing would hold that whole object in memory. */
static void note_delta_size(struct packscan *s)
{
	const unsigned char *p = s->dhead;
	const unsigned char *end = s->dhead + (s->out < sizeof(s->dhead)
						       ? s->out
						       : sizeof(s->dhead));
	uint64_t base, target;

	if (delta_varint(&p, end, &base) || delta_varint(&p, end, &target))
		target = UINT64_MAX; /* unreadable: the worst case */
	if (target > s->max_object)
		s->max_object = target;
}

static int end_entry(struct packscan *s)
{
	int ret = GG_OK;

	if (IS_DELTA(s->type))
		note_delta_size(s);
	if (s->keep)
		ret = add_commit(s, s->n - 1, s->body, (size_t)s->size);
	free(s->body);
	s->body = NULL;
	inflateReset(&s->z);
	s->seen++;
	s->st = s->seen == s->nobjects ? S_TRAILER : S_ENTRY;
	return ret;
}

static size_t feed_data(struct packscan *s, const unsigned char *d, size_t len,
			struct gg_err *err, int *ret)
{
	uInt avail = len > UINT_MAX ? UINT_MAX : (uInt)len;
	size_t got;
	int rc;

	s->z.next_in = (unsigned char *)d;
	s->z.avail_in = avail;
	do {
		s->z.next_out = s->scratch;
		s->z.avail_out = SCRATCH_LEN;
		rc = inflate(&s->z, Z_NO_FLUSH);
		got = SCRATCH_LEN - s->z.avail_out;
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
			*ret = fail(s, GG_EINVAL, "corrupt object data", err);
			return len;
		}
		if (got > s->size - s->out) {
			*ret = fail(s, GG_EINVAL,
				    "object larger than its header says", err);
			return len;
		}
		if (s->keep)
			memcpy(s->body + s->out, s->scratch, got);
		if (IS_DELTA(s->type) && s->out < sizeof(s->dhead))
			memcpy(s->dhead + s->out, s->scratch,
			       got < sizeof(s->dhead) - s->out
				       ? got
				       : sizeof(s->dhead) - s->out);
		s->out += got;
	} while (rc == Z_OK && (s->z.avail_in > 0 || s->z.avail_out == 0));
	if (rc == Z_STREAM_END) {
		if (s->out != s->size)
			*ret = fail(s, GG_EINVAL,
				    "object smaller than its header says", err);
		else if ((rc = end_entry(s)) != 0)
			*ret = fail(s, rc,
				    rc == GG_ELIMIT ? "too many parents to scan"
				    : rc == GG_ENOMEM ? "out of memory"
						      : "cannot hash a commit",
				    err);
	}
	return avail - s->z.avail_in;
}

int packscan_feed(struct packscan *s, const void *data, size_t len,
		  struct gg_err *err)
{
	const unsigned char *d = data;
	size_t used;
	int ret = GG_OK;

	if (s->failed)
		return gg_err_set(err, s->failed, "%s", s->ferr.msg);
	while (len > 0 && ret == GG_OK) {
		switch (s->st) {
		case S_HEADER:
			used = feed_pack_header(s, d, len, err, &ret);
			break;
		case S_ENTRY:
			used = feed_entry_header(s, d, len, err, &ret);
			break;
		case S_DATA:
			used = feed_data(s, d, len, err, &ret);
			break;
		case S_TRAILER:
			used = PACKSCAN_OID_LEN - s->hlen;
			used = used < len ? used : len;
			s->hlen += used;
			if (s->hlen == PACKSCAN_OID_LEN)
				s->st = S_DONE;
			break;
		default:
			return fail(s, GG_EINVAL, "data after the pack", err);
		}
		d += used;
		len -= used;
		s->pos += used;
	}
	return ret;
}

int packscan_finish(struct packscan *s, struct gg_err *err)
{
	if (s->failed)
		return gg_err_set(err, s->failed, "%s", s->ferr.msg);
	if (s->st == S_DONE || (s->st == S_HEADER && s->pos == 0))
		return GG_OK; /* a whole pack, or none at all */
	return fail(s, GG_EINVAL, "truncated", err);
}

size_t packscan_ncommits(const struct packscan *s)
{
	return s->ncommits;
}

size_t packscan_unknown(const struct packscan *s)
{
	return s->unknown;
}

bool packscan_limited(const struct packscan *s)
{
	return s->limited;
}

uint32_t packscan_nobjects(const struct packscan *s)
{
	return s->nobjects;
}

uint64_t packscan_max_object(const struct packscan *s)
{
	return s->max_object;
}

/* ---- resolving deltas ----------------------------------------------- */

static ssize_t entry_index(const struct packscan *s, uint64_t off)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->offs[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->offs[lo] == off ? (ssize_t)lo : -1;
}

/* Re-read entry i's header from the spool. */
static int read_header(struct packscan *s, size_t i, struct entry_header *h,
		       unsigned char *buf, struct gg_err *err)
{
	const char *msg = "unreadable";
	ssize_t got;
	int rc;

	do
		got = pread(s->fd, buf, MAX_ENTRY_HEADER,
			    (off_t)(s->base + s->offs[i]));
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return gg_err_errno(err, GG_EIO, "reading the pushed pack");
	rc = parse_entry_header(h, buf, (size_t)got, s->offs[i], &msg);
	if (rc)
		return gg_err_set(err, GG_EINVAL, "pack changed on disk: %s",
				  msg);
	return GG_OK;
}

/* Inflate the size bytes of entry i's data (at off in the spool). */
static int inflate_at(struct packscan *s, uint64_t off, uint64_t size,
		      unsigned char **out, struct gg_err *err)
{
	z_stream z;
	unsigned char *buf;
	ssize_t got;
	int rc = Z_OK;

	*out = NULL;
	if (size > GG_MAX_SCAN_OBJECT)
		return gg_err_set(err, GG_ELIMIT, "object too large to scan");
	buf = malloc(size ? size : 1);
	memset(&z, 0, sizeof(z));
	if (!buf || inflateInit(&z) != Z_OK) {
		free(buf);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	z.next_out = buf;
	z.avail_out = (uInt)size;
	while (rc == Z_OK) {
		do
			got = pread(s->fd, s->scratch, SCRATCH_LEN,
				    (off_t)(s->base + off));
		while (got < 0 && errno == EINTR);
		if (got <= 0)
			break;
		z.next_in = s->scratch;
		z.avail_in = (uInt)got;
		rc = inflate(&z, Z_NO_FLUSH);
		/* charged what zlib used, not what was read ahead */
		off += (uint64_t)got - z.avail_in;
		if (charge(s, (uint64_t)got - z.avail_in, err))
			break;
		if (rc == Z_BUF_ERROR && z.avail_out == 0)
			break; /* more output than size */
		if (rc == Z_BUF_ERROR)
			rc = Z_OK;
	}
	inflateEnd(&z);
	if (rc != Z_STREAM_END || z.avail_out != 0) {
		free(buf);
		if (err && err->code == GG_ELIMIT)
			return GG_ELIMIT;
		return gg_err_set(err, GG_EINVAL, "pack changed on disk");
	}
	*out = buf;
	return GG_OK;
}

/* Apply a git delta: copy ops (offset, size from base) and insert ops. */
static int apply_delta(const unsigned char *base, size_t blen,
		       const unsigned char *delta, size_t dlen,
		       unsigned char **out, size_t *olen, struct gg_err *err)
{
	const unsigned char *p = delta, *end = delta + dlen;
	uint64_t src, dst, o = 0;
	unsigned char *res;

	*out = NULL;
	if (delta_varint(&p, end, &src) || delta_varint(&p, end, &dst) ||
	    src != blen)
		return gg_err_set(err, GG_EINVAL, "bad delta header");
	if (dst > GG_MAX_SCAN_OBJECT)
		return gg_err_set(err, GG_ELIMIT, "object too large to scan");
	res = malloc(dst ? dst : 1);
	if (!res)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	while (p < end) {
		unsigned char c = *p++;
		uint64_t coff = 0, csize = 0;
		int b;

		if (c == 0)
			goto bad;
		if (!(c & 0x80)) { /* insert c literal bytes */
			if ((size_t)(end - p) < c || dst - o < c)
				goto bad;
			memcpy(res + o, p, c);
			p += c;
			o += c;
			continue;
		}
		for (b = 0; b < 7; b++) {
			if (!(c & (1 << b)))
				continue;
			if (p >= end)
				goto bad;
			if (b < 4)
				coff |= (uint64_t)*p++ << (8 * b);
			else
				csize |= (uint64_t)*p++ << (8 * (b - 4));
		}
		if (csize == 0)
			csize = 0x10000;
		if (coff > blen || csize > blen - coff || csize > dst - o)
			goto bad;
		memcpy(res + o, base + coff, csize);
		o += csize;
	}
	if (o != dst)
		goto bad;
	*out = res;
	*olen = (size_t)dst;
	return GG_OK;
bad:
	free(res);
	return gg_err_set(err, GG_EINVAL, "corrupt delta");
}

static const struct cached *cache_get(const struct packscan *s, size_t i)
{
	size_t k;

	for (k = 0; k < CACHE_SLOTS; k++)
		if (s->cache[k].data && s->cache[k].entry == i)
			return &s->cache[k];
	return NULL;
}

static void cache_put(struct packscan *s, size_t i, const unsigned char *d,
		      size_t len)
{
	struct cached *c = &s->cache[s->cache_next % CACHE_SLOTS];
	unsigned char *copy;

	if (len > CACHE_MAX_LEN)
		return;
	copy = malloc(len ? len : 1);
	if (!copy)
		return; /* a cache miss later, nothing worse */
	memcpy(copy, d, len);
	s->cache_next++;
	free(c->data);
	c->entry = i;
	c->data = copy;
	c->len = len;
}

static int materialize(struct packscan *s, size_t i, unsigned depth,
		       unsigned char **out, size_t *olen, struct gg_err *err);

/* The body of a delta's base: another entry, or (REF_DELTA) an object
 * found by id in the pack's commits or through the lookup. */
static int base_body(struct packscan *s, const struct entry_header *h,
		     unsigned depth, unsigned char **out, size_t *olen,
		     struct gg_err *err)
{
	const struct commit *c;
	ssize_t j;
	int type = 0, rc;

	if (h->type == PACKSCAN_OFS_DELTA) {
		j = entry_index(s, h->base_off);
		if (j < 0)
			return gg_err_set(err, GG_EINVAL,
					  "delta base is not an object");
		return materialize(s, (size_t)j, depth + 1, out, olen, err);
	}
	c = find_commit(s, h->base);
	if (c)
		return materialize(s, c->entry, depth + 1, out, olen, err);
	if (!s->lookup)
		return gg_err_set(err, GG_ENOTFOUND, "delta base not found");
	rc = s->lookup(s->payload, h->base, &type, out, olen);
	if (rc == 0 && type != PACKSCAN_COMMIT) {
		free(*out);
		*out = NULL;
		return gg_err_set(err, GG_EINVAL, "delta base is no commit");
	}
	if (rc == GG_ELIMIT)
		return gg_err_set(err, rc, "delta base too large to scan");
	return rc ? gg_err_set(err, rc, "delta base not found") : GG_OK;
}

/* Entry i's whole body (a commit: deltas applied). */
static int materialize(struct packscan *s, size_t i, unsigned depth,
		       unsigned char **out, size_t *olen, struct gg_err *err)
{
	unsigned char hbuf[MAX_ENTRY_HEADER], *data = NULL, *base = NULL;
	const struct cached *c = cache_get(s, i);
	struct entry_header h;
	size_t blen = 0;
	int ret;

	*out = NULL;
	if (c) {
		*out = malloc(c->len ? c->len : 1);
		if (!*out)
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		memcpy(*out, c->data, c->len);
		*olen = c->len;
		return GG_OK;
	}
	if (depth > GG_MAX_DELTA_DEPTH)
		return gg_err_set(err, GG_ELIMIT, "delta chain too deep");
	ret = read_header(s, i, &h, hbuf, err);
	if (ret == 0 && !IS_DELTA(h.type)) {
		/* cached too: a small body can hide in a long zlib stream */
		ret = inflate_at(s, s->offs[i] + h.len, h.size, out, err);
		*olen = (size_t)h.size;
		if (ret == 0)
			cache_put(s, i, *out, *olen);
		return ret;
	}
	/* The base first, so that no level of a deep chain holds its delta
	 * while the levels below it are built: memory stays a few objects,
	 * whatever the depth. */
	if (ret == 0)
		ret = base_body(s, &h, depth, &base, &blen, err);
	if (ret == 0)
		ret = inflate_at(s, s->offs[i] + h.len, h.size, &data, err);
	if (ret == 0)
		ret = charge(s, h.size + blen, err);
	if (ret == 0)
		ret = apply_delta(base, blen, data, (size_t)h.size, out, olen,
				  err);
	free(base);
	free(data);
	if (ret == 0)
		cache_put(s, i, *out, *olen);
	return ret;
}

/* The object type a REF_DELTA base has: 0 while unknown. */
static int ref_base_type(struct packscan *s, const unsigned char *oid)
{
	unsigned char *data = NULL;
	size_t len = 0;
	int type = 0;

	if (find_commit(s, oid))
		return PACKSCAN_COMMIT;
	if (!s->lookup || s->lookup(s->payload, oid, &type, &data, &len) != 0)
		return 0;
	free(data);
	return type >= PACKSCAN_COMMIT && type <= PACKSCAN_TAG ? type : 0;
}

/* Follow entry i's chain to a known type. 0 = not known (yet). */
static int chain_type(struct packscan *s, size_t i, struct gg_err *err)
{
	unsigned char hbuf[MAX_ENTRY_HEADER];
	struct entry_header h;
	unsigned depth;
	ssize_t j;

	for (depth = 0; depth <= GG_MAX_DELTA_DEPTH; depth++) {
		if (charge(s, MAX_ENTRY_HEADER, err))
			return -1;
		if (RESOLVED(s->types[i]))
			return RESOLVED(s->types[i]) == T_UNKNOWN
				       ? 0
				       : RESOLVED(s->types[i]);
		if (read_header(s, i, &h, hbuf, err))
			return -1;
		if (h.type == PACKSCAN_REF_DELTA) /* a lookup costs more */
			return charge(s, s->lookup ? 4096 : 0, err)
				       ? -1
				       : ref_base_type(s, h.base);
		j = entry_index(s, h.base_off);
		if (j < 0 || (size_t)j >= i) {
			gg_err_set(err, GG_EINVAL,
				   "delta base is not an earlier object");
			return -1;
		}
		i = (size_t)j;
	}
	return 0;
}

/* One pass over the pending deltas; *progress when a commit was added
 * (a REF_DELTA against it may resolve on the next pass). */
static int resolve_pass(struct packscan *s, bool *progress,
			struct gg_err *err)
{
	unsigned char *body;
	size_t i, len;
	int t, ret;

	for (i = 0; i < s->n; i++) {
		if (!IS_DELTA(RAW(s->types[i])) || RESOLVED(s->types[i]))
			continue;
		t = chain_type(s, i, err);
		if (t < 0)
			return err->code;
		if (t == 0)
			continue;
		s->types[i] = (uint8_t)(RAW(s->types[i]) | t << 4);
		if (t != PACKSCAN_COMMIT)
			continue;
		ret = materialize(s, i, 0, &body, &len, err);
		if (ret == GG_OK) {
			ret = add_commit(s, i, body, len);
			free(body);
			if (ret)
				return gg_err_set(err, ret,
						  ret == GG_ELIMIT
							  ? "too many parents "
							    "to scan"
							  : "cannot record a "
							    "commit");
			*progress = true;
		} else if (s->over_budget) {
			return ret;
		} else if (ret == GG_ELIMIT || ret == GG_ENOTFOUND) {
			if (ret == GG_ELIMIT)
				s->limited = true;
			gg_err_init(err); /* stays unknown */
			s->types[i] = (uint8_t)(RAW(s->types[i]) |
						T_UNKNOWN << 4);
			s->unknown++;
		} else {
			return ret;
		}
	}
	return GG_OK;
}

static int resolve(struct packscan *s, struct gg_err *err);

int packscan_resolve(struct packscan *s, int fd, uint64_t off,
		     packscan_lookup_fn lookup, void *payload,
		     struct gg_err *err)
{
	struct gg_err e = GG_ERR_INIT; /* the passes read it back */
	int ret;

	if (s->failed)
		return gg_err_set(err, s->failed, "%s", s->ferr.msg);
	s->fd = fd;
	s->base = off;
	s->lookup = lookup;
	s->payload = payload;
	ret = resolve(s, &e);
	cache_clear(s);
	s->lookup = NULL;
	return ret ? gg_err_set(err, ret, "%s", e.msg) : GG_OK;
}

static int resolve(struct packscan *s, struct gg_err *err)
{
	bool progress = true;
	size_t i;
	unsigned pass;
	int ret = GG_OK;

	/* Called again after the lookup learnt more (a mirror refresh):
	 * deltas left unknown get another chance. */
	for (i = 0; i < s->n; i++) {
		if (IS_DELTA(RAW(s->types[i])) &&
		    RESOLVED(s->types[i]) == T_UNKNOWN) {
			s->types[i] = RAW(s->types[i]);
			s->unknown--;
		}
	}
	/* A REF_DELTA may name a commit that a later delta produces: passes
	 * repeat while commits appear, but a bounded number of times, so a
	 * crafted chain cannot make this quadratic (what is left stays
	 * unknown and the caller indexes instead). */
	for (pass = 0; ret == GG_OK && progress && pass < GG_MAX_SCAN_PASSES;
	     pass++) {
		progress = false;
		ret = resolve_pass(s, &progress, err);
	}
	for (i = 0; ret == GG_OK && i < s->n; i++) {
		if (!RESOLVED(s->types[i])) {
			s->types[i] = (uint8_t)(RAW(s->types[i]) |
						T_UNKNOWN << 4);
			s->unknown++;
		}
	}
	return ret;
}

/* ---- ancestry ------------------------------------------------------- */

struct walk {
	const unsigned char **stack;
	size_t n, cap;
	unsigned char *outside; /* ids the walk left the pack through */
	size_t nout, outcap;
	bool *seen;
};

static int push_id(struct walk *w, const unsigned char *oid)
{
	if (grow(&w->stack, &w->cap, w->n + 1, sizeof(*w->stack)))
		return GG_ENOMEM;
	w->stack[w->n++] = oid;
	return GG_OK;
}

static int cmp_oid(const void *a, const void *b)
{
	return memcmp(a, b, PACKSCAN_OID_LEN);
}

/* Walk from new through the pack's commits. *found when old is reached;
 * otherwise w->outside lists where the walk left the pack. */
static int walk_pack(struct packscan *s, struct walk *w,
		     const unsigned char *old, const unsigned char *new,
		     bool *found)
{
	const unsigned char *id;
	const struct commit *c;
	uint32_t k;

	*found = false;
	if (push_id(w, new))
		return GG_ENOMEM;
	while (w->n > 0 && !*found) {
		id = w->stack[--w->n];
		if (!memcmp(id, old, PACKSCAN_OID_LEN)) {
			*found = true;
			break;
		}
		c = find_commit(s, id);
		if (!c) {
			if (grow(&w->outside, &w->outcap, w->nout + 1,
				 PACKSCAN_OID_LEN))
				return GG_ENOMEM;
			memcpy(w->outside + w->nout++ * PACKSCAN_OID_LEN, id,
			       PACKSCAN_OID_LEN);
			continue;
		}
		if (w->seen[c - s->commits])
			continue;
		w->seen[c - s->commits] = true;
		if (charge(s, 1 + c->nparents, NULL))
			return GG_ELIMIT;
		for (k = 0; k < c->nparents; k++)
			if (push_id(w, s->parents +
					       (size_t)(c->parents + k) *
						       PACKSCAN_OID_LEN))
				return GG_ENOMEM;
	}
	return GG_OK;
}

/* One question about all the distinct commits the walk left the pack
 * through: a graph walk in the mirror answers them together. */
static int ask_outside(bool *out, struct walk *w, const char *old_hex,
		       packscan_outside_fn outside, void *payload,
		       struct gg_err *err)
{
	size_t i, n = 0;

	if (w->nout == 0)
		return GG_OK; /* every path ended inside the pack */
	qsort(w->outside, w->nout, PACKSCAN_OID_LEN, cmp_oid);
	for (i = 0; i < w->nout; i++) {
		const unsigned char *id = w->outside + i * PACKSCAN_OID_LEN;

		if (n > 0 && !cmp_oid(id, w->outside + (n - 1) *
							   PACKSCAN_OID_LEN))
			continue;
		memmove(w->outside + n++ * PACKSCAN_OID_LEN, id,
			PACKSCAN_OID_LEN);
	}
	return outside(payload, old_hex, w->outside, n, out, err);
}

int packscan_descends(bool *out, struct packscan *s, const char *old_hex,
		      const char *new_hex, packscan_outside_fn outside,
		      void *payload, struct gg_err *err)
{
	struct walk w;
	git_oid old, new;
	bool found;
	int ret;

	*out = false;
	if (strlen(old_hex) != GIT_OID_HEXSZ ||
	    strlen(new_hex) != GIT_OID_HEXSZ ||
	    git_oid_fromstrn(&old, old_hex, GIT_OID_HEXSZ) < 0 ||
	    git_oid_fromstrn(&new, new_hex, GIT_OID_HEXSZ) < 0)
		return gg_err_set(err, GG_EINVAL, "bad object id");
	memset(&w, 0, sizeof(w));
	w.seen = calloc(s->ncommits ? s->ncommits : 1, sizeof(*w.seen));
	if (!w.seen)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	ret = walk_pack(s, &w, old.id, new.id, &found);
	if (ret)
		ret = gg_err_set(err, ret, ret == GG_ELIMIT
						   ? "pack too costly to walk"
						   : "out of memory");
	else if (found)
		*out = true;
	else
		ret = ask_outside(out, &w, old_hex, outside, payload, err);
	free(w.stack);
	free(w.outside);
	free(w.seen);
	return ret;
}

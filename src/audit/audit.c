/*
 * audit.c - the tamper-evident audit log (format: see audit.h).
 *
 * Writer policy: one mutex per log serialises appends; each line goes out
 * in one write(2) on an O_APPEND descriptor (a loop only for short writes)
 * and is fdatasync'd before audit_append returns, so a decision the client
 * has seen is on disk. A failed write leaves no partial line behind when
 * the file can be cut back to its last complete line; a crash mid-write
 * can, and audit_open then refuses to start until the operator looks.
 * Disk room for lines written at the end of a streamed answer is allocated
 * before it starts (audit_reserve), so a full disk is found while the
 * client can still get a clean refusal. Before each line the path is
 * checked (one stat), so a file deleted or renamed away gets no more lines.
 */
#include "gitgate/audit/audit.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/core/metrics.h"
#include "gitgate/core/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CANON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
#define TIME_MAX 48
#define READ_CHUNK (64 * 1024)
/* Allocated ahead of the lines at once, so that most appends need no
 * fallocate call. */
#define ROOM_CHUNK (16 * 1024)
/* Room the health probe asks for. */
#define PROBE_ROOM (8 * 1024)
/* What a reserved line may still grow by: four numbers at their widest
 * and a reason of up to GG_ERR_MSG_MAX - 1 bytes, each escaped to at most
 * six ("\u00XX"). */
#define RESERVE_SLACK (5 * 24 + 32 + 6 * GG_ERR_MSG_MAX)

/* Fields every line carries (besides prev and hash, checked apart). */
static const char *const required_fields[] = {
	"time",	  "request_id", "sub",	     "jti",	  "repo",
	"service", "client",	 "decision", "reason",	  "refs",
	"status",  "bytes_in",	 "bytes_out", "duration_ms",
};

/* The file at the path that a follow could not take over, and why: not
 * tried again (a reopen reads the file's tail) until it changes. */
struct refusal {
	bool set;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec ctime;
	struct gg_err err;
};

/*
 * Invariants (under lock): size counts the complete lines we wrote; while
 * prealloc holds, blocks are allocated up to alloc_end, which ensure_room
 * keeps >= size + claimed, so the lines audit_reserve promised cannot fail
 * for want of space (a truncation or reopen loses that room; the next
 * ensure_room finds it again if the disk has it).
 */
struct audit_log {
	pthread_mutex_t lock;
	char *path;
	int fd;
	bool regular; /* size tracking, truncation and fsync errors apply */
	dev_t dev;    /* the open file: does path still name it? */
	ino_t ino;
	off_t size;   /* bytes of complete lines (regular files) */
	off_t partial; /* bytes of a failed line after size: cut before writing */
	bool prealloc; /* fallocate(FALLOC_FL_KEEP_SIZE) works on this file */
	off_t alloc_end;
	size_t claimed; /* bytes reserved and not yet appended */
	/* A reservation found no room: a short line that still fits does not
	 * make the log healthy again, only a probe or reservation that finds
	 * room does (else /healthz would flap with every refusal). */
	bool starved;
	struct refusal refused;
	/* Read without the lock (every request checks it) while a writer may
	 * hold the lock across fdatasync; written under the lock. */
	_Atomic bool healthy;
	char last[AUDIT_HASH_HEX + 1];
	char instance[GG_MAX_INSTANCE_LEN + 1]; /* set once at open */
};

/* ---- secrets never reach the log ---- */

/* base64url, and the '.' and '-' of token and key framing. */
static bool is_token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* Length of a PASETO token ("v4.public.", "v4.local.") or PASERK secret
 * or local key ("k4.secret.", "k4.local.", "-wrap", "-pw" forms, any
 * version digit) starting at s, or 0. Even a short or cut-off one counts
 * (a reason may quote part of a token). */
static size_t paseto_marker_at(const char *s)
{
	static const struct {
		char lead;
		const char *rest;
	} marks[] = { { 'v', ".public." }, { 'v', ".local." },
		      { 'k', ".secret" },  { 'k', ".local" } };
	size_t m, n;

	if (s[1] < '0' || s[1] > '9')
		return 0;
	for (m = 0; m < sizeof(marks) / sizeof(marks[0]); m++) {
		if (s[0] != marks[m].lead ||
		    strncmp(s + 2, marks[m].rest, strlen(marks[m].rest)))
			continue;
		/* the rest of the token */
		for (n = 2; is_token_char(s[n]); n++)
			;
		return n;
	}
	return 0;
}

static bool has_paseto_marker(const char *s)
{
	for (; *s; s++)
		if (paseto_marker_at(s))
			return true;
	return false;
}

/* Length of a valid UTF-8 sequence at s (1-4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* overlong forms, surrogates, past U+10FFFF */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
		return 0;
	return n;
}

/*
 * A copy of s fit for the log: each token or key in it replaced by
 * AUDIT_REDACTED (the rest kept: a ref named ".../v4.public.x" still says
 * which branch), and each byte that is not UTF-8 written as "\xNN" (ref
 * names are bytes; git forbids '\' in them, so this is unambiguous there).
 * NULL when out of memory.
 */
static char *log_safe(const char *s)
{
	/* At most 4 bytes out per byte in: "\xNN" for 1, AUDIT_REDACTED
	 * (10) for a marker of at least 8. */
	size_t len = strlen(s), cap = len * 4 + 1, i = 0, o = 0, n;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	while (s[i]) {
		if ((n = paseto_marker_at(s + i)) > 0) {
			memcpy(out + o, AUDIT_REDACTED, strlen(AUDIT_REDACTED));
			o += strlen(AUDIT_REDACTED);
			i += n;
		} else if ((n = utf8_len((const unsigned char *)s + i)) > 0) {
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		} else {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x",
					      (unsigned char)s[i]);
			i++;
		}
	}
	out[o] = '\0';
	return out;
}

static bool is_credential_header(const char *s)
{
	return !strncasecmp(s, "Bearer ", 7) || !strncasecmp(s, "Basic ", 6);
}

/* ---- building a line ---- */

/* A JSON string for s (see log_safe); null when absent. NULL only when
 * out of memory. */
static json_t *jstr(const char *s)
{
	json_t *v;
	char *copy;

	if (!s)
		return json_null();
	if (is_credential_header(s))
		return json_string(AUDIT_REDACTED);
	if (!has_paseto_marker(s)) {
		v = json_string(s);
		if (v)
			return v;
	}
	copy = log_safe(s);
	if (!copy)
		return NULL;
	v = json_string(copy);
	free(copy);
	return v;
}

/* jansson integers are int64: clamp the unsigned byte counters. */
static json_t *jcount(uint64_t n)
{
	return json_integer(n > INT64_MAX ? INT64_MAX : (json_int_t)n);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 3339 UTC with milliseconds: 2026-11-23T10:00:00.123Z. */
static int format_time(char out[TIME_MAX], int64_t ms, struct gg_err *err)
{
	time_t secs;
	int64_t frac;
	struct tm tm;
	size_t n;

	if (ms == 0)
		ms = now_ms();
	secs = (time_t)(ms / 1000);
	frac = ms % 1000;
	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	if (!gmtime_r(&secs, &tm))
		return gg_err_set(err, GG_EINVAL, "audit: time out of range");
	n = strftime(out, TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return gg_err_set(err, GG_EINVAL, "audit: time out of range");
	snprintf(out + n, TIME_MAX - n, ".%03dZ", (int)frac);
	return 0;
}

static int set(json_t *obj, const char *key, json_t *value)
{
	/* json_object_set_new takes value even on failure, NULL included. */
	return json_object_set_new(obj, key, value) < 0 ? GG_ENOMEM : 0;
}

/* An optional member: left out when s is NULL. */
static int set_opt(json_t *obj, const char *key, const char *s)
{
	return s ? set(obj, key, jstr(s)) : 0;
}

static json_t *build_refs(const struct audit_ref *refs, size_t nrefs)
{
	json_t *arr = json_array();
	json_t *o;
	size_t i;

	for (i = 0; arr && i < nrefs; i++) {
		o = json_object();
		if (!o || set(o, "ref", jstr(refs[i].ref)) ||
		    set(o, "old", jstr(refs[i].old)) ||
		    set(o, "new", jstr(refs[i].new)) ||
		    set(o, "action", jstr(refs[i].action)) ||
		    set(o, "result", jstr(refs[i].result)) ||
		    set_opt(o, "rule", refs[i].rule) ||
		    set_opt(o, "path", refs[i].path) ||
		    set_opt(o, "commit", refs[i].commit) ||
		    (refs[i].line &&
		     set(o, "line", json_integer((json_int_t)refs[i].line))) ||
		    set_opt(o, "hash", refs[i].hash) ||
		    json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static int set_strings(json_t *obj, const struct audit_record *rec)
{
	if (set(obj, "request_id", jstr(rec->request_id)) ||
	    set(obj, "sub", jstr(rec->sub)) || set(obj, "jti", jstr(rec->jti)) ||
	    set(obj, "repo", jstr(rec->repo)) ||
	    set(obj, "service", jstr(rec->service)) ||
	    set(obj, "client", jstr(rec->client)) ||
	    set(obj, "decision", jstr(rec->decision)) ||
	    set(obj, "reason", jstr(rec->reason)) ||
	    set_opt(obj, "instance", rec->instance))
		return GG_ENOMEM;
	return 0;
}

static int set_numbers(json_t *obj, const struct audit_record *rec)
{
	if (set(obj, "status", json_integer(rec->status)) ||
	    set(obj, "bytes_in", jcount(rec->bytes_in)) ||
	    set(obj, "bytes_out", jcount(rec->bytes_out)) ||
	    set(obj, "duration_ms", json_integer(rec->duration_ms)) ||
	    set_opt(obj, "cache", rec->cache) ||
	    (rec->cache &&
	     set(obj, "upstream_bytes", jcount(rec->upstream_bytes))))
		return GG_ENOMEM;
	return 0;
}

static bool is_hash_hex(const char *s)
{
	size_t i;

	for (i = 0; i < AUDIT_HASH_HEX; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[i] == '\0';
}

/* The record as a JSON object without its hash member. */
static int build_object(json_t **out, const struct audit_record *rec,
			const char *prev, struct gg_err *err)
{
	char when[TIME_MAX];
	json_t *obj;
	int ret;

	if (!rec->decision || (strcmp(rec->decision, "allow") &&
			       strcmp(rec->decision, "deny")))
		return gg_err_set(err, GG_EINVAL,
				  "audit: decision must be allow or deny");
	if (!prev || !is_hash_hex(prev))
		return gg_err_set(err, GG_EINVAL, "audit: malformed prev hash");
	ret = format_time(when, rec->time_ms, err);
	if (ret)
		return ret;
	obj = json_object();
	if (!obj || set(obj, "time", json_string(when)) ||
	    set_strings(obj, rec) || set_numbers(obj, rec) ||
	    set(obj, "refs", build_refs(rec->refs, rec->nrefs)) ||
	    set(obj, "prev", json_string(prev))) {
		json_decref(obj);
		return gg_err_set(err, GG_ENOMEM, "audit: out of memory");
	}
	*out = obj;
	return 0;
}

static void hash_hex(char out[AUDIT_HASH_HEX + 1], const char *data,
		     size_t len)
{
	unsigned char digest[crypto_generichash_BYTES];

	crypto_generichash(digest, sizeof(digest), (const unsigned char *)data,
			   len, NULL, 0);
	sodium_bin2hex(out, AUDIT_HASH_HEX + 1, digest, sizeof(digest));
}

/* Canonical serialisation of obj and its hash. */
static int hash_object(char out[AUDIT_HASH_HEX + 1], const json_t *obj,
		       struct gg_err *err)
{
	char *canon = json_dumps(obj, CANON_FLAGS);

	if (!canon)
		return gg_err_set(err, GG_ENOMEM, "audit: out of memory");
	hash_hex(out, canon, strlen(canon));
	free(canon);
	return 0;
}

int audit_line_format(char **out, size_t *outlen,
		      char hash[AUDIT_HASH_HEX + 1],
		      const struct audit_record *rec, const char *prev,
		      struct gg_err *err)
{
	json_t *obj = NULL;
	char *text = NULL, *line;
	size_t len;
	int ret;

	ret = build_object(&obj, rec, prev, err);
	if (ret)
		goto out;
	ret = hash_object(hash, obj, err);
	if (ret)
		goto out;
	text = set(obj, "hash", json_string(hash)) ? NULL :
						     json_dumps(obj, CANON_FLAGS);
	if (!text) {
		ret = gg_err_set(err, GG_ENOMEM, "audit: out of memory");
		goto out;
	}
	len = strlen(text);
	if (len > AUDIT_MAX_LINE) {
		ret = gg_err_set(err, GG_ELIMIT,
				 "audit: record of %zu bytes exceeds %d", len,
				 AUDIT_MAX_LINE);
		goto out;
	}
	line = malloc(len + 2);
	if (!line) {
		ret = gg_err_set(err, GG_ENOMEM, "audit: out of memory");
		goto out;
	}
	memcpy(line, text, len);
	line[len] = '\n';
	line[len + 1] = '\0';
	*out = line;
	*outlen = len + 1;
out:
	free(text);
	json_decref(obj);
	return ret;
}

/* ---- checking a line ---- */

static int check_fields(const json_t *obj, struct gg_err *err)
{
	const char *s;
	size_t i;

	for (i = 0; i < sizeof(required_fields) / sizeof(required_fields[0]);
	     i++)
		if (!json_object_get(obj, required_fields[i]))
			return gg_err_set(err, GG_EINVAL, "missing field '%s'",
					  required_fields[i]);
	s = json_string_value(json_object_get(obj, "prev"));
	if (!s || !is_hash_hex(s))
		return gg_err_set(err, GG_EINVAL,
				  "prev is missing or not a 64-digit hex hash");
	s = json_string_value(json_object_get(obj, "hash"));
	if (!s || !is_hash_hex(s))
		return gg_err_set(err, GG_EINVAL,
				  "hash is missing or not a 64-digit hex hash");
	return 0;
}

/* The bytes on disk must be exactly what the writer would produce: edits
 * that keep the JSON meaning (spaces, key order, escapes) still count. */
static int check_canonical(const json_t *obj, const char *line, size_t len,
			   struct gg_err *err)
{
	char *text = json_dumps(obj, CANON_FLAGS);
	int ret = 0;

	if (!text)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	if (strlen(text) != len || memcmp(text, line, len))
		ret = gg_err_set(err, GG_EINVAL,
				 "not in canonical form (line edited)");
	free(text);
	return ret;
}

int audit_line_check(struct audit_line *out, const char *line, size_t len,
		     struct gg_err *err)
{
	char calc[AUDIT_HASH_HEX + 1];
	struct audit_line res;
	json_error_t jerr;
	json_t *obj = NULL;
	int ret;

	if (len > 0 && line[len - 1] == '\r')
		return gg_err_set(err, GG_EINVAL,
				  "ends with a carriage return (CRLF: line "
				  "edited)");
	obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj || !json_is_object(obj)) {
		ret = gg_err_set(err, GG_EINVAL,
				 "does not parse as a JSON object (edited or "
				 "corrupted)");
		goto out;
	}
	ret = check_fields(obj, err);
	if (!ret)
		ret = check_canonical(obj, line, len, err);
	if (ret)
		goto out;
	snprintf(res.prev, sizeof(res.prev), "%s",
		 json_string_value(json_object_get(obj, "prev")));
	snprintf(res.hash, sizeof(res.hash), "%s",
		 json_string_value(json_object_get(obj, "hash")));
	json_object_del(obj, "hash");
	ret = hash_object(calc, obj, err);
	if (ret)
		goto out;
	if (strcmp(calc, res.hash)) {
		ret = gg_err_set(err, GG_EINVAL, "hash mismatch (line edited)");
		goto out;
	}
	*out = res;
out:
	json_decref(obj);
	return ret;
}

/* ---- chain ---- */

void audit_chain_init(struct audit_chain *chain)
{
	memset(chain, 0, sizeof(*chain));
	chain->file_start = true;
	memcpy(chain->first_prev, AUDIT_GENESIS, sizeof(AUDIT_GENESIS));
	memcpy(chain->last, AUDIT_GENESIS, sizeof(AUDIT_GENESIS));
}

void audit_chain_begin_file(struct audit_chain *chain)
{
	chain->line = 0;
	chain->file_start = true;
}

static int check_link(struct audit_chain *chain, const char *prev,
		      struct gg_err *err)
{
	if (chain->records == 0) {
		/* Nothing to compare with: the file may continue a rotated
		 * one, so remember where it claims to start. */
		memcpy(chain->first_prev, prev, AUDIT_HASH_HEX + 1);
		chain->continued = strcmp(prev, AUDIT_GENESIS) != 0;
		return 0;
	}
	if (!strcmp(prev, chain->last))
		return 0;
	if (chain->file_start)
		return gg_err_set(err, GG_EINVAL,
				  "line %llu: prev does not match the last "
				  "hash of the previous file (file missing or "
				  "out of order)",
				  (unsigned long long)chain->line);
	return gg_err_set(err, GG_EINVAL,
			  "line %llu: prev does not match line %llu's hash "
			  "(line deleted or reordered)",
			  (unsigned long long)chain->line,
			  (unsigned long long)chain->line - 1);
}

int audit_chain_add(struct audit_chain *chain, const char *line, size_t len,
		    struct gg_err *err)
{
	struct gg_err why = GG_ERR_INIT;
	struct audit_line parsed;
	int ret;

	chain->line++;
	ret = audit_line_check(&parsed, line, len, &why);
	if (ret)
		return gg_err_set(err, ret, "line %llu: %s",
				  (unsigned long long)chain->line, why.msg);
	ret = check_link(chain, parsed.prev, err);
	if (ret)
		return ret;
	memcpy(chain->last, parsed.hash, sizeof(parsed.hash));
	chain->file_start = false;
	chain->records++;
	return 0;
}

int audit_verify_file(struct audit_chain *chain, const char *path,
		      struct gg_err *err)
{
	struct audit_reader r;
	const char *line;
	size_t len;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gg_err_errno(err, GG_EIO, "cannot open %s", path);
	audit_chain_begin_file(chain);
	audit_reader_init(&r, fd);
	for (;;) {
		ret = audit_reader_next(&line, &len, &r, err);
		if (ret != 1)
			break;
		ret = audit_chain_add(chain, line, len, err);
		if (ret)
			goto out;
	}
	if (ret == 0 && audit_reader_pending(&r) > 0)
		ret = gg_err_set(err, GG_EINVAL,
				 "line %llu: truncated line (no newline at end "
				 "of file)",
				 (unsigned long long)chain->line + 1);
out:
	audit_reader_release(&r);
	close(fd);
	return ret;
}

/* ---- reader ---- */

void audit_reader_init(struct audit_reader *r, int fd)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
}

void audit_reader_release(struct audit_reader *r)
{
	free(r->buf);
	audit_reader_init(r, -1);
}

size_t audit_reader_pending(const struct audit_reader *r)
{
	return r->len - r->start;
}

/* Make room for at least one more byte: drop consumed bytes first, grow
 * (doubling, capped) only when the pending line fills the buffer. */
static int reader_room(struct audit_reader *r, struct gg_err *err)
{
	size_t ncap;
	char *nbuf;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->len -= r->start;
		r->start = 0;
	}
	if (r->len < r->cap)
		return 0;
	if (r->cap > AUDIT_MAX_LINE)
		return gg_err_set(err, GG_ELIMIT,
				  "line longer than %d bytes", AUDIT_MAX_LINE);
	ncap = r->cap ? r->cap * 2 : READ_CHUNK;
	if (ncap > (size_t)AUDIT_MAX_LINE + 1)
		ncap = (size_t)AUDIT_MAX_LINE + 1;
	nbuf = realloc(r->buf, ncap);
	if (!nbuf)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	r->buf = nbuf;
	r->cap = ncap;
	return 0;
}

int audit_reader_next(const char **line, size_t *len, struct audit_reader *r,
		      struct gg_err *err)
{
	char *nl;
	ssize_t n;
	int ret;

	for (;;) {
		nl = r->len > r->start + r->scan ?
			     memchr(r->buf + r->start + r->scan, '\n',
				    r->len - r->start - r->scan) :
			     NULL;
		if (nl) {
			*line = r->buf + r->start;
			*len = (size_t)(nl - *line);
			r->start += *len + 1;
			r->scan = 0;
			return 1;
		}
		r->scan = r->len - r->start;
		ret = reader_room(r, err);
		if (ret)
			return ret;
		n = read(r->fd, r->buf + r->len, r->cap - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gg_err_errno(err, GG_EIO, "read");
		if (n == 0)
			return 0;
		r->len += (size_t)n;
	}
}

/* ---- writer ---- */

/* Position of the last "\n" before end (exclusive), or -1 if none. Reads
 * backwards in chunks so a large log costs only its tail. */
static int find_line_start(off_t *out, int fd, off_t end, struct gg_err *err)
{
	char chunk[READ_CHUNK];
	off_t pos = end, from;
	ssize_t n;

	while (pos > 0) {
		if (end - pos > AUDIT_MAX_LINE)
			return gg_err_set(err, GG_ELIMIT,
					  "last line longer than %d bytes",
					  AUDIT_MAX_LINE);
		from = pos > READ_CHUNK ? pos - READ_CHUNK : 0;
		n = pread(fd, chunk, (size_t)(pos - from), from);
		if (n != pos - from)
			return gg_err_errno(err, GG_EIO, "read");
		while (n > 0) {
			n--;
			if (chunk[n] == '\n') {
				*out = from + n + 1;
				return 0;
			}
		}
		pos = from;
	}
	*out = 0;
	return 0;
}

/* The hash of the line in [start, end) of fd. */
static int hash_of_line_at(char out[AUDIT_HASH_HEX + 1], int fd, off_t start,
			   off_t end, struct gg_err *err)
{
	size_t len = (size_t)(end - start);
	struct audit_line parsed;
	char *buf = malloc(len + 1);
	int ret;

	if (!buf)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	if (pread(fd, buf, len, start) != (ssize_t)len)
		ret = gg_err_errno(err, GG_EIO, "read");
	else
		ret = audit_line_check(&parsed, buf, len, err);
	if (!ret)
		memcpy(out, parsed.hash, sizeof(parsed.hash));
	free(buf);
	return ret;
}

/* The hash of the last line of a regular file of size bytes, or
 * AUDIT_GENESIS when it is empty. Only the last line is checked: a full
 * check of a large log at every start would be slow; `audit verify` does
 * that. */
static int read_last_hash(char out[AUDIT_HASH_HEX + 1], int fd, off_t size,
			  const char *path, struct gg_err *err)
{
	struct gg_err why = GG_ERR_INIT;
	off_t start;
	char c;
	int ret;

	if (size == 0) {
		memcpy(out, AUDIT_GENESIS, sizeof(AUDIT_GENESIS));
		return 0;
	}
	if (pread(fd, &c, 1, size - 1) != 1)
		return gg_err_errno(err, GG_EIO, "audit_log %s: read", path);
	if (c != '\n')
		return gg_err_set(err, GG_EINVAL,
				  "audit_log %s: last line is truncated (no "
				  "newline); run 'gitgate audit verify'",
				  path);
	ret = find_line_start(&start, fd, size - 1, &why);
	if (!ret)
		ret = hash_of_line_at(out, fd, start, size - 1, &why);
	if (ret)
		return gg_err_set(err, ret,
				  "audit_log %s: last line: %s; run 'gitgate "
				  "audit verify'",
				  path, why.msg);
	return 0;
}

struct opened {
	int fd;
	bool regular;
	off_t size;
	dev_t dev;
	ino_t ino;
	char last[AUDIT_HASH_HEX + 1];
};

/* O_RDWR, not O_WRONLY: the tail is read back through the same descriptor
 * (pread ignores O_APPEND), so there is no window where the path names a
 * different file. */
static int open_fd(struct opened *out, const char *path, struct gg_err *err)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return gg_err_errno(err, GG_EIO, "audit_log %s: open", path);
	if (fstat(fd, &st) < 0) {
		gg_err_errno(err, GG_EIO, "audit_log %s: stat", path);
		close(fd);
		return GG_EIO;
	}
	out->fd = fd;
	out->regular = S_ISREG(st.st_mode);
	out->size = out->regular ? st.st_size : 0;
	out->dev = st.st_dev;
	out->ino = st.st_ino;
	return 0;
}

/* Become the file's one writer, then continue its chain. Two writers would
 * fork the chain (both appending after the same hash), which verify could
 * only report later as a reordered line; the advisory lock turns that
 * misconfiguration into a start-up error. File systems without flock
 * support get no lock rather than no log. A device or pipe (shared by
 * every process, e.g. /dev/full in tests) is neither locked nor read: it
 * starts a chain. */
static int claim(struct opened *o, const char *path, struct gg_err *err)
{
	if (o->regular && flock(o->fd, LOCK_EX | LOCK_NB) < 0 &&
	    errno == EWOULDBLOCK)
		return gg_err_set(err, GG_EEXISTS,
				  "audit_log %s: in use by another writer "
				  "(one gitgate process per audit log)",
				  path);
	return read_last_hash(o->last, o->fd, o->size, path, err);
}

static int open_log(struct opened *out, const char *path, struct gg_err *err)
{
	int ret = open_fd(out, path, err);

	if (ret)
		return ret;
	ret = claim(out, path, err);
	if (ret)
		close(out->fd);
	return ret;
}

/* Write from here on to the file o describes (claimed, chain checked). */
static void use_file(struct audit_log *log, const struct opened *o)
{
	log->fd = o->fd;
	log->regular = o->regular;
	log->dev = o->dev;
	log->ino = o->ino;
	log->size = o->size;
	log->partial = 0;
	log->prealloc = o->regular;
	log->alloc_end = o->size;
}

/* Names are printable ASCII without spaces, so that a table column and a
 * grep show them as they are. */
static bool is_instance_name(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return i > 0 && i <= GG_MAX_INSTANCE_LEN;
}

static int instance_name(char out[GG_MAX_INSTANCE_LEN + 1],
			 struct gg_err *err)
{
	const char *env = getenv("GITGATE_INSTANCE");

	if (env) {
		if (!is_instance_name(env))
			return gg_err_set(err, GG_EINVAL,
					  "GITGATE_INSTANCE: want 1 to %d "
					  "printable characters without spaces",
					  GG_MAX_INSTANCE_LEN);
		snprintf(out, GG_MAX_INSTANCE_LEN + 1, "%s", env);
		return 0;
	}
	if (gethostname(out, GG_MAX_INSTANCE_LEN + 1) != 0 ||
	    !memchr(out, '\0', GG_MAX_INSTANCE_LEN + 1) ||
	    !is_instance_name(out))
		snprintf(out, GG_MAX_INSTANCE_LEN + 1, "%s", "localhost");
	return 0;
}

const char *audit_instance(const struct audit_log *log)
{
	return log->instance;
}

int audit_open(struct audit_log **out, const char *path, struct gg_err *err)
{
	struct audit_log *log;
	struct opened o = { .fd = -1 };
	int ret;

	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR, "audit: libsodium init failed");
	log = calloc(1, sizeof(*log));
	if (log)
		log->path = strdup(path);
	if (!log || !log->path) {
		free(log);
		return gg_err_set(err, GG_ENOMEM, "audit: out of memory");
	}
	ret = instance_name(log->instance, err);
	if (!ret)
		ret = open_log(&o, path, err);
	if (ret) {
		free(log->path);
		free(log);
		return ret;
	}
	pthread_mutex_init(&log->lock, NULL);
	use_file(log, &o);
	log->healthy = true;
	memcpy(log->last, o.last, sizeof(o.last));
	*out = log;
	return 0;
}

/* ---- room for the next lines ---- */

static int alloc_range(int fd, off_t from, off_t len)
{
	int rc;

	do
		rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, from, len);
	while (rc != 0 && errno == EINTR);
	return rc;
}

/*
 * Have blocks allocated for the promised lines plus extra bytes, so those
 * writes cannot fail with ENOSPC: a full disk is found before a client is
 * answered, not after. FALLOC_FL_KEEP_SIZE leaves the file's size alone,
 * so readers see nothing. A file system that cannot preallocate makes no
 * promise: prealloc is dropped and writes take their chances, as on a
 * pipe.
 */
static int ensure_room(struct audit_log *log, size_t extra,
		       struct gg_err *err)
{
	off_t from = log->alloc_end > log->size ? log->alloc_end : log->size;
	off_t want = log->size + (off_t)log->claimed + (off_t)extra;
	off_t end = want + ROOM_CHUNK;
	int rc;

	if (!log->regular || !log->prealloc || want <= from)
		return 0;
	/* A chunk ahead saves a call per line; on a nearly full disk, only
	 * what is needed. */
	rc = alloc_range(log->fd, from, end - from);
	if (rc != 0 && (errno == ENOSPC || errno == EDQUOT)) {
		end = want;
		rc = alloc_range(log->fd, from, end - from);
	}
	if (rc == 0) {
		log->alloc_end = end;
		return 0;
	}
	/* EINVAL: a file system that takes fallocate but not KEEP_SIZE. */
	if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) {
		log->prealloc = false;
		return 0;
	}
	return gg_err_errno(err, GG_EIO, "audit_log %s: no room for the "
			    "next lines", log->path);
}

/* Give back blocks allocated past the last line, unless the file holds
 * more than we wrote. Truncating to the current size frees them on ext4
 * and tmpfs; if it fails, they merely stay allocated. */
static void trim_room(struct audit_log *log)
{
	struct stat st;

	if (!log->regular || log->alloc_end <= log->size)
		return;
	if (fstat(log->fd, &st) == 0 && st.st_size == log->size &&
	    ftruncate(log->fd, log->size) == 0)
		log->alloc_end = log->size;
}

static void unclaim(struct audit_log *log, size_t bytes)
{
	log->claimed -= bytes < log->claimed ? bytes : log->claimed;
}

int audit_reserve(struct audit_log *log, size_t *reserved,
		  const struct audit_record *rec, struct gg_err *err)
{
	char hash[AUDIT_HASH_HEX + 1];
	struct audit_record shape = *rec;
	char *line = NULL;
	size_t len = 0;
	int ret;

	*reserved = 0;
	shape.reason = NULL; /* RESERVE_SLACK covers any */
	if (!shape.instance)
		shape.instance = log->instance;
	ret = audit_line_format(&line, &len, hash, &shape, AUDIT_GENESIS, err);
	free(line);
	if (ret)
		return ret;
	len += RESERVE_SLACK;
	pthread_mutex_lock(&log->lock);
	ret = ensure_room(log, len, err);
	log->starved = ret != 0;
	if (ret) {
		log->healthy = false;
	} else {
		log->claimed += len;
		*reserved = len;
	}
	pthread_mutex_unlock(&log->lock);
	return ret;
}

void audit_unreserve(struct audit_log *log, size_t reserved)
{
	pthread_mutex_lock(&log->lock);
	unclaim(log, reserved);
	pthread_mutex_unlock(&log->lock);
}

void audit_close(struct audit_log *log)
{
	if (!log)
		return;
	trim_room(log);
	close(log->fd);
	pthread_mutex_destroy(&log->lock);
	free(log->path);
	free(log);
}

bool audit_healthy(struct audit_log *log)
{
	return atomic_load(&log->healthy);
}

/* Cut a partial line left by an earlier failed write, so the file again
 * ends with a complete, chained line. */
static int cut_partial(struct audit_log *log, struct gg_err *err)
{
	struct stat st;

	if (log->partial == 0)
		return 0;
	if (fstat(log->fd, &st) < 0)
		return gg_err_errno(err, GG_EIO, "audit_log %s: stat",
				    log->path);
	/* Only our own bytes are ever cut: if the file holds anything else,
	 * leave it for the operator. */
	if (st.st_size != log->size + log->partial)
		return gg_err_set(err, GG_EIO,
				  "audit_log %s: a partial line is followed by "
				  "data from another writer; not cutting it",
				  log->path);
	if (ftruncate(log->fd, log->size) < 0)
		return gg_err_errno(err, GG_EIO,
				    "audit_log %s: removing a partial line",
				    log->path);
	log->partial = 0;
	log->alloc_end = log->size; /* the truncation freed the room */
	return 0;
}

/* ---- following the path ---- */

/* Open the path again. The new file's first prev is the last hash written
 * to the old one; a file already there must end with that same hash. */
static int reopen_locked(struct audit_log *log, struct gg_err *err)
{
	struct opened o = { .fd = -1 };
	int ret;

	ret = open_fd(&o, log->path, err);
	if (ret)
		return ret;
	if (o.dev == log->dev && o.ino == log->ino) {
		close(o.fd); /* not rotated: keep writing where we are */
		log->healthy = true;
		return 0;
	}
	ret = claim(&o, log->path, err);
	if (!ret && o.size > 0 && strcmp(o.last, log->last))
		ret = gg_err_set(err, GG_EINVAL,
				 "audit_log %s: reopen: the file there ends "
				 "with another chain; still writing to the "
				 "old file",
				 log->path);
	if (ret) {
		close(o.fd);
		return ret;
	}
	trim_room(log);
	close(log->fd);
	use_file(log, &o);
	log->refused.set = false;
	log->starved = false;
	/* Requests in flight were promised room in the old file: find it in
	 * the new one now if we can (their append tries again anyway). */
	ensure_room(log, 0, NULL);
	log->healthy = true;
	return 0;
}

static bool is_refused(const struct refusal *r, const struct stat *st)
{
	return r->set && r->dev == st->st_dev && r->ino == st->st_ino &&
	       r->size == st->st_size &&
	       r->ctime.tv_sec == st->st_ctim.tv_sec &&
	       r->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static void remember_refusal(struct refusal *r, const struct stat *st,
			     const struct gg_err *why)
{
	r->set = true;
	r->dev = st->st_dev;
	r->ino = st->st_ino;
	r->size = st->st_size;
	r->ctime = st->st_ctim;
	r->err = *why;
}

/* For the operator: what became of the file being written. */
static const char *moved_how(struct audit_log *log, bool path_exists)
{
	struct stat st;

	if (path_exists)
		return "names another file now";
	if (fstat(log->fd, &st) == 0 && st.st_nlink == 0)
		return "was deleted";
	return "was renamed away";
}

/*
 * The path no longer names the open file (deleted, or renamed away and
 * maybe replaced): reopen it, as on SIGHUP, and say why on stderr. 1 when
 * it did, 0 when nothing changed (one stat(2)). A device or pipe is never
 * followed: its name may resolve to another object each time
 * (/dev/stderr) and it has no rotation. A file the reopen refused is not
 * tried again until it changes.
 */
static int follow_locked(struct audit_log *log, struct gg_err *err)
{
	struct gg_err why = GG_ERR_INIT;
	const char *why_moved;
	struct stat st;
	bool exists;
	int ret;

	if (!log->regular)
		return 0;
	exists = stat(log->path, &st) == 0;
	if (!exists && errno != ENOENT)
		return 0; /* cannot tell (EACCES...): leave things be */
	if (exists && st.st_dev == log->dev && st.st_ino == log->ino)
		return 0;
	if (exists && is_refused(&log->refused, &st))
		return gg_err_set(err, log->refused.err.code, "%s",
				  log->refused.err.msg);
	why_moved = moved_how(log, exists);
	ret = reopen_locked(log, &why);
	if (ret) {
		if (exists)
			remember_refusal(&log->refused, &st, &why);
		return gg_err_set(err, ret, "%s", why.msg);
	}
	log_info("audit_log %s %s: reopened it (the chain continues there)",
		 log->path, why_moved);
	return 1;
}

/* Has the open file been deleted (so that its lines would be lost)? */
static bool unlinked(struct audit_log *log)
{
	struct stat st;

	return fstat(log->fd, &st) != 0 || st.st_nlink == 0;
}

int audit_follow(struct audit_log *log, struct gg_err *err)
{
	int ret;

	pthread_mutex_lock(&log->lock);
	ret = follow_locked(log, err);
	pthread_mutex_unlock(&log->lock);
	return ret;
}

int audit_reopen(struct audit_log *log, struct gg_err *err)
{
	int ret;

	pthread_mutex_lock(&log->lock);
	ret = reopen_locked(log, err);
	pthread_mutex_unlock(&log->lock);
	return ret;
}

/* ---- appending ---- */

static int write_line(struct audit_log *log, const char *line, size_t len,
		      struct gg_err *err)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = write(log->fd, line + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			gg_err_errno(err, GG_EIO, "audit_log %s: write",
				     log->path);
			if (done > 0 && log->regular) {
				log->partial = (off_t)done;
				cut_partial(log, NULL);
			}
			return GG_EIO;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Pipes and character devices cannot sync (EINVAL): only regular files
 * promise durability. */
static int sync_log(struct audit_log *log, struct gg_err *err)
{
	if (fdatasync(log->fd) == 0 || (!log->regular && errno == EINVAL))
		return 0;
	return gg_err_errno(err, GG_EIO, "audit_log %s: fsync", log->path);
}

/* No line goes to a file that lost its name. A refused follow keeps the
 * old file (audit_follow reports it) while that is still named somewhere
 * (renamed away); a deleted one takes no more lines. Lock held. */
static int still_named(struct audit_log *log, struct gg_err *err)
{
	struct gg_err why = GG_ERR_INIT;

	if (follow_locked(log, &why) < 0 && unlinked(log))
		return gg_err_set(err, GG_EIO, "audit_log %s was deleted and "
				  "cannot be opened anew (%s)",
				  log->path, why.msg);
	return 0;
}

int audit_append_reserved(struct audit_log *log,
			  const struct audit_record *rec, size_t reserved,
			  struct gg_err *err)
{
	char hash[AUDIT_HASH_HEX + 1];
	struct audit_record named = *rec;
	int64_t began = timeutil_mono_us();
	char *line = NULL;
	size_t len = 0;
	int ret;

	if (!named.instance)
		named.instance = log->instance;
	pthread_mutex_lock(&log->lock);
	unclaim(log, reserved); /* this line uses it, or fails */
	ret = audit_line_format(&line, &len, hash, &named, log->last, err);
	if (ret)
		goto out;
	ret = still_named(log, err);
	if (!ret)
		ret = cut_partial(log, err);
	if (!ret)
		ret = ensure_room(log, len, err);
	if (!ret)
		ret = write_line(log, line, len, err);
	if (ret) {
		log->healthy = false;
		goto out;
	}
	/* The line is in the file from here on, synced or not: the chain
	 * continues from it either way. */
	memcpy(log->last, hash, sizeof(hash));
	log->size += (off_t)len;
	ret = sync_log(log, err);
	log->healthy = ret == 0 && !log->starved;
out:
	pthread_mutex_unlock(&log->lock);
	free(line);
	/* lock wait included: it is what a request waits for */
	metrics_audit_append(timeutil_mono_us() - began, ret == 0);
	return ret;
}

int audit_append(struct audit_log *log, const struct audit_record *rec,
		 struct gg_err *err)
{
	return audit_append_reserved(log, rec, 0, err);
}

/* Can the log take lines again? ENOSPC, EDQUOT, EFBIG and EIO show up
 * here without a record being written. Where room can be set aside, ask
 * for more past what is already set aside for fetches in flight (giving
 * that back, even for a moment, could let another process take it).
 * Elsewhere grow the file and give the space back. */
static int probe_room(struct audit_log *log, struct gg_err *err)
{
	off_t from = log->alloc_end > log->size ? log->alloc_end : log->size;
	int rc;

	if (!log->regular)
		return 0;
	if (log->prealloc) {
		if (alloc_range(log->fd, from, PROBE_ROOM) != 0)
			return gg_err_errno(err, GG_EIO, "audit_log %s: probe",
					    log->path);
		log->alloc_end = from + PROBE_ROOM;
		return fdatasync(log->fd) == 0
			       ? 0
			       : gg_err_errno(err, GG_EIO,
					      "audit_log %s: probe", log->path);
	}
	rc = posix_fallocate(log->fd, log->size, PROBE_ROOM);
	if (rc != 0) {
		errno = rc;
		return gg_err_errno(err, GG_EIO, "audit_log %s: probe",
				    log->path);
	}
	if (ftruncate(log->fd, log->size) != 0)
		return gg_err_errno(err, GG_EIO, "audit_log %s: probe",
				    log->path);
	log->alloc_end = log->size; /* the truncation freed the room */
	rc = ensure_room(log, 0, err);
	if (rc)
		return rc;
	if (fdatasync(log->fd) != 0)
		return gg_err_errno(err, GG_EIO, "audit_log %s: probe",
				    log->path);
	return 0;
}

int audit_probe(struct audit_log *log, struct gg_err *err)
{
	int ret = 0;

	pthread_mutex_lock(&log->lock);
	/* The same condition as an append, checked even while healthy: a
	 * deleted log whose path cannot be opened is unhealthy (and /readyz
	 * says so) before the first request is refused for it. */
	ret = still_named(log, err);
	if (ret)
		log->healthy = false;
	else if (!log->healthy) {
		ret = cut_partial(log, err);
		if (!ret)
			ret = probe_room(log, err);
		if (!ret) {
			log->starved = false;
			log->healthy = true;
		}
	}
	pthread_mutex_unlock(&log->lock);
	return ret;
}

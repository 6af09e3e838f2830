/*
 * audit.h - the tamper-evident audit log: JSON lines, one per decision,
 * chained with BLAKE2b (see README "Audit log" for the exact format).
 *
 * One writer per file: audit_append is thread-safe (serialised inside), the
 * line is written with one write(2) on an O_APPEND descriptor and fsync'd
 * before audit_append returns, so the caller may then answer the client.
 *
 * Line format. Every line is the canonical serialisation of one JSON object
 * followed by "\n". Canonical = jansson json_dumps with
 * JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII: no whitespace, keys in
 * byte order, strings escaped as \" \\ \b \f \n \r \t, other bytes below
 * 0x20 and every non-ASCII character as \uXXXX with UPPER-case hex (UTF-16
 * surrogate pairs above U+FFFF), '/' and DEL unescaped, integers in decimal.
 *
 *   prev = the hash member of the previous line; AUDIT_GENESIS (64 zeros)
 *          for the first line ever written.
 *   hash = lowercase hex of BLAKE2b-256 (crypto_generichash, no key) over
 *          the canonical serialisation of the object WITHOUT its hash member
 *          (prev included, no trailing newline).
 *
 * A verifier parses the line, requires that re-serialising it canonically
 * gives back exactly the bytes on disk (so whitespace, key order or escape
 * edits are caught even though they keep the JSON meaning), then removes
 * hash, re-serialises and compares the digest.
 *
 * Never a secret: the record has no field for a token, key or
 * Authorization header, and in any string value each run that looks like
 * one ("v<digit>.public." / "v<digit>.local." / "k<digit>.secret" /
 * "k<digit>.local" and the token characters after it) is replaced by
 * "[redacted]", the rest kept; a value starting "Bearer " / "Basic " is
 * "[redacted]" whole. Bytes that are not UTF-8 are written as "\xNN".
 */
#ifndef GITGATE_AUDIT_H
#define GITGATE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

/* Hex digits in a hash; buffers holding one are AUDIT_HASH_HEX + 1. */
#define AUDIT_HASH_HEX 64
/* prev of the first line of a chain. */
#define AUDIT_GENESIS \
	"0000000000000000000000000000000000000000000000000000000000000000"
/* Longest line we write or read (newline excluded). A push of
 * GG_MAX_PUSH_COMMANDS refs with long names fits. */
#define AUDIT_MAX_LINE (64 * 1024 * 1024)
/* The redacted form of a string value that looked like a secret. */
#define AUDIT_REDACTED "[redacted]"

struct audit_ref {
	const char *ref;
	const char *old;    /* 40-hex */
	const char *new;    /* 40-hex */
	const char *action; /* create|update|force|delete */
	const char *result; /* "ok" or the refusal/failure reason */
	/* Optional, for a ref gitgate refused; NULL = key left out. */
	const char *rule;   /* protected_ref, protected_path, forbidden_path,
			     * max_file_size, commit_email, secret:<id>,
			     * content_check */
	const char *path;   /* the file the rule matched */
	const char *commit; /* full 40-hex id of the offending commit */
	size_t line;	    /* secret:<id>: its line in path; 0 = left out */
	const char *hash;   /* secret:<id>: keyed hash of the match, never
			     * the match (secretscan.h) */
};

struct audit_record {
	int64_t time_ms; /* Unix ms when the request arrived; 0 = now */
	const char *request_id;
	const char *sub;  /* NULL when the token did not parse */
	const char *jti;  /* NULL likewise */
	const char *repo; /* "owner/name" or NULL */
	const char *service; /* "git-upload-pack" / "git-receive-pack" / NULL */
	const char *client;  /* peer address */
	const char *decision; /* "allow" / "deny" */
	const char *reason;   /* NULL or "" for a plain allow */
	const struct audit_ref *refs;
	size_t nrefs;
	int status; /* HTTP status sent to the client */
	uint64_t bytes_in;
	uint64_t bytes_out;
	int64_t duration_ms;
	/* Fetches with the fetch cache on: "hit", "miss" or "bypass", and
	 * what the request cost upstream in bytes; NULL = both left out. */
	const char *cache;
	uint64_t upstream_bytes;
	/* Which gitgate wrote the line (several behind a load balancer each
	 * keep their own log). NULL: the log's own (audit_open), which is
	 * what the proxy uses; the pure line functions then leave it out. */
	const char *instance;
};

struct audit_log;

/* Open (creating 0600 if needed) and read the last line to continue the
 * chain. A last line that does not parse, lacks its newline or whose hash
 * is wrong is an error (the operator must look), not a silent fresh start;
 * only the last line is checked (`gitgate audit verify` checks them all).
 * A regular file is locked (flock) for this writer: a second audit_open of
 * the same file, from any process, fails with GG_EEXISTS.
 * Every line it writes carries an "instance" member (hashed like the
 * others): $GITGATE_INSTANCE when set, else the host name (a pod's name
 * in Kubernetes); GG_EINVAL for an empty, over-long or non-printable
 * $GITGATE_INSTANCE. */
int audit_open(struct audit_log **out, const char *path, struct gg_err *err);

/* The instance name this log writes (borrowed, lives as long as log). */
const char *audit_instance(const struct audit_log *log);
void audit_close(struct audit_log *log);

/* Append one record. Fails (and stays failed until a later append
 * succeeds) if the write or fsync fails; the message names the file and
 * errno. A write that fails part-way has its partial line cut off before
 * the next append, so the file only ever holds complete lines we wrote. A
 * failed fsync leaves the (written) line in the chain. Before writing, the
 * path is followed like audit_follow does, so no line goes to a file that
 * was deleted or renamed away. The line never takes room promised to
 * reserved lines: when the disk has no more, it fails instead. */
int audit_append(struct audit_log *log, const struct audit_record *rec,
		 struct gg_err *err);

/*
 * Room for a line written after the client has seen most of its answer
 * (a streamed fetch is audited when it ends, with its byte count). rec is
 * the record as known now: its counters, status and duration may still
 * change, and its reason become any string of fewer than GG_ERR_MSG_MAX
 * bytes. On a regular file the room is allocated now (fallocate, the size
 * unchanged), so a full disk fails here (GG_EIO, "no room for the next
 * lines: No space left on device", the log turning unhealthy as after a
 * failed append), before the client is answered; the line cannot then
 * fail for want of space (it still can for an I/O error). A device, a
 * pipe or a file system without fallocate cannot promise: this then
 * succeeds. *reserved receives the bytes set aside: pass them to
 * audit_append_reserved, which uses them up whether it succeeds or not,
 * or give them back with audit_unreserve.
 */
int audit_reserve(struct audit_log *log, size_t *reserved,
		  const struct audit_record *rec, struct gg_err *err);
int audit_append_reserved(struct audit_log *log,
			  const struct audit_record *rec, size_t reserved,
			  struct gg_err *err);
void audit_unreserve(struct audit_log *log, size_t reserved);

/* false after a failed write until a later one succeeds: the proxy answers
 * 503 while the log is unhealthy (fail closed). */
bool audit_healthy(struct audit_log *log);

/* Meant to be called periodically (the proxy does every 200 ms). Always:
 * a log that was deleted and whose path cannot be opened anew is marked
 * unhealthy, so /readyz fails before a request is refused for it. While
 * unhealthy: check whether the log can take writes again without adding
 * a record (cut any partial line, reserve 8 KiB past the end, give it
 * back, sync); success restores health, so a proxy taken out of rotation
 * recovers without traffic. Returns 0 when healthy afterwards. */
int audit_probe(struct audit_log *log, struct gg_err *err);

/* Reopen the path (after the operator renamed the file for rotation); the
 * new file's first prev is the last hash written to the old one. A file
 * already at the path must end with that same hash (it is the same file,
 * or a copy of it); otherwise the reopen is refused and the old descriptor
 * stays in use. A successful reopen clears the unhealthy state: the next
 * append tells whether the new file is writable. */
int audit_reopen(struct audit_log *log, struct gg_err *err);

/* Reopen as audit_reopen does when the path no longer names the open file
 * (deleted, or renamed away and maybe replaced: rotation without SIGHUP),
 * logging one line on stderr that says why. Costs one stat(2) when
 * nothing changed; a device or pipe (/dev/stderr, /dev/full) is never
 * followed. Meant to be called periodically (the proxy does every 200 ms)
 * for a log with no traffic; audit_append follows the path itself before
 * each line. Returns 1 when it reopened, 0 when nothing changed, negative
 * when the file at the path was refused (see audit_reopen) or could not be
 * opened: the old file stays in use, and a refused file is not tried again
 * until it changes (the same error is returned meanwhile). */
int audit_follow(struct audit_log *log, struct gg_err *err);

/*
 * Pure line functions (no I/O), shared by the writer, `gitgate audit
 * verify` and the tests.
 */

/* Serialise rec as one line chained to prev (AUDIT_HASH_HEX lowercase hex),
 * "\n"-terminated. *out is malloc'd and NUL-terminated, *outlen excludes the
 * NUL; hash receives the line's hash. GG_EINVAL if decision is not
 * "allow"/"deny" or prev is malformed; GG_ELIMIT past AUDIT_MAX_LINE. */
int audit_line_format(char **out, size_t *outlen,
		      char hash[AUDIT_HASH_HEX + 1],
		      const struct audit_record *rec, const char *prev,
		      struct gg_err *err);

struct audit_line {
	char prev[AUDIT_HASH_HEX + 1];
	char hash[AUDIT_HASH_HEX + 1];
};

/* Check one line on its own (len bytes, newline excluded): parses, has
 * every field, is canonical, and its hash matches its content. GG_EINVAL
 * with the reason (no line number) otherwise. */
int audit_line_check(struct audit_line *out, const char *line, size_t len,
		     struct gg_err *err);

/*
 * Chain verification over one or more files in order (rotated files
 * first). Invariant: last is the hash a following line must carry as
 * prev; line is the number of the last line seen in the current file.
 */
struct audit_chain {
	uint64_t records;               /* lines accepted, over all files */
	uint64_t line;                  /* line number in the current file */
	bool file_start;                /* next line opens a new file */
	bool continued;                 /* first prev was not AUDIT_GENESIS */
	char first_prev[AUDIT_HASH_HEX + 1];
	char last[AUDIT_HASH_HEX + 1];  /* AUDIT_GENESIS before any line */
};

void audit_chain_init(struct audit_chain *chain);
/* Line numbers restart at 1; the next line's prev must be the previous
 * file's last hash (unless no record has been seen yet). */
void audit_chain_begin_file(struct audit_chain *chain);
/* Accept the next line or fail with "line N: <why>". A first line whose
 * prev is not AUDIT_GENESIS is accepted (the file continues a rotated one)
 * and sets continued: the head of a chain cannot be checked from the file
 * alone. */
int audit_chain_add(struct audit_chain *chain, const char *line, size_t len,
		    struct gg_err *err);
/* audit_chain_begin_file, then every line of path; a final line without
 * "\n" fails as "line N: truncated line (no newline at end of file)". */
int audit_verify_file(struct audit_chain *chain, const char *path,
		      struct gg_err *err);

/*
 * Incremental line reader over a descriptor (file, pipe), for verify and
 * `audit --follow`. Invariant: buf[start..len) holds read bytes not yet
 * returned; a line is returned only once its "\n" has been read.
 */
struct audit_reader {
	int fd;     /* borrowed */
	char *buf;
	size_t cap;
	size_t start;
	size_t scan; /* bytes after start already known to hold no "\n" */
	size_t len;
};

void audit_reader_init(struct audit_reader *r, int fd);
void audit_reader_release(struct audit_reader *r);
/* 1: *line (borrowed until the next call) and *len (newline excluded) hold
 * the next line. 0: no complete line before end of file for now (call
 * again after more data arrives). Negative: read error, or a line longer
 * than AUDIT_MAX_LINE (GG_ELIMIT). */
int audit_reader_next(const char **line, size_t *len, struct audit_reader *r,
		      struct gg_err *err);
/* Bytes of an incomplete last line held back (a truncated line at EOF). */
size_t audit_reader_pending(const struct audit_reader *r);

#endif

/*
 * audit.h - the tamper-evident audit log: JSON lines, one per decision,
 * chained with BLAKE2b (see README "Audit log" for the exact format).
 *
 * One writer per file: audit_append is thread-safe (serialised inside), the
 * line is written with one write(2) on an O_APPEND descriptor and fsync'd
 * before audit_append returns, so the caller may then answer the client.
 */
#ifndef GITGATE_AUDIT_H
#define GITGATE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/err.h"

struct audit_ref {
	const char *ref;
	const char *old;    /* 40-hex */
	const char *new;    /* 40-hex */
	const char *action; /* create|update|force|delete */
	const char *result; /* "ok" or the refusal/failure reason */
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
};

struct audit_log;

/* Open (creating 0600 if needed) and read the last line to continue the
 * chain. A last line that does not parse is an error (the operator must
 * look), not a silent fresh start. */
int audit_open(struct audit_log **out, const char *path, struct gg_err *err);
void audit_close(struct audit_log *log);

/* Append one record. Fails (and stays failed until a later append
 * succeeds) if the write or fsync fails. */
int audit_append(struct audit_log *log, const struct audit_record *rec,
		 struct gg_err *err);

/* false after a failed write until a later one succeeds: the proxy answers
 * 503 while the log is unhealthy (fail closed). */
bool audit_healthy(struct audit_log *log);

/* Reopen the path (after the operator renamed the file for rotation); the
 * new file's first prev is the last hash written to the old one. */
int audit_reopen(struct audit_log *log, struct gg_err *err);

#endif

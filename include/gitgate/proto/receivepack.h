/*
 * receivepack.h - parse and rewrite the start of a git-receive-pack request
 * body (what `git push` POSTs to .../git-receive-pack). Pure; no I/O.
 *
 * Body layout (gitprotocol-pack, "Reference Update Request"):
 *
 *   *PKT-LINE("shallow" SP oid)
 *   PKT-LINE(old SP new SP refname NUL capability-list)
 *   *PKT-LINE(old SP new SP refname)
 *   flush-pkt
 *   [ *PKT-LINE(push-option) flush-pkt ]     only if "push-options" asked
 *   [ packfile ]                             absent for delete-only pushes
 *
 * The "command section" is everything before the packfile; the parser
 * reports its exact length so the caller knows where the pack starts. A
 * body that is exactly "0000" (git's auth probe before a large push) parses
 * as a request with no commands: nothing to authorize, and any bytes after
 * header_len are then not a legitimate pack (callers may refuse them).
 * SHA-1 only: object ids are 40 lowercase
 * hex digits; object-format=sha256 is refused. Signed pushes (push-cert)
 * are refused. Trailing LFs on lines are accepted and dropped, as git does.
 *
 * Invariants of a parsed struct rp_request: every refname passed
 * rp_refname_check and no refname occurs twice; ncommands <=
 * GG_MAX_PUSH_COMMANDS; npush_options <= GG_MAX_PUSH_OPTIONS; all strings
 * are NUL-terminated and free of control characters; the request owns all
 * of its memory (rp_request_release frees it).
 */
#ifndef GITGATE_RECEIVEPACK_H
#define GITGATE_RECEIVEPACK_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"
#include "gitgate/core/limits.h"
#include "gitgate/proto/pktline.h"

#define RP_OID_HEXSZ 40 /* SHA-1 in hex */

/* The 40 zeros git uses for "no object" (create: old; delete: new). */
extern const char rp_zero_oid[RP_OID_HEXSZ + 1];

struct rp_command {
	char old_oid[RP_OID_HEXSZ + 1];
	char new_oid[RP_OID_HEXSZ + 1];
	char *refname; /* owned */
};

/* Capabilities the client asked for on its first command line. */
struct rp_caps {
	bool report_status;
	bool report_status_v2;
	bool side_band_64k; /* receive-pack knows no plain side-band */
	bool quiet;
	bool atomic;
	bool push_options;
	bool ofs_delta;
	char *agent;	  /* value of agent=, NULL if absent; owned */
	char *session_id; /* value of session-id=, NULL if absent; owned */
	char *raw;	  /* exactly the bytes after the NUL, unknown
			   * capabilities included; "" when none; owned */
};

struct rp_request {
	char (*shallow)[RP_OID_HEXSZ + 1]; /* owned array */
	size_t nshallow;
	struct rp_command *commands; /* owned array, in the client's order */
	size_t ncommands;
	struct rp_caps caps;
	char **push_options; /* owned */
	size_t npush_options;
	size_t header_len; /* bytes of the command section: pack starts here */
};

void rp_request_init(struct rp_request *req);
void rp_request_release(struct rp_request *req);

/*
 * Incremental parser. Feed the body in chunks of any size (even one byte);
 * the parser keeps a partial pkt-line internally. Usage:
 *
 *   struct rp_parser p;
 *   rp_parser_init(&p);
 *   while ((n = read(...)) > 0) {
 *       rc = rp_parser_feed(&p, &used, chunk, n, err);
 *       if (rc == 0)    break;      // p.req complete; chunk+used = pack
 *       if (rc != GG_EAGAIN) fail;  // malformed, err says why
 *   }
 *   if (at end of input) rc = rp_parser_finish(&p, err);
 *   ... use p.req (or take it with rp_parser_detach) ...
 *   rp_parser_release(&p);
 *
 * Once the parser is done, further feeds return 0 with *out_used == 0.
 * Once it has failed, every call returns the same error code again.
 */
struct rp_parser {
	struct rp_request req; /* the result; complete once feed returns 0 */
	int state;	       /* private */
	int failed;	       /* private: sticky error code, or 0 */
	unsigned char *pkt;    /* private: partial packet (GG_MAX_PKT_LEN) */
	size_t have;	       /* private: bytes in pkt */
	size_t need;	       /* private: bytes the partial packet needs */
};

void rp_parser_init(struct rp_parser *p);
void rp_parser_release(struct rp_parser *p);

/*
 * Consume bytes of the body. Returns 0 when the command section is
 * complete: *out_used bytes of this chunk belonged to it and the rest is
 * pack data. Returns GG_EAGAIN when all len bytes were consumed and more
 * are needed. Returns GG_EINVAL / GG_ELIMIT / GG_ENOMEM with err set if
 * the request is malformed or too large.
 */
int rp_parser_feed(struct rp_parser *p, size_t *out_used, const void *data,
		   size_t len, struct gg_err *err);

/* Signal end of input. 0 if the command section is complete; otherwise
 * GG_EINVAL "truncated push request: ..." (an empty body included). */
int rp_parser_finish(struct rp_parser *p, struct gg_err *err);

/* Move the parsed request into *out (caller releases it); p keeps an empty
 * request. Only meaningful after feed returned 0. */
void rp_parser_detach(struct rp_request *out, struct rp_parser *p);

/* Parse a whole command section held in memory (convenience for tests and
 * callers that already buffered it): feed + finish-if-incomplete. The
 * remainder buf[out->header_len..len) is the pack. */
int rp_parse(struct rp_request *out, const void *buf, size_t len,
	     struct gg_err *err);

/*
 * Check a full ref name (len bytes, need not be NUL-terminated) the way git
 * check-ref-format does, enough to be safe: starts with "refs/", at most
 * GG_MAX_REFNAME bytes, no "..", "//", "@{", control characters, space or
 * any of ~^:?*[\, no component starting with '.' or ending with ".lock",
 * not ending in '/' or '.'. 0 or GG_EINVAL (GG_ELIMIT if too long) naming
 * the rule broken.
 */
int rp_refname_check(const char *name, size_t len, struct gg_err *err);

enum rp_kind {
	RP_CREATE, /* old is zero: nothing to compare against */
	RP_DELETE, /* new is zero (also when both are zero) */
	RP_UPDATE  /* both non-zero: caller must check ancestry (ff vs force) */
};

enum rp_kind rp_command_kind(const struct rp_command *cmd);

/* Would a request forwarding the commands with keep[i] (NULL = all) carry
 * a pack? git sends (and receive-pack reads) a pack unless every command is
 * a delete. If the original had a pack but this says false, drop it. */
bool rp_pack_expected(const struct rp_request *req, const bool *keep);

/*
 * Re-serialize the command section for forwarding upstream: the shallow
 * lines, the commands with keep[i] set (keep NULL = all) in their original
 * order, the capability list after a NUL on the first forwarded line, a
 * flush, and, if that capability list contains push-options, the push
 * options and a flush. caps NULL means req->caps.raw unchanged. Appends to
 * out; the pack (if rp_pack_expected) must follow unchanged. GG_EINVAL if
 * no command is kept. Lines are written as git's send-pack writes them
 * (shallow lines end in LF, commands and push options do not), so for a
 * request from git, keep == NULL and caps == NULL reproduce the original
 * command section byte for byte.
 */
int rp_serialize(struct pkt_buf *out, const struct rp_request *req,
		 const bool *keep, const char *caps, struct gg_err *err);

/*
 * The start of upstream's receive-pack ref advertisement (the body of
 * info/refs?service=git-receive-pack): "# service=git-receive-pack", a
 * flush, maybe "version 1", then the first ref line, whose capability list
 * follows a NUL. gitgate refuses signed pushes, so it must not advertise
 * push-cert: git would then sign (--signed=if-asked) and the push fail.
 *
 * rp_advert_rewrite reads buf[0..len) up to and including that first ref
 * line and appends to out the same packets with every "push-cert=..."
 * capability removed; *consumed is how many bytes of buf they replace
 * (what follows passes on unchanged). *sha256 tells whether the
 * capabilities say object-format=sha256.
 * GG_EAGAIN: the first ref line is not complete in buf yet.
 * GG_EINVAL: not such an advertisement (or no ref line among its first
 * packets): pass the body on as it is.
 */
int rp_advert_rewrite(struct pkt_buf *out, size_t *consumed, bool *sha256,
		      const void *buf, size_t len, struct gg_err *err);

#endif

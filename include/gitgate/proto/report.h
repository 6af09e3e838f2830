/*
 * report.h - the git-receive-pack response: parse upstream's, build the one
 * gitgate sends back to the client. Pure; no I/O.
 *
 * Response layout (gitprotocol-pack, "Report Status"):
 *
 *   PKT-LINE("unpack" SP ("ok" / error-msg))
 *   *( PKT-LINE("ok" SP refname) *PKT-LINE("option" SP ...)   (v2 options)
 *    / PKT-LINE("ng" SP refname SP reason) )
 *   flush-pkt
 *
 * With side-band(-64k) negotiated, that whole stream travels inside band-1
 * packets, progress in band 2, a fatal error in band 3, and the side-band
 * stream ends with its own flush. Without report-status the response is
 * only the side-band progress (or empty).
 *
 * Invariants of a parsed struct report: refs[] is in upstream's order;
 * every string is owned by the report and NUL-terminated; fatal, when set,
 * is one line without control characters. report_release frees it all.
 */
#ifndef GITGATE_REPORT_H
#define GITGATE_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "gitgate/core/err.h"
#include "gitgate/proto/pktline.h"
#include "gitgate/proto/receivepack.h"

/* What git's receive-pack says for the other refs of a failed atomic push;
 * git push shows "! [remote rejected] x -> x (atomic push failure)". */
#define REPORT_ATOMIC_REASON "atomic push failure"

/* Notes explaining local refusals (struct report_merge.notes), shown in
 * band 2: at most REPORT_MAX_NOTE_LINES lines per ref, and at most
 * REPORT_MAX_NOTES_BYTES bytes of note lines (prefix and LF counted) over
 * the whole response; what is left out is counted in one
 * "gitgate:   ... and N more" line per ref. */
#define REPORT_MAX_NOTE_LINES 50
#define REPORT_MAX_NOTES_BYTES (64 * 1024)

struct report_ref {
	char *refname; /* owned */
	bool ok;
	char *reason;	/* ng reason ("" if upstream gave none); NULL if ok */
	char **options; /* v2: text after "option " of each following option
			 * line, e.g. "forced-update"; owned */
	size_t noptions;
};

struct report {
	bool have_status; /* a report-status section was present */
	char *unpack;	  /* "ok" or upstream's unpack error; owned */
	struct report_ref *refs;
	size_t nrefs;
	unsigned char *progress; /* band-2 bytes, concatenated; owned */
	size_t progress_len;
	size_t *progress_chunks; /* payload size of each band-2 packet, so
				  * the merge keeps upstream's packets; owned */
	size_t nprogress_chunks;
	char *fatal; /* band-3 message, NULL if none; owned */
};

void report_init(struct report *r);
void report_release(struct report *r);

/* report_parse flags: how upstream was asked to answer */
#define REPORT_SIDEBAND 0x1	 /* side-band or side-band-64k negotiated */
#define REPORT_EXPECT_STATUS 0x2 /* report-status or -v2 negotiated */

/* The flags matching the capabilities that were forwarded upstream. */
unsigned report_flags(const struct rp_caps *caps);

/*
 * Parse upstream's whole response body (len <= GG_MAX_REPORT_LEN). On 0,
 * *out holds the result (release it). A band-3 message is not an error
 * here: it is stored in out->fatal, parsing stops there, and report_merge
 * turns it into per-ref failures. GG_EINVAL for anything malformed
 * (bad framing, unknown line, missing flush, trailing bytes, no report
 * when REPORT_EXPECT_STATUS and no fatal), GG_ELIMIT for oversize.
 */
int report_parse(struct report *out, const void *body, size_t len,
		 unsigned flags, struct gg_err *err);

/* Final status of one client command, for the audit log. */
struct report_result {
	bool ok;
	const char *reason; /* NULL if ok; borrowed from the merge inputs or
			     * a static string */
};

/*
 * Inputs to report_merge. refusals[i] is gitgate's reason for refusing
 * req->commands[i] (NULL = allowed locally); refusals itself may be NULL
 * when nothing was refused. upstream is NULL when nothing was forwarded.
 * upstream_error, if set, says why upstream gave no usable report (HTTP
 * failure, unparseable reply): every forwarded ref fails with it.
 */
struct report_merge {
	const struct rp_request *req;
	const char *const *refusals;
	const struct report *upstream;
	const char *upstream_error;
	struct report_result *results; /* optional out: [req->ncommands] */
	/* gitgate could not read the pushed pack itself (corrupt, truncated):
	 * reported as "unpack <error>" as git's receive-pack would; NULL
	 * otherwise. */
	const char *local_unpack_error;
	/* Optional, indexed like refusals: notes[i] is NULL or extra lines,
	 * separated by '\n', explaining refusals[i] (e.g. every finding of a
	 * content check). Only side-band clients see them (report-status has
	 * no room), and only for refused commands; notes itself may be NULL. */
	const char *const *notes;
	/* Optional, indexed likewise: how many more notes there were than
	 * notes[i] holds (its author kept only some); added to the "... and
	 * N more" count. NULL: none. */
	const size_t *notes_more;
};

/*
 * Append to out the response body for the client, shaped by the client's
 * capabilities (req->caps):
 *   - side-band: one band-2 line "gitgate: refusing <ref>: <reason>\n" per
 *     local refusal, each followed by one "gitgate:   <note>\n" line per
 *     non-empty line of its notes (cleaned like reasons; capped, see
 *     REPORT_MAX_NOTE_LINES), a "gitgate: upstream failed: ..." line if
 *     upstream failed, upstream's band-2 progress (packet for packet,
 *     re-split only to fit the client's side-band size), then the report in
 *     band-1 packets (<= 65520 bytes for side-band-64k, <= 1000 for
 *     side-band), then flush;
 *   - report-status: "unpack ok" (or upstream's unpack error), then one
 *     "ok <ref>" / "ng <ref> <reason>" per command in the client's original
 *     order (v2 option lines kept when the client asked for v2), flush.
 * Per command: a local refusal wins; with "atomic" and any refusal every
 * other ref fails with REPORT_ATOMIC_REASON; else upstream_error, then
 * upstream's fatal message, then upstream's line(s) for that ref, else
 * "ng <ref> no status from upstream".
 * Local reasons and note lines are cut to GG_MAX_REASON_LEN bytes and
 * control characters replaced, so they always fit one report line.
 */
int report_merge(struct pkt_buf *out, const struct report_merge *m,
		 struct gg_err *err);

#endif

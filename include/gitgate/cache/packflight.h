/*
 * packflight.h - one git upload-pack run whose answer several identical
 * requests share.
 *
 * 64 sandboxes starting the same task send the same request (same wants,
 * haves, capabilities): computing one pack for all of them costs about
 * one pack's CPU instead of 64 (Gitaly's pack-objects cache idea). The
 * run's output goes to an unlinked temporary file; each reader follows it
 * at its own offset, so a slow client never holds up a fast one and
 * gitgate keeps no pack in memory. A run no reader waits for any more is
 * killed at once (with its pack-objects), and the file goes with the last
 * reader.
 *
 * The process must ignore SIGPIPE (gitgate serve does): a run killed while
 * its request is still being written to it must not kill gitgate.
 *
 * Flights are found by key (a hash of repository, protocol and request):
 * a request joins a running flight, or one that finished while others
 * still read it; otherwise it starts a new one.
 */
#ifndef GITGATE_PACKFLIGHT_H
#define GITGATE_PACKFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gitgate/core/err.h"

#define PACKFLIGHT_KEY 32

struct packflight;
struct packflight_set;

struct packflight_run {
	const char *git;       /* path of git */
	const char *mirror;    /* bare repository to serve */
	const char *tmp_dir;   /* where the output file is made */
	const char *git_protocol; /* GIT_PROTOCOL, or NULL */
	const unsigned char *body; /* the request, decoded */
	size_t len;
	/* Called once, from the flight's thread, when the run has ended and
	 * the last reader has left: releases what hold keeps (the mirror). */
	void (*release)(void *hold);
	void *hold;
};

int packflight_set_new(struct packflight_set **out, struct gg_err *err);
/* Every flight must have been left. */
void packflight_set_free(struct packflight_set *s);

/* Join the flight for key or start it with run (run->release is then
 * called for it later; on joining, or on error, it is called now). */
int packflight_join(struct packflight_set *s,
		    const unsigned char key[PACKFLIGHT_KEY],
		    const struct packflight_run *run, struct packflight **out,
		    struct gg_err *err);

enum packflight_state {
	PACKFLIGHT_DATA,  /* bytes returned */
	PACKFLIGHT_WAIT,  /* nothing new within the wait: ask again */
	PACKFLIGHT_TAIL,  /* the run ended well; only the held-back tail
			   * is left: read it with hold 0 */
	PACKFLIGHT_END,	  /* all read, the run succeeded */
	PACKFLIGHT_FAILED /* all read, the run failed (packflight_why) */
};

/*
 * Read the output at off into buf, waiting at most wait_ms for some. While
 * the run is going, or when it succeeded, the last hold bytes are kept
 * back (PACKFLIGHT_TAIL): the caller writes its audit line before the
 * client gets a complete answer. Returns the bytes read (>0 only for
 * DATA), or -1 for an I/O error reading the file (as FAILED).
 */
ssize_t packflight_read(struct packflight *f, uint64_t off, void *buf,
			size_t max, size_t hold, int wait_ms,
			enum packflight_state *state);

/* Why a failed run failed ("git upload-pack exited with 128: ..."). */
const char *packflight_why(struct packflight *f);
/* Readers that joined this flight, the first one included. */
unsigned packflight_joined(struct packflight *f);

/* This reader is done (or its client left). The last one out kills a
 * run still going. */
void packflight_leave(struct packflight_set *s, struct packflight *f);

/* Runs started since the set was made (tests: sharing worked). */
uint64_t packflight_runs(struct packflight_set *s);

#endif

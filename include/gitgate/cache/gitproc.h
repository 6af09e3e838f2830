/*
 * gitproc.h - running git itself (upload-pack, repack) on a mirror.
 *
 * The child gets a fixed, minimal environment: gitgate's own (which may
 * hold GITGATE_UPSTREAM_TOKEN) never reaches it, and no system or user
 * git config is read, so only the options gitgate passes apply. Each
 * child leads its own process group, so that stopping it also stops the
 * pack-objects it started.
 */
#ifndef GITGATE_GITPROC_H
#define GITGATE_GITPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "gitgate/core/err.h"

struct gitproc {
	pid_t pid;
	int in;	 /* its stdin (write end), or -1 */
	int out; /* its stdout (read end), or -1 */
	int err; /* its stderr (read end), or -1 */
};

/* The absolute path of "git" on PATH, malloc'd; NULL when there is none. */
char *gitproc_find_git(void);

/*
 * Start git (argv[0] is the path gitproc_find_git gave) with pipes for
 * its stdin, stdout and stderr. git_protocol, when not NULL, becomes its
 * GIT_PROTOCOL. The pipe ends are non-blocking and close-on-exec.
 */
int gitproc_spawn(struct gitproc *p, char *const argv[],
		  const char *git_protocol, struct gg_err *err);

/* Stop the child's whole process group (SIGKILL). */
void gitproc_kill(struct gitproc *p);

/* Close the pipes still open and reap the child: its exit status as
 * waitpid gives it, or -1. */
int gitproc_wait(struct gitproc *p);

/*
 * Run git to completion with stdin from /dev/null: GG_OK when it exits
 * 0, else GG_ERR with the start of its stderr in the message.
 */
int gitproc_run(char *const argv[], struct gg_err *err);

#endif

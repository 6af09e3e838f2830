/*
 * gitproc.c - git children with a clean environment (see gitproc.h).
 */
#include "gitgate/cache/gitproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gitgate/core/limits.h"

char *gitproc_find_git(void)
{
	const char *path = getenv("PATH");
	char buf[4096];
	const char *p, *end;
	struct stat st;

	for (p = path ? path : "/usr/bin:/bin"; *p; p = *end ? end + 1 : end) {
		end = strchr(p, ':');
		if (!end)
			end = p + strlen(p);
		if (end == p || (size_t)snprintf(buf, sizeof(buf), "%.*s/git",
						 (int)(end - p), p) >=
					sizeof(buf))
			continue;
		if (buf[0] == '/' && stat(buf, &st) == 0 &&
		    S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
			return strdup(buf);
	}
	return NULL;
}

/* The whole environment of a git child. */
static void child_env(char **env, size_t cap, char *proto, size_t protosz,
		      const char *git_protocol)
{
	static char path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
	static char *fixed[] = { path, "HOME=/", "LC_ALL=C",
				 "GIT_CONFIG_NOSYSTEM=1",
				 "GIT_CONFIG_GLOBAL=/dev/null",
				 "GIT_TERMINAL_PROMPT=0", NULL };
	size_t n = 0;

	while (fixed[n] && n + 2 < cap) {
		env[n] = fixed[n];
		n++;
	}
	if (git_protocol) {
		snprintf(proto, protosz, "GIT_PROTOCOL=%s", git_protocol);
		env[n++] = proto;
	}
	env[n] = NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int make_pipes(int fds[3][2])
{
	int i;

	for (i = 0; i < 3; i++)
		fds[i][0] = fds[i][1] = -1;
	for (i = 0; i < 3; i++)
		if (pipe2(fds[i], O_CLOEXEC) != 0)
			return -1;
	return 0;
}

static void close_pipes(int fds[3][2])
{
	int i;

	for (i = 0; i < 3; i++) {
		close_fd(&fds[i][0]);
		close_fd(&fds[i][1]);
	}
}

int gitproc_spawn(struct gitproc *p, char *const argv[],
		  const char *git_protocol, struct gg_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	char *env[12], proto[256];
	int fds[3][2], rc;

	p->pid = -1;
	p->in = p->out = p->err = -1;
	if (make_pipes(fds) != 0) {
		close_pipes(fds);
		return gg_err_set(err, GG_EIO, "pipe: %s", strerror(errno));
	}
	child_env(env, 12, proto, sizeof(proto), git_protocol);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0][0], 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1][1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[2][1], 2);
	posix_spawnattr_init(&at);
	/* Its own group (killed as one); signals as a fresh process has
	 * them, whatever gitgate's threads block or ignore. */
	sigemptyset(&none);
	sigfillset(&dfl);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
					      POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&p->pid, argv[0], &fa, &at, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		close_pipes(fds);
		p->pid = -1;
		return gg_err_set(err, GG_EIO, "%s: %s", argv[0], strerror(rc));
	}
	p->in = fds[0][1];
	p->out = fds[1][0];
	p->err = fds[2][0];
	fds[0][1] = fds[1][0] = fds[2][0] = -1;
	close_pipes(fds); /* the child's ends */
	fcntl(p->in, F_SETFL, O_NONBLOCK);
	fcntl(p->out, F_SETFL, O_NONBLOCK);
	fcntl(p->err, F_SETFL, O_NONBLOCK);
	return GG_OK;
}

void gitproc_kill(struct gitproc *p)
{
	if (p->pid > 0)
		kill(-p->pid, SIGKILL);
}

int gitproc_wait(struct gitproc *p)
{
	int status = -1;

	close_fd(&p->in);
	close_fd(&p->out);
	close_fd(&p->err);
	if (p->pid <= 0)
		return -1;
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->pid = -1;
	return status;
}

/* Drain fd into buf (first cap-1 bytes kept) until end of file. */
static void drain(int fd, char *buf, size_t cap)
{
	struct pollfd pf = { fd, POLLIN, 0 };
	size_t len = 0;
	char tmp[4096];
	ssize_t n;

	for (;;) {
		n = read(fd, tmp, sizeof(tmp));
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				poll(&pf, 1, -1);
				continue;
			}
			break;
		}
		if (len + 1 < cap) {
			size_t k = (size_t)n < cap - 1 - len ? (size_t)n
							     : cap - 1 - len;
			memcpy(buf + len, tmp, k);
			len += k;
		}
	}
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
}

int gitproc_run(char *const argv[], struct gg_err *err)
{
	char msg[GG_MAX_CACHE_STDERR];
	struct gitproc p;
	int status, ret;

	ret = gitproc_spawn(&p, argv, NULL, err);
	if (ret)
		return ret;
	close_fd(&p.in);
	close_fd(&p.out); /* git's stdout: nothing wanted from it */
	drain(p.err, msg, sizeof(msg));
	status = gitproc_wait(&p);
	if (status == 0)
		return GG_OK;
	return gg_err_set(err, GG_ERR, "git: %s", msg[0] ? msg : "failed");
}

/*
 * packflight.c - shared git upload-pack runs (see packflight.h).
 *
 * Locking: the set's mutex guards its list and every flight's reader
 * count; a flight's own mutex guards its output state (size, done,
 * failed) and its condition variable wakes readers as output arrives.
 * Life: a flight is freed when its thread has finished and no reader is
 * left, by whichever of the two comes last.
 */
#include "gitgate/cache/packflight.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gitgate/cache/gitproc.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"

struct packflight {
	struct packflight *next;
	struct packflight_set *set;
	unsigned char key[PACKFLIGHT_KEY];
	unsigned readers;  /* set->lock */
	unsigned joined;   /* set->lock */
	bool thread_done;  /* set->lock */
	bool listed;	   /* set->lock: findable by key */
	int fd;		   /* the output file, unlinked */
	struct gitproc proc; /* pid guarded by set->lock */
	unsigned char *body;
	size_t len;
	void (*release)(void *);
	void *hold;
	pthread_mutex_t lock;
	pthread_cond_t more;
	uint64_t size; /* lock */
	bool done;     /* lock */
	bool failed;   /* lock */
	char why[GG_MAX_CACHE_STDERR + 128];
};

struct packflight_set {
	pthread_mutex_t lock;
	struct packflight *list;
	uint64_t runs;
};

int packflight_set_new(struct packflight_set **out, struct gg_err *err)
{
	struct packflight_set *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return GG_OK;
}

void packflight_set_free(struct packflight_set *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void flight_free(struct packflight *f)
{
	if (f->release)
		f->release(f->hold);
	if (f->fd >= 0)
		close(f->fd);
	free(f->body);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->more);
	free(f);
}

/* Take f off the set's list (set->lock held). */
static void unlist(struct packflight_set *s, struct packflight *f)
{
	struct packflight **pp;

	if (!f->listed)
		return;
	for (pp = &s->list; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	f->listed = false;
}

static void finish(struct packflight *f, bool failed, const char *why)
{
	pthread_mutex_lock(&f->lock);
	f->done = true;
	f->failed = failed;
	if (why) {
		size_t n = strnlen(why, sizeof(f->why) - 1);

		memmove(f->why, why, n); /* cut, like any message */
		f->why[n] = '\0';
	}
	pthread_cond_broadcast(&f->more);
	pthread_mutex_unlock(&f->lock);
}

/* Output arrived: append it to the file. */
static int take_output(struct packflight *f, char *buf, size_t cap)
{
	ssize_t n = read(f->proc.out, buf, cap), w;
	uint64_t at;
	size_t done = 0;

	if (n <= 0)
		return n == 0 || (errno != EAGAIN && errno != EINTR) ? 1 : 0;
	pthread_mutex_lock(&f->lock);
	at = f->size;
	pthread_mutex_unlock(&f->lock);
	while (done < (size_t)n) {
		w = pwrite(f->fd, buf + done, (size_t)n - done,
			   (off_t)(at + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	pthread_mutex_lock(&f->lock);
	f->size += (uint64_t)n;
	pthread_cond_broadcast(&f->more);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void take_stderr(struct packflight *f, size_t *errlen)
{
	char tmp[1024];
	ssize_t n = read(f->proc.err, tmp, sizeof(tmp));
	size_t room = GG_MAX_CACHE_STDERR - 1 - *errlen;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close(f->proc.err);
		f->proc.err = -1;
		return;
	}
	if (n > 0 && room > 0) {
		size_t k = (size_t)n < room ? (size_t)n : room;

		memcpy(f->why + *errlen, tmp, k);
		*errlen += k;
		f->why[*errlen] = '\0';
	}
}

static void feed_stdin(struct packflight *f, size_t *off)
{
	ssize_t n = write(f->proc.in, f->body + *off, f->len - *off);

	if (n > 0)
		*off += (size_t)n;
	if ((n < 0 && errno != EAGAIN && errno != EINTR) || *off == f->len) {
		close(f->proc.in); /* EPIPE too: it stopped reading */
		f->proc.in = -1;
	}
}

/* Pump the child: body in, output to the file, stderr kept. Returns 0 at
 * the end of its output, -1 when the file could not be written. */
static int pump(struct packflight *f)
{
	char buf[64 * 1024];
	size_t in_off = 0, errlen = 0;
	struct pollfd pf[3];
	int r;

	f->why[0] = '\0';
	for (;;) {
		pf[0] = (struct pollfd){ f->proc.out, POLLIN, 0 };
		pf[1] = (struct pollfd){ f->proc.err, POLLIN, 0 };
		pf[2] = (struct pollfd){ f->proc.in, POLLOUT, 0 };
		if (poll(pf, f->proc.in >= 0 ? 3 : 2, -1) < 0 &&
		    errno != EINTR)
			return -1;
		if (pf[2].revents && f->proc.in >= 0)
			feed_stdin(f, &in_off);
		if (pf[1].revents && f->proc.err >= 0)
			take_stderr(f, &errlen);
		if (pf[0].revents) {
			r = take_output(f, buf, sizeof(buf));
			if (r)
				return r > 0 ? 0 : -1;
		}
	}
}

static void *flight_main(void *arg)
{
	struct packflight *f = arg;
	struct packflight_set *s = f->set;
	char why[sizeof(f->why)];
	pid_t pid;
	int status, io = pump(f);

	/* From here on nobody may signal the pid: it is about to be
	 * reaped, and then the number may be reused. */
	pthread_mutex_lock(&s->lock);
	pid = f->proc.pid;
	f->proc.pid = -1;
	pthread_mutex_unlock(&s->lock);
	if (io != 0 && pid > 0)
		kill(-pid, SIGKILL);
	f->proc.pid = pid;
	snprintf(why, sizeof(why), "%s", f->why);
	status = gitproc_wait(&f->proc);
	if (io != 0)
		finish(f, true, "could not write upload-pack's output");
	else if (status != 0) {
		char msg[sizeof(f->why) + 64];

		snprintf(msg, sizeof(msg), "git upload-pack %s %d%s%s",
			 WIFSIGNALED(status) ? "killed by signal"
					     : "exited with",
			 WIFSIGNALED(status) ? WTERMSIG(status)
					     : WEXITSTATUS(status),
			 why[0] ? ": " : "", why);
		finish(f, true, msg);
	} else
		finish(f, false, NULL);
	pthread_mutex_lock(&s->lock);
	f->thread_done = true;
	if (f->readers == 0) {
		unlist(s, f);
		pthread_mutex_unlock(&s->lock);
		flight_free(f);
		return NULL;
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int open_output(const char *dir, struct gg_err *err)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/.upload-pack-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return gg_err_set(err, GG_EIO, "%s: %s", dir, strerror(errno));
	unlink(path); /* gone with the last descriptor, even after a crash */
	return fd;
}

static int start(struct packflight *f, const struct packflight_run *run,
		 struct gg_err *err)
{
	char *argv[] = { (char *)run->git,
			 "-c", "uploadpack.allowFilter=true",
			 /* wants were checked against upstream's refs
			  * (cache.c); the mirror's own are refs/gg/<age>-<id> */
			 "-c", "uploadpack.allowReachableSHA1InWant=true",
			 "-c", "uploadpack.allowAnySHA1InWant=false",
			 "upload-pack", "--stateless-rpc", "--strict",
			 (char *)run->mirror, NULL };
	pthread_attr_t at;
	pthread_t t;
	int ret;

	f->fd = open_output(run->tmp_dir, err);
	if (f->fd < 0)
		return f->fd;
	ret = gitproc_spawn(&f->proc, argv, run->git_protocol, err);
	if (ret)
		return ret;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &at, flight_main, f);
	pthread_attr_destroy(&at);
	if (ret != 0) {
		gitproc_kill(&f->proc);
		gitproc_wait(&f->proc);
		return gg_err_set(err, GG_ERR, "thread: %s", strerror(ret));
	}
	return GG_OK;
}

static struct packflight *flight_new(struct packflight_set *s,
				     const unsigned char *key,
				     const struct packflight_run *run)
{
	struct packflight *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->body = malloc(run->len ? run->len : 1);
	if (!f->body) {
		free(f);
		return NULL;
	}
	memcpy(f->body, run->body, run->len);
	f->len = run->len;
	f->set = s;
	f->fd = -1;
	f->proc.pid = -1;
	f->proc.in = f->proc.out = f->proc.err = -1;
	memcpy(f->key, key, PACKFLIGHT_KEY);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->more, NULL);
	return f;
}

int packflight_join(struct packflight_set *s,
		    const unsigned char key[PACKFLIGHT_KEY],
		    const struct packflight_run *run, struct packflight **out,
		    struct gg_err *err)
{
	struct packflight *f;
	int ret;

	*out = NULL;
	pthread_mutex_lock(&s->lock);
	for (f = s->list; f; f = f->next)
		if (!memcmp(f->key, key, PACKFLIGHT_KEY))
			break;
	if (f && !(f->thread_done && f->failed)) {
		f->readers++;
		f->joined++;
		pthread_mutex_unlock(&s->lock);
		if (run->release)
			run->release(run->hold);
		*out = f;
		return GG_OK;
	}
	f = flight_new(s, key, run);
	if (!f) {
		pthread_mutex_unlock(&s->lock);
		if (run->release)
			run->release(run->hold);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	f->readers = f->joined = 1;
	ret = start(f, run, err);
	if (ret) {
		pthread_mutex_unlock(&s->lock);
		f->release = run->release;
		f->hold = run->hold;
		flight_free(f);
		return ret;
	}
	f->release = run->release;
	f->hold = run->hold;
	f->listed = true;
	f->next = s->list;
	s->list = f;
	s->runs++;
	pthread_mutex_unlock(&s->lock);
	*out = f;
	return GG_OK;
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

ssize_t packflight_read(struct packflight *f, uint64_t off, void *buf,
			size_t max, size_t hold, int wait_ms,
			enum packflight_state *state)
{
	struct timespec until;
	uint64_t limit;
	bool done, failed;
	ssize_t n;

	deadline_in(&until, wait_ms);
	pthread_mutex_lock(&f->lock);
	for (;;) {
		done = f->done;
		failed = f->failed;
		/* a failed run's output is passed on whole: it carries git's
		 * own error message to the client */
		limit = done && failed ? f->size
			: f->size > hold ? f->size - hold : 0;
		if (limit > off || done)
			break;
		if (pthread_cond_timedwait(&f->more, &f->lock, &until) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&f->lock);
			*state = PACKFLIGHT_WAIT;
			return 0;
		}
	}
	pthread_mutex_unlock(&f->lock);
	if (limit > off) {
		if (limit - off < max)
			max = (size_t)(limit - off);
		n = pread(f->fd, buf, max, (off_t)off);
		*state = n > 0 ? PACKFLIGHT_DATA : PACKFLIGHT_FAILED;
		return n > 0 ? n : -1;
	}
	if (failed)
		*state = PACKFLIGHT_FAILED;
	else
		*state = hold > 0 && f->size > off ? PACKFLIGHT_TAIL
						   : PACKFLIGHT_END;
	return 0;
}

const char *packflight_why(struct packflight *f)
{
	return f->why[0] ? f->why : "git upload-pack failed";
}

unsigned packflight_joined(struct packflight *f)
{
	unsigned n;

	pthread_mutex_lock(&f->set->lock);
	n = f->joined;
	pthread_mutex_unlock(&f->set->lock);
	return n;
}

void packflight_leave(struct packflight_set *s, struct packflight *f)
{
	bool free_it = false;

	if (!f)
		return;
	pthread_mutex_lock(&s->lock);
	if (--f->readers == 0) {
		/* nobody wants this answer any more: no one may join a run
		 * being killed, and no pack-objects keeps computing it */
		if (!f->thread_done) {
			unlist(s, f);
			if (f->proc.pid > 0)
				kill(-f->proc.pid, SIGKILL);
		} else {
			unlist(s, f);
			free_it = true;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (free_it)
		flight_free(f);
}

uint64_t packflight_runs(struct packflight_set *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->runs;
	pthread_mutex_unlock(&s->lock);
	return n;
}

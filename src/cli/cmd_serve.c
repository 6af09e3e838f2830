/*
 * cmd_serve.c - `gitgate serve --config FILE`: run the proxy in the
 * foreground. The main thread owns the signals (blocked everywhere else and
 * taken with sigtimedwait), so reloads and shutdown run in ordinary code,
 * not in async signal handlers; its 200 ms wake-ups also poll the key,
 * revocation and site-policy files, which bounds how late a revocation
 * takes effect. A site policy with problems stops the start (each one
 * logged); a reload that fails keeps the previous policy.
 *
 * Under systemd (Type=notify) the service manager hears READY=1 once the
 * listener accepts, RELOADING=1 / READY=1 around a SIGHUP reload,
 * STOPPING=1 when a stop begins, and WATCHDOG=1 from this loop: a main
 * thread stuck anywhere stops the pings and systemd restarts us.
 */
#include "gitgate/core/cli.h"
#include "gitgate/config/config.h"
#include "gitgate/core/log.h"
#include "gitgate/core/sdnotify.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/http/server.h"

#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

static const char usage[] =
	"usage: gitgate serve --config FILE [--verbose]\n"
	"\n"
	"Run the proxy in the foreground, logging to stderr.\n"
	"  --config FILE   JSON config (see README \"Config file\")\n"
	"  --verbose       also log debug messages\n"
	"Signals: SIGTERM/SIGINT stop gracefully (transfers in flight get\n"
	"30 s to finish); SIGHUP reloads keys, revocations, the site\n"
	"policy and the TLS certificate (a broken file keeps the previous\n"
	"one) and reopens the audit log (for rotation).\n"
	"Under systemd (Type=notify) it reports READY=1 once listening,\n"
	"RELOADING=1/STOPPING=1, and WATCHDOG=1 when WatchdogSec= is set.\n"
	"Audit lines name this instance: $GITGATE_INSTANCE, else the host.\n";

/* Secrets live in this process's memory: never let it dump core or be
 * ptrace-attached by other users' processes. */
static void harden_process(void)
{
	struct rlimit no_core = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Each relayed request holds about four descriptors, so the usual soft
 * limit of 1024 would cap gitgate near 250 transfers, below its 1024
 * connections. Raise the soft limit to the hard one, as servers do. */
static void raise_fd_limit(void)
{
	struct rlimit fds;

	if (getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur < fds.rlim_max) {
		fds.rlim_cur = fds.rlim_max;
		setrlimit(RLIMIT_NOFILE, &fds);
	}
}

/* Every transfer allocates a few buffers of 64 KiB and more (curl's, the
 * request body pipe, the spill) and frees them when it ends. glibc raises
 * its mmap threshold each time such a block is freed, after which these
 * come from the per-thread arenas, which keep what was freed resident:
 * with 64 concurrent clones, gitgate's peak RSS was 50-57 MiB, with arena
 * heaps the largest part. A fixed threshold (which also stops the raising)
 * maps them on their own and gives them back on free: 36-44 MiB, same
 * wall time and CPU (bench_proxy.py --size-mb 20 --only concurrent). */
static void tune_malloc(void)
{
#ifdef M_MMAP_THRESHOLD
	mallopt(M_MMAP_THRESHOLD, 64 * 1024);
#endif
}

/* Tell the service manager; a manager that went away is worth a warning,
 * never a stop (the proxy still serves). */
static void notify(struct sdnotify *sd, const char *msg)
{
	struct gg_err err = GG_ERR_INIT;

	if (sdnotify_send(sd, msg, &err))
		log_warnx("%s", err.msg);
}

static void notify_reloading(struct sdnotify *sd)
{
	char msg[64];

	/* systemd >= 253 wants the time of the request with RELOADING=1. */
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%lld",
		 (long long)timeutil_mono_ms() * 1000);
	notify(sd, msg);
}

static void ping_watchdog(struct sdnotify *sd)
{
	struct gg_err err = GG_ERR_INIT;

	if (sdnotify_watchdog(sd, timeutil_mono_ms(), &err) < 0)
		log_warnx("%s", err.msg);
}

/* 200 ms (the reload polling), or less when a watchdog ping is due
 * sooner: pings go out on time, not up to a tick late. */
static struct timespec loop_tick(const struct sdnotify *sd)
{
	int64_t ms = 200, wd = sdnotify_watchdog_wait_ms(sd, timeutil_mono_ms());
	struct timespec tick;

	if (wd >= 0 && wd < ms)
		ms = wd > 0 ? wd : 1;
	tick.tv_sec = 0;
	tick.tv_nsec = (long)ms * 1000 * 1000;
	return tick;
}

static int run(struct server *srv, sigset_t *sigs, struct sdnotify *sd)
{
	struct timespec tick;
	unsigned cut;
	int sig;

	for (;;) {
		ping_watchdog(sd);
		tick = loop_tick(sd);
		sig = sigtimedwait(sigs, NULL, &tick);
		if (sig == SIGHUP) {
			log_info("SIGHUP: reloading");
			notify_reloading(sd);
			server_tick(srv, 1);
			notify(sd, "READY=1\nSTATUS=reloaded");
		} else if (sig == SIGTERM || sig == SIGINT) {
			log_info("%s: stopping (waiting up to 30 s for "
				 "transfers in flight)",
				 sig == SIGTERM ? "SIGTERM" : "SIGINT");
			notify(sd, "STOPPING=1\nSTATUS=stopping");
			cut = server_shutdown(srv, 30);
			if (cut)
				log_warnx("stopped with %u request(s) still "
					  "in flight",
					  cut);
			return CLI_OK;
		} else {
			server_tick(srv, 0);
		}
	}
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = NULL;
	struct server *srv = NULL;
	struct sdnotify sd;
	const char *config_path = NULL;
	sigset_t sigs;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'v':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		case 'h':
			fputs(usage, stdout);
			return CLI_OK;
		default:
			return cli_usage_error(usage, "serve: unknown or "
						      "incomplete option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error(usage, "serve: unexpected argument '%s'",
				       argv[optind]);
	if (!config_path)
		return cli_usage_error(usage, "serve: --config is required");

	harden_process();
	raise_fd_limit();
	tune_malloc();
	if (config_load(&cfg, config_path, &err) != 0)
		return cli_fail("config", err.msg);
	if (cfg->log_json)
		log_set_format(LOG_FORMAT_JSON);
	/* Read (and cleared from the environment) before any thread or
	 * child exists. A malformed one is systemd's or the operator's
	 * mistake: refuse to start rather than never report readiness. */
	if (sdnotify_from_env(&sd, &err) != 0) {
		config_free(cfg);
		return cli_fail("serve", err.msg);
	}
	/* Block before any thread exists so every thread inherits it. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* An audit log past a file size limit must fail its write (and so
	 * the request, closed), not kill the proxy. */
	signal(SIGXFSZ, SIG_IGN);

	ret = server_new(&srv, cfg, &err);
	if (ret != 0) {
		sdnotify_release(&sd);
		config_free(cfg);
		return cli_fail("serve", err.msg);
	}
	log_info("listening on %s%s%s:%u, relaying to %s",
		 strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
		 strchr(cfg->listen_host, ':') ? "]" : "", cfg->listen_port,
		 cfg->upstream_url);
	/* server_new returned with the listener bound and the daemon
	 * accepting: clients connecting from now on get answers. */
	notify(&sd, "READY=1\nSTATUS=serving");
	ret = run(srv, &sigs, &sd);
	server_free(srv);
	sdnotify_release(&sd);
	config_free(cfg);
	return ret;
}

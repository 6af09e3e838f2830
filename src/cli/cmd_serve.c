/*
 * cmd_serve.c - `gitgate serve --config FILE`: run the proxy in the
 * foreground. The main thread owns the signals (blocked everywhere else and
 * taken with sigtimedwait), so reloads and shutdown run in ordinary code,
 * not in async signal handlers; its 200 ms wake-ups also poll the key,
 * revocation and site-policy files, which bounds how late a revocation
 * takes effect. A site policy with problems stops the start (each one
 * logged); a reload that fails keeps the previous policy.
 */
#include "gitgate/core/cli.h"
#include "gitgate/config/config.h"
#include "gitgate/core/log.h"
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
	"one) and reopens the audit log (for rotation).\n";

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

static int run(struct server *srv, sigset_t *sigs)
{
	struct timespec tick = { 0, 200 * 1000 * 1000 };
	unsigned cut;
	int sig;

	for (;;) {
		sig = sigtimedwait(sigs, NULL, &tick);
		if (sig == SIGHUP) {
			log_info("SIGHUP: reloading");
			server_tick(srv, 1);
		} else if (sig == SIGTERM || sig == SIGINT) {
			log_info("%s: stopping (waiting up to 30 s for "
				 "transfers in flight)",
				 sig == SIGTERM ? "SIGTERM" : "SIGINT");
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
		config_free(cfg);
		return cli_fail("serve", err.msg);
	}
	log_info("listening on %s%s%s:%u, relaying to %s",
		 strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
		 strchr(cfg->listen_host, ':') ? "]" : "", cfg->listen_port,
		 cfg->upstream_url);
	ret = run(srv, &sigs);
	server_free(srv);
	config_free(cfg);
	return ret;
}

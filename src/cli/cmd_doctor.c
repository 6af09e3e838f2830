/*
 * cmd_doctor.c - `gitgate doctor --config FILE [--repo OWNER/NAME]`:
 * check a deployment step by step, as `gitgate serve` would meet it, and
 * say for each problem what to do about it.
 *
 * Each step prints "✓ <step>" or "✗ <step>: <problem>" and an indented
 * "fix: <what to do>". A step that needs a file an earlier step found
 * unusable is printed as skipped ("- ..."), so each broken part shows up
 * as exactly one ✗. Nothing is written: the audit log is checked with
 * access(2) and read, never opened for appending (a running proxy holds
 * its lock). The upstream credential is sent upstream, never printed.
 */
#include "gitgate/core/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/audit/audit.h"
#include "gitgate/config/config.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/http/relay.h"
#include "gitgate/http/tls.h"
#include "gitgate/push/policystate.h"
#include "gitgate/push/sitepolicy.h"
#include "gitgate/token/keyfile.h"
#include "gitgate/token/revocation.h"
#include "gitgate/upstream/cred.h"

static const char usage[] =
	"usage: gitgate doctor --config FILE [--repo OWNER/NAME]\n"
	"\n"
	"Check a deployment step by step: the config, the files it names and\n"
	"their permissions, keys, revocations, site policy, the audit log\n"
	"(its last lines verified), the TLS certificate, the upstream, and\n"
	"the upstream credential. Prints \"✓ step\" or \"✗ step: problem\"\n"
	"with a \"fix:\" line; exits 0 when every step passes, 1 otherwise.\n"
	"  --config FILE      the config gitgate serve is given\n"
	"  --repo OWNER/NAME  also ask the upstream for this repository's\n"
	"                     refs with gitgate's credential (an ls-remote)\n";

/* The audit log's tail that is verified: its last bytes, whole lines. */
#define DOCTOR_AUDIT_TAIL (4 * 1024 * 1024)
#define DOCTOR_CONNECT_S 5L
#define DOCTOR_TIMEOUT_S 15L

struct doctor {
	struct config *cfg;
	const char *repo; /* NULL without --repo */
	unsigned failed;
	/* files found unusable: the steps reading them are skipped */
	bool bad_verify, bad_revocations, bad_policy, bad_audit, bad_tls,
		bad_cred, bad_upstream;
};

/* ---- output -------------------------------------------------------- */

static void pass(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void pass(const char *fmt, ...)
{
	va_list ap;

	fputs("\u2713 ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void fail(struct doctor *d, const char *step, const char *problem,
		 const char *fixfmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(struct doctor *d, const char *step, const char *problem,
		 const char *fixfmt, ...)
{
	va_list ap;

	d->failed++;
	printf("\u2717 %s: %s\n    fix: ", step, problem);
	va_start(ap, fixfmt);
	vprintf(fixfmt, ap);
	va_end(ap);
	putchar('\n');
}

static void skip(const char *step, const char *why)
{
	printf("- %s: skipped (%s)\n", step, why);
}

/* ---- files --------------------------------------------------------- */

enum file_kind { FILE_PUBLIC, FILE_PRIVATE };

/* A file the config names: there, regular, readable, and (private) with
 * no group/other bits, the check serve makes when it reads it. */
static bool check_file(struct doctor *d, const char *key, const char *path,
		       enum file_kind kind)
{
	char step[GG_ERR_MSG_MAX + 32], problem[GG_ERR_MSG_MAX + 64];
	struct stat st;

	snprintf(step, sizeof(step), "file %s", key);
	if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
		snprintf(problem, sizeof(problem), "%s: %s", path,
			 strerror(errno));
		fail(d, step, problem,
		     errno == ENOENT ? "create %s, or correct \"%s\" in %s"
				     : "make %s readable by the user gitgate "
				       "runs as (\"%s\" in %s)",
		     path, key, d->cfg->path);
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(problem, sizeof(problem), "%s: not a regular file",
			 path);
		fail(d, step, problem, "point \"%s\" at a file", key);
		return false;
	}
	if (kind == FILE_PRIVATE && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		snprintf(problem, sizeof(problem),
			 "%s: permissions %04o are too open (want 0600)", path,
			 (unsigned)(st.st_mode & 07777));
		fail(d, step, problem, "chmod 600 %s", path);
		return false;
	}
	pass("file %s (%s%s)", key, path,
	     kind == FILE_PRIVATE ? ", private" : "");
	return true;
}

/* A directory gitgate writes in (the audit log's, cache_dir's): there,
 * a directory, writable. */
static bool check_dir(struct doctor *d, const char *step, const char *dir,
		      const char *key)
{
	char problem[GG_ERR_MSG_MAX + 64];
	struct stat st;

	if (stat(dir, &st) != 0) {
		snprintf(problem, sizeof(problem), "%s: %s", dir,
			 strerror(errno));
		fail(d, step, problem,
		     "mkdir -p %s (owned by the user gitgate runs as), or "
		     "correct \"%s\" in %s",
		     dir, key, d->cfg->path);
		return false;
	}
	if (!S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
		snprintf(problem, sizeof(problem), "%s: %s", dir,
			 S_ISDIR(st.st_mode) ? "not writable"
					     : "not a directory");
		fail(d, step, problem,
		     "make %s a directory the user gitgate runs as can write",
		     dir);
		return false;
	}
	pass("%s (%s)", step, dir);
	return true;
}

static char *parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static void check_revocations_file(struct doctor *d)
{
	const char *path = d->cfg->revocations;
	char *dir;

	if (access(path, F_OK) == 0) {
		d->bad_revocations = !check_file(d, "revocations", path,
						 FILE_PUBLIC);
		return;
	}
	/* Not there yet is an empty list; gitgate revoke creates it. */
	dir = parent_dir(path);
	d->bad_revocations = !dir || !check_dir(d, "revocations directory",
						dir, "revocations");
	free(dir);
}

static void check_files(struct doctor *d)
{
	const struct config *cfg = d->cfg;
	char key[48], *dir;
	size_t i;

	for (i = 0; i < cfg->nverify_keys; i++) {
		snprintf(key, sizeof(key), "verify_key[%zu]", i);
		if (!check_file(d, cfg->nverify_keys > 1 ? key : "verify_key",
				cfg->verify_keys[i], FILE_PUBLIC))
			d->bad_verify = true;
	}
	if (cfg->upstream_token_file &&
	    !check_file(d, "upstream.token_file", cfg->upstream_token_file,
			FILE_PRIVATE))
		d->bad_cred = true;
	if (cfg->app_key_file &&
	    !check_file(d, "upstream.github_app.private_key_file",
			cfg->app_key_file, FILE_PRIVATE))
		d->bad_cred = true;
	if (cfg->tls_cert_file) {
		d->bad_tls = !check_file(d, "tls.cert_file", cfg->tls_cert_file,
					 FILE_PUBLIC);
		if (!check_file(d, "tls.key_file", cfg->tls_key_file,
				FILE_PRIVATE))
			d->bad_tls = true;
	}
	if (cfg->policy)
		d->bad_policy = !check_file(d, "policy", cfg->policy,
					    FILE_PUBLIC);
	check_revocations_file(d);
	dir = parent_dir(cfg->audit_log);
	d->bad_audit = !dir || !check_dir(d, "audit log directory", dir,
					  "audit_log");
	free(dir);
	check_dir(d, "cache_dir writable", cfg->cache_dir, "cache_dir");
}

/* ---- keys, revocations, policy ------------------------------------- */

static void check_keys(struct doctor *d)
{
	struct gg_err err = GG_ERR_INIT;
	struct token_key key;
	size_t i;

	if (d->bad_verify) {
		skip("verify keys load", "verify_key above");
		return;
	}
	for (i = 0; i < d->cfg->nverify_keys; i++) {
		if (keyfile_load_public(&key, d->cfg->verify_keys[i], &err)) {
			fail(d, "verify keys load", err.msg,
			     "put a verify.pub written by `gitgate keygen` "
			     "(one k4.public.… line) at %s",
			     d->cfg->verify_keys[i]);
			return;
		}
	}
	pass("verify keys load (%zu key%s)", d->cfg->nverify_keys,
	     d->cfg->nverify_keys == 1 ? "" : "s");
}

static void check_revocations(struct doctor *d)
{
	struct gg_err err = GG_ERR_INIT;
	struct revocation_set *set = NULL;
	const char *first = "";
	char problem[GG_ERR_MSG_MAX + 64];
	size_t n;

	if (d->bad_revocations) {
		skip("revocation list loads", "revocations above");
		return;
	}
	if (revocation_load(&set, d->cfg->revocations, &err)) {
		fail(d, "revocation list loads", err.msg,
		     "repair %s: one jti or token per line",
		     d->cfg->revocations);
		return;
	}
	n = revocation_problems(set, &first);
	if (n) {
		snprintf(problem, sizeof(problem),
			 "%s: %zu line(s) not as documented, first %s",
			 d->cfg->revocations, n, first);
		fail(d, "revocation list loads", problem,
		     "edit those lines to one jti or token each (they are "
		     "read to revoke everything they might mean)");
	} else {
		pass("revocation list loads (%zu revoked)",
		     revocation_count(set));
	}
	revocation_free(set);
}

static void check_policy(struct doctor *d)
{
	struct sitepolicy_problems probs = { NULL, 0, 0 };
	struct gg_err err = GG_ERR_INIT;
	struct policystate *ps = NULL;

	if (!d->cfg->policy)
		return;
	if (d->bad_policy) {
		skip("site policy loads", "policy above");
		return;
	}
	/* As serve loads it, regexes compiled: what serve refuses, this
	 * refuses. */
	if (policystate_new(&ps, d->cfg->policy, NULL, 0, &probs, &err))
		fail(d, "site policy loads", err.msg,
		     "gitgate policy check %s lists every problem",
		     d->cfg->policy);
	else
		pass("site policy loads (%s)", d->cfg->policy);
	sitepolicy_problems_release(&probs);
	policystate_free(ps);
}

/* ---- audit log ----------------------------------------------------- */

/* Position fd at the first whole line of the file's last
 * DOCTOR_AUDIT_TAIL bytes; *whole says whether that is the start. */
static int seek_tail(int fd, off_t size, bool *whole)
{
	char c;
	ssize_t n;

	*whole = size <= DOCTOR_AUDIT_TAIL;
	if (*whole)
		return 0;
	if (lseek(fd, size - DOCTOR_AUDIT_TAIL - 1, SEEK_SET) < 0)
		return -1;
	do
		n = read(fd, &c, 1);
	while (n == 1 && c != '\n');
	return n == 1 ? 0 : -1;
}

static int verify_tail(struct audit_chain *chain, int fd, bool *truncated,
		       struct gg_err *err)
{
	struct audit_reader r;
	const char *line;
	size_t len;
	int ret;

	audit_chain_init(chain);
	audit_chain_begin_file(chain);
	audit_reader_init(&r, fd);
	while ((ret = audit_reader_next(&line, &len, &r, err)) == 1) {
		ret = audit_chain_add(chain, line, len, err);
		if (ret)
			break;
	}
	*truncated = ret == 0 && audit_reader_pending(&r) > 0;
	audit_reader_release(&r);
	return ret < 0 ? ret : GG_OK;
}

static void check_audit_chain(struct doctor *d, int fd, off_t size)
{
	struct gg_err err = GG_ERR_INIT;
	struct audit_chain chain;
	bool whole, truncated = false;
	char problem[GG_ERR_MSG_MAX + 64];
	const char *path = d->cfg->audit_log;

	if (seek_tail(fd, size, &whole) != 0 ||
	    verify_tail(&chain, fd, &truncated, &err) != 0 || truncated) {
		snprintf(problem, sizeof(problem), "%s: %s%s", path,
			 whole ? "" : "in its last 4 MiB, ",
			 truncated ? "last line truncated (no newline)"
				   : err.msg[0] ? err.msg
						: strerror(errno));
		fail(d, "audit log verifies", problem,
		     "gitgate audit verify --log %s names the first bad line; "
		     "find out who changed the file before rotating it away",
		     path);
		return;
	}
	pass("audit log verifies (%s %llu line%s%s)", whole ? "all" : "the last",
	     (unsigned long long)chain.records, chain.records == 1 ? "" : "s",
	     whole ? "" : " of its last 4 MiB");
}

static void check_audit(struct doctor *d)
{
	const char *path = d->cfg->audit_log;
	char problem[GG_ERR_MSG_MAX + 64];
	struct stat st;
	int fd;

	if (d->bad_audit) {
		skip("audit log writable", "audit log directory above");
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		pass("audit log writable (%s: not there yet, serve creates it)",
		     path);
		return;
	}
	if (fd < 0 || fstat(fd, &st) != 0 || access(path, W_OK) != 0) {
		snprintf(problem, sizeof(problem), "%s: %s", path,
			 strerror(errno));
		fail(d, "audit log writable", problem,
		     "make %s readable and writable by the user gitgate runs "
		     "as (chmod 600, chown)",
		     path);
		if (fd >= 0)
			close(fd);
		return;
	}
	pass("audit log writable (%s)", path);
	if (S_ISREG(st.st_mode))
		check_audit_chain(d, fd, st.st_size);
	close(fd);
}

/* ---- TLS ----------------------------------------------------------- */

static void check_tls(struct doctor *d)
{
	struct gg_err err = GG_ERR_INIT;
	struct tls_cert *c = NULL;
	char when[TIMEUTIL_RFC3339_SIZE], line[GG_ERR_MSG_MAX],
		problem[GG_ERR_MSG_MAX + 64];
	int64_t now = timeutil_now(), left;
	int ret;

	if (!d->cfg->tls_cert_file)
		return;
	if (d->bad_tls) {
		skip("TLS certificate", "tls files above");
		return;
	}
	ret = tls_cert_load(&c, d->cfg->tls_cert_file, d->cfg->tls_key_file,
			    now, &err);
	if (ret) {
		fail(d, "TLS certificate", err.msg,
		     ret == GG_EEXPIRED || ret == GG_ENOTYET
			     ? "install a current certificate at %s (gitgate "
			       "serve reloads it on change)"
			     : "put the PEM chain (leaf first) in %s and its "
			       "unencrypted PEM key in tls.key_file",
		     d->cfg->tls_cert_file);
		return;
	}
	left = tls_cert_not_after(c) - now;
	if (timeutil_format_rfc3339(when, sizeof(when), tls_cert_not_after(c),
				    &err) != 0)
		snprintf(when, sizeof(when), "?");
	if (left < GG_TLS_EXPIRY_WARN_S) {
		snprintf(problem, sizeof(problem),
			 "%s: expires on %s, in %lld day(s)",
			 d->cfg->tls_cert_file, when,
			 (long long)(left / (24 * 3600)));
		fail(d, "TLS certificate", problem,
		     "renew it before then and replace %s (gitgate serve "
		     "reloads it on change, no restart)",
		     d->cfg->tls_cert_file);
	} else {
		tls_cert_describe(c, line, sizeof(line));
		pass("TLS certificate valid, key matches (%s)", line);
	}
	tls_cert_free(c);
}

/* ---- upstream ------------------------------------------------------ */

static size_t discard(char *data, size_t size, size_t n, void *payload)
{
	(void)data;
	(void)payload;
	return size * n;
}

/* A handle trusting what serve trusts (SSL_CERT_FILE / SSL_CERT_DIR). */
static CURL *new_handle(const char *url, char *errbuf)
{
	CURL *c = curl_easy_init();
	const char *ca_file = getenv("SSL_CERT_FILE");
	const char *ca_dir = getenv("SSL_CERT_DIR");

	if (!c)
		return NULL;
	errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, DOCTOR_CONNECT_S);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, DOCTOR_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "git/2 (gitgate doctor)");
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (ca_file && *ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	if (ca_dir && *ca_dir)
		curl_easy_setopt(c, CURLOPT_CAPATH, ca_dir);
	return c;
}

/* Connect (and for https, shake hands) with no request: reachable and
 * trusted, whatever the upstream answers at its root. */
static void check_reachable(struct doctor *d)
{
	char errbuf[CURL_ERROR_SIZE], problem[GG_ERR_MSG_MAX + 64];
	const char *url = d->cfg->upstream_url;
	CURL *c = new_handle(url, errbuf);
	CURLcode rc;

	if (!c) {
		fail(d, "upstream reachable", "libcurl failed to start",
		     "check the libcurl installation");
		d->bad_upstream = true;
		return;
	}
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	rc = curl_easy_perform(c);
	curl_easy_cleanup(c);
	if (rc == CURLE_OK) {
		pass("upstream reachable (%s)", url);
		return;
	}
	d->bad_upstream = true;
	snprintf(problem, sizeof(problem), "%s: %s", url,
		 errbuf[0] ? errbuf : curl_easy_strerror(rc));
	fail(d, "upstream reachable", problem,
	     "check upstream.url, DNS and firewalls from this host; for an "
	     "upstream with a private CA set SSL_CERT_FILE for gitgate");
}

/* GET info/refs for upload-pack with the credential, as git ls-remote
 * through gitgate would: the HTTP status, or -1 (errbuf says why). */
static long ls_remote(struct doctor *d, const char *secret, char *errbuf)
{
	char url[GG_MAX_URL_LEN];
	long status = -1;
	CURL *c;

	snprintf(url, sizeof(url), "%s/%s.git/info/refs?service=git-upload-pack",
		 d->cfg->upstream_url, d->repo);
	c = new_handle(url, errbuf);
	if (!c)
		return -1;
	curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(c, CURLOPT_USERNAME, "x-access-token");
	curl_easy_setopt(c, CURLOPT_PASSWORD, secret);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

static void judge_ls_remote(struct doctor *d, long status, const char *errbuf)
{
	char problem[GG_ERR_MSG_MAX + 64];

	if (status == 200) {
		pass("upstream accepts the credential (ls-remote %s: HTTP 200)",
		     d->repo);
		return;
	}
	if (status == 401 || status == 403)
		snprintf(problem, sizeof(problem),
			 "the upstream refused it for %s (HTTP %ld)", d->repo,
			 status);
	else if (status == 404)
		snprintf(problem, sizeof(problem),
			 "%s not found (HTTP 404): no such repository, or the "
			 "credential cannot see it",
			 d->repo);
	else if (status > 0)
		snprintf(problem, sizeof(problem), "%s: HTTP %ld", d->repo,
			 status);
	else
		snprintf(problem, sizeof(problem), "%s: %s", d->repo, errbuf);
	fail(d, "upstream accepts the credential", problem,
	     d->cfg->github_app
		     ? "install the GitHub App on %s with contents access"
		     : "put a valid secret with read access to %s in "
		       "upstream.token_file (or GITGATE_UPSTREAM_TOKEN)",
	     d->repo);
}

static void check_credential(struct doctor *d)
{
	const struct cred_want want = { d->repo, CRED_READ, false };
	struct gg_err err = GG_ERR_INIT;
	struct cred_lease *lease = NULL;
	struct cred *cred = NULL;
	char errbuf[CURL_ERROR_SIZE], line[GG_ERR_MSG_MAX];
	int64_t retry = 0;
	long status;

	if (d->bad_cred) {
		skip("upstream credential", "its file above");
		return;
	}
	if (config_check_upstream_source(d->cfg, &err) != 0 ||
	    cred_new(&cred, d->cfg, &err) != 0) {
		fail(d, "upstream credential loads", err.msg,
		     "see README \"Config file\" for upstream credentials");
		return;
	}
	cred_describe(cred, line, sizeof(line));
	if (!d->repo) {
		pass("upstream credential loads (%s; --repo OWNER/NAME also "
		     "tries it upstream)",
		     line);
	} else if (d->bad_upstream) {
		skip("upstream accepts the credential", "upstream above");
	} else if (cred_get(cred, &want, &lease, &retry, &err) != 0) {
		fail(d, "upstream accepts the credential", err.msg,
		     "see README \"GitHub App credentials\" for the App's setup");
	} else {
		status = ls_remote(d, cred_lease_secret(lease), errbuf);
		judge_ls_remote(d, status, errbuf);
	}
	cred_lease_free(lease);
	cred_free(cred);
}

/* ---- command ------------------------------------------------------- */

static void run_checks(struct doctor *d)
{
	check_files(d);
	check_keys(d);
	check_revocations(d);
	check_policy(d);
	check_audit(d);
	check_tls(d);
	check_reachable(d);
	check_credential(d);
}

static bool repo_shape_ok(const char *repo)
{
	const char *slash = strchr(repo, '/');

	return slash && slash != repo && slash[1] && !strchr(slash + 1, '/') &&
	       strlen(repo) < 256 && !strpbrk(repo, "?#%@ \t\r\n");
}

static int doctor(const char *config_path, const char *repo)
{
	struct gg_err err = GG_ERR_INIT;
	struct doctor d;

	memset(&d, 0, sizeof(d));
	d.repo = repo;
	if (config_load(&d.cfg, config_path, &err) != 0) {
		fail(&d, "config parses", err.msg,
		     "correct what is named above (README \"Config file\")");
		return CLI_FAIL;
	}
	pass("config parses (%s)", config_path);
	gg_err_init(&err);
	if (relay_global_init(&err) != 0) {
		config_free(d.cfg);
		return cli_fail("doctor", err.msg);
	}
	run_checks(&d);
	config_free(d.cfg);
	curl_global_cleanup();
	if (d.failed)
		printf("%u problem%s found\n", d.failed,
		       d.failed == 1 ? "" : "s");
	return d.failed ? CLI_FAIL : CLI_OK;
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "repo", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *config_path = NULL, *repo = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (c == 'c')
			config_path = optarg;
		else if (c == 'r')
			repo = optarg;
		else if (c == 'h') {
			fputs(usage, stdout);
			return CLI_OK;
		} else
			return cli_bad_option(usage, "doctor", c, argc, argv);
	}
	if (optind < argc)
		return cli_usage_error(usage, "doctor: unexpected argument '%s'",
				       argv[optind]);
	if (!config_path)
		return cli_usage_error(usage, "doctor: --config is required");
	if (repo && !repo_shape_ok(repo))
		return cli_usage_error(usage, "doctor: --repo: want OWNER/NAME, "
					      "got '%s'",
				       repo);
	return doctor(config_path, repo);
}

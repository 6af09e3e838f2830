/*
 * test_cred.c - the upstream credential against a small "GitHub API"
 * (libmicrohttpd, in this process, on a free loopback port): the static
 * source, App tokens cached per (repository, permission set), the exact
 * request bodies, single-flight, expiry, and each failure with its
 * message. The JWTs themselves are checked in test_ghjwt.c.
 */
#include <check.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gitgate/upstream/cred.h"

/* How the stand-in answers, and what it saw. */
struct api {
	struct MHD_Daemon *daemon;
	unsigned short port;
	pthread_mutex_t lock;
	int inst_status;   /* 200 or the error to give */
	int token_status;  /* 201 or the error */
	const char *headers; /* extra "Name: value" on errors */
	int delay_ms;
	int lifetime_s;
	unsigned inst_calls, token_calls, bad_auth;
	char last_body[1024];
	unsigned serial;
};

static struct api api;

struct body {
	char buf[1024];
	size_t len;
};

static enum MHD_Result answer(struct MHD_Connection *conn, int status,
			      const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	MHD_add_response_header(r, "Date", date);
	if (status != 200 && status != 201 && api.headers) {
		char name[64];
		const char *colon = strchr(api.headers, ':');

		snprintf(name, sizeof(name), "%.*s",
			 (int)(colon - api.headers), api.headers);
		MHD_add_response_header(r, name, colon + 2);
	}
	ret = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static void iso(char *buf, size_t n, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static enum MHD_Result on_req(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *size, void **state)
{
	struct body *b = *state;
	const char *auth;
	char text[512], exp[32];
	int status;

	(void)cls;
	(void)version;
	if (!b) {
		*state = calloc(1, sizeof(struct body));
		return MHD_YES;
	}
	if (*size) {
		size_t n = *size < sizeof(b->buf) - 1 - b->len
				   ? *size
				   : sizeof(b->buf) - 1 - b->len;
		memcpy(b->buf + b->len, data, n);
		b->len += n;
		*size = 0;
		return MHD_YES;
	}
	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   "Authorization");
	pthread_mutex_lock(&api.lock);
	if (!auth || strncmp(auth, "Bearer ey", 9))
		api.bad_auth++;
	if (!strcmp(method, "GET") && strstr(url, "/installation")) {
		api.inst_calls++;
		status = api.inst_status;
		/* two owners, two installations */
		snprintf(text, sizeof(text), "{\"id\":%d}",
			 strstr(url, "/repos/beta/") ? 43 : 42);
		if (status != 200)
			snprintf(text, sizeof(text), "{\"message\":\"Not Found\"}");
	} else {
		api.token_calls++;
		status = api.token_status;
		snprintf(api.last_body, sizeof(api.last_body), "%s", b->buf);
		iso(exp, sizeof(exp), time(NULL) + api.lifetime_s);
		api.serial++;
		/* lengths vary: no fixed-size token */
		snprintf(text, sizeof(text),
			 "{\"token\":\"ghs_%u%s\",\"expires_at\":\"%s\"}",
			 api.serial,
			 api.serial % 2 ? "abcdefghijklmnopqrstuvwxyz0123456789"
				      : "x",
			 exp);
		if (status != 201)
			snprintf(text, sizeof(text),
				 "{\"message\":\"There is at least one "
				 "repository that does not exist\"}");
	}
	pthread_mutex_unlock(&api.lock);
	if (api.delay_ms)
		usleep((useconds_t)api.delay_ms * 1000);
	return answer(conn, status, text);
}

static void on_done(void *cls, struct MHD_Connection *c, void **state,
		    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*state);
	*state = NULL;
}

static char tmpdir[] = "/tmp/gg-cred-XXXXXX";
static char keypath[4200];
static char apiurl[64];

static void setup(void)
{
	const union MHD_DaemonInfo *di;
	const char *root = getenv("GG_SOURCE_ROOT");
	char cmd[8600];

	memset(&api, 0, sizeof(api));
	pthread_mutex_init(&api.lock, NULL);
	api.inst_status = 200;
	api.token_status = 201;
	api.lifetime_s = 3600;
	api.daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
		0, NULL, NULL, on_req, NULL, MHD_OPTION_NOTIFY_COMPLETED,
		on_done, NULL, MHD_OPTION_END);
	ck_assert_ptr_nonnull(api.daemon);
	di = MHD_get_daemon_info(api.daemon, MHD_DAEMON_INFO_BIND_PORT);
	api.port = di->port;
	snprintf(apiurl, sizeof(apiurl), "http://127.0.0.1:%u", api.port);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(keypath, sizeof(keypath), "%s/app.pem", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "cp '%s/fixtures/upstream/app-test-pkcs8.pem' '%s' && "
		 "chmod 600 '%s'",
		 root ? root : ".", keypath, keypath);
	ck_assert_int_eq(system(cmd), 0);
	unsetenv("GITGATE_UPSTREAM_TOKEN");
}

static void teardown(void)
{
	char cmd[256];

	MHD_stop_daemon(api.daemon);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
}

static struct cred *app_cred(const char *url)
{
	struct gg_err err = GG_ERR_INIT;
	struct config cfg;
	struct cred *c = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.github_app = true;
	cfg.app_id = "123456";
	cfg.app_key_file = keypath;
	cfg.app_api_url = (char *)url;
	ck_assert_msg(cred_new(&c, &cfg, &err) == GG_OK, "%s", err.msg);
	return c;
}

static int get(struct cred *c, const char *repo, enum cred_access a,
	       bool wf, struct cred_lease **out, int64_t *retry,
	       struct gg_err *err)
{
	struct cred_want w = { repo, a, wf };

	return cred_get(c, &w, out, retry, err);
}

START_TEST(test_static)
{
	struct gg_err err = GG_ERR_INIT;
	struct cred_lease *l = NULL;
	struct cred *c = NULL;
	char line[128];

	ck_assert_int_eq(cred_new_static(&c, "s3cret", &err), GG_OK);
	ck_assert_int_eq(get(c, "a/b", CRED_WRITE, true, &l, NULL, &err),
			 GG_OK);
	ck_assert_str_eq(cred_lease_secret(l), "s3cret");
	ck_assert(!cred_lease_fresh(l));
	ck_assert_str_eq(cred_static_secret(c), "s3cret");
	cred_describe(c, line, sizeof(line));
	ck_assert_str_eq(line, "static secret");
	cred_lease_free(l);
	cred_lease_free(NULL);
	cred_free(c);
	ck_assert_uint_eq(api.inst_calls + api.token_calls, 0);
}
END_TEST

START_TEST(test_cached_per_key)
{
	struct gg_err err = GG_ERR_INIT;
	struct cred *c = app_cred(apiurl);
	struct cred_lease *l[5] = { 0 };
	struct cred_stats st;
	size_t i;

	ck_assert_ptr_null(cred_static_secret(c));
	ck_assert_int_eq(get(c, "acme/widgets", CRED_READ, false, &l[0], NULL,
			     &err), GG_OK);
	ck_assert_str_eq(api.last_body,
			 "{\"repositories\":[\"widgets\"],\"permissions\":"
			 "{\"contents\":\"read\",\"metadata\":\"read\"}}");
	ck_assert(cred_lease_fresh(l[0]));
	ck_assert_int_eq(get(c, "acme/widgets", CRED_READ, true, &l[1], NULL,
			     &err), GG_OK); /* workflows: writes only */
	ck_assert_str_eq(cred_lease_secret(l[0]), cred_lease_secret(l[1]));
	ck_assert_int_eq(get(c, "acme/widgets", CRED_WRITE, false, &l[2],
			     NULL, &err), GG_OK);
	ck_assert_str_eq(api.last_body,
			 "{\"repositories\":[\"widgets\"],\"permissions\":"
			 "{\"contents\":\"write\",\"metadata\":\"read\"}}");
	ck_assert_int_eq(get(c, "acme/widgets", CRED_WRITE, true, &l[3],
			     NULL, &err), GG_OK);
	ck_assert_str_eq(api.last_body,
			 "{\"repositories\":[\"widgets\"],\"permissions\":"
			 "{\"contents\":\"write\",\"metadata\":\"read\","
			 "\"workflows\":\"write\"}}");
	ck_assert_str_ne(cred_lease_secret(l[2]), cred_lease_secret(l[3]));
	ck_assert_int_eq(get(c, "beta/tools", CRED_READ, false, &l[4], NULL,
			     &err), GG_OK);
	ck_assert_uint_eq(api.inst_calls, 2); /* one per repository */
	ck_assert_uint_eq(api.token_calls, 4); /* one per key */
	ck_assert_uint_eq(api.bad_auth, 0);
	cred_get_stats(c, &st);
	ck_assert_uint_eq(st.cache_hits, 1);
	ck_assert_uint_eq(st.token_calls, 4);
	for (i = 0; i < 5; i++)
		cred_lease_free(l[i]);
	cred_free(c);
}
END_TEST

START_TEST(test_short_lifetime_remints)
{
	struct gg_err err = GG_ERR_INIT;
	struct cred *c = app_cred(apiurl);
	struct cred_lease *a = NULL, *b = NULL, *d = NULL;

	api.lifetime_s = 4; /* reused for half of it */
	ck_assert_int_eq(get(c, "acme/w", CRED_READ, false, &a, NULL, &err),
			 GG_OK);
	ck_assert_int_eq(get(c, "acme/w", CRED_READ, false, &b, NULL, &err),
			 GG_OK);
	ck_assert_uint_eq(api.token_calls, 1);
	sleep(3);
	ck_assert_int_eq(get(c, "acme/w", CRED_READ, false, &d, NULL, &err),
			 GG_OK);
	ck_assert_uint_eq(api.token_calls, 2);
	ck_assert_str_ne(cred_lease_secret(a), cred_lease_secret(d));
	/* the old lease stays valid until freed */
	ck_assert_str_eq(cred_lease_secret(a), cred_lease_secret(b));
	cred_lease_free(a);
	cred_lease_free(b);
	cred_lease_free(d);
	cred_free(c);
}
END_TEST

struct racer {
	struct cred *c;
	char secret[256];
	int ret;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct gg_err err = GG_ERR_INIT;
	struct cred_lease *l = NULL;

	r->ret = get(r->c, "acme/w", CRED_WRITE, false, &l, NULL, &err);
	if (l)
		snprintf(r->secret, sizeof(r->secret), "%s",
			 cred_lease_secret(l));
	cred_lease_free(l);
	return NULL;
}

static void run_race(struct cred *c, struct racer *r, size_t n)
{
	pthread_t t[16];
	size_t i;

	for (i = 0; i < n; i++) {
		r[i].c = c;
		ck_assert_int_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

START_TEST(test_single_flight)
{
	struct cred *c = app_cred(apiurl);
	struct racer r[16];
	struct cred_stats st;
	size_t i;

	memset(r, 0, sizeof(r));
	api.delay_ms = 300;
	run_race(c, r, 16);
	for (i = 0; i < 16; i++) {
		ck_assert_int_eq(r[i].ret, GG_OK);
		ck_assert_str_eq(r[i].secret, r[0].secret);
	}
	ck_assert_uint_eq(api.token_calls, 1);
	ck_assert_uint_eq(api.inst_calls, 1);
	cred_get_stats(c, &st);
	ck_assert_uint_eq(st.waits + st.cache_hits, 15);
	cred_free(c);
}
END_TEST

START_TEST(test_failed_flight_shared)
{
	struct cred *c = app_cred(apiurl);
	struct racer r[8];
	size_t i;

	memset(r, 0, sizeof(r));
	api.delay_ms = 300;
	api.token_status = 422;
	run_race(c, r, 8);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(r[i].ret, GG_EUPSTREAM);
	ck_assert_uint_le(api.token_calls, 2);
	cred_free(c);
}
END_TEST

START_TEST(test_not_installed_cached)
{
	struct gg_err err = GG_ERR_INIT;
	struct cred *c = app_cred(apiurl);
	struct cred_lease *l = NULL;

	api.inst_status = 404;
	ck_assert_int_eq(get(c, "acme/w", CRED_READ, false, &l, NULL, &err),
			 GG_EUPSTREAM);
	ck_assert_str_eq(err.msg, "GitHub App 123456 is not installed for "
				  "acme: install it on that account or "
				  "organisation");
	gg_err_init(&err);
	ck_assert_int_eq(get(c, "acme/w", CRED_WRITE, false, &l, NULL, &err),
			 GG_EUPSTREAM);
	ck_assert_ptr_null(l);
	ck_assert_uint_eq(api.inst_calls, 1); /* negative cache */
	ck_assert_uint_eq(api.token_calls, 0);
	cred_free(c);
}
END_TEST

START_TEST(test_no_access)
{
	struct gg_err err = GG_ERR_INIT;
	struct cred *c = app_cred(apiurl);
	struct cred_lease *l = NULL;

	api.token_status = 422;
	ck_assert_int_eq(get(c, "acme/w", CRED_WRITE, true, &l, NULL, &err),
			 GG_EUPSTREAM);
	ck_assert_str_eq(err.msg,
			 "GitHub App cannot access acme/w with contents:write, "
			 "workflows:write: There is at least one repository "
			 "that does not exist; grant the installation this "
			 "repository and permission");
	cred_free(c);
}
END_TEST

START_TEST(test_jwt_refused)
{
	struct gg_err err = GG_ERR_INIT;
	struct cred *c = app_cred(apiurl);
	struct cred_lease *l = NULL;

	api.inst_status = 401;
	ck_assert_int_eq(get(c, "acme/w", CRED_READ, false, &l, NULL, &err),
			 GG_EUPSTREAM);
	ck_assert_str_eq(err.msg, "GitHub refused the App JWT (HTTP 401): "
				  "check app_id 123456, private_key_file and "
				  "the system clock");
	ck_assert_uint_eq(api.inst_calls, 2); /* retried once (Date) */
	cred_free(c);
}
END_TEST

START_TEST(test_rate_limited)
{
	struct gg_err err = GG_ERR_INIT;
	struct cred *c = app_cred(apiurl);
	struct cred_lease *l = NULL;
	int64_t retry = 0;

	api.token_status = 429;
	api.headers = "Retry-After: 7";
	ck_assert_int_eq(get(c, "acme/w", CRED_READ, false, &l, &retry, &err),
			 GG_ERATELIMIT);
	ck_assert_int_eq(retry, 7);
	ck_assert_str_eq(err.msg, "GitHub API rate limit reached: retry in 7 s");
	api.token_status = 403;
	api.headers = "X-RateLimit-Remaining: 0";
	gg_err_init(&err);
	ck_assert_int_eq(get(c, "acme/w", CRED_READ, false, &l, &retry, &err),
			 GG_ERATELIMIT);
	ck_assert_int_ge(retry, 1);
	cred_free(c);
}
END_TEST

START_TEST(test_unreachable)
{
	struct gg_err err = GG_ERR_INIT;
	struct cred *c = app_cred("http://127.0.0.1:1");
	struct cred_lease *l = NULL;

	ck_assert_int_eq(get(c, "acme/w", CRED_READ, false, &l, NULL, &err),
			 GG_EUPSTREAM);
	ck_assert_msg(!strncmp(err.msg, "GitHub API unreachable: GET "
					"http://127.0.0.1:1/repos/acme/w/"
					"installation: ",
			       60),
		      "%s", err.msg);
	cred_free(c);
}
END_TEST

START_TEST(test_sources)
{
	struct gg_err err = GG_ERR_INIT;
	struct config cfg;
	struct cred *c = NULL;

	memset(&cfg, 0, sizeof(cfg));
	ck_assert_int_eq(cred_new(&c, &cfg, &err), GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "no credential"));
	setenv("GITGATE_UPSTREAM_TOKEN", "env-secret", 1);
	gg_err_init(&err);
	ck_assert_int_eq(cred_new(&c, &cfg, &err), GG_OK);
	ck_assert_str_eq(cred_static_secret(c), "env-secret");
	cred_free(c);
	cfg.github_app = true;
	cfg.app_id = "1";
	cfg.app_key_file = keypath;
	cfg.app_api_url = apiurl;
	gg_err_init(&err);
	ck_assert_int_eq(cred_new(&c, &cfg, &err), GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "both set"));
	unsetenv("GITGATE_UPSTREAM_TOKEN");
	chmod(keypath, 0644);
	gg_err_init(&err);
	ck_assert_int_eq(cred_new(&c, &cfg, &err), GG_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "are too open"));
	ck_assert_ptr_nonnull(strstr(err.msg,
				     "upstream.github_app.private_key_file"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cred");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_static);
	tcase_add_test(tc, test_cached_per_key);
	tcase_add_test(tc, test_short_lifetime_remints);
	tcase_add_test(tc, test_single_flight);
	tcase_add_test(tc, test_failed_flight_shared);
	tcase_add_test(tc, test_not_installed_cached);
	tcase_add_test(tc, test_no_access);
	tcase_add_test(tc, test_jwt_refused);
	tcase_add_test(tc, test_rate_limited);
	tcase_add_test(tc, test_unreachable);
	tcase_add_test(tc, test_sources);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

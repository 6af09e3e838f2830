/* test_route.c - request classification and token extraction. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/limits.h"
#include "gitgate/http/route.h"

#define MSG_REPO "not a repository path: expected /OWNER/NAME.git/..."
#define MSG_METHOD "method not allowed"
#define MSG_NOTFOUND "not found"
#define MSG_NOSVC                                                            \
	"only smart HTTP is served: the service parameter is required"
#define MSG_BADSVC "unknown service"
#define UP "git-upload-pack"
#define RP "git-receive-pack"

static const struct {
	const char *method, *path, *service;
	int ret;
	enum route_kind kind;
	enum route_service svc;
	const char *repo; /* expected repo on success */
	const char *msg;  /* expected message on failure */
} rows[] = {
	/* health check: no repository, no service */
	{ "GET", "/healthz", NULL, 0, ROUTE_HEALTHZ, ROUTE_SVC_NONE, "", NULL },
	{ "HEAD", "/healthz", NULL, 0, ROUTE_HEALTHZ, ROUTE_SVC_NONE, "",
	  NULL },
	{ "POST", "/healthz", NULL, GG_EDENIED, ROUTE_HEALTHZ, 0, NULL,
	  MSG_METHOD },
	{ "GET", "/healthz/", NULL, GG_ENOTFOUND, 0, 0, NULL, MSG_NOTFOUND },
	/* ref advertisement */
	{ "GET", "/o/n.git/info/refs", UP, 0, ROUTE_INFO_REFS, ROUTE_SVC_UPLOAD,
	  "o/n", NULL },
	{ "GET", "/o/n.git/info/refs", RP, 0, ROUTE_INFO_REFS,
	  ROUTE_SVC_RECEIVE, "o/n", NULL },
	{ "GET", "/o/n/info/refs", UP, 0, ROUTE_INFO_REFS, ROUTE_SVC_UPLOAD,
	  "o/n", NULL },
	{ "GET", "/o/n.git/info/refs", NULL, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_NOSVC },
	{ "GET", "/o/n.git/info/refs", "git-bogus", GG_ENOTFOUND, 0, 0, NULL,
	  MSG_BADSVC },
	{ "GET", "/o/n.git/info/refs", "", GG_ENOTFOUND, 0, 0, NULL,
	  MSG_BADSVC },
	{ "GET", "/o/n.git/info/refs", "GIT-UPLOAD-PACK", GG_ENOTFOUND, 0, 0,
	  NULL, MSG_BADSVC },
	{ "GET", "/o/n.git/info/refs", "git-upload-archive", GG_ENOTFOUND, 0,
	  0, NULL, MSG_BADSVC },
	/* service RPCs */
	{ "POST", "/o/n.git/git-upload-pack", NULL, 0, ROUTE_UPLOAD_PACK,
	  ROUTE_SVC_UPLOAD, "o/n", NULL },
	{ "POST", "/o/n/git-receive-pack", NULL, 0, ROUTE_RECEIVE_PACK,
	  ROUTE_SVC_RECEIVE, "o/n", NULL },
	/* the ?service= of a POST is not what decides the service */
	{ "POST", "/o/n.git/git-upload-pack", RP, 0, ROUTE_UPLOAD_PACK,
	  ROUTE_SVC_UPLOAD, "o/n", NULL },
	{ "POST", "/Own-er_1/Re.po-2_x.git/git-receive-pack", NULL, 0,
	  ROUTE_RECEIVE_PACK, ROUTE_SVC_RECEIVE, "Own-er_1/Re.po-2_x", NULL },
	/* wrong methods */
	{ "POST", "/o/n.git/info/refs", UP, GG_EDENIED, ROUTE_INFO_REFS, 0,
	  NULL, MSG_METHOD },
	{ "HEAD", "/o/n.git/info/refs", UP, GG_EDENIED, ROUTE_INFO_REFS, 0,
	  NULL, MSG_METHOD },
	{ "GET", "/o/n.git/git-upload-pack", NULL, GG_EDENIED,
	  ROUTE_UPLOAD_PACK, 0, NULL, MSG_METHOD },
	{ "GET", "/o/n.git/git-receive-pack", NULL, GG_EDENIED,
	  ROUTE_RECEIVE_PACK, 0, NULL, MSG_METHOD },
	{ "PUT", "/o/n.git/git-receive-pack", NULL, GG_EDENIED,
	  ROUTE_RECEIVE_PACK, 0, NULL, MSG_METHOD },
	{ "post", "/o/n.git/git-receive-pack", NULL, GG_EDENIED,
	  ROUTE_RECEIVE_PACK, 0, NULL, MSG_METHOD },
	/* a bad path is 404 whatever the method */
	{ "PUT", "/../x/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	/* traversal and junk */
	{ "GET", "/../x/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "/o/../info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "/o/./info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "/./n/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "/o/..git/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_REPO },
	{ "GET", "/o/...git/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_REPO },
	{ "GET", "/o/n/x/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "POST", "/a/b/c/git-upload-pack", NULL, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_REPO },
	{ "GET", "/o//info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "//n/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "///info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "/o/my repo/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_REPO },
	{ "GET", "/o/%2e%2e/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_REPO },
	{ "GET", "/o/n%2fx/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_REPO },
	{ "GET", "/o/n\\x/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "/o/n\xc3\xa9/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_REPO },
	{ "GET", "/o/n\n/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "/o:x/n/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "o/n/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "/n/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	/* ".git" is stripped once, and never leaves an empty or dot name */
	{ "GET", "/o/n.git.git/info/refs", UP, 0, ROUTE_INFO_REFS,
	  ROUTE_SVC_UPLOAD, "o/n.git", NULL },
	{ "GET", "/o/.git/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_REPO },
	{ "GET", "/o/.git.git/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_REPO },
	{ "GET", "/o/n.GIT/info/refs", UP, 0, ROUTE_INFO_REFS,
	  ROUTE_SVC_UPLOAD, "o/n.GIT", NULL },
	/* dumb HTTP and everything else */
	{ "GET", "/o/n.git/HEAD", NULL, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_NOTFOUND },
	{ "GET", "/o/n.git/objects/info/packs", NULL, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_NOTFOUND },
	{ "GET", "/o/n.git/info/refs/", UP, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_NOTFOUND },
	{ "GET", "/o/n.git", NULL, GG_ENOTFOUND, 0, 0, NULL, MSG_NOTFOUND },
	{ "GET", "/", NULL, GG_ENOTFOUND, 0, 0, NULL, MSG_NOTFOUND },
	{ "GET", "", NULL, GG_ENOTFOUND, 0, 0, NULL, MSG_NOTFOUND },
	{ "GET", "/info/refs", UP, GG_ENOTFOUND, 0, 0, NULL, MSG_NOTFOUND },
	{ "POST", "/git-upload-pack", NULL, GG_ENOTFOUND, 0, 0, NULL,
	  MSG_NOTFOUND },
	/* the server hands over the path without the query */
	{ "GET", "/o/n.git/info/refs?service=git-upload-pack", NULL,
	  GG_ENOTFOUND, 0, 0, NULL, MSG_NOTFOUND },
};

START_TEST(test_route_table)
{
	struct gg_err err = GG_ERR_INIT;
	struct route r;
	int ret;

	memset(&r, 0x5a, sizeof(r));
	ret = route_parse(&r, rows[_i].method, rows[_i].path, rows[_i].service,
			  &err);
	ck_assert_msg(ret == rows[_i].ret, "%s %s: got %d (%s), want %d",
		      rows[_i].method, rows[_i].path, ret, err.msg,
		      rows[_i].ret);
	ck_assert_int_eq(err.code, ret);
	if (ret == 0) {
		ck_assert_str_eq(err.msg, "");
		ck_assert_int_eq(r.kind, rows[_i].kind);
		ck_assert_int_eq(r.service, rows[_i].svc);
		ck_assert_str_eq(r.repo, rows[_i].repo);
	} else {
		ck_assert_str_eq(err.msg, rows[_i].msg);
	}
	if (ret == GG_EDENIED) /* which path: for the 405's Allow header */
		ck_assert_int_eq(r.kind, rows[_i].kind);
}
END_TEST

START_TEST(allowed_methods)
{
	ck_assert_str_eq(route_allowed_methods(ROUTE_HEALTHZ), "GET, HEAD");
	ck_assert_str_eq(route_allowed_methods(ROUTE_INFO_REFS), "GET");
	ck_assert_str_eq(route_allowed_methods(ROUTE_UPLOAD_PACK), "POST");
	ck_assert_str_eq(route_allowed_methods(ROUTE_RECEIVE_PACK), "POST");
}
END_TEST

/* "/" owner "/" name "/info/refs" with names of the given lengths. */
static int route_lengths(struct route *r, size_t olen, size_t nlen,
			 const char *suffix, struct gg_err *err)
{
	char path[1024];
	size_t len = 0;

	ck_assert_uint_lt(olen + nlen + strlen(suffix) + 16, sizeof(path));
	path[len++] = '/';
	memset(path + len, 'o', olen);
	len += olen;
	path[len++] = '/';
	memset(path + len, 'n', nlen);
	len += nlen;
	memcpy(path + len, suffix, strlen(suffix) + 1);
	return route_parse(r, "GET", path, UP, err);
}

START_TEST(test_name_lengths)
{
	struct gg_err err = GG_ERR_INIT;
	struct route r;

	ck_assert_int_eq(route_lengths(&r, ROUTE_NAME_MAX, ROUTE_NAME_MAX,
				       "/info/refs", &err),
			 GG_OK);
	ck_assert_uint_eq(strlen(r.repo), 2 * ROUTE_NAME_MAX + 1);
	ck_assert_int_eq(r.repo[ROUTE_NAME_MAX], '/');
	/* ".git" does not count towards the name */
	ck_assert_int_eq(route_lengths(&r, ROUTE_NAME_MAX, ROUTE_NAME_MAX,
				       ".git/info/refs", &err),
			 GG_OK);
	ck_assert_uint_eq(strlen(r.repo), 2 * ROUTE_NAME_MAX + 1);

	ck_assert_int_eq(route_lengths(&r, ROUTE_NAME_MAX + 1, 1,
				       "/info/refs", &err),
			 GG_ENOTFOUND);
	ck_assert_str_eq(err.msg, MSG_REPO);
	gg_err_init(&err);
	ck_assert_int_eq(route_lengths(&r, 1, ROUTE_NAME_MAX + 1,
				       "/info/refs", &err),
			 GG_ENOTFOUND);
	gg_err_init(&err);
	ck_assert_int_eq(route_lengths(&r, 1, ROUTE_NAME_MAX + 1,
				       ".git/info/refs", &err),
			 GG_ENOTFOUND);
	gg_err_init(&err);
	ck_assert_int_eq(route_lengths(&r, 300, 300, "/info/refs", &err),
			 GG_ENOTFOUND);
}
END_TEST

START_TEST(test_service_name)
{
	ck_assert_str_eq(route_service_name(ROUTE_SVC_UPLOAD),
			 "git-upload-pack");
	ck_assert_str_eq(route_service_name(ROUTE_SVC_RECEIVE),
			 "git-receive-pack");
	ck_assert_ptr_null(route_service_name(ROUTE_SVC_NONE));
}
END_TEST

START_TEST(test_null_err_is_fine)
{
	struct route r;

	ck_assert_int_eq(route_parse(&r, "GET", "/x", NULL, NULL),
			 GG_ENOTFOUND);
	ck_assert_int_eq(route_parse(&r, "GET", "/o/n/info/refs", UP, NULL),
			 GG_OK);
}
END_TEST

/* --- Authorization header --- */

#define MSG_SCHEME "unsupported Authorization scheme (use Basic or Bearer)"

static const struct {
	const char *header;
	int ret;
	const char *token; /* on success */
	const char *msg;   /* on failure */
} auth[] = {
	/* base64("user:tok") */
	{ "Basic dXNlcjp0b2s=", 0, "tok", NULL },
	/* base64(":tok"): empty user name */
	{ "Basic OnRvaw==", 0, "tok", NULL },
	/* base64("u:a:b:c"): the token is all after the FIRST colon */
	{ "Basic dTphOmI6Yw==", 0, "a:b:c", NULL },
	{ "Bearer v4.public.abc", 0, "v4.public.abc", NULL },
	{ "basic dXNlcjp0b2s=", 0, "tok", NULL },
	{ "BASIC dXNlcjp0b2s=", 0, "tok", NULL },
	{ "bearer v4.public.abc", 0, "v4.public.abc", NULL },
	{ "BeArEr v4.public.abc", 0, "v4.public.abc", NULL },
	{ "  Basic    dXNlcjp0b2s=  ", 0, "tok", NULL },
	{ "Basic\tdXNlcjp0b2s=\t", 0, "tok", NULL },
	{ "Bearer    v4.public.abc   ", 0, "v4.public.abc", NULL },
	{ NULL, GG_EINVAL, NULL, "no credentials" },
	{ "", GG_EINVAL, NULL, MSG_SCHEME },
	{ "dXNlcjp0b2s=", GG_EINVAL, NULL, MSG_SCHEME },
	{ "Basic", GG_EINVAL, NULL, MSG_SCHEME },
	{ "Bearer", GG_EINVAL, NULL, MSG_SCHEME },
	{ "Basicx dXNlcjp0b2s=", GG_EINVAL, NULL, MSG_SCHEME },
	{ "BasicdXNlcjp0b2s=", GG_EINVAL, NULL, MSG_SCHEME },
	{ "Digest username=\"u\", realm=\"r\", response=\"x\"", GG_EINVAL,
	  NULL, MSG_SCHEME },
	{ "Negotiate YIIB", GG_EINVAL, NULL, MSG_SCHEME },
	{ "Token abc", GG_EINVAL, NULL, MSG_SCHEME },
	{ "Basic ", GG_EINVAL, NULL, "empty Basic credentials" },
	{ "Basic    ", GG_EINVAL, NULL, "empty Basic credentials" },
	{ "Bearer  ", GG_EINVAL, NULL, "empty credentials" },
	{ "Basic !!!!", GG_EINVAL, NULL, "Basic credentials are not base64" },
	{ "Basic dXNlcjp0b2s", GG_EINVAL, NULL,
	  "Basic credentials are not base64" },
	{ "Basic dXNlcjp0b2s=x", GG_EINVAL, NULL,
	  "Basic credentials are not base64" },
	{ "Basic dXNl cjp0b2s=", GG_EINVAL, NULL,
	  "Basic credentials are not base64" },
	{ "Basic dXNlcjp0b2s=dXNlcjp0b2s=", GG_EINVAL, NULL,
	  "Basic credentials are not base64" },
	/* url-safe alphabet is not Basic's */
	{ "Basic dTp-_w==", GG_EINVAL, NULL,
	  "Basic credentials are not base64" },
	/* base64("usertok") */
	{ "Basic dXNlcnRvaw==", GG_EINVAL, NULL,
	  "Basic credentials have no password" },
	/* base64("u:to\0k") */
	{ "Basic dTp0bwBr", GG_EINVAL, NULL, "NUL byte in credentials" },
	/* base64("u:") */
	{ "Basic dTo=", GG_EINVAL, NULL, "empty credentials" },
};

START_TEST(test_auth_table)
{
	struct gg_err err = GG_ERR_INIT;
	char buf[64];
	size_t len = 99;
	int ret;

	ret = route_auth_token(buf, sizeof(buf), &len, auth[_i].header, &err);
	ck_assert_msg(ret == auth[_i].ret, "\"%s\": got %d (%s), want %d",
		      auth[_i].header ? auth[_i].header : "(null)", ret,
		      err.msg, auth[_i].ret);
	ck_assert_int_eq(err.code, ret);
	if (ret == 0) {
		ck_assert_str_eq(buf, auth[_i].token);
		ck_assert_uint_eq(len, strlen(auth[_i].token));
	} else {
		ck_assert_str_eq(err.msg, auth[_i].msg);
		ck_assert_uint_eq(len, 0);
	}
}
END_TEST

START_TEST(test_auth_header_length)
{
	struct gg_err err = GG_ERR_INIT;
	char *hdr = malloc(GG_MAX_HEADER_LEN + 2);
	char *buf = malloc(GG_MAX_HEADER_LEN);
	size_t len;

	ck_assert_ptr_nonnull(hdr);
	ck_assert_ptr_nonnull(buf);
	/* exactly GG_MAX_HEADER_LEN bytes is fine */
	memcpy(hdr, "Bearer ", 7);
	memset(hdr + 7, 'a', GG_MAX_HEADER_LEN - 7);
	hdr[GG_MAX_HEADER_LEN] = '\0';
	ck_assert_int_eq(route_auth_token(buf, GG_MAX_HEADER_LEN, &len, hdr,
					  &err),
			 GG_OK);
	ck_assert_uint_eq(len, GG_MAX_HEADER_LEN - 7);

	/* one more byte is refused before any parsing */
	hdr[GG_MAX_HEADER_LEN] = 'a';
	hdr[GG_MAX_HEADER_LEN + 1] = '\0';
	ck_assert_int_eq(route_auth_token(buf, GG_MAX_HEADER_LEN, &len, hdr,
					  &err),
			 GG_ELIMIT);
	ck_assert_str_eq(err.msg, "Authorization header too long");

	/* also for a scheme we would otherwise refuse as malformed */
	memcpy(hdr, "Basic  ", 7);
	gg_err_init(&err);
	ck_assert_int_eq(route_auth_token(buf, GG_MAX_HEADER_LEN, &len, hdr,
					  &err),
			 GG_ELIMIT);
	free(hdr);
	free(buf);
}
END_TEST

START_TEST(test_auth_long_basic)
{
	struct gg_err err = GG_ERR_INIT;
	/* base64 of "u:" + 6000 'A's, the largest Basic that fits */
	char *hdr = malloc(GG_MAX_HEADER_LEN + 1);
	char *buf = malloc(GG_MAX_HEADER_LEN);
	size_t len, i, n = 0;

	ck_assert_ptr_nonnull(hdr);
	ck_assert_ptr_nonnull(buf);
	n += (size_t)snprintf(hdr, GG_MAX_HEADER_LEN, "Basic dTpB");
	/* "QUFB" decodes to "AAA"; "dTpB" is "u:A" */
	for (i = 0; i < 2000; i++) {
		memcpy(hdr + n, "QUFB", 4);
		n += 4;
	}
	hdr[n] = '\0';
	ck_assert_uint_le(n, GG_MAX_HEADER_LEN);
	ck_assert_int_eq(route_auth_token(buf, GG_MAX_HEADER_LEN, &len, hdr,
					  &err),
			 GG_OK);
	ck_assert_uint_eq(len, 6001);
	ck_assert_int_eq(buf[0], 'A');
	ck_assert_int_eq(buf[6000], 'A');
	ck_assert_int_eq(buf[6001], '\0');
	free(hdr);
	free(buf);
}
END_TEST

START_TEST(test_auth_token_too_long_for_buffer)
{
	struct gg_err err = GG_ERR_INIT;
	char buf[8];
	size_t len;

	/* 7 bytes + NUL fit exactly */
	ck_assert_int_eq(route_auth_token(buf, sizeof(buf), &len,
					  "Bearer 1234567", &err),
			 GG_OK);
	ck_assert_str_eq(buf, "1234567");
	ck_assert_int_eq(route_auth_token(buf, sizeof(buf), &len,
					  "Bearer 12345678", &err),
			 GG_ELIMIT);
	ck_assert_str_eq(err.msg, "token too long");
	ck_assert_uint_eq(len, 0);

	/* base64("u:12345678") */
	gg_err_init(&err);
	ck_assert_int_eq(route_auth_token(buf, sizeof(buf), &len,
					  "Basic dToxMjM0NTY3OA==", &err),
			 GG_ELIMIT);
	ck_assert_str_eq(err.msg, "token too long");
}
END_TEST

START_TEST(test_header_control_characters)
{
	ck_assert(route_header_ok("User-Agent", "git/2.39.5"));
	ck_assert(route_header_ok("X", "tab\tinside, and UTF-8 \xc3\xa9"));
	ck_assert(route_header_ok("X", ""));
	ck_assert(route_header_ok("X", NULL));
	ck_assert(route_header_ok(NULL, "v"));
	ck_assert(!route_header_ok("User-Agent", "git\rContent-Length: 40"));
	ck_assert(!route_header_ok("User-Agent", "git\nX: y"));
	ck_assert(!route_header_ok("Git-Protocol", "version=2\x01"));
	ck_assert(!route_header_ok("X", "del\x7f"));
	ck_assert(!route_header_ok("X", "\x1b[31m"));
	ck_assert(!route_header_ok("X\rY", "v"));
}
END_TEST

static Suite *route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("parse");
	TCase *ta = tcase_create("auth");

	tcase_add_loop_test(tc, test_route_table, 0,
			    (int)(sizeof(rows) / sizeof(rows[0])));
	tcase_add_test(tc, test_name_lengths);
	tcase_add_test(tc, test_service_name);
	tcase_add_test(tc, allowed_methods);
	tcase_add_test(tc, test_null_err_is_fine);
	suite_add_tcase(s, tc);

	tcase_add_loop_test(ta, test_auth_table, 0,
			    (int)(sizeof(auth) / sizeof(auth[0])));
	tcase_add_test(ta, test_auth_header_length);
	tcase_add_test(ta, test_auth_long_basic);
	tcase_add_test(ta, test_auth_token_too_long_for_buffer);
	tcase_add_test(ta, test_header_control_characters);
	suite_add_tcase(s, ta);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(route_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

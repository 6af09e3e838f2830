/* test_receivepack.c - receive-pack request parsing and re-serialization. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/proto/receivepack.h"

#define O1 "1111111111111111111111111111111111111111"
#define O2 "2222222222222222222222222222222222222222"
#define O3 "3333333333333333333333333333333333333333"
#define ZZ "0000000000000000000000000000000000000000"
#define CAPS                                                                   \
	" report-status-v2 side-band-64k quiet object-format=sha1 "            \
	"agent=git/2.39.5"

/* ---- building request bodies ---- */

static void line(struct pkt_buf *b, const char *s)
{
	ck_assert_int_eq(pkt_write(b, s, strlen(s), NULL), 0);
}

/* First command: cmd NUL caps. */
static void first(struct pkt_buf *b, const char *cmd, const char *caps)
{
	char buf[8192];
	size_t n = strlen(cmd), c = strlen(caps);

	ck_assert_uint_lt(n + 1 + c, sizeof(buf));
	memcpy(buf, cmd, n);
	buf[n] = '\0';
	memcpy(buf + n + 1, caps, c);
	ck_assert_int_eq(pkt_write(b, buf, n + 1 + c, NULL), 0);
}

static void flush(struct pkt_buf *b)
{
	ck_assert_int_eq(pkt_write_flush(b, NULL), 0);
}

static void raw(struct pkt_buf *b, const char *s)
{
	ck_assert_int_eq(pkt_buf_add(b, s, strlen(s), NULL), 0);
}

/* Parse b whole; return the code, err filled. */
static int parse(struct rp_request *req, const struct pkt_buf *b,
		 struct gg_err *err)
{
	rp_request_init(req);
	return rp_parse(req, b->data, b->len, err);
}

/* Expect b to fail parsing with code and exact message. */
static void expect_fail(const struct pkt_buf *b, int code, const char *msg)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;

	ck_assert_int_eq(parse(&req, b, &err), code);
	ck_assert_str_eq(err.msg, msg);
	rp_request_release(&req);
}

/* Body with one command line (as first line, with CAPS) and a flush. */
static void expect_cmd_fail(const char *cmd, int code, const char *msg)
{
	struct pkt_buf b;

	pkt_buf_init(&b, 1 << 20);
	first(&b, cmd, CAPS);
	flush(&b);
	expect_fail(&b, code, msg);
	pkt_buf_release(&b);
}

/* ---- tests ---- */

START_TEST(single_create_with_pack)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b;
	size_t hdr;

	pkt_buf_init(&b, 1 << 20);
	first(&b, ZZ " " O1 " refs/heads/main", CAPS);
	flush(&b);
	hdr = b.len;
	raw(&b, "PACK\0\0\0\2\0\0\0\0");
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	ck_assert_uint_eq(req.ncommands, 1);
	ck_assert_str_eq(req.commands[0].old_oid, ZZ);
	ck_assert_str_eq(req.commands[0].new_oid, O1);
	ck_assert_str_eq(req.commands[0].refname, "refs/heads/main");
	ck_assert_uint_eq(req.header_len, hdr);
	ck_assert_uint_eq(req.header_len, 4 + 82 + 15 + 1 + strlen(CAPS) + 4);
	ck_assert(req.caps.report_status_v2);
	ck_assert(!req.caps.report_status);
	ck_assert(req.caps.side_band_64k);
	ck_assert(req.caps.quiet);
	ck_assert(!req.caps.atomic);
	ck_assert(!req.caps.push_options);
	ck_assert_str_eq(req.caps.agent, "git/2.39.5");
	ck_assert_ptr_null(req.caps.session_id);
	ck_assert_str_eq(req.caps.raw, CAPS);
	ck_assert_uint_eq(req.nshallow, 0);
	ck_assert_uint_eq(req.npush_options, 0);
	ck_assert_int_eq(rp_command_kind(&req.commands[0]), RP_CREATE);
	rp_request_release(&req);
	pkt_buf_release(&b);
}
END_TEST

/* receive-pack's reading (parse_feature_request): "name=value" asks for
 * name, plain "side-band" is not its capability, and a longer word that
 * starts with a known one is not that one. */
START_TEST(caps_read_as_receive_pack_does)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b;

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a",
	      "report-status=yes side-band-64k=1 atomic=1 quiet=");
	flush(&b);
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	ck_assert(req.caps.report_status && !req.caps.report_status_v2);
	ck_assert(req.caps.side_band_64k);
	ck_assert(req.caps.atomic && req.caps.quiet);
	rp_request_release(&req);
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a",
	      "report-statusx side-band atomicity side-band-64kb");
	flush(&b);
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	ck_assert(!req.caps.report_status && !req.caps.side_band_64k);
	ck_assert(!req.caps.atomic);
	rp_request_release(&req);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(all_known_caps)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b;
	const char *caps = "report-status report-status-v2 side-band-64k "
			   "side-band quiet atomic push-options ofs-delta "
			   "session-id=abc agent=x/1 frobnicate x-new=1";

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a", caps);
	flush(&b);
	flush(&b); /* empty push-options section */
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	ck_assert(req.caps.report_status && req.caps.report_status_v2);
	ck_assert(req.caps.side_band_64k);
	ck_assert(req.caps.quiet && req.caps.atomic);
	ck_assert(req.caps.push_options && req.caps.ofs_delta);
	ck_assert_str_eq(req.caps.session_id, "abc");
	ck_assert_str_eq(req.caps.agent, "x/1");
	/* unknown capabilities survive in raw */
	ck_assert_str_eq(req.caps.raw, caps);
	ck_assert_uint_eq(req.header_len, b.len);
	rp_request_release(&req);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(several_commands_and_kinds)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b;

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/update", CAPS);
	line(&b, O1 " " ZZ " refs/heads/delete");
	line(&b, ZZ " " O3 " refs/tags/v1\n"); /* trailing LF is accepted */
	line(&b, ZZ " " ZZ " refs/heads/both-zero");
	flush(&b);
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	ck_assert_uint_eq(req.ncommands, 4);
	ck_assert_str_eq(req.commands[2].refname, "refs/tags/v1");
	ck_assert_int_eq(rp_command_kind(&req.commands[0]), RP_UPDATE);
	ck_assert_int_eq(rp_command_kind(&req.commands[1]), RP_DELETE);
	ck_assert_int_eq(rp_command_kind(&req.commands[2]), RP_CREATE);
	ck_assert_int_eq(rp_command_kind(&req.commands[3]), RP_DELETE);
	rp_request_release(&req);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(probe_0000)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;

	rp_request_init(&req);
	ck_assert_int_eq(rp_parse(&req, "0000", 4, &err), 0);
	ck_assert_uint_eq(req.ncommands, 0);
	ck_assert_uint_eq(req.header_len, 4);
	ck_assert_ptr_null(req.caps.raw);
	ck_assert(!rp_pack_expected(&req, NULL));
	rp_request_release(&req);
}
END_TEST

START_TEST(empty_and_truncated)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b;

	rp_request_init(&req);
	ck_assert_int_eq(rp_parse(&req, "", 0, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "empty push request");
	gg_err_init(&err);
	ck_assert_int_eq(rp_parse(&req, "00", 2, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg,
			 "truncated push request: partial pkt-line at end");

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a", CAPS);
	line(&b, O1 " " O2 " refs/heads/b");
	expect_fail(&b, GG_EINVAL,
		    "truncated push request: no flush after "
		    "the command list");
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a", " push-options");
	flush(&b);
	line(&b, "ci.skip");
	expect_fail(&b, GG_EINVAL,
		    "truncated push request: no flush after "
		    "push options");
	pkt_buf_release(&b);
	rp_request_release(&req);
}
END_TEST

START_TEST(malformed_oids)
{
	expect_cmd_fail("111 " O2 " refs/heads/a", GG_EINVAL,
			"bad push command: old object id is too short");
	expect_cmd_fail("111", GG_EINVAL,
			"bad push command: old object id is too short");
	expect_cmd_fail("111111111111111111111111111111111111111g " O2
			" refs/heads/a",
			GG_EINVAL,
			"bad push command: old object id is not lowercase hex");
	expect_cmd_fail("111111111111111111111111111111111111111A " O2
			" refs/heads/a",
			GG_EINVAL,
			"bad push command: old object id is not lowercase hex");
	expect_cmd_fail(O1 "1 " O2 " refs/heads/a", GG_EINVAL,
			"bad push command: old object id is too long");
	expect_cmd_fail(O1 " 222 refs/heads/a", GG_EINVAL,
			"bad push command: new object id is too short");
	expect_cmd_fail(O1 " 22222222222222222222222222222222222222X2"
			   " refs/heads/a",
			GG_EINVAL,
			"bad push command: new object id is not lowercase hex");
	expect_cmd_fail(O1 " " O2 "2 refs/heads/a", GG_EINVAL,
			"bad push command: new object id is too long");
}
END_TEST

START_TEST(malformed_spacing)
{
	expect_cmd_fail(O1 "-" O2 " refs/heads/a", GG_EINVAL,
			"bad push command: missing space after old object id");
	expect_cmd_fail(O1, GG_EINVAL,
			"bad push command: missing space after old object id");
	expect_cmd_fail(O1 " " O2 "-refs/heads/a", GG_EINVAL,
			"bad push command: missing space after new object id");
	expect_cmd_fail(O1 " " O2, GG_EINVAL,
			"bad push command: missing space after new object id");
	expect_cmd_fail(O1 " " O2 " ", GG_EINVAL,
			"invalid ref name \"\": does not start with refs/");
	expect_cmd_fail(O1 "  " O2 " refs/heads/a", GG_EINVAL,
			"bad push command: new object id is too short");
}
END_TEST

START_TEST(caps_only_on_first_line)
{
	struct pkt_buf b;

	pkt_buf_init(&b, 1 << 20);
	line(&b, O1 " " O2 " refs/heads/a"); /* no NUL: no caps */
	flush(&b);
	expect_fail(&b, GG_EINVAL,
		    "bad push command: no capability list on "
		    "the first command");
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a", CAPS);
	first(&b, O1 " " O2 " refs/heads/b", CAPS);
	flush(&b);
	expect_fail(&b, GG_EINVAL,
		    "bad push command: capabilities are only "
		    "allowed on the first command");
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a", " report-status\tquiet");
	flush(&b);
	expect_fail(&b, GG_EINVAL,
		    "capability list contains a control "
		    "character");
	pkt_buf_release(&b);
}
END_TEST

START_TEST(object_format)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b;

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a",
	      " report-status "
	      "object-format=sha256");
	flush(&b);
	expect_fail(&b, GG_EINVAL, "sha256 repositories are not supported yet");
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a", "object-format=md5");
	flush(&b);
	expect_fail(&b, GG_EINVAL, "unsupported object-format \"md5\"");
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a", "object-format=sha1");
	flush(&b);
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	rp_request_release(&req);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(push_cert_refused)
{
	struct pkt_buf b;

	pkt_buf_init(&b, 1 << 20);
	first(&b, "push-cert", " report-status push-cert=123\n");
	line(&b, "certificate version 0.1\n");
	expect_fail(&b, GG_EINVAL,
		    "signed pushes (push-cert) are not "
		    "supported");
	pkt_buf_release(&b);
}
END_TEST

START_TEST(special_packets_refused)
{
	struct pkt_buf b;

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a", CAPS);
	raw(&b, "0001");
	flush(&b);
	expect_fail(&b, GG_EINVAL,
		    "unexpected delim or response-end packet "
		    "in push request");
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	raw(&b, "0004");
	expect_fail(&b, GG_EINVAL, "empty pkt-line (0004) not allowed");
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	raw(&b, "fff1");
	expect_fail(&b, GG_ELIMIT,
		    "pkt-line length 65521 exceeds maximum "
		    "65520");
	pkt_buf_release(&b);
}
END_TEST

/* One row of the ref name table: refname and the expected message tail. */
struct ref_row {
	const char *name;
	const char *why; /* NULL = valid */
};

static const struct ref_row ref_rows[] = {
	{"refs/heads/main", NULL},
	{"refs/heads/feature/x-1_2", NULL},
	{"refs/tags/v1.0", NULL},
	{"refs/heads/caf\xc3\xa9", NULL}, /* UTF-8 is fine */
	{"refs/heads/a.b", NULL},
	{"refs/heads/a@b", NULL},
	{"refs/heads/lock", NULL},
	{"refs/for/main%topic", NULL},
	{"heads/main", "does not start with refs/"},
	{"refsx/heads/a", "does not start with refs/"},
	{"refs", "does not start with refs/"},
	{"refs/", "ends with '/'"},
	{"refs/heads/a/", "ends with '/'"},
	{"refs/heads/a.", "ends with '.'"},
	{"refs/heads/a..b", "contains \"..\""},
	{"refs/heads/a//b", "contains \"//\""},
	{"refs/heads/a@{1}", "contains \"@{\""},
	{"refs/heads/a b", "contains a space"},
	{"refs/heads/a\tb", "contains a control character"},
	{"refs/heads/a\x7f", "contains a control character"},
	{"refs/heads/a~1", "contains one of ~^:?*[\\"},
	{"refs/heads/a^", "contains one of ~^:?*[\\"},
	{"refs/heads/a:b", "contains one of ~^:?*[\\"},
	{"refs/heads/a?", "contains one of ~^:?*[\\"},
	{"refs/heads/a*", "contains one of ~^:?*[\\"},
	{"refs/heads/a[b", "contains one of ~^:?*[\\"},
	{"refs/heads/a\\b", "contains one of ~^:?*[\\"},
	{"refs/heads/main.lock", "a component ends with \".lock\""},
	{"refs/heads/x.lock/y", "a component ends with \".lock\""},
	{"refs/heads/.hidden", "a component starts with '.'"},
	{"refs/.x/y", "a component starts with '.'"},
};

START_TEST(refname_rules)
{
	const struct ref_row *r = &ref_rows[_i];
	struct gg_err err = GG_ERR_INIT;
	char expect[256], shown[96];
	int rc = rp_refname_check(r->name, strlen(r->name), &err);

	if (!r->why) {
		ck_assert_msg(rc == 0, "%s: %s", r->name, err.msg);
		return;
	}
	gg_err_sanitize(shown, sizeof(shown), r->name, strlen(r->name));
	snprintf(expect, sizeof(expect), "invalid ref name \"%s\": %s", shown,
		 r->why);
	ck_assert_int_eq(rc, GG_EINVAL);
	ck_assert_str_eq(err.msg, expect);
}
END_TEST

START_TEST(refname_in_command_and_length)
{
	struct gg_err err = GG_ERR_INIT;
	char *name = malloc(GG_MAX_REFNAME + 2);

	expect_cmd_fail(
		O1 " " O2 " refs/heads/a..b", GG_EINVAL,
		"invalid ref name \"refs/heads/a..b\": contains \"..\"");
	ck_assert_ptr_nonnull(name);
	memcpy(name, "refs/heads/", 11);
	memset(name + 11, 'a', GG_MAX_REFNAME + 1 - 11);
	name[GG_MAX_REFNAME + 1] = '\0';
	ck_assert_int_eq(rp_refname_check(name, GG_MAX_REFNAME, &err), 0);
	ck_assert_int_eq(rp_refname_check(name, GG_MAX_REFNAME + 1, &err),
			 GG_ELIMIT);
	ck_assert_str_eq(err.msg, "ref name of 4097 bytes exceeds maximum "
				  "4096");
	free(name);
}
END_TEST

START_TEST(shallow_lines)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b;

	pkt_buf_init(&b, 1 << 20);
	line(&b, "shallow " O3 "\n");
	line(&b, "shallow " O2);
	first(&b, O1 " " O2 " refs/heads/a", CAPS);
	flush(&b);
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	ck_assert_uint_eq(req.nshallow, 2);
	ck_assert_str_eq(req.shallow[0], O3);
	ck_assert_str_eq(req.shallow[1], O2);
	ck_assert_uint_eq(req.ncommands, 1);
	rp_request_release(&req);
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	first(&b, O1 " " O2 " refs/heads/a", CAPS);
	line(&b, "shallow " O3);
	flush(&b);
	expect_fail(&b, GG_EINVAL,
		    "shallow lines must come before the push "
		    "commands");
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	line(&b, "shallow 1234");
	expect_fail(&b, GG_EINVAL,
		    "bad shallow line: expected \"shallow\" "
		    "and a 40-hex object id");
	pkt_buf_release(&b);
}
END_TEST

START_TEST(push_options_section)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b;
	size_t hdr;

	pkt_buf_init(&b, 1 << 20);
	first(&b, ZZ " " O1 " refs/heads/a", " report-status push-options");
	flush(&b);
	line(&b, "ci.skip");
	line(&b, "merge_request.create\n");
	line(&b, "topic=with spaces");
	flush(&b);
	hdr = b.len;
	raw(&b, "PACK");
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	ck_assert_uint_eq(req.header_len, hdr);
	ck_assert_uint_eq(req.npush_options, 3);
	ck_assert_str_eq(req.push_options[0], "ci.skip");
	ck_assert_str_eq(req.push_options[1], "merge_request.create");
	ck_assert_str_eq(req.push_options[2], "topic=with spaces");
	rp_request_release(&req);
	pkt_buf_release(&b);

	/* without the capability, the next pkt-lines are the pack's business */
	pkt_buf_init(&b, 1 << 20);
	first(&b, ZZ " " O1 " refs/heads/a", " report-status");
	flush(&b);
	hdr = b.len;
	line(&b, "not-an-option");
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	ck_assert_uint_eq(req.header_len, hdr);
	ck_assert_uint_eq(req.npush_options, 0);
	rp_request_release(&req);
	pkt_buf_release(&b);

	pkt_buf_init(&b, 1 << 20);
	first(&b, ZZ " " O1 " refs/heads/a", " push-options");
	flush(&b);
	line(&b, "bad\001option");
	flush(&b);
	expect_fail(&b, GG_EINVAL, "push option contains a control character");
	pkt_buf_release(&b);
}
END_TEST

START_TEST(too_many_push_options)
{
	struct pkt_buf b;
	int i;

	pkt_buf_init(&b, 1 << 20);
	first(&b, ZZ " " O1 " refs/heads/a", " push-options");
	flush(&b);
	for (i = 0; i <= GG_MAX_PUSH_OPTIONS; i++)
		line(&b, "o");
	flush(&b);
	expect_fail(&b, GG_ELIMIT,
		    "too many push options in push (maximum "
		    "1000)");
	pkt_buf_release(&b);
}
END_TEST

START_TEST(too_many_commands)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b;
	char cmd[128];
	int i;

	pkt_buf_init(&b, 4 << 20);
	first(&b, ZZ " " O1 " refs/heads/b0", CAPS);
	for (i = 1; i < GG_MAX_PUSH_COMMANDS; i++) {
		snprintf(cmd, sizeof(cmd), ZZ " " O1 " refs/heads/b%d", i);
		line(&b, cmd);
	}
	flush(&b);
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	ck_assert_uint_eq(req.ncommands, GG_MAX_PUSH_COMMANDS);
	rp_request_release(&req);
	b.len -= 4; /* drop the flush, add one more command */
	line(&b, ZZ " " O1 " refs/heads/one-too-many");
	flush(&b);
	expect_fail(&b, GG_ELIMIT,
		    "too many commands in push (maximum "
		    "10000)");
	pkt_buf_release(&b);
}
END_TEST

START_TEST(duplicate_refs)
{
	struct pkt_buf b;

	pkt_buf_init(&b, 1 << 20);
	first(&b, ZZ " " O1 " refs/heads/a", CAPS);
	line(&b, ZZ " " O1 " refs/heads/b");
	line(&b, O1 " " O2 " refs/heads/a");
	flush(&b);
	expect_fail(&b, GG_EINVAL,
		    "ref updated twice in one push: "
		    "refs/heads/a");
	pkt_buf_release(&b);
}
END_TEST

/* Feed b in chunks of size step; return where the pack starts. */
static size_t feed_chunks(struct rp_request *out, const struct pkt_buf *b,
			  size_t step)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_parser p;
	size_t pos = 0, n, used;
	int rc = GG_EAGAIN;

	rp_parser_init(&p);
	while (pos < b->len) {
		n = b->len - pos < step ? b->len - pos : step;
		rc = rp_parser_feed(&p, &used, b->data + pos, n, &err);
		ck_assert_msg(rc == 0 || rc == GG_EAGAIN, "%s", err.msg);
		pos += used;
		if (rc == 0)
			break;
		ck_assert_uint_eq(used, n);
	}
	ck_assert_int_eq(rc, 0);
	/* done: more input is left alone */
	ck_assert_int_eq(rp_parser_feed(&p, &used, "PACK", 4, &err), 0);
	ck_assert_uint_eq(used, 0);
	ck_assert_int_eq(rp_parser_finish(&p, &err), 0);
	rp_parser_detach(out, &p);
	rp_parser_release(&p);
	return pos;
}

START_TEST(chunked_feeding)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request whole, part;
	static const size_t steps[] = {1, 2, 3, 5, 7, 64, 100000};
	struct pkt_buf b;
	size_t s, i, hdr;

	pkt_buf_init(&b, 1 << 20);
	line(&b, "shallow " O3 "\n");
	first(&b, ZZ " " O1 " refs/heads/a", " report-status push-options");
	line(&b, O1 " " ZZ " refs/heads/b");
	flush(&b);
	line(&b, "opt=1");
	flush(&b);
	hdr = b.len;
	raw(&b, "PACK\0\0\0\2\0\0\0\0 and more pack bytes");
	ck_assert_int_eq(parse(&whole, &b, &err), 0);
	ck_assert_uint_eq(whole.header_len, hdr);
	for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		ck_assert_uint_eq(feed_chunks(&part, &b, steps[s]), hdr);
		ck_assert_uint_eq(part.header_len, hdr);
		ck_assert_uint_eq(part.ncommands, whole.ncommands);
		for (i = 0; i < part.ncommands; i++)
			ck_assert_str_eq(part.commands[i].refname,
					 whole.commands[i].refname);
		ck_assert_str_eq(part.caps.raw, whole.caps.raw);
		ck_assert_str_eq(part.push_options[0], "opt=1");
		ck_assert_str_eq(part.shallow[0], O3);
		rp_request_release(&part);
	}
	rp_request_release(&whole);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(sticky_failure)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_parser p;
	size_t used;

	rp_parser_init(&p);
	ck_assert_int_eq(rp_parser_feed(&p, &used, "00zz", 4, &err), GG_EINVAL);
	gg_err_init(&err);
	ck_assert_int_eq(rp_parser_feed(&p, &used, "0000", 4, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "push request already failed to parse");
	ck_assert_int_eq(rp_parser_finish(&p, NULL), GG_EINVAL);
	rp_parser_release(&p);
}
END_TEST

/* ---- re-serialization ---- */

static void build_three(struct pkt_buf *b, const char *caps)
{
	pkt_buf_init(b, 1 << 20);
	line(b, "shallow " O3 "\n");
	first(b, ZZ " " O1 " refs/heads/a", caps);
	line(b, O1 " " O2 " refs/heads/b");
	line(b, O2 " " ZZ " refs/heads/c");
	flush(b);
}

START_TEST(serialize_round_trip)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	struct pkt_buf b, out;

	build_three(&b, " report-status push-options agent=x");
	line(&b, "o1");
	line(&b, "o2");
	flush(&b);
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	pkt_buf_init(&out, 1 << 20);
	ck_assert_int_eq(rp_serialize(&out, &req, NULL, NULL, &err), 0);
	ck_assert_uint_eq(out.len, b.len);
	ck_assert_mem_eq(out.data, b.data, b.len);
	rp_request_release(&req);
	pkt_buf_release(&out);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(serialize_subset)
{
	struct gg_err err = GG_ERR_INIT;
	static const bool keep[] = {false, true, false};
	struct rp_request req;
	struct pkt_buf b, out, want;

	build_three(&b, " report-status side-band-64k");
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	pkt_buf_init(&out, 1 << 20);
	ck_assert_int_eq(rp_serialize(&out, &req, keep, NULL, &err), 0);
	/* caps move to the first forwarded command */
	pkt_buf_init(&want, 1 << 20);
	line(&want, "shallow " O3 "\n");
	first(&want, O1 " " O2 " refs/heads/b", " report-status side-band-64k");
	flush(&want);
	ck_assert_uint_eq(out.len, want.len);
	ck_assert_mem_eq(out.data, want.data, want.len);
	ck_assert(rp_pack_expected(&req, keep));
	pkt_buf_release(&out);
	pkt_buf_release(&want);
	rp_request_release(&req);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(serialize_caps_override_and_options)
{
	struct gg_err err = GG_ERR_INIT;
	static const bool keep[] = {false, false, true};
	struct rp_request req;
	struct pkt_buf b, out, want;

	build_three(&b, " report-status push-options");
	line(&b, "ci.skip");
	flush(&b);
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	pkt_buf_init(&out, 1 << 20);
	ck_assert_int_eq(rp_serialize(&out, &req, keep,
				      " report-status-v2 push-options", &err),
			 0);
	pkt_buf_init(&want, 1 << 20);
	line(&want, "shallow " O3 "\n");
	first(&want, O2 " " ZZ " refs/heads/c",
	      " report-status-v2 push-options");
	flush(&want);
	line(&want, "ci.skip");
	flush(&want);
	ck_assert_uint_eq(out.len, want.len);
	ck_assert_mem_eq(out.data, want.data, want.len);
	/* only a delete is kept: no pack goes with it */
	ck_assert(!rp_pack_expected(&req, keep));
	ck_assert(rp_pack_expected(&req, NULL));

	/* caps without push-options: no options section is written */
	pkt_buf_release(&out);
	ck_assert_int_eq(rp_serialize(&out, &req, keep, "report-status", &err),
			 0);
	ck_assert_uint_eq(out.len, (4 + 49) + (4 + 82 + 12 + 1 + 13) + 4);
	ck_assert_mem_eq(out.data + out.len - 4, "0000", 4);
	pkt_buf_release(&out);
	pkt_buf_release(&want);
	rp_request_release(&req);
	pkt_buf_release(&b);
}
END_TEST

START_TEST(serialize_nothing_kept)
{
	struct gg_err err = GG_ERR_INIT;
	static const bool keep[] = {false, false, false};
	struct rp_request req;
	struct pkt_buf b, out;

	build_three(&b, " report-status");
	ck_assert_int_eq(parse(&req, &b, &err), 0);
	pkt_buf_init(&out, 1 << 20);
	ck_assert_int_eq(rp_serialize(&out, &req, keep, NULL, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "no push commands to forward");
	ck_assert(!rp_pack_expected(&req, keep));
	pkt_buf_release(&out);
	rp_request_release(&req);
	pkt_buf_release(&b);
}
END_TEST

/* ---- real git fixtures (fixtures/push, made by make.sh) ---- */

/* Read fixtures/push/<name> whole; *len set. Caller frees. */
static unsigned char *load(const char *name, size_t *len)
{
	const char *root = getenv("GG_SOURCE_ROOT");
	char path[4096];
	unsigned char *buf;
	FILE *f;
	long n;

	ck_assert_msg(root != NULL, "GG_SOURCE_ROOT not set");
	snprintf(path, sizeof(path), "%s/fixtures/push/%s", root, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

struct fixture {
	const char *file;
	size_t ncommands;
	const char *ref0;
	enum rp_kind kind0;
	bool pack; /* a pack follows the command section */
};

static const struct fixture fixtures[] = {
	{"create/request", 1, "refs/heads/main", RP_CREATE, true},
	{"update/request", 1, "refs/heads/main", RP_UPDATE, true},
	{"atomic/request", 2, "refs/heads/a", RP_CREATE, true},
	{"delete/request", 1, "refs/heads/b", RP_DELETE, false},
	{"tag/request", 1, "refs/tags/v1", RP_CREATE, true},
	{"options/request", 1, "refs/heads/opt", RP_CREATE, true},
	{"hook-declined/request", 1, "refs/heads/frozen", RP_CREATE, true},
	{"nonff/request", 1, "refs/heads/main", RP_UPDATE, true},
	{"probe/request.1", 1, "refs/heads/big", RP_CREATE, true},
	{"plain/request", 1, "refs/heads/main", RP_CREATE, true},
	{"shallow/request", 1, "refs/heads/from-shallow", RP_CREATE, true},
};

/* Parse a real request; the pack starts exactly at header_len, and
 * re-serializing reproduces git's command section byte for byte. */
START_TEST(real_git_requests)
{
	const struct fixture *fx = &fixtures[_i];
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req, chunked;
	unsigned char *body;
	struct pkt_buf out, b;
	size_t len;

	body = load(fx->file, &len);
	rp_request_init(&req);
	ck_assert_msg(rp_parse(&req, body, len, &err) == 0, "%s: %s", fx->file,
		      err.msg);
	ck_assert_uint_eq(req.ncommands, fx->ncommands);
	ck_assert_str_eq(req.commands[0].refname, fx->ref0);
	ck_assert_int_eq(rp_command_kind(&req.commands[0]), fx->kind0);
	if (fx->pack) {
		ck_assert_uint_ge(len - req.header_len, 32);
		ck_assert_mem_eq(body + req.header_len, "PACK", 4);
	} else {
		ck_assert_uint_eq(req.header_len, len);
	}
	ck_assert(rp_pack_expected(&req, NULL) == fx->pack);
	ck_assert_str_eq(req.caps.raw[0] == ' ' ? "space" : "none", "space");
	pkt_buf_init(&out, 1 << 20);
	ck_assert_int_eq(rp_serialize(&out, &req, NULL, NULL, &err), 0);
	ck_assert_uint_eq(out.len, req.header_len);
	ck_assert_mem_eq(out.data, body, out.len);
	/* the same, one byte at a time */
	b.data = body;
	b.len = len;
	ck_assert_uint_eq(feed_chunks(&chunked, &b, 1), req.header_len);
	ck_assert_uint_eq(chunked.ncommands, req.ncommands);
	rp_request_release(&chunked);
	pkt_buf_release(&out);
	rp_request_release(&req);
	free(body);
}
END_TEST

START_TEST(real_git_details)
{
	struct gg_err err = GG_ERR_INIT;
	struct rp_request req;
	unsigned char *body;
	size_t len;

	body = load("options/request", &len);
	ck_assert_int_eq(rp_parse(&req, body, len, &err), 0);
	ck_assert(req.caps.push_options && req.caps.report_status_v2 &&
		  req.caps.side_band_64k && req.caps.quiet);
	ck_assert_uint_eq(req.npush_options, 2);
	ck_assert_str_eq(req.push_options[0], "ci.skip");
	ck_assert_str_eq(req.push_options[1], "topic=a b");
	ck_assert(strncmp(req.caps.agent, "git/", 4) == 0);
	rp_request_release(&req);
	free(body);

	body = load("atomic/request", &len);
	ck_assert_int_eq(rp_parse(&req, body, len, &err), 0);
	ck_assert(req.caps.atomic);
	ck_assert_str_eq(req.commands[1].refname, "refs/heads/b");
	ck_assert_str_eq(req.commands[0].new_oid,
			 "f4c194f0ed2bcb886d23bedef443b8a49e0b4f61");
	rp_request_release(&req);
	free(body);

	/* the auth probe git sends before a push bigger than postBuffer */
	body = load("probe/request.0", &len);
	ck_assert_uint_eq(len, 4);
	ck_assert_int_eq(rp_parse(&req, body, len, &err), 0);
	ck_assert_uint_eq(req.ncommands, 0);
	rp_request_release(&req);
	free(body);
}
END_TEST

/* ---- ref advertisement ---- */

#define OID1 "1111111111111111111111111111111111111111"

/* An advertisement: service line, flush, [version 1], the first ref line
 * with caps (and its LF), one more ref line, flush. */
static void advert(struct pkt_buf *b, bool v1, const char *ref,
		   const char *caps)
{
	char buf[1024];

	line(b, "# service=git-receive-pack\n");
	flush(b);
	if (v1)
		line(b, "version 1\n");
	snprintf(buf, sizeof(buf), "%s\n", caps);
	first(b, ref, buf);
	line(b, OID1 " refs/heads/other\n");
	flush(b);
}

/* Rewrite b's advertisement; returns the rewritten start + the rest. */
static char *rewrite(const struct pkt_buf *b, bool *sha256, size_t *outlen)
{
	struct pkt_buf out;
	struct gg_err err = GG_ERR_INIT;
	size_t used;
	char *s;

	pkt_buf_init(&out, 1 << 20);
	ck_assert_msg(rp_advert_rewrite(&out, &used, sha256, b->data, b->len,
					&err) == GG_OK, "%s", err.msg);
	ck_assert_int_eq(pkt_buf_add(&out, b->data + used, b->len - used,
				     NULL), 0);
	*outlen = out.len;
	s = malloc(out.len + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, out.data, out.len);
	s[out.len] = '\0'; /* for the str asserts: NULs end it early */
	pkt_buf_release(&out);
	return s;
}

START_TEST(advert_drops_push_cert)
{
	struct pkt_buf in, want;
	bool sha256 = true;
	size_t n;
	char *got;

	pkt_buf_init(&in, 1 << 20);
	pkt_buf_init(&want, 1 << 20);
	advert(&in, false, OID1 " refs/heads/main",
	       "report-status delete-refs push-cert=1700000000-abcdef "
	       "atomic push-certified push-cert push-options "
	       "push-optionsx agent=git/2.39.5");
	advert(&want, false, OID1 " refs/heads/main",
	       "report-status delete-refs atomic push-certified "
	       "push-optionsx agent=git/2.39.5");
	got = rewrite(&in, &sha256, &n);
	ck_assert(!sha256);
	ck_assert_uint_eq(n, want.len);
	ck_assert_mem_eq(got, want.data, n);
	free(got);
	pkt_buf_release(&in);
	pkt_buf_release(&want);
}
END_TEST

/* Protocol v1's version line, an empty repository's capabilities^{}
 * line, a SHA-256 repository: the same rewrite, and sha256 is told. */
START_TEST(advert_v1_empty_sha256)
{
	static const char zero64[] = "00000000000000000000000000000000"
				     "00000000000000000000000000000000";
	struct pkt_buf in, want;
	char ref[128];
	bool sha256 = false;
	size_t n;
	char *got;

	snprintf(ref, sizeof(ref), "%s capabilities^{}", zero64);
	pkt_buf_init(&in, 1 << 20);
	pkt_buf_init(&want, 1 << 20);
	advert(&in, true, ref, "push-cert=x object-format=sha256 atomic");
	advert(&want, true, ref, "object-format=sha256 atomic");
	got = rewrite(&in, &sha256, &n);
	ck_assert(sha256);
	ck_assert_uint_eq(n, want.len);
	ck_assert_mem_eq(got, want.data, n);
	free(got);
	pkt_buf_release(&in);
	pkt_buf_release(&want);
}
END_TEST

/* Every cut short of the first ref line's end asks for more; from there
 * on the rest is not needed. */
START_TEST(advert_needs_the_whole_first_line)
{
	struct pkt_buf in, out;
	struct gg_err err;
	size_t used, cut, end;
	bool sha256;
	int ret;

	pkt_buf_init(&in, 1 << 20);
	advert(&in, false, OID1 " refs/heads/main", "push-cert=n atomic");
	end = in.len - strlen("0032" OID1 " refs/heads/other\n") - 4;
	for (cut = 0; cut <= in.len; cut++) {
		pkt_buf_init(&out, 1 << 20);
		gg_err_init(&err);
		ret = rp_advert_rewrite(&out, &used, &sha256, in.data, cut,
					&err);
		if (cut < end) {
			ck_assert_int_eq(ret, GG_EAGAIN);
		} else {
			ck_assert_msg(ret == GG_OK, "%zu: %s", cut, err.msg);
			ck_assert_uint_eq(used, end);
		}
		pkt_buf_release(&out);
	}
	pkt_buf_release(&in);
}
END_TEST

START_TEST(advert_not_recognised)
{
	static const char *const bodies[] = {
		"0008NAK\n",                   /* not a service line */
		"zzzz# service=x\n",           /* not a packet */
		"0000",                         /* flush first */
		/* no NUL in the first 8 packets */
		"001f# service=git-receive-pack\n00000006a\n0006a\n"
		"0006a\n0006a\n0006a\n0006a\n0006a\n0006a\n",
	};
	struct pkt_buf out;
	struct gg_err err;
	size_t i, used;
	bool sha256;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		pkt_buf_init(&out, 1 << 20);
		gg_err_init(&err);
		ck_assert_int_eq(rp_advert_rewrite(&out, &used, &sha256,
						   bodies[i],
						   strlen(bodies[i]), &err),
				 GG_EINVAL);
		ck_assert_uint_eq(out.len, 0);
		if (i == 3)
			ck_assert_str_eq(err.msg, "no capabilities in the "
						  "first 8 packets");
		pkt_buf_release(&out);
	}
}
END_TEST

static Suite *receivepack_suite(void)
{
	Suite *s = suite_create("receivepack");
	TCase *p = tcase_create("parse");
	TCase *r = tcase_create("refname");
	TCase *w = tcase_create("serialize");
	TCase *g = tcase_create("real-git");

	tcase_add_test(p, single_create_with_pack);
	tcase_add_test(p, all_known_caps);
	tcase_add_test(p, caps_read_as_receive_pack_does);
	tcase_add_test(p, several_commands_and_kinds);
	tcase_add_test(p, probe_0000);
	tcase_add_test(p, empty_and_truncated);
	tcase_add_test(p, malformed_oids);
	tcase_add_test(p, malformed_spacing);
	tcase_add_test(p, caps_only_on_first_line);
	tcase_add_test(p, object_format);
	tcase_add_test(p, push_cert_refused);
	tcase_add_test(p, special_packets_refused);
	tcase_add_test(p, shallow_lines);
	tcase_add_test(p, push_options_section);
	tcase_add_test(p, too_many_push_options);
	tcase_add_test(p, too_many_commands);
	tcase_add_test(p, duplicate_refs);
	tcase_add_test(p, chunked_feeding);
	tcase_add_test(p, sticky_failure);
	tcase_add_loop_test(r, refname_rules, 0,
			    sizeof(ref_rows) / sizeof(ref_rows[0]));
	tcase_add_test(r, refname_in_command_and_length);
	tcase_add_test(w, serialize_round_trip);
	tcase_add_test(w, serialize_subset);
	tcase_add_test(w, serialize_caps_override_and_options);
	tcase_add_test(w, serialize_nothing_kept);
	tcase_add_loop_test(g, real_git_requests, 0,
			    sizeof(fixtures) / sizeof(fixtures[0]));
	tcase_add_test(g, real_git_details);
	tcase_add_test(w, advert_drops_push_cert);
	tcase_add_test(w, advert_v1_empty_sha256);
	tcase_add_test(w, advert_needs_the_whole_first_line);
	tcase_add_test(w, advert_not_recognised);
	suite_add_tcase(s, p);
	suite_add_tcase(s, r);
	suite_add_tcase(s, w);
	suite_add_tcase(s, g);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(receivepack_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

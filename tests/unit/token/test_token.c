/*
 * test_token.c - claims, key selection, time and revocation checks, and
 * every malformed-input path of token_verify / token_decode_unverified.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/limits.h"
#include "gitgate/token/paserk.h"
#include "gitgate/token/paseto.h"
#include "gitgate/token/revocation.h"
#include "gitgate/token/token.h"
#include "vectors.h"

#define NOW 1700000000 /* 2023-11-14T22:13:20Z */

static unsigned char sk[2][64];
static struct token_key keys[2];
static struct token_keyset both = {keys, 2};
static struct token_keyset first = {keys, 1};

static void setup(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		crypto_sign_keypair(keys[i].pk, sk[i]);
		ck_assert_int_eq(paserk_pid(keys[i].pid, sizeof(keys[i].pid),
					    keys[i].pk, 32, NULL),
				 GG_OK);
	}
}

/* A valid payload for NOW; tests splice changes into it. */
#define GOOD_PAYLOAD                                                           \
	"{\"sub\":\"agent-7\",\"jti\":\"j-1\",\"iat\":\"2023-11-14T22:00:"     \
	"00Z\","                                                               \
	"\"exp\":\"2023-11-14T23:00:00Z\",\"repos\":[\"acme/widget\"],"        \
	"\"ops\":[\"fetch\",\"push\"],\"branches\":[\"agent/*\"],"             \
	"\"allow_force\":true,\"allow_delete\":false}"

/* Sign any payload with key k; footer: NULL = kid of k, "" = none. */
static char *sign_raw(const char *payload, const char *footer, int k)
{
	char buf[128], *token;

	if (!footer) {
		snprintf(buf, sizeof(buf), "{\"kid\":\"%s\"}", keys[k].pid);
		footer = buf;
	}
	ck_assert_int_eq(paseto_v4_public_sign(&token, payload, strlen(payload),
					       footer, strlen(footer), NULL, 0,
					       sk[k], NULL),
			 GG_OK);
	return token;
}

static int verify_with(const char *token, const struct token_keyset *ks,
		       int64_t now, struct gg_err *err)
{
	struct token_claims *c = NULL;
	int rc;

	rc = token_verify(&c, token, strlen(token), ks, now, NULL, err);
	ck_assert(rc == GG_OK ? c != NULL : c == NULL);
	token_claims_free(c);
	return rc;
}

/* ---- happy paths ------------------------------------------------------ */

START_TEST(test_verify_good)
{
	char *token = sign_raw(GOOD_PAYLOAD, NULL, 0);
	struct gg_err err = GG_ERR_INIT;
	struct token_claims *c;

	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, NULL, &err),
		GG_OK);
	ck_assert_str_eq(c->sub, "agent-7");
	ck_assert_str_eq(c->jti, "j-1");
	ck_assert(c->has_iat && c->iat == NOW - 800);
	ck_assert(c->exp == NOW + 2800);
	ck_assert(!c->has_nbf);
	ck_assert_uint_eq(c->nrepos, 1);
	ck_assert_str_eq(c->repos[0], "acme/widget");
	ck_assert_uint_eq(c->ops, TOKEN_OP_FETCH | TOKEN_OP_PUSH);
	ck_assert_uint_eq(c->nbranches, 1);
	ck_assert_str_eq(c->branches[0], "agent/*");
	ck_assert(c->allow_force && !c->allow_delete);
	ck_assert(token_claims_has_repo(c, "ACME/Widget"));
	ck_assert(!token_claims_has_repo(c, "acme/widge"));
	ck_assert(!token_claims_has_repo(c, "acme/widget2"));
	token_claims_free(c);
	free(token);
}
END_TEST

START_TEST(test_sign_roundtrip)
{
	char *repos[] = {"acme/widget", "acme/gadget"};
	char *branches[] = {"agent/**", "refs/tags/v*"};
	struct token_claims in = {
		.sub = "me@host",
		.iat = NOW,
		.exp = NOW + 3600,
		.has_iat = true,
		.repos = repos,
		.nrepos = 2,
		.ops = TOKEN_OP_PUSH,
		.branches = branches,
		.nbranches = 2,
		.allow_delete = true,
	};
	struct token_claims *c, *c2;
	struct gg_err err = GG_ERR_INIT;
	char *token, *token2;

	ck_assert_int_eq(token_sign(&token, &in, sk[1], &err), GG_OK);
	ck_assert(!strncmp(token, "v4.public.", 10));
	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &both, NOW, NULL, &err),
		GG_OK);
	ck_assert_str_eq(c->sub, "me@host");
	ck_assert_uint_eq(strlen(c->jti), 24); /* 144 bits, base64url */
	ck_assert(c->jti[0] != '-');
	ck_assert(c->iat == NOW && c->exp == NOW + 3600);
	ck_assert_uint_eq(c->nrepos, 2);
	ck_assert_str_eq(c->repos[1], "acme/gadget");
	ck_assert_uint_eq(c->ops, TOKEN_OP_PUSH);
	ck_assert_str_eq(c->branches[1], "refs/tags/v*");
	ck_assert(!c->allow_force && c->allow_delete);
	/* a second token gets a fresh jti */
	ck_assert_int_eq(token_sign(&token2, &in, sk[1], &err), GG_OK);
	ck_assert_int_eq(token_verify(&c2, token2, strlen(token2), &both, NOW,
				      NULL, &err),
			 GG_OK);
	ck_assert_str_ne(c->jti, c2->jti);
	token_claims_free(c);
	token_claims_free(c2);
	free(token);
	free(token2);
}
END_TEST

/* The payload is compact JSON in a fixed order, and the footer is exactly
 * {"kid":"k4.pid.…"} — what other PASETO libraries expect. */
/* Many jtis: all distinct, none starts with '-'. */
START_TEST(test_jti_shape)
{
	char *repos[] = {"a/b"};
	struct token_claims in = {
		.sub = "s",
		.exp = NOW + 60,
		.repos = repos,
		.nrepos = 1,
		.ops = TOKEN_OP_FETCH,
	};
	struct token_claims *c;
	char seen[200][32], *token;
	int i, j;

	for (i = 0; i < 200; i++) {
		ck_assert_int_eq(token_sign(&token, &in, sk[0], NULL), GG_OK);
		ck_assert_int_eq(token_verify(&c, token, strlen(token), &first,
					      NOW, NULL, NULL),
				 GG_OK);
		ck_assert(c->jti[0] != '-');
		snprintf(seen[i], sizeof(seen[i]), "%s", c->jti);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(seen[i], seen[j]);
		token_claims_free(c);
		free(token);
	}
}
END_TEST

START_TEST(test_sign_exact_payload)
{
	char *repos[] = {"a/b"};
	struct token_claims in = {
		.sub = "s",
		.jti = "fixed",
		.exp = 0,
		.repos = repos,
		.nrepos = 1,
		.ops = TOKEN_OP_FETCH,
	};
	struct paseto_msg msg;
	char footer[128], *token;

	ck_assert_int_eq(token_sign(&token, &in, sk[0], NULL), GG_OK);
	ck_assert_int_eq(
		paseto_v4_public_split(&msg, token, strlen(token), NULL),
		GG_OK);
	ck_assert_uint_eq(msg.mlen, strlen("{\"sub\":\"s\",\"jti\":\"fixed\","
					   "\"exp\":\"1970-01-01T00:00:00Z\","
					   "\"repos\":[\"a/b\"],\"ops\":["
					   "\"fetch\"],\"branches\":[],"
					   "\"allow_force\":false,"
					   "\"allow_delete\":false}"));
	ck_assert(!memcmp(msg.m,
			  "{\"sub\":\"s\",\"jti\":\"fixed\",\"exp\":\"1970-01-"
			  "01T00:00:00Z\",\"repos\":[\"a/b\"],\"ops\":["
			  "\"fetch\"],\"branches\":[],\"allow_force\":false,"
			  "\"allow_delete\":false}",
			  msg.mlen));
	snprintf(footer, sizeof(footer), "{\"kid\":\"%s\"}", keys[0].pid);
	ck_assert_str_eq((const char *)msg.footer, footer);
	paseto_msg_release(&msg);
	free(token);
}
END_TEST

START_TEST(test_sign_refuses_invalid_claims)
{
	char *repos[] = {"not-a-repo"};
	struct token_claims in = {
		.sub = "s",
		.exp = NOW,
		.repos = repos,
		.nrepos = 1,
		.ops = TOKEN_OP_FETCH,
	};
	struct gg_err err = GG_ERR_INIT;
	char *token = (char *)1;

	ck_assert_int_eq(token_sign(&token, &in, sk[0], &err), GG_EINVAL);
	ck_assert_ptr_null(token);
	ck_assert_str_eq(err.msg, "malformed: repos: repo 'not-a-repo' must "
				  "be OWNER/NAME");
}
END_TEST

START_TEST(test_claims_to_json)
{
	char *repos[] = {"acme/widget"};
	struct token_claims c = {
		.sub = "s",
		.jti = "j",
		.iat = 0,
		.has_iat = true,
		.exp = 60,
		.nbf = 30,
		.has_nbf = true,
		.repos = repos,
		.nrepos = 1,
		.ops = TOKEN_OP_FETCH | TOKEN_OP_PUSH,
	};
	char *json = token_claims_to_json(&c);

	ck_assert_str_eq(json, "{\n"
			       "  \"sub\": \"s\",\n"
			       "  \"jti\": \"j\",\n"
			       "  \"iat\": \"1970-01-01T00:00:00Z\",\n"
			       "  \"exp\": \"1970-01-01T00:01:00Z\",\n"
			       "  \"nbf\": \"1970-01-01T00:00:30Z\",\n"
			       "  \"repos\": [\n"
			       "    \"acme/widget\"\n"
			       "  ],\n"
			       "  \"ops\": [\n"
			       "    \"fetch\",\n"
			       "    \"push\"\n"
			       "  ],\n"
			       "  \"branches\": [],\n"
			       "  \"allow_force\": false,\n"
			       "  \"allow_delete\": false\n"
			       "}");
	free(json);
}
END_TEST

START_TEST(test_defaults_and_unknown_claims)
{
	char *token = sign_raw("{\"sub\":\"s\",\"jti\":\"j\",\"exp\":"
			       "\"2030-01-01T00:00:00.9+02:00\",\"repos\":[],"
			       "\"ops\":[],\"x-custom\":{\"deep\":[1,2]},"
			       "\"aud\":\"whatever\"}",
			       NULL, 0);
	struct token_claims *c;

	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, NULL, NULL),
		GG_OK);
	ck_assert(c->exp == 1893448800); /* 2029-12-31T22:00:00Z */
	ck_assert(!c->has_iat && !c->has_nbf);
	ck_assert(c->nrepos == 0 && c->nbranches == 0 && c->ops == 0);
	ck_assert(!c->allow_force && !c->allow_delete);
	token_claims_free(c);
	free(token);
}
END_TEST

/* ---- keys and signatures ---------------------------------------------- */

START_TEST(test_no_footer_tries_every_key)
{
	char *token = sign_raw(GOOD_PAYLOAD, "", 1);
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(verify_with(token, &both, NOW, &err), GG_OK);
	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_EBADSIG);
	ck_assert_str_eq(err.msg, "bad signature");
	free(token);
}
END_TEST

START_TEST(test_unknown_kid)
{
	char *token = sign_raw(GOOD_PAYLOAD, NULL, 1);
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_ENOKEY);
	ck_assert_str_eq(err.msg, "unknown key");
	gg_err_init(&err);
	ck_assert_int_eq(verify_with(token, NULL, NOW, &err), GG_ENOKEY);
	free(token);
}
END_TEST

/* Footer names key 0, signature is by key 1. */
START_TEST(test_kid_mismatch)
{
	char footer[128], *token;
	struct gg_err err = GG_ERR_INIT;

	snprintf(footer, sizeof(footer), "{\"kid\":\"%s\"}", keys[0].pid);
	token = sign_raw(GOOD_PAYLOAD, footer, 1);
	ck_assert_int_eq(verify_with(token, &both, NOW, &err), GG_EBADSIG);
	ck_assert_str_eq(err.msg, "bad signature");
	free(token);
}
END_TEST

START_TEST(test_no_keys)
{
	char *token = sign_raw(GOOD_PAYLOAD, "", 0);
	struct token_keyset none = {NULL, 0};
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(verify_with(token, &none, NOW, &err), GG_EBADSIG);
	free(token);
}
END_TEST

/* Garbage claims under a bad signature report the signature: no claim is
 * looked at before the signature checks out. */
START_TEST(test_signature_before_claims)
{
	char *token = sign_raw("{\"sub\":1}", NULL, 0);
	struct gg_err err = GG_ERR_INIT;
	struct token_key impostor = keys[1];
	struct token_keyset wrong = {&impostor, 1};

	/* right kid, wrong public key */
	memcpy(impostor.pid, keys[0].pid, sizeof(impostor.pid));
	ck_assert_int_eq(verify_with(token, &wrong, NOW, &err), GG_EBADSIG);
	ck_assert_str_eq(err.msg, "bad signature");
	free(token);
}
END_TEST

START_TEST(test_tampered_token_text)
{
	char *token = sign_raw(GOOD_PAYLOAD, NULL, 0);
	struct gg_err err;
	size_t i, len = strlen(token);
	char saved;
	int rc;

	/* change every character after the header to another alphabet
	 * character: must never verify */
	for (i = 10; i < len; i++) {
		if (token[i] == '.')
			continue;
		saved = token[i];
		token[i] = saved == 'A' ? 'B' : 'A';
		gg_err_init(&err);
		rc = verify_with(token, &first, NOW, &err);
		ck_assert_msg(rc != GG_OK, "accepted change at %zu", i);
		token[i] = saved;
	}
	ck_assert_int_eq(verify_with(token, &first, NOW, NULL), GG_OK);
	free(token);
}
END_TEST

/* ---- time and revocation ---------------------------------------------- */

START_TEST(test_expiry_boundary)
{
	char *token = sign_raw(GOOD_PAYLOAD, NULL, 0);
	struct gg_err err = GG_ERR_INIT;
	int64_t exp = NOW + 2800;

	ck_assert_int_eq(verify_with(token, &first, exp - 1, NULL), GG_OK);
	ck_assert_int_eq(verify_with(token, &first, exp, &err), GG_EEXPIRED);
	ck_assert_str_eq(err.msg, "expired");
	ck_assert_int_eq(verify_with(token, &first, exp + 1, NULL),
			 GG_EEXPIRED);
	free(token);
}
END_TEST

START_TEST(test_not_before)
{
	char *token = sign_raw("{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-"
			       "01T00:00:00Z\",\"nbf\":\"2023-11-14T22:13:20."
			       "5Z\",\"repos\":[],\"ops\":[]}",
			       NULL, 0);
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(verify_with(token, &first, NOW - 1, &err), GG_ENOTYET);
	ck_assert_str_eq(err.msg, "not yet valid");
	ck_assert_int_eq(verify_with(token, &first, NOW, NULL), GG_OK);
	free(token);
}
END_TEST

START_TEST(test_revoked)
{
	char *token = sign_raw(GOOD_PAYLOAD, NULL, 0);
	struct revocation_set *set;
	struct token_claims *c = NULL;
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(revocation_parse(&set, "other\nj-1\n", 10, NULL),
			 GG_OK);
	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, set, &err),
		GG_EREVOKED);
	ck_assert_str_eq(err.msg, "revoked");
	ck_assert_ptr_null(c);
	revocation_free(set);
	ck_assert_int_eq(revocation_parse(&set, "j-2\n", 4, NULL), GG_OK);
	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, set, NULL),
		GG_OK);
	token_claims_free(c);
	revocation_free(set);
	free(token);
}
END_TEST

/* A whole token pasted into the file revokes that token (its jti is
 * then not needed), and no other. */
START_TEST(test_revoked_as_whole_token)
{
	char *token = sign_raw(GOOD_PAYLOAD, NULL, 0);
	char *other = sign_raw(" " GOOD_PAYLOAD, NULL, 0); /* same claims */
	struct revocation_set *set;
	struct token_claims *c = NULL;
	struct gg_err err = GG_ERR_INIT;
	char line[GG_MAX_TOKEN_LEN + 32];

	snprintf(line, sizeof(line), "  %s # leaked\n", token);
	ck_assert_int_eq(revocation_parse(&set, line, strlen(line), NULL),
			 GG_OK);
	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, set, &err),
		GG_EREVOKED);
	ck_assert_str_eq(err.msg, "revoked");
	ck_assert_ptr_null(c);
	/* same jti, another token: not listed */
	ck_assert_int_eq(token_verify(&c, other, strlen(other), &first, NOW,
				      set, NULL),
			 GG_OK);
	token_claims_free(c);
	revocation_free(set);
	free(token);
	free(other);
}
END_TEST

/* ---- malformed payloads ----------------------------------------------- */

#define BASE                                                                   \
	"\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","        \
	"\"repos\":[\"a/b\"],\"ops\":[\"fetch\"]"

static const struct {
	const char *payload;
	const char *msg;
} bad_payload[] = {
	{"[]", "malformed: payload is not a JSON object"},
	{"\"str\"", "malformed: payload is not valid JSON: "},
	{"", "malformed: payload is not valid JSON: "},
	{"{" BASE, "malformed: payload is not valid JSON: "},
	{"{" BASE "} trailing", "malformed: payload is not valid JSON: "},
	{"{" BASE ",\"sub\":\"t\"}", "malformed: payload is not valid JSON: "},
	{"{" BASE ",\"x\":{\"a\":1,\"a\":2}}",
	 "malformed: payload is not valid JSON: "},
	{"{\"sub\":\"s\\u0000t\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:"
	 "00Z\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: payload is not valid JSON: "},
	{"{\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\",\"repos\":[],"
	 "\"ops\":[]}",
	 "malformed: missing claim 'sub'"},
	{"{\"sub\":\"s\",\"exp\":\"2030-01-01T00:00:00Z\",\"repos\":[],"
	 "\"ops\":[]}",
	 "malformed: missing claim 'jti'"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"repos\":[],\"ops\":[]}",
	 "malformed: missing claim 'exp'"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"ops\":[]}",
	 "malformed: missing claim 'repos'"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[]}",
	 "malformed: missing claim 'ops'"},
	{"{\"sub\":7,\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: claim 'sub' must be a string"},
	{"{\"sub\":\"\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: sub: sub must be 1-1024 bytes"},
	{"{\"sub\":\"a\\nb\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: sub: sub may not contain control characters"},
	{"{\"sub\":\"s\",\"jti\":null,\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: claim 'jti' must be a string"},
	{"{\"sub\":\"s\",\"jti\":\"a b\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: jti: jti must be printable ASCII without spaces"},
	{"{\"sub\":\"s\",\"jti\":\"#x\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: jti: jti may not start with '#'"},
	{"{\"sub\":\"s\",\"jti\":\"team#1\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: jti: jti may not contain '#', ',' or quotes"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":1893456000,"
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: claim 'exp' must be a string"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-02-30T00:00:00Z\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: claim 'exp': invalid RFC 3339 time: no such date"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"tomorrow\","
	 "\"repos\":[],\"ops\":[]}",
	 "malformed: claim 'exp': invalid RFC 3339 time: bad date"},
	{"{" BASE ",\"iat\":true}", "malformed: claim 'iat' must be a string"},
	{"{" BASE ",\"iat\":\"2030-01-01T24:00:00Z\"}",
	 "malformed: claim 'iat': invalid RFC 3339 time: no such time of "
	 "day"},
	{"{" BASE ",\"nbf\":[]}", "malformed: claim 'nbf' must be a string"},
	{"{" BASE ",\"nbf\":\"2030-01-01\"}",
	 "malformed: claim 'nbf': invalid RFC 3339 time: bad date/time "
	 "separator"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":\"a/b\",\"ops\":[]}",
	 "malformed: claim 'repos' must be an array"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[1],\"ops\":[]}",
	 "malformed: claim 'repos' must hold strings"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[\"a/b/c\"],\"ops\":[]}",
	 "malformed: repos: repo 'a/b/c' must be OWNER/NAME"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[\"a/..\"],\"ops\":[]}",
	 "malformed: repos: repo 'a/..': '.' and '..' are not names"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":\"fetch\"}",
	 "malformed: claim 'ops' must be an array"},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":[\"admin\"]}",
	 "malformed: ops: 'admin' is not \"fetch\" or \"push\""},
	{"{\"sub\":\"s\",\"jti\":\"j\",\"exp\":\"2030-01-01T00:00:00Z\","
	 "\"repos\":[],\"ops\":[true]}",
	 "malformed: claim 'ops' must hold strings"},
	{"{" BASE ",\"branches\":\"main\"}",
	 "malformed: claim 'branches' must be an array"},
	{"{" BASE ",\"branches\":[null]}",
	 "malformed: claim 'branches' must hold strings"},
	{"{" BASE ",\"branches\":[\"a//b\"]}",
	 "malformed: branches: pattern 'a//b': empty path segment"},
	{"{" BASE ",\"branches\":[\"../x\"]}",
	 "malformed: branches: pattern '../x': '..', '@{' and '@' are not "
	 "allowed in ref names"},
	{"{" BASE ",\"allow_force\":\"yes\"}",
	 "malformed: claim 'allow_force' must be true or false"},
	{"{" BASE ",\"allow_delete\":1}",
	 "malformed: claim 'allow_delete' must be true or false"},
};

START_TEST(test_malformed_payload)
{
	char *token = sign_raw(bad_payload[_i].payload, NULL, 0);
	struct token_claims *c = (struct token_claims *)1;
	struct gg_err err = GG_ERR_INIT;
	const char *want = bad_payload[_i].msg;

	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_EINVAL);
	ck_assert_msg(!strncmp(err.msg, want, strlen(want)),
		      "payload %s: got \"%s\"", bad_payload[_i].payload,
		      err.msg);
	/* decoding without a key reports the same problem */
	gg_err_init(&err);
	ck_assert_int_eq(
		token_decode_unverified(&c, token, strlen(token), &err),
		GG_EINVAL);
	ck_assert_ptr_null(c);
	ck_assert(!strncmp(err.msg, want, strlen(want)));
	free(token);
}
END_TEST

START_TEST(test_duplicate_key_message)
{
	char *token = sign_raw("{" BASE ",\"exp\":\"2031-01-01T00:00:00Z\"}",
			       NULL, 0);
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_EINVAL);
	ck_assert_msg(strstr(err.msg, "duplicate object key") != NULL, "%s",
		      err.msg);
	free(token);
}
END_TEST

START_TEST(test_too_many_items)
{
	char *payload = malloc(8192), *token;
	struct gg_err err = GG_ERR_INIT;
	size_t len;
	int i;

	len = (size_t)snprintf(payload, 8192, "{" BASE ",\"branches\":[");
	for (i = 0; i <= GG_MAX_CLAIM_ITEMS; i++)
		len += (size_t)snprintf(payload + len, 8192 - len, "%s\"b\"",
					i ? "," : "");
	snprintf(payload + len, 8192 - len, "]}");
	token = sign_raw(payload, NULL, 0);
	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "malformed: claim 'branches' has more than "
				  "256 entries");
	free(token);
	free(payload);
}
END_TEST

/* ---- allow_paths and emails ------------------------------------------- */

START_TEST(test_lists_parse)
{
	char *token =
		sign_raw("{" BASE ",\"allow_paths\":[\".github/"
			 "workflows/**\",\"CODEOWNERS\"],\"emails\":["
			 "\"bot@example.com\",\"Dev.One+x@Example.ORG\"]}",
			 NULL, 0);
	struct token_claims *c;

	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, NULL, NULL),
		GG_OK);
	ck_assert_uint_eq(c->nallow_paths, 2);
	ck_assert_str_eq(c->allow_paths[0], ".github/workflows/**");
	ck_assert_str_eq(c->allow_paths[1], "CODEOWNERS");
	ck_assert_uint_eq(c->nemails, 2);
	ck_assert_str_eq(c->emails[0], "bot@example.com");
	ck_assert_str_eq(c->emails[1], "Dev.One+x@Example.ORG");
	token_claims_free(c);
	free(token);
	/* absent: NULL and 0 */
	token = sign_raw("{" BASE "}", NULL, 0);
	ck_assert_int_eq(
		token_decode_unverified(&c, token, strlen(token), NULL), GG_OK);
	ck_assert_ptr_null(c->allow_paths);
	ck_assert_uint_eq(c->nallow_paths, 0);
	ck_assert_ptr_null(c->emails);
	ck_assert_uint_eq(c->nemails, 0);
	token_claims_free(c);
	free(token);
}
END_TEST

static const struct {
	const char *payload;
	const char *msg;
} bad_lists[] = {
	{"{" BASE ",\"allow_paths\":\"CODEOWNERS\"}",
	 "malformed: claim 'allow_paths' must be an array"},
	{"{" BASE ",\"allow_paths\":{}}",
	 "malformed: claim 'allow_paths' must be an array"},
	{"{" BASE ",\"allow_paths\":[\"a\",7]}",
	 "malformed: claim 'allow_paths' must hold strings"},
	{"{" BASE ",\"allow_paths\":[null]}",
	 "malformed: claim 'allow_paths' must hold strings"},
	{"{" BASE ",\"allow_paths\":[\"\"]}",
	 "malformed: allow_paths: invalid glob \"\": is empty"},
	{"{" BASE ",\"allow_paths\":[\"a//b\"]}",
	 "malformed: allow_paths: invalid glob \"a//b\": has an empty "
	 "segment"},
	{"{" BASE ",\"allow_paths\":[\"/etc/passwd\"]}",
	 "malformed: allow_paths: invalid glob \"/etc/passwd\": starts with "
	 "'/'"},
	{"{" BASE ",\"allow_paths\":[\"src/../x\"]}",
	 "malformed: allow_paths: invalid glob \"src/../x\": has a \".\" or "
	 "\"..\" segment"},
	{"{" BASE ",\"allow_paths\":[\"a**/b\"]}",
	 "malformed: allow_paths: invalid glob \"a**/b\": uses \"**\" inside "
	 "a segment (it must be a whole segment)"},
	{"{" BASE ",\"allow_paths\":[\"a\\tb\"]}",
	 "malformed: allow_paths: invalid glob \"a?b\": contains a control "
	 "character"},
	{"{" BASE ",\"allow_paths\":[]}",
	 "malformed: claim 'allow_paths' is empty (leave it out instead)"},
	{"{" BASE ",\"emails\":\"a@b\"}",
	 "malformed: claim 'emails' must be an array"},
	{"{" BASE ",\"emails\":[true]}",
	 "malformed: claim 'emails' must hold strings"},
	{"{" BASE ",\"emails\":[\"\"]}",
	 "malformed: emails: email must be 1-254 bytes"},
	{"{" BASE ",\"emails\":[\"alice\"]}",
	 "malformed: emails: email 'alice': needs exactly one '@' with "
	 "something on each side"},
	{"{" BASE ",\"emails\":[\"@example.com\"]}",
	 "malformed: emails: email '@example.com': needs exactly one '@' "
	 "with something on each side"},
	{"{" BASE ",\"emails\":[\"alice@\"]}",
	 "malformed: emails: email 'alice@': needs exactly one '@' with "
	 "something on each side"},
	{"{" BASE ",\"emails\":[\"a@evil.test@example.com\"]}",
	 "malformed: emails: email 'a@evil.test@example.com': needs exactly "
	 "one '@' with something on each side"},
	{"{" BASE ",\"emails\":[\"a b@example.com\"]}",
	 "malformed: emails: email 'a b@example.com': may not contain "
	 "spaces, control characters, '<' or '>'"},
	{"{" BASE ",\"emails\":[\"a\\nb@example.com\"]}",
	 "malformed: emails: email 'a?b@example.com': may not contain "
	 "spaces, control characters, '<' or '>'"},
	{"{" BASE ",\"emails\":[\"<a@example.com>\"]}",
	 "malformed: emails: email '<a@example.com>': may not contain "
	 "spaces, control characters, '<' or '>'"},
	{"{" BASE ",\"emails\":[]}",
	 "malformed: claim 'emails' is empty (leave it out instead)"},
};

/* Exact messages, with and without a key. */
START_TEST(test_malformed_lists)
{
	char *token = sign_raw(bad_lists[_i].payload, NULL, 0);
	struct token_claims *c = (struct token_claims *)1;
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, bad_lists[_i].msg);
	gg_err_init(&err);
	ck_assert_int_eq(
		token_decode_unverified(&c, token, strlen(token), &err),
		GG_EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(err.msg, bad_lists[_i].msg);
	free(token);
}
END_TEST

/* An email of exactly TOKEN_MAX_EMAIL_LEN bytes is fine, one more is not. */
START_TEST(test_email_length)
{
	char email[TOKEN_MAX_EMAIL_LEN + 2], payload[512], *token;
	struct gg_err err = GG_ERR_INIT;

	memset(email, 'a', sizeof(email) - 1);
	email[200] = '@';
	email[TOKEN_MAX_EMAIL_LEN] = '\0';
	ck_assert_int_eq(token_check_email(email, NULL), GG_OK);
	snprintf(payload, sizeof(payload), "{" BASE ",\"emails\":[\"%s\"]}",
		 email);
	token = sign_raw(payload, NULL, 0);
	ck_assert_int_eq(verify_with(token, &first, NOW, NULL), GG_OK);
	free(token);
	email[TOKEN_MAX_EMAIL_LEN] = 'a';
	email[TOKEN_MAX_EMAIL_LEN + 1] = '\0';
	ck_assert_int_eq(token_check_email(email, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "email must be 1-254 bytes");
	snprintf(payload, sizeof(payload), "{" BASE ",\"emails\":[\"%s\"]}",
		 email);
	token = sign_raw(payload, NULL, 0);
	gg_err_init(&err);
	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg,
			 "malformed: emails: email must be 1-254 bytes");
	free(token);
}
END_TEST

/* The cap of branches applies: GG_MAX_CLAIM_ITEMS entries pass, one more
 * is refused. _i: 0 = allow_paths, 1 = emails. */
START_TEST(test_lists_too_many)
{
	static const char *const name[] = {"allow_paths", "emails"};
	static const char *const item[] = {"p", "a@b"};
	char *payload = malloc(8192), *token, want[128];
	struct token_claims *c;
	struct gg_err err = GG_ERR_INIT;
	size_t len, base;
	int i;

	base = (size_t)snprintf(payload, 8192, "{" BASE ",\"%s\":[", name[_i]);
	len = base;
	for (i = 0; i < GG_MAX_CLAIM_ITEMS; i++)
		len += (size_t)snprintf(payload + len, 8192 - len, "%s\"%s\"",
					i ? "," : "", item[_i]);
	snprintf(payload + len, 8192 - len, "]}");
	token = sign_raw(payload, NULL, 0);
	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, NULL, NULL),
		GG_OK);
	ck_assert_uint_eq(_i ? c->nemails : c->nallow_paths,
			  GG_MAX_CLAIM_ITEMS);
	token_claims_free(c);
	free(token);
	len += (size_t)snprintf(payload + len, 8192 - len, ",\"%s\"]}",
				item[_i]);
	token = sign_raw(payload, NULL, 0);
	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_EINVAL);
	snprintf(want, sizeof(want),
		 "malformed: claim '%s' has more than 256 entries", name[_i]);
	ck_assert_str_eq(err.msg, want);
	free(token);
	free(payload);
}
END_TEST

/* mint -> verify keeps both lists, in order, after allow_delete in the
 * payload; claims_to_json (inspect) shows them the same way. */
START_TEST(test_lists_roundtrip)
{
	char *repos[] = {"a/b"};
	char *branches[] = {"agent/*"};
	char *paths[] = {".github/workflows/**", "CODEOWNERS"};
	char *emails[] = {"bot@example.com", "Dev@Example.org"};
	struct token_claims in = {
		.sub = "s",
		.jti = "fixed",
		.exp = NOW + 60,
		.repos = repos,
		.nrepos = 1,
		.ops = TOKEN_OP_PUSH,
		.branches = branches,
		.nbranches = 1,
		.allow_paths = paths,
		.nallow_paths = 2,
		.emails = emails,
		.nemails = 2,
	};
	static const char want[] =
		"{\"sub\":\"s\",\"jti\":\"fixed\",\"exp\":\"2023-11-14T22:"
		"14:20Z\",\"repos\":[\"a/b\"],\"ops\":[\"push\"],"
		"\"branches\":[\"agent/*\"],\"allow_force\":false,"
		"\"allow_delete\":false,\"allow_paths\":[\".github/"
		"workflows/**\",\"CODEOWNERS\"],\"emails\":[\"bot@example."
		"com\",\"Dev@Example.org\"]}";
	struct token_claims *c;
	struct paseto_msg msg;
	struct gg_err err = GG_ERR_INIT;
	char *token, *json;

	ck_assert_int_eq(token_sign(&token, &in, sk[0], &err), GG_OK);
	ck_assert_int_eq(
		paseto_v4_public_split(&msg, token, strlen(token), NULL),
		GG_OK);
	ck_assert_uint_eq(msg.mlen, strlen(want));
	ck_assert(!memcmp(msg.m, want, msg.mlen));
	paseto_msg_release(&msg);
	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, NULL, &err),
		GG_OK);
	ck_assert_uint_eq(c->nallow_paths, 2);
	ck_assert_str_eq(c->allow_paths[0], ".github/workflows/**");
	ck_assert_str_eq(c->allow_paths[1], "CODEOWNERS");
	ck_assert_uint_eq(c->nemails, 2);
	ck_assert_str_eq(c->emails[0], "bot@example.com");
	ck_assert_str_eq(c->emails[1], "Dev@Example.org");
	json = token_claims_to_json(c);
	ck_assert_ptr_nonnull(strstr(json, "  \"allow_delete\": false,\n"
					   "  \"allow_paths\": [\n"
					   "    \".github/workflows/**\",\n"
					   "    \"CODEOWNERS\"\n"
					   "  ],\n"
					   "  \"emails\": [\n"
					   "    \"bot@example.com\",\n"
					   "    \"Dev@Example.org\"\n"
					   "  ]\n"
					   "}"));
	free(json);
	token_claims_free(c);
	free(token);
}
END_TEST

/* token_sign parses its own payload back: a bad entry is never signed. */
START_TEST(test_sign_refuses_bad_lists)
{
	char *repos[] = {"a/b"};
	char *paths[] = {"ok/**", "/abs"};
	char *emails[] = {"nobody"};
	struct token_claims in = {
		.sub = "s",
		.exp = NOW,
		.repos = repos,
		.nrepos = 1,
		.ops = TOKEN_OP_PUSH,
		.allow_paths = paths,
		.nallow_paths = 2,
	};
	struct gg_err err = GG_ERR_INIT;
	char *token = (char *)1;

	ck_assert_int_eq(token_sign(&token, &in, sk[0], &err), GG_EINVAL);
	ck_assert_ptr_null(token);
	ck_assert_str_eq(err.msg, "malformed: allow_paths: invalid glob "
				  "\"/abs\": starts with '/'");
	in.nallow_paths = 1;
	in.emails = emails;
	in.nemails = 1;
	gg_err_init(&err);
	ck_assert_int_eq(token_sign(&token, &in, sk[0], &err), GG_EINVAL);
	ck_assert_ptr_null(token);
	ck_assert_str_eq(err.msg, "malformed: emails: email 'nobody': needs "
				  "exactly one '@' with something on each "
				  "side");
}
END_TEST

/* ---- cidr ------------------------------------------------------------- */

static struct cidr_addr client(const char *text)
{
	struct cidr_addr a;

	ck_assert_int_eq(cidr_addr_parse(&a, text, strlen(text), NULL), GG_OK);
	return a;
}

/* Parsed as written and as networks; the client check follows them. */
START_TEST(test_cidr_parse)
{
	char *token = sign_raw("{" BASE ",\"cidr\":[\"10.0.0.0/8\","
			       "\"2001:DB8::/32\",\"192.0.2.7\"]}",
			       NULL, 0);
	struct cidr_addr a;
	struct token_claims *c;

	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, NULL, NULL),
		GG_OK);
	ck_assert_uint_eq(c->ncidr, 3);
	ck_assert_str_eq(c->cidr[0], "10.0.0.0/8");
	ck_assert_str_eq(c->cidr[1], "2001:DB8::/32"); /* as written */
	ck_assert_str_eq(c->cidr[2], "192.0.2.7");
	ck_assert_ptr_nonnull(c->cidr_nets);
	a = client("10.200.0.1");
	ck_assert(token_claims_allow_client(c, &a));
	a = client("::ffff:10.200.0.1");
	ck_assert(token_claims_allow_client(c, &a));
	a = client("2001:db8:1::1");
	ck_assert(token_claims_allow_client(c, &a));
	a = client("192.0.2.7");
	ck_assert(token_claims_allow_client(c, &a));
	a = client("192.0.2.8");
	ck_assert(!token_claims_allow_client(c, &a));
	a = client("127.0.0.1");
	ck_assert(!token_claims_allow_client(c, &a));
	ck_assert(!token_claims_allow_client(c, NULL)); /* unknown: no */
	token_claims_free(c);
	free(token);
	/* absent: any client, even an unknown one */
	token = sign_raw("{" BASE "}", NULL, 0);
	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, NULL, NULL),
		GG_OK);
	ck_assert_uint_eq(c->ncidr, 0);
	ck_assert_ptr_null(c->cidr);
	ck_assert_ptr_null(c->cidr_nets);
	a = client("203.0.113.9");
	ck_assert(token_claims_allow_client(c, &a));
	ck_assert(token_claims_allow_client(c, NULL));
	token_claims_free(c);
	free(token);
}
END_TEST

static const struct {
	const char *payload;
	const char *msg;
} bad_cidr[] = {
	{"{" BASE ",\"cidr\":\"10.0.0.0/8\"}",
	 "malformed: claim 'cidr' must be an array"},
	{"{" BASE ",\"cidr\":{\"a\":\"10.0.0.0/8\"}}",
	 "malformed: claim 'cidr' must be an array"},
	{"{" BASE ",\"cidr\":[10]}",
	 "malformed: claim 'cidr' must hold strings"},
	{"{" BASE ",\"cidr\":[\"10.0.0.0/8\",null]}",
	 "malformed: claim 'cidr' must hold strings"},
	{"{" BASE ",\"cidr\":[]}",
	 "malformed: claim 'cidr' is empty (leave it out instead)"},
	{"{" BASE ",\"cidr\":[\"\"]}",
	 "malformed: cidr: cidr '': want ADDRESS/LENGTH (e.g. 10.0.0.0/8 "
	 "or 2001:db8::/32)"},
	{"{" BASE ",\"cidr\":[\"10.0.0.0/8\",\"10.0.0.0/33\"]}",
	 "malformed: cidr: cidr '10.0.0.0/33': prefix length must be a "
	 "number 0-32"},
	{"{" BASE ",\"cidr\":[\"any\"]}",
	 "malformed: cidr: cidr 'any': not an IPv4 or IPv6 address (want "
	 "ADDRESS/LENGTH, e.g. 10.0.0.0/8)"},
	{"{" BASE ",\"cidr\":[\"10.1.2.3/8\"]}",
	 "malformed: cidr: cidr '10.1.2.3/8': address has bits set after the "
	 "prefix (did you mean 10.0.0.0/8?)"},
	{"{" BASE ",\"cidr\":[\"2001:db8::1/32\"]}",
	 "malformed: cidr: cidr '2001:db8::1/32': address has bits set after "
	 "the prefix (did you mean 2001:db8::/32?)"},
	{"{" BASE ",\"cidr\":[\"10.0.0.1\\n/32\"]}",
	 "malformed: cidr: cidr '10.0.0.1?/32': not an IPv4 or IPv6 address "
	 "(want ADDRESS/LENGTH, e.g. 10.0.0.0/8)"},
};

/* Invalid, with the reason, whether verified or only decoded. */
START_TEST(test_malformed_cidr)
{
	char *token = sign_raw(bad_cidr[_i].payload, NULL, 0);
	struct token_claims *c = (struct token_claims *)1;
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, bad_cidr[_i].msg);
	gg_err_init(&err);
	ck_assert_int_eq(
		token_decode_unverified(&c, token, strlen(token), &err),
		GG_EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(err.msg, bad_cidr[_i].msg);
	free(token);
}
END_TEST

/* Signed after emails; inspect's JSON shows it last. */
START_TEST(test_cidr_roundtrip)
{
	char *repos[] = {"a/b"};
	char *cidr[] = {"10.0.0.5/32", "2001:db8::/48"};
	struct token_claims in = {
		.sub = "s",
		.jti = "fixed",
		.exp = NOW + 60,
		.repos = repos,
		.nrepos = 1,
		.ops = TOKEN_OP_FETCH,
		.cidr = cidr,
		.ncidr = 2,
	};
	static const char want[] =
		"{\"sub\":\"s\",\"jti\":\"fixed\",\"exp\":\"2023-11-14T22:"
		"14:20Z\",\"repos\":[\"a/b\"],\"ops\":[\"fetch\"],"
		"\"branches\":[],\"allow_force\":false,"
		"\"allow_delete\":false,\"cidr\":[\"10.0.0.5/32\","
		"\"2001:db8::/48\"]}";
	struct token_claims *c;
	struct paseto_msg msg;
	struct gg_err err = GG_ERR_INIT;
	char *token, *json;

	ck_assert_int_eq(token_sign(&token, &in, sk[0], &err), GG_OK);
	ck_assert_int_eq(
		paseto_v4_public_split(&msg, token, strlen(token), NULL),
		GG_OK);
	ck_assert_uint_eq(msg.mlen, strlen(want));
	ck_assert(!memcmp(msg.m, want, msg.mlen));
	paseto_msg_release(&msg);
	ck_assert_int_eq(
		token_verify(&c, token, strlen(token), &first, NOW, NULL, &err),
		GG_OK);
	ck_assert_uint_eq(c->ncidr, 2);
	json = token_claims_to_json(c);
	ck_assert_ptr_nonnull(strstr(json, "  \"allow_delete\": false,\n"
					   "  \"cidr\": [\n"
					   "    \"10.0.0.5/32\",\n"
					   "    \"2001:db8::/48\"\n"
					   "  ]\n"
					   "}"));
	free(json);
	token_claims_free(c);
	free(token);
	/* a bad entry is never signed */
	cidr[1] = "10.0.0.0/40";
	gg_err_init(&err);
	token = (char *)1;
	ck_assert_int_eq(token_sign(&token, &in, sk[0], &err), GG_EINVAL);
	ck_assert_ptr_null(token);
	ck_assert_str_eq(err.msg, "malformed: cidr: cidr '10.0.0.0/40': "
				  "prefix length must be a number 0-32");
}
END_TEST

START_TEST(test_check_cidr)
{
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(token_check_cidr("10.0.0.0/8", &err), GG_OK);
	ck_assert_int_eq(token_check_cidr("::1", &err), GG_OK);
	ck_assert_int_eq(token_check_cidr("10.0.0.0/8 ", &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "cidr '10.0.0.0/8 ': prefix length must be "
				  "a number 0-32");
}
END_TEST

/* ---- malformed framing and footers ------------------------------------ */

static const struct {
	const char *footer;
	const char *msg;
} bad_footer[] = {
	{"kid", "malformed: footer is not valid JSON: "},
	{"[\"kid\"]", "malformed: footer is not a JSON object"},
	{"{}", "malformed: footer needs a string \"kid\""},
	{"{\"kid\":7}", "malformed: footer needs a string \"kid\""},
	{"{\"kid\":\"a\",\"kid\":\"b\"}", "malformed: footer is not valid "
					  "JSON: "},
	{"{\"kid\":\"k4.pid.nope\"}", "unknown key"},
};

START_TEST(test_malformed_footer)
{
	char *token = sign_raw(GOOD_PAYLOAD, bad_footer[_i].footer, 0);
	struct token_claims *c;
	struct gg_err err = GG_ERR_INIT;
	const char *want = bad_footer[_i].msg;

	ck_assert_int_ne(verify_with(token, &both, NOW, &err), GG_OK);
	ck_assert_msg(!strncmp(err.msg, want, strlen(want)), "%s: %s",
		      bad_footer[_i].footer, err.msg);
	gg_err_init(&err);
	if (!strncmp(want, "malformed", 9)) {
		ck_assert_int_eq(
			token_decode_unverified(&c, token, strlen(token), &err),
			GG_EINVAL);
	} else {
		ck_assert_int_eq(
			token_decode_unverified(&c, token, strlen(token), &err),
			GG_OK);
		token_claims_free(c);
	}
	free(token);
}
END_TEST

START_TEST(test_oversize_token)
{
	char *big = malloc(GG_MAX_TOKEN_LEN + 2), *payload, *token;
	struct gg_err err = GG_ERR_INIT;
	size_t plen;

	/* a correctly signed token just over the limit */
	plen = GG_MAX_TOKEN_LEN * 3 / 4;
	payload = malloc(plen + 64);
	snprintf(payload, plen + 64, "{" BASE ",\"pad\":\"%0*d\"}",
		 (int)(plen - strlen(BASE) - 12), 0);
	token = sign_raw(payload, NULL, 0);
	ck_assert_uint_gt(strlen(token), GG_MAX_TOKEN_LEN);
	ck_assert_int_eq(verify_with(token, &first, NOW, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "malformed: token longer than 8192 bytes");
	memset(big, 'A', GG_MAX_TOKEN_LEN + 1);
	memcpy(big, "v4.public.", 10);
	big[GG_MAX_TOKEN_LEN + 1] = '\0';
	gg_err_init(&err);
	ck_assert_int_eq(verify_with(big, &first, NOW, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "malformed: token longer than 8192 bytes");
	free(token);
	free(payload);
	free(big);
}
END_TEST

static const struct {
	const char *token;
	const char *msg;
} bad_framing[] = {
	{"v4.local.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQAr68PS4AXe7If_"
	 "ZgesdkUMvSwscFlAl1pk5HC0e8kApeaqMfGo_7OpBnwJOAbY9V7WU6abu74MmcUE8YW"
	 "AiaArVI8XJ5hOb_4v9RmDkneN0S92dx0OW4pgy7omxgf3S8c3LlQg",
	 "malformed: v4.local token, want v4.public"},
	{"v3.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIn0",
	 "malformed: v3.public token, want v4.public"},
	{"v2.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIn0",
	 "malformed: v2.public token, want v4.public"},
	{"v2.local.AAAA", "malformed: v2.local token, want v4.public"},
	{"bearer v4.public.AAAA", "malformed: not a v4.public token"},
	{"v4.public.AAAA", "malformed: token too short for a signature"},
	{"v4.public.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!AAAAAAAAAAAA"
	 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	 "malformed: payload is not canonical base64url"},
	{"", "malformed: not a v4.public token"},
};

START_TEST(test_malformed_framing)
{
	struct token_claims *c;
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(verify_with(bad_framing[_i].token, &both, NOW, &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, bad_framing[_i].msg);
	gg_err_init(&err);
	ck_assert_int_eq(token_decode_unverified(&c, bad_framing[_i].token,
						 strlen(bad_framing[_i].token),
						 &err),
			 GG_EINVAL);
	ck_assert_str_eq(err.msg, bad_framing[_i].msg);
}
END_TEST

START_TEST(test_decode_unverified)
{
	char *token = sign_raw(GOOD_PAYLOAD, NULL, 1);
	struct token_claims *c;

	/* no key needed, expiry not checked */
	ck_assert_int_eq(
		token_decode_unverified(&c, token, strlen(token), NULL), GG_OK);
	ck_assert_str_eq(c->jti, "j-1");
	token_claims_free(c);
	free(token);
	token_claims_free(NULL);
}
END_TEST

/* ---- validators ------------------------------------------------------- */

static const char *const good_repos[] = {
	"acme/widget",	"A-b_c.d/x.y-z_1",  "o/n",
	"acme/.github", "acme/widget.gitx",
};
static const char *const bad_repos[] = {
	"",
	"acme",
	"/widget",
	"acme/",
	"acme/widget/x",
	"ac me/w",
	"acme/wid?t",
	"../widget",
	"acme/..",
	"acme/a..b",
	"./w",
	"acme/.",
	"acme/w.git",
	"acme/W.GIT",
	"acme//w",
	"acme/w\n",
	"acm\xc3\xa9/w",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"a"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/w",
};

START_TEST(test_check_repo)
{
	size_t i;

	for (i = 0; i < sizeof(good_repos) / sizeof(good_repos[0]); i++)
		ck_assert_msg(token_check_repo(good_repos[i], NULL) == GG_OK,
			      "refused %s", good_repos[i]);
	for (i = 0; i < sizeof(bad_repos) / sizeof(bad_repos[0]); i++)
		ck_assert_msg(token_check_repo(bad_repos[i], NULL) == GG_EINVAL,
			      "accepted %s", bad_repos[i]);
}
END_TEST

static const char *const good_patterns[] = {
	"main",		"agent/*",	 "agent/**",  "**", "feature/*/wip",
	"refs/tags/v*", "refs/heads/**", "a-b_c.d/e", "*",  "*-fix",
	"caf\xc3\xa9",
};
static const char *const bad_patterns[] = {
	"",	"/main",  "main/",	"a//b",	 "a/../b", "..",   ".hidden",
	"a/.b", "x.lock", "a/x.lock/b", "a b",	 "a~b",	   "a^b",  "a:b",
	"a?b",	"a[b",	  "a\\b",	"a@{b",	 "@",	   "a\tb", "a\x7f",
	"a.",	"ag**",	  "**x/y",	"a/***",
};

START_TEST(test_check_pattern)
{
	char big[GG_MAX_PATTERN_LEN + 2];
	size_t i;

	for (i = 0; i < sizeof(good_patterns) / sizeof(good_patterns[0]); i++)
		ck_assert_msg(token_check_pattern(good_patterns[i], NULL) ==
				      GG_OK,
			      "refused %s", good_patterns[i]);
	for (i = 0; i < sizeof(bad_patterns) / sizeof(bad_patterns[0]); i++)
		ck_assert_msg(token_check_pattern(bad_patterns[i], NULL) ==
				      GG_EINVAL,
			      "accepted %s", bad_patterns[i]);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(token_check_pattern(big, NULL), GG_EINVAL);
	big[sizeof(big) - 2] = '\0';
	ck_assert_int_eq(token_check_pattern(big, NULL), GG_OK);
}
END_TEST

START_TEST(test_check_email)
{
	static const char *const good[] = {
		"a@b",
		"alice@example.com",
		"Dev.One+tag@Example.ORG",
		"x/y@host",
		"caf\xc3\xa9@example.com",
		"*@example.com",
	};
	static const char *const bad[] = {
		"",	   "alice",   "@b",    "a@",	  "a@b@c",
		"@",	   "a b@c",   "a@b c", " a@b",	  "a@b\n",
		"a\x7f@b", "a\x1b@b", "<a@b>", "A <a@b>",
	};
	struct gg_err err = GG_ERR_INIT;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(token_check_email(good[i], NULL) == GG_OK,
			      "refused %s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(token_check_email(bad[i], NULL) == GG_EINVAL,
			      "accepted %s", bad[i]);
	ck_assert_int_eq(token_check_email("a\tb@c", &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "email 'a?b@c': may not contain spaces, "
				  "control characters, '<' or '>'");
}
END_TEST

START_TEST(test_check_allow_path)
{
	struct gg_err err = GG_ERR_INIT;

	ck_assert_int_eq(token_check_allow_path("CODEOWNERS", NULL), GG_OK);
	ck_assert_int_eq(token_check_allow_path("**/*.lock", NULL), GG_OK);
	ck_assert_int_eq(token_check_allow_path(".github/workflows/**", NULL),
			 GG_OK);
	ck_assert_int_eq(token_check_allow_path("a b/c:d", NULL), GG_OK);
	ck_assert_int_eq(token_check_allow_path("", NULL), GG_EINVAL);
	ck_assert_int_eq(token_check_allow_path("a/", NULL), GG_EINVAL);
	ck_assert_int_eq(token_check_allow_path("./a", NULL), GG_EINVAL);
	ck_assert_int_eq(token_check_allow_path("a/**b", &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "invalid glob \"a/**b\": uses \"**\" inside "
				  "a segment (it must be a whole segment)");
}
END_TEST

START_TEST(test_check_sub)
{
	ck_assert_int_eq(token_check_sub("user@host", NULL), GG_OK);
	ck_assert_int_eq(token_check_sub("sandbox 42 \xc3\xa9", NULL), GG_OK);
	ck_assert_int_eq(token_check_sub("", NULL), GG_EINVAL);
	ck_assert_int_eq(token_check_sub("a\rb", NULL), GG_EINVAL);
	ck_assert_int_eq(token_check_sub("a\x1b[31m", NULL), GG_EINVAL);
}
END_TEST

static Suite *token_suite(void)
{
	Suite *s = suite_create("token");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_verify_good);
	tcase_add_test(tc, test_sign_roundtrip);
	tcase_add_test(tc, test_jti_shape);
	tcase_add_test(tc, test_sign_exact_payload);
	tcase_add_test(tc, test_sign_refuses_invalid_claims);
	tcase_add_test(tc, test_claims_to_json);
	tcase_add_test(tc, test_defaults_and_unknown_claims);
	tcase_add_test(tc, test_no_footer_tries_every_key);
	tcase_add_test(tc, test_unknown_kid);
	tcase_add_test(tc, test_kid_mismatch);
	tcase_add_test(tc, test_no_keys);
	tcase_add_test(tc, test_signature_before_claims);
	tcase_add_test(tc, test_tampered_token_text);
	tcase_add_test(tc, test_expiry_boundary);
	tcase_add_test(tc, test_not_before);
	tcase_add_test(tc, test_revoked);
	tcase_add_test(tc, test_revoked_as_whole_token);
	tcase_add_loop_test(tc, test_malformed_payload, 0,
			    sizeof(bad_payload) / sizeof(bad_payload[0]));
	tcase_add_test(tc, test_duplicate_key_message);
	tcase_add_test(tc, test_too_many_items);
	tcase_add_test(tc, test_lists_parse);
	tcase_add_loop_test(tc, test_malformed_lists, 0,
			    sizeof(bad_lists) / sizeof(bad_lists[0]));
	tcase_add_test(tc, test_email_length);
	tcase_add_loop_test(tc, test_lists_too_many, 0, 2);
	tcase_add_test(tc, test_lists_roundtrip);
	tcase_add_test(tc, test_sign_refuses_bad_lists);
	tcase_add_test(tc, test_cidr_parse);
	tcase_add_loop_test(tc, test_malformed_cidr, 0,
			    (int)(sizeof(bad_cidr) / sizeof(bad_cidr[0])));
	tcase_add_test(tc, test_cidr_roundtrip);
	tcase_add_test(tc, test_check_cidr);
	tcase_add_loop_test(tc, test_malformed_footer, 0,
			    sizeof(bad_footer) / sizeof(bad_footer[0]));
	tcase_add_test(tc, test_oversize_token);
	tcase_add_loop_test(tc, test_malformed_framing, 0,
			    sizeof(bad_framing) / sizeof(bad_framing[0]));
	tcase_add_test(tc, test_decode_unverified);
	tcase_add_test(tc, test_check_repo);
	tcase_add_test(tc, test_check_pattern);
	tcase_add_test(tc, test_check_email);
	tcase_add_test(tc, test_check_allow_path);
	tcase_add_test(tc, test_check_sub);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return vectors_main(token_suite());
}

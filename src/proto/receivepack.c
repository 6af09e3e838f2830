/*
 * receivepack.c - receive-pack request parser and re-serializer (see
 * receivepack.h). A small state machine over pkt-lines; one static
 * function per kind of line, each validating fully before it stores.
 */
#include "gitgate/proto/receivepack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/array.h"
#include "gitgate/proto/pktline.h"

const char rp_zero_oid[RP_OID_HEXSZ + 1] =
	"0000000000000000000000000000000000000000";

enum rp_state {
	ST_START,   /* shallow lines or the first command or a lone flush */
	ST_COMMAND, /* further commands until flush */
	ST_OPTIONS, /* push options until flush */
	ST_DONE
};

#define RP_SHALLOW_PREFIX "shallow "

void rp_request_init(struct rp_request *req)
{
	memset(req, 0, sizeof(*req));
}

void rp_request_release(struct rp_request *req)
{
	size_t i;

	for (i = 0; i < req->ncommands; i++)
		free(req->commands[i].refname);
	for (i = 0; i < req->npush_options; i++)
		free(req->push_options[i]);
	free(req->commands);
	free(req->push_options);
	free(req->shallow);
	free(req->caps.agent);
	free(req->caps.session_id);
	free(req->caps.raw);
	rp_request_init(req);
}

void rp_parser_init(struct rp_parser *p)
{
	rp_request_init(&p->req);
	p->state = ST_START;
	p->failed = 0;
	p->pkt = NULL;
	p->have = 0;
	p->need = 4;
}

void rp_parser_release(struct rp_parser *p)
{
	rp_request_release(&p->req);
	free(p->pkt);
	rp_parser_init(p);
}

void rp_parser_detach(struct rp_request *out, struct rp_parser *p)
{
	*out = p->req;
	rp_request_init(&p->req);
}

/* ---- small helpers ---- */

static bool is_lower_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool has_ctl(const unsigned char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* Make room for element n of the array at arr; *out is the (possibly
 * moved) array, which the caller stores back whatever this returns. */
static int reserve(void **out, void *arr, size_t n, size_t sz, size_t max,
		   const char *what, struct gg_err *err)
{
	int rc;

	*out = arr;
	rc = array_grow(out, n, sz, max);
	if (rc == GG_ELIMIT)
		return gg_err_set(err, rc, "too many %s in push (maximum %zu)",
				  what, max);
	if (rc != GG_OK)
		return gg_err_set(err, rc, "out of memory");
	return GG_OK;
}

/*
 * Check one 40-hex object id at s[0..len). Distinguishes the ways a
 * client can get it wrong so the message says which.
 */
static int check_oid(const unsigned char *s, size_t len, const char *which,
		     struct gg_err *err)
{
	size_t k = 0;

	while (k < len && k < RP_OID_HEXSZ && is_lower_hex(s[k]))
		k++;
	if (k < RP_OID_HEXSZ && (k == len || s[k] == ' '))
		return gg_err_set(err, GG_EINVAL,
				  "bad push command: %s "
				  "object id is too short",
				  which);
	if (k < RP_OID_HEXSZ)
		return gg_err_set(err, GG_EINVAL,
				  "bad push command: %s "
				  "object id is not lowercase hex",
				  which);
	if (k < len && is_lower_hex(s[k])) {
		size_t n = k;

		while (n < len && is_lower_hex(s[n]))
			n++;
		/* 64 hex digits is a SHA-256 id: say what is really wrong. */
		if (n == 64 && (n == len || s[n] == ' '))
			return gg_err_set(err, GG_EINVAL,
					  "sha256 repositories are not "
					  "supported yet");
		return gg_err_set(err, GG_EINVAL,
				  "bad push command: %s "
				  "object id is too long",
				  which);
	}
	return 0;
}

/* ---- ref names ---- */

static int ref_bad(const char *name, size_t len, const char *why,
		   struct gg_err *err)
{
	char shown[96];

	gg_err_sanitize(shown, sizeof(shown), name, len);
	return gg_err_set(err, GG_EINVAL, "invalid ref name \"%s\": %s", shown,
			  why);
}

static const char *ref_char_rule(unsigned char c)
{
	if (c < 0x20 || c == 0x7f)
		return "contains a control character";
	if (c == ' ')
		return "contains a space";
	if (c && strchr("~^:?*[\\", c))
		return "contains one of ~^:?*[\\";
	return NULL;
}

/* Rules on one '/'-separated component s[0..n). */
static const char *ref_component_rule(const char *s, size_t n)
{
	if (n == 0)
		return "contains \"//\"";
	if (s[0] == '.')
		return "a component starts with '.'";
	if (n >= 5 && memcmp(s + n - 5, ".lock", 5) == 0)
		return "a component ends with \".lock\"";
	return NULL;
}

int rp_refname_check(const char *name, size_t len, struct gg_err *err)
{
	const char *why = NULL;
	size_t i, start;

	if (len > GG_MAX_REFNAME)
		return gg_err_set(err, GG_ELIMIT,
				  "ref name of %zu bytes "
				  "exceeds maximum %d",
				  len, GG_MAX_REFNAME);
	if (len < 5 || memcmp(name, "refs/", 5) != 0)
		return ref_bad(name, len, "does not start with refs/", err);
	if (name[len - 1] == '/')
		return ref_bad(name, len, "ends with '/'", err);
	if (name[len - 1] == '.')
		return ref_bad(name, len, "ends with '.'", err);
	for (i = 0; i < len && !why; i++) {
		why = ref_char_rule((unsigned char)name[i]);
		if (!why && i + 1 < len && name[i] == '.' && name[i + 1] == '.')
			why = "contains \"..\"";
		if (!why && i + 1 < len && name[i] == '@' && name[i + 1] == '{')
			why = "contains \"@{\"";
	}
	for (start = 0, i = 0; i <= len && !why; i++) {
		if (i < len && name[i] != '/')
			continue;
		why = ref_component_rule(name + start, i - start);
		start = i + 1;
	}
	return why ? ref_bad(name, len, why, err) : 0;
}

/* ---- capabilities ---- */

/* A capability the way receive-pack reads one (git's
 * parse_feature_request): the word alone, or followed by '=' and any
 * value ("side-band-64k=1" asks for side-band-64k). gitgate must read the
 * client's list exactly as upstream will, or it would expect a reply in a
 * format upstream does not send, or apply an atomic push in part. */
static bool tok_is(const char *t, size_t n, const char *word)
{
	size_t k = strlen(word);

	return n >= k && memcmp(t, word, k) == 0 && (n == k || t[k] == '=');
}

static bool tok_value(const char *t, size_t n, const char *key,
		      const char **val, size_t *vlen)
{
	size_t k = strlen(key);

	if (n < k || memcmp(t, key, k) != 0)
		return false;
	*val = t + k;
	*vlen = n - k;
	return true;
}

static int cap_object_format(const char *v, size_t n, struct gg_err *err)
{
	char shown[64];

	if (n == 4 && memcmp(v, "sha1", 4) == 0)
		return 0;
	if (n == 6 && memcmp(v, "sha256", 6) == 0)
		return gg_err_set(err, GG_EINVAL,
				  "sha256 repositories are "
				  "not supported yet");
	gg_err_sanitize(shown, sizeof(shown), v, n);
	return gg_err_set(err, GG_EINVAL, "unsupported object-format \"%s\"",
			  shown);
}

static int cap_string(char **dst, const char *v, size_t n, struct gg_err *err)
{
	free(*dst);
	*dst = pkt_dup_bytes(v, n);
	return *dst ? 0 : gg_err_set(err, GG_ENOMEM, "out of memory");
}

/* Apply one capability token t[0..n); unknown ones stay only in raw. */
static int cap_apply(struct rp_caps *c, const char *t, size_t n,
		     struct gg_err *err)
{
	const char *v;
	size_t vn;

	if (tok_is(t, n, "report-status"))
		c->report_status = true;
	else if (tok_is(t, n, "report-status-v2"))
		c->report_status_v2 = true;
	else if (tok_is(t, n, "side-band-64k"))
		c->side_band_64k = true;
	/* Plain "side-band" is not receive-pack's: it answers without one. */
	else if (tok_is(t, n, "quiet"))
		c->quiet = true;
	else if (tok_is(t, n, "atomic"))
		c->atomic = true;
	else if (tok_is(t, n, "push-options"))
		c->push_options = true;
	else if (tok_is(t, n, "ofs-delta"))
		c->ofs_delta = true;
	else if (tok_value(t, n, "object-format=", &v, &vn))
		return cap_object_format(v, vn, err);
	else if (tok_value(t, n, "agent=", &v, &vn))
		return cap_string(&c->agent, v, vn, err);
	else if (tok_value(t, n, "session-id=", &v, &vn))
		return cap_string(&c->session_id, v, vn, err);
	return 0;
}

static int caps_parse(struct rp_caps *c, const unsigned char *s, size_t len,
		      struct gg_err *err)
{
	const char *t = (const char *)s;
	size_t i, start;
	int rc;

	if (len > GG_MAX_PUSH_CAPS)
		return gg_err_set(err, GG_ELIMIT,
				  "capability list of %zu "
				  "bytes exceeds maximum %d",
				  len, GG_MAX_PUSH_CAPS);
	if (has_ctl(s, len))
		return gg_err_set(err, GG_EINVAL,
				  "capability list contains "
				  "a control character");
	c->raw = pkt_dup_bytes(s, len);
	if (!c->raw)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	for (start = 0, i = 0; i <= len; i++) {
		if (i < len && t[i] != ' ')
			continue;
		if (i > start) {
			rc = cap_apply(c, t + start, i - start, err);
			if (rc < 0)
				return rc;
		}
		start = i + 1;
	}
	return 0;
}

/* ---- lines ---- */

/* Parse "old SP new SP refname" in s[0..len) and append it. */
static int add_command(struct rp_request *req, const unsigned char *s,
		       size_t len, struct gg_err *err)
{
	const size_t ref_at = 2 * RP_OID_HEXSZ + 2;
	struct rp_command *cmd;
	void *na;
	int rc;

	rc = check_oid(s, len, "old", err);
	if (rc < 0)
		return rc;
	if (len == RP_OID_HEXSZ || s[RP_OID_HEXSZ] != ' ')
		return gg_err_set(err, GG_EINVAL,
				  "bad push command: missing "
				  "space after old object id");
	rc = check_oid(s + RP_OID_HEXSZ + 1, len - RP_OID_HEXSZ - 1, "new",
		       err);
	if (rc < 0)
		return rc;
	if (len < ref_at || s[ref_at - 1] != ' ')
		return gg_err_set(err, GG_EINVAL,
				  "bad push command: missing "
				  "space after new object id");
	rc = rp_refname_check((const char *)s + ref_at, len - ref_at, err);
	if (rc < 0)
		return rc;
	rc = reserve(&na, req->commands, req->ncommands, sizeof(*cmd),
		     GG_MAX_PUSH_COMMANDS, "commands", err);
	req->commands = na;
	if (rc < 0)
		return rc;
	cmd = &req->commands[req->ncommands];
	cmd->refname = pkt_dup_bytes(s + ref_at, len - ref_at);
	if (!cmd->refname)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	memcpy(cmd->old_oid, s, RP_OID_HEXSZ);
	cmd->old_oid[RP_OID_HEXSZ] = '\0';
	memcpy(cmd->new_oid, s + RP_OID_HEXSZ + 1, RP_OID_HEXSZ);
	cmd->new_oid[RP_OID_HEXSZ] = '\0';
	req->ncommands++;
	return 0;
}

static int add_shallow(struct rp_request *req, const unsigned char *s,
		       size_t len, struct gg_err *err)
{
	const size_t pre = sizeof(RP_SHALLOW_PREFIX) - 1;
	void *na;
	int rc;

	if (len != pre + RP_OID_HEXSZ)
		return gg_err_set(err, GG_EINVAL,
				  "bad shallow line: expected "
				  "\"shallow\" and a 40-hex object id");
	rc = check_oid(s + pre, RP_OID_HEXSZ, "shallow", err);
	if (rc < 0)
		return rc;
	rc = reserve(&na, req->shallow, req->nshallow, sizeof(*req->shallow),
		     GG_MAX_PUSH_COMMANDS, "shallow lines", err);
	req->shallow = na;
	if (rc < 0)
		return rc;
	memcpy(req->shallow[req->nshallow], s + pre, RP_OID_HEXSZ);
	req->shallow[req->nshallow][RP_OID_HEXSZ] = '\0';
	req->nshallow++;
	return 0;
}

static int add_push_option(struct rp_request *req, const unsigned char *s,
			   size_t len, struct gg_err *err)
{
	char *opt;
	void *na;
	int rc;

	if (memchr(s, '\0', len) || has_ctl(s, len))
		return gg_err_set(err, GG_EINVAL,
				  "push option contains a "
				  "control character");
	rc = reserve(&na, req->push_options, req->npush_options,
		     sizeof(*req->push_options), GG_MAX_PUSH_OPTIONS,
		     "push options", err);
	req->push_options = na;
	if (rc < 0)
		return rc;
	opt = pkt_dup_bytes(s, len);
	if (!opt)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	req->push_options[req->npush_options++] = opt;
	return 0;
}

static bool starts_with(const unsigned char *s, size_t len, const char *pre)
{
	size_t n = strlen(pre);

	return len >= n && memcmp(s, pre, n) == 0;
}

/* First non-shallow line: a command with the capability list after NUL. */
static int first_command(struct rp_parser *p, const unsigned char *s,
			 size_t len, struct gg_err *err)
{
	const unsigned char *nul = memchr(s, '\0', len);
	size_t clen = nul ? (size_t)(nul - s) : len;
	int rc;

	if (starts_with(s, len, "push-cert"))
		return gg_err_set(err, GG_EINVAL,
				  "signed pushes (push-cert) "
				  "are not supported");
	if (!nul)
		return gg_err_set(err, GG_EINVAL,
				  "bad push command: no "
				  "capability list on the first command");
	rc = add_command(&p->req, s, clen, err);
	if (rc < 0)
		return rc;
	rc = caps_parse(&p->req.caps, nul + 1, len - clen - 1, err);
	if (rc < 0)
		return rc;
	p->state = ST_COMMAND;
	return 0;
}

static int cmp_refname(const void *a, const void *b)
{
	const struct rp_command *const *x = a, *const *y = b;

	return strcmp((*x)->refname, (*y)->refname);
}

/* git refuses two updates of one ref; the report merge relies on it. */
static int check_duplicates(const struct rp_request *req, struct gg_err *err)
{
	const struct rp_command **v;
	char shown[96];
	size_t i;
	int rc = 0;

	if (req->ncommands < 2)
		return 0;
	v = calloc(req->ncommands, sizeof(*v));
	if (!v)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	for (i = 0; i < req->ncommands; i++)
		v[i] = &req->commands[i];
	qsort(v, req->ncommands, sizeof(*v), cmp_refname);
	for (i = 1; i < req->ncommands && rc == 0; i++) {
		if (strcmp(v[i - 1]->refname, v[i]->refname) != 0)
			continue;
		gg_err_sanitize(shown, sizeof(shown), v[i]->refname,
				strlen(v[i]->refname));
		rc = gg_err_set(err, GG_EINVAL,
				"ref updated twice in one "
				"push: %s",
				shown);
	}
	free(v);
	return rc;
}

static int end_of_commands(struct rp_parser *p, struct gg_err *err)
{
	int rc = check_duplicates(&p->req, err);

	if (rc < 0)
		return rc;
	p->state = p->req.caps.push_options ? ST_OPTIONS : ST_DONE;
	return 0;
}

static int on_data(struct rp_parser *p, const unsigned char *s, size_t len,
		   struct gg_err *err)
{
	/* git chomps one trailing LF on every line of this section */
	if (len > 0 && s[len - 1] == '\n')
		len--;
	switch (p->state) {
	case ST_START:
		if (starts_with(s, len, RP_SHALLOW_PREFIX))
			return add_shallow(&p->req, s, len, err);
		return first_command(p, s, len, err);
	case ST_COMMAND:
		if (starts_with(s, len, RP_SHALLOW_PREFIX))
			return gg_err_set(err, GG_EINVAL,
					  "shallow lines must "
					  "come before the push commands");
		if (memchr(s, '\0', len))
			return gg_err_set(err, GG_EINVAL,
					  "bad push command: "
					  "capabilities are only allowed on "
					  "the first command");
		return add_command(&p->req, s, len, err);
	default:
		return add_push_option(&p->req, s, len, err);
	}
}

static int on_packet(struct rp_parser *p, const struct pkt *pkt,
		     struct gg_err *err)
{
	if (pkt->type == PKT_DATA)
		return on_data(p, pkt->data, pkt->len, err);
	if (pkt->type != PKT_FLUSH)
		return gg_err_set(err, GG_EINVAL,
				  "unexpected delim or "
				  "response-end packet in push request");
	if (p->state == ST_COMMAND)
		return end_of_commands(p, err);
	/* ST_START: the "0000" probe, or shallow lines and no commands;
	 * ST_OPTIONS: end of push options. */
	p->state = ST_DONE;
	return 0;
}

/* ---- incremental feeding ---- */

static int account(struct rp_parser *p, size_t n, struct gg_err *err)
{
	if (n > GG_MAX_PUSH_HEADER - p->req.header_len)
		return gg_err_set(err, GG_ELIMIT,
				  "push command section "
				  "exceeds maximum of %d bytes",
				  GG_MAX_PUSH_HEADER);
	p->req.header_len += n;
	return 0;
}

/* Handle one complete packet starting at b; *used = its size. */
static int take_packet(struct rp_parser *p, size_t *used,
		       const unsigned char *b, size_t len, struct gg_err *err)
{
	struct pkt pkt;
	int rc;

	rc = pkt_read(&pkt, used, b, len, 0, err);
	if (rc < 0)
		return rc;
	rc = account(p, *used, err);
	if (rc < 0)
		return rc;
	return on_packet(p, &pkt, err);
}

/* Append to the partial packet until it is complete or data runs out.
 * Returns 0 (complete or not), or an error. */
static int stash(struct rp_parser *p, const unsigned char *d, size_t len,
		 size_t *used, struct gg_err *err)
{
	struct pkt pkt;
	size_t take, need;
	int rc;

	if (!p->pkt) {
		p->pkt = malloc(GG_MAX_PKT_LEN);
		if (!p->pkt)
			return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	*used = 0;
	for (;;) {
		take = p->need - p->have;
		if (take > len - *used)
			take = len - *used;
		memcpy(p->pkt + p->have, d + *used, take);
		p->have += take;
		*used += take;
		if (p->have < p->need)
			return 0;
		rc = pkt_read(&pkt, &need, p->pkt, p->have, 0, err);
		if (rc != GG_EAGAIN)
			return rc < 0 ? rc : 0;
		p->need = need; /* header known now: wait for the body */
	}
}

static int fail(struct rp_parser *p, int rc)
{
	p->failed = rc;
	return rc;
}

static int feed_stashed(struct rp_parser *p, const unsigned char *d, size_t len,
			size_t *used, struct gg_err *err)
{
	size_t n;
	int rc;

	rc = stash(p, d, len, used, err);
	if (rc < 0 || p->have < p->need)
		return rc;
	rc = take_packet(p, &n, p->pkt, p->have, err);
	p->have = 0;
	p->need = 4;
	return rc;
}

int rp_parser_feed(struct rp_parser *p, size_t *out_used, const void *data,
		   size_t len, struct gg_err *err)
{
	const unsigned char *d = data;
	size_t used = 0, n;
	int rc;

	*out_used = 0;
	if (p->failed)
		return gg_err_set(err, p->failed,
				  "push request already "
				  "failed to parse");
	while (p->state != ST_DONE && used < len) {
		if (p->have > 0) {
			rc = feed_stashed(p, d + used, len - used, &n, err);
		} else {
			rc = take_packet(p, &n, d + used, len - used, err);
			if (rc == GG_EAGAIN)
				rc = feed_stashed(p, d + used, len - used, &n,
						  err);
		}
		if (rc < 0)
			return fail(p, rc);
		used += n;
	}
	*out_used = used;
	return p->state == ST_DONE ? 0 : GG_EAGAIN;
}

int rp_parser_finish(struct rp_parser *p, struct gg_err *err)
{
	if (p->failed)
		return gg_err_set(err, p->failed,
				  "push request already "
				  "failed to parse");
	if (p->state == ST_DONE)
		return 0;
	if (p->have > 0)
		return fail(p, gg_err_set(err, GG_EINVAL,
					  "truncated push "
					  "request: partial pkt-line at end"));
	if (p->state == ST_START && p->req.header_len == 0)
		return fail(p,
			    gg_err_set(err, GG_EINVAL, "empty push request"));
	if (p->state == ST_OPTIONS)
		return fail(p, gg_err_set(err, GG_EINVAL,
					  "truncated push "
					  "request: no flush after push "
					  "options"));
	return fail(p, gg_err_set(err, GG_EINVAL,
				  "truncated push request: "
				  "no flush after the command list"));
}

int rp_parse(struct rp_request *out, const void *buf, size_t len,
	     struct gg_err *err)
{
	struct rp_parser p;
	size_t used;
	int rc;

	rp_parser_init(&p);
	rc = rp_parser_feed(&p, &used, buf, len, err);
	if (rc == GG_EAGAIN)
		rc = rp_parser_finish(&p, err);
	if (rc == 0)
		rp_parser_detach(out, &p);
	rp_parser_release(&p);
	return rc;
}

/* ---- classification and re-serialization ---- */

enum rp_kind rp_command_kind(const struct rp_command *cmd)
{
	if (strcmp(cmd->new_oid, rp_zero_oid) == 0)
		return RP_DELETE;
	if (strcmp(cmd->old_oid, rp_zero_oid) == 0)
		return RP_CREATE;
	return RP_UPDATE;
}

bool rp_pack_expected(const struct rp_request *req, const bool *keep)
{
	size_t i;

	for (i = 0; i < req->ncommands; i++)
		if ((!keep || keep[i]) &&
		    rp_command_kind(&req->commands[i]) != RP_DELETE)
			return true;
	return false;
}

/* Does the space-separated list caps hold word? Read token by token with
 * tok_is, as the parser reads a client's list, so the two cannot differ. */
static bool caps_have(const char *caps, const char *word)
{
	size_t n;

	for (; *caps; caps += n + (caps[n] == ' ')) {
		n = strcspn(caps, " ");
		if (tok_is(caps, n, word))
			return true;
	}
	return false;
}

static int write_command(struct pkt_buf *out, const struct rp_command *c,
			 const char *caps, struct gg_err *err)
{
	if (caps)
		return pkt_writef(out, err, "%s %s %s%c%s", c->old_oid,
				  c->new_oid, c->refname, '\0', caps);
	return pkt_writef(out, err, "%s %s %s", c->old_oid, c->new_oid,
			  c->refname);
}

static int write_options(struct pkt_buf *out, const struct rp_request *req,
			 struct gg_err *err)
{
	size_t i;
	int rc;

	for (i = 0; i < req->npush_options; i++) {
		rc = pkt_writef(out, err, "%s", req->push_options[i]);
		if (rc < 0)
			return rc;
	}
	return pkt_write_flush(out, err);
}

int rp_serialize(struct pkt_buf *out, const struct rp_request *req,
		 const bool *keep, const char *caps, struct gg_err *err)
{
	const char *first_caps;
	size_t i;
	int rc = 0;

	if (!caps)
		caps = req->caps.raw ? req->caps.raw : "";
	if (strlen(caps) > GG_MAX_PUSH_CAPS)
		return gg_err_set(err, GG_ELIMIT, "capability list too long");
	for (i = 0; i < req->nshallow && rc == 0; i++)
		/* git's send-pack ends shallow lines with LF (commands and
		 * push options without); receive-pack accepts both */
		rc = pkt_writef(out, err, "shallow %s\n", req->shallow[i]);
	first_caps = caps;
	for (i = 0; i < req->ncommands && rc == 0; i++) {
		if (keep && !keep[i])
			continue;
		rc = write_command(out, &req->commands[i], first_caps, err);
		first_caps = NULL;
	}
	if (rc < 0)
		return rc;
	if (first_caps)
		return gg_err_set(err, GG_EINVAL,
				  "no push commands to forward");
	rc = pkt_write_flush(out, err);
	if (rc == 0 && caps_have(caps, "push-options"))
		rc = write_options(out, req, err);
	return rc;
}

/* ---- ref advertisement ---- */

/* Packets before the first ref line: the service line, its flush, and
 * protocol v1's "version 1". A few more are tolerated. */
#define RP_ADVERT_MAX_PKTS 8

/* Is the capability token t[0..n) one gitgate must not advertise? Signed
 * pushes it refuses; push options it refuses too (see push.c). */
static bool advert_cap_dropped(const char *t, size_t n)
{
	return tok_is(t, n, "push-cert") || tok_is(t, n, "push-options");
}

/* The first ref line's payload p[0..n) (no LF) with push-cert dropped from
 * the capabilities after its NUL, as one packet, plus its LF if it had
 * one. */
static int advert_write_caps(struct pkt_buf *out, bool *sha256,
			     const unsigned char *p, size_t n, bool lf,
			     struct gg_err *err)
{
	const unsigned char *nul = memchr(p, '\0', n);
	unsigned char line[GG_MAX_PKT_DATA];
	size_t pos = (size_t)(nul - p) + 1, len = pos, t;

	memcpy(line, p, pos);
	while (pos < n) {
		t = pos; /* tokens end at a space (or a stray LF: git sends
			  * none there, and passing one on as a token would
			  * read back differently) */
		while (t < n && p[t] != ' ' && p[t] != '\n')
			t++;
		if (t - pos == 20 &&
		    !memcmp(p + pos, "object-format=sha256", 20))
			*sha256 = true;
		if (t > pos && !advert_cap_dropped((const char *)p + pos,
						   t - pos)) {
			if (len > (size_t)(nul - p) + 1)
				line[len++] = ' ';
			memcpy(line + len, p + pos, t - pos);
			len += t - pos;
		}
		pos = t + 1;
	}
	if (lf)
		line[len++] = '\n';
	return pkt_write(out, line, len, err);
}

int rp_advert_rewrite(struct pkt_buf *out, size_t *consumed, bool *sha256,
		      const void *buf, size_t len, struct gg_err *err)
{
	const unsigned char *b = buf;
	struct pkt pkt;
	size_t off = 0, used, n;
	int i, ret;

	*consumed = 0;
	*sha256 = false;
	for (i = 0; i < RP_ADVERT_MAX_PKTS; i++) {
		ret = pkt_read(&pkt, &used, b + off, len - off, 0, err);
		if (ret)
			return ret; /* GG_EAGAIN: wait for more */
		if (i == 0 && (pkt.type != PKT_DATA || pkt.len < 10 ||
			       memcmp(pkt.data, "# service=", 10)))
			return gg_err_set(err, GG_EINVAL,
					  "not a ref advertisement");
		if (pkt.type == PKT_DATA && memchr(pkt.data, '\0', pkt.len)) {
			n = pkt.len;
			ret = pkt_buf_add(out, b, off, err);
			if (ret == GG_OK)
				ret = advert_write_caps(out, sha256, pkt.data,
						n - (pkt.data[n - 1] == '\n'),
						pkt.data[n - 1] == '\n', err);
			if (ret == GG_OK)
				*consumed = off + used;
			return ret;
		}
		off += used;
	}
	return gg_err_set(err, GG_EINVAL, "no capabilities in the first %d "
			  "packets", RP_ADVERT_MAX_PKTS);
}

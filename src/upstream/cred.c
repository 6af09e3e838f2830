/*
 * cred.c - the upstream credential: a static secret, or GitHub App
 * installation tokens minted, cached and refreshed (see cred.h).
 */
#include "gitgate/upstream/cred.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/upstream/ghapi.h"
#include "gitgate/upstream/ghjwt.h"

/* Permission sets, as bits: contents:read is the empty set. */
#define PERM_WRITE 1u
#define PERM_WORKFLOWS 2u

/* A token, cached (in_cache) and/or leased (refs counts both). */
struct cred_lease {
	struct cred *owner;
	struct cred_lease *next; /* in owner->toks */
	uint64_t inst;
	char *repo;
	unsigned perms;
	char *secret;          /* sodium_malloc'd */
	int64_t reuse_until_ms; /* monotonic: a clock step cannot extend it */
	int64_t minted_ms;     /* monotonic; INT64_MIN: static */
	unsigned refs;
	bool pinned;           /* the static secret: never freed by leases */
};

/* Where OWNER/NAME's App installation is, or that it is missing. */
struct inst {
	struct inst *next;
	char *repo;
	uint64_t id;       /* 0: not installed (msg says so) */
	int64_t until_ms;  /* monotonic */
	char msg[GG_ERR_MSG_MAX];
};

/* One API round in progress for (repo, perms); others wait for it. */
struct flight {
	struct flight *next;
	char *repo;
	unsigned perms;
	bool done;
	unsigned waiters;
	int ret;
	int64_t retry_after;
	char msg[GG_ERR_MSG_MAX];
	struct cred_lease *tok; /* on success; one ref per taker */
};

struct cred {
	struct cred_lease *fixed; /* static source; NULL for an App */
	/* App */
	char *app_id;
	char *api_url;
	char *ca_file, *ca_dir;
	struct ghjwt_key *key;
	long timeout_s;
	pthread_mutex_t lock;
	pthread_cond_t flight_done;
	struct cred_lease *toks;
	size_t ntoks;
	struct inst *insts;
	size_t ninsts;
	struct flight *flights;
	int64_t clock_offset; /* GitHub's clock minus ours, seconds */
	struct cred_stats stats;
	/* Why the last API call could not authenticate the App at all
	 * (unreachable, JWT refused), "" after any call GitHub answered
	 * with success: what /readyz reports. Under lock. */
	char fault[GG_ERR_MSG_MAX];
	int64_t fault_ms; /* when fault was set (timeutil_mono_ms) */
};

/* ---- tokens -------------------------------------------------------- */

static void tok_destroy(struct cred_lease *t)
{
	if (t->secret)
		sodium_free(t->secret); /* wipes */
	free(t->repo);
	free(t);
}

/* Drop one reference; the caller holds the lock (or owns t alone). */
static void tok_unref(struct cred_lease *t)
{
	if (--t->refs == 0)
		tok_destroy(t);
}

static struct cred_lease *tok_new(const char *secret, size_t len)
{
	struct cred_lease *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->secret = sodium_malloc(len + 1);
	if (!t->secret) {
		free(t);
		return NULL;
	}
	memcpy(t->secret, secret, len);
	t->secret[len] = '\0';
	t->refs = 1;
	return t;
}

/* Unlink *link from the cache and drop the cache's reference. */
static void tok_uncache(struct cred *c, struct cred_lease **link)
{
	struct cred_lease *t = *link;

	*link = t->next;
	t->next = NULL;
	c->ntoks--;
	tok_unref(t);
}

/* The cached token for (inst, repo, perms) still worth reusing; expired
 * ones met on the way are dropped. */
static struct cred_lease *tok_find(struct cred *c, uint64_t inst,
				   const char *repo, unsigned perms,
				   int64_t now_ms)
{
	struct cred_lease **link = &c->toks, *t;

	while ((t = *link)) {
		if (t->reuse_until_ms <= now_ms) {
			tok_uncache(c, link);
			continue;
		}
		if (t->inst == inst && t->perms == perms &&
		    !strcmp(t->repo, repo))
			return t;
		link = &t->next;
	}
	return NULL;
}

/* Cache t (taking a reference), making room first: the list is kept
 * newest first, so the oldest is at its end. */
static void tok_cache(struct cred *c, struct cred_lease *t)
{
	struct cred_lease **link;

	if (c->ntoks >= GG_MAX_CRED_ENTRIES) {
		for (link = &c->toks; (*link)->next; link = &(*link)->next)
			;
		tok_uncache(c, link);
	}
	t->next = c->toks;
	c->toks = t;
	c->ntoks++;
	t->refs++;
}

/* ---- installations ------------------------------------------------- */

/* Unlink *link from the installation cache and free it. */
static void inst_drop(struct cred *c, struct inst **link)
{
	struct inst *i = *link;

	*link = i->next;
	free(i->repo);
	free(i);
	c->ninsts--;
}

static struct inst *inst_find(struct cred *c, const char *repo,
			      int64_t now_ms)
{
	struct inst **link = &c->insts, *i;

	while ((i = *link)) {
		if (i->until_ms <= now_ms) {
			inst_drop(c, link);
			continue;
		}
		if (!strcmp(i->repo, repo))
			return i;
		link = &i->next;
	}
	return NULL;
}

static void inst_forget(struct cred *c, const char *repo)
{
	struct inst **link = &c->insts, *i;

	while ((i = *link)) {
		if (!strcmp(i->repo, repo)) {
			inst_drop(c, link);
			return;
		}
		link = &i->next;
	}
}

/* Remember repo's installation (id 0: missing, with msg). Out of memory
 * only costs a later lookup. */
static void inst_cache(struct cred *c, const char *repo, uint64_t id,
		       const char *msg)
{
	int64_t ttl = id ? GG_APP_INSTALL_TTL_S : GG_APP_INSTALL_MISS_TTL_S;
	struct inst *i, **link;

	inst_forget(c, repo);
	if (c->ninsts >= GG_MAX_CRED_ENTRIES) {
		for (link = &c->insts; (*link)->next; link = &(*link)->next)
			;
		inst_drop(c, link);
	}
	i = calloc(1, sizeof(*i));
	if (!i || !(i->repo = strdup(repo))) {
		free(i);
		return;
	}
	i->id = id;
	i->until_ms = timeutil_mono_ms() + ttl * 1000;
	snprintf(i->msg, sizeof(i->msg), "%s", msg ? msg : "");
	i->next = c->insts;
	c->insts = i;
	c->ninsts++;
}

/* ---- talking to GitHub --------------------------------------------- */

static void perms_text(char *buf, size_t bufsz, unsigned perms)
{
	snprintf(buf, bufsz, "%s%s",
		 perms & PERM_WRITE ? "contents:write" : "contents:read",
		 perms & PERM_WORKFLOWS ? ", workflows:write" : "");
}

static int64_t offset_now(struct cred *c)
{
	int64_t off;

	pthread_mutex_lock(&c->lock);
	off = c->clock_offset;
	pthread_mutex_unlock(&c->lock);
	return timeutil_now() + off;
}

static int call_once(struct cred *c, struct ghapi_reply *reply,
		     const char *method, const char *url, const char *body,
		     struct gg_err *err)
{
	struct ghapi_call call = {
		.method = method,
		.url = url,
		.body = body,
		.ca_file = c->ca_file,
		.ca_dir = c->ca_dir,
		.connect_timeout_s = GG_APP_API_CONNECT_S,
		.timeout_s = c->timeout_s,
	};
	char *jwt = NULL;
	int ret;

	ret = ghjwt_sign(&jwt, c->key, c->app_id, offset_now(c), err);
	if (ret)
		return ret;
	call.jwt = jwt;
	ret = ghapi_do(reply, &call, err);
	ghjwt_free(jwt);
	return ret;
}

/* Remember whether the App can authenticate at all: a repository it is
 * not installed on is that repository's problem, not the instance's. */
static void note_fault(struct cred *c, int ret, const struct ghapi_reply *r,
		       const struct gg_err *err)
{
	(void)err; /* it names the repository: not for /readyz */
	pthread_mutex_lock(&c->lock);
	if (ret)
		snprintf(c->fault, sizeof(c->fault),
			 "GitHub API %s unreachable or its answer unreadable",
			 c->api_url);
	else if (r->status == 401)
		snprintf(c->fault, sizeof(c->fault),
			 "GitHub refused the App JWT (HTTP 401)");
	else if (r->status >= 200 && r->status < 300)
		c->fault[0] = '\0';
	if (ret || r->status == 401)
		c->fault_ms = timeutil_mono_ms();
	pthread_mutex_unlock(&c->lock);
}

/* The call with a fresh JWT. A 401 may be our clock: GitHub's Date says
 * by how much, and the call is made once more with that offset (kept for
 * every later JWT). Any answer is GG_OK; judge reply->status. */
static int api_call(struct cred *c, struct ghapi_reply *reply,
		    const char *method, const char *path, const char *body,
		    struct gg_err *err)
{
	char url[GG_MAX_URL_LEN];
	int64_t off;
	int ret;

	snprintf(url, sizeof(url), "%s%s", c->api_url, path);
	ret = call_once(c, reply, method, url, body, err);
	if (ret || reply->status != 401 || reply->date == 0) {
		note_fault(c, ret, reply, err);
		return ret;
	}
	off = reply->date - timeutil_now();
	pthread_mutex_lock(&c->lock);
	c->clock_offset = off;
	pthread_mutex_unlock(&c->lock);
	log_warnx("github_app: GitHub refused the JWT; its clock is %+" PRId64
		  " s from ours: retrying with that offset",
		  off);
	ghapi_reply_release(reply);
	ret = call_once(c, reply, method, url, body, err);
	note_fault(c, ret, reply, err);
	return ret;
}

/* A rate-limit answer (403/429 with X-RateLimit-Remaining: 0 or
 * Retry-After): GG_ERATELIMIT with *retry_after, else GG_OK. */
static int rate_limited(const struct ghapi_reply *r, struct cred *c,
			int64_t *retry_after, struct gg_err *err)
{
	int64_t wait;

	if (r->status != 403 && r->status != 429)
		return GG_OK;
	if (r->retry_after >= 0)
		wait = r->retry_after;
	else if (r->ratelimit_remaining == 0 && r->ratelimit_reset > 0)
		wait = r->ratelimit_reset - offset_now(c);
	else if (r->ratelimit_remaining == 0 || r->status == 429)
		wait = 60;
	else
		return GG_OK;
	if (wait < 1)
		wait = 1;
	if (wait > 3600)
		wait = 3600;
	*retry_after = wait;
	return gg_err_set(err, GG_ERATELIMIT,
			  "GitHub API rate limit reached: retry in %" PRId64
			  " s",
			  wait);
}

/* An answer that is neither what was asked nor a known refusal. */
static int other_failure(struct cred *c, const struct ghapi_reply *r,
			 const char *what, int64_t *retry_after,
			 struct gg_err *err)
{
	char msg[160];

	if (rate_limited(r, c, retry_after, err))
		return GG_ERATELIMIT;
	if (r->status == 401)
		return gg_err_set(err, GG_EUPSTREAM,
				  "GitHub refused the App JWT (HTTP 401): check "
				  "app_id %s, private_key_file and the system "
				  "clock",
				  c->app_id);
	ghapi_message(msg, sizeof(msg), r);
	return gg_err_set(err, GG_EUPSTREAM,
			  "GitHub API answered HTTP %ld to %s%s%s", r->status,
			  what, msg[0] ? ": " : "", msg);
}

static int not_installed(struct cred *c, const char *repo, struct gg_err *err)
{
	size_t owner = strcspn(repo, "/");

	return gg_err_set(err, GG_EUPSTREAM,
			  "GitHub App %s is not installed for %.*s: install "
			  "it on that account or organisation",
			  c->app_id, (int)owner, repo);
}

/* repo's installation id, from the cache or GitHub. */
static int installation(struct cred *c, const char *repo, uint64_t *id,
			int64_t *retry_after, struct gg_err *err)
{
	struct ghapi_reply r = { 0 };
	char path[GG_MAX_URL_LEN];
	struct inst *i;
	json_t *root = NULL, *v;
	int ret;

	pthread_mutex_lock(&c->lock);
	i = inst_find(c, repo, timeutil_mono_ms());
	ret = !i ? GG_ENOTFOUND : i->id ? GG_OK : GG_EUPSTREAM;
	if (ret == GG_OK)
		*id = i->id;
	else if (ret == GG_EUPSTREAM)
		gg_err_set(err, GG_EUPSTREAM, "%s", i->msg);
	pthread_mutex_unlock(&c->lock);
	if (ret != GG_ENOTFOUND)
		return ret;
	snprintf(path, sizeof(path), "/repos/%s/installation", repo);
	pthread_mutex_lock(&c->lock);
	c->stats.installation_calls++;
	pthread_mutex_unlock(&c->lock);
	ret = api_call(c, &r, "GET", path, NULL, err);
	if (ret)
		goto out;
	if (r.status == 404) {
		ret = not_installed(c, repo, err);
		pthread_mutex_lock(&c->lock);
		inst_cache(c, repo, 0, err->msg);
		pthread_mutex_unlock(&c->lock);
		goto out;
	}
	if (r.status != 200) {
		ret = other_failure(c, &r, "its installation lookup",
				    retry_after, err);
		goto out;
	}
	root = json_loadb(r.body, r.len, 0, NULL);
	v = root ? json_object_get(root, "id") : NULL;
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		ret = gg_err_set(err, GG_EUPSTREAM,
				 "GitHub API: installation of %s has no id",
				 repo);
		goto out;
	}
	*id = (uint64_t)json_integer_value(v);
	pthread_mutex_lock(&c->lock);
	inst_cache(c, repo, *id, NULL);
	pthread_mutex_unlock(&c->lock);
out:
	json_decref(root);
	ghapi_reply_release(&r);
	return ret;
}

/* {"repositories":["NAME"],"permissions":{...}} */
static char *token_request(const char *repo, unsigned perms)
{
	const char *name = strchr(repo, '/');
	json_t *req, *p;
	char *text;

	p = json_pack("{s:s, s:s}", "contents",
		      perms & PERM_WRITE ? "write" : "read", "metadata",
		      "read");
	if (p && (perms & PERM_WORKFLOWS))
		json_object_set_new(p, "workflows", json_string("write"));
	req = p ? json_pack("{s:[s], s:o}", "repositories",
			    name ? name + 1 : repo, "permissions", p)
		: NULL;
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	return text;
}

/* A token GitHub may hand out: printable, no spaces, bounded, any length
 * (the newer formats are not 40 characters). */
static bool token_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > GG_MAX_APP_TOKEN_LEN)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

/* The token of a 201 answer, and how long to reuse it. */
static int parse_token(struct cred_lease **out, const struct ghapi_reply *r,
		       int64_t gh_now, struct gg_err *err)
{
	json_t *root = json_loadb(r->body, r->len, 0, NULL);
	json_t *tok = root ? json_object_get(root, "token") : NULL;
	json_t *exp = root ? json_object_get(root, "expires_at") : NULL;
	int64_t expires = 0, life, margin;
	struct cred_lease *t;
	int ret = GG_OK;

	if (!json_is_string(tok) ||
	    !token_ok(json_string_value(tok), json_string_length(tok)))
		ret = gg_err_set(err, GG_EUPSTREAM,
				 "GitHub API: access_tokens answer has no "
				 "usable token");
	else if (!json_is_string(exp) ||
		 timeutil_parse_rfc3339(&expires, json_string_value(exp),
					json_string_length(exp), NULL) != 0)
		ret = gg_err_set(err, GG_EUPSTREAM,
				 "GitHub API: access_tokens answer has no "
				 "valid expires_at");
	else if (!(t = tok_new(json_string_value(tok),
			       json_string_length(tok))))
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
	else {
		/* Lifetime on GitHub's clock, reuse on ours. */
		life = expires - (r->date ? r->date : gh_now);
		margin = life / 2 < GG_APP_TOKEN_MARGIN_S ? life / 2
							  : GG_APP_TOKEN_MARGIN_S;
		t->minted_ms = timeutil_mono_ms();
		t->reuse_until_ms = t->minted_ms + (life - margin) * 1000;
		*out = t;
	}
	/* jansson's copy of the token, wiped before it is freed (the
	 * parser's scratch buffer is not reachable: see README). */
	if (json_is_string(tok))
		sodium_memzero((char *)json_string_value(tok),
			       json_string_length(tok));
	json_decref(root);
	return ret;
}

/* A new installation token for (repo, perms): one or two API calls. */
static int mint(struct cred *c, const char *repo, unsigned perms,
		struct cred_lease **out, int64_t *retry_after,
		struct gg_err *err)
{
	struct ghapi_reply r = { 0 };
	char path[96], what[64], msg[160];
	char *body = NULL;
	uint64_t id = 0;
	int ret;

	*out = NULL;
	ret = installation(c, repo, &id, retry_after, err);
	if (ret)
		return ret;
	body = token_request(repo, perms);
	if (!body)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "/app/installations/%" PRIu64
		 "/access_tokens", id);
	pthread_mutex_lock(&c->lock);
	c->stats.token_calls++;
	pthread_mutex_unlock(&c->lock);
	ret = api_call(c, &r, "POST", path, body, err);
	if (ret)
		goto out;
	perms_text(what, sizeof(what), perms);
	if (r.status == 201 || r.status == 200) {
		ret = parse_token(out, &r, offset_now(c), err);
	} else if (r.status == 422 || r.status == 403) {
		if (rate_limited(&r, c, retry_after, err)) {
			ret = GG_ERATELIMIT;
			goto out;
		}
		ghapi_message(msg, sizeof(msg), &r);
		ret = gg_err_set(err, GG_EUPSTREAM,
				 "GitHub App cannot access %s with %s: %s; "
				 "grant the installation this repository and "
				 "permission",
				 repo, what, msg[0] ? msg : "refused");
	} else if (r.status == 404) {
		/* uninstalled since its id was cached */
		pthread_mutex_lock(&c->lock);
		inst_forget(c, repo);
		pthread_mutex_unlock(&c->lock);
		ret = not_installed(c, repo, err);
	} else {
		ret = other_failure(c, &r, "the token request", retry_after,
				    err);
	}
	if (*out) {
		(*out)->inst = id;
		(*out)->perms = perms;
		(*out)->owner = c;
		if (!((*out)->repo = strdup(repo))) {
			tok_destroy(*out);
			*out = NULL;
			ret = gg_err_set(err, GG_ENOMEM, "out of memory");
		}
	}
out:
	ghapi_reply_release(&r);
	free(body);
	return ret;
}

/* ---- single-flight ------------------------------------------------- */

static struct flight *flight_find(struct cred *c, const char *repo,
				  unsigned perms)
{
	struct flight *f;

	for (f = c->flights; f; f = f->next)
		if (f->perms == perms && !strcmp(f->repo, repo))
			return f;
	return NULL;
}

static void flight_free(struct flight *f)
{
	free(f->repo);
	free(f);
}

/* Take a finished flight's outcome (lock held). */
static int flight_take(struct flight *f, struct cred_lease **out,
		       int64_t *retry_after, struct gg_err *err)
{
	if (f->ret == GG_OK) {
		f->tok->refs++;
		*out = f->tok;
		return GG_OK;
	}
	*retry_after = f->retry_after;
	return gg_err_set(err, f->ret, "%s", f->msg);
}

/* Wait for f, started by another request (lock held). */
static int flight_wait(struct cred *c, struct flight *f,
		       struct cred_lease **out, int64_t *retry_after,
		       struct gg_err *err)
{
	int ret;

	f->waiters++;
	c->stats.waits++;
	while (!f->done)
		pthread_cond_wait(&c->flight_done, &c->lock);
	ret = flight_take(f, out, retry_after, err);
	if (--f->waiters == 0) {
		if (f->tok)
			tok_unref(f->tok);
		flight_free(f);
	}
	return ret;
}

/* Lead a flight: mint, cache, wake the waiters (called unlocked). */
static int flight_lead(struct cred *c, struct flight *f,
		       struct cred_lease **out, int64_t *retry_after,
		       struct gg_err *err)
{
	struct flight **link;
	struct cred_lease *t = NULL;
	int ret;

	ret = mint(c, f->repo, f->perms, &t, &f->retry_after, err);
	pthread_mutex_lock(&c->lock);
	for (link = &c->flights; *link != f; link = &(*link)->next)
		;
	*link = f->next;
	f->done = true;
	f->ret = ret;
	snprintf(f->msg, sizeof(f->msg), "%s", err->msg);
	*retry_after = f->retry_after;
	if (t) {
		tok_cache(c, t);
		*out = t; /* the reference tok_new gave */
		if (f->waiters) {
			t->refs++; /* the flight's, dropped by its last waiter */
			f->tok = t;
		}
	}
	pthread_cond_broadcast(&c->flight_done);
	if (f->waiters == 0)
		flight_free(f);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int app_get(struct cred *c, const char *repo, unsigned perms,
		   struct cred_lease **out, int64_t *retry_after,
		   struct gg_err *err)
{
	struct cred_lease *t = NULL;
	struct flight *f;
	struct inst *i;

	pthread_mutex_lock(&c->lock);
	i = inst_find(c, repo, timeutil_mono_ms());
	if (i && i->id)
		t = tok_find(c, i->id, repo, perms, timeutil_mono_ms());
	if (t) {
		t->refs++;
		c->stats.cache_hits++;
		pthread_mutex_unlock(&c->lock);
		*out = t;
		return GG_OK;
	}
	f = flight_find(c, repo, perms);
	if (f) {
		int ret = flight_wait(c, f, out, retry_after, err);

		pthread_mutex_unlock(&c->lock);
		return ret;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->repo = strdup(repo))) {
		free(f);
		pthread_mutex_unlock(&c->lock);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	f->perms = perms;
	f->next = c->flights;
	c->flights = f;
	pthread_mutex_unlock(&c->lock);
	return flight_lead(c, f, out, retry_after, err);
}

/* ---- the interface ------------------------------------------------- */

int cred_get(struct cred *c, const struct cred_want *want,
	     struct cred_lease **out, int64_t *retry_after_s,
	     struct gg_err *err)
{
	unsigned perms = 0;
	int64_t retry = 0;
	int ret;

	*out = NULL;
	if (c->fixed) {
		*out = c->fixed;
		return GG_OK;
	}
	if (want->access == CRED_WRITE) {
		perms |= PERM_WRITE;
		if (want->workflows)
			perms |= PERM_WORKFLOWS;
	}
	ret = app_get(c, want->repo, perms, out, &retry, err);
	if (retry_after_s)
		*retry_after_s = retry;
	return ret;
}

const char *cred_lease_secret(const struct cred_lease *l)
{
	return l->secret;
}

bool cred_lease_fresh(const struct cred_lease *l)
{
	return !l->pinned &&
	       timeutil_mono_ms() - l->minted_ms < GG_APP_FRESH_S * 1000;
}

void cred_lease_free(struct cred_lease *l)
{
	struct cred *c;

	if (!l || l->pinned)
		return;
	c = l->owner;
	pthread_mutex_lock(&c->lock);
	tok_unref(l);
	pthread_mutex_unlock(&c->lock);
}

void cred_get_stats(struct cred *c, struct cred_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
}

bool cred_ready(struct cred *c, int64_t now_ms, char *why, size_t size)
{
	bool ok;

	if (c->fixed)
		return true; /* loaded at start, held in locked memory */
	pthread_mutex_lock(&c->lock);
	ok = c->fault[0] == '\0' || now_ms - c->fault_ms >= CRED_FAULT_HOLD_MS;
	if (!ok)
		snprintf(why, size, "%s", c->fault);
	pthread_mutex_unlock(&c->lock);
	return ok;
}

const char *cred_static_secret(const struct cred *c)
{
	return c->fixed ? c->fixed->secret : NULL;
}

void cred_describe(const struct cred *c, char *buf, size_t bufsz)
{
	if (c->fixed)
		snprintf(buf, bufsz, "static secret");
	else
		snprintf(buf, bufsz, "GitHub App %s (%s)", c->app_id,
			 c->api_url);
}

static struct cred *cred_alloc(void)
{
	struct cred *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->flight_done, NULL);
	c->timeout_s = GG_APP_API_TIMEOUT_S;
	return c;
}

int cred_new_static(struct cred **out, const char *secret,
		    struct gg_err *err)
{
	struct cred *c;

	*out = NULL;
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR, "libsodium failed to start");
	c = cred_alloc();
	if (!c || !(c->fixed = tok_new(secret, strlen(secret)))) {
		cred_free(c);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	c->fixed->pinned = true;
	c->fixed->owner = c;
	c->fixed->minted_ms = INT64_MIN;
	*out = c;
	return GG_OK;
}

static char *dup_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? strdup(v) : NULL;
}

static int app_new(struct cred **out, const struct config *cfg,
		   struct gg_err *err)
{
	char label[GG_ERR_MSG_MAX];
	struct cred *c = cred_alloc();

	if (!c || !(c->app_id = strdup(cfg->app_id)) ||
	    !(c->api_url = strdup(cfg->app_api_url))) {
		cred_free(c);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	/* The relay's convention for trust anchors (relay.h), read now,
	 * before any thread runs. */
	c->ca_file = dup_env("SSL_CERT_FILE");
	c->ca_dir = dup_env("SSL_CERT_DIR");
	snprintf(label, sizeof(label), "upstream.github_app.private_key_file: %s",
		 cfg->app_key_file);
	if (ghjwt_key_load(&c->key, cfg->app_key_file, label, err) != 0) {
		cred_free(c);
		return err->code;
	}
	*out = c;
	return GG_OK;
}

int cred_new(struct cred **out, const struct config *cfg, struct gg_err *err)
{
	char *secret = NULL;
	int ret;

	*out = NULL;
	ret = config_check_upstream_source(cfg, err);
	if (ret)
		return ret;
	if (cfg->github_app)
		return app_new(out, cfg, err);
	ret = config_load_upstream_secret(&secret, cfg, err);
	if (ret)
		return ret;
	ret = cred_new_static(out, secret, err);
	config_secret_free(secret);
	return ret;
}

void cred_free(struct cred *c)
{
	if (!c)
		return;
	if (c->fixed)
		tok_destroy(c->fixed);
	while (c->toks)
		tok_uncache(c, &c->toks);
	while (c->insts)
		inst_drop(c, &c->insts);
	ghjwt_key_free(c->key);
	free(c->app_id);
	free(c->api_url);
	free(c->ca_file);
	free(c->ca_dir);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->flight_done);
	free(c);
}

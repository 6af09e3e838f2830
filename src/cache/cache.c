/*
 * cache.c - the fetch cache's decisions and its mirrors (see cache.h).
 *
 * One struct repo_state per repository the cache has seen: the refs
 * upstream advertised to gitgate's last fetch (its "tips"), when that
 * fetch began, whether one is running, who is using the mirror. Locks:
 * c->lock guards the list, every state's counters and the sizes; a
 * state's own mutex serialises its fetches and guards its tips.
 */
#include "gitgate/cache/cache.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <git2.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gitgate/cache/fetchreq.h"
#include "gitgate/cache/gitproc.h"
#include "gitgate/cache/packflight.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/log.h"
#include "gitgate/core/timeutil.h"
#include "gitgate/push/mirror.h"
#include "gitgate/upstream/cred.h"

#define OID_RAW 20

struct repo_state {
	char repo[256];
	/* Held for a decision and for the whole of a fetch: requests for
	 * the repository wait on it while one fetches, then judge with that
	 * fetch's refs (single-flight without a flag). */
	pthread_mutex_t lock;
	int64_t fresh_at;     /* lock: monotonic ms its tips were read; 0 */
	git_oid *tips;	      /* lock: what upstream advertised, sorted */
	size_t ntips;
	git_oid *commits;     /* lock: the tips peeled to commits */
	size_t ncommits;
	/* c->lock: */
	unsigned users;	      /* requests and flights holding the mirror */
	bool repacking;
	int64_t last_used;    /* monotonic ms */
	uint64_t size;	      /* bytes on disk, last measured */
};

struct fetch_cache {
	struct cache_opts o;
	char *cache_dir, *upstream_url, *git, *tmp_dir;
	pthread_mutex_t lock;
	pthread_cond_t idle; /* a background repack ended */
	struct repo_state **v;
	size_t n;
	struct packflight_set *flights;
	struct cache_stats stats;
	unsigned repacks_running;
};

struct cache_use {
	struct fetch_cache *c;
	struct repo_state *st;
};

/* ---- states -------------------------------------------------------- */

static struct repo_state *state_find(struct fetch_cache *c, const char *repo)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (!strcmp(c->v[i]->repo, repo))
			return c->v[i];
	return NULL;
}

/* The state of repo, made if new (c->lock held). */
static struct repo_state *state_get(struct fetch_cache *c, const char *repo)
{
	struct repo_state *st = state_find(c, repo), **nv;

	if (st)
		return st;
	if (strlen(repo) >= sizeof(st->repo))
		return NULL;
	nv = realloc(c->v, (c->n + 1) * sizeof(*c->v));
	if (!nv)
		return NULL;
	c->v = nv;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	snprintf(st->repo, sizeof(st->repo), "%s", repo);
	pthread_mutex_init(&st->lock, NULL);
	c->v[c->n++] = st;
	return st;
}

static void state_free(struct repo_state *st)
{
	free(st->tips);
	free(st->commits);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static struct cache_use *use_new(struct fetch_cache *c, const char *repo)
{
	struct cache_use *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	pthread_mutex_lock(&c->lock);
	u->st = state_get(c, repo);
	if (u->st) {
		u->st->users++;
		u->st->last_used = timeutil_mono_ms();
	}
	pthread_mutex_unlock(&c->lock);
	if (!u->st) {
		free(u);
		return NULL;
	}
	u->c = c;
	return u;
}

void cache_use_free(struct cache_use *u)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->c->lock);
	u->st->users--;
	u->st->last_used = timeutil_mono_ms();
	pthread_mutex_unlock(&u->c->lock);
	free(u);
}

/* ---- sizes and eviction ------------------------------------------- */

static __thread uint64_t walk_total;

static int add_size(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F)
		walk_total += (uint64_t)st->st_blocks * 512;
	return 0;
}

static uint64_t dir_size(const char *path)
{
	walk_total = 0;
	nftw(path, add_size, 16, FTW_PHYS);
	return walk_total;
}

static void mirror_dir(char *buf, size_t sz, const struct fetch_cache *c,
		       const char *repo)
{
	snprintf(buf, sz, "%s/mirrors/%s.git", c->cache_dir, repo);
}

/* The least recently used mirror nobody holds (c->lock held), or NULL. */
static struct repo_state *evictable(struct fetch_cache *c,
				    const struct repo_state *keep)
{
	struct repo_state *best = NULL;
	size_t i;

	for (i = 0; i < c->n; i++) {
		struct repo_state *st = c->v[i];

		if (st == keep || st->users || st->repacking || !st->size)
			continue;
		if (!best || st->last_used < best->last_used)
			best = st;
	}
	return best;
}

static uint64_t total_size(struct fetch_cache *c)
{
	uint64_t t = 0;
	size_t i;

	for (i = 0; i < c->n; i++)
		t += c->v[i]->size;
	return t;
}

/* Remove least recently used mirrors until the total is under max_size;
 * keep is the one just fetched (c->lock held). */
static void evict(struct fetch_cache *c, const struct repo_state *keep)
{
	struct gg_err err = GG_ERR_INIT;
	struct repo_state *st;

	while (total_size(c) > c->o.max_size && (st = evictable(c, keep))) {
		/* a push may have it open: then it stays, and the next
		 * candidate goes */
		if (pthread_mutex_trylock(&st->lock) != 0)
			break;
		gg_err_init(&err);
		if (mirror_remove(c->cache_dir, st->repo, &err) != 0) {
			pthread_mutex_unlock(&st->lock);
			st->last_used = timeutil_mono_ms(); /* try others */
			log_warnx("fetch cache: not evicting %s: %s", st->repo,
				  err.msg);
			if (!evictable(c, keep) || evictable(c, keep) == st)
				break;
			continue;
		}
		log_info("fetch cache: evicted %s (%llu bytes) to stay under "
			  "max_size", st->repo, (unsigned long long)st->size);
		st->size = 0;
		st->fresh_at = 0;
		st->ntips = st->ncommits = 0;
		c->stats.evictions++;
		pthread_mutex_unlock(&st->lock);
	}
	c->stats.total_size = total_size(c);
}

/* Mirrors already on disk from an earlier run count against max_size. */
static void scan_existing(struct fetch_cache *c)
{
	char dir[4200], repo[256], path[4500];
	struct dirent *o, *r;
	DIR *od, *rd;
	size_t len;

	snprintf(dir, sizeof(dir), "%s/mirrors", c->cache_dir);
	od = opendir(dir);
	if (!od)
		return;
	while ((o = readdir(od)) != NULL) {
		if (o->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, o->d_name);
		rd = opendir(path);
		if (!rd)
			continue;
		while ((r = readdir(rd)) != NULL) {
			struct repo_state *st;

			len = strlen(r->d_name);
			if (r->d_name[0] == '.' || len < 5 ||
			    strcmp(r->d_name + len - 4, ".git") ||
			    (size_t)snprintf(repo, sizeof(repo), "%s/%.*s",
					     o->d_name, (int)(len - 4),
					     r->d_name) >= sizeof(repo))
				continue;
			st = state_get(c, repo);
			if (st && (size_t)snprintf(path, sizeof(path),
						   "%s/%s/%s", dir, o->d_name,
						   r->d_name) < sizeof(path))
				st->size = dir_size(path);
		}
		closedir(rd);
	}
	closedir(od);
}

/* ---- background repack -------------------------------------------- */

struct repack_job {
	struct fetch_cache *c;
	struct repo_state *st;
};

/* Bitmaps make upload-pack's counting phase near free; a fetch leaves a
 * new pack without one. Unreachable objects are kept (a fetch running
 * now may have written a pack whose refs are not there yet); eviction
 * bounds what that keeps. */
static void *repack_main(void *arg)
{
	struct repack_job *j = arg;
	struct fetch_cache *c = j->c;
	struct gg_err err = GG_ERR_INIT;
	char path[4200];
	char *argv[] = { c->git, "-C", path, "-c", "pack.writeBitmapHashCache=true",
			 "repack", "-a", "-d", "-b", "-q",
			 "--keep-unreachable", NULL };

	mirror_dir(path, sizeof(path), c, j->st->repo);
	if (gitproc_run(argv, &err) != 0)
		log_warnx("fetch cache: repack of %s: %s", j->st->repo,
			  err.msg);
	pthread_mutex_lock(&c->lock);
	j->st->repacking = false;
	j->st->size = dir_size(path);
	c->stats.repacks++;
	c->stats.total_size = total_size(c);
	c->repacks_running--;
	pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	free(j);
	return NULL;
}

/* Start a repack of st unless one runs (c->lock held). */
static void repack_later(struct fetch_cache *c, struct repo_state *st)
{
	struct repack_job *j;
	pthread_attr_t at;
	pthread_t t;

	if (st->repacking || !(j = malloc(sizeof(*j))))
		return;
	j->c = c;
	j->st = st;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, repack_main, j) == 0) {
		st->repacking = true;
		c->repacks_running++;
	} else
		free(j);
	pthread_attr_destroy(&at);
}

/* ---- upstream's refs, as the last fetch saw them -------------------- */

static int oid_cmp(const void *a, const void *b)
{
	return git_oid_cmp(a, b);
}

struct tip_list {
	git_oid *tips, *commits;
	size_t ntips, ncommits;
	git_repository *repo;
	bool failed;
};

static int add_tip(const char *name, void *payload)
{
	struct tip_list *l = payload;
	git_object *obj = NULL, *peeled = NULL;
	git_oid idv, *nt, *nc;
	const git_oid *id = &idv;

	if (git_reference_name_to_id(&idv, l->repo, name) < 0)
		return 0;
	nt = realloc(l->tips, (l->ntips + 1) * sizeof(*nt));
	nc = nt ? realloc(l->commits, (l->ncommits + 1) * sizeof(*nc)) : NULL;
	if (nt)
		l->tips = nt;
	if (nc)
		l->commits = nc;
	if (!nt || !nc) {
		l->failed = true;
		return GIT_EUSER;
	}
	l->tips[l->ntips++] = *id;
	if (git_object_lookup(&obj, l->repo, id, GIT_OBJECT_ANY) == 0 &&
	    git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) == 0)
		l->commits[l->ncommits++] = *git_object_id(peeled);
	git_object_free(peeled);
	git_object_free(obj);
	return 0;
}

/* Read the mirror's refs (exactly upstream's tips after mirror_fetch)
 * into st (st->lock held). */
static int read_tips(struct repo_state *st, struct mirror *m,
		     struct gg_err *err)
{
	struct tip_list l = { NULL, NULL, 0, 0, mirror_repo(m), false };

	if (git_reference_foreach_glob(l.repo, "refs/gg/*", add_tip, &l) < 0 &&
	    !l.failed)
		l.failed = true;
	if (l.failed) {
		free(l.tips);
		free(l.commits);
		return gg_err_set(err, GG_EIO, "mirror of %s: cannot read its "
				  "refs", st->repo);
	}
	if (l.ntips)
		qsort(l.tips, l.ntips, sizeof(*l.tips), oid_cmp);
	free(st->tips);
	free(st->commits);
	st->tips = l.tips;
	st->ntips = l.ntips;
	st->commits = l.commits;
	st->ncommits = l.ncommits;
	return GG_OK;
}

/* ---- the mirror fetch ---------------------------------------------- */

static int fetch_with(struct fetch_cache *c, struct repo_state *st,
		      const char *secret, uint64_t *bytes, struct gg_err *err)
{
	size_t len = strlen(c->upstream_url) + strlen(st->repo) + 8;
	struct mirror *m = NULL;
	char *url = malloc(len);
	int ret;

	if (!url)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	snprintf(url, len, "%s/%s.git", c->upstream_url, st->repo);
	ret = mirror_open(&m, c->cache_dir, st->repo, err);
	if (ret == GG_OK)
		ret = mirror_fetch(m, url, secret, err);
	if (ret == GG_OK) {
		*bytes = mirror_fetched_bytes(m);
		ret = read_tips(st, m, err);
	}
	mirror_close(m);
	free(url);
	return ret;
}

/* Bring st's mirror up to date (st->lock held). A mirror
 * that cannot be opened or read is removed and made again, once. */
static int fetch(struct fetch_cache *c, struct repo_state *st,
		 uint64_t *bytes, int64_t *retry_after, struct gg_err *err)
{
	struct cred_want want = { st->repo, CRED_READ, false };
	struct cred_lease *lease = NULL;
	int64_t began = timeutil_mono_ms();
	char path[4200];
	int ret;

	*bytes = 0;
	ret = cred_get(c->o.cred, &want, &lease, retry_after, err);
	if (ret)
		return ret;
	ret = fetch_with(c, st, cred_lease_secret(lease), bytes, err);
	if (ret && ret != GG_EUPSTREAM && ret != GG_ENOMEM) {
		log_warnx("fetch cache: mirror of %s is unusable (%s): "
			  "removing it and fetching it again", st->repo,
			  err->msg);
		gg_err_init(err);
		ret = mirror_remove(c->cache_dir, st->repo, err);
		if (ret == GG_OK)
			ret = fetch_with(c, st, cred_lease_secret(lease),
					 bytes, err);
	}
	cred_lease_free(lease);
	if (ret)
		return ret;
	st->fresh_at = began; /* the refs are as of the fetch's start */
	mirror_dir(path, sizeof(path), c, st->repo);
	pthread_mutex_lock(&c->lock);
	c->stats.fetches++;
	c->stats.fetch_bytes += *bytes;
	st->size = dir_size(path);
	if (*bytes > 0)
		repack_later(c, st);
	evict(c, st);
	pthread_mutex_unlock(&c->lock);
	return GG_OK;
}

/* ---- may the mirror answer these wants? ------------------------------ */

enum verdict { COVERED, NOT_COVERED, NOT_COMMIT };

static bool is_tip(const struct repo_state *st, const git_oid *id)
{
	return st->ntips &&
	       bsearch(id, st->tips, st->ntips, sizeof(*id), oid_cmp);
}

/* Every want a tip, or a commit some tip reaches (st->lock held). A want
 * the mirror has that is neither a tip nor a commit (a blob a partial
 * clone asks for later, say) is for upstream to judge: NOT_COMMIT. */
static int judge(struct fetch_cache *c, struct repo_state *st,
		 const struct fetchreq *r, enum verdict *v, struct gg_err *err)
{
	git_repository *repo = NULL;
	git_odb *odb = NULL;
	char path[4200];
	size_t i;
	int reach, ret = GG_OK;

	*v = COVERED;
	for (i = 0; i < r->nwants; i++)
		if (!is_tip(st, (const git_oid *)(r->wants + i * OID_RAW)))
			break;
	if (i == r->nwants)
		return GG_OK; /* a clone: wants are what upstream advertised */
	mirror_dir(path, sizeof(path), c, st->repo);
	if (git_repository_open_bare(&repo, path) < 0 ||
	    git_repository_odb(&odb, repo) < 0) {
		git_repository_free(repo);
		return gg_err_set(err, GG_EIO, "mirror of %s: cannot open it",
				  st->repo);
	}
	for (; *v == COVERED && i < r->nwants; i++) {
		const git_oid *id = (const git_oid *)(r->wants + i * OID_RAW);
		git_object_t type;
		size_t size;

		if (is_tip(st, id))
			continue;
		if (git_odb_read_header(&size, &type, odb, id) < 0) {
			*v = NOT_COVERED;
		} else if (type != GIT_OBJECT_COMMIT) {
			*v = NOT_COMMIT;
		} else {
			reach = st->ncommits ? git_graph_reachable_from_any(
						       repo, id, st->commits,
						       st->ncommits)
					     : 0;
			if (reach < 0)
				ret = gg_err_set(err, GG_EIO, "mirror of %s: "
						 "history walk failed",
						 st->repo);
			else if (!reach)
				*v = NOT_COVERED;
		}
	}
	git_odb_free(odb);
	git_repository_free(repo);
	return ret;
}

static bool fresh(const struct repo_state *st)
{
	return st->fresh_at &&
	       timeutil_mono_ms() - st->fresh_at <= GG_CACHE_FRESH_MS;
}

/* The decision, st->lock held; see cache.h. */
static int decide_locked(struct fetch_cache *c, struct repo_state *st,
			 const struct fetchreq *r, enum cache_result *res,
			 uint64_t *upstream_bytes, int64_t *retry_after,
			 struct gg_err *err)
{
	bool tried = false;
	enum verdict v;
	uint64_t bytes;
	int ret;

	for (;;) {
		/* After its own fetch a request judges with those refs even
		 * when the fetch took longer than the freshness window: they
		 * are the newest there are, and fetching again would not end
		 * on a slow upstream. */
		if (fresh(st) || tried) {
			ret = judge(c, st, r, &v, err);
			if (ret)
				return ret;
			if (v == COVERED) {
				*res = *upstream_bytes ? CACHE_MISS : CACHE_HIT;
				return GG_OK;
			}
			if (v == NOT_COMMIT || tried) {
				*res = CACHE_BYPASS;
				return GG_OK;
			}
		}
		/* The first request in does the fetch; the others wait on
		 * st->lock meanwhile and then judge with its answer. */
		ret = fetch(c, st, &bytes, retry_after, err);
		if (ret)
			return ret;
		*upstream_bytes += bytes;
		tried = true;
	}
}

int cache_decide(struct fetch_cache *c, const char *repo,
		 const struct fetchreq *r, enum cache_result *res,
		 struct cache_use **use, uint64_t *upstream_bytes,
		 int64_t *retry_after, struct gg_err *err)
{
	struct cache_use *u;
	int ret;

	*use = NULL;
	*upstream_bytes = 0;
	*res = CACHE_BYPASS;
	if (r->kind != FETCHREQ_PACK || r->want_ref)
		return GG_OK;
	u = use_new(c, repo);
	if (!u)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	pthread_mutex_lock(&u->st->lock);
	ret = decide_locked(c, u->st, r, res, upstream_bytes, retry_after,
			    err);
	pthread_mutex_unlock(&u->st->lock);
	if (ret || *res == CACHE_BYPASS) {
		cache_use_free(u);
		return ret;
	}
	*use = u;
	return GG_OK;
}

static void release_use(void *hold)
{
	cache_use_free(hold);
}

int cache_serve(struct fetch_cache *c, struct cache_use *use,
		const char *git_protocol, const unsigned char *body,
		size_t len, struct packflight **out, struct gg_err *err)
{
	unsigned char key[PACKFLIGHT_KEY];
	crypto_generichash_state h;
	struct packflight_run run;
	struct cache_use *hold;
	char path[4200];

	/* The flight's own hold on the mirror, released when it ends. */
	hold = use_new(c, use->st->repo);
	if (!hold)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	crypto_generichash_init(&h, NULL, 0, sizeof(key));
	crypto_generichash_update(&h, (const unsigned char *)use->st->repo,
				  strlen(use->st->repo) + 1);
	crypto_generichash_update(&h, (const unsigned char *)
				  (git_protocol ? git_protocol : ""),
				  (git_protocol ? strlen(git_protocol) : 0) + 1);
	crypto_generichash_update(&h, body, len);
	crypto_generichash_final(&h, key, sizeof(key));
	mirror_dir(path, sizeof(path), c, use->st->repo);
	run = (struct packflight_run){ c->git, path, c->tmp_dir, git_protocol,
				       body, len, release_use, hold };
	return packflight_join(c->flights, key, &run, out, err);
}

struct packflight_set *cache_flights(struct fetch_cache *c)
{
	return c->flights;
}

void cache_get_stats(struct fetch_cache *c, struct cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
}

static int make_tmp_dir(struct fetch_cache *c, struct gg_err *err)
{
	size_t len = strlen(c->cache_dir) + 16;

	c->tmp_dir = malloc(len);
	if (!c->tmp_dir)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	snprintf(c->tmp_dir, len, "%s/tmp", c->cache_dir);
	if (mkdir(c->tmp_dir, 0700) != 0 && errno != EEXIST)
		return gg_err_set(err, GG_EIO, "%s: %s", c->tmp_dir,
				  strerror(errno));
	return GG_OK;
}

int cache_new(struct fetch_cache **out, const struct cache_opts *o,
	      struct gg_err *err)
{
	struct fetch_cache *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	c->o = *o;
	c->cache_dir = strdup(o->cache_dir);
	c->upstream_url = strdup(o->upstream_url);
	c->git = gitproc_find_git();
	if (!c->cache_dir || !c->upstream_url) {
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto fail;
	}
	if (!c->git) {
		ret = gg_err_set(err, GG_ENOTFOUND, "git is not installed "
				 "(no git on PATH): fetches are relayed to "
				 "upstream");
		goto fail;
	}
	ret = make_tmp_dir(c, err);
	if (ret == GG_OK)
		ret = packflight_set_new(&c->flights, err);
	if (ret)
		goto fail;
	scan_existing(c);
	c->stats.total_size = total_size(c);
	*out = c;
	return GG_OK;
fail:
	cache_free(c);
	return ret;
}

void cache_free(struct fetch_cache *c)
{
	size_t i;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	while (c->repacks_running)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < c->n; i++)
		state_free(c->v[i]);
	free(c->v);
	packflight_set_free(c->flights);
	free(c->cache_dir);
	free(c->upstream_url);
	free(c->git);
	free(c->tmp_dir);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->idle);
	free(c);
}

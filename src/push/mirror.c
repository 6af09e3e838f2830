/*
 * mirror.c - bare mirrors with libgit2: fetch, index pushed packs, ancestry.
 */
#include "gitgate/push/mirror.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/metrics.h"
#include "gitgate/core/strvec.h"
#include "gitgate/core/timeutil.h"

#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <git2/sys/odb_backend.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct mirror {
	git_repository *repo;
	git_odb *odb; /* the repo's, with the pushed pack attached */
	git_indexer *idx; /* a pack being indexed (pack_begin..commit) */
	git_indexer_progress stats;
	/* Bytes for the indexer, gathered: libgit2 re-maps its pack file on
	 * every append, so feeding it the body's 14 KiB pieces cost a quarter
	 * of the indexing time in mmap/munmap. */
	unsigned char *ibuf;
	size_t ilen;
	char path[4096];
	uint64_t fetched; /* bytes the last mirror_fetch downloaded */
	bool registered;  /* counted in the open-mirror registry */
	char tmpdir[4096]; /* "" when no pack is attached or being indexed */
};

/* libgit2's last error, for a message. */
static const char *git_why(void)
{
	const git_error *e = git_error_last();

	return e && e->message ? e->message : "unknown libgit2 error";
}

int mirror_global_init(struct gg_err *err)
{
	const char *file = getenv("SSL_CERT_FILE");
	const char *dir = getenv("SSL_CERT_DIR");

	if (git_libgit2_init() < 0)
		return gg_err_set(err, GG_ERR, "libgit2 failed to start");
	/* The same trust anchors as the relay (see relay.c): libgit2's TLS
	 * (mbedTLS on Debian) reads neither variable itself. */
	if (file && !*file)
		file = NULL;
	if (dir && !*dir)
		dir = NULL;
	if ((file || dir) &&
	    git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file, dir) < 0)
		return gg_err_set(err, GG_ERR, "SSL_CERT_FILE/SSL_CERT_DIR: %s",
				  git_why());
	/* Every object was hashed when its pack was indexed (pushed packs
	 * by the indexer here, fetched ones likewise): hashing it again on
	 * each read was a third of a content check's CPU. */
	if (git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 0) < 0 ||
	    /* Pack windows are file-backed but count in RSS: keep the mapped
	     * total small, so a 1 GiB push stays in bounded memory. */
	    git_libgit2_opts(GIT_OPT_SET_MWINDOW_SIZE,
			     (size_t)GG_MWINDOW_SIZE) < 0 ||
	    git_libgit2_opts(GIT_OPT_SET_MWINDOW_MAPPED_LIMIT,
			     (size_t)GG_MWINDOW_MAPPED_LIMIT) < 0)
		return gg_err_set(err, GG_ERR, "libgit2 options: %s",
				  git_why());
	return GG_OK;
}

/* mkdir -p for the two or three levels we need. */
static int make_dirs(const char *path, struct gg_err *err)
{
	char buf[4096];
	size_t i, n = strlen(path);

	if (n >= sizeof(buf))
		return gg_err_set(err, GG_ELIMIT, "path too long");
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return gg_err_errno(err, GG_EIO, "cannot create %s",
					    buf);
		buf[i] = path[i];
	}
	return GG_OK;
}

/* The writers' lock; returns the descriptor holding it (close to
 * release) or a negative GG_E* code. */
static int lock_writers(struct mirror *m, struct gg_err *err)
{
	char lock[4200];
	int fd;

	snprintf(lock, sizeof(lock), "%s.lock", m->path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return gg_err_errno(err, GG_EIO, "cannot open %s", lock);
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			close(fd);
			return gg_err_errno(err, GG_EIO, "cannot lock %s",
					    lock);
		}
	}
	return fd;
}

static int open_repo(struct mirror *m, struct gg_err *err)
{
	int lock, ret = GG_OK;

	/* Usually it exists. If not, or if another thread or process is
	 * creating it right now (a half-made repository does not open), wait
	 * for the writers' lock and open or create it there. */
	if (git_repository_open_bare(&m->repo, m->path) < 0) {
		lock = lock_writers(m, err);
		if (lock < 0)
			return lock;
		if (git_repository_open_bare(&m->repo, m->path) < 0 &&
		    git_repository_init(&m->repo, m->path, 1) < 0)
			ret = gg_err_set(err, GG_EIO, "mirror %s: %s", m->path,
					 git_why());
		close(lock);
		if (ret)
			return ret;
	}
	if (git_repository_odb(&m->odb, m->repo) < 0)
		return gg_err_set(err, GG_EIO, "mirror %s: %s", m->path,
				  git_why());
	return GG_OK;
}

/* ---- which mirrors are open (mirror_remove never takes one) ---------- */

struct open_entry {
	char path[4096];
	unsigned count;
};

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct open_entry *open_v;
static size_t open_n;

static struct open_entry *open_find(const char *path)
{
	size_t i;

	for (i = 0; i < open_n; i++)
		if (!strcmp(open_v[i].path, path))
			return &open_v[i];
	return NULL;
}

/* Count path as open (open_lock held). false when out of memory. */
static bool open_add(const char *path)
{
	struct open_entry *e = open_find(path), *nv;

	if (e) {
		e->count++;
		return true;
	}
	nv = realloc(open_v, (open_n + 1) * sizeof(*open_v));
	if (!nv)
		return false;
	open_v = nv;
	e = &open_v[open_n++];
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->count = 1;
	return true;
}

static void open_drop(const char *path)
{
	struct open_entry *e;

	pthread_mutex_lock(&open_lock);
	e = open_find(path);
	if (e && --e->count == 0)
		*e = open_v[--open_n];
	pthread_mutex_unlock(&open_lock);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

int mirror_remove(const char *cache_dir, const char *repo, struct gg_err *err)
{
	char path[4096], trash[4200];
	int ret = GG_OK;

	if ((size_t)snprintf(path, sizeof(path), "%s/mirrors/%s.git",
			     cache_dir, repo) >= sizeof(path))
		return gg_err_set(err, GG_EINVAL, "bad repository name");
	snprintf(trash, sizeof(trash), "%s/mirrors/.removed-%ld-%lx",
		 cache_dir, (long)getpid(), (unsigned long)random());
	pthread_mutex_lock(&open_lock);
	if (open_find(path))
		ret = gg_err_set(err, GG_EAGAIN, "mirror %s is in use", path);
	else if (rename(path, trash) != 0 && errno != ENOENT)
		ret = gg_err_set(err, GG_EIO, "mirror %s: %s", path,
				 strerror(errno));
	pthread_mutex_unlock(&open_lock);
	/* The next open makes a new one under the old name; the old tree is
	 * deleted out of anyone's way. */
	if (ret == GG_OK)
		nftw(trash, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}

uint64_t mirror_fetched_bytes(const struct mirror *m)
{
	return m->fetched;
}

const char *mirror_path(const struct mirror *m)
{
	return m->path;
}

int mirror_open(struct mirror **out, const char *cache_dir, const char *repo,
		struct gg_err *err)
{
	struct mirror *m = calloc(1, sizeof(*m));
	char parent[4096];
	const char *slash;
	int ret;

	*out = NULL;
	if (!m)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	slash = strchr(repo, '/');
	if (!slash || (size_t)snprintf(m->path, sizeof(m->path),
				       "%s/mirrors/%s.git", cache_dir,
				       repo) >= sizeof(m->path)) {
		ret = gg_err_set(err, GG_EINVAL, "bad repository name");
		goto fail;
	}
	snprintf(parent, sizeof(parent), "%s/mirrors/%.*s", cache_dir,
		 (int)(slash - repo), repo);
	ret = make_dirs(parent, err);
	if (ret == 0) {
		/* counted before it exists: a removal cannot slip in between */
		pthread_mutex_lock(&open_lock);
		m->registered = open_add(m->path);
		pthread_mutex_unlock(&open_lock);
		if (!m->registered)
			ret = gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	if (ret == 0)
		ret = open_repo(m, err);
	if (ret)
		goto fail;
	*out = m;
	return GG_OK;
fail:
	mirror_close(m);
	return ret;
}

static void remove_tmpdir(struct mirror *m)
{
	char path[4400];
	struct dirent *de;
	DIR *d;

	if (!m->tmpdir[0])
		return;
	d = opendir(m->tmpdir);
	if (d) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", m->tmpdir,
				 de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(m->tmpdir);
	m->tmpdir[0] = '\0';
}

void mirror_close(struct mirror *m)
{
	if (!m)
		return;
	git_indexer_free(m->idx);
	git_odb_free(m->odb);
	git_repository_free(m->repo);
	remove_tmpdir(m);
	if (m->registered)
		open_drop(m->path);
	free(m->ibuf);
	free(m);
}

struct git_repository *mirror_repo(struct mirror *m)
{
	return m->repo;
}

bool mirror_has_pack(const struct mirror *m)
{
	return m->tmpdir[0] && !m->idx;
}

bool mirror_has(struct mirror *m, const char *hex)
{
	git_oid oid;

	if (git_oid_fromstrn(&oid, hex, GIT_OID_HEXSZ) < 0)
		return false;
	return git_odb_exists(m->odb, &oid) == 1;
}

int mirror_read(struct mirror *m, const unsigned char *oid, int *type,
		unsigned char **data, size_t *len)
{
	git_object_t t;
	git_odb_object *obj;
	git_oid id;
	size_t n;

	*data = NULL;
	*len = 0;
	memcpy(id.id, oid, GIT_OID_RAWSZ);
	if (git_odb_read_header(&n, &t, m->odb, &id) < 0)
		return GG_ENOTFOUND;
	*type = (int)t;
	if (t != GIT_OBJECT_COMMIT)
		return GG_OK;
	/* What the scan would not keep from the pack, it does not read from
	 * the mirror either: a crafted thin delta can name any object. */
	if (n > GG_MAX_SCAN_OBJECT)
		return GG_ELIMIT;
	if (git_odb_read(&obj, m->odb, &id) < 0)
		return GG_ENOTFOUND;
	n = git_odb_object_size(obj);
	*data = malloc(n ? n : 1);
	if (!*data) {
		git_odb_object_free(obj);
		return GG_ENOMEM;
	}
	memcpy(*data, git_odb_object_data(obj), n);
	*len = n;
	git_odb_object_free(obj);
	return GG_OK;
}

struct cred_state {
	const char *secret;
	const char *url; /* the upstream repository fetched from */
	int attempts;
};

/* Answer the upstream's 401 once; a second call means the credential was
 * refused, and retrying would loop. The secret goes only to the very URL
 * gitgate fetches: libgit2 refuses redirects to another host but still
 * follows one on the same host (another port included), and the URL it
 * then reports is rebuilt from a decoded Location, which can be made to
 * look like upstream's origin ("http://up:A%2F@up:B/..." reads back as
 * "http://up:A/@up:B/..."). So any redirect at all gets no credential. */
static int on_credentials(git_credential **out, const char *url,
			  const char *username, unsigned int allowed,
			  void *payload)
{
	struct cred_state *st = payload;

	(void)username;
	if (st->attempts++ > 0 || !(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT))
		return GIT_EUSER;
	if (!url || strcmp(url, st->url)) {
		git_error_set_str(GIT_ERROR_NET,
				  "upstream redirected (not followed)");
		return GIT_EUSER;
	}
	return git_credential_userpass_plaintext_new(out, "x-access-token",
						     st->secret);
}

/*
 * The mirror keeps upstream's objects, not its ref names: one ref per
 * distinct tip object, refs/gg/<hex>, which libgit2 offers as "haves" in
 * the next negotiation, so fetches stay incremental. Copying the branch
 * and tag names (as a mirroring refspec does) broke the mirror for good,
 * and with it every history check on the repository, when upstream
 * replaced a branch agent/df by agent/df/sub (the stale ref blocks the new
 * one's path; libgit2 prunes only after updating) or had a ref longer than
 * libgit2's 1024 bytes.
 * Hex names can do neither.
 *
 * The name is refs/gg/<age>-<hex>, <age> ten digits that grow as the tip's
 * commit gets older, so the newest tip sorts first. libgit2 1.5 offers
 * haves depth-first from the refs in name order and stops at the first
 * batch upstream acknowledges: with plain hex names a catch-up fetch of
 * one new commit started from whichever tip sorted first (an old tag,
 * say) and downloaded every commit since it (35 MB instead of 1 KB on the
 * 200 MiB bench repository).
 */
#define MIRROR_TIP_PREFIX "refs/gg/"
#define MIRROR_AGE_DIGITS 10
#define MIRROR_AGE_MAX 9999999999LL
#define MIRROR_TIP_NAME_MAX                                                    \
	(sizeof(MIRROR_TIP_PREFIX) + MIRROR_AGE_DIGITS + 1 + GIT_OID_HEXSZ)

struct name_list {
	char **v;
	size_t n, cap;
};

static int names_add(struct name_list *l, const char *name)
{
	char **grown;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		grown = realloc(l->v, l->cap * sizeof(*grown));
		if (!grown)
			return -1;
		l->v = grown;
	}
	l->v[l->n] = strdup(name);
	if (!l->v[l->n])
		return -1;
	l->n++;
	return 0;
}

static void names_free(struct name_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* Seconds before the last representable time at which the commit obj
 * leads to was made (MIRROR_AGE_MAX for a tag of a tree or blob). */
static long long tip_age(git_repository *repo, const git_oid *oid)
{
	git_object *obj = NULL, *commit = NULL;
	long long t = 0;

	if (git_object_lookup(&obj, repo, oid, GIT_OBJECT_ANY) == 0 &&
	    git_object_peel(&commit, obj, GIT_OBJECT_COMMIT) == 0)
		t = (long long)git_commit_time((git_commit *)commit);
	git_object_free(commit);
	git_object_free(obj);
	if (t < 0)
		t = 0;
	return t > MIRROR_AGE_MAX ? 0 : MIRROR_AGE_MAX - t;
}

/* The hex object id at the end of a refs/gg/ name. */
static int tip_oid(git_oid *out, const char *name)
{
	size_t len = strlen(name);

	if (len < GIT_OID_HEXSZ)
		return -1;
	return git_oid_fromstr(out, name + len - GIT_OID_HEXSZ);
}

/* refs/gg/<age>-<hex> for every branch and tag upstream advertised whose
 * object the fetch brought (or the mirror had). */
static int wanted_tips(struct name_list *out, git_repository *repo,
		       git_remote *remote)
{
	char name[MIRROR_TIP_NAME_MAX], hex[GIT_OID_HEXSZ + 1];
	const git_remote_head **heads;
	git_odb *odb = NULL;
	size_t i, n;
	int ret = 0;

	if (git_remote_ls(&heads, &n, remote) < 0 ||
	    git_repository_odb(&odb, repo) < 0)
		return -1;
	for (i = 0; ret == 0 && i < n; i++) {
		const char *ref = heads[i]->name;
		size_t len = strlen(ref);

		if (strncmp(ref, "refs/heads/", 11) &&
		    strncmp(ref, "refs/tags/", 10))
			continue;
		if (len >= 3 && !strcmp(ref + len - 3, "^{}"))
			continue; /* a peeled tag: the tag object reaches it */
		if (!git_odb_exists(odb, &heads[i]->oid))
			continue;
		git_oid_tostr(hex, sizeof(hex), &heads[i]->oid);
		snprintf(name, sizeof(name), "%s%0*lld-%s", MIRROR_TIP_PREFIX,
			 MIRROR_AGE_DIGITS, tip_age(repo, &heads[i]->oid), hex);
		ret = names_add(out, name);
	}
	git_odb_free(odb);
	strvec_sort_unique(out->v, &out->n);
	return ret;
}

static int list_ref(const char *name, void *payload)
{
	return names_add(payload, name) ? GIT_EUSER : 0;
}

/* Make the mirror's refs exactly the wanted tips: refs from before (tips
 * upstream no longer has, and the branch and tag names older versions
 * copied) go, so nothing stale lingers as a "have". */
static int sync_tips(git_repository *repo, git_remote *remote,
		     struct gg_err *err)
{
	struct name_list want = { 0 }, have = { 0 };
	git_reference *ref = NULL;
	git_oid oid;
	size_t i;
	int ret = GG_OK;

	if (wanted_tips(&want, repo, remote) < 0 ||
	    git_reference_foreach_name(repo, list_ref, &have) < 0) {
		ret = gg_err_set(err, GG_ERR, "mirror refs: %s", git_why());
		goto out;
	}
	strvec_sort_unique(have.v, &have.n);
	for (i = 0; ret == GG_OK && i < want.n; i++) {
		if (strvec_contains(have.v, have.n, want.v[i]))
			continue;
		if (tip_oid(&oid, want.v[i]) < 0 ||
		    git_reference_create(&ref, repo, want.v[i], &oid, 1,
					 NULL) < 0)
			ret = gg_err_set(err, GG_ERR, "mirror refs: %s",
					 git_why());
		git_reference_free(ref);
		ref = NULL;
	}
	for (i = 0; ret == GG_OK && i < have.n; i++)
		if (!strvec_contains(want.v, want.n, have.v[i]) &&
		    git_reference_remove(repo, have.v[i]) < 0)
			ret = gg_err_set(err, GG_ERR, "mirror refs: %s",
					 git_why());
out:
	names_free(&want);
	names_free(&have);
	return ret;
}

/* The pack files of the mirror at path, by name. */
static void list_packs(struct name_list *out, const char *path)
{
	char dir[4200];
	struct dirent *de;
	size_t len;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/objects/pack", path);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len > 5 && !strcmp(de->d_name + len - 5, ".pack") &&
		    names_add(out, de->d_name) != 0)
			break;
	}
	closedir(d);
	strvec_sort_unique(out->v, &out->n);
}

/* What a fetch downloaded: the packs it wrote. (libgit2 1.5's HTTP
 * transport leaves received_bytes at 0; a pack libgit2 completed from a
 * thin one counts its appended bases too.) */
static uint64_t new_pack_bytes(const struct name_list *before,
			       const char *path)
{
	struct name_list after = { 0 };
	char file[4500];
	struct stat st;
	uint64_t total = 0;
	size_t i;

	list_packs(&after, path);
	for (i = 0; i < after.n; i++) {
		if (strvec_contains(before->v, before->n, after.v[i]))
			continue;
		snprintf(file, sizeof(file), "%s/objects/pack/%s", path,
			 after.v[i]);
		if (stat(file, &st) == 0)
			total += (uint64_t)st.st_size;
	}
	names_free(&after);
	return total;
}

int mirror_fetch(struct mirror *m, const char *url, const char *secret,
		 struct gg_err *err)
{
	/* What to download; nothing is written under these names (see
	 * sync_tips). */
	static char *specs[] = { "+refs/heads/*:refs/heads/*",
				 "+refs/tags/*:refs/tags/*" };
	git_strarray refspecs = { specs, 2 };
	git_fetch_options opts;
	struct cred_state st = { secret, url, 0 };
	git_remote_create_options copts;
	git_repository *clean = NULL;
	git_remote *remote = NULL;
	struct name_list before = { 0 };
	int64_t began = timeutil_mono_ms();
	int ret = GG_OK;

	int lock = lock_writers(m, err);

	if (lock < 0)
		return lock;
	/* Fetch through a handle of its own: this one may have a pushed pack
	 * attached, and negotiating with it would tell upstream we have
	 * objects the mirror does not (and skip downloading them). */
	if (git_repository_open_bare(&clean, m->path) < 0) {
		close(lock);
		return gg_err_set(err, GG_EIO, "mirror %s: %s", m->path,
				  git_why());
	}
	git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
	opts.callbacks.credentials = on_credentials;
	opts.callbacks.payload = &st;
	/* Like the relay: a redirect would take gitgate's credential to
	 * another host. (libgit2 follows one on the first request unless
	 * told not to.) */
	opts.follow_redirects = GIT_REMOTE_REDIRECT_NONE;
	opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	/* Skipping the insteadOf and default-refspec config lookups also
	 * avoids libgit2 1.5.1's regex path, which leaks pcre2 match data on
	 * every call (about 160 KiB per fetch). */
	git_remote_create_options_init(&copts, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	copts.repository = clean;
	copts.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF |
		      GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	/* Download only: upstream's ref list stays readable after the
	 * transfer (git_remote_ls), and sync_tips records it. */
	list_packs(&before, m->path);
	if (git_remote_create_with_opts(&remote, url, &copts) < 0 ||
	    git_remote_download(remote, &refspecs, &opts) < 0) {
		ret = gg_err_set(err, GG_EUPSTREAM,
				 st.attempts > 1
					 ? "mirror fetch: upstream rejected "
					   "gitgate's credential"
					 : "mirror fetch: %s",
				 git_why());
	}
	if (ret == GG_OK) {
		m->fetched = new_pack_bytes(&before, m->path);
		ret = sync_tips(clean, remote, err);
	}
	names_free(&before);
	git_remote_free(remote);
	git_repository_free(clean);
	close(lock); /* releases the flock */
	/* Let this handle see the packs the fetch just wrote. */
	if (ret == GG_OK)
		git_odb_refresh(m->odb);
	metrics_mirror_fetch(timeutil_mono_ms() - began,
			     ret == GG_OK ? m->fetched : 0, ret == GG_OK);
	return ret;
}

/* Attach tmpdir/pack-<name>.idx to this handle's odb (in memory only). */
static int attach_pack(struct mirror *m, git_indexer *idx, struct gg_err *err)
{
	git_odb_backend *backend = NULL;
	char idxpath[4400];

	snprintf(idxpath, sizeof(idxpath), "%s/pack-%s.idx", m->tmpdir,
		 git_indexer_name(idx));
	if (git_odb_backend_one_pack(&backend, idxpath) < 0)
		return gg_err_set(err, GG_EIO, "pushed pack: %s", git_why());
	/* Priority above the mirror's own backends: lookups of pushed objects
	 * hit the small pack first. */
	if (git_odb_add_backend(m->odb, backend, 1000) < 0) {
		backend->free(backend);
		return gg_err_set(err, GG_EIO, "pushed pack: %s", git_why());
	}
	return GG_OK;
}

/* Drop a pack being indexed (after an error). */
void mirror_pack_abandon(struct mirror *m)
{
	m->ilen = 0;
	if (!m->idx)
		return; /* nothing being indexed (an attached pack stays) */
	git_indexer_free(m->idx);
	m->idx = NULL;
	remove_tmpdir(m);
}

/* Indexing in steps (begin, append chunks, commit, which attaches): after
 * a failed append or commit nothing is attached and the next begin starts
 * afresh. */
int mirror_pack_begin(struct mirror *m, struct gg_err *err)
{
	git_indexer_options opts;

	if (m->idx || m->tmpdir[0])
		return gg_err_set(err, GG_EINVAL, "a pack is already attached");
	git_indexer_options_init(&opts, GIT_INDEXER_OPTIONS_VERSION);
	if ((size_t)snprintf(m->tmpdir, sizeof(m->tmpdir),
			     "%.4000s/incoming-XXXXXX",
			     m->path) >= sizeof(m->tmpdir) ||
	    !mkdtemp(m->tmpdir)) {
		m->tmpdir[0] = '\0';
		return gg_err_errno(err, GG_EIO, "cannot create pack dir");
	}
	memset(&m->stats, 0, sizeof(m->stats));
	/* The mirror's odb completes thin packs (their delta bases). */
	if (git_indexer_new(&m->idx, m->tmpdir, 0600, m->odb, &opts) < 0) {
		mirror_pack_abandon(m);
		return gg_err_set(err, GG_EIO, "indexer: %s", git_why());
	}
	return GG_OK;
}

static int index_bytes(struct mirror *m, const void *data, size_t len,
		       struct gg_err *err)
{
	if (len && git_indexer_append(m->idx, data, len, &m->stats) < 0) {
		mirror_pack_abandon(m);
		return gg_err_set(err, GG_EINVAL, "pushed pack: %s",
				  git_why());
	}
	return GG_OK;
}

static int index_flush(struct mirror *m, struct gg_err *err)
{
	size_t n = m->ilen;

	m->ilen = 0;
	return index_bytes(m, m->ibuf, n, err);
}

int mirror_pack_append(struct mirror *m, const void *data, size_t len,
		       struct gg_err *err)
{
	const unsigned char *d = data;
	size_t n;
	int ret;

	if (!m->idx)
		return gg_err_set(err, GG_EINVAL, "no pack being indexed");
	if (!m->ibuf && !(m->ibuf = malloc(GG_INDEX_CHUNK)))
		return index_bytes(m, data, len, err);
	while (len > 0) {
		n = GG_INDEX_CHUNK - m->ilen < len ? GG_INDEX_CHUNK - m->ilen
						    : len;
		memcpy(m->ibuf + m->ilen, d, n);
		m->ilen += n;
		d += n;
		len -= n;
		if (m->ilen == GG_INDEX_CHUNK && (ret = index_flush(m, err)))
			return ret;
	}
	return GG_OK;
}

int mirror_pack_commit(struct mirror *m, struct gg_err *err)
{
	int ret = GG_OK;

	if (!m->idx)
		return gg_err_set(err, GG_EINVAL, "no pack being indexed");
	if ((ret = index_flush(m, err)) != 0)
		return ret;
	if (git_indexer_commit(m->idx, &m->stats) < 0) {
		const char *why = git_why();

		/* libgit2 says "missing delta bases" for a thin pack whose
		 * bases the mirror lacks: worth a fetch and a retry. */
		ret = gg_err_set(err, strstr(why, "base") ? GG_ENOTFOUND
							  : GG_EINVAL,
				 "pushed pack: %s", why);
	}
	if (ret == 0)
		ret = attach_pack(m, m->idx, err);
	git_indexer_free(m->idx);
	m->idx = NULL;
	if (ret)
		remove_tmpdir(m);
	return ret;
}

int mirror_add_pack(struct mirror *m, int fd, uint64_t off, uint64_t len,
		    struct gg_err *err)
{
	char buf[64 * 1024];
	ssize_t n;
	int ret;

	if (len == 0)
		return GG_OK;
	ret = mirror_pack_begin(m, err);
	while (ret == 0 && len > 0) {
		n = pread(fd, buf, len < sizeof(buf) ? (size_t)len : sizeof(buf),
			  (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			mirror_pack_abandon(m);
			return n < 0 ? gg_err_errno(err, GG_EIO,
						    "reading pushed pack")
				     : gg_err_set(err, GG_EINVAL,
						  "pushed pack is truncated");
		}
		ret = mirror_pack_append(m, buf, (size_t)n, err);
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	if (ret == 0)
		ret = mirror_pack_commit(m, err);
	return ret;
}

/* GG_ENOTFOUND unless oid is a commit in the mirror (or attached pack). */
static int have_commit(struct mirror *m, const git_oid *oid,
		       struct gg_err *err)
{
	char hex[GIT_OID_HEXSZ + 1];
	git_commit *c = NULL;

	if (git_commit_lookup(&c, m->repo, oid) < 0) {
		git_oid_tostr(hex, sizeof(hex), oid);
		return gg_err_set(err, GG_ENOTFOUND,
				  "cannot find commit %.12s", hex);
	}
	git_commit_free(c);
	return GG_OK;
}

int mirror_reaches(bool *out, struct mirror *m, const char *old_hex,
		   const unsigned char *oids, size_t n, struct gg_err *err)
{
	git_oid old, *ids;
	size_t i;
	int ret = GG_OK, rc;

	*out = false;
	if (strlen(old_hex) != GIT_OID_HEXSZ ||
	    git_oid_fromstrn(&old, old_hex, GIT_OID_HEXSZ) < 0)
		return gg_err_set(err, GG_EINVAL, "bad object id");
	ret = have_commit(m, &old, err);
	if (ret)
		return ret;
	ids = calloc(n ? n : 1, sizeof(*ids));
	if (!ids)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	for (i = 0; ret == 0 && i < n; i++) {
		memcpy(ids[i].id, oids + i * GIT_OID_RAWSZ, GIT_OID_RAWSZ);
		ret = have_commit(m, &ids[i], err);
		*out = *out || git_oid_equal(&ids[i], &old);
	}
	if (ret == 0 && !*out && n > 0) {
		rc = git_graph_reachable_from_any(m->repo, &old, ids, n);
		if (rc < 0)
			ret = gg_err_set(err, GG_ERR, "ancestry: %s", git_why());
		*out = rc == 1;
	}
	free(ids);
	return ret;
}

int mirror_is_ancestor(bool *out, struct mirror *m, const char *old_hex,
		       const char *new_hex, struct gg_err *err)
{
	git_oid new_oid;

	*out = false;
	if (strlen(new_hex) != GIT_OID_HEXSZ ||
	    git_oid_fromstrn(&new_oid, new_hex, GIT_OID_HEXSZ) < 0)
		return gg_err_set(err, GG_EINVAL, "bad object id");
	return mirror_reaches(out, m, old_hex, new_oid.id, 1, err);
}

/*
 * test_mirror.c - the per-repository bare mirror (mirror.c) against real
 * repositories: an "upstream" bare repository built with the git CLI in a
 * temporary directory per test, fetched by libgit2 over the local transport
 * (a path or file:// URL), real thin packs from `git pack-objects --thin`,
 * and the flock-based per-repository lock exercised from two threads.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gitgate/push/mirror.h"

#define REPO "owner/name"
#define UNKNOWN_OID "0123456789abcdef0123456789abcdef01234567"

/* The test's temporary directory (made by the fixture) and paths in it. */
static char tmp[1024];
static char cache[1100];
static char up[1100];
static char mpath[1200]; /* the mirror's bare repository */

/* Commits of the upstream built by make_upstream (40-hex). */
static char c1[41], c2[41], d1[41], n1[41];

#include "gitfixture.h"

static void setup(void)
{
	struct gg_err err = GG_ERR_INIT;

	gitfixture_scratch("mirror");
	snprintf(cache, sizeof(cache), "%s/cache", tmp);
	snprintf(up, sizeof(up), "%s/up.git", tmp);
	snprintf(mpath, sizeof(mpath), "%s/mirrors/%s.git", cache, REPO);
	ck_assert_int_eq(mirror_global_init(&err), 0);
}

/*
 * Upstream up.git:
 *   c1 -- c2            main, feature (c2); tags v1 (lightweight, c1) and
 *     \                 v2 (annotated, c2)
 *      d1               side (diverged from main)
 * and, only in the work repository (never upstream), n1: a child of c2
 * changing one line of the 300-line big.txt, so a thin pack of n1 ^c2
 * carries big.txt as a delta against c2's blob.
 */
static void make_upstream(void)
{
	run("git init -q -b main work && cd work &&"
	    " seq 1 300 | sed 's/^/line /' > big.txt && echo hello > README &&"
	    " git add . && git commit -qm c1 &&"
	    " sed -i 's/^line 5$/line five/' big.txt && git commit -qam c2 &&"
	    " git branch feature && git tag v1 HEAD~1 &&"
	    " git tag -a -m annotated v2 HEAD &&"
	    " git checkout -q -b side HEAD~1 &&"
	    " sed -i 's/^line 200$/line two hundred/' big.txt &&"
	    " git commit -qam d1 && git checkout -q main &&"
	    " cd .. && git clone -q --bare work up.git &&"
	    " cd work && git checkout -q -b next main &&"
	    " sed -i 's/^line 100$/line hundred/' big.txt &&"
	    " git commit -qam n1 && git checkout -q main");
	gitfixture_rev(c1, "work/.git", "main~1");
	gitfixture_rev(c2, "work/.git", "main");
	gitfixture_rev(d1, "work/.git", "side");
	gitfixture_rev(n1, "work/.git", "next");
}

/* A thin pack of revs (lines like "<new>" and "^<old>") from work, as git
 * send-pack runs pack-objects, written to tmp/name after prefix_len bytes
 * of 'x' (so the pack starts at an offset, as in a push spool). Returns the
 * pack's length. */
static uint64_t make_pack(const char *name, const char *revs, bool thin,
			  size_t prefix_len)
{
	char path[1300];
	struct stat st;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.revs", tmp, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(revs, f);
	ck_assert_int_eq(fclose(f), 0);
	run("head -c %zu /dev/zero | tr '\\0' x > %s && "
	    "git -C work pack-objects --all-progress-implied --revs --stdout"
	    " %s --delta-base-offset -q < %s.revs >> %s",
	    prefix_len, name, thin ? "--thin" : "", name, name);
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_gt((uint64_t)st.st_size, prefix_len);
	return (uint64_t)st.st_size - prefix_len;
}

/* The pushed pack of most tests, tmp/thin.pack: n1 thin against c2, so its
 * big.txt is a delta against a blob only upstream has. */
static uint64_t make_thin_pack(size_t prefix_len)
{
	char revs[128];

	snprintf(revs, sizeof(revs), "%s\n^%s\n", n1, c2);
	return make_pack("thin.pack", revs, true, prefix_len);
}

static int open_in_tmp(const char *name, int flags)
{
	char path[1300];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	fd = open(path, flags | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* Number of "incoming-*" directories in the mirror (pushed packs). */
static int incoming_dirs(void)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir(mpath);
	ck_assert_ptr_nonnull(d);
	for (de = readdir(d); de != NULL; de = readdir(d))
		if (!strncmp(de->d_name, "incoming-", 9))
			n++;
	closedir(d);
	return n;
}

static struct mirror *open_mirror(void)
{
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m = NULL;

	ck_assert_msg(mirror_open(&m, cache, REPO, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(m);
	return m;
}

/* Fetch url into m; must succeed. */
static void fetch(struct mirror *m, const char *url)
{
	struct gg_err err = GG_ERR_INIT;

	ck_assert_msg(mirror_fetch(m, url, "s", &err) == 0, "%s", err.msg);
}

/* Attach len bytes of fd from off as the pushed pack; must succeed. */
static void add_pack(struct mirror *m, int fd, uint64_t off, uint64_t len)
{
	struct gg_err err = GG_ERR_INIT;

	ck_assert_msg(mirror_add_pack(m, fd, off, len, &err) == 0, "%s",
		      err.msg);
}

static struct mirror *open_fetched_mirror(void)
{
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m = open_mirror();

	ck_assert_msg(mirror_fetch(m, up, "unused-secret", &err) == 0, "%s",
		      err.msg);
	return m;
}

/* What the mirror should hold for upstream: one refs/gg/<age>-<oid> per
 * distinct branch or tag object (age: 9999999999 minus the commit time it
 * leads to), sorted. */
static void tips_wanted(char *out, size_t size, const char *gitdir)
{
	capture(out, size,
		"g='%s'; git --git-dir=\"$g\" for-each-ref"
		" --format='%%(objectname)' refs/heads refs/tags | sort -u |"
		" while read o; do"
		"  t=$(git --git-dir=\"$g\" log -1 --format=%%ct"
		"      \"$o^{commit}\" -- 2>/dev/null); a=9999999999;"
		"  [ -n \"$t\" ] && a=$((9999999999 - t));"
		"  printf 'refs/gg/%%010d-%%s\\n' \"$a\" \"$o\";"
		" done | sort",
		gitdir);
}

/* Every ref the mirror has, sorted. */
static void mirror_refs(char *out, size_t size)
{
	capture(out, size,
		"git --git-dir='%s' for-each-ref --format='%%(refname)' | sort",
		mpath);
}

/* The mirror holds exactly upstream's tip objects, as hex refs. */
static void assert_tips_match(void)
{
	char want[8192], got[8192];

	tips_wanted(want, sizeof(want), up);
	mirror_refs(got, sizeof(got));
	ck_assert_str_eq(got, want);
	ck_assert_ptr_nonnull(strstr(got, "refs/gg/"));
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- open ---- */

START_TEST(open_creates_bare_repo_and_lock)
{
	char path[1400], out[64];
	struct mirror *m;

	m = open_mirror();
	ck_assert(is_dir(mpath));
	snprintf(path, sizeof(path), "%s/HEAD", mpath);
	ck_assert(is_file(path));
	snprintf(path, sizeof(path), "%s/objects", mpath);
	ck_assert(is_dir(path));
	snprintf(path, sizeof(path), "%s/.git", mpath);
	ck_assert(!is_dir(path));
	snprintf(path, sizeof(path), "%s.lock", mpath);
	ck_assert(is_file(path));
	capture(out, sizeof(out),
		"git --git-dir='%s' rev-parse --is-bare-repository", mpath);
	ck_assert_str_eq(out, "true");
	ck_assert(!mirror_has(m, UNKNOWN_OID));
	mirror_close(m);

	/* Reopening an existing mirror works; the lock file stays. */
	m = open_mirror();
	mirror_close(m);
	ck_assert(is_file(path));
	mirror_close(NULL);
}
END_TEST

START_TEST(open_bad_repo_name)
{
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m = (struct mirror *)&err;

	ck_assert_int_eq(mirror_open(&m, cache, "no-slash", &err), GG_EINVAL);
	ck_assert_ptr_null(m);
	ck_assert_str_eq(err.msg, "bad repository name");
}
END_TEST

/* ---- fetch ---- */

START_TEST(fetch_brings_branches_and_tags)
{
	char tagobj[41];
	struct mirror *m;

	make_upstream();
	m = open_mirror();
	ck_assert(!mirror_has(m, c1));
	mirror_close(m);
	m = open_fetched_mirror();
	/* objects, not names: one ref per tip object (main and feature share
	 * one; v2's is the tag object) */
	assert_tips_match();
	gitfixture_rev(tagobj, up, "refs/tags/v2");
	ck_assert(mirror_has(m, tagobj));
	ck_assert(mirror_has(m, c1));
	ck_assert(mirror_has(m, c2));
	ck_assert(mirror_has(m, d1));
	ck_assert(!mirror_has(m, n1)); /* never pushed upstream */
	mirror_close(m);

	/* The fetched objects persist in the mirror. */
	m = open_mirror();
	ck_assert(mirror_has(m, d1));
	mirror_close(m);
}
END_TEST

START_TEST(fetch_file_url_and_annotated_tag_object)
{
	char url[1200], tagobj[41];
	struct mirror *m;

	make_upstream();
	gitfixture_rev(tagobj, up, "refs/tags/v2");
	ck_assert_str_ne(tagobj, c2); /* an annotated tag object */
	snprintf(url, sizeof(url), "file://%s", up);
	m = open_mirror();
	fetch(m, url);
	ck_assert(mirror_has(m, tagobj));
	ck_assert(mirror_has(m, c2));
	mirror_close(m);
}
END_TEST

START_TEST(fetch_prunes_deleted_refs)
{
	char got[8192];
	struct mirror *m;

	make_upstream();
	m = open_fetched_mirror();
	mirror_close(m);
	run("git --git-dir=up.git branch -q -D side &&"
	    " git --git-dir=up.git tag -d v1 >/dev/null");
	m = open_fetched_mirror();
	assert_tips_match(); /* d1 (side's) and c1 (v1's) are no tips now */
	mirror_refs(got, sizeof(got));
	ck_assert_ptr_null(strstr(got, d1));
	ck_assert_ptr_null(strstr(got, c1));
	ck_assert(mirror_has(m, d1)); /* objects stay */
	mirror_close(m);
}
END_TEST

START_TEST(fetch_moves_forced_branch)
{
	struct mirror *m;

	make_upstream();
	m = open_fetched_mirror();
	mirror_close(m);
	/* A non-fast-forward move upstream is followed ('+' refspec). */
	run("git --git-dir=up.git update-ref refs/heads/main %s", d1);
	m = open_fetched_mirror();
	assert_tips_match();
	mirror_close(m);
}
END_TEST

/* Upstream replaces branch agent/df by agent/df/sub. When the mirror kept
 * upstream's names, the stale agent/df blocked agent/df/sub's path and
 * every later fetch failed, and with it every history check. */
START_TEST(fetch_survives_directory_file_ref_swap)
{
	struct mirror *m;

	make_upstream();
	run("git --git-dir=up.git update-ref refs/heads/agent/df %s", c1);
	m = open_fetched_mirror();
	mirror_close(m);
	run("git --git-dir=up.git update-ref -d refs/heads/agent/df &&"
	    " git --git-dir=up.git update-ref refs/heads/agent/df/sub %s", d1);
	run("cd work && git push -q ../up.git next:refs/heads/agent/df/sub2");
	m = open_fetched_mirror();
	ck_assert(mirror_has(m, n1));
	assert_tips_match();
	mirror_close(m);
}
END_TEST

/* libgit2 cannot even list a repository with a ref name over 1023 bytes
 * (git can make one). gitgate refuses to create such refs (policy.c); one
 * made another way fails the fetch, and so the history check, closed. */
START_TEST(fetch_fails_closed_on_ref_name_libgit2_cannot_read)
{
	struct gg_err err = GG_ERR_INIT;
	char name[1400];
	struct mirror *m;
	size_t i, n = 0;

	make_upstream();
	n += (size_t)snprintf(name, sizeof(name), "refs/heads/agent");
	for (i = 0; i < 6; i++) {
		name[n++] = '/';
		memset(name + n, 'y', 200);
		n += 200;
	}
	name[n] = '\0';
	run("git --git-dir=up.git update-ref '%s' %s", name, c1);
	m = open_mirror();
	ck_assert_int_eq(mirror_fetch(m, up, "s", &err), GG_EUPSTREAM);
	ck_assert_msg(!strncmp(err.msg, "mirror fetch: the provided buffer is "
				       "too short", 37), "%s", err.msg);
	ck_assert(!mirror_has(m, c1));
	mirror_close(m);
}
END_TEST

/* Mirrors made by older versions hold upstream's names: the first fetch
 * replaces them by tips, so none lingers (or blocks a path). */
START_TEST(fetch_replaces_names_from_older_mirrors)
{
	char got[8192];
	struct mirror *m;

	make_upstream();
	m = open_mirror();
	mirror_close(m);
	run("git --git-dir='%s' fetch -q '%s'"
	    " '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'",
	    mpath, up);
	mirror_refs(got, sizeof(got));
	ck_assert_ptr_nonnull(strstr(got, "refs/heads/main"));
	m = open_fetched_mirror();
	assert_tips_match();
	mirror_close(m);
}
END_TEST

START_TEST(fetch_bad_url)
{
	struct gg_err err = GG_ERR_INIT;
	char url[1200];
	struct mirror *m;

	m = open_mirror();
	snprintf(url, sizeof(url), "%s/does-not-exist.git", tmp);
	ck_assert_int_eq(mirror_fetch(m, url, "s", &err), GG_EUPSTREAM);
	ck_assert_msg(!strncmp(err.msg, "mirror fetch: ", 14), "%s", err.msg);
	mirror_close(m);
}
END_TEST

/* ---- has / is_ancestor ---- */

START_TEST(has_true_false)
{
	char blob[41];
	struct mirror *m;

	make_upstream();
	gitfixture_rev(blob, up, "main:big.txt");
	m = open_fetched_mirror();
	ck_assert(mirror_has(m, c1));
	ck_assert(mirror_has(m, blob));
	ck_assert(!mirror_has(m, UNKNOWN_OID));
	ck_assert(!mirror_has(m, n1));
	ck_assert(!mirror_has(m, "not-hex"));
	ck_assert(!mirror_has(m, ""));
	mirror_close(m);
}
END_TEST

static void expect_ancestor(struct mirror *m, const char *old, const char *new,
			    bool want)
{
	struct gg_err err = GG_ERR_INIT;
	bool ff = !want;

	ck_assert_msg(mirror_is_ancestor(&ff, m, old, new, &err) == 0, "%s",
		      err.msg);
	ck_assert_msg(ff == want, "%.8s..%.8s: want %d", old, new, want);
}

START_TEST(ancestry)
{
	struct mirror *m;

	make_upstream();
	m = open_fetched_mirror();
	expect_ancestor(m, c1, c2, true); /* fast-forward */
	expect_ancestor(m, c2, c2, true); /* equal */
	expect_ancestor(m, c1, c1, true);
	expect_ancestor(m, c2, d1, false); /* diverged */
	expect_ancestor(m, d1, c2, false);
	expect_ancestor(m, c2, c1, false); /* old descends from new */
	expect_ancestor(m, c1, d1, true);
	mirror_close(m);
}
END_TEST

START_TEST(ancestry_unknown_commit)
{
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m;
	bool ff = true;

	make_upstream();
	m = open_fetched_mirror();
	ck_assert_int_eq(mirror_is_ancestor(&ff, m, UNKNOWN_OID, c2, &err),
			 GG_ENOTFOUND);
	ck_assert(!ff);
	ck_assert_str_eq(err.msg, "cannot find commit 0123456789ab");
	gg_err_init(&err);
	ff = true;
	ck_assert_int_eq(mirror_is_ancestor(&ff, m, c1, UNKNOWN_OID, &err),
			 GG_ENOTFOUND);
	ck_assert(!ff);
	/* A commit that exists only in the client's repository. */
	gg_err_init(&err);
	ck_assert_int_eq(mirror_is_ancestor(&ff, m, c2, n1, &err),
			 GG_ENOTFOUND);
	mirror_close(m);
}
END_TEST

START_TEST(ancestry_non_commit)
{
	struct gg_err err = GG_ERR_INIT;
	char blob[41], tree[41], tagobj[41];
	struct mirror *m;
	bool ff = true;

	make_upstream();
	gitfixture_rev(blob, up, "main:big.txt");
	gitfixture_rev(tree, up, "main^{tree}");
	gitfixture_rev(tagobj, up, "refs/tags/v2");
	m = open_fetched_mirror();
	ck_assert(mirror_has(m, blob));
	ck_assert(mirror_has(m, tree));
	ck_assert_int_lt(mirror_is_ancestor(&ff, m, c1, blob, &err), 0);
	ck_assert(!ff);
	ck_assert(err.msg[0]);
	gg_err_init(&err);
	ck_assert_int_lt(mirror_is_ancestor(&ff, m, tree, c2, &err), 0);
	ck_assert(!ff);
	gg_err_init(&err);
	/* An annotated tag is not a commit either (no peeling). */
	ck_assert_int_lt(mirror_is_ancestor(&ff, m, c1, tagobj, &err), 0);
	gg_err_init(&err);
	ck_assert_int_eq(mirror_is_ancestor(&ff, m, "zz", c2, &err), GG_EINVAL);
	mirror_close(m);
}
END_TEST

/* ---- pushed packs ---- */

START_TEST(add_thin_pack_not_persisted)
{
	struct gg_err err = GG_ERR_INIT;
	char tree[41], blob[41];
	struct mirror *m;
	uint64_t len;
	int fd;

	make_upstream();
	gitfixture_rev(tree, "work/.git", "next^{tree}");
	gitfixture_rev(blob, "work/.git", "next:big.txt");
	len = make_thin_pack(123);
	m = open_fetched_mirror();
	ck_assert(!mirror_has(m, n1));
	fd = open_in_tmp("thin.pack", O_RDONLY);
	add_pack(m, fd, 123, len);
	ck_assert(mirror_has(m, n1));
	ck_assert(mirror_has(m, tree));
	ck_assert(mirror_has(m, blob));
	ck_assert_int_eq(incoming_dirs(), 1);
	expect_ancestor(m, c2, n1, true);
	expect_ancestor(m, c1, n1, true);
	expect_ancestor(m, d1, n1, false);
	expect_ancestor(m, n1, c2, false);
	/* One pack per handle. */
	ck_assert_int_eq(mirror_add_pack(m, fd, 123, len, &err), GG_EINVAL);
	ck_assert(mirror_has(m, n1));
	mirror_close(m);
	close(fd);

	/* Nothing of the pushed pack entered the mirror. */
	ck_assert_int_eq(incoming_dirs(), 0);
	m = open_mirror();
	ck_assert(!mirror_has(m, n1));
	ck_assert(!mirror_has(m, tree));
	ck_assert(!mirror_has(m, blob));
	ck_assert(mirror_has(m, c2));
	mirror_close(m);
	run("! git --git-dir='%s' cat-file -e %s 2>/dev/null", mpath, n1);
	run("git --git-dir='%s' fsck --no-progress >/dev/null 2>&1", mpath);
}
END_TEST

START_TEST(fetch_with_pack_attached)
{
	/* A stale mirror (only c1) with a pushed pack attached that carries
	 * c2 (n1's parent): a fetch must still download c2 into the mirror
	 * itself, even though this handle can already see it through the
	 * pack, or the mirror's refs would point at objects it lacks once the
	 * pack is gone. */
	char revs[128], early[1200];
	struct mirror *m;
	uint64_t len;
	int fd;

	make_upstream();
	run("git init -q --bare -b main early.git &&"
	    " git -C work push -q ../early.git main~1:refs/heads/main");
	snprintf(early, sizeof(early), "%s/early.git", tmp);
	snprintf(revs, sizeof(revs), "%s\n^%s\n", n1, c1);
	len = make_pack("pack", revs, true, 0);
	m = open_mirror();
	fetch(m, early);
	ck_assert(mirror_has(m, c1));
	ck_assert(!mirror_has(m, c2));
	fd = open_in_tmp("pack", O_RDONLY);
	add_pack(m, fd, 0, len);
	ck_assert(mirror_has(m, c2));
	ck_assert(mirror_has(m, n1));
	fetch(m, up);
	/* The pack stays attached across the fetch. */
	ck_assert(mirror_has(m, n1));
	ck_assert(mirror_has(m, d1));
	expect_ancestor(m, c1, n1, true);
	mirror_close(m);
	close(fd);

	m = open_mirror();
	ck_assert(mirror_has(m, c2));
	ck_assert(mirror_has(m, d1));
	ck_assert(!mirror_has(m, n1));
	mirror_close(m);
	run("git --git-dir='%s' fsck --no-progress >/dev/null 2>&1", mpath);
}
END_TEST

START_TEST(add_empty_pack)
{
	char revs[128];
	struct mirror *m;
	uint64_t len;
	int fd;

	/* What git sends when every object is already upstream (e.g. a new
	 * branch at an existing commit): a pack with zero objects. */
	make_upstream();
	snprintf(revs, sizeof(revs), "%s\n^%s\n", c2, c2);
	len = make_pack("empty.pack", revs, true, 0);
	ck_assert_uint_eq(len, 32); /* header + trailer */
	m = open_fetched_mirror();
	fd = open_in_tmp("empty.pack", O_RDONLY);
	add_pack(m, fd, 0, len);
	expect_ancestor(m, c1, c2, true);
	mirror_close(m);
	close(fd);
	ck_assert_int_eq(incoming_dirs(), 0);
}
END_TEST

START_TEST(add_thin_pack_missing_bases)
{
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m;
	uint64_t len;
	int fd;

	make_upstream();
	len = make_thin_pack(0);
	m = open_mirror(); /* empty: no bases */
	fd = open_in_tmp("thin.pack", O_RDONLY);
	ck_assert_int_eq(mirror_add_pack(m, fd, 0, len, &err), GG_ENOTFOUND);
	ck_assert_msg(!strncmp(err.msg, "pushed pack: ", 13), "%s", err.msg);
	ck_assert(!mirror_has(m, n1));
	ck_assert_int_eq(incoming_dirs(), 0);

	/* After a fetch the same pack goes in (what push.c's retry does). */
	fetch(m, up);
	add_pack(m, fd, 0, len);
	ck_assert(mirror_has(m, n1));
	expect_ancestor(m, c2, n1, true);
	mirror_close(m);
	close(fd);
	ck_assert_int_eq(incoming_dirs(), 0);
}
END_TEST

START_TEST(add_truncated_pack)
{
	static const uint64_t cut[] = {1, 10, 12, 40};
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m;
	uint64_t len;
	size_t i;
	int fd;

	make_upstream();
	len = make_thin_pack(0);
	m = open_fetched_mirror();
	fd = open_in_tmp("thin.pack", O_RDONLY);
	/* The pack cut short: only its first len - cut bytes, and the
	 * first few bytes (an incomplete header). */
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		gg_err_init(&err);
		ck_assert_int_eq(mirror_add_pack(m, fd, 0, len - cut[i], &err),
				 GG_EINVAL);
		ck_assert_msg(err.msg[0], "cut %u", (unsigned)cut[i]);
		ck_assert_int_eq(incoming_dirs(), 0);
	}
	gg_err_init(&err);
	ck_assert_int_eq(mirror_add_pack(m, fd, 0, 8, &err), GG_EINVAL);
	/* The range runs past the end of the file. */
	gg_err_init(&err);
	ck_assert_int_eq(mirror_add_pack(m, fd, 0, len + 100, &err), GG_EINVAL);
	ck_assert_str_eq(err.msg, "pushed pack is truncated");
	ck_assert_int_eq(incoming_dirs(), 0);
	ck_assert(!mirror_has(m, n1));
	/* The handle is still usable. */
	add_pack(m, fd, 0, len);
	ck_assert(mirror_has(m, n1));
	mirror_close(m);
	close(fd);
}
END_TEST

START_TEST(add_corrupt_pack)
{
	struct gg_err err = GG_ERR_INIT;
	unsigned char byte;
	struct mirror *m;
	uint64_t len, pos[6];
	size_t i;
	int fd;

	make_upstream();
	len = make_thin_pack(0);
	/* signature, version, first object, middle, trailer */
	pos[0] = 1;
	pos[1] = 7;
	pos[2] = 13;
	pos[3] = len / 2;
	pos[4] = len - 25;
	pos[5] = len - 1;
	m = open_fetched_mirror();
	fd = open_in_tmp("thin.pack", O_RDWR);
	for (i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
		ck_assert_int_eq(pread(fd, &byte, 1, (off_t)pos[i]), 1);
		byte ^= 0x5a;
		ck_assert_int_eq(pwrite(fd, &byte, 1, (off_t)pos[i]), 1);
		gg_err_init(&err);
		ck_assert_msg(mirror_add_pack(m, fd, 0, len, &err) == GG_EINVAL,
			      "byte %u: %s", (unsigned)pos[i], err.msg);
		ck_assert_int_eq(incoming_dirs(), 0);
		ck_assert(!mirror_has(m, n1));
		byte ^= 0x5a;
		ck_assert_int_eq(pwrite(fd, &byte, 1, (off_t)pos[i]), 1);
	}
	add_pack(m, fd, 0, len);
	mirror_close(m);
	close(fd);
}
END_TEST

START_TEST(add_not_a_pack)
{
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m;
	int fd;

	run("printf 'this is not a pack file at all, just text' > junk");
	m = open_mirror();
	fd = open_in_tmp("junk", O_RDONLY);
	ck_assert_int_eq(mirror_add_pack(m, fd, 0, 20, &err), GG_EINVAL);
	ck_assert_int_eq(incoming_dirs(), 0);
	mirror_close(m);
	close(fd);
}
END_TEST

START_TEST(add_len_zero_noop)
{
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m;
	uint64_t len;
	int fd;

	make_upstream();
	len = make_thin_pack(0);
	m = open_fetched_mirror();
	/* Not even the descriptor is looked at. */
	ck_assert_int_eq(mirror_add_pack(m, -1, 0, 0, &err), 0);
	ck_assert_str_eq(err.msg, "");
	ck_assert_int_eq(incoming_dirs(), 0);
	/* A real pack can still be attached afterwards. */
	fd = open_in_tmp("thin.pack", O_RDONLY);
	add_pack(m, fd, 0, len);
	ck_assert(mirror_has(m, n1));
	mirror_close(m);
	close(fd);
}
END_TEST

/* ---- locking ----
 *
 * Writers (creation, fetch) take an flock on <mirror>.git.lock; readers
 * (open, lookups, indexing a pushed pack) do not, so a slow pusher never
 * holds up another push to the same repository. */

struct worker {
	const char *repo;
	bool fetch;
	atomic_int done;
	int rc;
};

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	struct gg_err err = GG_ERR_INIT;
	struct mirror *m = NULL;

	w->rc = mirror_open(&m, cache, w->repo, &err);
	if (w->rc == 0 && w->fetch)
		w->rc = mirror_fetch(m, up, "s", &err);
	atomic_store(&w->done, 1);
	mirror_close(m);
	return NULL;
}

/* Open REPO's mirror (and fetch into it if asked) in a new thread t. */
static void worker_start(pthread_t *t, struct worker *w, bool do_fetch)
{
	w->repo = REPO;
	w->fetch = do_fetch;
	w->rc = -100;
	atomic_init(&w->done, 0);
	ck_assert_int_eq(pthread_create(t, NULL, worker_thread, w), 0);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Hold the writers' lock of REPO's mirror as another process would. */
static int hold_writer_lock(void)
{
	char path[1300];
	int fd;

	snprintf(path, sizeof(path), "%s.lock", mpath);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);
	return fd;
}

START_TEST(fetch_waits_for_writer_lock)
{
	struct worker w;
	struct mirror *m;
	pthread_t t;
	int fd;

	make_upstream();
	m = open_mirror(); /* creates the mirror */
	mirror_close(m);
	fd = hold_writer_lock();
	worker_start(&t, &w, true);
	sleep_ms(200);
	ck_assert_int_eq(atomic_load(&w.done), 0);
	close(fd); /* releases the lock */
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(atomic_load(&w.done), 1);
	ck_assert_int_eq(w.rc, 0);
}
END_TEST

START_TEST(readers_do_not_wait_for_writers)
{
	struct worker w;
	struct mirror *m = open_mirror();
	pthread_t t;
	int fd, i;

	mirror_close(m);
	fd = hold_writer_lock();
	worker_start(&t, &w, false);
	for (i = 0; i < 1000 && !atomic_load(&w.done); i++)
		sleep_ms(10);
	close(fd);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_msg(atomic_load(&w.done) == 1, "open waited for a writer");
	ck_assert_int_eq(w.rc, 0);
}
END_TEST

START_TEST(concurrent_fetches_are_serialised_and_succeed)
{
	struct worker w[4];
	pthread_t t[4];
	int i;

	make_upstream();
	for (i = 0; i < 4; i++)
		worker_start(&t[i], &w[i], true);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ck_assert_int_eq(w[i].rc, 0);
	}
	assert_tips_match();
}
END_TEST

static Suite *mirror_suite(void)
{
	Suite *s = suite_create("mirror");
	TCase *o = tcase_create("open");
	TCase *f = tcase_create("fetch");
	TCase *a = tcase_create("ancestry");
	TCase *p = tcase_create("pack");
	TCase *l = tcase_create("lock");
	TCase *all[] = {o, f, a, p, l};
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tcase_add_checked_fixture(all[i], setup,
					  gitfixture_remove_scratch);
		tcase_set_timeout(all[i], 60);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(o, open_creates_bare_repo_and_lock);
	tcase_add_test(o, open_bad_repo_name);
	tcase_add_test(f, fetch_brings_branches_and_tags);
	tcase_add_test(f, fetch_file_url_and_annotated_tag_object);
	tcase_add_test(f, fetch_prunes_deleted_refs);
	tcase_add_test(f, fetch_moves_forced_branch);
	tcase_add_test(f, fetch_survives_directory_file_ref_swap);
	tcase_add_test(f, fetch_fails_closed_on_ref_name_libgit2_cannot_read);
	tcase_add_test(f, fetch_replaces_names_from_older_mirrors);
	tcase_add_test(f, fetch_bad_url);
	tcase_add_test(a, has_true_false);
	tcase_add_test(a, ancestry);
	tcase_add_test(a, ancestry_unknown_commit);
	tcase_add_test(a, ancestry_non_commit);
	tcase_add_test(p, add_thin_pack_not_persisted);
	tcase_add_test(p, fetch_with_pack_attached);
	tcase_add_test(p, add_empty_pack);
	tcase_add_test(p, add_thin_pack_missing_bases);
	tcase_add_test(p, add_truncated_pack);
	tcase_add_test(p, add_corrupt_pack);
	tcase_add_test(p, add_not_a_pack);
	tcase_add_test(p, add_len_zero_noop);
	tcase_add_test(l, fetch_waits_for_writer_lock);
	tcase_add_test(l, readers_do_not_wait_for_writers);
	tcase_add_test(l, concurrent_fetches_are_serialised_and_succeed);
	return s;
}

int main(void)
{
	return gitfixture_main(mirror_suite());
}

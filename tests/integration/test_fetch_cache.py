#!/usr/bin/env python3
"""Integration suite of the fetch cache (issue #17): clones served from
gitgate's own mirror, with the real git client through a real `gitgate
serve` to a real smart-HTTP upstream (lighttpd + git http-backend).

What the tests rely on (the interface of issue #17):
  config   "fetch_cache": {"enabled": true, "max_size": "N[BKMG]"}
  audit    records of pack requests (POST .../git-upload-pack) carry
           "cache": "hit" | "miss" | "bypass" and "upstream_bytes"
  mirror   <cache_dir>/mirrors/<owner>/<name>.git, served with
           `git upload-pack --stateless-rpc`

Proof that a request cost upstream nothing comes from the upstream's
access log, not from gitgate's word: every repository carries an
incompressible blob (BLOB bytes), so a POST whose response is at least
PACK_MIN bytes is one that carried a pack, while a v2 ls-refs answer is a
few hundred bytes.

Run: GITGATE=build/gitgate python3 tests/integration/test_fetch_cache.py
(meson test registers it as integration-test_fetch_cache). The last line
is `N passed, N failed[, N skipped]`; the exit code is non-zero on failure.
"""

import concurrent.futures
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

KIB = 1024
MIB = 1024 * 1024
BLOB = 1 * MIB          # incompressible blob in every test repository
PACK_MIN = BLOB // 2    # a POST response this large carried a pack
CACHED = ("hit", "miss")
MARKER = "__gg_log_marker_"


class Clone:
    """The outcome of one git command through gitgate."""

    def __init__(self, rc, out, err, dest, sub):
        self.rc, self.out, self.err = rc, out, err
        self.dest, self.sub = dest, sub

    def __repr__(self):
        return "<git rc=%d dest=%s sub=%s>\n%s%s" % (
            self.rc, self.dest, self.sub, self.out[-1500:], self.err[-3000:])


class Stack:
    """An upstream and a gitgate in front of it with the fetch cache as
    given, plus what every test needs: repositories with a blob, tokens
    with their own `sub` (so audit records are attributed to one command),
    clones, and windows onto the upstream's access log."""

    def __init__(self, tmp, fetch_cache=None, upstream=None):
        self.tmp = tmp
        self.own_upstream = upstream is None
        self.up = upstream or h.Upstream().start()
        self.fetch_cache = fetch_cache
        self.gg = None
        self.gg_root = os.path.join(tmp, "gitgate")
        self.seq = itertools.count(1)  # next() is atomic: clones in threads
        self.start_gitgate()

    def start_gitgate(self, fetch_cache=None):
        """(Re)start gitgate on the same root, so the cache directory and
        keys survive; fetch_cache replaces the config object if given."""
        if fetch_cache is not None:
            self.fetch_cache = fetch_cache
        if self.gg is not None:
            self.gg.stop()
        extra = {}
        if self.fetch_cache is not None:
            extra["fetch_cache"] = self.fetch_cache
        self.gg = h.Gitgate(self.up.url, self.up.secret, root=self.gg_root,
                            keep=True, extra_config=extra)
        self.gg.start()
        return self.gg

    def stop(self):
        if self.gg:
            self.gg.stop()
        if self.own_upstream:
            self.up.stop()

    # -- repositories and tokens

    def new_repo(self, name, commits=3, blob=BLOB):
        repo = "acme/" + name
        files = {"blob.bin": h.pseudo_random_bytes(blob, repo)} if blob \
            else None
        head = self.up.create_repo(repo, commits=commits, files=files)
        return repo, head

    def token(self, repo, **kw):
        """(token, sub): a fresh sub per token."""
        sub = "t%d-%s" % (next(self.seq), repo.replace("/", "-"))
        return self.gg.mint(repo=repo, sub=sub, **kw), sub

    def dest(self, name):
        d = os.path.join(self.tmp, "client", "%s-%d" % (name, next(self.seq)))
        os.makedirs(os.path.dirname(d), exist_ok=True)
        return d

    # -- git through gitgate

    def clone(self, repo, *opts, proto=None, token=None, sub=None,
              name="clone", env=None):
        """git [-c protocol.version=N] clone OPTS <gitgate url> DEST."""
        if token is None:
            token, sub = self.token(repo)
        dest = self.dest(name)
        args = ["-c", "protocol.version=%d" % proto] if proto is not None \
            else []
        args += ["clone", "-q"] + list(opts) + \
            [self.gg.repo_url(repo, token), dest]
        rc, out, err = h.git(*args, env=env)
        return Clone(rc, out, err, dest, sub)

    def fetch_oid(self, url, oid, proto):
        """git fetch URL OID into a fresh repository: (rc, stderr)."""
        d = self.dest("fetch-oid")
        h.git("init", "-q", d, check=True)
        rc, _, err = h.git("-c", "protocol.version=%d" % proto, "fetch", url,
                           oid, cwd=d)
        return rc, err

    def advertise(self, repo, token):
        """GET info/refs through gitgate, as every client does first:
        gitgate then knows upstream's current refs."""
        r = self.gg.request(
            "GET", "/%s.git/info/refs?service=git-upload-pack" % repo,
            {"Authorization": h.basic_auth("agent", token)})
        if r.status != 200:
            raise h.HarnessError("info/refs through gitgate: %r" % r)
        return r

    def raw_v0_fetch(self, repo, token, oid):
        """A v0 pack request for oid straight to gitgate (no advertisement
        first, no client-side check): the Response."""
        return self.gg.request(
            "POST", "/%s.git/git-upload-pack" % repo,
            {"Authorization": h.basic_auth("agent", token),
             "Content-Type": "application/x-git-upload-pack-request"},
            h.upload_pack_request_v0([oid]))

    # -- evidence

    def upload_pack_records(self, sub):
        """Audit records of sub's POSTs to git-upload-pack, in order."""
        return [r for r in self.gg.audit_records()
                if r.get("sub") == sub and
                r.get("service") == "git-upload-pack" and
                r.get("bytes_in", 0) > 0]

    def pack_records(self, sub):
        """Those that the cache answered (hit or miss) with a 200."""
        return [r for r in self.upload_pack_records(sub)
                if r.get("cache") in CACHED and r.get("status") == 200 and
                r.get("decision") == "allow"]

    def access_window(self, fn):
        """Run fn(); return (its result, the upstream access-log lines of
        requests made meanwhile)."""
        before = len(self.up.flushed_access_log())
        result = fn()
        lines = self.up.flushed_access_log()[before:]
        return result, [l for l in lines if MARKER not in l]

    def pack_posts(self, lines, repo):
        """Upstream POSTs to repo's git-upload-pack that carried a pack."""
        return [p for p in self.up.upload_pack_posts(lines, repo)
                if p[1] >= PACK_MIN]

    def mirror(self, repo):
        return self.gg.mirror_path(repo)

    def mirror_has(self, repo, oid):
        rc, _, _ = h.git("--git-dir=" + self.mirror(repo), "cat-file", "-e",
                         oid + "^{object}")
        return rc == 0


def descendants(pid):
    """{pid: cmdline} of every live descendant of pid, from /proc."""
    parents = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        parents[int(d)] = (ppid, cmd.strip())
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for c, (pp, cmd) in parents.items():
            if pp == p and c not in out:
                out[c] = cmd
                todo.append(c)
    return out


def serving_processes(pid):
    """Descendants of gitgate that serve a client: upload-pack and the
    pack-objects writing to its stdout (a background repack's pack-objects
    writes files and does not count)."""
    return {p: c for p, c in descendants(pid).items()
            if "upload-pack" in c or
            ("pack-objects" in c and "--stdout" in c)}


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


class CacheTestBase(unittest.TestCase):
    """Assertions shared by the test classes."""

    def assertGitOk(self, res, what):
        self.assertEqual(res.rc, 0, "%s failed: %r" % (what, res))

    def assertGitFails(self, res, what):
        self.assertNotEqual(res.rc, 0, "%s succeeded: %r" % (what, res))

    def assertCorrectClone(self, stack, res, repo, what="clone",
                           full=True):
        """Clone finished, its HEAD and branches are upstream's, and git
        fsck finds nothing wrong with what was received."""
        self.assertGitOk(res, what)
        want = stack.up.refs(repo)
        self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=res.dest),
                         want["refs/heads/main"], what)
        if full:
            _, out, _ = h.git("for-each-ref", "refs/remotes/origin",
                              "--format=%(refname:lstrip=3) %(objectname)",
                              cwd=res.dest, check=True)
            got = dict(l.split(" ", 1) for l in out.splitlines()
                       if not l.startswith("HEAD "))
            self.assertEqual(
                got, {k[len("refs/heads/"):]: v for k, v in want.items()
                      if k.startswith("refs/heads/")}, what)
        rc, out, err = h.git("fsck", "--no-progress", cwd=res.dest)
        self.assertEqual(rc, 0, "%s: git fsck: %s%s" % (what, out, err))

    def assertServed(self, stack, res, cache, what):
        """The last pack request of res was answered by the cache as
        `cache` (a string or a tuple of allowed values); returns it."""
        recs = stack.upload_pack_records(res.sub)
        self.assertTrue(recs, "%s: no upload-pack POST audited for %s" %
                        (what, res.sub))
        rec = recs[-1]
        allowed = (cache,) if isinstance(cache, str) else cache
        self.assertIn(rec.get("cache"), allowed, "%s: %r" % (what, rec))
        self.assertIsInstance(rec.get("upstream_bytes"), int,
                              "%s: %r" % (what, rec))
        return rec


class FetchCacheTest(CacheTestBase):
    """One upstream and one gitgate with the cache on for the class; every
    test works on a repository of its own, so cold and warm are its own."""

    stack = None
    startup_error = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-cache-")
        try:
            cls.stack = Stack(cls.tmp, {"enabled": True})
        except Exception as e:  # reported by every test, see setUp
            cls.startup_error = "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("\nSTARTUP FAILED: %s\n" % cls.startup_error)

    @classmethod
    def tearDownClass(cls):
        if cls.stack:
            cls.stack.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        if self.startup_error:
            self.fail("upstream/gitgate could not be started: " +
                      self.startup_error[:600])
        self.s = self.stack

    def tearDown(self):
        self.assertTrue(self.s.gg.running(), "gitgate died:\n" +
                        self.s.gg.stderr_text()[-3000:])

    # -- hit and miss

    def test_miss_then_hit(self):
        s = self.s
        repo, _ = s.new_repo("hitmiss")
        r1, lines1 = s.access_window(lambda: s.clone(repo, proto=0))
        self.assertCorrectClone(s, r1, repo, "cold clone")
        rec1 = self.assertServed(s, r1, "miss", "cold clone")
        self.assertGreaterEqual(rec1["upstream_bytes"], BLOB, rec1)
        self.assertEqual(len(s.pack_posts(lines1, repo)), 1, lines1)
        self.assertTrue(os.path.isdir(s.mirror(repo)), s.mirror(repo))

        r2, lines2 = s.access_window(lambda: s.clone(repo, proto=0))
        self.assertCorrectClone(s, r2, repo, "warm clone")
        rec2 = self.assertServed(s, r2, "hit", "warm clone")
        self.assertEqual(rec2["upstream_bytes"], 0, rec2)
        # upstream saw the advertisement and nothing else: no pack request
        self.assertEqual(s.up.upload_pack_posts(lines2, repo), [], lines2)
        self.assertTrue(any(
            '"GET /%s.git/info/refs?service=git-upload-pack ' % repo in l
            for l in lines2), lines2)

    def test_upstream_push_behind_gitgate_is_served(self):
        s = self.s
        repo, _ = s.new_repo("behind")
        warm = s.clone(repo)
        self.assertCorrectClone(s, warm, repo, "first clone")
        new = s.up.add_commit(repo, message="pushed around gitgate")
        r, lines = s.access_window(lambda: s.clone(repo))
        self.assertCorrectClone(s, r, repo, "clone after upstream push")
        self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=r.dest), new)
        rec = self.assertServed(s, r, "miss", "clone after upstream push")
        # the mirror caught up incrementally: not the blob again
        self.assertGreater(rec["upstream_bytes"], 0, rec)
        self.assertLess(rec["upstream_bytes"], BLOB // 4, rec)
        self.assertEqual(s.pack_posts(lines, repo), [], lines)
        # and an existing clone's fetch gets the next one
        newer = s.up.add_commit(repo, message="and another")
        rc, _, err = h.git("fetch", "-q", "origin", cwd=warm.dest)
        self.assertEqual(rc, 0, err)
        self.assertEqual(h.git_out("rev-parse", "origin/main",
                                   cwd=warm.dest), newer)

    def test_catch_up_after_old_tags_is_incremental(self):
        """libgit2 offers its haves depth-first from the mirror's refs in
        name order and stops at the first batch upstream acknowledges; with
        tips named by object id alone, one new commit on a repository with
        old tags re-downloaded everything since whichever tag's id sorted
        first. The newest tip must be offered first. (The content is
        fixed so that an old tag's id sorts first: with plain id names
        this test fails, 68 KB instead of about 1 KB.)"""
        s = self.s
        repo, _ = s.new_repo("oldtags", commits=1, blob=0)
        work = s.dest("oldtags-work")
        h.git("clone", "-q", s.up.repo_url(repo), work, check=True)
        chunk = 16 * 1024
        for i in range(64):
            with open(os.path.join(work, "f%02d.bin" % i), "wb") as f:
                f.write(h.pseudo_random_bytes(chunk, b"oldtags-b-%d" % i))
            h.git("add", "-A", cwd=work, check=True)
            date = "%d +0000" % (1700000000 + 60 * i)
            h.git("commit", "-q", "-m", "c%d" % i, cwd=work, check=True,
                  env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
            if i < 60:
                h.git("tag", "v%d" % i, cwd=work, check=True)
        h.git("push", "-q", "--tags", "origin", "HEAD:refs/heads/main",
              cwd=work, check=True)
        self.assertCorrectClone(s, s.clone(repo), repo, "cold clone")
        s.up.add_commit(repo, message="one small commit")
        r = s.clone(repo)
        self.assertCorrectClone(s, r, repo, "clone after the new commit")
        rec = self.assertServed(s, r, "miss", "clone after the new commit")
        # the new commit, its tree and a tiny file; the bug fetched the
        # newest 16 KiB files again
        self.assertGreater(rec["upstream_bytes"], 0, rec)
        self.assertLess(rec["upstream_bytes"], chunk, rec)

    # -- what the cache must not serve

    def make_doomed(self, repo):
        """Two commits reachable only from branches `doomed` and `moving`,
        cloned once through gitgate (so the mirror has them), then deleted
        and force-pushed away upstream. Returns their ids."""
        s = self.s
        work = s.dest("doomed-work")
        h.git("clone", "-q", s.up.repo_url(repo), work, check=True)
        gone = h.commit_file(work, "doomed.txt", "deleted later\n")
        h.git("push", "-q", "origin", "HEAD:refs/heads/doomed", cwd=work,
              check=True)
        h.git("reset", "-q", "--hard", "origin/main", cwd=work, check=True)
        moved = h.commit_file(work, "moving.txt", "forced away later\n")
        h.git("push", "-q", "origin", "HEAD:refs/heads/moving", cwd=work,
              check=True)
        r = s.clone(repo)
        self.assertCorrectClone(s, r, repo, "clone with both branches")
        self.assertTrue(s.mirror_has(repo, gone) and
                        s.mirror_has(repo, moved),
                        "the mirror never had the commits: test proves "
                        "nothing")
        s.up.delete_ref(repo, "refs/heads/doomed")
        s.up.set_ref(repo, "refs/heads/moving", s.up.rev_parse(repo, "main"))
        return gone, moved

    def test_deleted_and_force_pushed_commits_not_served(self):
        s = self.s
        repo, _ = s.new_repo("doomed")
        gone, moved = self.make_doomed(repo)
        token, sub = s.token(repo)
        for oid, what in ((gone, "deleted branch"), (moved, "force-pushed")):
            # v0: git itself refuses to ask for an unadvertised object, so
            # ask gitgate directly; upstream's v0 refuses it too
            direct = h.http_request(
                s.up.port, "POST", "/%s.git/git-upload-pack" % repo,
                {"Authorization": h.basic_auth(h.UPSTREAM_USER,
                                               s.up.secret),
                 "Content-Type": "application/x-git-upload-pack-request"},
                h.upload_pack_request_v0([oid]))
            self.assertNotIn(b"PACK", direct.body, "upstream v0 served it")
            # after an advertisement (what git does), and without one once
            # the last advertisement is no longer fresh (GG_CACHE_FRESH_MS)
            for how in ("after info/refs", "no info/refs, 6 s later"):
                with self.subTest(what=what, proto=0, how=how):
                    if how == "after info/refs":
                        # refs gitgate's own fetch saw count as current
                        # for GG_CACHE_FRESH_MS (5 s, README "Fetch
                        # cache"): past that window, never served
                        time.sleep(6)
                        s.advertise(repo, token)
                    else:
                        time.sleep(6)
                    via = s.raw_v0_fetch(repo, token, oid)
                    recs = s.upload_pack_records(sub)
                    self.assertNotIn(b"PACK", via.body, "HTTP %d, audit %r"
                                     % (via.status, recs[-1:]))
            # v2: git asks for the id; upstream's http-backend (v2 does
            # not check reachability) may answer from its object store,
            # but never the mirror
            with self.subTest(what=what, proto=2):
                drc, derr = s.fetch_oid(s.up.repo_url(repo), oid, 2)
                vrc, verr = s.fetch_oid(s.gg.repo_url(repo, token), oid, 2)
                if drc != 0:
                    self.assertNotEqual(vrc, 0, "upstream refuses, gitgate "
                                        "served: %s" % verr)
                recs = s.upload_pack_records(sub)
                self.assertTrue(recs, "no record")
                self.assertNotIn(recs[-1].get("cache"), CACHED,
                                 "served from the mirror (upstream itself: "
                                 "rc %d): %r" % (drc, recs[-1]))

    def test_token_for_other_repo_gets_nothing(self):
        s = self.s
        repo, head = s.new_repo("private")
        other, _ = s.new_repo("public")
        self.assertCorrectClone(s, s.clone(repo), repo, "warm-up clone")
        token, sub = s.token(other)
        r = s.clone(repo, token=token, sub=sub)
        self.assertGitFails(r, "clone of a repository the token lacks")
        self.assertIn("403", r.err)
        resp = s.raw_v0_fetch(repo, token, head)
        self.assertEqual(resp.status, 403, resp)
        self.assertNotIn(b"PACK", resp.body)
        # nor through its own repository's URL (mirrors share no objects)
        rc, err = s.fetch_oid(s.gg.repo_url(other, token), head, 2)
        self.assertNotEqual(rc, 0, "got %s via %s: %s" % (head, other, err))
        self.assertFalse(s.mirror_has(other, head))
        self.assertEqual(s.pack_records(sub), [])

    def test_refused_push_never_enters_mirror(self):
        s = self.s
        repo, head = s.new_repo("refused")
        token, sub = s.token(repo, push=["agent/*"])
        r = s.clone(repo, token=token, sub=sub)
        self.assertCorrectClone(s, r, repo, "clone")
        bad = h.commit_file(r.dest, "nope.txt", "not for main\n")
        rc, _, err = h.git("push", "origin", "HEAD:main", cwd=r.dest)
        self.assertNotEqual(rc, 0, err)
        self.assertIn("[remote rejected]", err)
        self.assertEqual(s.up.rev_parse(repo, "main"), head)
        self.assertTrue(s.mirror_has(repo, head), "no mirror to look in")
        self.assertFalse(s.mirror_has(repo, bad),
                         "refused push's commit is in the mirror")
        again = s.clone(repo)
        self.assertCorrectClone(s, again, repo, "clone after refused push")
        rc, err = s.fetch_oid(s.gg.repo_url(repo, token), bad, 2)
        self.assertNotEqual(rc, 0, err)
        self.assertFalse(s.mirror_has(repo, bad))

    # -- protocols and clone shapes

    def test_protocol_versions(self):
        s = self.s
        repo, _ = s.new_repo("protocols")
        for v in (0, 1, 2, 2, 1, 0):  # cold first, then warm
            r = s.clone(repo, proto=v, env={"GIT_TRACE_PACKET": "1"})
            self.assertCorrectClone(s, r, repo, "clone v%d" % v)
            self.assertEqual("git< version 2" in r.err, v == 2,
                             "v%d: protocol actually spoken" % v)
            self.assertServed(s, r, CACHED, "clone v%d" % v)

    def test_shallow_clone(self):
        s = self.s
        repo, head = s.new_repo("shallow", commits=4)
        for label in ("cold", "warm"):
            r = s.clone(repo, "--depth", "1", "--no-single-branch")
            self.assertCorrectClone(s, r, repo, "%s --depth 1" % label)
            self.assertTrue(os.path.isfile(os.path.join(
                r.dest, ".git", "shallow")), "no .git/shallow")
            self.assertEqual(h.git_out("rev-list", "--count", "HEAD",
                                       cwd=r.dest), "1")
            self.assertServed(s, r, CACHED, "%s --depth 1" % label)

    def test_partial_clone_then_lazy_fetch(self):
        s = self.s
        repo, head = s.new_repo("partial")
        # the advertisement is upstream's: it offers `filter` (as GitHub's
        # does) only with this set
        s.up.git_dir(repo, "config", "uploadpack.allowFilter", "true")
        s.clone(repo)  # warm
        token, sub = s.token(repo)
        r = s.clone(repo, "--filter=blob:none", "--no-checkout", token=token,
                    sub=sub)
        self.assertGitOk(r, "partial clone")
        self.assertNotIn("filtering not recognized", r.err)
        self.assertServed(s, r, CACHED, "partial clone")
        _, out, _ = h.git("rev-list", "--objects", "--missing=print", "--all",
                          cwd=r.dest, check=True)
        missing = [l for l in out.splitlines() if l.startswith("?")]
        self.assertTrue(missing, "the clone has every blob: the filter was "
                        "ignored")
        n_records = len(s.upload_pack_records(sub))
        rc, _, err = h.git("checkout", "-q", "main", cwd=r.dest)
        self.assertEqual(rc, 0, err)
        with open(os.path.join(r.dest, "blob.bin"), "rb") as f:
            self.assertEqual(f.read(), h.pseudo_random_bytes(BLOB, repo))
        self.assertGreater(len(s.upload_pack_records(sub)), n_records,
                           "checkout fetched no blob through gitgate")
        self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=r.dest), head)

    # -- concurrency and faults

    def test_concurrent_cold_clones_one_upstream_fetch(self):
        s = self.s
        repo, _ = s.new_repo("herd")
        token, sub = s.token(repo)
        n = 32

        def herd():
            with concurrent.futures.ThreadPoolExecutor(n) as ex:
                futs = [ex.submit(s.clone, repo, token=token, sub=sub,
                                  name="herd") for _ in range(n)]
                return [f.result() for f in futs]

        results, lines = s.access_window(herd)
        for i, r in enumerate(results):
            self.assertCorrectClone(s, r, repo, "concurrent clone %d" % i)
        packs = s.pack_posts(lines, repo)
        self.assertEqual(len(packs), 1, "upstream pack requests: %r" % packs)
        recs = s.pack_records(sub)
        self.assertEqual(len(recs), n, recs)
        self.assertIn("miss", [r["cache"] for r in recs])
        paid = [r["upstream_bytes"] for r in recs if r["upstream_bytes"]]
        self.assertEqual(len(paid), 1, "catch-up bytes counted on %d "
                         "requests: %r" % (len(paid), paid))
        self.assertLessEqual(paid[0], packs[0][1] * 11 // 10 + 64 * KIB)

    def test_client_killed_mid_clone_ends_upload_pack(self):
        s = self.s
        size = 64 * MIB
        repo, _ = s.new_repo("killed", blob=size)
        self.assertCorrectClone(s, s.clone(repo), repo, "warm-up clone")
        token, _ = s.token(repo)
        dest = s.dest("killed")
        proc = subprocess.Popen(
            ["git", "clone", "-q", s.gg.repo_url(repo, token), dest],
            env=h.git_env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            def receiving():
                d = os.path.join(dest, ".git", "objects", "pack")
                try:
                    return any(f.startswith("tmp_pack") and
                               os.path.getsize(os.path.join(d, f)) > 0
                               for f in os.listdir(d))
                except OSError:
                    return False
            got = h.wait_until(receiving, 30, 0.002)
            os.killpg(proc.pid, signal.SIGSTOP)  # stop reading: it waits
            self.assertTrue(got, "the clone never received a byte")
            self.assertIsNone(proc.poll(), "the clone finished first")
            busy = h.wait_until(lambda: serving_processes(s.gg.proc.pid), 5)
            self.assertTrue(busy, "no upload-pack under gitgate while a "
                            "warm clone streams: %r" %
                            descendants(s.gg.proc.pid))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        left = h.wait_until(lambda: not serving_processes(s.gg.proc.pid), 5)
        self.assertTrue(left, "still running 5 s after the client died: %r"
                        % serving_processes(s.gg.proc.pid))
        self.assertCorrectClone(s, s.clone(repo), repo, "clone afterwards")

    def test_zz_no_secret_in_logs(self):
        s = self.s
        logs = s.gg.stderr_text() + s.gg.audit_text()
        self.assertTrue(s.gg.minted, "no token was minted")
        for secret in [s.up.secret] + s.gg.minted:
            self.assertNotIn(secret, logs)
        # nor in the mirrors' config, FETCH_HEAD, logs (a remote URL
        # with the credential in it would be)
        for root, _, files in os.walk(s.gg.cache_dir):
            for f in files:
                p = os.path.join(root, f)
                if os.path.islink(p) or os.path.getsize(p) > 256 * KIB:
                    continue
                with open(p, "rb") as fh:
                    self.assertNotIn(s.up.secret.encode(), fh.read(), p)


class EvictionTest(CacheTestBase):
    """max_size bounds the mirrors: least recently used evicted whole."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gg-test-cache-evict-")
        self.s = Stack(self.tmp, {"enabled": True})

    def tearDown(self):
        self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def clone_ok(self, repo):
        r = self.s.clone(repo)
        self.assertCorrectClone(self.s, r, repo, "clone of " + repo)
        return r

    def present(self, *repos):
        return tuple(os.path.isdir(self.s.mirror(r)) for r in repos)

    def test_lru_eviction_under_max_size(self):
        s = self.s
        a, b, c = (s.new_repo("evict-" + n, blob=3 * MIB)[0]
                   for n in "abc")
        self.clone_ok(a)
        one = dir_size(s.mirror(a))
        self.assertGreater(one, 3 * MIB)
        # room for two mirrors, not three
        s.start_gitgate({"enabled": True,
                         "max_size": "%dK" % (one * 5 // 2 // KIB)})
        self.clone_ok(b)
        self.clone_ok(c)
        self.assertTrue(h.wait_until(
            lambda: self.present(a, b, c) == (False, True, True), 10),
            "after a, b, c (mirror %d bytes, max %s): present %r" % (
                one, s.fetch_cache["max_size"], self.present(a, b, c)))
        self.clone_ok(b)   # b is now more recent than c
        r = self.clone_ok(a)
        self.assertServed(s, r, "miss", "clone of an evicted repository")
        self.assertTrue(h.wait_until(
            lambda: self.present(a, b, c) == (True, True, False), 10),
            "after b, a: present %r" % (self.present(a, b, c),))
        for repo in (a, b, c):
            self.clone_ok(repo)

    def test_tiny_max_size_keeps_serving(self):
        s = self.s
        s.start_gitgate({"enabled": True, "max_size": "1M"})
        repos = [s.new_repo("tiny-" + n, blob=2 * MIB)[0] for n in "abc"]
        for repo in repos + repos:
            r = self.clone_ok(repo)
            self.assertServed(s, r, CACHED, "clone of " + repo)
        # every mirror is over the limit alone: none but the last may stay
        self.assertTrue(h.wait_until(
            lambda: not any(self.present(*repos[:2])), 10),
            "present %r" % (self.present(*repos),))


class CacheOffTest(CacheTestBase):
    """Without the cache (or with it disabled) fetches relay as before."""

    def run_off(self, fetch_cache):
        tmp = tempfile.mkdtemp(prefix="gg-test-cache-off-")
        s = Stack(tmp, fetch_cache)
        try:
            repo, _ = s.new_repo("off")
            r, lines = s.access_window(lambda: s.clone(repo, proto=0))
            self.assertCorrectClone(s, r, repo, "clone, cache off")
            self.assertEqual(len(s.pack_posts(lines, repo)), 1, lines)
            recs = s.upload_pack_records(r.sub)
            self.assertTrue(recs)
            for rec in recs:
                self.assertIn(rec.get("cache", "absent"),
                              ("absent", "bypass"), rec)
            print("  cache off (%r): audit cache field %s" % (
                fetch_cache, sorted({rec.get("cache", "absent")
                                     for rec in recs})))
            self.assertFalse(os.path.exists(s.mirror(repo)),
                             "a fetch made a mirror with the cache off")
        finally:
            s.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_no_fetch_cache_key(self):
        self.run_off(None)

    def test_disabled(self):
        self.run_off({"enabled": False, "max_size": "1G"})


class UpstreamDownTest(CacheTestBase):
    """No one is served stale data as fresh."""

    def test_upstream_down_is_502_not_stale(self):
        tmp = tempfile.mkdtemp(prefix="gg-test-cache-down-")
        s = Stack(tmp, {"enabled": True})
        try:
            repo, head = s.new_repo("down")
            self.assertCorrectClone(s, s.clone(repo), repo, "warm-up")
            self.assertCorrectClone(s, s.clone(repo), repo, "warm clone")
            token, sub = s.token(repo)
            s.up.down()
            r = s.gg.request("GET", "/%s.git/info/refs?service="
                             "git-upload-pack" % repo,
                             {"Authorization": h.basic_auth("agent", token)})
            self.assertEqual(r.status, 502, r)
            res = s.clone(repo, token=token, sub=sub)
            self.assertGitFails(res, "clone with upstream down")
            # a client that skips the advertisement, once the last answer
            # upstream gave is no longer fresh
            time.sleep(6)
            resp = s.raw_v0_fetch(repo, token, head)
            self.assertNotIn(b"PACK", resp.body, resp)
            self.assertEqual(resp.status, 502, resp)
            self.assertEqual(s.pack_records(sub), [])
            s.up.up()
            self.assertCorrectClone(s, s.clone(repo), repo, "after up()")
        finally:
            s.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    h.run_suite()

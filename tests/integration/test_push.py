#!/usr/bin/env python3
"""Integration suite for push rules: the real git client pushing through a
real `gitgate serve` to a real smart-HTTP upstream (lighttpd + git
http-backend). See harness.py.

Every test checks three things: git's exit code, the exact line git prints
for each ref (`! [remote rejected] … (<reason>)` or the success line), and
the refs of the upstream bare repository afterwards. After every push the
cache is checked for leftovers (spool files in <cache>/tmp, `incoming-*`
pack directories in a mirror).

Run: GITGATE=build/gitgate python3 tests/integration/test_push.py
(meson test registers it as integration-test_push). The last line is
`N passed, N failed[, N skipped]`; the exit code is non-zero on failure.
"""

import concurrent.futures
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import struct
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ZERO = "0" * 40
RP_REQUEST = "application/x-git-receive-pack-request"
RP_RESULT = "application/x-git-receive-pack-result"


# --------------------------------------------------------------------------
# wire helpers (protocol v0 receive-pack, built by hand)


def pkt_lines(data):
    """Split pkt-lines: a list of payloads (bytes), None for a flush."""
    out, i = [], 0
    while i < len(data):
        n = int(data[i:i + 4], 16)
        if n == 0:
            out.append(None)
            i += 4
            continue
        if n < 4 or i + n > len(data):
            raise AssertionError("bad pkt-line at %d in %r" % (i, data[:200]))
        out.append(data[i + 4:i + n])
        i += n
    return out


def report_status(body, sideband):
    """(report lines as str, progress text) of a receive-pack result."""
    progress = b""
    if sideband:
        report = b""
        for p in pkt_lines(body):
            if p is None:
                continue
            band, payload = p[0], p[1:]
            if band == 1:
                report += payload
            elif band in (2, 3):
                progress += payload
    else:
        report = body
    lines = [p.decode().rstrip("\n") for p in pkt_lines(report)
             if p is not None]
    return lines, progress.decode("utf-8", "replace")


def command_section(commands, caps):
    """pkt-line command list: [(old, new, ref)], caps on the first line."""
    body = b""
    for i, (old, new, ref) in enumerate(commands):
        line = "%s %s %s" % (old, new, ref)
        if i == 0:
            line += "\0" + caps
        body += h.pkt_line(line)
    return body + b"0000"


def pack_between(worktree, new, *exclude):
    """`git pack-objects --stdout` of the objects reachable from new and not
    from any of exclude."""
    revs = new + "\n" + "".join("^%s\n" % e for e in exclude)
    p = subprocess.run(["git", "pack-objects", "--stdout", "--revs", "-q"],
                       cwd=worktree, input=revs.encode(), capture_output=True,
                       env=h.git_env(), check=True)
    assert p.stdout.startswith(b"PACK"), p.stderr
    return p.stdout


def pack_of(objects):
    """A pack (version 2) of (type, body) pairs: 1 commit, 2 tree, 3 blob."""
    data = b"PACK" + struct.pack(">II", 2, len(objects))
    for kind, body in objects:
        size, c, head = len(body), (kind << 4) | (len(body) & 15), b""
        size >>= 4
        while size:
            head += bytes([c | 0x80])
            c, size = size & 0x7F, size >> 7
        data += head + bytes([c]) + zlib.compress(body)
    return data + hashlib.sha1(data).digest()


def object_id(kind, body):
    name = {1: b"commit", 2: b"tree"}[kind]
    return hashlib.sha1(b"%s %d\0" % (name, len(body)) + body).hexdigest()


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def big_text(tag, lines=400):
    """A text file large enough for git to store later versions as deltas."""
    return "".join("%s line %04d: the quick brown fox jumps over the lazy "
                   "dog\n" % (tag, i) for i in range(lines))


def edit_line(text, n, new):
    lines = text.splitlines(True)
    lines[n] = new + "\n"
    return "".join(lines)


class PushTest(unittest.TestCase):
    """One upstream and one gitgate for the whole class; every test works on
    its own repository (acme/<name>) so tests do not see each other's refs."""

    startup_error = None
    up = None
    gg = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-push-")
        try:
            cls.up = h.Upstream()
            cls.up.start()
            cls.gg = h.Gitgate(cls.up.url, cls.up.secret)
            cls.gg.start()
        except Exception as e:  # reported by every test, see setUp
            cls.startup_error = "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("\nSTARTUP FAILED: %s\n" % cls.startup_error)

    @classmethod
    def tearDownClass(cls):
        if cls.gg:
            cls.gg.stop()
        if cls.up:
            cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        if self.startup_error:
            self.fail("upstream/gitgate could not be started: " +
                      self.startup_error[:600])
        self._stderr_mark = len(self.gg.stderr_text())

    def tearDown(self):
        self.assertTrue(self.gg.running(), "gitgate died:\n" +
                        self.gg.stderr_text()[-3000:])

    # -- helpers: setup

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def new_repo(self, name, commits=2, files=None):
        repo = "acme/" + name
        head = self.up.create_repo(repo, commits=commits, files=files)
        return repo, head

    def mint(self, repo, push=("agent/*",), **kw):
        return self.gg.mint(repo=repo, push=list(push), **kw)

    def clone(self, repo, token, name):
        """A clone through gitgate; returns the worktree."""
        dest = self.path("client", name)
        self.assertFalse(os.path.exists(dest), dest)
        rc, out, err = h.git("clone", "-q", self.gg.repo_url(repo, token),
                             dest)
        self.assertEqual(rc, 0, "clone %s failed:\n%s%s" % (repo, out, err))
        return dest

    def set_token(self, worktree, repo, token):
        h.git("remote", "set-url", "origin", self.gg.repo_url(repo, token),
              cwd=worktree, check=True)

    def head_of(self, worktree, rev="HEAD"):
        return h.git_out("rev-parse", rev, cwd=worktree)

    def mirror_path(self, repo):
        return os.path.join(self.gg.cache_dir, "mirrors", repo + ".git")

    def in_mirror(self, repo, oid):
        return h.git("--git-dir=" + self.mirror_path(repo), "cat-file", "-e",
                     oid)[0] == 0

    def gg_log(self):
        """gitgate's stderr since this test started (for messages)."""
        return self.gg.stderr_text()[self._stderr_mark:][-3000:]

    def audit_refs(self, repo, ref):
        """[(action, result)] of every audited push command on ref."""
        out = []
        for line in self.gg.audit_text().splitlines():
            rec = json.loads(line)
            if rec.get("repo") != repo:
                continue
            for r in rec.get("refs") or []:
                if r.get("ref") == ref:
                    out.append((r.get("action"), r.get("result")))
        return out

    def wait_audit(self, repo, ref, n):
        """The audit line is written before the client sees the outcome,
        so it is there already; poll briefly anyway."""
        h.wait_until(lambda: len(self.audit_refs(repo, ref)) >= n, 2.0)
        return self.audit_refs(repo, ref)

    # -- helpers: pushing and asserting

    def push(self, worktree, *args, check_leftovers=True):
        res = h.git("push", *args, cwd=worktree)
        if check_leftovers:
            self.assertNoLeftovers()
        return res

    def describe(self, res):
        rc, out, err = res
        return "git exit %d:\n%s%s\n--- gitgate stderr:\n%s" % (
            rc, out, err, self.gg_log())

    def lines(self, res):
        return res[2].splitlines()

    def assertLine(self, res, pattern):
        """Some line of git's stderr matches the regex fully."""
        rx = re.compile(pattern)
        for line in self.lines(res):
            if rx.fullmatch(line.rstrip()):
                return line
        self.fail("no line matching %r in:\n%s" % (pattern,
                                                   self.describe(res)))

    def assertRejected(self, res, src, dst, reason, rc=1):
        """git printed exactly ` ! [remote rejected] SRC -> DST (REASON)`."""
        self.assertEqual(res[0], rc, self.describe(res))
        if src is None:  # deletion: git names only the destination
            want = " ! [remote rejected] %s (%s)" % (dst, reason)
        else:
            want = " ! [remote rejected] %s -> %s (%s)" % (src, dst, reason)
        self.assertIn(want, self.lines(res), self.describe(res))

    def assertNewRef(self, res, dst, kind="new branch", src="HEAD"):
        self.assertLine(res, r" \* \[%s\]\s+%s -> %s" % (
            re.escape(kind), re.escape(src), re.escape(dst)))

    def assertFastForward(self, res, dst, old, new, src="HEAD"):
        line = self.assertLine(res, r"   ([0-9a-f]{7,})\.\.([0-9a-f]{7,})"
                               r"\s+%s -> %s" % (re.escape(src),
                                                 re.escape(dst)))
        a, b = re.match(r"   ([0-9a-f]+)\.\.([0-9a-f]+)", line).groups()
        self.assertTrue(old.startswith(a) and new.startswith(b), line)

    def assertForced(self, res, dst, old, new, src="HEAD"):
        line = self.assertLine(res, r" \+ ([0-9a-f]{7,})\.\.\.([0-9a-f]{7,})"
                               r"\s+%s -> %s \(forced update\)" % (
                                   re.escape(src), re.escape(dst)))
        a, b = re.match(r" \+ ([0-9a-f]+)\.\.\.([0-9a-f]+)", line).groups()
        self.assertTrue(old.startswith(a) and new.startswith(b), line)

    def assertOk(self, res):
        self.assertEqual(res[0], 0, self.describe(res))

    def assertRefs(self, repo, expected):
        """The upstream's refs are exactly expected ({full ref: oid})."""
        self.assertEqual(self.up.refs(repo), expected)

    def assertNoLeftovers(self):
        """No spool file in <cache>/tmp, no incoming-* pack dir in any
        mirror (gitgate answers only after cleaning up)."""
        tmpdir = os.path.join(self.gg.cache_dir, "tmp")
        if os.path.isdir(tmpdir):
            self.assertEqual(os.listdir(tmpdir), [],
                             "spool files left in " + tmpdir)
        left = glob.glob(os.path.join(self.gg.cache_dir, "mirrors", "*",
                                      "*.git", "incoming-*"))
        self.assertEqual(left, [], "pack dirs left in a mirror")

    def assertFsck(self, git_dir, what):
        rc, out, err = h.git("--git-dir=" + git_dir, "fsck", "--no-dangling")
        self.assertEqual(rc, 0, "fsck of %s failed:\n%s%s" % (what, out, err))

    def upstream_commit(self, repo, branch, files, message):
        """Commit files ({path: text}) on the upstream branch directly, as
        someone else pushing without gitgate; returns the new commit id."""
        work = tempfile.mkdtemp(prefix="gg-upchange-", dir=self.tmp)
        try:
            h.git("clone", "-q", "-b", branch, self.up.repo_path(repo), work,
                  check=True, home=self.up.home)
            for p, text in files.items():
                with open(os.path.join(work, p), "w") as f:
                    f.write(text)
            h.git("add", "-A", cwd=work, check=True, home=self.up.home)
            h.git("commit", "-q", "-m", message, cwd=work, check=True,
                  home=self.up.home)
            h.git("push", "-q", "origin", branch, cwd=work, check=True,
                  home=self.up.home)
            return h.git_out("rev-parse", "HEAD", cwd=work,
                             home=self.up.home)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def receive_pack(self, repo, token, body, headers=None):
        hdrs = {"Authorization": h.basic_auth("agent", token),
                "Content-Type": RP_REQUEST, "Accept": RP_RESULT}
        hdrs.update(headers or {})
        return self.gg.request("POST", "/%s.git/git-receive-pack" % repo,
                               hdrs, body, timeout=60)

    # ------------------------------------------------------------------
    # 1. create and fast-forward

    def test_01_create_and_fast_forward(self):
        repo, main = self.new_repo("create")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "create")
        c1 = h.commit_file(w, "a.txt", "one\n")
        res = self.push(w, "origin", "HEAD:agent/a")
        self.assertOk(res)
        self.assertNewRef(res, "agent/a")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/a": c1})
        c2 = h.commit_file(w, "a.txt", "two\n")
        c3 = h.commit_file(w, "b.txt", "three\n")
        res = self.push(w, "origin", "HEAD:agent/a")
        self.assertOk(res)
        self.assertFastForward(res, "agent/a", c1, c3)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/a": c3})
        self.assertEqual(self.wait_audit(repo, "refs/heads/agent/a", 2),
                         [("create", "ok"), ("update", "ok")])
        self.assertNotEqual(c2, c3)
        self.assertFsck(self.up.repo_path(repo), "upstream")

    # 2. main refused

    def test_02_main_refused(self):
        repo, main = self.new_repo("nomain")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "nomain")
        h.commit_file(w, "m.txt", "for main\n")
        res = self.push(w, "origin", "HEAD:main")
        self.assertRejected(res, "HEAD", "main",
                            "branch not allowed by token: allowed agent/*")
        self.assertLine(res, r"remote: gitgate: refusing refs/heads/main: "
                        r"branch not allowed by token: allowed agent/\*")
        self.assertIn("error: failed to push some refs to", res[2])
        self.assertRefs(repo, {"refs/heads/main": main})
        # the full ref name is refused the same way
        res = self.push(w, "origin", "HEAD:refs/heads/main")
        self.assertRejected(res, "HEAD", "main",
                            "branch not allowed by token: allowed agent/*")
        self.assertRefs(repo, {"refs/heads/main": main})
        self.assertEqual(self.wait_audit(repo, "refs/heads/main", 2),
                         [("update", "branch not allowed by token: allowed "
                           "agent/*")] * 2)

    # 3. force

    def test_03_force_push(self):
        repo, main = self.new_repo("force")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "force")
        c1 = h.commit_file(w, "f.txt", "first\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/f"))
        # rewrite: a sibling of c1
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = h.commit_file(w, "f.txt", "rewritten\n")
        # without --force git itself refuses (remote not an ancestor)
        res = self.push(w, "origin", "HEAD:agent/f")
        self.assertEqual(res[0], 1, self.describe(res))
        self.assertLine(res, r" ! \[rejected\]\s+HEAD -> agent/f "
                        r"\((non-fast-forward|fetch first)\)")
        res = self.push(w, "--force", "origin", "HEAD:agent/f")
        self.assertRejected(res, "HEAD", "agent/f",
                            "force-push not allowed by token")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/f": c1})
        # --force-with-lease is the same force-push
        res = self.push(w, "--force-with-lease=agent/f:" + c1, "origin",
                        "HEAD:agent/f")
        self.assertRejected(res, "HEAD", "agent/f",
                            "force-push not allowed by token")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/f": c1})
        # a token with --allow-force
        ftok = self.mint(repo, allow_force=True)
        self.set_token(w, repo, ftok)
        res = self.push(w, "--force", "origin", "HEAD:agent/f")
        self.assertOk(res)
        self.assertForced(res, "agent/f", c1, c2)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/f": c2})
        # --allow-force does not widen the branches
        h.git("reset", "-q", "--hard", "HEAD~1", cwd=w, check=True)
        c3 = h.commit_file(w, "f.txt", "force main\n")
        res = self.push(w, "--force", "origin", "HEAD:main")
        self.assertRejected(res, "HEAD", "main",
                            "branch not allowed by token: allowed agent/*")
        self.assertNotEqual(c3, main)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/f": c2})
        self.assertEqual(self.wait_audit(repo, "refs/heads/agent/f", 4),
                         [("create", "ok"),
                          ("force", "force-push not allowed by token"),
                          ("force", "force-push not allowed by token"),
                          ("force", "ok")])

    # 4. delete

    def test_04_delete(self):
        repo, main = self.new_repo("delete")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "delete")
        c1 = h.commit_file(w, "d.txt", "doomed\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/d"))
        res = self.push(w, "origin", ":agent/d")
        self.assertRejected(res, None, "agent/d",
                            "deletion not allowed by token")
        res2 = self.push(w, "origin", "--delete", "agent/d")
        self.assertRejected(res2, None, "agent/d",
                            "deletion not allowed by token")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/d": c1})
        dtok = self.mint(repo, allow_delete=True)
        self.set_token(w, repo, dtok)
        # --allow-delete does not widen the branches
        res = self.push(w, "origin", ":main")
        self.assertEqual(res[0], 1, self.describe(res))
        self.assertIn(" ! [remote rejected] main (branch not allowed by "
                      "token: allowed agent/*)", self.lines(res),
                      self.describe(res))
        res = self.push(w, "origin", ":agent/d")
        self.assertOk(res)
        self.assertLine(res, r" - \[deleted\]\s+agent/d")
        self.assertRefs(repo, {"refs/heads/main": main})
        self.assertIsNone(self.up.rev_parse(repo, "refs/heads/agent/d"))
        self.assertEqual(self.wait_audit(repo, "refs/heads/agent/d", 4)[1:],
                         [("delete", "deletion not allowed by token"),
                          ("delete", "deletion not allowed by token"),
                          ("delete", "ok")])

    # 5. tags

    def test_05_tags(self):
        repo, main = self.new_repo("tags")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "tags")
        c1 = h.commit_file(w, "t.txt", "tagged\n")
        res = self.push(w, "origin", "HEAD:refs/tags/v1")
        self.assertRejected(res, "HEAD", "v1",
                            "tag not allowed by token: allowed agent/*")
        h.git("tag", "v0", cwd=w, check=True)
        res = self.push(w, "origin", "v0")
        self.assertRejected(res, "v0", "v0",
                            "tag not allowed by token: allowed agent/*")
        self.assertRefs(repo, {"refs/heads/main": main})

        ttok = self.mint(repo, push=("agent/*", "refs/tags/v*"))
        self.set_token(w, repo, ttok)
        res = self.push(w, "origin", "HEAD:refs/tags/v1")
        self.assertOk(res)
        self.assertNewRef(res, "v1", "new tag")
        # annotated tag
        h.git("tag", "-a", "-m", "release 2", "v2", cwd=w, check=True)
        v2_obj = self.head_of(w, "refs/tags/v2")
        res = self.push(w, "origin", "refs/tags/v2")
        self.assertOk(res)
        self.assertNewRef(res, "v2", "new tag", src="v2")
        res = self.push(w, "origin", "HEAD:refs/tags/other")
        self.assertRejected(res, "HEAD", "other", "tag not allowed by token: "
                            "allowed agent/*, refs/tags/v*")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/tags/v1": c1, "refs/tags/v2": v2_obj})

        # moving an existing tag forward is a force even though the new
        # commit descends from the old one
        c2 = h.commit_file(w, "t.txt", "later\n")
        h.git("merge-base", "--is-ancestor", c1, c2, cwd=w, check=True)
        res = self.push(w, "origin", "HEAD:refs/tags/v1")
        self.assertEqual(res[0], 1, self.describe(res))  # git: tag exists
        self.assertLine(res, r" ! \[rejected\]\s+HEAD -> v1 "
                        r"\(already exists\)")
        res = self.push(w, "--force", "origin", "HEAD:refs/tags/v1")
        self.assertRejected(res, "HEAD", "v1",
                            "force-push not allowed by token")
        # deleting a tag
        res = self.push(w, "origin", ":refs/tags/v1")
        self.assertRejected(res, None, "v1", "deletion not allowed by token")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/tags/v1": c1, "refs/tags/v2": v2_obj})
        self.assertEqual(self.wait_audit(repo, "refs/tags/v1", 5)[1:],
                         [("create", "ok"),
                          ("force", "force-push not allowed by token"),
                          ("delete", "deletion not allowed by token")])

        ftok = self.mint(repo, push=("refs/tags/v*",), allow_force=True)
        self.set_token(w, repo, ftok)
        res = self.push(w, "--force", "origin", "HEAD:refs/tags/v1")
        self.assertOk(res)
        self.assertForced(res, "v1", c1, c2)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/tags/v1": c2, "refs/tags/v2": v2_obj})

    # 6. atomic

    def test_06_atomic_mixed(self):
        repo, main = self.new_repo("atomic")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "atomic")
        c0 = h.commit_file(w, "x.txt", "base\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/old"))
        before = {"refs/heads/main": main, "refs/heads/agent/old": c0}
        h.commit_file(w, "x.txt", "atomic\n")
        res = self.push(w, "--atomic", "origin", "HEAD:agent/b", "HEAD:main")
        self.assertRejected(res, "HEAD", "main",
                            "branch not allowed by token: allowed agent/*")
        self.assertRejected(res, "HEAD", "agent/b", "atomic push failure")
        self.assertRefs(repo, before)
        # an allowed fast-forward, an allowed create and a refused update
        # of main: nothing lands
        h.git("checkout", "-q", "-b", "side", main, cwd=w, check=True)
        h.commit_file(w, "side.txt", "side\n")
        h.git("checkout", "-q", "-", cwd=w, check=True)
        res = self.push(w, "--atomic", "origin", "HEAD:agent/old",
                        "side:agent/b", "side:main")
        self.assertRejected(res, "side", "main",
                            "branch not allowed by token: allowed agent/*")
        self.assertRejected(res, "HEAD", "agent/old", "atomic push failure")
        self.assertRejected(res, "side", "agent/b", "atomic push failure")
        self.assertRefs(repo, before)
        # atomic and all allowed: everything lands
        c1 = self.head_of(w)
        res = self.push(w, "--atomic", "origin", "HEAD:agent/old",
                        "HEAD:agent/b")
        self.assertOk(res)
        self.assertFastForward(res, "agent/old", c0, c1)
        self.assertNewRef(res, "agent/b")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/old": c1,
                               "refs/heads/agent/b": c1})

    # 7. non-atomic mixed

    def test_07_non_atomic_mixed(self):
        repo, main = self.new_repo("mixed")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "mixed")
        c0 = h.commit_file(w, "x.txt", "base\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/u", "HEAD:agent/v"))
        c1 = h.commit_file(w, "x.txt", "mixed\n")
        res = self.push(w, "origin", "HEAD:agent/c", "HEAD:main")
        self.assertRejected(res, "HEAD", "main",
                            "branch not allowed by token: allowed agent/*")
        self.assertNewRef(res, "agent/c")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/u": c0,
                               "refs/heads/agent/v": c0,
                               "refs/heads/agent/c": c1})
        # fast-forward + refused force + refused delete in one push: the
        # pack goes upstream with only the allowed command
        h.git("branch", "side", main, cwd=w, check=True)
        h.git("checkout", "-q", "side", cwd=w, check=True)
        s1 = h.commit_file(w, "s.txt", "side\n")
        h.git("checkout", "-q", "-", cwd=w, check=True)
        c2 = h.commit_file(w, "x.txt", "mixed 2\n")
        res = self.push(w, "--force", "origin", "HEAD:agent/u", "side:agent/v",
                        ":agent/c")
        self.assertEqual(res[0], 1, self.describe(res))
        self.assertFastForward(res, "agent/u", c0, c2)
        self.assertRejected(res, "side", "agent/v",
                            "force-push not allowed by token")
        self.assertRejected(res, None, "agent/c",
                            "deletion not allowed by token")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/u": c2,
                               "refs/heads/agent/v": c0,
                               "refs/heads/agent/c": c1})
        self.assertNotEqual(s1, c2)
        self.assertFsck(self.up.repo_path(repo), "upstream")

    # 8. stale mirror: fetch before classifying; thin pack bases

    def test_08_mirror_survives_upstream_ref_churn(self):
        """The mirror keeps upstream's objects under id names (refs/gg/).
        When it kept upstream's branch names, upstream replacing agent/df by
        agent/df/sub broke every later mirror fetch (the stale ref blocked
        the new one's path), and with it every history check on the
        repository, for every token."""
        text = big_text("churn")
        repo, main = self.new_repo("churn", files={"big.txt": text})
        self.up.git_dir(repo, "update-ref", "refs/heads/agent/df", main)
        self.up.git_dir(repo, "update-ref", "refs/heads/agent/dst", main)
        tok = self.mint(repo)
        w = self.clone(repo, tok, "churn")
        # A fast-forward to a commit only upstream had: the pack is empty,
        # so the mirror is fetched to check the history.
        u1 = self.upstream_commit(repo, "main", {
            "big.txt": edit_line(text, 10, "upstream one")}, "upstream 1")
        h.git("fetch", "-q", "origin", cwd=w, check=True)
        res = self.push(w, "origin", "%s:refs/heads/agent/dst" % u1)
        self.assertOk(res)
        self.assertTrue(self.in_mirror(repo, u1))
        # upstream replaces agent/df by agent/df/sub, and moves on
        self.up.git_dir(repo, "update-ref", "-d", "refs/heads/agent/df")
        self.up.git_dir(repo, "update-ref", "refs/heads/agent/df/sub", main)
        u2 = self.upstream_commit(repo, "main", {
            "big.txt": edit_line(edit_line(text, 10, "upstream one"), 20,
                                 "upstream two")}, "upstream 2")
        h.git("fetch", "-q", "--prune", "origin", cwd=w, check=True)
        res = self.push(w, "origin", "%s:refs/heads/agent/dst" % u2)
        self.assertOk(res)
        self.assertEqual(self.up.rev_parse(repo, "agent/dst"), u2)
        mirror = self.mirror_path(repo)
        refs = h.git_out("--git-dir=" + mirror, "for-each-ref",
                         "--format=%(refname)").split()
        self.assertTrue(refs and all(r.startswith("refs/gg/") for r in refs),
                        refs)
        # still incremental (the hex refs are the negotiation's "haves"):
        # that fetch's pack is u2 and its few new objects, not the history
        packs = sorted(glob.glob(os.path.join(mirror, "objects", "pack",
                                              "*.idx")), key=os.path.getmtime)
        counts = []
        for idx in packs:
            with open(idx, "rb") as f:
                counts.append(len(subprocess.run(
                    ["git", "show-index"], stdin=f, capture_output=True,
                    check=True).stdout.splitlines()))
        self.assertEqual(len(counts), 2, counts)
        self.assertLessEqual(counts[1], 4, counts)
        self.assertGreater(counts[0], 6, counts)


    def test_08a_thin_pack_on_stale_mirror(self):
        text = big_text("thin")
        repo, main = self.new_repo("thin", files={"big.txt": text})
        self.up.git_dir(repo, "update-ref", "refs/heads/agent/t", main)
        self.up.git_dir(repo, "update-ref", "refs/heads/agent/u", main)
        tok = self.mint(repo)
        w = self.clone(repo, tok, "thin")
        # an update makes gitgate create its mirror (p1's parent is the
        # old id, in the pack: nothing needs fetching yet)
        h.git("checkout", "-q", "-b", "t", "origin/agent/t", cwd=w,
              check=True)
        p1 = h.commit_file(w, "p.txt", "prime\n")
        res = self.push(w, "origin", "HEAD:agent/t")
        self.assertOk(res)
        self.assertFastForward(res, "agent/t", main, p1)
        self.assertTrue(os.path.isdir(self.mirror_path(repo)))

        # (a) someone advances agent/t upstream directly: the old id of the
        # next push is unknown to the mirror
        text_a = edit_line(text, 100, "changed upstream on agent/t")
        u1 = self.upstream_commit(repo, "agent/t", {"big.txt": text_a},
                                  "upstream edit 1")
        u2 = self.upstream_commit(repo, "agent/t", {
            "big.txt": edit_line(text_a, 150, "changed again upstream")},
            "upstream edit 2")
        self.assertNotEqual(u1, u2)
        rc, out, err = h.git("fetch", "-q", "origin", cwd=w)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.head_of(w, "origin/agent/t"), u2)
        h.git("merge", "-q", "--ff-only", "origin/agent/t", cwd=w, check=True)
        with open(os.path.join(w, "big.txt")) as f:
            cur = f.read()
        n1 = h.commit_file(w, "big.txt", edit_line(cur, 200, "agent edit"))
        self.assertFalse(self.in_mirror(repo, u2), "mirror is not stale")
        res = self.push(w, "origin", "HEAD:agent/t")
        self.assertOk(res)
        self.assertFastForward(res, "agent/t", u2, n1)
        self.assertEqual(self.up.rev_parse(repo, "agent/t"), n1)
        # n1's parent is the old id: decided from the pack, no fetch
        self.assertFalse(self.in_mirror(repo, u2))

        # (b) someone advances main upstream directly; the agent merges it
        # into agent/u (whose old id the mirror does know) and edits the
        # same file: git sends a thin pack whose delta base (main's new
        # big.txt) only the upstream has
        m1 = self.upstream_commit(repo, "main", {
            "big.txt": edit_line(text, 300, "changed upstream on main")},
            "upstream main edit")
        rc, out, err = h.git("fetch", "-q", "origin", cwd=w)
        self.assertEqual(rc, 0, err)
        h.git("checkout", "-q", "-b", "u", "origin/agent/u", cwd=w,
              check=True)
        h.git("merge", "-q", "--ff-only", "origin/main", cwd=w, check=True)
        with open(os.path.join(w, "big.txt")) as f:
            cur = f.read()
        n2 = h.commit_file(w, "big.txt", edit_line(cur, 350, "agent on u"))
        self.assertPackIsThin(w, n2, ["origin/main", "origin/agent/u",
                                      "origin/agent/t"])
        self.assertFalse(self.in_mirror(repo, m1), "mirror is not stale")
        res = self.push(w, "origin", "HEAD:agent/u")
        self.assertOk(res)
        # n2's history leaves the pack at m1: fetched to see it reach main
        self.assertTrue(self.in_mirror(repo, m1))
        self.assertTrue(self.in_mirror(repo, main))
        self.assertFastForward(res, "agent/u", main, n2)
        self.assertRefs(repo, {"refs/heads/main": m1,
                               "refs/heads/agent/t": n1,
                               "refs/heads/agent/u": n2})
        self.assertEqual(self.wait_audit(repo, "refs/heads/agent/t", 2),
                         [("update", "ok"), ("update", "ok")])
        self.assertEqual(self.wait_audit(repo, "refs/heads/agent/u", 1),
                         [("update", "ok")])
        self.assertFsck(self.up.repo_path(repo), "upstream")
        self.assertFsck(self.mirror_path(repo), "gitgate's mirror")

    def assertPackIsThin(self, worktree, new, remote_refs):
        """The pack git push will send is thin: indexing it alone leaves
        unresolved deltas (so the test really needs bases from upstream)."""
        p = subprocess.run(
            ["git", "pack-objects", "--stdout", "--revs", "--thin", "-q"],
            cwd=worktree, input=(new + "\n" + "".join(
                "^%s\n" % r for r in remote_refs)).encode(),
            capture_output=True, env=h.git_env(), check=True)
        empty = tempfile.mkdtemp(prefix="gg-empty-", dir=self.tmp)
        h.git("init", "-q", "--bare", empty, check=True)
        q = subprocess.run(["git", "--git-dir=" + empty, "index-pack",
                            "--stdin"], input=p.stdout, capture_output=True,
                           env=h.git_env())
        self.assertNotEqual(q.returncode, 0, "pack is not thin")
        self.assertRegex(q.stderr.decode(), r"pack has \d+ unresolved delta")

    def test_08b_fast_forward_after_upstream_advanced(self):
        repo, main = self.new_repo("stale")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "stale")
        c1 = h.commit_file(w, "s.txt", "1\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/s"))
        c2 = h.commit_file(w, "s.txt", "2\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/s"))  # mirror made
        u = self.up.add_commit(repo, branch="agent/s",
                               message="someone else")
        # the agent did not fetch: its commit does not contain u, so this
        # is a force whatever the stale mirror says
        c3 = h.commit_file(w, "s.txt", "3\n")
        res = self.push(w, "origin", "HEAD:agent/s")
        self.assertEqual(res[0], 1, self.describe(res))
        self.assertLine(res, r" ! \[rejected\]\s+HEAD -> agent/s "
                        r"\(fetch first\)")
        res = self.push(w, "--force", "origin", "HEAD:agent/s")
        self.assertRejected(res, "HEAD", "agent/s",
                            "force-push not allowed by token")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/s": u})
        # after fetching and rebasing, a plain fast-forward of u
        rc, out, err = h.git("pull", "-q", "--rebase", "origin", "agent/s",
                             cwd=w)
        self.assertEqual(rc, 0, out + err)
        c4 = self.head_of(w)
        self.assertNotEqual(c4, c3)
        h.git("merge-base", "--is-ancestor", u, c4, cwd=w, check=True)
        res = self.push(w, "origin", "HEAD:agent/s")
        self.assertOk(res)
        self.assertFastForward(res, "agent/s", u, c4)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/s": c4})
        # once more, the upstream moves while the mirror has not seen it,
        # and the agent builds on top of it
        u2 = self.up.add_commit(repo, branch="agent/s", message="again")
        h.git("pull", "-q", "--ff-only", "origin", "agent/s", cwd=w,
              check=True)
        c5 = h.commit_file(w, "s.txt", "5\n")
        res = self.push(w, "origin", "HEAD:agent/s")
        self.assertOk(res)
        self.assertFastForward(res, "agent/s", u2, c5)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/s": c5})
        self.assertEqual(self.wait_audit(repo, "refs/heads/agent/s", 5),
                         [("create", "ok"), ("update", "ok"),
                          ("force", "force-push not allowed by token"),
                          ("update", "ok"), ("update", "ok")])
        self.assertNotEqual(c1, c2)

    # 9. concurrency

    def test_09a_concurrent_pushes_to_different_branches(self):
        repo, main = self.new_repo("conc")
        tok = self.mint(repo)
        n = 8
        works = [self.clone(repo, tok, "conc-%d" % i) for i in range(n)]
        barrier = threading.Barrier(n)

        def one(i):
            w = works[i]
            a = h.commit_file(w, "t%d.txt" % i, "create %d\n" % i)
            barrier.wait(30)
            r1 = h.git("push", "origin", "HEAD:agent/t%d" % i, cwd=w)
            b = h.commit_file(w, "t%d.txt" % i, "update %d\n" % i)
            r2 = h.git("push", "origin", "HEAD:agent/t%d" % i, cwd=w)
            return i, a, b, r1, r2

        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
            results = list(ex.map(one, range(n)))
        expected = {"refs/heads/main": main}
        for i, a, b, r1, r2 in results:
            self.assertOk(r1)
            self.assertNewRef(r1, "agent/t%d" % i)
            self.assertOk(r2)
            self.assertFastForward(r2, "agent/t%d" % i, a, b)
            expected["refs/heads/agent/t%d" % i] = b
        self.assertRefs(repo, expected)
        self.assertNoLeftovers()
        self.assertFsck(self.up.repo_path(repo), "upstream")
        self.assertFsck(self.mirror_path(repo), "gitgate's mirror")

    def test_09b_concurrent_pushes_to_same_branch(self):
        repo, main = self.new_repo("same")
        tok = self.mint(repo)
        w0 = self.clone(repo, tok, "same-0")
        base = h.commit_file(w0, "s.txt", "base\n")
        self.assertOk(self.push(w0, "origin", "HEAD:agent/same"))
        # prime the mirror with an update, then race
        base = h.commit_file(w0, "s.txt", "base 2\n")
        self.assertOk(self.push(w0, "origin", "HEAD:agent/same"))
        n = 2
        works = []
        for i in range(n):
            w = self.clone(repo, tok, "same-%d" % (i + 1))
            h.git("checkout", "-q", "-b", "s", "origin/agent/same", cwd=w,
                  check=True)
            works.append((w, h.commit_file(w, "s%d.txt" % i, "%d\n" % i)))
        for rnd in range(3):
            barrier = threading.Barrier(n)

            def one(i):
                w, c = works[i]
                barrier.wait(30)
                return h.git("push", "origin", "HEAD:agent/same", cwd=w)

            with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
                results = list(ex.map(one, range(n)))
            winners = [works[i][1] for i, r in enumerate(results)
                       if r[0] == 0]
            msg = "\n".join(self.describe(r) for r in results)
            self.assertEqual(len(winners), 1, msg)
            self.assertEqual(self.up.rev_parse(repo, "agent/same"),
                             winners[0], msg)
            for r in results:
                if r[0] != 0:
                    self.assertEqual(r[0], 1, msg)
                    self.assertTrue(any(
                        re.fullmatch(r" ! \[(remote )?rejected\]\s+HEAD -> "
                                     r"agent/same \(.*\)", l.rstrip())
                        for l in r[2].splitlines()), msg)
            self.assertNoLeftovers()
            # next round: both rebuild on the winner
            tip = winners[0]
            nxt = []
            for i, (w, _c) in enumerate(works):
                h.git("fetch", "-q", "origin", cwd=w, check=True)
                h.git("reset", "-q", "--hard", tip, cwd=w, check=True)
                nxt.append((w, h.commit_file(w, "s%d.txt" % i,
                                             "round %d %d\n" % (rnd, i))))
            works = nxt
        self.assertFsck(self.up.repo_path(repo), "upstream")
        self.assertFsck(self.mirror_path(repo), "gitgate's mirror")
        self.assertEqual(set(self.up.refs(repo)),
                         {"refs/heads/main", "refs/heads/agent/same"})

    # 10. patterns

    def test_10_patterns(self):
        repo, main = self.new_repo("patterns")
        w = self.clone(repo, self.mint(repo), "patterns")
        c = h.commit_file(w, "p.txt", "patterns\n")
        expected = {"refs/heads/main": main}

        def try_push(tok, dst, reason=None):
            self.set_token(w, repo, tok)
            res = self.push(w, "origin", "HEAD:" + dst)
            shown = re.sub(r"^refs/(heads|tags)/", "", dst)
            if reason is None:
                self.assertOk(res)
                self.assertNewRef(res, shown)
                expected[dst if dst.startswith("refs/")
                         else "refs/heads/" + dst] = c
            else:
                self.assertRejected(res, "HEAD", shown, reason)
            self.assertRefs(repo, expected)

        star = self.mint(repo, push=("agent/*",))
        try_push(star, "agent/x")
        try_push(star, "agent/a/b", "branch not allowed by token: "
                 "allowed agent/*")
        try_push(star, "Agent/y", "branch not allowed by token: "
                 "allowed agent/*")
        try_push(star, "agentx", "branch not allowed by token: "
                 "allowed agent/*")

        deep = self.mint(repo, push=("deep/**",))
        try_push(deep, "deep/a/b/c")
        try_push(deep, "deep/x")
        try_push(deep, "deeper/x", "branch not allowed by token: "
                 "allowed deep/**")

        mid = self.mint(repo, push=("team/**/wip",))
        try_push(mid, "team/wip")
        try_push(mid, "team/a/b/wip")
        try_push(mid, "team/a/done", "branch not allowed by token: "
                 "allowed team/**/wip")

        full = self.mint(repo, push=("refs/heads/feature/*",))
        try_push(full, "feature/x")
        try_push(full, "refs/heads/feature/y")
        try_push(full, "other", "branch not allowed by token: "
                 "allowed refs/heads/feature/*")
        try_push(full, "refs/tags/feature", "tag not allowed by token: "
                 "allowed refs/heads/feature/*")

        many = self.mint(repo, push=("bot/*", "fix/**",
                                     "refs/heads/release/v*"))
        try_push(many, "release/v2")
        try_push(many, "fix/a/b")
        try_push(many, "main", "branch not allowed by token: allowed "
                 "bot/*, fix/**, refs/heads/release/v*")
        try_push(many, "release/x", "branch not allowed by token: allowed "
                 "bot/*, fix/**, refs/heads/release/v*")

    # 11. fetch-only token

    def test_11_fetch_only_token_cannot_push(self):
        repo, main = self.new_repo("readonly")
        ro = self.gg.mint(repo=repo)
        w = self.clone(repo, ro, "readonly")
        h.commit_file(w, "r.txt", "r\n")
        for dst in ("HEAD:agent/x", "HEAD:main"):
            res = self.push(w, "origin", dst)
            self.assertEqual(res[0], 128, self.describe(res))
            self.assertIn("remote: token does not allow push to " + repo,
                          self.lines(res), self.describe(res))
            self.assertIn("The requested URL returned error: 403", res[2])
        self.assertRefs(repo, {"refs/heads/main": main})

    # 12. refused pushes leave nothing behind

    def test_11c_signed_push_not_advertised(self):
        """gitgate refuses signed pushes, so it drops upstream's push-cert
        capability from the advertisement: --signed=if-asked then pushes
        unsigned (it used to fail with a bare HTTP 400), and --signed=yes
        fails inside git with git's own message."""
        repo, main = self.new_repo("signed")
        self.up.git_dir(repo, "config", "receive.certNonceSeed", "seed")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "signed")
        c1 = h.commit_file(w, "s.txt", "signed?\n")
        res = self.push(w, "--signed=yes", "origin", "HEAD:agent/s")
        self.assertNotEqual(res[0], 0, self.describe(res))
        self.assertIn("the receiving end does not support --signed push",
                      res[2])
        self.assertIsNone(self.up.rev_parse(repo, "agent/s"))
        res = self.push(w, "--signed=if-asked", "origin", "HEAD:agent/s")
        self.assertOk(res)
        self.assertEqual(self.up.rev_parse(repo, "agent/s"), c1)
        # upstream does advertise it; gitgate's advertisement does not
        path = "/%s.git/info/refs?service=git-receive-pack" % repo
        direct = h.http_request(self.up.port, "GET", path, headers={
            "Authorization": h.basic_auth(h.UPSTREAM_USER, self.up.secret)})
        proxied = h.http_request(self.gg.port, "GET", path, headers={
            "Authorization": h.basic_auth("x", tok)})
        self.assertEqual((direct.status, proxied.status), (200, 200))
        self.assertIn(b" push-cert=", direct.body)
        self.assertNotIn(b"push-cert", proxied.body)
        self.assertEqual(direct.body.replace(b" push-cert=", b" ").count(
            b"report-status"), proxied.body.count(b"report-status"))

    def test_11e_push_options_refused(self):
        """Push options drive server-side automation that can reach
        branches the token may not push to (GitLab's -o
        merge_request.target=main -o merge_request.merge_when_pipeline_
        succeeds). gitgate no longer advertises them, so git refuses -o
        itself; a client that sends them anyway has every ref refused.
        Before, they went upstream unchecked and unaudited."""
        repo, main = self.new_repo("pushopts")
        self.up.git_dir(repo, "config", "receive.advertisePushOptions",
                        "true")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "pushopts")
        c1 = h.commit_file(w, "o.txt", "options\n")
        res = self.push(w, "-o", "merge_request.target=main", "origin",
                        "HEAD:agent/po")
        self.assertNotEqual(res[0], 0, self.describe(res))
        self.assertIn("the receiving end does not support push options",
                      res[2])
        self.assertIsNone(self.up.rev_parse(repo, "agent/po"))
        body = command_section([(ZERO, c1, "refs/heads/agent/po")],
                               "report-status push-options") + \
            h.pkt_line("merge_request.target=main") + b"0000" + \
            pack_between(w, c1, main)
        r = self.receive_pack(repo, tok, body)
        self.assertEqual(r.status, 200, r)
        lines, _ = report_status(r.body, False)
        self.assertEqual(lines, [
            "unpack ok", "ng refs/heads/agent/po push options (git push -o) "
            "are not allowed through gitgate"], r)
        self.assertIsNone(self.up.rev_parse(repo, "agent/po"))
        self.assertEqual(self.wait_audit(repo, "refs/heads/agent/po", 1)[-1],
                         ("create", "push options (git push -o) are not "
                          "allowed through gitgate"))
        # without options the same push goes through
        self.assertOk(self.push(w, "origin", "HEAD:agent/po"))
        self.assertEqual(self.up.rev_parse(repo, "agent/po"), c1)

    def test_11d_sha256_push_refused_clearly(self):
        """gitgate's push checks read SHA-1 packs only. A push to a SHA-256
        repository used to get a bare HTTP 400 after the whole pack was
        sent; now git shows why at the start, and fetching still works."""
        repo = "acme/sha256"
        path = self.up.repo_path(repo)
        h.git("init", "-q", "--bare", "--object-format=sha256", "-b",
              "main", path, check=True, home=self.up.home)
        self.up.git_dir(repo, "config", "http.receivepack", "true")
        seed = self.path("client", "sha256-seed")
        h.git("init", "-q", "--object-format=sha256", "-b", "main", seed,
              check=True)
        c0 = h.commit_file(seed, "a.txt", "sha256\n")
        h.git("push", "-q", path, "main", cwd=seed, check=True)
        tok = self.mint(repo)
        w = self.clone(repo, tok, "sha256")
        self.assertEqual(self.head_of(w), c0)
        h.commit_file(w, "b.txt", "more\n")
        res = self.push(w, "origin", "HEAD:agent/x")
        self.assertNotEqual(res[0], 0, self.describe(res))
        self.assertIn("remote: pushing to a SHA-256 repository is not "
                      "supported by gitgate", res[2])
        self.assertIsNone(self.up.rev_parse(repo, "agent/x"))

    def test_12_refused_objects_never_enter_mirror(self):
        repo = "acme/app"
        main = self.up.create_repo(repo, commits=2)
        tok = self.mint(repo)
        w = self.clone(repo, tok, "app")
        a1 = h.commit_file(w, "a.txt", "1\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/x"))
        a2 = h.commit_file(w, "a.txt", "2\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/x"))
        mirror = self.mirror_path(repo)
        self.assertTrue(os.path.isdir(os.path.join(mirror, "objects")),
                        mirror)

        def in_mirror(oid):
            return self.in_mirror(repo, oid)

        # refused outright (branch), no classification needed
        r1 = h.commit_file(w, "secret.txt", "refused 1\n")
        res = self.push(w, "origin", "HEAD:main")
        self.assertRejected(res, "HEAD", "main",
                            "branch not allowed by token: allowed agent/*")
        # refused after classification: gitgate reads the pack to judge
        # ancestry, then must drop it
        h.git("reset", "-q", "--hard", a1, cwd=w, check=True)
        r2 = h.commit_file(w, "secret.txt", "refused 2\n")
        res = self.push(w, "--force", "origin", "HEAD:agent/x")
        self.assertRejected(res, "HEAD", "agent/x",
                            "force-push not allowed by token")
        # r2's history leaves the pack at a1: judging it fetched upstream
        self.assertTrue(in_mirror(main))  # so the check works at all
        # atomic: an allowed fast-forward refused with a refused sibling
        h.git("reset", "-q", "--hard", a2, cwd=w, check=True)
        r3 = h.commit_file(w, "secret.txt", "refused 3\n")
        res = self.push(w, "--atomic", "origin", "HEAD:agent/x", "HEAD:main")
        self.assertRejected(res, "HEAD", "agent/x", "atomic push failure")
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/x": a2})
        for oid in (r1, r2, r3):
            self.assertFalse(in_mirror(oid), "refused %s is in the mirror"
                             % oid)
            self.assertNotEqual(self.up.git_dir(repo, "cat-file", "-e", oid,
                                                check=False)[0], 0)
        # a later update (which makes gitgate fetch) does not bring them in
        self.up.add_commit(repo, branch="agent/x", message="elsewhere")
        h.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "agent/x",
              cwd=w, check=True)
        self.assertOk(self.push(w, "origin", "HEAD:agent/y"))
        h.git("fetch", "-q", "origin", cwd=w, check=True)
        h.git("reset", "-q", "--hard", "origin/agent/x", cwd=w, check=True)
        a3 = h.commit_file(w, "a.txt", "3\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/x"))
        self.assertEqual(self.up.rev_parse(repo, "agent/x"), a3)
        for oid in (r1, r2):
            self.assertFalse(in_mirror(oid))
        self.assertNoLeftovers()
        self.assertFsck(mirror, "gitgate's mirror")

    # 13. big update

    def test_13_big_update(self):
        repo, main = self.new_repo("big")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "big")
        c1 = h.commit_file(w, "small.txt", "small\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/big"))
        big = h.commit_big_file(w)
        res = self.push(w, "origin", "HEAD:agent/big")
        self.assertOk(res)
        self.assertFastForward(res, "agent/big", c1, big)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/big": big})
        rc, out, _ = self.up.git_dir(repo, "cat-file", "-s", big + ":big.bin")
        self.assertEqual(int(out), h.BIG_SIZE)
        self.assertEqual(self.wait_audit(repo, "refs/heads/agent/big", 2),
                         [("create", "ok"), ("update", "ok")])

    # 14. malformed bodies

    def test_14_malformed_push_bodies(self):
        repo, main = self.new_repo("malformed")
        tok = self.mint(repo)
        ftok = self.mint(repo, allow_force=True)
        w = self.clone(repo, tok, "malformed")
        c1 = h.commit_file(w, "m.txt", "1\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/m"))
        c2 = h.commit_file(w, "m.txt", "2\n" * 50)
        pack = pack_between(w, c2, c1)
        before = {"refs/heads/main": main, "refs/heads/agent/m": c1}
        self.assertRefs(repo, before)
        upd = [(c1, c2, "refs/heads/agent/m")]
        caps = "report-status side-band-64k agent=gitgate-test"

        def text_reason(r, status):
            self.assertEqual(r.status, status, r)
            self.assertTrue((r.header("content-type") or "").startswith(
                "text/plain"), r)
            return r.text.strip()

        cases = [
            ("garbage length prefix", b"zzzz" + b"x" * 60, tok,
             400, 'bad pkt-line length "zzzz"'),
            ("truncated command list", h.pkt_line(
                "%s %s refs/heads/agent/m\0%s" % (c1, c2, caps)), tok,
             400, "truncated push request: no flush after the command list"),
            ("partial pkt-line", command_section(upd, caps)[:30], tok,
             400, "truncated push request: partial pkt-line at end"),
            ("sha256 capability, sha1 ids",
             command_section(upd, caps + " object-format=sha256") + pack,
             tok, 400, "sha256 repositories are not supported yet"),
            ("sha256 capability, sha256 ids", command_section(
                [("0" * 64, "1" * 64, "refs/heads/agent/m")],
                caps + " object-format=sha256"), tok,
             # what a sha256 client really sends: 64-hex ids. The reason
             # must name the real problem, not the id length.
             400, re.compile(r".*sha256.*")),
        ]
        for name, body, t, status, reason in cases:
            with self.subTest(case=name):
                r = self.receive_pack(repo, t, body)
                got = text_reason(r, status)
                last = json.loads(self.gg.audit_text().splitlines()[-1])
                if isinstance(reason, str):
                    self.assertEqual(got, reason, r)
                    self.assertEqual(last["reason"], reason, last)
                else:
                    self.assertRegex(got, reason, r)
                    self.assertRegex(last["reason"], reason, last)
                self.assertEqual((last["status"], last["decision"]),
                                 (400, "deny"), last)
                self.assertRefs(repo, before)
                self.assertNoLeftovers()

        # a valid command list for an update, then half a pack
        body = command_section(upd, "report-status side-band-64k") + \
            pack[:len(pack) // 2]
        with self.subTest(case="truncated pack, no force"):
            r = self.receive_pack(repo, tok, body)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("content-type"), RP_RESULT, r)
            lines, progress = report_status(r.body, True)
            want = ("ng refs/heads/agent/m gitgate could not check history: "
                    "pushed pack: ")
            ng = [l for l in lines if l.startswith("ng ")]
            self.assertEqual(len(ng), 1, lines)
            self.assertTrue(ng[0].startswith(want), lines)
            self.assertGreater(len(ng[0]), len(want), lines)
            self.assertIn("refusing refs/heads/agent/m", progress)
            self.assertRefs(repo, before)
            self.assertNoLeftovers()
        with self.subTest(case="truncated pack, force allowed"):
            # gitgate cannot classify but a force would be allowed anyway:
            # forwarded, and the upstream's unpacker refuses it
            r = self.receive_pack(repo, ftok, body)
            self.assertEqual(r.status, 200, r)
            lines, _ = report_status(r.body, True)
            self.assertTrue(lines and lines[0].startswith("unpack ") and
                            lines[0] != "unpack ok", lines)
            self.assertIn("ng refs/heads/agent/m unpacker error", lines)
            self.assertRefs(repo, before)
            self.assertNoLeftovers()
        with self.subTest(case="create with a truncated pack"):
            r = self.receive_pack(repo, tok, command_section(
                [(ZERO, c2, "refs/heads/agent/new")], "report-status") +
                pack[:-7])
            self.assertEqual(r.status, 200, r)
            lines, _ = report_status(r.body, False)
            self.assertTrue(lines and lines[0].startswith("unpack ") and
                            lines[0] != "unpack ok", lines)
            self.assertIn("ng refs/heads/agent/new unpacker error", lines)
            self.assertRefs(repo, before)
            self.assertNoLeftovers()

        # the proxy still works: a clone, and the real push
        w2 = self.clone(repo, tok, "malformed-after")
        self.assertEqual(self.head_of(w2, "origin/agent/m"), c1)
        res = self.push(w, "origin", "HEAD:agent/m")
        self.assertOk(res)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/m": c2})

    # 15. gzip

    def test_15_gzip_push_body(self):
        repo, main = self.new_repo("gzip")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "gzip")
        c1 = h.commit_file(w, "g.txt", "1\n")
        self.assertOk(self.push(w, "origin", "HEAD:agent/gz"))
        c2 = h.commit_file(w, "g.txt", "2\n")
        c3 = h.commit_file(w, "h.txt", "3\n")
        # an update (needs the mirror) and a create, one pack for both
        body = command_section(
            [(c1, c3, "refs/heads/agent/gz"), (ZERO, c2, "refs/heads/agent/gz2")],
            "report-status side-band-64k agent=gitgate-test") + \
            pack_between(w, c3, c1)
        r = self.receive_pack(repo, tok, h.gzip_bytes(body),
                              {"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), RP_RESULT, r)
        lines, _ = report_status(r.body, True)
        self.assertEqual(lines, ["unpack ok", "ok refs/heads/agent/gz",
                                 "ok refs/heads/agent/gz2"])
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/gz": c3,
                               "refs/heads/agent/gz2": c2})
        self.assertNoLeftovers()
        # gzip with a refused command next to an allowed one
        c4 = h.commit_file(w, "g.txt", "4\n")
        body = command_section(
            [(c3, c4, "refs/heads/agent/gz"), (main, c4, "refs/heads/main")],
            "report-status") + pack_between(w, c4, c3)
        r = self.receive_pack(repo, tok, h.gzip_bytes(body),
                              {"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 200, r)
        lines, _ = report_status(r.body, False)
        self.assertEqual(lines, [
            "unpack ok", "ok refs/heads/agent/gz",
            "ng refs/heads/main branch not allowed by token: allowed "
            "agent/*"])
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/gz": c4,
                               "refs/heads/agent/gz2": c2})
        # a corrupt gzip body is a 400 with a reason, nothing lands
        c5 = h.commit_file(w, "g.txt", "5\n")
        gz = h.gzip_bytes(command_section(
            [(c4, c5, "refs/heads/agent/gz")], "report-status") +
            pack_between(w, c5, c4))
        for name, data, reason in (
                ("truncated", gz[:len(gz) // 2],
                 "truncated gzip request body"),
                ("corrupt", gz[:10] + b"\xff" * 20 + gz[30:],
                 "corrupt gzip request body")):
            with self.subTest(gzip=name):
                r = self.receive_pack(repo, tok, data,
                                      {"Content-Encoding": "gzip"})
                self.assertEqual(r.status, 400, r)
                self.assertEqual(r.text.strip(), reason, r)
                last = json.loads(self.gg.audit_text().splitlines()[-1])
                self.assertEqual((last["status"], last["reason"]),
                                 (400, reason), last)
                self.assertNoLeftovers()
        self.assertEqual(self.up.rev_parse(repo, "agent/gz"), c4)

    def test_15b_capabilities_read_as_receive_pack_reads_them(self):
        """receive-pack takes "name=value" as name and knows no plain
        side-band. gitgate read them differently: it expected a side-band
        reply upstream never sent, told the client (and the audit) the
        ref failed while it had landed, and applied an "atomic=1" push
        in part."""
        repo, main = self.new_repo("caps")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "caps")
        for i, (caps, sideband) in enumerate((
                ("report-status side-band", False),
                ("report-status side-band-64k=1", True),
                ("report-status=yes", False))):
            with self.subTest(caps=caps):
                c = h.commit_file(w, "c%d.txt" % i, "%d\n" % i)
                ref = "refs/heads/agent/caps%d" % i
                body = command_section([(ZERO, c, ref)], caps) + \
                    pack_between(w, c, main)
                r = self.receive_pack(repo, tok, body)
                self.assertEqual(r.status, 200, r)
                lines, _ = report_status(r.body, sideband)
                self.assertEqual(lines, ["unpack ok", "ok " + ref], r)
                self.assertEqual(self.up.rev_parse(repo, ref), c)
                self.assertEqual(self.wait_audit(repo, ref, 1),
                                 [("create", "ok")])
        # "atomic=1" is atomic: a refused ref keeps the allowed one out
        c = h.commit_file(w, "atomic.txt", "a\n")
        body = command_section(
            [(ZERO, c, "refs/heads/agent/at"), (main, c, "refs/heads/main")],
            "report-status atomic=1") + pack_between(w, c, main)
        r = self.receive_pack(repo, tok, body)
        self.assertEqual(r.status, 200, r)
        lines, _ = report_status(r.body, False)
        self.assertEqual(lines[0], "unpack ok", r)
        self.assertIn("ng refs/heads/agent/at atomic push failure", lines)
        self.assertEqual(self.up.rev_parse(repo, "agent/at"), None)
        self.assertEqual(self.up.rev_parse(repo, "main"), main)

    def test_16_token_revoked_or_expired_mid_push_lands_nothing(self):
        """A push is decided once its whole body is in, which the client
        can make last as long as it likes: the token is checked again
        then. Before, a token revoked (or expired) while its push body
        was still coming in landed the push."""
        repo, main = self.new_repo("late")
        w = self.clone(repo, self.mint(repo), "late")
        for case in ("revoked", "expired"):
            with self.subTest(case=case):
                tok = self.gg.mint(repo=repo, push=["agent/*"],
                                   ttl="3s" if case == "expired" else "1h")
                c = h.commit_file(w, case + ".txt", "late\n")
                ref = "refs/heads/agent/late-" + case
                body = command_section([(ZERO, c, ref)], "report-status") \
                    + pack_between(w, c, main)
                s = socket.create_connection(("127.0.0.1", self.gg.port),
                                             timeout=30)
                try:
                    s.sendall(b"POST /%s.git/git-receive-pack HTTP/1.1\r\n"
                              b"Host: g\r\nAuthorization: %s\r\n"
                              b"Content-Type: %s\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" % (
                                  repo.encode(),
                                  h.basic_auth("agent", tok).encode(),
                                  RP_REQUEST.encode()))
                    half = len(body) - 40
                    s.sendall(b"%x\r\n%s\r\n" % (half, body[:half]))
                    if case == "revoked":
                        self.gg.revoke(tok)
                        time.sleep(1.5)  # reloaded within 1 s
                    else:
                        time.sleep(4.0)
                    rest = body[half:]
                    s.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
                    answer = b""
                    while not answer.endswith(b"token " + case.encode() +
                                              b"\n"):
                        data = s.recv(4096)
                        if not data:
                            break
                        answer += data
                finally:
                    s.close()
                self.assertTrue(answer.startswith(
                    b"HTTP/1.1 401 Unauthorized\r\n"), answer)
                self.assertIn(b"WWW-Authenticate: Basic realm=\"gitgate\"",
                              answer)
                self.assertTrue(answer.endswith(
                    b"\r\n\r\ntoken " + case.encode() + b"\n"), answer)
                self.assertIsNone(self.up.rev_parse(repo, ref))
                last = json.loads(self.gg.audit_text().splitlines()[-1])
                self.assertEqual(
                    (last["decision"], last["status"], last["reason"]),
                    ("deny", 401, "token " + case), last)
                self.assertNoLeftovers()

    def test_17_what_gitgate_cannot_inspect_cheaply_is_refused(self):
        """Past the pack scan's limits (here a commit over 4 MiB) gitgate
        used to index the whole pack with libgit2, whose memory has no
        bound (2M tiny objects took 289 MB, a 512 MiB commit 538 MB); and
        each update command cost a walk of the mirror's history, however
        many a push named. Both now fail closed, with a reason."""
        repo, main = self.new_repo("limits", commits=3)
        tok = self.mint(repo)
        body = ("tree %s\nparent %s\nauthor A <a@example.com> 1700000000 "
                "+0000\ncommitter A <a@example.com> 1700000000 +0000\n\n"
                % (EMPTY_TREE, main)).encode() + b"m" * (5 << 20)
        big = object_id(1, body)
        r = self.receive_pack(repo, tok, command_section(
            [(main, big, "refs/heads/agent/big")], "report-status") +
            pack_of([(2, b""), (1, body)]))
        self.assertEqual(r.status, 200, r)
        lines, _ = report_status(r.body, False)
        self.assertEqual(lines[0], "unpack ok", r)
        self.assertTrue(lines[1].startswith(
            "ng refs/heads/agent/big gitgate could not check history: "
            "pack beyond what gitgate inspects (a commit over 4 MiB"), lines)
        self.assertIsNone(self.up.rev_parse(repo, "agent/big"))
        self.assertNotIn("indexing the pack", self.gg_log())
        # a scan that cannot settle (new exists nowhere) no longer hands a
        # pack with a huge object to libgit2, which holds it whole (a 1.5
        # MB request of zeros took 3.1 GB)
        r = self.receive_pack(repo, tok, command_section(
            [(main, "ab" * 20, "refs/heads/agent/bomb")], "report-status") +
            pack_of([(3, bytes(40 << 20))]))
        self.assertEqual(r.status, 200, r)
        lines, _ = report_status(r.body, False)
        self.assertEqual(lines[1], "ng refs/heads/agent/bomb gitgate could "
                         "not check history: pack with an object over 32 "
                         "MiB too large to inspect (the scan could not "
                         "settle it)", lines)
        # history walks: one per update of a commit upstream already has
        first = self.up.git_dir(repo, "rev-list", "--max-parents=0",
                                "main")[1].strip()
        empty = pack_of([])
        for n, walks_left in ((64, True), (65, False)):
            with self.subTest(updates=n):
                cmds = [(first, main, "refs/heads/agent/w%d" % i)
                        for i in range(n)]
                r = self.receive_pack(repo, tok, command_section(
                    cmds, "report-status") + empty)
                self.assertEqual(r.status, 200, r)
                lines, _ = report_status(r.body, False)
                budget = [l for l in lines if "history checks" in l]
                if walks_left:
                    self.assertEqual(budget, [], lines)
                else:
                    self.assertEqual(len(budget), n, lines)
                    self.assertEqual(budget[0], (
                        "ng refs/heads/agent/w0 gitgate could not check "
                        "history: more than 64 history checks in one push "
                        "(push fewer branches at once)"))
        self.assertEqual(self.up.rev_parse(repo, "main"), main)

    # ------------------------------------------------------------------
    # runs last: every mirror gitgate built is a sound repository

    def test_zz_mirrors_sound(self):
        mirrors = glob.glob(os.path.join(self.gg.cache_dir, "mirrors", "*",
                                         "*.git"))
        self.assertGreater(len(mirrors), 3, mirrors)
        for m in mirrors:
            self.assertFsck(m, m)
        self.assertNoLeftovers()


class RedirectingUpstream:
    """An upstream that answers every request with a 302 to `target` (a
    "host:port"), and a server there that logs each request's
    Authorization header and demands credentials (401)."""

    def __init__(self, target_host, userinfo_trick=False):
        import http.server

        self.seen = []  # Authorization headers the target received
        outer = self

        class Target(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.seen.append(self.headers.get("Authorization"))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="x"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        class Redirect(Target):
            def do_GET(self):
                # userinfo_trick: a Location whose decoded userinfo makes
                # the URL libgit2 reports start like upstream's origin
                trick = ("127.0.0.1:%d%%2F@" % outer.redirect.server_port
                         if userinfo_trick else "")
                self.send_response(302)
                self.send_header("Location", "http://%s%s:%d%s" % (
                    trick, target_host, outer.target.server_port, self.path))
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.target = http.server.ThreadingHTTPServer((target_host, 0),
                                                      Target)
        self.redirect = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                        Redirect)
        self.url = "http://127.0.0.1:%d" % self.redirect.server_port
        for srv in (self.target, self.redirect):
            threading.Thread(target=srv.serve_forever, daemon=True).start()

    def stop(self):
        for srv in (self.target, self.redirect):
            srv.shutdown()
            srv.server_close()


class MirrorRedirectTest(unittest.TestCase):
    """A push whose history gitgate must fetch, from an upstream that
    redirects: the mirror fetch follows no redirect to another host, and
    gitgate's credential goes to no origin but upstream's, so the push is
    refused (fail closed) and the secret never leaves. libgit2 used to
    follow the redirect and answer the target's 401 with the secret."""

    SECRET = "ghs_redirect-test-secret-0123456789"

    def push_needing_history(self, up):
        gg = h.Gitgate(up.url, self.SECRET).start()
        try:
            tok = gg.mint(repo="acme/app", push=["agent/*"])
            body = command_section(
                [("1" * 40, "2" * 40, "refs/heads/agent/x")],
                "report-status agent=gitgate-test")
            r = gg.request("POST", "/acme/app.git/git-receive-pack", {
                "Authorization": h.basic_auth("a", tok),
                "Content-Type": RP_REQUEST}, body)
            self.assertEqual(r.status, 200, r)
            lines, _ = report_status(r.body, sideband=False)
            self.assertNotIn(self.SECRET, gg.stderr_text() + gg.audit_text())
            return lines
        finally:
            gg.stop()

    def assertSecretNotSent(self, up):
        # (with the userinfo trick, libgit2 sends the Location's own
        # userinfo: that is the redirect's, not gitgate's)
        import base64
        for a in up.seen:
            got = base64.b64decode(a.split()[-1]).decode() if a else ""
            self.assertNotIn(self.SECRET, got, "the target got the secret")
            self.assertNotIn("x-access-token", got)

    def test_redirect_to_another_port_gets_no_credential(self):
        for trick in (False, True):
            up = RedirectingUpstream("127.0.0.1", userinfo_trick=trick)
            try:
                lines = self.push_needing_history(up)
                self.assertTrue(up.seen, "the target was never asked")
                self.assertSecretNotSent(up)
                self.assertEqual(lines, [
                    "unpack ok",
                    "ng refs/heads/agent/x gitgate could not check history: "
                    "mirror fetch: upstream redirected (not followed)"],
                    "userinfo trick" if trick else "plain")
            finally:
                up.stop()

    def test_redirect_to_another_host_not_followed(self):
        up = RedirectingUpstream("127.0.0.2")
        try:
            lines = self.push_needing_history(up)
            self.assertEqual(len(lines), 2, lines)
            self.assertRegex(lines[1], r"^ng refs/heads/agent/x gitgate "
                             r"could not check history: mirror fetch: "
                             r"cannot redirect from '127\.0\.0\.1' to "
                             r"'127\.0\.0\.2'")
            self.assertEqual(up.seen, [])
        finally:
            up.stop()


class CompressingUpstreamTest(unittest.TestCase):
    """Many front ends gzip the ref advertisement when the client accepts
    it, and git says it does. gitgate rewrites the receive-pack
    advertisement (no push-cert, no push-options, a clear refusal for
    SHA-256), which it cannot do to a gzipped one: it asks upstream for
    that advertisement uncompressed. Before, push-cert and push-options
    reached the client from such an upstream."""

    def test_receive_pack_advertisement_rewritten(self):
        tmp = tempfile.mkdtemp(prefix="gg-test-gzip-")
        up = h.Upstream(compress=True).start()
        gg = h.Gitgate(up.url, up.secret).start()
        try:
            up.create_repo("acme/app", commits=2)
            up.git_dir("acme/app", "config", "receive.certNonceSeed", "s")
            up.git_dir("acme/app", "config", "receive.advertisePushOptions",
                       "true")
            tok = gg.mint(repo="acme/app", push=["agent/*"])
            path = "/acme/app.git/info/refs?service=git-receive-pack"
            gz = {"Accept-Encoding": "gzip"}
            direct = h.http_request(up.port, "GET", path, headers=dict(
                gz, Authorization=h.basic_auth(h.UPSTREAM_USER, up.secret)))
            self.assertEqual(direct.header("content-encoding"), "gzip",
                             "the upstream does not compress: test is void")
            proxied = h.http_request(gg.port, "GET", path, headers=dict(
                gz, Authorization=h.basic_auth("x", tok)))
            self.assertEqual(proxied.status, 200, proxied)
            self.assertIsNone(proxied.header("content-encoding"))
            self.assertIn(b"report-status", proxied.body)
            self.assertNotIn(b"push-cert", proxied.body)
            self.assertNotIn(b"push-options", proxied.body)
            # upload-pack advertisements may stay compressed
            up_path = "/acme/app.git/info/refs?service=git-upload-pack"
            r = h.http_request(gg.port, "GET", up_path, headers=dict(
                gz, Authorization=h.basic_auth("x", tok)))
            self.assertEqual(r.header("content-encoding"), "gzip")
            # and the real git client: -o refused by git, signing skipped
            w = os.path.join(tmp, "w")
            rc, out, err = h.git("clone", "-q", gg.repo_url("acme/app", tok),
                                 w)
            self.assertEqual(rc, 0, err)
            c = h.commit_file(w, "z.txt", "z\n")
            rc, _, err = h.git("push", "-o", "x", "origin", "HEAD:agent/z",
                               cwd=w)
            self.assertNotEqual(rc, 0)
            self.assertIn("the receiving end does not support push options",
                          err)
            rc, _, err = h.git("push", "--signed=if-asked", "origin",
                               "HEAD:agent/z", cwd=w)
            self.assertEqual(rc, 0, err)
            self.assertEqual(up.rev_parse("acme/app", "agent/z"), c)
        finally:
            gg.stop()
            up.stop()
            shutil.rmtree(tmp, ignore_errors=True)


class TlsUpstreamTest(unittest.TestCase):
    """The real upstream (GitHub) is reached over TLS. Against an HTTPS
    upstream whose CA gitgate is told to trust (SSL_CERT_FILE), a clone
    works, and so does a push whose history gitgate must fetch (libgit2's
    own TLS). With the CA not trusted, gitgate talks to it neither way:
    502 for the relay, and a push needing history is refused (fail
    closed), with nothing sent upstream."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-tls-")
        cls.up = h.Upstream(tls=True).start()
        cls.main = cls.up.create_repo("acme/app", commits=3)

    @classmethod
    def tearDownClass(cls):
        cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_trusted_ca_clone_and_push_with_mirror_fetch(self):
        gg = h.Gitgate(self.up.url, self.up.secret,
                       env={"SSL_CERT_FILE": self.up.ca_file}).start()
        try:
            tok = gg.mint(repo="acme/app", push=["agent/*"])
            dest = os.path.join(self.tmp, "clone")
            rc, out, err = h.git("clone", gg.repo_url("acme/app", tok), dest)
            self.assertEqual(rc, 0, err)
            self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=dest),
                             self.main)
            # agent/x is two commits behind main upstream: the pushed
            # commit's parent (main) is not in the pack, so judging the
            # fast-forward needs main's history from upstream
            base = self.up.rev_parse("acme/app", "main~2")
            self.up.git_dir("acme/app", "update-ref", "refs/heads/agent/x",
                            base)
            new = h.commit_file(dest, "tls.txt", "over TLS\n")
            rc, out, err = h.git("push", "origin", "HEAD:agent/x", cwd=dest)
            self.assertEqual(rc, 0, err)
            self.assertEqual(self.up.rev_parse("acme/app", "agent/x"), new)
            mirror = os.path.join(gg.cache_dir, "mirrors", "acme", "app.git")
            rc, _, err = h.git("--git-dir", mirror, "cat-file", "-e",
                               self.main)
            self.assertEqual(rc, 0, "mirror lacks main: %s" % err)
        finally:
            gg.stop()

    def test_untrusted_ca_refused(self):
        # an upstream of its own: its access log must stay empty
        up = h.Upstream(tls=True).start()
        up.create_repo("acme/app", commits=1)
        gg = h.Gitgate(up.url, up.secret).start()
        try:
            tok = gg.mint(repo="acme/app", push=["agent/*"])
            auth = h.basic_auth("a", tok)
            r = gg.request("GET", "/acme/app.git/info/refs?service=git-"
                           "upload-pack", {"Authorization": auth})
            self.assertEqual(r.status, 502, r)
            self.assertRegex(r.text.strip(), r"^upstream unreachable: "
                             r"SSL certificate problem")
            body = command_section(
                [("1" * 40, "2" * 40, "refs/heads/agent/x")],
                "report-status agent=gitgate-test")
            r = gg.request("POST", "/acme/app.git/git-receive-pack", {
                "Authorization": auth, "Content-Type": RP_REQUEST}, body)
            self.assertEqual(r.status, 200, r)
            lines, _ = report_status(r.body, sideband=False)
            self.assertEqual(len(lines), 2, lines)
            self.assertRegex(lines[1], r"^ng refs/heads/agent/x gitgate "
                             r"could not check history: mirror fetch: .*"
                             r"(?i:certificate)")
            # lighttpd writes its access log lazily: give it time. With
            # TLS 1.3 the server finishes its handshake before the client
            # checks the certificate, so lighttpd logs an HTTP/2 preface
            # ("PRI * HTTP/2.0") for a connection that carried no request.
            requests = lambda: [l for l in up.access_log_lines()
                                if "PRI * HTTP/2.0" not in l]
            self.assertFalse(h.wait_until(requests, 2.5),
                             "a request reached the untrusted upstream")
            self.assertFalse([l for l in up.access_log_lines()
                              if 'auth="-"' not in l])
        finally:
            gg.stop()
            up.stop()


if __name__ == "__main__":
    h.run_suite()

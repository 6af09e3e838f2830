#!/usr/bin/env python3
"""Integration suite for the GitHub App upstream credential (issue 16): the
real git client through a real `gitgate serve` whose upstream.github_app
points at a local stand-in of GitHub's App API (ghapp_standin.py), in front
of a real smart-HTTP upstream (lighttpd + git http-backend) that accepts
only the installation tokens the stand-in issued, for their repository and
permission (harness.Upstream(app_tokens=True)).

What is checked: clone and push with App tokens (JWT and API requests as
GitHub wants them), two owners → two installations, a fetch token cannot
push, expiry and refresh, single-flight, steady state (one token call per
repository and permission set), the mirror fetch's read token,
workflows:write only with a matching allow_paths claim, every API error
reaching git with its exact reason and an audit record, 503 + Retry-After,
the clock-skew and replication-delay retries, start-up refusals, and that
no key, JWT or token text shows anywhere.

Run: GITGATE=build/gitgate python3 tests/integration/test_github_app.py
(meson test registers it as integration-test_github_app). The last line is
`N passed, N failed[, N skipped]`; the exit code is non-zero on failure.
"""

import concurrent.futures
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import ghapp_standin as gh  # noqa: E402

APP_ID = gh.APP_ID
ZERO = "0" * 40
UPLOAD_REQ = "application/x-git-upload-pack-request"
RP_REQUEST = "application/x-git-receive-pack-request"
KEY_FILE = "github-app.pem"

R_NOT_INSTALLED = ("GitHub App %s is not installed for %s: install it on "
                   "that account or organisation")
R_422 = ("GitHub App cannot access %s with %s: %s; grant the installation "
         "this repository and permission")
R_401 = ("GitHub refused the App JWT (HTTP 401): check app_id %s, "
         "private_key_file and the system clock" % APP_ID)
R_UNREACHABLE = "GitHub API unreachable:"
R_TIMEOUT = "GitHub API timed out:"
R_RATE = "GitHub API rate limit reached: retry in %d s"


def info_refs(repo, service="git-upload-pack"):
    return "/%s.git/info/refs?service=%s" % (repo, service)


def pkt_lines(data):
    out, i = [], 0
    while i < len(data):
        n = int(data[i:i + 4], 16)
        if n == 0:
            out.append(None)
            i += 4
            continue
        out.append(data[i + 4:i + n])
        i += n
    return out


def receive_pack_body(commands, pack, caps="report-status"):
    body = b""
    for i, (old, new, ref) in enumerate(commands):
        line = "%s %s %s" % (old, new, ref)
        if i == 0:
            line += "\0" + caps
        body += h.pkt_line(line + "\n")
    return body + b"0000" + pack


def pack_between(worktree, new, *exclude):
    revs = new + "\n" + "".join("^%s\n" % e for e in exclude)
    p = subprocess.run(["git", "pack-objects", "--stdout", "--revs", "-q"],
                       cwd=worktree, input=revs.encode(), capture_output=True,
                       env=h.git_env(), check=True)
    assert p.stdout.startswith(b"PACK"), p.stderr
    return p.stdout


class AppBase(unittest.TestCase):
    """One token-checking upstream, one stand-in and one gitgate (PKCS#1 key)
    for the class; tests use their own repositories, and start their own
    gitgate where they need a fresh one."""

    startup_error = None
    up = None
    app = None
    gg = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-ghapp-")
        cls.proxies = []
        try:
            cls.up = h.Upstream(app_tokens=True).start()
            cls.app = gh.GitHubAppStandin(upstream=cls.up).start()
            cls.app.install("acme", 42)
            cls.app.install("globex", 77)
            # selected repositories, contents:read only
            cls.app.install("limited", 55,
                            repositories=["allowed", "allowed2", "allowed3"],
                            permissions={"contents": "read",
                                         "metadata": "read"})
            cls.gg = cls.make_gitgate("main")
            cls.gg.start()
        except Exception as e:  # reported by every test, see setUp
            cls.startup_error = "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("\nSTARTUP FAILED: %s\n" % cls.startup_error)

    @classmethod
    def tearDownClass(cls):
        for g in cls.proxies:
            g.stop()
        if cls.app:
            cls.app.stop()
        if cls.up:
            cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def make_gitgate(cls, name, fmt="pkcs1", api_url=None, key_path=KEY_FILE,
                     key_mode=0o600, github_app=None, **kw):
        """A Gitgate (not started) using the stand-in, its key written to
        ROOT/key_path."""
        root = os.path.join(cls.tmp, "proxies", name)
        os.makedirs(os.path.dirname(os.path.join(root, key_path)),
                    exist_ok=True)
        if github_app is None:
            github_app = {"app_id": APP_ID, "private_key_file": key_path,
                          "api_url": api_url or cls.app.url}
        g = h.Gitgate(cls.up.url, None, root=root, github_app=github_app,
                      **kw)
        if key_path and fmt:
            cls.app.write_private_key(os.path.join(root, key_path), fmt,
                                      key_mode)
        cls.proxies.append(g)
        return g

    def setUp(self):
        if self.startup_error:
            self.fail("upstream/stand-in/gitgate could not be started: " +
                      self.startup_error[:800])
        self.app.reset()
        self.t0 = time.time()
        self._stderr_mark = len(self.gg.stderr_text())

    def tearDown(self):
        self.app.reset()
        self.assertTrue(self.gg.running(), "gitgate died:\n" +
                        self.redact(self.gg.stderr_text()[-3000:]))

    # -- helpers

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def redact(self, text):
        """Failure messages must not print secrets either."""
        for s in sorted(self.app.secrets(), key=len, reverse=True):
            if len(s) >= 16:
                text = text.replace(s, "<redacted>")
        return text

    def gg_log(self, gg=None):
        gg = gg or self.gg
        text = gg.stderr_text()
        if gg is self.gg:
            text = text[self._stderr_mark:]
        return self.redact(text[-3000:])

    def describe(self, res, gg=None):
        rc, out, err = res
        return self.redact("git exit %d:\n%s%s" % (rc, out, err)) + \
            "\n--- gitgate stderr:\n" + self.gg_log(gg) + \
            "\n--- stand-in calls since test start:\n" + \
            "\n".join(repr(c) for c in self.app.calls_to(since=self.t0))[-3000:]

    def new_repo(self, repo, commits=2, **kw):
        return self.up.create_repo(repo, commits=commits, **kw)

    def mint(self, repos, push=None, allow_paths=None, gg=None, **kw):
        gg = gg or self.gg
        if isinstance(repos, str):
            repos = [repos]
        return gg.mint(repos=repos, push=push, allow_paths=allow_paths, **kw)

    def clone(self, repo, token, name=None, gg=None):
        gg = gg or self.gg
        dest = self.path("client", name or repo.replace("/", "-") + "-" +
                         str(time.monotonic_ns()))
        res = h.git("clone", "-q", gg.repo_url(repo, token), dest)
        return res, dest

    def assertGitOk(self, res, what="git", gg=None):
        self.assertEqual(res[0], 0, "%s failed:\n%s" % (
            what, self.describe(res, gg)))

    def audit(self, gg=None, repo=None):
        gg = gg or self.gg
        out = []
        for line in gg.audit_text().splitlines():
            rec = json.loads(line)
            if repo is None or (rec.get("repo") or "").lower() == \
                    repo.lower():
                out.append(rec)
        return out

    def assertApiError(self, res, repo, reason, status=502, gg=None,
                       prefix=False):
        """git failed with `remote: <reason>` and the HTTP status, and the
        audit log has a deny record with that status and reason. With
        prefix, reason is the start of the line. Returns the reason."""
        rc, out, err = res
        self.assertEqual(rc, 128, self.describe(res, gg))
        lines = [l.rstrip() for l in err.splitlines()]
        if prefix:
            got = [l[len("remote: "):] for l in lines
                   if l.startswith("remote: " + reason)]
            self.assertTrue(got, "no `remote: %s…` line:\n%s" % (
                reason, self.describe(res, gg)))
            reason = got[0]
        else:
            self.assertIn("remote: " + reason, lines, self.describe(res, gg))
        self.assertIn("The requested URL returned error: %d" % status, err,
                      self.describe(res, gg))
        recs = [r for r in self.audit(gg, repo)
                if r.get("decision") == "deny" and r.get("status") == status]
        self.assertTrue(recs, "no deny/%d audit record for %s; records: %s"
                        % (status, repo, self.redact(json.dumps(
                            self.audit(gg, repo))[-2000:])))
        self.assertEqual(recs[-1].get("reason"), reason,
                         self.redact(json.dumps(recs[-1])))
        return reason

    def assertOneLineText(self, resp, status):
        self.assertEqual(resp.status, status, self.redact(repr(resp)))
        self.assertTrue((resp.header("content-type") or "").startswith(
            "text/plain"), self.redact(repr(resp)))
        text = resp.text
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        self.assertTrue(text.strip())
        self.assertNotIn("\n", text, self.redact(repr(resp)))
        return text

    def req(self, method, path, token, gg=None, headers=None, body=None,
            timeout=30):
        gg = gg or self.gg
        hdrs = {"Authorization": h.basic_auth("agent", token)}
        hdrs.update(headers or {})
        return h.http_request(gg.port, method, path, hdrs, body,
                              timeout=timeout)

    def upstream_log(self, repo, since=None):
        return [r for r in self.up.app_log()
                if (r.get("repo") or "").lower() == repo.lower() and
                (since is None or r["time"] >= since)]

    def issued(self, repo, contents=None, since=None):
        return self.app.token_calls(repo, since=since, issued_only=True,
                                    contents=contents)


class GitHubAppTest(AppBase):

    # ------------------------------------------------------------------
    # the happy path, and what gitgate asks GitHub

    def test_01_clone_and_push_with_app_tokens(self):
        repo = "acme/basic"
        head = self.new_repo(repo)
        tok = self.mint(repo, push=["agent/*"])
        res, w = self.clone(repo, tok)
        self.assertGitOk(res, "clone")
        self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=w), head)

        # the installation lookup, as GitHub wants it
        inst = self.app.installation_calls(repo)
        self.assertEqual(len(inst), 1, inst)
        c = inst[0]
        self.assertEqual((c.method, c.path, c.status),
                         ("GET", "/repos/acme/basic/installation", 200))
        self.assertEqual(c.headers.get("accept"),
                         "application/vnd.github+json")
        self.assertTrue(c.headers.get("user-agent"), c.headers)
        self.assertEqual(c.auth_scheme, "Bearer")
        self.assertTrue(c.jwt_ok, c.jwt_error)
        self.assertEqual(c.jwt_header, {"alg": "RS256", "typ": "JWT"})
        cl = c.jwt_claims
        self.assertEqual(cl.get("iss"), APP_ID)
        self.assertIs(type(cl.get("iat")), int)
        self.assertIs(type(cl.get("exp")), int)
        self.assertLessEqual(cl["exp"] - cl["iat"], 600, cl)
        first = self.app.calls[0]  # the first JWT this gitgate ever made
        fc = first.jwt_claims or {}
        self.assertLessEqual(abs(fc.get("iat", 0) - (first.time - 60)), 3, fc)
        self.assertLessEqual(abs(fc.get("exp", 0) - (first.time + 540)), 3,
                             fc)

        # the token request: narrowed to the repository and to reading
        tc = self.app.token_calls(repo)
        self.assertEqual(len(tc), 1, tc)
        t = tc[0]
        self.assertEqual(t.method, "POST")
        self.assertEqual(t.path, "/app/installations/42/access_tokens")
        self.assertEqual(t.status, 201)
        self.assertEqual(t.body, {"repositories": ["basic"],
                                  "permissions": {"contents": "read",
                                                  "metadata": "read"}})
        self.assertEqual(t.headers.get("accept"),
                         "application/vnd.github+json")
        self.assertTrue(t.jwt_ok, t.jwt_error)
        # the upstream saw that token, and nothing else
        log = self.upstream_log(repo)
        self.assertTrue(log)
        self.assertEqual({(r["token"], r["decision"]) for r in log},
                         {(t.token_id, "pass")}, log)

        # push: a contents:write token
        new = h.commit_file(w, "one.txt", "one\n")
        res = h.git("push", "origin", "HEAD:refs/heads/agent/one", cwd=w)
        self.assertGitOk(res, "push")
        self.assertEqual(self.up.rev_parse(repo, "agent/one"), new)
        wr = self.issued(repo, contents="write")
        self.assertEqual(len(wr), 1, self.app.token_calls(repo))
        self.assertEqual(wr[0].body, {"repositories": ["basic"],
                                      "permissions": {"contents": "write",
                                                      "metadata": "read"}})
        rp = [r for r in self.upstream_log(repo)
              if r["service"] == "git-receive-pack"]
        self.assertTrue(rp)
        self.assertTrue(all(r["token"] == wr[0].token_id and
                            r["contents"] == "write" and
                            r["decision"] == "pass" for r in rp), rp)
        self.assertTrue(any(r["method"] == "POST" for r in rp), rp)
        # (git's first, credential-less request is a 401 without a jti)
        recs = [r for r in self.audit(repo=repo) if r.get("jti")]
        self.assertTrue(recs and all(r["decision"] == "allow" and
                                     r["status"] == 200 for r in recs),
                        self.redact(json.dumps(recs)))

    def test_02_two_owners_two_installations(self):
        a, b = "acme/two-a", "globex/two-b"
        ha, hb = self.new_repo(a), self.new_repo(b)
        tok = self.mint([a, b])
        for repo, head in ((a, ha), (b, hb)):
            res, w = self.clone(repo, tok)
            self.assertGitOk(res, "clone " + repo)
            self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=w), head)
        ia, ib = self.app.installation_calls(a), self.app.installation_calls(b)
        self.assertEqual([c.status for c in ia + ib], [200, 200])
        ta, tb = self.issued(a), self.issued(b)
        self.assertEqual([c.path for c in ta],
                         ["/app/installations/42/access_tokens"])
        self.assertEqual([c.path for c in tb],
                         ["/app/installations/77/access_tokens"])
        self.assertEqual(tb[0].body["repositories"], ["two-b"])
        # each repository was reached with its own installation's token
        self.assertEqual({r["token"] for r in self.upstream_log(a)},
                         {ta[0].token_id})
        self.assertEqual({r["token"] for r in self.upstream_log(b)},
                         {tb[0].token_id})

    def test_03_fetch_token_cannot_push(self):
        repo = "acme/readonly"
        self.new_repo(repo)
        tok = self.mint(repo, push=["agent/*"])
        res, w = self.clone(repo, tok)
        self.assertGitOk(res, "clone")
        rd = self.issued(repo, contents="read")
        self.assertEqual(len(rd), 1)
        self.assertEqual(rd[0].permissions, {"contents": "read",
                                             "metadata": "read"})
        read_token = self.app.token_by_id(rd[0].token_id)
        new = h.commit_file(w, "r.txt", "r\n")
        # the very token gitgate fetched with: the upstream refuses a push
        direct = self.path("direct-readonly")
        shutil.copytree(w, direct)
        res = h.git("push", self.up.repo_url(repo, secret=read_token),
                    "HEAD:refs/heads/agent/direct", cwd=direct)
        self.assertNotEqual(res[0], 0)
        self.assertIn("403", res[2])
        self.assertIsNone(self.up.rev_parse(repo, "agent/direct"))
        self.assertTrue(any(r["status"] == 403 and
                            r["token"] == rd[0].token_id
                            for r in self.upstream_log(repo)))
        # through gitgate the push gets (and uses) a write token
        mark = time.time()
        res = h.git("push", "origin", "HEAD:refs/heads/agent/r", cwd=w)
        self.assertGitOk(res, "push")
        self.assertEqual(self.up.rev_parse(repo, "agent/r"), new)
        wr = self.issued(repo, contents="write")
        self.assertEqual(len(wr), 1)
        self.assertEqual(wr[0].permissions["contents"], "write")
        rp = [r for r in self.upstream_log(repo, mark)
              if r["service"] == "git-receive-pack"]
        self.assertTrue(rp and all(r["token"] == wr[0].token_id and
                                   r["decision"] == "pass" for r in rp), rp)
        # fetches keep using the read token
        mark = time.time()
        res = h.git("fetch", "-q", "origin", cwd=w)
        self.assertGitOk(res, "fetch")
        up = [r for r in self.upstream_log(repo, mark)]
        self.assertTrue(up and all(r["token"] == rd[0].token_id
                                   for r in up), up)

    def test_03b_fetch_only_sandbox_token_gets_no_write_token(self):
        repo = "acme/fetchonly"
        self.new_repo(repo)
        tok = self.mint(repo)  # no --push
        res, w = self.clone(repo, tok)
        self.assertGitOk(res, "clone")
        h.commit_file(w, "x.txt", "x\n")
        res = h.git("push", "origin", "HEAD:refs/heads/agent/x", cwd=w)
        self.assertNotEqual(res[0], 0)
        self.assertIn("403", res[2])
        self.assertEqual(self.app.token_calls(repo, contents="write"), [])

    # ------------------------------------------------------------------
    # workflows:write only with a matching allow_paths claim

    WORKFLOW_CASES = [
        (None, False),
        (["docs/**"], False),
        (["*.md"], False),
        ([".github/ISSUE_TEMPLATE/**"], False),
        ([".github/**"], True),
        ([".github/workflows/ci.yml"], True),
        (["**"], True),
        ([".github/*/ci.yml"], True),
    ]

    def test_04_workflows_write_only_with_matching_allow_paths(self):
        for i, (paths, want) in enumerate(self.WORKFLOW_CASES):
            with self.subTest(allow_paths=paths):
                repo = "acme/wf-%d" % i
                self.new_repo(repo, commits=1)
                tok = self.mint(repo, push=["agent/*"], allow_paths=paths)
                res, w = self.clone(repo, tok)
                self.assertGitOk(res, "clone")
                h.commit_file(w, ".github/workflows/ci.yml", "on: push\n")
                res = h.git("push", "origin", "HEAD:refs/heads/agent/wf",
                            cwd=w)
                self.assertGitOk(res, "push")
                wr = self.issued(repo, contents="write")
                self.assertEqual(len(wr), 1, self.app.token_calls(repo))
                perms = {"contents": "write", "metadata": "read"}
                if want:
                    perms["workflows"] = "write"
                self.assertEqual(wr[0].requested_permissions, perms)

    def test_04b_fetch_tokens_never_ask_for_workflows(self):
        # A fetch (even with an allow_paths token) needs contents:read only.
        repo = "acme/wf-fetch"
        self.new_repo(repo, commits=1)
        tok = self.mint(repo, push=["agent/*"], allow_paths=[".github/**"])
        res, _ = self.clone(repo, tok)
        self.assertGitOk(res, "clone")
        rd = self.app.token_calls(repo)
        self.assertEqual([c.requested_permissions for c in rd],
                         [{"contents": "read", "metadata": "read"}])

    # ------------------------------------------------------------------
    # caching: single-flight, steady state, expiry and refresh

    def test_05_single_flight_16_concurrent_clones(self):
        repo = "acme/cold"
        head = self.new_repo(repo)
        tok = self.mint(repo)
        self.app.delay = {"access_tokens": 0.5}  # a wide race window
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            futs = [ex.submit(self.clone, repo, tok, "cold-%d" % i)
                    for i in range(16)]
            results = [f.result() for f in futs]
        for res, w in results:
            self.assertGitOk(res, "concurrent clone")
            self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=w), head)
        calls = self.app.token_calls(repo)
        self.assertEqual(len(calls), 1, "access_tokens calls: %r" % calls)
        self.assertEqual({r["token"] for r in self.upstream_log(repo)},
                         {calls[0].token_id})

    def test_06_steady_state_one_token_call_per_repo_and_permission(self):
        a, b = "acme/steady-a", "acme/steady-b"
        self.new_repo(a)
        self.new_repo(b)
        tok = self.mint([a, b], push=["agent/**"])
        res, w = self.clone(a, tok)
        self.assertGitOk(res)
        for i in range(8):
            for repo in (a, b):
                res = h.git("ls-remote", self.gg.repo_url(repo, tok))
                self.assertGitOk(res, "ls-remote")
        for i in range(3):
            h.commit_file(w, "s%d.txt" % i, "%d\n" % i)
            self.assertGitOk(h.git("push", "origin", "HEAD:refs/heads/agent/s",
                                   cwd=w), "push")
            self.assertGitOk(h.git("fetch", "-q", "origin", cwd=w), "fetch")
        got = sorted((c.body["repositories"][0],
                      c.requested_permissions["contents"])
                     for c in self.app.token_calls(since=self.t0))
        self.assertEqual(got, [("steady-a", "read"), ("steady-a", "write"),
                               ("steady-b", "read")])
        for repo in (a, b):
            self.assertLessEqual(len(self.app.installation_calls(repo)), 1)

    def test_07_expiry_and_refresh(self):
        repo = "acme/short"
        self.new_repo(repo)
        tok = self.mint(repo)
        self.app.token_lifetime = 6
        res, _ = self.clone(repo, tok)
        self.assertGitOk(res, "clone")
        first = self.issued(repo)
        self.assertEqual(len(first), 1)
        c1 = first[0].time
        url = self.gg.repo_url(repo, tok)
        # well within the first half of its life: reused
        self.assertGitOk(h.git("ls-remote", url))
        self.assertEqual(len(self.issued(repo)), 1,
                         "token not reused 1 s after it was minted")
        # past half its life, still valid upstream: a new one is minted
        time.sleep(max(0, c1 + 4.3 - time.time()))
        self.assertGitOk(h.git("ls-remote", url))
        calls = self.issued(repo)
        self.assertEqual(len(calls), 2, "no refresh 4.3 s into a 6 s token")
        last = [r for r in self.upstream_log(repo)][-1]
        self.assertEqual(last["token"], calls[1].token_id)
        # after the first token expired: fetches still work, and gitgate
        # never sent an expired token upstream
        time.sleep(max(0, c1 + 6.5 - time.time()))
        self.assertGitOk(h.git("ls-remote", url))
        bad = [r for r in self.upstream_log(repo) if r["decision"] != "pass"]
        self.assertEqual(bad, [])

    # ------------------------------------------------------------------
    # the mirror fetch reads with a read token

    def test_08_mirror_fetch_uses_read_token(self):
        repo = "acme/mirrored"
        main = self.new_repo(repo)
        self.up.git_dir(repo, "update-ref", "refs/heads/agent/dst", main)
        tok = self.mint(repo, push=["agent/*"])
        res, w = self.clone(repo, tok)
        self.assertGitOk(res, "clone")
        # a commit only upstream has: pushing it makes gitgate fetch its
        # mirror to classify the update (the pack is empty)
        u1 = self.up.add_commit(repo, "main", "upstream only")
        self.assertGitOk(h.git("fetch", "-q", "origin", cwd=w), "fetch")
        mark = time.time()
        res = h.git("push", "origin", "%s:refs/heads/agent/dst" % u1, cwd=w)
        self.assertGitOk(res, "push")
        self.assertEqual(self.up.rev_parse(repo, "agent/dst"), u1)
        mirror = os.path.join(self.gg.cache_dir, "mirrors", repo + ".git")
        self.assertEqual(h.git("--git-dir=" + mirror, "cat-file", "-e",
                               u1)[0], 0, "the mirror was not fetched")
        window = self.upstream_log(repo, mark)
        fetches = [r for r in window if r["service"] == "git-upload-pack" and
                   r["token"] is not None]
        self.assertTrue(fetches, "no mirror fetch seen upstream: %r" % window)
        read_ids = {c.token_id for c in self.issued(repo, contents="read")}
        for r in fetches:
            self.assertEqual((r["contents"], r["decision"]), ("read", "pass"),
                             r)
            self.assertIn(r["token"], read_ids)
        self.assertTrue(all(r["contents"] == "write" for r in window
                            if r["service"] == "git-receive-pack"), window)

    # ------------------------------------------------------------------
    # API errors reach git with their reason, and the audit log

    def test_10_not_installed(self):
        repo = "nobody/thing"
        self.new_repo(repo, commits=1)
        tok = self.mint(repo)
        res, _ = self.clone(repo, tok)
        reason = R_NOT_INSTALLED % (APP_ID, "nobody")
        self.assertApiError(res, repo, reason)
        r = self.req("GET", info_refs(repo), tok)
        self.assertEqual(self.assertOneLineText(r, 502), reason)
        # negative cache (a minute): one lookup for both requests
        self.assertEqual(len(self.app.installation_calls(repo)), 1)
        self.assertEqual(self.app.token_calls(since=self.t0), [])

    def test_11_repository_not_accessible_422(self):
        repo = "limited/secret"
        self.new_repo(repo, commits=1)
        tok = self.mint(repo)
        res, _ = self.clone(repo, tok)
        self.assertApiError(res, repo, R_422 % (repo, "contents:read",
                                                gh.MSG_REPO_422))

    def test_12_permission_not_granted_422(self):
        # the installation has contents:read only: fetch works, push not
        repo = "limited/allowed"
        self.new_repo(repo, commits=1)
        tok = self.mint(repo, push=["agent/*"])
        res, w = self.clone(repo, tok)
        self.assertGitOk(res, "clone")
        h.commit_file(w, "p.txt", "p\n")
        res = h.git("push", "origin", "HEAD:refs/heads/agent/p", cwd=w)
        self.assertApiError(res, repo, R_422 % (repo, "contents:write",
                                                gh.MSG_PERM_422))
        # asking for workflows too names it
        repo2 = "limited/allowed2"
        self.new_repo(repo2, commits=1)
        tok2 = self.mint(repo2, push=["agent/*"], allow_paths=[".github/**"])
        res, w2 = self.clone(repo2, tok2)
        self.assertGitOk(res, "clone")
        h.commit_file(w2, "p.txt", "p\n")
        res = h.git("push", "origin", "HEAD:refs/heads/agent/p", cwd=w2)
        self.assertApiError(res, repo2, R_422 % (
            repo2, "contents:write, workflows:write", gh.MSG_PERM_422))
        # a 422 the stand-in is told to give, with its message kept
        repo3 = "acme/forced422"
        self.new_repo(repo3, commits=1)
        self.app.fault(422, "access_tokens", message="Custom refusal text.")
        res, _ = self.clone(repo3, self.mint(repo3))
        self.assertApiError(res, repo3, R_422 % (repo3, "contents:read",
                                                 "Custom refusal text."))

    def test_13_jwt_refused_401_retried_once_then_fails(self):
        repo = "acme/jwt401"
        self.new_repo(repo, commits=1)
        tok = self.mint(repo)
        self.app.fault(401)
        mark = time.time()
        res, _ = self.clone(repo, tok)
        self.assertApiError(res, repo, R_401)
        calls = self.app.calls_to(since=mark)
        self.assertEqual([c.status for c in calls], [401, 401], calls)
        # recovers once GitHub accepts the JWT again, without a restart
        self.app.clear_faults()
        res, _ = self.clone(repo, tok)
        self.assertGitOk(res, "clone after the 401s stopped")

    def test_14_jwt_401_once_is_retried(self):
        repo = "acme/jwt401once"
        self.new_repo(repo, commits=1)
        self.app.fault(401, times=1)
        mark = time.time()
        res, _ = self.clone(repo, self.mint(repo))
        self.assertGitOk(res, "clone with one 401")
        calls = self.app.calls_to(since=mark)
        self.assertEqual(calls[0].status, 401, calls)
        self.assertEqual(calls[1].status, 200, calls)
        self.assertEqual(calls[1].endpoint, calls[0].endpoint, calls)

    def test_15_clock_skew_corrected_from_date_header(self):
        g = self.make_gitgate("skew")
        g.start()
        for offset, name in ((-1200, "ahead"), (1200, "behind")):
            with self.subTest(gitgate_clock=name):
                # the stand-in's clock is offset, as if gitgate's were off
                # by -offset
                self.app.clock_offset = offset
                repo = "acme/skew-" + name
                self.new_repo(repo, commits=1)
                mark = time.time()
                res, _ = self.clone(repo, self.mint(repo, gg=g), gg=g)
                self.assertGitOk(res, "clone with skew", gg=g)
                calls = self.app.calls_to(since=mark)
                self.assertGreaterEqual(len(calls), 2, calls)
                self.assertEqual(calls[0].status, 401, calls)
                self.assertIn("claim", calls[0].jwt_error or "")
                ok = [c for c in calls if c.jwt_ok]
                self.assertTrue(ok, calls)
                iat = ok[0].jwt_claims["iat"]
                self.assertLessEqual(abs(iat - (ok[0].time + offset - 60)),
                                     5, ok[0].jwt_claims)
                self.assertEqual(len([c for c in calls
                                      if c.status == 401]), 1, calls)
        self.app.clock_offset = 0
        g.stop()

    def test_16_api_unreachable(self):
        g = self.make_gitgate("unreachable",
                              api_url="http://127.0.0.1:%d" % h.free_port())
        g.start()
        repo = "acme/unreach"
        self.new_repo(repo, commits=1)
        tok = self.mint(repo, gg=g)
        res, _ = self.clone(repo, tok, gg=g)
        self.assertApiError(res, repo, R_UNREACHABLE, gg=g, prefix=True)
        r = self.req("GET", info_refs(repo), tok, gg=g)
        self.assertTrue(self.assertOneLineText(r, 502).startswith(
            R_UNREACHABLE))
        g.stop()

    def test_17_api_stalls_times_out_after_10s(self):
        repo = "acme/stall"
        self.new_repo(repo, commits=1)
        tok = self.mint(repo)
        self.app.stall("access_tokens")
        t = time.monotonic()
        res, _ = self.clone(repo, tok)
        took = time.monotonic() - t
        self.app.clear_faults()
        self.assertApiError(res, repo, R_TIMEOUT, prefix=True)
        self.assertGreaterEqual(took, 9.0)
        self.assertLess(took, 20.0)

    def rate_limited(self, name, setup):
        """A fresh gitgate (it may remember a rate limit), a fresh
        repository, the fault set by setup(); returns (gitgate, repo,
        sandbox token, response to GET info/refs)."""
        g = self.make_gitgate("rate-" + name)
        g.start()
        repo = "acme/rate-" + name
        self.new_repo(repo, commits=1)
        tok = self.mint(repo, gg=g)
        self.app.clear_faults()
        setup()
        return g, repo, tok, self.req("GET", info_refs(repo), tok, gg=g)

    def test_18_rate_limit_429_retry_after(self):
        g, repo, tok, r = self.rate_limited(
            "429", lambda: self.app.rate_limit("429", 7))
        self.assertEqual(self.assertOneLineText(r, 503), R_RATE % 7)
        self.assertEqual(r.header("retry-after"), "7", r.headers)
        res, _ = self.clone(repo, tok, gg=g)
        self.assertApiError(res, repo, R_RATE % 7, status=503, gg=g)
        g.stop()

    def test_19_rate_limit_403_ratelimit_remaining_0(self):
        g, repo, tok, r = self.rate_limited(
            "403", lambda: self.app.rate_limit("403", 30))
        text = self.assertOneLineText(r, 503)
        n = int(r.header("retry-after") or "0")
        self.assertTrue(27 <= n <= 31, r.headers)
        self.assertEqual(text, R_RATE % n)
        recs = [x for x in self.audit(g, repo) if x.get("status") == 503]
        self.assertTrue(recs and recs[-1]["decision"] == "deny" and
                        recs[-1]["reason"] == text, self.audit(g, repo))
        g.stop()

    def test_19b_rate_limit_reset_past_retry_after_at_least_1(self):
        g, repo, tok, r = self.rate_limited(
            "past", lambda: self.app.rate_limit("403", -5))
        self.assertEqual(r.status, 503, self.redact(repr(r)))
        n = int(r.header("retry-after") or "0")
        self.assertGreaterEqual(n, 1, r.headers)
        self.assertEqual(r.text.strip(), R_RATE % n)
        g.stop()

    def test_19c_secondary_rate_limit_403_retry_after(self):
        g, repo, tok, r = self.rate_limited(
            "secondary", lambda: self.app.rate_limit("403-retry-after", 5))
        self.assertEqual(self.assertOneLineText(r, 503), R_RATE % 5)
        self.assertEqual(r.header("retry-after"), "5", r.headers)
        g.stop()

    def test_19d_plain_403_is_502(self):
        g, repo, tok, r = self.rate_limited(
            "plain403", lambda: self.app.fault(
                403, message="Resource not accessible by integration"))
        self.assertOneLineText(r, 502)
        self.assertIsNone(r.header("retry-after"))
        g.stop()

    # ------------------------------------------------------------------
    # a fresh token not yet valid on the git upstream (replication delay)

    def _delay_401s(self, repo):
        return [r for r in self.upstream_log(repo) if r["status"] == 401]

    def test_20_replication_delay_clone_retried(self):
        repo = "acme/repl-clone"
        head = self.new_repo(repo)
        self.app.replication_delay = 0.5
        res, w = self.clone(repo, self.mint(repo))
        self.assertGitOk(res, "clone with replication delay")
        self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=w), head)
        bad = self._delay_401s(repo)
        self.assertEqual(len(bad), 1, self.upstream_log(repo))
        self.assertIn("not valid yet", bad[0]["reason"])
        self.assertEqual(bad[0]["service"], "git-upload-pack")

    def test_21_replication_delay_push_retried(self):
        repo = "acme/repl-push"
        self.new_repo(repo)
        tok = self.mint(repo, push=["agent/*"])
        res, w = self.clone(repo, tok)
        self.assertGitOk(res, "clone")
        self.app.replication_delay = 0.5
        new = h.commit_file(w, "d.txt", "d\n")
        res = h.git("push", "origin", "HEAD:refs/heads/agent/d", cwd=w)
        self.assertGitOk(res, "push with replication delay")
        self.assertEqual(self.up.rev_parse(repo, "agent/d"), new)
        self.assertEqual(len(self._delay_401s(repo)), 1,
                         self.upstream_log(repo))

    def test_22_replication_delay_spooled_push_post_retried(self):
        # The POST is the fresh token's first use: retried from the spool.
        repo = "acme/repl-post"
        main = self.new_repo(repo)
        work = self.path("repl-post-work")
        h.git("clone", "-q", self.up.repo_path(repo), work, check=True)
        new = h.commit_file(work, "post.txt", "post\n")
        body = receive_pack_body([(ZERO, new, "refs/heads/agent/post")],
                                 pack_between(work, new, main))
        tok = self.mint(repo, push=["agent/*"])
        self.app.replication_delay = 0.5
        r = self.req("POST", "/%s.git/git-receive-pack" % repo, tok,
                     headers={"Content-Type": RP_REQUEST}, body=body)
        self.assertEqual(r.status, 200, self.redact(repr(r)))
        lines = [p.decode().strip() for p in pkt_lines(r.body) if p]
        self.assertIn("ok refs/heads/agent/post", lines, lines)
        self.assertEqual(self.up.rev_parse(repo, "agent/post"), new)
        bad = self._delay_401s(repo)
        self.assertEqual(len(bad), 1, self.upstream_log(repo))
        self.assertEqual(bad[0]["service"], "git-receive-pack")

    def test_23_replication_delay_small_upload_pack_post_retried(self):
        repo = "acme/repl-up"
        head = self.new_repo(repo)
        tok = self.mint(repo)
        self.app.replication_delay = 0.5
        r = self.req("POST", "/%s.git/git-upload-pack" % repo, tok,
                     headers={"Content-Type": UPLOAD_REQ},
                     body=h.upload_pack_request_v0([head]))
        self.assertEqual(r.status, 200, self.redact(repr(r)))
        self.assertTrue(r.body.startswith(b"0008NAK\n") and b"PACK" in r.body)
        self.assertEqual(len(self._delay_401s(repo)), 1,
                         self.upstream_log(repo))

    def test_24_replication_delay_big_upload_pack_post_not_retried(self):
        # over 64 KiB: not kept for a replay, so no second attempt
        repo = "acme/repl-big"
        head = self.new_repo(repo)
        tok = self.mint(repo)
        body = b"".join(h.pkt_line("want %s\n" % head) for _ in range(1)) + \
            b"0000" + b"".join(h.pkt_line("have %040x\n" % i)
                               for i in range(1, 1500)) + h.pkt_line("done\n")
        self.assertGreater(len(body), 64 * 1024)
        self.app.replication_delay = 0.5
        r = self.req("POST", "/%s.git/git-upload-pack" % repo, tok,
                     headers={"Content-Type": UPLOAD_REQ}, body=body)
        self.assertNotEqual(r.status, 200, self.redact(repr(r)))
        log = self.upstream_log(repo)
        self.assertEqual([(l["service"], l["status"]) for l in log],
                         [("git-upload-pack", 401)], log)

    # ------------------------------------------------------------------
    # key formats and paths

    def test_30_pkcs8_key_relative_to_config_dir(self):
        g = self.make_gitgate("pkcs8", fmt="pkcs8",
                              key_path=os.path.join("app", "key8.pem"),
                              cwd="/")
        with open(os.path.join(g.root, "app", "key8.pem")) as f:
            self.assertTrue(f.read().startswith("-----BEGIN PRIVATE KEY"))
        g.start()
        repo = "acme/pkcs8"
        head = self.new_repo(repo)
        res, w = self.clone(repo, self.mint(repo, gg=g), gg=g)
        self.assertGitOk(res, "clone with a PKCS#8 key", gg=g)
        self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=w), head)
        g.stop()

    # ------------------------------------------------------------------
    # start-up refusals

    def assertRefusesToStart(self, g, *needles):
        try:
            g.start(timeout=5)
        except h.HarnessError:
            pass
        else:
            g.stop()
            self.fail("gitgate started with a bad configuration; wanted %r"
                      % (needles,))
        err = self.redact(g.stderr_text())
        for n in needles:
            self.assertIn(n, err)
        self.assertTrue(err.strip().splitlines()[-1].startswith("gitgate:"),
                        err)
        return err

    def test_40_two_or_no_credential_sources_refused(self):
        app_cfg = {"app_id": APP_ID, "private_key_file": KEY_FILE,
                   "api_url": self.app.url}
        with self.subTest("token_file and github_app"):
            g = self.make_gitgate("both-file", extra_config={"upstream": {
                "url": self.up.url, "token_file": "upstream-token",
                "github_app": app_cfg}})
            with open(os.path.join(g.root, "upstream-token"), "w") as f:
                f.write("ghs_static\n")
            os.chmod(os.path.join(g.root, "upstream-token"), 0o600)
            self.assertRefusesToStart(g, "upstream.github_app",
                                      "upstream.token_file")
        with self.subTest("GITGATE_UPSTREAM_TOKEN and github_app"):
            g = self.make_gitgate("both-env",
                                  env={"GITGATE_UPSTREAM_TOKEN": "ghs_env"})
            self.assertRefusesToStart(g, "upstream.github_app",
                                      "GITGATE_UPSTREAM_TOKEN")
        with self.subTest("none"):
            g = self.make_gitgate("none", extra_config={"upstream": {
                "url": self.up.url}})
            self.assertRefusesToStart(g, "upstream.github_app",
                                      "upstream.token_file",
                                      "GITGATE_UPSTREAM_TOKEN")

    def test_41_bad_key_files_refused(self):
        ec = subprocess.run(["openssl", "genpkey", "-algorithm", "EC",
                             "-pkeyopt", "ec_paramgen_curve:P-256"],
                            capture_output=True, check=True).stdout
        cases = [
            ("mode-0644", 0o644, None, ["permissions 0644 are too open"]),
            ("mode-0640", 0o640, None, ["permissions 0640 are too open"]),
            ("ec-key", 0o600, ec, ["upstream.github_app.private_key_file:"]),
            ("garbage", 0o600, b"-----BEGIN RSA PRIVATE KEY-----\nnot a key"
             b"\n-----END RSA PRIVATE KEY-----\n",
             ["upstream.github_app.private_key_file:"]),
            ("empty", 0o600, b"", ["upstream.github_app.private_key_file:"]),
            ("missing", None, None, ["upstream.github_app.private_key_file"]),
            ("directory", None, "dir",
             ["upstream.github_app.private_key_file"]),
        ]
        for name, mode, content, needles in cases:
            with self.subTest(name):
                fmt = "pkcs1" if content is None and mode is not None \
                    else None
                g = self.make_gitgate("badkey-" + name, fmt=fmt,
                                      key_mode=mode or 0o600)
                p = os.path.join(g.root, KEY_FILE)
                if content == "dir":
                    os.makedirs(p)
                elif content is not None:
                    with open(p, "wb") as f:
                        f.write(content)
                    os.chmod(p, mode)
                self.assertRefusesToStart(g, *needles)

    # ------------------------------------------------------------------
    # secrets stay secret (runs last)

    def test_99_no_key_jwt_or_token_anywhere(self):
        secrets_ = [s for s in self.app.secrets() if len(s) >= 16]
        self.assertTrue(any(s.startswith("ghs_") for s in secrets_))
        self.assertTrue(self.app.jwts)
        places = []
        for g in [self.gg] + self.proxies:
            for p in (g.stderr_path, g.stdout_path, g.audit_log):
                try:
                    with open(p, errors="replace") as f:
                        places.append((p, f.read()))
                except OSError:
                    pass
        with h._transcript_lock:
            for cmd, rc, out, err in h.git_transcript:
                if any("127.0.0.1:%d" % self.up.port in str(a) for a in cmd):
                    continue  # direct upstream access (self-made URLs)
                places.append(("git " + str(cmd[1:2]), out + err))
        for resp in h.http_transcript:
            places.append(("http response", repr(resp.headers) +
                           resp.body.decode("utf-8", "replace")))
        self.assertGreater(len(places), 50)
        self.assertTrue(any(p.endswith("audit.jsonl") and t
                            for p, t in places))
        leaks = []
        for where, text in places:
            for s in secrets_:
                if s in text:
                    leaks.append(where)
                    break
        self.assertEqual(leaks, [], "key, JWT or token text found in these "
                         "places (not shown)")


if __name__ == "__main__":
    h.run_suite()

#!/usr/bin/env python3
"""Integration suite: the real git client through a real `gitgate serve` to a
real smart-HTTP upstream (lighttpd + git http-backend, Basic auth with a
per-run secret, chunked bodies, protocol v2). See harness.py.

Run: GITGATE=build/gitgate python3 tests/integration/test_proxy.py
(meson test registers it as integration-test_proxy). The last line is
`N passed, N failed[, N skipped]`; the exit code is non-zero on failure.
If gitgate cannot be started, every test fails (none is skipped).
"""

import base64
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

UPLOAD_ADV = "application/x-git-upload-pack-advertisement"
RECEIVE_ADV = "application/x-git-receive-pack-advertisement"
REALM = 'Basic realm="gitgate"'


def info_refs(repo, service="git-upload-pack", suffix=".git"):
    return "/%s%s/info/refs?service=%s" % (repo, suffix, service)


def tamper_flip(token):
    """Change one base64url character in the middle of the signed part."""
    parts = token.split(".")
    seg = parts[2]
    i = len(seg) // 2
    parts[2] = seg[:i] + ("A" if seg[i] != "A" else "B") + seg[i + 1:]
    return ".".join(parts)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def tamper_claims(token, old, new):
    """Rewrite bytes of the signed message (claims), keep the signature."""
    assert len(old) == len(new)
    parts = token.split(".")
    raw = b64url_decode(parts[2])
    for o, n in ((old, new), (old.replace(b"/", b"\\/"),
                              new.replace(b"/", b"\\/"))):
        if o in raw:
            parts[2] = b64url_encode(raw.replace(o, n))
            return ".".join(parts)
    raise AssertionError("claim %r not found in token" % old)


class ProxyTest(unittest.TestCase):
    """One upstream and one gitgate for the whole class; tests that need
    their own gitgate (SIGHUP) start one."""

    startup_error = None
    up = None
    gg = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-proxy-")
        cls.extra_proxies = []  # running, stopped in tearDownClass
        cls.all_proxies = []    # every gitgate started: logs are scanned
        try:
            cls.up = h.Upstream()
            cls.up.start()
            cls.head = cls.up.create_repo("acme/widgets", commits=3)
            cls.other_head = cls.up.create_repo("acme/other", commits=1)
            cls.gg = h.Gitgate(cls.up.url, cls.up.secret)
            cls.all_proxies.append(cls.gg)
            cls.gg.start()
            cls.fetch_tok = cls.gg.mint(repo="acme/widgets", sub="fetcher")
        except Exception as e:  # reported by every test, see setUp
            cls.startup_error = "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("\nSTARTUP FAILED: %s\n" % cls.startup_error)

    @classmethod
    def tearDownClass(cls):
        for g in cls.extra_proxies:
            g.stop()
        if cls.gg:
            cls.gg.stop()
        if cls.up:
            cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        if self.startup_error:
            self.fail("upstream/gitgate could not be started: " +
                      self.startup_error[:600])

    # -- helpers

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def fresh_dir(self, name):
        """A new directory under client/: everything the git client writes
        (clones, traces) lives there and is searched for the secret."""
        d = self.path("client", name)
        self.assertFalse(os.path.exists(d), d)
        return d

    def req(self, method, path, token=None, bearer=False, user="agent",
            headers=None, body=None, gg=None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = (h.bearer_auth(token) if bearer else
                                     h.basic_auth(user, token))
        return (gg or self.gg).request(method, path, hdrs, body)

    def assertStatus(self, resp, status):
        self.assertEqual(resp.status, status, resp)

    def assertOneLineText(self, resp, status):
        """status, text/plain, a non-empty one-line reason."""
        self.assertStatus(resp, status)
        ctype = resp.header("content-type") or ""
        self.assertTrue(ctype.startswith("text/plain"), resp)
        text = resp.text
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        self.assertTrue(text.strip(), "empty reason: %r" % resp)
        self.assertNotIn("\n", text, "reason is not one line: %r" % resp)
        return text

    def assert401(self, resp):
        text = self.assertOneLineText(resp, 401)
        self.assertEqual(resp.header("www-authenticate"), REALM, resp)
        return text

    def assertBareAdvert(self, resp, ctype=UPLOAD_ADV):
        self.assertStatus(resp, 200)
        self.assertEqual(resp.header("content-type"), ctype, resp)
        service = ctype.split("x-")[1].split("-advertisement")[0]
        self.assertTrue(resp.body.startswith(
            h.pkt_line("# service=%s\n" % service) + b"0000"), resp)

    def clone(self, url, name, git_opts=(), env=None):
        dest = self.fresh_dir(name)
        rc, out, err = h.git(*git_opts, "clone", url, dest, env=env)
        return rc, out, err, dest

    def assertGitOk(self, result, what):
        rc, out, err = result[:3]
        self.assertEqual(rc, 0, "%s failed (%d):\n%s%s" % (what, rc, out, err))

    def assertGitFails(self, result, what, rc_expected=128):
        rc, out, err = result[:3]
        self.assertEqual(rc, rc_expected, "%s: expected exit %d, got %d:\n%s%s"
                         % (what, rc_expected, rc, out, err))

    def work_clone(self, repo, token, name):
        """Clone repo through gitgate for pushing; returns the worktree."""
        rc, out, err, dest = self.clone(self.gg.repo_url(repo, token), name)
        self.assertGitOk((rc, out, err), "clone " + repo)
        return dest

    def local_head(self, worktree):
        return h.git_out("rev-parse", "HEAD", cwd=worktree)

    def poll_status(self, method, path, token, want, timeout=3.0, gg=None):
        """Poll until the proxy answers `want`; return the last response."""
        last = [None]

        def probe():
            last[0] = self.req(method, path, token, gg=gg)
            return last[0].status == want

        h.wait_until(probe, timeout, 0.1)
        return last[0]

    # ------------------------------------------------------------------
    # HTTP surface

    def test_healthz(self):
        r = self.gg.request("GET", "/healthz")
        self.assertStatus(r, 200)
        self.assertIn(r.body, (b"ok", b"ok\n"), r)

    def test_unknown_paths_404(self):
        for path in ("/", "/nope", "/favicon.ico", "/acme"):
            self.assertStatus(self.gg.request("GET", path), 404)
        # repository-shaped but not smart HTTP (dumb protocol files, no
        # service), with a valid token so auth cannot be the answer
        for path in ("/acme/widgets.git/HEAD",
                     "/acme/widgets.git/objects/info/packs",
                     "/acme/widgets.git/info/refs"):
            self.assertStatus(self.req("GET", path, self.fetch_tok), 404)

    def test_wrong_method_405_says_which(self):
        """RFC 9110: a 405 carries Allow with the methods the path
        answers (it had none)."""
        for method, path, allow in (
                ("POST", "/healthz", "GET, HEAD"),
                ("POST", info_refs("acme/widgets"), "GET"),
                ("GET", "/acme/widgets.git/git-upload-pack", "POST"),
                ("PUT", "/acme/widgets.git/git-receive-pack", "POST")):
            r = self.req(method, path, self.fetch_tok, body=b"")
            self.assertStatus(r, 405)
            self.assertEqual(r.header("allow"), allow, r)
            self.assertEqual(r.text, "method not allowed\n", r)

    def test_missing_or_unparseable_credentials_401(self):
        for path, method, body in (
                (info_refs("acme/widgets"), "GET", None),
                (info_refs("acme/widgets", "git-receive-pack"), "GET", None),
                ("/acme/widgets.git/git-upload-pack", "POST", b"0000")):
            r = self.req(method, path, body=body)
            self.assertStatus(r, 401)
            self.assertEqual(r.header("www-authenticate"), REALM, r)
        for auth in ("Basic !!!not-base64!!!",
                     "Basic " + base64.b64encode(b"no-colon").decode(),
                     "Digest username=\"x\"", "Bearer", "Bearer ",
                     "garbage"):
            r = self.req("GET", info_refs("acme/widgets"),
                         headers={"Authorization": auth})
            self.assertStatus(r, 401)
            self.assertEqual(r.header("www-authenticate"), REALM,
                             "%s: %r" % (auth, r))
        # what is wrong with the header, not "token ..." (there is none)
        for auth, why in (
                ("Basic !!!not-base64!!!", "Basic credentials are not base64"),
                ("Bearer ", "empty credentials"),
                ("Digest username=\"x\"",
                 "unsupported Authorization scheme (use Basic or Bearer)")):
            r = self.req("GET", info_refs("acme/widgets"),
                         headers={"Authorization": auth})
            self.assertEqual(self.assert401(r), why, auth)

    def test_bad_tokens_401(self):
        other_keys = h.Gitgate(self.up.url, self.up.secret,
                               root=self.path("proxies", "other-keys"))
        other_keys.keygen()
        foreign = other_keys.mint(repo="acme/widgets")  # unknown key
        # claims rewritten after signing: a token for acme/widgetz turned
        # into one for acme/widgets must not open acme/widgets
        lookalike = self.gg.mint(repo="acme/widgetz")
        forged = tamper_claims(lookalike, b"acme/widgetz", b"acme/widgets")
        cases = {
            "garbage": "not-a-token",
            "empty payload": "v4.public.",
            "truncated": self.fetch_tok[:40],
            "flipped": tamper_flip(self.fetch_tok),
            "forged claims": forged,
            "v4.local": "v4.local." + self.fetch_tok.split(".", 2)[2],
            "foreign key": foreign,
        }
        for name, tok in cases.items():
            for bearer in (False, True):
                with self.subTest(token=name, bearer=bearer):
                    r = self.req("GET", info_refs("acme/widgets"), tok,
                                 bearer=bearer)
                    self.assert401(r)

    def test_expired_token_401(self):
        tok = self.gg.mint(repo="acme/widgets", ttl="1s")
        time.sleep(2.2)
        r = self.req("GET", info_refs("acme/widgets"), tok)
        text = self.assert401(r)
        self.assertIn("expire", text.lower())
        res = h.git("ls-remote", self.gg.repo_url("acme/widgets", tok))
        self.assertGitFails(res, "ls-remote with expired token")
        self.assertIn("Authentication failed", res[2])

    def test_revocation_without_restart(self):
        pid = self.gg.proc.pid
        a = self.gg.mint(repo="acme/widgets", sub="to-revoke-a")
        b = self.gg.mint(repo="acme/widgets", sub="to-revoke-b")
        for tok in (a, b):
            self.assertBareAdvert(self.req("GET", info_refs("acme/widgets"),
                                           tok))
        # revoke by token
        rc, out, err = self.gg.revoke(a)
        self.assertEqual(rc, 0, err)
        r = self.poll_status("GET", info_refs("acme/widgets"), a, 401)
        self.assertIn("revoked", self.assert401(r).lower())
        self.assertBareAdvert(self.req("GET", info_refs("acme/widgets"), b))
        res = h.git("ls-remote", self.gg.repo_url("acme/widgets", a))
        self.assertGitFails(res, "ls-remote with revoked token")
        # revoke by jti
        jti = self.gg.inspect(b)["jti"]
        self.assertTrue(jti)
        rc, out, err = self.gg.revoke(jti)
        self.assertEqual(rc, 0, err)
        r = self.poll_status("GET", info_refs("acme/widgets"), b, 401)
        self.assertIn("revoked", self.assert401(r).lower())
        # other tokens unaffected, same process
        self.assertBareAdvert(self.req("GET", info_refs("acme/widgets"),
                                       self.fetch_tok))
        self.assertTrue(self.gg.running())
        self.assertEqual(self.gg.proc.pid, pid)

    def test_revocation_file_edited_by_hand(self):
        # One line the parser does not understand used to stop the whole
        # file from reloading: every later revocation waited for the fix,
        # `gitgate revoke` refused too, and a pasted token revoked nothing.
        g = h.Gitgate(self.up.url, self.up.secret,
                      root=self.path("proxies", "revoked-by-hand"))
        self.extra_proxies.append(g)
        self.all_proxies.append(g)
        g.start()
        a, b, c, d = (g.mint(repo="acme/widgets", sub="hand-" + x)
                      for x in "abcd")
        path = info_refs("acme/widgets")
        for tok in (a, b, c, d):
            self.assertBareAdvert(self.req("GET", path, tok, gg=g))
        with open(g.revocations, "a") as f:
            f.write("%s   # leaked in a CI log\n" % g.inspect(a)["jti"])
            f.write("not\x01a-jti\n")
            f.write(b + "\n")  # the whole token, pasted
        for tok in (a, b):
            r = self.poll_status("GET", path, tok, 401, timeout=5.0, gg=g)
            self.assertEqual(self.assert401(r), "token revoked")
        self.assertBareAdvert(self.req("GET", path, c, gg=g))
        self.assertTrue(h.wait_until(
            lambda: "revocations: 1 line(s) to fix, first line 2: "
            "jti must be printable ASCII without spaces" in g.stderr_text(),
            5), g.stderr_text()[-1000:])
        # the CLI still revokes, and says what it skipped
        rc, out, err = g.revoke(c, check=False)
        self.assertEqual(rc, 0, err)
        self.assertIn("warning: %s: 1 line(s) to fix (until then a running "
                      "proxy also keeps every revocation it had), first "
                      "line 2: jti must be printable ASCII without spaces"
                      % g.revocations, err)
        r = self.poll_status("GET", path, c, 401, timeout=5.0, gg=g)
        self.assertEqual(self.assert401(r), "token revoked")
        self.assertBareAdvert(self.req("GET", path, d, gg=g))

    def test_revocation_hand_edits_fail_closed(self):
        # Hand-written lines that used to revoke nothing useful: a '#'
        # without its space, a comma-separated list, a pasted
        # Authorization header value. And an edit that breaks a line must
        # not un-revoke what it revoked, until the file is clean again.
        g = h.Gitgate(self.up.url, self.up.secret,
                      root=self.path("proxies", "revoked-fail-closed"))
        self.extra_proxies.append(g)
        self.all_proxies.append(g)
        g.start()
        a, b, c, d, e = (g.mint(repo="acme/widgets", sub="closed-" + x)
                         for x in "abcde")
        jti = dict((t, g.inspect(t)["jti"]) for t in (a, b, c))
        path = info_refs("acme/widgets")
        for tok in (a, b, c, d, e):
            self.assertBareAdvert(self.req("GET", path, tok, gg=g))

        def write(text):  # atomically, as an editor saving would
            with open(g.revocations + ".tmp", "w") as f:
                f.write(text)
            os.replace(g.revocations + ".tmp", g.revocations)

        write("%s#leaked\n%s,%s\nBearer %s\n" % (jti[a], jti[b], jti[c], d))
        for tok in (a, b, c, d):
            r = self.poll_status("GET", path, tok, 401, timeout=5.0, gg=g)
            self.assertEqual(self.assert401(r), "token revoked")
        self.assertBareAdvert(self.req("GET", path, e, gg=g))
        self.assertTrue(h.wait_until(
            lambda: "revocations: 3 line(s) to fix, first line 1: "
            "'#' inside an entry: revoked the part before it (a comment "
            "needs a space before '#')"
            in g.stderr_text(), 5), g.stderr_text()[-1000:])
        # every line broken: what they revoked stays (logged)
        write("oops\x01\n")
        self.assertTrue(h.wait_until(
            lambda: "revocations: 1 line(s) to fix, first line 1: "
            "jti must be printable ASCII without spaces; until the file has "
            "none, 4 earlier revocation(s) it no longer lists stay"
            in g.stderr_text(), 5), g.stderr_text()[-1000:])
        for tok in (a, b, c, d):
            self.assertEqual(self.assert401(self.req("GET", path, tok,
                                                     gg=g)),
                             "token revoked")
        # a clean file is taken as it is: un-revoking works
        write("%s  # still leaked\n" % jti[a])
        for tok in (b, c, d):
            self.assertBareAdvert(self.poll_status("GET", path, tok, 200,
                                                   timeout=5.0, gg=g))
        self.assertEqual(self.assert401(self.req("GET", path, a, gg=g)),
                         "token revoked")

    def test_unusable_cache_dir_refused_at_start(self):
        # It used to start, then answer every push with a bare 500.
        g = h.Gitgate(self.up.url, self.up.secret,
                      root=self.path("proxies", "bad-cache"),
                      extra_config={"cache_dir": "upstream-token"})
        self.all_proxies.append(g)
        with self.assertRaises(h.HarnessError):
            g.start(timeout=5)
        self.assertRegex(g.stderr_text(), r"gitgate: .*cache_dir: cannot "
                         r"create .*upstream-token/tmp: Not a directory")

    def test_unusable_files_refused_at_start_naming_the_key(self):
        # interface.md: unreadable files are refused "with the key's name";
        # these used to name only the path.
        cases = [
            ({"verify_key": "keys/missing.pub"},
             r"gitgate: serve: verify_key: .*keys/missing\.pub: No such "
             r"file or directory"),
            ({"verify_key": ["keys/verify.pub", "keys/signing.key"]},
             r"gitgate: serve: verify_key: .*keys/signing\.key: is a "
             r"signing key \(k4\.secret\); a public key"),
            ({"revocations": "keys"},
             r"gitgate: serve: revocations: .*keys: Is a directory"),
            ({"audit_log": "no-such-dir/audit.jsonl"},
             r"gitgate: serve: audit_log .*no-such-dir/audit\.jsonl: open: "
             r"No such file or directory"),
        ]
        for i, (extra, want) in enumerate(cases):
            with self.subTest(extra=extra):
                g = h.Gitgate(self.up.url, self.up.secret,
                              root=self.path("proxies", "bad-file-%d" % i),
                              extra_config=extra)
                self.all_proxies.append(g)
                with self.assertRaises(h.HarnessError):
                    g.start(timeout=5)
                self.assertRegex(g.stderr_text(), want)

    def test_repo_not_granted_403(self):
        for path in (info_refs("acme/other"),
                     info_refs("acme/other", "git-receive-pack"),
                     info_refs("acme/missing")):
            self.assertOneLineText(self.req("GET", path, self.fetch_tok), 403)
        r = self.req("POST", "/acme/other.git/git-upload-pack", self.fetch_tok,
                     headers={"Content-Type":
                              "application/x-git-upload-pack-request"},
                     body=h.upload_pack_request_v0([self.other_head]))
        self.assertOneLineText(r, 403)
        # the git client sees the refusal
        rc, out, err, dest = self.clone(
            self.gg.repo_url("acme/other", self.fetch_tok), "wrong-repo")
        self.assertGitFails((rc, out, err), "clone of a repo not granted")
        self.assertIn("403", err)
        self.assertIn("remote: ", err)

    def test_op_not_granted_403(self):
        # fetch-only token asking for receive-pack
        r = self.req("GET", info_refs("acme/widgets", "git-receive-pack"),
                     self.fetch_tok)
        self.assertOneLineText(r, 403)
        r = self.req("POST", "/acme/widgets.git/git-receive-pack",
                     self.fetch_tok,
                     headers={"Content-Type":
                              "application/x-git-receive-pack-request"},
                     body=b"0000")
        self.assertOneLineText(r, 403)
        # push-only token asking for upload-pack
        push_only = self.gg.mint(repo="acme/widgets", push=["agent/*"],
                                 no_fetch=True)
        self.assertOneLineText(
            self.req("GET", info_refs("acme/widgets"), push_only), 403)
        self.assertBareAdvert(
            self.req("GET", info_refs("acme/widgets", "git-receive-pack"),
                     push_only), RECEIVE_ADV)

    def test_bearer_and_basic_any_user(self):
        self.assertBareAdvert(self.req("GET", info_refs("acme/widgets"),
                                       self.fetch_tok, bearer=True))
        for user in ("agent", "x-access-token", "anything", ""):
            self.assertBareAdvert(self.req("GET", info_refs("acme/widgets"),
                                           self.fetch_tok, user=user))
        # the git client with the token as a Bearer header
        res = h.git("-c", "http.extraHeader=Authorization: Bearer " +
                    self.fetch_tok, "ls-remote",
                    self.gg.repo_url("acme/widgets"))
        self.assertGitOk(res, "ls-remote with Bearer token")
        self.assertIn("%s\trefs/heads/main" % self.head, res[1])

    def test_git_suffix_optional(self):
        self.assertBareAdvert(self.req(
            "GET", info_refs("acme/widgets", suffix=""), self.fetch_tok))
        rc, out, err, dest = self.clone(
            self.gg.repo_url("acme/widgets", self.fetch_tok, suffix=""),
            "no-suffix")
        self.assertGitOk((rc, out, err), "clone without .git")
        self.assertEqual(self.local_head(dest), self.head)

    def test_upstream_repo_missing_404(self):
        tok = self.gg.mint(repo="acme/missing")
        self.assertStatus(self.req("GET", info_refs("acme/missing"), tok),
                          404)
        rc, out, err, _ = self.clone(self.gg.repo_url("acme/missing", tok),
                                     "missing")
        self.assertGitFails((rc, out, err), "clone of a missing repo")
        self.assertIn("not found", err)

    def test_upstream_down_502(self):
        self.up.down()
        try:
            r = self.req("GET", info_refs("acme/widgets"), self.fetch_tok)
            self.assertOneLineText(r, 502)
            res = h.git("ls-remote", self.gg.repo_url("acme/widgets",
                                                      self.fetch_tok))
            self.assertGitFails(res, "ls-remote while upstream is down")
            self.assertIn("502", res[2])
        finally:
            self.up.up()
        # recovers without a restart
        self.assertBareAdvert(self.req("GET", info_refs("acme/widgets"),
                                       self.fetch_tok))

    def test_post_after_upstream_closed_idle_connection(self):
        """Upstreams close idle keep-alive connections (lighttpd after 5 s,
        GitHub after a while too). A POST must not be sent on such a
        connection from the pool: its streamed body cannot be replayed, so
        curl gave up ("necessary data rewind wasn't possible") and the
        client got a 502."""
        body = h.pkt_line(b"command=ls-refs\n") + b"0000"
        hdrs = {"Git-Protocol": "version=2", "Content-Type":
                "application/x-git-upload-pack-request"}
        path = "/acme/widgets.git/git-upload-pack"
        for idle in (0, 6):  # 6: past lighttpd's max-keep-alive-idle (5 s)
            time.sleep(idle)
            r = self.req("POST", path, self.fetch_tok, headers=hdrs,
                         body=body)
            self.assertStatus(r, 200)
            self.assertIn(self.head.encode(), r.body)

    def test_upstream_rejects_credential_502(self):
        self.up.reject_credential()
        try:
            r = self.req("GET", info_refs("acme/widgets"), self.fetch_tok)
            text = self.assertOneLineText(r, 502)
            self.assertIn("upstream rejected gitgate's credential", text)
            self.assertIsNone(r.header("www-authenticate"), r)
            res = h.git("ls-remote", self.gg.repo_url("acme/widgets",
                                                      self.fetch_tok))
            self.assertGitFails(res, "ls-remote with upstream refusing")
            self.assertIn("remote: upstream rejected gitgate's credential",
                          res[2])
        finally:
            self.up.accept_credential()
        self.assertBareAdvert(self.req("GET", info_refs("acme/widgets"),
                                       self.fetch_tok))

    def test_receive_pack_probe_relayed(self):
        # git sends a 4-byte flush before a chunked push to see that auth
        # works; it must reach the upstream and come back 200.
        self.up.create_repo("acme/probe", commits=1)
        before = self.up.refs("acme/probe")
        tok = self.gg.mint(repo="acme/probe", push=["agent/*"])
        r = self.req("POST", "/acme/probe.git/git-receive-pack", tok,
                     headers={"Content-Type":
                              "application/x-git-receive-pack-request",
                              "Accept":
                              "application/x-git-receive-pack-result"},
                     body=b"0000")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("content-type"),
                         "application/x-git-receive-pack-result", r)
        self.assertEqual(self.up.refs("acme/probe"), before)

    def test_gzip_upload_pack_request(self):
        body = h.gzip_bytes(h.upload_pack_request_v0([self.head]))
        r = self.req("POST", "/acme/widgets.git/git-upload-pack",
                     self.fetch_tok,
                     headers={"Content-Type":
                              "application/x-git-upload-pack-request",
                              "Accept": "application/x-git-upload-pack-result",
                              "Content-Encoding": "gzip"},
                     body=body)
        self.assertStatus(r, 200)
        self.assertEqual(r.header("content-type"),
                         "application/x-git-upload-pack-result", r)
        self.assertTrue(r.body.startswith(b"0008NAK\n"), r)
        pack = r.body[8:]
        self.assertEqual(pack[:4], b"PACK", r)
        # 3 commits, 3 trees, 3 blobs
        self.assertEqual(int.from_bytes(pack[8:12], "big"), 9, r)

    def test_malformed_requests_do_not_stop_service(self):
        def raw(data, read=True):
            s = socket.create_connection(("127.0.0.1", self.gg.port),
                                         timeout=10)
            s.sendall(data)
            if read:
                try:
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
                s.close()
            return s

        raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)))
        raw(b"\x00\xff\xfe garbage \r\n\r\n\r\n")
        raw(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
            b"X-Big: " + b"b" * 100000 + b"\r\n\r\n")
        raw(b"POST /acme/widgets.git/git-upload-pack HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzzzz\r\nnot a chunk\r\n")
        raw(b"POST /acme/widgets.git/git-upload-pack HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 5\r\nContent-Length: 500\r\n\r\nhello")
        # two clients that stall mid-request stay connected meanwhile
        stalled = [
            raw(b"GET /acme/widgets.git/info/refs?service=git-upl", False),
            raw(b"POST /acme/widgets.git/git-upload-pack HTTP/1.1\r\n"
                b"Host: x\r\nAuthorization: " +
                h.basic_auth("a", self.fetch_tok).encode() +
                b"\r\nContent-Length: 100000\r\n\r\n0032want", False),
        ]
        try:
            self.assertTrue(self.gg.running(), self.gg.stderr_text()[-2000:])
            self.assertStatus(self.gg.request("GET", "/healthz"), 200)
            rc, out, err, dest = self.clone(
                self.gg.repo_url("acme/widgets", self.fetch_tok),
                "after-garbage")
            self.assertGitOk((rc, out, err), "clone after malformed requests")
            self.assertEqual(self.local_head(dest), self.head)
        finally:
            for s in stalled:
                s.close()
        self.assertTrue(self.gg.running())

    def raw_exchange(self, data):
        """Send raw bytes on one connection; the status line and body of
        the first response (read until gitgate closes)."""
        s = socket.create_connection(("127.0.0.1", self.gg.port), timeout=10)
        try:
            s.sendall(data)
            got = b""
            while True:
                try:
                    part = s.recv(65536)
                except socket.timeout:
                    break
                if not part:
                    break
                got += part
        finally:
            s.close()
        head, _, body = got.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].decode(errors="replace"), body

    def test_request_smuggling_refused(self):
        # A body framed two ways: gitgate used to send Content-Length: 4
        # upstream and then all the chunks, whose tail upstream read as a
        # new request (for a repository this token does not grant) and
        # completed with the next pooled request's headers, credential
        # included.
        smuggled = (b"0000GET /acme/other.git/info/refs?service=git-upload"
                    b"-pack HTTP/1.1\r\nX-Smuggled: ")
        auth = h.basic_auth("a", self.fetch_tok).encode()
        status, body = self.raw_exchange(
            b"POST /acme/widgets.git/git-upload-pack HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: " + auth + b"\r\n"
            b"Content-Type: application/x-git-upload-pack-request\r\n"
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
            b"%x\r\n" % len(smuggled) + smuggled + b"\r\n0\r\n\r\n")
        self.assertIn(" 400 ", status, body)
        self.assertEqual(body.strip(),
                         b"Content-Length and Transfer-Encoding together")
        status, body = self.raw_exchange(
            b"POST /acme/widgets.git/git-upload-pack HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: " + auth + b"\r\n"
            b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
        self.assertIn(" 501 ", status, body)
        self.assertEqual(body.strip(),
                         b"unsupported Transfer-Encoding (only chunked)")
        # the next requests on the pool get their own repository
        for _ in range(2):
            resp = self.req("GET", "/acme/widgets.git/info/refs?service="
                            "git-upload-pack", self.fetch_tok)
            self.assertStatus(resp, 200)
            self.assertIn(self.head.encode(), resp.body)
            self.assertNotIn(self.other_head.encode(), resp.body)
        self.assertFalse([l for l in self.up.access_log_lines()
                          if "X-Smuggled" in l or "/acme/other.git" in l],
                         "smuggled request reached upstream")

    def test_control_character_in_header_refused(self):
        # A bare CR went upstream as-is: a server that ends a line there
        # would read the rest as a header of gitgate's own request.
        auth = h.basic_auth("a", self.fetch_tok).encode()
        before = len(self.up.access_log_lines())
        for name, value in ((b"User-Agent", b"git/2.39\rContent-Length: 40"),
                            (b"Git-Protocol", b"version=2\rX-Evil: 1"),
                            (b"Accept-Language", b"en\x01")):
            status, body = self.raw_exchange(
                b"GET /acme/widgets.git/info/refs?service=git-upload-pack "
                b"HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
                b"\r\n" + name + b": " + value + b"\r\nConnection: close"
                b"\r\n\r\n")
            self.assertIn(" 400 ", status, (name, body))
            self.assertEqual(body.strip(),
                             b"control character in a request header")
        self.assertEqual(len(self.up.access_log_lines()), before,
                         "a request with a control character went upstream")

    def test_oversized_push_refused_before_body(self):
        # A push declaring more than the 2 GiB cap is refused on its
        # headers: nothing is spooled, and the client need not send it.
        tok = self.gg.mint(repo="acme/widgets", push=["agent/*"],
                           sub="huge-pusher")
        s = socket.create_connection(("127.0.0.1", self.gg.port), timeout=10)
        try:
            s.sendall(
                b"POST /acme/widgets.git/git-receive-pack HTTP/1.1\r\n"
                b"Host: x\r\nAuthorization: " +
                h.basic_auth("a", tok).encode() + b"\r\n"
                b"Content-Type: application/x-git-receive-pack-request\r\n"
                b"Content-Length: 3000000000\r\n\r\n" + b"0" * 4096)
            got = b""
            while b"\r\n\r\n" not in got or not got.endswith(b"\n"):
                part = s.recv(65536)
                if not part:
                    break
                got += part
        finally:
            s.close()
        head, _, body = got.partition(b"\r\n\r\n")
        self.assertIn(b" 413 ", head.split(b"\r\n")[0], got)
        self.assertEqual(body.strip(), b"push larger than 2147483648 bytes")
        h.wait_until(lambda: "huge-pusher" in self.gg.audit_text(), 5)
        rec = [json.loads(l) for l in self.gg.audit_text().splitlines()
               if "huge-pusher" in l][-1]
        self.assertEqual((rec["status"], rec["decision"], rec["reason"]),
                         (413, "deny", "push larger than 2147483648 bytes"))

    def test_sighup_reloads_keys(self):
        g = h.Gitgate(self.up.url, self.up.secret,
                      root=self.path("proxies", "hup"))
        self.extra_proxies.append(g)
        self.all_proxies.append(g)
        g.start()
        pid = g.proc.pid
        tok_a = g.mint(repo="acme/widgets", sub="key-a")
        keys_b = g.keygen(self.path("proxies", "hup-keys-b"))
        tok_b = g.mint(repo="acme/widgets", sub="key-b",
                       key=os.path.join(keys_b, "signing.key"))
        path = info_refs("acme/widgets")
        self.assertBareAdvert(self.req("GET", path, tok_a, gg=g))
        self.assert401(self.req("GET", path, tok_b, gg=g))
        # rotate: the configured verify_key file now holds key B
        with open(os.path.join(keys_b, "verify.pub")) as f:
            pub_b = f.read()
        tmp = g.verify_key + ".new"
        with open(tmp, "w") as f:
            f.write(pub_b)
        os.replace(tmp, g.verify_key)
        g.reload()
        r = self.poll_status("GET", path, tok_b, 200, timeout=5.0, gg=g)
        self.assertBareAdvert(r)
        self.assert401(self.req("GET", path, tok_a, gg=g))
        self.assertTrue(g.running())
        self.assertEqual(g.proc.pid, pid)
        # a reload that fails keeps the old keys and the process
        with open(tmp, "w") as f:
            f.write("k4.public.this-is-not-a-key\n")
        os.replace(tmp, g.verify_key)
        g.reload()
        time.sleep(1.0)
        self.assertTrue(g.running(), g.stderr_text()[-2000:])
        self.assertBareAdvert(self.req("GET", path, tok_b, gg=g))
        # graceful stop
        self.assertEqual(g.stop(), 0, g.stderr_text()[-2000:])
        self.extra_proxies.remove(g)

    def test_secret_from_environment_and_two_verify_keys(self):
        # upstream secret from GITGATE_UPSTREAM_TOKEN (no token_file), and
        # verify_key as an array: tokens of either key are accepted
        g = h.Gitgate(self.up.url, self.up.secret, secret_via_env=True,
                      root=self.path("proxies", "env"))
        self.extra_proxies.append(g)
        self.all_proxies.append(g)
        keys_b = g.keygen(self.path("proxies", "env-keys-b"))
        g.keygen()
        g.extra_config["verify_key"] = [
            g.verify_key, os.path.join(keys_b, "verify.pub")]
        g.start()
        self.assertNotIn("token_file", g.config()["upstream"])
        tok_a = g.mint(repo="acme/widgets")
        tok_b = g.mint(repo="acme/widgets",
                       key=os.path.join(keys_b, "signing.key"))
        for tok in (tok_a, tok_b):
            res = h.git("ls-remote", g.repo_url("acme/widgets", tok))
            self.assertGitOk(res, "ls-remote via env-secret proxy")
            self.assertIn("%s\trefs/heads/main" % self.head, res[1])
        self.assertEqual(g.stop(), 0, g.stderr_text()[-2000:])
        self.extra_proxies.remove(g)

    def test_upstream_sees_only_gitgate_credential(self):
        res = h.git("ls-remote", self.gg.repo_url("acme/widgets",
                                                  self.fetch_tok))
        self.assertGitOk(res, "ls-remote")
        good = 'auth="%s"' % h.basic_auth(h.UPSTREAM_USER, self.up.secret)
        self.assertIsNotNone(self.up.wait_access_log(lambda l: good in l),
                             "upstream never saw gitgate's credential")
        for line in self.up.access_log_lines():
            self.assertTrue(good in line or 'auth="-"' in line,
                            "upstream saw another credential: " + line)
            for tok in self.gg.minted:
                self.assertNotIn(tok, line)

    # ------------------------------------------------------------------
    # the real git client

    def _clone_protocol(self, version):
        rc, out, err, dest = self.clone(
            self.gg.repo_url("acme/widgets", self.fetch_tok),
            "clone-v%d" % version, ("-c", "protocol.version=%d" % version),
            env={"GIT_TRACE_PACKET": "1"})
        self.assertGitOk((rc, out, err), "clone v%d" % version)
        self.assertEqual("git< version 2" in err, version == 2,
                         "protocol actually used differs from v%d" % version)
        self.assertEqual(self.local_head(dest), self.head)
        self.assertEqual(h.git_out("rev-list", "--count", "HEAD", cwd=dest),
                         "3")
        with open(os.path.join(dest, "file2.txt")) as f:
            self.assertEqual(f.read(), "acme/widgets commit 2\n")
        h.git_out("fsck", "--strict", cwd=dest)

    def test_clone_protocol_v0(self):
        self._clone_protocol(0)

    def test_clone_protocol_v2(self):
        self._clone_protocol(2)

    def test_ls_remote(self):
        for v in (0, 2):
            res = h.git("-c", "protocol.version=%d" % v, "ls-remote",
                        self.gg.repo_url("acme/widgets", self.fetch_tok))
            self.assertGitOk(res, "ls-remote v%d" % v)
            self.assertIn("%s\tHEAD" % self.head, res[1])
            self.assertIn("%s\trefs/heads/main" % self.head, res[1])

    def test_fetch(self):
        self.up.create_repo("acme/moving", commits=1)
        tok = self.gg.mint(repo="acme/moving")
        dest = self.work_clone("acme/moving", tok, "moving")
        for v in (2, 0):
            new = self.up.add_commit("acme/moving", message="v%d change" % v)
            res = h.git("-c", "protocol.version=%d" % v, "fetch", "origin",
                        cwd=dest)
            self.assertGitOk(res, "fetch v%d" % v)
            self.assertEqual(h.git_out("rev-parse", "origin/main", cwd=dest),
                             new)
            self.assertEqual(h.git_out("cat-file", "-t", new, cwd=dest),
                             "commit")

    def test_push_new_branch_and_fast_forward(self):
        self.up.create_repo("acme/pushme", commits=1)
        main_before = self.up.rev_parse("acme/pushme", "main")
        tok = self.gg.mint(repo="acme/pushme", push=["agent/*"])
        dest = self.work_clone("acme/pushme", tok, "pushme")
        c1 = h.commit_file(dest, "agent.txt", "one\n")
        res = h.git("push", "origin", "HEAD:refs/heads/agent/one", cwd=dest)
        self.assertGitOk(res, "push new branch")
        self.assertIn("[new branch]", res[2])
        self.assertEqual(self.up.rev_parse("acme/pushme", "agent/one"), c1)
        c2 = h.commit_file(dest, "agent.txt", "two\n")
        res = h.git("push", "origin", "HEAD:refs/heads/agent/one", cwd=dest)
        self.assertGitOk(res, "fast-forward push")
        self.assertEqual(self.up.rev_parse("acme/pushme", "agent/one"), c2)
        self.assertEqual(self.up.rev_parse("acme/pushme", "main"),
                         main_before)
        h.git_out("--git-dir=" + self.up.repo_path("acme/pushme"), "fsck",
                  "--strict")

    def test_push_big_commit_chunked(self):
        self.up.create_repo("acme/bigpush", commits=1)
        tok = self.gg.mint(repo="acme/bigpush", push=["agent/*"])
        dest = self.work_clone("acme/bigpush", tok, "bigpush")
        big = h.commit_big_file(dest)
        trace = self.fresh_dir("bigpush.curl-trace")
        # default http.postBuffer (1 MiB): git probes with "0000" and then
        # streams the >10 MB pack with Transfer-Encoding: chunked
        res = h.git("push", "origin", "HEAD:refs/heads/agent/big", cwd=dest,
                    env={"GIT_TRACE_CURL": trace,
                         "GIT_TRACE_CURL_NO_DATA": "1"})
        self.assertGitOk(res, "push of a >10 MB commit")
        with open(trace, errors="replace") as f:
            tr = f.read()
        self.assertIn("Content-Length: 4", tr, "git sent no probe")
        self.assertIn("Transfer-Encoding: chunked", tr,
                      "git did not push chunked")
        self.assertEqual(self.up.rev_parse("acme/bigpush", "agent/big"), big)
        rc, out, _ = self.up.git_dir("acme/bigpush", "cat-file", "-s",
                                     big + ":big.bin")
        self.assertEqual(int(out), h.BIG_SIZE)

    def test_fetch_only_token_cannot_push(self):
        self.up.create_repo("acme/readonly", commits=1)
        before = self.up.refs("acme/readonly")
        tok = self.gg.mint(repo="acme/readonly")
        dest = self.work_clone("acme/readonly", tok, "readonly")
        h.commit_file(dest, "x.txt", "x\n")
        for ref in ("HEAD:refs/heads/agent/x", "HEAD:refs/heads/main"):
            res = h.git("push", "origin", ref, cwd=dest)
            self.assertGitFails(res, "push with a fetch-only token")
            self.assertIn("403", res[2])
        self.assertEqual(self.up.refs("acme/readonly"), before)

    def test_missing_token_git(self):
        rc, out, err, dest = self.clone(self.gg.repo_url("acme/widgets"),
                                        "no-token")
        self.assertGitFails((rc, out, err), "clone without a token")
        self.assertIn("terminal prompts disabled", err)
        self.assertFalse(os.path.exists(os.path.join(dest, ".git")))

    def test_bad_tokens_git(self):
        expired = self.gg.mint(repo="acme/widgets", ttl="1s")
        lookalike = self.gg.mint(repo="acme/widgetz")
        time.sleep(2.2)
        for i, tok in enumerate((
                "garbage", tamper_flip(self.fetch_tok),
                tamper_claims(lookalike, b"acme/widgetz", b"acme/widgets"),
                expired)):
            rc, out, err, dest = self.clone(
                self.gg.repo_url("acme/widgets", tok), "bad-token-%d" % i)
            self.assertGitFails((rc, out, err), "clone with bad token %d" % i)
            self.assertIn("Authentication failed", err)
            self.assertFalse(os.path.exists(os.path.join(dest, ".git")))

    def test_concurrent_clones_64(self):
        n = 64

        def one(i):
            dest = self.path("client", "concurrent", str(i))
            rc, out, err = h.git("clone", "-q", self.gg.repo_url(
                "acme/widgets", self.fetch_tok), dest, timeout=300)
            head = None
            if rc == 0:
                head = h.git_out("rev-parse", "HEAD", cwd=dest)
            return i, rc, head, err

        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
            results = list(ex.map(one, range(n)))
        failed = [r for r in results if r[1] != 0 or r[2] != self.head]
        self.assertEqual(failed, [], "%d of %d clones failed; first: %r" %
                         (len(failed), n, failed[:1]))
        self.assertTrue(self.gg.running())

    # ------------------------------------------------------------------
    # runs last (alphabetical order): nothing the client can see, nor
    # gitgate's log, holds the upstream secret; the log holds no token

    def test_zz_secret_appears_nowhere(self):
        secret = self.up.secret
        self.assertTrue(len(secret) > 20)
        with open(self.up.users_path) as f:  # the search works at all
            self.assertIn(secret, f.read())
        self.assertGreater(len(h.git_transcript), 10)
        for cmd, rc, out, err in h.git_transcript:
            self.assertNotIn(secret, out, cmd)
            self.assertNotIn(secret, err, cmd)
        for resp in h.http_transcript:
            self.assertNotIn(secret.encode(), resp.body)
            self.assertNotIn(secret, repr(resp.headers))
        configs = 0
        for dirpath, _dirs, files in os.walk(self.path("client")):
            for name in files:
                p = os.path.join(dirpath, name)
                if os.path.getsize(p) > 4 * 1024 * 1024:
                    continue
                with open(p, "rb") as f:
                    data = f.read()
                self.assertNotIn(secret.encode(), data, p)
                if name == "config" and dirpath.endswith(".git"):
                    configs += 1
        self.assertGreater(configs, 10)
        minted = [t for g in self.all_proxies for t in g.minted]
        self.assertGreater(len(minted), 10)
        for g in self.all_proxies:
            try:
                with open(g.stdout_path, errors="replace") as f:
                    stdout = f.read()
            except OSError:  # a proxy whose root is gone was not started
                continue
            logs = {"stderr": g.stderr_text(), "stdout": stdout,
                    "audit log": g.audit_text()}
            for what, text in logs.items():
                what = "%s of %s" % (what, g.root)
                self.assertAbsent(secret, text, what, "the upstream secret")
                for tok in minted:
                    # the token, or its signed part alone
                    self.assertAbsent(tok.split(".")[2], text, what,
                                      "a token")

    def assertAbsent(self, needle, text, where, what):
        """Like assertNotIn, without pasting a whole log into the report."""
        at = text.find(needle)
        if at >= 0:
            line = text[:at].count("\n") + 1
            self.fail("%s found in %s (line %d)" % (what, where, line))


if __name__ == "__main__":
    h.run_suite()

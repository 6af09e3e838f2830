#!/usr/bin/env python3
"""Integration suite for the site policy (config key "policy"): the real git
client pushing through a real `gitgate serve` to a real smart-HTTP upstream
(lighttpd + git http-backend). See harness.py and interface.md, "Site
policy".

For every rule: a push refused with its exact reason (the line git prints,
` ! [remote rejected] SRC -> DST (<reason>)`) and the upstream's refs
unchanged, and a push beside it that is allowed and lands. Then: merges,
every new commit checked, --atomic, several findings listed on `remote:`
lines, the audit record of a refused ref, secrets never shown anywhere,
reloading the policy (SIGHUP, poll, broken file), and a property test:
`gitgate policy test` on the client's clone agrees with the proxy on
randomly generated pushes (seed printed; GG_POLICY_SEED overrides it).

Run: GITGATE=build/gitgate python3 tests/integration/test_policy.py
(meson test registers it as integration-test_policy). The last line is
`N passed, N failed[, N skipped]`; the exit code is non-zero on failure.
"""

import json
import os
import random
import re
import secrets
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ZERO = "0" * 40
DEV = "dev@example.com"
BASE62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Pieces, so that this file holds no literal credential.
PAT_PREFIX = "gh" + "p_"
ACME_PREFIX = "AC" + "ME-"

CI_YML = ".github/workflows/ci.yml"

POLICY = {
    "protected_refs": ["refs/heads/main"],
    "protected_paths": [".github/workflows/**"],
    "forbidden_paths": ["**/id_rsa"],
    "max_file_size": "1K",
    "commit_emails": ["*@example.com"],
    "secrets": True,
    "secret_rules": [{"id": "acme-key", "regex": "ACME-[0-9A-F]{16}"}],
    "repos": {"acme/strict-*": {"forbidden_paths": ["**/*.pem"],
                                "max_file_size": "2K"}},
}


def fake_pat(rng=None):
    """A string of the GitHub PAT format (ghp_ + 36 base62)."""
    rng = rng or random.SystemRandom()
    return PAT_PREFIX + "".join(rng.choice(BASE62) for _ in range(36))


def fake_acme(rng=None):
    rng = rng or random.SystemRandom()
    return ACME_PREFIX + "".join(rng.choice("0123456789ABCDEF")
                                 for _ in range(16))


def write_json_atomic(path, obj=None, text=None):
    """Replace path (new inode, so a poll sees it at once)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        if text is not None:
            f.write(text)
        else:
            json.dump(obj, f, indent=2)
            f.write("\n")
    os.replace(tmp, path)


class PolicyBase(unittest.TestCase):
    """One upstream and one gitgate (with POLICY) for the whole class; each
    test works on its own repository acme/<name>."""

    startup_error = None
    up = None
    gg = None
    policy = POLICY
    upstream_secret = None  # None: the harness's default (ghs_...)

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-policy-")
        cls.used_secrets = []  # every secret a test committed
        try:
            cls.up = h.Upstream(secret=cls.upstream_secret)
            cls.up.start()
            cls.gg = h.Gitgate(cls.up.url, cls.up.secret,
                               extra_config={"policy": "policy.json"})
            cls.policy_path = os.path.join(cls.gg.root, "policy.json")
            write_json_atomic(cls.policy_path, cls.policy)
            rc, out, err = h.run_gitgate("policy", "check", cls.policy_path)
            if rc != 0:
                raise h.HarnessError("policy check failed: " + out + err)
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

    # -- setup helpers

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def new_repo(self, name, files=None, branch="main", commits=1):
        repo = "acme/" + name
        head = self.up.create_repo(repo, commits=commits, files=files,
                                   branch=branch)
        return repo, head

    def mint(self, repo, push=("agent/**",), allow_paths=(), emails=(),
             allow_force=False, allow_delete=False):
        args = ["mint", "--key", self.gg.signing_key, "--repo", repo]
        for p in push:
            args += ["--push", p]
        for p in allow_paths:
            args += ["--allow-path", p]
        for e in emails:
            args += ["--email", e]
        if allow_force:
            args.append("--allow-force")
        if allow_delete:
            args.append("--allow-delete")
        rc, out, err = h.run_gitgate(*args)
        self.assertEqual(rc, 0, "mint failed: " + err)
        tok = out.strip()
        self.assertTrue(tok.startswith("v4.public."), out)
        return tok

    def clone(self, repo, token, name):
        dest = self.path("client", name)
        self.assertFalse(os.path.exists(dest), dest)
        rc, out, err = h.git("clone", "-q", self.gg.repo_url(repo, token),
                             dest)
        self.assertEqual(rc, 0, "clone %s failed:\n%s%s" % (repo, out, err))
        return dest

    def set_token(self, w, repo, token):
        h.git("remote", "set-url", "origin", self.gg.repo_url(repo, token),
              cwd=w, check=True)

    def commit(self, w, changes, msg="change", author=DEV, committer=None):
        """Apply changes ({path: str|bytes, or None to delete}) and commit
        them with these emails; returns the commit id."""
        self.apply(w, changes)
        h.git("commit", "-q", "--allow-empty", "-m", msg, cwd=w, check=True,
              env=self.email_env(author, committer))
        return self.head(w)

    def apply(self, w, changes):
        """Write (or delete) the files and stage everything."""
        for p, content in changes.items():
            full = os.path.join(w, p)
            if content is None:
                if os.path.exists(full):
                    os.remove(full)
                continue
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb" if isinstance(content, bytes) else "w") as f:
                f.write(content)
        h.git("add", "-A", cwd=w, check=True)

    @staticmethod
    def email_env(author=DEV, committer=None):
        return {"GIT_AUTHOR_EMAIL": author,
                "GIT_COMMITTER_EMAIL": committer or author}

    def head(self, w, rev="HEAD"):
        return h.git_out("rev-parse", rev, cwd=w)

    def upstream_commit(self, repo, branch, files, message):
        """Commit on the upstream branch directly (not through gitgate, so
        no rule applies); returns the new commit id."""
        work = tempfile.mkdtemp(prefix="gg-upchange-", dir=self.tmp)
        try:
            h.git("clone", "-q", "-b", branch, self.up.repo_path(repo), work,
                  check=True, home=self.up.home)
            for p, text in files.items():
                full = os.path.join(work, p)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w") as f:
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

    # -- pushing and asserting

    def push(self, w, *args):
        return h.git("push", *args, cwd=w)

    def gg_log(self):
        return self.gg.stderr_text()[self._stderr_mark:][-3000:]

    def describe(self, res):
        rc, out, err = res
        return "git exit %d:\n%s%s\n--- gitgate stderr:\n%s" % (
            rc, out, err, self.gg_log())

    def lines(self, res):
        return [l.rstrip() for l in res[2].splitlines()]

    def assertRejected(self, res, src, dst, reason, rc=1):
        """git printed exactly ` ! [remote rejected] SRC -> DST (REASON)`."""
        self.assertEqual(res[0], rc, self.describe(res))
        if src is None:  # deletion: git names only the destination
            want = " ! [remote rejected] %s (%s)" % (dst, reason)
        else:
            want = " ! [remote rejected] %s -> %s (%s)" % (src, dst, reason)
        self.assertIn(want, self.lines(res), self.describe(res))

    def assertLanded(self, res, repo, ref, oid):
        self.assertEqual(res[0], 0, self.describe(res))
        self.assertEqual(self.up.rev_parse(repo, ref), oid,
                         self.describe(res))

    def assertRefs(self, repo, expected):
        self.assertEqual(self.up.refs(repo), expected)

    def assertRemoteLines(self, res, ref, reasons):
        """`remote: gitgate: refusing REF: <first>` and one indented note
        line per finding, in order."""
        lines = self.lines(res)
        self.assertIn("remote: gitgate: refusing %s: %s" % (ref, reasons[0]),
                      lines, self.describe(res))
        notes = [l[len("remote: gitgate:   "):] for l in lines
                 if l.startswith("remote: gitgate:   ")]
        self.assertEqual(notes, reasons, self.describe(res))

    def audit_entries(self, repo, ref):
        """(record, refs[] entry) of every audited command on ref."""
        out = []
        for line in self.gg.audit_text().splitlines():
            rec = json.loads(line)
            if rec.get("repo") != repo:
                continue
            for r in rec.get("refs") or []:
                if r.get("ref") == ref:
                    out.append((rec, r))
        return out

    def last_audit(self, repo, ref):
        entries = self.audit_entries(repo, ref)
        self.assertTrue(entries, "no audit record for %s %s" % (repo, ref))
        return entries[-1]

    def assertNowhere(self, secret, *results):
        """The secret is in no git output, no gitgate log, no audit line."""
        for res in results:
            self.assertNotIn(secret, res[1] + res[2], "secret in git output")
        self.assertNotIn(secret, self.gg.stderr_text(),
                         "secret in gitgate's stderr")
        with open(self.gg.stdout_path, errors="replace") as f:
            self.assertNotIn(secret, f.read(), "secret in gitgate's stdout")
        self.assertNotIn(secret, self.gg.audit_text(),
                         "secret in the audit log")


class PolicyTest(PolicyBase):
    # A secret no built-in rule matches, so committing it is refused as
    # upstream-secret alone (the default ghs_... one is also a
    # github-app-token: see PolicyReloadTest).
    upstream_secret = "gg-upstream-" + secrets.token_hex(16)

    # ------------------------------------------------------------------
    # protected_refs

    def test_01_protected_refs(self):
        repo, main = self.new_repo("prefs")
        tok = self.mint(repo, push=("**",), allow_force=True,
                        allow_delete=True)
        w = self.clone(repo, tok, "prefs")
        why = "refs/heads/main is protected by site policy"
        # update (fast-forward)
        c1 = self.commit(w, {"a.txt": "a\n"})
        res = self.push(w, "origin", "HEAD:main")
        self.assertRejected(res, "HEAD", "main", why)
        self.assertIn("remote: gitgate: refusing refs/heads/main: " + why,
                      self.lines(res))
        self.assertRefs(repo, {"refs/heads/main": main})
        # force
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        h.git("commit", "-q", "--amend", "-m", "rewritten", cwd=w,
              check=True, env=self.email_env())
        res = self.push(w, "--force", "origin", "HEAD:main")
        self.assertRejected(res, "HEAD", "main", why)
        self.assertRefs(repo, {"refs/heads/main": main})
        # delete
        res = self.push(w, "origin", ":main")
        self.assertRejected(res, None, "main", why)
        self.assertRefs(repo, {"refs/heads/main": main})
        # beside it, the same token lands on another branch
        res = self.push(w, "origin", "%s:refs/heads/agent/ok" % c1)
        self.assertLanded(res, repo, "refs/heads/agent/ok", c1)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/ok": c1})
        # create: a repository without main
        repo2, dev = self.new_repo("prefs-create", branch="dev")
        tok2 = self.mint(repo2, push=("**",), allow_force=True,
                         allow_delete=True)
        w2 = self.clone(repo2, tok2, "prefs-create")
        d1 = self.commit(w2, {"b.txt": "b\n"})
        res = self.push(w2, "origin", "HEAD:refs/heads/main")
        self.assertRejected(res, "HEAD", "main", why)
        self.assertRefs(repo2, {"refs/heads/dev": dev})
        res = self.push(w2, "origin", "HEAD:refs/heads/dev")
        self.assertLanded(res, repo2, "refs/heads/dev", d1)
        self.assertRefs(repo2, {"refs/heads/dev": d1})
        results = [(r["result"], r.get("rule"), r.get("path"),
                    r.get("commit"))
                   for _, r in self.audit_entries(repo, "refs/heads/main")]
        self.assertEqual(results, [(why, "protected_ref", None, None)] * 3)
        rec, r = self.last_audit(repo2, "refs/heads/main")
        self.assertEqual((rec["decision"], r["action"], r["result"],
                          r.get("rule")),
                         ("deny", "create", why, "protected_ref"))

    def test_01b_protected_ref_audit_actions(self):
        """The audit record says what was attempted on a protected ref.
        A ref refused by its name alone is refused before (and without)
        reading any history, so a rewrite of it is recorded as "update"
        (README "Known limits")."""
        repo, main = self.new_repo("prefs-audit")
        tok = self.mint(repo, push=("**",), allow_force=True,
                        allow_delete=True)
        w = self.clone(repo, tok, "prefs-audit")
        why = "refs/heads/main is protected by site policy"
        self.commit(w, {"a.txt": "a\n"})
        self.assertRejected(self.push(w, "origin", "HEAD:main"), "HEAD",
                            "main", why)
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        h.git("commit", "-q", "--amend", "-m", "rewritten", cwd=w,
              check=True, env=self.email_env())
        self.assertRejected(self.push(w, "--force", "origin", "HEAD:main"),
                            "HEAD", "main", why)
        self.assertRejected(self.push(w, "origin", ":main"), None, "main",
                            why)
        self.assertRefs(repo, {"refs/heads/main": main})
        actions = [(r["action"], r["result"])
                   for _, r in self.audit_entries(repo, "refs/heads/main")]
        self.assertEqual(actions, [("update", why), ("update", why),
                                   ("delete", why)])

    # ------------------------------------------------------------------
    # protected_paths and allow_paths

    def test_02_protected_paths_and_allow_paths(self):
        repo, main = self.new_repo("ppaths", files={CI_YML: "name: ci\n"})
        tok = self.mint(repo)
        w = self.clone(repo, tok, "ppaths")
        # modify
        c1 = self.commit(w, {CI_YML: "name: ci\non: push\n"})
        res = self.push(w, "origin", "HEAD:agent/ci")
        self.assertRejected(res, "HEAD", "agent/ci",
                            "%s is protected by site policy (commit %s)"
                            % (CI_YML, c1[:7]))
        self.assertRefs(repo, {"refs/heads/main": main})
        # add a new file under the protected directory
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {".github/workflows/new.yml": "name: new\n"})
        res = self.push(w, "origin", "HEAD:agent/ci")
        self.assertRejected(res, "HEAD", "agent/ci",
                            ".github/workflows/new.yml is protected by site "
                            "policy (commit %s)" % c2[:7])
        # delete
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c3 = self.commit(w, {CI_YML: None})
        res = self.push(w, "origin", "HEAD:agent/ci")
        self.assertRejected(res, "HEAD", "agent/ci",
                            "%s is protected by site policy (commit %s)"
                            % (CI_YML, c3[:7]))
        # rename
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        h.git("mv", CI_YML, "ci.yml", cwd=w, check=True)
        c4 = self.commit(w, {})
        res = self.push(w, "origin", "HEAD:agent/ci")
        self.assertRejected(res, "HEAD", "agent/ci",
                            "%s is protected by site policy (commit %s)"
                            % (CI_YML, c4[:7]))
        self.assertRefs(repo, {"refs/heads/main": main})
        # beside it: a change outside the protected paths lands
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c5 = self.commit(w, {".github/CODEOWNERS": "* @acme\n"})
        res = self.push(w, "origin", "HEAD:agent/owners")
        self.assertLanded(res, repo, "refs/heads/agent/owners", c5)
        # allow_paths unlocks the protected path ...
        atok = self.mint(repo, allow_paths=(".github/**",))
        self.set_token(w, repo, atok)
        h.git("reset", "-q", "--hard", c1, cwd=w, check=True)
        res = self.push(w, "origin", "HEAD:agent/ci")
        self.assertLanded(res, repo, "refs/heads/agent/ci", c1)
        # ... but never a forbidden one, even inside the allowed glob
        c6 = self.commit(w, {".github/id_rsa": "key\n"})
        res = self.push(w, "origin", "HEAD:agent/ci")
        self.assertRejected(res, "HEAD", "agent/ci",
                            ".github/id_rsa is forbidden by site policy "
                            "(commit %s)" % c6[:7])
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/owners": c5,
                               "refs/heads/agent/ci": c1})
        # an allow_paths claim for another path does not unlock this one
        otok = self.mint(repo, allow_paths=(".github/workflows/other.yml",))
        self.set_token(w, repo, otok)
        h.git("reset", "-q", "--hard", c1, cwd=w, check=True)
        c7 = self.commit(w, {CI_YML: "name: ci 2\n"})
        res = self.push(w, "origin", "HEAD:agent/ci")
        self.assertRejected(res, "HEAD", "agent/ci",
                            "%s is protected by site policy (commit %s)"
                            % (CI_YML, c7[:7]))
        self.assertEqual(self.up.rev_parse(repo, "refs/heads/agent/ci"), c1)

    # ------------------------------------------------------------------
    # forbidden_paths

    def test_03_forbidden_paths(self):
        repo, main = self.new_repo("forbid",
                                   files={"legacy/id_rsa": "old key\n"})
        tok = self.mint(repo)
        w = self.clone(repo, tok, "forbid")
        c1 = self.commit(w, {"keys/id_rsa": "key\n"})
        res = self.push(w, "origin", "HEAD:agent/k")
        self.assertRejected(res, "HEAD", "agent/k",
                            "keys/id_rsa is forbidden by site policy "
                            "(commit %s)" % c1[:7])
        # at the top of the tree too
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {"id_rsa": "key\n"})
        res = self.push(w, "origin", "HEAD:agent/k")
        self.assertRejected(res, "HEAD", "agent/k",
                            "id_rsa is forbidden by site policy "
                            "(commit %s)" % c2[:7])
        # modifying one already upstream is refused too
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c3 = self.commit(w, {"legacy/id_rsa": "new key\n"})
        res = self.push(w, "origin", "HEAD:agent/k")
        self.assertRejected(res, "HEAD", "agent/k",
                            "legacy/id_rsa is forbidden by site policy "
                            "(commit %s)" % c3[:7])
        self.assertRefs(repo, {"refs/heads/main": main})
        # deleting the one upstream has is allowed
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c4 = self.commit(w, {"legacy/id_rsa": None})
        res = self.push(w, "origin", "HEAD:agent/k")
        self.assertLanded(res, repo, "refs/heads/agent/k", c4)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/k": c4})

    # ------------------------------------------------------------------
    # max_file_size

    def test_04_max_file_size(self):
        repo, main = self.new_repo("size")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "size")
        c1 = self.commit(w, {"big.bin": h.pseudo_random_bytes(2048, "s1")})
        res = self.push(w, "origin", "HEAD:agent/big")
        self.assertRejected(res, "HEAD", "agent/big",
                            "big.bin is 2.0 KiB, over the site limit of "
                            "1.0 KiB (commit %s)" % c1[:7])
        self.assertRefs(repo, {"refs/heads/main": main})
        # one byte over
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        self.commit(w, {"edge.bin": h.pseudo_random_bytes(1025, "s2")})
        res = self.push(w, "origin", "HEAD:agent/big")
        self.assertEqual(res[0], 1, self.describe(res))
        self.assertTrue([l for l in self.lines(res) if l.startswith(
            " ! [remote rejected] HEAD -> agent/big (edge.bin is ") and
            "over the site limit of 1.0 KiB (commit " in l],
            self.describe(res))
        self.assertRefs(repo, {"refs/heads/main": main})
        # exactly the limit lands
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c3 = self.commit(w, {"ok.bin": h.pseudo_random_bytes(1024, "s3")})
        res = self.push(w, "origin", "HEAD:agent/big")
        self.assertLanded(res, repo, "refs/heads/agent/big", c3)

    # ------------------------------------------------------------------
    # commit_emails and the token's emails claim

    def test_05_commit_emails(self):
        repo, main = self.new_repo("emails")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "emails")
        c1 = self.commit(w, {"e.txt": "1\n"}, author="x@evil.test")
        res = self.push(w, "origin", "HEAD:agent/e")
        self.assertRejected(res, "HEAD", "agent/e",
                            "commit %s author x@evil.test not allowed: "
                            "allowed *@example.com" % c1[:7])
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {"e.txt": "2\n"}, committer="ci@example.org")
        res = self.push(w, "origin", "HEAD:agent/e")
        self.assertRejected(res, "HEAD", "agent/e",
                            "commit %s committer ci@example.org not "
                            "allowed: allowed *@example.com" % c2[:7])
        self.assertRefs(repo, {"refs/heads/main": main})
        # beside it: any address of the site's pattern lands
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c3 = self.commit(w, {"e.txt": "3\n"}, author="b@example.com")
        res = self.push(w, "origin", "HEAD:agent/e")
        self.assertLanded(res, repo, "refs/heads/agent/e", c3)
        # a token with --email narrows it
        etok = self.mint(repo, emails=("a@example.com",))
        self.set_token(w, repo, etok)
        c4 = self.commit(w, {"e.txt": "4\n"}, author="b@example.com")
        res = self.push(w, "origin", "HEAD:agent/e")
        self.assertRejected(res, "HEAD", "agent/e",
                            "commit %s author b@example.com not allowed: "
                            "allowed a@example.com" % c4[:7])
        self.assertEqual(self.up.rev_parse(repo, "refs/heads/agent/e"), c3)
        h.git("reset", "-q", "--hard", c3, cwd=w, check=True)
        c5 = self.commit(w, {"e.txt": "5\n"}, author="a@example.com")
        res = self.push(w, "origin", "HEAD:agent/e")
        self.assertLanded(res, repo, "refs/heads/agent/e", c5)
        # the claim never widens the site's patterns: an address outside
        # them stays refused, and is not offered as allowed
        wtok = self.mint(repo, emails=("a@example.com", "z@evil.test"))
        self.set_token(w, repo, wtok)
        c6 = self.commit(w, {"e.txt": "6\n"}, author="z@evil.test")
        res = self.push(w, "origin", "HEAD:agent/e")
        self.assertRejected(res, "HEAD", "agent/e",
                            "commit %s author z@evil.test not allowed: "
                            "allowed a@example.com" % c6[:7])
        self.assertEqual(self.up.rev_parse(repo, "refs/heads/agent/e"), c5)
        # no subdomains, no second '@'
        self.set_token(w, repo, tok)
        for bad in ("dev@sub.example.com", "x@evil.test@example.com"):
            h.git("reset", "-q", "--hard", c5, cwd=w, check=True)
            c = self.commit(w, {"e.txt": bad + "\n"}, author=bad)
            res = self.push(w, "origin", "HEAD:agent/e")
            self.assertRejected(res, "HEAD", "agent/e",
                                "commit %s author %s not allowed: allowed "
                                "*@example.com" % (c[:7], bad))
        # letters match regardless of case
        h.git("reset", "-q", "--hard", c5, cwd=w, check=True)
        c7 = self.commit(w, {"e.txt": "7\n"}, author="Alice@EXAMPLE.com")
        res = self.push(w, "origin", "HEAD:agent/e")
        self.assertLanded(res, repo, "refs/heads/agent/e", c7)

    # ------------------------------------------------------------------
    # secrets

    def test_06_secret_builtin_rule(self):
        repo, main = self.new_repo("secret")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "secret")
        pat = fake_pat()
        self.used_secrets.append(pat)
        text = ("import os\n\n# deploy\nGITHUB_TOKEN = \"%s\"\n"
                "DEBUG = False\n" % pat)
        c1 = self.commit(w, {"src/config.py": text})
        res = self.push(w, "origin", "HEAD:agent/s")
        why = ("secret detected (github-pat) in src/config.py:4 (commit %s)"
               % c1[:7])
        self.assertRejected(res, "HEAD", "agent/s", why)
        self.assertIn("remote: gitgate: refusing refs/heads/agent/s: " + why,
                      self.lines(res))
        self.assertRefs(repo, {"refs/heads/main": main})
        rec, r = self.last_audit(repo, "refs/heads/agent/s")
        self.assertEqual((r["result"], r.get("rule"), r.get("path"),
                          r.get("commit"), r.get("line")),
                         (why, "secret:github-pat", "src/config.py", c1, 4))
        self.assertRegex(r.get("hash", ""), r"^[0-9a-f]{12}$")
        # beside it: the same file without the token lands
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {"src/config.py": text.replace(
            pat, "os.environ['GITHUB_TOKEN']")})
        res2 = self.push(w, "origin", "HEAD:agent/s")
        self.assertLanded(res2, repo, "refs/heads/agent/s", c2)
        # a token-shaped string one character short is no finding
        c3 = self.commit(w, {"src/notes.txt": pat[:-1] + "\n"})
        res3 = self.push(w, "origin", "HEAD:agent/s")
        self.assertLanded(res3, repo, "refs/heads/agent/s", c3)
        self.assertNowhere(pat, res, res2)

    def test_07_secret_added_then_removed(self):
        repo, main = self.new_repo("secret2")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "secret2")
        pat = fake_pat()
        self.used_secrets.append(pat)
        c1 = self.commit(w, {"src/config.py": "TOKEN = '%s'\n" % pat})
        c2 = self.commit(w, {"src/config.py": "TOKEN = None\n"})
        self.assertEqual(h.git_out("diff", main, c2, "--", "src/config.py",
                                   cwd=w).count(PAT_PREFIX), 0)
        res = self.push(w, "origin", "HEAD:agent/s2")
        self.assertRejected(res, "HEAD", "agent/s2",
                            "secret detected (github-pat) in src/config.py:1 "
                            "(commit %s)" % c1[:7])
        self.assertRefs(repo, {"refs/heads/main": main})
        # the same change without the secret in its history lands
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c3 = self.commit(w, {"src/config.py": "TOKEN = None\n"})
        res2 = self.push(w, "origin", "HEAD:agent/s2")
        self.assertLanded(res2, repo, "refs/heads/agent/s2", c3)
        self.assertNotEqual(c2, c3)
        self.assertNowhere(pat, res, res2)

    def test_08_custom_secret_rule(self):
        repo, main = self.new_repo("secret3")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "secret3")
        key = fake_acme()
        self.used_secrets.append(key)
        c1 = self.commit(w, {"conf/acme.ini": "[acme]\nkey = %s\n" % key})
        res = self.push(w, "origin", "HEAD:agent/s3")
        why = ("secret detected (acme-key) in conf/acme.ini:2 (commit %s)"
               % c1[:7])
        self.assertRejected(res, "HEAD", "agent/s3", why)
        self.assertRefs(repo, {"refs/heads/main": main})
        _, r = self.last_audit(repo, "refs/heads/agent/s3")
        self.assertEqual((r.get("rule"), r.get("path"), r.get("commit")),
                         ("secret:acme-key", "conf/acme.ini", c1))
        # lower-case hex does not match the rule: lands
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {"conf/acme.ini": "[acme]\nkey = %s\n" %
                             (ACME_PREFIX + key[5:].lower())})
        res2 = self.push(w, "origin", "HEAD:agent/s3")
        self.assertLanded(res2, repo, "refs/heads/agent/s3", c2)
        self.assertNowhere(key, res, res2)

    def test_09_upstream_secret(self):
        repo, main = self.new_repo("secret4")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "secret4")
        s = self.up.secret
        c1 = self.commit(w, {"ops/notes.md": "# ops\n\nupstream: %s\n" % s})
        res = self.push(w, "origin", "HEAD:agent/s4")
        why = ("secret detected (upstream-secret) in ops/notes.md:3 "
               "(commit %s)" % c1[:7])
        self.assertRejected(res, "HEAD", "agent/s4", why)
        self.assertRefs(repo, {"refs/heads/main": main})
        _, r = self.last_audit(repo, "refs/heads/agent/s4")
        self.assertEqual((r.get("rule"), r.get("path"), r.get("commit"),
                          r.get("line")),
                         ("secret:upstream-secret", "ops/notes.md", c1, 3))
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {"ops/notes.md": "# ops\n\nupstream: (vault)\n"})
        res2 = self.push(w, "origin", "HEAD:agent/s4")
        self.assertLanded(res2, repo, "refs/heads/agent/s4", c2)
        self.assertNowhere(s, res, res2)

    # ------------------------------------------------------------------
    # merges

    def test_10_merges(self):
        repo, main = self.new_repo("merge", files={CI_YML: "name: v1\n"})
        tok = self.mint(repo)
        w = self.clone(repo, tok, "merge")
        f1 = self.commit(w, {"feature.txt": "feature\n"})
        self.assertLanded(self.push(w, "origin", "HEAD:agent/m"), repo,
                          "refs/heads/agent/m", f1)
        # main changes the protected file (someone with the right to)
        main2 = self.upstream_commit(repo, "main", {CI_YML: "name: v2\n"},
                                     "ci v2")
        h.git("fetch", "-q", "origin", cwd=w, check=True)
        h.git("merge", "-q", "--no-ff", "--no-edit", "origin/main", cwd=w,
              check=True, env=self.email_env())
        m1 = self.head(w)
        self.assertEqual(h.git_out("rev-parse", "HEAD^2", cwd=w), main2)
        res = self.push(w, "origin", "HEAD:agent/m")
        self.assertLanded(res, repo, "refs/heads/agent/m", m1)
        # an evil merge: changes the protected file while merging
        main3 = self.upstream_commit(repo, "main", {"main.txt": "main 3\n"},
                                     "main 3")
        h.git("fetch", "-q", "origin", cwd=w, check=True)
        h.git("merge", "-q", "--no-ff", "--no-commit", "origin/main", cwd=w,
              check=True, env=self.email_env())
        with open(os.path.join(w, CI_YML), "w") as f:
            f.write("name: evil\n")
        h.git("add", "-A", cwd=w, check=True)
        h.git("commit", "-q", "--no-edit", cwd=w, check=True,
              env=self.email_env())
        m2 = self.head(w)
        self.assertEqual(h.git_out("rev-parse", "HEAD^2", cwd=w), main3)
        res = self.push(w, "origin", "HEAD:agent/m")
        self.assertRejected(res, "HEAD", "agent/m",
                            "%s is protected by site policy (commit %s)"
                            % (CI_YML, m2[:7]))
        self.assertRefs(repo, {"refs/heads/main": main3,
                               "refs/heads/agent/m": m1})
        # the plain merge of the same main lands
        h.git("reset", "-q", "--hard", m1, cwd=w, check=True)
        h.git("merge", "-q", "--no-ff", "--no-edit", "origin/main", cwd=w,
              check=True, env=self.email_env())
        m3 = self.head(w)
        res = self.push(w, "origin", "HEAD:agent/m")
        self.assertLanded(res, repo, "refs/heads/agent/m", m3)
        self.assertNotEqual(main, main3)
        # upstream's own commit (it changed the protected file) on a new
        # branch: no new commit, lands
        res = self.push(w, "origin", "%s:refs/heads/agent/copy" % main2)
        self.assertLanded(res, repo, "refs/heads/agent/copy", main2)

    # ------------------------------------------------------------------
    # every new commit, not only the tip

    def test_11_every_commit_checked(self):
        repo, main = self.new_repo("every", files={CI_YML: "name: ci\n"})
        tok = self.mint(repo)
        w = self.clone(repo, tok, "every")
        c1 = self.commit(w, {CI_YML: "name: ci\non: [push]\n"}, msg="one")
        c2 = self.commit(w, {"two.txt": "2\n"}, msg="two")
        c3 = self.commit(w, {"three.txt": "3\n"}, msg="three")
        res = self.push(w, "origin", "HEAD:agent/three")
        self.assertRejected(res, "HEAD", "agent/three",
                            "%s is protected by site policy (commit %s)"
                            % (CI_YML, c1[:7]))
        self.assertRefs(repo, {"refs/heads/main": main})
        # put back in the next commit: the net diff is clean, still refused
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        d1 = self.commit(w, {CI_YML: "name: changed\n"}, msg="d1")
        d2 = self.commit(w, {CI_YML: "name: ci\n"}, msg="d2")
        d3 = self.commit(w, {"x.txt": "x\n"}, msg="d3")
        self.assertEqual(h.git_out("diff", "--name-only", main, d3, cwd=w),
                         "x.txt")
        res = self.push(w, "origin", "HEAD:agent/three")
        r1 = "%s is protected by site policy (commit %s)" % (CI_YML, d1[:7])
        r2 = "%s is protected by site policy (commit %s)" % (CI_YML, d2[:7])
        self.assertRejected(res, "HEAD", "agent/three", r1)
        self.assertRemoteLines(res, "refs/heads/agent/three", [r1, r2])
        self.assertRefs(repo, {"refs/heads/main": main})
        # an email problem in the middle commit only
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        self.commit(w, {"a.txt": "a\n"})
        e2 = self.commit(w, {"b.txt": "b\n"}, author="mallory@evil.test")
        self.commit(w, {"c.txt": "c\n"})
        res = self.push(w, "origin", "HEAD:agent/three")
        self.assertRejected(res, "HEAD", "agent/three",
                            "commit %s author mallory@evil.test not allowed: "
                            "allowed *@example.com" % e2[:7])
        self.assertRefs(repo, {"refs/heads/main": main})
        # three clean commits land
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        for i in range(3):
            last = self.commit(w, {"f%d.txt" % i: "%d\n" % i})
        res = self.push(w, "origin", "HEAD:agent/three")
        self.assertLanded(res, repo, "refs/heads/agent/three", last)
        self.assertNotEqual(c2, c3)

    # ------------------------------------------------------------------
    # --atomic and non-atomic

    def test_12_atomic_and_non_atomic(self):
        repo, main = self.new_repo("atomic")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "atomic")
        h.git("checkout", "-q", "-b", "bad", cwd=w, check=True)
        b1 = self.commit(w, {"keys/id_rsa": "key\n"})
        h.git("checkout", "-q", "-b", "good", main, cwd=w, check=True)
        g1 = self.commit(w, {"ok.txt": "ok\n"})
        bad = "keys/id_rsa is forbidden by site policy (commit %s)" % b1[:7]
        res = self.push(w, "--atomic", "origin", "bad:agent/bad",
                        "good:agent/good")
        self.assertRejected(res, "bad", "agent/bad", bad)
        self.assertRejected(res, "good", "agent/good", "atomic push failure")
        self.assertRefs(repo, {"refs/heads/main": main})
        # a protected ref and a good one, atomic: nothing lands either
        res = self.push(w, "--atomic", "origin", "good:main",
                        "good:agent/good")
        self.assertRejected(res, "good", "main",
                            "refs/heads/main is protected by site policy")
        self.assertRejected(res, "good", "agent/good", "atomic push failure")
        self.assertRefs(repo, {"refs/heads/main": main})
        # non-atomic: the good one lands, the bad one does not
        res = self.push(w, "origin", "bad:agent/bad", "good:agent/good")
        self.assertRejected(res, "bad", "agent/bad", bad)
        self.assertTrue([l for l in self.lines(res) if re.fullmatch(
            r" \* \[new branch\]\s+good -> agent/good", l)],
            self.describe(res))
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/good": g1})
        # two refs carrying the same bad commit: both refused for it
        res = self.push(w, "origin", "bad:agent/bad1", "bad:agent/bad2")
        self.assertRejected(res, "bad", "agent/bad1", bad)
        self.assertRejected(res, "bad", "agent/bad2", bad)
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/good": g1})

    # ------------------------------------------------------------------
    # several findings on one ref

    def test_13_several_findings_listed(self):
        repo, main = self.new_repo("several", files={CI_YML: "name: ci\n"})
        tok = self.mint(repo)
        w = self.clone(repo, tok, "several")
        p1, p2 = fake_pat(), fake_pat()
        self.used_secrets += [p1, p2]
        c1 = self.commit(w, {"a.py": "A = '%s'\n" % p1,
                             "b.py": "# b\nB = '%s'\n" % p2})
        res = self.push(w, "origin", "HEAD:agent/two")
        r1 = "secret detected (github-pat) in a.py:1 (commit %s)" % c1[:7]
        r2 = "secret detected (github-pat) in b.py:2 (commit %s)" % c1[:7]
        self.assertRejected(res, "HEAD", "agent/two", r1)
        self.assertRemoteLines(res, "refs/heads/agent/two", [r1, r2])
        self.assertRefs(repo, {"refs/heads/main": main})
        # several rules over two commits, every one listed in order
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        d1 = self.commit(w, {CI_YML: "name: x\n",
                             "big.bin": h.pseudo_random_bytes(2048, "sv")},
                         author="x@evil.test")
        d2 = self.commit(w, {"deploy/id_rsa": "key\n"})
        want = ["commit %s author x@evil.test not allowed: allowed "
                "*@example.com" % d1[:7],
                "%s is protected by site policy (commit %s)" % (CI_YML,
                                                                d1[:7]),
                "big.bin is 2.0 KiB, over the site limit of 1.0 KiB "
                "(commit %s)" % d1[:7],
                "deploy/id_rsa is forbidden by site policy (commit %s)"
                % d2[:7]]
        res2 = self.push(w, "origin", "HEAD:agent/two")
        self.assertRejected(res2, "HEAD", "agent/two", want[0])
        self.assertRemoteLines(res2, "refs/heads/agent/two", want)
        self.assertRefs(repo, {"refs/heads/main": main})
        # the same branch, clean, lands
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c3 = self.commit(w, {"a.py": "A = None\n"})
        res3 = self.push(w, "origin", "HEAD:agent/two")
        self.assertLanded(res3, repo, "refs/heads/agent/two", c3)
        self.assertNowhere(p1, res, res2, res3)
        self.assertNowhere(p2, res, res2, res3)

    def test_13b_many_findings_counted(self):
        """remote: lines list the first 50 findings, then how many more
        (README: "up to 50, then a count")."""
        repo, main = self.new_repo("many")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "many")
        # many findings: the first 50 listed, then how many more
        for n in (60, 120):
            h.git("reset", "-q", "--hard", main, cwd=w, check=True)
            m1 = self.commit(w, {"keys/%03d/id_rsa" % i: "k\n"
                                 for i in range(n)})
            res4 = self.push(w, "origin", "HEAD:agent/many")
            reasons = ["keys/%03d/id_rsa is forbidden by site policy "
                       "(commit %s)" % (i, m1[:7]) for i in range(n)]
            self.assertRejected(res4, "HEAD", "agent/many", reasons[0])
            self.assertRemoteLines(res4, "refs/heads/agent/many",
                                   reasons[:50] + ["... and %d more"
                                                   % (n - 50)])
        self.assertRefs(repo, {"refs/heads/main": main})

    # ------------------------------------------------------------------
    # audit records of refused refs

    def test_14_audit_records(self):
        repo, main = self.new_repo("audit", files={CI_YML: "name: ci\n"})
        tok = self.mint(repo)
        w = self.clone(repo, tok, "audit")
        c1 = self.commit(w, {CI_YML: "name: changed\n"})
        res = self.push(w, "origin", "HEAD:agent/au")
        why = "%s is protected by site policy (commit %s)" % (CI_YML, c1[:7])
        self.assertRejected(res, "HEAD", "agent/au", why)
        rec, r = self.last_audit(repo, "refs/heads/agent/au")
        self.assertEqual((rec["decision"], rec["service"]),
                         ("deny", "git-receive-pack"), rec)
        self.assertEqual((r["action"], r["old"], r["new"], r["result"],
                          r.get("rule"), r.get("path"), r.get("commit")),
                         ("create", ZERO, c1, why, "protected_path", CI_YML,
                          c1), r)
        self.assertRegex(r["commit"], r"^[0-9a-f]{40}$")
        # forbidden, size, email: each its rule
        cases = [
            ({"keys/id_rsa": "k\n"}, DEV, "forbidden_path", "keys/id_rsa"),
            ({"big.bin": h.pseudo_random_bytes(4096, "au")}, DEV,
             "max_file_size", "big.bin"),
            ({"e.txt": "e\n"}, "eve@evil.test", "commit_email", None),
        ]
        for i, (files, author, rule, path) in enumerate(cases):
            h.git("reset", "-q", "--hard", main, cwd=w, check=True)
            c = self.commit(w, files, author=author)
            ref = "agent/au%d" % i
            res = self.push(w, "origin", "HEAD:" + ref)
            self.assertEqual(res[0], 1, self.describe(res))
            rec, r = self.last_audit(repo, "refs/heads/" + ref)
            self.assertEqual((rec["decision"], r.get("rule"), r.get("path"),
                              r.get("commit")), ("deny", rule, path, c), r)
            self.assertIn(" ! [remote rejected] HEAD -> %s (%s)"
                          % (ref, r["result"]), self.lines(res))
        # an allowed push carries no rule
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {"fine.txt": "fine\n"})
        res = self.push(w, "origin", "HEAD:agent/au")
        self.assertLanded(res, repo, "refs/heads/agent/au", c2)
        rec, r = self.last_audit(repo, "refs/heads/agent/au")
        self.assertEqual((rec["decision"], r["result"], r.get("rule")),
                         ("allow", "ok", None), r)
        rc, out, err = h.run_gitgate("audit", "verify", "--log",
                                     self.gg.audit_log)
        self.assertEqual(rc, 0, out + err)

    # ------------------------------------------------------------------
    # secrets already upstream, binary files

    def test_15_secret_already_upstream_is_not_new(self):
        pat = fake_pat()
        self.used_secrets.append(pat)
        repo, main = self.new_repo("oldsecret", files={
            "legacy.py": "# legacy\nKEY = '%s'\n" % pat})
        tok = self.mint(repo)
        w = self.clone(repo, tok, "oldsecret")
        # moving the line that holds it (lines added above) is no finding
        c1 = self.commit(w, {"legacy.py": "# legacy\n# moved\n\nKEY = '%s'\n"
                             % pat})
        res = self.push(w, "origin", "HEAD:agent/old")
        self.assertLanded(res, repo, "refs/heads/agent/old", c1)
        # copying it into another file is
        c2 = self.commit(w, {"new.py": "KEY = '%s'\n" % pat})
        res2 = self.push(w, "origin", "HEAD:agent/old")
        self.assertRejected(res2, "HEAD", "agent/old",
                            "secret detected (github-pat) in new.py:1 "
                            "(commit %s)" % c2[:7])
        self.assertEqual(self.up.rev_parse(repo, "refs/heads/agent/old"), c1)
        self.assertNowhere(pat, res, res2)

    def test_15b_binary_file_not_scanned(self):
        repo, main = self.new_repo("binsecret")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "binsecret")
        pat = fake_pat()
        self.used_secrets.append(pat)
        c1 = self.commit(w, {"blob.dat": b"\x00\x01bin\n" + pat.encode() +
                             b"\n"})
        res = self.push(w, "origin", "HEAD:agent/bin")
        self.assertLanded(res, repo, "refs/heads/agent/bin", c1)
        c2 = self.commit(w, {"text.dat": "bin\n" + pat + "\n"})
        res2 = self.push(w, "origin", "HEAD:agent/bin")
        self.assertRejected(res2, "HEAD", "agent/bin",
                            "secret detected (github-pat) in text.dat:2 "
                            "(commit %s)" % c2[:7])
        self.assertEqual(self.up.rev_parse(repo, "refs/heads/agent/bin"), c1)
        self.assertNowhere(pat, res, res2)

    # ------------------------------------------------------------------
    # tags carry commits too

    def test_16_tags(self):
        repo, main = self.new_repo("tags")
        tok = self.mint(repo, push=("agent/**", "refs/tags/v*"))
        w = self.clone(repo, tok, "tags")
        c1 = self.commit(w, {"keys/id_rsa": "key\n"})
        h.git("tag", "-a", "-m", "release 1", "v1", cwd=w, check=True,
              env=self.email_env())
        res = self.push(w, "origin", "refs/tags/v1")
        self.assertRejected(res, "v1", "v1",
                            "keys/id_rsa is forbidden by site policy "
                            "(commit %s)" % c1[:7])
        res = self.push(w, "origin", "HEAD:refs/tags/v2")
        self.assertRejected(res, "HEAD", "v2",
                            "keys/id_rsa is forbidden by site policy "
                            "(commit %s)" % c1[:7])
        self.assertRefs(repo, {"refs/heads/main": main})
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {"release.txt": "1\n"})
        h.git("tag", "-a", "-m", "release 3", "v3", cwd=w, check=True,
              env=self.email_env())
        res = self.push(w, "origin", "refs/tags/v3")
        self.assertEqual(res[0], 0, self.describe(res))
        self.assertEqual(self.up.rev_parse(repo, "refs/tags/v3"), c2)

    # ------------------------------------------------------------------
    # repos entries: lists added, scalars replaced

    def test_17_repos_entry(self):
        repo, main = self.new_repo("strict-one")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "strict-one")
        git_dir = os.path.join(w, ".git")
        # policy test counts the commits of every other local ref as known:
        # commit on the branch being judged, not on main
        h.git("checkout", "-q", "-b", "agent/pem", cwd=w, check=True)
        c1 = self.commit(w, {"tls/cert.pem": "cert\n"})
        res = self.push(w, "origin", "HEAD:agent/pem")
        why = "tls/cert.pem is forbidden by site policy (commit %s)" % c1[:7]
        self.assertRejected(res, "HEAD", "agent/pem", why)
        rc, out, err = h.run_gitgate(
            "policy", "test", "--policy", self.policy_path, "--git-dir",
            git_dir, "--repo", repo, "refs/heads/agent/pem", ZERO, c1)
        self.assertEqual((rc, out), (1, "refused: forbidden_path: %s\n"
                                     % why), err)
        # the top level alone does not forbid it
        rc, out, err = h.run_gitgate(
            "policy", "test", "--policy", self.policy_path, "--git-dir",
            git_dir, "refs/heads/agent/pem", ZERO, c1)
        self.assertEqual((rc, out), (0, "allowed: refs/heads/agent/pem "
                                     "%s..%s\n" % (ZERO[:7], c1[:7])), err)
        # the top level's lists still apply
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {"id_rsa": "k\n"})
        res = self.push(w, "origin", "HEAD:agent/pem")
        self.assertRejected(res, "HEAD", "agent/pem",
                            "id_rsa is forbidden by site policy (commit %s)"
                            % c2[:7])
        # max_file_size replaced: 2K here
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c3 = self.commit(w, {"mid.bin": h.pseudo_random_bytes(1536, "m")})
        res = self.push(w, "origin", "HEAD:agent/mid")
        self.assertLanded(res, repo, "refs/heads/agent/mid", c3)
        c4 = self.commit(w, {"big.bin": h.pseudo_random_bytes(3072, "b")})
        res = self.push(w, "origin", "HEAD:agent/mid")
        self.assertRejected(res, "HEAD", "agent/mid",
                            "big.bin is 3.0 KiB, over the site limit of "
                            "2.0 KiB (commit %s)" % c4[:7])
        self.assertRefs(repo, {"refs/heads/main": main,
                               "refs/heads/agent/mid": c3})
        # another repository: a .pem lands
        repo2, main2 = self.new_repo("lenient")
        tok2 = self.mint(repo2)
        w2 = self.clone(repo2, tok2, "lenient")
        d1 = self.commit(w2, {"tls/cert.pem": "cert\n"})
        res = self.push(w2, "origin", "HEAD:agent/pem")
        self.assertLanded(res, repo2, "refs/heads/agent/pem", d1)

    # ------------------------------------------------------------------
    # property test: `gitgate policy test` agrees with the proxy

    POOL = ["src/app.py", "src/util.py", "README.md", "docs/guide.md",
            CI_YML, ".github/workflows/release.yml", ".github/CODEOWNERS",
            "keys/id_rsa", "deploy/id_rsa", "legacy/id_rsa", "data/blob.bin"]
    # ordinary paths most often, protected and forbidden ones sometimes
    POOL_WEIGHTS = [4, 4, 4, 4, 1, 1, 4, 0.7, 0.7, 0.7, 4]
    EMAILS = ["dev@example.com", "a@example.com", "b@example.com",
              "Ops@EXAMPLE.com", "x@evil.test", "dev@example.com.evil.test"]
    EMAIL_WEIGHTS = [6, 2, 2, 2, 1, 0.7]
    WORDS = ["alpha", "beta", "gamma", "delta", "config", "value", "return",
             "import", "print", "token", "def", "class", "x", "y", "42"]

    def random_text(self, rng, size):
        out = []
        n = 0
        while n < size:
            line = " ".join(rng.choice(self.WORDS)
                            for _ in range(rng.randint(1, 8))) + "\n"
            out.append(line)
            n += len(line)
        return "".join(out)[:max(size, 1)].rstrip("\n") + "\n"

    def random_content(self, rng, kind):
        if kind == "text":
            return self.random_text(rng, rng.randint(5, 900))
        if kind == "big":
            return self.random_text(rng, rng.randint(1100, 3000))
        if kind == "binary":
            return h.pseudo_random_bytes(rng.randint(100, 2500),
                                         str(rng.random()))
        lines = self.random_text(rng, rng.randint(20, 400)).splitlines(True)
        secret = fake_pat(rng) if kind == "secret" else fake_acme(rng)
        self.used_secrets.append(secret)
        lines.insert(rng.randint(0, len(lines)), "key = \"%s\"\n" % secret)
        return "".join(lines)

    def random_changes(self, rng, w, plan):
        """1 or 2 random changes to paths of the pool ({path: content or
        None}); each is appended to plan as (path, kind)."""
        changes = {}
        for _o in range(rng.randint(1, 2)):
            p = rng.choices(self.POOL, self.POOL_WEIGHTS)[0]
            kind = rng.choices(
                ["text", "big", "binary", "secret", "acme", "delete"],
                [14, 0.7, 0.5, 0.5, 0.3, 1.5])[0]
            exists = os.path.exists(os.path.join(w, p))
            if kind == "delete" and (exists or p in changes):
                changes[p] = None
            else:
                if kind == "delete":
                    kind = "text"
                changes[p] = self.random_content(rng, kind)
            plan.append((p, kind))
        return changes

    def test_20_property_policy_test_agrees_with_proxy(self):
        seed = int(os.environ.get("GG_POLICY_SEED", "20240611"))
        print("\n  property test seed: %d (GG_POLICY_SEED=%d to rerun)"
              % (seed, seed), flush=True)
        rng = random.Random(seed)
        repo, main = self.new_repo("prop", files={
            CI_YML: "name: ci\n", "legacy/id_rsa": "old\n",
            "src/app.py": "print('hi')\n", "README.md": "# prop\n"})
        tokens = [
            ([], self.mint(repo)),
            (["--allow-path", ".github/**"],
             self.mint(repo, allow_paths=(".github/**",))),
            (["--email", "a@example.com", "--email", "ops@example.com"],
             self.mint(repo, emails=("a@example.com", "ops@example.com"))),
            (["--allow-path", CI_YML, "--email", DEV],
             self.mint(repo, allow_paths=(CI_YML,), emails=(DEV,))),
        ]
        w = self.clone(repo, tokens[0][1], "prop")
        git_dir = os.path.join(w, ".git")
        outcomes = {"allowed": 0, "refused": 0, "merges": 0}
        rules_seen = set()
        for n in range(int(os.environ.get("GG_POLICY_SCENARIOS", "20"))):
            if rng.random() < 0.2:  # someone moves main meanwhile
                p = rng.choice([CI_YML, "src/app.py", "README.md",
                                "docs/guide.md"])
                self.upstream_commit(repo, "main", {
                    p: self.random_text(rng, rng.randint(5, 300))},
                    "main moves")
            h.git("fetch", "-q", "--prune", "origin", cwd=w, check=True)
            upstream = self.up.refs(repo)
            agents = sorted(r[len("refs/heads/"):] for r in upstream
                            if r.startswith("refs/heads/agent/"))
            r = rng.random()
            if r < 0.08:
                branch = "main"
            elif r < 0.45 and agents:
                branch = rng.choice(agents)
            else:
                branch = "agent/p%d" % n
            ref = "refs/heads/" + branch
            old = upstream.get(ref, ZERO)
            base = "origin/" + branch if old != ZERO else "origin/main"
            h.git("checkout", "-q", "--detach", "origin/main", cwd=w,
                  check=True)
            h.git("branch", "-f", "main", "origin/main", cwd=w, check=True)
            h.git("checkout", "-q", "-B", branch, base, cwd=w, check=True)
            plan = []
            if old != ZERO and rng.random() < 0.4:
                # merge main (which may have moved) into the branch; an
                # evil merge changes files while merging
                evil = rng.random() < 0.35
                mrc = h.git("merge", "-q", "--no-ff", "--no-commit",
                            "-X", "theirs", "origin/main", cwd=w,
                            env=self.email_env())[0]
                merging = os.path.exists(os.path.join(git_dir, "MERGE_HEAD"))
                if mrc != 0 or not merging:
                    h.git("merge", "--abort", cwd=w)
                    h.git("reset", "-q", "--hard", base, cwd=w, check=True)
                else:
                    if evil:
                        self.apply(w, self.random_changes(rng, w, plan))
                    h.git("commit", "-q", "--no-edit", cwd=w, check=True,
                          env=self.email_env(rng.choices(
                              self.EMAILS, self.EMAIL_WEIGHTS)[0]))
                    plan.append(("merge", "evil" if evil else "plain"))
                    outcomes["merges"] += 1
            for _c in range(rng.randint(1, 3)):
                changes = self.random_changes(rng, w, plan)
                author = rng.choices(self.EMAILS, self.EMAIL_WEIGHTS)[0]
                committer = author if rng.random() < 0.85 else \
                    rng.choices(self.EMAILS, self.EMAIL_WEIGHTS)[0]
                self.commit(w, changes, msg="scenario %d" % n, author=author,
                            committer=committer)
            new = self.head(w)
            claims, tok = rng.choices(tokens, [3, 2, 1, 1])[0]
            # what policy test says, on the client's clone
            rc, out, err = h.run_gitgate(
                "policy", "test", "--policy", self.policy_path, "--git-dir",
                git_dir, *claims, ref, old, new)
            self.assertIn(rc, (0, 1), "policy test: %s%s" % (out, err))
            test_allowed = rc == 0
            first = None
            if test_allowed:
                self.assertIn("allowed: %s %s..%s" % (ref, old[:7], new[:7]),
                              out.splitlines(), out + err)
            else:
                m = re.search(r"^refused: (\S+): (.*)$", out, re.M)
                self.assertTrue(m, "policy test exit 1 without a reason:\n"
                                + out + err)
                first = m.groups()
                findings = re.findall(r"^refused: \S+: (.*)$", out, re.M)
            # what the proxy says
            res = h.git("push", self.gg.repo_url(repo, tok),
                        "HEAD:" + ref, cwd=w)
            after = self.up.rev_parse(repo, ref)
            what = ("scenario %d (seed %d): %s %s..%s claims=%r plan=%r\n"
                    "policy test (exit %d):\n%s%s\n%s" % (
                        n, seed, ref, old[:7], new[:7], claims, plan, rc,
                        out, err, self.describe(res)))
            if res[0] == 0:
                proxy = None
                self.assertEqual(after, new, what)
            else:
                self.assertEqual(after, None if old == ZERO else old, what)
                rx = re.compile(r" ! \[remote rejected\] HEAD -> %s "
                                r"\((.*)\)" % re.escape(branch))
                found = [rx.fullmatch(l) for l in self.lines(res)]
                found = [m.group(1) for m in found if m]
                self.assertEqual(len(found), 1,
                                 "push failed without one rejection: " + what)
                proxy = found[0]
            self.assertEqual(test_allowed, proxy is None,
                             "policy test and proxy disagree on allowed/"
                             "refused: " + what)
            if first:
                self.assertEqual(first[1], proxy, "different reasons: "
                                 + what)
                _, entry = self.last_audit(repo, ref)
                self.assertEqual((entry["result"], entry.get("rule")),
                                 (proxy, first[0]), what)
                rules_seen.add(first[0])
                # several findings: the proxy lists the same, in order
                notes = [l[len("remote: gitgate:   "):]
                         for l in self.lines(res)
                         if l.startswith("remote: gitgate:   ")]
                self.assertEqual(notes, findings if len(findings) > 1
                                 else [], "different findings: " + what)
            outcomes["allowed" if test_allowed else "refused"] += 1
            h.git("checkout", "-q", "--detach", cwd=w, check=True)
            if branch != "main":
                h.git("branch", "-D", branch, cwd=w, check=True)
        print("  property test: %r, rules: %s" % (
            outcomes, ", ".join(sorted(rules_seen))), flush=True)
        # the scenarios exercised both outcomes and several rules
        self.assertGreaterEqual(outcomes["allowed"], 3, outcomes)
        self.assertGreaterEqual(outcomes["refused"], 3, outcomes)
        self.assertGreaterEqual(len(rules_seen), 3, rules_seen)

    # ------------------------------------------------------------------

    def test_zz_no_secret_anywhere(self):
        """No secret any test committed shows in gitgate's logs, the audit
        log or any git output of this run."""
        texts = [self.gg.stderr_text(), self.gg.audit_text()]
        with open(self.gg.stdout_path, errors="replace") as f:
            texts.append(f.read())
        pushes = [o + e for cmd, rc, o, e in h.git_transcript
                  if len(cmd) > 1 and cmd[1] == "push"]
        for s in self.used_secrets + [self.up.secret]:
            for t in texts:
                self.assertNotIn(s, t)
            for t in pushes:
                self.assertNotIn(s, t)


class NoPolicyTest(PolicyBase):
    """Without a policy file the token's emails claim still applies."""

    policy = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-nopolicy-")
        cls.used_secrets = []
        try:
            cls.up = h.Upstream().start()
            cls.gg = h.Gitgate(cls.up.url, cls.up.secret).start()
        except Exception as e:
            cls.startup_error = "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("\nSTARTUP FAILED: %s\n" % cls.startup_error)

    def test_emails_claim_without_policy(self):
        repo, main = self.new_repo("noplc")
        tok = self.mint(repo, emails=("a@example.com",))
        w = self.clone(repo, tok, "noplc")
        c1 = self.commit(w, {"a.txt": "a\n"}, author="b@example.com")
        res = self.push(w, "origin", "HEAD:agent/n")
        self.assertRejected(res, "HEAD", "agent/n",
                            "commit %s author b@example.com not allowed: "
                            "allowed a@example.com" % c1[:7])
        self.assertRefs(repo, {"refs/heads/main": main})
        h.git("reset", "-q", "--hard", main, cwd=w, check=True)
        c2 = self.commit(w, {"a.txt": "a\n", "keys/id_rsa": "k\n"},
                         author="A@Example.com", committer="a@example.com")
        res = self.push(w, "origin", "HEAD:agent/n")
        self.assertLanded(res, repo, "refs/heads/agent/n", c2)
        # a token without the claim pushes any address
        tok2 = self.mint(repo)
        self.set_token(w, repo, tok2)
        c3 = self.commit(w, {"b.txt": "b\n"}, author="x@evil.test")
        res = self.push(w, "origin", "HEAD:agent/n")
        self.assertLanded(res, repo, "refs/heads/agent/n", c3)


class PolicyReloadTest(PolicyBase):
    """Reloading: SIGHUP and the poll put a new policy in force; a broken
    file keeps the last good one and the proxy serves on. The upstream
    keeps the harness's default secret (ghs_...)."""

    policy = {"forbidden_paths": ["**/id_rsa"], "secrets": True}

    def wait_log(self, needle, count):
        ok = h.wait_until(lambda: self.gg.stderr_text().count(needle) >=
                          count, 10.0)
        self.assertTrue(ok, "gitgate never logged %r (%d times):\n%s" % (
            needle, count, self.gg.stderr_text()[-3000:]))

    def test_reload(self):
        repo, main = self.new_repo("reload")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "reload")
        expected = {"refs/heads/main": main}

        def attempt(name, files):
            h.git("reset", "-q", "--hard", main, cwd=w, check=True)
            c = self.commit(w, files)
            return c, self.push(w, "origin", "HEAD:agent/" + name)

        reloaded = "reloaded site policy from"
        failed = "site policy reload failed, keeping the previous one: "

        def switch(obj=None, text=None, sighup=True, expect=reloaded):
            """Replace the policy file (SIGHUP or the poll) and wait for
            gitgate to log the outcome."""
            before = self.gg.stderr_text().count(expect)
            write_json_atomic(self.policy_path, obj, text)
            if sighup:
                self.gg.reload()
            self.wait_log(expect, before + 1)
            # a SIGHUP after the poll reloads once more: let it finish
            time.sleep(0.5)

        c, res = attempt("r1", {"notes/a.txt": "a\n"})
        self.assertLanded(res, repo, "refs/heads/agent/r1", c)
        expected["refs/heads/agent/r1"] = c

        # stricter, SIGHUP
        switch({"forbidden_paths": ["**/id_rsa", "notes/**"],
                "secrets": True})
        c, res = attempt("r2", {"notes/b.txt": "b\n"})
        self.assertRejected(res, "HEAD", "agent/r2",
                            "notes/b.txt is forbidden by site policy "
                            "(commit %s)" % c[:7])
        self.assertRefs(repo, expected)

        # broken JSON + SIGHUP: the strict policy stays in force
        switch(text='{\n  "forbidden_paths": [\n', expect=failed)
        self.assertIn("policy.json:", self.gg.stderr_text().split(failed)[-1]
                      .splitlines()[0])
        c, res = attempt("r3", {"notes/c.txt": "c\n"})
        self.assertRejected(res, "HEAD", "agent/r3",
                            "notes/c.txt is forbidden by site policy "
                            "(commit %s)" % c[:7])
        self.assertRefs(repo, expected)
        c, res = attempt("r4", {"ok.txt": "ok\n"})
        self.assertLanded(res, repo, "refs/heads/agent/r4", c)
        expected["refs/heads/agent/r4"] = c
        self.assertEqual(self.gg.request("GET", "/healthz").status, 200)

        # a regex the engine refuses (valid JSON) + SIGHUP: same
        switch({"forbidden_paths": ["**/id_rsa"],
                "secret_rules": [{"id": "bad", "regex": "(unclosed"}]},
               expect=failed)
        c, res = attempt("r5", {"notes/d.txt": "d\n"})
        self.assertRejected(res, "HEAD", "agent/r5",
                            "notes/d.txt is forbidden by site policy "
                            "(commit %s)" % c[:7])
        self.assertRefs(repo, expected)

        # the poll alone (no SIGHUP) picks up a good file again
        switch(self.policy, sighup=False)
        c, res = attempt("r6", {"notes/e.txt": "e\n"})
        self.assertLanded(res, repo, "refs/heads/agent/r6", c)
        expected["refs/heads/agent/r6"] = c
        c, res = attempt("r7", {"x/id_rsa": "k\n"})
        self.assertRejected(res, "HEAD", "agent/r7",
                            "x/id_rsa is forbidden by site policy "
                            "(commit %s)" % c[:7])
        self.assertRefs(repo, expected)

    def test_broken_policy_refuses_start(self):
        """A policy with problems at start-up: gitgate does not start, and
        says where (file:line:column)."""
        for name, text, pattern in (
                ("bad-size.json", '{\n  "max_file_size": 50\n}\n',
                 r"bad-size\.json:2:\d+: max_file_size: "),
                ("bad-json.json", '{\n  "secrets": tru\n}\n',
                 r"bad-json\.json:2:\d+: "),
                ("missing.json", None, r"missing\.json")):
            gg = h.Gitgate(self.up.url, self.up.secret,
                           extra_config={"policy": name})
            try:
                if text is not None:
                    with open(os.path.join(gg.root, name), "w") as f:
                        f.write(text)
                with self.assertRaises(h.HarnessError):
                    gg.start(timeout=5)
                self.assertFalse(gg.running())
                self.assertRegex(gg.stderr_text(), pattern)
            finally:
                gg.stop()

    def test_default_upstream_secret(self):
        """The harness's default upstream secret (ghs_ + 40 hex) is also a
        github-app-token: both findings are listed, and the secret shows
        nowhere."""
        self.assertTrue(self.up.secret.startswith("ghs_"))
        repo, main = self.new_repo("upsecret")
        tok = self.mint(repo)
        w = self.clone(repo, tok, "upsecret")
        c1 = self.commit(w, {"cfg.txt": "token=%s\n" % self.up.secret})
        res = self.push(w, "origin", "HEAD:agent/u")
        self.assertEqual(res[0], 1, self.describe(res))
        want = {"secret detected (%s) in cfg.txt:1 (commit %s)" % (r, c1[:7])
                for r in ("upstream-secret", "github-app-token")}
        notes = {l[len("remote: gitgate:   "):] for l in self.lines(res)
                 if l.startswith("remote: gitgate:   ")}
        self.assertEqual(notes, want, self.describe(res))
        rej = [l for l in self.lines(res) if "[remote rejected]" in l]
        self.assertEqual(len(rej), 1, self.describe(res))
        self.assertIn(rej[0][len(" ! [remote rejected] HEAD -> agent/u ("):
                      -1], want)
        self.assertRefs(repo, {"refs/heads/main": main})
        self.assertNowhere(self.up.secret, res)


if __name__ == "__main__":
    h.run_suite()

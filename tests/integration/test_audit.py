#!/usr/bin/env python3
"""Integration suite for the audit log: the real git client through a real
`gitgate serve` to a real smart-HTTP upstream (see harness.py), then the log
gitgate wrote is read back and checked against what happened.

    ScenarioTest     clones (v0, v2), a fetch, refused / allowed / mixed /
                     force / delete pushes, missing, tampered and expired
                     tokens, a 403 and a 404: one record each with the
                     right fields; `gitgate audit` filters; `audit verify`;
                     an independent Python check of the hash chain; no
                     secret in the log or on stderr; a refusal is on disk
                     before git exits.
    ConcurrencyTest  32 git clients at once: one whole, chained line per
                     HTTP request (counted from the clients' curl traces).
    RestartTest      SIGTERM and start again: the chain continues.
    RotationTest     rename + SIGHUP: the new file continues the old chain.
    FollowTest       deleted / renamed away without SIGHUP: the next line
                     is in a new file at the path, continuing the chain.
    FullDiskTest     the log on a full tmpfs: 503 for everything (fail
                     closed, never a cut-off transfer: room for a fetch's
                     line is set aside before it starts), stderr says why,
                     the file keeps whole lines, and service resumes once
                     space is back.
    CutOffFetchTest  a fetch whose line fails after the pack went out (a
                     file size limit): git fails, it does not succeed
                     unaudited.

Run: GITGATE=build/gitgate python3 tests/integration/test_audit.py
(meson test registers it as integration-test_audit). The last line is
`N passed, N failed[, N skipped]`; the exit code is non-zero on failure.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

GENESIS = "0" * 64
ZERO_OID = "0" * 40
REPO = "acme/widgets"
FIELDS = {"time", "request_id", "sub", "jti", "repo", "service", "client",
          "decision", "reason", "refs", "status", "bytes_in", "bytes_out",
          "duration_ms", "prev", "hash", "instance"}
REF_FIELDS = {"ref", "old", "new", "action", "result"}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEX_RE = re.compile(r"^[0-9a-f]+$")
NO_AUTH = "authentication required: use the token as the password"
BRANCH_REFUSED = "branch not allowed by token: allowed agent/*"
FORCE_REFUSED = "force-push not allowed by token"
DELETE_REFUSED = "deletion not allowed by token"
UNAVAILABLE = "audit log unavailable"


# --------------------------------------------------------------------------
# the chain format, independently of src/audit/audit.c (see include/gitgate/audit/audit.h)

_ESC_RE = re.compile(r"\\\\|\\u[0-9a-fA-F]{4}")


def canonical(obj):
    """jansson's JSON_COMPACT|JSON_SORT_KEYS|JSON_ENSURE_ASCII: Python's
    compact sorted dump, with \\uXXXX escapes in upper-case hex (an escaped
    backslash is skipped so that a literal backslash-u stays as it is)."""
    s = json.dumps(obj, sort_keys=True, separators=(",", ":"),
                   ensure_ascii=True)
    return _ESC_RE.sub(lambda m: m.group(0) if m.group(0) == "\\\\"
                       else "\\u" + m.group(0)[2:].upper(), s)


def blake(text):
    return hashlib.blake2b(text.encode("ascii"), digest_size=32).hexdigest()


def check_chain(data, prev=GENESIS, where="log"):
    """Check every line of data (bytes): whole, canonical, hash right,
    prev linked (from prev; None = accept whatever the first line says).
    Returns (records, last hash); raises AssertionError naming the line."""
    if data and not data.endswith(b"\n"):
        raise AssertionError("%s: last line has no newline (partial write)"
                             % where)
    recs = []
    for n, raw in enumerate(data.split(b"\n")[:-1], 1):
        try:
            line = raw.decode("ascii")
            obj = json.loads(line)
        except (UnicodeDecodeError, ValueError) as e:
            raise AssertionError("%s line %d: not an ASCII JSON line (%s): "
                                 "%r" % (where, n, e, raw[:200]))
        if not isinstance(obj, dict):
            raise AssertionError("%s line %d: not an object" % (where, n))
        if canonical(obj) != line:
            raise AssertionError("%s line %d: not canonical:\n%s\n%s" %
                                 (where, n, line, canonical(obj)))
        body = dict(obj)
        got = body.pop("hash", None)
        if got != blake(canonical(body)):
            raise AssertionError("%s line %d: hash mismatch" % (where, n))
        if prev is not None and obj.get("prev") != prev:
            raise AssertionError("%s line %d: prev %s, expected %s" %
                                 (where, n, obj.get("prev"), prev))
        prev = got
        recs.append(obj)
    return recs, prev


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def parse_records(data):
    """The records of log bytes (parsed, no chain check)."""
    return [json.loads(l) for l in data.decode().splitlines()]


def read_records(path):
    """The log's records (parsed, no chain check)."""
    return parse_records(read_bytes(path))


def settle(path, quiet=0.4, timeout=10.0):
    """Relayed fetches are audited when the response is complete, a moment
    after the client may have exited: wait until the file stops growing."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = -1
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return size
        time.sleep(0.05)
    return last


def wait_records(path, count, timeout=15.0):
    """Wait until path holds at least count lines; returns the count."""
    def n():
        try:
            return read_bytes(path).count(b"\n")
        except OSError:
            return 0
    h.wait_until(lambda: n() >= count, timeout, 0.05)
    return n()


def wait_for_id(path, request_id, timeout=1.0):
    """The bytes of path once its records include request_id, or None."""
    found = [None]

    def has():
        try:
            data = read_bytes(path)
        except OSError:
            return False
        if ('"request_id":"%s"' % request_id).encode() in data:
            found[0] = data
            return True
        return False
    h.wait_until(has, timeout, 0.02)
    return found[0]


def audit_cli(*args):
    return h.run_gitgate("audit", *args)


def verify_cli(paths):
    """`gitgate audit verify --log P ...` for the logs at paths, in order."""
    args = ["verify"]
    for p in paths:
        args += ["--log", p]
    return audit_cli(*args)


def wait_healthy(gg, timeout=5):
    """Poll /healthz until it answers 200 (or timeout s pass); the last
    answer."""
    resp = None
    deadline = time.time() + timeout
    while time.time() < deadline:
        resp = gg.request("GET", "/healthz")
        if resp.status == 200:
            break
        time.sleep(0.05)
    return resp


def info_refs(repo, service="git-upload-pack"):
    return "/%s.git/info/refs?service=%s" % (repo, service)


def tamper_flip(token):
    """Change one base64url character in the middle of the signed part."""
    parts = token.split(".")
    seg = parts[2]
    i = len(seg) // 2
    parts[2] = seg[:i] + ("A" if seg[i] != "A" else "B") + seg[i + 1:]
    return ".".join(parts)


def auth(token, user="agent"):
    return {"Authorization": h.basic_auth(user, token)}


class AuditBase(unittest.TestCase):
    """Each subclass starts its own upstream and gitgate in _run (once per
    class, in TMP_PREFIX + a temporary directory); a failure there is
    reported by every test of the class."""

    startup_error = None
    TMP_PREFIX = "gg-test-audit-"
    up = None
    gg = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=cls.TMP_PREFIX)
        try:
            cls._run()
        except Exception as e:  # reported by every test (setUp)
            cls._startup_failed(e)

    @classmethod
    def _run(cls):
        raise NotImplementedError

    @classmethod
    def path(cls, *parts):
        """A path in the class's temporary directory."""
        return os.path.join(cls.tmp, *parts)

    @classmethod
    def tearDownClass(cls):
        if cls.gg:
            cls.gg.stop()
        if cls.up:
            cls.up.stop()
        cls._release()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def _release(cls):
        """Undo what _run set up besides the servers, before the temporary
        directory goes (nothing here)."""

    def setUp(self):
        if self.startup_error:
            self.fail("setup failed: " + self.startup_error[:1500])

    @classmethod
    def _startup_failed(cls, e):
        import traceback
        cls.startup_error = "%s: %s\n%s" % (type(e).__name__, e,
                                            traceback.format_exc()[-1500:])
        sys.stderr.write("\nSETUP FAILED (%s): %s\n" % (cls.__name__,
                                                       cls.startup_error))

    def assertGitOk(self, res, what):
        rc, out, err = res[:3]
        self.assertEqual(rc, 0, "%s failed (%d):\n%s%s" % (what, rc, out, err))

    def assertVerifies(self, *paths, records=None):
        """`gitgate audit verify --log P ...` exits 0 with ok: N records."""
        rc, out, err = verify_cli(paths)
        self.assertEqual(rc, 0, "audit verify %s: %s%s" % (paths, out, err))
        m = re.match(r"^ok: (\d+) records, chain intact, last hash "
                     r"([0-9a-f]{64})\n$", out)
        self.assertTrue(m, out)
        if records is not None:
            self.assertEqual(int(m.group(1)), records, out)
        return int(m.group(1)), m.group(2)

    def assertVerifyBreaks(self, *paths):
        """`gitgate audit verify --log P ...` finds the chain broken (the
        files are out of order)."""
        rc, out, err = verify_cli(paths)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("prev does not match", err)

    def assertWellFormed(self, rec):
        self.assertEqual(set(rec), FIELDS, rec)
        self.assertTrue(TIME_RE.match(rec["time"]), rec)
        self.assertTrue(HEX_RE.match(rec["request_id"]) and
                        len(rec["request_id"]) == 32, rec)
        self.assertEqual(rec["client"], "127.0.0.1", rec)
        # no GITGATE_INSTANCE in the test's environment: the host name
        self.assertEqual(rec["instance"], socket.gethostname(), rec)
        self.assertIn(rec["decision"], ("allow", "deny"), rec)
        for k in ("status", "bytes_in", "bytes_out", "duration_ms"):
            self.assertIsInstance(rec[k], int, (k, rec))
            self.assertGreaterEqual(rec[k], 0, (k, rec))
        self.assertIsInstance(rec["refs"], list, rec)
        for r in rec["refs"]:
            self.assertEqual(set(r), REF_FIELDS, rec)
            self.assertIn(r["action"], ("create", "update", "force",
                                        "delete"), rec)
            self.assertTrue(len(r["old"]) == 40 and len(r["new"]) == 40,
                            rec)


# --------------------------------------------------------------------------


class ScenarioTest(AuditBase):
    """One gitgate; setUpClass plays a scenario, the tests read the log."""

    TMP_PREFIX = "gg-test-audit-"

    @classmethod
    def _run(cls):
        p = cls.path
        up = cls.up = h.Upstream().start()
        cls.head0 = up.create_repo(REPO, commits=3)
        up.create_repo("acme/other", commits=1)
        gg = cls.gg = h.Gitgate(up.url, up.secret).start()
        cls.tok = {}

        def mint(name, **kw):
            cls.tok[name] = gg.mint(sub=name, **kw)
            return cls.tok[name]

        mint("expired", repo=REPO, ttl="1s")
        expired_at = time.monotonic() + 1.0
        for name in ("clone-v0", "clone-v2", "fetcher", "wrong-repo",
                     "tampered"):
            mint(name, repo=REPO)
        mint("pusher", repo=REPO, push=["agent/*"])
        mint("forcer", repo=REPO, push=["agent/*"], allow_force=True,
             allow_delete=True)
        mint("flush", repo=REPO, push=["agent/*"])
        cls.tampered = tamper_flip(cls.tok["tampered"])
        cls.jti = {n: gg.inspect(t)["jti"] for n, t in cls.tok.items()}

        res = cls.res = {}
        res["clone-v0"] = h.git("-c", "protocol.version=0", "clone",
                                gg.repo_url(REPO, cls.tok["clone-v0"]),
                                p("c0"))
        res["clone-v2"] = h.git("-c", "protocol.version=2", "clone",
                                gg.repo_url(REPO, cls.tok["clone-v2"]),
                                p("c2"))
        cls.head1 = up.add_commit(REPO, message="upstream moved on")
        res["fetch"] = h.git("fetch", gg.repo_url(REPO, cls.tok["fetcher"]),
                             "main", cwd=p("c0"))
        cls.fetched = h.git("rev-parse", "FETCH_HEAD", cwd=p("c0"))[1].strip()

        # pushes from a worktree at head1, origin = the pusher's URL
        w = cls.work = p("work")
        res["work-clone"] = h.git("clone", gg.repo_url(REPO,
                                                       cls.tok["pusher"]), w)
        cls.c1 = h.commit_file(w, "one.txt", "one\n")
        res["push-main"] = h.git("push", "origin", "HEAD:refs/heads/main",
                                 cwd=w)
        res["push-agent-x"] = h.git("push", "origin",
                                    "HEAD:refs/heads/agent/x", cwd=w)
        cls.c2 = h.commit_file(w, "two.txt", "two\n")
        # non-atomic: update + create land, the create of `other` is refused
        res["push-mixed"] = h.git("push", "origin",
                                  "HEAD:refs/heads/agent/x",
                                  "HEAD:refs/heads/agent/y",
                                  "HEAD:refs/heads/other", cwd=w)
        # force and delete refused for the pusher, a create lands
        res["push-mixed2"] = h.git("push", "origin",
                                   "+%s:refs/heads/agent/x" % cls.c1,
                                   ":refs/heads/agent/y",
                                   "HEAD:refs/heads/agent/v", cwd=w)
        # the forcer may force and delete
        res["push-forcer"] = h.git("push",
                                   gg.repo_url(REPO, cls.tok["forcer"]),
                                   "+%s:refs/heads/agent/x" % cls.c1,
                                   ":refs/heads/agent/y", cwd=w)
        cls.upstream_refs = up.refs(REPO)

        # plain HTTP refusals
        while time.monotonic() < expired_at + 1.2:
            time.sleep(0.1)
        cls.http = {
            "nocreds": gg.request("GET", info_refs("acme/nocreds")),
            "tampered": gg.request("GET", info_refs(REPO),
                                   auth(cls.tampered)),
            "expired": gg.request("GET", info_refs(REPO),
                                  auth(cls.tok["expired"])),
            "wrong-repo": gg.request("GET", info_refs("acme/other"),
                                     auth(cls.tok["wrong-repo"])),
            "unknown": gg.request("GET", "/nope", auth(cls.tok["fetcher"])),
            "unknown-noauth": gg.request("GET", "/favicon.ico"),
            "healthz": gg.request("GET", "/healthz"),
        }
        settle(gg.audit_log)

    # -- helpers

    def records(self):
        return read_records(self.gg.audit_log)

    def by_sub(self, sub):
        return [r for r in self.records() if r["sub"] == sub]

    def pushes(self, sub):
        """The receive-pack POST records of sub, in order."""
        return [r for r in self.by_sub(sub)
                if r["service"] == "git-receive-pack" and r["refs"]]

    def one(self, pred, what):
        found = [r for r in self.records() if pred(r)]
        self.assertEqual(len(found), 1, "%s: %d records: %r" %
                         (what, len(found), found))
        return found[0]

    def assertTokenFields(self, rec, name):
        self.assertEqual(rec["sub"], name, rec)
        self.assertEqual(rec["jti"], self.jti[name], rec)

    def assertAllowedFetch(self, recs, name, min_posts):
        self.assertTrue(recs, "no record for " + name)
        for r in recs:
            self.assertWellFormed(r)
            self.assertTokenFields(r, name)
            self.assertEqual((r["decision"], r["status"], r["service"],
                              r["repo"], r["reason"], r["refs"]),
                             ("allow", 200, "git-upload-pack", REPO, "", []),
                             r)
            self.assertGreater(r["bytes_out"], 0, r)
        # info/refs first (a GET: nothing in), then POSTs carrying data
        self.assertEqual(recs[0]["bytes_in"], 0, recs[0])
        posts = [r for r in recs if r["bytes_in"] > 0]
        self.assertGreaterEqual(len(posts), min_posts, recs)

    def assertPush(self, rec, name, refs, decision):
        self.assertWellFormed(rec)
        self.assertTokenFields(rec, name)
        self.assertEqual((rec["decision"], rec["status"], rec["service"],
                          rec["repo"]),
                         (decision, 200, "git-receive-pack", REPO), rec)
        got = {r["ref"]: (r["old"], r["new"], r["action"], r["result"])
               for r in rec["refs"]}
        self.assertEqual(len(got), len(rec["refs"]), rec)
        self.assertEqual(got, refs, rec)
        refused = [r["result"] for r in rec["refs"] if r["result"] != "ok"]
        # reason: the first refusal (in the order git sent the commands)
        self.assertEqual(rec["reason"], refused[0] if refused else "", rec)
        self.assertGreater(rec["bytes_in"], 0, rec)
        self.assertGreater(rec["bytes_out"], 0, rec)

    def assertDenied(self, rec, status, reason, repo, service,
                     name=None):
        self.assertWellFormed(rec)
        self.assertEqual((rec["decision"], rec["status"], rec["reason"],
                          rec["repo"], rec["service"], rec["refs"],
                          rec["bytes_in"], rec["bytes_out"]),
                         ("deny", status, reason, repo, service, [], 0, 0),
                         rec)
        if name is None:
            self.assertEqual((rec["sub"], rec["jti"]), (None, None), rec)
        else:
            self.assertTokenFields(rec, name)

    # -- allowed fetches

    def test_clone_v0(self):
        self.assertGitOk(self.res["clone-v0"], "clone v0")
        self.assertAllowedFetch(self.by_sub("clone-v0"), "clone-v0", 1)

    def test_clone_v2(self):
        self.assertGitOk(self.res["clone-v2"], "clone v2")
        # v2: info/refs, then ls-refs and fetch as two POSTs
        self.assertAllowedFetch(self.by_sub("clone-v2"), "clone-v2", 2)

    def test_fetch(self):
        self.assertGitOk(self.res["fetch"], "fetch")
        self.assertEqual(self.fetched, self.head1)
        self.assertAllowedFetch(self.by_sub("fetcher"), "fetcher", 1)

    def test_git_auth_probes_audited(self):
        # git asks without credentials first: each probe is a 401 record
        probes = [r for r in self.records() if r["reason"] == NO_AUTH and
                  r["repo"] == REPO]
        self.assertGreaterEqual(len(probes), 5)
        for r in probes:
            self.assertDenied(r, 401, NO_AUTH, REPO, r["service"])
            self.assertIn(r["service"], ("git-upload-pack",
                                         "git-receive-pack"), r)

    # -- pushes

    def test_refused_push_to_main(self):
        rc, _, err = self.res["push-main"]
        self.assertNotEqual(rc, 0, err)
        self.assertIn("[remote rejected] HEAD -> main (%s)" % BRANCH_REFUSED,
                      err)
        recs = self.pushes("pusher")
        self.assertGreaterEqual(len(recs), 1)
        self.assertPush(recs[0], "pusher", {
            "refs/heads/main": (self.head1, self.c1, "update",
                                BRANCH_REFUSED)}, "deny")
        self.assertEqual(self.upstream_refs.get("refs/heads/main"),
                         self.head1)

    def test_allowed_push_agent_x(self):
        self.assertGitOk(self.res["push-agent-x"], "push agent/x")
        recs = self.pushes("pusher")
        self.assertGreaterEqual(len(recs), 2)
        self.assertPush(recs[1], "pusher", {
            "refs/heads/agent/x": (ZERO_OID, self.c1, "create", "ok")},
            "allow")

    def test_mixed_push_non_atomic(self):
        rc, _, err = self.res["push-mixed"]
        self.assertEqual(rc, 1, err)
        self.assertIn("[remote rejected] HEAD -> other (%s)" % BRANCH_REFUSED,
                      err)
        recs = self.pushes("pusher")
        self.assertGreaterEqual(len(recs), 3)
        self.assertPush(recs[2], "pusher", {
            "refs/heads/agent/x": (self.c1, self.c2, "update", "ok"),
            "refs/heads/agent/y": (ZERO_OID, self.c2, "create", "ok"),
            "refs/heads/other": (ZERO_OID, self.c2, "create",
                                 BRANCH_REFUSED)}, "deny")

    def test_force_and_delete_refused(self):
        rc, _, err = self.res["push-mixed2"]
        self.assertEqual(rc, 1, err)
        recs = self.pushes("pusher")
        self.assertEqual(len(recs), 4, recs)
        self.assertPush(recs[3], "pusher", {
            "refs/heads/agent/x": (self.c2, self.c1, "force", FORCE_REFUSED),
            "refs/heads/agent/y": (self.c2, ZERO_OID, "delete",
                                   DELETE_REFUSED),
            "refs/heads/agent/v": (ZERO_OID, self.c2, "create", "ok")},
            "deny")

    def test_force_and_delete_allowed(self):
        self.assertGitOk(self.res["push-forcer"], "force + delete push")
        recs = self.pushes("forcer")
        self.assertEqual(len(recs), 1, recs)
        self.assertPush(recs[0], "forcer", {
            "refs/heads/agent/x": (self.c2, self.c1, "force", "ok"),
            "refs/heads/agent/y": (self.c2, ZERO_OID, "delete", "ok")},
            "allow")
        # the log matches what upstream holds
        want = {"refs/heads/main": self.head1, "refs/heads/agent/x": self.c1,
                "refs/heads/agent/v": self.c2}
        self.assertEqual(self.upstream_refs, want)

    def test_push_info_refs_audited(self):
        adverts = [r for r in self.by_sub("pusher")
                   if r["service"] == "git-receive-pack" and not r["refs"]]
        self.assertGreaterEqual(len(adverts), 4)
        for r in adverts:
            self.assertEqual((r["decision"], r["status"], r["bytes_in"]),
                             ("allow", 200, 0), r)
            self.assertGreater(r["bytes_out"], 0, r)

    # -- refusals before any relaying

    def test_no_credentials(self):
        self.assertEqual(self.http["nocreds"].status, 401)
        rec = self.one(lambda r: r["repo"] == "acme/nocreds", "no creds")
        self.assertDenied(rec, 401, NO_AUTH, "acme/nocreds",
                          "git-upload-pack")

    def test_tampered_token(self):
        self.assertEqual(self.http["tampered"].status, 401)
        rec = self.one(lambda r: r["reason"] == "token bad signature",
                       "tampered token")
        # an unverified token says nothing trustworthy: no sub/jti
        self.assertDenied(rec, 401, "token bad signature", REPO,
                          "git-upload-pack")

    def test_expired_token_refused(self):
        self.assertEqual(self.http["expired"].status, 401)
        rec = self.one(lambda r: r["reason"] == "token expired",
                       "expired token")
        self.assertEqual((rec["decision"], rec["status"], rec["repo"],
                          rec["service"]),
                         ("deny", 401, REPO, "git-upload-pack"), rec)

    def test_expired_token_attributed(self):
        """An expired token parsed and its signature verified: the record
        must say whose token it was (sub, jti), as for any parsed token."""
        rec = self.one(lambda r: r["reason"] == "token expired",
                       "expired token")
        self.assertDenied(rec, 401, "token expired", REPO,
                          "git-upload-pack", name="expired")

    def test_wrong_repo_403(self):
        self.assertEqual(self.http["wrong-repo"].status, 403)
        rec = self.one(lambda r: r["sub"] == "wrong-repo", "wrong repo")
        self.assertDenied(rec, 403, "token does not grant access to "
                          "acme/other", "acme/other", "git-upload-pack",
                          name="wrong-repo")

    def test_unknown_path_404(self):
        self.assertEqual(self.http["unknown"].status, 404)
        rid = self.http["unknown"].header("x-request-id")
        rec = self.one(lambda r: r["request_id"] == rid, "unknown path")
        self.assertDenied(rec, 404, "not found", None, None)

    def test_request_id_on_every_answer(self):
        """Refusals (401/403/404) carry X-Request-Id like relayed answers,
        and it names their audit line; /healthz has one too (no line)."""
        ids = {r["request_id"]: r for r in self.records()}
        for what, status in (("nocreds", 401), ("tampered", 401),
                             ("expired", 401), ("wrong-repo", 403),
                             ("unknown", 404), ("unknown-noauth", 404),
                             ("healthz", 200)):
            resp = self.http[what]
            self.assertEqual(resp.status, status, (what, resp))
            rid = resp.header("x-request-id") or ""
            self.assertTrue(re.match(r"^[0-9a-f]{32}$", rid), (what, resp))
            if what == "healthz":
                self.assertNotIn(rid, ids)
            else:
                self.assertIn(rid, ids, what)
                self.assertEqual(ids[rid]["status"], status, ids[rid])

    # -- the log as a whole

    def test_every_record_well_formed(self):
        recs = self.records()
        self.assertGreater(len(recs), 25)
        for r in recs:
            self.assertWellFormed(r)
        ids = [r["request_id"] for r in recs]
        self.assertEqual(len(ids), len(set(ids)), "request_id reused")

    def test_verify_cli(self):
        settle(self.gg.audit_log)
        data = read_bytes(self.gg.audit_log)
        recs, last = check_chain(data)
        n, h_last = self.assertVerifies(self.gg.audit_log, records=len(recs))
        self.assertEqual(h_last, last)

    def test_python_chain(self):
        data = read_bytes(self.gg.audit_log)
        recs, last = check_chain(data)
        self.assertEqual(recs[0]["prev"], GENESIS)
        self.assertEqual(recs[-1]["hash"], last)
        # and a one-byte edit is caught by the same check
        edited = data.replace(b'"status":403', b'"status":200', 1)
        self.assertNotEqual(edited, data)
        with self.assertRaises(AssertionError):
            check_chain(edited)

    def test_cli_filters(self):
        log = self.gg.audit_log
        settle(log)
        for _ in range(3):  # retry if a late record slipped in meanwhile
            data = read_bytes(log)
            lines = data.decode().splitlines()
            recs = [json.loads(l) for l in lines]
            outs = {}
            cases = {
                ("--decision", "deny"): lambda r: r["decision"] == "deny",
                ("--decision", "allow"): lambda r: r["decision"] == "allow",
                ("--repo", "acme/other"): lambda r: r["repo"] == "acme/other",
                ("--repo", "ACME/Widgets"): lambda r: r["repo"] == REPO,
                ("--sub", "pusher"): lambda r: r["sub"] == "pusher",
                ("--sub", "forcer"): lambda r: r["sub"] == "forcer",
                ("--sub", "clone-v2"): lambda r: r["sub"] == "clone-v2",
                ("--sub", "pusher", "--decision", "deny"):
                    lambda r: r["sub"] == "pusher" and r["decision"] == "deny",
                ("--sub", "nobody"): lambda r: False,
                (): lambda r: True,
            }
            for args in cases:
                outs[args] = audit_cli("--log", log, "--json", *args)
            table = audit_cli("--log", log, "--sub", "pusher")
            if read_bytes(log) == data:
                break
        for args, pred in cases.items():
            rc, out, err = outs[args]
            self.assertEqual((rc, err), (0, ""), args)
            want = "".join(l + "\n" for l, r in zip(lines, recs) if pred(r))
            self.assertEqual(out, want, args)
        self.assertEqual(len(outs[("--repo", "acme/other")][1].splitlines()),
                         1)
        self.assertEqual(len(outs[("--sub", "pusher", "--decision", "deny")]
                             [1].splitlines()), 3)
        rc, out, err = table
        self.assertEqual((rc, err), (0, ""))
        rows = out.splitlines()
        self.assertEqual(rows[0].split(), ["TIME", "SUB", "REPO", "SERVICE",
                                           "DECISION", "REFS", "REASON"])
        self.assertEqual(len(rows) - 1,
                         sum(1 for r in recs if r["sub"] == "pusher"))
        self.assertTrue(all("pusher" in row for row in rows[1:]))
        self.assertTrue(any(BRANCH_REFUSED in row for row in rows[1:]))

    def test_no_secrets_in_log_or_stderr(self):
        settle(self.gg.audit_log)
        secret = self.up.secret
        texts = {"audit log": self.gg.audit_text(),
                 "stderr": self.gg.stderr_text()}
        try:
            with open(self.gg.stdout_path, errors="replace") as f:
                texts["stdout"] = f.read()
        except OSError:
            pass
        self.assertIn(self.jti["pusher"], texts["audit log"])  # search works
        needles = {
            "the upstream secret": secret,
            "the upstream Basic credential": base64.b64encode(
                ("x-access-token:" + secret).encode()).decode(),
        }
        tokens = list(self.gg.minted) + [self.tampered]
        self.assertGreaterEqual(len(tokens), 10)
        for i, tok in enumerate(tokens):
            body = tok.split(".")[2]
            needles["token %d" % i] = tok
            needles["token %d's signed part" % i] = body
            # the last 64 decoded bytes are the Ed25519 signature
            needles["token %d's signature" % i] = body[-80:]
            needles["token %d in Basic form" % i] = h.basic_auth(
                "agent", tok).split()[1]
        for where, text in texts.items():
            for what, needle in needles.items():
                at = text.find(needle)
                if at >= 0:
                    self.fail("%s found in %s (line %d)" % (
                        what, where, text[:at].count("\n") + 1))
            low = text.lower()
            for word in ("authorization", "bearer ", "basic ",
                         "v4.public."):
                self.assertNotIn(word, low, "%r in %s" % (word, where))

    def test_refusal_on_disk_before_client_sees_it(self):
        # a refused push: read the file the moment git exits, no waiting
        rc, _, err = h.git("push", self.gg.repo_url(REPO, self.tok["flush"]),
                           "HEAD:refs/heads/main", cwd=self.work)
        data = read_bytes(self.gg.audit_log)
        self.assertNotEqual(rc, 0, err)
        self.assertIn("remote rejected", err)
        recs = parse_records(data)
        found = [r for r in recs if r["sub"] == "flush" and r["refs"]]
        self.assertEqual(len(found), 1, "refusal not in the log when git "
                         "exited")
        self.assertEqual((found[0]["decision"], found[0]["refs"][0]["ref"],
                          found[0]["refs"][0]["result"]),
                         ("deny", "refs/heads/main", BRANCH_REFUSED))
        # a 403: on disk when the response arrives
        r = self.gg.request("GET", info_refs("acme/other"),
                            auth(self.tok["flush"]))
        data = read_bytes(self.gg.audit_log)
        self.assertEqual(r.status, 403)
        recs = parse_records(data)
        found = [x for x in recs if x["sub"] == "flush" and
                 x["status"] == 403]
        self.assertEqual(len(found), 1, "403 not in the log when the "
                         "response arrived")
        self.assertEqual(found[0]["repo"], "acme/other", found[0])


# --------------------------------------------------------------------------


CURL_REQUEST_RE = re.compile(r"=> Send header: (GET|POST) /")


class ConcurrencyTest(AuditBase):
    """32 clients at once; every HTTP request they make is one record."""

    N = 32
    TMP_PREFIX = "gg-test-audit-conc-"

    @classmethod
    def kind(cls, i):
        return ("clone", "ls-remote", "push")[i % 3]

    @classmethod
    def _run(cls):
        p = cls.path
        up = cls.up = h.Upstream().start()
        cls.head = up.create_repo("acme/conc", commits=3)
        gg = cls.gg = h.Gitgate(up.url, up.secret).start()
        fetch_tok = gg.mint(repo="acme/conc", sub="conc-fetch")
        push_tok = gg.mint(repo="acme/conc", push=["agent/*"],
                           sub="conc-push")
        url_fetch = gg.repo_url("acme/conc", fetch_tok)
        url_push = gg.repo_url("acme/conc", push_tok)
        # push worktrees straight from upstream (not through gitgate)
        for i in range(cls.N):
            if cls.kind(i) == "push":
                h.git("clone", "-q", up.repo_url("acme/conc"), p("w%d" % i),
                      check=True)
                h.git("remote", "remove", "origin", cwd=p("w%d" % i),
                      check=True)
                h.commit_file(p("w%d" % i), "f%d.txt" % i, "%d\n" % i)
        settle(gg.audit_log)
        cls.before = read_bytes(gg.audit_log)
        barrier = threading.Barrier(cls.N)
        cls.results = [None] * cls.N

        def one(i):
            trace = p("trace%d" % i)
            env = {"GIT_TRACE_CURL": trace, "GIT_TRACE_CURL_NO_DATA": "1"}
            kind = cls.kind(i)
            barrier.wait(60)
            if kind == "clone":
                res = h.git("-c", "protocol.version=%d" % (2 * (i % 2)),
                            "clone", "-q", url_fetch, p("c%d" % i), env=env,
                            timeout=300)
            elif kind == "ls-remote":
                res = h.git("ls-remote", url_fetch, env=env, timeout=300)
            else:
                res = h.git("push", url_push, "HEAD:refs/heads/main",
                            cwd=p("w%d" % i), env=env, timeout=300)
            with open(trace, errors="replace") as f:
                n = len(CURL_REQUEST_RE.findall(f.read()))
            cls.results[i] = (kind, res, n)

        threads = [threading.Thread(target=one, args=(i,))
                   for i in range(cls.N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        cls.requests = sum(r[2] for r in cls.results if r)
        wait_records(gg.audit_log, cls.before.count(b"\n") + cls.requests)
        settle(gg.audit_log, quiet=0.8)
        cls.after = read_bytes(gg.audit_log)

    def new_records(self):
        return parse_records(self.after[len(self.before):])

    def test_clients_succeeded(self):
        for i, r in enumerate(self.results):
            self.assertIsNotNone(r, "client %d did not finish" % i)
            kind, (rc, out, err), n = r
            if kind == "push":
                self.assertEqual(rc, 1, err)
                self.assertIn("[remote rejected] HEAD -> main", err)
            else:
                self.assertEqual(rc, 0, "%s %d: %s" % (kind, i, err))
            self.assertGreaterEqual(n, 2, "client %d: no requests traced"
                                    % i)

    def test_one_record_per_request(self):
        self.assertTrue(self.after.startswith(self.before))
        self.assertGreaterEqual(self.requests, 3 * self.N)
        self.assertEqual(len(self.new_records()), self.requests)

    def test_chain_whole_lines(self):
        recs, last = check_chain(self.after, where="concurrent log")
        self.assertEqual(len(recs), self.after.count(b"\n"))
        for r in recs:
            self.assertWellFormed(r)
        ids = [r["request_id"] for r in recs]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertVerifies(self.gg.audit_log, records=len(recs))

    def test_records_match_clients(self):
        recs = self.new_records()
        pushes = sum(1 for r in self.results if r and r[0] == "push")
        refused = [r for r in recs if r["service"] == "git-receive-pack" and
                   r["refs"]]
        self.assertEqual(len(refused), pushes)
        for r in refused:
            self.assertEqual((r["sub"], r["decision"], r["refs"][0]["ref"],
                              r["refs"][0]["result"]),
                             ("conc-push", "deny", "refs/heads/main",
                              BRANCH_REFUSED), r)
        for r in recs:
            self.assertIn(r["sub"], (None, "conc-fetch", "conc-push"), r)
            if r["sub"] is None:
                self.assertEqual((r["status"], r["reason"]), (401, NO_AUTH))
            elif r["sub"] == "conc-fetch":
                self.assertEqual((r["decision"], r["status"]),
                                 ("allow", 200), r)


# --------------------------------------------------------------------------


class RestartTest(AuditBase):
    """SIGTERM, start again on the same files: one continuous chain."""

    TMP_PREFIX = "gg-test-audit-restart-"

    @classmethod
    def _run(cls):
        p = cls.path
        up = cls.up = h.Upstream().start()
        up.create_repo("acme/rs", commits=2)
        gg = cls.gg = h.Gitgate(up.url, up.secret, root=p("gg"))
        gg.start()
        tok = gg.mint(repo="acme/rs", sub="restart")
        cls.clone1 = h.git("clone", gg.repo_url("acme/rs", tok),
                           p("c1"))
        settle(gg.audit_log)
        cls.stop_rc = gg.stop()
        cls.before = read_bytes(gg.audit_log)
        gg.start()
        cls.clone2 = h.git("clone", gg.repo_url("acme/rs", tok),
                           p("c2"))
        settle(gg.audit_log)
        cls.after = read_bytes(gg.audit_log)

    def test_clean_stop(self):
        self.assertEqual(self.stop_rc, 0, self.gg.stderr_text()[-2000:])
        self.assertGitOk(self.clone1, "clone before restart")
        self.assertGitOk(self.clone2, "clone after restart")

    def test_chain_continues(self):
        old, last = check_chain(self.before)
        self.assertGreaterEqual(len(old), 2)
        self.assertTrue(self.after.startswith(self.before),
                        "restart changed the existing lines")
        new, _ = check_chain(self.after[len(self.before):], prev=last,
                             where="after restart")
        self.assertGreaterEqual(len(new), 2)
        self.assertEqual(new[0]["prev"], last)
        self.assertTrue(any(r["sub"] == "restart" and
                            r["decision"] == "allow" for r in new))
        self.assertVerifies(self.gg.audit_log, records=len(old) + len(new))


# --------------------------------------------------------------------------


class RotationTest(AuditBase):
    """mv audit.jsonl audit.jsonl.1; SIGHUP: the new file continues."""

    TMP_PREFIX = "gg-test-audit-rotate-"

    @classmethod
    def _run(cls):
        p = cls.path
        up = cls.up = h.Upstream().start()
        up.create_repo("acme/rot", commits=2)
        gg = cls.gg = h.Gitgate(up.url, up.secret).start()
        tok = gg.mint(repo="acme/rot", sub="rotate")
        cls.clone1 = h.git("clone", gg.repo_url("acme/rot", tok),
                           p("c1"))
        settle(gg.audit_log)
        cls.rotated = gg.audit_log + ".1"
        os.rename(gg.audit_log, cls.rotated)
        cls.rotated_at_rename = read_bytes(cls.rotated)
        gg.reload()
        cls.reopened = h.wait_until(
            lambda: "audit log reopened" in gg.stderr_text(), 10)
        cls.clone2 = h.git("clone", gg.repo_url("acme/rot", tok),
                           p("c2"))
        settle(gg.audit_log)

    def test_reopened(self):
        self.assertTrue(self.reopened, self.gg.stderr_text()[-2000:])
        self.assertGitOk(self.clone1, "clone before rotation")
        self.assertGitOk(self.clone2, "clone after rotation")
        self.assertTrue(os.path.isfile(self.gg.audit_log))
        # nothing went to the old file after the reopen
        self.assertEqual(read_bytes(self.rotated), self.rotated_at_rename)

    def test_new_file_continues_chain(self):
        old, last = check_chain(read_bytes(self.rotated), where="audit.jsonl.1")
        new, _ = check_chain(read_bytes(self.gg.audit_log), prev=last,
                             where="audit.jsonl")
        self.assertGreaterEqual(len(new), 2)
        self.assertEqual(new[0]["prev"], last)
        self.assertTrue(any(r["sub"] == "rotate" and r["decision"] == "allow"
                            for r in new))
        self.assertVerifies(self.rotated, self.gg.audit_log,
                            records=len(old) + len(new))

    def test_wrong_order_fails(self):
        self.assertVerifyBreaks(self.gg.audit_log, self.rotated)


# --------------------------------------------------------------------------


class FollowTest(AuditBase):
    """audit.jsonl deleted or renamed away with no SIGHUP: gitgate notices
    (before each line, and every 200 ms when idle) and carries on in a new
    file at the path, continuing the chain; nothing lost, nothing twice."""

    TMP_PREFIX = "gg-test-audit-follow-"

    @classmethod
    def _run(cls):
        up = cls.up = h.Upstream().start()
        up.create_repo("acme/follow", commits=1)
        gg = cls.gg = h.Gitgate(up.url, up.secret).start()
        ok = auth(gg.mint(repo="acme/follow", sub="follow"))
        log = gg.audit_log
        cls.r0 = gg.request("GET", info_refs("acme/follow"), ok)
        settle(log)
        cls.first = read_bytes(log)
        # A: deleted, then a fetch at once
        os.remove(log)
        cls.r_del = gg.request("GET", info_refs("acme/follow"), ok)
        cls.after_delete = wait_for_id(log, cls.r_del.header("x-request-id"))
        # B: renamed away, then a refusal at once
        cls.rotated = [log + ".1", log + ".2"]
        os.rename(log, cls.rotated[0])
        cls.r_ren = gg.request("GET", "/nope")
        cls.after_rename = wait_for_id(log, cls.r_ren.header("x-request-id"))
        # C: renamed away while idle: the periodic check makes the file
        os.rename(log, cls.rotated[1])
        cls.idle_created = h.wait_until(lambda: os.path.exists(log), 1.0)
        cls.idle_size = os.path.getsize(log) if cls.idle_created else None
        cls.r_idle = gg.request("GET", info_refs("acme/follow"), ok)
        wait_for_id(log, cls.r_idle.header("x-request-id"))
        settle(log)
        cls.stderr = gg.stderr_text()

    def test_deleted(self):
        self.assertEqual(self.r_del.status, 200, self.r_del)
        self.assertIsNotNone(self.after_delete, "the fetch's line is not "
                             "in a new file at the path within 1 s")
        _, last = check_chain(self.first, where="deleted file")
        recs, _ = check_chain(self.after_delete, prev=last,
                              where="file after the deletion")
        self.assertEqual([r["request_id"] for r in recs],
                         [self.r_del.header("x-request-id")])
        self.assertEqual((recs[0]["decision"], recs[0]["status"]),
                         ("allow", 200), recs[0])
        # on its own the new file verifies, with the documented note
        rc, out, err = audit_cli("verify", "--log", self.rotated[0])
        self.assertEqual(rc, 0, out + err)
        self.assertIn("ok: 1 records, chain intact", out)
        self.assertIn("continues from previous file (first prev %s)" % last,
                      err)

    def test_renamed(self):
        self.assertEqual(self.r_ren.status, 404, self.r_ren)
        self.assertIsNotNone(self.after_rename, "the 404's line is not in "
                             "a new file at the path within 1 s")
        # nothing more went to the renamed file
        self.assertEqual(read_bytes(self.rotated[0]), self.after_delete)
        _, last = check_chain(self.after_delete, prev=None)
        recs, _ = check_chain(self.after_rename, prev=last,
                              where="file after the rename")
        self.assertEqual([r["request_id"] for r in recs],
                         [self.r_ren.header("x-request-id")])

    def test_renamed_while_idle(self):
        self.assertTrue(self.idle_created, "no new file within 1 s")
        self.assertEqual(self.idle_size, 0)
        self.assertEqual(read_bytes(self.rotated[1]), self.after_rename)

    def test_chain_across_files(self):
        self.assertVerifies(self.rotated[0], self.rotated[1],
                            self.gg.audit_log, records=3)
        self.assertVerifyBreaks(self.rotated[1], self.rotated[0])

    def test_stderr_says_why_once_each(self):
        log = self.gg.audit_log
        self.assertEqual(self.stderr.count(
            "audit_log %s was deleted: reopened it" % log), 1, self.stderr)
        self.assertEqual(self.stderr.count(
            "audit_log %s was renamed away: reopened it" % log), 2,
            self.stderr)
        self.assertNotIn("[warn]", self.stderr)


# --------------------------------------------------------------------------


class FullDiskTest(AuditBase):
    """The audit log on a 64 KiB tmpfs that we fill up (root can write to
    a chmod 0 file, so a full file system is the way to fail a write)."""

    TMP_PREFIX = "gg-test-audit-full-"
    skip_reason = None
    mounted = False

    @classmethod
    def _mount(cls):
        """Mount the tmpfs at cls.mnt; False (with skip_reason) where we
        may not."""
        cls.mnt = os.path.join(cls.tmp, "tmpfs")
        os.makedirs(cls.mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k",
                            "tmpfs", cls.mnt], capture_output=True, text=True)
        if p.returncode != 0:
            cls.skip_reason = ("cannot mount a tmpfs to fill up (needs "
                               "root / CAP_SYS_ADMIN): %s" % p.stderr.strip())
            return False
        cls.mounted = True
        return True

    @classmethod
    def _release(cls):
        if cls.mounted:
            if subprocess.run(["umount", cls.mnt]).returncode != 0:
                subprocess.run(["umount", "-l", cls.mnt])

    def setUp(self):
        if self.skip_reason:
            self.skipTest(self.skip_reason)
        super().setUp()

    @classmethod
    def fill(cls):
        """Fill the tmpfs; returns the filler's path."""
        path = os.path.join(cls.mnt, "filler")
        chunk = b"\0" * 4096
        with open(path, "wb", buffering=0) as f:
            for size in (4096, 512, 1):
                try:
                    while True:
                        f.write(chunk[:size])
                except OSError:
                    pass
        return path

    @classmethod
    def _run(cls):
        if not cls._mount():
            return
        p = cls.path
        up = cls.up = h.Upstream().start()
        up.create_repo("acme/full", commits=2)
        log = os.path.join(cls.mnt, "audit.jsonl")
        gg = cls.gg = h.Gitgate(up.url, up.secret, root=p("gg"),
                                extra_config={"audit_log": log})
        gg.audit_log = log
        gg.start()
        cls.tok = gg.mint(repo="acme/full", sub="full")
        ok = auth(cls.tok)
        cls.clone_ok = h.git("clone", gg.repo_url("acme/full", cls.tok),
                             p("c0"))
        settle(log)
        cls.filler = cls.fill()
        # keep fetching until a record no longer fits: the first failed
        # append makes every following request a 503
        cls.served = []  # X-Request-Id of every 200
        cls.first_503 = None
        # Room for each fetch's line is set aside before it is answered,
        # so the first fetch that finds none is a clean 503: none is broken
        # off at its end (which git may even take for a success).
        cls.broken = 0
        for _ in range(80):
            try:
                r = gg.request("GET", info_refs("acme/full"), ok)
            except http.client.IncompleteRead:
                cls.broken += 1
                continue
            if r.status == 200:
                cls.served.append(r.header("x-request-id"))
            else:
                cls.first_503 = r
                break
            time.sleep(0.05)
        cls.full = {
            "again": gg.request("GET", info_refs("acme/full"), ok),
            "nocreds": gg.request("GET", info_refs("acme/full")),
            "healthz": gg.request("GET", "/healthz"),
        }
        cls.clone_full = h.git("clone", gg.repo_url("acme/full", cls.tok),
                               p("c1"))
        cls.stderr_full = gg.stderr_text()
        cls.log_full = read_bytes(log)
        cls.verify_full = audit_cli("verify", "--log", log)
        # free the space: the next append that succeeds restores service
        os.remove(cls.filler)
        # gitgate probes the log every 200 ms while it is unhealthy, so it
        # recovers without traffic (a balancer that stopped sending requests
        # on 503 must see /healthz come back by itself).
        cls.healthz_freed = wait_healthy(gg)
        cls.recovery = []
        for _ in range(5):
            r = gg.request("GET", info_refs("acme/full"), ok)
            cls.recovery.append(r)
            if r.status == 200:
                cls.served.append(r.header("x-request-id"))
                break
        cls.healthz_after = gg.request("GET", "/healthz")
        cls.clone_after = h.git("clone", gg.repo_url("acme/full", cls.tok),
                                p("c2"))
        settle(log)
        cls.log_after = read_bytes(log)

    def test_503_while_log_cannot_be_written(self):
        self.assertGitOk(self.clone_ok, "clone before the disk filled")
        r = self.first_503
        self.assertIsNotNone(r, "80 fetches with a full audit file system "
                             "all answered 200")
        for what, resp in (("first", r), ("again", self.full["again"]),
                           ("no credentials", self.full["nocreds"]),
                           ("healthz", self.full["healthz"])):
            self.assertEqual(resp.status, 503, (what, resp))
            self.assertTrue((resp.header("content-type") or "").startswith(
                "text/plain"), (what, resp))
            self.assertIn(UNAVAILABLE, resp.text, (what, resp))
            self.assertTrue(re.match(r"^[0-9a-f]{32}$",
                                     resp.header("x-request-id") or ""),
                            (what, resp))

    def test_clone_fails_while_full(self):
        rc, out, err = self.clone_full
        self.assertEqual(rc, 128, out + err)
        self.assertIn("503", err)

    def test_stderr_says_why(self):
        self.assertIn("No space left on device", self.stderr_full)
        self.assertIn(os.path.join(self.mnt, "audit.jsonl"), self.stderr_full)

    def test_log_whole_while_full(self):
        recs, _ = check_chain(self.log_full, where="full log")
        rc, out, err = self.verify_full
        self.assertEqual(rc, 0, out + err)
        self.assertIn("ok: %d records" % len(recs), out)

    def test_no_fetch_broken_off(self):
        """Every fetch got a whole 200 or a clean 503, none a transfer cut
        off because its line did not fit once the data had gone out."""
        self.assertEqual(self.broken, 0, self.broken)
        self.assertGreater(len(self.served), 0)

    def test_recovers_without_sighup_or_traffic(self):
        """The periodic probe restores health once space is back: /healthz
        turns 200 on its own and the next request is served."""
        self.assertEqual(self.healthz_freed.status, 200, self.healthz_freed)
        statuses = [r.status for r in self.recovery]
        self.assertEqual(statuses, [200], statuses)
        self.assertEqual(self.healthz_after.status, 200)
        self.assertIn("audit log writable again", self.gg.stderr_text())
        self.assertGitOk(self.clone_after, "clone after space came back")
        recs, _ = check_chain(self.log_after, where="log after recovery")
        self.assertIn(self.recovery[-1].header("x-request-id"),
                      {r["request_id"] for r in recs})
        self.assertVerifies(os.path.join(self.mnt, "audit.jsonl"),
                            records=len(recs))

    def test_every_served_fetch_audited(self):
        """Every fetch the client got must have its record ("every fetch
        and push ... appended and flushed before the client sees the
        outcome"): a served 200 whose record could not be written is an
        unaudited fetch."""
        logged = {r["request_id"] for r in check_chain(self.log_after)[0]}
        missing = [i for i in self.served if i not in logged]
        self.assertEqual(missing, [], "%d of %d served fetches have no "
                         "audit record" % (len(missing), len(self.served)))


# --------------------------------------------------------------------------


class CutOffFetchTest(AuditBase):
    """A fetch whose line cannot be written after its pack went out. No
    reservation foresees a file size limit (EFBIG), so the transfer is
    broken off: gitgate must have kept the end of the response back, or git
    takes the pack and exits 0 with no audit line for it (it only warns
    "RPC failed; curl 18"). SIGXFSZ is ignored through a wrapper, as a
    limit would otherwise kill gitgate."""

    TMP_PREFIX = "gg-test-audit-cut-"

    @classmethod
    def set_fsize(cls, limit):
        resource.prlimit(cls.gg.proc.pid, resource.RLIMIT_FSIZE,
                         (limit, resource.RLIM_INFINITY))

    @classmethod
    def _run(cls):
        p = cls.path
        wrapper = p("gitgate-noxfsz")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\ntrap '' XFSZ\nexec %s \"$@\"\n" %
                    shlex.quote(h.gitgate_binary()))
        os.chmod(wrapper, 0o755)
        up = cls.up = h.Upstream().start()
        up.create_repo("acme/cut", commits=2)
        gg = cls.gg = h.Gitgate(up.url, up.secret, root=p("gg"),
                                binary=wrapper).start()
        tok = gg.mint(repo="acme/cut", sub="cut")
        # credentials up front: no 401 round, so a clone is three lines
        # (info/refs, ls-refs, the fetch with the pack)
        git = ["-c", "protocol.version=2", "-c",
               "http.extraHeader=Authorization: " +
               h.basic_auth("agent", tok)]
        url = gg.url + "/acme/cut.git"
        log = gg.audit_log
        cls.clone1 = h.git(*git, "clone", url, p("c1"))
        settle(log)
        cls.before = read_bytes(log)
        cls.lens = [len(l) + 1 for l in cls.before.splitlines()]
        # the same clone again: its first lines fit, the fetch's does not
        cls.set_fsize(len(cls.before) + sum(cls.lens[:-1]) +
                      cls.lens[-1] // 2)
        cls.clone2 = h.git(*git, "clone", url, p("c2"))
        settle(log)
        cls.cut = read_bytes(log)
        cls.set_fsize(resource.RLIM_INFINITY)
        cls.healthz = wait_healthy(gg)
        cls.clone3 = h.git(*git, "clone", url, p("c3"))
        settle(log)
        cls.after = read_bytes(log)
        cls.stderr = gg.stderr_text()

    def test_setup(self):
        self.assertGitOk(self.clone1, "first clone")
        self.assertEqual(len(self.lens), 3, self.before)

    def test_git_fails(self):
        rc, out, err = self.clone2
        self.assertEqual(rc, 128, "a clone whose fetch has no audit line "
                         "exited %d:\n%s%s" % (rc, out, err))
        self.assertIn("File too large", self.stderr)

    def test_log_whole_and_no_fetch_line(self):
        recs, _ = check_chain(self.cut, where="log after the cut")
        new = recs[len(self.lens):]
        self.assertEqual([(r["status"], r["bytes_in"] > 0) for r in new],
                         [(200, False), (200, True)], new)

    def test_recovers(self):
        self.assertEqual(self.healthz.status, 200, self.healthz)
        self.assertGitOk(self.clone3, "clone once the limit is gone")
        recs, _ = check_chain(self.after, where="log after recovery")
        self.assertVerifies(self.gg.audit_log, records=len(recs))
        self.assertEqual(len(recs), 2 * len(self.lens) + 2)


if __name__ == "__main__":
    h.run_suite()

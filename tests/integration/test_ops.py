#!/usr/bin/env python3
"""Integration suite for observability (issue #18): the admin listener
(`admin_listen`: /metrics, /healthz, /readyz) and `log_format: json`, with
the real git client through a real `gitgate serve` to a real smart-HTTP
upstream (see harness.py).

    AdminTest     probes answer on the admin port and never on the git
                  one; after clones, a refused push, bad credentials and
                  an upstream outage, /metrics counts each (cross-checked
                  against the audit log line for line), carries no
                  repository or sub, and passes `promtool check metrics`;
                  /readyz turns 503 naming the audit log while it cannot
                  be written, and 200 again once it can.
    JsonLogTest   with "log_format": "json" every stderr line is one JSON
                  object with time, level and msg.
    ConfigTest    admin_listen equal to listen, a malformed admin_listen
                  and an unknown log_format are refused at start, naming
                  the key.

Run: GITGATE=build/gitgate python3 tests/integration/test_ops.py
(meson test registers it as integration-test_ops). The last line is
`N passed, N failed[, N skipped]`; the exit code is non-zero on failure.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

REPO = "acme/widgets"
SUB = "ops-suite-agent"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def parse_metrics(text):
    """{(name, frozenset of (label, value)): float} for every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a Prometheus sample: %r" % line)
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples, name, **labels):
    """Sum of name's samples whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items()
               if n == name and want <= set(ls))


class AdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = h.Upstream().start()
        cls.up.create_repo(REPO, commits=2)
        cls.admin_port = h.free_port()
        cls.gg = h.Gitgate(cls.up.url, cls.up.secret, extra_config={
            "admin_listen": "127.0.0.1:%d" % cls.admin_port}).start()
        cls.tmp = tempfile.mkdtemp(prefix="gg-ops-")

    @classmethod
    def tearDownClass(cls):
        cls.gg.stop()
        cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def admin(self, path, method="GET"):
        return h.http_request(self.admin_port, method, path, timeout=10)

    def scrape(self):
        r = self.admin("/metrics")
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(r.header("Content-Type").startswith(
            "text/plain; version=0.0.4"), r.header("Content-Type"))
        return r.text

    def clone(self, token):
        dest = tempfile.mkdtemp(dir=self.tmp)
        os.rmdir(dest)
        return h.git("clone", "-q", self.gg.repo_url(REPO, token), dest)

    def test_probes_on_admin_port_only(self):
        r = self.admin("/healthz")
        self.assertEqual((r.status, r.text), (200, "ok\n"))
        r = self.admin("/readyz")
        self.assertEqual((r.status, r.text), (200, "ready\n"))
        r = self.admin("/secrets")
        self.assertEqual(r.status, 404)
        r = self.admin("/metrics", method="POST")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "GET, HEAD")
        # The sandbox-facing listener serves git and /healthz, nothing
        # an operator's scraper reads.
        for path in ("/metrics", "/readyz"):
            r = self.gg.request("GET", path)
            self.assertEqual(r.status, 404, path)

    def test_metrics_count_what_the_audit_log_says(self):
        good = self.gg.mint(repos=[REPO], push=["agent/*"], sub=SUB)
        rc, _o, err = self.clone(good)
        self.assertEqual(rc, 0, err)
        # a push to a branch the token does not allow: refused in-band
        work = os.path.join(self.tmp, "push-work")
        h.git("clone", "-q", self.gg.repo_url(REPO, good), work, check=True)
        h.commit_file(work, "ops.txt", "ops\n")
        rc, _o, err = h.git("push", "origin", "HEAD:refs/heads/main",
                            cwd=work)
        self.assertNotEqual(rc, 0)
        self.assertIn("branch not allowed by token", err)
        # a force-push to an allowed branch: judging it reads history
        # the pack does not carry, so gitgate fetches its mirror
        rc, _o, err = h.git("push", "origin", "HEAD:refs/heads/agent/ops",
                            cwd=work)
        self.assertEqual(rc, 0, err)
        h.git("reset", "-q", "--hard", "HEAD~1", cwd=work, check=True)
        h.commit_file(work, "ops2.txt", "rewritten\n")
        rc, _o, err = h.git("push", "-f", "origin",
                            "HEAD:refs/heads/agent/ops", cwd=work)
        self.assertNotEqual(rc, 0)
        self.assertIn("force", err)
        # a credential that is not a token
        r = self.gg.request("GET", "/%s.git/info/refs?service="
                            "git-upload-pack" % REPO,
                            headers={"Authorization": "Bearer nonsense"})
        self.assertEqual(r.status, 401)
        # upstream down: the clone fails 502, counted as a connect error
        self.up.down()
        try:
            rc, _o, err = self.clone(good)
            self.assertNotEqual(rc, 0)
        finally:
            self.up.up()

        text = self.scrape()
        s = parse_metrics(text)
        records = self.gg.audit_records()
        # every audited decision is counted once, and only those
        self.assertEqual(total(s, "gitgate_requests_total"), len(records))
        self.assertEqual(value(s, "gitgate_audit_append_seconds_count"),
                         len(records))
        self.assertEqual(value(s, "gitgate_audit_append_failures_total"), 0)
        allowed_fetches = sum(1 for r in records
                              if r.get("service") == "git-upload-pack"
                              and r["decision"] == "allow"
                              and r["status"] == 200)
        self.assertGreaterEqual(allowed_fetches, 2)
        self.assertEqual(value(s, "gitgate_requests_total",
                               service="git-upload-pack", decision="allow",
                               status="200"), allowed_fetches)
        self.assertGreaterEqual(value(s, "gitgate_requests_total",
                                      service="git-receive-pack",
                                      decision="allow", status="200"), 1)
        self.assertEqual(
            value(s, "gitgate_request_duration_seconds_count",
                  service="git-upload-pack"),
            total(s, "gitgate_requests_total", service="git-upload-pack"))
        sent = sum(r["bytes_out"] for r in records
                   if r.get("service") == "git-upload-pack")
        self.assertEqual(value(s, "gitgate_request_bytes_sent_total",
                               service="git-upload-pack"), sent)
        # git's first request carries no credential; "nonsense" is not a
        # token at all
        self.assertGreaterEqual(value(s, "gitgate_token_refusals_total",
                                      reason="missing"), 1)
        self.assertEqual(value(s, "gitgate_token_refusals_total",
                               reason="malformed"), 1)
        # the branch and the force-push, both the token's rules
        self.assertEqual(value(s, "gitgate_policy_refusals_total",
                               rule="token"), 2)
        self.assertGreaterEqual(value(s, "gitgate_upstream_errors_total",
                                      kind="connect"), 1)
        self.assertGreaterEqual(value(s, "gitgate_mirror_fetch_seconds_count"),
                                1)  # the push's check fetched the mirror
        self.assertEqual(value(s, "gitgate_requests_in_flight"), 0)
        info = [ls for (n, ls) in s if n == "gitgate_build_info"]
        self.assertEqual(len(info), 1)
        self.assertIn(("version", "0.1.0"), info[0])
        # no label names a repository, a subject or a token
        for secret_ish in ("acme", "widgets", SUB, good[:24]):
            self.assertNotIn(secret_ish, text)

    def test_promtool_accepts_a_real_scrape(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (Debian package "
                          "prometheus; .ci/run installs it)")
        tok = self.gg.mint(repos=[REPO])
        self.assertEqual(self.clone(tok)[0], 0)
        p = subprocess.run([promtool, "check", "metrics"],
                           input=self.scrape(), capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.strip() + p.stderr.strip(), "")

    def test_readyz_names_an_unwritable_audit_log(self):
        tok = self.gg.mint(repos=[REPO])
        log = self.gg.audit_log
        # Delete the open log and put a directory at its path: gitgate
        # notices the unlinked file and cannot open a new one there.
        os.unlink(log)
        os.mkdir(log)
        try:
            # not ready before any request was refused for it: the
            # periodic check notices (a balancer moves clients away first)
            ok = h.wait_until(lambda: self.admin("/readyz").status == 503,
                              5)
            self.assertTrue(ok, self.gg.stderr_text()[-2000:])
            r = self.admin("/readyz")
            self.assertIn("audit log: not writable\n", r.text)
            rc, _o, err = self.clone(tok)
            self.assertNotEqual(rc, 0)
            time.sleep(0.5)  # several probes: it stays not ready
            self.assertEqual(self.admin("/readyz").status, 503)
            # the process still answers
            self.assertEqual(self.admin("/healthz").status, 200)
        finally:
            os.rmdir(log)
        ok = h.wait_until(lambda: self.admin("/readyz").status == 200, 15)
        self.assertTrue(ok, self.admin("/readyz").text)
        self.assertEqual(self.clone(tok)[0], 0)


class JsonLogTest(unittest.TestCase):
    def test_every_line_is_a_json_object(self):
        with h.Upstream() as up:
            up.create_repo(REPO, commits=1)
            gg = h.Gitgate(up.url, up.secret, keep=True,
                           extra_config={"log_format": "json"}).start()
            try:
                r = gg.request("GET", "/%s.git/info/refs?service="
                               "git-upload-pack" % REPO,
                               headers={"Authorization": "Bearer x\"y\\z"})
                self.assertEqual(r.status, 401)
            finally:
                gg.stop()
            text = gg.stderr_text()
            shutil.rmtree(gg.root, ignore_errors=True)
            lines = [l for l in text.splitlines() if l]
            self.assertGreater(len(lines), 2)
            msgs = []
            for line in lines:
                rec = json.loads(line)  # raises on a non-JSON line
                self.assertEqual(sorted(rec), ["level", "msg", "time"])
                self.assertIn(rec["level"], ("warn", "info", "debug"))
                self.assertRegex(rec["time"],
                                 r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
                msgs.append(rec["msg"])
            self.assertTrue(any(m.startswith("listening on 127.0.0.1:")
                                for m in msgs), msgs)


class ConfigTest(unittest.TestCase):
    def refused(self, extra):
        with h.Upstream() as up:
            gg = h.Gitgate(up.url, up.secret, extra_config=extra)
            with self.assertRaises(h.HarnessError) as cm:
                gg.start(timeout=5)
            return str(cm.exception)

    def test_admin_listen_must_not_be_the_git_listener(self):
        port = h.free_port()
        gg_port = {"listen": "127.0.0.1:%d" % port,
                   "admin_listen": "127.0.0.1:%d" % port}
        msg = self.refused(gg_port)
        self.assertIn("admin_listen: must differ from listen", msg)

    def test_malformed_admin_listen(self):
        msg = self.refused({"admin_listen": "127.0.0.1"})
        self.assertIn("admin_listen: missing port", msg)

    def test_unknown_log_format(self):
        msg = self.refused({"log_format": "yaml"})
        self.assertIn('log_format: must be "text" or "json"', msg)


if __name__ == "__main__":
    h.run_suite()

#!/usr/bin/env python3
"""gitgate doctor against real deployments: a good one (a running HTTPS
proxy, a real upstream) passes every step and exits 0; each broken part
gives exactly its own ✗ line, followed by a fix, and exit 1; the upstream
secret never appears in the output.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import harness as h  # noqa: E402
import ghapp_standin as gh  # noqa: E402

REPO = "acme/widgets"
POLICY = {"protected_refs": ["refs/heads/main"]}


class DoctorTest(unittest.TestCase):
    up = None
    startup_error = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-doctor-")
        try:
            cls.ca = h.TestCA(os.path.join(cls.tmp, "ca"))
            cls.up = h.Upstream()
            cls.up.start()
            cls.head = cls.up.create_repo(REPO, commits=2)
        except Exception as e:  # reported by every test, see setUp
            cls.startup_error = "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("\nSTARTUP FAILED: %s\n" % cls.startup_error)

    @classmethod
    def tearDownClass(cls):
        if cls.up:
            cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        if self.startup_error:
            self.fail("setup failed: " + self.startup_error[:600])
        self.proxies = []

    def tearDown(self):
        for g in self.proxies:
            g.stop()
            shutil.rmtree(g.root, ignore_errors=True)

    # -- a deployment

    def deployment(self, secret=None, cert_kw=None, extra=None):
        """A gitgate root with config, keys, secret, TLS pair and policy
        (not started). cert_kw: TestCA.issue arguments."""
        gg = h.Gitgate(self.up.url, secret or self.up.secret,
                       tls_ca=self.ca.ca_file, keep=True)
        self.proxies.append(gg)
        name = "c%d" % len(os.listdir(os.path.join(self.ca.root, "issued")))
        cert, key = self.ca.issue(name, **(cert_kw or {"days": 30}))
        shutil.copyfile(cert, os.path.join(gg.root, "cert.pem"))
        shutil.copyfile(key, os.path.join(gg.root, "key.pem"))
        os.chmod(os.path.join(gg.root, "key.pem"), 0o600)
        with open(os.path.join(gg.root, "policy.json"), "w") as f:
            json.dump(POLICY, f)
        gg.extra_config = dict({"tls": {"cert_file": "cert.pem",
                                        "key_file": "key.pem"},
                                "policy": "policy.json"}, **(extra or {}))
        gg.port = h.free_port()
        gg._prepare()
        gg.write_config()
        return gg

    def doctor(self, gg, *extra, repo=REPO):
        args = ["doctor", "--config", gg.config_path] + list(extra)
        if repo:
            args += ["--repo", repo]
        rc, out, err = h.run_gitgate(*args)
        self.assertNotIn(self.up.secret, out + err)
        if gg.secret:
            self.assertNotIn(gg.secret, out + err)
        return rc, out, err

    def assert_one_failure(self, out, rc, want, fix=None):
        """Exactly one ✗ line, matching want (a regex, whole line), with a
        fix line after it."""
        lines = out.splitlines()
        bad = [i for i, l in enumerate(lines) if l.startswith("\u2717 ")]
        self.assertEqual(len(bad), 1, out)
        self.assertRegex(lines[bad[0]], "^" + want + "$", out)
        self.assertTrue(lines[bad[0] + 1].startswith("    fix: "), out)
        if fix:
            self.assertRegex(lines[bad[0] + 1], "^    fix: " + fix, out)
        self.assertEqual(rc, 1, out)
        self.assertTrue(lines[-1] == "1 problem found", out)

    def path(self, gg, name):
        return os.path.join(gg.root, name)

    # -- good

    def test_good_deployment_all_pass(self):
        gg = self.deployment()
        gg.start()
        tok = gg.mint(repo=REPO)
        rc, _, err = h.git("-c", "http.sslCAInfo=" + self.ca.ca_file,
                           "ls-remote", gg.repo_url(REPO, tok))
        self.assertEqual(rc, 0, err)
        rc, out, err = self.doctor(gg)  # the proxy keeps running
        self.assertEqual(rc, 0, out + err)
        self.assertNotIn("\u2717", out)
        self.assertEqual(err, "")
        for want in (
                r"\u2713 config parses \(%s\)" % re.escape(gg.config_path),
                r"\u2713 file upstream\.token_file \(%s, private\)" %
                re.escape(gg.token_file),
                r"\u2713 file tls\.key_file \(.*key\.pem, private\)",
                r"\u2713 verify keys load \(1 key\)",
                r"\u2713 revocation list loads \(0 revoked\)",
                r"\u2713 site policy loads \(.*policy\.json\)",
                r"\u2713 audit log writable \(.*audit\.jsonl\)",
                r"\u2713 audit log verifies \(all [1-9]\d* lines?\)",
                r"\u2713 TLS certificate valid, key matches \(serial "
                r"[0-9a-f]+, expires 20",
                r"\u2713 upstream reachable \(%s\)" % re.escape(self.up.url),
                r"\u2713 upstream accepts the credential \(ls-remote "
                r"acme/widgets: HTTP 200\)"):
            self.assertRegex(out, "(?m)^" + want, out)
        # without --repo the credential is loaded, not tried
        rc, out, _ = self.doctor(gg, repo=None)
        self.assertEqual(rc, 0, out)
        self.assertIn("\u2713 upstream credential loads (static secret; "
                      "--repo OWNER/NAME also tries it upstream)", out)

    # -- each broken part

    def test_secret_file_0644(self):
        gg = self.deployment()
        os.chmod(gg.token_file, 0o644)
        rc, out, _ = self.doctor(gg)
        self.assert_one_failure(
            out, rc, re.escape("\u2717 file upstream.token_file: %s: "
                               "permissions 0644 are too open (want 0600)" %
                               gg.token_file),
            re.escape("chmod 600 " + gg.token_file))
        self.assertIn("- upstream credential: skipped (its file above)", out)

    def test_tls_key_0644(self):
        gg = self.deployment()
        key = self.path(gg, "key.pem")
        os.chmod(key, 0o644)
        rc, out, _ = self.doctor(gg)
        self.assert_one_failure(
            out, rc, re.escape("\u2717 file tls.key_file: %s: permissions "
                               "0644 are too open (want 0600)" % key),
            re.escape("chmod 600 " + key))
        self.assertIn("- TLS certificate: skipped (tls files above)", out)

    def test_missing_audit_dir(self):
        gg = self.deployment(extra={"audit_log": "logs/audit.jsonl"})
        rc, out, _ = self.doctor(gg)
        self.assert_one_failure(
            out, rc, re.escape("\u2717 audit log directory: %s: No such "
                               "file or directory" % self.path(gg, "logs")),
            re.escape("mkdir -p " + self.path(gg, "logs")))
        self.assertIn("- audit log writable: skipped", out)

    def test_bad_policy(self):
        gg = self.deployment()
        with open(self.path(gg, "policy.json"), "w") as f:
            f.write('{"protected_refs": "refs/heads/main", "colour": 1}\n')
        rc, out, _ = self.doctor(gg)
        self.assert_one_failure(
            out, rc, re.escape("\u2717 site policy loads: " +
                               self.path(gg, "policy.json")) + r":\d+:\d+: .*",
            re.escape("gitgate policy check " + self.path(gg, "policy.json")))

    def test_expired_certificate(self):
        gg = self.deployment(cert_kw={"start": "20250101000000Z",
                                      "end": "20250201000000Z"})
        cert = self.path(gg, "cert.pem")
        rc, out, _ = self.doctor(gg)
        self.assert_one_failure(
            out, rc, re.escape("\u2717 TLS certificate: tls.cert_file: %s: "
                               "certificate expired on 2025-02-01T00:00:00Z" % cert),
            re.escape("install a current certificate at " + cert))

    def test_certificate_expiring_soon(self):
        gg = self.deployment(cert_kw={"days": 5})
        cert = self.path(gg, "cert.pem")
        rc, out, _ = self.doctor(gg)
        self.assert_one_failure(
            out, rc, re.escape("\u2717 TLS certificate: %s: expires on " %
                               cert) + r"20\S+Z, in [45] day\(s\)",
            "renew it before then")

    def test_upstream_down(self):
        gg = self.deployment()
        self.up.down()
        try:
            rc, out, _ = self.doctor(gg)
        finally:
            self.up.up()
        self.assert_one_failure(
            out, rc, re.escape("\u2717 upstream reachable: %s: " %
                               self.up.url) + ".*",
            "check upstream.url")
        self.assertIn("- upstream accepts the credential: skipped "
                      "(upstream above)", out)

    def test_wrong_upstream_secret(self):
        wrong = "ghs_wrong_" + "ab" * 16
        gg = self.deployment(secret=wrong)
        rc, out, err = self.doctor(gg)
        self.assertNotIn(wrong, out + err)
        self.assert_one_failure(
            out, rc, re.escape("\u2717 upstream accepts the credential: the "
                               "upstream refused it for acme/widgets (HTTP "
                               "401)"),
            "put a valid secret with read access to acme/widgets")

    def test_unknown_repository(self):
        gg = self.deployment()
        rc, out, _ = self.doctor(gg, repo="acme/nope")
        self.assert_one_failure(
            out, rc, re.escape("\u2717 upstream accepts the credential: "
                               "acme/nope not found (HTTP 404)") + ".*")

    def test_tampered_audit_log(self):
        gg = self.deployment()
        gg.start()
        tok = gg.mint(repo=REPO)
        for _ in range(2):
            h.git("-c", "http.sslCAInfo=" + self.ca.ca_file, "ls-remote",
                  gg.repo_url(REPO, tok), check=True)
        gg.stop()
        with open(gg.audit_log) as f:
            lines = f.readlines()
        self.assertGreaterEqual(len(lines), 2)
        rec = json.loads(lines[0])
        rec["status"] = 299  # an edited record, its hash left as it was
        lines[0] = json.dumps(rec, separators=(",", ":")) + "\n"
        with open(gg.audit_log, "w") as f:
            f.writelines(lines)
        rc, out, _ = self.doctor(gg)
        self.assert_one_failure(
            out, rc, re.escape("\u2717 audit log verifies: %s: line 1: " %
                               gg.audit_log) + ".*",
            re.escape("gitgate audit verify --log " + gg.audit_log))

    def test_config_does_not_parse(self):
        gg = self.deployment()
        with open(gg.config_path, "a") as f:
            f.write("{")
        rc, out, _ = self.doctor(gg)
        self.assertEqual(rc, 1)
        self.assertRegex(out, r"^\u2717 config parses: %s:\d+:\d+: " %
                         re.escape(gg.config_path))

    def test_usage(self):
        rc, out, err = h.run_gitgate("doctor")
        self.assertEqual(rc, 2)
        self.assertTrue(err.startswith("gitgate: doctor: --config is "
                                       "required\nusage: gitgate doctor"))
        rc, out, err = h.run_gitgate("doctor", "--config", "x", "--repo",
                                     "noslash")
        self.assertEqual(rc, 2)
        self.assertIn("doctor: --repo: want OWNER/NAME", err)
        rc, out, _ = h.run_gitgate("doctor", "--help")
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("usage: gitgate doctor --config FILE "
                                       "[--repo OWNER/NAME]"))


class DoctorAppTest(unittest.TestCase):
    """The credential step with upstream.github_app: doctor mints an
    installation token through the (stand-in) API, as serve would, and
    tries it upstream."""
    up = app = None
    startup_error = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-doctor-app-")
        try:
            cls.up = h.Upstream(app_tokens=True).start()
            cls.up.create_repo(REPO, commits=1)
            cls.app = gh.GitHubAppStandin(upstream=cls.up).start()
            cls.app.install("acme", 42)
        except Exception as e:  # reported by every test, see setUp
            cls.startup_error = "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("\nSTARTUP FAILED: %s\n" % cls.startup_error)

    @classmethod
    def tearDownClass(cls):
        if cls.app:
            cls.app.stop()
        if cls.up:
            cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        if self.startup_error:
            self.fail("setup failed: " + self.startup_error[:600])
        root = tempfile.mkdtemp(dir=self.tmp)
        self.key = os.path.join(root, "app.pem")
        self.app.write_private_key(self.key, "pkcs1", 0o600)
        self.gg = h.Gitgate(self.up.url, None, root=root, github_app={
            "app_id": gh.APP_ID, "private_key_file": "app.pem",
            "api_url": self.app.url})
        self.gg.port = h.free_port()
        self.gg._prepare()
        self.gg.write_config()

    def tearDown(self):
        self.gg.stop()

    def doctor(self, repo):
        rc, out, err = h.run_gitgate("doctor", "--config",
                                     self.gg.config_path, "--repo", repo)
        self.assertNotIn("ghs_", out + err)  # no installation token
        return rc, out, err

    def test_app_credential_accepted(self):
        rc, out, err = self.doctor(REPO)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("\u2713 file upstream.github_app.private_key_file (%s, "
                      "private)" % self.key, out)
        self.assertIn("\u2713 upstream accepts the credential (ls-remote "
                      "acme/widgets: HTTP 200)", out)
        self.assertGreaterEqual(len(self.app.token_calls(repo=REPO)), 1)

    def test_app_not_installed(self):
        rc, out, _ = self.doctor("nobody/widgets")
        bad = [l for l in out.splitlines() if l.startswith("\u2717 ")]
        self.assertEqual(len(bad), 1, out)
        self.assertTrue(bad[0].startswith(
            "\u2717 upstream accepts the credential: "), out)
        self.assertIn("nobody", bad[0])
        self.assertEqual(rc, 1)

    def test_app_key_0644(self):
        os.chmod(self.key, 0o644)
        rc, out, _ = self.doctor(REPO)
        bad = [l for l in out.splitlines() if l.startswith("\u2717 ")]
        self.assertEqual(bad, ["\u2717 file upstream.github_app."
                               "private_key_file: %s: permissions 0644 are "
                               "too open (want 0600)" % self.key], out)
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    h.run_suite()

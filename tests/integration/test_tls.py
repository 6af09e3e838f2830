#!/usr/bin/env python3
"""HTTPS on the sandbox-facing listener ("tls" in the config): the real
git client clones and pushes through https:// trusting a CA made here with
openssl; plain HTTP, an untrusted certificate and TLS 1.1 are refused; a
certificate replaced on disk or reloaded on SIGHUP reaches new connections
while a transfer started before goes on; bad certificates stop the start
with the reason; plain HTTP beyond loopback warns.
"""

import hashlib
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

REPO = "acme/widgets"
BIG_REPO = "acme/big"


def tls_config(cert, key):
    return {"tls": {"cert_file": cert, "key_file": key}}


def replace_atomically(src, dst):
    """Copy src over dst by rename, as a certificate renewal tool does."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, os.stat(src).st_mode & 0o777)
    os.rename(tmp, dst)


class TlsTest(unittest.TestCase):
    up = gg = None
    startup_error = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-tls-")
        try:
            cls.ca = h.TestCA(os.path.join(cls.tmp, "ca"))
            cls.up = h.Upstream()
            cls.up.start()
            cls.head = cls.up.create_repo(REPO, commits=2)
            cls.big_head = cls.up.create_repo(BIG_REPO, commits=1)
            cls._add_big_commit()
            cls.big_head = cls.up.rev_parse(BIG_REPO, "main")
            # the served pair lives in the proxy's own directory, copied
            # there, so that tests can replace it
            cls.gg = h.Gitgate(cls.up.url, cls.up.secret,
                               tls_ca=cls.ca.ca_file)
            cert, key = cls.ca.issue("first", days=30)
            cls.cert = os.path.join(cls.gg.root, "tls-cert.pem")
            cls.key = os.path.join(cls.gg.root, "tls-key.pem")
            replace_atomically(cert, cls.cert)
            replace_atomically(key, cls.key)
            cls.gg.extra_config = tls_config("tls-cert.pem", "tls-key.pem")
            cls.gg.start()
            cls.tok = cls.gg.mint(repos=[REPO, BIG_REPO], push=["agent/*"])
        except Exception as e:  # reported by every test, see setUp
            cls.startup_error = "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("\nSTARTUP FAILED: %s\n" % cls.startup_error)

    @classmethod
    def _add_big_commit(cls):
        work = os.path.join(cls.tmp, "big-work")
        h.git("clone", "-q", cls.up.repo_path(BIG_REPO), work, check=True)
        h.commit_big_file(work, size=24 * 1024 * 1024)
        h.git("push", "-q", "origin", "HEAD:main", cwd=work, check=True)

    @classmethod
    def tearDownClass(cls):
        if cls.gg:
            cls.gg.stop()
        if cls.up:
            cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        if self.startup_error:
            self.fail("setup failed: " + self.startup_error[:600])

    def dir(self, name):
        d = tempfile.mkdtemp(prefix=name + "-", dir=self.tmp)
        shutil.rmtree(d)
        return d

    def git_tls(self, *args, **kw):
        return h.git("-c", "http.sslCAInfo=" + self.ca.ca_file, *args, **kw)

    def served_serial(self):
        return self.ca.serial(pem=h.peer_certificate_pem(self.gg.port,
                                                         self.ca.ca_file))

    def wait_serial(self, serial, timeout):
        return h.wait_until(lambda: self.served_serial() == serial, timeout,
                            0.1)

    def install(self, name, **kw):
        """Issue a certificate and put it in place of the served pair;
        returns its serial."""
        cert, key = self.ca.issue(name, **kw)
        replace_atomically(key, self.key)
        replace_atomically(cert, self.cert)
        return self.ca.serial(cert)

    # -- clients

    def test_clone_and_push_over_https(self):
        dest = self.dir("clone")
        rc, out, err = self.git_tls("clone", self.gg.repo_url(REPO, self.tok),
                                    dest)
        self.assertEqual(rc, 0, err)
        self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=dest), self.head)
        new = h.commit_file(dest, "tls.txt", "over https\n")
        rc, out, err = self.git_tls("push", "origin",
                                    "HEAD:refs/heads/agent/tls", cwd=dest)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.up.rev_parse(REPO, "agent/tls"), new)
        # the push was judged as always: main is not granted
        rc, out, err = self.git_tls("push", "origin", "HEAD:refs/heads/main",
                                    cwd=dest)
        self.assertNotEqual(rc, 0)
        self.assertIn("[remote rejected]", err)
        self.assertEqual(self.up.rev_parse(REPO, "main"), self.head)
        # loopback listener with tls: no clear-text warning
        self.assertNotIn("not a loopback address", self.gg.stderr_text())

    def test_plain_http_to_tls_port_fails(self):
        with self.assertRaises(Exception):
            h.http_request(self.gg.port, "GET", "/healthz", timeout=5)
        rc, out, err = h.git("ls-remote", "http://agent:%s@127.0.0.1:%d/%s" %
                             (self.tok, self.gg.port, REPO), timeout=30)
        self.assertNotEqual(rc, 0)
        self.assertNotIn(self.head, out)

    def test_git_without_ca_fails_on_certificate(self):
        rc, out, err = h.git("ls-remote", self.gg.repo_url(REPO, self.tok),
                             timeout=30)
        self.assertNotEqual(rc, 0)
        self.assertRegex(err.lower(), r"certificate")
        self.assertNotIn(self.head, out)

    def test_tls_1_1_refused_1_2_and_1_3_served(self):
        url = self.gg.url + "/healthz"
        base = ["curl", "-sS", "--max-time", "10", "--cacert", self.ca.ca_file]
        old = subprocess.run(base + ["--tlsv1.0", "--tls-max", "1.1", url],
                             capture_output=True, text=True)
        self.assertNotEqual(old.returncode, 0, old.stdout)
        self.assertNotIn("ok", old.stdout)
        for v in ("1.2", "1.3"):
            ok = subprocess.run(base + ["--tlsv" + v, "--tls-max", v, url],
                                capture_output=True, text=True)
            self.assertEqual((ok.returncode, ok.stdout.strip()), (0, "ok"),
                             "TLS %s: %s" % (v, ok.stderr))
        s = subprocess.run(["openssl", "s_client", "-connect",
                            "127.0.0.1:%d" % self.gg.port, "-tls1_1",
                            "-cipher", "DEFAULT:@SECLEVEL=0"],
                           input="", capture_output=True, text=True,
                           timeout=20)
        self.assertNotEqual(s.returncode, 0)
        self.assertNotIn("BEGIN CERTIFICATE", s.stdout)

    # -- reloads

    def slow_fetch_start(self):
        """Start a fetch of the big repository on its own connection and
        read its first bytes: a clone in progress."""
        import http.client
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.gg.port, timeout=60,
            context=h.tls_context(self.ca.ca_file))
        conn.request("POST", "/%s.git/git-upload-pack" % BIG_REPO,
                     body=h.upload_pack_request_v0([self.big_head]),
                     headers={"Authorization": h.bearer_auth(self.tok),
                              "Content-Type":
                              "application/x-git-upload-pack-request"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        first = resp.read(64 * 1024)
        return conn, resp, first

    def slow_fetch_finish(self, conn, resp, first):
        data = bytearray(first)
        while True:
            chunk = resp.read(256 * 1024)
            if not chunk:
                break
            data += chunk
            time.sleep(0.01)
        conn.close()
        # the whole pack, its trailing checksum right
        pack = bytes(data[data.find(b"PACK"):])
        self.assertGreater(len(pack), 24 * 1024 * 1024)
        self.assertEqual(hashlib.sha1(pack[:-20]).digest(), pack[-20:])

    def test_replaced_certificate_reaches_new_connections(self):
        before = self.served_serial()
        conn, resp, first = self.slow_fetch_start()
        serial = self.install("renewed", days=30)
        self.assertNotEqual(serial, before)
        t0 = time.monotonic()
        self.assertTrue(self.wait_serial(serial, 3.0),
                        "still serving %s" % self.served_serial())
        self.assertLess(time.monotonic() - t0, 2.5)
        # the transfer that began under the old certificate goes on
        self.slow_fetch_finish(conn, resp, first)
        self.assertRegex(self.gg.stderr_text(),
                         r"tls: reloaded certificate: serial %s," %
                         serial.lower())
        # and a clone over a new connection works with the new one
        rc, out, err = self.git_tls("ls-remote",
                                    self.gg.repo_url(REPO, self.tok))
        self.assertEqual(rc, 0, err)
        self.assertIn(self.head, out)

    def test_broken_replacement_keeps_the_old_certificate(self):
        good = self.install("good-again", days=30)
        self.assertTrue(self.wait_serial(good, 3.0))
        msg = ("certificate reload failed, keeping the previous one: "
               "tls.key_file: %s: not the key of the certificate in %s" % (
                   self.key, self.cert))
        seen = self.gg.stderr_text().count(msg)
        other_cert, _ = self.ca.issue("stranger", days=30)
        replace_atomically(other_cert, self.cert)  # not our key's
        self.assertTrue(h.wait_until(
            lambda: self.gg.stderr_text().count(msg) > seen, 3.0))
        self.assertEqual(self.served_serial(), good)
        self.assertTrue(self.gg.running())
        # repaired: served again
        fixed = self.install("repaired", days=30)
        self.assertTrue(self.wait_serial(fixed, 3.0))

    def test_sighup_reloads(self):
        """A change the poll cannot see (same inode, size and mtime)
        is loaded on SIGHUP."""
        current = self.install("hup-base", days=30)
        self.assertTrue(self.wait_serial(current, 3.0))
        st = os.stat(self.cert)
        for i in range(40):  # same key, same length: an in-place rewrite
            cert, _ = self.ca.issue("hup-%d" % i, days=30, key=self.key)
            if os.path.getsize(cert) == st.st_size:
                break
        else:
            self.skipTest("no certificate of the same length issued")
        with open(cert, "rb") as f:
            pem = f.read()
        with open(self.cert, "r+b") as f:
            f.write(pem)
        os.utime(self.cert, ns=(st.st_atime_ns, st.st_mtime_ns))
        time.sleep(1.0)
        self.assertEqual(self.served_serial(), current,
                         "the poll saw the change: the test proves nothing")
        self.gg.reload()
        new = self.ca.serial(cert)
        self.assertTrue(self.wait_serial(new, 3.0))

    # -- start-up

    def serve_with(self, cert, key, extra=None):
        """gitgate serve with this pair: (exit code, stderr) or None if
        it kept running."""
        gg = h.Gitgate(self.up.url, self.up.secret, tls_ca=self.ca.ca_file)
        try:
            gg.extra_config = dict(tls_config(cert, key), **(extra or {}))
            gg.port = h.free_port()
            gg._prepare()
            gg.write_config()
            p = subprocess.run([gg.binary, "serve", "--config",
                                gg.config_path], capture_output=True,
                               text=True, timeout=20)
            return p.returncode, p.stderr
        finally:
            gg.stop()

    def test_expired_certificate_refused_at_start(self):
        cert, key = self.ca.issue("expired", start="20250101000000Z",
                                  end="20250201000000Z")
        rc, err = self.serve_with(cert, key)
        self.assertEqual(rc, 1, err)
        self.assertIn("gitgate: serve: tls.cert_file: %s: certificate "
                      "expired on 2025-02-01T00:00:00Z\n" % cert, err)

    def test_not_yet_valid_mismatched_and_open_key_refused(self):
        cert, key = self.ca.issue("future", start="20990101000000Z",
                                  end="20990201000000Z")
        rc, err = self.serve_with(cert, key)
        self.assertEqual(rc, 1, err)
        self.assertIn("tls.cert_file: %s: certificate not valid before "
                      "2099-01-01T00:00:00Z" % cert, err)
        cert, key = self.ca.issue("mine", days=30)
        _, other_key = self.ca.issue("theirs", days=30)
        rc, err = self.serve_with(cert, other_key)
        self.assertEqual(rc, 1, err)
        self.assertIn("tls.key_file: %s: not the key of the certificate in "
                      "%s" % (other_key, cert), err)
        os.chmod(key, 0o644)
        rc, err = self.serve_with(cert, key)
        self.assertEqual(rc, 1, err)
        self.assertIn("tls.key_file: %s: permissions 0644 are too open "
                      "(want 0600)" % key, err)
        # key material never in a message
        with open(key) as f:
            body = "".join(l for l in f if not l.startswith("-----"))
        self.assertNotIn(body.strip()[:40], err)

    def test_plain_listen_beyond_loopback_warns(self):
        port = h.free_port("0.0.0.0")
        gg = h.Gitgate(self.up.url, self.up.secret, port=port,
                       extra_config={"listen": "0.0.0.0:%d" % port})
        try:
            gg.start()
            self.assertIn('listen: 0.0.0.0:%d is not a loopback address and '
                          '"tls" is not configured: tokens (bearer secrets) '
                          'would cross the network in clear text' % port,
                          gg.stderr_text())
        finally:
            gg.stop()
        gg = h.Gitgate(self.up.url, self.up.secret)
        try:
            gg.start()
            self.assertNotIn("not a loopback address", gg.stderr_text())
        finally:
            gg.stop()


if __name__ == "__main__":
    h.run_suite()

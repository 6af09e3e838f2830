#!/usr/bin/env python3
"""Integration suite for tokens bound to an address: the `cidr` claim
(`gitgate mint --cidr`) and the config's `trusted_proxies`, with the real
git client through a real `gitgate serve` to a real smart-HTTP upstream
(see harness.py).

    DirectTest        no trusted_proxies: a token bound to 127.0.0.1/32
                      clones, one bound to 10.0.0.0/8 is refused with 403
                      `token not valid from this address` (as git prints
                      it) and an audit line saying so; an X-Forwarded-For
                      header from the client is ignored (client stays
                      127.0.0.1).
    TrustedProxyTest  trusted_proxies ["127.0.0.1/32"]: X-Forwarded-For
                      sets the audit client; a token bound to that address
                      works, one bound to the proxy's is refused; in a
                      longer chain the rightmost untrusted hop counts (the
                      spoofed left part does not); a malformed header is
                      a 400, audited.

Run: GITGATE=build/gitgate python3 tests/integration/test_cidr.py
(meson test registers it as integration-test_cidr). The last line is
`N passed, N failed[, N skipped]`; the exit code is non-zero on failure.
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

REPO = "acme/widgets"
REFUSED = "token not valid from this address"
# git's first request carries no credential: its 401 is not what we test.
NO_AUTH = "authentication required: use the token as the password"


class Base(unittest.TestCase):
    extra_config = {}

    @classmethod
    def setUpClass(cls):
        cls.up = h.Upstream().start()
        cls.up.create_repo(REPO, commits=2)
        cls.gg = h.Gitgate(cls.up.url, cls.up.secret,
                           extra_config=cls.extra_config).start()
        cls.tmp = tempfile.mkdtemp(prefix="gg-cidr-")

    @classmethod
    def tearDownClass(cls):
        cls.gg.stop()
        cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def mint(self, *cidrs):
        args = ["mint", "--key", self.gg.signing_key, "--repo", REPO,
                "--sub", "cidr-test"]
        for c in cidrs:
            args += ["--cidr", c]
        rc, out, err = h.run_gitgate(*args, binary=self.gg.binary)
        self.assertEqual((rc, err), (0, ""), args)
        return out.strip()

    def records(self):
        return [json.loads(line) for line in
                self.gg.audit_text().splitlines() if line.strip()]

    def clone(self, token, xff=None):
        """git clone through gitgate; (rc, stderr, new audit records but
        the 401s that make git send its credential)."""
        before = len(self.records())
        dest = tempfile.mkdtemp(dir=self.tmp)
        os.rmdir(dest)
        opts = []
        if xff is not None:
            opts = ["-c", "http.extraHeader=X-Forwarded-For: " + xff]
        rc, _out, err = h.git(*opts, "clone", self.gg.repo_url(REPO, token),
                              dest)
        return rc, err, [r for r in self.records()[before:]
                         if r["reason"] != NO_AUTH]

    def assertCloned(self, token, client, xff=None):
        rc, err, recs = self.clone(token, xff)
        self.assertEqual(rc, 0, err)
        self.assertTrue(recs, "no audit record")
        for r in recs:
            self.assertEqual((r["decision"], r["client"]),
                             ("allow", client), r)

    def assertRefused(self, token, client, xff=None):
        rc, err, recs = self.clone(token, xff)
        self.assertEqual(rc, 128, err)
        # What git shows of a 403 with a text/plain body (token in the URL,
        # which git leaves out of its message).
        self.assertEqual(err.splitlines()[1:], [
            "remote: " + REFUSED,
            "fatal: unable to access 'http://127.0.0.1:%d/%s.git/': The "
            "requested URL returned error: 403" % (self.gg.port, REPO)])
        self.assertNotIn(token, err)
        self.assertEqual(len(recs), 1, recs)
        r = recs[0]
        self.assertEqual((r["decision"], r["reason"], r["status"],
                          r["client"], r["sub"], r["service"]),
                         ("deny", REFUSED, 403, client, "cidr-test",
                          "git-upload-pack"), r)
        self.assertNotIn(token, self.gg.audit_text())


class DirectTest(Base):
    """No trusted_proxies: the connection's address is the client."""

    def test_bound_to_loopback_clones(self):
        self.assertCloned(self.mint("127.0.0.1/32"), "127.0.0.1")

    def test_bound_elsewhere_refused(self):
        self.assertRefused(self.mint("10.0.0.0/8"), "127.0.0.1")

    def test_one_of_several_networks_is_enough(self):
        self.assertCloned(self.mint("10.0.0.0/8", "::1/128", "127.0.0.0/8"),
                          "127.0.0.1")

    def test_http_answer(self):
        tok = self.mint("192.0.2.0/24")
        r = self.gg.request("GET", "/%s.git/info/refs?service=git-upload-pack"
                            % REPO, {"Authorization": h.bearer_auth(tok)})
        self.assertEqual(r.status, 403, r)
        self.assertTrue(r.header("content-type").startswith("text/plain"), r)
        self.assertEqual(r.text, REFUSED + "\n")

    def test_xff_ignored_from_untrusted_peer(self):
        self.assertCloned(self.mint(), "127.0.0.1", xff="10.1.2.3")
        self.assertRefused(self.mint("10.1.2.3/32"), "127.0.0.1",
                           xff="10.1.2.3")
        # not even a malformed one is read
        self.assertCloned(self.mint(), "127.0.0.1", xff="unknown")


class TrustedProxyTest(Base):
    """gitgate behind a proxy on 127.0.0.1: its X-Forwarded-For counts."""

    extra_config = {"trusted_proxies": ["127.0.0.1/32"]}

    def test_xff_sets_client(self):
        self.assertCloned(self.mint(), "10.1.2.3", xff="10.1.2.3")
        self.assertCloned(self.mint("10.1.2.3/32"), "10.1.2.3",
                          xff="10.1.2.3")

    def test_bound_to_proxy_address_refused(self):
        self.assertRefused(self.mint("127.0.0.1/32"), "10.1.2.3",
                           xff="10.1.2.3")

    def test_without_xff_peer_is_client(self):
        self.assertCloned(self.mint("127.0.0.1/32"), "127.0.0.1")

    def test_longer_chain_rightmost_untrusted(self):
        # The sandbox sent "X-Forwarded-For: 1.2.3.4"; its proxy appended
        # the address it saw. Only the appended hop is believed.
        chain = "1.2.3.4, 10.1.2.3"
        self.assertCloned(self.mint("10.1.2.3/32"), "10.1.2.3", xff=chain)
        self.assertRefused(self.mint("1.2.3.4/32"), "10.1.2.3", xff=chain)
        # trusted hops to the right are walked past
        self.assertCloned(self.mint("10.1.2.3/32"), "10.1.2.3",
                          xff="1.2.3.4, 10.1.2.3, 127.0.0.1")

    def test_malformed_xff_refused(self):
        tok = self.mint()
        before = len(self.records())
        r = self.gg.request("GET", "/%s.git/info/refs?service=git-upload-pack"
                            % REPO, {"Authorization": h.bearer_auth(tok),
                                     "X-Forwarded-For": "10.1.2.3:4711"})
        self.assertEqual(r.status, 400, r)
        want = ("malformed X-Forwarded-For: '10.1.2.3:4711' is not an IP "
                "address")
        self.assertEqual(r.text, want + "\n")
        recs = self.records()[before:]
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual((recs[0]["decision"], recs[0]["reason"],
                          recs[0]["status"], recs[0]["client"]),
                         ("deny", want, 400, "127.0.0.1"), recs[0])


if __name__ == "__main__":
    h.run_suite()

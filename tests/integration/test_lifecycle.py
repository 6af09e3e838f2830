#!/usr/bin/env python3
"""Transfers in flight: graceful shutdown, clients that stall or vanish,
and protocol v1 — the real git client and raw HTTP against a real
lighttpd + git http-backend upstream through gitgate.

Each test asserts an outcome (bytes received, exit codes, audit records,
threads released), never that something merely ran. The repository holds
40 MB of incompressible data, more than the socket buffers and gitgate's
bounded relay pipes can hold, so a client that stops reading really does
leave a transfer in flight.
"""

import json
import os
import selectors
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

BIG = 40 * 1024 * 1024


def threads_of(pid):
    return len(os.listdir("/proc/%d/task" % pid))


class MisbehavingUpstream:
    """A raw-socket upstream: for each connection, read the request head
    and answer with the bytes of `answer`, then hold the connection open
    until the peer closes it. closed_at: when gitgate's side closed."""

    def __init__(self, answer):
        self.answer = answer
        self.closed_at = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(65536)
            if not d:
                return
            head += d
        c.sendall(self.answer)
        while True:
            try:
                if not c.recv(65536):
                    break
            except OSError:
                break
        self.closed_at.append(time.monotonic())
        c.close()

    def stop(self):
        self.sock.close()


class MisbehavingUpstreamTest(unittest.TestCase):
    """Faults an upstream can cause that used to tie a request up."""

    def gitgate(self, answer):
        up = MisbehavingUpstream(answer)
        gg = h.Gitgate(up.url, "s3cret").start()
        self.addCleanup(up.stop)
        self.addCleanup(gg.stop)
        return up, gg, gg.mint(repo="acme/app", sub="faults")

    def test_unasked_protocol_switch_is_a_502(self):
        """A 101 nobody asked for, with bytes after it, left the request
        hanging until the client gave up (the bytes paused curl before
        any final status, and a paused transfer has no idle time-out)."""
        up, gg, tok = self.gitgate(b"HTTP/1.1 101 Switching Protocols\r\n"
                                   b"Upgrade: x\r\nConnection: Upgrade"
                                   b"\r\n\r\nbytes of another protocol")
        t = time.monotonic()
        r = h.http_request(gg.port, "GET", "/acme/app.git/info/refs?"
                           "service=git-upload-pack", headers={
                               "Authorization": h.basic_auth("x", tok)},
                           timeout=20)
        self.assertLess(time.monotonic() - t, 5)
        self.assertEqual(r.status, 502, r)
        self.assertEqual(r.text, "upstream switched protocols (HTTP 101), "
                         "which gitgate never asks for\n")

    def test_client_leaving_a_stalled_answer_frees_it(self):
        """The answer stalls mid-body and the client hangs up: nothing is
        sent to the client, so libmicrohttpd did not notice, and the
        transfer (thread, upstream connection, token slot) waited for the
        300 s idle time-out. The relay now watches the client then too."""
        up, gg, tok = self.gitgate(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-"
            b"pack-result\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        body = h.upload_pack_request_v0(["1" * 40])
        s = socket.create_connection(("127.0.0.1", gg.port), timeout=10)
        s.sendall(b"POST /acme/app.git/git-upload-pack HTTP/1.1\r\n"
                  b"Host: g\r\nAuthorization: %s\r\nContent-Type: "
                  b"application/x-git-upload-pack-request\r\n"
                  b"Content-Length: %d\r\n\r\n" % (
                      h.basic_auth("x", tok).encode(), len(body)) + body)
        got = b""
        while got.count(b"x") < 900:
            got += s.recv(65536)
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
        s.close()
        left = time.monotonic()
        self.assertTrue(h.wait_until(lambda: up.closed_at, 5),
                        "upstream transfer still open 5 s after the client "
                        "left")
        self.assertLess(up.closed_at[0] - left, 5)
        self.assertTrue(h.wait_until(lambda: any(
            json.loads(l)["reason"] == "client disconnected mid-transfer"
            for l in gg.audit_text().splitlines() if l), 5),
            gg.audit_text())


class Lifecycle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-lifecycle-")
        cls.up = h.Upstream().start()
        cls.head = cls.up.create_repo(
            "acme/big", files={"blob.bin": h.pseudo_random_bytes(BIG)})
        cls.up.create_repo("acme/small", commits=3)
        cls.gg = h.Gitgate(cls.up.url, cls.up.secret).start()
        cls.tok = cls.gg.mint(repos=["acme/big", "acme/small"],
                              sub="lifecycle")

    @classmethod
    def tearDownClass(cls):
        cls.gg.stop()
        cls.up.stop()

    # -- raw HTTP helpers

    def open_fetch(self, gg=None, repo="acme/big"):
        """Send a v0 upload-pack request for the whole repository and
        return the socket after reading the response headers."""
        gg = gg or self.gg
        body = h.upload_pack_request_v0([self.head])
        s = socket.create_connection(("127.0.0.1", gg.port), timeout=30)
        s.sendall(
            b"POST /%s.git/git-upload-pack HTTP/1.1\r\n"
            b"Host: gitgate\r\n"
            b"Authorization: %s\r\n"
            b"Content-Type: application/x-git-upload-pack-request\r\n"
            b"Accept: application/x-git-upload-pack-result\r\n"
            b"Content-Length: %d\r\n\r\n" % (
                repo.encode(), h.basic_auth("x", self.tok).encode(),
                len(body)) + body)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            self.assertTrue(chunk, "connection closed before headers")
            head += chunk
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        return s

    @staticmethod
    def read_all(s):
        total = 0
        s.settimeout(60)
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                return total
            total += len(chunk)

    def audit_records(self, gg=None):
        return [json.loads(line) for line in
                (gg or self.gg).audit_text().splitlines() if line]

    # -- tests

    def test_slow_client_does_not_stall_others(self):
        stalled = self.open_fetch()
        try:
            time.sleep(0.5)  # its relay is now blocked on a full pipe
            dest = os.path.join(self.tmp, "while-stalled")
            rc, out, err = h.git("clone", self.gg.repo_url("acme/small",
                                                           self.tok), dest)
            self.assertEqual(rc, 0, err)
            self.assertTrue(os.path.exists(os.path.join(dest, "file2.txt")))
        finally:
            stalled.close()

    def test_client_disconnect_aborts_upstream_and_frees(self):
        pid = self.gg.proc.pid
        h.wait_until(lambda: threads_of(pid) <= 4, 10)
        baseline = threads_of(pid)
        s = self.open_fetch()
        s.recv(1000)
        self.assertGreater(threads_of(pid), baseline)
        s.close()  # vanish mid-transfer
        # The connection thread and the curl thread both end.
        self.assertTrue(h.wait_until(lambda: threads_of(pid) <= baseline,
                                     15),
                        "threads: %d, baseline %d" % (threads_of(pid),
                                                      baseline))
        # Which of gitgate's two watchers sees the hang-up first is a
        # race (the relay's, while the answer waits for room: "mid-
        # transfer"; libmicrohttpd's: "or timed out"); both say it.
        rec = [r for r in self.audit_records()
               if r["reason"] in ("client disconnected mid-transfer",
                                  "client disconnected or timed out")]
        self.assertTrue(rec, self.gg.audit_text()[-2000:])
        self.assertEqual(rec[-1]["repo"], "acme/big")
        self.assertLess(rec[-1]["bytes_out"], BIG)
        self.assertEqual(h.http_request(self.gg.port, "GET",
                                        "/healthz").status, 200)

    def test_upstream_dies_mid_transfer_audited_as_such(self):
        s = self.open_fetch()
        try:
            s.recv(1000)
            self.up.down()  # gitgate holds only its bounded buffers
            got = self.read_all(s)
        finally:
            s.close()
            self.up.up()
        self.assertLess(got, BIG)
        self.assertTrue(h.wait_until(lambda: any(
            r["reason"] == "upstream failed mid-transfer"
            for r in self.audit_records()), 10), self.gg.audit_text()[-2000:])
        rec = [r for r in self.audit_records()
               if r["reason"] == "upstream failed mid-transfer"][-1]
        self.assertEqual(rec["repo"], "acme/big")
        self.assertLess(rec["bytes_out"], BIG)

    def test_many_stuck_transfers_keep_serving(self):
        """Each relayed request holds about four descriptors while it waits
        for upstream. With libmicrohttpd's select() loop, ~250 requests
        stuck on a hung upstream pushed new connections past FD_SETSIZE
        (1024), and gitgate refused everything, /healthz included."""
        hung = socket.socket()
        hung.bind(("127.0.0.1", 0))
        hung.listen(1024)  # accepts (the kernel does) and never answers
        gg = h.Gitgate("http://127.0.0.1:%d" % hung.getsockname()[1],
                       "secret").start()
        clients = []
        try:
            # three tokens: one may hold only 128 requests at once
            auths = [h.basic_auth("x", gg.mint(repo="acme/hung",
                                               sub="hung-%d" % i)).encode()
                     for i in range(3)]
            for n in range(300):
                auth = auths[n % 3]
                s = socket.create_connection(("127.0.0.1", gg.port), 10)
                s.sendall(b"GET /acme/hung.git/info/refs?service=git-upload-"
                          b"pack HTTP/1.1\r\nHost: g\r\nAuthorization: " +
                          auth + b"\r\n\r\n")
                clients.append(s)
            fds = lambda: len(os.listdir("/proc/%d/fd" % gg.proc.pid))
            self.assertTrue(h.wait_until(lambda: fds() > 1100, 20),
                            "only %d descriptors open" % fds())
            resp = h.http_request(gg.port, "GET", "/healthz")
            self.assertEqual(resp.status, 200, resp)
            self.assertTrue(gg.running())
            # Clients that hang up are noticed while upstream is silent:
            # their transfers end instead of waiting out its timeout.
            for s in clients:
                s.close()
            self.assertTrue(h.wait_until(lambda: fds() < 100, 15),
                            "%d descriptors still open" % fds())
            gone = lambda: [
                r for r in (json.loads(l) for l in
                            gg.audit_text().splitlines() if l)
                if r["reason"] == "client disconnected before upstream "
                "answered" and r["status"] == 502]
            self.assertTrue(h.wait_until(lambda: len(gone()) == 300, 10),
                            "%d records" % len(gone()))
        finally:
            for s in clients:
                s.close()
            gg.stop()
            hung.close()

    def test_one_token_holds_at_most_128_requests(self):
        """A token holder paces its own request bodies: without a bound,
        one sandbox trickling push bodies could hold every connection slot
        and lock all other tokens out. The 129th request in flight with one
        token is refused at once with 429; other tokens are unaffected, and
        the budget comes back as requests end."""
        gg = h.Gitgate(self.up.url, self.up.secret).start()
        hog = gg.mint(repo="acme/small", push=["agent/*"], sub="hog")
        other = gg.mint(repo="acme/small", sub="bystander")
        refs = "/acme/small.git/info/refs?service=git-upload-pack"
        held = []

        def trickler(tok):
            s = socket.create_connection(("127.0.0.1", gg.port), 10)
            s.sendall(b"POST /acme/small.git/git-receive-pack HTTP/1.1\r\n"
                      b"Host: g\r\nAuthorization: " +
                      h.basic_auth("x", tok).encode() +
                      b"\r\nContent-Type: application/x-git-receive-pack-"
                      b"request\r\nContent-Length: 1000\r\n\r\n0")
            return s

        try:
            for _ in range(128):
                held.append(trickler(hog))
            time.sleep(0.5)  # all 128 are past their headers
            r = h.http_request(gg.port, "GET", refs, headers={
                "Authorization": h.basic_auth("x", hog)})
            self.assertEqual(r.status, 429, r)
            self.assertEqual(r.headers.get("content-type"),
                             "text/plain; charset=utf-8")
            self.assertEqual(r.body, b"too many requests in flight with "
                             b"this token (limit 128)\n")
            r = h.http_request(gg.port, "GET", refs, headers={
                "Authorization": h.basic_auth("x", other)})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(h.http_request(gg.port, "GET", "/healthz")
                             .status, 200)
            # one trickler hangs up: the hog may start one more (until
            # gitgate has seen the hang-up, it is still refused)
            held.pop().close()
            answers = []
            ok = lambda: answers.append(h.http_request(
                gg.port, "GET", refs, headers={
                    "Authorization": h.basic_auth("x", hog)}).status) or \
                answers[-1] == 200
            self.assertTrue(h.wait_until(ok, 5), "budget not returned")
            self.assertEqual(set(answers[:-1]), {429} if answers[:-1]
                             else set(), answers)
            refused = [r for r in self.audit_records(gg)
                       if r["status"] == 429]
            self.assertEqual(len(refused), answers.count(429) + 1, refused)
            for rec in refused:
                self.assertEqual(rec["decision"], "deny")
                self.assertEqual(rec["sub"], "hog")
                self.assertEqual(rec["reason"], "too many requests in "
                                 "flight with this token (limit 128)")
        finally:
            for s in held:
                s.close()
            gg.stop()

    @staticmethod
    def watch_until_closed(socks, timeout, trickle=None):
        """Wait until gitgate closes each socket; every second, send each
        open one another byte of trickle (a never-ending header). Returns
        {socket: time.monotonic() when seen closed} for those closed."""
        sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        closed, start, last_trickle = {}, time.monotonic(), 0.0
        while len(closed) < len(socks) and time.monotonic() - start < timeout:
            for key, _ in sel.select(0.2):
                try:
                    data = key.fileobj.recv(4096)
                except (ConnectionResetError, BlockingIOError) as e:
                    data = b"" if isinstance(e, ConnectionResetError) else None
                if data == b"":
                    closed[key.fileobj] = time.monotonic()
                    sel.unregister(key.fileobj)
            if trickle and time.monotonic() - last_trickle >= 1.0:
                last_trickle = time.monotonic()
                for s in socks:
                    if s not in closed:
                        try:
                            s.send(trickle)
                        except OSError:
                            pass
        sel.close()
        return closed

    class Sock(socket.socket):
        """A client socket that remembers when it was opened."""

    def slow_client(self, gg, head=b"GET /healthz HTTP/1.1\r\nHost: g\r\n"):
        s = self.Sock(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(("127.0.0.1", gg.port))
        s.opened = time.monotonic()
        s.sendall(head)
        return s

    def test_slowloris_connections_shut_down(self):
        """600 connections trickle endless headers, a byte a second: more
        than the 512 gitgate lets wait for a request at once. While that
        many wait, each is shut down 2 s after it was accepted, the idle
        kept-alive connection of an earlier request first; the rest, once
        fewer wait, 20 s after. /healthz answers throughout, and a fetch
        whose client has not read for those 20 s is a request in progress
        and completes. Before connwatch the tricklers held their slots and
        threads for ever."""
        fetch = self.open_fetch()
        idle = self.slow_client(self.gg, b"GET /healthz HTTP/1.1\r\n"
                                b"Host: g\r\n\r\n")
        got = b""
        while b"\r\n\r\nok" not in got:
            part = idle.recv(4096)
            self.assertTrue(part, "closed before the response")
            got += part
        self.assertIn(b" 200 ", got.split(b"\r\n")[0])
        idle.opened = time.monotonic()  # it owes a request from now
        socks = []
        try:
            for _ in range(600):
                socks.append(self.slow_client(self.gg))
            flooded = time.monotonic()  # from now on, over 512 wait
            resp = h.http_request(self.gg.port, "GET", "/healthz")
            self.assertEqual(resp.status, 200, resp)
            closed = self.watch_until_closed(socks + [idle], 40,
                                             trickle=b"X")
            self.assertEqual(len(closed), 601,
                             "%d still open" % (601 - len(closed)))
            self.assertLess(closed[idle] - flooded, 4)
            early = [s for s in socks if closed[s] - flooded < 4]
            late = [s for s in socks if s not in early]
            self.assertGreaterEqual(len(early), 600 - 512)
            # held for the grace (not refused at accept), then shut
            self.assertGreaterEqual(min(closed[s] - s.opened for s in socks),
                                    1.9)
            self.assertTrue(late, "all shut within the grace")
            lives = [closed[s] - s.opened for s in late]
            self.assertGreaterEqual(min(lives), 19.5)
            self.assertLess(max(lives), 26)
            self.assertTrue(h.wait_until(
                lambda: "sent no complete request in time (20 s; 2 s while "
                "over 512 wait)" in self.gg.stderr_text(), 10),
                self.gg.stderr_text()[-1000:])
            resp = h.http_request(self.gg.port, "GET", "/healthz")
            self.assertEqual(resp.status, 200, resp)
            self.assertGreater(self.read_all(fetch), BIG)
        finally:
            for s in socks + [fetch, idle]:
                s.close()

    def test_protocol_v1_clone(self):
        dest = os.path.join(self.tmp, "v1")
        env = {"GIT_TRACE_PACKET": "1"}
        rc, out, err = h.git("-c", "protocol.version=1", "clone",
                             self.gg.repo_url("acme/small", self.tok), dest,
                             env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn("version 1", err)
        self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=dest),
                         self.up.rev_parse("acme/small", "main"))

    def test_zz_graceful_shutdown_finishes_transfer(self):
        """SIGTERM while a 40 MB fetch is in flight: no new connections,
        the transfer completes, gitgate exits 0. Runs last: it stops the
        class's gitgate (a fresh one would work too, but this one has the
        history of the other tests behind it)."""
        s = self.open_fetch()
        got = len(s.recv(4096))
        self.gg.proc.send_signal(signal.SIGTERM)
        # The listener closes at once.
        self.assertTrue(h.wait_until(lambda: not h.port_open(self.gg.port),
                                     5), "still accepting after SIGTERM")
        got += self.read_all(s)
        s.close()
        self.assertGreater(got, BIG, "transfer cut short: %d bytes; %s" % (
            got, self.gg.stderr_text()[-1500:]))
        rc = self.gg.proc.wait(timeout=30)
        self.assertEqual(rc, 0, self.gg.stderr_text()[-2000:])
        done = [r for r in self.audit_records()
                if r["repo"] == "acme/big" and r["status"] == 200 and
                r["bytes_out"] > BIG]
        self.assertTrue(done, "no completed record for the transfer")


if __name__ == "__main__":
    h.run_suite()

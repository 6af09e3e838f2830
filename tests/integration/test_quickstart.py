#!/usr/bin/env python3
"""The README's quick start, minus apt-get and the build:

    bash deploy/quickstart.sh --skip-install --no-wait --workdir TMP

must clone through gitgate, land a push to agent/demo on the upstream, leave
upstream main alone when the demo pushes to main, and stop every server it
started. The interactive mode must keep gitgate serving until Ctrl-C (SIGINT)
and then stop cleanly. Last line `N passed, N failed`.
"""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

QUICKSTART = os.path.join(h.SOURCE_ROOT, "deploy", "quickstart.sh")
REPO = "demo/hello"


def quickstart_env():
    env = dict(os.environ)
    env["GITGATE"] = h.gitgate_binary()
    return env


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class QuickstartNoWait(unittest.TestCase):
    """One --no-wait run; each test checks one outcome of it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gg-test-quickstart-")
        cls.workdir = os.path.join(cls.tmp, "demo")
        cls.summary = {}
        cls.output = ""
        cls.rc = None
        try:
            p = subprocess.run(
                ["bash", QUICKSTART, "--skip-install", "--no-wait",
                 "--workdir", cls.workdir],
                env=quickstart_env(), stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=600,
                errors="replace")
            cls.rc = p.returncode
            cls.output = p.stdout + p.stderr
            with open(os.path.join(cls.workdir, "summary.json")) as f:
                cls.summary = json.load(f)
        except Exception as e:
            cls.output += "\n[test] %s: %s" % (type(e).__name__, e)
        sys.stdout.write("\n--- quickstart output ---\n%s\n--- end ---\n" %
                         cls.output)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def need(self, key):
        self.assertIn(key, self.summary,
                      "demo did not get that far:\n" + self.output[-3000:])
        return self.summary[key]

    def upstream_ref(self, ref):
        rc, out, _ = h.git("--git-dir=" + self.need("upstream_repo"),
                           "rev-parse", "--verify", "-q", ref)
        return out.strip() if rc == 0 else None

    def test_clone_worked(self):
        self.assertTrue(self.need("clone_ok"), self.output[-3000:])
        clone = self.need("clone_dir")
        # HEAD right after the clone was upstream main
        self.assertEqual(self.need("clone_head"), self.need("main_before"))
        self.assertEqual(h.git_out("cat-file", "-t", self.need("main_before"),
                                   cwd=clone), "commit")
        self.assertTrue(os.path.isfile(os.path.join(clone, "README.md")))
        h.git_out("fsck", cwd=clone)

    def test_agent_branch_landed(self):
        local = self.need("local_head")
        self.assertEqual(self.upstream_ref("refs/heads/agent/demo"), local,
                         self.output[-3000:])
        self.assertEqual(h.git_out("rev-parse", "HEAD",
                                   cwd=self.need("clone_dir")), local)

    def test_push_to_main_refused(self):
        before = self.need("main_before")
        after = self.upstream_ref("refs/heads/main")
        self.assertEqual(after, before,
                         "push to main changed upstream main:\n" +
                         self.output[-3000:])
        self.assertNotEqual(self.need("main_push_rc"), 0)
        self.assertIn("! [remote rejected] HEAD -> main (", self.output)

    def test_workflow_push_refused_by_policy(self):
        self.assertTrue(self.need("policy_refused"), self.output[-3000:])
        self.assertIsNone(self.upstream_ref("refs/heads/agent/ci"))
        self.assertRegex(self.output, r"! \[remote rejected\] HEAD -> "
                         r"agent/ci \(\.github/workflows/ci\.yml is "
                         r"protected by site policy \(commit [0-9a-f]{7}\)\)")

    def test_exit_code_zero(self):
        self.assertEqual(self.rc, 0, self.output[-3000:])

    def test_everything_stopped(self):
        self.assertEqual(self.need("gitgate_exit"), 0, self.output[-3000:])
        for key in ("gitgate_pid", "upstream_pid"):
            self.assertFalse(pid_alive(self.need(key)), key)
        for key in ("gitgate_url", "upstream_url"):
            port = int(self.need(key).rsplit(":", 1)[1])
            self.assertFalse(h.port_open(port), key)

    def test_upstream_secret_not_shown(self):
        with open(os.path.join(self.workdir, "gitgate",
                               "upstream-token")) as f:
            secret = f.read().strip()
        self.assertTrue(secret)
        self.assertNotIn(secret, self.output)
        with open(os.path.join(self.need("clone_dir"), ".git",
                               "config")) as f:
            self.assertNotIn(secret, f.read())


class QuickstartInteractive(unittest.TestCase):
    """Without --no-wait gitgate stays up for the user until Ctrl-C."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gg-test-quickstart-i-")
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_serves_until_ctrl_c(self):
        workdir = os.path.join(self.tmp, "demo")
        self.proc = subprocess.Popen(
            ["bash", QUICKSTART, "--skip-install", "--workdir", workdir],
            env=quickstart_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace", start_new_session=True)
        lines = queue.Queue()

        def reader():
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()
        seen = []
        url = token = None
        while True:
            try:
                line = lines.get(timeout=300)
            except queue.Empty:
                self.fail("no prompt within 300 s:\n" + "".join(seen))
            if line is None:
                self.fail("demo exited (%s) before the prompt:\n%s" % (
                    self.proc.wait(), "".join(seen)))
            seen.append(line)
            m = re.search(r"gitgate is running at (http://[0-9.]+:\d+)", line)
            if m:
                url = m.group(1)
            m = re.search(r"export TOKEN=(v4\.public\.\S+)", line)
            if m:
                token = m.group(1)
            if "Press Ctrl-C" in line:
                break
        self.assertIsNotNone(url, "".join(seen))
        self.assertIsNotNone(token, "".join(seen))
        port = int(url.rsplit(":", 1)[1])

        # the printed URL and token work for the user's own commands
        r = h.http_request(port, "GET", "/healthz")
        self.assertEqual(r.status, 200)
        rc, out, err = h.git("ls-remote", "http://agent:%s@127.0.0.1:%d/%s.git"
                             % (token, port, REPO))
        self.assertEqual(rc, 0, err)
        self.assertIn("refs/heads/agent/demo", out)

        with open(os.path.join(workdir, "summary.json")) as f:
            summary = json.load(f)
        self.assertTrue(h.port_open(port))

        # Ctrl-C: SIGINT to the foreground process group
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("demo did not stop within 30 s of Ctrl-C")
        self.assertEqual(rc, 0)
        self.assertFalse(h.port_open(port))
        up_port = int(summary["upstream_url"].rsplit(":", 1)[1])
        self.assertFalse(h.port_open(up_port))
        for key in ("gitgate_pid", "upstream_pid"):
            self.assertFalse(pid_alive(summary[key]), key)


class DeployFiles(unittest.TestCase):
    """deploy/config.example.json and deploy/gitgate.service stay usable."""

    def test_config_example_has_the_interface_keys(self):
        with open(os.path.join(h.SOURCE_ROOT, "deploy",
                               "config.example.json")) as f:
            cfg = json.load(f)
        self.assertEqual(set(cfg), {"listen", "verify_key", "upstream",
                                    "audit_log", "revocations", "cache_dir"})
        self.assertEqual(set(cfg["upstream"]), {"url", "token_file"})
        self.assertRegex(cfg["listen"], r"^[0-9.]+:\d+$")

    def test_systemd_unit(self):
        path = os.path.join(h.SOURCE_ROOT, "deploy", "gitgate.service")
        with open(path) as f:
            unit = f.read()
        for line in ("ExecStart=/usr/local/bin/gitgate serve --config "
                     "/etc/gitgate/config.json",
                     "ExecReload=/bin/kill -HUP $MAINPID",
                     "LimitCORE=0", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "PrivateTmp=yes"):
            self.assertIn("\n" + line + "\n", unit)
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze not installed")
        # verify the syntax with the binary under test in ExecStart
        tmp = tempfile.mkdtemp(prefix="gg-unit-")
        try:
            test_unit = os.path.join(tmp, "gitgate.service")
            with open(test_unit, "w") as f:
                f.write(unit.replace("/usr/local/bin/gitgate",
                                     h.gitgate_binary()))
            p = subprocess.run([analyze, "verify", test_unit],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    h.run_suite()

#!/usr/bin/env python3
"""Opt-in: build deploy/container/Containerfile with podman and run it.

Skipped unless GG_CONTAINER_TESTS=1 (a build takes minutes and needs
podman). The Debian 12 base is $GG_CONTAINER_BASE if set, else made from
Debian's packages: `mmdebstrap --variant=apt bookworm` piped into
`podman import` (no registry needed). When podman is installed but
cannot run a container here (a sandbox refusing its namespaces or
rlimits), the test is skipped with podman's own error.

Asserts: the image builds; the container runs as uid 10001 on a
read-only root file system; a clone through it from a real upstream
works; `podman healthcheck run` passes; the audit log lands on its
volume; SIGTERM (podman stop) exits 0.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402

SOURCE = os.path.abspath(os.environ.get("GG_SOURCE_ROOT",
                                        os.path.join(HERE, "..", "..")))
OPTED_IN = os.environ.get("GG_CONTAINER_TESTS") == "1"
PODMAN = shutil.which("podman")
IMAGE = "localhost/gitgate-test:latest"
BASE_LOCAL = "localhost/gg-debian:12"


def podman(*args, check=True, timeout=1800):
    p = subprocess.run([PODMAN, *args], capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise h.HarnessError("podman %s failed (%d): %s" % (
            " ".join(args[:2]), p.returncode, p.stderr.strip()[-2000:]))
    return p


def make_base():
    base = os.environ.get("GG_CONTAINER_BASE")
    if base:
        return base
    if podman("image", "exists", BASE_LOCAL, check=False).returncode == 0:
        return BASE_LOCAL
    if not shutil.which("mmdebstrap"):
        raise unittest.SkipTest("no GG_CONTAINER_BASE and no mmdebstrap to "
                                "make a Debian 12 base")
    with tempfile.TemporaryDirectory() as d:
        tar = os.path.join(d, "base.tar")
        subprocess.run(["mmdebstrap", "--variant=apt", "bookworm", tar],
                       check=True, capture_output=True, timeout=1800)
        podman("import", tar, BASE_LOCAL)
    return BASE_LOCAL


@unittest.skipUnless(OPTED_IN, "container test is opt-in: set "
                               "GG_CONTAINER_TESTS=1")
@unittest.skipUnless(PODMAN, "podman not installed")
class TestContainer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = make_base()
        probe = podman("run", "--rm", "--network=host", cls.base, "true",
                       check=False, timeout=300)
        if probe.returncode != 0:
            raise unittest.SkipTest("podman cannot run containers here: " +
                                    probe.stderr.strip().splitlines()[-1])
        podman("build", "--build-arg", "BASE=" + cls.base, "-t", IMAGE,
               "-f", os.path.join(SOURCE, "deploy", "container",
                                  "Containerfile"), SOURCE)
        cls.tmp = tempfile.mkdtemp(prefix="gg-container-")
        cls.up = h.Upstream().start()
        cls.oid = cls.up.create_repo("acme/box")
        # keys and config for /etc/gitgate (read-only in the container)
        etc = os.path.join(cls.tmp, "etc")
        cls.gg = h.Gitgate(cls.up.url, cls.up.secret,
                           root=os.path.join(cls.tmp, "keys-host"))
        cls.gg.keygen(os.path.join(etc, "keys"))
        os.chmod(os.path.join(etc, "keys", "signing.key"), 0o600)
        cls.signing = os.path.join(cls.tmp, "signing.key")
        shutil.move(os.path.join(etc, "keys", "signing.key"), cls.signing)
        cls.port = h.free_port()
        with open(os.path.join(SOURCE, "deploy", "container",
                               "config.json")) as f:
            cfg = json.load(f)
        cfg["listen"] = "127.0.0.1:%d" % cls.port
        cfg["upstream"]["url"] = cls.up.url
        with open(os.path.join(etc, "config.json"), "w") as f:
            json.dump(cfg, f)
        for root, dirs, files in os.walk(etc):
            for n in dirs:
                os.chmod(os.path.join(root, n), 0o755)
            for n in files:
                os.chmod(os.path.join(root, n), 0o644)
        cls.name = "gg-test-%d" % os.getpid()
        cls.vols = ["%s-%s" % (cls.name, v) for v in ("cache", "log",
                                                       "state")]
        podman("run", "-d", "--name", cls.name, "--network=host",
               "--read-only", "--tmpfs", "/tmp", "--cap-drop=ALL",
               "--security-opt=no-new-privileges",
               "-v", etc + ":/etc/gitgate:ro",
               "-v", cls.vols[0] + ":/var/cache/gitgate",
               "-v", cls.vols[1] + ":/var/log/gitgate",
               "-v", cls.vols[2] + ":/var/lib/gitgate",
               "-e", "GITGATE_UPSTREAM_TOKEN=" + cls.up.secret,
               "-e", "GITGATE_INSTANCE=box",
               "-e", "GITGATE_HEALTH_URL=http://127.0.0.1:%d/healthz"
               % cls.port, IMAGE)
        if not h.wait_until(lambda: h.port_open(cls.port), 30):
            logs = podman("logs", cls.name, check=False)
            raise h.HarnessError("container did not listen: " +
                                 logs.stdout + logs.stderr)

    @classmethod
    def tearDownClass(cls):
        podman("rm", "-f", cls.name, check=False)
        for v in cls.vols:
            podman("volume", "rm", "-f", v, check=False)
        podman("rmi", "-f", IMAGE, check=False)
        cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_runs_unprivileged_read_only(self):
        p = podman("exec", self.name, "id", "-u")
        self.assertEqual(p.stdout.strip(), "10001")
        p = podman("exec", self.name, "touch", "/usr/x", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("Read-only file system", p.stderr)
        p = podman("exec", self.name, "git", "--version")
        self.assertTrue(p.stdout.startswith("git version"))

    def test_2_clone_through_the_container(self):
        tok = self.gg.mint(repos=["acme/box"], key=self.signing)
        work = os.path.join(self.tmp, "clone")
        rc, _, err = h.git("clone", "-q", "http://x:%s@127.0.0.1:%d/acme/"
                           "box.git" % (tok, self.port), work)
        self.assertEqual(rc, 0, err)
        self.assertEqual(h.git_out("rev-parse", "HEAD", cwd=work), self.oid)
        p = podman("exec", self.name, "cat", "/var/log/gitgate/audit.jsonl")
        recs = [json.loads(ln) for ln in p.stdout.splitlines()]
        self.assertTrue(any(r["repo"] == "acme/box" and
                            r["decision"] == "allow" and
                            r["instance"] == "box" for r in recs), recs)

    def test_3_healthcheck_and_stop(self):
        self.assertEqual(podman("healthcheck", "run", self.name,
                                check=False).returncode, 0)
        podman("stop", "-t", "40", self.name)
        p = podman("inspect", "--format", "{{.State.ExitCode}}", self.name)
        self.assertEqual(p.stdout.strip(), "0")


def why_skip():
    """Why the suite cannot run here, or None. meson shows SKIP (77)."""
    if not OPTED_IN:
        return "container test is opt-in: set GG_CONTAINER_TESTS=1"
    if not PODMAN:
        return "podman not installed"
    try:
        base = make_base()
    except unittest.SkipTest as e:
        return str(e)
    probe = podman("run", "--rm", "--network=host", base, "true",
                   check=False, timeout=300)
    if probe.returncode != 0:
        return ("podman cannot run containers here: " +
                probe.stderr.strip().splitlines()[-1])
    return None


if __name__ == "__main__":
    reason = why_skip()
    if reason:
        print("SKIP: " + reason)
        print("0 passed, 0 failed, 1 skipped")
        sys.exit(77)
    h.run_suite()

#!/usr/bin/env python3
"""The deployment files in deploy/ and the service-manager protocol.

- deploy/gitgate.service: Type=notify with a watchdog, and
  `systemd-analyze security --offline=true` rates it <= 2.0 ("OK")
  (skipped, saying so, where systemd-analyze is missing).
- gitgate serve under a real NOTIFY_SOCKET (a unix datagram socket bound
  here, as systemd does): READY=1 only once the port accepts,
  RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM, WATCHDOG=1
  every WATCHDOG_USEC/2.
- deploy/k8s/*.yaml: the properties the README promises, checked on the
  parsed manifests (python3-yaml); plus kubectl's client-side dry run
  where a kubectl that works without a cluster is installed.
- deploy/container/Containerfile: multi-stage, non-root, HEALTHCHECK.
- deploy/haproxy/haproxy.cfg: `haproxy -c` accepts it (where installed).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402

SOURCE = os.environ.get("GG_SOURCE_ROOT", os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(SOURCE, "deploy")
UNIT = os.path.join(DEPLOY, "gitgate.service")


def unit_settings(path):
    """{key: [values]} of a unit file's [Service] section."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                k, v = line.split("=", 1)
                out.setdefault(k.strip(), []).append(v.strip())
    return out


class TestSystemdUnit(unittest.TestCase):
    def test_notify_and_watchdog(self):
        s = unit_settings(UNIT)
        self.assertEqual(s["Type"], ["notify"])
        self.assertEqual(s["NotifyAccess"], ["main"])
        self.assertRegex(s["WatchdogSec"][0], r"^\d+s$")
        self.assertEqual(s["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        for key, want in (("ProtectSystem", "strict"),
                          ("CapabilityBoundingSet", ""),
                          ("PrivateDevices", "yes"),
                          ("MemoryDenyWriteExecute", "yes"),
                          ("NoNewPrivileges", "yes"),
                          ("RestrictAddressFamilies",
                           "AF_INET AF_INET6 AF_UNIX")):
            self.assertEqual(s[key], [want], key)
        self.assertIn("@system-service", s["SystemCallFilter"])
        rw = s["ReadWritePaths"][0].split()
        for d in ("/var/lib/gitgate", "/var/log/gitgate", "/var/cache/gitgate"):
            self.assertIn(d, rw)
        cfg = json.load(open(os.path.join(DEPLOY, "config.example.json")))
        # what the example config writes is inside ReadWritePaths
        for key in ("audit_log", "revocations", "cache_dir"):
            self.assertTrue(any(cfg[key].startswith(d) for d in rw), key)

    @unittest.skipUnless(shutil.which("systemd-analyze"),
                         "systemd-analyze not installed (apt-get install "
                         "systemd): security rating not checked")
    def test_security_rating(self):
        p = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            UNIT], capture_output=True, text=True,
                           timeout=120)
        m = re.search(r"Overall exposure level for gitgate\.service: "
                      r"([0-9.]+) (\w+)", p.stdout + p.stderr)
        self.assertIsNotNone(m, p.stdout + p.stderr)
        print("systemd-analyze security: %s %s" % (m.group(1), m.group(2)))
        self.assertLessEqual(float(m.group(1)), 2.0)
        self.assertEqual(m.group(2), "OK")


class Manager:
    """The service manager's end of NOTIFY_SOCKET: a bound datagram
    socket; messages kept with their arrival time."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.msgs = []

    def next(self, timeout):
        """(time, {key: value}) of the next datagram, or None."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        fields = dict(ln.split("=", 1) for ln in data.decode().split("\n")
                      if "=" in ln)
        self.msgs.append((time.monotonic(), fields))
        return self.msgs[-1]

    def wait_for(self, key, timeout):
        """The first message with key (skipping watchdog pings)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.next(max(0.01, deadline - time.monotonic()))
            if m and key in m[1]:
                return m
        return None

    def close(self):
        self.sock.close()


class TestNotify(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gg-notify-")
        self.up = h.Upstream().start()
        self.gg = h.Gitgate(self.up.url, self.up.secret,
                            root=os.path.join(self.tmp, "gg"))
        self.gg._prepare()
        self.gg.port = h.free_port()
        self.gg.write_config()
        self.mgr = Manager(os.path.join(self.tmp, "notify.sock"))
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.mgr.close()
        self.up.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def serve(self, watchdog_usec=None):
        env = dict(os.environ, NOTIFY_SOCKET=self.mgr.path)
        env.pop("GITGATE_UPSTREAM_TOKEN", None)
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
            env["WATCHDOG_PID"] = "0"  # replaced below: the child's pid
        self.err = open(os.path.join(self.tmp, "serve.stderr"), "wb")
        # WATCHDOG_PID must be gitgate's own pid: exec it from a shell
        # that exports its own $$ (as systemd sets it for the main pid).
        cmd = [self.gg.binary, "serve", "--config", self.gg.config_path]
        if watchdog_usec:
            cmd = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"] + cmd
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.err, cwd=self.gg.root)

    def stderr(self):
        with open(os.path.join(self.tmp, "serve.stderr")) as f:
            return f.read()

    def test_ready_after_listen_stopping_on_sigterm(self):
        self.serve()
        m = self.mgr.wait_for("READY", 15)
        self.assertIsNotNone(m, self.stderr())
        # at the moment READY=1 arrives the port answers
        self.assertTrue(h.port_open(self.gg.port, timeout=0.5))
        self.assertEqual(h.http_request(self.gg.port, "GET",
                                        "/healthz").status, 200)
        self.assertEqual([k for _, f in self.mgr.msgs[:-1] for k in f], [],
                         "messages before READY=1")
        self.assertIn("STATUS", m[1])
        # SIGHUP: RELOADING=1 (with the time), then READY=1 again
        self.proc.send_signal(signal.SIGHUP)
        m = self.mgr.wait_for("RELOADING", 5)
        self.assertIsNotNone(m)
        self.assertRegex(m[1]["MONOTONIC_USEC"], r"^\d+$")
        self.assertIsNotNone(self.mgr.wait_for("READY", 5))
        # no watchdog asked for: no pings
        self.assertFalse(any("WATCHDOG" in f for _, f in self.mgr.msgs))
        self.proc.send_signal(signal.SIGTERM)
        m = self.mgr.wait_for("STOPPING", 5)
        self.assertIsNotNone(m)
        self.assertEqual(self.proc.wait(timeout=40), 0)

    def test_watchdog_pings_every_half_timeout(self):
        self.serve(watchdog_usec=600000)  # a ping every 300 ms
        self.assertIsNotNone(self.mgr.wait_for("READY", 15), self.stderr())
        start = time.monotonic()
        pings = []
        while time.monotonic() - start < 3.0:
            m = self.mgr.next(1.0)
            self.assertIsNotNone(m, "no watchdog ping for 1 s")
            if "WATCHDOG" in m[1]:
                self.assertEqual(m[1]["WATCHDOG"], "1")
                pings.append(m[0])
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        print("watchdog: %d pings in 3 s, gaps %.3f..%.3f s" % (
            len(pings), min(gaps), max(gaps)))
        self.assertGreaterEqual(len(pings), 8)
        self.assertLessEqual(len(pings), 12)
        self.assertLess(max(gaps), 0.45)  # well inside the 600 ms timeout
        self.assertGreater(min(gaps), 0.2)
        self.proc.send_signal(signal.SIGTERM)
        self.assertIsNotNone(self.mgr.wait_for("STOPPING", 5))
        self.assertEqual(self.proc.wait(timeout=40), 0)

    def test_watchdog_of_another_pid_is_not_ours(self):
        env_pid = "1"  # systemd's rule: WATCHDOG_PID names who must ping
        env = dict(os.environ, NOTIFY_SOCKET=self.mgr.path,
                   WATCHDOG_USEC="400000", WATCHDOG_PID=env_pid)
        env.pop("GITGATE_UPSTREAM_TOKEN", None)
        self.proc = subprocess.Popen(
            [self.gg.binary, "serve", "--config", self.gg.config_path],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.gg.root)
        self.assertIsNotNone(self.mgr.wait_for("READY", 15))
        time.sleep(1.0)
        while self.mgr.next(0.05):
            pass
        self.assertFalse(any("WATCHDOG" in f for _, f in self.mgr.msgs))
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=40), 0)

    def test_bad_notify_socket_refuses_to_start(self):
        env = dict(os.environ, NOTIFY_SOCKET="relative/path")
        env.pop("GITGATE_UPSTREAM_TOKEN", None)
        p = subprocess.run([self.gg.binary, "serve", "--config",
                            self.gg.config_path], env=env,
                           capture_output=True, text=True, timeout=30,
                           cwd=self.gg.root)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr.strip().splitlines()[-1],
                         "gitgate: serve: NOTIFY_SOCKET: must be an absolute "
                         "path or start with '@'")


try:
    import yaml
except ImportError:  # python3-yaml
    yaml = None

K8S = os.path.join(DEPLOY, "k8s")


@unittest.skipUnless(yaml, "python3-yaml not installed: manifests not "
                           "checked")
class TestKubernetes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = []
        with open(os.path.join(K8S, "kustomization.yaml")) as f:
            cls.files = yaml.safe_load(f)["resources"]
        for name in cls.files:
            with open(os.path.join(K8S, name)) as f:
                cls.docs += [d for d in yaml.safe_load_all(f) if d]

    def one(self, kind, name="gitgate"):
        found = [d for d in self.docs if d["kind"] == kind and
                 d["metadata"]["name"] == name]
        self.assertEqual(len(found), 1, (kind, name))
        self.assertEqual(found[0]["metadata"].get("namespace", "gitgate"),
                         "gitgate")
        return found[0]

    def test_every_manifest_is_listed(self):
        on_disk = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml")
                         and f != "kustomization.yaml")
        self.assertEqual(sorted(self.files), on_disk)

    def pod(self):
        return self.one("Deployment")["spec"]["template"]["spec"]

    def test_deployment(self):
        dep = self.one("Deployment")
        self.assertGreaterEqual(dep["spec"]["replicas"], 2)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(dep["spec"]["selector"]["matchLabels"], labels)
        pod = self.pod()
        c, = pod["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"http": 8080, "admin": 9090})
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(c["readinessProbe"]["httpGet"],
                         {"path": "/readyz", "port": "admin"})
        self.assertIn("cpu", c["resources"]["requests"])
        self.assertIn("memory", c["resources"]["requests"])
        self.assertIn("memory", c["resources"]["limits"])
        # gitgate waits 30 s for transfers: the pod must be given longer
        self.assertGreater(pod["terminationGracePeriodSeconds"], 30)

    def test_security_context(self):
        pod = self.pod()
        psc = pod["securityContext"]
        self.assertIs(psc["runAsNonRoot"], True)
        self.assertNotEqual(psc.get("runAsUser", 0), 0)
        self.assertEqual(psc["seccompProfile"], {"type": "RuntimeDefault"})
        self.assertIs(pod["automountServiceAccountToken"], False)
        csc = pod["containers"][0]["securityContext"]
        self.assertIs(csc["readOnlyRootFilesystem"], True)
        self.assertIs(csc["allowPrivilegeEscalation"], False)
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])

    def test_config_secret_and_volumes(self):
        cm = self.one("ConfigMap", "gitgate-config")
        cfg = json.loads(cm["data"]["config.json"])
        json.loads(cm["data"]["policy.json"])
        secret = self.one("Secret", "gitgate-secrets")
        self.assertEqual(set(secret["stringData"]),
                         {"verify.pub", "upstream-token"})
        self.assertNotIn("token_file", cfg["upstream"])  # from the env
        self.assertEqual(cfg["admin_listen"], "0.0.0.0:9090")
        c = self.pod()["containers"][0]
        env = {e["name"]: e["valueFrom"] for e in c["env"]}
        self.assertEqual(env["GITGATE_UPSTREAM_TOKEN"]["secretKeyRef"],
                         {"name": "gitgate-secrets", "key": "upstream-token"})
        self.assertEqual(env["GITGATE_INSTANCE"]["fieldRef"]["fieldPath"],
                         "metadata.name")
        self.assertEqual(c["args"][-1],
                         "/etc/gitgate/config/config.json")
        vols = {v["name"]: v for v in self.pod()["volumes"]}
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        # every path gitgate writes is on a volume, the rest read-only
        def volume_of(path):
            best = max((m for m in mounts if path.startswith(m + "/") or
                        path == m), key=len)
            return mounts[best]
        for key in ("audit_log", "revocations"):
            self.assertEqual(volume_of(cfg[key])["name"], "shared", key)
            self.assertFalse(volume_of(cfg[key]).get("readOnly"), key)
        self.assertEqual(volume_of(cfg["cache_dir"])["name"], "cache")
        self.assertIn("emptyDir", vols["cache"])
        self.assertIn("sizeLimit", vols["cache"]["emptyDir"])
        for key in ("verify_key", "policy"):
            self.assertTrue(volume_of(cfg[key]).get("readOnly"), key)
        self.assertEqual(vols["shared"]["persistentVolumeClaim"]["claimName"],
                         "gitgate-shared")
        pvc = self.one("PersistentVolumeClaim", "gitgate-shared")
        self.assertEqual(pvc["spec"]["accessModes"], ["ReadWriteMany"])
        # one audit log per pod
        self.assertEqual(volume_of(cfg["audit_log"])["subPathExpr"],
                         "audit/$(POD_NAME)")

    def test_configmap_starts_a_real_gitgate(self):
        """The ConfigMap's config and policy, with only addresses and
        paths moved here, start gitgate and its admin listener: a key the
        build does not know would refuse to start."""
        cm = self.one("ConfigMap", "gitgate-config")
        cfg = json.loads(cm["data"]["config.json"])
        with h.Upstream() as up:
            gg = h.Gitgate(up.url, up.secret)
            os.makedirs(gg.root, exist_ok=True)
            policy = os.path.join(gg.root, "policy.json")
            with open(policy, "w") as f:
                f.write(cm["data"]["policy.json"])
            admin = h.free_port()
            moved = {"listen", "verify_key", "upstream", "audit_log",
                     "revocations", "cache_dir"}
            gg.extra_config = {k: v for k, v in cfg.items()
                               if k not in moved}
            gg.extra_config.update(policy=policy,
                                   admin_listen="127.0.0.1:%d" % admin)
            self.assertEqual(set(cfg) - moved - set(gg.extra_config), set())
            try:
                gg.start()
                r = h.http_request(admin, "GET", "/readyz")
                self.assertEqual((r.status, r.text), (200, "ready\n"))
            finally:
                gg.stop()

    def test_service_and_pdb(self):
        sel = self.one("Deployment")["spec"]["selector"]["matchLabels"]
        svc = self.one("Service")
        self.assertEqual(svc["spec"]["selector"], sel)
        self.assertEqual([p["port"] for p in svc["spec"]["ports"]], [8080])
        self.assertEqual(self.one("Service", "gitgate-pods")["spec"]
                         ["clusterIP"], "None")
        pdb = self.one("PodDisruptionBudget")
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], sel)
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)

    def test_network_policy(self):
        np = self.one("NetworkPolicy")
        spec = np["spec"]
        self.assertEqual(spec["policyTypes"], ["Ingress", "Egress"])
        proxy, admin = spec["ingress"]
        self.assertEqual(proxy["ports"], [{"protocol": "TCP", "port": 8080}])
        self.assertEqual(proxy["from"][0]["namespaceSelector"],
                         {"matchLabels": {"gitgate.io/sandboxes": "true"}})
        self.assertEqual(admin["ports"], [{"protocol": "TCP", "port": 9090}])
        # the balancer health-checks /readyz on the admin port; sandboxes
        # never reach it
        balancer = {"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "gitgate-balancer"}}}
        self.assertIn(balancer, proxy["from"])
        self.assertIn(balancer, admin["from"])
        self.assertFalse(any("gitgate.io/sandboxes" in str(f)
                             for f in admin["from"]))
        dns, upstream = spec["egress"]
        self.assertEqual(sorted(p["protocol"] for p in dns["ports"]),
                         ["TCP", "UDP"])
        self.assertEqual({p["port"] for p in dns["ports"]}, {53})
        self.assertEqual(upstream["ports"], [{"protocol": "TCP", "port": 443}])
        self.assertIn("10.0.0.0/8", upstream["to"][0]["ipBlock"]["except"])

    def test_kubectl_renders_offline(self):
        kubectl = shutil.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl not installed: only the structural "
                          "checks ran")
        # `apply --dry-run=client` needs an API server for discovery even
        # with --validate=false; rendering the kustomization does not.
        p = subprocess.run([kubectl, "kustomize", K8S], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        kinds = sorted(d["kind"] for d in yaml.safe_load_all(p.stdout) if d)
        self.assertEqual(kinds, sorted(d["kind"] for d in self.docs))


class TestContainerfile(unittest.TestCase):
    def test_structure(self):
        with open(os.path.join(DEPLOY, "container", "Containerfile")) as f:
            lines = [ln.strip() for ln in f if ln.strip() and
                     not ln.lstrip().startswith("#")]
        froms = [ln for ln in lines if ln.startswith("FROM ")]
        self.assertEqual(froms, ["FROM ${BASE} AS build", "FROM ${BASE}"])
        runtime = lines[lines.index("FROM ${BASE}"):]
        text = "\n".join(runtime)
        self.assertNotIn("-dev", text)  # no build dependencies at run time
        for pkg in ("git", "ca-certificates", "libgit2-1.5",
                    "libmicrohttpd12"):
            self.assertRegex(text, r"\b%s\b" % re.escape(pkg))
        self.assertIn("USER 10001:10001", runtime)
        self.assertTrue(any(ln.startswith("HEALTHCHECK") for ln in runtime))
        self.assertIn("/healthz", text)
        self.assertIn('VOLUME ["/var/cache/gitgate", "/var/log/gitgate", '
                      '"/var/lib/gitgate"]', runtime)
        cfg = json.load(open(os.path.join(DEPLOY, "container",
                                          "config.json")))
        for key in ("audit_log", "cache_dir", "revocations"):
            self.assertTrue(cfg[key].startswith(("/var/cache/gitgate",
                                                 "/var/log/gitgate",
                                                 "/var/lib/gitgate")), key)


class TestHaproxyConfig(unittest.TestCase):
    @unittest.skipUnless(shutil.which("haproxy") or
                         os.path.exists("/usr/sbin/haproxy"),
                         "haproxy not installed: config not checked")
    def test_haproxy_accepts_it(self):
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
        p = subprocess.run([exe, "-c", "-f",
                            os.path.join(DEPLOY, "haproxy", "haproxy.cfg")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("Configuration file is valid", p.stdout + p.stderr)


if __name__ == "__main__":
    h.run_suite()

#!/usr/bin/env python3
"""gitgate fetch-cache benchmark (issue #17): clones from gitgate's mirror
vs clones from an upstream behind a slow link.

    python3 tests/bench/bench_cache.py              # 200 MiB repo, ~10 min
    python3 tests/bench/bench_cache.py --size-mb 20 # quick, ~1-2 min

Needs root: the upstream (the harness's lighttpd + git http-backend) runs
inside a network namespace behind a veth pair shaped to --rate (default
100mbit) with `tc tbf` on both ends (this kernel has no netem: no added
latency). gitgate and the clients stay outside and reach it at 10.200.0.2.
A second upstream on loopback serves the same repository unshaped. Each
upstream has a gitgate of its own with "fetch_cache": {"enabled": true}.

Workloads, in this order (one run, ratios printed at the end):
  (a) a direct clone over the shaped link vs a warm cached clone through
      gitgate (the mirror already filled by (b));
  (b) --clients concurrent clones direct vs through gitgate with a cold
      cache: wall time, and upstream bytes (the host veth's rx_bytes)
      against one direct clone's;
  (c) loopback, unshaped: warm cached clone vs direct (ABBA, median), and
      a raw protocol-v2 fetch (curl POST of command=fetch) vs direct;
  (d) one new upstream commit, then a fetch through gitgate: the catch-up
      fetch's bytes (audit "upstream_bytes", and the veth counter);
  (e) --rss-clients concurrent cached clones on loopback: gitgate's peak
      RSS (VmHWM, reset first), the upload-pack/pack-objects processes'
      peak total RSS, and their total CPU (gitgate's reaped children)
      against one cached clone's.
Targets are informational; the exit status is non-zero only for a
functional failure (a clone that fails or has the wrong HEAD, an audit
record without the cache fields) or when the namespace cannot be set up.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import gen_repo  # noqa: E402
import bench_proxy as bp  # noqa: E402  (accounting and v2 helpers)

MIB = 1024 * 1024
REPO = "bench/big"
HOST_IP, NS_IP = "10.200.0.1", "10.200.0.2"

TARGETS = {
    "warm_vs_shaped": 0.30,   # (a) time ratio
    "conc_wall": 0.15,        # (b) wall time ratio
    "conc_bytes": 1.10,       # (b) upstream bytes / one direct clone's
    "loop_clone": 1.00,       # (c)
    "loop_fetch": 1.00,       # (c)
    "rss_mib": 64.0,          # (e) gitgate VmHWM
    "cpu_ratio": 2.0,         # (e) children CPU, N clones / one clone
}

log = bp.log
BenchFailure = bp.BenchFailure


def sh(*cmd, check=True):
    p = subprocess.run([str(c) for c in cmd], capture_output=True,
                       text=True)
    if check and p.returncode != 0:
        raise BenchFailure("%s: %s" % (" ".join(map(str, cmd)),
                                       p.stderr.strip()))
    return p


class Link:
    """A network namespace with a veth pair into it, both ends shaped with
    tbf. Names carry our pid so parallel runs do not collide."""

    def __init__(self, rate):
        tag = os.getpid() % 100000
        self.ns = "ggcache%d" % tag
        self.host_if, self.ns_if = "ggc%dh" % tag, "ggc%dn" % tag
        self.rate = rate
        self.made = False

    def setup(self):
        p = sh("ip", "netns", "add", self.ns, check=False)
        if p.returncode != 0:
            raise SystemExit(
                "bench: `ip netns add` failed (%s). This benchmark needs a "
                "network namespace (root, iproute2); it does not fall back "
                "to loopback." % p.stderr.strip())
        self.made = True
        tbf = ["root", "tbf", "rate", self.rate, "burst", "256kb",
               "latency", "50ms"]
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name",
           self.ns_if)
        sh("ip", "link", "set", self.ns_if, "netns", self.ns)
        sh("ip", "addr", "add", HOST_IP + "/24", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        sh("ip", "-n", self.ns, "addr", "add", NS_IP + "/24", "dev",
           self.ns_if)
        sh("ip", "-n", self.ns, "link", "set", self.ns_if, "up")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("tc", "qdisc", "add", "dev", self.host_if, *tbf)
        sh("ip", "netns", "exec", self.ns, "tc", "qdisc", "add", "dev",
           self.ns_if, *tbf)
        log("namespace %s: %s %s <-> %s %s, tbf %s both ways" % (
            self.ns, self.host_if, HOST_IP, self.ns_if, NS_IP, self.rate))

    def rx_bytes(self):
        """Bytes the host end has received: what upstream sent us."""
        with open("/sys/class/net/%s/statistics/rx_bytes" %
                  self.host_if) as f:
            return int(f.read())

    def teardown(self):
        if not self.made:
            return
        sh("ip", "link", "del", self.host_if, check=False)
        sh("ip", "netns", "del", self.ns, check=False)
        self.made = False


def descendants(pid):
    """{pid: cmdline} of pid's live descendants (from /proc)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append((int(d), cmd))
    out, todo = {}, [pid]
    while todo:
        for c, cmd in kids.get(todo.pop(), []):
            out[c] = cmd
            todo.append(c)
    return out


def children_cpu(pid):
    """CPU seconds of pid's reaped children (cutime + cstime)."""
    return bp.proc_cpu(pid, True) - bp.proc_cpu(pid)


class ServerSampler(threading.Thread):
    """Peak total VmRSS (kB) and count of gitgate's upload-pack and
    pack-objects descendants."""

    def __init__(self, pid, interval=0.01):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb, self.peak_n = 0, 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.wait(self.interval):
            procs = [p for p, c in descendants(self.pid).items()
                     if "upload-pack" in c or "pack-objects" in c]
            kb = sum(bp.proc_status(p).get("VmRSS", 0) for p in procs)
            self.peak_kb = max(self.peak_kb, kb)
            self.peak_n = max(self.peak_n, len(procs))

    def stop(self):
        self._halt.set()
        self.join()


class CacheBench:
    def __init__(self, a):
        self.a = a
        self.results = {}
        self.failures = []
        self.work = os.path.abspath(a.workdir) if a.workdir else \
            tempfile.mkdtemp(prefix="gg-bench-cache-")
        os.makedirs(self.work, exist_ok=True)
        self.home = harness._make_home(os.path.join(self.work, "home"))
        self.env = harness.git_env(self.home)
        self.link = Link(a.rate)
        self.ups, self.ggs = [], []
        self.n = 0

    # -- setup

    def generate(self, path):
        a = self.a
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not a.repo_cache:
            log("generating %d MiB repository" % a.size_mb)
            gen_repo.generate(path, a.size_mb, quiet=True)
            return
        cached = os.path.join(os.path.abspath(a.repo_cache),
                              "bench-%dmb-v%d.git" % (
                                  a.size_mb, gen_repo.GENERATOR_VERSION))
        if not os.path.isdir(cached):
            log("generating %d MiB repository into %s" % (a.size_mb, cached))
            gen_repo.generate(cached + ".tmp", a.size_mb, quiet=True)
            os.rename(cached + ".tmp", cached)
        shutil.copytree(cached, path, symlinks=True)

    def gitgate(self, up, name):
        g = harness.Gitgate(up.url, up.secret, binary=self.binary, keep=True,
                            root=os.path.join(self.work, name),
                            extra_config={"fetch_cache": {"enabled": True}})
        self.ggs.append(g)
        g.start()
        return g

    def setup(self):
        self.binary = bp.gitgate_binary(self.a.gitgate)
        self.btype = bp.build_type(self.binary)
        log("gitgate %s (buildtype %s)" % (self.binary, self.btype))
        self.link.setup()
        self.up = harness.Upstream(root=os.path.join(self.work, "up-shaped"),
                                   keep=True, host=NS_IP, netns=self.link.ns)
        self.ups.append(self.up)
        path = self.up.repo_path(REPO)
        self.generate(path)
        self.head = self.up.rev_parse(REPO, "main")
        self.pack_bytes = gen_repo.pack_bytes(path)
        self.nobjects = bp.run(["git", "--git-dir=" + path, "rev-list",
                                "--objects", "--all"])[1].count(b"\n")
        log("repository: head %s, pack %.1f MiB, %d objects" % (
            self.head[:12], self.pack_bytes / MIB, self.nobjects))
        self.up.start()
        # the same repository, unshaped, on loopback
        self.lo = harness.Upstream(root=os.path.join(self.work, "up-loop"),
                                   keep=True)
        self.ups.append(self.lo)
        os.makedirs(os.path.dirname(self.lo.repo_path(REPO)), exist_ok=True)
        os.symlink(path, self.lo.repo_path(REPO))
        self.lo.start()
        self.gg = self.gitgate(self.up, "gg-shaped")
        self.gl = self.gitgate(self.lo, "gg-loop")
        self.tok = {g: g.mint(repo=REPO, ttl="1d", sub="bench")
                    for g in (self.gg, self.gl)}
        self.results["repo"] = {"head": self.head, "objects": self.nobjects,
                                "pack_bytes": self.pack_bytes,
                                "size_mb": self.a.size_mb,
                                "rate": self.a.rate}

    def teardown(self):
        for g in self.ggs:
            g.stop()
        for u in self.ups:
            u.stop()
        self.link.teardown()
        if not self.a.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log("kept %s" % self.work)

    def fail(self, what):
        log("FAILED: " + what)
        self.failures.append(what)

    # -- primitives

    def url(self, which):
        return {"shaped": self.up.repo_url(REPO),
                "loop": self.lo.repo_url(REPO),
                "gg": self.gg.repo_url(REPO, self.tok[self.gg]),
                "gl": self.gl.repo_url(REPO, self.tok[self.gl])}[which]

    def dest(self, label):
        self.n += 1
        return os.path.join(self.work, "clients", "%s-%d" % (label, self.n))

    def clones(self, which, n, label, bare=False):
        """n concurrent `git clone --no-checkout` of which; checks each
        HEAD; returns wall seconds (the clones are removed)."""
        bp.settle()
        opts = ["--bare"] if bare else ["--no-checkout"]
        procs = []
        t = time.monotonic()
        for _ in range(n):
            d = self.dest(label)
            procs.append((d, subprocess.Popen(
                ["git", "clone", "-q"] + opts + [self.url(which), d],
                env=self.env, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)))
        errors = []
        for d, p in procs:
            _, err = p.communicate(timeout=7200)
            gd = d if bare else os.path.join(d, ".git")
            head = bp.run(["git", "--git-dir=" + gd, "rev-parse", "HEAD"],
                          env=self.env)[1].strip().decode() \
                if p.returncode == 0 else ""
            if head != self.head:
                errors.append("rc %d head %r: %s" % (
                    p.returncode, head, err.decode(errors="replace")[-300:]))
        wall = time.monotonic() - t
        for d, _ in procs:
            shutil.rmtree(d, ignore_errors=True)
        if errors:
            raise BenchFailure("%s: %d of %d clones failed: %s" % (
                label, len(errors), n, errors[0]))
        return wall

    def shaped(self, fn):
        """(fn(), bytes received from the shaped upstream meanwhile)."""
        rx = self.link.rx_bytes()
        out = fn()
        return out, self.link.rx_bytes() - rx

    def fetch_records(self, g, since):
        """Audit records of pack requests after record index since."""
        recs = g.audit_records()[since:]
        return [r for r in recs if r.get("service") == "git-upload-pack"
                and r.get("bytes_in", 0) > 0 and "cache" in r]

    def idle(self, g, timeout=120):
        """Wait for gitgate's children (a background repack) to end."""
        if not harness.wait_until(lambda: not descendants(g.proc.pid),
                                  timeout, 0.1):
            log("note: gitgate children still running: %r" %
                descendants(g.proc.pid))

    # -- (a) and (b)

    def bench_shaped(self):
        a, r = self.a, {}
        t, rx = self.shaped(lambda: self.clones("shaped", 1, "a-direct"))
        r["direct_s"], r["one_clone_rx"] = t, rx
        log("(a) direct clone over %s: %.2fs, %.1f MiB on the wire" % (
            a.rate, t, rx / MIB))
        if a.clients:
            t, rx = self.shaped(lambda: self.clones("shaped", a.clients,
                                                    "b-direct"))
            r["conc_direct_s"], r["conc_direct_rx"] = t, rx
            log("(b) %d concurrent direct: %.2fs, %.1f MiB" % (
                a.clients, t, rx / MIB))
            mark = len(self.gg.audit_records())
            t, rx = self.shaped(lambda: self.clones("gg", a.clients,
                                                    "b-gitgate"))
            recs = self.fetch_records(self.gg, mark)
            r["conc_gitgate_s"], r["conc_gitgate_rx"] = t, rx
            r["conc_cache"] = sorted(x["cache"] for x in recs)
            r["conc_upstream_bytes"] = sum(x.get("upstream_bytes", 0)
                                           for x in recs)
            log("(b) %d concurrent through gitgate, cold: %.2fs, %.1f MiB; "
                "audit cache %r, upstream_bytes %d" % (
                    a.clients, t, rx / MIB, summary(r["conc_cache"]),
                    r["conc_upstream_bytes"]))
            if len([x for x in recs if x["cache"] in ("hit", "miss")]) < \
                    a.clients:
                self.fail("(b) %d clones, but audit has %r" % (
                    a.clients, summary(r["conc_cache"])))
        else:
            self.clones("gg", 1, "a-cold")
        self.idle(self.gg)
        mark = len(self.gg.audit_records())
        t, rx = self.shaped(lambda: self.clones("gg", 1, "a-warm"))
        recs = self.fetch_records(self.gg, mark)
        r["warm_s"], r["warm_rx"] = t, rx
        r["warm_cache"] = [x["cache"] for x in recs]
        log("(a) warm cached clone through gitgate: %.2fs, %.1f KiB on the "
            "wire, audit %r (bypass: the v2 ls-refs, relayed)" % (
                t, rx / 1024, r["warm_cache"]))
        if [c for c in r["warm_cache"] if c != "bypass"] != ["hit"]:
            self.fail("(a) warm clone audited as %r, not one hit" %
                      r["warm_cache"])
        self.results["shaped"] = r

    # -- (c)

    def v2_fetch(self, which, out):
        port, cred = {"loop": (self.lo.port, harness.UPSTREAM_USER + ":" +
                               self.lo.secret),
                      "gl": (self.gl.port, "agent:" + self.tok[self.gl])}[
                          which]
        rc, so, se = bp.run([
            "curl", "-sS", "--http1.1", "-u", cred,
            "-H", "Git-Protocol: version=2",
            "-H", "Content-Type: application/x-git-upload-pack-request",
            "-H", "Accept: application/x-git-upload-pack-result",
            "--data-binary", "@" + self.fetch_req, "-o", out,
            "-w", "%{http_code} %{time_total}",
            "http://127.0.0.1:%d/%s.git/git-upload-pack" % (port, REPO)])
        code, secs = (so.decode().split() + ["0", "0"])[:2]
        if rc != 0 or code != "200":
            raise BenchFailure("v2 fetch %s: curl rc %d HTTP %s: %s" % (
                which, rc, code, se.decode(errors="replace")[-300:]))
        return float(secs)

    def bench_loopback(self):
        a, r = self.a, {}
        self.clones("gl", 1, "c-fill")  # fill the loopback mirror
        self.idle(self.gl)
        times = {"loop": [], "gl": []}
        for rep in range(a.reps):
            for which in (("loop", "gl") if rep % 2 == 0 else
                          ("gl", "loop")):
                times[which].append(self.clones(which, 1, "c-" + which))
        r["clone_direct_s"], r["clone_gitgate_s"] = times["loop"], \
            times["gl"]
        self.fetch_req = os.path.join(self.work, "fetch-request")
        with open(self.fetch_req, "wb") as f:
            f.write(bp.v2_fetch_request(self.head))
        for which in ("loop", "gl"):  # warm-up doubles as validation
            out = os.path.join(self.work, "fetch-%s.out" % which)
            self.v2_fetch(which, out)
            bp.check_v2_pack_response(out, self.nobjects)
            os.unlink(out)
        ft = {"loop": [], "gl": []}
        # A raw fetch takes under a second and varies by +-20% on a
        # loaded 2-core machine: three times the reps (>= 7) keep one slow
        # run from deciding the median.
        for rep in range(max(7, 3 * a.reps)):
            for which in (("loop", "gl") if rep % 2 == 0 else
                          ("gl", "loop")):
                bp.settle()
                ft[which].append(self.v2_fetch(which, "/dev/null"))
        r["fetch_direct_s"], r["fetch_gitgate_s"] = ft["loop"], ft["gl"]
        log("(c) loopback clone direct %s, cached %s; v2 fetch direct %s, "
            "cached %s" % tuple(fmt_list(x) for x in (
                times["loop"], times["gl"], ft["loop"], ft["gl"])))
        self.results["loopback"] = r

    # -- (d)

    def upstream_commit(self):
        """One new commit on main in the shaped upstream's repository,
        made with plumbing (no checkout of the big tree)."""
        gd = "--git-dir=" + self.up.repo_path(REPO)
        env = dict(self.env, GIT_INDEX_FILE=os.path.join(self.work, "idx"))

        def g(*args, input=None):
            p = subprocess.run(["git", gd] + list(args), env=env,
                               input=input, capture_output=True, check=True)
            return p.stdout.decode().strip()
        blob = g("hash-object", "-w", "--stdin",
                 input=b"catch-up %f\n" % time.time())
        g("read-tree", "main")
        g("update-index", "--add", "--cacheinfo",
          "100644,%s,catchup.txt" % blob)
        tree = g("write-tree")
        new = g("commit-tree", tree, "-p", "main", "-m", "catch-up commit")
        g("update-ref", "refs/heads/main", new, self.head)
        return new

    def bench_catchup(self):
        work = self.dest("d-fetch")
        bp.run(["git", "clone", "-q", "--no-checkout", self.url("gg"), work],
               env=self.env)
        self.idle(self.gg)
        new = self.upstream_commit()
        mark = len(self.gg.audit_records())
        (rc, _, err), rx = self.shaped(lambda: bp.run(
            ["git", "-C", work, "fetch", "-q", "origin"], env=self.env))
        got = bp.run(["git", "-C", work, "rev-parse", "origin/main"],
                     env=self.env)[1].strip().decode()
        self.head = new  # later phases check clones against it
        if rc != 0 or got != new:
            raise BenchFailure("(d) fetch after an upstream commit: rc %d, "
                               "origin/main %s: %s" % (rc, got, err[-300:]))
        recs = self.fetch_records(self.gg, mark)
        r = {"cache": [x["cache"] for x in recs],
             "upstream_bytes": sum(x.get("upstream_bytes", 0) for x in recs),
             "rx": rx}
        log("(d) catch-up: audit %r, upstream_bytes %d, %d bytes on the "
            "wire" % (r["cache"], r["upstream_bytes"], rx))
        if not recs or recs[-1]["cache"] != "miss":
            self.fail("(d) the fetch after an upstream commit was audited "
                      "%r, not a miss" % r["cache"])
        shutil.rmtree(work, ignore_errors=True)
        self.results["catchup"] = r

    # -- (e)

    def bench_rss(self):
        a, pid = self.a, self.gl.proc.pid
        self.clones("gl", 1, "e-warm", bare=True)  # after (d): fresh again
        self.idle(self.gl)
        c0 = children_cpu(pid)
        self.clones("gl", 1, "e-one", bare=True)
        self.idle(self.gl, 30)
        one = children_cpu(pid) - c0
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")  # VmHWM := VmRSS
        sampler = ServerSampler(pid)
        sampler.start()
        g0, c0 = bp.proc_cpu(pid), children_cpu(pid)
        wall = self.clones("gl", a.rss_clients, "e-many", bare=True)
        sampler.stop()
        self.idle(self.gl, 30)
        many = children_cpu(pid) - c0
        st = bp.proc_status(pid)
        with open("/proc/%d/status" % pid) as f:
            hwm = [int(l.split()[1]) for l in f if l.startswith("VmHWM")][0]
        r = {"clients": a.rss_clients, "wall_s": wall,
             "vmhwm_kib": hwm, "vmrss_kib": st.get("VmRSS", 0),
             "servers_peak_kib": sampler.peak_kb,
             "servers_peak_n": sampler.peak_n,
             "children_cpu_one_s": one, "children_cpu_many_s": many,
             "gitgate_cpu_s": bp.proc_cpu(pid) - g0}
        log("(e) %d cached clones: %.1fs; gitgate VmHWM %.1f MiB; "
            "upload-pack/pack-objects peak %d processes, %.1f MiB; children "
            "CPU %.2fs (one clone %.2fs); gitgate CPU %.2fs" % (
                a.rss_clients, wall, hwm / 1024, sampler.peak_n,
                sampler.peak_kb / 1024, many, one, r["gitgate_cpu_s"]))
        self.results["rss"] = r

    # -- report

    def report(self):
        rows = []

        def add(metric, direct, gitgate, ratio, target):
            verdict = ""
            if isinstance(ratio, float) and target is not None:
                verdict = "PASS" if ratio <= target else "MISS"
            rows.append((metric, direct, gitgate,
                         "%.3f" % ratio if isinstance(ratio, float) else
                         ratio, "<= %g" % target if target else "(info)",
                         verdict))

        res = self.results
        s = res.get("shaped")
        if s:
            add("(a) clone, shaped direct vs warm cache (s)",
                "%.2f" % s["direct_s"], "%.2f" % s["warm_s"],
                s["warm_s"] / s["direct_s"], TARGETS["warm_vs_shaped"])
            if "conc_direct_s" in s:
                n = self.a.clients
                add("(b) %d concurrent clones, cold cache, wall (s)" % n,
                    "%.2f" % s["conc_direct_s"], "%.2f" % s["conc_gitgate_s"],
                    s["conc_gitgate_s"] / s["conc_direct_s"],
                    TARGETS["conc_wall"])
                add("(b) upstream bytes / one direct clone's",
                    "%.2f" % (s["conc_direct_rx"] / s["one_clone_rx"]),
                    "%.2f" % (s["conc_gitgate_rx"] / s["one_clone_rx"]),
                    s["conc_gitgate_rx"] / s["one_clone_rx"],
                    TARGETS["conc_bytes"])
        lo = res.get("loopback")
        if lo:
            d, g = bp.median(lo["clone_direct_s"]), \
                bp.median(lo["clone_gitgate_s"])
            add("(c) loopback clone, direct vs warm cache (s)",
                "%.2f" % d, "%.2f" % g, g / d, TARGETS["loop_clone"])
            d, g = bp.median(lo["fetch_direct_s"]), \
                bp.median(lo["fetch_gitgate_s"])
            add("(c) loopback raw v2 fetch (s)", "%.2f" % d, "%.2f" % g,
                g / d, TARGETS["loop_fetch"])
        c = res.get("catchup")
        if c:
            add("(d) catch-up after 1 commit: upstream_bytes", "-",
                "%d" % c["upstream_bytes"], "-", None)
            add("(d)   on the wire (veth rx bytes)", "-", "%d" % c["rx"],
                "-", None)
        e = res.get("rss")
        if e:
            add("(e) gitgate VmHWM, %d cached clones (MiB)" % e["clients"],
                "-", "%.1f" % (e["vmhwm_kib"] / 1024), e["vmhwm_kib"] / 1024,
                TARGETS["rss_mib"])
            rows[-1] = rows[-1][:3] + ("-",) + rows[-1][4:]
            add("(e)   upload-pack+pack-objects peak RSS (MiB)", "-",
                "%.1f (%d procs)" % (e["servers_peak_kib"] / 1024,
                                     e["servers_peak_n"]), "-", None)
            add("(e)   their CPU, %d clones / one clone (s)" % e["clients"],
                "%.2f" % e["children_cpu_one_s"],
                "%.2f" % e["children_cpu_many_s"],
                e["children_cpu_many_s"] / max(e["children_cpu_one_s"],
                                               0.01),
                TARGETS["cpu_ratio"])
        head = ("metric", "direct", "gitgate", "ratio", "target", "")
        w = [max(len(str(x[i])) for x in rows + [head]) for i in range(6)]
        line = "  ".join("%-*s" % (w[i], head[i]) for i in range(6))
        print()
        print("gitgate fetch-cache benchmark: repo %s, pack %.1f MiB, %d "
              "objects; link %s (tbf, both ways); reps %d; %d CPUs; "
              "buildtype %s" % (REPO, self.pack_bytes / MIB, self.nobjects,
                                self.a.rate, self.a.reps, os.cpu_count(),
                                self.btype))
        print(line)
        print("-" * len(line))
        for row in rows:
            print("  ".join(("%-*s" if i == 0 else "%*s") % (w[i], row[i])
                            for i in range(6)))
        if self.failures:
            print()
            for f in self.failures:
                print("FAILED: " + f)


def summary(values):
    out = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def fmt_list(xs):
    return "[" + ", ".join("%.2f" % x for x in xs) + "]"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=200,
                    help="benchmark repository pack size, MiB (default 200; "
                    "20 runs in a minute or two)")
    ap.add_argument("--rate", default="100mbit",
                    help="tbf rate of the upstream link (default 100mbit)")
    ap.add_argument("--clients", type=int, default=16,
                    help="concurrent clones in (b) (default 16; 0 skips)")
    ap.add_argument("--rss-clients", type=int, default=64,
                    help="concurrent cached clones in (e) (default 64)")
    ap.add_argument("--reps", type=int, default=3,
                    help="ABBA repetitions in (c), median (default 3; "
                    "the raw v2 fetch runs max(7, 3 x reps))")
    ap.add_argument("--only", default="shaped,loopback,catchup,rss",
                    help="comma list of workloads (order is fixed)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory")
    ap.add_argument("--workdir", help="work directory (default: a new one "
                    "under $TMPDIR)")
    ap.add_argument("--repo-cache", help="keep generated repositories here")
    ap.add_argument("--gitgate", help="gitgate binary (default: $GITGATE, "
                    "build-bench/gitgate, build/gitgate)")
    ap.add_argument("--json", help="also write the results to this file")
    a = ap.parse_args(argv)
    if a.size_mb < 1 or a.reps < 1 or a.rss_clients < 1 or a.clients < 0:
        ap.error("sizes and counts must be positive")
    a.only = set(x.strip() for x in a.only.split(",") if x.strip())
    bad = a.only - {"shaped", "loopback", "catchup", "rss"}
    if bad:
        ap.error("unknown workload(s): " + ", ".join(sorted(bad)))
    return a


def main(argv=None):
    a = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespace, tc)")
    for tool in ("git", "curl", "ip", "tc"):
        if not shutil.which(tool):
            raise SystemExit("bench: %s not found" % tool)
    b = CacheBench(a)
    status = 0
    try:
        b.setup()
        for name, fn in (("shaped", b.bench_shaped),
                         ("loopback", b.bench_loopback),
                         ("catchup", b.bench_catchup),
                         ("rss", b.bench_rss)):
            if name not in a.only:
                continue
            try:
                fn()
            except BenchFailure as e:
                b.fail("%s: %s" % (name, e))
            except subprocess.TimeoutExpired as e:
                b.fail("%s: timed out: %s" % (name, e))
        for g in b.ggs:
            if not g.running():
                b.fail("gitgate %s died: %s" % (g.root,
                                                g.stderr_text()[-500:]))
        b.report()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(b.results, f, indent=2, default=str)
                f.write("\n")
        status = 1 if b.failures else 0
    except (harness.HarnessError, BenchFailure) as e:
        print("bench: setup failed: %s" % e, file=sys.stderr)
        status = 1
    finally:
        b.teardown()
    return status


if __name__ == "__main__":
    sys.exit(main())

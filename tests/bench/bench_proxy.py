#!/usr/bin/env python3
"""gitgate end-to-end benchmark: direct-to-upstream vs through gitgate.

    python3 tests/bench/bench_proxy.py            # full: 200 MiB repo, 100 MiB push
    python3 tests/bench/bench_proxy.py --quick    # smoke run, about a minute

One run starts the harness's real upstream (lighttpd + git http-backend,
Basic auth) and a gitgate in front of it, generates the benchmark repository
(tests/bench/gen_repo.py, deterministic), and measures each workload both
ways -- directly against the upstream with its own credential, and through
gitgate with a token -- so the only difference between the two numbers is
gitgate. Direct and proxied repetitions are interleaved (ABBA order) and the
median is reported. Targets are informational: a miss is printed, never an
error. The exit status is non-zero only when something failed functionally
(a clone or push that did not complete, a ref that did not land, a push
that gitgate did not inspect as an update, a concurrent clone that failed).

See tests/bench/README.md for what each number means.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import resource
import shutil
import statistics
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

MIB = 1024 * 1024
REPO = "bench/big"
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "fetch": 1.05,      # time ratio gitgate/direct
    "clone": 1.05,
    "push": 1.10,       # issue: 100 MB push; push-rules issue: <= 1.15
    "push_inspect": 1.15,
    "latency_ms": 2.0,  # added info/refs latency
    "rss_mib": 64.0,
}


def log(msg):
    print("[%7.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr,
          flush=True)


T0 = time.monotonic()


class BenchFailure(Exception):
    """Something failed functionally (not a missed target)."""


# ---------------------------------------------------------------------------
# process accounting


def proc_cpu(pid, children=False):
    """CPU seconds (user+sys) of pid, plus its reaped children if asked."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / CLK_TCK


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem",
                         "Threads", "VmSize"):
                    out[k] = int(v.split()[0])  # kB, or a count
    except OSError:
        pass
    return out


class Sampler(threading.Thread):
    """Polls gitgate's /proc/<pid>/status; keeps per-phase peaks."""

    def __init__(self, pid, interval=0.02):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.phase = "start"
        self.peaks = {}  # phase -> {VmRSS, RssAnon, RssFile, Threads}
        self.last = {}
        self._halt = threading.Event()

    def set_phase(self, name):
        self.sample()
        self.phase = name

    def sample(self):
        st = proc_status(self.pid)
        if not st:
            return
        self.last = st
        pk = self.peaks.setdefault(self.phase, {})
        for k in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            if k in st and st[k] > pk.get(k, 0):
                pk[k] = st[k]

    def run(self):
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self):
        self._halt.set()
        self.join()
        self.sample()


class CpuMeter:
    """CPU seconds spent by the client (our children), the upstream
    (lighttpd + reaped CGI children) and gitgate during a block."""

    def __init__(self, up_pid, gg_pid):
        self.up_pid, self.gg_pid = up_pid, gg_pid

    def snap(self):
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (ru.ru_utime + ru.ru_stime, proc_cpu(self.up_pid, True),
                proc_cpu(self.gg_pid))

    @staticmethod
    def diff(a, b):
        return {"client": b[0] - a[0], "upstream": b[1] - a[1],
                "gitgate": b[2] - a[2]}


# ---------------------------------------------------------------------------
# helpers


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pctl(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def run(cmd, env=None, cwd=None, timeout=3600):
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def pkt(s):
    if isinstance(s, str):
        s = s.encode()
    return b"%04x" % (len(s) + 4) + s


def v2_fetch_request(oid):
    """What `git fetch` (protocol v2) sends for a full fetch of one commit,
    minus the progress meter."""
    return (pkt("command=fetch\n") + pkt("agent=git/gitgate-bench\n") +
            pkt("object-format=sha1\n") + b"0001" + pkt("thin-pack\n") +
            pkt("no-progress\n") + pkt("ofs-delta\n") +
            pkt("want %s\n" % oid) + pkt("done\n") + b"0000")


def check_v2_pack_response(path, expect_objects=None):
    """Walk a v2 fetch response: section 'packfile', side-band 1 carries
    the pack. Returns (pack bytes, object count)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, pack_len, in_pack, header = 0, 0, False, b""
    while pos < len(data):
        n = int(data[pos:pos + 4], 16)
        if n == 0:
            pos += 4
            if in_pack:
                break
            continue
        if n in (1, 2):
            pos += 4
            continue
        payload = data[pos + 4:pos + n]
        pos += n
        if not in_pack:
            if payload.rstrip(b"\n") == b"packfile":
                in_pack = True
            continue
        if payload[:1] == b"\x01":
            if len(header) < 12:
                header += payload[1:13 - len(header)]
            pack_len += len(payload) - 1
        elif payload[:1] == b"\x03":
            raise BenchFailure("upstream error in fetch response: %r" %
                               payload[1:200])
    if not in_pack or header[:4] != b"PACK" or pos != len(data):
        raise BenchFailure("malformed v2 fetch response (%d bytes)" %
                           len(data))
    nobj = int.from_bytes(header[8:12], "big")
    if expect_objects is not None and nobj != expect_objects:
        raise BenchFailure("fetch response carries %d objects, expected %d"
                           % (nobj, expect_objects))
    return pack_len, nobj


def gitgate_binary(explicit):
    cands = [explicit, os.environ.get("GITGATE"),
             os.path.join(ROOT, "build-bench", "gitgate"),
             os.path.join(ROOT, "build", "gitgate")]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise SystemExit("bench: no gitgate binary; build one with\n"
                     "  meson setup build-bench --buildtype=release "
                     "&& ninja -C build-bench")


def build_type(binary):
    info = os.path.join(os.path.dirname(binary), "meson-info",
                        "intro-buildoptions.json")
    try:
        with open(info) as f:
            for opt in json.load(f):
                if opt.get("name") == "buildtype":
                    return opt.get("value")
    except (OSError, ValueError):
        pass
    return "unknown"


# ---------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, a):
        self.a = a
        self.failures = []
        self.results = {}
        self.work = os.path.abspath(a.workdir) if a.workdir else \
            tempfile.mkdtemp(prefix="gg-bench-")
        os.makedirs(self.work, exist_ok=True)
        self.home = harness._make_home(os.path.join(self.work, "home"))
        self.env = harness.git_env(self.home)
        self.up = None
        self.gg = None
        self.sampler = None

    # -- setup

    def setup(self):
        a = self.a
        self.binary = gitgate_binary(a.gitgate)
        self.btype = build_type(self.binary)
        log("gitgate %s (buildtype %s)" % (self.binary, self.btype))
        self.up = harness.Upstream(
            root=os.path.join(self.work, "upstream"), keep=True,
            stream_response_body=2 if a.upstream_streaming else 0)
        log("upstream lighttpd: %s responses" % (
            "streamed (server.stream-response-body = 2)"
            if a.upstream_streaming else "buffered, then sent"))
        path = self.up.repo_path(REPO)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        t = time.monotonic()
        cached = None
        if a.repo_cache:
            cached = os.path.join(os.path.abspath(a.repo_cache),
                                  "bench-%dmb-v%d.git" % (
                                      a.size_mb, gen_repo.GENERATOR_VERSION))
            if not os.path.isdir(cached):
                os.makedirs(os.path.dirname(cached), exist_ok=True)
                log("generating %d MiB repository into cache %s" % (
                    a.size_mb, cached))
                gen_repo.generate(cached + ".tmp", a.size_mb, quiet=True)
                os.rename(cached + ".tmp", cached)
            shutil.copytree(cached, path, symlinks=True)
        else:
            log("generating %d MiB repository" % a.size_mb)
            gen_repo.generate(path, a.size_mb, quiet=True)
        self.head = self.up.rev_parse(REPO, "main")
        self.pack_bytes = gen_repo.pack_bytes(path)
        self.nobjects = int(run(["git", "--git-dir=" + path, "rev-list",
                                 "--objects", "--all"])[1].count(b"\n"))
        self.results["repo"] = {
            "head": self.head, "pack_bytes": self.pack_bytes,
            "objects": self.nobjects,
            "seconds": round(time.monotonic() - t, 1),
            "from_cache": bool(cached),
            "upstream_streaming": bool(a.upstream_streaming)}
        log("repository %s: head %s, pack %.1f MiB, %d objects (%.1fs)" % (
            REPO, self.head, self.pack_bytes / MIB, self.nobjects,
            time.monotonic() - t))
        self.up.start()
        self.gg = harness.Gitgate(self.up.url, self.up.secret,
                                  root=os.path.join(self.work, "gitgate"),
                                  binary=self.binary, keep=True)
        self.gg.start()
        self.token = self.gg.mint(repo=REPO, push=["bench/**"], ttl="1d",
                                  sub="bench")
        self.sampler = Sampler(self.gg.proc.pid)
        self.sampler.start()
        self.cpu = CpuMeter(self.up.proc.pid, self.gg.proc.pid)
        self.direct_url = self.up.repo_url(REPO)
        self.proxy_url = self.gg.repo_url(REPO, self.token)
        self.paths = {
            "direct": (self.up.port, harness.basic_auth(
                harness.UPSTREAM_USER, self.up.secret),
                harness.UPSTREAM_USER + ":" + self.up.secret),
            "gitgate": (self.gg.port, harness.basic_auth("agent", self.token),
                        "agent:" + self.token),
        }
        log("upstream %s, gitgate %s" % (self.up.url, self.gg.url))

    def teardown(self):
        if self.sampler:
            self.sampler.stop()
        if self.gg:
            self.gg.stop()
        if self.up:
            self.up.stop()
        if not self.a.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log("kept %s" % self.work)

    def fail(self, what):
        log("FAILED: " + what)
        self.failures.append(what)

    def order(self, rep):
        """ABBA interleaving: direct first on even reps."""
        return ("direct", "gitgate") if rep % 2 == 0 else ("gitgate", "direct")

    def url(self, which):
        return self.direct_url if which == "direct" else self.proxy_url

    # -- (1) raw v2 fetch

    def bench_fetch(self):
        a = self.a
        self.sampler.set_phase("fetch")
        req = os.path.join(self.work, "fetch-request")
        with open(req, "wb") as f:
            f.write(v2_fetch_request(self.head))
        times = {"direct": [], "gitgate": []}
        ttfbs = {"direct": [], "gitgate": []}
        sizes = {}
        cpu0 = self.cpu.snap()

        def one(which, out):
            port, _, cred = self.paths[which]
            cmd = ["curl", "-sS", "--http1.1", "-u", cred,
                   "-H", "Git-Protocol: version=2",
                   "-H", "Content-Type: application/x-git-upload-pack-request",
                   "-H", "Accept: application/x-git-upload-pack-result",
                   "--data-binary", "@" + req, "-o", out,
                   "-w", "%{http_code} %{size_download} %{time_total} "
                   "%{time_starttransfer}",
                   "http://127.0.0.1:%d/%s.git/git-upload-pack" % (port, REPO)]
            rc, so, se = run(cmd)
            code, size, secs, ttfb = (so.decode().split() + ["0"] * 4)[:4]
            if rc != 0 or code != "200":
                raise BenchFailure("v2 fetch %s: curl rc %d HTTP %s: %s" % (
                    which, rc, code, se.decode(errors="replace")[-300:]))
            ttfbs[which].append(float(ttfb))
            return int(size), float(secs)

        # warm-up doubles as validation: the whole response is parsed
        for which in ("direct", "gitgate"):
            out = os.path.join(self.work, "fetch-%s.out" % which)
            size, _ = one(which, out)
            pack_len, nobj = check_v2_pack_response(out, self.nobjects)
            sizes[which] = size
            os.unlink(out)
            log("fetch warm-up %s: %d bytes, pack %d bytes, %d objects" % (
                which, size, pack_len, nobj))
        ttfbs = {"direct": [], "gitgate": []}
        if sizes["direct"] != sizes["gitgate"]:
            log("note: response sizes differ (%d vs %d): expected, the "
                "side-band framing follows read sizes; the packs in them "
                "have the same length and objects (checked above)" % (
                sizes["direct"], sizes["gitgate"]))
        for rep in range(a.reps):
            for which in self.order(rep):
                settle()
                size, secs = one(which, "/dev/null")
                # side-band framing varies with read sizes: allow 0.5%
                if abs(size - sizes[which]) > sizes[which] // 200:
                    raise BenchFailure("v2 fetch %s: %d bytes, warm-up had %d"
                                       % (which, size, sizes[which]))
                times[which].append(secs)
                log("fetch %s rep %d: %.3fs  %.1f MiB/s (first byte after "
                    "%.3fs)" % (which, rep, secs, size / MIB / secs,
                                ttfbs[which][-1]))
        cpu = CpuMeter.diff(cpu0, self.cpu.snap())
        d, g = median(times["direct"]), median(times["gitgate"])
        self.results["fetch"] = {
            "bytes": sizes["direct"], "direct_s": times["direct"],
            "gitgate_s": times["gitgate"],
            "direct_mibps": sizes["direct"] / MIB / d,
            "gitgate_mibps": sizes["gitgate"] / MIB / g,
            "ratio": g / d, "cpu": cpu,
            "direct_ttfb_s": ttfbs["direct"], "gitgate_ttfb_s": ttfbs["gitgate"],
            # throughput once the first byte arrived: the relay itself
            "direct_tail_mibps": median(
                [sizes["direct"] / MIB / (t - f) for t, f in
                 zip(times["direct"], ttfbs["direct"]) if t > f]),
            "gitgate_tail_mibps": median(
                [sizes["gitgate"] / MIB / (t - f) for t, f in
                 zip(times["gitgate"], ttfbs["gitgate"]) if t > f])}

    # -- (2) full clone

    def bench_clone(self):
        a = self.a
        self.sampler.set_phase("clone")
        times = {"direct": [], "gitgate": []}
        cpu0 = self.cpu.snap()

        def one(which, tag):
            dest = os.path.join(self.work, "clone-%s-%s" % (which, tag))
            t = time.monotonic()
            rc, _, err = run(["git", "clone", "-q", self.url(which), dest],
                             env=self.env)
            secs = time.monotonic() - t
            ok = rc == 0 and run(["git", "-C", dest, "rev-parse", "HEAD"],
                                 env=self.env)[1].strip().decode() == self.head
            shutil.rmtree(dest, ignore_errors=True)
            if not ok:
                raise BenchFailure("clone %s failed (rc %d): %s" % (
                    which, rc, err.decode(errors="replace")[-500:]))
            return secs

        for which in ("direct", "gitgate"):
            log("clone warm-up %s: %.2fs" % (which, one(which, "warm")))
        for rep in range(a.reps):
            for which in self.order(rep):
                settle()
                secs = one(which, str(rep))
                times[which].append(secs)
                log("clone %s rep %d: %.2fs" % (which, rep, secs))
        cpu = CpuMeter.diff(cpu0, self.cpu.snap())
        d, g = median(times["direct"]), median(times["gitgate"])
        self.results["clone"] = {"direct_s": times["direct"],
                                 "gitgate_s": times["gitgate"],
                                 "ratio": g / d, "cpu": cpu}

    # -- (3) push

    def prepare_pushes(self, labels):
        """A pusher repository borrowing the upstream's objects, with one
        commit per label on top of main adding push_mb MiB of random data
        (1 MiB files, so upstream keeps a pack: > receive.unpackLimit
        objects once push_mb >= 100). Returns {label: commit}."""
        pusher = os.path.join(self.work, "pusher.git")
        run(["git", "init", "-q", "--bare", pusher], env=self.env)
        with open(os.path.join(pusher, "objects", "info", "alternates"),
                  "w") as f:
            f.write(os.path.join(self.up.repo_path(REPO), "objects") + "\n")
        # As in the generated repository: random data is not worth a delta
        # search (the client's pack-objects would otherwise spend seconds
        # trying, identically on both paths).
        with open(os.path.join(pusher, "info", "attributes"), "w") as f:
            f.write("*.bin -delta\n")
        total = self.a.push_mb * MIB
        nfiles = (total + MIB - 1) // MIB
        fi = subprocess.Popen(["git", "fast-import", "--quiet", "--depth=0"],
                              cwd=pusher, stdin=subprocess.PIPE,
                              env=self.env, stdout=subprocess.DEVNULL)
        w = fi.stdin.write
        for n, label in enumerate(labels):
            ts = gen_repo.BASE_TIME + 10 ** 7 + n
            msg = ("bench push %s: %d MiB in %d files\n" % (
                label, self.a.push_mb, nfiles)).encode()
            w(b"commit refs/heads/%s\n" % label.encode())
            w(("author Bench Pusher <push@example.invalid> %d +0000\n" %
               ts).encode())
            w(("committer Bench Pusher <push@example.invalid> %d +0000\n" %
               ts).encode())
            w(b"data %d\n%s\n" % (len(msg), msg))
            w(b"from %s\n" % self.head.encode())
            left = total
            for k in range(nfiles):
                size = min(MIB, left)
                left -= size
                path = "push/%s/file-%03d.bin" % (label, k)
                body = hashlib.shake_256(
                    b"gitgate-bench-push/" + path.encode()).digest(size)
                w(b"M 100644 inline %s\ndata %d\n" % (path.encode(), size))
                w(body)
                w(b"\n")
            w(b"\n")
        fi.stdin.close()
        if fi.wait() != 0:
            raise BenchFailure("fast-import of the push commits failed")
        commits = {}
        for label in labels:
            commits[label] = run(["git", "--git-dir=" + pusher, "rev-parse",
                                  label], env=self.env)[1].decode().strip()
        return pusher, commits

    def audit_action(self, ref):
        """The action gitgate's audit log recorded for the last push to
        ref, and its result."""
        for line in reversed(self.gg.audit_text().splitlines()):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            for r in rec.get("refs") or []:
                if r.get("ref") == ref:
                    return r.get("action"), r.get("result"), rec
        return None, None, None

    def bench_push(self):
        a = self.a
        self.sampler.set_phase("push-setup")
        labels = ["first"]
        labels += ["warm-direct", "warm-gitgate"]
        for rep in range(a.reps):
            labels += ["r%d-direct" % rep, "r%d-gitgate" % rep]
        t = time.monotonic()
        pusher, commits = self.prepare_pushes(labels)
        log("prepared %d push commits of %d MiB (%.1fs)" % (
            len(labels), a.push_mb, time.monotonic() - t))

        def one(which, label):
            ref = "refs/heads/bench/%s" % label
            # the branch exists at the base commit: the push is an update
            self.up.git_dir(REPO, "update-ref", ref, self.head)
            settle()
            t0 = time.monotonic()
            rc, _, err = run(["git", "--git-dir=" + pusher, "push", "-q",
                              self.url(which),
                              "%s:%s" % (commits[label], ref)], env=self.env)
            secs = time.monotonic() - t0
            landed = self.up.rev_parse(REPO, ref) == commits[label]
            if rc != 0 or not landed:
                raise BenchFailure("push %s %s failed (rc %d, landed %s): %s"
                                   % (which, label, rc, landed,
                                      err.decode(errors="replace")[-500:]))
            if which == "gitgate":
                action, result, _ = self.audit_action(ref)
                if action != "update" or result != "ok":
                    raise BenchFailure(
                        "gitgate audited the push to %s as %r/%r, expected "
                        "an inspected update" % (ref, action, result))
            # Drop the branch again: later pushes (and anything that clones
            # all branches) must not see the pushed data.
            self.up.git_dir(REPO, "update-ref", "-d", ref)
            return secs

        # First push through gitgate: there is no mirror yet. gitgate creates
        # an empty one and fetches upstream only if the ancestry walk leaves
        # the pushed pack at a commit the mirror lacks (not for this update,
        # whose new commit's parent is the old one).
        self.sampler.set_phase("push-first")
        mirror = os.path.join(self.gg.cache_dir, "mirrors", REPO + ".git")
        cpu0 = self.cpu.snap()
        first = one("gitgate", "first")
        first_cpu = CpuMeter.diff(cpu0, self.cpu.snap())
        log("first push through gitgate (no mirror yet): %.2fs, mirror now "
            "%.1f MiB" % (first, dir_bytes(mirror) / MIB))
        self.sampler.set_phase("push")
        times = {"direct": [], "gitgate": []}
        for which in ("direct", "gitgate"):
            log("push warm-up %s: %.2fs" % (which, one(which, "warm-" + which)))
        cpu0 = self.cpu.snap()
        for rep in range(a.reps):
            for which in self.order(rep):
                secs = one(which, "r%d-%s" % (rep, which))
                times[which].append(secs)
                log("push %s rep %d: %.2fs" % (which, rep, secs))
        cpu = CpuMeter.diff(cpu0, self.cpu.snap())
        d, g = median(times["direct"]), median(times["gitgate"])
        self.results["push"] = {
            "mib": a.push_mb, "direct_s": times["direct"],
            "gitgate_s": times["gitgate"], "ratio": g / d,
            "first_gitgate_s": first, "first_ratio": first / d,
            "first_cpu": first_cpu, "cpu": cpu,
            "mirror_bytes": dir_bytes(mirror)}

    # -- (4) info/refs latency

    def bench_latency(self):
        a = self.a
        self.sampler.set_phase("latency")
        path = "/%s.git/info/refs?service=git-upload-pack" % REPO
        conns, lat, reconnects = {}, {"direct": [], "gitgate": []}, \
            {"direct": 0, "gitgate": 0}
        closes = {"direct": 0, "gitgate": 0}
        for which, (port, auth, _) in self.paths.items():
            conns[which] = (http.client.HTTPConnection("127.0.0.1", port,
                                                       timeout=30), auth)

        def one(which):
            conn, auth = conns[which]
            sock = conn.sock
            t = time.perf_counter()
            conn.request("GET", path, headers={
                "Authorization": auth, "Git-Protocol": "version=2",
                "User-Agent": "git/2.39.5", "Accept": "*/*"})
            r = conn.getresponse()
            body = r.read()
            dt = time.perf_counter() - t
            if r.status != 200 or b"version 2" not in body:
                raise BenchFailure("info/refs %s: HTTP %d %r" % (
                    which, r.status, body[:200]))
            if sock is not None and conn.sock is not sock:
                reconnects[which] += 1
            if r.will_close:  # server said Connection: close
                closes[which] += 1
                conn.close()
            return dt

        for _ in range(10):  # warm-up: connections, caches
            for which in ("direct", "gitgate"):
                one(which)
        reconnects = {"direct": 0, "gitgate": 0}
        closes = {"direct": 0, "gitgate": 0}
        settle()
        for i in range(a.latency_n):
            for which in self.order(i):
                lat[which].append(one(which) * 1000.0)
        for conn, _ in conns.values():
            conn.close()
        d, g = lat["direct"], lat["gitgate"]
        self.results["latency"] = {
            "n": a.latency_n,
            "direct_median_ms": median(d), "gitgate_median_ms": median(g),
            "direct_p95_ms": pctl(d, 0.95), "gitgate_p95_ms": pctl(g, 0.95),
            "added_median_ms": median(g) - median(d),
            "added_p95_ms": pctl(g, 0.95) - pctl(d, 0.95),
            "connection_close": closes}
        log("info/refs: direct median %.2f ms p95 %.2f ms; gitgate median "
            "%.2f ms p95 %.2f ms; responses with Connection: close %r" % (
                median(d), pctl(d, .95), median(g), pctl(g, .95), closes))

    # -- (6) concurrent clones

    def concurrent(self, which, n):
        procs = []
        base = os.path.join(self.work, "conc-%s" % which)
        os.makedirs(base, exist_ok=True)
        t = time.monotonic()
        for i in range(n):
            dest = os.path.join(base, "c%02d" % i)
            errf = open(os.path.join(base, "c%02d.err" % i), "wb")
            procs.append((dest, errf, subprocess.Popen(
                ["git", "clone", "-q", "--no-checkout", self.url(which), dest],
                env=self.env, stdout=subprocess.DEVNULL, stderr=errf)))
        ok, errors, durations = 0, [], []
        for dest, errf, p in procs:
            rc = p.wait(timeout=3600)
            durations.append(time.monotonic() - t)
            errf.close()
            head = run(["git", "-C", dest, "rev-parse", "HEAD"],
                       env=self.env)[1].strip().decode() if rc == 0 else ""
            if rc == 0 and head == self.head:
                ok += 1
            else:
                with open(errf.name, errors="replace") as f:
                    errors.append("rc %d: %s" % (rc, f.read()[-300:].strip()))
        wall = time.monotonic() - t
        shutil.rmtree(base, ignore_errors=True)
        return ok, wall, errors

    def bench_concurrent(self):
        """Batch 1 through gitgate (the functional check; on this VM the
        first big batch of a run is ~30% slower whichever path it takes --
        page-cache reclaim -- so it is not used for the comparison), then
        direct, then gitgate again: those two are compared."""
        a = self.a
        n = a.concurrency
        res = {"n": n}

        def batch(which, phase):
            self.sampler.set_phase(phase)
            settle()
            cpu0 = self.cpu.snap()
            ok, wall, errors = self.concurrent(which, n)
            cpu = CpuMeter.diff(cpu0, self.cpu.snap())
            log("%d concurrent clones %s: %d ok, %.1fs (%s)" % (
                n, "through gitgate" if which == "gitgate" else "direct",
                ok, wall, phase))
            if ok != n and which == "gitgate":
                self.fail("%d of %d concurrent clones through gitgate "
                          "failed: %s" % (n - ok, n, "; ".join(errors[:3])))
            elif ok != n:
                log("note: %d direct clones failed (upstream limit?): %s" % (
                    n - ok, "; ".join(errors[:3])))
            return ok, wall, errors, cpu

        ok, wall, errors, cpu = batch("gitgate", "concurrent")
        res.update(first_ok=ok, first_s=wall, gitgate_ok=ok, gitgate_s=wall,
                   errors=errors[:5], cpu=cpu)
        if not a.no_concurrent_direct:
            ok_d, wall_d, _, cpu_d = batch("direct", "concurrent-direct")
            res.update(direct_ok=ok_d, direct_s=wall_d, direct_cpu=cpu_d)
            ok, wall, errors, cpu = batch("gitgate", "concurrent-2")
            res.update(gitgate_ok=ok, gitgate_s=wall, cpu=cpu,
                       errors=(res["errors"] + errors)[:5])
        self.results["concurrent"] = res

    # -- (5) RSS

    def collect_rss(self):
        st = proc_status(self.gg.proc.pid)
        self.results["rss"] = {
            "vmhwm_kib": st.get("VmHWM"), "vmrss_end_kib": st.get("VmRSS"),
            "phases": self.sampler.peaks}

    # -- report

    def report(self):
        r = self.results
        rows = []

        def verdict(val, target):
            return "PASS" if val <= target else "MISS"

        def add(name, direct, gitgate, ratio, target, ok):
            rows.append((name, direct, gitgate, ratio, target, ok))

        if "fetch" in r:
            f = r["fetch"]
            add("raw v2 fetch throughput (MiB/s)", "%.1f" % f["direct_mibps"],
                "%.1f" % f["gitgate_mibps"], "%.3f" % f["ratio"],
                "<= %.2f" % TARGETS["fetch"],
                verdict(f["ratio"], TARGETS["fetch"]))
            add("  time to first byte (s)",
                "%.3f" % median(f["direct_ttfb_s"]),
                "%.3f" % median(f["gitgate_ttfb_s"]),
                "%.3f" % (median(f["gitgate_ttfb_s"]) /
                          median(f["direct_ttfb_s"])), "(info)", "")
            add("  after first byte (MiB/s)",
                "%.0f" % f["direct_tail_mibps"],
                "%.0f" % f["gitgate_tail_mibps"],
                "%.3f" % (f["direct_tail_mibps"] / f["gitgate_tail_mibps"]),
                "(info)", "")
        if "clone" in r:
            c = r["clone"]
            add("full clone wall time (s)", "%.2f" % median(c["direct_s"]),
                "%.2f" % median(c["gitgate_s"]), "%.3f" % c["ratio"],
                "<= %.2f" % TARGETS["clone"],
                verdict(c["ratio"], TARGETS["clone"]))
        if "push" in r:
            p = r["push"]
            add("%d MiB push, update, inspected (s)" % p["mib"],
                "%.2f" % median(p["direct_s"]),
                "%.2f" % median(p["gitgate_s"]), "%.3f" % p["ratio"],
                "<= %.2f/%.2f" % (TARGETS["push"], TARGETS["push_inspect"]),
                verdict(p["ratio"], TARGETS["push"]) + "/" +
                verdict(p["ratio"], TARGETS["push_inspect"]))
            add("  first push to the repo (s)",
                "%.2f" % median(p["direct_s"]),
                "%.2f" % p["first_gitgate_s"], "%.3f" % p["first_ratio"],
                "(info)", "")
            add("  added over a steady push (s)", "-",
                "%+.2f" % (p["first_gitgate_s"] - median(p["gitgate_s"])),
                "-", "(info)", "")
        if "latency" in r:
            lt = r["latency"]
            add("info/refs latency median (ms)",
                "%.2f" % lt["direct_median_ms"],
                "%.2f" % lt["gitgate_median_ms"],
                "%+.2f ms" % lt["added_median_ms"],
                "<= +%.1f ms" % TARGETS["latency_ms"],
                verdict(lt["added_median_ms"], TARGETS["latency_ms"]))
            add("info/refs latency p95 (ms)", "%.2f" % lt["direct_p95_ms"],
                "%.2f" % lt["gitgate_p95_ms"], "%+.2f ms" % lt["added_p95_ms"],
                "<= +%.1f ms" % TARGETS["latency_ms"],
                verdict(lt["added_p95_ms"], TARGETS["latency_ms"]))
            cc = lt["connection_close"]
            add("  keep-alive kept (of %d)" % lt["n"],
                "%d" % (lt["n"] - cc["direct"]),
                "%d" % (lt["n"] - cc["gitgate"]), "-", "(info)", "")
        if "rss" in r and r["rss"]["vmhwm_kib"]:
            mib = r["rss"]["vmhwm_kib"] / 1024.0
            add("gitgate peak RSS, VmHWM (MiB)", "-", "%.1f" % mib, "-",
                "<= %d MiB" % TARGETS["rss_mib"],
                verdict(mib, TARGETS["rss_mib"]))
        if "concurrent" in r:
            c = r["concurrent"]
            all_ok = c["gitgate_ok"] == c["n"] and c["first_ok"] == c["n"]
            add("%d concurrent clones: ok / wall (s)" % c["n"],
                ("%d / %.1f" % (c["direct_ok"], c["direct_s"]))
                if "direct_s" in c else "-",
                "%d / %.1f" % (c["gitgate_ok"], c["gitgate_s"]),
                ("%.3f" % (c["gitgate_s"] / c["direct_s"]))
                if "direct_s" in c else "-",
                "all succeed", "PASS" if all_ok else "MISS")
            if "direct_s" in c:
                add("  first batch, via gitgate (s)", "-",
                    "%d / %.1f" % (c["first_ok"], c["first_s"]), "-",
                    "(info)", "")
        head = ("metric", "direct", "gitgate", "ratio", "target", "")
        widths = [max(len(str(x[i])) for x in rows + [head])
                  for i in range(len(head))]
        line = "  ".join("%-*s" % (widths[i], head[i]) for i in range(6))
        print()
        info = r.get("repo", {})
        print("gitgate benchmark: repo %s, pack %.1f MiB, %d objects, head "
              "%s; reps %d (median); %d CPUs; gitgate buildtype %s" % (
                  REPO, info.get("pack_bytes", 0) / MIB,
                  info.get("objects", 0), info.get("head", "?")[:12],
                  self.a.reps, os.cpu_count(), self.btype))
        print(line)
        print("-" * len(line))
        for row in rows:
            print("  ".join(("%-*s" if i == 0 else "%*s") % (widths[i],
                                                               row[i])
                            for i in range(6)))
        print()
        print("ratio = gitgate time / direct time (for throughput: direct "
              "MiB/s / gitgate MiB/s); targets are informational.")
        self.print_cpu()
        if "rss" in r:
            ph = r["rss"]["phases"]
            print("gitgate RSS peaks by phase (MiB, anon+file):  " + ",  ".join(
                "%s %.1f (%.1f+%.1f, %d thr)" % (
                    k, v.get("VmRSS", 0) / 1024, v.get("RssAnon", 0) / 1024,
                    v.get("RssFile", 0) / 1024, v.get("Threads", 0))
                for k, v in ph.items() if v))
        if self.failures:
            print()
            for f in self.failures:
                print("FAILED: " + f)

    def print_cpu(self):
        r = self.results
        parts = []
        for key, label in (("fetch", "fetch"), ("clone", "clone"),
                           ("push", "push"),
                           ("concurrent", "concurrent via gitgate (last)")):
            c = r.get(key, {}).get("cpu")
            if c:
                parts.append("%s: client %.1f, upstream %.1f, gitgate %.1f" %
                             (label, c["client"], c["upstream"], c["gitgate"]))
        c = r.get("concurrent", {}).get("direct_cpu")
        if c:
            parts.append("concurrent direct: client %.1f, upstream %.1f" % (
                c["client"], c["upstream"]))
        p = r.get("push", {}).get("first_cpu")
        if p:
            parts.append("first push: client %.1f, upstream %.1f, gitgate "
                         "%.1f" % (p["client"], p["upstream"], p["gitgate"]))
        if parts:
            print("CPU seconds per phase (measured reps of both paths; "
                  "client = git/curl, upstream = lighttpd + git CGIs):")
            for s in parts:
                print("  " + s)


def settle():
    """Flush dirty pages left by the previous step (clones, pushes write
    hundreds of MiB) so their writeback does not land in the next timing."""
    os.sync()
    time.sleep(0.2)


def dir_bytes(path):
    total = 0
    for dp, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dp, f)).st_size
            except OSError:
                pass
    return total


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Direct vs through-gitgate benchmark (see "
        "tests/bench/README.md).")
    ap.add_argument("--size-mb", type=int, default=None,
                    help="benchmark repository pack size, MiB (default 200)")
    ap.add_argument("--push-mb", type=int, default=None,
                    help="size of the pushed commit, MiB (default 100)")
    ap.add_argument("--reps", type=int, default=3,
                    help="measured repetitions per path (median; default 3)")
    ap.add_argument("--latency-n", type=int, default=None,
                    help="info/refs requests per path (default 200)")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="concurrent clones through gitgate (default 64)")
    ap.add_argument("--no-concurrent-direct", action="store_true",
                    help="skip the same concurrent clones done directly")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 20 MiB repo, 10 MiB push, 20 info/refs "
                    "requests, 8 concurrent clones")
    ap.add_argument("--only", default="fetch,clone,push,latency,concurrent",
                    help="comma list of workloads to run")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (repos, logs, audit)")
    ap.add_argument("--workdir", help="work directory (default: a new "
                    "temporary directory under $TMPDIR)")
    ap.add_argument("--repo-cache", help="directory to keep generated "
                    "repositories in between runs")
    ap.add_argument("--gitgate", help="gitgate binary (default: $GITGATE, "
                    "build-bench/gitgate, build/gitgate)")
    ap.add_argument("--upstream-streaming", action="store_true",
                    help="upstream lighttpd streams each response as git "
                    "writes it (server.stream-response-body = 2), like a "
                    "hosting server, instead of buffering it whole first")
    ap.add_argument("--json", help="also write all results to this file")
    a = ap.parse_args(argv)
    q = a.quick
    if a.size_mb is None:
        a.size_mb = 20 if q else 200
    if a.push_mb is None:
        a.push_mb = 10 if q else 100
    if a.latency_n is None:
        a.latency_n = 20 if q else 200
    if a.concurrency is None:
        a.concurrency = 8 if q else 64
    if a.reps < 1 or a.size_mb < 1 or a.push_mb < 1:
        ap.error("--reps, --size-mb and --push-mb must be positive")
    a.only = set(x.strip() for x in a.only.split(",") if x.strip())
    bad = a.only - {"fetch", "clone", "push", "latency", "concurrent"}
    if bad:
        ap.error("unknown workload(s): " + ", ".join(sorted(bad)))
    return a


def main(argv=None):
    a = parse_args(argv)
    for tool in ("git", "curl"):
        if not shutil.which(tool):
            raise SystemExit("bench: %s not found" % tool)
    b = Bench(a)
    status = 0
    try:
        b.setup()
        # Pushes last: they add objects (unreachable again afterwards, but
        # still loose or in extra packs) to the upstream repository.
        steps = [("fetch", b.bench_fetch), ("clone", b.bench_clone),
                 ("latency", b.bench_latency),
                 ("concurrent", b.bench_concurrent), ("push", b.bench_push)]
        for name, fn in steps:
            if name not in a.only:
                continue
            try:
                fn()
            except BenchFailure as e:
                b.fail("%s: %s" % (name, e))
            except subprocess.TimeoutExpired as e:
                b.fail("%s: timed out: %s" % (name, e))
        if b.gg and b.gg.running():
            b.collect_rss()
        else:
            b.fail("gitgate is no longer running: %s" % (
                b.gg.stderr_text()[-500:] if b.gg else "not started"))
        b.report()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(b.results, f, indent=2, default=str)
                f.write("\n")
        status = 1 if b.failures else 0
    except (harness.HarnessError, BenchFailure) as e:
        print("bench: setup failed: %s" % e, file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        b.teardown()
    return status


if __name__ == "__main__":
    sys.exit(main())

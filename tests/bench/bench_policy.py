#!/usr/bin/env python3
"""Site-policy benchmark (issue #15): what the content rules cost a push.

    python3 tests/bench/bench_policy.py           # full run (~5.5 min, ~8 GB)
    python3 tests/bench/bench_policy.py --quick   # smoke run (< 1 min)

It reuses bench_proxy.py's machinery (the lighttpd + git http-backend
upstream, the generated repository, /proc accounting) and, in one run,
against one upstream, pushes the same kind of data four ways:

    direct   to the upstream itself, with its own credential
    none     through a gitgate with no policy file (bench_proxy.py's case)
    refs     through a gitgate whose policy has protected_refs only: no
             content rule, so the push takes the pack-scan fast path
    all      through a gitgate whose policy has every content rule on
             (POLICY_ALL): the pack is indexed with libgit2 as it streams
             in, and every new commit's diff is checked and scanned

Workloads (each push lands, is checked, and its branch is deleted again):

    sanity   one small push per content rule through `all`, each of which
             must be refused by that rule (so the timings below are of a
             policy that is really enforced), and a clean one that passes
    push     --push-mb MiB (100) of 1 MiB random files in one commit, as
             bench_proxy.py's push: a fast-forward update of a branch
    history  --history-commits (1000) new commits with text diffs, pushed
             as a new branch, so the mirror has none of them (see
             HISTORY below for where they come from)
    rss      one --rss-mb MiB (1024) push through `all`: files of 256 KiB
             to 16 MiB, half text, half binary; gitgate's VmHWM is reset
             before it (/proc/PID/clear_refs) and read after it
    scan     the secret-scan engine alone: bench_secretscan (built by meson
             next to the gitgate binary), MB/s on one core

HISTORY. By default the commits are the generated repository's own source
history continued: on top of `main`, each commit edits 1-4 of its
src/modNN/fileNNN.c files with gen_repo.py's edit model (lines replaced,
inserted and deleted, from its pool of C-like lines), now and then adds,
deletes or renames a file or adds a small binary, and about every 25
commits a topic branch of 2-5 commits is merged back (a real two-parent
merge). With --history-repo DIR the commits are instead the first
--history-commits commits of a real local repository (e.g. a clone of
git.git): `git fast-export` of them, with every author and committer
rewritten to the bench's identity (sed-style), imported on its own (an
unrelated history, so its root commit adds every file).

Targets are informational (printed, never an error); the exit status is 1
only when something fails functionally (a push that does not land, a
violation that is not refused, gitgate dying). See tests/bench/README.md.
"""

import argparse
import array
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_proxy as bp  # noqa: E402
from bench_proxy import (MIB, REPO, BenchFailure, harness, gen_repo,  # noqa
                         log, median, run, settle, proc_cpu, proc_status)

TARGETS = {
    "push_all": 1.15,   # 100 MiB push, every content rule on
    "push_refs": 1.10,  # 100 MiB push, policy without content rules
    "history": 1.5,     # 1,000 new commits as a new branch
    "rss_mib": 64.0,    # gitgate VmHWM during a 1 GiB push, all rules
    "scan_mbps": 500.0,  # secret scan, MB/s per core
}

IDENT = "Bench Developer <dev@example.invalid>"

# Every content rule on. The bench's own identities (gen_repo's
# bench@, the pushers' push@ and dev@) are all @example.invalid.
POLICY_ALL = {
    "protected_refs": ["main", "release/**", "refs/tags/**",
                       "bench/protected"],
    "protected_paths": [".github/workflows/**", ".github/actions/**",
                        "CODEOWNERS"],
    "forbidden_paths": ["**/*.pem", "**/id_rsa", "**/id_ed25519", "**/.env"],
    "max_file_size": "16M",  # the bench's files are at most 16 MiB
    "commit_emails": ["*@example.invalid"],
    "secrets": True,
    "secret_rules": [{"id": "bench-api-key", "regex": "bench_[0-9a-f]{32}"}],
}
# A policy with no content rule: refs only.
POLICY_REFS = {"protected_refs": POLICY_ALL["protected_refs"]}

PATHS = ("direct", "none", "refs", "all")
PATH_NAMES = {"direct": "direct", "none": "gitgate, no policy",
              "refs": "gitgate, protected_refs only",
              "all": "gitgate, all content rules"}

# (rule the audit must name, path, content, author email or None)
_PAT = "ghp_" + "Zq8" * 12
VIOLATIONS = [
    ("protected_path", ".github/workflows/ci.yml", b"on: push\n", None),
    ("forbidden_path", "deploy/id_rsa", b"not really a key\n", None),
    ("max_file_size", "assets/too-big.bin", None, None),  # 16 MiB + 1
    ("commit_email", "notes/hello.txt", b"hello\n", "x@evil.test"),
    ("secret:github-pat", "src/settings.py",
     b"import os\n\nTOKEN = \"" + _PAT.encode() + b"\"\n", None),
    ("secret:bench-api-key", "conf/app.ini",
     b"[api]\nkey = bench_" + b"0123456789abcdef" * 2 + b"\n", None),
]


def system_busy():
    """CPU seconds all processes have used so far (/proc/stat: all but
    idle and iowait): the difference over a push, minus what its client,
    upstream and gitgate used, is what the rest of the machine took."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / bp.CLK_TCK


def children(pid):
    """Process ids whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


def wait_reaped(pid, timeout=5.0):
    """Wait until pid (lighttpd) has no children left, so its reaped CGI
    children's CPU (cutime) is complete before it is read."""
    end = time.monotonic() + timeout
    while children(pid) and time.monotonic() < end:
        time.sleep(0.02)


class SmapsPeak(threading.Thread):
    """Reads /proc/PID/smaps every interval; keeps the Rss of each mapping
    (by file name; anonymous mappings together) at the highest total."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kib, self.peak = 0, {}
        self._halt = threading.Event()

    def sample(self):
        by, name = {}, None
        try:
            with open("/proc/%d/smaps" % self.pid) as f:
                for line in f:
                    head = line.split(None, 5)
                    if head and "-" in head[0] and len(head) >= 5 and \
                            ":" in head[3]:
                        name = head[5].strip() if len(head) > 5 else ""
                        name = name or "[anon]"
                        if name.startswith("/"):
                            name = name.replace(" (deleted)", "")
                    elif line.startswith("Rss:"):
                        by[name] = by.get(name, 0) + int(line.split()[1])
        except OSError:
            return
        total = sum(by.values())
        if total > self.peak_kib:
            self.peak_kib, self.peak = total, by

    def run(self):
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self):
        self._halt.set()
        self.join()

    def top(self, n=4):
        """[(what, MiB)] of the largest mappings at the peak; paths shown
        by their last two components."""
        out = []
        for k, v in sorted(self.peak.items(), key=lambda kv: -kv[1])[:n]:
            if k.startswith("/"):
                k = "/".join(k.split("/")[-2:])
            out.append((k, v / 1024.0))
        return out


def order(paths, rep):
    """ABBA over any number of paths: rotated every two reps, reversed on
    odd ones (4 paths: d n r a, a r n d, n r a d, d a r n, ...)."""
    k = (rep // 2) % len(paths)
    o = list(paths[k:]) + list(paths[:k])
    return o if rep % 2 == 0 else o[::-1]


# ---------------------------------------------------------------------------
# content


def text_bytes(seed, size, pool):
    """size bytes (cut at a line end) of gen_repo's C-like lines, chosen
    by SHAKE-256 of seed: compressible, realistic-looking source text."""
    n = size // 30 + 16
    idx = array.array("H")
    idx.frombytes(hashlib.shake_256(seed).digest(2 * n))
    mask = len(pool) - 1
    out = b"".join(pool[i & mask] for i in idx)
    while len(out) < size:  # short lines: extend
        out += out[:size - len(out)]
    cut = out.rfind(b"\n", 0, size)
    return out[:cut + 1] if cut > 0 else out[:size]


def random_bytes(seed, size):
    return hashlib.shake_256(seed).digest(size)


class Importer:
    """A bare pusher repository (borrowing the upstream's objects through
    alternates) and a `git fast-import` writing into it. blob() and
    commit() return marks; close() returns {mark: object id}."""

    def __init__(self, bench, name, attributes="*.bin -delta\n",
                 alternates=True):
        self.path = os.path.join(bench.work, name)
        self.env = bench.env
        run(["git", "init", "-q", "--bare", self.path], env=self.env)
        if alternates:
            with open(os.path.join(self.path, "objects", "info",
                                   "alternates"), "w") as f:
                f.write(os.path.join(bench.up.repo_path(REPO),
                                     "objects") + "\n")
        # Random data is not worth a delta search; the client would spend
        # the same seconds on both paths.
        with open(os.path.join(self.path, "info", "attributes"), "w") as f:
            f.write(attributes)
        self.marks_file = os.path.join(self.path, "marks")
        self.fi = subprocess.Popen(
            # unpackLimit=0: keep a pack even of few objects, so that the
            # client's pack-objects reuses them instead of recompressing
            # loose objects (fast-import's default below 100 objects)
            ["git", "-c", "fastimport.unpackLimit=0", "fast-import",
             "--quiet", "--depth=0",
             "--export-marks=" + self.marks_file], cwd=self.path,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=self.env)
        self.w = self.fi.stdin.write
        self.next_mark = 1

    def _mark(self):
        m = self.next_mark
        self.next_mark += 1
        return m

    def blob(self, data):
        m = self._mark()
        self.w(b"blob\nmark :%d\ndata %d\n" % (m, len(data)))
        self.w(data)
        self.w(b"\n")
        return m

    def commit(self, ref, parents, changes, ts, msg, email=None):
        """parents: object ids (str) or marks (int), first parent first;
        changes: [(path, blob mark, or None to delete)]."""
        m = self._mark()
        ident = IDENT if email is None else "Bench Outsider <%s>" % email
        msg = msg.encode() if isinstance(msg, str) else msg
        w = self.w
        w(b"commit %s\nmark :%d\n" % (ref.encode(), m))
        w(("author %s %d +0000\ncommitter %s %d +0000\n" % (
            ident, ts, ident, ts)).encode())
        w(b"data %d\n%s\n" % (len(msg), msg))
        for i, p in enumerate(parents):
            w(b"%s %s\n" % (b"from" if i == 0 else b"merge",
                            (":%d" % p if isinstance(p, int) else p).encode()))
        for path, mark in changes:
            if mark is None:
                w(b"D %s\n" % path.encode())
            else:
                w(b"M 100644 :%d %s\n" % (mark, path.encode()))
        w(b"\n")
        return m

    def close(self):
        self.fi.stdin.close()
        if self.fi.wait() != 0:
            raise BenchFailure("git fast-import into %s failed" % self.path)
        marks = {}
        with open(self.marks_file) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                marks[int(k[1:])] = v
        return marks


class SyntheticHistory:
    """The generated repository's source history continued as n new
    commits on top of its main (see the module docstring). Built once
    (the blobs go into the importer); emit() writes the same commits again
    for each label, with its own dates, hence its own commit ids."""

    def __init__(self, imp, base_files, pool, n, seed="history"):
        self.imp = imp
        self.pool = pool
        self.rng = gen_repo.Rng("bench-policy/" + seed)
        self.commits = []  # (parent indices, -1 = base), changes, message
        state = dict(base_files)  # path -> list of lines (bytes)
        self._build(state, n)

    def _lines(self, n):
        return [self.pool[self.rng.below(len(self.pool))] for _ in range(n)]

    def _edit(self, lines):
        rng = self.rng
        for _ in range(rng.between(1, 6)):
            op = rng.below(3)
            pos = rng.below(len(lines) + 1)
            if op == 0 and lines:
                lines[min(pos, len(lines) - 1)] = self.pool[
                    rng.below(len(self.pool))]
            elif op == 1 or len(lines) < 20:
                lines[pos:pos] = self._lines(rng.between(1, 12))
            else:
                del lines[pos:pos + rng.between(1, 6)]

    def _commit(self, state, parents, avoid=(), allow_tree_ops=True):
        """One ordinary commit on state (edited in place): returns its
        record."""
        rng, imp = self.rng, self.imp
        changes, what = [], []
        paths = [p for p in state if p not in avoid and p.endswith(".c")]
        for _ in range(min(len(paths), 1 + rng.below(4) // 2 +
                           rng.below(2) * rng.below(3))):
            p = paths[rng.below(len(paths))]
            self._edit(state[p])
            changes.append((p, imp.blob(b"".join(state[p]))))
            what.append(os.path.basename(p))
        r = rng.below(100)
        if allow_tree_ops and r < 5:  # a new source file
            p = "src/mod%02d/new%05d.c" % (rng.below(20), len(self.commits))
            state[p] = self._lines(rng.between(40, 400))
            changes.append((p, imp.blob(b"".join(state[p]))))
            what.append("add " + os.path.basename(p))
        elif allow_tree_ops and r < 7 and len(paths) > 40:
            p = paths[rng.below(len(paths))]
            del state[p]
            changes.append((p, None))
            what.append("remove " + os.path.basename(p))
        elif allow_tree_ops and r < 8 and len(paths) > 40:
            p = paths[rng.below(len(paths))]
            q = "src/mod%02d/moved%05d.c" % (rng.below(20), len(self.commits))
            state[q] = state.pop(p)
            self._edit(state[q])
            changes += [(p, None), (q, imp.blob(b"".join(state[q])))]
            what.append("move %s" % os.path.basename(p))
        elif allow_tree_ops and r < 11:
            p = "assets/new/icon-%05d.bin" % len(self.commits)
            changes.append((p, imp.blob(random_bytes(
                b"bench-policy/icon/%d" % len(self.commits),
                rng.between(8 << 10, 64 << 10)))))
            what.append("add " + os.path.basename(p))
        msg = "Change %s\n\nBench history commit %d.\n" % (
            ", ".join(what), len(self.commits))
        self.commits.append((parents, changes, msg))
        return len(self.commits) - 1

    def _build(self, state, n):
        rng = self.rng
        tip = -1
        topic = 0
        while len(self.commits) < n:
            room = n - len(self.commits)
            if room >= 10 and rng.below(25) == 0:
                # a topic branch: its files are left alone on the mainline
                # until it is merged back with a two-parent merge
                topic += 1
                files = [p for p in state if p.endswith(".c")]
                locked = set(files[rng.below(len(files))]
                             for _ in range(rng.between(1, 3)))
                tstate = {p: list(state[p]) for p in locked}
                ttip = tip
                for _ in range(rng.between(2, 5)):
                    ttip = self._commit(tstate, [ttip], allow_tree_ops=False)
                for _ in range(rng.between(0, 3)):
                    tip = self._commit(state, [tip], avoid=locked)
                changes = []
                for p in sorted(locked):
                    if tstate[p] != state[p]:
                        state[p] = tstate[p]
                        changes.append((p, self.imp.blob(b"".join(state[p]))))
                self.commits.append(([tip, ttip], changes,
                                     "Merge branch 'topic-%d'\n" % topic))
                tip = len(self.commits) - 1
            else:
                tip = self._commit(state, [tip])
        self.tip = tip

    def emit(self, ref, base, ts0):
        """Write the commits to ref on top of base; returns the tip mark."""
        marks = []
        for i, (parents, changes, msg) in enumerate(self.commits):
            ps = [base if p < 0 else marks[p] for p in parents]
            marks.append(self.imp.commit(ref, ps, changes, ts0 + 60 * i, msg))
        return marks[self.tip]


def export_real_history(src, n, work, env):
    """The first n commits (on HEAD's first-parent line, with all their
    ancestors) of the local repository src, as a fast-export stream file.
    Returns (stream path, number of commits)."""
    rc, out, err = run(["git", "-C", src, "rev-list", "--first-parent",
                        "--reverse", "HEAD"], env=env)
    if rc != 0:
        raise BenchFailure("--history-repo %s: %s" % (src, err.decode()))
    line = out.decode().split()

    def count(oid):
        return int(run(["git", "-C", src, "rev-list", "--count", oid],
                       env=env)[1])

    lo, hi = 0, len(line) - 1  # the last first-parent commit with <= n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(line[mid]) <= n:
            lo = mid
        else:
            hi = mid - 1
    tip = line[lo]
    got = count(tip)
    clone = os.path.join(work, "history-src.git")
    run(["git", "clone", "-q", "--bare", "--no-local", src, clone], env=env)
    run(["git", "--git-dir=" + clone, "update-ref", "refs/heads/bench-src",
         tip], env=env)
    stream = os.path.join(work, "history.fi")
    with open(stream, "wb") as f:
        p = subprocess.run(["git", "--git-dir=" + clone, "fast-export",
                            "--signed-tags=strip", "--reencode=yes",
                            "refs/heads/bench-src"], stdout=f, env=env)
    shutil.rmtree(clone, ignore_errors=True)
    if p.returncode != 0:
        raise BenchFailure("git fast-export of %s failed" % src)
    return stream, got


_PERSON = re.compile(rb"^(author|committer|tagger) .*<[^>]*> (\d+) ([-+]\d{4})$")


def import_real_history(stream, imp, ref, ts_shift):
    """Feed a fast-export stream into imp, sed-style: every commit goes to
    ref, every author and committer becomes IDENT (dates shifted by
    ts_shift so each label gets its own commit ids); data is copied as is.
    """
    with open(stream, "rb") as f:
        while True:
            line = f.readline()
            if not line:
                break
            if line.startswith(b"data "):
                n = int(line[5:])
                imp.w(line)
                imp.w(f.read(n))
                continue
            body = line.rstrip(b"\n")
            if body.startswith(b"commit ") or body.startswith(b"reset "):
                body = body.split(b" ")[0] + b" " + ref.encode()
            m = _PERSON.match(body)
            if m:
                body = b"%s %s %d %s" % (m.group(1), IDENT.encode(),
                                         int(m.group(2)) + ts_shift,
                                         m.group(3))
            imp.w(body + b"\n")


# ---------------------------------------------------------------------------
# the benchmark


class PolicyBench(bp.Bench):
    def setup(self):
        super().setup()  # upstream, repository, the no-policy gitgate
        a = self.a
        self.sampler.set_phase("idle")
        self.ggs = {"none": self.gg}
        self.urls = {"direct": self.direct_url, "none": self.proxy_url}
        for name, pol in (("refs", POLICY_REFS), ("all", POLICY_ALL)):
            root = os.path.join(self.work, "gitgate-" + name)
            os.makedirs(root)
            with open(os.path.join(root, "policy.json"), "w") as f:
                json.dump(pol, f, indent=2)
            gg = harness.Gitgate(self.up.url, self.up.secret, root=root,
                                 binary=self.binary, keep=True,
                                 extra_config={"policy": "policy.json"})
            gg.start()
            line = [l for l in gg.stderr_text().splitlines()
                    if "site policy" in l]
            if not line:
                raise BenchFailure("gitgate-%s did not log its site policy"
                                   % name)
            log("gitgate-%s: %s" % (name, line[0].split(": ", 1)[-1]))
            tok = gg.mint(repo=REPO, push=["bench/**"], ttl="1d", sub="bench")
            self.ggs[name] = gg
            self.urls[name] = gg.repo_url(REPO, tok)
        self.all_sampler = bp.Sampler(self.ggs["all"].proc.pid)
        self.all_sampler.start()
        self.pool = gen_repo._make_pool()
        self.records = {}  # workload -> path -> [push records]

    def teardown(self):
        for name in ("refs", "all"):
            gg = getattr(self, "ggs", {}).get(name)
            if gg:
                gg.stop()
        if getattr(self, "all_sampler", None):
            self.all_sampler.stop()
        super().teardown()

    def set_phase(self, name):
        self.sampler.set_phase(name)
        self.all_sampler.set_phase(name)
        self.results.setdefault("loadavg", {})[name] = os.getloadavg()[0]

    # -- one push

    def audit_entry(self, gg, ref):
        for line in reversed(gg.audit_text().splitlines()):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            for r in rec.get("refs") or []:
                if r.get("ref") == ref:
                    return r, rec
        return None, None

    def push(self, path, pusher, commit, ref, base=None, expect="update",
             refused_by=None):
        """Push commit to ref through path (base: create the ref there
        first, so the push is an update). Returns a record with the wall
        time and the CPU seconds of client, upstream and that gitgate."""
        gg = self.ggs.get(path)
        if base:
            self.up.git_dir(REPO, "update-ref", ref, base)
        settle()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0 = system_busy()
        up0 = proc_cpu(self.up.proc.pid, True)
        gg0 = proc_cpu(gg.proc.pid) if gg else 0.0
        t0 = time.monotonic()
        rc, _, err = run(["git", "--git-dir=" + pusher, "push", "-q",
                          self.urls[path], "%s:%s" % (commit, ref)],
                         env=self.env)
        secs = time.monotonic() - t0
        wait_reaped(self.up.proc.pid)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        rec = {"s": secs,
               "client": ru1.ru_utime + ru1.ru_stime - ru0.ru_utime -
               ru0.ru_stime,
               "upstream": proc_cpu(self.up.proc.pid, True) - up0,
               "gitgate": (proc_cpu(gg.proc.pid) - gg0) if gg else 0.0}
        rec["other"] = max(0.0, system_busy() - busy0 - rec["client"] -
                           rec["upstream"] - rec["gitgate"])
        landed = self.up.rev_parse(REPO, ref) == commit
        entry = self.audit_entry(gg, ref)[0] if gg else None
        try:
            if refused_by:
                if rc == 0 or landed:
                    raise BenchFailure("push of %s to %s through gitgate-%s "
                                       "was not refused" % (commit[:12], ref,
                                                            path))
                if not entry or entry.get("result") == "ok" or \
                        entry.get("rule") != refused_by:
                    raise BenchFailure(
                        "push to %s: expected refusal by %s, audit says %r"
                        % (ref, refused_by, entry))
                return rec
            if rc != 0 or not landed:
                raise BenchFailure("push %s to %s failed (rc %d, landed %s): "
                                   "%s" % (path, ref, rc, landed,
                                           err.decode(errors="replace")[-500:]))
            if gg and (not entry or entry.get("action") != expect or
                       entry.get("result") != "ok"):
                raise BenchFailure("gitgate-%s audited the push to %s as %r, "
                                   "expected %s/ok" % (path, ref, entry,
                                                       expect))
        finally:
            if self.up.rev_parse(REPO, ref):
                self.up.git_dir(REPO, "update-ref", "-d", ref)
        return rec

    def measure(self, workload, reps, targets, ref_of, base=None,
                expect="update"):
        """One warm-up per path, then reps interleaved pushes per path.
        targets: {label: (pusher repository, commit)} for the labels
        'warm-P' and 'rK-P' (self.labels())."""
        recs = {p: [] for p in PATHS}
        for p in PATHS:
            label = "warm-" + p
            r = self.push(p, *targets[label], ref_of(label), base, expect)
            log("%s warm-up %s: %.2fs" % (workload, p, r["s"]))
        for rep in range(reps):
            for p in order(PATHS, rep):
                label = "r%d-%s" % (rep, p)
                r = self.push(p, *targets[label], ref_of(label), base, expect)
                recs[p].append(r)
                log("%s %s rep %d: %.2fs (gitgate CPU %.2fs)" % (
                    workload, p, rep, r["s"], r["gitgate"]))
        self.records[workload] = recs
        return recs

    @staticmethod
    def labels(paths, reps):
        out = ["warm-" + p for p in paths]
        for rep in range(reps):
            out += ["r%d-%s" % (rep, p) for p in paths]
        return out

    # -- sanity: the policy is enforced

    def bench_sanity(self):
        self.set_phase("sanity")
        t = time.monotonic()
        imp = Importer(self, "sanity.git")
        commits = {}
        ts = gen_repo.BASE_TIME + 3 * 10 ** 7
        for i, (rule, path, content, email) in enumerate(VIOLATIONS):
            if content is None:
                content = random_bytes(b"too-big", 16 * MIB + 1)
            commits[rule] = imp.commit(
                "refs/heads/v%d" % i, [self.head],
                [(path, imp.blob(content))], ts + i, "violates %s\n" % rule,
                email=email)
        commits["clean"] = imp.commit(
            "refs/heads/clean", [self.head],
            [("docs/notes.md", imp.blob(b"# Notes\n\nNothing secret.\n"))],
            ts + 99, "clean change\n")
        marks = imp.close()
        commits = {k: marks[v] for k, v in commits.items()}
        # the first push through `all` fills its mirror (a fetch of the
        # whole repository): time it apart
        r = self.push("all", imp.path, commits["clean"],
                      "refs/heads/bench/sanity-clean", self.head)
        self.results["first_push_all_s"] = r["s"]
        log("first push through gitgate-all (mirror fetched): %.2fs" % r["s"])
        for rule, _, _, _ in VIOLATIONS:
            self.push("all", imp.path, commits[rule],
                      "refs/heads/bench/sanity-%s" % rule.replace(":", "-"),
                      refused_by=rule)
        # protected_refs, on both policies
        for p in ("refs", "all"):
            self.push(p, imp.path, commits["clean"],
                      "refs/heads/bench/protected", self.head,
                      refused_by="protected_ref")
        # and the refs-only policy lets a secret through
        self.push("refs", imp.path, commits["secret:github-pat"],
                  "refs/heads/bench/sanity-refs", expect="create")
        self.results["sanity"] = {"rules_refused": [v[0] for v in VIOLATIONS]
                                  + ["protected_ref"],
                                  "seconds": time.monotonic() - t}
        log("sanity: every content rule refuses its violation through "
            "gitgate-all; protected_ref through both (%.1fs)" % (
                time.monotonic() - t))

    # -- (1) the 100 MiB push

    def bench_push(self):
        a = self.a
        self.set_phase("push")
        labels = self.labels(PATHS, a.reps)
        t = time.monotonic()
        pusher, commits = self.prepare_pushes(labels)
        log("prepared %d push commits of %d MiB (%.1fs)" % (
            len(labels), a.push_mb, time.monotonic() - t))
        ref = lambda label: "refs/heads/bench/%s" % label  # noqa: E731
        self.measure("push", a.reps, {k: (pusher, v) for k, v in
                                      commits.items()}, ref, self.head)
        shutil.rmtree(pusher, ignore_errors=True)

    # -- (2) 1,000 new commits as a new branch

    def base_files(self):
        """{path: lines} of the src/ text files at main."""
        git = ["git", "--git-dir=" + self.up.repo_path(REPO)]
        out = run(git + ["ls-tree", "-r", "main", "src"])[1].decode()
        ents = [l.split(None, 3) for l in out.splitlines()]
        ents = [(e[2], e[3]) for e in ents if e[1] == "blob"]
        p = subprocess.run(git + ["cat-file", "--batch"], capture_output=True,
                           input="".join(o + "\n" for o, _ in ents).encode())
        data, pos, files = p.stdout, 0, {}
        for _, path in ents:
            nl = data.index(b"\n", pos)
            size = int(data[pos:nl].split()[2])
            files[path] = data[nl + 1:nl + 1 + size].splitlines(True)
            pos = nl + 1 + size + 1
        return files

    def prepare_history(self, labels):
        """One branch of new commits per label: {label: (pusher, tip)}."""
        a = self.a
        t = time.monotonic()
        imp = Importer(self, "history.git")
        tips = {}
        if a.history_repo:
            stream, n = export_real_history(
                os.path.abspath(a.history_repo), a.history_commits,
                self.work, self.env)
            imp.close()  # one import per label: each has its own marks
            for k, label in enumerate(labels):
                imp = Importer(self, "history.git-%d" % k, alternates=False)
                import_real_history(stream, imp, "refs/heads/" + label,
                                    10 ** 6 * (k + 1))
                imp.close()
                tips[label] = (imp.path, run(
                    ["git", "--git-dir=" + imp.path, "rev-parse", label],
                    env=self.env)[1].decode().strip())
            source = "first %d commits of %s (fast-export, idents " \
                "rewritten)" % (n, a.history_repo)
            nmerges = None
        else:
            hist = SyntheticHistory(imp, self.base_files(), self.pool,
                                    a.history_commits)
            for k, label in enumerate(labels):
                tips[label] = hist.emit(
                    "refs/heads/" + label, self.head,
                    gen_repo.BASE_TIME + 4 * 10 ** 7 + 10 ** 6 * k)
            marks = imp.close()
            tips = {k: (imp.path, marks[v]) for k, v in tips.items()}
            n = len(hist.commits)
            nmerges = sum(1 for c in hist.commits if len(c[0]) > 1)
            source = "generated repository's src/ history continued"
        # what one push carries (the same for every label)
        some = tips[labels[0]]
        rc, so, _ = run(["git", "--git-dir=" + some[0], "rev-list",
                         "--objects", some[1]] + (
                             [] if a.history_repo else ["--not", self.head]),
                        env=self.env)
        nobj = so.count(b"\n")
        log("prepared %d branches of %d new commits%s, %d new objects each: "
            "%s (%.1fs)" % (len(labels), n, (" (%d merges)" % nmerges)
                            if nmerges is not None else "", nobj, source,
                            time.monotonic() - t))
        self.results["history_info"] = {"commits": n, "merges": nmerges,
                                        "objects": nobj, "source": source}
        return tips

    def bench_history(self):
        self.set_phase("history")
        tips = self.prepare_history(self.labels(PATHS, self.a.reps))
        self.measure("history", self.a.reps, tips,
                     lambda label: "refs/heads/bench/hist-" + label,
                     expect="create")
        for d in set(v[0] for v in tips.values()):
            shutil.rmtree(d, ignore_errors=True)

    # -- (3) peak RSS during a 1 GiB push

    def bench_rss(self):
        a = self.a
        self.set_phase("rss-setup")
        t = time.monotonic()
        imp = Importer(self, "rss.git", attributes="* -delta\n")
        total = a.rss_mb * MIB
        tips = {}
        rng = gen_repo.Rng("bench-policy-rss")
        files = []  # (path, size, text?)
        left, k = total, 0
        while left > 0:
            size = min(left, rng.log_uniform(256 << 10, 16 * MIB))
            files.append(("big/%02d/f%04d.%s" % (k % 16, k, "c" if k % 2 == 0
                                                 else "bin"), size,
                          k % 2 == 0))
            left -= size
            k += 1
        # Each path gets its own bytes: a second push of the same blobs
        # would make the upstream's index-pack compare them with the ones
        # it already has (collision check), only on the second path.
        text_bytes_total = 0
        for n, p in enumerate(("direct", "all")):
            changes = []
            for path, size, text in files:
                seed = ("bench-policy-rss/%s/%s" % (p, path)).encode()
                data = text_bytes(seed, size, self.pool) if text else \
                    random_bytes(seed, size)
                text_bytes_total += len(data) if text and n == 0 else 0
                changes.append((path, imp.blob(data)))
            tips[p] = imp.commit("refs/heads/rss-" + p, [self.head], changes,
                                 gen_repo.BASE_TIME + 5 * 10 ** 7 + n,
                                 "add %d MiB in %d files\n" % (a.rss_mb,
                                                               len(files)))
        marks = imp.close()
        log("prepared %d MiB in %d files (%.0f MiB text, largest %.1f MiB) "
            "(%.1fs)" % (a.rss_mb, len(files), text_bytes_total / MIB,
                         max(f[1] for f in files) / MIB,
                         time.monotonic() - t))
        gg = self.ggs["all"]
        pid = gg.proc.pid
        hwm_before = proc_status(pid).get("VmHWM", 0)
        recs = {}
        for p in ("direct", "all"):
            if p == "all":
                with open("/proc/%d/clear_refs" % pid, "w") as f:
                    f.write("5\n")  # reset VmHWM to the current RSS
                base = proc_status(pid)
                self.set_phase("rss")
                smaps = SmapsPeak(pid)
                smaps.start()
            recs[p] = self.push(p, imp.path, marks[tips[p]],
                                "refs/heads/bench/rss-" + p, self.head)
            log("%d MiB push %s: %.2fs (gitgate CPU %.2fs)" % (
                a.rss_mb, p, recs[p]["s"], recs[p]["gitgate"]))
        st = proc_status(pid)
        smaps.stop()
        self.set_phase("end")
        self.results["rss"] = {
            "mib": a.rss_mb, "files": len(files),
            "text_mib": text_bytes_total / MIB,
            "direct": recs["direct"], "all": recs["all"],
            "vmhwm_kib": st.get("VmHWM"), "vmrss_before_kib": base.get("VmRSS"),
            "vmhwm_run_before_kib": hwm_before,
            "peaks": self.all_sampler.peaks.get("rss", {}),
            "smaps_peak_mib": smaps.peak_kib / 1024.0,
            "smaps_top": smaps.top()}
        shutil.rmtree(imp.path, ignore_errors=True)

    # -- (4) secret-scan throughput

    def bench_scan(self):
        exe = os.path.join(os.path.dirname(self.binary), "tests", "bench",
                           "bench_secretscan")
        if not os.access(exe, os.X_OK):
            self.fail("no %s: build it with ninja" % exe)
            return
        mib, reps = (16, 3) if self.a.quick else (128, 5)
        rc, out, err = run([exe, str(mib), str(reps)])
        if rc != 0:
            self.fail("bench_secretscan failed: %s" % err.decode()[-300:])
            return
        text = out.decode()
        rates = re.findall(r"^secretscan_scan, file-sized buffers\s+(\d+) MB/s",
                           text, re.M)
        lines = re.findall(r"^secretscan_scan, one call per line\s+(\d+) MB/s",
                           text, re.M)
        nrules = re.findall(r"^compile: (\d+) rules", text, re.M)
        self.results["scan"] = {"mib": mib, "reps": reps, "output": text,
                                "mbps": [float(x) for x in rates],
                                "per_line_mbps": [float(x) for x in lines],
                                "rules": [int(x) for x in nrules]}
        log("bench_secretscan %d MiB x %d: %s MB/s (file-sized buffers; "
            "rule sets %s)" % (mib, reps, ", ".join(rates), nrules))

    # -- report

    def report(self):
        r, rows = self.results, []

        def add(*row):
            rows.append(row)

        def verdict(ok):
            return "PASS" if ok else "MISS"

        def ratio_row(name, workload, path, target):
            recs = self.records.get(workload)
            if not recs:
                return
            d = median([x["s"] for x in recs["direct"]])
            g = median([x["s"] for x in recs[path]])
            add(name, "%.2f" % d, "%.2f" % g, "%.3f" % (g / d),
                ("<= %.2f" % target) if target else "(info)",
                verdict(g / d <= target) if target else "")

        a = self.a
        ratio_row("%d MiB push, update, all content rules (s)" % a.push_mb,
                  "push", "all", TARGETS["push_all"])
        ratio_row("%d MiB push, update, protected_refs only (s)" % a.push_mb,
                  "push", "refs", TARGETS["push_refs"])
        ratio_row("  no policy (s)", "push", "none", None)
        hi = r.get("history_info")
        if hi:
            ratio_row("%d new commits, new branch, all rules (s)" %
                      hi["commits"], "history", "all", TARGETS["history"])
            ratio_row("  protected_refs only (s)", "history", "refs", None)
            ratio_row("  no policy (s)", "history", "none", None)
        if "rss" in r:
            x = r["rss"]
            d, g = x["direct"]["s"], x["all"]["s"]
            add("%d MiB push, all content rules (s, 1 run)" % x["mib"],
                "%.2f" % d, "%.2f" % g, "%.3f" % (g / d), "(info)", "")
            if x["vmhwm_kib"]:
                mib = x["vmhwm_kib"] / 1024.0
                add("  gitgate peak RSS, VmHWM (MiB)", "-", "%.1f" % mib, "-",
                    "<= %d MiB" % TARGETS["rss_mib"],
                    verdict(mib <= TARGETS["rss_mib"]))
                pk = x["peaks"]
                add("    of it anonymous, RssAnon peak (MiB)", "-",
                    "%.1f" % (pk.get("RssAnon", 0) / 1024.0), "-", "(info)", "")
                add("    of it file-backed, RssFile peak (MiB)", "-",
                    "%.1f" % (pk.get("RssFile", 0) / 1024.0), "-", "(info)", "")
        if "scan" in r and r["scan"]["mbps"]:
            s = r["scan"]
            add("secret scan, %d rules (MB/s per core)" % s["rules"][0], "-",
                "%.0f" % s["mbps"][0], "-", ">= %d" % TARGETS["scan_mbps"],
                verdict(s["mbps"][0] >= TARGETS["scan_mbps"]))
            if len(s["mbps"]) > 1:
                add("  with %d rules (MB/s per core)" % s["rules"][-1], "-",
                    "%.0f" % s["mbps"][-1], "-", "(info)", "")
            if s["per_line_mbps"]:
                add("  one call per line (MB/s per core)", "-",
                    "%.0f" % s["per_line_mbps"][0], "-", "(info)", "")
        head = ("metric", "direct", "gitgate", "ratio", "target", "")
        widths = [max(len(str(x[i])) for x in rows + [head])
                  for i in range(6)]
        line = "  ".join("%-*s" % (widths[i], head[i]) for i in range(6))
        info = r.get("repo", {})
        print()
        print("gitgate site-policy benchmark: repo %s, pack %.1f MiB, head "
              "%s; reps %d (median); %d CPUs; gitgate buildtype %s" % (
                  REPO, info.get("pack_bytes", 0) / bp.MIB,
                  info.get("head", "?")[:12], a.reps, os.cpu_count(),
                  self.btype))
        print(line)
        print("-" * len(line))
        for row in rows:
            print("  ".join(("%-*s" if i == 0 else "%*s") % (widths[i],
                                                               row[i])
                            for i in range(6)))
        print()
        print("ratio = gitgate time / direct time; targets are informational.")
        if hi:
            print("history: %s; %d new commits%s, %d new objects per push." % (
                hi["source"], hi["commits"],
                (" (%d merges)" % hi["merges"]) if hi["merges"] else "",
                hi["objects"]))
        if "first_push_all_s" in r:
            print("first push through gitgate-all (its mirror fetched "
                  "first): %.2f s" % r["first_push_all_s"])
        print("CPU seconds per push, median (client = git, upstream = "
              "lighttpd + git CGIs, gitgate = that path's gitgate):")
        for workload in ("push", "history"):
            recs = self.records.get(workload)
            if not recs:
                continue
            print("  %-8s " % workload + ";  ".join(
                "%s: wall %.2f, client %.2f, upstream %.2f, gitgate %.2f, "
                "other %.2f" % (
                    p, median([x["s"] for x in recs[p]]),
                    median([x["client"] for x in recs[p]]),
                    median([x["upstream"] for x in recs[p]]),
                    median([x["gitgate"] for x in recs[p]]),
                    median([x["other"] for x in recs[p]])) for p in PATHS))
        if "rss" in r:
            x = r["rss"]
            print("  %-8s " % "rss" + ";  ".join(
                "%s: wall %.2f, client %.2f, upstream %.2f, gitgate %.2f, "
                "other %.2f" % (
                    p, x[p]["s"], x[p]["client"], x[p]["upstream"],
                    x[p]["gitgate"], x[p]["other"])
                for p in ("direct", "all")))
            pk = x["peaks"]
            print("%d MiB push: %d files, %.0f MiB of them text; gitgate-all "
                  "RSS before %.1f MiB, sampled peak %.1f MiB (anon %.1f + "
                  "file %.1f), %d threads; VmHWM over the run before it "
                  "%.1f MiB" % (
                      x["mib"], x["files"], x["text_mib"],
                      (x["vmrss_before_kib"] or 0) / 1024,
                      pk.get("VmRSS", 0) / 1024, pk.get("RssAnon", 0) / 1024,
                      pk.get("RssFile", 0) / 1024, pk.get("Threads", 0),
                      x["vmhwm_run_before_kib"] / 1024))
            print("  largest mappings at the smaps peak (%.1f MiB): %s" % (
                x["smaps_peak_mib"], ", ".join("%s %.1f MiB" % t
                                               for t in x["smaps_top"])))
        print("other = CPU the rest of the machine used meanwhile; load "
              "average at the start of each phase: " + ", ".join(
                  "%s %.1f" % kv for kv in r.get("loadavg", {}).items()))
        ph = self.all_sampler.peaks
        print("gitgate-all RSS peaks by phase (MiB, anon+file):  " + ",  ".join(
            "%s %.1f (%.1f+%.1f)" % (k, v.get("VmRSS", 0) / 1024,
                                      v.get("RssAnon", 0) / 1024,
                                      v.get("RssFile", 0) / 1024)
            for k, v in ph.items() if v))
        if self.failures:
            print()
            for f in self.failures:
                print("FAILED: " + f)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Site-policy benchmark: direct vs through gitgate with "
        "no policy, a refs-only policy and every content rule (see "
        "tests/bench/README.md).")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 20 MiB repo, 8 MiB push, 100 commits, "
                    "64 MiB RSS push, 1 rep")
    ap.add_argument("--size-mb", type=int, help="generated repository, MiB "
                    "(default 200)")
    ap.add_argument("--push-mb", type=int, help="the update push, MiB in "
                    "1 MiB files (default 100)")
    ap.add_argument("--history-commits", type=int,
                    help="new commits pushed as a branch (default 1000)")
    ap.add_argument("--history-repo", help="take the commits from this local "
                    "repository's history instead (git fast-export)")
    ap.add_argument("--rss-mb", type=int, help="the RSS push, MiB (default "
                    "1024)")
    ap.add_argument("--reps", type=int, help="measured pushes per path "
                    "(median; default 3, --quick 1)")
    ap.add_argument("--only", default="sanity,push,history,rss,scan",
                    help="comma list of workloads (sanity,push,history,rss,"
                    "scan)")
    ap.add_argument("--gitgate", help="gitgate binary (default: $GITGATE, "
                    "build-bench/gitgate, build/gitgate)")
    ap.add_argument("--repo-cache", help="keep generated repositories here")
    ap.add_argument("--keep", action="store_true", help="keep the work "
                    "directory")
    ap.add_argument("--workdir", help="work directory (default: a new one "
                    "in $TMPDIR)")
    ap.add_argument("--json", help="also write all results to this file")
    a = ap.parse_args(argv)
    q = a.quick
    for k, full, quick in (("size_mb", 200, 20), ("push_mb", 100, 8),
                           ("history_commits", 1000, 100),
                           ("rss_mb", 1024, 64), ("reps", 3, 1)):
        if getattr(a, k) is None:
            setattr(a, k, quick if q else full)
        if getattr(a, k) < 1:
            ap.error("--%s must be positive" % k.replace("_", "-"))
    a.only = set(x.strip() for x in a.only.split(",") if x.strip())
    bad = a.only - {"sanity", "push", "history", "rss", "scan"}
    if bad:
        ap.error("unknown workload(s): " + ", ".join(sorted(bad)))
    a.upstream_streaming = False  # what bench_proxy.Bench.setup reads
    return a


def main(argv=None):
    a = parse_args(argv)
    b = PolicyBench(a)
    status = 0
    try:
        b.setup()
        for name in ("sanity", "push", "history", "rss", "scan"):
            if name not in a.only:
                continue
            try:
                getattr(b, "bench_" + name)()
            except BenchFailure as e:
                b.fail("%s: %s" % (name, e))
            except subprocess.TimeoutExpired as e:
                b.fail("%s: timed out: %s" % (name, e))
        for name, gg in b.ggs.items():
            if not gg.running():
                b.fail("gitgate-%s is no longer running: %s" % (
                    name, gg.stderr_text()[-500:]))
        b.report()
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"results": b.results, "records": b.records}, f,
                          indent=2, default=str)
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

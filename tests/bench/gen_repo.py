#!/usr/bin/env python3
"""Deterministic generator of a large benchmark repository (stdlib only).

    python3 tests/bench/gen_repo.py OUT.git [--size-mb 200]

Writes a bare repository OUT.git whose single pack (plus reachability
bitmap) is at least --size-mb MiB, and prints the head commit id and the
pack size. Same parameters -> same commit ids on every run and every
machine: all content comes from a fixed seed through SHAKE-256 (no
`random` module, no clock), authors and dates are fixed, and the history is
written with `git fast-import`. (The pack file's own bytes can differ
between git versions or thread counts, since repack's delta search is
multi-threaded; the objects and commit ids cannot.)

What the history looks like, so that it resembles a real repository:

  * ~3 commits per MiB of target size (600 for 200 MiB) on `main`, with a
    lightweight tag every 100 commits;
  * assets/NN/asset-NNNNN.bin: pseudo-random, incompressible binary files
    (8 KiB .. 3 MiB, log-uniform), added over the whole history, a few
    deleted again later -- about 95% of the pack;
  * src/modNN/fileNNN.c: compressible C-like text files, created in the
    first commit and edited (lines replaced, inserted, deleted) by most
    commits -- these become delta chains in the pack;
  * data/blobN.dat: 256 KiB .. 1 MiB binary files rewritten in place
    (one 4 KiB region changed, 8 KiB appended) every ~20 commits --
    binary deltas.

The random assets are marked `-delta` in the repository's info/attributes
so that `git repack` does not spend minutes trying to delta random data
(as real repositories do with `*.png -delta` and the like).
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time

GENERATOR_VERSION = 1
SEED = b"gitgate-bench-v%d" % GENERATOR_VERSION
BASE_TIME = 1700000000  # 2023-11-14T22:13:20Z
IDENT = "Bench Generator <bench@example.invalid>"
MIB = 1024 * 1024


class Rng:
    """Deterministic stream of integers from SHAKE-256 (version independent,
    unlike the random module's algorithms)."""

    def __init__(self, label):
        self._seed = SEED + b"/" + label.encode()
        self._block = 0
        self._buf = b""
        self._pos = 0

    def _refill(self):
        self._buf = hashlib.shake_256(
            self._seed + b"#%d" % self._block).digest(1 << 16)
        self._block += 1
        self._pos = 0

    def u32(self):
        if self._pos + 4 > len(self._buf):
            self._refill()
        v = int.from_bytes(self._buf[self._pos:self._pos + 4], "little")
        self._pos += 4
        return v

    def below(self, n):
        """Uniform integer in [0, n) (n < 2**32; tiny modulo bias is fine)."""
        return self.u32() % n

    def between(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def chance(self, p):
        return self.u32() < p * 4294967296.0

    def log_uniform(self, lo, hi):
        """Integer in [lo, hi], log-uniformly distributed."""
        import math
        f = self.u32() / 4294967296.0
        return int(math.exp(math.log(lo) + f * (math.log(hi) - math.log(lo))))


def random_bytes(label, size):
    return hashlib.shake_256(SEED + b"/bytes/" + label.encode()).digest(size)


# ---------------------------------------------------------------------------
# compressible text: a pool of C-like lines, files are sequences of indices

_WORDS = ("buf len ret err ctx req conn repo ref oid pack idx obj tree blob "
          "commit parent node list head tail next prev size count offset "
          "flags mode path name data value key hash cache lock state stream "
          "pipe chunk header body status token claim policy rule pattern "
          "mirror spool relay audit").split()
_TYPES = ("int", "size_t", "uint64_t", "const char *", "struct buf *",
          "bool", "ssize_t", "unsigned")
POOL_SIZE = 8192


def _make_pool():
    rng = Rng("pool")
    pool = []

    def w():
        return _WORDS[rng.below(len(_WORDS))]

    for i in range(POOL_SIZE):
        kind = rng.below(10)
        ind = "\t" * (1 + rng.below(3))
        if kind == 0:
            line = "%s%s %s_%s = %s(%s, %s);\n" % (
                ind, _TYPES[rng.below(len(_TYPES))], w(), w(), w(), w(), w())
        elif kind == 1:
            line = "%sif (%s->%s != %s_%s)\n" % (ind, w(), w(), w(), w())
        elif kind == 2:
            line = "%sreturn gg_err_set(err, GG_EINVAL, \"%s %s: %%s\", %s);\n" % (
                ind, w(), w(), w())
        elif kind == 3:
            line = "%s/* %s the %s before %s %s */\n" % (ind, w(), w(), w(), w())
        elif kind == 4:
            line = "%sfor (i = 0; i < %s->%s; i++)\n" % (ind, w(), w())
        elif kind == 5:
            line = "%s%s->%s += %d;\n" % (ind, w(), w(), rng.below(4096))
        elif kind == 6:
            line = "}\n"
        elif kind == 7:
            line = "\n"
        elif kind == 8:
            line = "static int %s_%s_%d(struct %s *%s, %s %s)\n{\n" % (
                w(), w(), i, w(), w(), _TYPES[rng.below(len(_TYPES))], w())
        else:
            line = "%s%s(%s, %s, sizeof(%s));\n" % (ind, w(), w(), w(), w())
        pool.append(line.encode())
    return pool


# ---------------------------------------------------------------------------
# the history


class Plan:
    """All sizes derived from the target size only."""

    def __init__(self, size_mb):
        self.size_mb = size_mb
        target = size_mb * MIB
        self.ncommits = max(50, 3 * size_mb)
        self.ntext = max(40, 40 + size_mb)
        self.ndat = max(4, min(16, size_mb // 16))
        rng = Rng("plan")
        # Random assets carry ~98% of the target; the text and .dat
        # history (plus pack overhead) make up the rest and a margin.
        budget = int(target * 0.985)
        self.assets = []  # (commit index, size)
        total = 0
        while total < budget:
            size = rng.log_uniform(8 * 1024, 3 * MIB)
            size = min(size, budget - total) if budget - total > 4096 else size
            self.assets.append([1 + rng.below(self.ncommits - 1), size])
            total += size
        self.assets.sort(key=lambda a: a[0])
        self.asset_bytes = total


def generate(out, size_mb, quiet=False):
    """Build the bare repository at out (must not exist). Returns
    (head commit id, pack bytes, seconds)."""
    t0 = time.monotonic()
    if os.path.exists(out):
        raise SystemExit("gen_repo: %s exists" % out)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
           "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null"}
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", out],
                   check=True, env=env)
    os.makedirs(os.path.join(out, "info"), exist_ok=True)
    with open(os.path.join(out, "info", "attributes"), "w") as f:
        f.write("*.bin -delta\n")
    plan = Plan(size_mb)
    pool = _make_pool()
    rng = Rng("history")

    fi = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--depth=0",
         "--done"], cwd=out, stdin=subprocess.PIPE, env=env,
        stdout=subprocess.DEVNULL)
    w = fi.stdin.write

    def data(payload):
        w(b"data %d\n" % len(payload))
        w(payload)
        w(b"\n")

    def modify(path, payload):
        w(b"M 100644 inline %s\n" % path.encode())
        data(payload)

    # text files: list of pool indices each
    texts = []
    for i in range(plan.ntext):
        n = rng.between(40, 700)
        texts.append(["src/mod%02d/file%03d.c" % (i % 20, i),
                      [rng.below(POOL_SIZE) for _ in range(n)]])
    # binary data files rewritten in place
    dats = []
    for i in range(plan.ndat):
        size = rng.between(256 * 1024, MIB)
        dats.append(["data/blob%d.dat" % i,
                     bytearray(random_bytes("dat%d" % i, size)), 0])
    live_assets = []
    next_asset = 0
    asset_no = 0
    for c in range(plan.ncommits):
        ts = BASE_TIME + c * 600
        msg_lines = []
        w(b"commit refs/heads/main\n")
        w(b"mark :%d\n" % (c + 1))
        w(("author %s %d +0000\n" % (IDENT, ts)).encode())
        w(("committer %s %d +0000\n" % (IDENT, ts)).encode())
        changes = []
        if c == 0:
            for path, lines in texts:
                changes.append((path, b"".join(pool[j] for j in lines)))
            for path, content, _ in dats:
                changes.append((path, bytes(content)))
            changes.append(("README.md", b"# bench repository\n\nGenerated by "
                            b"tests/bench/gen_repo.py (deterministic).\n"))
            msg_lines.append("initial import")
        else:
            # edit a few text files
            for _ in range(rng.between(2, 6)):
                t = texts[rng.below(len(texts))]
                lines = t[1]
                for _e in range(rng.between(1, 8)):
                    op = rng.below(3)
                    pos = rng.below(len(lines) + 1)
                    if op == 0 and lines:
                        lines[min(pos, len(lines) - 1)] = rng.below(POOL_SIZE)
                    elif op == 1 or len(lines) < 20:
                        for k in range(rng.between(1, 12)):
                            lines.insert(pos, rng.below(POOL_SIZE))
                    else:
                        del lines[pos:pos + rng.between(1, 6)]
                changes.append((t[0], b"".join(pool[j] for j in lines)))
            msg_lines.append("edit %d source files" % len(changes))
            # rewrite a .dat file now and then
            if rng.chance(0.05):
                d = dats[rng.below(len(dats))]
                d[2] += 1
                buf = d[1]
                off = rng.below(max(1, len(buf) - 4096))
                buf[off:off + 4096] = random_bytes(
                    "%s@%d" % (d[0], d[2]), 4096)
                buf += random_bytes("%s+%d" % (d[0], d[2]), 8192)
                changes.append((d[0], bytes(buf)))
                msg_lines.append("update %s" % d[0])
            # new assets planned for this commit
            while next_asset < len(plan.assets) and \
                    plan.assets[next_asset][0] <= c:
                size = plan.assets[next_asset][1]
                path = "assets/%02d/asset-%05d.bin" % (asset_no % 64, asset_no)
                changes.append((path, random_bytes(path, size)))
                live_assets.append(path)
                msg_lines.append("add %s (%d bytes)" % (path, size))
                asset_no += 1
                next_asset += 1
            # delete an old asset once in a while
            if live_assets and rng.chance(0.03):
                path = live_assets.pop(rng.below(len(live_assets)))
                changes.append((path, None))
                msg_lines.append("remove %s" % path)
        msg = ("bench commit %d: %s\n\n%s\n" % (
            c, msg_lines[0], "\n".join(msg_lines[1:]))).encode()
        data(msg)
        if c > 0:
            w(b"from :%d\n" % c)
        for path, payload in changes:
            if payload is None:
                w(b"D %s\n" % path.encode())
            else:
                modify(path, payload)
        w(b"\n")
        if c % 100 == 99:
            w(b"reset refs/tags/v0.%d\nfrom :%d\n\n" % (c // 100, c + 1))
    w(b"done\n")
    fi.stdin.close()
    if fi.wait() != 0:
        raise SystemExit("gen_repo: git fast-import failed")
    t_import = time.monotonic() - t0
    # One pack with real deltas (text and .dat chains) and a bitmap, as a
    # hosting server keeps it.
    subprocess.run(["git", "-c", "pack.threads=0", "repack", "-q", "-a",
                    "-d", "-f", "-b", "--window=10", "--depth=50"],
                   cwd=out, check=True, env=env)
    subprocess.run(["git", "config", "http.receivepack", "true"], cwd=out,
                   check=True, env=env)
    head = subprocess.run(["git", "rev-parse", "main"], cwd=out, check=True,
                          env=env, capture_output=True,
                          text=True).stdout.strip()
    secs = time.monotonic() - t0
    if not quiet:
        print("gen_repo: fast-import %.1fs, repack %.1fs" % (
            t_import, secs - t_import), file=sys.stderr)
    return head, pack_bytes(out), secs


def pack_bytes(repo):
    d = os.path.join(repo, "objects", "pack")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
               if f.endswith(".pack"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="bare repository to create (must not exist)")
    ap.add_argument("--size-mb", type=int, default=200,
                    help="minimum pack size in MiB (default 200)")
    ap.add_argument("--force", action="store_true",
                    help="remove OUT first if it exists")
    a = ap.parse_args()
    if a.size_mb < 1:
        ap.error("--size-mb must be at least 1")
    if a.force and os.path.exists(a.out):
        shutil.rmtree(a.out)
    head, size, secs = generate(a.out, a.size_mb)
    print("head %s" % head)
    print("pack %d bytes (%.1f MiB)" % (size, size / MIB))
    print("time %.1f s" % secs)
    if size < a.size_mb * MIB:
        print("gen_repo: pack smaller than %d MiB" % a.size_mb,
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

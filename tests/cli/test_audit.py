#!/usr/bin/env python3
"""CLI tests for `gitgate audit` and `gitgate audit verify`.

The logs are written here, in Python, from the format documented in
include/gitgate/audit/audit.h (canonical JSON as jansson prints it with
COMPACT|SORT_KEYS|ENSURE_ASCII, BLAKE2b-256, genesis = 64 zeros): an
independent implementation of the format that the binary must accept.

Runs the binary named by $GITGATE. Python 3 stdlib only. The last line of
output is "N passed, N failed"; the exit status is non-zero on failure.
"""
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from datetime import datetime, timedelta, timezone

GITGATE = os.environ.get("GITGATE", "build/gitgate")
GENESIS = "0" * 64
ZERO = "0" * 40
ONE = "1" * 40

# ---- the format, written independently of src/audit/audit.c ----

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f",
                  "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def canon_str(s):
    """A JSON string as jansson's JSON_ENSURE_ASCII writes it: upper-case
    hex, surrogate pairs above U+FFFF, '/' and DEL left alone."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif o < 0x20:
            out.append("\\u%04X" % o)
        elif o <= 0x7F:
            out.append(ch)
        elif o <= 0xFFFF:
            out.append("\\u%04X" % o)
        else:
            o -= 0x10000
            out.append("\\u%04X\\u%04X" % (0xD800 | (o >> 10),
                                           0xDC00 | (o & 0x3FF)))
    out.append('"')
    return "".join(out)


def canon(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return canon_str(v)
    if isinstance(v, list):
        return "[" + ",".join(canon(x) for x in v) + "]"
    keys = sorted(v, key=lambda k: k.encode("utf-8"))
    return "{" + ",".join(canon_str(k) + ":" + canon(v[k]) for k in keys) + "}"


def chain_lines(records, prev=GENESIS):
    """Lines (no newline) for records chained from prev; and the last hash."""
    lines = []
    for rec in records:
        obj = dict(rec, prev=prev)
        digest = hashlib.blake2b(canon(obj).encode("ascii"), digest_size=32)
        obj["hash"] = prev = digest.hexdigest()
        lines.append(canon(obj))
    return lines, prev


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def record(i, ago=timedelta(minutes=1), **over):
    rec = {
        "time": rfc3339(datetime.now(timezone.utc) - ago),
        "request_id": "req-%d" % i,
        "sub": "agent-1",
        "jti": "jti-%d" % i,
        "repo": "Octo/Demo",
        "service": "git-upload-pack",
        "client": "127.0.0.1",
        "decision": "allow",
        "reason": None,
        "refs": [],
        "status": 200,
        "bytes_in": 100 + i,
        "bytes_out": 2000 + i,
        "duration_ms": 7,
    }
    rec.update(over)
    return rec


def push_ref(ref, action="create", result="ok"):
    return {"ref": ref, "old": ZERO, "new": ONE, "action": action,
            "result": result}


def run(*args, timeout=30):
    p = subprocess.run([GITGATE, *args], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), \
        p.stderr.decode("utf-8", "replace")


class Tmp(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="gg-audit-cli-")
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, lines, raw_tail=b"\n"):
        data = "\n".join(lines).encode("ascii") + (raw_tail if lines else b"")
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def write_text(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)


class TestFormat(unittest.TestCase):
    def test_ascii_matches_json_module(self):
        # For plain ASCII, canonical == json.dumps(sort_keys, compact).
        rec = dict(record(1, refs=[push_ref("refs/heads/x")]), prev=GENESIS)
        self.assertEqual(canon(rec), json.dumps(
            rec, sort_keys=True, separators=(",", ":"), ensure_ascii=True))

    def test_escapes(self):
        self.assertEqual(canon_str("é\x01\x7f/😀"),
                         '"\\u00E9\\u0001\x7f/\\uD83D\\uDE00"')


class TestVerify(Tmp):
    def five(self, name="a.jsonl"):
        lines, last = chain_lines([record(i) for i in range(5)])
        return self.write(name, lines), lines, last

    def expect_fail(self, path, msg):
        rc, out, err = run("audit", "verify", "--log", path)
        self.assertEqual((rc, out), (1, ""), err)
        self.assertEqual(err, "gitgate: audit verify: " + msg + "\n")

    def expect_ok(self, paths, records, last):
        """verify of the logs at paths, in order: silent success."""
        args = [a for p in paths for a in ("--log", p)]
        rc, out, err = run("audit", "verify", *args)
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, "ok: %d records, chain intact, last hash %s\n"
                         % (records, last))

    def test_ok(self):
        path, _, last = self.five()
        self.expect_ok([path], 5, last)

    def test_empty(self):
        path = self.write("e", [])
        self.expect_ok([path], 0, GENESIS)

    def test_non_ascii_and_controls(self):
        recs = [record(0, sub="josé 😀", reason="tab\there\x1b[31m\x7f"),
                record(1, refs=[push_ref("refs/heads/ünï")])]
        lines, last = chain_lines(recs)
        path = self.write("a", lines)
        rc, out, err = run("audit", "verify", "--log", path)
        self.assertEqual((rc, out), (0, "ok: 2 records, chain intact, "
                                        "last hash %s\n" % last), err)

    def test_edit_one_byte(self):
        path, lines, _ = self.five()
        lines[2] = lines[2].replace('"status":200', '"status":201')
        self.write("a.jsonl", lines)
        self.expect_fail(path, "line 3: hash mismatch (line edited)")

    def test_edit_decision_and_rehash_without_chain(self):
        # Re-hashing an edited line is caught by the next line's prev.
        _, lines, _ = self.five()
        recs = [record(i) for i in range(5)]
        recs[1]["decision"] = "deny"
        forged, _ = chain_lines([recs[1]],
                                prev=json.loads(lines[0])["hash"])
        lines[1] = forged[0]
        path = self.write("a.jsonl", lines)
        self.expect_fail(path, "line 3: prev does not match line 2's hash "
                               "(line deleted or reordered)")

    def test_delete_line(self):
        path, lines, _ = self.five()
        del lines[2]
        self.write("a.jsonl", lines)
        self.expect_fail(path, "line 3: prev does not match line 2's hash "
                               "(line deleted or reordered)")

    def test_swap_lines(self):
        path, lines, _ = self.five()
        lines[2], lines[3] = lines[3], lines[2]
        self.write("a.jsonl", lines)
        self.expect_fail(path, "line 3: prev does not match line 2's hash "
                               "(line deleted or reordered)")

    def test_truncated_last_line(self):
        path, lines, _ = self.five()
        lines[4] = lines[4][:-15]
        self.write("a.jsonl", lines, raw_tail=b"")
        self.expect_fail(path, "line 5: truncated line (no newline at end "
                               "of file)")

    def test_append_garbage(self):
        path, lines, _ = self.five()
        self.write("a.jsonl", lines + ["oops"])
        self.expect_fail(path, "line 6: does not parse as a JSON object "
                               "(edited or corrupted)")

    def test_whitespace_edit(self):
        path, lines, _ = self.five()
        lines[1] = lines[1].replace(",", ", ", 1)
        self.write("a.jsonl", lines)
        self.expect_fail(path, "line 2: not in canonical form (line edited)")

    def test_crlf(self):
        path, lines, _ = self.five()
        self.write("a.jsonl", [ln + "\r" for ln in lines])
        self.expect_fail(path, "line 1: ends with a carriage return (CRLF: "
                               "line edited)")

    def test_missing_field(self):
        rec = record(0)
        del rec["client"]
        lines, _ = chain_lines([rec])
        path = self.write("a.jsonl", lines)
        self.expect_fail(path, "line 1: missing field 'client'")

    def test_continues_from_previous_file(self):
        path, lines, last = self.five()
        self.write("a.jsonl", lines[2:])
        rc, out, err = run("audit", "verify", "--log", path)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "ok: 3 records, chain intact, last hash %s\n"
                         % last)
        self.assertIn("continues from previous file", err)

    def test_rotated_files_in_order(self):
        old, last_old = chain_lines([record(i) for i in range(3)])
        new, last = chain_lines([record(i) for i in range(3, 5)], last_old)
        a1 = self.write("a.jsonl.1", old)
        a = self.write("a.jsonl", new)
        self.expect_ok([a1, a], 5, last)
        rc, out, err = run("audit", "verify", "--log", a, "--log", a1)
        self.assertEqual(rc, 1)
        self.assertIn("gitgate: audit verify: %s: line 1: prev does not "
                      "match the last hash of the previous file (file "
                      "missing or out of order)\n" % a1, err)

    def test_missing_file(self):
        rc, out, err = run("audit", "verify", "--log", self.path("nope"))
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, "gitgate: audit verify: cannot open %s: No "
                              "such file or directory\n" % self.path("nope"))

    def test_config(self):
        os.mkdir(self.path("logs"))
        lines, last = chain_lines([record(0)])
        self.write("logs/audit.jsonl", lines)
        config = self.write_text(
            "gitgate.json",
            '{"listen":"127.0.0.1:0","audit_log":"logs/audit.jsonl"}')
        rc, out, err = run("audit", "verify", "--config", config)
        self.assertEqual((rc, err), (0, ""))
        self.assertIn("ok: 1 records", out)
        # Default name next to the config.
        self.write("audit.jsonl", [])
        config = self.write_text("c2.json", '{"listen":"127.0.0.1:0"}')
        rc, out, err = run("audit", "verify", "--config", config)
        self.assertEqual((rc, out), (0, "ok: 0 records, chain intact, last "
                                        "hash %s\n" % GENESIS), err)
        config = self.write_text("c3.json", '{"audit_log":7}')
        rc, out, err = run("audit", "verify", "--config", config)
        self.assertEqual(rc, 1)
        self.assertIn("audit_log: must be a non-empty string", err)


class TestUsage(Tmp):
    def refused(self, *args):
        """stderr of `gitgate audit ARGS`, which must exit 2, printing
        nothing on stdout."""
        rc, out, err = run("audit", *args)
        self.assertEqual((rc, out), (2, ""), err)
        return err

    def usage_error(self, *args):
        err = self.refused(*args)
        self.assertTrue(err.startswith("gitgate: "), err)
        self.assertIn("usage: gitgate audit", err)
        self.assertEqual(len(err.split("\n")[0].split("\n")), 1)

    def test_help(self):
        for args in (["--help"], ["-h"], ["verify", "--help"]):
            rc, out, err = run("audit", *args)
            self.assertEqual((rc, err), (0, ""))
            self.assertIn("usage: gitgate audit", out)

    def test_usage_errors(self):
        log = self.write("a", [])
        self.usage_error()
        self.usage_error("verify")
        self.usage_error("--log", log, "--config", log)
        self.usage_error("--config", log, "--config", log)
        self.usage_error("--bogus", "--log", log)
        self.usage_error("--log")
        self.usage_error("--log", log, "--decision", "maybe")
        self.usage_error("--log", log, "--since", "10")
        self.usage_error("--log", log, "--since", "0s")
        self.usage_error("--log", log, "stray")
        self.usage_error("verify", "--log", log, "--json")
        self.usage_error("verify", "--log", log, "--repo", "a/b")

    def first_line(self, *args):
        return self.refused(*args).split("\n")[0]

    def test_option_errors_name_the_option(self):
        # "--since X" after verify used to be reported as "option 'X'".
        log = self.write("a", [])
        for since in (["--since", "1h"], ["--since=1h"], ["--since", "X"]):
            self.assertEqual(self.first_line("verify", "--log", log, *since),
                             "gitgate: audit verify: --since: verify takes "
                             "only --config or --log")
        self.assertEqual(self.first_line("verify", "--log", log, "--repo",
                                         "a/b"),
                         "gitgate: audit verify: --repo: verify takes only "
                         "--config or --log")
        self.assertEqual(self.first_line("--log", log, "--since", "X"),
                         "gitgate: audit: --since: 'X' is not a duration "
                         "like 90s, 15m, 1h or 7d")
        self.assertEqual(self.first_line("--log", log, "--decision", "maybe"),
                         "gitgate: audit: --decision: must be allow or deny")
        self.assertEqual(self.first_line("--config", log, "--config", log),
                         "gitgate: audit: --config: given twice")
        self.assertEqual(self.first_line("verify", "--bogus"),
                         "gitgate: audit verify: unknown option '--bogus'")
        self.assertEqual(self.first_line("verify", "--log", log, "stray"),
                         "gitgate: audit verify: unexpected argument 'stray'")


class TestView(Tmp):
    def setUp(self):
        super().setUp()
        self.recs = [
            record(0, ago=timedelta(hours=3), sub="agent-1", repo="octo/demo"),
            record(1, ago=timedelta(minutes=30), sub="agent-2",
                   repo="Octo/Demo", service="git-receive-pack",
                   refs=[push_ref("refs/heads/agent/x"),
                         push_ref("refs/heads/main", "update",
                                  "branch not allowed by token: allowed "
                                  "agent/*")],
                   decision="deny", status=200,
                   reason="branch not allowed\x1b[2J"),
            record(2, ago=timedelta(minutes=5), sub=None, jti=None,
                   repo="octo/other", decision="deny", status=401,
                   reason="bad signature", service=None),
            record(3, ago=timedelta(minutes=2), sub="agent-1",
                   repo="octo/demo", service="git-receive-pack",
                   refs=[push_ref("refs/heads/agent/%d" % i)
                         for i in range(5)]),
        ]
        self.lines, _ = chain_lines(self.recs)
        self.log = self.write("audit.jsonl", self.lines)

    def json_out(self, *args):
        rc, out, err = run("audit", "--log", self.log, "--json", *args)
        self.assertEqual((rc, err), (0, ""))
        return out

    def expect(self, args, indexes):
        want = "".join(self.lines[i] + "\n" for i in indexes)
        self.assertEqual(self.json_out(*args), want, args)

    def test_json_verbatim(self):
        self.expect([], [0, 1, 2, 3])

    def test_filters(self):
        self.expect(["--repo", "OCTO/DEMO"], [0, 1, 3])
        self.expect(["--repo", "octo/other"], [2])
        self.expect(["--repo", "octo/dem"], [])
        self.expect(["--sub", "agent-1"], [0, 3])
        self.expect(["--sub", "Agent-1"], [])
        self.expect(["--decision", "deny"], [1, 2])
        self.expect(["--decision", "allow"], [0, 3])
        self.expect(["--since", "1h"], [1, 2, 3])
        self.expect(["--since", "10m"], [2, 3])
        self.expect(["--since", "4h"], [0, 1, 2, 3])
        self.expect(["--since", "10m", "--decision", "deny"], [2])
        self.expect(["--repo", "octo/demo", "--sub", "agent-1",
                     "--since", "1h"], [3])

    def table(self, *args):
        rc, out, err = run("audit", "--log", self.log, *args)
        self.assertEqual((rc, err), (0, ""))
        return out.splitlines()

    def test_table(self):
        rows = self.table()
        self.assertEqual(len(rows), 5)
        header = rows[0]
        names = ["TIME", "SUB", "REPO", "SERVICE", "DECISION", "REFS",
                 "REASON"]
        self.assertEqual(header.split(), names)
        starts = [header.index(n) for n in names]
        for row in rows[1:]:
            for s in starts[1:]:
                # every column starts right after two spaces of padding
                self.assertEqual(row[s - 2:s], "  ", (row, s))
                self.assertNotEqual(row[s], " ", (row, s))
        self.assertFalse(any(r.endswith(" ") for r in rows))
        self.assertTrue(rows[1].startswith(self.recs[0]["time"] + "  "))
        self.assertIn("agent-2", rows[2])
        self.assertIn("  push  ", rows[2])
        self.assertIn("  refs/heads/agent/x:create:ok,refs/heads/main:update:"
                      "ng  ", rows[2])
        self.assertTrue(rows[2].endswith("  branch not allowed?[2J"), rows[2])
        self.assertNotIn("\x1b", "\n".join(rows))
        sub_col = rows[3][starts[1]:starts[2]].strip()
        self.assertEqual(sub_col, "-")
        self.assertIn("refs/heads/agent/0:create:ok,refs/heads/agent/1:"
                      "create:ok,refs/heads/agent/2:create:ok,+2 more",
                      rows[4])
        self.assertIn("  fetch  ", rows[1])

    def test_table_reason_from_refused_ref(self):
        recs = [record(0, service="git-receive-pack", reason=None,
                       refs=[push_ref("refs/heads/a"),
                             push_ref("refs/heads/main", "force",
                                      "force push not allowed by token")])]
        lines, _ = chain_lines(recs)
        self.write("audit.jsonl", lines)
        rows = self.table()
        self.assertTrue(rows[1].endswith(
            "  refs/heads/a:create:ok,refs/heads/main:force:ng  force push "
            "not allowed by token"), rows[1])

    def test_table_filters_and_widths(self):
        rows = self.table("--repo", "octo/other")
        self.assertEqual(len(rows), 2)
        # widths come from the rows shown: no wide REFS column here
        self.assertIn("DECISION  REFS  REASON", rows[0])
        self.assertTrue(rows[1].endswith("deny      -     bad signature"),
                        rows[1])

    def test_table_empty(self):
        rows = self.table("--sub", "nobody")
        self.assertEqual(rows, ["TIME  SUB  REPO  SERVICE  DECISION  REFS  "
                                "REASON"])

    def test_unparseable_line_skipped(self):
        self.write("audit.jsonl", self.lines[:1] + ["{broken"] + self.lines[1:2])
        rc, out, err = run("audit", "--log", self.log, "--json")
        self.assertEqual(rc, 0)
        self.assertEqual(out, self.lines[0] + "\n" + self.lines[1] + "\n")
        self.assertIn("line 2: not a JSON object, skipped", err)

    def test_config(self):
        config = self.write_text("gitgate.json", '{"audit_log":"audit.jsonl"}')
        rc, out, err = run("audit", "--config", config, "--json",
                           "--decision", "deny")
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, self.lines[1] + "\n" + self.lines[2] + "\n")

    def test_missing_log(self):
        rc, out, err = run("audit", "--log", self.path("nope"))
        self.assertEqual(rc, 1)
        self.assertTrue(err.startswith("gitgate: audit: cannot open "), err)
        self.assertEqual(out, "")  # no table header for a log not read
        # a readable log first, then a missing one: still no partial table
        rc, out, err = run("audit", "--log", self.log, "--log",
                           self.path("nope"))
        self.assertEqual((rc, out), (1, ""), err)

    def test_output_that_cannot_be_written_fails(self):
        for args in ((), ("--json",)):
            with self.subTest(args=args), open("/dev/full", "w") as full:
                p = subprocess.run([GITGATE, "audit", "--log", self.log,
                                    *args], stdout=full,
                                   stderr=subprocess.PIPE, timeout=30)
                self.assertEqual(p.returncode, 1)
                self.assertEqual(p.stderr.decode(),
                                 "gitgate: audit: cannot write to stdout\n")


class Follower:
    """A running `gitgate audit --follow`; its stdout lines in a queue."""

    def __init__(self, *args):
        self.p = subprocess.Popen([GITGATE, "audit", "--follow", *args],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.q = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.q.put(line.decode("utf-8", "replace").rstrip("\n"))

    def take(self, n, timeout=10):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            try:
                got.append(self.q.get(timeout=max(0.01,
                                                  deadline - time.monotonic())))
            except queue.Empty:
                break
        return got

    def quiet(self, wait=0.8):
        time.sleep(wait)
        return self.q.empty()

    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        rc = self.p.wait(timeout=10)
        err = self.p.stderr.read().decode()
        self.p.stdout.close()
        self.p.stderr.close()
        return rc, err


def append(path, lines):
    with open(path, "a") as f:
        f.write("".join(ln + "\n" for ln in lines))


class TestFollow(Tmp):
    def test_follow_json_rotation(self):
        recs = [record(i, decision="allow" if i % 2 else "deny")
                for i in range(12)]
        lines, _ = chain_lines(recs)
        log = self.write("audit.jsonl", lines[:2])
        f = Follower("--log", log, "--json", "--decision", "allow")
        try:
            self.assertEqual(f.take(1), [lines[1]])
            append(log, lines[2:4])
            self.assertEqual(f.take(1), [lines[3]])
            # A line written in two parts is printed once, whole.
            with open(log, "a") as fh:
                fh.write(lines[5][:30])
                fh.flush()
                time.sleep(0.5)
                fh.write(lines[5][30:] + "\n")
            self.assertEqual(f.take(1), [lines[5]])
            # Rotation: rename, the proxy finishes a line in the old file,
            # then a new file appears at the path.
            os.rename(log, log + ".1")
            append(log + ".1", lines[6:8])
            time.sleep(0.5)
            self.write("audit.jsonl", lines[8:10])
            self.assertEqual(f.take(2), [lines[7], lines[9]])
            append(log, lines[10:12])
            self.assertEqual(f.take(1), [lines[11]])
            self.assertTrue(f.quiet())
        finally:
            rc, err = f.stop()
        self.assertEqual((rc, err), (0, ""))

    def test_follow_table_and_truncation(self):
        lines, _ = chain_lines([record(i, sub="s%d" % i) for i in range(4)])
        log = self.write("audit.jsonl", lines[:1])
        f = Follower("--log", log)
        try:
            first = f.take(2)
            self.assertEqual(len(first), 2)
            self.assertTrue(first[0].startswith("TIME"))
            self.assertIn("  s0  ", first[1])
            append(log, lines[1:2])
            got = f.take(1)
            self.assertEqual(len(got), 1)
            self.assertIn("  s1  ", got[0])
            # Truncated in place (copytruncate): read again from the top.
            with open(log, "w") as fh:
                fh.write(lines[2] + "\n")
            got = f.take(1)
            self.assertEqual(len(got), 1)
            self.assertIn("  s2  ", got[0])
        finally:
            rc, err = f.stop(signal.SIGINT)
        self.assertEqual((rc, err), (0, ""))


class TestInstances(Tmp):
    """Logs of several instances behind a load balancer: each its own
    chain, merged by time for review."""

    def setUp(self):
        super().setUp()
        base = datetime.now(timezone.utc) - timedelta(minutes=10)
        self.logs, self.lines, self.last = {}, {}, {}
        # a: records at minutes 0, 3, 6; b: 1, 4, 7; c: 2, 5, 8
        for k, name in enumerate("abc"):
            recs = [record(10 * k + j, ago=timedelta(0),
                           time=rfc3339(base + timedelta(minutes=3 * j + k)),
                           instance="gg-" + name, sub="sub-" + name)
                    for j in range(3)]
            self.lines[name], self.last[name] = chain_lines(recs)
            self.logs[name] = self.write(name + ".jsonl", self.lines[name])

    def args(self, *names):
        return [a for n in names for a in ("--log", self.logs[n])]

    def test_verify_each_chain_on_its_own(self):
        rc, out, err = run("audit", "verify", *self.args("a", "b", "c"))
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, "".join(
            "ok: instance gg-%s (%s): 3 records, chain intact, last hash "
            "%s\n" % (n, self.logs[n], self.last[n]) for n in "abc"))

    def test_verify_names_the_bad_file_and_line(self):
        lines = list(self.lines["b"])
        lines[1] = lines[1].replace('"status":200', '"status":201')
        self.write("b.jsonl", lines)
        rc, out, err = run("audit", "verify", *self.args("a", "b", "c"))
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, "gitgate: audit verify: %s: line 2: hash "
                              "mismatch (line edited)\n" % self.logs["b"])

    def test_rotated_files_of_one_instance_still_chain(self):
        # a's newer file continues a's chain; b stays on its own.
        more, last = chain_lines([record(99, instance="gg-a")],
                                 self.last["a"])
        a2 = self.write("a2.jsonl", more)
        rc, out, err = run("audit", "verify", *self.args("a", "b"),
                           "--log", a2)
        self.assertEqual((rc, err), (0, ""))
        self.assertIn("ok: instance gg-a (%s, %s): 4 records, chain intact, "
                      "last hash %s\n" % (self.logs["a"], a2, last), out)
        # out of order, the link is checked as for any rotated files
        rc, out, err = run("audit", "verify", "--log", a2,
                           *self.args("a"))
        self.assertEqual(rc, 1)
        self.assertIn("%s: line 1: prev does not match the last hash of the "
                      "previous file" % self.logs["a"], err)

    def test_json_merged_by_time(self):
        rc, out, err = run("audit", *self.args("c", "a", "b"), "--json")
        self.assertEqual((rc, err), (0, ""))
        want = [self.lines[n][j] for j in range(3) for n in "abc"]
        self.assertEqual(out, "".join(ln + "\n" for ln in want))

    def test_unreadable_log_prints_nothing(self):
        for extra in ((), ("--json",)):
            rc, out, err = run("audit", *self.args("a", "b"), "--log",
                               self.path("nope"), *extra)
            self.assertEqual((rc, out), (1, ""), extra)
            self.assertIn("cannot open %s" % self.path("nope"), err)

    def test_filters_apply_across_files(self):
        rc, out, err = run("audit", *self.args("a", "b", "c"), "--json",
                           "--sub", "sub-b")
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, "".join(ln + "\n" for ln in self.lines["b"]))

    def test_table_shows_the_instance(self):
        rc, out, err = run("audit", *self.args("a", "b", "c"))
        self.assertEqual((rc, err), (0, ""))
        rows = out.splitlines()
        self.assertEqual(rows[0].split()[:3], ["TIME", "INSTANCE", "SUB"])
        self.assertEqual([r.split()[1] for r in rows[1:]],
                         ["gg-a", "gg-b", "gg-c"] * 3)

    def test_follow_every_instance(self):
        f = Follower(*self.args("a", "b"), "--json")
        try:
            self.assertEqual(len(f.take(6)), 6)
            more, _ = chain_lines([record(50, instance="gg-b")],
                                  self.last["b"])
            append(self.logs["b"], more)
            self.assertEqual(f.take(1), more)
            more, _ = chain_lines([record(51, instance="gg-a")],
                                  self.last["a"])
            append(self.logs["a"], more)
            self.assertEqual(f.take(1), more)
        finally:
            rc, err = f.stop()
        self.assertEqual((rc, err), (0, ""))


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[__name__])
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

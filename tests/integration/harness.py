#!/usr/bin/env python3
"""Real-parts test harness for gitgate (Python 3 stdlib only).

    Upstream  a real smart-HTTP git server on a free loopback port: lighttpd
              running `git http-backend` as CGI, demanding HTTP Basic auth
              `x-access-token:<secret>` (secret generated per run), accepting
              chunked request bodies and protocol v2.
    Gitgate   `gitgate keygen` + a config file + `gitgate serve`, waited for
              on GET /healthz; mint/revoke/inspect wrappers; stderr captured.
    git()     the real git client in a clean environment (own HOME, no system
              config, no prompts, no credential helpers).

Everything lives in temporary directories that are removed on stop(); every
server started here is also stopped at interpreter exit (atexit) and on
SIGTERM once run_suite() is in charge.

Self-check of the upstream alone (no gitgate needed):
    python3 tests/integration/harness.py --selfcheck
"""

import atexit
import base64
import gzip
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("GG_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(HERE))

UPSTREAM_USER = "x-access-token"

# Fixed identity and dates so repositories built by create_repo() have the
# same object ids on every run.
_FIXED_DATE = "1700000000 +0000"


class HarnessError(Exception):
    """A server could not be started or a helper command failed."""


# --------------------------------------------------------------------------
# process bookkeeping: whatever we start, we stop


_live = set()
_live_lock = threading.Lock()


def _register(obj):
    with _live_lock:
        _live.add(obj)


def _unregister(obj):
    with _live_lock:
        _live.discard(obj)


@atexit.register
def _stop_all():
    with _live_lock:
        objs = list(_live)
    for obj in objs:
        try:
            obj.stop()
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _kill_process(proc, sig=signal.SIGTERM, timeout=10.0):
    """Signal a process we started (its own session) and reap it; escalate
    to SIGKILL on the whole group if it does not exit. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait(timeout=timeout)
    # children of a server (CGI processes) share its process group
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.returncode


# --------------------------------------------------------------------------
# small helpers


def free_port(host="127.0.0.1"):
    """A TCP port that was free on host a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.05):
    """Poll pred() until it returns a truthy value or timeout seconds pass;
    returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def basic_auth(user, password):
    raw = ("%s:%s" % (user, password)).encode()
    return "Basic " + base64.b64encode(raw).decode()


def bearer_auth(token):
    return "Bearer " + token


class Response:
    """status, headers (lower-case names → value), body (bytes)."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers,
                                        self.body[:200])


http_transcript = []  # every Response returned by http_request()


def tls_context(ca_file):
    """A client context trusting only ca_file (TLS 1.2+, hostname checked)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def http_request(port, method, path, headers=None, body=None, host="127.0.0.1",
                 timeout=30.0, tls_ca=None):
    """One HTTP/1.1 request with http.client on its own connection; over
    HTTPS trusting only tls_ca when given."""
    if tls_ca:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                           context=tls_context(tls_ca))
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        resp = Response(r.status, r.reason, hdrs, data)
    finally:
        conn.close()
    http_transcript.append(resp)
    return resp


def pkt_line(data):
    if isinstance(data, str):
        data = data.encode()
    return b"%04x" % (len(data) + 4) + data


def upload_pack_request_v0(want_oids):
    """A minimal stateless protocol-v0 upload-pack request body."""
    body = b""
    for oid in want_oids:
        body += pkt_line("want %s\n" % oid)
    return body + b"0000" + pkt_line("done\n")


def gzip_bytes(data):
    return gzip.compress(data, mtime=0)


# --------------------------------------------------------------------------
# the git client


_default_home = None
_default_home_lock = threading.Lock()
git_transcript = []  # (args, rc, stdout, stderr) of every git() call
_transcript_lock = threading.Lock()


def _make_home(path):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, ".gitconfig"), "w") as f:
        f.write("[user]\n\tname = Harness\n\temail = harness@example.invalid\n"
                "[init]\n\tdefaultBranch = main\n"
                "[advice]\n\tdetachedHead = false\n"
                "[credential]\n\thelper =\n"
                "[protocol]\n\tallow = always\n")
    return path


def default_home():
    global _default_home
    with _default_home_lock:
        if _default_home is None:
            d = tempfile.mkdtemp(prefix="gg-home-")
            atexit.register(shutil.rmtree, d, True)
            _default_home = _make_home(d)
        return _default_home


def git_env(home=None, extra=None):
    """A clean environment for the git client: only PATH and locale carried
    over; no GIT_* variable, credential helper or system config leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C",
        "LC_ALL": "C",
        "HOME": home or default_home(),
        "XDG_CONFIG_HOME": os.path.join(home or default_home(), ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Harness",
        "GIT_AUTHOR_EMAIL": "harness@example.invalid",
        "GIT_COMMITTER_NAME": "Harness",
        "GIT_COMMITTER_EMAIL": "harness@example.invalid",
    }
    if extra:
        env.update(extra)
    return env


def git(*args, cwd=None, env=None, check=False, input=None, timeout=600,
        home=None):
    """Run the real git client; returns (rc, stdout, stderr) as text.
    env adds to (or overrides) the clean environment of git_env()."""
    cmd = ["git"] + [str(a) for a in args]
    p = subprocess.run(cmd, cwd=cwd, env=git_env(home, env), input=input,
                       capture_output=True, timeout=timeout,
                       text=True, errors="replace")
    with _transcript_lock:
        git_transcript.append((cmd, p.returncode, p.stdout, p.stderr))
    if check and p.returncode != 0:
        raise HarnessError("%s failed (%d):\n%s%s" % (
            " ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p.returncode, p.stdout, p.stderr


def git_out(*args, **kw):
    """git(..., check=True) and return stripped stdout."""
    kw["check"] = True
    return git(*args, **kw)[1].strip()


def commit_file(worktree, path, content, message=None, fixed_date=False):
    """Write content (str or bytes) to worktree/path, add and commit it;
    returns the new commit id."""
    full = os.path.join(worktree, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(full, mode) as f:
        f.write(content)
    git("add", "--", path, cwd=worktree, check=True)
    env = None
    if fixed_date:
        env = {"GIT_AUTHOR_DATE": _FIXED_DATE,
               "GIT_COMMITTER_DATE": _FIXED_DATE}
    git("commit", "-q", "-m", message or ("update " + path), cwd=worktree,
        env=env, check=True)
    return git_out("rev-parse", "HEAD", cwd=worktree)


def pseudo_random_bytes(size, seed=b"gitgate"):
    """Deterministic, incompressible bytes (SHAKE-256 stream of seed)."""
    if isinstance(seed, str):
        seed = seed.encode()
    return hashlib.shake_256(seed).digest(size)


BIG_SIZE = 12 * 1024 * 1024


def commit_big_file(worktree, size=BIG_SIZE, seed=b"gitgate-big",
                    path="big.bin", message=None):
    """Commit a deterministic pseudo-random file of size bytes (> 10 MB by
    default, so its pack exceeds git's http.postBuffer and git pushes it
    with a chunked request after a 4-byte probe). Returns the commit id."""
    return commit_file(worktree, path, pseudo_random_bytes(size, seed),
                       message or "big file %s (%d bytes)" % (path, size))


# --------------------------------------------------------------------------
# the upstream: lighttpd + git http-backend


def _git_exec_path():
    p = subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                       check=True)
    return p.stdout.strip()


def _lighttpd_binary():
    for c in (shutil.which("lighttpd"), "/usr/sbin/lighttpd"):
        if c and os.access(c, os.X_OK):
            return c
    raise HarnessError("lighttpd not found (apt-get install -y lighttpd)")


def _lighttpd_quote(s):
    if '"' in s or "\\" in s or "\n" in s:
        raise HarnessError("unsupported character in lighttpd path: %r" % s)
    return '"%s"' % s


# The CGI wrapper of Upstream(app_tokens=True), written to ROOT/cgi/. It
# plays GitHub's git front end for App installation tokens: Basic
# x-access-token:<token>, the token looked up (by its SHA-256) in the table
# the stand-in writes; 401 with WWW-Authenticate for no/unknown/expired/
# not-yet-valid tokens and for a token of another repository, 403 for
# receive-pack with a contents:read token; otherwise git http-backend is
# exec'd with the environment lighttpd gave (plus REMOTE_USER/AUTH_TYPE, as
# mod_auth sets them). One JSON line per request goes to GG_APP_LOG, naming
# the token by the stand-in's id only.
APP_UPSTREAM_CGI = r'''#!@PYTHON@ -S
import base64, hashlib, json, os, sys, time


def log(rec):
    path = os.environ.get("GG_APP_LOG")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(rec, sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)


def drain():
    try:
        n = int(os.environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        n = 0
    while n > 0:
        b = sys.stdin.buffer.read(min(n, 1 << 16))
        if not b:
            break
        n -= len(b)


def deny(rec, status, reason):
    rec.update(decision="deny", status=status, reason=reason)
    log(rec)
    drain()
    head = "Status: %d %s\r\n" % (status, {401: "Unauthorized",
                                          403: "Forbidden",
                                          404: "Not Found"}[status])
    if status == 401:
        head += 'WWW-Authenticate: Basic realm="GitHub"\r\n'
    sys.stdout.write(head + "Content-Type: text/plain\r\n\r\n" + reason +
                     "\n")
    sys.stdout.flush()
    sys.exit(0)


def main():
    env = os.environ
    now = time.time()
    path = env.get("PATH_INFO", "")
    query = env.get("QUERY_STRING", "")
    parts = path.strip("/").split("/")
    repo = None
    if len(parts) >= 3 and parts[1].endswith(".git"):
        repo = parts[0] + "/" + parts[1][:-4]
    service = None
    if path.endswith("/info/refs"):
        for kv in query.split("&"):
            if kv.startswith("service="):
                service = kv[len("service="):]
    elif path.endswith("/git-upload-pack"):
        service = "git-upload-pack"
    elif path.endswith("/git-receive-pack"):
        service = "git-receive-pack"
    rec = {"time": now, "method": env.get("REQUEST_METHOD", ""),
           "path": path, "repo": repo, "service": service,
           "ua": env.get("HTTP_USER_AGENT", ""), "token": None,
           "contents": None, "workflows": None, "status": None,
           "reason": ""}
    auth = env.get("HTTP_AUTHORIZATION", "")
    if not auth.startswith("Basic "):
        deny(rec, 401, "no credential" if not auth else
             "not a Basic credential")
    try:
        user, _, password = base64.b64decode(
            auth[6:].strip(), validate=True).decode().partition(":")
    except Exception:
        deny(rec, 401, "unparseable Basic credential")
    if user != "x-access-token":
        deny(rec, 401, "user must be x-access-token")
    try:
        with open(env["GG_APP_TOKENS"]) as f:
            table = json.load(f)
    except (OSError, ValueError, KeyError):
        table = {}
    entry = table.get(hashlib.sha256(password.encode()).hexdigest())
    if entry is None:
        deny(rec, 401, "unknown token")
    rec.update(token=entry["id"], contents=entry.get("contents"),
               workflows=entry.get("workflows"))
    if now < entry.get("valid_from", 0):
        deny(rec, 401, "token not valid yet (replication delay)")
    if now >= entry["expires"]:
        deny(rec, 401, "token expired")
    if repo is None:
        deny(rec, 404, "not a repository path")
    owner, _, name = repo.partition("/")
    if owner.lower() != entry["owner"].lower() or (
            entry.get("repos") is not None and
            name.lower() not in [r.lower() for r in entry["repos"]]):
        deny(rec, 401, "token not valid for %s" % repo)
    if service not in ("git-upload-pack", "git-receive-pack"):
        deny(rec, 403, "only smart HTTP is served")
    if entry.get("contents") not in ("read", "write"):
        deny(rec, 403, "token has no contents permission")
    if service == "git-receive-pack" and entry.get("contents") != "write":
        deny(rec, 403, "Permission to %s.git denied to app (contents:%s)" %
             (repo, entry.get("contents")))
    rec.update(decision="pass")
    log(rec)
    backend = env["GG_HTTP_BACKEND"]
    child = dict(env)
    for k in ("GG_APP_TOKENS", "GG_APP_LOG", "GG_HTTP_BACKEND"):
        child.pop(k, None)
    child["REMOTE_USER"] = user
    child["AUTH_TYPE"] = "Basic"
    os.execve(backend, [backend], child)


main()
'''


class TestCA:
    """A certificate authority made with openssl for one test, issuing
    server certificates for 127.0.0.1 with any validity period (`openssl
    ca`, so expired and not-yet-valid ones too).

        ca = TestCA(dir)
        cert, key = ca.issue("server", days=30)
        cert, key = ca.issue("old", start="20200101000000Z",
                             end="20200201000000Z")
        ca.serial(cert)   # "1A2B..." as openssl prints it
    """

    def __init__(self, root):
        if not shutil.which("openssl"):
            raise HarnessError("TestCA needs the openssl tool: apt-get "
                               "install openssl")
        self.root = os.path.abspath(root)
        os.makedirs(os.path.join(self.root, "issued"), exist_ok=True)
        self.ca_file = self._p("ca.pem")
        self.ca_key = self._p("ca.key")
        open(self._p("index.txt"), "w").close()
        with open(self._p("serial"), "w") as f:
            f.write("1000\n")
        with open(self._p("ca.cnf"), "w") as f:
            f.write(self._CNF % {"root": self.root})
        with open(self._p("ext.cnf"), "w") as f:
            # DNS:127.0.0.1 too: mbedTLS 2.28 (libgit2's TLS on Debian
            # 12) matches the host only against dNSName entries.
            f.write("subjectAltName = IP:127.0.0.1, DNS:127.0.0.1\n"
                    "basicConstraints = CA:FALSE\n")
        self._openssl("req", "-x509", *self._EC, "-keyout", self.ca_key,
                      "-out", self.ca_file, "-days", "60",
                      "-subj", "/CN=gitgate test CA")

    _EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes"]
    _CNF = """[ca]
default_ca = test_ca
[test_ca]
database = %(root)s/index.txt
new_certs_dir = %(root)s/issued
serial = %(root)s/serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
"""

    def _p(self, name):
        return os.path.join(self.root, name)

    def _openssl(self, *args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True)
        if r.returncode != 0:
            raise HarnessError("openssl %s failed: %s" % (
                args[0], r.stderr.decode(errors="replace")))
        return r.stdout.decode()

    def issue(self, name, days=30, start=None, end=None, key=None):
        """Write NAME.crt and NAME.key (0600; or reuse key, a path) signed
        by this CA; start/end as openssl's YYYYMMDDHHMMSSZ. Returns the
        paths (cert, key)."""
        crt, csr = self._p(name + ".crt"), self._p(name + ".csr")
        if key is None:
            key = self._p(name + ".key")
            self._openssl("req", *self._EC, "-keyout", key, "-out", csr,
                          "-subj", "/CN=127.0.0.1")
            os.chmod(key, 0o600)
        else:
            self._openssl("req", "-new", "-key", key, "-out", csr,
                          "-subj", "/CN=127.0.0.1")
        when = (["-startdate", start] if start else []) + (
            ["-enddate", end] if end else ["-days", str(days)])
        self._openssl("ca", "-batch", "-notext", "-config", self._p("ca.cnf"),
                      "-cert", self.ca_file, "-keyfile", self.ca_key,
                      "-in", csr, "-out", crt, "-extfile", self._p("ext.cnf"),
                      *when)
        return crt, key

    def serial(self, cert_path=None, pem=None):
        """The certificate's serial as hex digits, upper case."""
        args = ["x509", "-noout", "-serial"]
        if pem is None:
            out = self._openssl(*args, "-in", cert_path)
        else:
            r = subprocess.run(["openssl"] + args, input=pem.encode(),
                               capture_output=True, check=True)
            out = r.stdout.decode()
        return out.strip().split("=", 1)[1]


def peer_certificate_pem(port, ca_file, host="127.0.0.1", timeout=5.0):
    """The certificate a new TLS connection to port is served, as PEM."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with tls_context(ca_file).wrap_socket(raw, server_hostname=host) as s:
            return ssl.DER_cert_to_PEM_cert(s.getpeercert(binary_form=True))


class Upstream:
    """A real smart-HTTP git server on 127.0.0.1:<free port>.

    URL layout is GitHub's: http://127.0.0.1:PORT/OWNER/NAME.git/... maps to
    the bare repository ROOT/repos/OWNER/NAME.git. Every request needs Basic
    auth x-access-token:<secret>; receive-pack is enabled.

        with Upstream() as up:
            oid = up.create_repo("acme/widgets", commits=3)
            up.url, up.secret, up.rev_parse("acme/widgets", "main")
    """

    def __init__(self, root=None, secret=None, port=None, keep=False,
                 stream_response_body=0, tls=False, compress=False,
                 app_tokens=False, host="127.0.0.1", netns=None):
        # host: the address lighttpd binds and the URLs name. netns: run
        # lighttpd inside that network namespace (`ip netns exec NS`), e.g.
        # behind a shaped veth pair (tests/bench/bench_cache.py); host is
        # then the namespace's own address.
        self.host = host
        self.netns = netns
        # app_tokens: instead of mod_auth and the one static secret, every
        # request goes through a CGI wrapper (APP_UPSTREAM_CGI below) that
        # accepts only the GitHub App installation tokens listed in
        # app_tokens_path (written by ghapp_standin.GitHubAppStandin),
        # enforcing each token's repository, permission, expiry and
        # valid-from, and logging each request to app_log_path.
        self.app_tokens = bool(app_tokens)
        # stream_response_body: lighttpd's server.stream-response-body.
        # 0 (its default) buffers the whole CGI reply and then sends it
        # with Content-Length; 2 sends it as the CGI writes it (chunked),
        # as a hosting server does.
        self.stream_response_body = stream_response_body
        # compress: gzip the ref advertisements for clients that accept it
        # (mod_deflate), as many hosting front ends do.
        self.compress = compress
        # tls: serve HTTPS with a certificate from a CA made for this
        # upstream (ca_file), which nothing trusts unless told to.
        self.tls = tls
        self._own_root = root is None
        self.root = os.path.abspath(root) if root else tempfile.mkdtemp(
            prefix="gg-upstream-")
        os.makedirs(self.root, exist_ok=True)
        self.keep = keep
        self.secret = secret or ("ghs_" + secrets.token_hex(20))
        self.port = port
        self._fixed_port = port is not None
        self.proc = None
        self.repos_dir = os.path.join(self.root, "repos")
        self.conf_path = os.path.join(self.root, "lighttpd.conf")
        self.users_path = os.path.join(self.root, "users")
        self.error_log = os.path.join(self.root, "error.log")
        self.access_log = os.path.join(self.root, "access.log")
        self.stderr_path = os.path.join(self.root, "lighttpd.stderr")
        self.home = os.path.join(self.root, "home")
        self.upload_dir = os.path.join(self.root, "uploads")
        for d in (self.repos_dir, self.home, self.upload_dir):
            os.makedirs(d, exist_ok=True)
        _make_home(self.home)
        self._write_users(self.secret)
        self.app_tokens_path = os.path.join(self.root, "app-tokens.json")
        self.app_log_path = os.path.join(self.root, "app-upstream.jsonl")
        self.app_cgi_path = os.path.join(self.root, "cgi", "gh-upstream")
        if self.app_tokens:
            self._write_app_cgi()
        self.ca_file = self._make_certificates() if tls else None
        _register(self)  # stopped and cleaned up at exit at the latest

    def _write_app_cgi(self):
        os.makedirs(os.path.dirname(self.app_cgi_path), exist_ok=True)
        with open(self.app_cgi_path, "w") as f:
            f.write(APP_UPSTREAM_CGI.replace("@PYTHON@", sys.executable))
        os.chmod(self.app_cgi_path, 0o755)
        if not os.path.exists(self.app_tokens_path):
            self.write_app_tokens({})

    def write_app_tokens(self, table):
        """Replace the token table (atomically): {sha256(token) hex: {"id",
        "owner", "repos" (names, or None for every repository of owner),
        "contents", "workflows", "expires", "valid_from"}}."""
        tmp = self.app_tokens_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(table, f)
        os.replace(tmp, self.app_tokens_path)

    def app_log(self):
        """The wrapper's records, one per request: time, method, path,
        repo, service, ua, token (the stand-in's token id, never the
        token), contents, workflows, decision ("pass" or "deny"), status
        (401/403 when denied) and reason."""
        out = []
        try:
            with open(self.app_log_path, errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if line:
                        out.append(json.loads(line))
        except OSError:
            pass
        return out

    def _make_certificates(self):
        """A CA and a server certificate for 127.0.0.1 signed by it (EC
        P-256, valid two days); returns the CA certificate's path."""
        mod = os.path.join(os.path.dirname(os.path.realpath(
            _lighttpd_binary())), "..", "lib", "lighttpd", "mod_openssl.so")
        if not os.path.exists(mod) or not shutil.which("openssl"):
            raise HarnessError("a TLS upstream needs lighttpd's mod_openssl "
                               "and the openssl tool: apt-get install "
                               "lighttpd-mod-openssl openssl")
        d = os.path.join(self.root, "tls")
        os.makedirs(d, exist_ok=True)
        p = lambda name: os.path.join(d, name)
        with open(p("ext.cnf"), "w") as f:
            # DNS:127.0.0.1 too: mbedTLS 2.28 (libgit2's TLS on Debian
            # 12) matches the host only against dNSName entries.
            f.write("subjectAltName = IP:127.0.0.1, DNS:127.0.0.1\n"
                    "basicConstraints = CA:FALSE\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        for args in (
                ["req", "-x509"] + ec + ["-keyout", p("ca.key"), "-out",
                 p("ca.pem"), "-days", "2", "-subj", "/CN=gitgate test CA"],
                ["req"] + ec + ["-keyout", p("server.key"), "-out",
                 p("server.csr"), "-subj", "/CN=127.0.0.1"],
                ["x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"),
                 "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2",
                 "-extfile", p("ext.cnf"), "-out", p("server.crt")]):
            r = subprocess.run(["openssl"] + args, capture_output=True)
            if r.returncode != 0:
                raise HarnessError("openssl %s failed: %s" % (
                    args[0], r.stderr.decode(errors="replace")))
        return p("ca.pem")

    # -- configuration

    def _write_users(self, secret):
        tmp = self.users_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%s:%s\n" % (UPSTREAM_USER, secret))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.users_path)

    def _write_conf(self):
        backend = os.path.join(_git_exec_path(), "git-http-backend")
        q = _lighttpd_quote
        if self.app_tokens:
            alias_target = self.app_cgi_path + "/"
            auth_mods = ""
            app_env = (
                '\n    "GG_APP_TOKENS" => %s,\n    "GG_APP_LOG" => %s,'
                '\n    "GG_HTTP_BACKEND" => %s,' % (
                    q(self.app_tokens_path), q(self.app_log_path),
                    q(backend)))
            auth_conf = (
                "\n# app_tokens mode: no mod_auth. lighttpd hands the "
                "Authorization header\n# to the CGI wrapper as "
                "HTTP_AUTHORIZATION; the wrapper decides, then execs\n"
                "# git http-backend (see APP_UPSTREAM_CGI).\n")
        else:
            alias_target = backend + "/"
            auth_mods = '"mod_auth", "mod_authn_file", '
            app_env = ""
            auth_conf = """
# mod_authn_file re-reads the user file on every request, so changing the
# secret takes effect at once (reject_credential / accept_credential).
auth.backend = "plain"
auth.backend.plain.userfile = %s
auth.require = ( "/" => ( "method" => "basic", "realm" => "upstream",
                          "require" => "valid-user" ) )
""" % q(self.users_path)
        conf = """\
# generated by tests/integration/harness.py
server.modules = ( "mod_alias", {auth_mods}"mod_setenv",
                   "mod_cgi", "mod_accesslog"{deflate_mod} )
{tls}
{deflate}
server.bind = "{host}"
server.port = {port}
server.document-root = {repos}
server.errorlog = {errlog}
server.upload-dirs = ( {uploads} )
server.max-request-size = 0
# git sends pushes larger than http.postBuffer with Transfer-Encoding:
# chunked; lighttpd de-chunks and buffers the body, then hands it to the CGI
# with CONTENT_LENGTH (the default, non-streaming mode).
server.stream-request-body = 0
server.stream-response-body = {stream_resp}
accesslog.filename = {acclog}
accesslog.format = "%h %u \\"%r\\" %s %b auth=\\"%{{Authorization}}i\\" proto=\\"%{{Git-Protocol}}i\\" te=\\"%{{Transfer-Encoding}}i\\" ce=\\"%{{Content-Encoding}}i\\""

# Every URL is a path below git http-backend: lighttpd finds the executable
# and passes the rest as PATH_INFO (/OWNER/NAME.git/info/refs, ...).
alias.url = ( "/" => {alias_target} )
cgi.assign = ( "" => "" )
# Git-Protocol reaches the CGI as HTTP_GIT_PROTOCOL, which http-backend
# turns into GIT_PROTOCOL itself (protocol v2).
setenv.add-environment = (
    "GIT_PROJECT_ROOT" => {repos},
    "GIT_HTTP_EXPORT_ALL" => "1",
    "GIT_CONFIG_NOSYSTEM" => "1",
    "HOME" => {home},{app_env}
)
{auth_conf}""".format(
           port=self.port, host=self.host,
           repos=q(self.repos_dir), errlog=q(self.error_log),
           uploads=q(self.upload_dir), acclog=q(self.access_log),
           alias_target=q(alias_target), home=q(self.home),
           auth_mods=auth_mods, app_env=app_env, auth_conf=auth_conf,
           stream_resp=int(self.stream_response_body),
           tls=self._tls_conf(),
           deflate_mod=', "mod_deflate"' if self.compress else "",
           deflate=(
               'deflate.mimetypes = ( "application/x-git-receive-pack-'
               'advertisement", "application/x-git-upload-pack-'
               'advertisement" )\ndeflate.allowed-encodings = ( "gzip" )\n'
               if self.compress else ""))
        with open(self.conf_path, "w") as f:
            f.write(conf)

    def _tls_conf(self):
        if not self.tls:
            return ""
        d = os.path.join(self.root, "tls")
        return ('server.modules += ( "mod_openssl" )\n'
                'ssl.engine = "enable"\n'
                'ssl.pemfile = %s\n'
                'ssl.privkey = %s\n' % (
                    _lighttpd_quote(os.path.join(d, "server.crt")),
                    _lighttpd_quote(os.path.join(d, "server.key"))))

    # -- lifecycle

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def url(self):
        return "%s://%s:%d" % (self.scheme, self.host, self.port)

    def repo_url(self, repo, secret=None, user=UPSTREAM_USER):
        """Direct URL of a repository with the credential embedded."""
        s = self.secret if secret is None else secret
        return "%s://%s:%s@%s:%d/%s.git" % (self.scheme, user, s, self.host,
                                            self.port, repo)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=10.0):
        if self.running():
            return self
        last = ""
        for _attempt in range(5):
            if not self._fixed_port or self.port is None:
                self.port = free_port()
            self._write_conf()
            cmd = [_lighttpd_binary(), "-D", "-f", self.conf_path]
            if self.netns:
                cmd = ["ip", "netns", "exec", self.netns] + cmd
            with open(self.stderr_path, "ab") as errf:
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                    cwd=self.root, start_new_session=True)
            if wait_until(lambda: self.proc.poll() is not None or
                          port_open(self.port, self.host), timeout) and \
                    self.proc.poll() is None:
                return self
            last = self._logs()
            _kill_process(self.proc)
            self.proc = None
            if self._fixed_port or "in use" not in last:
                break
        raise HarnessError("lighttpd did not start on port %s:\n%s" %
                           (self.port, last))

    def _logs(self):
        out = ""
        for p in (self.stderr_path, self.error_log):
            try:
                with open(p, errors="replace") as f:
                    out += f.read()
            except OSError:
                pass
        return out

    def down(self):
        """Make the upstream unreachable (stop the server; port stays
        reserved in self.port so up() brings it back at the same URL)."""
        if self.proc is not None:
            _kill_process(self.proc)
            self.proc = None
        wait_until(lambda: not port_open(self.port, self.host), 5.0)

    def up(self, timeout=10.0):
        """Start again on the same port after down()."""
        self._fixed_port = True
        return self.start(timeout)

    def reject_credential(self, new_secret=None):
        """From now on the upstream demands a different secret, so gitgate's
        configured credential is refused with 401. Returns the new secret
        (self.secret is unchanged: it is the one gitgate holds)."""
        new = new_secret or ("ghs_other_" + secrets.token_hex(16))
        self._write_users(new)
        return new

    def accept_credential(self):
        """Undo reject_credential()."""
        self._write_users(self.secret)

    def stop(self):
        if self.proc is not None:
            _kill_process(self.proc)
            self.proc = None
        _unregister(self)
        if self._own_root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- repositories

    def repo_path(self, repo):
        if not repo.endswith(".git"):
            repo += ".git"
        return os.path.join(self.repos_dir, repo)

    def git_dir(self, repo, *args, check=True):
        """git --git-dir=<bare repo> ARGS; returns (rc, out, err)."""
        return git("--git-dir=" + self.repo_path(repo), *args, check=check,
                   home=self.home)

    def create_repo(self, repo, commits=2, branch="main", files=None):
        """Create bare repo OWNER/NAME with `commits` deterministic commits
        on `branch` (files: optional {path: content} for the first commit).
        Returns the branch's commit id, or None for an empty repository."""
        path = self.repo_path(repo)
        if os.path.exists(path):
            raise HarnessError("repository exists: " + repo)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        git("init", "-q", "--bare", "-b", branch, path, check=True,
            home=self.home)
        git("--git-dir=" + path, "config", "http.receivepack", "true",
            check=True, home=self.home)
        if commits <= 0 and not files:
            return None
        work = tempfile.mkdtemp(prefix="gg-seed-", dir=self.root)
        try:
            git("init", "-q", "-b", branch, work, check=True, home=self.home)
            oid = None
            for path_, content in sorted((files or {}).items()):
                full = os.path.join(work, path_)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb" if isinstance(content, bytes) else "w") \
                        as f:
                    f.write(content)
            if files:
                git("add", "-A", cwd=work, check=True, home=self.home)
            for i in range(max(commits, 1)):
                name = "file%d.txt" % i
                with open(os.path.join(work, name), "w") as f:
                    f.write("%s commit %d\n" % (repo, i))
                git("add", "-A", cwd=work, check=True, home=self.home)
                git("commit", "-q", "-m", "%s: commit %d" % (repo, i),
                    cwd=work, check=True, home=self.home,
                    env={"GIT_AUTHOR_DATE": _FIXED_DATE,
                         "GIT_COMMITTER_DATE": _FIXED_DATE})
            git("push", "-q", path, "%s:refs/heads/%s" % (branch, branch),
                cwd=work, check=True, home=self.home)
            oid = git_out("rev-parse", "HEAD", cwd=work, home=self.home)
            return oid
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def add_commit(self, repo, branch="main", message="upstream change"):
        """Make a new commit on the upstream branch directly (as if someone
        else pushed); returns its id."""
        work = tempfile.mkdtemp(prefix="gg-change-", dir=self.root)
        try:
            git("clone", "-q", "-b", branch, self.repo_path(repo), work,
                check=True, home=self.home)
            name = "change-%s.txt" % secrets.token_hex(4)
            with open(os.path.join(work, name), "w") as f:
                f.write(message + "\n")
            git("add", name, cwd=work, check=True, home=self.home)
            git("commit", "-q", "-m", message, cwd=work, check=True,
                home=self.home)
            git("push", "-q", "origin", branch, cwd=work, check=True,
                home=self.home)
            return git_out("rev-parse", "HEAD", cwd=work, home=self.home)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def rev_parse(self, repo, ref):
        """The commit id of ref in the upstream bare repo, or None."""
        rc, out, _ = git("--git-dir=" + self.repo_path(repo), "rev-parse",
                         "--verify", "-q", ref + "^{commit}", home=self.home)
        return out.strip() if rc == 0 else None

    def refs(self, repo):
        """{refname: oid} of the upstream bare repo."""
        _, out, _ = git("--git-dir=" + self.repo_path(repo), "for-each-ref",
                        "--format=%(refname) %(objectname)", check=True,
                        home=self.home)
        refs = {}
        for line in out.splitlines():
            name, _, oid = line.partition(" ")
            refs[name] = oid
        return refs

    def wait_access_log(self, pred, timeout=10.0):
        """lighttpd flushes its access log about once a second: poll until
        some line satisfies pred(line); returns that line or None."""
        def find():
            for line in self.access_log_lines():
                if pred(line):
                    return line
            return None
        return wait_until(find, timeout, 0.1)

    def access_log_lines(self):
        try:
            with open(self.access_log, errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def flushed_access_log(self, timeout=10.0):
        """Every access-log line of requests answered so far. lighttpd
        writes its log in order but flushes it lazily, so a marker request
        is made and waited for: every line before it is then on disk.
        Returns the lines before the marker (the marker's own excluded)."""
        marker = "/__gg_log_marker_%s" % secrets.token_hex(8)
        try:
            http_request(self.port, "GET", marker, host=self.host,
                         timeout=timeout)
        except OSError as e:
            raise HarnessError("upstream log marker request failed: %s" % e)
        if not self.wait_access_log(lambda l: marker in l, timeout):
            raise HarnessError("marker %s never reached the access log" %
                               marker)
        lines = self.access_log_lines()
        for i, line in enumerate(lines):
            if marker in line:
                return lines[:i]
        return lines  # pragma: no cover - found above

    def upload_pack_posts(self, lines, repo=None):
        """(request line, response bytes) of each POST .../git-upload-pack
        among access-log lines (of repo OWNER/NAME if given)."""
        out = []
        for line in lines:
            if '"POST ' not in line or "/git-upload-pack " not in line:
                continue
            if repo is not None and ("/%s.git/" % repo) not in line:
                continue
            req = line.split('"', 2)[1]
            tail = line.split('"', 2)[2].split()
            size = int(tail[1]) if len(tail) > 1 and tail[1].isdigit() else 0
            out.append((req, size))
        return out

    def delete_ref(self, repo, ref):
        """Delete a ref in the bare repository behind gitgate's back."""
        self.git_dir(repo, "update-ref", "-d", ref)

    def set_ref(self, repo, ref, oid):
        """Point ref at oid directly in the bare repository (a force-push
        behind gitgate's back)."""
        self.git_dir(repo, "update-ref", ref, oid)


# --------------------------------------------------------------------------
# gitgate


def gitgate_binary():
    """The gitgate binary under test: $GITGATE, else the meson build dir."""
    cands = [os.environ.get("GITGATE")]
    if os.environ.get("GG_BUILD_ROOT"):
        cands.append(os.path.join(os.environ["GG_BUILD_ROOT"], "gitgate"))
    cands.append(os.path.join(SOURCE_ROOT, "build", "gitgate"))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise HarnessError("gitgate binary not found (set GITGATE or build with "
                       "meson setup build && ninja -C build)")


def run_gitgate(*args, binary=None, check=False, timeout=60, env=None,
                input=None):
    """Run a gitgate subcommand; returns (rc, stdout, stderr)."""
    cmd = [binary or gitgate_binary()] + [str(a) for a in args]
    e = dict(os.environ)
    e.pop("GITGATE_UPSTREAM_TOKEN", None)
    if env:
        e.update(env)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=e, input=input, errors="replace")
    if check and p.returncode != 0:
        raise HarnessError("%s failed (%s): %s" % (
            " ".join(cmd[:2]), describe_exit(p.returncode),
            p.stderr.strip() or "(no stderr)"))
    return p.returncode, p.stdout, p.stderr


def describe_exit(rc):
    """'exit 1' or 'killed by SIGABRT' for a subprocess return code."""
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return "killed by " + signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit %d" % rc


class Gitgate:
    """A gitgate proxy in front of an upstream.

        gg = Gitgate(upstream.url, upstream.secret).start()
        tok = gg.mint(repos=["acme/widgets"], push=["agent/*"])
        url = gg.repo_url("acme/widgets", tok)   # http://agent:TOK@...
        gg.revoke(tok); gg.reload(); rc = gg.stop()

    Files (ROOT = a temp dir unless given): keys/signing.key,
    keys/verify.pub, config.json, upstream-token (0600), audit.jsonl,
    revoked.txt, cache/, gitgate.stderr, gitgate.stdout.
    """

    def __init__(self, upstream_url, secret, root=None, binary=None,
                 port=None, secret_via_env=False, extra_config=None,
                 keep=False, env=None, github_app=None, cwd=None,
                 tls_ca=None):
        # tls_ca: the CA file that signed the certificate named by
        # extra_config["tls"]: url and repo_url then say https, and the
        # health check trusts that CA alone.
        self.tls_ca = tls_ca
        # github_app: the upstream.github_app object ({"app_id",
        # "private_key_file", "api_url"}); the config then names no
        # token_file (secret may be None). cwd: the working directory of
        # gitgate serve (default ROOT, the config file's directory).
        self.github_app = github_app
        self.cwd = cwd
        self.binary = binary or gitgate_binary()
        self._own_root = root is None
        self.root = os.path.abspath(root) if root else tempfile.mkdtemp(
            prefix="gg-proxy-")
        os.makedirs(self.root, exist_ok=True)
        self.keep = keep
        self.upstream_url = upstream_url
        self.secret = secret
        self.port = port
        self._fixed_port = port is not None
        self.secret_via_env = secret_via_env
        self.extra_config = extra_config or {}
        self.extra_env = env or {}  # added to gitgate's environment
        self.proc = None
        self.keys_dir = os.path.join(self.root, "keys")
        self.signing_key = os.path.join(self.keys_dir, "signing.key")
        self.verify_key = os.path.join(self.keys_dir, "verify.pub")
        self.config_path = os.path.join(self.root, "config.json")
        self.token_file = os.path.join(self.root, "upstream-token")
        self.audit_log = os.path.join(self.root, "audit.jsonl")
        self.revocations = os.path.join(self.root, "revoked.txt")
        self.cache_dir = os.path.join(self.root, "cache")
        self.stderr_path = os.path.join(self.root, "gitgate.stderr")
        self.stdout_path = os.path.join(self.root, "gitgate.stdout")
        self.minted = []  # every token minted through this object
        _register(self)  # stopped and cleaned up at exit at the latest

    # -- setup

    def keygen(self, out_dir=None):
        """gitgate keygen --out DIR (default: ROOT/keys); returns DIR."""
        d = out_dir or self.keys_dir
        run_gitgate("keygen", "--out", d, binary=self.binary, check=True)
        for f in ("signing.key", "verify.pub"):
            if not os.path.isfile(os.path.join(d, f)):
                raise HarnessError("gitgate keygen did not write " + f)
        return d

    def config(self):
        cfg = {
            "listen": "127.0.0.1:%d" % self.port,
            "verify_key": os.path.relpath(self.verify_key, self.root),
            "upstream": {"url": self.upstream_url},
            "audit_log": "audit.jsonl",
            "revocations": "revoked.txt",
            "cache_dir": "cache",
        }
        if self.github_app is not None:
            cfg["upstream"]["github_app"] = dict(self.github_app)
        elif not self.secret_via_env:
            cfg["upstream"]["token_file"] = "upstream-token"
        for k, v in self.extra_config.items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        return cfg

    def write_config(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config(), f, indent=2)
            f.write("\n")

    def _prepare(self):
        if not os.path.isfile(self.verify_key):
            self.keygen()
        os.makedirs(self.cache_dir, exist_ok=True)
        if not self.secret_via_env and self.secret is not None:
            fd = os.open(self.token_file,
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.secret + "\n")
            os.chmod(self.token_file, 0o600)

    # -- lifecycle

    @property
    def scheme(self):
        return "https" if self.tls_ca else "http"

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    def repo_url(self, repo, token=None, user="agent", suffix=".git"):
        """Remote URL for the git client; the token as Basic password."""
        cred = "%s:%s@" % (user, token) if token is not None else ""
        return "%s://%s127.0.0.1:%d/%s%s" % (self.scheme, cred, self.port,
                                             repo, suffix)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def audit_text(self):
        try:
            with open(self.audit_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def audit_records(self):
        """The audit log parsed: one dict per line, in order."""
        return [json.loads(l) for l in self.audit_text().splitlines()
                if l.strip()]

    def mirror_path(self, repo):
        """Where gitgate keeps its bare mirror of OWNER/NAME."""
        return os.path.join(self.cache_dir, "mirrors", repo + ".git")

    def start(self, timeout=10.0):
        """Start `gitgate serve` and wait for GET /healthz → 200."""
        if self.running():
            return self
        self._prepare()
        env = dict(os.environ)
        env.pop("GITGATE_UPSTREAM_TOKEN", None)
        for k in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
            env.pop(k, None)
        env.update(self.extra_env)
        if self.secret_via_env:
            env["GITGATE_UPSTREAM_TOKEN"] = self.secret
        last = ""
        for _attempt in range(3):
            if not self._fixed_port or self.port is None:
                self.port = free_port()
            self.write_config()
            with open(self.stderr_path, "ab") as errf, \
                    open(self.stdout_path, "ab") as outf:
                self.proc = subprocess.Popen(
                    [self.binary, "serve", "--config", self.config_path],
                    stdin=subprocess.DEVNULL, stdout=outf, stderr=errf,
                    cwd=self.cwd or self.root, env=env,
                    start_new_session=True)
            ok = wait_until(lambda: self.proc.poll() is not None or
                            self._healthy(), timeout, 0.05)
            if ok and self.proc.poll() is None:
                return self
            rc = self.proc.poll()
            _kill_process(self.proc)
            self.proc = None
            last = self.stderr_text()
            if self._fixed_port or "in use" not in last:
                break
        raise HarnessError(
            "gitgate serve did not become healthy on port %s within %gs "
            "(%s); its stderr:\n%s" % (
                self.port, timeout, describe_exit(rc),
                last.strip() or "(empty)"))

    def _healthy(self):
        try:
            r = http_request(self.port, "GET", "/healthz", timeout=2,
                             tls_ca=self.tls_ca)
        except OSError:
            return False
        return r.status == 200

    def reload(self):
        """SIGHUP: reload keys and revocations."""
        if not self.running():
            raise HarnessError("gitgate is not running")
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=15.0):
        """SIGTERM, wait, return the exit code (None if never started)."""
        rc = None
        if self.proc is not None:
            rc = _kill_process(self.proc, signal.SIGTERM, timeout)
            self.proc = None
        _unregister(self)
        if self._own_root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- tokens

    def mint(self, repo=None, repos=None, push=None, allow_force=False,
             allow_delete=False, no_fetch=False, ttl=None, sub=None,
             key=None, check=True, allow_paths=None):
        """gitgate mint ...; returns the token (str). With check=False
        returns (rc, stdout, stderr) instead."""
        args = ["mint", "--key", key or self.signing_key]
        for r in ([repo] if repo else []) + list(repos or []):
            args += ["--repo", r]
        for p in push or []:
            args += ["--push", p]
        if allow_force:
            args.append("--allow-force")
        if allow_delete:
            args.append("--allow-delete")
        for p in allow_paths or []:
            args += ["--allow-path", p]
        if no_fetch:
            args.append("--no-fetch")
        if ttl:
            args += ["--ttl", ttl]
        if sub:
            args += ["--sub", sub]
        rc, out, err = run_gitgate(*args, binary=self.binary)
        if not check:
            return rc, out, err
        if rc != 0:
            raise HarnessError("gitgate mint failed (%s): %s" %
                               (describe_exit(rc), err.strip()))
        token = out.strip()
        if not token.startswith("v4.public.") or "\n" in token:
            raise HarnessError("gitgate mint printed %r" % out)
        self.minted.append(token)
        return token

    def revoke(self, *tokens_or_jtis, check=True):
        """gitgate revoke --config FILE TOKEN-OR-JTI ...; (rc, out, err)."""
        return run_gitgate("revoke", "--config", self.config_path,
                           *tokens_or_jtis, binary=self.binary, check=check)

    def inspect(self, token, key=None):
        """gitgate inspect [--key] TOKEN → claims (dict)."""
        args = ["inspect"] + (["--key", key] if key else []) + [token]
        _, out, _ = run_gitgate(*args, binary=self.binary, check=True)
        return json.loads(out)

    def request(self, method, path, headers=None, body=None, timeout=30.0):
        return http_request(self.port, method, path, headers, body,
                            timeout=timeout, tls_ca=self.tls_ca)


# --------------------------------------------------------------------------
# running a unittest module with the plain closing line


def run_suite(module_name="__main__", verbosity=2):
    """Run the module's tests; print `N passed, N failed[, N skipped]` as
    the last line; exit non-zero on any failure or when nothing ran."""

    def _term(signum, frame):  # meson's timeout: clean up servers first
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, _term)
    module = sys.modules[module_name]
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=verbosity,
                                     buffer=False).run(suite)
    failed = (len(result.failures) + len(result.errors) +
              len(result.unexpectedSuccesses))
    skipped = len(result.skipped)
    passed = result.testsRun - len(result.failures) - len(result.errors) - \
        len(result.unexpectedSuccesses) - skipped - \
        len(result.expectedFailures)
    passed = max(passed, 0)
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    sys.stdout.flush()
    print(line, flush=True)
    _stop_all()
    sys.exit(1 if failed or result.testsRun == 0 else 0)


# --------------------------------------------------------------------------
# self-check of the upstream alone


def selfcheck(verbose=True):
    """Verify the Upstream with the real git client. Returns a list of
    (name, ok, detail)."""
    results = []

    def check(name, ok, detail=""):
        results.append((name, bool(ok), detail))
        if verbose:
            print("%s %s%s" % ("ok  " if ok else "FAIL", name,
                               (": " + detail) if detail and not ok else ""),
                  flush=True)
        return ok

    tmp = tempfile.mkdtemp(prefix="gg-selfcheck-")
    try:
        with Upstream() as up:
            head = up.create_repo("acme/widgets", commits=3)
            check("create_repo made 3 commits",
                  head and up.rev_parse("acme/widgets", "main") == head)

            # auth is required
            r = http_request(up.port, "GET",
                             "/acme/widgets.git/info/refs?service=git-upload-pack")
            check("no credential → 401", r.status == 401, repr(r))
            r = http_request(up.port, "GET",
                             "/acme/widgets.git/info/refs?service=git-upload-pack",
                             {"Authorization": basic_auth(UPSTREAM_USER,
                                                          "wrong")})
            check("wrong secret → 401", r.status == 401, repr(r))
            r = http_request(up.port, "GET",
                             "/acme/widgets.git/info/refs?service=git-upload-pack",
                             {"Authorization": basic_auth(UPSTREAM_USER,
                                                          up.secret)})
            check("right secret → 200 advertisement", r.status == 200 and
                  r.header("content-type") ==
                  "application/x-git-upload-pack-advertisement", repr(r))
            r = http_request(up.port, "GET",
                             "/acme/missing.git/info/refs?service=git-upload-pack",
                             {"Authorization": basic_auth(UPSTREAM_USER,
                                                          up.secret)})
            check("missing repo → 404", r.status == 404, repr(r))
            rc, _, err = git("ls-remote", "http://127.0.0.1:%d/acme/widgets.git"
                             % up.port)
            check("git without credential fails", rc == 128, err)

            # clone v0 and v2
            for v in (0, 2):
                dest = os.path.join(tmp, "clone-v%d" % v)
                rc, out, err = git("-c", "protocol.version=%d" % v, "clone",
                                   up.repo_url("acme/widgets"), dest,
                                   env={"GIT_TRACE_PACKET": "1"})
                saw_v2 = "git< version 2" in err
                check("clone protocol v%d" % v, rc == 0 and
                      git_out("rev-parse", "HEAD", cwd=dest) == head and
                      saw_v2 == (v == 2), err[-2000:])
            rc, out, err = git("-c", "protocol.version=2", "ls-remote",
                               up.repo_url("acme/widgets"),
                               env={"GIT_TRACE_PACKET": "1"})
            check("ls-remote v2", rc == 0 and "git< version 2" in err and
                  ("%s\trefs/heads/main" % head) in out, err[-2000:])
            check("Git-Protocol header reached the upstream",
                  up.wait_access_log(lambda l: 'proto="version=2"' in l))

            # push a >10 MB commit: 4-byte probe then a chunked POST
            dest = os.path.join(tmp, "clone-v2")
            big = commit_big_file(dest)
            trace = os.path.join(tmp, "curl.trace")
            rc, out, err = git("push", "origin", "HEAD:refs/heads/big", cwd=dest,
                               env={"GIT_TRACE_CURL": trace,
                                    "GIT_TRACE_CURL_NO_DATA": "1"})
            with open(trace, errors="replace") as f:
                tr = f.read()
            check("git used a chunked POST", "Transfer-Encoding: chunked" in tr)
            check("git sent the 4-byte probe", "Content-Length: 4" in tr)
            check("push of >10 MB commit landed", rc == 0 and
                  up.rev_parse("acme/widgets", "big") == big, err[-2000:])
            st = os.stat(up.repo_path("acme/widgets"))
            check("upstream repo exists", st is not None)

            # push to a new branch, fast-forward update
            c2 = commit_file(dest, "x.txt", "x\n")
            rc, _, err = git("push", "origin", "HEAD:refs/heads/agent/x",
                             cwd=dest)
            check("push new branch", rc == 0 and
                  up.rev_parse("acme/widgets", "agent/x") == c2, err)

            # gzip-encoded upload-pack request straight to the upstream
            body = gzip_bytes(upload_pack_request_v0([head]))
            r = http_request(up.port, "POST", "/acme/widgets.git/git-upload-pack",
                             {"Authorization": basic_auth(UPSTREAM_USER,
                                                          up.secret),
                              "Content-Type":
                              "application/x-git-upload-pack-request",
                              "Content-Encoding": "gzip"}, body)
            check("gzip upload-pack request → pack", r.status == 200 and
                  r.body.startswith(b"0008NAK\n") and b"PACK" in r.body,
                  repr(r))

            # credential rejection and recovery
            up.reject_credential()
            rc, _, err = git("ls-remote", up.repo_url("acme/widgets"))
            check("reject_credential() refuses the secret", rc == 128, err)
            up.accept_credential()
            rc, _, err = git("ls-remote", up.repo_url("acme/widgets"))
            check("accept_credential() restores it", rc == 0, err)

            # down / up
            port = up.port
            up.down()
            check("down() closes the port", not port_open(port))
            rc, _, err = git("ls-remote", up.repo_url("acme/widgets"))
            check("git fails while down", rc == 128, err)
            up.up()
            check("up() on the same port", up.port == port and
                  git("ls-remote", up.repo_url("acme/widgets"))[0] == 0)
            root = up.root
        check("stop() removes the temp dir", not os.path.exists(root))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


if __name__ == "__main__":
    if sys.argv[1:] == ["--selfcheck"]:
        res = selfcheck()
        bad = [r for r in res if not r[1]]
        print("%d passed, %d failed" % (len(res) - len(bad), len(bad)))
        sys.exit(1 if bad else 0)
    print(__doc__)
    sys.exit(2)

#!/usr/bin/env python3
"""A local stand-in of GitHub's App API: just what gitgate's github_app
upstream credential calls (Python 3 stdlib + Debian's python3-cryptography).

    GET  /repos/OWNER/NAME/installation           (App JWT)  → 200 | 404
    POST /app/installations/ID/access_tokens      (App JWT)  → 201 | 404 | 422

The App JWT is checked like GitHub does: RS256 signature against the App's
public key, `iss` the app id (a string, as gitgate sends it), integer `iat`
and `exp` (a float is refused), `exp - iat` at most 10 minutes, `exp` not
more than 10 minutes ahead, not expired, `iat` not in the future (beyond a
30 s skew). Any failure is a 401 `{"message": ...}`. Every response carries
a `Date` header of the stand-in's clock (time.time() + clock_offset), and
the JWT checks use that clock too.

Installation tokens (`ghs_` + random, of varying length: 40 characters and
much longer ones) are written to the token table of a harness
Upstream(app_tokens=True), whose CGI wrapper then accepts them for their
repository and permission until they expire (and only after
replication_delay seconds).

Faults (fault(), rate_limit(), stall) and the clock offset can be changed
while gitgate runs. Every call is recorded (calls, with counters).

    up = harness.Upstream(app_tokens=True).start()
    app = GitHubAppStandin(upstream=up).start()
    app.install("acme", 42)
    app.write_private_key(path, "pkcs1")
    ... app.url, app.token_calls(repo="acme/widgets"), app.stop()

Self-check (stand-in + upstream + real git, no gitgate needed):
    python3 tests/integration/ghapp_standin.py --selfcheck
"""

import base64
import datetime
import email.utils
import hashlib
import http.server
import json
import os
import secrets
import shutil
import socket
import string
import sys
import tempfile
import threading
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HERE = os.path.dirname(os.path.abspath(__file__))

APP_ID = "123456"
JWT_SKEW = 30          # iat may be this far in the future (clock drift)
JWT_MAX_LIFETIME = 600  # exp - iat, and exp - now, at most 10 minutes

MSG_NOT_FOUND = "Not Found"
MSG_REPO_422 = ("There is at least one repository that does not exist or is "
                "not accessible to the parent installation.")
MSG_PERM_422 = "The permissions requested are not granted to this installation."
DOCS = "https://docs.github.com/rest"

# lengths of the tokens issued, in turn: GitHub's classic 40 characters and
# much longer ones like its newer formats (no fixed-size assumption holds)
TOKEN_LENGTHS = (40, 236, 40, 93, 520)
_ALNUM = string.ascii_letters + string.digits

_LEVEL = {"read": 1, "write": 2, "admin": 3}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    if isinstance(text, str):
        text = text.encode()
    if not text or b"=" in text:
        raise ValueError("bad base64url")
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def generate_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key, fmt="pkcs1"):
    """PEM of an RSA private key: "pkcs1" (BEGIN RSA PRIVATE KEY) or
    "pkcs8" (BEGIN PRIVATE KEY)."""
    f = {"pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
         "pkcs8": serialization.PrivateFormat.PKCS8}[fmt]
    return key.private_bytes(serialization.Encoding.PEM, f,
                             serialization.NoEncryption())


def make_jwt(key, claims=None, header=None, iat=None, exp=None, iss=APP_ID,
             now=None):
    """An App JWT signed RS256 with key (as gitgate should make it: iat
    now-60, exp now+540, iss the app id as a string), claims overridable.
    Pass claims= for full control (floats etc.)."""
    now = int(time.time() if now is None else now)
    if claims is None:
        claims = {"iat": now - 60 if iat is None else iat,
                  "exp": now + 540 if exp is None else exp,
                  "iss": iss}
    header = header or {"alg": "RS256", "typ": "JWT"}
    signing_input = (b64url(json.dumps(header, separators=(",", ":"))
                            .encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":"))
                            .encode()))
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(),
                   hashes.SHA256())
    return signing_input + "." + b64url(sig)


def iso8601(epoch):
    return datetime.datetime.fromtimestamp(
        int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Fault:
    """One fault: answered instead of the normal response while times is
    None (always) or > 0. endpoint: "installation", "access_tokens" or
    "any". stall: accept the request and never answer."""

    def __init__(self, endpoint="any", status=None, message=None,
                 headers=None, times=None, stall=False, reset_in=None,
                 body=None):
        self.endpoint = endpoint
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.times = times
        self.stall = stall
        self.reset_in = reset_in  # x-ratelimit-reset = now + reset_in
        self.body = body
        self.hits = 0

    def matches(self, endpoint):
        return (self.endpoint in ("any", endpoint) and
                (self.times is None or self.hits < self.times))


class Installation:
    def __init__(self, owner, id, repositories=None, permissions=None):
        self.owner = owner
        self.id = int(id)
        # None: every repository of owner ("all"); else the names granted
        self.repositories = (None if repositories is None else
                             [r.lower() for r in repositories])
        self.permissions = dict(permissions or {
            "contents": "write", "metadata": "read", "workflows": "write"})


class Call:
    """One request the stand-in received (tests read these)."""

    def __init__(self, **kw):
        self.time = time.time()
        self.method = None
        self.path = None
        self.endpoint = None     # "installation", "access_tokens" or None
        self.repo = None         # OWNER/NAME for installation lookups
        self.installation = None  # id for access_tokens
        self.body = None         # parsed JSON body (access_tokens)
        self.status = None       # what the stand-in answered (None: stall)
        self.jwt_ok = None
        self.jwt_error = None
        self.jwt_header = None
        self.jwt_claims = None
        self.headers = {}        # lower-case request headers (no JWT)
        self.token_id = None     # id of the token issued, if any
        self.token_repos = None
        self.permissions = None  # permissions granted, if a token issued
        self.fault = None
        self.__dict__.update(kw)

    @property
    def requested_permissions(self):
        if isinstance(self.body, dict):
            return self.body.get("permissions")
        return None

    @property
    def requested_repositories(self):
        if isinstance(self.body, dict):
            return self.body.get("repositories")
        return None

    def __repr__(self):
        return "<Call %s %s -> %s %s>" % (
            self.method, self.path, self.status,
            json.dumps(self.body) if self.body is not None else "")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com-standin"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(self.server.app.now(), usegmt=True)

    def do_GET(self):
        self.server.app._handle(self, "GET")

    def do_POST(self):
        self.server.app._handle(self, "POST")

    def do_PUT(self):
        self.server.app._handle(self, "PUT")

    def do_DELETE(self):
        self.server.app._handle(self, "DELETE")

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = b""
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    return data
                data += self.rfile.read(n)
                self.rfile.readline(16)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


class GitHubAppStandin:
    """The stand-in server. See the module docstring."""

    def __init__(self, upstream=None, token_table=None, app_id=APP_ID,
                 key=None, token_lifetime=3600, host="127.0.0.1",
                 fixed_token=None):
        self.app_id = str(app_id)
        self.key = key or generate_key()
        self.public_key = self.key.public_key()
        self.upstream = upstream
        self.token_table = token_table or (
            upstream.app_tokens_path if upstream is not None else None)
        self.token_lifetime = token_lifetime
        # fixed_token: issue this one token every time (the benchmark, in
        # front of a plain Upstream whose static secret it is)
        self.fixed_token = fixed_token
        self.host = host
        self.port = None
        self.clock_offset = 0.0      # seconds added to time.time()
        self.replication_delay = 0.0  # new tokens valid upstream after this
        self.delay = {}              # endpoint → seconds to wait before answering
        self.installations = {}      # owner (lower) → Installation
        self.faults = []
        self.calls = []
        self.tokens = {}             # token → info dict (the secrets)
        self.jwts = set()            # every JWT received (for leak checks)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._fault_gen = 0
        self._server = None
        self._thread = None
        self._n_tokens = 0

    # -- lifecycle

    def start(self):
        if self._server is not None:
            return self
        srv = http.server.ThreadingHTTPServer((self.host, self.port or 0),
                                              _Handler)
        srv.daemon_threads = True
        srv.block_on_close = False
        srv.app = self
        self._server = srv
        self.port = srv.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=srv.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="ghapp-standin", daemon=True)
        self._thread.start()
        if self.token_table:
            self._write_table()
        return self

    def stop(self):
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def now(self):
        return time.time() + self.clock_offset

    # -- set-up

    def write_private_key(self, path, fmt="pkcs1", mode=0o600):
        """Write the App's private key as PEM (pkcs1 or pkcs8) with mode."""
        data = private_key_pem(self.key, fmt)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def private_key_pem(self, fmt="pkcs1"):
        return private_key_pem(self.key, fmt)

    def install(self, owner, installation_id, repositories=None,
                permissions=None):
        """Install the App on owner (every repository unless repositories
        lists the names granted; permissions default contents:write,
        metadata:read, workflows:write)."""
        inst = Installation(owner, installation_id, repositories, permissions)
        with self._lock:
            self.installations[owner.lower()] = inst
        return inst

    def uninstall(self, owner):
        with self._lock:
            self.installations.pop(owner.lower(), None)

    def fault(self, status=None, endpoint="any", times=None, message=None,
              headers=None, stall=False, reset_in=None, body=None):
        """Answer status ({"message": message}) instead of the normal
        response, always or the next `times` matching calls."""
        f = Fault(endpoint, status, message, headers, times, stall, reset_in,
                  body)
        with self._lock:
            self.faults.append(f)
        return f

    def rate_limit(self, kind="429", seconds=7, endpoint="any", times=None):
        """kind "429": 429 with retry-after: seconds. kind "403": 403 with
        x-ratelimit-remaining: 0 and x-ratelimit-reset now+seconds (GitHub's
        primary limit). kind "403-retry-after": 403 with retry-after
        (GitHub's secondary limit)."""
        if kind == "429":
            return self.fault(429, endpoint, times,
                              "API rate limit exceeded for installation.",
                              {"retry-after": str(seconds)})
        if kind == "403":
            return self.fault(403, endpoint, times,
                              "API rate limit exceeded for installation.",
                              {"x-ratelimit-limit": "5000",
                               "x-ratelimit-remaining": "0",
                               "x-ratelimit-used": "5000",
                               "x-ratelimit-resource": "core"},
                              reset_in=seconds)
        if kind == "403-retry-after":
            return self.fault(403, endpoint, times,
                              "You have exceeded a secondary rate limit.",
                              {"retry-after": str(seconds)})
        raise ValueError(kind)

    def stall(self, endpoint="any", times=None):
        """Accept matching requests and never answer (until cleared)."""
        return self.fault(endpoint=endpoint, times=times, stall=True)

    def clear_faults(self):
        with self._lock:
            self.faults = []
            self._fault_gen += 1  # releases stalled handlers

    def reset(self):
        """Clear faults, clock offset, delays and replication delay (not
        the recorded calls or tokens)."""
        self.clear_faults()
        self.clock_offset = 0.0
        self.replication_delay = 0.0
        self.delay = {}
        self.token_lifetime = 3600

    # -- what happened

    def calls_to(self, endpoint=None, since=None, status=None):
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if
                (endpoint is None or c.endpoint == endpoint) and
                (since is None or c.time >= since) and
                (status is None or c.status == status)]

    def installation_calls(self, repo=None, since=None):
        return [c for c in self.calls_to("installation", since)
                if repo is None or (c.repo or "").lower() == repo.lower()]

    def token_calls(self, repo=None, since=None, issued_only=False,
                    contents=None):
        """access_tokens calls, optionally for one OWNER/NAME (by the owner
        of the installation and the names requested)."""
        out = []
        for c in self.calls_to("access_tokens", since):
            if repo is not None:
                owner, _, name = repo.lower().partition("/")
                inst = self._installation_by_id(c.installation)
                names = [str(n).lower() for n in
                         (c.requested_repositories or [])]
                if inst is None or inst.owner.lower() != owner or \
                        names != [name]:
                    continue
            if issued_only and c.token_id is None:
                continue
            if contents is not None and \
                    (c.requested_permissions or {}).get("contents") != contents:
                continue
            out.append(c)
        return out

    def token_info(self, token_id):
        with self._lock:
            for info in self.tokens.values():
                if info["id"] == token_id:
                    return dict(info)
        return None

    def token_by_id(self, token_id):
        """The token text of an id (for direct upstream checks only)."""
        with self._lock:
            for tok, info in self.tokens.items():
                if info["id"] == token_id:
                    return tok
        return None

    def secrets(self):
        """Every secret text gitgate must never show: issued tokens, JWTs
        received, and the private key's PEM body (both formats) in pieces."""
        out = set()
        with self._lock:
            out.update(self.tokens.keys())
            out.update(self.jwts)
        for jwt in list(out):
            if jwt.count(".") == 2:  # the signature alone is secret too
                out.add(jwt.rsplit(".", 1)[1])
        for fmt in ("pkcs1", "pkcs8"):
            pem = self.private_key_pem(fmt).decode()
            body = "".join(l for l in pem.splitlines()
                           if not l.startswith("-----"))
            for i in range(0, len(body) - 48, 48):
                out.add(body[i:i + 48])
        # the key's numbers, hex and decimal, as a dump would show them
        nums = self.key.private_numbers()
        for n in (nums.d, nums.p, nums.q):
            out.add("%x" % n)
            out.add(str(n)[:60])
        return out

    # -- token table for the upstream

    def _installation_by_id(self, iid):
        with self._lock:
            for inst in self.installations.values():
                if inst.id == iid:
                    return inst
        return None

    def _write_table(self):
        if not self.token_table:
            return  # no App-token upstream to tell
        table = {}
        with self._lock:
            for tok, info in self.tokens.items():
                table[hashlib.sha256(tok.encode()).hexdigest()] = {
                    "id": info["id"], "owner": info["owner"],
                    "repos": info["repos"], "contents": info["contents"],
                    "workflows": info["workflows"],
                    "expires": info["expires"],
                    "valid_from": info["valid_from"]}
        if self.upstream is not None and hasattr(self.upstream,
                                                 "write_app_tokens"):
            self.upstream.write_app_tokens(table)
        else:
            tmp = self.token_table + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(table, f)
            os.replace(tmp, self.token_table)

    def expire_all_tokens(self):
        """Make every issued token invalid on the upstream now."""
        with self._lock:
            for info in self.tokens.values():
                info["expires"] = min(info["expires"], time.time())
        self._write_table()

    # -- request handling

    def _send(self, h, status, obj=None, headers=None):
        body = b"" if obj is None else (json.dumps(obj) + "\n").encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
        h.wfile.flush()

    def _error(self, h, call, status, message, headers=None):
        call.status = status
        obj = {"message": message, "documentation_url": DOCS,
               "status": str(status)}
        self._send(h, status, obj, headers)

    def _check_jwt(self, call, auth):
        """None if the JWT is accepted, else GitHub's message."""
        if not auth:
            return "A JSON web token could not be decoded"
        scheme, _, jwt = auth.partition(" ")
        if scheme.lower() != "bearer" or not jwt:
            return "A JSON web token could not be decoded"
        jwt = jwt.strip()
        with self._lock:
            self.jwts.add(jwt)
        parts = jwt.split(".")
        if len(parts) != 3:
            return "A JSON web token could not be decoded"
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except (ValueError, UnicodeDecodeError):
            return "A JSON web token could not be decoded"
        call.jwt_header, call.jwt_claims = header, claims
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            return "A JSON web token could not be decoded (alg must be RS256)"
        if header.get("typ") not in (None, "JWT"):
            return "A JSON web token could not be decoded (typ)"
        try:
            self.public_key.verify(sig, (parts[0] + "." + parts[1]).encode(),
                                   padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "A JSON web token could not be decoded (signature)"
        if not isinstance(claims, dict):
            return "A JSON web token could not be decoded"
        iss, iat, exp = claims.get("iss"), claims.get("iat"), claims.get("exp")
        if not isinstance(iss, str) or iss != self.app_id:
            return "'Issuer' claim ('iss') must be the App's id, %r" % \
                self.app_id
        for name, v in (("iat", iat), ("exp", exp)):
            if type(v) is not int:
                return ("'%s' claim ('%s') must be an Integer" %
                        ({"iat": "Issued at", "exp": "Expiration time"}[name],
                         name))
        now = self.now()
        if iat > now + JWT_SKEW:
            return ("'Issued at' claim ('iat') must be an Integer "
                    "representing a time in the past")
        if exp <= now:
            return ("'Expiration time' claim ('exp') must be a numeric value "
                    "representing the future time at which the assertion "
                    "expires")
        if exp - iat > JWT_MAX_LIFETIME or exp > now + JWT_MAX_LIFETIME + \
                JWT_SKEW:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def _route(self, method, path):
        p = path.split("?", 1)[0]
        seg = p.strip("/").split("/")
        if method == "GET" and len(seg) == 4 and seg[0] == "repos" and \
                seg[3] == "installation":
            return "installation", {"repo": seg[1] + "/" + seg[2]}
        if method == "POST" and len(seg) == 4 and seg[0] == "app" and \
                seg[1] == "installations" and seg[3] == "access_tokens":
            try:
                return "access_tokens", {"installation": int(seg[2])}
            except ValueError:
                return None, {}
        return None, {}

    def _handle(self, h, method):
        call = Call(method=method, path=h.path)
        call.headers = {k.lower(): v for k, v in h.headers.items()
                        if k.lower() != "authorization"}
        auth = h.headers.get("Authorization") or ""
        call.auth_scheme = auth.partition(" ")[0]
        try:
            raw = h.read_body()
        except (OSError, ValueError):
            raw = b""
        endpoint, args = self._route(method, h.path)
        call.endpoint = endpoint
        call.repo = args.get("repo")
        call.installation = args.get("installation")
        if raw:
            try:
                call.body = json.loads(raw)
            except ValueError:
                call.body = raw.decode("utf-8", "replace")
        with self._lock:
            self.calls.append(call)
        try:
            self._dispatch(h, call, endpoint, auth)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _take_fault(self, endpoint):
        with self._lock:
            for f in self.faults:
                if f.matches(endpoint or "other"):
                    f.hits += 1
                    return f, self._fault_gen
        return None, self._fault_gen

    def _dispatch(self, h, call, endpoint, auth):
        fault, gen = self._take_fault(endpoint)
        if fault is not None and fault.stall:
            call.fault = "stall"
            deadline = time.monotonic() + 120
            while not self._stopping.is_set() and self._fault_gen == gen and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            h.close_connection = True
            return
        d = self.delay.get(endpoint) or self.delay.get("any")
        if d:
            time.sleep(d)
        if fault is not None and fault.status == 401:
            call.fault = "401"
            return self._error(h, call, 401, fault.message or
                               "A JSON web token could not be decoded")
        err = self._check_jwt(call, auth)
        call.jwt_ok = err is None
        call.jwt_error = err
        if err is not None:
            return self._error(h, call, 401, err)
        if fault is not None:
            call.fault = str(fault.status)
            headers = dict(fault.headers)
            if fault.reset_in is not None:
                headers["x-ratelimit-reset"] = str(int(self.now() +
                                                       fault.reset_in))
            if fault.body is not None:
                call.status = fault.status
                return self._send(h, fault.status, fault.body, headers)
            return self._error(h, call, fault.status, fault.message or
                               {404: MSG_NOT_FOUND, 422: MSG_REPO_422}.get(
                                   fault.status, "fault"), headers)
        if endpoint == "installation":
            return self._installation(h, call)
        if endpoint == "access_tokens":
            return self._access_tokens(h, call)
        return self._error(h, call, 404, MSG_NOT_FOUND)

    def _installation(self, h, call):
        owner = call.repo.split("/")[0]
        with self._lock:
            inst = self.installations.get(owner.lower())
        if inst is None:
            return self._error(h, call, 404, MSG_NOT_FOUND)
        call.status = 200
        base = self.url
        self._send(h, 200, {
            "id": inst.id,
            "account": {"login": inst.owner, "id": 1000 + inst.id,
                        "type": "Organization"},
            "repository_selection": ("all" if inst.repositories is None
                                     else "selected"),
            "access_tokens_url": "%s/app/installations/%d/access_tokens" % (
                base, inst.id),
            "repositories_url": base + "/installation/repositories",
            "app_id": int(self.app_id), "app_slug": "gitgate-standin",
            "target_id": 1000 + inst.id, "target_type": "Organization",
            "permissions": inst.permissions, "events": [],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "single_file_name": None, "suspended_at": None})

    def _access_tokens(self, h, call):
        inst = self._installation_by_id(call.installation)
        if inst is None:
            return self._error(h, call, 404, MSG_NOT_FOUND)
        body = call.body if call.body is not None else {}
        if not isinstance(body, dict):
            return self._error(h, call, 400, "Problems parsing JSON")
        repos = body.get("repositories")
        if repos is not None:
            if not isinstance(repos, list) or not all(
                    isinstance(r, str) for r in repos):
                return self._error(h, call, 422,
                                   "Invalid request: repositories")
            for r in repos:
                # names only: "owner/name" is no repository name
                if "/" in r or (inst.repositories is not None and
                                r.lower() not in inst.repositories):
                    return self._error(h, call, 422, MSG_REPO_422)
        perms = body.get("permissions")
        if perms is None:
            perms = dict(inst.permissions)
        if not isinstance(perms, dict):
            return self._error(h, call, 422, "Invalid request: permissions")
        for name, level in perms.items():
            granted = inst.permissions.get(name)
            if level not in _LEVEL or granted is None or \
                    _LEVEL[level] > _LEVEL[granted]:
                return self._error(h, call, 422, MSG_PERM_422)
        granted = dict(perms)
        granted.setdefault("metadata", "read")
        with self._lock:
            n = self._n_tokens
            self._n_tokens += 1
        length = TOKEN_LENGTHS[n % len(TOKEN_LENGTHS)]
        token = self.fixed_token or "ghs_" + "".join(
            secrets.choice(_ALNUM) for _ in range(length - 4))
        real_now = time.time()
        lifetime = self.token_lifetime
        # expires_at is whole seconds on the stand-in's clock; the upstream
        # enforces the same instant on the real clock
        expires_at = int(self.now() + lifetime)
        expires_real = expires_at - self.clock_offset
        token_id = "t%d" % n
        info = {"id": token_id, "owner": inst.owner,
                "installation": inst.id,
                "repos": repos, "contents": granted.get("contents"),
                "workflows": granted.get("workflows"),
                "permissions": granted, "issued": real_now,
                "expires": expires_real,
                "valid_from": real_now + self.replication_delay,
                "expires_at": iso8601(expires_at)}
        with self._lock:
            self.tokens[token] = info
        self._write_table()
        call.token_id = token_id
        call.token_repos = repos
        call.permissions = granted
        call.status = 201
        out = {"token": token, "expires_at": iso8601(expires_at),
               "permissions": granted,
               "repository_selection": "selected" if repos is not None
               else ("all" if inst.repositories is None else "selected")}
        if repos is not None:
            out["repositories"] = [
                {"id": 5000 + i, "name": r, "full_name": inst.owner + "/" + r,
                 "private": True} for i, r in enumerate(repos)]
        self._send(h, 201, out)


# --------------------------------------------------------------------------
# self-check: stand-in + upstream + real git, no gitgate


def _api(port, method, path, jwt=None, body=None, timeout=10):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Accept": "application/vnd.github+json",
                "User-Agent": "ghapp-selfcheck"}
        if jwt:
            hdrs["Authorization"] = "Bearer " + jwt
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        try:
            obj = json.loads(raw) if raw else None
        except ValueError:
            obj = raw
        return r.status, {k.lower(): v for k, v in r.getheaders()}, obj
    finally:
        conn.close()


def selfcheck(verbose=True):
    sys.path.insert(0, HERE)
    import harness as h

    results = []

    def check(name, ok, detail=""):
        results.append((name, bool(ok), detail))
        if verbose:
            print("%s %s%s" % ("ok  " if ok else "FAIL", name,
                               (": " + str(detail)[:1500])
                               if detail and not ok else ""), flush=True)
        return ok

    tmp = tempfile.mkdtemp(prefix="gg-ghapp-selfcheck-")
    up = h.Upstream(app_tokens=True)
    app = GitHubAppStandin(upstream=up)
    try:
        up.start()
        app.start()
        head = up.create_repo("acme/widgets", commits=2)
        up.create_repo("acme/other", commits=1)
        up.create_repo("globex/gadgets", commits=1)
        app.install("acme", 42)
        app.install("globex", 77, repositories=["gadgets"],
                    permissions={"contents": "read", "metadata": "read"})
        pem1 = app.write_private_key(os.path.join(tmp, "k1.pem"), "pkcs1")
        pem8 = app.write_private_key(os.path.join(tmp, "k8.pem"), "pkcs8")
        with open(pem1) as f:
            check("PKCS#1 PEM", "BEGIN RSA PRIVATE KEY" in f.read())
        with open(pem8) as f:
            check("PKCS#8 PEM", f.read().startswith("-----BEGIN PRIVATE KEY"))
        check("key files are 0600",
              os.stat(pem1).st_mode & 0o777 == 0o600 and
              os.stat(pem8).st_mode & 0o777 == 0o600)
        # the key as gitgate would load it
        with open(pem8, "rb") as f:
            k8 = serialization.load_pem_private_key(f.read(), None)
        jwt = make_jwt(k8)

        # -- JWT verification
        st, hd, obj = _api(app.port, "GET", "/repos/acme/widgets/installation",
                           jwt)
        check("installation of acme → 200 id 42",
              st == 200 and obj["id"] == 42 and
              obj["account"]["login"] == "acme", (st, obj))
        check("Date header", "date" in hd, hd)
        st, _, obj = _api(app.port, "GET",
                          "/repos/globex/gadgets/installation", jwt)
        check("second owner → second installation", st == 200 and
              obj["id"] == 77, (st, obj))
        st, _, obj = _api(app.port, "GET",
                          "/repos/nobody/x/installation", jwt)
        check("not installed → 404 Not Found", st == 404 and
              obj["message"] == "Not Found", (st, obj))
        now = int(time.time())
        bad = [
            ("no JWT", None),
            ("other key", make_jwt(generate_key())),
            ("float iat", make_jwt(app.key, {"iat": now - 60.0,
                                             "exp": now + 540,
                                             "iss": APP_ID})),
            ("float exp", make_jwt(app.key, {"iat": now - 60,
                                             "exp": now + 540.5,
                                             "iss": APP_ID})),
            ("exp over 10 min", make_jwt(app.key, iat=now - 60,
                                         exp=now + 700)),
            ("expired", make_jwt(app.key, iat=now - 600, exp=now - 5)),
            ("iat in the future", make_jwt(app.key, iat=now + 300,
                                           exp=now + 500)),
            ("iss wrong", make_jwt(app.key, iss="654321")),
            ("iss an integer", make_jwt(app.key, iss=123456)),
            ("alg HS256", make_jwt(app.key, header={"alg": "HS256",
                                                    "typ": "JWT"})),
            ("tampered claims", jwt.split(".")[0] + "." + b64url(
                json.dumps({"iat": now - 60, "exp": now + 540,
                            "iss": "999"}).encode()) + "." +
             jwt.split(".")[2]),
        ]
        for name, j in bad:
            st, hd, obj = _api(app.port, "GET",
                               "/repos/acme/widgets/installation", j)
            check("JWT refused: " + name, st == 401 and "date" in hd and
                  isinstance(obj, dict) and obj.get("message"), (st, obj))

        # -- tokens
        def token(repo, contents, workflows=None, j=None):
            owner, name = repo.split("/")
            iid = {"acme": 42, "globex": 77}[owner]
            perms = {"contents": contents, "metadata": "read"}
            if workflows:
                perms["workflows"] = workflows
            return _api(app.port, "POST",
                        "/app/installations/%d/access_tokens" % iid,
                        j or make_jwt(app.key),
                        {"repositories": [name], "permissions": perms})
        st, _, rd = token("acme/widgets", "read")
        check("access_tokens read → 201", st == 201 and
              rd["token"].startswith("ghs_") and
              rd["permissions"]["contents"] == "read" and
              rd["expires_at"].endswith("Z") and
              rd["repository_selection"] == "selected", (st, rd))
        st, _, wr = token("acme/widgets", "write", "write")
        check("access_tokens write+workflows → 201", st == 201 and
              wr["permissions"] == {"contents": "write", "metadata": "read",
                                    "workflows": "write"}, (st, wr))
        check("token lengths vary", len(rd["token"]) == 40 and
              len(wr["token"]) > 200, (len(rd["token"]), len(wr["token"])))
        st, _, obj = token("globex/gadgets", "write")
        check("permission not granted → 422", st == 422 and
              obj["message"] == MSG_PERM_422, (st, obj))
        st, _, obj = token("globex/other", "read")
        check("repository not granted → 422", st == 422 and
              obj["message"] == MSG_REPO_422, (st, obj))
        st, _, obj = _api(app.port, "POST",
                          "/app/installations/42/access_tokens",
                          make_jwt(app.key),
                          {"repositories": ["acme/widgets"],
                           "permissions": {"contents": "read"}})
        check("OWNER/NAME as a repository name → 422", st == 422, (st, obj))
        st, _, obj = _api(app.port, "POST",
                          "/app/installations/999/access_tokens",
                          make_jwt(app.key), {"repositories": ["x"]})
        check("unknown installation → 404", st == 404, (st, obj))
        calls = app.token_calls("acme/widgets", issued_only=True)
        check("calls recorded", len(calls) == 2 and
              calls[0].requested_permissions["contents"] == "read" and
              calls[1].permissions["workflows"] == "write", calls)

        # -- the upstream enforces them
        def url(tok, repo="acme/widgets"):
            return up.repo_url(repo, secret=tok)
        rc, out, err = h.git("ls-remote", url(rd["token"]))
        check("ls-remote with the read token", rc == 0 and
              ("%s\trefs/heads/main" % head) in out, err)
        dest = os.path.join(tmp, "clone")
        rc, _, err = h.git("clone", "-q", url(rd["token"]), dest)
        check("clone with the read token", rc == 0, err)
        h.commit_file(dest, "new.txt", "new\n")
        rc, _, err = h.git("push", url(rd["token"]), "HEAD:refs/heads/x",
                           cwd=dest)
        check("read token refused for push (403)", rc != 0 and
              "403" in err and up.rev_parse("acme/widgets", "x") is None,
              err)
        rc, _, err = h.git("push", url(wr["token"]), "HEAD:refs/heads/x",
                           cwd=dest)
        check("write token pushes", rc == 0 and
              up.rev_parse("acme/widgets", "x") is not None, err)
        rc, _, err = h.git("ls-remote", url(rd["token"], "acme/other"))
        check("token for another repository refused", rc != 0, err)
        rc, _, err = h.git("ls-remote", url("ghs_" + "x" * 36))
        check("unknown token refused", rc != 0, err)
        rc, _, err = h.git("ls-remote", up.repo_url("acme/widgets"))
        check("the static secret is not accepted in app mode", rc != 0, err)
        r = h.http_request(up.port, "GET",
                           "/acme/widgets.git/info/refs?service=git-upload-pack",
                           {"Authorization": h.basic_auth("x-access-token",
                                                          "ghs_nope")})
        check("401 carries WWW-Authenticate", r.status == 401 and
              r.header("www-authenticate"), r)
        r = h.http_request(up.port, "GET",
                           "/acme/widgets.git/info/refs?service=git-upload-pack",
                           {"Authorization": h.basic_auth("x-access-token",
                                                          rd["token"])})
        check("lighttpd hands Authorization to the CGI (200 with token)",
              r.status == 200 and r.header("content-type") ==
              "application/x-git-upload-pack-advertisement", r)
        log = up.app_log()
        ids = {c.token_id for c in calls}
        check("upstream log names token id and permission",
              any(l["token"] in ids and l["contents"] == "read" and
                  l["service"] == "git-upload-pack" and
                  l["decision"] == "pass" for l in log) and
              any(l["contents"] == "write" and l["decision"] == "pass" and
                  l["service"] == "git-receive-pack" for l in log) and
              any(l["status"] == 403 for l in log), log[-5:])
        check("no token in the upstream log",
              not any(t in json.dumps(log) for t in app.tokens))

        # -- expiry and replication delay
        app.token_lifetime = 2
        st, _, short = token("acme/widgets", "read")
        rc1 = h.git("ls-remote", url(short["token"]))[0]
        time.sleep(2.2)
        rc2, _, err = h.git("ls-remote", url(short["token"]))
        check("a token works until it expires, then is refused",
              rc1 == 0 and rc2 != 0, err)
        app.token_lifetime = 3600
        app.replication_delay = 0.6
        st, _, fresh = token("acme/widgets", "read")
        rc1 = h.git("ls-remote", url(fresh["token"]))[0]
        time.sleep(0.7)
        rc2 = h.git("ls-remote", url(fresh["token"]))[0]
        check("replication delay: refused at once, accepted later",
              rc1 != 0 and rc2 == 0, (rc1, rc2))
        app.replication_delay = 0

        # -- faults
        app.fault(404, "installation", times=1)
        st1 = _api(app.port, "GET", "/repos/acme/widgets/installation",
                   make_jwt(app.key))[0]
        st2 = _api(app.port, "GET", "/repos/acme/widgets/installation",
                   make_jwt(app.key))[0]
        check("fault 404 once", (st1, st2) == (404, 200), (st1, st2))
        app.fault(401, times=2)
        sts = [_api(app.port, "GET", "/repos/acme/widgets/installation",
                    make_jwt(app.key))[0] for _ in range(3)]
        check("fault 401 twice", sts == [401, 401, 200], sts)
        app.fault(422, "access_tokens", times=1)
        st, _, obj = token("acme/widgets", "read")
        check("fault 422", st == 422 and obj["message"] == MSG_REPO_422,
              (st, obj))
        app.rate_limit("429", 7, times=1)
        st, hd, _ = token("acme/widgets", "read")
        check("429 with retry-after", st == 429 and
              hd.get("retry-after") == "7", (st, hd))
        app.rate_limit("403", 30, times=1)
        st, hd, _ = token("acme/widgets", "read")
        check("403 with x-ratelimit-remaining 0", st == 403 and
              hd.get("x-ratelimit-remaining") == "0" and
              abs(int(hd["x-ratelimit-reset"]) - time.time() - 30) < 3,
              (st, hd))
        app.stall("installation")
        t0 = time.monotonic()
        try:
            _api(app.port, "GET", "/repos/acme/widgets/installation",
                 make_jwt(app.key), timeout=1)
            stalled = False
        except (socket.timeout, TimeoutError):
            stalled = True
        check("stall: accepted, never answered", stalled and
              time.monotonic() - t0 >= 0.9)
        app.clear_faults()
        check("cleared faults", _api(app.port, "GET",
                                     "/repos/acme/widgets/installation",
                                     make_jwt(app.key))[0] == 200)

        # -- clock offset: a client 20 minutes ahead, then corrected
        app.clock_offset = -1200
        st, hd, obj = _api(app.port, "GET",
                           "/repos/acme/widgets/installation",
                           make_jwt(app.key))
        server = email.utils.parsedate_to_datetime(hd["date"]).timestamp()
        off = server - time.time()
        st2 = _api(app.port, "GET", "/repos/acme/widgets/installation",
                   make_jwt(app.key, now=time.time() + off))[0]
        check("clock offset -20 min: 401, Date shifted, corrected → 200",
              st == 401 and abs(off + 1200) < 3 and st2 == 200,
              (st, off, st2))
        app.clock_offset = 1200
        st = _api(app.port, "GET", "/repos/acme/widgets/installation",
                  make_jwt(app.key))[0]
        check("clock offset +20 min: the JWT has expired → 401", st == 401)
        app.clock_offset = 0
    finally:
        app.stop()
        up.stop()
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
